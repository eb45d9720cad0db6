"""kaelix.Message: construction and validation, immutability, equality, repr, pickling, replace.

Error texts are matched loosely (the field's name), since the wording is still settling.
"""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest

import kaelix

FIELDS = ("payload", "key", "headers", "partition", "producer_id", "sequence", "timestamp_ns")


def full_message() -> kaelix.Message:
    return kaelix.Message(
        b"payload",
        key=b"key",
        headers={"a": b"1", "b": b"2"},
        partition=3,
        producer_id=4,
        sequence=5,
        timestamp_ns=-6,
    )


# --------------------------------------------------------------------------------------------
# Construction
# --------------------------------------------------------------------------------------------


def test_defaults() -> None:
    message = kaelix.Message(b"x")
    assert message.payload == b"x"
    assert message.key is None
    assert dict(message.headers) == {}
    assert message.partition == 0
    assert message.producer_id == 0
    assert message.sequence == 0
    assert message.timestamp_ns == 0


def test_fields_are_stored() -> None:
    message = full_message()
    assert message.payload == b"payload"
    assert message.key == b"key"
    assert dict(message.headers) == {"a": b"1", "b": b"2"}
    assert (message.partition, message.producer_id, message.sequence) == (3, 4, 5)
    assert message.timestamp_ns == -6


@pytest.mark.parametrize("payload", [b"abc", bytearray(b"abc"), memoryview(b"abc")])
@pytest.mark.parametrize("key", [b"k", bytearray(b"k"), memoryview(b"k")])
def test_bytes_like_payload_and_key_become_bytes(payload: Any, key: Any) -> None:
    message = kaelix.Message(payload, key=key, headers={"h": bytearray(b"v")})
    assert type(message.payload) is bytes and message.payload == b"abc"
    assert type(message.key) is bytes and message.key == b"k"
    assert type(message.headers["h"]) is bytes and message.headers["h"] == b"v"
    assert message == kaelix.Message(b"abc", key=b"k", headers={"h": b"v"})


def test_bytes_like_input_is_copied() -> None:
    payload = bytearray(b"abc")
    headers = {"h": b"v"}
    message = kaelix.Message(payload, headers=headers)
    payload[0] = ord("z")
    headers["h"] = b"changed"
    headers["new"] = b"added"
    assert message.payload == b"abc"
    assert dict(message.headers) == {"h": b"v"}


def test_memoryview_slice_payload() -> None:
    view = memoryview(b"0123456789")[3:7]
    assert kaelix.Message(view).payload == b"3456"


def test_extremes_are_accepted() -> None:
    message = kaelix.Message(
        b"",
        key=b"",
        headers={"n" * 255: b"", "é" * 127 + "x": b"", "🚀": b""},
        partition=2**32 - 1,
        producer_id=2**64 - 1,
        sequence=2**64 - 1,
        timestamp_ns=-(2**63),
    )
    assert message.key == b""
    assert kaelix.Message(b"", timestamp_ns=2**63 - 1).timestamp_ns == 2**63 - 1


def test_65535_headers_are_accepted() -> None:
    headers = {f"h{i}": b"" for i in range(65535)}
    assert len(kaelix.Message(b"", headers=headers).headers) == 65535


def test_other_fields_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        kaelix.Message(b"payload", b"key")  # type: ignore[call-arg]


