"""kaelix.connect.nats (issue 11) against a real nats-server: every message field round
trip, the asyncio surface, idempotent publishing, redelivery after a consumer process
crashes, the bridges to and from a local stream, an unreachable server, and bad input.

One server for the session (the ``nats_server`` fixture of tests/conftest.py: a
``kaelix.connect.nats.testing.NatsServer`` on loopback with temporary storage, stopped and
removed at the end whatever happens); each test makes its own JetStream stream and deletes
it, and tests that kill or stall a server start their own. The three-node failover run is in
test_connect_nats_cluster.py.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kaelix
from kaelix import DeliveryTracker, Message, MessageBatch, check_delivery
from kaelix.connect.nats import (
    JetStreamSink,
    JetStreamSource,
    NatsConsumer,
    NatsStream,
)
from kaelix.connect.nats.testing import NatsServer, ServerNotFound, server_binary
from kaelix.errors import ConnectError, SendTimeout, StreamClosed, StreamError, StreamNotFound
from kaelix.testing import strategies as kst

try:
    server_binary()
    import nats
except (ServerNotFound, ImportError) as exc:  # pragma: no cover - the test extra has both
    pytest.skip(f"no NATS server or client: {exc}", allow_module_level=True)

_names = itertools.count()


@pytest.fixture
def server(nats_server: NatsServer) -> NatsServer:
    """The session's server (tests/conftest.py)."""
    return nats_server


@pytest.fixture
def stream(server: NatsServer) -> Iterator[NatsStream]:
    made = NatsStream(f"t{os.getpid()}-{next(_names)}", server.url, partitions=4)
    try:
        yield made
    finally:
        if not made.closed:
            made.delete()


def drain(consumer: NatsConsumer, count: int, timeout: float = 30.0) -> MessageBatch:
    """Polls until ``count`` messages came (or the time is up) and returns them."""
    parts: list[MessageBatch] = []
    got = 0
    deadline = time.monotonic() + timeout
    while got < count and time.monotonic() < deadline:
        batch = consumer.poll_batch(4096, timeout=1.0)
        parts.append(batch)
        got += len(batch)
    return MessageBatch.concat(parts)


# -- round trips ---------------------------------------------------------------------------


EDGE_MESSAGES = [
    {"payload": b""},
    {"payload": b"\x00\xff" * 100, "key": b"\x00\x01\xfe\xff"},
    {"payload": b"p", "key": b""},
    {"payload": b"q", "key": "unicode-\u00e9\u4e2d"},
    {"payload": b"h", "headers": {f"h{i}": bytes([i]) * i for i in range(200)}},
    {"payload": b"e", "headers": {"\u00e9\U0001f600": b"", "x": b"\r\n\x00"}},
    {"payload": os.urandom(1 << 20)},
]


