/* kx_ring.h: a ring of variable-length kaelix frames in one block of memory.
 *
 * The same code runs the in-process ring (memory from malloc, every operation under the
 * GIL) and the shared-memory ring (a POSIX shm segment mapped by several processes). No
 * Python here. The layout is documented in docs/architecture.md ("Rings"); in short:
 *
 *   header   line 0: immutable after create (magic, version, sizes)
 *            line 1: claim    (producers' next byte position; CAS when several)
 *            line 2: publish  (every byte below it is committed; in claim order)
 *            line 3: data futex word and the number of waiting consumers
 *            line 4: space futex word and the number of waiting producers
 *            line 5: floor (where the next consumer starts when none is active), counters
 *   slots    max_producers + max_consumers cache lines (pid, start time, cursor/claim)
 *   data     capacity bytes, a power of two
 *
 * Positions are 64-bit byte counters that never wrap in practice (2^64 bytes); the byte at
 * position p lives at data[p & (capacity - 1)]. Frames are stored as they are (their own
 * header says their length, always a multiple of 8) and may straddle the end of the data
 * area. The only other record is a skip record ("KLXP" + u32 length) that covers the
 * unfinished claim of a producer that died mid-write.
 *
 * Commit protocol: a producer writes its bytes below the published position's future value
 * and then stores `publish` with release semantics; consumers load `publish` with acquire
 * semantics and never read at or beyond it. With several producers each claims a range with
 * a compare-and-swap on `claim` and publishes in claim order, so `publish` only ever covers
 * complete frames. A consumer therefore never observes a half-written frame, whatever
 * happens to the producer.
 */
#ifndef KX_RING_H
#define KX_RING_H

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define KX_RING_MAGIC 0x31474E5258584C4BULL /* "KLXXRNG1" little-endian */
#define KX_RING_VERSION 3u
#define KX_LINE 64u
#define KX_RING_HEADER_LINES 8u
#define KX_RING_MIN_CAPACITY 4096ull
#define KX_RING_MAX_CAPACITY (1ull << 40)
#define KX_RING_MAX_SLOTS 1024u
#define KX_SKIP_MAGIC 0x504C584Bu /* "KLXP" */
#define KX_FRAME_MAGIC 0x46584C4Bu /* "KLXF" */

#define KX_LOAD_ACQ(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define KX_LOAD_RLX(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define KX_STORE_REL(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define KX_STORE_RLX(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

#if defined(__x86_64__) || defined(__i386__)
#define KX_PAUSE() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define KX_PAUSE() __asm__ __volatile__("yield")
#else
#define KX_PAUSE() ((void)0)
#endif

enum { KX_SLOT_FREE = 0, KX_SLOT_JOINING = 1, KX_SLOT_ACTIVE = 2, KX_SLOT_REAPING = 3 };

typedef struct {
    /* line 0: written once by the creator, the magic last */
    uint64_t magic;
    uint32_t version;
    uint32_t header_size; /* bytes before the data area */
    uint64_t capacity;
    uint64_t segment_size; /* header_size + capacity */
    uint32_t max_producers;
    uint32_t max_consumers;
    uint32_t shared;
    uint32_t layout_check; /* header_size ^ capacity-derived value, see kx_ring_layout_check */
    uint32_t overwrite;    /* 1: producers never wait; they overwrite the oldest frames */
    uint32_t queue;        /* 1: consumers share one read position (each frame to one) */
    uint64_t max_items;    /* queue rings: at most this many frames waiting (0: no limit) */
    uint8_t pad0[KX_LINE - 64];
    /* line 1 */
    uint64_t claim;
    uint8_t pad1[KX_LINE - 8];
    /* line 2 */
    uint64_t publish;
    uint64_t frames_published; /* written by whoever publishes, just before publish */
    uint8_t pad2[KX_LINE - 16];
    /* line 3: consumers sleeping for data */
    uint32_t data_seq;
    uint32_t data_waiters;
    uint8_t pad3[KX_LINE - 8];
    /* line 4: producers sleeping for space */
    uint32_t space_seq;
    uint32_t space_waiters;
    uint8_t pad4[KX_LINE - 8];
    /* line 5: rarely written */
    uint64_t floor;        /* start of retained data when no consumer is active; in an
                              overwrite ring, always the oldest frame still kept */
    uint64_t floor_frames; /* frames consumed (or overwritten) up to floor */
    uint32_t closed;
    uint32_t producers_lost; /* producers found dead while registered */
    uint32_t consumers_lost;
    uint32_t producers_seen; /* producers that ever registered */
    uint32_t orphan_producers; /* set when the last registered producer died */
    uint32_t orphan_consumers; /* set when the last registered consumer died */
    uint32_t floor_seq;    /* overwrite rings: a seqlock over floor and floor_frames */
    uint8_t pad5[KX_LINE - 44];
    /* line 6: queue rings: the next byte a consumer may take (consumers CAS on it, after
     * copying what they take); producers are gated by it */
    uint64_t take;
    uint8_t pad6[KX_LINE - 8];
    /* line 7: queue rings: frames taken, the item limit; JoinableQueue's count of
     * unfinished tasks and its futex */
    uint64_t reserved7;
    uint64_t frames_done;  /* frames taken */
    int64_t items_free;    /* max_items minus frames reserved by producers, not yet done */
    uint64_t unfinished;
    uint32_t join_seq;
    uint32_t join_waiters;
    uint8_t pad7[KX_LINE - 40];
} kx_ring_header;

