"""kaelix's testing toolkit: what a project needs to property-test anything that streams
messages (see docs/testing.md).

- Fault plans (``FaultPlan``, ``Fault``, ``FAULT_KINDS``): what a faulty channel does to a
  batch, and the report ``check_delivery`` must give for it. Need nothing beyond kaelix.
- ``kaelix.testing.strategies``: hypothesis strategies of messages, sequences, fault plans
  and scenarios, and the adversarial ``malformed_frames()`` / ``malformed_batches()``.
- ``kaelix.testing.machine``: ``StreamMachine``, a hypothesis state machine running a
  system beside ``StreamModel``, a plain-Python model of stream semantics.
- ``kaelix.testing.generate`` and ``kaelix.testing.load``: seeded bulk generators of
  ``MessageBatch``es, frame files, and load patterns (send times); no hypothesis needed.
- ``kaelix.testing.plugin``: the pytest plugin (fixtures, profiles, ``--kaelix-seed``).

The names that need hypothesis (the ``test`` extra) are re-exported here lazily: ``import
kaelix.testing`` does not import hypothesis, ``from kaelix.testing import messages`` does.
``import kaelix`` never imports this package.
"""

from __future__ import annotations

import importlib
from typing import Any

from kaelix.testing.faults import FAULT_KINDS, Fault, FaultKind, FaultPlan

__all__ = ["FAULT_KINDS", "Fault", "FaultKind", "FaultPlan"]

_LAZY = ("kaelix.testing.strategies", "kaelix.testing.machine")
_SUBMODULES = ("strategies", "machine", "generate", "load", "plugin", "faults")


def __getattr__(name: str) -> Any:
    """The public names of ``kaelix.testing.strategies`` and ``kaelix.testing.machine``
    (both need hypothesis), imported on first use."""
    if not name.startswith("_") and name not in _SUBMODULES:
        for submodule in _LAZY:
            module = importlib.import_module(submodule)
            if name in module.__all__:
                return getattr(module, name)
    raise AttributeError(f"module 'kaelix.testing' has no attribute {name!r}")
