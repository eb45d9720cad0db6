"""The real-time sampler: `Monitor` snapshots a `Registry` at a fixed interval, in a
background thread or by explicit ``sample()`` calls, into a bounded in-memory time series
per series (default 10 minutes), answers ``series``, ``rate`` and ``percentile`` queries
over windows of it, and evaluates alert rules at each sample.

Every timestamp comes from one injectable clock (``clock=time.monotonic``), so tests drive
the monitor with a fake clock and ``sample()`` and get the same answers every run. The
background thread only decides when to sample; what a sample sees and when it says it was
taken is ``sample()``'s business.

Imports the metrics and alerts modules of this package and the public kaelix API; never
the bench, never prometheus_client.
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from kaelix.monitor._alerts import Alert, AlertHandler, AlertRule, default_stream_rules
from kaelix.monitor._metrics import (
    RECENT_VALUES,
    STREAM_METRICS,
    FamilySnapshot,
    HistogramValue,
    Kind,
    Labels,
    MonitorError,
    Registry,
    StreamLayout,
    _matches,
    _stream_families,
)

if TYPE_CHECKING:
    from kaelix._hdr import HdrHistogram
    from kaelix._stream import Consumer, Stream

__all__ = ["Monitor", "SeriesKey"]

SeriesKey = tuple[str, Labels]
"""A series: its metric name and labels."""

_log = logging.getLogger("kaelix.monitor")


@dataclass
class _Hist:
    """A histogram series' history: what was recorded between consecutive samples, kept
    sparse (bucket indexes and counts), plus the last cumulative counts to diff against."""

    template: HdrHistogram
    scale: float
    previous: npt.NDArray[np.int64] | None
    count: int
    intervals: _Series
    count_series: tuple[str, _Series]  # NAME_count and its series
    sum_series: tuple[str, _Series]  # NAME_sum and its series
    # window -> [counts of every bucket merged over it or None, absolute index of its first
    # and past-last interval, {bucket: count} of its non-empty buckets while few, or None]:
    # the next query of that window adds the intervals that arrived and subtracts those that
    # left, instead of merging the whole window again at every sample (see merged).
    windows: dict[float | None, list[Any]] = field(default_factory=dict)

    def merged(
        self, window: float | None, lo: int, hi: int
    ) -> tuple[npt.NDArray[np.int64] | None, dict[int, int] | None]:
        """The counts recorded in intervals [lo, hi) (indexes of ``intervals`` now): as
        {bucket index: count} of the buckets not empty while there are few of them (a
        percentile then walks those, and no array of every bucket is touched), else as
        counts of every bucket. One of the two is None."""
        values = self.intervals.values
        offset = self.intervals.offset
        cache = self.windows.get(window)
        fresh = cache is None or not offset <= cache[1] <= lo + offset or cache[2] > hi + offset
        if not fresh and cache is not None:
            old_lo, old_hi = cache[1] - offset, cache[2] - offset
            dense, sparse = cache[0], cache[3]
            left = [(k, -1) for k in range(old_lo, lo)]  # intervals that left the window
            for k, sign in [*left, *((k, 1) for k in range(old_hi, hi))]:
                index, counts = values[k]
                if sparse is not None:
                    sparse = _sparse_add(sparse, index, counts, sign)
                    if sparse is None:  # too many buckets now: merge every bucket afresh
                        fresh = True
                        break
                elif dense is not None:
                    dense[index] += counts if sign > 0 else -counts
        if fresh:
            dense, sparse = None, {}
            for k in range(lo, hi):
                index, counts = values[k]
                sparse = _sparse_add(sparse, index, counts, 1)
                if sparse is None:
                    break
            if sparse is None:
                dense = np.zeros(self.template._counts.size, np.int64)
                for k in range(lo, hi):
                    index, counts = values[k]
                    dense[index] += counts
        self.windows[window] = [dense, lo + offset, hi + offset, sparse]
        return dense, sparse


_SPARSE_BUCKETS = 256
"""Most buckets a window's sparse counts hold (`_Hist.merged`) before it gives them up."""


