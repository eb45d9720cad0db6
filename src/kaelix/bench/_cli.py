"""The command line of ``python -m kaelix.bench``: parse options, list or run suites, print
the report and the comparison with a baseline, write JSON, HTML, Markdown and HdrHistogram
logs, save the run and its history.

Exit status: 0 when every contender ran or was skipped, 1 when a contender failed, 2 on a
usage error, 3 when ``--fail-on-regression`` is given and the comparison with
``--compare``'s baseline finds a regression (1 wins over 3: a failed run is not a verdict). A
missed bar does not change the status. Never import numba, rich or a peer at module level.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from kaelix.bench._compare import DEFAULT_THRESHOLD_PCT
from kaelix.bench._history import DEFAULT_DIR, ENV_DIR
from kaelix.bench._model import SCHEMA, BenchRun, Suite, SuiteConfig
from kaelix.bench._peers import (
    INSTALL_HINT,
    KNOWN_PEERS,
    distribution_version,
    is_installed,
    missing_reason,
)
from kaelix.bench._runner import FULL, QUICK, run

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_REGRESSION = 3
"""The exit status of a run with ``--fail-on-regression`` whose comparison found a
regression."""

HISTORY_LIMIT = 50
"""At most this many earlier runs feed the HTML report's trend charts."""

