"""The nats suite: `kaelix.connect.nats` against a real nats-server (JetStream, file storage,
one replica, on loopback), beside nats-py used directly for the same job, in the same run.

Each contender starts its own server (`kaelix.connect.nats.testing.NatsServer`, a temporary
folder, stopped and removed when the contender is done) and its own JetStream stream, so
no contender reads what another stored.

Cases:

- **publish with acks, batched**: each call publishes ``batch`` messages and returns once
  JetStream acknowledged every one. kaelix: ``NatsProducer.send_batch`` (frames with
  ``Nats-Msg-Id``, pipelined, retried until acknowledged); nats-py: ``js.publish_async`` of
  each payload with a ``Nats-Msg-Id`` header, then awaiting every future, in one coroutine
  on the caller's loop (no thread hand-off). kaelix's bodies are frames: 56 bytes of header
  more per message than the peer's, counted in neither's bytes (``nbytes`` is payload).
- **publish with acks, one at a time**: ``NatsProducer.send`` against ``await
  js.publish`` (request and acknowledgement per message): the round trip.
- **consume with acks**: the messages stored once, then each call reads them all with a new
  (ephemeral) consumer, acknowledging each. kaelix: ``poll_batch`` (its own pull requests,
  one open at a time, messages buffered as they arrive); nats-py: ``fetch`` and ``ack``.
- **end-to-end latency**: one message per period at a fixed rate, published with acks;
  a consumer (a pull consumer fetching in a loop) stamps each receipt; latency is the
  receipt time minus the message's send time (kaelix: the frame's timestamp; nats-py: a
  timestamp in the payload), in an HdrHistogram like every latency case of the bench.

Skipped, with the reason, when nats-py or the ``nats-server`` binary is missing (``pip
install "kaelix[bench]"`` brings both). ``DESIGN.md`` sets no bar for a network engine.
Imports the public kaelix API and the connect layer; nats-py and the server only when a
factory runs. Never import numba here.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from kaelix.bench._hdrlog import encode_latencies
from kaelix.bench._model import Case, Contender, Suite, SuiteConfig, Workload
from kaelix.bench.suites._options import message_count, payload_size, size_label

PAYLOAD = 128
_names = itertools.count()


@dataclass(frozen=True)
class NatsSizes:
    """How much each case moves: ``batch`` messages per batched call; ``singles``
    messages per one-at-a-time call; ``consume`` messages read per consuming call (stored
    once, read by a new consumer each call); ``latency_messages`` per latency trial, at
    ``latency_rate`` per second."""

    batch: int = 5_000
    singles: int = 200
    consume: int = 5_000
    latency_messages: int = 500
    latency_rate: int = 1_000


QUICK_SIZES = NatsSizes()
FULL_SIZES = NatsSizes(
    batch=20_000, singles=1_000, consume=20_000, latency_messages=5_000, latency_rate=2_000
)
FETCH = 4_096
"""Messages a consumer asks for at a time in the consuming case."""


def _binary_missing() -> bool:
    from kaelix.connect.nats.testing import ServerNotFound, server_binary

    try:
        server_binary()
    except ServerNotFound:
        return True
    return False


def _requires() -> tuple[str, ...]:
    # "nats-server" is no module: naming it makes the runner skip the contender, saying
    # that nats-server is not installed and that the bench extra brings it.
    return ("nats", "nats-server") if _binary_missing() else ("nats",)


class _Server:
    """A server and a stream name for one contender."""

    def __init__(self) -> None:
        from kaelix.connect.nats.testing import NatsServer

        self.server = NatsServer()
        self.name = f"bench{next(_names)}"

    def close(self) -> None:
        self.server.stop()


# -- kaelix ------------------------------------------------------------------------------------


class _KaelixSide:
    def __init__(self) -> None:
        from kaelix.connect.nats import NatsStream

        self.server = _Server()
        self.stream = NatsStream(self.server.name, self.server.server.url, max_bytes=1 << 30)
        self.producer = self.stream.producer()

    def close(self) -> None:
        self.stream.close()
        self.server.close()


def _kaelix_batch(batch: int, payload: int) -> Workload:
    side = _KaelixSide()
    payloads = [bytes(payload)] * batch
    send_batch = side.producer.send_batch

    def call() -> None:
        send_batch(payloads, partition=0)

    return Workload(call, messages=batch, nbytes=batch * payload, close=side.close)


def _kaelix_singles(count: int, payload: int) -> Workload:
    side = _KaelixSide()
    body = bytes(payload)
    send = side.producer.send

    def call() -> None:
        for _ in range(count):
            send(body, partition=0)

    return Workload(call, messages=count, nbytes=count * payload, close=side.close)


def _kaelix_consume(count: int, payload: int) -> Workload:
    side = _KaelixSide()
    side.producer.send_batch([bytes(payload)] * count, partition=0)
    stream = side.stream

    def call() -> None:
        consumer = stream.consumer()  # ephemeral, from the first message: reads all again
        got = 0
        while got < count:
            batch = consumer.poll_batch(FETCH, timeout=30)
            if not len(batch):
                raise RuntimeError(f"only {got:,} of {count:,} messages came within 30 s")
            got += len(batch)
        consumer.close()  # acknowledges what the last poll returned, deletes the consumer

    return Workload(call, messages=count, nbytes=count * payload, close=side.close)


def _kaelix_latency(messages: int, rate: int, payload: int) -> Workload:
    import numpy as np

    side = _KaelixSide()
    consumer = side.stream.consumer(start="latest", prefetch=64)
    body = bytes(payload)
    period = 1.0 / rate

    def trial() -> Any:
        latencies = np.zeros(messages, dtype=np.int64)

        def consume() -> None:
            got = 0
            while got < messages:
                msg = consumer.poll(timeout=30)
                if msg is None:
                    return
                latencies[got] = time.time_ns() - msg.timestamp_ns
                got += 1

        reader = threading.Thread(target=consume, name="kaelix-bench-nats", daemon=True)
        reader.start()
        began = time.monotonic() + 0.005
        for i in range(messages):
            left = began + i * period - time.monotonic()
            if left > 0:
                time.sleep(left)
            side.producer.send(body, partition=0)
        reader.join(60)
        if reader.is_alive():
            raise RuntimeError("the consumer did not receive every message within 60 s")
        return latencies

    def close() -> None:
        consumer.close()
        side.close()

    return Workload(
        trial,
        messages=messages,
        nbytes=0,
        timer="latency",
        close=close,
        encode_hdr=encode_latencies,
    )


# -- nats-py -----------------------------------------------------------------------------------


class _PeerSide:
    """nats-py on an event loop of the bench's own (a thread), used as its docs show."""

    def __init__(self) -> None:
        import nats

        self.server = _Server()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.subject = f"{self.server.name}.0"

        async def open_() -> tuple[Any, Any]:
            nc = await nats.connect(self.server.server.url)
            js = nc.jetstream(publish_async_max_pending=1 << 20)
            await js.add_stream(
                name=self.server.name, subjects=[f"{self.server.name}.>"], max_bytes=1 << 30
            )
            return nc, js

        self.nc, self.js = self.run(open_())
        self.ids = itertools.count()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self) -> None:
        self.run(self.nc.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        self.server.close()


def _peer_batch(batch: int, payload: int) -> Workload:
    side = _PeerSide()
    body = bytes(payload)

    async def publish_all() -> None:
        js, subject, ids = side.js, side.subject, side.ids
        futures = [
            await js.publish_async(subject, body, headers={"Nats-Msg-Id": str(next(ids))})
            for _ in range(batch)
        ]
        await asyncio.gather(*futures)

    return Workload(
        lambda: side.run(publish_all()), messages=batch, nbytes=batch * payload, close=side.close
    )


def _peer_singles(count: int, payload: int) -> Workload:
    side = _PeerSide()
    body = bytes(payload)

    async def publish_each() -> None:
        js, subject, ids = side.js, side.subject, side.ids
        for _ in range(count):
            await js.publish(subject, body, headers={"Nats-Msg-Id": str(next(ids))})

    return Workload(
        lambda: side.run(publish_each()), messages=count, nbytes=count * payload, close=side.close
    )


def _peer_consume(count: int, payload: int) -> Workload:
    side = _PeerSide()
    body = bytes(payload)

    async def fill() -> None:
        futures = [await side.js.publish_async(side.subject, body) for _ in range(count)]
        await asyncio.gather(*futures)

    side.run(fill())

    async def read_all() -> None:
        import nats.errors
        from nats.js.api import ConsumerConfig

        sub = await side.js.pull_subscribe(
            side.subject,
            stream=side.server.name,
            config=ConsumerConfig(max_ack_pending=65_536),
        )
        got = 0
        while got < count:
            try:
                msgs = await sub.fetch(FETCH, timeout=1.0)
            except nats.errors.TimeoutError:
                continue
            for msg in msgs:
                await msg.ack()
            got += len(msgs)
        await sub.unsubscribe()
        await side.js.delete_consumer(side.server.name, sub._consumer)

    return Workload(
        lambda: side.run(read_all()), messages=count, nbytes=count * payload, close=side.close
    )


def _peer_latency(messages: int, rate: int, payload: int) -> Workload:
    import numpy as np

    side = _PeerSide()
    period = 1.0 / rate
    pad = bytes(max(0, payload - 8))

    async def subscribe() -> Any:
        from nats.js.api import ConsumerConfig, DeliverPolicy

        return await side.js.pull_subscribe(
            side.subject,
            stream=side.server.name,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.NEW),
        )

    sub = side.run(subscribe())

    async def trial() -> Any:
        import nats.errors

        latencies = np.zeros(messages, dtype=np.int64)

        async def consume() -> None:
            got = 0
            while got < messages:
                try:
                    msgs = await sub.fetch(64, timeout=1.0)
                except nats.errors.TimeoutError:
                    continue
                for msg in msgs:
                    latencies[got] = time.time_ns() - int.from_bytes(msg.data[:8], "little")
                    got += 1
                    await msg.ack()

        reader = asyncio.ensure_future(consume())
        began = time.monotonic() + 0.005
        for i in range(messages):
            left = began + i * period - time.monotonic()
            if left > 0:
                await asyncio.sleep(left)
            stamp = time.time_ns().to_bytes(8, "little")
            await side.js.publish(side.subject, stamp + pad)
        await asyncio.wait_for(reader, 60)
        return latencies

    return Workload(
        lambda: side.run(trial()),
        messages=messages,
        nbytes=0,
        timer="latency",
        close=side.close,
        encode_hdr=encode_latencies,
    )


