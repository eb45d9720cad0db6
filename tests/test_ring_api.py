"""The ring contract, one behaviour per test: Ring and SharedRing in one process.

Capacities, errors (with their classes and texts), timeouts, close, threads, batches, and
for SharedRing its life cycle (create, attach, close, unlink, pickling) and the checks made
when attaching to a segment that is not a valid ring. Waits are bounded everywhere: a ring
that never wakes up fails a test instead of hanging the run. No test asserts a speed; the
bounds on wake-ups are generous liveness checks.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import random
import re
import stat
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kaelix
from kaelix import Message, MessageBatch, Ring, SharedRing
from proc_helpers import Background
from strategies_local import Fields, message_fields, to_message

SHM = "/dev/shm/"
CAPACITY = 4096
WAKE_BOUND_S = 1.0  # a liveness bound, far above any healthy wake-up


def unique_name() -> str:
    return f"kx-test-{os.getpid()}-{uuid4().hex[:8]}"


def make_frame(payload_size: int = 24, sequence: int = 0, producer: int = 0) -> bytes:
    return kaelix.encode(
        Message(
            bytes([sequence % 256]) * payload_size,
            sequence=sequence,
            producer_id=producer,
        )
    )


def frame_of_length(length: int, sequence: int = 0) -> bytes:
    frame = make_frame(length - kaelix.HEADER_SIZE, sequence)
    assert len(frame) == length
    return frame


class SharedRings:
    """Unique-name shared rings for one test; every handle is closed and the name removed
    when the test ends, whatever happened."""

    def __init__(self) -> None:
        self.name = unique_name()
        self.handles: list[SharedRing] = []

    @property
    def path(self) -> str:
        return SHM + self.name

    def track(self, handle: SharedRing) -> SharedRing:
        self.handles.append(handle)
        return handle

    def create(self, capacity: int = CAPACITY, **options: Any) -> SharedRing:
        return self.track(SharedRing.create(self.name, capacity, **options))

    def attach(self, **options: Any) -> SharedRing:
        return self.track(SharedRing.attach(self.name, **options))

    def finish(self) -> None:
        try:
            for handle in reversed(self.handles):
                with contextlib.suppress(kaelix.RingClosed):
                    handle.close()
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)


@pytest.fixture
def shared() -> Iterator[SharedRings]:
    rings = SharedRings()
    try:
        yield rings
    finally:
        rings.finish()


@pytest.fixture(params=["Ring", "SharedRing"])
def ring(request: pytest.FixtureRequest, shared: SharedRings) -> Iterator[Any]:
    """A 4096-byte ring of either kind; the shared one is used through one handle."""
    if request.param == "Ring":
        in_process = Ring(CAPACITY)
        yield in_process
        in_process.close()
    else:
        yield shared.create(CAPACITY, max_consumers=1)


def outcome_in_forked_child(call: Callable[[], Any]) -> str:
    """Runs ``call`` in a forked child and says how it ended: the name of the exception it
    raised, "returned", or "killed by signal N". For calls that may touch unmapped memory:
    a crash then fails one test instead of ending the whole run."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then leave without running any pytest teardown
        try:
            os.close(read)
            try:
                call()
                text = "returned"
            except BaseException as error:
                text = type(error).__name__
            os.write(write, text.encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        text = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return text


def fill(target: Any, frame: bytes) -> int:
    pushed = 0
    while target.push(frame):
        pushed += 1
    return pushed


# --------------------------------------------------------------------------------------------
# Exports and the error tree
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "bases"),
    [
        ("RingError", (kaelix.KaelixError, ValueError)),
        ("RingFull", (kaelix.KaelixError, queue.Full)),
        ("RingEmpty", (kaelix.KaelixError, queue.Empty)),
        ("RingClosed", (kaelix.KaelixError, ValueError)),
        ("PeerGone", (kaelix.KaelixError, BrokenPipeError)),
    ],
)
def test_error_tree(error: str, bases: tuple[type[Exception], ...]) -> None:
    assert error in kaelix.__all__
    for base in bases:
        assert issubclass(getattr(kaelix, error), base), base


def test_ring_classes_are_exported() -> None:
    assert {"Ring", "SharedRing"} <= set(kaelix.__all__)


# --------------------------------------------------------------------------------------------
# Capacity
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "capacity"),
    [
        (1, 4096),
        (4095, 4096),
        (4096, 4096),
        (4097, 8192),
        (5000, 8192),
        (8192, 8192),
        (65537, 131072),
        (1 << 20, 1 << 20),
    ],
)
def test_capacity_rounds_up_to_a_power_of_two_of_at_least_4096(
    requested: int, capacity: int
) -> None:
    ring = Ring(requested)
    assert ring.capacity == capacity
    assert ring.free_bytes == capacity
    assert len(ring) == 0
    assert not ring


