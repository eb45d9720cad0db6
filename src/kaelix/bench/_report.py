"""Showing a `BenchRun` to a person: the machine header, the memcpy reference line, one
table per suite (each case with its contenders' median time per operation, IQR, throughput,
kaelix's speedup over each and the ``DESIGN.md`` bar with ✓/✗), and the bar summary; plus
progress reporters for the run. A latency case shows, in the same columns, the median
latency, its IQR over the trials and the tail percentiles (its case line names them).

``rich`` is used when installed (imported lazily, inside the functions that draw with it);
otherwise a plain aligned text table and one progress line per case on stderr. Imports the
bench's own modules only; never kaelix, numba or a peer.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Literal

from kaelix.bench._format import (
    DASH,
    format_bytes,
    format_messages,
    format_percent,
    format_percentile,
    format_speedup,
    format_time,
    mark,
)
from kaelix.bench._model import BenchRun, CaseResult, ContenderResult, ProgressEvent
from kaelix.bench._peers import is_installed

if TYPE_CHECKING:
    from rich.console import Console

COLUMNS = ("case / contender", "time/op", "IQR", "throughput", f"vs kaelix {DASH} bar")
_RIGHT_ALIGNED = (False, True, True, True, False)
CAVEAT = (
    "One run on one machine: compare the ratios within this run; absolute figures move "
    "with the machine, its load and its clock."
)

NOISY_IQR = 0.10
"""A figure whose IQR exceeds this fraction of its median is flagged as noisy."""

RowKind = Literal["case", "contender", "skipped", "error"]


@dataclass(frozen=True)
class Row:
    """One table row as text cells, with what it shows (for styling)."""

    cells: tuple[str, str, str, str, str]
    kind: RowKind
    met: bool | None = None
    noisy: bool = False


# ------------------------------------------------------------------------------- contents


TAIL_PERCENTILES = (99.0, 99.9, 100.0)
"""The latency percentiles shown in the throughput column of a latency case."""

LATENCY_HEADINGS = ("p50", "IQR", " \u00b7 ".join(format_percentile(p) for p in TAIL_PERCENTILES))
"""What a latency case's line says its contenders' time, IQR and throughput columns hold."""


def throughput_text(case: CaseResult, result: ContenderResult) -> str:
    """The contender's median throughput in the case's unit (messages/s, bytes/s or both),
    or for a latency case its tail latencies (``p99 3.10 µs · p99.9 12.0 µs · max 80.2 µs``)."""
    if case.throughput == "latency":
        if result.latency is None:
            return DASH
        return " \u00b7 ".join(
            f"{format_percentile(p)} {format_time(result.latency.at(p))}" for p in TAIL_PERCENTILES
        )
    if case.throughput == "bytes":
        return format_bytes(result.bytes_per_s)
    if case.throughput == "both":
        return f"{format_messages(result.messages_per_s)} \u00b7 {format_bytes(result.bytes_per_s)}"
    return format_messages(result.messages_per_s)


def bars_text(case: CaseResult) -> str:
    """The case's bars with their marks: ``bar ≤ msgspec ✓`` (several joined by `` · ``)."""
    if not case.bars:
        return ""
    return "bar " + " \u00b7 ".join(f"{c.bar.text} {mark(c.met)}" for c in case.bars)


def case_met(case: CaseResult) -> bool | None:
    """False if any bar is missed, None if none missed but one is unchecked, else True."""
    verdicts = [check.met for check in case.bars]
    if any(v is False for v in verdicts):
        return False
    if any(v is None for v in verdicts):
        return None
    return True


def _shorten(text: str, width: int = 72) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def case_rows(case: CaseResult) -> list[Row]:
    """The rows that show one case: the case line (with its bars), then each contender."""
    headings = LATENCY_HEADINGS if case.throughput == "latency" else ("", "", "")
    rows = [
        Row(
            (case.case, *headings, bars_text(case)),
            "case",
            case_met(case) if case.bars else None,
        )
    ]
    for result in case.contenders:
        label = f"  {result.name}" + (" (reference)" if result.role == "reference" else "")
        if result.status == "skipped":
            rows.append(Row((label, "skipped", "", "", _shorten(result.reason or "")), "skipped"))
            continue
        if result.status == "error" or result.timing is None:
            rows.append(Row((label, "error", "", "", _shorten(result.reason or "")), "error"))
            continue
        versus = "" if result.role == "kaelix" else format_speedup(case.speedup(result.name))
        if versus and case.throughput == "latency":
            versus = versus.replace(" faster", " lower p50").replace(" slower", " higher p50")
        time_text = format_time(
            result.latency.p50_ns if result.latency is not None else result.timing.median_ns
        )
        rows.append(
            Row(
                (
                    label,
                    time_text,
                    format_percent(result.timing.relative_iqr),
                    throughput_text(case, result),
                    versus,
                ),
                "contender",
                noisy=result.timing.relative_iqr > NOISY_IQR,
            )
        )
    return rows


