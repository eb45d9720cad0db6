# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, embedsignature=False
"""Rings of kaelix frames: in process (``RingCore``) and in shared memory (``SharedRingCore``).

The ring itself is C (``kx_ring.h``); this module binds it, waits (spin, yield or futex),
watches peer processes, and maps every failure to a kaelix exception. It imports nothing of
the kaelix package but the compiled codec (for the error base class and frame errors); the
batch methods live in ``kaelix._rings``, which subclasses these types.
"""

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_CheckExact,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from cpython.exc cimport PyErr_CheckSignals
from libc.errno cimport EEXIST, ENOENT, errno
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memset
from posix.fcntl cimport O_CREAT, O_EXCL, O_RDWR
from posix.mman cimport MAP_FAILED, MAP_SHARED, PROT_READ, PROT_WRITE, mmap, munmap, shm_open, shm_unlink
from posix.stat cimport fchmod, fstat, struct_stat
from posix.unistd cimport close as c_close, ftruncate, getpid

from kx_c cimport (
    KX_HEADER_SIZE,
    kx_crc32c,
    KX_MAX_FRAME_LIMIT,
    kx_frame_seal,
    kx_frame_size,
    kx_frame_write_header,
    kx_ld32,
    kx_ld64,
    KX_OK,
    kx_crc32c_init,
    kx_error,
    kx_frame_info,
    kx_frame_parse,
)
from kx_ring cimport *

import atexit
import os
import queue
import re
import weakref

from kaelix._codec import KaelixError
from kaelix._codec import decode as _decode


cdef extern from "<stdlib.h>" nogil:
    int posix_memalign(void **memptr, size_t alignment, size_t size)

cdef extern from "<sched.h>" nogil:
    int sched_yield()

cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(int clk, timespec *ts)
    int CLOCK_REALTIME

cdef extern from "<sys/mman.h>" nogil:
    int MAP_POPULATE

kx_crc32c_init()


# ---- errors ------------------------------------------------------------------------------

class RingError(KaelixError, ValueError):
    """A ring segment or its contents are not what kaelix wrote: ``reason`` says which check
    failed (``uninitialised``, ``bad_magic``, ``unsupported_version``, ``bad_layout``,
    ``truncated``, ``corrupt``, ``too_many_producers``, ``too_many_consumers``)."""

    REASONS = ("uninitialised", "bad_magic", "unsupported_version", "bad_layout", "truncated",
               "corrupt", "too_many_producers", "too_many_consumers")

    def __init__(self, message, reason):
        super().__init__(message)
        self.reason = reason

    def __reduce__(self):
        return (type(self), (self.args[0], self.reason))


class RingFull(KaelixError, queue.Full):
    """A put found no room before its timeout (or at once, with ``timeout=0``)."""


class RingEmpty(KaelixError, queue.Empty):
    """A get found nothing before its timeout (or at once, with ``timeout=0``)."""


class RingClosed(KaelixError, ValueError):
    """The ring (or this handle to a shared ring) was closed."""


class PeerGone(KaelixError, BrokenPipeError):
    """A blocked put or get cannot finish because the processes on the other side died:
    ``pid`` is one of them (None when they were found dead by an earlier call), ``role`` is
    ``"producer"`` or ``"consumer"``."""

    def __init__(self, message, pid, role):
        super().__init__(message)
        self.pid = pid
        self.role = role

    def __str__(self):
        return self.args[0]

    def __reduce__(self):
        return (type(self), (self.args[0], self.pid, self.role))


# ---- module state ----------------------------------------------------------------------------

cdef enum:
    _SLICE_NS = 100_000_000       # longest sleep between checks of signals and peers
    _SLEEP_SPIN_NS = 20_000       # "sleep" spins this long before it sleeps on the futex
    _SLEEP_PAUSE_NS = 5_000       # ... of which this long with pause, the rest yielding
    _TURN_REPAIR_NS = 20_000_000  # a publish turn stuck this long looks for a dead claimant

cdef uint64_t UINT64_MAX_ = 0xFFFFFFFFFFFFFFFF


cdef inline Py_ssize_t _frames_between(uint64_t later, uint64_t earlier) noexcept nogil:
    """later - earlier as a length: 0 when earlier is ahead, at most PY_SSIZE_T_MAX. Counters
    in a shared segment are whatever its processes wrote; a length must not come out
    negative (for __len__, -1 means an error was raised)."""
    if later <= earlier:
        return 0
    if later - earlier > <uint64_t>0x7FFFFFFFFFFFFFFF:
        return 0x7FFFFFFFFFFFFFFF
    return <Py_ssize_t>(later - earlier)
cdef uint32_t attempt_word = 0  # a futex word nobody wakes: a plain 10 ms sleep


cdef extern from "Python.h":
    bint PyObject_CheckBuffer(object obj)
    object PyByteArray_FromStringAndSize(const char *s, Py_ssize_t n)
    char *PyByteArray_AS_STRING(object o)


cdef enum WaitMode:
    WAIT_SLEEP = 0
    WAIT_SPIN = 1
    WAIT_YIELD = 2

cdef enum WaitFor:
    FOR_DATA = 0
    FOR_SPACE = 1

_WAIT_MODES = {"sleep": WAIT_SLEEP, "spin": WAIT_SPIN, "yield": WAIT_YIELD}
_WAIT_NAMES = {v: k for k, v in _WAIT_MODES.items()}
_NAME_RULE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,199}\Z")
_LAYOUT_REASONS = {
    KX_LAYOUT_TRUNCATED: "truncated",
    KX_LAYOUT_UNINITIALISED: "uninitialised",
    KX_LAYOUT_BAD_MAGIC: "bad_magic",
    KX_LAYOUT_VERSION: "unsupported_version",
    KX_LAYOUT_BAD: "bad_layout",
}

# Bumped in a forked child, so that handles inherited from the parent take new slots
# instead of acting under the parent's pid.
cdef uint64_t _fork_generation = 0


def _after_fork_in_child():
    global _fork_generation
    _fork_generation += 1


os.register_at_fork(after_in_child=_after_fork_in_child)

# Shared handles still open at interpreter exit are detached cleanly, so that a process that
# ends normally is never mistaken for one that died.
_open_handles = weakref.WeakSet()


@atexit.register
def _close_open_handles():
    for handle in list(_open_handles):
        handle.close()


cdef bint _exit_hook_installed = False


cdef _close_at_exit():
    """atexit does not run in a multiprocessing child started with fork (it leaves with
    os._exit), but multiprocessing's own finalizers do: register there too, once."""
    global _exit_hook_installed
    if _exit_hook_installed:
        return
    _exit_hook_installed = True
    from multiprocessing import util
    util.Finalize(None, _close_open_handles, exitpriority=0)
    # A child that multiprocessing forks starts with its finalizers cleared: arm it again
    # there (after the clearing, which is when register_after_fork's hooks run).
    util.register_after_fork(_open_handles, _rearm_exit_hook)


def _rearm_exit_hook(_):
    global _exit_hook_installed
    _exit_hook_installed = False
    _close_at_exit()


cdef int _wait_mode(object wait) except -1:
    try:
        return _WAIT_MODES[wait]
    except (KeyError, TypeError):
        raise ValueError(f"wait must be 'sleep', 'spin' or 'yield', got {wait!r}") from None


cdef int64_t _deadline(object timeout) except -2:
    """-1 for no deadline; otherwise the monotonic clock value, in ns, to give up at."""
    cdef double seconds
    if timeout is None:
        return -1
    try:
        seconds = timeout
    except TypeError:
        raise TypeError(f"timeout must be a number of seconds or None, "
                        f"got {type(timeout).__name__}") from None
    if seconds != seconds or seconds < 0:
        raise ValueError(f"timeout must be >= 0 seconds or None, got {timeout!r}")
    if seconds > 1e9:
        return -1
    return kx_now_ns() + <int64_t>(seconds * 1e9)


cdef int _check_frame(const unsigned char *p, Py_ssize_t n, object frame,
                      uint64_t capacity) except -1:
    """Raises unless p[:n] is exactly one valid frame that can fit in the ring."""
    cdef kx_frame_info fi
    cdef kx_error err
    if <uint64_t>n > capacity:
        raise ValueError(f"a {n}-byte frame can never fit in a ring of {capacity} bytes; "
                         f"create the ring with a capacity of at least {n}")
    if kx_frame_parse(p, <size_t>n, KX_MAX_FRAME_LIMIT, 1, &fi, &err) != KX_OK \
            or fi.frame_length != <uint32_t>n:
        _decode(bytes(frame))  # raises the DecodeError that says what is wrong, and where
        raise AssertionError("decode accepted a frame that the ring's check refused")
    return 0


cdef inline void _set_base(kx_ring_slot *s, uint64_t pos, uint64_t frames) noexcept nogil:
    """A consumer slot joining at (pos, frames): it has received nothing yet."""
    s.base_pos = pos
    s.base_frames = frames
    s.passed = 0


cdef inline bint _data_ready(kx_ring *r, uint64_t cursor) noexcept nogil:
    return KX_LOAD_ACQ(&r.h.publish) != cursor or KX_LOAD_RLX(&r.h.closed) != 0


cdef inline bint _space_ready(kx_ring *r, uint64_t need) noexcept nogil:
    if KX_LOAD_RLX(&r.h.closed) != 0:
        return True
    if r.h.max_items != 0 and <int64_t>KX_LOAD_ACQ(&r.h.items_free) <= 0:
        return False
    return kx_ring_has_room(r, KX_LOAD_RLX(&r.h.claim), need) != 0


cdef inline bint _ready(kx_ring *r, int what, uint64_t arg) noexcept nogil:
    if what == FOR_DATA:
        return _data_ready(r, arg)
    return _space_ready(r, arg)


cdef bint _spin(kx_ring *r, int what, uint64_t arg, int mode, int64_t until,
                const int *stop) noexcept nogil:
    """Polls until the condition holds or *stop is set (True) or the clock passes until
    (False)."""
    cdef int i
    while True:
        for i in range(64):
            if _ready(r, what, arg) or KX_LOAD_RLX(stop):
                return True
            if mode == WAIT_YIELD:
                sched_yield()
            else:
                KX_PAUSE()
        if kx_now_ns() >= until:
            return False


def _index_frames(bytes buf, Py_ssize_t count, int64_t[::1] offsets, uint64_t[::1] sequence,
                  uint32_t[::1] partition, uint64_t[::1] producer_id, int64_t[::1] timestamp_ns,
                  uint32_t[::1] checksum):
    """Fills a batch's columns for count frames laid end to end in buf, frames this process
    checked already (those of an in-process ring): header fields are read, not checked again,
    but every length is bounded by buf, so a wrong count raises instead of reading past it."""
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(buf)
    cdef uint64_t size = <uint64_t>PyBytes_GET_SIZE(buf), pos = 0, length
    cdef Py_ssize_t i
    if offsets.shape[0] < count + 1 or min(sequence.shape[0], partition.shape[0],
            producer_id.shape[0], timestamp_ns.shape[0], checksum.shape[0]) < count:
        raise ValueError(f"the columns have no room for {count} frames")
    for i in range(count):
        if size - pos < 56:
            raise ValueError(f"frame {i} at byte {pos} runs past the end of the buffer")
        length = kx_ld32(p + pos + 12)
        if length < 56 or length > size - pos:
            raise ValueError(f"frame {i} at byte {pos} runs past the end of the buffer")
        offsets[i] = <int64_t>pos
        checksum[i] = kx_ld32(p + pos + 4)
        producer_id[i] = kx_ld64(p + pos + 16)
        sequence[i] = kx_ld64(p + pos + 24)
        timestamp_ns[i] = <int64_t>kx_ld64(p + pos + 32)
        partition[i] = kx_ld32(p + pos + 40)
        pos += length
    if pos != size:
        raise ValueError(f"buf holds {size - pos} bytes after its {count} frames")
    offsets[count] = <int64_t>pos
    return count