@pytest.mark.parametrize(("requested", "capacity"), [(100, 4096), (4097, 8192), (40000, 65536)])
def test_shared_capacity_rounds_up_too(shared: SharedRings, requested: int, capacity: int) -> None:
    ring = shared.create(requested)
    assert ring.capacity == capacity
    assert ring.free_bytes == capacity
    assert os.stat(shared.path).st_size >= capacity
    assert shared.attach().capacity == capacity


def test_frame_of_exactly_the_capacity_fits_an_empty_ring(ring: Any) -> None:
    frame = frame_of_length(CAPACITY)
    assert ring.push(frame) is True
    assert ring.free_bytes == 0
    assert ring.push(make_frame(0)) is False
    assert ring.pop() == frame
    assert ring.free_bytes == CAPACITY


def test_frame_larger_than_capacity_is_a_value_error_naming_both_sizes(ring: Any) -> None:
    too_large = frame_of_length(CAPACITY + 8)
    sizes = r"(4104\D.*\D4096|4096\D.*\D4104)"
    with pytest.raises(ValueError, match=sizes):
        ring.push(too_large)
    # put must refuse it at once too, not wait for room that can never come
    waiter = Background(ring.put, too_large)
    assert waiter.finished_within(WAKE_BOUND_S), "put of an oversized frame waits"
    assert isinstance(waiter.error, ValueError), waiter.error
    assert re.search(sizes, str(waiter.error)), str(waiter.error)
    assert len(ring) == 0
    assert ring.free_bytes == CAPACITY


# --------------------------------------------------------------------------------------------
# What push accepts
# --------------------------------------------------------------------------------------------

GOOD = make_frame(40, sequence=1)


def _corrupt(frame: bytes, index: int) -> bytes:
    changed = bytearray(frame)
    changed[index] ^= 0x01
    return bytes(changed)


NOT_ONE_FRAME = {
    "empty": b"",
    "bad_magic": b"NOPE" + GOOD[4:],
    "cut_short": GOOD[:40],
    "cut_in_payload": GOOD[:-8],
    "payload_bit_flip": _corrupt(GOOD, len(GOOD) - 9),
    "crc_bit_flip": _corrupt(GOOD, 4),
    "two_frames": GOOD + make_frame(8, sequence=2),
    "trailing_zeros": GOOD + bytes(8),
    "zeros": bytes(64),
}


@pytest.mark.parametrize("data", NOT_ONE_FRAME.values(), ids=NOT_ONE_FRAME.keys())
@pytest.mark.parametrize("method", ["push", "put"])
def test_push_of_bytes_that_are_not_one_frame_is_a_decode_error(
    ring: Any, method: str, data: bytes
) -> None:
    with pytest.raises(kaelix.DecodeError):
        kaelix.decode(data)  # the premise: these bytes are not one valid frame
    first = make_frame(16, sequence=9)
    assert ring.push(first)
    with pytest.raises(kaelix.DecodeError):
        getattr(ring, method)(data)
    assert len(ring) == 1
    assert ring.free_bytes == CAPACITY - len(first)
    assert ring.pop() == first
    assert ring.pop() is None


@pytest.mark.parametrize(
    "data", ["bad_magic", "cut_short", "payload_bit_flip", "two_frames"], ids=str
)
def test_decode_error_on_push_gives_the_reason_decode_gives(ring: Any, data: str) -> None:
    with pytest.raises(kaelix.DecodeError) as expected:
        kaelix.decode(NOT_ONE_FRAME[data])
    with pytest.raises(kaelix.DecodeError) as caught:
        ring.push(NOT_ONE_FRAME[data])
    assert caught.value.reason == expected.value.reason


@pytest.mark.parametrize("not_bytes", [GOOD.decode("latin-1"), 12, None, list(GOOD)])
@pytest.mark.parametrize("method", ["push", "put"])
def test_push_of_a_non_buffer_is_a_type_error(ring: Any, method: str, not_bytes: Any) -> None:
    with pytest.raises(TypeError):
        getattr(ring, method)(not_bytes)
    assert len(ring) == 0
    assert ring.free_bytes == CAPACITY


def test_frames_straddle_the_end_of_the_data_area(ring: Any) -> None:
    # 1000-byte frames: positions step by 1000, so over 600 rounds the frame starts at
    # every multiple of 8 modulo 4096, straddling the end in many different places.
    for sequence in range(600):
        frame = make_frame(1000 - kaelix.HEADER_SIZE, sequence)
        copies = 1 + sequence % 3
        for _ in range(copies):
            assert ring.push(frame)
        assert ring.free_bytes == CAPACITY - 1000 * copies
        assert [ring.pop() for _ in range(copies)] == [frame] * copies
        assert len(ring) == 0
        assert ring.free_bytes == CAPACITY


