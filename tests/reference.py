"""Plain-Python reference for the kaelix frame format, version 1 (docs/wire-format.md).

This module is the slow, obviously correct twin of the compiled codec: the golden vectors in
``tests/vectors/`` are generated from it and the tests compare ``kaelix`` against it byte for
byte and error for error. It follows the spec's "Validation order" section step by step and
favours clarity over speed everywhere.

It must never import ``kaelix`` (or anything outside the standard library): a reference that
shares code with the implementation under test proves nothing.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "FIXED_HEADER",
    "FIXED_HEADER_SIZE",
    "FLAG_HAS_KEY",
    "LARGEST_MAX_FRAME_SIZE",
    "MAGIC",
    "REASONS",
    "VERSION",
    "RefDecodeError",
    "align8",
    "assemble",
    "crc32c",
    "decode",
    "decode_batch",
    "encode",
    "encode_header_entry",
    "frame_ranges",
    "with_crc",
]

MAGIC = b"KLXF"
REASONS = (
    "truncated",
    "bad_magic",
    "unsupported_version",
    "invalid_flags",
    "length_out_of_range",
    "inconsistent_sections",
    "checksum_mismatch",
    "invalid_header",
    "trailing_data",
)
"""Every ``DecodeError.reason``, in the order the spec checks them."""
VERSION = 1
FLAG_HAS_KEY = 0x01
FIXED_HEADER_SIZE = 56
DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024
LARGEST_MAX_FRAME_SIZE = 4_294_967_288  # the largest multiple of 8 that a u32 holds

# magic, crc32c, version, flags, header_count, frame_length, producer_id, sequence,
# timestamp_ns, partition, key_length, headers_length, payload_length
FIXED_HEADER = struct.Struct("<4sIBBHIQQqIIII")
assert FIXED_HEADER.size == FIXED_HEADER_SIZE

HEADER_ENTRY_LENGTHS = struct.Struct("<HI")  # name_length, value_length

# Byte offsets of the fixed-header fields that errors point at.
OFFSET_CRC = 4
OFFSET_VERSION = 8
OFFSET_FLAGS = 9
OFFSET_HEADER_COUNT = 10
OFFSET_FRAME_LENGTH = 12
OFFSET_KEY_LENGTH = 44
OFFSET_HEADERS_LENGTH = 48
OFFSET_PAYLOAD_LENGTH = 52

_U32_MAX = 2**32 - 1
_U64_MAX = 2**64 - 1
_I64_MIN = -(2**63)
_I64_MAX = 2**63 - 1


# --------------------------------------------------------------------------------------------
# CRC-32C
# --------------------------------------------------------------------------------------------

_CASTAGNOLI_REFLECTED = 0x82F63B78


def _table_entry(byte: int) -> int:
    """CRC of one byte, computed bit by bit: the definition the table is built from."""
    crc = byte
    for _ in range(8):
        crc = (crc >> 1) ^ _CASTAGNOLI_REFLECTED if crc & 1 else crc >> 1
    return crc


_CRC_TABLE = tuple(_table_entry(byte) for byte in range(256))


def crc32c(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    """CRC-32C (Castagnoli, RFC 3720) of ``data``, continuing from the checksum ``value``.

    Continuation works like the ``crc32c`` package: ``crc32c(b, crc32c(a)) == crc32c(a + b)``.
    """
    crc = value ^ 0xFFFFFFFF
    for byte in bytes(data):
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# --------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------


def align8(size: int) -> int:
    """``size`` rounded up to the next multiple of 8."""
    return (size + 7) // 8 * 8


def encode_header_entry(name: bytes, value: bytes) -> bytes:
    """One headers-section entry with raw (not necessarily valid) name bytes."""
    return HEADER_ENTRY_LENGTHS.pack(len(name), len(value)) + name + value


def assemble(
    *,
    payload: bytes,
    key: bytes | None,
    headers_section: bytes,
    header_count: int,
    partition: int,
    producer_id: int,
    sequence: int,
    timestamp_ns: int,
) -> bytes:
    """A frame with a correct checksum around sections given as raw bytes.

    ``encode`` builds on it; the vector generator uses it directly to make frames whose
    headers section is malformed but whose checksum is right, so that a decoder gets past
    step 8 and reaches the check a case is about.
    """
    key_bytes = b"" if key is None else key
    content_length = FIXED_HEADER_SIZE + len(key_bytes) + len(headers_section) + len(payload)
    frame_length = align8(content_length)
    fixed = FIXED_HEADER.pack(
        MAGIC,
        0,  # the checksum, filled in by with_crc below
        VERSION,
        0 if key is None else FLAG_HAS_KEY,
        header_count,
        frame_length,
        producer_id,
        sequence,
        timestamp_ns,
        partition,
        len(key_bytes),
        len(headers_section),
        len(payload),
    )
    padding = bytes(frame_length - content_length)
    return with_crc(fixed + key_bytes + headers_section + payload + padding)


def with_crc(frame: bytes | bytearray, start: int = 0) -> bytes:
    """``frame`` with the checksum of the frame at ``start`` recomputed from its bytes.

    The frame's extent is taken from its own ``frame_length`` field, which must lie within
    the buffer. Used to make deliberately malformed frames that still pass the checksum.
    """
    buffer = bytearray(frame)
    (frame_length,) = struct.unpack_from("<I", buffer, start + OFFSET_FRAME_LENGTH)
    end = start + frame_length
    if frame_length < 8 or end > len(buffer):
        raise ValueError(f"frame_length {frame_length} at {start} does not fit the buffer")
    struct.pack_into("<I", buffer, start + OFFSET_CRC, crc32c(buffer[start + 8 : end]))
    return bytes(buffer)


def _check_int(field: str, value: int, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{field} must be an int, got {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{field} must be in [{low}, {high}], got {value}")


def encode(
    payload: bytes,
    key: bytes | None,
    headers: Mapping[str, bytes],
    partition: int,
    producer_id: int,
    sequence: int,
    timestamp_ns: int,
) -> bytes:
    """The frame (version 1) that carries one message; headers in the mapping's order."""
    _check_int("partition", partition, 0, _U32_MAX)
    _check_int("producer_id", producer_id, 0, _U64_MAX)
    _check_int("sequence", sequence, 0, _U64_MAX)
    _check_int("timestamp_ns", timestamp_ns, _I64_MIN, _I64_MAX)
    if len(headers) > 0xFFFF:
        raise ValueError(f"headers: at most 65535 entries, got {len(headers)}")
    entries = []
    for name, value in headers.items():
        name_bytes = name.encode("utf-8")
        if not 1 <= len(name_bytes) <= 255:
            raise ValueError(f"headers: name {name!r} must be 1 to 255 UTF-8 bytes")
        entries.append(encode_header_entry(name_bytes, bytes(value)))
    return assemble(
        payload=bytes(payload),
        key=None if key is None else bytes(key),
        headers_section=b"".join(entries),
        header_count=len(entries),
        partition=partition,
        producer_id=producer_id,
        sequence=sequence,
        timestamp_ns=timestamp_ns,
    )


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------


