"""kaelix.monitor: metric types and the registry, stream metrics (threads and real
processes), the sampler's windows and rates against hand-computed values, and alert rules
driven through every transition by a fake clock, plus a lag alert on a real stream."""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Iterator

import numpy as np
import pytest

import kaelix
from kaelix.monitor import (
    Alert,
    AlertRule,
    Counter,
    Monitor,
    MonitorError,
    Registry,
    StreamMetrics,
    default_stream_rules,
    logging_handler,
)
from kaelix.monitor import _sampler as sampler_module
from kaelix.monitor._metrics import RECENT_VALUES
from monitor_workers import FakeClock, consume_then_wait, produce, unique_name


@pytest.fixture
def stream() -> Iterator[kaelix.Stream]:
    with kaelix.Stream(unique_name(), partitions=2, capacity=4096) as s:
        yield s


def values(registry: Registry, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    for family in registry.collect():
        if family.name == name:
            return {s.labels: s.value for s in family.series}  # type: ignore[misc]
    raise AssertionError(f"no family {name}")


# ------------------------------------------------------------------------------- metrics


def test_counter_counts_and_refuses_to_go_down() -> None:
    registry = Registry()
    sent = registry.counter("app_sent_total", "sent", labels=("topic",))
    sent.labels(topic="a").inc()
    sent.labels("a").inc(2.5)
    sent.labels(topic="b").inc()
    assert values(registry, "app_sent_total") == {(("topic", "a"),): 3.5, (("topic", "b"),): 1.0}
    with pytest.raises(MonitorError, match=r"a counter only goes up: inc\(-1\) is negative"):
        sent.labels(topic="a").inc(-1)
    assert isinstance(sent.labels(topic="a"), Counter)


def test_gauge_set_inc_dec_and_function() -> None:
    registry = Registry()
    level = registry.gauge("app_level", "level")
    level.set(5)
    level.inc(2)
    level.dec(4)
    assert level.value == 3.0
    box = [7.0]
    registry.gauge("app_computed", "computed", function=lambda: box[0])
    box[0] = 9.0
    assert values(registry, "app_computed") == {(): 9.0}
    level.set_function(lambda: 1.5)
    assert values(registry, "app_level") == {(): 1.5}
    level.set(2)  # a set replaces the function
    assert level.value == 2.0


def test_histogram_matches_hdr_histogram() -> None:
    registry = Registry()
    latency = registry.histogram("app_latency_seconds", "latency", scale=1e-9)
    data = np.array([1_000, 2_000, 3_000, 40_000, 5_000_000])
    latency.record_many(data)
    latency.record(7_000)
    reference = kaelix.HdrHistogram(1, 3_600_000_000_000, 3)
    reference.record_values(data)
    reference.record(7_000)
    for q in (50.0, 90.0, 99.0, 100.0):
        assert latency.percentile(q) == pytest.approx(reference.value_at_percentile(q) * 1e-9)
    (family,) = registry.collect()
    (series,) = family.series
    snapshot = series.value
    assert not isinstance(snapshot, float)
    assert snapshot.count == 6
    assert snapshot.sum == pytest.approx(float(data.sum() + 7_000) * 1e-9)
    assert family.kind == "histogram"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda r: r.counter("sent", "h"), r"counter name 'sent' must end in '_total'"),
        (lambda r: r.gauge("depth_total", "h"), r"only counters end in '_total'"),
        (lambda r: r.gauge("9lives", "h"), r"metric name must match"),
        (lambda r: r.gauge("ok", "h", labels=("bad-label",)), r"label name must match"),
        (lambda r: r.gauge("ok", "h", labels=("quantile",)), r"'quantile' is reserved"),
        (lambda r: r.gauge("ok", "h", labels=("a", "a")), r"label names repeat"),
        (lambda r: r.gauge("ok", "h", labels="stream"), r"not a str: use \('stream',\)"),
    ],
)
def test_bad_names_and_labels_are_refused(make: object, message: str) -> None:
    with pytest.raises(MonitorError, match=message):
        make(Registry())  # type: ignore[operator]


def test_labels_must_be_given_exactly() -> None:
    registry = Registry()
    sent = registry.counter("app_sent_total", "sent", labels=("stream", "partition"))
    with pytest.raises(MonitorError, match=r"takes labels \('stream', 'partition'\)"):
        sent.labels(stream="s")
    with pytest.raises(MonitorError, match=r"takes 2 label values"):
        sent.labels("s")
    with pytest.raises(MonitorError, match=r"by position or by name, not both"):
        sent.labels("s", partition="0")
    with pytest.raises(MonitorError, match=r"pick a series with \.labels\(\.\.\.\) first"):
        sent.inc()


def test_duplicate_names_raise_and_unregister_frees_them() -> None:
    registry = Registry()
    registry.counter("app_sent_total", "sent")
    with pytest.raises(MonitorError, match=r"metric 'app_sent_total' is registered already"):
        registry.counter("app_sent_total", "again")
    registry.unregister("app_sent_total")
    family = registry.counter("app_sent_total", "again")
    registry.unregister(family)
    assert registry.names() == ()
    with pytest.raises(MonitorError, match=r"no metric named 'nope' is registered"):
        registry.unregister("nope")
    assert issubclass(MonitorError, kaelix.KaelixError)
    assert issubclass(MonitorError, ValueError)


