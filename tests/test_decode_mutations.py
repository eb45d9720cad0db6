"""Decoding untrusted bytes: kaelix against the reference on mutated and random inputs.

The contract (DESIGN.md, docs/wire-format.md): every input either decodes to exactly what the
reference decodes or raises ``kaelix.DecodeError`` with exactly the reference's reason and
offsets; nothing else ever escapes, and nothing crashes. Mutations start from valid frames and
batches (truncate, flip bits, overwrite length fields, insert and delete bytes, swap and
duplicate frames); with checksums recomputed afterwards half of the time, so that the checks
after the checksum (padding, headers section) are reached as often as the ones before it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
from hypothesis import event, given, settings
from hypothesis import strategies as st

import kaelix
import reference
from strategies_local import Fields, small_message_fields, to_fields

DEFAULT_MAX = reference.DEFAULT_MAX_FRAME_SIZE
# Mostly the default; sometimes a limit that the frames cross.
max_frame_sizes = st.one_of(
    st.just(DEFAULT_MAX),
    st.sampled_from((reference.LARGEST_MAX_FRAME_SIZE, 56, 64, 72, 100, 128, 256)),
)

# (offset, struct format) of the fixed-header fields that carry counts and lengths.
LENGTH_FIELDS = ((10, "<H"), (12, "<I"), (44, "<I"), (48, "<I"), (52, "<I"))
INTERESTING_U32 = (0, 1, 6, 7, 8, 55, 56, 57, 64, 255, 256, 2**31, 2**32 - 8, 2**32 - 1)
INTERESTING_BYTES = (b"\x00", b"\xff", b"\x80", b"\xc0\xaf", b"\xed\xa0\x80", b"KLXF", b"\x01")


# --------------------------------------------------------------------------------------------
# Mutations, driven by either hypothesis or a numpy generator
# --------------------------------------------------------------------------------------------


class Chooser(Protocol):
    """Where a mutation's choices come from."""

    def integer(self, low: int, high: int) -> int:
        """An integer in ``[low, high]``, both included."""
        ...

    def data(self, size: int) -> bytes:
        """``size`` arbitrary bytes."""
        ...


class HypothesisChooser:
    """Choices drawn from hypothesis, so that failures shrink."""

    def __init__(self, draw: st.DrawFn) -> None:
        self._draw = draw

    def integer(self, low: int, high: int) -> int:
        return self._draw(st.integers(low, high))

    def data(self, size: int) -> bytes:
        return self._draw(st.binary(min_size=size, max_size=size))


