"""The fuzz targets: one function per entry point that takes outside bytes.

Each target takes one input (``bytes`` chosen by the fuzzer) and returns normally when kaelix
behaved as documented: it either accepted the input, and what it made of it is consistent, or
it raised one of the errors that entry point promises. Anything else escapes the target and
is a finding: another exception, a broken oracle (``AssertionError``), a crash of the process
or a hang (the runner's per-input timeout).

A frame's checksum covers almost all of its bytes, so random mutations of a frame nearly
always stop at the checksum check. The first byte of each codec input is therefore a control
byte: bit 0 asks for the checksums to be recomputed over the mutated bytes (so that the checks
after the checksum, the padding and the headers section, are reached half of the time), and
bits 1 to 3 pick the ``max_frame_size`` of the call.

This module imports only the standard library and the public kaelix API; atheris is imported
by the runner, never here, so the targets can be called by plain tests.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import kaelix
from kaelix import DecodeError, MessageBatch, RingError, SharedRing

__all__ = ["TARGETS", "UNAVAILABLE", "Target", "seed_inputs"]

# max_frame_size picked by bits 1..3 of the control byte: the default most of the time, and
# limits that real frames cross.
_MAX_FRAME_SIZES = (
    kaelix.DEFAULT_MAX_FRAME_SIZE,
    kaelix.DEFAULT_MAX_FRAME_SIZE,
    kaelix.DEFAULT_MAX_FRAME_SIZE,
    kaelix.MAX_FRAME_SIZE_LIMIT,
    56,
    64,
    100,
    4096,
)


def _control(data: bytes) -> tuple[bool, int, bytes]:
    """(reseal, max_frame_size, body) of a codec input."""
    if not data:
        return False, kaelix.DEFAULT_MAX_FRAME_SIZE, b""
    control = data[0]
    return bool(control & 1), _MAX_FRAME_SIZES[(control >> 1) & 7], data[1:]


def _reseal(body: bytes) -> bytes:
    """Recomputes the checksum of every frame the bytes announce, walking by their declared
    lengths (clamped to what is there), so that mutations reach the checks after it."""
    buf = bytearray(body)
    pos = 0
    while len(buf) - pos >= kaelix.HEADER_SIZE:
        declared = struct.unpack_from("<I", buf, pos + 12)[0]
        end = pos + max(8, min(declared, len(buf) - pos))
        struct.pack_into("<I", buf, pos + 4, kaelix.crc32c(buf[pos + 8 : end]))
        if declared < 8:
            break
        pos = end
    return bytes(buf)


def _codec_input(data: bytes) -> tuple[bytes, int]:
    reseal, limit, body = _control(data)
    return (_reseal(body) if reseal else body), limit


def fuzz_decode(data: bytes) -> None:
    """``kaelix.decode`` promises a ``Message`` or ``DecodeError``; a message it accepts
    encodes back to exactly the bytes it came from (the format has one encoding per
    message)."""
    buf, limit = _codec_input(data)
    try:
        message = kaelix.decode(buf, max_frame_size=limit)
    except DecodeError as error:
        _check_decode_error(error, buf)
        return
    _note_message(message)
    again = kaelix.encode(message, max_frame_size=kaelix.MAX_FRAME_SIZE_LIMIT)
    assert again == buf, f"decode accepted {buf!r} but it encodes back to {again!r}"


def fuzz_decode_batch(data: bytes) -> None:
    """``kaelix.decode_batch`` promises a list of ``Message`` or ``DecodeError``; what it
    accepts encodes back to the same bytes."""
    buf, limit = _codec_input(data)
    try:
        messages = kaelix.decode_batch(buf, max_frame_size=limit)
    except DecodeError as error:
        _check_decode_error(error, buf)
        return
    for message in messages:
        _note_message(message)
    again = kaelix.encode_batch(messages, max_frame_size=kaelix.MAX_FRAME_SIZE_LIMIT)
    assert again == buf, f"decode_batch accepted {buf!r} but it encodes back to {again!r}"


def fuzz_from_bytes(data: bytes) -> None:
    """``MessageBatch.from_bytes`` promises a batch or ``DecodeError`` (the same verdict as
    ``decode_batch``); an accepted batch's columns agree with its messages."""
    buf, limit = _codec_input(data)
    try:
        batch = MessageBatch.from_bytes(bytearray(buf), max_frame_size=limit)
    except DecodeError as error:
        _check_decode_error(error, buf)
        try:
            kaelix.decode_batch(buf, max_frame_size=limit)
        except DecodeError as other:
            assert (other.reason, other.offset) == (error.reason, error.offset), (
                f"from_bytes says {error}, decode_batch says {other}"
            )
        else:
            raise AssertionError(f"from_bytes refused {buf!r} ({error}), decode_batch took it")
        return
    assert batch.to_bytes() == buf
    messages = batch.to_messages()
    assert messages == kaelix.decode_batch(buf, max_frame_size=limit)
    assert [m.sequence for m in messages] == batch.sequence.tolist()
    assert [m.partition for m in messages] == batch.partition.tolist()
    assert [m.producer_id for m in messages] == batch.producer_id.tolist()
    assert [m.timestamp_ns for m in messages] == batch.timestamp_ns.tolist()
    assert batch.offsets[-1] == len(buf)


