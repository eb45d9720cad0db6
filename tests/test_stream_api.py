"""The stream contract (issue 5), one behaviour per test, in one process.

Stream, Producer and Consumer: names and argument checks, how a send picks its partition
and sequence, what a message carries back, broadcast and pinned consumers, start positions,
lag, close of each object, consumer groups splitting partitions (also while members join and
leave), and threads checked message by message. Backpressure policies have their own file
(test_stream_policies.py), as do processes, asyncio and memory. Waits are bounded
everywhere: a stream that never wakes up fails a test instead of hanging the run, and no
test asserts a speed.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kaelix
import stream_workers as workers
from kaelix import MessageBatch, Stream
from stream_workers import (
    JOIN_S,
    WAKE_BOUND_S,
    Background,
    Row,
    Streams,
    drain,
    drain_rows,
    run_threads,
    unique_name,
)


@pytest.fixture(params=["in_process", "shared"])
def streams(request: pytest.FixtureRequest) -> Iterator[Streams]:
    """Streams of either kind: in one process, a shared stream must behave as an
    in-process one does."""
    with Streams(shared=request.param == "shared") as made:
        yield made


# --------------------------------------------------------------------------------------------
# Exports and the error tree
# --------------------------------------------------------------------------------------------


def test_stream_names_are_exported() -> None:
    names = {
        "Stream",
        "Producer",
        "Consumer",
        "partition_for",
        "StreamError",
        "StreamClosed",
        "SendTimeout",
        "BufferFull",
        "StreamNotFound",
        "StreamExists",
    }
    assert names <= set(kaelix.__all__)
    for name in names:
        assert hasattr(kaelix, name), name


@pytest.mark.parametrize(
    ("error", "bases"),
    [
        ("StreamError", (kaelix.KaelixError,)),
        ("StreamClosed", (kaelix.KaelixError, ValueError)),
        ("SendTimeout", (kaelix.KaelixError, TimeoutError)),
        ("BufferFull", (kaelix.KaelixError, queue.Full)),
        ("StreamNotFound", (kaelix.KaelixError, FileNotFoundError)),
        ("StreamExists", (kaelix.KaelixError, FileExistsError)),
    ],
)
def test_error_tree(error: str, bases: tuple[type[Exception], ...]) -> None:
    cls = getattr(kaelix, error)
    assert getattr(kaelix.errors, error) is cls
    assert issubclass(cls, kaelix.StreamError)
    for base in bases:
        assert issubclass(cls, base), base


def test_producer_and_consumer_are_the_exported_classes(streams: Streams) -> None:
    stream = streams()
    assert isinstance(stream, kaelix.Stream)
    assert isinstance(stream.producer(), kaelix.Producer)
    assert isinstance(stream.consumer(), kaelix.Consumer)


# --------------------------------------------------------------------------------------------
# Names and arguments
# --------------------------------------------------------------------------------------------

GOOD_NAMES = ["a", "Z", "0", ".", "-", "_", "..", "A.b_c-9", "-leading-dash", ".hidden", "x" * 255]


@pytest.mark.parametrize("name", GOOD_NAMES, ids=lambda name: name[:12])
def test_names_of_1_to_255_allowed_characters_are_fine(name: str) -> None:
    with Stream(name) as stream:
        assert stream.name == name


BAD_NAMES = {
    "empty": "",
    "256_chars": "x" * 256,
    "slash": "a/b",
    "space": "sp ace",
    "tab": "a\tb",
    "newline_inside": "a\nb",
    "trailing_newline": "abc\n",
    "nul": "a\x00b",
    "colon": "a:b",
    "star": "a*",
    "non_ascii_letter": "é",
    "non_ascii_digit": "٣",
}


@pytest.mark.parametrize("name", BAD_NAMES.values(), ids=BAD_NAMES.keys())
@pytest.mark.parametrize("shared", [False, True])
def test_a_bad_name_is_a_value_error(name: str, shared: bool) -> None:
    with pytest.raises(ValueError):
        Stream(name, shared=shared)


@pytest.mark.parametrize("name", BAD_NAMES.values(), ids=BAD_NAMES.keys())
def test_open_with_a_bad_name_is_a_value_error(name: str) -> None:
    with pytest.raises(ValueError):
        Stream.open(name)


@pytest.mark.parametrize("name", [b"abc", 12, None, ["a"]], ids=repr)
def test_a_name_that_is_not_a_str_is_a_type_error(name: Any) -> None:
    with pytest.raises(TypeError):
        Stream(name)


def test_defaults_and_attributes(streams: Streams) -> None:
    name = unique_name()
    stream = streams.track(Stream(name))
    assert stream.name == name
    assert stream.partitions == 1
    assert stream.capacity == 1 << 20
    assert stream.backpressure == "block"
    assert stream.shared is False
    assert stream.closed is False
    assert stream.send_timeout == 60.0


def test_options_are_kept(streams: Streams) -> None:
    stream = streams(partitions=7, capacity=1 << 16, backpressure="drop_oldest", send_timeout=None)
    assert stream.partitions == 7
    assert stream.capacity == 1 << 16
    assert stream.backpressure == "drop_oldest"
    assert stream.send_timeout is None
    assert streams(backpressure="error", send_timeout=2.5).send_timeout == 2.5


@pytest.mark.parametrize(
    ("requested", "capacity"),
    [(1, 4096), (100, 4096), (4096, 4096), (4097, 8192), (5000, 8192), (65537, 131072)],
)
def test_capacity_rounds_up_to_a_power_of_two_of_at_least_4096(
    streams: Streams, requested: int, capacity: int
) -> None:
    assert streams(capacity=requested).capacity == capacity


@pytest.mark.parametrize("partitions", [1, 2, 1024])
def test_partitions_from_1_to_1024(streams: Streams, partitions: int) -> None:
    stream = streams(partitions=partitions, capacity=4096)
    assert stream.partitions == partitions
    consumer = stream.consumer()
    assert consumer.assignment == tuple(range(partitions))


BAD_VALUES: dict[str, dict[str, Any]] = {
    "partitions_0": {"partitions": 0},
    "partitions_negative": {"partitions": -1},
    "partitions_1025": {"partitions": 1025},
    "capacity_0": {"capacity": 0},
    "capacity_negative": {"capacity": -4096},
    "backpressure_unknown": {"backpressure": "nope"},
    "backpressure_upper_case": {"backpressure": "BLOCK"},
    "backpressure_empty": {"backpressure": ""},
    "send_timeout_negative": {"send_timeout": -1.0},
    "max_producers_0": {"max_producers": 0},
    "max_consumers_0": {"max_consumers": 0},
}


@pytest.mark.parametrize("options", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_a_bad_argument_value_is_a_value_error(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Stream(unique_name(), **options)


BAD_TYPES: dict[str, dict[str, Any]] = {
    "partitions_str": {"partitions": "4"},
    "partitions_float": {"partitions": 4.0},
    "partitions_none": {"partitions": None},
    "capacity_str": {"capacity": "big"},
    "capacity_float": {"capacity": 4096.0},
    "backpressure_int": {"backpressure": 1},
    "backpressure_none": {"backpressure": None},
    "send_timeout_str": {"send_timeout": "soon"},
    "max_producers_str": {"max_producers": "8"},
    "max_consumers_float": {"max_consumers": 2.5},
}


@pytest.mark.parametrize("options", BAD_TYPES.values(), ids=BAD_TYPES.keys())
def test_a_wrong_argument_type_is_a_type_error(options: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        Stream(unique_name(), **options)


def test_options_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        Stream(unique_name(), 4)  # type: ignore[misc]


def test_a_255_character_shared_name_works(streams: Streams) -> None:
    name = (f"kx.test-{os.getpid()}-{uuid4().hex}-" * 10)[:255]
    stream = streams.track(Stream(name, shared=True, capacity=4096))
    assert stream.name == name
    assert stream.shared is True
    consumer = stream.consumer()
    stream.producer().send(b"long")
    assert consumer.poll(timeout=WAKE_BOUND_S).payload == b"long"
    stream.close()
    with pytest.raises(kaelix.StreamNotFound):
        Stream.open(name)


# --------------------------------------------------------------------------------------------
# partition_for
# --------------------------------------------------------------------------------------------


def test_partition_for_known_answers() -> None:
    # CRC-32C of b"123456789" is 0xE3069283 (the standard check value): 3808858755.
    assert kaelix.crc32c(b"123456789") == 0xE3069283
    assert kaelix.partition_for(b"123456789", 1000) == 755
    assert kaelix.partition_for("123456789", 1000) == 755
    assert kaelix.partition_for(b"123456789", 1) == 0
    assert kaelix.partition_for(b"", 7) == 0
    assert kaelix.partition_for("ключ", 1024) == kaelix.crc32c("ключ".encode()) % 1024


@given(
    key=st.one_of(st.binary(max_size=64), st.text(max_size=32)),
    partitions=st.integers(1, 1024),
)
@settings(max_examples=200, deadline=None)
def test_partition_for_is_crc32c_of_the_key_modulo_partitions(
    key: bytes | str, partitions: int
) -> None:
    data = key.encode("utf-8") if isinstance(key, str) else key
    partition = kaelix.partition_for(key, partitions)
    assert partition == kaelix.crc32c(data) % partitions
    assert partition == kaelix.partition_for(data, partitions)
    assert 0 <= partition < partitions


@pytest.mark.parametrize("partitions", [0, -1])
def test_partition_for_zero_partitions_is_a_value_error(partitions: int) -> None:
    with pytest.raises(ValueError):
        kaelix.partition_for(b"key", partitions)


@pytest.mark.parametrize("key", [12, None, 1.5])
def test_partition_for_a_key_of_the_wrong_type_is_a_type_error(key: Any) -> None:
    with pytest.raises(TypeError):
        kaelix.partition_for(key, 4)


# --------------------------------------------------------------------------------------------
# Sending: partition and sequence
# --------------------------------------------------------------------------------------------


def test_round_robin_without_key_and_sequences_from_zero(streams: Streams) -> None:
    stream = streams(partitions=3, capacity=1 << 16)
    first, second = stream.producer(), stream.producer()
    assert [first.send(b"x") for _ in range(7)] == [
        (0, 0),
        (1, 0),
        (2, 0),
        (0, 1),
        (1, 1),
        (2, 1),
        (0, 2),
    ]
    # round-robin and sequences are per producer
    assert [second.send(b"y") for _ in range(4)] == [(0, 0), (1, 0), (2, 0), (0, 1)]
    assert first.send(b"x") == (1, 2)


def test_explicit_partitions_number_each_partition_from_zero(streams: Streams) -> None:
    stream = streams(partitions=3, capacity=1 << 16)
    producer = stream.producer()
    targets = [0, 0, 1, 2, 0, 1, 0, 2, 2]
    got = [producer.send(b"x", partition=p) for p in targets]
    assert got == [
        (0, 0),
        (0, 1),
        (1, 0),
        (2, 0),
        (0, 2),
        (1, 1),
        (0, 3),
        (2, 1),
        (2, 2),
    ]


@pytest.mark.parametrize("partition", [-1, 3, 1000])
def test_an_out_of_range_partition_is_a_value_error_and_uses_no_sequence(
    streams: Streams, partition: int
) -> None:
    stream = streams(partitions=3, capacity=1 << 16)
    consumer = stream.consumer()
    producer = stream.producer()
    assert producer.send(b"a", partition=0) == (0, 0)
    with pytest.raises(ValueError):
        producer.send(b"b", partition=partition)
    assert producer.send(b"c", partition=0) == (0, 1)
    assert [m.payload for m in drain(consumer)] == [b"a", b"c"]


@pytest.mark.parametrize("partition", ["1", 1.0])
def test_a_partition_of_the_wrong_type_is_a_type_error(streams: Streams, partition: Any) -> None:
    producer = streams(partitions=3).producer()
    with pytest.raises(TypeError):
        producer.send(b"x", partition=partition)


@pytest.mark.parametrize(
    "key", [b"user-1", "user-1", "ключ-🔑", b"", bytearray(b"abc"), memoryview(b"\x00\xff")]
)
@pytest.mark.parametrize("partitions", [1, 5, 64])
def test_a_key_picks_partition_for_of_the_key(streams: Streams, key: Any, partitions: int) -> None:
    stream = streams(partitions=partitions, capacity=4096)
    consumer = stream.consumer()
    producer = stream.producer()
    data = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    expected = kaelix.crc32c(data) % partitions
    assert kaelix.partition_for(data, partitions) == expected
    if isinstance(key, str):
        assert kaelix.partition_for(key, partitions) == expected
    assert [producer.send(b"v%d" % i, key=key) for i in range(3)] == [
        (expected, 0),
        (expected, 1),
        (expected, 2),
    ]
    messages = drain(consumer)
    assert [(m.partition, m.key, m.payload) for m in messages] == [
        (expected, data, b"v%d" % i) for i in range(3)
    ]


def test_keys_spread_over_partitions_as_partition_for_says(streams: Streams) -> None:
    stream = streams(partitions=16, capacity=1 << 16)
    producer = stream.producer()
    keys = [f"key-{i}" for i in range(200)]
    got = [producer.send(b"v", key=key)[0] for key in keys]
    assert got == [kaelix.partition_for(key, 16) for key in keys]
    assert len(set(got)) > 8  # the premise: these keys do not all land in a few partitions


def test_an_explicit_partition_wins_over_the_key(streams: Streams) -> None:
    stream = streams(partitions=4, capacity=4096)
    consumer = stream.consumer()
    key = b"k"
    other = (kaelix.partition_for(key, 4) + 1) % 4
    assert stream.producer().send(b"v", key=key, partition=other) == (other, 0)
    message = consumer.poll(timeout=0)
    assert (message.partition, message.key) == (other, key)


@pytest.mark.parametrize("key", [12, 1.5, ["k"]], ids=repr)
def test_a_key_of_the_wrong_type_is_a_type_error(streams: Streams, key: Any) -> None:
    producer = streams(partitions=2).producer()
    with pytest.raises(TypeError):
        producer.send(b"x", key=key)


@pytest.mark.parametrize("payload", ["text", 12, None, [1, 2]], ids=repr)
def test_a_payload_that_is_not_bytes_like_is_a_type_error_and_uses_no_sequence(
    streams: Streams, payload: Any
) -> None:
    stream = streams(capacity=4096)
    consumer = stream.consumer()
    producer = stream.producer()
    with pytest.raises(TypeError):
        producer.send(payload)
    assert producer.send(b"ok") == (0, 0)
    assert [m.payload for m in drain(consumer)] == [b"ok"]


@pytest.mark.parametrize("timeout", ["soon", [1]], ids=repr)
def test_a_send_timeout_of_the_wrong_type_is_a_type_error(streams: Streams, timeout: Any) -> None:
    producer = streams().producer()
    with pytest.raises(TypeError):
        producer.send(b"x", timeout=timeout)


def test_a_negative_send_timeout_is_a_value_error(streams: Streams) -> None:
    producer = streams().producer()
    with pytest.raises(ValueError):
        producer.send(b"x", timeout=-1)


SendAction = tuple[int, str, Any]
"""(producer index, route, argument): route "rr" (no key, no partition), "partition"
(argument: a partition, maybe out of range) or "key" (argument: bytes)."""

send_actions = st.lists(
    st.tuples(
        st.integers(0, 1),
        st.one_of(
            st.tuples(st.just("rr"), st.none()),
            st.tuples(st.just("partition"), st.integers(-2, 6)),
            st.tuples(st.just("key"), st.binary(max_size=6)),
        ),
    ).map(lambda drawn: (drawn[0], *drawn[1])),
    max_size=60,
)


@given(actions=send_actions, partitions=st.integers(1, 5))
@settings(max_examples=60, deadline=None)
def test_sequences_and_partitions_follow_a_simple_model(
    actions: list[SendAction], partitions: int
) -> None:
    """Any mix of sends from two producers: each accepted send gets the partition the
    contract names (explicit, or partition_for of the key, or some partition for
    round-robin) and the next sequence of its (producer, partition); a rejected send
    (partition out of range) uses none. The consumer then gets exactly the accepted ones."""
    stream = Stream(unique_name(), partitions=partitions, capacity=1 << 16)
    try:
        consumer = stream.consumer()
        producers = [stream.producer(), stream.producer()]
        assert producers[0].producer_id != producers[1].producer_id
        following: dict[tuple[int, int], int] = {}
        sent: list[Row] = []
        for index, (which, route, argument) in enumerate(actions):
            producer = producers[which]
            payload = workers.payload_for(which, index)
            if route == "partition" and not 0 <= argument < partitions:
                with pytest.raises(ValueError):
                    producer.send(payload, partition=argument)
                continue
            if route == "partition":
                got = producer.send(payload, partition=argument)
                assert got[0] == argument
            elif route == "key":
                got = producer.send(payload, key=argument)
                assert got[0] == kaelix.crc32c(argument) % partitions
            else:
                got = producer.send(payload)
                assert 0 <= got[0] < partitions
            scope = (which, got[0])
            assert got[1] == following.get(scope, 0)
            following[scope] = got[1] + 1
            sent.append((producer.producer_id, got[0], got[1], which, index))
        received = drain_rows(consumer)
        workers.check_rows(sent, received, complete=True)
    finally:
        stream.close()


# --------------------------------------------------------------------------------------------
# What a message carries
# --------------------------------------------------------------------------------------------


def test_a_message_carries_everything_sent(streams: Streams) -> None:
    stream = streams(partitions=2, capacity=4096)
    consumer = stream.consumer()
    producer = stream.producer()
    before = time.time_ns()
    partition, sequence = producer.send(
        bytearray(b"payload"),
        key="ключ",
        headers={"trace": b"abc", "empty": b"", "view": memoryview(b"\x00\x01")},
    )
    after = time.time_ns()
    message = consumer.poll(timeout=0)
    assert message is not None
    assert message.payload == b"payload"
    assert message.key == "ключ".encode()
    assert dict(message.headers) == {"trace": b"abc", "empty": b"", "view": b"\x00\x01"}
    assert message.partition == partition == kaelix.partition_for("ключ", 2)
    assert message.sequence == sequence == 0
    assert message.producer_id == producer.producer_id
    assert before <= message.timestamp_ns <= after
    assert consumer.poll(timeout=0) is None


def test_a_message_without_key_or_headers(streams: Streams) -> None:
    stream = streams(capacity=4096)
    consumer = stream.consumer()
    stream.producer().send(memoryview(b"plain"))
    stream.producer().send(b"")
    first, second = drain(consumer)
    assert (first.payload, first.key, dict(first.headers)) == (b"plain", None, {})
    assert (second.payload, second.key) == (b"", None)


def test_timestamps_follow_the_wall_clock_send_by_send(streams: Streams) -> None:
    stream = streams(capacity=1 << 16)
    consumer = stream.consumer()
    producer = stream.producer()
    bounds = []
    for _ in range(50):
        before = time.time_ns()
        producer.send(b"t")
        bounds.append((before, time.time_ns()))
    messages = drain(consumer)
    assert len(messages) == 50
    for (before, after), message in zip(bounds, messages, strict=True):
        assert before <= message.timestamp_ns <= after


def test_an_explicit_producer_id_is_carried(streams: Streams) -> None:
    stream = streams(capacity=4096)
    consumer = stream.consumer()
    producer = stream.producer(producer_id=77)
    assert producer.producer_id == 77
    producer.send(b"x")
    assert consumer.poll(timeout=0).producer_id == 77


def test_default_producer_ids_are_unique(streams: Streams) -> None:
    stream = streams()
    ids = [stream.producer().producer_id for _ in range(6)]
    assert all(isinstance(i, int) for i in ids)
    assert len(set(ids)) == 6


@pytest.mark.parametrize("backpressure", ["block", "error", "drop_oldest"])
def test_a_message_larger_than_the_capacity_is_frame_too_large_at_once(
    streams: Streams, backpressure: str
) -> None:
    stream = streams(capacity=4096, backpressure=backpressure)
    consumer = stream.consumer()
    producer = stream.producer()
    # with timeout=5, a send that waited for room would end in SendTimeout, not hang
    with pytest.raises(kaelix.FrameTooLarge) as caught:
        producer.send(b"x" * 5000, timeout=5)
    assert isinstance(caught.value, ValueError)
    with pytest.raises(kaelix.FrameTooLarge):
        producer.send(b"k", key=b"x" * 5000, timeout=5)
    assert producer.send(b"small") == (0, 0)
    assert [m.payload for m in drain(consumer)] == [b"small"]


def test_send_batch_numbers_like_single_sends(streams: Streams) -> None:
    stream = streams(partitions=3, capacity=1 << 16)
    consumer = stream.consumer()
    producer = stream.producer()
    # Without keys or partition a batch is one run in the next round-robin partition
    # (sticky, as Kafka's partitioner), and the round-robin goes on from there.
    assert producer.send_batch([b"a", b"b", b"c", b"d"]) == [(0, 0), (0, 1), (0, 2), (0, 3)]
    assert producer.send(b"after") == (1, 0)
    assert producer.send_batch([b"e", b"f"], partition=2) == [(2, 0), (2, 1)]
    keys = [b"k1", "k2", b"k3"]
    following = {0: 4, 1: 1, 2: 2}
    expected = []
    for key in keys:
        partition = kaelix.partition_for(key, 3)
        expected.append((partition, following[partition]))
        following[partition] += 1
    assert producer.send_batch(iter([b"g", b"h", b"i"]), keys=keys) == expected
    assert producer.send_batch([]) == []
    messages = drain(consumer)
    assert len(messages) == 10
    by_payload = {m.payload: (m.partition, m.sequence, m.key) for m in messages}
    assert by_payload[b"a"] == (0, 0, None)
    assert by_payload[b"d"] == (0, 3, None)
    assert by_payload[b"after"] == (1, 0, None)
    assert by_payload[b"f"] == (2, 1, None)
    assert by_payload[b"h"][2] == b"k2"


# --------------------------------------------------------------------------------------------
# Consumers: broadcast, start, pinned partitions, poll, lag
# --------------------------------------------------------------------------------------------


def test_every_consumer_without_group_sees_every_message(streams: Streams) -> None:
    stream = streams(partitions=3, capacity=1 << 16)
    first, second = stream.consumer(), stream.consumer()
    assert first.group is None
    assert first.assignment == second.assignment == (0, 1, 2)
    sent = workers.produce(stream.producer(), 0, 300)
    for consumer in (first, second):
        workers.check_rows(sent, drain_rows(consumer), complete=True)


def test_start_earliest_and_latest(streams: Streams) -> None:
    stream = streams(partitions=2, capacity=1 << 16)
    producer = stream.producer()
    early = workers.produce(producer, 0, 6)
    earliest = stream.consumer(start="earliest")
    latest = stream.consumer(start="latest")
    default = stream.consumer()
    assert latest.poll(timeout=0) is None
    late = workers.produce(producer, 0, 4, first=6)
    workers.check_rows(early + late, drain_rows(earliest), complete=True)
    workers.check_rows(early + late, drain_rows(default), complete=True)
    workers.check_rows(late, drain_rows(latest), complete=True)


def test_pinned_partitions(streams: Streams) -> None:
    stream = streams(partitions=4, capacity=1 << 16)
    pinned = stream.consumer(partitions=[3, 1])
    assert sorted(pinned.assignment) == [1, 3]
    assert set(pinned.lag) == {1, 3}
    everything = stream.consumer()
    sent = workers.produce(stream.producer(), 0, 40)
    workers.check_rows(sent, drain_rows(everything), complete=True)
    mine = [row for row in sent if row[1] in (1, 3)]
    workers.check_rows(mine, drain_rows(pinned), complete=True)


BAD_CONSUMERS: dict[str, tuple[type[Exception], dict[str, Any]]] = {
    "start_unknown": (ValueError, {"start": "middle"}),
    "partition_out_of_range": (ValueError, {"partitions": [0, 4]}),
    "partition_negative": (ValueError, {"partitions": [-1]}),
    "group_and_partitions": (ValueError, {"group": "g", "partitions": [0]}),
    "group_not_str": (TypeError, {"group": 5}),
    "start_not_str": (TypeError, {"start": 0}),
}


@pytest.mark.parametrize(("error", "options"), BAD_CONSUMERS.values(), ids=BAD_CONSUMERS.keys())
def test_bad_consumer_arguments(
    streams: Streams, error: type[Exception], options: dict[str, Any]
) -> None:
    stream = streams(partitions=4)
    with pytest.raises(error):
        stream.consumer(**options)


def test_poll_without_waiting_on_nothing_is_none(streams: Streams) -> None:
    stream = streams(partitions=2)
    consumer = stream.consumer()
    assert consumer.poll(timeout=0) is None
    assert consumer.poll(timeout=0.01) is None
    batch = consumer.poll_batch(timeout=0)
    assert isinstance(batch, MessageBatch)
    assert len(batch) == 0


def test_poll_batch_returns_a_message_batch_with_its_columns(streams: Streams) -> None:
    stream = streams(partitions=2, capacity=1 << 16)
    consumer = stream.consumer()
    producer = stream.producer()
    before = time.time_ns()
    sent = workers.produce(producer, 3, 10)
    after = time.time_ns()
    batches = []
    while len(got := consumer.poll_batch(max_messages=4, timeout=0)):
        assert isinstance(got, MessageBatch)
        assert 1 <= len(got) <= 4
        batches.append(got)
    batch = MessageBatch.concat(batches)
    assert len(batch) == 10
    assert list(batch.partition) == [m.partition for m in batch]
    assert list(batch.sequence) == [m.sequence for m in batch]
    assert list(batch.producer_id) == [producer.producer_id] * 10
    assert all(before <= t <= after for t in batch.timestamp_ns.tolist())
    workers.check_rows(sent, workers.rows_of(batch), complete=True)


def test_lag_counts_what_waits_per_partition(streams: Streams) -> None:
    stream = streams(partitions=3, capacity=1 << 16)
    consumer = stream.consumer()
    assert consumer.lag == {0: 0, 1: 0, 2: 0}
    producer = stream.producer()
    for _ in range(4):
        producer.send(b"x", partition=0)
    for _ in range(2):
        producer.send(b"x", partition=2)
    assert consumer.lag == {0: 4, 1: 0, 2: 2}
    read: dict[int, int] = {0: 0, 1: 0, 2: 0}
    for remaining in range(5, -1, -1):
        message = consumer.poll(timeout=0)
        read[message.partition] += 1
        assert consumer.lag == {0: 4 - read[0], 1: 0, 2: 2 - read[2]}
        assert sum(consumer.lag.values()) == remaining
    assert consumer.poll(timeout=0) is None


def test_a_waiting_poll_is_woken_by_a_send_from_another_thread(streams: Streams) -> None:
    stream = streams(capacity=4096)
    consumer = stream.consumer()
    waiter = Background(consumer.poll, timeout=None)
    assert not waiter.finished_within(0.05)
    stream.producer().send(b"wake")
    message = waiter.value(WAKE_BOUND_S)
    assert message.payload == b"wake"


def test_metrics_count_published_messages_per_partition(streams: Streams) -> None:
    stream = streams(partitions=3, capacity=4096)
    consumer = stream.consumer()
    producer = stream.producer()
    for partition, count in [(0, 5), (2, 3)]:
        for _ in range(count):
            producer.send(b"m" * 40, partition=partition)
    metrics = stream.metrics()
    rows = metrics["partitions"]
    assert [row["partition"] for row in rows] == [0, 1, 2]
    assert [row["published"] for row in rows] == [5, 0, 3]
    assert [row["overwritten"] for row in rows] == [0, 0, 0]
    assert rows[0]["free_bytes"] < rows[1]["free_bytes"]
    assert all(0 <= row["free_bytes"] <= 4096 for row in rows)
    frame = len(kaelix.encode(kaelix.Message(b"m" * 40)))
    assert [row["bytes_published"] for row in rows] == [5 * frame, 0, 3 * frame]
    readers = [row["readers"] for row in rows]
    assert [[r["waiting"] for r in rs] for rs in readers] == [[5], [0], [3]]
    assert len(drain(consumer)) == 8
    rows = stream.metrics()["partitions"]
    assert [row["free_bytes"] for row in rows] == [4096] * 3
    got = [
        [(r["received"], r["bytes_received"], r["waiting"]) for r in row["readers"]] for row in rows
    ]
    assert got == [[(5, 5 * frame, 0)], [(0, 0, 0)], [(3, 3 * frame, 0)]]
    assert {r["pid"] for row in rows for r in row["readers"]} == {os.getpid()}


# --------------------------------------------------------------------------------------------
# close
# --------------------------------------------------------------------------------------------


def test_close_stops_sends_and_consumers_drain_what_is_left(streams: Streams) -> None:
    stream = streams(partitions=2, capacity=1 << 16)
    first, second = stream.consumer(), stream.consumer()
    producer = stream.producer()
    sent = workers.produce(producer, 0, 10)
    early = workers.rows_of([first.poll(timeout=0) for _ in range(3)])
    stream.close()
    assert stream.closed is True
    with pytest.raises(kaelix.StreamClosed):
        producer.send(b"late")
    with pytest.raises(kaelix.StreamClosed):
        producer.send_batch([b"late"])
    with pytest.raises(kaelix.StreamClosed):
        stream.producer()
    with pytest.raises(kaelix.StreamClosed):
        stream.consumer()
    workers.check_rows(sent, early + drain_rows(first), complete=True)
    workers.check_rows(sent, drain_rows(second), complete=True)
    # drained and closed: every kind of poll returns at once, with nothing
    assert first.poll(timeout=0) is None
    assert Background(first.poll, timeout=None).value(WAKE_BOUND_S) is None
    assert len(Background(first.poll_batch, timeout=None).value(WAKE_BOUND_S)) == 0
    assert first.lag == {0: 0, 1: 0}


def test_iteration_ends_when_the_stream_is_closed_and_drained(streams: Streams) -> None:
    stream = streams(partitions=2, capacity=1 << 16)
    consumer = stream.consumer()
    sent = workers.produce(stream.producer(), 0, 25)
    stream.close()
    received = Background(lambda: workers.rows_of(iter(consumer))).value(WAKE_BOUND_S)
    workers.check_rows(sent, received, complete=True)


def test_close_wakes_a_waiting_poll_and_a_waiting_iteration(streams: Streams) -> None:
    stream = streams(capacity=4096)
    polling, batching, iterating = stream.consumer(), stream.consumer(), stream.consumer()
    poll = Background(polling.poll, timeout=None)
    batch = Background(batching.poll_batch, timeout=None)
    iteration = Background(lambda: list(iterating))
    assert not poll.finished_within(0.05)
    stream.close()
    assert poll.value(WAKE_BOUND_S) is None
    assert len(batch.value(WAKE_BOUND_S)) == 0
    assert iteration.value(WAKE_BOUND_S) == []


def test_a_closed_consumer_raises_stream_closed(streams: Streams) -> None:
    stream = streams(capacity=4096)
    consumer, other = stream.consumer(), stream.consumer()
    stream.producer().send(b"x")
    consumer.close()
    assert consumer.closed is True
    with pytest.raises(kaelix.StreamClosed):
        consumer.poll(timeout=0)
    with pytest.raises(kaelix.StreamClosed):
        consumer.poll_batch(timeout=0)
    assert stream.closed is False
    assert other.poll(timeout=0).payload == b"x"


def test_a_closed_producer_raises_stream_closed(streams: Streams) -> None:
    stream = streams(capacity=4096)
    consumer = stream.consumer()
    producer, other = stream.producer(), stream.producer()
    producer.close()
    with pytest.raises(kaelix.StreamClosed):
        producer.send(b"x")
    with pytest.raises(kaelix.StreamClosed):
        producer.send_batch([b"x"])
    assert other.send(b"y") == (0, 0)
    assert [m.payload for m in drain(consumer)] == [b"y"]


def test_context_managers() -> None:
    with Stream(unique_name(), capacity=4096) as stream:
        assert not stream.closed
        with stream.consumer() as consumer, stream.producer() as producer:
            producer.send(b"x")
            assert consumer.poll(timeout=0).payload == b"x"
        assert consumer.closed
        with pytest.raises(kaelix.StreamClosed):
            producer.send(b"y")
        with pytest.raises(kaelix.StreamClosed):
            consumer.poll(timeout=0)
        assert not stream.closed
        assert stream.producer().send(b"z") == (0, 0)  # a new producer, a new numbering
    assert stream.closed
    with pytest.raises(kaelix.StreamClosed):
        stream.producer()


# --------------------------------------------------------------------------------------------
# Consumer groups
# --------------------------------------------------------------------------------------------


def assert_split(members: list[Any], partitions: int) -> None:
    """Every partition is read by exactly one member, and every member reads one at least."""
    assignments = [set(member.assignment) for member in members]
    assert all(assignments), assignments
    assert set().union(*assignments) == set(range(partitions)), assignments
    assert sum(len(a) for a in assignments) == partitions, assignments


def test_two_members_split_the_partitions(streams: Streams) -> None:
    stream = streams(partitions=4, capacity=1 << 16)
    first, second = stream.consumer(group="g"), stream.consumer(group="g")
    assert first.group == second.group == "g"
    assert_split([first, second], 4)
    outsider = stream.consumer()  # no group: it still sees everything
    sent = workers.produce(stream.producer(), 0, 200)
    got_first, got_second = drain_rows(first), drain_rows(second)
    assert {row[1] for row in got_first} == set(first.assignment)
    assert {row[1] for row in got_second} == set(second.assignment)
    workers.check_rows(sent, got_first + got_second, complete=True)
    workers.check_rows(sent, drain_rows(outsider), complete=True)


def test_two_groups_each_get_every_message(streams: Streams) -> None:
    stream = streams(partitions=3, capacity=1 << 16)
    groups = {name: [stream.consumer(group=name) for _ in range(2)] for name in ("a", "b")}
    sent = workers.produce(stream.producer(), 0, 90)
    for members in groups.values():
        assert_split(members, 3)
        workers.check_rows(sent, drain_rows(members[0]) + drain_rows(members[1]), complete=True)


def test_a_member_leaving_mid_stream_hands_its_partitions_over(streams: Streams) -> None:
    stream = streams(partitions=4, capacity=1 << 16)
    leaving, staying = stream.consumer(group="g"), stream.consumer(group="g")
    producer = stream.producer()
    sent = workers.produce(producer, 0, 200)
    before = workers.rows_of(leaving.poll_batch(max_messages=15, timeout=0))
    before += workers.rows_of(staying.poll_batch(max_messages=15, timeout=0))
    assert len(before) == 30
    leaving.close()
    assert staying.assignment == (0, 1, 2, 3)
    sent += workers.produce(producer, 0, 100, first=200)
    after = drain_rows(staying)
    workers.check_rows(sent, before + after, complete=True)


def test_a_member_joining_mid_stream_takes_some_partitions(streams: Streams) -> None:
    stream = streams(partitions=4, capacity=1 << 16)
    first = stream.consumer(group="g")
    assert first.assignment == (0, 1, 2, 3)
    producer = stream.producer()
    sent = workers.produce(producer, 0, 200)
    before = workers.rows_of(first.poll_batch(max_messages=50, timeout=0))
    assert len(before) == 50
    second = stream.consumer(group="g")
    assert_split([first, second], 4)
    sent += workers.produce(producer, 0, 100, first=200)
    got_first, got_second = drain_rows(first), drain_rows(second)
    assert {row[1] for row in got_second} == set(second.assignment)
    assert {row[1] for row in got_first} <= set(first.assignment)
    workers.check_rows(sent, before + got_first + got_second, complete=True)


def test_the_last_member_leaving_and_a_new_one_joining_resumes(streams: Streams) -> None:
    stream = streams(partitions=2, capacity=1 << 16)
    first = stream.consumer(group="g")
    sent = workers.produce(stream.producer(), 0, 40)
    before = workers.rows_of(first.poll_batch(max_messages=10, timeout=0))
    first.close()
    second = stream.consumer(group="g")
    assert second.assignment == (0, 1)
    workers.check_rows(sent, before + drain_rows(second), complete=True)


# --------------------------------------------------------------------------------------------
# Threads
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shared", [False, True], ids=["in_process", "shared"])
def test_threads_every_broadcast_consumer_gets_every_message(shared: bool) -> None:
    producers, consumers, per_producer = 3, 2, 20_000
    stream = Stream(unique_name(), partitions=3, capacity=1 << 14, shared=shared)
    try:
        members = [stream.consumer() for _ in range(consumers)]
        readers = [Background(workers.receive, member) for member in members]
        handles = [stream.producer() for _ in range(producers)]
        keyed = handles[2]
        sent = run_threads(
            [
                lambda: workers.produce(handles[0], 0, per_producer),
                lambda: workers.produce(handles[1], 1, per_producer, partition=1),
                lambda: workers.produce(keyed, 2, per_producer, key_of=lambda i: b"%d" % i),
            ]
        )
        stream.close()
        all_sent = [row for rows in sent for row in rows]
        for rows in sent:
            workers.check_sequences_dense(rows)
        for reader in readers:
            received, ended_by_close = reader.value(JOIN_S)
            assert ended_by_close
            workers.check_rows(all_sent, received, complete=True)
            report = workers.delivery_report(all_sent, received)
            assert report.ok, report.summary()
            assert report.delivered == producers * per_producer
        assert all(row[1] == 1 for row in sent[1])
        assert all(row[1] == kaelix.partition_for(b"%d" % row[4], 3) for row in sent[2])
    finally:
        if not stream.closed:
            stream.close()
        workers.remove_segments([stream.name])


@pytest.mark.parametrize("shared", [False, True], ids=["in_process", "shared"])
def test_threads_a_group_delivers_each_message_once_while_members_join_and_leave(
    shared: bool,
) -> None:
    producers, per_producer = 2, 25_000
    stream = Stream(unique_name(), partitions=4, capacity=1 << 14, shared=shared)
    received_total = [0]
    lock = threading.Lock()
    halfway = threading.Event()

    def count(rows: list[Row]) -> None:
        with lock:
            received_total[0] += len(rows)
            if received_total[0] >= producers * per_producer // 3:
                halfway.set()

    def member(consumer: Any, leave_after: int | None) -> list[Row]:
        rows: list[Row] = []
        with consumer:
            while leave_after is None or len(rows) < leave_after:
                batch = consumer.poll_batch(max_messages=256, timeout=workers.DEADLINE_S)
                if len(batch) == 0:
                    assert stream.closed, "a member waited in vain for messages"
                    break
                got = workers.rows_of(batch)
                rows.extend(got)
                count(got)
        return rows

    def joiner() -> list[Row]:
        assert halfway.wait(JOIN_S)
        return member(stream.consumer(group="g"), None)

    try:
        staying, leaving = stream.consumer(group="g"), stream.consumer(group="g")
        members = [
            Background(member, staying, None),
            Background(member, leaving, 4_000),
            Background(joiner),
        ]
        handles = [stream.producer() for _ in range(producers)]
        sent = run_threads(
            [lambda p=p: workers.produce(handles[p], p, per_producer) for p in range(producers)]
        )
        stream.close()
        per_member = [job.value(JOIN_S) for job in members]
        assert per_member[1] and len(per_member[1]) >= 4_000  # the leaver read, then left
        all_sent = [row for rows in sent for row in rows]
        everything = [row for rows in per_member for row in rows]
        for rows in per_member:  # each member's own view is in order, without duplicates
            workers.check_rows(all_sent, rows, complete=False)
        arrived = sorted(row[:3] for row in everything)
        assert len(arrived) == len(set(arrived)), "a message reached two members"
        assert arrived == sorted(row[:3] for row in all_sent), "messages were lost"
    finally:
        if not stream.closed:
            stream.close()
        workers.remove_segments([stream.name])


def test_receipts_read_as_the_list_of_pairs() -> None:
    receipts = kaelix.Receipts([(0, 5, 3), (2, 0, 2), (0, 8, 1)])
    pairs = [(0, 5), (0, 6), (0, 7), (2, 0), (2, 1), (0, 8)]
    assert len(receipts) == 6
    assert list(receipts) == pairs and receipts == pairs and receipts == tuple(pairs)
    assert [receipts[i] for i in range(6)] == pairs
    assert [receipts[-i] for i in range(1, 7)] == pairs[::-1]
    assert receipts[1:5] == pairs[1:5] and receipts[::2] == pairs[::2]
    assert receipts.runs == ((0, 5, 3), (2, 0, 2), (0, 8, 1))
    assert receipts != pairs[:-1] and receipts != [(0, 5)] * 6
    with pytest.raises(IndexError):
        receipts[6]
    with pytest.raises(IndexError):
        receipts[-7]
    with pytest.raises(TypeError):
        hash(receipts)
    assert len(kaelix.Receipts()) == 0 and list(kaelix.Receipts()) == []
    assert "Receipts([(0, 5)" in repr(receipts)


def test_send_batch_receipts_merge_consecutive_sequences() -> None:
    with kaelix.Stream(unique_name(), partitions=2, capacity=1 << 16) as stream:
        producer = stream.producer()
        receipts = producer.send_batch([b"a", b"b", b"c"], keys=[b"k", b"k", b"k"])
        partition = kaelix.partition_for(b"k", 2)
        assert receipts.runs == ((partition, 0, 3),)
