"""Stream, Producer and Consumer: partitions, keys, backpressure, groups, asyncio.

Pure Python over the compiled rings. A stream is a fixed number of partitions; each is one
ring of kaelix frames (``kaelix._ring``): an in-process ring with one reader per consumer,
or, for a shared stream, a ``SharedRing`` segment per partition plus a small metadata
segment. Every ring of a stream also rings the stream's doorbell when it publishes, so a
consumer of many partitions sleeps on one futex (``_wait_any``). See docs/streams.md.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import fcntl
import hashlib
import itertools
import mmap
import os
import re
import struct
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, Literal, TypeAlias, overload

from kaelix._batch import MessageBatch
from kaelix._codec import (
    MAX_FRAME_SIZE_LIMIT,
    Message,
    crc32c,
    decode,
    encode,
)
from kaelix._ring import Doorbell, ProducerCore, RingCore, RingReader, _wait_any
from kaelix._rings import SharedRing, _BatchOps
from kaelix.errors import (
    BufferFull,
    FrameTooLarge,
    PeerGone,
    RingClosed,
    RingError,
    RingFull,
    SendTimeout,
    StreamClosed,
    StreamError,
    StreamExists,
    StreamNotFound,
)

__all__ = ["Consumer", "Producer", "Receipts", "Stream", "partition_for"]

Backpressure: TypeAlias = Literal["block", "drop_oldest", "error"]
Start: TypeAlias = Literal["earliest", "latest"]
ReaderRow: TypeAlias = tuple[int, int, int, int, int, int]
"""A ring's ``_readers()`` row: slot, pid, messages and bytes received, skipped, waiting."""

_POLICIES: Final = ("block", "drop_oldest", "error")
_NAME_RULE: Final = re.compile(r"[A-Za-z0-9._-]{1,255}\Z")
_MAX_PARTITIONS: Final = 1024
_DEFAULT_CAPACITY: Final = 1 << 20
_UNSET: Any = object()

# The shared metadata segment: one page. Offsets in bytes; see docs/streams.md.
_META_MAGIC: Final = b"KLXSTRM1"
_META_VERSION: Final = 1
_META_SIZE: Final = 4096
_META: Final = struct.Struct("<8sIIQIIII")  # magic version partitions capacity policy
#                                             max_producers max_consumers name_length
_META_CLOSED: Final = 48  # u32, set by close()
_META_NEXT_ID: Final = 56  # u64, the next default producer id (under flock)
_META_BELL: Final = 64  # the doorbell: u32 seq, u32 waiters
_META_NAME: Final = 128  # the stream's name, UTF-8


def partition_for(key: bytes | bytearray | memoryview | str, partitions: int) -> int:
    """The partition a key goes to: ``crc32c(key) % partitions``, with ``str`` keys encoded
    as UTF-8. The same in every process, run, machine and version of Python (it does not use
    ``hash()``), so a key's messages always meet in one partition, in order."""
    if isinstance(key, str):
        key = key.encode()
    if not isinstance(partitions, int) or isinstance(partitions, bool) or partitions < 1:
        raise ValueError(f"partitions must be a positive int, got {partitions!r}")
    return crc32c(key) % partitions


def _check_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"a stream name must be a str, got {type(name).__name__}")
    if not _NAME_RULE.match(name):
        raise ValueError(
            f"stream name {name!r} is not allowed: use 1 to 255 letters, digits, '-', '_' or '.'"
        )
    return name


def _segment_base(name: str) -> str:
    """The /dev/shm name prefix of a shared stream. The name's length is part of it, so no
    stream's metadata name can equal another stream's partition name; long names are
    hashed to stay within the 255-byte file name limit."""
    if len(name) <= 180:
        return f"kxs.{len(name)}.{name}"
    return "kxs.h." + hashlib.sha256(name.encode()).hexdigest()[:40]


def _ring_name(base: str, partition: int) -> str:
    return f"{base}.p{partition}"


def _positive_int(value: object, what: str, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}")
    if not 1 <= value <= high:
        raise ValueError(f"{what} must be between 1 and {high}, got {value}")
    return value


def _timeout(value: object, what: str = "timeout") -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of seconds or None, got {type(value).__name__}")
    if not value >= 0:
        raise ValueError(f"{what} must be >= 0 seconds or None, got {value!r}")
    return float(value)


def _round_capacity(capacity: int) -> int:
    c = 4096
    while c < capacity:
        c <<= 1
    return c


class _Reader(_BatchOps, RingReader):
    """A consumer's cursor on one in-process partition."""

    __slots__ = ()
    _TRUSTED = True


class _Local:
    """An in-process stream's partitions: rings made on first use."""

    __slots__ = ("bell", "rings", "stream")

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.rings: list[RingCore | None] = [None] * stream._partitions
        self.bell = Doorbell()

    def ring(self, partition: int) -> RingCore:
        ring = self.rings[partition]
        if ring is None:
            s = self.stream
            with s._mutex():
                ring = self.rings[partition]
                if ring is None:
                    ring = RingCore(
                        s._capacity, readers=s._max_consumers, overwrite=s._policy == "drop_oldest"
                    )
                    ring._set_bell(self.bell)
                    if s._closed:
                        ring._shutdown()
                    self.rings[partition] = ring
        return ring

    producer_handle = ring

    def reader(self, partition: int, start: Start) -> Any:
        return self.ring(partition)._new_reader(_Reader, start)

    def counters(self, partition: int) -> tuple[int, int, int, int, tuple[ReaderRow, ...]]:
        ring = self.rings[partition]
        if ring is None:
            return 0, 0, _round_capacity(self.stream._capacity), 0, ()
        published, overwritten, _, nbytes = ring._counters()
        return published, overwritten, ring.free_bytes, nbytes, ring._readers()

    def shutdown(self) -> None:
        for ring in self.rings:
            if ring is not None:
                ring._shutdown()
        self.bell.wake()


