"""python -m kaelix.bench: the command line, the Python API, the JSON schema, and the ratio and
bar logic on synthetic results. No test here asserts a speed: bars are the bench's job."""

from __future__ import annotations

import functools
import gc
import io
import json
import multiprocessing
import statistics
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from kaelix.bench import (
    SCHEMA,
    Bar,
    BenchRun,
    Case,
    CaseResult,
    Contender,
    ContenderResult,
    Latency,
    ProgressEvent,
    Settings,
    Suite,
    SuiteConfig,
    Timing,
    Workload,
    check_bar,
    check_bars,
    render_text,
    run,
)
from kaelix.bench._cli import main
from kaelix.bench._format import format_speedup, format_time
from kaelix.bench._model import Role
from kaelix.bench._report import PlainProgress, case_rows, print_report
from kaelix.bench._runner import (
    calibrate,
    gc_paused,
    measure,
    measure_interleaved,
    summarise,
    summarise_latency,
)
from kaelix.bench._runner import measure_contender as _measure_contender
from kaelix.bench.suites import SUITES, codec, hdr, load_suite, ring, stream, validate
from kaelix.bench.suites import queue as bench_queue

ROOT = Path(__file__).resolve().parent.parent

CODEC_CASES = (
    "encode+decode one message (64 B)",
    "encode one message (64 B)",
    "decode one message (64 B)",
    "batch encode 64 B (N=10,000)",
    "MessageBatch.from_bytes 64 B (N=10,000)",
    "decode_batch to a list 64 B (N=10,000)",
    "MessageBatch.from_messages 64 B (N=10,000)",
    "crc32c 64 B",
    "crc32c 4 KiB",
    "crc32c 64 KiB",
)
RING_CASES = (
    "push+pop one message (64 B)",
    "push_batch+pop_batch 64 B (1,024 frames)",
    "push_batch+pop_batch 4 KiB (1,024 frames)",
    "1\u21921 processes, one message per call (64 B)",
    "1\u21921 processes, batches of 1,024 frames (64 B)",
    "1\u21921 processes, one-way latency at 100 k msg/s (64 B)",
    "1\u21921 threads, one-way latency at 10 k msg/s (64 B)",
    "1\u21921 processes, one-way latency at 10 k msg/s (64 B)",
)
STREAM_CASES = (
    "1\u21921 threads, one message per call (64 B)",
    "1\u21921 threads, batches of 1,024 (64 B)",
    "1\u21921 processes, one message per call (64 B)",
    "1\u21921 processes, batches of 1,024 (64 B)",
)
VALIDATE_CASES = (
    "check_delivery 1,000,000 messages",
    "check_delivery 1,000,000 messages, streams interleaved anew on receipt",
    "DeliveryTracker.update 1,000,000 messages (batches of 65,536)",
    "numba compile: first call in a fresh process",
)
INSTALL_HINT = 'pip install "kaelix[bench]"'
TINY = ("--repeat", "2", "--trial-ms", "1")


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error", "-m", "kaelix.bench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


# ------------------------------------------------------------------------ JSON schema check


def _check_number(value: object, where: str, *, positive: bool = False) -> None:
    assert isinstance(value, (int, float)) and not isinstance(value, bool), where
    if positive:
        assert value > 0, f"{where} must be positive, got {value}"


def _check_contender(data: Mapping[str, Any], where: str) -> None:
    for key in ("name", "role", "status", "note"):
        assert isinstance(data[key], str), f"{where}.{key}"
    assert data["role"] in ("kaelix", "peer", "reference"), where
    assert data["status"] in ("ok", "skipped", "error"), where
    for key in ("messages_per_op", "bytes_per_op"):
        assert isinstance(data[key], int) and data[key] >= 0, f"{where}.{key}"
    assert isinstance(data["trials_ns"], list), where
    latency = data["latency"]
    if data["status"] == "ok":
        for key in ("median_ns", "q1_ns", "q3_ns", "iqr_ns", "min_ns", "max_ns"):
            _check_number(data[key], f"{where}.{key}", positive=key != "iqr_ns")
        assert data["q1_ns"] <= data["median_ns"] <= data["q3_ns"], where
        assert isinstance(data["inner_loops"], int) and data["inner_loops"] >= 1, where
        assert data["trials_ns"] and all(t > 0 for t in data["trials_ns"]), where
        assert (
            data["messages_per_s"] is not None
            or data["bytes_per_s"] is not None
            or latency is not None
            # a one-off cost (timer "once", e.g. a compile time): one trial, no rate
            or (data["messages_per_op"] == data["bytes_per_op"] == 0 and data["inner_loops"] == 1)
        ), where
    else:
        assert isinstance(data["reason"], str) and data["reason"], f"{where} says why"
        assert data["median_ns"] is None, where
    speedup = data["kaelix_speedup"]
    assert speedup is None or (isinstance(speedup, float) and speedup > 0), where
    if latency is not None:  # a latency contender measures no throughput
        assert data["messages_per_op"] == data["bytes_per_op"] == 0, where
        assert isinstance(latency["samples"], int) and latency["samples"] >= 1, where
        keys = ("p50_ns", "p90_ns", "p99_ns", "p999_ns", "p9999_ns", "max_ns")
        percentiles = [latency[k] for k in keys if latency[k] is not None]
        for value in (*percentiles, latency["mean_ns"]):
            _check_number(value, f"{where}.latency")
        assert percentiles == sorted(percentiles), where
        assert len(percentiles) == 6, f"{where}: p99.99 is recorded"
        trials_p99 = latency["trials_p99_ns"]
        assert isinstance(trials_p99, list) and len(trials_p99) == len(data["trials_ns"]), where
        for value in trials_p99:
            _check_number(value, f"{where}.latency.trials_p99_ns")
        hdr = latency["hdr"]
        assert hdr is None or (isinstance(hdr, str) and hdr.startswith("HISTFAAA")), where


def _check_case(data: Mapping[str, Any], where: str) -> None:
    assert isinstance(data["suite"], str) and isinstance(data["case"], str), where
    assert data["throughput"] in ("messages", "bytes", "both", "latency"), where
    assert isinstance(data["note"], str), where
    for bar in data["bars"]:
        assert isinstance(bar["text"], str) and bar["text"], where
        assert bar["percentile"] is None or bar["kind"] == "max_latency", where
        assert bar["met"] in (True, False, None), where
        assert isinstance(bar["detail"], str), where
    assert isinstance(data["contenders"], list) and data["contenders"], where
    for index, contender in enumerate(data["contenders"]):
        _check_contender(contender, f"{where}.contenders[{index}]")


def check_schema(data: Mapping[str, Any]) -> None:
    """Assert that ``data`` follows schema kaelix.bench/1 (as docs/bench.md describes it)."""
    assert data["schema"] == SCHEMA == "kaelix.bench/1"
    assert isinstance(data["created"], str) and isinstance(data["duration_s"], float)
    settings = data["settings"]
    assert settings["mode"] in ("quick", "full")
    assert isinstance(settings["repeat"], int) and isinstance(settings["trial_ms"], float)
    assert isinstance(settings["peers"], bool) and isinstance(settings["suites"], list)
    for key in ("size", "messages"):
        assert settings[key] is None or (isinstance(settings[key], int) and settings[key] >= 1)
    machine = data["machine"]
    for key in ("cpu_model", "python_version", "python_implementation", "platform"):
        assert isinstance(machine[key], str) and machine[key], key
    assert isinstance(machine["cpu_count"], int) and machine["cpu_count"] >= 1
    cores = machine["physical_cores"]
    assert cores is None or (isinstance(cores, int) and 1 <= cores <= machine["cpu_count"])
    for key in ("numpy_version", "numba_version", "kaelix_version", "crc32c_implementation"):
        assert isinstance(machine[key], str), key
    assert machine["git_commit"] is None or len(machine["git_commit"]) >= 40
    assert machine["git_dirty"] in (None, True, False)
    assert isinstance(machine["peers"], dict)
    for index, case in enumerate(data["reference"]):
        _check_case(case, f"reference[{index}]")
    for index, case in enumerate(data["results"]):
        _check_case(case, f"results[{index}]")


# ---------------------------------------------------------------------------- command line


