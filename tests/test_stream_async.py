"""Consumers under asyncio (issue 5): ``poll_async``, ``poll_batch_async`` and ``async for``
with a running event loop, fed by producer threads.

The point of the async API is that a consumer waiting for messages does not block the
event loop: a ticker task must keep ticking while a poll waits. Every test runs under a
watchdog thread that closes the stream after a generous bound, so a poll that blocks the
loop (where asyncio's own timeouts cannot fire) ends the test with a failure instead of a
hang.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

import kaelix
import stream_workers as workers
from kaelix import MessageBatch, Stream
from stream_workers import JOIN_S, WAKE_BOUND_S, Background, Row, Streams

T = TypeVar("T")
TICK_S = 0.005


@pytest.fixture
def streams() -> Iterator[Streams]:
    with Streams() as made:
        yield made


def run(stream: Stream, main: Callable[[], Awaitable[T]]) -> T:
    """``asyncio.run(main())`` under a watchdog: if it has not finished after JOIN_S, the
    stream is closed, which ends any wait on it (even one that blocks the loop)."""
    finished = threading.Event()

    def watchdog() -> None:
        if not finished.wait(JOIN_S) and not stream.closed:
            stream.close()

    guard = threading.Thread(target=watchdog, daemon=True)
    guard.start()
    try:
        return asyncio.run(asyncio.wait_for(main(), JOIN_S))  # type: ignore[arg-type]
    finally:
        finished.set()
        guard.join(WAKE_BOUND_S)


class Ticker:
    """A task that counts ticks of the event loop while it is free to run."""

    def __init__(self) -> None:
        self.ticks = 0
        self.task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            self.ticks += 1

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._tick())

    async def wait_for_ticks(self, count: int) -> None:
        target = self.ticks + count
        while self.ticks < target:
            await asyncio.sleep(TICK_S)

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


def test_async_for_with_a_producer_thread(streams: Streams) -> None:
    """A producer thread sends and then closes the stream; ``async for`` gets every
    message, in order, and ends; the loop kept ticking meanwhile."""
    count = 20_000
    stream = streams(partitions=2, capacity=1 << 14)
    consumer = stream.consumer()
    go = threading.Event()

    def feed() -> list[Row]:
        assert go.wait(JOIN_S)
        try:
            return workers.produce(stream.producer(), 0, count)
        finally:
            stream.close()

    feeder = Background(feed)

    async def main() -> tuple[list[Row], int]:
        ticker = Ticker()
        ticker.start()
        go.set()
        received = [workers.row_of(message) async for message in consumer]
        await ticker.stop()
        return received, ticker.ticks

    received, ticks = run(stream, main)
    sent = feeder.value(JOIN_S)
    workers.check_rows(sent, received, complete=True)
    assert ticks > 0


def test_poll_async_times_out_with_none(streams: Streams) -> None:
    stream = streams(capacity=4096)
    consumer = stream.consumer()

    async def main() -> list[Any]:
        return [await consumer.poll_async(timeout=0), await consumer.poll_async(timeout=0.05)]

    assert run(stream, main) == [None, None]


def test_the_loop_keeps_running_while_a_poll_waits(streams: Streams) -> None:
    """A poll with no timeout waits while a ticker advances; a send from another thread
    then ends the wait with that message."""
    stream = streams(capacity=4096)
    consumer = stream.consumer()
    producer = stream.producer()

    async def main() -> tuple[Any, bool, int]:
        ticker = Ticker()
        ticker.start()
        poll = asyncio.ensure_future(consumer.poll_async(timeout=None))
        await ticker.wait_for_ticks(20)
        pending = not poll.done()
        ticks_while_waiting = ticker.ticks
        sender = Background(producer.send, b"late")
        message = await asyncio.wait_for(poll, WAKE_BOUND_S)
        assert sender.value(WAKE_BOUND_S) == (0, 0)
        await ticker.stop()
        return message, pending, ticks_while_waiting

    message, pending, ticks = run(stream, main)
    assert pending, "the poll returned with nothing sent"
    assert ticks >= 20
    assert message is not None and message.payload == b"late"


def test_poll_batch_async(streams: Streams) -> None:
    stream = streams(partitions=1, capacity=1 << 14)
    consumer = stream.consumer()
    sent = workers.produce(stream.producer(), 0, 25)

    async def main() -> tuple[list[MessageBatch], MessageBatch, MessageBatch]:
        batches = []
        for _ in range(3):
            batches.append(await consumer.poll_batch_async(10, timeout=WAKE_BOUND_S))
        empty = await consumer.poll_batch_async(10, timeout=0.05)
        waiting = asyncio.ensure_future(consumer.poll_batch_async(10, timeout=None))
        await asyncio.sleep(TICK_S)
        assert not waiting.done()
        Background(workers.produce, stream.producer(), 1, 3)
        return batches, empty, await asyncio.wait_for(waiting, WAKE_BOUND_S)

    batches, empty, woken = run(stream, main)
    assert all(isinstance(batch, MessageBatch) for batch in [*batches, empty, woken])
    assert [len(batch) for batch in batches] == [10, 10, 5]
    workers.check_rows(sent, [workers.row_of(m) for b in batches for m in b], complete=True)
    assert len(empty) == 0
    assert 1 <= len(woken) <= 3
    assert {workers.row_of(m)[3] for m in woken} == {1}


def test_async_consumers_in_one_loop_each_get_every_message(streams: Streams) -> None:
    stream = streams(partitions=3, capacity=1 << 14)
    consumers = [stream.consumer(), stream.consumer(), stream.consumer(group="g")]
    go = threading.Event()

    def feed() -> list[Row]:
        assert go.wait(JOIN_S)
        try:
            return workers.produce(stream.producer(), 0, 5_000)
        finally:
            stream.close()

    feeder = Background(feed)

    async def collect(consumer: Any) -> list[Row]:
        rows: list[Row] = []
        while (message := await consumer.poll_async(timeout=workers.DEADLINE_S)) is not None:
            rows.append(workers.row_of(message))
        return rows

    async def main() -> list[list[Row]]:
        tasks = [asyncio.ensure_future(collect(consumer)) for consumer in consumers]
        go.set()
        return list(await asyncio.gather(*tasks))

    received = run(stream, main)
    sent = feeder.value(JOIN_S)
    assert stream.closed
    for rows in received:
        workers.check_rows(sent, rows, complete=True)


def test_close_ends_a_waiting_poll_async_and_async_for(streams: Streams) -> None:
    stream = streams(capacity=4096)
    polling, iterating = stream.consumer(), stream.consumer()

    async def main() -> tuple[Any, list[Any], MessageBatch]:
        batching = stream.consumer()
        poll = asyncio.ensure_future(polling.poll_async(timeout=None))
        batch = asyncio.ensure_future(batching.poll_batch_async(8, timeout=None))

        async def iterate() -> list[Any]:
            return [message async for message in iterating]

        iteration = asyncio.ensure_future(iterate())
        await asyncio.sleep(TICK_S)
        assert not (poll.done() or batch.done() or iteration.done())
        threading.Thread(target=stream.close).start()
        return await asyncio.wait_for(asyncio.gather(poll, iteration, batch), WAKE_BOUND_S)  # type: ignore[return-value]

    message, iterated, batch = run(stream, main)
    assert message is None
    assert iterated == []
    assert len(batch) == 0


def test_a_cancelled_poll_async_loses_no_message(streams: Streams) -> None:
    stream = streams(capacity=4096)
    consumer = stream.consumer()
    producer = stream.producer()

    async def main() -> Any:
        poll = asyncio.ensure_future(consumer.poll_async(timeout=None))
        await asyncio.sleep(TICK_S)
        poll.cancel()
        with pytest.raises(asyncio.CancelledError):
            await poll
        producer.send(b"after the cancel")
        return await consumer.poll_async(timeout=WAKE_BOUND_S)

    message = run(stream, main)
    assert message is not None and message.payload == b"after the cancel"
    assert consumer.poll(timeout=0) is None


def test_poll_async_after_close_of_the_consumer_is_stream_closed(streams: Streams) -> None:
    stream = streams(capacity=4096)
    consumer = stream.consumer()
    consumer.close()

    async def main() -> None:
        with pytest.raises(kaelix.StreamClosed):
            await consumer.poll_async(timeout=0)
        with pytest.raises(kaelix.StreamClosed):
            await consumer.poll_batch_async(4, timeout=0)

    run(stream, main)
