"""The generate bench suite: its cases, names and bars, its helpers, and a run in a tiny
configuration (no timing is asserted)."""

from __future__ import annotations

import functools
import json

import pytest

from kaelix import MessageBatch
from kaelix.bench import BenchRun, Suite, SuiteConfig, render_text, run
from kaelix.bench.suites import SUITES, load_suite
from kaelix.bench.suites import generate as bench_generate
from kaelix.testing.generate import MessageGenerator

TINY = bench_generate.GenerateSizes(
    messages=40_000, batch_size=16_384, reference_messages=2_000, mixed_messages=20_000
)


def test_the_suite_is_registered_and_its_cases_are_listed_without_preparing_anything() -> None:
    assert SUITES["generate"] == "kaelix.bench.suites.generate"
    assert load_suite("generate") is bench_generate.SUITE
    quick = bench_generate.cases(SuiteConfig(quick=True))
    full = bench_generate.cases(SuiteConfig(quick=False))
    mixed = bench_generate.MIXED
    assert [case.name for case in quick] == [
        "generate 1,000,000 messages of 64 B",
        f"generate 100,000 messages, {mixed}",
    ]
    assert [case.name for case in full] == [
        "generate 10,000,000 messages of 64 B",
        f"generate 1,000,000 messages, {mixed}",
    ]
    bar = quick[0].bars[0]
    assert (bar.text, bar.kind, bar.value) == ("\u2265 50 M msg/s", "min_messages_per_s", 50e6)
    assert [(c.name, c.role) for c in quick[0].contenders] == [
        ("kaelix", "kaelix"),
        ("kaelix, one thread", "reference"),
        ("Python Messages + from_messages", "peer"),
        ("numpy copy of the same bytes", "reference"),
    ]
    assert quick[1].bars == ()


def test_size_and_messages_options() -> None:
    cases = bench_generate.cases(SuiteConfig(size=100, messages=5_000))
    assert cases[0].name == "generate 5,000 messages of 100 B"
    assert cases[1].name.startswith("generate 5,000 messages, ")
    with pytest.raises(ValueError, match="--size must be a whole number of bytes from 1"):
        bench_generate.cases(SuiteConfig(size=0))
    with pytest.raises(ValueError, match="--messages must be a whole number >= 1"):
        bench_generate.cases(SuiteConfig(messages=0))


def test_helpers() -> None:
    assert bench_generate.frame_size(64) == 120
    assert bench_generate.frame_size(65, key=8) == 136
    generator = MessageGenerator(1)
    assert bench_generate.draw(generator, 1_000, 300) == 1_000
    assert generator.messages_made == 1_000
    messages = bench_generate.python_messages(10, 64)
    assert [m.sequence for m in messages] == list(range(10))
    assert len({m.payload for m in messages}) == 10
    assert messages == bench_generate.python_messages(10, 64)
    assert MessageBatch.from_messages(messages).nbytes == 10 * 120


def test_the_suite_in_a_tiny_configuration_produces_every_result() -> None:
    suite = Suite(
        "generate", "tiny generate suite", functools.partial(bench_generate.cases, sizes=TINY)
    )
    result = run([suite], repeat=1, trial_ms=0.5)
    assert not result.errors, [(c.case, r.name, r.reason) for c, r in result.errors]
    first, mixed = result.results
    assert first.case == "generate 40,000 messages of 64 B"
    assert [c.messages_per_op for c in first.contenders] == [40_000, 40_000, 2_000, 40_000]
    assert [c.bytes_per_op for c in first.contenders] == [
        40_000 * 120,
        40_000 * 120,
        2_000 * 120,
        40_000 * 120,
    ]
    assert [check.met is not None for check in first.bars] == [True]
    assert mixed.contenders[0].ok and mixed.contenders[0].messages_per_op == 20_000
    data = json.loads(json.dumps(result.to_json()))
    assert BenchRun.from_json(data) == result
    assert "bytes/s counts frame bytes" in first.note
    assert "generate 40,000 messages of 64 B" in render_text(result)