# --------------------------------------------------------------------------------------------
# Waiting: put / get with timeouts
# --------------------------------------------------------------------------------------------


def test_get_without_waiting_on_an_empty_ring_raises_ring_empty(ring: Any) -> None:
    with pytest.raises(kaelix.RingEmpty):
        ring.get(timeout=0)
    with pytest.raises(queue.Empty):
        ring.get(timeout=0)
    with pytest.raises(kaelix.KaelixError):
        ring.get(timeout=0)
    with pytest.raises(kaelix.RingEmpty):
        ring.get_batch(timeout=0)


def test_put_without_waiting_on_a_full_ring_raises_ring_full(ring: Any) -> None:
    frame = frame_of_length(1024)
    assert fill(ring, frame) == 4
    with pytest.raises(kaelix.RingFull):
        ring.put(frame, timeout=0)
    with pytest.raises(queue.Full):
        ring.put(frame, timeout=0)
    with pytest.raises(kaelix.KaelixError):
        ring.put(frame, timeout=0)
    assert len(ring) == 4
    # a frame that still fits goes in without waiting
    assert ring.get(timeout=0) == frame
    assert ring.put(frame, timeout=0) is None
    assert len(ring) == 4


def test_short_timeouts_wait_and_then_raise(ring: Any) -> None:
    started = time.monotonic()
    with pytest.raises(kaelix.RingEmpty):
        ring.get(timeout=0.05)
    with pytest.raises(kaelix.RingEmpty):
        ring.get_batch(timeout=0.05)
    assert time.monotonic() - started >= 0.08  # it did wait, roughly as long as asked
    frame = frame_of_length(2048)
    assert fill(ring, frame) == 2
    with pytest.raises(kaelix.RingFull):
        ring.put(frame, timeout=0.05)


def test_put_and_get_move_frames_in_order(ring: Any) -> None:
    frames = [make_frame(size, sequence) for sequence, size in enumerate([0, 5, 100, 700, 31])]
    for frame in frames:
        ring.put(frame)
    assert len(ring) == len(frames)
    assert ring
    assert [ring.get() for _ in frames] == frames
    assert not ring


# --------------------------------------------------------------------------------------------
# Batches
# --------------------------------------------------------------------------------------------


def _messages(count: int, start: int = 0) -> list[Message]:
    return [
        Message(
            b"m" * ((i * 37) % 300),
            key=b"k%d" % i if i % 2 else None,
            headers={"i": b"%d" % i} if i % 3 == 0 else None,
            partition=i % 3,
            producer_id=5,
            sequence=i,
            timestamp_ns=10 * i,
        )
        for i in range(start, start + count)
    ]


def test_pop_batch_returns_a_message_batch_of_the_frames_pushed(ring: Any) -> None:
    messages = _messages(10)
    frames = [kaelix.encode(m) for m in messages]
    assert ring.push_batch(frames) == 10
    batch = ring.pop_batch()
    assert isinstance(batch, MessageBatch)
    assert list(batch) == messages
    assert [bytes(batch.frame(i)) for i in range(len(batch))] == frames
    assert batch.to_bytes() == b"".join(frames)
    assert list(batch.sequence) == list(range(10))
    assert len(ring) == 0


def test_pop_batch_on_an_empty_ring_is_an_empty_batch(ring: Any) -> None:
    batch = ring.pop_batch()
    assert isinstance(batch, MessageBatch)
    assert len(batch) == 0
    assert batch == MessageBatch()


def test_push_batch_takes_a_message_batch_and_pushes_the_longest_prefix_that_fits(
    ring: Any,
) -> None:
    frames = [frame_of_length(1504, sequence) for sequence in range(3)]
    batch = MessageBatch.from_bytes(b"".join(frames))
    assert ring.push_batch(batch) == 2
    assert ring.free_bytes == CAPACITY - 2 * 1504
    assert ring.push_batch(batch[2:]) == 0
    assert ring.push_batch([make_frame(0), *frames]) == 1  # a small one still fits
    assert ring.pop_batch() == MessageBatch.from_bytes(b"".join([*frames[:2], make_frame(0)]))


def test_push_batch_takes_any_iterable_of_frames(ring: Any) -> None:
    frames = [make_frame(10, sequence) for sequence in range(5)]
    assert ring.push_batch(iter(frames)) == 5
    assert ring.push_batch(tuple(frames)) == 5
    assert ring.push_batch([]) == 0
    assert ring.push_batch(MessageBatch()) == 0
    assert ring.pop_batch().to_bytes() == b"".join(frames * 2)