BAD_ARGUMENTS: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    # (id, keyword arguments besides payload=b"p", exception, field named in the message)
    ("payload_str", {"payload": "text"}, TypeError, "payload"),
    ("payload_int", {"payload": 5}, TypeError, "payload"),
    ("payload_none", {"payload": None}, TypeError, "payload"),
    ("payload_list", {"payload": [1, 2]}, TypeError, "payload"),
    ("key_str", {"key": "text"}, TypeError, "key"),
    ("key_int", {"key": 3}, TypeError, "key"),
    ("partition_float", {"partition": 1.0}, TypeError, "partition"),
    ("partition_str", {"partition": "1"}, TypeError, "partition"),
    ("partition_none", {"partition": None}, TypeError, "partition"),
    ("partition_negative", {"partition": -1}, ValueError, "partition"),
    ("partition_2_32", {"partition": 2**32}, ValueError, "partition"),
    ("producer_id_float", {"producer_id": 0.0}, TypeError, "producer_id"),
    ("producer_id_negative", {"producer_id": -1}, ValueError, "producer_id"),
    ("producer_id_2_64", {"producer_id": 2**64}, ValueError, "producer_id"),
    ("sequence_str", {"sequence": "0"}, TypeError, "sequence"),
    ("sequence_negative", {"sequence": -1}, ValueError, "sequence"),
    ("sequence_2_64", {"sequence": 2**64}, ValueError, "sequence"),
    ("timestamp_float", {"timestamp_ns": 1.5}, TypeError, "timestamp_ns"),
    ("timestamp_below_i64", {"timestamp_ns": -(2**63) - 1}, ValueError, "timestamp_ns"),
    ("timestamp_above_i64", {"timestamp_ns": 2**63}, ValueError, "timestamp_ns"),
    ("headers_not_a_mapping", {"headers": 5}, TypeError, "headers"),
    ("header_name_bytes", {"headers": {b"name": b"v"}}, TypeError, "headers"),
    ("header_name_int", {"headers": {1: b"v"}}, TypeError, "headers"),
    ("header_value_str", {"headers": {"name": "v"}}, TypeError, "headers"),
    ("header_value_none", {"headers": {"name": None}}, TypeError, "headers"),
    ("header_name_empty", {"headers": {"": b"v"}}, ValueError, "headers"),
    ("header_name_256_ascii", {"headers": {"n" * 256: b"v"}}, ValueError, "headers"),
    ("header_name_256_utf8_bytes", {"headers": {"é" * 128: b"v"}}, ValueError, "headers"),
    ("header_name_lone_surrogate", {"headers": {"\ud800": b"v"}}, ValueError, "headers"),
]


@pytest.mark.parametrize(
    ("arguments", "exception", "field"),
    [case[1:] for case in BAD_ARGUMENTS],
    ids=[case[0] for case in BAD_ARGUMENTS],
)
def test_bad_argument_is_rejected(
    arguments: dict[str, Any], exception: type[Exception], field: str
) -> None:
    arguments = {"payload": b"p", **arguments}
    payload = arguments.pop("payload")
    with pytest.raises(exception, match=field):
        kaelix.Message(payload, **arguments)


def test_too_many_headers_is_rejected() -> None:
    headers = {f"h{i}": b"" for i in range(65536)}
    with pytest.raises(ValueError, match="headers"):
        kaelix.Message(b"", headers=headers)


# --------------------------------------------------------------------------------------------
# Immutability
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", FIELDS)
def test_fields_cannot_be_set_or_deleted(field: str) -> None:
    message = full_message()
    with pytest.raises(AttributeError):
        setattr(message, field, getattr(message, field))
    with pytest.raises(AttributeError):
        delattr(message, field)


def test_no_new_attributes() -> None:
    with pytest.raises(AttributeError):
        full_message().extra = 1  # type: ignore[attr-defined]


def test_headers_are_read_only() -> None:
    message = full_message()
    with pytest.raises(TypeError):
        message.headers["a"] = b"changed"  # type: ignore[index]
    with pytest.raises(TypeError):
        del message.headers["a"]  # type: ignore[attr-defined]
    assert dict(message.headers) == {"a": b"1", "b": b"2"}


def test_headers_mapping_interface() -> None:
    headers = full_message().headers
    assert len(headers) == 2
    assert headers["a"] == b"1"
    assert "b" in headers and "c" not in headers
    assert headers.get("c") is None
    assert sorted(headers) == ["a", "b"]
    assert sorted(headers.items()) == [("a", b"1"), ("b", b"2")]
    with pytest.raises(KeyError):
        headers["c"]


def test_headers_keep_insertion_order() -> None:
    names = ["z", "a", "m", "é"]
    message = kaelix.Message(b"", headers={name: b"" for name in names})
    assert list(message.headers) == names


# --------------------------------------------------------------------------------------------
# Equality and hashing
# --------------------------------------------------------------------------------------------