def _sparse_add(
    sparse: dict[int, int] | None,
    index: npt.NDArray[np.int64],
    counts: npt.NDArray[np.int64],
    sign: int,
) -> dict[int, int] | None:
    """Adds (sign 1) or takes away (-1) one interval's counts to sparse bucket counts;
    None once they would be too many to be worth it."""
    if sparse is None or len(index) > _SPARSE_BUCKETS:
        return None
    for i, c in zip(index.tolist(), counts.tolist(), strict=True):
        left = sparse.get(i, 0) + sign * c
        if left:
            sparse[i] = left
        else:
            sparse.pop(i, None)
    return sparse if len(sparse) <= _SPARSE_BUCKETS else None


_FEW_VALUES = RECENT_VALUES
"""Most new values of a histogram the sampler buckets one by one (`_bucket_counts`); past
that, a diff of every bucket is cheaper. A histogram's log keeps no more."""


def _recorded_since(value: HistogramValue, seen: int) -> Sequence[int] | None:
    """The values recorded after the first ``seen``, from the snapshot's log of recent
    values; None when the log does not reach back that far (or there is none)."""
    start = value.recent_from
    if start is None or seen < start or value.count < seen:
        return None
    if start + len(value.recent) != value.count:
        return None
    return value.recent[seen - start :]


