"""Latency histograms in HdrHistogram's interchange formats: `encode_latencies` turns a
latency workload's samples into the base64 ``HISTFAAA...`` encoding a `Latency` carries
(``Latency.hdr``), and `write_hdr_logs` writes each such histogram of a run as an
HdrHistogram log file (``--hdr-dir``), which ``HistogramLogProcessor``, HdrHistogram's
plotters and ``hdrh.log.HistogramLogReader`` read.

The log format (HdrHistogram's ``HistogramLogWriter``, format version 1.3): ``#`` comment
lines, then ``#[StartTime: <seconds since epoch> (seconds since epoch), <date>]`` and
``#[BaseTime: ...]``, the CSV legend
``"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"``, and
one line per interval: its start relative to the base time and its length in seconds, its
maximum divided by 1,000,000 (milliseconds, for values in nanoseconds), and the histogram.
A bench run writes one interval holding every measured message of the contender, starting
at the run's start (offset 0); its length is 0, as the trials of one contender are not timed
as one stretch.

Imports the standard library and the bench's own model; ``kaelix`` and numpy only inside
`encode_latencies` (the suites call it), never numba directly.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from kaelix.bench._model import BenchRun

HDR_LOWEST = 1
HDR_HIGHEST = 3_600_000_000_000
HDR_FIGURES = 3
"""The histograms' parameters: 1 ns to an hour, 3 significant figures (the usual shape)."""

LOG_FORMAT_VERSION = "1.3"
LEGEND = '"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"'
MAX_VALUE_UNIT_RATIO = 1_000_000.0
"""Interval_Max is the maximum divided by this: nanoseconds shown as milliseconds, as
HdrHistogram's log writer does by default."""


def encode_latencies(latencies: Any) -> str:
    """The HdrHistogram of ``latencies`` (nanoseconds; a sequence or numpy array, rounded to
    whole nanoseconds, negatives counted as 0) as base64 ``HISTFAAA...`` text: pass it as
    ``Workload(..., timer="latency", encode_hdr=encode_latencies)``. Uses
    ``kaelix.HdrHistogram`` (1 ns to an hour, 3 significant figures); its first call in a
    process compiles (or loads from numba's cache) the recording kernel."""
    import numpy as np

    import kaelix

    values = np.asarray(latencies, dtype=np.float64)
    whole = np.clip(np.rint(values), 0, HDR_HIGHEST).astype(np.int64)
    histogram = kaelix.HdrHistogram(HDR_LOWEST, HDR_HIGHEST, HDR_FIGURES)
    histogram.record_values(whole)
    return histogram.encode().decode("ascii")


def log_name(suite: str, case: str, contender: str) -> str:
    """``<suite>-<case>-<contender>.hlog`` with every run of characters other than ASCII
    letters, digits, ``.`` and ``_`` made one ``-``, lower case:
    ``ring-1-1-processes-one-way-latency-at-100-k-msg-s-64-b-kaelix-spin.hlog``."""
    parts = (
        re.sub(r"[^a-z0-9._]+", "-", part.lower()).strip("-") for part in (suite, case, contender)
    )
    return "-".join(part or "x" for part in parts) + ".hlog"


def _epoch(created: str) -> tuple[float, datetime]:
    try:
        moment = datetime.fromisoformat(created)
    except ValueError:
        moment = datetime.now(timezone.utc)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp(), moment


def log_text(hdr: str, *, created: str, max_ns: float, comment: str = "") -> str:
    """One histogram as an HdrHistogram log: comments, start and base time (``created``, an
    ISO timestamp), the legend and one interval line."""
    seconds, moment = _epoch(created)
    date = moment.astimezone(timezone.utc).strftime("%a %b %d %H:%M:%S UTC %Y")
    lines = []
    if comment:
        lines.append(f"#[{' '.join(comment.split())}]")
    lines += [
        f"#[Histogram log format version {LOG_FORMAT_VERSION}]",
        f"#[StartTime: {seconds:.3f} (seconds since epoch), {date}]",
        f"#[BaseTime: {seconds:.3f} (seconds since epoch)]",
        LEGEND,
        f"{0.0:.3f},{0.0:.3f},{max_ns / MAX_VALUE_UNIT_RATIO:.3f},{hdr.strip()}",
    ]
    return "\n".join(lines) + "\n"


def write_hdr_logs(run: BenchRun, directory: str | os.PathLike[str]) -> list[Path]:
    """Write every latency contender of ``run`` that carries a histogram (``Latency.hdr``) to
    ``directory`` (created if needed) as `log_name`; returns the paths written, in run
    order. Two contenders whose names clean up alike get ``-2``, ``-3``... suffixes."""
    folder = Path(directory)
    written: list[Path] = []
    used: set[str] = set()
    for case in run.results:
        for result in case.contenders:
            latency = result.latency
            if latency is None or not latency.hdr:
                continue
            name = log_name(case.suite, case.case, result.name)
            stem, counter = name[: -len(".hlog")], 2
            while name in used:
                name = f"{stem}-{counter}.hlog"
                counter += 1
            used.add(name)
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / name
            comment = (
                f"kaelix.bench {case.suite}: {case.case}: {result.name}; one-way latency in "
                f"nanoseconds, {latency.samples} messages"
            )
            path.write_text(
                log_text(latency.hdr, created=run.created, max_ns=latency.max_ns, comment=comment),
                encoding="utf-8",
            )
            written.append(path)
    return written


__all__ = [
    "HDR_FIGURES",
    "HDR_HIGHEST",
    "HDR_LOWEST",
    "LEGEND",
    "encode_latencies",
    "log_name",
    "log_text",
    "write_hdr_logs",
]
