"""Child-process entry points of the monitor tests (a "spawn" child imports them from here,
since multiprocessing hands the parent's ``sys.path``, which holds ``tests/``, to the child),
and the fake clock the tests drive monitors with.

May import kaelix and the standard library, never a test module.
"""

from __future__ import annotations

import traceback
from typing import Any
from uuid import uuid4

import kaelix


def unique_name(prefix: str = "kx-mon") -> str:
    """A stream name no other test (or run) uses."""
    return f"{prefix}-{uuid4().hex[:12]}"


class FakeClock:
    """A clock the test moves by hand: ``clock()`` is the time now, ``advance`` moves it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def produce(name: str, count: int, partition: int, results: Any) -> None:
    """Opens shared stream ``name`` and sends ``count`` messages to ``partition``; reports
    ("ok", count) or ("error", traceback) on ``results``."""
    try:
        with kaelix.Stream.open(name) as stream:
            producer = stream.producer()
            for i in range(count):
                producer.send(b"m%d" % i, partition=partition)
        results.put(("ok", count))
    except BaseException:
        results.put(("error", traceback.format_exc()))


def produce_then_wait(name: str, count: int, ready: Any, done: Any) -> None:
    """Sends ``count`` messages round-robin, says so on ``ready``, then stays attached until
    ``done`` is set (a live producer process for the dashboard test)."""
    try:
        with kaelix.Stream.open(name) as stream:
            producer = stream.producer()
            for i in range(count):
                producer.send(b"p%d" % i)
            ready.put(("ok", count))
            done.wait(20.0)
    except BaseException:
        ready.put(("error", traceback.format_exc()))


def consume_then_wait(name: str, count: int, ready: Any, done: Any) -> None:
    """Reads ``count`` messages of shared stream ``name`` (the first half one at a time, the
    rest in batches), says ("ok", pid) on ``ready``, then stays attached until ``done`` is
    set (a live consumer process whose reader counts another process reads)."""
    import os

    try:
        with kaelix.Stream.open(name) as stream:
            consumer = stream.consumer()
            got = 0
            while got < count // 2:
                if consumer.poll(timeout=20.0) is None:
                    raise AssertionError("the stream ran dry")
                got += 1
            while got < count:
                batch = consumer.poll_batch(min(64, count - got), timeout=20.0)
                if not len(batch):
                    raise AssertionError("the stream ran dry")
                got += len(batch)
            ready.put(("ok", os.getpid()))
            done.wait(20.0)
            consumer.close()
    except BaseException:
        ready.put(("error", traceback.format_exc()))
