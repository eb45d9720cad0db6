"""The stream suite: `kaelix.Stream` end to end, one producer to one consumer, between two
threads and between two processes, with one and four partitions and each backpressure
policy; beside the queues a user would pick instead for the same job: ``queue.Queue`` and
``queue.SimpleQueue`` between threads, ``multiprocessing.Queue`` and ``faster_fifo.Queue``
between processes.

Every contender moves the same 64-byte payloads, the same number of them, and its consumer
checks it accounted for every one: all received (for ``drop_oldest``: received plus the
``skipped`` count the stream reports), the last payload the last one sent, and for kaelix
the last message the last sequence sent to its partition. kaelix frames each payload (a
header with partition, producer id, sequence and timestamp, a CRC32C) and hands the consumer
a `kaelix.Message` (or a `kaelix.MessageBatch`); the peers hand over the ``bytes`` objects
(between processes: pickled, or for faster-fifo copied as they are). ``nbytes`` counts
payload bytes.

Cases:

- one producer thread (the bench's own, in the timed call) to one consumer thread, one
  message per call: kaelix with ``block``, ``error`` (the producer retries a send refused
  with `kaelix.BufferFull`) and ``drop_oldest``, each with 1 and 4 partitions;
- the same threads with batches of 1,024: ``send_batch`` / ``poll_batch`` against
  ``queue.Queue`` carrying one list of payloads per put;
- one producer process to one consumer process around a shared stream, one message per
  call (``block`` and ``drop_oldest``) and batched (``block``), 1 and 4 partitions, timed by
  the consumer from its first receipt to its last, as the ring suite's cross-process cases.

``DESIGN.md`` sets no stream bar, so no case carries one. Imports the public kaelix API
only; the loops and the worker processes live in `kaelix.bench._procs`, which imports
multiprocessing and faster_fifo when a factory starts them. Never import numba here.
"""

from __future__ import annotations

import functools
import itertools
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import kaelix
from kaelix.bench._model import Case, Contender, Suite, SuiteConfig, Workload
from kaelix.bench._procs import (
    Form,
    Policy,
    StreamEnd,
    StreamKind,
    StreamReceipt,
    check_stream_receipt,
    consume_stream,
    kaelix_stream_end,
    open_stream_pair,
    produce_stream,
    queue_stream_end,
    stream_payloads,
)
from kaelix.bench.suites._options import capacity_for, message_count, payload_size, size_label

PAYLOAD = 64
POLICIES: tuple[Policy, ...] = ("block", "error", "drop_oldest")

CONSUMER_TIMEOUT_S = 60.0
"""How long a timed call waits for its consumer thread to account for every message."""


@dataclass(frozen=True)
class StreamSizes:
    """How much each case moves.

    ``thread_messages``: messages per timed call between threads, one per call (the runner
    makes as many calls as a trial needs). ``thread_batches``: batches per timed call
    between threads. ``cross_messages``: messages per trial between processes, one per
    call; ``cross_batches``: batches per trial between processes. ``batch``: payloads per
    batch. ``capacity``: bytes of each partition's ring (and of faster-fifo's buffer).
    ``partitions``: the partition counts each kaelix contender runs with.
    """

    thread_messages: int = 10_000
    thread_batches: int = 128
    cross_messages: int = 50_000
    cross_batches: int = 64
    batch: int = 1024
    capacity: int = 1 << 20
    partitions: tuple[int, ...] = (1, 4)


QUICK_SIZES = StreamSizes()
FULL_SIZES = StreamSizes(
    thread_messages=50_000, thread_batches=512, cross_messages=200_000, cross_batches=256
)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _capacity(sizes: StreamSizes) -> str:
    return f"{sizes.capacity // 1024:,} KiB per partition"


def _kaelix_name(partitions: int, policy: Policy | None = None) -> str:
    where = _plural(partitions, "partition")
    return f"kaelix ({where})" if policy is None else f"kaelix ({policy}, {where})"


# ------------------------------------------------------------------------- between threads


_thread_streams = itertools.count()


