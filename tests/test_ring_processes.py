"""SharedRing across real processes, started with "spawn" and with "fork".

Every frame carries its producer and sequence in its header and in its payload, so each
receiver checks every message for loss, duplication, order (per producer) and content. The
liveness tests SIGKILL a producer or a consumer in the middle of a run: what was committed
must stay readable and whole, and a peer left waiting must get PeerGone instead of waiting
forever. Every wait is bounded, so a broken ring fails a test instead of hanging the run.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from multiprocessing.context import BaseContext
from typing import Any
from uuid import uuid4

import pytest

import kaelix
import ring_workers as workers
from kaelix import SharedRing
from proc_helpers import Children

# numpy's BLAS keeps a thread, so Python 3.12+ warns at every fork; forking on purpose is
# what these tests are for.
pytestmark = pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded:DeprecationWarning"
)

SHM = "/dev/shm/"
PEER_GONE_BOUND_S = 2.0  # the spec says about 0.2 s; this is a liveness bound, not a speed
JOIN_S = 30.0


@pytest.fixture(params=["spawn", "fork"])
def context(request: pytest.FixtureRequest) -> BaseContext:
    return multiprocessing.get_context(request.param)


@pytest.fixture
def children(context: BaseContext) -> Iterator[Children]:
    with Children(context, JOIN_S) as started:
        yield started


@pytest.fixture
def make_ring() -> Iterator[Callable[..., SharedRing]]:
    """Creates shared rings under unique names; closes and removes them at the end."""
    made: list[tuple[str, SharedRing]] = []

    def create(capacity: int = 1 << 16, **options: Any) -> SharedRing:
        name = f"kx-test-{os.getpid()}-{uuid4().hex[:8]}"
        ring = SharedRing.create(name, capacity, **options)
        made.append((name, ring))
        return ring

    try:
        yield create
    finally:
        for name, ring in made:
            with contextlib.suppress(kaelix.RingClosed):
                ring.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(SHM + name)


def receive_until(
    ring: SharedRing,
    checker: workers.SequenceChecker,
    done: Callable[[workers.SequenceChecker], bool],
) -> None:
    """Receives batches into ``checker`` until ``done(checker)``."""
    while not done(checker):
        checker.add_batch(ring.get_batch(max_messages=4096, timeout=workers.DEADLINE_S))


def wait_for_frames(ring: SharedRing, count: int) -> None:
    """Waits (bounded) until at least ``count`` frames wait for this consumer."""
    deadline = time.monotonic() + JOIN_S
    while len(ring) < count:
        assert time.monotonic() < deadline, f"{len(ring)} frames after {JOIN_S} s"
        time.sleep(0.01)


def assert_peer_gone(call: Callable[[], Any], pid: int) -> None:
    """``call`` must raise PeerGone naming ``pid``, well before its own timeout."""
    started = time.monotonic()
    with pytest.raises(kaelix.PeerGone) as caught:
        call()
    elapsed = time.monotonic() - started
    assert elapsed < PEER_GONE_BOUND_S, f"PeerGone came after {elapsed:.2f} s"
    assert caught.value.pid == pid
    assert isinstance(caught.value, BrokenPipeError)


# --------------------------------------------------------------------------------------------
# Delivery
# --------------------------------------------------------------------------------------------


def test_one_to_one_batches(children: Children, make_ring: Callable[..., SharedRing]) -> None:
    count = 100_000
    ring = make_ring()
    producer = children.start(workers.producer_main, ring, 0, count, 500, False)
    checker = workers.consume(ring, count, use_get=False, pop_first=True)
    children.join_ok(producer)
    assert ring.pop() is None
    assert checker.next == {0: count}
    assert checker.digest.hexdigest() == workers.expected_digest(0, count)


def test_one_to_one_put_get(
    children: Children, context: BaseContext, make_ring: Callable[..., SharedRing]
) -> None:
    count = 20_000
    ring = make_ring(8192)
    ready, results = context.Event(), context.Queue()
    consumer = children.start(workers.consumer_main, ring, count, True, ready, results, 0)
    workers.produce(ring, 0, count, 1, use_put=True)
    outcome = results.get(timeout=JOIN_S)
    children.join_ok(consumer)
    assert outcome == ("ok", 0, count, workers.expected_digest(0, count))


def test_broadcast_to_three_consumers(
    children: Children, context: BaseContext, make_ring: Callable[..., SharedRing]
) -> None:
    count, consumers = 20_000, 3
    ring = make_ring(1 << 15, max_consumers=consumers)
    results = context.Queue()
    readies = [context.Event() for _ in range(consumers)]
    started = [
        children.start(
            workers.consumer_main, ring, count, index == 0, readies[index], results, index
        )
        for index in range(consumers)
    ]
    for ready in readies:  # every consumer has its cursor before the first frame
        assert ready.wait(JOIN_S)
    workers.produce(ring, 0, count, 250)
    outcomes = sorted(results.get(timeout=JOIN_S) for _ in range(consumers))
    children.join_ok(*started)
    digest = workers.expected_digest(0, count)
    assert outcomes == [("ok", index, count, digest) for index in range(consumers)]


def test_three_producers_to_one_consumer(
    children: Children, make_ring: Callable[..., SharedRing]
) -> None:
    count, producers = 10_000, 3
    ring = make_ring(1 << 15, max_producers=producers)
    started = [
        children.start(workers.producer_main, ring, producer, count, 100, producer == 2)
        for producer in range(producers)
    ]
    checker = workers.SequenceChecker()
    receive_until(ring, checker, lambda c: c.count >= count * producers)
    children.join_ok(*started)
    assert ring.pop() is None
    assert checker.next == dict.fromkeys(range(producers), count)


def test_a_producer_over_max_producers_gets_ring_error(
    children: Children, context: BaseContext, make_ring: Callable[..., SharedRing]
) -> None:
    ring = make_ring(max_producers=1)
    assert ring.push(workers.make_frame(0, 0))  # this process holds the only producer slot
    results = context.Queue()
    children.join_ok(children.start(workers.push_once_main, ring, results))
    assert results.get(timeout=JOIN_S) == ("RingError", "too_many_producers")
    assert workers.drain(ring) == [workers.make_frame(0, 0)]


# --------------------------------------------------------------------------------------------
# Peers that die
# --------------------------------------------------------------------------------------------


def test_producer_killed_mid_run_leaves_whole_frames_then_peer_gone(
    children: Children, make_ring: Callable[..., SharedRing]
) -> None:
    ring = make_ring()
    producer = children.start(workers.endless_producer_main, ring, 0, 200)
    checker = workers.SequenceChecker()
    receive_until(ring, checker, lambda c: c.count >= 20_000)
    children.kill(producer)  # right after freeing room: it is most likely writing
    for producer_id, sequence in workers.sequences_of(workers.drain(ring)):
        checker.add(producer_id, sequence)  # consecutive from 0, no gap, no torn frame
    assert checker.next[0] >= 20_000
    assert producer.pid is not None
    assert_peer_gone(lambda: ring.get(timeout=5), producer.pid)


def test_killing_the_producer_wakes_a_blocked_get(
    children: Children, context: BaseContext, make_ring: Callable[..., SharedRing]
) -> None:
    ring = make_ring()
    ready = context.Event()
    producer = children.start(workers.produce_then_idle_main, ring, 0, 100, ready)
    assert ready.wait(JOIN_S)
    checker = workers.SequenceChecker()
    receive_until(ring, checker, lambda c: c.count >= 100)
    assert producer.pid is not None
    killer = threading.Timer(0.3, os.kill, (producer.pid, signal.SIGKILL))
    killer.start()
    try:
        started = time.monotonic()
        with pytest.raises(kaelix.PeerGone) as caught:
            ring.get(timeout=10)
        assert time.monotonic() - started < 0.3 + PEER_GONE_BOUND_S
        assert caught.value.pid == producer.pid
    finally:
        killer.join()
    assert checker.next == {0: 100}


def test_a_single_producer_killed_mid_write_leaves_every_committed_frame(
    children: Children, context: BaseContext, make_ring: Callable[..., SharedRing]
) -> None:
    ring = make_ring()
    ready = context.Event()
    doomed = children.start(workers.die_mid_write_main, ring, 0, 50, ready)
    assert ready.wait(JOIN_S)
    children.kill(doomed)
    checker = workers.SequenceChecker()
    for producer_id, sequence in workers.sequences_of(workers.drain(ring)):
        checker.add(producer_id, sequence)
    assert checker.next == {0: 50}  # every committed frame, and nothing of the torn one
    assert doomed.pid is not None
    assert_peer_gone(lambda: ring.get(timeout=5), doomed.pid)
    # A new producer takes over the dead one's slot, and its claim, and goes on.
    successor = children.start(workers.producer_main, ring, 1, 100, 10, False)
    wait_for_frames(ring, 1)  # until then a get would rightly raise PeerGone again
    receive_until(ring, checker, lambda c: c.next.get(1) == 100)
    children.join_ok(successor)
    assert checker.next == {0: 50, 1: 100}


def test_survivors_skip_the_unfinished_claim_of_a_dead_producer(
    children: Children, context: BaseContext, make_ring: Callable[..., SharedRing]
) -> None:
    ring = make_ring(1 << 16, max_producers=2)
    ready = context.Event()
    doomed = children.start(workers.die_mid_write_main, ring, 0, 30, ready)
    assert ready.wait(JOIN_S)
    children.kill(doomed)
    # The survivor's frames all queue behind the dead claim; its first publish finds the
    # claim's owner dead, covers the claim with a skip record and goes on.
    survivor = children.start(workers.producer_main, ring, 1, 5_000, 100, False)
    wait_for_frames(ring, 31)  # the survivor is registered and got past the dead claim
    checker = workers.SequenceChecker()
    receive_until(ring, checker, lambda c: c.next.get(1) == 5_000)
    children.join_ok(survivor)
    for producer_id, sequence in workers.sequences_of(workers.drain(ring)):
        checker.add(producer_id, sequence)
    assert checker.next == {0: 30, 1: 5_000}


def started_all_and_doomed_has_sent_enough(checker: workers.SequenceChecker) -> bool:
    sent = [checker.next.get(producer, 0) for producer in range(3)]
    return min(sent) > 0 and (sent[2] >= 1000 or checker.count >= 8000)


def test_one_of_three_producers_killed_the_others_keep_going(
    children: Children, context: BaseContext, make_ring: Callable[..., SharedRing]
) -> None:
    # Whether the kill lands inside a claim (the case where the survivors must skip the
    # dead producer's unfinished range) is up to the scheduler, so the cheap fork case
    # runs several rounds, each with a fresh ring.
    count = 15_000
    for _ in range(5 if context.get_start_method() == "fork" else 1):
        ring = make_ring(1 << 16, max_producers=3)
        steady = [children.start(workers.producer_main, ring, p, count, 50, False) for p in (0, 1)]
        doomed = children.start(workers.endless_producer_main, ring, 2, 400)
        checker = workers.SequenceChecker()
        # Kill only once all three have sent something (a producer that never registered
        # does not count as a live one, so the consumer could rightly get PeerGone), and
        # while the steady producers still have far more to send than the ring holds.
        receive_until(ring, checker, started_all_and_doomed_has_sent_enough)
        children.kill(doomed)
        receive_until(ring, checker, lambda c: c.next.get(0) == c.next.get(1) == count)
        children.join_ok(*steady)
        for producer_id, sequence in workers.sequences_of(workers.drain(ring)):
            checker.add(producer_id, sequence)
        assert checker.next[0] == checker.next[1] == count
        assert set(checker.next) <= {0, 1, 2}


def test_consumer_killed_makes_a_blocked_put_raise_peer_gone(
    children: Children, context: BaseContext, make_ring: Callable[..., SharedRing]
) -> None:
    ring = make_ring(4096)
    ready = context.Event()
    consumer = children.start(workers.pop_some_then_idle_main, ring, 3, ready)
    for sequence in range(3):
        ring.put(workers.make_frame(0, sequence), timeout=workers.DEADLINE_S)
    assert ready.wait(JOIN_S)
    children.kill(consumer)
    frame = workers.make_frame(0, 3)
    while ring.push(frame):
        pass
    assert consumer.pid is not None
    assert_peer_gone(lambda: ring.put(frame, timeout=5), consumer.pid)


def test_closing_a_handle_under_a_blocked_get_does_not_crash(
    make_ring: Callable[..., SharedRing],
) -> None:
    # In a child: if close() unmapped memory that a waiting get still uses, only the child
    # dies, and its exit code says so.
    context = multiprocessing.get_context("fork")
    ring = make_ring()
    results = context.Queue()
    child = context.Process(
        target=workers.close_under_blocked_get_main, args=(ring.name, results), daemon=True
    )
    child.start()
    try:
        child.join(JOIN_S)
        assert child.exitcode == 0, f"the child ended with {child.exitcode}"
        assert results.get(timeout=JOIN_S) == "RingClosed"
    finally:
        if child.is_alive() and child.pid is not None:
            os.kill(child.pid, signal.SIGKILL)
            child.join(JOIN_S)
