"""kaelix.Queue and kaelix.JoinableQueue: every extension beyond multiprocessing.Queue and the
guarantees of docs/queue.md, with real processes ("fork" and "spawn").

CPython's own queue tests run against these queues in tests/test_queue_cpython.py; this
module covers what they do not: object kinds (hypothesis for picklable values), the bytes
path, numpy arrays through pickle protocol 5's out-of-band buffers, items spilled to their own
segment, custom serializers, put_many/get_many, get_latest, maxsize and timeouts, close, the
feeder-error hook, JoinableQueue across processes, many producers and many consumers each
item delivered exactly once, dead peers (PeerGone), a segment scribbled over by a hostile
process (RingError), and the life of the segment's name.

Every wait is bounded (``JOIN_S``), so a broken queue fails a test instead of hanging the
run. No test asserts a speed: a timeout is only checked to have passed in full.
"""

from __future__ import annotations

import contextlib
import decimal
import fractions
import gc
import inspect
import json
import marshal
import multiprocessing
import os
import pickle
import queue as std_queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kaelix
import queue_workers as workers
from proc_helpers import Background, Children

# Python 3.12+ warns at every fork of a process with threads; these tests fork on purpose.
pytestmark = pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded:DeprecationWarning"
)

JOIN_S = 30.0
"""How long the parent waits for a child, a report or an item (a hang guard, not a speed)."""

SHM = Path("/dev/shm")
TESTS = Path(__file__).resolve().parent
PRODUCERS = CONSUMERS = 4


@pytest.fixture(params=["fork", "spawn"])
def context(request: pytest.FixtureRequest) -> BaseContext:
    return multiprocessing.get_context(request.param)


@pytest.fixture
def children(context: BaseContext) -> Iterator[Children]:
    with Children(context, JOIN_S) as started:
        yield started


@pytest.fixture
def forked() -> Iterator[Children]:
    """Children started with "fork", for tests where the start method is not the point."""
    with Children(multiprocessing.get_context("fork"), JOIN_S) as started:
        yield started


@pytest.fixture
def sweep() -> Iterator[list[str]]:
    """Names of queues other processes made: whatever of them is left in /dev/shm when the
    test ends (because it failed) is removed."""
    names: list[str] = []
    yield names
    for name in names:
        for entry in segments_of(name):
            with contextlib.suppress(FileNotFoundError):
                (SHM / entry).unlink()


def pipe(context: BaseContext) -> tuple[Connection, Connection]:
    """(parent's end, child's end) of a one-way pipe a child reports through."""
    receiver, sender = context.Pipe(duplex=False)
    return receiver, sender


def outcome(conn: Connection) -> Any:
    """A child's report; a child's failure becomes this test's failure."""
    assert conn.poll(JOIN_S), f"no report from the child within {JOIN_S} s"
    report = conn.recv()
    assert report[0] == "ok", f"the child failed:\n{report[1]}"
    return report[1]


def raw_report(conn: Connection) -> Any:
    assert conn.poll(JOIN_S), f"no report from the child within {JOIN_S} s"
    return conn.recv()


def segments_of(name: str) -> list[str]:
    """The queue's segment and its spilled items' segments that exist now."""
    return sorted(entry for entry in os.listdir(SHM) if entry.startswith(name))


def spills_of(queue: kaelix.Queue) -> list[str]:
    return [entry for entry in segments_of(queue._name) if entry != queue._name]


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + JOIN_S
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not after {JOIN_S} s"
        time.sleep(0.005)


def assert_same(got: Any, expected: Any) -> None:
    """Equal values of the same types (numpy arrays: same dtype, shape and elements)."""
    assert type(got) is type(expected), (type(got), type(expected))
    if isinstance(expected, np.ndarray):
        assert got.dtype == expected.dtype and got.shape == expected.shape
        assert np.array_equal(got, expected)
    elif isinstance(expected, (list, tuple)):
        assert len(got) == len(expected)
        for g, e in zip(got, expected, strict=True):
            assert_same(g, e)
    elif isinstance(expected, dict):
        assert list(got) == list(expected)
        for key in expected:
            assert_same(got[key], expected[key])
    else:
        assert got == expected


def assert_took_at_least(started: float, seconds: float) -> None:
    elapsed = time.monotonic() - started
    assert elapsed >= seconds, f"gave up after {elapsed:.3f} s, before its {seconds} s timeout"


# --------------------------------------------------------------------------------------------
# The interface the contract promises
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [kaelix.Queue, kaelix.JoinableQueue])
def test_constructor_signature_is_the_documented_one(cls: type[kaelix.Queue]) -> None:
    # docs/api.md: Queue(maxsize=0, *, capacity_bytes=1 << 22, serializer=pickle)
    parameters = inspect.signature(cls).parameters
    assert list(parameters) == ["maxsize", "capacity_bytes", "serializer"]
    assert parameters["maxsize"].default == 0
    assert parameters["capacity_bytes"].default == 1 << 22
    assert parameters["serializer"].default is pickle
    for keyword in ("capacity_bytes", "serializer"):
        assert parameters[keyword].kind is inspect.Parameter.KEYWORD_ONLY


def test_exceptions_are_the_standard_librarys() -> None:
    assert issubclass(kaelix.QueueFull, std_queue.Full)
    assert issubclass(kaelix.QueueEmpty, std_queue.Empty)
    assert issubclass(kaelix.PeerGone, BrokenPipeError)
    queue = kaelix.Queue(1)
    queue.put(1)
    with pytest.raises(kaelix.QueueFull):
        queue.put_nowait(2)
    assert queue.get_nowait() == 1
    with pytest.raises(kaelix.QueueEmpty):
        queue.get_nowait()


def test_serializer_without_dumps_and_loads_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="dumps"):
        kaelix.Queue(serializer=object())


# --------------------------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------------------------

