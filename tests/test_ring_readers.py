"""Stateful property tests of what streams add to the compiled ring, against plain Python.

- An in-process ring with readers (``RingCore(capacity, readers=N)``), each reader its own
  cursor, in the blocking mode (producers gated by the slowest reader, or by the floor when
  there is none) and in the overwrite mode (producers never wait; the oldest frames go, and
  a reader that fell behind jumps to the oldest frame kept and counts what it lost).
- ``ProducerCore.send``, which encodes a message straight into the ring: every frame it
  writes must be byte for byte what ``kaelix.encode`` makes of the same message.

The model is the list of every frame published with the floor (index of the oldest frame
kept) and each reader's cursor as an index into it; it alone decides what the ring answers.
"""

from __future__ import annotations

import os
import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

import kaelix
from kaelix._ring import ProducerCore, RingCore, RingReader
from kaelix._stream import _Reader

CAPACITY = 4096
HEADER = kaelix.HEADER_SIZE
payload_sizes = st.one_of(st.integers(0, 100), st.integers(101, 1200), st.just(CAPACITY - HEADER))
machine_settings = settings(max_examples=60, stateful_step_count=50, deadline=None)


def _frame(size: int, tag: int) -> bytes:
    return kaelix.encode(kaelix.Message(bytes([tag % 251]) * size, sequence=tag))


class ReadersModel(RuleBasedStateMachine):
    OVERWRITE = False

    readers = Bundle("readers")

    def __init__(self) -> None:
        super().__init__()
        self.ring = RingCore(CAPACITY, readers=3, overwrite=self.OVERWRITE)
        self.log: list[bytes] = []
        self.floor = 0  # index into log of the oldest frame kept
        self.cursors: dict[int, int] = {}
        self.skipped: dict[int, int] = {}
        # per reader: frames and bytes it received, frames it passed over unread
        self.received: dict[int, list[int]] = {}
        self.handles: dict[int, RingReader] = {}
        self.tags = 0

    def _gate(self) -> int:
        if self.OVERWRITE or not self.cursors:
            return self.floor
        return min(self.cursors.values())

    def _bytes_from(self, index: int) -> int:
        return sum(len(f) for f in self.log[index:])

    @rule(size=payload_sizes)
    def push(self, size: int) -> None:
        self.tags += 1
        frame = _frame(size, self.tags)
        if self.OVERWRITE:
            assert self.ring.push(frame)
            while self._bytes_from(self.floor) + len(frame) > CAPACITY:
                self.floor += 1
            self.log.append(frame)
            return
        fits = self._bytes_from(self._gate()) + len(frame) <= CAPACITY
        assert self.ring.push(frame) == fits
        if fits:
            self.log.append(frame)

    @rule(target=readers, start=st.sampled_from(["earliest", "latest"]))
    def join(self, start: str) -> int:
        if len(self.handles) == 3:
            try:
                self.ring._new_reader(_Reader, start)
            except kaelix.RingError as exc:
                assert exc.reason == "too_many_consumers"
            else:
                raise AssertionError("a fourth reader of a 3-reader ring was accepted")
            return -1
        self.tags += 1
        handle = self.ring._new_reader(_Reader, start)
        self.cursors[self.tags] = len(self.log) if start == "latest" else self._gate()
        self.skipped[self.tags] = 0
        self.received[self.tags] = [0, 0, 0]
        self.handles[self.tags] = handle
        return self.tags

    def _catch_up(self, reader: int) -> None:
        if self.OVERWRITE and self.cursors[reader] < self.floor:
            self.skipped[reader] += self.floor - self.cursors[reader]
            self.received[reader][2] += self.floor - self.cursors[reader]
            self.cursors[reader] = self.floor

    def _receive(self, reader: int, frames: list[bytes]) -> None:
        self.cursors[reader] += len(frames)
        self.received[reader][0] += len(frames)
        self.received[reader][1] += sum(len(f) for f in frames)

    @rule(reader=readers)
    def pop(self, reader: int) -> None:
        if reader not in self.handles:
            return
        self._catch_up(reader)
        got = self.handles[reader].pop()
        cursor = self.cursors[reader]
        if cursor == len(self.log):
            assert got is None
        else:
            assert got == self.log[cursor]
            self._receive(reader, [got])

    @rule(reader=readers, limit=st.one_of(st.none(), st.integers(1, 6)))
    def pop_batch(self, reader: int, limit: int | None) -> None:
        if reader not in self.handles:
            return
        self._catch_up(reader)
        batch = self.handles[reader].pop_batch(limit)
        cursor = self.cursors[reader]
        want = self.log[cursor:] if limit is None else self.log[cursor : cursor + limit]
        assert batch.to_bytes() == b"".join(want)
        self._receive(reader, want)

    @rule(reader=readers)
    def clear(self, reader: int) -> None:
        if reader not in self.handles:
            return
        self.handles[reader].clear()  # passes over everything, overwritten frames too
        self.received[reader][2] += len(self.log) - self.cursors[reader]
        self.cursors[reader] = len(self.log)

    @rule(reader=consumes(readers))
    def leave(self, reader: int) -> None:
        if reader not in self.handles:
            return
        self.handles.pop(reader).close()
        cursor = self.cursors.pop(reader)
        del self.skipped[reader]
        del self.received[reader]
        if not self.OVERWRITE and not self.cursors and cursor > self.floor:
            self.floor = cursor  # the last reader's position is where the next one starts

    @invariant()
    def counts_agree(self) -> None:
        for reader, handle in self.handles.items():
            assert handle.skipped == self.skipped[reader]
            behind = len(self.log) - max(self.cursors[reader], self.floor)
            assert len(handle) == behind
        published, overwritten, closed, nbytes = self.ring._counters()
        assert published == len(self.log)
        assert overwritten == (self.floor if self.OVERWRITE else 0)
        assert not closed
        assert nbytes == sum(len(f) for f in self.log)

    @invariant()
    def every_reader_is_seen_with_what_it_received(self) -> None:
        seen = self.ring._readers()
        assert sorted(slot for slot, *_ in seen) == sorted({slot for slot, *_ in seen})
        assert {pid for _, pid, *_ in seen} <= {os.getpid()}
        want = sorted(
            (*self.received[r], len(self.log) - max(self.cursors[r], self.floor))
            for r in self.handles
        )
        assert sorted(tuple(row[2:]) for row in seen) == want


