"""Helpers shared by the stream tests, and the entry points of their child processes.

Every message a test sends carries, in its payload, the tag of the thread or process that
sent it and the index of the send (``payload_for``), and the payload's filler is derived from
both, so a receiver can check each message's content on its own. Senders record a ``Row``
per accepted send: (producer_id, partition, sequence, tag, index), the first three from the
stream, the last two from the payload. Receivers record the same from what they got, and
``check_rows`` compares the two message by message: nothing unexpected, no payload under a
wrong (producer, partition, sequence), per (producer, partition) strictly increasing
sequences (so no duplicate and no reordering), and, when asked, nothing lost.

The child entry points live here, not in a test module, so that a child started with the
"spawn" start method can import them (multiprocessing hands the parent's ``sys.path``, which
holds ``tests/`` under pytest, to the child). Children work against a deadline and report
through a queue; a child that fails reports its traceback instead of hanging the test.

This module may import ``kaelix``, numpy, the standard library and ``proc_helpers`` (whose
``Background`` and ``JOIN_S`` the stream tests take from here), never a test module.
"""

from __future__ import annotations

import contextlib
import os
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from uuid import uuid4

import numpy as np
import numpy.typing as npt

import kaelix
from proc_helpers import JOIN_S, Background

DEADLINE_S = 20.0
"""How long anything waits for anything before giving up (far beyond a healthy run)."""

WAKE_BOUND_S = 5.0
"""A liveness bound for a wake-up (a healthy one takes microseconds); never a speed."""

SHM = "/dev/shm/"

Row = tuple[int, int, int, int, int]
"""(producer_id, partition, sequence, tag, index) of one message."""


# --------------------------------------------------------------------------------------------
# Payloads and rows
# --------------------------------------------------------------------------------------------


def payload_for(tag: int, index: int) -> bytes:
    """The payload of send ``index`` of sender ``tag``: it names both, then a filler whose
    byte and length vary with them, so that messages are of many sizes."""
    head = b"t%d/i%d|" % (tag, index)
    return head + bytes([(index * 7 + tag) % 251]) * ((index * 13) % 61)


def parse_payload(payload: bytes) -> tuple[int, int]:
    """(tag, index) of a payload made by ``payload_for``; AssertionError if it is not one."""
    head, separator, _ = bytes(payload).partition(b"|")
    tag_text, marker, index_text = head[1:].partition(b"/i")
    if not (separator and marker and head.startswith(b"t")):
        raise AssertionError(f"not a test payload: {bytes(payload)[:60]!r}")
    tag, index = int(tag_text), int(index_text)
    if payload != payload_for(tag, index):
        raise AssertionError(f"payload of t{tag}/i{index} is damaged: {bytes(payload)[:60]!r}")
    return tag, index


def row_of(message: kaelix.Message) -> Row:
    tag, index = parse_payload(message.payload)
    return (message.producer_id, message.partition, message.sequence, tag, index)


def rows_of(messages: Iterable[kaelix.Message]) -> list[Row]:
    return [row_of(message) for message in messages]


def to_array(rows: Sequence[Row]) -> npt.NDArray[np.int64]:
    """Rows as a compact (n, 5) array: cheap to send through a multiprocessing queue."""
    return np.array(rows, dtype=np.int64).reshape(-1, 5)


def from_array(array: npt.NDArray[np.int64]) -> list[Row]:
    return [tuple(row) for row in array.tolist()]  # type: ignore[misc]


# --------------------------------------------------------------------------------------------
# Streams, threads and draining
# --------------------------------------------------------------------------------------------


def unique_name() -> str:
    return f"kx-test-{os.getpid()}-{uuid4().hex[:8]}"


class Streams:
    """Makes streams for one test (with ``defaults`` for options not given) and closes every
    one of them when it ends; for shared ones, also removes any segment a broken close left
    behind under their name."""

    def __init__(self, **defaults: Any) -> None:
        self.defaults = defaults
        self.made: list[Any] = []

    def __call__(self, **options: Any) -> Any:
        return self.track(kaelix.Stream(unique_name(), **{**self.defaults, **options}))

    def track(self, stream: Any) -> Any:
        self.made.append(stream)
        return stream

    def __enter__(self) -> Streams:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.finish()

    def finish(self) -> None:
        try:
            for stream in reversed(self.made):
                if not stream.closed:
                    stream.close()
        finally:
            remove_segments([stream.name for stream in self.made])


def segments_of(name: str) -> list[str]:
    """The /dev/shm entries whose names hold stream ``name`` (test names are unique, so
    these are the stream's, whatever scheme names them; a long name may be hashed)."""
    return [entry for entry in os.listdir(SHM) if name in entry]


def remove_segments(names: Iterable[str]) -> None:
    for name in names:
        for entry in segments_of(name):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(SHM + entry)


