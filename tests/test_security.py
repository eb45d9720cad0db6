"""Security: hostile bytes and hostile shared memory, with kaelix's own adversarial strategies.

* Untrusted bytes: ``decode``, ``decode_batch`` and ``MessageBatch.from_bytes`` on
  ``kaelix.testing.strategies.malformed_frames()`` / ``malformed_batches()`` raise only
  ``DecodeError``, never crash, and never allocate more than the input's own size
  (tracemalloc), whatever sizes the frame claims.
* Limits (docs/wire-format.md "Limits"): frame size, header count, header name size, key size
  (bounded by the frame size) and batch size are enforced on every path with clear errors.
* Shared segments: ``SharedRing.attach`` refuses a segment whose layout claims more memory
  than the segment has, or is inconsistent; and what a hostile or crashed peer leaves in an
  attached segment gives ``RingError``, never a crash or a hang.
* The strategies themselves: arguments checked with clear errors, reprs echo the call.
"""

from __future__ import annotations

import contextlib
import os
import struct
import time
import tracemalloc
from collections.abc import Callable, Iterator
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

import kaelix
from kaelix import DecodeError, FrameTooLarge, Message, MessageBatch, RingError, SharedRing
from kaelix.fuzz._targets import ring_header
from kaelix.testing import MALFORMATIONS, malformed_batches, malformed_frames

SMALL_LIMITS = st.sampled_from((kaelix.DEFAULT_MAX_FRAME_SIZE, 56, 64, 128, 4096))
# What decoding may allocate beyond the input itself: the Message and its small objects.
SLACK = 64 * 1024

# --------------------------------------------------------------------------------------------
# Untrusted bytes
# --------------------------------------------------------------------------------------------


def _peak_allocation(call: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        with contextlib.suppress(DecodeError):
            call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_decode_refuses_malformed_frames_with_decode_error_only(data: st.DataObject) -> None:
    limit = data.draw(SMALL_LIMITS)
    frame = data.draw(malformed_frames(max_frame_size=limit))
    with pytest.raises(DecodeError) as caught:
        kaelix.decode(frame, max_frame_size=limit)
    assert caught.value.reason in DecodeError.REASONS
    assert 0 <= caught.value.offset <= len(frame)
    assert f"at byte {caught.value.offset}" in str(caught.value)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_batch_readers_refuse_malformed_batches_alike(data: st.DataObject) -> None:
    limit = data.draw(SMALL_LIMITS)
    buf = data.draw(malformed_batches(max_frame_size=limit))
    with pytest.raises(DecodeError) as from_bytes:
        MessageBatch.from_bytes(buf, max_frame_size=limit)
    with pytest.raises(DecodeError) as decode_batch:
        kaelix.decode_batch(buf, max_frame_size=limit)
    assert (from_bytes.value.reason, from_bytes.value.offset) == (
        decode_batch.value.reason,
        decode_batch.value.offset,
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(malformed_frames(kinds=["oversized", "header_bomb", "length_lying"]))
def test_a_hostile_frame_allocates_no_more_than_its_own_size(frame: bytes) -> None:
    # The frame may claim up to 4 GiB of frame or 65,535 headers; the readers may only
    # allocate what the bytes really hold (plus a constant).
    for call in (
        lambda: kaelix.decode(frame, max_frame_size=kaelix.MAX_FRAME_SIZE_LIMIT),
        lambda: kaelix.decode_batch(frame, max_frame_size=kaelix.MAX_FRAME_SIZE_LIMIT),
        lambda: MessageBatch.from_bytes(frame, max_frame_size=kaelix.MAX_FRAME_SIZE_LIMIT),
    ):
        assert _peak_allocation(call) <= 2 * len(frame) + SLACK


def test_a_frame_claiming_4_gib_is_refused_without_allocating_it() -> None:
    frame = bytearray(kaelix.encode(Message(b"x" * 8)))
    struct.pack_into("<II", frame, 48, 0, 2**32 - 1 - 56)  # payload "4 GiB"
    struct.pack_into("<I", frame, 12, kaelix.MAX_FRAME_SIZE_LIMIT)
    peak = _peak_allocation(
        lambda: kaelix.decode(bytes(frame), max_frame_size=kaelix.MAX_FRAME_SIZE_LIMIT)
    )
    assert peak < SLACK
    with pytest.raises(DecodeError, match="truncated at byte 64"):
        kaelix.decode(bytes(frame), max_frame_size=kaelix.MAX_FRAME_SIZE_LIMIT)


def test_header_bomb_of_65535_claimed_headers_is_refused_cheaply() -> None:
    frame = bytearray(kaelix.encode(Message(b"", headers={"h": b"v"})))
    struct.pack_into("<H", frame, 10, 65535)
    struct.pack_into("<I", frame, 4, kaelix.crc32c(frame[8:]))
    started = time.perf_counter()
    with pytest.raises(DecodeError, match="invalid header"):
        kaelix.decode(bytes(frame))
    assert time.perf_counter() - started < 1.0


def test_many_headers_with_one_repeat_is_found_without_quadratic_time() -> None:
    names = [f"h{i}" for i in range(65535)]
    frame = bytearray(kaelix.encode(Message(b"", headers=dict.fromkeys(names, b""))))
    # Rename the last header ("h65534") to an earlier name of the same length.
    at = frame.rindex(b"h65534")
    frame[at : at + 6] = b"h10000"
    struct.pack_into("<I", frame, 4, kaelix.crc32c(frame[8:]))
    started = time.perf_counter()
    with pytest.raises(DecodeError, match="invalid header"):
        kaelix.decode(bytes(frame))
    assert time.perf_counter() - started < 2.0


# --------------------------------------------------------------------------------------------
# Limits, on every path
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda m, n: kaelix.encode(m, max_frame_size=n),
        lambda m, n: kaelix.encode_batch([m], max_frame_size=n),
        lambda m, n: MessageBatch.from_messages([m], max_frame_size=n),
    ],
    ids=["encode", "encode_batch", "from_messages"],
)
@pytest.mark.parametrize(
    "message",
    [Message(b"x" * 100), Message(b"", key=b"k" * 100), Message(b"", headers={"h": b"v" * 100})],
    ids=["payload", "key", "header"],
)
def test_writers_refuse_frames_over_the_limit(
    call: Callable[[Message, int], object], message: Message
) -> None:
    with pytest.raises(FrameTooLarge, match=r"over max_frame_size=64; raise max_frame_size"):
        call(message, 64)


