"""kaelix.validate against its plain-Python twin (validate_reference) on the same inputs.

Sent sides are drawn from several producers and partitions, each (producer, partition) with
consecutive sequences, and the received side gets faults injected with known effects:
drops, duplicates, swaps and displacements, changed content (so the checksum differs),
messages never sent. Every ordering is checked on every draw. Hand-built cases pin the exact
counts; edge cases cover empty sides, partition 2**32-1, sequences near 2**64-1, hundreds of
streams, duplicates inside sent, and columns given as a Mapping instead of a MessageBatch.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import subprocess
import sys
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kaelix
import reference
import validate_reference as ref
from kaelix import Message, MessageBatch, validate
from kaelix.validate import _delivery as delivery_module
from strategies_local import to_message
from validate_reference import CATEGORIES, COUNTS, ORDERINGS, TRACKER_CATEGORIES, Record

# The reference runs in plain Python and the first call of each kernel compiles: no deadline.
properties = settings(deadline=None, max_examples=100)

U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
NOW_NS = 1_700_000_000_000_000_000
MINUTE_NS = 60_000_000_000

Columns = dict[str, npt.NDArray[Any]]


@pytest.fixture(scope="module", autouse=True)
def _compiled_kernels() -> None:
    """Calls each entry point once, so that numba compiles before the first property runs."""
    record = [(1, 2, 3, 4)]
    validate.check_delivery(columns(record), columns(record))
    tracker = validate.DeliveryTracker(window=64)
    tracker.update(columns(record))
    tracker.report()
    validate.latency_report(np.array([1, 2]), np.array([3, 5]))


# --------------------------------------------------------------------------------------------
# Helpers: inputs for kaelix, reports as plain dicts
# --------------------------------------------------------------------------------------------


def columns(records: Sequence[Sequence[int]], *, checksum: bool = True) -> Columns:
    """The Mapping-of-arrays form of ``(producer_id, partition, sequence[, checksum])``."""
    result: Columns = {
        "producer_id": np.array([r[0] for r in records], dtype=np.uint64),
        "partition": np.array([r[1] for r in records], dtype=np.uint32),
        "sequence": np.array([r[2] for r in records], dtype=np.uint64),
    }
    if checksum:
        result["checksum"] = np.array([r[3] if len(r) > 3 else 0 for r in records], np.uint32)
    return result


def records_of(batch: MessageBatch) -> list[Record]:
    """The reference's view of a batch: its columns as tuples of Python ints."""
    return list(
        zip(
            batch.producer_id.tolist(),
            batch.partition.tolist(),
            batch.sequence.tolist(),
            batch.checksum.tolist(),
            strict=True,
        )
    )


def example_tuple(example: Any) -> tuple[int, int, int, int]:
    values = (example.producer_id, example.partition, example.sequence, example.position)
    for value in values:
        assert type(value) is int, example
    return values


def as_dict(report: Any) -> dict[str, Any]:
    """A DeliveryReport in the reference's shape, checking the contract's types on the way."""
    result: dict[str, Any] = {}
    for name in COUNTS:
        value = getattr(report, name)
        assert type(value) is int, (name, value)
        result[name] = value
    result["ordering"] = report.ordering
    examples = {}
    for category, found in report.examples.items():
        assert type(found) is tuple, category
        examples[category] = [example_tuple(example) for example in found]
    result["examples"] = examples
    return result


def without_lost_examples(report: dict[str, Any]) -> dict[str, Any]:
    """The tracker's lost examples are not guaranteed; everything else is."""
    examples = {k: v for k, v in report["examples"].items() if k != "lost"}
    return {**report, "examples": examples}


