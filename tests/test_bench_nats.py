"""The nats bench suite (issue 11): its cases and options, a run in a tiny configuration
against real servers (no timing is asserted), and the skip when the server is missing."""

from __future__ import annotations

import functools
import json

import pytest

from kaelix.bench import BenchRun, Suite, SuiteConfig, run
from kaelix.bench.suites import SUITES, load_suite
from kaelix.bench.suites import nats as bench_nats
from kaelix.connect.nats.testing import ENV_BINARY

TINY = bench_nats.NatsSizes(
    batch=300, singles=20, consume=500, latency_messages=40, latency_rate=2_000
)


def test_the_suite_is_registered_and_lists_its_cases_without_starting_a_server() -> None:
    assert SUITES["nats"] == "kaelix.bench.suites.nats"
    assert load_suite("nats") is bench_nats.SUITE
    assert [case.name for case in bench_nats.cases(SuiteConfig())] == [
        "publish with acks, batches of 5,000 (128 B)",
        "publish with acks, one at a time (128 B)",
        "consume with acks, 5,000 messages in fetches of 4,096 (128 B)",
        "end-to-end latency at 1,000 msg/s (128 B)",
    ]
    full = bench_nats.cases(SuiteConfig(quick=False, size=64, messages=1_000))
    assert [case.name for case in full] == [
        "publish with acks, batches of 1,000 (64 B)",
        "publish with acks, one at a time (64 B)",
        "consume with acks, 1,000 messages in fetches of 4,096 (64 B)",
        "end-to-end latency at 2,000 msg/s (64 B)",
    ]
    for case in full:
        assert case.bars == ()  # DESIGN.md sets no bar for a network engine
        assert (case.contenders[0].name, case.contenders[0].role) == ("kaelix", "kaelix")
    with pytest.raises(ValueError, match="--size must be a whole number of bytes"):
        bench_nats.cases(SuiteConfig(size=0))


def test_a_tiny_run_measures_kaelix_and_nats_py_side_by_side() -> None:
    suite = Suite("nats", "tiny nats suite", functools.partial(bench_nats.cases, sizes=TINY))
    result = run([suite], repeat=1, trial_ms=0.5)
    assert not result.errors, [(c.case, r.name, r.reason) for c, r in result.errors]
    assert [case.case for case in result.results] == [
        "publish with acks, batches of 300 (128 B)",
        "publish with acks, one at a time (128 B)",
        "consume with acks, 500 messages in fetches of 4,096 (128 B)",
        "end-to-end latency at 2,000 msg/s (128 B)",
    ]
    for case in result.results:
        assert [c.name for c in case.contenders] == [
            "kaelix",
            {
                "publish with acks, batches of 300 (128 B)": "nats-py publish_async",
                "publish with acks, one at a time (128 B)": "nats-py publish",
                "consume with acks, 500 messages in fetches of 4,096 (128 B)": "nats-py fetch",
            }.get(case.case, "nats-py"),
        ]
        assert all(c.ok for c in case.contenders), case
    batched = result.results[0]
    assert all(c.messages_per_op == 300 for c in batched.contenders)
    assert all(c.messages_per_op == 500 for c in result.results[2].contenders)
    latency = result.results[3]
    for contender in latency.contenders:
        assert contender.latency is not None and contender.latency.samples == 40
        assert contender.latency.hdr is not None and contender.latency.hdr.startswith("HISTFAAA")
    data = json.loads(json.dumps(result.to_json()))
    assert BenchRun.from_json(data) == result


def test_without_the_server_binary_every_contender_is_skipped_with_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV_BINARY, "/nonexistent/nats-server")
    suite = Suite("nats", "tiny nats suite", functools.partial(bench_nats.cases, sizes=TINY))
    result = run([suite], repeat=1, trial_ms=0.5)
    for case in result.results:
        for contender in case.contenders:
            assert contender.status == "skipped"
            assert contender.reason == 'nats-server is not installed: pip install "kaelix[bench]"'