PICKLABLE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.complex_numbers(allow_nan=False)
    | st.text()
    | st.binary()
    | st.decimals(allow_nan=False)
    | st.datetimes(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=6), inner, max_size=4)
        | st.frozensets(st.integers() | st.text(max_size=4), max_size=4)
    ),
    max_leaves=16,
)


def test_picklable_values_round_trip() -> None:
    queue = kaelix.Queue(capacity_bytes=1 << 16)

    @settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(values=st.lists(PICKLABLE, max_size=6))
    def round_trip(values: list[Any]) -> None:
        for value in values:
            queue.put(value)
        assert queue.qsize() == len(values)
        got = [queue.get_nowait() for _ in values]
        assert_same(got, values)
        if values:
            assert queue.put_many(values) == len(values)
            assert_same(queue.get_many(max_messages=len(values)), values)
        assert queue.empty()

    round_trip()


def test_bytes_round_trip_through_the_bytes_path() -> None:
    queue = kaelix.Queue(capacity_bytes=1 << 16)

    @settings(max_examples=80, deadline=None)
    @given(data=st.binary(max_size=40_000))
    def round_trip(data: bytes) -> None:
        queue.put_bytes(data)
        got = queue.get_bytes(timeout=JOIN_S)
        assert type(got) is bytes and got == data
        queue.put_bytes(bytearray(data))
        got = queue.get()  # get() of a put_bytes item returns the bytes object
        assert type(got) is bytes and got == data

    round_trip()


def test_bytes_path_accepts_any_bytes_like_and_skips_the_serializer() -> None:
    queue = kaelix.Queue(serializer=workers.JsonSerializer())
    queue.put_bytes(memoryview(b"abcdef")[1:4])
    queue.put_bytes(np.arange(4, dtype=np.uint8))
    assert queue.get() == b"bcd"
    assert queue.get_bytes() == bytes([0, 1, 2, 3])
    assert queue._serializer.dumped == 0


def test_get_bytes_of_a_put_item_is_its_serialized_form() -> None:
    queue = kaelix.Queue()
    value = {"a": (1, 2.5), "b": [None, "x"]}
    queue.put(value)
    assert pickle.loads(queue.get_bytes(timeout=JOIN_S)) == value
    queue = kaelix.Queue(serializer=marshal)
    queue.put(value)
    assert queue.get_bytes(timeout=JOIN_S) == marshal.dumps(value)


def test_get_bytes_of_a_large_item_is_its_serialized_form_too() -> None:
    # A pickle over 64 KiB is made with out-of-band buffers; what get_bytes hands back must
    # still be "its serialized bytes" (the contract): something pickle.loads turns back.
    queue = kaelix.Queue()
    value = {"array": np.arange(50_000, dtype=np.float64), "blob": b"b" * 100_000}
    queue.put(value)
    data = queue.get_bytes(timeout=JOIN_S)
    assert_same(pickle.loads(data), value)


def test_put_bytes_many_and_get_bytes_many() -> None:
    # The contract: "put_bytes_many / get_bytes_many likewise" (as put_many / get_many).
    queue = kaelix.Queue()
    assert queue.put_bytes_many([b"a", b"bc", bytearray(b"d"), b""]) == 4
    assert queue.get_bytes_many(max_messages=2) == [b"a", b"bc"]
    assert queue.get_bytes_many() == [b"d", b""]
    with pytest.raises(std_queue.Empty):
        queue.get_bytes_many(block=False)


KINDS: list[Any] = [
    None,
    True,
    0,
    -(2**100),
    3.25,
    complex(1, -2),
    "",
    "text — ünïcödé ✓",
    b"",
    b"\x00\xff" * 512,
    bytearray(b"mutable"),
    (1, (2, (3, ()))),
    [1, "two", [3.0]],
    {"k": {"nested": [1, 2]}, 2: None},
    OrderedDict(a=1, b=2),
    {1, 2, 3},
    frozenset({"x", "y"}),
    range(3, 30, 3),
    decimal.Decimal("1.10"),
    fractions.Fraction(3, 7),
    datetime(2024, 2, 29, 12, 0, tzinfo=timezone.utc),
    workers.Point(3, 4),
    [workers.Point(i, -i) for i in range(100)],
    np.arange(12, dtype=np.int32).reshape(3, 4),
    np.arange(100_000, dtype=np.float64),  # 800 KB: out-of-band, in the ring
    {"array": np.ones((300, 300)), "tag": "big dict"},
    b"s" * 200_000,  # a large bytes item, in the ring
    b"L" * 3_000_000,  # larger than a quarter of the ring: spilled
    "t" * 2_000_000,  # a large pickle, spilled
]


def test_many_kinds_of_object_through_a_child_and_back(
    children: Children, context: BaseContext
) -> None:
    inbox, outbox = kaelix.Queue(), kaelix.Queue()
    echo = children.start(workers.echo_main, inbox, outbox)
    for item in KINDS:
        inbox.put(item, timeout=JOIN_S)
        assert_same(outbox.get(timeout=JOIN_S), item)
    assert inbox.put_many(KINDS[:10], timeout=JOIN_S) == 10
    got: list[Any] = []
    while len(got) < 10:
        got.extend(outbox.get_many(max_messages=10, timeout=JOIN_S))
    assert_same(got, KINDS[:10])
    inbox.put(workers.STOP)
    children.join_ok(echo)
    assert spills_of(inbox) == spills_of(outbox) == []


def test_bytes_path_through_a_child_and_back(children: Children) -> None:
    sizes = [0, 1, 55, 56, 57, 4096, 70_000, 1_500_000]
    inbox, outbox = kaelix.Queue(), kaelix.Queue()
    echo = children.start(workers.echo_bytes_main, inbox, outbox, len(sizes))
    payloads = [bytes([size % 251]) * size for size in sizes]
    for payload in payloads:
        inbox.put_bytes(payload, timeout=JOIN_S)
    for payload in payloads:
        got = outbox.get(timeout=JOIN_S)
        assert type(got) is bytes and got == payload
    children.join_ok(echo)


