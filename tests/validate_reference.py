"""Plain-Python reference for ``kaelix.validate`` (the contract in issue 4).

The slow, obviously correct twin of the numba kernels: each function follows the contract
word for word with dicts, sets and sorted lists, and returns plain dicts (counts and example
tuples) so that the tests compare kaelix against it without sharing a single class with it.

Messages are plain tuples here: ``(producer_id, partition, sequence, checksum)`` for
``check_delivery`` and ``(producer_id, partition, sequence)`` for the tracker. An example is
the tuple ``(producer_id, partition, sequence, position)``.

It must never import ``kaelix`` or numpy: a reference that shares code with the
implementation under test proves nothing. Frame parsing comes from ``reference`` (the
reference codec), which obeys the same rule.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence
from fractions import Fraction
from typing import Any

import reference

__all__ = [
    "CATEGORIES",
    "ORDERINGS",
    "PERCENTILES",
    "TRACKER_CATEGORIES",
    "RefDeliveryTracker",
    "check_delivery",
    "latency_report",
    "nearest_rank",
    "validate_message_invariants",
]

CATEGORIES = ("lost", "duplicated", "reordered", "corrupted", "unexpected")
"""The example categories of ``check_delivery``, in the contract's order."""
TRACKER_CATEGORIES = (*CATEGORIES, "late")
"""The tracker's categories: the same plus ``late``."""
ORDERINGS = ("partition", "producer", "global", "none")
COUNTS = (
    "expected",
    "delivered",
    "lost",
    "duplicated",
    "reordered",
    "corrupted",
    "unexpected",
    "late",
)
"""Every count field of a DeliveryReport."""

Record = tuple[int, int, int, int]  # producer_id, partition, sequence, checksum
Key = tuple[int, int, int]  # producer_id, partition, sequence
ExampleTuple = tuple[int, int, int, int]  # producer_id, partition, sequence, position


# --------------------------------------------------------------------------------------------
# check_delivery
# --------------------------------------------------------------------------------------------


def _scope(key: Key, ordering: str) -> object:
    """The group of messages whose send order must be kept, for ``ordering``."""
    producer_id, partition, _ = key
    if ordering == "partition":
        return (producer_id, partition)
    if ordering == "producer":
        return producer_id
    return "everything"  # "global": one scope; "none" never asks


def check_delivery(
    sent: Sequence[Record],
    received: Sequence[Record],
    *,
    ordering: str = "partition",
    max_examples: int = 5,
) -> dict[str, Any]:
    """What ``kaelix.validate.check_delivery`` must report, as a plain dict.

    Keys: every name in ``COUNTS`` (``late`` is always 0 here), ``ordering``, and
    ``examples``: a dict from each of ``CATEGORIES`` to a list of example tuples.
    """
    if ordering not in ORDERINGS:
        raise ValueError(f"ordering must be one of {ORDERINGS}, got {ordering!r}")
    # The first occurrence of a key in sent defines its checksum and send position.
    sent_checksum: dict[Key, int] = {}
    send_position: dict[Key, int] = {}
    for position, (producer_id, partition, sequence, checksum) in enumerate(sent):
        key = (producer_id, partition, sequence)
        if key not in send_position:
            send_position[key] = position
            sent_checksum[key] = checksum

    counts = dict.fromkeys(COUNTS, 0)
    counts["expected"] = len(send_position)
    examples: dict[str, list[ExampleTuple]] = {category: [] for category in CATEGORIES}

    def note(category: str, key: Key, position: int) -> None:
        counts[category] += 1
        if len(examples[category]) < max_examples:
            examples[category].append((*key, position))

    arrived: set[Key] = set()
    running_max: dict[object, int] = {}
    for i, (producer_id, partition, sequence, checksum) in enumerate(received):
        key = (producer_id, partition, sequence)
        if key not in send_position:
            note("unexpected", key, i)
            continue
        if key in arrived:
            note("duplicated", key, i)
            continue
        arrived.add(key)
        counts["delivered"] += 1
        if checksum != sent_checksum[key]:
            note("corrupted", key, i)
        if ordering != "none":
            scope = _scope(key, ordering)
            origin = send_position[key]
            if scope in running_max and origin < running_max[scope]:
                note("reordered", key, i)
            running_max[scope] = max(running_max.get(scope, origin), origin)

    counts["lost"] = counts["expected"] - counts["delivered"]
    lost_keys = sorted(
        (position, key) for key, position in send_position.items() if key not in arrived
    )
    examples["lost"] = [(*key, position) for position, key in lost_keys[:max_examples]]
    return {**counts, "ordering": ordering, "examples": examples}


