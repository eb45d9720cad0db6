"""The registry of benchmark suites: the one place a suite is added.

A suite is a module under ``kaelix.bench.suites`` that defines ``SUITE``, a
`kaelix.bench.Suite`. To add one (the stream and queue suites of later issues), write
the module and add a line to `SUITES`; ``python -m kaelix.bench --list`` and
`kaelix.bench.run` pick it up. Suite modules are imported only when used, so a
suite's dependencies cost nothing to the others.

Suite modules import the public kaelix API and lazily their peers; never numba at module
level.
"""

from __future__ import annotations

import importlib

from kaelix.bench._model import Suite

SUITES: dict[str, str] = {
    "codec": "kaelix.bench.suites.codec",
    "ring": "kaelix.bench.suites.ring",
    "stream": "kaelix.bench.suites.stream",
    "validate": "kaelix.bench.suites.validate",
    "hdr": "kaelix.bench.suites.hdr",
    "generate": "kaelix.bench.suites.generate",
    "queue": "kaelix.bench.suites.queue",
    "monitor": "kaelix.bench.suites.monitor",
    "soak": "kaelix.bench.suites.soak",
    "nats": "kaelix.bench.suites.nats",
}
"""Suite name -> module defining ``SUITE``, in the order a full run goes through them."""


def load_suite(name: str) -> Suite:
    """The `Suite` registered as ``name``; raises ValueError listing the known names."""
    try:
        module_name = SUITES[name]
    except KeyError:
        known = ", ".join(SUITES)
        raise ValueError(f"Unknown suite {name!r}; choose from: {known}") from None
    suite = importlib.import_module(module_name).SUITE
    if not isinstance(suite, Suite) or suite.name != name:
        raise TypeError(f"{module_name}.SUITE must be a Suite named {name!r}; got {suite!r}")
    return suite


__all__ = ["SUITES", "load_suite"]