def run_threads(targets: Sequence[Callable[[], Any]]) -> list[Any]:
    """Runs each target in a thread of its own, all at once; returns their results once all
    finished (bounded) and re-raises the first error."""
    running = [Background(target) for target in targets]
    return [job.value(JOIN_S) for job in running]


def drain(consumer: Any) -> list[kaelix.Message]:
    """Everything waiting for ``consumer`` now, one poll at a time, without waiting."""
    messages = []
    while (message := consumer.poll(timeout=0)) is not None:
        messages.append(message)
    return messages


def drain_rows(consumer: Any) -> list[Row]:
    return rows_of(drain(consumer))


# --------------------------------------------------------------------------------------------
# Checking
# --------------------------------------------------------------------------------------------


def check_sequences_dense(sent: Iterable[Row]) -> None:
    """Sequences handed out per (producer, partition), in send order, are 0, 1, 2, ..."""
    following: dict[tuple[int, int], int] = {}
    for position, row in enumerate(sent):
        scope = (row[0], row[1])
        expected = following.get(scope, 0)
        if row[2] != expected:
            raise AssertionError(
                f"send {position} of producer {row[0]} to partition {row[1]} got sequence "
                f"{row[2]}, expected {expected}"
            )
        following[scope] = expected + 1


def check_rows(sent: Iterable[Row], received: Sequence[Row], *, complete: bool) -> None:
    """Compares what one consumer (or one group) received with what was sent.

    Each received message must have been sent, under the same (producer, partition,
    sequence) and with the same payload; per (producer, partition) its sequences must rise
    strictly (no duplicate, no reordering). With ``complete``, every sent message must have
    arrived."""
    expected: dict[tuple[int, int, int], tuple[int, int]] = {}
    for row in sent:
        key = (row[0], row[1], row[2])
        if key in expected:
            raise AssertionError(f"two sends returned (producer, partition, sequence) {key}")
        expected[key] = (row[3], row[4])
    last: dict[tuple[int, int], int] = {}
    for position, row in enumerate(received):
        key = (row[0], row[1], row[2])
        if key not in expected:
            raise AssertionError(f"received message {position} {row} was never sent")
        if expected[key] != (row[3], row[4]):
            raise AssertionError(
                f"received message {position}: {key} carries the payload of "
                f"t{row[3]}/i{row[4]}, but that send was t{expected[key][0]}/i{expected[key][1]}"
            )
        scope = (row[0], row[1])
        previous = last.get(scope, -1)
        if row[2] <= previous:
            kind = "a duplicate" if row[2] == previous else "duplicated or reordered"
            raise AssertionError(
                f"received message {position}: producer {row[0]} partition {row[1]} sequence "
                f"{row[2]} after sequence {previous} ({kind})"
            )
        last[scope] = row[2]
    if complete and len(received) != len(expected):
        arrived = {(row[0], row[1], row[2]) for row in received}
        missing = sorted(set(expected) - arrived)
        raise AssertionError(
            f"{len(missing)} of {len(expected)} sent messages never arrived; first {missing[:5]}"
        )


def delivery_columns(rows: Sequence[Row]) -> dict[str, npt.NDArray[Any]]:
    """The columns ``kaelix.check_delivery`` takes, for rows whose payloads were checked."""
    array = to_array(rows)
    checksums = [kaelix.crc32c(payload_for(tag, index)) for tag, index in array[:, 3:].tolist()]
    return {
        "producer_id": array[:, 0].astype(np.uint64),
        "partition": array[:, 1].astype(np.uint32),
        "sequence": array[:, 2].astype(np.uint64),
        "checksum": np.array(checksums, dtype=np.uint32),
    }


def delivery_report(sent: Sequence[Row], received: Sequence[Row]) -> kaelix.DeliveryReport:
    return kaelix.check_delivery(delivery_columns(sent), delivery_columns(received))


# --------------------------------------------------------------------------------------------
# Producing and consuming
# --------------------------------------------------------------------------------------------


def send_one(
    producer: Any,
    payload: bytes,
    *,
    retry_full: bool,
    on_full: Callable[[], None] | None = None,
    **options: Any,
) -> Any:
    """``producer.send``; with ``retry_full``, a BufferFull is retried (yielding the CPU in
    between) until the deadline, calling ``on_full()`` at each refusal."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        try:
            return producer.send(payload, **options)
        except kaelix.BufferFull:
            if not retry_full or time.monotonic() > deadline:
                raise
            if on_full is not None:
                on_full()
            time.sleep(0)


def produce(
    producer: Any,
    tag: int,
    count: int,
    *,
    retry_full: bool = False,
    on_full: Callable[[], None] | None = None,
    first: int = 0,
    key_of: Callable[[int], Any] | None = None,
    **options: Any,
) -> list[Row]:
    """Sends ``payload_for(tag, i)`` for i in first..first+count-1 and returns the rows of
    the accepted sends, in send order. ``options`` go to every send (a timeout defaults to
    the deadline); ``key_of(i)`` gives send i's key; ``retry_full`` and ``on_full`` are
    ``send_one``'s."""
    options.setdefault("timeout", DEADLINE_S)
    producer_id = producer.producer_id
    rows: list[Row] = []
    for index in range(first, first + count):
        if key_of is not None:
            options["key"] = key_of(index)
        partition, sequence = send_one(
            producer, payload_for(tag, index), retry_full=retry_full, on_full=on_full, **options
        )
        rows.append((producer_id, partition, sequence, tag, index))
    return rows