def test_every_field_round_trips(stream: NatsStream) -> None:
    consumer = stream.consumer()
    producer = stream.producer(producer_id=2**64 - 1)
    sent = []
    for fields in EDGE_MESSAGES:
        before = time.time_ns()
        partition, sequence = producer.send(
            fields["payload"], key=fields.get("key"), headers=fields.get("headers")
        )
        after = time.time_ns()
        sent.append((fields, partition, sequence, before, after))
    received = [consumer.poll(timeout=10) for _ in sent]
    for (fields, partition, sequence, before, after), msg in zip(sent, received, strict=True):
        assert msg is not None
        key = fields.get("key")
        assert msg.payload == fields["payload"]
        assert msg.key == (key.encode() if isinstance(key, str) else key)
        assert dict(msg.headers) == fields.get("headers", {})
        assert (msg.partition, msg.sequence) == (partition, sequence)
        assert msg.producer_id == 2**64 - 1
        assert before <= msg.timestamp_ns <= after
        if key is not None:
            assert partition == kaelix.partition_for(key, stream.partitions)
    assert consumer.poll(timeout=0) is None


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(kst.messages(partitions=st.integers(0, 3)), min_size=1, max_size=12))
def test_forwarded_frames_arrive_as_they_were(server: NatsServer, messages: list[Message]) -> None:
    """Any valid message (producer ids and sequences up to 2**64 - 1, any timestamp, any
    headers) comes out of JetStream equal to what went in; a key sent twice is stored
    once (the message id is the key). A stream per example: what one example stored
    must not deduplicate the next one's."""
    with NatsStream(f"h{os.getpid()}-{next(_names)}", server.url, partitions=4) as made:
        try:
            made.forward(MessageBatch.from_messages(messages))
            unique = {(m.producer_id, m.partition, m.sequence): m for m in reversed(messages)}
            received = drain(made.consumer(), len(unique), timeout=10)
            assert made.info()["messages"] == len(unique)
            assert sorted(received, key=lambda m: (m.producer_id, m.partition, m.sequence)) == [
                unique[k] for k in sorted(unique)
            ]
        finally:
            made.delete()


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(st.tuples(kst.payloads(max_size=512), kst.keys()), min_size=1, max_size=30),
    kst.headers(max_headers=6),
)
def test_what_a_producer_sends_arrives_field_for_field(
    stream: NatsStream, items: list[tuple[bytes, bytes | None]], headers: dict[str, bytes]
) -> None:
    """send_batch of any payloads and keys (None among them: round-robin), with any headers:
    the consumer gets each message as sent, in its key's partition, numbered per partition
    from where the producer was. A new producer per example: its own sequences."""
    producer = stream.producer()
    consumer = stream.consumer(start="latest")
    try:
        receipts = producer.send_batch(
            [payload for payload, _ in items], keys=[key for _, key in items], headers=headers
        )
        received = drain(consumer, len(items), timeout=10)
        assert len(received) == len(items)
        by_key = {(m.partition, m.sequence): m for m in received}
        for (payload, key), (partition, sequence) in zip(items, receipts, strict=True):
            msg = by_key[(partition, sequence)]
            assert (msg.payload, msg.key, dict(msg.headers)) == (payload, key, headers)
            assert msg.producer_id == producer.producer_id
            if key is not None:
                assert partition == kaelix.partition_for(key, stream.partitions)
        per_partition: dict[int, list[int]] = {}
        for partition, sequence in receipts:
            per_partition.setdefault(partition, []).append(sequence)
        for sequences in per_partition.values():
            assert sequences == list(range(len(sequences)))
    finally:
        consumer.close()


# -- producers and consumers -----------------------------------------------------------


def test_batches_are_delivered_exactly_as_sent(stream: NatsStream) -> None:
    producer = stream.producer()
    consumer = stream.consumer(group="batch")
    observer = stream.consumer()
    payloads = [i.to_bytes(4, "little") * 8 for i in range(5000)]
    receipts = producer.send_batch(payloads)
    keyed = producer.send_batch(payloads[:1000], keys=[f"k{i % 7}" for i in range(1000)])
    assert len(receipts) == 5000 and len(receipts.runs) == 1  # one sticky partition
    assert {p for p, _ in keyed} <= set(range(4))
    sent = drain(observer, 6000)
    received = drain(consumer, 6000)
    report = check_delivery(sent, received)
    assert report.ok, report.summary()
    assert report.delivered == 6000
    assert [bytes(sent.payload(i)) for i in range(5000)] == payloads
    tracker = DeliveryTracker()
    tracker.update(received)
    assert tracker.report().ok


def test_sequences_continue_after_a_producer_restarts(stream: NatsStream) -> None:
    with stream.producer(producer_id=42) as first:
        first.send_batch([b"a"] * 5, partition=1)
        first.send(b"b", partition=2)
    second = stream.producer(producer_id=42)
    assert second.send(b"c", partition=1) == (1, 5)
    assert second.send(b"d", partition=2) == (2, 1)
    assert second.send(b"e", partition=3) == (3, 0)


