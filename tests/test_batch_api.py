"""MessageBatch behaviour beyond round trips: views, copies, errors, protocols."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import kaelix
from kaelix import DecodeError, Message, MessageBatch


def _messages(count: int, payload: bytes = b"p" * 64) -> list[Message]:
    return [
        Message(
            payload + bytes([i % 251]),
            key=None if i % 3 else b"k%d" % i,
            headers={"n": b"%d" % i} if i % 2 else None,
            partition=i % 4,
            producer_id=i % 2,
            sequence=i,
            timestamp_ns=1_000 + i,
        )
        for i in range(count)
    ]


def test_empty_batch() -> None:
    batch = MessageBatch()
    assert len(batch) == 0
    assert batch.to_bytes() == b""
    assert list(batch.offsets) == [0]
    assert batch == MessageBatch.from_bytes(b"") == MessageBatch.from_messages([])
    assert list(batch) == []
    assert repr(batch) == "MessageBatch(0 messages)"


def test_negative_and_out_of_range_indexes() -> None:
    messages = _messages(5)
    batch = MessageBatch.from_messages(messages)
    assert batch[-1] == messages[-1]
    assert batch[np.int64(2)] == messages[2]
    with pytest.raises(IndexError, match="out of range for 5 messages"):
        batch[5]
    with pytest.raises(IndexError):
        batch[-6]
    with pytest.raises(IndexError):
        batch.payload(7)


@pytest.mark.parametrize("index", [slice(None, None, 2), slice(None, None, -1), slice(4, 1, -2)])
def test_strided_slices_gather_frames(index: slice) -> None:
    messages = _messages(9)
    batch = MessageBatch.from_messages(messages)
    picked = batch[index]
    assert list(picked) == messages[index]
    assert picked == MessageBatch.from_messages(messages[index])
    assert picked.offsets[-1] == picked.nbytes


def test_contiguous_slice_shares_the_buffer_and_revalidates() -> None:
    messages = _messages(10)
    batch = MessageBatch.from_messages(messages)
    part = batch[3:7]
    assert list(part) == messages[3:7]
    assert part.offsets[0] == 0
    assert MessageBatch.from_bytes(part.to_bytes()) == part
    assert len(batch[7:3]) == 0


def test_payload_is_a_zero_copy_read_only_view() -> None:
    batch = MessageBatch.from_messages(_messages(3))
    view = batch.payload(1)
    assert view.readonly
    assert bytes(view) == batch[1].payload
    assert view.obj is batch.buffer.obj
    assert bytes(batch.frame(1)) == kaelix.encode(batch[1])


def test_columns_are_read_only() -> None:
    batch = MessageBatch.from_messages(_messages(3))
    for column in (batch.sequence, batch.partition, batch.offsets, batch.checksum):
        with pytest.raises(ValueError, match="read-only"):
            column[0] = 1


def test_from_bytes_copies_mutable_input() -> None:
    messages = _messages(4)
    data = bytearray(kaelix.encode_batch(messages))
    batch = MessageBatch.from_bytes(data)
    data[:] = bytes(len(data))  # the caller reuses its buffer
    assert list(batch) == messages


def test_from_bytes_accepts_numpy_and_rejects_str() -> None:
    messages = _messages(4)
    data = np.frombuffer(kaelix.encode_batch(messages), dtype=np.uint8)
    assert list(MessageBatch.from_bytes(data)) == messages
    with pytest.raises(TypeError, match="bytes-like"):
        MessageBatch.from_bytes("frames")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bytes-like"):
        MessageBatch.from_bytes(12)  # type: ignore[arg-type]


def test_large_batch_takes_the_gil_free_path() -> None:
    messages = _messages(3000, payload=b"x" * 100)
    data = kaelix.encode_batch(messages)
    assert len(data) > 128 * 1024
    batch = MessageBatch.from_bytes(data)
    assert len(batch) == 3000
    np.testing.assert_array_equal(batch.sequence, np.arange(3000, dtype=np.uint64))
    broken = bytearray(data)
    broken[len(data) - 20] ^= 0xFF
    with pytest.raises(DecodeError) as info:
        MessageBatch.from_bytes(broken)
    assert info.value.reason == "checksum_mismatch"
    assert info.value.frame_offset == int(batch.offsets[-2])


def test_from_messages_names_the_bad_item() -> None:
    with pytest.raises(TypeError, match=r"messages\[1\] must be a kaelix.Message, got bytes"):
        MessageBatch.from_messages([Message(b"a"), b"b"])  # type: ignore[list-item]


def test_concat_and_add() -> None:
    first, second = _messages(3), _messages(4)
    joined = MessageBatch.from_messages(first) + MessageBatch.from_messages(second)
    assert list(joined) == first + second
    assert joined == MessageBatch.from_messages(first + second)
    assert MessageBatch.concat([]) == MessageBatch()
    with pytest.raises(TypeError, match="can only concatenate MessageBatch"):
        MessageBatch.concat([MessageBatch(), b""])  # type: ignore[list-item]


def test_pickle_round_trip_and_repr() -> None:
    batch = MessageBatch.from_messages(_messages(6))
    assert pickle.loads(pickle.dumps(batch)) == batch
    assert repr(batch).startswith("MessageBatch(6 messages, ")
    assert "sequence 0..5" in repr(batch)


def test_batches_are_unhashable() -> None:
    with pytest.raises(TypeError):
        hash(MessageBatch())
