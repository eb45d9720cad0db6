"""The HTML report and the Markdown summary of a bench run: the page is parsed and its charts,
tables, deltas and trends checked against the run; the Markdown against the terminal table.
One tiny real run (crc32c cases, two trials of 1 ms) plus hand-built cases for latency,
skipped, failed and one-off contenders. No test asserts a speed."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Literal

import pytest

from kaelix.bench import (
    Bar,
    BarCheck,
    BenchRun,
    CaseResult,
    ContenderResult,
    Latency,
    Timing,
    render_text,
    run,
)
from kaelix.bench._format import format_speedup
from kaelix.bench._html import DELTA_THRESHOLD, Delta, Figure, Metric, render_html, write_html
from kaelix.bench._markdown import render_markdown
from kaelix.bench._model import Role

COMMIT = "0123456789abcdef0123456789abcdef01234567"
SKIP_REASON = 'orjson is not installed: pip install "kaelix[bench]"'
ERROR_REASON = "RuntimeError: the peer broke on purpose"
LATENCY_CASE = "1\u21921 processes, one-way latency (test)"
ONCE_CASE = "numba compile (test)"
SPREAD_CASE = "a case whose rates span 100\u00d7"
EMPTY_CASE = "a case where nothing ran"
SUITE_ORDER = ["codec", "ring", "validate"]  # suites appear in the order of their first case

# ---------------------------------------------------------------------------- HTML parsing

_VOID = {"meta", "br", "img", "input", "link", "hr", "col", "source", "wbr"}


class Node:
    """An element of the parsed page: tag, attributes, children and the text inside."""

    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node] = []
        self.texts: list[str] = []

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def iter(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            yield from child.iter()

    def find_all(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[Node]:
        return [
            node
            for node in self.iter()
            if node is not self
            and (tag is None or node.tag == tag)
            and (cls is None or cls in node.classes)
            and all(node.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]

    def text(self) -> str:
        parts = [*self.texts]
        for child in self.children:
            parts.append(child.text())
        return "".join(parts)


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.current = self.root

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, self.current)
        self.current.children.append(node)
        if tag not in _VOID:
            self.current = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.current.children.append(Node(tag, {k: v or "" for k, v in attrs}, self.current))

    def handle_endtag(self, tag: str) -> None:
        node: Node | None = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        assert node is not None and node.parent is not None, f"unbalanced </{tag}>"
        self.current = node.parent

    def handle_data(self, data: str) -> None:
        self.current.texts.append(data)


def parse(page: str) -> Node:
    builder = _TreeBuilder()
    builder.feed(page)
    builder.close()
    assert builder.current is builder.root, "unclosed elements"
    return builder.root


# ----------------------------------------------------------------------------- the runs


def _timing(ns: float, spread: float = 0.02) -> Timing:
    return Timing(ns, ns * (1 - spread), ns * (1 + spread), ns * 0.9, ns * 1.1, 100, (ns,))


def _rate(name: str, role: Role, ns: float, spread: float = 0.02) -> ContenderResult:
    return ContenderResult(
        name, role, "ok", messages_per_op=1, bytes_per_op=64, timing=_timing(ns, spread)
    )


def _latency(name: str, role: Role, p50: float, scale: float = 1.0) -> ContenderResult:
    p50 *= scale
    figures = (p50, p50 * 2, p50 * 10, p50 * 100, p50 * 300, p50 * 1.5)
    return ContenderResult(name, role, "ok", timing=_timing(p50), latency=Latency(20_000, *figures))


def _synthetic_cases(scale: float = 1.0) -> tuple[CaseResult, ...]:
    """Cases the tiny real run cannot make: latency, one-off costs, a wide spread of rates,
    skipped and failed contenders. ``scale`` multiplies kaelix's times (history, baseline)."""
    p99_bar = Bar("p99 \u2264 10 \u00b5s", "max_latency", 10_000.0, percentile=99.0)
    latency = CaseResult(
        suite="ring",
        case=LATENCY_CASE,
        throughput="latency",
        contenders=(
            _latency("kaelix (spin)", "kaelix", 300.0, scale),
            _latency("kaelix (sleep)", "kaelix", 500.0, scale),
            _latency("faster-fifo", "peer", 11_000.0),
            _latency("machine floor (no channel)", "reference", 75.0),
            ContenderResult("multiprocessing.Queue", "peer", "skipped", reason=SKIP_REASON),
        ),
        bars=(BarCheck(p99_bar, 3000.0 * scale <= 10_000.0, "kaelix p99 3.00 \u00b5s"),),
    )
    once = CaseResult(
        suite="validate",
        case=ONCE_CASE,
        throughput="messages",
        contenders=(
            ContenderResult("kaelix no cache", "kaelix", "ok", timing=_timing(2e9 * scale, 0)),
            ContenderResult("kaelix cached", "kaelix", "ok", timing=_timing(2.7e8, 0)),
        ),
    )
    spread = CaseResult(
        suite="ring",
        case=SPREAD_CASE,
        throughput="messages",
        contenders=(
            _rate("kaelix", "kaelix", 10.0 * scale, spread=0.2),
            _rate("queue.Queue", "peer", 1000.0),
            _rate("collections.deque", "peer", 5.0),
            ContenderResult("orjson", "peer", "skipped", reason=SKIP_REASON),
            ContenderResult("pickle", "peer", "error", reason=ERROR_REASON),
        ),
        bars=(BarCheck(Bar("\u2265 20 M msg/s", "min_messages_per_s", 2e7), True, "kaelix fast"),),
    )
    empty = CaseResult(
        suite="ring",
        case=EMPTY_CASE,
        throughput="messages",
        contenders=(ContenderResult("orjson", "peer", "skipped", reason=SKIP_REASON),),
    )
    return (latency, once, spread, empty)


