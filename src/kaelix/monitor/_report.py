"""The HTML snapshot report: one self-contained file (inline CSS and SVG, no script, nothing
downloaded) with a line chart of each recorded series and the alert timeline.

The bench's report (`kaelix.bench._html`) draws benchmark results; the monitor may not
import the bench (DESIGN.md's layers), so the few chart primitives needed here are its own.
Imports the sampler of this package; never the bench, rich or prometheus_client.
"""

from __future__ import annotations

import datetime
import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from kaelix.monitor._sampler import Monitor

__all__ = ["report_html"]

_INK = "#0f172a"
_MUTED = "#64748b"
_GRID = "#e2e8f0"
_LINE = "#2563eb"
_FIRING = "#b91c1c"
_RESOLVED = "#15803d"
_WIDTH = 640.0
_HEIGHT = 160.0
_PAD_LEFT = 64.0
_PAD = 16.0
_MAX_SERIES = 200

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;color:#0f172a;margin:24px auto;max-width:760px}
h1{font-size:22px}h2{font-size:16px;margin:28px 0 4px}.muted{color:#64748b}
table{border-collapse:collapse}td,th{padding:2px 10px 2px 0;text-align:left}
.firing{color:#b91c1c}.resolved{color:#15803d}svg{display:block;margin:4px 0 12px}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _n(value: float) -> str:
    return f"{value:.1f}"


def _short(value: float) -> str:
    if value == 0 or math.isnan(value):
        return "0"
    magnitude = abs(value)
    for suffix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if magnitude >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def _chart(
    times: npt.NDArray[np.float64],
    values: npt.NDArray[np.float64],
    origin: float,
    span: float,
    label: str,
    alerts: Sequence[tuple[float, str]],
) -> str:
    """A line chart of one series (x: seconds since the first sample) with the alert events
    on it as vertical marks."""
    inner_w = _WIDTH - _PAD_LEFT - _PAD
    inner_h = _HEIGHT - 2 * _PAD
    finite = values[np.isfinite(values)]
    low = float(min(0.0, finite.min())) if len(finite) else 0.0
    high = float(finite.max()) if len(finite) else 1.0
    if high <= low:
        high = low + 1.0
    span = span if span > 0 else 1.0

    def x(t: float) -> float:
        return _PAD_LEFT + (t - origin) / span * inner_w

    def y(v: float) -> float:
        return _PAD + inner_h - (v - low) / (high - low) * inner_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH:g}" height="{_HEIGHT:g}" '
        f'viewBox="0 0 {_WIDTH:g} {_HEIGHT:g}" role="img" aria-label="{_e(label)}">'
    ]
    for fraction in (0.0, 0.5, 1.0):
        value = low + fraction * (high - low)
        yy = y(value)
        parts.append(
            f'<line x1="{_n(_PAD_LEFT)}" x2="{_n(_WIDTH - _PAD)}" y1="{_n(yy)}" y2="{_n(yy)}" '
            f'stroke="{_GRID}"/>'
            f'<text x="{_n(_PAD_LEFT - 6)}" y="{_n(yy + 4)}" text-anchor="end" font-size="11" '
            f'fill="{_MUTED}">{_e(_short(value))}</text>'
        )
    parts.append(
        f'<text x="{_n(_WIDTH - _PAD)}" y="{_n(_HEIGHT - 2)}" text-anchor="end" font-size="11" '
        f'fill="{_MUTED}">{_e(f"{span:.1f} s")}</text>'
    )
    for when, state in alerts:
        colour = _FIRING if state == "firing" else _RESOLVED
        xx = x(when)
        parts.append(
            f'<line x1="{_n(xx)}" x2="{_n(xx)}" y1="{_n(_PAD)}" y2="{_n(_PAD + inner_h)}" '
            f'stroke="{colour}" stroke-dasharray="3 3"><title>{_e(state)}</title></line>'
        )
    points = " ".join(
        f"{_n(x(float(t)))},{_n(y(float(v)))}"
        for t, v in zip(times, values, strict=True)
        if math.isfinite(v)
    )
    if points:
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{_LINE}" stroke-width="1.5"/>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _thin(
    times: npt.NDArray[np.float64], values: npt.NDArray[np.float64], most: int = 1000
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    if len(times) <= most:
        return times, values
    keep = np.linspace(0, len(times) - 1, most).astype(np.int64)
    return times[keep], values[keep]