def test_list_shows_suites_cases_bars_and_peers() -> None:
    done = _bench("--list")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("codec: ")
    for case in CODEC_CASES:
        assert f"  {case}\n" in done.stdout
    assert "bar: \u2264 msgspec" in done.stdout
    assert "bar: \u2265 10 GB/s; \u2265 crc32c" in done.stdout
    assert "\nring: " in done.stdout
    for case in RING_CASES:
        assert f"  {case}\n" in done.stdout
    assert "bar: \u2264 100 ns per pair; \u2265 15\u00d7 queue.Queue" in done.stdout
    assert (
        "bar: p50 \u2264 2 \u00b5s; p99 \u2264 10 \u00b5s; p99.9 \u2264 50 \u00b5s" in done.stdout
    )
    assert "\nstream: " in done.stdout
    for case in STREAM_CASES:
        assert f"  {case}\n" in done.stdout
    assert "kaelix (drop_oldest, 4 partitions)" in done.stdout
    assert "\nvalidate: " in done.stdout
    for case in VALIDATE_CASES:
        assert f"  {case}\n" in done.stdout
    assert "bar: \u2265 200 M msg/s; \u2265 100\u00d7 pure Python (dict/set)" in done.stdout
    assert "optional peers:" in done.stdout
    assert "faster_fifo" in done.stdout
    assert "\n  ignores --size and --messages\n" in done.stdout or "  honours: --" in done.stdout


def test_tiny_codec_run_prints_the_table_and_writes_valid_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = _bench("codec", *TINY, "--plain", "--json", str(out))
    assert done.returncode == 0, done.stdout + done.stderr

    data = json.loads(out.read_text(encoding="utf-8"))
    check_schema(data)
    assert data["settings"]["repeat"] == 2 and data["settings"]["suites"] == ["codec"]
    assert [case["case"] for case in data["results"]] == list(CODEC_CASES)
    assert {case["case"] for case in data["reference"]} == {
        "memcpy 64 KiB (in cache)",
        "memcpy 64 MiB (memory)",
    }
    for case in data["reference"]:
        (copy,) = case["contenders"]
        assert copy["status"] == "ok" and copy["bytes_per_s"] > 0
    for case in data["results"]:
        kaelix = [c for c in case["contenders"] if c["role"] == "kaelix"]
        assert len(kaelix) == 1, case["case"]
        assert kaelix[0]["status"] == "ok", kaelix[0]["reason"]
        assert kaelix[0]["median_ns"] > 0 and len(kaelix[0]["trials_ns"]) == 2
        for peer in case["contenders"]:
            if peer["status"] == "skipped":
                assert INSTALL_HINT in peer["reason"]
            else:
                assert peer["status"] == "ok", peer["reason"]
    bars = {case["case"]: [b["text"] for b in case["bars"]] for case in data["results"]}
    assert bars["encode+decode one message (64 B)"] == ["\u2264 msgspec"]
    assert bars["crc32c 64 KiB"] == ["\u2265 10 GB/s", "\u2265 crc32c"]
    assert bars["encode one message (64 B)"] == []

    # The table: every case, every contender, ratios and bar marks; progress on stderr.
    for case in CODEC_CASES:
        assert case in done.stdout
    assert "vs kaelix" in done.stdout and "physical reference" in done.stdout
    assert "DESIGN.md bars:" in done.stdout
    assert "zlib.crc32 (reference)" in done.stdout
    assert "[30/30] codec: crc32c 64 KiB: kaelix" in done.stderr  # counts contenders
    assert "wrote " in done.stderr


