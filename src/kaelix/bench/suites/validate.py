"""The validate suite: `kaelix.validate.check_delivery` and `DeliveryTracker.update` on the
columns of millions of messages, each beside a plain-Python (dict and set) implementation of
the same contract, and the numba compile time of a first call, measured apart in a fresh
process.

The data: 64 B messages from 8 producers (random 64-bit ids) × 4 partitions, each message's
(producer, partition) drawn at random so consecutive messages seldom share a stream, with
consecutive sequences per stream and a random checksum. Only the four key columns a
`MessageBatch` carries (``producer_id``, ``partition``, ``sequence``, ``checksum``) are built,
with numpy directly: the validators never read payloads. The received messages are the sent
ones with a few faults injected (`FAULTS`: drops, duplicates, two messages of one stream
swapped, corrupted checksums), so the kernels take their fault paths too; every factory
checks the counts it gets once, before timing.

Messages per second count the received messages. The pure-Python contenders run on a
smaller run built the same way (10 M messages would take Python over ten seconds and
gigabytes per call) and are compared per message; a smaller table is kinder to Python's caches, so
the ratio is if anything an underestimate.

Imports the public kaelix API (``kaelix.validate``, inside the factories) and numpy; never
numba (the compile-time probe imports it in its own process) nor kaelix's private modules.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from kaelix.bench._compile import compile_time_case
from kaelix.bench._model import Bar, Case, Contender, Suite, SuiteConfig, Workload
from kaelix.bench.suites._options import message_count

PAYLOAD_SIZE = 64
_SEED = 20_240_604
COLUMNS = ("producer_id", "partition", "sequence", "checksum")

Columns = dict[str, npt.NDArray[Any]]
"""The four key columns of a run of messages, as `check_delivery` takes them."""

ListColumns = tuple[list[int], list[int], list[int], list[int]]
"""The same columns as Python lists (producer_id, partition, sequence, checksum): what the
pure-Python contenders read."""


@dataclass(frozen=True)
class ValidateSizes:
    """How much each case checks.

    ``messages``: sent messages per kaelix call (received: the same, give or take the
    faults). ``reference_messages``: sent messages per pure-Python call. ``tracker_batch``:
    messages per `DeliveryTracker.update` call. ``producers`` × ``partitions`` streams.
    ``probe_messages``: the tiny input of the compile-time probe.
    """

    messages: int = 1_000_000
    reference_messages: int = 200_000
    tracker_batch: int = 65_536
    producers: int = 8
    partitions: int = 4
    probe_messages: int = 64


QUICK_SIZES = ValidateSizes()
FULL_SIZES = ValidateSizes(messages=10_000_000)


@dataclass(frozen=True)
class Faults:
    """The faults injected into the received messages: sent messages dropped, sent
    messages received twice (the copy about a thousand messages later), swaps of two
    messages of one stream (each one reordered message) and checksums flipped."""

    dropped: int = 3
    duplicated: int = 3
    swapped: int = 1
    corrupted: int = 2


FAULTS = Faults()


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(f"sanity check failed: {what}")


# ------------------------------------------------------------------------------------ data


def sent_columns(count: int, producers: int = 8, partitions: int = 4, seed: int = _SEED) -> Columns:
    """``count`` sent messages: each one's stream (producer, partition) drawn at random,
    sequences consecutive from 0 within each stream, random 64-bit producer ids and random
    checksums. Built with numpy in a few vectorised passes (about a second for 10 M)."""
    streams = producers * partitions
    if not 1 <= streams <= 256:
        raise ValueError(f"producers * partitions must be 1 to 256; got {streams}")
    rng = np.random.default_rng(seed)
    stream = rng.integers(0, streams, count, dtype=np.uint8)
    order = np.argsort(stream, kind="stable")  # a radix sort for uint8
    counts = np.bincount(stream, minlength=streams)
    starts = np.cumsum(counts) - counts
    sequence = np.empty(count, np.uint64)
    sequence[order] = np.arange(count, dtype=np.uint64) - np.repeat(starts, counts).astype(
        np.uint64
    )
    producer_ids = rng.integers(1, 1 << 63, producers, dtype=np.uint64)
    _expect(len(set(producer_ids.tolist())) == producers, "distinct producer ids")
    return {
        "producer_id": producer_ids[stream // partitions],
        "partition": (stream % partitions).astype(np.uint32),
        "sequence": sequence,
        "checksum": rng.integers(0, 1 << 32, count, dtype=np.uint32),
    }


@dataclass(frozen=True)
class FaultyRun:
    """Sent and received columns and the counts a correct checker reports for them."""

    sent: Columns
    received: Columns
    expected: dict[str, int]

    @property
    def received_messages(self) -> int:
        """How many messages were received (what messages/s counts)."""
        return len(self.received["sequence"])


_DUPLICATE_DISTANCE = 1_000  # in received messages: ~31 sequences later in a 32-stream run
_MIN_STRETCH = 512  # messages around each fault


def faulty_run(
    count: int,
    producers: int = 8,
    partitions: int = 4,
    faults: Faults = FAULTS,
    seed: int = _SEED,
) -> FaultyRun:
    """``count`` sent messages (`sent_columns`) and the received ones: the same in the same
    order except for ``faults``, each placed in its own stretch of the run so none touches
    another (a dropped message is never the last of its stream, a duplicate's copy lands
    within a tracker window of the original)."""
    sites = faults.dropped + faults.duplicated + faults.swapped + faults.corrupted
    stretch = count // (sites + 1)
    if stretch < _MIN_STRETCH:
        raise ValueError(
            f"faulty_run needs at least {_MIN_STRETCH * (sites + 1):,} messages for {sites} "
            f"faults; got {count:,}"
        )
    sent = sent_columns(count, producers, partitions, seed)
    distance = min(_DUPLICATE_DISTANCE, stretch // 2)
    # Site k sits in the middle of stretch k (of sites + 1): far from every other and from the
    # ends of the run.
    centre = [stretch * k + stretch // 2 for k in range(sites)]
    dropped = centre[: faults.dropped]
    duplicated = centre[faults.dropped : faults.dropped + faults.duplicated]
    swapped = centre[faults.dropped + faults.duplicated : sites - faults.corrupted]
    corrupted = centre[sites - faults.corrupted :]

    producer, partition = sent["producer_id"], sent["partition"]
    index = np.arange(count, dtype=np.int64)
    for first in swapped:
        ahead = slice(first + 1, first + stretch // 2)
        later = np.flatnonzero(
            (producer[ahead] == producer[first]) & (partition[ahead] == partition[first])
        )
        _expect(later.size > 0, "a later message of the same stream to swap with")
        second = first + 1 + int(later[0])
        index[first], index[second] = second, first
    index = np.insert(index, [p + distance for p in duplicated], duplicated)
    keep = np.ones(count, dtype=bool)
    keep[dropped] = False
    index = index[keep[index]]

    received = {name: sent[name][index] for name in COLUMNS}
    flipped = np.isin(index, corrupted)
    received["checksum"][flipped] ^= np.uint32(0xFFFFFFFF)
    _expect(int(flipped.sum()) == faults.corrupted, "each corrupted message arrives once")
    delivered = count - faults.dropped
    expected = {
        "expected": count,
        "delivered": delivered,
        "lost": faults.dropped,
        "duplicated": faults.duplicated,
        "reordered": faults.swapped,
        "corrupted": faults.corrupted,
        "unexpected": 0,
    }
    return FaultyRun(sent, received, expected)


def reinterleaved(run: FaultyRun, seed: int = _SEED + 1) -> FaultyRun:
    """The same run received with the streams interleaved anew (each stream's messages keep
    their order, as when several producers' messages meet at a consumer in another order
    than they were sent in): the same counts for ordering ``"partition"``, but the received
    messages are no longer near where they were sent."""
    received = run.received
    _, stream = np.unique(
        np.stack([received["producer_id"], received["partition"].astype(np.uint64)]),
        axis=1,
        return_inverse=True,
    )
    redrawn = np.random.default_rng(seed).permutation(stream)  # the same count per stream
    index = np.empty(len(stream), np.int64)
    index[np.argsort(redrawn, kind="stable")] = np.argsort(stream, kind="stable")
    return FaultyRun(run.sent, {name: received[name][index] for name in COLUMNS}, run.expected)


def list_columns(columns: Columns) -> ListColumns:
    """The columns as Python lists of ints (what the pure-Python contenders read)."""
    producer, partition, sequence, checksum = (columns[name].tolist() for name in COLUMNS)
    return producer, partition, sequence, checksum


def _counts(report: Any, names: Iterable[str]) -> dict[str, int]:
    return {name: int(getattr(report, name)) for name in names}


# ------------------------------------------------------------------ the pure-Python twins

Key = tuple[int, int, int]
Example = tuple[int, int, int, int]  # (producer_id, partition, sequence, position)


def python_check_delivery(
    sent: ListColumns, received: ListColumns, *, max_examples: int = 5
) -> dict[str, Any]:
    """The `check_delivery` contract with ``ordering="partition"`` in plain Python: a dict
    from each key to its first send position and checksum, a set of keys received, a dict of
    the highest send position delivered per (producer, partition). Returns the counts and
    the first ``max_examples`` examples of each category (as `check_delivery` does)."""
    s_producer, s_partition, s_sequence, s_checksum = sent
    first: dict[Key, tuple[int, int]] = {}
    for position, (key, checksum) in enumerate(
        zip(zip(s_producer, s_partition, s_sequence, strict=True), s_checksum, strict=True)
    ):
        if key not in first:
            first[key] = (position, checksum)

    examples: dict[str, list[Example]] = {
        name: [] for name in ("lost", "duplicated", "reordered", "corrupted", "unexpected")
    }

    def note(category: str, key: Key, position: int) -> None:
        shown = examples[category]
        if len(shown) < max_examples:
            shown.append((*key, position))

    received_keys: set[Key] = set()
    running: dict[tuple[int, int], int] = {}
    delivered = duplicated = reordered = corrupted = unexpected = 0
    r_producer, r_partition, r_sequence, r_checksum = received
    for position, (producer, partition, sequence, checksum) in enumerate(
        zip(r_producer, r_partition, r_sequence, r_checksum, strict=True)
    ):
        key = (producer, partition, sequence)
        entry = first.get(key)
        if entry is None:
            unexpected += 1
            note("unexpected", key, position)
            continue
        if key in received_keys:
            duplicated += 1
            note("duplicated", key, position)
            continue
        received_keys.add(key)
        delivered += 1
        sent_position, sent_checksum = entry
        if checksum != sent_checksum:
            corrupted += 1
            note("corrupted", key, position)
        scope = (producer, partition)
        highest = running.get(scope, -1)
        if sent_position < highest:
            reordered += 1
            note("reordered", key, position)
        else:
            running[scope] = sent_position

    lost = len(first) - delivered
    if lost and max_examples:
        for key, (sent_position, _) in first.items():  # first occurrences, in sent order
            if key not in received_keys:
                note("lost", key, sent_position)
                if len(examples["lost"]) == max_examples:
                    break
    return {
        "expected": len(first),
        "delivered": delivered,
        "lost": lost,
        "duplicated": duplicated,
        "reordered": reordered,
        "corrupted": corrupted,
        "unexpected": unexpected,
        "examples": examples,
    }


class PythonTracker:
    """The `DeliveryTracker` contract (``ordering="partition"``) in plain Python: per
    (producer, partition) a list ``[high, set of sequences received inside the window]``;
    sequences that leave the window are dropped from the set (counted lost when absent)."""

    def __init__(self, *, window: int = 65_536, start: int = 0) -> None:
        self.window = window
        self.start = start
        self.streams: dict[tuple[int, int], list[Any]] = {}
        self.messages = 0
        self.delivered = self.lost = self.duplicated = self.reordered = 0
        self.unexpected = self.late = 0

    def update(self, producers: list[int], partitions: list[int], sequences: list[int]) -> None:
        """Feed one batch of messages, as three lists."""
        window, start, streams = self.window, self.start, self.streams
        for producer, partition, sequence in zip(producers, partitions, sequences, strict=True):
            if sequence < start:
                self.unexpected += 1
                continue
            state = streams.get((producer, partition))
            if state is None:
                # Sequences start..sequence-window are below the window already: lost.
                self.lost += max(0, sequence - window + 1 - start)
                streams[(producer, partition)] = [sequence, {sequence}]
                self.delivered += 1
                continue
            high, received = state
            if sequence > high:
                low = max(start, high - window + 1)  # the window's lowest sequence so far
                leaving = sequence - window + 1  # the new window starts here
                for gone in range(low, min(leaving, high + 1)):
                    if gone in received:
                        received.remove(gone)
                    else:
                        self.lost += 1
                self.lost += max(0, leaving - max(low, high + 1))  # never in a window
                state[0] = sequence
                received.add(sequence)
                self.delivered += 1
            elif sequence <= high - window:
                self.late += 1
            elif sequence in received:
                self.duplicated += 1
            else:
                received.add(sequence)
                self.delivered += 1
                self.reordered += 1
        self.messages += len(sequences)

    def report(self) -> dict[str, int]:
        """The counts of a `DeliveryTracker.report` (gaps still inside a window count as
        lost)."""
        expected = gaps = 0
        for high, received in self.streams.values():
            expected += high - self.start + 1
            low = max(self.start, high - self.window + 1)
            gaps += high - low + 1 - len(received)
        return {
            "expected": expected,
            "delivered": self.delivered,
            "lost": self.lost + gaps,
            "duplicated": self.duplicated,
            "reordered": self.reordered,
            "corrupted": 0,
            "unexpected": self.unexpected,
            "late": self.late,
        }


# -------------------------------------------------------------------------- check_delivery


def _tracker_expected(run: FaultyRun) -> dict[str, int]:
    return {**run.expected, "corrupted": 0, "late": 0}


def _kaelix_check(sizes: ValidateSizes, anew: bool = False) -> Workload:
    from kaelix.validate import check_delivery

    run = faulty_run(sizes.messages, sizes.producers, sizes.partitions)
    if anew:
        run = reinterleaved(run)
    report = check_delivery(run.sent, run.received)  # compiles or loads the kernels
    _expect(_counts(report, run.expected) == run.expected, f"check_delivery counts {report}")
    return Workload(
        functools.partial(check_delivery, run.sent, run.received),
        messages=run.received_messages,
    )


def _python_check(sizes: ValidateSizes, anew: bool = False) -> Workload:
    run = faulty_run(sizes.reference_messages, sizes.producers, sizes.partitions)
    if anew:
        run = reinterleaved(run)
    sent, received = list_columns(run.sent), list_columns(run.received)
    result = python_check_delivery(sent, received)
    _expect({k: result[k] for k in run.expected} == run.expected, "pure-Python counts")
    return Workload(
        functools.partial(python_check_delivery, sent, received),
        messages=run.received_messages,
    )


def _column_floor(sizes: ValidateSizes) -> Workload:
    """Reads the eight key columns of the same run once (numpy reductions): the memory
    traffic any exact check must pay, whatever it computes."""
    run = faulty_run(sizes.messages, sizes.producers, sizes.partitions)
    columns = [side[name] for side in (run.sent, run.received) for name in COLUMNS]

    def call() -> int:
        return sum(int(np.bitwise_xor.reduce(column)) for column in columns)

    return Workload(call, messages=run.received_messages)


# ------------------------------------------------------------------------- DeliveryTracker


def _batches(count: int, size: int) -> list[slice]:
    return [slice(at, min(at + size, count)) for at in range(0, count, size)]


def _kaelix_tracker(sizes: ValidateSizes) -> Workload:
    from kaelix.validate import DeliveryTracker

    run = faulty_run(sizes.messages, sizes.producers, sizes.partitions)
    columns = ("producer_id", "partition", "sequence")
    batches = [
        {name: run.received[name][part] for name in columns}
        for part in _batches(run.received_messages, sizes.tracker_batch)
    ]

    def call() -> DeliveryTracker:
        tracker = DeliveryTracker()
        update = tracker.update
        for batch in batches:
            update(batch)
        return tracker

    report = call().report()
    expected = _tracker_expected(run)
    _expect(_counts(report, expected) == expected, f"DeliveryTracker counts {report}")
    return Workload(call, messages=run.received_messages)


def _python_tracker(sizes: ValidateSizes) -> Workload:
    run = faulty_run(sizes.reference_messages, sizes.producers, sizes.partitions)
    producer, partition, sequence, _ = list_columns(run.received)
    batches = [
        (producer[part], partition[part], sequence[part])
        for part in _batches(run.received_messages, sizes.tracker_batch)
    ]

    def call() -> PythonTracker:
        tracker = PythonTracker()
        update = tracker.update
        for batch in batches:
            update(*batch)
        return tracker

    _expect(call().report() == _tracker_expected(run), "pure-Python tracker counts")
    return Workload(call, messages=run.received_messages)


# ------------------------------------------------------------------------ compile time

PROBED = ("check_delivery", "DeliveryTracker.update")


def compile_probe(what: str, messages: int = 64) -> dict[str, int]:
    """Run in a fresh process (see `_probe`): import numba (not counted), then time the
    first and the second call of ``what`` on ``messages`` messages. Returns nanoseconds."""
    import numba  # noqa: F401  (its import is not compile time)

    from kaelix.validate import DeliveryTracker, check_delivery

    run = sent_columns(messages, 2, 2)
    calls: dict[str, Callable[[], object]] = {
        "check_delivery": lambda: check_delivery(run, run),
        "DeliveryTracker.update": lambda: DeliveryTracker().update(run),
    }
    call = calls[what]
    started = time.perf_counter_ns()
    call()
    first = time.perf_counter_ns()
    call()
    second = time.perf_counter_ns()
    return {"first_call_ns": first - started, "second_call_ns": second - first}


# ----------------------------------------------------------------------------------- suite

_RATE = Bar("\u2265 200 M msg/s", "min_messages_per_s", 200e6)
PYTHON = "pure Python (dict/set)"
_COUNTED = "msg/s counts received messages"
_HUNDRED_TIMES_PYTHON = Bar(f"\u2265 100\u00d7 {PYTHON}", "min_speedup", 100.0, peer=PYTHON)


def min_messages(faults: Faults = FAULTS) -> int:
    """The fewest messages a run can hold with every fault in its own stretch."""
    sites = faults.dropped + faults.duplicated + faults.swapped + faults.corrupted
    return _MIN_STRETCH * (sites + 1)


def _describe(sizes: ValidateSizes, faults: Faults = FAULTS) -> str:
    return (
        f"{sizes.producers} producers \u00d7 {sizes.partitions} partitions, each message's "
        f"stream drawn at random, {PAYLOAD_SIZE} B messages (only the key columns are read); "
        f"received = sent with {faults.dropped} dropped, {faults.duplicated} duplicated, "
        f"{faults.swapped} pair of one stream swapped and {faults.corrupted} corrupted; "
        "msg/s counts received messages"
    )


def cases(config: SuiteConfig, sizes: ValidateSizes | None = None) -> Sequence[Case]:
    """The validate cases. ``sizes`` defaults to `QUICK_SIZES` in quick mode and
    `FULL_SIZES` in full mode (the tests pass tiny ones).

    ``config.messages`` (``--messages``) sets the sent messages of every kaelix call (the
    N of the case names; the pure-Python contenders check at most their own count, fewer
    when N is smaller). It must leave room for every fault: at least `min_messages()`. The
    validators read no payload, so ``--size`` does not apply."""
    if sizes is None:
        sizes = QUICK_SIZES if config.quick else FULL_SIZES
    messages = message_count(config, 0, "validate", minimum=min_messages())
    if messages:
        sizes = replace(
            sizes,
            messages=messages,
            reference_messages=min(sizes.reference_messages, messages),
        )
    slice_note = (
        f"the same contract in plain Python (this suite's module), on Python lists prepared "
        f"untimed, over the first {sizes.reference_messages:,} messages of a run built the "
        "same way: compared per message (a smaller table only helps Python)"
    )
    batch = f"batches of {sizes.tracker_batch:,}"
    probe = (
        f"a fresh `python -c` process, NUMBA_CACHE_DIR an empty temporary directory; numba "
        f"imported first (not counted); the first call on {sizes.probe_messages} messages "
        "minus the second"
    )
    return (
        Case(
            f"check_delivery {sizes.messages:,} messages",
            (
                Contender(
                    "kaelix",
                    lambda: _kaelix_check(sizes),
                    role="kaelix",
                    note="check_delivery(sent, received) on numpy columns, ordering='partition'; "
                    + _COUNTED,
                ),
                Contender(PYTHON, lambda: _python_check(sizes), note=slice_note),
                Contender(
                    "memory floor (read the columns)",
                    lambda: _column_floor(sizes),
                    role="reference",
                    note="no checking: numpy reads the four key columns of sent and of "
                    "received once (24 B a message each side), the traffic any exact check "
                    "pays before it does anything; " + _COUNTED,
                ),
            ),
            bars=(_RATE, _HUNDRED_TIMES_PYTHON),
            note=_describe(sizes),
        ),
        Case(
            f"check_delivery {sizes.messages:,} messages, streams interleaved anew on receipt",
            (
                Contender(
                    "kaelix",
                    lambda: _kaelix_check(sizes, anew=True),
                    role="kaelix",
                    note="the same call on the same run received with its streams interleaved "
                    "anew (each stream's order kept): received messages are no longer near "
                    "where they were sent, so the zipper gives up within its budget and the "
                    "dense path checks them; " + _COUNTED,
                ),
                Contender(PYTHON, lambda: _python_check(sizes, anew=True), note=slice_note),
            ),
            note=_describe(sizes) + "; then the streams interleaved anew (no bar: shown so "
            "that the row above is not read as the rate of every input)",
        ),
        Case(
            f"DeliveryTracker.update {sizes.messages:,} messages ({batch})",
            (
                Contender(
                    "kaelix",
                    lambda: _kaelix_tracker(sizes),
                    role="kaelix",
                    note=f"a new DeliveryTracker() per call, update(columns) for each of the "
                    f"{batch} (numpy views); report() is not timed; " + _COUNTED,
                ),
                Contender(PYTHON, lambda: _python_tracker(sizes), note=slice_note),
            ),
            bars=(_RATE, _HUNDRED_TIMES_PYTHON),
            note=_describe(sizes),
        ),
        compile_time_case(
            __name__,
            "check_delivery",
            "DeliveryTracker.update",
            sizes.probe_messages,
            probe,
            "the validators' rates above are",
        ),
    )


SUITE = Suite(
    name="validate",
    description="check_delivery and DeliveryTracker on numpy columns vs plain Python "
    "(dict/set), and numba compile time",
    cases=cases,
    options=("messages",),
)
