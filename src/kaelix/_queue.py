"""kaelix.Queue and kaelix.JoinableQueue: drop-ins for multiprocessing's, on a shared ring.

A queue is a shared-memory ring in queue mode (``kaelix._ring.QueueCore``): every item is one
frame, and each frame goes to exactly one consumer, which claims it with a compare-and-swap
on the shared read position. There is no feeder thread, no pipe and no lock a dead process
could hold: ``put`` serializes and copies the item into shared memory before it returns,
``get`` copies it out and deserializes it. See docs/queue.md.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pickle
import secrets
import struct
import sys
import threading
import traceback
import types
from collections.abc import Iterable
from typing import Any, Final

from kaelix._ring import QueueCore, RingEmpty, RingFull, _item_spans
from kaelix.errors import QueueEmpty, QueueFull

__all__ = ["JoinableQueue", "Queue"]

# The kind of an item, in its frame's partition field.
_RAW: Final = 0  # the payload is the bytes that were put
_SERIAL: Final = 1  # the payload is serializer.dumps(obj)
_PICKLE5: Final = 2  # u32 n, n + 1 u64 lengths, the pickle, then its n out-of-band buffers
_SPILL: Final = 3  # u32 kind, then the name of a segment holding that kind's payload

_DEFAULT_CAPACITY: Final = 1 << 22
# A pickle larger than this is made again with out-of-band buffers, so the large buffers
# inside it are copied once, straight into shared memory, not into the pickle first.
_IN_BAND_MAX: Final = 1 << 16
_QUEUE_SPIN_NS: Final = 2_000
_dumps = pickle.dumps
_loads = pickle.loads
_SLOTS: Final = 256  # producer and consumer processes attached at once


def _serializer_state(serializer: Any) -> Any:
    if serializer is pickle:
        return None
    if isinstance(serializer, types.ModuleType):
        return ("module", serializer.__name__)
    return ("object", serializer)


def _serializer_from_state(state: Any) -> Any:
    if state is None:
        return pickle
    kind, value = state
    return importlib.import_module(value) if kind == "module" else value


def _unlink(name: str) -> None:
    """Removes a segment's name and forgets it in multiprocessing's resource tracker (which
    removes the names this process family registered and did not forget, at its end)."""
    from multiprocessing import resource_tracker

    with contextlib.suppress(FileNotFoundError):
        os.unlink(f"/dev/shm/{name}")
    with contextlib.suppress(Exception):
        resource_tracker.unregister(f"/{name}", "shared_memory")


def _remove_queue(name: str, core: Any) -> None:
    """The creator's cleanup: the queue's name, and the large items nobody took when no
    other process is attached any more (else they stay for it; the resource tracker removes
    what is left when the process family ends)."""
    _unlink(name)
    if core._others_attached():
        return
    with contextlib.suppress(OSError):
        for entry in os.listdir("/dev/shm"):
            if entry.startswith(name + ".big."):
                _unlink(entry)


def _spill(queue_name: str, parts: tuple[Any, ...], kind: int) -> tuple[bytes, ...]:
    """Writes a large item's payload to a segment of its own and returns the small payload
    that names it. The segment goes when the item is taken; if it never is, the resource
    tracker of the process that wrote it removes it when that process family ends (it
    outlives the queue's own name, so that processes still attached can take it)."""
    from multiprocessing import resource_tracker

    name = f"{queue_name}.big.{secrets.token_hex(8)}"
    fd = os.open(f"/dev/shm/{name}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        resource_tracker.register(f"/{name}", "shared_memory")
        with os.fdopen(fd, "wb", closefd=False) as f:
            for part in parts:
                f.write(part)
    finally:
        os.close(fd)
    return (struct.pack("<I", kind), name.encode())


def _spilled_name(view: memoryview) -> str:
    return bytes(view[4:]).decode()


def _unspill(view: memoryview) -> tuple[int, bytearray]:
    (kind,) = struct.unpack_from("<I", view)
    name = _spilled_name(view)
    with open(f"/dev/shm/{name}", "rb") as f:
        _unlink(name)
        size = os.fstat(f.fileno()).st_size
        buf = bytearray(size)
        f.readinto(buf)
    return kind, buf


def _timeout(block: bool, timeout: float | None) -> float | None:
    """multiprocessing's rules: without block the timeout is ignored; a negative one is 0."""
    if not block:
        return 0.0
    if timeout is None:
        return None
    return max(0.0, float(timeout))


class Queue:
    """A process-safe FIFO queue with the interface and semantics of
    ``multiprocessing.Queue``, several times faster.

    Args:
        maxsize: at most this many items waiting (0 or less: no item limit).
        capacity_bytes: bytes of shared memory for the items waiting (rounded up to a
            power of two); an item takes its serialized size plus 56 bytes, rounded up to 8.
            An item larger than a quarter of it is written to a shared-memory segment of its
            own, and only that segment's name goes through the ring.
        serializer: an object with ``dumps(obj)`` and ``loads(data)``; the ``pickle``
            module (the default) is used with protocol 5 and out-of-band buffers, so large
            buffers (numpy arrays, ``PickleBuffer``) are copied once into shared memory and
            once out, never through a pipe.

    Pass it to child processes as ``Process`` arguments or through a pool's initializer
    (any start method): it pickles as the name of its shared-memory segment. The process
    that made it removes the segment's name when the queue is garbage-collected or the
    process exits (and multiprocessing's resource tracker does if it is killed); processes
    attached by then keep using it.
    """

    _joinable = False

    def __init__(
        self,
        maxsize: int = 0,
        *,
        capacity_bytes: int = _DEFAULT_CAPACITY,
        serializer: Any = pickle,
    ) -> None:
        if not isinstance(maxsize, int) or isinstance(maxsize, bool):
            raise TypeError(f"maxsize must be an int, got {type(maxsize).__name__}")
        if not (hasattr(serializer, "dumps") and hasattr(serializer, "loads")):
            raise TypeError("serializer must have dumps(obj) and loads(data)")
        name = f"kxq.{os.getpid()}.{secrets.token_hex(6)}"
        core = QueueCore._create(
            name, capacity_bytes, _SLOTS, _SLOTS, "sleep", False, True, max(0, maxsize)
        )
        # If this process is killed, multiprocessing's resource tracker removes the name.
        from multiprocessing import resource_tracker

        resource_tracker.register(f"/{name}", "shared_memory")
        # Runs when the queue is garbage-collected, at exit, and at the end of a
        # multiprocessing child (which skips atexit).
        from multiprocessing import util

        self._finalizer: Any = util.Finalize(
            self, _remove_queue, args=(name, core), exitpriority=10
        )
        self._setup(core, name, max(0, maxsize), serializer)

    def _setup(self, core: Any, name: str, maxsize: int, serializer: Any) -> None:
        # Queue processes often outnumber the cores (4 producers and 4 consumers on two):
        # a waiting get spins only briefly before it sleeps, leaving the core to the
        # process that will make progress (4->4 went from 7.9 to 5.1 us per 4 KiB item).
        core._set_spin(_QUEUE_SPIN_NS)
        self._core = core
        self._name = name
        self._maxsize = maxsize
        self._serializer = serializer
        self._fast_pickle = serializer is pickle
        self._loads = _loads if serializer is pickle else serializer.loads
        self._closed = False
        self._pid = os.getpid()
        self._dropped = 0
        self._lock = threading.Lock()
        # Items larger than a quarter of the ring go through a segment of their own, so that
        # any size works (as with multiprocessing.Queue) without a huge ring.
        self._spill_over = core.capacity // 4
        self._small = min(self._spill_over, _IN_BAND_MAX)

    # -- pickling: as the segment's name --

    def __getstate__(self) -> dict[str, Any]:
        return {
            "name": self._name,
            "maxsize": self._maxsize,
            "serializer": _serializer_state(self._serializer),
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        core = QueueCore._attach(state["name"], "sleep", "earliest")
        self._finalizer = None
        self._setup(
            core, state["name"], state["maxsize"], _serializer_from_state(state["serializer"])
        )

    # -- serialization --

    def _dump(self, obj: Any) -> tuple[tuple[Any, ...], int]:
        if type(obj) is bytes:
            return (obj,), _RAW
        if not self._fast_pickle:
            return (self._serializer.dumps(obj),), _SERIAL
        data = _dumps(obj, 5)
        if len(data) <= _IN_BAND_MAX:
            return (data,), _SERIAL
        buffers: list[pickle.PickleBuffer] = []
        data = _dumps(obj, protocol=5, buffer_callback=buffers.append)
        if not buffers:
            return (data,), _SERIAL
        raws = [buffer.raw() for buffer in buffers]
        lengths = struct.pack(
            f"<I{len(raws) + 1}Q", len(raws), len(data), *(r.nbytes for r in raws)
        )
        return (lengths, data, *raws), _PICKLE5

    def _put(self, parts: tuple[Any, ...], kind: int, block: bool, wait: float | None) -> None:
        if len(parts) == 1 and type(parts[0]) is bytes:
            size = len(parts[0])
        else:
            size = sum(memoryview(part).nbytes for part in parts)
        if size > self._spill_over:
            parts, kind = _spill(self._name, parts, kind), _SPILL
        self._core._put_parts(parts, kind, block, wait)

    def _load(self, buf: bytearray, kind: int, start: int, end: int) -> Any:
        view = memoryview(buf)[start:end]
        if kind == _SPILL:
            kind, own = _unspill(view)
            return self._load(own, kind, 0, len(own))
        if kind == _RAW:
            return bytes(view)
        if kind == _SERIAL:
            return self._serializer.loads(view)
        if kind == _PICKLE5:
            (n,) = struct.unpack_from("<I", view)
            sizes = struct.unpack_from(f"<{n + 1}Q", view, 4)
            at = 4 + 8 * (n + 1)
            main = view[at : at + sizes[0]]
            at += sizes[0]
            parts = []
            for size in sizes[1:]:
                parts.append(view[at : at + size])
                at += size
            return pickle.loads(main, buffers=parts)
        raise ValueError(f"queue item of unknown kind {kind}")

    @staticmethod
    def _on_queue_feeder_error(e: BaseException, obj: Any) -> None:
        """Called (as multiprocessing's feeder thread does) when ``obj`` cannot be
        serialized; the object is dropped. Prints the traceback; override to change that."""
        traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)

    # -- the multiprocessing.Queue interface --

    def _check_closed(self) -> None:
        if self._closed:
            raise ValueError(f"Queue {self!r} is closed")

    def put(self, obj: Any, block: bool = True, timeout: float | None = None) -> None:
        """Puts obj in the queue, waiting up to timeout seconds for room when block (None:
        as long as it takes).

        Raises:
            queue.Full: no room (``QueueFull``).
            ValueError: the queue was closed in this process, or the item can never fit.
            PeerGone: the queue is full and every consumer process died.
        """
        if self._closed:
            raise ValueError(f"Queue {self!r} is closed")
        wait = None if block and timeout is None else _timeout(block, timeout)
        try:
            if type(obj) is bytes:
                data = obj
                kind = _RAW
            elif self._fast_pickle:
                data = _dumps(obj, 5)
                kind = _SERIAL
            else:
                data = b""
                kind = -1
        except Exception as exc:
            self._on_queue_feeder_error(exc, obj)
            return
        try:
            if kind >= 0 and len(data) <= self._small:
                self._core._put_bytes(data, kind, block, wait)  # the common case, compiled
                return
            try:
                parts, kind = self._dump(obj)
            except Exception as exc:
                self._on_queue_feeder_error(exc, obj)
                return
            self._put(parts, kind, block, wait)
        except RingFull:
            raise QueueFull(f"Queue {self!r} is full") from None

    def put_nowait(self, obj: Any) -> None:
        """``put(obj, False)``."""
        self.put(obj, False)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Removes and returns an item, waiting up to timeout seconds for one when block.

        Raises:
            queue.Empty: nothing came (``QueueEmpty``).
            ValueError: the queue was closed in this process.
            PeerGone: the queue is empty and every producer process died.
        """
        if self._closed:
            raise ValueError(f"Queue {self!r} is closed")
        wait = None if block and timeout is None else _timeout(block, timeout)
        try:
            simple, value = self._core._get_loaded(block, wait, self._loads, _SERIAL, _RAW)
        except RingEmpty:
            raise QueueEmpty(f"Queue {self!r} is empty") from None
        if simple:
            return value
        return self._load(*value)

    def get_nowait(self) -> Any:
        """``get(False)``."""
        return self.get(False)

    def qsize(self) -> int:
        """Items waiting now (exact when no put or get is under way in another process)."""
        self._check_closed()
        return int(self._core._items())

    def empty(self) -> bool:
        """True when no item is waiting."""
        return self.qsize() == 0

    def full(self) -> bool:
        """True when a put could not go in now without waiting (maxsize items waiting)."""
        self._check_closed()
        free = self._core._items_free()
        if free is not None:
            return bool(free <= 0)
        return bool(self._core.free_bytes < 64)

    def close(self) -> None:
        """This process will put and get no more; later calls raise ValueError. Items it
        put stay in the queue (they are already in shared memory). Harmless twice."""
        self._closed = True

    def join_thread(self) -> None:
        """Only after close(), as multiprocessing's. There is no feeder thread: it returns at
        once (every put already delivered its item to shared memory)."""
        assert self._closed, f"Queue {self!r} not closed"

    def cancel_join_thread(self) -> None:
        """Nothing to cancel: there is no feeder thread."""

    # -- beyond multiprocessing.Queue --

    def _put_each(self, items: Iterable[Any], raw: bool, block: bool, timeout: float | None) -> int:
        self._check_closed()
        wait = _timeout(block, timeout)
        small: list[bytes] = []  # consecutive small items of one kind, not yet put
        small_kind = _RAW
        sent = 0

        def flush() -> None:
            nonlocal sent
            if small:
                try:
                    sent += self._core._put_many_bytes(small, small_kind, block, wait)
                except RingFull as exc:
                    sent += getattr(exc, "sent", 0)
                    raise QueueFull(f"Queue {self!r} is full after {sent} items", sent) from None
                small.clear()

        for obj in items:
            if raw:
                parts: tuple[Any, ...] = (obj if type(obj) is bytes else bytes(obj),)
                kind = _RAW
            else:
                try:
                    parts, kind = self._dump(obj)
                except Exception as exc:
                    self._on_queue_feeder_error(exc, obj)
                    continue
            if len(parts) == 1 and type(parts[0]) is bytes and len(parts[0]) <= self._small:
                if small and kind != small_kind:
                    flush()
                small_kind = kind
                small.append(parts[0])  # the common case: one claim for many
                continue
            flush()
            try:
                self._put(parts, kind, block, wait)
            except RingFull:
                raise QueueFull(f"Queue {self!r} is full after {sent} items", sent) from None
            sent += 1
        flush()
        return sent

    def put_many(
        self, items: Iterable[Any], block: bool = True, timeout: float | None = None
    ) -> int:
        """Puts every item in order; returns how many (all of them).

        Raises:
            queue.Full: no room before the timeout; ``exc.sent`` items went in.
        """
        return self._put_each(items, False, block, timeout)

    def get_many(
        self, max_messages: int = 1024, block: bool = True, timeout: float | None = None
    ) -> list[Any]:
        """Removes and returns up to max_messages items, waiting up to timeout seconds for
        the first when block.

        Raises:
            queue.Empty: nothing came.
        """
        self._check_closed()
        try:
            buf, count = self._core._take_items(max_messages, block, _timeout(block, timeout))
        except RingEmpty:
            raise QueueEmpty(f"Queue {self!r} is empty") from None
        view = memoryview(buf)
        load = self._load
        if self._fast_pickle:
            return [
                _loads(view[start:end]) if kind == _SERIAL else load(buf, kind, start, end)
                for kind, start, end in _item_spans(buf, count)
            ]
        return [load(buf, kind, start, end) for kind, start, end in _item_spans(buf, count)]

    def put_bytes(self, data: Any, block: bool = True, timeout: float | None = None) -> None:
        """Puts bytes-like data as it is, with no serialization; ``get`` returns it as bytes."""
        self._check_closed()
        try:
            self._put((data,), _RAW, block, _timeout(block, timeout))
        except RingFull:
            raise QueueFull(f"Queue {self!r} is full") from None

    def get_bytes(self, block: bool = True, timeout: float | None = None) -> bytes:
        """Removes an item and returns its bytes as they are in the queue, with no
        deserialization (for an item put with ``put``, its serialized form)."""
        self._check_closed()
        try:
            buf, _ = self._core._take_items(1, block, _timeout(block, timeout))
        except RingEmpty:
            raise QueueEmpty(f"Queue {self!r} is empty") from None
        ((kind, start, end),) = _item_spans(buf, 1)
        if kind == _SPILL:
            kind, own = _unspill(memoryview(buf)[start:end])
            buf, start, end = own, 0, len(own)
        if kind == _PICKLE5:  # its serialized form: an ordinary pickle, buffers in band
            return _dumps(self._load(buf, kind, start, end), 5)
        return bytes(memoryview(buf)[start:end])

    def put_bytes_many(
        self, items: Iterable[Any], block: bool = True, timeout: float | None = None
    ) -> int:
        """``put_bytes`` for each item, in order; returns how many (all of them).

        Raises:
            queue.Full: no room before the timeout; ``exc.sent`` items went in.
        """
        return self._put_each(items, True, block, timeout)

    def get_bytes_many(
        self, max_messages: int = 1024, block: bool = True, timeout: float | None = None
    ) -> list[bytes]:
        """``get_bytes`` for up to max_messages items, waiting up to timeout seconds for
        the first when block."""
        self._check_closed()
        try:
            buf, count = self._core._take_items(max_messages, block, _timeout(block, timeout))
        except RingEmpty:
            raise QueueEmpty(f"Queue {self!r} is empty") from None
        out = []
        for kind, start, end in _item_spans(buf, count):
            if kind == _SPILL:
                kind, own = _unspill(memoryview(buf)[start:end])
                if kind == _PICKLE5:
                    out.append(_dumps(self._load(own, kind, 0, len(own)), 5))
                else:
                    out.append(bytes(own))
            elif kind == _PICKLE5:
                out.append(_dumps(self._load(buf, kind, start, end), 5))
            else:
                out.append(bytes(memoryview(buf)[start:end]))
        return out

    def get_latest(self, block: bool = True, timeout: float | None = None) -> Any:
        """Removes every item waiting and returns the newest; the older ones are dropped
        (counted in ``dropped``). Waits up to timeout for one when the queue is empty."""
        self._check_closed()
        try:
            buf, count = self._core._take_items(1 << 62, block, _timeout(block, timeout))
        except RingEmpty:
            raise QueueEmpty(f"Queue {self!r} is empty") from None
        spans = _item_spans(buf, count)
        self._dropped += count - 1
        for kind, start, end in spans[:-1]:
            if kind == _SPILL:  # a dropped large item: its segment goes too
                _unlink(_spilled_name(memoryview(buf)[start:end]))
        kind, start, end = spans[-1]
        return self._load(buf, kind, start, end)

    @property
    def dropped(self) -> int:
        """Items this process dropped through ``get_latest``."""
        return self._dropped

    @property
    def maxsize(self) -> int:
        """The item limit (0: none)."""
        return self._maxsize

    def __enter__(self) -> Queue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<{type(self).__name__} {self._name!r} maxsize={self._maxsize}{state}>"


class JoinableQueue(Queue):
    """``Queue`` with ``task_done()`` and ``join()``, as ``multiprocessing.JoinableQueue``:
    every item put counts as an unfinished task until a consumer calls ``task_done()``."""

    _joinable = True

    def task_done(self) -> None:
        """Marks one item taken with get as processed.

        Raises:
            ValueError: called more times than items were put.
        """
        self._check_closed()
        self._core._task_done()

    def join(self) -> None:
        """Blocks until every item ever put has been marked done with ``task_done()``."""
        self._core._join_tasks(None)