# --------------------------------------------------------------------------------------------
# numpy arrays: pickle protocol 5, out-of-band buffers
# --------------------------------------------------------------------------------------------

ARRAYS: list[np.ndarray] = [
    np.arange(10),
    np.array(3.5),
    np.zeros((0, 3), dtype=np.int16),
    np.arange(20, dtype=np.float32).reshape(4, 5)[:, ::2],  # not contiguous
    np.array([(1, 2.0), (3, 4.0)], dtype=[("a", "i4"), ("b", "f8")]),
    np.arange(100_000, dtype=np.float64),  # 800 KB: out of band, in the ring
    np.asfortranarray(np.arange(120_000, dtype=np.int64).reshape(300, 400)),
    np.arange(2_500_000, dtype=np.float64),  # 20 MB: out of band, spilled
]


def test_numpy_arrays_round_trip_writable() -> None:
    queue = kaelix.Queue()
    for array in ARRAYS:
        queue.put(array)
        got = queue.get(timeout=JOIN_S)
        assert_same(got, array)
        assert got.flags.writeable
        assert got.flags.f_contiguous == array.flags.f_contiguous or array.ndim < 2
        if got.size:
            got.flat[0] = got.flat[-1]  # writable for real, not only flagged
    assert spills_of(queue) == []


def test_numpy_arrays_reach_a_child_writable(children: Children, context: BaseContext) -> None:
    queue = kaelix.Queue()
    receiver, sender = pipe(context)
    child = children.start(workers.check_arrays_main, queue, len(ARRAYS), sender)
    for array in ARRAYS:
        queue.put(array, timeout=JOIN_S)
    reported = outcome(receiver)
    children.join_ok(child)
    for array, (shape, dtype, total, writeable) in zip(ARRAYS, reported, strict=True):
        assert tuple(shape) == array.shape and dtype == str(array.dtype)
        if array.dtype.kind in "iuf":
            assert total == float(array.sum())
        assert writeable


# --------------------------------------------------------------------------------------------
# Items larger than a quarter of the ring: spilled to their own segment
# --------------------------------------------------------------------------------------------


def test_an_item_larger_than_a_quarter_of_the_ring_is_spilled_then_removed() -> None:
    queue = kaelix.Queue(capacity_bytes=1 << 16)
    small, large = b"x" * 1000, os.urandom(100_000)
    queue.put(small)
    assert spills_of(queue) == []
    queue.put(large)
    assert len(spills_of(queue)) == 1
    assert queue.qsize() == 2
    assert queue.get(timeout=JOIN_S) == small
    assert queue.get(timeout=JOIN_S) == large
    assert spills_of(queue) == []


def test_a_20_mb_item_goes_through_a_64_kib_queue(children: Children) -> None:
    queue = kaelix.Queue(capacity_bytes=1 << 16)
    inbox = kaelix.Queue(capacity_bytes=1 << 16)
    echo = children.start(workers.echo_main, inbox, queue)
    big_bytes = os.urandom(20 << 20)
    big_array = np.arange(20 << 17, dtype=np.float64)  # 20 MB
    inbox.put(big_bytes, timeout=JOIN_S)
    inbox.put(big_array, timeout=JOIN_S)
    inbox.put_bytes(big_bytes, timeout=JOIN_S)
    assert queue.get(timeout=JOIN_S) == big_bytes
    assert_same(queue.get(timeout=JOIN_S), big_array)
    assert queue.get_bytes(timeout=JOIN_S) == big_bytes
    inbox.put(workers.STOP)
    children.join_ok(echo)
    assert spills_of(queue) == spills_of(inbox) == []


def test_spilled_items_never_taken_are_removed_with_the_queue() -> None:
    queue = kaelix.Queue(capacity_bytes=1 << 16)
    name = queue._name
    for _ in range(3):
        queue.put(b"y" * 50_000)
    assert len(segments_of(name)) == 4
    del queue
    gc.collect()
    assert segments_of(name) == []


def test_spilled_items_that_get_many_and_get_latest_take_leave_no_segment() -> None:
    queue = kaelix.Queue(capacity_bytes=1 << 16)
    items = [bytes([i]) * 40_000 for i in range(4)]
    queue.put_many(items)
    assert queue.get_many(timeout=JOIN_S) == items
    assert spills_of(queue) == []
    queue.put_many(items)
    assert queue.get_latest(timeout=JOIN_S) == items[-1]
    assert queue.dropped == 3
    # The three dropped items were taken from the queue: their segments must go with them,
    # not wait for the queue to be collected.
    assert spills_of(queue) == []


# --------------------------------------------------------------------------------------------
# Serializers
# --------------------------------------------------------------------------------------------


def test_a_serializer_object_is_used_for_every_item(
    children: Children, context: BaseContext
) -> None:
    serializer = workers.JsonSerializer()
    inbox = kaelix.Queue(serializer=serializer)
    outbox = kaelix.Queue(serializer=workers.JsonSerializer())
    echo = children.start(workers.echo_main, inbox, outbox)
    values: list[Any] = [{"a": [1, 2]}, [1.5, None, True], "x" * 300_000, 7]
    for value in values:
        inbox.put(value, timeout=JOIN_S)
    inbox.put((1, 2), timeout=JOIN_S)  # JSON has no tuples: it comes back a list
    assert [outbox.get(timeout=JOIN_S) for _ in values] == values
    assert outbox.get(timeout=JOIN_S) == [1, 2]
    assert serializer.dumped == len(values) + 1
    inbox.put(workers.STOP)
    children.join_ok(echo)
    inbox.put({"k": "v"})
    assert inbox.get_bytes(timeout=JOIN_S) == json.dumps({"k": "v"}).encode()


def test_a_serializer_may_return_any_bytes_like() -> None:
    # The contract: dumps(obj) -> bytes-like.
    for wrap in (bytearray, memoryview):
        queue = kaelix.Queue(serializer=workers.WrappingSerializer(wrap))
        for value in ([1, "a"], "x" * 100_000):
            queue.put(value)
            assert queue.get(timeout=JOIN_S) == value
        queue.put_many([1, 2])
        assert queue.get_many(timeout=JOIN_S) == [1, 2]


