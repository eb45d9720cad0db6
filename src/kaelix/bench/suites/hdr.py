"""The hdr suite: `kaelix.HdrHistogram.record_values` recording ten million latencies from a
numpy array, beside hdrh (the pure-Python ``hdrhistogram`` package, the HdrHistogram a
Python user would pick) and numpy computing the same bucket indices and counting them with
``np.bincount``; and the numba compile time of a first call, measured apart in a fresh
process.

The data: latencies in nanoseconds, lognormal around 50 us (sigma 1: most between 10 us and
250 us, a tail into milliseconds), drawn once with a fixed seed; histograms of HdrHistogram's
usual shape (1 ns to an hour, 3 significant figures). Every factory checks its counts once
against numpy's, and kaelix's percentiles against hdrh's on the same values, before timing.

Messages per second count values recorded. hdrh records one value per Python call (about
1 us each), so it runs on the first `HdrSizes.hdrh_values` values and is compared per value;
its other way, ``np.unique`` then one ``record_value(value, count)`` per distinct value, runs
on `HdrSizes.unique_values` (fewer values repeat less, which only helps it).

Imports the public kaelix API (``kaelix.HdrHistogram``, inside the factories) and numpy;
peers inside their factories; never numba (the compile-time probe imports it in its own
process) nor kaelix's private modules.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from kaelix.bench._compile import compile_time_case
from kaelix.bench._model import Bar, Case, Contender, Suite, SuiteConfig, Workload
from kaelix.bench.suites._options import message_count

_SEED = 20_240_611
LOWEST = 1
HIGHEST = 3_600_000_000_000  # an hour in ns
FIGURES = 3
MEDIAN_NS = 50_000.0
SIGMA = 1.0
PERCENTILES = (50.0, 90.0, 99.0, 99.9, 99.99, 100.0)


@dataclass(frozen=True)
class HdrSizes:
    """How much each contender records per call.

    ``values``: kaelix and numpy. ``hdrh_values``: hdrh, one ``record_value`` per value.
    ``unique_values``: hdrh after ``np.unique``. ``probe_values``: the compile-time probe.
    """

    values: int = 10_000_000
    hdrh_values: int = 100_000
    unique_values: int = 1_000_000
    probe_values: int = 64


QUICK_SIZES = HdrSizes()
FULL_SIZES = HdrSizes(hdrh_values=300_000)


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(f"sanity check failed: {what}")


@functools.cache
def latencies(count: int, seed: int = _SEED) -> npt.NDArray[np.int64]:
    """``count`` lognormal latencies in ns (median `MEDIAN_NS`), as int64. Cached: every
    contender of a run reads the same array (or its first values). Left writeable: numba
    compiles read-only arrays apart, and the compile probe records a writeable one."""
    rng = np.random.default_rng(seed)
    values = np.exp(rng.normal(np.log(MEDIAN_NS), SIGMA, count))
    return np.minimum(values, HIGHEST).astype(np.int64)


class NumpyLayout:
    """HdrHistogram's counts index in numpy, from the layout's published formulas (unit
    magnitude ``floor(log2(lowest))``, sub-bucket half count the power of two just above
    ``10**figures``): the bucket from ``np.frexp`` (the binary exponent of ``value | mask``,
    exact below 2**53 ns, 104 days), then HdrHistogram's shifts."""

    def __init__(self, lowest: int, figures: int, length: int) -> None:
        self.unit_magnitude = int(np.floor(np.log(lowest) / np.log(2)))
        self.half_magnitude = max((2 * 10**figures - 1).bit_length(), 1) - 1
        self.half = 1 << self.half_magnitude
        self.mask = (2 * self.half - 1) << self.unit_magnitude
        self.length = length

    @classmethod
    def of(cls, histogram: Any) -> NumpyLayout:
        """The layout of a `kaelix.HdrHistogram` (through its public attributes)."""
        return cls(
            histogram.lowest_discernible_value,
            histogram.significant_figures,
            int(histogram.counts.shape[0]),
        )

    def indices(self, values: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        _, exponent = np.frexp((values | self.mask).astype(np.float64))
        bucket = exponent.astype(np.int64) - (self.unit_magnitude + self.half_magnitude + 1)
        shifted: npt.NDArray[np.int64] = values >> (bucket + self.unit_magnitude)
        indices: npt.NDArray[np.int64] = ((bucket + 1) << self.half_magnitude) + shifted - self.half
        return indices

    def counts(self, values: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        counts: npt.NDArray[np.int64] = np.bincount(self.indices(values), minlength=self.length)
        return counts


def _new_histogram() -> Any:
    import kaelix

    return kaelix.HdrHistogram(LOWEST, HIGHEST, FIGURES)


def _hdrh_histogram() -> Any:
    from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

    return HdrHistogram(LOWEST, HIGHEST, FIGURES)


def _hdrh_counts(histogram: Any) -> npt.NDArray[np.int64]:
    return np.array(histogram.counts[: histogram.counts_len], dtype=np.int64)


# ------------------------------------------------------------------------------ contenders


def _kaelix_record(sizes: HdrSizes) -> Workload:
    values = latencies(sizes.values)
    histogram = _new_histogram()
    histogram.record_values(values)  # compiles or loads the kernels
    _expect(
        np.array_equal(histogram.counts, NumpyLayout.of(histogram).counts(values)),
        "HdrHistogram.record_values counts == numpy bincount of the same indices",
    )
    try:
        theirs = _hdrh_histogram()
    except ImportError:
        pass
    else:  # same percentiles as hdrhistogram, on values hdrh records in a blink
        few = values[: min(len(values), 20_000)]
        ours = _new_histogram()
        ours.record_values(few)
        for value in few.tolist():
            theirs.record_value(value)
        _expect(
            ours.percentiles(PERCENTILES) == theirs.get_percentile_to_value_dict(PERCENTILES),
            "HdrHistogram percentiles == hdrh's",
        )
    return Workload(functools.partial(histogram.record_values, values), messages=len(values))


def _hdrh_loop(sizes: HdrSizes) -> Workload:
    values = latencies(sizes.values)[: sizes.hdrh_values]
    as_list = values.tolist()
    histogram = _hdrh_histogram()
    record = histogram.record_value

    def call() -> None:
        for value in as_list:
            record(value)

    call()
    _expect(
        np.array_equal(_hdrh_counts(histogram), NumpyLayout.of(_new_histogram()).counts(values)),
        "hdrh counts == numpy's",
    )
    return Workload(call, messages=len(as_list))


def _hdrh_unique(sizes: HdrSizes) -> Workload:
    values = latencies(sizes.values)[: sizes.unique_values]
    histogram = _hdrh_histogram()
    record = histogram.record_value

    def call() -> None:
        distinct, counts = np.unique(values, return_counts=True)
        for value, count in zip(distinct.tolist(), counts.tolist(), strict=True):
            record(value, count)

    call()
    _expect(
        np.array_equal(_hdrh_counts(histogram), NumpyLayout.of(_new_histogram()).counts(values)),
        "hdrh (np.unique) counts == numpy's",
    )
    return Workload(call, messages=len(values))


def _numpy_full(sizes: HdrSizes) -> Workload:
    values = latencies(sizes.values)
    layout = NumpyLayout.of(_new_histogram())
    reference = _new_histogram()
    reference.record_values(values)
    _expect(np.array_equal(layout.counts(values), reference.counts), "numpy counts == kaelix's")
    return Workload(functools.partial(layout.counts, values), messages=len(values))


def _numpy_bincount(sizes: HdrSizes) -> Workload:
    values = latencies(sizes.values)
    layout = NumpyLayout.of(_new_histogram())
    indices = layout.indices(values)
    length = layout.length
    _expect(int(np.bincount(indices, minlength=length).sum()) == len(values), "bincount total")
    return Workload(functools.partial(np.bincount, indices, minlength=length), messages=len(values))


# ------------------------------------------------------------------------ compile time

PROBED = ("record_values", "encode + decode")


def compile_probe(what: str, values: int = 64) -> dict[str, int]:
    """Run in a fresh process (see `_probe`): import numba and kaelix (not counted), then
    time the first and the second call of ``what`` on ``values`` values. Returns
    nanoseconds."""
    import numba  # noqa: F401  (its import is not compile time)

    import kaelix

    data = np.arange(1, values + 1, dtype=np.int64)
    histogram = kaelix.HdrHistogram(LOWEST, HIGHEST, FIGURES)
    calls: dict[str, Callable[[], object]] = {
        "record_values": lambda: histogram.record_values(data),
        "encode + decode": lambda: kaelix.HdrHistogram.decode(histogram.encode()),
    }
    call = calls[what]
    if what != "record_values":
        histogram.record(values)  # something to encode, without compiling the bulk kernels
    started = time.perf_counter_ns()
    call()
    first = time.perf_counter_ns()
    call()
    second = time.perf_counter_ns()
    return {"first_call_ns": first - started, "second_call_ns": second - first}


# ----------------------------------------------------------------------------------- suite

_RATE = Bar("\u2265 100 M values/s", "min_messages_per_s", 100e6)
HDRH = "hdrh record_value"
HDRH_UNIQUE = "hdrh np.unique + record_value(v, n)"


def cases(config: SuiteConfig, sizes: HdrSizes | None = None) -> tuple[Case, ...]:
    """The hdr cases. ``sizes`` defaults to `QUICK_SIZES` in quick mode and `FULL_SIZES` in
    full mode (the tests pass tiny ones).

    ``config.messages`` (``--messages``) sets the values kaelix and numpy record per call
    (the N of the case name); hdrh records at most its own counts, fewer when N is smaller.
    There is no payload, so ``--size`` does not apply."""
    if sizes is None:
        sizes = QUICK_SIZES if config.quick else FULL_SIZES
    values = message_count(config, 0, "hdr")
    if values:
        sizes = replace(
            sizes,
            values=values,
            hdrh_values=min(sizes.hdrh_values, values),
            unique_values=min(sizes.unique_values, values),
        )
    shape = (
        f"HdrHistogram({LOWEST}, {HIGHEST:_}, {FIGURES}); {sizes.values:,} int64 latencies, "
        f"lognormal around {MEDIAN_NS / 1000:g} us (sigma {SIGMA:g}), prepared untimed; "
        "msg/s counts values recorded"
    )
    probe = (
        f"a fresh `python -c` process, NUMBA_CACHE_DIR an empty temporary directory; numba "
        f"and kaelix imported first (not counted); the first call on {sizes.probe_values} "
        "values minus the second"
    )
    return (
        Case(
            f"bulk record {sizes.values:,} values",
            (
                Contender(
                    "kaelix",
                    lambda: _kaelix_record(sizes),
                    role="kaelix",
                    note=f"HdrHistogram.record_values(array) into one histogram, range check of "
                    f"the whole array included; lognormal latencies around "
                    f"{MEDIAN_NS / 1000:g} us; msg/s counts values recorded",
                ),
                Contender(
                    HDRH,
                    lambda: _hdrh_loop(sizes),
                    requires=("hdrh",),
                    note=f"pure Python: a loop of histogram.record_value(v) over the first "
                    f"{sizes.hdrh_values:,} values as a Python list (prepared untimed); "
                    "compared per value",
                ),
                Contender(
                    HDRH_UNIQUE,
                    lambda: _hdrh_unique(sizes),
                    requires=("hdrh",),
                    note=f"np.unique(values, return_counts=True), then record_value(value, "
                    f"count) per distinct value, over the first {sizes.unique_values:,} "
                    "values (fewer values repeat less: kinder to it); compared per value",
                ),
                Contender(
                    "numpy frexp + bincount",
                    lambda: _numpy_full(sizes),
                    role="reference",
                    note="the same counts in numpy: bucket from np.frexp(value | mask) (exact "
                    "below 2**53), the counts index by shifts, np.bincount; no range check",
                ),
                Contender(
                    "numpy bincount (indices given)",
                    lambda: _numpy_bincount(sizes),
                    role="reference",
                    note="np.bincount of the counts indices computed untimed: the counting "
                    "alone, no index arithmetic, no range check",
                ),
            ),
            bars=(_RATE,),
            note=shape,
        ),
        compile_time_case(
            __name__,
            "record_values",
            "encode + decode",
            sizes.probe_values,
            probe,
            "the rates above are",
        ),
    )


SUITE = Suite(
    name="hdr",
    description="HdrHistogram.record_values from numpy vs hdrh (pure Python) and numpy "
    "bincount, and numba compile time",
    cases=cases,
    options=("messages",),
)
