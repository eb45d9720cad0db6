"""Backpressure policies (issue 5): what a send does when a partition is full.

``block`` waits up to the timeout and then raises SendTimeout; ``error`` raises BufferFull
at once; ``drop_oldest`` never waits and overwrites the oldest messages, and each consumer
counts exactly what it lost (``skipped``). A failed send uses no sequence. Each policy also
runs under load with real threads, checked message by message. No test asserts a speed:
the only time checks are that a timed-out send waited at least its timeout, and generous
bounds that turn a hang into a failure.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import kaelix
import stream_workers as workers
from stream_workers import (
    JOIN_S,
    WAKE_BOUND_S,
    Background,
    Row,
    Streams,
    drain_rows,
    run_threads,
    unique_name,
)

CAPACITY = 4096
MOST_THAT_FIT = CAPACITY // kaelix.HEADER_SIZE  # no frame is smaller than its header
TIMEOUT_S = 0.2


@pytest.fixture(params=["in_process", "shared"])
def streams(request: pytest.FixtureRequest) -> Iterator[Streams]:
    """Streams of either kind: every policy must behave the same in both."""
    with Streams(shared=request.param == "shared") as made:
        yield made


def fill_until_refused(
    producer: Any, refusal: type[Exception], **options: Any
) -> tuple[list[Row], Exception, float]:
    """Sends to partition 0 until a send raises ``refusal``. Returns the accepted rows, the
    exception and how long the refused send took. The whole run is bounded: a send that
    never returns fails the test."""

    def run() -> tuple[list[Row], Exception, float]:
        rows: list[Row] = []
        for index in range(MOST_THAT_FIT + 1):
            started = time.monotonic()
            try:
                partition, sequence = producer.send(workers.payload_for(0, index), **options)
            except refusal as error:
                return rows, error, time.monotonic() - started
            rows.append((producer.producer_id, partition, sequence, 0, index))
        raise AssertionError(f"{MOST_THAT_FIT + 1} sends into {CAPACITY} bytes all went in")

    rows, error, elapsed = Background(run).value(JOIN_S)
    assert len(rows) >= 8, f"only {len(rows)} messages fitted"  # the premise: it held some
    return rows, error, elapsed


def frame_size(index: int) -> int:
    return kaelix.Message(workers.payload_for(0, index)).frame_size


def make_room(consumer: Any, needed: int) -> list[Row]:
    """Reads the oldest messages until they free at least ``needed`` bytes."""
    rows: list[Row] = []
    freed = 0
    while freed < needed:
        message = consumer.poll(timeout=0)
        assert message is not None, f"{freed} bytes freed, {needed} needed"
        freed += message.frame_size
        rows.append(workers.row_of(message))
    return rows


def send_next(producer: Any, rows: list[Row], **options: Any) -> None:
    index = rows[-1][4] + 1
    partition, sequence = producer.send(workers.payload_for(0, index), **options)
    rows.append((producer.producer_id, partition, sequence, 0, index))


# --------------------------------------------------------------------------------------------
# block
# --------------------------------------------------------------------------------------------


def test_block_raises_send_timeout_after_the_timeout_and_loses_nothing(streams: Streams) -> None:
    stream = streams(capacity=CAPACITY, backpressure="block")
    consumer = stream.consumer()  # registered, and reads nothing until the end
    producer = stream.producer()
    sent, error, elapsed = fill_until_refused(producer, kaelix.SendTimeout, timeout=TIMEOUT_S)
    assert isinstance(error, TimeoutError)
    assert elapsed >= TIMEOUT_S, f"SendTimeout after {elapsed:.3f} s of a {TIMEOUT_S} s timeout"
    with pytest.raises(kaelix.SendTimeout):
        producer.send(b"refused again", timeout=0)
    early = make_room(consumer, frame_size(len(sent)))
    send_next(producer, sent, timeout=TIMEOUT_S)
    workers.check_sequences_dense(sent)  # the refused sends used no sequence
    workers.check_rows(sent, early + drain_rows(consumer), complete=True)


def test_block_waits_the_stream_send_timeout_by_default(streams: Streams) -> None:
    stream = streams(capacity=CAPACITY, backpressure="block", send_timeout=TIMEOUT_S)
    stream.consumer()
    producer = stream.producer()
    _, error, elapsed = fill_until_refused(producer, kaelix.SendTimeout)
    assert elapsed >= TIMEOUT_S, f"SendTimeout after {elapsed:.3f} s of a {TIMEOUT_S} s timeout"
    assert isinstance(error, kaelix.StreamError)


@pytest.mark.parametrize("timeout", [None, 30.0])
def test_block_a_waiting_send_goes_in_once_the_consumer_reads(
    streams: Streams, timeout: float | None
) -> None:
    stream = streams(capacity=CAPACITY, backpressure="block")
    consumer = stream.consumer()
    producer = stream.producer()
    sent, _, _ = fill_until_refused(producer, kaelix.SendTimeout, timeout=0)
    index = len(sent)
    waiter = Background(producer.send, workers.payload_for(0, index), timeout=timeout)
    assert not waiter.finished_within(0.05), "a send into a full partition returned"
    early = make_room(consumer, frame_size(index))
    assert waiter.value(WAKE_BOUND_S) == (0, index)
    sent.append((producer.producer_id, 0, index, 0, index))
    workers.check_rows(sent, early + drain_rows(consumer), complete=True)


def test_block_close_wakes_a_waiting_send_with_stream_closed(streams: Streams) -> None:
    stream = streams(capacity=CAPACITY, backpressure="block")
    consumer = stream.consumer()
    producer = stream.producer()
    sent, _, _ = fill_until_refused(producer, kaelix.SendTimeout, timeout=0)
    waiter = Background(producer.send, b"never", timeout=None)
    assert not waiter.finished_within(0.05)
    stream.close()
    assert waiter.finished_within(WAKE_BOUND_S), "close did not wake a waiting send"
    assert isinstance(waiter.error, kaelix.StreamClosed), waiter.error
    workers.check_rows(sent, drain_rows(consumer), complete=True)


def test_block_send_batch_timeout_says_how_many_were_sent(streams: Streams) -> None:
    stream = streams(capacity=CAPACITY, backpressure="block")
    consumer = stream.consumer()
    producer = stream.producer()
    payloads = [workers.payload_for(0, index) for index in range(MOST_THAT_FIT + 1)]
    started = time.monotonic()
    with pytest.raises(kaelix.SendTimeout) as caught:
        producer.send_batch(payloads, timeout=TIMEOUT_S)
    assert time.monotonic() - started >= TIMEOUT_S
    sent_count = caught.value.sent
    assert 8 <= sent_count < len(payloads)
    received = drain_rows(consumer)
    assert received == [(producer.producer_id, 0, i, 0, i) for i in range(sent_count)]
    assert producer.send(b"next") == (0, sent_count)  # no sequence was used by the rest


# --------------------------------------------------------------------------------------------
# error
# --------------------------------------------------------------------------------------------


def test_error_raises_buffer_full_at_once_and_loses_nothing_accepted(streams: Streams) -> None:
    stream = streams(capacity=CAPACITY, backpressure="error")
    consumer = stream.consumer()
    producer = stream.producer()
    sent, error, elapsed = fill_until_refused(producer, kaelix.BufferFull, timeout=30.0)
    assert isinstance(error, queue.Full)
    assert elapsed < 15.0, "BufferFull came only after waiting (out) the 30 s timeout"
    for _ in range(3):
        with pytest.raises(kaelix.BufferFull):
            producer.send(b"refused", timeout=None)
    early = make_room(consumer, frame_size(len(sent)))
    send_next(producer, sent)
    workers.check_sequences_dense(sent)  # the refused sends used no sequence
    workers.check_rows(sent, early + drain_rows(consumer), complete=True)


def test_error_send_batch_says_how_many_were_sent(streams: Streams) -> None:
    stream = streams(capacity=CAPACITY, backpressure="error")
    consumer = stream.consumer()
    producer = stream.producer()
    payloads = [workers.payload_for(0, index) for index in range(MOST_THAT_FIT + 1)]
    with pytest.raises(kaelix.BufferFull) as caught:
        producer.send_batch(payloads)
    sent_count = caught.value.sent
    assert 8 <= sent_count < len(payloads)
    received = drain_rows(consumer)
    assert received == [(producer.producer_id, 0, i, 0, i) for i in range(sent_count)]
    assert producer.send(b"next") == (0, sent_count)


def test_error_a_full_partition_does_not_refuse_sends_to_the_others(streams: Streams) -> None:
    stream = streams(partitions=2, capacity=CAPACITY, backpressure="error")
    consumer = stream.consumer()
    producer = stream.producer()
    sent, _, _ = fill_until_refused(producer, kaelix.BufferFull, partition=0)
    assert producer.send(b"other", partition=1) == (1, 0)
    received = workers.drain(consumer)  # the order across partitions is not promised
    assert [m.payload for m in received if m.partition == 0] == [
        workers.payload_for(0, row[4]) for row in sent
    ]
    assert [m.payload for m in received if m.partition == 1] == [b"other"]


# --------------------------------------------------------------------------------------------
# drop_oldest
# --------------------------------------------------------------------------------------------


def send_many(producer: Any, count: int, first: int = 0, **options: Any) -> list[Row]:
    """``count`` sends, bounded as a whole: drop_oldest must never wait, and a send that did
    would end in SendTimeout (the streams here have a short send_timeout) or in the bound."""
    return Background(workers.produce, producer, 0, count, first=first, **options).value(JOIN_S)


def test_drop_oldest_never_waits_and_a_lagging_consumer_counts_what_it_missed(
    streams: Streams,
) -> None:
    stream = streams(capacity=CAPACITY, backpressure="drop_oldest", send_timeout=1.0)
    lagging = stream.consumer()
    producer = stream.producer()
    count = 3000
    sent = send_many(producer, count, timeout=1.0)
    workers.check_sequences_dense(sent)
    lag = lagging.lag
    received = drain_rows(lagging)
    kept = len(received)
    assert 1 <= kept < MOST_THAT_FIT
    # what is left is the newest messages, in order: a suffix of what was sent
    assert received == sent[count - kept :]
    assert lagging.skipped == count - kept
    assert {p: n for p, n in lagging.skipped_by_partition.items() if n} == {0: count - kept}
    assert lag == {0: kept}
    assert lagging.lag == {0: 0}


def test_drop_oldest_a_consumer_that_keeps_up_skips_nothing(streams: Streams) -> None:
    stream = streams(capacity=CAPACITY, backpressure="drop_oldest", send_timeout=1.0)
    keeping, lagging = stream.consumer(), stream.consumer()
    producer = stream.producer()
    sent: list[Row] = []
    received: list[Row] = []
    for index in range(3000):
        sent += workers.produce(producer, 0, 1, first=index)
        received.append(workers.row_of(keeping.poll(timeout=0)))
    assert received == sent
    assert keeping.poll(timeout=0) is None
    assert keeping.skipped == 0
    assert not any(keeping.skipped_by_partition.values())
    late = drain_rows(lagging)  # the other consumer lost most of it, and says so
    assert late == sent[len(sent) - len(late) :]
    assert lagging.skipped == len(sent) - len(late) > 0


def test_drop_oldest_a_consumer_that_falls_behind_mid_stream(streams: Streams) -> None:
    stream = streams(capacity=CAPACITY, backpressure="drop_oldest", send_timeout=1.0)
    consumer = stream.consumer()
    producer = stream.producer()
    sent = send_many(producer, 5)
    early = drain_rows(consumer)
    assert early == sent
    sent += send_many(producer, 3000, first=5)
    late = drain_rows(consumer)
    assert late == sent[len(sent) - len(late) :]
    assert consumer.skipped == len(sent) - len(early) - len(late) > 0
    workers.check_rows(sent, early + late, complete=False)


def test_drop_oldest_skips_per_partition(streams: Streams) -> None:
    stream = streams(partitions=3, capacity=CAPACITY, backpressure="drop_oldest")
    consumer = stream.consumer()
    producer = stream.producer()
    busy = send_many(producer, 2000, partition=0)
    quiet = send_many(producer, 10, first=2000, partition=1)
    received = drain_rows(consumer)
    from_busy = [row for row in received if row[1] == 0]
    from_quiet = [row for row in received if row[1] == 1]
    assert from_quiet == quiet  # 10 small messages fit: nothing of partition 1 was lost
    assert from_busy == busy[len(busy) - len(from_busy) :]
    skipped = consumer.skipped_by_partition
    assert skipped.get(0) == 2000 - len(from_busy)
    assert skipped.get(1, 0) == skipped.get(2, 0) == 0
    assert consumer.skipped == 2000 - len(from_busy)


def test_drop_oldest_without_any_consumer_never_waits(streams: Streams) -> None:
    stream = streams(capacity=CAPACITY, backpressure="drop_oldest", send_timeout=1.0)
    sent = send_many(stream.producer(), 3000)
    workers.check_sequences_dense(sent)


def test_drop_oldest_metrics_count_what_was_overwritten(streams: Streams) -> None:
    stream = streams(capacity=CAPACITY, backpressure="drop_oldest", send_timeout=1.0)
    consumer = stream.consumer()
    send_many(stream.producer(), 1000)
    metrics = stream.metrics()["partitions"][0]
    assert metrics["published"] == 1000
    received = drain_rows(consumer)
    # one consumer that read nothing while the messages were overwritten: every message
    # overwritten is one it skipped
    assert metrics["overwritten"] == consumer.skipped == 1000 - len(received)


@pytest.mark.parametrize("backpressure", ["block", "error"])
def test_block_and_error_overwrite_nothing(streams: Streams, backpressure: str) -> None:
    stream = streams(capacity=CAPACITY, backpressure=backpressure)
    consumer = stream.consumer()
    producer = stream.producer()
    refusal = kaelix.SendTimeout if backpressure == "block" else kaelix.BufferFull
    sent, _, _ = fill_until_refused(producer, refusal, timeout=0)
    assert stream.metrics()["partitions"][0]["overwritten"] == 0
    workers.check_rows(sent, drain_rows(consumer), complete=True)
    assert consumer.skipped == 0


# --------------------------------------------------------------------------------------------
# Under load, with threads
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backpressure", ["block", "error", "drop_oldest"])
@pytest.mark.parametrize("shared", [False, True], ids=["in_process", "shared"])
def test_policy_under_load_with_threads(backpressure: str, shared: bool) -> None:
    """Two producer threads (round-robin over two partitions) and two consumer threads.
    block and error (whose producers retry a refused send) must deliver everything to both
    consumers; drop_oldest delivers to each an ordered subsequence, ending with the last
    message of each partition, and each consumer's skipped is exactly what it missed. For
    error, the consumers start only once a send was refused; for drop_oldest, the second
    consumer reads only after the producers finished, so it certainly lags."""
    producers, per_producer, partitions = 2, 30_000, 2
    stream = kaelix.Stream(
        unique_name(),
        partitions=partitions,
        capacity=8192,
        backpressure=backpressure,
        shared=shared,
    )
    refused = threading.Event()
    finished = threading.Event()
    try:
        consumers = [stream.consumer(), stream.consumer()]

        def read(index: int) -> tuple[list[Row], bool]:
            if backpressure == "error":
                assert refused.wait(JOIN_S), "no send was refused"
            if backpressure == "drop_oldest" and index == 1:
                assert finished.wait(JOIN_S)
            return workers.receive(consumers[index], max_messages=256)

        readers = [Background(read, index) for index in range(2)]
        handles = [stream.producer() for _ in range(producers)]
        sent = run_threads(
            [
                lambda p=p: workers.produce(
                    handles[p],
                    p,
                    per_producer,
                    retry_full=backpressure == "error",
                    on_full=refused.set,
                )
                for p in range(producers)
            ]
        )
        finished.set()
        stream.close()
        for rows in sent:
            workers.check_sequences_dense(rows)
        all_sent = [row for rows in sent for row in rows]
        assert len(all_sent) == producers * per_producer
        for consumer, reader in zip(consumers, readers, strict=True):
            received, ended_by_close = reader.value(JOIN_S)
            assert ended_by_close
            if backpressure != "drop_oldest":
                workers.check_rows(all_sent, received, complete=True)
                report = workers.delivery_report(all_sent, received)
                assert report.ok, report.summary()
                assert consumer.skipped == 0
                continue
            workers.check_rows(all_sent, received, complete=False)
            assert consumer.skipped == len(all_sent) - len(received)
            for partition in range(partitions):
                on_partition = [row for row in received if row[1] == partition]
                sent_there = sum(row[1] == partition for row in all_sent)
                assert consumer.skipped_by_partition.get(partition, 0) == sent_there - len(
                    on_partition
                )
                finals = {[r for r in rows if r[1] == partition][-1] for rows in sent}
                assert on_partition, f"nothing at all from partition {partition}"
                assert on_partition[-1] in finals, "the newest message of a partition was lost"
        if backpressure == "drop_oldest":
            assert consumers[1].skipped > 0  # the premise: the late consumer did lag
    finally:
        if not stream.closed:
            stream.close()
        workers.remove_segments([stream.name])
