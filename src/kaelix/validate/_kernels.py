"""numba kernels of the validators. They assume valid input (the Python layer checks it) and
work on plain numpy arrays only. Every kernel has a plain-Python twin in
``tests/validate_reference.py``. numba flags live in ``_jit`` only.

Imported lazily by the validators' Python layer, never at ``import kaelix`` (importing numba
costs about 0.2 s). Imports nothing of kaelix.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from llvmlite import ir  # type: ignore[import-untyped]
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_jit = numba.njit(cache=True, nogil=True)
# Small helpers called per message: inlined into the loops (a call per message made the hash
# lookups ten times slower; so does mixing uint64 and int64 in one index expression, which
# numba computes in float64). Helpers that return a value and also store to arrays stay
# written out in the loops: inlined, one made a loop fifty times slower.
_inline = numba.njit(cache=True, nogil=True, inline="always")

U64 = np.uint64
_EMPTY = np.int64(-1)

# Categories, in the order of the counters and example rows.
LOST, DUPLICATED, REORDERED, CORRUPTED, UNEXPECTED, LATE = 0, 1, 2, 3, 4, 5
N_CATEGORIES = 6
DELIVERED, EXPECTED = 6, 7
N_COUNTERS = 8


@_inline
def _mix(a, b):  # type: ignore[no-untyped-def]
    h = a * U64(0x9E3779B97F4A7C15) ^ (b + U64(0x632BE59BD9B4E019))
    h ^= h >> U64(29)
    h *= U64(0xBF58476D1CE4E5B9)
    return h ^ (h >> U64(32))


@_jit
def table_size(n: int) -> int:
    """Slots for a table of up to n keys: at least 16 per key while that stays small (up to
    64 Ki slots), so that nearly every key sits alone in its slot and a lookup is one probe
    with no branch to mispredict (with the usual half-full table, messages from streams
    drawn at random cost 7 ns more each); 2 per key beyond that."""
    size = 16
    while size < 16 * n + 16 and size < 1 << 16:
        size *= 2
    while size < 2 * n + 16:
        size *= 2
    return size


@_inline
def find(keys_a, keys_b, values, a, b):  # type: ignore[no-untyped-def]
    """Index of key (a, b) in an open-addressing table (values -1 = empty slot), -1 when
    absent. Read-only, so it inlines into the loops as a few instructions."""
    mask = values.shape[0] - 1
    i = np.int64(_mix(a, b) & U64(mask))
    while True:
        v = values[i]
        if v < 0 or (keys_a[i] == a and keys_b[i] == b):
            return v
        i = (i + 1) & mask


@_jit
def _insert(keys_a, keys_b, values, count, a, b):  # type: ignore[no-untyped-def]
    """Adds key (a, b), absent from the table, with the next index (count is a one-item
    array holding how many keys the table has). Called out of line, only for new keys: a
    store path inlined into the loops made their lookups five to ten times slower."""
    mask = values.shape[0] - 1
    i = np.int64(_mix(a, b) & U64(mask))
    while values[i] >= 0:
        i = (i + 1) & mask
    keys_a[i] = a
    keys_b[i] = b
    values[i] = count[0]
    count[0] += 1
    return values[i]


def new_table(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    size = table_size(n)
    return (
        np.zeros(size, np.uint64),
        np.zeros(size, np.uint64),
        np.full(size, -1, np.int64),
        np.zeros(1, np.int64),
    )


@_jit
def sent_streams(producer, partition, sequence, ka, kb, kv, kc, stream_of):  # type: ignore[no-untyped-def]
    """Numbers the (producer, partition) pairs of sent in order of first appearance, writes
    each message's stream into stream_of, and returns (fitted, each stream's lowest and
    highest sequence, its producer, and how often consecutive messages changed stream).
    fitted is False when the table filled up: the caller
    retries with a bigger one."""
    n = producer.shape[0]
    cap = kv.shape[0] // 2
    lo = np.empty(cap, np.uint64)
    hi = np.empty(cap, np.uint64)
    prod = np.empty(cap, np.uint64)
    switches = 0
    previous = _EMPTY
    for i in range(n):
        p = producer[i]
        s = sequence[i]
        sid = find(ka, kb, kv, p, U64(partition[i]))
        if sid < 0:
            if kc[0] == cap:
                return False, lo[:0], hi[:0], prod[:0], 0
            sid = _insert(ka, kb, kv, kc, p, U64(partition[i]))
            lo[sid] = s
            hi[sid] = s
            prod[sid] = p
        switches += sid != previous  # no branch: streams may alternate at random
        previous = sid
        stream_of[i] = sid
        if s < lo[sid]:
            lo[sid] = s
        if s > hi[sid]:
            hi[sid] = s
    m = kc[0]
    return True, lo[:m].copy(), hi[:m].copy(), prod[:m].copy(), switches


@_jit
def dense_layout(lo, hi, limit, interleaved):  # type: ignore[no-untyped-def]
    """Slots for every sequence from each stream's lowest to its highest: slot =
    base[stream] + (sequence - lo[stream]) * stride. Interleaved (base = stream, stride =
    the number of streams) when the streams span similar ranges, so that messages sent
    round-robin across streams touch consecutive slots (blocked per stream, 32 streams were
    32 places in memory at once, and the lookups waited on memory); blocked (stride 1)
    when the messages come stream by stream (interleaved False) or the spans differ.
    Returns (base, stride, total); total -1 when even the blocked layout would pass limit
    (sequences too sparse: the caller uses a hash table)."""
    m = lo.shape[0]
    base = np.empty(m, np.int64)
    widest = 0
    total = 0
    for s in range(m):
        span = hi[s] - lo[s]
        if span >= U64(limit):
            return base, 1, -1
        width = np.int64(span) + 1
        widest = max(widest, width)
        base[s] = total
        total += width
        if total > limit:
            return base, 1, -1
    if interleaved and m * widest <= limit and m * widest <= 2 * total + 1024:
        for s in range(m):
            base[s] = s
        return base, max(m, 1), m * widest
    return base, 1, total


@_jit
def sparse_slots(stream_of, sequence, ka, kb, kv, kc):  # type: ignore[no-untyped-def]
    """One slot per distinct (stream, sequence) of sent, through a hash table."""
    n = sequence.shape[0]
    slots = np.empty(n, np.int64)
    for i in range(n):
        key = U64(stream_of[i])
        slot = find(ka, kb, kv, key, sequence[i])
        slots[i] = slot if slot >= 0 else _insert(ka, kb, kv, kc, key, sequence[i])
    return slots


@_inline
def _sent_slot(i, dense, s_stream, s_sequence, lo, base, stride, sparse):  # type: ignore[no-untyped-def]
    """The slot of sent message i (see dense_layout; sparse gives it when not dense)."""
    if dense:
        sid = s_stream[i]
        return base[sid] + np.int64(s_sequence[i] - lo[sid]) * stride
    return sparse[i]


@_jit
def check(  # type: ignore[no-untyped-def]
    s_stream,
    s_sequence,
    s_checksum,
    lo,
    hi,
    base,
    stride,
    n_slots,
    sparse,
    ska,
    skb,
    skv,
    skc,
    r_producer,
    r_partition,
    r_sequence,
    r_checksum,
    ka,
    kb,
    kv,
    kc,
    scope_of_stream,
    n_scopes,
    max_examples,
    first,
    checksum,
    got,
):
    """The delivery walk of check_delivery (see the contract in its docstring). The slot of
    a sent message is dense (see dense_layout) unless
    sparse gives it. Returns the counters and the example positions (rows by
    category; -1 ends a row). Counts are kept in locals, not in the counters array: stores
    to an array in the loop stop the compiler from keeping anything in registers. first,
    checksum and got are scratch arrays of at least n_slots entries (reused between calls:
    on a fresh page every store would fault)."""
    n_sent = s_sequence.shape[0]
    dense = sparse.shape[0] == 0 and n_sent > 0
    first[:n_slots] = -1
    got[:n_slots] = 0
    expected = 0
    for i in range(n_sent):
        slot = _sent_slot(i, dense, s_stream, s_sequence, lo, base, stride, sparse)
        if first[slot] < 0:
            first[slot] = i
            checksum[slot] = s_checksum[i]
            expected += 1
    running = np.full(max(n_scopes, 1), -1, np.int64)
    examples = np.full((N_CATEGORIES, max_examples), -1, np.int64)
    taken = np.zeros(N_CATEGORIES, np.int64)
    delivered = 0
    duplicated = 0
    reordered = 0
    corrupted = 0
    unexpected = 0
    for i in range(r_sequence.shape[0]):
        sid = find(ka, kb, kv, r_producer[i], U64(r_partition[i]))
        slot = _EMPTY
        if sid >= 0:
            seq = r_sequence[i]
            if dense:
                if lo[sid] <= seq <= hi[sid]:
                    slot = base[sid] + np.int64(seq - lo[sid]) * stride
            else:
                slot = find(ska, skb, skv, U64(sid), seq)
        category = -1
        if slot < 0 or first[slot] < 0:
            category = UNEXPECTED
            unexpected += 1
        elif got[slot]:
            category = DUPLICATED
            duplicated += 1
        else:
            got[slot] = 1
            delivered += 1
            if checksum[slot] != r_checksum[i]:
                corrupted += 1
                if taken[CORRUPTED] < max_examples:
                    examples[CORRUPTED, taken[CORRUPTED]] = i
                    taken[CORRUPTED] += 1
            if n_scopes > 0:
                scope = scope_of_stream[sid]
                o = first[slot]
                if o < running[scope]:
                    category = REORDERED
                    reordered += 1
                else:
                    running[scope] = o
        if category >= 0 and taken[category] < max_examples:
            examples[category, taken[category]] = i
            taken[category] += 1
    lost = expected - delivered
    if lost > 0 and max_examples > 0:
        for i in range(n_sent):
            slot = _sent_slot(i, dense, s_stream, s_sequence, lo, base, stride, sparse)
            if first[slot] == i and got[slot] == 0:
                examples[LOST, taken[LOST]] = i
                taken[LOST] += 1
                if taken[LOST] == max_examples:
                    break
    counters = np.zeros(N_COUNTERS, np.int64)
    counters[EXPECTED] = expected
    counters[DELIVERED] = delivered
    counters[LOST] = lost
    counters[DUPLICATED] = duplicated
    counters[REORDERED] = reordered
    counters[CORRUPTED] = corrupted
    counters[UNEXPECTED] = unexpected
    return counters, examples


# ---- check_delivery's dense path -------------------------------------------------------
#
# The common case: each (producer, partition) stream's sent sequences start at its lowest and
# fill a range without wide holes. Then a sent message's slot is a function of its key:
# (sequence - origin[stream]) << column_bits | stream, streams interleaved column by column
# so that messages sent round-robin across streams write (and are later read) near each
# other. A slot holds 0 until a message is sent to it, so holes read as never sent and a key
# sent twice keeps its first copy, with no per-stream bookkeeping in the loop (keeping each
# stream's count and last sequence cost a third of the pass). Every index in these loops is
# unsigned: numba adds a negative-index fix-up to each signed index, and that alone doubled
# the cost of a lookup. Slots are computed a block ahead and prefetched, because the slot
# table is larger than the caches and a load that waits on memory stalls the loop behind
# it.

_NONE = np.uint64(0xFFFFFFFFFFFFFFFF)  # an empty stream-table slot, or no stream
_LOW = np.uint64(0xFFFFFFFF)
_ONE = np.uint64(1)
_ZERO = np.uint64(0)
_K1 = np.uint64(0x9E3779B97F4A7C15)
_K2 = np.uint64(0xBF58476D1CE4E5B9)
_BLOCK = 64  # messages whose slots are prefetched before the first of them is used

# Codes index_sent returns (besides OK) when the dense path does not apply.
DENSE_OK, DENSE_MORE_STREAMS, DENSE_TOO_WIDE = 0, 1, 2
_ZEROING = 1024  # rows cleared at a time, just ahead of the rows being written


def _prefetch_typing(typingctx, array, index):  # type: ignore[no-untyped-def]
    """A hint to bring array[index] into the cache for writing (llvm.prefetch; it never
    faults, so any index is safe)."""
    if not isinstance(array, types.Array):
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        byte_ptr = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [byte_ptr, i32, i32, i32])
        fn = cgutils.get_or_insert_function(  # type: ignore[no-untyped-call]
            builder.module, fnty, "llvm.prefetch.p0i8"
        )
        address = builder.bitcast(builder.gep(data, [args[1]]), byte_ptr)
        # write, highest locality, data cache
        builder.call(fn, [address, i32(1), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(array, index), codegen


_prefetch: Any = intrinsic(_prefetch_typing)


def new_stream_table(capacity: int) -> tuple[np.ndarray, ...]:
    """An open-addressing table numbering up to capacity (producer, partition) keys: keys and
    numbers by slot (_NONE = empty), the keys by number, and how many there are. At least 16
    slots per key while that stays small, so that nearly every lookup takes one probe."""
    size = 16
    while size < 16 * capacity and size < 1 << 16:
        size *= 2
    while size < 2 * capacity:
        size *= 2
    return (
        np.zeros(size, np.uint64),
        np.zeros(size, np.uint64),
        np.full(size, _NONE, np.uint64),
        np.zeros(capacity, np.uint64),
        np.zeros(capacity, np.uint64),
        np.zeros(1, np.uint64),
    )


@_inline
def _table_shift(size):  # type: ignore[no-untyped-def]
    bits = 0
    while (1 << bits) < size:
        bits += 1
    return np.uint64(64 - bits)


@_inline
def _lookup(ka, kb, kv, a, b, shift, mask):  # type: ignore[no-untyped-def]
    """(number or _NONE, slot) of key (a, b): multiply-shift hashing, linear probing."""
    j = ((a ^ (b * _K1)) * _K2) >> shift
    while True:
        v = kv[j]
        if v == _NONE or (ka[j] == a and kb[j] == b):
            return v, j
        j = (j + _ONE) & mask


@_jit
def index_sent(  # type: ignore[no-untyped-def]
    producer, partition, sequence, checksum, ka, kb, kv, by_a, by_b, kc, origin, words,
    column_bits, rows, state,
):  # fmt: skip
    """Numbers the sent streams (origin: each one's first sequence) and writes every sent
    message's word, checksum << 32 | (position + 1), at its slot unless a copy of the key
    got there first. Rows are cleared just ahead of the highest row written (state[0]:
    rows cleared so far; state[1]: highest row written + 1; state[2]: copies skipped).
    Returns (code, position): DENSE_OK, or why the dense path does not apply and where that
    was found: more streams than 2**column_bits, or a sequence below its stream's first or
    rows or more past it."""
    n = np.uint64(sequence.shape[0])
    shift = _table_shift(kv.shape[0])
    mask = np.uint64(kv.shape[0] - 1)
    columns = np.uint64(column_bits)
    limit = np.uint64(rows)
    cleared = state[0]
    top = state[1]
    repeats = state[2]
    slots = np.empty(_BLOCK, np.uint64)
    start = _ZERO
    while start < n:
        stop = min(start + np.uint64(_BLOCK), n)
        i = start
        while i < stop:
            a = producer[i]
            b = np.uint64(partition[i])
            s = sequence[i]
            # The lookup and the insertion are written out here, not called: numba made a
            # helper holding both fifty times slower than this.
            sid, j = _lookup(ka, kb, kv, a, b, shift, mask)
            if sid == _NONE:  # a new stream
                sid = kc[0]
                if sid == np.uint64(by_a.shape[0]):
                    return DENSE_MORE_STREAMS, np.int64(i)
                ka[j] = a
                kb[j] = b
                kv[j] = sid
                by_a[sid] = a
                by_b[sid] = b
                kc[0] = sid + _ONE
                origin[sid] = s
            row = s - origin[sid]  # wraps to a huge row below the origin
            if row >= limit:
                return DENSE_TOO_WIDE, np.int64(i)
            if row >= cleared:
                upto = min(limit, max(row + _ONE, cleared + np.uint64(_ZEROING)))
                words[cleared << columns : upto << columns] = _ZERO
                cleared = upto
            top = max(top, row + _ONE)
            slot = (row << columns) | sid
            slots[i - start] = slot
            _prefetch(words, slot)
            i += _ONE
        i = start
        while i < stop:
            slot = slots[i - start]
            if words[slot] == _ZERO:
                words[slot] = (np.uint64(checksum[i]) << np.uint64(32)) | (i + _ONE)
            else:
                repeats += _ONE  # the key was sent before: its first copy counts
            i += _ONE
        start = stop
        state[0] = cleared
        state[1] = top
        state[2] = repeats
    return DENSE_OK, np.int64(n)


@_jit
def number_streams(producer, partition, ka, kb, kv, by_a, by_b, kc, out):  # type: ignore[no-untyped-def]
    """Each message's stream number (in a table of its own) into out; False when the table
    filled up."""
    n = np.uint64(producer.shape[0])
    shift = _table_shift(kv.shape[0])
    mask = np.uint64(kv.shape[0] - 1)
    i = _ZERO
    while i < n:
        a = producer[i]
        b = np.uint64(partition[i])
        sid, j = _lookup(ka, kb, kv, a, b, shift, mask)
        if sid == _NONE:  # as in index_sent
            sid = kc[0]
            if sid == np.uint64(by_a.shape[0]):
                return False
            ka[j] = a
            kb[j] = b
            kv[j] = sid
            by_a[sid] = a
            by_b[sid] = b
            kc[0] = sid + _ONE
        out[i] = sid
        i += _ONE
    return True


@_jit
def renumber(ka, kb, kv, by_a, by_b, count):  # type: ignore[no-untyped-def]
    """For each of the first count keys (by_a, by_b) of one table, its number in the table
    (ka, kb, kv), or _NONE."""
    out = np.full(max(count, 1), _NONE, np.uint64)
    shift = _table_shift(kv.shape[0])
    mask = np.uint64(kv.shape[0] - 1)
    for x in range(count):
        out[x] = _lookup(ka, kb, kv, by_a[x], by_b[x], shift, mask)[0]
    return out


@_jit
def walk_dense(  # type: ignore[no-untyped-def]
    local, renumbered, sequence, checksum, origin, used_rows, column_bits, words, got,
    scope_of_stream, running, first_record, counts, examples, taken, offset,
):  # fmt: skip
    """The delivery walk over one run of received messages (local: their stream numbers,
    renumbered into the sent table's). A slot is marked in got, this walk's own array, so
    that two walks over two halves of the received messages run at once without sharing a
    byte; the caller reconciles them. running and first_record hold, per ordering scope, the
    highest sent position delivered so far and the first one this walk delivered (-1:
    none). Adds delivered, duplicated, reordered, corrupted and unexpected to counts, and
    example positions (offset + index) to examples."""
    max_examples = examples.shape[1]
    check_order = scope_of_stream.shape[0] > 0
    columns = np.uint64(column_bits)
    column_mask = (_ONE << columns) - _ONE
    row_limit = np.uint64(used_rows)
    delivered = 0
    duplicated = 0
    reordered = 0
    corrupted = 0
    unexpected = 0
    n = np.uint64(sequence.shape[0])
    slots = np.empty(_BLOCK, np.uint64)
    start = _ZERO
    while start < n:
        stop = min(start + np.uint64(_BLOCK), n)
        i = start
        while i < stop:
            g = renumbered[local[i]]
            slot = _NONE
            if g != _NONE:
                row = sequence[i] - origin[g]
                if row < row_limit:  # false for sequence < origin too: the row wraps
                    slot = (row << columns) | g
                    _prefetch(words, slot)
                    _prefetch(got, slot)
            slots[i - start] = slot
            i += _ONE
        i = start
        while i < stop:
            slot = slots[i - start]
            category = -1
            word = _ZERO
            if slot != _NONE:
                word = words[slot]
            if word == _ZERO:  # never sent (outside every range, or a hole in one)
                category = UNEXPECTED
                unexpected += 1
            elif got[slot]:
                category = DUPLICATED
                duplicated += 1
            else:
                got[slot] = 1
                delivered += 1
                if (word >> np.uint64(32)) != np.uint64(checksum[i]):
                    corrupted += 1
                    if taken[CORRUPTED] < max_examples:
                        examples[CORRUPTED, taken[CORRUPTED]] = offset + np.int64(i)
                        taken[CORRUPTED] += 1
                if check_order:
                    scope = np.uint64(scope_of_stream[slot & column_mask])  # unsigned: no fix-up
                    sent_at = np.int64(word & _LOW)
                    if sent_at < running[scope]:
                        category = REORDERED
                        reordered += 1
                    else:
                        if running[scope] < 0:
                            first_record[scope] = sent_at
                        running[scope] = sent_at
            if category >= 0 and taken[category] < max_examples:
                examples[category, taken[category]] = offset + np.int64(i)
                taken[category] += 1
            i += _ONE
        start = stop
    counts[0] += delivered
    counts[1] += duplicated
    counts[2] += reordered
    counts[3] += corrupted
    counts[4] += unexpected


@_jit
def settle_dense(words, got_a, got_b, two, streams, column_bits, first_row, stop_row, max_examples):  # type: ignore[no-untyped-def]
    """Over the slot rows [first_row, stop_row) of the first streams columns: how many
    slots both walks delivered (two: whether got_b is a second walk's), how many slots
    were sent and never delivered, and the smallest max_examples sent positions among
    those."""
    best = np.full(max_examples, np.int64(-1), np.int64)
    kept = 0
    both = 0
    lost = 0
    m = np.uint64(streams)
    columns = np.uint64(column_bits)
    row = np.uint64(first_row)
    while row < np.uint64(stop_row):
        j = row << columns
        end = j + m
        while j < end:
            marks = got_a[j]
            if two:
                marks += got_b[j]
            both += marks > 1
            if marks == 0 and words[j] != _ZERO:
                lost += 1
                sent_at = np.int64(words[j] & _LOW) - 1
                if kept < max_examples:
                    kept += 1
                    best[kept - 1] = sent_at
                elif max_examples > 0 and sent_at < best[max_examples - 1]:
                    best[max_examples - 1] = sent_at
                else:
                    j += _ONE
                    continue
                t = kept - 1  # sift the new entry down: best stays sorted
                while t > 0 and best[t - 1] > best[t]:
                    best[t - 1], best[t] = best[t], best[t - 1]
                    t -= 1
            j += _ONE
        row += _ONE
    return both, lost, best


# ---- check_delivery's zipper path -------------------------------------------------------
#
# The commonest input of all: each stream's sent sequences run consecutively from its first
# one ("per-stream consecutive"), and what was received is what was sent, in the same order,
# but for a few faults. Then a cursor over sent, moved along received, finds each received
# message at the cursor, and that message is settled by its stream's state alone: the next
# sequence it expects to be sent (snext) and received (rnext). When both equal the message's
# sequence, it is delivered, in order, for the first time, and its checksum is the one at
# the cursor (_zip_run: a compare of the two rows and one stream lookup, no table indexed
# by sequence). Anything else takes zip_check's general step: the cursor passes over a sent
# message that was not received there (kept in a list: lost unless it arrives later), a
# received message is found just ahead of the cursor (received early) or behind it (late,
# or a duplicate), and a stream's received sequences that jumped ahead are kept in a small
# hash set until they arrive. Because every sent sequence of a stream is known once the
# cursor has passed its first one, "never sent", "received before" and "sent after one
# already delivered" follow from the stream's numbers. Whenever the input leaves this shape
# (a sent sequence out of its stream's run, a received message not found near the cursor,
# too many faults for the budget), zip_check gives up and the caller uses the dense path.

ZIP_OK, ZIP_GAVE_UP = 0, 1
_AHEAD = 1024  # sent messages searched ahead of the cursor for a message received early
_BEHIND = 4096  # sent messages searched behind it for the checksum of one received late
_MISSING_FREE, _MISSING, _FILLED = 0, 1, 2


@_inline
def _same(s_producer, s_partition, s_sequence, i, p, q, s):  # type: ignore[no-untyped-def]
    return s_sequence[i] == s and s_producer[i] == p and np.uint64(s_partition[i]) == q


@_jit
def _zip_home(  # type: ignore[no-untyped-def]
    s_producer, s_partition, s_sequence, s_checksum,
    r_producer, r_partition, r_sequence, r_checksum,
    i, gap, end, ka, kb, kv, state, shift,
):  # fmt: skip
    """_zip_run's loop while each stream's key sits in its home slot: one branch-free test
    of the row compare and the slot per row. Returns the row where it stopped."""
    while i < end:
        k = i + gap
        s = s_sequence[i]
        p = s_producer[i]
        q = np.uint64(s_partition[i])
        h = ((p ^ (q * _K1)) * _K2) >> shift
        found = kv[h]
        if (
            (s != r_sequence[k])
            | (p != r_producer[k])
            | (s_partition[i] != r_partition[k])
            | (s_checksum[i] != r_checksum[k])
            | (found == _NONE)
            | (ka[h] != p)
            | (kb[h] != q)
        ):
            break
        if (state[found, 0] != s) | (state[found, 1] != s):
            break
        state[found, 0] = s + _ONE
        state[found, 1] = s + _ONE
        i += _ONE
    return i


@_jit
def _zip_run(  # type: ignore[no-untyped-def]
    s_producer, s_partition, s_sequence, s_checksum,
    r_producer, r_partition, r_sequence, r_checksum,
    i, j, ka, kb, kv, state,
):  # fmt: skip
    """The zipper's common case, apart from the general step (so that its registers are not
    spent on the general step's variables): received message j is sent message i, with the
    same checksum, and its stream's next sequence both sent and received (state[stream]
    holds the two). Returns (i, j) at the first message that is not.

    The loop (_zip_home) tests the row compare and the stream's home slot in one
    branch-free expression per row; a key not in its home slot (a rare collision in a table
    of 16 slots per key) takes a probing lookup here, one row at a time. (Comparing a block
    of rows first, in a loop the compiler vectorises, then looking their streams up in a
    second loop was half as fast: 78 against 41 ms for 10 M rows; so was one loop holding
    the probing lookup too.)"""
    ns = np.uint64(s_sequence.shape[0])
    nr = np.uint64(r_sequence.shape[0])
    if i >= ns or j >= nr:
        return i, j
    shift = _table_shift(kv.shape[0])
    mask = np.uint64(kv.shape[0] - 1)
    gap = j - i  # modulo 2**64: received may be ahead of sent (copies) or behind (losses)
    end = min(ns, nr - gap)
    while True:
        i = _zip_home(
            s_producer, s_partition, s_sequence, s_checksum,
            r_producer, r_partition, r_sequence, r_checksum,
            i, gap, end, ka, kb, kv, state, shift,
        )  # fmt: skip
        if i == end:
            break
        k = i + gap
        s = s_sequence[i]
        p = s_producer[i]
        q = np.uint64(s_partition[i])
        if not (
            s == r_sequence[k]
            and p == r_producer[k]
            and s_partition[i] == r_partition[k]
            and s_checksum[i] == r_checksum[k]
        ):
            break
        found = _lookup(ka, kb, kv, p, q, shift, mask)[0]
        if found == _NONE or state[found, 0] != s or state[found, 1] != s:
            break
        state[found, 0] = s + _ONE
        state[found, 1] = s + _ONE
        i += _ONE
    return i, i + gap


@_jit
def _zip_pass(keys, table, i):  # type: ignore[no-untyped-def]
    """The cursor passes sent message i (keys: sent's producer, partition and sequence
    columns; table: the stream table ka..kc, then origin and state): its stream's number (a
    new stream starts at its sequence), or -1 when the message breaks its stream's run (or
    the stream table is full, or the sequence is 2**64 - 1, past which a run would wrap)."""
    s_producer, s_partition, s_sequence = keys
    ka, kb, kv, by_a, by_b, kc, origin, state = table
    p = s_producer[i]
    q = np.uint64(s_partition[i])
    s = s_sequence[i]
    if s == _NONE:
        return np.int64(-1)
    shift = _table_shift(kv.shape[0])
    mask = np.uint64(kv.shape[0] - 1)
    sid, j = _lookup(ka, kb, kv, p, q, shift, mask)
    if sid == _NONE:
        sid = kc[0]
        if sid == np.uint64(by_a.shape[0]):
            return np.int64(-1)
        ka[j] = p
        kb[j] = q
        kv[j] = sid
        by_a[sid] = p
        by_b[sid] = q
        kc[0] = sid + _ONE
        origin[sid] = s
        state[sid, 0] = s
        state[sid, 1] = s
    if state[sid, 0] != s:
        return np.int64(-1)
    state[sid, 0] = s + _ONE
    return np.int64(sid)


@_jit
def _missing_slot(keys_a, keys_b, state, a, b):  # type: ignore[no-untyped-def]
    """The slot of key (stream a, sequence b) in the missing set, or of the free slot where
    it would go."""
    shift = _table_shift(state.shape[0])
    mask = np.uint64(state.shape[0] - 1)
    j = ((a ^ (b * _K1)) * _K2) >> shift
    while state[j] != _MISSING_FREE and (keys_a[j] != a or keys_b[j] != b):
        j = (j + _ONE) & mask
    return j


@_jit
def _missing_grown(keys_a, keys_b, state):  # type: ignore[no-untyped-def]
    """The missing set in a table twice the size."""
    size = 2 * state.shape[0]
    new_a = np.zeros(size, np.uint64)
    new_b = np.zeros(size, np.uint64)
    new_state = np.zeros(size, np.uint8)
    for j in range(state.shape[0]):
        if state[j] != _MISSING_FREE:
            k = _missing_slot(new_a, new_b, new_state, keys_a[j], keys_b[j])
            new_a[k] = keys_a[j]
            new_b[k] = keys_b[j]
            new_state[k] = state[j]
    return new_a, new_b, new_state


@_jit
def zip_check(  # type: ignore[no-untyped-def]
    s_producer, s_partition, s_sequence, s_checksum,
    r_producer, r_partition, r_sequence, r_checksum,
    ka, kb, kv, by_a, by_b, kc, check_order, max_examples, budget,
):  # fmt: skip
    """check_delivery by the zipper (see above) for ordering "partition" (check_order) or
    "none". Returns (code, counters, example rows as check's, and per stream numbered in
    ka..kc: the next sequences sent and received, and the first sent); code ZIP_GAVE_UP
    when the input is not of the zipper's shape or needs more than budget steps of
    searching and bookkeeping (then the rest means nothing). ka..kc: an empty
    new_stream_table; more streams than it holds give up too."""
    ns = np.uint64(s_sequence.shape[0])
    nr = np.uint64(r_sequence.shape[0])
    streams = by_a.shape[0]
    origin = np.zeros(streams, np.uint64)
    state = np.zeros((streams, 2), np.uint64)  # per stream: next sequence sent, received
    keys = (s_producer, s_partition, s_sequence)
    table = (ka, kb, kv, by_a, by_b, kc, origin, state)
    counters = np.zeros(N_COUNTERS, np.int64)
    examples = np.full((N_CATEGORIES, max_examples), -1, np.int64)
    taken = np.zeros(N_CATEGORIES, np.int64)
    miss_a = np.zeros(1024, np.uint64)
    miss_b = np.zeros(1024, np.uint64)
    miss_state = np.zeros(1024, np.uint8)
    misses = 0
    passed = np.empty(1024, np.uint64)  # sent positions the cursor passed unreceived
    n_passed = 0
    work = 0
    shift = _table_shift(kv.shape[0])
    mask = np.uint64(kv.shape[0] - 1)
    delivered = 0
    duplicated = 0
    reordered = 0
    corrupted = 0
    unexpected = 0
    i = _ZERO
    j = _ZERO
    while j < nr:
        i2, j2 = _zip_run(
            s_producer, s_partition, s_sequence, s_checksum,
            r_producer, r_partition, r_sequence, r_checksum,
            i, j, ka, kb, kv, state,
        )  # fmt: skip
        delivered += np.int64(j2 - j)  # every one of them
        i = i2
        j = j2
        if j == nr:
            break
        p = r_producer[j]
        q = np.uint64(r_partition[j])
        s = r_sequence[j]
        aligned = i < ns and _same(s_producer, s_partition, s_sequence, i, p, q, s)
        found = _NONE
        ahead = _NONE  # where it was found ahead of the cursor
        if not aligned:
            found = _lookup(ka, kb, kv, p, q, shift, mask)[0]
            if found == _NONE or s >= state[found, 0]:  # not behind: just ahead of the cursor?
                k = i + _ONE
                end = min(ns, i + np.uint64(_AHEAD))
                while k < end and not _same(s_producer, s_partition, s_sequence, k, p, q, s):
                    k += _ONE
                work += np.int64(k - i)
                if k >= end:
                    return ZIP_GAVE_UP, counters, examples, state, origin
                ahead = k
                after = j + _ONE
                if k == i + _ONE or (
                    after < nr
                    and k + _ONE < ns
                    and _same(
                        s_producer, s_partition, s_sequence, k + _ONE,
                        r_producer[after], np.uint64(r_partition[after]), r_sequence[after],
                    )
                ):  # fmt: skip
                    # The sent messages before it were not received here (the ones after
                    # it were): passed over, lost unless they come later.
                    while i < k:
                        if _zip_pass(keys, table, i) < 0:
                            return ZIP_GAVE_UP, counters, examples, state, origin
                        if n_passed == passed.shape[0]:
                            passed = np.concatenate((passed, np.empty(n_passed, np.uint64)))
                        passed[n_passed] = i
                        n_passed += 1
                        i += _ONE
                    aligned = True
        member = True
        sent_checksum = np.int64(-1)
        if aligned:
            sid = _zip_pass(keys, table, i)
            if sid < 0:
                return ZIP_GAVE_UP, counters, examples, state, origin
            sent_checksum = np.int64(s_checksum[i])
            i += _ONE
        elif ahead != _NONE:  # received early: delivered now, passed over when reached
            if found == _NONE:  # its stream not yet begun at the cursor
                return ZIP_GAVE_UP, counters, examples, state, origin
            sid = np.int64(found)
            sent_checksum = np.int64(s_checksum[ahead])
        else:  # behind the cursor (late, or a duplicate), or below its stream's first
            sid = np.int64(found)
            member = s >= origin[found]
        if state[sid, 0] < origin[sid] or state[sid, 1] < origin[sid]:
            return ZIP_GAVE_UP, counters, examples, state, origin  # a run wrapped
        category = -1
        if not member:
            category = UNEXPECTED
            unexpected += 1
        else:
            deliver = True
            r0 = state[sid, 1]
            if s >= r0:  # its stream's highest so far: the sequences it skipped are missing
                if s == _NONE or np.int64(s - r0) > budget - work:
                    return ZIP_GAVE_UP, counters, examples, state, origin
                x = r0
                while x < s:
                    if 2 * (misses + 1) > miss_state.shape[0]:
                        miss_a, miss_b, miss_state = _missing_grown(miss_a, miss_b, miss_state)
                    slot = _missing_slot(miss_a, miss_b, miss_state, np.uint64(sid), x)
                    miss_a[slot] = np.uint64(sid)
                    miss_b[slot] = x
                    miss_state[slot] = _MISSING
                    misses += 1
                    x += _ONE
                work += np.int64(s - r0)
                state[sid, 1] = s + _ONE
            else:
                slot = _missing_slot(miss_a, miss_b, miss_state, np.uint64(sid), s)
                if miss_state[slot] == _MISSING:  # a gap filled: sent before one delivered
                    miss_state[slot] = _FILLED
                    if check_order:
                        category = REORDERED
                        reordered += 1
                else:
                    category = DUPLICATED
                    duplicated += 1
                    deliver = False
            if deliver:
                delivered += 1
                if sent_checksum < 0:  # received late: its row is not far behind the cursor
                    k = i
                    stop = i - np.uint64(_BEHIND) if i > np.uint64(_BEHIND) else _ZERO
                    while k > stop:
                        k -= _ONE
                        if _same(s_producer, s_partition, s_sequence, k, p, q, s):
                            sent_checksum = np.int64(s_checksum[k])
                            break
                    work += np.int64(i - k)
                    if sent_checksum < 0:
                        return ZIP_GAVE_UP, counters, examples, state, origin
                if sent_checksum != np.int64(r_checksum[j]):
                    corrupted += 1
                    if taken[CORRUPTED] < max_examples:
                        examples[CORRUPTED, taken[CORRUPTED]] = np.int64(j)
                        taken[CORRUPTED] += 1
        if category >= 0 and taken[category] < max_examples:
            examples[category, taken[category]] = np.int64(j)
            taken[category] += 1
        if work > budget:
            return ZIP_GAVE_UP, counters, examples, state, origin
        j += _ONE
    # The sent messages after the last one received: their runs are checked too.
    tail = i
    while i < ns:
        if _zip_pass(keys, table, i) < 0:
            return ZIP_GAVE_UP, counters, examples, state, origin
        i += _ONE
    for sid in range(np.int64(kc[0])):
        if state[sid, 0] < origin[sid] or state[sid, 1] < origin[sid]:
            return ZIP_GAVE_UP, counters, examples, state, origin  # a run wrapped
    # Lost: passed over (or after the last received) and never delivered since.
    t = 0
    at = tail
    while taken[LOST] < max_examples:
        if t < n_passed:
            k = passed[t]
            t += 1
        elif at < ns:
            k = at
            at += _ONE
        else:
            break
        s = s_sequence[k]
        stream = _lookup(ka, kb, kv, s_producer[k], np.uint64(s_partition[k]), shift, mask)[0]
        lost = s >= state[stream, 1]
        if not lost:
            slot = _missing_slot(miss_a, miss_b, miss_state, stream, s)
            lost = miss_state[slot] == _MISSING
        if lost:
            examples[LOST, taken[LOST]] = np.int64(k)
            taken[LOST] += 1
    counters[EXPECTED] = np.int64(ns)
    counters[DELIVERED] = delivered
    counters[LOST] = np.int64(ns) - delivered
    counters[DUPLICATED] = duplicated
    counters[REORDERED] = reordered
    counters[CORRUPTED] = corrupted
    counters[UNEXPECTED] = unexpected
    return ZIP_OK, counters, examples, state, origin


# ---- the tracker ------------------------------------------------------------------------


@_jit
def track(  # type: ignore[no-untyped-def]
    producer,
    partition,
    sequence,
    offset,
    position_base,
    ka,
    kb,
    kv,
    by_a,
    by_b,
    kc,
    high,
    holes,
    lazy,
    bits,
    window,
    start,
    check_order,
    counters,
    lost_total,
    examples,
    taken,
    example_keys,
):
    """Feeds messages from offset on into the tracker's state (see DeliveryTracker for the
    rules). Returns the index it stopped at: the length when done, or earlier when a new
    stream needs room (the caller grows the per-stream arrays and calls again).

    Per stream: high, its highest sequence (start - 1 while nothing at or above start has
    arrived); holes, how many sequences of its window (from max(start, high - window + 1)
    to high) have not arrived; and bits, one per window slot (sequence % window), set when
    that sequence arrived. While holes is 0 the bits are written lazily: they are exact
    below lazy[stream] and every sequence from there to high arrived, so a stream's next
    sequence, the common case, costs one compare and one store (nothing can leave the
    window unreceived). Any other arrival first writes the lazy bits (_fill), then takes
    the general path. A stream's next sequence while it has holes takes a middle path: its
    bit shares a slot with the sequence leaving the window, which is lost if that bit is
    clear.

    The stream table is a new_stream_table (unsigned indices, see check_delivery's dense
    path)."""
    n = U64(sequence.shape[0])
    shift = _table_shift(kv.shape[0])
    mask = np.uint64(kv.shape[0] - 1)
    words = window // 64
    w = U64(window)
    st = U64(start)
    max_examples = examples.shape[1]
    # Counted in locals (and a small local array), added to counters on the way out: stores
    # to the caller's array in the loop would keep the compiler from using registers.
    lost = U64(0)  # sequences near 2**64 can lose more than an int64 holds
    delivered = 0
    tally = np.zeros(N_CATEGORIES, np.int64)
    run = np.zeros(2, np.uint64)  # what each run of next sequences delivered and lost
    i = U64(offset)  # unsigned: numba fixes up every signed index
    while i < n:
        i = _next_sequences(
            producer, partition, sequence, i, ka, kb, kv, high, holes, lazy, bits, w, st, run
        )
        if i == n:
            break
        p = producer[i]
        q = U64(partition[i])
        s = sequence[i]
        found, j = _lookup(ka, kb, kv, p, q, shift, mask)
        before = np.int64(kc[0])
        if found == _NONE:
            if before == high.shape[0]:
                break  # the caller grows the arrays for one more stream, and calls again
            ka[j] = p
            kb[j] = q
            kv[j] = kc[0]
            by_a[before] = p
            by_b[before] = q
            kc[0] += _ONE
            sid = before
        else:
            sid = np.int64(found)
        category = -1
        if sid == before:  # the stream's first message
            for k in range(words):
                bits[sid, k] = U64(0)
            high[sid] = s
            holes[sid] = U64(0)
            if s < st:
                category = UNEXPECTED
                high[sid] = st - U64(1)  # s < st, so st > 0: "nothing at or above start yet"
            else:
                low = s - w + U64(1) if s >= w - U64(1) else U64(0)
                if low > st:
                    lost += low - st
                _set(bits, sid, s, w)
                holes[sid] = s - (low if low > st else st)
                delivered += 1
            lazy[sid] = high[sid] + U64(1)  # the bits are exact
        elif s < st:
            category = UNEXPECTED
        else:
            h = high[sid]
            low = h - w + U64(1) if h >= w - U64(1) else U64(0)
            if h < st:
                low = st  # nothing received yet at or above start
            elif low < st:
                low = st
            if holes[sid] == U64(0) and h >= st and lazy[sid] <= h:
                _fill(bits, sid, lazy[sid] if lazy[sid] > low else low, h, w)
            gaps = holes[sid]
            if s < low:
                category = LATE
            elif s > h or h < st:
                new_low = s - w + U64(1) if s >= w - U64(1) else U64(0)
                if h < st:
                    if new_low > st:
                        lost += new_low - st
                    gaps = s - (new_low if new_low > st else st)  # bits clear since creation
                else:
                    # sequences in [low, new_low) leave the window
                    if new_low > low:
                        upto = new_low if new_low <= h + U64(1) else h + U64(1)
                        span = upto - low
                        gone = U64(0)  # holes that leave the window: lost
                        if span >= w:
                            for k in range(words):
                                gone += U64(64 - _popcount(bits[sid, k]))
                                bits[sid, k] = U64(0)
                        else:
                            x = low
                            while x < upto:
                                if not _get(bits, sid, x, w):
                                    gone += U64(1)
                                _clear(bits, sid, x, w)
                                x += U64(1)
                        lost += gone
                        gaps -= gone
                        if new_low > h + U64(1):
                            lost += new_low - (h + U64(1))
                    # slots between h and s that stay in the window must read as empty
                    x = h + U64(1) if h + U64(1) > new_low else new_low
                    gaps += s - x  # they are the stream's new holes
                    if s - x >= w:
                        for k in range(words):
                            bits[sid, k] = U64(0)
                    else:
                        while x < s:
                            _clear(bits, sid, x, w)
                            x += U64(1)
                high[sid] = s
                _set(bits, sid, s, w)
                delivered += 1
            elif _get(bits, sid, s, w):
                category = DUPLICATED
            else:
                _set(bits, sid, s, w)
                gaps -= U64(1)
                delivered += 1
                if check_order:
                    category = REORDERED
            holes[sid] = gaps
            lazy[sid] = high[sid] + U64(1)  # the bits are exact now
        if category >= 0:
            tally[category] += 1
            t = taken[category]
            if t < max_examples:
                examples[category, t] = position_base + np.int64(i)
                example_keys[category, t, 0] = p
                example_keys[category, t, 1] = q
                example_keys[category, t, 2] = s
                taken[category] += 1
        i += _ONE
    for category in range(N_CATEGORIES):
        counters[category] += tally[category]
    lost_total[0] += lost + run[1]
    counters[DELIVERED] += delivered + np.int64(run[0])
    return np.int64(i)


@_jit
def _next_sequences(  # type: ignore[no-untyped-def]
    producer, partition, sequence, i, ka, kb, kv, high, holes, lazy, bits, w, st, run
):
    """track's common case, in a loop of its own (inside track's, the registers were spent
    on the general path's variables and every pointer was reloaded from the stack each
    message): messages from i on that are their stream's next sequence. Returns the index
    of the first other one (or the length), and adds what it delivered and lost to run."""
    n = U64(sequence.shape[0])
    shift = _table_shift(kv.shape[0])
    mask = np.uint64(kv.shape[0] - 1)
    word_mask = w - _ONE
    first = i
    lost = _ZERO
    while i < n:
        s = sequence[i]
        found = _lookup(ka, kb, kv, producer[i], U64(partition[i]), shift, mask)[0]
        if found == _NONE:
            break
        h = high[found]
        if s <= h or s - h != _ONE:  # not the next sequence (a next one has h >= start - 1)
            break
        gaps = holes[found]
        high[found] = s
        i += _ONE
        if gaps == _ZERO:  # every sequence of the window arrived: nothing to mark
            continue
        at = s & word_mask
        bit = _ONE << (at & np.uint64(63))
        word = bits[found, at >> np.uint64(6)]
        if word & bit == _ZERO and s - st >= w:
            lost += _ONE  # s - w left the window without arriving
            holes[found] = gaps - _ONE
        bits[found, at >> np.uint64(6)] = word | bit
        lazy[found] = s + _ONE  # the bits are exact up to s
    run[0] += i - first  # every one was delivered
    run[1] += lost
    return i


@_inline
def _fill(bits, sid, first, last, w):  # type: ignore[no-untyped-def]
    """Sets the bits of sequences first to last (at most w of them), a word at a time where
    a whole word is covered: how a stream's lazily kept bits are written out."""
    x = first
    left = last - first + U64(1)  # counted down: last may be 2**64 - 1
    while left > U64(0):
        k = np.int64(x & (w - U64(1)))
        if k & 63 == 0 and left >= U64(64):
            bits[sid, k >> 6] = _NONE
            x += U64(64)
            left -= U64(64)
        else:
            bits[sid, k >> 6] |= U64(1) << U64(k & 63)
            x += U64(1)
            left -= U64(1)


