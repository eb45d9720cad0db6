"""A `BenchRun` as one self-contained HTML page: the machine and run header, the ``DESIGN.md``
bars met and missed, then per suite and case a chart of every contender's throughput (or a
latency percentile chart, or a time chart for one-off costs), the case's table with the same
figures as the terminal report and the contenders that did not run and why, and kaelix's
speedup over the fastest peer in large type; with a baseline run, each figure's change; with
earlier runs, a trend chart of kaelix's figure per case.

The page needs no network and no script: CSS is inline and every chart is an inline SVG
drawn here. Also holds the baseline comparison (`figure`, `compare`, `Delta`) that the
Markdown summary shares. Imports the standard library and the bench's own formatting, model
and report modules only; never kaelix, numpy, numba, rich or a peer.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Literal

from kaelix.bench._format import (
    DASH,
    MICRO,
    format_bytes,
    format_messages,
    format_percentile,
    format_rate,
    format_speedup,
    format_time,
    mark,
)
from kaelix.bench._model import (
    LATENCY_PERCENTILES,
    BarCheck,
    BenchRun,
    CaseResult,
    ContenderResult,
    Role,
)
from kaelix.bench._report import (
    CAVEAT,
    NOISY_IQR,
    case_met,
    case_rows,
    note_lines,
    suites_in,
)

DELTA_THRESHOLD = 0.05
"""A change against the baseline beyond this fraction is called worse or better."""

LOG_SCALE_SPAN = 20.0
"""A bar chart whose values span more than this factor uses a logarithmic axis."""

Metric = Literal["throughput", "p99", "time"]
Verdict = Literal["worse", "better", "same"]

# ------------------------------------------------------------------------------ comparisons


@dataclass(frozen=True)
class Figure:
    """The one number a contender is compared and trended by: its throughput in the case's
    unit (higher is better), its p99 latency for a latency case, or its time per operation
    when it measures no rate (a one-off cost); both lower is better."""

    metric: Metric
    value: float
    unit: Literal["msg/s", "B/s", "ns"]

    @property
    def higher_is_better(self) -> bool:
        """True for throughput, False for latency and time."""
        return self.metric == "throughput"

    def text(self) -> str:
        """The figure with its unit (``21.0 M msg/s``, ``12.9 µs``)."""
        if self.unit == "ns":
            return format_time(self.value)
        return format_rate(self.value, self.unit)


def figure(case: CaseResult, result: ContenderResult | None) -> Figure | None:
    """The `Figure` of ``result`` in ``case``, or None when it was not measured."""
    if result is None or not result.ok:
        return None
    if case.throughput == "latency":
        if result.latency is None or result.latency.p99_ns <= 0:
            return None
        return Figure("p99", result.latency.p99_ns, "ns")
    rate = rate_of(case, result)
    if rate is not None:
        return Figure("throughput", rate, rate_unit(case))
    ns = result.median_ns
    return Figure("time", ns, "ns") if ns is not None and ns > 0 else None


def rate_unit(case: CaseResult) -> Literal["msg/s", "B/s"]:
    """The rate a case's chart shows: bytes/s for a ``"bytes"`` case, else messages/s (a
    ``"both"`` case shows messages/s; every contender handles the same bytes per message, so
    its ratios are the same in either unit)."""
    return "B/s" if case.throughput == "bytes" else "msg/s"


def rate_of(case: CaseResult, result: ContenderResult) -> float | None:
    """The contender's median rate in `rate_unit`, or None when it measures none."""
    rate = result.bytes_per_s if rate_unit(case) == "B/s" else result.messages_per_s
    return rate if rate is not None and rate > 0 else None


@dataclass(frozen=True)
class Delta:
    """The change of one contender's `Figure` between a baseline run and this run."""

    suite: str
    case: str
    contender: str
    role: Role
    before: Figure
    after: Figure

    @property
    def change(self) -> float:
        """The relative change, after / before - 1 (+0.10 is ten percent more)."""
        return self.after.value / self.before.value - 1.0

    @property
    def verdict(self) -> Verdict:
        """``worse`` or ``better`` beyond `DELTA_THRESHOLD`, else ``same``."""
        change = self.change if self.after.higher_is_better else -self.change
        if change < -DELTA_THRESHOLD:
            return "worse"
        if change > DELTA_THRESHOLD:
            return "better"
        return "same"

    def text(self) -> str:
        """The change as a signed percentage with its metric: ``+4.1%``, ``p99 −12%``."""
        percent = round(self.change * 100, 1)
        number = f"{percent:+.1f}%" if abs(percent) < 10 else f"{percent:+.0f}%"
        number = number.replace("-", "\u2212")
        return number if self.after.metric == "throughput" else f"{self.after.metric} {number}"


def compare(case: CaseResult, baseline: BenchRun | None) -> dict[str, Delta]:
    """The `Delta` of every contender measured in ``case`` and in the same case of
    ``baseline`` (matched by suite, case and contender name), keyed by contender name."""
    if baseline is None:
        return {}
    before_case = find_case(baseline, case.suite, case.case)
    if before_case is None:
        return {}
    deltas: dict[str, Delta] = {}
    for result in case.contenders:
        after = figure(case, result)
        before = figure(before_case, before_case.contender(result.name))
        if after is None or before is None or before.metric != after.metric:
            continue
        deltas[result.name] = Delta(case.suite, case.case, result.name, result.role, before, after)
    return deltas


def find_case(run: BenchRun, suite: str, case: str) -> CaseResult | None:
    """The case of ``run`` with this suite and name, or None."""
    for result in run.results:
        if result.suite == suite and result.case == case:
            return result
    return None


def run_label(run: BenchRun) -> str:
    """A short name for a run: its git commit (``f3ca212``, ``*`` when modified) or its date."""
    commit = run.machine.get("git_commit")
    if commit:
        return str(commit)[:7] + ("*" if run.machine.get("git_dirty") else "")
    return format_date(run.created, short=True)


def format_date(created: str, *, short: bool = False) -> str:
    """An ISO timestamp as ``2026-11-25 15:56 UTC`` (``11-25 15:56`` when ``short``)."""
    try:
        moment = datetime.fromisoformat(created)
    except ValueError:
        return created
    if short:
        return moment.strftime("%m-%d %H:%M")
    zone = moment.strftime("%Z")
    return moment.strftime("%Y-%m-%d %H:%M") + (f" {zone}" if zone else "")


# ------------------------------------------------------------------------------ SVG drawing

INK = "#0f172a"
MUTED = "#64748b"
GRID = "#e2e8f0"
ACCENT = "#2563eb"
PEER = "#94a3b8"
GOOD = "#15803d"
BAD = "#b91c1c"
WARN = "#b45309"
KAELIX_SHADES = ("#2563eb", "#60a5fa", "#1e3a8a", "#93c5fd", "#3b82f6", "#1d4ed8")
PEER_HUES = ("#ea580c", "#7c3aed", "#0d9488", "#db2777", "#ca8a04", "#475569")
REFERENCE_LINE = "#94a3b8"
_VERDICT_COLOUR = {"worse": BAD, "better": GOOD, "same": MUTED}


