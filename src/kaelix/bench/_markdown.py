"""A `BenchRun` as Markdown, in the shape of ``docs/benchmarks.md``: the machine, versions and
command, then per suite the terminal report's table in a fenced block and a ``DESIGN.md
bar | measured | met`` table, and with a baseline run each figure's change. The prose a
maintainer writes around the figures ("Read with care") stays hand-written.

Imports the standard library and the bench's own modules only; never kaelix, numpy, numba,
rich or a peer.
"""

from __future__ import annotations

from collections.abc import Sequence

from kaelix.bench._format import DASH, mark
from kaelix.bench._html import DELTA_THRESHOLD, compare, format_date, run_label
from kaelix.bench._model import BenchRun, CaseResult
from kaelix.bench._report import CAVEAT, COLUMNS, case_rows, note_lines, reference_line, suites_in

_RIGHT_ALIGNED = (False, True, True, True, False)
"""Which of `COLUMNS` the terminal report aligns right (the figures)."""


def text_table(suite: str, cases: Sequence[CaseResult]) -> str:
    """The suite's table exactly as the plain terminal report prints it (its name, the column
    headings, a rule, then the case and contender rows)."""
    rows = [row.cells for case in cases for row in case_rows(case)]
    widths = [max(len(row[i]) for row in (COLUMNS, *rows)) for i in range(len(COLUMNS))]
    lines = [suite]
    for row in (COLUMNS, tuple("-" * w for w in widths), *rows):
        cells = [
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, right in zip(row, widths, _RIGHT_ALIGNED, strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _command(run: BenchRun) -> str:
    from kaelix.bench._runner import FULL, QUICK

    settings = run.settings
    mode = FULL if settings.mode == "full" else QUICK
    words = ["python -m kaelix.bench", f"--{settings.mode}"]
    if not settings.peers:
        words.append("--no-peers")
    if settings.repeat != mode.repeat:
        words.append(f"--repeat {settings.repeat}")
    if settings.trial_ms != mode.trial_ms:
        words.append(f"--trial-ms {settings.trial_ms:g}")
    if settings.select:
        words.append(f"-k {settings.select!r}")
    words.extend(settings.suites)
    return " ".join(words)


def header(run: BenchRun) -> str:
    """The paragraph above the tables: machine, versions, commit, command and memcpy."""
    m = run.machine.get
    settings = run.settings
    cpus = m("usable_cpus") or m("cpu_count")
    peers = m("peers") or {}
    peer_text = ", ".join(f"{name} {version}" for name, version in dict(peers).items() if version)
    commit = m("git_commit")
    commit_text = (
        f"commit `{str(commit)[:12]}`" + (" with local changes" if m("git_dirty") else "")
        if commit
        else "no git commit"
    )
    lines = [
        f"Run of {format_date(run.created)}. Machine: {m('cpu_model')}, {cpus} CPUs, "
        f"{m('platform')}; {m('python_implementation')} {m('python_version')}, "
        f"numpy {m('numpy_version')}; peers {peer_text or 'none installed'}. "
        f"kaelix {m('kaelix_version')}, CRC32C path `{m('crc32c_implementation')}`; "
        f"{commit_text}.",
        f"Command: `{_command(run)}` ({settings.repeat} trials of about "
        f"{settings.trial_ms:g} ms per contender after a warm-up; median time per operation; "
        f"IQR relative to the median).",
        reference_line(run)[0].upper() + reference_line(run)[1:] + ".",
        CAVEAT,
    ]
    return "\n".join(lines)


def bar_table(cases: Sequence[CaseResult]) -> str:
    """``| DESIGN.md bar | measured | met |``, one row per bar of these cases."""
    rows = [
        f"| {_cell(case.case)}: {_cell(check.bar.text)} | {_cell(check.detail)} | "
        f"{mark(check.met)} |"
        for case in cases
        for check in case.bars
    ]
    if not rows:
        return "No `DESIGN.md` bar applies to these cases."
    return "\n".join(["| DESIGN.md bar | measured | met |", "|---|---|---|", *rows])


def baseline_table(cases: Sequence[CaseResult], baseline: BenchRun) -> str:
    """Each contender measured here and in ``baseline``: its figure then and now and the
    change, in bold with "worse" or "better" beyond `DELTA_THRESHOLD`."""
    rows = []
    for case in cases:
        for delta in compare(case, baseline).values():
            change = delta.text()
            if delta.verdict != "same":
                change = f"**{change} {delta.verdict}**"
            rows.append(
                f"| {_cell(case.case)} | {_cell(delta.contender)} | "
                f"{_cell(delta.before.text())} | {_cell(delta.after.text())} | {change} |"
            )
    if not rows:
        return "No contender of these cases was measured in the baseline run."
    return "\n".join(
        ["| case | contender | baseline | this run | change |", "|---|---|---:|---:|---:|", *rows]
    )


def render_markdown(run: BenchRun, *, baseline: BenchRun | None = None) -> str:
    """The run as Markdown for ``docs/benchmarks.md``: a header paragraph (machine, versions,
    command, memcpy), then per suite a ``## <suite> suite`` section with the terminal
    table in a fenced ``text`` block, the ``DESIGN.md bar | measured | met`` table and how
    each contender was used. With ``baseline``, each suite also gets the change of every
    figure since that run.
    """
    out = ["# kaelix benchmarks", "", header(run), ""]
    if baseline is not None:
        out += [
            f"Compared with the run of {format_date(baseline.created)} "
            f"(`{run_label(baseline)}`): throughput for rate cases, p99 for latency cases, "
            f"time for one-off costs; changes beyond {DELTA_THRESHOLD:.0%} are marked worse or "
            f"better.",
            "",
        ]
    for suite, cases in suites_in(run):
        out += [f"## {suite} suite", "", "```text", text_table(suite, cases), "```", ""]
        out += [bar_table(cases), ""]
        if baseline is not None:
            out += [f"Against the baseline run ({run_label(baseline)}):", ""]
            out += [baseline_table(cases, baseline), ""]
        notes = note_lines(cases)
        if notes:
            out += ["How each contender was used:", ""]
            out += [f"- {line.strip()}" for line in notes]
            out.append("")
    problems = [
        f"- error in {case.suite}: {case.case}: {contender.name}: {contender.reason or DASH}"
        for case, contender in run.errors
    ]
    if problems:
        out += ["## Errors", "", *problems, ""]
    return "\n".join(out).rstrip() + "\n"


__all__ = ["bar_table", "baseline_table", "header", "render_markdown", "text_table"]
