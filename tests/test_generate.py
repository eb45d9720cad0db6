"""kaelix.testing.generate and kaelix.testing.load: the compiled frame writer against the
plain-Python reference encoder, reproducibility, distributions (checked loosely on seeded
samples, so they cannot flake), streams and sequences, frame files, load patterns against
hand-computed values, and argument checks with their exact messages."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kaelix
import reference
from kaelix import DecodeError, Message, MessageBatch
from kaelix._generate import POOL_SLACK, _pool_state, new_block, pool_start, write_frames
from kaelix.testing import load
from kaelix.testing.generate import (
    DEFAULT_START_NS,
    Exponential,
    Fixed,
    MessageGenerator,
    Mix,
    Normal,
    Pareto,
    SequentialKeys,
    Uniform,
    UniformKeys,
    ZipfKeys,
    generate,
    generate_batches,
    read_file,
    realistic_sizes,
    write_file,
)
from kaelix.validate import check_delivery

properties = settings(deadline=None, max_examples=60)


def payload_lengths(batch: MessageBatch) -> npt.NDArray[np.int64]:
    """Each frame's payload_length field, read from the buffer."""
    data = np.frombuffer(batch.buffer, np.uint8)
    at = batch.offsets[:-1] + 52
    fields = [data[at + k].astype(np.int64) << (8 * k) for k in range(4)]
    total: npt.NDArray[np.int64] = fields[0] | fields[1] | fields[2] | fields[3]
    return total


# ------------------------------------------------------------ compiled writer vs reference

column_draws = st.lists(
    st.tuples(
        st.integers(0, 300),  # payload length
        st.integers(0, 2**64 - 1),  # key index
        st.integers(0, 2**32 - 1),  # partition
        st.integers(0, 2**64 - 1),  # producer id
        st.integers(0, 2**64 - 1),  # sequence
        st.integers(-(2**63), 2**63 - 1),  # timestamp
    ),
    max_size=12,
)


@properties
@given(
    rows=column_draws,
    keyed=st.booleans(),
    fixed=st.one_of(st.none(), st.integers(0, 200)),
    seed=st.integers(0, 2**64 - 1),
    first_index=st.integers(0, 2**63),
    threads=st.sampled_from([1, 2]),
    pool_seed=st.integers(0, 1000),
)
def test_frames_match_the_reference_encoder(
    rows: list[tuple[int, int, int, int, int, int]],
    keyed: bool,
    fixed: int | None,
    seed: int,
    first_index: int,
    threads: int,
    pool_seed: int,
) -> None:
    pool = np.random.default_rng(pool_seed).bytes(512 + POOL_SLACK)
    n = len(rows)
    lengths = [fixed if fixed is not None else row[0] for row in rows]
    key_length = 8 if keyed else 0
    sizes = [reference.align8(56 + key_length + length) for length in lengths]
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(sizes, out=offsets[1:])
    checksum = np.empty(n, np.uint32)
    out = write_frames(
        offsets,
        np.array([row[4] for row in rows], np.uint64),
        np.array([row[2] for row in rows], np.uint32),
        np.array([row[3] for row in rows], np.uint64),
        np.array([row[5] for row in rows], np.int64),
        checksum,
        None if fixed is not None else np.array(lengths, np.uint32),
        fixed or 0,
        np.array([row[1] for row in rows], np.uint64) if keyed else None,
        pool,
        seed,
        first_index,
        threads,
    )
    expected = []
    for i, (row, length) in enumerate(zip(rows, lengths, strict=True)):
        start = pool_start(seed, (first_index + i) % 2**64, length, len(pool) - POOL_SLACK)
        assert 0 <= start <= len(pool) - POOL_SLACK - length
        key = row[1].to_bytes(8, "big") if keyed else None
        fields: dict[str, Any] = {
            "partition": row[2],
            "producer_id": row[3],
            "sequence": row[4],
            "timestamp_ns": row[5],
        }
        frame = reference.encode(pool[start : start + length], key, {}, **fields)
        assert frame == kaelix.encode(Message(pool[start : start + length], key=key, **fields))
        expected.append(frame)
    assert out == b"".join(expected)
    batch = MessageBatch.from_bytes(out)
    assert batch.checksum.tolist() == checksum.tolist()
    assert batch.offsets.tolist() == offsets.tolist()


def test_the_two_threaded_writer_writes_the_same_bytes() -> None:
    one = generate(100_003, seed=5, payload=Uniform(0, 100), partitions=3, threads=1)
    two = generate(100_003, seed=5, payload=Uniform(0, 100), partitions=3, threads=2)
    assert one == two
    assert np.array_equal(one.checksum, two.checksum)