class ThreadRun:
    """One producer thread and one consumer thread around a channel: a timed ``call`` sends
    ``n`` messages from the calling thread (`produce_stream`) while a consumer thread,
    started once and kept, receives them (`consume_stream`); the call then checks what the
    consumer saw (`check_stream_receipt`). ``close`` stops the consumer thread and runs
    ``on_close`` (which closes the channel, waking a consumer that is still waiting)."""

    def __init__(
        self,
        producer: StreamEnd,
        make_consumer: Callable[[], StreamEnd],
        n: int,
        form: Form,
        batch: int,
        payload: int = PAYLOAD,
        *,
        drops: bool = False,
        on_close: Callable[[], object] | None = None,
    ) -> None:
        self._producer = producer
        self._payloads = stream_payloads(payload, batch if form == "batch" else 1)
        self._n = n
        self._form: Form = form
        self._drops = drops
        self._on_close = on_close
        self._orders: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self._results: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._consume, args=(make_consumer,), name="kaelix-bench-consumer", daemon=True
        )
        self._thread.start()
        try:
            self._result("ready")
        except BaseException:
            self.close()
            raise

    def _consume(self, make_consumer: Callable[[], StreamEnd]) -> None:
        try:
            end = make_consumer()
        except BaseException as exc:
            self._results.put(("error", exc))
            return
        self._results.put(("ready", None))
        try:
            while (n := self._orders.get()) is not None:
                self._results.put(("ok", consume_stream(end, n, self._form)))
        except BaseException as exc:
            self._results.put(("error", exc))
        finally:
            end.close()

    def _result(self, expect: str = "ok") -> Any:
        try:
            status, value = self._results.get(timeout=CONSUMER_TIMEOUT_S)
        except queue.Empty:
            raise TimeoutError(
                f"the consumer thread did not answer within {CONSUMER_TIMEOUT_S:g} s"
            ) from None
        if status == "error":
            raise RuntimeError(f"the consumer thread failed: {value!r}") from value
        if status != expect:
            raise RuntimeError(f"the consumer thread answered {status!r}, expected {expect!r}")
        return value

    def call(self) -> None:
        """Move ``n`` messages from this thread to the consumer thread and check them."""
        self._orders.put(self._n)
        finals = produce_stream(self._producer, self._payloads, self._n, self._form)
        receipt: StreamReceipt = self._result()
        check_stream_receipt(
            receipt,
            finals,
            self._n,
            self._payloads[-1],
            keyed=self._producer.keyed,
            drops=self._drops,
        )

    def close(self) -> None:
        """Stop the consumer thread and close the channel. Safe to call more than once."""
        self._orders.put(None)
        try:
            on_close, self._on_close = self._on_close, None
            if on_close is not None:
                on_close()
        finally:
            self._thread.join(5.0)


def _thread_kaelix(
    partitions: int, policy: Policy, form: Form, n: int, payload: int, sizes: StreamSizes
) -> Workload:
    stream = kaelix.Stream(
        f"bench-threads-{next(_thread_streams)}",
        partitions=partitions,
        capacity=sizes.capacity,
        backpressure=policy,
    )
    try:
        producer = kaelix_stream_end("producer", stream, sizes.batch)
    except BaseException:
        stream.close()
        raise
    run = ThreadRun(  # closes the stream if it fails
        producer,
        functools.partial(kaelix_stream_end, "consumer", stream, sizes.batch),
        n,
        form,
        sizes.batch,
        payload,
        drops=policy == "drop_oldest",
        on_close=stream.close,
    )
    return Workload(run.call, messages=n, nbytes=n * payload, close=run.close)


def _thread_queue(channel: Any, form: Form, n: int, payload: int, sizes: StreamSizes) -> Workload:
    end = queue_stream_end(channel)
    run = ThreadRun(end, lambda: end, n, form, sizes.batch, payload)
    return Workload(run.call, messages=n, nbytes=n * payload, close=run.close)