class _Shared:
    """A shared stream's segments as this process sees them: the metadata page (with the
    doorbell) and one SharedRing per partition, attached as a producer on first send."""

    __slots__ = ("base", "bell", "detached", "fd", "meta", "owner", "producers", "stream")

    def __init__(self, stream: Stream, base: str, fd: int, meta: mmap.mmap, owner: bool) -> None:
        self.stream = stream
        self.base = base
        self.fd = fd
        self.meta = meta
        self.owner = owner
        self.detached = False
        self.producers: list[SharedRing | None] = [None] * stream._partitions
        self.bell = Doorbell(meta, _META_BELL)

    def producer_handle(self, partition: int) -> SharedRing:
        ring = self.producers[partition]
        if ring is None:
            try:
                ring = SharedRing.attach(_ring_name(self.base, partition))
            except FileNotFoundError:
                raise StreamClosed(f"stream {self.stream._name!r} is closed") from None
            ring._set_bell(self.bell)
            self.producers[partition] = ring
        return ring

    def reader(self, partition: int, start: Start) -> Any:
        try:
            ring = SharedRing.attach(_ring_name(self.base, partition), start=start)
        except FileNotFoundError:
            raise StreamClosed(f"stream {self.stream._name!r} is closed") from None
        try:
            ring._join()  # from now on, producers keep every message for this cursor
        except RingError as exc:
            ring.close()
            if exc.reason == "too_many_consumers":
                raise StreamError(str(exc)) from None
            raise
        return ring

    def counters(self, partition: int) -> tuple[int, int, int, int, tuple[ReaderRow, ...]]:
        ring = self.producer_handle(partition)
        published, overwritten, _, nbytes = ring._counters()
        return published, overwritten, ring.free_bytes, nbytes, ring._readers()

    def next_producer_id(self) -> int:
        fcntl.flock(self.fd, fcntl.LOCK_EX)  # the kernel drops it if this process dies
        try:
            (next_id,) = struct.unpack_from("<Q", self.meta, _META_NEXT_ID)
            struct.pack_into("<Q", self.meta, _META_NEXT_ID, next_id + 1)
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        return int(next_id)

    def closed(self) -> bool:
        closed: int = struct.unpack_from("<I", self.meta, _META_CLOSED)[0]
        return closed != 0

    def shutdown(self) -> None:
        struct.pack_into("<I", self.meta, _META_CLOSED, 1)
        for partition in range(self.stream._partitions):
            try:
                ring = self.producer_handle(partition)
            except StreamClosed:
                continue
            ring._shutdown()
        self.bell.wake()
        for partition in range(self.stream._partitions):
            _unlink(_ring_name(self.base, partition))
        _unlink(self.base)

    def detach(self) -> None:
        if self.detached:
            return
        self.detached = True
        for ring in self.producers:
            if ring is not None:
                ring.close()
        self.producers = [None] * self.stream._partitions
        self.bell.wake()  # consumers of this handle sleeping on it return, and see the close
        if self.bell.release():
            self.meta.close()
        # else a wait still sleeps on the doorbell: the mapping goes when the wait ends and
        # the last reference to it is dropped.
        os.close(self.fd)


def _meta_lie(
    partitions: int,
    capacity: int,
    policy: int,
    max_producers: int,
    max_consumers: int,
    name_length: int,
) -> str:
    """What in a shared stream's header no Stream could have written ("" when nothing): the
    header is another process's memory, so Stream.open believes none of it unchecked."""
    if not 1 <= partitions <= _MAX_PARTITIONS:
        return f"{partitions} partitions (1 to {_MAX_PARTITIONS})"
    if not 1 <= capacity <= 1 << 40 or capacity & (capacity - 1):
        return f"capacity {capacity} (a power of two up to 2**40)"
    if policy >= len(_POLICIES):
        return f"backpressure policy number {policy} (0 to {len(_POLICIES) - 1})"
    if not 1 <= max_producers <= 1024 or not 1 <= max_consumers <= 1024:
        return f"{max_producers} producers and {max_consumers} consumers (1 to 1024 each)"
    if not 1 <= name_length <= _META_SIZE - _META_NAME:
        return f"a name of {name_length} bytes"
    return ""