def test_a_module_as_serializer(children: Children, context: BaseContext) -> None:
    inbox, outbox = kaelix.Queue(serializer=marshal), kaelix.Queue(serializer=marshal)
    echo = children.start(workers.echo_main, inbox, outbox)
    values: list[Any] = [(1, 2.5, "x", b"y", {1: 2}), list(range(100_000)), frozenset({3})]
    for value in values:
        inbox.put(value, timeout=JOIN_S)
    for value in values:
        assert_same(outbox.get(timeout=JOIN_S), value)
    inbox.put(workers.STOP)
    children.join_ok(echo)
    inbox.put((1, "a"))
    assert inbox.get_bytes(timeout=JOIN_S) == marshal.dumps((1, "a"))


# --------------------------------------------------------------------------------------------
# put_many / get_many / get_latest
# --------------------------------------------------------------------------------------------


def test_put_many_and_get_many_keep_order_and_max_messages() -> None:
    queue = kaelix.Queue()
    assert queue.put_many(range(10)) == 10
    assert queue.put_many(iter(["a", "b"])) == 2
    assert queue.put_many([]) == 0
    assert queue.get_many(max_messages=3) == [0, 1, 2]
    assert queue.get_many(max_messages=1) == [3]
    assert queue.get_many() == [4, 5, 6, 7, 8, 9, "a", "b"]
    with pytest.raises(std_queue.Empty):
        queue.get_many(block=False)
    started = time.monotonic()
    with pytest.raises(std_queue.Empty):
        queue.get_many(timeout=0.2)
    assert_took_at_least(started, 0.2)
    with pytest.raises(ValueError, match="max_messages"):
        queue.get_many(max_messages=0)


def test_put_many_into_a_full_queue_says_how_many_went_in() -> None:
    queue = kaelix.Queue(maxsize=5)
    with pytest.raises(std_queue.Full) as caught:
        queue.put_many(range(8), block=False)
    assert caught.value.sent == 5
    assert queue.get_many() == [0, 1, 2, 3, 4]
    queue.put_many(range(3))
    started = time.monotonic()
    with pytest.raises(std_queue.Full) as caught:
        queue.put_many(["a", "b", "c"], timeout=0.2)
    assert_took_at_least(started, 0.2)
    assert caught.value.sent == 2
    assert queue.get_many() == [0, 1, 2, "a", "b"]


def test_get_latest_returns_the_newest_and_counts_the_dropped() -> None:
    queue = kaelix.Queue()
    queue.put_many(range(10))
    assert queue.get_latest() == 9
    assert queue.dropped == 9
    assert queue.empty()
    queue.put("only")
    assert queue.get_latest() == "only"
    assert queue.dropped == 9
    with pytest.raises(std_queue.Empty):
        queue.get_latest(block=False)
    started = time.monotonic()
    with pytest.raises(std_queue.Empty):
        queue.get_latest(timeout=0.2)
    assert_took_at_least(started, 0.2)


def test_get_latest_waits_for_a_child_to_put(forked: Children) -> None:
    queue = kaelix.Queue()
    ready = multiprocessing.get_context("fork").Event()
    forked.start(workers.put_then_idle_main, queue, 3, ready)
    assert ready.wait(JOIN_S)
    assert queue.get_latest(timeout=JOIN_S) == 2
    assert queue.dropped == 2


# --------------------------------------------------------------------------------------------
# Sizes, maxsize, timeouts
# --------------------------------------------------------------------------------------------


def test_qsize_empty_full_without_maxsize() -> None:
    queue = kaelix.Queue(capacity_bytes=4096)
    assert (queue.qsize(), queue.empty(), queue.full(), queue.maxsize) == (0, True, False, 0)
    for _ in range(64):  # 64 bytes an item (56 of frame header, a 5-byte pickle, padding)
        queue.put_nowait(1)
    with pytest.raises(std_queue.Full):
        queue.put_nowait(1)
    assert queue.qsize() == 64
    assert queue.full() and not queue.empty()
    assert queue.get_nowait() == 1
    assert not queue.full()
    assert queue.qsize() == 63


@pytest.mark.parametrize("maxsize", [0, -1])
def test_maxsize_zero_or_less_means_no_item_limit(maxsize: int) -> None:
    queue = kaelix.Queue(maxsize)
    assert queue.maxsize == 0
    queue.put_many(range(5000), block=False)
    assert queue.qsize() == 5000 and not queue.full()


def test_qsize_empty_full_with_maxsize() -> None:
    queue = kaelix.Queue(maxsize=3)
    assert queue.maxsize == 3
    for count in range(1, 4):
        queue.put(count)
        assert queue.qsize() == count
        assert not queue.empty()
    assert queue.full()
    queue.get()
    assert not queue.full() and queue.qsize() == 2


def test_maxsize_put_raises_full_after_its_timeout() -> None:
    queue = kaelix.Queue(maxsize=2)
    queue.put(1)
    queue.put(2)
    for call in (
        lambda: queue.put(3, block=False),
        lambda: queue.put(3, False, 5.0),  # without block the timeout is ignored
        lambda: queue.put_nowait(3),
        lambda: queue.put(3, timeout=-1),  # a negative timeout is 0
    ):
        with pytest.raises(std_queue.Full):
            call()
    started = time.monotonic()
    with pytest.raises(std_queue.Full):
        queue.put(3, timeout=0.25)
    assert_took_at_least(started, 0.25)
    assert queue.qsize() == 2


def test_get_raises_empty_after_its_timeout_on_the_monotonic_clock() -> None:
    queue = kaelix.Queue()
    started = time.monotonic()
    with pytest.raises(std_queue.Empty):
        queue.get(timeout=0.25)
    assert_took_at_least(started, 0.25)
    for call in (
        lambda: queue.get(False),
        lambda: queue.get(False, 5.0),
        lambda: queue.get_nowait(),
        lambda: queue.get(timeout=-1),
    ):
        with pytest.raises(std_queue.Empty):
            call()


