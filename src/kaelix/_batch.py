"""MessageBatch: frames in one contiguous buffer plus numpy columns.

A batch is what every layer of kaelix exchanges in bulk. It is built from bytes in one
compiled pass (``kaelix._codec._scan_into``) that checks every frame and fills the columns,
without a Python object per message; ``Message`` objects are made only when asked for.
This module imports only numpy and the compiled core.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, SupportsIndex, overload

import numpy as np
import numpy.typing as npt

from kaelix._codec import (
    DEFAULT_MAX_FRAME_SIZE,
    HEADER_SIZE,
    Message,
    _decode_at,
    _encode_batch_columns,
    _payload_span,
    _scan_into,
)

__all__ = ["MessageBatch"]

# (attribute, dtype) of every column, in the order the compiled core fills them.
_COLUMNS: tuple[tuple[str, type[np.generic]], ...] = (
    ("_offsets", np.int64),
    ("_sequence", np.uint64),
    ("_partition", np.uint32),
    ("_producer_id", np.uint64),
    ("_timestamp_ns", np.int64),
    ("_checksum", np.uint32),
)


def _empty_columns(count: int) -> tuple[npt.NDArray[Any], ...]:
    """Uninitialised columns with room for ``count`` messages (``offsets`` one more)."""
    return tuple(
        np.empty(count + 1 if name == "_offsets" else count, dtype) for name, dtype in _COLUMNS
    )


def _readonly(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    array.setflags(write=False)
    return array


def _frozen_bytes(buf: object) -> bytes | memoryview:
    """The bytes of buf, copied unless they are already immutable ``bytes``, so that what
    was validated cannot change afterwards."""
    if type(buf) is bytes:
        return buf
    if isinstance(buf, str):
        raise TypeError("buf must be bytes-like (bytes, bytearray, memoryview), got str")
    try:
        view = memoryview(buf)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"buf must be bytes-like (bytes, bytearray, memoryview), got {type(buf).__name__}"
        ) from None
    return view.tobytes()


class MessageBatch:
    """A run of frames in one contiguous buffer, with numpy columns over them.

    Build one with ``MessageBatch.from_bytes`` or ``MessageBatch.from_messages``;
    ``MessageBatch()`` is the empty batch. Indexing and iteration give ``Message`` objects,
    slicing gives a batch that shares the buffer, ``+`` concatenates. The columns
    (``sequence``, ``partition``, ``producer_id``, ``timestamp_ns``, ``checksum``,
    ``offsets``) are read-only numpy arrays, one entry per message, except ``offsets``, which
    has one more: frame ``i`` is ``buffer[offsets[i]:offsets[i + 1]]``.

    Two batches are equal when they hold the same frames, byte for byte.
    """

    __slots__ = ("_buf", *(name for name, _ in _COLUMNS))

    _buf: bytes | memoryview
    _offsets: npt.NDArray[np.int64]
    _sequence: npt.NDArray[np.uint64]
    _partition: npt.NDArray[np.uint32]
    _producer_id: npt.NDArray[np.uint64]
    _timestamp_ns: npt.NDArray[np.int64]
    _checksum: npt.NDArray[np.uint32]

    def __init__(self) -> None:
        self._buf = b""
        for name, dtype in _COLUMNS:
            setattr(self, name, _readonly(np.zeros(1 if name == "_offsets" else 0, dtype)))

    @classmethod
    def _from_parts(
        cls, buf: bytes | memoryview, columns: Iterable[npt.NDArray[Any]]
    ) -> MessageBatch:
        batch = cls.__new__(cls)
        batch._buf = buf
        for (name, _), column in zip(_COLUMNS, columns, strict=True):
            setattr(batch, name, _readonly(column))
        return batch

    @classmethod
    def from_bytes(
        cls, buf: object, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    ) -> MessageBatch:
        """Validates frames laid end to end and indexes them, in one compiled pass.

        Every frame's magic, version, lengths, checksum and headers are checked. ``bytes``
        are used without a copy; any other bytes-like object is copied first.

        Args:
            buf: zero or more frames end to end (bytes, bytearray, memoryview, numpy array).
            max_frame_size: the largest frame accepted, in bytes (default 16 MiB).

        Raises:
            DecodeError: a frame is invalid or cut short (``offset`` is absolute in buf).
            TypeError: buf is not bytes-like.
        """
        data = _frozen_bytes(buf)
        capacity = len(data) // HEADER_SIZE
        columns = _empty_columns(capacity)
        count = _scan_into(data, max_frame_size, columns)
        if count < capacity:
            for (name, _), column in zip(_COLUMNS, columns, strict=True):
                column.resize(count + 1 if name == "_offsets" else count, refcheck=False)
        return cls._from_parts(data, columns)

    @classmethod
    def from_messages(
        cls, messages: Iterable[Message], *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    ) -> MessageBatch:
        """Encodes messages into one batch, filling the columns as it goes.

        Raises:
            TypeError: an item is not a ``Message``.
            FrameTooLarge: a message's frame would exceed ``max_frame_size``.
        """
        items = messages if isinstance(messages, (list, tuple)) else list(messages)
        count = len(items)
        columns = _empty_columns(count)
        data = _encode_batch_columns(items, max_frame_size, columns)
        return cls._from_parts(data, columns)

    @classmethod
    def concat(cls, batches: Iterable[MessageBatch]) -> MessageBatch:
        """One batch holding the frames of every batch given, in order."""
        parts = list(batches)
        if not parts:
            return cls()
        for part in parts:
            if not isinstance(part, MessageBatch):
                raise TypeError(f"can only concatenate MessageBatch, got {type(part).__name__}")
        if len(parts) == 1:
            return parts[0]
        starts = np.cumsum([0] + [part.nbytes for part in parts[:-1]], dtype=np.int64)
        offsets = np.concatenate(
            [part._offsets[:-1] + start for part, start in zip(parts, starts, strict=True)]
            + [np.array([starts[-1] + parts[-1].nbytes], dtype=np.int64)]
        )
        columns = [offsets] + [
            np.concatenate([getattr(part, name) for part in parts]) for name, _ in _COLUMNS[1:]
        ]
        return cls._from_parts(b"".join(part._buf for part in parts), columns)

    # -- size and columns ----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._sequence)

    @property
    def nbytes(self) -> int:
        """Bytes of frames in the batch."""
        return len(self._buf)

    @property
    def buffer(self) -> memoryview:
        """The frames, end to end, as a read-only memoryview (no copy)."""
        return memoryview(self._buf).toreadonly()

    @property
    def offsets(self) -> npt.NDArray[np.int64]:
        """Start of each frame in ``buffer``, plus the end: ``len(batch) + 1`` entries."""
        return self._offsets

    @property
    def sequence(self) -> npt.NDArray[np.uint64]:
        """Each message's sequence number."""
        return self._sequence

    @property
    def partition(self) -> npt.NDArray[np.uint32]:
        """Each message's partition."""
        return self._partition

    @property
    def producer_id(self) -> npt.NDArray[np.uint64]:
        """Each message's producer id."""
        return self._producer_id

    @property
    def timestamp_ns(self) -> npt.NDArray[np.int64]:
        """Each message's timestamp, nanoseconds since the Unix epoch."""
        return self._timestamp_ns

    @property
    def checksum(self) -> npt.NDArray[np.uint32]:
        """Each frame's CRC32C, as stored in (and checked against) the frame."""
        return self._checksum

    # -- access ----------------------------------------------------------------------------

    def _position(self, index: SupportsIndex) -> int:
        count = len(self)
        position = index.__index__()
        if position < 0:
            position += count
        if not 0 <= position < count:
            raise IndexError(f"message index {index.__index__()} out of range for {count} messages")
        return position

    @overload
    def __getitem__(self, index: SupportsIndex) -> Message: ...

    @overload
    def __getitem__(self, index: slice) -> MessageBatch: ...

    def __getitem__(self, index: SupportsIndex | slice) -> Message | MessageBatch:
        if isinstance(index, slice):
            return self._slice(index)
        return _decode_at(self._buf, int(self._offsets[self._position(index)]))

    def _slice(self, index: slice) -> MessageBatch:
        start, stop, step = index.indices(len(self))
        if step == 1:
            stop = max(start, stop)
            first, last = int(self._offsets[start]), int(self._offsets[stop])
            columns = [self._offsets[start : stop + 1] - first] + [
                getattr(self, name)[start:stop] for name, _ in _COLUMNS[1:]
            ]
            buf = (
                self._buf
                if (first, last) == (0, self.nbytes)
                else memoryview(self._buf)[first:last]
            )
            return MessageBatch._from_parts(buf, columns)
        picked = np.arange(start, stop, step)
        view = memoryview(self._buf)
        ends = self._offsets[picked + 1]
        begins = self._offsets[picked]
        data = b"".join(view[b:e] for b, e in zip(begins.tolist(), ends.tolist(), strict=True))
        sizes = ends - begins
        offsets = np.zeros(len(picked) + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        columns = [offsets] + [getattr(self, name)[picked] for name, _ in _COLUMNS[1:]]
        return MessageBatch._from_parts(data, columns)

    def __iter__(self) -> Iterator[Message]:
        buf = self._buf
        for offset in self._offsets[:-1].tolist():
            yield _decode_at(buf, offset)

    def payload(self, index: SupportsIndex) -> memoryview:
        """The payload of message ``index`` as a read-only memoryview into the batch (no copy)."""
        start, length = _payload_span(self._buf, int(self._offsets[self._position(index)]))
        return memoryview(self._buf)[start : start + length].toreadonly()

    def frame(self, index: SupportsIndex) -> memoryview:
        """The whole frame of message ``index`` as a read-only memoryview (no copy)."""
        position = self._position(index)
        begin, end = int(self._offsets[position]), int(self._offsets[position + 1])
        return memoryview(self._buf)[begin:end].toreadonly()

    def to_bytes(self) -> bytes:
        """The frames end to end, as ``bytes`` (no copy when the batch owns whole bytes)."""
        return self._buf if type(self._buf) is bytes else bytes(self._buf)

    def to_messages(self) -> list[Message]:
        """Every message of the batch, as a list."""
        return list(self)

    # -- protocols -------------------------------------------------------------------------

    def __add__(self, other: object) -> MessageBatch:
        if not isinstance(other, MessageBatch):
            return NotImplemented
        return MessageBatch.concat([self, other])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MessageBatch):
            return NotImplemented
        return self.nbytes == other.nbytes and self._buf == other._buf

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        return (MessageBatch.from_bytes, (self.to_bytes(),))

    def __repr__(self) -> str:
        count = len(self)
        if count == 0:
            return "MessageBatch(0 messages)"
        partitions = np.unique(self._partition)
        shown = ", ".join(str(p) for p in partitions[:8].tolist())
        if len(partitions) > 8:
            shown += ", ..."
        return (
            f"MessageBatch({count} messages, {self.nbytes} bytes, partitions [{shown}], "
            f"sequence {int(self._sequence.min())}..{int(self._sequence.max())})"
        )
