/* The bulk generator's hot loop: frames written from prepared columns, payload bytes taken
 * from a seeded pool at counter-based offsets, and every frame's CRC32C.
 *
 * Plain C with no Python dependency. The layout is kx_frame.h's; a frame written here is
 * byte for byte what the codec's encoder writes for the same fields.
 *
 * Why the checksums are computed three frames at a time: one frame's CRC is a chain of
 * dependent crc32 instructions (3 cycles each), so a lone 120-byte frame waits on latency;
 * three frames' chains interleaved keep the unit busy every cycle (the same reason
 * kx_crc32c_sse42 runs three streams over one long buffer).
 */
#ifndef KX_GENERATE_H
#define KX_GENERATE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kx_frame.h"

/* Frames at most this long have their checksums interleaved; longer ones go to kx_crc32c,
 * which interleaves (or folds) within the frame. */
#define KX_GEN_INTERLEAVE_MAX 1024

typedef struct {
    unsigned char *out;          /* the frames, end to end */
    const int64_t *offsets;      /* frame i starts at out + offsets[i] */
    const uint64_t *sequence;
    const uint32_t *partition;
    const uint64_t *producer;
    const int64_t *timestamp;
    const uint32_t *payload_length; /* NULL: every payload is fixed_payload bytes */
    uint32_t fixed_payload;
    const uint64_t *key_index;   /* NULL: no key; else the key is this value, 8 bytes big-endian */
    const unsigned char *pool;   /* payload bytes are pool[start, start + length) */
    uint64_t pool_length;        /* at least the longest payload; 8 more bytes readable */
    uint64_t seed;               /* mixed with the message's index into its pool start */
    uint64_t first_index;        /* index of message 0 in the whole generated stream */
    uint32_t *checksum;          /* out: each frame's CRC */
} kx_gen_args;

/* splitmix64's finaliser: a bijection that scatters consecutive counters. */
static inline uint64_t kx_gen_mix(uint64_t x) {
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* Where message `index`'s payload of `length` bytes starts in the pool: a value from 0 to
 * pool_length - length, drawn by the top bits of a 64 x 64 -> 128 multiply (no division). */
static inline uint64_t kx_gen_pool_start(uint64_t seed, uint64_t index, uint64_t length,
                                         uint64_t pool_length) {
    uint64_t span = pool_length - length + 1;
    uint64_t draw = kx_gen_mix(seed + (index + 1) * 0x9E3779B97F4A7C15ull);
    return (uint64_t)(((unsigned __int128)draw * span) >> 64);
}

/* Checks that offsets leave every frame of [0, n) exactly the room its sections take
 * (56 + key + payload, aligned to 8) and finds the longest payload. Returns the index of
 * the first frame that does not fit, or -1. */
static ptrdiff_t kx_gen_check(const kx_gen_args *a, size_t n, uint64_t *longest) {
    uint64_t key_length = a->key_index ? 8u : 0u, most = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t payload = a->payload_length ? a->payload_length[i] : a->fixed_payload;
        int64_t length = a->offsets[i + 1] - a->offsets[i];
        if (length < 0 || (uint64_t)length != kx_align8(KX_HEADER_SIZE + key_length + payload))
            return (ptrdiff_t)i;
        if (payload > most) most = payload;
    }
    *longest = most;
    return -1;
}

/* Writes frame i (CRC left zero); returns its length. The fixed header goes out as seven
 * 8-byte words and the payload as whole words, its last one masked so that the padding is
 * zero: a frame is about 15 stores, where kx_frame_write_header's byte fields, a memset
 * and a memcpy call cost twice as long for 64-byte payloads. The pool has 8 bytes of slack
 * past pool_length, so reading a whole last word stays inside it. */
