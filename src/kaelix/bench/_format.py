"""Human formatting of benchmark figures (times, rates, ratios), shared by bar details and
tables. Decimal prefixes throughout (1 GB/s = 10^9 bytes per second, as in ``DESIGN.md``).

Imports only the standard library; never kaelix, numpy, numba or an optional dependency.
"""

from __future__ import annotations

import math

TIMES = "\u00d7"  # multiplication sign
CHECK = "\u2713"
CROSS = "\u2717"
MICRO = "\u00b5"
DASH = "\u2014"


def _significant(value: float) -> str:
    """Three significant digits without an exponent (12.3, 123, 1.23)."""
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def format_time(ns: float | None) -> str:
    """A duration in nanoseconds as ``312 ns``, ``4.10 µs``, ``12.3 ms`` or ``1.20 s``."""
    if ns is None or math.isnan(ns):
        return DASH
    for limit, scale, unit in ((1e3, 1.0, "ns"), (1e6, 1e3, f"{MICRO}s"), (1e9, 1e6, "ms")):
        if abs(ns) < limit * 0.9995:
            return f"{_significant(ns / scale)} {unit}"
    return f"{_significant(ns / 1e9)} s"


def format_rate(per_second: float | None, unit: str) -> str:
    """A rate with a decimal prefix: ``format_rate(2.1e7, "msg/s")`` is ``21.0 M msg/s`` and
    ``format_rate(1.2e10, "B/s")`` is ``12.0 GB/s``."""
    if per_second is None or math.isnan(per_second):
        return DASH
    prefixes = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
    for scale, prefix in prefixes:
        if per_second >= scale * 0.9995:
            value = _significant(per_second / scale)
            return f"{value} {prefix}{unit}" if unit == "B/s" else f"{value} {prefix} {unit}"
    return f"{_significant(per_second)} {unit}"


def format_messages(per_second: float | None) -> str:
    """Messages per second, e.g. ``21.0 M msg/s``."""
    return format_rate(per_second, "msg/s")


def format_bytes(per_second: float | None) -> str:
    """Bytes per second, e.g. ``12.0 GB/s``."""
    return format_rate(per_second, "B/s")


def format_percent(fraction: float | None) -> str:
    """A fraction as a percentage with sensible precision (``0.0123`` is ``1.2%``)."""
    if fraction is None or math.isnan(fraction) or math.isinf(fraction):
        return DASH
    percent = fraction * 100
    return f"{percent:.1f}%" if percent < 10 else f"{percent:.0f}%"


def format_speedup(speedup: float | None) -> str:
    """kaelix's speedup over a contender in words: ``kaelix 3.20× faster``, or
    ``kaelix 1.50× slower`` when the contender is faster."""
    if speedup is None or speedup <= 0 or math.isnan(speedup):
        return DASH
    if speedup >= 1:
        return f"kaelix {_significant(speedup)}{TIMES} faster"
    return f"kaelix {_significant(1 / speedup)}{TIMES} slower"


def format_percentile(percentile: float) -> str:
    """A latency percentile's label: ``p50``, ``p99.9``, and ``max`` for 100."""
    return "max" if percentile >= 100 else f"p{percentile:g}"


def mark(met: bool | None) -> str:
    """✓ for a bar met, ✗ for a bar missed, ? when it could not be checked."""
    if met is None:
        return "?"
    return CHECK if met else CROSS
