/* CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as in RFC 3720.
 *
 * Plain C with no Python dependency, so it can be tested, fuzzed and benchmarked alone.
 * Implementations, chosen once at run time by kx_crc32c_init():
 *   - x86-64 with SSE 4.2: the crc32 instruction on three interleaved streams, joined with
 *     precomputed "append N zero bytes" operators (the method of Mark Adler's crc32c.c);
 *   - x86-64 with AVX-512 and VPCLMULQDQ, for buffers of KX_CRC_FOLD_MIN bytes and more:
 *     carry-less multiplication folding of four 512-bit accumulators (256 bytes a step), the
 *     method of Intel's "Fast CRC Computation Using PCLMULQDQ" (Gopal et al., 2009), finished
 *     with the crc32 instruction; shorter buffers keep the three-stream loop;
 *   - AArch64 with the CRC32 extension: the same layout with __crc32cd;
 *   - anything else: slicing-by-8 tables.
 * All of them take and return the finished CRC (pre- and post-inverted), so a running checksum
 * continues with kx_crc32c(previous, more, n), like the `crc32c` Python package.
 */
#ifndef KX_CRC32C_H
#define KX_CRC32C_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define KX_CRC_X86 1
#include <immintrin.h>
/* Compilers that know the vpclmulqdq target and __builtin_cpu_supports name (GCC 8, LLVM 8;
 * Apple's clang numbers its releases differently). Older ones build the crc32 loop only. */
#if (defined(__clang__) && !defined(__apple_build_version__) && __clang_major__ >= 8) ||    \
    (defined(__clang__) && defined(__apple_build_version__) && __clang_major__ >= 11) ||    \
    (!defined(__clang__) && __GNUC__ >= 8)
#define KX_CRC_X86_FOLD 1
#include <cpuid.h>
#endif
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
/* Shortest buffer handed to the folding path, which needs one full step of 256 bytes. From
 * there it is already twice as fast as the crc32 loop (Zen 5: 11.6 ns against 23 ns at 256
 * bytes); shorter buffers, such as the codec's frames, keep the crc32 loop. */
#define KX_CRC_FOLD_MIN 256

enum {
    KX_CRC_IMPL_TABLE = 0,
    KX_CRC_IMPL_SSE42 = 1,
    KX_CRC_IMPL_ARMV8 = 2,
    KX_CRC_IMPL_AVX512 = 3
};

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

#ifdef KX_CRC_X86_FOLD
/* Folding constants, filled by kx_crc32c_init(). Each pair moves a 128-bit lane of the
 * message D bits further on: the lane's low quadword (the higher powers of x) is multiplied by
 * x^(D+32) mod P and its high quadword by x^(D-32) mod P, both bit-reflected and shifted left
 * by one so that the reflected 64x64 product lands in place (33-bit constants). */
static uint64_t kx_crc_fold_2048[2]; /* one step of the main loop: 4 x 512 bits */
static uint64_t kx_crc_fold_1536[2]; /* joining the accumulators and the last 64-byte steps */
static uint64_t kx_crc_fold_1024[2];
static uint64_t kx_crc_fold_512[2];
static uint64_t kx_crc_fold_lanes[8]; /* lanes 0, 1, 2 of a 512-bit value onto lane 3 */
static uint64_t kx_crc_fold_128[2];   /* 16-byte steps */

/* x^n mod P as a reflected CRC register (bit 31 is x^0): multiply x^0 by x, n times. */
static uint32_t kx_crc_xpow_mod(unsigned n) {
    uint32_t r = 0x80000000u;
    while (n--) r = (r & 1) ? (r >> 1) ^ KX_CRC_POLY : r >> 1;
    return r;
}

static void kx_crc_fold_pair(uint64_t pair[2], unsigned bits) {
    pair[0] = (uint64_t)kx_crc_xpow_mod(bits + 32) << 1;
    pair[1] = (uint64_t)kx_crc_xpow_mod(bits - 32) << 1;
}

#define KX_CRC_FOLD_TARGET                                                                   \
    __attribute__((target("avx512f,avx512bw,avx512vl,vpclmulqdq,sse4.2,pclmul")))

/* acc moved on by the distance of k, xor data, per 128-bit lane. */
KX_CRC_FOLD_TARGET static inline __m512i kx_crc_fold_zmm(__m512i acc, __m512i k, __m512i data) {
    return _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(acc, k, 0x00),
                                     _mm512_clmulepi64_epi128(acc, k, 0x11), data, 0x96);
}

KX_CRC_FOLD_TARGET static inline __m512i kx_crc_fold_zmm2(__m512i acc, __m512i k) {
    return _mm512_xor_si512(_mm512_clmulepi64_epi128(acc, k, 0x00),
                            _mm512_clmulepi64_epi128(acc, k, 0x11));
}

