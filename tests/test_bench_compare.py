"""Regression tracking: the Mann-Whitney U test against textbook values, verdicts and
severities on synthetic runs, saved results and their history, HdrHistogram logs read back
by hdrh, and the command line (``--save``, ``--compare``, ``--fail-on-regression``,
``--html``, ``--markdown``, ``--hdr-dir``) through a subprocess. No test asserts a speed: an
injected 3× slowdown is made by editing a saved baseline."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import random
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from kaelix.bench import (
    BenchRun,
    CaseResult,
    ContenderResult,
    Latency,
    PerformanceRegression,
    Settings,
    compare,
    compare_runs,
    encode_latencies,
    load_history,
    load_run,
    mann_whitney_u,
    save_run,
    write_hdr_logs,
)
from kaelix.bench._cli import EXIT_REGRESSION, main
from kaelix.bench._compare import judge, render_comparison, severity_of
from kaelix.bench._hdrlog import LEGEND, log_name
from kaelix.bench._history import history_stem, resolve, saved_names
from kaelix.bench._model import Role
from kaelix.bench._runner import summarise
from kaelix.bench._stats import midranks, smallest_p_value, u_distribution

CREATED = "2026-01-02T03:04:05+00:00"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
TRIALS = (100.0, 102.0, 98.0, 101.0, 99.0)
LATENCY_CASE = "1\u21921 processes, one-way latency at 100 k msg/s (64 B)"


# ------------------------------------------------------------------------ Mann-Whitney U


def test_the_exact_distribution_of_u_is_the_textbook_one() -> None:
    # Mann & Whitney (1947), table I: the frequencies of U for n = m = 3 and n = m = 4.
    assert u_distribution(3, 3) == [1, 1, 2, 3, 3, 3, 3, 2, 1, 1]
    assert u_distribution(4, 4) == [1, 1, 2, 3, 5, 5, 7, 7, 8, 7, 7, 5, 5, 3, 2, 1, 1]
    for n1, n2 in ((1, 1), (2, 5), (5, 2), (7, 9), (15, 15)):
        counts = u_distribution(n1, n2)
        assert sum(counts) == math.comb(n1 + n2, n1) and counts == counts[::-1]
    assert smallest_p_value(3, 3) == 1 / 20 and smallest_p_value(5, 5) == 1 / 252
    assert smallest_p_value(0, 5) == 1.0


@pytest.mark.parametrize(
    ("n", "critical", "p_at", "p_above"),
    [
        # One-tailed critical values of U at alpha = 0.05 (Mann-Whitney tables): the largest
        # U whose lower-tail probability is at most 0.05, with that probability and the next.
        (4, 1, 2 / 70, 4 / 70),
        (5, 4, 12 / 252, 19 / 252),
        (10, 27, 8_241 / 184_756, 9_711 / 184_756),  # 0.0446, 0.0526
    ],
)
def test_one_sided_p_values_match_the_critical_value_tables(
    n: int, critical: int, p_at: float, p_above: float
) -> None:
    def sample_with_u(u: int) -> tuple[list[int], list[int]]:
        """x and y of n values each, x below y except for u pairs (no ties)."""
        order = ["y"] * n + ["x"] * n  # every x above every y: U(x) = n * n
        x_values: list[int] = []
        y_values: list[int] = []
        # move x's down past y's until U(x) = u (each swap of neighbours removes one pair)
        pairs = n * n
        i = 0
        while pairs > u:
            if i + 1 < len(order) and order[i] == "y" and order[i + 1] == "x":
                order[i], order[i + 1] = "x", "y"
                pairs -= 1
                i = 0
                continue
            i += 1
        for value, who in enumerate(order):
            (x_values if who == "x" else y_values).append(value)
        return x_values, y_values

    x, y = sample_with_u(critical)
    at = mann_whitney_u(x, y, "less")
    assert at.u == critical and at.method == "exact"
    assert at.p_value == pytest.approx(p_at, abs=5e-6) and at.p_value <= 0.05
    above = mann_whitney_u(*sample_with_u(critical + 1), "less")
    assert above.p_value == pytest.approx(p_above, abs=5e-6) and above.p_value > 0.05
    # the same samples swapped: "greater" is the mirror image
    assert mann_whitney_u(y, x, "greater").p_value == pytest.approx(at.p_value)


def test_complete_separation_and_the_two_sided_test() -> None:
    slow, fast = [4.0, 5.0, 6.0], [1.0, 2.0, 3.0]
    assert mann_whitney_u(slow, fast).p_value == 1 / 20  # the docstring's example
    assert mann_whitney_u(slow, fast, "less").p_value == 1.0
    assert mann_whitney_u(slow, fast, "two-sided").p_value == 2 / 20
    assert mann_whitney_u(slow, fast).u == 9


def test_ties_use_the_normal_approximation_with_tie_and_continuity_corrections() -> None:
    # scipy.stats.mannwhitneyu(x, y, method="asymptotic") on the same data gives
    # U = 6.5 and p = 0.069313 (less), 0.138626 (two-sided), 0.952148 (greater).
    x = [1.0, 2.0, 2.0, 3.0, 5.0]
    y = [2.0, 3.0, 4.0, 4.0, 6.0, 7.0]
    assert midranks([*x, *y]) == [1, 3, 3, 5.5, 9, 3, 5.5, 7.5, 7.5, 10, 11]
    less = mann_whitney_u(x, y, "less")
    assert (less.u, less.method) == (6.5, "normal")
    assert less.p_value == pytest.approx(0.069313, abs=1e-6)
    assert mann_whitney_u(x, y, "two-sided").p_value == pytest.approx(0.138626, abs=1e-6)
    assert mann_whitney_u(x, y, "greater").p_value == pytest.approx(0.952148, abs=1e-6)
    # by hand: mean 15, variance 30 / 12 * (12 - 36 / 110), p = P(Z > (15 - 6.5 - 0.5) / sd)
    sd = math.sqrt(30 / 12 * (12 - 36 / 110))
    expected = 0.5 * math.erfc(((15 - 6.5) - 0.5) / sd / math.sqrt(2))
    assert less.p_value == pytest.approx(expected, rel=1e-12)
    assert mann_whitney_u([3.0, 3.0], [3.0, 3.0]).p_value == 1.0  # all tied: no evidence


def test_mann_whitney_rejects_what_it_cannot_rank() -> None:
    with pytest.raises(ValueError, match="both samples need at least one value; got 0 and 2"):
        mann_whitney_u([], [1.0, 2.0])
    with pytest.raises(ValueError, match="the samples hold NaN"):
        mann_whitney_u([math.nan], [1.0])
    with pytest.raises(ValueError, match="alternative must be 'greater', 'less' or 'two-sided'"):
        mann_whitney_u([1.0], [2.0], "bigger")  # type: ignore[arg-type]


# ----------------------------------------------------------------- verdicts and severities


@pytest.mark.parametrize(
    ("change", "threshold", "severity"),
    [
        (10.0, 10.0, None),
        ((1.1 / 1.0 - 1) * 100, 10.0, None),  # 10.000000000000009
        ((1.2 / 1.0 - 1) * 100, 10.0, "minor"),
        (10.5, 10.0, "minor"),
        (20.0, 10.0, "minor"),
        (20.5, 10.0, "major"),
        (30.5, 10.0, "critical"),
        (200.0, 10.0, "critical"),
        (16.0, 5.0, "critical"),
        (-50.0, 10.0, None),
    ],
)
def test_severity_is_minor_major_critical_beyond_1_2_3_times_the_threshold(
    change: float, threshold: float, severity: str | None
) -> None:
    assert severity_of(change, threshold) == severity


def test_judge_needs_both_the_threshold_and_significance() -> None:
    base = list(TRIALS)
    slower = [t * 1.5 for t in base]
    assert judge(base, slower, 50.0, 10.0) == ("regression", 1 / 252, "critical")
    assert judge(slower, base, -33.3, 10.0) == ("improvement", 1 / 252, None)
    assert judge(base, [t * 1.05 for t in base], 5.0, 10.0) == ("same", None, None)
    assert judge(base, [t * 1.1 for t in base], (1.1 - 1) * 100, 10.0) == ("same", None, None)
    assert judge(base[:2], slower[:2], 50.0, 10.0) == ("too few trials", None, None)
    # median 115 against 100 (+15 %), but one trial under every baseline trial: U = 20 of
    # 25, P(U >= 20) = 19 / 252 > 0.05
    overlapping = [97.0, 103.0, 115.0, 130.0, 140.0]
    assert judge(base, overlapping, 15.0, 10.0) == ("not significant", 19 / 252, None)


# --------------------------------------------------------------------------- synthetic runs


def _rate(name: str, role: Role, trials: Sequence[float], messages: int = 1) -> ContenderResult:
    return ContenderResult(
        name,
        role,
        "ok",
        messages_per_op=messages,
        bytes_per_op=64 * messages,
        timing=summarise(list(trials), 100),
    )


def _latency(
    name: str, role: Role, p50s: Sequence[float], p99s: Sequence[float], *, hdr: str | None = None
) -> ContenderResult:
    p50, p99 = sorted(p50s)[len(p50s) // 2], max(p99s)
    latency = Latency(
        20_000,
        p50,
        p50 * 2,
        p99,
        p99 * 3,
        p99 * 10,
        p50 * 1.2,
        p9999_ns=p99 * 5,
        trials_p99_ns=tuple(p99s),
        hdr=hdr,
    )
    return ContenderResult(name, role, "ok", timing=summarise(list(p50s), 1), latency=latency)


def _run(
    kaelix: Sequence[float] = TRIALS,
    peer: Sequence[float] = TRIALS,
    *,
    p50s: Sequence[float] = (1000.0, 1010.0, 990.0, 1005.0, 995.0),
    p99s: Sequence[float] = (5000.0, 5100.0, 4900.0, 5050.0, 4950.0),
    machine: dict[str, Any] | None = None,
    created: str = CREATED,
) -> BenchRun:
    codec = CaseResult(
        "codec",
        "batch encode 64 B (N=10)",
        "messages",
        (_rate("kaelix", "kaelix", [t * 10 for t in kaelix], 10), _rate("msgspec", "peer", peer)),
    )
    latency = CaseResult(
        "ring",
        LATENCY_CASE,
        "latency",
        (
            _latency("kaelix (spin)", "kaelix", p50s, p99s),
            _latency("faster-fifo", "peer", [t * 10 for t in p50s], [t * 10 for t in p99s]),
        ),
    )
    return BenchRun(
        created=created,
        settings=Settings("quick", len(TRIALS), 20.0, True, ("codec", "ring")),
        machine=machine or {"cpu_model": "test CPU", "git_commit": COMMIT, "git_dirty": False},
        reference=(),
        results=(codec, latency),
    )


def _perturbed(values: Sequence[float], rng: random.Random, spread: float = 0.05) -> list[float]:
    return [v * (1 + rng.uniform(-spread, spread)) for v in values]


def test_a_run_compared_with_itself_or_with_noise_within_the_threshold_has_no_regression() -> None:
    base = _run()
    assert compare(base, base) == []
    assert {c.verdict for c in compare_runs(base, base).changes} == {"same"}
    rng = random.Random(20_240_611)
    for _ in range(50):
        noisy = _run(
            _perturbed(TRIALS, rng),
            _perturbed(TRIALS, rng),
            p50s=_perturbed((1000.0, 1010.0, 990.0, 1005.0, 995.0), rng),
            p99s=_perturbed((5000.0, 5100.0, 4900.0, 5050.0, 4950.0), rng),
        )
        assert compare(base, noisy) == []
        assert compare(noisy, base) == []


def test_an_injected_3x_slowdown_is_a_critical_regression() -> None:
    base = _run()
    slow = _run([t * 3 for t in TRIALS])
    (regression,) = compare(base, slow)
    assert isinstance(regression, PerformanceRegression)
    assert regression.benchmark == "codec: batch encode 64 B (N=10): kaelix"
    assert (regression.suite, regression.case, regression.contender) == (
        "codec",
        "batch encode 64 B (N=10)",
        "kaelix",
    )
    assert regression.metric == "time" and regression.severity == "critical"
    assert regression.baseline == pytest.approx(100.0)  # per message: 1,000 ns per 10
    assert regression.current == pytest.approx(300.0)
    assert regression.change_pct == pytest.approx(200.0) and regression.threshold == 10.0
    assert regression.p_value == pytest.approx(1 / 252)
    with pytest.raises(dataclasses.FrozenInstanceError):
        regression.severity = "minor"  # type: ignore[misc]

    # the other way round it is an improvement, never a failure
    assert compare(slow, base) == []
    comparison = compare_runs(slow, base)
    (better,) = comparison.improvements
    assert better.contender == "kaelix" and better.change_pct == pytest.approx(-100 / 1.5)


@pytest.mark.parametrize(
    ("factor", "severity"), [(1.15, "minor"), (1.25, "major"), (1.35, "critical")]
)
def test_severity_levels_of_a_significant_slowdown(factor: float, severity: str) -> None:
    (regression,) = compare(_run(), _run([t * factor for t in TRIALS]))
    assert regression.severity == severity
    assert compare(_run(), _run([t * factor for t in TRIALS]), threshold_pct=40.0) == []


def test_a_slower_peer_is_context_not_a_failure() -> None:
    comparison = compare_runs(_run(), _run(peer=[t * 3 for t in TRIALS]))
    assert comparison.regressions == ()
    (context,) = [c for c in comparison.context if c.verdict == "regression"]
    assert context.contender == "msgspec" and context.role == "peer"
    gated = compare_runs(_run(), _run(peer=[t * 3 for t in TRIALS]), gate=("kaelix", "peer"))
    assert [r.contender for r in gated.regressions] == ["msgspec"]
    assert "1 slower and 0 faster beyond 10% (significant)" in render_comparison(comparison)


def test_tail_latency_is_compared_on_p99_not_only_the_median() -> None:
    base = _run()
    tail = _run(p99s=[t * 1.6 for t in (5000.0, 5100.0, 4900.0, 5050.0, 4950.0)])
    (regression,) = compare(base, tail)
    assert regression.metric == "p99" and regression.contender == "kaelix (spin)"
    assert regression.severity == "critical" and regression.change_pct == pytest.approx(60.0)
    verdicts = {(c.contender, c.metric): c.verdict for c in compare_runs(base, tail).changes}
    assert verdicts[("kaelix (spin)", "p50")] == "same"

    # a result written before per-trial p99 was recorded cannot be tested on p99
    old_case = dataclasses.replace(
        base.results[1],
        contenders=tuple(
            dataclasses.replace(
                c, latency=dataclasses.replace(c.latency, trials_p99_ns=(), p9999_ns=None)
            )
            if c.latency is not None
            else c
            for c in base.results[1].contenders
        ),
    )
    old = dataclasses.replace(base, results=(base.results[0], old_case))
    changes = {(c.contender, c.metric): c for c in compare_runs(old, tail).changes}
    assert changes[("kaelix (spin)", "p99")].verdict == "too few trials"
    assert compare(old, tail) == []


def test_the_comparison_table_and_its_notes() -> None:
    base = _run()
    other_machine = {"cpu_model": "another CPU", "git_commit": COMMIT, "git_dirty": True}
    slow = _run([t * 3 for t in TRIALS], machine=other_machine)
    slow = dataclasses.replace(
        slow, results=(slow.results[0], dataclasses.replace(slow.results[1], contenders=()))
    )
    text = render_comparison(compare_runs(base, slow))
    lines = text.splitlines()
    assert lines[0].startswith(f"Compared with the baseline (run of {CREATED}, commit ")
    assert "one-sided Mann-Whitney U test" in lines[0] and "p \u2264 0.05" in lines[0]
    header = lines[1].split()
    assert header == [
        "case",
        "contender",
        "metric",
        "baseline",
        "current",
        "change",
        "p",
        "verdict",
    ]
    row = next(line for line in lines if line.startswith("batch encode"))
    assert row.split()[-8:] == [
        "100",
        "ns",
        "300",
        "ns",
        "+200%",
        "0.004",
        "regression",
        "(critical)",
    ]
    assert "regressions: 1 (1 critical) \u00b7 improvements: 0" in text
    assert (
        "\u2717 critical regression: codec: batch encode 64 B (N=10): kaelix: time/msg "
        "100 ns \u2192 300 ns (+200%, p 0.004)" in text
    )
    assert f"measured in the baseline, not in this run: ring: {LATENCY_CASE}: kaelix (spin)" in text
    assert "note: cpu_model differs: test CPU in the baseline, another CPU now" in text


def test_compare_rejects_a_threshold_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="threshold_pct must be a positive percentage; got 0"):
        compare(_run(), _run(), threshold_pct=0)


# ------------------------------------------------------------------------ the JSON record


def test_new_latency_fields_round_trip_and_older_files_still_load() -> None:
    hdr = encode_latencies([1_000, 2_000, 3_000, 40_000])
    assert hdr.startswith("HISTFAAA")
    base = _run()
    case = dataclasses.replace(
        base.results[1],
        contenders=(
            _latency("kaelix (spin)", "kaelix", [1.0, 2.0, 3.0], [4.0, 5.0, 6.0], hdr=hdr),
        ),
    )
    run = dataclasses.replace(base, results=(base.results[0], case))
    data = json.loads(json.dumps(run.to_json()))
    latency = data["results"][1]["contenders"][0]["latency"]
    assert latency["hdr"] == hdr and latency["trials_p99_ns"] == [4.0, 5.0, 6.0]
    assert latency["p9999_ns"] == 30.0
    assert BenchRun.from_json(data) == run

    for key in ("hdr", "trials_p99_ns", "p9999_ns"):  # a file of the first kaelix.bench/1
        del latency[key]
    for key in ("size", "messages"):
        del data["settings"][key]
    old = BenchRun.from_json(data).results[1].contenders[0].latency
    assert old is not None and (old.hdr, old.trials_p99_ns, old.p9999_ns) == (None, (), None)


# --------------------------------------------------------------------- saving and history


def test_save_writes_the_latest_and_appends_to_the_history(tmp_path: Path) -> None:
    run = _run()
    latest, entry = save_run(run, "main", tmp_path)
    assert latest == tmp_path / "main.json"
    assert entry == tmp_path / "history" / "main" / f"20260102T030405Z-{COMMIT[:12]}.json"
    again = dataclasses.replace(run, machine={**run.machine, "git_dirty": True})
    _, dirty = save_run(again, "main", tmp_path)
    _, same_second = save_run(again, "main", tmp_path)
    assert dirty.name == f"20260102T030405Z-{COMMIT[:12]}-dirty.json"
    assert same_second.name == f"20260102T030405Z-{COMMIT[:12]}-dirty_2.json"
    assert load_history("main", tmp_path) == [run, again, again]
    assert load_history("main", tmp_path, limit=1) == [again]
    assert load_run(latest) == again  # the latest is replaced, the history kept
    assert not list(tmp_path.rglob("*.tmp"))
    assert saved_names(tmp_path) == ["main"]
    assert resolve("main", tmp_path) == latest
    assert resolve(str(entry), tmp_path) == entry
    nocommit = dataclasses.replace(run, machine={}, created="2026-01-02T04:04:05+01:00")
    assert history_stem(nocommit) == "20260102T030405Z-nocommit"


def test_saved_names_and_files_are_checked(tmp_path: Path) -> None:
    for bad in ("../up", "a/b", ".hidden", "-x", "", "main.json", "x" * 101):
        with pytest.raises(ValueError, match="A saved result's name is up to 100 letters"):
            save_run(_run(), bad, tmp_path)
    with pytest.raises(FileNotFoundError, match=r"No saved result named 'nosuch' in .*none"):
        resolve("nosuch", tmp_path)
    (tmp_path / "junk.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match=r"junk\.json is not a readable JSON result file"):
        load_run(tmp_path / "junk.json")
    (tmp_path / "other.json").write_text('{"schema": "other/9"}', encoding="utf-8")
    with pytest.raises(ValueError, match=r"Expected a 'kaelix\.bench/1' result file"):
        load_run(tmp_path / "other.json")


# ------------------------------------------------------------------------ HdrHistogram logs


def test_hdr_logs_are_read_back_by_hdrh(tmp_path: Path) -> None:
    import numpy as np

    pytest.importorskip("hdrh")
    from hdrh.histogram import HdrHistogram as HdrhHistogram
    from hdrh.log import HistogramLogReader

    import kaelix

    rng = np.random.default_rng(7)
    spin = rng.lognormal(np.log(3_000), 1.0, 20_000)
    fifo = rng.lognormal(np.log(30_000), 1.0, 20_000)

    def measured(name: str, role: Role, values: Any, *, hdr: bool = True) -> ContenderResult:
        p50, p90, p99, p999, p9999, most = np.percentile(values, [50, 90, 99, 99.9, 99.99, 100])
        latency = Latency(
            values.size,
            p50,
            p90,
            p99,
            p999,
            most,
            values.mean(),
            p9999_ns=p9999,
            hdr=encode_latencies(values) if hdr else None,
        )
        return ContenderResult(name, role, "ok", timing=summarise([p50], 1), latency=latency)

    base = _run()
    contenders = (
        measured("kaelix (spin)", "kaelix", spin),
        measured("faster-fifo", "peer", fifo),
        measured("multiprocessing.Queue", "peer", fifo, hdr=False),  # no histogram: no file
    )
    run = dataclasses.replace(
        base, results=(base.results[0], dataclasses.replace(base.results[1], contenders=contenders))
    )
    written = write_hdr_logs(run, tmp_path / "hdr")
    assert [p.name for p in written] == [
        "ring-1-1-processes-one-way-latency-at-100-k-msg-s-64-b-kaelix-spin.hlog",
        "ring-1-1-processes-one-way-latency-at-100-k-msg-s-64-b-faster-fifo.hlog",
    ]
    lines = written[0].read_text(encoding="utf-8").splitlines()
    assert lines[1] == "#[Histogram log format version 1.3]"
    epoch = datetime.fromisoformat(CREATED).timestamp()
    assert lines[2].startswith(f"#[StartTime: {epoch:.3f} (seconds since epoch), Fri Jan 02 ")
    assert lines[3] == f"#[BaseTime: {epoch:.3f} (seconds since epoch)]"
    assert lines[4] == LEGEND
    start, length, interval_max, payload = lines[5].split(",")
    assert (start, length) == ("0.000", "0.000") and payload.startswith("HISTFAAA")
    assert float(interval_max) == pytest.approx(spin.max() / 1e6, abs=1e-3)

    for path, values in zip(written, (spin, fifo), strict=True):
        reader = HistogramLogReader(str(path), HdrhHistogram(1, 3_600_000_000_000, 3))
        try:
            histogram = reader.get_next_interval_histogram()
            assert reader.get_next_interval_histogram() is None
        finally:
            reader.close()
        assert histogram is not None
        assert reader.get_start_time_sec() == pytest.approx(epoch)
        ours = kaelix.HdrHistogram(1, 3_600_000_000_000, 3)
        ours.record_values(np.rint(values).astype(np.int64))
        assert histogram.get_total_count() == ours.total_count == 20_000
        for percentile in (50.0, 99.0, 99.9, 99.99):
            assert histogram.get_value_at_percentile(percentile) == pytest.approx(
                ours.value_at_percentile(percentile), rel=1e-3
            )

    assert log_name("a/b", "x  y!", "") == "a-b-x-y-x.hlog"


def test_hdr_dir_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A latency workload with ``encode_hdr`` runs through the real runner; the command line
    writes its histogram and hdrh reads the counts back."""
    pytest.importorskip("hdrh")
    from hdrh.histogram import HdrHistogram as HdrhHistogram
    from hdrh.log import HistogramLogReader

    import kaelix.bench._cli as cli
    from kaelix.bench import Case, Contender, Suite, Workload
    from kaelix.bench._runner import run as real_run

    trials = iter(range(100))

    def latencies() -> list[float]:
        start = next(trials) * 1_000
        return [float(start + i) for i in range(1, 101)]

    def factory() -> Workload:
        return Workload(latencies, timer="latency", encode_hdr=encode_latencies)

    suite = Suite(
        "fake",
        "one latency case",
        lambda config: [
            Case("one-way latency (test)", (Contender("kaelix", factory, "kaelix"),), (), "latency")
        ],
    )
    monkeypatch.setattr(cli, "run", lambda *args, **kwargs: real_run([suite], repeat=3))
    assert main(["ring", "--plain", "--hdr-dir", str(tmp_path / "logs")]) == 0
    (written,) = (tmp_path / "logs").iterdir()
    assert written.name == "fake-one-way-latency-test-kaelix.hlog"
    assert "wrote 1 HdrHistogram logs to " in capsys.readouterr().err
    reader = HistogramLogReader(str(written), HdrhHistogram(1, 3_600_000_000_000, 3))
    try:
        histogram = reader.get_next_interval_histogram()
    finally:
        reader.close()
    assert histogram.get_total_count() == 300  # three trials of 100, the warm-up left out
    assert histogram.get_min_value() == 1_001
    assert histogram.get_max_value() == pytest.approx(3_100, rel=1e-3)  # 3 figures: 3,101

    monkeypatch.setattr(cli, "run", lambda *args, **kwargs: _run())
    assert main(["ring", "--plain", "--hdr-dir", str(tmp_path / "none")]) == 0
    assert "no latency result of this run carries a histogram" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