def test_a_put_blocked_on_maxsize_goes_in_when_a_child_takes(
    children: Children, context: BaseContext
) -> None:
    queue = kaelix.Queue(maxsize=2)
    go = context.Event()
    receiver, sender = pipe(context)
    child = children.start(workers.take_when_told_main, queue, go, 3, sender)
    queue.put("a")
    queue.put("b")
    threading.Timer(0.1, go.set).start()
    queue.put("c", timeout=JOIN_S)  # blocks until the child takes "a"
    assert outcome(receiver) == ["a", "b", "c"]
    children.join_ok(child)


# --------------------------------------------------------------------------------------------
# close, join_thread, the context manager
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [kaelix.Queue, kaelix.JoinableQueue])
def test_use_after_close_raises_value_error(cls: type[kaelix.Queue]) -> None:
    queue = cls()
    queue.put("kept")
    queue.close()
    calls: list[Callable[[], Any]] = [
        lambda: queue.put("foo"),
        lambda: queue.put_nowait("foo"),
        lambda: queue.get(),
        lambda: queue.get_nowait(),
        lambda: queue.put_many(["foo"]),
        lambda: queue.get_many(),
        lambda: queue.put_bytes(b"foo"),
        lambda: queue.get_bytes(),
        lambda: queue.get_latest(),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="is closed"):
            call()
    queue.close()  # twice is harmless
    queue.join_thread()
    queue.cancel_join_thread()


def test_join_thread_before_close_is_an_assertion_error() -> None:
    queue = kaelix.Queue()
    with pytest.raises(AssertionError):
        queue.join_thread()
    queue.cancel_join_thread()
    queue.close()
    queue.join_thread()


def test_the_queue_is_a_context_manager_that_closes() -> None:
    with kaelix.Queue() as queue:
        queue.put(1)
        assert queue.get() == 1
    with pytest.raises(ValueError, match="is closed"):
        queue.put(2)


def test_items_put_before_close_reach_a_child(children: Children, context: BaseContext) -> None:
    queue = kaelix.Queue()
    go = context.Event()
    receiver, sender = pipe(context)
    # Started before the close: a forked child would otherwise inherit a closed object.
    child = children.start(workers.take_when_told_main, queue, go, 3, sender)
    queue.put_many(["a", "b", "c"])
    queue.close()  # this process puts no more; what it put stays in the queue
    go.set()
    assert outcome(receiver) == ["a", "b", "c"]
    children.join_ok(child)


# --------------------------------------------------------------------------------------------
# JoinableQueue
# --------------------------------------------------------------------------------------------


def test_join_waits_for_task_done_in_child_processes(
    children: Children, context: BaseContext
) -> None:
    queue = kaelix.JoinableQueue()
    ends = [pipe(context) for _ in range(2)]
    started = [children.start(workers.work_and_mark_done_main, queue, end[1]) for end in ends]
    queue.put_many(range(150))
    for item in range(150, 200):
        queue.put(item)
    joiner = Background(queue.join)
    joiner.value(JOIN_S)  # every item was taken and marked done
    for _ in started:
        queue.put(workers.STOP)
    Background(queue.join).value(JOIN_S)
    got = [item for end in ends for item in outcome(end[0])]
    children.join_ok(*started)
    assert sorted(got) == list(range(200))


def test_join_blocks_until_the_last_task_done() -> None:
    queue = kaelix.JoinableQueue()
    queue.join()  # nothing put: returns at once
    queue.put(1)
    queue.put_bytes(b"2")
    joiner = Background(queue.join)
    assert not joiner.finished_within(0.2)
    assert queue.get() == 1
    queue.task_done()
    assert not joiner.finished_within(0.1)
    assert queue.get() == b"2"
    queue.task_done()
    joiner.value(JOIN_S)


def test_task_done_too_many_times_is_a_value_error() -> None:
    queue = kaelix.JoinableQueue()
    with pytest.raises(ValueError, match=r"task_done\(\) called too many times"):
        queue.task_done()
    queue.put_many(["a", "b"])
    queue.put_bytes(b"c")
    assert queue.get_many() == ["a", "b", b"c"]
    for _ in range(3):
        queue.task_done()
    with pytest.raises(ValueError, match=r"task_done\(\) called too many times"):
        queue.task_done()
    queue.join()


# --------------------------------------------------------------------------------------------
# Items that cannot be serialized: the feeder-error hook
# --------------------------------------------------------------------------------------------


def test_unserializable_item_goes_to_the_feeder_error_hook() -> None:
    errors: list[tuple[BaseException, Any]] = []

    class SafeQueue(kaelix.Queue):
        @staticmethod
        def _on_queue_feeder_error(e: BaseException, obj: Any) -> None:
            errors.append((e, obj))

    queue = SafeQueue(maxsize=1)
    bad = workers.Unpicklable()
    assert queue.put(bad) is None
    assert len(errors) == 1
    assert isinstance(errors[0][0], AttributeError) and errors[0][1] is bad
    assert queue.qsize() == 0  # dropped, and it took no place under the maxsize
    queue.put(True)
    assert queue.get(timeout=JOIN_S) is True
    queue.put(lambda: 0)  # pickle refuses lambdas with its own error
    assert len(errors) == 2 and isinstance(errors[1][0], pickle.PicklingError | AttributeError)
    large_bad = [np.zeros(100_000), bad]
    queue.put(large_bad)
    assert len(errors) == 3 and errors[2][1] is large_bad
    assert queue.empty()
    queue.put("still working")
    assert queue.get(timeout=JOIN_S) == "still working"