KX_CRC_FOLD_TARGET static inline __m512i kx_crc_k512(const uint64_t pair[2]) {
    return _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)pair));
}

/* For len >= 256 (shorter buffers go to the three-stream loop). Four accumulators cover 256
 * consecutive bytes; each step folds them 2048 bits forward onto the next 256. They are then
 * folded onto the last one, further 64-byte blocks folded in, the four lanes of that folded
 * onto one, further 16-byte blocks folded in, and the last 128 bits and the tail of under 16
 * bytes finished with the crc32 instruction. On Zen 5 this runs at about 16 bytes a cycle,
 * twice the crc32 loop, bound by VPCLMULQDQ issuing every other cycle (more accumulators do
 * not help), and unaligned starts cost nothing measurable, so the loads are unaligned. */
KX_CRC_FOLD_TARGET static uint32_t kx_crc32c_avx512(uint32_t crc, const void *buf, size_t len) {
    const unsigned char *p = (const unsigned char *)buf;
    if (len < 256) return kx_crc32c_sse42(crc, buf, len);
    /* The running CRC enters by xor into the first four bytes, as the crc32 instruction does. */
    __m512i x0 = _mm512_xor_si512(_mm512_loadu_si512((const void *)p),
                                  _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                                   (int)~crc));
    __m512i x1 = _mm512_loadu_si512((const void *)(p + 64));
    __m512i x2 = _mm512_loadu_si512((const void *)(p + 128));
    __m512i x3 = _mm512_loadu_si512((const void *)(p + 192));
    p += 256;
    len -= 256;
    const __m512i k2048 = kx_crc_k512(kx_crc_fold_2048);
    while (len >= 256) {
        x0 = kx_crc_fold_zmm(x0, k2048, _mm512_loadu_si512((const void *)p));
        x1 = kx_crc_fold_zmm(x1, k2048, _mm512_loadu_si512((const void *)(p + 64)));
        x2 = kx_crc_fold_zmm(x2, k2048, _mm512_loadu_si512((const void *)(p + 128)));
        x3 = kx_crc_fold_zmm(x3, k2048, _mm512_loadu_si512((const void *)(p + 192)));
        p += 256;
        len -= 256;
    }
    const __m512i k512 = kx_crc_k512(kx_crc_fold_512);
    x0 = kx_crc_fold_zmm2(x0, kx_crc_k512(kx_crc_fold_1536));
    x1 = kx_crc_fold_zmm(x1, kx_crc_k512(kx_crc_fold_1024), x3);
    x2 = kx_crc_fold_zmm(x2, k512, x0);
    x0 = _mm512_xor_si512(x1, x2);
    while (len >= 64) {
        x0 = kx_crc_fold_zmm(x0, k512, _mm512_loadu_si512((const void *)p));
        p += 64;
        len -= 64;
    }
    /* Lanes 0 to 2 folded 384, 256 and 128 bits onto lane 3, which is added as it is (the
     * constants of lane 3 are zero). */
    x0 = kx_crc_fold_zmm(x0, _mm512_loadu_si512((const void *)kx_crc_fold_lanes),
                         _mm512_maskz_mov_epi64(0xC0, x0));
    __m256i y = _mm256_xor_si256(_mm512_castsi512_si256(x0), _mm512_extracti64x4_epi64(x0, 1));
    __m128i v = _mm_xor_si128(_mm256_castsi256_si128(y), _mm256_extracti128_si256(y, 1));
    const __m128i k128 = _mm_loadu_si128((const __m128i *)kx_crc_fold_128);
    while (len >= 16) {
        v = _mm_ternarylogic_epi64(_mm_clmulepi64_si128(v, k128, 0x00),
                                   _mm_clmulepi64_si128(v, k128, 0x11),
                                   _mm_loadu_si128((const __m128i *)p), 0x96);
        p += 16;
        len -= 16;
    }
    uint64_t c = _mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(v));
    c = _mm_crc32_u64(c, (uint64_t)_mm_extract_epi64(v, 1));
    /* Clean upper halves before going back to SSE code: GCC 12 puts no vzeroupper before a tail
     * call, and on Intel dirty ZMM state slows the caller's SSE code and holds the clock down. */
    _mm256_zeroupper();
    return kx_crc32c_sse42(~(uint32_t)c, p, len);
}
#endif /* KX_CRC_X86_FOLD */

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

#ifdef KX_CRC_X86_FOLD
/* The CPU has the instructions, and the OS saves the opmask and all ZMM registers (XCR0 bits
 * 1, 2, 5, 6, 7). GCC's and LLVM's __builtin_cpu_supports("avx512f") check XCR0 themselves
 * (GCC since 7.4/8, bug 85100), but older runtimes did not; XGETBV again costs nothing.
 * A kernel that enables AVX-512 state lazily (macOS) reads as unusable: the crc32 loop then. */
