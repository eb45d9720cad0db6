"""The ring suite: `kaelix.Ring` in one process and `kaelix.SharedRing` between two
processes, each beside the queues a user would pick instead: ``queue.Queue``,
``queue.SimpleQueue`` and ``collections.deque`` in one process; ``multiprocessing.Queue``
and ``faster_fifo.Queue`` between processes.

Every contender moves the same bytes: kaelix frames (``kaelix.encode(Message(payload))``,
56-byte header plus the payload), which kaelix copies into and out of its ring and the peers
hand over as ``bytes`` objects. ``nbytes`` counts frame bytes.

Cases:

- one push+pop pair at a time (64 B), in one process;
- batches of 1,024 frames (64 B and 4 KiB), in one process: ``push_batch(MessageBatch)``
  then ``pop_batch()``;
- one producer process to one consumer process (64 B), one message per call and batched,
  timed by the consumer from its first receipt to its last (`kaelix.bench._procs`);
- one-way latency between those processes at a fixed offered rate (100 k msg/s), measured
  from each message's scheduled send time, for kaelix busy-waiting (``wait="spin"``) and
  with its default ``wait="sleep"``, and for the peers; and again at 10 k msg/s, where the
  default wait's short spin runs out between messages and it sleeps on its futex.

Imports the public kaelix API only; the worker processes live in `kaelix.bench._procs`,
which imports multiprocessing and faster_fifo when a factory starts them. Never import numba
here.
"""

from __future__ import annotations

