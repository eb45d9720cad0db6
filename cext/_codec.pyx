# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled core of kaelix: the Message type, the frame codec, the batch scanner, CRC32C.

The algorithms are plain C in kx_frame.h and kx_crc32c.h; this module turns Python objects
into frames and back and translates C status codes into kaelix exceptions in one place
(_raise_decode_error). It must never import anything from the pure-Python kaelix package:
the package imports it, not the other way round.
"""

cimport cython
from cpython.buffer cimport (
    PyBUF_SIMPLE,
    PyBUF_WRITABLE,
    PyBuffer_Release,
    PyObject_CheckBuffer,
    PyObject_GetBuffer,
)
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_Next, PyDict_SetItem
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport int64_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy

from kx_c cimport *

import operator
from collections.abc import Mapping
from types import MappingProxyType

cdef extern from "Python.h":
    const char *PyUnicode_AsUTF8AndSize(object s, Py_ssize_t *size) except NULL
    PyObject *PyDictProxy_New(object mapping) except NULL
    object PySequence_Fast(object o, const char *message)
    Py_ssize_t PySequence_Fast_GET_SIZE(object o)
    PyObject **PySequence_Fast_ITEMS(object o)

kx_crc32c_init()

HEADER_SIZE = KX_HEADER_SIZE
"""Bytes in a frame's fixed header."""
FORMAT_VERSION = KX_VERSION
"""The frame format version this build reads and writes."""
DEFAULT_MAX_FRAME_SIZE = KX_DEFAULT_MAX_FRAME
"""Default largest frame, in bytes, that encode and decode accept (16 MiB)."""
MAX_FRAME_SIZE_LIMIT = KX_MAX_FRAME_LIMIT
"""Largest frame the format can describe (the largest multiple of 8 below 2**32)."""
MAX_HEADER_NAME_BYTES = KX_MAX_HEADER_NAME
"""Longest header name, in bytes of UTF-8."""
MAX_HEADER_COUNT = KX_MAX_HEADER_COUNT
"""Most headers one message may carry."""

cdef object _EMPTY_HEADERS = MappingProxyType({})
cdef Py_ssize_t _GIL_RELEASE_BYTES = 128 * 1024
cdef uint64_t _U32_MAX = 0xFFFFFFFF
cdef uint64_t _U64_MAX = 0xFFFFFFFFFFFFFFFF


# --------------------------------------------------------------------------------------------
# Errors. One tree under KaelixError; each also subclasses the builtin it resembles.


class KaelixError(Exception):
    """Base class of every error kaelix raises on purpose."""


class DecodeError(KaelixError, ValueError):
    """Bytes that are not a valid kaelix frame (or batch of frames).

    Attributes:
        reason: one of ``truncated``, ``bad_magic``, ``unsupported_version``,
            ``invalid_flags``, ``length_out_of_range``, ``inconsistent_sections``,
            ``checksum_mismatch``, ``invalid_header``, ``trailing_data``.
        offset: absolute byte offset, in the buffer given, of what was wrong.
        frame_offset: byte offset of the start of the frame that was wrong.
    """

    REASONS = ("truncated", "bad_magic", "unsupported_version", "invalid_flags",
               "length_out_of_range", "inconsistent_sections", "checksum_mismatch",
               "invalid_header", "trailing_data")
    """Every reason, in the order the checks run (docs/wire-format.md)."""

    def __init__(self, message, reason, offset, frame_offset):
        super().__init__(message)
        self.reason = reason
        self.offset = offset
        self.frame_offset = frame_offset

    def __reduce__(self):
        return (type(self), (str(self), self.reason, self.offset, self.frame_offset))


class FrameTooLarge(KaelixError, ValueError):
    """A message whose frame would exceed the maximum frame size it was encoded with.

    Attributes:
        size: bytes the frame would take.
        limit: the maximum frame size in force.
    """

    def __init__(self, message, size, limit):
        super().__init__(message)
        self.size = size
        self.limit = limit

    def __reduce__(self):
        return (type(self), (str(self), self.size, self.limit))


_REASONS = {
    KX_ERR_TRUNCATED: "truncated",
    KX_ERR_BAD_MAGIC: "bad_magic",
    KX_ERR_VERSION: "unsupported_version",
    KX_ERR_FLAGS: "invalid_flags",
    KX_ERR_LENGTH: "length_out_of_range",
    KX_ERR_SECTIONS: "inconsistent_sections",
    KX_ERR_CHECKSUM: "checksum_mismatch",
    KX_ERR_HEADER: "invalid_header",
    KX_ERR_TRAILING: "trailing_data",
}

