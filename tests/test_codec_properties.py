"""Property tests: kaelix's codec, MessageBatch and CRC-32C against the plain-Python reference.

Every message field is drawn over its full range; frames must match the reference byte for
byte, decoding must give exactly what the reference gives, and the batch views (columns,
slices, concatenation, bytes-like inputs) must agree with the per-message picture.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kaelix
import reference
from strategies_local import Fields, message_fields, small_message_fields, to_fields, to_message

# Examples that touch 4 KiB payloads run the pure-Python CRC: no per-example deadline.
properties = settings(deadline=None, max_examples=100)
message_lists = st.lists(small_message_fields(), max_size=8)


def reference_frames(fields_list: list[Fields]) -> list[bytes]:
    return [reference.encode(**fields) for fields in fields_list]


# --------------------------------------------------------------------------------------------
# Single messages
# --------------------------------------------------------------------------------------------


@properties
@given(message_fields())
def test_encode_matches_reference_byte_for_byte(fields: Fields) -> None:
    assert kaelix.encode(to_message(fields)) == reference.encode(**fields)


@properties
@given(message_fields())
def test_decode_matches_reference(fields: Fields) -> None:
    frame = reference.encode(**fields)
    decoded = kaelix.decode(frame)
    assert to_fields(decoded) == reference.decode(frame) == fields
    assert list(decoded.headers) == list(fields["headers"])  # wire order is kept
    assert type(decoded.payload) is bytes
    assert decoded.key is None or type(decoded.key) is bytes


@properties
@given(message_fields())
def test_round_trip(fields: Fields) -> None:
    message = to_message(fields)
    assert kaelix.decode(kaelix.encode(message)) == message


@properties
@given(message_fields())
def test_frame_layout_invariants(fields: Fields) -> None:
    frame = kaelix.encode(to_message(fields))
    assert len(frame) % 8 == 0
    assert frame[:4] == b"KLXF"
    assert struct.unpack_from("<I", frame, 12)[0] == len(frame)
    assert struct.unpack_from("<I", frame, 4)[0] == kaelix.crc32c(frame[8:])


def test_65535_headers_round_trip_and_a_late_duplicate_is_found() -> None:
    names = [f"h{index:05d}" for index in range(65535)]
    fields: Fields = {
        "payload": b"p",
        "key": None,
        "headers": dict.fromkeys(names, b""),
        "partition": 0,
        "producer_id": 0,
        "sequence": 0,
        "timestamp_ns": 0,
    }
    frame = reference.encode(**fields)
    assert kaelix.encode(to_message(fields)) == frame
    assert list(kaelix.decode(frame).headers) == names
    # The same count with the last name repeating the first: found at the last entry.
    entries = [reference.encode_header_entry(name.encode(), b"") for name in names]
    entries[-1] = entries[0]
    duplicated = reference.assemble(
        payload=b"p",
        key=None,
        headers_section=b"".join(entries),
        header_count=len(entries),
        partition=0,
        producer_id=0,
        sequence=0,
        timestamp_ns=0,
    )
    with pytest.raises(kaelix.DecodeError) as caught:
        kaelix.decode(duplicated)
    last_entry = reference.FIXED_HEADER_SIZE + 12 * (len(entries) - 1)
    assert (caught.value.reason, caught.value.offset) == ("invalid_header", last_entry)


# --------------------------------------------------------------------------------------------
# Batches
# --------------------------------------------------------------------------------------------


def assert_columns(batch: kaelix.MessageBatch, fields_list: list[Fields], data: bytes) -> None:
    """Every column of ``batch`` against the fields and bytes it was made from."""
    count = len(fields_list)
    expected: dict[str, tuple[type[np.generic], list[int]]] = {
        "sequence": (np.uint64, [f["sequence"] for f in fields_list]),
        "partition": (np.uint32, [f["partition"] for f in fields_list]),
        "producer_id": (np.uint64, [f["producer_id"] for f in fields_list]),
        "timestamp_ns": (np.int64, [f["timestamp_ns"] for f in fields_list]),
    }
    for name, (dtype, values) in expected.items():
        column = getattr(batch, name)
        assert isinstance(column, np.ndarray), name
        assert column.dtype == dtype, name
        assert column.shape == (count,), name
        assert column.tolist() == values, name
    ranges = reference.frame_ranges(data)
    offsets = batch.offsets
    assert offsets.dtype == np.int64
    assert offsets.tolist() == [0] + [end for _, end in ranges]
    assert offsets[-1] == len(data)
    checksum = batch.checksum
    assert checksum.dtype == np.uint32
    assert checksum.tolist() == [
        struct.unpack_from("<I", data, start + 4)[0] for start, _ in ranges
    ]


def assert_batch_matches(batch: kaelix.MessageBatch, fields_list: list[Fields]) -> None:
    """``batch`` holds exactly the messages ``fields_list`` describes, seen every way."""
    frames = reference_frames(fields_list)
    data = b"".join(frames)
    messages = [to_message(fields) for fields in fields_list]
    count = len(messages)
    assert len(batch) == count
    assert list(batch) == messages
    assert [batch[index] for index in range(count)] == messages
    assert [batch[index - count] for index in range(count)] == messages
    with pytest.raises(IndexError):
        batch[count]
    with pytest.raises(IndexError):
        batch[-count - 1]
    assert batch.to_bytes() == data
    for index, fields in enumerate(fields_list):
        view = batch.payload(index)
        assert isinstance(view, memoryview)
        assert view.tobytes() == fields["payload"]
    assert_columns(batch, fields_list, data)


@properties
@given(message_lists)
def test_batch_round_trip(fields_list: list[Fields]) -> None:
    messages = [to_message(fields) for fields in fields_list]
    data = kaelix.encode_batch(messages)
    assert data == b"".join(reference_frames(fields_list))
    assert kaelix.decode_batch(data) == messages
    assert [to_fields(m) for m in kaelix.decode_batch(data)] == reference.decode_batch(data)


@properties
@given(message_lists)
def test_encode_batch_takes_any_iterable(fields_list: list[Fields]) -> None:
    messages = [to_message(fields) for fields in fields_list]
    data = kaelix.encode_batch(messages)
    assert kaelix.encode_batch(iter(messages)) == data
    assert kaelix.encode_batch(tuple(messages)) == data


@properties
@given(message_lists)
def test_message_batch_from_bytes(fields_list: list[Fields]) -> None:
    data = b"".join(reference_frames(fields_list))
    assert_batch_matches(kaelix.MessageBatch.from_bytes(data), fields_list)


@properties
@given(message_lists)
def test_message_batch_from_messages(fields_list: list[Fields]) -> None:
    messages = [to_message(fields) for fields in fields_list]
    assert_batch_matches(kaelix.MessageBatch.from_messages(messages), fields_list)
    assert_batch_matches(kaelix.MessageBatch.from_messages(iter(messages)), fields_list)


slice_bounds = st.one_of(st.none(), st.integers(-10, 10))


@properties
@given(message_lists, slice_bounds, slice_bounds)
def test_slicing_agrees_with_list_slicing(
    fields_list: list[Fields], start: int | None, stop: int | None
) -> None:
    batch = kaelix.MessageBatch.from_bytes(b"".join(reference_frames(fields_list)))
    part = batch[start:stop]
    assert isinstance(part, kaelix.MessageBatch)
    assert_batch_matches(part, fields_list[start:stop])


@properties
@given(message_lists, slice_bounds, slice_bounds, slice_bounds, slice_bounds)
def test_slice_of_a_slice(
    fields_list: list[Fields],
    start: int | None,
    stop: int | None,
    start2: int | None,
    stop2: int | None,
) -> None:
    batch = kaelix.MessageBatch.from_messages([to_message(f) for f in fields_list])
    assert_batch_matches(batch[start:stop][start2:stop2], fields_list[start:stop][start2:stop2])


@properties
@given(message_lists, message_lists, slice_bounds, slice_bounds)
def test_concatenation_agrees_with_list_concatenation(
    first: list[Fields], second: list[Fields], start: int | None, stop: int | None
) -> None:
    first_batch = kaelix.MessageBatch.from_bytes(b"".join(reference_frames(first)))
    second_batch = kaelix.MessageBatch.from_messages([to_message(f) for f in second])
    joined = first_batch + second_batch
    assert isinstance(joined, kaelix.MessageBatch)
    assert_batch_matches(joined, first + second)
    # Slices start mid-buffer; their concatenation must renumber offsets from 0.
    assert_batch_matches(
        second_batch[start:stop] + first_batch[start:stop], second[start:stop] + first[start:stop]
    )
    # Operands are unchanged.
    assert_batch_matches(first_batch, first)
    assert_batch_matches(second_batch, second)


def test_empty_message_batch() -> None:
    for batch in (kaelix.MessageBatch.from_bytes(b""), kaelix.MessageBatch.from_messages([])):
        assert_batch_matches(batch, [])
        assert batch.offsets.tolist() == [0]


# --------------------------------------------------------------------------------------------
# Bytes-like inputs
# --------------------------------------------------------------------------------------------


def bytes_like_variants(data: bytes) -> dict[str, Any]:
    """``data`` as every kind of buffer a decoder must accept, some at odd addresses."""
    shifted = b"\x00" + data
    return {
        "bytes": data,
        "bytearray": bytearray(data),
        "memoryview": memoryview(data),
        "numpy_read_only": np.frombuffer(data, dtype=np.uint8),
        "numpy_writable": np.frombuffer(data, dtype=np.uint8).copy(),
        "memoryview_odd_offset": memoryview(shifted)[1:],
        "bytearray_view_odd_offset": memoryview(bytearray(shifted))[1:],
        "numpy_odd_offset": np.frombuffer(shifted, dtype=np.uint8)[1:],
    }


@properties
@given(st.lists(small_message_fields(), min_size=1, max_size=4))
def test_bytes_like_inputs_decode_the_same(fields_list: list[Fields]) -> None:
    frames = reference_frames(fields_list)
    data = b"".join(frames)
    messages = [to_message(fields) for fields in fields_list]
    for kind, variant in bytes_like_variants(data).items():
        assert kaelix.decode_batch(variant) == messages, kind
        batch = kaelix.MessageBatch.from_bytes(variant)
        assert list(batch) == messages, kind
        assert batch.to_bytes() == data, kind
    for kind, variant in bytes_like_variants(frames[0]).items():
        assert kaelix.decode(variant) == messages[0], kind


@properties
@given(st.lists(small_message_fields(), min_size=1, max_size=3), st.integers(0, 2))
def test_bytes_like_errors_are_the_same(fields_list: list[Fields], cut: int) -> None:
    data = b"".join(reference_frames(fields_list))
    data = data[: len(data) - 1 - cut]  # always a partial last frame
    with pytest.raises(reference.RefDecodeError) as expected:
        reference.decode_batch(data)
    for kind, variant in bytes_like_variants(data).items():
        with pytest.raises(kaelix.DecodeError) as caught:
            kaelix.decode_batch(variant)
        got = (caught.value.reason, caught.value.offset, caught.value.frame_offset)
        assert got == (expected.value.reason, expected.value.offset, expected.value.frame_offset), (
            kind
        )


def test_non_contiguous_buffer_is_rejected_or_decoded_correctly() -> None:
    frame = reference.encode(b"abc", None, {}, 0, 0, 0, 0)
    spaced = np.zeros(2 * len(frame), dtype=np.uint8)
    spaced[::2] = np.frombuffer(frame, dtype=np.uint8)
    strided: Any = spaced[::2]  # numpy's stubs call arrays buffers only from Python 3.12
    assert not strided.flags.c_contiguous
    try:
        decoded = kaelix.decode(strided)
    except (TypeError, ValueError, BufferError):
        return
    assert decoded == kaelix.Message(b"abc")


def test_message_batch_survives_mutation_of_its_source() -> None:
    """A batch made from a mutable buffer must never read past memory if the buffer changes.

    Copying at construction and re-validating are both fine; trusting stale lengths is not.
    """
    fields_list = [
        {
            "payload": b"payload",
            "key": b"key",
            "headers": {"h": b"v"},
            "partition": 1,
            "producer_id": 2,
            "sequence": 3,
            "timestamp_ns": 4,
        }
    ] * 3
    source = bytearray(b"".join(reference_frames(fields_list)))
    batch = kaelix.MessageBatch.from_bytes(source)
    for start, _ in reference.frame_ranges(source):
        for field in (44, 48, 52):
            struct.pack_into("<I", source, start + field, 0x7FFFFFF0)
        struct.pack_into("<H", source, start + 10, 0xFFFF)
    try:
        messages = list(batch)
        payloads = [batch.payload(index).tobytes() for index in range(len(batch))]
    except kaelix.KaelixError:
        return
    assert messages == [to_message(fields) for fields in fields_list]
    assert payloads == [b"payload"] * 3


# --------------------------------------------------------------------------------------------
# CRC-32C: hardware, table fallback and reference
# --------------------------------------------------------------------------------------------

u32s = st.integers(0, 2**32 - 1)


@properties
@given(st.binary(max_size=2048), st.integers(0, 15), u32s)
def test_crc32c_hardware_table_reference_agree(data: bytes, misalignment: int, value: int) -> None:
    view = memoryview(bytes(misalignment) + data)[misalignment:]
    expected = reference.crc32c(data, value)
    assert kaelix.crc32c(view, value) == expected
    assert kaelix._codec._crc32c_table(view, value) == expected
    assert kaelix.crc32c(data, value) == expected
    assert kaelix._codec._crc32c_table(data, value) == expected


@properties
@given(st.integers(0, 70_000), st.integers(0, 15), u32s, st.integers(0, 2**32 - 1))
def test_crc32c_hardware_and_table_agree_on_long_inputs(
    length: int, misalignment: int, value: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    buffer: Any = rng.integers(0, 256, length + misalignment, dtype=np.uint8)
    view = memoryview(buffer)[misalignment:]
    assert kaelix.crc32c(view, value) == kaelix._codec._crc32c_table(view, value)


def test_crc32c_every_length_and_alignment_around_the_block_sizes() -> None:
    """Dispatching crc32c against the table fallback wherever a fast path changes strategy.

    Every length up to 1100 at every alignment 0 to 63 (the short, folding and tail loops),
    then lengths around the long-block and power-of-two boundaries at alignments 0 to 7.
    """
    rng = np.random.default_rng(0xC5C32C)
    source = rng.bytes((1 << 20) + 128)
    table = kaelix._codec._crc32c_table
    mismatches = []
    cases = [(length, shift) for length in range(1101) for shift in range(64)]
    long_lengths = [3 * 8192 * k + d for k in (1, 2, 3) for d in (-1, 0, 1)]
    long_lengths += [(1 << bits) + d for bits in (11, 12, 16, 20) for d in (-1, 0, 1)]
    cases += [(length, shift) for length in long_lengths for shift in range(8)]
    view = memoryview(source)
    for length, shift in cases:
        value = (length * 2654435761 + shift) & 0xFFFFFFFF
        data = view[shift : shift + length]
        if kaelix.crc32c(data, value) != table(data, value):
            mismatches.append((length, shift))
    assert not mismatches, mismatches[:20]
    # And the table itself against the reference on a sample of them.
    for length, shift in cases[:: len(cases) // 200]:
        data = view[shift : shift + length]
        assert table(data, length) == reference.crc32c(data, length)


@properties
@given(st.binary(max_size=600), st.binary(max_size=600), u32s)
def test_crc32c_continuation(first: bytes, second: bytes, value: int) -> None:
    whole = reference.crc32c(first + second, value)
    assert kaelix.crc32c(second, kaelix.crc32c(first, value)) == whole
    table = kaelix._codec._crc32c_table
    assert table(second, table(first, value)) == whole
    assert kaelix.crc32c(first + second, value) == whole


@pytest.mark.parametrize(
    "buffer",
    [bytearray(b"123456789"), memoryview(b"123456789"), np.frombuffer(b"123456789", np.uint8)],
    ids=["bytearray", "memoryview", "numpy"],
)
def test_crc32c_accepts_bytes_like(buffer: Any) -> None:
    assert kaelix.crc32c(buffer) == 0xE3069283
    assert kaelix._codec._crc32c_table(buffer) == 0xE3069283
