"""Shared streams across real processes, started with "spawn".

A child gets the stream by name (``Stream.open``) or as a pickled Stream object. Every
message carries its sender and send index in its payload, and both sides record rows of
(producer, partition, sequence, tag, index), so the parent checks every message for loss,
duplication, order and content. Also: every backpressure policy across processes, two
producer processes over four partitions, key-to-partition stability across interpreters
with different hash seeds, groups being per process, the life cycle of shared names, and a
close by the creator while a child drains. Every wait is bounded, and every test removes
its segments whatever happens.
"""

from __future__ import annotations

import multiprocessing
import re
from collections.abc import Iterator
from multiprocessing.context import BaseContext
from typing import Any

import pytest

import kaelix
import stream_workers as workers
from kaelix import Stream
from proc_helpers import Children
from stream_workers import JOIN_S, Background, Streams, unique_name


@pytest.fixture
def context() -> BaseContext:
    return multiprocessing.get_context("spawn")


@pytest.fixture
def children(context: BaseContext) -> Iterator[Children]:
    with Children(context) as started:
        yield started


@pytest.fixture
def streams() -> Iterator[Streams]:
    with Streams() as made:
        yield made


def shared(streams: Streams, **options: Any) -> Stream:
    return streams(shared=True, **options)


def result(results: Any) -> tuple[Any, ...]:
    """The next report of a child; a child's error becomes this test's failure."""
    report = results.get(timeout=JOIN_S)
    assert report[0] == "ok", f"child {report[1]} failed:\n{report[2]}"
    return tuple(report)


def expected_attributes(stream: Stream) -> dict[str, Any]:
    return workers.attributes_of(stream)


# --------------------------------------------------------------------------------------------
# Names: open, exists, close
# --------------------------------------------------------------------------------------------


def test_open_of_a_missing_name_is_stream_not_found() -> None:
    name = unique_name()
    with pytest.raises(kaelix.StreamNotFound, match=re.escape(name)) as caught:
        Stream.open(name)
    assert isinstance(caught.value, FileNotFoundError)
    with pytest.raises(kaelix.StreamNotFound):
        Stream.open((name + "-x" * 200)[:255])


def test_a_second_shared_stream_of_one_name_is_stream_exists(streams: Streams) -> None:
    first = shared(streams, capacity=4096)
    consumer = first.consumer()
    with pytest.raises(kaelix.StreamExists, match=re.escape(first.name)) as caught:
        Stream(first.name, shared=True)
    assert isinstance(caught.value, FileExistsError)
    assert first.producer().send(b"still here") == (0, 0)  # the first one is untouched
    assert consumer.poll(timeout=workers.WAKE_BOUND_S).payload == b"still here"


def test_shared_segments_are_named_after_the_stream(streams: Streams) -> None:
    # docs/streams.md: kxs.<length of name>.<name> for the metadata, then .p<partition>.
    stream = shared(streams, partitions=3, capacity=4096)
    base = f"kxs.{len(stream.name)}.{stream.name}"
    assert sorted(workers.segments_of(stream.name)) == sorted(
        [base] + [f"{base}.p{p}" for p in range(3)]
    )


def test_close_by_the_creator_removes_the_names(streams: Streams) -> None:
    stream = shared(streams, partitions=3, capacity=4096)
    stream.producer().send(b"x")
    assert len(workers.segments_of(stream.name)) >= 3, "not one segment per partition"
    stream.close()
    assert stream.closed
    assert workers.segments_of(stream.name) == []
    with pytest.raises(kaelix.StreamNotFound):
        Stream.open(stream.name)
    again = streams.track(Stream(stream.name, shared=True, capacity=4096))  # the name is free
    assert again.partitions == 1


def test_the_creator_context_manager_closes_the_stream(streams: Streams) -> None:
    name = unique_name()
    with Stream(name, shared=True, capacity=4096) as stream:
        streams.track(stream)
        assert not stream.closed
    assert stream.closed
    with pytest.raises(kaelix.StreamNotFound):
        Stream.open(name)


# --------------------------------------------------------------------------------------------
# One producer, one consumer, in two processes
# --------------------------------------------------------------------------------------------


