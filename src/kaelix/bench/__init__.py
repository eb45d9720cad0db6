"""kaelix.bench: benchmark kaelix beside its peers, with the machine's own memcpy bandwidth
as the physical reference, and report the ``DESIGN.md`` bars.

Run it as ``python -m kaelix.bench`` (see ``docs/bench.md``) or from Python::

    from kaelix.bench import run
    result = run(["codec"])             # a BenchRun
    result.case("codec", "crc32c 64 KiB").speedup("crc32c")

This package re-exports its public names only. It uses the public kaelix API (through its
suites) and never imports numba; rich and the peers are imported lazily where used.
Nothing in kaelix imports this package.
"""

from kaelix.bench._bars import check_bar, check_bars
from kaelix.bench._model import (
    SCHEMA,
    Bar,
    BarCheck,
    BenchRun,
    Case,
    CaseResult,
    Contender,
    ContenderResult,
    Factory,
    Latency,
    ProgressEvent,
    Settings,
    Suite,
    SuiteConfig,
    Timing,
    Workload,
)
from kaelix.bench._report import print_report, render_text
from kaelix.bench._runner import measure, run

__all__ = [
    "SCHEMA",
    "Bar",
    "BarCheck",
    "BenchRun",
    "Case",
    "CaseResult",
    "Contender",
    "ContenderResult",
    "Factory",
    "Latency",
    "ProgressEvent",
    "Settings",
    "Suite",
    "SuiteConfig",
    "Timing",
    "Workload",
    "check_bar",
    "check_bars",
    "measure",
    "print_report",
    "render_text",
    "run",
]
