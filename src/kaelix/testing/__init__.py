"""kaelix's testing toolkit: what a project needs to property-test anything that streams
messages (see docs/testing.md).

- Fault plans (``FaultPlan``, ``Fault``, ``FAULT_KINDS``): what a faulty channel does to a
  batch, and the report ``check_delivery`` must give for it. Need nothing beyond kaelix.
- ``kaelix.testing.strategies``: hypothesis strategies of messages, sequences, fault plans
  and scenarios, and the adversarial ``malformed_frames()`` / ``malformed_batches()``.

The names that need hypothesis (the ``test`` extra) are re-exported here lazily: ``import
kaelix.testing`` does not import hypothesis, ``from kaelix.testing import messages`` does.
``import kaelix`` never imports this package.
"""

from __future__ import annotations

import importlib
from typing import Any

from kaelix.testing.faults import FAULT_KINDS, Fault, FaultKind, FaultPlan

__all__ = ["FAULT_KINDS", "Fault", "FaultKind", "FaultPlan"]


def __getattr__(name: str) -> Any:
    """The public names of ``kaelix.testing.strategies``, imported on first use."""
    if not name.startswith("_") and name != "strategies":
        strategies = importlib.import_module("kaelix.testing.strategies")
        if name in strategies.__all__:
            return getattr(strategies, name)
    raise AttributeError(f"module 'kaelix.testing' has no attribute {name!r}")