def _timer_gaps(double seconds, int64_t threshold_ns):
    """Busy-reads the monotonic clock for ``seconds`` without the GIL and reports how often
    this process lost its core: (reads, gaps above threshold_ns, their total ns, the longest
    gap ns). The bench runs it on every core at once to show the scheduling noise of the
    machine, which bounds every latency tail measured on it."""
    cdef int64_t end, prev, now, gap, reads = 0, count = 0, total = 0, longest = 0
    with nogil:
        prev = kx_now_ns()
        end = prev + <int64_t>(seconds * 1e9)
        while prev < end:
            now = kx_now_ns()
            gap = now - prev
            prev = now
            reads += 1
            if gap > threshold_ns:
                count += 1
                total += gap
                if gap > longest:
                    longest = gap
    return reads, count, total, longest


# ---- the ring --------------------------------------------------------------------------------

@cython.auto_pickle(False)
cdef class _RingCore:
    """What the in-process and shared rings have in common: push, pop and the waits."""

    cdef kx_ring r
    cdef kx_ring_slot *prod      # this handle's producer slot (NULL until it pushes)
    cdef kx_ring_slot *cons      # this handle's consumer slot (NULL until it pops)
    cdef uint64_t cursor         # the consumer's position (mirrored to cons.pos)
    cdef uint64_t consumed       # frames consumed (mirrored to cons.frames)
    cdef uint64_t generation     # _fork_generation when the slots were taken
    cdef int wait_mode
    cdef bint detached
    cdef bint start_latest
    cdef int stop               # set by close(): waits in other threads return at once
    cdef int busy               # calls of other threads inside a wait without the GIL
    cdef int publishing         # a thread of this handle waits for its turn to publish
    cdef int64_t spin_ns         # "sleep" waits spin this long before the futex (0: default)
    cdef uint64_t skipped        # overwrite rings: frames this consumer lost to producers
    cdef object bell             # the Doorbell this handle's publishes also ring, or None
    cdef object __weakref__

    # -- roles (the shared ring overrides these; in process both are fixed at creation) --

    cdef int _as_producer(self) except -1:
        if self.detached:
            self._raise_detached()
        if self.prod == NULL or self.generation != _fork_generation:
            self._join_producer()
        return 0

    cdef int _as_consumer(self) except -1:
        if self.detached:
            self._raise_detached()
        if self.cons == NULL or self.generation != _fork_generation:
            self._join_consumer()
        return 0

    cdef int _join_producer(self) except -1:
        raise AssertionError("a ring without a producer slot")

    cdef int _join_consumer(self) except -1:
        raise AssertionError("a ring without a consumer slot")

    cdef int _check_peers(self, int what) except -1:
        return 0

    cdef int _raise_detached(self) except -1:
        raise RingClosed("this ring handle is closed")

    cdef int _check_open(self) except -1:
        if self.detached:
            self._raise_detached()
        return 0

    # -- producing --

    cdef int _await_turn(self, uint64_t start, int *flag) except -1:
        """Waits until publish reaches start: the turn of this handle's claim to publish,
        once every earlier claim is published. It yields the core while it waits and, past
        _SLEEP_SPIN_NS, sleeps on the data futex (every publish wakes it), so that waiting
        behind a producer the scheduler preempted costs no CPU (more processes than cores).
        If the turn does not come within _TURN_REPAIR_NS, the claim it waits for may be a
        dead process's: repair it. *flag tells the handle's other threads to wait; the turn
        is awaited even if another thread closes this handle meanwhile (the unmap waits for
        busy)."""
        cdef int64_t began, stuck_since, now
        cdef uint32_t seen
        self.busy += 1
        flag[0] = 1
        with nogil:
            began = stuck_since = kx_now_ns()
            while KX_LOAD_ACQ(&self.r.h.publish) != start:
                now = kx_now_ns()
                if now - began < _SLEEP_SPIN_NS:
                    sched_yield()
                else:
                    seen = <uint32_t>KX_LOAD_ACQ(&self.r.h.data_seq)
                    __atomic_fetch_add(&self.r.h.data_waiters, 1, __ATOMIC_SEQ_CST)
                    if KX_LOAD_ACQ(&self.r.h.publish) != start:
                        kx_futex_wait(&self.r.h.data_seq, seen, 1_000_000, self.r.shared)
                    __atomic_fetch_sub(&self.r.h.data_waiters, 1, __ATOMIC_SEQ_CST)
                if now - stuck_since > _TURN_REPAIR_NS:
                    kx_ring_repair_dead_claim(&self.r)
                    stuck_since = kx_now_ns()
        flag[0] = 0
        self.busy -= 1
        if self.detached:
            self._finish_close()
        return 0

    cdef inline int _publish(self, uint64_t start, uint64_t need, uint64_t frames) except -1:
        # Several producers: an earlier claim may still be being written; wait for our turn.
        while not kx_ring_try_publish(&self.r, self.prod, start, need, frames):
            self._await_turn(start, &self.publishing)
        return 0

    cdef inline int _before_claim(self) except -1:
        """A handle's slot records one claim in flight (for the repair of a dead producer's
        claim), so a second thread of this handle claims only once the first published."""
        if self.publishing:
            self.busy += 1
            with nogil:
                while KX_LOAD_ACQ(&self.publishing):
                    sched_yield()
            self.busy -= 1
            self._check_open()
        return 0

    cdef int _finish_close(self) except -1:
        return 0

    cdef int _make_room(self, uint64_t start, uint64_t need) except -1:
        """Overwrite rings: waits for this claim's turn to publish (at once with one
        producer), then drops the oldest frames until the claim fits."""
        if KX_LOAD_ACQ(&self.r.h.publish) != start:
            self._await_turn(start, &self.publishing)
        if kx_ring_make_room(&self.r, start, need) != 0:
            self._corrupt(KX_LOAD_RLX(&self.r.h.floor))
        return 0

    cdef int _push_raw(self, const unsigned char *p, uint64_t n, uint64_t frames) except -1:
        """1 if pushed, 0 if there is no room now."""
        cdef uint64_t start
        if KX_LOAD_RLX(&self.r.h.closed):
            raise RingClosed("push to a closed ring")
        self._before_claim()
        if not kx_ring_claim(&self.r, self.prod, n, &start):
            return 0
        if not kx_ring_ready_to_write(&self.r, start, n):
            self._make_room(start, n)
        kx_ring_write(&self.r, start, p, n)
        self._publish(start, n, frames)
        return 1

    cdef int _push_object(self, object frame) except -1:
        cdef Py_buffer view
        cdef int pushed
        if PyBytes_CheckExact(frame):
            _check_frame(<const unsigned char *>PyBytes_AS_STRING(frame),
                         PyBytes_GET_SIZE(frame), frame, self.r.capacity)
            self._as_producer()
            return self._push_raw(<const unsigned char *>PyBytes_AS_STRING(frame),
                                  <uint64_t>PyBytes_GET_SIZE(frame), 1)
        if isinstance(frame, str) or not PyObject_CheckBuffer(frame):
            raise TypeError(f"a frame must be bytes-like (bytes, bytearray, memoryview), "
                            f"got {type(frame).__name__}")
        PyObject_GetBuffer(frame, &view, PyBUF_SIMPLE)
        try:
            _check_frame(<const unsigned char *>view.buf, view.len, frame, self.r.capacity)
            self._as_producer()
            pushed = self._push_raw(<const unsigned char *>view.buf, <uint64_t>view.len, 1)
        finally:
            PyBuffer_Release(&view)
        return pushed

    def push(self, frame):
        """Appends one frame if it fits now. Returns False (and writes nothing) when the
        ring has no room for it.

        Raises:
            DecodeError: frame is not exactly one valid kaelix frame.
            ValueError: the frame is larger than the ring's capacity.
            RingClosed: the ring (or this handle) is closed.
        """
        return self._push_object(frame) == 1

    def put(self, frame, timeout=None):
        """Appends one frame, waiting for room up to timeout seconds (None: as long as it
        takes; 0: not at all).

        Raises:
            RingFull: still no room when the timeout expired.
            PeerGone: the consumer the ring waits for died (shared rings).
            RingClosed, DecodeError, ValueError: as ``push``.
        """
        cdef int64_t deadline = _deadline(timeout)
        cdef Py_ssize_t size
        while True:
            if self._push_object(frame):
                return None
            size = memoryview(frame).nbytes if not PyBytes_CheckExact(frame) \
                else PyBytes_GET_SIZE(frame)
            self._wait(FOR_SPACE, <uint64_t>size, deadline)

    cdef int _push_span(self, const unsigned char *p, const int64_t *offsets, Py_ssize_t count,
                        bint wait, int64_t deadline) except -1:
        """Pushes the longest prefix of count validated frames that fits (all of them, waiting
        for room, when wait). Returns how many."""
        cdef Py_ssize_t lo, hi, mid, done = 0
        cdef uint64_t room, start, claim
        self._as_producer()
        while done < count:
            if KX_LOAD_RLX(&self.r.h.closed):
                raise RingClosed("push to a closed ring")
            claim = KX_LOAD_RLX(&self.r.h.claim)
            if self.r.overwrite:
                room = self.r.capacity  # the oldest frames make way
            else:
                kx_ring_has_room(&self.r, claim, self.r.capacity + 1)  # refresh the gate
                room = self.r.capacity - (claim - self.r.gate_cache)
            # The most frames after `done` whose bytes fit in room (binary search).
            lo = done
            hi = count
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if <uint64_t>(offsets[mid] - offsets[done]) <= room:
                    lo = mid
                else:
                    hi = mid - 1
            self._before_claim()
            if lo > done and kx_ring_claim(&self.r, self.prod,
                                           <uint64_t>(offsets[lo] - offsets[done]), &start):
                if not kx_ring_ready_to_write(&self.r, start,
                                              <uint64_t>(offsets[lo] - offsets[done])):
                    self._make_room(start, <uint64_t>(offsets[lo] - offsets[done]))
                kx_ring_write(&self.r, start, p + offsets[done] - offsets[0],
                              <uint64_t>(offsets[lo] - offsets[done]))
                self._publish(start, <uint64_t>(offsets[lo] - offsets[done]),
                              <uint64_t>(lo - done))
                done = lo
                continue
            if not wait:
                break
            self._wait(FOR_SPACE, <uint64_t>(offsets[done + 1] - offsets[done]), deadline)
        return done

    def _push_frames(self, buf, const int64_t[::1] offsets, bint wait=False, timeout=None):
        """Pushes frames buf[offsets[i] - offsets[0]:offsets[i + 1] - offsets[0]] (already
        validated, e.g. a MessageBatch's), the longest prefix that fits or, with wait, all of
        them. Returns how many were pushed."""
        cdef Py_buffer view
        cdef Py_ssize_t count = offsets.shape[0] - 1
        cdef int64_t deadline = _deadline(timeout)
        cdef Py_ssize_t i
        if count <= 0:
            self._check_open()
            return 0
        for i in range(count):
            if <uint64_t>(offsets[i + 1] - offsets[i]) > self.r.capacity:
                raise ValueError(f"frame {i} is {offsets[i + 1] - offsets[i]} bytes, larger "
                                 f"than the ring's capacity of {self.r.capacity} bytes")
        PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE)
        try:
            if view.len < offsets[count] - offsets[0]:
                raise ValueError("the offsets reach past the end of the buffer")
            return self._push_span(<const unsigned char *>view.buf, &offsets[0], count, wait,
                                   deadline)
        finally:
            PyBuffer_Release(&view)

    def _abandon_claim(self, nbytes):
        """Test hook: claims nbytes (a multiple of 8), writes the first half of them and
        never publishes, exactly as a producer killed in the middle of a write leaves the
        ring. Returns False when there is no room. Only for tests of that case."""
        cdef uint64_t start, n = nbytes
        cdef bytes half
        if n < 8 or n % 8 or n > self.r.capacity:
            raise ValueError(f"nbytes must be a multiple of 8 from 8 to {self.r.capacity}")
        self._as_producer()
        if not kx_ring_claim(&self.r, self.prod, n, &start):
            return False
        half = b"KLXF" + b"\xee" * <Py_ssize_t>(n // 2 - 4)
        kx_ring_write(&self.r, start, PyBytes_AS_STRING(half), n // 2)
        return True

    # -- consuming --

    cdef inline int _advance(self, uint64_t cursor, uint64_t frames) except -1:
        self.cursor = cursor
        self.consumed += frames
        KX_STORE_RLX(&self.cons.frames, self.consumed)
        KX_STORE_REL(&self.cons.pos, cursor)
        kx_ring_notify(&self.r, &self.r.h.space_seq, &self.r.h.space_waiters)
        return 0

    cdef int _pass_to(self, uint64_t cursor, uint64_t frames) except -1:
        """Moves this consumer to cursor, frames consumed, over frames it never read
        (overwritten, or dropped by clear): its slot's received counts stay as they were."""
        cdef uint64_t passed = frames - self.consumed if frames > self.consumed else 0
        cdef kx_ring_slot *s = self.cons
        KX_STORE_RLX(&s.base_pos, KX_LOAD_RLX(&s.base_pos) + (cursor - self.cursor))
        KX_STORE_RLX(&s.base_frames, KX_LOAD_RLX(&s.base_frames) + passed)
        KX_STORE_RLX(&s.passed, KX_LOAD_RLX(&s.passed) + passed)
        self._advance(cursor, passed)
        return 0

    cdef int _catch_up(self) except -1:
        """Overwrite rings: if producers overwrote frames this consumer had not read, moves
        it to the oldest frame kept and counts the frames it lost."""
        cdef uint64_t f, frames
        kx_ring_floor_read(&self.r, &f, &frames)
        if f > self.cursor:
            if frames > self.consumed:
                self.skipped += frames - self.consumed
            self._pass_to(f, frames)
        return 0

    cdef inline bint _overtaken(self, uint64_t start) noexcept:
        """Overwrite rings: after copying bytes from start on, were they overwritten while
        we copied? (The producer moves the floor before it writes; see kx_ring_floor_write.)"""
        __atomic_thread_fence(__ATOMIC_ACQUIRE)
        return KX_LOAD_RLX(&self.r.h.floor) > start

    cdef int _corrupt(self, uint64_t at) except -1:
        raise RingError(f"the ring holds a malformed record at byte position {at}: it was not "
                        f"written by kaelix, or a process wrote into the segment directly",
                        "corrupt")

    cdef object _take(self, bint consume):
        """The next frame as bytes (consumed when consume), or None when there is none."""
        cdef uint64_t cur, length = 0
        cdef kx_ring_status st
        cdef bytes out
        self._as_consumer()
        while True:
            if self.r.overwrite:
                self._catch_up()
            cur = self.cursor
            st = kx_ring_next_frame(&self.r, &cur, KX_LOAD_ACQ(&self.r.h.publish), &length)
            if st == KX_RING_EMPTY:
                if cur != self.cursor:
                    self._pass_to(cur, self.consumed)
                return None
            if st != KX_RING_OK:
                if self.r.overwrite and self._overtaken(self.cursor):
                    continue
                self._corrupt(cur)
            out = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>length)
            kx_ring_read(&self.r, cur, PyBytes_AS_STRING(out), length)
            if not (self.r.overwrite and self._overtaken(self.cursor)):
                break
        if cur != self.cursor:  # stepped over skip records
            self._pass_to(cur, self.consumed)
        if consume:
            self._advance(cur + length, 1)
        return out

    def pop(self):
        """Removes and returns the next frame as ``bytes``, or None when there is none."""
        return self._take(True)

    def peek(self):
        """The next frame as ``bytes`` without removing it, or None when there is none."""
        return self._take(False)

    def get(self, timeout=None):
        """Removes and returns the next frame, waiting up to timeout seconds for one (None:
        as long as it takes; 0: not at all).

        Raises:
            RingEmpty: nothing arrived before the timeout.
            RingClosed: the ring is closed and drained.
            PeerGone: every producer of a shared ring died, and it is drained.
        """
        cdef int64_t deadline = _deadline(timeout)
        while True:
            out = self._take(True)
            if out is not None:
                return out
            self._wait(FOR_DATA, self.cursor, deadline)

    def _pop_frames(self, max_messages, max_bytes, bint wait=False, timeout=None):
        """Removes up to max_messages frames (None: no limit) totalling at most max_bytes
        (None: no limit; the first frame is always taken whole). Returns (frames laid end to
        end as bytes, count). With wait, waits up to timeout for the first frame."""
        cdef uint64_t limit_messages = UINT64_MAX_ if max_messages is None \
            else _positive(max_messages, "max_messages")
        cdef uint64_t limit_bytes = UINT64_MAX_ if max_bytes is None \
            else _positive(max_bytes, "max_bytes")
        cdef int64_t deadline = _deadline(timeout)
        cdef uint64_t cur, count = 0, span = 0, written
        cdef int has_skips = 0
        cdef kx_ring_status st
        cdef bytes out
        while True:
            self._as_consumer()
            if self.r.overwrite:
                self._catch_up()
            cur = self.cursor
            st = kx_ring_span(&self.r, &cur, KX_LOAD_ACQ(&self.r.h.publish), limit_messages,
                              limit_bytes, &count, &span, &has_skips)
            if st == KX_RING_OK:
                out = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>span)
                written = kx_ring_gather(&self.r, cur, span,
                                         <unsigned char *>PyBytes_AS_STRING(out), has_skips)
                if not (self.r.overwrite and self._overtaken(self.cursor)):
                    break
                continue  # overwritten while we copied: catch up and read again
            if st != KX_RING_EMPTY:
                if self.r.overwrite and self._overtaken(self.cursor):
                    continue
                self._corrupt(cur)
            if cur != self.cursor:
                self._pass_to(cur, self.consumed)
            if not wait:
                return b"", 0
            self._wait(FOR_DATA, self.cursor, deadline)
        if cur != self.cursor:  # stepped over skip records
            self._pass_to(cur, self.consumed)
        if written != span:  # and some inside the span: not bytes received
            KX_STORE_RLX(&self.cons.base_pos, KX_LOAD_RLX(&self.cons.base_pos) + (span - written))
        self._advance(cur + span, count)
        if written != span:
            out = out[:written]
        return out, count

    # -- waiting --

    cdef int _wait(self, int what, uint64_t arg, int64_t deadline) except -1:
        """Returns once the condition may hold (the caller retries); raises on timeout,
        closed, or dead peers."""
        cdef int64_t now = kx_now_ns(), until, spin_until
        cdef uint32_t *seq
        cdef uint32_t *waiters
        cdef uint32_t seen
        cdef bint ready
        cdef int mode = self.wait_mode
        cdef uint64_t want = arg
        self._check_open()
        if KX_LOAD_RLX(&self.r.h.closed):
            self._closed_while_waiting(what)
        if deadline >= 0 and now >= deadline:
            self._timed_out(what)
        if what == FOR_DATA:
            seq = &self.r.h.data_seq
            waiters = &self.r.h.data_waiters
        else:
            seq = &self.r.h.space_seq
            waiters = &self.r.h.space_waiters
            # While spinning, wait for an eighth of the ring, not just for this frame: a
            # producer that resumes as soon as one frame fits runs in lockstep with a
            # slower consumer, writing the very cache lines it is reading (3.7 M msg/s
            # instead of 13 M). Past the spin, any room for the frame will do, so a
            # consumer that frees a little and stops never leaves a fitting put waiting.
            if want < self.r.capacity >> 3:
                want = self.r.capacity >> 3
        until = now + _SLICE_NS
        if deadline >= 0 and deadline < until:
            until = deadline
        # From here to busy -= 1 nothing may raise: another thread's close() waits for it.
        self.busy += 1
        if mode == WAIT_SLEEP:
            spin_until = now + (self.spin_ns if self.spin_ns else _SLEEP_SPIN_NS)
            if spin_until > until:
                spin_until = until
            # Pause-spin briefly, then yield while spinning: if the peer shares this core
            # (the scheduler does that), a pause-spin would burn the very time slice the
            # peer needs to make progress (1.4 M msg/s instead of 13 M between processes).
            with nogil:
                ready = _spin(&self.r, what, want, WAIT_SPIN,
                              min(now + _SLEEP_PAUSE_NS, spin_until), &self.stop)
                if not ready:
                    ready = _spin(&self.r, what, want, WAIT_YIELD, spin_until, &self.stop)
            if not ready:
                # Announce the sleep, then look once more: a waker that stored its change
                # before our count went up is seen by this look; one after it sees the count.
                seen = <uint32_t>KX_LOAD_ACQ(seq)
                __atomic_fetch_add(waiters, 1, __ATOMIC_SEQ_CST)
                ready = _ready(&self.r, what, arg) or self.stop
                if not ready:
                    with nogil:
                        kx_futex_wait(seq, seen, until - kx_now_ns(), self.r.shared)
                __atomic_fetch_sub(waiters, 1, __ATOMIC_SEQ_CST)
        else:
            spin_until = now + _SLEEP_SPIN_NS
            if spin_until > until:
                spin_until = until
            with nogil:
                ready = _spin(&self.r, what, want, mode, spin_until, &self.stop)
                if not ready:
                    ready = _spin(&self.r, what, arg, mode, until, &self.stop)
        self.busy -= 1
        if self.detached:
            self._finish_close()
            self._raise_detached()
        PyErr_CheckSignals()
        if KX_LOAD_RLX(&self.r.h.closed):
            self._closed_while_waiting(what)
        if ready or _ready(&self.r, what, arg):
            return 0
        if deadline >= 0 and kx_now_ns() >= deadline:
            self._timed_out(what)
        self._check_peers(what)
        return 0

    cdef int _timed_out(self, int what) except -1:
        if what == FOR_DATA:
            raise RingEmpty("no frame arrived before the timeout")
        raise RingFull(f"no room for the frame before the timeout ({self.free_bytes} of "
                       f"{self.r.capacity} bytes free)")

    cdef int _closed_while_waiting(self, int what) except -1:
        if what == FOR_DATA:
            if KX_LOAD_ACQ(&self.r.h.publish) == \
                    (KX_LOAD_ACQ(&self.r.h.take) if self.r.queue else self.cursor):
                raise RingClosed("the ring is closed and drained")
            return 0
        raise RingClosed("push to a closed ring")

    # -- state --

    @property
    def capacity(self):
        """Bytes the ring holds (a power of two)."""
        return self.r.capacity

    @property
    def free_bytes(self):
        """Bytes a producer could write now without waiting."""
        cdef uint64_t gate, used
        self._check_open()
        gate = kx_ring_gate(&self.r, NULL)
        used = KX_LOAD_ACQ(&self.r.h.claim) - gate
        return 0 if used > self.r.capacity else self.r.capacity - used

    def __len__(self):
        cdef uint64_t frames = 0
        cdef uint64_t published
        self._check_open()
        cdef uint64_t floor_pos, floor_frames
        published = KX_LOAD_ACQ(&self.r.h.frames_published)
        if self.r.queue:
            kx_ring_gate(&self.r, &frames)
        elif self.cons != NULL and self.generation == _fork_generation:
            frames = self.consumed
            if self.r.overwrite:
                kx_ring_floor_read(&self.r, &floor_pos, &floor_frames)
                if floor_frames > frames:
                    frames = floor_frames
        else:
            kx_ring_gate(&self.r, &frames)
        return _frames_between(published, frames)

    def __bool__(self):
        return len(self) > 0

    def clear(self):
        """Drops every frame waiting for this consumer."""
        cdef uint64_t published, frames
        self._as_consumer()
        while True:
            published = KX_LOAD_ACQ(&self.r.h.publish)
            frames = KX_LOAD_ACQ(&self.r.h.frames_published)
            if KX_LOAD_ACQ(&self.r.h.publish) == published:
                break
        self._pass_to(published, frames)

    def _join(self):
        """Takes this handle's consumer role now (a shared handle otherwise takes it at its
        first pop), so that producers keep every frame for it from this moment on."""
        self._as_consumer()

    @property
    def skipped(self):
        """Frames this consumer lost because producers of an overwrite ring overwrote them
        before it read them (always 0 for other rings)."""
        return self.skipped

    @property
    def _overwrite(self):
        return self.r.overwrite != 0

    def _counters(self):
        """(frames published, frames overwritten, closed, bytes published) of the ring, for
        metrics. The bytes are the frames' (and the skip records covering claims of
        producers that died)."""
        cdef uint64_t floor_pos = 0, floor_frames = 0
        self._check_open()
        if self.r.overwrite:
            kx_ring_floor_read(&self.r, &floor_pos, &floor_frames)
        return (KX_LOAD_ACQ(&self.r.h.frames_published), floor_frames,
                KX_LOAD_ACQ(&self.r.h.closed) != 0, KX_LOAD_ACQ(&self.r.h.publish))

    def _readers(self):
        """What every active consumer of the ring (in any process) received, for metrics:
        a tuple of (slot, pid, frames received, bytes received, frames passed over unread,
        frames waiting), counted since it joined. Each is read without a lock, so while
        the consumer moves the figures may be one step apart."""
        cdef uint32_t i
        cdef kx_ring_slot *s
        cdef uint64_t published, frames, floor_pos = 0, floor_frames = 0
        self._check_open()
        if self.r.queue:
            return ()
        published = KX_LOAD_ACQ(&self.r.h.frames_published)
        if self.r.overwrite:
            kx_ring_floor_read(&self.r, &floor_pos, &floor_frames)
        found = []
        for i in range(self.r.max_consumers):
            s = kx_ring_consumer_slot(&self.r, i)
            if KX_LOAD_ACQ(&s.state) != KX_SLOT_ACTIVE:
                continue
            frames = KX_LOAD_ACQ(&s.frames)
            found.append((i, KX_LOAD_RLX(&s.pid),
                          _frames_between(frames, KX_LOAD_RLX(&s.base_frames)),
                          _frames_between(KX_LOAD_ACQ(&s.pos), KX_LOAD_RLX(&s.base_pos)),
                          KX_LOAD_RLX(&s.passed),
                          _frames_between(published, max(frames, floor_frames))))
        return tuple(found)

    @property
    def _ring_closed(self):
        """True once the ring itself was closed (for every handle), see _shutdown."""
        self._check_open()
        return KX_LOAD_ACQ(&self.r.h.closed) != 0

    def _shutdown(self):
        """Closes the ring for every handle and process: pushes raise RingClosed, consumers
        drain what is left and then get raises RingClosed instead of waiting. Wakes every
        waiter (and the doorbell's sleepers)."""
        self._check_open()
        KX_STORE_REL(&self.r.h.closed, 1)
        __atomic_fetch_add(&self.r.h.data_seq, 1, __ATOMIC_SEQ_CST)
        __atomic_fetch_add(&self.r.h.space_seq, 1, __ATOMIC_SEQ_CST)
        kx_futex_wake_all(&self.r.h.data_seq, self.r.shared)
        kx_futex_wake_all(&self.r.h.space_seq, self.r.shared)
        if self.bell is not None:
            (<Doorbell>self.bell).wake()

    def _set_bell(self, Doorbell bell):
        """From now on this handle's publishes also wake the sleepers of bell."""
        self._check_open()
        self.bell = bell
        self.r.bell_seq = bell.seq
        self.r.bell_waiters = bell.waiters

    cdef int _release_consumer_slot(self, kx_ring_slot *s, bint died) except -1:
        """Frees a consumer slot; when it was the last active consumer its position becomes
        the floor, where the next consumer starts (not in an overwrite ring, whose floor is
        the producers' to move)."""
        cdef uint64_t pos = KX_LOAD_ACQ(&s.pos), frames = KX_LOAD_RLX(&s.frames)
        cdef uint32_t i, others = 0
        for i in range(self.r.max_consumers):
            if &kx_ring_consumer_slot(&self.r, i)[0] != s and \
                    KX_LOAD_ACQ(&kx_ring_consumer_slot(&self.r, i).state) == KX_SLOT_ACTIVE:
                others += 1
        if others == 0 and not self.r.overwrite and not self.r.queue \
                and pos > KX_LOAD_ACQ(&self.r.h.floor):
            KX_STORE_RLX(&self.r.h.floor_frames, frames)
            KX_STORE_REL(&self.r.h.floor, pos)
        if died:
            __atomic_fetch_add(&self.r.h.consumers_lost, 1, __ATOMIC_SEQ_CST)
            if others == 0:
                KX_STORE_REL(&self.r.h.orphan_consumers, 1)
        KX_STORE_REL(&s.state, KX_SLOT_FREE)
        kx_ring_notify(&self.r, &self.r.h.space_seq, &self.r.h.space_waiters)
        return 0