def test_unserializable_items_of_put_many_go_to_the_hook_the_others_go_in() -> None:
    errors: list[Any] = []

    class SafeQueue(kaelix.Queue):
        @staticmethod
        def _on_queue_feeder_error(e: BaseException, obj: Any) -> None:
            errors.append(obj)

    queue = SafeQueue()
    bad = workers.Unpicklable()
    queue.put_many([1, bad, 2])
    assert errors == [bad]
    assert queue.get_many() == [1, 2]


def test_a_serializer_error_goes_to_the_hook_too() -> None:
    errors: list[Any] = []

    class SafeQueue(kaelix.Queue):
        @staticmethod
        def _on_queue_feeder_error(e: BaseException, obj: Any) -> None:
            errors.append((type(e), obj))

    queue = SafeQueue(serializer=workers.JsonSerializer())
    queue.put({1, 2})  # JSON has no sets
    assert errors == [(TypeError, {1, 2})]
    queue.put([1])
    assert queue.get(timeout=JOIN_S) == [1]


@pytest.mark.parametrize("subclassed", [False, True])
def test_the_default_hook_prints_the_traceback_to_stderr(
    capsys: pytest.CaptureFixture[str], subclassed: bool
) -> None:
    cls = type("PlainSubclass", (kaelix.Queue,), {}) if subclassed else kaelix.Queue
    queue = cls()
    queue.put(workers.Unpicklable())
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert "AttributeError: Unpicklable refuses to be pickled" in err
    queue.put(1)
    assert queue.get(timeout=JOIN_S) == 1


# --------------------------------------------------------------------------------------------
# Many producers, many consumers: each item exactly once
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("maxsize", [0, 100])
def test_four_producers_four_consumers_each_item_exactly_once(
    children: Children, context: BaseContext, maxsize: int
) -> None:
    count = 4000
    # A small ring (and an item limit), so producers wait for room and consumers for items.
    queue = kaelix.Queue(maxsize, capacity_bytes=1 << 14)
    ends = [pipe(context) for _ in range(CONSUMERS)]
    consumers = [
        children.start(workers.consume_main, queue, index % 2 == 1, ends[index][1])
        for index in range(CONSUMERS)
    ]
    producers = [
        children.start(workers.produce_main, queue, producer, count, 1 + 49 * (producer % 2))
        for producer in range(PRODUCERS)
    ]
    children.join_ok(*producers)
    for _ in consumers:
        queue.put(workers.STOP, timeout=JOIN_S)
    taken = [outcome(end[0]) for end in ends]
    children.join_ok(*consumers)
    for got in taken:
        assert workers.out_of_order(got) == []  # per producer, in order within a consumer
    everything = Counter(item for got in taken for item in got)
    expected = {(producer, sequence) for producer in range(PRODUCERS) for sequence in range(count)}
    assert set(everything) == expected  # nothing lost, nothing made up
    assert [item for item, times in everything.items() if times > 1] == []  # none twice
    assert queue.empty()


def test_threads_of_one_process_share_a_queue_each_item_exactly_once() -> None:
    count = 3000
    queue = kaelix.Queue(100, capacity_bytes=1 << 14)
    ends = [multiprocessing.Pipe(duplex=False) for _ in range(CONSUMERS)]
    consumers = [
        Background(workers.consume_main, queue, index % 2 == 1, ends[index][1])
        for index in range(CONSUMERS)
    ]
    producers = [
        Background(workers.produce_main, queue, producer, count, 1 + 49 * (producer % 2))
        for producer in range(PRODUCERS)
    ]
    for producer in producers:
        producer.value(JOIN_S)
    for _ in consumers:
        queue.put(workers.STOP, timeout=JOIN_S)
    taken = [outcome(end[0]) for end in ends]
    for consumer in consumers:
        consumer.value(JOIN_S)
    for got in taken:
        assert workers.out_of_order(got) == []
    everything = Counter(item for got in taken for item in got)
    assert set(everything) == {(p, s) for p in range(PRODUCERS) for s in range(count)}
    assert max(everything.values()) == 1


@pytest.mark.parametrize("start_method", ["fork", "spawn", "forkserver"])
def test_a_queue_through_a_pools_initializer(start_method: str) -> None:
    context = multiprocessing.get_context(start_method)
    queue = kaelix.Queue()
    tasks, count = 4, 500
    with context.Pool(2, initializer=workers.pool_init, initargs=(queue,)) as pool:
        pool.starmap_async(
            workers.pool_put_range, [(task, count) for task in range(tasks)], chunksize=1
        ).get(JOIN_S)
        got = [queue.get(timeout=JOIN_S) for _ in range(tasks * count)]
        assert queue.empty()
        assert workers.out_of_order(got) == []
        assert sorted(got) == [(task, seq) for task in range(tasks) for seq in range(count)]
        queue.put_many(range(100))
        taken = pool.map_async(workers.pool_take, [25] * 4, chunksize=1).get(JOIN_S)
        assert sorted(item for part in taken for item in part) == list(range(100))
        for part in taken:
            assert part == sorted(part)


# --------------------------------------------------------------------------------------------
# Peers that die
# --------------------------------------------------------------------------------------------


def kill_later(process: Any, delay: float) -> threading.Timer:
    """SIGKILLs process after delay, from a timer thread (while this one is blocked)."""
    killer = threading.Timer(delay, os.kill, (process.pid, signal.SIGKILL))
    killer.start()
    return killer


def test_a_get_blocked_when_the_producer_is_killed_raises_peer_gone(
    children: Children, context: BaseContext
) -> None:
    queue = kaelix.Queue()  # this process never puts: the child is the only producer
    ready = context.Event()
    producer = children.start(workers.put_then_idle_main, queue, 5, ready)
    assert ready.wait(JOIN_S)
    assert [queue.get(timeout=JOIN_S) for _ in range(5)] == list(range(5))
    killer = kill_later(producer, 0.2)
    try:
        with pytest.raises(kaelix.PeerGone) as caught:
            queue.get(timeout=JOIN_S)
    finally:
        killer.join()
    assert caught.value.role == "producer"
    assert caught.value.pid in (producer.pid, None)
    assert isinstance(caught.value, BrokenPipeError)


