"""The data of a benchmark run: what is measured (suites, cases, contenders, bars) and what
came out (timings, per-contender results, bar checks, the whole run and its JSON form).

Everything here is a plain frozen dataclass so results can be compared, saved and loaded
(`BenchRun.to_json` / `BenchRun.from_json`, schema `kaelix.bench/1`) without the code that
produced them. This module imports only the standard library: never kaelix, numpy, numba or
an optional dependency.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

SCHEMA = "kaelix.bench/1"
"""The version tag written as ``"schema"`` in every JSON result file."""

Role = Literal["kaelix", "peer", "reference"]
"""What a contender is: kaelix itself, a peer a user could pick instead, or a reference line
that does a related but different job (shown for scale, never used by a bar)."""

Status = Literal["ok", "skipped", "error"]
Throughput = Literal["messages", "bytes", "both", "latency"]
"""What a case's table shows: messages/s, bytes/s, both, or one-way latency percentiles."""

Timer = Literal["loop", "call", "latency", "once"]
"""How a workload is timed (see `Workload`)."""

BarKind = Literal[
    "faster_than",
    "min_speedup",
    "min_messages_per_s",
    "min_bytes_per_s",
    "min_memcpy_fraction",
    "max_ns_per_message",
    "max_latency",
]

_BAR_KINDS: tuple[str, ...] = get_args(BarKind)

LATENCY_PERCENTILES: tuple[float, ...] = (50.0, 90.0, 99.0, 99.9, 100.0)
"""The percentiles every `Latency` holds and that tables, charts and bars use (100 is the
maximum)."""

RECORDED_PERCENTILES: tuple[float, ...] = (50.0, 90.0, 99.0, 99.9, 99.99, 100.0)
"""Every percentile `Latency.at` answers: `LATENCY_PERCENTILES` and p99.99, which runs record
since p99.99 was added (a result file written before holds none)."""

SuiteOption = Literal["size", "messages"]
"""A command-line setting a suite may honour (``--size``, ``--messages``; see `SuiteConfig`)."""


# --------------------------------------------------------------------------- what to measure


@dataclass(frozen=True)
class Workload:
    """One prepared operation, ready to be timed.

    ``call`` is invoked with no arguments; one call handles ``messages`` messages and
    ``nbytes`` bytes of user data (payload bytes for codec cases, buffer bytes for checksums
    and copies, frame bytes for rings). Every contender of a case reports the same
    ``messages`` and ``nbytes`` per message, so time ratios and throughput ratios agree.

    ``timer`` says how the call is timed:

    - ``"loop"`` (the default): the runner times a calibrated loop of calls;
    - ``"call"``: one call is one trial and times itself, returning the nanoseconds its
      ``messages`` took (a cross-process run timed by its consumer, from the first message
      received to the last); no calibration;
    - ``"latency"``: one call is one trial and returns the one-way latency in nanoseconds of
      each of its messages (a sequence or numpy array); the runner pools the trials into
      percentiles (`Latency`);
    - ``"once"``: like ``"call"``, but the one call is the only trial (no warm-up, no
      repeats): a cost paid once per process, such as numba compiling a kernel on its first
      call, measured in a fresh process. Such a workload usually handles no messages
      (``messages=0``): its figure is a time, not a rate.

    ``close``, when set, is called once after the last trial (or when preparing or timing
    fails): it stops worker processes and removes what the factory created.

    ``encode_hdr``, for a ``"latency"`` workload, is called once after the trials with every
    trial's latencies pooled (a float64 numpy array of nanoseconds) and returns their
    HdrHistogram in the base64 ``HISTFAAA...`` form, stored as `Latency.hdr`;
    `kaelix.bench._hdrlog.encode_latencies` is the usual choice (``kaelix.HdrHistogram``
    from 1 ns to an hour, 3 significant figures). It runs after timing, so its cost (numba
    compiling the recording kernel on the first call) is never measured.

    ``describe``, when set, is called once after the trials (before ``close``) and returns
    what the workload measured beside its time (say, the CPU a background thread took);
    it is added to the contender's note in the results.
    """

    call: Callable[[], object]
    messages: int = 1
    nbytes: int = 0
    timer: Timer = "loop"
    close: Callable[[], object] | None = None
    encode_hdr: Callable[[Any], str] | None = None
    describe: Callable[[], str] | None = None