def test_equal_by_value() -> None:
    assert full_message() == full_message()
    assert full_message() is not full_message()
    assert hash(full_message()) == hash(full_message())
    assert len({full_message(), full_message()}) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"payload": b"other"},
        {"key": None},
        {"key": b""},
        {"headers": {}},
        {"headers": {"a": b"1"}},
        {"headers": {"a": b"1", "b": b"other"}},
        {"partition": 4},
        {"producer_id": 5},
        {"sequence": 6},
        {"timestamp_ns": 6},
    ],
    ids=lambda change: "-".join(f"{k}={v!r}" for k, v in change.items()),
)
def test_any_field_difference_is_unequal(change: dict[str, Any]) -> None:
    assert full_message().replace(**change) != full_message()


def test_no_key_and_empty_key_differ() -> None:
    assert kaelix.Message(b"x") != kaelix.Message(b"x", key=b"")


def test_header_order_does_not_matter() -> None:
    first = kaelix.Message(b"x", headers={"a": b"1", "b": b"2"})
    second = kaelix.Message(b"x", headers={"b": b"2", "a": b"1"})
    assert first == second
    assert hash(first) == hash(second)


@pytest.mark.parametrize("other", [None, 1, b"payload", "payload", object()])
def test_not_equal_to_other_types(other: object) -> None:
    assert full_message() != other
    assert (full_message() == other) is False


def test_usable_as_dict_key() -> None:
    table = {full_message(): "found"}
    assert table[full_message()] == "found"


# --------------------------------------------------------------------------------------------
# repr
# --------------------------------------------------------------------------------------------


def test_repr_names_the_fields() -> None:
    text = repr(full_message())
    assert text.startswith("Message(")
    assert "b'payload'" in text
    for field in FIELDS[1:]:  # the payload is positional, the rest are keywords
        assert f"{field}=" in text, field
    assert "'a'" in text and "b'1'" in text


def test_repr_shortens_long_payloads() -> None:
    text = repr(kaelix.Message(b"x" * 1_000_000, key=b"k" * 100_000))
    assert text.startswith("Message(")
    assert len(text) < 1000
    assert "key=" in text


# --------------------------------------------------------------------------------------------
# Pickling and copying
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize(
    "message",
    [
        kaelix.Message(b""),
        full_message(),
        kaelix.Message(
            bytes(range(256)),
            key=b"",
            headers={"日本": b"\x00"},
            partition=2**32 - 1,
            producer_id=2**64 - 1,
            sequence=2**64 - 1,
            timestamp_ns=-(2**63),
        ),
    ],
    ids=["empty", "full", "extremes"],
)
def test_pickle_round_trip(protocol: int, message: kaelix.Message) -> None:
    restored = pickle.loads(pickle.dumps(message, protocol=protocol))
    assert type(restored) is kaelix.Message
    assert restored == message
    assert dict(restored.headers) == dict(message.headers)
    assert restored.key == message.key


def test_copy_and_deepcopy() -> None:
    message = full_message()
    assert copy.copy(message) == message
    assert copy.deepcopy(message) == message


# --------------------------------------------------------------------------------------------
# replace
# --------------------------------------------------------------------------------------------


def test_replace_changes_only_what_is_named() -> None:
    original = full_message()
    changed = original.replace(sequence=99, key=None, headers={"z": b"9"})
    assert changed.sequence == 99
    assert changed.key is None
    assert dict(changed.headers) == {"z": b"9"}
    assert changed.payload == original.payload
    assert changed.partition == original.partition
    assert changed.timestamp_ns == original.timestamp_ns
    assert original == full_message()  # untouched


def test_replace_without_changes_is_equal() -> None:
    assert full_message().replace() == full_message()


def test_replace_payload_bytes_like() -> None:
    assert full_message().replace(payload=bytearray(b"new")).payload == b"new"


@pytest.mark.parametrize(
    ("change", "exception", "field"),
    [
        ({"partition": -1}, ValueError, "partition"),
        ({"sequence": 2**64}, ValueError, "sequence"),
        ({"payload": "text"}, TypeError, "payload"),
        ({"headers": {"": b""}}, ValueError, "headers"),
    ],
)
def test_replace_validates(change: dict[str, Any], exception: type[Exception], field: str) -> None:
    with pytest.raises(exception, match=field):
        full_message().replace(**change)


def test_replace_unknown_field() -> None:
    with pytest.raises(TypeError, match="colour"):
        full_message().replace(colour=b"red")


def test_replace_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        full_message().replace(b"payload")  # type: ignore[call-arg]