def test_forwarding_twice_stores_once(stream: NatsStream) -> None:
    batch = MessageBatch.from_messages(
        Message(b"m", producer_id=9, partition=i % 4, sequence=i // 4) for i in range(400)
    )
    assert stream.forward(batch) == 400
    assert stream.forward(batch[100:300]) == 200
    assert stream.info()["messages"] == 400
    received = drain(stream.consumer(), 400)
    assert check_delivery(batch, received, ordering="none").ok


def test_retries_of_stored_messages_are_deduplicated_by_the_server() -> None:
    """The server stalls (SIGSTOP) with a batch in flight: the producer's acknowledgements
    time out and it publishes again; when the server resumes it stores the first copies and
    drops the retries as duplicates (the producer counts them), so each message is stored
    once."""
    with NatsServer() as stalling, NatsStream("stall", stalling.url, request_timeout=0.3) as made:
        producer = made.producer()
        observer = made.consumer()
        pid = stalling.pid
        assert pid is not None
        resume = threading.Timer(1.5, os.kill, (pid, signal.SIGCONT))

        def stall() -> None:
            os.kill(pid, signal.SIGSTOP)
            resume.start()

        threading.Timer(0.05, stall).start()
        try:
            for _ in range(20):
                receipts = producer.send_batch([b"%d" % i for i in range(1_000)], timeout=30)
                assert len(receipts) == 1_000
        finally:
            resume.join()
            os.kill(pid, signal.SIGCONT)
        assert producer.duplicates > 0
        assert made.info()["messages"] == 20_000
        stored = drain(observer, 20_000)
        tracker = DeliveryTracker()
        tracker.update(stored)
        assert tracker.report().ok and tracker.report().delivered == 20_000


def test_asyncio_surface(stream: NatsStream) -> None:
    async def main() -> tuple[list[Message], MessageBatch, list[int]]:
        ticks: list[int] = []

        async def ticker() -> None:
            while True:
                ticks.append(1)
                await asyncio.sleep(0.005)

        tick = asyncio.create_task(ticker())
        producer = stream.producer()
        consumer = stream.consumer()
        waiting = asyncio.create_task(consumer.poll_async(timeout=5))
        await asyncio.sleep(0.2)  # the poll waits, and the loop keeps ticking
        await producer.send_async(b"first", key="k")
        first = await waiting
        await producer.send_batch_async([b"x"] * 100, partition=0)
        batch = await consumer.poll_batch_async(100, timeout=5)
        while len(batch) < 100:
            batch += await consumer.poll_batch_async(100 - len(batch), timeout=5)
        await producer.send_batch_async([b"y", b"z"], partition=2)
        seen = []
        async for msg in consumer:
            seen.append(msg)
            if len(seen) == 2:
                break
        await consumer.commit_async()
        tick.cancel()
        assert first is not None
        return [first, *seen], batch, ticks

    messages, batch, ticks = asyncio.run(main())
    assert [m.payload for m in messages] == [b"first", b"y", b"z"]
    assert len(batch) == 100 and set(batch.partition.tolist()) == {0}
    assert len(ticks) >= 20


def test_close_ends_a_poll_waiting_in_another_thread(stream: NatsStream) -> None:
    consumer = stream.consumer()
    began = time.monotonic()
    assert consumer.poll(timeout=0.5) is None  # the timeout is honoured (loosely timed)
    assert len(consumer.poll_batch(timeout=0.5)) == 0
    assert 0.9 <= time.monotonic() - began < 10
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(consumer.poll()))
    thread.start()
    time.sleep(0.3)
    began = time.monotonic()
    assert consumer.poll(timeout=0) is None  # a request is open: "now" does not wait for it
    assert time.monotonic() - began < 1.0
    consumer.close()
    thread.join(10)
    assert not thread.is_alive() and result == [None]
    with pytest.raises(StreamClosed, match="this consumer is closed"):
        consumer.poll(timeout=0)
    consumer.close()  # harmless twice