def _n(value: float) -> str:
    """An SVG coordinate: one decimal, no trailing zeros."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _text_width(text: str, size: float = 12.0) -> float:
    """A generous estimate of the width of ``text`` in a sans-serif font of ``size`` px."""
    return len(text) * size * 0.6


def _trim(number: str) -> str:
    """``20.0`` to ``20``, ``1.50`` to ``1.5``: tick labels carry no trailing zeros."""
    if "." in number:
        number = number.rstrip("0").rstrip(".")
    return number


def compact_rate(value: float, unit: str) -> str:
    """A tick label for a rate: ``20 M``, ``1.5 G``, ``10 GB/s`` (``unit`` is kept only for
    bytes, whose prefix reads as a unit), and ``0`` for zero."""
    if value == 0:
        return "0"
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale * 0.9995:
            number = _trim(f"{value / scale:.2f}")
            return f"{number} {prefix}B/s" if unit == "B/s" else f"{number} {prefix}"
    number = _trim(f"{value:.2f}")
    return f"{number} B/s" if unit == "B/s" else number


def compact_time(ns: float) -> str:
    """A tick label for a duration: ``100 ns``, ``1 µs``, ``2.5 ms``."""
    for limit, scale, unit in ((1e3, 1.0, "ns"), (1e6, 1e3, f"{MICRO}s"), (1e9, 1e6, "ms")):
        if ns < limit * 0.9995:
            return f"{_trim(f'{ns / scale:.2f}')} {unit}"
    return f"{_trim(f'{ns / 1e9:.2f}')} s"


@dataclass(frozen=True)
class Scale:
    """Maps values in [lo, hi] to pixels in [start, end], linearly or logarithmically."""

    lo: float
    hi: float
    start: float
    end: float
    log: bool

    def __call__(self, value: float) -> float:
        value = min(max(value, self.lo), self.hi)
        if self.log:
            span = math.log10(self.hi) - math.log10(self.lo)
            fraction = (math.log10(value) - math.log10(self.lo)) / span if span else 0.0
        else:
            fraction = (value - self.lo) / (self.hi - self.lo) if self.hi > self.lo else 0.0
        return self.start + fraction * (self.end - self.start)

    def ticks(self) -> list[float]:
        """Tick values inside the domain: decades (with 2× and 5× when few) on a log scale,
        steps of 1, 2 or 5 × 10^k on a linear one."""
        if self.log:
            first, last = math.ceil(math.log10(self.lo) - 1e-9), math.floor(math.log10(self.hi))
            decades = [10.0**k for k in range(first, last + 1)]
            if len(decades) >= 3:
                return decades
            steps = [m * 10.0**k for k in range(first - 1, last + 1) for m in (1.0, 2.0, 5.0)]
            return [v for v in steps if self.lo <= v * (1 + 1e-9) and v <= self.hi * (1 + 1e-9)]
        step = nice_step(self.hi - self.lo, 5)
        start = math.ceil(self.lo / step - 1e-9) * step
        count = int((self.hi - start) / step + 1e-9) + 1
        return [start + i * step for i in range(count)]


def nice_step(span: float, count: int) -> float:
    """A step of 1, 2, 2.5 or 5 × 10^k that cuts ``span`` into about ``count`` parts."""
    if span <= 0:
        return 1.0
    raw = span / count
    power = 10.0 ** math.floor(math.log10(raw))
    for multiple in (1.0, 2.0, 2.5, 5.0, 10.0):
        if raw <= multiple * power:
            return multiple * power
    return 10.0 * power


def _log_domain(values: Iterable[float], *, headroom: float = 1.0) -> tuple[float, float]:
    """A log-axis domain: from the decade at or below the smallest value to the largest
    times ``headroom``, so the shortest bar still shows."""
    data = [v for v in values if v > 0]
    lo = 10.0 ** math.floor(math.log10(min(data) * 0.8))
    hi = max(data) * headroom
    return lo, max(hi, lo * 10)


def _svg_open(kind: str, width: float, height: float, label: str) -> str:
    return (
        f'<svg class="chart" data-chart="{kind}" '
        f'viewBox="0 0 {_n(width)} {_n(height)}" width="{_n(width)}" height="{_n(height)}" '
        f'role="img" aria-label="{_e(label)}"><title>{_e(label)}</title>'
    )


@dataclass(frozen=True)
class _Bar:
    name: str
    role: Role
    value: float
    low: float
    high: float
    value_text: str
    ratio_text: str
    tooltip: str
    delta: Delta | None = None
    baseline: float | None = None


@dataclass(frozen=True)
class _Threshold:
    value: float
    label: str
    met: bool | None


def _bar_fill(role: Role) -> str:
    if role == "kaelix":
        return f'fill="{ACCENT}"'
    if role == "reference":
        return f'fill="#ffffff" stroke="{PEER}" stroke-width="1.2" stroke-dasharray="4 3"'
    return f'fill="{PEER}"'


def bar_chart(
    bars: Sequence[_Bar],
    *,
    kind: Literal["throughput", "time"],
    axis_title: str,
    tick_label: Callable[[float], str],
    thresholds: Sequence[_Threshold] = (),
    width: float = 760.0,
) -> str:
    """A horizontal bar chart, one bar per contender with its IQR whisker, value label and
    ratio, kaelix in the accent colour, peers grey, reference lines dashed outlines."""
    values = [v for bar in bars for v in (bar.low, bar.value, bar.high) if v > 0]
    values += [t.value for t in thresholds]
    log = max(values) / min(values) > LOG_SCALE_SPAN
    row_height, bar_height = 34.0, 18.0
    top = 14.0 + 15.0 * len(thresholds)
    bottom = 40.0
    height = top + row_height * len(bars) + bottom
    left = min(max(max(_text_width(bar.name, 12.5) for bar in bars) + 18, 110.0), 300.0)

    if log:
        lo, hi = _log_domain(values, headroom=1.12)
    else:
        lo, hi = 0.0, max(values) * 1.06

    def fraction(value: float) -> float:
        return Scale(lo, hi, 0.0, 1.0, log)(value)

    labels = [_bar_label_text(bar) for bar in bars]
    room = width - left - 8
    reserve = 60.0
    for bar, label in zip(bars, labels, strict=True):
        f = fraction(max(bar.high, bar.value, bar.baseline or 0))
        need = _text_width(label, 12) + 10
        if f > 0:
            reserve = max(reserve, room - (room - need) / f)
    reserve = min(reserve, room * 0.6)
    scale = Scale(lo, hi, left, width - 8 - reserve, log)
    plot_bottom = top + row_height * len(bars)

    out = [_svg_open(kind, width, height, f"{axis_title} per contender")]
    # grid and axis
    for tick in scale.ticks():
        x = scale(tick)
        out.append(
            f'<line class="grid" x1="{_n(x)}" y1="{_n(top - 4)}" x2="{_n(x)}" '
            f'y2="{_n(plot_bottom)}" stroke="{GRID}" stroke-width="1"/>'
            f'<text class="tick" x="{_n(x)}" y="{_n(plot_bottom + 16)}" '
            f'text-anchor="middle">{_e(tick_label(tick))}</text>'
        )
    out.append(
        f'<line x1="{_n(left)}" y1="{_n(top - 4)}" x2="{_n(left)}" y2="{_n(plot_bottom)}" '
        f'stroke="{MUTED}" stroke-width="1"/>'
        f'<text class="axis-title" x="{_n(scale.end)}" y="{_n(plot_bottom + 34)}" '
        f'text-anchor="end">{_e(axis_title)}{" · log scale" if log else ""}</text>'
    )
    # bar thresholds from DESIGN.md, each label on its own line above the rows
    for index, threshold in enumerate(thresholds):
        x = scale(threshold.value)
        colour = {True: GOOD, False: BAD, None: WARN}[threshold.met]
        y_label = 12.0 + 15.0 * index
        anchor, dx = ("end", -4) if x > width - 160 else ("start", 4)
        out.append(
            f'<g class="threshold" data-met="{_e(threshold.met)}">'
            f'<line x1="{_n(x)}" y1="{_n(y_label - 9)}" x2="{_n(x)}" y2="{_n(plot_bottom)}" '
            f'stroke="{colour}" stroke-width="1.5" stroke-dasharray="5 3"/>'
            f'<text class="threshold-label" x="{_n(x + dx)}" y="{_n(y_label)}" '
            f'text-anchor="{anchor}" style="fill:{colour}">{_e(threshold.label)}</text></g>'
        )
    for index, bar in enumerate(bars):
        y = top + row_height * index + (row_height - bar_height) / 2
        centre = y + bar_height / 2
        end = scale(bar.value)
        kaelix = bar.role == "kaelix"
        out.append(
            f'<g class="bar {bar.role}" data-contender="{_e(bar.name)}" data-role="{bar.role}" '
            f'data-value="{bar.value:.6g}"><title>{_e(bar.tooltip)}</title>'
        )
        name_class = "name kaelix" if kaelix else "name"
        if bar.role == "reference":
            out.append(
                f'<text class="{name_class}" x="{_n(left - 10)}" y="{_n(centre - 2)}" '
                f'text-anchor="end">{_e(bar.name)}</text>'
                f'<text class="role-tag" x="{_n(left - 10)}" y="{_n(centre + 10)}" '
                f'text-anchor="end">reference</text>'
            )
        else:
            out.append(
                f'<text class="{name_class}" x="{_n(left - 10)}" y="{_n(centre + 4)}" '
                f'text-anchor="end">{_e(bar.name)}</text>'
            )
        out.append(
            f'<rect x="{_n(left)}" y="{_n(y)}" width="{_n(max(end - left, 1.5))}" '
            f'height="{_n(bar_height)}" rx="3" {_bar_fill(bar.role)}/>'
        )
        x_low, x_high = scale(bar.low), scale(bar.high)
        if x_high - x_low >= 1.0:
            out.append(
                f'<g class="whisker" stroke="{INK}" stroke-width="1.2" opacity="0.75">'
                f'<line x1="{_n(x_low)}" y1="{_n(centre)}" x2="{_n(x_high)}" y2="{_n(centre)}"/>'
                f'<line x1="{_n(x_low)}" y1="{_n(centre - 4)}" x2="{_n(x_low)}" '
                f'y2="{_n(centre + 4)}"/><line x1="{_n(x_high)}" y1="{_n(centre - 4)}" '
                f'x2="{_n(x_high)}" y2="{_n(centre + 4)}"/></g>'
            )
        label_x = max(end, x_high)
        if bar.baseline is not None:
            x_base = scale(bar.baseline)
            label_x = max(label_x, x_base)
            out.append(
                f'<line class="baseline-mark" x1="{_n(x_base)}" y1="{_n(y - 4)}" '
                f'x2="{_n(x_base)}" y2="{_n(y + bar_height + 4)}" stroke="{INK}" '
                f'stroke-width="2.2"><title>baseline: '
                f"{_e(bar.delta.before.text() if bar.delta else '')}</title></line>"
            )
        out.append(
            f'<text class="value halo" x="{_n(label_x + 8)}" y="{_n(centre + 4)}">'
            f'<tspan class="figure{" kaelix" if kaelix else ""}">{_e(bar.value_text)}</tspan>'
        )
        if bar.ratio_text:
            out.append(f'<tspan class="ratio" dx="8">{_e(bar.ratio_text)}</tspan>')
        if bar.delta is not None and bar.delta.verdict != "same":
            colour = _VERDICT_COLOUR[bar.delta.verdict]
            out.append(
                f'<tspan class="delta {bar.delta.verdict}" dx="8" style="fill:{colour}">'
                f"{_e(bar.delta.text())}</tspan>"
            )
        out.append("</text></g>")
    out.append("</svg>")
    return "".join(out)


def _bar_label_text(bar: _Bar) -> str:
    delta = bar.delta.text() if bar.delta and bar.delta.verdict != "same" else ""
    parts = [bar.value_text, bar.ratio_text, delta]
    return "  ".join(p for p in parts if p)


def _nines(percentile: float) -> float:
    """The position of a percentile on a "nines" axis: p90 is 1, p99 2, p99.9 3."""
    return -math.log10(1.0 - percentile / 100.0)


def _series_colours(results: Sequence[ContenderResult]) -> dict[str, str]:
    colours: dict[str, str] = {}
    kaelix = peers = 0
    for result in results:
        if result.role == "kaelix":
            colours[result.name] = KAELIX_SHADES[kaelix % len(KAELIX_SHADES)]
            kaelix += 1
        elif result.role == "peer":
            colours[result.name] = PEER_HUES[peers % len(PEER_HUES)]
            peers += 1
        else:
            colours[result.name] = REFERENCE_LINE
    return colours


def _spread_labels(wanted: Sequence[float], gap: float, low: float, high: float) -> list[float]:
    """Label positions as close to ``wanted`` as possible, at least ``gap`` apart, inside
    [low, high] (direct labels at the ends of lines that end close together)."""
    order = sorted(range(len(wanted)), key=lambda i: wanted[i])
    placed = [0.0] * len(wanted)
    previous = -math.inf
    for i in order:
        placed[i] = max(wanted[i], previous + gap)
        previous = placed[i]
    overflow = previous - high
    if overflow > 0:
        for i in order:
            placed[i] -= overflow
        placed_sorted = sorted(placed)
        if placed_sorted and placed_sorted[0] < low:
            shift = low - placed_sorted[0]
            placed = [p + shift for p in placed]
    return placed


MAX_POSITION = 4.0
"""Where the maximum sits on the nines axis: one step after p99.9. The maximum of n samples
is near nines log10(n), but no percentile between p99.9 and it is recorded, so the segment
to it is drawn dashed instead of stretching an empty axis."""


def latency_chart(
    case: CaseResult, baseline_case: CaseResult | None = None, *, width: float = 860.0
) -> str:
    """One-way latency against percentile on a "nines" axis (p50, p90, p99, p99.9, then the
    maximum one step further, reached by a dashed segment), latency on a log axis, one line
    per contender labelled at its end; a ``max_latency`` bar is a target mark at its
    percentile; the baseline's kaelix lines, when given, are drawn faint behind."""
    results = [r for r in case.contenders if r.ok and r.latency is not None]
    colours = _series_colours(results)
    samples = max((r.latency.samples for r in results if r.latency is not None), default=1)
    positions = [_nines(p) for p in LATENCY_PERCENTILES[:-1]] + [MAX_POSITION]

    before: list[ContenderResult] = []
    if baseline_case is not None:
        before = [
            r
            for r in baseline_case.contenders
            if r.role == "kaelix" and r.ok and r.latency is not None
        ]
    values = [
        r.latency.at(p)
        for r in (*results, *before)
        if r.latency is not None
        for p in LATENCY_PERCENTILES
    ]
    values += [c.bar.value for c in case.bars if c.bar.kind == "max_latency"]
    values = [v for v in values if v > 0] or [1.0]
    lo = 10.0 ** math.floor(math.log10(min(values)))
    hi = 10.0 ** math.ceil(math.log10(max(values)))
    hi = max(hi, lo * 10)

    label_width = max(
        (
            _text_width(f"{r.name} {format_time(r.latency.max_ns)}", 12)
            for r in results
            if r.latency is not None
        ),
        default=60.0,
    )
    left, right, top, bottom = 70.0, min(label_width + 24, 320.0), 30.0, 48.0
    height = 380.0
    x_scale = Scale(0.0, MAX_POSITION, left + 14, width - right, False)
    y_scale = Scale(lo, hi, height - bottom, top, True)

    out = [_svg_open("latency", width, height, "one-way latency by percentile per contender")]
    for tick in y_scale.ticks():
        y = y_scale(tick)
        out.append(
            f'<line class="grid" x1="{_n(left)}" y1="{_n(y)}" x2="{_n(width - right)}" '
            f'y2="{_n(y)}" stroke="{GRID}"/><text class="tick" x="{_n(left - 8)}" '
            f'y="{_n(y + 4)}" text-anchor="end">{_e(compact_time(tick))}</text>'
        )
    for x, percentile in zip(positions, LATENCY_PERCENTILES, strict=True):
        px = x_scale(x)
        out.append(
            f'<line class="grid" x1="{_n(px)}" y1="{_n(top)}" x2="{_n(px)}" '
            f'y2="{_n(height - bottom)}" stroke="{GRID}"/><text class="tick" x="{_n(px)}" '
            f'y="{_n(height - bottom + 16)}" text-anchor="middle">'
            f"{_e(format_percentile(percentile))}</text>"
        )
    out.append(
        f'<line x1="{_n(left)}" y1="{_n(height - bottom)}" x2="{_n(width - right)}" '
        f'y2="{_n(height - bottom)}" stroke="{MUTED}"/>'
        f'<text class="axis-title" x="{_n(width - right)}" y="{_n(height - 10)}" '
        f'text-anchor="end">percentile, "nines" axis (max of {samples:,} messages)</text>'
        f'<text class="axis-title" x="{_n(left)}" y="{_n(top - 14)}" text-anchor="start">'
        f"one-way latency · log scale · lower is better</text>"
    )

    def path(result: ContenderResult) -> tuple[str, str]:
        """The solid path through the percentiles and the dashed step to the maximum."""
        assert result.latency is not None
        points = [
            f"{_n(x_scale(x))},{_n(y_scale(result.latency.at(p)))}"
            for x, p in zip(positions, LATENCY_PERCENTILES, strict=True)
        ]
        return "M" + " L".join(points[:-1]), f"M{points[-2]} L{points[-1]}"

    for result in before:
        solid, dashed = path(result)
        out.append(
            f'<g class="series baseline" data-contender="{_e(result.name)}">'
            f"<title>baseline: {_e(result.name)}</title>"
            f'<path d="{solid} {dashed}" fill="none" stroke="{INK}" stroke-width="1.4" '
            f'stroke-dasharray="2 3" opacity="0.5"/></g>'
        )
    # peers and references first, kaelix last so that it sits on top
    ordered = sorted(results, key=lambda r: r.role == "kaelix")
    ends = _spread_labels(
        [y_scale(r.latency.max_ns) for r in ordered if r.latency is not None],
        15.0,
        top,
        height - bottom,
    )
    for result, label_y in zip(ordered, ends, strict=True):
        assert result.latency is not None
        colour = colours[result.name]
        kaelix = result.role == "kaelix"
        stroke = f'stroke="{colour}" stroke-width="{2.8 if kaelix else 1.8}" fill="none"'
        dash = ' stroke-dasharray="6 4"' if result.role == "reference" else ""
        solid, dashed = path(result)
        out.append(
            f'<g class="series {result.role}" data-contender="{_e(result.name)}" '
            f'data-role="{result.role}"><path d="{solid}" {stroke}{dash} '
            f'stroke-linejoin="round"/><path class="to-max" d="{dashed}" {stroke} '
            f'stroke-dasharray="2 4" opacity="0.8"/>'
        )
        for x, p in zip(positions, LATENCY_PERCENTILES, strict=True):
            value = result.latency.at(p)
            out.append(
                f'<circle cx="{_n(x_scale(x))}" cy="{_n(y_scale(value))}" '
                f'r="{3.8 if kaelix else 3}" fill="{colour}" stroke="#fff" stroke-width="1">'
                f"<title>{_e(result.name)} {format_percentile(p)}: {format_time(value)}"
                f"</title></circle>"
            )
        x_end = x_scale(MAX_POSITION)
        out.append(
            f'<text class="series-label{" kaelix" if kaelix else ""}" x="{_n(x_end + 12)}" '
            f'y="{_n(label_y + 4)}" style="fill:{colour}">{_e(result.name)} '
            f'<tspan class="muted">{_e(format_time(result.latency.max_ns))}</tspan></text></g>'
        )
    for check in case.bars:
        if check.bar.kind != "max_latency" or check.bar.percentile is None:
            continue
        index = LATENCY_PERCENTILES.index(check.bar.percentile)
        px, py = x_scale(positions[index]), y_scale(check.bar.value)
        colour = {True: GOOD, False: BAD, None: WARN}[check.met]
        out.append(
            f'<g class="threshold" data-met="{_e(check.met)}"><title>bar {_e(check.bar.text)} '
            f"{mark(check.met)}: {_e(check.detail)}</title>"
            f'<line x1="{_n(px - 14)}" y1="{_n(py)}" x2="{_n(px + 14)}" y2="{_n(py)}" '
            f'stroke="{colour}" stroke-width="3" stroke-linecap="round"/>'
            f'<text class="threshold-label halo" x="{_n(px + 18)}" y="{_n(py + 4)}" '
            f'style="fill:{colour}">bar {_e(check.bar.text)} {mark(check.met)}</text></g>'
        )
    out.append("</svg>")
    return "".join(out)