class RngChooser:
    """Choices from a seeded numpy generator, for bulk deterministic runs."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng

    def integer(self, low: int, high: int) -> int:
        return int(self._rng.integers(low, high, endpoint=True))

    def data(self, size: int) -> bytes:
        return self._rng.bytes(size)


def plausible_frames(data: bytes | bytearray) -> list[tuple[int, int]]:
    """(start, end) of the frames a walk by frame_length finds, stopping at the first bad one."""
    ranges = []
    position = 0
    while position + reference.FIXED_HEADER_SIZE <= len(data):
        (frame_length,) = struct.unpack_from("<I", data, position + 12)
        end = position + frame_length
        if frame_length < reference.FIXED_HEADER_SIZE or frame_length % 8 or end > len(data):
            break
        ranges.append((position, end))
        position = end
    return ranges


def fix_checksums(data: bytearray) -> bytearray:
    """``data`` with the checksum of every plausible frame recomputed."""
    for start, _ in plausible_frames(data):
        data = bytearray(reference.with_crc(data, start))
    return data


def truncate(data: bytearray, choose: Chooser) -> bytearray:
    return data[: choose.integer(0, max(len(data) - 1, 0))]


def flip_bit(data: bytearray, choose: Chooser) -> bytearray:
    if data:
        data[choose.integer(0, len(data) - 1)] ^= 1 << choose.integer(0, 7)
    return data


def _new_value(current: int, high: int, choose: Chooser) -> int:
    mode = choose.integer(0, 2)
    if mode == 0:
        return choose.integer(0, high)
    if mode == 1:
        return min(max(current + choose.integer(-16, 16), 0), high)
    return min(INTERESTING_U32[choose.integer(0, len(INTERESTING_U32) - 1)], high)


def overwrite_length_field(data: bytearray, choose: Chooser) -> bytearray:
    starts = [start for start, _ in plausible_frames(data)] or [0]
    start = starts[choose.integer(0, len(starts) - 1)]
    offset, fmt = LENGTH_FIELDS[choose.integer(0, len(LENGTH_FIELDS) - 1)]
    size = struct.calcsize(fmt)
    if start + offset + size > len(data):
        return data
    (current,) = struct.unpack_from(fmt, data, start + offset)
    struct.pack_into(fmt, data, start + offset, _new_value(current, 2 ** (8 * size) - 1, choose))
    return data


def overwrite_word(data: bytearray, choose: Chooser) -> bytearray:
    """A 1, 2 or 4-byte little-endian integer anywhere (header entry lengths, flags, ...)."""
    fmt = ("<B", "<H", "<I")[choose.integer(0, 2)]
    size = struct.calcsize(fmt)
    if len(data) < size:
        return data
    position = choose.integer(0, len(data) - size)
    (current,) = struct.unpack_from(fmt, data, position)
    struct.pack_into(fmt, data, position, _new_value(current, 2 ** (8 * size) - 1, choose))
    return data


def write_interesting_bytes(data: bytearray, choose: Chooser) -> bytearray:
    """Invalid UTF-8, the magic, zero or all-ones bytes anywhere."""
    chunk = INTERESTING_BYTES[choose.integer(0, len(INTERESTING_BYTES) - 1)]
    if len(data) < len(chunk):
        return data
    position = choose.integer(0, len(data) - len(chunk))
    data[position : position + len(chunk)] = chunk
    return data


def corrupt_fixed_header_byte(data: bytearray, choose: Chooser) -> bytearray:
    """One byte of a frame's fixed header (magic, version, flags, counts, lengths)."""
    starts = [start for start, _ in plausible_frames(data)] or [0]
    position = starts[choose.integer(0, len(starts) - 1)] + choose.integer(0, 55)
    if position < len(data):
        data[position] = choose.integer(0, 255)
    return data


def corrupt_headers_section(data: bytearray, choose: Chooser) -> bytearray:
    """A word or bad UTF-8 inside a frame's headers section, its checksum then made right."""
    candidates = []
    for start, _ in plausible_frames(data):
        key_length, headers_length = struct.unpack_from("<II", data, start + 44)
        if headers_length and start + 56 + key_length + headers_length <= len(data):
            candidates.append((start, start + 56 + key_length, headers_length))
    if not candidates:
        return data
    start, section, length = candidates[choose.integer(0, len(candidates) - 1)]
    section_bytes = bytearray(data[section : section + length])
    if choose.integer(0, 1):
        section_bytes = overwrite_word(section_bytes, choose)
    else:
        section_bytes = write_interesting_bytes(section_bytes, choose)
    data[section : section + length] = section_bytes
    return bytearray(reference.with_crc(data, start))


def insert_bytes(data: bytearray, choose: Chooser) -> bytearray:
    position = choose.integer(0, len(data))
    data[position:position] = choose.data(choose.integer(1, 16))
    return data


def delete_bytes(data: bytearray, choose: Chooser) -> bytearray:
    if data:
        position = choose.integer(0, len(data) - 1)
        del data[position : position + choose.integer(1, 16)]
    return data


def swap_frames(data: bytearray, choose: Chooser) -> bytearray:
    ranges = plausible_frames(data)
    if len(ranges) < 2:
        return data
    first = choose.integer(0, len(ranges) - 2)
    second = choose.integer(first + 1, len(ranges) - 1)
    (a_start, a_end), (b_start, b_end) = ranges[first], ranges[second]
    return (
        data[:a_start]
        + data[b_start:b_end]
        + data[a_end:b_start]
        + data[a_start:a_end]
        + data[b_end:]
    )


def duplicate_frame(data: bytearray, choose: Chooser) -> bytearray:
    ranges = plausible_frames(data)
    if not ranges:
        return data
    start, end = ranges[choose.integer(0, len(ranges) - 1)]
    boundaries = [0] + [frame_end for _, frame_end in ranges]
    at = boundaries[choose.integer(0, len(boundaries) - 1)]
    data[at:at] = data[start:end]
    return data