def _check_decode_error(error: DecodeError, buf: bytes) -> None:
    """A DecodeError must name a documented reason and a byte offset inside (or just past)
    the input."""
    assert error.reason in DecodeError.REASONS, f"undocumented reason {error.reason!r}"
    assert 0 <= error.frame_offset <= error.offset <= len(buf), (
        f"offset {error.offset} (frame at {error.frame_offset}) outside a {len(buf)}-byte input"
    )
    _note_refusal(error.reason, error.offset - error.frame_offset, error.frame_offset)


def _note_refusal(reason: str, where: int, frame_offset: int) -> None:
    """One Python branch per (check that refused, where it fired, first frame or later).

    The compiled parser carries no libFuzzer coverage, so without this atheris would see
    every refusal as the same path and keep no input that gets further into a frame. Each
    branch below is an edge it can tell apart: reaching a check never reached before makes
    the input worth keeping, as C coverage would."""
    later = frame_offset > 0
    if reason == "truncated":
        if where < 56:
            _edge(0, later)
        else:
            _edge(1, later)
    elif reason == "bad_magic":
        _edge(2, later)
    elif reason == "unsupported_version":
        _edge(3, later)
    elif reason == "invalid_flags":
        _edge(4, later)
    elif reason == "length_out_of_range":
        _edge(5, later)
    elif reason == "inconsistent_sections":
        if where == 44:
            _edge(6, later)
        else:  # a padding byte
            _edge(7, later)
    elif reason == "checksum_mismatch":
        _edge(8, later)
    elif reason == "invalid_header":
        if where == 56:
            _edge(9, later)
        elif where < 64:
            _edge(10, later)
        else:
            _edge(11, later)
    elif reason == "trailing_data":
        _edge(12, later)
    else:
        _edge(13, later)


_OUTCOMES = [0] * 64
"""How often each outcome was seen (refusals by check, accepted message shapes)."""


def _edge(check: int, later: bool) -> None:
    # The call sites in _note_refusal are the branches atheris tells apart per check; this
    # one tells a refusal in the first frame from one in a later frame (batches).
    if later:
        _OUTCOMES[check * 2 + 1] += 1
    else:
        _OUTCOMES[check * 2] += 1


def _note_message(message: kaelix.Message) -> None:
    """Branches per shape of an accepted message (key or not, how many headers, payload)."""
    if message.key is None:
        _OUTCOMES[32] += 1
    elif message.key:
        _OUTCOMES[33] += 1
    else:
        _OUTCOMES[34] += 1
    count = len(message.headers)
    if count == 0:
        _OUTCOMES[35] += 1
    elif count == 1:
        _OUTCOMES[36] += 1
    elif count < 17:
        _OUTCOMES[37] += 1
    else:  # the sorted duplicate check
        _OUTCOMES[38] += 1
    if message.payload:
        _OUTCOMES[39] += 1


