"""What an idle in-process stream costs (issue 5): at most 1 KiB of Python allocations
each, measured with tracemalloc over 100,000 streams; and no rings, which are allocated on
first use: 100,000 idle streams of the default 1 MiB capacity grow the address space by far
less than one ring each (a ring is allocated with C calls that tracemalloc does not see,
hence the second measure, from /proc/self/status)."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Iterator

import pytest

from kaelix import Stream
from stream_workers import DEADLINE_S, unique_name

COUNT = 100_000


def virtual_memory_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmSize in /proc/self/status")


@pytest.fixture
def names() -> Iterator[list[str]]:
    """The names are made before any measure: they are the caller's, not the stream's."""
    prefix = unique_name()
    yield [f"{prefix}-{i}" for i in range(COUNT)]


def close_all(streams: list[Stream]) -> None:
    for stream in streams:
        stream.close()


def test_an_idle_stream_costs_at_most_1_kib(names: list[str]) -> None:
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        streams = [Stream(name) for name in names]
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    try:
        per_stream = (after - before) / COUNT
        assert per_stream <= 1024, f"{per_stream:.0f} bytes per idle stream"
        # and they are real streams: first use allocates a ring and works
        consumer = streams[-1].consumer()
        streams[-1].producer().send(b"first use")
        message = consumer.poll(timeout=DEADLINE_S)
        assert message is not None and message.payload == b"first use"
    finally:
        close_all(streams)


def test_idle_streams_allocate_no_rings(names: list[str]) -> None:
    gc.collect()
    before = virtual_memory_bytes()
    streams = [Stream(name, partitions=4) for name in names]
    try:
        grown = virtual_memory_bytes() - before
        per_stream = grown / COUNT
        # 4 partitions of 1 MiB each: one ring allocated per stream would be 1 MiB or more
        assert per_stream < 16 * 1024, f"the address space grew {per_stream:.0f} B per stream"
    finally:
        close_all(streams)