def _scaled(base: BenchRun, scale: float, created: str, commit: str) -> BenchRun:
    """``base`` with kaelix's times multiplied by ``scale`` (its rates divided by it)."""

    def contender(result: ContenderResult) -> ContenderResult:
        if result.role != "kaelix" or result.timing is None:
            return result
        t = result.timing
        timing = dataclasses.replace(
            t, median_ns=t.median_ns * scale, q1_ns=t.q1_ns * scale, q3_ns=t.q3_ns * scale
        )
        latency = result.latency
        if latency is not None:
            latency = Latency(
                latency.samples,
                *(
                    v * scale
                    for v in (
                        latency.p50_ns,
                        latency.p90_ns,
                        latency.p99_ns,
                        latency.p999_ns,
                        latency.max_ns,
                        latency.mean_ns,
                    )
                ),
            )
        return dataclasses.replace(result, timing=timing, latency=latency)

    results = tuple(
        dataclasses.replace(case, contenders=tuple(contender(c) for c in case.contenders))
        for case in base.results
    )
    machine = {**base.machine, "git_commit": commit, "git_dirty": False}
    return dataclasses.replace(base, results=results, created=created, machine=machine)


@pytest.fixture(scope="module")
def tiny_run() -> BenchRun:
    """A real run of the crc32c cases (about a second), with the synthetic cases added."""
    real = run(["codec"], repeat=2, trial_ms=1, select="crc32c")
    machine = {**real.machine, "git_commit": COMMIT, "git_dirty": True}
    return dataclasses.replace(real, machine=machine, results=real.results + _synthetic_cases())


@pytest.fixture(scope="module")
def history(tiny_run: BenchRun) -> list[BenchRun]:
    """Three earlier runs, kaelix 1.3×, 1.2× and 1.1× slower than in ``tiny_run``."""
    return [
        _scaled(tiny_run, scale, f"2026-01-0{day}T12:00:00+00:00", f"{day}" * 40)
        for day, scale in ((1, 1.3), (2, 1.2), (3, 1.1))
    ]


@pytest.fixture(scope="module")
def page(tiny_run: BenchRun) -> Node:
    return parse(render_html(tiny_run))


def _section(root: Node, case: str) -> Node:
    (section,) = root.find_all("section", "case", data_case=case)
    return section


def _main_chart(section: Node) -> Node:
    charts = [
        svg
        for svg in section.find_all("svg", "chart")
        if svg.attrs["data-chart"] in ("throughput", "time", "latency")
    ]
    assert len(charts) == 1, [svg.attrs["data-chart"] for svg in charts]
    return charts[0]


def _contender(case: CaseResult, name: str) -> ContenderResult:
    result = case.contender(name)
    assert result is not None, name
    return result