_HEADER_PROBLEMS = {
    KX_HDR_SHORT: "fewer than 6 bytes are left in the headers section for the entry's lengths",
    KX_HDR_NAME_LENGTH: "the name length is 0 or above 255",
    KX_HDR_OVERRUN: "the entry runs past the end of the headers section",
    KX_HDR_UTF8: "the name is not valid UTF-8",
    KX_HDR_LEFTOVER: "bytes are left in the headers section after header_count entries",
    KX_HDR_DUPLICATE: "the name repeats an earlier header's name",
}


cdef int _raise_decode_error(const kx_error *err, size_t frame_offset) except -1:
    """Turns a C parse failure into a DecodeError whose text says what, where and why."""
    cdef size_t at = frame_offset + err.offset
    cdef kx_status status = err.status
    if status == KX_ERR_NOMEM:
        raise MemoryError("out of memory while checking a frame's headers")
    where = f"at byte {at} (frame at byte {frame_offset})"
    if status == KX_ERR_TRUNCATED:
        detail = (f"truncated {where}: the input ends there but the frame needs "
                  f"{err.wanted} bytes")
    elif status == KX_ERR_BAD_MAGIC:
        detail = f"bad magic {where}: a frame starts with b'KLXF'; this is not a kaelix frame"
    elif status == KX_ERR_VERSION:
        detail = (f"unsupported version {err.found} {where}: this build reads version "
                  f"{KX_VERSION}")
    elif status == KX_ERR_FLAGS:
        detail = f"invalid flags 0x{err.found:02x} {where}: only bit 0 (key present) is defined"
    elif status == KX_ERR_LENGTH:
        detail = (f"length out of range {where}: frame_length {err.found} must be a multiple "
                  f"of 8 from {KX_HEADER_SIZE} to max_frame_size={err.wanted}")
    elif status == KX_ERR_SECTIONS:
        if err.offset >= KX_HEADER_SIZE:
            detail = f"inconsistent sections {where}: padding byte is 0x{err.found:02x}, not 0"
        else:
            detail = (f"inconsistent sections {where}: key, headers and payload take "
                      f"{err.found} bytes with the header, which does not fit frame_length "
                      f"{err.wanted} (or a key length is set without the key flag)")
    elif status == KX_ERR_CHECKSUM:
        detail = (f"checksum mismatch {where}: stored 0x{err.found:08x}, computed "
                  f"0x{err.wanted:08x}; the frame was altered after it was encoded")
    elif status == KX_ERR_HEADER:
        detail = f"invalid header entry {where}: {_HEADER_PROBLEMS[err.wanted]}"
    else:
        detail = f"trailing data {where}: decode() takes exactly one frame; use decode_batch()"
    raise DecodeError(detail, _REASONS[status], at, frame_offset)


cdef inline uint32_t _max_frame(object value) except 0:
    """The max_frame_size argument, checked: an int from 56 to MAX_FRAME_SIZE_LIMIT."""
    cdef long long size
    if type(value) is not int:
        if isinstance(value, bool) or not hasattr(type(value), "__index__"):
            raise TypeError(f"max_frame_size must be an int, got {type(value).__name__}")
        value = operator.index(value)
    try:
        size = value
    except OverflowError:
        size = -1
    if size < KX_HEADER_SIZE or size > KX_MAX_FRAME_LIMIT:
        raise ValueError(
            f"max_frame_size must be from {KX_HEADER_SIZE} to {KX_MAX_FRAME_LIMIT} bytes, "
            f"got {value}")
    return <uint32_t>size


# --------------------------------------------------------------------------------------------
# Borrowing the bytes of any bytes-like object.


cdef struct _Span:
    const unsigned char *data
    Py_ssize_t length


cdef class _Borrowed:
    """The bytes of a bytes-like object, held for as long as this object lives."""
    cdef Py_buffer view
    cdef bint held

    def __dealloc__(self):
        if self.held:
            PyBuffer_Release(&self.view)