def header_lines(run: BenchRun) -> list[str]:
    """The lines above the tables: mode and method, machine, versions."""
    machine, settings = run.machine, run.settings
    cpus = machine.get("usable_cpus") or machine.get("cpu_count")
    peers = machine.get("peers") or {}
    peer_text = ", ".join(f"{name} {version}" for name, version in peers.items() if version)
    commit = machine.get("git_commit")
    commit_text = (
        f"commit {commit[:12]}" + (" (modified)" if machine.get("git_dirty") else "")
        if commit
        else "no git commit"
    )
    m = machine.get
    return [
        f"kaelix bench {DASH} {settings.mode}: {settings.repeat} trials of "
        f"~{settings.trial_ms:g} ms per contender after a warm-up; median time per operation; "
        f"IQR relative to the median",
        f"machine: {m('cpu_model')} {DASH} {cpus} CPUs {DASH} {m('platform')}",
        f"python: {m('python_implementation')} {m('python_version')} {DASH} "
        f"numpy {m('numpy_version')} {DASH} kaelix {m('kaelix_version')} "
        f"(crc32c: {m('crc32c_implementation')}) {DASH} {commit_text}",
        f"peers: {peer_text or 'none installed'}",
    ]


def reference_line(run: BenchRun) -> str:
    """The physical reference: memcpy bandwidth in cache and to memory."""
    parts = []
    for case in run.reference:
        for result in case.contenders:
            figure = (
                format_bytes(result.bytes_per_s)
                if result.ok
                else f"{result.status}: {result.reason}"
            )
            parts.append(f"{case.case} {figure}")
    return "physical reference (numpy.copyto): " + (" \u00b7 ".join(parts) or "not measured")


def summary_lines(run: BenchRun) -> list[str]:
    """Bars met / missed / unchecked, each missed or unchecked bar with its figures, errors."""
    checks = run.bar_checks
    met = sum(1 for _, c in checks if c.met is True)
    missed = [(case, c) for case, c in checks if c.met is False]
    unchecked = [(case, c) for case, c in checks if c.met is None]
    lines = [
        f"DESIGN.md bars: {met} met, {len(missed)} missed, {len(unchecked)} not checked"
        if checks
        else "DESIGN.md bars: none in these cases"
    ]
    for case, check in missed:
        lines.append(
            f"  {mark(False)} {case.suite}: {case.case}: bar {check.bar.text}: {check.detail}"
        )
    for case, check in unchecked:
        lines.append(f"  ? {case.suite}: {case.case}: bar {check.bar.text}: {check.detail}")
    for case, contender in run.errors:
        lines.append(f"  error in {case.suite}: {case.case}: {contender.name}: {contender.reason}")
    noisy = [
        f"{case.case} / {result.name}"
        for case in (*run.reference, *run.results)
        for result in case.contenders
        if result.timing is not None and result.timing.relative_iqr > NOISY_IQR
    ]
    if noisy:
        lines.append(
            f"noisy (IQR over {NOISY_IQR:.0%} of the median; rerun on a quiet machine or with "
            f"--full): {', '.join(noisy)}"
        )
    return lines


def note_lines(cases: Sequence[CaseResult]) -> list[str]:
    """One line per distinct contender note in these cases (how each peer was used)."""
    seen: dict[tuple[str, str], None] = {}
    for case in cases:
        for result in case.contenders:
            if result.note:
                seen[(result.name, result.note)] = None
    return [f"  {name}: {note}" for name, note in seen]


def suites_in(run: BenchRun) -> list[tuple[str, list[CaseResult]]]:
    """The run's cases grouped by suite, in run order."""
    grouped: dict[str, list[CaseResult]] = {}
    for case in run.results:
        grouped.setdefault(case.suite, []).append(case)
    return list(grouped.items())


# ------------------------------------------------------------------------------ plain text