# --------------------------------------------------------------------------------------------
# SharedRing.attach on a crafted segment
# --------------------------------------------------------------------------------------------

# kx_ring.h: the header is 8 cache lines, then one 64-byte slot per producer and consumer,
# the data area starts on the next page.
_LINE = 64
_RING_MAGIC = 0x31474E5258584C4B
_RING_VERSION = 3
_MASK64 = (1 << 64) - 1
# (offset, struct format) of the header fields a live ring changes (lines 1 to 7).
_MUTABLE_FIELDS = (
    (64, "<Q"),  # claim
    (128, "<Q"),  # publish
    (136, "<Q"),  # frames_published
    (192, "<I"),  # data_seq
    (196, "<I"),  # data_waiters
    (256, "<I"),  # space_seq
    (260, "<I"),  # space_waiters
    (320, "<Q"),  # floor
    (328, "<Q"),  # floor_frames
    (336, "<I"),  # closed
    (352, "<I"),  # orphan_producers
    (356, "<I"),  # orphan_consumers
    (360, "<I"),  # floor_seq
    (384, "<Q"),  # take
    (456, "<Q"),  # frames_done
    (464, "<Q"),  # items_free (an i64, fuzzed as its bit pattern)
)


_FLOOR_SEQ = 360


def _header_size(max_producers: int, max_consumers: int) -> int:
    raw = 8 * _LINE + (max_producers + max_consumers) * _LINE
    return (raw + 4095) & ~4095


def _layout_check(header_size: int, capacity: int, producers: int, consumers: int) -> int:
    x = ((header_size * 0x9E3779B97F4A7C15) & _MASK64) ^ capacity ^ (producers << 32 | consumers)
    return (x ^ (x >> 32)) & 0xFFFFFFFF


def ring_header(
    capacity: int,
    max_producers: int,
    max_consumers: int,
    *,
    overwrite: bool = False,
    queue: bool = False,
    max_items: int = 0,
) -> bytearray:
    """A consistent ring header and zeroed slots (``header_size`` bytes), as
    ``kx_ring_format`` writes them."""
    hs = _header_size(max_producers, max_consumers)
    head = bytearray(hs)
    struct.pack_into(
        "<QIIQQIIIIIIQ",
        head,
        0,
        _RING_MAGIC,
        _RING_VERSION,
        hs,
        capacity,
        hs + capacity,
        max_producers,
        max_consumers,
        1,
        _layout_check(hs, capacity, max_producers, max_consumers),
        int(overwrite),
        int(queue),
        max_items if queue else 0,
    )
    struct.pack_into("<q", head, 464, max_items if queue else 0)
    return head