class RefDecodeError(Exception):
    """A malformed input: ``reason`` from the spec, absolute byte ``offset``, ``frame_offset``."""

    def __init__(self, reason: str, offset: int, frame_offset: int) -> None:
        super().__init__(f"{reason} at byte {offset} (frame starting at byte {frame_offset})")
        self.reason = reason
        self.offset = offset
        self.frame_offset = frame_offset


def _check_max_frame_size(max_frame_size: int) -> None:
    _check_int("max_frame_size", max_frame_size, FIXED_HEADER_SIZE, LARGEST_MAX_FRAME_SIZE)


def _decode_headers(
    buf: bytes, start: int, length: int, count: int, frame_offset: int
) -> dict[str, bytes]:
    """Step 10: the headers section ``buf[start:start + length]`` holding ``count`` entries."""

    def fail(offset: int) -> RefDecodeError:
        return RefDecodeError("invalid_header", offset, frame_offset)

    end = start + length
    entries: list[tuple[int, str, bytes]] = []  # (first byte of the entry, name, value)
    position = start
    for _ in range(count):
        if end - position < HEADER_ENTRY_LENGTHS.size:
            raise fail(position)
        name_length, value_length = HEADER_ENTRY_LENGTHS.unpack_from(buf, position)
        if not 1 <= name_length <= 255:
            raise fail(position)
        name_start = position + HEADER_ENTRY_LENGTHS.size
        value_start = name_start + name_length
        entry_end = value_start + value_length
        if entry_end > end:
            raise fail(position)
        try:
            name = buf[name_start:value_start].decode("utf-8")  # strict: the spec's definition
        except UnicodeDecodeError:
            raise fail(position) from None
        entries.append((position, name, buf[value_start:entry_end]))
        position = entry_end
    if position != end:
        raise fail(position)
    # Duplicates come last in the spec's order: only a structurally valid section gets here.
    headers: dict[str, bytes] = {}
    for entry_start, name, value in entries:
        if name in headers:
            raise fail(entry_start)
        headers[name] = value
    return headers


