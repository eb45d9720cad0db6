"""The monitor suite: what watching a stream costs. The same 1 -> 1 stream between two
threads (the stream suite's `ThreadRun`: the bench's thread produces, a consumer thread
receives and accounts for every message), with monitoring off and on side by side.

"On" is everything a user turns on: a `kaelix.monitor.Registry` watching the stream, a
`kaelix.monitor.Monitor` sampling it every 0.1 s in its background thread (ring counters,
consumer lag, the default alert rules evaluated at each sample), and the consumer wrapped
by ``monitor.observe`` so that send-to-receive latency is sampled (each sample arms the
consumer's next poll: one message, or every message of one batch, vectorised). The
stream's own counters cost the send and poll path nothing: they are the ring's. Both
contenders' consumers call ``consumer.poll()`` the same way (looked up at each call, as an
observed consumer needs).

Each timed call moves enough messages to last several sampling intervals (about 0.3 s), so
every trial pays for its samples: a trial shorter than the interval would often see none.
The bar is DESIGN.md's "monitoring on ≤ 1 % throughput cost", checked as the monitored
run's speed relative to the unmonitored one (``min_speedup`` 0.99 against it).

Imports the public kaelix API, `kaelix.monitor`, and the stream suite's thread harness;
never numba at module level (the latency histogram's kernel compiles in the factory,
before timing).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import kaelix
from kaelix.bench._model import Bar, Case, Contender, Suite, SuiteConfig, Workload
from kaelix.bench._procs import Form, StreamEnd, kaelix_stream_end
from kaelix.bench.suites._options import message_count
from kaelix.bench.suites.stream import ThreadRun

if TYPE_CHECKING:
    from kaelix import Consumer

PAYLOAD = 64
INTERVAL_S = 0.1
BAR = Bar(
    "monitoring on ≤ 1 % throughput cost",
    "min_speedup",
    0.99,
    peer="kaelix, monitoring off",
)


@dataclass(frozen=True)
class MonitorSizes:
    """Messages per timed call: ``one`` one at a time, ``batches`` of ``batch`` batched;
    ``capacity``: bytes of the stream's partition."""

    one: int = 300_000
    batches: int = 2_000
    batch: int = 1024
    capacity: int = 1 << 20


QUICK_SIZES = MonitorSizes()
FULL_SIZES = MonitorSizes(one=1_000_000, batches=6_000)

_names = itertools.count()


def _consumer_end(consumer: Consumer, batch: int) -> StreamEnd:
    """The consumer side, calling ``consumer.poll()`` afresh at each receipt (as a user's
    loop does, and as an observed consumer needs: a monitor sample arms it through its
    class), the same way with monitoring on and off."""

    def get() -> Any:
        return consumer.poll()

    def get_batch() -> Any:
        return consumer.poll_batch(batch)

    return StreamEnd(get=get, get_batch=get_batch, keyed=True, close=consumer.close)


def _workload(monitored: bool, form: Form, n: int, sizes: MonitorSizes) -> Workload:
    import kaelix.monitor as monitor_api

    stream = kaelix.Stream(f"bench-monitor-{next(_names)}", capacity=sizes.capacity)
    monitor: monitor_api.Monitor | None = None
    try:
        producer = kaelix_stream_end("producer", stream, sizes.batch)
        if monitored:
            monitor = monitor_api.Monitor(stream, interval=INTERVAL_S)
            # The histogram's bulk kernel compiles on first use: pay it now, untimed.
            monitor.registry.histogram("bench_warmup_seconds", "warm-up").record_many([1, 2])
            monitor.registry.unregister("bench_warmup_seconds")
            watch = monitor

            def make_consumer() -> StreamEnd:
                return _consumer_end(watch.observe(stream.consumer()), sizes.batch)
        else:

            def make_consumer() -> StreamEnd:
                return _consumer_end(stream.consumer(), sizes.batch)
    except BaseException:
        stream.close()
        raise

    def close() -> None:
        if monitor is not None:
            monitor.stop()
        stream.close()

    run = ThreadRun(producer, make_consumer, n, form, sizes.batch, PAYLOAD, on_close=close)
    if monitor is not None:
        monitor.start()

    def call() -> int:
        start = time.perf_counter_ns()
        run.call()
        return time.perf_counter_ns() - start

    return Workload(call, messages=n, nbytes=n * PAYLOAD, timer="call", close=run.close)


def _contenders(form: Form, n: int, sizes: MonitorSizes) -> tuple[Contender, ...]:
    def factory(monitored: bool) -> Callable[[], Workload]:
        return lambda: _workload(monitored, form, n, sizes)

    if form == "batch":
        calls = f"send_batch({sizes.batch:,}) / poll_batch({sizes.batch:,})"
        observed = "after each sample, the next batch's latencies (HdrHistogram.record_many)"
    else:
        calls = "send(payload) / poll()"
        observed = "after each sample, the next message's latency"
    return (
        Contender(
            "kaelix, monitoring on",
            factory(True),
            role="kaelix",
            note=f"{calls}; Registry + Monitor sampling every {INTERVAL_S:g} s with the "
            f"default alert rules, consumer wrapped by monitor.observe: {observed}",
        ),
        Contender(
            "kaelix, monitoring off",
            factory(False),
            role="reference",
            note=f"{calls}; the same stream, nothing watching it",
        ),
    )


def cases(config: SuiteConfig, sizes: MonitorSizes | None = None) -> Sequence[Case]:
    """The monitor cases. ``sizes`` defaults to `QUICK_SIZES` in quick mode and
    `FULL_SIZES` in full mode (the tests pass tiny ones); ``config.messages``
    (``--messages``) sets the messages of every timed call."""
    if sizes is None:
        sizes = QUICK_SIZES if config.quick else FULL_SIZES
    one = message_count(config, sizes.one, "monitor")
    batched = -(-message_count(config, sizes.batches * sizes.batch, "monitor") // sizes.batch)
    batched *= sizes.batch
    note = (
        "the bench's thread produces, a consumer thread receives; each timed call moves "
        "enough messages to span several sampling intervals; the bar compares the medians "
        "of the two contenders"
    )
    return (
        Case(
            "1\u21921 threads, one message per call, monitoring on vs off (64 B)",
            _contenders("one", one, sizes),
            bars=(BAR,),
            note=f"{one:,} messages per timed call; {note}",
        ),
        Case(
            f"1\u21921 threads, batches of {sizes.batch:,}, monitoring on vs off (64 B)",
            _contenders("batch", batched, sizes),
            bars=(BAR,),
            note=f"{batched:,} messages per timed call; {note}",
        ),
    )


SUITE = Suite(
    name="monitor",
    description="What monitoring costs a stream: registry, 0.1 s sampler, alert rules and "
    "latency observation on vs off, side by side",
    cases=cases,
    options=("messages",),
)