class _Bytes:
    """Reads fuzzer bytes front to back; past the end, zeros."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def int(self, size: int) -> int:
        chunk = self._data[self._pos : self._pos + size]
        self._pos += size
        return int.from_bytes(chunk.ljust(size, b"\0"), "little")

    def rest(self) -> bytes:
        rest = self._data[self._pos :]
        self._pos = len(self._data)
        return rest


def crafted_segment(data: bytes) -> bytes:
    """The bytes of a shared segment built from a fuzzer input.

    Control byte 0 (mod 4): the rest is the segment, as is. Otherwise a consistent header
    (capacity, slots, ring kind chosen by the input) whose live fields, slots and data area
    the input then overwrites, with the segment's size sometimes cut below what its layout
    claims, so that what follows the layout checks is fuzzed as often as they are."""
    if not data or data[0] % 4 == 0:
        return data[1:]
    src = _Bytes(data[1:])
    shape = src.int(1)
    capacity = 4096 << (shape & 3)
    producers = 1 + ((shape >> 2) & 3)
    consumers = 1 + ((shape >> 4) & 3)
    kind = (shape >> 6) % 3  # 0 broadcast, 1 overwrite, 2 queue
    segment = ring_header(
        capacity, producers, consumers, overwrite=kind == 1, queue=kind == 2, max_items=src.int(1)
    )
    choices: list[tuple[int, str, int | None]] = []
    for offset, fmt in _MUTABLE_FIELDS:
        choice = src.int(1) % 4
        if choice == 1:  # a small value, near the positions a young ring has
            choices.append((offset, fmt, src.int(2)))
        elif choice == 2:  # any value of the field's width
            choices.append((offset, fmt, src.int(struct.calcsize(fmt))))
        elif choice == 3:  # the end of the data this input writes (set below)
            choices.append((offset, fmt, None))
    me = os.getpid()
    for slot in range(producers + consumers):
        base = 8 * _LINE + slot * _LINE
        state = src.int(1) % 5
        pid = (0, me, 1, 2**22 + 17, src.int(4))[src.int(1) % 5]
        struct.pack_into(
            "<IIQQQQ", segment, base, state, pid, src.int(1), src.int(2), src.int(2), src.int(1)
        )
    cut = src.int(1)
    body = src.rest()[:capacity]
    for offset, fmt, value in choices:
        if value is None:
            value = (len(body) + 7) & ~7
        if offset == _FLOOR_SEQ:
            # Odd: a writer holds the floor's lock, and readers wait 50 ms before they take
            # it over (kx_ring_floor_read). Kept even here so that the search does not crawl;
            # tests/corpus/regressions/attach-floor-lock-held covers the odd case.
            value &= ~1
        struct.pack_into(fmt, segment, offset, value)
    area = bytearray(capacity)
    area[: len(body)] = body
    segment += area
    if cut % 8 == 7:  # the layout claims more memory than the segment has
        segment = segment[: len(segment) - 1 - cut * 16]
    return bytes(segment)


def _segment_name() -> str:
    return f"kx-fuzz-{os.getpid()}"


def fuzz_attach(data: bytes) -> None:
    """``SharedRing.attach`` on the crafted segment promises a ring or ``RingError``; popping
    from an attached ring whose memory a hostile peer wrote promises frames (as ``bytes``,
    each at least a header long, a multiple of 8, starting with the magic), ``None`` or
    ``RingError`` (reason ``corrupt``), and batches whose frames are checked again
    (``DecodeError``)."""
    segment = crafted_segment(data)
    if len(segment) < 8 or segment[:8] == bytes(8):
        # An empty or all-zero header is a ring being created: attach waits half a second
        # for its creator on purpose. tests/test_security.py covers that path.
        return
    name = _segment_name()
    path = f"/dev/shm/{name}"
    fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
    try:
        os.write(fd, segment)
    finally:
        os.close(fd)
    try:
        try:
            ring = SharedRing.attach(name)
        except RingError as error:
            assert error.reason in RingError.REASONS, f"undocumented reason {error.reason!r}"
            return
        try:
            _consume(ring)
        finally:
            ring.close()
    finally:
        os.unlink(path)


def _read_metrics(ring: SharedRing) -> None:
    """What the monitor reads of any segment: counts, never negative, whatever the peers
    wrote into the header and the slots."""
    published, overwritten, _, nbytes = ring._counters()
    assert min(published, overwritten, nbytes) >= 0
    for row in ring._readers():
        assert all(isinstance(v, int) and v >= 0 for v in row), row


def _consume(ring: SharedRing) -> None:
    try:
        len(ring)
        _read_metrics(ring)
        for _ in range(3):
            frame = ring.pop()
            if frame is None:
                break
            assert isinstance(frame, bytes)
            assert len(frame) >= kaelix.HEADER_SIZE and len(frame) % 8 == 0, len(frame)
            assert frame[:4] == b"KLXF", frame[:4]
            with contextlib.suppress(DecodeError):
                kaelix.decode(frame)
        batch = ring.pop_batch(max_messages=8)
        assert batch.to_bytes() == b"".join(bytes(batch.frame(i)) for i in range(len(batch)))
        _read_metrics(ring)
    except RingError as error:
        assert error.reason in RingError.REASONS, f"undocumented reason {error.reason!r}"
    except DecodeError:
        pass  # pop_batch checks a shared ring's frames again, checksums included


# --------------------------------------------------------------------------------------------
# Registry and seeds
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One fuzz target: the function, the longest input worth trying, and what it promises."""

    name: str
    function: Callable[[bytes], None]
    max_len: int
    promises: str


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("decode", fuzz_decode, 4096, "Message or DecodeError"),
        Target("decode_batch", fuzz_decode_batch, 8192, "list of Message or DecodeError"),
        Target("from_bytes", fuzz_from_bytes, 8192, "MessageBatch or DecodeError"),
        Target("attach", fuzz_attach, 20000, "SharedRing or RingError; pops: frames or RingError"),
    )
}
"""Target name -> Target, the ones that run today."""

