"""Hypothesis strategies and helpers shared by the kaelix-versus-reference property tests.

Messages are drawn as plain field dicts (the shape ``reference.encode`` takes and
``reference.decode`` returns) so that the same draw feeds both implementations. They stand
in until kaelix ships its own strategies in ``kaelix.testing``; the tests should then move to
those. This module may import ``kaelix`` and ``reference``, never the other way around.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

import kaelix

Fields = dict[str, Any]

U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
I64_MIN = -(2**63)
I64_MAX = 2**63 - 1


def _clip_to_255_utf8_bytes(name: str) -> str:
    """``name`` shortened, a whole character at a time, to at most 255 bytes of UTF-8."""
    while len(name.encode("utf-8")) > 255:
        name = name[:-1]
    return name


# Any code point except surrogates (they have no UTF-8 form), including NUL and astral ones.
header_names = st.one_of(
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=1, max_size=12),
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=1, max_size=255).map(
        _clip_to_255_utf8_bytes
    ),
)
header_values = st.binary(max_size=40)
headers = st.dictionaries(header_names, header_values, max_size=6)
payloads = st.one_of(st.binary(max_size=80), st.binary(min_size=80, max_size=4200))
keys = st.one_of(st.none(), st.binary(max_size=40))
partitions = st.integers(0, U32_MAX)
u64s = st.integers(0, U64_MAX)
timestamps = st.integers(I64_MIN, I64_MAX)


@st.composite
def message_fields(draw: st.DrawFn) -> Fields:
    """A message as a field dict, every field over its full range."""
    return {
        "payload": draw(payloads),
        "key": draw(keys),
        "headers": draw(headers),
        "partition": draw(partitions),
        "producer_id": draw(u64s),
        "sequence": draw(u64s),
        "timestamp_ns": draw(timestamps),
    }


def small_message_fields() -> st.SearchStrategy[Fields]:
    """Message fields with short byte strings, for batches and mutation tests."""
    return st.fixed_dictionaries(
        {
            "payload": st.binary(max_size=48),
            "key": keys,
            "headers": st.dictionaries(
                st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=1, max_size=4),
                st.binary(max_size=8),
                max_size=3,
            ),
            "partition": partitions,
            "producer_id": u64s,
            "sequence": u64s,
            "timestamp_ns": timestamps,
        }
    )


def to_message(fields: Fields) -> kaelix.Message:
    """The kaelix.Message carrying ``fields``."""
    return kaelix.Message(
        fields["payload"],
        key=fields["key"],
        headers=fields["headers"],
        partition=fields["partition"],
        producer_id=fields["producer_id"],
        sequence=fields["sequence"],
        timestamp_ns=fields["timestamp_ns"],
    )


def to_fields(message: kaelix.Message) -> Fields:
    """The field dict of a kaelix.Message, comparable with ``reference.decode``'s result."""
    return {
        "payload": message.payload,
        "key": message.key,
        "headers": dict(message.headers),
        "partition": message.partition,
        "producer_id": message.producer_id,
        "sequence": message.sequence,
        "timestamp_ns": message.timestamp_ns,
    }