def report_html(monitor: Monitor, path: str | Path, *, title: str = "kaelix monitor") -> Path:
    """Writes a self-contained HTML report of everything ``monitor`` recorded: a chart per
    series (counters as their rate per second, gauges as they are, histograms as their p50
    and p99 per sample interval), with alert events marked, and the alert timeline as a
    table. Returns the path written."""
    out = Path(path)
    start = monitor.started_at
    last = monitor.last_sample
    origin = 0.0 if start is None else start
    span = 0.0 if last is None or start is None else last - start
    alerts = monitor.alerts
    sections: list[str] = []
    keys = sorted(k for k in monitor.series_keys() if not _derived(monitor, k[0]))
    for name, labels in keys[:_MAX_SERIES]:
        kind = monitor.kind(name)
        shown = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels) + "}" if labels else "")
        marks = [(a.time, a.state) for a in alerts if a.metric == name and a.labels == labels]
        if kind == "histogram":
            times, counts = monitor.series(name + "_count", labels)
            rates = _per_second(times, counts)
            times, rates = _thin(times, rates)
            sections.append(
                f"<h2>{_e(shown)}</h2><p class=muted>histogram: values recorded per second; "
                f"p50 {monitor.percentile(name, 50.0, None, labels):.6g}, "
                f"p99 {monitor.percentile(name, 99.0, None, labels):.6g}, "
                f"max {monitor.percentile(name, 100.0, None, labels):.6g} over the report</p>"
                + _chart(times, rates, origin, span, shown, marks)
            )
            continue
        times, values = monitor.series(name, labels)
        what = "value"
        if kind == "counter":
            values = _per_second(times, values)
            what = "rate per second"
        times, values = _thin(times, values)
        sections.append(
            f"<h2>{_e(shown)}</h2><p class=muted>{_e(kind)}: {what}</p>"
            + _chart(times, values, origin, span, shown, marks)
        )
    if len(keys) > _MAX_SERIES:
        sections.append(f"<p class=muted>{len(keys) - _MAX_SERIES} more series not drawn.</p>")
    rows = "".join(
        f'<tr class="{_e(a.state)}"><td>{a.time - origin:.1f} s</td><td>{_e(a.state)}</td>'
        f"<td>{_e(a.severity)}</td><td>{_e(a.message)}</td></tr>"
        for a in alerts
    )
    timeline = (
        f"<table><tr><th>time</th><th>state</th><th>severity</th><th>alert</th></tr>{rows}</table>"
        if alerts
        else "<p class=muted>No alert fired.</p>"
    )
    created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    document = (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1><p class=muted>{monitor.samples} samples every "
        f"{monitor.interval:g} s over {span:.1f} s; {len(keys)} series; written {created}</p>"
        f"<h2>Alert timeline</h2>{timeline}{''.join(sections)}</body></html>\n"
    )
    out.write_text(document, encoding="utf-8")
    return out


def _per_second(
    times: npt.NDArray[np.float64], values: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """A counter's rate between consecutive samples (the first point repeats the second)."""
    if len(times) < 2:
        return np.zeros_like(values)
    steps = np.diff(values)
    steps = np.where(steps >= 0, steps, values[1:])
    dt = np.diff(times)
    rates = np.divide(steps, dt, out=np.zeros_like(steps), where=dt > 0)
    return np.concatenate([rates[:1], rates])


def _derived(monitor: Monitor, name: str) -> bool:
    """True for a histogram's ``_count`` and ``_sum`` series (drawn with the histogram)."""
    base, _, suffix = name.rpartition("_")
    return suffix in ("count", "sum") and monitor.kind(base) == "histogram"