/* One cache line per process role. For a consumer, pos is its cursor and frames how many
 * it consumed; for a producer, pos/end is the claim in flight (end == 0: none).
 *
 * A consumer's slot also says what it received, for metrics read by any process (its owner
 * writes them, on the same line it already writes at every advance): base_pos and
 * base_frames are where it joined, moved on by what it passed over without reading
 * (overwritten by producers, or dropped by clear), and passed counts those frames. So it
 * received frames - base_frames frames, pos - base_pos bytes. */
typedef struct {
    uint32_t state;
    uint32_t pid;
    uint64_t start_time; /* process start time (clock ticks since boot), guards pid reuse */
    uint64_t pos;
    uint64_t end;
    uint64_t frames;
    uint64_t base_pos;    /* consumers: see above */
    uint64_t base_frames;
    uint64_t passed;
} kx_ring_slot;

_Static_assert(sizeof(kx_ring_header) == KX_RING_HEADER_LINES * KX_LINE, "header lines");
_Static_assert(sizeof(kx_ring_slot) == KX_LINE, "slot line");

typedef struct {
    kx_ring_header *h;
    kx_ring_slot *slots; /* producers first, then consumers */
    unsigned char *data;
    uint64_t capacity;
    uint64_t mask;
    uint64_t gate_cache; /* producer-local: a lower bound of the slowest consumer */
    int shared;
    int overwrite;
    int queue;
    /* Slot counts, copied at bind after kx_ring_check: every slot address is computed from
     * these, never from the header, which any attached process can rewrite. */
    uint32_t max_producers;
    uint32_t max_consumers;
    /* Optional second wake-up word (a stream's doorbell, one per stream): publishing wakes
     * its sleepers too, so one consumer can sleep on many rings. Process-local pointers. */
    uint32_t *bell_seq;
    uint32_t *bell_waiters;
} kx_ring;

typedef enum {
    KX_RING_OK = 0,
    KX_RING_EMPTY,
    KX_RING_CORRUPT,
} kx_ring_status;

/* ---- layout ---------------------------------------------------------------------------- */

static inline uint64_t kx_ring_header_size(uint32_t max_producers, uint32_t max_consumers) {
    uint64_t raw = (uint64_t)KX_RING_HEADER_LINES * KX_LINE +
                   ((uint64_t)max_producers + max_consumers) * KX_LINE;
    return (raw + 4095u) & ~(uint64_t)4095u; /* the data area starts on a page */
}

static inline uint32_t kx_ring_layout_check(uint64_t header_size, uint64_t capacity,
                                            uint32_t max_producers, uint32_t max_consumers) {
    uint64_t x = header_size * 0x9E3779B97F4A7C15ull ^ capacity ^
                 ((uint64_t)max_producers << 32 | max_consumers);
    return (uint32_t)(x ^ (x >> 32));
}

static inline uint64_t kx_ring_round_capacity(uint64_t want) {
    uint64_t c = KX_RING_MIN_CAPACITY;
    while (c < want && c < KX_RING_MAX_CAPACITY) c <<= 1;
    return c;
}

/* Fills a zeroed block of kx_ring_header_size(...) + capacity bytes. The magic is stored
 * last, with release semantics, so an attacher never sees a half-made header as valid. */
