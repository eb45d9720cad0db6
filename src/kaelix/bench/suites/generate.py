"""The generate suite: `kaelix.testing.generate` making seeded `MessageBatch`es, beside the
plain way (``Message`` objects built in Python, then ``MessageBatch.from_messages``) and a
copy of the same bytes with numpy for scale.

"Generate N messages" means a `MessageGenerator` made untimed, then ``N`` messages drawn
from it in batches of 65,536 (about 8 MB of 64 B frames, the size `generate_batches` uses
for totals larger than memory): every batch a whole `MessageBatch`, frames with their CRC32C
and numpy columns. Sequences go on across calls, which costs nothing more. Messages per
second count messages made; bytes per second count frame bytes.

Imports the public kaelix API (``kaelix.testing.generate``, ``kaelix.Message``,
``kaelix.MessageBatch``) inside the factories, and numpy; never numba nor kaelix's private
modules.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from kaelix.bench._model import Bar, Case, Contender, Suite, SuiteConfig, Workload
from kaelix.bench.suites._options import message_count, payload_size, size_label

if TYPE_CHECKING:
    from kaelix import Message, MessageBatch
    from kaelix.testing.generate import MessageGenerator

PAYLOAD_SIZE = 64
SEED = 20_241_206
HEADER_SIZE = 56


@dataclass(frozen=True)
class GenerateSizes:
    """How much each case makes: ``messages`` per kaelix call (in batches of
    ``batch_size``), ``reference_messages`` per call of the plain Python contender (compared
    per message), ``mixed_messages`` per call of the realistic-mix case."""

    messages: int = 1_000_000
    batch_size: int = 65_536
    reference_messages: int = 20_000
    mixed_messages: int = 100_000


QUICK_SIZES = GenerateSizes()
FULL_SIZES = GenerateSizes(
    messages=10_000_000, reference_messages=100_000, mixed_messages=1_000_000
)

MIXED = "realistic sizes, Zipf keys over 10,000, 4 partitions \u00d7 3 producers"


def frame_size(payload: int, key: int = 0) -> int:
    """Bytes of a frame with a ``payload``-byte payload and a ``key``-byte key, no headers."""
    return (HEADER_SIZE + key + payload + 7) & ~7


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(f"sanity check failed: {what}")


def draw(generator: MessageGenerator, total: int, batch_size: int) -> int:
    """Draws ``total`` messages from ``generator`` in batches of ``batch_size`` and returns
    how many it got (the timed call)."""
    made = 0
    for batch in generator.batches(total, batch_size):
        made += len(batch)
    return made


def _kaelix(sizes: GenerateSizes, payload: int, threads: int) -> Workload:
    from kaelix.testing.generate import MessageGenerator
    from kaelix.validate import check_delivery

    generator = MessageGenerator(SEED, payload=payload, threads=threads)
    first = next(generator.batches(min(sizes.batch_size, sizes.messages), sizes.batch_size))
    _expect(first.nbytes == len(first) * frame_size(payload), "frame sizes")
    _expect(check_delivery(first, first).ok, "consecutive sequences")
    _expect(len(first) < 3 or bytes(first.payload(1)) != bytes(first.payload(2)), "payloads")

    def call() -> int:
        return draw(generator, sizes.messages, sizes.batch_size)

    return Workload(call, messages=sizes.messages, nbytes=sizes.messages * frame_size(payload))


def python_messages(count: int, payload: int, seed: int = SEED) -> list[Message]:
    """``count`` Messages built one by one in Python: seeded payload slices of a 64 KiB
    pool, one producer, one partition, consecutive sequences and timestamps."""
    from kaelix import Message

    rng = np.random.default_rng(seed)
    pool = rng.bytes(65_536 + payload)
    starts = rng.integers(0, 65_536, count).tolist()
    return [
        Message(
            pool[start : start + payload],
            producer_id=7,
            sequence=index,
            timestamp_ns=1_767_225_600_000_000_000 + index * 1_000,
        )
        for index, start in enumerate(starts)
    ]


def _python(sizes: GenerateSizes, payload: int) -> Workload:
    from kaelix import MessageBatch

    count = min(sizes.reference_messages, sizes.messages)

    def call() -> MessageBatch:
        return MessageBatch.from_messages(python_messages(count, payload))

    _expect(call().nbytes == count * frame_size(payload), "the reference's frame sizes")
    return Workload(call, messages=count, nbytes=count * frame_size(payload))


def _numpy_copy(sizes: GenerateSizes, payload: int) -> Workload:
    """Copies N frames' worth of bytes, a batch at a time, from one buffer into another."""
    batch = min(sizes.batch_size, sizes.messages) * frame_size(payload)
    source = np.frombuffer(os.urandom(batch), np.uint8)
    target = np.empty_like(source)
    batches, rest = divmod(sizes.messages * frame_size(payload), batch)

    def call() -> None:
        for _ in range(batches):
            np.copyto(target, source)
        np.copyto(target[:rest], source[:rest])

    return Workload(call, messages=sizes.messages, nbytes=sizes.messages * frame_size(payload))