@_inline
def _popcount(x):  # type: ignore[no-untyped-def]
    c = 0
    while x:
        x &= x - U64(1)
        c += 1
    return c


@_inline
def _set(bits, sid, s, w):  # type: ignore[no-untyped-def]
    k = np.int64(s & (w - U64(1)))  # w is a power of two; signed index (uint64 is slower)
    bits[sid, k >> 6] |= U64(1) << U64(k & 63)


@_inline
def _clear(bits, sid, s, w):  # type: ignore[no-untyped-def]
    k = np.int64(s & (w - U64(1)))  # w is a power of two; signed index (uint64 is slower)
    bits[sid, k >> 6] &= ~(U64(1) << U64(k & 63))


@_inline
def _get(bits, sid, s, w):  # type: ignore[no-untyped-def]
    k = np.int64(s & (w - U64(1)))  # w is a power of two; signed index (uint64 is slower)
    return (bits[sid, k >> 6] >> U64(k & 63)) & U64(1)


@_jit
def pending(high, holes, count, start):  # type: ignore[no-untyped-def]
    """Gaps still inside every stream's window: the sum of its holes (see track)."""
    st = U64(start)
    gaps = U64(0)
    for sid in range(count):
        if high[sid] >= st:
            gaps += holes[sid]
    return gaps


@_jit
def restock(ka, kb, kv, by_a, by_b, count):  # type: ignore[no-untyped-def]
    """Adds the first count keys (by_a, by_b) to an empty, bigger new_stream_table, each
    with its number (its index): how a table grows."""
    shift = _table_shift(kv.shape[0])
    mask = np.uint64(kv.shape[0] - 1)
    for x in range(count):
        _, j = _lookup(ka, kb, kv, by_a[x], by_b[x], shift, mask)
        ka[j] = by_a[x]
        kb[j] = by_b[x]
        kv[j] = np.uint64(x)