cdef inline object _borrow(object obj, _Span *span, str what):
    """Points span at obj's bytes. Returns an owner to keep alive (None for bytes)."""
    cdef _Borrowed owner
    if type(obj) is bytes:
        span.data = <const unsigned char *>PyBytes_AS_STRING(obj)
        span.length = PyBytes_GET_SIZE(obj)
        return None
    if isinstance(obj, str) or not PyObject_CheckBuffer(obj):
        raise TypeError(
            f"{what} must be bytes-like (bytes, bytearray, memoryview, a numpy uint8 array), "
            f"got {type(obj).__name__}")
    owner = _Borrowed.__new__(_Borrowed)
    try:
        PyObject_GetBuffer(obj, &owner.view, PyBUF_SIMPLE)
    except BufferError as exc:
        raise TypeError(f"{what} must be a contiguous bytes-like object: {exc}") from None
    owner.held = True
    span.data = <const unsigned char *>owner.view.buf
    span.length = owner.view.len
    return owner


cdef struct _Columns:
    # The MessageBatch columns, borrowed writable for one fill.
    int64_t *offsets
    uint64_t *sequence
    uint32_t *partition
    uint64_t *producer
    int64_t *timestamp
    uint32_t *checksum
    Py_buffer views[6]
    int held


cdef int _columns_acquire(_Columns *c, tuple columns, Py_ssize_t n) except -1:
    """Borrows (offsets, sequence, partition, producer_id, timestamp_ns, checksum), each with
    room for n entries (offsets n + 1); release with _columns_release even on failure."""
    cdef Py_ssize_t widths[6]
    cdef void *pointers[6]
    cdef Py_ssize_t need
    cdef int i
    widths[:] = [8, 8, 4, 8, 8, 4]
    c.held = 0
    for i in range(6):
        PyObject_GetBuffer(columns[i], &c.views[i], PyBUF_WRITABLE)
        c.held += 1
        need = (n + (i == 0)) * widths[i]
        if c.views[i].len < need:
            raise ValueError(f"column {i} holds {c.views[i].len} bytes, {need} needed")
        pointers[i] = c.views[i].buf
    c.offsets = <int64_t *>pointers[0]
    c.sequence = <uint64_t *>pointers[1]
    c.partition = <uint32_t *>pointers[2]
    c.producer = <uint64_t *>pointers[3]
    c.timestamp = <int64_t *>pointers[4]
    c.checksum = <uint32_t *>pointers[5]
    return 0


cdef void _columns_release(_Columns *c) noexcept:
    cdef int i
    for i in range(c.held):
        PyBuffer_Release(&c.views[i])
    c.held = 0


# --------------------------------------------------------------------------------------------
# Message


cdef bytes _as_bytes(object value, str field):
    if type(value) is bytes:
        return <bytes>value
    if isinstance(value, bytes):
        return bytes(value)
    if isinstance(value, str) or not PyObject_CheckBuffer(value):
        raise TypeError(
            f"{field} must be bytes-like (bytes, bytearray, memoryview), got "
            f"{type(value).__name__}")
    return memoryview(value).tobytes()


cdef object _as_int(object value, str field, object low, object high):
    if type(value) is not int:
        if isinstance(value, bool) or not hasattr(type(value), "__index__"):
            raise TypeError(f"{field} must be an int, got {type(value).__name__}")
        value = operator.index(value)
    if not (low <= value <= high):
        raise ValueError(f"{field} must be from {low} to {high}, got {value}")
    return value


cdef str _short_bytes(bytes value):
    if len(value) <= 48:
        return repr(value)
    return f"{value[:32]!r}...<{len(value)} bytes>"


def _rebuild_message(payload, key, headers, partition, producer_id, sequence, timestamp_ns):
    """Unpickles a Message (module-level so that pickle can name it)."""
    return Message(payload, key=key, headers=headers, partition=partition,
                   producer_id=producer_id, sequence=sequence, timestamp_ns=timestamp_ns)