def _unlink(segment: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(f"/dev/shm/{segment}")


class Stream:
    """A named stream of messages in partitions, each a bounded ring, for the threads of one
    process or (``shared=True``) for every process of the machine.

    Args:
        name: 1 to 255 letters, digits, ``-``, ``_`` or ``.``.
        partitions: how many partitions (1 to 1024). A message's partition comes from its
            key (``partition_for``), from the producer's round-robin, or is given.
        capacity: bytes each partition holds (rounded up to a power of two, at least 4096).
        backpressure: what a send does when the slowest consumer is a whole partition
            behind: ``"block"`` waits (up to the timeout, then ``SendTimeout``),
            ``"error"`` raises ``BufferFull`` at once, ``"drop_oldest"`` overwrites the
            oldest messages (a lagging consumer counts them in ``Consumer.skipped``).
        shared: put the stream in shared memory, so that other processes open it with
            ``Stream.open(name)`` (or receive it pickled, as its name).
        send_timeout: how long a blocking send waits by default (seconds; None: forever).
        max_producers: processes that may send to a shared stream at once.
        max_consumers: consumers (and consumer groups) each partition serves at once.

    An in-process stream allocates a partition's ring when it is first used; until then it
    costs a few hundred bytes. Messages sent while no consumer exists are kept (up to the
    capacity) for consumers that start at ``"earliest"``.

    Raises:
        StreamExists: ``shared=True`` and a shared stream of that name exists.
    """

    __slots__ = (
        "__weakref__",
        "_backend",
        "_blocked",
        "_capacity",
        "_closed",
        "_consumers",
        "_groups",
        "_ids",
        "_lock",
        "_max_consumers",
        "_max_producers",
        "_name",
        "_partitions",
        "_policy",
        "_send_timeout",
        "_shared",
    )

    def __init__(
        self,
        name: str,
        *,
        partitions: int = 1,
        capacity: int = _DEFAULT_CAPACITY,
        backpressure: Backpressure = "block",
        shared: bool = False,
        send_timeout: float | None = 60.0,
        max_producers: int = 8,
        max_consumers: int = 16,
    ) -> None:
        self._name = _check_name(name)
        self._partitions = _positive_int(partitions, "partitions", _MAX_PARTITIONS)
        self._capacity = _round_capacity(_positive_int(capacity, "capacity", 1 << 40))
        if not isinstance(backpressure, str):
            raise TypeError(f"backpressure must be a str, got {type(backpressure).__name__}")
        if backpressure not in _POLICIES:
            raise ValueError(
                f"backpressure must be 'block', 'drop_oldest' or 'error', got {backpressure!r}"
            )
        self._policy: Backpressure = backpressure
        self._send_timeout = _timeout(send_timeout, "send_timeout")
        self._max_producers = _positive_int(max_producers, "max_producers", 1024)
        self._max_consumers = _positive_int(max_consumers, "max_consumers", 1024)
        self._shared = bool(shared)
        self._closed = False
        self._backend: _Local | _Shared | None = None
        self._lock: threading.Lock | None = None
        self._groups: dict[str, _Group] | None = None
        self._consumers: weakref.WeakSet[Consumer] | None = None
        self._ids: Iterator[int] | None = None
        self._blocked: list[int] | None = None  # [waits, ns]: see _note_blocked
        if self._shared:
            self._backend = _create_shared(self)

    @classmethod
    def open(cls, name: str) -> Stream:
        """Opens the shared stream ``name`` made by another process (or this one).

        Raises:
            StreamNotFound: there is no such shared stream (or it was closed).
            StreamError: the segment is not a kaelix stream this version reads.
        """
        _check_name(name)
        base = _segment_base(name)
        try:
            fd = os.open(f"/dev/shm/{base}", os.O_RDWR)
        except FileNotFoundError:
            raise StreamNotFound(f"no shared stream named {name!r}") from None
        try:
            fields = None
            for _ in range(100):  # its creator may still be writing the header
                if os.fstat(fd).st_size >= _META_SIZE:
                    meta = mmap.mmap(fd, _META_SIZE)
                    fields = _META.unpack_from(meta)
                    if fields[0] == _META_MAGIC:
                        break
                    meta.close()
                    fields = None
                time.sleep(0.005)
            if fields is None:
                raise StreamError(f"segment of stream {name!r} holds no kaelix stream header")
            if fields[1] != _META_VERSION:
                meta.close()
                raise StreamError(
                    f"stream {name!r} has layout version {fields[1]}, this kaelix reads "
                    f"{_META_VERSION}"
                )
        except BaseException:
            os.close(fd)
            raise
        _, _, partitions, capacity, policy, max_producers, max_consumers, name_length = fields
        lie = _meta_lie(partitions, capacity, policy, max_producers, max_consumers, name_length)
        if lie:
            meta.close()
            os.close(fd)
            raise StreamError(f"segment of stream {name!r} has a damaged header: {lie}")
        if bytes(meta[_META_NAME : _META_NAME + name_length]) != name.encode():
            meta.close()
            os.close(fd)
            raise StreamNotFound(f"no shared stream named {name!r} (hash collision)")
        self = cls.__new__(cls)
        self._name = name
        self._partitions = partitions
        self._capacity = capacity
        self._policy = _POLICIES[policy]
        self._send_timeout = 60.0
        self._max_producers = max_producers
        self._max_consumers = max_consumers
        self._shared = True
        self._closed = False
        self._lock = None
        self._groups = None
        self._consumers = None
        self._ids = None
        self._blocked = None
        self._backend = _Shared(self, base, fd, meta, owner=False)
        if self._backend.closed():
            self._backend.detach()
            raise StreamNotFound(f"shared stream {name!r} is closed")
        return self

    @staticmethod
    def remove(name: str) -> bool:
        """Deletes the shared-memory names of stream ``name`` left behind (a creator that
        died without closing it). Processes attached keep their mappings. Returns True if
        there was anything to delete."""
        base = _segment_base(_check_name(name))
        found = os.path.exists(f"/dev/shm/{base}")
        for path in os.listdir("/dev/shm"):
            if path.startswith(base + ".p") and path[len(base) + 2 :].isdigit():
                found = True
                _unlink(path)
        _unlink(base)
        return found

    # -- attributes --

    @property
    def name(self) -> str:
        """The stream's name."""
        return self._name

    @property
    def partitions(self) -> int:
        """How many partitions the stream has."""
        return self._partitions

    @property
    def capacity(self) -> int:
        """Bytes each partition holds (a power of two)."""
        return self._capacity

    @property
    def backpressure(self) -> Backpressure:
        """``"block"``, ``"drop_oldest"`` or ``"error"``."""
        return self._policy

    @property
    def shared(self) -> bool:
        """True for a stream in shared memory."""
        return self._shared

    @property
    def send_timeout(self) -> float | None:
        """How long a blocking send waits by default, in seconds (None: no limit)."""
        return self._send_timeout

    @property
    def closed(self) -> bool:
        """True once the stream was closed (by any process, for a shared stream)."""
        if self._closed:
            return True
        backend = self._backend
        return isinstance(backend, _Shared) and backend.closed()

    # -- internals --

    def _note_blocked(self, ns: int) -> None:
        """Counts one wait of this handle's producers for room and its length (kaelix.monitor
        reads them). Called on the slow path only (``Producer._put``), never by a send that
        found room."""
        with self._mutex():
            blocked = self._blocked
            if blocked is None:
                blocked = self._blocked = [0, 0]
            blocked[0] += 1
            blocked[1] += ns

    def _mutex(self) -> threading.Lock:
        lock = self._lock
        if lock is None:
            lock = self._lock = threading.Lock()
        return lock

    def _open_backend(self) -> _Local | _Shared:
        backend = self._backend
        if backend is None:
            if self._closed:
                raise StreamClosed(f"stream {self._name!r} is closed")
            backend = self._backend = _Local(self)
        return backend

    def _check_open(self) -> None:
        if self._closed or self.closed:
            raise StreamClosed(f"stream {self._name!r} is closed")

    def _max_frame_size(self) -> int:
        return min(self._capacity, MAX_FRAME_SIZE_LIMIT)

    # -- public --

    def producer(self, producer_id: int | None = None) -> Producer:
        """A new producer. ``producer_id`` names it in every message it sends (with the
        partition and a sequence number, it identifies each message); by default the stream
        picks one not given to any other of its default producers (across processes for a
        shared stream). Producers are thread-safe: threads sharing one send in turn.

        Raises:
            StreamClosed: the stream is closed.
        """
        self._check_open()
        if producer_id is None:
            backend = self._backend
            if isinstance(backend, _Shared):
                producer_id = backend.next_producer_id()
            else:
                with self._mutex():
                    if self._ids is None:
                        self._ids = itertools.count(1)
                    producer_id = next(self._ids)
        elif not isinstance(producer_id, int) or isinstance(producer_id, bool):
            raise TypeError(f"producer_id must be an int or None, got {type(producer_id).__name__}")
        elif not 0 <= producer_id < 1 << 64:
            raise ValueError(f"producer_id must be between 0 and 2**64 - 1, got {producer_id}")
        return Producer(self, producer_id)

    def consumer(
        self,
        *,
        group: str | None = None,
        start: Start = "earliest",
        partitions: Iterable[int] | None = None,
    ) -> Consumer:
        """A new consumer.

        Args:
            group: without one, the consumer sees every message of its partitions
                (broadcast). Consumers of one group split the partitions between them, each
                partition read by exactly one member, and share its position: when a member
                joins or leaves, partitions move and reading resumes where the group was.
                A group spans the threads of one process; see docs/streams.md for shared
                streams.
            start: where a new cursor starts: ``"earliest"`` (the oldest message kept) or
                ``"latest"`` (messages sent from now on).
            partitions: read only these partitions (not with a group).

        Raises:
            StreamClosed: the stream is closed.
            StreamError: a partition already serves ``max_consumers`` consumers.
        """
        self._check_open()
        if not isinstance(start, str):
            raise TypeError(f"start must be 'earliest' or 'latest', got {type(start).__name__}")
        if start not in ("earliest", "latest"):
            raise ValueError(f"start must be 'earliest' or 'latest', got {start!r}")
        if group is not None:
            if not isinstance(group, str) or not group:
                raise TypeError(f"group must be a non-empty str or None, got {group!r}")
            if partitions is not None:
                raise ValueError("a consumer of a group cannot pin partitions")
            fixed = None
        elif partitions is not None:
            fixed = tuple(dict.fromkeys(self._partition_index(p) for p in partitions))
            if not fixed:
                raise ValueError("partitions must name at least one partition")
        else:
            fixed = tuple(range(self._partitions))
        consumer = Consumer(self, group, start, fixed)
        with self._mutex():
            if self._consumers is None:
                self._consumers = weakref.WeakSet()
            self._consumers.add(consumer)
        return consumer

    def _partition_index(self, partition: object) -> int:
        if not isinstance(partition, int) or isinstance(partition, bool):
            raise TypeError(f"a partition must be an int, got {type(partition).__name__}")
        if not 0 <= partition < self._partitions:
            raise ValueError(
                f"partition {partition} is out of range: stream {self._name!r} has "
                f"{self._partitions} partition(s), 0 to {self._partitions - 1}"
            )
        return partition

    def _group(self, name: str) -> _Group:
        with self._mutex():
            if self._groups is None:
                self._groups = {}
            group = self._groups.get(name)
            if group is None:
                group = self._groups[name] = _Group(self, name)
            return group

    def _drop_group(self, group: _Group) -> None:
        with self._mutex():
            if self._groups is not None and self._groups.get(group.name) is group:
                del self._groups[group.name]

    def metrics(self) -> dict[str, Any]:
        """Counters per partition, read from the rings (so a shared stream's include every
        attached process's producers and consumers):

        - ``published``, ``bytes_published``: messages and frame bytes published;
        - ``overwritten``: messages overwritten before every consumer read them
          (``drop_oldest``); ``free_bytes``: bytes a producer could write now;
        - ``readers``: one entry per cursor reading the partition (an independent consumer,
          or a group), in any process: its ``pid`` and ``slot``, the messages and frame
          bytes it ``received`` (``bytes_received``) since it joined, the messages it
          ``skipped`` (overwritten by ``drop_oldest`` before it read them) and those
          ``waiting`` for it now.

        Partitions an in-process stream has not used yet show zeros."""
        backend = self._open_backend()
        parts = []
        for p in range(self._partitions):
            published, overwritten, free, nbytes, readers = backend.counters(p)
            parts.append(
                {
                    "partition": p,
                    "published": published,
                    "bytes_published": nbytes,
                    "overwritten": overwritten,
                    "free_bytes": free,
                    "readers": [
                        {
                            "slot": slot,
                            "pid": pid,
                            "received": received,
                            "bytes_received": received_bytes,
                            "skipped": skipped,
                            "waiting": waiting,
                        }
                        for slot, pid, received, received_bytes, skipped, waiting in readers
                    ],
                }
            )
        return {"name": self._name, "backpressure": self._policy, "partitions": parts}

    def close(self) -> None:
        """Closes the stream for everyone (every process, for a shared stream): sends raise
        ``StreamClosed``; consumers receive what is left, then ``poll`` returns None and
        iteration stops. A shared stream's names are removed too (``Stream.open`` raises
        ``StreamNotFound``), while attached processes keep draining. Closing twice is
        harmless."""
        if self._closed:
            return
        backend = self._backend
        self._closed = True
        if isinstance(backend, _Local) or (isinstance(backend, _Shared) and not backend.closed()):
            backend.shutdown()

    def detach(self) -> None:
        """Leaves a shared stream without closing it: closes this handle's producers and
        consumers and unmaps its segments. For an in-process stream, the same as close()."""
        if not self._shared:
            self.close()
            return
        backend = self._backend
        if not isinstance(backend, _Shared) or backend.detached:
            return
        for consumer in list(self._consumers or ()):
            consumer.close()
        self._closed = True
        backend.detach()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        backend = self._backend
        if isinstance(backend, _Shared) and not backend.owner:
            self.detach()
        else:
            self.close()
            if isinstance(backend, _Shared):
                self.detach()

    def __reduce__(self) -> tuple[Any, ...]:
        if not self._shared:
            raise TypeError(
                f"in-process stream {self._name!r} cannot be sent to another process; "
                f"make it with shared=True"
            )
        return (Stream.open, (self._name,))

    def __repr__(self) -> str:
        kind = "shared " if self._shared else ""
        state = " closed" if self.closed else ""
        return (
            f"<{kind}Stream {self._name!r} partitions={self._partitions} "
            f"capacity={self._capacity} backpressure={self._policy!r}{state}>"
        )


def _create_shared(stream: Stream) -> _Shared:
    base = _segment_base(stream._name)
    path = f"/dev/shm/{base}"
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    except FileExistsError:
        raise StreamExists(
            f"a shared stream named {stream._name!r} exists; open it with Stream.open, or "
            f"remove a leftover one with Stream.remove"
        ) from None
    made: list[SharedRing] = []
    try:
        os.ftruncate(fd, _META_SIZE)
        meta = mmap.mmap(fd, _META_SIZE)
        name = stream._name.encode()
        meta[_META_NAME : _META_NAME + len(name)] = name
        for p in range(stream._partitions):
            made.append(
                SharedRing._create(
                    _ring_name(base, p),
                    stream._capacity,
                    stream._max_producers,
                    stream._max_consumers,
                    "sleep",
                    stream._policy == "drop_oldest",
                )
            )
        struct.pack_into("<Q", meta, _META_NEXT_ID, 1)
        # The magic last: Stream.open waits until it is there.
        _META.pack_into(
            meta,
            0,
            b"\0" * 8,
            _META_VERSION,
            stream._partitions,
            stream._capacity,
            _POLICIES.index(stream._policy),
            stream._max_producers,
            stream._max_consumers,
            len(name),
        )
        meta[0:8] = _META_MAGIC
    except BaseException:
        for ring in made:
            ring.close()
            ring.unlink()
        _unlink(base)
        os.close(fd)
        raise
    backend = _Shared(stream, base, fd, meta, owner=True)
    for p, ring in enumerate(made):
        ring._set_bell(backend.bell)
        backend.producers[p] = ring
    return backend


def _add_run(runs: list[tuple[int, int, int]], partition: int, first: int, count: int) -> None:
    if runs:
        p, f, c = runs[-1]
        if p == partition and f + c == first:
            runs[-1] = (p, f, c + count)
            return
    runs.append((partition, first, count))


class Receipts(Sequence[tuple[int, int]]):
    """What ``send_batch`` returns: the (partition, sequence) of each message sent, in
    order, kept as runs (partition, first sequence, count), so that a large batch costs no
    tuple per message until one is asked for. Compares equal to any sequence of the same
    pairs (a list of tuples, say)."""

    __slots__ = ("_ends", "_runs")

    def __init__(self, runs: Iterable[tuple[int, int, int]] = ()) -> None:
        self._runs = tuple(runs)
        self._ends = list(itertools.accumulate(count for _, _, count in self._runs))

    @property
    def runs(self) -> tuple[tuple[int, int, int], ...]:
        """(partition, first sequence, count) for each run of consecutive messages."""
        return self._runs

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    @overload
    def __getitem__(self, index: int) -> tuple[int, int]: ...
    @overload
    def __getitem__(self, index: slice) -> list[tuple[int, int]]: ...
    def __getitem__(self, index: int | slice) -> tuple[int, int] | list[tuple[int, int]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("receipt index out of range")
        r = bisect.bisect_right(self._ends, index)
        partition, first, count = self._runs[r]
        return partition, first + index - (self._ends[r] - count)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for partition, first, count in self._runs:
            for seq in range(first, first + count):
                yield partition, seq

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, (str, bytes)):
            return len(other) == len(self) and list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        if len(self) <= 8:
            return f"Receipts({list(self)!r})"
        return f"<Receipts of {len(self)} messages in runs {self._runs!r}>"


class Producer:
    """Sends messages to a stream; made by ``Stream.producer()``.

    Each message gets the producer's id, its partition, a sequence number per (producer,
    partition) that starts at 0 and has no gaps (a send that fails takes none), and the
    wall-clock time of the send (``CLOCK_REALTIME``, nanoseconds since the Unix epoch, as
    ``time.time_ns()``). Producers are thread-safe: threads sharing one send in turn, and
    each partition receives its messages in sequence order.
    """

    __slots__ = ("_closed", "_core", "_handles", "_lock", "_next", "_stream")

    def __init__(self, stream: Stream, producer_id: int) -> None:
        self._stream = stream
        self._core = ProducerCore(producer_id, stream._partitions, stream._max_frame_size())
        self._handles: list[Any] = [None] * stream._partitions
        self._next = 0
        self._closed = False
        self._lock = threading.Lock()

    @property
    def producer_id(self) -> int:
        """The id every message of this producer carries."""
        return int(self._core.producer_id)

    @property
    def stream(self) -> Stream:
        """The stream this producer sends to."""
        return self._stream

    def _handle(self, partition: int) -> Any:
        handle = self._handles[partition]
        if handle is None:
            stream = self._stream
            stream._check_open()
            handle = stream._open_backend().producer_handle(partition)
            self._handles[partition] = handle
        return handle

    def _choose(self, key: bytes | None) -> int:
        n = self._stream._partitions
        if key is not None:
            return crc32c(key) % n
        p = self._next
        self._next = p + 1 if p + 1 < n else 0
        return p

    def send(
        self,
        payload: Any,
        *,
        key: Any = None,
        headers: Mapping[str, Any] | None = None,
        partition: int | None = None,
        timeout: float | None = _UNSET,
    ) -> tuple[int, int]:
        """Sends one message and returns the (partition, sequence) it was given.

        Args:
            payload: bytes-like.
            key: bytes-like or str (UTF-8), or None; picks the partition
                (``partition_for(key, partitions)``) unless partition is given.
            headers: names (str) to bytes-like values.
            partition: send to this partition (0 to partitions - 1).
            timeout: ``"block"`` streams: seconds to wait for room (None: no limit;
                default: the stream's send_timeout).

        Raises:
            SendTimeout: block: no room before the timeout.
            BufferFull: error: no room now.
            StreamClosed: the stream or this producer is closed.
            FrameTooLarge: the message would not fit in a partition.
        """
        if self._closed:
            raise StreamClosed("this producer is closed")
        if timeout is not _UNSET:
            _timeout(timeout)  # a bad timeout is an error even when no wait is needed
        if type(key) is str:
            key = key.encode()
        p = self._choose(key) if partition is None else self._stream._partition_index(partition)
        if headers is None:
            handle = self._handles[p]
            if handle is None:
                handle = self._handle(p)
            try:
                seq = self._core.send(handle, payload, key, p)
            except RingClosed:
                raise StreamClosed(f"stream {self._stream._name!r} is closed") from None
            if seq >= 0:
                return p, seq
        return self._send_slow(payload, key, headers, p, timeout)

    def _send_slow(
        self, payload: Any, key: Any, headers: Any, p: int, timeout: float | None
    ) -> tuple[int, int]:
        """Everything the compiled path leaves: headers, other bytes-likes, waiting for
        room, and the errors. Holds the producer's lock and makes the fast path of other
        threads stand aside, so sequence numbers stay in order."""
        stream = self._stream
        core = self._core
        with self._lock:
            core.busy = True
            try:
                if self._closed:
                    raise StreamClosed("this producer is closed")
                seq = core.sequence(p)
                try:
                    frame = encode(
                        Message(
                            payload,
                            key=key,
                            headers=headers,
                            partition=p,
                            producer_id=core.producer_id,
                            sequence=seq,
                            timestamp_ns=time.time_ns(),
                        ),
                        max_frame_size=core.max_frame,
                    )
                except FrameTooLarge as exc:
                    raise _too_large(exc, stream) from None
                handle = self._handle(p)
                try:
                    if not handle.push(frame):
                        if stream._policy == "error":
                            raise BufferFull(
                                f"partition {p} of stream {stream._name!r} is full "
                                f"({stream._capacity} bytes)"
                            )
                        self._put(handle, frame, p, timeout)
                except RingClosed:
                    raise StreamClosed(f"stream {stream._name!r} is closed") from None
                core.advance(p, 1)
                return p, seq
            finally:
                core.busy = False

    def _put(self, handle: Any, frame: bytes, partition: int, timeout: float | None) -> None:
        stream = self._stream
        limit = stream._send_timeout if timeout is _UNSET else _timeout(timeout)
        began = time.monotonic_ns()
        deadline = None if limit is None else time.monotonic() + limit
        try:
            while True:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    handle.put(frame, left)
                    return
                except RingFull:
                    raise SendTimeout(
                        f"no room in partition {partition} of stream {stream._name!r} within "
                        f"{limit} s: its slowest consumer is {stream._capacity} bytes behind"
                    ) from None
                except PeerGone:
                    continue  # a dead consumer's cursor was released: look again
        finally:
            stream._note_blocked(time.monotonic_ns() - began)

    def send_batch(
        self,
        payloads: Iterable[Any],
        *,
        keys: Iterable[Any] | None = None,
        headers: Mapping[str, Any] | None = None,
        partition: int | None = None,
        timeout: float | None = _UNSET,
    ) -> Receipts:
        """Sends many messages, in order, and returns their (partition, sequence) pairs.

        Plain messages (bytes payloads, bytes or str or no keys, no headers) go into each
        partition with one claim, one copy and one publish per run of messages bound for it
        (as many as fit at a time). Without keys and partition, the whole batch goes to the
        next round-robin partition (as Kafka's sticky partitioner does), so it is one run.
        ``headers`` apply to every message. If a send fails part way (``SendTimeout``,
        ``BufferFull``), exactly the first ``exc.sent`` messages were sent.

        Raises:
            SendTimeout: block: no room before the timeout (one timeout for the call).
            BufferFull: error: no room now.
            StreamClosed: the stream or this producer is closed.
            FrameTooLarge: a message would not fit in a partition (the ones before it
                were sent).
        """
        items = payloads if type(payloads) is list else list(payloads)
        key_list: list[Any] | None = None
        if keys is not None:
            key_list = [k.encode() if isinstance(k, str) else k for k in keys]
            if len(key_list) != len(items):
                raise ValueError(f"keys has {len(key_list)} entries for {len(items)} payloads")
        limit = self._stream._send_timeout if timeout is _UNSET else _timeout(timeout)
        if self._closed:
            raise StreamClosed("this producer is closed")
        stream = self._stream
        total = len(items)
        if partition is not None:
            fixed: int | None = stream._partition_index(partition)
        elif key_list is None:
            fixed = self._choose(None) if total else None
        else:
            fixed = None
        parts = None
        if fixed is None and key_list is not None:
            parts = [self._choose(k) for k in key_list]
        deadline = None if limit is None else time.monotonic() + limit
        core = self._core
        runs: list[tuple[int, int, int]] = []
        done = 0
        i = 0
        while i < total:
            p = fixed if parts is None else parts[i]
            assert p is not None
            stop = total
            if parts is not None:
                stop = i + 1
                while stop < total and parts[stop] == p:
                    stop += 1
            handle = self._handles[p]
            if handle is None:
                handle = self._handle(p)
            while i < stop:
                sent = -1
                if headers is None:
                    try:
                        sent, first = core.send_many(handle, items, key_list, i, stop, p)
                    except RingClosed:
                        raise StreamClosed(f"stream {stream._name!r} is closed") from None
                if sent > 0:
                    _add_run(runs, p, first, sent)
                    i += sent
                    done += sent
                    continue
                # One message the Python way: it waits for room, or raises what is wrong.
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                key = None if key_list is None else key_list[i]
                try:
                    _, seq = self._send_slow(items[i], key, headers, p, left)
                except (SendTimeout, BufferFull) as exc:
                    raise type(exc)(str(exc), done) from None
                _add_run(runs, p, seq, 1)
                i += 1
                done += 1
        return Receipts(runs)

    def close(self) -> None:
        """No more sends from this producer (the stream stays open). Harmless twice."""
        self._closed = True

    @property
    def closed(self) -> bool:
        """True once close() was called."""
        return self._closed

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Producer {self.producer_id} of stream {self._stream._name!r}>"


def _too_large(exc: FrameTooLarge, stream: Stream) -> FrameTooLarge:
    return FrameTooLarge(
        f"{exc} (a partition of stream {stream._name!r} holds {stream._capacity} bytes)",
        exc.size,
        exc.limit,
    )


class _Group:
    """A consumer group of one process: one cursor per partition, shared by the members;
    each partition read by one member at a time."""

    __slots__ = ("cursors", "lock", "members", "name", "stream")

    def __init__(self, stream: Stream, name: str) -> None:
        self.stream = stream
        self.name = name
        self.members: list[Consumer] = []
        self.cursors: dict[int, Any] = {}
        self.lock = threading.Lock()

    def join(self, member: Consumer, start: Start) -> None:
        with self.lock:
            backend = self.stream._open_backend()
            for p in range(self.stream._partitions):
                if p not in self.cursors:
                    self.cursors[p] = backend.reader(p, start)
            self.members.append(member)
            self._assign()

    def leave(self, member: Consumer) -> None:
        with self.lock:
            if member in self.members:
                self.members.remove(member)
            if self.members:
                self._assign()
                return
            cursors, self.cursors = self.cursors, {}
        self.stream._drop_group(self)
        for cursor in cursors.values():
            cursor.close()

    def _assign(self) -> None:
        """Partition p goes to member p % len(members), members in the order they joined."""
        n = len(self.members)
        for i, member in enumerate(self.members):
            mine = tuple(p for p in range(self.stream._partitions) if p % n == i)
            member._plan = (mine, tuple(self.cursors[p] for p in mine))


class Consumer:
    """Receives messages from a stream; made by ``Stream.consumer()``.

    ``poll`` and ``poll_batch`` return what is there and wait (up to a timeout) when
    nothing is; iteration and ``async for`` go on until the stream is closed and drained.
    Within a partition, messages arrive in the order they were published.
    """

    __slots__ = (
        "__weakref__",
        "_closed",
        "_group",
        "_handles",
        "_plan",
        "_rr",
        "_start",
        "_stream",
    )

    def __init__(
        self, stream: Stream, group: str | None, start: Start, fixed: tuple[int, ...] | None
    ) -> None:
        self._stream = stream
        self._start: Start = start
        self._closed = False
        self._rr = 0
        self._handles: dict[int, Any] = {}
        self._group: _Group | None = None
        # (partitions read, their cursors): replaced whole, so threads never see a mix.
        self._plan: tuple[tuple[int, ...], tuple[Any, ...]] = ((), ())
        if group is None:
            assert fixed is not None
            backend = stream._open_backend()
            try:
                for p in fixed:
                    self._handles[p] = backend.reader(p, start)
            except RingError as exc:
                self._release()
                if exc.reason == "too_many_consumers":
                    raise StreamError(
                        f"stream {stream._name!r} already serves {stream._max_consumers} "
                        f"consumers; make it with a larger max_consumers"
                    ) from None
                raise
            except BaseException:
                self._release()
                raise
            self._plan = (fixed, tuple(self._handles[p] for p in fixed))
        else:
            self._group = stream._group(group)
            self._group.join(self, start)

    # -- attributes --

    @property
    def stream(self) -> Stream:
        """The stream this consumer reads."""
        return self._stream

    @property
    def group(self) -> str | None:
        """The consumer group's name, or None for a broadcast consumer."""
        return None if self._group is None else self._group.name

    @property
    def assignment(self) -> tuple[int, ...]:
        """The partitions this consumer reads now (a group member's change as members join
        and leave)."""
        return self._plan[0]

    @property
    def closed(self) -> bool:
        """True once close() was called."""
        return self._closed

    def _cursors(self) -> tuple[Any, ...]:
        return self._plan[1]

    @property
    def lag(self) -> dict[int, int]:
        """Messages waiting for this consumer, per partition it reads."""
        self._check()
        parts, cursors = self._plan
        return {p: len(c) for p, c in zip(parts, cursors, strict=True)}

    @property
    def skipped(self) -> int:
        """Messages this consumer never received because ``drop_oldest`` overwrote them
        before it read them (for a group member: the group's, on the partitions it reads
        now). Each poll brings it up to date."""
        total = 0
        for cursor in self._plan[1]:
            total += cursor.skipped
        return total

    @property
    def skipped_by_partition(self) -> dict[int, int]:
        """``skipped``, per partition."""
        parts, cursors = self._plan
        return {p: int(c.skipped) for p, c in zip(parts, cursors, strict=True)}

    # -- receiving --

    def _check(self) -> None:
        if self._closed:
            raise StreamClosed("this consumer is closed")

    def _take_one(self) -> bytes | None:
        cursors = self._plan[1]
        n = len(cursors)
        if n == 1:
            try:
                return cursors[0].pop()  # type: ignore[no-any-return]
            except RingClosed:  # closed by another thread (a group member leaving)
                return None
        start = self._rr
        for i in range(n):
            try:
                frame = cursors[(start + i) % n].pop()
            except RingClosed:
                continue
            if frame is not None:
                self._rr = (start + i + 1) % n
                return frame  # type: ignore[no-any-return]
        return None

    def _finished(self) -> bool:
        """True when the stream is closed and every partition this consumer reads is
        drained (or gone)."""
        stream = self._stream
        if not stream.closed:
            cursors = self._cursors()
            if not cursors:
                return False
            for cursor in cursors:
                try:
                    if not cursor._ring_closed:
                        return False
                except RingClosed:
                    continue
        for cursor in self._cursors():
            try:
                if len(cursor):
                    return False
            except RingClosed:
                continue
        return True

    def _wait(self, deadline: float | None) -> bool:
        """Sleeps until a partition may have a message, the stream closes, or the
        deadline passes (False)."""
        if deadline is not None and time.monotonic() >= deadline:
            return False
        cursors = self._cursors()
        backend = self._stream._backend
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not cursors or backend is None:
            time.sleep(0.01 if left is None else min(0.01, left))  # no partition: wait for one
            return True
        # A group's assignment may change while we sleep: look again every 50 ms.
        if self._group is not None:
            left = 0.05 if left is None else min(left, 0.05)
        with contextlib.suppress(RingClosed):  # a cursor closed by another thread
            _wait_any(cursors, backend.bell, left)
        return True

    def poll(self, timeout: float | None = None) -> Message | None:
        """The next message, waiting up to timeout seconds for one (None: until one comes
        or the stream closes; 0: not at all). Returns None when the time is up, or when the
        stream is closed and everything was received.

        Raises:
            StreamClosed: this consumer is closed.
        """
        self._check()
        frame = self._take_one()
        if frame is not None:
            return decode(frame)
        limit = _timeout(timeout)
        deadline = None if limit is None else time.monotonic() + limit
        while True:
            if self._finished() or not self._wait(deadline):
                frame = self._take_one()  # one last look
                return None if frame is None else decode(frame)
            self._check()
            frame = self._take_one()
            if frame is not None:
                return decode(frame)

    def _take_batch(self, max_messages: int) -> MessageBatch:
        cursors = self._plan[1]
        n = len(cursors)
        start = self._rr
        parts: list[MessageBatch] = []
        left = max_messages
        for i in range(n):
            try:
                batch = cursors[(start + i) % n].pop_batch(left)
            except RingClosed:
                continue
            if len(batch):
                parts.append(batch)
                left -= len(batch)
                if not left:
                    self._rr = (start + i + 1) % n
                    break
        if not parts:
            return MessageBatch()
        return parts[0] if len(parts) == 1 else MessageBatch.concat(parts)

    def poll_batch(self, max_messages: int = 1024, timeout: float | None = None) -> MessageBatch:
        """Up to max_messages messages as one ``MessageBatch``, waiting up to timeout seconds
        for the first (as ``poll``). Empty when the time is up, or when the stream is closed
        and everything was received.

        Raises:
            StreamClosed: this consumer is closed.
        """
        self._check()
        max_messages = _positive_int(max_messages, "max_messages", 1 << 62)
        batch = self._take_batch(max_messages)
        if len(batch):
            return batch
        limit = _timeout(timeout)
        deadline = None if limit is None else time.monotonic() + limit
        while True:
            if self._finished() or not self._wait(deadline):
                return self._take_batch(max_messages)
            self._check()
            batch = self._take_batch(max_messages)
            if len(batch):
                return batch

    def __iter__(self) -> Iterator[Message]:
        """Messages until the stream is closed and drained."""
        while True:
            message = self.poll()
            if message is None:
                return
            yield message

    # -- asyncio --

    async def poll_async(self, timeout: float | None = None) -> Message | None:
        """``poll`` for asyncio: the event loop keeps running while this waits (the wait
        runs in the loop's default executor, in slices of at most 100 ms, so a cancelled
        call frees its thread quickly)."""
        self._check()
        limit = _timeout(timeout)
        loop = asyncio.get_running_loop()
        deadline = None if limit is None else loop.time() + limit
        while True:
            message = self.poll(0)
            if message is not None:
                return message
            if self._finished():
                return None
            left = 0.1 if deadline is None else min(0.1, deadline - loop.time())
            if left <= 0:
                return None
            await loop.run_in_executor(None, self._wait, time.monotonic() + left)
            self._check()

    async def poll_batch_async(
        self, max_messages: int = 1024, timeout: float | None = None
    ) -> MessageBatch:
        """``poll_batch`` for asyncio (see ``poll_async``)."""
        self._check()
        limit = _timeout(timeout)
        loop = asyncio.get_running_loop()
        deadline = None if limit is None else loop.time() + limit
        while True:
            batch = self.poll_batch(max_messages, 0)
            if len(batch) or self._finished():
                return batch
            left = 0.1 if deadline is None else min(0.1, deadline - loop.time())
            if left <= 0:
                return batch
            await loop.run_in_executor(None, self._wait, time.monotonic() + left)
            self._check()

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._aiter()

    async def _aiter(self) -> AsyncIterator[Message]:
        while True:
            message = await self.poll_async()
            if message is None:
                return
            yield message

    # -- lifetime --

    def _release(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles = {}

    def close(self) -> None:
        """Stops reading: gives back this consumer's cursors (producers stop waiting for
        them); a group member's partitions go to the other members. Harmless twice."""
        if self._closed:
            return
        self._closed = True
        if self._group is not None:
            group, self._group = self._group, None
            self._plan = ((), ())
            group.leave(self)
        else:
            self._plan = ((), ())
            self._release()

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            # At interpreter shutdown the rings may be gone already: they go with the process.
            with contextlib.suppress(Exception):
                self.close()

    def __repr__(self) -> str:
        group = "" if self._group is None else f" group={self._group.name!r}"
        return f"<Consumer of stream {self._stream._name!r}{group} partitions={self._plan[0]}>"
