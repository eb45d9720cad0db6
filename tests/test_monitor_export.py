"""kaelix.monitor's outputs: the Prometheus exposition (parsed with prometheus_client's own
parser, and scraped over HTTP from a real server on localhost), the dashboard rendered to a
string, the HTML report, and ``python -m kaelix.monitor`` attached to a shared stream that
two other processes use."""

from __future__ import annotations

import io
import multiprocessing
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import kaelix
from kaelix.monitor import (
    AlertRule,
    Monitor,
    MonitorError,
    Registry,
    dashboard,
    exposition,
    render,
    report_html,
    serve,
)
from monitor_workers import FakeClock, produce_then_wait, unique_name


def populated() -> tuple[Registry, kaelix.Stream, kaelix.Consumer]:
    stream = kaelix.Stream(unique_name(), partitions=2)
    registry = Registry.from_streams(stream)
    sent = registry.counter("app_sent_total", "Messages the app sent.", labels=("topic",))
    sent.labels(topic="orders").inc(3)
    registry.gauge("app_queue_bytes", "Bytes queued.").set(512)
    consumer = registry.observe(stream.consumer())
    producer = stream.producer()
    producer.send_batch([b"a" * 10] * 6, partition=1)
    registry.collect()  # arms the consumer: its next poll is measured
    assert len(consumer.poll_batch(100, timeout=5.0)) == 6
    return registry, stream, consumer  # the caller keeps the consumer alive


Families = dict[str, tuple[str, list[tuple[str, dict[str, str], float]]]]


def parsed(text: str) -> Families:
    return {
        family.name: (family.type, [(s.name, s.labels, s.value) for s in family.samples])
        for family in text_string_to_metric_families(text)
    }


def check_families(families: Families) -> None:
    kind, samples = families["app_sent"]  # the parser drops _total from a counter's family
    assert kind == "counter"
    assert ("app_sent_total", {"topic": "orders"}, 3.0) in samples
    assert families["app_queue_bytes"] == ("gauge", [("app_queue_bytes", {}, 512.0)])
    kind, samples = families["kaelix_stream_messages_published"]
    assert kind == "counter"
    name = samples[0][1]["stream"]
    published = {s[1]["partition"]: s[2] for s in samples if s[0].endswith("_total")}
    assert published == {"0": 0.0, "1": 6.0}
    kind, samples = families["kaelix_stream_latency_seconds"]
    assert kind == "summary"
    by_name = {(s[0], s[1].get("quantile")): s[2] for s in samples}
    assert by_name[("kaelix_stream_latency_seconds_count", None)] == 6.0
    assert 0.0 < by_name[("kaelix_stream_latency_seconds", "0.99")] < 60.0  # seconds
    assert [s[1]["stream"] for s in samples] == [name] * 6
    assert families["kaelix_stream_fill_ratio"][0] == "gauge"


def test_exposition_parses_with_prometheus_clients_parser() -> None:
    registry, stream, _consumer = populated()
    with stream:
        check_families(parsed(exposition(registry)))


def test_scraped_over_http_from_localhost() -> None:
    registry, stream, _consumer = populated()
    with stream, serve(registry) as server:
        assert server.addr == "127.0.0.1"
        assert server.port > 0
        with urllib.request.urlopen(server.url, timeout=10.0) as response:
            assert response.status == 200
            text = response.read().decode("utf-8")
    check_families(parsed(text))


def test_a_missing_prometheus_client_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    wanted = r'prometheus_client is not installed: pip install "kaelix\[monitor\]"'
    with pytest.raises(MonitorError, match=wanted):
        exposition(Registry())


def test_render_shows_streams_consumers_latency_metrics_and_alerts() -> None:
    registry, stream, _consumer = populated()
    clock = FakeClock(0.0)
    rule = AlertRule.above("queue_big", "app_queue_bytes", 100.0)
    with stream:
        monitor = Monitor(registry, clock=clock, interval=1.0, rules=[rule])
        monitor.sample()
        clock.advance(1.0)
        stream.producer().send_batch([b"b"] * 10, partition=0)
        monitor.sample()
        text = render(monitor)
    lines = text.splitlines()
    assert lines[0] == "kaelix monitor: 2 samples over 1.0 s (every 1 s), 31 series"
    assert f"stream {stream.name!r}: 2 partitions" in lines
    header = next(line for line in lines if line.strip().startswith("partition"))
    assert header.split() == [
        "partition", "published", "throughput", "bytes", "lag", "fill", "drops"
    ]  # fmt: skip
    row0 = next(line for line in lines if line.strip().startswith("0 "))
    frame = len(kaelix.encode(kaelix.Message(b"b")))
    assert row0.split()[:5] == ["0", "10", "10.0/s", f"{10 * frame:.1f}B/s", "10"]
    # the consumer's cursors, one reader row per partition: all 6 of partition 1 read
    readers = lines.index("  readers (pid/slot, every process):")
    assert lines[readers + 1].split() == [
        "reader", "partition", "received", "throughput", "lag", "skipped"
    ]  # fmt: skip
    me = f"{os.getpid()}/0"
    assert lines[readers + 2].split() == [me, "0", "0", "0.0/s", "10", "0"]
    assert lines[readers + 3].split() == [me, "1", "6", "0.0/s", "0", "0"]
    assert any(line.split()[:2] == ["all", "16"] for line in lines)
    assert any("latency (last 10 s): p50" in line and "max" in line for line in lines)
    assert any(line.split()[:2] == ["app_sent_total{topic=orders}", "3"] for line in lines)
    assert "alerts firing (1):" in lines
    assert any("queue_big firing: app_queue_bytes value = 512" in line for line in lines)
    assert "\x1b" not in text