cdef uint64_t _positive(object value, str name) except 0:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int or None, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return min(value, UINT64_MAX_)


cdef uint64_t _capacity(object capacity) except 0:
    if not isinstance(capacity, int) or isinstance(capacity, bool):
        raise TypeError(f"capacity must be an int (bytes), got {type(capacity).__name__}")
    if capacity < 1 or capacity > KX_RING_MAX_CAPACITY:
        raise ValueError(f"capacity must be between 1 and {KX_RING_MAX_CAPACITY} bytes, "
                         f"got {capacity}")
    return kx_ring_round_capacity(<uint64_t>capacity)


@cython.auto_pickle(False)
cdef class RingCore(_RingCore):
    """The in-process ring. Memory from the heap; one producer slot shared by every thread
    (operations hold the GIL, so they never interleave). With readers=0 (a ``Ring``) one
    consumer slot, shared by every thread too; with readers=N, N consumer slots taken by
    ``RingReader`` handles, each with its own cursor (a stream partition)."""

    cdef void *mem

    def __init__(self, capacity, *, readers=0, overwrite=False):
        cdef uint64_t cap = _capacity(capacity)
        cdef uint32_t nc = 1 if readers == 0 else _slots(readers, "readers")
        cdef uint64_t header = kx_ring_header_size(1, nc)
        cdef void *mem = NULL
        if self.mem != NULL:
            raise TypeError("Ring.__init__ called twice")
        if posix_memalign(&mem, 4096, header + cap) != 0:
            raise MemoryError(f"cannot allocate a ring of {cap} bytes")
        memset(mem, 0, header)
        kx_ring_format(mem, cap, 1, nc, 0, 1 if overwrite else 0, 0, 0)
        kx_ring_bind(&self.r, mem)
        self.mem = mem
        self.prod = kx_ring_producer_slot(&self.r, 0)
        self.prod.state = KX_SLOT_ACTIVE
        if readers == 0:
            self.cons = kx_ring_consumer_slot(&self.r, 0)
            self.cons.state = KX_SLOT_ACTIVE
        self.generation = _fork_generation
        self.wait_mode = WAIT_SLEEP

    def __dealloc__(self):
        if self.mem != NULL:
            free(self.mem)
            self.mem = NULL

    cdef int _as_producer(self) except -1:
        if self.mem == NULL:
            raise RingClosed("Ring.__init__ was not called")
        return 0

    cdef int _as_consumer(self) except -1:
        if self.mem == NULL:
            raise RingClosed("Ring.__init__ was not called")
        if self.cons == NULL:
            raise TypeError("this ring is read through its readers (_new_reader)")
        return 0

    cdef int _check_open(self) except -1:
        if self.mem == NULL:
            raise RingClosed("Ring.__init__ was not called")
        return 0

    def __len__(self):
        self._check_open()
        if self.cons == NULL:
            return _RingCore.__len__(self)
        return _frames_between(self.r.h.frames_published, self.consumed)

    def _new_reader(self, cls, start="earliest"):
        """A new consumer of this ring with its own cursor, an instance of cls (a subclass
        of RingReader), starting at the oldest frame kept ("earliest") or at the next frame
        published ("latest"). Raises RingError when every reader slot is taken."""
        cdef RingReader reader
        cdef kx_ring_slot *s = NULL
        cdef uint32_t i
        cdef uint64_t pos, frames = 0
        self._check_open()
        if start not in ("earliest", "latest"):
            raise ValueError(f"start must be 'earliest' or 'latest', got {start!r}")
        if self.cons != NULL:
            raise TypeError("a Ring has one consumer; make it with readers=N for readers")
        for i in range(self.r.max_consumers):
            if kx_ring_consumer_slot(&self.r, i).state == KX_SLOT_FREE:
                s = kx_ring_consumer_slot(&self.r, i)
                break
        if s == NULL:
            raise RingError(f"the ring already has its {self.r.max_consumers} readers",
                            "too_many_consumers")
        if start == "latest":
            pos = self.r.h.publish
            frames = self.r.h.frames_published
        else:
            pos = kx_ring_gate(&self.r, &frames)
        reader = cls.__new__(cls)
        reader.owner = self
        kx_ring_bind(&reader.r, self.mem)
        reader.r.bell_seq = self.r.bell_seq
        reader.r.bell_waiters = self.r.bell_waiters
        reader.generation = _fork_generation
        reader.wait_mode = self.wait_mode
        s.pos = pos
        s.frames = frames
        _set_base(s, pos, frames)
        s.pid = <uint32_t>getpid()
        KX_STORE_REL(&s.state, KX_SLOT_ACTIVE)
        reader.cons = s
        reader.cursor = pos
        reader.consumed = frames
        return reader

    def close(self):
        """No more frames: push and put raise ``RingClosed`` from now on; what is in the ring
        can still be popped, and then get raises ``RingClosed`` instead of waiting. Wakes
        every thread waiting in get or put. Closing twice is harmless."""
        self._shutdown()

    @property
    def closed(self):
        """True once ``close()`` was called."""
        return self.mem != NULL and KX_LOAD_ACQ(&self.r.h.closed) != 0

    def __repr__(self):
        if self.mem == NULL:
            return f"<{type(self).__name__} (uninitialised)>"
        state = " closed" if self.closed else ""
        return (f"<{type(self).__name__} capacity={self.r.capacity} frames={len(self)} "
                f"free_bytes={self.free_bytes}{state}>")


