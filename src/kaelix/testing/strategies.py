"""Hypothesis strategies for kaelix messages, message sequences, fault plans, and frames
that a parser must refuse.

Valid values: ``payloads()``, ``keys()``, ``headers()``, ``messages()``,
``message_batches()``, ``message_sequences()`` (what producers send: consecutive sequence
numbers per (producer, partition)), ``faults()`` (a `kaelix.testing.FaultPlan`) and
``scenarios()`` (a sequence, a fault plan, what the faulty channel delivers and the report
``check_delivery`` must give). Each shrinks toward few, small, simple values: one producer,
one partition, empty payloads, no key or headers, the first messages, the fewest faults.

Adversarial values: ``malformed_frames()`` draws single frames and ``malformed_batches()``
runs of frames, each broken in one of the ways a hostile or damaged peer breaks them:
truncated, bit-flipped, lying about a length, larger than the reader's limit, or a header
bomb. Every value drawn is
``bytes`` that ``kaelix.decode`` (or ``MessageBatch.from_bytes``, for batches) refuses with a
``kaelix.DecodeError`` under the ``max_frame_size`` given, so downstream projects can check
that their own consumers survive the same inputs kaelix's own tests feed it.

Requires hypothesis (``pip install 'kaelix[test]'``); ``import kaelix`` never imports this
module.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import Any

import kaelix

try:
    from hypothesis import strategies as st
    from hypothesis.errors import InvalidArgument
    from hypothesis.strategies import SearchStrategy
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "kaelix.testing.strategies needs hypothesis: pip install 'kaelix[test]' "
        "(or hypothesis>=6.100)"
    ) from error

from kaelix.testing._valid import (
    Scenario,
    faults,
    headers,
    keys,
    message_batches,
    message_sequences,
    messages,
    payloads,
    scenarios,
)

__all__ = [
    "MALFORMATIONS",
    "Scenario",
    "faults",
    "headers",
    "keys",
    "malformed_batches",
    "malformed_frames",
    "message_batches",
    "message_sequences",
    "messages",
    "payloads",
    "scenarios",
]

MALFORMATIONS: tuple[str, ...] = (
    "truncated",
    "bit_flipped",
    "length_lying",
    "oversized",
    "header_bomb",
)
"""The kinds of damage ``malformed_frames`` and ``malformed_batches`` draw from."""

_HEADER = kaelix.HEADER_SIZE
# (offset, struct format) of the fixed-header fields that carry counts and lengths.
_LENGTH_FIELDS = ((10, "<H"), (12, "<I"), (44, "<I"), (48, "<I"), (52, "<I"))
_LIES = (0, 1, 6, 7, 8, 55, 56, 57, 64, 255, 256, 65535, 2**31, 2**32 - 8, 2**32 - 1)


# --------------------------------------------------------------------------------------------
# Argument checks (hypothesis style: the bad value and the fix)
# --------------------------------------------------------------------------------------------


def _check_kinds(kinds: Iterable[str] | None) -> tuple[str, ...]:
    if kinds is None:
        return MALFORMATIONS
    if isinstance(kinds, str):
        raise InvalidArgument(
            f"kinds={kinds!r} must be a collection of kind names, not one string; "
            f"did you mean kinds=[{kinds!r}]?"
        )
    chosen = tuple(kinds)
    unknown = [k for k in chosen if k not in MALFORMATIONS]
    if unknown:
        raise InvalidArgument(
            f"kinds={chosen!r} holds unknown kinds {unknown!r}; choose from {MALFORMATIONS!r}"
        )
    if not chosen:
        raise InvalidArgument(f"kinds={chosen!r} is empty; name at least one of {MALFORMATIONS!r}")
    return tuple(dict.fromkeys(chosen))


def _check_max_frame_size(max_frame_size: int) -> int:
    if isinstance(max_frame_size, bool) or not isinstance(max_frame_size, int):
        raise InvalidArgument(
            f"max_frame_size={max_frame_size!r} must be an int, not {type(max_frame_size).__name__}"
        )
    if not _HEADER <= max_frame_size <= kaelix.MAX_FRAME_SIZE_LIMIT:
        raise InvalidArgument(
            f"max_frame_size={max_frame_size!r} must be from {_HEADER} (one header) to "
            f"{kaelix.MAX_FRAME_SIZE_LIMIT}, the largest frame the format can describe"
        )
    return max_frame_size


def _check_messages(messages: SearchStrategy[kaelix.Message] | None) -> None:
    if messages is not None and not isinstance(messages, SearchStrategy):
        raise InvalidArgument(
            f"messages={messages!r} must be a hypothesis strategy of kaelix.Message "
            f"(or None for small random messages), not {type(messages).__name__}"
        )


def _check_size(name: str, value: int, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{name}={value!r} must be an int, not {type(value).__name__}")
    if value < low:
        raise InvalidArgument(f"{name}={value!r} must be at least {low}")
    return value


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------

_header_names = st.text(st.characters(codec="utf-8"), min_size=1, max_size=8).filter(
    lambda n: len(n.encode()) <= kaelix.MAX_HEADER_NAME_BYTES
)


def _small_messages() -> SearchStrategy[kaelix.Message]:
    """Valid messages with short sections, for frames that are then broken."""
    return st.builds(
        kaelix.Message,
        st.binary(max_size=64),
        key=st.none() | st.binary(max_size=16),
        headers=st.dictionaries(_header_names, st.binary(max_size=8), max_size=3),
        partition=st.integers(0, 2**32 - 1),
        producer_id=st.integers(0, 2**64 - 1),
        sequence=st.integers(0, 2**64 - 1),
        timestamp_ns=st.integers(-(2**63), 2**63 - 1),
    )


def _reseal(frame: bytearray) -> None:
    """Recomputes the checksum over what the frame's bytes hold, so the damage is what a
    reader finds, not the checksum."""
    if len(frame) >= _HEADER:
        end = min(max(struct.unpack_from("<I", frame, 12)[0], 8), len(frame))
        struct.pack_into("<I", frame, 4, kaelix.crc32c(frame[8:end]))


def _refused(data: bytes, max_frame_size: int, batch: bool) -> bool:
    try:
        if batch:
            kaelix.MessageBatch.from_bytes(data, max_frame_size=max_frame_size)
        else:
            kaelix.decode(data, max_frame_size=max_frame_size)
    except kaelix.DecodeError:
        return True
    return False


def _header_section(entries: Iterable[tuple[bytes, bytes]]) -> bytes:
    return b"".join(struct.pack("<HI", len(n), len(v)) + n + v for n, v in entries)


def _frame_with_headers(section: bytes, count: int, payload: bytes = b"") -> bytes:
    """A frame whose headers section and count are whatever the caller says, sealed."""
    used = _HEADER + len(section) + len(payload)
    length = (used + 7) & ~7
    frame = bytearray(length)
    frame[:4] = b"KLXF"
    struct.pack_into("<BBHI", frame, 8, 1, 0, count & 0xFFFF, length)
    struct.pack_into("<III", frame, 44, 0, len(section), len(payload))
    frame[_HEADER : _HEADER + len(section)] = section
    frame[_HEADER + len(section) : used] = payload
    _reseal(frame)
    return bytes(frame)


# --------------------------------------------------------------------------------------------
# One kind of damage each
# --------------------------------------------------------------------------------------------


def _truncated(draw: st.DrawFn, frame: bytes, max_frame_size: int) -> bytes:
    return frame[: draw(st.integers(0, len(frame) - 1))]


def _bit_flipped(draw: st.DrawFn, frame: bytes, max_frame_size: int) -> bytes:
    out = bytearray(frame)
    for bit in draw(
        st.lists(st.integers(0, len(frame) * 8 - 1), min_size=1, max_size=8, unique=True)
    ):
        out[bit // 8] ^= 1 << (bit % 8)
    if draw(st.booleans()):
        _reseal(out)
    return bytes(out)


def _length_lying(draw: st.DrawFn, frame: bytes, max_frame_size: int) -> bytes:
    out = bytearray(frame)
    offset, fmt = draw(st.sampled_from(_LENGTH_FIELDS))
    limit = 2 ** (8 * struct.calcsize(fmt)) - 1
    old = struct.unpack_from(fmt, out, offset)[0]
    lie = draw(
        st.sampled_from([v for v in _LIES if v <= limit])
        | st.integers(0, limit)
        | st.integers(max(0, old - 16), min(limit, old + 16))
    )
    struct.pack_into(fmt, out, offset, lie)
    _reseal(out)
    return bytes(out)


def _oversized(draw: st.DrawFn, frame: bytes, max_frame_size: int) -> bytes:
    out = bytearray(frame)
    if max_frame_size < kaelix.MAX_FRAME_SIZE_LIMIT and draw(st.booleans()):
        # Claims more than the reader accepts, with only the bytes that are really there.
        claim = draw(st.integers(max_frame_size + 1, kaelix.MAX_FRAME_SIZE_LIMIT))
    else:
        # Claims a frame far longer than the buffer: the reader must not believe it.
        claim = draw(st.integers(len(frame) + 1, kaelix.MAX_FRAME_SIZE_LIMIT))
    struct.pack_into("<I", out, 12, claim & ~7 if draw(st.booleans()) else claim)
    _reseal(out)
    return bytes(out)


def _header_bomb(draw: st.DrawFn, frame: bytes, max_frame_size: int) -> bytes:
    shape = draw(st.sampled_from(("count", "duplicates", "name_length", "overrun")))
    if shape == "count":
        # Claims up to 65,535 headers in a section that holds a few.
        n = draw(st.integers(0, 3))
        section = _header_section((f"h{i}".encode(), b"v") for i in range(n))
        return _frame_with_headers(section, draw(st.integers(n + 1, kaelix.MAX_HEADER_COUNT)))
    if shape == "duplicates":
        # Many well-formed headers, one name repeated: sorting, not n squared, must find it.
        n = draw(st.integers(2, 2000))
        names = [f"h{i}".encode() for i in range(n)]
        repeat = draw(st.integers(1, n - 1))
        names[repeat] = names[draw(st.integers(0, repeat - 1))]
        return _frame_with_headers(_header_section((nm, b"") for nm in names), n)
    if shape == "name_length":
        name_length = draw(st.sampled_from((0, 256, 65535)))
        section = struct.pack("<HI", name_length, 0) + b"x" * min(name_length, 300)
        return _frame_with_headers(section, 1)
    value_length = draw(st.integers(1, 2**32 - 1))
    section = struct.pack("<HI", 1, value_length) + b"h"
    return _frame_with_headers(section, 1)


_DAMAGE = {
    "truncated": _truncated,
    "bit_flipped": _bit_flipped,
    "length_lying": _length_lying,
    "oversized": _oversized,
    "header_bomb": _header_bomb,
}


@st.composite
def _one_malformed(
    draw: st.DrawFn,
    kinds: tuple[str, ...],
    messages: SearchStrategy[kaelix.Message] | None,
    max_frame_size: int,
) -> bytes:
    kind = draw(st.sampled_from(kinds))
    message = draw(messages if messages is not None else _small_messages())
    frame = kaelix.encode(message, max_frame_size=kaelix.MAX_FRAME_SIZE_LIMIT)
    bad = _DAMAGE[kind](draw, frame, max_frame_size)
    if not _refused(bad, max_frame_size, batch=False):
        # The damage happened to make another valid frame (a flipped payload bit with its
        # checksum recomputed, a length lie equal to the truth): cutting the last byte off
        # always breaks it, and keeps the promise that every value is refused.
        bad = bad[:-1]
    return bad


# --------------------------------------------------------------------------------------------
# Public strategies
# --------------------------------------------------------------------------------------------


def malformed_frames(
    *,
    kinds: Iterable[str] | None = None,
    messages: SearchStrategy[kaelix.Message] | None = None,
    max_frame_size: int = kaelix.DEFAULT_MAX_FRAME_SIZE,
) -> SearchStrategy[bytes]:
    """A strategy of single frames that ``kaelix.decode(frame, max_frame_size=...)`` refuses.

    Each value starts as the frame of a valid message and is broken one way:
    ``"truncated"`` (cut short anywhere, down to nothing), ``"bit_flipped"`` (one to eight
    bits flipped, the checksum recomputed half of the time so that the damage is what is
    caught), ``"length_lying"`` (a count or length field of the fixed header set to a
    boundary, a near or an arbitrary value, checksum recomputed), ``"oversized"`` (a frame
    length above ``max_frame_size`` or far beyond the bytes present: a reader that believed
    it would allocate up to 4 GiB) or ``"header_bomb"`` (up to 65,535 headers claimed in a
    tiny section, thousands of headers with one repeated name, a name length of 0 or above
    255, a value length running past the frame).

    ``kinds`` restricts the damage to some of ``MALFORMATIONS`` (default: all).
    ``messages`` is a strategy of ``kaelix.Message`` to break (default: small random
    messages). ``max_frame_size`` is the limit the reader under test enforces; every value is
    refused under it.

    >>> from hypothesis import given
    >>> @given(malformed_frames(kinds=["truncated", "header_bomb"]))
    ... def test_my_consumer_survives(frame):
    ...     my_consumer.handle(frame)  # must raise its documented error, nothing else

    Shrinks towards the first kind listed, the smallest message and the smallest damage
    (a cut near the start, the lowest bits, the smallest lie).

    Raises ``hypothesis.errors.InvalidArgument`` on bad arguments, when called.
    """
    chosen = _check_kinds(kinds)
    given = _frame_arguments(kinds, chosen, messages, max_frame_size)
    return _malformed_frames_named(**given)


def _frame_arguments(
    kinds: object,
    chosen: tuple[str, ...],
    messages: SearchStrategy[kaelix.Message] | None,
    max_frame_size: int,
) -> dict[str, Any]:
    """Checks the arguments both strategies share and returns those given other than their
    defaults (what the strategy's repr echoes)."""
    _check_messages(messages)
    _check_max_frame_size(max_frame_size)
    given: dict[str, Any] = {}
    if kinds is not None:
        given["kinds"] = chosen
    if messages is not None:
        given["messages"] = messages
    if max_frame_size != kaelix.DEFAULT_MAX_FRAME_SIZE:
        given["max_frame_size"] = max_frame_size
    return given


def _draw_malformed_frame(
    draw: st.DrawFn,
    kinds: tuple[str, ...] = MALFORMATIONS,
    messages: SearchStrategy[kaelix.Message] | None = None,
    max_frame_size: int = kaelix.DEFAULT_MAX_FRAME_SIZE,
) -> bytes:
    return draw(_one_malformed(kinds, messages, max_frame_size))


def malformed_batches(
    *,
    kinds: Iterable[str] | None = None,
    messages: SearchStrategy[kaelix.Message] | None = None,
    max_frame_size: int = kaelix.DEFAULT_MAX_FRAME_SIZE,
    min_frames: int = 1,
    max_frames: int = 8,
) -> SearchStrategy[bytes]:
    """A strategy of batches (frames end to end) that ``MessageBatch.from_bytes`` and
    ``kaelix.decode_batch`` refuse: ``min_frames`` to ``max_frames`` frames, valid ones with
    one ``malformed_frames(kinds=..., messages=..., max_frame_size=...)`` value at a drawn
    place among them (first, in the middle or last; a damaged frame before good ones tests
    that the reader does not resynchronise on garbage), and sometimes bytes cut off the end.

    >>> from hypothesis import given
    >>> @given(malformed_batches(max_frames=4))
    ... def test_bulk_reader(buf):
    ...     my_reader.read_all(buf)  # must refuse the batch cleanly

    Shrinks towards fewer frames, the broken one first, and the shrinks of
    ``malformed_frames``.

    Raises ``hypothesis.errors.InvalidArgument`` on bad arguments, when called.
    """
    chosen = _check_kinds(kinds)
    given = _frame_arguments(kinds, chosen, messages, max_frame_size)
    _check_size("min_frames", min_frames, 1)
    _check_size("max_frames", max_frames, 1)
    if max_frames < min_frames:
        raise InvalidArgument(f"Cannot have max_frames={max_frames!r} < min_frames={min_frames!r}")
    if min_frames != 1:
        given["min_frames"] = min_frames
    if max_frames != 8:
        given["max_frames"] = max_frames
    return _malformed_batches_named(**given)


def _draw_malformed_batch(
    draw: st.DrawFn,
    kinds: tuple[str, ...] = MALFORMATIONS,
    messages: SearchStrategy[kaelix.Message] | None = None,
    max_frame_size: int = kaelix.DEFAULT_MAX_FRAME_SIZE,
    min_frames: int = 1,
    max_frames: int = 8,
) -> bytes:
    source = messages if messages is not None else _small_messages()
    count = draw(st.integers(min_frames, max_frames))
    good = [
        kaelix.encode(m, max_frame_size=kaelix.MAX_FRAME_SIZE_LIMIT)
        for m in draw(st.lists(source, min_size=count - 1, max_size=count - 1))
    ]
    good = [f for f in good if len(f) <= max_frame_size]
    where = draw(st.integers(0, len(good)))
    bad = draw(_one_malformed(kinds, messages, max_frame_size))
    data = b"".join([*good[:where], bad, *good[where:]])
    if draw(st.booleans()) and data:
        data = data[: len(data) - draw(st.integers(0, min(7, len(data) - 1)))]
    while not _refused(data, max_frame_size, batch=True):
        # The broken frame and what follows it happened to line up as valid frames (a cut
        # frame followed by bytes that complete it, or nothing at all): keep the promise.
        data = data[:-1] if len(data) > 1 else b"KLX"
    return data


def _composite_named(
    name: str, function: Callable[..., bytes]
) -> Callable[..., SearchStrategy[bytes]]:
    """st.composite under the public name, so that reprs echo the user's call:
    ``malformed_frames(kinds=('truncated',))``."""
    function.__name__ = function.__qualname__ = name
    return st.composite(function)


_malformed_frames_named = _composite_named("malformed_frames", _draw_malformed_frame)
_malformed_batches_named = _composite_named("malformed_batches", _draw_malformed_batch)
