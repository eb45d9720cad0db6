"""The command line of ``python -m kaelix.bench``: parse options, list or run suites, print
the report, write JSON.

Exit status: 0 when every contender ran or was skipped, 1 when a contender failed, 2 on a
usage error. A missed bar does not change the status (``--fail-on-regression`` and bar
gating belong to the regression tracker). Never import numba, rich or a peer at module level.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from kaelix.bench._model import BenchRun, SuiteConfig
from kaelix.bench._peers import (
    INSTALL_HINT,
    KNOWN_PEERS,
    distribution_version,
    is_installed,
    missing_reason,
)
from kaelix.bench._runner import FULL, QUICK, run

_EPILOG = f"""\
examples:
  python -m kaelix.bench                    quick run of every suite (the default)
  python -m kaelix.bench codec --full       longer, steadier run of the codec suite
  python -m kaelix.bench -k crc32c --json out.json
Peers that are not installed are skipped; {INSTALL_HINT} installs them all.
"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {value:g}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed so documentation and tests can read its options)."""
    parser = argparse.ArgumentParser(
        prog="python -m kaelix.bench",
        description="Benchmark kaelix beside its peers, in one run on this machine.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "suites", nargs="*", metavar="SUITE", help="suites to run (default: all; see --list)"
    )
    parser.add_argument(
        "--list", action="store_true", help="list suites, their cases, bars and peers, then exit"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick",
        dest="full",
        action="store_false",
        help=f"{QUICK.repeat} trials of ~{QUICK.trial_ms:g} ms per contender (the default)",
    )
    mode.add_argument(
        "--full",
        dest="full",
        action="store_true",
        help=f"{FULL.repeat} trials of ~{FULL.trial_ms:g} ms per contender: slower, steadier",
    )
    parser.add_argument(
        "--peers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the peer libraries beside kaelix (default: yes); --no-peers runs kaelix only",
    )
    parser.add_argument(
        "--repeat", type=_positive_int, metavar="N", help="timed trials per contender"
    )
    parser.add_argument(
        "--trial-ms",
        type=_positive_float,
        metavar="MS",
        help="target duration of one trial in milliseconds (calibrates the inner loop)",
    )
    parser.add_argument(
        "-k",
        "--select",
        metavar="TEXT",
        help="only cases whose name contains TEXT (case-insensitive)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        metavar="FILE",
        help="also write the results as JSON (schema kaelix.bench/1)",
    )
    parser.add_argument(
        "--plain",
        action="store_true",
        help="plain text table and progress even when rich is installed",
    )
    parser.set_defaults(full=False)
    return parser


def list_suites(stream: IO[str]) -> None:
    """Print every registered suite with its cases, contenders (peer availability) and bars."""
    from kaelix.bench.suites import SUITES, load_suite

    config = SuiteConfig()
    for name in SUITES:
        suite = load_suite(name)
        stream.write(f"{suite.name}: {suite.description}\n")
        for case in suite.cases(config):
            contenders = ", ".join(c.name for c in case.contenders)
            bars = "; ".join(bar.text for bar in case.bars)
            stream.write(f"  {case.name}\n    contenders: {contenders}\n")
            if bars:
                stream.write(f"    bar: {bars}\n")
        stream.write("\n")
    modules = sorted(
        {
            module
            for name in SUITES
            for case in load_suite(name).cases(config)
            for contender in case.contenders
            for module in contender.requires
        }
    )
    stream.write("optional peers:\n")
    for module in modules:
        if is_installed(module):
            version = distribution_version(KNOWN_PEERS.get(module, module)) or "(version unknown)"
            stream.write(f"  {module} {version}\n")
        else:
            stream.write(f"  {missing_reason(module)}\n")
    stream.flush()


def write_json(result: BenchRun, path: Path) -> None:
    """Write ``result`` to ``path`` as indented UTF-8 JSON."""
    text = json.dumps(result.to_json(), indent=2, ensure_ascii=False)
    path.write_text(text + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    from kaelix.bench import _report
    from kaelix.bench.suites import SUITES

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list:
        list_suites(sys.stdout)
        return 0
    unknown = [name for name in args.suites if name not in SUITES]
    if unknown:
        parser.error(f"unknown suite {unknown[0]!r}; choose from: {', '.join(SUITES)}")

    try:
        with _report.progress_reporter(plain=args.plain) as progress:
            result = run(
                args.suites or None,
                quick=not args.full,
                peers=args.peers,
                repeat=args.repeat,
                trial_ms=args.trial_ms,
                select=args.select,
                progress=progress,
            )
    except ValueError as exc:  # e.g. --select matched nothing
        parser.error(str(exc))

    _report.print_report(result, plain=args.plain)
    if args.json is not None:
        write_json(result, args.json)
        sys.stderr.write(f"wrote {args.json} ({result.schema})\n")
    sys.stderr.write(f"bench finished in {result.duration_s:.1f} s\n")
    return 1 if result.errors else 0