def _thread_one_contenders(n: int, payload: int, sizes: StreamSizes) -> tuple[Contender, ...]:
    def kaelix_factory(partitions: int, policy: Policy) -> Callable[[], Workload]:
        return lambda: _thread_kaelix(partitions, policy, "one", n, payload, sizes)

    how = {
        "block": "send() waits for room",
        "error": "send() raises BufferFull when there is no room: the producer sleeps(0) "
        "(yielding the GIL) and retries",
        "drop_oldest": "send() overwrites the oldest messages when there is no room; the "
        "consumer reads Consumer.skipped every 256 messages and when idle, and stops when "
        "received + skipped = every message sent",
    }
    kaelix_contenders = tuple(
        Contender(
            _kaelix_name(partitions, policy),
            kaelix_factory(partitions, policy),
            role="kaelix",
            note=f"{_capacity(sizes)}, backpressure={policy!r}: producer.send(payload), "
            f"round-robin over the partitions / consumer.poll(); {how[policy]}",
        )
        for policy in POLICIES
        for partitions in sizes.partitions
    )
    return (
        *kaelix_contenders,
        Contender(
            "queue.Queue",
            lambda: _thread_queue(queue.Queue(), "one", n, payload, sizes),
            note="unbounded: put(payload) / get(); hands over a reference",
        ),
        Contender(
            "queue.SimpleQueue",
            lambda: _thread_queue(queue.SimpleQueue(), "one", n, payload, sizes),
            note="put(payload) / get(); hands over a reference",
        ),
    )


def _thread_batch_contenders(n: int, payload: int, sizes: StreamSizes) -> tuple[Contender, ...]:
    def kaelix_factory(partitions: int) -> Callable[[], Workload]:
        return lambda: _thread_kaelix(partitions, "block", "batch", n, payload, sizes)

    batch = f"{sizes.batch:,}"
    return (
        *(
            Contender(
                _kaelix_name(partitions),
                kaelix_factory(partitions),
                role="kaelix",
                note=f"{_capacity(sizes)}, backpressure='block': producer.send_batch({batch} "
                f"payloads) / consumer.poll_batch({batch}), a MessageBatch",
            )
            for partitions in sizes.partitions
        ),
        Contender(
            "queue.Queue (lists)",
            lambda: _thread_queue(queue.Queue(), "batch", n, payload, sizes),
            role="reference",
            note=f"unbounded: put(list of {batch} payloads) / get(); hands over one reference "
            "per list, no payload is touched; reference only",
        ),
    )


# ----------------------------------------------------------------------- between processes


def _cross(
    kind: StreamKind,
    form: Form,
    n: int,
    payload: int,
    sizes: StreamSizes,
    partitions: int,
    policy: Policy,
) -> Workload:
    pair = open_stream_pair(
        kind,
        payload_size=payload,
        batch=sizes.batch,
        capacity=sizes.capacity,
        partitions=partitions,
        policy=policy,
    )
    return Workload(
        functools.partial(pair.throughput, n, form),
        messages=n,
        nbytes=n * payload,
        timer="call",
        close=pair.close,
    )


_MP_NOTE = "multiprocessing.Queue (spawn context, unbounded): put/get pickle each item"
_FF_NOTE = "faster_fifo.Queue({} KiB), payloads sent as they are (dumps returns the bytes)"