@pytest.mark.parametrize(
    "call",
    [
        lambda b, n: kaelix.decode(b, max_frame_size=n),
        lambda b, n: kaelix.decode_batch(b, max_frame_size=n),
        lambda b, n: MessageBatch.from_bytes(b, max_frame_size=n),
    ],
    ids=["decode", "decode_batch", "from_bytes"],
)
def test_readers_refuse_frames_over_the_limit(call: Callable[[bytes, int], object]) -> None:
    frame = kaelix.encode(Message(b"", key=b"k" * 100))
    with pytest.raises(DecodeError, match=r"frame_length 160 .* max_frame_size=64") as caught:
        call(frame, 64)
    assert (caught.value.reason, caught.value.offset) == ("length_out_of_range", 12)


@pytest.mark.parametrize("bad", [55, 2**32, -1, 2**40])
def test_max_frame_size_itself_is_bounded(bad: int) -> None:
    for call in (kaelix.decode, kaelix.decode_batch, MessageBatch.from_bytes):
        with pytest.raises(ValueError, match="max_frame_size must be from 56 to 4294967288"):
            call(b"", max_frame_size=bad)


def test_header_count_and_name_limits() -> None:
    with pytest.raises(ValueError, match="65536 headers, at most 65535 allowed"):
        Message(b"", headers={f"h{i}": b"" for i in range(65536)})
    with pytest.raises(ValueError, match="is 0 bytes of UTF-8; names must be 1 to 255 bytes"):
        Message(b"", headers={"": b""})
    with pytest.raises(ValueError, match="is 256 bytes of UTF-8; names must be 1 to 255 bytes"):
        Message(b"", headers={"é" * 128: b""})
    assert Message(b"", headers={"n" * 255: b""}).headers


def test_rings_refuse_frames_larger_than_they_are() -> None:
    big = kaelix.encode(Message(b"x" * 5000))
    with kaelix.Ring(4096) as ring:
        with pytest.raises(ValueError, match="can never fit in a ring of 4096 bytes"):
            ring.push(big)
        with pytest.raises(ValueError, match="larger than the ring's capacity of 4096 bytes"):
            ring.push_batch(MessageBatch.from_bytes(big))
        with pytest.raises(DecodeError, match="bad magic"):
            ring.push(b"not a frame at all, clearly not")