def _row_of(cell: Node) -> Node:
    assert cell.parent is not None and cell.parent.tag == "tr"
    return cell.parent


def _rect_width(bar: Node) -> float:
    (rect,) = bar.find_all("rect")
    return float(rect.attrs["width"])


# ------------------------------------------------------------------------------- the page


def test_every_measured_case_has_one_chart_with_a_bar_per_contender_that_ran(
    tiny_run: BenchRun, page: Node
) -> None:
    sections = page.find_all("section", "case")
    by_suite = sorted(tiny_run.results, key=lambda c: SUITE_ORDER.index(c.suite))  # stable
    assert [s.attrs["data-case"] for s in sections] == [c.case for c in by_suite]
    for case in tiny_run.results:
        section = _section(page, case.case)
        ran = [c for c in case.contenders if c.ok]
        if not ran:
            assert not section.find_all("svg"), case.case
            assert "No contender was measured" in section.text()
            continue
        chart = _main_chart(section)
        if case.throughput == "latency":
            continue  # its own test below
        bars = chart.find_all("g", "bar")
        assert [b.attrs["data-contender"] for b in bars] == [c.name for c in ran], case.case
        for bar, result in zip(bars, ran, strict=True):
            assert bar.attrs["data-role"] == result.role
            assert result.role in bar.classes
            assert ("kaelix" in bar.classes) == (result.role == "kaelix")
            assert _rect_width(bar) > 0


def test_the_kaelix_bar_is_highlighted_and_reference_lines_are_outlined(page: Node) -> None:
    chart = _main_chart(_section(page, "crc32c 64 KiB"))
    fills = {
        bar.attrs["data-contender"]: bar.find_all("rect")[0].attrs
        for bar in chart.find_all("g", "bar")
    }
    assert fills["kaelix"]["fill"] != fills["crc32c"]["fill"]
    assert "stroke-dasharray" in fills["zlib.crc32"] and fills["zlib.crc32"]["fill"] == "#ffffff"
    (name,) = chart.find_all("text", "kaelix", **{"class": "name kaelix"})
    assert name.text() == "kaelix"


def test_bar_lengths_follow_the_figures_and_labels_carry_ratios(
    tiny_run: BenchRun, page: Node
) -> None:
    for case in tiny_run.results:
        if case.suite != "codec":
            continue
        bars = _main_chart(_section(page, case.case)).find_all("g", "bar")
        values = [float(b.attrs["data-value"]) for b in bars]
        expected = [_contender(case, b.attrs["data-contender"]).bytes_per_s for b in bars]
        assert values == pytest.approx(expected, rel=1e-5)
        widths = [_rect_width(b) for b in bars]
        by_value = sorted(range(len(bars)), key=lambda i: values[i])
        assert [widths[i] for i in by_value] == sorted(widths), case.case
        for bar in bars:
            name = bar.attrs["data-contender"]
            if name == "kaelix":
                assert "faster" not in bar.text() and "slower" not in bar.text()
            else:
                assert format_speedup(case.speedup(name)) in bar.text()


def test_a_wide_spread_of_rates_gets_a_log_axis_whiskers_and_the_rate_bar(page: Node) -> None:
    spread = _main_chart(_section(page, SPREAD_CASE))
    assert "log scale" in spread.text()
    linear = _main_chart(_section(page, "crc32c 64 KiB"))  # about 9x between contenders
    assert "log scale" not in linear.text()

    (kaelix,) = spread.find_all("g", "bar", data_contender="kaelix")
    (whisker,) = kaelix.find_all("g", "whisker")
    xs = sorted(float(line.attrs["x1"]) for line in whisker.find_all("line"))
    end = float(kaelix.find_all("rect")[0].attrs["x"]) + _rect_width(kaelix)
    assert xs[0] < end < xs[-1]  # the IQR (±20 % here) brackets the median
    (threshold,) = spread.find_all("g", "threshold")
    assert threshold.attrs["data-met"] == "True" and "\u2265 20 M msg/s" in threshold.text()