Factory = Callable[[], Workload]
"""The adapter shape shared by kaelix and every peer: prepare the data (not timed), check
the result once, and return the `Workload` whose ``call`` is timed."""


@dataclass(frozen=True)
class Contender:
    """One library (or way of using one) competing in a case.

    ``requires`` names the optional modules the factory imports; when one is missing the
    contender is reported as skipped with the pip command that installs it, and the factory
    is never called. ``note`` says anything a reader must know to read the figure fairly.
    """

    name: str
    factory: Factory
    role: Role = "peer"
    requires: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class Bar:
    """A performance target from ``DESIGN.md`` that a case's kaelix result must meet.

    ``text`` is the bar as a reader sees it (``"≤ msgspec"``, ``"≥ 20 M msg/s"``). ``kind``
    says how it is checked:

    - ``faster_than``: kaelix's time per message is at most ``peer``'s (medians);
    - ``min_speedup``: kaelix's speedup over ``peer`` (the peer's time per message divided
      by kaelix's) is at least ``value``;
    - ``min_messages_per_s`` / ``min_bytes_per_s``: kaelix's median throughput is at least
      ``value``;
    - ``min_memcpy_fraction``: kaelix's bytes/s is at least ``value`` times the memcpy
      reference case named by ``reference``;
    - ``max_ns_per_message``: kaelix's median time per message is at most ``value`` ns;
    - ``max_latency``: kaelix's one-way latency at ``percentile`` (one of
      `LATENCY_PERCENTILES`; 100 is the maximum) is at most ``value`` ns.
    """

    text: str
    kind: BarKind
    value: float = 0.0
    peer: str | None = None
    reference: str | None = None
    percentile: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in _BAR_KINDS:
            raise ValueError(f"Bar kind must be one of {', '.join(_BAR_KINDS)}; got {self.kind!r}")
        if self.kind in ("faster_than", "min_speedup") and not self.peer:
            raise ValueError(f"Bar {self.text!r} of kind {self.kind!r} needs peer=...")
        if self.kind == "min_memcpy_fraction" and not self.reference:
            raise ValueError(f"Bar {self.text!r} of kind 'min_memcpy_fraction' needs reference=...")
        if self.kind == "max_latency" and self.percentile not in LATENCY_PERCENTILES:
            choices = ", ".join(f"{p:g}" for p in LATENCY_PERCENTILES)
            raise ValueError(
                f"Bar {self.text!r} of kind 'max_latency' needs percentile= one of {choices}; "
                f"got {self.percentile!r}"
            )


@dataclass(frozen=True)
class Case:
    """One benchmark: the same job done by each contender, with the bars that apply.

    ``throughput`` picks what tables show: ``"messages"`` (messages/s), ``"bytes"``
    (bytes/s), ``"both"``, or ``"latency"`` (one-way latency percentiles, for cases whose
    workloads use the ``"latency"`` timer); both rates are always recorded.

    ``interleave``: time the contenders trial by trial in turn (A B B A ...) rather than one
    after the other, for contenders so close that the machine's drift over a run would
    decide between them; then at least ``min_repeat`` trials each, unless the user set
    the number of trials.
    """

    name: str
    contenders: tuple[Contender, ...]
    bars: tuple[Bar, ...] = ()
    throughput: Throughput = "messages"
    note: str = ""
    interleave: bool = False
    min_repeat: int = 1


