"""Checking a case's results against its ``DESIGN.md`` bars.

Pure functions over result dataclasses, so the verdict logic is unit-tested on synthetic
results without timing anything. Imports only the standard library and the bench's own
model; never kaelix, numpy, numba or an optional dependency.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence

from kaelix.bench._format import (
    format_bytes,
    format_messages,
    format_percent,
    format_percentile,
    format_speedup,
    format_time,
)
from kaelix.bench._model import Bar, BarCheck, CaseResult, ContenderResult


def _kaelix(contenders: Sequence[ContenderResult]) -> ContenderResult | None:
    for result in contenders:
        if result.role == "kaelix":
            return result
    return None


def _find_reference(references: Iterable[CaseResult], name: str) -> ContenderResult | None:
    for case in references:
        if case.case == name:
            for result in case.contenders:
                if result.ok:
                    return result
    return None


def _paired_speedup(kaelix: ContenderResult, peer: ContenderResult) -> float | None:
    """The median over rounds of the peer's time per message divided by kaelix's in the
    same round, or None when the two do not have the same number of trials."""
    assert kaelix.timing is not None and peer.timing is not None
    ours, theirs = kaelix.timing.trials_ns, peer.timing.trials_ns
    if len(ours) != len(theirs) or not ours:
        return None
    scale = max(kaelix.messages_per_op, 1) / max(peer.messages_per_op, 1)
    return statistics.median(
        t / o * scale if o > 0 else math.inf for o, t in zip(ours, theirs, strict=True)
    )


def check_bar(
    bar: Bar,
    contenders: Sequence[ContenderResult],
    references: Iterable[CaseResult] = (),
    *,
    paired: bool = False,
) -> BarCheck:
    """The verdict on ``bar`` for the kaelix result among ``contenders``.

    Medians are compared: a ``faster_than`` bar is met when kaelix's median time per
    message is at most the peer's, a ``min_speedup`` bar when the peer's is at least
    ``value`` times kaelix's. A bar that cannot be checked (kaelix failed, the peer was
    skipped, the memcpy reference is missing) gets ``met=None`` and says why.

    ``paired`` (an interleaved case, whose contenders' trials ran in rounds: trial ``i`` of
    each in round ``i``, next to each other in time) compares round by round instead: the
    speedup is the median over rounds of the peer's time per message over kaelix's in the
    same round, so that what the machine did during a round (another process's load) weighs
    on both sides of each ratio; the medians' ratio is given beside it.
    """
    kaelix = _kaelix(contenders)
    if kaelix is None or not kaelix.ok:
        return BarCheck(bar, None, "kaelix was not measured")

    if bar.kind in ("faster_than", "min_speedup"):
        peer = next((c for c in contenders if c.name == bar.peer), None)
        if peer is None or not peer.ok:
            why = peer.status if peer is not None else "absent"
            return BarCheck(bar, None, f"{bar.peer} {why}, not compared")
        kaelix_ns, peer_ns = kaelix.ns_per_message, peer.ns_per_message
        assert kaelix_ns is not None and peer_ns is not None  # both ok
        figures = (
            f"kaelix {format_time(kaelix_ns)} vs {bar.peer} {format_time(peer_ns)} per message"
        )
        speedup = peer_ns / kaelix_ns if kaelix_ns > 0 else math.inf
        by_round = _paired_speedup(kaelix, peer) if paired else None
        if by_round is not None:
            rounds = len(kaelix.timing.trials_ns) if kaelix.timing is not None else 0
            figures = (
                f"round by round: {format_speedup(by_round)} (median of {rounds} rounds' "
                f"ratios, {by_round:.4f}); by the medians: {format_speedup(speedup)} "
                f"({figures})"
            )
            speedup = by_round
        elif bar.kind == "min_speedup":
            figures = f"{format_speedup(speedup)} ({figures})"
        if bar.kind == "faster_than":
            return BarCheck(bar, speedup >= 1, figures)
        return BarCheck(bar, speedup >= bar.value, figures)

    if bar.kind == "max_ns_per_message":
        ns = kaelix.ns_per_message
        assert ns is not None  # kaelix is ok
        return BarCheck(bar, ns <= bar.value, f"kaelix {format_time(ns)} per message")

    if bar.kind == "max_latency":
        if kaelix.latency is None:
            return BarCheck(bar, None, "kaelix reported no latencies")
        assert bar.percentile is not None  # checked by Bar
        value = kaelix.latency.at(bar.percentile)
        detail = (
            f"kaelix {format_percentile(bar.percentile)} {format_time(value)} "
            f"over {kaelix.latency.samples:,} messages"
        )
        for floor in contenders:
            # A reference run with no channel at all shows what the machine alone adds.
            if floor.role == "reference" and floor.ok and floor.latency is not None:
                floor_value = floor.latency.at(bar.percentile)
                detail += f"; {floor.name} alone: {format_time(floor_value)}"
                if floor_value > bar.value:
                    detail += " (over the bar: this machine cannot show it)"
        return BarCheck(bar, value <= bar.value, detail)

    if bar.kind == "min_messages_per_s":
        rate = kaelix.messages_per_s
        if rate is None:
            return BarCheck(bar, None, "kaelix reported no messages")
        return BarCheck(bar, rate >= bar.value, f"kaelix {format_messages(rate)}")

    if bar.kind == "min_bytes_per_s":
        rate = kaelix.bytes_per_s
        if rate is None:
            return BarCheck(bar, None, "kaelix reported no bytes")
        return BarCheck(bar, rate >= bar.value, f"kaelix {format_bytes(rate)}")

    # min_memcpy_fraction
    assert bar.reference is not None  # checked by Bar
    reference = _find_reference(references, bar.reference)
    rate = kaelix.bytes_per_s
    if reference is None or reference.bytes_per_s is None:
        return BarCheck(bar, None, f"no memcpy reference {bar.reference!r} in this run")
    if rate is None:
        return BarCheck(bar, None, "kaelix reported no bytes")
    fraction = rate / reference.bytes_per_s
    return BarCheck(
        bar,
        fraction >= bar.value,
        f"kaelix {format_bytes(rate)} = {format_percent(fraction)} of "
        f"{bar.reference} {format_bytes(reference.bytes_per_s)}",
    )


def check_bars(
    bars: Iterable[Bar],
    contenders: Sequence[ContenderResult],
    references: Iterable[CaseResult] = (),
    *,
    paired: bool = False,
) -> tuple[BarCheck, ...]:
    """`check_bar` for each of ``bars`` (``paired``: see `check_bar`)."""
    references = tuple(references)
    return tuple(check_bar(bar, contenders, references, paired=paired) for bar in bars)
