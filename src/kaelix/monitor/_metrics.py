"""Metric types, the registry that holds them, and the collector that reads a stream's
counters out of its rings.

`Counter`, `Gauge` and `Histogram` are the values user code records; each belongs to a
family (``registry.counter(name, help, labels=(...))``) whose ``labels(...)`` picks one
series. `Registry.collect` snapshots every series of every registered collector.
`StreamMetrics` is such a collector over a `kaelix.Stream`: it records nothing on the
send or poll path, it reads at collection time the counters the rings keep anyway
(frames published, frames overwritten, free bytes, the slowest cursor), which live in the
ring headers and so are the same for every process attached to a shared stream.
`Registry.observe` is the opt-in part: it samples a consumer's send-to-receive latency
(one poll after each collection) by switching the consumer's class, so that between
collections its receive path is exactly a plain consumer's.

Imports the public kaelix API and numpy; never the bench, never numba directly (the
histogram's bulk recording imports it on first use), never prometheus_client.
"""

from __future__ import annotations

import re
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Generic, Literal, Protocol, TypeAlias, TypeVar

import numpy as np
import numpy.typing as npt

from kaelix._hdr import HdrHistogram
from kaelix.errors import KaelixError, RingClosed, StreamClosed

if TYPE_CHECKING:
    from kaelix._batch import MessageBatch
    from kaelix._codec import Message
    from kaelix._stream import Consumer, Stream

__all__ = [
    "LATENCY_METRIC",
    "STREAM_METRICS",
    "Collector",
    "Counter",
    "CounterFamily",
    "FamilySnapshot",
    "Gauge",
    "GaugeFamily",
    "Histogram",
    "HistogramFamily",
    "HistogramValue",
    "Kind",
    "Labels",
    "MonitorError",
    "Registry",
    "SeriesSnapshot",
    "StreamMetrics",
]

Kind: TypeAlias = Literal["counter", "gauge", "histogram"]
Labels: TypeAlias = tuple[tuple[str, str], ...]
"""A series' labels: (name, value) pairs in the family's label order."""

_NAME_RULE: Final = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL_RULE: Final = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_RESERVED_LABELS: Final = frozenset({"le", "quantile"})


class MonitorError(KaelixError, ValueError):
    """A metric, registry, monitor or alert rule was used wrongly: a bad or duplicate name,
    wrong labels, a negative counter increment, an ambiguous series. The message says what
    was wrong and how to fix it."""


# ------------------------------------------------------------------------------ snapshots


@dataclass(frozen=True)
class HistogramValue:
    """A histogram series at collection time: ``count`` values recorded, their ``sum`` and
    the cumulative `kaelix.HdrHistogram` (a copy, in recorded units); ``scale`` turns a
    recorded value into the metric's base unit (1e-9 for nanoseconds reported in seconds).

    ``recent`` holds the last values recorded (up to `RECENT_VALUES`, in recorded units),
    the first of them value number ``recent_from`` (counting from 0); None when the
    histogram keeps no such log. A sampler that saw ``n`` values at its last snapshot finds
    what came since in ``recent[n - recent_from:]`` when that is inside, without comparing
    every bucket."""

    count: int
    sum: float
    histogram: HdrHistogram
    scale: float
    recent: tuple[int, ...] = ()
    recent_from: int | None = None

    def percentile(self, q: float) -> float:
        """The value at percentile ``q`` (0 to 100) in base units; NaN when empty."""
        if self.count == 0:
            return float("nan")
        return self.histogram.value_at_percentile(q) * self.scale


RECENT_VALUES: Final = 64
"""Values a `Histogram` keeps in its log of the last values recorded (`HistogramValue.recent`);
a ``record_many`` of more starts the log again after them. As many as a `Monitor` takes from
the log (past that it diffs every bucket): a longer log only costs every ``record_many`` a
list of its values and every snapshot a tuple of them (a batch of 1,024 logged was about
160 k instructions of the consumer's thread at each sample)."""


# The two snapshots below are made for every series at every collection: their __init__
# fills __dict__ directly, about three times faster than the one dataclass writes for a
# frozen class (object.__setattr__ per field); they stay frozen dataclasses otherwise.


@dataclass(frozen=True, init=False)
class SeriesSnapshot:
    """One series at collection time: its labels and value."""

    labels: Labels
    value: float | HistogramValue

    def __init__(self, labels: Labels, value: float | HistogramValue) -> None:
        fields = self.__dict__
        fields["labels"] = labels
        fields["value"] = value


@dataclass(frozen=True, init=False)
class FamilySnapshot:
    """Every series of one metric at collection time."""

    name: str
    help: str
    kind: Kind
    series: tuple[SeriesSnapshot, ...]

    def __init__(
        self, name: str, help: str, kind: Kind, series: tuple[SeriesSnapshot, ...]
    ) -> None:
        fields = self.__dict__
        fields["name"] = name
        fields["help"] = help
        fields["kind"] = kind
        fields["series"] = series


class Collector(Protocol):
    """What a `Registry` holds: something that names the metric families it produces and
    snapshots them on demand. Metric families and `StreamMetrics` are collectors; user code
    may write its own."""

    def names(self) -> tuple[str, ...]:
        """The metric names this collector's snapshots use (checked for clashes)."""
        ...

    def collect(self) -> Iterable[FamilySnapshot]:
        """A snapshot of every series, taken now."""
        ...


