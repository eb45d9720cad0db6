"""Regression tracking: compare a run with a baseline run, contender by contender, and call a
change a regression only when it is worse than the threshold *and* statistically significant
over the trials (a one-sided Mann-Whitney U test, `kaelix.bench._stats`).

What is compared, for every (suite, case, contender) measured in both runs:

- a throughput case: the time per message of each trial (trial time / messages per call;
  a one-off cost: its time), the figure being the median;
- a latency case: p50 (each trial's median latency) and p99 (each trial's own p99; the
  figure is the p99 of all messages pooled).

The change is ``current / baseline - 1`` of the figure, positive when slower. Beyond
``+threshold`` and significant (one-sided p <= `ALPHA`, current slower than baseline) it is a
regression, of severity minor, major or critical as it exceeds 1, 2 or 3 times the
threshold; beyond ``-threshold`` and significant (current faster) an improvement; within
the threshold "same"; beyond it but not significant "not significant", or "too few trials"
when the trial counts cannot reach significance at all (`smallest_p_value`).

Imports the standard library and the bench's own modules only; never kaelix, numpy, numba,
rich (except inside `print_comparison`) or a peer.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import IO, Literal

from kaelix.bench._format import DASH, format_time
from kaelix.bench._model import BenchRun, CaseResult, ContenderResult, Role
from kaelix.bench._stats import mann_whitney_u, smallest_p_value

ALPHA = 0.05
"""The significance level: a change counts when its one-sided p-value is at most this."""

DEFAULT_THRESHOLD_PCT = 10.0
"""The default ``--threshold``: changes within 10 % either way are "same"."""

KAELIX_ONLY: tuple[Role, ...] = ("kaelix",)
"""The roles whose regressions count by default: a peer or a reference line that got slower
says the machine changed, not kaelix."""

Severity = Literal["minor", "major", "critical"]
ComparedMetric = Literal["time", "p50", "p99"]
"""``time``: time per message (per call when it handles none); ``p50`` / ``p99``: one-way
latency percentiles of a latency case."""
Verdict = Literal["regression", "improvement", "same", "not significant", "too few trials"]

SEVERITY_STEPS: tuple[tuple[float, Severity], ...] = (
    (3.0, "critical"),
    (2.0, "major"),
    (1.0, "minor"),
)
"""A regression's severity: critical beyond 3×, major beyond 2×, minor beyond 1× the
threshold."""

MACHINE_KEYS = (
    "cpu_model",
    "cpu_count",
    "python_implementation",
    "python_version",
    "numpy_version",
    "numba_version",
)
"""Machine facts that, when they differ between the runs, make a comparison questionable."""


_ROUNDING = 1e-9
"""Percentage points ignored when comparing a change with a threshold, so that 1.1 / 1.0 is
+10 %, not a hair over it."""


def severity_of(change_pct: float, threshold_pct: float) -> Severity | None:
    """The severity of a slowdown of ``change_pct`` percent against ``threshold_pct``, or
    None when it does not exceed the threshold."""
    for factor, severity in SEVERITY_STEPS:
        if change_pct > factor * threshold_pct + _ROUNDING:
            return severity
    return None


@dataclass(frozen=True)
class PerformanceRegression:
    """A figure of one contender that got worse than the threshold, significantly.

    ``benchmark`` names it (``"suite: case: contender"``; ``suite``, ``case`` and
    ``contender`` hold the parts). ``baseline`` and ``current`` are the figures in
    nanoseconds (``metric`` says which: ``time`` per message, ``p50`` or ``p99`` latency),
    ``change_pct`` is ``(current / baseline - 1) * 100``, ``threshold`` the threshold in
    percent, ``severity`` minor / major / critical (beyond 1×, 2×, 3× the threshold) and
    ``p_value`` the one-sided Mann-Whitney p-value of the trials.
    """

    benchmark: str
    baseline: float
    current: float
    threshold: float
    severity: Severity
    metric: ComparedMetric
    change_pct: float
    p_value: float
    suite: str = ""
    case: str = ""
    contender: str = ""


@dataclass(frozen=True)
class Change:
    """One figure of one contender in both runs, with the verdict on its change.

    ``baseline_trials`` / ``current_trials`` are the per-trial values the test compared
    (nanoseconds); ``p_value`` is None when nothing was tested (the change is within the
    threshold, or a run holds no per-trial values for it).
    """

    suite: str
    case: str
    contender: str
    role: Role
    metric: ComparedMetric
    baseline: float
    current: float
    baseline_trials: tuple[float, ...]
    current_trials: tuple[float, ...]
    threshold: float
    p_value: float | None
    verdict: Verdict
    severity: Severity | None = None

    @property
    def benchmark(self) -> str:
        """``"suite: case: contender"``."""
        return f"{self.suite}: {self.case}: {self.contender}"

    @property
    def change_pct(self) -> float:
        """``(current / baseline - 1) * 100``: positive is slower."""
        return (self.current / self.baseline - 1.0) * 100.0

    def regression(self) -> PerformanceRegression | None:
        """This change as a `PerformanceRegression`, or None when it is not one."""
        if self.verdict != "regression" or self.severity is None or self.p_value is None:
            return None
        return PerformanceRegression(
            benchmark=self.benchmark,
            baseline=self.baseline,
            current=self.current,
            threshold=self.threshold,
            severity=self.severity,
            metric=self.metric,
            change_pct=self.change_pct,
            p_value=self.p_value,
            suite=self.suite,
            case=self.case,
            contender=self.contender,
        )


@dataclass(frozen=True)
class Comparison:
    """Every `Change` between a baseline run and the current one, in the current run's order.

    ``gate`` holds the roles whose regressions count (kaelix by default: a peer or a
    reference line that got slower says the machine changed, not kaelix). ``missing``
    names the gated contenders measured in the baseline but not now (skipped, failed, gone).
    """

    baseline: BenchRun
    current: BenchRun
    threshold_pct: float
    changes: tuple[Change, ...]
    gate: tuple[Role, ...] = KAELIX_ONLY
    missing: tuple[str, ...] = ()
    alpha: float = ALPHA
    notes: tuple[str, ...] = field(default=())

    @property
    def gated(self) -> tuple[Change, ...]:
        """The changes of the gated roles."""
        return tuple(c for c in self.changes if c.role in self.gate)

    @property
    def context(self) -> tuple[Change, ...]:
        """The changes of the other roles (peers and references): context, never a failure."""
        return tuple(c for c in self.changes if c.role not in self.gate)

    @property
    def regressions(self) -> tuple[PerformanceRegression, ...]:
        """The gated changes that are regressions."""
        found = (change.regression() for change in self.gated)
        return tuple(r for r in found if r is not None)

    @property
    def improvements(self) -> tuple[Change, ...]:
        """The gated changes that are improvements."""
        return tuple(c for c in self.gated if c.verdict == "improvement")


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def _figures(result: ContenderResult) -> list[tuple[ComparedMetric, float, tuple[float, ...]]]:
    """(metric, figure, per-trial values) for each figure of a measured contender."""
    timing = result.timing
    if timing is None or not result.ok:
        return []
    latency = result.latency
    if latency is not None:
        return [
            ("p50", latency.p50_ns, tuple(timing.trials_ns)),
            ("p99", latency.p99_ns, tuple(latency.trials_p99_ns)),
        ]
    per = max(result.messages_per_op, 1)
    trials = tuple(t / per for t in timing.trials_ns)
    figure = timing.median_ns / per
    return [("time", figure, trials)]


def judge(
    baseline_trials: Sequence[float],
    current_trials: Sequence[float],
    change_pct: float,
    threshold_pct: float,
    alpha: float = ALPHA,
) -> tuple[Verdict, float | None, Severity | None]:
    """The verdict on a change of ``change_pct`` percent (positive: slower) given the trials
    of both runs: (verdict, one-sided p-value or None, severity of a regression or None)."""
    if abs(change_pct) <= threshold_pct + _ROUNDING:
        return "same", None, None
    n1, n2 = len(current_trials), len(baseline_trials)
    if smallest_p_value(n1, n2) > alpha:
        return "too few trials", None, None
    slower = change_pct > 0
    test = mann_whitney_u(current_trials, baseline_trials, "greater" if slower else "less")
    if test.p_value > alpha:
        return "not significant", test.p_value, None
    if slower:
        return "regression", test.p_value, severity_of(change_pct, threshold_pct)
    return "improvement", test.p_value, None


def _find(run: BenchRun, suite: str, case: str) -> CaseResult | None:
    for result in run.results:
        if result.suite == suite and result.case == case:
            return result
    return None


def _machine_notes(baseline: BenchRun, current: BenchRun) -> list[str]:
    notes = []
    for key in MACHINE_KEYS:
        before, after = baseline.machine.get(key), current.machine.get(key)
        if before is not None and after is not None and before != after:
            notes.append(f"{key} differs: {before} in the baseline, {after} now")
    a, b = baseline.settings, current.settings
    for name in ("mode", "repeat", "trial_ms", "size", "messages"):
        before, after = getattr(a, name), getattr(b, name)
        if before != after:
            notes.append(f"setting {name} differs: {before} in the baseline, {after} now")
    return notes


def _missing(baseline: BenchRun, current: BenchRun, gate: Collection[Role]) -> list[str]:
    """The gated contenders measured in ``baseline`` but not in ``current``."""
    missing = []
    for case in baseline.results:
        now = _find(current, case.suite, case.case)
        for before in case.contenders:
            if before.role not in gate or not before.ok:
                continue
            after = now.contender(before.name) if now is not None else None
            if after is None or not after.ok:
                missing.append(f"{case.suite}: {case.case}: {before.name}")
    return missing


def compare_runs(
    baseline: BenchRun,
    current: BenchRun,
    threshold_pct: float = DEFAULT_THRESHOLD_PCT,
    *,
    gate: Collection[Role] = KAELIX_ONLY,
    alpha: float = ALPHA,
) -> Comparison:
    """Every figure of every contender measured in both runs, with its verdict.

    Cases are matched by suite and case name, contenders by name; ``gate`` picks the roles
    whose regressions count (`Comparison.regressions`). Raises ValueError for a threshold
    that is not positive or an alpha outside (0, 1).
    """
    if not threshold_pct > 0:
        raise ValueError(f"threshold_pct must be a positive percentage; got {threshold_pct!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1; got {alpha!r}")
    missing = _missing(baseline, current, gate)
    changes: list[Change] = []
    for case in current.results:
        before_case = _find(baseline, case.suite, case.case)
        if before_case is None:
            continue
        for result in case.contenders:
            before = before_case.contender(result.name)
            if before is None:
                continue
            old = {metric: (value, trials) for metric, value, trials in _figures(before)}
            for metric, value, trials in _figures(result):
                if metric not in old or old[metric][0] <= 0 or value <= 0:
                    continue
                base_value, base_trials = old[metric]
                change_pct = (value / base_value - 1.0) * 100.0
                verdict, p_value, severity = judge(
                    base_trials, trials, change_pct, threshold_pct, alpha
                )
                changes.append(
                    Change(
                        suite=case.suite,
                        case=case.case,
                        contender=result.name,
                        role=result.role,
                        metric=metric,
                        baseline=base_value,
                        current=value,
                        baseline_trials=base_trials,
                        current_trials=trials,
                        threshold=threshold_pct,
                        p_value=p_value,
                        verdict=verdict,
                        severity=severity,
                    )
                )
    return Comparison(
        baseline=baseline,
        current=current,
        threshold_pct=threshold_pct,
        changes=tuple(changes),
        gate=tuple(gate),
        missing=tuple(missing),
        alpha=alpha,
        notes=tuple(_machine_notes(baseline, current)),
    )


def compare(
    baseline: BenchRun, current: BenchRun, threshold_pct: float = DEFAULT_THRESHOLD_PCT
) -> list[PerformanceRegression]:
    """The regressions of ``current`` against ``baseline``: kaelix contenders whose time per
    message (or, in latency cases, p50 or p99) is worse by more than ``threshold_pct``
    percent *and* significantly so over the trials (one-sided Mann-Whitney U, p <= 0.05).
    `compare_runs` gives every figure with its verdict, improvements included.

    >>> from kaelix.bench import compare, run
    >>> before = run(["codec"], select="crc32c")             # doctest: +SKIP
    >>> compare(before, run(["codec"], select="crc32c"))     # doctest: +SKIP
    []
    """
    return list(compare_runs(baseline, current, threshold_pct).regressions)


# --------------------------------------------------------------------------------- showing

COLUMNS = ("case", "contender", "metric", "baseline", "current", "change", "p", "verdict")
_RIGHT = (False, False, False, True, True, True, True, False)
_METRIC_TEXT = {"time": "time/msg", "p50": "p50", "p99": "p99"}


def change_text(change_pct: float) -> str:
    """A change as a signed percentage: ``+4.1%``, ``+200%``, ``−12%``."""
    number = f"{change_pct:+.1f}%" if abs(change_pct) < 10 else f"{change_pct:+.0f}%"
    return number.replace("-", "\u2212")


def p_text(p_value: float | None) -> str:
    """A p-value with three decimals (``<0.001`` below), or a dash when none was computed."""
    if p_value is None:
        return DASH
    return "<0.001" if p_value < 0.001 else f"{p_value:.3f}"


def verdict_text(change: Change) -> str:
    """The verdict as the table shows it: ``regression (critical)``, ``improvement``, ..."""
    if change.verdict == "regression" and change.severity is not None:
        return f"regression ({change.severity})"
    return change.verdict


def comparison_rows(comparison: Comparison) -> list[tuple[str, ...]]:
    """One row of `COLUMNS` per gated change."""
    return [
        (
            change.case,
            change.contender,
            _METRIC_TEXT[change.metric],
            format_time(change.baseline),
            format_time(change.current),
            change_text(change.change_pct),
            p_text(change.p_value),
            verdict_text(change),
        )
        for change in comparison.gated
    ]


def _label(run: BenchRun) -> str:
    commit = run.machine.get("git_commit")
    text = f"run of {run.created}"
    if commit:
        text += f", commit {str(commit)[:12]}" + (
            " (modified)" if run.machine.get("git_dirty") else ""
        )
    return text


def heading(comparison: Comparison) -> str:
    """The line above the comparison table: what is compared and how."""
    roles = " and ".join(comparison.gate)
    return (
        f"Compared with the baseline ({_label(comparison.baseline)}): {roles} contenders; a "
        f"regression is a change worse than {comparison.threshold_pct:g}% that a one-sided "
        f"Mann-Whitney U test over the trials finds significant (p \u2264 {comparison.alpha:g})"
    )


def summary_lines(comparison: Comparison) -> list[str]:
    """The counts of each verdict, the severities, what went missing, the context figures
    and the notes on differing machines or settings."""
    gated = comparison.gated
    regressions = comparison.regressions
    counts = {
        verdict: sum(1 for c in gated if c.verdict == verdict)
        for verdict in ("improvement", "same", "not significant", "too few trials")
    }
    severities = [
        f"{sum(1 for r in regressions if r.severity == s)} {s}"
        for _, s in SEVERITY_STEPS
        if any(r.severity == s for r in regressions)
    ]
    lines = [
        f"regressions: {len(regressions)}"
        + (f" ({', '.join(severities)})" if severities else "")
        + f" \u00b7 improvements: {counts['improvement']} \u00b7 within "
        f"{comparison.threshold_pct:g}%: {counts['same']} \u00b7 not significant: "
        f"{counts['not significant']} \u00b7 too few trials: {counts['too few trials']}"
    ]
    for regression in regressions:
        lines.append(
            f"  \u2717 {regression.severity} regression: {regression.benchmark}: "
            f"{_METRIC_TEXT[regression.metric]} {format_time(regression.baseline)} \u2192 "
            f"{format_time(regression.current)} ({change_text(regression.change_pct)}, "
            f"p {p_text(regression.p_value)})"
        )
    if counts["too few trials"]:
        least = next(n for n in range(1, 100) if smallest_p_value(n, n) <= comparison.alpha)
        lines.append(
            f"  too few trials: the smallest p-value n against m trials can give is "
            f"1 / comb(n + m, n); p \u2264 {comparison.alpha:g} takes {least} trials in each run "
            "(a one-off cost has one): use --repeat or --full"
        )
    if comparison.missing:
        lines.append(
            "  measured in the baseline, not in this run: " + ", ".join(comparison.missing)
        )
    context = comparison.context
    if context:
        slower = sum(1 for c in context if c.verdict == "regression")
        faster = sum(1 for c in context if c.verdict == "improvement")
        lines.append(
            f"  peers and reference lines (context, never a failure): {slower} slower and "
            f"{faster} faster beyond {comparison.threshold_pct:g}% (significant), of "
            f"{len(context)} figures"
            + (": the machine itself may have changed" if slower + faster else "")
        )
    for note in comparison.notes:
        lines.append(f"  note: {note}")
    if not gated:
        lines.append("  no contender was measured in both runs: nothing to compare")
    return lines


def render_comparison(comparison: Comparison) -> str:
    """The comparison as plain aligned text: heading, table, summary."""
    rows = [COLUMNS, *comparison_rows(comparison)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    rows.insert(1, tuple("-" * w for w in widths))
    out = [heading(comparison)]
    if len(rows) > 2:
        for row in rows:
            cells = [
                cell.rjust(width) if right else cell.ljust(width)
                for cell, width, right in zip(row, widths, _RIGHT, strict=True)
            ]
            out.append("  ".join(cells).rstrip())
    out.extend(summary_lines(comparison))
    return "\n".join(out) + "\n"


_VERDICT_STYLE = {
    "regression": "bold red",
    "improvement": "green",
    "same": "",
    "not significant": "yellow",
    "too few trials": "yellow",
}


def print_comparison(
    comparison: Comparison, *, file: IO[str] | None = None, plain: bool = False
) -> None:
    """Print the comparison to ``file`` (stdout by default): a rich table when rich is
    installed and ``plain`` is false, else `render_comparison`."""
    from kaelix.bench._report import terminal_width, use_rich

    stream = sys.stdout if file is None else file
    if not use_rich(plain):
        stream.write("\n" + render_comparison(comparison))
        stream.flush()
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=stream, width=max(100, terminal_width(stream)))
    console.print()
    console.print(Text(heading(comparison), style="bold"), soft_wrap=True)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for name, right in zip(COLUMNS, _RIGHT, strict=True):
        table.add_column(name, justify="right" if right else "left", no_wrap=right)
    for change, row in zip(comparison.gated, comparison_rows(comparison), strict=True):
        style = _VERDICT_STYLE[change.verdict]
        table.add_row(*row[:-1], Text(row[-1], style=style))
    if comparison.gated:
        console.print(table)
    for index, line in enumerate(summary_lines(comparison)):
        style = "bold" if index == 0 else ("red" if "\u2717" in line else "yellow")
        console.print(Text(line, style=style), soft_wrap=True)


__all__ = [
    "ALPHA",
    "DEFAULT_THRESHOLD_PCT",
    "SEVERITY_STEPS",
    "Change",
    "ComparedMetric",
    "Comparison",
    "PerformanceRegression",
    "Severity",
    "Verdict",
    "compare",
    "compare_runs",
    "judge",
    "print_comparison",
    "render_comparison",
    "severity_of",
]