static inline void kx_ring_format(void *mem, uint64_t capacity, uint32_t max_producers,
                                  uint32_t max_consumers, int shared, int overwrite,
                                  int queue, uint64_t max_items) {
    kx_ring_header *h = (kx_ring_header *)mem;
    uint64_t hs = kx_ring_header_size(max_producers, max_consumers);
    h->version = KX_RING_VERSION;
    h->header_size = (uint32_t)hs;
    h->capacity = capacity;
    h->segment_size = hs + capacity;
    h->max_producers = max_producers;
    h->max_consumers = max_consumers;
    h->shared = (uint32_t)shared;
    h->layout_check = kx_ring_layout_check(hs, capacity, max_producers, max_consumers);
    h->overwrite = overwrite ? 1u : 0u;
    h->queue = queue ? 1u : 0u;
    h->max_items = queue ? max_items : 0;
    h->items_free = (int64_t)h->max_items;
    KX_STORE_REL(&h->magic, KX_RING_MAGIC);
}

typedef enum {
    KX_LAYOUT_OK = 0,
    KX_LAYOUT_TRUNCATED,
    KX_LAYOUT_UNINITIALISED,
    KX_LAYOUT_BAD_MAGIC,
    KX_LAYOUT_VERSION,
    KX_LAYOUT_BAD,
} kx_layout_status;

/* Checks a block of `size` bytes claimed to hold a ring, trusting nothing in it. */
static inline kx_layout_status kx_ring_check(const void *mem, uint64_t size) {
    const kx_ring_header *h = (const kx_ring_header *)mem;
    uint64_t magic, hs;
    if (size < sizeof(kx_ring_header)) return KX_LAYOUT_TRUNCATED;
    magic = KX_LOAD_ACQ(&h->magic);
    if (magic == 0) return KX_LAYOUT_UNINITIALISED;
    if (magic != KX_RING_MAGIC) return KX_LAYOUT_BAD_MAGIC;
    if (h->version != KX_RING_VERSION) return KX_LAYOUT_VERSION;
    if (h->capacity < KX_RING_MIN_CAPACITY || h->capacity > KX_RING_MAX_CAPACITY ||
        (h->capacity & (h->capacity - 1)) != 0)
        return KX_LAYOUT_BAD;
    if (h->max_producers < 1 || h->max_producers > KX_RING_MAX_SLOTS ||
        h->max_consumers < 1 || h->max_consumers > KX_RING_MAX_SLOTS)
        return KX_LAYOUT_BAD;
    hs = kx_ring_header_size(h->max_producers, h->max_consumers);
    if (h->header_size != hs || h->segment_size != hs + h->capacity ||
        h->layout_check != kx_ring_layout_check(hs, h->capacity, h->max_producers,
                                                h->max_consumers))
        return KX_LAYOUT_BAD;
    if (h->overwrite > 1 || h->queue > 1 || (h->overwrite && h->queue) ||
        (!h->queue && h->max_items))
        return KX_LAYOUT_BAD;
    if (size < h->segment_size) return KX_LAYOUT_TRUNCATED;
    return KX_LAYOUT_OK;
}

static inline void kx_ring_bind(kx_ring *r, void *mem) {
    r->h = (kx_ring_header *)mem;
    r->slots = (kx_ring_slot *)((unsigned char *)mem + KX_RING_HEADER_LINES * KX_LINE);
    r->data = (unsigned char *)mem + r->h->header_size;
    r->capacity = r->h->capacity;
    r->mask = r->capacity - 1;
    r->gate_cache = 0;
    r->shared = (int)r->h->shared;
    r->overwrite = (int)r->h->overwrite;
    r->queue = (int)r->h->queue;
    r->max_producers = r->h->max_producers;
    r->max_consumers = r->h->max_consumers;
    r->bell_seq = NULL;
    r->bell_waiters = NULL;
}

static inline kx_ring_slot *kx_ring_producer_slot(kx_ring *r, uint32_t i) {
    return &r->slots[i];
}

static inline kx_ring_slot *kx_ring_consumer_slot(kx_ring *r, uint32_t i) {
    return &r->slots[r->max_producers + i];
}

/* ---- bytes in and out, across the end of the data area ---------------------------------- */