def test_manual_acks_and_nak(stream: NatsStream) -> None:
    stream.producer().send_batch([b"1", b"2", b"3"], partition=0)
    consumer = stream.consumer(group="manual", ack="manual")
    first = drain(consumer, 3)
    assert consumer.unacknowledged == 3
    consumer.nak()  # handed back: delivered again at once
    again = drain(consumer, 3)
    assert again == first and consumer.redelivered == 3
    consumer.commit()
    assert consumer.unacknowledged == 0
    consumer.close()
    # The group resumes after what was committed: nothing is left.
    with stream.consumer(group="manual") as resumed:
        assert resumed.poll(timeout=0.5) is None


def test_partitions_start_groups_and_lag(stream: NatsStream) -> None:
    producer = stream.producer()
    for p in range(4):
        producer.send_batch([b"old %d" % p] * 5, partition=p)
    latest = stream.consumer(start="latest")
    only_one = stream.consumer(partitions=[1, 1])
    assert only_one.assignment == (1,)
    first = stream.consumer(group="workers")
    second = stream.consumer(group="workers")
    assert first.lag == 20  # the group's: nothing delivered yet
    producer.send_batch([b"new"] * 8, partition=1)
    assert [m.payload for m in drain(latest, 8)] == [b"new"] * 8
    picked = drain(only_one, 13)
    assert set(picked.partition.tolist()) == {1} and len(picked) == 13
    # Two members of a group split the messages between them, each delivered once (each
    # commits what it got at once: a message a member holds unacknowledged past ack_wait
    # would go to the other too, at least once).
    tracker = DeliveryTracker(ordering="none")
    got = {first: 0, second: 0}
    deadline = time.monotonic() + 30
    while tracker.report().delivered < 28 and time.monotonic() < deadline:
        for member in (first, second):
            batch = member.poll_batch(6, timeout=0.2)
            member.commit()
            tracker.update(batch)
            got[member] += len(batch)
    report = tracker.report()
    assert report.ok and report.delivered == 28, report.summary()
    assert got[first] and got[second] and got[first] + got[second] == 28
    first.close()  # "auto": what it returned is acknowledged
    second.close()
    with stream.consumer(group="workers") as rejoined:
        assert rejoined.lag == 0
        assert rejoined.poll(timeout=0.3) is None


CRASHING_CONSUMER = """
import os, sys
from kaelix.connect.nats import NatsStream
stream = NatsStream(sys.argv[2], sys.argv[1])
consumer = stream.consumer(group="crash", ack="manual", ack_wait=1.0, prefetch=100)
got = 0
while got < 300:
    got += len(consumer.poll_batch(100, timeout=10))
print(got, flush=True)
os._exit(3)  # dies holding 300 unacknowledged messages: no close, no acks, no goodbye
"""