def _align(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, right in zip(row, widths, _RIGHT_ALIGNED, strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def render_text(run: BenchRun) -> str:
    """The whole report as plain aligned text (what is printed when rich is not installed)."""
    out = [*header_lines(run), reference_line(run), ""]
    for suite, cases in suites_in(run):
        out.append(f"{suite}")
        rows: list[tuple[str, ...]] = [row.cells for case in cases for row in case_rows(case)]
        widths = [max(len(row[i]) for row in (COLUMNS, *rows)) for i in range(len(COLUMNS))]
        out.extend(_align([COLUMNS, tuple("-" * w for w in widths), *rows]))
        notes = note_lines(cases)
        if notes:
            out.append("notes:")
            out.extend(notes)
        out.append("")
    out.extend(summary_lines(run))
    out.append(CAVEAT)
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------ rich


def _rich_table(suite: str, cases: Sequence[CaseResult]) -> Any:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(title=suite, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for name, right in zip(COLUMNS, _RIGHT_ALIGNED, strict=True):
        table.add_column(name, justify="right" if right else "left", no_wrap=right)
    for index, case in enumerate(cases):
        for row in case_rows(case):
            if row.kind == "case":
                if index:
                    table.add_section()
                style = {True: "green", False: "bold red", None: "yellow"}[row.met]
                table.add_row(
                    Text(row.cells[0], style="bold"),
                    Text(row.cells[1], style="dim"),
                    Text(row.cells[2], style="dim"),
                    Text(row.cells[3], style="dim"),
                    Text(row.cells[4], style=style if case.bars else ""),
                )
            elif row.kind == "contender":
                style = "bold cyan" if row.cells[0].strip() == "kaelix" else ""
                iqr_style = "yellow" if row.noisy else ""
                table.add_row(
                    Text(row.cells[0], style=style),
                    row.cells[1],
                    Text(row.cells[2], style=iqr_style),
                    row.cells[3],
                    Text(row.cells[4]),
                )
            else:
                style = "red" if row.kind == "error" else "dim"
                table.add_row(
                    Text(row.cells[0], style="dim"),
                    Text(row.cells[1], style=style),
                    "",
                    "",
                    Text(row.cells[4], style=style),
                )
    return table


def render_rich(run: BenchRun, console: Console) -> None:
    """Print the report with rich on ``console``."""
    from rich.text import Text

    for line in header_lines(run):
        console.print(Text(line, style="dim"), soft_wrap=True)
    console.print(Text(reference_line(run)), soft_wrap=True)
    for suite, cases in suites_in(run):
        console.print()
        console.print(_rich_table(suite, cases))
        notes = note_lines(cases)
        if notes:
            console.print(Text("notes:\n" + "\n".join(notes), style="dim"))
    console.print()
    for index, line in enumerate(summary_lines(run)):
        style = (
            "bold"
            if index == 0
            else ("red" if line.lstrip().startswith(("\u2717", "error")) else "yellow")
        )
        console.print(Text(line, style=style), soft_wrap=True)
    console.print(Text(CAVEAT, style="dim"), soft_wrap=True)


def use_rich(plain: bool = False) -> bool:
    """True when tables should be drawn with rich: installed and not refused."""
    return not plain and is_installed("rich")


def print_report(run: BenchRun, *, file: IO[str] | None = None, plain: bool = False) -> None:
    """Print the report to ``file`` (stdout by default), with rich when `use_rich`."""
    stream = sys.stdout if file is None else file
    if use_rich(plain):
        from rich.console import Console

        render_rich(run, Console(file=stream, width=max(100, terminal_width(stream))))
    else:
        stream.write(render_text(run))
        stream.flush()


def terminal_width(stream: IO[str]) -> int:
    """The width to draw for: the terminal's when ``stream`` is one, else 120 columns."""
    import shutil

    return shutil.get_terminal_size((120, 24)).columns if stream.isatty() else 120


# -------------------------------------------------------------------------------- progress


class PlainProgress:
    """Progress as one line per finished case on a stream (stderr by default)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream

    def __call__(self, event: ProgressEvent) -> None:
        """Print a line when a case finishes; nothing for the other events."""
        if event.kind != "case" or event.result is None:
            return
        stream = self._stream if self._stream is not None else sys.stderr
        figures = ", ".join(
            f"{r.name} {format_time(r.median_ns)}" if r.ok else f"{r.name} {r.status}"
            for r in event.result.contenders
        )
        width = len(str(event.total))
        stream.write(
            f"[{event.done:>{width}}/{event.total}] {event.suite}: {event.case}: {figures}\n"
        )
        stream.flush()


@contextmanager
def rich_progress() -> Iterator[Callable[[ProgressEvent], None]]:
    """A rich progress bar on stderr for the duration of the block; yields the callback."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = progress.add_task("benchmarking", total=None)

    def update(event: ProgressEvent) -> None:
        if event.kind == "start":
            progress.update(task, total=event.total)
        else:
            what = f"{event.suite}: {event.case}" + (
                f" {DASH} {event.contender}" if event.contender else ""
            )
            progress.update(task, completed=event.done, description=_shorten(what, 60))

    with progress:
        yield update


@contextmanager
def progress_reporter(plain: bool = False) -> Iterator[Callable[[ProgressEvent], None]]:
    """The progress display the command line uses: a rich bar when rich is installed and
    stderr is a terminal, else `PlainProgress` lines on stderr."""
    if use_rich(plain) and sys.stderr.isatty():
        with rich_progress() as update:
            yield update
    else:
        yield PlainProgress()


__all__ = [
    "CAVEAT",
    "COLUMNS",
    "PlainProgress",
    "Row",
    "bars_text",
    "case_rows",
    "print_report",
    "progress_reporter",
    "render_rich",
    "render_text",
    "terminal_width",
    "use_rich",
]
