"""kaelix's testing toolkit: hypothesis strategies for downstream property tests.

``kaelix.testing.strategies`` holds ``malformed_frames()`` and ``malformed_batches()``, the
adversarial inputs kaelix's own security tests use. They need hypothesis (the ``test``
extra), so they are re-exported here lazily: ``import kaelix.testing`` costs nothing, and
``from kaelix.testing import malformed_frames`` imports hypothesis. ``import kaelix`` never
imports this package.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MALFORMATIONS", "malformed_batches", "malformed_frames"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from kaelix.testing import strategies

        return getattr(strategies, name)
    raise AttributeError(f"module 'kaelix.testing' has no attribute {name!r}")