UNAVAILABLE: dict[str, str] = {
    "nats": "the NATS message mapping does not exist yet (issue 11, kaelix.connect)",
}
"""Targets the issue asks for that cannot run yet, and why."""


def _sample_messages() -> list[kaelix.Message]:
    big = bytes(range(256)) * 4
    return [
        kaelix.Message(b""),
        kaelix.Message(
            b"hello",
            key=b"k",
            headers={"h": b"v"},
            partition=2,
            producer_id=7,
            sequence=9,
            timestamp_ns=1,
        ),
        kaelix.Message(
            b"x" * 64,
            sequence=2**64 - 1,
            producer_id=2**64 - 1,
            timestamp_ns=-(2**63),
            partition=2**32 - 1,
        ),
        kaelix.Message(b"", key=b""),
        kaelix.Message(b"p" * 7, headers={"a": b"", "bb": b"1" * 9, "é": b"\x00"}),
        kaelix.Message(big, key=b"key" * 10),
        kaelix.Message(b"v", headers={f"h{i}": bytes([i]) for i in range(20)}),
        kaelix.Message(b"\x00" * 3, key=b"\xff" * 5, headers={"x" * 255: b"y"}),
    ]


def seed_inputs(target: str) -> Iterator[tuple[str, bytes]]:
    """(file name, input) pairs of real frames and segments to start a corpus from."""
    frames = [kaelix.encode(m) for m in _sample_messages()]
    if target in ("decode", "decode_batch", "from_bytes"):
        for i, frame in enumerate(frames):
            yield f"frame-{i}", b"\x00" + frame
            yield f"frame-{i}-reseal", b"\x01" + frame
        yield "empty", b"\x00"
        yield "cut", b"\x00" + frames[1][:40]
        yield "small-limit", b"\x08" + frames[1]
        if target != "decode":
            yield "batch-all", b"\x00" + b"".join(frames)
            yield "batch-two", b"\x01" + frames[1] + frames[4]
            yield "batch-cut", b"\x00" + frames[2] + frames[3][:-8]
        return
    if target == "attach":
        yield from _segment_seeds(frames)
        return
    raise ValueError(f"unknown target {target!r}")


def _segment_seeds(frames: list[bytes]) -> Iterator[tuple[str, bytes]]:
    name = f"kx-seed-{os.getpid()}"
    kinds = {"broadcast": {}, "overwrite": {"overwrite": True}, "queue": {"queue": True}}
    for kind, options in kinds.items():
        for count in (0, 1, 3):
            ring = SharedRing._create(name, 4096, 1, 1, "sleep", **options)
            try:
                for frame in frames[:count]:
                    ring.push(frame)
                with open(f"/dev/shm/{name}", "rb") as f:
                    yield f"segment-{kind}-{count}", b"\x00" + f.read()
            finally:
                ring.close()
                ring.unlink()
    # Structured inputs (control byte 1 to 3): shapes of header, then live fields.
    for shape in (0x00, 0x15, 0x40, 0x80, 0xC3):
        yield f"crafted-{shape:02x}", bytes([1, shape, 4, 1]) + b"\x00" * 40 + frames[1]
    yield "crafted-cut", bytes([2, 0, 0, 0]) + b"\x00" * 140 + b"\x07"