static int kx_crc_fold_usable(void) {
    unsigned int eax, ebx, ecx, edx, xcr0_lo, xcr0_hi;
    if (!(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("vpclmulqdq") &&
          __builtin_cpu_supports("pclmul")))
        return 0;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !(ecx & bit_OSXSAVE)) return 0;
    __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    return (xcr0_lo & 0xE6) == 0xE6;
}

/* The folding path against the table on a few lengths and alignments, once at init: wrong
 * constants or a miscompiled intrinsic would cost speed (the crc32 loop), not correctness. */
static int kx_crc_fold_self_check(void) {
    unsigned char buf[2400];
    uint32_t seed = 0x9E3779B9u;
    for (size_t i = 0; i < sizeof buf; i++) {
        seed = seed * 1103515245u + 12345u;
        buf[i] = (unsigned char)(seed >> 24);
    }
    static const size_t lens[] = {256, 257, 511, 512, 1000, 2048, 2333};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        size_t off = i * 9 % 64;
        uint32_t start = (uint32_t)i * 0x01000193u;
        const unsigned char *p = buf + off;
        if (kx_crc32c_avx512(start, p, lens[i]) != kx_crc32c_table(start, p, lens[i])) return 0;
    }
    return 1;
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
#ifdef KX_CRC_X86_FOLD
    if (kx_crc_impl == KX_CRC_IMPL_SSE42 && kx_crc_fold_usable()) {
        kx_crc_fold_pair(kx_crc_fold_2048, 2048);
        kx_crc_fold_pair(kx_crc_fold_1536, 1536);
        kx_crc_fold_pair(kx_crc_fold_1024, 1024);
        kx_crc_fold_pair(kx_crc_fold_512, 512);
        kx_crc_fold_pair(kx_crc_fold_lanes, 384);
        kx_crc_fold_pair(kx_crc_fold_lanes + 2, 256);
        kx_crc_fold_pair(kx_crc_fold_lanes + 4, 128);
        kx_crc_fold_lanes[6] = kx_crc_fold_lanes[7] = 0;
        kx_crc_fold_pair(kx_crc_fold_128, 128);
        if (kx_crc_fold_self_check()) kx_crc_impl = KX_CRC_IMPL_AVX512;
    }
#endif
#elif defined(KX_CRC_ARM)
    if (getauxval(AT_HWCAP) & HWCAP_CRC32) kx_crc_impl = KX_CRC_IMPL_ARMV8;
#endif
}

static inline uint32_t kx_crc32c(uint32_t crc, const void *buf, size_t len) {
#if defined(KX_CRC_X86)
#ifdef KX_CRC_X86_FOLD
    if (len >= KX_CRC_FOLD_MIN && kx_crc_impl == KX_CRC_IMPL_AVX512)
        return kx_crc32c_avx512(crc, buf, len);
#endif
    if (kx_crc_impl != KX_CRC_IMPL_TABLE) return kx_crc32c_sse42(crc, buf, len);
#elif defined(KX_CRC_ARM)
    if (kx_crc_impl == KX_CRC_IMPL_ARMV8) return kx_crc32c_armv8(crc, buf, len);
#endif
    return kx_crc32c_table(crc, buf, len);
}

/* Runs one named implementation, if this CPU and build have it (for the tests, which check
 * every available path against the table, not just the one the dispatcher picks). Returns 0
 * when the implementation is not available here. */
static int kx_crc32c_using(int impl, uint32_t crc, const void *buf, size_t len, uint32_t *out) {
    switch (impl) {
        case KX_CRC_IMPL_TABLE:
            *out = kx_crc32c_table(crc, buf, len);
            return 1;
#if defined(KX_CRC_X86)
        case KX_CRC_IMPL_SSE42:
            if (kx_crc_impl == KX_CRC_IMPL_TABLE) return 0;
            *out = kx_crc32c_sse42(crc, buf, len);
            return 1;
#ifdef KX_CRC_X86_FOLD
        case KX_CRC_IMPL_AVX512:
            if (kx_crc_impl != KX_CRC_IMPL_AVX512) return 0;
            *out = kx_crc32c_avx512(crc, buf, len);
            return 1;
#endif
#elif defined(KX_CRC_ARM)
        case KX_CRC_IMPL_ARMV8:
            if (kx_crc_impl != KX_CRC_IMPL_ARMV8) return 0;
            *out = kx_crc32c_armv8(crc, buf, len);
            return 1;
#endif
        default:
            return 0;
    }
}

static inline const char *kx_crc32c_impl_name(void) {
    switch (kx_crc_impl) {
        case KX_CRC_IMPL_SSE42: return "sse4.2";
        case KX_CRC_IMPL_AVX512: return "avx512-vpclmulqdq";
        case KX_CRC_IMPL_ARMV8: return "armv8";
        default: return "table";
    }
}

#endif /* KX_CRC32C_H */