def test_a_batch_larger_than_the_ring_waits_then_says_so() -> None:
    batch = MessageBatch.from_messages([Message(b"x" * 1000)] * 5)
    with kaelix.Ring(4096) as ring, pytest.raises(kaelix.RingFull, match="before the timeout"):
        ring.put_batch(batch, timeout=0.05)


# --------------------------------------------------------------------------------------------
# Shared segments: attach checks the layout against the segment
# --------------------------------------------------------------------------------------------


@pytest.fixture
def segment() -> Iterator[Callable[[bytes], str]]:
    names: list[str] = []

    def write(data: bytes) -> str:
        name = f"kx-sec-{uuid4().hex[:12]}"
        fd = os.open(f"/dev/shm/{name}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        names.append(name)
        return name

    yield write
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"/dev/shm/{name}")


def _valid_segment(capacity: int = 4096, **kind: bool) -> bytearray:
    head = ring_header(capacity, 1, 1, **kind)
    return head + bytearray(capacity)


def test_the_crafted_header_matches_a_real_one(segment: Callable[[bytes], str]) -> None:
    name = f"kx-sec-{uuid4().hex[:12]}"
    with SharedRing.create(name, 4096, max_producers=1, max_consumers=1) as ring:
        with open(f"/dev/shm/{name}", "rb") as f:
            real = f.read()
        assert real[:512] == bytes(_valid_segment()[:512])
        assert ring.capacity == 4096
    attached = SharedRing.attach(segment(bytes(_valid_segment())))
    attached.close()


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        # The layout says 4096 + 2^40 bytes; the segment has 8 KiB.
        (lambda s: struct.pack_into("<QQ", s, 16, 2**40, 4096 + 2**40), "bad_layout"),
        (lambda s: s.__delitem__(slice(6000, None)), "truncated"),
        (lambda s: s.__delitem__(slice(100, None)), "truncated"),
        (lambda s: struct.pack_into("<Q", s, 24, 2**62), "bad_layout"),
        (lambda s: struct.pack_into("<I", s, 36, 5000), "bad_layout"),
        (lambda s: struct.pack_into("<I", s, 12, 64), "bad_layout"),
        (lambda s: struct.pack_into("<Q", s, 16, 4096 + 8), "bad_layout"),
        (lambda s: struct.pack_into("<I", s, 44, 12345), "bad_layout"),
        (lambda s: struct.pack_into("<II", s, 48, 1, 1), "bad_layout"),
        (lambda s: struct.pack_into("<I", s, 8, 99), "unsupported_version"),
        (lambda s: struct.pack_into("<Q", s, 0, 0x1234), "bad_magic"),
    ],
    ids=[
        "capacity-beyond-segment",
        "cut-in-data",
        "cut-in-header",
        "segment-size-lies",
        "slots-beyond-limit",
        "header-size-lies",
        "capacity-not-power-of-two",
        "layout-check",
        "overwrite-and-queue",
        "version",
        "magic",
    ],
)
def test_attach_refuses_inconsistent_layouts(
    segment: Callable[[bytes], str], mutate: Callable[[bytearray], object], reason: str
) -> None:
    data = _valid_segment()
    mutate(data)
    name = segment(bytes(data))
    with pytest.raises(RingError, match=f"cannot attach to ring '{name}'") as caught:
        SharedRing.attach(name)
    assert caught.value.reason == reason


def test_attach_gives_up_on_a_segment_that_stays_zero(segment: Callable[[bytes], str]) -> None:
    name = segment(bytes(8192))
    started = time.perf_counter()
    with pytest.raises(RingError, match="holds no ring") as caught:
        SharedRing.attach(name)
    assert caught.value.reason == "uninitialised"
    assert time.perf_counter() - started < 5


# --------------------------------------------------------------------------------------------
# Shared segments: what a hostile or crashed peer leaves behind
# --------------------------------------------------------------------------------------------


def test_a_floor_lock_left_held_by_a_dead_producer_does_not_hang_readers(
    segment: Callable[[bytes], str],
) -> None:
    """A producer of an overwrite ring that dies inside the floor's sequence lock leaves it
    odd; readers used to spin on it for ever, holding the GIL (found by the attach fuzz
    target). They now take the lock over after 50 ms."""
    data = _valid_segment(overwrite=True)
    struct.pack_into("<I", data, 360, 7)  # floor_seq odd: a writer is "inside"
    ring = SharedRing.attach(segment(bytes(data)))
    try:
        started = time.perf_counter()
        assert ring.pop() is None
        assert len(ring) == 0
        assert time.perf_counter() - started < 2
    finally:
        ring.close()