def test_counter_is_exact_under_concurrent_threads() -> None:
    registry = Registry()
    hits = registry.counter("app_hits_total", "hits", labels=("kind",))
    plain = hits.labels(kind="x")
    threads = 8
    per_thread = 20_000
    barrier = threading.Barrier(threads)

    def work() -> None:
        barrier.wait()
        for _ in range(per_thread):
            plain.inc()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert plain.value == threads * per_thread


# -------------------------------------------------------------------------- stream metrics


def test_stream_metrics_read_the_rings(stream: kaelix.Stream) -> None:
    registry = Registry.from_streams(stream)
    slow = stream.consumer()
    fast = stream.consumer()
    producer = stream.producer()
    for i in range(10):
        producer.send(b"x" * 8, partition=i % 2)
    for _ in range(4):
        assert fast.poll(0) is not None
    name = stream.name
    p0 = (("stream", name), ("partition", "0"))
    p1 = (("stream", name), ("partition", "1"))
    assert values(registry, "kaelix_stream_messages_published_total") == {p0: 5.0, p1: 5.0}
    assert values(registry, "kaelix_stream_lag_messages") == {p0: 5.0, p1: 5.0}  # slowest
    lags = values(registry, "kaelix_consumer_lag_messages")
    assert sorted(lags.values()) == [3.0, 3.0, 5.0, 5.0]
    free = values(registry, "kaelix_stream_free_bytes")
    fill = values(registry, "kaelix_stream_fill_ratio")
    for labels in (p0, p1):
        assert fill[labels] == pytest.approx(1 - free[labels] / stream.capacity)
        assert 0 < fill[labels] < 1
    for _ in range(10):
        slow.poll(0)
    assert values(registry, "kaelix_stream_lag_messages") == {p0: 3.0, p1: 3.0}  # fast is slowest


def test_stream_metrics_count_drops_and_skips() -> None:
    with kaelix.Stream(unique_name(), capacity=4096, backpressure="drop_oldest") as stream:
        registry = Registry.from_streams(stream)
        consumer = stream.consumer()
        producer = stream.producer()
        for _ in range(200):
            producer.send(b"y" * 100)
        consumer.poll(0)
        overwritten = values(registry, "kaelix_stream_messages_overwritten_total")
        (dropped,) = overwritten.values()
        assert dropped > 0
        (skipped,) = values(registry, "kaelix_consumer_skipped_total").values()
        assert skipped == consumer.skipped > 0
        # the reader's own slot says the same, for every process to read
        assert list(values(registry, "kaelix_stream_reader_skipped_total").values()) == [skipped]
        assert list(values(registry, "kaelix_stream_messages_received_total").values()) == [1.0]


def test_an_idle_stream_stays_unallocated_and_a_closed_one_has_no_series() -> None:
    stream = kaelix.Stream(unique_name(), partitions=3)
    registry = Registry.from_streams(stream)
    assert values(registry, "kaelix_stream_messages_published_total") == {
        (("stream", stream.name), ("partition", str(p))): 0.0 for p in range(3)
    }
    assert stream._backend is None or all(r is None for r in stream._backend.rings)  # type: ignore[union-attr]
    stream.close()
    assert values(registry, "kaelix_stream_messages_published_total") == {}


def test_a_stream_is_watched_once() -> None:
    with kaelix.Stream(unique_name()) as stream:
        registry = Registry.from_streams(stream)
        with pytest.raises(MonitorError, match=r"is watched already"):
            registry.register_stream(stream)
        collector = registry.register_stream(kaelix.Stream(unique_name()))
        assert isinstance(collector, StreamMetrics)
        assert len(collector.streams) == 2


def test_published_counts_are_exact_across_processes() -> None:
    context = multiprocessing.get_context("spawn")
    name = unique_name()
    per_child = 3_000
    with kaelix.Stream(name, shared=True, partitions=2, capacity=1 << 16) as stream:
        registry = Registry.from_streams(stream)
        consumer = stream.consumer()
        results = context.Queue()
        children = [
            context.Process(target=produce, args=(name, per_child, p, results)) for p in (0, 1)
        ]
        for child in children:
            child.start()
        received = 0
        while received < 2 * per_child:
            batch = consumer.poll_batch(4096, timeout=20.0)
            assert len(batch), "the producers stopped early"
            received += len(batch)
        for _ in children:
            status, detail = results.get(timeout=20.0)
            assert status == "ok", detail
        for child in children:
            child.join(20.0)
        published = values(registry, "kaelix_stream_messages_published_total")
        assert published == {
            (("stream", name), ("partition", "0")): float(per_child),
            (("stream", name), ("partition", "1")): float(per_child),
        }
        assert set(values(registry, "kaelix_stream_lag_messages").values()) == {0.0}
        consumer.close()


def test_what_a_consumer_process_received_is_seen_from_another() -> None:
    context = multiprocessing.get_context("spawn")
    name = unique_name()
    sent, read = 1_000, 300
    with kaelix.Stream(name, shared=True, capacity=1 << 16) as stream:
        registry = Registry.from_streams(stream)
        ready, done = context.Queue(), context.Event()
        child = context.Process(target=consume_then_wait, args=(name, read, ready, done))
        child.start()
        try:
            producer = stream.producer()
            for i in range(sent):
                producer.send(b"%08d" % i)  # every frame the same size
            status, pid = ready.get(timeout=30.0)
            assert status == "ok", pid
            part = (("stream", name), ("partition", "0"))
            (published_bytes,) = values(registry, "kaelix_stream_bytes_published_total").values()
            frame = len(kaelix.encode(kaelix.Message(b"%08d" % 0)))
            assert published_bytes == sent * frame
            for series, want in (
                ("kaelix_stream_messages_received_total", read),
                ("kaelix_stream_bytes_received_total", read * frame),
                ("kaelix_stream_reader_lag_messages", sent - read),
                ("kaelix_stream_reader_skipped_total", 0),
            ):
                got = values(registry, series)
                assert list(got.values()) == [float(want)], series
                ((labels, _),) = got.items()
                assert labels[:2] == part
                assert labels[2][0] == "reader" and labels[2][1].startswith(f"{pid}/")
        finally:
            done.set()
            child.join(30.0)
        assert child.exitcode == 0
        assert values(registry, "kaelix_stream_messages_received_total") == {}  # it left