# ---------------------------------------------------------------------------- validation


def _check_name(name: object, kind: Kind) -> str:
    if not isinstance(name, str) or not _NAME_RULE.match(name):
        raise MonitorError(
            f"metric name must match [a-zA-Z_:][a-zA-Z0-9_:]* (Prometheus), got {name!r}"
        )
    if kind == "counter" and not name.endswith("_total"):
        raise MonitorError(
            f"counter name {name!r} must end in '_total' (Prometheus convention): "
            f"use {name + '_total'!r}"
        )
    if kind != "counter" and name.endswith("_total"):
        raise MonitorError(
            f"only counters end in '_total'; {kind} {name!r} needs another name "
            f"(Prometheus convention)"
        )
    return name


def _check_label_names(labels: object) -> tuple[str, ...]:
    if isinstance(labels, str):
        raise MonitorError(f"labels must be a sequence of names, not a str: use ({labels!r},)")
    if not isinstance(labels, Iterable):
        raise MonitorError(f"labels must be a sequence of names, got {labels!r}")
    names = tuple(labels)
    for label in names:
        if not isinstance(label, str) or not _LABEL_RULE.match(label) or label.startswith("__"):
            raise MonitorError(
                f"label name must match [a-zA-Z_][a-zA-Z0-9_]* and not start with '__', "
                f"got {label!r}"
            )
        if label in _RESERVED_LABELS:
            raise MonitorError(f"label name {label!r} is reserved by Prometheus; pick another")
    if len(set(names)) != len(names):
        raise MonitorError(f"label names repeat: {names!r}")
    return names


# --------------------------------------------------------------------------- the values


class Counter:
    """A count that only goes up (messages, bytes, errors). Exact under concurrent threads:
    ``inc`` holds a lock around its read-modify-write."""

    __slots__ = ("_lock", "_value")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        """Adds ``amount`` (>= 0).

        Raises:
            MonitorError: ``amount`` is negative (a counter never goes down; use a Gauge).
        """
        if amount < 0:
            raise MonitorError(
                f"a counter only goes up: inc({amount!r}) is negative; use a Gauge for values "
                f"that go down"
            )
        with self._lock:
            self._value += amount

    @property
    def value(self) -> float:
        """The count so far."""
        return self._value


class Gauge:
    """A value that goes up and down (fill level, lag, queue depth), set directly or computed
    by a function at each collection (``set_function``)."""

    __slots__ = ("_function", "_lock", "_value")

    def __init__(self, function: Callable[[], float] | None = None) -> None:
        self._lock = threading.Lock()
        self._value = 0.0
        self._function = function

    def set(self, value: float) -> None:
        """Sets the value (and drops a function given before)."""
        with self._lock:
            self._function = None
            self._value = float(value)

    def inc(self, amount: float = 1.0) -> None:
        """Adds ``amount`` (may be negative)."""
        with self._lock:
            self._value += amount

    def dec(self, amount: float = 1.0) -> None:
        """Subtracts ``amount``."""
        self.inc(-amount)

    def set_function(self, function: Callable[[], float]) -> None:
        """Computes the value by calling ``function()`` at each collection."""
        with self._lock:
            self._function = function

    @property
    def value(self) -> float:
        """The value now (the function's result, when one is set)."""
        function = self._function
        return float(function()) if function is not None else self._value