static inline uint32_t kx_gen_write_one(const kx_gen_args *a, size_t i) {
    unsigned char *p = a->out + a->offsets[i];
    uint32_t frame_length = (uint32_t)(a->offsets[i + 1] - a->offsets[i]);
    uint64_t payload = a->payload_length ? a->payload_length[i] : a->fixed_payload;
    uint64_t key_length = a->key_index ? 8u : 0u;
    kx_st64(p, (uint64_t)KX_MAGIC_0 | (uint64_t)KX_MAGIC_1 << 8 | (uint64_t)KX_MAGIC_2 << 16 |
                   (uint64_t)KX_MAGIC_3 << 24);
    kx_st64(p + 8, (uint64_t)KX_VERSION | (uint64_t)(key_length ? KX_FLAG_KEY : 0) << 8 |
                       (uint64_t)frame_length << 32);
    kx_st64(p + KX_OFF_PRODUCER, a->producer[i]);
    kx_st64(p + KX_OFF_SEQUENCE, a->sequence[i]);
    kx_st64(p + KX_OFF_TIMESTAMP, (uint64_t)a->timestamp[i]);
    kx_st64(p + KX_OFF_PARTITION, (uint64_t)a->partition[i] | key_length << 32);
    kx_st64(p + KX_OFF_HEADERS_LENGTH, payload << 32);
    unsigned char *q = p + KX_HEADER_SIZE;
    if (key_length) {
        uint64_t k = a->key_index[i]; /* big-endian, so keys sort like their indexes */
        for (int b = 7; b >= 0; b--, k >>= 8) q[b] = (unsigned char)k;
        q += 8;
    }
    const unsigned char *src =
        a->pool + kx_gen_pool_start(a->seed, a->first_index + i, payload, a->pool_length);
    uint64_t words = payload / 8, w;
    for (w = 0; w < words; w++) memcpy(q + 8 * w, src + 8 * w, 8);
    unsigned tail = (unsigned)(payload & 7);
    if (tail) {
        kx_st64(q + 8 * w, kx_load_le64(src + 8 * w) & ((1ull << (8 * tail)) - 1));
    }
    return frame_length;
}

#ifdef KX_CRC_X86
/* Raw (not inverted) crc32 chains of three buffers of whole 8-byte words, interleaved over
 * their common length; the caller finishes the longer ones. */
__attribute__((target("sse4.2"))) static void kx_gen_crc3(const unsigned char *p0,
                                                         const unsigned char *p1,
                                                         const unsigned char *p2, size_t words,
                                                         uint64_t *c0, uint64_t *c1,
                                                         uint64_t *c2) {
    uint64_t a = *c0, b = *c1, c = *c2;
    for (size_t w = 0; w < words; w++) {
        a = _mm_crc32_u64(a, kx_load_le64(p0 + 8 * w));
        b = _mm_crc32_u64(b, kx_load_le64(p1 + 8 * w));
        c = _mm_crc32_u64(c, kx_load_le64(p2 + 8 * w));
    }
    *c0 = a;
    *c1 = b;
    *c2 = c;
}
#endif

static inline void kx_gen_seal_one(const kx_gen_args *a, size_t i) {
    a->checksum[i] = kx_frame_seal(a->out + a->offsets[i],
                                   (uint32_t)(a->offsets[i + 1] - a->offsets[i]));
}

/* Writes and seals frames [begin, end). Safe to run on disjoint ranges from several threads
 * at once (nothing shared is written). */
static void kx_gen_frames(const kx_gen_args *args, size_t begin, size_t end) {
    /* A local copy: the frames are written through unsigned char pointers, which may alias
     * anything whose address is known outside this function, so reading the arguments
     * through `args` would reload every field after every store (15 ns a 64 B frame in
     * place of 11). */
    const kx_gen_args copy = *args;
    const kx_gen_args *a = &copy;
    size_t i = begin;
#ifdef KX_CRC_X86
    if (kx_crc_impl != KX_CRC_IMPL_TABLE) {
        for (; i + 3 <= end; i += 3) {
            uint32_t l0 = kx_gen_write_one(a, i);
            uint32_t l1 = kx_gen_write_one(a, i + 1);
            uint32_t l2 = kx_gen_write_one(a, i + 2);
            if (l0 > KX_GEN_INTERLEAVE_MAX || l1 > KX_GEN_INTERLEAVE_MAX ||
                l2 > KX_GEN_INTERLEAVE_MAX) {
                kx_gen_seal_one(a, i);
                kx_gen_seal_one(a, i + 1);
                kx_gen_seal_one(a, i + 2);
                continue;
            }
            unsigned char *f[3] = {a->out + a->offsets[i], a->out + a->offsets[i + 1],
                                   a->out + a->offsets[i + 2]};
            uint32_t words[3] = {(l0 - 8) / 8, (l1 - 8) / 8, (l2 - 8) / 8};
            uint32_t common = words[0];
            if (words[1] < common) common = words[1];
            if (words[2] < common) common = words[2];
            uint64_t c[3] = {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu};
            kx_gen_crc3(f[0] + 8, f[1] + 8, f[2] + 8, common, &c[0], &c[1], &c[2]);
            for (int k = 0; k < 3; k++) {
                uint32_t crc = ~(uint32_t)c[k];
                if (words[k] > common)
                    crc = kx_crc32c(crc, f[k] + 8 + 8 * (size_t)common,
                                    8 * (size_t)(words[k] - common));
                kx_st32(f[k] + KX_OFF_CRC, crc);
                a->checksum[i + k] = crc;
            }
        }
    }
#endif
    for (; i < end; i++) {
        kx_gen_write_one(a, i);
        kx_gen_seal_one(a, i);
    }
}

#endif /* KX_GENERATE_H */