# -------------------------------------------------------------------------------- sampler


def sampled(clock: FakeClock, **options: object) -> tuple[Monitor, Registry]:
    registry = Registry()
    return Monitor(registry, clock=clock, interval=1.0, **options), registry  # type: ignore[arg-type]


def test_series_rate_and_window_against_hand_computed_values() -> None:
    clock = FakeClock(100.0)
    monitor, registry = sampled(clock)
    sent = registry.counter("app_sent_total", "sent")
    level = registry.gauge("app_level", "level")
    steps = [0, 10, 30, 60, 100, 150]
    for i, total in enumerate(steps):
        sent.labels().inc(total - sent.value)
        level.set(i * i)
        monitor.sample()
        clock.advance(1.0)
    times, got = monitor.series("app_sent_total")
    assert list(times) == [100.0, 101.0, 102.0, 103.0, 104.0, 105.0]
    assert list(got) == [0, 10, 30, 60, 100, 150]
    assert monitor.rate("app_sent_total", window=2.0) == (150 - 60) / 2
    assert monitor.rate("app_sent_total", window=5.0) == 150 / 5
    assert monitor.rate("app_level", window=1.0) == 25 - 16
    _, v = monitor.series("app_level", window=2.0)
    assert list(v) == [9, 16, 25]
    assert monitor.latest("app_level") == 25
    median = float(np.percentile([1, 4, 9, 16, 25], 50))
    assert monitor.percentile("app_level", 50.0, window=4.0) == median
    assert np.isnan(monitor.rate("app_level", window=0.5))  # one sample in the window
    assert monitor.series("nothing")[0].size == 0


def test_a_counter_reset_counts_as_a_restart_from_zero() -> None:
    clock = FakeClock()
    monitor, registry = sampled(clock)
    family = registry.counter("app_sent_total", "sent")
    for value in (10.0, 20.0):
        family.labels().inc(value - family.value)
        monitor.sample()
        clock.advance(1.0)
    family.remove()  # a restarted process: the counter starts again
    family.labels().inc(5.0)
    monitor.sample()
    assert monitor.rate("app_sent_total", window=2.0) == (10 + 5) / 2


def test_histogram_percentiles_per_window() -> None:
    clock = FakeClock()
    monitor, registry = sampled(clock)
    latency = registry.histogram("app_latency_seconds", "latency", scale=1e-9)
    latency.record_many([1_000] * 99 + [1_000_000])  # first second: p99 1 µs, max 1 ms
    monitor.sample()
    clock.advance(1.0)
    latency.record_many([50_000] * 100)  # next second: everything at 50 µs
    monitor.sample()
    last = monitor.percentile("app_latency_seconds", 99.0, window=0.5)
    assert last == pytest.approx(50_000e-9, rel=1e-3)
    both = monitor.percentile("app_latency_seconds", 100.0, window=2.0)
    assert both == pytest.approx(1e-3, rel=1e-3)
    everything = monitor.percentile("app_latency_seconds", 25.0)
    assert everything == pytest.approx(1_000e-9, rel=1e-3)
    assert monitor.rate("app_latency_seconds_count", window=1.0) == 100.0
    clock.advance(1.0)
    monitor.sample()  # nothing recorded in the last interval
    assert np.isnan(monitor.percentile("app_latency_seconds", 99.0, window=0.5))


def test_history_is_bounded_and_ambiguous_series_raise() -> None:
    clock = FakeClock()
    registry = Registry()
    monitor = Monitor(registry, clock=clock, interval=1.0, history=5.0)
    depth = registry.gauge("app_depth", "depth", labels=("q",))
    depth.labels(q="a").set(1)
    depth.labels(q="b").set(2)
    for _ in range(20):
        monitor.sample()
        clock.advance(1.0)
    times, _ = monitor.series("app_depth", {"q": "a"})
    assert len(times) == 6  # history / interval + 1
    with pytest.raises(MonitorError, match=r"2 series of 'app_depth' match"):
        monitor.latest("app_depth")
    assert monitor.latest("app_depth", {"q": "b"}) == 2.0


def test_bad_monitor_arguments() -> None:
    with pytest.raises(MonitorError, match=r"interval must be a positive number"):
        Monitor(Registry(), interval=0)
    with pytest.raises(MonitorError, match=r"history must be a number of seconds >= interval"):
        Monitor(Registry(), interval=1.0, history=0.5)
    with pytest.raises(MonitorError, match=r"q must be between 0 and 100"):
        Monitor(Registry()).percentile("x", 101)


def test_the_background_thread_samples_until_stopped(stream: kaelix.Stream) -> None:
    done = threading.Event()
    with Monitor(stream, interval=0.01) as monitor:
        assert monitor.running
        while monitor.samples < 3:
            done.wait(0.01)
    assert not monitor.running
    count = monitor.samples
    done.wait(0.05)
    assert monitor.samples == count
    assert monitor.cpu_seconds >= 0.0
    assert "stream_lag_growing" in {r.name for r in monitor.rules}