@dataclass(frozen=True)
class SuiteConfig:
    """What a suite is told when it builds its cases.

    ``quick``: quick or full mode (a suite may use smaller sizes in quick mode). ``peers``:
    whether peers will run. ``size``: the payload size in bytes the user asked for
    (``--size``), or None for the suite's own sizes. ``messages``: the number of messages
    per trial (or per batch-like unit the suite documents) the user asked for
    (``--messages``), or None for the suite's own counts. A suite that reads ``size`` or
    ``messages`` says so in `Suite.options`; the others ignore them, and the command line
    says which suites ignored a setting that was given.
    """

    quick: bool = True
    peers: bool = True
    size: int | None = None
    messages: int | None = None


@dataclass(frozen=True)
class Suite:
    """A named group of cases. ``cases`` builds them for a config; it must be cheap (no data
    is prepared until a contender's factory runs), so ``--list`` can call it.

    ``options`` names the `SuiteConfig` settings beyond mode and peers that the suite
    honours (``"size"``, ``"messages"``); ``--list`` shows them and the command line warns
    when one is given to a suite that ignores it."""

    name: str
    description: str
    cases: Callable[[SuiteConfig], Sequence[Case]]
    options: tuple[SuiteOption, ...] = ()


# ----------------------------------------------------------------------------- what came out


@dataclass(frozen=True)
class Timing:
    """The timing of one contender: per-operation nanoseconds of each trial and their summary.

    One operation is one call of the workload. ``inner_loops`` calls make one trial; the
    per-operation time of a trial is its duration divided by ``inner_loops``.
    """

    median_ns: float
    q1_ns: float
    q3_ns: float
    min_ns: float
    max_ns: float
    inner_loops: int
    trials_ns: tuple[float, ...]

    @property
    def iqr_ns(self) -> float:
        """Interquartile range (q3 - q1) of the per-operation times of the trials."""
        return self.q3_ns - self.q1_ns

    @property
    def relative_iqr(self) -> float:
        """IQR as a fraction of the median (0.02 means the middle half spans 2 %)."""
        return self.iqr_ns / self.median_ns if self.median_ns > 0 else math.inf


@dataclass(frozen=True)
class Latency:
    """One-way latencies of a contender's messages, pooled over its trials: percentiles in
    nanoseconds (linear interpolation, as ``numpy.percentile``) over ``samples`` messages.

    ``p9999_ns`` is p99.99 (None in a result written before it was recorded).
    ``trials_p99_ns`` holds each trial's own p99, in the order the trials ran: the samples
    the regression check compares p99 on (empty in older results). ``hdr`` is the pooled
    latencies as an HdrHistogram, base64 ``HISTFAAA...`` text (`kaelix.HdrHistogram.encode`,
    values in nanoseconds), when the workload made one (`Workload.encode_hdr`); ``--hdr-dir``
    writes it as an HdrHistogram log."""

    samples: int
    p50_ns: float
    p90_ns: float
    p99_ns: float
    p999_ns: float
    max_ns: float
    mean_ns: float
    p9999_ns: float | None = None
    trials_p99_ns: tuple[float, ...] = ()
    hdr: str | None = None

    def at(self, percentile: float) -> float:
        """The latency at one of `RECORDED_PERCENTILES` (100 is the maximum); p99.99 raises
        ValueError when this result does not hold it."""
        if percentile == 99.99:
            if self.p9999_ns is None:
                raise ValueError("p99.99 was not recorded in this result (an older result file)")
            return self.p9999_ns
        values = (self.p50_ns, self.p90_ns, self.p99_ns, self.p999_ns, self.max_ns)
        for known, value in zip(LATENCY_PERCENTILES, values, strict=True):
            if percentile == known:
                return value
        choices = ", ".join(f"{p:g}" for p in RECORDED_PERCENTILES)
        raise ValueError(f"percentile must be one of {choices}; got {percentile!r}")