def _cross_contenders(
    form: Form, n: int, payload: int, sizes: StreamSizes
) -> tuple[Contender, ...]:
    batched = form == "batch"
    batch = f"{sizes.batch:,}"
    policies: tuple[Policy, ...] = ("block",) if batched else ("block", "drop_oldest")

    def factory(
        kind: StreamKind, partitions: int = 1, policy: Policy = "block"
    ) -> Callable[[], Workload]:
        return lambda: _cross(kind, form, n, payload, sizes, partitions, policy)

    def kaelix_note(policy: Policy) -> str:
        calls = (
            f"send_batch({batch} payloads) / poll_batch({batch})"
            if batched
            else "send(payload) / poll()"
        )
        text = (
            f"shared Stream made by the bench, Stream.open in each process, "
            f"{_capacity(sizes)}, backpressure={policy!r}: {calls}"
        )
        if policy == "drop_oldest":
            text += "; the consumer stops when received + skipped = every message sent"
        return text

    return (
        *(
            Contender(
                _kaelix_name(partitions, None if batched else policy),
                factory("kaelix", partitions, policy),
                role="kaelix",
                note=kaelix_note(policy),
            )
            for policy in policies
            for partitions in sizes.partitions
        ),
        Contender(
            "multiprocessing.Queue",
            factory("multiprocessing"),
            note=_MP_NOTE
            + (
                f"; batches: one list of {batch} payloads per put"
                if batched
                else "; one payload per put"
            ),
        ),
        Contender(
            "faster-fifo",
            factory("faster_fifo"),
            requires=("faster_fifo",),
            note=_FF_NOTE.format(sizes.capacity // 1024)
            + ("; batches: put_many(list) / get_many()" if batched else "; put / get"),
        ),
    )


# ----------------------------------------------------------------------------------- suite


def cases(config: SuiteConfig, sizes: StreamSizes | None = None) -> Sequence[Case]:
    """The stream cases. ``sizes`` defaults to `QUICK_SIZES` in quick mode and
    `FULL_SIZES` in full mode (the tests pass tiny ones).

    ``config.size`` (``--size``) sets the payload size of every case (64 B by default); each
    partition's ring (and faster-fifo's buffer) grows past ``sizes.capacity`` when a batch
    of such payloads would not fit in it twice. ``config.messages`` (``--messages``) sets the
    messages of every timed call between threads and of every trial between processes,
    rounded up to whole batches in the batched cases."""
    if sizes is None:
        sizes = QUICK_SIZES if config.quick else FULL_SIZES
    payload = payload_size(config, PAYLOAD, "stream")
    messages = message_count(config, 0, "stream")
    if messages:
        batches = -(-messages // sizes.batch)
        sizes = replace(
            sizes,
            thread_messages=messages,
            thread_batches=batches,
            cross_messages=messages,
            cross_batches=batches,
        )
    sizes = replace(
        sizes,
        capacity=capacity_for(sizes.capacity, sizes.batch * (kaelix.HEADER_SIZE + payload)),
    )
    label = size_label(payload)
    batch = f"{sizes.batch:,}"
    thread_batched = sizes.thread_batches * sizes.batch
    cross_batched = sizes.cross_batches * sizes.batch
    accounted = (
        "the consumer accounts for every message (for drop_oldest, received + skipped; "
        "msg/s counts every message sent) and checks the last one"
    )
    threads = (
        "the bench's thread produces, a consumer thread started once receives; time/op is per call"
    )
    consumer_timed = (
        "consumer-timed: messages accounted for after its first receipt over the time from "
        "the first receipt to the last; producer and consumer are spawned processes"
    )
    return (
        Case(
            f"1\u21921 threads, one message per call ({label})",
            _thread_one_contenders(sizes.thread_messages, payload, sizes),
            note=f"{sizes.thread_messages:,} messages per timed call, {threads}; {accounted}",
        ),
        Case(
            f"1\u21921 threads, batches of {batch} ({label})",
            _thread_batch_contenders(thread_batched, payload, sizes),
            note=f"{thread_batched:,} messages per timed call in batches of {batch}, "
            f"{threads}; {accounted}",
        ),
        Case(
            f"1\u21921 processes, one message per call ({label})",
            _cross_contenders("one", sizes.cross_messages, payload, sizes),
            note=f"{sizes.cross_messages:,} messages per trial, {consumer_timed}; {accounted}",
        ),
        Case(
            f"1\u21921 processes, batches of {batch} ({label})",
            _cross_contenders("batch", cross_batched, payload, sizes),
            note=f"{cross_batched:,} messages per trial in batches of {batch}, "
            f"{consumer_timed}; {accounted}",
        ),
    )


SUITE = Suite(
    name="stream",
    description="Stream, Producer and Consumer end to end (threads and processes, 1 and 4 "
    "partitions, each policy) vs queue.Queue, SimpleQueue, multiprocessing.Queue and "
    "faster-fifo",
    cases=cases,
    options=("size", "messages"),
)