def test_dashboard_redraws_in_place_without_rich() -> None:
    registry, stream, _consumer = populated()
    with stream:
        monitor = Monitor(registry, interval=0.01)
        out = io.StringIO()
        dashboard(monitor, refresh=0.01, duration=0.05, file=out, use_rich=False)
        assert not monitor.running
    frames = out.getvalue().split("\x1b[H\x1b[2J")
    assert len(frames) >= 3
    assert all(frame.startswith("kaelix monitor:") for frame in frames[1:])


def test_dashboard_with_rich_live() -> None:
    registry, stream, _consumer = populated()
    with stream:
        monitor = Monitor(registry, interval=0.01)
        out = io.StringIO()
        dashboard(monitor, refresh=0.01, duration=0.05, file=out, use_rich=True)
    assert "kaelix monitor:" in out.getvalue()


def test_html_report_is_self_contained(tmp_path: Path) -> None:
    registry, stream, _consumer = populated()
    clock = FakeClock(0.0)
    rule = AlertRule.above("queue_big", "app_queue_bytes", 100.0)
    with stream:
        monitor = Monitor(registry, clock=clock, interval=1.0, rules=[rule])
        for _ in range(5):
            stream.producer().send(b"c")
            monitor.sample()
            clock.advance(1.0)
        gauge = registry.gauge("app_late", "a series that appears later")
        gauge.set(1)
        monitor.sample()
        path = monitor.report_html(tmp_path / "report.html", title="orders <today>")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "<title>orders &lt;today&gt;</title>" in text
    assert text.count("<svg") >= 10
    assert "<polyline" in text
    assert "queue_big firing" in text
    assert "<script" not in text and "src=" not in text and "<link" not in text
    assert report_html(monitor, tmp_path / "again.html").exists()


def test_command_line_sees_two_processes_on_a_shared_stream() -> None:
    context = multiprocessing.get_context("spawn")
    name = unique_name()
    with kaelix.Stream(name, shared=True, partitions=2, capacity=1 << 16) as stream:
        consumer = stream.consumer()  # this process reads; a child process produces
        ready = context.Queue()
        done = context.Event()
        child = context.Process(target=produce_then_wait, args=(name, 40, ready, done))
        child.start()
        try:
            status, detail = ready.get(timeout=30.0)
            assert status == "ok", detail
            received = len(consumer.poll_batch(15, timeout=5.0))
            assert received == 15
            result = subprocess.run(
                [sys.executable, "-m", "kaelix.monitor", name, "--once", "--interval", "0.05"],
                capture_output=True,
                text=True,
                timeout=60.0,
                check=False,
            )
        finally:
            done.set()
            child.join(20.0)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert f"stream {name!r}: 2 partitions" in lines
        rows = {
            line.split()[0]: line.split()
            for line in lines
            if line.split()[0:1] in (["0"], ["1"], ["all"])
        }
        assert rows["all"][1] == "40"
        assert int(rows["0"][1]) + int(rows["1"][1]) == 40
        lags = [int(rows[p][4]) for p in ("0", "1")]
        assert sum(lags) == 40 - received  # the slowest cursor is in this process
        # this process's consumer, seen by the monitor's process: one reader per partition
        mine = [line.split() for line in lines if line.split()[0:1] == [f"{os.getpid()}/0"]]
        assert sorted(row[1] for row in mine) == ["0", "1"]
        assert sum(int(row[2]) for row in mine) == received
        assert sum(int(row[4]) for row in mine) == 40 - received
        consumer.close()


def test_command_line_of_a_missing_stream() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kaelix.monitor", unique_name(), "--once"],
        capture_output=True,
        text=True,
        timeout=60.0,
        check=False,
    )
    assert result.returncode == 2
    assert "no shared stream named" in result.stderr


def test_the_docs_examples_run(capsys: pytest.CaptureFixture[str]) -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "monitor.md").read_text("utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) == 2
    namespace: dict[str, object] = {"__name__": "docs_monitor"}
    for block in blocks:
        exec(compile(block, "docs/monitor.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "stream 'orders': 2 partitions" in out
    assert "http://127.0.0.1:" in out
    import prometheus_client

    prometheus_client.REGISTRY.unregister(_last_collector())  # the example registered it


def _last_collector() -> object:
    import prometheus_client

    from kaelix.monitor import PrometheusCollector

    found = [
        c
        for c in list(prometheus_client.REGISTRY._collector_to_names)
        if isinstance(c, PrometheusCollector)
    ]
    return found[-1]
