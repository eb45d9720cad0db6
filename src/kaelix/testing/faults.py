"""Fault plans: what a faulty channel does to a batch, and exactly what a check must say.

A `FaultPlan` turns a sent `MessageBatch` into the batch a faulty transport would deliver
(messages dropped, duplicated, swapped, delayed or corrupted) and, beside it, the
`DeliveryReport` that ``kaelix.check_delivery(sent, observed)`` must return for the pair.
That lets a project check its own consumers, brokers and pipelines against known damage,
and check its own delivery checks against the truth.

Faults come two ways, which may be mixed: explicit `Fault` events (what hypothesis draws
and shrinks: fewer faults, earlier messages, shorter distances) and per-message rates drawn
from ``seed`` (for bulk runs). Either way ``apply`` is a pure function of the plan and the
batch: the same plan on the same batch gives the same bytes and the same report.

Imports numpy and kaelix's core only (never hypothesis).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from kaelix._batch import MessageBatch
from kaelix._codec import crc32c
from kaelix.validate._reports import CATEGORIES, DeliveryReport, Example

__all__ = ["FAULT_KINDS", "Fault", "FaultKind", "FaultPlan"]

FaultKind = Literal["drop", "duplicate", "reorder", "corrupt", "delay"]
FAULT_KINDS: tuple[FaultKind, ...] = ("drop", "duplicate", "reorder", "corrupt", "delay")
"""Every kind of fault, in the order a plan applies them."""

_ORDERINGS = ("partition", "producer", "global", "none")
_REPORTED = tuple(c for c in CATEGORIES if c != "late")  # check_delivery's (late: the tracker's)
_MAX_DISTANCE = 1 << 20


@dataclass(frozen=True)
class Fault:
    """One fault done to the message at ``index`` of the sent batch (its row).

    - ``drop``: it never arrives.
    - ``duplicate``: it arrives, and so does a copy, just after the message sent
      ``distance`` rows after it (or last).
    - ``reorder``: it swaps places with the next message of its own (producer, partition)
      that was sent at most ``distance`` rows after it (none there: nothing happens).
    - ``corrupt``: every copy of it arrives with one byte of its payload inverted (or, for
      an empty payload, the lowest bit of its timestamp), the frame resealed with a new
      CRC32C: intact as a frame, different in content, so its checksum differs.
    - ``delay``: it arrives just after the message sent ``distance`` rows after it (or
      last) instead of in its own place.

    ``distance`` (at least 1) matters to duplicate, reorder and delay only.
    """

    kind: FaultKind
    index: int
    distance: int = 1

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"Fault kind must be one of {FAULT_KINDS}, got {self.kind!r}")
        _check_int("Fault index", self.index, 0, None)
        _check_int("Fault distance", self.distance, 1, _MAX_DISTANCE)


def _check_int(what: str, value: object, low: int, high: int | None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"from {low} to {high:,}"
        raise ValueError(f"{what} must be {bound}, got {value}")
    return value


def _check_rate(kind: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"FaultPlan {kind} must be a rate (float), got {type(value).__name__}")
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"FaultPlan {kind} must be a rate from 0 to 1, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class FaultPlan:
    """What a faulty channel does to the messages sent through it.

    Args:
        drop, duplicate, reorder, corrupt, delay: for each sent message, the probability
            that it suffers that fault (0 to 1), drawn from ``seed``; a message may suffer
            several kinds. See `Fault` for what each kind does.
        max_distance: the largest distance of a drawn duplicate, reorder or delay (each
            distance is drawn from 1 to it).
        seed: the seed of the drawn faults.
        faults: explicit faults, applied with the drawn ones; an index past the end of the
            batch is ignored (so a drawn plan fits any batch).

    ``apply(batch)`` gives the observed batch and the report ``check_delivery`` must give.

    >>> import kaelix
    >>> sent = kaelix.MessageBatch.from_messages(
    ...     kaelix.Message(b"m%d" % i, sequence=i) for i in range(5))
    >>> plan = FaultPlan(faults=(Fault("drop", 1), Fault("duplicate", 3)))
    >>> observed, expected = plan.apply(sent)
    >>> [m.sequence for m in observed]
    [0, 2, 3, 4, 3]
    >>> (expected.lost, expected.duplicated)
    (1, 1)
    >>> kaelix.check_delivery(sent, observed) == expected
    True
    """

    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    corrupt: float = 0.0
    delay: float = 0.0
    max_distance: int = 8
    seed: int = 0
    faults: tuple[Fault, ...] = field(default=())

    def __post_init__(self) -> None:
        for kind in FAULT_KINDS:
            object.__setattr__(self, kind, _check_rate(kind, getattr(self, kind)))
        _check_int("FaultPlan max_distance", self.max_distance, 1, _MAX_DISTANCE)
        _check_int("FaultPlan seed", self.seed, 0, None)
        if isinstance(self.faults, (str, bytes)) or not isinstance(self.faults, Iterable):
            raise TypeError(f"FaultPlan faults must be Faults, got {type(self.faults).__name__}")
        faults = tuple(self.faults)
        for fault in faults:
            if not isinstance(fault, Fault):
                raise TypeError(f"FaultPlan faults must be Faults, got {type(fault).__name__}")
        object.__setattr__(self, "faults", faults)

    @property
    def empty(self) -> bool:
        """Whether the plan can do nothing to any batch."""
        return not self.faults and not any(getattr(self, kind) for kind in FAULT_KINDS)

    def resolve(self, count: int) -> tuple[Fault, ...]:
        """The faults this plan does to a batch of ``count`` messages: the explicit ones that
        fit, then the drawn ones, each kind in `FAULT_KINDS` order."""
        _check_int("count", count, 0, None)
        out = [fault for fault in self.faults if fault.index < count]
        rates = [getattr(self, kind) for kind in FAULT_KINDS]
        if count and any(rates):
            rng = np.random.default_rng(self.seed)
            hit = rng.random((len(FAULT_KINDS), count)) < np.array(rates)[:, None]
            distance = rng.integers(1, self.max_distance + 1, (len(FAULT_KINDS), count))
            for k, kind in enumerate(FAULT_KINDS):
                for index in np.flatnonzero(hit[k]).tolist():
                    out.append(Fault(kind, index, int(distance[k, index])))
        return tuple(out)

    def apply(
        self, batch: MessageBatch, *, ordering: str = "partition", max_examples: int = 5
    ) -> tuple[MessageBatch, DeliveryReport]:
        """The batch as this plan's channel delivers it, and the report
        ``check_delivery(batch, observed, ordering=..., max_examples=...)`` must return.

        Faults are done drops first, then swaps, delays, duplicates and corruptions, each
        kind in the order of its messages (see `Fault`). The report is worked out from
        what the plan did, by the definition of each count (see ``check_delivery``), in
        plain Python: a reference that does not share code with the compiled checks.

        Raises:
            TypeError: batch is not a MessageBatch.
            ValueError: ordering or max_examples is not valid.
        """
        if not isinstance(batch, MessageBatch):
            raise TypeError(f"FaultPlan.apply takes a MessageBatch, got {type(batch).__name__}")
        if ordering not in _ORDERINGS:
            raise ValueError(f"ordering must be one of {_ORDERINGS}, got {ordering!r}")
        _check_int("max_examples", max_examples, 0, None)
        arrivals, corrupted = _arrivals(batch, self.resolve(len(batch)))
        observed = _observed(batch, arrivals, corrupted)
        return observed, _expected(batch, observed, ordering, max_examples)


def _next_of_stream(batch: MessageBatch) -> npt.NDArray[np.int64]:
    """Each row's next row of the same (producer, partition), or -1."""
    count = len(batch)
    following = np.full(count, -1, np.int64)
    if count < 2:
        return following
    keys = np.stack([batch.producer_id, batch.partition.astype(np.uint64)], axis=1)
    _, stream = np.unique(keys, axis=0, return_inverse=True)
    order = np.argsort(np.asarray(stream).reshape(-1), kind="stable")
    same = np.asarray(stream).reshape(-1)[order[1:]] == np.asarray(stream).reshape(-1)[order[:-1]]
    following[order[:-1][same]] = order[1:][same]
    return following


