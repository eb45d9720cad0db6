"""Cross-process runs for the ring suite: one producer process and one consumer process
around one channel (a `kaelix.SharedRing`, a `multiprocessing.Queue` or a
`faster_fifo.Queue`), driven by the bench process over a pipe to each.

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


def serve(role: Role, conn: Connection, channel: Channel, spec: Frames) -> None:
    """A worker's main loop: open the channel, say ``ready``, then answer commands
    (``throughput``, ``latency``, ``stop``) until told to stop. Every reply is
    ``("ok", result)`` or ``("error", traceback)``."""
    try:
        frames = make_frames(spec)
        endpoint = _open(channel, frames)
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        return
    conn.send(("ready", os.getpid()))
    try:
        while True:
            command, *args = conn.recv()
            if command == "stop":
                endpoint.close()
                conn.send(("ok", None))
                return
            gc.disable()  # as in the bench's own timed loops
            try:
                result: object
                if command == "throughput":
                    n, form = args
                    if role == "producer":
                        result = _produce(endpoint, frames, n, form)
                    else:
                        result = _consume(endpoint, n, form)
                elif command == "latency":
                    n, t0_ns, period_ns = args
                    if role == "producer":
                        result = _send_paced(endpoint, frames[:n], t0_ns, period_ns)
                    elif channel.kind == "clock":
                        result = _observe_schedule(n, t0_ns, period_ns)
                    else:
                        result = _stamp(endpoint, n, t0_ns, period_ns)
                else:
                    raise ValueError(f"unknown command {command!r}")
            except BaseException:
                conn.send(("error", traceback.format_exc()))
                return
            finally:
                gc.enable()
            conn.send(("ok", result))
    except (EOFError, OSError):  # the bench went away: nothing left to answer
        return


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
        import multiprocessing

        context = multiprocessing.get_context(START_METHOD)
        self.channel = channel
        self.spec = spec
        self.expected = make_frames(spec)
        self._on_close = on_close
        self._processes: dict[Role, BaseProcess] = {}
        self._conns: dict[Role, Connection] = {}
        try:
            # One after the other: each child imports kaelix, which in an editable install
            # checks (and may run) the extension's build; two at once would share a build tree.
            for role in ROLES:
                ours, theirs = context.Pipe()
                process = context.Process(
                    target=serve,
                    args=(role, theirs, channel, spec),
                    name=f"kaelix-bench-{role}",
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
            for role, conn in list(self._conns.items()):
                process = self._processes[role]
                if process.is_alive():
                    with contextlib.suppress(OSError):
                        conn.send(("stop",))
            for process in list(self._processes.values()):
                process.join(5.0)
                if process.is_alive():
                    process.terminate()
                    process.join(5.0)
                if process.is_alive():  # pragma: no cover - a worker that ignores SIGTERM
                    process.kill()
                    process.join()
                process.close()
            for conn in self._conns.values():
                conn.close()
        finally:
            self._processes.clear()
            self._conns.clear()
            on_close, self._on_close = self._on_close, None
            if on_close is not None:
                on_close()


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


__all__ = [
    "ROLES",
    "START_METHOD",
    "Channel",
    "Frames",
    "ProcessPair",
    "WorkerError",
    "make_frames",
    "open_pair",
    "serve",
]