class Histogram:
    """A distribution of non-negative integer values (latencies in ns, sizes in bytes) in a
    `kaelix.HdrHistogram`: ``record`` one value, ``record_many`` a numpy array in one
    vectorised call. ``scale`` converts recorded units into the metric's base unit for
    reading (``1e-9``: recorded in nanoseconds, reported in seconds). Thread-safe."""

    __slots__ = (
        "_changes",
        "_hist",
        "_lock",
        "_recent",
        "_recent_from",
        "_snapshot",
        "_sum",
        "scale",
    )

    def __init__(
        self,
        *,
        lowest: int = 1,
        highest: int = 3_600_000_000_000,
        significant_figures: int = 3,
        scale: float = 1.0,
    ) -> None:
        self._hist = HdrHistogram(lowest, highest, significant_figures)
        self._lock = threading.Lock()
        self._sum = 0
        self._changes = 0  # bumped by every record: a snapshot is copied only after one
        self._snapshot: HistogramValue | None = None
        self.scale = float(scale)
        # The last values recorded, the first of them value number _recent_from: so that
        # _recent_from + len(_recent) is always the count (see HistogramValue.recent).
        self._recent: list[int] = []
        self._recent_from = 0

    def record(self, value: int) -> None:
        """Records one value (recorded units)."""
        with self._lock:
            self._hist.record(value)
            self._sum += value
            self._changes += 1
            recent = self._recent
            recent.append(value)
            if len(recent) > 2 * RECENT_VALUES:
                del recent[:RECENT_VALUES]
                self._recent_from += RECENT_VALUES

    def record_many(self, values: npt.ArrayLike) -> None:
        """Records every value of an integer array in one compiled pass."""
        array = np.asarray(values, dtype=np.int64)
        if not array.size:
            return
        with self._lock:
            self._hist.record_values(array)
            self._sum += int(array.sum())
            self._changes += 1
            if array.size > RECENT_VALUES:  # too many to log: the log starts again after them
                self._recent = []
                self._recent_from = self._hist.total_count
                return
            recent = self._recent
            recent.extend(array.ravel().tolist())
            if len(recent) > 2 * RECENT_VALUES:
                drop = len(recent) - RECENT_VALUES
                del recent[:drop]
                self._recent_from += drop

    @property
    def count(self) -> int:
        """Values recorded so far."""
        return self._hist.total_count

    @property
    def sum(self) -> float:
        """Sum of the values recorded, in base units."""
        return self._sum * self.scale

    def percentile(self, q: float) -> float:
        """The value at percentile ``q`` (0 to 100), in base units; NaN when empty."""
        with self._lock:
            if not self._hist.total_count:
                return float("nan")
            return self._hist.value_at_percentile(q) * self.scale

    def percentiles(self, qs: Iterable[float] = (50.0, 90.0, 99.0, 99.9)) -> dict[float, float]:
        """``percentile`` for each of ``qs``."""
        return {q: self.percentile(q) for q in qs}

    @property
    def highest(self) -> int:
        """The largest value this histogram records (larger ones raise)."""
        return self._hist.highest_recordable_value

    def snapshot(self) -> HistogramValue:
        """A consistent copy of the histogram now (the same object as the last snapshot
        when nothing was recorded since: treat it as read-only)."""
        with self._lock:
            snapshot = self._snapshot
            if snapshot is None or self._changes:
                recent = self._recent
                if len(recent) > RECENT_VALUES:
                    recent = recent[-RECENT_VALUES:]
                snapshot = HistogramValue(
                    self._hist.total_count,
                    self._sum * self.scale,
                    self._hist.copy(),
                    self.scale,
                    tuple(recent),
                    self._hist.total_count - len(recent),
                )
                self._snapshot = snapshot
                self._changes = 0
            return snapshot


# ---------------------------------------------------------------------------- families

M = TypeVar("M", Counter, Gauge, Histogram)
T = TypeVar("T")


class _Family(ABC, Generic[M]):
    """A metric name with its label names, and one child (a series) per label values."""

    kind: Kind

    def __init__(self, name: str, help: str, labels: Iterable[str]) -> None:
        self.name = _check_name(name, self.kind)
        if not isinstance(help, str):
            raise MonitorError(f"help must be a str, got {type(help).__name__}")
        self.help = help
        self.labelnames = _check_label_names(labels)
        self._children: dict[tuple[str, ...], M] = {}
        self._pairs: dict[tuple[str, ...], Labels] = {}  # label values -> a snapshot's labels
        self._lock = threading.Lock()

    @abstractmethod
    def _new(self) -> M:
        """A new series of this family's kind."""

    def labels(self, *values: object, **named: object) -> M:
        """The series for these label values (made on first use), given in the order of the
        family's label names or by name: ``.labels("s", "0")`` or
        ``.labels(stream="s", partition="0")``. Values are turned into str.

        Raises:
            MonitorError: values missing, extra, or given both ways.
        """
        if values and named:
            raise MonitorError("give label values by position or by name, not both")
        if named:
            if set(named) != set(self.labelnames):
                raise MonitorError(
                    f"{self.name} takes labels {self.labelnames!r}, got {tuple(named)!r}"
                )
            key = tuple(str(named[n]) for n in self.labelnames)
        else:
            if len(values) != len(self.labelnames):
                raise MonitorError(
                    f"{self.name} takes {len(self.labelnames)} label values "
                    f"{self.labelnames!r}, got {len(values)}"
                )
            key = tuple(str(v) for v in values)
        child = self._children.get(key)
        if child is None:
            with self._lock:
                child = self._children.get(key)
                if child is None:
                    child = self._children[key] = self._new()
        return child

    def remove(self, *values: object, **named: object) -> None:
        """Forgets the series for these label values (no error when absent)."""
        if named:
            key = tuple(str(named.get(n)) for n in self.labelnames)
        else:
            key = tuple(str(v) for v in values)
        with self._lock:
            self._children.pop(key, None)
            self._pairs.pop(key, None)

    def _only(self) -> M:
        if self.labelnames:
            raise MonitorError(
                f"{self.name} has labels {self.labelnames!r}: pick a series with .labels(...) first"
            )
        return self.labels()

    def names(self) -> tuple[str, ...]:
        """The metric's name (the `Collector` protocol)."""
        return (self.name,)

    @abstractmethod
    def _value(self, child: M) -> float | HistogramValue:
        """The value a series shows in a snapshot."""

    def collect(self) -> Iterator[FamilySnapshot]:
        """A snapshot of every series (the `Collector` protocol)."""
        with self._lock:
            children = list(self._children.items())
        pairs = self._pairs
        series = []
        for key, child in children:
            labels = pairs.get(key)
            if labels is None:  # made once per series (a function of its label values)
                labels = pairs[key] = tuple(zip(self.labelnames, key, strict=True))
            series.append(SeriesSnapshot(labels, self._value(child)))
        yield FamilySnapshot(self.name, self.help, self.kind, tuple(series))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} labels={self.labelnames!r}>"