Mutation = Callable[[bytearray, Chooser], bytearray]
MUTATIONS: tuple[Mutation, ...] = (
    truncate,
    flip_bit,
    overwrite_length_field,
    overwrite_word,
    write_interesting_bytes,
    corrupt_fixed_header_byte,
    corrupt_headers_section,
    corrupt_headers_section,
    insert_bytes,
    delete_bytes,
    swap_frames,
    duplicate_frame,
)


def mutate(data: bytes, choose: Chooser) -> bytes:
    """``data`` after one to three mutations, checksums then recomputed half of the time."""
    buffer = bytearray(data)
    for _ in range(choose.integer(1, 3)):
        buffer = MUTATIONS[choose.integer(0, len(MUTATIONS) - 1)](buffer, choose)
    if choose.integer(0, 1):
        buffer = fix_checksums(buffer)
    return bytes(buffer)


# --------------------------------------------------------------------------------------------
# Outcomes
# --------------------------------------------------------------------------------------------

Outcome = tuple[Any, ...]


def _error(error: Any) -> Outcome:
    return ("error", error.reason, error.offset, error.frame_offset)


def reference_outcomes(data: bytes, max_frame_size: int) -> tuple[Outcome, Outcome]:
    """What the reference's decode and decode_batch make of ``data``."""
    try:
        single: Outcome = ("ok", [reference.decode(data, max_frame_size)])
    except reference.RefDecodeError as error:
        single = _error(error)
    try:
        batch: Outcome = ("ok", reference.decode_batch(data, max_frame_size))
    except reference.RefDecodeError as error:
        batch = _error(error)
    return single, batch


def kaelix_outcomes(data: Any, max_frame_size: int) -> tuple[Outcome, Outcome]:
    """What kaelix's decode and decode_batch make of ``data``, checked for consistency.

    Any exception other than DecodeError propagates and fails the test. Also checks that
    MessageBatch.from_bytes agrees with decode_batch, and that whatever decodes re-encodes to
    exactly the input (a valid frame has only one encoding).
    """
    try:
        single: Outcome = ("ok", [to_fields(kaelix.decode(data, max_frame_size=max_frame_size))])
    except kaelix.DecodeError as error:
        single = _error(error)
    try:
        messages = kaelix.decode_batch(data, max_frame_size=max_frame_size)
        batch: Outcome = ("ok", [to_fields(message) for message in messages])
    except kaelix.DecodeError as error:
        messages = None
        batch = _error(error)
    try:
        message_batch = kaelix.MessageBatch.from_bytes(data, max_frame_size=max_frame_size)
    except kaelix.DecodeError as error:
        assert _error(error) == batch, "MessageBatch.from_bytes and decode_batch disagree"
    else:
        assert messages is not None, "MessageBatch.from_bytes accepted what decode_batch refused"
        assert list(message_batch) == messages
        assert message_batch.to_bytes() == bytes(data)
        assert kaelix.encode_batch(messages) == bytes(data), "a decoded batch re-encodes"
    if single[0] == "ok":
        assert batch == single, "decode accepted a frame that decode_batch refused"
    return single, batch


def assert_same_as_reference(data: bytes, max_frame_size: int) -> Outcome:
    """Both of kaelix's outcomes equal the reference's; returns the batch outcome."""
    expected_single, expected_batch = reference_outcomes(data, max_frame_size)
    got_single, got_batch = kaelix_outcomes(data, max_frame_size)
    assert got_single == expected_single, f"decode of {data.hex()}"
    assert got_batch == expected_batch, f"decode_batch of {data.hex()}"
    return got_batch


def describe(outcome: Outcome) -> str:
    """``ok`` or the reason, for hypothesis statistics and coverage checks."""
    return "ok" if outcome[0] == "ok" else str(outcome[1])


# --------------------------------------------------------------------------------------------
# Hypothesis: mutated frames and batches
# --------------------------------------------------------------------------------------------


@st.composite
def mutated_batches(draw: st.DrawFn) -> bytes:
    """One to four valid frames end to end, then mutated."""
    fields_list: list[Fields] = draw(st.lists(small_message_fields(), min_size=1, max_size=4))
    data = b"".join(reference.encode(**fields) for fields in fields_list)
    return mutate(data, HypothesisChooser(draw))