@cython.freelist(64)
@cython.final
cdef class Message:
    """One message: a payload with an optional key, headers and stream coordinates.

    Immutable and compared by value. Every argument but the payload is keyword-only.

    Args:
        payload: the message body, any bytes-like object (stored as ``bytes``).
        key: optional bytes-like key, or None for no key (``b""`` is a key).
        headers: optional mapping of header names (non-empty ``str``, at most 255 bytes of
            UTF-8) to bytes-like values; at most 65,535 headers.
        partition: partition number, 0 to 2**32 - 1.
        producer_id: producer id, 0 to 2**64 - 1.
        sequence: sequence number within (producer, partition), 0 to 2**64 - 1.
        timestamp_ns: nanoseconds since the Unix epoch, a signed 64-bit integer.

    Raises:
        TypeError: an argument has the wrong type (the message names the field).
        ValueError: an argument is out of range, or the whole message could not fit in a
            frame (the message names the field).

    Example:
        >>> Message(b"hello", key=b"user-1", headers={"trace": b"abc"}, sequence=3).sequence
        3
    """

    cdef readonly bytes payload
    """The message body."""
    cdef readonly object key
    """The key (``bytes``), or None."""
    cdef dict _headers  # None when there are no headers
    cdef readonly uint32_t partition
    """Partition number."""
    cdef readonly uint64_t producer_id
    """Id of the producer that sent the message."""
    cdef readonly uint64_t sequence
    """Sequence number within (producer, partition)."""
    cdef readonly int64_t timestamp_ns
    """Send time, nanoseconds since the Unix epoch."""
    cdef uint32_t _headers_size  # bytes of the encoded headers section

    def __init__(self, payload, *, key=None, headers=None, partition=0, producer_id=0,
                 sequence=0, timestamp_ns=0):
        cdef dict checked
        cdef Py_ssize_t name_size
        cdef uint64_t headers_size = 0
        self.payload = _as_bytes(payload, "payload")
        self.key = None if key is None else _as_bytes(key, "key")
        self.partition = _as_int(partition, "partition", 0, _U32_MAX)
        self.producer_id = _as_int(producer_id, "producer_id", 0, _U64_MAX)
        self.sequence = _as_int(sequence, "sequence", 0, _U64_MAX)
        self.timestamp_ns = _as_int(timestamp_ns, "timestamp_ns", -(1 << 63), (1 << 63) - 1)
        if headers is None:
            self._headers = None
        else:
            if not isinstance(headers, Mapping):
                raise TypeError(
                    f"headers must be a mapping of str to bytes, got {type(headers).__name__}")
            checked = {}
            for name, value in headers.items():
                if type(name) is not str:
                    raise TypeError(
                        f"headers: names must be str, got {type(name).__name__} ({name!r})")
                try:
                    PyUnicode_AsUTF8AndSize(name, &name_size)
                except UnicodeEncodeError:
                    raise ValueError(f"headers: name {name!r} cannot be encoded as UTF-8") from None
                if name_size == 0 or name_size > KX_MAX_HEADER_NAME:
                    raise ValueError(
                        f"headers: name {name!r} is {name_size} bytes of UTF-8; names must be "
                        f"1 to {KX_MAX_HEADER_NAME} bytes")
                value = _as_bytes(value, f"headers[{name!r}]")
                checked[name] = value
                headers_size += KX_HEADER_ENTRY_FIXED + name_size + len(<bytes>value)
            if len(checked) > KX_MAX_HEADER_COUNT:
                raise ValueError(
                    f"headers: {len(checked)} headers, at most {KX_MAX_HEADER_COUNT} allowed")
            self._headers = checked or None
        key_size = 0 if self.key is None else len(<bytes>self.key)
        if kx_frame_size(key_size, headers_size, len(self.payload)) == 0:
            raise ValueError(
                f"payload: the message would not fit in one frame ({len(self.payload)} payload "
                f"bytes, {key_size} key bytes, {headers_size} header bytes; a frame holds at "
                f"most {KX_MAX_FRAME_LIMIT} bytes)")
        self._headers_size = <uint32_t>headers_size

    @property
    def headers(self):
        """Read-only mapping of header names to values (empty when there are none)."""
        if self._headers is None:
            return _EMPTY_HEADERS
        return <object>PyDictProxy_New(self._headers)

    @property
    def frame_size(self):
        """Bytes this message takes as an encoded frame, padding included."""
        return _frame_size(self)

    def replace(self, **changes):
        """Returns a copy with the given fields changed, like ``dataclasses.replace``."""
        fields = {
            "payload": self.payload, "key": self.key, "headers": self._headers,
            "partition": self.partition, "producer_id": self.producer_id,
            "sequence": self.sequence, "timestamp_ns": self.timestamp_ns,
        }
        unknown = set(changes) - set(fields)
        if unknown:
            raise TypeError(f"replace() got unknown field(s): {', '.join(sorted(unknown))}")
        fields.update(changes)
        payload = fields.pop("payload")
        return Message(payload, **fields)

    def __eq__(self, other):
        if type(other) is not Message:
            return NotImplemented
        cdef Message o = <Message>other
        return (self.sequence == o.sequence and self.partition == o.partition
                and self.producer_id == o.producer_id and self.timestamp_ns == o.timestamp_ns
                and self.payload == o.payload and self.key == o.key
                and (self._headers or {}) == (o._headers or {}))

    def __hash__(self):
        headers = frozenset(self._headers.items()) if self._headers else None
        return hash((self.payload, self.key, headers, self.partition, self.producer_id,
                     self.sequence, self.timestamp_ns))

    def __repr__(self):
        parts = [_short_bytes(self.payload)]
        if self.key is not None:
            parts.append(f"key={_short_bytes(self.key)}")
        if self._headers:
            items = ", ".join(f"{name!r}: {_short_bytes(value)}"
                              for name, value in self._headers.items())
            parts.append(f"headers={{{items}}}")
        parts.append(f"partition={self.partition}")
        parts.append(f"producer_id={self.producer_id}")
        parts.append(f"sequence={self.sequence}")
        parts.append(f"timestamp_ns={self.timestamp_ns}")
        return f"Message({', '.join(parts)})"

    def __reduce__(self):
        return (_rebuild_message, (self.payload, self.key, self._headers, self.partition,
                                   self.producer_id, self.sequence, self.timestamp_ns))


