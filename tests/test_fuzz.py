"""The fuzz targets in CI: each runs a bounded number of executions under atheris, from the
seed corpus in tests/corpus/, and every input that once crashed or hung a target is replayed
as its own test (tests/corpus/regressions/, named TARGET-what).

The long runs (a million executions per target) are not here: see docs/security.md.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kaelix.fuzz import TARGETS, UNAVAILABLE, run, seed_inputs

CORPUS = Path(__file__).parent / "corpus"
REGRESSIONS = sorted((CORPUS / "regressions").iterdir())
CI_RUNS = 20_000


@pytest.mark.parametrize("target", list(TARGETS))
def test_target_runs_clean(target: str, tmp_path: Path) -> None:
    result = run(target, CI_RUNS, corpus=[CORPUS / target], artifacts=tmp_path, seed=1)
    assert result.ok, result.summary() + "\n" + result.log[-4000:]
    assert result.executions >= CI_RUNS, result.summary()


@pytest.mark.parametrize("path", REGRESSIONS, ids=[p.name for p in REGRESSIONS])
def test_regression_input(path: Path) -> None:
    """Replays a finding in a child process, so that a crash or a hang of the compiled core
    fails this test instead of taking pytest down."""
    target = path.name.split("-", 1)[0]
    code = (
        "import sys; from kaelix.fuzz import TARGETS; "
        f"TARGETS[{target!r}].function(open(sys.argv[1], 'rb').read())"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("target", list(TARGETS))
def test_seed_corpus_is_current(target: str) -> None:
    """The committed seeds are the targets' built-in seeds (plus nothing stale), and every
    seed passes its target."""
    committed = {p.name for p in (CORPUS / target).iterdir()}
    built_in = dict(seed_inputs(target))
    assert set(built_in) <= committed
    function = TARGETS[target].function
    for name in sorted(committed):
        function((CORPUS / target / name).read_bytes())


def test_regressions_name_a_target() -> None:
    for path in REGRESSIONS:
        assert path.name.split("-", 1)[0] in TARGETS, path.name


def test_cli_lists_targets_and_refuses_nats() -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "kaelix.fuzz", "--list"], capture_output=True, text=True
    )
    assert listed.returncode == 0
    for name in [*TARGETS, *UNAVAILABLE]:
        assert name in listed.stdout
    assert "nats          not yet available" in listed.stdout
    nats = subprocess.run(
        [sys.executable, "-m", "kaelix.fuzz", "nats", "--runs", "10"],
        capture_output=True,
        text=True,
    )
    assert nats.returncode == 2
    assert "not yet available" in nats.stderr and "issue 11" in nats.stderr


def test_cli_runs_a_target_and_sums_up(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "kaelix.fuzz",
            "decode",
            "--runs",
            "500",
            "-q",
            "--artifacts",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "kaelix.fuzz decode: 500 executions in" in done.stdout
    assert "findings: none" in done.stdout


def test_a_finding_is_reported(tmp_path: Path) -> None:
    """The machinery itself: a target that breaks its promise is caught and its input kept."""
    code = (
        "import sys, atheris\n"
        "def target(data):\n"
        "    if data[:2] == b'KX': raise KeyError('not a documented error')\n"
        "atheris.Setup(sys.argv, target)\n"
        "atheris.Fuzz()\n"
    )
    seed = tmp_path / "seeds"
    seed.mkdir()
    (seed / "one").write_bytes(b"KX")
    done = subprocess.run(
        [sys.executable, "-c", code, "-runs=100", f"-artifact_prefix={tmp_path}/", str(seed)],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert "KeyError" in done.stdout + done.stderr
    assert any(p.name.startswith("crash-") for p in tmp_path.iterdir())


def test_run_validates_arguments() -> None:
    with pytest.raises(ValueError, match="'nats' is not available yet"):
        run("nats", 10)
    with pytest.raises(ValueError, match="unknown fuzz target 'nope'"):
        run("nope", 10)
    with pytest.raises(ValueError, match="runs must be at least 1, got 0"):
        run("decode", 0)