_EPILOG = f"""\
examples:
  python -m kaelix.bench                    quick run of every suite (the default)
  python -m kaelix.bench codec --full       longer, steadier run of the codec suite
  python -m kaelix.bench -k crc32c --json out.json
  python -m kaelix.bench --save main        save as benchmarks/main.json (+ history)
  python -m kaelix.bench --compare main --fail-on-regression
                                            exit 3 on a significant regression
Peers that are not installed are skipped; {INSTALL_HINT} installs them all.
exit status: 0 ok, 1 a contender failed, 2 usage error, 3 regression (--fail-on-regression).
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
        "--size",
        type=_positive_int,
        metavar="BYTES",
        help="payload size for the suites that take one (see --list)",
    )
    parser.add_argument(
        "--messages",
        type=_positive_int,
        metavar="N",
        help="messages per trial for the suites that take it (see --list)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        metavar="FILE",
        help=f"also write the results as JSON (schema {SCHEMA})",
    )
    parser.add_argument(
        "--html",
        type=Path,
        metavar="FILE",
        help="also write a self-contained HTML report (charts; baseline and history when known)",
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        metavar="FILE",
        help="also write a Markdown summary (the shape of docs/benchmarks.md)",
    )
    parser.add_argument(
        "--save",
        metavar="NAME",
        help=f"save the run as {DEFAULT_DIR}/NAME.json and append it to "
        f"{DEFAULT_DIR}/history/NAME/ (${ENV_DIR} moves {DEFAULT_DIR}/)",
    )
    parser.add_argument(
        "--compare",
        metavar="NAME_OR_FILE",
        help="compare with a saved run (a name given to --save) or a result file",
    )
    parser.add_argument(
        "--threshold",
        type=_positive_float,
        default=DEFAULT_THRESHOLD_PCT,
        metavar="PCT",
        help=f"a change within PCT percent is not a regression (default {DEFAULT_THRESHOLD_PCT:g})",
    )
    parser.add_argument(
        "--fail-on-regression",
        action="store_true",
        help=f"exit with status {EXIT_REGRESSION} when --compare finds a regression",
    )
    parser.add_argument(
        "--hdr-dir",
        type=Path,
        metavar="DIR",
        help="write each latency histogram as an HdrHistogram log, DIR/<suite>-<case>-"
        "<contender>.hlog",
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
        if suite.options:
            options = ", ".join(f"--{option}" for option in suite.options)
            stream.write(f"  honours: {options}\n")
        else:
            stream.write("  ignores --size and --messages\n")
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
    from kaelix.bench._history import run_text

    path.write_text(run_text(result), encoding="utf-8")


def ignored_options(suites: Sequence[Suite], size: int | None, messages: int | None) -> list[str]:
    """A line for each of ``--size`` / ``--messages`` that was given but that some of the
    chosen suites ignore (they do not list it in `Suite.options`)."""
    lines = []
    for option, value in (("size", size), ("messages", messages)):
        if value is None:
            continue
        deaf = [suite.name for suite in suites if option not in suite.options]
        if deaf:
            lines.append(f"note: --{option} is ignored by {', '.join(deaf)}\n")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    from kaelix.bench import _compare, _history, _report
    from kaelix.bench.suites import SUITES, load_suite

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list:
        list_suites(sys.stdout)
        return EXIT_OK
    unknown = [name for name in args.suites if name not in SUITES]
    if unknown:
        parser.error(f"unknown suite {unknown[0]!r}; choose from: {', '.join(SUITES)}")
    if args.fail_on_regression and args.compare is None:
        parser.error("--fail-on-regression needs --compare NAME_OR_FILE (a baseline to compare)")
    if args.save is not None:
        try:
            _history.check_name(args.save)
        except ValueError as exc:
            parser.error(f"--save: {exc}")

    # Read the baseline (and the history for the HTML trends) before running: a wrong name
    # is a usage error found in a second, not after a minute of benchmarking.
    baseline: BenchRun | None = None
    if args.compare is not None:
        try:
            baseline = _history.load_run(_history.resolve(args.compare))
        except (FileNotFoundError, ValueError) as exc:
            parser.error(f"--compare: {exc}")
    history: list[BenchRun] = []
    if args.html is not None:
        history = _load_history(args.save, args.compare)

    for line in ignored_options(
        [load_suite(name) for name in (args.suites or SUITES)], args.size, args.messages
    ):
        sys.stderr.write(line)

    try:
        with _report.progress_reporter(plain=args.plain) as progress:
            result = run(
                args.suites or None,
                quick=not args.full,
                peers=args.peers,
                repeat=args.repeat,
                trial_ms=args.trial_ms,
                select=args.select,
                size=args.size,
                messages=args.messages,
                progress=progress,
            )
    except ValueError as exc:  # e.g. --select matched nothing
        parser.error(str(exc))

    _report.print_report(result, plain=args.plain)
    comparison = None
    if baseline is not None:
        comparison = _compare.compare_runs(baseline, result, args.threshold)
        _compare.print_comparison(comparison, plain=args.plain)
    _write_outputs(args, result, baseline, history)
    sys.stderr.write(f"bench finished in {result.duration_s:.1f} s\n")
    if result.errors:
        return EXIT_ERROR
    if comparison is not None and comparison.regressions and args.fail_on_regression:
        count = len(comparison.regressions)
        sys.stderr.write(
            f"{count} performance regression{'s' if count != 1 else ''} against "
            f"{args.compare}: exit status {EXIT_REGRESSION} (--fail-on-regression)\n"
        )
        return EXIT_REGRESSION
    return EXIT_OK


def _load_history(save: str | None, compare: str | None) -> list[BenchRun]:
    """The earlier runs for the HTML trend charts: the history of the ``--save`` name, else
    of the ``--compare`` name when it is a saved name; empty when there is none or it cannot
    be read (said on stderr)."""
    from kaelix.bench import _history

    for name in (save, compare):
        if name is None:
            continue
        try:
            files = _history.history_files(name)
        except ValueError:  # not a saved name (``--compare`` of a file path)
            continue
        if not files:
            continue
        try:
            return _history.load_history(name, limit=HISTORY_LIMIT)
        except ValueError as exc:
            sys.stderr.write(f"note: no history trends in the HTML report: {exc}\n")
            return []
    return []


def _write_outputs(
    args: argparse.Namespace,
    result: BenchRun,
    baseline: BenchRun | None,
    history: Sequence[BenchRun],
) -> None:
    """Write what the options ask for: JSON, the saved run and its history entry, HTML,
    Markdown and HdrHistogram logs; a line on stderr for each."""
    from kaelix.bench import _history

    if args.json is not None:
        write_json(result, args.json)
        sys.stderr.write(f"wrote {args.json} ({result.schema})\n")
    if args.save is not None:
        latest, entry = _history.save_run(result, args.save)
        sys.stderr.write(f"saved {latest} and {entry}\n")
    if args.html is not None:
        from kaelix.bench._html import write_html

        write_html(args.html, result, baseline=baseline, history=history)
        trend = f", {len(history)} earlier runs in the trends" if history else ""
        sys.stderr.write(f"wrote {args.html}{trend}\n")
    if args.markdown is not None:
        from kaelix.bench._markdown import render_markdown

        args.markdown.write_text(render_markdown(result, baseline=baseline), encoding="utf-8")
        sys.stderr.write(f"wrote {args.markdown}\n")
    if args.hdr_dir is not None:
        from kaelix.bench._hdrlog import write_hdr_logs

        written = write_hdr_logs(result, args.hdr_dir)
        if written:
            sys.stderr.write(f"wrote {len(written)} HdrHistogram logs to {args.hdr_dir}\n")
        else:
            sys.stderr.write(
                f"note: --hdr-dir {args.hdr_dir}: no latency result of this run carries a "
                "histogram\n"
            )
