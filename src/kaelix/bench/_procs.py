"""Cross-process runs for the ring and stream suites: one producer process and one consumer
process around one channel (a `kaelix.SharedRing` or a shared `kaelix.Stream`, a
`multiprocessing.Queue` or a `faster_fifo.Queue`), driven by the bench process over a pipe
to each (the stream suite's thread cases reuse the same loops in threads).

The same two workers serve kaelix and every peer, so every contender runs the same loops
around its own put/get calls:

- a throughput trial: the producer sends ``n`` frames (one per call, or in batches), the
  consumer receives them and times itself from the first receipt to the last;
- a latency trial: the producer sends ``n`` distinct frames on a fixed schedule (one every
  ``period_ns``, starting at ``t0_ns``), the consumer stamps each receipt, and a message's
  latency is its receipt time minus its *scheduled* send time (so a producer that falls
  behind is charged to the channel: no coordinated omission). ``time.perf_counter_ns`` is
  ``CLOCK_MONOTONIC``, one clock for every process on Linux.

The workers are started with the ``spawn`` method (safe in a process with threads, such as
the bench with its rich progress bar), so this module is what a child imports first: it
keeps to the standard library at module level and imports kaelix, numpy and faster_fifo
inside the functions that use them. Never import numba, rich or the bench's reports here.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import itertools
import os
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

    import numpy as np
    import numpy.typing as npt

START_METHOD: Final = "spawn"
"""How the workers are started (see the module docstring)."""

ChannelKind = Literal["kaelix", "multiprocessing", "faster_fifo", "clock"]
Role = Literal["producer", "consumer"]
Form = Literal["one", "batch"]
Wait = Literal["sleep", "spin", "yield"]

ROLES: tuple[Role, ...] = ("consumer", "producer")
"""The workers, in the order they are started and told to start a trial."""

YIELD_ABOVE_NS = 4_000
"""A paced producer yields its core (``os.sched_yield``, which also lets other threads of
its process take the GIL, as the feeder thread of a ``multiprocessing.Queue`` must) while
more than this remains before its next send, then busy-waits for the rest."""

START_TIMEOUT_S = 120.0
"""How long the workers may take to start (spawn, import kaelix, prepare their frames)."""

_POLL_S = 0.25


@dataclass(frozen=True)
class Channel:
    """What the workers talk through. ``handle`` is the ring's name for kaelix, the queue
    itself for the peers (handed to the children when they are spawned); ``wait`` is the
    kaelix handles' wait strategy."""

    kind: ChannelKind
    handle: Any
    wait: Wait = "sleep"


@dataclass(frozen=True)
class Frames:
    """The frames a producer sends: ``count`` distinct frames (sequences 0, 1, ...) of a
    ``payload_size``-byte payload. One-at-a-time trials send the first frame over and
    over, batched trials send all ``count`` as one batch over and over, latency trials send
    each once, in order."""

    payload_size: int
    count: int


class WorkerError(RuntimeError):
    """A worker process failed; the message carries its traceback or exit status."""


def make_frames(spec: Frames) -> list[bytes]:
    """The frames of ``spec`` (``kaelix.encode`` of a Message with a deterministic payload,
    sequence ``i`` and timestamp ``i``)."""
    import kaelix

    payload = bytes((i * 7 + 3) & 0xFF for i in range(spec.payload_size))
    return [
        kaelix.encode(kaelix.Message(payload, sequence=i, timestamp_ns=i))
        for i in range(spec.count)
    ]


def frame_bytes(frame: bytes) -> bytes:
    """faster-fifo's ``dumps``: frames are already bytes, sent as they are."""
    return frame


# ------------------------------------------------------------------------ inside a worker


@dataclass(frozen=True)
class _Endpoint:
    """One channel's calls, in the shape the worker loops use."""

    put: Callable[[Any], object]
    get: Callable[[], Any]
    put_batch: Callable[[Any], object]
    get_batch: Callable[[], Any]
    batch: Any  # what put_batch sends: a MessageBatch (kaelix) or a list of frames
    last_frame: Callable[[Any], bytes]  # the last frame of what get_batch returned
    close: Callable[[], object]


def _last_of_list(frames: Sequence[bytes]) -> bytes:
    return bytes(frames[-1])


def _nothing(*_: object) -> None:
    return None


def _open(channel: Channel, frames: list[bytes]) -> _Endpoint:
    if channel.kind == "clock":  # no channel: the machine's own floor (see _observe_schedule)
        return _Endpoint(_nothing, _nothing, _nothing, _nothing, None, _last_of_list, _nothing)
    if channel.kind == "kaelix":
        import kaelix

        ring = kaelix.SharedRing.attach(channel.handle, wait=channel.wait)
        return _Endpoint(
            put=ring.put,
            get=ring.get,
            put_batch=ring.put_batch,
            get_batch=ring.get_batch,
            batch=kaelix.MessageBatch.from_bytes(b"".join(frames)),
            last_frame=lambda batch: bytes(batch.frame(len(batch) - 1)),
            close=ring.close,
        )
    queue = channel.handle
    if channel.kind == "multiprocessing":
        # No batch call: a batch is one list per put (pickled as one object).
        return _Endpoint(
            queue.put, queue.get, queue.put, queue.get, list(frames), _last_of_list, queue.close
        )
    return _Endpoint(
        queue.put,
        queue.get,
        queue.put_many,
        queue.get_many,
        list(frames),
        _last_of_list,
        queue.close,
    )


