"""check_delivery and DeliveryTracker: what a stream delivered, compared with what was sent
(or with consecutive sequences), over MessageBatch columns.

The counting runs in numba kernels (``_kernels``, imported on first use); this module checks
the input, lays out the tables the kernels fill, and builds the reports. Imports numpy and
the kaelix API; numba only through ``_kernels``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from kaelix._batch import MessageBatch
from kaelix.validate._reports import CATEGORIES, DeliveryReport, Example

Ordering = Literal["partition", "producer", "global", "none"]
_ORDERINGS = ("partition", "producer", "global", "none")
_COLUMNS = (("producer_id", np.uint64), ("partition", np.uint32), ("sequence", np.uint64))
_LARGEST = {"producer_id": 2**64 - 1, "partition": 2**32 - 1, "sequence": 2**64 - 1}
_LARGEST["checksum"] = 2**32 - 1


def _columns(value: object, what: str, *, checksum: bool = True) -> dict[str, npt.NDArray[Any]]:
    """The key columns (and checksums) of a MessageBatch or a mapping of numpy arrays."""
    wanted = [*_COLUMNS, ("checksum", np.uint32)] if checksum else list(_COLUMNS)
    if isinstance(value, MessageBatch):
        return {name: getattr(value, name) for name, _ in wanted}
    if not isinstance(value, Mapping):
        raise TypeError(
            f"{what} must be a MessageBatch or a mapping of numpy columns, "
            f"got {type(value).__name__}"
        )
    out: dict[str, npt.NDArray[Any]] = {}
    for name, dtype in wanted:
        if name not in value:
            raise ValueError(f"{what} has no {name!r} column (it needs {[n for n, _ in wanted]})")
        column = np.asarray(value[name])
        if column.ndim != 1:
            raise ValueError(f"{what}[{name!r}] must be 1-D, got shape {column.shape}")
        if column.dtype != dtype:
            if column.size and (
                not np.issubdtype(column.dtype, np.integer)
                or column.min() < 0
                or int(column.max()) > _LARGEST[name]
            ):
                raise ValueError(f"{what}[{name!r}] does not fit {np.dtype(dtype).name}")
            column = column.astype(dtype)
        out[name] = np.ascontiguousarray(column)
    lengths = {len(column) for column in out.values()}
    if len(lengths) > 1:
        sizes = {name: len(column) for name, column in out.items()}
        raise ValueError(f"{what}'s columns differ in length: {sizes}")
    return out


def _check_max_examples(max_examples: int) -> int:
    if not isinstance(max_examples, int) or isinstance(max_examples, bool) or max_examples < 0:
        raise ValueError(f"max_examples must be an int >= 0, got {max_examples!r}")
    return max_examples


def _examples(
    rows: npt.NDArray[np.int64], columns_for: list[dict[str, npt.NDArray[Any]]]
) -> dict[str, tuple[Example, ...]]:
    out: dict[str, tuple[Example, ...]] = {}
    for category, row in enumerate(rows):
        cols = columns_for[category]
        out[CATEGORIES[category]] = tuple(
            Example(
                int(cols["producer_id"][i]),
                int(cols["partition"][i]),
                int(cols["sequence"][i]),
                int(i),
            )
            for i in row.tolist()
            if i >= 0
        )
    return out


def check_delivery(
    sent: object,
    received: object,
    *,
    ordering: Ordering = "partition",
    max_examples: int = 5,
    threads: int | None = None,
) -> DeliveryReport:
    """Compares what was received with what was sent, message by message.

    A message is known by its (producer_id, partition, sequence). Walking ``received`` in
    order, each message is *unexpected* (never sent), *duplicated* (received before), or
    delivered; a delivered message is also *corrupted* when its checksum differs from the
    sent one, and *reordered* when it was sent before a message of the same ordering scope
    that arrived earlier. Sent messages never received are *lost*.

    Three ways to the same report, the first that applies. With ordering ``"partition"``
    or ``"none"``, when each stream's sent sequences run consecutively and the received
    messages are the sent ones in nearly the same order (faults near where they were
    sent), one pass zips the two sides together, settling each message by its stream's
    next sequences sent and received, on two threads from the middle outwards. Otherwise,
    when each stream's sent sequences start at its first one and run without wide gaps
    (what producers send), the sent messages are laid out in a table indexed by sequence,
    and the received messages can be walked by two threads at once; otherwise (sequences
    scattered, or below a stream's first) a hash table keyed by (stream, sequence) takes
    over.

    Args:
        sent: a ``MessageBatch``, or a mapping with 1-D numpy columns ``producer_id``,
            ``partition``, ``sequence`` and ``checksum``. Its order is the send order; a key
            sent twice counts once (its first occurrence).
        received: the same, in the order received.
        ordering: whose order must hold: ``"partition"`` (each producer's messages within a
            partition: what kaelix streams promise), ``"producer"`` (each producer's
            messages across its partitions), ``"global"`` (all messages) or ``"none"``.
        max_examples: how many examples of each problem to keep.
        threads: how many threads may share the work: 1, or 2 (more are not used: the
            check is bound by memory, not by arithmetic). None (the default) uses two for
            a million messages and more when the machine has two cores or more.

    Returns:
        A ``DeliveryReport``, true only when nothing is wrong.

    >>> import kaelix
    >>> sent = kaelix.MessageBatch.from_messages(
    ...     kaelix.Message(b"m", sequence=i) for i in range(4))
    >>> report = check_delivery(sent, sent[0:1] + sent[2:4] + sent[2:3])
    >>> (report.lost, report.duplicated, bool(report))
    (1, 1, False)
    """
    if ordering not in _ORDERINGS:
        raise ValueError(f"ordering must be one of {_ORDERINGS}, got {ordering!r}")
    max_examples = _check_max_examples(max_examples)
    if threads is not None and (
        not isinstance(threads, int) or isinstance(threads, bool) or threads < 1
    ):
        raise ValueError(f"threads must be None or an int >= 1, got {threads!r}")
    s = _columns(sent, "sent")
    r = _columns(received, "received")
    k = _kernels()
    if threads is None:
        messages = len(s["sequence"]) + len(r["sequence"])
        threads = 2 if messages >= _PARALLEL_MIN and _cores() >= 2 else 1
    found = None
    if ordering in _ZIPPED:
        found = _check_zip(k, s, r, ordering, max_examples, min(threads, 2))
    if found is None:
        found = _check_dense(k, s, r, ordering, max_examples, min(threads, 2))
    counters, rows = found if found is not None else _check_general(k, s, r, ordering, max_examples)
    examples = _examples(rows[:5], [s, r, r, r, r])
    return DeliveryReport(
        expected=int(counters[k.EXPECTED]),
        delivered=int(counters[k.DELIVERED]),
        lost=int(counters[k.LOST]),
        duplicated=int(counters[k.DUPLICATED]),
        reordered=int(counters[k.REORDERED]),
        corrupted=int(counters[k.CORRUPTED]),
        unexpected=int(counters[k.UNEXPECTED]),
        ordering=ordering,
        examples=examples,
    )


_Kernels = Any
_Found = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]
"""(counters in the kernels' order, example positions by category, -1 ending a row)."""

_PARALLEL_MIN = 1 << 20  # messages from which threads=None uses two threads
_SAMPLE = 8192  # sent messages that size the dense layout's columns


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        return os.cpu_count() or 1


_ZIPPED = ("partition", "none")  # the orderings the zipper checks: one stream's own order
_ZIP_STREAMS = 1024  # streams the zipper numbers; more, and the dense path takes over


def _check_zip(
    k: _Kernels,
    s: dict[str, npt.NDArray[Any]],
    r: dict[str, npt.NDArray[Any]],
    ordering: str,
    max_examples: int,
    threads: int,
) -> _Found | None:
    """check_delivery by the zipper (see kernels.zip_check): one pass over both sides, for
    sent runs that are consecutive per stream and received messages that are the sent ones
    in nearly the same order; None when the input is not of that shape (found out within
    a budget of about an eighth of the messages in extra steps).

    On two threads, each zips one half: received is cut in its middle, and sent where the
    same message sits. The halves agree with one pass when the first ends with every stream
    caught up (all it sent was received or passed over) exactly where the second begins
    it, and the second met nothing below a stream's first sequence (a message of the first
    half received late); otherwise one pass runs over the whole."""
    cut = _zip_cut(s, r) if threads == 2 else None
    if cut is not None:
        i, j = cut
        first, second = _together(
            [
                lambda: _zip(k, _rows(s, 0, i), _rows(r, 0, j), ordering, max_examples),
                lambda: _zip(k, _rows(s, i, None), _rows(r, j, None), ordering, max_examples),
            ],
            2,
        )
        if first is not None and second is not None and _zips_join(k, first, second):
            counters = first[0] + second[0]
            rows = np.full_like(first[1], -1)
            for category in range(k.N_CATEGORIES):
                offset = i if category == k.LOST else j
                a, b = first[1][category], second[1][category]
                both = np.concatenate((a[a >= 0], b[b >= 0] + offset))[:max_examples]
                rows[category, : len(both)] = both
            return counters, rows
    found = _zip(k, s, r, ordering, max_examples)  # one pass over the whole
    return None if found is None else found[:2]


_Zipped = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], tuple[npt.NDArray[Any], ...],
                npt.NDArray[np.uint64], npt.NDArray[np.uint64]]  # fmt: skip
