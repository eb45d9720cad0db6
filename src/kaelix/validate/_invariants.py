"""validate_message_invariants: every rule a message or a batch must keep, checked at once,
for tests (it raises an AssertionError subclass with a readable list) and for production
checks alike. Imports numpy and the kaelix API."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from kaelix._batch import MessageBatch
from kaelix._codec import DEFAULT_MAX_FRAME_SIZE, HEADER_SIZE, MAX_FRAME_SIZE_LIMIT, Message, crc32c
from kaelix.errors import DecodeError, KaelixError

_SHOWN = 20


@dataclass(frozen=True)
class Violation:
    """One broken rule: which message (its index, or None for the input as a whole), the
    rule's name (``frame``, ``checksum``, ``frame_size``, ``timestamp``) and what was wrong."""

    index: int | None
    rule: str
    detail: str

    def __str__(self) -> str:
        where = "input" if self.index is None else f"message {self.index}"
        return f"{where}: {self.rule}: {self.detail}"


class InvariantViolation(KaelixError, AssertionError):
    """Messages broke invariants; ``violations`` lists every one of them."""

    def __init__(self, violations: list[Violation]) -> None:
        self.violations = list(violations)
        lines = [str(v) for v in self.violations[:_SHOWN]]
        if len(self.violations) > _SHOWN:
            lines.append(f"... and {len(self.violations) - _SHOWN} more")
        count = len(self.violations)
        super().__init__(f"{count} invariant violation{'s' * (count != 1)}:\n" + "\n".join(lines))

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.violations,))


def validate_message_invariants(
    msg_or_batch: Message | MessageBatch | bytes | bytearray | memoryview,
    *,
    now_ns: int | None = None,
    future_tolerance_ns: int = 60_000_000_000,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
) -> None:
    """Checks every invariant of a message, a batch, or frames as bytes, and raises
    ``InvariantViolation`` listing all that fail (returns None when all hold).

    Rules: ``frame`` (bytes that are not valid frames: the decoder's reason and offset; the
    check stops there), ``checksum`` (a frame whose stored CRC32C differs from its bytes'),
    ``frame_size`` (a frame over ``max_frame_size``), ``timestamp`` (a timestamp more than
    ``future_tolerance_ns`` after ``now_ns``, which defaults to the wall clock). Field and
    header rules are enforced when a ``Message`` or a batch is built, so they hold already.

    In a test, ``validate_message_invariants(batch)`` reads as an assertion: pytest shows
    the list of violations.
    """
    if not isinstance(max_frame_size, int) or not HEADER_SIZE <= max_frame_size <= (
        MAX_FRAME_SIZE_LIMIT
    ):
        raise ValueError(
            f"max_frame_size must be from {HEADER_SIZE} to {MAX_FRAME_SIZE_LIMIT}, "
            f"got {max_frame_size!r}"
        )
    now = time.time_ns() if now_ns is None else now_ns
    horizon = now + future_tolerance_ns
    violations: list[Violation] = []
    if isinstance(msg_or_batch, Message):
        if msg_or_batch.frame_size > max_frame_size:
            violations.append(
                Violation(0, "frame_size", f"{msg_or_batch.frame_size} bytes > {max_frame_size}")
            )
        if msg_or_batch.timestamp_ns > horizon:
            violations.append(_future(0, msg_or_batch.timestamp_ns, now))
    else:
        if isinstance(msg_or_batch, MessageBatch):
            batch = msg_or_batch
        elif isinstance(msg_or_batch, (bytes, bytearray, memoryview)):
            data = bytes(msg_or_batch)
            try:
                batch = MessageBatch.from_bytes(data, max_frame_size=MAX_FRAME_SIZE_LIMIT)
            except DecodeError as exc:
                # The frames before the bad one are checked too; the check stops at it.
                batch = MessageBatch.from_bytes(
                    data[: exc.frame_offset], max_frame_size=MAX_FRAME_SIZE_LIMIT
                )
                violations.append(
                    Violation(None, "frame", f"{exc.reason} at byte {exc.offset}: {exc}")
                )
        else:
            raise TypeError(
                "validate_message_invariants takes a Message, a MessageBatch or bytes, "
                f"got {type(msg_or_batch).__name__}"
            )
        buffer = batch.buffer
        offsets = batch.offsets
        sizes = np.diff(offsets)
        for i in np.flatnonzero(sizes > max_frame_size).tolist():
            violations.append(Violation(i, "frame_size", f"{sizes[i]} bytes > {max_frame_size}"))
        for i, (begin, end) in enumerate(
            zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True)
        ):
            actual = crc32c(buffer[begin + 8 : end])
            if actual != int(batch.checksum[i]):
                violations.append(
                    Violation(
                        i,
                        "checksum",
                        f"stored {int(batch.checksum[i]):#010x}, bytes {actual:#010x}",
                    )
                )
        for i in np.flatnonzero(batch.timestamp_ns > horizon).tolist():
            violations.append(_future(i, int(batch.timestamp_ns[i]), now))
    # by message; a broken frame (index None) last: the check stopped there
    violations.sort(key=lambda v: float("inf") if v.index is None else v.index)
    if violations:
        raise InvariantViolation(violations)


def _future(index: int, timestamp_ns: int, now_ns: int) -> Violation:
    return Violation(
        index,
        "timestamp",
        f"timestamp_ns {timestamp_ns} is {(timestamp_ns - now_ns) / 1e9:.3f} s in the future",
    )