# ---------------------------------------------------------------------------- command line

TINY = ("codec", "-k", "crc32c 64 B", "--repeat", "5", "--trial-ms", "1", "--plain")


def _bench(
    *args: str, cwd: Path, bench_dir: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KAELIX_BENCH_DIR"}
    if bench_dir is not None:
        env["KAELIX_BENCH_DIR"] = str(bench_dir)
    return subprocess.run(
        [sys.executable, "-W", "error", "-m", "kaelix.bench", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _scale_kaelix(path: Path, target: Path, factor: float) -> None:
    """Copy a saved result with kaelix's times multiplied by ``factor``."""
    data = json.loads(path.read_text(encoding="utf-8"))
    for case in data["results"]:
        for contender in case["contenders"]:
            if contender["role"] != "kaelix" or contender["status"] != "ok":
                continue
            for key in ("median_ns", "q1_ns", "q3_ns", "iqr_ns", "min_ns", "max_ns"):
                contender[key] *= factor
            contender["trials_ns"] = [t * factor for t in contender["trials_ns"]]
            for key in ("messages_per_s", "bytes_per_s"):
                if contender[key] is not None:
                    contender[key] /= factor
    target.write_text(json.dumps(data), encoding="utf-8")


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_save_then_compare_catches_an_injected_3x_slowdown(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    first = _bench(*TINY, "--save", "base", "--json", "first.json", cwd=work)
    assert first.returncode == 0, first.stdout + first.stderr
    saved = work / "benchmarks" / "base.json"
    (entry,) = (work / "benchmarks" / "history" / "base").iterdir()
    assert json.loads(saved.read_text("utf-8")) == json.loads(entry.read_text("utf-8"))
    assert json.loads((work / "first.json").read_text("utf-8")) == json.loads(saved.read_text())
    assert f"saved benchmarks{os.sep}base.json and " in first.stderr

    # The baseline made 3x faster: this run is 3x slower than it.
    _scale_kaelix(saved, work / "fast.json", 1 / 3)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    gated = _bench(
        *TINY,
        "--compare",
        str(work / "fast.json"),
        "--fail-on-regression",
        "--save",
        "base",
        "--html",
        "report.html",
        "--markdown",
        "report.md",
        cwd=elsewhere,
        bench_dir=work / "benchmarks",  # $KAELIX_BENCH_DIR: the same saved results
    )
    assert gated.returncode == EXIT_REGRESSION, gated.stdout + gated.stderr
    assert "regression (critical)" in gated.stdout
    assert "\u2717 critical regression: codec: crc32c 64 B: kaelix: time/msg" in gated.stdout
    assert "1 performance regression against " in gated.stderr
    assert "exit status 3 (--fail-on-regression)" in gated.stderr
    history = sorted((work / "benchmarks" / "history" / "base").iterdir())
    assert len(history) == 2 and history[0] == entry  # appended, not replaced
    assert load_run(work / "benchmarks" / "base.json") == load_run(history[1])

    page = (elsewhere / "report.html").read_text(encoding="utf-8")
    parser = _Tags()
    parser.feed(page)
    parser.close()
    charts = {attrs.get("data-chart") for tag, attrs in parser.tags if tag == "svg"}
    assert {"throughput", "history"} <= charts  # the saved run feeds the trend chart
    assert any("delta" in (attrs.get("class") or "") for _, attrs in parser.tags)
    assert "1 earlier runs in the trends" in gated.stderr
    markdown = (elsewhere / "report.md").read_text(encoding="utf-8")
    assert markdown.startswith("# kaelix benchmarks") and "## codec suite" in markdown
    assert "| crc32c 64 B | kaelix |" in markdown  # the baseline table

    # Without --fail-on-regression the same finding leaves the exit status alone.
    reported = _bench(*TINY, "--compare", str(work / "fast.json"), cwd=work)
    assert reported.returncode == 0, reported.stdout + reported.stderr
    assert "regression (critical)" in reported.stdout

    # A baseline 3x slower than this run: an improvement, never a failure.
    _scale_kaelix(saved, work / "slow.json", 3.0)
    improved = _bench(*TINY, "--compare", "slow.json", "--fail-on-regression", cwd=work)
    assert improved.returncode == 0, improved.stdout + improved.stderr
    assert "improvement" in improved.stdout and "regressions: 0" in improved.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fail-on-regression"], "--fail-on-regression needs --compare NAME_OR_FILE"),
        (["--compare", "nosuch"], "--compare: No saved result named 'nosuch' in "),
        (["--save", "../up"], "--save: A saved result's name is up to 100 letters"),
        (["--threshold", "0"], "expected a number > 0, got 0"),
        (["--size", "0"], "expected a whole number >= 1, got 0"),
        (["--messages", "x"], "expected a whole number >= 1, got 'x'"),
    ],
)
def test_regression_options_usage_errors_exit_2(
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAELIX_BENCH_DIR", str(tmp_path))
    with pytest.raises(SystemExit) as exit_info:
        main(["codec", *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_the_html_trends_come_from_the_saved_or_the_compared_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from kaelix.bench._cli import _load_history

    monkeypatch.setenv("KAELIX_BENCH_DIR", str(tmp_path))
    run = _run()
    save_run(run, "main")
    assert _load_history("new", "main") == [run]  # nothing saved as "new" yet
    assert _load_history("main", None) == [run]
    assert _load_history(None, str(tmp_path / "main.json")) == []  # a path: no history
    assert _load_history(None, None) == []
    (tmp_path / "history" / "main" / "broken.json").write_text("{", encoding="utf-8")
    assert _load_history("main", None) == []
    assert "note: no history trends in the HTML report: " in capsys.readouterr().err


def test_compare_reads_a_broken_file_as_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("[]", encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        main(["codec", "--compare", str(broken)])
    assert exit_info.value.code == 2
    assert "holds JSON but not a result" in capsys.readouterr().err


def test_print_comparison_plain_and_rich() -> None:
    from kaelix.bench import print_comparison

    comparison = compare_runs(_run(), _run([t * 3 for t in TRIALS]))
    plain = io.StringIO()
    print_comparison(comparison, file=plain, plain=True)
    assert plain.getvalue() == "\n" + render_comparison(comparison)
    pytest.importorskip("rich")
    drawn = io.StringIO()
    print_comparison(comparison, file=drawn)
    assert "regression (critical)" in drawn.getvalue() and "Mann-Whitney" in drawn.getvalue()