"""One zip_check's counters, example rows, stream table, per-stream state and origins."""


def _zip(
    k: _Kernels,
    s: dict[str, npt.NDArray[Any]],
    r: dict[str, npt.NDArray[Any]],
    ordering: str,
    max_examples: int,
) -> _Zipped | None:
    n = len(s["sequence"]) + len(r["sequence"])
    table = k.new_stream_table(_ZIP_STREAMS)
    code, counters, rows, state, origin = k.zip_check(
        s["producer_id"], s["partition"], s["sequence"], s["checksum"],
        r["producer_id"], r["partition"], r["sequence"], r["checksum"],
        *table, ordering == "partition", max_examples, n // 8 + 4096,
    )  # fmt: skip
    if code != k.ZIP_OK:
        return None
    return counters, rows, table, state, origin


def _zips_join(k: _Kernels, first: _Zipped, second: _Zipped) -> bool:
    """Whether two halves zipped apart give what one pass would (see _check_zip)."""
    if second[0][k.UNEXPECTED]:
        return False  # below a stream's first sequence of the second half: maybe not new
    table, state = first[2], first[3]
    later = second[2]
    m = int(later[5][0])
    at = k.renumber(table[0], table[1], table[2], later[3], later[4], m)[:m]
    known = at != np.uint64(0xFFFFFFFFFFFFFFFF)
    begins = second[4][:m][known]
    ends = state[at[known].astype(np.int64)]
    return bool(np.all(ends[:, 0] == begins) and np.all(ends[:, 1] == begins))