# --------------------------------------------------------------------------------------------
# DeliveryTracker
# --------------------------------------------------------------------------------------------


class _Stream:
    """One (producer, partition): the highest sequence and every sequence received.

    The window's bits are ``received`` restricted to ``(high - window, high]``: a sequence
    at or below ``high - window`` is never looked up again (it is late or unexpected).
    """

    def __init__(self) -> None:
        self.high: int | None = None
        self.received: set[int] = set()


class RefDeliveryTracker:
    """What ``kaelix.validate.DeliveryTracker`` must count, fed one message at a time.

    Python integers make ``high - window`` and ``s - window`` safe near 0 and near 2**64-1.
    Examples are kept for every category but ``lost`` (the contract only guarantees the
    tracker's lost counts); an example's position is its index in the whole feed.
    """

    def __init__(self, *, window: int = 65536, ordering: str = "partition", start: int = 0) -> None:
        if ordering not in ("partition", "none"):
            raise ValueError(f"ordering must be 'partition' or 'none', got {ordering!r}")
        if window < 64 or window & (window - 1):
            raise ValueError(f"window must be a power of two >= 64, got {window}")
        self.window = window
        self.ordering = ordering
        self.start = start
        self.max_examples = 5
        self._streams: dict[tuple[int, int], _Stream] = {}
        self._counts = dict.fromkeys(COUNTS, 0)  # expected and lost-in-gaps come at report()
        self._examples: dict[str, list[ExampleTuple]] = {c: [] for c in TRACKER_CATEGORIES}
        self.messages = 0

    @property
    def streams(self) -> int:
        return len(self._streams)

    def _note(self, category: str, key: Key, position: int) -> None:
        self._counts[category] += 1
        if category != "lost" and len(self._examples[category]) < self.max_examples:
            self._examples[category].append((*key, position))

    def _missing_in(self, stream: _Stream, low: int, high: int) -> int:
        """How many sequences q with start <= q and low <= q <= high were not received.

        Only ever asked about sequences inside the window, so every sequence in
        ``stream.received`` (never pruned) that lies in the range had its bit set.
        """
        low = max(low, self.start)
        if low > high:
            return 0
        size = high - low + 1
        if size <= len(stream.received):
            received = sum(1 for q in range(low, high + 1) if q in stream.received)
        else:  # a range far larger than anything received, e.g. a jump towards 2**64
            received = sum(1 for q in stream.received if low <= q <= high)
        return size - received

    def update(self, messages: Iterable[tuple[int, int, int]]) -> None:
        """Feeds messages, in order, one at a time."""
        for producer_id, partition, sequence in messages:
            self._feed_one(producer_id, partition, sequence)

    def _feed_one(self, producer_id: int, partition: int, s: int) -> None:
        window, start = self.window, self.start
        position = self.messages
        self.messages += 1
        key = (producer_id, partition, s)
        stream = self._streams.setdefault((producer_id, partition), _Stream())
        if stream.high is None:
            # First message: what is already below the window is lost; what is inside it
            # is a gap that report() counts while it lasts.
            stream.high = s
            if s < start:
                self._note("unexpected", key, position)
                return
            self._counts["lost"] += self._missing_in(stream, start, s - window)
            self._counts["delivered"] += 1
            stream.received.add(s)
            return
        high = stream.high
        if s < start:
            self._note("unexpected", key, position)
        elif s <= high - window:
            self._note("late", key, position)
        elif s > high:
            # Sequences leaving the window: q in (high - window, s - window].
            self._counts["lost"] += self._missing_in(stream, high - window + 1, s - window)
            stream.high = s
            stream.received.add(s)
            self._counts["delivered"] += 1
        elif s in stream.received:
            self._note("duplicated", key, position)
        else:
            stream.received.add(s)
            self._counts["delivered"] += 1
            if self.ordering == "partition":
                self._note("reordered", key, position)

    def report(self) -> dict[str, Any]:
        """A snapshot, shaped like ``check_delivery``'s dict (examples also have ``late``)."""
        counts = dict(self._counts)
        gaps = 0
        expected = 0
        for stream in self._streams.values():
            if stream.high is None or stream.high < self.start:
                continue
            expected += stream.high - self.start + 1
            gaps += self._missing_in(stream, stream.high - self.window + 1, stream.high)
        counts["expected"] = expected
        counts["lost"] += gaps
        examples = {category: list(found) for category, found in self._examples.items()}
        return {**counts, "ordering": self.ordering, "examples": examples}


