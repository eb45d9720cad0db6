"""The entry points of the child processes of tests/test_queue.py, and the helpers they share.

They live here, not in the test module, so that a child started with "spawn" or
"forkserver" can import them (multiprocessing hands the parent's ``sys.path``, which holds
``tests/`` under pytest, to the child). Every wait in a child is bounded by ``DEADLINE_S``, so
a broken queue fails a test instead of hanging the run. Items of the exactly-once tests are
``(producer, sequence)`` tuples.

This module may import ``kaelix``, numpy, the standard library and ``proc_helpers``, never a
test module.
"""

from __future__ import annotations

import json
import os
import pickle
import time
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from typing import Any

import kaelix

DEADLINE_S = 20.0
"""How long anything in a child waits for anything (far beyond a healthy run)."""

STOP = "stop"
"""The sentinel that tells a consumer of the exactly-once tests to finish."""


class JsonSerializer:
    """A serializer object (not a module): JSON text in UTF-8. ``loads`` takes any bytes-like
    object, as the queue hands it a view of its buffer."""

    def __init__(self) -> None:
        self.dumped = 0

    def dumps(self, obj: Any) -> bytes:
        self.dumped += 1
        return json.dumps(obj).encode()

    def loads(self, data: Any) -> Any:
        return json.loads(bytes(data))


class WrappingSerializer:
    """pickle, but dumps returns another bytes-like type (bytearray, memoryview)."""

    def __init__(self, wrap: Callable[[bytes], Any]) -> None:
        self.wrap = wrap

    def dumps(self, obj: Any) -> Any:
        return self.wrap(pickle.dumps(obj))

    def loads(self, data: Any) -> Any:
        return pickle.loads(data)


class Point:
    """A class of this module, so that a child can unpickle its instances."""

    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)

    def __hash__(self) -> int:
        return hash((self.x, self.y))


class Unpicklable:
    """Refuses to be pickled, as the object in CPython's feeder tests does."""

    def __reduce__(self) -> Any:
        raise AttributeError("Unpicklable refuses to be pickled")


def report(conn: Connection, value: Any) -> None:
    """Sends a child's outcome to the parent (a Pipe end sends at once: nothing is left in
    a feeder thread when the child dies or exits)."""
    conn.send(value)
    conn.close()


def failure() -> tuple[str, str]:
    return ("error", traceback.format_exc())


# --------------------------------------------------------------------------------------------
# Echo: every kind of object through a child and back
# --------------------------------------------------------------------------------------------


def echo_main(inbox: kaelix.Queue, outbox: kaelix.Queue) -> None:
    """Gets items from inbox and puts each back on outbox, until the STOP sentinel."""
    while True:
        item = inbox.get(timeout=DEADLINE_S)
        if isinstance(item, str) and item == STOP:
            return
        outbox.put(item, timeout=DEADLINE_S)


def echo_bytes_main(inbox: kaelix.Queue, outbox: kaelix.Queue, count: int) -> None:
    """Moves count items from inbox to outbox as their bytes (get_bytes / put_bytes)."""
    for _ in range(count):
        outbox.put_bytes(inbox.get_bytes(timeout=DEADLINE_S), timeout=DEADLINE_S)


def check_arrays_main(queue: kaelix.Queue, count: int, conn: Connection) -> None:
    """Gets count numpy arrays, writes into each (they must be writable) and reports
    (shape, dtype, sum before, writeable) for each."""
    try:
        out = []
        for _ in range(count):
            array = queue.get(timeout=DEADLINE_S)
            writeable = bool(array.flags.writeable)
            total = float(array.sum()) if array.dtype.kind in "iuf" else None
            if array.size and writeable:
                array.flat[0] = array.flat[0]  # writing must not raise
            out.append((array.shape, str(array.dtype), total, writeable))
        report(conn, ("ok", out))
    except BaseException:
        report(conn, failure())


# --------------------------------------------------------------------------------------------
# Many producers, many consumers
# --------------------------------------------------------------------------------------------


def produce_main(queue: kaelix.Queue, producer: int, count: int, batch: int) -> None:
    """Puts (producer, 0) ... (producer, count - 1): one at a time when batch is 1, else with
    put_many in batches of that size."""
    if batch == 1:
        for sequence in range(count):
            queue.put((producer, sequence), timeout=DEADLINE_S)
        return
    for first in range(0, count, batch):
        items = [(producer, s) for s in range(first, min(count, first + batch))]
        assert queue.put_many(items, timeout=DEADLINE_S) == len(items)


def consume_main(
    queue: kaelix.Queue, batched: bool, conn: Connection, progress: Any = None
) -> None:
    """Takes items (with get, or get_many when batched) until a STOP sentinel and reports
    them in the order taken; counts them in progress.value as it goes, if given. A batch that
    holds more than one STOP puts the others back: they belong to other consumers."""
    try:
        got: list[Any] = []
        while True:
            if batched:
                items = queue.get_many(max_messages=64, timeout=DEADLINE_S)
            else:
                items = [queue.get(timeout=DEADLINE_S)]
            if STOP in items:
                first = items.index(STOP)
                got.extend(items[:first])
                for extra in items[first + 1 :]:
                    assert extra == STOP, f"{extra!r} after a STOP"
                    queue.put(STOP)
                break
            got.extend(items)
            if progress is not None:
                progress.value = len(got)
        report(conn, ("ok", got))
    except BaseException:
        report(conn, failure())


