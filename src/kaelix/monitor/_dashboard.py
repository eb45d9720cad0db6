"""The terminal dashboard: `render` turns a `Monitor`'s latest samples into text (per
stream and partition: messages published and their rate, lag, fill level, drops; consumer
lag; latency percentiles; alerts firing and recent; other metrics), and `dashboard` redraws
it in place, through rich's ``Live`` when rich is installed and the output is a terminal,
else with plain ANSI escapes.

Imports the sampler of this package and, lazily, rich; never the bench, never
prometheus_client.
"""

from __future__ import annotations

import math
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

from kaelix.monitor._metrics import LATENCY_METRIC, STREAM_METRICS, Labels
from kaelix.monitor._report import _derived

if TYPE_CHECKING:
    from kaelix.monitor._sampler import Monitor

__all__ = ["dashboard", "render"]

_PUBLISHED = "kaelix_stream_messages_published_total"
_PUBLISHED_BYTES = "kaelix_stream_bytes_published_total"
_RECEIVED = "kaelix_stream_messages_received_total"
_RECENT_ALERTS = 8


def _count(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:,.0f}"


def _rate(value: float) -> str:
    if math.isnan(value):
        return "-"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f}{unit}/s"
    return f"{value:.1f}/s"


def _seconds(value: float) -> str:
    if math.isnan(value):
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value * 1e9:.0f} ns"


def _percent(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value * 100:.1f}%"


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    lines = [
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w)
            for i, (h, w) in enumerate(zip(header, widths, strict=True))
        )
    ]
    for row in rows:
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return ["  " + line.rstrip() for line in lines]


def render(monitor: Monitor, *, window: float = 1.0, latency_window: float = 10.0) -> str:
    """The dashboard as text, from the monitor's samples so far: rates over the last
    ``window`` seconds, latency percentiles over the last ``latency_window`` seconds.
    Plain text (no escapes), one frame; ``dashboard`` redraws it in place."""
    lines: list[str] = []
    last = monitor.last_sample
    start = monitor.started_at
    span = 0.0 if last is None or start is None else last - start
    lines.append(
        f"kaelix monitor: {monitor.samples} samples over {span:.1f} s "
        f"(every {monitor.interval:g} s), {len(monitor.series_keys())} series"
    )
    streams: dict[str, list[Labels]] = defaultdict(list)
    for _, labels in monitor.series_keys(_PUBLISHED):
        streams[dict(labels)["stream"]].append(labels)
    for name in sorted(streams):
        parts = sorted(streams[name], key=lambda lab: int(dict(lab)["partition"]))
        lines.append("")
        lines.append(f"stream {name!r}: {len(parts)} partitions")
        rows: list[tuple[str, ...]] = []
        total = 0.0
        total_rate = float("nan")
        for labels in parts:
            published = monitor.latest(_PUBLISHED, labels)
            rate = monitor.rate(_PUBLISHED, window, labels)
            total += published or 0.0
            if not math.isnan(rate):
                total_rate = rate if math.isnan(total_rate) else total_rate + rate
            rows.append(
                (
                    dict(labels)["partition"],
                    _count(published),
                    _rate(rate),
                    _rate(monitor.rate(_PUBLISHED_BYTES, window, labels)).replace("/s", "B/s"),
                    _count(monitor.latest("kaelix_stream_lag_messages", labels)),
                    _percent(monitor.latest("kaelix_stream_fill_ratio", labels)),
                    _count(monitor.latest("kaelix_stream_messages_overwritten_total", labels)),
                )
            )
        if len(parts) > 1:
            rows.append(("all", _count(total), _rate(total_rate), "", "", "", ""))
        lines.extend(
            _table(("partition", "published", "throughput", "bytes", "lag", "fill", "drops"), rows)
        )
        readers = monitor.series_keys(_RECEIVED, {"stream": name})
        if readers:
            rrows = []
            for _, labels in sorted(
                readers, key=lambda k: (dict(k[1])["reader"], int(dict(k[1])["partition"]))
            ):
                lab = dict(labels)
                rrows.append(
                    (
                        lab["reader"],
                        lab["partition"],
                        _count(monitor.latest(_RECEIVED, labels)),
                        _rate(monitor.rate(_RECEIVED, window, labels)),
                        _count(monitor.latest("kaelix_stream_reader_lag_messages", labels)),
                        _count(monitor.latest("kaelix_stream_reader_skipped_total", labels)),
                    )
                )
            lines.append("  readers (pid/slot, every process):")
            lines.extend(
                _table(("reader", "partition", "received", "throughput", "lag", "skipped"), rrows)
            )
        consumers = monitor.series_keys("kaelix_consumer_lag_messages", {"stream": name})
        if consumers:
            by_consumer: dict[str, list[Labels]] = defaultdict(list)
            for _, labels in consumers:
                by_consumer[dict(labels)["consumer"]].append(labels)
            crow = []
            for consumer in sorted(by_consumer):
                lag = sum(
                    monitor.latest("kaelix_consumer_lag_messages", lab) or 0.0
                    for lab in by_consumer[consumer]
                )
                skipped = sum(
                    monitor.latest("kaelix_consumer_skipped_total", lab) or 0.0
                    for lab in by_consumer[consumer]
                )
                crow.append((consumer, _count(lag), _count(skipped)))
            lines.append("  consumers of this process:")
            lines.extend(_table(("consumer", "lag", "skipped"), crow))
        waits = monitor.latest("kaelix_stream_producer_waits_total", (("stream", name),))
        if waits:
            blocked = monitor.latest(
                "kaelix_stream_producer_blocked_seconds_total", (("stream", name),)
            )
            lines.append(
                f"  producers of this process waited for room {waits:,.0f} times, "
                f"{_seconds(blocked or 0.0)} in all"
            )
        latency = monitor.series_keys(LATENCY_METRIC, {"stream": name})
        if latency:
            labels = latency[0][1]
            qs = [
                f"p{q:g} {_seconds(monitor.percentile(LATENCY_METRIC, q, latency_window, labels))}"
                for q in (50.0, 99.0, 99.9, 100.0)
            ]
            lines.append(
                f"  latency (last {latency_window:g} s): " + ", ".join(qs).replace("p100", "max")
            )
    others = [
        key
        for key in monitor.series_keys()
        if key[0] not in STREAM_METRICS
        and not key[0].startswith(LATENCY_METRIC)
        and not _derived(monitor, key[0])
        and not key[0].startswith("kaelix_consumer_")
    ]
    if others:
        lines.append("")
        lines.append("metrics:")
        orows = []
        for name, labels in sorted(others)[:40]:
            shown = name + ("{" + ",".join(f"{k}={v}" for k, v in labels) + "}" if labels else "")
            if monitor.kind(name) == "histogram":
                p50 = monitor.percentile(name, 50.0, latency_window, labels)
                p99 = monitor.percentile(name, 99.0, latency_window, labels)
                orows.append((shown, f"p50 {p50:.6g}", f"p99 {p99:.6g}"))
                continue
            value = monitor.latest(name, labels)
            shown_rate = ""
            if monitor.kind(name) == "counter":
                shown_rate = _rate(monitor.rate(name, window, labels))
            orows.append((shown, "-" if value is None else f"{value:.6g}", shown_rate))
        lines.extend(_table(("series", "value", "rate"), orows))
    lines.append("")
    firing = monitor.firing
    if firing:
        lines.append(f"alerts firing ({len(firing)}):")
        lines.extend(f"  [{a.severity}] {a.message}" for a in firing)
    else:
        lines.append("alerts firing: none")
    recent = monitor.alerts[-_RECENT_ALERTS:]
    if recent:
        lines.append("recent alert events:")
        origin = 0.0 if start is None else start
        lines.extend(f"  t+{a.time - origin:7.1f} s  {a.state:8}  {a.message}" for a in recent)
    return "\n".join(lines) + "\n"