@settings(max_examples=400, deadline=None)
@given(mutated_batches(), max_frame_sizes)
def test_mutated_input_decodes_like_the_reference(data: bytes, max_frame_size: int) -> None:
    event(describe(assert_same_as_reference(data, max_frame_size)))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), max_frame_sizes)
def test_arbitrary_bytes_decode_like_the_reference(data: bytes, max_frame_size: int) -> None:
    assert_same_as_reference(data, max_frame_size)
    assert_same_as_reference(b"KLXF\x00\x00\x00\x00\x01" + data, max_frame_size)


@settings(max_examples=200, deadline=None)
@given(st.lists(small_message_fields(), min_size=2, max_size=5), st.randoms())
def test_reordered_and_repeated_frames_decode_in_their_new_order(
    fields_list: list[Fields], random: Any
) -> None:
    frames = [reference.encode(**fields) for fields in fields_list]
    order = [random.randrange(len(frames)) for _ in range(len(frames) + 1)]
    data = b"".join(frames[index] for index in order)
    assert [to_fields(m) for m in kaelix.decode_batch(data)] == [fields_list[i] for i in order]


# --------------------------------------------------------------------------------------------
# Hand-made headers sections (checksums right, so step 10 is what decides)
# --------------------------------------------------------------------------------------------

# Bytes around the UTF-8 boundaries: ASCII, continuation bytes, every kind of lead byte.
UTF8_EDGE_BYTES = bytes.fromhex(
    "00 41 7f 80 8f 90 9f a0 bf c0 c1 c2 df e0 e1 ec ed ee ef f0 f1 f3 f4 f5 f8 ff"
)

raw_names = st.one_of(
    st.sampled_from([b"a", b"b", b"c", "é".encode(), "日本".encode()]),  # collide often
    st.text(min_size=1, max_size=6).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.lists(st.sampled_from(list(UTF8_EDGE_BYTES)), min_size=1, max_size=6).map(bytes),
    st.binary(min_size=0, max_size=6),
)


@st.composite
def raw_headers_frames(draw: st.DrawFn) -> bytes:
    """A frame around arbitrary entries, with a header_count that may not match them."""
    entries = draw(st.lists(st.tuples(raw_names, st.binary(max_size=4)), max_size=24))
    section = b"".join(reference.encode_header_entry(name, value) for name, value in entries)
    section += draw(st.one_of(st.just(b""), st.binary(max_size=7)))
    count = max(0, len(entries) + draw(st.sampled_from([0, 0, 0, -1, 1])))
    return reference.assemble(
        payload=draw(st.binary(max_size=8)),
        key=draw(st.one_of(st.none(), st.binary(max_size=3))),
        headers_section=section,
        header_count=min(count, 0xFFFF),
        partition=0,
        producer_id=0,
        sequence=0,
        timestamp_ns=0,
    )


@settings(max_examples=400, deadline=None)
@given(raw_headers_frames())
def test_hand_made_headers_sections_decode_like_the_reference(frame: bytes) -> None:
    event(describe(assert_same_as_reference(frame, DEFAULT_MAX)))


def _frame_with_header_name(template: bytes, name: bytes) -> bytes:
    """``template`` (one header whose name has ``len(name)`` bytes) carrying ``name``."""
    frame = bytearray(template)
    frame[NAME_AT : NAME_AT + len(name)] = name
    struct.pack_into("<I", frame, 4, kaelix.crc32c(memoryview(frame)[8:]))
    return bytes(frame)


NAME_AT = reference.FIXED_HEADER_SIZE + 6  # no key: the first entry's name


def utf8_probe_names() -> list[bytes]:
    """Every 1- and 2-byte name, and 3- and 4-byte names around every boundary of UTF-8."""
    names = [bytes([first]) for first in range(256)]
    names += [bytes([first, second]) for first in range(256) for second in range(256)]
    continuation_edges = (0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0)
    for first in range(256):
        for second in continuation_edges:
            for third in (0x41, 0x80, 0xBF):
                names.append(bytes([first, second, third]))
                names += [bytes([first, second, third, fourth]) for fourth in (0x41, 0x80, 0xBF)]
    return names


