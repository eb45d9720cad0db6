/* CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as in RFC 3720.
 *
 * Plain C with no Python dependency, so it can be tested, fuzzed and benchmarked alone.
 * Three implementations, chosen once at run time by kx_crc32c_init():
 *   - x86-64 with SSE 4.2: the crc32 instruction on three interleaved streams, joined with
 *     precomputed "append N zero bytes" operators (the method of Mark Adler's crc32c.c);
 *   - AArch64 with the CRC32 extension: the same layout with __crc32cd;
 *   - anything else: slicing-by-8 tables.
 * All three take and return the finished CRC (pre- and post-inverted), so a running checksum
 * continues with kx_crc32c(previous, more, n), like the `crc32c` Python package.
 */
#ifndef KX_CRC32C_H
#define KX_CRC32C_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define KX_CRC_X86 1
#include <nmmintrin.h>
#elif defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__)) && defined(__linux__)
#define KX_CRC_ARM 1
#include <sys/auxv.h>
#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1 << 7)
#endif
#endif

#define KX_CRC_POLY 0x82F63B78u
/* Block sizes for the three-stream loops: long blocks for big buffers, short ones for the
 * tail, so that buffers from a few hundred bytes up run at the interleaved speed. */
#define KX_CRC_LONG 8192
#define KX_CRC_SHORT 256

enum { KX_CRC_IMPL_TABLE = 0, KX_CRC_IMPL_SSE42 = 1, KX_CRC_IMPL_ARMV8 = 2 };

static uint32_t kx_crc_table[8][256];
static uint32_t kx_crc_long_shift[4][256];
static uint32_t kx_crc_short_shift[4][256];
static int kx_crc_impl = KX_CRC_IMPL_TABLE;

static inline uint64_t kx_load_le64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

/* GF(2) 32x32 matrix helpers for the zero-append operators. */
static uint32_t kx_gf2_times(const uint32_t *mat, uint32_t vec) {
    uint32_t sum = 0;
    while (vec) {
        if (vec & 1) sum ^= *mat;
        vec >>= 1;
        mat++;
    }
    return sum;
}

static void kx_gf2_square(uint32_t *square, const uint32_t *mat) {
    for (int n = 0; n < 32; n++) square[n] = kx_gf2_times(mat, mat[n]);
}

/* Operator that appends len zero bytes (len a power of two) to a raw CRC register. */
static void kx_crc_zeros_op(uint32_t *even, size_t len) {
    uint32_t odd[32];
    uint32_t row = 1;
    odd[0] = KX_CRC_POLY;
    for (int n = 1; n < 32; n++) {
        odd[n] = row;
        row <<= 1;
    }
    kx_gf2_square(even, odd); /* two zero bits */
    kx_gf2_square(odd, even); /* four zero bits */
    do {
        kx_gf2_square(even, odd);
        len >>= 1;
        if (len == 0) return;
        kx_gf2_square(odd, even);
        len >>= 1;
    } while (len);
    for (int n = 0; n < 32; n++) even[n] = odd[n];
}

static void kx_crc_zeros(uint32_t zeros[4][256], size_t len) {
    uint32_t op[32];
    kx_crc_zeros_op(op, len);
    for (uint32_t n = 0; n < 256; n++) {
        zeros[0][n] = kx_gf2_times(op, n);
        zeros[1][n] = kx_gf2_times(op, n << 8);
        zeros[2][n] = kx_gf2_times(op, n << 16);
        zeros[3][n] = kx_gf2_times(op, n << 24);
    }
}

static inline uint32_t kx_crc_shift(uint32_t zeros[4][256], uint32_t crc) {
    return zeros[0][crc & 0xff] ^ zeros[1][(crc >> 8) & 0xff] ^ zeros[2][(crc >> 16) & 0xff] ^
           zeros[3][crc >> 24];
}

/* Portable slicing-by-8: always compiled, used where no instruction exists and by the
 * tests as the reference the hardware paths are checked against. */
static uint32_t kx_crc32c_table(uint32_t crc, const void *buf, size_t len) {
    const unsigned char *p = (const unsigned char *)buf;
    uint32_t c = ~crc;
    while (len && ((uintptr_t)p & 7)) {
        c = kx_crc_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
        len--;
    }
    while (len >= 8) {
        uint64_t w = kx_load_le64(p) ^ c;
        c = kx_crc_table[7][w & 0xff] ^ kx_crc_table[6][(w >> 8) & 0xff] ^
            kx_crc_table[5][(w >> 16) & 0xff] ^ kx_crc_table[4][(w >> 24) & 0xff] ^
            kx_crc_table[3][(w >> 32) & 0xff] ^ kx_crc_table[2][(w >> 40) & 0xff] ^
            kx_crc_table[1][(w >> 48) & 0xff] ^ kx_crc_table[0][w >> 56];
        p += 8;
        len -= 8;
    }
    while (len--) c = kx_crc_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    return ~c;
}