def test_a_killed_producers_items_are_still_taken_then_peer_gone(
    children: Children, context: BaseContext
) -> None:
    queue = kaelix.Queue()
    ready = context.Event()
    producer = children.start(workers.put_then_idle_main, queue, 50, ready)
    assert ready.wait(JOIN_S)
    children.kill(producer)
    assert queue.get_many(max_messages=10, timeout=JOIN_S) == list(range(10))
    assert [queue.get(timeout=JOIN_S) for _ in range(40)] == list(range(10, 50))
    with pytest.raises(kaelix.PeerGone) as caught:
        queue.get(timeout=JOIN_S)
    assert caught.value.role == "producer"
    with pytest.raises(kaelix.PeerGone):
        queue.get_many(timeout=JOIN_S)


@pytest.mark.parametrize("full_by", ["maxsize", "bytes"])
def test_a_put_blocked_when_the_only_consumer_is_killed_raises_peer_gone(
    children: Children, context: BaseContext, full_by: str
) -> None:
    # This process never gets: the child is the only consumer.
    queue = kaelix.Queue(4) if full_by == "maxsize" else kaelix.Queue(capacity_bytes=4096)
    queue.put_many([0, 1])
    ready = context.Event()
    consumer = children.start(workers.get_then_idle_main, queue, 2, ready)
    assert ready.wait(JOIN_S)
    with pytest.raises(std_queue.Full):
        for _ in range(1000):
            queue.put_nowait("filler")
    killer = kill_later(consumer, 0.2)
    try:
        with pytest.raises(kaelix.PeerGone) as caught:
            queue.put("blocked", timeout=JOIN_S)
    finally:
        killer.join()
    assert caught.value.role == "consumer"
    assert caught.value.pid in (consumer.pid, None)


# docs/queue.md: "A process that exits normally detaches cleanly and is not counted as dead":
# then a wait ends with its timeout (queue.Empty / queue.Full), as with the standard
# library, not with PeerGone.


def test_a_producer_that_exits_normally_is_not_taken_for_dead(
    children: Children, context: BaseContext
) -> None:
    queue = kaelix.Queue()  # this process only gets from it
    children.join_ok(children.start(workers.produce_main, queue, 0, 2, 1))
    assert [queue.get(timeout=JOIN_S) for _ in range(2)] == [(0, 0), (0, 1)]
    started = time.monotonic()
    with pytest.raises(std_queue.Empty):
        queue.get(timeout=0.3)
    assert_took_at_least(started, 0.3)


def test_a_consumer_that_exits_normally_is_not_taken_for_dead(
    children: Children, context: BaseContext
) -> None:
    queue = kaelix.Queue(2)  # this process only puts to it
    queue.put("a")
    receiver, sender = pipe(context)
    children.join_ok(children.start(workers.take_some_main, queue, 1, sender))
    assert raw_report(receiver) == ("ok", ["a"])
    queue.put_many(["b", "c"])
    started = time.monotonic()
    with pytest.raises(std_queue.Full):
        queue.put("d", timeout=0.3)
    assert_took_at_least(started, 0.3)


def test_a_consumer_killed_mid_run_leaves_the_queue_to_the_others(
    children: Children, context: BaseContext
) -> None:
    cap = 200_000
    queue = kaelix.Queue(maxsize=256)  # paces this producer to the consumers
    record, taken = context.RawArray("q", cap), context.RawValue("q", 0)
    progress = context.RawValue("q", 0)
    receiver, sender = pipe(context)
    doomed = children.start(workers.take_and_record_main, queue, record, taken)
    survivor = children.start(workers.consume_main, queue, False, sender, progress)
    deadline = time.monotonic() + JOIN_S
    item = 0
    while taken.value < 500 or progress.value < 500:  # both are taking
        assert time.monotonic() < deadline and item < cap, (taken.value, progress.value)
        # In bursts, so that items wait for both consumers (with one item at a time, the
        # consumer that happens to be spinning takes each: a queue promises no fairness),
        # and paced, so that the first consumer to start does not take them all (and fill
        # its record) before the other one (a spawned process) has started.
        queue.put_many(range(item, item + 64), timeout=JOIN_S)
        item += 64
        time.sleep(0.001)
    children.kill(doomed)  # most likely in the middle of a get
    killed_at = item
    total = killed_at + 5000
    for item in range(killed_at, total):
        queue.put(item, timeout=JOIN_S)
    queue.put(workers.STOP, timeout=JOIN_S)
    survived = outcome(receiver)
    children.join_ok(survivor)
    by_doomed = list(record[: taken.value])
    assert survived == sorted(set(survived))  # one producer: in order, none twice
    assert set(survived).isdisjoint(by_doomed)
    assert set(range(killed_at, total)) <= set(survived)
    missing = set(range(total)) - set(survived) - set(by_doomed)
    # At most the one item the doomed consumer took and had no time to record.
    assert len(missing) <= 1, sorted(missing)[:10]
    # Whatever the doomed consumer held, every place under the maxsize came back.
    assert queue.empty()
    assert queue.put_many(range(256), block=False) == 256
    assert queue.full()


# --------------------------------------------------------------------------------------------
# Hostile memory
# --------------------------------------------------------------------------------------------

MARKER = b"kaelix-queue-test-marker/" * 6


def scribble(forked: Children, queue: kaelix.Queue, where: str) -> None:
    """Has another process write garbage over the first item's frame in the segment."""
    path = SHM / queue._name
    at = path.read_bytes().index(MARKER)
    header = at - kaelix.HEADER_SIZE
    rng = random.Random(where)
    if where == "payload":
        offset, garbage = at, bytes(b ^ 0x5A for b in MARKER)
    elif where == "one payload bit":
        offset, garbage = at + 7, bytes([MARKER[7] ^ 0x01])
    elif where == "header ones":
        offset, garbage = header, b"\xff" * kaelix.HEADER_SIZE
    elif where == "header zeros":
        offset, garbage = header, bytes(kaelix.HEADER_SIZE)
    elif where == "header random":
        offset, garbage = header, rng.randbytes(kaelix.HEADER_SIZE)
    else:  # the whole data area, from the first frame on
        offset, garbage = header, rng.randbytes(path.stat().st_size - header)
    forked.join_ok(forked.start(workers.scribble_main, str(path), offset, garbage))