cdef inline uint64_t _frame_size(Message m):
    cdef uint64_t key_size = 0 if m.key is None else PyBytes_GET_SIZE(m.key)
    return kx_frame_size(key_size, m._headers_size, PyBytes_GET_SIZE(m.payload))


cdef uint32_t _write_frame(Message m, unsigned char *p, uint32_t frame_length):
    """Writes m as one sealed frame of frame_length bytes at p; returns its checksum."""
    cdef uint32_t key_size = 0
    cdef uint32_t payload_size = <uint32_t>PyBytes_GET_SIZE(m.payload)
    cdef unsigned char *out = p + KX_HEADER_SIZE
    cdef Py_ssize_t pos = 0
    cdef PyObject *name
    cdef PyObject *value
    cdef const char *name_utf8
    cdef Py_ssize_t name_size, value_size
    cdef uint16_t header_count = 0
    if m.key is not None:
        key_size = <uint32_t>PyBytes_GET_SIZE(m.key)
    if m._headers is not None:
        header_count = <uint16_t>len(m._headers)
    kx_frame_write_header(p, frame_length, m.key is not None, header_count, m.producer_id,
                          m.sequence, m.timestamp_ns, m.partition, key_size, m._headers_size,
                          payload_size)
    if key_size:
        memcpy(out, PyBytes_AS_STRING(m.key), key_size)
        out += key_size
    if m._headers is not None:
        while PyDict_Next(m._headers, &pos, &name, &value):
            name_utf8 = PyUnicode_AsUTF8AndSize(<object>name, &name_size)
            value_size = PyBytes_GET_SIZE(<object>value)
            kx_st16(out, <uint16_t>name_size)
            kx_st32(out + 2, <uint32_t>value_size)
            memcpy(out + KX_HEADER_ENTRY_FIXED, name_utf8, name_size)
            memcpy(out + KX_HEADER_ENTRY_FIXED + name_size, PyBytes_AS_STRING(<object>value),
                   value_size)
            out += KX_HEADER_ENTRY_FIXED + name_size + value_size
    if payload_size:
        memcpy(out, PyBytes_AS_STRING(m.payload), payload_size)
    return kx_frame_seal(p, frame_length)


cdef Message _read_frame(const unsigned char *p, const kx_frame_info *fi):
    """Builds a Message from a frame that kx_frame_parse accepted."""
    cdef Message m = Message.__new__(Message)
    cdef const unsigned char *section = p + KX_HEADER_SIZE
    cdef const unsigned char *end
    cdef uint32_t name_size, value_size
    cdef dict headers
    m.partition = fi.partition
    m.producer_id = fi.producer_id
    m.sequence = fi.sequence
    m.timestamp_ns = fi.timestamp_ns
    m._headers_size = fi.headers_length
    if fi.flags & 1:
        m.key = PyBytes_FromStringAndSize(<const char *>section, fi.key_length)
        section += fi.key_length
    if fi.header_count:
        headers = {}
        end = section + fi.headers_length
        while section < end:
            name_size = kx_ld16(section)
            value_size = kx_ld32(section + 2)
            section += KX_HEADER_ENTRY_FIXED
            PyDict_SetItem(
                headers,
                PyUnicode_DecodeUTF8(<const char *>section, name_size, NULL),
                PyBytes_FromStringAndSize(<const char *>section + name_size, value_size))
            section += name_size + value_size
        m._headers = headers
    m.payload = PyBytes_FromStringAndSize(<const char *>section, fi.payload_length)
    return m


