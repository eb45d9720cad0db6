"""The monitor suite: what watching a stream costs, monitoring on and off side by side, in
two shapes: one thread that sends and polls (one message, or batches of 1,024), as the ring
suite's push + pop; and a 1 -> 1 stream between two threads (the stream suite's
`ThreadRun`: the bench's thread produces, a consumer thread receives and accounts for every
message).

"On" is everything a user turns on: a `kaelix.monitor.Registry` watching the stream, a
`kaelix.monitor.Monitor` sampling it every 0.1 s in its background thread (ring counters,
consumer lag, the default alert rules evaluated at each sample), and the consumer wrapped
by ``monitor.observe`` so that send-to-receive latency is sampled (each sample arms the
consumer's next poll: one message, or every message of one batch, vectorised). The
stream's own counters cost the send and poll path nothing: they are the ring's. Both
contenders' consumers call ``consumer.poll()`` the same way (looked up at each call, as an
observed consumer needs). The monitored contender also reports what its sampler thread
took (``Monitor.cpu_seconds``): the cost that remains.

Each timed call moves enough messages to last several sampling intervals (about 0.3 s), so
every trial pays for its samples: a trial shorter than the interval would often see none.
The contenders' trials alternate (`Case.interleave`), and the sampler runs only during the
monitored contender's own calls (`_Sampling`): started before each call (the sample it
takes at once is over before the call's clock starts, so a call sees one sample every
interval, as a steady run does) and stopped after it.

The one-thread contenders share one stream, producer and consumer (`_OneThreadRig`): the
monitored contender observes the consumer and runs the sampler for its calls, and
unobserves it after, so the two differ in nothing but monitoring. With a stream each,
unmonitored twins' loops ran 1 to 2 % apart from where their rings and objects landed in
memory, which showed as a steady bias either way.

The bar is DESIGN.md's "monitoring on ≤ 1 % throughput cost" on the ring benchmarks,
checked on the one-thread cases as the monitored run's speed relative to the unmonitored
one (``min_speedup`` 0.99 against it). Those cases are timed in process CPU time: the loop's
thread and the sampler take turns on the GIL, so the process's CPU time is their work, and
it leaves out what other processes and the host take from a shared machine (the wall-clock
medians are in each contender's note). On a quiet machine the two clocks agree; on a
loaded one the wall clock of a 0.3 s trial moved by 5 to 30 % (IQR), thirty times the
effect. The two-thread cases carry no bar and are timed by the wall clock (one thread
often waits for the other): how the two threads share the GIL moves their trials by 10 to
20 % (IQR), ten times the effect, so a verdict there would be a coin toss; they are shown
for what a user's threads see.

Imports the public kaelix API, `kaelix.monitor`, and the stream suite's thread harness;
never numba at module level (the latency histogram's kernel compiles in the factory,
before timing).
"""

from __future__ import annotations