@cython.auto_pickle(False)
cdef class RingReader(_RingCore):
    """One consumer of an in-process ring made with readers=N: its own cursor over the
    owner's memory (which it keeps alive). Made by ``RingCore._new_reader``; pops only."""

    cdef RingCore owner

    cdef int _as_producer(self) except -1:
        raise TypeError("a ring reader cannot push")

    cdef int _check_open(self) except -1:
        if self.owner is None:
            raise RingClosed("this ring reader was not made by _new_reader")
        if self.detached:
            self._raise_detached()
        return 0

    cdef int _as_consumer(self) except -1:
        return self._check_open()

    cdef int _raise_detached(self) except -1:
        raise RingClosed("this ring reader is closed")

    def close(self):
        """Gives back this reader's slot: producers stop waiting for it. Closing twice is
        harmless."""
        if self.detached or self.owner is None:
            self.detached = True
            return None
        self._release_consumer_slot(self.cons, False)
        self.cons = NULL
        self.detached = True

    @property
    def closed(self):
        """True once this reader was closed."""
        return self.detached

    def __dealloc__(self):
        if not self.detached and self.cons != NULL and self.owner is not None:
            KX_STORE_REL(&self.cons.state, KX_SLOT_FREE)

    def __repr__(self):
        if self.detached or self.owner is None:
            return f"<{type(self).__name__} closed>"
        return f"<{type(self).__name__} frames={len(self)} skipped={self.skipped}>"