@dataclass(frozen=True)
class ContenderResult:
    """What one contender did in one case: measured (``ok``), ``skipped`` (``reason`` says
    why and how to fix it) or failed (``error``, ``reason`` holds the exception).

    A latency contender (``"latency"`` timer) has ``latency`` set, ``messages_per_op`` and
    ``bytes_per_op`` zero (it measures no throughput), and a ``timing`` whose trials are the
    median latency of each trial, so its time per message is its median latency."""

    name: str
    role: Role
    status: Status
    reason: str | None = None
    note: str = ""
    messages_per_op: int = 0
    bytes_per_op: int = 0
    timing: Timing | None = None
    latency: Latency | None = None

    @property
    def ok(self) -> bool:
        """True when the contender was measured."""
        return self.status == "ok" and self.timing is not None

    @property
    def median_ns(self) -> float | None:
        """Median time of one operation (one workload call), or None when not measured."""
        return self.timing.median_ns if self.timing is not None else None

    @property
    def ns_per_message(self) -> float | None:
        """Median time per message (or per operation when the workload has no messages); for
        a latency contender, its median one-way latency over all its messages."""
        if self.timing is None:
            return None
        if self.latency is not None:
            return self.latency.p50_ns
        return self.timing.median_ns / max(self.messages_per_op, 1)

    @property
    def messages_per_s(self) -> float | None:
        """Median throughput in messages per second, or None when not measured or messageless."""
        if self.timing is None or self.messages_per_op <= 0 or self.timing.median_ns <= 0:
            return None
        return self.messages_per_op * 1e9 / self.timing.median_ns

    @property
    def bytes_per_s(self) -> float | None:
        """Median throughput in bytes per second, or None when not measured or byteless."""
        if self.timing is None or self.bytes_per_op <= 0 or self.timing.median_ns <= 0:
            return None
        return self.bytes_per_op * 1e9 / self.timing.median_ns


@dataclass(frozen=True)
class BarCheck:
    """The verdict on one bar: ``met`` is True, False, or None when it could not be checked
    (kaelix or the peer it names was not measured); ``detail`` gives the figures."""

    bar: Bar
    met: bool | None
    detail: str


@dataclass(frozen=True)
class CaseResult:
    """Every contender's result in one case, plus the verdict on each bar."""

    suite: str
    case: str
    throughput: Throughput
    contenders: tuple[ContenderResult, ...]
    bars: tuple[BarCheck, ...] = ()
    note: str = ""

    def contender(self, name: str) -> ContenderResult | None:
        """The result of the contender called ``name``, or None."""
        for result in self.contenders:
            if result.name == name:
                return result
        return None

    @property
    def kaelix(self) -> ContenderResult | None:
        """The result of the (first) kaelix contender, or None when the case has none."""
        for result in self.contenders:
            if result.role == "kaelix":
                return result
        return None

    def speedup(self, name: str) -> float | None:
        """How many times faster kaelix is than contender ``name``: the contender's time per
        message divided by kaelix's (> 1 means kaelix is faster). None when either is not
        measured or the case has no kaelix contender."""
        kaelix, other = self.kaelix, self.contender(name)
        if kaelix is None or other is None:
            return None
        kaelix_ns, other_ns = kaelix.ns_per_message, other.ns_per_message
        if kaelix_ns is None or other_ns is None or kaelix_ns <= 0:
            return None
        return other_ns / kaelix_ns


@dataclass(frozen=True)
class Settings:
    """How the run was made: mode, trials, target trial time, peers on or off, what ran, and
    the ``--size`` / ``--messages`` given to the suites (None: the suites' own)."""

    mode: Literal["quick", "full"]
    repeat: int
    trial_ms: float
    peers: bool
    suites: tuple[str, ...]
    select: str | None = None
    size: int | None = None
    messages: int | None = None


@dataclass(frozen=True)
class ProgressEvent:
    """Sent to a ``progress`` callback: ``kind`` is ``"start"`` (before anything runs),
    ``"contender"`` (one contender finished) or ``"case"`` (a case finished, ``result`` set).
    ``done`` of ``total`` contender measurements are finished."""

    kind: Literal["start", "contender", "case"]
    done: int
    total: int
    suite: str = ""
    case: str = ""
    contender: str = ""
    result: CaseResult | None = None