class CounterFamily(_Family[Counter]):
    """A counter metric: ``labels(...)`` gives a `Counter`; without label names, ``inc`` and
    ``value`` work on the family itself."""

    kind: Kind = "counter"

    def _new(self) -> Counter:
        return Counter()

    def _value(self, child: Counter) -> float:
        return child.value

    def inc(self, amount: float = 1.0) -> None:
        """``Counter.inc`` on the family's only series (a family without labels)."""
        self._only().inc(amount)

    @property
    def value(self) -> float:
        """``Counter.value`` of the family's only series."""
        return self._only().value


class GaugeFamily(_Family[Gauge]):
    """A gauge metric: ``labels(...)`` gives a `Gauge`; without label names, the gauge
    methods work on the family itself."""

    kind: Kind = "gauge"

    def __init__(
        self,
        name: str,
        help: str,
        labels: Iterable[str] = (),
        function: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(name, help, labels)
        if function is not None:
            self._only().set_function(function)

    def _new(self) -> Gauge:
        return Gauge()

    def _value(self, child: Gauge) -> float:
        return child.value

    def set(self, value: float) -> None:
        """``Gauge.set`` on the family's only series."""
        self._only().set(value)

    def inc(self, amount: float = 1.0) -> None:
        """``Gauge.inc`` on the family's only series."""
        self._only().inc(amount)

    def dec(self, amount: float = 1.0) -> None:
        """``Gauge.dec`` on the family's only series."""
        self._only().dec(amount)

    def set_function(self, function: Callable[[], float]) -> None:
        """``Gauge.set_function`` on the family's only series."""
        self._only().set_function(function)

    @property
    def value(self) -> float:
        """``Gauge.value`` of the family's only series."""
        return self._only().value


class HistogramFamily(_Family[Histogram]):
    """A histogram metric: ``labels(...)`` gives a `Histogram`; without label names, the
    histogram methods work on the family itself."""

    kind: Kind = "histogram"

    def __init__(
        self,
        name: str,
        help: str,
        labels: Iterable[str] = (),
        *,
        lowest: int = 1,
        highest: int = 3_600_000_000_000,
        significant_figures: int = 3,
        scale: float = 1.0,
    ) -> None:
        super().__init__(name, help, labels)
        HdrHistogram(lowest, highest, significant_figures)  # bad parameters fail here
        self._layout = (lowest, highest, significant_figures, scale)

    def _new(self) -> Histogram:
        lowest, highest, figures, scale = self._layout
        return Histogram(lowest=lowest, highest=highest, significant_figures=figures, scale=scale)

    def _value(self, child: Histogram) -> HistogramValue:
        return child.snapshot()

    def record(self, value: int) -> None:
        """``Histogram.record`` on the family's only series."""
        self._only().record(value)

    def record_many(self, values: npt.ArrayLike) -> None:
        """``Histogram.record_many`` on the family's only series."""
        self._only().record_many(values)

    def percentile(self, q: float) -> float:
        """``Histogram.percentile`` of the family's only series."""
        return self._only().percentile(q)


# ------------------------------------------------------------------------------ registry


class Registry:
    """Holds metric families and collectors, and snapshots them all with ``collect``.

    Make metrics with ``counter``, ``gauge`` and ``histogram``; add any `Collector` with
    ``register``; watch a stream with ``register_stream`` (or build the registry with
    ``Registry.from_streams``). Names are unique across everything registered.

    >>> registry = Registry()
    >>> sent = registry.counter("app_sent_total", "Messages sent", labels=("topic",))
    >>> sent.labels(topic="orders").inc()
    >>> [f.name for f in registry.collect()]
    ['app_sent_total']
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._collectors: list[Collector] = []
        self._names: dict[str, Collector] = {}
        self._observed: _Observation | None = None

    @classmethod
    def from_streams(cls, *streams: Stream) -> Registry:
        """A registry watching each of ``streams`` (see `register_stream`)."""
        registry = cls()
        for stream in streams:
            registry.register_stream(stream)
        return registry

    def register(self, collector: Collector) -> Collector:
        """Adds ``collector`` and returns it.

        Raises:
            MonitorError: one of its names is registered already.
        """
        names = tuple(collector.names())
        with self._lock:
            for name in names:
                owner = self._names.get(name)
                if owner is not None:
                    raise MonitorError(
                        f"metric {name!r} is registered already (by {owner!r}); give the new "
                        f"metric another name, or unregister the old one first"
                    )
            for name in names:
                self._names[name] = collector
            self._collectors.append(collector)
        return collector

    def unregister(self, collector: Collector | str) -> None:
        """Removes a collector, given itself or one of its metric names.

        Raises:
            MonitorError: it is not registered.
        """
        with self._lock:
            if isinstance(collector, str):
                found = self._names.get(collector)
                if found is None:
                    raise MonitorError(f"no metric named {collector!r} is registered")
                collector = found
            if not any(c is collector for c in self._collectors):
                raise MonitorError(f"{collector!r} is not registered")
            self._collectors = [c for c in self._collectors if c is not collector]
            self._names = {n: c for n, c in self._names.items() if c is not collector}

    def counter(self, name: str, help: str, *, labels: Iterable[str] = ()) -> CounterFamily:
        """Registers and returns a counter (its name must end in ``_total``)."""
        family = CounterFamily(name, help, labels)
        self.register(family)
        return family

    def gauge(
        self,
        name: str,
        help: str,
        *,
        labels: Iterable[str] = (),
        function: Callable[[], float] | None = None,
    ) -> GaugeFamily:
        """Registers and returns a gauge; ``function`` (no labels) computes its value at
        each collection."""
        family = GaugeFamily(name, help, labels, function)
        self.register(family)
        return family

    def histogram(
        self,
        name: str,
        help: str,
        *,
        labels: Iterable[str] = (),
        lowest: int = 1,
        highest: int = 3_600_000_000_000,
        significant_figures: int = 3,
        scale: float = 1.0,
    ) -> HistogramFamily:
        """Registers and returns a histogram (see `Histogram` for the parameters)."""
        family = HistogramFamily(
            name,
            help,
            labels,
            lowest=lowest,
            highest=highest,
            significant_figures=significant_figures,
            scale=scale,
        )
        self.register(family)
        return family

    def register_stream(self, stream: Stream) -> StreamMetrics:
        """Watches ``stream``: registers its `StreamMetrics` (once for all streams of the
        registry) and returns it."""
        with self._lock:
            for collector in self._collectors:
                if isinstance(collector, StreamMetrics):
                    collector.add(stream)
                    return collector
            return self.register(StreamMetrics(stream))  # type: ignore[return-value]

    def observe(self, consumer: Consumer) -> Consumer:
        """Samples ``consumer``'s send-to-receive latency into
        ``kaelix_stream_latency_seconds{stream=...}`` (seconds, from each message's
        ``timestamp_ns`` to the poll that returned it) and returns the consumer itself.

        Observing costs the receive path nothing: each collection of this registry (each
        `Monitor` sample, each Prometheus scrape) arms the consumer, and its next ``poll``
        or ``poll_batch`` that returns something records that message's latency (every
        message of the batch, in one vectorised call), then disarms it. So the histogram
        holds one sample of the consumer's traffic per collection: about ten a second with
        a monitor at its default interval. The consumer stays a `kaelix.Consumer` (of a
        private subclass: ``type(consumer) is Consumer`` no longer holds). Arming works
        through the class, so a ``poll`` looked up once and kept (``get = consumer.poll``)
        is never measured: call ``consumer.poll()`` each time. One registry observes a
        consumer at a time (observing again moves it).

        Raises:
            MonitorError: ``consumer`` is not a plain `kaelix.Consumer`.
        """
        base = _consumer_class()
        if type(consumer) not in (base, _ObservedConsumer, _ArmedConsumer):
            raise MonitorError(
                f"observe() takes a kaelix.Consumer (made by Stream.consumer()), "
                f"got {type(consumer).__name__}"
            )
        with self._lock:
            if self._observed is None:
                self._observed = _Observation(self)
            observation = self._observed
        _latency_of[consumer] = observation.latency.labels(stream=consumer.stream.name)
        observation.consumers.add(consumer)
        if type(consumer) is base:
            consumer.__class__ = _ObservedConsumer
        return consumer

    def unobserve(self, consumer: Consumer) -> Consumer:
        """Stops measuring ``consumer``'s latency (the reverse of `observe`): it becomes a
        plain `kaelix.Consumer` again (``type(consumer) is Consumer``), armed or not, and
        records nothing more. The latency series keeps what it recorded. Returns the
        consumer.

        Raises:
            MonitorError: this registry does not observe ``consumer``.
        """
        observation = self._observed
        mine = observation is not None and consumer in observation.consumers
        if mine and observation is not None:
            here = observation.latency.labels(stream=consumer.stream.name)
            if _latency_of.get(consumer) is not here:  # another registry observes it since
                observation.consumers.discard(consumer)
                mine = False
        if not mine or observation is None:
            raise MonitorError(
                f"unobserve(): this registry does not observe {consumer!r}; "
                "only a consumer passed to observe() can be"
            )
        observation.consumers.discard(consumer)
        _latency_of.pop(consumer, None)
        consumer.__class__ = _consumer_class()
        return consumer

    def collect(self) -> list[FamilySnapshot]:
        """A snapshot of every series of every collector, taken now."""
        with self._lock:
            collectors = list(self._collectors)
        families: list[FamilySnapshot] = []
        for collector in collectors:
            families.extend(collector.collect())
        return families

    def _collect_for_sampler(
        self,
    ) -> list[FamilySnapshot | list[tuple[StreamLayout, list[float]]]]:
        """``collect`` as a `Monitor` stores it: the same, except that a `StreamMetrics`
        gives its streams' reads (`StreamMetrics._reads`) in place of its families."""
        with self._lock:
            collectors = list(self._collectors)
        parts: list[FamilySnapshot | list[tuple[StreamLayout, list[float]]]] = []
        for collector in collectors:
            if type(collector) is StreamMetrics:
                parts.append(collector._reads())
            else:
                parts.extend(collector.collect())
        return parts

    def names(self) -> tuple[str, ...]:
        """Every metric name registered."""
        with self._lock:
            return tuple(self._names)

    def __repr__(self) -> str:
        return f"<Registry of {len(self._names)} metrics>"