def test_a_latency_case_has_a_percentile_chart_with_a_line_per_contender(
    tiny_run: BenchRun, page: Node
) -> None:
    case = tiny_run.case("ring", LATENCY_CASE)
    chart = _main_chart(_section(page, LATENCY_CASE))
    assert chart.attrs["data-chart"] == "latency"
    series = chart.find_all("g", "series")
    ran = [c for c in case.contenders if c.ok]
    assert sorted(s.attrs["data-contender"] for s in series) == sorted(c.name for c in ran)
    ticks = [t.text() for t in chart.find_all("text", "tick")]
    for label in ("p50", "p90", "p99", "p99.9", "max"):
        assert label in ticks
    for line in series:
        points = line.find_all("circle")
        assert len(points) == 5  # p50, p90, p99, p99.9, max
        xs = [float(p.attrs["cx"]) for p in points]
        ys = [float(p.attrs["cy"]) for p in points]
        assert xs == sorted(xs) and ys == sorted(ys, reverse=True)  # later is higher
    (spin,) = chart.find_all("g", "series", data_contender="kaelix (spin)")
    (fifo,) = chart.find_all("g", "series", data_contender="faster-fifo")
    assert "kaelix" in spin.classes and "kaelix" not in fifo.classes
    spin_p50, fifo_p50 = (float(g.find_all("circle")[0].attrs["cy"]) for g in (spin, fifo))
    assert spin_p50 > fifo_p50  # 300 ns sits below 11 µs
    (mark,) = chart.find_all("g", "threshold")
    assert mark.attrs["data-met"] == "True" and "p99 \u2264 10 \u00b5s" in mark.text()


def test_a_one_off_cost_gets_a_time_chart(page: Node) -> None:
    chart = _main_chart(_section(page, ONCE_CASE))
    assert chart.attrs["data-chart"] == "time"
    widths = {b.attrs["data-contender"]: _rect_width(b) for b in chart.find_all("g", "bar")}
    assert widths["kaelix no cache"] > widths["kaelix cached"]


def test_skipped_and_failed_contenders_are_listed_with_their_reasons(page: Node) -> None:
    section = _section(page, SPREAD_CASE)
    (skipped,) = section.find_all("tr", "skipped")
    assert skipped.attrs["data-contender"] == "orjson" and SKIP_REASON in skipped.text()
    (failed,) = section.find_all("tr", "error")
    assert failed.attrs["data-contender"] == "pickle" and ERROR_REASON in failed.text()
    assert not _main_chart(section).find_all("g", "bar", data_contender="orjson")
    empty = _section(page, EMPTY_CASE)
    assert SKIP_REASON in empty.find_all("tr", "skipped")[0].text()
    assert "error in ring \u00b7 " + SPREAD_CASE in page.text()


def test_the_case_table_holds_the_terminal_report_figures(tiny_run: BenchRun, page: Node) -> None:
    lines = render_text(tiny_run).splitlines()
    block = lines[next(i for i, x in enumerate(lines) if x.startswith("crc32c 4 KiB")) :]
    rows = _section(page, "crc32c 4 KiB").find_all("tr", "contender")
    assert len(rows) == 3
    for row in rows:
        cells = [td.text().replace("reference", "").strip() for td in row.find_all("td")]
        name = cells[0] + (" (reference)" if "reference" in row.classes else "")
        line = next(x for x in block if x.startswith(f"  {name} "))
        for cell in cells[1:]:
            assert cell in line, (cell, line)


def test_the_header_shows_the_machine_and_the_summary_counts_the_bars(
    tiny_run: BenchRun, page: Node
) -> None:
    header = page.find_all("dl", "meta")[0].text()
    machine = tiny_run.machine
    for value in (
        machine["cpu_model"],
        machine["python_version"],
        machine["kaelix_version"],
        machine["numpy_version"],
        COMMIT[:12],
        "with local changes",
        tiny_run.created[:10],
        "quick: 2 trials of ~1 ms",
    ):
        assert str(value) in header, value
    checks = tiny_run.bar_checks
    (met,) = page.find_all("div", "tile", **{"class": "tile met"})
    assert int(met.attrs["data-count"]) == sum(1 for _, c in checks if c.met) > 0
    (missed,) = page.find_all("div", "tile", **{"class": "tile missed"})
    assert int(missed.attrs["data-count"]) == sum(1 for _, c in checks if c.met is False)
    links = {a.attrs["href"] for a in page.find_all("nav", "toc")[0].find_all("a")}
    ids = {s.attrs["id"] for s in page.find_all("section", "case")}
    assert {f"#{i}" for i in ids} <= links


