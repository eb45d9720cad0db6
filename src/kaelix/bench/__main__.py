"""Entry point of ``python -m kaelix.bench`` (see `kaelix.bench._cli`). Imports nothing else."""

from kaelix.bench._cli import main

raise SystemExit(main())