def test_one_stream_columns_match_the_general_path() -> None:
    # timestamps= sends the same messages through the numpy columns; without it, one
    # stream of fixed-size frames gets its columns from the compiled fill.
    times = DEFAULT_START_NS + 1_000 * np.arange(70_000, dtype=np.int64)
    simple = generate(70_000, seed=6, start_sequence=2**64 - 5)
    general = generate(70_000, seed=6, start_sequence=2**64 - 5, timestamps=times)
    assert simple == general
    for name in ("offsets", "sequence", "partition", "producer_id", "timestamp_ns", "checksum"):
        assert np.array_equal(getattr(simple, name), getattr(general, name)), name
    assert not simple.sequence.flags.writeable and not simple.offsets.flags.writeable


def test_frame_memory_is_recycled_within_bounds() -> None:
    for _ in range(3):
        batch = generate(100_000, seed=1)
        view = batch.buffer
        with pytest.raises(TypeError):
            view[0] = 0  # type: ignore[index]
        del batch, view
    blocks, nbytes = _pool_state()
    assert 1 <= blocks <= 4 and nbytes <= 256 << 20
    assert len(new_block(0)) == 0 and len(new_block(100)) == 100
    with pytest.raises(MemoryError, match="cannot allocate"):
        new_block(2**62)
    with pytest.raises(ValueError, match="size must be at least 0, got -1"):
        new_block(-1)


def test_write_frames_refuses_inconsistent_columns() -> None:
    ok = np.array([0, 120], np.int64)
    col = (np.zeros(1, np.uint64), np.zeros(1, np.uint32), np.zeros(1, np.uint64))
    stamp, crc = np.zeros(1, np.int64), np.zeros(1, np.uint32)
    pool = bytes(100)
    with pytest.raises(ValueError, match=r"offsets give frame 0 128 bytes"):
        write_frames(np.array([0, 128], np.int64), *col, stamp, crc, None, 64, None, pool, 0, 0)
    with pytest.raises(ValueError, match=r"partition has 1 entries; expected 2"):
        write_frames(ok, np.zeros(2, np.uint64), *col[1:], stamp, crc, None, 64, None, pool, 0, 0)
    with pytest.raises(ValueError, match=r"pool has 60 bytes; payloads need at least 72"):
        write_frames(ok, *col, stamp, crc, None, 64, None, bytes(60), 0, 0)


# ------------------------------------------------------------------------ reproducibility


def test_same_seed_same_bytes_and_different_seeds_differ() -> None:
    options: dict[str, Any] = {
        "payload": realistic_sizes(),
        "keys": ZipfKeys(1000),
        "partitions": 4,
        "producers": 3,
    }
    first = generate(5000, seed=11, **options)
    assert first == generate(5000, seed=11, **options)
    assert first.to_bytes() == generate(5000, seed=11, **options).to_bytes()
    other = generate(5000, seed=12, **options)
    assert first != other
    assert not np.array_equal(first.producer_id[:3], other.producer_id[:3])


def test_batches_are_reproducible_and_continue_the_streams() -> None:
    whole = list(generate_batches(10_000, batch_size=3_000, seed=3, partitions=2, producers=2))
    assert [len(b) for b in whole] == [3000, 3000, 3000, 1000]
    again = list(generate_batches(10_000, batch_size=3_000, seed=3, partitions=2, producers=2))
    assert whole == again
    joined = MessageBatch.concat(whole)
    assert check_delivery(joined, joined).ok
    # Fixed sizes and no keys: nothing random depends on the batch size, so any split gives
    # the same messages.
    assert joined == generate(10_000, seed=3, partitions=2, producers=2)


def test_payloads_are_seeded_bytes_not_zeros() -> None:
    batch = generate(100, seed=1)
    payloads = {bytes(batch.payload(i)) for i in range(len(batch))}
    assert len(payloads) == 100
    assert all(any(p) for p in payloads)
    assert bytes(generate(1, seed=2).payload(0)) != bytes(generate(1, seed=1).payload(0))


# ------------------------------------------------------------------ streams and sequences


