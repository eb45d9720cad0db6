"""The bench's monitor suite in a tiny configuration: both contenders of every case run,
account for every message, and the monitoring-cost bar is checked (its verdict is the
bench's business, not a unit test's: no time is asserted)."""

from __future__ import annotations

import functools
import threading
import time

import kaelix
from kaelix.bench import run
from kaelix.bench._model import Suite, SuiteConfig
from kaelix.bench.suites import load_suite
from kaelix.bench.suites import monitor as monitor_suite

TINY = monitor_suite.MonitorSizes(one=2_000, batches=8, batch=16, capacity=1 << 16)


def test_the_monitor_suite_in_a_tiny_configuration_checks_its_bar() -> None:
    suite = Suite(
        "monitor", "tiny monitor suite", functools.partial(monitor_suite.cases, sizes=TINY)
    )
    result = run([suite], repeat=1, trial_ms=0.5)
    assert not result.errors, [(c.case, r.name, r.reason) for c, r in result.errors]
    assert [case.case for case in result.results] == [
        "one thread, send + poll, monitoring on vs off (64 B)",
        "one thread, batches of 16, monitoring on vs off (64 B)",
        "1\u21921 threads, one message per call, monitoring on vs off (64 B)",
        "1\u21921 threads, batches of 16, monitoring on vs off (64 B)",
    ]
    for case in result.results:
        assert [c.name for c in case.contenders] == [
            "kaelix, monitoring on",
            "kaelix, monitoring off",
        ]
        assert all(c.ok for c in case.contenders)
        on, off = case.contenders
        assert on.timing is not None and off.timing is not None
        assert len(on.timing.trials_ns) == len(off.timing.trials_ns) == 1  # --repeat wins
        # both say what their calls took by either clock; the monitored run also what its
        # sampler thread took
        for contender in (on, off):
            assert "measured: median of 2 calls: " in contender.note  # warm-up + 1 trial
            assert "ms wall clock" in contender.note and "ms of process CPU" in contender.note
        # tiny calls usually see no sample; a loaded machine can stretch one past 0.1 s
        assert "the sampler took " in on.note
        assert "sampler" not in off.note.split("measured:")[1]
        if case.case.startswith("one thread"):
            (check,) = case.bars
            assert check.bar.text == "monitoring on ≤ 1 % throughput cost"
            assert check.met is not None
            assert "per message" in check.detail
        else:
            assert case.bars == ()  # too noisy to judge 1 %: shown, not judged


def test_the_sampler_runs_only_during_the_monitored_contenders_own_calls() -> None:
    # The interleaved runner makes both workloads first: a sampler started with its workload
    # would sample (and take the GIL) during the unmonitored contender's trials too.
    def samplers() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "kaelix-monitor"]

    before = samplers()
    for case in monitor_suite.cases(SuiteConfig(), sizes=TINY):
        on, off = (contender.factory() for contender in case.contenders)
        try:
            assert samplers() == before
            for workload in (off, on, off):
                assert workload.call() > 0
                assert samplers() == before
            assert on.describe is not None and off.describe is not None
            assert "the sampler took" in on.describe()
            assert "sampler" not in off.describe()
        finally:
            for workload in (on, off):
                assert workload.close is not None
                workload.close()


def test_the_suite_is_registered_and_takes_messages() -> None:
    suite = load_suite("monitor")
    assert suite.options == ("messages",)
    cases = suite.cases(SuiteConfig(messages=4_096))
    assert len(cases) == 4
    for case in cases:
        assert "4,096 messages per timed call" in case.note
        assert case.interleave and case.min_repeat == monitor_suite.QUICK_SIZES.trials


def test_sampling_counts_only_the_samples_taken_while_a_call_is_timed() -> None:
    import kaelix
    from kaelix.monitor import Monitor

    with kaelix.Stream("bench-monitor-sampling", capacity=1 << 16) as stream:
        monitor = Monitor(stream, interval=0.02)
        sampling = monitor_suite._Sampling(monitor)

        def timed() -> tuple[int, int]:
            assert monitor.running and monitor.samples >= 1  # the first one is already over
            before = monitor.samples
            deadline = time.monotonic() + 30
            while monitor.samples < before + 2 and time.monotonic() < deadline:
                time.sleep(0.005)
            return 5_000_000, 4_000_000

        assert sampling.around(timed) == (5_000_000, 4_000_000)
        assert not monitor.running
        assert 2 <= sampling.samples < monitor.samples  # the one taken at start is not counted
        assert 0 < sampling.sampler_cpu_s < monitor.cpu_seconds
        text = sampling.describe()
        assert text.startswith("median of 1 call: 5.0 ms wall clock, 4.0 ms of process CPU; ")
        assert f"({sampling.samples:,} samples)" in text and "ms of CPU a sample" in text
        off = monitor_suite._Sampling(None)
        assert off.around(lambda: (3, 2)) == (3, 2) and "sampler" not in off.describe()


def test_one_thread_contenders_share_one_stream_and_differ_only_in_monitoring() -> None:
    rig = monitor_suite._OneThreadRig(TINY)
    on = monitor_suite._one_thread_workload(rig, True, "batch", 64)
    off = monitor_suite._one_thread_workload(rig, False, "batch", 64)
    assert rig.parts is not None
    stream, _, consumer, monitor = rig.parts
    try:
        assert type(consumer) is kaelix.Consumer
        for workload in (on, off, on):
            assert workload.call() > 0
            # unobserved after every monitored call: the next unmonitored one polls a plain
            # consumer, and nothing samples it
            assert type(consumer) is kaelix.Consumer
            assert not monitor.running
        assert monitor.samples >= 2  # one at the start of each monitored call
    finally:
        assert on.close is not None and off.close is not None
        on.close()
        assert not stream.closed  # the other contender still uses it
        off.close()
    assert stream.closed and rig.parts is None
