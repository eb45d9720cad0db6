# C declarations of kx_ring.h, kept apart from the logic that uses them.
from libc.stdint cimport int64_t, uint32_t, uint64_t


cdef extern from "kx_ring.h" nogil:
    const uint64_t KX_RING_MIN_CAPACITY
    const uint64_t KX_RING_MAX_CAPACITY
    enum:
        KX_RING_MAX_SLOTS
        KX_RING_VERSION
        KX_SLOT_FREE
        KX_SLOT_JOINING
        KX_SLOT_ACTIVE
        KX_SLOT_REAPING

    ctypedef struct kx_ring_header:
        uint64_t magic
        uint32_t version
        uint32_t header_size
        uint64_t capacity
        uint64_t segment_size
        uint32_t max_producers
        uint32_t max_consumers
        uint32_t shared
        uint32_t overwrite
        uint32_t queue
        uint64_t max_items
        uint64_t claim
        uint64_t publish
        uint64_t frames_published
        uint32_t data_seq
        uint32_t data_waiters
        uint32_t space_seq
        uint32_t space_waiters
        uint64_t floor
        uint64_t floor_frames
        uint32_t closed
        uint32_t producers_lost
        uint32_t consumers_lost
        uint32_t producers_seen
        uint32_t orphan_producers
        uint32_t orphan_consumers
        uint32_t floor_seq
        uint64_t take
        uint64_t frames_done
        int64_t items_free
        uint64_t unfinished
        uint32_t join_seq
        uint32_t join_waiters

    ctypedef struct kx_ring_slot:
        uint32_t state
        uint32_t pid
        uint64_t start_time
        uint64_t pos
        uint64_t end
        uint64_t frames
        uint64_t base_pos
        uint64_t base_frames
        uint64_t passed

    ctypedef struct kx_ring:
        kx_ring_header *h
        kx_ring_slot *slots
        unsigned char *data
        uint64_t capacity
        uint64_t mask
        uint64_t gate_cache
        int shared
        int overwrite
        int queue
        uint32_t max_producers
        uint32_t max_consumers
        uint32_t *bell_seq
        uint32_t *bell_waiters

    ctypedef enum kx_ring_status:
        KX_RING_OK
        KX_RING_EMPTY
        KX_RING_CORRUPT

    ctypedef enum kx_layout_status:
        KX_LAYOUT_OK
        KX_LAYOUT_TRUNCATED
        KX_LAYOUT_UNINITIALISED
        KX_LAYOUT_BAD_MAGIC
        KX_LAYOUT_VERSION
        KX_LAYOUT_BAD

    uint64_t kx_ring_header_size(uint32_t max_producers, uint32_t max_consumers)
    uint64_t kx_ring_round_capacity(uint64_t want)
    void kx_ring_format(void *mem, uint64_t capacity, uint32_t max_producers,
                        uint32_t max_consumers, int shared, int overwrite, int queue,
                        uint64_t max_items)
    kx_layout_status kx_ring_check(const void *mem, uint64_t size)
    void kx_ring_bind(kx_ring *r, void *mem)
    kx_ring_slot *kx_ring_producer_slot(kx_ring *r, uint32_t i)
    kx_ring_slot *kx_ring_consumer_slot(kx_ring *r, uint32_t i)
    void kx_ring_write(kx_ring *r, uint64_t pos, const void *src, uint64_t n)
    void kx_ring_read(const kx_ring *r, uint64_t pos, void *dst, uint64_t n)
    uint64_t kx_process_start_time(uint32_t pid)
    int kx_slot_alive(const kx_ring_slot *s)
    void kx_futex_wait(uint32_t *word, uint32_t expected, int64_t timeout_ns, int shared)
    int64_t kx_now_ns()
    void kx_ring_notify(kx_ring *r, uint32_t *seq, uint32_t *waiters)
    uint64_t kx_ring_gate(kx_ring *r, uint64_t *frames_out)
    kx_ring_status kx_ring_next_frame(const kx_ring *r, uint64_t *cursor, uint64_t publish,
                                      uint64_t *length)
    kx_ring_status kx_ring_span(const kx_ring *r, uint64_t *cursor, uint64_t publish,
                                uint64_t max_messages, uint64_t max_bytes, uint64_t *count_out,
                                uint64_t *bytes_out, int *has_skips)
    uint64_t kx_ring_gather(const kx_ring *r, uint64_t start, uint64_t n, unsigned char *dst,
                            int has_skips)
    int kx_ring_has_room(kx_ring *r, uint64_t c, uint64_t need)
    int kx_ring_claim(kx_ring *r, kx_ring_slot *me, uint64_t need, uint64_t *start)
    int kx_ring_try_publish(kx_ring *r, kx_ring_slot *me, uint64_t start, uint64_t need,
                            uint64_t frames)
    int kx_ring_repair_dead_claim(kx_ring *r)
    void kx_ring_floor_read(const kx_ring *r, uint64_t *floor, uint64_t *frames)
    int kx_ring_make_room(kx_ring *r, uint64_t c, uint64_t need)
    int kx_ring_ready_to_write(kx_ring *r, uint64_t start, uint64_t need)
    void kx_ring_notify_data(kx_ring *r)
    void kx_futex_wake_all(uint32_t *word, int shared)
    kx_ring_status kx_ring_take_span(kx_ring *r, uint64_t max_messages, uint64_t max_bytes,
                                     uint64_t *start, uint64_t *first, uint64_t *count,
                                     uint64_t *span, int *has_skips)
    int kx_ring_take_commit(kx_ring *r, uint64_t start, uint64_t end, uint64_t frames)
    int kx_ring_reserve_items(kx_ring *r, uint64_t n)
    void kx_ring_unreserve_items(kx_ring *r, uint64_t n)

    # GCC atomic builtins on the header's fields.
    uint64_t KX_LOAD_ACQ(...)
    uint64_t KX_LOAD_RLX(...)
    void KX_STORE_REL(...)
    void KX_STORE_RLX(...)
    void KX_PAUSE()
    uint32_t __atomic_fetch_add(...)
    uint32_t __atomic_fetch_sub(...)
    bint __atomic_compare_exchange_n(...)
    void __atomic_thread_fence(int)
    enum:
        __ATOMIC_SEQ_CST
        __ATOMIC_RELAXED
        __ATOMIC_ACQUIRE
        __ATOMIC_RELEASE
