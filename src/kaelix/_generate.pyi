"""Type stubs for the bulk generator's compiled hot path (cext/_generate.pyx)."""

from typing import Final

import numpy as np
import numpy.typing as npt

POOL_SLACK: Final[int]

def write_frames(
    offsets: npt.NDArray[np.int64],
    sequence: npt.NDArray[np.uint64],
    partition: npt.NDArray[np.uint32],
    producer_id: npt.NDArray[np.uint64],
    timestamp_ns: npt.NDArray[np.int64],
    checksum: npt.NDArray[np.uint32],
    payload_length: npt.NDArray[np.uint32] | None,
    fixed_payload: int,
    key_index: npt.NDArray[np.uint64] | None,
    pool: bytes,
    seed: int,
    first_index: int,
    threads: int = 1,
) -> memoryview: ...
def pool_start(seed: int, index: int, length: int, pool_length: int) -> int: ...
def new_block(size: int) -> memoryview: ...
def fill_columns(
    offsets: npt.NDArray[np.int64],
    sequence: npt.NDArray[np.uint64],
    partition: npt.NDArray[np.uint32],
    producer_id: npt.NDArray[np.uint64],
    timestamp_ns: npt.NDArray[np.int64],
    frame_length: int,
    first_sequence: int,
    first_ns: int,
    interval_ns: int,
    producer: int,
    partition_value: int,
) -> None: ...
def _pool_state() -> tuple[int, int]: ...