# --------------------------------------------------------------------------------- alerts


def drive(rule: AlertRule, points: list[float]) -> tuple[list[str], list[Alert]]:
    """Feeds a gauge the given value at each second and returns the rule's state after
    each sample and the events."""
    clock = FakeClock(0.0)
    monitor, registry = sampled(clock, rules=[rule])
    gauge = registry.gauge("app_value", "value")
    states = []
    for value in points:
        gauge.set(value)
        monitor.sample()
        states.append(rule.state())
        clock.advance(1.0)
    return states, monitor.alerts


def test_above_with_for_and_hysteresis_goes_through_every_state() -> None:
    rule = AlertRule.above("hot", "app_value", 10.0, for_=2.0, resolve=5.0)
    states, events = drive(rule, [0, 11, 12, 13, 8, 6, 4, 0, 20, 3])
    assert states == [
        "inactive",
        "pending",  # t=1
        "pending",  # t=2: 1 s so far
        "firing",  # t=3: 2 s
        "firing",  # 8: below the threshold, above the resolve bound (hysteresis)
        "firing",
        "resolved",  # 4 <= 5
        "resolved",
        "pending",
        "inactive",  # went away before for_
    ]
    assert [(e.state, e.time, e.value) for e in events] == [
        ("firing", 3.0, 13.0),
        ("resolved", 6.0, 4.0),
    ]
    assert events[0].since == 1.0
    assert "hot firing: app_value value = 13 (threshold 10)" in events[0].message


def test_below_rule() -> None:
    rule = AlertRule.below("cold", "app_value", 1.0, resolve=2.0)
    states, _ = drive(rule, [5, 0.5, 1.5, 2.5])
    assert states == ["inactive", "firing", "firing", "resolved"]


def test_cooldown_holds_a_new_firing_back() -> None:
    rule = AlertRule.above("hot", "app_value", 10.0, cooldown=3.0)
    states, events = drive(rule, [20, 0, 20, 20, 20, 20])
    assert states == ["firing", "resolved", "pending", "pending", "firing", "firing"]
    assert [e.time for e in events] == [0.0, 1.0, 4.0]


def test_rate_rules() -> None:
    rule = AlertRule.rate_above("growing", "app_value", 5.0, window=2.0)
    states, _ = drive(rule, [0, 10, 20, 30, 30, 30])
    # the rate over 2 s: -, 10, 10, 10, 5 (not above 5), 0
    assert states == ["inactive", "firing", "firing", "firing", "resolved", "resolved"]
    slow = AlertRule.rate_below("stalled", "app_value", 1.0, window=1.0, for_=1.0)
    states, _ = drive(slow, [0, 5, 10, 10, 10, 20])
    assert states == ["inactive", "inactive", "inactive", "pending", "firing", "resolved"]


def test_percentile_rule_on_a_histogram() -> None:
    clock = FakeClock(0.0)
    rule = AlertRule.percentile_above("slow", "app_latency_seconds", 99.0, 0.001, window=1.0)
    monitor, registry = sampled(clock, rules=[rule])
    latency = registry.histogram("app_latency_seconds", "latency", scale=1e-9)
    for values_ns in ([1_000] * 10, [5_000_000] * 10, [1_000] * 10):
        latency.record_many(values_ns)
        monitor.sample()
        clock.advance(1.0)
    assert [e.state for e in monitor.alerts] == ["firing", "resolved"]
    assert monitor.alerts[0].value == pytest.approx(5e-3, rel=1e-3)


def test_absent_rule_fires_when_a_series_stops_and_resolves_when_it_returns() -> None:
    clock = FakeClock(0.0)
    rule = AlertRule.absent("silent", "app_value", 2.0)
    monitor, registry = sampled(clock, rules=[rule])
    family = registry.gauge("app_value", "value")
    states = []
    for present in (True, True, False, False, False, True):
        if present:
            family.set(1.0)
        else:
            family.remove()
        monitor.sample()
        states.append(rule.state())
        clock.advance(1.0)
    assert states == ["inactive", "inactive", "inactive", "firing", "firing", "resolved"]
    never = AlertRule.absent("never", "app_missing", 1.5)
    monitor.add_rule(never)
    monitor.sample()
    clock.advance(2.0)
    monitor.sample()
    assert never.state() == "firing"


