"""Ring and SharedRing: bounded rings of kaelix frames, in one process or across processes.

The rings are compiled (``kaelix._ring`` over ``cext/kx_ring.h``); this module adds what
speaks in ``MessageBatch`` (batch push and pop) and the public constructors. It imports only
numpy, the compiled core and ``MessageBatch``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, Protocol

from kaelix._batch import MessageBatch, _empty_columns
from kaelix._codec import MAX_FRAME_SIZE_LIMIT, _scan_into
from kaelix._ring import RingCore, SharedRingCore, _index_frames

__all__ = ["Ring", "SharedRing"]

WaitStrategy = Literal["sleep", "spin", "yield"]


def _as_batch(buf: bytes, count: int, trusted: bool) -> MessageBatch:
    """Indexes count frames that a ring handed out. A shared ring's frames are checked again
    in full, checksums included, because every attached process can write its memory; the
    in-process ring's were checked by this process when they went in, so their columns are
    only read out (lengths still bounded by the buffer)."""
    columns = _empty_columns(count)
    if trusted:
        _index_frames(buf, count, *columns)
    elif _scan_into(buf, MAX_FRAME_SIZE_LIMIT, columns, count) != count:
        raise AssertionError(f"the ring counted {count} frames, the scan found others")
    return MessageBatch._from_parts(buf, columns)


class _Core(Protocol):
    """What _BatchOps needs of the compiled ring it is mixed into."""

    _TRUSTED: bool

    def push(self, frame: Any) -> bool: ...
    def _push_frames(
        self, buf: Any, offsets: Any, wait: bool = ..., timeout: float | None = ...
    ) -> int: ...
    def _pop_frames(
        self,
        max_messages: int | None,
        max_bytes: int | None,
        wait: bool = ...,
        timeout: float | None = ...,
    ) -> tuple[bytes, int]: ...


class _BatchOps:
    """The MessageBatch side of both rings."""

    __slots__ = ()
    _TRUSTED = False

    def push_batch(self: _Core, batch_or_frames: MessageBatch | Iterable[Any]) -> int:
        """Pushes as many frames as fit now, in order, and returns how many.

        A ``MessageBatch`` goes in with one copy per contiguous run and no further checks
        (its frames were validated when it was built); any other iterable is pushed frame
        by frame, each checked as ``push`` checks it, stopping at the first that does not fit.

        Raises:
            DecodeError: an item is not exactly one valid frame (earlier items stay pushed).
            ValueError: a frame is larger than the ring's capacity.
            RingClosed: the ring (or this handle) is closed.
        """
        if isinstance(batch_or_frames, MessageBatch):
            return int(self._push_frames(batch_or_frames.buffer, batch_or_frames.offsets))
        pushed = 0
        for frame in batch_or_frames:
            if not self.push(frame):
                break
            pushed += 1
        return pushed

    def put_batch(self: _Core, batch: MessageBatch, timeout: float | None = None) -> None:
        """Pushes every frame of batch, in order, waiting for room as needed.

        Raises:
            RingFull: the timeout expired first (a prefix of the batch may be in the ring;
                ``len`` tells how much).
            PeerGone: the consumer the ring waits for died (shared rings).
            RingClosed: the ring (or this handle) is closed.
        """
        if not isinstance(batch, MessageBatch):
            raise TypeError(f"put_batch takes a MessageBatch, got {type(batch).__name__}")
        self._push_frames(batch.buffer, batch.offsets, True, timeout)

    def pop_batch(
        self: _Core, max_messages: int | None = None, max_bytes: int | None = None
    ) -> MessageBatch:
        """Removes the frames waiting now (at most max_messages of them, at most max_bytes
        of frame bytes, the first frame always whole) and returns them as one batch, empty
        when there are none."""
        buf, count = self._pop_frames(max_messages, max_bytes)
        if not count:
            return MessageBatch()
        return _as_batch(buf, count, self._TRUSTED)

    def get_batch(
        self: _Core,
        max_messages: int | None = None,
        max_bytes: int | None = None,
        timeout: float | None = None,
    ) -> MessageBatch:
        """As ``pop_batch``, but waits up to timeout seconds (None: as long as it takes) for
        at least one frame.

        Raises:
            RingEmpty: nothing arrived before the timeout.
            RingClosed: the ring is closed and drained.
            PeerGone: every producer of a shared ring died, and it is drained.
        """
        buf, count = self._pop_frames(max_messages, max_bytes, True, timeout)
        return _as_batch(buf, count, self._TRUSTED)


class Ring(_BatchOps, RingCore):
    """A bounded ring of kaelix frames for the threads of one process.

    ``capacity`` is in bytes, rounded up to a power of two (at least 4096); a frame takes
    exactly its own length. Frames go in as ``bytes`` (``kaelix.encode`` makes them) or a
    whole ``MessageBatch``, and come out as ``bytes`` or a ``MessageBatch``.

    Threads: every operation runs holding the GIL, so each is atomic with respect to other
    Python threads, and any number of threads may push and pop. ``put`` and ``get`` wait
    without holding the GIL or burning a core (a short spin, then a futex), and wake as soon
    as another thread makes room or pushes.

    >>> import kaelix
    >>> ring = kaelix.Ring(4096)
    >>> ring.push(kaelix.encode(kaelix.Message(b"hello")))
    True
    >>> kaelix.decode(ring.pop()).payload
    b'hello'
    """

    __slots__ = ()
    _TRUSTED = True

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity)

    def __enter__(self) -> Ring:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _reattach(name: str, wait: WaitStrategy) -> SharedRing:
    return SharedRing.attach(name, wait=wait)


class SharedRing(_BatchOps, SharedRingCore):
    """A ring of kaelix frames in a shared-memory segment that processes attach to by name.

    Make one with ``SharedRing.create(name, capacity)``, open it from other processes with
    ``SharedRing.attach(name)`` (or pass the handle to a child process: it pickles as its
    name). The segment is ``/dev/shm/NAME``, created with mode 0600.

    A handle takes its role when first used: pushing makes it one of the ring's producers
    (at most ``max_producers``), popping makes it a consumer with its own cursor (at most
    ``max_consumers``). Every consumer sees every frame; producers wait for (or, with
    ``push``, are refused by) the slowest consumer. With no consumer attached, frames are
    kept for the next one.

    One producer runs lock-free with no atomic read-modify-write; several claim space with a
    compare-and-swap and publish in claim order. Consumers never see a half-written frame,
    and a producer that dies mid-write costs the ring only that frame.
    """

    __slots__ = ()

    @classmethod
    def create(
        cls,
        name: str,
        capacity: int,
        *,
        max_producers: int = 1,
        max_consumers: int = 4,
        wait: WaitStrategy = "sleep",
    ) -> SharedRing:
        """Creates the segment ``/dev/shm/NAME`` (mode 0600) holding an empty ring.

        Args:
            name: 1 to 200 letters, digits, ``.``, ``_`` or ``-``.
            capacity: bytes of frames the ring holds, rounded up to a power of two.
            max_producers: how many producers may attach; 1 keeps the lock-free fast path.
            max_consumers: how many consumers may attach, each with its own cursor.
            wait: how this handle waits in put and get: ``"sleep"`` (spin 5 µs, spin
                yielding the core until 20 µs, then sleep on a futex: no core burnt when
                idle), ``"spin"`` (busy-wait: lowest latency, a whole core) or ``"yield"``
                (``sched_yield`` in a loop).

        Raises:
            FileExistsError: a segment of that name exists.
        """
        ring: SharedRing = cls._create(name, capacity, max_producers, max_consumers, wait)
        return ring

    @classmethod
    def attach(
        cls,
        name: str,
        *,
        wait: WaitStrategy = "sleep",
        start: Literal["earliest", "latest"] = "earliest",
    ) -> SharedRing:
        """Opens an existing ring by name.

        Args:
            name: the name given to ``create``.
            wait: this handle's wait strategy (see ``create``).
            start: where this handle starts if it consumes: ``"earliest"`` (the oldest
                frame still kept) or ``"latest"`` (only frames pushed from now on).

        Raises:
            FileNotFoundError: no segment of that name.
            RingError: the segment is not a kaelix ring this version reads (``reason``
                says which check failed).
        """
        ring: SharedRing = cls._attach(name, wait, start)
        return ring

    def __reduce__(self) -> tuple[Any, ...]:
        return (_reattach, (self.name, self.wait))

    def __enter__(self) -> SharedRing:
        return self

    def __exit__(self, *exc_info: object) -> None:
        owner = self._owner
        self.close()
        if owner:
            self.unlink()
