"""kaelix.bench: benchmark kaelix beside its peers, with the machine's own memcpy bandwidth
as the physical reference, and report the ``DESIGN.md`` bars.

Run it as ``python -m kaelix.bench`` (see ``docs/bench.md``) or from Python::

    from kaelix.bench import compare, load_run, run
    result = run(["codec"])             # a BenchRun
    result.case("codec", "crc32c 64 KiB").speedup("crc32c")
    compare(load_run("benchmarks/main.json"), result)   # [PerformanceRegression, ...]

This package re-exports its public names only. It uses the public kaelix API (through its
suites) and never imports numba; rich and the peers are imported lazily where used.
Nothing in kaelix imports this package.
"""

from kaelix.bench._bars import check_bar, check_bars
from kaelix.bench._compare import (
    Change,
    Comparison,
    PerformanceRegression,
    compare,
    compare_runs,
    print_comparison,
)
from kaelix.bench._hdrlog import encode_latencies, write_hdr_logs
from kaelix.bench._history import load_history, load_run, save_run
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
from kaelix.bench._stats import MannWhitney, mann_whitney_u

__all__ = [
    "SCHEMA",
    "Bar",
    "BarCheck",
    "BenchRun",
    "Case",
    "CaseResult",
    "Change",
    "Comparison",
    "Contender",
    "ContenderResult",
    "Factory",
    "Latency",
    "MannWhitney",
    "PerformanceRegression",
    "ProgressEvent",
    "Settings",
    "Suite",
    "SuiteConfig",
    "Timing",
    "Workload",
    "check_bar",
    "check_bars",
    "compare",
    "compare_runs",
    "encode_latencies",
    "load_history",
    "load_run",
    "mann_whitney_u",
    "measure",
    "print_comparison",
    "print_report",
    "render_text",
    "run",
    "save_run",
    "write_hdr_logs",
]