static inline void kx_ring_write(kx_ring *r, uint64_t pos, const void *src, uint64_t n) {
    uint64_t off = pos & r->mask;
    uint64_t first = r->capacity - off;
    if (n <= first) {
        memcpy(r->data + off, src, n);
    } else {
        memcpy(r->data + off, src, first);
        memcpy(r->data, (const unsigned char *)src + first, n - first);
    }
}

static inline void kx_ring_read(const kx_ring *r, uint64_t pos, void *dst, uint64_t n) {
    uint64_t off = pos & r->mask;
    uint64_t first = r->capacity - off;
    if (n <= first) {
        memcpy(dst, r->data + off, n);
    } else {
        memcpy(dst, r->data + off, first);
        memcpy((unsigned char *)dst + first, r->data, n - first);
    }
}

static inline uint32_t kx_ring_ld32(const kx_ring *r, uint64_t pos) {
    uint32_t v;
    uint64_t off = pos & r->mask;
    if (off + 4 <= r->capacity) {
        memcpy(&v, r->data + off, 4);
    } else {
        kx_ring_read(r, pos, &v, 4);
    }
    return v; /* little-endian hosts only (checked at import) */
}

/* ---- process liveness ------------------------------------------------------------------- */

/* The start time of a process (field 22 of /proc/PID/stat, clock ticks after boot), 0 when
 * the process does not exist or is a zombie. Reading it twice tells a live process from a
 * dead one whose pid was reused. */
static inline uint64_t kx_process_start_time(uint32_t pid) {
    char path[64], buf[1024];
    FILE *f;
    size_t n;
    char *p;
    int field;
    unsigned long long start = 0;
    snprintf(path, sizeof path, "/proc/%u/stat", pid);
    f = fopen(path, "re");
    if (f == NULL) {
        /* No procfs: fall back to kill(pid, 0), which cannot see zombies or reuse. */
        if (errno == ENOENT && kill((pid_t)pid, 0) == 0) return 1;
        return 0;
    }
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    if (p == NULL || p[1] != ' ') return 0;
    p += 2;
    if (*p == 'Z' || *p == 'X' || *p == 'x') return 0; /* dead, waiting to be reaped */
    for (field = 3; field < 22 && *p; p++) {
        if (*p == ' ') field++;
    }
    if (sscanf(p, "%llu", &start) != 1) return 0;
    return start ? (uint64_t)start : 1;
}

static inline int kx_slot_alive(const kx_ring_slot *s) {
    uint64_t t = kx_process_start_time(KX_LOAD_RLX(&s->pid));
    return t != 0 && (s->start_time == 0 || t == 1 || t == s->start_time);
}

/* ---- futex -------------------------------------------------------------------------------- */

