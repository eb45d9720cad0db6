"""Alert rules over the monitor's series, their state machine, and the built-in handlers.

A rule is evaluated by the `Monitor` at each sample, separately for every series of its
metric that matches its labels; each series has its own state:

``inactive`` -> (condition true) -> ``pending`` -> (still true for ``for_`` seconds, and
``cooldown`` seconds since the series' last resolution) -> ``firing`` -> (the value is
back past the ``resolve`` threshold: hysteresis) -> ``resolved``; a pending series whose
condition goes false goes back to ``inactive``, and a resolved one starts again at
``pending`` when the condition holds again. Handlers receive an `Alert` when a series
fires and when it resolves; the monitor keeps those events in its history.

Imports nothing of the package but the metrics module's error (the monitor is passed in);
never the bench, never prometheus_client.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal, TypeAlias

from kaelix.monitor._metrics import Labels, MonitorError

if TYPE_CHECKING:
    from kaelix.monitor._sampler import Monitor

__all__ = [
    "Alert",
    "AlertHandler",
    "AlertKind",
    "AlertRule",
    "AlertState",
    "default_stream_rules",
    "log_alert",
    "logging_handler",
]

AlertKind: TypeAlias = Literal[
    "above", "below", "rate_above", "rate_below", "percentile_above", "absent"
]
AlertState: TypeAlias = Literal["inactive", "pending", "firing", "resolved"]
_KINDS: Final = ("above", "below", "rate_above", "rate_below", "percentile_above", "absent")


@dataclass(frozen=True)
class Alert:
    """An alert event: a rule's series fired or resolved.

    ``value`` is what the rule measured (the metric, its rate, its percentile, or for
    ``absent`` the seconds without data) at ``time`` (the monitor's clock); ``since`` is when
    the condition started to hold (firing) or when the alert fired (resolved)."""

    rule: str
    metric: str
    labels: Labels
    state: Literal["firing", "resolved"]
    value: float
    threshold: float
    time: float
    since: float
    severity: str
    message: str


AlertHandler: TypeAlias = Callable[[Alert], object]
"""A callable that receives each alert event."""


@dataclass
class _SeriesState:
    state: AlertState = "inactive"
    since: float = 0.0
    fired_at: float = 0.0
    resolved_at: float | None = None
    value: float = float("nan")
    last_event: Alert | None = None


def _finite(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise MonitorError(f"{what} must be a number, got {value!r}")
    return float(value)


@dataclass
class AlertRule:
    """A rule on one metric (every series of it matching ``labels``).

    Build one with the class methods (``above``, ``below``, ``rate_above``, ``rate_below``,
    ``percentile_above``, ``absent``) or directly.

    Args:
        name: unique among the monitor's rules.
        metric: the metric name.
        kind: what is compared with ``threshold``: the last value (``above``, ``below``),
            its change per second over ``window`` (``rate_above``, ``rate_below``), its
            percentile ``q`` over ``window`` (``percentile_above``), or the seconds since the
            series last had a sample (``absent``; a metric with no series at all counts
            from the monitor's first sample).
        threshold: fires past it (strictly above, or below for the ``below`` kinds).
        labels: only series whose labels include these.
        for_: seconds the condition must hold before firing (``pending`` meanwhile).
        resolve: hysteresis: a firing alert resolves only once the value is back at or
            below this (at or above, for the ``below`` kinds); default ``threshold``.
        cooldown: seconds after a resolution before the same series may fire again.
        window: seconds of history for ``rate_*`` and ``percentile_above``.
        q: the percentile of ``percentile_above`` (0 to 100).
        severity: free text passed along (``"warning"``, ``"critical"``...).
        summary: a sentence for the alert's message.

    Raises:
        MonitorError: an argument is out of range (the message says which).
    """

    name: str
    metric: str
    kind: AlertKind
    threshold: float
    labels: Mapping[str, str] | None = None
    for_: float = 0.0
    resolve: float | None = None
    cooldown: float = 0.0
    window: float = 1.0
    q: float = 99.0
    severity: str = "warning"
    summary: str = ""
    _states: dict[Labels, _SeriesState] = field(default_factory=dict, repr=False, compare=False)
    # (monitor, its series generation, labels of the matching series): see evaluate.
    _found: tuple[Monitor, int, list[Labels]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __getstate__(self) -> dict[str, object]:
        # A copy or a pickle of the rule leaves the series cache out: it refers to a monitor
        # (locks, a thread), and evaluate() makes it again.
        state = self.__dict__.copy()
        state.pop("_found", None)
        return state

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise MonitorError(f"an alert rule needs a non-empty name, got {self.name!r}")
        if not isinstance(self.metric, str) or not self.metric:
            raise MonitorError(f"rule {self.name!r}: metric must be a metric name")
        if self.kind not in _KINDS:
            raise MonitorError(
                f"rule {self.name!r}: kind must be one of {', '.join(_KINDS)}; got {self.kind!r}"
            )
        self.threshold = _finite(self.threshold, f"rule {self.name!r}: threshold")
        for what in ("for_", "cooldown"):
            if _finite(getattr(self, what), f"rule {self.name!r}: {what}") < 0:
                raise MonitorError(f"rule {self.name!r}: {what} must be >= 0 seconds")
        if _finite(self.window, f"rule {self.name!r}: window") <= 0:
            raise MonitorError(f"rule {self.name!r}: window must be > 0 seconds")
        if not 0 <= _finite(self.q, f"rule {self.name!r}: q") <= 100:
            raise MonitorError(f"rule {self.name!r}: q must be between 0 and 100, got {self.q}")
        if self.resolve is not None:
            self.resolve = _finite(self.resolve, f"rule {self.name!r}: resolve")
            if self._below and self.resolve < self.threshold:
                raise MonitorError(
                    f"rule {self.name!r}: a {self.kind} rule resolves at or above its "
                    f"threshold: resolve={self.resolve} < threshold={self.threshold}"
                )
            if not self._below and self.resolve > self.threshold:
                raise MonitorError(
                    f"rule {self.name!r}: a {self.kind} rule resolves at or below its "
                    f"threshold: resolve={self.resolve} > threshold={self.threshold}"
                )

    # -- constructors --

    @classmethod
    def above(cls, name: str, metric: str, threshold: float, **options: object) -> AlertRule:
        """Fires when the series' last value is above ``threshold``."""
        return cls(name, metric, "above", threshold, **options)  # type: ignore[arg-type]

    @classmethod
    def below(cls, name: str, metric: str, threshold: float, **options: object) -> AlertRule:
        """Fires when the series' last value is below ``threshold``."""
        return cls(name, metric, "below", threshold, **options)  # type: ignore[arg-type]

    @classmethod
    def rate_above(cls, name: str, metric: str, per_second: float, **options: object) -> AlertRule:
        """Fires when the series grows faster than ``per_second`` over ``window``."""
        return cls(name, metric, "rate_above", per_second, **options)  # type: ignore[arg-type]

    @classmethod
    def rate_below(cls, name: str, metric: str, per_second: float, **options: object) -> AlertRule:
        """Fires when the series grows slower than ``per_second`` over ``window``."""
        return cls(name, metric, "rate_below", per_second, **options)  # type: ignore[arg-type]

    @classmethod
    def percentile_above(
        cls, name: str, metric: str, q: float, bound: float, **options: object
    ) -> AlertRule:
        """Fires when percentile ``q`` of the series over ``window`` is above ``bound``."""
        return cls(name, metric, "percentile_above", bound, q=q, **options)  # type: ignore[arg-type]

    @classmethod
    def absent(cls, name: str, metric: str, duration: float, **options: object) -> AlertRule:
        """Fires when the series has had no sample for ``duration`` seconds."""
        return cls(name, metric, "absent", duration, **options)  # type: ignore[arg-type]

    # -- evaluation --

    @property
    def _below(self) -> bool:
        return self.kind in ("below", "rate_below")

    def _measure(self, monitor: Monitor, labels: Labels, now: float) -> float:
        kind = self.kind
        if kind in ("above", "below"):
            value = monitor.latest(self.metric, labels)
            return float("nan") if value is None else value
        if kind in ("rate_above", "rate_below"):
            return monitor.rate(self.metric, self.window, labels)
        if kind == "percentile_above":
            return monitor.percentile(self.metric, self.q, self.window, labels)
        times, _ = monitor.series(self.metric, labels, window=None)
        if not len(times):
            times, _ = monitor.series(self.metric + "_count", labels, window=None)
        start = monitor.started_at
        last = float(times[-1]) if len(times) else (now if start is None else start)
        return now - last

    def _holds(self, value: float, firing: bool) -> bool:
        if math.isnan(value):
            return False
        bound = self.threshold
        if firing and self.resolve is not None:
            bound = self.resolve
        if self._below:
            return value < bound
        if self.kind == "absent":
            return value >= bound
        return value > bound

    def evaluate(self, monitor: Monitor, now: float) -> list[Alert]:
        """Moves every matching series' state on at time ``now`` and returns the events
        (fired and resolved). The monitor calls this at each sample."""
        # The series a rule watches change only when the monitor stores a new series (it
        # never forgets one): look them up again only then.
        found = self._found
        generation = monitor._generation
        if found is None or found[0] is not monitor or found[1] != generation:
            names = {self.metric}
            if self.kind == "absent":
                names.add(self.metric + "_count")
            keys = [k for n in names for k in monitor.series_keys(n, self.labels)]
            matching = list(dict.fromkeys(labels for _, labels in keys))
            self._found = found = (monitor, generation, matching)
        wanted: list[Labels] = found[2]
        if self.kind == "absent":
            wanted = list(wanted)
            if not wanted:
                wanted = [tuple(sorted((self.labels or {}).items()))]
            for labels in self._states:  # series that vanished stay watched (absent fires)
                if labels not in wanted:
                    wanted.append(labels)
            wanted = list(dict.fromkeys(wanted))
        events: list[Alert] = []
        for labels in wanted:
            state = self._states.get(labels)
            if state is None:  # (not setdefault: that would make a state at every sample)
                state = self._states[labels] = _SeriesState()
            value = self._measure(monitor, labels, now)
            state.value = value
            event = self._step(state, labels, value, now)
            if event is not None:
                state.last_event = event
                events.append(event)
        return events

    def _step(self, state: _SeriesState, labels: Labels, value: float, now: float) -> Alert | None:
        if state.state == "firing":
            if self._holds(value, True):
                return None
            state.state = "resolved"
            state.resolved_at = now
            return self._event("resolved", labels, value, now, state.fired_at)
        if not self._holds(value, False):
            if state.state == "pending":
                state.state = "inactive"
            return None
        if state.state != "pending":
            state.state = "pending"
            state.since = now
        cooled = state.resolved_at is None or now - state.resolved_at >= self.cooldown
        if now - state.since >= self.for_ and cooled:
            state.state = "firing"
            state.fired_at = now
            return self._event("firing", labels, value, now, state.since)
        return None

    def _event(
        self,
        what: Literal["firing", "resolved"],
        labels: Labels,
        value: float,
        now: float,
        since: float,
    ) -> Alert:
        shown = ",".join(f"{k}={v}" for k, v in labels)
        target = f"{self.metric}{{{shown}}}" if shown else self.metric
        measure = {
            "above": "value",
            "below": "value",
            "rate_above": f"rate over {self.window:g}s",
            "rate_below": f"rate over {self.window:g}s",
            "percentile_above": f"p{self.q:g} over {self.window:g}s",
            "absent": "seconds without data",
        }[self.kind]
        message = (
            f"{self.name} {what}: {target} {measure} = {value:.6g} (threshold {self.threshold:g})"
        )
        if self.summary:
            message += f": {self.summary}"
        return Alert(
            self.name,
            self.metric,
            labels,
            what,
            value,
            self.threshold,
            now,
            since,
            self.severity,
            message,
        )

    def state(self, labels: Mapping[str, str] | Labels | None = None) -> AlertState:
        """The state of the series with these labels (the only one when None)."""
        if not self._states:
            return "inactive"
        if labels is None:
            if len(self._states) > 1:
                raise MonitorError(
                    f"rule {self.name!r} watches {len(self._states)} series: give labels"
                )
            return next(iter(self._states.values())).state
        key = labels if isinstance(labels, tuple) else None
        for have, state in self._states.items():
            if key is not None and have == key:
                return state.state
            if (
                key is None
                and dict(have).items() >= {k: str(v) for k, v in dict(labels).items()}.items()
            ):
                return state.state
        return "inactive"

    def firing(self) -> list[Alert]:
        """The last firing event of each series firing now."""
        return [
            s.last_event
            for s in self._states.values()
            if s.state == "firing" and s.last_event is not None
        ]


def default_stream_rules(
    *,
    lag_window: float = 5.0,
    lag_for: float = 5.0,
    drop_window: float = 1.0,
    p99_bound: float = 0.010,
    latency_window: float = 10.0,
) -> list[AlertRule]:
    """The rules a `Monitor` over streams starts with:

    - ``stream_lag_growing``: the slowest consumer's lag
      (``kaelix_stream_lag_messages``) grows over ``lag_window`` seconds, for ``lag_for``
      seconds (resolves when it stops growing);
    - ``stream_drops``: ``drop_oldest`` overwrote messages in the last ``drop_window``
      seconds (``kaelix_stream_messages_overwritten_total`` increases);
    - ``stream_latency_p99``: the p99 send-to-receive latency of observed consumers over
      ``latency_window`` seconds is above ``p99_bound`` seconds.
    """
    return [
        AlertRule.rate_above(
            "stream_lag_growing",
            "kaelix_stream_lag_messages",
            0.0,
            window=lag_window,
            for_=lag_for,
            summary="a consumer falls behind its producers",
        ),
        AlertRule.rate_above(
            "stream_drops",
            "kaelix_stream_messages_overwritten_total",
            0.0,
            window=drop_window,
            severity="critical",
            summary="drop_oldest overwrites messages a consumer had not read",
        ),
        AlertRule.percentile_above(
            "stream_latency_p99",
            "kaelix_stream_latency_seconds",
            99.0,
            p99_bound,
            window=latency_window,
            summary="send-to-receive latency is high",
        ),
    ]


_alert_log = logging.getLogger("kaelix.monitor.alerts")


def logging_handler(
    logger: logging.Logger | None = None,
    *,
    firing_level: int = logging.WARNING,
    resolved_level: int = logging.INFO,
) -> AlertHandler:
    """A handler that logs each alert (``logger`` defaults to ``kaelix.monitor.alerts``):
    firing at ``firing_level`` (ERROR for severity ``"critical"``), resolved at
    ``resolved_level``."""
    log = _alert_log if logger is None else logger

    def handle(alert: Alert) -> None:
        if alert.state == "firing":
            level = logging.ERROR if alert.severity == "critical" else firing_level
        else:
            level = resolved_level
        log.log(level, "%s", alert.message)

    return handle


log_alert: Final = logging_handler()
"""The built-in handler: `logging_handler()` with its defaults."""
