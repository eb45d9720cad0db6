"""kaelix.HdrHistogram against hdrh (the ``hdrhistogram`` package) and against plain-Python
twins of its numba kernels.

Differential properties draw parameters (lowest discernible value, highest trackable value,
significant figures) and values (uniform, lognormal-like, lognormal with outliers at the ends
of the range) and require identical counts arrays, percentiles, min, max and mean to hdrh
built with the same parameters; encodings cross both ways (ours -> hdrh.decode, hdrh.encode
-> ours). The kernels (range scan, bulk record, corrected record, counts encode and decode)
are compared with the slow references below, written from HdrHistogram's Java source and
sharing no code with kaelix. Coordinated-omission correction follows Java and C
(``recordValueWithExpectedInterval``); hdrh's ``record_corrected_value`` also records the
remainder below the interval, and a test pins that difference. The bench suite
(``kaelix.bench.suites.hdr``) runs once in a tiny configuration.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import math
import pickle
import struct
import subprocess
import sys
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hdrh.histogram import HdrHistogram as Hdrh
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import kaelix
import kaelix.bench as bench
from kaelix import _hdr_kernels as kernels
from kaelix._hdr import HdrDecodeError, HdrHistogram, ValueOutOfRange
from kaelix.bench import Suite, SuiteConfig
from kaelix.bench.suites import hdr as hdr_suite

# The first call of each kernel compiles (cached on disk after), hdrh is pure Python.
properties = settings(deadline=None, max_examples=25)

INT64_MAX = 2**63 - 1
PERCENTILES = (0, 0.1, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 99.999, 100)


# --------------------------------------------------------------------------------------------
# The reference: HdrHistogram's Java algorithms in plain Python (no numpy, no kaelix)
# --------------------------------------------------------------------------------------------


class Layout:
    """AbstractHistogram.init and establishSize, transcribed."""

    def __init__(self, lowest: int, highest: int, figures: int) -> None:
        largest_single_unit = 2 * 10**figures
        self.unit_magnitude = math.floor(math.log(lowest) / math.log(2))
        count_magnitude = math.ceil(math.log(largest_single_unit) / math.log(2))
        self.half_magnitude = (count_magnitude if count_magnitude > 1 else 1) - 1
        self.sub_bucket_count = 2 ** (self.half_magnitude + 1)
        self.half_count = self.sub_bucket_count // 2
        self.mask = (self.sub_bucket_count - 1) << self.unit_magnitude
        self.leading_zero_count_base = 64 - self.unit_magnitude - self.half_magnitude - 1
        smallest_untrackable = self.sub_bucket_count << self.unit_magnitude
        buckets = 1
        while smallest_untrackable <= highest:
            if smallest_untrackable > INT64_MAX // 2:
                buckets += 1
                break
            smallest_untrackable <<= 1
            buckets += 1
        self.bucket_count = buckets
        self.counts_len = (buckets + 1) * self.half_count

    def index(self, value: int) -> int:
        """countsArrayIndex."""
        leading_zeros = 64 - (value | self.mask).bit_length()
        bucket = self.leading_zero_count_base - leading_zeros
        sub = value >> (bucket + self.unit_magnitude)
        return ((bucket + 1) << self.half_magnitude) + (sub - self.half_count)

    def value_from_index(self, index: int) -> int:
        bucket = (index >> self.half_magnitude) - 1
        sub = (index & (self.half_count - 1)) + self.half_count
        if bucket < 0:
            sub -= self.half_count
            bucket = 0
        return sub << (bucket + self.unit_magnitude)

    def highest_equivalent(self, value: int) -> int:
        index = self.index(value)
        bucket = max((index >> self.half_magnitude) - 1, 0)
        return self.value_from_index(index) + (1 << (bucket + self.unit_magnitude)) - 1


def ref_min_max(values: Sequence[int]) -> tuple[int, int]:
    return min(values), max(values)


def ref_record(layout: Layout, values: Sequence[int]) -> list[int]:
    """The bulk kernel: one count per value."""
    counts = [0] * layout.counts_len
    for value in values:
        counts[layout.index(value)] += 1
    return counts


def ref_corrected_series(value: int, interval: int) -> list[int]:
    """recordSingleValueWithExpectedInterval: the values it records, one step at a time."""
    recorded = [value]
    missing = value - interval
    while missing >= interval:
        recorded.append(missing)
        missing -= interval
    return recorded


def ref_record_corrected(layout: Layout, values: Sequence[int], interval: int) -> list[int]:
    counts = [0] * layout.counts_len
    for value in values:
        for recorded in ref_corrected_series(value, interval):
            counts[layout.index(recorded)] += 1
    return counts


def ref_zigzag_put(out: bytearray, value: int) -> None:
    """ZigZagEncoding.putLong."""
    z = ((value << 1) ^ (value >> 63)) & (2**64 - 1)
    for _ in range(8):
        if z >> 7 == 0:
            out.append(z)
            return
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z & 0xFF)


def ref_encode_counts(counts: Sequence[int]) -> bytes:
    """fillBufferFromCountsArray up to the last non-zero count."""
    limit = max((i + 1 for i, c in enumerate(counts) if c), default=0)
    out = bytearray()
    i = 0
    while i < limit:
        count = counts[i]
        i += 1
        zeros = 0
        if count == 0:
            zeros = 1
            while i < limit and counts[i] == 0:
                zeros += 1
                i += 1
        ref_zigzag_put(out, -zeros if zeros > 1 else count)
    return bytes(out)


def ref_decode_counts(data: bytes, counts_len: int) -> list[int] | None:
    """fillCountsArrayFromSourceBuffer; None where Java would throw (truncated, too long)."""
    counts = [0] * counts_len
    at = index = 0
    while at < len(data):
        z = shift = 0
        for k in range(9):
            if at >= len(data):
                return None
            byte = data[at]
            at += 1
            if k == 8:
                z |= byte << 56
                break
            z |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        token = (z >> 1) ^ -(z & 1)
        if token < 0:
            index -= token
            if index > counts_len:
                return None
        else:
            if index >= counts_len:
                return None
            counts[index] = token
            index += 1
    return counts


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def hdrh_counts(histogram: Hdrh) -> npt.NDArray[np.int64]:
    return np.array(histogram.counts[: histogram.counts_len], dtype=np.int64)


def hdrh_of(lowest: int, highest: int, figures: int, values: Sequence[int]) -> Hdrh:
    theirs = Hdrh(lowest, highest, figures)
    record = theirs.record_value
    for value in values:
        assert record(value), value
    return theirs


def hdrh_min(theirs: Hdrh) -> int:
    """hdrh's ``get_min_value``, except when the smallest value recorded is INT64_MAX: hdrh
    keeps ``sys.maxsize`` as its "nothing recorded" sentinel and returns that value raw, where
    HdrHistogram's definition (and kaelix's) is its lowest equivalent value."""
    if theirs.get_total_count() and theirs.min_value == INT64_MAX and not theirs.counts[0]:
        return int(theirs.get_lowest_equivalent_value(INT64_MAX))
    return int(theirs.get_min_value())


def assert_same_as_hdrh(ours: HdrHistogram, theirs: Hdrh) -> None:
    assert np.array_equal(ours.counts, hdrh_counts(theirs))
    assert ours.total_count == theirs.get_total_count()
    if theirs.get_total_count():
        expected = theirs.get_percentile_to_value_dict(list(PERCENTILES))
    else:  # hdrh's dict is empty then; its value_at_percentile says 0
        expected = {p: theirs.get_value_at_percentile(p) for p in PERCENTILES}
    assert ours.percentiles(PERCENTILES) == expected
    assert ours.min == hdrh_min(theirs)
    assert ours.max == theirs.get_max_value()
    assert ours.mean == theirs.get_mean_value()
    assert ours.stddev == pytest.approx(theirs.get_stddev(), rel=1e-9, abs=1e-9)


def draw_values(kind: str, seed: int, size: int, lowest: int, cap: int) -> npt.NDArray[np.int64]:
    """Values from 0 to cap: uniform over the range, lognormal-like around a few medians, or
    lognormal with outliers at 0, the unit boundaries and cap."""
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        return rng.integers(0, cap, size, endpoint=True, dtype=np.int64)
    median = float(rng.choice([lowest * 3, 20_000, 5_000_000]))
    spread = np.exp(rng.normal(math.log(median), 1.5, size))
    values = np.minimum(spread, cap / 2).astype(np.int64)
    if kind == "outliers" and size:
        edges = np.array([0, 1, lowest - 1, lowest, 2 * lowest, cap - 1, cap], np.int64)
        at = rng.integers(0, size, min(size, 20))
        values[at] = rng.choice(np.clip(edges, 0, cap), at.size)
    return values


@st.composite
def parameters(draw: st.DrawFn) -> tuple[int, int, int]:
    lowest = draw(st.sampled_from([1, 1, 2, 3, 1000, 1024, 2**20 + 7]))
    figures = draw(st.integers(1, 4))
    highest = draw(st.sampled_from([2 * lowest, 10**6, 3_600_000_000_000, INT64_MAX]))
    highest = max(highest, 2 * lowest)
    assume(Layout(lowest, highest, figures).counts_len <= 120_000)  # hdrh's loops are Python
    return lowest, highest, figures


kinds = st.sampled_from(["uniform", "lognormal", "outliers"])
seeds = st.integers(0, 2**32 - 1)


@pytest.fixture(scope="module", autouse=True)
def _compiled_kernels() -> None:
    """Calls each kernel once, so that numba compiles (or loads) before the properties run."""
    h = HdrHistogram()
    h.record_values(np.array([1, 2, 3]))
    h.record_corrected_values(np.array([10]), 3)
    HdrHistogram.decode(h.encode())


# --------------------------------------------------------------------------------------------
# Layout and differential properties against hdrh
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lowest", "highest", "figures"),
    [
        (1, 2, 1),
        (1, 3_600_000_000_000, 3),
        (1, INT64_MAX, 1),
        (1, INT64_MAX, 3),
        (1000, 10**12, 2),
        (1024, 10**12, 5),
        (2**48 - 1, 2**60, 1),  # float log2 rounds this lowest up, as in Java, C and hdrh
        (3, 10**6, 5),
    ],
)
def test_layout_matches_hdrh(lowest: int, highest: int, figures: int) -> None:
    ours = HdrHistogram(lowest, highest, figures)
    theirs = Hdrh(lowest, highest, figures)
    assert ours.counts.shape == (theirs.counts_len,)
    assert ours.counts.shape == (Layout(lowest, highest, figures).counts_len,)
    top = theirs.get_highest_equivalent_value(theirs.get_value_from_index(theirs.counts_len - 1))
    assert ours.highest_recordable_value == min(top, INT64_MAX)
    for value in (0, 1, lowest, highest // 3, highest, ours.highest_recordable_value):
        assert ours.highest_equivalent_value(value) == theirs.get_highest_equivalent_value(value)
        assert ours.lowest_equivalent_value(value) == theirs.get_lowest_equivalent_value(value)


@properties
@given(parameters(), kinds, seeds, st.integers(0, 2000))
def test_bulk_record_matches_hdrh(
    params: tuple[int, int, int], kind: str, seed: int, size: int
) -> None:
    lowest, highest, figures = params
    ours = HdrHistogram(lowest, highest, figures)
    values = draw_values(kind, seed, size, lowest, ours.highest_recordable_value)
    ours.record_values(values)
    assert_same_as_hdrh(ours, hdrh_of(lowest, highest, figures, values.tolist()))


@properties
@given(parameters(), kinds, seeds, st.integers(1, 300), st.floats(0, 100))
def test_one_by_one_matches_bulk_and_the_reference(
    params: tuple[int, int, int], kind: str, seed: int, size: int, percentile: float
) -> None:
    lowest, highest, figures = params
    bulk = HdrHistogram(lowest, highest, figures)
    single = HdrHistogram(lowest, highest, figures)
    values = draw_values(kind, seed, size, lowest, bulk.highest_recordable_value).tolist()
    bulk.record_values(values)
    for value in values:
        single.record(value)
    assert single == bulk
    assert single.max == bulk.max
    assert bulk.counts.tolist() == ref_record(Layout(lowest, highest, figures), values)
    theirs = hdrh_of(lowest, highest, figures, values)
    assert bulk.value_at_percentile(percentile) == theirs.get_value_at_percentile(percentile)


def test_min_of_int64_max_alone_is_its_lowest_equivalent_value() -> None:
    # Found by hypothesis: hdrh reads this one back raw (its sentinel); kaelix follows
    # HdrHistogram's definition.
    ours = HdrHistogram(1, INT64_MAX, 1)
    ours.record_values(np.array([INT64_MAX], np.int64))
    theirs = hdrh_of(1, INT64_MAX, 1, [INT64_MAX])
    assert theirs.get_min_value() == INT64_MAX
    assert ours.min == ours.lowest_equivalent_value(INT64_MAX) == hdrh_min(theirs) < INT64_MAX
    assert ours.max == theirs.get_max_value() == INT64_MAX


def test_sf5_and_the_full_int64_range() -> None:
    ours = HdrHistogram(1, 10**6, 5)
    values = draw_values("outliers", 7, 5000, 1, ours.highest_recordable_value)
    ours.record_values(values)
    assert_same_as_hdrh(ours, hdrh_of(1, 10**6, 5, values.tolist()))
    full = HdrHistogram(1, INT64_MAX, 2)
    edges = [0, 1, 2**62, INT64_MAX - 1, INT64_MAX]
    full.record_values(np.array(edges, np.int64))
    assert_same_as_hdrh(full, hdrh_of(1, INT64_MAX, 2, edges))
    assert full.max == INT64_MAX


def test_count_and_zero_values() -> None:
    ours = HdrHistogram(1000, 10**9, 2)
    theirs = Hdrh(1000, 10**9, 2)
    for value, count in ((0, 3), (5, 2), (999, 1), (1000, 4), (123_456, 7)):
        ours.record(value, count)
        theirs.record_value(value, count)
    assert_same_as_hdrh(ours, theirs)
    assert ours.count_at_value(123_456) == theirs.get_count_at_value(123_456) == 7
    zeros = HdrHistogram(1000, 10**9, 2)
    zeros.record(0)
    assert (zeros.max, zeros.min, zeros.value_at_percentile(100)) == (0, 0, 511)


@pytest.mark.parametrize(
    "dtype", ["int8", "int16", "int32", "uint8", "uint16", "uint32", "uint64", ">i8"]
)
def test_integer_dtypes_record_like_int64(dtype: str) -> None:
    values = np.arange(0, 120, 7)
    expected = HdrHistogram()
    expected.record_values(values)
    ours = HdrHistogram()
    ours.record_values(values.astype(dtype))
    assert ours == expected
    strided = HdrHistogram()
    strided.record_values(np.repeat(values, 2)[::2])
    assert strided == expected


def test_empty_histogram() -> None:
    ours = HdrHistogram()
    ours.record_values(np.array([], np.int64))
    ours.record_values([])
    theirs = Hdrh(1, 3_600_000_000_000, 3)
    assert (ours.total_count, ours.min, ours.max, ours.mean, ours.stddev) == (0, 0, 0, 0.0, 0.0)
    assert ours.value_at_percentile(99) == theirs.get_value_at_percentile(99) == 0
    assert ours.percentiles() == dict.fromkeys((50.0, 90.0, 99.0, 99.9, 99.99, 100.0), 0)
    assert HdrHistogram.decode(theirs.encode()) == ours
    assert hdrh_counts(Hdrh.decode(ours.encode())).sum() == 0


# --------------------------------------------------------------------------------------------
# Coordinated omission
# --------------------------------------------------------------------------------------------


@properties
@given(parameters(), st.lists(st.integers(0, 200_000), max_size=40), st.integers(1, 5000))
def test_corrected_matches_the_java_reference(
    params: tuple[int, int, int], values: list[int], interval: int
) -> None:
    lowest, highest, figures = params
    ours = HdrHistogram(lowest, highest, figures)
    values = [min(v, ours.highest_recordable_value) for v in values]
    assume(sum(v // interval for v in values) <= 20_000)  # the reference steps one by one
    ours.record_corrected_values(np.array(values, np.int64), interval)
    layout = Layout(lowest, highest, figures)
    assert ours.counts.tolist() == ref_record_corrected(layout, values, interval)
    assert ours.total_count == sum(len(ref_corrected_series(v, interval)) for v in values)
    single = HdrHistogram(lowest, highest, figures)
    for value in values:
        single.record(value, expected_interval=interval)
    assert single == ours
    # hdrh agrees except that it also records the remainder v % interval below the interval
    theirs = Hdrh(lowest, highest, figures)
    for value in values:
        assert theirs.record_corrected_value(value, interval)
    for value in values:
        if value > interval and value % interval:
            ours.record(value % interval)
    assert np.array_equal(ours.counts, hdrh_counts(theirs))


def test_corrected_matches_hdrh_on_multiples_of_the_interval() -> None:
    values = [0, 5, 100, 1000, 25_000, 1_000_000, 3_000_000]
    ours = HdrHistogram()
    ours.record_corrected_values(values, 100)
    theirs = Hdrh(1, 3_600_000_000_000, 3)
    for value in values:
        theirs.record_corrected_value(value, 100)
    assert_same_as_hdrh(ours, theirs)


def test_long_stall_is_added_a_bucket_at_a_time() -> None:
    ours = HdrHistogram(1, 3_600_000_000_000, 3)
    ours.record(3_600_000_000_000, 2, expected_interval=1)  # 3.6e12 values, one step each: hours
    assert ours.total_count == 2 * 3_600_000_000_000
    assert [ours.count_at_value(v) for v in (0, 1, 2047, 2048, 4096)] == [0, 2, 2, 4, 8]
    bulk = HdrHistogram(1, 3_600_000_000_000, 3)
    bulk.record_corrected_values(np.array([3_600_000_000_000] * 2), 1)
    assert bulk == ours


def test_corrected_arguments() -> None:
    h = HdrHistogram()
    for bad in (0, -5):
        with pytest.raises(ValueError, match="expected_interval must be 1"):
            h.record(10, expected_interval=bad)
        with pytest.raises(ValueError, match="expected_interval must be 1"):
            h.record_corrected_values([10], bad)
    with pytest.raises(TypeError, match="expected_interval must be an int"):
        h.record(10, expected_interval=1.5)  # type: ignore[arg-type]
    assert h.total_count == 0


# --------------------------------------------------------------------------------------------
# The kernels against their references
# --------------------------------------------------------------------------------------------


@properties
@given(st.lists(st.integers(-(2**63), INT64_MAX), min_size=1, max_size=50))
def test_min_max_kernel(values: list[int]) -> None:
    lo, hi = kernels.min_max(np.array(values, np.int64))
    assert (int(lo), int(hi)) == ref_min_max(values)


@properties
@given(
    st.lists(
        st.one_of(st.just(0), st.integers(0, 300), st.integers(0, INT64_MAX)),
        max_size=60,
    )
)
def test_counts_codec_kernels(counts: list[int]) -> None:
    array = np.array(counts + [0] * 3, np.int64)
    limit = max((i + 1 for i, c in enumerate(counts) if c), default=0)
    out = np.empty(9 * limit, np.uint8)
    size = kernels.encode_counts(array, limit, out)
    encoded = bytes(out[:size])
    assert encoded == ref_encode_counts(counts)
    decoded = np.zeros(len(array), np.int64)
    status, covered = kernels.decode_counts(np.frombuffer(encoded, np.uint8), decoded, len(array))
    assert (status, covered) == (kernels.DECODED, limit)
    assert decoded.tolist() == ref_decode_counts(encoded, len(array))
    assert decoded.tolist() == counts + [0] * 3


@properties
@given(st.binary(max_size=40), st.integers(1, 40))
def test_decode_kernel_on_arbitrary_bytes(data: bytes, counts_len: int) -> None:
    counts = np.zeros(counts_len, np.int64)
    status, _ = kernels.decode_counts(np.frombuffer(data, np.uint8), counts, counts_len)
    expected = ref_decode_counts(data, counts_len)
    if expected is None:
        assert status != kernels.DECODED
    else:
        assert status == kernels.DECODED
        assert counts.tolist() == expected


# --------------------------------------------------------------------------------------------
# Interchange
# --------------------------------------------------------------------------------------------


@properties
@given(parameters(), kinds, seeds, st.integers(0, 1500))
def test_encodings_cross_both_ways(
    params: tuple[int, int, int], kind: str, seed: int, size: int
) -> None:
    lowest, highest, figures = params
    ours = HdrHistogram(lowest, highest, figures)
    values = draw_values(kind, seed, size, lowest, ours.highest_recordable_value)
    ours.record_values(values)
    theirs = hdrh_of(lowest, highest, figures, values.tolist())
    encoded = ours.encode()
    assert encoded.startswith(b"HISTFAAA")
    read_by_hdrh = Hdrh.decode(encoded)
    assert np.array_equal(hdrh_counts(read_by_hdrh), ours.counts)
    assert (read_by_hdrh.lowest_trackable_value, read_by_hdrh.highest_trackable_value) == (
        lowest,
        highest,
    )
    assert read_by_hdrh.significant_figures == figures
    from_hdrh = HdrHistogram.decode(theirs.encode())
    assert from_hdrh == ours
    assert from_hdrh.max == read_by_hdrh.get_max_value()
    assert from_hdrh.min == read_by_hdrh.get_min_value() == ours.min
    assert HdrHistogram.decode(encoded.decode("ascii")) == ours
    raw = base64.b64decode(encoded)
    assert HdrHistogram.decode(raw) == ours
    # the same header, and counts tokens that decode alike
    ours_payload = zlib.decompress(raw[8:])
    theirs_payload = zlib.decompress(base64.b64decode(theirs.encode())[8:])
    assert ours_payload[:40] == theirs_payload[:40]
    layout = Layout(lowest, highest, figures)
    assert ref_decode_counts(ours_payload[40:], layout.counts_len) == ref_decode_counts(
        theirs_payload[40:], layout.counts_len
    )
    assert HdrHistogram.from_dict(json.loads(json.dumps(ours.to_dict()))) == ours


def outer(compressed: bytes, *, cookie: int = 0x1C849314, length: int | None = None) -> bytes:
    size = len(compressed) if length is None else length
    return base64.b64encode(struct.pack(">ii", cookie, size) + compressed)


def payload(
    counts: bytes = b"",
    *,
    cookie: int = 0x1C849313,
    size: int | None = None,
    offset: int = 0,
    figures: int = 3,
    lowest: int = 1,
    highest: int = 3_600_000_000_000,
) -> bytes:
    length = len(counts) if size is None else size
    head = struct.pack(">iiiiqqd", cookie, length, offset, figures, lowest, highest, 1.0)
    return zlib.compress(head + counts)


def test_decode_of_a_hand_built_payload() -> None:
    counts = bytearray()
    for token in (-3, 2, 0, 7):  # 3 zeros, 2, 0, 7
        ref_zigzag_put(counts, token)
    h = HdrHistogram.decode(outer(payload(bytes(counts), lowest=1, highest=1000, figures=2)))
    assert h.counts[:6].tolist() == [0, 0, 0, 2, 0, 7]
    assert (h.total_count, h.min, h.max) == (9, 3, 5)


COUNTS_LEN = HdrHistogram().counts.shape[0]


@pytest.mark.parametrize(
    ("data", "reason", "text"),
    [
        (b"not base64!", "base64", "not base64"),
        ("HISTFAAA\u00e9", "base64", "non-ASCII"),
        (b"", "truncated", "shorter than"),
        (base64.b64encode(b"\0" * 12), "bad_cookie", "V2 compressed"),
        (outer(payload(), cookie=0x1C849302), "bad_cookie", "V0 and V1"),
        (outer(payload(), length=3), "length", "compressed bytes follow"),
        (outer(b"garbage"), "zlib", "does not inflate"),
        (outer(zlib.compress(b"short")), "truncated", "header"),
        (outer(payload(cookie=0x12345678)), "bad_cookie", "encoding cookie"),
        (outer(payload(offset=4)), "unsupported", "normalizing index offset"),
        (outer(payload(figures=0)), "invalid_header", "significant_figures"),
        (outer(payload(lowest=0)), "invalid_header", "lowest_discernible_value"),
        (outer(payload(lowest=10, highest=15)), "invalid_header", "highest_trackable_value"),
        (outer(payload(size=9 * COUNTS_LEN + 1)), "length", "counts take"),
        (outer(payload(b"\x02\x02", size=5)), "truncated", "header says 5"),
        (outer(payload(b"\x02\x80")), "truncated", "cut short"),
        (outer(payload(b"\x81" + b"\x80" * 7)), "truncated", "cut short"),
        (outer(payload(b"\xff\xff\x07")), "invalid_counts", "go past"),  # run of 2**20
        (outer(payload(b"\x02" * (COUNTS_LEN + 1))), "invalid_counts", "go past"),
        (
            outer(payload(b"\xfe\xff\xff\xff\xff\xff\xff\xff\x7f" * 3)),
            "invalid_counts",
            "more than 2\\*\\*63",
        ),
    ],
)
def test_malformed_encodings_raise_hdr_decode_error(data: Any, reason: str, text: str) -> None:
    with pytest.raises(HdrDecodeError, match=text) as caught:
        HdrHistogram.decode(data)
    assert caught.value.reason == reason
    assert isinstance(caught.value, ValueError)
    assert pickle.loads(pickle.dumps(caught.value)).reason == reason


def test_decode_rejects_other_types() -> None:
    with pytest.raises(TypeError, match="bytes or str"):
        HdrHistogram.decode(12)  # type: ignore[arg-type]


@properties
@given(st.data())
def test_mutated_encodings_decode_or_raise_hdr_decode_error(data: st.DataObject) -> None:
    h = HdrHistogram(1, 10**6, 2)
    h.record_values(np.array([0, 3, 3, 70, 900, 5000, 999_999]))
    inner = bytearray(zlib.decompress(base64.b64decode(h.encode())[8:]))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(inner) - 1))
        inner[at] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        inner = inner[: data.draw(st.integers(0, len(inner)))]
    try:
        decoded = HdrHistogram.decode(outer(zlib.compress(bytes(inner))))
    except HdrDecodeError:
        return
    assert decoded.total_count == int(decoded.counts.sum())


# --------------------------------------------------------------------------------------------
# Errors leave the histogram as it was
# --------------------------------------------------------------------------------------------


def test_out_of_range_values_raise_and_record_nothing() -> None:
    h = HdrHistogram(1, 1000, 2)
    h.record_values(np.array([1, 2, 3]))
    before = h.copy()
    cap = h.highest_recordable_value
    assert cap == 1023
    with pytest.raises(
        ValueOutOfRange, match=r"value 1024 at position 2 is out of range"
    ) as caught:
        h.record_values(np.array([5, 6, cap + 1, -1, 8]))
    assert (caught.value.value, caught.value.position, caught.value.highest) == (1024, 2, cap)
    with pytest.raises(ValueOutOfRange, match=r"value -1 at position 1 .* values >= 0"):
        h.record_corrected_values(np.array([5, -1]), 2)
    with pytest.raises(ValueOutOfRange, match=r"at position 0 .*highest_trackable_value at least"):
        h.record_values(np.array([2**64 - 1], np.uint64))
    with pytest.raises(ValueOutOfRange, match=r"value 1024 is out of range: .* 0 to 1023"):
        h.record(1024)
    with pytest.raises(ValueError, match="value -3 is out of range"):
        h.record(-3, expected_interval=1)
    with pytest.raises(ValueOutOfRange):
        h.count_at_value(5000)
    assert h == before
    assert (h.max, h.total_count) == (before.max, 3)
    h.record(cap)
    assert h.max == cap


def test_bad_arguments() -> None:
    h = HdrHistogram()
    with pytest.raises(TypeError, match="values must hold integers, got dtype float64"):
        h.record_values(np.array([1.5]))
    with pytest.raises(ValueError, match="1-D"):
        h.record_values(np.zeros((2, 2), np.int64))
    with pytest.raises(TypeError, match="value must be an int"):
        h.record(1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="value must be an int"):
        h.record(True)
    with pytest.raises(ValueError, match="count must be 1"):
        h.record(5, 0)
    for bad in (-1, 100.5, math.nan):
        with pytest.raises(ValueError, match="percentile must be between 0 and 100"):
            h.value_at_percentile(bad)
        with pytest.raises(ValueError, match="percentile must be between 0 and 100"):
            h.percentiles([50, bad])
    with pytest.raises(TypeError, match="percentile must be a number"):
        h.value_at_percentile("50")  # type: ignore[arg-type]
    assert h.total_count == 0


@pytest.mark.parametrize(
    ("args", "error", "text"),
    [
        ((0, 100, 3), ValueError, "lowest_discernible_value must be >= 1"),
        ((10, 19, 3), ValueError, "between 2 \\* lowest_discernible_value \\(20\\)"),
        ((1, 2**63, 3), ValueError, "highest_trackable_value"),
        ((1, 100, 0), ValueError, "significant_figures must be 1 to 5"),
        ((1, 100, 6), ValueError, "significant_figures must be 1 to 5"),
        ((2**50, 2**62, 5), ValueError, "leaves no room"),
        ((1.0, 100, 3), TypeError, "lowest_discernible_value must be an int"),
        ((1, 100, True), TypeError, "significant_figures must be an int"),
    ],
)
def test_invalid_parameters(args: tuple[Any, ...], error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text):
        HdrHistogram(*args)


# --------------------------------------------------------------------------------------------
# Whole histograms: merge, reset, copy, equality, pickling, dicts
# --------------------------------------------------------------------------------------------


@properties
@given(parameters(), kinds, seeds, st.integers(0, 500), st.integers(0, 500))
def test_add_equals_recording_everything(
    params: tuple[int, int, int], kind: str, seed: int, size_a: int, size_b: int
) -> None:
    lowest, highest, figures = params
    a = HdrHistogram(lowest, highest, figures)
    b = HdrHistogram(lowest, highest, figures)
    va = draw_values(kind, seed, size_a, lowest, a.highest_recordable_value)
    vb = draw_values("lognormal", seed + 1, size_b, lowest, a.highest_recordable_value)
    a.record_values(va)
    b.record_values(vb)
    a.add(b)
    both = HdrHistogram(lowest, highest, figures)
    both.record_values(np.concatenate([va, vb]))
    assert a == both
    assert a.max == both.max and a.min == both.min


def test_add_across_layouts_matches_hdrh() -> None:
    values = draw_values("outliers", 3, 2000, 1, 10**9)
    fine = HdrHistogram(1, 10**9, 3)
    fine.record_values(values)
    coarse = HdrHistogram(1, 10**12, 2)
    coarse.record_values(np.array([5, 10**11]))
    coarse.add(fine)
    theirs = hdrh_of(1, 10**12, 2, [5, 10**11])
    theirs.add(hdrh_of(1, 10**9, 3, values.tolist()))
    assert np.array_equal(coarse.counts, hdrh_counts(theirs))
    assert coarse.total_count == 2002


def test_add_refuses_what_does_not_fit_and_changes_nothing() -> None:
    small = HdrHistogram(1, 1000, 3)
    small.record(7)
    big = HdrHistogram(1, 10**9, 3)
    big.record_values(np.array([5, 10**8]))
    before = small.copy()
    with pytest.raises(ValueOutOfRange, match="highest_trackable_value at least"):
        small.add(big)
    assert small == before
    with pytest.raises(TypeError, match="can only add an HdrHistogram"):
        small.add(Hdrh(1, 1000, 3))  # type: ignore[arg-type]
    small.add(HdrHistogram(1, 10**9, 3))  # empty: nothing to add
    assert small == before


def test_reset_copy_equality_and_pickle() -> None:
    h = HdrHistogram(1, 10**6, 2)
    h.record_values(np.array([1, 50, 50, 900_000]))
    twin = h.copy()
    assert twin == h and twin is not h
    twin.record(3)
    assert twin != h
    assert copy.copy(h) == h and copy.deepcopy(h) == h
    copy.copy(h).record(5)
    assert h.total_count == 4
    assert pickle.loads(pickle.dumps(h)) == h
    assert h != HdrHistogram(1, 10**6, 3)
    assert h != "histogram"
    with pytest.raises(TypeError, match="unhashable"):
        hash(h)
    h.reset()
    assert h == HdrHistogram(1, 10**6, 2)
    assert (h.max, h.total_count) == (0, 0)
    assert "significant_figures=2 total_count=0" in repr(h)


def test_to_dict_round_trip_and_errors() -> None:
    h = HdrHistogram(1000, 10**9, 2)
    h.record_values(np.array([0, 1500, 1500, 77_777]))
    d = h.to_dict()
    assert d["counts"] == [[0, 1], [1024, 2], [77312, 1]]
    assert (d["total_count"], d["max_value"], d["schema"]) == (4, 77_777, "kaelix.hdr/1")
    back = HdrHistogram.from_dict(json.loads(json.dumps(d)))
    assert back == h and back.max == h.max
    with pytest.raises(ValueError, match="schema"):
        HdrHistogram.from_dict({**d, "schema": "other/1"})
    with pytest.raises(ValueError, match="needs the keys \\['counts'\\]"):
        HdrHistogram.from_dict({k: v for k, v in d.items() if k != "counts"})
    with pytest.raises(ValueError, match="total_count is 5"):
        HdrHistogram.from_dict({**d, "total_count": 5})
    with pytest.raises(ValueError, match="max_value 3 is not in the last"):
        HdrHistogram.from_dict({**d, "max_value": 3})
    with pytest.raises(ValueError, match="count 0"):
        HdrHistogram.from_dict({**d, "counts": [[5, 0]]})
    with pytest.raises(ValueOutOfRange, match="position 0"):
        HdrHistogram.from_dict({**d, "counts": [[-5, 1]]})
    with pytest.raises(TypeError, match="pair"):
        HdrHistogram.from_dict({**d, "counts": [[5]]})


def test_importing_the_api_does_not_import_numba() -> None:
    code = "import sys, kaelix._hdr; print('numba' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


# --------------------------------------------------------------------------------------------
# The bench suite (src/kaelix/bench/suites/hdr.py), tiny
# --------------------------------------------------------------------------------------------

TINY_HDR = hdr_suite.HdrSizes(
    values=20_000, hdrh_values=2_000, unique_values=5_000, probe_values=16
)
BULK_CONTENDERS = [
    ("kaelix", "kaelix"),
    (hdr_suite.HDRH, "peer"),
    (hdr_suite.HDRH_UNIQUE, "peer"),
    ("numpy frexp + bincount", "reference"),
    ("numpy bincount (indices given)", "reference"),
]


def tiny_hdr_suite() -> Suite:
    return Suite("hdr", "tiny hdr suite", functools.partial(hdr_suite.cases, sizes=TINY_HDR))


def test_the_hdr_suite_bulk_case_in_a_tiny_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kaelix, "HdrHistogram", HdrHistogram, raising=False)
    result = bench.run([tiny_hdr_suite()], repeat=1, trial_ms=0.5, select="bulk record")
    assert not result.errors, [(c.case, r.name, r.reason) for c, r in result.errors]
    (case,) = result.results
    assert case.case == "bulk record 20,000 values"
    assert [(c.name, c.role) for c in case.contenders] == BULK_CONTENDERS
    assert all(c.ok for c in case.contenders), [(c.name, c.reason) for c in case.contenders]
    per_op = [c.messages_per_op for c in case.contenders]
    assert per_op == [20_000, 2_000, 5_000, 20_000, 20_000]
    ((bar, met),) = [(check.bar, check.met) for check in case.bars]
    assert (bar.kind, bar.value, met is not None) == ("min_messages_per_s", 100e6, True)
    assert bench.BenchRun.from_json(json.loads(json.dumps(result.to_json()))) == result
    assert "msg/s counts values recorded" in bench.render_text(result)


def test_the_hdr_suite_compile_case_in_a_tiny_configuration() -> None:
    result = bench.run([tiny_hdr_suite()], repeat=1, trial_ms=0.5, select="numba compile")
    assert not result.errors, [(c.case, r.name, r.reason) for c, r in result.errors]
    (case,) = result.results
    assert [c.name for c in case.contenders] == [
        "kaelix record_values, no cache",
        "kaelix record_values, on-disk cache",
        "kaelix encode + decode, no cache",
    ]
    for contender in case.contenders:
        assert contender.ok and contender.timing is not None, contender.reason
        assert contender.timing.median_ns > 0 and contender.messages_per_op == 0


def test_the_hdr_cases_are_listed_without_preparing_anything() -> None:
    quick = hdr_suite.cases(SuiteConfig(quick=True))
    full = hdr_suite.cases(SuiteConfig(quick=False))
    assert [case.name for case in quick] == [case.name for case in full]
    assert [case.name for case in quick] == [
        "bulk record 10,000,000 values",
        "numba compile: first call in a fresh process",
    ]
    assert "first 100,000 values" in quick[0].contenders[1].note
    assert "first 300,000 values" in full[0].contenders[1].note
    assert hdr_suite.SUITE.name == "hdr"


def test_the_numpy_reference_layout_matches_the_histogram() -> None:
    h = HdrHistogram(1000, 10**10, 2)
    values = draw_values("outliers", 5, 5000, 1000, h.highest_recordable_value)
    h.record_values(values)
    assert np.array_equal(hdr_suite.NumpyLayout.of(h).counts(values), h.counts)