def test_pop_batch_limits(ring: Any) -> None:
    frames = [frame_of_length(length, i) for i, length in enumerate([64, 128, 256, 512, 64])]
    assert ring.push_batch(frames) == 5
    assert ring.pop_batch(max_messages=2).to_bytes() == b"".join(frames[:2])
    # the first frame is always returned whole, even over max_bytes
    assert ring.pop_batch(max_bytes=1).to_bytes() == frames[2]
    assert ring.pop_batch(max_bytes=512 + 63).to_bytes() == frames[3]
    assert ring.push(frames[0])
    assert ring.pop_batch(max_bytes=128, max_messages=5).to_bytes() == frames[4] + frames[0]
    assert ring.pop_batch(max_messages=1) == MessageBatch()


def test_get_batch_waits_for_at_least_one_frame(ring: Any) -> None:
    frames = [make_frame(8, sequence) for sequence in range(3)]
    waiter = Background(ring.get_batch, timeout=5)
    time.sleep(0.05)
    assert ring.push_batch(frames) == 3
    assert waiter.finished_within(WAKE_BOUND_S), "get_batch was not woken"
    assert waiter.error is None, waiter.error
    got = waiter.result
    assert isinstance(got, MessageBatch)
    assert 1 <= len(got) <= 3
    assert got.to_bytes() + ring.pop_batch().to_bytes() == b"".join(frames)


# --------------------------------------------------------------------------------------------
# close (in-process ring)
# --------------------------------------------------------------------------------------------


def test_close_stops_pushes_and_lets_pops_drain() -> None:
    ring = Ring(CAPACITY)
    frames = [make_frame(8, sequence) for sequence in range(5)]
    assert ring.push_batch(frames) == 5
    assert not ring.closed
    ring.close()
    assert ring.closed
    with pytest.raises(kaelix.RingClosed):
        ring.push(frames[0])
    with pytest.raises(kaelix.RingClosed):
        ring.put(frames[0])
    with pytest.raises(kaelix.RingClosed):
        ring.put(frames[0], timeout=0)
    with pytest.raises(kaelix.RingClosed):
        ring.push_batch(frames)
    with pytest.raises(ValueError):
        ring.push(frames[0])
    assert len(ring) == 5
    assert ring.peek() == frames[0]
    assert ring.pop() == frames[0]
    assert ring.get() == frames[1]
    assert ring.get(timeout=0) == frames[2]
    assert ring.get_batch().to_bytes() == frames[3] + frames[4]
    with pytest.raises(kaelix.RingClosed):
        ring.get()
    with pytest.raises(kaelix.RingClosed):
        ring.get(timeout=0)
    with pytest.raises(kaelix.RingClosed):
        ring.get_batch(timeout=1)
    assert ring.pop() is None
    assert len(ring.pop_batch()) == 0


def test_ring_as_context_manager_closes() -> None:
    with Ring(CAPACITY) as ring:
        assert isinstance(ring, Ring)
        assert ring.push(GOOD)
        assert not ring.closed
    assert ring.closed
    assert ring.pop() == GOOD
    with pytest.raises(kaelix.RingClosed):
        ring.push(GOOD)


def test_clear_drops_everything_waiting() -> None:
    ring = Ring(CAPACITY)
    assert fill(ring, frame_of_length(1000)) == 4
    ring.clear()
    assert len(ring) == 0
    assert ring.free_bytes == CAPACITY
    assert ring.pop() is None
    assert ring.push(GOOD)
    assert ring.pop() == GOOD


# --------------------------------------------------------------------------------------------
# Threads
# --------------------------------------------------------------------------------------------


def test_threads_move_every_frame_exactly_once() -> None:
    producers, consumers, per_producer = 4, 3, 5000
    ring = Ring(8192)
    received: list[list[tuple[int, int]]] = [[] for _ in range(consumers)]
    errors: list[BaseException] = []

    def produce(producer: int) -> None:
        try:
            for sequence in range(per_producer):
                ring.put(make_frame(sequence % 50, sequence, producer), timeout=20)
        except BaseException as error:
            errors.append(error)

    def consume(index: int) -> None:
        try:
            while True:
                try:
                    frame = ring.get(timeout=20)
                except kaelix.RingClosed:
                    return
                message = kaelix.decode(frame)
                assert message.payload == bytes([message.sequence % 256]) * (message.sequence % 50)
                received[index].append((message.producer_id, message.sequence))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    readers = [threading.Thread(target=consume, args=(c,)) for c in range(consumers)]
    for thread in threads + readers:
        thread.start()
    for thread in threads:
        thread.join(60)
    ring.close()
    for thread in readers:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads + readers)
    assert errors == []
    everything = sorted(item for part in received for item in part)
    assert everything == sorted(
        (p, s) for p in range(producers) for s in range(per_producer)
    )  # every frame exactly once
    for part in received:  # each consumer sees each producer's frames in order
        for producer in range(producers):
            mine = [s for p, s in part if p == producer]
            assert mine == sorted(mine)


