"""Bulk generators: seeded, reproducible ``MessageBatch``es of any size, and files of frames.

``generate(count, seed=...)`` makes one batch; ``MessageGenerator`` keeps the state between
batches (each stream's next sequence, the message index) so that ``generate_batches`` can
produce totals larger than memory whose sequences continue from batch to batch. The same seed
and arguments (``batch_size`` included) give byte-identical frames on every run, platform
and version of numpy that keeps its ``Generator`` streams stable (numpy promises this for
``PCG64``).

The frames are written by a compiled loop (``kaelix._generate``, GIL released) from columns
prepared with numpy; payload bytes are slices of a seeded pool at counter-based offsets, so
a message's payload depends only on the seed, its index in the stream and its size.

``write_file`` / ``read_file`` stream batches to and from a file of frames end to end (the
frame format and nothing else), in chunks of bounded size.

Load patterns (constant, burst, ramp, sine, step, Poisson) live in
``kaelix.testing.load``. This module imports numpy, the public kaelix API and the compiled
generator; never numba, hypothesis, the bench or the monitor.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np
import numpy.typing as npt

from kaelix import DecodeError, MessageBatch
from kaelix._codec import DEFAULT_MAX_FRAME_SIZE, HEADER_SIZE
from kaelix._generate import POOL_SLACK, fill_columns, new_block, write_frames

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "DEFAULT_START_NS",
    "Exponential",
    "Fixed",
    "GeneratorOptions",
    "MessageGenerator",
    "Mix",
    "Normal",
    "Pareto",
    "SequentialKeys",
    "Uniform",
    "UniformKeys",
    "ZipfKeys",
    "generate",
    "generate_batches",
    "read_file",
    "realistic_sizes",
    "write_file",
]

MAX_PAYLOAD = 1 << 24
"""The largest payload a size distribution may produce (16 MiB, the default frame limit
less room for the header and a key)."""

DEFAULT_START_NS = 1_767_225_600_000_000_000
"""The default first timestamp: 2026-01-01T00:00:00Z in nanoseconds since the Unix epoch."""

DEFAULT_BATCH_SIZE = 65_536
"""Messages per batch of `generate_batches` (about 8 MB of 64 B frames: small enough to stay
in the allocator's heap and the CPU's last-level cache)."""

_POOL_MIN = 1 << 16
_MAX_ZIPF_KEYS = 1 << 26
_U64 = 1 << 64


def _check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    number = int(value)
    if number < low or (high is not None and number > high):
        limit = f"from {low:,} to {high:,}" if high is not None else f"at least {low:,}"
        raise ValueError(f"{name} must be {limit}, got {number:,}")
    return number


def _check_float(name: str, value: object, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {number}")
    if positive and number <= 0:
        raise ValueError(f"{name} must be above 0, got {number}")
    if number < 0:
        raise ValueError(f"{name} must be at least 0, got {number}")
    return number


# ------------------------------------------------------------------- payload size distributions


@dataclass(frozen=True)
class Fixed:
    """Every payload is ``size`` bytes (0 to 16 MiB)."""

    size: int = 64

    def __post_init__(self) -> None:
        _check_int("Fixed(size)", self.size, 0, MAX_PAYLOAD)

    def sample(self, rng: np.random.Generator, count: int) -> npt.NDArray[np.uint32]:
        """``count`` payload sizes (all ``size``)."""
        return np.full(count, self.size, np.uint32)

    @property
    def longest(self) -> int:
        """The largest size this distribution produces."""
        return self.size


@dataclass(frozen=True)
class Uniform:
    """Payload sizes drawn uniformly from ``low`` to ``high`` bytes, both included."""

    low: int
    high: int

    def __post_init__(self) -> None:
        _check_int("Uniform(low)", self.low, 0, MAX_PAYLOAD)
        _check_int("Uniform(high)", self.high, 0, MAX_PAYLOAD)
        if self.high < self.low:
            raise ValueError(f"Uniform needs low <= high, got low={self.low}, high={self.high}")

    def sample(self, rng: np.random.Generator, count: int) -> npt.NDArray[np.uint32]:
        """``count`` payload sizes."""
        return rng.integers(self.low, self.high, count, dtype=np.uint32, endpoint=True)

    @property
    def longest(self) -> int:
        """The largest size this distribution produces."""
        return self.high


def _clipped(values: npt.NDArray[np.float64], low: int, high: int) -> npt.NDArray[np.uint32]:
    return np.clip(np.rint(values), low, high).astype(np.uint32)


@dataclass(frozen=True)
class Normal:
    """Payload sizes from a normal distribution of ``mean`` and ``stddev`` bytes, rounded to
    the nearest integer and clipped to ``[low, high]`` (so the mean of the sizes is only
    close to ``mean`` when the clipping seldom bites)."""

    mean: float
    stddev: float
    low: int = 0
    high: int = 65_536

    def __post_init__(self) -> None:
        _check_float("Normal(mean)", self.mean)
        _check_float("Normal(stddev)", self.stddev)
        _check_int("Normal(low)", self.low, 0, MAX_PAYLOAD)
        _check_int("Normal(high)", self.high, 0, MAX_PAYLOAD)
        if self.high < self.low:
            raise ValueError(f"Normal needs low <= high, got low={self.low}, high={self.high}")

    def sample(self, rng: np.random.Generator, count: int) -> npt.NDArray[np.uint32]:
        """``count`` payload sizes."""
        return _clipped(rng.normal(self.mean, self.stddev, count), self.low, self.high)

    @property
    def longest(self) -> int:
        """The largest size this distribution produces."""
        return self.high


@dataclass(frozen=True)
class Exponential:
    """Payload sizes from an exponential distribution of ``mean`` bytes (above ``low``:
    ``low + Exp(mean - low)``), rounded and clipped to ``high``."""

    mean: float
    low: int = 0
    high: int = 65_536

    def __post_init__(self) -> None:
        _check_float("Exponential(mean)", self.mean, positive=True)
        _check_int("Exponential(low)", self.low, 0, MAX_PAYLOAD)
        _check_int("Exponential(high)", self.high, 0, MAX_PAYLOAD)
        if not self.low < self.mean <= self.high:
            raise ValueError(
                f"Exponential needs low < mean <= high, got low={self.low}, "
                f"mean={self.mean}, high={self.high}"
            )

    def sample(self, rng: np.random.Generator, count: int) -> npt.NDArray[np.uint32]:
        """``count`` payload sizes."""
        values = self.low + rng.exponential(self.mean - self.low, count)
        return _clipped(values, self.low, self.high)

    @property
    def longest(self) -> int:
        """The largest size this distribution produces."""
        return self.high


@dataclass(frozen=True)
class Pareto:
    """Heavy-tailed payload sizes: a Pareto (type I) distribution with ``shape`` (alpha)
    and scale ``minimum`` bytes, rounded and clipped to ``high``. The mean is
    ``shape * minimum / (shape - 1)`` for shape above 1 (before clipping)."""

    shape: float
    minimum: int
    high: int = 1 << 20

    def __post_init__(self) -> None:
        _check_float("Pareto(shape)", self.shape, positive=True)
        _check_int("Pareto(minimum)", self.minimum, 1, MAX_PAYLOAD)
        _check_int("Pareto(high)", self.high, 1, MAX_PAYLOAD)
        if self.high < self.minimum:
            raise ValueError(
                f"Pareto needs minimum <= high, got minimum={self.minimum}, high={self.high}"
            )

    def sample(self, rng: np.random.Generator, count: int) -> npt.NDArray[np.uint32]:
        """``count`` payload sizes."""
        values = self.minimum * (1.0 + rng.pareto(self.shape, count))
        return _clipped(values, self.minimum, self.high)

    @property
    def longest(self) -> int:
        """The largest size this distribution produces."""
        return self.high


@dataclass(frozen=True)
class Mix:
    """A mixture: each payload's size comes from one of ``parts``, picked with probability
    proportional to its weight. ``parts`` is a tuple of ``(weight, distribution)``."""

    parts: tuple[tuple[float, SizeDistribution], ...]

    def __post_init__(self) -> None:
        if not isinstance(self.parts, tuple) or not self.parts:
            raise TypeError("Mix(parts) must be a non-empty tuple of (weight, distribution)")
        for index, part in enumerate(self.parts):
            if not (isinstance(part, tuple) and len(part) == 2):
                raise TypeError(f"Mix(parts)[{index}] must be a (weight, distribution) pair")
            _check_float(f"Mix(parts)[{index}] weight", part[0])
            if not isinstance(part[1], _DISTRIBUTIONS):
                raise TypeError(
                    f"Mix(parts)[{index}] distribution must be Fixed, Uniform, Normal, "
                    f"Exponential, Pareto or Mix, got {type(part[1]).__name__}"
                )
        if sum(weight for weight, _ in self.parts) <= 0:
            raise ValueError("Mix(parts) needs a weight above 0")

    def sample(self, rng: np.random.Generator, count: int) -> npt.NDArray[np.uint32]:
        """``count`` payload sizes."""
        weights = np.array([weight for weight, _ in self.parts], dtype=np.float64)
        which = rng.choice(len(self.parts), size=count, p=weights / weights.sum())
        sizes = np.empty(count, np.uint32)
        for index, (_, part) in enumerate(self.parts):
            chosen = which == index
            sizes[chosen] = part.sample(rng, int(chosen.sum()))
        return sizes

    @property
    def longest(self) -> int:
        """The largest size this distribution produces."""
        return max(part.longest for _, part in self.parts)


SizeDistribution = Fixed | Uniform | Normal | Exponential | Pareto | Mix
"""Any payload size distribution."""

_DISTRIBUTIONS = (Fixed, Uniform, Normal, Exponential, Pareto, Mix)


def realistic_sizes() -> Mix:
    """A mix shaped like application traffic: 60 % small events (normal, mean 96 B,
    stddev 32 B, 16 B to 512 B), 30 % medium records (exponential, mean 1 KiB, 128 B to
    16 KiB) and 10 % a heavy tail (Pareto, shape 1.5 from 4 KiB, capped at 1 MiB)."""
    return Mix(
        (
            (0.6, Normal(96, 32, low=16, high=512)),
            (0.3, Exponential(1024, low=128, high=16_384)),
            (0.1, Pareto(1.5, 4096, high=1 << 20)),
        )
    )


# -------------------------------------------------------------------------- key distributions


@dataclass(frozen=True)
class UniformKeys:
    """Keys drawn uniformly from ``count`` distinct keys."""

    count: int

    def __post_init__(self) -> None:
        _check_int("UniformKeys(count)", self.count, 1, _U64 - 1)

    def indexes(self, rng: np.random.Generator, first: int, count: int) -> npt.NDArray[np.uint64]:
        """The key index of ``count`` messages starting at message ``first``."""
        return rng.integers(0, self.count, count, dtype=np.uint64)


@dataclass(frozen=True)
class SequentialKeys:
    """Message ``i`` of the stream (counted across batches) has key index ``start + i``."""

    start: int = 0

    def __post_init__(self) -> None:
        _check_int("SequentialKeys(start)", self.start, 0, _U64 - 1)

    def indexes(self, rng: np.random.Generator, first: int, count: int) -> npt.NDArray[np.uint64]:
        """The key index of ``count`` messages starting at message ``first``."""
        base = (self.start + first) % _U64
        keys: npt.NDArray[np.uint64] = np.arange(count, dtype=np.uint64) + np.uint64(base)
        return keys


@dataclass(frozen=True)
class ZipfKeys:
    """Keys from ``count`` distinct keys with Zipf's law: key index ``k`` (0-based) has
    probability proportional to ``1 / (k + 1) ** exponent``, so a few keys are hot. At most
    2**26 keys (the cumulative table is built once per generator)."""

    count: int
    exponent: float = 1.1

    def __post_init__(self) -> None:
        _check_int("ZipfKeys(count)", self.count, 1, _MAX_ZIPF_KEYS)
        _check_float("ZipfKeys(exponent)", self.exponent, positive=True)

    def table(self) -> npt.NDArray[np.float64]:
        """The cumulative probabilities of key indexes 0 to count - 1."""
        weights = np.arange(1, self.count + 1, dtype=np.float64) ** -self.exponent
        cumulative = np.cumsum(weights)
        cumulative /= cumulative[-1]
        return cumulative

    def indexes(
        self,
        rng: np.random.Generator,
        first: int,
        count: int,
        table: npt.NDArray[np.float64] | None = None,
    ) -> npt.NDArray[np.uint64]:
        """The key index of ``count`` messages (``table`` saves rebuilding `table()`)."""
        cumulative = self.table() if table is None else table
        drawn = np.searchsorted(cumulative, rng.random(count), side="right")
        return np.minimum(drawn, self.count - 1).astype(np.uint64)


KeyDistribution = UniformKeys | SequentialKeys | ZipfKeys
"""Any key distribution."""


def _splitmix64(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    with np.errstate(over="ignore"):
        x = values + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        mixed: npt.NDArray[np.uint64] = x ^ (x >> np.uint64(31))
        return mixed


# ----------------------------------------------------------------------------------- generator


class MessageGenerator:
    """A seeded source of `MessageBatch`es whose streams continue from batch to batch.

    Message ``i`` (counted from 0 across every batch) is sent by producer ``i % producers``.
    Its partition is its key index modulo ``partitions`` when it has a key (the usual key
    partitioner), else ``(i // producers) % partitions`` (each producer round-robins over
    the partitions). Within each (producer, partition) stream, sequences are consecutive
    from ``start_sequence``, so ``kaelix.validate.check_delivery(batch, batch)`` is clean.
    Producer ids are distinct 64-bit values derived from the seed (or given).

    Timestamps are ``start_ns + i * interval_ns`` unless ``timestamps`` (an int64 array of
    send times, from ``kaelix.testing.load`` for instance) is given: message ``i`` then takes
    ``timestamps[i]``, and the generator can make at most ``len(timestamps)`` messages.

    Payloads are bytes of a seeded pool (at least 64 KiB, longer than the longest payload)
    starting at an offset drawn from the seed and ``i``: never all zeros, and the same for
    the same seed whatever the batch sizes. Keys are 8 bytes: the key index, big-endian.

    Args:
        seed: any int from 0 to 2**64 - 1; the same seed and arguments give the same bytes.
        payload: a size distribution (`Fixed`, `Uniform`, `Normal`, `Exponential`,
            `Pareto`, `Mix`, `realistic_sizes()`) or an int (a fixed size). Default 64 B.
        keys: None (no key), `UniformKeys`, `SequentialKeys` or `ZipfKeys`.
        partitions: partitions, 1 to 2**32.
        producers: how many producers (ids derived from the seed), or a sequence of
            distinct producer ids.
        start_sequence: the first sequence of every stream.
        start_ns, interval_ns: timestamps when ``timestamps`` is None.
        timestamps: send times in nanoseconds, one per message.
        threads: 1 or 2; two threads write large batches (32,768 messages and more).
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        payload: SizeDistribution | int = 64,
        keys: KeyDistribution | None = None,
        partitions: int = 1,
        producers: int | Sequence[int] = 1,
        start_sequence: int = 0,
        start_ns: int = DEFAULT_START_NS,
        interval_ns: int = 1_000,
        timestamps: npt.ArrayLike | None = None,
        threads: int = 1,
    ) -> None:
        self._seed = _check_int("seed", seed, 0, _U64 - 1)
        if isinstance(payload, (int, np.integer)) and not isinstance(payload, bool):
            payload = Fixed(int(payload))
        if not isinstance(payload, _DISTRIBUTIONS):
            raise TypeError(
                "payload must be an int or a size distribution (Fixed, Uniform, Normal, "
                f"Exponential, Pareto, Mix), got {type(payload).__name__}"
            )
        if keys is not None and not isinstance(keys, (UniformKeys, SequentialKeys, ZipfKeys)):
            raise TypeError(
                "keys must be None, UniformKeys, SequentialKeys or ZipfKeys, "
                f"got {type(keys).__name__}"
            )
        self._payload: SizeDistribution = payload
        self._keys = keys
        self._partitions = _check_int("partitions", partitions, 1, 1 << 32)
        rng = np.random.default_rng([self._seed, 0x6B786765])
        if isinstance(producers, (int, np.integer)) and not isinstance(producers, bool):
            count = _check_int("producers", producers, 1, 1 << 16)
            base = rng.integers(0, 1 << 63, dtype=np.uint64)
            ids = _splitmix64(np.arange(count, dtype=np.uint64) + base)
        elif isinstance(producers, Sequence) and not isinstance(producers, (str, bytes)):
            if not producers:
                raise ValueError("producers must name at least one producer id")
            checked = [
                _check_int(f"producers[{index}]", value, 0, _U64 - 1)
                for index, value in enumerate(producers)
            ]
            if len(set(checked)) != len(checked):
                raise ValueError(f"producer ids must be distinct, got {checked!r}")
            ids = np.array(checked, dtype=np.uint64)
        else:
            raise TypeError(
                f"producers must be an int or a sequence of ids, got {type(producers).__name__}"
            )
        self._producer_ids: npt.NDArray[np.uint64] = ids
        self._start_sequence = _check_int("start_sequence", start_sequence, 0, _U64 - 1)
        self._start_ns = _check_int("start_ns", start_ns, -(1 << 63), (1 << 63) - 1)
        self._interval_ns = _check_int("interval_ns", interval_ns, 0, (1 << 63) - 1)
        self._timestamps: npt.NDArray[np.int64] | None = None
        if timestamps is not None:
            times = np.asarray(timestamps)
            if times.ndim != 1 or times.dtype.kind not in "iu":
                raise TypeError(
                    "timestamps must be a 1-D array of integer nanoseconds, "
                    f"got {times.ndim}-D {times.dtype}"
                )
            self._timestamps = times.astype(np.int64, copy=False)
        self._threads = _check_int("threads", threads, 1, 2)
        self._rng = np.random.default_rng([self._seed, 0x73697A65])
        self._pool_seed = int(rng.integers(0, 1 << 63, dtype=np.uint64))
        pool_length = max(_POOL_MIN, payload.longest + 4096) + POOL_SLACK
        self._pool = np.random.default_rng([self._seed, 0x706F6F6C]).bytes(pool_length)
        self._zipf = keys.table() if isinstance(keys, ZipfKeys) else None
        streams = len(ids) * self._partitions
        self._next_sequence: npt.NDArray[np.uint64] | dict[int, int]
        self._next_sequence = (
            np.full(streams, self._start_sequence, np.uint64) if streams <= 1 << 20 else {}
        )
        self._index = 0

    @property
    def producer_ids(self) -> npt.NDArray[np.uint64]:
        """The producer ids, in the order producers take turns."""
        ids: npt.NDArray[np.uint64] = self._producer_ids.copy()
        return ids

    @property
    def messages_made(self) -> int:
        """How many messages the generator has made so far."""
        return self._index

    def _sequences(
        self, count: int, producer: npt.NDArray[np.intp], partition: npt.NDArray[np.uint32]
    ) -> npt.NDArray[np.uint64]:
        """Consecutive sequences per (producer, partition), continuing the last batch's
        (``producer`` and ``partition`` are ignored when there is one stream)."""
        partitions = self._partitions
        if len(self._producer_ids) * partitions == 1:
            assert isinstance(self._next_sequence, np.ndarray)
            start = int(self._next_sequence[0])
            self._next_sequence[0] = (start + count) % _U64
            if start + count <= _U64:  # one pass; past 2**64 the sequences wrap
                return np.arange(start, start + count, dtype=np.uint64)
            with np.errstate(over="ignore"):
                wrapped: npt.NDArray[np.uint64] = np.arange(count, dtype=np.uint64) + np.uint64(
                    start
                )
            return wrapped
        stream = producer.astype(np.int64) * partitions + partition
        streams, inverse, counts = np.unique(stream, return_inverse=True, return_counts=True)
        order = np.argsort(inverse, kind="stable")
        starts = np.cumsum(counts) - counts
        rank = np.empty(count, np.uint64)
        rank[order] = np.arange(count, dtype=np.uint64) - np.repeat(starts, counts).astype(
            np.uint64
        )
        table = self._next_sequence
        if isinstance(table, np.ndarray):
            first = table[streams]
            with np.errstate(over="ignore"):
                table[streams] = first + counts.astype(np.uint64)
        else:
            first = np.array(
                [table.get(int(s), self._start_sequence) for s in streams.tolist()], np.uint64
            )
            for s, f, c in zip(streams.tolist(), first.tolist(), counts.tolist(), strict=True):
                table[s] = (f + c) % _U64
        with np.errstate(over="ignore"):
            sequences: npt.NDArray[np.uint64] = first[inverse.reshape(-1)] + rank
        return sequences

    def _timestamps_from(self, first: int, count: int) -> int:
        """The first timestamp of messages ``first`` to ``first + count`` (checked to fit)."""
        start = self._start_ns + first * self._interval_ns
        end = start + count * self._interval_ns
        if end > (1 << 63) - 1:
            raise ValueError(
                f"timestamps would pass 2**63 - 1 ns: start_ns + messages * interval_ns = {end:,}"
            )
        return start

    def _one_stream(self, count: int, first: int) -> tuple[npt.NDArray[Any], ...]:
        """The columns of one stream of fixed-size frames without keys: laid out in one
        recycled block and filled in one compiled pass (numpy's five passes and temporary
        arrays cost a page fault every 4 KiB whenever the allocator had returned the memory
        to the system)."""
        assert isinstance(self._payload, Fixed)
        start_ns = self._timestamps_from(first, count)
        frame_length = (HEADER_SIZE + self._payload.size + 7) & ~7
        block = new_block(8 * (count + 1) + 32 * count + 4 * count)
        layout: tuple[tuple[type[np.generic], int], ...] = (
            (np.int64, count + 1),
            (np.uint64, count),
            (np.uint64, count),
            (np.int64, count),
            (np.uint32, count),
            (np.uint32, count),
        )
        arrays = []
        at = 0
        for dtype, length in layout:
            arrays.append(np.frombuffer(block, dtype, length, at))
            at += length * np.dtype(dtype).itemsize
        offsets, sequence, producer_id, timestamp, partition, checksum = arrays
        assert isinstance(self._next_sequence, np.ndarray)
        start = int(self._next_sequence[0])
        self._next_sequence[0] = (start + count) % _U64
        fill_columns(
            offsets,
            sequence,
            partition,
            producer_id,
            timestamp,
            frame_length,
            start,
            start_ns,
            self._interval_ns,
            int(self._producer_ids[0]),
            0,
        )
        return offsets, sequence, partition, producer_id, timestamp, checksum

    def _columns(
        self, count: int, first: int, key_index: npt.NDArray[np.uint64] | None
    ) -> tuple[Any, ...]:
        """Offsets, sequence, partition, producer_id and timestamp columns, and the payload
        lengths (None for fixed sizes), built with numpy."""
        key_length = 8 if key_index is not None else 0
        producers = len(self._producer_ids)
        lengths: npt.NDArray[np.uint32] | None = None
        if isinstance(self._payload, Fixed):
            frame_length = (HEADER_SIZE + key_length + self._payload.size + 7) & ~7
            offsets = np.arange(0, (count + 1) * frame_length, frame_length, dtype=np.int64)
        else:
            lengths = self._payload.sample(self._rng, count)
            offsets = np.empty(count + 1, np.int64)
            offsets[0] = 0
            frames = (lengths.astype(np.int64) + (HEADER_SIZE + key_length + 7)) & ~7
            np.cumsum(frames, out=offsets[1:])
        if producers == 1 and self._partitions == 1:
            producer_id = np.full(count, self._producer_ids[0], np.uint64)
            partition = np.zeros(count, np.uint32)
            sequence = self._sequences(count, np.zeros(0, np.intp), partition)
        else:
            index = np.arange(first, first + count, dtype=np.int64)
            producer = (index % producers).astype(np.intp)
            if key_index is not None:
                partition = (key_index % np.uint64(self._partitions)).astype(np.uint32)
            else:
                partition = ((index // producers) % self._partitions).astype(np.uint32)
            producer_id = self._producer_ids[producer]
            sequence = self._sequences(count, producer, partition)
        if self._timestamps is not None:
            timestamp = np.ascontiguousarray(self._timestamps[first : first + count])
        else:
            start = self._timestamps_from(first, count)
            end = start + count * self._interval_ns
            timestamp = (
                np.arange(start, end, self._interval_ns, dtype=np.int64)
                if self._interval_ns
                else np.full(count, start, np.int64)
            )
        return offsets, sequence, partition, producer_id, timestamp, lengths

    def batch(self, count: int) -> MessageBatch:
        """The next ``count`` messages, as one batch.

        Raises:
            ValueError: count is negative, or more messages than ``timestamps`` holds.
            FrameTooLarge: never for the sizes the distributions allow.
        """
        count = _check_int("count", count, 0)
        first = self._index
        if self._timestamps is not None and first + count > len(self._timestamps):
            raise ValueError(
                f"timestamps holds {len(self._timestamps):,} send times; "
                f"{first + count:,} messages were asked for"
            )
        producers = len(self._producer_ids)
        fixed = isinstance(self._payload, Fixed)
        key_index: npt.NDArray[np.uint64] | None = None
        if isinstance(self._keys, ZipfKeys):
            key_index = self._keys.indexes(self._rng, first, count, self._zipf)
        elif self._keys is not None:
            key_index = self._keys.indexes(self._rng, first, count)
        simple = (
            fixed
            and key_index is None
            and producers == 1
            and self._partitions == 1
            and self._timestamps is None
        )
        if simple:
            offsets, sequence, partition, producer_id, timestamp, checksum = self._one_stream(
                count, first
            )
            lengths = None
        else:
            offsets, sequence, partition, producer_id, timestamp, lengths = self._columns(
                count, first, key_index
            )
            checksum = np.empty(count, np.uint32)
        data = write_frames(
            offsets,
            sequence,
            partition,
            producer_id,
            timestamp,
            checksum,
            lengths,
            self._payload.size if isinstance(self._payload, Fixed) else 0,
            key_index,
            self._pool,
            self._pool_seed,
            first,
            self._threads,
        )
        self._index = first + count
        return MessageBatch._from_parts(
            data, (offsets, sequence, partition, producer_id, timestamp, checksum)
        )

    def batches(self, total: int, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[MessageBatch]:
        """The next ``total`` messages in batches of ``batch_size`` (the last one may be
        shorter), made one at a time as the iterator is consumed."""
        total = _check_int("total", total, 0)
        batch_size = _check_int("batch_size", batch_size, 1)
        return self._batches(total, batch_size)

    def _batches(self, total: int, batch_size: int) -> Iterator[MessageBatch]:
        made = 0
        while made < total:
            size = min(batch_size, total - made)
            yield self.batch(size)
            made += size

    def __repr__(self) -> str:
        return (
            f"MessageGenerator(seed={self._seed}, payload={self._payload!r}, "
            f"keys={self._keys!r}, partitions={self._partitions}, "
            f"producers={len(self._producer_ids)}, messages_made={self._index})"
        )


class GeneratorOptions(TypedDict, total=False):
    """The keyword arguments of `MessageGenerator` that `generate` and `generate_batches`
    pass on (see `MessageGenerator` for each)."""

    payload: SizeDistribution | int
    keys: KeyDistribution | None
    partitions: int
    producers: int | Sequence[int]
    start_sequence: int
    start_ns: int
    interval_ns: int
    timestamps: npt.ArrayLike | None
    threads: int


def generate(count: int, seed: int = 0, **options: Unpack[GeneratorOptions]) -> MessageBatch:
    """``count`` seeded messages as one `MessageBatch`: ``MessageGenerator(seed,
    **options)``'s first batch. The same arguments give the same bytes.

    >>> batch = generate(1000, seed=7, payload=Uniform(16, 256), partitions=4, producers=2)
    >>> len(batch), sorted(set(batch.partition.tolist()))
    (1000, [0, 1, 2, 3])
    """
    return MessageGenerator(seed, **options).batch(count)


def generate_batches(
    total: int,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = 0,
    **options: Unpack[GeneratorOptions],
) -> Iterator[MessageBatch]:
    """``total`` seeded messages in batches of ``batch_size`` (the last may be shorter),
    made lazily as the iterator is consumed, for totals larger than memory; sequences
    continue from batch to batch: ``MessageGenerator(seed, **options).batches(total,
    batch_size)``."""
    return MessageGenerator(seed, **options).batches(total, batch_size)


# ---------------------------------------------------------------------------------------- files

PathLike = str | os.PathLike[str]

DEFAULT_CHUNK_SIZE = 8 << 20
"""Bytes `read_file` reads at a time (a batch it yields holds at most this many, unless one
frame is larger)."""


def write_file(path: PathLike, batches: MessageBatch | Iterable[MessageBatch]) -> int:
    """Writes the frames of ``batches`` to ``path``, end to end and nothing else (the file is
    created or truncated). Returns the bytes written.

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "frames.klx")
    >>> write_file(path, generate_batches(10, batch_size=4))
    1200
    """
    items: Iterable[MessageBatch] = [batches] if isinstance(batches, MessageBatch) else batches
    written = 0
    with open(path, "wb") as out:
        for index, batch in enumerate(items):
            if not isinstance(batch, MessageBatch):
                raise TypeError(
                    f"batches must be MessageBatch objects; item {index} is {type(batch).__name__}"
                )
            out.write(batch.buffer)
            written += batch.nbytes
    return written


def _located(error: DecodeError, path: PathLike, base: int) -> DecodeError:
    offset, frame_offset = base + error.offset, base + error.frame_offset
    reason = error.reason.replace("_", " ")
    return DecodeError(
        f"{os.fspath(path)}: {reason} at file offset {offset:,} (frame at file offset "
        f"{frame_offset:,}); within the chunk read at {base:,}: {error}",
        error.reason,
        offset,
        frame_offset,
    )


def read_file(
    path: PathLike,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
) -> Iterator[MessageBatch]:
    """The frames of a file written by `write_file` (or any frames end to end), as batches
    of at most ``chunk_size`` bytes each (one frame larger than that comes alone), read one
    chunk at a time. A frame that crosses a chunk boundary is carried into the next batch.

    Every frame is validated as ``MessageBatch.from_bytes`` does. A bad frame, or a file
    that ends inside a frame, raises `kaelix.DecodeError` whose ``offset`` and
    ``frame_offset`` are absolute in the file; the whole frames before it are yielded first.

    Raises:
        DecodeError: a frame is invalid or cut short (offsets in the file).
        OSError: the file cannot be read.
    """
    chunk_size = _check_int("chunk_size", chunk_size, HEADER_SIZE)
    _check_int("max_frame_size", max_frame_size, HEADER_SIZE, 0xFFFFFFF8)
    return _read_file(path, chunk_size, max_frame_size)


def _read_file(path: PathLike, chunk_size: int, max_frame_size: int) -> Iterator[MessageBatch]:
    with open(path, "rb") as source:
        base = 0  # file offset of pending[0]
        pending = b""
        need = chunk_size
        at_end = False
        while True:
            if not at_end and len(pending) < need:
                # Never ask for more than the file holds: read(n) allocates n bytes first.
                left = os.fstat(source.fileno()).st_size - source.tell()
                want = need - len(pending)
                fresh = source.read(min(want, max(left, 0)) if left < want else want)
                at_end = len(fresh) < want
                pending = pending + fresh if pending else fresh
            if not pending:
                return
            try:
                batch = MessageBatch.from_bytes(pending, max_frame_size=max_frame_size)
            except DecodeError as error:
                cut = error.frame_offset
                if cut:  # the whole frames before the bad or unfinished one
                    yield MessageBatch.from_bytes(pending[:cut], max_frame_size=max_frame_size)
                if error.reason != "truncated" or at_end:
                    raise _located(error, path, base) from None
                base += cut
                pending = pending[cut:]
                # A frame that crosses the chunk's end: read up to a chunk past it, or the
                # whole frame when it alone is longer than a chunk (at most max_frame_size,
                # which the scan has checked).
                length = int.from_bytes(pending[12:16], "little") if len(pending) >= 16 else 0
                need = max(chunk_size, length, len(pending) + 1)
                continue
            yield batch
            base += len(pending)
            pending = b""
            need = chunk_size
            if at_end:
                return