@pytest.mark.parametrize(
    ("producers", "partitions", "keys"),
    [(1, 1, None), (3, 1, None), (1, 4, None), (3, 5, None), (2, 3, UniformKeys(50))],
)
def test_sequences_are_consecutive_per_stream_across_batches(
    producers: int, partitions: int, keys: UniformKeys | None
) -> None:
    generator = MessageGenerator(
        9, producers=producers, partitions=partitions, keys=keys, start_sequence=100
    )
    batch = MessageBatch.concat(generator.batches(5_000, 777))
    assert generator.messages_made == 5_000
    streams: dict[tuple[int, int], list[int]] = {}
    for producer, partition, sequence in zip(
        batch.producer_id.tolist(),
        batch.partition.tolist(),
        batch.sequence.tolist(),
        strict=True,
    ):
        streams.setdefault((producer, partition), []).append(sequence)
    for sequences in streams.values():
        assert sequences == list(range(100, 100 + len(sequences)))
    assert {p for p, _ in streams} == set(generator.producer_ids.tolist())
    assert len(set(generator.producer_ids.tolist())) == producers
    assert {q for _, q in streams} == set(range(partitions))
    report = check_delivery(batch, batch)
    assert report.ok and report.delivered == 5_000


def test_many_streams_keep_their_next_sequences_in_a_dict() -> None:
    # 2 x 2**20 streams: more than the generator's table holds.
    generator = MessageGenerator(2, producers=2, partitions=2**20, keys=UniformKeys(3))
    batch = MessageBatch.concat(generator.batches(3_000, 700))
    assert check_delivery(batch, batch).ok
    for producer in generator.producer_ids.tolist():
        for partition in range(3):
            picked = (batch.producer_id == producer) & (batch.partition == partition)
            assert batch.sequence[picked].tolist() == list(range(int(picked.sum())))


def test_producers_take_turns_and_keyed_messages_go_to_their_keys_partition() -> None:
    batch = generate(1_000, seed=4, producers=[7, 8], partitions=4, keys=UniformKeys(64))
    assert batch.producer_id.tolist() == [7, 8] * 500
    keys = np.array([int.from_bytes(m.key or b"", "big") for m in batch])
    assert keys.max() < 64
    assert np.array_equal(batch.partition, keys % 4)


def test_unkeyed_messages_round_robin_over_partitions_per_producer() -> None:
    batch = generate(12, producers=2, partitions=3)
    assert batch.partition.tolist() == [0, 0, 1, 1, 2, 2, 0, 0, 1, 1, 2, 2]
    assert batch[0].key is None


def test_sequences_wrap_at_two_to_the_64() -> None:
    batch = generate(3, start_sequence=2**64 - 2)
    assert batch.sequence.tolist() == [2**64 - 2, 2**64 - 1, 0]
    assert generate(2, start_sequence=2**64 - 2).sequence.tolist() == [2**64 - 2, 2**64 - 1]


# --------------------------------------------------------------------------- timestamps


def test_default_timestamps_start_and_spacing() -> None:
    batch = generate(4, start_ns=10, interval_ns=5)
    assert batch.timestamp_ns.tolist() == [10, 15, 20, 25]
    assert generate(2).timestamp_ns.tolist() == [DEFAULT_START_NS, DEFAULT_START_NS + 1000]
    generator = MessageGenerator(start_ns=0, interval_ns=7)
    generator.batch(3)
    assert generator.batch(2).timestamp_ns.tolist() == [21, 28]


def test_timestamps_from_a_load_pattern() -> None:
    times = load.burst(6, size=3, period_ns=1_000, spacing_ns=10, start_ns=5)
    batch = generate(6, timestamps=times)
    assert batch.timestamp_ns.tolist() == [5, 15, 25, 1005, 1015, 1025]
    generator = MessageGenerator(timestamps=times)
    generator.batch(4)
    with pytest.raises(ValueError, match="timestamps holds 6 send times; 8 messages"):
        generator.batch(4)


# ------------------------------------------------------------------------ distributions

RNG_SEED = 1234
SAMPLES = 200_000


def sample(distribution: Any) -> npt.NDArray[np.float64]:
    sizes = distribution.sample(np.random.default_rng(RNG_SEED), SAMPLES)
    assert sizes.dtype == np.uint32 and len(sizes) == SAMPLES
    values: npt.NDArray[np.float64] = sizes.astype(np.float64)
    return values


def test_fixed_and_uniform_sizes() -> None:
    assert set(sample(Fixed(17)).tolist()) == {17.0}
    uniform = sample(Uniform(10, 20))
    assert set(uniform.tolist()) == set(map(float, range(10, 21)))
    assert abs(uniform.mean() - 15) < 0.1