def _bucket_counts(
    template: HdrHistogram, values: Sequence[int]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(bucket indexes, counts) of a few values, indexes ascending: an interval as the
    diff of two cumulative histograms would give it."""
    found: dict[int, int] = {}
    index_of = template._index
    for v in values:
        i = index_of(v)
        found[i] = found.get(i, 0) + 1
    keys = sorted(found)
    return np.array(keys, np.int64), np.array([found[k] for k in keys], np.int64)


class Monitor:
    """Samples a registry (or streams) into bounded time series and watches alert rules.

    Args:
        source: a `Registry`, a `kaelix.Stream`, or an iterable of streams (a registry
            watching them is made: `Registry.from_streams`).
        interval: seconds between samples of the background thread (``start``).
        history: seconds of samples kept per series (``history / interval`` samples).
        clock: the time source of every timestamp (monotonic seconds); tests pass a fake
            one and call ``sample()``.
        rules: alert rules evaluated at each sample (more with ``add_rule``).
        default_rules: add `default_stream_rules()`; by default, when the source is streams.
        handlers: callables receiving each `Alert` (firing and resolved).
        alert_history: alert events kept.

    Use as a context manager (``start`` and ``stop``), or call ``sample()`` yourself.

    Raises:
        MonitorError: interval or history is not a positive number.
    """

    def __init__(
        self,
        source: Registry | Stream | Iterable[Stream],
        *,
        interval: float = 0.1,
        history: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        rules: Iterable[AlertRule] = (),
        default_rules: bool | None = None,
        handlers: Iterable[AlertHandler] = (),
        alert_history: int = 10_000,
    ) -> None:
        if isinstance(source, Registry):
            self.registry = source
            streams = False
        else:
            from kaelix._stream import Stream

            items = (source,) if isinstance(source, Stream) else tuple(source)
            self.registry = Registry.from_streams(*items)
            streams = True
        if not (isinstance(interval, (int, float)) and interval > 0 and math.isfinite(interval)):
            raise MonitorError(f"interval must be a positive number of seconds, got {interval!r}")
        if not (isinstance(history, (int, float)) and history >= interval):
            raise MonitorError(
                f"history must be a number of seconds >= interval ({interval}), got {history!r}"
            )
        self.interval = float(interval)
        self.history = float(history)
        self.clock = clock
        self._maxlen = max(2, math.ceil(history / interval) + 1)
        self._lock = threading.RLock()
        self._data: dict[SeriesKey, _Series] = {}
        self._kinds: dict[str, Kind] = {}
        self._hists: dict[SeriesKey, _Hist] = {}
        self._index: dict[str, list[SeriesKey]] = {}  # metric name -> its series
        # Bumped whenever a series is stored for the first time (series are never removed):
        # alert rules keep the series they watch until it changes.
        self._generation = 0
        # The layouts of the streams last read (StreamMetrics._read) and their series, in
        # order (a layout is the same object while its stream's series stay the same).
        self._stream_series: tuple[list[StreamLayout], list[_Series]] | None = None
        self._rules: list[AlertRule] = []
        self._handlers: list[AlertHandler] = list(handlers)
        self._alerts: deque[Alert] = deque(maxlen=alert_history)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._started_at: float | None = None
        self._last: float | None = None
        self._cpu_s = 0.0
        self._samples = 0
        self._errors = 0
        for rule in rules:
            self.add_rule(rule)
        if default_rules or (default_rules is None and streams):
            for rule in default_stream_rules():
                self.add_rule(rule)

    # -- rules and handlers --

    def add_rule(self, rule: AlertRule) -> AlertRule:
        """Evaluates ``rule`` at every sample from now on; returns it.

        Raises:
            MonitorError: a rule of that name is there already.
        """
        with self._lock:
            if any(r.name == rule.name for r in self._rules):
                raise MonitorError(f"an alert rule named {rule.name!r} exists already")
            self._rules.append(rule)
        return rule

    @property
    def rules(self) -> tuple[AlertRule, ...]:
        """The alert rules evaluated at each sample."""
        return tuple(self._rules)

    def add_handler(self, handler: AlertHandler) -> None:
        """Calls ``handler(alert)`` for each alert that fires or resolves from now on."""
        self._handlers.append(handler)

    @property
    def alerts(self) -> list[Alert]:
        """Every alert event kept (firing and resolved), oldest first."""
        with self._lock:
            return list(self._alerts)

    @property
    def firing(self) -> list[Alert]:
        """The alerts firing now: the last firing event of each rule and series that has
        not resolved."""
        out: list[Alert] = []
        for rule in self._rules:
            out.extend(rule.firing())
        return out

    # -- sampling --

    def observe(self, consumer: Consumer) -> Consumer:
        """`Registry.observe` on this monitor's registry: the consumer's latency becomes a
        series here, sampled once per sample of this monitor. Returns the consumer."""
        return self.registry.observe(consumer)

    def unobserve(self, consumer: Consumer) -> Consumer:
        """`Registry.unobserve` on this monitor's registry: ``consumer`` is a plain
        `kaelix.Consumer` again and its latency is no longer measured. Returns it."""
        return self.registry.unobserve(consumer)

    def sample(self) -> float:
        """Takes one snapshot now, stores it, evaluates the alert rules, and returns the
        time the clock gave it. The background thread calls this every ``interval``."""
        cpu = time.thread_time()
        parts = self.registry._collect_for_sampler()
        now = self.clock()
        with self._lock:
            if self._started_at is None:
                self._started_at = now
            self._last = now
            for part in parts:
                if isinstance(part, FamilySnapshot):
                    self._store_family(part, now)
                else:
                    self._store_streams(part, now)
            events: list[Alert] = []
            for rule in self._rules:
                events.extend(rule.evaluate(self, now))
            self._alerts.extend(events)
        for event in events:
            for handler in list(self._handlers):
                try:
                    handler(event)
                except Exception:
                    _log.exception("alert handler %r failed on %r", handler, event)
        self._samples += 1
        self._cpu_s += time.thread_time() - cpu
        return now

    def _store_family(self, family: FamilySnapshot, now: float) -> None:
        name = family.name
        kind = self._kinds[name] = family.kind
        data = self._data
        for series in family.series:
            value = series.value
            if isinstance(value, HistogramValue):
                self._store_histogram((name, series.labels), value, now)
                continue
            key = (name, series.labels)
            points = data.get(key)
            if points is None:
                points = data[key] = _Series(self._maxlen, kind == "counter")
                self._index.setdefault(name, []).append(key)
                self._generation += 1
            points.append(now, float(value))

    def _store_streams(self, reads: list[tuple[StreamLayout, list[float]]], now: float) -> None:
        """Stores what a `StreamMetrics` read, as its families would have been stored: while
        its streams' layouts are the ones of the last sample, value by value into the
        series found then; else through its families (making the new series in the same
        order), then finding the series of the new layouts."""
        layouts = [layout for layout, _ in reads]
        last = self._stream_series
        if (
            last is None
            or len(last[0]) != len(layouts)
            or any(a is not b for a, b in zip(last[0], layouts, strict=True))
        ):
            for family in _stream_families(reads):
                self._store_family(family, now)
            data = self._data
            self._stream_series = (layouts, [data[key] for layout in layouts for key in layout])
            return
        known = last[1]
        kinds = self._kinds
        for name, (kind, _) in STREAM_METRICS.items():
            kinds[name] = kind  # type: ignore[assignment]
        values = reads[0][1] if len(reads) == 1 else [v for _, vs in reads for v in vs]
        for points, value in zip(known, values, strict=True):
            points.append(now, value)

    def _store_histogram(self, key: SeriesKey, value: HistogramValue, now: float) -> None:
        state = self._hists.get(key)
        if state is None:
            name, labels = key
            parts: list[tuple[str, _Series]] = []  # (NAME_count, its series), the same of _sum
            for suffix in ("_count", "_sum"):
                sub = (name + suffix, labels)
                points = self._data.get(sub)
                if points is None:
                    points = self._data[sub] = _Series(self._maxlen, True)
                    self._index.setdefault(sub[0], []).append(sub)
                    self._generation += 1
                parts.append((sub[0], points))
            state = self._hists[key] = _Hist(
                value.histogram,
                value.scale,
                None,
                0,
                _Series(self._maxlen, False),
                count_series=parts[0],
                sum_series=parts[1],
            )
            self._index.setdefault(name, []).append(key)
            self._generation += 1
        # The _count and _sum series are found once, with the histogram's state (a series is
        # never replaced): no name to build nor key to look up at each sample.
        kinds = self._kinds
        count_name, count_points = state.count_series
        sum_name, sum_points = state.sum_series
        kinds[count_name] = "counter"
        count_points.append(now, float(value.count))
        kinds[sum_name] = "counter"
        sum_points.append(now, value.sum)
        if value.count == state.count and state.previous is not None:
            return  # nothing recorded since the last sample: no interval to keep
        # The snapshot's histogram is a private copy nobody writes: keep its counts as they
        # are, without copying them again.
        counts = value.histogram._counts
        previous = state.previous
        since = (
            _recorded_since(value, state.count)
            # (it would hold value.count - state.count values: no slice of more than are used)
            if previous is not None and value.count - state.count <= _FEW_VALUES
            else None
        )
        if (
            since is not None
            and len(since) <= _FEW_VALUES
            and previous is not None
            and previous.shape == counts.shape
        ):
            # What came since the last sample, from the histogram's log of recent values:
            # a few values, not a diff of every bucket (numpy would drop the GIL for that,
            # and each time the sampler then waits for it, its caches go cold).
            interval = _bucket_counts(state.template, since)
        else:
            if previous is None or previous.shape != counts.shape or value.count < state.count:
                delta = counts  # the first sample, or a histogram replaced or reset
            else:
                delta = counts - previous
            index = delta.nonzero()[0]  # np.flatnonzero of a 1-D array, without its wrappers
            interval = (index, delta[index])
        state.intervals.append(now, interval)
        state.previous = counts
        state.count = value.count

    def start(self) -> Monitor:
        """Starts sampling every ``interval`` seconds in a daemon thread (one sample at
        once). Harmless when running; returns the monitor."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return self
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="kaelix-monitor", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                self.sample()
            except Exception:
                self._errors += 1
                _log.exception("kaelix monitor: a sample failed")
            next_at += self.interval
            now = time.monotonic()
            if next_at < now:  # fell behind (a slow sample, a suspended process): skip ahead
                next_at = now + self.interval
            self._stop.wait(next_at - now)

    def stop(self) -> None:
        """Stops the background thread (waits for it). Harmless when not running."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self._thread = None

    @property
    def running(self) -> bool:
        """True while the background thread samples."""
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Monitor:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def samples(self) -> int:
        """Samples taken so far."""
        return self._samples

    @property
    def cpu_seconds(self) -> float:
        """CPU time the samples took (``time.thread_time`` of the sampling thread)."""
        return self._cpu_s

    @property
    def last_sample(self) -> float | None:
        """The clock's time of the last sample (None before the first)."""
        return self._last

    @property
    def started_at(self) -> float | None:
        """The clock's time of the first sample (None before it)."""
        return self._started_at

    # -- queries --

    def series_keys(
        self, name: str | None = None, labels: Mapping[str, str] | None = None
    ) -> list[SeriesKey]:
        """The series stored (histograms included), optionally only those of metric
        ``name`` whose labels include ``labels``."""
        with self._lock:
            if name is None:
                found = [key for keys in self._index.values() for key in keys]
            else:
                found = list(self._index.get(name, ()))
        return [key for key in found if _matches(key[1], labels)]

    def kind(self, name: str) -> Kind | None:
        """The kind of metric ``name`` as last collected (None when never seen)."""
        return self._kinds.get(name)

    def _one(self, name: str, labels: Mapping[str, str] | Labels | None) -> SeriesKey | None:
        if isinstance(labels, tuple):
            return (name, labels)
        keys = self.series_keys(name, labels)
        if not keys:
            return None
        if len(keys) > 1:
            shown = ", ".join(repr(dict(k[1])) for k in keys[:5])
            raise MonitorError(
                f"{len(keys)} series of {name!r} match labels={labels!r}; give labels= that "
                f"pick one, such as {shown}"
            )
        return keys[0]

    def series(
        self,
        name: str,
        labels: Mapping[str, str] | Labels | None = None,
        *,
        window: float | None = None,
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """The samples of one series as (times, values) arrays, oldest first; only the last
        ``window`` seconds (to the last sample) when given. A histogram's series are
        ``NAME_count`` and ``NAME_sum``. Empty arrays for an unknown series.

        Raises:
            MonitorError: several series match (give labels that pick one).
        """
        key = self._one(name, labels)
        with self._lock:
            stored = self._data.get(key) if key is not None else None
            if stored is None:
                return np.empty(0), np.empty(0)
            lo, hi = stored.span(window)
            times = np.array(stored.times[lo:hi], dtype=np.float64)
            values = np.array(stored.values[lo:hi], dtype=np.float64)
        return times, values

    def latest(self, name: str, labels: Mapping[str, str] | Labels | None = None) -> float | None:
        """The last value of one series (None when it has none)."""
        key = self._one(name, labels)
        with self._lock:
            points = self._data.get(key) if key is not None else None
            return points.values[-1] if points is not None and len(points) else None

    def rate(
        self,
        name: str,
        window: float = 1.0,
        labels: Mapping[str, str] | Labels | None = None,
    ) -> float:
        """Change per second of one series over the last ``window`` seconds: (last value -
        first value) / (last time - first time), over the samples in the window. For a
        counter, a drop (a restart) counts as a reset to zero, as Prometheus's ``rate``.
        NaN with fewer than two samples in the window."""
        key = self._one(name, labels)
        with self._lock:
            stored = self._data.get(key) if key is not None else None
            if stored is None:
                return float("nan")
            lo, hi = stored.span(window)
            if hi - lo < 2:
                return float("nan")
            first, last = stored.times[lo], stored.times[hi - 1]
            # Counters keep a running total that treats a drop as a restart from zero.
            values = stored.values if stored.adjusted is None else stored.adjusted
            increase = values[hi - 1] - values[lo]
        if last <= first:
            return float("nan")
        return increase / (last - first)

    def percentile(
        self,
        name: str,
        q: float,
        window: float | None = None,
        labels: Mapping[str, str] | Labels | None = None,
    ) -> float:
        """Percentile ``q`` (0 to 100) over the last ``window`` seconds (None: everything
        kept). For a histogram, of the values recorded in the window (what the samples in
        it added, merged exactly in the histogram's buckets), in base units; for a counter
        or gauge, of its sampled values. NaN when there is nothing in the window.

        Raises:
            MonitorError: q is not between 0 and 100, or several series match.
        """
        if not 0.0 <= q <= 100.0:
            raise MonitorError(f"q must be between 0 and 100, got {q!r}")
        key = self._one(name, labels)
        if key is None:
            return float("nan")
        with self._lock:
            hist = self._hists.get(key)
            if hist is not None:
                # An interval counts when it ended inside the window (after its start).
                lo, hi = hist.intervals.span(window, self._last, inclusive=False)
                if hi <= lo:
                    return float("nan")
                dense, sparse = hist.merged(window, lo, hi)
        if hist is None:
            _, values = self.series(name, key[1], window=window)
            return float(np.percentile(values, q)) if len(values) else float("nan")
        # HdrHistogram's rank rule (as HdrHistogram.value_at_percentile), so a window holding
        # every value gives the cumulative histogram's answer exactly: the first bucket at
        # which the running count reaches the target rank.
        if sparse is not None:
            total = sum(sparse.values())
        else:
            cumulative = np.cumsum(dense)  # type: ignore[arg-type]
            total = int(cumulative[-1])
        if not total:
            return float("nan")
        target = min(max(int(q * total / 100 + 0.5), 1), total)
        if sparse is not None and 2 * target <= total:
            running = 0
            for at in sorted(sparse):
                running += sparse[at]
                if running >= target:
                    break
        elif sparse is not None:
            # A high percentile: the same bucket, found from the top (the running count at a
            # bucket is the total less what lies above it), walking past few buckets.
            above = 0
            for bucket in sorted(sparse, reverse=True):
                if total - above < target:
                    break
                at = bucket
                above += sparse[bucket]
        else:
            at = int(np.searchsorted(cumulative, target, side="left"))
        template = hist.template
        # (the checked value_from_index and highest_equivalent_value: `at` is a bucket's index)
        value = template._value_from_index(at)
        if q:
            value = template._highest_equivalent(value)
        return float(value) * hist.scale

    def report_html(self, path: str | Path, *, title: str = "kaelix monitor") -> Path:
        """Writes a self-contained HTML snapshot report (see `kaelix.monitor.report_html`)."""
        from kaelix.monitor._report import report_html

        return report_html(self, path, title=title)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return (
            f"<Monitor {state} interval={self.interval:g}s history={self.history:g}s "
            f"series={len(self._data) + len(self._hists)} samples={self._samples}>"
        )


class _Series:
    """One series' samples: parallel lists of times and values, oldest first, holding the
    last ``maxlen`` (trimmed in steps, so an append costs O(1) amortised), so that a window
    is found by bisection: a query costs log(history), not the history. A counter also
    keeps a running total in which a drop counts as a restart from zero (Prometheus's
    ``rate``), so its rate over any window is two look-ups."""

    __slots__ = ("adjusted", "maxlen", "offset", "times", "values")

    def __init__(self, maxlen: int, counter: bool) -> None:
        self.maxlen = maxlen
        self.times: list[float] = []
        self.values: list[Any] = []
        self.adjusted: list[float] | None = [] if counter else None
        self.offset = 0  # entries trimmed so far: an entry's absolute index is offset + i

    def append(self, t: float, value: Any) -> None:
        adjusted = self.adjusted
        values = self.values
        if adjusted is not None:
            v = float(value)
            if adjusted:
                before = float(values[-1])
                adjusted.append(adjusted[-1] + (v - before if v >= before else v))
            else:
                adjusted.append(v)
        times = self.times
        times.append(t)
        values.append(value)
        if len(times) >= 2 * self.maxlen:
            drop = len(times) - self.maxlen
            del times[:drop], values[:drop]
            self.offset += drop
            if adjusted is not None:
                del adjusted[:drop]

    def __len__(self) -> int:
        return min(len(self.times), self.maxlen)

    def span(
        self, window: float | None, now: float | None = None, *, inclusive: bool = True
    ) -> tuple[int, int]:
        """Indexes [lo, hi) of the entries kept within the last ``window`` seconds up to
        ``now`` (default: the newest entry's time); every entry kept when None. With
        ``inclusive`` False, an entry exactly at the window's start is left out."""
        times = self.times
        hi = len(times)
        lo = max(0, hi - self.maxlen)
        if window is None or hi == lo:
            return lo, hi
        end = times[-1] if now is None else now
        if inclusive:
            lo = bisect.bisect_left(times, end - window - 1e-9, lo, hi)
        else:
            lo = bisect.bisect_right(times, end - window + 1e-9, lo, hi)
        return lo, hi