def test_hostile_counters_give_a_length_not_a_system_error(
    segment: Callable[[bytes], str],
) -> None:
    """frames_published far behind what was consumed used to make len() return -1, a
    SystemError (found by the attach fuzz target)."""
    data = _valid_segment()
    struct.pack_into("<Q", data, 136, 2**64 - 5)  # frames_published
    ring = SharedRing.attach(segment(bytes(data)))
    try:
        assert len(ring) == 2**63 - 1
    finally:
        ring.close()


@pytest.mark.parametrize(
    ("publish", "record"),
    [
        (64, b"KLXF" + bytes(8) + struct.pack("<I", 2**31)),  # frame longer than published
        (64, b"JUNK" + bytes(60)),  # not a frame
        (64, b"KLXP" + struct.pack("<I", 4)),  # skip record too short
    ],
    ids=["long-frame", "junk", "short-skip"],
)
def test_a_corrupt_record_is_a_ring_error(
    segment: Callable[[bytes], str], publish: int, record: bytes
) -> None:
    data = _valid_segment()
    struct.pack_into("<QQ", data, 64, publish, 0)  # claim
    struct.pack_into("<Q", data, 128, publish)
    start = len(data) - 4096
    data[start : start + len(record)] = record
    ring = SharedRing.attach(segment(bytes(data)))
    try:
        with pytest.raises(RingError, match="malformed record") as caught:
            ring.pop()
        assert caught.value.reason == "corrupt"
    finally:
        ring.close()


HOSTILE_AFTER_ATTACH = """\
import os, struct, sys
import kaelix
name = sys.argv[1]
ring = kaelix.SharedRing.create(name, 4096, max_producers=1, max_consumers=1)
other = kaelix.SharedRing.attach(name)
fd = os.open("/dev/shm/" + name, os.O_RDWR)
# Line 0 is checked at attach; a hostile peer rewrites it afterwards: slot counts far beyond
# the segment, another capacity and header size.
os.pwrite(fd, struct.pack("<IIQQII", 2**20, 64, 2**40, 2**41, 50_000_000, 50_000_000), 8)
os.close(fd)
try:
    other.push(kaelix.encode(kaelix.Message(b"x")))
    print(len(other), other.free_bytes, kaelix.decode(other.pop()).payload)
finally:
    other.close()
    ring.close()
    ring.unlink()
"""


def test_a_header_rewritten_after_attach_is_not_followed() -> None:
    """Slot addresses and sizes come from the copy taken at attach, not from the header a
    peer can rewrite: rewriting max_consumers to 50 million used to make the next call walk
    far past the segment (a segmentation fault)."""
    import subprocess
    import sys

    name = f"kx-sec-{uuid4().hex[:12]}"
    done = subprocess.run(
        [sys.executable, "-c", HOSTILE_AFTER_ATTACH, name], capture_output=True, text=True
    )
    assert done.returncode == 0, f"exit status {done.returncode}: {done.stderr[-2000:]}"
    assert done.stdout.split() == ["1", "4032", "b'x'"]


STREAM_META_LIE = """\
import mmap, os, resource, sys
import kaelix
from kaelix import _stream
if "asan" not in os.environ.get("LD_PRELOAD", ""):  # ASan reserves terabytes of address space
    resource.setrlimit(resource.RLIMIT_AS, (2**31, 2**31))
name, field, value = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with kaelix.Stream(name, shared=True) as stream:
    fd = os.open("/dev/shm/" + _stream._segment_base(name), os.O_RDWR)
    meta = mmap.mmap(fd, _stream._META_SIZE)
    fields = list(_stream._META.unpack_from(meta))
    fields[field] = value
    _stream._META.pack_into(meta, 0, *fields)
    try:
        kaelix.Stream.open(name).detach()
    except kaelix.StreamError as error:
        print("refused:", error)
"""