@cython.auto_pickle(False)
cdef class Doorbell:
    """A futex word that the rings of one stream also ring when they publish, so that one
    consumer can sleep on all of them at once (see _wait_any). In-process it is its own cache
    line; a shared stream's lives in its metadata segment (over=a writable buffer, offset)."""

    cdef uint32_t *seq
    cdef uint32_t *waiters
    cdef void *own
    cdef Py_buffer view
    cdef bint has_view
    cdef int users               # _wait_any calls sleeping on it now
    cdef bint release_pending    # release() was called while it had users
    cdef readonly bint shared

    def __init__(self, over=None, Py_ssize_t offset=0):
        cdef void *mem = NULL
        if self.seq != NULL:
            raise TypeError("Doorbell.__init__ called twice")
        if over is None:
            if posix_memalign(&mem, 64, 64) != 0:
                raise MemoryError("cannot allocate a doorbell")
            memset(mem, 0, 64)
            self.own = mem
            self.seq = <uint32_t *>mem
            self.shared = False
        else:
            PyObject_GetBuffer(over, &self.view, PyBUF_WRITABLE)
            self.has_view = True
            if offset < 0 or offset % 8 or offset + 8 > self.view.len:
                raise ValueError("the doorbell's offset must be 8-aligned and inside the buffer")
            self.seq = <uint32_t *>(<unsigned char *>self.view.buf + offset)
            self.shared = True
        self.waiters = self.seq + 1

    def wake(self):
        """Wakes every sleeper (used when the stream closes)."""
        if self.seq == NULL:
            return None
        __atomic_fetch_add(self.seq, 1, __ATOMIC_SEQ_CST)
        kx_futex_wake_all(self.seq, self.shared)

    def release(self):
        """Lets go of the buffer it lives in (a shared doorbell), now if no wait uses it
        (returns True; the buffer's owner may then close it), else when the last wait ends
        (returns False). Waits started afterwards raise ValueError."""
        if self.users:
            self.release_pending = True
            return False
        self._release_now()
        return True

    cdef _release_now(self):
        if self.has_view:
            PyBuffer_Release(&self.view)
            self.has_view = False
        self.seq = NULL
        self.waiters = NULL
        self.release_pending = False

    def __dealloc__(self):
        if self.has_view:
            PyBuffer_Release(&self.view)
        if self.own != NULL:
            free(self.own)


cdef inline void _store_u32(unsigned char *p, uint32_t v) noexcept nogil:
    p[0] = v & 0xFF
    p[1] = (v >> 8) & 0xFF
    p[2] = (v >> 16) & 0xFF
    p[3] = (v >> 24) & 0xFF


cdef inline int64_t _wall_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


cdef int _write_frame(kx_ring *r, uint64_t pos, uint64_t n, bint has_key,
                      uint64_t producer_id, uint64_t seq, int64_t ts, uint32_t partition,
                      const char *kp, uint64_t klen, const char *pp,
                      uint64_t plen) except -1:
    """Writes one n-byte frame (header, key, payload, padding, CRC) at ring position pos,
    in place, or through a bounce buffer when it straddles the end of the data area."""
    cdef unsigned char *dst
    cdef unsigned char *tmp = NULL
    cdef uint64_t off = pos & r.mask
    if off + n <= r.capacity:
        dst = r.data + off
    else:
        tmp = <unsigned char *>malloc(n)
        if tmp == NULL:
            raise MemoryError()
        dst = tmp
    kx_frame_write_header(dst, <uint32_t>n, has_key, 0, producer_id, seq, ts, partition,
                          <uint32_t>klen, 0, <uint32_t>plen)
    if klen:
        memcpy(dst + KX_HEADER_SIZE, kp, <size_t>klen)
    memcpy(dst + KX_HEADER_SIZE + klen, pp, <size_t>plen)
    kx_frame_seal(dst, <uint32_t>n)
    if tmp != NULL:
        kx_ring_write(r, pos, tmp, n)
        free(tmp)
    return 0


@cython.auto_pickle(False)
cdef class ProducerCore:
    """A stream producer's sequence numbers, one per partition, and its fast send path:
    a message with bytes payload, bytes (or no) key and no headers is encoded straight into
    the partition's ring, its sequence taken and its timestamp read (CLOCK_REALTIME) in one
    step that holds the GIL until the claim is made, so threads sharing the producer never
    share or reorder a sequence number. Anything else goes the Python way (see _stream.py),
    which sets ``busy`` while it works so that this path stands aside."""

    cdef uint64_t *seqs
    cdef readonly uint64_t producer_id
    cdef readonly uint32_t partitions
    cdef readonly uint64_t max_frame
    cdef public bint busy

    def __cinit__(self, uint64_t producer_id, uint32_t partitions, uint64_t max_frame):
        if partitions < 1:
            raise ValueError("a producer needs at least one partition")
        self.seqs = <uint64_t *>calloc(partitions, sizeof(uint64_t))
        if self.seqs == NULL:
            raise MemoryError()
        self.producer_id = producer_id
        self.partitions = partitions
        self.max_frame = max_frame

    def __dealloc__(self):
        free(self.seqs)

    def sequence(self, uint32_t partition):
        """The sequence number the next message to partition gets."""
        if partition >= self.partitions:
            raise IndexError(partition)
        return self.seqs[partition]

    def advance(self, uint32_t partition, uint64_t count):
        """Marks count more messages of partition as sent (by the Python path)."""
        if partition >= self.partitions:
            raise IndexError(partition)
        self.seqs[partition] += count

    def send(self, _RingCore ring, payload, key, uint32_t partition):
        """Sends one message the fast way; returns its sequence number, or -1 when the
        caller must take the Python path (busy, not plain bytes, headers, too large, or no
        room now). Raises RingClosed when the ring is closed."""
        cdef Py_ssize_t plen, klen = 0
        cdef const unsigned char *kp = NULL
        cdef uint64_t n, start, seq
        cdef int64_t ts
        if self.busy or partition >= self.partitions or type(payload) is not bytes:
            return -1
        if key is not None:
            if type(key) is not bytes:
                return -1
            klen = PyBytes_GET_SIZE(key)
            kp = <const unsigned char *>PyBytes_AS_STRING(key)
        plen = PyBytes_GET_SIZE(payload)
        n = kx_frame_size(<uint64_t>klen, 0, <uint64_t>plen)
        if n == 0 or n > self.max_frame or n > ring.r.capacity:
            return -1
        ring._as_producer()
        if KX_LOAD_RLX(&ring.r.h.closed):
            raise RingClosed("push to a closed ring")
        ring._before_claim()
        if not kx_ring_claim(&ring.r, ring.prod, n, &start):
            return -1
        # Claimed: from here the frame is always published, so the sequence is taken now,
        # before anything below can let another thread run.
        seq = self.seqs[partition]
        self.seqs[partition] = seq + 1
        ts = _wall_ns()
        if not kx_ring_ready_to_write(&ring.r, start, n):
            ring._make_room(start, n)
        _write_frame(&ring.r, start, n, key is not None, self.producer_id, seq, ts, partition,
                     <const char *>kp, <uint64_t>klen, PyBytes_AS_STRING(payload),
                     <uint64_t>plen)
        ring._publish(start, n, 1)
        return seq

    def send_many(self, _RingCore ring, list payloads, keys, Py_ssize_t start,
                  Py_ssize_t stop, uint32_t partition):
        """Sends payloads[start:stop] (with keys[start:stop] when keys is a list) to
        partition the fast way, as many as fit in the ring now, with one claim and one
        publish. Returns (how many were sent, the first one's sequence number): 0 sent when
        there is no room for the first, -1 when the first must take the Python path (busy,
        not plain bytes, too large). Stops early, having sent a prefix, at the first message
        the fast path cannot take."""
        cdef Py_ssize_t i, j, count = 0, klen
        cdef uint64_t total = 0, n, room, claim, pos, first, seq
        cdef object payload, key
        cdef int64_t ts
        cdef bint keyed = keys is not None
        if self.busy or partition >= self.partitions or start < 0 or stop > len(payloads):
            return -1, 0
        if keyed and (type(keys) is not list or len(<list>keys) < stop):
            return -1, 0
        ring._as_producer()
        if KX_LOAD_RLX(&ring.r.h.closed):
            raise RingClosed("push to a closed ring")
        claim = KX_LOAD_RLX(&ring.r.h.claim)
        if ring.r.overwrite:
            room = ring.r.capacity
        else:
            kx_ring_has_room(&ring.r, claim, ring.r.capacity + 1)  # refresh the gate
            room = ring.r.capacity - (claim - ring.r.gate_cache)
        for i in range(start, stop):
            payload = payloads[i]
            key = (<list>keys)[i] if keyed else None
            if type(payload) is not bytes or (key is not None and type(key) is not bytes):
                break
            klen = PyBytes_GET_SIZE(key) if key is not None else 0
            n = kx_frame_size(<uint64_t>klen, 0, <uint64_t>PyBytes_GET_SIZE(payload))
            if n == 0 or n > self.max_frame or n > ring.r.capacity:
                break
            if total + n > room:
                if count == 0:
                    return 0, 0  # a plain message, but no room for it now
                break
            total += n
            count += 1
        if count == 0:
            return -1, 0
        ring._before_claim()
        if not kx_ring_claim(&ring.r, ring.prod, total, &first):
            return 0, 0
        seq = self.seqs[partition]
        self.seqs[partition] = seq + <uint64_t>count
        ts = _wall_ns()
        if not kx_ring_ready_to_write(&ring.r, first, total):
            ring._make_room(first, total)
        pos = first
        for j in range(count):
            payload = payloads[start + j]
            key = (<list>keys)[start + j] if keyed else None
            klen = PyBytes_GET_SIZE(key) if key is not None else 0
            n = kx_frame_size(<uint64_t>klen, 0, <uint64_t>PyBytes_GET_SIZE(payload))
            _write_frame(&ring.r, pos, n, key is not None, self.producer_id, seq + <uint64_t>j,
                         ts, partition, PyBytes_AS_STRING(key) if klen else NULL,
                         <uint64_t>klen, PyBytes_AS_STRING(payload),
                         <uint64_t>PyBytes_GET_SIZE(payload))
            pos += n
        ring._publish(first, total, <uint64_t>count)
        return count, seq


