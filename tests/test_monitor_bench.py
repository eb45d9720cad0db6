"""The bench's monitor suite in a tiny configuration: both contenders of both cases run,
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
        "1\u21921 threads, one message per call, monitoring on vs off (64 B)",
        "1\u21921 threads, batches of 16, monitoring on vs off (64 B)",
    ]
    for case in result.results:
        assert [c.name for c in case.contenders] == [
            "kaelix, monitoring on",
            "kaelix, monitoring off",
        ]
        assert all(c.ok for c in case.contenders)
        (check,) = case.bars
        assert check.bar.text == "monitoring on ≤ 1 % throughput cost"
        assert check.met is not None
        assert "per message" in check.detail


def test_the_suite_is_registered_and_takes_messages() -> None:
    suite = load_suite("monitor")
    assert suite.options == ("messages",)
    one, batched = suite.cases(SuiteConfig(messages=4_096))
    assert "4,096 messages per timed call" in one.note
    assert "4,096 messages per timed call" in batched.note