def delivery(
    sent: Sequence[Record], received: Sequence[Record], **options: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(kaelix's report, the reference's) for the same records given as columns.

    kaelix runs five ways, which must agree: on one thread and on two (the zipper's two
    halves, or the dense path's two walks of the received messages, however few messages
    there are), then the same with the zipper turned off, and on the general path (the
    hash table the dense layout falls back to)."""
    s, r = columns(sent), columns(received)
    report = as_dict(validate.check_delivery(s, r, threads=1, **options))
    assert as_dict(validate.check_delivery(s, r, threads=2, **options)) == report
    with paths_off("_check_zip"):
        for threads in (1, 2):
            assert as_dict(validate.check_delivery(s, r, threads=threads, **options)) == report
    assert as_dict(general_check(s, r, **options)) == report
    return report, ref.check_delivery(sent, received, **options)


@contextlib.contextmanager
def paths_off(*names: str) -> Iterator[None]:
    """check_delivery with the named paths of its module (_check_zip, _check_dense) turned
    off: each one finds that the input is not for it."""
    kept = {name: getattr(delivery_module, name) for name in names}
    for name in names:
        setattr(delivery_module, name, lambda *args: None)
    try:
        yield
    finally:
        for name, path in kept.items():
            setattr(delivery_module, name, path)


def general_check(
    sent: Columns, received: Columns, *, ordering: str = "partition", max_examples: int = 5
) -> validate.DeliveryReport:
    """check_delivery with its zipper and dense paths turned off."""
    with paths_off("_check_zip", "_check_dense"):
        return validate.check_delivery(
            sent,
            received,
            ordering=ordering,  # type: ignore[arg-type]
            max_examples=max_examples,
        )


def stream(producer_id: int, partition: int, count: int, base: int = 0) -> list[Record]:
    """``count`` consecutive messages of one stream, checksum derived from the key."""
    return [
        (producer_id, partition, base + k, (producer_id * 7 + partition * 3 + k) % 2**32)
        for k in range(count)
    ]


def round_robin(*streams: list[Record]) -> list[Record]:
    """The streams interleaved one message at a time (per-stream order kept)."""
    queues = [deque(s) for s in streams]
    merged = []
    while any(queues):
        for queue in queues:
            if queue:
                merged.append(queue.popleft())
    return merged


def corrupt(record: Record) -> Record:
    return (*record[:3], record[3] ^ 0x5A5A5A5A)


def clean_counts(expected: int, **changes: int) -> dict[str, int]:
    """The counts of a report with ``expected`` messages and only the ``changes`` given."""
    counts = dict.fromkeys(COUNTS, 0)
    counts["expected"] = expected
    counts.update(changes)
    if "delivered" not in changes:
        counts["delivered"] = expected - counts["lost"]
    return counts


def counts_of(report: dict[str, Any]) -> dict[str, int]:
    return {name: report[name] for name in COUNTS}


# --------------------------------------------------------------------------------------------
# Strategies: sent sides and faults
# --------------------------------------------------------------------------------------------

producers = st.one_of(st.sampled_from([0, 1, 2, 2**63, U64_MAX]), st.integers(0, U64_MAX))
partitions = st.one_of(st.sampled_from([0, 1, 2, U32_MAX]), st.integers(0, U32_MAX))
rates = st.sampled_from([0.0, 0.0, 0.05, 0.3])
example_limits = st.sampled_from([0, 1, 5, 10_000])


@st.composite
def sent_sides(
    draw: st.DrawFn, max_streams: int = 5, max_length: int = 25, gaps: bool = False
) -> list[Record]:
    """Streams with consecutive sequences (some ending at 2**64-1), randomly interleaved.

    With ``gaps``, a stream skips ahead now and then (by up to 2**40), so that its sequences
    span far more numbers than it has messages.
    """
    pairs = draw(st.lists(st.tuples(producers, partitions), max_size=max_streams, unique=True))
    rng = draw(st.randoms(use_true_random=False))
    queues = []
    for producer_id, partition in pairs:
        length = draw(st.integers(0, max_length))
        steps = [1] * length
        if gaps:
            steps = [rng.choice([1, 1, 2, 1000, 2**40]) for _ in range(length)]
        span = sum(steps)
        base = draw(
            st.one_of(
                st.sampled_from([0, 1, U64_MAX - span + 1]),
                st.integers(0, U64_MAX - span + 1),
            )
        )
        sequences = [base + sum(steps[:k]) for k in range(length)]
        queues.append(deque((producer_id, partition, q, rng.getrandbits(32)) for q in sequences))
    sent = []
    while any(queues):
        queue = rng.choice([queue for queue in queues if queue])
        sent.append(queue.popleft())
    return sent


def fresh_key(rng: random.Random, taken: set[tuple[int, int, int]]) -> tuple[int, int, int]:
    """A key that is not in ``taken``, often close to one that is (same stream, next number)."""
    while True:
        if taken and rng.random() < 0.7:
            producer_id, partition, sequence = rng.choice(sorted(taken))
            key = (producer_id, partition, (sequence + rng.randint(1, 50)) % 2**64)
        else:
            key = (rng.getrandbits(64), rng.getrandbits(32), rng.getrandbits(64))
        if key not in taken:
            return key


def inject_faults(
    sent: Sequence[Record],
    rng: random.Random,
    *,
    drop: float = 0.0,
    duplicate: float = 0.0,
    corruption: float = 0.0,
    swap: float = 0.0,
    displace: float = 0.0,
    unexpected: int = 0,
) -> list[Record]:
    """The received side: sent with every kind of fault, each at its rate."""
    received = [r for r in sent if rng.random() >= drop]
    received = [corrupt(r) if rng.random() < corruption else r for r in received]
    for record in [r for r in received if rng.random() < duplicate]:
        received.insert(rng.randint(0, len(received)), record)
    taken = {r[:3] for r in sent}
    for _ in range(unexpected):
        key = fresh_key(rng, taken)
        received.insert(rng.randint(0, len(received)), (*key, rng.getrandbits(32)))
        if rng.random() < 0.3:  # the same unsent key twice: unexpected both times
            received.insert(rng.randint(0, len(received)), (*key, rng.getrandbits(32)))
    for i in range(len(received) - 1):
        if rng.random() < swap:
            received[i], received[i + 1] = received[i + 1], received[i]
    for _ in range(sum(1 for _ in received if rng.random() < displace)):
        record = received.pop(rng.randrange(len(received)))
        received.insert(rng.randint(0, len(received)), record)
    return received


def with_sent_duplicates(sent: list[Record], rng: random.Random, rate: float) -> list[Record]:
    """sent with some messages sent again later, sometimes with other content."""
    result = list(sent)
    for position, record in enumerate(sent):
        if rng.random() < rate:
            again = corrupt(record) if rng.random() < 0.5 else record
            result.insert(rng.randint(position + 1, len(result)), again)
    return result


# --------------------------------------------------------------------------------------------
# check_delivery: differential properties
# --------------------------------------------------------------------------------------------


@properties
@given(
    st.one_of(sent_sides(), sent_sides(gaps=True)),
    st.randoms(use_true_random=False),
    st.fixed_dictionaries(
        {
            "drop": rates,
            "duplicate": rates,
            "corruption": rates,
            "swap": rates,
            "displace": rates,
            "unexpected": st.integers(0, 3),
        }
    ),
    rates,
    example_limits,
)
def test_check_delivery_matches_reference_for_every_ordering(
    sent: list[Record],
    rng: random.Random,
    faults: dict[str, Any],
    resent: float,
    max_examples: int,
) -> None:
    sent = with_sent_duplicates(sent, rng, resent)
    received = inject_faults(sent, rng, **faults)
    for ordering in ORDERINGS:
        got, expected = delivery(sent, received, ordering=ordering, max_examples=max_examples)
        assert got == expected, ordering
        assert got["delivered"] + got["lost"] == got["expected"]
        assert got["late"] == 0
        assert set(got["examples"]) == set(CATEGORIES)


@properties
@given(
    st.one_of(sent_sides(), sent_sides(gaps=True)),
    st.randoms(use_true_random=False),
    st.integers(0, 4),
    example_limits,
)
def test_faults_without_reordering_have_exactly_known_effects(
    sent: list[Record], rng: random.Random, unexpected: int, max_examples: int
) -> None:
    # Disjoint sets of drops, corruptions and duplicates (each copy after its original) and
    # fresh unsent keys: the first arrivals keep send order, so nothing is reordered.
    roles = [rng.choice(["keep", "keep", "drop", "corrupt", "duplicate"]) for _ in sent]
    received: list[Record] = []
    for record, role in zip(sent, roles, strict=True):
        if role != "drop":
            received.append(corrupt(record) if role == "corrupt" else record)
    for record, role in zip(sent, roles, strict=True):
        if role == "duplicate":
            after = received.index(record) + 1
            received.insert(rng.randint(after, len(received)), record)
    taken = {r[:3] for r in sent}
    for _ in range(unexpected):
        key = fresh_key(rng, taken)
        taken.add(key)
        received.insert(rng.randint(0, len(received)), (*key, 0))
    dropped = [(*r[:3], position) for position, r in enumerate(sent) if roles[position] == "drop"]
    for ordering in ORDERINGS:
        got, expected = delivery(sent, received, ordering=ordering, max_examples=max_examples)
        assert got == expected
        assert counts_of(got) == clean_counts(
            len(sent),
            lost=roles.count("drop"),
            corrupted=roles.count("corrupt"),
            duplicated=roles.count("duplicate"),
            unexpected=unexpected,
        )
        assert got["examples"]["lost"] == dropped[:max_examples]
    report = validate.check_delivery(columns(sent), columns(received))
    assert bool(report) == report.ok == (roles.count("keep") == len(sent) and not unexpected)


def _message(record: Record, payload: bytes) -> Message:
    producer_id, partition, sequence, _ = record
    return Message(
        payload,
        partition=partition,
        producer_id=producer_id,
        sequence=sequence,
        timestamp_ns=sequence % 2**63,
    )


@settings(deadline=None, max_examples=40)
@given(
    sent_sides(max_streams=3, max_length=10),
    st.randoms(use_true_random=False),
    rates,
)
def test_message_batches_match_reference_and_a_changed_payload_is_corrupted(
    sent: list[Record], rng: random.Random, change: float
) -> None:
    sent_messages = [_message(r, b"payload %d" % i) for i, r in enumerate(sent)]
    received_messages = []
    arrived = set()
    changed = 0
    for record in inject_faults(sent, rng, drop=0.1, swap=0.1, duplicate=0.1):
        position = sent.index(record)
        payload = b"payload %d" % position
        if record not in arrived and rng.random() < change:
            payload = b"PAYLOAD %d" % position  # a burst of a few bits: CRC-32C always sees it
            changed += 1
        arrived.add(record)
        received_messages.append(_message(record, payload))
    sent_batch = MessageBatch.from_messages(sent_messages)
    received_batch = MessageBatch.from_messages(received_messages)
    for ordering in ORDERINGS:
        report = validate.check_delivery(sent_batch, received_batch, ordering=ordering)
        expected = ref.check_delivery(
            records_of(sent_batch), records_of(received_batch), ordering=ordering
        )
        assert as_dict(report) == expected
        assert report.corrupted == changed
        # Either side may be a batch or a Mapping of columns: same answer.
        mixed = validate.check_delivery(
            sent_batch, columns(records_of(received_batch)), ordering=ordering
        )
        assert as_dict(mixed) == expected


# --------------------------------------------------------------------------------------------
# check_delivery: hand-built cases with exactly known counts (kaelix and the reference)
# --------------------------------------------------------------------------------------------

A = (1, 0)  # producer 1, partition 0
B = (1, 1)  # same producer, other partition
C = (2, 0)  # other producer


def three_streams() -> list[Record]:
    return round_robin(stream(*A, 10), stream(*B, 10), stream(*C, 10))


@pytest.mark.parametrize("ordering", ORDERINGS)
@pytest.mark.parametrize("dropped", [[0], [3, 4, 5], [0, 7, 11, 20, 29, 28], list(range(30))])
def test_dropping_k_messages_loses_k_and_nothing_else(ordering: str, dropped: list[int]) -> None:
    sent = three_streams()
    received = [r for i, r in enumerate(sent) if i not in dropped]
    got, expected = delivery(sent, received, ordering=ordering)
    assert got == expected
    assert counts_of(got) == clean_counts(30, lost=len(dropped))
    assert got["examples"]["lost"] == [(*sent[i][:3], i) for i in sorted(dropped)[:5]]
    assert all(not got["examples"][c] for c in CATEGORIES if c != "lost")


@pytest.mark.parametrize("ordering", ORDERINGS)
def test_duplicates_corruptions_and_unexpected_messages_count_exactly(ordering: str) -> None:
    sent = three_streams()
    received = list(sent)
    received[4] = corrupt(received[4])
    received[9] = corrupt(received[9])
    received.insert(12, sent[11])  # right after its original
    received.append(sent[0])
    received.append(corrupt(sent[4]))  # a duplicate whose first arrival was corrupted
    received.append((*A, 10, 0))  # the next number of a stream: never sent
    received.append((*A, 10, 0))  # twice: unexpected twice, never "duplicated"
    received.append((3, 0, 0, 0))  # an unknown producer
    got, expected = delivery(sent, received, ordering=ordering)
    assert got == expected
    assert counts_of(got) == clean_counts(30, corrupted=2, duplicated=3, unexpected=3)
    assert got["examples"]["corrupted"] == [(*sent[4][:3], 4), (*sent[9][:3], 9)]
    assert got["examples"]["duplicated"] == [
        (*sent[11][:3], 12),
        (*sent[0][:3], 31),
        (*sent[4][:3], 32),
    ]
    assert got["examples"]["unexpected"] == [(*A, 10, 33), (*A, 10, 34), (3, 0, 0, 35)]


@pytest.mark.parametrize(
    ("received_order", "ordering", "reordered", "positions"),
    [
        # One stream: a swap, a message moved last (only it is late), moved first (all later
        # ones fall below the running maximum).
        ([1, 0, 2, 3, 4], "partition", 1, [1]),
        ([1, 2, 3, 4, 0], "partition", 1, [4]),
        ([4, 0, 1, 2, 3], "partition", 4, [1, 2, 3, 4]),
        ([4, 0, 1, 2, 3], "none", 0, []),
        ([0, 2, 1, 4, 3], "global", 2, [2, 4]),
    ],
)
def test_reordering_is_measured_against_the_running_maximum(
    received_order: list[int], ordering: str, reordered: int, positions: list[int]
) -> None:
    sent = stream(*A, 5)
    received = [sent[i] for i in received_order]
    got, expected = delivery(sent, received, ordering=ordering)
    assert got == expected
    assert counts_of(got) == clean_counts(5, reordered=reordered)
    assert [example[3] for example in got["examples"]["reordered"]] == positions


@pytest.mark.parametrize(
    ("other", "by_ordering"),
    [
        (B, {"partition": 0, "producer": 1, "global": 1, "none": 0}),
        (C, {"partition": 0, "producer": 0, "global": 1, "none": 0}),
    ],
)
def test_the_ordering_decides_which_swaps_count(
    other: tuple[int, int], by_ordering: dict[str, int]
) -> None:
    sent = [(*A, 0, 1), (*other, 0, 2)]
    received = [sent[1], sent[0]]
    for ordering, reordered in by_ordering.items():
        got, expected = delivery(sent, received, ordering=ordering)
        assert got == expected
        assert got["reordered"] == reordered, ordering
        assert got["examples"]["reordered"] == ([(*A, 0, 1)] if reordered else [])


def test_corruption_and_reordering_are_independent() -> None:
    sent = stream(*A, 2)
    got, expected = delivery(sent, [sent[1], corrupt(sent[0])])
    assert got == expected
    assert counts_of(got) == clean_counts(2, corrupted=1, reordered=1)


def test_duplicates_inside_sent_count_once_with_the_first_content_and_position() -> None:
    first, second = (*A, 0, 111), (*A, 1, 222)
    sent = [first, second, (*A, 0, 999), second]
    got, expected = delivery(sent, [(*A, 0, 999)])
    assert got == expected
    assert counts_of(got) == clean_counts(2, lost=1, corrupted=1)
    assert got["examples"]["lost"] == [(*A, 1, 1)]
    # The send position of (A, 0) is 0, its first occurrence: arriving after (A, 1) is late.
    got, expected = delivery(sent, [second, first])
    assert got == expected
    assert counts_of(got) == clean_counts(2, reordered=1)


@pytest.mark.parametrize(
    ("sent", "received", "counts"),
    [
        ([], [], clean_counts(0)),
        ([], stream(*A, 3), clean_counts(0, unexpected=3)),
        (stream(*A, 3), [], clean_counts(3, lost=3)),
        (stream(*A, 3) * 2, [], clean_counts(3, lost=3)),
    ],
)
def test_empty_sides(sent: list[Record], received: list[Record], counts: dict[str, int]) -> None:
    for ordering in ORDERINGS:
        got, expected = delivery(sent, received, ordering=ordering)
        assert got == expected
        assert counts_of(got) == counts


def test_extreme_keys_partition_u32_max_and_sequences_up_to_u64_max() -> None:
    top = stream(U64_MAX, U32_MAX, 20, base=U64_MAX - 19)
    low = stream(0, 0, 20)
    sent = round_robin(top, low)
    received = [r for r in sent if r[2] != U64_MAX - 5]
    received.reverse()
    received.append((U64_MAX, U32_MAX, 0, 0))  # same stream, sequence wrapped: never sent
    for ordering in ORDERINGS:
        got, expected = delivery(sent, received, ordering=ordering, max_examples=100)
        assert got == expected
        assert got["lost"] == 1 and got["unexpected"] == 1
        assert got["examples"]["lost"] == [(U64_MAX, U32_MAX, U64_MAX - 5, sent.index(top[14]))]


def test_sent_sequences_far_apart() -> None:
    # A stream whose sequences span far more numbers than it has messages, and a received
    # number inside that span that was never sent.
    sent = [(*A, 0, 1), (*A, 2**40, 2), (*A, U64_MAX, 3), (*B, 5, 4)]
    received = [(*A, 2**39, 0), (*A, U64_MAX, 3), (*A, 0, 1), (*B, 5, 4), (*A, 1, 0)]
    for ordering in ORDERINGS:
        got, expected = delivery(sent, received, ordering=ordering)
        assert got == expected
        reordered = 1 if ordering in ("partition", "producer", "global") else 0
        assert counts_of(got) == clean_counts(4, lost=1, unexpected=2, reordered=reordered)
        assert got["examples"]["lost"] == [(*A, 2**40, 1)]
        assert got["examples"]["unexpected"] == [(*A, 2**39, 0), (*A, 1, 4)]


def test_three_hundred_streams() -> None:
    rng = random.Random(300)
    streams = [stream(p, q, 8, base=rng.getrandbits(40)) for p in range(20) for q in range(15)]
    sent = round_robin(*streams)
    received = inject_faults(
        sent, rng, drop=0.02, duplicate=0.02, corruption=0.02, swap=0.05, unexpected=5
    )
    for ordering in ORDERINGS:
        for max_examples in (0, 5, 100_000):
            got, expected = delivery(sent, received, ordering=ordering, max_examples=max_examples)
            assert got == expected
    assert expected["expected"] == 2400


FAULT_KINDS = ("drop", "duplicate", "swap", "corrupt", "below")


@properties
@given(
    st.lists(st.tuples(producers, partitions), min_size=1, max_size=6, unique=True),
    st.sampled_from([0, 1, 1000, 2**63, U64_MAX - 500]),
    st.randoms(use_true_random=False),
    st.lists(st.sampled_from(FAULT_KINDS), max_size=8),
    st.sampled_from(["partition", "none"]),
    st.integers(1, 2),
)
def test_the_zipper_settles_local_faults_itself(
    pairs: list[tuple[int, int]],
    base: int,
    rng: random.Random,
    faults: list[str],
    ordering: str,
    threads: int,
) -> None:
    """Streams sent consecutively and received with faults near where they were sent: the
    zipper (check_delivery's first path) takes them without giving up, and agrees with the
    reference and with every other path."""
    streams = [stream(p, q, rng.randint(1, 60), base) for p, q in pairs]
    sent = [s[0] for s in streams]  # every stream begins, then they interleave at random
    queues = [deque(s[1:]) for s in streams]
    while any(queues):
        sent.append(rng.choice([queue for queue in queues if queue]).popleft())
    ahead = len(pairs)  # faults only after every stream has begun
    received = list(sent)
    for kind in faults:
        if len(received) < ahead + 2:
            break
        at = rng.randrange(ahead, len(received) - 1)
        other = min(len(received) - 1, at + rng.randint(1, 40))
        if kind == "drop":
            del received[at]
        elif kind == "duplicate":
            received.insert(other + 1, received[at])
        elif kind == "swap":
            received[at], received[other] = received[other], received[at]
        elif kind == "corrupt":
            received[at] = corrupt(received[at])
        elif base > 0:  # below: a sequence under its stream's first one, never sent
            p, q, _, checksum = received[at]
            received.insert(other + 1, (p, q, rng.randrange(base), checksum))
    s, r = columns(sent), columns(received)
    kernels = delivery_module._kernels()
    assert delivery_module._check_zip(kernels, s, r, ordering, 5, threads) is not None
    got, expected = delivery(sent, received, ordering=ordering)
    assert got == expected


@pytest.mark.parametrize("threads", [1, 2])
def test_the_zipper_takes_streams_whose_keys_share_a_slot(threads: int) -> None:
    """Keys that hash to one slot of the zipper's stream table: all but the first sit
    elsewhere, so the zipper's loop (which tests only a key's home slot) hands their
    messages to the probing lookup, and must neither give up nor miscount."""
    kernels = delivery_module._kernels()
    size = len(kernels.new_stream_table(delivery_module._ZIP_STREAMS)[2])
    shift = 64 - size.bit_length() + 1

    def home(p: int) -> int:  # partition 0
        return ((p * int(kernels._K2)) % 2**64) >> shift

    producers = [p for p in range(1, 200_000) if home(p) == home(1)][:3]
    assert len(producers) == 3
    rng = random.Random(7)
    queues = [deque(stream(p, 0, 300)) for p in producers]
    sent: list[Record] = []
    while any(queues):
        sent.append(rng.choice([queue for queue in queues if queue]).popleft())
    received = list(sent)
    del received[500]
    received.insert(700, received[650])
    s, r = columns(sent), columns(received)
    assert delivery_module._check_zip(kernels, s, r, "partition", 5, threads) is not None
    got, expected = delivery(sent, received)
    assert got == expected
    assert (expected["lost"], expected["duplicated"]) == (1, 1)


def test_a_run_up_to_u64_max_received_out_of_order_loses_nothing() -> None:
    # The zipper's common case steps a stream past 2**64 - 1 (its next sequence wraps to
    # 0); it must notice, not read every message as sent after the last one received.
    sent = stream(0, 0, 22, base=U64_MAX - 21)
    for at in (1, 10, 21):
        received = sent[1 : at + 1] + sent[:1] + sent[at + 1 :]
        for max_examples in (1, 5):
            got, expected = delivery(sent, received, max_examples=max_examples)
            assert got == expected
            assert got["lost"] == 0 and got["examples"]["lost"] == []


def dense_path_takes(sent: Columns, received: Columns) -> bool:
    """Whether check_delivery's dense path (not its general one) handles these columns."""
    kernels = delivery_module._kernels()
    found = delivery_module._check_dense(
        kernels,
        delivery_module._columns(sent, "sent"),
        delivery_module._columns(received, "received"),
        "partition",
        5,
        2,
    )
    return found is not None


def test_more_streams_than_the_first_messages_show() -> None:
    # The first 8,192 messages (two streams) size the dense layout's columns; 16 more
    # streams start after them, so the layout counts every stream and starts over.
    early = round_robin(stream(*A, 8_192), stream(*B, 8_192))
    late = round_robin(*(stream(p, 9, 4_096) for p in range(2, 18)))
    sent = early[:8_192] + round_robin(early[8_192:], late)
    received = [r for k, r in enumerate(sent) if k % 1000 != 7]
    received[50_000], received[50_001] = received[50_001], received[50_000]
    s, r = columns(sent), columns(received)
    assert dense_path_takes(s, r)
    got, expected = delivery(sent, received, max_examples=3)
    assert got == expected
    assert got["expected"] == len(sent) and got["lost"] == len(sent) - len(received)


def test_a_stream_far_wider_than_its_share_takes_the_general_path() -> None:
    # One stream holds most messages: the interleaved table would be mostly empty.
    sent = stream(*A, 5_000) + round_robin(*(stream(p, 9, 10) for p in range(2, 302)))
    assert not dense_path_takes(columns(sent), columns(sent))
    got, expected = delivery(sent, sent[:-1])
    assert got == expected and got["lost"] == 1


def test_two_halves_that_share_keys_or_order_agree_with_one_walk() -> None:
    # 100,000 messages received in two walks: copies of first-half messages in the second
    # half (duplicates across the walks), and a first-half message delivered late in the
    # second half (reordered across the walks).
    rng = random.Random(2)
    sent = round_robin(*(stream(p, q, 12_500) for p in (1, 2) for q in range(4)))
    received = list(sent)
    late = received.pop(10)
    received.insert(90_000, late)
    for at in (1, 20, 300, 4_000):
        received.insert(rng.randrange(60_000, 99_000), sent[at])
    s, r = columns(sent), columns(received)
    assert dense_path_takes(s, r)
    for ordering in ORDERINGS:
        got, expected = delivery(sent, received, ordering=ordering, max_examples=10)
        assert got == expected
        assert got["duplicated"] == 4
        assert got["reordered"] == (0 if ordering == "none" else 1)


def test_keys_sent_twice_keep_their_first_copy_on_the_dense_path() -> None:
    sent = [*stream(*A, 10), (*A, 1, 99), (*A, 2, 98)]
    assert dense_path_takes(columns(sent), columns(sent))
    got, expected = delivery(sent, sent, max_examples=10)
    assert got == expected
    assert got["expected"] == 10 and got["duplicated"] == 2 and got["corrupted"] == 0


def test_a_sequence_below_its_streams_first_takes_the_general_path() -> None:
    sent = [(*A, 5, 1), (*A, 6, 2), (*A, 4, 3), (*B, 0, 4)]
    assert not dense_path_takes(columns(sent), columns(sent))
    got, expected = delivery(sent, sent[::-1])
    assert got == expected and got["reordered"] == 2


@pytest.mark.parametrize("threads", [0, -1, 1.5, True, "2"])
def test_bad_threads(threads: object) -> None:
    with pytest.raises(
        ValueError, match=re.escape(f"threads must be None or an int >= 1, got {threads!r}")
    ):
        validate.check_delivery(columns([]), columns([]), threads=threads)  # type: ignore[arg-type]


def _check_in_child(conn: Any) -> None:
    sent = stream(*A, 1000)
    report = validate.check_delivery(columns(sent), columns(sent[1:]), threads=2)
    conn.send((report.delivered, report.lost))


def test_two_threads_in_a_child_forked_after_the_pool_started() -> None:
    # A forked child has no copy of the pool's thread: check_delivery must start a new
    # one rather than wait on the parent's forever.
    import multiprocessing

    sent = stream(*A, 1000)
    validate.check_delivery(columns(sent), columns(sent), threads=2)
    context = multiprocessing.get_context("fork")
    parent, child = context.Pipe()
    process = context.Process(target=_check_in_child, args=(child,))
    process.start()
    try:
        assert parent.poll(60), "the child's check_delivery did not finish"
        assert parent.recv() == (999, 1)
    finally:
        process.join(10)
        if process.is_alive():
            process.kill()
    assert process.exitcode == 0


def test_max_examples_zero_keeps_counts_and_large_keeps_every_example() -> None:
    sent = three_streams()
    received = [corrupt(r) for r in reversed(sent[5:])] + sent[:3]
    none, _ = delivery(sent, received, max_examples=0)
    every, expected = delivery(sent, received, max_examples=1_000_000)
    assert every == expected
    assert all(found == [] for found in none["examples"].values())
    assert counts_of(none) == counts_of(every)
    assert len(every["examples"]["corrupted"]) == every["corrupted"] == 25
    assert len(every["examples"]["lost"]) == every["lost"] == 2
    assert len(every["examples"]["duplicated"]) == every["duplicated"] == 0


# --------------------------------------------------------------------------------------------
# check_delivery: arguments
# --------------------------------------------------------------------------------------------


def test_bad_ordering() -> None:
    expected = "ordering must be one of ('partition', 'producer', 'global', 'none'), got 'sideways'"
    with pytest.raises(ValueError, match=re.escape(expected)):
        validate.check_delivery(columns([]), columns([]), ordering="sideways")


def test_mismatched_column_lengths() -> None:
    bad = columns(stream(*A, 3))
    bad["partition"] = bad["partition"][:2]
    sizes = "{'producer_id': 3, 'partition': 2, 'sequence': 3, 'checksum': 3}"
    for side, arguments in (("sent", (bad, columns([]))), ("received", (columns([]), bad))):
        expected = f"{side}'s columns differ in length: {sizes}"
        with pytest.raises(ValueError, match=re.escape(expected)):
            validate.check_delivery(*arguments)


@pytest.mark.parametrize("missing", ["producer_id", "partition", "sequence", "checksum"])
def test_missing_column(missing: str) -> None:
    bad = columns(stream(*A, 3))
    del bad[missing]
    needs = "(it needs ['producer_id', 'partition', 'sequence', 'checksum'])"
    for side, arguments in (("sent", (bad, columns([]))), ("received", (columns([]), bad))):
        expected = f"{side} has no {missing!r} column {needs}"
        with pytest.raises(ValueError, match=re.escape(expected)):
            validate.check_delivery(*arguments)


@pytest.mark.parametrize("bad", [[(1, 0, 0, 0)], b"frames", None, 3])
def test_other_input_types(bad: object) -> None:
    expected = "must be a MessageBatch or a mapping of numpy columns, got " + type(bad).__name__
    with pytest.raises(TypeError, match=re.escape("sent " + expected)):
        validate.check_delivery(bad, columns([]))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=re.escape("received " + expected)):
        validate.check_delivery(columns([]), bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("max_examples", [-1, 2.0, True])
def test_bad_max_examples(max_examples: object) -> None:
    expected = f"max_examples must be an int >= 0, got {max_examples!r}"
    with pytest.raises(ValueError, match=re.escape(expected)):
        validate.check_delivery(columns([]), columns([]), max_examples=max_examples)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# DeliveryReport: fields, truthiness, summary, to_dict
# --------------------------------------------------------------------------------------------


def test_report_fields_truthiness_summary_and_dict() -> None:
    sent = three_streams()
    clean = validate.check_delivery(columns(sent), columns(sent))
    assert clean and clean.ok
    assert clean.late == 0 and clean.ordering == "partition"
    assert set(clean.examples) == set(CATEGORIES)
    received = [corrupt(sent[0]), sent[2], sent[1], sent[2], (9, 9, 9, 9), *sent[4:]]
    report = validate.check_delivery(columns(sent), columns(received), ordering="global")
    assert not report and not report.ok
    summary = report.summary()
    assert isinstance(summary, str) and summary.count("\n") < 40
    for word in ("lost", "duplicated", "reordered", "corrupted", "unexpected"):
        assert word in summary
    data = report.to_dict()
    assert json.loads(json.dumps(data)) == data
    for name in COUNTS:
        assert data[name] == getattr(report, name)
    assert data["ordering"] == "global"
    assert data["examples"]["lost"] == [
        {"producer_id": sent[3][0], "partition": sent[3][1], "sequence": sent[3][2], "position": 3}
    ]
    for category in CATEGORIES:
        assert [
            (e["producer_id"], e["partition"], e["sequence"], e["position"])
            for e in data["examples"][category]
        ] == [example_tuple(e) for e in report.examples[category]]


@pytest.mark.parametrize("category", CATEGORIES)
def test_any_one_fault_makes_the_report_false(category: str) -> None:
    sent = stream(*A, 3)
    received = {
        "lost": sent[:2],
        "duplicated": [*sent, sent[0]],
        "reordered": [sent[1], sent[0], sent[2]],
        "corrupted": [sent[0], corrupt(sent[1]), sent[2]],
        "unexpected": [*sent, (*A, 3, 0)],
    }[category]
    report = validate.check_delivery(columns(sent), columns(received))
    assert getattr(report, category) == 1
    assert not report and not report.ok


# --------------------------------------------------------------------------------------------
# DeliveryTracker: differential properties
# --------------------------------------------------------------------------------------------

TRACKER_STARTS = [0, 5, U64_MAX - 299]


@st.composite
def tracker_feeds(draw: st.DrawFn) -> dict[str, Any]:
    """Streams consecutive from ``start`` with local and far reordering, duplicates (near and
    beyond the window), runs of drops, and numbers below ``start``; randomly interleaved."""
    window = draw(st.sampled_from([64, 128]))
    start = draw(st.sampled_from(TRACKER_STARTS))
    pairs = draw(st.lists(st.tuples(producers, partitions), min_size=1, max_size=4, unique=True))
    rng = draw(st.randoms(use_true_random=False))
    drop, duplicate, displace = draw(rates), draw(rates), draw(rates)
    queues = []
    for producer_id, partition in pairs:
        length = draw(st.integers(0, 300))
        sequences = list(range(start, start + length))
        if sequences and rng.random() < 0.3:  # a run of drops, maybe longer than the window
            cut = rng.randrange(len(sequences))
            del sequences[cut : cut + rng.randint(1, 2 * window)]
        sequences = [s for s in sequences if rng.random() >= drop]
        for s in [s for s in sequences if rng.random() < duplicate]:
            at = sequences.index(s) + rng.randint(1, 3 * window)
            sequences.insert(min(at, len(sequences)), s)
        for _ in range(sum(1 for _ in sequences if rng.random() < displace)):
            s = sequences.pop(rng.randrange(len(sequences)))
            sequences.insert(rng.randint(0, len(sequences)), s)
        if start and rng.random() < 0.5:
            for _ in range(rng.randint(1, 3)):
                sequences.insert(rng.randint(0, len(sequences)), rng.randrange(start))
        queues.append(deque((producer_id, partition, s) for s in sequences))
    feed = []
    while any(queues):
        queue = rng.choice([queue for queue in queues if queue])
        feed.append(queue.popleft())
    cuts = sorted(rng.randint(0, len(feed)) for _ in range(rng.randint(0, 6)))
    return {
        "window": window,
        "start": start,
        "ordering": draw(st.sampled_from(["partition", "none"])),
        "feed": feed,
        "splits": [feed[a:b] for a, b in zip([0, *cuts], [*cuts, len(feed)], strict=True)],
        "with_checksum": draw(st.booleans()),
    }


def tracker_dict(tracker: Any) -> dict[str, Any]:
    report = as_dict(tracker.report())
    assert set(report["examples"]) == set(TRACKER_CATEGORIES)
    assert report["corrupted"] == 0
    return without_lost_examples(report)


@properties
@given(tracker_feeds())
def test_tracker_fed_in_batches_matches_reference_fed_one_by_one(case: dict[str, Any]) -> None:
    options = {"window": case["window"], "ordering": case["ordering"], "start": case["start"]}
    tracker = validate.DeliveryTracker(**options)
    model = ref.RefDeliveryTracker(**options)
    for split in case["splits"]:
        tracker.update(columns(split, checksum=case["with_checksum"]))
        model.update(split)
        expected = without_lost_examples(model.report())
        assert tracker_dict(tracker) == expected
        assert expected["delivered"] + expected["lost"] == expected["expected"]
        assert tracker.messages == model.messages
        assert tracker.streams == model.streams


def tracker_counts(tracker: Any) -> dict[str, int]:
    return {name: getattr(tracker.report(), name) for name in COUNTS}


def feed_both(tracker: Any, model: ref.RefDeliveryTracker, sequences: list[int]) -> None:
    records = [(*A, s) for s in sequences]
    tracker.update(columns(records, checksum=False))
    model.update(records)
    assert tracker_dict(tracker) == without_lost_examples(model.report())


def test_tracker_window_boundaries() -> None:
    tracker = validate.DeliveryTracker(window=64)
    model = ref.RefDeliveryTracker(window=64)
    feed_both(tracker, model, [100])  # 0..36 lost at once, 37..99 gaps
    assert tracker_counts(tracker) == clean_counts(101, lost=100, delivered=1)
    feed_both(tracker, model, [36])  # exactly high - window: below the window
    assert tracker_counts(tracker) == clean_counts(101, lost=100, delivered=1, late=1)
    feed_both(tracker, model, [37])  # high - window + 1: a gap filled, out of order
    assert tracker_counts(tracker) == clean_counts(101, lost=99, delivered=2, late=1, reordered=1)
    feed_both(tracker, model, [37, 100])
    assert tracker_counts(tracker) == clean_counts(
        101, lost=99, delivered=2, late=1, reordered=1, duplicated=2
    )
    feed_both(tracker, model, [101])  # 37 leaves the window received, 38..99 still gaps
    assert tracker_counts(tracker) == clean_counts(
        102, lost=99, delivered=3, late=1, reordered=1, duplicated=2
    )
    feed_both(tracker, model, [37, 38])  # 37 is now below the window, 38 is its lowest bit
    assert tracker_counts(tracker) == clean_counts(
        102, lost=98, delivered=4, late=2, reordered=2, duplicated=2
    )
    examples = tracker.report().examples
    assert [example_tuple(e) for e in examples["late"]] == [(*A, 36, 1), (*A, 37, 6)]
    assert [example_tuple(e) for e in examples["duplicated"]] == [(*A, 37, 3), (*A, 100, 4)]


def test_tracker_in_order_stream_then_boundary_arrivals() -> None:
    tracker = validate.DeliveryTracker(window=64, ordering="none")
    model = ref.RefDeliveryTracker(window=64, ordering="none")
    feed_both(tracker, model, list(range(200)))
    assert tracker_counts(tracker) == clean_counts(200)
    assert tracker.report()
    feed_both(tracker, model, [199 - 64, 199 - 63])
    assert tracker_counts(tracker) == clean_counts(200, late=1, duplicated=1)


INTERRUPTIONS = {
    "below start": lambda high: [2],
    "late": lambda high: [high - 64],
    "duplicate": lambda high: [high - 3],
    "jump inside the window": lambda high: [high + 20],
    "jump past the window": lambda high: [high + 100],
    "jump, then the gap filled": lambda high: [high + 3, high + 1, high + 2],
    "another stream": lambda high: [],
}


@pytest.mark.parametrize("interruption", sorted(INTERRUPTIONS))
@pytest.mark.parametrize("run", [1, 2, 63, 64, 65, 200])
def test_tracker_bits_kept_lazily_during_in_order_runs_stay_exact(
    interruption: str, run: int
) -> None:
    """A stream with no gap in its window skips writing its bits while its next sequences
    arrive; whatever arrives next must see those bits (compared after every message)."""
    start = 100
    tracker = validate.DeliveryTracker(window=64, start=start)
    model = ref.RefDeliveryTracker(window=64, start=start)
    high = start - 1
    for _ in range(3):
        in_order = list(range(high + 1, high + 1 + run))
        for s in in_order:
            feed_both(tracker, model, [s])
        high = in_order[-1]
        other = INTERRUPTIONS[interruption](high)
        if interruption == "another stream":
            records = [(*B, high)]
            tracker.update(columns(records, checksum=False))
            model.update(records)
        for s in other:
            feed_both(tracker, model, [s])
            high = max(high, s)
        feed_both(tracker, model, [high - 1, high - 40, high + 1])  # reads the bits
        high += 1


def test_tracker_gap_is_a_snapshot_until_it_arrives_or_leaves() -> None:
    tracker = validate.DeliveryTracker(window=64)
    tracker.update(columns([(*A, 0), (*A, 2)], checksum=False))
    assert tracker_counts(tracker) == clean_counts(3, lost=1, delivered=2)
    tracker.update(columns([(*A, 1)], checksum=False))
    assert tracker_counts(tracker) == clean_counts(3, delivered=3, reordered=1)
    tracker.update(columns([(*A, 4), (*A, 68)], checksum=False))  # 3 leaves the window
    assert tracker_counts(tracker) == clean_counts(69, lost=64, delivered=5, reordered=1)
    tracker.update(columns([(*A, 3)], checksum=False))
    assert tracker_counts(tracker) == clean_counts(69, lost=64, delivered=5, reordered=1, late=1)


def test_tracker_start_and_sequences_near_u64_max() -> None:
    start = U64_MAX - 99
    tracker = validate.DeliveryTracker(window=64, start=start)
    model = ref.RefDeliveryTracker(window=64, start=start)
    records = [(U64_MAX, U32_MAX, s) for s in range(start, U64_MAX + 1) if s != start + 10]
    records.insert(0, (U64_MAX, U32_MAX, 0))  # below start: unexpected, the stream is seen
    tracker.update(columns(records, checksum=False))
    model.update(records)
    assert tracker_dict(tracker) == without_lost_examples(model.report())
    assert tracker_counts(tracker) == clean_counts(100, lost=1, unexpected=1)
    tracker.update(columns([(U64_MAX, U32_MAX, start + 10)], checksum=False))
    assert tracker_counts(tracker) == clean_counts(100, lost=1, unexpected=1, late=1)
    assert tracker.streams == 1 and tracker.messages == 101


def test_tracker_jump_to_u64_max_from_zero_counts_without_overflow() -> None:
    tracker = validate.DeliveryTracker(window=64)
    tracker.update(columns([(0, 0, 0), (0, 0, U64_MAX)], checksum=False))
    counts = tracker_counts(tracker)
    assert counts == clean_counts(2**64, lost=2**64 - 2, delivered=2)


def test_tracker_only_below_start_expects_nothing() -> None:
    tracker = validate.DeliveryTracker(window=64, start=10)
    tracker.update(columns([(*A, 3), (*A, 9), (*A, 1)], checksum=False))
    assert tracker_counts(tracker) == clean_counts(0, unexpected=3)
    assert tracker.streams == 1 and tracker.messages == 3
    tracker.update(columns([(*A, 80)], checksum=False))
    assert tracker_counts(tracker) == clean_counts(71, unexpected=3, lost=70, delivered=1)


def test_tracker_accepts_message_batches() -> None:
    sent = [(*A, s, 0) for s in (0, 1, 3, 2, 2)]
    batch = MessageBatch.from_messages([_message(r, b"x") for r in sent])
    tracker = validate.DeliveryTracker(window=64)
    tracker.update(batch)
    tracker.update(MessageBatch())
    assert tracker_counts(tracker) == clean_counts(4, reordered=1, duplicated=1)
    assert tracker.messages == 5 and tracker.streams == 1
    report = tracker.report()
    assert report.ordering == "partition"
    assert not report
    assert json.loads(json.dumps(report.to_dict()))["late"] == 0


def test_tracker_report_is_a_snapshot() -> None:
    tracker = validate.DeliveryTracker(window=64)
    empty = tracker.report()
    assert empty and tracker_counts(tracker) == clean_counts(0)
    assert tracker.streams == 0 and tracker.messages == 0
    tracker.update(columns([(*A, 1)], checksum=False))
    assert empty.expected == 0 and empty.lost == 0
    assert tracker.report().lost == 1


@pytest.mark.parametrize("window", [0, 1, 32, 63, 100, 65535, -64])
def test_tracker_rejects_bad_windows(window: int) -> None:
    expected = f"window must be a power of two >= 64, got {window}"
    with pytest.raises(ValueError, match=re.escape(expected)):
        validate.DeliveryTracker(window=window)


@pytest.mark.parametrize("ordering", ["producer", "global", "sideways"])
def test_tracker_rejects_orderings_it_cannot_check(ordering: str) -> None:
    expected = (
        f"the tracker checks ordering 'partition' or 'none', got {ordering!r}: it has no send "
        "order across streams (use check_delivery for that)"
    )
    with pytest.raises(ValueError, match=re.escape(expected)):
        validate.DeliveryTracker(ordering=ordering)  # type: ignore[arg-type]


def test_tracker_rejects_bad_inputs() -> None:
    tracker = validate.DeliveryTracker(window=64)
    expected = "batch must be a MessageBatch or a mapping of numpy columns, got list"
    with pytest.raises(TypeError, match=re.escape(expected)):
        tracker.update([(1, 0, 0)])
    bad = columns([(*A, 0)], checksum=False)
    del bad["sequence"]
    expected = "batch has no 'sequence' column (it needs ['producer_id', 'partition', 'sequence'])"
    with pytest.raises(ValueError, match=re.escape(expected)):
        tracker.update(bad)
    assert tracker.messages == 0 and tracker.streams == 0


# --------------------------------------------------------------------------------------------
# validate_message_invariants
# --------------------------------------------------------------------------------------------


def fields(index: int, *, timestamp_ns: int = NOW_NS, payload: bytes = b"hello") -> dict[str, Any]:
    return {
        "payload": payload,
        "key": b"k" if index % 2 else None,
        "headers": {"h": b"%d" % index} if index % 3 else {},
        "partition": index,
        "producer_id": 7,
        "sequence": index,
        "timestamp_ns": timestamp_ns,
    }


def message_of(field_dict: Mapping[str, Any]) -> Message:
    return to_message(dict(field_dict))


def trusted_batch(frames: bytes) -> MessageBatch:
    """A batch over ``frames`` whose columns were read out of the fixed headers without
    checking the frames, as a ring's trusted read-out makes them: the only way a batch can
    hold a frame whose stored CRC is wrong."""
    ranges = reference.frame_ranges(frames)
    headers = [reference.FIXED_HEADER.unpack_from(frames, begin) for begin, _ in ranges]
    offsets = np.array([0] + [end for _, end in ranges], np.int64)
    # FIXED_HEADER: magic, crc, version, flags, count, length, producer, sequence, timestamp,
    # partition, key_length, headers_length, payload_length
    parts = [
        offsets,
        np.array([h[7] for h in headers], np.uint64),
        np.array([h[9] for h in headers], np.uint32),
        np.array([h[6] for h in headers], np.uint64),
        np.array([h[8] for h in headers], np.int64),
        np.array([h[1] for h in headers], np.uint32),
    ]
    return MessageBatch._from_parts(frames, parts)


def violations_of(subject: object, **options: Any) -> list[Any] | None:
    """kaelix's violations (None when it returns None), checking the exception's types."""
    try:
        result = validate.validate_message_invariants(subject, **options)
    except validate.InvariantViolation as error:
        assert isinstance(error, AssertionError)
        assert isinstance(error, kaelix.KaelixError)
        assert error.violations
        return list(error.violations)
    assert result is None
    return None


def by_place(index: int | None, rule: str) -> tuple[int, str]:
    """Violations in message order (the contract does not order the rules of one message);
    a ``frame`` violation last, since the walk stops there."""
    if rule == "frame":
        return (2**64, rule)
    return (-1 if index is None else index, rule)


def rules_of(violations: list[Any] | None) -> list[tuple[int | None, str]] | None:
    if violations is None:
        return None
    return sorted(((v.index, v.rule) for v in violations), key=lambda pair: by_place(*pair))


def assert_same_violations(got: list[Any] | None, expected: list[ref.Violation]) -> None:
    if not expected:
        assert got is None
        return
    assert got is not None
    got = sorted(got, key=lambda v: by_place(v.index, v.rule))
    expected = sorted(expected, key=lambda v: by_place(v[0], v[1]))
    got_rules = [(v.index, v.rule) for v in got]
    expected_rules = [(index, rule) for index, rule, _ in expected]
    if got_rules and got_rules[-1] == (None, "frame") and expected_rules[-1][1] == "frame":
        # The contract leaves a frame violation's index open ("message index, or None");
        # the reference says the index of the broken frame.
        expected_rules[-1] = (None, "frame")
    assert got_rules == expected_rules
    for violation, (_, _, words) in zip(got, expected, strict=True):
        assert isinstance(violation.detail, str) and violation.detail
        for word in words:
            assert word in violation.detail, (violation, words)


def timestamps_near(tolerance: int) -> st.SearchStrategy[int]:
    edge = NOW_NS + tolerance
    return st.one_of(
        st.sampled_from([edge - 1, edge, edge + 1, NOW_NS, 0, reference._I64_MAX]),
        st.integers(reference._I64_MIN, reference._I64_MAX),
    )


@st.composite
def invariant_cases(draw: st.DrawFn) -> dict[str, Any]:
    tolerance = draw(st.sampled_from([0, 1_000, 60_000_000_000]))
    max_frame_size = draw(st.sampled_from([64, 96, 128, 256, reference.DEFAULT_MAX_FRAME_SIZE]))
    count = draw(st.integers(0, 8))
    messages = [
        fields(
            i,
            timestamp_ns=draw(timestamps_near(tolerance)),
            payload=b"p" * draw(st.sampled_from([0, 1, 8, 20, 40, 80, 200])),
        )
        for i in range(count)
    ]
    return {
        "messages": messages,
        "options": {
            "now_ns": NOW_NS,
            "future_tolerance_ns": tolerance,
            "max_frame_size": max_frame_size,
        },
        "rng": draw(st.randoms(use_true_random=False)),
    }


@properties
@given(invariant_cases())
def test_invariants_of_batches_match_reference(case: dict[str, Any]) -> None:
    rng, options = case["rng"], case["options"]
    frames = [bytearray(reference.encode(**f)) for f in case["messages"]]
    for frame in frames:
        if rng.random() < 0.3:  # one sequence byte: frame intact, CRC wrong
            frame[24 + rng.randrange(8)] ^= 1 << rng.randrange(8)
    data = b"".join(frames)
    batch = trusted_batch(data)
    expected = ref.validate_message_invariants(data, source="batch", **options)
    assert_same_violations(violations_of(batch, **options), expected)


@properties
@given(invariant_cases())
def test_invariants_of_bytes_match_reference(case: dict[str, Any]) -> None:
    rng, options = case["rng"], case["options"]
    data = bytearray(b"".join(reference.encode(**f) for f in case["messages"]))
    damage = rng.choice(["none", "truncate", "flip", "magic"])
    if data and damage == "truncate":
        del data[rng.randrange(len(data)) :]
    elif data and damage == "flip":
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif data and damage == "magic":
        starts = [begin for begin, _ in reference.frame_ranges(bytes(data))]
        data[rng.choice(starts)] ^= 0x20
    expected = ref.validate_message_invariants(bytes(data), source="bytes", **options)
    for form in (bytes(data), bytearray(data), memoryview(bytes(data))):
        assert_same_violations(violations_of(form, **options), expected)


@properties
@given(invariant_cases())
def test_invariants_of_one_message_match_reference(case: dict[str, Any]) -> None:
    options = case["options"]
    for f in case["messages"][:2]:
        expected = ref.validate_message_invariants(reference.encode(**f), source="batch", **options)
        assert_same_violations(violations_of(message_of(f), **options), expected)


def test_clean_inputs_return_none() -> None:
    messages = [message_of(fields(i, timestamp_ns=0)) for i in range(5)]
    batch = MessageBatch.from_messages(messages)
    assert validate.validate_message_invariants(messages[0]) is None
    assert validate.validate_message_invariants(batch) is None
    assert validate.validate_message_invariants(batch.to_bytes()) is None
    assert validate.validate_message_invariants(b"") is None
    assert validate.validate_message_invariants(MessageBatch()) is None


@pytest.mark.parametrize("offset", [0, 1, 60])
def test_timestamp_rule_boundary(offset: int) -> None:
    message = message_of(fields(0, timestamp_ns=NOW_NS + MINUTE_NS + offset))
    got = violations_of(message, now_ns=NOW_NS)
    if offset == 0:
        assert got is None
    else:
        assert rules_of(got) == [(0, "timestamp")]


def test_timestamp_rule_defaults_to_the_clock() -> None:
    assert violations_of(message_of(fields(0, timestamp_ns=2**62))) is not None  # year 2116
    assert violations_of(message_of(fields(0, timestamp_ns=0))) is None


def test_frame_size_rule() -> None:
    small, large = fields(0, payload=b""), fields(1, payload=b"x" * 100)
    assert len(reference.encode(**small)) == 56 and len(reference.encode(**large)) > 128
    batch = MessageBatch.from_messages([message_of(small), message_of(large)])
    got = violations_of(batch, now_ns=NOW_NS, max_frame_size=128)
    assert rules_of(got) == [(1, "frame_size")]
    got = violations_of(batch.to_bytes(), now_ns=NOW_NS, max_frame_size=128)
    assert rules_of(got) == [(1, "frame_size")]
    assert violations_of(batch, now_ns=NOW_NS, max_frame_size=256) is None


def test_checksum_rule_of_a_trusted_batch() -> None:
    data = bytearray(b"".join(reference.encode(**fields(i)) for i in range(3)))
    second = reference.frame_ranges(bytes(data))[1][0]
    data[second + 24] ^= 0xFF
    got = violations_of(trusted_batch(bytes(data)), now_ns=NOW_NS)
    assert rules_of(got) == [(1, "checksum")]


@pytest.mark.parametrize(
    ("damage", "reason", "offset"),
    [
        (lambda good: good + good[:-8], "truncated", lambda good: 2 * len(good) - 8),
        (lambda good: good + b"XXXX" + good[4:] + good, "bad_magic", len),
        (lambda good: good + good[:8] + b"\x02" + good[9:], "unsupported_version", None),
    ],
)
def test_frame_rule_names_the_reason_and_offset(damage: Any, reason: str, offset: Any) -> None:
    good = reference.encode(**fields(0))
    data = damage(good)
    got = violations_of(data, now_ns=NOW_NS)
    assert got is not None and len(got) == 1
    (frame,) = got
    # The contract leaves the index open ("message index, or None"): the broken frame's is 1.
    assert frame.rule == "frame" and frame.index in (1, None)
    where = len(good) + 8 if offset is None else offset(good)
    assert reason in frame.detail and f"at byte {where}" in frame.detail


def test_violations_before_a_broken_frame_are_listed_too() -> None:
    # "listing EVERY broken invariant": the frame rule stops the walk, it does not erase
    # what the frames before the broken one broke.
    good = reference.encode(**fields(0, timestamp_ns=NOW_NS + 2 * MINUTE_NS))
    got = violations_of(good + good[:-8], now_ns=NOW_NS)
    assert rules_of(got) in ([(0, "timestamp"), (1, "frame")], [(0, "timestamp"), (None, "frame")])


def test_every_violation_is_listed_and_the_message_shows_twenty() -> None:
    future = NOW_NS + 2 * MINUTE_NS
    batch = MessageBatch.from_messages(
        [message_of(fields(i, timestamp_ns=future, payload=b"x" * 200)) for i in range(15)]
    )
    with pytest.raises(validate.InvariantViolation) as info:
        validate.validate_message_invariants(batch, now_ns=NOW_NS, max_frame_size=128)
    violations = info.value.violations
    assert len(violations) == 30
    assert sorted((v.index, v.rule) for v in violations) == sorted(
        [(i, "frame_size") for i in range(15)] + [(i, "timestamp") for i in range(15)]
    )
    text = str(info.value)
    lines = text.splitlines()
    assert lines[-1] == "... and 10 more"
    shown = [line for line in lines if "timestamp" in line or "frame_size" in line]
    assert len(shown) == 20
    with pytest.raises(AssertionError) as twenty:
        validate.validate_message_invariants(batch[:10], now_ns=NOW_NS, max_frame_size=128)
    assert isinstance(twenty.value, validate.InvariantViolation)
    assert len(twenty.value.violations) == 20
    assert "more" not in str(twenty.value)


def test_invariant_violation_is_in_both_trees() -> None:
    assert kaelix.InvariantViolation is validate.InvariantViolation
    assert issubclass(validate.InvariantViolation, AssertionError)
    assert issubclass(validate.InvariantViolation, kaelix.KaelixError)


@pytest.mark.parametrize("subject", ["frames", 12, None, [b""]])
def test_invariants_reject_other_types(subject: object) -> None:
    expected = "validate_message_invariants takes a Message, a MessageBatch or bytes, got "
    with pytest.raises(TypeError, match=re.escape(expected + type(subject).__name__)):
        validate.validate_message_invariants(subject)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# latency_report
# --------------------------------------------------------------------------------------------

LATENCY_FIELDS = ("count", "min_ns", "p50_ns", "p90_ns", "p99_ns", "p999_ns", "p9999_ns")
LATENCY_FIELDS += ("max_ns", "bound_ns", "over_bound")


def assert_latency_matches(report: Any, expected: dict[str, Any]) -> None:
    for name in LATENCY_FIELDS:
        value = getattr(report, name)
        assert value == expected[name], name
        assert value is None or type(value) is int, (name, value)
    if expected["mean_ns"] is None:
        assert report.mean_ns is None
    else:
        assert type(report.mean_ns) is float
        assert report.mean_ns == pytest.approx(float(expected["mean_ns"]), rel=1e-12, abs=1e-6)
    assert bool(report) == (expected["over_bound"] == 0)


@properties
@given(
    st.lists(st.tuples(st.integers(-(2**61), 2**61), st.integers(-(2**40), 2**40)), max_size=300),
    st.one_of(st.none(), st.integers(-(2**40), 2**40)),
)
def test_latency_report_matches_nearest_rank_reference(
    pairs: list[tuple[int, int]], bound_ns: int | None
) -> None:
    sent = [s for s, _ in pairs]
    received = [s + latency for s, latency in pairs]
    report = validate.latency_report(
        np.array(sent, dtype=np.int64), np.array(received, dtype=np.int64), bound_ns=bound_ns
    )
    assert_latency_matches(report, ref.latency_report(sent, received, bound_ns=bound_ns))


@pytest.mark.parametrize("count", [1, 2, 10, 99, 100, 101, 999, 1000, 1001, 2000, 10_000])
def test_nearest_rank_at_exact_boundaries(count: int) -> None:
    # 1..count: the p-th percentile is ceil(p/100 * count) computed exactly; float rounding
    # gets 99.9% of 1000 wrong (99.9 / 100 * 1000 == 999.0000000000001).
    latencies = np.arange(1, count + 1, dtype=np.int64)
    rng = np.random.default_rng(count)
    rng.shuffle(latencies)
    sent = rng.integers(0, 10**12, size=count)
    report = validate.latency_report(sent, sent + latencies)
    expected = ref.latency_report(sent.tolist(), (sent + latencies).tolist())
    assert_latency_matches(report, expected)
    if count == 1000:
        assert (report.p50_ns, report.p90_ns, report.p99_ns) == (500, 900, 990)
        assert (report.p999_ns, report.p9999_ns) == (999, 1000)


def test_latency_report_of_nothing() -> None:
    report = validate.latency_report(np.array([], np.int64), np.array([], np.int64))
    assert report.count == 0 and report.over_bound == 0 and report
    for name in ("p50_ns", "p90_ns", "p99_ns", "p999_ns", "p9999_ns"):
        assert getattr(report, name) is None
    assert json.loads(json.dumps(report.to_dict()))["count"] == 0
    assert isinstance(report.summary(), str)


def test_latency_bound_truthiness_summary_and_dict() -> None:
    report = validate.latency_report([0, 0, 0, 0], [5, 10, 15, 20], bound_ns=10)
    assert report.over_bound == 2 and not report
    assert report.bound_ns == 10
    assert validate.latency_report([0], [10], bound_ns=10)
    data = report.to_dict()
    assert json.loads(json.dumps(data)) == data
    for name in (*LATENCY_FIELDS, "mean_ns"):
        assert data[name] == getattr(report, name)
    assert data["mean_ns"] == 12.5
    assert isinstance(report.summary(), str) and report.summary()


def test_latency_report_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"^sent_ns has 3 values, received_ns 2$"):
        validate.latency_report(np.zeros(3, np.int64), np.zeros(2, np.int64))
    with pytest.raises(ValueError, match=re.escape("sent_ns must be 1-D, got shape (2, 2)")):
        validate.latency_report(np.zeros((2, 2), np.int64), np.zeros((2, 2), np.int64))
    with pytest.raises(ValueError, match=re.escape("received_ns must be 1-D, got shape ()")):
        validate.latency_report(np.zeros(1, np.int64), np.int64(3))


