"""The soak, bounded for CI: every backpressure policy for a few seconds across processes
(two producer processes, this process consuming through a shared stream), with zero lost,
duplicated, reordered or corrupted messages and no memory growth. The long run is
``python -m kaelix.bench.suites.soak --duration SECONDS`` (docs/security.md)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kaelix.bench.suites import load_suite
from kaelix.bench.suites.soak import POLICIES, SoakReport, payload_for, run_soak

SECONDS_PER_POLICY = 8.0


@pytest.mark.parametrize("policy", POLICIES)
def test_soak_policy_has_no_anomalies(policy: str) -> None:
    report = run_soak(policy, duration_s=SECONDS_PER_POLICY)
    assert report.ok, report.summary()
    assert report.sent > 10_000, report.summary()
    assert report.delivered > 0
    assert len(report.rss) >= 8, report.summary()
    assert "growth not measured" not in report.summary()
    if policy == "drop_oldest":
        # The consumer cannot keep up with two producers that never wait: the run must have
        # really overwritten messages, and accounted for every one of them.
        assert report.skipped > 0, report.summary()
    else:
        assert report.delivered == report.sent, report.summary()


def test_anomalies_are_reported() -> None:
    report = SoakReport("block", sent=10, delivered=8, skipped=1, lost=1, duplicated=2, corrupted=1)
    assert report.anomalies == [
        "1 messages sent but neither delivered nor reported skipped",
        "2 duplicated",
        "1 corrupted",
        "1 skipped under 'block'",
    ]
    grown = SoakReport(
        "error",
        rss=[(t / 4, 2**30 + (2**25 if t > 20 else 0)) for t in range(40)],
        first_delivery_s=0.5,
    )
    assert grown.anomalies == ["resident memory grew by 32.0 MiB"]
    assert "FAILED" in grown.summary()


def test_payloads_name_their_message() -> None:
    assert payload_for(1, 2, 3)[:24] == (1).to_bytes(8, "little") + (2).to_bytes(8, "little") + (
        3
    ).to_bytes(8, "little")
    assert len(payload_for(1, 2, 3)) == 64
    assert payload_for(1, 2, 3) != payload_for(1, 2, 4)


def test_run_soak_validates_arguments() -> None:
    with pytest.raises(ValueError, match="policy must be one of"):
        run_soak("nope", messages=1)
    with pytest.raises(ValueError, match="exactly one of messages and duration_s"):
        run_soak("block")
    with pytest.raises(ValueError, match="exactly one of messages and duration_s"):
        run_soak("block", messages=1, duration_s=1)


def test_soak_is_a_bench_suite() -> None:
    suite = load_suite("soak")
    assert suite.options == ("messages",)
    assert [c.name.split(",")[0] for c in suite.cases(suite_config())] == [
        f"soak {p}" for p in POLICIES
    ]


def suite_config() -> object:
    from kaelix.bench._model import SuiteConfig

    return SuiteConfig(messages=1000)


def test_bench_soak_command_runs_by_message_count() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kaelix.bench", "soak", "--messages", "20000", "--plain"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for policy in POLICIES:
        assert f"soak {policy}: 40,000 sent" in done.stderr, done.stderr
    assert "FAILED" not in done.stderr