import itertools
import statistics
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
    from kaelix.monitor import Monitor

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
    ``capacity``: bytes of the stream's partition; ``trials``: at least this many timed
    calls of each contender (unless ``--repeat`` says otherwise)."""

    one: int = 300_000
    batches: int = 2_000
    batch: int = 1024
    capacity: int = 1 << 20
    trials: int = 10


QUICK_SIZES = MonitorSizes()
FULL_SIZES = MonitorSizes(one=1_000_000, batches=12_000, trials=20)

_names = itertools.count()


class _Sampling:
    """Runs a contender's sampler during its own trials only, and says what it took.

    The interleaved runner makes every contender's workload before the first trial, so a
    sampler left running would also sample (and take the GIL) during the unmonitored
    contender's trials, and the two would pay alike. ``around(timed)`` starts the sampler,
    waits for the sample it takes at once, runs ``timed`` (which then sees the samples of
    a steady run, one every interval) and stops the sampler after it, untimed."""

    def __init__(self, monitor: Monitor | None) -> None:
        self.monitor = monitor
        self.walls: list[int] = []
        self.cpus: list[int] = []
        self.samples = 0  # taken while the calls were timed
        self.sampler_cpu_s = 0.0

    def around(self, timed: Callable[[], tuple[int, int]]) -> tuple[int, int]:
        """``timed`` returns (wall ns, process CPU ns); they are kept for `describe`."""
        monitor = self.monitor
        if monitor is None:
            wall, cpu = timed()
        else:
            taken = monitor.samples
            monitor.start()
            deadline = time.monotonic() + 10.0
            while monitor.samples == taken:
                if time.monotonic() > deadline:
                    monitor.stop()
                    raise RuntimeError("the monitor took no sample in 10 s after start()")
                time.sleep(0.0002)
            try:
                samples, sampler_cpu = monitor.samples, monitor.cpu_seconds
                wall, cpu = timed()
                self.samples += monitor.samples - samples
                self.sampler_cpu_s += monitor.cpu_seconds - sampler_cpu
            finally:
                monitor.stop()
        self.walls.append(wall)
        self.cpus.append(cpu)
        return wall, cpu

    def describe(self) -> str:
        """The wall-clock and CPU medians of every call (the warm-up included), and for the
        monitored contender what its sampler took while they were timed."""
        parts = []
        if self.walls:
            parts.append(
                f"median of {len(self.walls)} call{'s' if len(self.walls) > 1 else ''}: "
                f"{statistics.median(self.walls) / 1e6:,.1f} "
                f"ms wall clock, {statistics.median(self.cpus) / 1e6:,.1f} ms of process CPU"
            )
        if self.monitor is not None and not self.samples:
            parts.append(
                "the sampler took no sample while the calls were timed (each call was "
                f"shorter than its {self.monitor.interval:g} s interval)"
            )
        elif self.monitor is not None:
            parts.append(
                f"the sampler took {self.sampler_cpu_s / self.samples * 1e3:.2f} ms of CPU a "
                f"sample, {self.sampler_cpu_s / (sum(self.walls) / 1e9) * 100:.2f} % of the "
                f"calls' wall clock ({self.samples:,} samples)"
            )
        return "; ".join(parts)


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
    sampling = _Sampling(monitor)

    def timed() -> tuple[int, int]:
        cpu = time.process_time_ns()
        start = time.perf_counter_ns()
        run.call()
        return time.perf_counter_ns() - start, time.process_time_ns() - cpu

    def call() -> int:
        return sampling.around(timed)[0]  # wall clock: two threads, one waiting

    return Workload(
        call,
        messages=n,
        nbytes=n * PAYLOAD,
        timer="call",
        close=run.close,
        describe=sampling.describe,
    )


class _OneThreadRig:
    """The stream, producer, consumer and monitor that both contenders of a one-thread case
    share: they differ only in monitoring being on during their own calls. Two streams, one
    per contender, would differ by where their rings and objects landed in memory as well,
    and that alone moved unmonitored twins' loops 1 to 2 % apart, more than the bar. Made by
    the first contender's factory, closed by the last one's close."""

    def __init__(self, sizes: MonitorSizes) -> None:
        self.sizes = sizes
        self.users = 0
        self.parts: tuple[kaelix.Stream, Any, Consumer, Monitor] | None = None

    def open(self) -> tuple[kaelix.Stream, Any, Consumer, Monitor]:
        import kaelix.monitor as monitor_api

        if self.parts is None:
            stream = kaelix.Stream(f"bench-monitor-{next(_names)}", capacity=self.sizes.capacity)
            try:
                monitor = monitor_api.Monitor(stream, interval=INTERVAL_S)
                # The histogram's bulk kernel compiles on first use: pay it now, untimed.
                monitor.registry.histogram("bench_warmup_seconds", "warm-up").record_many([1, 2])
                monitor.registry.unregister("bench_warmup_seconds")
                self.parts = (stream, stream.producer(), stream.consumer(), monitor)
            except BaseException:
                stream.close()
                raise
        self.users += 1
        return self.parts

    def close(self) -> None:
        self.users -= 1
        if self.users == 0 and self.parts is not None:
            stream, _, _, monitor = self.parts
            self.parts = None
            monitor.stop()
            stream.close()


def _one_thread_workload(rig: _OneThreadRig, monitored: bool, form: Form, n: int) -> Workload:
    """send + poll of one message each (or send_batch + poll_batch), in one thread, as the
    ring suite's push + pop: no second thread's scheduling in the figures, so what the
    sampler thread takes (the GIL, for each sample) shows alone. Monitored, each call
    observes the consumer and runs the sampler (`_Sampling`), and unobserves it after."""
    _, producer, consumer, monitor = rig.open()
    sizes = rig.sizes
    payload = bytes(PAYLOAD)
    send = producer.send
    payloads = [payload] * sizes.batch
    send_batch = producer.send_batch

    sampling = _Sampling(monitor if monitored else None)

    def timed() -> tuple[int, int]:
        got = 0
        cpu = time.process_time_ns()
        start = time.perf_counter_ns()
        if form == "batch":
            for _ in range(n // sizes.batch):
                send_batch(payloads)
                got += len(consumer.poll_batch(sizes.batch, 0))
        else:
            for _ in range(n):
                send(payload)
                if consumer.poll(0) is not None:
                    got += 1
        elapsed = time.perf_counter_ns() - start, time.process_time_ns() - cpu
        if got != n:
            raise RuntimeError(f"the consumer received {got:,} of {n:,} messages")
        return elapsed

    def call() -> int:
        # Process CPU time: this thread's and the sampler's (they take turns on the GIL),
        # none of what other processes or the host take from the machine meanwhile.
        if not monitored:
            return sampling.around(timed)[1]
        monitor.observe(consumer)
        try:
            return sampling.around(timed)[1]
        finally:
            monitor.unobserve(consumer)

    return Workload(
        call,
        messages=n,
        nbytes=n * PAYLOAD,
        timer="call",
        close=rig.close,
        describe=sampling.describe,
    )


def _contenders(
    form: Form, n: int, sizes: MonitorSizes, *, threads: bool = True
) -> tuple[Contender, ...]:
    rig = _OneThreadRig(sizes)

    def factory(monitored: bool) -> Callable[[], Workload]:
        if not threads:
            return lambda: _one_thread_workload(rig, monitored, form, n)
        return lambda: _workload(monitored, form, n, sizes)

    if form == "batch":
        calls = f"send_batch({sizes.batch:,}) / poll_batch({sizes.batch:,})"
        observed = "after each sample, the next batch's latencies (HdrHistogram.record_many)"
    else:
        calls = "send(payload) / poll()"
        observed = "after each sample, the next message's latency"
    if not threads and form == "batch":
        calls = f"send_batch({sizes.batch:,}) then poll_batch({sizes.batch:,}, 0), in one thread"
    elif not threads:
        calls = "send(payload) then poll(0), in one thread"
    off = (
        "the very stream, producer and consumer of the monitored contender, nothing "
        "watching them (its monitor stopped, the consumer unobserved)"
        if not threads
        else "a stream of its own like the monitored one, nothing watching it"
    )
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
            note=f"{calls}; {off}",
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
    timing = (
        "each timed call moves enough messages to span several sampling intervals; the "
        "contenders' trials alternate (on, off, off, on, ...) so that the machine's drift "
        "weighs on both alike"
    )
    one_thread = (
        f"{timing}; timed in process CPU time (this thread's and the sampler's, not other "
        "processes'); the bar compares the medians of the two contenders"
    )
    threads_note = (
        f"the bench's thread produces, a consumer thread receives; {timing}; no bar: the "
        "scheduling of the two threads moves each trial by far more than 1 %"
    )
    shapes: list[tuple[str, Form, int, bool]] = [
        ("one thread, send + poll", "one", one, False),
        (f"one thread, batches of {sizes.batch:,}", "batch", batched, False),
        ("1\u21921 threads, one message per call", "one", one, True),
        (f"1\u21921 threads, batches of {sizes.batch:,}", "batch", batched, True),
    ]
    return tuple(
        Case(
            f"{shape}, monitoring on vs off (64 B)",
            _contenders(form, n, sizes, threads=threads),
            bars=() if threads else (BAR,),
            note=f"{n:,} messages per timed call; {threads_note if threads else one_thread}",
            interleave=True,
            min_repeat=sizes.trials,
        )
        for shape, form, n, threads in shapes
    )


SUITE = Suite(
    name="monitor",
    description="What monitoring costs a stream: registry, 0.1 s sampler, alert rules and "
    "latency observation on vs off, side by side",
    cases=cases,
    options=("messages",),
)