/* The interleaved loop, written once and instantiated per instruction set. */
#define KX_CRC_HW_BODY(CRC8, CRC64)                                                         \
    const unsigned char *next = (const unsigned char *)buf;                                  \
    uint64_t crc0 = (uint32_t)~crc, crc1, crc2;                                              \
    while (len && ((uintptr_t)next & 7)) {                                                   \
        crc0 = CRC8((uint32_t)crc0, *next++);                                                \
        len--;                                                                               \
    }                                                                                        \
    while (len >= 3 * KX_CRC_LONG) {                                                         \
        const unsigned char *end = next + KX_CRC_LONG;                                       \
        crc1 = 0;                                                                            \
        crc2 = 0;                                                                            \
        do {                                                                                 \
            crc0 = CRC64(crc0, kx_load_le64(next));                                          \
            crc1 = CRC64(crc1, kx_load_le64(next + KX_CRC_LONG));                            \
            crc2 = CRC64(crc2, kx_load_le64(next + 2 * KX_CRC_LONG));                        \
            next += 8;                                                                       \
        } while (next < end);                                                                \
        crc0 = kx_crc_shift(kx_crc_long_shift, (uint32_t)crc0) ^ crc1;                       \
        crc0 = kx_crc_shift(kx_crc_long_shift, (uint32_t)crc0) ^ crc2;                       \
        next += 2 * KX_CRC_LONG;                                                             \
        len -= 3 * KX_CRC_LONG;                                                              \
    }                                                                                        \
    while (len >= 3 * KX_CRC_SHORT) {                                                        \
        const unsigned char *end = next + KX_CRC_SHORT;                                      \
        crc1 = 0;                                                                            \
        crc2 = 0;                                                                            \
        do {                                                                                 \
            crc0 = CRC64(crc0, kx_load_le64(next));                                          \
            crc1 = CRC64(crc1, kx_load_le64(next + KX_CRC_SHORT));                           \
            crc2 = CRC64(crc2, kx_load_le64(next + 2 * KX_CRC_SHORT));                       \
            next += 8;                                                                       \
        } while (next < end);                                                                \
        crc0 = kx_crc_shift(kx_crc_short_shift, (uint32_t)crc0) ^ crc1;                      \
        crc0 = kx_crc_shift(kx_crc_short_shift, (uint32_t)crc0) ^ crc2;                      \
        next += 2 * KX_CRC_SHORT;                                                            \
        len -= 3 * KX_CRC_SHORT;                                                             \
    }                                                                                        \
    while (len >= 8) {                                                                       \
        crc0 = CRC64(crc0, kx_load_le64(next));                                              \
        next += 8;                                                                           \
        len -= 8;                                                                            \
    }                                                                                        \
    while (len--) crc0 = CRC8((uint32_t)crc0, *next++);                                      \
    return ~(uint32_t)crc0;

#ifdef KX_CRC_X86
__attribute__((target("sse4.2"))) static uint32_t kx_crc32c_sse42(uint32_t crc, const void *buf,
                                                                   size_t len) {
#define KX_X86_CRC8(c, b) _mm_crc32_u8((c), (b))
#define KX_X86_CRC64(c, w) _mm_crc32_u64((c), (w))
    KX_CRC_HW_BODY(KX_X86_CRC8, KX_X86_CRC64)
#undef KX_X86_CRC8
#undef KX_X86_CRC64
}
#endif

#ifdef KX_CRC_ARM
__attribute__((target("+crc"))) static uint32_t kx_crc32c_armv8(uint32_t crc, const void *buf,
                                                                 size_t len) {
#define KX_ARM_CRC8(c, b) __builtin_aarch64_crc32cb((c), (b))
#define KX_ARM_CRC64(c, w) __builtin_aarch64_crc32cx((uint32_t)(c), (w))
    KX_CRC_HW_BODY(KX_ARM_CRC8, KX_ARM_CRC64)
#undef KX_ARM_CRC8
#undef KX_ARM_CRC64
}
#endif

/* Builds the tables and picks the implementation; call once before any other function. */
static void kx_crc32c_init(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ KX_CRC_POLY : c >> 1;
        kx_crc_table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = kx_crc_table[0][n];
        for (int k = 1; k < 8; k++) {
            c = kx_crc_table[0][c & 0xff] ^ (c >> 8);
            kx_crc_table[k][n] = c;
        }
    }
    kx_crc_zeros(kx_crc_long_shift, KX_CRC_LONG);
    kx_crc_zeros(kx_crc_short_shift, KX_CRC_SHORT);
#if defined(KX_CRC_X86)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2")) kx_crc_impl = KX_CRC_IMPL_SSE42;
#elif defined(KX_CRC_ARM)
    if (getauxval(AT_HWCAP) & HWCAP_CRC32) kx_crc_impl = KX_CRC_IMPL_ARMV8;
#endif
}

static inline uint32_t kx_crc32c(uint32_t crc, const void *buf, size_t len) {
#if defined(KX_CRC_X86)
    if (kx_crc_impl == KX_CRC_IMPL_SSE42) return kx_crc32c_sse42(crc, buf, len);
#elif defined(KX_CRC_ARM)
    if (kx_crc_impl == KX_CRC_IMPL_ARMV8) return kx_crc32c_armv8(crc, buf, len);
#endif
    return kx_crc32c_table(crc, buf, len);
}

static inline const char *kx_crc32c_impl_name(void) {
    switch (kx_crc_impl) {
        case KX_CRC_IMPL_SSE42: return "sse4.2";
        case KX_CRC_IMPL_ARMV8: return "armv8";
        default: return "table";
    }
}

#endif /* KX_CRC32C_H */
