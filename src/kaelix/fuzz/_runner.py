"""The ``python -m kaelix.fuzz`` command: runs one target in a child process and sums it up.

The child (``kaelix.fuzz._child``) belongs to libFuzzer, which ends the process itself when
it finishes or finds something; this parent gives it a fresh working corpus (so that the
seed corpus it reads is never written to), a place for findings, and reads its final
statistics to say how many inputs ran, for how long, and what was found.

Findings are libFuzzer's artifact files: ``crash-*`` (an exception other than the documented
ones, a broken oracle or a crash of the process), ``timeout-*`` (an input that ran longer
than ``--timeout``), ``oom-*`` (over the memory limit). Each is an input to replay with
``TARGETS[name].function(open(path, "rb").read())``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kaelix.fuzz._targets import TARGETS, UNAVAILABLE, seed_inputs

__all__ = ["FuzzResult", "main", "run"]

_FINDING_PREFIXES = ("crash-", "timeout-", "oom-", "leak-")
_DONE = re.compile(r"^Done (\d+) runs in (\d+) second")
_EXECUTED = re.compile(r"^stat::number_of_executed_units:\s*(\d+)")


@dataclass
class FuzzResult:
    """What one run of a target did.

    ``executions`` is libFuzzer's count of inputs run, ``seconds`` the wall time of the
    fuzzing process, ``findings`` the artifact files it wrote (empty: nothing found),
    ``returncode`` the process's exit status and ``log`` its output."""

    target: str
    executions: int
    seconds: float
    findings: list[Path] = field(default_factory=list)
    returncode: int = 0
    log: str = ""

    @property
    def ok(self) -> bool:
        """True when the run finished every execution and found nothing."""
        return self.returncode == 0 and not self.findings

    def summary(self) -> str:
        """One line: target, executions, wall time, findings."""
        found = ", ".join(str(p) for p in self.findings) if self.findings else "none"
        rate = self.executions / self.seconds if self.seconds else 0.0
        return (
            f"kaelix.fuzz {self.target}: {self.executions:,} executions in "
            f"{self.seconds:.1f} s ({rate:,.0f}/s), exit status {self.returncode}, "
            f"findings: {found}"
        )


def write_seeds(directory: Path, target: str) -> int:
    """Writes target's built-in seed inputs into directory; returns how many."""
    directory.mkdir(parents=True, exist_ok=True)
    count = 0
    for name, data in seed_inputs(target):
        (directory / name).write_bytes(data)
        count += 1
    return count


def run(
    target: str,
    runs: int,
    *,
    corpus: Sequence[str | os.PathLike[str]] = (),
    timeout: int = 10,
    max_len: int | None = None,
    seed: int | None = None,
    artifacts: str | os.PathLike[str] | None = None,
    save_corpus: str | os.PathLike[str] | None = None,
    libfuzzer_args: Sequence[str] = (),
    echo: bool = False,
) -> FuzzResult:
    """Fuzzes one target for ``runs`` executions in a child process.

    Args:
        target: a name of ``TARGETS``.
        runs: how many inputs to run (at least 1).
        corpus: directories of seed inputs, read and never written (none: the target's
            built-in seeds).
        timeout: seconds one input may take before it counts as a hang.
        max_len: the longest input tried (default: the target's own).
        seed: libFuzzer's random seed (default: chosen by libFuzzer).
        artifacts: where findings are written (default: a new directory under the system's
            temporary directory, kept when something is found).
        save_corpus: where new interesting inputs go (default: a temporary directory).
        libfuzzer_args: more libFuzzer flags, passed as they are.
        echo: copy libFuzzer's output to stderr as it comes.

    Raises:
        ValueError: an unknown or unavailable target, or runs below 1.
    """
    if target in UNAVAILABLE:
        raise ValueError(f"fuzz target {target!r} is not available yet: {UNAVAILABLE[target]}")
    if target not in TARGETS:
        raise ValueError(f"unknown fuzz target {target!r}; choose from: {', '.join(TARGETS)}")
    if runs < 1:
        raise ValueError(f"runs must be at least 1, got {runs}")
    spec = TARGETS[target]
    with tempfile.TemporaryDirectory(prefix=f"kaelix-fuzz-{target}-") as scratch:
        work = Path(save_corpus) if save_corpus is not None else Path(scratch, "corpus")
        work.mkdir(parents=True, exist_ok=True)
        seeds = [Path(d) for d in corpus]
        if not seeds:
            seeds = [Path(scratch, "seeds")]
            write_seeds(seeds[0], target)
        for directory in seeds:
            if not directory.is_dir():
                raise ValueError(f"corpus {str(directory)!r} is not a directory")
        found_dir = (
            Path(artifacts)
            if artifacts is not None
            else Path(tempfile.mkdtemp(prefix=f"kaelix-fuzz-findings-{target}-"))
        )
        found_dir.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "kaelix.fuzz._child",
            target,
            f"-runs={runs}",
            f"-timeout={timeout}",
            f"-max_len={max_len or spec.max_len}",
            "-rss_limit_mb=2048",
            f"-artifact_prefix={found_dir}{os.sep}",
            "-print_final_stats=1",
            *([f"-seed={seed}"] if seed is not None else []),
            *libfuzzer_args,
            str(work),
            *(str(d) for d in seeds),
        ]
        started = time.perf_counter()
        lines: list[str] = []
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
        ) as child:
            assert child.stdout is not None
            for line in child.stdout:
                lines.append(line)
                if echo:
                    sys.stderr.write(line)
        seconds = time.perf_counter() - started
        # A child ended by libFuzzer in the middle of the attach target leaves its segment.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"/dev/shm/kx-fuzz-{child.pid}")
    executions = 0
    for line in lines:
        match = _DONE.match(line) or _EXECUTED.match(line)
        if match:
            executions = max(executions, int(match.group(1)))
    findings = sorted(p for p in found_dir.iterdir() if p.name.startswith(_FINDING_PREFIXES))
    if artifacts is None and not findings:
        found_dir.rmdir()
    return FuzzResult(target, executions, seconds, findings, child.returncode, "".join(lines))