@pytest.mark.parametrize(
    ("where", "method"),
    [
        ("payload", "get"),
        ("one payload bit", "get"),
        ("header ones", "get"),
        ("header zeros", "get"),
        ("header random", "get"),
        ("data area", "get"),
        ("payload", "get_many"),
        ("payload", "get_bytes"),
        ("payload", "get_latest"),
        ("header ones", "get_many"),
    ],
)
def test_a_scribbled_segment_raises_ring_error_never_crashes(
    forked: Children, where: str, method: str
) -> None:
    queue = kaelix.Queue(capacity_bytes=1 << 16)
    queue.put_bytes(MARKER)
    queue.put("second")
    scribble(forked, queue, where)
    # The take runs in a child: if it crashed, only the child would die, and say so.
    receiver, sender = pipe(multiprocessing.get_context("fork"))
    child = forked.start(workers.corrupt_take_main, queue, method, sender)
    report = raw_report(receiver)
    forked.join_ok(child)
    assert report[:2] == ("RingError", "corrupt"), report


# --------------------------------------------------------------------------------------------
# The segment's name
# --------------------------------------------------------------------------------------------


def test_the_name_is_removed_when_the_queue_is_collected() -> None:
    queue = kaelix.JoinableQueue()
    name = queue._name
    assert (SHM / name).exists()
    assert oct((SHM / name).stat().st_mode & 0o777) == oct(0o600)
    del queue
    gc.collect()
    assert not (SHM / name).exists()


def test_the_name_is_removed_when_the_process_exits(sweep: list[str]) -> None:
    code = "import kaelix\nq = kaelix.Queue()\nq.put(b'x' * 2_000_000)\nprint(q._name)\n"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=JOIN_S
    )
    assert done.returncode == 0, done.stderr
    name = done.stdout.strip()
    sweep.append(name)
    assert name.startswith("kxq.")
    assert segments_of(name) == []
    assert "leaked" not in done.stderr, done.stderr  # the resource tracker had nothing to do


def test_the_name_is_removed_when_the_creator_is_killed(sweep: list[str]) -> None:
    # multiprocessing's resource tracker (here the killed process's own) removes it.
    code = (
        "import os, signal, kaelix\nq = kaelix.Queue()\nq.put(1)\n"
        "print(q._name, flush=True)\nos.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=JOIN_S
    )
    assert done.returncode == -signal.SIGKILL
    name = done.stdout.strip()
    sweep.append(name)
    assert name.startswith("kxq.")
    wait_until(lambda: not (SHM / name).exists(), f"{name} still in /dev/shm")


def test_spilled_items_are_removed_when_the_creator_is_killed(sweep: list[str]) -> None:
    # docs/queue.md: a spilled item's segment "is removed when the item is taken, or with the
    # queue"; here the queue goes through the resource tracker.
    code = (
        "import os, signal, kaelix\nq = kaelix.Queue(capacity_bytes=1 << 16)\n"
        "q.put(b'z' * 100_000)\nprint(q._name, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=JOIN_S
    )
    assert done.returncode == -signal.SIGKILL
    name = done.stdout.strip()
    sweep.append(name)
    wait_until(lambda: not (SHM / name).exists(), f"{name} still in /dev/shm")
    assert segments_of(name) == []


@pytest.mark.parametrize("keep", [False, True], ids=["local", "global"])
def test_the_name_is_removed_when_a_child_that_made_it_ends(
    children: Children, context: BaseContext, keep: bool, sweep: list[str]
) -> None:
    receiver, sender = pipe(context)
    child = children.start(workers.make_queue_and_exit_main, sender, keep)
    assert receiver.poll(JOIN_S)
    name = receiver.recv()
    sweep.append(name)
    children.join_ok(child)
    assert segments_of(name) == []


@pytest.mark.parametrize("waiting", ["nothing", "a spilled item"])
def test_an_attached_child_keeps_working_after_the_creators_queue_is_gone(
    children: Children, context: BaseContext, waiting: str
) -> None:
    queue = kaelix.Queue(capacity_bytes=1 << 16)
    name = queue._name
    attached, go = context.Event(), context.Event()
    receiver, sender = pipe(context)
    big = os.urandom(100_000) if waiting == "a spilled item" else None
    child = children.start(workers.attached_pair_main, queue, attached, go, 500, sender, big)
    assert attached.wait(JOIN_S)
    if big is not None:
        queue.put(big)  # waits in the queue, in a segment of its own
    del queue
    gc.collect()
    assert not (SHM / name).exists()
    go.set()
    assert outcome(receiver) == list(range(500))
    children.join_ok(child)
    assert segments_of(name) == []


# --------------------------------------------------------------------------------------------
# tests/test_queue_cpython.py without the interpreter's test package
# --------------------------------------------------------------------------------------------


def test_the_cpython_suite_skips_with_its_reason_without_the_test_package() -> None:
    code = (
        "import sys, pytest\n"
        "sys.modules['test._test_multiprocessing'] = None  # as if it were not shipped\n"
        "sys.exit(pytest.main([sys.argv[1], '-q', '-rs', '-p', 'no:cacheprovider']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(TESTS / "test_queue_cpython.py")],
        capture_output=True,
        text=True,
        timeout=JOIN_S,
        cwd=TESTS.parent,
    )
    # A module skipped whole collects no test: pytest says so with exit code 5.
    assert done.returncode == pytest.ExitCode.NO_TESTS_COLLECTED, done.stdout + done.stderr
    assert "1 skipped" in done.stdout
    assert "test._test_multiprocessing" in done.stdout
    assert "passed" not in done.stdout