def history_chart(
    case: CaseResult, runs: Sequence[BenchRun], *, width: float = 400.0, height: float = 216.0
) -> str | None:
    """kaelix's `Figure` in ``case`` across ``runs`` (oldest first, the current run last):
    x is the run (labelled with its commit, else its date), y the figure; gaps where a run
    lacks the case. None when fewer than two runs have a figure."""
    kaelix = case.kaelix
    if kaelix is None:
        return None
    points: list[tuple[int, BenchRun, Figure | None]] = []
    for index, past in enumerate(runs):
        past_case = find_case(past, case.suite, case.case)
        value = figure(past_case, past_case.contender(kaelix.name)) if past_case else None
        points.append((index, past, value))
    present = [p for p in points if p[2] is not None]
    if len(present) < 2:
        return None
    figures = [f for _, _, f in present if f is not None]
    unit = figures[-1].unit
    values = [f.value for f in figures]
    left, right, top, bottom = 62.0, 18.0, 18.0, 44.0
    spread = max(values) / min(values)
    log = spread > LOG_SCALE_SPAN
    if log:
        lo = 10.0 ** math.floor(math.log10(min(values)))
        hi = 10.0 ** math.ceil(math.log10(max(values)))
    else:
        pad = (max(values) - min(values)) * 0.15 or max(values) * 0.05
        step = nice_step(max(values) - min(values) + 2 * pad, 4)
        lo = max(0.0, math.floor((min(values) - pad) / step) * step)
        hi = math.ceil((max(values) + pad) / step) * step
    n = len(runs)
    x_scale = Scale(0.0, max(n - 1, 1), left + 8, width - right - 8, False)
    y_scale = Scale(lo, hi, height - bottom, top, log)
    metric = figures[-1].metric
    label = f"kaelix {metric} across {n} runs"
    out = [_svg_open("history", width, height, label)]

    def tick_text(value: float) -> str:
        return compact_time(value) if unit == "ns" else compact_rate(value, unit)

    for tick in y_scale.ticks():
        y = y_scale(tick)
        out.append(
            f'<line class="grid" x1="{_n(left)}" y1="{_n(y)}" x2="{_n(width - right)}" '
            f'y2="{_n(y)}" stroke="{GRID}"/><text class="tick" x="{_n(left - 8)}" '
            f'y="{_n(y + 4)}" text-anchor="end">{_e(tick_text(tick))}</text>'
        )
    every = max(1, math.ceil(n / 6))
    for index, past, _ in points:
        if index % every and index != n - 1:
            continue
        out.append(
            f'<text class="tick run-label" x="{_n(x_scale(index))}" '
            f'y="{_n(height - bottom + 16)}" text-anchor="middle">{_e(run_label(past))}</text>'
        )
    out.append(
        f'<line x1="{_n(left)}" y1="{_n(height - bottom)}" x2="{_n(width - right)}" '
        f'y2="{_n(height - bottom)}" stroke="{MUTED}"/>'
        f'<text class="axis-title" x="{_n(width - right)}" y="{_n(height - 8)}" '
        f'text-anchor="end">run (oldest → this run){" · log scale" if log else ""}</text>'
    )
    # one path segment per stretch of consecutive runs that have the figure
    segments: list[list[str]] = [[]]
    for index, _, value in points:
        if value is None:
            segments.append([])
            continue
        segments[-1].append(f"{_n(x_scale(index))},{_n(y_scale(value.value))}")
    out.append(f'<g class="series kaelix" data-contender="{_e(kaelix.name)}">')
    for segment in segments:
        if len(segment) >= 2:
            out.append(
                f'<path d="M{" L".join(segment)}" fill="none" stroke="{ACCENT}" '
                f'stroke-width="2.2" stroke-linejoin="round"/>'
            )
    for index, past, value in points:
        if value is None:
            continue
        last = index == n - 1
        out.append(
            f'<circle class="point" data-run="{index}" cx="{_n(x_scale(index))}" '
            f'cy="{_n(y_scale(value.value))}" r="{4.5 if last else 3.2}" '
            f'fill="{ACCENT if last else "#fff"}" stroke="{ACCENT}" stroke-width="1.8">'
            f"<title>{_e(format_date(past.created))} · {_e(run_label(past))} · "
            f"{_e(value.text())}</title></circle>"
        )
    out.append("</g></svg>")
    return "".join(out)


