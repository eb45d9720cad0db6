"""Timing and running: calibrate, warm up, repeat trials, summarise; and `run`, which
measures the memcpy reference and every case of the chosen suites into a `BenchRun`.

How one contender is measured (``docs/bench.md`` says the same for readers):

1. its factory prepares the data (not timed) and returns a `Workload`;
2. calibration grows the inner loop count until one trial lasts about the target trial time
   (20 ms quick, 100 ms full);
3. one warm-up trial runs and is discarded;
4. ``repeat`` trials run (5 quick, 15 full), each with the garbage collector paused (its
   previous state restored after), timed with `time.perf_counter_ns`;
5. per-operation time of a trial = trial time / inner loops; the result is the median and
   the quartiles (IQR) of those.

A workload that times itself (``timer="call"``: cross-process runs, timed by their consumer)
skips calibration: one call is one trial, one warm-up call, then ``repeat`` calls. A latency
workload (``timer="latency"``) likewise, and its trials' per-message latencies are pooled into
percentiles (numpy, imported when a latency workload runs). A one-off cost
(``timer="once"``, e.g. numba's compile time in a fresh process) is one call, one trial.

Imports the bench's own modules and the standard library (numpy lazily, for latency
percentiles); the suites import kaelix. Never import numba here.
"""

from __future__ import annotations

import gc
import itertools
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, cast

from kaelix.bench._bars import check_bars
from kaelix.bench._model import (
    RECORDED_PERCENTILES,
    BenchRun,
    Case,
    CaseResult,
    Contender,
    ContenderResult,
    Latency,
    ProgressEvent,
    Settings,
    Status,
    Suite,
    SuiteConfig,
    Timing,
    Workload,
)
from kaelix.bench._peers import is_installed, missing_reason


@dataclass(frozen=True)
class Mode:
    """Trials per contender and target duration of one trial for a bench mode."""

    name: str
    repeat: int
    trial_ms: float


QUICK = Mode("quick", repeat=5, trial_ms=20.0)
FULL = Mode("full", repeat=15, trial_ms=100.0)

_CALIBRATION_FRACTION = 0.1  # calibrate until one timing lasts a tenth of the target
_MAX_LOOPS = 1 << 40


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic garbage collector for the block, restoring its state after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def time_loops(call: Callable[[], object], loops: int) -> int:
    """Nanoseconds taken by ``loops`` calls of ``call`` (the garbage collector paused)."""
    repeat = itertools.repeat(None, loops)
    with gc_paused():
        start = time.perf_counter_ns()
        for _ in repeat:
            call()
        return time.perf_counter_ns() - start


def calibrate(call: Callable[[], object], target_ns: float) -> int:
    """Inner loop count that makes one trial of ``call`` last about ``target_ns``.

    Grows the count (at most tenfold per step) until a timing lasts a tenth of the target,
    then scales to the target. A call slower than the target gets one loop.
    """
    loops = 1
    while True:
        elapsed = time_loops(call, loops)
        if elapsed >= target_ns * _CALIBRATION_FRACTION or loops >= _MAX_LOOPS:
            break
        if elapsed <= 0:
            loops *= 10
        else:
            wanted = target_ns * _CALIBRATION_FRACTION * 2 * loops / elapsed
            loops = int(min(loops * 10, max(loops * 2, wanted)))
    per_call = max(elapsed, 1) / loops
    return max(1, min(_MAX_LOOPS, round(target_ns / per_call)))


def summarise(per_op_ns: Sequence[float], inner_loops: int) -> Timing:
    """Median, quartiles (inclusive method), min and max of per-operation trial times."""
    if not per_op_ns:
        raise ValueError("Cannot summarise zero trials; repeat must be at least 1")
    data = sorted(per_op_ns)
    median = statistics.median(data)
    if len(data) >= 2:
        q1, _, q3 = statistics.quantiles(data, n=4, method="inclusive")
    else:
        q1 = q3 = data[0]
    return Timing(
        median_ns=median,
        q1_ns=q1,
        q3_ns=q3,
        min_ns=data[0],
        max_ns=data[-1],
        inner_loops=inner_loops,
        trials_ns=tuple(per_op_ns),
    )


def _self_timed(value: object, timer: str = "call") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise TypeError(
            f"a workload with timer={timer!r} must return the positive nanoseconds it took; "
            f"got {value!r}"
        )
    return float(value)