def dashboard(
    monitor: Monitor,
    *,
    refresh: float = 0.5,
    duration: float | None = None,
    file: TextIO | None = None,
    use_rich: bool | None = None,
    window: float = 1.0,
) -> None:
    """Shows `render` of ``monitor`` every ``refresh`` seconds, redrawn in place, until
    ``duration`` seconds passed (None: until Ctrl-C). Starts the monitor's sampling when it
    is not running (and stops it at the end). ``use_rich``: draw with rich's ``Live``
    (default: when rich is installed and ``file`` is a terminal), else with ANSI escapes."""
    out = sys.stdout if file is None else file
    started = not monitor.running
    if started:
        monitor.start()
    if use_rich is None:
        use_rich = out.isatty() and _has_rich()
    deadline = None if duration is None else time.monotonic() + duration
    try:
        if use_rich:
            from rich.console import Console
            from rich.live import Live
            from rich.text import Text

            console = Console(file=out)
            with Live(
                Text(render(monitor, window=window)), console=console, auto_refresh=False
            ) as live:
                while deadline is None or time.monotonic() < deadline:
                    time.sleep(refresh)
                    live.update(Text(render(monitor, window=window)), refresh=True)
        else:
            while True:
                out.write("\x1b[H\x1b[2J" + render(monitor, window=window))
                out.flush()
                if deadline is not None and time.monotonic() >= deadline:
                    break
                time.sleep(refresh)
    except KeyboardInterrupt:
        pass
    finally:
        if started:
            monitor.stop()


def _has_rich() -> bool:
    import importlib.util

    return importlib.util.find_spec("rich") is not None