def test_normal_exponential_and_pareto_sizes() -> None:
    normal = sample(Normal(500, 50))
    assert abs(normal.mean() - 500) < 2 and abs(normal.std() - 50) < 2
    assert sample(Normal(10, 100, low=5, high=40)).min() == 5
    exponential = sample(Exponential(1000, high=10**6))
    assert abs(exponential.mean() - 1000) < 20
    assert abs(np.median(exponential) - 1000 * np.log(2)) < 20
    shifted = sample(Exponential(300, low=100, high=10**6))
    assert shifted.min() == 100 and abs(shifted.mean() - 300) < 5
    pareto = sample(Pareto(3.0, 100, high=10**6))
    assert pareto.min() == 100
    assert abs(pareto.mean() - 150) < 3  # shape * minimum / (shape - 1)
    assert sample(Pareto(1.1, 100, high=5000)).max() == 5000


def test_mixes_and_the_realistic_mix() -> None:
    mixed = sample(Mix(((3, Fixed(1)), (1, Fixed(2)))))
    assert abs((mixed == 1).mean() - 0.75) < 0.01
    realistic = sample(realistic_sizes())
    # Sizes of 4 KiB and more: the Pareto tenth, and the exponential's tail past 4 KiB.
    tail = 0.1 + 0.3 * np.exp(-(4096 - 128) / (1024 - 128))
    assert abs((realistic >= 4096).mean() - tail) < 0.005
    assert realistic.max() <= 1 << 20 and realistic.min() >= 16
    assert realistic_sizes().longest == 1 << 20


def test_generated_payload_sizes_follow_the_distribution() -> None:
    batch = generate(20_000, seed=8, payload=Uniform(0, 1000))
    lengths = payload_lengths(batch)
    assert lengths.min() >= 0 and lengths.max() <= 1000
    assert abs(lengths.mean() - 500) < 15
    assert [len(batch.payload(i)) for i in range(5)] == lengths[:5].tolist()
    assert set(payload_lengths(generate(50, payload=3)).tolist()) == {3}


def test_key_distributions() -> None:
    rng = np.random.default_rng(RNG_SEED)
    uniform = UniformKeys(10).indexes(rng, 0, SAMPLES)
    assert set(uniform.tolist()) == set(range(10))
    assert abs(np.bincount(uniform.astype(np.int64)).min() / SAMPLES - 0.1) < 0.01
    assert SequentialKeys(5).indexes(rng, 3, 4).tolist() == [8, 9, 10, 11]
    zipf = ZipfKeys(100, exponent=1.0).indexes(rng, 0, SAMPLES).astype(np.int64)
    counts = np.bincount(zipf, minlength=100)
    harmonic = sum(1 / k for k in range(1, 101))
    assert abs(counts[0] / SAMPLES - 1 / harmonic) < 0.01
    assert counts[0] > 1.8 * counts[1] and zipf.max() < 100
    batch = generate(4, keys=SequentialKeys(2**64 - 2))
    assert [m.key for m in batch] == [
        (2**64 - 2).to_bytes(8, "big"),
        (2**64 - 1).to_bytes(8, "big"),
        bytes(8),
        (1).to_bytes(8, "big"),
    ]


# ---------------------------------------------------------------------------------- files


def test_file_round_trip_across_chunk_boundaries(tmp_path: Path) -> None:
    path = tmp_path / "frames.klx"
    batches = list(generate_batches(3_000, batch_size=1_000, seed=2, payload=Uniform(0, 300)))
    written = write_file(path, batches)
    assert written == sum(b.nbytes for b in batches) == os.path.getsize(path)
    whole = MessageBatch.concat(batches)
    for chunk in (56, 1_000, 4_096, 1 << 20):
        read = list(read_file(path, chunk_size=chunk))
        assert all(b.nbytes <= max(chunk, 56 + 300 + 8) for b in read)
        assert MessageBatch.concat(read) == whole
    assert next(iter(read_file(path, chunk_size=1 << 30))) == whole


def test_frames_larger_than_the_chunk(tmp_path: Path) -> None:
    path = tmp_path / "big.klx"
    batch = generate(5, payload=Fixed(10_000))
    write_file(path, batch)
    read = list(read_file(path, chunk_size=1_000))
    assert [len(b) for b in read] == [1] * 5
    assert MessageBatch.concat(read) == batch


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.klx"
    assert write_file(path, []) == 0
    assert list(read_file(path)) == []