# --------------------------------------------------------------------------------------------
# latency_report
# --------------------------------------------------------------------------------------------

PERCENTILES: tuple[tuple[str, Fraction], ...] = (
    ("p50_ns", Fraction(50)),
    ("p90_ns", Fraction(90)),
    ("p99_ns", Fraction(99)),
    ("p999_ns", Fraction("99.9")),
    ("p9999_ns", Fraction("99.99")),
)
"""Each percentile field and its p, as exact fractions (99.9 means 999/10, not a float)."""


def nearest_rank(ordered: Sequence[int], p: Fraction) -> int:
    """The p-th percentile of sorted values: ``ordered[ceil(p/100 * n) - 1]``, index >= 0."""
    index = max(math.ceil(p / 100 * len(ordered)) - 1, 0)
    return ordered[index]


def latency_report(
    sent_ns: Sequence[int], received_ns: Sequence[int], *, bound_ns: int | None = None
) -> dict[str, Any]:
    """What ``kaelix.validate.latency_report`` must report, as a plain dict.

    ``mean_ns`` is an exact Fraction (compare it approximately). With no samples, every
    statistic is None.
    """
    if len(sent_ns) != len(received_ns):
        raise ValueError("sent_ns and received_ns must have the same length")
    latencies = sorted(r - s for s, r in zip(sent_ns, received_ns, strict=True))
    count = len(latencies)
    result: dict[str, Any] = {"count": count, "bound_ns": bound_ns}
    if count:
        result["min_ns"] = latencies[0]
        result["max_ns"] = latencies[-1]
        result["mean_ns"] = Fraction(sum(latencies), count)
        for name, p in PERCENTILES:
            result[name] = nearest_rank(latencies, p)
    else:
        for name in ("min_ns", "max_ns", "mean_ns", *(name for name, _ in PERCENTILES)):
            result[name] = None
    result["over_bound"] = (
        0 if bound_ns is None else sum(1 for latency in latencies if latency > bound_ns)
    )
    return result


# --------------------------------------------------------------------------------------------
# validate_message_invariants
# --------------------------------------------------------------------------------------------

_OFFSET_TIMESTAMP = 32  # magic 4, crc 4, version 1, flags 1, count 2, length 4, ids 16

Violation = tuple[int | None, str, tuple[str, ...]]
"""(index, rule, words the detail must contain)."""


def validate_message_invariants(
    frames: bytes,
    *,
    source: str,
    now_ns: int,
    future_tolerance_ns: int = 60_000_000_000,
    max_frame_size: int = reference.DEFAULT_MAX_FRAME_SIZE,
) -> list[Violation]:
    """Every broken invariant of the frames laid end to end in ``frames``, in frame order.

    ``source`` says where the frames come from, because that decides which rule a bad CRC
    breaks:

    - ``"bytes"``: raw bytes. Each frame is decoded (with the largest frame size, so that
      ``frame_size`` is a rule of its own); the first DecodeError, a bad CRC included, is
      the rule ``frame`` at that frame's index, with its reason and offset, and the walk
      stops there.
    - ``"batch"``: a MessageBatch (or a Message, one frame). Its frames are well formed
      already; a stored CRC that differs from the recomputed one is the rule ``checksum``.

    Then ``frame_size`` (frame longer than max_frame_size) and ``timestamp`` (timestamp_ns
    later than now_ns + future_tolerance_ns) for each frame. An empty list means valid.
    """
    if source not in ("bytes", "batch"):
        raise ValueError(f"source must be 'bytes' or 'batch', got {source!r}")
    violations: list[Violation] = []
    position = 0
    index = 0
    while position < len(frames):
        if source == "bytes":
            try:
                reference._decode_frame(frames, position, reference.LARGEST_MAX_FRAME_SIZE)
            except reference.RefDecodeError as error:
                violations.append((index, "frame", (error.reason, str(error.offset))))
                return violations
        (stored_crc,) = struct.unpack_from("<I", frames, position + reference.OFFSET_CRC)
        (frame_length,) = struct.unpack_from("<I", frames, position + reference.OFFSET_FRAME_LENGTH)
        (timestamp_ns,) = struct.unpack_from("<q", frames, position + _OFFSET_TIMESTAMP)
        end = position + frame_length
        if reference.crc32c(frames[position + 8 : end]) != stored_crc:
            violations.append((index, "checksum", ()))
        if frame_length > max_frame_size:
            violations.append((index, "frame_size", ()))
        if timestamp_ns > now_ns + future_tolerance_ns:
            violations.append((index, "timestamp", ()))
        position = end
        index += 1
    return violations
