"""Child-process entry points and frame helpers for the shared-ring process tests.

The functions live in a module of their own, not in a test module, so that a child started
with the "spawn" start method can import them: multiprocessing hands the parent's
``sys.path`` (which holds ``tests/`` under pytest) to the child before it unpickles the
target. Every child works against a deadline and reports through a queue or its exit code,
so a broken ring fails the test instead of hanging it.

This module may import ``kaelix`` and the standard library, never a test module.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable
from typing import Any

import kaelix

DEADLINE_S = 20.0
"""How long any child waits for anything before giving up (far beyond a healthy run)."""

PRODUCER_ID_BASE = 1000
"""Producer ids are PRODUCER_ID_BASE + index, so a zeroed frame can never look valid."""


def payload_for(producer: int, sequence: int) -> bytes:
    """The payload of frame ``sequence`` of ``producer``: it names both, then a filler whose
    length varies with the sequence so that frames are of many sizes."""
    head = b"p%d/s%d|" % (producer, sequence)
    return head + bytes([(sequence * 7 + producer) % 251]) * ((sequence * 13) % 97)


def make_message(producer: int, sequence: int) -> kaelix.Message:
    return kaelix.Message(
        payload_for(producer, sequence),
        producer_id=PRODUCER_ID_BASE + producer,
        sequence=sequence,
        partition=producer,
    )


def make_frame(producer: int, sequence: int) -> bytes:
    return kaelix.encode(make_message(producer, sequence))


def check_message(message: kaelix.Message) -> tuple[int, int]:
    """(producer, sequence) of a received message, after checking that its payload is the
    one that producer sent with that sequence. Raises AssertionError otherwise."""
    producer = message.producer_id - PRODUCER_ID_BASE
    sequence = message.sequence
    expected = payload_for(producer, sequence)
    if message.payload != expected or message.partition != producer:
        raise AssertionError(
            f"frame claims producer {producer} sequence {sequence} but carries "
            f"payload {message.payload[:40]!r} partition {message.partition}"
        )
    return producer, sequence


def check_frame(frame: bytes) -> tuple[int, int]:
    return check_message(kaelix.decode(frame))


class SequenceChecker:
    """Per-producer check that sequences arrive consecutively from 0: no loss, no
    duplicate, no reordering."""

    def __init__(self) -> None:
        self.next: dict[int, int] = {}
        self.digest = hashlib.sha256()
        self.count = 0

    def add(self, producer: int, sequence: int) -> None:
        expected = self.next.get(producer, 0)
        if sequence != expected:
            raise AssertionError(
                f"producer {producer}: got sequence {sequence}, expected {expected} "
                f"(after {self.count} frames in all)"
            )
        self.next[producer] = expected + 1
        self.count += 1

    def add_frame(self, frame: bytes | memoryview) -> None:
        self.add(*check_frame(bytes(frame)))
        self.digest.update(frame)

    def add_batch(self, batch: kaelix.MessageBatch) -> None:
        for index, message in enumerate(batch):
            self.add(*check_message(message))
            self.digest.update(batch.frame(index))


def expected_digest(producer: int, count: int) -> str:
    digest = hashlib.sha256()
    for sequence in range(count):
        digest.update(make_frame(producer, sequence))
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Producing
# --------------------------------------------------------------------------------------------


def push_all(ring: Any, batch: kaelix.MessageBatch) -> None:
    """Pushes every frame of ``batch`` with push_batch, waiting with put when it is full."""
    done = 0
    while done < len(batch):
        pushed = ring.push_batch(batch[done:])
        done += pushed
        if pushed == 0:
            ring.put(bytes(batch.frame(done)), timeout=DEADLINE_S)
            done += 1


def produce(ring: Any, producer: int, count: int, batch_size: int, use_put: bool = False) -> None:
    """Sends frames 0..count-1 of ``producer``: one at a time with put, or in batches of
    ``batch_size`` built with MessageBatch.from_messages."""
    if use_put:
        for sequence in range(count):
            ring.put(make_frame(producer, sequence), timeout=DEADLINE_S)
        return
    for start in range(0, count, batch_size):
        messages = [
            make_message(producer, sequence)
            for sequence in range(start, min(count, start + batch_size))
        ]
        push_all(ring, kaelix.MessageBatch.from_messages(messages))


def producer_main(ring: Any, producer: int, count: int, batch_size: int, use_put: bool) -> None:
    """Child: produce ``count`` frames, then detach. Exit code 0 means all were sent."""
    produce(ring, producer, count, batch_size, use_put)
    ring.close()


def endless_producer_main(ring: Any, producer: int, batch_size: int) -> None:
    """Child: produce frames 0, 1, 2, ... until killed. Large batches make a kill land in
    the middle of a write (a claim in flight) as often as possible."""
    sequence = 0
    while True:
        messages = [make_message(producer, s) for s in range(sequence, sequence + batch_size)]
        push_all(ring, kaelix.MessageBatch.from_messages(messages))
        sequence += batch_size


def produce_then_idle_main(ring: Any, producer: int, count: int, ready: Any) -> None:
    """Child: produce ``count`` frames one at a time, say so, then sleep until killed."""
    produce(ring, producer, count, 1, use_put=True)
    ready.set()
    time.sleep(DEADLINE_S * 3)


def die_mid_write_main(ring: Any, producer: int, count: int, ready: Any) -> None:
    """Child: send ``count`` frames, then claim room for one more and stop half way through
    writing it (as if killed there), say so, and sleep until killed."""
    produce(ring, producer, count, 1, use_put=True)
    assert ring._abandon_claim(len(make_frame(producer, count)))
    ready.set()
    time.sleep(DEADLINE_S * 3)


def push_once_main(ring: Any, results: Any) -> None:
    """Child: try to push one frame and report what happened."""
    try:
        ring.push(make_frame(9, 0))
    except kaelix.RingError as error:
        results.put(("RingError", error.reason))
    except Exception as error:
        results.put((type(error).__name__, str(error)))
    else:
        results.put(("ok", None))
    finally:
        ring.close()


# --------------------------------------------------------------------------------------------
# Consuming
# --------------------------------------------------------------------------------------------


def consume(ring: Any, count: int, use_get: bool, pop_first: bool = False) -> SequenceChecker:
    """Receives ``count`` frames and checks each: one at a time with get, or in batches with
    get_batch; with ``pop_first``, pop_batch takes what is there and get_batch only waits
    when the ring is empty."""
    checker = SequenceChecker()
    while checker.count < count:
        if use_get:
            checker.add_frame(ring.get(timeout=DEADLINE_S))
            continue
        batch = ring.pop_batch(max_messages=count - checker.count) if pop_first else None
        if not batch:
            batch = ring.get_batch(max_messages=count - checker.count, timeout=DEADLINE_S)
        checker.add_batch(batch)
    return checker


def consumer_main(
    ring: Any, count: int, use_get: bool, ready: Any, results: Any, index: int
) -> None:
    """Child: become a consumer (peek registers the cursor), say so, receive ``count``
    frames and report ("ok", index, count, digest) or ("error", index, text)."""
    try:
        ring.peek()
        ready.set()
        checker = consume(ring, count, use_get)
        leftover = ring.pop()
        if leftover is not None:
            raise AssertionError(f"an extra frame after {count}: {leftover[:64]!r}")
        results.put(("ok", index, checker.count, checker.digest.hexdigest()))
    except BaseException as error:
        results.put(("error", index, f"{type(error).__name__}: {error}"))
    finally:
        ring.close()


def pop_some_then_idle_main(ring: Any, count: int, ready: Any) -> None:
    """Child: receive ``count`` frames as a consumer, say so, then sleep until killed."""
    for _ in range(count):
        ring.get(timeout=DEADLINE_S)
    ready.set()
    time.sleep(DEADLINE_S * 3)


def drain(ring: Any) -> list[bytes]:
    """Everything waiting, one pop at a time."""
    frames: list[bytes] = []
    while (frame := ring.pop()) is not None:
        frames.append(frame)
    return frames


def sequences_of(frames: Iterable[bytes]) -> list[tuple[int, int]]:
    return [check_frame(frame) for frame in frames]


def close_under_blocked_get_main(name: str, results: Any) -> None:
    """Child: a thread blocks in get on an attached handle while the main thread closes
    that handle. Reports what the get raised; a crash shows as a negative exit code."""
    ring = kaelix.SharedRing.attach(name)
    outcome: list[str] = []

    def wait() -> None:
        try:
            ring.get(timeout=DEADLINE_S)
            outcome.append("returned")
        except BaseException as error:
            outcome.append(type(error).__name__)

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    time.sleep(0.2)
    ring.close()
    thread.join(2.0)
    results.put(outcome[0] if outcome else "still blocked")