@dataclass(frozen=True)
class BenchRun:
    """A whole run: when, how, on what machine, and the result of every case.

    ``reference`` holds the physical reference lines (memcpy bandwidth) measured in the same
    run; ``results`` holds the suites' cases in the order they ran.
    """

    created: str
    settings: Settings
    machine: Mapping[str, Any]
    reference: tuple[CaseResult, ...]
    results: tuple[CaseResult, ...]
    duration_s: float = 0.0
    schema: str = SCHEMA

    def case(self, suite: str, case: str) -> CaseResult:
        """The result of ``case`` in ``suite``; raises KeyError naming what exists."""
        for result in (*self.reference, *self.results):
            if result.suite == suite and result.case == case:
                return result
        known = ", ".join(f"{r.suite}/{r.case}" for r in self.results)
        raise KeyError(f"No case {case!r} in suite {suite!r}; the run has: {known}")

    @property
    def bar_checks(self) -> tuple[tuple[CaseResult, BarCheck], ...]:
        """Every bar verdict of the run with the case it belongs to."""
        return tuple((result, check) for result in self.results for check in result.bars)

    @property
    def errors(self) -> tuple[tuple[CaseResult, ContenderResult], ...]:
        """Every contender that failed, with its case."""
        return tuple(
            (result, contender)
            for result in (*self.reference, *self.results)
            for contender in result.contenders
            if contender.status == "error"
        )

    def to_json(self) -> dict[str, Any]:
        """The run as JSON-ready data (schema ``kaelix.bench/1``, see ``docs/bench.md``)."""
        return {
            "schema": self.schema,
            "created": self.created,
            "duration_s": self.duration_s,
            "settings": {
                "mode": self.settings.mode,
                "repeat": self.settings.repeat,
                "trial_ms": self.settings.trial_ms,
                "peers": self.settings.peers,
                "suites": list(self.settings.suites),
                "select": self.settings.select,
                "size": self.settings.size,
                "messages": self.settings.messages,
            },
            "machine": dict(self.machine),
            "reference": [_case_to_json(r) for r in self.reference],
            "results": [_case_to_json(r) for r in self.results],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BenchRun:
        """Rebuild a run from `to_json` output; raises ValueError on another schema."""
        schema = data.get("schema")
        if schema != SCHEMA:
            raise ValueError(f"Expected a {SCHEMA!r} result file, got schema {schema!r}")
        settings = data["settings"]
        return cls(
            created=data["created"],
            duration_s=float(data.get("duration_s", 0.0)),
            settings=Settings(
                mode=settings["mode"],
                repeat=int(settings["repeat"]),
                trial_ms=float(settings["trial_ms"]),
                peers=bool(settings["peers"]),
                suites=tuple(settings["suites"]),
                select=settings.get("select"),
                size=_optional_int(settings.get("size")),
                messages=_optional_int(settings.get("messages")),
            ),
            machine=dict(data["machine"]),
            reference=tuple(_case_from_json(r) for r in data.get("reference", [])),
            results=tuple(_case_from_json(r) for r in data["results"]),
        )


# ------------------------------------------------------------------------------ JSON helpers


def _case_to_json(result: CaseResult) -> dict[str, Any]:
    return {
        "suite": result.suite,
        "case": result.case,
        "throughput": result.throughput,
        "note": result.note,
        "bars": [
            {
                "text": check.bar.text,
                "kind": check.bar.kind,
                "value": check.bar.value,
                "peer": check.bar.peer,
                "reference": check.bar.reference,
                "percentile": check.bar.percentile,
                "met": check.met,
                "detail": check.detail,
            }
            for check in result.bars
        ],
        "contenders": [_contender_to_json(result, c) for c in result.contenders],
    }


def _contender_to_json(case: CaseResult, result: ContenderResult) -> dict[str, Any]:
    timing = result.timing
    return {
        "name": result.name,
        "role": result.role,
        "status": result.status,
        "reason": result.reason,
        "note": result.note,
        "messages_per_op": result.messages_per_op,
        "bytes_per_op": result.bytes_per_op,
        "median_ns": timing.median_ns if timing else None,
        "q1_ns": timing.q1_ns if timing else None,
        "q3_ns": timing.q3_ns if timing else None,
        "iqr_ns": timing.iqr_ns if timing else None,
        "min_ns": timing.min_ns if timing else None,
        "max_ns": timing.max_ns if timing else None,
        "inner_loops": timing.inner_loops if timing else None,
        "trials_ns": list(timing.trials_ns) if timing else [],
        "messages_per_s": result.messages_per_s,
        "bytes_per_s": result.bytes_per_s,
        "kaelix_speedup": None if result.role == "kaelix" else case.speedup(result.name),
        "latency": _latency_to_json(result.latency),
    }


def _latency_to_json(latency: Latency | None) -> dict[str, Any] | None:
    if latency is None:
        return None
    return {
        "samples": latency.samples,
        "p50_ns": latency.p50_ns,
        "p90_ns": latency.p90_ns,
        "p99_ns": latency.p99_ns,
        "p999_ns": latency.p999_ns,
        "max_ns": latency.max_ns,
        "mean_ns": latency.mean_ns,
        "p9999_ns": latency.p9999_ns,
        "trials_p99_ns": list(latency.trials_p99_ns),
        "hdr": latency.hdr,
    }


def _latency_from_json(data: Mapping[str, Any] | None) -> Latency | None:
    if data is None:
        return None
    return Latency(
        samples=int(data["samples"]),
        p50_ns=float(data["p50_ns"]),
        p90_ns=float(data["p90_ns"]),
        p99_ns=float(data["p99_ns"]),
        p999_ns=float(data["p999_ns"]),
        max_ns=float(data["max_ns"]),
        mean_ns=float(data["mean_ns"]),
        p9999_ns=None if data.get("p9999_ns") is None else float(data["p9999_ns"]),
        trials_p99_ns=tuple(float(t) for t in data.get("trials_p99_ns") or ()),
        hdr=data.get("hdr"),
    )


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _case_from_json(data: Mapping[str, Any]) -> CaseResult:
    return CaseResult(
        suite=data["suite"],
        case=data["case"],
        throughput=data["throughput"],
        note=data.get("note", ""),
        bars=tuple(
            BarCheck(
                bar=Bar(
                    text=b["text"],
                    kind=b["kind"],
                    value=float(b["value"]),
                    peer=b.get("peer"),
                    reference=b.get("reference"),
                    percentile=b.get("percentile"),
                ),
                met=b["met"],
                detail=b["detail"],
            )
            for b in data["bars"]
        ),
        contenders=tuple(_contender_from_json(c) for c in data["contenders"]),
    )


def _contender_from_json(data: Mapping[str, Any]) -> ContenderResult:
    timing = None
    if data.get("median_ns") is not None:
        timing = Timing(
            median_ns=float(data["median_ns"]),
            q1_ns=float(data["q1_ns"]),
            q3_ns=float(data["q3_ns"]),
            min_ns=float(data["min_ns"]),
            max_ns=float(data["max_ns"]),
            inner_loops=int(data["inner_loops"]),
            trials_ns=tuple(float(t) for t in data["trials_ns"]),
        )
    return ContenderResult(
        name=data["name"],
        role=data["role"],
        status=data["status"],
        reason=data.get("reason"),
        note=data.get("note", ""),
        messages_per_op=int(data["messages_per_op"]),
        bytes_per_op=int(data["bytes_per_op"]),
        timing=timing,
        latency=_latency_from_json(data.get("latency")),
    )


__all__ = [
    "LATENCY_PERCENTILES",
    "RECORDED_PERCENTILES",
    "SCHEMA",
    "Bar",
    "BarCheck",
    "BenchRun",
    "Case",
    "CaseResult",
    "Contender",
    "ContenderResult",
    "Factory",
    "Latency",
    "ProgressEvent",
    "Settings",
    "Suite",
    "SuiteConfig",
    "SuiteOption",
    "Throughput",
    "Timer",
    "Timing",
    "Workload",
]
