"""``python -m kaelix.fuzz TARGET --runs N``: see ``kaelix.fuzz._runner``."""

import sys

from kaelix.fuzz._runner import main

sys.exit(main())