def test_the_page_loads_nothing_from_the_network(page: Node, tiny_run: BenchRun) -> None:
    source = render_html(tiny_run)
    assert not page.find_all("script") and not page.find_all("link")
    assert not page.find_all("img") and not page.find_all("iframe")
    for node in page.iter():
        for name, value in node.attrs.items():
            if name in ("src", "href", "xlink:href", "action", "data"):
                assert value.startswith("#"), (node.tag, name, value)
    (style,) = page.find_all("style")
    assert "url(" not in style.text() and "@import" not in style.text()
    assert (
        "http:" not in source
        and "https:" not in source
        and "//" not in re.sub(r"<style>.*?</style>", "", source, flags=re.S)
    )


def test_names_are_escaped(tiny_run: BenchRun) -> None:
    evil = "<script>alert(1)</script>"
    case = dataclasses.replace(
        tiny_run.results[0],
        case=evil,
        contenders=(*tiny_run.results[0].contenders, _rate(evil, "peer", 50.0)),
    )
    root = parse(render_html(dataclasses.replace(tiny_run, results=(case,)), title=evil))
    assert not root.find_all("script")
    assert evil in _section(root, evil).find_all("h3")[0].text()
    assert root.find_all("title")[0].text() == evil


def test_history_adds_a_trend_chart_per_case(tiny_run: BenchRun, history: list[BenchRun]) -> None:
    assert not parse(render_html(tiny_run)).find_all("svg", data_chart="history")
    root = parse(render_html(tiny_run, history=history))
    for case in tiny_run.results:
        section = _section(root, case.case)
        trends = section.find_all("svg", data_chart="history")
        if case.kaelix is None or not case.kaelix.ok:
            assert not trends, case.case
            continue
        (trend,) = trends
        (series,) = trend.find_all("g", "series")
        assert series.attrs["data-contender"] == case.kaelix.name
        points = series.find_all("circle", "point")
        assert [p.attrs["data-run"] for p in points] == ["0", "1", "2", "3"]
        ys = [float(p.attrs["cy"]) for p in points]
        # kaelix got faster run after run: a rate climbs (y falls), a latency or time falls
        higher_is_better = case.throughput != "latency" and case.case != ONCE_CASE
        assert ys == sorted(ys, reverse=higher_is_better), case.case
        labels = [t.text() for t in trend.find_all("text", "run-label")]
        assert labels == ["1111111", "2222222", "3333333", COMMIT[:7] + "*"]


def test_a_baseline_shows_each_contenders_change_coloured_beyond_5_percent(
    tiny_run: BenchRun, history: list[BenchRun]
) -> None:
    assert not parse(render_html(tiny_run)).find_all("td", "delta")
    baseline = history[-1]  # kaelix took 1.1x the time then: now 10 % faster
    root = parse(render_html(tiny_run, baseline=baseline))
    for case in tiny_run.results:
        section = _section(root, case.case)
        cells = {_row_of(td).attrs["data-contender"]: td for td in section.find_all("td", "delta")}
        measured = {c.name for c in case.contenders if c.ok}
        assert set(cells) == measured, case.case
        for name, cell in cells.items():
            kaelix = _contender(case, name).role == "kaelix"
            change = float(cell.attrs["data-delta"])
            if not kaelix:
                assert change == 0 and "same" in cell.classes
            elif case.throughput == "latency" or case.case == ONCE_CASE:
                assert change == pytest.approx(-100 / 11, abs=0.01)  # 1/1.1 - 1, lower: better
                metric = "p99" if case.throughput == "latency" else "time"
                assert "better" in cell.classes and cell.text() == f"{metric} \u22129.1%"
            else:
                assert change == pytest.approx(10.0, abs=0.01)  # rate 1.1x
                assert "better" in cell.classes and cell.text() == "+10%"
    worse = parse(render_html(baseline, baseline=tiny_run))
    (cell,) = [
        td
        for td in _section(worse, "crc32c 64 KiB").find_all("td", "delta")
        if td.parent and td.parent.attrs["data-contender"] == "kaelix"
    ]
    assert "worse" in cell.classes and cell.text() == "\u22129.1%"
    (tile,) = worse.find_all("div", **{"class": "tile worse"})
    kaelix_measured = [c for case in tiny_run.results for c in case.contenders if c.ok]
    assert int(tile.attrs["data-count"]) == sum(c.role == "kaelix" for c in kaelix_measured)
    (marker,) = (
        _main_chart(_section(worse, "crc32c 64 KiB"))
        .find_all("g", "bar", data_contender="kaelix")[0]
        .find_all("line", "baseline-mark")
    )
    assert "baseline" in marker.text()