def test_a_truncated_file_yields_whole_frames_then_raises(tmp_path: Path) -> None:
    path = tmp_path / "cut.klx"
    batch = generate(100, payload=64)  # 120-byte frames
    path.write_bytes(batch.to_bytes()[:-50])
    yielded: list[MessageBatch] = []
    with pytest.raises(DecodeError, match=r"truncated at file offset 11,950") as caught:
        for part in read_file(path, chunk_size=1_000):
            yielded.append(part)
    assert caught.value.reason == "truncated"
    assert caught.value.offset == 11_950
    assert caught.value.frame_offset == 99 * 120
    assert MessageBatch.concat(yielded) == batch[:99]


def test_a_corrupt_byte_is_reported_at_its_file_offset(tmp_path: Path) -> None:
    path = tmp_path / "bad.klx"
    data = bytearray(generate(100, payload=64).to_bytes())
    data[50 * 120 + 70] ^= 1
    path.write_bytes(bytes(data))
    yielded: list[MessageBatch] = []
    with pytest.raises(DecodeError) as caught:
        for part in read_file(path, chunk_size=1_000):
            yielded.append(part)
    error = caught.value
    assert (error.reason, error.offset, error.frame_offset) == (
        "checksum_mismatch",
        50 * 120 + 4,
        50 * 120,
    )
    assert f"{path}: checksum mismatch at file offset 6,004" in str(error)
    assert sum(len(b) for b in yielded) == 50


def test_garbage_after_frames(tmp_path: Path) -> None:
    path = tmp_path / "tail.klx"
    path.write_bytes(generate(3).to_bytes() + b"nope")
    with pytest.raises(DecodeError, match="bad magic at file offset 360") as caught:
        list(read_file(path))
    assert caught.value.offset == 360


def test_write_file_refuses_what_is_not_a_batch(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="item 1 is bytes"):
        write_file(tmp_path / "x", [generate(1), b"frames"])  # type: ignore[list-item]