static inline void kx_futex_wake_all(uint32_t *word, int shared) {
    syscall(SYS_futex, word, shared ? FUTEX_WAKE : FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* Sleeps while *word == expected, at most timeout_ns. Returns early on a wake or a signal. */
static inline void kx_futex_wait(uint32_t *word, uint32_t expected, int64_t timeout_ns,
                                 int shared) {
    struct timespec ts;
    if (timeout_ns < 0) timeout_ns = 0;
    ts.tv_sec = (time_t)(timeout_ns / 1000000000);
    ts.tv_nsec = (long)(timeout_ns % 1000000000);
    syscall(SYS_futex, word, shared ? FUTEX_WAIT : FUTEX_WAIT_PRIVATE, expected, &ts, NULL, 0);
}

static inline int64_t kx_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Wakes the sleepers on one side. In a shared ring the fence orders the preceding store of
 * publish (or of a cursor) before the load of the waiter count; a sleeper increments the
 * count and then re-checks the condition (both sequentially consistent), so one of the two
 * always sees the other. In-process, both sides run under the GIL, which orders them. */
static inline void kx_ring_notify(kx_ring *r, uint32_t *seq, uint32_t *waiters) {
    if (r->shared) __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (KX_LOAD_RLX(waiters) != 0) {
        __atomic_fetch_add(seq, 1, __ATOMIC_SEQ_CST);
        kx_futex_wake_all(seq, r->shared);
    }
}

/* ---- the floor of an overwrite ring ------------------------------------------------------- */

/* In an overwrite ring the floor (the oldest frame kept) and the frames before it move
 * together; one producer at a time writes them (the one whose turn it is to publish), under
 * a sequence lock so that readers in other processes see a consistent pair. */
/* A writer holds the lock for four stores. One that holds it this long died inside it (or
 * a process wrote an odd value into the segment): the reader then releases it on the dead
 * writer's behalf, as kx_ring_repair_dead_claim does, instead of spinning for ever. The pair
 * it then reads may be half updated; every position read from it is checked again before it
 * is followed (kx_ring_next_frame), so the worst outcome is a RingError, never a bad read. */
#define KX_FLOOR_LOCK_STALE_NS 50000000LL

static inline void kx_ring_floor_read(const kx_ring *r, uint64_t *floor, uint64_t *frames) {
    uint32_t spins = 0, held_seq = 0;
    int64_t held_since = 0;
    for (;;) {
        uint32_t s1 = KX_LOAD_ACQ(&r->h->floor_seq);
        uint64_t f = KX_LOAD_RLX(&r->h->floor), n = KX_LOAD_RLX(&r->h->floor_frames);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if ((s1 & 1u) == 0 && KX_LOAD_RLX(&r->h->floor_seq) == s1) {
            *floor = f;
            *frames = n;
            return;
        }
        if ((s1 & 1u) && (++spins & 1023u) == 0) {
            int64_t now = kx_now_ns();
            if (held_since == 0 || s1 != held_seq) {
                held_seq = s1;
                held_since = now;
            } else if (now - held_since > KX_FLOOR_LOCK_STALE_NS) {
                uint32_t expected = s1;
                __atomic_compare_exchange_n(&r->h->floor_seq, &expected, s1 + 1, 0,
                                            __ATOMIC_SEQ_CST, __ATOMIC_RELAXED);
            }
        }
        KX_PAUSE();
    }
}

/* Moves the floor. The release fence orders the new floor before every byte the caller
 * writes next, so a consumer that copied overwritten bytes and then (after an acquire fence)
 * reads the floor sees that it was overtaken. */
static inline void kx_ring_floor_write(kx_ring *r, uint64_t floor, uint64_t frames) {
    uint32_t s = KX_LOAD_RLX(&r->h->floor_seq);
    KX_STORE_RLX(&r->h->floor_seq, s + 1);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    KX_STORE_RLX(&r->h->floor_frames, frames);
    KX_STORE_RLX(&r->h->floor, floor);
    KX_STORE_REL(&r->h->floor_seq, s + 2);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* Overwrite ring: drops the oldest frames until [c, c + need) fits. Only the producer whose
 * turn it is to publish calls this (publish == c), so every byte walked is published and no
 * one else moves the floor. Returns 0, or -1 if a record on the way is malformed. */
static inline int kx_ring_make_room(kx_ring *r, uint64_t c, uint64_t need) {
    uint64_t f, frames;
    kx_ring_floor_read(r, &f, &frames);
    if (c + need - f <= r->capacity) return 0;
    while (c + need - f > r->capacity) {
        uint32_t word, len;
        if (f >= c) return -1;
        word = kx_ring_ld32(r, f);
        if (word == KX_SKIP_MAGIC) {
            len = kx_ring_ld32(r, f + 4);
        } else {
            len = kx_ring_ld32(r, f + 12);
            if (word != KX_FRAME_MAGIC) return -1;
            frames++;
        }
        if (len < 8 || (len & 7) != 0 || len > c - f) return -1;
        f += len;
    }
    kx_ring_floor_write(r, f, frames);
    r->gate_cache = f;
    return 0;
}

/* ---- consumers ---------------------------------------------------------------------------- */

/* The lowest position any active consumer still needs (the floor when none is active), and
 * the frames consumed up to it. Producers must not write at or beyond gate + capacity. */
static inline uint64_t kx_ring_gate(kx_ring *r, uint64_t *frames_out) {
    uint32_t i, n = r->max_consumers;
    uint64_t gate = UINT64_MAX, frames = 0;
    if (r->overwrite) { /* consumers never hold producers back */
        kx_ring_floor_read(r, &gate, &frames);
        if (frames_out) *frames_out = frames;
        return gate;
    }
    if (r->queue) { /* consumers share one position: what they have taken */
        gate = KX_LOAD_ACQ(&r->h->take);
        if (frames_out) *frames_out = KX_LOAD_RLX(&r->h->frames_done);
        return gate;
    }
    for (i = 0; i < n; i++) {
        kx_ring_slot *s = kx_ring_consumer_slot(r, i);
        uint32_t st = KX_LOAD_ACQ(&s->state);
        if (st == KX_SLOT_ACTIVE || st == KX_SLOT_REAPING) {
            uint64_t pos = KX_LOAD_ACQ(&s->pos);
            if (pos < gate) {
                gate = pos;
                frames = KX_LOAD_RLX(&s->frames);
            }
        }
    }
    if (gate == UINT64_MAX) {
        gate = KX_LOAD_ACQ(&r->h->floor);
        frames = KX_LOAD_RLX(&r->h->floor_frames);
    }
    if (frames_out) *frames_out = frames;
    return gate;
}

/* Looks at the record at `cursor` (below `publish`). Skip records are stepped over. On OK,
 * *at is where the frame starts and *length its length; the caller has not moved. */
static inline kx_ring_status kx_ring_next_frame(const kx_ring *r, uint64_t *cursor,
                                                uint64_t publish, uint64_t *length) {
    uint64_t cur = *cursor;
    for (;;) {
        uint64_t avail = publish - cur;
        uint32_t word, len;
        if (cur == publish) {
            *cursor = cur;
            return KX_RING_EMPTY;
        }
        if (avail < 8 || avail > r->capacity) return KX_RING_CORRUPT;
        word = kx_ring_ld32(r, cur);
        len = kx_ring_ld32(r, cur + (word == KX_SKIP_MAGIC ? 4 : 12));
        if (word == KX_SKIP_MAGIC) {
            if (len < 8 || (len & 7) != 0 || len > avail) return KX_RING_CORRUPT;
            cur += len;
            continue;
        }
        if (word != KX_FRAME_MAGIC || avail < 56 || len < 56 || (len & 7) != 0 || len > avail)
            return KX_RING_CORRUPT;
        *cursor = cur;
        *length = len;
        return KX_RING_OK;
    }
}

/* Walks frames from *cursor towards publish, stopping before max_messages frames or before a
 * frame that would take the total past max_bytes (the first frame is always taken). Returns
 * the frames counted; *bytes is the span from the first frame (after *cursor is moved past
 * leading skip records) to the end of the last, which may contain skip records. */
static inline kx_ring_status kx_ring_span(const kx_ring *r, uint64_t *cursor, uint64_t publish,
                                          uint64_t max_messages, uint64_t max_bytes,
                                          uint64_t *count_out, uint64_t *bytes_out,
                                          int *has_skips) {
    uint64_t start, cur, count = 0, len;
    kx_ring_status st = kx_ring_next_frame(r, cursor, publish, &len);
    *count_out = 0;
    *bytes_out = 0;
    *has_skips = 0;
    if (st != KX_RING_OK) return st;
    start = *cursor;
    cur = start;
    while (count < max_messages) {
        uint64_t at = cur;
        st = kx_ring_next_frame(r, &at, publish, &len);
        if (st == KX_RING_EMPTY) break;
        if (st != KX_RING_OK) {
            if (count) break; /* hand over what was good; the next call reports it */
            return st;
        }
        if (count && (at + len - start) > max_bytes) break;
        if (at != cur) *has_skips = 1;
        cur = at + len;
        count++;
    }
    *count_out = count;
    *bytes_out = cur - start;
    return KX_RING_OK;
}

/* Copies the span [start, start + n) to dst, leaving out skip records. Returns bytes written. */
static inline uint64_t kx_ring_gather(const kx_ring *r, uint64_t start, uint64_t n,
                                      unsigned char *dst, int has_skips) {
    uint64_t cur = start, end = start + n, out = 0, len;
    if (!has_skips) {
        kx_ring_read(r, start, dst, n);
        return n;
    }
    while (cur < end) {
        uint32_t word = kx_ring_ld32(r, cur);
        /* The lengths were checked by kx_ring_span, but in an overwrite ring a producer may
         * have overwritten them since (the caller then discards the copy): stay in bounds. */
        len = kx_ring_ld32(r, cur + (word == KX_SKIP_MAGIC ? 4 : 12));
        if (len < 8 || len > end - cur) break;
        if (word == KX_SKIP_MAGIC) {
            cur += len;
            continue;
        }
        kx_ring_read(r, cur, dst + out, len);
        out += len;
        cur += len;
    }
    return out;
}

/* ---- producers ------------------------------------------------------------------------------ */

/* Room for `need` more bytes at claim position c? Refreshes the cached gate only when the
 * cached one says no. */
static inline int kx_ring_has_room(kx_ring *r, uint64_t c, uint64_t need) {
    if (c + need - r->gate_cache <= r->capacity) return 1;
    r->gate_cache = kx_ring_gate(r, NULL);
    return c + need - r->gate_cache <= r->capacity;
}

/* Claims `need` bytes. Single producer: the claim is private. Several: a CAS on claim, with
 * the range announced in the producer's slot first, so that if this process dies before
 * publishing, the others can find the range and skip it. Returns 0 when there is no room.
 * An overwrite ring always has room: the claim succeeds, and kx_ring_ready_to_write says
 * whether the oldest frames must be dropped first. */
static inline int kx_ring_claim(kx_ring *r, kx_ring_slot *me, uint64_t need, uint64_t *start) {
    uint64_t c = KX_LOAD_RLX(&r->h->claim);
    if (r->max_producers == 1) {
        if (!r->overwrite && !kx_ring_has_room(r, c, need)) return 0;
        KX_STORE_RLX(&r->h->claim, c + need);
        *start = c;
        return 1;
    }
    for (;;) {
        if (!r->overwrite && !kx_ring_has_room(r, c, need)) return 0;
        KX_STORE_RLX(&me->pos, c);
        __atomic_store_n(&me->end, c + need, __ATOMIC_SEQ_CST);
        if (__atomic_compare_exchange_n(&r->h->claim, &c, c + need, 0, __ATOMIC_SEQ_CST,
                                        __ATOMIC_RELAXED)) {
            *start = c;
            return 1;
        }
    }
}

/* An overwrite ring: may the claim [start, start + need) be written now (1), or must the
 * producer first wait for its turn to publish and drop the oldest frames (0)? Other rings
 * checked their room when claiming: always 1. */
static inline int kx_ring_ready_to_write(kx_ring *r, uint64_t start, uint64_t need) {
    return !r->overwrite || kx_ring_has_room(r, start, need);
}

static inline void kx_ring_notify_data(kx_ring *r) {
    kx_ring_notify(r, &r->h->data_seq, &r->h->data_waiters);
    if (r->bell_seq != NULL) kx_ring_notify(r, r->bell_seq, r->bell_waiters);
}

/* Publishes a claim [start, start + need) holding `frames` frames, once every earlier claim
 * is published. Returns 1, or 0 if it must wait (several producers only). */
static inline int kx_ring_try_publish(kx_ring *r, kx_ring_slot *me, uint64_t start,
                                      uint64_t need, uint64_t frames) {
    if (KX_LOAD_ACQ(&r->h->publish) != start) return 0;
    KX_STORE_RLX(&r->h->frames_published, KX_LOAD_RLX(&r->h->frames_published) + frames);
    KX_STORE_REL(&r->h->publish, start + need);
    if (me != NULL) KX_STORE_REL(&me->end, 0);
    kx_ring_notify_data(r);
    return 1;
}

/* Called by a producer whose turn to publish has not come for a while: if the claim that
 * `publish` waits for belongs to a producer that died, covers it with a skip record and
 * publishes past it. Returns 1 if it repaired something. */
static inline int kx_ring_repair_dead_claim(kx_ring *r) {
    uint32_t i, n = r->max_producers;
    uint64_t p = KX_LOAD_ACQ(&r->h->publish);
    kx_ring_slot *dead = NULL;
    for (i = 0; i < n; i++) {
        kx_ring_slot *s = kx_ring_producer_slot(r, i);
        if (KX_LOAD_ACQ(&s->state) != KX_SLOT_ACTIVE) continue;
        if (KX_LOAD_ACQ(&s->end) == 0 || KX_LOAD_RLX(&s->pos) != p) continue;
        if (kx_slot_alive(s)) return 0; /* a live owner will publish */
        dead = s;
    }
    if (dead == NULL) return 0;
    {
        uint32_t expected = KX_SLOT_ACTIVE;
        uint64_t end = KX_LOAD_RLX(&dead->end);
        uint32_t rec[2];
        if (end <= p || end - p > r->capacity) return 0;
        if (!__atomic_compare_exchange_n(&dead->state, &expected, KX_SLOT_REAPING, 0,
                                         __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
            return 0;
        if (r->overwrite) {
            /* The dead producer may have died inside the floor's sequence lock, and it may
             * not have made room yet: the skip record's 8 bytes need room like any write. */
            uint32_t fs = KX_LOAD_ACQ(&r->h->floor_seq);
            if (fs & 1u) KX_STORE_REL(&r->h->floor_seq, fs + 1);
            if (kx_ring_make_room(r, p, 8) != 0) return 0;
        }
        rec[0] = KX_SKIP_MAGIC;
        rec[1] = (uint32_t)(end - p);
        kx_ring_write(r, p, rec, 8);
        __atomic_fetch_add(&r->h->producers_lost, 1, __ATOMIC_RELAXED);
        KX_STORE_REL(&dead->end, 0);
        KX_STORE_REL(&r->h->publish, end);
        KX_STORE_REL(&dead->state, KX_SLOT_FREE);
        kx_ring_notify_data(r);
        return 1;
    }
}


/* ---- queue rings: consumers share one read position ------------------------------------ */

/* A queue ring hands each frame to one consumer. A consumer reads `take` and `publish`,
 * walks the frames in between, copies them out, and only then moves `take` past them with a
 * compare-and-swap. Producers are gated by `take`, so nothing at or above it is ever
 * overwritten, and `take` only grows: a CAS that succeeds proves that `take` stayed where
 * the consumer read it the whole time, hence that what it walked and copied was intact. A
 * CAS that fails (another consumer took those frames; the copy may be torn) throws the copy
 * away and tries again. There is no step after the CAS, so a consumer that dies or is
 * preempted never holds anything up: a dead consumer loses only what it had taken.
 *
 * kx_ring_take_span walks the frames and reports the span to copy; kx_ring_take_commit is
 * the CAS (returns 1 when the frames are this consumer's). */
static inline kx_ring_status kx_ring_take_span(kx_ring *r, uint64_t max_messages,
                                               uint64_t max_bytes, uint64_t *start,
                                               uint64_t *first, uint64_t *count,
                                               uint64_t *span, int *has_skips) {
    for (;;) {
        uint64_t t = KX_LOAD_ACQ(&r->h->take), p = KX_LOAD_ACQ(&r->h->publish), cur = t;
        kx_ring_status st;
        *start = t;
        if (t == p) return KX_RING_EMPTY;
        st = kx_ring_span(r, &cur, p, max_messages, max_bytes, count, span, has_skips);
        if (st == KX_RING_CORRUPT) {
            if (KX_LOAD_ACQ(&r->h->take) != t) continue; /* overtaken while walking */
            return KX_RING_CORRUPT;
        }
        if (st != KX_RING_OK) { /* only skip records (a dead producer's claim) */
            *count = 0;
            *span = 0;
        }
        *first = cur;
        return KX_RING_OK;
    }
}

static inline int kx_ring_take_commit(kx_ring *r, uint64_t start, uint64_t end, uint64_t frames) {
    uint64_t t = start;
    if (!__atomic_compare_exchange_n(&r->h->take, &t, end, 0, __ATOMIC_SEQ_CST,
                                     __ATOMIC_RELAXED))
        return 0;
    if (frames) {
        __atomic_fetch_add(&r->h->frames_done, frames, __ATOMIC_SEQ_CST);
        if (r->h->max_items)
            __atomic_fetch_add(&r->h->items_free, (int64_t)frames, __ATOMIC_SEQ_CST);
    }
    kx_ring_notify(r, &r->h->space_seq, &r->h->space_waiters);
    return 1;
}

/* Queue rings with an item limit: reserves n items for a producer (0 when fewer are free). */
static inline int kx_ring_reserve_items(kx_ring *r, uint64_t n) {
    int64_t free_now;
    if (!r->h->max_items) return 1;
    free_now = KX_LOAD_ACQ(&r->h->items_free);
    while (free_now >= (int64_t)n) {
        if (__atomic_compare_exchange_n(&r->h->items_free, &free_now, free_now - (int64_t)n, 0,
                                        __ATOMIC_SEQ_CST, __ATOMIC_ACQUIRE))
            return 1;
    }
    return 0;
}

static inline void kx_ring_unreserve_items(kx_ring *r, uint64_t n) {
    if (r->h->max_items) __atomic_fetch_add(&r->h->items_free, (int64_t)n, __ATOMIC_SEQ_CST);
}

#endif /* KX_RING_H */
