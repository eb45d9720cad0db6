"""latency_report: nearest-rank percentiles of one-way latencies. Imports numpy only."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from kaelix.validate._reports import LatencyReport

# In ten-thousandths, so ranks are exact integers (99.9 / 100 * 1000 is 999.0000000000001).
_PERCENTILES = (5000, 9000, 9900, 9990, 9999)


def _as_ns(values: npt.ArrayLike, what: str) -> npt.NDArray[np.int64]:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{what} must be 1-D, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{what} must hold integer nanoseconds, got dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


def _rank(per_10000: int, n: int) -> int:
    """The nearest-rank index: ceil(p / 100 * n) - 1, in exact integer arithmetic."""
    return max(0, -(-per_10000 * n // 10000) - 1)


def latency_report(
    sent_ns: npt.ArrayLike, received_ns: npt.ArrayLike, *, bound_ns: int | None = None
) -> LatencyReport:
    """Percentiles of ``received_ns - sent_ns`` (p50, p90, p99, p99.9, p99.99, max, by
    nearest rank: the p-th percentile is the smallest latency with at least p % of them at or
    below it) and how many exceeded ``bound_ns``.

    >>> report = latency_report([0, 0, 0, 0], [1_000, 2_000, 3_000, 40_000], bound_ns=10_000)
    >>> (report.p50_ns, report.max_ns, report.over_bound, bool(report))
    (2000, 40000, 1, False)
    """
    sent = _as_ns(sent_ns, "sent_ns")
    received = _as_ns(received_ns, "received_ns")
    if sent.shape != received.shape:
        raise ValueError(f"sent_ns has {sent.size} values, received_ns {received.size}")
    if bound_ns is not None and (not isinstance(bound_ns, int) or isinstance(bound_ns, bool)):
        raise TypeError(f"bound_ns must be an int or None, got {type(bound_ns).__name__}")
    n = int(sent.size)
    if n == 0:
        return LatencyReport(0, None, None, None, None, None, None, None, None, bound_ns, 0)
    latency = received - sent
    ranks = sorted({_rank(p, n) for p in _PERCENTILES} | {0, n - 1})
    picked = np.partition(latency, ranks)
    value = {rank: int(picked[rank]) for rank in ranks}
    p = [value[_rank(q, n)] for q in _PERCENTILES]
    over = 0 if bound_ns is None else int(np.count_nonzero(latency > bound_ns))
    return LatencyReport(
        count=n,
        min_ns=value[0],
        p50_ns=p[0],
        p90_ns=p[1],
        p99_ns=p[2],
        p999_ns=p[3],
        p9999_ns=p[4],
        max_ns=value[n - 1],
        mean_ns=float(latency.mean()),
        bound_ns=bound_ns,
        over_bound=over,
    )