# --------------------------------------------------------------------------------------------
# The public face
# --------------------------------------------------------------------------------------------

PUBLIC = (
    "check_delivery",
    "DeliveryReport",
    "Example",
    "DeliveryTracker",
    "validate_message_invariants",
    "InvariantViolation",
    "latency_report",
    "LatencyReport",
)


@pytest.mark.parametrize("name", PUBLIC)
def test_public_names_are_exported_from_both_modules(name: str) -> None:
    assert getattr(kaelix, name) is getattr(validate, name)
    assert name in validate.__all__ and name in kaelix.__all__


def test_reports_are_the_public_classes() -> None:
    report = validate.check_delivery(columns([]), columns([]))
    assert isinstance(report, validate.DeliveryReport)
    empty = np.array([], np.int64)
    assert isinstance(validate.latency_report(empty, empty), validate.LatencyReport)


def test_import_kaelix_does_not_import_numba() -> None:
    code = "import sys, kaelix, kaelix.validate; assert 'numba' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def test_warm_up_loads_every_kernel_the_python_layer_calls() -> None:
    """After warm_up_validators, no check_delivery path or tracker call compiles or loads a
    kernel (in a fresh process: this one has loaded them all already)."""
    source = (Path(delivery_module.__file__)).read_text(encoding="utf-8")
    called = sorted(
        set(re.findall(r"\bk\.([a-z_]+)\(", source)) - {"new_stream_table", "new_table"}
    )
    assert len(called) >= 10, called
    script = (
        "import kaelix, json\n"
        "from kaelix.validate import _delivery\n"
        "kaelix.warm_up_validators()\n"
        "k = _delivery._kernels()\n"
        f"print(json.dumps({{n: len(getattr(k, n).signatures) for n in {called!r}}}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300
    )
    loaded = json.loads(out.stdout)
    assert {name for name, count in loaded.items() if count == 0} == set()
