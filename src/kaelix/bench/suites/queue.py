"""The queue suite: `kaelix.Queue` between processes, beside the queues a user would pick
instead for the same job, ``multiprocessing.Queue`` and ``faster_fifo.Queue``, in the same run.

Every contender moves the same items between the same processes: small pickled objects (a
5-tuple of ints, ``(j,) * 5``, as in faster-fifo's own comparison) and 64 B and 4 KiB
``bytes``; from 1 producer to 1 consumer, 4 to 1 and 4 to 4, all spawned processes; one item
per call (``put`` / ``get``) and batched (kaelix and faster-fifo ``put_many`` of 1,024 items
and ``get_many`` of at most 1,024; ``multiprocessing.Queue``, which has no batch call, one
list of 1,024 items per ``put``). Each consumer takes exactly its share of the items and
sums their first elements; the bench checks that the consumers got every item, with the
expected checksum, and that nothing is left in the queue. A trial is timed by the consumers,
from the earliest first receipt to the latest last receipt (`kaelix.bench._procs.QueueGroup`).

Bars (``DESIGN.md``, issue 8), on every row: kaelix at least 5 times as fast as
``multiprocessing.Queue`` and 1.5 times as fast as faster-fifo; batched rows also at least as
fast as faster-fifo's ``get_many``. Quick mode runs the 1->1 rows of the 5-tuple and the
one-at-a-time 4->4 row of 4 KiB bytes (spawning up to eight processes per contender is most
of a case's time); ``--full`` runs every row.

Imports the public kaelix API only (through the workers in `kaelix.bench._procs`, which
import multiprocessing and faster_fifo when a factory starts them). Never import numba here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from kaelix.bench._model import Bar, Case, Contender, Suite, SuiteConfig, Workload
from kaelix.bench._procs import (
    QUEUE_ITEMS,
    TUPLE_ITEM,
    Form,
    QueueItems,
    QueueKind,
    open_queue_group,
)
from kaelix.bench.suites._options import message_count, payload_size, size_label

KIB = 1024
MIB = 1024 * KIB
ITEM_SIZES: tuple[int, ...] = (TUPLE_ITEM, 64, 4 * KIB)
"""The items of each row: the 5-tuple, then bytes of these sizes."""

TOPOLOGIES: tuple[tuple[int, int], ...] = ((1, 1), (4, 1), (4, 4))
"""(producer processes, consumer processes) of each row."""

FORMS: tuple[Form, ...] = ("one", "batch")

Row = tuple[int, tuple[int, int], Form]
"""(item size, (producers, consumers), form): one case."""

QUICK_ROWS: frozenset[Row] = frozenset(
    {
        (TUPLE_ITEM, (1, 1), "one"),
        (TUPLE_ITEM, (1, 1), "batch"),
        (4 * KIB, (4, 4), "one"),
    }
)
"""The rows quick mode runs: 1->1 of the small pickled object, one at a time and batched,
and 4->4 of 4 KiB bytes one at a time, about 15 s in all on a 2-core machine (each
contender of a 4->4 row spawns eight processes). ``--full`` runs every row."""


@dataclass(frozen=True)
class QueueSizes:
    """How much each case moves.

    ``one_items``: items per trial one at a time; ``batch_items``: items per trial batched,
    for the 5-tuple and 64 B; ``large_batch_items``: the same for 4 KiB (each trial moves
    this many times 4 KiB). Each is rounded up to a multiple of 1,024 times the producers
    times the consumers (every producer sends whole rounds of its 1,024 items, every consumer
    takes an equal share). ``capacity``: bytes of the queue for the 5-tuple and 64 B (kaelix's
    default); ``large_capacity``: for 4 KiB (room for several batches of 1,024). faster-fifo
    gets the same capacity as kaelix. ``rows``: the rows to run (None: all).
    """

    one_items: int = 32_768
    batch_items: int = 131_072
    large_batch_items: int = 32_768
    capacity: int = 4 * MIB
    large_capacity: int = 16 * MIB
    rows: frozenset[Row] | None = QUICK_ROWS


QUICK_SIZES = QueueSizes()
FULL_SIZES = QueueSizes(one_items=65_536, batch_items=262_144, large_batch_items=65_536, rows=None)


def _label(size: int) -> str:
    if size == TUPLE_ITEM:
        return "5-tuple of ints"
    return f"{size_label(size)} bytes"


def _bytes_label(capacity: int) -> str:
    return f"{capacity // MIB} MiB" if capacity >= MIB else f"{capacity // KIB} KiB"


def _items(size: int, topology: tuple[int, int], form: Form, sizes: QueueSizes) -> int:
    if form == "one":
        target = sizes.one_items
    else:
        target = sizes.large_batch_items if size >= KIB else sizes.batch_items
    producers, consumers = topology
    unit = QUEUE_ITEMS * producers * consumers
    return -(-target // unit) * unit


def _capacity(size: int, sizes: QueueSizes) -> int:
    return sizes.large_capacity if size >= KIB else sizes.capacity


def _workload(
    kind: QueueKind,
    size: int,
    topology: tuple[int, int],
    form: Form,
    n: int,
    capacity: int,
) -> Workload:
    producers, consumers = topology
    group = open_queue_group(kind, QueueItems(size), producers, consumers, capacity=capacity)
    return Workload(
        functools.partial(group.throughput, n, form),
        messages=n,
        nbytes=0 if size == TUPLE_ITEM else n * size,
        timer="call",
        close=group.close,
    )


def _contenders(
    size: int, topology: tuple[int, int], form: Form, n: int, sizes: QueueSizes
) -> tuple[Contender, ...]:
    capacity = _capacity(size, sizes)
    room = _bytes_label(capacity)
    batched = form == "batch"
    batch = f"{QUEUE_ITEMS:,}"
    pickled = size == TUPLE_ITEM

    def factory(kind: QueueKind) -> Callable[[], Workload]:
        return lambda: _workload(kind, size, topology, form, n, capacity)

    kaelix_calls = (
        f"put_many(list of {batch}) / get_many(at most {batch})" if batched else "put(item) / get()"
    )
    kaelix_how = "pickled (protocol 5)" if pickled else "bytes put as they are (no pickling)"
    mp_calls = (
        f"batches: one list of {batch} items per put, pickled as one object"
        if batched
        else "put(item) / get(), each item pickled"
    )
    ff_calls = (
        f"put_many(list of {batch}) / get_many(max_messages_to_get at most {batch})"
        if batched
        else "put(item) / get()"
    )
    ff_how = (
        "dumps=pickle.dumps, loads=pickle.loads (faster than its default, which goes "
        "through ForkingPickler)"
        if pickled
        else "the bytes as they are (dumps returns them, loads=bytes)"
    )
    return (
        Contender(
            "kaelix",
            factory("kaelix"),
            role="kaelix",
            note=f"kaelix.Queue(capacity_bytes={room}): {kaelix_calls}; {kaelix_how}",
        ),
        Contender(
            "multiprocessing.Queue",
            factory("multiprocessing"),
            note=f"multiprocessing.Queue (spawn context, unbounded): {mp_calls}",
        ),
        Contender(
            "faster-fifo",
            factory("faster_fifo"),
            requires=("faster_fifo",),
            note=f"faster_fifo.Queue({room}), the same byte capacity as kaelix's queue: "
            f"{ff_calls}; {ff_how}",
        ),
    )


def _faster(factor: float, peer: str) -> Bar:
    return Bar(f"\u2265 {factor:g}\u00d7 {peer}", "min_speedup", float(factor), peer=peer)


def _case(size: int, topology: tuple[int, int], form: Form, sizes: QueueSizes) -> Case:
    producers, consumers = topology
    n = _items(size, topology, form, sizes)
    batched = form == "batch"
    bars: tuple[Bar, ...] = (_faster(5, "multiprocessing.Queue"), _faster(1.5, "faster-fifo"))
    if batched:
        bars += (Bar("\u2265 faster-fifo get_many", "faster_than", peer="faster-fifo"),)
    how = f"batches of {QUEUE_ITEMS:,}" if batched else "one item per call"
    return Case(
        f"{producers}\u2192{consumers} processes, {how} ({_label(size)})",
        _contenders(size, topology, form, n, sizes),
        bars=bars,
        throughput="messages" if size == TUPLE_ITEM else "both",
        note=f"{n:,} items per trial: each of {producers} producer process(es) sends "
        f"{n // producers:,}, each of {consumers} consumer process(es) takes exactly "
        f"{n // consumers:,} and sums their first elements; the bench checks the count, the "
        "checksum and that the queue is left empty. Consumer-timed: the items after the "
        "earliest first receipt over the time from it to the latest last receipt; workers "
        "are spawned processes, started once per contender"
        + ("" if size == TUPLE_ITEM else "; byte rates count item bytes"),
    )


def cases(config: SuiteConfig, sizes: QueueSizes | None = None) -> Sequence[Case]:
    """The queue cases. ``sizes`` defaults to `QUICK_SIZES` in quick mode (a few rows) and
    `FULL_SIZES` in full mode (every row); the tests pass tiny ones.

    ``config.size`` (``--size``) makes every ``bytes`` item that many bytes: the 64 B and
    4 KiB rows become one set of rows of that size (quick mode: its 4->4 one-at-a-time row);
    the 5-tuple rows are unchanged. ``config.messages`` (``--messages``) sets the items of
    every trial (each row rounds it up to a multiple of 1,024 times its producers times its
    consumers)."""
    if sizes is None:
        sizes = QUICK_SIZES if config.quick else FULL_SIZES
    item_size = payload_size(config, 0, "queue")
    items = message_count(config, 0, "queue")
    if items:
        sizes = replace(sizes, one_items=items, batch_items=items, large_batch_items=items)

    def sized(size: int) -> int:
        return item_size if item_size and size != TUPLE_ITEM else size

    rows = dict.fromkeys(
        (sized(size), topology, form)
        for size in ITEM_SIZES
        for topology in TOPOLOGIES
        for form in FORMS
        if sizes.rows is None or (size, topology, form) in sizes.rows
    )
    return tuple(_case(size, topology, form, sizes) for size, topology, form in rows)


SUITE = Suite(
    name="queue",
    description="kaelix.Queue vs multiprocessing.Queue and faster-fifo: pickled 5-tuples and "
    "64 B / 4 KiB bytes, 1\u21921, 4\u21921 and 4\u21924 processes, one at a time and batched",
    cases=cases,
    options=("size", "messages"),
)