def measure(workload: Workload, *, repeat: int, trial_ms: float) -> Timing:
    """Time ``workload.call``: calibrate, one warm-up trial, then ``repeat`` trials.

    A ``timer="call"`` workload is not calibrated: one warm-up call, then ``repeat`` calls,
    each returning its own time. A ``timer="once"`` workload is called once, and that call's
    own time is the only trial. (``timer="latency"`` workloads go to `measure_latency`.)
    """
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1; got {repeat}")
    if trial_ms <= 0:
        raise ValueError(f"trial_ms must be positive; got {trial_ms}")
    call = workload.call
    gc.collect()
    if workload.timer == "latency":
        return measure_latency(workload, repeat=repeat)[0]
    if workload.timer == "once":
        return summarise([_self_timed(call(), "once")], 1)
    if workload.timer == "call":
        _self_timed(call())  # warm-up, discarded
        return summarise([_self_timed(call()) for _ in range(repeat)], 1)
    loops = calibrate(call, trial_ms * 1e6)
    time_loops(call, loops)  # warm-up, discarded
    per_op = [time_loops(call, loops) / loops for _ in range(repeat)]
    return summarise(per_op, loops)


def summarise_latency(
    trials: Sequence[Sequence[float]],
    encode_hdr: Callable[[Any], str] | None = None,
) -> tuple[Timing, Latency]:
    """The `Timing` of latency trials (each trial's figure is its median latency) and the
    `Latency` percentiles of all their samples pooled, with each trial's own p99 and, when
    ``encode_hdr`` is given, the pooled samples' HdrHistogram encoding."""
    import numpy as np

    arrays = [np.asarray(trial, dtype=np.float64) for trial in trials]
    if not arrays or any(array.size == 0 for array in arrays):
        raise ValueError("Cannot summarise latency trials without samples")
    pooled = np.concatenate(arrays)
    values = np.percentile(pooled, RECORDED_PERCENTILES)
    p50, p90, p99, p999, p9999, most = (float(v) for v in values)
    timing = summarise([float(np.median(array)) for array in arrays], 1)
    latency = Latency(
        int(pooled.size),
        p50,
        p90,
        p99,
        p999,
        most,
        float(pooled.mean()),
        p9999_ns=p9999,
        trials_p99_ns=tuple(float(np.percentile(array, 99.0)) for array in arrays),
        hdr=encode_hdr(pooled) if encode_hdr is not None else None,
    )
    return timing, latency


def measure_latency(workload: Workload, *, repeat: int) -> tuple[Timing, Latency]:
    """Run a ``timer="latency"`` workload: one warm-up call, then ``repeat`` calls, each
    returning per-message latencies in nanoseconds; then its ``encode_hdr`` (if any) on
    every trial's latencies pooled."""
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1; got {repeat}")
    gc.collect()
    workload.call()  # warm-up, discarded
    trials: list[Sequence[float]] = []
    for _ in range(repeat):
        samples = workload.call()
        if not hasattr(samples, "__len__"):
            raise TypeError(
                f"a workload with timer='latency' must return its latencies; got {samples!r}"
            )
        trials.append(cast("Sequence[float]", samples))
    return summarise_latency(trials, workload.encode_hdr)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _note(note: str, workload: Workload) -> str:
    """The contender's note, with what the workload's ``describe`` says it measured."""
    if workload.describe is None:
        return note
    try:
        measured = workload.describe()
    except Exception as exc:
        measured = f"describing: {_describe(exc)}"
    return f"{note}; measured: {measured}" if note else f"measured: {measured}"


def _close(workload: Workload) -> str | None:
    """Call the workload's ``close`` (if any); the failure as text, or None."""
    if workload.close is None:
        return None
    try:
        workload.close()
    except Exception as exc:
        return f"closing: {_describe(exc)}"
    return None