# -------------------------------------------------------------------- argument checks


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: Fixed(-1), ValueError, "Fixed(size) must be from 0 to 16,777,216, got -1"),
        (lambda: Fixed(1.5), TypeError, "Fixed(size) must be an int, got float"),
        (lambda: Uniform(5, 4), ValueError, "Uniform needs low <= high, got low=5, high=4"),
        (lambda: Normal(10, -1), ValueError, "Normal(stddev) must be at least 0, got -1.0"),
        (lambda: Normal(float("nan"), 1), ValueError, "Normal(mean) must be finite, got nan"),
        (
            lambda: Exponential(10, low=20),
            ValueError,
            "Exponential needs low < mean <= high, got low=20, mean=10, high=65536",
        ),
        (lambda: Pareto(0, 10), ValueError, "Pareto(shape) must be above 0, got 0.0"),
        (lambda: Pareto(2, 0), ValueError, "Pareto(minimum) must be from 1 to 16,777,216"),
        (lambda: Mix(()), TypeError, "Mix(parts) must be a non-empty tuple"),
        (lambda: Mix(((1, 5),)), TypeError, "Mix(parts)[0] distribution must be Fixed"),
        (lambda: Mix(((0, Fixed(1)),)), ValueError, "Mix(parts) needs a weight above 0"),
        (lambda: UniformKeys(0), ValueError, "UniformKeys(count) must be from 1 to"),
        (lambda: ZipfKeys(2**27), ValueError, "ZipfKeys(count) must be from 1 to 67,108,864"),
        (lambda: generate(-1), ValueError, "count must be at least 0, got -1"),
        (lambda: generate(1, seed=-1), ValueError, "seed must be from 0 to"),
        (lambda: generate(1, payload="64"), TypeError, "payload must be an int or a size"),
        (lambda: generate(1, keys=5), TypeError, "keys must be None, UniformKeys"),
        (lambda: generate(1, partitions=0), ValueError, "partitions must be from 1 to"),
        (lambda: generate(1, producers=[1, 1]), ValueError, "producer ids must be distinct"),
        (lambda: generate(1, producers=[]), ValueError, "producers must name at least one"),
        (lambda: generate(1, producers="ab"), TypeError, "producers must be an int or a seq"),
        (lambda: generate(1, threads=3), ValueError, "threads must be from 1 to 2, got 3"),
        (lambda: generate(1, interval_ns=-1), ValueError, "interval_ns must be from 0"),
        (
            lambda: generate(1, timestamps=[0.5]),
            TypeError,
            "timestamps must be a 1-D array of integer nanoseconds, got 1-D float64",
        ),
        (
            lambda: generate(3, start_ns=2**63 - 2),
            ValueError,
            "timestamps would pass 2**63 - 1 ns",
        ),
        (lambda: generate_batches(10, batch_size=0), ValueError, "batch_size must be at least"),
        (lambda: read_file("x", chunk_size=8), ValueError, "chunk_size must be at least 56"),
        (lambda: load.constant(3, 0), ValueError, "rate must be finite and above 0"),
        (lambda: load.constant(-1, 5), ValueError, "count must be at least 0, got -1"),
        (lambda: load.constant(3, "5"), TypeError, "rate must be a number of messages"),
        (
            lambda: load.burst(3, size=3, period_ns=20, spacing_ns=10),
            ValueError,
            "a burst of size=3 spaced spacing_ns=10 lasts 20 ns, not less than period_ns=20",
        ),
        (
            lambda: load.sine(3, mean_rate=1, amplitude=1, period_ns=10),
            ValueError,
            "amplitude must be below mean_rate",
        ),
        (
            lambda: load.step(3, rates=[1, 0], step_ns=10),
            ValueError,
            "rates[1] must be finite and above 0",
        ),
        (lambda: load.step(3, rates=[], step_ns=10), TypeError, "rates must be a non-empty"),
        (
            lambda: load.constant(3, 1e-10),
            ValueError,
            "the last send time would pass 2**63 - 1 ns",
        ),
    ],
)
def test_bad_arguments_say_what_is_wrong(make: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        result = make()
        if not isinstance(result, (MessageBatch, np.ndarray)):
            list(result)


# -------------------------------------------------------------------------- load patterns


def test_constant_and_burst() -> None:
    assert load.constant(4, 1000, start_ns=7).tolist() == [7, 1_000_007, 2_000_007, 3_000_007]
    assert load.constant(3, 3).tolist() == [0, 333_333_333, 666_666_666]
    assert load.constant(0, 5).dtype == np.int64
    assert load.burst(5, size=2, period_ns=1000, spacing_ns=10).tolist() == [
        0,
        10,
        1000,
        1010,
        2000,
    ]


def test_ramp() -> None:
    # N(t) = t + t**2 (seconds) while the rate goes from 1 to 3 over 1 s; then 3 msg/s.
    times = load.ramp(5, start_rate=1, end_rate=3, duration_ns=1_000_000_000)
    golden = (5**0.5 - 1) / 2 * 1e9  # t + t**2 = 1
    assert times.tolist()[:3] == [0, int(golden), 1_000_000_000]
    assert times.tolist()[3:] == [1_333_333_333, 1_666_666_666]
    flat = load.ramp(3, start_rate=2, end_rate=2, duration_ns=10)
    assert flat.tolist() == [0, 500_000_000, 1_000_000_000]


def test_sine() -> None:
    # Whole periods send mean_rate * period messages, so message 2 is at 1 s exactly.
    times = load.sine(5, mean_rate=2, amplitude=1, period_ns=1_000_000_000)
    assert times[2] == 1_000_000_000 and times[4] == 2_000_000_000
    t = times[1] / 1e9  # 2t + (1 - cos 2 pi t) / (2 pi) = 1
    assert abs(2 * t + (1 - np.cos(2 * np.pi * t)) / (2 * np.pi) - 1) < 1e-8
    assert np.all(np.diff(load.sine(10_000, mean_rate=1e6, amplitude=9e5, period_ns=10**6)) >= 0)


def test_step() -> None:
    assert load.step(5, rates=[2, 4], step_ns=1_000_000_000).tolist() == [
        0,
        500_000_000,
        1_000_000_000,
        1_250_000_000,
        1_500_000_000,
    ]
    # A pause: nothing is sent during the second step.
    assert load.step(4, rates=[2, 0, 4], step_ns=1_000_000_000).tolist() == [
        0,
        500_000_000,
        2_000_000_000,
        2_250_000_000,
    ]


def test_poisson() -> None:
    times = load.poisson(200_001, 1_000_000, seed=3, start_ns=100)
    assert times[0] == 100 and np.all(np.diff(times) >= 0)
    assert abs((times[-1] - 100) / 200_000 - 1_000) < 10  # mean gap 1 us
    assert np.array_equal(times, load.poisson(200_001, 1_000_000, seed=3, start_ns=100))
    assert not np.array_equal(times, load.poisson(200_001, 1_000_000, seed=4, start_ns=100))


def test_the_examples_of_docs_generate_md_run() -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "generate.md").read_text("utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) == 4
    for block in blocks:
        exec(compile(block, "docs/generate.md", "exec"), {"__name__": "docs"})
