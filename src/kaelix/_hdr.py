"""HdrHistogram: Gil Tene's high dynamic range histogram, counts-compatible with HdrHistogram
(Java, C, and the ``hdrhistogram`` Python package), with bulk recording from numpy.

The bucket layout, counts indexing and V2 interchange format are HdrHistogram's, and the
percentile rule is hdrh's, so counts and percentiles agree exactly with ``hdrh`` built with
the same parameters, and encodings cross both ways. Bulk recording and the counts codec run
in numba kernels (``_hdr_kernels``, imported on first use and cached on disk); single
values, queries and merges are numpy and plain Python.

Imports numpy and ``kaelix._codec`` (for KaelixError, so that ``kaelix.errors`` can
re-export this module's errors without a cycle); numba only through ``_hdr_kernels``, never
at ``import kaelix``."""

from __future__ import annotations

import base64
import binascii
import math
import numbers
import operator
import struct
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from kaelix._codec import KaelixError

_INT64_MAX = 2**63 - 1

# The V2 format (HdrHistogram's encodeIntoCompressedByteBuffer): big-endian throughout.
_COMPRESSED_COOKIE = 0x1C849314  # V2 compressed-encoding cookie base 0x1c849304 | 0x10
_ENCODING_COOKIE = 0x1C849313  # V2 encoding cookie base 0x1c849303 | 0x10
_COOKIE_BASE_MASK = ~0xF0  # the low nibble of the cookie's last byte names word size: any
_OUTER = struct.Struct(">ii")  # cookie, length of the zlib stream
_PAYLOAD = struct.Struct(">iiiiqqd")  # cookie, counts bytes, normalizing index offset,
# significant figures, lowest discernible, highest trackable, integer-to-double ratio
_MAX_TOKEN_BYTES = 9  # ZigZag LEB128 of an int64: at most 9 bytes

DICT_SCHEMA = "kaelix.hdr/1"
"""The ``"schema"`` tag of `HdrHistogram.to_dict`."""

DEFAULT_PERCENTILES = (50.0, 90.0, 99.0, 99.9, 99.99, 100.0)


class ValueOutOfRange(KaelixError, ValueError):
    """A value that a histogram cannot record: negative, or above its highest recordable
    value. Nothing of the call that raised it was recorded.

    Attributes:
        value: the offending value (the first one, in array order, for bulk calls).
        position: its index in the array given, or None for a single value.
        highest: the histogram's highest recordable value.
    """

    def __init__(self, message: str, value: int, position: int | None, highest: int) -> None:
        super().__init__(message)
        self.value = value
        self.position = position
        self.highest = highest

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.value, self.position, self.highest))


class HdrDecodeError(KaelixError, ValueError):
    """Bytes that are not an HdrHistogram V2 compressed encoding (the ``HISTFAAA...`` form).

    Attributes:
        reason: one of `REASONS`: ``base64`` (not base64 text), ``truncated`` (cut short),
            ``bad_cookie`` (not a V2 histogram encoding), ``length`` (a length field disagrees
            with the data), ``zlib`` (the compressed part does not inflate),
            ``unsupported`` (a V2 feature kaelix does not read: a normalizing index offset),
            ``invalid_header`` (parameters no histogram can have), ``invalid_counts`` (counts
            past the end of the histogram's counts array, or adding up past 2**63 - 1).
    """

    REASONS = (
        "base64",
        "truncated",
        "bad_cookie",
        "length",
        "zlib",
        "unsupported",
        "invalid_header",
        "invalid_counts",
    )

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.reason))


def _kernels() -> Any:
    """The numba kernels, imported (and numba with them) on first use."""
    from kaelix import _hdr_kernels as kernels

    return kernels


def _integer(value: object, what: str) -> int:
    """value as a Python int (ints and numpy integers; not bool, not float)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be an int, got {type(value).__name__} {value!r}")
    return operator.index(value)


def _percentile(value: object) -> int | float:
    """A percentile in [0, 100], as an int or float (numpy scalars converted)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"percentile must be a number, got {type(value).__name__} {value!r}")
    p: int | float = operator.index(value) if isinstance(value, numbers.Integral) else float(value)
    if not 0 <= p <= 100:  # NaN fails too
        raise ValueError(f"percentile must be between 0 and 100, got {value!r}")
    return p