def measure_contender(contender: Contender, *, repeat: int, trial_ms: float) -> ContenderResult:
    """Run one contender's factory and time its workload; never raises for a failing
    contender (the result says ``skipped`` or ``error`` and why)."""

    def result(status: Status, reason: str | None = None) -> ContenderResult:
        return ContenderResult(
            name=contender.name,
            role=contender.role,
            status=status,
            reason=reason,
            note=contender.note,
        )

    missing = [module for module in contender.requires if not is_installed(module)]
    if missing:
        return result("skipped", missing_reason(missing[0]))
    try:
        workload = contender.factory()
    except Exception as exc:
        return result("error", f"preparing: {_describe(exc)}")
    latency: Latency | None = None
    failure: str | None = None
    note = contender.note
    try:
        if workload.messages < 0 or workload.nbytes < 0:
            failure = (
                f"workload counts must be >= 0; got messages={workload.messages}, "
                f"nbytes={workload.nbytes}"
            )
        elif workload.timer == "latency":
            timing, latency = measure_latency(workload, repeat=repeat)
        else:
            timing = measure(workload, repeat=repeat, trial_ms=trial_ms)
        note = _note(note, workload)
    except Exception as exc:
        failure = f"running: {_describe(exc)}"
    finally:
        closing = _close(workload)
    if failure is not None or closing is not None:
        return result("error", failure or closing)
    return ContenderResult(
        name=contender.name,
        role=contender.role,
        status="ok",
        note=note,
        messages_per_op=0 if latency is not None else workload.messages,
        bytes_per_op=0 if latency is not None else workload.nbytes,
        timing=timing,
        latency=latency,
    )


def measure_interleaved(
    contenders: Sequence[Contender], *, repeat: int, trial_ms: float
) -> list[ContenderResult]:
    """Time several contenders trial by trial in turn, in the order A B B A A B ..., so that
    whatever drifts over the run (the machine's other load, its clock) weighs on each
    alike: for cases whose contenders differ by less than the drift between two runs.
    Every workload is made and warmed up first and closed last; ``repeat`` trials each.
    Workloads must be loop- or ``"call"``-timed; a failing contender is reported like in
    `measure_contender` and the others go on."""
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1; got {repeat}")
    results: dict[int, ContenderResult] = {}
    workloads: dict[int, Workload] = {}
    loops: dict[int, int] = {}
    trials: dict[int, list[float]] = {}

    def failed(i: int, status: Status, reason: str) -> None:
        c = contenders[i]
        results[i] = ContenderResult(
            name=c.name, role=c.role, status=status, reason=reason, note=c.note
        )

    def trial(i: int) -> float:
        workload = workloads[i]
        if workload.timer == "call":
            return _self_timed(workload.call())
        return time_loops(workload.call, loops[i]) / loops[i]

    for i, contender in enumerate(contenders):
        missing = [module for module in contender.requires if not is_installed(module)]
        if missing:
            failed(i, "skipped", missing_reason(missing[0]))
            continue
        try:
            workload = contender.factory()
        except Exception as exc:
            failed(i, "error", f"preparing: {_describe(exc)}")
            continue
        workloads[i] = workload
        if workload.timer not in ("loop", "call"):
            failed(i, "error", f"an interleaved case needs loop- or call-timed workloads; "
                   f"got timer={workload.timer!r}")  # fmt: skip
            continue
        try:
            gc.collect()
            if workload.timer == "loop":
                loops[i] = calibrate(workload.call, trial_ms * 1e6)
            trial(i)  # warm-up, discarded
            trials[i] = []
        except Exception as exc:
            failed(i, "error", f"running: {_describe(exc)}")
    live = [i for i in range(len(contenders)) if i in trials]
    for r in range(repeat):
        for i in live if r % 2 == 0 else live[::-1]:
            if i in results:
                continue
            try:
                with gc_paused():
                    trials[i].append(trial(i))
            except Exception as exc:
                failed(i, "error", f"running: {_describe(exc)}")
    for i, workload in workloads.items():
        note = contenders[i].note if i in results else _note(contenders[i].note, workload)
        closing = _close(workload)
        if closing is not None and i not in results:
            failed(i, "error", closing)
        if i in results:
            continue
        c = contenders[i]
        results[i] = ContenderResult(
            name=c.name,
            role=c.role,
            status="ok",
            note=note,
            messages_per_op=workload.messages,
            bytes_per_op=workload.nbytes,
            timing=summarise(trials[i], loops.get(i, 1)),
        )
    return [results[i] for i in range(len(contenders))]


def _resolve(suites: Sequence[str | Suite] | None) -> list[Suite]:
    from kaelix.bench.suites import SUITES, load_suite

    chosen = list(SUITES) if suites is None else list(suites)
    resolved: list[Suite] = []
    for item in chosen:
        suite = load_suite(item) if isinstance(item, str) else item
        if all(suite.name != known.name for known in resolved):
            resolved.append(suite)
    return resolved


def _selected(case: Case, select: str | None) -> bool:
    return select is None or select.casefold() in case.name.casefold()


def _runnable(case: Case, peers: bool) -> tuple[Contender, ...]:
    return tuple(c for c in case.contenders if peers or c.role != "peer")


