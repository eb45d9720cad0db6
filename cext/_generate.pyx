# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled hot path of kaelix.testing.generate: frames written from prepared columns.

The loop is plain C in kx_generate.h; this module checks the arrays it is handed and runs
the loop with the GIL released, on one thread or two. It must never import anything from the
pure-Python kaelix package (kaelix.testing.generate imports it).

Measured (Zen 3 EPYC, 2 cores): see docs/generate.md, "How fast".
"""

from cpython.buffer cimport PyBuffer_FillInfo
from cpython.bytes cimport PyBytes_AS_STRING
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc

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


# ------------------------------------------------------------------------ recycled memory
#
# A batch's frames live in a block that goes back to a small pool when the batch is freed,
# and the next batch of about the same size takes it again. Fresh memory for every batch
# cost a page fault every 4 KiB whenever the allocator handed the heap's top back to the
# system between batches, which it did or not depending on what the process had freed
# before: the same loop ran at 29 or at 58 M msg/s (64 B) from one process to the next.

cdef enum:
    _POOL_BLOCKS = 4                # free blocks kept
    _MIN_BLOCK = 64 * 1024
cdef size_t _POOL_BYTES = 256 * 1024 * 1024  # most bytes kept in free blocks
cdef void *_free_block[_POOL_BLOCKS]
cdef size_t _free_size[_POOL_BLOCKS]
cdef int _free_count = 0
cdef size_t _free_bytes = 0


cdef size_t _block_size(size_t size) noexcept:
    """Blocks come in powers of two from 64 KiB, so a batch of about the same size fits the
    block a previous one left (only the pages written are ever touched)."""
    cdef size_t block = _MIN_BLOCK
    while block < size:
        block <<= 1
    return block


cdef void *_take_block(size_t block) noexcept:
    """A block of exactly ``block`` bytes, from the pool when one is there (GIL held)."""
    global _free_count, _free_bytes
    cdef int k
    for k in range(_free_count):
        if _free_size[k] == block:
            data = _free_block[k]
            _free_count -= 1
            _free_block[k] = _free_block[_free_count]
            _free_size[k] = _free_size[_free_count]
            _free_bytes -= block
            return data
    return malloc(block)


cdef void _give_block(void *data, size_t block) noexcept:
    """Returns a block to the pool, or to the system when the pool is full (GIL held)."""
    global _free_count, _free_bytes
    if _free_count < _POOL_BLOCKS and _free_bytes + block <= _POOL_BYTES:
        _free_block[_free_count] = data
        _free_size[_free_count] = block
        _free_count += 1
        _free_bytes += block
    else:
        free(data)


cdef class _Frames:
    """Generated frames (read-only) or columns (writable) in a recycled block, exported
    through the buffer protocol; the block goes back to the pool when the last view of it
    is released."""
    cdef unsigned char *data
    cdef Py_ssize_t size
    cdef size_t block
    cdef bint readonly

    def __getbuffer__(self, Py_buffer *view, int flags):
        PyBuffer_FillInfo(view, self, self.data, self.size, self.readonly, flags)

    def __releasebuffer__(self, Py_buffer *view):
        pass

    def __dealloc__(self):
        if self.data != NULL:
            _give_block(self.data, self.block)
            self.data = NULL


cdef _Frames _new_frames(Py_ssize_t size, bint readonly=True):
    if size > (<Py_ssize_t>1 << 48):
        raise MemoryError(f"cannot allocate {size} bytes of frames")
    cdef _Frames frames = _Frames.__new__(_Frames)
    frames.readonly = readonly
    frames.block = _block_size(<size_t>size)
    frames.data = <unsigned char *>_take_block(frames.block)
    if frames.data == NULL:
        raise MemoryError(f"cannot allocate {size} bytes of frames")
    frames.size = size
    return frames


def new_block(Py_ssize_t size):
    """A writable memoryview of ``size`` bytes (uninitialised) in a recycled block, 16-byte
    aligned: where MessageGenerator lays out the columns of a batch."""
    if size < 0:
        raise ValueError(f"size must be at least 0, got {size}")
    return memoryview(_new_frames(max(size, 1), False))[:size]


def fill_columns(int64_t[::1] offsets, uint64_t[::1] sequence, uint32_t[::1] partition,
                 uint64_t[::1] producer_id, int64_t[::1] timestamp_ns, int64_t frame_length,
                 uint64_t first_sequence, int64_t first_ns, int64_t interval_ns,
                 uint64_t producer, uint32_t partition_value):
    """Fills the columns of one stream of same-size frames in one pass: offsets ``i *
    frame_length``, sequences from ``first_sequence`` (wrapping at 2**64), timestamps
    ``first_ns + i * interval_ns`` (the caller checks they fit), one producer and
    partition. What numpy would do in five passes and five temporary arrays."""
    cdef Py_ssize_t n = sequence.shape[0], i
    for name, column in (("partition", partition), ("producer_id", producer_id),
                         ("timestamp_ns", timestamp_ns)):
        _check(name, column, n)
    _check("offsets", offsets, n + 1)
    with nogil:
        for i in range(n):
            offsets[i] = i * frame_length
            sequence[i] = first_sequence + <uint64_t>i
            partition[i] = partition_value
            producer_id[i] = producer
            timestamp_ns[i] = first_ns + i * interval_ns
        offsets[n] = n * frame_length


def _pool_state():
    """(free blocks, bytes in them): for the tests."""
    return _free_count, _free_bytes


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
    """Writes len(sequence) frames end to end and returns a read-only memoryview of them (in
    a recycled block); fills checksum.

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
    if n == 0:
        return memoryview(b"")
    cdef _Frames out = _new_frames(offsets[n])
    job.owners = (out, offsets, sequence, partition, producer_id, timestamp_ns, checksum,
                  payload_length, key_index, pool)
    job.args.out = out.data
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
    return memoryview(out)


def pool_start(uint64_t seed, uint64_t index, uint64_t length, uint64_t pool_length):
    """Where message ``index``'s payload of ``length`` bytes starts in a pool of
    ``pool_length`` bytes (for the plain-Python reference in the tests)."""
    if length > pool_length:
        raise ValueError(f"length {length} exceeds pool_length {pool_length}")
    return kx_gen_pool_start(seed, index, length, pool_length)