import collections
import functools
import itertools
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import kaelix
from kaelix import Ring
from kaelix.bench._hdrlog import encode_latencies
from kaelix.bench._model import Bar, Case, Contender, Suite, SuiteConfig, Workload
from kaelix.bench._procs import ChannelKind, Form, Frames, Wait, make_frames, open_pair
from kaelix.bench._reference import MEMCPY_MEMORY
from kaelix.bench.suites._options import (
    capacity_for,
    message_count,
    payload_size,
    round_up,
    size_label,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

KIB = 1024
SMALL = 64
LARGE = 4 * KIB


@dataclass(frozen=True)
class RingSizes:
    """How much each case moves.

    ``pairs_per_call``: push+pop pairs per timed call in the one-at-a-time case (a plain
    Python loop, so the per-call overhead of the timing loop is spread out).
    ``batch_frames``: frames per batch in the batched cases, in and across processes.
    ``cross_messages``: messages per trial between processes (rounded up to whole batches
    in the batched case).
    ``latency_messages``: messages per latency trial, sent at ``latency_rate`` per second;
    the idle-rate case sends at ``idle_rate`` for as long (proportionally fewer messages);
    the high-rate case (``high_rate``, full mode only) sends as many as at ``latency_rate``;
    the threads case sends as many as the idle-rate case, at ``idle_rate``.
    ``ring_capacity``: bytes of the shared ring (and of faster-fifo's buffer) between
    processes.
    """

    pairs_per_call: int = 100
    batch_frames: int = 1024
    cross_messages: int = 200_000
    latency_messages: int = 20_000
    latency_rate: int = 100_000
    idle_rate: int = 10_000
    high_rate: int = 1_000_000
    ring_capacity: int = 1 << 20


QUICK_SIZES = RingSizes()
FULL_SIZES = RingSizes(cross_messages=1_000_000, latency_messages=50_000)


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(f"sanity check failed: {what}")


def frames(payload_size: int, count: int) -> list[bytes]:
    """``count`` distinct frames (sequences 0, 1, ...) with a ``payload_size``-byte payload;
    the same frames the cross-process workers send."""
    return make_frames(Frames(payload_size, count))


# ------------------------------------------------------------ in one process, one at a time


def _pairs(
    put: Callable[[Any], object], get: Callable[[], object], frame: bytes, pairs: int
) -> Workload:
    """The workload of every one-at-a-time contender: ``pairs`` times put the frame, then
    get it back, in a plain loop."""
    put(frame)
    _expect(get() == frame, "a put frame comes back from get")

    def call() -> None:
        for _ in itertools.repeat(None, pairs):
            put(frame)
            get()

    return Workload(call, messages=pairs, nbytes=pairs * len(frame))


def _kaelix_pairs(payload: int, sizes: RingSizes) -> Workload:
    ring = kaelix.Ring(64 * KIB)
    (frame,) = frames(payload, 1)
    workload = _pairs(ring.push, ring.pop, frame, sizes.pairs_per_call)
    _expect(len(ring) == 0 and ring.push(frame) and ring.pop() == frame, "push then pop")
    return workload


def _queue_pairs(payload: int, sizes: RingSizes) -> Workload:
    channel: queue.Queue[bytes] = queue.Queue()
    (frame,) = frames(payload, 1)
    return _pairs(channel.put_nowait, channel.get_nowait, frame, sizes.pairs_per_call)


def _simple_queue_pairs(payload: int, sizes: RingSizes) -> Workload:
    channel: queue.SimpleQueue[bytes] = queue.SimpleQueue()
    (frame,) = frames(payload, 1)
    return _pairs(channel.put_nowait, channel.get_nowait, frame, sizes.pairs_per_call)


def _deque_pairs(payload: int, sizes: RingSizes) -> Workload:
    channel: collections.deque[bytes] = collections.deque()
    (frame,) = frames(payload, 1)
    return _pairs(channel.append, channel.popleft, frame, sizes.pairs_per_call)


def _pair_contenders(payload: int, sizes: RingSizes) -> tuple[Contender, ...]:
    return (
        Contender(
            "kaelix",
            lambda: _kaelix_pairs(payload, sizes),
            role="kaelix",
            note="Ring(64 KiB): push(frame) then pop(); each push checks the frame's CRC32C, "
            "each pop returns a new bytes object",
        ),
        Contender(
            "queue.Queue",
            lambda: _queue_pairs(payload, sizes),
            note="put_nowait(frame) then get_nowait(); hands over a reference",
        ),
        Contender(
            "queue.SimpleQueue",
            lambda: _simple_queue_pairs(payload, sizes),
            note="put_nowait(frame) then get_nowait(); hands over a reference",
        ),
        Contender(
            "collections.deque",
            lambda: _deque_pairs(payload, sizes),
            note="append(frame) then popleft(); hands over a reference (no blocking get)",
        ),
    )


# ----------------------------------------------------------------- in one process, batched


def _kaelix_batch(payload_size: int, sizes: RingSizes) -> Workload:
    batch = kaelix.MessageBatch.from_bytes(b"".join(frames(payload_size, sizes.batch_frames)))
    capacity = max(4 * KIB, 2 * batch.nbytes)
    ring = kaelix.Ring(capacity)
    _expect(ring.push_batch(batch) == len(batch), "the whole batch fits in the ring")
    _expect(ring.pop_batch() == batch, "pop_batch returns the frames pushed")
    push_batch, pop_batch = ring.push_batch, ring.pop_batch

    def call() -> object:
        push_batch(batch)
        return pop_batch()

    return Workload(call, messages=len(batch), nbytes=batch.nbytes)


def _deque_batch(payload_size: int, sizes: RingSizes) -> Workload:
    sent = frames(payload_size, sizes.batch_frames)
    channel: collections.deque[bytes] = collections.deque()
    extend, popleft, count = channel.extend, channel.popleft, len(sent)

    def call() -> list[bytes]:
        extend(sent)
        return [popleft() for _ in itertools.repeat(None, count)]

    _expect(call() == sent and not channel, "extend then popleft returns the frames")
    return Workload(call, messages=count, nbytes=sum(map(len, sent)))


def _queue_list_batch(payload_size: int, sizes: RingSizes) -> Workload:
    sent = frames(payload_size, sizes.batch_frames)
    channel: queue.Queue[list[bytes]] = queue.Queue()
    put, get = channel.put_nowait, channel.get_nowait

    def call() -> list[bytes]:
        put(sent)
        return get()

    _expect(call() is sent, "get returns the list put")
    return Workload(call, messages=len(sent), nbytes=sum(map(len, sent)))


def _batch_contenders(payload_size: int, sizes: RingSizes) -> tuple[Contender, ...]:
    return (
        Contender(
            "kaelix",
            lambda: _kaelix_batch(payload_size, sizes),
            role="kaelix",
            note="Ring(2 batches): push_batch(MessageBatch) then pop_batch(); two copies of "
            "the frame bytes, pop_batch checks every frame again and builds the columns",
        ),
        Contender(
            "collections.deque",
            lambda: _deque_batch(payload_size, sizes),
            note="batches: extend(frames) then popleft() per frame into a list",
        ),
        Contender(
            "queue.Queue (one list)",
            lambda: _queue_list_batch(payload_size, sizes),
            role="reference",
            note="put_nowait(list of frames) then get_nowait(): hands over one reference, "
            "no frame is touched; reference only",
        ),
    )


# ------------------------------------------------------------------ between two processes


def _cross_capacity(payload: int, sizes: RingSizes) -> int:
    """The shared ring's (and faster-fifo's) capacity: ``sizes.ring_capacity``, or more
    when a batch of ``payload``-byte frames would not fit in it twice."""
    return capacity_for(sizes.ring_capacity, sizes.batch_frames * (kaelix.HEADER_SIZE + payload))


def _capacity_label(capacity: int) -> str:
    return f"{capacity // (1 << 20)} MiB" if capacity >= 1 << 20 else f"{capacity // KIB} KiB"


def _cross_throughput(
    kind: ChannelKind, form: Form, messages: int, payload: int, sizes: RingSizes
) -> Workload:
    count = sizes.batch_frames if form == "batch" else 1
    pair = open_pair(kind, Frames(payload, count), capacity=_cross_capacity(payload, sizes))
    frame_size = len(pair.expected[0])
    return Workload(
        functools.partial(pair.throughput, messages, form),
        messages=messages,
        nbytes=messages * frame_size,
        timer="call",
        close=pair.close,
    )


def _cross_latency(
    kind: ChannelKind, wait: Wait, messages: int, rate: int, payload: int, sizes: RingSizes
) -> Workload:
    capacity = _cross_capacity(payload, sizes)
    pair = open_pair(kind, Frames(payload, messages), capacity=capacity, wait=wait)
    period_ns = round(1e9 / rate)
    return Workload(
        functools.partial(pair.latency, messages, period_ns),
        messages=messages,
        nbytes=messages * len(pair.expected[0]),
        timer="latency",
        close=pair.close,
        encode_hdr=encode_latencies,
    )


def _thread_latency_trial(
    put: Callable[[bytes], object], get: Callable[[], object], frame: bytes, n: int, period_ns: int
) -> npt.NDArray[np.int64]:
    """One latency trial between two threads of this process: the calling thread sends
    ``n`` frames paced to one per ``period_ns`` (it sleeps between sends, which gives the
    consumer thread the GIL), a consumer thread blocked in ``get`` stamps each receipt. A
    message's latency is its receipt time minus the time its ``put`` was called. Neither
    channel ever makes a send wait (both hold more than a trial), so the send time is the
    right start: there is no coordinated omission to correct, and the producer's own
    oversleeping (timer slack) is not charged to the channel."""
    import numpy as np

    sent = np.zeros(n, dtype=np.int64)
    received = np.zeros(n, dtype=np.int64)
    clock = time.perf_counter_ns

    def consume() -> None:
        for i in range(n):
            get()
            received[i] = clock()

    consumer = threading.Thread(target=consume, name="kaelix-bench-latency", daemon=True)
    consumer.start()
    t0 = clock() + 5_000_000
    for i in range(n):
        left = t0 + i * period_ns - clock()
        if left > 0:
            time.sleep(left / 1e9)
        sent[i] = clock()
        put(frame)
    consumer.join(60.0)
    if consumer.is_alive():
        raise RuntimeError("the consumer thread did not receive every message within 60 s")
    return received - sent


def _thread_latency(kind: str, messages: int, rate: int, payload: int) -> Workload:
    frame = frames(payload, 1)[0]
    if kind == "kaelix":
        ring = Ring(1 << 20)
        put: Callable[[bytes], object] = ring.put
        get: Callable[[], object] = ring.get
    else:
        channel: queue.Queue[bytes] = queue.Queue()
        put, get = channel.put, channel.get
    return Workload(
        functools.partial(_thread_latency_trial, put, get, frame, messages, round(1e9 / rate)),
        messages=messages,
        nbytes=messages * len(frame),
        timer="latency",
        encode_hdr=encode_latencies,
    )


_MP_NOTE = "multiprocessing.Queue (spawn context, unbounded): put/get pickle each item"
_FF_NOTE = "faster_fifo.Queue({}), frames sent as they are (dumps returns the bytes)"


def _throughput_contenders(
    form: Form, messages: int, payload: int, sizes: RingSizes
) -> tuple[Contender, ...]:
    batched = form == "batch"
    room = _capacity_label(_cross_capacity(payload, sizes))

    def factory(kind: ChannelKind) -> Callable[[], Workload]:
        return lambda: _cross_throughput(kind, form, messages, payload, sizes)

    return (
        Contender(
            "kaelix",
            factory("kaelix"),
            role="kaelix",
            note=f"SharedRing({room}), wait='sleep' (the default): "
            + (
                "put_batch(MessageBatch) / get_batch()"
                if batched
                else "put(frame) / get() per message"
            ),
        ),
        Contender(
            "multiprocessing.Queue",
            factory("multiprocessing"),
            note=_MP_NOTE
            + ("; batches: one list of frames per put" if batched else "; one frame per put"),
        ),
        Contender(
            "faster-fifo",
            factory("faster_fifo"),
            requires=("faster_fifo",),
            note=_FF_NOTE.format(room)
            + ("; batches: put_many(list) / get_many()" if batched else "; put(frame) / get()"),
        ),
    )


def _thread_latency_contenders(messages: int, rate: int, payload: int) -> tuple[Contender, ...]:
    return (
        Contender(
            "kaelix",
            lambda: _thread_latency("kaelix", messages, rate, payload),
            role="kaelix",
            note="Ring(1 MiB): put() from the producer thread, get() in the consumer thread "
            "(it waits without the GIL: a short spin, then a futex)",
        ),
        Contender(
            "queue.Queue",
            lambda: _thread_latency("queue", messages, rate, payload),
            note="unbounded: put() / get() (a Condition: a lock the consumer sleeps on)",
        ),
    )


def _latency_contenders(
    messages: int, rate: int, payload: int, sizes: RingSizes, *, default_first: bool
) -> tuple[Contender, ...]:
    """The latency contenders; the first kaelix one is what bars and ratios use."""
    room = _capacity_label(_cross_capacity(payload, sizes))

    def factory(kind: ChannelKind, wait: Wait) -> Callable[[], Workload]:
        return lambda: _cross_latency(kind, wait, messages, rate, payload, sizes)

    spin = Contender(
        "kaelix (spin)",
        factory("kaelix", "spin"),
        role="kaelix",
        note=f"SharedRing({room}) attached with wait='spin': the consumer busy-waits in get()",
    )
    sleep = Contender(
        "kaelix (sleep)",
        factory("kaelix", "sleep"),
        role="kaelix",
        note=f"SharedRing({room}) with the default wait='sleep': a short spin, then a futex",
    )
    return (
        *((sleep, spin) if default_first else (spin, sleep)),
        Contender(
            "multiprocessing.Queue",
            factory("multiprocessing", "sleep"),
            note=_MP_NOTE + "; its feeder thread needs the producer's GIL",
        ),
        Contender(
            "faster-fifo",
            factory("faster_fifo", "sleep"),
            requires=("faster_fifo",),
            note=_FF_NOTE.format(room),
        ),
        Contender(
            "machine floor (no channel)",
            factory("clock", "spin"),
            role="reference",
            note="no channel: the same paced producer records how late it made each send, "
            "the consumer busy-waits for each scheduled time and records how late it saw it; "
            "a message's figure is the later of the two, the tail this machine puts under "
            "any channel (preemption, interrupts, the hypervisor)",
        ),
    )


# ----------------------------------------------------------------------------------- suite


def _at_most_ns(text: str, ns: float) -> Bar:
    return Bar(text, "max_ns_per_message", ns)


def _faster(factor: int, peer: str) -> Bar:
    return Bar(f"\u2265 {factor}\u00d7 {peer}", "min_speedup", float(factor), peer=peer)


def _latency(percentile: float, label: str, ns: float) -> Bar:
    text = f"{label} \u2264 {ns / 1000:g} \u00b5s"
    return Bar(text, "max_latency", float(ns), percentile=float(percentile))


def _rate(per_second: int) -> str:
    if per_second >= 1_000_000:
        return f"{per_second / 1e6:g} M msg/s"
    return f"{per_second / 1000:g} k msg/s"


def cases(config: SuiteConfig, sizes: RingSizes | None = None) -> Sequence[Case]:
    """The ring cases. ``sizes`` defaults to `QUICK_SIZES` in quick mode and `FULL_SIZES`
    in full mode (the tests pass tiny ones).

    ``config.size`` (``--size``) replaces the 64 B payload of every case (the batched 4 KiB
    case stays, unless the size is 4 KiB itself); ``config.messages`` (``--messages``) sets
    the messages of every trial that moves a fixed number: the cross-process throughput
    trials (rounded up to whole batches in the batched case) and every latency trial. The
    in-process push/pop cases calibrate their own loops and ignore it. The bars that set an
    absolute figure (ns per pair, msg/s, latency) are DESIGN.md's for 64 B payloads and are
    checked only at that size; the relative ones (against a peer, against memcpy) always."""
    if sizes is None:
        sizes = QUICK_SIZES if config.quick else FULL_SIZES
    payload = payload_size(config, SMALL, "ring")
    messages = message_count(config, 0, "ring")
    if messages:
        sizes = replace(sizes, cross_messages=messages, latency_messages=messages)
    idle_messages = messages or max(
        1, sizes.latency_messages * sizes.idle_rate // sizes.latency_rate
    )
    label = size_label(payload)
    at_design_size = payload == SMALL
    batch = f"{sizes.batch_frames:,} frames"
    one = sizes.cross_messages
    batched = round_up(sizes.cross_messages, sizes.batch_frames)
    timed_by_consumer = (
        "consumer-timed: messages after its first receipt over the time from the first "
        "receipt to the last; producer and consumer are spawned processes"
    )
    schedule = (
        "on a fixed schedule; latency = receipt time minus scheduled send time "
        "(perf_counter_ns, one clock for both processes); the producer yields its core while "
        "more than 4 \u00b5s remain before a send, then busy-waits"
    )

    def absolute(*bars: Bar) -> tuple[Bar, ...]:
        return bars if at_design_size else ()

    return (
        Case(
            f"push+pop one message ({label})",
            _pair_contenders(payload, sizes),
            bars=(
                *absolute(_at_most_ns("\u2264 100 ns per pair", 100.0)),
                _faster(15, "queue.Queue"),
            ),
            note=f"one timed call makes {sizes.pairs_per_call} push+pop pairs in a Python "
            "loop: time/op is per call, msg/s per pair",
        ),
        *(
            Case(
                f"push_batch+pop_batch {size_label(size)} ({batch})",
                _batch_contenders(size, sizes),
                bars=(
                    *absolute(Bar("\u2265 50 M msg/s", "min_messages_per_s", 50e6)),
                    Bar(
                        "\u2265 40 % of memcpy",
                        "min_memcpy_fraction",
                        0.4,
                        reference=MEMCPY_MEMORY,
                    ),
                )
                if size == payload
                else (),
                throughput="both",
                note="bytes are frame bytes (56-byte header + payload); compare with the "
                "memcpy reference line",
            )
            for size in dict.fromkeys((payload, LARGE))
        ),
        Case(
            f"1\u21921 processes, one message per call ({label})",
            _throughput_contenders("one", one, payload, sizes),
            bars=(
                *absolute(Bar("\u2265 2 M msg/s", "min_messages_per_s", 2e6)),
                _faster(20, "multiprocessing.Queue"),
                _faster(5, "faster-fifo"),
            ),
            note=f"{one:,} messages per trial, {timed_by_consumer}",
        ),
        Case(
            f"1\u21921 processes, batches of {batch} ({label})",
            _throughput_contenders("batch", batched, payload, sizes),
            bars=(
                *absolute(Bar("\u2265 20 M msg/s", "min_messages_per_s", 20e6)),
                _faster(20, "multiprocessing.Queue"),
                _faster(5, "faster-fifo"),
            ),
            note=f"{batched:,} messages per trial in batches of {sizes.batch_frames:,}, "
            f"{timed_by_consumer}",
        ),
        Case(
            f"1\u21921 processes, one-way latency at {_rate(sizes.latency_rate)} ({label})",
            _latency_contenders(
                sizes.latency_messages, sizes.latency_rate, payload, sizes, default_first=False
            ),
            bars=absolute(
                _latency(50, "p50", 2_000),
                _latency(99, "p99", 10_000),
                _latency(99.9, "p99.9", 50_000),
            ),
            throughput="latency",
            note=f"{sizes.latency_messages:,} messages per trial, one every "
            f"{1e6 / sizes.latency_rate:g} \u00b5s {schedule}. kaelix's default wait spins "
            "briefly (about 20 \u00b5s) before sleeping on its futex, so at this rate it "
            "seldom sleeps: the next case shows that path",
        ),
        *(
            ()
            if config.quick
            else (
                Case(
                    f"1\u21921 processes, one-way latency at {_rate(sizes.high_rate)} ({label})",
                    _latency_contenders(
                        sizes.latency_messages,
                        sizes.high_rate,
                        payload,
                        sizes,
                        default_first=False,
                    ),
                    throughput="latency",
                    note=f"{sizes.latency_messages:,} messages per trial, one every "
                    f"{1e6 / sizes.high_rate:g} \u00b5s {schedule}. A channel slower than "
                    "the offered rate falls behind, and every later message is charged the "
                    "backlog (that is what a fixed schedule measures)",
                ),
            )
        ),
        Case(
            f"1\u21921 threads, one-way latency at {_rate(sizes.idle_rate)} ({label})",
            _thread_latency_contenders(idle_messages, sizes.idle_rate, payload),
            throughput="latency",
            note=f"{idle_messages:,} messages per trial, paced to one every "
            f"{1e6 / sizes.idle_rate:g} \u00b5s from a producer thread to a consumer thread "
            "of the bench process; latency = receipt time minus the time put() was called "
            "(no send ever waits on either channel, so there is no coordinated omission). "
            "Between threads the GIL is on the path: the producer sleeps between sends so "
            "the consumer can run",
        ),
        Case(
            f"1\u21921 processes, one-way latency at {_rate(sizes.idle_rate)} ({label})",
            _latency_contenders(idle_messages, sizes.idle_rate, payload, sizes, default_first=True),
            throughput="latency",
            note=f"{idle_messages:,} messages per trial, one every "
            f"{1e6 / sizes.idle_rate:g} \u00b5s {schedule}. No DESIGN.md bar: it shows what "
            "kaelix's idle-friendly default wait costs when it does sleep between messages",
        ),
    )


SUITE = Suite(
    name="ring",
    description="Ring and SharedRing vs queue.Queue, SimpleQueue, deque, "
    "multiprocessing.Queue and faster-fifo",
    cases=cases,
    options=("size", "messages"),
)
