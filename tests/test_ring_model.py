"""Stateful property tests: kaelix.Ring and SharedRing against a plain-Python model.

The model is a deque of the frames waiting plus their byte count; it alone decides what the
ring must answer: a frame fits iff ``len(frame) <= capacity - waiting bytes``, pops come out
in push order, batches take the longest prefix that fits (push) or that stays within the
limits (pop, the first frame always whole). A 4096-byte ring and frames of up to its whole
capacity make the positions wrap around the end of the data area every few steps, so frames
straddle the end all the time.

The same machine runs against a SharedRing with one handle that pushes and pops (the spec
gives it the same semantics); ``close`` is checked on the in-process ring only, since
closing a shared handle detaches it instead of ending the ring.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from uuid import uuid4

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

import kaelix

CAPACITY = 4096
HEADER = kaelix.HEADER_SIZE  # a frame with an empty payload and no key is this long
LARGEST_PAYLOAD = CAPACITY - HEADER  # its frame is exactly the capacity

# Sizes chosen so that a ring holds dozens of small frames, a few medium ones, or one or
# two large ones, and sometimes a frame exactly as large as the whole data area.
payload_sizes = st.one_of(
    st.integers(0, 120),
    st.integers(121, 1500),
    st.integers(1501, LARGEST_PAYLOAD),
    st.just(LARGEST_PAYLOAD),
)
frame_specs = st.tuples(payload_sizes, st.booleans())
batch_limits = st.one_of(st.none(), st.integers(1, 12))
byte_limits = st.one_of(st.none(), st.integers(1, CAPACITY + 8))

machine_settings = settings(max_examples=75, stateful_step_count=40, deadline=None)


def expected_pop_batch(
    waiting: deque[bytes], max_messages: int | None, max_bytes: int | None
) -> list[bytes]:
    """The frames pop_batch must return: at most max_messages, and no more than max_bytes
    in all except that the first frame is always taken whole."""
    taken: list[bytes] = []
    total = 0
    for frame in waiting:
        if max_messages is not None and len(taken) >= max_messages:
            break
        if taken and max_bytes is not None and total + len(frame) > max_bytes:
            break
        taken.append(frame)
        total += len(frame)
    return taken


class RingModel(RuleBasedStateMachine):
    """Kaelix.Ring(4096) against a deque of frames."""

    IN_PROCESS = True

    def __init__(self) -> None:
        super().__init__()
        self.ring = self.make_ring()
        self.waiting: deque[bytes] = deque()
        self.used = 0
        self.sequence = 0
        self.closed = False

    def make_ring(self) -> kaelix.Ring:
        return kaelix.Ring(CAPACITY)

    def teardown(self) -> None:
        self.ring.close()

    # ---- helpers -------------------------------------------------------------------------

    def frame(self, spec: tuple[int, bool]) -> bytes:
        size, with_key = spec
        self.sequence += 1
        key = b"key-%d" % self.sequence if with_key else None
        if key is not None:
            size = min(size, LARGEST_PAYLOAD - 16)
        frame = kaelix.encode(
            kaelix.Message(
                bytes([self.sequence % 256]) * size,
                key=key,
                sequence=self.sequence,
                producer_id=7,
            )
        )
        assert len(frame) <= CAPACITY
        return frame

    def fits(self, frame: bytes) -> bool:
        return len(frame) <= CAPACITY - self.used

    def model_push(self, frame: bytes) -> None:
        self.waiting.append(frame)
        self.used += len(frame)

    def model_pop(self) -> bytes:
        frame = self.waiting.popleft()
        self.used -= len(frame)
        return frame

    def check_batch(self, batch: kaelix.MessageBatch, expected: list[bytes]) -> None:
        assert isinstance(batch, kaelix.MessageBatch)
        assert len(batch) == len(expected)
        assert [bytes(batch.frame(i)) for i in range(len(batch))] == expected
        assert batch.to_bytes() == b"".join(expected)
        for _ in expected:
            self.model_pop()

    # ---- pushing -------------------------------------------------------------------------

    @initialize()
    def starts_empty(self) -> None:
        assert self.ring.capacity == CAPACITY
        assert self.ring.free_bytes == CAPACITY
        assert len(self.ring) == 0
        assert self.ring.pop() is None
        assert self.ring.peek() is None

    @rule(spec=frame_specs)
    def push(self, spec: tuple[int, bool]) -> None:
        frame = self.frame(spec)
        if self.closed:
            with pytest.raises(kaelix.RingClosed):
                self.ring.push(frame)
            return
        fits = self.fits(frame)
        assert self.ring.push(frame) is fits
        if fits:
            self.model_push(frame)

    @rule(spec=frame_specs)
    def put_without_waiting(self, spec: tuple[int, bool]) -> None:
        frame = self.frame(spec)
        if self.closed:
            with pytest.raises(kaelix.RingClosed):
                self.ring.put(frame, timeout=0)
        elif self.fits(frame):
            assert self.ring.put(frame, timeout=0) is None
            self.model_push(frame)
        else:
            with pytest.raises(kaelix.RingFull):
                self.ring.put(frame, timeout=0)

    @rule(specs=st.lists(frame_specs, max_size=8), as_batch=st.booleans())
    def push_batch(self, specs: list[tuple[int, bool]], as_batch: bool) -> None:
        frames = [self.frame(spec) for spec in specs]
        argument: kaelix.MessageBatch | list[bytes] = frames
        if as_batch:
            argument = kaelix.MessageBatch.from_messages([kaelix.decode(f) for f in frames])
            assert argument.to_bytes() == b"".join(frames)
        if self.closed:
            if frames:
                with pytest.raises(kaelix.RingClosed):
                    self.ring.push_batch(argument)
            return
        expected = 0
        for frame in frames:
            if not self.fits(frame):
                break
            self.model_push(frame)
            expected += 1
        assert self.ring.push_batch(argument) == expected

    @precondition(lambda self: not self.closed)
    @rule(spec=frame_specs)
    def fill(self, spec: tuple[int, bool]) -> None:
        """Pushes copies of one frame until the ring says no, exactly when the model does."""
        frame = self.frame(spec)
        while self.fits(frame):
            assert self.ring.push(frame) is True
            self.model_push(frame)
        assert self.ring.push(frame) is False
        assert self.ring.free_bytes < len(frame)

    # ---- popping -------------------------------------------------------------------------

    @rule()
    def pop(self) -> None:
        expected = self.model_pop() if self.waiting else None
        assert self.ring.pop() == expected

    @rule()
    def peek(self) -> None:
        expected = self.waiting[0] if self.waiting else None
        assert self.ring.peek() == expected
        assert self.ring.peek() == expected

    @rule()
    def get_without_waiting(self) -> None:
        if self.waiting:
            assert self.ring.get(timeout=0) == self.model_pop()
        elif self.closed:
            with pytest.raises(kaelix.RingClosed):
                self.ring.get(timeout=0)
        else:
            with pytest.raises(kaelix.RingEmpty):
                self.ring.get(timeout=0)

    @rule(max_messages=batch_limits, max_bytes=byte_limits)
    def pop_batch(self, max_messages: int | None, max_bytes: int | None) -> None:
        expected = expected_pop_batch(self.waiting, max_messages, max_bytes)
        batch = self.ring.pop_batch(max_messages=max_messages, max_bytes=max_bytes)
        self.check_batch(batch, expected)

    @rule(max_messages=batch_limits, max_bytes=byte_limits)
    def get_batch_without_waiting(self, max_messages: int | None, max_bytes: int | None) -> None:
        if not self.waiting:
            error = kaelix.RingClosed if self.closed else kaelix.RingEmpty
            with pytest.raises(error):
                self.ring.get_batch(max_messages=max_messages, max_bytes=max_bytes, timeout=0)
            return
        expected = expected_pop_batch(self.waiting, max_messages, max_bytes)
        batch = self.ring.get_batch(max_messages=max_messages, max_bytes=max_bytes, timeout=0)
        self.check_batch(batch, expected)

    @rule()
    def drain(self) -> None:
        while self.waiting:
            assert self.ring.pop() == self.model_pop()
        assert self.ring.pop() is None
        assert len(self.ring.pop_batch()) == 0

    # ---- ending ----------------------------------------------------------------------------

    @precondition(lambda self: not self.closed)
    @rule()
    def clear(self) -> None:
        self.ring.clear()
        self.waiting.clear()
        self.used = 0

    @precondition(lambda self: self.IN_PROCESS and not self.closed)
    @rule()
    def close(self) -> None:
        self.ring.close()
        self.closed = True

    # ---- invariants ------------------------------------------------------------------------

    @invariant()
    def sizes_agree(self) -> None:
        assert len(self.ring) == len(self.waiting)
        assert bool(self.ring) is bool(self.waiting)
        assert self.ring.free_bytes == CAPACITY - self.used
        assert self.ring.capacity == CAPACITY

    @invariant()
    def closed_agrees(self) -> None:
        if self.IN_PROCESS:
            assert self.ring.closed is self.closed


class SharedRingModel(RingModel):
    """The same machine against a SharedRing: one handle pushes and pops."""

    IN_PROCESS = False

    def make_ring(self) -> kaelix.SharedRing:  # type: ignore[override]
        self.name = f"kx-test-{os.getpid()}-{uuid4().hex[:8]}"
        return kaelix.SharedRing.create(self.name, CAPACITY, max_consumers=1)

    def teardown(self) -> None:
        try:
            self.ring.unlink()
            self.ring.close()
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink("/dev/shm/" + self.name)


TestRingModel = RingModel.TestCase
TestRingModel.settings = machine_settings
TestSharedRingModel = SharedRingModel.TestCase
TestSharedRingModel.settings = machine_settings