def test_messages_a_crashed_consumer_held_are_redelivered(
    server: NatsServer, stream: NatsStream
) -> None:
    observer = stream.consumer()
    stream.producer().send_batch([b"job %d" % i for i in range(1000)], partition=3)
    sent = drain(observer, 1000)
    child = subprocess.run(
        [sys.executable, "-c", CRASHING_CONSUMER, server.url, stream.name],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 3, child.stderr
    assert int(child.stdout) == 300
    consumer = stream.consumer(group="crash")
    received = drain(consumer, 1000)
    report = check_delivery(sent, received, ordering="none")
    assert report.ok, report.summary()
    assert consumer.redelivered == 300
    consumer.close()


# -- bridges ---------------------------------------------------------------------------


def test_sink_and_source_carry_a_local_stream_across(stream: NatsStream) -> None:
    with (
        kaelix.Stream("near", partitions=4) as near,
        kaelix.Stream("far", partitions=4) as far,
    ):
        sent_copy = near.consumer()
        received_side = far.consumer()
        sink = JetStreamSink(near, stream)
        source = JetStreamSource(stream, far, group="bridge")
        producer = near.producer()
        for i in range(20):
            producer.send_batch([b"%d" % j for j in range(i * 100, i * 100 + 100)], keys=None)
        producer.send(b"last", key="k", headers={"h": b"v"})
        near.close()
        assert sink.join(30)  # ends by itself: the local stream is closed and drained
        assert sink.forwarded == 2001
        received = drain_local(received_side, 2001)
        source.stop(10)
        assert source.received == 2001
        sent = sent_copy.poll_batch(4096, timeout=0)
        report = check_delivery(sent, received)
        assert report.ok, report.summary()
        # Byte for byte: frames relayed as they were (partitions interleave differently).
        assert sorted(bytes(received.frame(i)) for i in range(len(received))) == sorted(
            bytes(sent.frame(i)) for i in range(len(sent))
        )


def test_a_sink_that_cannot_forward_stops_and_says_why(server: NatsServer) -> None:
    target = NatsStream(f"s{os.getpid()}-{next(_names)}", server.url, partitions=4)
    with kaelix.Stream("unsent", partitions=4) as near:
        sink = JetStreamSink(near, target)
        near.producer().send(b"first")
        deadline = time.monotonic() + 10
        while sink.forwarded < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sink.forwarded == 1
        target.delete()  # the stream goes, then the handle: the next forward fails
        near.producer().send(b"second")
        with pytest.raises(StreamClosed, match="is closed"):
            sink.join(10)
        assert not sink.running and isinstance(sink.error, StreamClosed)
        with pytest.raises(StreamClosed):
            sink.stop()


def drain_local(consumer: kaelix.Consumer, count: int) -> MessageBatch:
    parts = []
    got = 0
    deadline = time.monotonic() + 30
    while got < count and time.monotonic() < deadline:
        batch = consumer.poll_batch(4096, timeout=0.5)
        parts.append(batch)
        got += len(batch)
    return MessageBatch.concat(parts)


def test_bridges_check_what_they_are_given(stream: NatsStream) -> None:
    with kaelix.Stream("wide", partitions=8) as wide:
        with pytest.raises(ValueError, match="has 4 partition"):
            JetStreamSink(wide, stream)
        with pytest.raises(TypeError, match=r"must be a kaelix\.Stream"):
            JetStreamSink(stream, stream)  # type: ignore[arg-type]
    with (
        kaelix.Stream("narrow", partitions=2) as narrow,
        pytest.raises(ValueError, match="has 2 partition"),
    ):
        JetStreamSource(stream, narrow, group="g")


# -- failures --------------------------------------------------------------------------


def test_an_unreachable_server_raises_connect_error_in_time() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    began = time.monotonic()
    with pytest.raises(
        ConnectError, match=rf"could not connect to NATS at nats://127.0.0.1:{port}"
    ):
        NatsStream("nowhere", f"nats://127.0.0.1:{port}", connect_timeout=1.0)
    assert time.monotonic() - began < 15  # loosely: the configured 1 s, on a loaded machine


def test_a_server_without_jetstream_is_named() -> None:
    with (
        NatsServer(jetstream=False) as plain,
        pytest.raises(ConnectError, match="is JetStream enabled"),
    ):
        NatsStream("nojs", plain.url, connect_timeout=1.0)


def test_a_send_that_cannot_be_acknowledged_times_out(server: NatsServer) -> None:
    with NatsServer() as doomed:
        made = NatsStream("doomed", doomed.url, request_timeout=0.2)
        producer = made.producer()
        producer.send(b"stored")
        doomed.kill()
        began = time.monotonic()
        with pytest.raises(SendTimeout, match="not acknowledged in time") as info:
            producer.send_batch([b"x"] * 10, timeout=1.0)
        assert info.value.sent == 0
        assert time.monotonic() - began < 15
        made.close()


def test_bad_input_raises_and_takes_no_sequence(stream: NatsStream) -> None:
    producer = stream.producer()
    with pytest.raises(TypeError):
        producer.send(12345)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        producer.send(b"x", headers={"h": 5})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="partition 4 is out of range"):
        producer.send(b"x", partition=4)
    with pytest.raises(TypeError, match="timeout must be a number"):
        producer.send(b"x", timeout="soon")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="keys has 1 entries for 2 payloads"):
        producer.send_batch([b"a", b"b"], keys=[b"k"])
    with pytest.raises(kaelix.FrameTooLarge, match="max_payload"):
        producer.send(b"x" * (9 << 20), partition=0)
    assert producer.send(b"ok", partition=0) == (0, 0)  # nothing above took a number
    with pytest.raises(TypeError, match=r"must be a kaelix\.MessageBatch"):
        stream.forward([Message(b"x")])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="partition 9"):
        stream.forward(MessageBatch.from_messages([Message(b"x", partition=9)]))
    with pytest.raises(ValueError, match="max_messages must be between"):
        stream.consumer().poll_batch(0)
    producer.close()
    with pytest.raises(StreamClosed, match="this producer is closed"):
        producer.send(b"late")
    producer.close()