def test_a_blocked_get_is_woken_by_a_put(ring: Any) -> None:
    waiter = Background(ring.get)
    time.sleep(0.1)
    assert not waiter.done.is_set(), "get returned from an empty ring"
    ring.put(GOOD)
    assert waiter.finished_within(WAKE_BOUND_S), "get was not woken by put"
    assert waiter.error is None, waiter.error
    assert waiter.result == GOOD


def test_a_blocked_put_is_woken_by_a_pop(ring: Any) -> None:
    frame = frame_of_length(2048)
    assert fill(ring, frame) == 2
    last = frame_of_length(2048, sequence=3)
    waiter = Background(ring.put, last)
    time.sleep(0.1)
    assert not waiter.done.is_set(), "put returned on a full ring"
    assert ring.pop() == frame
    assert waiter.finished_within(WAKE_BOUND_S), "put was not woken by pop"
    assert waiter.error is None, waiter.error
    assert [ring.pop(), ring.pop(), ring.pop()] == [frame, last, None]


def test_a_blocked_get_is_interrupted_by_close() -> None:
    ring = Ring(CAPACITY)
    waiter = Background(ring.get)
    time.sleep(0.1)
    ring.close()
    assert waiter.finished_within(WAKE_BOUND_S), "close did not wake a blocked get"
    assert isinstance(waiter.error, kaelix.RingClosed), waiter.error


def test_a_blocked_get_batch_is_interrupted_by_close() -> None:
    ring = Ring(CAPACITY)
    waiter = Background(ring.get_batch, max_messages=4)
    time.sleep(0.1)
    ring.close()
    assert waiter.finished_within(WAKE_BOUND_S), "close did not wake a blocked get_batch"
    assert isinstance(waiter.error, kaelix.RingClosed), waiter.error


def test_a_blocked_put_is_interrupted_by_close() -> None:
    ring = Ring(CAPACITY)
    assert fill(ring, frame_of_length(4096)) == 1
    waiter = Background(ring.put, GOOD)
    time.sleep(0.1)
    ring.close()
    assert waiter.finished_within(WAKE_BOUND_S), "close did not wake a blocked put"
    assert isinstance(waiter.error, kaelix.RingClosed), waiter.error
    assert len(ring) == 1


# --------------------------------------------------------------------------------------------
# SharedRing: life cycle
# --------------------------------------------------------------------------------------------


def test_create_and_attach_share_the_frames(shared: SharedRings) -> None:
    producer = shared.create(8192)
    consumer = shared.attach()
    assert producer.name == consumer.name == shared.name
    assert consumer.capacity == 8192
    frames = [make_frame(size, sequence) for sequence, size in enumerate([3, 300, 3000])]
    for frame in frames:
        assert producer.push(frame)
    assert len(consumer) == 3
    assert [consumer.pop() for _ in range(4)] == [*frames, None]


def test_create_over_an_existing_name_raises_file_exists(shared: SharedRings) -> None:
    ring = shared.create()
    assert ring.push(GOOD)
    with pytest.raises(FileExistsError, match=re.escape(shared.name)):
        SharedRing.create(shared.name, CAPACITY)
    assert shared.attach().pop() == GOOD  # the existing ring is untouched