cdef inline Message _as_message(object item, Py_ssize_t index):
    if type(item) is not Message:
        raise TypeError(f"messages[{index}] must be a kaelix.Message, got {type(item).__name__}")
    return <Message>item


cdef inline int _check_fits(uint64_t size, uint32_t max_frame_size,
                           Py_ssize_t index) except -1:
    """Raises FrameTooLarge for a frame over the limit; index < 0 means a lone message."""
    if size > <uint64_t>max_frame_size:
        what = "the message" if index < 0 else f"messages[{index}]"
        raise FrameTooLarge(
            f"{what} needs a {size}-byte frame, over max_frame_size={max_frame_size}; "
            f"raise max_frame_size or split the payload", size, max_frame_size)
    return 0


# --------------------------------------------------------------------------------------------
# The one-shot codec


def encode(Message msg not None, *, max_frame_size=DEFAULT_MAX_FRAME_SIZE):
    """Encodes one message as a frame.

    Args:
        msg: the message.
        max_frame_size: the largest frame allowed, in bytes (default 16 MiB).

    Returns:
        The frame, ``msg.frame_size`` bytes.

    Raises:
        FrameTooLarge: the frame would exceed ``max_frame_size``.
    """
    cdef uint64_t size = _frame_size(msg)
    cdef uint32_t limit = _max_frame(max_frame_size)
    _check_fits(size, limit, -1)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>size)
    _write_frame(msg, <unsigned char *>PyBytes_AS_STRING(out), <uint32_t>size)
    return out


def decode(buf, *, max_frame_size=DEFAULT_MAX_FRAME_SIZE):
    """Decodes exactly one frame.

    Args:
        buf: any bytes-like object holding one frame and nothing else.
        max_frame_size: the largest frame accepted, in bytes (default 16 MiB).

    Raises:
        DecodeError: the bytes are not exactly one valid frame; ``reason`` and ``offset``
            say what was wrong and where.
    """
    cdef _Span span
    cdef kx_frame_info fi
    cdef kx_error err
    cdef uint32_t limit = _max_frame(max_frame_size)
    owner = _borrow(buf, &span, "buf")
    if kx_frame_parse(span.data, span.length, limit, 1, &fi, &err) != KX_OK:
        _raise_decode_error(&err, 0)
    if fi.frame_length != span.length:
        err.status = KX_ERR_TRAILING
        err.offset = fi.frame_length
        _raise_decode_error(&err, 0)
    return _read_frame(span.data, &fi)


cdef bytes _encode_many(object messages, object max_frame_size, object columns):
    """Encodes messages back to back; fills the batch columns when columns is not None."""
    cdef object seq = PySequence_Fast(messages, "messages must be an iterable of Message")
    cdef Py_ssize_t n = PySequence_Fast_GET_SIZE(seq)
    cdef PyObject **items = PySequence_Fast_ITEMS(seq)
    cdef Py_ssize_t i
    cdef uint64_t total = 0, size
    cdef Message m
    cdef unsigned char *base
    cdef unsigned char *p
    cdef _Columns cols
    cdef uint32_t crc
    cdef uint32_t limit = _max_frame(max_frame_size)
    for i in range(n):
        m = _as_message(<object>items[i], i)
        size = _frame_size(m)
        _check_fits(size, limit, i)
        total += size
    cdef bytes out = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>total)
    base = <unsigned char *>PyBytes_AS_STRING(out)
    cols.held = 0
    try:
        if columns is not None:
            _columns_acquire(&cols, columns, n)
        p = base
        for i in range(n):
            m = <Message>items[i]
            size = _frame_size(m)
            crc = _write_frame(m, p, <uint32_t>size)
            if columns is not None:
                cols.offsets[i] = p - base
                cols.sequence[i] = m.sequence
                cols.partition[i] = m.partition
                cols.producer[i] = m.producer_id
                cols.timestamp[i] = m.timestamp_ns
                cols.checksum[i] = crc
            p += size
        if columns is not None:
            cols.offsets[n] = p - base
    finally:
        _columns_release(&cols)
    return out