@pytest.mark.parametrize(
    ("field", "value"),
    [(4, 99), (2, 2**31), (3, 3), (5, 0), (7, 5000)],
    ids=["policy", "partitions", "capacity", "producers", "name"],
)
def test_stream_open_refuses_a_lying_metadata_page(field: int, value: int) -> None:
    import subprocess
    import sys

    name = f"kx-sec-{uuid4().hex[:12]}"
    done = subprocess.run(
        [sys.executable, "-c", STREAM_META_LIE, name, str(field), str(value)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    for leftover in os.listdir("/dev/shm"):
        if name in leftover:
            os.unlink(f"/dev/shm/{leftover}")
    assert done.returncode == 0 and "refused:" in done.stdout, done.stderr[-1000:]


def test_a_publish_position_far_beyond_the_ring_is_not_followed(
    segment: Callable[[bytes], str],
) -> None:
    # A consumer that joins finds more published than the ring can hold: it starts at the
    # published position (nothing to read) instead of reading 2^63 bytes of "frames".
    data = _valid_segment()
    struct.pack_into("<Q", data, 64, 2**63)
    struct.pack_into("<Q", data, 128, 2**63)
    ring = SharedRing.attach(segment(bytes(data)))
    try:
        assert ring.pop() is None
        assert len(ring.pop_batch()) == 0
    finally:
        ring.close()


def test_a_frame_forged_in_shared_memory_is_checked_again_in_batches(
    segment: Callable[[bytes], str],
) -> None:
    frame = bytearray(kaelix.encode(Message(b"payload!")))
    frame[-1] ^= 0xFF  # checksum no longer matches
    data = _valid_segment()
    struct.pack_into("<Q", data, 64, len(frame))
    struct.pack_into("<Q", data, 128, len(frame))
    start = len(data) - 4096
    data[start : start + len(frame)] = frame
    ring = SharedRing.attach(segment(bytes(data)))
    try:
        with pytest.raises(DecodeError, match="checksum mismatch"):
            ring.pop_batch()
    finally:
        ring.close()


# --------------------------------------------------------------------------------------------
# The strategies
# --------------------------------------------------------------------------------------------


def test_strategy_reprs_echo_the_call() -> None:
    assert repr(malformed_frames()) == "malformed_frames()"
    assert (
        repr(malformed_frames(kinds=["truncated"], max_frame_size=64))
        == "malformed_frames(kinds=('truncated',), max_frame_size=64)"
    )
    assert repr(malformed_batches(max_frames=3)) == "malformed_batches(max_frames=3)"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: malformed_frames(kinds="truncated"), "did you mean kinds=\\['truncated'\\]"),
        (lambda: malformed_frames(kinds=[]), "is empty; name at least one of"),
        (lambda: malformed_frames(kinds=["nope"]), "unknown kinds \\['nope'\\]; choose from"),
        (lambda: malformed_frames(max_frame_size=55), "must be from 56 \\(one header\\)"),
        (lambda: malformed_frames(max_frame_size=2**32), "must be from 56"),
        (lambda: malformed_frames(max_frame_size=1.5), "must be an int, not float"),  # type: ignore[arg-type]
        (lambda: malformed_frames(messages=[Message(b"")]), "must be a hypothesis strategy"),  # type: ignore[arg-type]
        (lambda: malformed_batches(min_frames=0), "min_frames=0 must be at least 1"),
        (lambda: malformed_batches(min_frames=3, max_frames=2), "Cannot have max_frames=2 <"),
        (lambda: malformed_batches(max_frames=True), "max_frames=True must be an int"),  # type: ignore[arg-type]
    ],
)
def test_strategy_arguments_are_validated(call: Callable[[], object], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        call()


@pytest.mark.parametrize("kind", MALFORMATIONS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_each_kind_alone_is_refused(kind: str, data: st.DataObject) -> None:
    frame = data.draw(malformed_frames(kinds=[kind], max_frame_size=4096))
    with pytest.raises(DecodeError):
        kaelix.decode(frame, max_frame_size=4096)


@settings(max_examples=30, deadline=None)
@given(
    malformed_frames(
        kinds=["bit_flipped"],
        messages=st.builds(Message, st.binary(min_size=1, max_size=8), sequence=st.just(5)),
    )
)
def test_strategies_compose_with_a_users_messages(frame: bytes) -> None:
    with pytest.raises(DecodeError):
        kaelix.decode(frame)


def test_kaelix_does_not_import_the_testing_toolkit() -> None:
    import subprocess
    import sys

    code = "import sys, kaelix; print('kaelix.testing' in sys.modules, 'hypothesis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