# --------------------------------------------------------------------------- case sections


def _rate_text(case: CaseResult, value: float) -> str:
    return format_bytes(value) if rate_unit(case) == "B/s" else format_messages(value)


def _thresholds(case: CaseResult, run: BenchRun) -> list[_Threshold]:
    """The case's rate bars as values in the chart's unit (a time per message becomes
    messages/s, a memcpy fraction becomes bytes/s and then messages/s through kaelix's bytes
    per message, which every contender shares)."""
    kaelix = case.kaelix
    unit = rate_unit(case)
    bytes_per_message = (
        kaelix.bytes_per_op / kaelix.messages_per_op
        if kaelix is not None and kaelix.messages_per_op > 0 and kaelix.bytes_per_op > 0
        else None
    )
    found: list[_Threshold] = []
    for check in case.bars:
        bar = check.bar
        label = f"bar {bar.text} {mark(check.met)}"
        messages: float | None = None
        nbytes: float | None = None
        if bar.kind == "min_messages_per_s":
            messages = bar.value
        elif bar.kind == "max_ns_per_message" and bar.value > 0:
            messages = 1e9 / bar.value
        elif bar.kind == "min_bytes_per_s":
            nbytes = bar.value
        elif bar.kind == "min_memcpy_fraction" and bar.reference:
            for reference in run.reference:
                if reference.case == bar.reference:
                    rate = next((r.bytes_per_s for r in reference.contenders if r.ok), None)
                    nbytes = bar.value * rate if rate else None
        if unit == "msg/s" and messages is None and nbytes is not None and bytes_per_message:
            messages = nbytes / bytes_per_message
        if unit == "B/s" and nbytes is None and messages is not None and bytes_per_message:
            nbytes = messages * bytes_per_message
        value = messages if unit == "msg/s" else nbytes
        if value is not None and value > 0:
            found.append(_Threshold(value, label, check.met))
    return found