_ZIP_SEARCH = 1024  # sent rows searched on either side of the middle for the cut


def _zip_cut(
    s: dict[str, npt.NDArray[Any]], r: dict[str, npt.NDArray[Any]]
) -> tuple[int, int] | None:
    """(i, j): sent row i is received row j, near the middle of received; None if no such
    pair is found near there."""
    n_sent, n_received = len(s["sequence"]), len(r["sequence"])
    if n_received < 2 or n_sent < 2:
        return None
    for j in (n_received // 2, n_received // 2 + 1, n_received // 2 + 7):
        if j >= n_received:
            return None
        centre = min(max(j + (n_sent - n_received) // 2, 0), n_sent - 1)
        lo, hi = max(centre - _ZIP_SEARCH, 0), min(centre + _ZIP_SEARCH, n_sent)
        match = s["sequence"][lo:hi] == r["sequence"][j]
        for name in ("producer_id", "partition", "checksum"):
            match &= s[name][lo:hi] == r[name][j]
        hits = np.flatnonzero(match)
        if len(hits) == 1:
            return lo + int(hits[0]), j
    return None


def _rows(
    columns: dict[str, npt.NDArray[Any]], start: int, stop: int | None
) -> dict[str, npt.NDArray[Any]]:
    return {name: column[start:stop] for name, column in columns.items()}


def _check_dense(
    k: _Kernels,
    s: dict[str, npt.NDArray[Any]],
    r: dict[str, npt.NDArray[Any]],
    ordering: str,
    max_examples: int,
    threads: int,
) -> _Found | None:
    """check_delivery when no stream sends a sequence below its first one and each spans at
    most about twice its share of the table (see kernels.index_sent); None otherwise.

    Up to two threads: one lays out the sent messages while the other numbers the received
    messages' streams; then each walks half of the received messages, marking what it
    delivered in its own array. A key received in both halves, or a message of the second
    half sent before one the first half delivered, is only seen when the halves are put
    together; then the second half is walked again after the first (the report is the
    same either way)."""
    n_sent, n_received = len(s["sequence"]), len(r["sequence"])
    if n_sent >= 2**32 - 1:
        return None  # a word keeps position + 1 in 32 bits
    sample = min(n_sent, _SAMPLE)
    sample_table = k.new_stream_table(4096)
    k.number_streams(
        s["producer_id"][:sample], s["partition"][:sample], *sample_table,
        np.empty(sample, np.uint32),
    )  # fmt: skip
    streams = max(int(sample_table[5][0]), 1)
    local = _scratch("local", n_received, np.uint32)[:n_received]

    def number_received() -> tuple[npt.NDArray[Any], ...]:
        return _number_all(k, r["producer_id"], r["partition"], local)

    def lay_out(streams: int, recount: bool) -> tuple[Any, ...] | None:
        column_bits = (streams - 1).bit_length()
        rows = 2 * (n_sent // streams) + 1024  # twice a stream's share, and some room
        if rows << column_bits > 8 * n_sent + (1 << 16):
            return None
        columns = 1 << column_bits
        words = _scratch("words", rows << column_bits, np.uint64)
        table = k.new_stream_table(columns)
        origin = np.empty(columns, np.uint64)
        state = np.zeros(3, np.uint64)  # rows cleared, rows used, keys sent again
        code, _ = k.index_sent(
            s["producer_id"], s["partition"], s["sequence"], s["checksum"], *table,
            origin, words, column_bits, rows, state,
        )  # fmt: skip
        if code == k.DENSE_OK:
            return column_bits, table, origin, words, int(state[1]), int(state[2])
        if code == k.DENSE_MORE_STREAMS and recount:
            # More streams than the first messages showed: count them all, start over.
            everyone = _number_all(k, s["producer_id"], s["partition"])
            return lay_out(max(int(everyone[5][0]), 1), False)
        return None

    laid, received_table = _together([lambda: lay_out(streams, True), number_received], threads)
    if laid is None:
        return None
    column_bits, table, origin, words, used_rows, repeats = laid
    m = int(table[5][0])
    used = used_rows << column_bits
    expected = n_sent - repeats
    renumbered = k.renumber(
        table[0], table[1], table[2], received_table[3], received_table[4],
        int(received_table[5][0]),
    )  # fmt: skip
    scope_of_stream, n_scopes = _scopes(ordering, table[3][:m])
    if n_scopes == 0:
        scope_of_stream = np.empty(0, np.int64)  # no ordering to check

    halves = 2 if threads == 2 and n_received >= 2 else 1
    edges = [n_received * h // halves for h in range(halves + 1)]
    got = _scratch("got", halves * max(used, 1), np.uint8)[: halves * max(used, 1)]
    got = got.reshape(halves, max(used, 1))

    def walk(h: int, marks: npt.NDArray[np.uint8], state: _Walk | None = None) -> _Walk:
        if state is None:
            marks[:used] = 0
            state = _Walk(max(n_scopes, 1), max_examples)
        a, b = edges[h], edges[h + 1]
        k.walk_dense(
            local[a:b], renumbered, r["sequence"][a:b], r["checksum"][a:b], origin,
            used_rows, column_bits, words, marks, scope_of_stream, state.running,
            state.first_record, state.counts, state.examples, state.taken, a,
        )  # fmt: skip
        return state

    def settle(first: int, stop: int, both_halves: bool) -> tuple[int, int, Any]:
        return k.settle_dense(  # type: ignore[no-any-return]
            words,
            got[0],
            got[halves - 1],
            both_halves,
            m,
            column_bits,
            first,
            stop,
            max_examples,
        )

    walks = _together([lambda h=h: walk(h, got[h]) for h in range(halves)], halves)
    middle = used_rows // 2
    settled = _together(
        [lambda: settle(0, middle, halves == 2), lambda: settle(middle, used_rows, halves == 2)],
        halves,
    )
    if halves == 2:
        first, second = walks
        crossed = n_scopes > 0 and bool(
            np.any((second.first_record >= 0) & (second.first_record < first.running))
        )
        if crossed or settled[0][0] + settled[1][0]:
            # A key in both halves, or order broken across them: walk the second half again
            # after the first, on the first's marks.
            walks = [walk(1, got[0], first)]
            settled = [settle(0, used_rows, False)]
    counters = np.zeros(k.N_COUNTERS, np.int64)
    counters[k.EXPECTED] = expected
    for state in walks:
        for at, category in enumerate((k.DELIVERED, k.DUPLICATED, k.REORDERED, k.CORRUPTED)):
            counters[category] += state.counts[at]
        counters[k.UNEXPECTED] += state.counts[4]
    counters[k.LOST] = sum(int(lost) for _, lost, _ in settled)
    rows_out = np.full((k.N_CATEGORIES, max_examples), -1, np.int64)
    for category in range(k.N_CATEGORIES):
        found = [int(x) for w in walks for x in w.examples[category, : w.taken[category]]]
        rows_out[category, : len(found[:max_examples])] = found[:max_examples]
    lost_at = sorted(int(x) for _, _, best in settled for x in best if x >= 0)[:max_examples]
    rows_out[k.LOST, : len(lost_at)] = lost_at
    return counters, rows_out


def _number_all(
    k: _Kernels,
    producer: npt.NDArray[np.uint64],
    partition: npt.NDArray[np.uint32],
    out: npt.NDArray[np.uint32] | None = None,
) -> tuple[npt.NDArray[Any], ...]:
    """A stream table numbering every (producer, partition) pair of the columns (each
    message's number into out), grown until they fit."""
    if out is None:
        out = _scratch("numbers", len(producer), np.uint32)
    capacity = 256
    while True:
        table = k.new_stream_table(capacity)
        if k.number_streams(producer, partition, *table, out):
            return table  # type: ignore[no-any-return]
        capacity *= 8


class _Walk:
    """One walk's running state and results (see kernels.walk_dense)."""

    def __init__(self, scopes: int, max_examples: int) -> None:
        self.running = np.full(scopes, -1, np.int64)
        self.first_record = np.full(scopes, -1, np.int64)
        self.counts = np.zeros(
            5, np.int64
        )  # delivered, duplicated, reordered, corrupted, unexpected
        self.examples = np.full((6, max_examples), -1, np.int64)
        self.taken = np.zeros(6, np.int64)


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _forget_pool() -> None:
    """In a forked child the pool's thread does not exist: make a new pool on next use."""
    global _pool
    _pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _together(jobs: list[Any], threads: int) -> list[Any]:
    """Runs the jobs, the first on this thread and the rest on the validators' pool when
    threads > 1 (one after another otherwise), and returns their results in order."""
    global _pool
    if threads < 2 or len(jobs) < 2:
        return [job() for job in jobs]
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kaelix-validate")
        pool = _pool
    futures = [pool.submit(job) for job in jobs[1:]]
    try:
        first = jobs[0]()
    finally:
        rest = [future.result() for future in futures]
    return [first, *rest]


def _check_general(
    k: _Kernels,
    s: dict[str, npt.NDArray[Any]],
    r: dict[str, npt.NDArray[Any]],
    ordering: str,
    max_examples: int,
) -> _Found:
    """check_delivery for any input: sent keys numbered by a hash table of (stream,
    sequence) when the dense layout would be too sparse, first occurrences kept."""
    n_sent = len(s["sequence"])
    stream_of = _scratch("stream_of", n_sent, np.int32)
    streams = 64
    while True:  # a table for `streams` (producer, partition) pairs, bigger until they fit
        ka, kb, kv, kc = k.new_table(streams)
        fitted, lo, hi, prod, switches = k.sent_streams(
            s["producer_id"], s["partition"], s["sequence"], ka, kb, kv, kc, stream_of
        )
        if fitted:
            break
        streams *= 8
    base, stride, total = k.dense_layout(lo, hi, 2 * n_sent + 1024, switches > n_sent // 4)
    if total >= 0:
        n_slots = int(total)
        sparse = np.empty(0, np.int64)
        ska, skb, skv, skc = k.new_table(0)
    else:
        ska, skb, skv, skc = k.new_table(n_sent)
        sparse = k.sparse_slots(stream_of, s["sequence"], ska, skb, skv, skc)
        n_slots = int(skc[0])
    scope_of_stream, n_scopes = _scopes(ordering, prod)
    # Sent positions: int32 while they fit (half the memory traffic of the walk).
    first = _scratch("first", n_slots, np.int32 if n_sent < 2**31 else np.int64)
    checksums = _scratch("checksum", n_slots, np.uint32)
    got = _scratch("got", n_slots, np.uint8)
    counters, rows = k.check(
        stream_of, s["sequence"], s["checksum"], lo, hi, base, stride, n_slots, sparse,
        ska, skb, skv, skc,
        r["producer_id"], r["partition"], r["sequence"], r["checksum"],
        ka, kb, kv, kc, scope_of_stream, n_scopes, max_examples, first, checksums, got,
    )  # fmt: skip
    return counters, rows


def _kernels() -> Any:
    """The numba kernels, imported (and numba with them) on first use."""
    from kaelix.validate import _kernels as kernels

    return kernels


_workspace = threading.local()
_SCRATCH_KEEP = 1 << 26  # entries: larger scratch arrays are not kept between calls


def _scratch(name: str, size: int, dtype: type[np.generic]) -> npt.NDArray[Any]:
    """A reusable per-thread array of at least size entries. Checking 10 M messages touches
    over 100 MB of tables; fresh memory faults on every page (on a VM, that was most of the
    time of a call), so the tables of the last call are kept, up to 64 M entries each."""
    kept: npt.NDArray[Any] | None = getattr(_workspace, name, None)
    if kept is not None and kept.shape[0] >= size:
        return kept
    array = np.empty(max(size, 1), dtype)
    if size <= _SCRATCH_KEEP:
        setattr(_workspace, name, array)
    return array


def _scopes(ordering: str, producers: npt.NDArray[np.uint64]) -> tuple[npt.NDArray[np.int64], int]:
    m = len(producers)
    if ordering == "none":
        return np.zeros(m, np.int64), 0
    if ordering == "global":
        return np.zeros(m, np.int64), 1
    if ordering == "partition":
        return np.arange(m, dtype=np.int64), m
    _, inverse = np.unique(producers, return_inverse=True)
    return inverse.astype(np.int64), int(inverse.max()) + 1 if m else 0


class DeliveryTracker:
    """``check_delivery`` without keeping what was sent: fed batch by batch as messages
    arrive, for streams whose sequences per (producer, partition) run consecutively from
    ``start``, with memory bounded by ``window / 8`` bytes per (producer, partition).

    A sequence more than ``window`` below the highest one seen in its stream has left the
    window: if it never arrived it is *lost*; if it arrives afterwards it is *late* (a
    duplicate of one delivered long ago, or one already counted lost: the tracker cannot
    tell). Inside the window, a repeat is *duplicated* and one that arrives after a higher
    sequence is *reordered*. ``report()`` is a snapshot: gaps still inside the window count
    as lost in it, and turn into delivered (and reordered) if they arrive later.

    Args:
        window: sequences kept per stream, a power of two >= 64 (default 65,536: 8 KiB).
        ordering: ``"partition"`` or ``"none"`` (the tracker has no send order across
            streams).
        start: the first sequence of every stream.
        max_examples: examples kept per problem.
    """

    def __init__(
        self,
        *,
        window: int = 65536,
        ordering: Literal["partition", "none"] = "partition",
        start: int = 0,
        max_examples: int = 5,
    ) -> None:
        if (
            not isinstance(window, int)
            or isinstance(window, bool)
            or window < 64
            or window & (window - 1)
        ):
            raise ValueError(f"window must be a power of two >= 64, got {window!r}")
        if ordering not in ("partition", "none"):
            raise ValueError(
                f"the tracker checks ordering 'partition' or 'none', got {ordering!r}: it has "
                f"no send order across streams (use check_delivery for that)"
            )
        if not isinstance(start, int) or isinstance(start, bool) or not 0 <= start < 1 << 64:
            raise ValueError(f"start must be an int from 0 to 2**64 - 1, got {start!r}")
        self._window = window
        self._ordering = ordering
        self._high: npt.NDArray[np.uint64]
        self._holes: npt.NDArray[np.uint64]
        self._lazy: npt.NDArray[np.uint64]
        self._bits: npt.NDArray[np.uint64]
        self._table: tuple[npt.NDArray[Any], ...]
        self._start = start
        max_examples = _check_max_examples(max_examples)
        self._messages = 0
        self._counters = np.zeros(8, np.int64)
        self._lost = np.zeros(1, np.uint64)
        self._examples = np.full((6, max_examples), -1, np.int64)
        self._example_keys = np.zeros((6, max_examples, 3), np.uint64)
        self._taken = np.zeros(6, np.int64)
        self._grow(0)

    def _grow(self, streams: int) -> None:
        """Room for twice as many streams (at least 16), keeping every stream's state."""
        k = _kernels()

        capacity = max(16, 2 * streams)
        high = np.zeros(capacity, np.uint64)
        holes = np.zeros(capacity, np.uint64)
        lazy = np.zeros(capacity, np.uint64)
        bits = np.zeros((capacity, self._window // 64), np.uint64)
        table = k.new_stream_table(capacity)
        if streams:
            high[:streams] = self._high[:streams]
            holes[:streams] = self._holes[:streams]
            lazy[:streams] = self._lazy[:streams]
            bits[:streams] = self._bits[:streams]
            table[3][:streams] = self._table[3][:streams]
            table[4][:streams] = self._table[4][:streams]
            table[5][0] = streams
            k.restock(*table[:5], streams)
        self._high, self._holes, self._lazy = high, holes, lazy
        self._bits, self._table = bits, table

    @property
    def streams(self) -> int:
        """(producer, partition) pairs seen."""
        return int(self._table[5][0])

    @property
    def messages(self) -> int:
        """Messages fed so far."""
        return self._messages

    def update(self, batch: object) -> None:
        """Feeds the next messages, in the order they arrived (a ``MessageBatch`` or a mapping
        of numpy columns ``producer_id``, ``partition``, ``sequence``)."""
        k = _kernels()

        cols = _columns(batch, "batch", checksum=False)
        n = len(cols["sequence"])
        done = 0
        while done < n:
            done = k.track(
                cols["producer_id"], cols["partition"], cols["sequence"], done, self._messages,
                *self._table, self._high, self._holes, self._lazy, self._bits, self._window,
                np.uint64(self._start),
                self._ordering == "partition",
                self._counters, self._lost, self._examples, self._taken, self._example_keys,
            )  # fmt: skip
            if done < n:
                self._grow(self.streams)
        self._messages += n

    def report(self) -> DeliveryReport:
        """The counts so far (see the class docstring for what a snapshot counts as lost)."""
        k = _kernels()

        streams = self.streams
        gaps = k.pending(self._high, self._holes, streams, np.uint64(self._start))
        # Python ints: a stream running from 0 to 2**64 - 1 expects 2**64 messages.
        highs = self._high[:streams].tolist()
        expected = sum(h - self._start + 1 for h in highs if h >= self._start)
        c = self._counters
        examples = {
            CATEGORIES[category]: tuple(
                Example(int(p), int(q), int(s), int(pos))
                for pos, (p, q, s) in zip(
                    self._examples[category].tolist(),
                    self._example_keys[category].tolist(),
                    strict=True,
                )
                if pos >= 0
            )
            for category in range(6)
        }
        return DeliveryReport(
            expected=int(expected),
            delivered=int(c[k.DELIVERED]),
            lost=int(self._lost[0]) + int(gaps),
            duplicated=int(c[k.DUPLICATED]),
            reordered=int(c[k.REORDERED]),
            corrupted=0,
            unexpected=int(c[k.UNEXPECTED]),
            ordering=self._ordering,
            late=int(c[k.LATE]),
            examples=examples,
        )


def warm_up_validators() -> None:
    """Loads every compiled kernel of ``check_delivery`` and ``DeliveryTracker`` now: from
    numba's on-disk cache (about half a second), or compiling them the first time in an
    environment (several seconds).

    Kernels otherwise load on first use, each path of ``check_delivery`` on the first input
    that takes it, so a timed region or a test with a deadline (hypothesis's default is
    200 ms) would pay it once at an arbitrary point. kaelix's pytest plugin calls this
    before the first test when a collected module uses kaelix's testing toolkit.
    """

    def columns(producer: list[int], sequence: list[int]) -> dict[str, npt.NDArray[Any]]:
        n = len(sequence)
        return {
            "producer_id": np.array(producer, np.uint64),
            "partition": np.zeros(n, np.uint32),
            "sequence": np.array(sequence, np.uint64),
            "checksum": np.ones(n, np.uint32),
        }

    in_order = columns([1, 1, 1, 1], list(range(4)))
    below_first = columns([1, 1, 1, 1], [5, 3, 4, 6])  # not the dense layout's shape
    scattered = columns([1, 1, 1], [5, 3, 10**15])  # too sparse for a table by sequence
    for threads in (1, 2):
        check_delivery(in_order, in_order, threads=threads)  # the zipper
        check_delivery(in_order, in_order, ordering="producer", threads=threads)  # dense
        check_delivery(below_first, below_first, threads=threads)  # general, dense table
        check_delivery(scattered, scattered, threads=threads)  # general, hash table
    tracker = DeliveryTracker(window=64)
    tracker.update(in_order)  # each stream's next sequence
    tracker.update(columns([1, 1, 2, 1], [9, 5, 0, 4]))  # gaps, late and new streams
    tracker.update(columns(list(range(3, 40)), [0] * 37))  # more streams than it had room for
    tracker.report()