def _wait_any(handles, Doorbell bell, timeout=None):
    """Waits until one of handles (consumer handles of rings that ring bell) has a frame
    past its cursor or is closed, or the timeout (seconds, None: no limit) passes. Returns
    True when one may have something (the caller looks), False on timeout. Spins briefly,
    then sleeps on the doorbell; wakes for signals every 100 ms."""
    cdef int64_t deadline = _deadline(timeout)
    cdef Py_ssize_t n = len(handles), i
    cdef _RingCore h
    cdef kx_ring **rings
    cdef uint64_t *cursors
    cdef bint ready = False
    cdef int64_t now, until, pause_until, spin_until
    cdef uint32_t seen
    cdef int stop = 0
    if bell is None or bell.seq == NULL or bell.release_pending:
        raise ValueError("_wait_any needs a live doorbell")
    if n == 0:
        raise ValueError("_wait_any needs at least one handle")
    rings = <kx_ring **>malloc(n * sizeof(kx_ring *))
    cursors = <uint64_t *>malloc(n * sizeof(uint64_t))
    if rings == NULL or cursors == NULL:
        free(rings)
        free(cursors)
        raise MemoryError()
    for i in range(n):
        h = <_RingCore?>handles[i]
        h._as_consumer()
    bell.users += 1
    try:
        for i in range(n):
            h = <_RingCore>handles[i]
            rings[i] = &h.r
            cursors[i] = h.cursor
            h.busy += 1
        while True:
            now = kx_now_ns()
            until = now + _SLICE_NS
            if deadline >= 0 and deadline < until:
                until = deadline
            pause_until = min(now + _SLEEP_PAUSE_NS, until)
            spin_until = min(now + _SLEEP_SPIN_NS, until)
            with nogil:
                ready = _any_ready(rings, cursors, n)
                while not ready and kx_now_ns() < spin_until:
                    for i in range(64):
                        if kx_now_ns() < pause_until:
                            KX_PAUSE()
                        else:
                            sched_yield()
                    ready = _any_ready(rings, cursors, n)
            if not ready:
                seen = <uint32_t>KX_LOAD_ACQ(bell.seq)
                __atomic_fetch_add(bell.waiters, 1, __ATOMIC_SEQ_CST)
                ready = _any_ready(rings, cursors, n)
                if not ready:
                    with nogil:
                        kx_futex_wait(bell.seq, seen, until - kx_now_ns(), bell.shared)
                __atomic_fetch_sub(bell.waiters, 1, __ATOMIC_SEQ_CST)
                ready = _any_ready(rings, cursors, n)
            if ready or bell.release_pending:
                return True
            PyErr_CheckSignals()
            if deadline >= 0 and kx_now_ns() >= deadline:
                return False
    finally:
        bell.users -= 1
        if bell.users == 0 and bell.release_pending:
            bell._release_now()
        for i in range(n):
            h = <_RingCore>handles[i]
            h.busy -= 1
            if h.detached:
                h._finish_close()
        free(rings)
        free(cursors)


cdef bint _any_ready(kx_ring **rings, const uint64_t *cursors, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        if _data_ready(rings[i], cursors[i]):
            return True
    return False


# ---- shared memory ---------------------------------------------------------------------------

cdef int _check_name(object name) except -1:
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if not _NAME_RULE.match(name):
        raise ValueError(f"ring name {name!r} is not allowed: use 1 to 200 letters, digits, "
                         f"'.', '_' or '-', not starting with '.' or '-'")
    return 0


cdef class SharedRingCore(_RingCore):
    """A ring in a POSIX shared-memory segment (``/dev/shm/NAME``), shared by processes."""

    cdef void *mem
    cdef uint64_t mem_size
    cdef readonly str name
    cdef bint owner
    cdef uint32_t creator_pid
    cdef uint32_t pid

    @classmethod
    def _create(cls, name, capacity, max_producers, max_consumers, wait, overwrite=False,
                queue=False, max_items=0):
        cdef SharedRingCore self
        cdef uint64_t cap = _capacity(capacity)
        cdef int mode = _wait_mode(wait)
        cdef uint32_t np_ = _slots(max_producers, "max_producers")
        cdef uint32_t nc = _slots(max_consumers, "max_consumers")
        cdef uint64_t size = kx_ring_header_size(np_, nc) + cap
        cdef int fd
        cdef void *mem
        _check_name(name)
        path = ("/" + name).encode()
        fd = shm_open(path, O_CREAT | O_EXCL | O_RDWR, 0o600)
        if fd < 0:
            _raise_os_error(errno, name)
        try:
            if fchmod(fd, 0o600) != 0 or ftruncate(fd, <long>size) != 0:
                err = errno
                shm_unlink(path)
                _raise_os_error(err, name)
            mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0)
            if mem == MAP_FAILED:
                err = errno
                shm_unlink(path)
                _raise_os_error(err, name)
        finally:
            c_close(fd)
        kx_ring_format(mem, cap, np_, nc, 1, 1 if overwrite else 0, 1 if queue else 0,
                       <uint64_t>max_items if queue and max_items > 0 else 0)
        self = cls.__new__(cls)
        self._bind(mem, size, name, mode)
        self.owner = True
        self.creator_pid = <uint32_t>getpid()
        return self

    @classmethod
    def _attach(cls, name, wait, start):
        cdef SharedRingCore self
        cdef int mode = _wait_mode(wait)
        cdef struct_stat st
        cdef int fd, attempt
        cdef kx_layout_status status = KX_LAYOUT_UNINITIALISED
        cdef void *mem = NULL
        cdef uint64_t size = 0
        _check_name(name)
        if start not in ("earliest", "latest"):
            raise ValueError(f"start must be 'earliest' or 'latest', got {start!r}")
        path = ("/" + name).encode()
        fd = shm_open(path, O_RDWR, 0)
        if fd < 0:
            _raise_os_error(errno, name)
        try:
            # A segment that is being created may still be zeros: give its creator a moment.
            for attempt in range(50):
                if fstat(fd, &st) != 0:
                    _raise_os_error(errno, name)
                size = <uint64_t>st.st_size
                if size < 4096:
                    status = KX_LAYOUT_TRUNCATED if size else KX_LAYOUT_UNINITIALISED
                else:
                    mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
                    if mem == MAP_FAILED:
                        _raise_os_error(errno, name)
                    status = kx_ring_check(mem, size)
                    if status != KX_LAYOUT_OK:
                        munmap(mem, size)
                        mem = NULL
                if status != KX_LAYOUT_UNINITIALISED:
                    break
                with nogil:
                    kx_futex_wait(&attempt_word, 0, 10_000_000, 0)
        finally:
            c_close(fd)
        if status != KX_LAYOUT_OK:
            reason = _LAYOUT_REASONS[status]
            raise RingError(f"cannot attach to ring {name!r}: {_LAYOUT_TEXT[reason]} "
                            f"({size}-byte segment)", reason)
        self = cls.__new__(cls)
        self._bind(mem, size, name, mode)
        self.start_latest = start == "latest"
        return self

    cdef _bind(self, void *mem, uint64_t size, str name, int mode):
        kx_ring_bind(&self.r, mem)
        self.mem = mem
        self.mem_size = size
        self.name = name
        self.wait_mode = mode
        self.generation = _fork_generation
        _open_handles.add(self)
        _close_at_exit()

    # -- roles --

    cdef inline uint32_t _me(self):
        self.pid = <uint32_t>getpid()
        return self.pid

    cdef kx_ring_slot *_take_slot(self, kx_ring_slot *first, uint32_t count):
        cdef uint32_t i, expected
        cdef kx_ring_slot *s
        for i in range(count):
            s = &first[i]
            expected = KX_SLOT_FREE
            if __atomic_compare_exchange_n(&s.state, &expected, KX_SLOT_JOINING, 0,
                                           __ATOMIC_SEQ_CST, __ATOMIC_RELAXED):
                s.pid = self._me()
                s.start_time = kx_process_start_time(s.pid)
                s.end = 0
                return s
        return NULL

    cdef int _forget_inherited_roles(self) except -1:
        # A forked child: the slots belong to the parent's pid; take our own.
        if self.generation != _fork_generation:
            self.prod = NULL
            self.cons = NULL
            self.generation = _fork_generation
        return 0

    cdef kx_ring_slot *_role_slot(self, bint producer) except NULL:
        """Takes a free producer or consumer slot (freeing dead processes' slots if there is
        none), marked JOINING; raises RingError when every slot is in use."""
        cdef kx_ring_slot *first = kx_ring_producer_slot(&self.r, 0) if producer \
            else kx_ring_consumer_slot(&self.r, 0)
        cdef uint32_t count = self.r.max_producers if producer else self.r.max_consumers
        cdef kx_ring_slot *s = self._take_slot(first, count)
        if s == NULL:
            self._reap(producer, False)
            s = self._take_slot(first, count)
        if s == NULL:
            role = "producer" if producer else "consumer"
            raise RingError(f"ring {self.name!r} already has its {count} {role}(s); create it "
                            f"with a larger max_{role}s", f"too_many_{role}s")
        return s

    cdef int _join_producer(self) except -1:
        cdef kx_ring_slot *s
        self._forget_inherited_roles()
        if self.prod != NULL:
            return 0
        s = self._role_slot(True)
        KX_STORE_REL(&s.state, KX_SLOT_ACTIVE)
        __atomic_fetch_add(&self.r.h.producers_seen, 1, __ATOMIC_SEQ_CST)
        KX_STORE_REL(&self.r.h.orphan_producers, 0)
        self.prod = s
        return 0

    cdef int _join_consumer(self) except -1:
        cdef kx_ring_slot *s
        cdef uint64_t start, frames, published
        self._forget_inherited_roles()
        if self.cons != NULL:
            return 0
        s = self._role_slot(False)
        if self.start_latest:
            while True:
                start = KX_LOAD_ACQ(&self.r.h.publish)
                frames = KX_LOAD_ACQ(&self.r.h.frames_published)
                if KX_LOAD_ACQ(&self.r.h.publish) == start:
                    break
        else:
            start = kx_ring_gate(&self.r, &frames)
        s.pos = start
        s.frames = frames
        _set_base(s, start, frames)
        KX_STORE_REL(&s.state, KX_SLOT_ACTIVE)
        # A producer that computed its gate before we became active may already have
        # claimed past start + capacity; then what we would read is being overwritten.
        if not self.r.overwrite and KX_LOAD_ACQ(&self.r.h.claim) - start > self.r.capacity:
            while True:
                start = KX_LOAD_ACQ(&self.r.h.publish)
                frames = KX_LOAD_ACQ(&self.r.h.frames_published)
                if KX_LOAD_ACQ(&self.r.h.publish) == start:
                    break
            s.frames = frames
            _set_base(s, start, frames)
            KX_STORE_REL(&s.pos, start)
        KX_STORE_REL(&self.r.h.orphan_consumers, 0)
        self.cons = s
        self.cursor = start
        self.consumed = frames
        return 0

    cdef object _reap(self, bint producers, bint only_gating):
        """Frees the slots of dead processes (producers or consumers). Returns
        (pids found dead, live ones left)."""
        cdef uint32_t i, n
        cdef kx_ring_slot *s
        cdef uint32_t expected
        cdef uint64_t gate = 0
        dead = []
        live = 0
        n = self.r.max_producers if producers else self.r.max_consumers
        if self.r.queue and not producers:
            only_gating = False  # consumers share the read position: any dead one counts
        if only_gating:
            gate = kx_ring_gate(&self.r, NULL)
        for i in range(n):
            s = kx_ring_producer_slot(&self.r, i) if producers \
                else kx_ring_consumer_slot(&self.r, i)
            if KX_LOAD_ACQ(&s.state) != KX_SLOT_ACTIVE:
                continue
            if kx_slot_alive(s):
                live += 1
                continue
            if producers:
                if self.r.max_producers == 1:
                    # The only producer died, perhaps mid-write: drop its unpublished claim.
                    KX_STORE_REL(&self.r.h.claim, KX_LOAD_ACQ(&self.r.h.publish))
                elif KX_LOAD_ACQ(&s.end) != 0:
                    if KX_LOAD_RLX(&s.pos) == KX_LOAD_ACQ(&self.r.h.publish):
                        kx_ring_repair_dead_claim(&self.r)
                        dead.append(s.pid)
                        continue
                    continue  # a later claim; whoever waits behind it repairs it
                expected = KX_SLOT_ACTIVE
                if __atomic_compare_exchange_n(&s.state, &expected, KX_SLOT_REAPING, 0,
                                               __ATOMIC_SEQ_CST, __ATOMIC_RELAXED):
                    __atomic_fetch_add(&self.r.h.producers_lost, 1, __ATOMIC_SEQ_CST)
                    KX_STORE_REL(&s.state, KX_SLOT_FREE)
                    dead.append(s.pid)
            else:
                if only_gating and KX_LOAD_ACQ(&s.pos) != gate:
                    live += 1
                    continue
                expected = KX_SLOT_ACTIVE
                if __atomic_compare_exchange_n(&s.state, &expected, KX_SLOT_REAPING, 0,
                                               __ATOMIC_SEQ_CST, __ATOMIC_RELAXED):
                    dead.append(s.pid)
                    self._release_consumer_slot(s, True)
        return dead, live

    cdef int _check_peers(self, int what) except -1:
        cdef uint32_t i
        if what == FOR_DATA:
            dead, live = self._reap(True, False)
            if live:
                return 0
            for i in range(self.r.max_producers):
                if KX_LOAD_ACQ(&kx_ring_producer_slot(&self.r, i).state) == KX_SLOT_ACTIVE:
                    return 0  # a dead producer's claim still waits to be skipped
            if dead:
                KX_STORE_REL(&self.r.h.orphan_producers, 1)
                raise PeerGone(f"every producer of ring {self.name!r} has died (pid "
                               f"{dead[0]} found dead) and the ring is drained",
                               dead[0], "producer")
            if KX_LOAD_ACQ(&self.r.h.orphan_producers):
                raise PeerGone(f"every producer of ring {self.name!r} has died and the ring "
                               f"is drained", None, "producer")
            return 0
        dead, live = self._reap(False, True)
        if self.r.queue:
            # Consumers share the queue: only when none is left is a put waiting for nothing.
            if live == 0 and (dead or KX_LOAD_ACQ(&self.r.h.orphan_consumers)):
                raise PeerGone(f"every consumer of queue {self.name!r} has died and it is full",
                               dead[0] if dead else None, "consumer")
            return 0
        if dead:
            raise PeerGone(f"consumer process {dead[0]} of ring {self.name!r} died while the "
                           f"ring was full; its cursor was released", dead[0], "consumer")
        if live == 0 and KX_LOAD_ACQ(&self.r.h.orphan_consumers):
            for i in range(self.r.max_consumers):
                if KX_LOAD_ACQ(&kx_ring_consumer_slot(&self.r, i).state) == KX_SLOT_ACTIVE:
                    return 0
            raise PeerGone(f"the consumers of ring {self.name!r} died and the ring is full",
                           None, "consumer")
        return 0

    # -- lifetime --

    cdef int _raise_detached(self) except -1:
        raise RingClosed(f"this handle to ring {self.name!r} is closed")

    def close(self):
        """Detaches this handle: gives back its producer and consumer slots (a consumer's
        position is kept for the next consumer when it was the last) and unmaps the segment.
        Using the handle afterwards raises ``RingClosed``. Closing twice is harmless."""
        if self.detached or self.mem == NULL:
            self.detached = True
            return None
        if self.generation == _fork_generation:
            if self.prod != NULL:
                KX_STORE_REL(&self.prod.state, KX_SLOT_FREE)
            if self.cons != NULL:
                self._release_consumer_slot(self.cons, False)
        self.prod = NULL
        self.cons = NULL
        self.detached = True
        # Wake this handle's calls waiting in other threads; they raise RingClosed, and the
        # last one out unmaps (waiters of other handles wake too, look, and sleep again).
        KX_STORE_REL(&self.stop, 1)
        __atomic_fetch_add(&self.r.h.data_seq, 1, __ATOMIC_SEQ_CST)
        __atomic_fetch_add(&self.r.h.space_seq, 1, __ATOMIC_SEQ_CST)
        kx_futex_wake_all(&self.r.h.data_seq, 1)
        kx_futex_wake_all(&self.r.h.space_seq, 1)
        _open_handles.discard(self)
        self._finish_close()

    cdef int _finish_close(self) except -1:
        if self.busy == 0 and self.mem != NULL:
            munmap(self.mem, self.mem_size)
            self.mem = NULL
        return 0

    def unlink(self):
        """Removes the segment's name, so no new process can attach; processes attached keep
        their mapping until they close. Unlinking twice is harmless."""
        path = ("/" + self.name).encode()
        if shm_unlink(path) != 0 and errno != ENOENT:
            _raise_os_error(errno, self.name)

    @property
    def closed(self):
        """True once this handle was closed."""
        return self.detached

    @property
    def wait(self):
        """The wait strategy: ``"sleep"``, ``"spin"`` or ``"yield"``."""
        return _WAIT_NAMES[self.wait_mode]

    @property
    def _owner(self):
        # A forked child inherits the creator's handle but not its ownership.
        return self.owner and self.generation == _fork_generation and self.prod_pid_ok()

    cdef bint prod_pid_ok(self):
        return self.creator_pid == <uint32_t>getpid()

    @property
    def max_producers(self):
        return self.r.max_producers if not self.detached else 0

    @property
    def max_consumers(self):
        return self.r.max_consumers if not self.detached else 0

    def __dealloc__(self):
        if self.mem != NULL:
            if self.generation == _fork_generation:
                if self.prod != NULL:
                    KX_STORE_REL(&self.prod.state, KX_SLOT_FREE)
                if self.cons != NULL:
                    try:
                        self._release_consumer_slot(self.cons, False)
                    except BaseException:  # __dealloc__ never raises (it is only atomic
                        pass                   # stores); at worst the slot stays taken until exit
            munmap(self.mem, self.mem_size)
            self.mem = NULL

    def __repr__(self):
        if self.detached:
            return f"<{type(self).__name__} {self.name!r} closed>"
        return (f"<{type(self).__name__} {self.name!r} capacity={self.r.capacity} "
                f"free_bytes={self.free_bytes} wait={self.wait!r}>")


