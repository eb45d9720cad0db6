"""The bench's monitor suite in a tiny configuration: both contenders of every case run,
account for every message, and the monitoring-cost bar is checked (its verdict is the
bench's business, not a unit test's: no time is asserted)."""

from __future__ import annotations

import functools

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
        # the monitored run says what its sampler thread took
        assert "measured: the sampler took" in on.note and "% of a core" in on.note
        assert "measured" not in off.note
        if case.case.startswith("one thread"):
            (check,) = case.bars
            assert check.bar.text == "monitoring on ≤ 1 % throughput cost"
            assert check.met is not None
            assert "per message" in check.detail
        else:
            assert case.bars == ()  # too noisy to judge 1 %: shown, not judged


def test_the_suite_is_registered_and_takes_messages() -> None:
    suite = load_suite("monitor")
    assert suite.options == ("messages",)
    cases = suite.cases(SuiteConfig(messages=4_096))
    assert len(cases) == 4
    for case in cases:
        assert "4,096 messages per timed call" in case.note
        assert case.interleave and case.min_repeat == monitor_suite.QUICK_SIZES.trials