# ------------------------------------------------------------------------- stream metrics

STREAM_METRICS: Final = {
    "kaelix_stream_messages_published_total": (
        "counter",
        "Messages published to the partition (every process's producers).",
    ),
    "kaelix_stream_bytes_published_total": (
        "counter",
        "Frame bytes published to the partition (every process's producers).",
    ),
    "kaelix_stream_messages_overwritten_total": (
        "counter",
        "Messages overwritten by drop_oldest before every consumer read them (drops).",
    ),
    "kaelix_stream_fill_ratio": (
        "gauge",
        "Part of the partition's ring in use, behind the slowest consumer (0 to 1).",
    ),
    "kaelix_stream_free_bytes": ("gauge", "Bytes a producer could write now without waiting."),
    "kaelix_stream_lag_messages": (
        "gauge",
        "Messages the slowest consumer (of any process) has yet to read.",
    ),
    "kaelix_stream_messages_received_total": (
        "counter",
        "Messages one reader of the partition (a consumer or a group, in any process) "
        "received since it joined.",
    ),
    "kaelix_stream_bytes_received_total": (
        "counter",
        "Frame bytes one reader of the partition (in any process) received since it joined.",
    ),
    "kaelix_stream_reader_lag_messages": (
        "gauge",
        "Messages waiting for one reader of the partition (in any process).",
    ),
    "kaelix_stream_reader_skipped_total": (
        "counter",
        "Messages one reader of the partition (in any process) lost to drop_oldest.",
    ),
    "kaelix_consumer_lag_messages": (
        "gauge",
        "Messages waiting for one consumer of this process.",
    ),
    "kaelix_consumer_skipped_total": (
        "counter",
        "Messages one consumer of this process lost to drop_oldest.",
    ),
    "kaelix_stream_producer_waits_total": (
        "counter",
        "Sends of this process's producers that found no room and waited (backpressure).",
    ),
    "kaelix_stream_producer_blocked_seconds_total": (
        "counter",
        "Seconds this process's producers spent waiting for room (backpressure).",
    ),
}
"""The series `StreamMetrics` produces: name -> (kind, help)."""