def _arrivals(
    batch: MessageBatch, faults: tuple[Fault, ...]
) -> tuple[npt.NDArray[np.int64], set[int]]:
    """The sent rows in the order they arrive, and the rows whose copies are corrupted.

    Every arrival has a place: a message's own is its row; a swap exchanges two places; a
    delay moves a message to just after the place ``distance`` further on (the last place
    at most); a copy goes just after the place ``distance`` beyond its original's. Arrivals
    go in order of place, several moved to one place in the order their faults were done.
    Faults are done drops first, then swaps, delays, duplicates and corruptions, each kind
    in the order of its rows."""
    count = len(batch)
    by_kind: dict[str, list[Fault]] = {kind: [] for kind in FAULT_KINDS}
    for fault in sorted(faults, key=lambda f: f.index):
        by_kind[fault.kind].append(fault)
    dropped = {fault.index for fault in by_kind["drop"]}
    place = np.arange(count, dtype=np.int64) * 2  # own places even, moved ones odd
    done = np.zeros(count, np.int64)  # the order of the fault that moved it (ties)
    moves = 0
    if by_kind["reorder"]:
        following = _next_of_stream(batch)
        swapped: set[int] = set()
        for fault in by_kind["reorder"]:
            first = fault.index
            second = int(following[first])
            if (
                second < 0
                or second - first > fault.distance
                or {first, second} & (dropped | swapped)
            ):
                continue
            swapped.update((first, second))
            place[first], place[second] = place[second], place[first]
    last = 2 * (count - 1)
    for fault in by_kind["delay"]:
        if fault.index not in dropped:
            moves += 1
            place[fault.index] = min(place[fault.index] // 2 * 2 + 2 * fault.distance, last) + 1
            done[fault.index] = moves
    copies = [fault for fault in by_kind["duplicate"] if fault.index not in dropped]
    rows = np.array(
        [r for r in range(count) if r not in dropped] + [f.index for f in copies], np.int64
    )
    copy_place = [min(place[f.index] // 2 * 2 + 2 * f.distance, last) + 1 for f in copies]
    copy_done = list(range(moves + 1, moves + 1 + len(copies)))
    keep = np.ones(count, bool)
    keep[list(dropped)] = False
    places = np.concatenate([place[keep], np.array(copy_place, np.int64)])
    ties = np.concatenate([done[keep], np.array(copy_done, np.int64)])
    order = np.lexsort((ties, places))
    corrupted = {fault.index for fault in by_kind["corrupt"]} - dropped
    return rows[order], corrupted


def _observed(
    batch: MessageBatch, rows: npt.NDArray[np.int64], corrupted: set[int]
) -> MessageBatch:
    """The frames of ``rows`` end to end, the corrupted ones changed and resealed."""
    if not len(rows):
        return MessageBatch()
    data = np.frombuffer(batch.buffer, np.uint8)
    offsets = batch.offsets
    starts = offsets[rows]
    lengths = offsets[rows + 1] - starts
    ends = np.cumsum(lengths)
    gather = np.arange(int(ends[-1]), dtype=np.int64) + np.repeat(
        starts - (ends - lengths), lengths
    )
    out = data[gather]
    if corrupted:
        for at in np.flatnonzero(np.isin(rows, list(corrupted))).tolist():
            _corrupt(out, int(ends[at] - lengths[at]), int(lengths[at]))
    return MessageBatch.from_bytes(out.tobytes())


def _corrupt(buf: npt.NDArray[np.uint8], start: int, length: int) -> None:
    """Inverts the first payload byte of the frame at ``start`` (or bit 0 of its timestamp
    when the payload is empty) and writes the frame's new CRC32C."""
    header = buf[start : start + 56]
    key, headers, payload = (int(header[i : i + 4].view("<u4")[0]) for i in (44, 48, 52))
    at = start + 56 + key + headers if payload else start + 32
    buf[at] ^= np.uint8(0xFF) if payload else np.uint8(1)
    crc = crc32c(buf[start + 8 : start + length])
    buf[start + 4 : start + 8] = np.frombuffer(crc.to_bytes(4, "little"), np.uint8)


def _expected(
    sent: MessageBatch, observed: MessageBatch, ordering: str, max_examples: int
) -> DeliveryReport:
    """check_delivery's report for (sent, observed), by its definition, in plain Python."""
    keys = list(
        zip(
            sent.producer_id.tolist(),
            sent.partition.tolist(),
            sent.sequence.tolist(),
            strict=True,
        )
    )
    first_row: dict[tuple[int, int, int], int] = {}
    for row, key in enumerate(keys):
        first_row.setdefault(key, row)
    sent_checksum = sent.checksum.tolist()
    examples: dict[str, list[Example]] = {category: [] for category in CATEGORIES}
    counts = dict.fromkeys(CATEGORIES, 0)

    def note(category: str, key: tuple[int, int, int], position: int) -> None:
        counts[category] += 1
        if len(examples[category]) < max_examples:
            examples[category].append(Example(*key, position))

    arrived: set[tuple[int, int, int]] = set()
    running_max: dict[object, int] = {}
    got = zip(
        observed.producer_id.tolist(),
        observed.partition.tolist(),
        observed.sequence.tolist(),
        observed.checksum.tolist(),
        strict=True,
    )
    for position, (producer_id, partition, sequence, checksum) in enumerate(got):
        key = (producer_id, partition, sequence)
        origin = first_row.get(key)
        if origin is None:
            note("unexpected", key, position)
            continue
        if key in arrived:
            note("duplicated", key, position)
            continue
        arrived.add(key)
        if checksum != sent_checksum[origin]:
            note("corrupted", key, position)
        if ordering != "none":
            scope: object = (
                key[:2] if ordering == "partition" else key[0] if ordering == "producer" else 0
            )
            highest = running_max.get(scope)
            if highest is not None and origin < highest:
                note("reordered", key, position)
            running_max[scope] = origin if highest is None else max(highest, origin)
    lost_rows = sorted(row for key, row in first_row.items() if key not in arrived)
    counts["lost"] = len(lost_rows)
    examples["lost"] = [Example(*keys[row], row) for row in lost_rows[:max_examples]]
    return DeliveryReport(
        expected=len(first_row),
        delivered=len(arrived),
        lost=counts["lost"],
        duplicated=counts["duplicated"],
        reordered=counts["reordered"],
        corrupted=counts["corrupted"],
        unexpected=counts["unexpected"],
        ordering=ordering,
        examples={category: tuple(examples[category]) for category in _REPORTED},
    )