def _ratio(case: CaseResult, result: ContenderResult) -> str:
    if result.role == "kaelix":
        return ""
    text = format_speedup(case.speedup(result.name))
    if text == DASH:
        return ""
    if case.throughput == "latency":
        text = text.replace(" faster", " lower p50").replace(" slower", " higher p50")
    return text


def case_chart(
    case: CaseResult, run: BenchRun, deltas: dict[str, Delta], baseline_case: CaseResult | None
) -> str | None:
    """The main chart of a case: latency percentiles for a latency case, else throughput
    bars, else (no contender measures a rate) time bars. None when nothing was measured."""
    if case.throughput == "latency":
        if not any(r.ok and r.latency is not None for r in case.contenders):
            return None
        return latency_chart(case, baseline_case)
    measured = [
        r for r in case.contenders if r.ok and r.timing is not None and r.timing.median_ns > 0
    ]
    rated = [r for r in measured if rate_of(case, r) is not None]
    bars: list[_Bar] = []
    if rated:
        unit = rate_unit(case)
        for result in rated:
            timing = result.timing
            rate = rate_of(case, result)
            assert timing is not None and rate is not None
            low = rate * timing.median_ns / timing.q3_ns if timing.q3_ns > 0 else rate
            high = rate * timing.median_ns / timing.q1_ns if timing.q1_ns > 0 else rate
            delta = deltas.get(result.name)
            tooltip = (
                f"{result.name}: {_rate_text(case, rate)}, {format_time(result.median_ns)} per "
                f"call, IQR {_rate_text(case, low)} to {_rate_text(case, high)}"
            )
            bars.append(
                _Bar(
                    result.name,
                    result.role,
                    rate,
                    low,
                    high,
                    _rate_text(case, rate),
                    _ratio(case, result),
                    tooltip,
                    delta,
                    delta.before.value if delta is not None else None,
                )
            )
        title = "bytes per second" if unit == "B/s" else "messages per second"
        return bar_chart(
            bars,
            kind="throughput",
            axis_title=f"{title}, higher is better",
            tick_label=lambda v: compact_rate(v, unit),
            thresholds=_thresholds(case, run),
        )
    if not measured:
        return None
    for result in measured:
        timing = result.timing
        assert timing is not None
        delta = deltas.get(result.name)
        bars.append(
            _Bar(
                result.name,
                result.role,
                timing.median_ns,
                timing.q1_ns,
                timing.q3_ns,
                format_time(timing.median_ns),
                _ratio(case, result),
                f"{result.name}: {format_time(timing.median_ns)}",
                delta,
                delta.before.value if delta is not None else None,
            )
        )
    return bar_chart(bars, kind="time", axis_title="time, lower is better", tick_label=compact_time)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "case"


_KIND = {True: "met", False: "missed", None: "unchecked"}


def _verdict_badge(met: bool | None) -> str:
    return f'<span class="badge {_KIND[met]}">{mark(met)}</span>'


def _bar_list(checks: Sequence[BarCheck]) -> str:
    if not checks:
        return ""
    items = "".join(
        f'<li class="bar-check" data-met="{_e(check.met)}">{_verdict_badge(check.met)}'
        f"<strong>{_e(check.bar.text)}</strong> "
        f'<span class="muted">{_e(check.detail)}</span></li>'
        for check in checks
    )
    return f'<ul class="bars">{items}</ul>'


