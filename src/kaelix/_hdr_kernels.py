"""numba kernels of `kaelix.HdrHistogram`: bulk recording (plain and corrected for coordinated
omission), the range scan that precedes it, and the ZigZag LEB128 counts encoding of the
HdrHistogram V2 format. They assume valid input (``_hdr`` checks it first) and work on plain
numpy arrays: values are C-contiguous int64, counts C-contiguous int64. Every kernel has a
plain-Python twin in ``tests/test_hdr.py``. numba flags live in ``_jit`` only.

Imported lazily by ``_hdr`` on the first bulk call, encode or decode, never at ``import
kaelix`` (importing numba costs about 0.2 s). Imports nothing of kaelix.

The counts index of a value v >= 0 is HdrHistogram's (``countsArrayIndex`` in Java,
``counts_index_for`` in C): with ``mask = (sub_bucket_count - 1) << unit_magnitude``,
``bucket = 64 - unit_magnitude - half_magnitude - 1 - clz(v | mask)`` and ``index =
((bucket + 1) << half_magnitude) + (v >> (bucket + unit_magnitude)) - sub_bucket_half_count``.
Everything stays int64: uint64 index arithmetic made numba's loops slower in the validators.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numba.cpython.unsafe.numbers import leading_zeros

# Leading zeros of an int64: llvm.ctlz, one instruction (lzcnt). The intrinsic needs numba:
# with NUMBA_DISABLE_JIT (coverage runs) the kernels run as plain Python and use bit_length.
# Any for mypy, which would read the signature of the intrinsic's typing function.
clz: Any
if getattr(numba.config, "DISABLE_JIT", False):

    def clz(x: Any) -> int:
        return 64 - int(x).bit_length()

else:
    clz = leading_zeros

_jit = numba.njit(cache=True, nogil=True)
_inline = numba.njit(cache=True, nogil=True, inline="always")

_INT64_MAX = np.int64(0x7FFF_FFFF_FFFF_FFFF)
_INT64_MIN = np.int64(-0x8000_0000_0000_0000)

# decode_counts statuses
DECODED, TRUNCATED, OVERFLOW = 0, 1, 2


@_inline
def _index(v, mask, base, unit_magnitude, half_magnitude, half_count):  # type: ignore[no-untyped-def]
    """The counts index of v >= 0; base = 64 - unit_magnitude - half_magnitude - 1."""
    bucket = base - clz(v | mask)
    return ((bucket + 1) << half_magnitude) + (v >> (bucket + unit_magnitude)) - half_count


@_jit
def min_max(values):  # type: ignore[no-untyped-def]
    """The smallest and largest of values (int64, at least one). Branch-free min/max, so the
    loop vectorises: about 4 G values/s, a few per cent of a recording call."""
    lo = _INT64_MAX
    hi = _INT64_MIN
    for i in range(values.shape[0]):
        v = values[i]
        lo = min(lo, v)
        hi = max(hi, v)
    return lo, hi


@_jit
def record(values, counts, unit_magnitude, half_magnitude, mask):  # type: ignore[no-untyped-def]
    """Adds one to the count of each value (all in range: 0 <= v <= the histogram's highest
    recordable value). One pass, no allocation; the counts array (256 KiB for 3 significant
    figures up to an hour in ns) stays in the L2 cache."""
    base = 64 - unit_magnitude - half_magnitude - 1
    half_count = np.int64(1) << half_magnitude
    for i in range(values.shape[0]):
        counts[_index(values[i], mask, base, unit_magnitude, half_magnitude, half_count)] += 1


@_jit
def record_corrected(values, counts, unit_magnitude, half_magnitude, mask, interval):  # type: ignore[no-untyped-def]
    """HdrHistogram's recordValueWithExpectedInterval for each value (all in range, interval
    >= 1): the value, then value - k * interval for k = 1, 2, ... while that is >= interval.
    Returns how many counts were added.

    The missing values are an arithmetic progression; rather than one step per term (a
    value of an hour in ns at a 1 us interval is 3.6e9 terms), each step adds every term that
    falls in the sub-bucket of the current one, so a value costs at most one step per
    sub-bucket it spans."""
    base = 64 - unit_magnitude - half_magnitude - 1
    half_count = np.int64(1) << half_magnitude
    added = np.int64(0)
    for i in range(values.shape[0]):
        v = values[i]
        counts[_index(v, mask, base, unit_magnitude, half_magnitude, half_count)] += 1
        added += 1
        if v - interval < interval:
            continue
        lowest = interval + v % interval  # the last term: the smallest one >= interval
        m = v - interval
        while m >= lowest:
            bucket = base - clz(m | mask)
            shift = bucket + unit_magnitude
            sub = m >> shift
            start = max(sub << shift, lowest)  # the sub-bucket's lowest value, or the last term
            terms = (m - start) // interval + 1
            counts[((bucket + 1) << half_magnitude) + sub - half_count] += terms
            added += terms
            m -= terms * interval
    return added


@_jit
def encode_counts(counts, limit, out):  # type: ignore[no-untyped-def]
    """Writes counts[:limit] into out as HdrHistogram V2 tokens and returns the bytes
    written: each count ZigZag LEB128-encoded (at most 9 bytes, the 9th holding 8 bits), a run
    of n >= 2 zero counts as the single token -n (one zero is the token 0), as Java's
    fillBufferFromCountsArray. out needs 9 * limit bytes."""
    at = 0
    i = 0
    while i < limit:
        token = counts[i]
        i += 1
        if token == 0:
            zeros = 1
            while i < limit and counts[i] == 0:
                zeros += 1
                i += 1
            if zeros > 1:
                token = -zeros
        token = np.int64(token)
        z = np.uint64(token << 1) ^ np.uint64(token >> 63)
        k = 0
        while k < 8:
            rest = z >> np.uint64(7)
            if rest == 0:
                out[at] = np.uint8(z)
                at += 1
                break
            out[at] = np.uint8((z & np.uint64(0x7F)) | np.uint64(0x80))
            at += 1
            z = rest
            k += 1
        if k == 8:
            out[at] = np.uint8(z & np.uint64(0xFF))
            at += 1
    return at


@_jit
def decode_counts(data, counts, limit):  # type: ignore[no-untyped-def]
    """Reads V2 tokens (see encode_counts) from data (uint8) into counts, which must be zero.
    Counts may only land below limit (runs of zeros may reach it). Returns (status, where):
    DECODED and the number of counts slots covered; TRUNCATED and the byte offset of a token
    cut short; OVERFLOW and the byte offset of the token that goes past limit."""
    n = data.shape[0]
    at = 0
    index = 0
    while at < n:
        start = at
        z = np.uint64(0)
        shift = np.uint64(0)
        k = 0
        while True:
            if at >= n:
                return TRUNCATED, start
            byte = np.uint64(data[at])
            at += 1
            if k == 8:
                z |= byte << np.uint64(56)
                break
            z |= (byte & np.uint64(0x7F)) << shift
            if byte < np.uint64(0x80):
                break
            shift += np.uint64(7)
            k += 1
        token = np.int64(z >> np.uint64(1)) ^ -np.int64(z & np.uint64(1))
        if token < 0:
            if token == _INT64_MIN or -token > limit - index:
                return OVERFLOW, start
            index -= token
        else:
            if index >= limit:
                return OVERFLOW, start
            counts[index] = token
            index += 1
    return DECODED, index