def _produce(endpoint: _Endpoint, frames: list[bytes], n: int, form: Form) -> int:
    if form == "one":
        put, frame = endpoint.put, frames[0]
        for _ in itertools.repeat(None, n):
            put(frame)
    else:
        put_batch, batch = endpoint.put_batch, endpoint.batch
        for _ in itertools.repeat(None, n // len(frames)):
            put_batch(batch)
    return n


def _consume(endpoint: _Endpoint, n: int, form: Form) -> tuple[int, int, int, int, bytes]:
    """(first receipt ns, last receipt ns, messages in the first receipt, messages, last
    frame)."""
    clock = time.perf_counter_ns
    if form == "one":
        get = endpoint.get
        frame = get()
        first = clock()
        for _ in itertools.repeat(None, n - 1):
            frame = get()
        return first, clock(), 1, n, bytes(frame)
    get_batch = endpoint.get_batch
    batch = get_batch()
    first = clock()
    first_count = received = len(batch)
    while received < n:
        batch = get_batch()
        received += len(batch)
    return first, clock(), first_count, received, endpoint.last_frame(batch)


def _send_paced(endpoint: _Endpoint, frames: list[bytes], t0_ns: int, period_ns: int) -> list[int]:
    """Send each frame at its scheduled time (or at once when late); each send's lag behind
    the schedule, in ns."""
    put, clock, pause = endpoint.put, time.perf_counter_ns, os.sched_yield
    target = t0_ns
    lags = [0] * len(frames)
    for i, frame in enumerate(frames):
        while True:
            remaining = target - clock()
            if remaining <= 0:
                break
            if remaining > YIELD_ABOVE_NS:
                pause()
        lags[i] = -remaining
        put(frame)
        target += period_ns
    return lags


def _stamp(endpoint: _Endpoint, n: int, t0_ns: int, period_ns: int) -> npt.NDArray[np.int64]:
    """Receive ``n`` frames, stamping each receipt; check they are the frames 0..n-1 in
    order; return each one's receipt time minus its scheduled send time."""
    import numpy as np

    import kaelix

    get, clock = endpoint.get, time.perf_counter_ns
    received: list[Any] = [None] * n
    stamps = [0] * n
    for i in range(n):
        received[i] = get()
        stamps[i] = clock()
    sequences = kaelix.MessageBatch.from_bytes(b"".join(received)).sequence
    expected = np.arange(n, dtype=np.uint64)
    if sequences.shape != expected.shape or not np.array_equal(sequences, expected):
        raise AssertionError("the consumer did not receive frames 0..n-1 in order")
    scheduled = t0_ns + np.arange(n, dtype=np.int64) * period_ns
    return np.asarray(stamps, dtype=np.int64) - scheduled


def _observe_schedule(n: int, t0_ns: int, period_ns: int) -> npt.NDArray[np.int64]:
    """The "clock" consumer: no channel, it busy-waits until each scheduled send time and
    stamps when it saw the clock pass it: how late a process that never sleeps notices a
    moment on this machine (preemption, interrupts, a hypervisor taking the core). The bench
    combines it with the producer's own lag at each send (`ProcessPair.latency`): a floor
    under every channel's latency measured here."""
    import numpy as np

    clock = time.perf_counter_ns
    stamps = [0] * n
    target = t0_ns
    for i in range(n):
        while clock() < target:
            pass
        stamps[i] = clock()
        target += period_ns
    scheduled = t0_ns + np.arange(n, dtype=np.int64) * period_ns
    return np.asarray(stamps, dtype=np.int64) - scheduled


def _serve_commands(
    conn: Connection,
    start: Callable[[], tuple[Callable[[str, list[Any]], object], Callable[[], object]]],
) -> None:
    """The command loop every worker runs: ``start()`` opens the worker's end of the channel
    and returns ``(run, close)``; then say ``ready`` and answer each command with
    ``run(command, args)`` (with the garbage collector off, as in the bench's own timed
    loops) until told to ``stop``, which runs ``close``. Every reply is ``("ok", result)``
    or ``("error", traceback)``; a worker stops after its first error."""
    try:
        run, close = start()
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        return
    conn.send(("ready", os.getpid()))
    try:
        while True:
            command, *args = conn.recv()
            if command == "stop":
                close()
                conn.send(("ok", None))
                return
            gc.disable()  # as in the bench's own timed loops
            try:
                result = run(command, args)
            except BaseException:
                conn.send(("error", traceback.format_exc()))
                return
            finally:
                gc.enable()
            conn.send(("ok", result))
    except (EOFError, OSError):  # the bench went away: nothing left to answer
        return


def _run_ring_command(
    role: Role,
    channel: Channel,
    endpoint: _Endpoint,
    frames: list[bytes],
    command: str,
    args: list[Any],
) -> object:
    if command == "throughput":
        n, form = args
        if role == "producer":
            return _produce(endpoint, frames, n, form)
        return _consume(endpoint, n, form)
    if command == "latency":
        n, t0_ns, period_ns = args
        if role == "producer":
            return _send_paced(endpoint, frames[:n], t0_ns, period_ns)
        if channel.kind == "clock":
            return _observe_schedule(n, t0_ns, period_ns)
        return _stamp(endpoint, n, t0_ns, period_ns)
    raise ValueError(f"unknown command {command!r}")


def serve(role: Role, conn: Connection, channel: Channel, spec: Frames) -> None:
    """A worker's main loop: open the channel, say ``ready``, then answer commands
    (``throughput``, ``latency``, ``stop``) until told to stop. Every reply is
    ``("ok", result)`` or ``("error", traceback)``."""

    def start() -> tuple[Callable[[str, list[Any]], object], Callable[[], object]]:
        frames = make_frames(spec)
        endpoint = _open(channel, frames)
        run = functools.partial(_run_ring_command, role, channel, endpoint, frames)
        return run, endpoint.close

    _serve_commands(conn, start)


# ------------------------------------------------------------------------ in the bench


class ProcessPair:
    """A producer and a consumer process around ``channel``, ready for trials.

    Starting it spawns the workers one after the other, each once the previous one has
    opened the channel and made its frames; `close` stops them (terminating a worker that
    does not stop) and runs ``on_close`` (which removes the channel). Use it as a context
    manager or call `close`.
    """

    def __init__(
        self,
        channel: Channel,
        spec: Frames,
        *,
        on_close: Callable[[], object] | None = None,
    ) -> None:
        self.channel = channel
        self.spec = spec
        self.expected = make_frames(spec)
        self._start(serve, (channel, spec), "kaelix-bench", on_close)

    def _start(
        self,
        target: Callable[..., None],
        args: tuple[Any, ...],
        name: str,
        on_close: Callable[[], object] | None,
    ) -> None:
        """Spawn the workers, ``target(role, conn, *args)`` named ``{name}-{role}``, and
        wait for each to say ``ready``; on failure, `close` (which runs ``on_close``)."""
        import multiprocessing

        context = multiprocessing.get_context(START_METHOD)
        self._on_close = on_close
        self._processes: dict[Role, BaseProcess] = {}
        self._conns: dict[Role, Connection] = {}
        try:
            # One after the other: each child imports kaelix, which in an editable install
            # checks (and may run) the extension's build; two at once would share a build tree.
            for role in ROLES:
                ours, theirs = context.Pipe()
                process = context.Process(
                    target=target,
                    args=(role, theirs, *args),
                    name=f"{name}-{role}",
                    daemon=True,
                )
                process.start()
                theirs.close()
                self._processes[role] = process
                self._conns[role] = ours
                self._reply(role, START_TIMEOUT_S, expect="ready")
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> ProcessPair:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _send(self, role: Role, *command: object) -> None:
        self._conns[role].send(command)

    def _reply(self, role: Role, timeout_s: float, expect: str = "ok") -> Any:
        conn, process = self._conns[role], self._processes[role]
        deadline = time.monotonic() + timeout_s
        while not conn.poll(_POLL_S):
            if not process.is_alive() and not conn.poll(0):
                raise WorkerError(f"the {role} process exited (status {process.exitcode})")
            if time.monotonic() > deadline:
                raise WorkerError(f"the {role} process did not answer within {timeout_s:g} s")
        try:
            status, value = conn.recv()
        except EOFError:
            raise WorkerError(f"the {role} process exited (status {process.exitcode})") from None
        if status == "error":
            raise WorkerError(f"the {role} process failed:\n{value}")
        if status != expect:
            raise WorkerError(f"the {role} process answered {status!r}, expected {expect!r}")
        return value

    def _timeout(self, n: int) -> float:
        return 60.0 + n * 1e-4  # generous: 10 k msg/s is far below any contender

    def throughput(self, n: int, form: Form) -> float:
        """One throughput trial of ``n`` messages; the nanoseconds ``n`` messages take at the
        rate the consumer saw (messages after its first receipt over the time from the first
        receipt to the last)."""
        self._send("consumer", "throughput", n, form)
        self._send("producer", "throughput", n, form)
        timeout = self._timeout(n)
        first, last, first_count, received, last_frame = self._reply("consumer", timeout)
        self._reply("producer", timeout)
        if received != n:
            raise AssertionError(f"the consumer received {received} messages, expected {n}")
        expected_last = self.expected[0 if form == "one" else -1]
        if last_frame != expected_last:
            raise AssertionError("the last frame received is not the last frame sent")
        timed = received - first_count
        if timed <= 0 or last <= first:
            raise ValueError(
                f"{n} messages arrived in one receipt: too few to time; send more per trial"
            )
        return float((last - first) * n / timed)

    def latency(self, n: int, period_ns: int, lead_ns: int = 20_000_000) -> npt.NDArray[np.int64]:
        """One latency trial: ``n`` messages, one every ``period_ns``, the first scheduled
        ``lead_ns`` from now; each message's receipt time minus its scheduled send time."""
        if n > self.spec.count:
            raise ValueError(f"a latency trial sends at most {self.spec.count} messages; got {n}")
        t0_ns = time.perf_counter_ns() + lead_ns
        self._send("consumer", "latency", n, t0_ns, period_ns)
        self._send("producer", "latency", n, t0_ns, period_ns)
        timeout = self._timeout(n) + n * period_ns / 1e9
        latencies: npt.NDArray[np.int64] = self._reply("consumer", timeout)
        lags = self._reply("producer", timeout)
        if self.channel.kind == "clock":
            # No channel: a message could arrive no earlier than its producer sent it and
            # its consumer looked, whichever was later.
            import numpy as np

            latencies = np.maximum(latencies, np.asarray(lags, dtype=np.int64))
        return latencies

    def close(self) -> None:
        """Stop both workers (terminate one that does not stop within 5 s), then run
        ``on_close``. Safe to call more than once."""
        try:
            _stop_workers([(self._processes[role], conn) for role, conn in self._conns.items()])
        finally:
            self._processes.clear()
            self._conns.clear()
            on_close, self._on_close = self._on_close, None
            if on_close is not None:
                on_close()


def _stop_workers(workers: list[tuple[Any, Any]]) -> None:
    """Tells every (process, connection) worker to stop, then joins each (terminating one
    that does not stop within 5 s, killing one that ignores that) and closes both ends."""
    for process, conn in workers:
        if process.is_alive():
            with contextlib.suppress(OSError):
                conn.send(("stop",))
    for process, conn in workers:
        process.join(5.0)
        if process.is_alive():
            process.terminate()
            process.join(5.0)
        if process.is_alive():  # pragma: no cover - a worker that ignores SIGTERM
            process.kill()
            process.join()
        process.close()
        conn.close()


_ring_names = itertools.count()


def open_pair(
    kind: ChannelKind,
    spec: Frames,
    *,
    capacity: int,
    wait: Wait = "sleep",
) -> ProcessPair:
    """Create a channel of ``kind`` holding ``capacity`` bytes (a ``multiprocessing.Queue``
    is unbounded) and start a producer and a consumer around it."""
    if kind == "kaelix":
        import kaelix

        name = f"kaelix-bench-{os.getpid()}-{next(_ring_names)}"
        ring = kaelix.SharedRing.create(name, capacity, wait=wait)

        def remove() -> None:
            ring.close()
            ring.unlink()

        try:
            return ProcessPair(Channel("kaelix", name, wait), spec, on_close=remove)
        except BaseException:
            remove()
            raise
    if kind == "clock":
        return ProcessPair(Channel("clock", None), spec)
    if kind == "multiprocessing":
        import multiprocessing

        queue: Any = multiprocessing.get_context(START_METHOD).Queue()
        return ProcessPair(Channel(kind, queue), spec, on_close=queue.close)
    import faster_fifo  # type: ignore[import-not-found]

    queue = faster_fifo.Queue(capacity, loads=bytes, dumps=frame_bytes)
    return ProcessPair(Channel(kind, queue), spec, on_close=queue.close)


# ------------------------------------------------------------------------ the stream suite
#
# The stream suite (`kaelix.bench.suites.stream`) moves payloads through a `kaelix.Stream`
# and through the peer queues with the same two loops, `produce_stream` and
# `consume_stream`: in two threads of the bench, or in two spawned processes
# (`StreamPair`, served by `serve_stream`). Like everything above, kaelix and the peers are
# imported inside the functions that use them.

Policy = Literal["block", "error", "drop_oldest"]
StreamKind = Literal["kaelix", "multiprocessing", "faster_fifo"]

IDLE_POLL_S = 0.01
"""How long a drop_oldest consumer waits for a message before it looks again whether its
skipped count already accounts for the rest."""

SKIPPED_EVERY = 256
"""A drop_oldest consumer reads its skipped count after this many messages, not after
each: reading it looks at every partition."""

GIVE_UP_S = 60.0
"""A drop_oldest consumer that receives nothing for this long stops (the check reports
what is missing)."""


def stream_payloads(payload_size: int, count: int) -> list[bytes]:
    """``count`` distinct payloads of ``payload_size`` (>= 8) bytes, the index in the first
    eight: distinct objects, so a pickling peer cannot send a repeated one as a memo
    reference."""
    if payload_size < 8:
        raise ValueError(f"payload_size must be at least 8 bytes; got {payload_size}")
    body = bytes((i * 7 + 3) & 0xFF for i in range(8, payload_size))
    return [i.to_bytes(8, "little") + body for i in range(count)]


@dataclass(frozen=True)
class StreamEnd:
    """One side of a stream suite channel, in the shape `produce_stream` and
    `consume_stream` use.

    Producer side: ``put`` sends one payload and ``put_batch`` a list of them; for kaelix
    (``keyed``) they return ``(partition, sequence)`` and a list of those, and ``retry_on``
    is the exception a send that found no room raises under ``backpressure="error"`` (the
    loop retries it). Consumer side: ``get`` returns one item (waiting for it) and
    ``get_batch`` several (a `kaelix.MessageBatch` or a list); ``skipped_by`` is the kaelix
    consumer whose ``skipped`` count the loop reads under ``backpressure="drop_oldest"``,
    and ``get_awhile`` its poll that waits at most `IDLE_POLL_S` (None when nothing came).
    """

    put: Callable[[Any], Any] = _nothing
    put_batch: Callable[[Any], Any] = _nothing
    get: Callable[[], Any] = _nothing
    get_batch: Callable[[], Any] = _nothing
    get_awhile: Callable[[], Any] = _nothing
    keyed: bool = False
    partitions: int = 1
    retry_on: type[BaseException] | None = None
    skipped_by: Any = None
    close: Callable[[], object] = _nothing


@dataclass(frozen=True)
class StreamReceipt:
    """What a consumer saw in one run: when it received its first and its last message
    (``time.perf_counter_ns``), how many messages its first receipt accounted for
    (received, and for drop_oldest skipped), how many it received and how many it was told
    it skipped in all, and its last message: partition and sequence (kaelix; None for the
    peers) and payload."""

    first_ns: int
    last_ns: int
    first_accounted: int
    received: int
    skipped: int
    last_partition: int | None
    last_sequence: int | None
    last_payload: bytes


def kaelix_stream_end(
    role: Role, stream: Any, batch: int, *, close: Callable[[], object] | None = None
) -> StreamEnd:
    """A producer or a consumer (broadcast, from the earliest message) of a
    `kaelix.Stream`; the consumer's ``get_batch`` polls up to ``batch`` messages. The end's
    ``close`` closes the producer or consumer, or is ``close`` when given."""
    import kaelix

    if role == "producer":
        producer = stream.producer()
        retry_on = kaelix.BufferFull if stream.backpressure == "error" else None
        return StreamEnd(
            put=producer.send,
            put_batch=producer.send_batch,
            keyed=True,
            partitions=stream.partitions,
            retry_on=retry_on,
            close=producer.close if close is None else close,
        )
    consumer = stream.consumer()
    poll_batch = consumer.poll_batch

    def get_batch() -> Any:
        return poll_batch(batch)

    return StreamEnd(
        get=consumer.poll,
        get_awhile=functools.partial(consumer.poll, IDLE_POLL_S),
        get_batch=get_batch,
        keyed=True,
        partitions=stream.partitions,
        skipped_by=consumer if stream.backpressure == "drop_oldest" else None,
        close=consumer.close if close is None else close,
    )


def queue_stream_end(queue: Any, *, many: bool = False, closes: bool = False) -> StreamEnd:
    """A peer queue's calls: ``put``/``get`` one payload at a time, and a list of payloads
    as one item (``queue.Queue``, ``multiprocessing.Queue``) or, with ``many``, each
    payload its own message through ``put_many``/``get_many`` (faster-fifo). With
    ``closes``, the end's ``close`` closes the queue (a worker process's handle of a
    cross-process queue)."""
    return StreamEnd(
        put=queue.put,
        put_batch=queue.put_many if many else queue.put,
        get=queue.get,
        get_batch=queue.get_many if many else queue.get,
        close=queue.close if closes else _nothing,
    )


def _send_until_taken(put: Callable[[Any], Any], payload: bytes, full: type[BaseException]) -> Any:
    """Send ``payload`` until the channel takes it, yielding (the core, and the GIL to a
    consumer thread) after each refusal."""
    pause = time.sleep
    while True:
        try:
            return put(payload)
        except full:
            pause(0)


def produce_stream(end: StreamEnd, payloads: list[bytes], n: int, form: Form) -> dict[int, int]:
    """Send ``n`` messages: the first payload ``n`` times, one per call, or all of
    ``payloads`` per batch call (``n`` is a multiple of their count). For kaelix, the last
    sequence sent to each partition (what the consumer's last message must match): the
    last ``partitions`` sends cover every partition, round-robin (a batch goes whole to
    one partition, the next round-robin one); empty for the peers."""
    if form == "batch":
        put_batch = end.put_batch
        batches = n // len(payloads)
        tail_batches = min(batches, end.partitions) if end.keyed else 1
        for _ in itertools.repeat(None, batches - tail_batches):
            put_batch(payloads)
        batch_finals: dict[int, int] = {}
        for _ in range(tail_batches):
            receipts = put_batch(payloads)
            if end.keyed:
                for p, s in receipts:
                    batch_finals[int(p)] = int(s)
        return batch_finals
    put, payload, full = end.put, payloads[0], end.retry_on
    tail = min(n, end.partitions) if end.keyed else 0
    if full is None:
        for _ in itertools.repeat(None, n - tail):
            put(payload)
    else:
        for _ in itertools.repeat(None, n - tail):
            try:
                put(payload)
            except full:
                _send_until_taken(put, payload, full)
    finals: dict[int, int] = {}
    for _ in range(tail):
        partition, sequence = (
            put(payload) if full is None else _send_until_taken(put, payload, full)
        )
        finals[int(partition)] = int(sequence)
    return finals


def _last_item(item: Any, form: Form, keyed: bool) -> tuple[int | None, int | None, bytes]:
    if item is None or (form == "batch" and len(item) == 0):
        raise AssertionError("the channel closed before the consumer accounted for every message")
    if not keyed:
        return None, None, bytes(item if form == "one" else item[-1])
    if form == "one":
        return int(item.partition), int(item.sequence), bytes(item.payload)
    index = len(item) - 1
    return int(item.partition[index]), int(item.sequence[index]), bytes(item.payload(index))


def consume_stream(end: StreamEnd, n: int, form: Form) -> StreamReceipt:
    """Receive until every one of ``n`` messages is accounted for: ``n`` one-at-a-time
    receipts, batches until ``n`` messages, or (drop_oldest, ``end.skipped_by`` set)
    receipts until received plus skipped make ``n``. Stamps the first and the last receipt.
    A closed, drained kaelix stream (None, or an empty batch) ends the loop early, which
    the check then reports."""
    clock = time.perf_counter_ns
    if form == "batch":
        get_batch = end.get_batch
        batch = get_batch()
        first = clock()
        first_accounted = received = len(batch)
        while received < n:
            more = get_batch()
            if not len(more):
                break
            batch = more
            received += len(more)
        return StreamReceipt(
            first, clock(), first_accounted, received, 0, *_last_item(batch, form, end.keyed)
        )
    get, consumer = end.get, end.skipped_by
    if consumer is None:
        item = get()
        first = clock()
        for _ in itertools.repeat(None, n - 1):
            item = get()
        return StreamReceipt(first, clock(), 1, n, 0, *_last_item(item, form, end.keyed))
    # drop_oldest: the skipped count is read after every SKIPPED_EVERY messages and whenever
    # nothing came for IDLE_POLL_S, not after each poll. A consumer learns it was lapped
    # with a partition's worth of newer messages still to receive, so the count is current
    # well before the end; the idle look covers a ring that holds fewer messages than that.
    get_awhile = end.get_awhile
    base = consumer.skipped
    item = get()
    first = clock()
    skipped = consumer.skipped - base
    first_accounted = 1 + skipped
    received, idle = 1, 0
    while (left := n - received - skipped) > 0:
        chunk = min(left, SKIPPED_EVERY)
        for index in range(chunk):
            more = get_awhile()
            if more is None:
                received += index
                idle = 0 if index else idle + 1
                break
            item = more
        else:
            received += chunk
            idle = 0
        skipped = consumer.skipped - base
        if idle * IDLE_POLL_S > GIVE_UP_S:
            break
    last = clock()
    return StreamReceipt(
        first, last, first_accounted, received, skipped, *_last_item(item, form, end.keyed)
    )


def check_stream_receipt(
    receipt: StreamReceipt,
    finals: dict[int, int],
    n: int,
    last_payload: bytes,
    *,
    keyed: bool,
    drops: bool,
) -> None:
    """Raise AssertionError unless the consumer accounted for exactly ``n`` messages
    (received, plus skipped when the channel ``drops``; nothing skipped otherwise), its last
    payload is ``last_payload``, and for kaelix its last message is the last one sent to its
    partition (``finals``, from `produce_stream`)."""
    accounted = receipt.received + receipt.skipped
    if accounted != n or (receipt.skipped and not drops):
        raise AssertionError(
            f"the consumer accounted for {accounted:,} messages ({receipt.received:,} received, "
            f"{receipt.skipped:,} skipped); expected {n:,}" + ("" if drops else ", none skipped")
        )
    if receipt.last_payload != last_payload:
        raise AssertionError("the last payload received is not the last one sent")
    if keyed:
        partition, sequence = receipt.last_partition, receipt.last_sequence
        expected = finals.get(partition) if partition is not None else None
        if sequence is None or expected != sequence:
            raise AssertionError(
                f"the last message received (partition {partition}, sequence {sequence}) is "
                f"not the last one sent to its partition (sequence {expected})"
            )


@dataclass(frozen=True)
class StreamChannel:
    """What the stream suite's workers talk through: ``handle`` is a shared
    `kaelix.Stream`'s name (each worker opens it with `kaelix.Stream.open`), or the peer
    queue itself (handed to the children when they are spawned)."""

    kind: StreamKind
    handle: Any


def _open_stream_channel(role: Role, channel: StreamChannel, batch: int) -> StreamEnd:
    if channel.kind == "kaelix":
        import kaelix

        stream = kaelix.Stream.open(channel.handle)
        try:
            # detach: this process leaves (its producer or consumer closed) without closing
            # the stream for the others; the bench process owns it.
            return kaelix_stream_end(role, stream, batch, close=stream.detach)
        except BaseException:
            stream.detach()
            raise
    return queue_stream_end(channel.handle, many=channel.kind == "faster_fifo", closes=True)


def _run_stream_command(
    role: Role, end: StreamEnd, payloads: list[bytes], command: str, args: list[Any]
) -> object:
    if command != "throughput":
        raise ValueError(f"unknown command {command!r}")
    n, form = args
    if role == "producer":
        return produce_stream(end, payloads, n, form)
    return consume_stream(end, n, form)


def serve_stream(
    role: Role, conn: Connection, channel: StreamChannel, payload_size: int, batch: int
) -> None:
    """A stream suite worker: open its end of the channel, say ``ready``, then answer
    ``("throughput", n, form)`` with `produce_stream`'s finals (producer) or
    `consume_stream`'s receipt (consumer), until told to ``stop``. Every reply is
    ``("ok", result)`` or ``("error", traceback)``."""

    def start() -> tuple[Callable[[str, list[Any]], object], Callable[[], object]]:
        payloads = stream_payloads(payload_size, batch)
        end = _open_stream_channel(role, channel, batch)
        return functools.partial(_run_stream_command, role, end, payloads), end.close

    _serve_commands(conn, start)


class StreamPair(ProcessPair):
    """A producer and a consumer process around a stream suite channel, served by
    `serve_stream`; replies, timeouts and shutdown as `ProcessPair` (``close`` stops the
    workers, then runs ``on_close``, which closes the stream or the queue).

    ``drops`` says the channel may drop messages (kaelix ``backpressure="drop_oldest"``):
    its consumer counts what it skipped."""

    def __init__(
        self,
        channel: StreamChannel,
        payload_size: int,
        batch: int,
        *,
        drops: bool = False,
        on_close: Callable[[], object] | None = None,
    ) -> None:
        self.stream_channel = channel
        self.payloads = stream_payloads(payload_size, batch)
        self.drops = drops
        self._start(serve_stream, (channel, payload_size, batch), "kaelix-bench-stream", on_close)

    def _both_replies(self, timeout_s: float) -> dict[Role, Any]:
        """Both workers' replies, taken as they come, so a worker that fails is reported at
        once rather than after the other one's timeout."""
        from multiprocessing.connection import wait

        pending: dict[Any, Role] = {self._conns[role]: role for role in ROLES}
        replies: dict[Role, Any] = {}
        deadline = time.monotonic() + timeout_s
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                late = " and ".join(pending.values())
                raise WorkerError(f"the {late} process did not answer within {timeout_s:g} s")
            # A worker that exited closes its end of the pipe, which wait() reports as ready:
            # _reply then says it exited.
            for conn in wait(list(pending), min(remaining, _POLL_S)):
                role = pending.pop(conn)
                replies[role] = self._reply(role, remaining)
        return replies

    def throughput(self, n: int, form: Form) -> float:
        """One trial of ``n`` messages (one per call, or in batches of the pair's payloads),
        checked with `check_stream_receipt`; the nanoseconds ``n`` messages take at the rate
        the consumer saw (messages accounted for after its first receipt over the time from
        the first receipt to the last)."""
        self._send("consumer", "throughput", n, form)
        self._send("producer", "throughput", n, form)
        replies = self._both_replies(self._timeout(n))
        receipt: StreamReceipt = replies["consumer"]
        last_payload = self.payloads[0 if form == "one" else -1]
        keyed = self.stream_channel.kind == "kaelix"
        check_stream_receipt(
            receipt, replies["producer"], n, last_payload, keyed=keyed, drops=self.drops
        )
        timed = receipt.received + receipt.skipped - receipt.first_accounted
        if timed <= 0 or receipt.last_ns <= receipt.first_ns:
            raise ValueError(
                f"{n} messages arrived in one receipt: too few to time; send more per trial"
            )
        return float((receipt.last_ns - receipt.first_ns) * n / timed)

    def latency(self, n: int, period_ns: int, lead_ns: int = 20_000_000) -> npt.NDArray[np.int64]:
        """Not measured by the stream suite: its workers serve throughput trials only."""
        raise NotImplementedError("StreamPair runs throughput trials only")


_stream_names = itertools.count()


def open_stream_pair(
    kind: StreamKind,
    *,
    payload_size: int,
    batch: int,
    capacity: int,
    partitions: int = 1,
    policy: Policy = "block",
) -> StreamPair:
    """Create a channel of ``kind`` (kaelix: a shared `kaelix.Stream` of ``partitions``
    rings of ``capacity`` bytes with backpressure ``policy``; faster-fifo: a queue of
    ``capacity`` bytes; ``multiprocessing.Queue``: unbounded) and start a producer and a
    consumer around it."""
    if kind == "kaelix":
        import kaelix

        name = f"kaelix-bench-stream-{os.getpid()}-{next(_stream_names)}"
        stream = kaelix.Stream(
            name, partitions=partitions, capacity=capacity, backpressure=policy, shared=True
        )
        try:
            return StreamPair(
                StreamChannel("kaelix", name),
                payload_size,
                batch,
                drops=policy == "drop_oldest",
                on_close=stream.close,
            )
        except BaseException:
            stream.close()
            raise
    queue: Any
    if kind == "multiprocessing":
        import multiprocessing

        queue = multiprocessing.get_context(START_METHOD).Queue()
    else:
        import faster_fifo

        queue = faster_fifo.Queue(capacity, loads=bytes, dumps=frame_bytes)
    return StreamPair(StreamChannel(kind, queue), payload_size, batch, on_close=queue.close)


__all__ = [
    "ROLES",
    "START_METHOD",
    "Channel",
    "Frames",
    "Policy",
    "ProcessPair",
    "StreamChannel",
    "StreamEnd",
    "StreamKind",
    "StreamPair",
    "StreamReceipt",
    "WorkerError",
    "check_stream_receipt",
    "consume_stream",
    "kaelix_stream_end",
    "make_frames",
    "open_pair",
    "open_stream_pair",
    "produce_stream",
    "queue_stream_end",
    "serve",
    "serve_stream",
    "stream_payloads",
]


# ------------------------------------------------------------------------- the queue suite
#
# The queue suite (`kaelix.bench.suites.queue`) moves items through a `kaelix.Queue` and
# through the peer queues between P producer and M consumer processes (1->1, 4->1, 4->4),
# with the same loops for every contender, `produce_items` and `consume_items`, served by
# `serve_queue` and driven by a `QueueGroup`. Each consumer takes exactly its share of the
# items (so no end marker has to pass through the queue, and no consumer looks at an item
# to know whether to stop), sums a key of each (its first element) as a checksum, and
# stamps its first receipt and its last; the trial's time runs from the earliest first
# receipt to the latest last one. As above, kaelix and the peers are imported inside the
# functions that use them.

QueueKind = Literal["kaelix", "multiprocessing", "faster_fifo"]

QUEUE_ITEMS = 1024
"""Distinct items each producer has: it sends them in order, over and over (one per call,
or all of them in one batch call); a batched consumer takes at most this many per call."""

TUPLE_ITEM = 0
"""`QueueItems.size` of the small pickled object: a 5-tuple of ints, ``(j,) * 5``, as in
faster-fifo's own comparison."""


@dataclass(frozen=True)
class QueueItems:
    """What every producer sends: `QUEUE_ITEMS` distinct items, 5-tuples of ints
    (``size == TUPLE_ITEM``) or ``size``-byte ``bytes`` (at least 8: the index in the first
    eight, as `stream_payloads`). Distinct objects, so a pickling peer cannot send a repeated
    one as a memo reference when it pickles a list of them."""

    size: int

    def make(self) -> list[Any]:
        """The items, in the order a producer sends them."""
        if self.size == TUPLE_ITEM:
            return [(j,) * 5 for j in range(QUEUE_ITEMS)]
        return list(stream_payloads(self.size, QUEUE_ITEMS))


def item_checksum(items: Sequence[Any]) -> int:
    """The checksum a consumer keeps: the sum of each item's first element (the index for
    a tuple, the index's low byte for bytes)."""
    return sum(item[0] for item in items)


@dataclass(frozen=True)
class QueueChannel:
    """What the queue suite's workers talk through: the queue itself (a `kaelix.Queue`
    pickles as its shared-memory name; the peers' queues are handed over when the workers
    are spawned). ``batch_limit`` is the most items a batched consumer asks for at once."""

    kind: QueueKind
    handle: Any
    batch_limit: int = QUEUE_ITEMS


@dataclass(frozen=True)
class QueueEnd:
    """A queue's calls in the shape `produce_items` and `consume_items` use: ``put`` /
    ``get`` one item; ``put_batch`` a list of items and ``get_batch(limit)`` at most
    ``limit`` items as a list (``multiprocessing.Queue`` has no batch call: a batch is one
    list per ``put``, and ``get`` returns it whole, whatever the limit)."""

    put: Callable[[Any], Any]
    get: Callable[[], Any]
    put_batch: Callable[[list[Any]], Any]
    get_batch: Callable[[int], list[Any]]
    close: Callable[[], object]


@dataclass(frozen=True)
class QueueReceipt:
    """What one consumer saw in a trial: when it received its first and its last item
    (``time.perf_counter_ns``), how many items its first receipt held, how many it received
    in all, and the sum of their first elements."""

    first_ns: int
    last_ns: int
    first_count: int
    received: int
    checksum: int


def queue_end(channel: QueueChannel) -> QueueEnd:
    """This process's calls on ``channel`` (its ``close`` closes this process's handle)."""
    queue = channel.handle
    if channel.kind == "kaelix":
        get_many = queue.get_many

        def get_batch(limit: int) -> list[Any]:
            return get_many(limit)  # type: ignore[no-any-return]

        return QueueEnd(queue.put, queue.get, queue.put_many, get_batch, queue.close)
    if channel.kind == "multiprocessing":

        def get_list(limit: int) -> list[Any]:
            return queue.get()  # type: ignore[no-any-return]

        return QueueEnd(queue.put, queue.get, queue.put, get_list, queue.close)
    get_many = queue.get_many

    def get_fifo(limit: int) -> list[Any]:
        return get_many(max_messages_to_get=limit)  # type: ignore[no-any-return]

    return QueueEnd(queue.put, queue.get, queue.put_many, get_fifo, queue.close)


def produce_items(end: QueueEnd, items: list[Any], n: int, form: Form) -> int:
    """Send ``n`` items (a multiple of ``len(items)``): ``items`` in order, over and over,
    one per ``put``, or all of them per ``put_batch``."""
    rounds = n // len(items)
    if form == "one":
        put = end.put
        for _ in itertools.repeat(None, rounds):
            for item in items:
                put(item)
    else:
        put_batch = end.put_batch
        for _ in itertools.repeat(None, rounds):
            put_batch(items)
    return rounds * len(items)


def consume_items(end: QueueEnd, share: int, form: Form, limit: int) -> QueueReceipt:
    """Receive exactly ``share`` items, one per ``get`` or at most ``limit`` (and never more
    than are still to come) per ``get_batch``, summing their first elements; stamp the first
    receipt and the last."""
    import operator

    clock = time.perf_counter_ns
    if form == "one":
        get = end.get
        checksum = get()[0]
        first = clock()
        for _ in itertools.repeat(None, share - 1):
            checksum += get()[0]
        return QueueReceipt(first, clock(), 1, share, checksum)
    get_batch, key = end.get_batch, operator.itemgetter(0)
    got = get_batch(min(limit, share))
    first = clock()
    first_count = received = len(got)
    checksum = sum(map(key, got))
    while received < share:
        got = get_batch(min(limit, share - received))
        received += len(got)
        checksum += sum(map(key, got))
    return QueueReceipt(first, clock(), first_count, received, checksum)


def _run_queue_command(
    role: Role, end: QueueEnd, items: list[Any], limit: int, command: str, args: list[Any]
) -> object:
    if command != "throughput":
        raise ValueError(f"unknown command {command!r}")
    n, form = args
    if role == "producer":
        return produce_items(end, items, n, form)
    return consume_items(end, n, form, limit)


def serve_queue(role: Role, conn: Connection, channel: QueueChannel, spec: QueueItems) -> None:
    """A queue suite worker: open its end of the queue, say ``ready``, then answer
    ``("throughput", n, form)`` with the count `produce_items` sent (a producer) or
    `consume_items`'s receipt (a consumer, ``n`` its share), until told to ``stop``. Every
    reply is ``("ok", result)`` or ``("error", traceback)``."""

    def start() -> tuple[Callable[[str, list[Any]], object], Callable[[], object]]:
        items = spec.make()
        end = queue_end(channel)
        run = functools.partial(_run_queue_command, role, end, items, channel.batch_limit)
        return run, end.close

    _serve_commands(conn, start)


class QueueGroup:
    """``producers`` producer and ``consumers`` consumer processes around a queue, served by
    `serve_queue`, ready for trials; the bench process keeps its own handle of the queue
    (``channel.handle``) to check it is empty after each trial.

    The first worker is spawned alone (its import of kaelix runs any pending build of an
    editable install), the others together once it is ready. `close` stops them
    (terminating a worker that does not stop), then runs ``on_close``. Use it as a context
    manager or call `close`.
    """

    def __init__(
        self,
        channel: QueueChannel,
        spec: QueueItems,
        producers: int,
        consumers: int,
        *,
        on_close: Callable[[], object] | None = None,
    ) -> None:
        import multiprocessing

        if producers < 1 or consumers < 1:
            raise ValueError(f"need producers and consumers; got {producers}->{consumers}")
        self.channel = channel
        self.spec = spec
        self.items = spec.make()
        self.producers = producers
        self.consumers = consumers
        self._on_close = on_close
        self._workers: dict[str, tuple[BaseProcess, Connection]] = {}
        context = multiprocessing.get_context(START_METHOD)
        names = [f"consumer-{i}" for i in range(consumers)]
        names += [f"producer-{i}" for i in range(producers)]
        try:
            for batch in (names[:1], names[1:]):
                for name in batch:
                    ours, theirs = context.Pipe()
                    role = "consumer" if name.startswith("consumer") else "producer"
                    process = context.Process(
                        target=serve_queue,
                        args=(role, theirs, channel, spec),
                        name=f"kaelix-bench-queue-{name}",
                        daemon=True,
                    )
                    process.start()
                    theirs.close()
                    self._workers[name] = (process, ours)
                self._replies(batch, START_TIMEOUT_S, expect="ready")
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> QueueGroup:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _reply(self, name: str, expect: str) -> Any:
        process, conn = self._workers[name]
        try:
            status, value = conn.recv()
        except EOFError:
            raise WorkerError(f"the {name} process exited (status {process.exitcode})") from None
        if status == "error":
            raise WorkerError(f"the {name} process failed:\n{value}")
        if status != expect:
            raise WorkerError(f"the {name} process answered {status!r}, expected {expect!r}")
        return value

    def _replies(
        self, names: Sequence[str], timeout_s: float, expect: str = "ok"
    ) -> dict[str, Any]:
        """The replies of the workers ``names``, taken as they come, so a worker that fails
        is reported at once rather than after the others' timeout."""
        from multiprocessing.connection import wait

        pending = {self._workers[name][1]: name for name in names}
        replies: dict[str, Any] = {}
        deadline = time.monotonic() + timeout_s
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                late = ", ".join(sorted(pending.values()))
                raise WorkerError(f"no answer within {timeout_s:g} s from: {late}")
            # A worker that exited closes its end of the pipe, which wait() reports as ready.
            for conn in wait(list(pending), min(remaining, _POLL_S)):
                name = pending.pop(conn)  # type: ignore[call-overload]
                replies[name] = self._reply(name, expect)
        return replies

    def expected_checksum(self, n: int) -> int:
        """The sum of the first elements of ``n`` items sent as `produce_items` sends them."""
        return n // len(self.items) * item_checksum(self.items)

    def throughput(self, n: int, form: Form) -> float:
        """One trial of ``n`` items (a multiple of ``len(items)`` times producers and
        consumers): each producer sends ``n / producers``, each consumer takes
        ``n / consumers``; checks that the consumers got ``n`` items with the expected
        checksum and the queue is left empty. Returns the nanoseconds ``n`` items take at the
        rate the consumers saw together: the items after the earliest first receipt over the
        time from it to the latest last receipt."""
        unit = len(self.items) * self.producers * self.consumers
        if n <= 0 or n % unit:
            raise ValueError(f"a trial moves a positive multiple of {unit} items; got {n}")
        consumers = [name for name in self._workers if name.startswith("consumer")]
        producers = [name for name in self._workers if name.startswith("producer")]
        for name in consumers:
            self._workers[name][1].send(("throughput", n // self.consumers, form))
        for name in producers:
            self._workers[name][1].send(("throughput", n // self.producers, form))
        replies = self._replies([*consumers, *producers], 60.0 + n * 1e-4)
        receipts: list[QueueReceipt] = [replies[name] for name in consumers]
        sent = sum(replies[name] for name in producers)
        received = sum(receipt.received for receipt in receipts)
        if sent != n or received != n:
            raise AssertionError(f"{sent:,} items sent and {received:,} received; expected {n:,}")
        checksum = sum(receipt.checksum for receipt in receipts)
        if checksum != self.expected_checksum(n):
            raise AssertionError(
                f"the items received sum to {checksum:,}; expected {self.expected_checksum(n):,}"
            )
        if not self.channel.handle.empty():
            raise AssertionError("items are left in the queue after every consumer had its share")
        earliest = min(receipts, key=lambda receipt: receipt.first_ns)
        last_ns = max(receipt.last_ns for receipt in receipts)
        timed = n - earliest.first_count
        if timed <= 0 or last_ns <= earliest.first_ns:
            raise ValueError(f"{n} items arrived in one receipt: too few to time; send more")
        return float((last_ns - earliest.first_ns) * n / timed)

    def close(self) -> None:
        """Stop every worker (terminate one that does not stop within 5 s), then run
        ``on_close``. Safe to call more than once."""
        try:
            _stop_workers(list(self._workers.values()))
        finally:
            self._workers.clear()
            on_close, self._on_close = self._on_close, None
            if on_close is not None:
                on_close()


def open_queue_group(
    kind: QueueKind, spec: QueueItems, producers: int, consumers: int, *, capacity: int
) -> QueueGroup:
    """Create a queue of ``kind`` holding ``capacity`` bytes (``kaelix.Queue(capacity_bytes=
    capacity)``, ``faster_fifo.Queue(capacity)``; a ``multiprocessing.Queue`` is unbounded)
    and start ``producers`` producers and ``consumers`` consumers around it. faster-fifo
    gets its fastest fair serializer: ``pickle.dumps`` / ``pickle.loads`` for tuples (its
    default methods make a ``ForkingPickler`` and copy its buffer), and the bytes as they are
    for bytes (``multiprocessing.Queue`` pickles everything; kaelix puts ``bytes`` as they
    are on its own)."""
    queue: Any
    if kind == "kaelix":
        import kaelix

        queue = kaelix.Queue(capacity_bytes=capacity)
    elif kind == "multiprocessing":
        import multiprocessing

        queue = multiprocessing.get_context(START_METHOD).Queue()
    else:
        import pickle

        import faster_fifo

        if spec.size == TUPLE_ITEM:
            queue = faster_fifo.Queue(capacity, loads=pickle.loads, dumps=pickle.dumps)
        else:
            queue = faster_fifo.Queue(capacity, loads=bytes, dumps=frame_bytes)
    return QueueGroup(QueueChannel(kind, queue), spec, producers, consumers, on_close=queue.close)


__all__ += [
    "QUEUE_ITEMS",
    "TUPLE_ITEM",
    "QueueChannel",
    "QueueEnd",
    "QueueGroup",
    "QueueItems",
    "QueueKind",
    "QueueReceipt",
    "consume_items",
    "item_checksum",
    "open_queue_group",
    "produce_items",
    "queue_end",
    "serve_queue",
]