def test_create_over_a_stray_file_raises_file_exists(shared: SharedRings) -> None:
    os.close(os.open(shared.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    with pytest.raises(FileExistsError, match=re.escape(shared.name)):
        SharedRing.create(shared.name, CAPACITY)
    assert os.stat(shared.path).st_size == 0


def test_attach_to_a_missing_name_raises_file_not_found() -> None:
    name = unique_name()
    with pytest.raises(FileNotFoundError, match=re.escape(name)):
        SharedRing.attach(name)


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_segment_is_owner_only(shared: SharedRings, umask: int) -> None:
    old = os.umask(umask)
    try:
        shared.create()
    finally:
        os.umask(old)
    mode = os.stat(shared.path).st_mode
    assert stat.S_IMODE(mode) == 0o600
    assert os.stat(shared.path).st_uid == os.getuid()


CLOSED_USES: dict[str, Callable[[SharedRing], Any]] = {
    "push": lambda r: r.push(GOOD),
    "put": lambda r: r.put(GOOD, timeout=0),
    "pop": lambda r: r.pop(),
    "peek": lambda r: r.peek(),
    "get": lambda r: r.get(timeout=0),
    "push_batch": lambda r: r.push_batch([GOOD]),
    "pop_batch": lambda r: r.pop_batch(),
    "get_batch": lambda r: r.get_batch(timeout=0),
    "len": len,
    "free_bytes": lambda r: r.free_bytes,
}


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
@pytest.mark.parametrize("use", CLOSED_USES.values(), ids=CLOSED_USES.keys())
@pytest.mark.parametrize("handle", ["creator", "attached"])
def test_a_closed_handle_raises_ring_closed(
    shared: SharedRings, handle: str, use: Callable[[SharedRing], Any]
) -> None:
    creator = shared.create()
    assert creator.push(make_frame(8))
    target = creator if handle == "creator" else shared.attach()
    target.close()
    assert outcome_in_forked_child(lambda: use(target)) == "RingClosed"
    assert os.path.exists(shared.path)  # close detaches; it does not remove the name
    other = shared.attach()
    assert other.pop() == make_frame(8)


def test_unlink_removes_the_name_and_handles_keep_working(shared: SharedRings) -> None:
    producer = shared.create()
    consumer = shared.attach()
    producer.unlink()
    assert not os.path.exists(shared.path)
    with pytest.raises(FileNotFoundError):
        SharedRing.attach(shared.name)
    assert producer.push(GOOD)
    assert consumer.pop() == GOOD
    replacement = shared.create()  # the name is free again
    assert replacement.pop() is None


def test_creator_context_manager_closes_and_unlinks(shared: SharedRings) -> None:
    with SharedRing.create(shared.name, CAPACITY) as ring:
        assert isinstance(ring, SharedRing)
        assert ring.push(GOOD)
        with SharedRing.attach(shared.name) as attached:
            assert attached.pop() == GOOD
        assert os.path.exists(shared.path)  # an attached handle does not unlink
        with pytest.raises(kaelix.RingClosed):
            attached.pop()
    assert not os.path.exists(shared.path)
    with pytest.raises(kaelix.RingClosed):
        ring.push(GOOD)


def test_pickling_attaches_by_name(shared: SharedRings) -> None:
    producer = shared.create(8192)
    consumer = shared.track(pickle.loads(pickle.dumps(producer)))
    assert isinstance(consumer, SharedRing)
    assert consumer is not producer
    assert consumer.name == shared.name
    assert consumer.capacity == 8192
    assert producer.push(GOOD)
    assert consumer.pop() == GOOD
    assert consumer.pop() is None


def test_attach_latest_skips_what_is_waiting(shared: SharedRings) -> None:
    producer = shared.create()
    old = [make_frame(8, sequence) for sequence in range(3)]
    assert producer.push_batch(old) == 3
    latest = shared.attach(start="latest")
    assert latest.pop() is None
    assert producer.push(GOOD)
    assert latest.pop() == GOOD


def test_frames_are_kept_for_the_first_consumer(shared: SharedRings) -> None:
    producer = shared.create()
    frames = [make_frame(8, sequence) for sequence in range(3)]
    assert producer.push_batch(frames) == 3
    earliest = shared.attach(start="earliest")
    assert earliest.pop_batch().to_bytes() == b"".join(frames)


def test_every_consumer_sees_every_frame_and_the_slowest_gates_the_producer(
    shared: SharedRings,
) -> None:
    producer = shared.create(max_consumers=2)
    fast, slow = shared.attach(), shared.attach()
    assert fast.peek() is None  # both are consumers from here on
    assert slow.peek() is None
    frame = frame_of_length(1024)
    assert fill(producer, frame) == 4
    assert fast.pop_batch().to_bytes() == frame * 4
    assert producer.push(frame) is False  # slow has not read anything yet
    assert slow.pop() == frame
    assert producer.push(frame) is True
    assert slow.pop_batch().to_bytes() == frame * 4
    assert fast.pop() == frame
    assert fast.pop() is None


def test_role_limits_are_ring_errors_naming_the_fix(shared: SharedRings) -> None:
    creator = shared.create(max_producers=1, max_consumers=1)
    first, second = shared.attach(), shared.attach()
    assert creator.push(GOOD)
    with pytest.raises(kaelix.RingError, match="max_producers") as caught:
        first.push(GOOD)
    assert caught.value.reason == "too_many_producers"
    assert first.pop() == GOOD
    with pytest.raises(kaelix.RingError, match="max_consumers") as caught:
        second.pop()
    assert caught.value.reason == "too_many_consumers"
    first.close()  # gives its consumer slot back
    assert second.pop() is None


@pytest.mark.parametrize("name", ["", "a/b", "x" * 201, "sp ace", ".hidden", "-dash"])
def test_a_bad_ring_name_is_a_value_error(name: str) -> None:
    with pytest.raises(ValueError, match="ring name"):
        SharedRing.create(name, CAPACITY)


def test_a_name_of_200_allowed_characters_is_fine(shared: SharedRings) -> None:
    shared.name = (f"kx.test_{os.getpid()}-{uuid4().hex[:8]}" * 20)[:200]
    assert shared.create().name == shared.name
    assert os.path.exists(shared.path)


def test_put_batch_waits_for_room_as_needed(ring: Any) -> None:
    messages = _messages(60)
    batch = MessageBatch.from_messages(messages)
    assert batch.nbytes > 2 * CAPACITY
    received: list[Message] = []

    def consume() -> None:
        while len(received) < len(messages):
            received.extend(ring.get_batch(timeout=5))

    consumer = Background(consume)
    ring.put_batch(batch, timeout=5)
    assert consumer.finished_within(5 * WAKE_BOUND_S), "the consumer did not get everything"
    assert consumer.error is None, consumer.error
    assert received == messages
    assert fill(ring, frame_of_length(CAPACITY)) == 1
    with pytest.raises(kaelix.RingFull):
        ring.put_batch(batch[:1], timeout=0)


@pytest.mark.parametrize("wait", ["sleep", "spin", "yield"])
def test_wait_strategies_wake_a_blocked_get(shared: SharedRings, wait: str) -> None:
    producer = shared.create(wait=wait)
    consumer = shared.attach(wait=wait)
    waiter = Background(consumer.get, timeout=5)
    time.sleep(0.1)
    assert not waiter.done.is_set()
    producer.put(GOOD)
    assert waiter.finished_within(WAKE_BOUND_S), f"wait={wait!r}: get was not woken"
    assert waiter.error is None, waiter.error
    assert waiter.result == GOOD


def test_an_unknown_wait_strategy_is_a_value_error(shared: SharedRings) -> None:
    with pytest.raises(ValueError, match="wait"):
        shared.create(wait="nap")
    assert not os.path.exists(shared.path)


# --------------------------------------------------------------------------------------------
# SharedRing: attaching to something that is not a valid ring
# --------------------------------------------------------------------------------------------

# The fixed start of the segment header (cext/kx_ring.h): magic u64, version u32,
# header_size u32, capacity u64, segment_size u64. The test checks it reads sane values
# from a real ring before relying on these offsets.
HEAD = struct.Struct("<QIIQQ")
VERSION_OFFSET = 8
CAPACITY_OFFSET = 16


def valid_segment() -> bytes:
    """The bytes of a freshly created ring (capacity 4096), checked field by field."""
    name = unique_name()
    ring = SharedRing.create(name, CAPACITY)
    try:
        with open(SHM + name, "rb") as segment:
            data = segment.read()
    finally:
        ring.unlink()
        ring.close()
    magic, version, header_size, capacity, segment_size = HEAD.unpack_from(data)
    assert magic != 0
    assert version == 3  # layout 3: consumer slots say what each consumer received
    assert capacity == CAPACITY
    assert segment_size == header_size + capacity == len(data)
    return data


def _with_u32(data: bytes, offset: int, value: int) -> bytes:
    changed = bytearray(data)
    struct.pack_into("<I", changed, offset, value)
    return bytes(changed)


def _with_u64(data: bytes, offset: int, value: int) -> bytes:
    changed = bytearray(data)
    struct.pack_into("<Q", changed, offset, value)
    return bytes(changed)


def _random_bytes(size: int) -> bytes:
    data = random.Random(1234).randbytes(size)
    assert data[:8] != bytes(8)
    return data


def _garbage(kind: str) -> tuple[bytes, int | None]:
    """(bytes to write, length to truncate to or None) for each kind of bad segment."""
    data = valid_segment()
    header_size = HEAD.unpack_from(data)[2]
    cases: dict[str, tuple[bytes, int | None]] = {
        "zeros": (bytes(len(data)), None),
        "random": (_random_bytes(len(data)), None),
        "version_2": (_with_u32(data, VERSION_OFFSET, 2), None),  # before consumer counts
        "version_1": (_with_u32(data, VERSION_OFFSET, 1), None),  # the layout before queues
        "version_0": (_with_u32(data, VERSION_OFFSET, 0), None),
        "version_max": (_with_u32(data, VERSION_OFFSET, 0xFFFFFFFF), None),
        "capacity_doubled": (_with_u64(data, CAPACITY_OFFSET, 2 * CAPACITY), None),
        "capacity_not_power_of_two": (_with_u64(data, CAPACITY_OFFSET, 5000), None),
        "capacity_zero": (_with_u64(data, CAPACITY_OFFSET, 0), None),
        "capacity_huge": (_with_u64(data, CAPACITY_OFFSET, 1 << 62), None),
        "truncated_in_data": (data, header_size + CAPACITY // 2),
        "truncated_in_header": (data, 100),
        "truncated_one_byte": (data, len(data) - 1),
    }
    return cases[kind]


GARBAGE_REASONS = {
    "zeros": "uninitialised",
    "random": "bad_magic",
    "version_2": "unsupported_version",
    "version_1": "unsupported_version",
    "version_0": "unsupported_version",
    "version_max": "unsupported_version",
    "capacity_doubled": "bad_layout",
    "capacity_not_power_of_two": "bad_layout",
    "capacity_zero": "bad_layout",
    "capacity_huge": "bad_layout",
    "truncated_in_data": "truncated",
    "truncated_in_header": "truncated",
    "truncated_one_byte": "truncated",
}


@pytest.mark.parametrize(("kind", "reason"), GARBAGE_REASONS.items(), ids=GARBAGE_REASONS.keys())
def test_attach_to_garbage_raises_ring_error_with_the_reason(
    shared: SharedRings, kind: str, reason: str
) -> None:
    data, truncate_to = _garbage(kind)
    fd = os.open(shared.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    if truncate_to is not None:
        os.truncate(shared.path, truncate_to)
    with open(shared.path, "rb") as segment:
        before = segment.read()
    with pytest.raises(kaelix.RingError) as caught:
        shared.track(SharedRing.attach(shared.name))
    assert caught.value.reason == reason
    assert isinstance(caught.value, ValueError)
    assert shared.name in str(caught.value)
    with open(shared.path, "rb") as segment:
        assert segment.read() == before  # attaching wrote nothing


def test_attach_to_an_empty_file_raises_ring_error(shared: SharedRings) -> None:
    os.close(os.open(shared.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    with pytest.raises(kaelix.RingError) as caught:
        shared.track(SharedRing.attach(shared.name))
    assert caught.value.reason in {"truncated", "uninitialised"}


@settings(max_examples=60, deadline=None)
@given(fields=st.lists(message_fields(), min_size=1, max_size=40))
def test_pop_batch_columns_equal_a_full_scan_of_the_same_frames(fields: list[Fields]) -> None:
    # The in-process ring reads the columns out of frames it checked on the way in (compiled,
    # no second check); the full scan of from_bytes is the reference for every column.
    batch = MessageBatch.from_messages(to_message(f) for f in fields)
    with Ring(max(4096, batch.nbytes)) as ring:
        assert ring.push_batch(batch) == len(batch)
        popped = ring.pop_batch()
    reference = MessageBatch.from_bytes(popped.to_bytes())
    assert popped == batch
    for column in ("offsets", "sequence", "partition", "producer_id", "timestamp_ns", "checksum"):
        assert getattr(popped, column).tolist() == getattr(reference, column).tolist(), column


def test_the_trusted_column_reader_bounds_every_length_by_its_buffer() -> None:
    from kaelix._batch import _empty_columns
    from kaelix._ring import _index_frames

    frames = MessageBatch.from_messages(Message(b"x" * n) for n in range(5)).to_bytes()
    assert _index_frames(frames, 5, *_empty_columns(5)) == 5
    with pytest.raises(ValueError, match="runs past the end of the buffer"):
        _index_frames(frames, 6, *_empty_columns(6))
    with pytest.raises(ValueError, match="bytes after its 4 frames"):
        _index_frames(frames, 4, *_empty_columns(4))
    with pytest.raises(ValueError, match="no room for 5 frames"):
        _index_frames(frames, 5, *_empty_columns(4))
    lying = bytearray(frames)
    lying[12:16] = (1 << 31).to_bytes(4, "little")  # a first frame longer than the buffer
    with pytest.raises(ValueError, match="frame 0 at byte 0 runs past"):
        _index_frames(bytes(lying), 5, *_empty_columns(5))


@pytest.mark.parametrize("wait", ["sleep", "spin"])
def test_an_idle_get_sleeps_unless_told_to_spin(shared: SharedRings, wait: str) -> None:
    # Not a speed test: CPU time of a thread blocked on an empty ring. The default sleeps on
    # a futex (a few wake-ups to look at signals and peers); "spin" is meant to burn it.
    ring = shared.create(CAPACITY)
    consumer = SharedRing.attach(ring.name, wait=wait)
    shared.handles.append(consumer)
    cpu_before, wall_before = time.thread_time(), time.monotonic()
    with pytest.raises(kaelix.RingEmpty):
        consumer.get(timeout=0.5)
    cpu, wall = time.thread_time() - cpu_before, time.monotonic() - wall_before
    assert wall >= 0.5
    if wait == "sleep":
        assert cpu < 0.05 * wall, f"an idle get used {cpu:.3f} s of CPU in {wall:.3f} s"
    else:
        assert cpu > 0.2 * wall, f"a spinning get used only {cpu:.3f} s of CPU in {wall:.3f} s"