class OverwriteReadersModel(ReadersModel):
    OVERWRITE = True


TestReaders = ReadersModel.TestCase
TestReaders.settings = machine_settings
TestOverwriteReaders = OverwriteReadersModel.TestCase
TestOverwriteReaders.settings = machine_settings


@settings(max_examples=150, deadline=None)
@given(
    payload=st.binary(max_size=300),
    key=st.one_of(st.none(), st.binary(max_size=40)),
    producer_id=st.integers(0, 2**64 - 1),
    partitions=st.integers(1, 4),
    sends=st.lists(st.integers(0, 3), min_size=1, max_size=12),
)
def test_producer_core_writes_what_encode_writes(
    payload: bytes, key: bytes | None, producer_id: int, partitions: int, sends: list[int]
) -> None:
    rings = [RingCore(1 << 14) for _ in range(partitions)]
    core = ProducerCore(producer_id, partitions, 1 << 14)
    expected_seq = [0] * partitions
    for raw in sends:
        p = raw % partitions
        seq = core.send(rings[p], payload, key, p)
        assert seq == expected_seq[p]
        expected_seq[p] += 1
        frame = rings[p].pop()
        (timestamp,) = struct.unpack_from("<q", frame, 32)
        want = kaelix.Message(
            payload,
            key=key,
            partition=p,
            producer_id=producer_id,
            sequence=seq,
            timestamp_ns=timestamp,
        )
        assert frame == kaelix.encode(want)
        assert core.sequence(p) == expected_seq[p]


def test_producer_core_stands_aside() -> None:
    ring = RingCore(4096)
    core = ProducerCore(1, 1, 4096)
    assert core.send(ring, bytearray(b"x"), None, 0) == -1  # not bytes: the Python path
    assert core.send(ring, b"x", "key", 0) == -1  # a str key is encoded by the caller
    assert core.send(ring, b"x" * 5000, None, 0) == -1  # larger than the ring
    core.busy = True
    assert core.send(ring, b"x", None, 0) == -1
    core.busy = False
    while core.send(ring, b"x" * 100, None, 0) >= 0:
        pass
    assert len(ring) == core.sequence(0)  # a full ring takes no number
    ring.close()
    try:
        core.send(ring, b"x", None, 0)
    except kaelix.RingClosed:
        pass
    else:
        raise AssertionError("send into a closed ring did not raise")


def test_wait_any_wakes_on_any_ring_and_on_close() -> None:
    import threading

    from kaelix._ring import Doorbell, _wait_any

    bell = Doorbell()
    rings = [RingCore(4096, readers=1) for _ in range(3)]
    for ring in rings:
        ring._set_bell(bell)
    readers = [ring._new_reader(_Reader) for ring in rings]
    assert _wait_any(readers, bell, 0) is False
    timer = threading.Timer(0.05, lambda: rings[2].push(_frame(1, 1)))
    timer.start()
    assert _wait_any(readers, bell, 30) is True
    timer.join()
    assert readers[2].pop() is not None
    timer = threading.Timer(0.05, rings[1]._shutdown)
    timer.start()
    assert _wait_any(readers, bell, 30) is True  # a closed ring ends the wait
    timer.join()