def receive(consumer: Any, *, max_messages: int = 1024) -> tuple[list[Row], bool]:
    """Polls batches until the stream is closed and drained. Returns the rows and whether it
    ended that way (True) rather than by waiting ``DEADLINE_S`` for nothing (False)."""
    rows: list[Row] = []
    while True:
        started = time.monotonic()
        batch = consumer.poll_batch(max_messages=max_messages, timeout=DEADLINE_S)
        if len(batch) == 0:
            return rows, time.monotonic() - started < DEADLINE_S
        rows.extend(rows_of(batch))


def receive_count(consumer: Any, count: int) -> list[Row]:
    """Polls until ``count`` messages arrived; AssertionError if one poll waits in vain."""
    rows: list[Row] = []
    while len(rows) < count:
        batch = consumer.poll_batch(max_messages=count - len(rows), timeout=DEADLINE_S)
        if len(batch) == 0:
            raise AssertionError(f"only {len(rows)} of {count} messages arrived")
        rows.extend(rows_of(batch))
    return rows


def attributes_of(stream: Any) -> dict[str, Any]:
    return {
        "name": stream.name,
        "partitions": stream.partitions,
        "capacity": stream.capacity,
        "backpressure": stream.backpressure,
        "shared": stream.shared,
    }


# --------------------------------------------------------------------------------------------
# Child processes
# --------------------------------------------------------------------------------------------


def open_stream(stream_or_name: Any) -> Any:
    """A stream handed to the child by name (opened here) or pickled (opened on unpickling)."""
    if isinstance(stream_or_name, str):
        return kaelix.Stream.open(stream_or_name)
    return stream_or_name


def producer_main(
    stream_or_name: Any, tag: int, count: int, results: Any, options: dict[str, Any]
) -> None:
    """Child: send ``count`` messages from one producer (BufferFull is retried), leave the
    stream through its context manager (a detach), then report ("ok", tag, rows,
    attributes) or ("error", tag, traceback)."""
    try:
        with open_stream(stream_or_name) as stream:
            attributes = attributes_of(stream)
            with stream.producer() as producer:
                retry_full = stream.backpressure == "error"
                rows = produce(producer, tag, count, retry_full=retry_full, **options)
        results.put(("ok", tag, to_array(rows), attributes))
    except BaseException:
        results.put(("error", tag, traceback.format_exc(), None))


def consumer_main(
    stream_or_name: Any, tag: int, ready: Any, results: Any, options: dict[str, Any]
) -> None:
    """Child: one consumer (``options`` go to ``stream.consumer``), ready once it exists,
    then read until the stream is closed and drained. Reports ("ok", tag, rows, skipped,
    ended_by_close, attributes) or ("error", tag, traceback, ...)."""
    try:
        with open_stream(stream_or_name) as stream:
            attributes = attributes_of(stream)
            with stream.consumer(**options) as consumer:
                ready.set()
                rows, ended_by_close = receive(consumer)
                skipped = consumer.skipped
        results.put(("ok", tag, to_array(rows), skipped, ended_by_close, attributes))
    except BaseException:
        results.put(("error", tag, traceback.format_exc(), 0, False, None))


HASH_PROBE = "kaelix-hash-probe"


def partitions_main(
    name: str, keys: list[bytes | str], counts: list[int], results: Any, tag: int
) -> None:
    """Child: report this interpreter's PYTHONHASHSEED and hash of a str (to show the seeds
    differ), ``partition_for`` of every key for every partition count, and the partition of
    an actual keyed send of each key into the shared stream ``name``."""
    try:
        computed = {n: [kaelix.partition_for(key, n) for key in keys] for n in counts}
        with kaelix.Stream.open(name) as stream, stream.producer() as producer:
            sent = [
                producer.send(payload_for(tag, index), key=key, timeout=DEADLINE_S)[0]
                for index, key in enumerate(keys)
            ]
        seed = os.environ.get("PYTHONHASHSEED")
        results.put(("ok", tag, seed, hash(HASH_PROBE), computed, sent))
    except BaseException:
        results.put(("error", tag, traceback.format_exc(), None, None, None))