def _live(items: weakref.WeakSet[T] | None) -> list[T]:
    """``list(items)`` (None: empty), in the same order, without WeakSet's iterator (a
    generator and a guard against removals while it runs, twice the cost at each sample):
    its set of references is copied at once, under the GIL."""
    if items is None:
        return []
    # WeakSet.data, its set of weak references, is not in typeshed but has been there
    # since Python 2.7 (Lib/_weakrefset.py), and WeakSet iterates it exactly so.
    refs: set[weakref.ref[T]] = items.data  # type: ignore[attr-defined]
    return [item for item in map(_call, list(refs)) if item is not None]


def _call(ref: weakref.ref[T]) -> T | None:
    return ref()


def _slowest_lag(stream: Stream, partition: int) -> int:
    """Messages published and not yet read by the slowest consumer of ``partition``, read
    from the ring's header and consumer slots (any process's): ``len`` of a handle with no
    consumer role of its own counts from the slowest cursor."""
    backend = stream._open_backend()
    rings = getattr(backend, "rings", None)
    if rings is not None:  # in process: rings made on first use
        ring = rings[partition]
        return 0 if ring is None else len(ring)
    return len(backend.producer_handle(partition))


@dataclass(eq=False)
class _Watched:
    stream: Stream
    consumer_ids: weakref.WeakKeyDictionary[Consumer, str] = field(
        default_factory=weakref.WeakKeyDictionary
    )
    next_id: int = 1
    # ((readers, consumers), layout) of the last read (StreamMetrics._read): the layout is
    # made again only when those change. One attribute, so that a collection in another
    # thread never pairs one read's readers with another's layout.
    last_layout: tuple[object, StreamLayout] | None = None

    def consumer_label(self, consumer: Consumer) -> str:
        label = self.consumer_ids.get(consumer)
        if label is None:
            group = consumer.group
            label = f"{group}#{self.next_id}" if group else f"#{self.next_id}"
            self.next_id += 1
            self.consumer_ids[consumer] = label
        return label

    def layout_of(
        self, readers: tuple[tuple[int, int, int], ...], consumers: tuple[tuple[str, int], ...]
    ) -> StreamLayout:
        """The series of a read that found these readers ((partition, pid, slot)) and
        consumers ((label, partition)), in `_STREAM_ORDER` (the order of the values
        `StreamMetrics._read` returns): the same object while they stay the same."""
        last = self.last_layout
        if last is not None and last[0] == (readers, consumers):
            return last[1]
        name = self.stream.name
        parts: list[Labels] = [
            (("stream", name), ("partition", str(p))) for p in range(self.stream.partitions)
        ]
        readers_labels: list[Labels] = [
            (*parts[p], ("reader", f"{pid}/{slot}")) for p, pid, slot in readers
        ]
        consumers_labels: list[Labels] = [
            (*parts[p], ("consumer", label)) for label, p in consumers
        ]
        whole: list[Labels] = [(("stream", name),)]
        per_series = [parts] * 6 + [readers_labels] * 4 + [consumers_labels] * 2 + [whole] * 2
        layout = tuple(
            (series, labels)
            for series, labels_of in zip(_STREAM_ORDER, per_series, strict=True)
            for labels in labels_of
        )
        self.last_layout = ((readers, consumers), layout)
        return layout


