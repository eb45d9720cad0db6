"""The Mann-Whitney U test (Wilcoxon rank-sum), which decides whether a change between two
benchmark runs is more than noise: exact for small samples without ties, the normal
approximation with tie and continuity corrections otherwise.

Why this test: benchmark trials are few (5 quick, 15 full), not normally distributed (a
busy machine adds a long right tail) and sometimes tied; the test compares ranks, so it
assumes no distribution and one slow outlier cannot make or hide a regression. Its
statistic needs only the order of the trials, so per-message times and rates give the same
verdict.

Pure Python (``math`` only), so the regression check loads without numpy or scipy. Imports
the standard library only; never kaelix, numpy, numba or an optional dependency.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Alternative = Literal["greater", "less", "two-sided"]
"""``greater``: the first sample tends to be larger (slower, when the samples are times);
``less``: smaller; ``two-sided``: either."""

EXACT_MAX_PAIRS = 2_500
"""Samples without ties use the exact distribution while ``len(x) * len(y)`` is at most this
(up to 50 against 50 trials); larger or tied samples use the normal approximation."""


@dataclass(frozen=True)
class MannWhitney:
    """The outcome of `mann_whitney_u`.

    ``u`` is U of the first sample: the number of pairs (x, y) with x > y, ties counting a
    half. ``p_value`` is the probability, with no difference between the samples, of a U at
    least as extreme in the direction of ``alternative``. ``method`` is ``"exact"`` or
    ``"normal"``.
    """

    u: float
    p_value: float
    alternative: Alternative
    method: Literal["exact", "normal"]


def midranks(values: Sequence[float]) -> list[float]:
    """The rank of each value among ``values`` (1 for the smallest), tied values sharing
    the mean of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        rank = (start + end) / 2 + 1
        for position in range(start, end + 1):
            ranks[order[position]] = rank
        start = end + 1
    return ranks


def u_distribution(n1: int, n2: int) -> list[int]:
    """How many of the ``comb(n1 + n2, n1)`` equally likely orderings of two samples without
    ties give U = 0, 1, ..., n1 * n2: the coefficients of the Gaussian binomial coefficient
    ``[n1 + n2 choose n1]_q`` = prod over i = 1..n1 of (1 - q^(n2+i)) / (1 - q^i)."""
    size = n1 * n2 + 1
    counts = [1] + [0] * (size - 1)
    for i in range(1, n1 + 1):
        shift = n2 + i
        for k in range(size - 1, shift - 1, -1):  # times (1 - q^shift)
            counts[k] -= counts[k - shift]
        for k in range(i, size):  # divided by (1 - q^i): a running sum with stride i
            counts[k] += counts[k - i]
    return counts


def smallest_p_value(n1: int, n2: int) -> float:
    """The smallest one-sided p-value samples of these sizes can reach (every value of one
    sample above every value of the other, exact test): ``1 / comb(n1 + n2, n1)``. When it
    exceeds the significance level, no change can be shown with so few trials."""
    if n1 < 1 or n2 < 1:
        return 1.0
    return 1.0 / math.comb(n1 + n2, n1)


def _normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def mann_whitney_u(
    x: Sequence[float], y: Sequence[float], alternative: Alternative = "greater"
) -> MannWhitney:
    """The Mann-Whitney U test of ``x`` against ``y``.

    Without ties and with ``len(x) * len(y) <= EXACT_MAX_PAIRS``, the p-value is exact, from
    the distribution of U over every ordering of the pooled values (`u_distribution`).
    Otherwise it is the normal approximation: mean ``n1 * n2 / 2``, variance
    ``n1 * n2 / 12 * ((n + 1) - sum(t**3 - t) / (n * (n - 1)))`` over the groups of ``t``
    tied values, with a continuity correction of 0.5 (as ``scipy.stats.mannwhitneyu`` with
    ``method="asymptotic"``).

    >>> mann_whitney_u([4, 5, 6], [1, 2, 3]).p_value  # 1 ordering in comb(6, 3) = 20
    0.05
    """
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        raise ValueError(f"both samples need at least one value; got {n1} and {n2}")
    if alternative not in ("greater", "less", "two-sided"):
        raise ValueError(
            f"alternative must be 'greater', 'less' or 'two-sided'; got {alternative!r}"
        )
    pooled = [float(v) for v in (*x, *y)]
    if any(math.isnan(v) for v in pooled):
        raise ValueError("the samples hold NaN, which has no rank")
    ranks = midranks(pooled)
    u = sum(ranks[:n1]) - n1 * (n1 + 1) / 2
    ties = [t for t in Counter(pooled).values() if t > 1]

    if not ties and n1 * n2 <= EXACT_MAX_PAIRS:
        counts = u_distribution(n1, n2)
        total = math.comb(n1 + n2, n1)
        k = round(u)  # an integer without ties
        upper = sum(counts[k:]) / total  # P(U >= u)
        lower = sum(counts[: k + 1]) / total  # P(U <= u)
        p = {"greater": upper, "less": lower, "two-sided": min(1.0, 2 * min(upper, lower))}
        return MannWhitney(u, p[alternative], alternative, "exact")

    n = n1 + n2
    tie_term = sum(t**3 - t for t in ties) / (n * (n - 1))
    variance = n1 * n2 / 12 * ((n + 1) - tie_term)
    mean = n1 * n2 / 2
    if variance <= 0:  # every value equal: no evidence either way
        return MannWhitney(u, 1.0, alternative, "normal")
    sd = math.sqrt(variance)
    if alternative == "greater":
        p_value = _normal_sf((u - mean - 0.5) / sd)
    elif alternative == "less":
        p_value = _normal_sf((mean - u - 0.5) / sd)
    else:
        p_value = min(1.0, 2 * _normal_sf((abs(u - mean) - 0.5) / sd))
    return MannWhitney(u, p_value, alternative, "normal")


__all__ = [
    "EXACT_MAX_PAIRS",
    "Alternative",
    "MannWhitney",
    "mann_whitney_u",
    "midranks",
    "smallest_p_value",
    "u_distribution",
]