# -- cases -------------------------------------------------------------------------------------


def cases(config: SuiteConfig, sizes: NatsSizes | None = None) -> Sequence[Case]:
    """The nats cases. ``sizes`` defaults to `QUICK_SIZES` (a few seconds) in quick mode and
    `FULL_SIZES` in full mode; the tests pass tiny ones. ``config.size`` (``--size``) sets the
    payload; ``config.messages`` (``--messages``) the messages of a batched or consuming call."""
    if sizes is None:
        sizes = QUICK_SIZES if config.quick else FULL_SIZES
    payload = payload_size(config, PAYLOAD, "nats")
    batch = message_count(config, 0, "nats")
    if batch:
        sizes = replace(sizes, batch=batch, consume=batch)
    requires = _requires()
    label = size_label(payload)
    server = "a nats-server on loopback (JetStream, file storage, 1 replica), one per contender"

    def pair(
        kaelix_note: str, peer_name: str, peer_note: str, kaelix: Any, peer: Any
    ) -> tuple[Contender, ...]:
        return (
            Contender("kaelix", kaelix, role="kaelix", requires=requires, note=kaelix_note),
            Contender(peer_name, peer, requires=requires, note=peer_note),
        )

    b, s, c = sizes.batch, sizes.singles, sizes.consume
    n, rate = sizes.latency_messages, sizes.latency_rate
    return (
        Case(
            f"publish with acks, batches of {b:,} ({label})",
            pair(
                f"NatsProducer.send_batch of {b:,} payloads: frames with Nats-Msg-Id, "
                "pipelined, returns when every one is acknowledged",
                "nats-py publish_async",
                f"{b:,} js.publish_async with a Nats-Msg-Id header, then every ack awaited, "
                "in one coroutine on the bench's loop",
                lambda: _kaelix_batch(b, payload),
                lambda: _peer_batch(b, payload),
            ),
            throughput="messages",
            note=f"{server}; messages acknowledged by JetStream per second",
        ),
        Case(
            f"publish with acks, one at a time ({label})",
            pair(
                f"NatsProducer.send, {s:,} calls each waiting for its acknowledgement",
                "nats-py publish",
                f"{s:,} await js.publish (request, acknowledgement) with a Nats-Msg-Id header",
                lambda: _kaelix_singles(s, payload),
                lambda: _peer_singles(s, payload),
            ),
            throughput="messages",
            note=f"{server}; one round trip per message",
        ),
        Case(
            f"consume with acks, {c:,} messages in fetches of {FETCH:,} ({label})",
            pair(
                f"a new NatsConsumer (ephemeral) per call: poll_batch({FETCH:,}) until "
                f"{c:,} came, each acknowledged at the next poll or close",
                "nats-py fetch",
                f"a new pull consumer per call: sub.fetch({FETCH:,}) until {c:,} came, "
                "msg.ack() for each",
                lambda: _kaelix_consume(c, payload),
                lambda: _peer_consume(c, payload),
            ),
            throughput="messages",
            note=f"{server}; the messages are stored once, and each call reads them all",
        ),
        Case(
            f"end-to-end latency at {rate:,} msg/s ({label})",
            pair(
                "NatsProducer.send (acknowledged) on the calling thread; a consumer thread "
                "polls a NatsConsumer (ephemeral, prefetch 64); latency = receipt - the "
                "frame's timestamp",
                "nats-py",
                "await js.publish (acknowledged) and a pull consumer fetching batches of up "
                "to 64 in the same loop, acking each; latency = receipt - a timestamp in the "
                "payload",
                lambda: _kaelix_latency(n, rate, payload),
                lambda: _peer_latency(n, rate, payload),
            ),
            throughput="latency",
            note=f"{server}; {n:,} messages per trial, one every {1e6 / rate:,.0f} µs",
        ),
    )


SUITE = Suite(
    name="nats",
    description="kaelix.connect.nats vs nats-py on a real nats-server: publish with acks "
    "(batched and one at a time), consume with acks, and end-to-end latency",
    cases=cases,
    options=("size", "messages"),
)