_STREAM_ORDER: Final = (
    "kaelix_stream_messages_published_total",
    "kaelix_stream_bytes_published_total",
    "kaelix_stream_messages_overwritten_total",
    "kaelix_stream_fill_ratio",
    "kaelix_stream_free_bytes",
    "kaelix_stream_lag_messages",
    "kaelix_stream_messages_received_total",
    "kaelix_stream_bytes_received_total",
    "kaelix_stream_reader_lag_messages",
    "kaelix_stream_reader_skipped_total",
    "kaelix_consumer_lag_messages",
    "kaelix_consumer_skipped_total",
    "kaelix_stream_producer_waits_total",
    "kaelix_stream_producer_blocked_seconds_total",
)
"""The order of one stream's series in `StreamMetrics._read`: per partition, then per
reader, then per consumer and partition, then per stream."""

StreamLayout: TypeAlias = tuple[tuple[str, Labels], ...]
"""One stream's series as `StreamMetrics._read` returns their values: (name, labels)."""


def _stream_families(reads: Iterable[tuple[StreamLayout, list[float]]]) -> Iterator[FamilySnapshot]:
    """`StreamMetrics.collect`'s families from its streams' reads: one family per name of
    `STREAM_METRICS` (in its order), its series stream by stream."""
    rows: dict[str, list[SeriesSnapshot]] = {name: [] for name in STREAM_METRICS}
    for layout, values in reads:
        for (name, labels), value in zip(layout, values, strict=True):
            rows[name].append(SeriesSnapshot(labels, value))
    for name, (kind, help) in STREAM_METRICS.items():
        yield FamilySnapshot(name, help, kind, tuple(rows[name]))  # type: ignore[arg-type]


class StreamMetrics:
    """A collector over streams: at each collection it reads, per partition, the counters
    the rings keep anyway (``Stream.metrics()``: messages and bytes published, and every
    reader's messages and bytes received, lag and skipped count, and the slowest cursor),
    and each of this process's consumers' lag and skipped count. Nothing is recorded on the
    send or poll path beyond what the rings write to work at all (a producer's publish
    position and count, a reader's cursor and count), so watching a stream costs its
    producers and consumers nothing; and those counters live in the shared segments (ring
    headers and reader slots), so a shared stream shows every process's traffic to
    whichever process collects. The series are `STREAM_METRICS`, labelled ``stream`` and
    ``partition``, plus ``reader`` (``"pid/slot"``) for the per-reader ones and
    ``consumer`` for this process's consumers. A closed stream yields no series."""

    def __init__(self, *streams: Stream) -> None:
        self._lock = threading.Lock()
        self._watched: list[_Watched] = []
        for stream in streams:
            self.add(stream)

    def add(self, stream: Stream) -> None:
        """Watches one more stream.

        Raises:
            MonitorError: a stream of that name is watched already.
        """
        with self._lock:
            if any(w.stream.name == stream.name for w in self._watched):
                raise MonitorError(
                    f"stream {stream.name!r} is watched already; streams are told apart by name"
                )
            self._watched.append(_Watched(stream))

    def remove(self, stream: Stream) -> None:
        """Stops watching ``stream``."""
        with self._lock:
            self._watched = [w for w in self._watched if w.stream is not stream]

    @property
    def streams(self) -> tuple[Stream, ...]:
        """The streams watched."""
        return tuple(w.stream for w in self._watched)

    def names(self) -> tuple[str, ...]:
        """The metric names of `STREAM_METRICS` (the `Collector` protocol)."""
        return tuple(STREAM_METRICS)

    def collect(self) -> Iterator[FamilySnapshot]:
        """Reads every watched stream now (the `Collector` protocol)."""
        yield from _stream_families(self._reads())

    def _reads(self) -> list[tuple[StreamLayout, list[float]]]:
        """Every watched stream's series (its layout) and their values now, in the same
        order; what `collect` reports, without a snapshot object per series (a `Monitor`
        stores these directly: see `Registry._collect_for_sampler`)."""
        with self._lock:
            watched = list(self._watched)
        reads = []
        for w in watched:
            try:
                read = self._read(w)
            except (StreamClosed, RingClosed, FileNotFoundError):
                continue  # a closed stream has no series
            if read is not None:
                reads.append(read)
        return reads

    @staticmethod
    def _read(w: _Watched) -> tuple[StreamLayout, list[float]] | None:
        # Called at every sample: the rings' counters straight from the backend (what
        # Stream.metrics() reads, without its dicts), and the layout (every series' name
        # and labels) made again only when readers or consumers changed (w.layout_of). The
        # whole stream is read before anything is returned: one closed midway adds nothing.
        stream = w.stream
        if stream.closed:
            return None
        backend = stream._open_backend()
        capacity = float(stream.capacity)
        published: list[float] = []
        published_bytes: list[float] = []
        overwritten: list[float] = []
        fill: list[float] = []
        free_bytes: list[float] = []
        lag: list[float] = []
        received: list[float] = []
        received_bytes: list[float] = []
        reader_lag: list[float] = []
        reader_skipped: list[float] = []
        readers_seen: list[tuple[int, int, int]] = []
        counters = backend.counters
        for p in range(stream.partitions):
            n_published, n_overwritten, n_free, n_bytes, readers = counters(p)
            free = float(n_free)
            published.append(float(n_published))
            published_bytes.append(float(n_bytes))
            for slot, pid, got, got_bytes, skipped, waiting in readers:
                readers_seen.append((p, pid, slot))
                received.append(float(got))
                received_bytes.append(float(got_bytes))
                reader_lag.append(float(waiting))
                reader_skipped.append(float(skipped))
            overwritten.append(float(n_overwritten))
            free_bytes.append(free)
            fill.append(max(0.0, min(1.0, 1.0 - free / capacity)))
            lag.append(float(_slowest_lag(stream, p)))
        consumer_lag: list[float] = []
        consumer_skipped: list[float] = []
        consumers_seen: list[tuple[str, int]] = []
        for consumer in _live(stream._consumers):
            if consumer.closed:
                continue
            label = w.consumer_label(consumer)
            try:
                waiting_of = consumer.lag
                skipped_of = consumer.skipped_by_partition
            except (StreamClosed, RingClosed):
                continue
            for p, waiting in waiting_of.items():
                consumers_seen.append((label, p))
                consumer_lag.append(float(waiting))
                consumer_skipped.append(float(skipped_of.get(p, 0)))
        blocked = stream._blocked or (0, 0)
        values = [
            *published,
            *published_bytes,
            *overwritten,
            *fill,
            *free_bytes,
            *lag,
            *received,
            *received_bytes,
            *reader_lag,
            *reader_skipped,
            *consumer_lag,
            *consumer_skipped,
            float(blocked[0]),
            blocked[1] * 1e-9,
        ]
        return w.layout_of(tuple(readers_seen), tuple(consumers_seen)), values

    def __repr__(self) -> str:
        names = ", ".join(repr(w.stream.name) for w in self._watched)
        return f"<StreamMetrics of {names}>"