def encode_batch(messages, *, max_frame_size=DEFAULT_MAX_FRAME_SIZE):
    """Encodes messages as frames laid end to end, in order.

    Args:
        messages: an iterable of ``Message`` (a list or tuple is used without a copy).
        max_frame_size: the largest frame allowed for any one message (default 16 MiB).

    Raises:
        TypeError: an item is not a Message (the message gives its index).
        FrameTooLarge: one message's frame would exceed ``max_frame_size``.
    """
    return _encode_many(messages, max_frame_size, None)


def _encode_batch_columns(messages, max_frame_size, tuple columns):
    """encode_batch that also fills (offsets, sequence, partition, producer_id,
    timestamp_ns, checksum) arrays sized for len(messages); for MessageBatch."""
    return _encode_many(messages, max_frame_size, columns)


def decode_batch(buf, *, max_frame_size=DEFAULT_MAX_FRAME_SIZE):
    """Decodes every frame of a batch into a list of messages.

    Args:
        buf: any bytes-like object holding zero or more frames end to end.
        max_frame_size: the largest frame accepted, in bytes (default 16 MiB).

    Raises:
        DecodeError: a frame is invalid, or the last one is cut short; ``offset`` is
            absolute in ``buf``.
    """
    cdef _Span span
    cdef kx_frame_info fi
    cdef kx_error err
    cdef size_t pos = 0
    cdef uint32_t limit = _max_frame(max_frame_size)
    owner = _borrow(buf, &span, "buf")
    out = []
    while pos < <size_t>span.length:
        if kx_frame_parse(span.data + pos, span.length - pos, limit, 1,
                          &fi, &err) != KX_OK:
            _raise_decode_error(&err, pos)
        out.append(_read_frame(span.data + pos, &fi))
        pos += fi.frame_length
    return out


cdef kx_status _scan_frames(const unsigned char *data, size_t length, uint32_t max_frame_size,
                            Py_ssize_t *count, size_t *position, kx_error *err,
                            _Columns *cols, Py_ssize_t capacity, int verify_crc) noexcept nogil:
    cdef kx_frame_info fi
    cdef kx_status status = KX_OK
    cdef size_t pos = 0
    cdef Py_ssize_t n = 0
    while pos < length and n != capacity:
        status = kx_frame_parse(data + pos, length - pos, max_frame_size, verify_crc, &fi, err)
        if status != KX_OK:
            break
        cols.offsets[n] = pos
        cols.sequence[n] = fi.sequence
        cols.partition[n] = fi.partition
        cols.producer[n] = fi.producer_id
        cols.timestamp[n] = fi.timestamp_ns
        cols.checksum[n] = fi.crc
        n += 1
        pos += fi.frame_length
    count[0] = n
    position[0] = pos
    return status


def _scan_into(buf, max_frame_size, tuple columns, Py_ssize_t count=-1, bint verify_crc=True):
    """Validates every frame of buf in one pass and fills the batch columns.

    columns is (offsets, sequence, partition, producer_id, timestamp_ns, checksum): writable
    int64/uint64/uint32/uint64/int64/uint32 arrays with room for len(buf) // 56 frames, or
    for count frames when buf is known to hold exactly that many (offsets one more). Returns
    the number of frames. Raises DecodeError at the first bad one. verify_crc=False skips
    the checksums (and leaves the checksum column as the frames say) for frames checked
    before by this process, such as the in-process ring's.
    """
    cdef _Span span
    cdef kx_error err
    cdef size_t pos = 0
    cdef Py_ssize_t n = 0, capacity
    cdef _Columns cols
    cdef kx_status status = KX_OK
    cdef uint32_t limit = _max_frame(max_frame_size)
    owner = _borrow(buf, &span, "buf")
    capacity = span.length // KX_HEADER_SIZE
    if 0 <= count < capacity:
        capacity = count
    cols.held = 0
    try:
        _columns_acquire(&cols, columns, capacity)
        if span.length >= _GIL_RELEASE_BYTES:
            with nogil:
                status = _scan_frames(span.data, span.length, limit, &n, &pos, &err, &cols,
                                      capacity if count >= 0 else -1, verify_crc)
        else:
            status = _scan_frames(span.data, span.length, limit, &n, &pos, &err, &cols,
                                      capacity if count >= 0 else -1, verify_crc)
        if status != KX_OK:
            _raise_decode_error(&err, pos)
        if pos < <size_t>span.length:
            raise ValueError(f"buf holds more than the {count} frames announced")
        cols.offsets[n] = pos
    finally:
        _columns_release(&cols)
    return n


