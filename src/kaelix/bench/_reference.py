"""The physical reference measured in every run: the machine's memcpy bandwidth, as numpy
copies one preallocated array into another (64 KiB, which stays in cache, and 64 MiB, which
goes to memory). Codec and ring figures are read against it; bars such as "≥ 40 % of numpy
memcpy bandwidth" are checked against it.

Bandwidth counts the bytes copied once (not read plus write). Imports numpy inside the
factory only; never kaelix, numba or an optional dependency.
"""

from __future__ import annotations

import functools

from kaelix.bench._model import Case, Contender, Workload

KIB = 1024
MIB = 1024 * KIB

MEMCPY_CACHE = "memcpy 64 KiB (in cache)"
MEMCPY_MEMORY = "memcpy 64 MiB (memory)"


def _memcpy(nbytes: int) -> Workload:
    import numpy as np

    source = np.full(nbytes, 0x5A, dtype=np.uint8)
    target = np.zeros(nbytes, dtype=np.uint8)
    np.copyto(target, source)  # fault the target's pages in before timing
    if not np.array_equal(source, target):
        raise AssertionError("numpy.copyto did not copy")

    return Workload(functools.partial(np.copyto, target, source), messages=0, nbytes=nbytes)


def memcpy_cases() -> tuple[Case, ...]:
    """The two memcpy reference cases (one contender each, role ``reference``)."""
    note = "numpy.copyto between preallocated uint8 arrays; bytes copied per second"
    return tuple(
        Case(
            name=name,
            contenders=(
                Contender(
                    "numpy copyto",
                    functools.partial(_memcpy, nbytes),
                    role="reference",
                    note=note,
                ),
            ),
            throughput="bytes",
            note=note,
        )
        for name, nbytes in ((MEMCPY_CACHE, 64 * KIB), (MEMCPY_MEMORY, 64 * MIB))
    )