def case_table(case: CaseResult, deltas: dict[str, Delta], with_baseline: bool) -> str:
    """The case's table: the terminal report's cells (`case_rows`), the full reason of a
    contender that did not run, and the change against the baseline when there is one."""
    rows = case_rows(case)
    latency = case.throughput == "latency"
    columns = [
        "contender",
        "p50" if latency else "time/op",
        "IQR",
        "p99 · p99.9 · max" if latency else "throughput",
        "vs kaelix",
    ]
    if with_baseline:
        columns.append("vs baseline")
    head = "".join(
        f'<th class="{"num" if 0 < i < 4 else ""}">{_e(c)}</th>' for i, c in enumerate(columns)
    )
    body: list[str] = []
    for row, result in zip(rows[1:], case.contenders, strict=True):
        name = _e(result.name)
        if result.role == "reference":
            name += ' <span class="role-tag">reference</span>'
        name_class = "kaelix" if result.role == "kaelix" else ""
        if row.kind in ("skipped", "error"):
            span = len(columns) - 1
            body.append(
                f'<tr class="{row.kind}" data-contender="{_e(result.name)}">'
                f'<td class="{name_class}">{name}</td><td colspan="{span}">'
                f'<span class="status {row.kind}">{row.kind}</span> '
                f"{_e(result.reason or '')}</td></tr>"
            )
            continue
        cells = row.cells
        iqr_class = "num noisy" if row.noisy else "num"
        delta_cell = ""
        if with_baseline:
            delta = deltas.get(result.name)
            delta_cell = (
                f'<td class="delta {delta.verdict}" data-delta="{delta.change * 100:.2f}" '
                f'title="baseline {_e(delta.before.text())}, now {_e(delta.after.text())}">'
                f"{_e(delta.text())}</td>"
                if delta is not None
                else f'<td class="muted">{DASH}</td>'
            )
        body.append(
            f'<tr class="{row.kind} {result.role}" data-contender="{_e(result.name)}">'
            f'<td class="{name_class}" title="{_e(result.note)}">{name}</td>'
            f'<td class="num">{_e(cells[1])}</td><td class="{iqr_class}">{_e(cells[2])}</td>'
            f'<td class="num">{_e(cells[3])}</td><td>{_e(cells[4])}</td>{delta_cell}</tr>'
        )
    return (
        f'<table class="case-table"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def headline(case: CaseResult, deltas: dict[str, Delta]) -> str:
    """The case at a glance: kaelix's speedup over the fastest peer in big type (for a
    latency case, its p50 against the peer with the lowest), or kaelix's own figure when the
    case has no peer; with a baseline, kaelix's change."""
    kaelix = case.kaelix
    now = figure(case, kaelix)
    if kaelix is None or now is None:
        return ""
    peers = [r for r in case.contenders if r.role == "peer" and case.speedup(r.name)]
    latency = case.throughput == "latency"
    if peers:
        best = min(peers, key=lambda r: r.ns_per_message or math.inf)
        speedup = case.speedup(best.name)
        assert speedup is not None
        number, _, word = format_speedup(speedup).removeprefix("kaelix ").partition(" ")
        if latency:
            word = "lower p50" if speedup >= 1 else "higher p50"
        who = "the best peer" if latency else "the fastest peer"
        than = f"than {_e(best.name)}" + (f", {who}" if len(peers) > 1 else "")
        kind = "ahead" if speedup >= 1 else "behind"
        big = (
            f'<div class="big {kind}" data-speedup="{speedup:.4g}" '
            f'data-peer="{_e(best.name)}">{_e(number)}</div>'
            f'<div class="what"><strong>{_e(word)}</strong> {than}</div>'
        )
    else:
        big = (
            f'<div class="big own">{_e(now.text())}</div>'
            f'<div class="what">{_e(kaelix.name)}{"" if latency else ", no peer in this case"}'
            f"</div>"
        )
    lines = [f'<div class="own-figure">{_e(kaelix.name)} {_e(_own_text(case, kaelix))}</div>']
    delta = deltas.get(kaelix.name)
    if delta is not None:
        lines.append(
            f'<div class="since">since the baseline: <span class="delta {delta.verdict}">'
            f"{_e(delta.text())}</span></div>"
        )
    state = " behind" if 'class="big behind"' in big else ""
    return f'<div class="headline{state}">{big}{"".join(lines)}</div>'


def _own_text(case: CaseResult, result: ContenderResult) -> str:
    if case.throughput == "latency" and result.latency is not None:
        return (
            f"p50 {format_time(result.latency.p50_ns)} · p99 {format_time(result.latency.p99_ns)}"
        )
    rate = rate_of(case, result)
    if rate is not None:
        return f"{_rate_text(case, rate)} · {format_time(result.ns_per_message)} per message"
    return format_time(result.median_ns)


def case_section(
    case: CaseResult,
    run: BenchRun,
    *,
    anchor: str,
    baseline: BenchRun | None,
    runs: Sequence[BenchRun],
) -> str:
    """One case: its heading and bars, its chart, the headline and trend beside it, and its
    table (which lists the contenders that did not run, with the reason)."""
    deltas = compare(case, baseline)
    baseline_case = find_case(baseline, case.suite, case.case) if baseline else None
    chart = case_chart(case, run, deltas, baseline_case)
    trend = history_chart(case, runs) if len(runs) > 1 else None
    verdict = case_met(case) if case.bars else None
    status = f' data-met="{_e(verdict)}"' if case.bars else ""
    parts = [
        f'<section class="case" id="{anchor}" data-suite="{_e(case.suite)}" '
        f'data-case="{_e(case.case)}"{status}>',
        f'<header><h3><a href="#{anchor}">{_e(case.case)}</a></h3>',
    ]
    if case.note:
        parts.append(f'<p class="muted note">{_e(case.note)}</p>')
    parts.append(_bar_list(case.bars))
    parts.append("</header>")
    main = '<p class="muted">No contender was measured in this case.</p>'
    if chart is not None:
        caption = (
            "One-way latency by percentile; the dashed step leads to the maximum."
            if case.throughput == "latency"
            else "Median of the trials; whiskers span the IQR."
        )
        main = f'<figure class="main-chart">{chart}<figcaption>{caption}</figcaption></figure>'
    side = [headline(case, deltas)]
    if trend is not None:
        kaelix = case.kaelix
        figure_now = figure(case, kaelix)
        what = {"throughput": "throughput", "p99": "p99 latency", "time": "time"}[
            figure_now.metric if figure_now else "throughput"
        ]
        side.append(
            f'<figure class="trend-chart">{trend}<figcaption>'
            f"{_e(kaelix.name if kaelix else 'kaelix')} {what} across runs, "
            f"this run last.</figcaption></figure>"
        )
    layout = " latency" if case.throughput == "latency" else ""
    parts.append(f'<div class="charts{layout}">{main}<div class="side">{"".join(side)}</div></div>')
    parts.append(case_table(case, deltas, baseline is not None))
    parts.append("</section>")
    return "".join(parts)


# ------------------------------------------------------------------------------ the page

_CSS = """
:root { color-scheme: light; --ink: #0f172a; --muted: #64748b; --line: #e2e8f0;
  --bg: #f6f7f9; --card: #ffffff; --accent: #2563eb; --good: #15803d; --bad: #b91c1c;
  --warn: #b45309; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  sans-serif; font-variant-numeric: tabular-nums; }
main { max-width: 1240px; margin: 0 auto; padding: 32px 28px 72px; }
a { color: inherit; text-decoration: none; }
a:hover { text-decoration: underline; }
h1 { font-size: 28px; margin: 0; letter-spacing: -0.01em; }
h1 .accent { color: var(--accent); }
h2 { font-size: 20px; margin: 40px 0 14px; letter-spacing: -0.01em; }
h2 .count { color: var(--muted); font-weight: 400; font-size: 15px; margin-left: 8px; }
h3 { font-size: 16px; margin: 0; }
.muted { color: var(--muted); }
.subtitle { color: var(--muted); margin: 4px 0 20px; font-size: 15px; }
.card, .case { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 20px 24px; margin: 0 0 18px; }
dl.meta { display: grid; grid-template-columns: max-content 1fr max-content 1fr;
  gap: 6px 18px; margin: 0; }
dl.meta dt { color: var(--muted); font-size: 12px; text-transform: uppercase;
  letter-spacing: 0.05em; padding-top: 2px; }
dl.meta dd { margin: 0; }
code { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
  font-size: 12.5px; background: #f1f5f9; padding: 1px 5px; border-radius: 4px; }
.tiles { display: flex; gap: 14px; flex-wrap: wrap; margin-bottom: 16px; }
.tile { flex: 1 1 140px; border: 1px solid var(--line); border-radius: 10px;
  padding: 12px 16px; background: var(--card); }
.tile .number { font-size: 30px; font-weight: 650; line-height: 1.1; }
.tile .label { color: var(--muted); font-size: 13px; }
.tile.met .number { color: var(--good); }
.tile.missed .number { color: var(--bad); }
.tile.unchecked .number { color: var(--warn); }
.tile.worse .number { color: var(--bad); }
.tile.better .number { color: var(--good); }
table { border-collapse: collapse; width: 100%; }
th { text-align: left; font-weight: 600; color: var(--muted); font-size: 12px;
  text-transform: uppercase; letter-spacing: 0.04em; border-bottom: 1px solid var(--line);
  padding: 6px 10px; }
td { padding: 4px 10px; border-bottom: 1px solid #f1f5f9; vertical-align: top; }
.case-table { font-size: 13.5px; }
th.num, td.num { text-align: right; white-space: nowrap; }
td.kaelix { color: var(--accent); font-weight: 600; }
td.noisy { color: var(--warn); font-weight: 600; }
tr.skipped td, tr.error td { color: var(--muted); }
.status { font-size: 11px; text-transform: uppercase; letter-spacing: 0.05em;
  border-radius: 4px; padding: 1px 6px; margin-right: 6px; background: #f1f5f9; }
.status.error { background: #fee2e2; color: var(--bad); }
td.delta, span.delta { font-weight: 600; white-space: nowrap; }
.delta.worse { color: var(--bad); } .delta.better { color: var(--good); }
.delta.same { color: var(--muted); font-weight: 400; }
tr.missed td:first-child { color: var(--bad); }
.badge { display: inline-block; min-width: 20px; text-align: center; border-radius: 5px;
  font-weight: 700; font-size: 12px; padding: 0 5px; margin-right: 8px; }
.badge.met { background: #dcfce7; color: var(--good); }
.badge.missed { background: #fee2e2; color: var(--bad); }
.badge.unchecked { background: #fef3c7; color: var(--warn); }
ul.bars { list-style: none; padding: 0; margin: 8px 0 0; }
ul.bars li { margin: 3px 0; }
ul.not-run { margin: 10px 0 0; padding-left: 18px; color: var(--muted); font-size: 13px; }
.note { margin: 2px 0 0; font-size: 13px; }
.case header { margin-bottom: 12px; }
.case h3 a:hover { text-decoration: none; color: var(--accent); }
.charts { display: grid; grid-template-columns: minmax(0, 760fr) minmax(0, 400fr); gap: 28px;
  margin-bottom: 12px; align-items: start; }
.charts.latency { grid-template-columns: minmax(0, 860fr) minmax(0, 360fr); }
.side { display: flex; flex-direction: column; gap: 14px; }
.headline { border-left: 3px solid var(--accent); padding: 2px 0 2px 16px; }
.headline .big { font-size: 34px; font-weight: 700; line-height: 1.1; color: var(--accent);
  letter-spacing: -0.02em; }
.headline .big.behind { color: var(--warn); }
.headline.behind { border-left-color: var(--warn); }
.headline .big.own { font-size: 26px; }
.headline .what { font-size: 14px; }
.headline .own-figure, .headline .since { color: var(--muted); font-size: 12.5px;
  margin-top: 2px; }
figure { margin: 0; }
figcaption { color: var(--muted); font-size: 12px; margin-top: 2px; }
svg.chart { display: block; width: 100%; height: auto; overflow: visible; }
svg.chart text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Arial,
  sans-serif; font-size: 12px; }
svg.chart text.tick { fill: var(--muted); font-size: 11px; }
svg.chart text.axis-title { fill: var(--muted); font-size: 11px; }
svg.chart text.name { font-size: 12.5px; }
svg.chart text.name.kaelix, svg.chart tspan.kaelix, svg.chart text.kaelix {
  fill: var(--accent); font-weight: 700; }
svg.chart text.role-tag { fill: var(--muted); font-size: 10px; font-style: italic; }
svg.chart tspan.figure { font-weight: 600; }
svg.chart tspan.ratio, svg.chart tspan.muted { fill: var(--muted); font-weight: 400; }
svg.chart tspan.delta { font-weight: 700; }
svg.chart tspan.delta.worse { fill: var(--bad); }
svg.chart tspan.delta.better { fill: var(--good); }
svg.chart tspan.delta.same { fill: var(--muted); font-weight: 400; }
svg.chart text.threshold-label { font-size: 11px; font-weight: 600; }
svg.chart text.series-label { font-size: 12px; font-weight: 600; }
svg.chart text.halo, svg.chart text.series-label, svg.chart text.threshold-label {
  paint-order: stroke; stroke: #fff; stroke-width: 3px; stroke-linejoin: round; }
.role-tag { color: var(--muted); font-size: 11px; font-style: italic; font-weight: 400; }
nav.toc { display: grid; grid-template-columns: 1fr 1fr; gap: 8px 36px; margin-top: 18px;
  font-size: 13px; }
nav.toc .suite-name { font-weight: 650; font-size: 14px; display: block; margin-bottom: 4px; }
nav.toc ul { list-style: none; margin: 0; padding: 0; }
nav.toc li { padding: 3px 0; border-bottom: 1px solid #f1f5f9; display: flex;
  flex-wrap: wrap; gap: 4px 6px; align-items: baseline; }
nav.toc li a { margin-right: auto; }
.chip { font-size: 11.5px; border-radius: 10px; padding: 0 8px; white-space: nowrap; }
.chip.met { background: #dcfce7; color: var(--good); }
.chip.missed { background: #fee2e2; color: var(--bad); font-weight: 600; }
.chip.unchecked { background: #fef3c7; color: var(--warn); }
.chip.none { color: #94a3b8; }
h4 { margin: 18px 0 6px; font-size: 14px; }
ul.worse-list { margin: 0; padding-left: 18px; font-size: 13px; }
.all-met { margin: 4px 0; }
.dot { display: inline-block; width: 8px; height: 8px; border-radius: 50%;
  margin-right: 8px; background: #cbd5e1; vertical-align: 1px; }
.dot.met { background: var(--good); } .dot.missed { background: var(--bad); }
.dot.unchecked { background: var(--warn); }
.legend { display: flex; flex-wrap: wrap; gap: 18px; color: var(--muted); font-size: 12.5px;
  margin: 0 0 14px; }
.legend span { display: inline-flex; align-items: center; gap: 6px; }
.swatch { display: inline-block; width: 22px; height: 11px; border-radius: 2px; }
.swatch.kaelix { background: var(--accent); } .swatch.peer { background: #94a3b8; }
.swatch.reference { border: 1.5px dashed #94a3b8; background: #fff; }
.swatch.whisker { height: 2px; background: var(--ink); opacity: 0.75; position: relative; }
.swatch.base { width: 3px; height: 16px; background: var(--ink); }
details summary { cursor: pointer; color: var(--muted); font-size: 13px; }
details ul { font-size: 13px; color: var(--muted); margin: 6px 0 0; }
.summary-table td:nth-child(1) { width: 36px; }
footer { color: var(--muted); font-size: 12.5px; margin-top: 40px; border-top: 1px solid
  var(--line); padding-top: 14px; }
@media (max-width: 1000px) { .charts, .charts.latency { grid-template-columns: minmax(0, 1fr); }
  dl.meta { grid-template-columns: max-content 1fr; }
  nav.toc { grid-template-columns: 1fr; } }
"""


def _meta(run: BenchRun) -> str:
    machine, settings = run.machine, run.settings
    m = machine.get

    def item(label: str, value: str) -> str:
        return f"<dt>{_e(label)}</dt><dd>{value}</dd>"

    cpus = m("usable_cpus") or m("cpu_count")
    cpu = f"{_e(m('cpu_model') or '?')} · {_e(cpus)} CPUs"
    if m("cpu_count") and m("usable_cpus") and m("cpu_count") != m("usable_cpus"):
        cpu += f" ({_e(m('cpu_count'))} in the machine)"
    python = f"{_e(m('python_implementation') or '')} {_e(m('python_version') or '')}"
    if m("python_build"):
        python += f' <span class="muted">({_e(" ".join(str(m("python_build")).split()))})</span>'
    commit = m("git_commit")
    git = (
        f"<code>{_e(str(commit)[:12])}</code>"
        + (' <span class="muted">with local changes</span>' if m("git_dirty") else "")
        if commit
        else '<span class="muted">no git commit</span>'
    )
    peers = m("peers") or {}
    peer_text = ", ".join(
        f"{_e(name)} {_e(version)}" for name, version in dict(peers).items() if version
    )
    mode = (
        f"{_e(settings.mode)}: {settings.repeat} trials of ~{settings.trial_ms:g} ms per "
        f"contender" + (", peers" if settings.peers else ", kaelix only (no peers)")
    )
    if settings.select:
        mode += f", cases matching <code>{_e(settings.select)}</code>"
    memcpy = []
    for case in run.reference:
        for result in case.contenders:
            text = format_bytes(result.bytes_per_s) if result.ok else result.status
            memcpy.append(f"{_e(case.case)} <strong>{_e(text)}</strong>")
    items = [
        item("CPU", cpu),
        item("Date", f"{_e(format_date(run.created))}"),
        item("Platform", _e(m("platform") or "?")),
        item("Mode", mode),
        item("Python", python),
        item(
            "Suites",
            _e(", ".join(settings.suites) or DASH)
            + (f' <span class="muted">· {run.duration_s:.0f} s</span>' if run.duration_s else ""),
        ),
        item(
            "Versions",
            f"kaelix {_e(m('kaelix_version') or '?')} · numpy {_e(m('numpy_version') or '?')}"
            f" · CRC32C <code>{_e(m('crc32c_implementation') or '?')}</code>",
        ),
        item("Commit", git),
        item("Peers", peer_text or '<span class="muted">none installed</span>'),
        item("memcpy", " · ".join(memcpy) or '<span class="muted">not measured</span>'),
    ]
    return f'<dl class="meta">{"".join(items)}</dl>'


def _summary(
    run: BenchRun,
    anchors: dict[tuple[str, str], str],
    baseline: BenchRun | None,
) -> str:
    checks = run.bar_checks
    met = sum(1 for _, c in checks if c.met is True)
    missed = sum(1 for _, c in checks if c.met is False)
    unchecked = sum(1 for _, c in checks if c.met is None)
    tiles = [
        f'<div class="tile met" data-count="{met}"><div class="number">{met}</div>'
        f'<div class="label">DESIGN.md bars met</div></div>',
        f'<div class="tile missed" data-count="{missed}"><div class="number">{missed}</div>'
        f'<div class="label">bars missed</div></div>',
    ]
    if unchecked:
        tiles.append(
            f'<div class="tile unchecked" data-count="{unchecked}"><div class="number">'
            f'{unchecked}</div><div class="label">bars not checked</div></div>'
        )
    measured = sum(1 for case in run.results for r in case.contenders if r.ok)
    tiles.append(
        f'<div class="tile"><div class="number">{len(run.results)}</div>'
        f'<div class="label">cases · {measured} contenders measured</div></div>'
    )
    # kaelix's own changes; a peer's change says how the machine moved
    deltas = [
        d for case in run.results for d in compare(case, baseline).values() if d.role == "kaelix"
    ]
    worse = [d for d in deltas if d.verdict == "worse"]
    if baseline is not None:
        better = sum(1 for d in deltas if d.verdict == "better")
        tiles.append(
            f'<div class="tile worse" data-count="{len(worse)}"><div class="number">'
            f'{len(worse)}</div><div class="label">kaelix figures worse than the baseline by '
            f"over {DELTA_THRESHOLD:.0%}</div></div>"
            f'<div class="tile better" data-count="{better}"><div class="number">{better}</div>'
            f'<div class="label">better by over {DELTA_THRESHOLD:.0%}</div></div>'
        )
    out = [f'<div class="tiles">{"".join(tiles)}</div>']
    problems = [(case, check) for case, check in checks if check.met is not True]
    if problems:
        rows = "".join(
            f'<tr class="{_KIND[check.met]}"><td>{_verdict_badge(check.met)}</td>'
            f'<td><a href="#{anchors[(case.suite, case.case)]}">{_e(case.suite)} · '
            f"{_e(case.case)}</a></td><td><strong>{_e(check.bar.text)}</strong></td>"
            f'<td class="muted">{_e(check.detail)}</td></tr>'
            for case, check in problems
        )
        out.append(
            '<table class="summary-table problems"><thead><tr><th></th><th>case</th>'
            f"<th>bar</th><th>measured</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    elif checks:
        out.append(f'<p class="all-met">{_verdict_badge(True)}Every bar of this run is met.</p>')
    else:
        out.append('<p class="muted">No DESIGN.md bar applies to these cases.</p>')
    if worse:
        items = "".join(
            f'<li><a href="#{anchors[(d.suite, d.case)]}">{_e(d.suite)} · {_e(d.case)}</a> · '
            f'{_e(d.contender)} <span class="delta worse">{_e(d.text())}</span> '
            f'<span class="muted">({_e(d.before.text())} → {_e(d.after.text())})</span></li>'
            for d in sorted(worse, key=lambda d: -abs(d.change))
        )
        out.append(
            f"<h4>kaelix figures worse than the baseline by over {DELTA_THRESHOLD:.0%}</h4>"
            f'<ul class="worse-list">{items}</ul>'
        )
    suites = []
    for suite, cases in suites_in(run):
        lines = []
        for case in cases:
            chips = (
                "".join(
                    f'<span class="chip {_KIND[c.met]}" title="{_e(c.detail)}">'
                    f"{mark(c.met)} {_e(c.bar.text)}</span>"
                    for c in case.bars
                )
                or '<span class="chip none">no bar</span>'
            )
            lines.append(
                f'<li><a href="#{anchors[(case.suite, case.case)]}">{_e(case.case)}</a>{chips}</li>'
            )
        suites.append(
            f'<div class="suite"><a class="suite-name" href="#suite-{_slug(suite)}">'
            f"{_e(suite)}</a><ul>{''.join(lines)}</ul></div>"
        )
    if suites:
        out.append(f'<nav class="toc">{"".join(suites)}</nav>')
    notes = []
    for case, contender in run.errors:
        notes.append(
            f'<li class="error">error in {_e(case.suite)} · {_e(case.case)} · '
            f"{_e(contender.name)}: {_e(contender.reason or '')}</li>"
        )
    noisy = [
        f"{case.case} / {result.name}"
        for case in (*run.reference, *run.results)
        for result in case.contenders
        if result.timing is not None and result.timing.relative_iqr > NOISY_IQR
    ]
    if noisy:
        notes.append(
            f'<li class="noisy">Noisy (IQR over {NOISY_IQR:.0%} of the median; rerun on a '
            f"quiet machine or with --full): {_e(', '.join(noisy))}</li>"
        )
    if baseline is not None:
        notes.append(
            f"<li>Baseline: the run of {_e(format_date(baseline.created))} "
            f"(<code>{_e(run_label(baseline))}</code>); changes beyond "
            f"{DELTA_THRESHOLD:.0%} are coloured, throughput for rate cases, p99 for latency "
            f"cases, time for one-off costs.</li>"
        )
    if notes:
        out.append(f'<ul class="summary-notes">{"".join(notes)}</ul>')
    return "".join(out)


def _legend(has_reference: bool, baseline: bool) -> str:
    items = [
        '<span><i class="swatch kaelix"></i>kaelix</span>',
        '<span><i class="swatch peer"></i>peer</span>',
    ]
    if has_reference:
        items.append('<span><i class="swatch reference"></i>reference (for scale)</span>')
    items.append('<span><i class="swatch whisker"></i>IQR of the trials</span>')
    if baseline:
        items.append('<span><i class="swatch base"></i>baseline figure</span>')
    items.append(
        "<span>ratios: kaelix\u2019s speedup, the contender\u2019s time per message over "
        "kaelix\u2019s</span>"
    )
    return f'<div class="legend">{"".join(items)}</div>'


def render_html(
    run: BenchRun,
    *,
    baseline: BenchRun | None = None,
    history: Sequence[BenchRun] = (),
    title: str | None = None,
) -> str:
    """The run as one self-contained HTML page (inline CSS and SVG, no script, nothing
    fetched): the machine and run header, the bars met and missed, then per suite and case
    its chart, table and what did not run.

    ``baseline`` is an earlier run: each contender measured in both shows the change of its
    throughput (p99 for latency cases, time for one-off costs), beyond 5 % coloured worse
    (red) or better (green). ``history`` holds earlier runs, oldest first: each case gets a
    trend chart of kaelix's figure across them and this run. ``title`` defaults to the
    suites and the date.
    """
    runs = (*history, run)
    suites = suites_in(run)
    anchors: dict[tuple[str, str], str] = {}
    used: set[str] = set()
    for case in run.results:
        anchor = _slug(f"{case.suite}-{case.case}")
        while anchor in used:
            anchor += "-x"
        used.add(anchor)
        anchors[(case.suite, case.case)] = anchor
    page_title = title or (
        f"kaelix bench · {', '.join(s for s, _ in suites) or 'no suites'} · "
        f"{format_date(run.created)}"
    )
    body: list[str] = [
        "<header>",
        f'<h1><span class="accent">kaelix</span> bench{": " + _e(title) if title else ""}</h1>',
        f'<p class="subtitle">{_e(run.settings.mode)} run of {_e(format_date(run.created))}'
        f"{' on ' + _e(run.machine.get('cpu_model')) if run.machine.get('cpu_model') else ''}"
        f" · kaelix measured beside its peers, in one run on one machine</p>",
        f'<div class="card">{_meta(run)}</div>',
        "</header>",
        '<h2 id="summary">Summary</h2>',
        f'<div class="card">{_summary(run, anchors, baseline)}</div>',
    ]
    for suite, cases in suites:
        has_reference = any(r.role == "reference" for c in cases for r in c.contenders)
        body.append(
            f'<h2 id="suite-{_slug(suite)}">{_e(suite)}'
            f'<span class="count">{len(cases)} case{"s" if len(cases) != 1 else ""}</span></h2>'
        )
        body.append(_legend(has_reference, baseline is not None))
        for case in cases:
            body.append(
                case_section(
                    case,
                    run,
                    anchor=anchors[(case.suite, case.case)],
                    baseline=baseline,
                    runs=runs,
                )
            )
        notes = note_lines(cases)
        if notes:
            items = "".join(f"<li>{_e(line.strip())}</li>" for line in notes)
            body.append(
                f"<details><summary>How each contender was used in {_e(suite)}</summary>"
                f"<ul>{items}</ul></details>"
            )
    body.append(
        f"<footer>{_e(CAVEAT)} Written by <code>python -m kaelix.bench</code> "
        f"(schema <code>{_e(run.schema)}</code>).</footer>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(page_title)}</title><style>{_CSS}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )


def write_html(
    path: str | os.PathLike[str],
    run: BenchRun,
    *,
    baseline: BenchRun | None = None,
    history: Sequence[BenchRun] = (),
    title: str | None = None,
) -> None:
    """Write `render_html` of the run to ``path`` (UTF-8)."""
    Path(path).write_text(
        render_html(run, baseline=baseline, history=history, title=title), encoding="utf-8"
    )


__all__ = [
    "DELTA_THRESHOLD",
    "Delta",
    "Figure",
    "Metric",
    "compare",
    "figure",
    "find_case",
    "render_html",
    "run_label",
    "write_html",
]