def out_of_order(items: Sequence[tuple[int, int]]) -> list[tuple[tuple[int, int], int]]:
    """Items of one consumer whose sequence is not above the last one it took from the same
    producer, with that last sequence."""
    last: dict[int, int] = {}
    bad = []
    for producer, sequence in items:
        if sequence <= last.get(producer, -1):
            bad.append(((producer, sequence), last[producer]))
        last[producer] = sequence
    return bad


# A pool worker's queue, set by its initializer.
pool_queue: kaelix.Queue | None = None


def pool_init(queue: kaelix.Queue) -> None:
    global pool_queue
    pool_queue = queue


def pool_put_range(task: int, count: int) -> int:
    """Puts (task, 0) ... (task, count - 1) on the pool's queue; returns the worker's pid."""
    assert pool_queue is not None
    for sequence in range(count):
        pool_queue.put((task, sequence), timeout=DEADLINE_S)
    return os.getpid()


def pool_take(count: int) -> list[Any]:
    """Takes count items from the pool's queue."""
    assert pool_queue is not None
    return [pool_queue.get(timeout=DEADLINE_S) for _ in range(count)]


# --------------------------------------------------------------------------------------------
# Peers that die, joins, closes
# --------------------------------------------------------------------------------------------


def put_then_idle_main(queue: kaelix.Queue, count: int, ready: Event) -> None:
    """Puts 0 ... count - 1 (so it is a registered producer), then idles until killed."""
    for sequence in range(count):
        queue.put(sequence, timeout=DEADLINE_S)
    ready.set()
    time.sleep(DEADLINE_S * 3)


def get_then_idle_main(queue: kaelix.Queue, count: int, ready: Event) -> None:
    """Takes count items (so it is a registered consumer), then idles until killed."""
    for _ in range(count):
        queue.get(timeout=DEADLINE_S)
    ready.set()
    time.sleep(DEADLINE_S * 3)


def take_and_record_main(queue: kaelix.Queue, record: Any, taken: Any) -> None:
    """Takes items with get for ever, writing each into record[taken] and then counting it
    in taken.value: killed between the two, one item taken is not recorded."""
    n = 0
    while True:
        record[n] = queue.get(timeout=DEADLINE_S * 3)
        n += 1
        taken.value = n


def work_and_mark_done_main(queue: kaelix.JoinableQueue, conn: Connection) -> None:
    """Takes items until a STOP, calling task_done() for each (the STOP too); reports them."""
    try:
        got = []
        while True:
            item = queue.get(timeout=DEADLINE_S)
            queue.task_done()
            if item == STOP:
                break
            got.append(item)
        report(conn, ("ok", got))
    except BaseException:
        report(conn, failure())


def take_when_told_main(queue: kaelix.Queue, go: Event, count: int, conn: Connection) -> None:
    """Waits for go, then takes count items and reports them."""
    try:
        assert go.wait(DEADLINE_S)
        report(conn, ("ok", [queue.get(timeout=DEADLINE_S) for _ in range(count)]))
    except BaseException:
        report(conn, failure())


def take_some_main(queue: kaelix.Queue, count: int, conn: Connection) -> None:
    """Takes count items and reports them (or the exception's type name and reason)."""
    try:
        report(conn, ("ok", [queue.get(timeout=DEADLINE_S) for _ in range(count)]))
    except BaseException as error:
        report(conn, (type(error).__name__, getattr(error, "reason", None), str(error)))


def corrupt_take_main(queue: kaelix.Queue, method: str, conn: Connection) -> None:
    """Takes one item with the named method (get, get_many, get_bytes, get_latest) from a
    segment another process scribbled over; reports what happened."""
    try:
        value = getattr(queue, method)(timeout=5.0)
        report(conn, ("returned", repr(value)[:200]))
    except BaseException as error:
        report(conn, (type(error).__name__, getattr(error, "reason", None), str(error)))


def scribble_main(path: str, offset: int, garbage: bytes) -> None:
    """The hostile process: writes garbage into a queue's segment at offset."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.pwrite(fd, garbage, offset)
    finally:
        os.close(fd)


def attached_pair_main(
    queue: kaelix.Queue,
    attached: Event,
    go: Event,
    count: int,
    conn: Connection,
    waiting: bytes | None,
) -> None:
    """Uses the queue once (attached), waits for go (the parent drops its queue meanwhile,
    after putting waiting, if not None), takes waiting, puts a spilled item and takes it
    back, then puts count items and takes them back; reports them."""
    try:
        queue.put(-1, timeout=DEADLINE_S)
        assert queue.get(timeout=DEADLINE_S) == -1
        attached.set()
        assert go.wait(DEADLINE_S)
        if waiting is not None:
            assert queue.get(timeout=DEADLINE_S) == waiting
        big = os.urandom(200_000)
        queue.put(big, timeout=DEADLINE_S)
        assert queue.get(timeout=DEADLINE_S) == big
        for item in range(count):
            queue.put(item, timeout=DEADLINE_S)
        report(conn, ("ok", [queue.get(timeout=DEADLINE_S) for _ in range(count)]))
    except BaseException:
        report(conn, failure())


# Queues a child keeps until it exits.
kept_queues: list[kaelix.Queue] = []


def make_queue_and_exit_main(conn: Connection, keep: bool) -> None:
    """Makes a queue, reports its name and returns: with keep, the queue stays referenced
    from a module global until the process exits; without, it goes with this frame."""
    queue = kaelix.Queue()
    queue.put(b"w" * 2_000_000)  # spilled: its segment must go too
    if keep:
        kept_queues.append(queue)
    conn.send(queue._name)
    conn.close()