def test_handlers_receive_events_and_a_failing_handler_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[Alert] = []

    def broken(alert: Alert) -> None:
        raise RuntimeError("handler bug")

    clock = FakeClock(0.0)
    rule = AlertRule.above("hot", "app_value", 1.0, severity="critical")
    monitor, registry = sampled(clock, rules=[rule], handlers=[seen.append, broken])
    monitor.add_handler(logging_handler())
    gauge = registry.gauge("app_value", "value")
    with caplog.at_level(logging.INFO, logger="kaelix.monitor"):
        for value in (5.0, 0.0):
            gauge.set(value)
            monitor.sample()
            clock.advance(1.0)
    assert [a.state for a in seen] == ["firing", "resolved"]
    messages = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
    assert ("kaelix.monitor.alerts", "ERROR", seen[0].message) in messages
    assert ("kaelix.monitor.alerts", "INFO", seen[1].message) in messages
    assert any("alert handler" in m and "failed" in m for _, _, m in messages)
    assert monitor.firing == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"kind": "nope"}, r"kind must be one of above, below"),
        ({"for_": -1.0}, r"for_ must be >= 0 seconds"),
        ({"window": 0.0}, r"window must be > 0 seconds"),
        ({"resolve": 20.0}, r"resolves at or below its threshold: resolve=20.0 > threshold=10.0"),
        ({"threshold": float("nan")}, r"threshold must be a number"),
    ],
)
def test_bad_rules_are_refused(options: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {
        "name": "r",
        "metric": "m",
        "kind": "above",
        "threshold": 10.0,
        **options,
    }
    with pytest.raises(MonitorError, match=message):
        AlertRule(**arguments)  # type: ignore[arg-type]


def test_rule_names_are_unique_and_streams_get_default_rules(stream: kaelix.Stream) -> None:
    monitor = Monitor(stream)
    assert [r.name for r in monitor.rules] == [r.name for r in default_stream_rules()]
    with pytest.raises(MonitorError, match=r"an alert rule named 'stream_drops' exists already"):
        monitor.add_rule(AlertRule.above("stream_drops", "x", 1.0))
    assert Monitor(Registry()).rules == ()


def test_a_lag_alert_fires_and_resolves_on_a_real_stream() -> None:
    clock = FakeClock(0.0)
    with kaelix.Stream(unique_name(), capacity=1 << 16) as stream:
        events: list[Alert] = []
        rules = default_stream_rules(lag_window=2.0, lag_for=2.0)
        monitor = Monitor(stream, clock=clock, interval=1.0, default_rules=False, rules=rules)
        monitor.add_handler(events.append)
        producer = stream.producer()
        consumer = stream.consumer()
        lag_rule = monitor.rules[0]

        def tick() -> str:
            monitor.sample()
            clock.advance(1.0)
            return lag_rule.state({"stream": stream.name, "partition": "0"})

        # Keeping up: the consumer reads everything each second.
        for _ in range(3):
            for i in range(50):
                producer.send(b"%d" % i)
            while consumer.poll(0) is not None:
                pass
            assert tick() == "inactive"
        # The consumer stalls while the producer goes on: lag grows.
        states = []
        for _ in range(5):
            for i in range(50):
                producer.send(b"%d" % i)
            states.append(tick())
        assert states[-1] == "firing"
        assert "pending" in states
        assert [e.state for e in events] == ["firing"]
        assert events[0].rule == "stream_lag_growing"
        assert dict(events[0].labels) == {"stream": stream.name, "partition": "0"}
        # The consumer drains: the lag falls, the alert resolves.
        while consumer.poll(0) is not None:
            pass
        assert tick() == "resolved"
        assert [e.state for e in events] == ["firing", "resolved"]
        assert [e.state for e in monitor.alerts] == ["firing", "resolved"]
        assert (
            monitor.latest("kaelix_stream_lag_messages", {"stream": stream.name, "partition": "0"})
            == 0.0
        )


def test_an_observed_consumer_measures_one_poll_after_each_collection(
    stream: kaelix.Stream,
) -> None:
    registry = Registry()
    consumer = stream.consumer()
    assert registry.observe(consumer) is consumer
    assert isinstance(consumer, kaelix.Consumer)
    producer = stream.producer()
    for i in range(10):
        producer.send(b"%d" % i, partition=0)
    latency = registry.collect()  # the histogram's snapshot, then the consumer is armed
    assert consumer.poll(0) is not None  # measured
    assert consumer.poll(0) is not None  # not measured: one message per collection
    (family,) = [f for f in registry.collect() if f.name == "kaelix_stream_latency_seconds"]
    (series,) = family.series
    assert not isinstance(series.value, float)
    assert series.value.count == 1
    assert 0.0 <= series.value.percentile(50.0) < 60.0
    batch = consumer.poll_batch(100, timeout=0)  # armed by the collection just above
    assert len(batch) == 8
    (family,) = [f for f in registry.collect() if f.name == "kaelix_stream_latency_seconds"]
    assert family.series[0].value.count == 9  # type: ignore[union-attr]
    assert consumer.poll(0) is None and latency
    with pytest.raises(MonitorError, match=r"observe\(\) takes a kaelix.Consumer"):
        registry.observe(object())  # type: ignore[arg-type]


def test_producer_waits_for_room_are_counted_on_the_slow_path_only() -> None:
    with kaelix.Stream(unique_name(), capacity=4096) as stream:
        registry = Registry.from_streams(stream)
        consumer = stream.consumer()
        producer = stream.producer()
        labels = (("stream", stream.name),)
        for _ in range(20):  # room for each: no wait
            producer.send(b"z" * 100, timeout=0)
        assert values(registry, "kaelix_stream_producer_waits_total")[labels] == 0
        with pytest.raises(kaelix.SendTimeout):
            while True:  # the partition fills up: the send that finds no room waits
                producer.send(b"z" * 100, timeout=0.01)
        assert values(registry, "kaelix_stream_producer_waits_total")[labels] == 1
        assert values(registry, "kaelix_stream_producer_blocked_seconds_total")[labels] > 0
        consumer.close()


@pytest.mark.parametrize("shape", ["batches", "one by one", "mixed, scraped"])
def test_window_percentiles_kept_incrementally_match_a_full_merge(
    shape: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every way an interval is taken (the histogram's log of recent values, or a diff of
    every bucket when the log does not reach back) and every way a window is merged (sparse
    while few buckets are in it, every bucket past that) against a full merge."""
    rng = np.random.default_rng(7)
    clock = FakeClock(0.0)
    registry = Registry()
    monitor = Monitor(registry, clock=clock, interval=1.0, history=20.0)  # trims as it goes
    latency = registry.histogram("app_latency_seconds", "latency", lowest=1_000, scale=1e-9)
    bucketed: list[int] = []  # intervals taken from the log, one value at a time
    bucket_counts = sampler_module._bucket_counts

    def counted(template: kaelix.HdrHistogram, values: list[int]) -> object:
        bucketed.append(len(values))
        return bucket_counts(template, values)

    monkeypatch.setattr(sampler_module, "_bucket_counts", counted)
    recorded: list[tuple[float, np.ndarray]] = []
    for step in range(120):
        size = int(rng.integers(0, 50))
        if shape == "mixed, scraped" and step % 17 == 5:
            size = RECENT_VALUES + 1  # more than the log keeps: that interval is a diff
        if shape == "mixed, scraped" and step % 17 == 9:
            size = 200  # in the log, but too many to bucket one by one: a diff too
        values = rng.integers(1_000, 10_000_000, size=size)
        if shape == "one by one" or (shape == "mixed, scraped" and step % 2):
            for v in values.tolist():
                latency.record(v)
        elif len(values):
            latency.record_many(values)
        if shape == "mixed, scraped":
            registry.collect()  # another reader's snapshots (a scrape) change nothing here
        recorded.append((clock.now, values))
        monitor.sample()
        for window in (3.0, 7.5, None):
            if window is None:  # what is kept: the last 21 intervals that recorded something
                kept = [v for _, v in recorded if len(v)][-21:]
            else:
                kept = [v for t, v in recorded if t > clock.now - window + 1e-9]
            reference = kaelix.HdrHistogram(1_000, 3_600_000_000_000, 3)
            for v in kept:
                if len(v):
                    reference.record_values(v)
            for q in (50.0, 99.0):
                got = monitor.percentile("app_latency_seconds", q, window)
                if reference.total_count:
                    wanted = reference.value_at_percentile(q) * 1e-9
                    assert got == pytest.approx(wanted), (step, window, q)
                else:
                    assert np.isnan(got)
        clock.advance(1.0)
    with_values = sum(1 for _, v in recorded[1:] if len(v))  # the first sample is a diff
    if shape == "mixed, scraped":  # the big intervals are diffs of every bucket
        assert 50 < len(bucketed) <= with_values - 10
    else:
        assert len(bucketed) == with_values
    assert max(bucketed) <= sampler_module._FEW_VALUES
    windows = monitor._hists[("app_latency_seconds", ())].windows
    assert windows[None][3] is None and windows[None][0] is not None  # every bucket
    if shape != "mixed, scraped":  # (there a big interval made it dense, and it stays so)
        assert windows[3.0][3] is not None and windows[3.0][0] is None  # few: sparse


def test_a_histogram_snapshot_carries_its_last_values() -> None:
    registry = Registry()
    histogram = registry.histogram("app_size_bytes", "sizes")
    assert histogram.labels().snapshot().recent == ()
    histogram.record(5)
    histogram.record_many([7, 9])
    value = histogram.labels().snapshot()
    assert (value.count, value.recent, value.recent_from) == (3, (5, 7, 9), 0)
    with pytest.raises(kaelix.ValueOutOfRange):
        histogram.record(-1)  # refused: nothing recorded, nothing logged
    for i in range(3 * RECENT_VALUES):
        histogram.record(i + 1)
    value = histogram.labels().snapshot()
    assert len(value.recent) == RECENT_VALUES
    assert value.recent_from + len(value.recent) == value.count == 3 + 3 * RECENT_VALUES
    assert value.recent[-1] == 3 * RECENT_VALUES
    histogram.record_many(np.arange(1, RECENT_VALUES + 2))  # too many to log: starts again
    value = histogram.labels().snapshot()
    assert value.recent == () and value.recent_from == value.count
    histogram.record_many([4, 4])
    value = histogram.labels().snapshot()
    assert value.recent == (4, 4) and value.recent_from == value.count - 2


# ------------------------------------------------------------- what each sample reuses


def expected_stream_rows(
    registry: Registry, *streams: kaelix.Stream
) -> dict[str, list[tuple[tuple[tuple[str, str], ...], float]]]:
    """What StreamMetrics should report, built afresh from the public Stream.metrics()
    and each consumer's lag (consumer labels taken from the collector, which numbers them)."""
    (collector,) = [c for c in registry._collectors if isinstance(c, StreamMetrics)]
    rows: dict[str, list[tuple[tuple[tuple[str, str], ...], float]]] = {
        name: [] for name in kaelix.monitor.STREAM_METRICS
    }
    for stream in streams:
        if stream.closed:
            continue
        watched = next(w for w in collector._watched if w.stream is stream)
        name = stream.name
        for part in stream.metrics()["partitions"]:
            labels = (("stream", name), ("partition", str(part["partition"])))
            rows["kaelix_stream_messages_published_total"].append((labels, part["published"]))
            for reader in part["readers"]:
                rlabels = (*labels, ("reader", f"{reader['pid']}/{reader['slot']}"))
                rows["kaelix_stream_messages_received_total"].append((rlabels, reader["received"]))
                rows["kaelix_stream_reader_lag_messages"].append((rlabels, reader["waiting"]))
        for consumer in list(stream._consumers or ()):
            if consumer.closed:
                continue
            label = watched.consumer_ids[consumer]
            for p, waiting in consumer.lag.items():
                clabels = (("stream", name), ("partition", str(p)), ("consumer", label))
                rows["kaelix_consumer_lag_messages"].append((clabels, waiting))
    return rows


def collected_stream_rows(
    registry: Registry,
) -> dict[str, list[tuple[tuple[tuple[str, str], ...], float]]]:
    wanted = (
        "kaelix_stream_messages_published_total",
        "kaelix_stream_messages_received_total",
        "kaelix_stream_reader_lag_messages",
        "kaelix_consumer_lag_messages",
    )
    return {
        f.name: [(s.labels, s.value) for s in f.series]  # type: ignore[misc]
        for f in registry.collect()
        if f.name in wanted
    }


def test_stream_layouts_made_once_follow_readers_consumers_and_streams() -> None:
    with (
        kaelix.Stream(unique_name(), partitions=2, capacity=4096) as one,
        kaelix.Stream(unique_name(), partitions=3, capacity=4096) as two,
    ):
        registry = Registry.from_streams(one)
        producers = [one.producer(), two.producer()]

        def check(*streams: kaelix.Stream) -> None:
            for producer in producers:
                if not producer.stream.closed:
                    for p in range(producer.stream.partitions):
                        producer.send(b"z", partition=p)
            got = collected_stream_rows(registry)
            expected = expected_stream_rows(registry, *streams)
            for name, rows in got.items():
                assert rows == expected[name], name

        check(one)
        first = one.consumer()
        check(one)
        group = [one.consumer(group="g"), one.consumer(group="g")]
        first.poll(0)
        check(one)
        registry.register_stream(two)
        late = two.consumer()
        check(one, two)
        group[0].close()  # the group's partitions move to the other member
        first.close()
        group[1].poll(0)
        check(one, two)
        again = one.consumer()  # takes a freed reader slot, under a new consumer label
        again.poll(0)
        check(one, two)
        (collector,) = [c for c in registry._collectors if isinstance(c, StreamMetrics)]
        collector.remove(one)
        check(two)
        late.poll(0)
        two.close()
        check()
        assert collected_stream_rows(registry)["kaelix_stream_messages_published_total"] == []


def test_snapshots_stay_frozen_dataclasses() -> None:
    from dataclasses import FrozenInstanceError, replace

    from kaelix.monitor import FamilySnapshot, SeriesSnapshot

    series = SeriesSnapshot(labels=(("a", "1"),), value=2.0)
    family = FamilySnapshot("app_x", "x", "gauge", (series,))
    assert family == FamilySnapshot(name="app_x", help="x", kind="gauge", series=(series,))
    assert hash(series) == hash(SeriesSnapshot((("a", "1"),), 2.0))
    assert repr(series) == "SeriesSnapshot(labels=(('a', '1'),), value=2.0)"
    assert replace(series, value=3.0).value == 3.0
    with pytest.raises(FrozenInstanceError):
        series.value = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        SeriesSnapshot((("a", "1"),))  # type: ignore[call-arg]


def test_a_rule_watches_series_that_appear_after_it_first_ran() -> None:
    clock = FakeClock(0.0)
    rule = AlertRule.above("high", "app_level", 5.0, labels={"zone": "a"})
    monitor, registry = sampled(clock, rules=[rule])
    level = registry.gauge("app_level", "level", labels=("zone", "host"))
    level.labels(zone="a", host="1").set(1.0)
    monitor.sample()
    assert set(rule._states) == {(("zone", "a"), ("host", "1"))}
    clock.advance(1.0)
    level.labels(zone="a", host="2").set(9.0)  # a new series that matches
    level.labels(zone="b", host="3").set(9.0)  # and one that does not
    monitor.sample()
    assert rule.state({"host": "2"}) == "firing"
    assert rule.state({"host": "1"}) == "inactive"
    assert set(rule._states) == {(("zone", "a"), ("host", "1")), (("zone", "a"), ("host", "2"))}
    clock.advance(1.0)
    level.remove(zone="a", host="2")  # gone from the registry: its last value stays
    monitor.sample()
    assert rule.state({"host": "2"}) == "firing"


def test_a_rule_in_two_monitors_watches_each_ones_series() -> None:
    clock = FakeClock(0.0)
    rule = AlertRule.above("high", "app_level", 5.0)
    first, first_registry = sampled(clock, rules=[rule])
    second, second_registry = sampled(clock, rules=[rule])
    first_registry.gauge("app_level", "level", labels=("m",)).labels(m="1").set(9.0)
    second_registry.gauge("app_level", "level", labels=("m",)).labels(m="2").set(1.0)
    first.sample()
    second.sample()
    assert rule.state({"m": "1"}) == "firing"
    assert rule.state({"m": "2"}) == "inactive"
    clock.advance(1.0)
    second_registry.gauge("app_other", "other").set(0.0)  # second's series change
    first.sample()
    events = second.sample() and rule.evaluate(second, clock())
    assert events == [] and set(rule._states) == {(("m", "1"),), (("m", "2"),)}


def test_an_absent_rule_keeps_watching_through_the_cache() -> None:
    clock = FakeClock(0.0)
    rule = AlertRule.absent("silent", "app_size", 1.5, labels={"k": "x"})
    monitor, registry = sampled(clock, rules=[rule])
    sizes = registry.histogram("app_size", "sizes", labels=("k",))
    monitor.sample()  # no series yet: watches the labels it was given
    assert list(rule._states) == [(("k", "x"),)]
    sizes.labels(k="x").record(3)
    sizes.labels(k="y").record(3)
    clock.advance(1.0)
    monitor.sample()
    assert list(rule._states) == [(("k", "x"),)]
    sizes.remove(k="x")
    for _ in range(3):
        clock.advance(1.0)
        monitor.sample()
    assert rule.state() == "firing"


def test_a_monitor_stores_stream_series_as_collect_reports_them() -> None:
    # The sampler stores a stream's values by position while its series stay the same
    # (StreamMetrics._reads): each value must land in its own series as readers, consumers
    # and streams come and go.
    clock = FakeClock(0.0)
    with (
        kaelix.Stream(unique_name(), partitions=2, capacity=4096) as one,
        kaelix.Stream(unique_name(), partitions=3, capacity=4096) as two,
    ):
        registry = Registry.from_streams(one)
        monitor = Monitor(registry, clock=clock, interval=1.0)
        (collector,) = [c for c in registry._collectors if isinstance(c, StreamMetrics)]
        consumers: list[kaelix.Consumer] = []
        seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()

        def step(change: object = None) -> None:
            for i, stream in enumerate((one, two)):
                if not stream.closed:
                    producer = stream.producer()
                    for p in range(stream.partitions):
                        for _ in range(i + p + 1):
                            producer.send(b"v" * (p + 1), partition=p)
            for n, consumer in enumerate(consumers):
                if not consumer.closed and not consumer.stream.closed:
                    for _ in range(n + 1):
                        consumer.poll(0)
            clock.advance(1.0)
            monitor.sample()
            for family in registry.collect():
                if family.name not in kaelix.monitor.STREAM_METRICS:
                    continue  # (the observed consumers' latency histogram)
                for series in family.series:
                    key = (family.name, series.labels)
                    seen.add(key)
                    assert monitor.latest(family.name, series.labels) == series.value, key
            assert seen <= set(monitor.series_keys())

        step()
        step()
        layout = collector._watched[0].last_layout
        step()  # nothing changed: the same layout
        assert collector._watched[0].last_layout is layout
        consumers.append(one.consumer())
        step()
        assert collector._watched[0].last_layout is not layout
        consumers.append(monitor.observe(one.consumer(group="g")))
        step()
        consumers.append(one.consumer(group="g"))
        step()
        registry.register_stream(two)
        step()
        consumers.append(two.consumer())
        step()
        consumers[0].close()
        step()
        consumers[1].close()
        step()
        collector.remove(one)
        step()
        two.close()
        step()
        registry.register_stream(one)
        step()
        step()


def test_live_members_of_a_weak_set_as_list_gives_them() -> None:
    import gc
    import weakref

    from kaelix.monitor._metrics import _live

    class Item:
        pass

    items = [Item() for _ in range(5)]
    members: weakref.WeakSet[Item] = weakref.WeakSet(items)
    assert _live(members) == list(members) and len(_live(members)) == 5
    del items[1], items[2]
    gc.collect()
    assert _live(members) == list(members) and set(_live(members)) == set(items)
    assert _live(None) == []


def test_an_evaluated_rule_still_copies_and_pickles() -> None:
    import copy
    import pickle

    clock = FakeClock(0.0)
    rule = AlertRule.above("high", "app_level", 5.0)
    monitor, registry = sampled(clock, rules=[rule])
    registry.gauge("app_level", "level").set(9.0)
    monitor.sample()
    assert rule.state() == "firing"
    assert copy.copy(rule) == rule  # (shallow: it shares the states)
    for twin in (copy.deepcopy(rule), pickle.loads(pickle.dumps(rule))):
        assert twin == rule and twin.state() == "firing"
        other, other_registry = sampled(clock, rules=[twin])
        other_registry.gauge("app_level", "level", labels=("m",)).labels(m="1").set(1.0)
        other.sample()  # watches the other monitor's series, not the first one's
        assert twin.state({"m": "1"}) == "inactive"
    assert rule.state() == "firing"


def test_unobserve_makes_the_consumer_plain_again_and_records_nothing_more(
    stream: kaelix.Stream,
) -> None:
    registry = Registry()
    consumer = stream.consumer()
    producer = stream.producer()
    with pytest.raises(MonitorError, match=r"does not observe"):
        registry.unobserve(consumer)  # never observed
    registry.observe(consumer)
    for i in range(4):
        producer.send(b"%d" % i, partition=0)
    registry.collect()  # arms it
    assert type(consumer) is not kaelix.Consumer
    assert registry.unobserve(consumer) is consumer
    assert type(consumer) is kaelix.Consumer  # disarmed too: a plain consumer again
    registry.collect()  # would arm an observed consumer
    assert type(consumer) is kaelix.Consumer
    assert consumer.poll(0) is not None
    assert len(consumer.poll_batch(10, 0)) == 3
    (family,) = [f for f in registry.collect() if f.name == "kaelix_stream_latency_seconds"]
    assert family.series[0].value.count == 0  # type: ignore[union-attr]
    with pytest.raises(MonitorError, match=r"does not observe"):
        registry.unobserve(consumer)  # not twice
    registry.observe(consumer)  # and again: measured as before
    producer.send(b"x", partition=0)
    registry.collect()
    assert consumer.poll(0) is not None
    (family,) = [f for f in registry.collect() if f.name == "kaelix_stream_latency_seconds"]
    assert family.series[0].value.count == 1  # type: ignore[union-attr]


def test_unobserve_on_a_registry_the_consumer_moved_away_from_is_refused(
    stream: kaelix.Stream,
) -> None:
    first, second = Registry(), Registry()
    consumer = stream.consumer()
    first.observe(consumer)
    second.observe(consumer)  # moves it
    with pytest.raises(MonitorError, match=r"does not observe"):
        first.unobserve(consumer)
    assert type(consumer) is not kaelix.Consumer  # still observed, by the second
    second.unobserve(consumer)
    assert type(consumer) is kaelix.Consumer