_LAYOUT_TEXT = {
    "truncated": "the segment is smaller than its layout says",
    "uninitialised": "the segment holds no ring (all zeros)",
    "bad_magic": "the segment does not start with the kaelix ring magic",
    "unsupported_version": "the ring layout version is not one this kaelix reads",
    "bad_layout": "the ring header's sizes are inconsistent",
}


cdef uint32_t _slots(object value, str name) except 0:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1 or value > KX_RING_MAX_SLOTS:
        raise ValueError(f"{name} must be between 1 and {KX_RING_MAX_SLOTS}, got {value}")
    return <uint32_t>value


cdef int _raise_os_error(int err, str name) except -1:
    if err == EEXIST:
        raise FileExistsError(err, f"a shared ring named {name!r} already exists", name)
    if err == ENOENT:
        raise FileNotFoundError(err, f"no shared ring named {name!r}", name)
    raise OSError(err, os.strerror(err), name)


# ---- queue rings ------------------------------------------------------------------------------

@cython.auto_pickle(False)
cdef class QueueCore(SharedRingCore):
    """A shared ring in queue mode (``kaelix.Queue``): every frame goes to exactly one
    consumer. Each item is one frame whose ``partition`` field holds its kind (raw bytes,
    serialized, serialized with out-of-band buffers) and whose payload is the parts given to
    ``_put_parts``, laid end to end."""

    cdef uint64_t sent

    cdef int _claim_item(self, uint64_t n, bint block, int64_t deadline,
                         uint64_t *start) except -1:
        """Reserves an item (maxsize) and claims n bytes for it, waiting for room when
        block (else RingFull at once)."""
        self._as_producer()
        while True:
            if KX_LOAD_RLX(&self.r.h.closed):
                raise RingClosed("put to a closed queue")
            if kx_ring_reserve_items(&self.r, 1):
                self._before_claim()
                if kx_ring_claim(&self.r, self.prod, n, start):
                    return 0
                kx_ring_unreserve_items(&self.r, 1)
            if not block:
                raise RingFull("the queue is full")
            self._wait(FOR_SPACE, n, deadline)

    cdef int _check_item_size(self, uint64_t plen, uint64_t n) except -1:
        if n == 0 or n > self.r.capacity:
            raise ValueError(f"an item of {plen} bytes can never fit in a queue of "
                             f"{self.r.capacity} bytes; make the queue with a larger "
                             f"capacity_bytes")
        return 0

    def _put_parts(self, tuple parts, uint32_t kind, bint block=True, timeout=None):
        """Puts one item: a frame of the given kind whose payload is the parts (bytes-like)
        end to end. Waits for room (and for a free item when the queue has a maxsize) up to
        timeout when block, else raises RingFull at once.

        Raises:
            RingFull: no room (queue.Full).
            ValueError: the item can never fit in the ring.
            RingClosed, PeerGone: as ``put``.
        """
        cdef Py_ssize_t nparts = len(parts), i
        cdef Py_buffer *views
        cdef uint64_t plen = 0, n, start, pos
        cdef unsigned char header[56]
        cdef unsigned char zeros[8]
        cdef uint32_t crc
        cdef int64_t deadline = _deadline(timeout) if block else 0
        views = <Py_buffer *>calloc(nparts if nparts else 1, sizeof(Py_buffer))
        if views == NULL:
            raise MemoryError()
        i = 0
        try:
            while i < nparts:
                PyObject_GetBuffer(parts[i], &views[i], PyBUF_SIMPLE)
                plen += <uint64_t>views[i].len
                i += 1
            n = kx_frame_size(0, 0, plen)
            self._check_item_size(plen, n)
            self._claim_item(n, block, deadline, &start)
            # Claimed: write the header (its CRC over the header's tail, the parts and the
            # padding), then the parts, then the padding; then publish.
            # (kx_frame_write_header zeroes the padding after the payload, so it is given
            # an empty 56-byte frame; the two lengths are then set by hand.)
            kx_frame_write_header(header, 56, 0, 0, <uint64_t>self.pid, self.sent, _wall_ns(),
                                  kind, 0, 0, 0)
            _store_u32(header + 12, <uint32_t>n)
            _store_u32(header + 52, <uint32_t>plen)
            memset(zeros, 0, 8)
            crc = kx_crc32c(0, header + 8, 48)
            for i in range(nparts):
                crc = kx_crc32c(crc, views[i].buf, <size_t>views[i].len)
            crc = kx_crc32c(crc, zeros, <size_t>(n - 56 - plen))
            _store_u32(header + 4, crc)
            kx_ring_write(&self.r, start, header, 56)
            pos = start + 56
            for i in range(nparts):
                kx_ring_write(&self.r, pos, views[i].buf, <uint64_t>views[i].len)
                pos += <uint64_t>views[i].len
            if n - 56 - plen:
                kx_ring_write(&self.r, pos, zeros, n - 56 - plen)
            self.sent += 1
            __atomic_fetch_add(&self.r.h.unfinished, 1, __ATOMIC_SEQ_CST)
            self._publish(start, n, 1)
        finally:
            while i > 0:
                i -= 1
                PyBuffer_Release(&views[i])
            free(views)

    def _set_spin(self, int64_t ns):
        """How long this handle's "sleep" waits spin before sleeping on the futex."""
        self.spin_ns = ns if ns > 0 else 0

    def _put_bytes(self, bytes data, uint32_t kind, bint block=True, timeout=None):
        """``_put_parts((data,), kind, ...)`` for one bytes object, the common case: the frame
        is written straight into the ring (through a bounce buffer only when it straddles the
        end)."""
        cdef uint64_t plen = <uint64_t>PyBytes_GET_SIZE(data), n, start
        cdef int64_t deadline = _deadline(timeout) if block else 0
        n = kx_frame_size(0, 0, plen)
        self._check_item_size(plen, n)
        self._claim_item(n, block, deadline, &start)
        _write_frame(&self.r, start, n, False, <uint64_t>self.pid, self.sent, _wall_ns(), kind,
                     NULL, 0, PyBytes_AS_STRING(data), plen)
        self.sent += 1
        __atomic_fetch_add(&self.r.h.unfinished, 1, __ATOMIC_SEQ_CST)
        self._publish(start, n, 1)

    def _put_many_bytes(self, list datas, uint32_t kind, bint block=True, timeout=None):
        """Puts each bytes object of datas as one item of the given kind, in order, with one
        claim, one copy and one publish for as many as fit at a time. Returns how many were
        put (all of them); raises RingFull with ``sent`` set when the timeout passes (or at
        once without block) with some not put."""
        cdef Py_ssize_t total = len(datas), done = 0, k, j
        cdef uint64_t room, claim, need, n, start, pos, plen
        cdef int64_t deadline = _deadline(timeout) if block else 0
        cdef int64_t free_items
        cdef object data
        cdef int64_t ts
        for j in range(total):
            data = datas[j]
            if type(data) is not bytes:
                raise TypeError(f"item {j} is {type(data).__name__}, not bytes")
            plen = <uint64_t>PyBytes_GET_SIZE(data)
            self._check_item_size(plen, kx_frame_size(0, 0, plen))
        self._as_producer()
        while done < total:
            if KX_LOAD_RLX(&self.r.h.closed):
                raise RingClosed("put to a closed queue")
            claim = KX_LOAD_RLX(&self.r.h.claim)
            kx_ring_has_room(&self.r, claim, self.r.capacity + 1)  # refresh the gate
            room = self.r.capacity - (claim - self.r.gate_cache)
            k = 0
            need = 0
            while done + k < total:
                n = kx_frame_size(0, 0, <uint64_t>PyBytes_GET_SIZE(datas[done + k]))
                if need + n > room:
                    break
                need += n
                k += 1
            if self.r.h.max_items and k:
                free_items = <int64_t>KX_LOAD_ACQ(&self.r.h.items_free)
                while k > 0 and k > free_items:
                    k -= 1
                    need -= kx_frame_size(0, 0, <uint64_t>PyBytes_GET_SIZE(datas[done + k]))
            if k == 0 or not kx_ring_reserve_items(&self.r, <uint64_t>k):
                if not block:
                    exc = RingFull("the queue is full")
                    exc.sent = done
                    raise exc
                try:
                    self._wait(FOR_SPACE, kx_frame_size(
                        0, 0, <uint64_t>PyBytes_GET_SIZE(datas[done])), deadline)
                except RingFull as full:
                    full.sent = done
                    raise
                continue
            self._before_claim()
            if not kx_ring_claim(&self.r, self.prod, need, &start):
                kx_ring_unreserve_items(&self.r, <uint64_t>k)
                continue
            ts = _wall_ns()
            pos = start
            for j in range(done, done + k):
                data = datas[j]
                plen = <uint64_t>PyBytes_GET_SIZE(data)
                n = kx_frame_size(0, 0, plen)
                _write_frame(&self.r, pos, n, False, <uint64_t>self.pid, self.sent, ts, kind,
                             NULL, 0, PyBytes_AS_STRING(data), plen)
                self.sent += 1
                pos += n
            __atomic_fetch_add(&self.r.h.unfinished, <uint64_t>k, __ATOMIC_SEQ_CST)
            self._publish(start, need, <uint64_t>k)
            done += k
        return done

    def _take_one(self, bint block=True, timeout=None):
        """Takes one item and checks its frame: returns (bytearray holding the frame, kind,
        payload start, payload end)."""
        cdef kx_frame_info fi
        cdef kx_error err
        buf, _ = self._take_items(1, block, timeout)
        if kx_frame_parse(<const unsigned char *>PyByteArray_AS_STRING(buf), <size_t>len(buf),
                          KX_MAX_FRAME_LIMIT, 1, &fi, &err) != KX_OK:
            raise RingError("a queue item taken is not a valid kaelix frame: a process wrote "
                            "into the segment directly", "corrupt")
        return buf, fi.partition, KX_HEADER_SIZE, KX_HEADER_SIZE + fi.payload_length

    def _take_items(self, uint64_t max_messages=1, bint block=True, timeout=None):
        """Takes up to max_messages items (at least one: waits up to timeout when block,
        else raises RingEmpty at once). Returns (frames end to end in a bytearray, so that
        objects rebuilt over it are writable, count)."""
        cdef int64_t deadline = _deadline(timeout) if block else 0
        cdef uint64_t start, first, count, span, written
        cdef int has_skips
        cdef kx_ring_status st
        cdef object out
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        self._as_consumer()
        while True:
            st = kx_ring_take_span(&self.r, max_messages, UINT64_MAX_, &start, &first, &count,
                                   &span, &has_skips)
            if st == KX_RING_OK:
                if count == 0:  # only skip records (a dead producer's claim): step over
                    kx_ring_take_commit(&self.r, start, first, 0)
                    continue
                out = PyByteArray_FromStringAndSize(NULL, <Py_ssize_t>span)
                written = kx_ring_gather(&self.r, first, span,
                                         <unsigned char *>PyByteArray_AS_STRING(out), has_skips)
                if not kx_ring_take_commit(&self.r, start, first + span, count):
                    continue  # another consumer took them first: this copy may be torn
                if written != span:
                    del out[written:]
                return out, count
            if st != KX_RING_EMPTY:
                self._corrupt(start)
            if not block:
                raise RingEmpty("the queue is empty")
            self._wait(FOR_DATA, start, deadline)

    def _get_loaded(self, bint block, timeout, loads, uint32_t simple_kind,
                    uint32_t raw_kind):
        """Takes one item; if its kind is simple_kind, returns (True, loads(payload view));
        if raw_kind, (True, the payload as bytes); else (False, (bytearray holding the
        frame, kind, payload start, payload end)) for the caller to decode. One compiled
        step for the common ``get``."""
        cdef kx_frame_info fi
        cdef kx_error err
        buf, _ = self._take_items(1, block, timeout)
        if kx_frame_parse(<const unsigned char *>PyByteArray_AS_STRING(buf), <size_t>len(buf),
                          KX_MAX_FRAME_LIMIT, 1, &fi, &err) != KX_OK:
            raise RingError("a queue item taken is not a valid kaelix frame: a process wrote "
                            "into the segment directly", "corrupt")
        if fi.partition == simple_kind:
            view = memoryview(buf)[KX_HEADER_SIZE:KX_HEADER_SIZE + fi.payload_length]
            return True, loads(view)
        if fi.partition == raw_kind:
            return True, PyBytes_FromStringAndSize(PyByteArray_AS_STRING(buf) + KX_HEADER_SIZE,
                                                   <Py_ssize_t>fi.payload_length)
        return False, (buf, fi.partition, KX_HEADER_SIZE, KX_HEADER_SIZE + fi.payload_length)

    def _task_done(self):
        """JoinableQueue.task_done: one fewer unfinished task; wakes join() at zero."""
        cdef uint64_t left
        self._check_open()
        left = KX_LOAD_ACQ(&self.r.h.unfinished)
        while True:
            if left == 0:
                raise ValueError("task_done() called too many times")
            if __atomic_compare_exchange_n(&self.r.h.unfinished, &left, left - 1, 0,
                                           __ATOMIC_SEQ_CST, __ATOMIC_ACQUIRE):
                break
        if left == 1:
            __atomic_fetch_add(&self.r.h.join_seq, 1, __ATOMIC_SEQ_CST)
            if KX_LOAD_ACQ(&self.r.h.join_waiters):
                kx_futex_wake_all(&self.r.h.join_seq, 1)

    def _join_tasks(self, timeout=None):
        """JoinableQueue.join: waits until every item put has been marked done. Returns
        False if the timeout passed first."""
        cdef int64_t deadline = _deadline(timeout), until
        cdef uint32_t seen
        self._check_open()
        while KX_LOAD_ACQ(&self.r.h.unfinished) != 0:
            until = kx_now_ns() + _SLICE_NS
            if deadline >= 0:
                if kx_now_ns() >= deadline:
                    return False
                if deadline < until:
                    until = deadline
            seen = <uint32_t>KX_LOAD_ACQ(&self.r.h.join_seq)
            __atomic_fetch_add(&self.r.h.join_waiters, 1, __ATOMIC_SEQ_CST)
            if KX_LOAD_ACQ(&self.r.h.unfinished) != 0:
                self.busy += 1
                with nogil:
                    kx_futex_wait(&self.r.h.join_seq, seen, until - kx_now_ns(), 1)
                self.busy -= 1
            __atomic_fetch_sub(&self.r.h.join_waiters, 1, __ATOMIC_SEQ_CST)
            if self.detached:
                self._finish_close()
                self._raise_detached()
            PyErr_CheckSignals()
        return True

    def _items(self):
        """Items waiting (published and not yet taken); exact when nothing is in flight."""
        cdef uint64_t published, done
        self._check_open()
        published = KX_LOAD_ACQ(&self.r.h.frames_published)
        done = KX_LOAD_ACQ(&self.r.h.frames_done)
        return _frames_between(published, done)

    def _items_free(self):
        """Items a producer may still put before the maxsize (None: no maxsize)."""
        self._check_open()
        if self.r.h.max_items == 0:
            return None
        return <int64_t>KX_LOAD_ACQ(&self.r.h.items_free)

    def _others_attached(self):
        """Whether a live process other than this one holds a producer or consumer slot."""
        cdef uint32_t i, me = <uint32_t>getpid()
        cdef kx_ring_slot *s
        if self.detached:
            return False
        for i in range(self.r.max_producers + self.r.max_consumers):
            s = &self.r.slots[i]
            if KX_LOAD_ACQ(&s.state) == KX_SLOT_ACTIVE and s.pid != me and kx_slot_alive(s):
                return True
        return False

    @property
    def _max_items(self):
        return self.r.h.max_items if not self.detached else 0

    @property
    def _queue(self):
        return self.r.queue != 0


def _item_spans(buf, Py_ssize_t count):
    """Checks count frames laid end to end in buf (structure and CRC32C: a queue's segment
    can be written by any process attached to it) and returns, for each, (kind, payload
    start, payload end).

    Raises:
        RingError: a frame is malformed (reason "corrupt").
    """
    cdef Py_buffer view
    cdef kx_frame_info fi
    cdef kx_error err
    cdef uint64_t pos = 0
    cdef Py_ssize_t i
    cdef list out = []
    PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE)
    try:
        for i in range(count):
            if kx_frame_parse(<const unsigned char *>view.buf + pos, <size_t>(view.len - pos),
                              KX_MAX_FRAME_LIMIT, 1, &fi, &err) != KX_OK:
                raise RingError(f"queue item {i} at byte {pos} of what was taken is not a "
                                f"valid kaelix frame: a process wrote into the segment "
                                f"directly", "corrupt")
            out.append((fi.partition, pos + KX_HEADER_SIZE + fi.key_length + fi.headers_length,
                        pos + KX_HEADER_SIZE + fi.key_length + fi.headers_length
                        + fi.payload_length))
            pos += fi.frame_length
    finally:
        PyBuffer_Release(&view)
    return out