def _decode_frame(buf: bytes, start: int, max_frame_size: int) -> tuple[dict[str, Any], int]:
    """The message in the frame at ``buf[start:]`` and the offset just past that frame."""

    def fail(reason: str, offset: int) -> RefDecodeError:
        return RefDecodeError(reason, offset, start)

    available = len(buf) - start
    # 1. Not even a fixed header.
    if available < FIXED_HEADER_SIZE:
        prefix = buf[start : start + min(available, len(MAGIC))]
        if prefix != MAGIC[: len(prefix)]:
            raise fail("bad_magic", start)
        raise fail("truncated", start + available)
    (
        magic,
        stored_crc,
        version,
        flags,
        header_count,
        frame_length,
        producer_id,
        sequence,
        timestamp_ns,
        partition,
        key_length,
        headers_length,
        payload_length,
    ) = FIXED_HEADER.unpack_from(buf, start)
    # 2. to 4. Identity of the format.
    if magic != MAGIC:
        raise fail("bad_magic", start)
    if version != VERSION:
        raise fail("unsupported_version", start + OFFSET_VERSION)
    if flags & ~FLAG_HAS_KEY:
        raise fail("invalid_flags", start + OFFSET_FLAGS)
    # 5. and 6. The frame's extent.
    if frame_length < FIXED_HEADER_SIZE or frame_length % 8 or frame_length > max_frame_size:
        raise fail("length_out_of_range", start + OFFSET_FRAME_LENGTH)
    if frame_length > available:
        raise fail("truncated", start + available)
    # 7. Sections against the frame (Python integers cannot overflow).
    has_key = bool(flags & FLAG_HAS_KEY)
    content_length = FIXED_HEADER_SIZE + key_length + headers_length + payload_length
    if (
        (not has_key and key_length != 0)
        or content_length > frame_length
        or frame_length - content_length > 7
    ):
        raise fail("inconsistent_sections", start + OFFSET_KEY_LENGTH)
    # 8. Checksum of everything after the checksum field.
    frame_end = start + frame_length
    if crc32c(buf[start + 8 : frame_end]) != stored_crc:
        raise fail("checksum_mismatch", start + OFFSET_CRC)
    # 9. Padding.
    for position in range(start + content_length, frame_end):
        if buf[position] != 0:
            raise fail("inconsistent_sections", position)
    # 10. Headers.
    key_start = start + FIXED_HEADER_SIZE
    headers_start = key_start + key_length
    payload_start = headers_start + headers_length
    headers = _decode_headers(buf, headers_start, headers_length, header_count, start)
    message = {
        "payload": buf[payload_start : payload_start + payload_length],
        "key": buf[key_start:headers_start] if has_key else None,
        "headers": headers,
        "partition": partition,
        "producer_id": producer_id,
        "sequence": sequence,
        "timestamp_ns": timestamp_ns,
    }
    return message, frame_end


def decode(
    buf: bytes | bytearray | memoryview, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
) -> dict[str, Any]:
    """The message of the one frame that ``buf`` holds, as a dict of its fields.

    Keys: payload, key, headers, partition, producer_id, sequence, timestamp_ns. Raises
    RefDecodeError exactly as the spec's "Validation order" says; bytes after a valid frame
    are ``trailing_data``.
    """
    _check_max_frame_size(max_frame_size)
    data = bytes(buf)
    message, end = _decode_frame(data, 0, max_frame_size)
    if end != len(data):
        raise RefDecodeError("trailing_data", end, 0)
    return message


def decode_batch(
    buf: bytes | bytearray | memoryview, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
) -> list[dict[str, Any]]:
    """The messages of the frames laid end to end in ``buf`` (empty buffer: no message)."""
    _check_max_frame_size(max_frame_size)
    data = bytes(buf)
    messages = []
    position = 0
    while position < len(data):
        message, position = _decode_frame(data, position, max_frame_size)
        messages.append(message)
    return messages


def frame_ranges(buf: bytes | bytearray | memoryview) -> list[tuple[int, int]]:
    """``(start, end)`` of each frame of a valid batch, read from the frame_length fields."""
    data = bytes(buf)
    ranges = []
    position = 0
    while position < len(data):
        (frame_length,) = struct.unpack_from("<I", data, position + OFFSET_FRAME_LENGTH)
        ranges.append((position, position + frame_length))
        position += frame_length
    return ranges