def test_child_producer_by_name_to_parent_consumer(
    children: Children, context: BaseContext, streams: Streams
) -> None:
    """The child opens the stream by name and leaves through its context manager: a detach,
    which must not close the stream for the parent."""
    count = 30_000
    stream = shared(streams, partitions=2, capacity=1 << 14)
    consumer = stream.consumer()
    results = context.Queue()
    child = children.start(workers.producer_main, stream.name, 1, count, results, {})
    received = workers.receive_count(consumer, count)
    _, _, rows, attributes = result(results)
    children.join_ok(child)
    sent = workers.from_array(rows)
    workers.check_sequences_dense(sent)
    workers.check_rows(sent, received, complete=True)
    assert attributes == expected_attributes(stream)
    # the child's detach left the stream open
    assert not stream.closed
    mine = workers.produce(stream.producer(), 2, 10)
    workers.check_rows(mine, workers.receive_count(consumer, 10), complete=True)


def test_parent_producer_to_child_consumer_given_the_pickled_stream(
    children: Children, context: BaseContext, streams: Streams
) -> None:
    """The child gets the Stream object itself (pickled as its name; a 255-character one,
    stored under a hashed name). The parent closes after its last send; the child reads
    everything, then its reading ends."""
    count = 30_000
    name = (unique_name() + "-" + "n" * 255)[:255]
    stream = streams.track(Stream(name, shared=True, partitions=3, capacity=1 << 14))
    ready, results = context.Event(), context.Queue()
    child = children.start(workers.consumer_main, stream, 1, ready, results, {})
    assert ready.wait(JOIN_S)
    sent = workers.produce(stream.producer(), 0, count)
    stream.close()
    _, _, rows, skipped, ended_by_close, attributes = result(results)
    children.join_ok(child)
    assert ended_by_close
    assert skipped == 0
    workers.check_rows(sent, workers.from_array(rows), complete=True)
    assert attributes == expected_attributes(stream)


@pytest.mark.parametrize("backpressure", ["block", "error", "drop_oldest"])
def test_every_policy_across_processes(
    children: Children, context: BaseContext, streams: Streams, backpressure: str
) -> None:
    """A child producer (retrying refused sends under "error"), and two consumers in the
    parent: one reading as it goes, one reading only after the producer finished. block and
    error deliver everything to both; drop_oldest an ordered subsequence to each, with
    skipped exactly what each missed."""
    count = 30_000
    stream = shared(streams, partitions=2, capacity=8192, backpressure=backpressure)
    eager, late = stream.consumer(), stream.consumer()
    results = context.Queue()
    reading = Background(workers.receive, eager, max_messages=512)
    child = children.start(workers.producer_main, stream, 1, count, results, {})
    if backpressure != "drop_oldest":  # block and error need both consumers to read
        late_reading = Background(workers.receive, late, max_messages=512)
    _, _, rows, _ = result(results)
    if backpressure == "drop_oldest":
        late_reading = Background(workers.receive, late, max_messages=512)
    children.join_ok(child)
    stream.close()
    sent = workers.from_array(rows)
    workers.check_sequences_dense(sent)
    assert len(sent) == count
    for consumer, reader in [(eager, reading), (late, late_reading)]:
        received, ended_by_close = reader.value(JOIN_S)
        assert ended_by_close
        if backpressure != "drop_oldest":
            workers.check_rows(sent, received, complete=True)
            assert consumer.skipped == 0
            continue
        workers.check_rows(sent, received, complete=False)
        assert consumer.skipped == len(sent) - len(received)
        for partition in range(2):
            there = [row for row in received if row[1] == partition]
            sent_there = [row for row in sent if row[1] == partition]
            assert there and there[-1] == sent_there[-1], "the newest message was lost"
    if backpressure == "drop_oldest":
        assert late.skipped > 0  # the premise: it did lag