def test_header_name_utf8_is_exactly_pythons_strict_utf8() -> None:
    """About 90,000 names: kaelix accepts exactly those that ``bytes.decode`` accepts."""
    templates = {
        size: reference.encode(b"", None, {"x" * size: b"v"}, 0, 0, 0, 0) for size in (1, 2, 3, 4)
    }
    mismatches = []
    for name in utf8_probe_names():
        frame = _frame_with_header_name(templates[len(name)], name)
        try:
            expected: Outcome = ("ok", name.decode("utf-8"))
        except UnicodeDecodeError:
            expected = ("error", "invalid_header", reference.FIXED_HEADER_SIZE, 0)
        try:
            got: Outcome = ("ok", next(iter(kaelix.decode(frame).headers)))
        except kaelix.DecodeError as error:
            got = _error(error)
        if got != expected:
            mismatches.append((name.hex(), expected, got))
    assert not mismatches, mismatches[:20]


# --------------------------------------------------------------------------------------------
# 100,000 deterministic inputs
# --------------------------------------------------------------------------------------------

SEED = 0x6B61656C6978  # "kaelix"
RANDOM_INPUTS = 50_000
MUTATED_INPUTS = 50_000
COMPARED_WITH_REFERENCE_EVERY = 50  # 2,000 of the 100,000
HEADER_NAMES = ("a", "b", "trace-id", "é", "日本", "🚀")


def random_fields(rng: np.random.Generator) -> Fields:
    """A small message with every field drawn from ``rng``."""
    return {
        "payload": rng.bytes(int(rng.integers(0, 65))),
        "key": None if rng.integers(0, 2) else rng.bytes(int(rng.integers(0, 9))),
        "headers": {
            HEADER_NAMES[index]: rng.bytes(int(rng.integers(0, 5)))
            for index in rng.permutation(len(HEADER_NAMES))[: int(rng.integers(0, 4))].tolist()
        },
        "partition": int(rng.integers(0, 2**32)),
        "producer_id": int(rng.integers(0, 2**64, dtype=np.uint64)),
        "sequence": int(rng.integers(0, 2**64, dtype=np.uint64)),
        "timestamp_ns": int(rng.integers(-(2**63), 2**63 - 1, dtype=np.int64)),
    }


def deterministic_inputs(seed: int) -> list[bytes]:
    """50,000 random byte strings, then 50,000 mutations of valid frames and batches."""
    rng = np.random.default_rng(seed)
    inputs = []
    lengths = rng.integers(0, 301, RANDOM_INPUTS)
    blob = rng.bytes(int(lengths.sum()))
    position = 0
    for index, length in enumerate(lengths.tolist()):
        data = bytearray(blob[position : position + length])
        position += length
        if index % 2:  # half start with the magic; half of those with version 1, flags 0 or 1
            data[:4] = reference.MAGIC[: min(4, length)]
            if index % 4 == 3 and length >= 10:
                data[8:10] = bytes([reference.VERSION, index % 8 // 4])
        inputs.append(bytes(data))
    pool = [reference.encode(**random_fields(rng)) for _ in range(64)]
    choose = RngChooser(rng)
    for _ in range(MUTATED_INPUTS):
        picks = rng.integers(0, len(pool), int(rng.integers(1, 4)))
        inputs.append(mutate(b"".join(pool[pick] for pick in picks.tolist()), choose))
    return inputs


def test_100k_inputs_decode_or_raise_decode_error() -> None:
    inputs = deterministic_inputs(SEED)
    assert len(inputs) == RANDOM_INPUTS + MUTATED_INPUTS
    outcomes: dict[str, int] = {}
    for index, data in enumerate(inputs):
        if index % COMPARED_WITH_REFERENCE_EVERY == 0:
            assert_same_as_reference(data, DEFAULT_MAX)
        single, _ = kaelix_outcomes(data, DEFAULT_MAX)
        outcomes[describe(single)] = outcomes.get(describe(single), 0) + 1
    # The inputs reach every check the format has, and valid frames too.
    assert set(outcomes) >= {"ok", *reference.REASONS}, outcomes