def _mixed(sizes: GenerateSizes) -> Workload:
    from kaelix.testing.generate import MessageGenerator, ZipfKeys, realistic_sizes
    from kaelix.validate import check_delivery

    generator = MessageGenerator(
        SEED,
        payload=realistic_sizes(),
        keys=ZipfKeys(10_000),
        partitions=4,
        producers=3,
        threads=2,
    )
    first = next(generator.batches(sizes.batch_size, sizes.batch_size))
    _expect(check_delivery(first, first).ok, "consecutive sequences per stream")
    _expect(len(set(first.partition.tolist())) == 4, "every partition used")
    # Realistic sizes average about 1.6 KB a frame: count the frame bytes actually made.
    average = first.nbytes / max(len(first), 1)

    def call() -> int:
        return draw(generator, sizes.mixed_messages, sizes.batch_size)

    return Workload(call, messages=sizes.mixed_messages, nbytes=int(sizes.mixed_messages * average))


_BAR = Bar("\u2265 50 M msg/s", "min_messages_per_s", 50e6)


def cases(config: SuiteConfig, sizes: GenerateSizes | None = None) -> Sequence[Case]:
    """The generate cases. ``sizes`` defaults to `QUICK_SIZES` in quick mode and
    `FULL_SIZES` in full mode (the tests pass tiny ones). ``--messages`` sets N (the plain
    Python contender makes at most its own count) and ``--size`` the payload size of the
    first case."""
    if sizes is None:
        sizes = QUICK_SIZES if config.quick else FULL_SIZES
    messages = message_count(config, 0, "generate")
    if messages:
        sizes = replace(
            sizes, messages=messages, mixed_messages=min(sizes.mixed_messages, messages)
        )
    payload = payload_size(config, PAYLOAD_SIZE, "generate")
    label = size_label(payload)
    batches = f"in batches of {sizes.batch_size:,}"
    reference = min(sizes.reference_messages, sizes.messages)
    return (
        Case(
            f"generate {sizes.messages:,} messages of {label}",
            (
                Contender(
                    "kaelix",
                    lambda: _kaelix(sizes, payload, 2),
                    role="kaelix",
                    note=f"MessageGenerator(seed, payload={payload}, threads=2).batches(N, "
                    f"{sizes.batch_size:,}): frames, CRC32C and columns, two threads on "
                    "batches of 32,768 messages and more",
                ),
                Contender(
                    "kaelix, one thread",
                    lambda: _kaelix(sizes, payload, 1),
                    role="reference",
                    note="the same with threads=1",
                ),
                Contender(
                    "Python Messages + from_messages",
                    lambda: _python(sizes, payload),
                    note=f"Message objects built in a Python loop (seeded payload slices), then "
                    f"MessageBatch.from_messages, on {reference:,} messages: compared per "
                    "message",
                ),
                Contender(
                    "numpy copy of the same bytes",
                    lambda: _numpy_copy(sizes, payload),
                    role="reference",
                    note=f"np.copyto of N frames' bytes {batches} (~8 MB, warm): the memory "
                    "traffic of writing the frames, with nothing computed",
                ),
            ),
            bars=(_BAR,),
            throughput="both",
            note=f"one producer, one partition, no key, {label} payloads; {batches}; "
            "bytes/s counts frame bytes",
        ),
        Case(
            f"generate {sizes.mixed_messages:,} messages, {MIXED}",
            (
                Contender(
                    "kaelix",
                    lambda: _mixed(sizes),
                    role="kaelix",
                    note="MessageGenerator(seed, payload=realistic_sizes(), "
                    "keys=ZipfKeys(10_000), partitions=4, producers=3, threads=2)",
                ),
            ),
            throughput="both",
            note=f"{batches}; realistic_sizes() averages about 1.6 KB a frame; no bar: the general "
            "path (sizes drawn, keys, sequences per stream) for scale",
        ),
    )


SUITE = Suite(
    name="generate",
    description="kaelix.testing.generate: seeded MessageBatches vs Messages built in Python",
    cases=cases,
    options=("size", "messages"),
)
