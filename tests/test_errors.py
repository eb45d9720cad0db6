"""The kaelix error tree, DecodeError's attributes, FrameTooLarge and max_frame_size checks.

Error texts are matched loosely (reason names, offsets, argument names).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

import kaelix
import reference

WORKED_EXAMPLE = kaelix.Message(
    b"hello", key=b"k", headers={"h": b"v"}, partition=2, producer_id=7, sequence=9, timestamp_ns=1
)
FRAME = reference.encode(b"hello", b"k", {"h": b"v"}, 2, 7, 9, 1)  # 72 bytes


# --------------------------------------------------------------------------------------------
# The tree
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "bases"),
    [
        (kaelix.KaelixError, (Exception,)),
        (kaelix.DecodeError, (kaelix.KaelixError, ValueError)),
        (kaelix.FrameTooLarge, (kaelix.KaelixError, ValueError)),
    ],
)
def test_error_tree(error: type[Exception], bases: tuple[type[Exception], ...]) -> None:
    for base in bases:
        assert issubclass(error, base), base


def test_decode_error_and_frame_too_large_are_distinct() -> None:
    assert not issubclass(kaelix.DecodeError, kaelix.FrameTooLarge)
    assert not issubclass(kaelix.FrameTooLarge, kaelix.DecodeError)


# --------------------------------------------------------------------------------------------
# DecodeError
# --------------------------------------------------------------------------------------------

# The text may spell a reason as its identifier or in words ("bad_magic" or "bad magic").
REASON_PATTERN = {reason: reason.replace("_", "[_ ]") for reason in reference.REASONS}


def names_reason(text: str, reason: str) -> bool:
    return re.search(REASON_PATTERN[reason], text) is not None


def test_decode_error_attributes_and_text() -> None:
    corrupt = bytearray(FRAME)
    corrupt[66] ^= 1
    with pytest.raises(kaelix.DecodeError) as caught:
        kaelix.decode_batch(FRAME + bytes(corrupt))
    error = caught.value
    assert error.reason == "checksum_mismatch"
    assert error.offset == 72 + 4
    assert error.frame_offset == 72
    assert names_reason(str(error), "checksum_mismatch")
    assert "76" in str(error)


@pytest.mark.parametrize(
    ("data", "reason", "offset"),
    [
        (b"", "truncated", 0),
        (b"XYZ", "bad_magic", 0),
        (FRAME[:40], "truncated", 40),
        (FRAME + b"\x00" * 8, "trailing_data", 72),
    ],
    ids=["empty", "wrong_magic", "short", "trailing"],
)
def test_decode_error_text_names_reason_and_offset(data: bytes, reason: str, offset: int) -> None:
    with pytest.raises(kaelix.DecodeError) as caught:
        kaelix.decode(data)
    assert (caught.value.reason, caught.value.offset, caught.value.frame_offset) == (
        reason,
        offset,
        0,
    )
    assert names_reason(str(caught.value), reason)
    assert str(offset) in str(caught.value)


def test_decode_error_is_caught_as_value_error() -> None:
    with pytest.raises(ValueError, match=REASON_PATTERN["bad_magic"]):
        kaelix.decode(b"nope")
    with pytest.raises(kaelix.KaelixError, match=REASON_PATTERN["bad_magic"]):
        kaelix.decode(b"nope")


@pytest.mark.parametrize("not_bytes", ["KLXF", 12, None, [75, 76, 88, 70]])
@pytest.mark.parametrize(
    "decoder",
    [kaelix.decode, kaelix.decode_batch, kaelix.MessageBatch.from_bytes],
    ids=["decode", "decode_batch", "from_bytes"],
)
def test_decoding_a_non_buffer_is_a_type_error(decoder: Callable[..., Any], not_bytes: Any) -> None:
    with pytest.raises(TypeError):
        decoder(not_bytes)


# --------------------------------------------------------------------------------------------
# FrameTooLarge and max_frame_size
# --------------------------------------------------------------------------------------------


def test_encode_at_and_over_max_frame_size() -> None:
    assert kaelix.encode(WORKED_EXAMPLE, max_frame_size=72) == FRAME
    with pytest.raises(kaelix.FrameTooLarge):
        kaelix.encode(WORKED_EXAMPLE, max_frame_size=71)
    with pytest.raises(kaelix.FrameTooLarge):
        kaelix.encode(WORKED_EXAMPLE, max_frame_size=64)


def test_encode_batch_over_max_frame_size() -> None:
    small = kaelix.Message(b"")
    assert kaelix.encode_batch([small, WORKED_EXAMPLE], max_frame_size=72) == (
        kaelix.encode(small) + FRAME
    )
    with pytest.raises(kaelix.FrameTooLarge):
        kaelix.encode_batch([small, WORKED_EXAMPLE], max_frame_size=64)


def test_default_max_frame_size_is_16_mib() -> None:
    limit = 16 * 1024 * 1024
    fits = kaelix.Message(bytes(limit - 56))
    assert len(kaelix.encode(fits)) == limit
    with pytest.raises(kaelix.FrameTooLarge):
        kaelix.encode(kaelix.Message(bytes(limit - 55)))


def test_decode_at_and_over_max_frame_size() -> None:
    assert kaelix.decode(FRAME, max_frame_size=72) == WORKED_EXAMPLE
    with pytest.raises(kaelix.DecodeError) as caught:
        kaelix.decode(FRAME, max_frame_size=64)
    assert (caught.value.reason, caught.value.offset) == ("length_out_of_range", 12)


def test_extreme_valid_max_frame_sizes() -> None:
    empty = kaelix.Message(b"")
    frame = kaelix.encode(empty, max_frame_size=56)
    assert len(frame) == 56
    assert kaelix.MAX_FRAME_SIZE_LIMIT == reference.LARGEST_MAX_FRAME_SIZE
    assert kaelix.encode(empty, max_frame_size=kaelix.MAX_FRAME_SIZE_LIMIT) == frame
    assert kaelix.encode(empty, max_frame_size=4_294_967_288) == frame
    assert kaelix.decode(frame, max_frame_size=56) == empty
    assert kaelix.decode(frame, max_frame_size=4_294_967_288) == empty


def _all_max_frame_size_users() -> list[tuple[str, Callable[[int], object]]]:
    message = kaelix.Message(b"")
    return [
        ("encode", lambda limit: kaelix.encode(message, max_frame_size=limit)),
        ("encode_batch", lambda limit: kaelix.encode_batch([message], max_frame_size=limit)),
        ("decode", lambda limit: kaelix.decode(FRAME, max_frame_size=limit)),
        ("decode_batch", lambda limit: kaelix.decode_batch(FRAME, max_frame_size=limit)),
        (
            "from_bytes",
            lambda limit: kaelix.MessageBatch.from_bytes(FRAME, max_frame_size=limit),
        ),
    ]


MAX_FRAME_SIZE_USERS = _all_max_frame_size_users()
max_frame_size_users = pytest.mark.parametrize(
    "call",
    [user[1] for user in MAX_FRAME_SIZE_USERS],
    ids=[user[0] for user in MAX_FRAME_SIZE_USERS],
)


@max_frame_size_users
@pytest.mark.parametrize("limit", [-1, 0, 8, 55, 4_294_967_289, 2**32, 2**64])
def test_max_frame_size_out_of_range(call: Callable[[int], object], limit: int) -> None:
    with pytest.raises(ValueError, match="max_frame_size"):
        call(limit)


@max_frame_size_users
@pytest.mark.parametrize("limit", [72.0, "72"])
def test_max_frame_size_wrong_type(call: Callable[[int], object], limit: Any) -> None:
    with pytest.raises(TypeError, match="max_frame_size"):
        call(limit)


def test_max_frame_size_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        kaelix.decode(FRAME, 72)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        kaelix.encode(WORKED_EXAMPLE, 72)  # type: ignore[call-arg]


def test_encode_rejects_a_non_message() -> None:
    with pytest.raises(TypeError):
        kaelix.encode(b"payload")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        kaelix.encode_batch([WORKED_EXAMPLE, b"payload"])  # type: ignore[list-item]


def test_decode_error_lists_the_reasons_of_the_spec() -> None:
    assert kaelix.DecodeError.REASONS == reference.REASONS