# ------------------------------------------------------------------- observed consumers

LATENCY_METRIC: Final = "kaelix_stream_latency_seconds"


class _Observation:
    """The latency histogram observed consumers feed (registered once per registry), and
    the consumers themselves: every collection of the registry arms each of them to
    measure what its next poll returns."""

    def __init__(self, registry: Registry) -> None:
        self.latency = registry.histogram(
            LATENCY_METRIC,
            "Send-to-receive latency (the frame's timestamp to the poll that returned it).",
            labels=("stream",),
            lowest=1_000,
            highest=60_000_000_000,  # a minute: longer latencies are counted as a minute
            # 1 % precision is plenty to watch latency, and a tenth of the counts of 0.1 %
            # keeps each sample's copy and diff of the histogram small.
            significant_figures=2,
            scale=1e-9,
        )
        self.consumers: weakref.WeakSet[Consumer] = weakref.WeakSet()
        registry.register(self)

    def names(self) -> tuple[str, ...]:
        return ()

    def collect(self) -> Iterator[FamilySnapshot]:
        for consumer in _live(self.consumers):
            if type(consumer) is _ObservedConsumer and not consumer.closed:
                consumer.__class__ = _ArmedConsumer
        return iter(())


# An observed consumer is the user's own Consumer object, re-classed: _ObservedConsumer
# between measurements (exactly Consumer's methods, so the receive path costs what it
# always did), _ArmedConsumer from a collection until its next poll that returns
# something, which records that message's latency (or the batch's) and re-classes it back.
# Both subclasses add no slot, so the object's layout never changes. A wrapper object was
# measured at +40 to 60 ns per poll (an attribute lookup CPython cannot specialise), about
# 10 % of a one-message poll.
_latency_of: weakref.WeakKeyDictionary[Consumer, Histogram] = weakref.WeakKeyDictionary()


def _consumer_class() -> type[Consumer]:
    from kaelix._stream import Consumer

    return Consumer


class _ObservedConsumer(_consumer_class()):  # type: ignore[misc]
    """A consumer under observation, between two measurements."""

    __slots__ = ()


class _ArmedConsumer(_consumer_class()):  # type: ignore[misc]
    """A consumer whose next poll that returns something is measured."""

    __slots__ = ()

    def poll(self, timeout: float | None = None) -> Message | None:
        message: Message | None = super().poll(timeout)
        if message is not None:
            self.__class__ = _ObservedConsumer
            histogram = _latency_of.get(self)
            if histogram is not None:
                latency = time.time_ns() - message.timestamp_ns
                histogram.record(min(max(0, latency), histogram.highest))
        return message

    def poll_batch(self, max_messages: int = 1024, timeout: float | None = None) -> MessageBatch:
        batch: MessageBatch = super().poll_batch(max_messages, timeout)
        if len(batch):
            self.__class__ = _ObservedConsumer
            histogram = _latency_of.get(self)
            if histogram is not None:
                latencies = time.time_ns() - batch.timestamp_ns.astype(np.int64, copy=False)
                # np.clip, in place and for a third of its cost (its Python wrapper)
                np.maximum(latencies, 0, out=latencies)
                np.minimum(latencies, histogram.highest, out=latencies)
                histogram.record_many(latencies)
        return batch


def _matches(labels: Labels, wanted: Mapping[str, str] | None) -> bool:
    if not wanted:
        return True
    have = dict(labels)
    return all(have.get(k) == str(v) for k, v in wanted.items())