class HdrHistogram:
    """A high dynamic range histogram of integer values (latencies in ns, sizes in bytes).

    Values from 0 up to about ``highest_trackable_value`` are counted in buckets whose width
    keeps ``significant_figures`` decimal digits of precision: with 3, any value is known to
    within 0.1 %, from ``lowest_discernible_value`` up. The layout (buckets, sub-buckets,
    counts array) is HdrHistogram's, so the counts agree exactly with the Java and C
    libraries and ``hdrh.histogram.HdrHistogram`` (the ``hdrhistogram`` package) built with
    the same three parameters, and the percentiles with hdrh's (Java's
    ``getValueAtPercentile`` rounds the rank up where hdrh rounds it to nearest, so the two
    can differ by one rank).

    Record one value with `record`, millions from a numpy array with `record_values` (a numba
    kernel, hundreds of millions of values a second), and correct for coordinated omission
    with ``expected_interval`` or `record_corrected_values`. Query `value_at_percentile`,
    `percentiles`, `min`, `max`, `mean`, `stddev`; merge with `add`; exchange with other
    HdrHistogram implementations through `encode` / `decode` (the base64 ``HISTFAAA...``
    form), or as JSON through `to_dict` / `from_dict`.

    Not thread-safe: give each thread its own histogram and `add` them (the kernels release
    the GIL, so threads recording into their own histograms run in parallel).

    Args:
        lowest_discernible_value: the smallest value told apart from 0 (>= 1). It is rounded
            down to a power of 2, as in HdrHistogram: values below it share the first bucket.
        highest_trackable_value: the largest value to track (>= 2 * lowest_discernible_value,
            <= 2**63 - 1). The layout rounds it up: `highest_recordable_value` is the largest
            value actually accepted.
        significant_figures: decimal digits of precision kept, 1 to 5. Memory grows about
            tenfold per digit: 256 KiB of counts for 3 digits from 1 to an hour in ns.

    Raises:
        TypeError: a parameter is not an int.
        ValueError: a parameter is out of range.

    >>> import numpy as np
    >>> h = HdrHistogram(1, 3_600_000_000_000, 3)
    >>> h.record_values(np.array([1_000, 2_000, 3_000, 40_000]))
    >>> h.total_count, h.value_at_percentile(50), h.max
    (4, 2000, 40031)
    """

    __slots__ = (
        "_bucket_count",
        "_counts",
        "_half",
        "_half_magnitude",
        "_highest",
        "_highest_recordable",
        "_lowest",
        "_mask",
        "_max",
        "_significant_figures",
        "_total",
        "_unit_magnitude",
    )
    _bucket_count: int
    _counts: npt.NDArray[np.int64]
    _half: int
    _half_magnitude: int
    _highest: int
    _highest_recordable: int
    _lowest: int
    _mask: int
    _max: int
    _significant_figures: int
    _total: int
    _unit_magnitude: int

    def __init__(
        self,
        lowest_discernible_value: int = 1,
        highest_trackable_value: int = 3_600_000_000_000,
        significant_figures: int = 3,
    ) -> None:
        lowest = _integer(lowest_discernible_value, "lowest_discernible_value")
        highest = _integer(highest_trackable_value, "highest_trackable_value")
        figures = _integer(significant_figures, "significant_figures")
        if lowest < 1:
            raise ValueError(f"lowest_discernible_value must be >= 1, got {lowest}")
        if not 2 * lowest <= highest <= _INT64_MAX:
            raise ValueError(
                f"highest_trackable_value must be between 2 * lowest_discernible_value "
                f"({2 * lowest}) and 2**63 - 1, got {highest}"
            )
        if not 1 <= figures <= 5:
            raise ValueError(f"significant_figures must be 1 to 5, got {figures}")
        # As HdrHistogram (Java, C and hdrh) computes it, floating point included: an exact
        # log2 would disagree with them for some lowest values just below a power of two.
        unit_magnitude = math.floor(math.log(lowest) / math.log(2))
        # ceil(log2(2 * 10**figures)), exactly (2 * 10**figures is never a power of two)
        sub_bucket_count_magnitude = (2 * 10**figures - 1).bit_length()
        half_magnitude = max(sub_bucket_count_magnitude, 1) - 1
        if unit_magnitude + half_magnitude > 61:
            raise ValueError(
                f"significant_figures={figures} leaves no room above "
                f"lowest_discernible_value={lowest} in 64-bit values: lower either"
            )
        sub_bucket_count = 1 << (half_magnitude + 1)
        self._lowest = lowest
        self._highest = highest
        self._significant_figures = figures
        self._unit_magnitude = unit_magnitude
        self._half_magnitude = half_magnitude
        self._half = sub_bucket_count // 2
        self._mask = (sub_bucket_count - 1) << unit_magnitude
        self._bucket_count = _buckets_needed(highest, sub_bucket_count, unit_magnitude)
        counts_len = (self._bucket_count + 1) * self._half
        self._counts = np.zeros(counts_len, np.int64)
        top = self._value_from_index(counts_len - 1)
        self._highest_recordable = min(self._highest_equivalent(top), _INT64_MAX)
        self._total = 0
        self._max = 0  # the largest value recorded, as HdrHistogram tracks it (0: none)

    # ------------------------------------------------------------------------- the layout

    def _shift(self, value: int) -> int:
        """bucket index + unit magnitude: the log2 of the width of value's sub-bucket."""
        return (value | self._mask).bit_length() - self._half_magnitude - 1

    def _index(self, value: int) -> int:
        """HdrHistogram's countsArrayIndex."""
        shift = self._shift(value)
        bucket = shift - self._unit_magnitude
        return ((bucket + 1) << self._half_magnitude) + (value >> shift) - self._half

    def _value_from_index(self, index: int) -> int:
        bucket = (index >> self._half_magnitude) - 1
        sub = (index & (self._half - 1)) + self._half
        if bucket < 0:
            sub -= self._half
            bucket = 0
        return sub << (bucket + self._unit_magnitude)

    def _lowest_equivalent(self, value: int) -> int:
        shift = self._shift(value)
        return (value >> shift) << shift

    def _highest_equivalent(self, value: int) -> int:
        # sub-bucket indices stay below sub_bucket_count: the range is the sub-bucket's width
        shift = self._shift(value)
        return ((value >> shift) << shift) + (1 << shift) - 1

    def _same_layout(self, other: HdrHistogram) -> bool:
        return (
            self._bucket_count == other._bucket_count
            and self._half_magnitude == other._half_magnitude
            and self._unit_magnitude == other._unit_magnitude
        )

    def _out_of_range(self, value: int, position: int | None) -> ValueOutOfRange:
        where = "" if position is None else f" at position {position}"
        if value < 0:
            fix = "a histogram counts values >= 0"
        else:
            fix = f"make highest_trackable_value at least {value}"
        return ValueOutOfRange(
            f"value {value}{where} is out of range: this histogram records 0 to "
            f"{self._highest_recordable} ({fix}); nothing of this call was recorded",
            value,
            position,
            self._highest_recordable,
        )

    # ---------------------------------------------------------------------------- recording

    def record(self, value: int, count: int = 1, *, expected_interval: int | None = None) -> None:
        """Records ``value``, ``count`` times.

        With ``expected_interval``, corrects for coordinated omission as HdrHistogram's
        ``recordValueWithExpectedInterval`` does: a value that took longer than the interval
        at which values were expected stands for the values that were not sampled meanwhile,
        so ``value - k * expected_interval`` is also recorded (``count`` times) for k = 1, 2,
        ... while it is at least ``expected_interval``.

        Args:
            value: the value, from 0 to `highest_recordable_value`.
            count: how many times to record it (>= 1).
            expected_interval: the interval between values when nothing stalls (>= 1), or
                None for no correction.

        Raises:
            ValueOutOfRange: ``value`` is negative or above `highest_recordable_value`
                (nothing is recorded).
            TypeError: an argument is not an int.
            ValueError: ``count`` or ``expected_interval`` is below 1.
        """
        value = _integer(value, "value")
        count = _integer(count, "count")
        if not 1 <= count <= _INT64_MAX:
            raise ValueError(f"count must be 1 to 2**63 - 1, got {count}")
        if not 0 <= value <= self._highest_recordable:
            raise self._out_of_range(value, None)
        if expected_interval is None:
            self._counts[self._index(value)] += count
            self._total += count
        else:
            self._total += self._record_corrected(value, count, _interval(expected_interval))
        if value > self._max:
            self._max = value

    def _record_corrected(self, value: int, count: int, interval: int) -> int:
        """The kernel's record_corrected for one value, in Python: whole sub-buckets of the
        progression value - k * interval at a time. Returns the counts added."""
        counts = self._counts
        counts[self._index(value)] += count
        added = count
        if value - interval < interval:
            return added
        lowest = interval + value % interval
        missing = value - interval
        while missing >= lowest:
            start = max(self._lowest_equivalent(missing), lowest)
            terms = (missing - start) // interval + 1
            counts[self._index(missing)] += terms * count
            added += terms * count
            missing -= terms * interval
        return added

    def _checked_values(self, values: npt.ArrayLike) -> tuple[npt.NDArray[np.int64], int]:
        """values as a C-contiguous int64 array, all in range (checked before anything is
        recorded), and the largest of them; raises ValueOutOfRange naming the first value
        that is out of range."""
        array = np.asarray(values)
        if array.ndim != 1:
            raise ValueError(f"values must be a 1-D array, got shape {array.shape}")
        if array.size == 0:
            return np.empty(0, np.int64), 0
        if not np.issubdtype(array.dtype, np.integer):
            raise TypeError(f"values must hold integers, got dtype {array.dtype}")
        if array.dtype.kind == "u" and array.dtype.itemsize == 8:
            too_big = array > self._highest_recordable
            if too_big.any():
                position = int(np.flatnonzero(too_big)[0])
                raise self._out_of_range(int(array[position]), position)
        values64 = np.ascontiguousarray(array, dtype=np.int64)
        lo, hi = _kernels().min_max(values64)
        if lo < 0 or hi > self._highest_recordable:
            bad = (values64 < 0) | (values64 > self._highest_recordable)
            position = int(np.flatnonzero(bad)[0])
            raise self._out_of_range(int(values64[position]), position)
        return values64, int(hi)

    def record_values(self, values: npt.ArrayLike) -> None:
        """Records every value of a 1-D integer array once (a numba kernel: compiled on the
        first call, then cached on disk).

        The whole array is checked first: if any value is out of range, nothing is recorded.
        int64 arrays are read in place; other integer dtypes are converted first.

        Args:
            values: a 1-D array (or sequence) of integers, each from 0 to
                `highest_recordable_value`.

        Raises:
            ValueOutOfRange: a value is negative or too large; ``.position`` is the first
                such value's index. Nothing is recorded.
            TypeError: ``values`` does not hold integers.
            ValueError: ``values`` is not 1-D.
        """
        array, largest = self._checked_values(values)
        if array.size:
            _kernels().record(
                array, self._counts, self._unit_magnitude, self._half_magnitude, self._mask
            )
            self._total += int(array.size)
            self._max = max(self._max, largest)

    def record_corrected_values(self, values: npt.ArrayLike, expected_interval: int) -> None:
        """`record` with ``expected_interval`` for every value of a 1-D integer array: each
        value, and for each one ``value - k * expected_interval`` for k = 1, 2, ... while it
        is at least ``expected_interval`` (HdrHistogram's coordinated-omission correction).

        The missing values are added a sub-bucket at a time, so a long stall costs as much as
        the buckets it spans, not one step per missing value.

        Args:
            values: a 1-D array of integers, each from 0 to `highest_recordable_value`.
            expected_interval: the interval between values when nothing stalls (>= 1).

        Raises:
            ValueOutOfRange: a value is out of range (nothing is recorded).
            TypeError: ``values`` does not hold integers, or the interval is not an int.
            ValueError: ``values`` is not 1-D, or ``expected_interval`` < 1.
        """
        interval = _interval(expected_interval)
        array, largest = self._checked_values(values)
        if array.size:
            added = _kernels().record_corrected(
                array,
                self._counts,
                self._unit_magnitude,
                self._half_magnitude,
                self._mask,
                interval,
            )
            self._total += int(added)
            self._max = max(self._max, largest)

    # ------------------------------------------------------------------------------ queries

    @property
    def lowest_discernible_value(self) -> int:
        """The ``lowest_discernible_value`` the histogram was made with."""
        return self._lowest

    @property
    def highest_trackable_value(self) -> int:
        """The ``highest_trackable_value`` the histogram was made with."""
        return self._highest

    @property
    def significant_figures(self) -> int:
        """The ``significant_figures`` the histogram was made with."""
        return self._significant_figures

    @property
    def highest_recordable_value(self) -> int:
        """The largest value the histogram accepts: its layout's last bucket ends at or
        above `highest_trackable_value` (capped at 2**63 - 1)."""
        return self._highest_recordable

    @property
    def total_count(self) -> int:
        """How many values were recorded (corrections included)."""
        return self._total

    @property
    def counts(self) -> npt.NDArray[np.int64]:
        """A copy of the counts array, indexed as HdrHistogram's (``counts[i]`` counts the
        values equivalent to `value_from_index` ``(i)``)."""
        return np.array(self._counts, copy=True)

    def value_from_index(self, index: int) -> int:
        """The lowest value counted at ``index`` of `counts`.

        Raises:
            IndexError: ``index`` is outside the counts array.
        """
        index = _integer(index, "index")
        if not 0 <= index < self._counts.shape[0]:
            raise IndexError(f"index must be 0 to {self._counts.shape[0] - 1}, got {index}")
        return self._value_from_index(index)

    def _query_value(self, value: object) -> int:
        v = _integer(value, "value")
        if not 0 <= v <= _INT64_MAX:
            raise ValueError(f"value must be 0 to 2**63 - 1, got {v}")
        return v

    def lowest_equivalent_value(self, value: int) -> int:
        """The smallest value counted in the same bucket as ``value``."""
        return self._lowest_equivalent(self._query_value(value))

    def highest_equivalent_value(self, value: int) -> int:
        """The largest value counted in the same bucket as ``value`` (values up to it are
        indistinguishable from ``value`` at this precision)."""
        return self._highest_equivalent(self._query_value(value))

    def count_at_value(self, value: int) -> int:
        """How many recorded values share ``value``'s bucket.

        Raises:
            ValueOutOfRange: ``value`` is outside the histogram's range.
        """
        v = _integer(value, "value")
        if not 0 <= v <= self._highest_recordable:
            raise self._out_of_range(v, None)
        return int(self._counts[self._index(v)])

    @property
    def min(self) -> int:
        """The smallest recorded value, to the histogram's precision (its bucket's lowest
        value), as HdrHistogram's ``getMinValue``: 0 when empty, or when a value below the
        first unit (``lowest_discernible_value`` rounded down to a power of 2) was recorded."""
        if self._total == 0 or self._counts[0] > 0:
            return 0
        return self._value_from_index(int(np.argmax(self._counts != 0)))

    @property
    def max(self) -> int:
        """The largest recorded value, to the histogram's precision (its bucket's highest
        value; 0 when empty), as HdrHistogram's ``getMaxValue``."""
        return 0 if self._max == 0 else self._highest_equivalent(self._max)

    def _recorded(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """The non-zero counts and the median equivalent value of each one's bucket (the
        value HdrHistogram's mean and standard deviation weigh)."""
        indices = np.flatnonzero(self._counts)
        bucket = (indices >> self._half_magnitude) - 1
        sub = (indices & (self._half - 1)) + self._half
        first = bucket < 0
        sub[first] -= self._half
        bucket[first] = 0
        shift = bucket + self._unit_magnitude
        medians = (sub << shift) + ((np.int64(1) << shift) >> 1)
        return self._counts[indices], medians

    def _mean(self, counts: npt.NDArray[np.int64], medians: npt.NDArray[np.int64]) -> float:
        if self._total * int(medians[-1]) <= _INT64_MAX:  # the int64 dot product is exact
            total = int(np.dot(counts, medians))
        else:
            total = sum(c * m for c, m in zip(counts.tolist(), medians.tolist(), strict=True))
        return float(total) / self._total

    @property
    def mean(self) -> float:
        """The mean of the recorded values, each taken at its bucket's median equivalent
        value (HdrHistogram's ``getMean``; exactly ``hdrh``'s). 0.0 when empty."""
        if self._total == 0:
            return 0.0
        return self._mean(*self._recorded())

    @property
    def stddev(self) -> float:
        """The population standard deviation of the recorded values at their buckets' median
        equivalent values (HdrHistogram's ``getStdDeviation``). 0.0 when empty."""
        if self._total == 0:
            return 0.0
        counts, medians = self._recorded()
        deviation = medians.astype(np.float64) - self._mean(counts, medians)
        spread = float(np.dot(deviation * deviation, counts.astype(np.float64)))
        return math.sqrt(spread / self._total)

    def _target(self, percentile: int | float) -> int:
        # hdrh's get_target_count_at_percentile, kept within the total for huge totals
        return min(max(int(percentile * self._total / 100 + 0.5), 1), max(self._total, 1))

    def _value_at(self, percentile: int | float, cumulative: npt.NDArray[np.int64]) -> int:
        if self._total == 0:
            return 0
        index = int(np.searchsorted(cumulative, self._target(percentile), side="left"))
        value = self._value_from_index(index)
        return self._highest_equivalent(value) if percentile else value

    def value_at_percentile(self, percentile: float) -> int:
        """The value at or below which ``percentile`` % of the recorded values fall, to the
        histogram's precision: the highest equivalent value of the bucket holding the value
        of rank ``max(1, int(percentile * total_count / 100 + 0.5))`` (the lowest equivalent
        value for percentile 0), exactly as ``hdrh``'s ``get_value_at_percentile``. 0 when
        empty.

        Args:
            percentile: from 0 to 100 (100 is the maximum).

        Raises:
            ValueError: ``percentile`` is outside [0, 100].
            TypeError: it is not a number.
        """
        p = _percentile(percentile)
        return self._value_at(p, np.cumsum(self._counts))

    def percentiles(self, ps: Iterable[float] = DEFAULT_PERCENTILES) -> dict[float, int]:
        """`value_at_percentile` for each of ``ps`` in one pass.

        Args:
            ps: percentiles from 0 to 100.

        Returns:
            A dict from each percentile (as given) to its value.

        Raises:
            ValueError: a percentile is outside [0, 100].
        """
        wanted = [(given, _percentile(given)) for given in ps]
        if self._total == 0:
            return {given: 0 for given, _ in wanted}
        cumulative = np.cumsum(self._counts)
        return {given: self._value_at(p, cumulative) for given, p in wanted}

    # ------------------------------------------------------------------- whole histograms

    def add(self, other: HdrHistogram) -> None:
        """Adds the counts of ``other`` to this histogram (HdrHistogram's ``add``).

        Histograms of the same layout add their counts arrays directly; otherwise each of
        ``other``'s buckets is recorded at its lowest value, with its count.

        Raises:
            TypeError: ``other`` is not an `HdrHistogram`.
            ValueOutOfRange: ``other``'s largest value does not fit this histogram (nothing
                is added).
        """
        if not isinstance(other, HdrHistogram):
            raise TypeError(f"can only add an HdrHistogram, got {type(other).__name__}")
        if other._total == 0:
            return
        if self._same_layout(other):
            self._counts += other._counts
            self._total += other._total
            self._max = max(self._max, other._max)
            return
        if other.max > self._highest_recordable:
            raise self._out_of_range(other.max, None)
        for index in np.flatnonzero(other._counts).tolist():
            self.record(other._value_from_index(index), int(other._counts[index]))

    def reset(self) -> None:
        """Forgets every recorded value (the parameters stay)."""
        self._counts[:] = 0
        self._total = 0
        self._max = 0

    def copy(self) -> HdrHistogram:
        """A new histogram with the same parameters and counts."""
        twin = HdrHistogram.__new__(HdrHistogram)
        for name in HdrHistogram.__slots__:
            setattr(twin, name, getattr(self, name))
        twin._counts = self._counts.copy()
        return twin

    def __copy__(self) -> HdrHistogram:
        return self.copy()

    def __deepcopy__(self, memo: dict[int, Any]) -> HdrHistogram:
        return self.copy()

    def __eq__(self, other: object) -> bool:
        """Equal when made with the same parameters and holding the same counts."""
        if not isinstance(other, HdrHistogram):
            return NotImplemented
        return (
            self._lowest == other._lowest
            and self._highest == other._highest
            and self._significant_figures == other._significant_figures
            and self._total == other._total
            and bool(np.array_equal(self._counts, other._counts))
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return (
            f"<HdrHistogram lowest_discernible_value={self._lowest} "
            f"highest_trackable_value={self._highest} "
            f"significant_figures={self._significant_figures} total_count={self._total}>"
        )

    def __getstate__(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in HdrHistogram.__slots__}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        for name in HdrHistogram.__slots__:
            setattr(self, name, state[name])

    # ---------------------------------------------------------------------- interchange

    def encode(self) -> bytes:
        """The histogram in HdrHistogram's V2 compressed format, base64-encoded
        (``b"HISTFAAA..."``), as Java's ``encodeIntoCompressedByteBuffer`` writes it: what
        ``hdrh.histogram.HdrHistogram.decode``, Java's ``decodeFromCompressedByteBuffer``
        and HdrHistogram_c read. Counts up to the last non-zero one are written; a run of
        zero counts is one token, and a single zero count is the token 0 as in Java (``hdrh``
        writes a run of one instead, so its bytes can differ while the counts agree).

        Returns:
            ASCII base64 bytes.
        """
        nonzero = np.flatnonzero(self._counts)
        limit = int(nonzero[-1]) + 1 if nonzero.size else 0
        out = np.empty(_MAX_TOKEN_BYTES * limit, np.uint8)
        size = int(_kernels().encode_counts(self._counts, limit, out)) if limit else 0
        payload = _PAYLOAD.pack(
            _ENCODING_COOKIE,
            size,
            0,
            self._significant_figures,
            self._lowest,
            self._highest,
            1.0,
        )
        compressed = zlib.compress(payload + out[:size].tobytes())
        return base64.b64encode(_OUTER.pack(_COMPRESSED_COOKIE, len(compressed)) + compressed)

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview | str) -> HdrHistogram:
        """A histogram from HdrHistogram's V2 compressed format: the base64 text `encode`,
        ``hdrh``'s ``encode`` and Java's ``HistogramLogWriter`` write, or the same bytes
        before base64.

        The parameters come from the encoding; min and max are established from the counts
        as HdrHistogram does when decoding. Untrusted input is safe: every malformed input
        raises `HdrDecodeError`, and the output never exceeds the counts array its header
        declares.

        Args:
            data: base64 text (str or ASCII bytes) or the raw compressed encoding.

        Raises:
            HdrDecodeError: ``data`` is not a V2 histogram encoding (``.reason`` says why).
            TypeError: ``data`` is not bytes-like or str.
        """
        compressed = _unwrap(data)
        inflater = zlib.decompressobj()
        try:
            head = inflater.decompress(compressed, _PAYLOAD.size)
        except zlib.error as error:
            raise HdrDecodeError(
                f"the compressed payload does not inflate: {error}", "zlib"
            ) from None
        if len(head) < _PAYLOAD.size:
            raise HdrDecodeError(
                f"the payload holds {len(head)} bytes, less than its {_PAYLOAD.size}-byte header",
                "truncated",
            )
        cookie, size, offset, figures, lowest, highest, _ratio = _PAYLOAD.unpack(head)
        if cookie & _COOKIE_BASE_MASK != _ENCODING_COOKIE & _COOKIE_BASE_MASK:
            raise HdrDecodeError(
                f"payload cookie {cookie & 0xFFFFFFFF:#010x} is not the V2 encoding cookie "
                f"{_ENCODING_COOKIE:#010x}",
                "bad_cookie",
            )
        if offset != 0:
            raise HdrDecodeError(
                f"normalizing index offset {offset}: shifted histograms are not supported",
                "unsupported",
            )
        try:
            histogram = cls(lowest, highest, figures)
        except (TypeError, ValueError) as error:
            raise HdrDecodeError(
                f"invalid histogram parameters: {error}", "invalid_header"
            ) from None
        counts_len = histogram._counts.shape[0]
        if not 0 <= size <= _MAX_TOKEN_BYTES * counts_len:
            raise HdrDecodeError(
                f"the counts take {size} bytes: more than {counts_len} counts can take "
                f"({_MAX_TOKEN_BYTES * counts_len})",
                "length",
            )
        try:
            body = inflater.decompress(inflater.unconsumed_tail, size) if size else b""
        except zlib.error as error:
            raise HdrDecodeError(
                f"the compressed payload does not inflate: {error}", "zlib"
            ) from None
        if len(body) < size:
            raise HdrDecodeError(
                f"the counts hold {len(body)} bytes, their header says {size}", "truncated"
            )
        limit = histogram._index(histogram._highest_recordable) + 1
        k = _kernels()
        status, where = k.decode_counts(np.frombuffer(body, np.uint8), histogram._counts, limit)
        if status == k.TRUNCATED:
            raise HdrDecodeError(f"the count at counts byte {where} is cut short", "truncated")
        if status != k.DECODED:
            raise HdrDecodeError(
                f"the counts at counts byte {where} go past the histogram's {limit} counts",
                "invalid_counts",
            )
        try:
            histogram._establish()
        except ValueError as error:
            raise HdrDecodeError(str(error), "invalid_counts") from None
        return histogram

    def _establish(self) -> None:
        """Total and max from the counts alone (after decoding): as HdrHistogram's
        establishInternalTackingValues, max is the highest equivalent value of the last
        non-zero bucket. Raises ValueError when the counts add up past int64."""
        if float(self._counts.sum(dtype=np.float64)) >= 2.0**63:
            raise ValueError("the counts add up to more than 2**63 - 1")
        self._total = int(self._counts.sum())
        nonzero = np.flatnonzero(self._counts)
        self._max = (
            self._highest_equivalent(self._value_from_index(int(nonzero[-1])))
            if nonzero.size
            else 0
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the parameters, the totals, and each non-empty bucket as
        ``[lowest equivalent value, count]`` in value order. `from_dict` reads it back.

        ``max_value`` is the largest value recorded as the histogram tracks it (`max` is its
        bucket's highest value).
        """
        nonzero = np.flatnonzero(self._counts).tolist()
        return {
            "schema": DICT_SCHEMA,
            "lowest_discernible_value": self._lowest,
            "highest_trackable_value": self._highest,
            "significant_figures": self._significant_figures,
            "total_count": self._total,
            "max_value": self._max,
            "counts": [[self._value_from_index(i), int(self._counts[i])] for i in nonzero],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HdrHistogram:
        """The histogram that `to_dict` described.

        Raises:
            ValueError: a key is missing, the schema is another, a count is below 1, a value
                is out of range, or ``total_count`` / ``max_value`` disagree with the counts.
            TypeError: a field has the wrong type.
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"from_dict takes a mapping, got {type(data).__name__}")
        schema = data.get("schema", DICT_SCHEMA)
        if schema != DICT_SCHEMA:
            raise ValueError(f"schema must be {DICT_SCHEMA!r}, got {schema!r}")
        missing = [
            key
            for key in (
                "lowest_discernible_value",
                "highest_trackable_value",
                "significant_figures",
                "counts",
            )
            if key not in data
        ]
        if missing:
            raise ValueError(f"from_dict needs the keys {missing}")
        histogram = cls(
            data["lowest_discernible_value"],
            data["highest_trackable_value"],
            data["significant_figures"],
        )
        pairs = data["counts"]
        if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Iterable):
            raise TypeError("counts must be a list of [value, count] pairs")
        for position, pair in enumerate(pairs):
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise TypeError(f"counts[{position}] must be a [value, count] pair, got {pair!r}")
            value = _integer(pair[0], f"counts[{position}][0]")
            count = _integer(pair[1], f"counts[{position}][1]")
            if count < 1:
                raise ValueError(f"counts[{position}] has count {count}: counts are >= 1")
            if not 0 <= value <= histogram._highest_recordable:
                raise histogram._out_of_range(value, position)
            index = histogram._index(value)
            if count > _INT64_MAX - int(histogram._counts[index]):
                raise ValueError(f"counts[{position}]: the count passes 2**63 - 1")
            histogram._counts[index] += count
        histogram._establish()
        if "total_count" in data:
            total = _integer(data["total_count"], "total_count")
            if total != histogram._total:
                raise ValueError(
                    f"total_count is {total} but the counts add up to {histogram._total}"
                )
        if "max_value" in data:
            largest = _integer(data["max_value"], "max_value")
            if histogram._total == 0:
                fits = largest == 0
            else:
                top = int(np.flatnonzero(histogram._counts)[-1])
                fits = 0 <= largest <= histogram._highest_recordable
                fits = fits and histogram._index(largest) == top
            if not fits:
                raise ValueError(f"max_value {largest} is not in the last non-empty bucket")
            histogram._max = largest
        return histogram


def _buckets_needed(highest: int, sub_bucket_count: int, unit_magnitude: int) -> int:
    """HdrHistogram's getBucketsNeededToCoverValue (hdrh's get_bucket_count)."""
    smallest_untrackable = sub_bucket_count << unit_magnitude
    buckets = 1
    while smallest_untrackable <= highest:
        if smallest_untrackable > _INT64_MAX // 2:
            return buckets + 1
        smallest_untrackable <<= 1
        buckets += 1
    return buckets


def _interval(expected_interval: object) -> int:
    interval = _integer(expected_interval, "expected_interval")
    if not 1 <= interval <= _INT64_MAX:
        raise ValueError(f"expected_interval must be 1 to 2**63 - 1, got {interval}")
    return interval


def _unwrap(data: object) -> bytes:
    """The compressed counts payload of an encoding: base64 text or raw bytes, checked."""
    if isinstance(data, str):
        try:
            data = data.encode("ascii")
        except UnicodeEncodeError:
            raise HdrDecodeError(
                "the text is not base64 (non-ASCII characters)", "base64"
            ) from None
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"decode takes bytes or str, got {type(data).__name__}")
    raw = bytes(data)
    if not _is_compressed_cookie(raw):
        try:
            raw = base64.b64decode(raw.strip(), validate=True)
        except (binascii.Error, ValueError) as error:
            raise HdrDecodeError(f"the text is not base64: {error}", "base64") from None
    if len(raw) < _OUTER.size:
        raise HdrDecodeError(
            f"{len(raw)} bytes: shorter than the {_OUTER.size}-byte header", "truncated"
        )
    cookie, length = _OUTER.unpack_from(raw)
    if not _is_compressed_cookie(raw):
        raise HdrDecodeError(
            f"cookie {cookie & 0xFFFFFFFF:#010x} is not HdrHistogram's V2 compressed "
            f"encoding ({_COMPRESSED_COOKIE:#010x}; V0 and V1 encodings are not read)",
            "bad_cookie",
        )
    if length != len(raw) - _OUTER.size:
        raise HdrDecodeError(
            f"the header says {length} compressed bytes follow, {len(raw) - _OUTER.size} do",
            "length",
        )
    return raw[_OUTER.size :]


def _is_compressed_cookie(raw: bytes) -> bool:
    if len(raw) < 4:
        return False
    return (
        int.from_bytes(raw[:4], "big") & _COOKIE_BASE_MASK == _COMPRESSED_COOKIE & _COOKIE_BASE_MASK
    )
