"""Every CRC32C implementation this CPU has, checked against the plain-Python reference.

The dispatcher picks one path per buffer size, so testing only ``kaelix.crc32c`` would leave
the others unchecked on a machine that has a faster one; ``_crc32c_using`` runs each by name.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import kaelix
from kaelix._codec import _crc32c_using
from reference import crc32c as reference_crc32c

IMPLEMENTATIONS = ["table", "sse4.2", "avx512-vpclmulqdq", "armv8"]
AVAILABLE = [name for name in IMPLEMENTATIONS if _crc32c_using(name, b"") is not None]

# Lengths around every block boundary of the interleaved and folding loops.
BOUNDARIES = sorted(
    {n + d for n in (0, 8, 16, 64, 256, 768, 1024, 4096, 8192, 24576, 65536) for d in (-1, 0, 1)}
    - {-1}
)


def test_the_dispatched_implementation_is_available() -> None:
    assert "table" in AVAILABLE
    assert kaelix.crc32c_implementation() in AVAILABLE


def test_unknown_implementation_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown CRC32C implementation 'sse5'"):
        _crc32c_using("sse5", b"")


@pytest.mark.parametrize("implementation", AVAILABLE)
def test_block_boundaries_and_alignments(implementation: str) -> None:
    data = np.random.default_rng(7).integers(0, 256, 70_000, dtype=np.uint8).tobytes()
    view = memoryview(data)
    for length in BOUNDARIES:
        for start in (0, 1, 3, 8, 13):
            piece = view[start : start + length]
            expected = kaelix._codec._crc32c_table(piece)
            assert _crc32c_using(implementation, piece) == expected, (length, start)
    # the table itself against the independent reference, on a few of the same inputs
    for length in (0, 1, 255, 257, 8193):
        assert kaelix._codec._crc32c_table(view[:length]) == reference_crc32c(view[:length])


@pytest.mark.parametrize("implementation", AVAILABLE)
@given(data=st.binary(max_size=3000), split=st.integers(0, 3000), value=st.integers(0, 2**32 - 1))
def test_matches_reference_and_continues(
    implementation: str, data: bytes, split: int, value: int
) -> None:
    expected = reference_crc32c(data, value)
    assert _crc32c_using(implementation, data, value) == expected
    head = _crc32c_using(implementation, data[:split], value)
    assert head is not None
    assert _crc32c_using(implementation, data[split:], head) == expected
    assert kaelix.crc32c(data, value) == expected


def test_value_must_be_a_u32() -> None:
    with pytest.raises(ValueError, match="value must be from 0 to 4294967295"):
        kaelix.crc32c(b"", -1)
    with pytest.raises(TypeError, match="value must be an int"):
        kaelix.crc32c(b"", 1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="data must be bytes-like"):
        kaelix.crc32c("text")  # type: ignore[arg-type]
