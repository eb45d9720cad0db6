"""Load patterns: when each message is sent, as a numpy ``int64`` array of nanoseconds.

Every pattern but `burst` and `poisson` is a rate ``r(t)`` in messages per second from
``start_ns``, and message ``i`` (from 0) is sent at the instant the expected count
``N(t) = integral of r from start_ns to t`` reaches ``i``, floored to a whole nanosecond:

    send_times[i] = start_ns + floor(N^-1(i))

so message 0 is sent at ``start_ns`` and a constant rate of 1,000 msg/s sends message ``i``
at ``start_ns + i * 1_000_000``. Arithmetic is float64 (exact for the round numbers of the
examples; otherwise within a nanosecond of the exact instant), and the inverse of the sine
pattern is solved numerically to well under a nanosecond. The arrays feed
``kaelix.testing.generate.generate(timestamps=...)`` and the bench's paced senders.

Imports numpy only; never numba, the bench or the monitor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["burst", "constant", "poisson", "ramp", "sine", "step"]

_NS = 1e9
_I64_MAX = (1 << 63) - 1


def _count(count: object) -> int:
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)):
        raise TypeError(f"count must be an int, got {type(count).__name__}")
    if count < 0:
        raise ValueError(f"count must be at least 0, got {count}")
    return int(count)


def _int(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be at least {low:,}, got {value:,}")
    return int(value)


def _rate(name: str, value: object, *, zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(
            f"{name} must be a number of messages per second, got {type(value).__name__}"
        )
    rate = float(value)
    if not math.isfinite(rate) or rate < 0 or (rate == 0 and not zero):
        bound = "at least 0" if zero else "above 0"
        raise ValueError(f"{name} must be finite and {bound} messages per second, got {value}")
    return rate


def _start(start_ns: object) -> int:
    if isinstance(start_ns, bool) or not isinstance(start_ns, (int, np.integer)):
        raise TypeError(f"start_ns must be an int, got {type(start_ns).__name__}")
    if not -(1 << 63) <= start_ns <= _I64_MAX:
        raise ValueError(f"start_ns must fit in int64, got {start_ns}")
    return int(start_ns)


def _finish(start_ns: int, offsets_ns: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """start_ns + floor(offsets), checked to fit in int64."""
    floored = np.floor(offsets_ns)
    if len(floored) and start_ns + float(floored.max()) > _I64_MAX:
        raise ValueError(
            f"the last send time would pass 2**63 - 1 ns (start_ns={start_ns:,} plus "
            f"{float(floored.max()):.6g} ns); send fewer messages or faster"
        )
    times: npt.NDArray[np.int64] = floored.astype(np.int64) + np.int64(start_ns)
    return times


def constant(count: int, rate: float, *, start_ns: int = 0) -> npt.NDArray[np.int64]:
    """``count`` send times at a steady ``rate`` msg/s: ``start_ns + floor(i * 1e9 / rate)``.

    >>> constant(4, 1000).tolist()
    [0, 1000000, 2000000, 3000000]
    """
    count, rate, start_ns = _count(count), _rate("rate", rate), _start(start_ns)
    return _finish(start_ns, np.arange(count, dtype=np.float64) * (_NS / rate))


def burst(
    count: int, *, size: int, period_ns: int, spacing_ns: int = 0, start_ns: int = 0
) -> npt.NDArray[np.int64]:
    """Bursts of ``size`` messages every ``period_ns``, ``spacing_ns`` apart within a burst:
    message ``i`` is sent at ``start_ns + (i // size) * period_ns + (i % size) * spacing_ns``
    (exact integer arithmetic). A burst must end before the next begins:
    ``(size - 1) * spacing_ns < period_ns``.

    >>> burst(5, size=2, period_ns=1000, spacing_ns=10).tolist()
    [0, 10, 1000, 1010, 2000]
    """
    count, start_ns = _count(count), _start(start_ns)
    size = _int("size", size, 1)
    period_ns = _int("period_ns", period_ns, 1)
    spacing_ns = _int("spacing_ns", spacing_ns, 0)
    if (size - 1) * spacing_ns >= period_ns:
        raise ValueError(
            f"a burst of size={size} spaced spacing_ns={spacing_ns} lasts "
            f"{(size - 1) * spacing_ns:,} ns, not less than period_ns={period_ns:,}"
        )
    last = start_ns + ((count - 1) // size) * period_ns + (size - 1) * spacing_ns
    if count and last > _I64_MAX:
        raise ValueError(f"the last send time would pass 2**63 - 1 ns ({last:,})")
    index = np.arange(count, dtype=np.int64)
    times: npt.NDArray[np.int64] = (
        (index // size) * period_ns + (index % size) * spacing_ns + np.int64(start_ns)
    )
    return times


def ramp(
    count: int, *, start_rate: float, end_rate: float, duration_ns: int, start_ns: int = 0
) -> npt.NDArray[np.int64]:
    """A rate that moves linearly from ``start_rate`` to ``end_rate`` msg/s over
    ``duration_ns``, then stays at ``end_rate``. With ``a = (end_rate - start_rate) /
    (2 * duration)``, ``N(t) = start_rate * t + a * t**2`` up to the end of the ramp.

    >>> ramp(3, start_rate=1, end_rate=3, duration_ns=1_000_000_000).tolist()
    [0, 618033988, 1000000000]
    """
    count, start_ns = _count(count), _start(start_ns)
    r0, r1 = _rate("start_rate", start_rate), _rate("end_rate", end_rate)
    duration_ns = _int("duration_ns", duration_ns, 1)
    seconds = duration_ns / _NS
    a = (r1 - r0) / (2.0 * seconds)
    index = np.arange(count, dtype=np.float64)
    during = (index * 2.0) / (r0 + np.sqrt(np.maximum(r0 * r0 + 4.0 * a * index, 0.0)))
    in_ramp = (r0 + r1) / 2.0 * seconds  # messages expected by the end of the ramp
    after = seconds + (index - in_ramp) / r1
    return _finish(start_ns, np.where(index <= in_ramp, during, after) * _NS)


def sine(
    count: int, *, mean_rate: float, amplitude: float, period_ns: int, start_ns: int = 0
) -> npt.NDArray[np.int64]:
    """A rate ``mean_rate + amplitude * sin(2 pi t / period)`` msg/s (``amplitude`` below
    ``mean_rate``, so the rate stays positive): ``N(t) = mean_rate * t + amplitude * period /
    (2 pi) * (1 - cos(2 pi t / period))``, inverted by bracketed Newton steps.

    >>> sine(3, mean_rate=2, amplitude=1, period_ns=1_000_000_000).tolist()
    [0, 367037251, 1000000000]
    """
    count, start_ns = _count(count), _start(start_ns)
    mean = _rate("mean_rate", mean_rate)
    amp = _rate("amplitude", amplitude, zero=True)
    if amp >= mean:
        raise ValueError(
            f"amplitude must be below mean_rate so the rate stays above 0, got amplitude="
            f"{amplitude}, mean_rate={mean_rate}"
        )
    period = _int("period_ns", period_ns, 1) / _NS
    omega = 2.0 * math.pi / period
    index = np.arange(count, dtype=np.float64)
    low, high = index / (mean + amp), index / (mean - amp)
    t = index / mean
    for _ in range(100):
        excess = mean * t + amp / omega * (1.0 - np.cos(omega * t)) - index
        low = np.where(excess < 0, t, low)
        high = np.where(excess > 0, t, high)
        stepped = t - excess / (mean + amp * np.sin(omega * t))
        inside = (stepped > low) & (stepped < high)
        t_next = np.where(inside, stepped, (low + high) / 2.0)
        if np.all(np.abs(t_next - t) < 1e-13 * np.maximum(t, 1.0)):
            t = t_next
            break
        t = t_next
    return _finish(start_ns, t * _NS)


def step(
    count: int, *, rates: Sequence[float], step_ns: int, start_ns: int = 0
) -> npt.NDArray[np.int64]:
    """A rate of ``rates[k]`` msg/s from ``k * step_ns`` to ``(k + 1) * step_ns``; the last
    rate goes on for ever (it must be above 0; earlier ones may be 0, a pause).

    >>> step(5, rates=[2, 4], step_ns=1_000_000_000).tolist()
    [0, 500000000, 1000000000, 1250000000, 1500000000]
    """
    count, start_ns = _count(count), _start(start_ns)
    if isinstance(rates, (str, bytes)) or not isinstance(rates, Sequence) or not rates:
        raise TypeError("rates must be a non-empty sequence of messages per second")
    values = np.array(
        [_rate(f"rates[{k}]", r, zero=k < len(rates) - 1) for k, r in enumerate(rates)]
    )
    seconds = _int("step_ns", step_ns, 1) / _NS
    before = np.concatenate(([0.0], np.cumsum(values[:-1] * seconds)))  # N at each step
    index = np.arange(count, dtype=np.float64)
    k = np.searchsorted(before, index, side="right") - 1
    # A paused step (rate 0) adds nothing: searchsorted has already moved past it.
    t = k * seconds + (index - before[k]) / values[k]
    return _finish(start_ns, t * _NS)


def poisson(count: int, rate: float, *, seed: int = 0, start_ns: int = 0) -> npt.NDArray[np.int64]:
    """Poisson arrivals at ``rate`` msg/s: independent exponential gaps of mean ``1e9 /
    rate`` ns drawn from ``numpy.random.default_rng(seed)``; message 0 at ``start_ns``,
    message ``i`` at ``start_ns + floor(sum of the first i gaps)``. The same seed gives the
    same times."""
    count, rate, start_ns = _count(count), _rate("rate", rate), _start(start_ns)
    seed = _int("seed", seed, 0)
    gaps = np.random.default_rng(seed).exponential(_NS / rate, max(count - 1, 0))
    offsets = np.zeros(count, dtype=np.float64)
    np.cumsum(gaps, out=offsets[1:])
    return _finish(start_ns, offsets)