@pytest.mark.parametrize(
    ("metric", "before", "after", "verdict"),
    [
        ("throughput", 100.0, 104.0, "same"),
        ("throughput", 100.0, 94.0, "worse"),
        ("throughput", 100.0, 106.0, "better"),
        ("p99", 100.0, 106.0, "worse"),
        ("p99", 100.0, 94.0, "better"),
        ("time", 100.0, 96.0, "same"),
    ],
)
def test_delta_verdicts(metric: Metric, before: float, after: float, verdict: str) -> None:
    unit: Literal["msg/s", "ns"] = "msg/s" if metric == "throughput" else "ns"
    delta = Delta(
        "s", "c", "kaelix", "kaelix", Figure(metric, before, unit), Figure(metric, after, unit)
    )
    assert delta.verdict == verdict
    assert math.isclose(abs(delta.change), 0.04 if verdict == "same" else 0.06)
    assert DELTA_THRESHOLD == 0.05


def test_write_html_writes_the_rendered_page(tiny_run: BenchRun, tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    write_html(target, tiny_run, title="nightly")
    written = target.read_text(encoding="utf-8")
    assert written == render_html(tiny_run, title="nightly")
    assert written.startswith("<!DOCTYPE html>")


# ---------------------------------------------------------------------------- Markdown


def _fenced_blocks(markdown: str) -> list[str]:
    return re.findall(r"```text\n(.*?)\n```", markdown, flags=re.S)


def _terminal_block(text: str, suite: str) -> str:
    lines = text.splitlines()
    start = lines.index(suite)
    end = next(i for i in range(start, len(lines)) if lines[i] in ("", "notes:"))
    return "\n".join(lines[start:end])


def test_markdown_holds_the_terminal_table_and_the_bar_table_per_suite(
    tiny_run: BenchRun,
) -> None:
    markdown = render_markdown(tiny_run)
    suites = SUITE_ORDER
    assert re.findall(r"^## (\w+) suite$", markdown, flags=re.M) == suites
    text = render_text(tiny_run)
    assert _fenced_blocks(markdown) == [_terminal_block(text, suite) for suite in suites]
    rows = re.findall(r"^\| (.+?) \| (.+?) \| (\S+) \|$", markdown, flags=re.M)
    assert rows[0] == ("DESIGN.md bar", "measured", "met")
    expected = [
        (f"{case.case}: {check.bar.text}", check.detail, "\u2713" if check.met else "\u2717")
        for case, check in tiny_run.bar_checks
    ]
    assert [r for r in rows if r[0] != "DESIGN.md bar"] == expected
    assert "No `DESIGN.md` bar applies to these cases." in markdown  # the validate suite
    assert COMMIT[:12] in markdown and tiny_run.machine["cpu_model"] in markdown
    assert "`python -m kaelix.bench --quick --repeat 2 --trial-ms 1 -k 'crc32c' codec`" in (
        markdown
    )
    assert "Against the baseline" not in markdown


def test_markdown_with_a_baseline_lists_each_change(
    tiny_run: BenchRun, history: list[BenchRun]
) -> None:
    markdown = render_markdown(history[-1], baseline=tiny_run)
    assert markdown.count("| case | contender | baseline | this run | change |") == 3
    row = next(
        line for line in markdown.splitlines() if line.startswith("| crc32c 64 KiB | kaelix |")
    )
    assert row.endswith("| **\u22129.1% worse** |")
    peer = next(
        line for line in markdown.splitlines() if line.startswith("| crc32c 64 KiB | crc32c |")
    )
    assert peer.endswith("| +0.0% |")


def test_renderers_accept_a_run_loaded_from_json(tiny_run: BenchRun) -> None:
    loaded = BenchRun.from_json(tiny_run.to_json())
    assert render_html(loaded) == render_html(tiny_run)
    assert render_markdown(loaded) == render_markdown(tiny_run)