def _parser() -> argparse.ArgumentParser:
    names = [*TARGETS, *UNAVAILABLE]
    parser = argparse.ArgumentParser(
        prog="python -m kaelix.fuzz",
        description="Coverage-guided fuzzing (atheris/libFuzzer) of the kaelix entry points "
        "that take outside bytes. Exit status: 0 nothing found, 1 findings, 2 usage.",
        epilog="Flags after -- go to libFuzzer as they are. Findings are files to replay with "
        "kaelix.fuzz.TARGETS[NAME].function(data).",
    )
    parser.add_argument(
        "target", nargs="?", choices=names, metavar="TARGET", help=f"one of: {', '.join(names)}"
    )
    parser.add_argument("--runs", type=int, default=100_000, help="inputs to run (100000)")
    parser.add_argument(
        "--corpus",
        action="append",
        default=[],
        metavar="DIR",
        help="seed directory, read only (repeatable; default: built-in seeds)",
    )
    parser.add_argument(
        "--timeout", type=int, default=10, help="seconds an input may take before it is a hang (10)"
    )
    parser.add_argument("--max-len", type=int, default=None, help="longest input tried")
    parser.add_argument("--seed", type=int, default=None, help="libFuzzer's random seed")
    parser.add_argument("--artifacts", metavar="DIR", help="where findings are written")
    parser.add_argument(
        "--save-corpus", metavar="DIR", help="keep the inputs that found new coverage here"
    )
    parser.add_argument("--list", action="store_true", help="name the targets and exit")
    parser.add_argument(
        "--write-seeds",
        metavar="DIR",
        help="write the built-in seeds of TARGET (or of all) to DIR/TARGET/",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the summary")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in args_in:
        cut = args_in.index("--")
        args_in, extra = args_in[:cut], args_in[cut + 1 :]
    parser = _parser()
    args = parser.parse_args(args_in)
    if args.list:
        for target in TARGETS.values():
            print(f"{target.name:<13} {target.promises}")
        for name, why in UNAVAILABLE.items():
            print(f"{name:<13} not yet available: {why}")
        return 0
    if args.write_seeds:
        for name in [args.target] if args.target else list(TARGETS):
            if name in UNAVAILABLE:
                parser.error(f"{name} is not yet available: {UNAVAILABLE[name]}")
            count = write_seeds(Path(args.write_seeds, name), name)
            print(f"{count} seeds written to {Path(args.write_seeds, name)}")
        return 0
    if args.target is None:
        parser.error("a TARGET is required (or --list)")
    if args.target in UNAVAILABLE:
        print(
            f"kaelix.fuzz: {args.target} is not yet available: {UNAVAILABLE[args.target]}",
            file=sys.stderr,
        )
        return 2
    try:
        result = run(
            args.target,
            args.runs,
            corpus=args.corpus,
            timeout=args.timeout,
            max_len=args.max_len,
            seed=args.seed,
            artifacts=args.artifacts,
            save_corpus=args.save_corpus,
            libfuzzer_args=extra,
            echo=not args.quiet,
        )
    except ValueError as error:
        parser.error(str(error))
    print(result.summary())
    return 0 if result.ok else 1