def test_bad_configuration_is_refused(server: NatsServer, stream: NatsStream) -> None:
    with pytest.raises(ValueError, match="is not allowed: JetStream names"):
        NatsStream("has.dots", server.url)
    with pytest.raises(TypeError, match="stream name must be a str"):
        NatsStream(7, server.url)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="replicas must be between 1 and 5"):
        NatsStream("r", server.url, replicas=0)
    with pytest.raises(StreamError, match="has 4 partition"):
        NatsStream(stream.name, server.url, partitions=2)
    with pytest.raises(StreamNotFound, match="no JetStream stream named 'absent'"):
        NatsStream("absent", server.url, create=False)
    with pytest.raises(ValueError, match="start must be"):
        stream.consumer(start="middle")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="group 'a b' is not allowed"):
        stream.consumer(group="a b")
    opened = NatsStream(stream.name, server.url)  # an existing stream: its partitions
    assert opened.partitions == 4
    opened.close()
    opened.close()  # harmless twice
    with pytest.raises(StreamClosed, match="is closed"):
        opened.producer()


def test_a_stream_kaelix_did_not_make_is_refused(server: NatsServer) -> None:
    async def make() -> None:
        nc = await nats.connect(server.url)
        await nc.jetstream().add_stream(name="foreign", subjects=["foreign.>"])
        await nc.close()

    asyncio.run(make())
    with pytest.raises(StreamError, match="was not made by kaelix"):
        NatsStream("foreign", server.url)


def test_a_body_that_is_not_a_frame_is_reported_and_skipped(
    server: NatsServer, stream: NatsStream
) -> None:
    consumer = stream.consumer()
    stream.producer().send(b"before", partition=0)

    async def intrude() -> None:
        nc = await nats.connect(server.url)
        await nc.jetstream().publish(stream.subject(0, 1), b"not a frame")
        await nc.close()

    asyncio.run(intrude())
    stream.producer().send(b"after", partition=0)
    first = consumer.poll(timeout=5)
    assert first is not None and first.payload == b"before"
    with pytest.raises(kaelix.DecodeError, match="is not a kaelix frame"):
        consumer.poll(timeout=5)
    after = consumer.poll(timeout=5)
    assert after is not None and after.payload == b"after"
    assert stream.info()["messages"] == 3  # refused by the consumer, kept by the stream


def test_import_needs_nats_py_only_when_used() -> None:
    code = (
        "import sys; sys.modules['nats'] = None\n"
        "import kaelix.connect.nats as m\n"
        "try:\n"
        "    m.NatsStream('x')\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert 'pip install "kaelix[nats]"' in out.stdout