def test_no_peers_runs_kaelix_and_reference_lines_only(tmp_path: Path) -> None:
    out = tmp_path / "kaelix-only.json"
    done = _bench("codec", *TINY, "--no-peers", "-k", "crc32c 64 B", "--json", str(out))
    assert done.returncode == 0, done.stderr
    data = json.loads(out.read_text(encoding="utf-8"))
    check_schema(data)
    (case,) = data["results"]
    assert [c["name"] for c in case["contenders"]] == ["kaelix", "zlib.crc32"]
    assert case["bars"][0]["met"] is None  # the crc32c package did not run


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nosuch"], "unknown suite 'nosuch'; choose from: codec, ring, stream, validate, hdr"),
        (["--repeat", "0"], "expected a whole number >= 1, got 0"),
        (["--trial-ms", "-1"], "expected a number > 0, got -1"),
        (["--quick", "--full"], "not allowed with argument"),
        (["-k", "no case is called this"], "No case matches select="),
    ],
)
def test_usage_errors_exit_2_and_say_why(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_bench_imports_no_numba_and_no_optional_package_until_used() -> None:
    code = (
        "import sys, kaelix.bench\n"
        "from kaelix.bench.suites import SUITES, load_suite\n"
        "from kaelix.bench._model import SuiteConfig\n"
        "for name in SUITES: load_suite(name).cases(SuiteConfig())\n"
        "loaded = {'numba', 'rich', 'msgspec', 'crc32c', 'faster_fifo', 'multiprocessing', 'hdrh'}"
        " & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


# -------------------------------------------------------------------------------- Python API


def test_run_on_a_subset_returns_results_that_round_trip_through_json() -> None:
    events: list[ProgressEvent] = []
    result = run(["codec"], repeat=2, trial_ms=1, select="crc32c", progress=events.append)

    assert isinstance(result, BenchRun)
    assert result.settings == Settings("quick", 2, 1.0, True, ("codec",), "crc32c")
    assert [case.case for case in result.results] == [
        "crc32c 64 B",
        "crc32c 4 KiB",
        "crc32c 64 KiB",
    ]
    for case in result.results:
        kaelix = case.kaelix
        assert kaelix is not None and kaelix.ok and kaelix.bytes_per_s is not None
        assert kaelix.timing is not None and kaelix.timing.median_ns > 0
        reference = case.speedup("zlib.crc32")
        assert reference is not None and reference > 0
    assert result.machine["crc32c_implementation"]

    assert events[0].kind == "start" and events[0].total == 2 + 3 * 3
    assert [e.done for e in events if e.kind == "contender"] == list(range(1, 12))
    assert [e.case for e in events if e.kind == "case"][-1] == "crc32c 64 KiB"

    data = json.loads(json.dumps(result.to_json()))
    check_schema(data)
    assert BenchRun.from_json(data) == result
    assert "crc32c 64 KiB" in render_text(result)


def test_run_accepts_a_suite_object_and_reports_skips_and_errors() -> None:
    def broken() -> Workload:
        raise RuntimeError("peer fell over")

    def cheap() -> Workload:
        return Workload(lambda: None, messages=1, nbytes=8)

    suite = Suite(
        "fake",
        "a suite made up for the test",
        lambda config: [
            Case(
                "one case",
                (
                    Contender("kaelix", cheap, role="kaelix"),
                    Contender("absent", cheap, requires=("kaelix_no_such_module",)),
                    Contender("broken", broken),
                ),
                bars=(Bar("\u2264 absent", "faster_than", peer="absent"),),
            )
        ],
    )
    result = run([suite], repeat=1, trial_ms=0.5)
    (case,) = result.results
    kaelix, absent, failed = case.contenders
    assert kaelix.ok and kaelix.messages_per_op == 1 and kaelix.bytes_per_op == 8
    assert absent.status == "skipped"
    assert absent.reason == f"kaelix_no_such_module is not installed: {INSTALL_HINT}"
    assert failed.status == "error" and failed.reason == "preparing: RuntimeError: peer fell over"
    assert case.bars[0].met is None and "absent skipped" in case.bars[0].detail
    assert result.errors == ((case, failed),)

    text = render_text(result)
    assert "skipped" in text and INSTALL_HINT in text and "peer fell over" in text

    quiet = run([suite], repeat=1, trial_ms=0.5, peers=False)
    assert [c.name for c in quiet.results[0].contenders] == ["kaelix"]


def test_run_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="repeat must be at least 1; got 0"):
        run(["codec"], repeat=0)
    known = "codec, ring, stream, validate, hdr"
    with pytest.raises(ValueError, match=f"Unknown suite 'nosuch'; choose from: {known}"):
        run(["nosuch"])


# ------------------------------------------------------------------------ the ring suite

TINY_RING = ring.RingSizes(
    pairs_per_call=10,
    batch_frames=16,
    cross_messages=4096,  # far more than a 64 KiB ring holds: never one receipt
    latency_messages=50,
    latency_rate=20_000,
    idle_rate=4_000,
    ring_capacity=64 * 1024,
)


def _shm_names(pattern: str) -> set[str]:
    shm = Path("/dev/shm")
    return {p.name for p in shm.glob(pattern)} if shm.is_dir() else set()


def _bench_segments() -> set[str]:
    return _shm_names("kaelix-bench-*")


def _assert_ran_or_skipped(case: CaseResult) -> None:
    """Every contender of ``case`` ran, but for faster-fifo when it is not installed."""
    for contender in case.contenders:
        if contender.status == "skipped":
            assert contender.reason == f"faster_fifo is not installed: {INSTALL_HINT}"
        else:
            assert contender.ok, (case.case, contender.name, contender.reason)


def _assert_cross_process_trials(case: CaseResult, messages: int, frame: int) -> None:
    """Every contender of ``case`` that ran timed one trial of ``messages`` messages of
    ``frame`` bytes per operation."""
    for contender in case.contenders:
        if contender.ok:
            assert contender.timing is not None and contender.timing.inner_loops == 1
            assert contender.messages_per_op == messages
            assert contender.bytes_per_op == messages * frame


def test_the_ring_suite_in_a_tiny_configuration_produces_every_result() -> None:
    before = _bench_segments()
    suite = Suite("ring", "tiny ring suite", functools.partial(ring.cases, sizes=TINY_RING))
    result = run([suite], repeat=1, trial_ms=0.5)

    names = [case.case for case in result.results]
    assert names == [
        "push+pop one message (64 B)",
        "push_batch+pop_batch 64 B (16 frames)",
        "push_batch+pop_batch 4 KiB (16 frames)",
        "1\u21921 processes, one message per call (64 B)",
        "1\u21921 processes, batches of 16 frames (64 B)",
        "1\u21921 processes, one-way latency at 20 k msg/s (64 B)",
        "1\u21921 threads, one-way latency at 4 k msg/s (64 B)",
        "1\u21921 processes, one-way latency at 4 k msg/s (64 B)",
    ]
    assert not result.errors, [(c.case, r.name, r.reason) for c, r in result.errors]
    frame = 56 + 64
    for case in result.results:
        _assert_ran_or_skipped(case)
        kaelix = case.kaelix
        assert kaelix is not None and kaelix.ok, case.case
        assert all(isinstance(check.met, (bool, type(None))) for check in case.bars)

    pairs = result.case("ring", names[0])
    assert [c.name for c in pairs.contenders] == [
        "kaelix",
        "queue.Queue",
        "queue.SimpleQueue",
        "collections.deque",
    ]
    assert all(c.messages_per_op == 10 and c.bytes_per_op == 10 * frame for c in pairs.contenders)
    assert [check.bar.text for check in pairs.bars] == [
        "\u2264 100 ns per pair",
        "\u2265 15\u00d7 queue.Queue",
    ]
    assert pairs.speedup("queue.Queue") is not None

    small, large = result.case("ring", names[1]), result.case("ring", names[2])
    assert small.throughput == large.throughput == "both"
    assert small.kaelix is not None and small.kaelix.bytes_per_op == 16 * frame
    assert large.kaelix is not None and large.kaelix.bytes_per_op == 16 * (56 + 4096)
    assert [check.bar.kind for check in small.bars] == ["min_messages_per_s", "min_memcpy_fraction"]
    assert small.bars[1].met is not None  # the memcpy reference of the same run was found
    assert large.bars == ()

    for name, messages in ((names[3], 4096), (names[4], 4096)):
        case = result.case("ring", name)
        assert [c.name for c in case.contenders] == [
            "kaelix",
            "multiprocessing.Queue",
            "faster-fifo",
        ]
        _assert_cross_process_trials(case, messages, frame)
        assert [check.bar.kind for check in case.bars] == [
            "min_messages_per_s",
            "min_speedup",
            "min_speedup",
        ]

    latency = result.case("ring", names[5])
    assert latency.throughput == "latency"
    assert [c.name for c in latency.contenders] == [
        "kaelix (spin)",
        "kaelix (sleep)",
        "multiprocessing.Queue",
        "faster-fifo",
        "machine floor (no channel)",
    ]
    assert latency.contenders[-1].role == "reference"
    for contender in latency.contenders:
        if contender.ok:
            assert contender.latency is not None and contender.latency.samples == 50
            assert contender.messages_per_op == contender.bytes_per_op == 0
            assert contender.latency.p50_ns <= contender.latency.p99_ns
            assert contender.latency.p99_ns <= contender.latency.max_ns
            assert contender.ns_per_message == contender.latency.p50_ns
    assert [(check.bar.percentile, check.bar.value) for check in latency.bars] == [
        (50.0, 2_000),
        (99.0, 10_000),
        (99.9, 50_000),
    ]
    assert all(check.met is not None for check in latency.bars)

    threads = result.case("ring", names[6])
    assert threads.throughput == "latency" and threads.bars == ()
    assert [c.name for c in threads.contenders] == ["kaelix", "queue.Queue"]
    for contender in threads.contenders:
        assert contender.latency is not None and contender.latency.hdr, contender.name

    idle = result.case("ring", names[7])
    assert idle.throughput == "latency" and idle.bars == ()
    assert [c.name for c in idle.contenders][:2] == ["kaelix (sleep)", "kaelix (spin)"]
    assert all(c.latency is not None and c.latency.samples == 10 for c in idle.contenders if c.ok)

    data = json.loads(json.dumps(result.to_json()))
    check_schema(data)
    assert BenchRun.from_json(data) == result
    text = render_text(result)
    assert "p99 \u00b7 p99.9 \u00b7 max" in text
    assert " lower p50" in text or " higher p50" in text
    assert "M msg/s \u00b7 " in text and "GB/s" in text

    # Every worker stopped, every shared-memory segment the suite made removed.
    assert multiprocessing.active_children() == []
    assert _bench_segments() <= before


def test_ring_cases_are_listed_without_starting_anything() -> None:
    quick = ring.cases(SuiteConfig(quick=True))
    full = ring.cases(SuiteConfig(quick=False))
    assert [case.name for case in quick] == list(RING_CASES)
    # --full adds a latency case at 1 M msg/s between the two quick ones across processes.
    assert [case.name for case in full] == [
        *RING_CASES[:6],
        "1\u21921 processes, one-way latency at 1 M msg/s (64 B)",
        *RING_CASES[6:],
    ]
    assert "200,000 messages per trial" in quick[3].note
    assert "1,000,000 messages per trial" in full[3].note
    assert multiprocessing.active_children() == []


# ----------------------------------------------------------------------- the stream suite

TINY_STREAM = stream.StreamSizes(
    thread_messages=2_000,  # more than a 64 KiB partition holds: drop_oldest may drop
    thread_batches=4,
    cross_messages=4_096,  # more than the four partitions hold: never one receipt
    cross_batches=16,
    batch=16,
    capacity=64 * 1024,
)


def _stream_segments() -> set[str]:
    return _shm_names("kxs.*kaelix-bench-stream-*")


def test_the_stream_suite_in_a_tiny_configuration_produces_every_result() -> None:
    before = _stream_segments()
    suite = Suite("stream", "tiny stream suite", functools.partial(stream.cases, sizes=TINY_STREAM))
    result = run([suite], repeat=1, trial_ms=0.5)

    names = [case.case for case in result.results]
    assert names == [
        "1\u21921 threads, one message per call (64 B)",
        "1\u21921 threads, batches of 16 (64 B)",
        "1\u21921 processes, one message per call (64 B)",
        "1\u21921 processes, batches of 16 (64 B)",
    ]
    assert not result.errors, [(c.case, r.name, r.reason) for c, r in result.errors]
    for case in result.results:
        assert case.bars == ()  # DESIGN.md sets no stream bar
        _assert_ran_or_skipped(case)

    policies = [
        f"kaelix ({policy}, {partitions})"
        for policy in ("block", "error", "drop_oldest")
        for partitions in ("1 partition", "4 partitions")
    ]
    one = result.case("stream", names[0])
    assert [c.name for c in one.contenders] == [*policies, "queue.Queue", "queue.SimpleQueue"]
    assert all(c.messages_per_op == 2_000 and c.bytes_per_op == 2_000 * 64 for c in one.contenders)
    assert one.speedup("queue.Queue") is not None

    batches = result.case("stream", names[1])
    assert [c.name for c in batches.contenders] == [
        "kaelix (1 partition)",
        "kaelix (4 partitions)",
        "queue.Queue (lists)",
    ]
    assert all(c.messages_per_op == 4 * 16 for c in batches.contenders)

    for name, contenders, messages in (
        (names[2], [policies[0], policies[1], policies[4], policies[5]], 4_096),
        (names[3], ["kaelix (1 partition)", "kaelix (4 partitions)"], 16 * 16),
    ):
        case = result.case("stream", name)
        assert [c.name for c in case.contenders] == [
            *contenders,
            "multiprocessing.Queue",
            "faster-fifo",
        ]
        _assert_cross_process_trials(case, messages, 64)

    data = json.loads(json.dumps(result.to_json()))
    check_schema(data)
    assert BenchRun.from_json(data) == result

    # Every worker stopped, every shared stream the suite made removed.
    assert multiprocessing.active_children() == []
    assert _stream_segments() <= before


def test_the_stream_check_catches_a_lost_skipped_or_misplaced_message() -> None:
    from kaelix.bench._procs import StreamReceipt, check_stream_receipt

    finals = {0: 24, 1: 24, 2: 24, 3: 23}
    check = functools.partial(check_stream_receipt, n=99, last_payload=b"p", keyed=True)
    check(StreamReceipt(0, 9, 1, 99, 0, 3, 23, b"p"), finals, drops=False)
    check(StreamReceipt(0, 9, 1, 90, 9, 3, 23, b"p"), finals, drops=True)
    with pytest.raises(AssertionError, match=r"accounted for 98 messages .* expected 99"):
        check(StreamReceipt(0, 9, 1, 98, 0, 3, 23, b"p"), finals, drops=False)
    with pytest.raises(AssertionError, match=r"\(90 received, 9 skipped\); expected 99, none"):
        check(StreamReceipt(0, 9, 1, 90, 9, 3, 23, b"p"), finals, drops=False)
    with pytest.raises(AssertionError, match=r"\(partition 3, sequence 22\) is not the last"):
        check(StreamReceipt(0, 9, 1, 99, 0, 3, 22, b"p"), finals, drops=False)
    with pytest.raises(AssertionError, match="the last payload received is not the last one"):
        check(StreamReceipt(0, 9, 1, 99, 0, 3, 23, b"q"), finals, drops=False)


def test_stream_cases_are_listed_without_starting_anything() -> None:
    quick = stream.cases(SuiteConfig(quick=True))
    full = stream.cases(SuiteConfig(quick=False))
    assert [case.name for case in quick] == list(STREAM_CASES)
    assert [case.name for case in full] == list(STREAM_CASES)
    assert "50,000 messages per trial" in quick[2].note
    assert "200,000 messages per trial" in full[2].note
    assert multiprocessing.active_children() == []


# --------------------------------------------------------------------- the validate suite

TINY_VALIDATE = validate.ValidateSizes(
    messages=20_000, reference_messages=10_000, tracker_batch=4_096, probe_messages=16
)
COMPILE_CONTENDERS = [
    "kaelix check_delivery, no cache",
    "kaelix check_delivery, on-disk cache",
    "kaelix DeliveryTracker.update, no cache",
]


def _probe_dirs() -> set[str]:
    import tempfile

    return {p.name for p in Path(tempfile.gettempdir()).glob("kaelix-bench-numba-*")}


def test_the_validate_suite_in_a_tiny_configuration_produces_every_result() -> None:
    before = _probe_dirs()
    suite = Suite(
        "validate", "tiny validate suite", functools.partial(validate.cases, sizes=TINY_VALIDATE)
    )
    result = run([suite], repeat=1, trial_ms=0.5)

    names = [case.case for case in result.results]
    assert names == [
        "check_delivery 20,000 messages",
        "check_delivery 20,000 messages, streams interleaved anew on receipt",
        "DeliveryTracker.update 20,000 messages (batches of 4,096)",
        "numba compile: first call in a fresh process",
    ]
    assert not result.errors, [(c.case, r.name, r.reason) for c, r in result.errors]
    faults = validate.FAULTS
    received = 20_000 - faults.dropped + faults.duplicated
    reference_received = 10_000 - faults.dropped + faults.duplicated
    floor = result.case("validate", names[0]).contenders[2]
    assert floor.name == "memory floor (read the columns)" and floor.role == "reference"
    assert floor.ok and floor.messages_per_op == received, floor.reason
    for name in (names[0], names[1], names[2]):
        case = result.case("validate", name)
        assert case.throughput == "messages"
        assert [c.name for c in case.contenders][:2] == ["kaelix", validate.PYTHON]
        kaelix, python = case.contenders[:2]
        assert kaelix.ok and python.ok, (kaelix.reason, python.reason)
        assert (kaelix.role, python.role) == ("kaelix", "peer")
        assert kaelix.messages_per_op == received and kaelix.bytes_per_op == 0
        assert python.messages_per_op == reference_received
        assert kaelix.messages_per_s is not None and case.speedup(validate.PYTHON) is not None
        barred = [("min_messages_per_s", None), ("min_speedup", validate.PYTHON)]
        bars = [] if name == names[1] else barred
        assert [(check.bar.kind, check.bar.peer) for check in case.bars] == bars
        assert all(check.met is not None for check in case.bars)
        assert "received = sent with 3 dropped" in case.note

    compiled = result.case("validate", names[3])
    assert [c.name for c in compiled.contenders] == COMPILE_CONTENDERS
    assert compiled.bars == ()
    for contender in compiled.contenders:
        assert contender.ok and contender.role == "kaelix", contender.reason
        assert contender.timing is not None and contender.timing.inner_loops == 1
        assert len(contender.timing.trials_ns) == 1 and contender.timing.median_ns > 0
        assert contender.messages_per_op == contender.bytes_per_op == 0
        assert contender.messages_per_s is None and contender.bytes_per_s is None
    assert _probe_dirs() <= before  # every probe's numba cache directory removed

    data = json.loads(json.dumps(result.to_json()))
    check_schema(data)
    assert BenchRun.from_json(data) == result
    text = render_text(result)
    assert "numba compile: first call in a fresh process" in text
    assert "msg/s counts received messages" in text


def test_validate_cases_are_listed_without_preparing_anything() -> None:
    quick = validate.cases(SuiteConfig(quick=True))
    full = validate.cases(SuiteConfig(quick=False))
    assert [case.name for case in quick] == list(VALIDATE_CASES)
    assert [case.name for case in full] == [
        "check_delivery 10,000,000 messages",
        "check_delivery 10,000,000 messages, streams interleaved anew on receipt",
        "DeliveryTracker.update 10,000,000 messages (batches of 65,536)",
        "numba compile: first call in a fresh process",
    ]
    assert "first 200,000 messages" in quick[0].contenders[1].note


def test_validate_faulty_run_injects_exactly_the_faults_it_reports() -> None:
    run_ = validate.faulty_run(10_000)
    assert set(run_.sent) == set(run_.received) == set(validate.COLUMNS)
    assert run_.received_messages == 10_000 - 3 + 3
    assert run_.sent["producer_id"].dtype.name == "uint64"
    assert run_.sent["partition"].dtype.name == "uint32"
    assert run_.sent["sequence"].dtype.name == "uint64"
    assert run_.sent["checksum"].dtype.name == "uint32"
    assert len(set(run_.sent["producer_id"].tolist())) == 8
    assert set(run_.sent["partition"].tolist()) == {0, 1, 2, 3}
    assert run_.expected == {
        "expected": 10_000,
        "delivered": 10_000 - 3,
        "lost": 3,
        "duplicated": 3,
        "reordered": 1,
        "corrupted": 2,
        "unexpected": 0,
    }
    result = validate.python_check_delivery(
        validate.list_columns(run_.sent), validate.list_columns(run_.received)
    )
    assert {key: result[key] for key in run_.expected} == run_.expected
    assert [len(result["examples"][k]) for k in ("lost", "duplicated", "corrupted")] == [3, 3, 2]
    with pytest.raises(ValueError, match="faulty_run needs at least 5,120 messages"):
        validate.faulty_run(5_000)


def test_reinterleaved_keeps_each_streams_order_and_the_counts() -> None:
    import numpy as np

    run_ = validate.faulty_run(10_000)
    anew = validate.reinterleaved(run_)
    assert anew.sent is run_.sent and anew.expected == run_.expected

    def per_stream(columns: dict[str, Any]) -> dict[tuple[int, int], list[tuple[int, int]]]:
        streams: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for p, q, s, c in zip(*(columns[name].tolist() for name in validate.COLUMNS), strict=True):
            streams.setdefault((p, q), []).append((s, c))
        return streams

    assert per_stream(anew.received) == per_stream(run_.received)
    moved = np.mean(anew.received["sequence"] != run_.received["sequence"])
    assert moved > 0.5  # the streams meet in another order
    result = validate.python_check_delivery(
        validate.list_columns(anew.sent), validate.list_columns(anew.received)
    )
    assert {key: result[key] for key in run_.expected} == run_.expected


def _unexpected_and_late(columns: dict[str, Any]) -> dict[str, Any]:
    """Columns with a message of an unknown producer and an old sequence appended."""
    import numpy as np

    extra = {
        "producer_id": np.array([12345, columns["producer_id"][0]], dtype=np.uint64),
        "partition": np.array([0, columns["partition"][0]], dtype=np.uint32),
        "sequence": np.array([0, columns["sequence"][0]], dtype=np.uint64),
        "checksum": np.array([0, 0], dtype=np.uint32),
    }
    return {name: np.concatenate([columns[name], extra[name]]) for name in validate.COLUMNS}


def test_the_pure_python_contenders_agree_with_kaelix() -> None:
    from kaelix.validate import DeliveryTracker, check_delivery

    faults = validate.Faults(dropped=4, duplicated=5, swapped=3, corrupted=2)
    run_ = validate.faulty_run(30_000, 3, 5, faults=faults, seed=7)
    received = _unexpected_and_late(run_.received)
    report = check_delivery(run_.sent, received)
    python = validate.python_check_delivery(
        validate.list_columns(run_.sent), validate.list_columns(received)
    )
    assert {name: getattr(report, name) for name in run_.expected} == {
        name: python[name] for name in run_.expected
    }
    examples = {
        category: [(e.producer_id, e.partition, e.sequence, e.position) for e in shown]
        for category, shown in report.examples.items()
        if category in python["examples"]
    }
    assert examples == python["examples"]
    assert (python["unexpected"], python["duplicated"]) == (1, 5 + 1)  # the two appended

    tracker, twin = DeliveryTracker(window=1_024), validate.PythonTracker(window=1_024)
    for part in range(0, len(received["sequence"]), 4_096):
        chunk = {name: received[name][part : part + 4_096] for name in validate.COLUMNS[:3]}
        tracker.update(chunk)
        twin.update(*(chunk[name].tolist() for name in validate.COLUMNS[:3]))
    counts = tracker.report()
    assert {name: getattr(counts, name) for name in twin.report()} == twin.report()


def test_a_once_workload_is_called_once_without_a_warm_up() -> None:
    calls: list[int] = []

    def first_call() -> float:
        calls.append(1)
        return 2.5e8

    workload = Workload(first_call, messages=0, timer="once")
    result = measure_contender(Contender("kaelix", lambda: workload, role="kaelix"))
    assert result.ok and result.timing is not None and calls == [1]
    assert result.timing.trials_ns == (2.5e8,) and result.timing.inner_loops == 1
    assert result.messages_per_s is None and result.ns_per_message == 2.5e8

    failed = measure_contender(Contender("kaelix", lambda: Workload(lambda: 0, timer="once")))
    assert failed.status == "error"
    assert "timer='once' must return the positive nanoseconds" in str(failed.reason)


# --------------------------------------------------------------------------- measurement


def test_summarise_takes_median_and_inclusive_quartiles() -> None:
    timing = summarise([5.0, 1.0, 4.0, 2.0, 3.0], inner_loops=10)
    assert (timing.median_ns, timing.q1_ns, timing.q3_ns) == (3.0, 2.0, 4.0)
    assert (timing.min_ns, timing.max_ns, timing.iqr_ns) == (1.0, 5.0, 2.0)
    assert timing.trials_ns == (5.0, 1.0, 4.0, 2.0, 3.0)  # in the order they ran
    single = summarise([7.0], inner_loops=1)
    assert (single.q1_ns, single.median_ns, single.q3_ns, single.iqr_ns) == (7.0, 7.0, 7.0, 0.0)
    with pytest.raises(ValueError, match="zero trials"):
        summarise([], inner_loops=1)


def test_measure_counts_trials_and_calibrates_a_positive_loop_count() -> None:
    calls = 0

    def call() -> None:
        nonlocal calls
        calls += 1

    loops = calibrate(call, target_ns=1e6)
    assert isinstance(loops, int) and loops >= 1
    calls = 0
    timing = measure(Workload(call), repeat=3, trial_ms=1)
    assert len(timing.trials_ns) == 3 and timing.median_ns > 0
    assert calls >= timing.inner_loops * 4  # calibration, the warm-up and three trials
    with pytest.raises(ValueError, match="repeat must be at least 1"):
        measure(Workload(call), repeat=0, trial_ms=1)


def measure_contender(contender: Contender) -> ContenderResult:
    return _measure_contender(contender, repeat=3, trial_ms=1)


def test_a_self_timed_workload_is_called_once_per_trial_and_closed_after() -> None:
    calls: list[int] = []
    closed: list[bool] = []

    def trial() -> float:
        calls.append(1)
        return 1_000.0 * len(calls)

    workload = Workload(trial, messages=10, timer="call", close=lambda: closed.append(True))
    result = measure_contender(Contender("kaelix", lambda: workload, role="kaelix"))
    assert result.ok and result.timing is not None
    assert result.timing.inner_loops == 1 and len(calls) == 1 + 3  # a warm-up, three trials
    assert result.timing.trials_ns == (2_000.0, 3_000.0, 4_000.0)
    assert result.ns_per_message == 300.0 and closed == [True]

    def wrong() -> object:
        return None

    failed = measure_contender(Contender("kaelix", lambda: Workload(wrong, timer="call")))
    assert failed.status == "error" and "must return the positive nanoseconds" in str(failed.reason)


def test_interleaved_contenders_take_turns_and_keep_their_own_trials() -> None:
    order: list[str] = []
    closed: list[str] = []

    def contender(name: str, ns: float, describe: str | None = None) -> Contender:
        def call() -> float:
            order.append(name)
            return ns * len([o for o in order if o == name])

        def factory() -> Workload:
            return Workload(
                call,
                messages=10,
                timer="call",
                close=lambda: closed.append(name),
                describe=None if describe is None else (lambda: describe),
            )

        return Contender(name, factory, role="kaelix" if name == "a" else "reference", note="n")

    def broken() -> Workload:
        raise RuntimeError("no such thing")

    results = measure_interleaved(
        [contender("a", 100.0, "it was fine"), contender("b", 10.0), Contender("c", broken)],
        repeat=4,
        trial_ms=1,
    )
    warm_ups = ["a", "b"]
    assert order == [*warm_ups, "a", "b", "b", "a", "a", "b", "b", "a"]
    a, b, c = results
    assert a.ok and a.timing is not None and a.timing.trials_ns == (200.0, 300.0, 400.0, 500.0)
    assert b.ok and b.timing is not None and b.timing.trials_ns == (20.0, 30.0, 40.0, 50.0)
    assert a.note == "n; measured: it was fine" and b.note == "n"
    assert a.ns_per_message == 35.0
    assert c.status == "error" and "preparing: RuntimeError: no such thing" in str(c.reason)
    assert sorted(closed) == ["a", "b"]
    once = measure_interleaved(
        [Contender("d", lambda: Workload(lambda: 1.0, timer="once"))], repeat=2, trial_ms=1
    )
    assert once[0].status == "error" and "loop- or call-timed" in str(once[0].reason)
    assert closed.count("a") == 1


def test_an_interleaved_case_runs_its_minimum_of_trials_unless_repeat_is_given() -> None:
    def factory() -> Workload:
        return Workload(lambda: 5.0, messages=1, timer="call")

    case = Case(
        "turns",
        (Contender("kaelix", factory, role="kaelix"), Contender("ref", factory, role="reference")),
        interleave=True,
        min_repeat=7,
    )
    suite = Suite(name="turns", description="d", cases=lambda config: (case,))
    result = run([suite])
    assert [len(c.timing.trials_ns) for c in result.results[0].contenders if c.timing] == [7, 7]
    result = run([suite], repeat=2)
    assert [len(c.timing.trials_ns) for c in result.results[0].contenders if c.timing] == [2, 2]


def test_a_latency_workload_pools_its_trials_into_percentiles() -> None:
    trials = iter([[9.0] * 4, [1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0], [100.0] * 4])
    closed: list[bool] = []

    def call() -> list[float]:
        return next(trials)

    workload = Workload(
        call, messages=4, nbytes=64, timer="latency", close=lambda: closed.append(1)
    )
    result = measure_contender(Contender("kaelix", lambda: workload, role="kaelix"))
    assert result.ok and result.latency is not None and result.timing is not None
    assert closed == [1]
    # the warm-up ([9] * 4) is discarded; three trials of four messages remain
    assert result.latency.samples == 12 and result.latency.max_ns == 100.0
    assert result.latency.p50_ns == 6.5 and result.latency.mean_ns == pytest.approx(436 / 12)
    assert result.timing.trials_ns == (2.5, 6.5, 100.0)  # each trial's median
    assert result.messages_per_op == result.bytes_per_op == 0
    assert result.messages_per_s is None and result.ns_per_message == 6.5

    assert result.latency.trials_p99_ns == pytest.approx((3.97, 7.97, 100.0))
    assert result.latency.p9999_ns == pytest.approx(100.0) and result.latency.hdr is None

    timing, latency = summarise_latency([[1, 2], [3, 4]])
    assert (latency.p50_ns, latency.max_ns, latency.samples) == (2.5, 4.0, 4)
    assert latency.at(100) == 4.0 and timing.median_ns == 2.5
    assert latency.at(99.99) == pytest.approx(3.9997) == latency.p9999_ns
    with pytest.raises(
        ValueError, match=r"percentile must be one of 50, 90, 99, 99\.9, 99\.99, 100"
    ):
        latency.at(75)
    with pytest.raises(ValueError, match=r"p99\.99 was not recorded in this result"):
        Latency(4, 1, 2, 3, 4, 5, 3).at(99.99)
    with pytest.raises(ValueError, match="without samples"):
        summarise_latency([[1.0], []])


def test_a_latency_workload_can_encode_its_pooled_histogram() -> None:
    trials = iter([[1.0], [10.0, 20.0], [30.0], [40.0]])
    pooled: list[list[float]] = []

    def encode(latencies: Any) -> str:
        pooled.append(list(latencies))
        return "HISTFAAAfake"

    workload = Workload(lambda: next(trials), timer="latency", encode_hdr=encode)
    result = measure_contender(Contender("kaelix", lambda: workload, role="kaelix"))
    assert result.ok and result.latency is not None
    assert result.latency.hdr == "HISTFAAAfake"
    assert pooled == [[10.0, 20.0, 30.0, 40.0]]  # once, every timed trial, no warm-up


def test_size_and_messages_reach_the_suites_and_are_recorded(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    seen: list[SuiteConfig] = []

    def cases(config: SuiteConfig) -> list[Case]:
        seen.append(config)
        size = config.size or 8
        return [Case(f"copy {size} B", (Contender("kaelix", lambda: Workload(bytes, 1, size)),))]

    suite = Suite("sized", "a suite that takes --size", cases, options=("size",))
    result = run([suite], repeat=1, trial_ms=0.5, size=64, messages=10)
    assert seen == [SuiteConfig(quick=True, peers=True, size=64, messages=10)]
    assert (result.settings.size, result.settings.messages) == (64, 10)
    assert result.results[0].case == "copy 64 B"
    assert BenchRun.from_json(json.loads(json.dumps(result.to_json()))) == result
    with pytest.raises(ValueError, match="size must be a whole number >= 1 or None; got 0"):
        run([suite], size=0)

    out = tmp_path / "sized.json"
    tiny = ["codec", "-k", "crc32c 64 B", *TINY, "--plain", "--size", "64", "--messages", "10"]
    assert main([*tiny, "--json", str(out)]) == 0
    err = capsys.readouterr().err
    # codec reads --size (its message cases) but moves no fixed number of messages.
    assert "note: --messages is ignored by codec\n" in err
    assert "--size is ignored" not in err
    data = json.loads(out.read_text(encoding="utf-8"))
    check_schema(data)
    assert (data["settings"]["size"], data["settings"]["messages"]) == (64, 10)


def test_each_suite_declares_the_options_it_honours() -> None:
    declared = {name: load_suite(name).options for name in SUITES}
    assert declared == {
        "codec": ("size",),
        "ring": ("size", "messages"),
        "stream": ("size", "messages"),
        "validate": ("messages",),
        "hdr": ("messages",),
        "generate": ("size", "messages"),
        "queue": ("size", "messages"),
        "monitor": ("messages",),
        "soak": ("messages",),
        "nats": ("size", "messages"),
    }


def test_size_and_messages_change_the_cases_they_name() -> None:
    config = SuiteConfig(size=128, messages=5_000)
    assert [case.name for case in ring.cases(config)] == [
        name.replace("(64 B)", "(128 B)").replace("pop_batch 64 B", "pop_batch 128 B")
        for name in RING_CASES
    ]
    assert [case.name for case in stream.cases(config)] == [
        name.replace("(64 B)", "(128 B)") for name in STREAM_CASES
    ]
    assert [case.name for case in codec.cases(config)] == [
        name.replace("(64 B)", "(128 B)").replace(" 64 B (N=", " 128 B (N=") for name in CODEC_CASES
    ]
    queue_names = [case.name for case in bench_queue.cases(SuiteConfig(quick=False, size=1500))]
    assert len(queue_names) == 12 and len(set(queue_names)) == 12
    assert sum("(1,500 B bytes)" in name for name in queue_names) == 6
    assert sum("(5-tuple of ints)" in name for name in queue_names) == 6
    quick_queue = bench_queue.cases(SuiteConfig(size=128, messages=5_000))
    assert [case.name for case in quick_queue][
        -1
    ] == "4\u21924 processes, one item per call (128 B bytes)"
    assert quick_queue[0].note.startswith("5,120 items per trial")  # whole rounds of 1,024

    # Every trial that moves a fixed number of messages moves --messages of them.
    notes = [case.note for case in ring.cases(config)]
    assert "5,000 messages per trial" in notes[3] and "5,120 messages per trial" in notes[4]
    assert all(note.startswith("5,000 messages per trial") for note in notes[5:])
    assert "5,120 messages per trial" in stream.cases(config)[3].note
    assert validate.cases(SuiteConfig(messages=50_000))[0].name == "check_delivery 50,000 messages"
    assert hdr.cases(SuiteConfig(messages=1_000))[0].name == "bulk record 1,000 values"

    # The absolute DESIGN.md bars hold at 64 B only; the relative ones at any size.
    pairs = ring.cases(config)[0]
    assert [bar.text for bar in pairs.bars] == ["\u2265 15\u00d7 queue.Queue"]
    assert [bar.kind for bar in ring.cases(config)[1].bars] == ["min_memcpy_fraction"]
    # --size 4096: the batched 4 KiB case is the payload's own, not a second one.
    assert sum("pop_batch 4 KiB" in c.name for c in ring.cases(SuiteConfig(size=4096))) == 1


@pytest.mark.parametrize(
    ("suite", "option", "value", "message"),
    [
        (
            "ring",
            "--size",
            "4097",
            "--size must be a whole number of bytes from 1 to 4,096 for the ring suite",
        ),
        (
            "stream",
            "--size",
            "100000",
            "--size must be a whole number of bytes from 1 to 4,096 for the stream suite",
        ),
        (
            "queue",
            "--size",
            "8192",
            "--size must be a whole number of bytes from 1 to 4,096 for the queue suite",
        ),
        (
            "codec",
            "--size",
            "65536",
            "--size must be a whole number of bytes from 1 to 4,096 for the codec suite",
        ),
        (
            "validate",
            "--messages",
            "100",
            "--messages must be a whole number >= 5,120 for the validate suite; got 100",
        ),
        ("ring", "--messages", "0", "--messages: expected a whole number >= 1, got 0"),
        ("ring", "--size", "-1", "--size: expected a whole number >= 1, got -1"),
    ],
)
def test_bad_size_or_messages_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], suite: str, option: str, value: str, message: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([suite, option, value, *TINY, "--plain"])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_tiny_run_with_size_128_moves_frames_of_56_plus_128_bytes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "size.json"
    assert main(["ring", "-k", "push", *TINY, "--plain", "--size", "128", "--json", str(out)]) == 0
    assert "is ignored" not in capsys.readouterr().err
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["settings"]["size"] == 128
    results = {case["case"]: case for case in data["results"]}
    assert list(results) == [
        "push+pop one message (128 B)",
        "push_batch+pop_batch 128 B (1,024 frames)",
        "push_batch+pop_batch 4 KiB (1,024 frames)",
    ]
    frame = 56 + 128
    for name, messages, nbytes in (
        ("push+pop one message (128 B)", 100, 100 * frame),
        ("push_batch+pop_batch 128 B (1,024 frames)", 1024, 1024 * frame),
        ("push_batch+pop_batch 4 KiB (1,024 frames)", 1024, 1024 * (56 + 4096)),
    ):
        for contender in results[name]["contenders"]:
            assert contender["status"] == "ok", (name, contender["name"], contender["reason"])
            assert (contender["messages_per_op"], contender["bytes_per_op"]) == (messages, nbytes)


def test_messages_sets_the_messages_of_a_cross_process_trial() -> None:
    before = _bench_segments()
    suite = Suite(
        "ring",
        "tiny ring suite",
        functools.partial(ring.cases, sizes=TINY_RING),
        options=("size", "messages"),
    )
    result = run([suite], repeat=1, trial_ms=0.5, select="one message", size=128, messages=2048)
    assert [case.case for case in result.results] == [
        "push+pop one message (128 B)",
        "1\u21921 processes, one message per call (128 B)",
    ]
    assert not result.errors, [(c.case, r.name, r.reason) for c, r in result.errors]
    cross = result.results[1]
    _assert_ran_or_skipped(cross)
    _assert_cross_process_trials(cross, 2048, 56 + 128)
    assert result.results[0].kaelix is not None
    assert result.results[0].kaelix.messages_per_op == TINY_RING.pairs_per_call  # calibrated
    assert multiprocessing.active_children() == []
    assert _bench_segments() <= before


def test_close_runs_when_a_trial_fails() -> None:
    closed: list[bool] = []

    def broken() -> object:
        raise RuntimeError("worker died")

    workload = Workload(broken, timer="call", close=lambda: closed.append(True))
    failed = measure_contender(Contender("kaelix", lambda: workload, role="kaelix"))
    assert failed.status == "error" and failed.reason == "running: RuntimeError: worker died"
    assert closed == [True]

    def bad_close() -> None:
        raise OSError("segment busy")

    fine = Workload(lambda: 1.0, timer="call", close=bad_close)
    result = measure_contender(Contender("kaelix", lambda: fine, role="kaelix"))
    assert result.status == "error" and result.reason == "closing: OSError: segment busy"


@pytest.mark.parametrize("enabled", [True, False])
def test_gc_is_paused_during_a_trial_and_restored_after(enabled: bool) -> None:
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        with gc_paused():
            assert not gc.isenabled()
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()


# ----------------------------------------------------------- ratios and bars, synthetic


def _timed(
    name: str, ns: float, *, role: Role = "peer", messages: int = 1, nbytes: int = 0
) -> ContenderResult:
    timing = Timing(ns, ns * 0.99, ns * 1.01, ns * 0.98, ns * 1.02, 1000, (ns,))
    return ContenderResult(name, role, "ok", None, "", messages, nbytes, timing)


def _skipped(name: str) -> ContenderResult:
    return ContenderResult(name, "peer", "skipped", f"{name} is not installed: {INSTALL_HINT}")


def _case(*contenders: ContenderResult, bars: tuple[Bar, ...] = ()) -> CaseResult:
    return CaseResult("codec", "synthetic", "messages", contenders, check_bars(bars, contenders))


def test_speedup_is_peer_time_over_kaelix_time_per_message() -> None:
    case = _case(
        _timed("kaelix", 100, role="kaelix"),
        _timed("msgspec", 320),
        _timed("fast", 50),
        _timed("batched", 1_000, messages=20),  # 50 ns per message
        _skipped("absent"),
    )
    assert case.speedup("msgspec") == pytest.approx(3.2)
    assert case.speedup("fast") == pytest.approx(0.5)
    assert case.speedup("batched") == pytest.approx(0.5)
    assert case.speedup("absent") is None and case.speedup("nobody") is None
    assert format_speedup(case.speedup("msgspec")) == "kaelix 3.20\u00d7 faster"
    assert format_speedup(case.speedup("fast")) == "kaelix 2.00\u00d7 slower"
    assert format_speedup(None) == "\u2014"


def test_faster_than_bar_met_missed_and_unchecked() -> None:
    bar = Bar("\u2264 msgspec", "faster_than", peer="msgspec")
    kaelix = _timed("kaelix", 90, role="kaelix")
    met = check_bar(bar, [kaelix, _timed("msgspec", 174)])
    assert met.met is True and met.detail == "kaelix 90.0 ns vs msgspec 174 ns per message"
    tie = check_bar(bar, [kaelix, _timed("msgspec", 90)])
    assert tie.met is True
    missed = check_bar(bar, [kaelix, _timed("msgspec", 60)])
    assert missed.met is False
    unchecked = check_bar(bar, [kaelix, _skipped("msgspec")])
    assert unchecked.met is None and unchecked.detail == "msgspec skipped, not compared"
    failed = ContenderResult("kaelix", "kaelix", "error", "boom")
    assert check_bar(bar, [failed, _timed("msgspec", 60)]).met is None


def _rounds(
    name: str, trials: list[float], *, role: Role = "peer", messages: int = 1
) -> ContenderResult:
    ordered = sorted(trials)
    timing = Timing(
        statistics.median(trials), ordered[0], ordered[-1], ordered[0], ordered[-1], 1,
        tuple(trials),
    )  # fmt: skip
    return ContenderResult(name, role, "ok", None, "", messages, 0, timing)


def test_paired_bars_compare_round_by_round() -> None:
    bar = Bar("on ≤ 1 % cost", "min_speedup", 0.99, peer="off")
    # The machine's speed swings between rounds; kaelix is 0.5 % slower than the peer in
    # four rounds out of five and lost one round to a burst of other load.
    peer = _rounds("off", [100.0, 80.0, 120.0, 100.0, 90.0])
    kaelix = _rounds("kaelix", [100.5, 80.4, 150.0, 100.5, 90.45], role="kaelix")
    # by the medians: 100 / 100.5; by rounds: ratios .995 .995 .8 .995 .995 -> .995
    paired = check_bar(bar, [kaelix, peer], paired=True)
    assert paired.met is True
    assert paired.detail.startswith("round by round: kaelix 1.00× slower (median of 5 ")
    assert "rounds' ratios, 0.9950)" in paired.detail and "; by the medians: " in paired.detail
    # Here the medians fall on different rounds (kaelix's on the 80, the peer's on the 120)
    # and read 13 % slower; round by round it is 0.5 %.
    skewed = _rounds("kaelix", [80.4, 100.5, 150.0, 120.6, 90.45], role="kaelix")
    peer2 = _rounds("off", [80.0, 100.0, 120.0, 120.0, 90.0])
    assert check_bar(bar, [skewed, peer2]).met is True  # medians 100 / 100.5
    worse = _rounds("kaelix", [80.4, 100.5, 150.0, 120.6, 120.6], role="kaelix")
    assert check_bar(bar, [worse, peer2]).met is False  # medians 100 / 120.6
    assert check_bar(bar, [worse, peer2], paired=True).met is True  # rounds: .995
    # 2 % slower in every round: missed
    swings = [100.0, 80.0, 120.0, 100.0, 90.0]
    slow = _rounds("kaelix", [t * 1.02 for t in swings], role="kaelix")
    assert check_bar(bar, [slow, peer], paired=True).met is False
    # messages per operation are taken into account
    batched = _rounds("kaelix", [t * 10 for t in swings], role="kaelix", messages=10)
    assert "rounds' ratios, 1.0000)" in check_bar(bar, [batched, peer], paired=True).detail
    # rounds that do not match (a contender failed part way): the medians decide
    short = _rounds("kaelix", swings[:4], role="kaelix")
    assert check_bar(bar, [short, peer], paired=True).detail.startswith("kaelix 1.00")
    faster = Bar("≤ off", "faster_than", peer="off")
    assert check_bar(faster, [slow, peer], paired=True).met is False
    assert check_bar(faster, [_rounds("kaelix", swings, role="kaelix"), peer], paired=True).met


def test_throughput_bars() -> None:
    messages = Bar("\u2265 20 M msg/s", "min_messages_per_s", 20e6)
    fast = _timed("kaelix", 400_000, role="kaelix", messages=10_000)  # 25 M msg/s
    slow = _timed("kaelix", 600_000, role="kaelix", messages=10_000)  # 16.7 M msg/s
    assert check_bar(messages, [fast]).met is True
    missed = check_bar(messages, [slow])
    assert missed.met is False and missed.detail == "kaelix 16.7 M msg/s"

    gigabytes = Bar("\u2265 10 GB/s", "min_bytes_per_s", 10e9)
    assert check_bar(gigabytes, [_timed("kaelix", 2_000, role="kaelix", nbytes=65536)]).met
    low = check_bar(gigabytes, [_timed("kaelix", 8_000, role="kaelix", nbytes=65536)])
    assert low.met is False and low.detail == "kaelix 8.19 GB/s"
    assert check_bar(gigabytes, [_timed("kaelix", 8_000, role="kaelix")]).met is None


def test_memcpy_fraction_bar_reads_the_reference_of_the_same_run() -> None:
    bar = Bar("\u2265 40 % of memcpy", "min_memcpy_fraction", 0.4, reference="memcpy 64 MiB")
    memcpy = CaseResult(
        "reference",
        "memcpy 64 MiB",
        "bytes",
        (_timed("numpy copyto", 1_000, role="reference", nbytes=10_000),),  # 10 GB/s
    )
    ring = _timed("kaelix", 1_000, role="kaelix", nbytes=5_000)  # 5 GB/s = 50 %
    check = check_bar(bar, [ring], [memcpy])
    assert check.met is True and "50%" in check.detail
    assert (
        check_bar(bar, [_timed("kaelix", 1_000, role="kaelix", nbytes=3_000)], [memcpy]).met
        is False
    )
    assert check_bar(bar, [ring]).met is None


def test_speedup_and_time_bars() -> None:
    bar = Bar("\u2265 15\u00d7 queue.Queue", "min_speedup", 15, peer="queue.Queue")
    kaelix = _timed("kaelix", 5_000, role="kaelix", messages=100)  # 50 ns per message
    met = check_bar(bar, [kaelix, _timed("queue.Queue", 1_000)])
    assert met.met is True
    assert met.detail == (
        "kaelix 20.0\u00d7 faster (kaelix 50.0 ns vs queue.Queue 1.00 \u00b5s per message)"
    )
    assert check_bar(bar, [kaelix, _timed("queue.Queue", 700)]).met is False
    assert check_bar(bar, [kaelix, _skipped("queue.Queue")]).met is None

    per_pair = Bar("\u2264 100 ns per pair", "max_ns_per_message", 100)
    check = check_bar(per_pair, [kaelix])
    assert check.met is True and check.detail == "kaelix 50.0 ns per message"
    assert check_bar(per_pair, [_timed("kaelix", 101, role="kaelix")]).met is False


def _latency_result(name: str, p50: float, *, role: Role = "peer") -> ContenderResult:
    timing = Timing(p50, p50, p50, p50, p50, 1, (p50,))
    latency = Latency(1000, p50, 2 * p50, 4 * p50, 10 * p50, 20 * p50, 1.5 * p50)
    return ContenderResult(name, role, "ok", None, "", 0, 0, timing, latency)


def test_latency_bars_and_rows() -> None:
    bars = (
        Bar("p50 \u2264 2 \u00b5s", "max_latency", 2_000, percentile=50),
        Bar("p99.9 \u2264 50 \u00b5s", "max_latency", 50_000, percentile=99.9),
    )
    contenders = (
        _latency_result("kaelix (spin)", 1_000, role="kaelix"),
        _latency_result("faster-fifo", 30_000),
    )
    case = CaseResult("ring", "latency", "latency", contenders, check_bars(bars, contenders))
    assert [check.met for check in case.bars] == [True, True]
    assert case.bars[1].detail == "kaelix p99.9 10.0 \u00b5s over 1,000 messages"
    assert check_bar(bars[0], [_latency_result("kaelix", 3_000, role="kaelix")]).met is False
    assert check_bar(bars[0], [_timed("kaelix", 10, role="kaelix")]).met is None
    assert case.speedup("faster-fifo") == pytest.approx(30.0)

    floor = _latency_result("machine floor (no channel)", 6_000, role="reference")
    noisy = check_bar(bars[1], [*contenders, floor])
    assert noisy.met is True  # the floor explains a verdict, it never changes one
    assert noisy.detail == (
        "kaelix p99.9 10.0 \u00b5s over 1,000 messages; machine floor (no channel) alone: "
        "60.0 \u00b5s (over the bar: this machine cannot show it)"
    )

    heading, kaelix, peer = case_rows(case)
    assert heading.cells[1:4] == ("p50", "IQR", "p99 \u00b7 p99.9 \u00b7 max")
    assert kaelix.cells[1] == "1.00 \u00b5s"
    assert kaelix.cells[3] == "p99 4.00 \u00b5s \u00b7 p99.9 10.0 \u00b5s \u00b7 max 20.0 \u00b5s"
    assert peer.cells[4] == "kaelix 30.0\u00d7 lower p50"

    result = BenchRun(
        created="2024-01-01T00:00:00+00:00",
        settings=Settings("quick", 1, 20.0, True, ("ring",)),
        machine={},
        reference=(),
        results=(case,),
    )
    assert BenchRun.from_json(json.loads(json.dumps(result.to_json()))) == result


def test_a_bar_needs_what_its_kind_compares_against() -> None:
    with pytest.raises(ValueError, match="needs peer="):
        Bar("\u2264 msgspec", "faster_than")
    with pytest.raises(ValueError, match="needs reference="):
        Bar("\u2265 40 %", "min_memcpy_fraction", 0.4)
    with pytest.raises(ValueError, match="Bar kind must be one of"):
        Bar("fast", "fastest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="of kind 'min_speedup' needs peer="):
        Bar("\u2265 15\u00d7", "min_speedup", 15)
    with pytest.raises(ValueError, match=r"percentile= one of 50, 90, 99, 99\.9, 100; got 95"):
        Bar("p95 \u2264 1 \u00b5s", "max_latency", 1_000, percentile=95)


def _synthetic_run() -> BenchRun:
    design_bar = Bar("\u2265 20 M msg/s", "min_messages_per_s", 20e6)
    case = _case(
        _timed("kaelix", 600_000, role="kaelix", messages=10_000),
        _timed("msgspec", 300_000, messages=10_000),
        _skipped("pickle"),
        bars=(design_bar,),
    )
    return BenchRun(
        created="2024-01-01T00:00:00+00:00",
        settings=Settings("quick", 5, 20.0, True, ("codec",)),
        machine={"cpu_model": "test CPU", "peers": {"msgspec": "0.0"}},
        reference=(),
        results=(case,),
    )


def test_reports_show_a_missed_bar_ratios_and_skips() -> None:
    result = _synthetic_run()
    rows = case_rows(result.results[0])
    assert rows[0].cells[4] == "bar \u2265 20 M msg/s \u2717" and rows[0].met is False
    assert rows[1].cells[:4] == ("  kaelix", "600 \u00b5s", "2.0%", "16.7 M msg/s")
    assert rows[2].cells[4] == "kaelix 2.00\u00d7 slower"
    assert rows[3].cells[1] == "skipped" and INSTALL_HINT in rows[3].cells[4]

    text = render_text(result)
    assert "DESIGN.md bars: 0 met, 1 missed, 0 not checked" in text
    assert "\u2717 codec: synthetic: bar \u2265 20 M msg/s: kaelix 16.7 M msg/s" in text

    pytest.importorskip("rich")
    stream = io.StringIO()
    print_report(result, file=stream)
    drawn = stream.getvalue()
    assert "\u2717" in drawn and "kaelix 2.00\u00d7 slower" in drawn and "skipped" in drawn


def test_plain_progress_prints_one_line_per_case() -> None:
    stream = io.StringIO()
    progress = PlainProgress(stream)
    case = _synthetic_run().results[0]
    progress(ProgressEvent("start", 0, 3))
    progress(ProgressEvent("contender", 1, 3, "codec", "synthetic", "kaelix"))
    progress(ProgressEvent("case", 3, 3, "codec", "synthetic", result=case))
    assert stream.getvalue() == (
        "[3/3] codec: synthetic: kaelix 600 \u00b5s, msgspec 300 \u00b5s, pickle skipped\n"
    )


def test_format_time_picks_the_unit() -> None:
    assert [format_time(ns) for ns in (92.6, 999.9, 1_500, 2.5e6, 3e9, None)] == [
        "92.6 ns",
        "1.00 \u00b5s",
        "1.50 \u00b5s",
        "2.50 ms",
        "3.00 s",
        "\u2014",
    ]


def test_suite_config_defaults_to_quick_with_peers() -> None:
    assert SuiteConfig() == SuiteConfig(quick=True, peers=True)


def test_noisy_figures_are_flagged_in_the_summary() -> None:
    steady = _timed("kaelix", 100, role="kaelix")
    noisy_timing = Timing(100, 80, 130, 70, 150, 1000, (80.0, 100.0, 130.0))
    noisy = ContenderResult("msgspec", "peer", "ok", None, "", 1, 0, noisy_timing)
    result = BenchRun(
        created="2024-01-01T00:00:00+00:00",
        settings=Settings("quick", 3, 20.0, True, ("codec",)),
        machine={},
        reference=(),
        results=(_case(steady, noisy),),
    )
    rows = case_rows(result.results[0])
    assert [row.noisy for row in rows[1:]] == [False, True]
    assert "noisy (IQR over 10% of the median" in render_text(result)
    assert "synthetic / msgspec" in render_text(result)
    assert "noisy" not in render_text(_synthetic_run())


def test_without_rich_the_report_is_a_plain_aligned_table(monkeypatch: pytest.MonkeyPatch) -> None:
    import kaelix.bench._report as report

    monkeypatch.setattr(report, "is_installed", lambda module: False)
    stream = io.StringIO()
    print_report(_synthetic_run(), file=stream)
    assert stream.getvalue() == render_text(_synthetic_run())
    lines = stream.getvalue().splitlines()
    header = next(line for line in lines if line.startswith("case / contender"))
    kaelix_row = next(line for line in lines if line.startswith("  kaelix"))
    assert header.index("time/op") + len("time/op") == kaelix_row.index("\u00b5s") + 2