def run(
    suites: Sequence[str | Suite] | None = None,
    *,
    quick: bool = True,
    peers: bool = True,
    repeat: int | None = None,
    progress: Callable[[ProgressEvent], None] | None = None,
    trial_ms: float | None = None,
    select: str | None = None,
    size: int | None = None,
    messages: int | None = None,
) -> BenchRun:
    """Run benchmark suites and return every result with the machine it ran on.

    ``suites`` names registered suites (see ``kaelix.bench.suites.SUITES``) or passes
    `Suite` objects; None runs them all. ``quick`` (the default) uses 5 trials of about
    20 ms per contender, ``quick=False`` 15 trials of about 100 ms; ``repeat`` and
    ``trial_ms`` override those. ``peers=False`` runs kaelix (and reference lines) only.
    ``select`` keeps the cases whose name contains it (case-insensitive). ``size`` (payload
    bytes) and ``messages`` (messages per trial) are passed to the suites in `SuiteConfig`;
    suites that do not list them in `Suite.options` ignore them. ``progress`` is called with
    a `ProgressEvent` before the run, after each contender and after each case.

    The machine's memcpy bandwidth is always measured first, as the physical reference.

    >>> from kaelix.bench import run
    >>> result = run(["codec"], select="crc32c")            # doctest: +SKIP
    >>> result.case("codec", "crc32c 64 KiB").speedup("crc32c")  # doctest: +SKIP
    1.8
    """
    from kaelix.bench import _machine, _reference

    mode = QUICK if quick else FULL
    repeat_given = repeat is not None
    repeat = mode.repeat if repeat is None else repeat
    trial_ms = float(mode.trial_ms if trial_ms is None else trial_ms)
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1; got {repeat}")
    if trial_ms <= 0:
        raise ValueError(f"trial_ms must be positive; got {trial_ms}")
    for name, value in (("size", size), ("messages", messages)):
        if value is not None and (isinstance(value, bool) or value < 1):
            raise ValueError(f"{name} must be a whole number >= 1 or None; got {value!r}")

    config = SuiteConfig(quick=quick, peers=peers, size=size, messages=messages)
    resolved = _resolve(suites)
    plan: list[tuple[str, Case]] = [
        (suite.name, case)
        for suite in resolved
        for case in suite.cases(config)
        if _selected(case, select)
    ]
    if not plan:
        names = ", ".join(s.name for s in resolved) or "none"
        raise ValueError(f"No case matches select={select!r} in suites: {names}")
    reference_plan = [("reference", case) for case in _reference.memcpy_cases()]
    total = sum(len(_runnable(case, peers)) for _, case in (*reference_plan, *plan))

    def emit(event: ProgressEvent) -> None:
        if progress is not None:
            progress(event)

    started = time.perf_counter()
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    machine = _machine.collect()
    emit(ProgressEvent("start", 0, total))

    done = 0
    reference: list[CaseResult] = []
    results: list[CaseResult] = []
    for suite_name, case in (*reference_plan, *plan):
        measured: list[ContenderResult] = []
        runnable = _runnable(case, peers)
        if case.interleave:
            trials = repeat if repeat_given else max(repeat, case.min_repeat)
            measured = measure_interleaved(runnable, repeat=trials, trial_ms=trial_ms)
            for contender in runnable:
                done += 1
                emit(ProgressEvent("contender", done, total, suite_name, case.name, contender.name))
        for contender in () if case.interleave else runnable:
            measured.append(measure_contender(contender, repeat=repeat, trial_ms=trial_ms))
            done += 1
            emit(ProgressEvent("contender", done, total, suite_name, case.name, contender.name))
        result = CaseResult(
            suite=suite_name,
            case=case.name,
            throughput=case.throughput,
            contenders=tuple(measured),
            bars=check_bars(case.bars, measured, reference, paired=case.interleave),
            note=case.note,
        )
        (reference if suite_name == "reference" else results).append(result)
        emit(ProgressEvent("case", done, total, suite_name, case.name, result=result))

    return BenchRun(
        created=created,
        settings=Settings(
            mode="quick" if quick else "full",
            repeat=repeat,
            trial_ms=trial_ms,
            peers=peers,
            suites=tuple(s.name for s in resolved),
            select=select,
            size=size,
            messages=messages,
        ),
        machine=machine,
        reference=tuple(reference),
        results=tuple(results),
        duration_s=time.perf_counter() - started,
    )