cdef object _parse_validated(object buf, Py_ssize_t offset, _Span *span, kx_frame_info *fi):
    """Parses the frame at offset of a buffer _scan_into accepted before (the checksum is not
    recomputed; bounds and structure still are). Returns the owner of span's bytes."""
    cdef kx_error err
    owner = _borrow(buf, span, "buf")
    if offset < 0 or offset >= span.length:
        raise IndexError(f"frame offset {offset} is outside a {span.length}-byte buffer")
    if kx_frame_parse(span.data + offset, span.length - offset, KX_MAX_FRAME_LIMIT, 0, fi,
                      &err) != KX_OK:
        _raise_decode_error(&err, offset)
    return owner


def _decode_at(buf, Py_ssize_t offset):
    """Decodes the frame at offset of a buffer already validated by _scan_into."""
    cdef _Span span
    cdef kx_frame_info fi
    owner = _parse_validated(buf, offset, &span, &fi)
    return _read_frame(span.data + offset, &fi)


def _payload_span(buf, Py_ssize_t offset):
    """(start, length) of the payload of the validated frame at offset."""
    cdef _Span span
    cdef kx_frame_info fi
    owner = _parse_validated(buf, offset, &span, &fi)
    return offset + KX_HEADER_SIZE + fi.key_length + fi.headers_length, fi.payload_length


# --------------------------------------------------------------------------------------------
# CRC32C


cdef inline uint32_t _crc_value(object value) except? 0xFFFFFFFF:
    if type(value) is int and 0 <= value <= 0xFFFFFFFF:
        return <uint32_t>value
    return <uint32_t>_as_int(value, "value", 0, _U32_MAX)


def crc32c(data, value=0):
    """CRC-32C (Castagnoli) of data, continuing from a previous checksum.

    Uses the CPU's CRC32C instruction where there is one (see ``crc32c_implementation``).
    ``crc32c(b, crc32c(a)) == crc32c(a + b)``.

    Args:
        data: any bytes-like object.
        value: the checksum of the data before this one (0 to start).

    Returns:
        The checksum, an int from 0 to 2**32 - 1.
    """
    cdef _Span span
    cdef uint32_t crc = _crc_value(value)
    owner = _borrow(data, &span, "data")
    if span.length >= _GIL_RELEASE_BYTES:
        with nogil:
            crc = kx_crc32c(crc, span.data, span.length)
    else:
        crc = kx_crc32c(crc, span.data, span.length)
    return crc


def _crc32c_table(data, value=0):
    """crc32c with the portable table implementation, whatever the CPU has (for tests)."""
    return _crc32c_using("table", data, value)


_CRC_IMPLEMENTATIONS = {
    "table": KX_CRC_IMPL_TABLE,
    "sse4.2": KX_CRC_IMPL_SSE42,
    "avx512-vpclmulqdq": KX_CRC_IMPL_AVX512,
    "armv8": KX_CRC_IMPL_ARMV8,
}


def _crc32c_using(str implementation, data, value=0):
    """crc32c with one named implementation; None when this CPU or build lacks it (for the
    tests, which check every available path, not only the one the dispatcher picks)."""
    cdef _Span span
    cdef uint32_t crc = _crc_value(value)
    cdef uint32_t out = 0
    if implementation not in _CRC_IMPLEMENTATIONS:
        raise ValueError(f"unknown CRC32C implementation {implementation!r}; known: "
                         f"{', '.join(_CRC_IMPLEMENTATIONS)}")
    owner = _borrow(data, &span, "data")
    if not kx_crc32c_using(_CRC_IMPLEMENTATIONS[implementation], crc, span.data, span.length,
                           &out):
        return None
    return out


def crc32c_implementation():
    """Which CRC32C implementation this process uses for large buffers.

    One of ``"avx512-vpclmulqdq"`` (x86-64 with AVX-512 and VPCLMULQDQ, from 256 bytes; the
    ``crc32`` instruction below that), ``"sse4.2"`` (the x86-64 ``crc32`` instruction),
    ``"armv8"`` (the ARMv8 CRC32 extension) or ``"table"`` (portable slicing-by-8), chosen at
    import from what the CPU offers.
    """
    return kx_crc32c_impl_name().decode("ascii")
