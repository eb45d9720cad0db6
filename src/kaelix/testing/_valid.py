"""The strategies of valid values (see ``kaelix.testing.strategies``, which re-exports them).

Conventions are hypothesis's: every argument is checked when the strategy is built and a
bad one raises ``InvalidArgument`` naming the value and the fix; arguments that take a
strategy also take a plain value where that reads naturally (``partitions=4``); shrinking
goes toward the simplest value.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.strategies import SearchStrategy

import kaelix
from kaelix.testing.faults import FAULT_KINDS, Fault, FaultKind, FaultPlan
from kaelix.validate._reports import DeliveryReport

T = TypeVar("T")

_U32 = 2**32 - 1
_U64 = 2**64 - 1
_I64 = 2**63


def _size(name: str, value: object, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{name}={value!r} must be an int, not {type(value).__name__}")
    if value < low:
        raise InvalidArgument(f"{name}={value!r} must be at least {low}")
    return value


def _sizes(min_name: str, min_size: object, max_name: str, max_size: object) -> tuple[int, int]:
    low = _size(min_name, min_size)
    high = _size(max_name, max_size)
    if high < low:
        raise InvalidArgument(f"{max_name}={high} must be at least {min_name}={low}")
    return low, high


def _strategy(name: str, value: object, default: SearchStrategy[T]) -> SearchStrategy[T]:
    if value is None:
        return default
    if not isinstance(value, SearchStrategy):
        raise InvalidArgument(
            f"{name}={value!r} must be a hypothesis strategy (or None for the default), "
            f"not {type(value).__name__}"
        )
    return value


def _count(name: str, value: object, low: int, high: int) -> SearchStrategy[int]:
    """An int argument (exactly that) or a strategy of ints (drawn, each checked)."""
    if isinstance(value, SearchStrategy):
        return value.map(lambda n: _in_range(name, n, low, high))
    _in_range(name, value, low, high)
    return st.just(value)  # type: ignore[arg-type]


def _in_range(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{name}={value!r} must be an int, not {type(value).__name__}")
    if not low <= value <= high:
        raise InvalidArgument(f"{name}={value!r} must be from {low:,} to {high:,}")
    return value


def payloads(*, min_size: int = 0, max_size: int = 256) -> SearchStrategy[bytes]:
    """Message payloads: bytes of ``min_size`` to ``max_size``, shrinking toward
    ``b""``."""
    low, high = _sizes("min_size", min_size, "max_size", max_size)
    return st.binary(min_size=low, max_size=high)


def keys(
    *, min_size: int = 0, max_size: int = 32, allow_none: bool = True
) -> SearchStrategy[bytes | None]:
    """Message keys: ``None`` (no key, the simplest) when ``allow_none``, or bytes of
    ``min_size`` to ``max_size`` (``b""`` is a key, and differs from ``None``)."""
    low, high = _sizes("min_size", min_size, "max_size", max_size)
    if not isinstance(allow_none, bool):
        raise InvalidArgument(f"allow_none={allow_none!r} must be a bool")
    present: SearchStrategy[bytes | None] = st.binary(min_size=low, max_size=high)
    return st.none() | present if allow_none else present


def _fits_name(name: str) -> bool:
    return len(name.encode()) <= kaelix.MAX_HEADER_NAME_BYTES


def headers(
    *, max_headers: int = 4, max_name_size: int = 12, max_value_size: int = 32
) -> SearchStrategy[dict[str, bytes]]:
    """Message headers: up to ``max_headers`` entries, names of 1 to ``max_name_size``
    characters (any code point with a UTF-8 form, at most 255 bytes of it), values of up
    to ``max_value_size`` bytes. Shrinks toward ``{}``."""
    _size("max_headers", max_headers)
    _in_range("max_name_size", max_name_size, 1, kaelix.MAX_HEADER_NAME_BYTES)
    _size("max_value_size", max_value_size)
    names = st.text(st.characters(codec="utf-8"), min_size=1, max_size=max_name_size).filter(
        _fits_name
    )
    return st.dictionaries(names, st.binary(max_size=max_value_size), max_size=max_headers)


def messages(
    *,
    payloads: SearchStrategy[bytes] | None = None,
    keys: SearchStrategy[bytes | None] | None = None,
    headers: SearchStrategy[dict[str, bytes]] | None = None,
    partitions: SearchStrategy[int] | None = None,
    producer_ids: SearchStrategy[int] | None = None,
    sequences: SearchStrategy[int] | None = None,
    timestamps: SearchStrategy[int] | None = None,
) -> SearchStrategy[kaelix.Message]:
    """Valid ``kaelix.Message`` values, every field over its whole range by default (the
    edges included: partition 2**32 - 1, sequences and producer ids up to 2**64 - 1, any
    int64 timestamp). Each argument replaces the strategy of one field."""
    return st.builds(
        kaelix.Message,
        _strategy("payloads", payloads, _payloads_default),
        key=_strategy("keys", keys, _keys_default),
        headers=_strategy("headers", headers, _headers_default),
        partition=_strategy("partitions", partitions, st.integers(0, _U32)),
        producer_id=_strategy("producer_ids", producer_ids, st.integers(0, _U64)),
        sequence=_strategy("sequences", sequences, st.integers(0, _U64)),
        timestamp_ns=_strategy("timestamps", timestamps, st.integers(-_I64, _I64 - 1)),
    )


_payloads_default = payloads()
_keys_default = keys()
_headers_default = headers()


def message_batches(
    *,
    messages: SearchStrategy[kaelix.Message] | None = None,
    min_size: int = 0,
    max_size: int = 20,
) -> SearchStrategy[kaelix.MessageBatch]:
    """``kaelix.MessageBatch`` values of ``min_size`` to ``max_size`` messages drawn from
    ``messages`` (default: `messages()`); any messages, not a valid send order (see
    `message_sequences` for that)."""
    low, high = _sizes("min_size", min_size, "max_size", max_size)
    items = _strategy("messages", messages, _messages_default)
    return st.lists(items, min_size=low, max_size=high).map(kaelix.MessageBatch.from_messages)


_messages_default = messages()


@st.composite
def _draw_sequence(
    draw: st.DrawFn,
    producers: SearchStrategy[int],
    partitions: SearchStrategy[int],
    low: int,
    high: int,
    payloads: SearchStrategy[bytes],
    keys: SearchStrategy[bytes | None],
    headers: SearchStrategy[dict[str, bytes]] | None,
    first_sequence: SearchStrategy[int],
) -> kaelix.MessageBatch:
    n_producers = draw(producers)
    n_partitions = draw(partitions)
    producer_ids = draw(
        st.lists(st.integers(0, _U64), min_size=n_producers, max_size=n_producers, unique=True)
    )
    streams = n_producers * n_partitions
    items = draw(
        st.lists(
            st.tuples(
                st.integers(0, streams - 1),
                payloads,
                keys,
                st.just({}) if headers is None else headers,
            ),
            min_size=low,
            max_size=high,
        )
    )
    first = draw(first_sequence)
    if first + len(items) - 1 > _U64:
        first = _U64 - len(items) + 1
    start_ns = draw(st.integers(0, 2**62))
    following = [first] * streams
    out = []
    for at, (stream, payload, key, entries) in enumerate(items):
        out.append(
            kaelix.Message(
                payload,
                key=key,
                headers=entries,
                partition=stream % n_partitions,
                producer_id=producer_ids[stream // n_partitions],
                sequence=following[stream],
                timestamp_ns=start_ns + at,
            )
        )
        following[stream] += 1
    return kaelix.MessageBatch.from_messages(out)


def message_sequences(
    *,
    producers: int | SearchStrategy[int] | None = None,
    partitions: int | SearchStrategy[int] | None = None,
    min_size: int = 0,
    max_size: int = 50,
    payloads: SearchStrategy[bytes] | None = None,
    keys: SearchStrategy[bytes | None] | None = None,
    headers: SearchStrategy[dict[str, bytes]] | None = None,
    first_sequence: int | SearchStrategy[int] = 0,
) -> SearchStrategy[kaelix.MessageBatch]:
    """What producers send, as a ``kaelix.MessageBatch`` in send order: ``min_size`` to
    ``max_size`` messages, each from one of ``producers`` producers (distinct ids) to one of
    ``partitions`` partitions (0 to partitions - 1), sequence numbers consecutive within
    each (producer, partition) from ``first_sequence``, timestamps rising by 1 ns a message.

    ``producers`` and ``partitions``: an int (exactly that many to draw from) or a strategy
    of ints (default: 1 to 3 producers, 1 to 4 partitions). ``first_sequence``: an int or a
    strategy (clamped so that no sequence passes 2**64 - 1). ``payloads``, ``keys`` and
    ``headers`` replace the strategies of those fields (default: short payloads, no key or
    a short one, no headers).

    Valid for ``check_delivery(batch, batch)`` on every ordering and for the zipper's
    shape. Shrinks toward one producer, one partition, fewer and smaller messages.
    """
    low, high = _sizes("min_size", min_size, "max_size", max_size)
    return _draw_sequence(
        _count("producers", producers if producers is not None else st.integers(1, 3), 1, 256),
        _count("partitions", partitions if partitions is not None else st.integers(1, 4), 1, _U32),
        low,
        high,
        _strategy("payloads", payloads, _short_payloads),
        _strategy("keys", keys, _short_keys),
        None if headers is None else _strategy("headers", headers, _headers_default),
        _count("first_sequence", first_sequence, 0, _U64),
    )


_short_payloads = payloads(max_size=32)
_short_keys = keys(max_size=8)


def _check_fault_kinds(kinds: Iterable[str] | None) -> tuple[FaultKind, ...]:
    if kinds is None:
        return FAULT_KINDS
    if isinstance(kinds, str):
        raise InvalidArgument(
            f"kinds={kinds!r} must be a collection of fault kinds, not one string; "
            f"did you mean kinds=[{kinds!r}]?"
        )
    chosen = tuple(dict.fromkeys(kinds))
    unknown = [k for k in chosen if k not in FAULT_KINDS]
    if unknown or not chosen:
        raise InvalidArgument(
            f"kinds={chosen!r} must name at least one of {FAULT_KINDS!r}"
            + (f"; unknown: {unknown!r}" if unknown else "")
        )
    return chosen  # type: ignore[return-value]


def _fault_lists(
    kinds: tuple[FaultKind, ...], max_faults: int, max_index: int, max_distance: int
) -> SearchStrategy[FaultPlan]:
    fault = st.builds(
        Fault,
        st.sampled_from(kinds),
        st.integers(0, max_index),
        st.integers(1, max_distance),
    )
    return st.lists(fault, max_size=max_faults).map(lambda found: FaultPlan(faults=tuple(found)))


def faults(
    *,
    kinds: Iterable[str] | None = None,
    max_faults: int = 4,
    max_index: int = 63,
    max_distance: int = 8,
) -> SearchStrategy[FaultPlan]:
    """`kaelix.testing.FaultPlan` values of up to ``max_faults`` explicit faults of
    ``kinds`` (default: every one of ``FAULT_KINDS``), each on the message at an index up to
    ``max_index`` (faults past the end of a batch do nothing) with a distance of 1 to
    ``max_distance``. Shrinks toward no fault, the first kind listed, the first messages
    and the shortest distances: a failing test ends with the one fault that matters."""
    chosen = _check_fault_kinds(kinds)
    _size("max_faults", max_faults)
    _size("max_index", max_index)
    _in_range("max_distance", max_distance, 1, 1 << 20)
    return _fault_lists(chosen, max_faults, max_index, max_distance)


@dataclass(frozen=True)
class Scenario:
    """A sent sequence, a fault plan, what the faulty channel delivers and the report
    ``check_delivery(sent, observed, ordering=ordering)`` must give."""

    sent: kaelix.MessageBatch
    plan: FaultPlan
    observed: kaelix.MessageBatch
    expected: DeliveryReport
    ordering: str = "partition"


@st.composite
def _draw_scenario(
    draw: st.DrawFn,
    sequences: SearchStrategy[kaelix.MessageBatch],
    kinds: tuple[FaultKind, ...],
    max_faults: int,
    max_distance: int,
    ordering: str,
) -> Scenario:
    sent = draw(sequences)
    if len(sent):
        plan = draw(_fault_lists(kinds, max_faults, len(sent) - 1, max_distance))
    else:
        plan = FaultPlan()
    observed, expected = plan.apply(sent, ordering=ordering)
    return Scenario(sent, plan, observed, expected, ordering)


def scenarios(
    *,
    sequences: SearchStrategy[kaelix.MessageBatch] | None = None,
    kinds: Iterable[str] | None = None,
    max_faults: int = 4,
    max_distance: int = 8,
    ordering: str = "partition",
) -> SearchStrategy[Scenario]:
    """`Scenario` values: a sequence drawn from ``sequences`` (default:
    `message_sequences()`), a fault plan of up to ``max_faults`` faults of ``kinds`` on its
    messages, and what the plan makes of it. Shrinks toward a short sequence and one
    fault."""
    chosen = _check_fault_kinds(kinds)
    _size("max_faults", max_faults)
    _in_range("max_distance", max_distance, 1, 1 << 20)
    if ordering not in ("partition", "producer", "global", "none"):
        raise InvalidArgument(
            f"ordering={ordering!r} must be 'partition', 'producer', 'global' or 'none'"
        )
    return _draw_scenario(
        _strategy("sequences", sequences, _sequences_default),
        chosen,
        max_faults,
        max_distance,
        ordering,
    )


_sequences_default = message_sequences()


def register_type_strategies() -> None:
    """``st.from_type`` for kaelix's types: ``Message``, ``MessageBatch``, ``FaultPlan``
    (run by hypothesis through its entry point when kaelix is installed)."""
    st.register_type_strategy(kaelix.Message, _messages_default)
    st.register_type_strategy(kaelix.MessageBatch, message_batches())
    st.register_type_strategy(FaultPlan, faults())


__all__ = [
    "Scenario",
    "faults",
    "headers",
    "keys",
    "message_batches",
    "message_sequences",
    "messages",
    "payloads",
    "register_type_strategies",
    "scenarios",
]