def test_two_producer_processes_over_four_partitions(
    children: Children, context: BaseContext, streams: Streams
) -> None:
    """Two children send round-robin over four partitions while the parent sends too: three
    distinct producer ids, each numbering each partition from 0, and one consumer in the
    parent getting all of it."""
    count = 20_000
    stream = shared(streams, partitions=4, capacity=1 << 14)
    consumer = stream.consumer()
    reading = Background(workers.receive, consumer, max_messages=512)
    results = context.Queue()
    started = [
        children.start(workers.producer_main, stream, tag, count, results, {}) for tag in (1, 2)
    ]
    parent = workers.produce(stream.producer(), 0, 1000)
    reports = sorted((result(results) for _ in started), key=lambda report: report[1])
    children.join_ok(*started)
    stream.close()
    received, ended_by_close = reading.value(JOIN_S)
    assert ended_by_close
    sent_by = [parent] + [workers.from_array(report[2]) for report in reports]
    assert len({rows[0][0] for rows in sent_by}) == 3, "producer ids are not unique"
    for rows in sent_by:
        workers.check_sequences_dense(rows)
        # round-robin per producer: send i goes to partition i % 4 as its (i // 4)th there
        assert all((row[1], row[2]) == (row[4] % 4, row[4] // 4) for row in rows)
    workers.check_rows([row for rows in sent_by for row in rows], received, complete=True)


def test_a_group_is_per_process(children: Children, context: BaseContext, streams: Streams) -> None:
    """Members of group "g" in two processes: each process gets every message."""
    count = 5_000
    stream = shared(streams, partitions=2, capacity=1 << 14)
    member = stream.consumer(group="g")
    ready, results = context.Event(), context.Queue()
    child = children.start(workers.consumer_main, stream, 1, ready, results, {"group": "g"})
    assert ready.wait(JOIN_S)
    assert member.assignment == (0, 1)
    reading = Background(workers.receive, member)
    sent = workers.produce(stream.producer(), 0, count)
    stream.close()
    _, _, rows, _, ended_by_close, _ = result(results)
    children.join_ok(child)
    assert ended_by_close
    workers.check_rows(sent, workers.from_array(rows), complete=True)
    received, ended_by_close = reading.value(JOIN_S)
    assert ended_by_close
    workers.check_rows(sent, received, complete=True)


def test_close_by_the_creator_while_a_child_drains(
    children: Children, context: BaseContext, streams: Streams
) -> None:
    """The creator closes with messages still waiting for a child consumer: the child reads
    them all, then stops; the names are gone at once."""
    stream = shared(streams, partitions=2, capacity=1 << 16)
    ready, results = context.Event(), context.Queue()
    child = children.start(workers.consumer_main, stream.name, 1, ready, results, {})
    assert ready.wait(JOIN_S)
    sent = workers.produce(stream.producer(), 0, 2_000)  # it all fits: the child may lag
    stream.close()
    with pytest.raises(kaelix.StreamNotFound):
        Stream.open(stream.name)
    assert workers.segments_of(stream.name) == []
    _, _, rows, _, ended_by_close, _ = result(results)
    children.join_ok(child)
    assert ended_by_close
    workers.check_rows(sent, workers.from_array(rows), complete=True)


# --------------------------------------------------------------------------------------------
# Keys to partitions, across interpreters
# --------------------------------------------------------------------------------------------

KEYS: list[bytes | str] = [
    b"",
    b"user-1",
    "user-1",
    "ключ",
    "🔑 emoji",
    b"\x00\xff\x00",
    *[f"order-{i}" for i in range(40)],
    *[bytes([i, 255 - i]) * 5 for i in range(20)],
]
PARTITION_COUNTS = [1, 2, 3, 7, 16, 1000, 1024]


def test_key_to_partition_is_stable_across_processes_and_hash_seeds(
    children: Children,
    context: BaseContext,
    streams: Streams,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two children with different PYTHONHASHSEED (their hash of a str differs) compute
    partition_for of every key and send with every key; both agree with the parent, with
    crc32c(key) % n, and with the partitions the messages arrive in."""
    partitions = 7
    stream = shared(streams, partitions=partitions, capacity=1 << 16)
    consumer = stream.consumer()
    results = context.Queue()
    started = []
    for tag, seed in [(1, "1"), (2, "2")]:
        monkeypatch.setenv("PYTHONHASHSEED", seed)
        started.append(
            children.start(
                workers.partitions_main, stream.name, KEYS, PARTITION_COUNTS, results, tag
            )
        )
    reports = sorted((result(results) for _ in started), key=lambda report: report[1])
    children.join_ok(*started)
    received = workers.receive_count(consumer, 2 * len(KEYS))
    assert [report[2] for report in reports] == ["1", "2"]
    assert reports[0][3] != reports[1][3], "the children's str hashes agree: same seed?"
    expected = {
        n: [kaelix.crc32c(k.encode() if isinstance(k, str) else k) % n for k in KEYS]
        for n in PARTITION_COUNTS
    }
    assert {n: [kaelix.partition_for(k, n) for k in KEYS] for n in PARTITION_COUNTS} == expected
    for report in reports:
        assert report[4] == expected
        assert report[5] == expected[partitions]
    arrived: dict[tuple[int, int], int] = {}
    for row in received:
        arrived[(row[3], row[4])] = row[1]
    assert arrived == {
        (tag, index): expected[partitions][index] for tag in (1, 2) for index in range(len(KEYS))
    }
