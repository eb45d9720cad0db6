# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled hot path of kaelix.testing.generate: frames written from prepared columns.

The loop is plain C in kx_generate.h; this module checks the arrays it is handed and runs
the loop with the GIL released, on one thread or two. It must never import anything from the
pure-Python kaelix package (kaelix.testing.generate imports it).

Measured (Zen 3 EPYC, 2 cores): see docs/generate.md, "How fast".
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport int64_t, uint32_t, uint64_t

from kx_c cimport kx_crc32c_init

import threading


cdef extern from "kx_generate.h" nogil:
    ctypedef struct kx_gen_args:
        unsigned char *out
        const int64_t *offsets
        const uint64_t *sequence
        const uint32_t *partition
        const uint64_t *producer
        const int64_t *timestamp
        const uint32_t *payload_length
        uint32_t fixed_payload
        const uint64_t *key_index
        const unsigned char *pool
        uint64_t pool_length
        uint64_t seed
        uint64_t first_index
        uint32_t *checksum
    void kx_gen_frames(const kx_gen_args *a, size_t begin, size_t end)
    Py_ssize_t kx_gen_check(const kx_gen_args *a, size_t n, uint64_t *longest)
    uint64_t kx_gen_pool_start(uint64_t seed, uint64_t index, uint64_t length,
                               uint64_t pool_length)


kx_crc32c_init()

# Below this many messages a second thread costs more to start than it saves.
cdef Py_ssize_t _TWO_THREADS_MIN = 32768
# The loop reads a payload's last 8-byte word whole: the pool's last 8 bytes are only read.
POOL_SLACK = 8
cdef uint64_t _POOL_SLACK = POOL_SLACK


cdef class _Job:
    """The loop's arguments and the objects that own the memory they point into."""
    cdef kx_gen_args args
    cdef tuple owners

    def run(self, size_t begin, size_t end):
        with nogil:
            kx_gen_frames(&self.args, begin, end)


def _check(name, array, Py_ssize_t length):
    if array.shape[0] != length:
        raise ValueError(f"{name} has {array.shape[0]} entries; expected {length}")


def write_frames(
    const int64_t[::1] offsets,
    const uint64_t[::1] sequence,
    const uint32_t[::1] partition,
    const uint64_t[::1] producer_id,
    const int64_t[::1] timestamp_ns,
    uint32_t[::1] checksum,
    payload_length,
    uint32_t fixed_payload,
    key_index,
    bytes pool,
    uint64_t seed,
    uint64_t first_index,
    int threads=1,
):
    """Writes len(sequence) frames end to end and returns them as bytes; fills checksum.

    offsets (n + 1 entries, from 0) must give each frame exactly the room its sections
    take: 56 + (8 if key_index is not None) + the payload length, aligned to 8.
    payload_length is a uint32 array (or None: every payload is fixed_payload bytes);
    key_index a uint64 array (or None: no keys). Message i's payload is pool[s, s + length)
    with s = pool_start(seed, first_index + i, length, len(pool) - POOL_SLACK). The caller (the Python
    layer) builds the columns; the checks here keep the loop inside its arrays.
    """
    cdef Py_ssize_t n = sequence.shape[0], bad
    cdef const uint32_t[::1] lengths
    cdef const uint64_t[::1] keys
    cdef _Job job = _Job()
    cdef uint64_t longest = 0
    for name, column in (("partition", partition), ("producer_id", producer_id),
                         ("timestamp_ns", timestamp_ns), ("checksum", checksum)):
        _check(name, column, n)
    _check("offsets", offsets, n + 1)
    if offsets[0] != 0:
        raise ValueError(f"offsets must start at 0, got {offsets[0]}")
    job.args.payload_length = NULL
    job.args.key_index = NULL
    job.args.fixed_payload = fixed_payload
    job.args.offsets = &offsets[0]
    if payload_length is not None:
        lengths = payload_length
        _check("payload_length", lengths, n)
        if n:
            job.args.payload_length = &lengths[0]
    if key_index is not None:
        keys = key_index
        _check("key_index", keys, n)
        if n:
            job.args.key_index = &keys[0]
    with nogil:
        bad = kx_gen_check(&job.args, n, &longest)
    if bad >= 0:
        raise ValueError(f"offsets give frame {bad} {offsets[bad + 1] - offsets[bad]} bytes; "
                         "its sections take a different length")
    if <uint64_t>len(pool) < longest + _POOL_SLACK:
        raise ValueError(f"pool has {len(pool)} bytes; payloads need at least "
                         f"{longest + _POOL_SLACK} ({_POOL_SLACK} bytes of slack)")
    out = PyBytes_FromStringAndSize(NULL, offsets[n])
    if n == 0:
        return out
    job.owners = (out, offsets, sequence, partition, producer_id, timestamp_ns, checksum,
                  payload_length, key_index, pool)
    job.args.out = <unsigned char *>PyBytes_AS_STRING(out)
    job.args.sequence = &sequence[0]
    job.args.partition = &partition[0]
    job.args.producer = &producer_id[0]
    job.args.timestamp = &timestamp_ns[0]
    job.args.checksum = &checksum[0]
    job.args.pool = <const unsigned char *>PyBytes_AS_STRING(pool)
    job.args.pool_length = len(pool) - _POOL_SLACK
    job.args.seed = seed
    job.args.first_index = first_index
    if threads > 1 and n >= _TWO_THREADS_MIN:
        half = (n // 2) // 3 * 3
        helper = threading.Thread(target=job.run, args=(half, n), daemon=True)
        helper.start()
        job.run(0, half)
        helper.join()
    else:
        job.run(0, n)
    return out


def pool_start(uint64_t seed, uint64_t index, uint64_t length, uint64_t pool_length):
    """Where message ``index``'s payload of ``length`` bytes starts in a pool of
    ``pool_length`` bytes (for the plain-Python reference in the tests)."""
    if length > pool_length:
        raise ValueError(f"length {length} exceeds pool_length {pool_length}")
    return kx_gen_pool_start(seed, index, length, pool_length)
