/* The kaelix frame, version 1: layout, header writer and the validating parser.
 *
 * Plain C with no Python dependency (docs/wire-format.md is the specification; the order of
 * the checks in kx_frame_parse is the order it gives). The parser never reads outside
 * [p, p + avail): every length is compared with what is available before it is followed, and
 * sums are computed in 64 bits.
 */
#ifndef KX_FRAME_H
#define KX_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kx_crc32c.h"

#define KX_MAGIC_0 0x4B /* 'K' */
#define KX_MAGIC_1 0x4C /* 'L' */
#define KX_MAGIC_2 0x58 /* 'X' */
#define KX_MAGIC_3 0x46 /* 'F' */
#define KX_VERSION 1
#define KX_HEADER_SIZE 56
#define KX_FLAG_KEY 0x01u
#define KX_FLAGS_KNOWN 0x01u
#define KX_MAX_FRAME_LIMIT 0xFFFFFFF8u
#define KX_DEFAULT_MAX_FRAME 16777216u
#define KX_MAX_HEADER_NAME 255
#define KX_MAX_HEADER_COUNT 65535
#define KX_HEADER_ENTRY_FIXED 6

/* Field offsets inside the fixed header. */
#define KX_OFF_CRC 4
#define KX_OFF_VERSION 8
#define KX_OFF_FLAGS 9
#define KX_OFF_HEADER_COUNT 10
#define KX_OFF_FRAME_LENGTH 12
#define KX_OFF_PRODUCER 16
#define KX_OFF_SEQUENCE 24
#define KX_OFF_TIMESTAMP 32
#define KX_OFF_PARTITION 40
#define KX_OFF_KEY_LENGTH 44
#define KX_OFF_HEADERS_LENGTH 48
#define KX_OFF_PAYLOAD_LENGTH 52

typedef enum {
    KX_OK = 0,
    KX_ERR_TRUNCATED,
    KX_ERR_BAD_MAGIC,
    KX_ERR_VERSION,
    KX_ERR_FLAGS,
    KX_ERR_LENGTH,
    KX_ERR_SECTIONS,
    KX_ERR_CHECKSUM,
    KX_ERR_HEADER,
    KX_ERR_TRAILING,
    KX_ERR_NOMEM
} kx_status;

/* Why a header entry was refused (detail for the error message). */
typedef enum {
    KX_HDR_SHORT = 1,    /* fewer than 6 bytes left for the entry's lengths */
    KX_HDR_NAME_LENGTH,  /* name length 0 or above 255 */
    KX_HDR_OVERRUN,      /* entry runs past the end of the section */
    KX_HDR_UTF8,         /* name is not strict UTF-8 */
    KX_HDR_LEFTOVER,     /* bytes left after header_count entries */
    KX_HDR_DUPLICATE     /* name repeats an earlier one */
} kx_header_problem;

typedef struct {
    uint64_t producer_id;
    uint64_t sequence;
    int64_t timestamp_ns;
    uint32_t partition;
    uint32_t frame_length;
    uint32_t key_length;
    uint32_t headers_length;
    uint32_t payload_length;
    uint32_t crc;
    uint16_t header_count;
    uint8_t flags;
} kx_frame_info;

typedef struct {
    kx_status status;
    size_t offset;   /* offending byte, relative to the frame start */
    uint64_t found;  /* the value that was wrong (meaning depends on status) */
    uint64_t wanted; /* what was expected, or a kx_header_problem for KX_ERR_HEADER */
} kx_error;

static inline uint16_t kx_ld16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t kx_ld32(const unsigned char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v;
}
static inline uint64_t kx_ld64(const unsigned char *p) { return kx_load_le64(p); }
static inline void kx_st16(unsigned char *p, uint16_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}
static inline void kx_st32(unsigned char *p, uint32_t v) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    memcpy(p, &v, 4);
}
static inline void kx_st64(unsigned char *p, uint64_t v) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    memcpy(p, &v, 8);
}

static inline uint64_t kx_align8(uint64_t n) { return (n + 7) & ~(uint64_t)7; }

/* Frame length for the given section sizes (0 if over the format's hard limit). */
static inline uint64_t kx_frame_size(uint64_t key_length, uint64_t headers_length,
                                     uint64_t payload_length) {
    uint64_t n = kx_align8(KX_HEADER_SIZE + key_length + headers_length + payload_length);
    return n > KX_MAX_FRAME_LIMIT ? 0 : n;
}

/* Writes the fixed header (CRC left zero) and zeroes the padding of a frame whose sections
 * will be copied in by the caller; kx_frame_seal then stores the checksum. */
static inline void kx_frame_write_header(unsigned char *p, uint32_t frame_length, int has_key,
                                         uint16_t header_count, uint64_t producer_id,
                                         uint64_t sequence, int64_t timestamp_ns,
                                         uint32_t partition, uint32_t key_length,
                                         uint32_t headers_length, uint32_t payload_length) {
    size_t used = (size_t)KX_HEADER_SIZE + key_length + headers_length + payload_length;
    p[0] = KX_MAGIC_0;
    p[1] = KX_MAGIC_1;
    p[2] = KX_MAGIC_2;
    p[3] = KX_MAGIC_3;
    kx_st32(p + KX_OFF_CRC, 0);
    p[KX_OFF_VERSION] = KX_VERSION;
    p[KX_OFF_FLAGS] = has_key ? KX_FLAG_KEY : 0;
    kx_st16(p + KX_OFF_HEADER_COUNT, header_count);
    kx_st32(p + KX_OFF_FRAME_LENGTH, frame_length);
    kx_st64(p + KX_OFF_PRODUCER, producer_id);
    kx_st64(p + KX_OFF_SEQUENCE, sequence);
    kx_st64(p + KX_OFF_TIMESTAMP, (uint64_t)timestamp_ns);
    kx_st32(p + KX_OFF_PARTITION, partition);
    kx_st32(p + KX_OFF_KEY_LENGTH, key_length);
    kx_st32(p + KX_OFF_HEADERS_LENGTH, headers_length);
    kx_st32(p + KX_OFF_PAYLOAD_LENGTH, payload_length);
    memset(p + used, 0, frame_length - used);
}

static inline uint32_t kx_frame_seal(unsigned char *p, uint32_t frame_length) {
    uint32_t crc = kx_crc32c(0, p + 8, frame_length - 8);
    kx_st32(p + KX_OFF_CRC, crc);
    return crc;
}

/* Strict UTF-8 as CPython decodes it: no overlong forms, no surrogates, nothing above
 * U+10FFFF. */
static int kx_utf8_valid(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
        } else if (c >= 0xC2 && c <= 0xDF) {
            if (i + 1 >= n || (s[i + 1] & 0xC0) != 0x80) return 0;
            i += 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            if (i + 2 >= n) return 0;
            unsigned char c1 = s[i + 1];
            if ((c1 & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80) return 0;
            if (c == 0xE0 && c1 < 0xA0) return 0; /* overlong */
            if (c == 0xED && c1 > 0x9F) return 0; /* surrogate */
            i += 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
            if (i + 3 >= n) return 0;
            unsigned char c1 = s[i + 1];
            if ((c1 & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80 || (s[i + 3] & 0xC0) != 0x80)
                return 0;
            if (c == 0xF0 && c1 < 0x90) return 0; /* overlong */
            if (c == 0xF4 && c1 > 0x8F) return 0; /* above U+10FFFF */
            i += 4;
        } else {
            return 0;
        }
    }
    return 1;
}

typedef struct {
    const unsigned char *name;
    uint32_t length;
    uint32_t position; /* entry start, relative to the frame */
} kx_header_ref;

static int kx_header_ref_cmp(const void *a, const void *b) {
    const kx_header_ref *x = (const kx_header_ref *)a, *y = (const kx_header_ref *)b;
    if (x->length != y->length) return x->length < y->length ? -1 : 1;
    int c = memcmp(x->name, y->name, x->length);
    if (c) return c;
    return x->position < y->position ? -1 : (x->position > y->position);
}

static inline kx_status kx_header_error(kx_error *err, size_t offset, kx_header_problem why) {
    err->status = KX_ERR_HEADER;
    err->offset = offset;
    err->wanted = (uint64_t)why;
    return KX_ERR_HEADER;
}

/* Walks the headers section of a frame whose sections are already known to fit. Duplicate
 * names are found by sorting (name, position) pairs, so a frame with thousands of headers
 * costs n log n, not n squared. */
static kx_status kx_frame_check_headers(const unsigned char *frame, const kx_frame_info *fi,
                                        kx_error *err) {
    size_t start = (size_t)KX_HEADER_SIZE + fi->key_length;
    size_t end = start + fi->headers_length;
    size_t pos = start;
    uint32_t count = fi->header_count;
    kx_header_ref small[16];
    kx_header_ref *refs = small;
    if (count == 0 && fi->headers_length == 0) return KX_OK;
    if (count > 16) {
        /* each entry takes at least 7 bytes, which bounds the allocation by the frame */
        if ((uint64_t)count * (KX_HEADER_ENTRY_FIXED + 1) > fi->headers_length)
            refs = NULL;
        else {
            refs = (kx_header_ref *)malloc(sizeof(kx_header_ref) * count);
            if (!refs) {
                err->status = KX_ERR_NOMEM;
                err->offset = start;
                return KX_ERR_NOMEM;
            }
        }
    }
    kx_status status = KX_OK;
    uint32_t i;
    for (i = 0; i < count; i++) {
        if (end - pos < KX_HEADER_ENTRY_FIXED) {
            status = kx_header_error(err, pos, KX_HDR_SHORT);
            break;
        }
        uint32_t name_length = kx_ld16(frame + pos);
        uint64_t value_length = kx_ld32(frame + pos + 2);
        if (name_length == 0 || name_length > KX_MAX_HEADER_NAME) {
            status = kx_header_error(err, pos, KX_HDR_NAME_LENGTH);
            break;
        }
        if ((uint64_t)KX_HEADER_ENTRY_FIXED + name_length + value_length > end - pos) {
            status = kx_header_error(err, pos, KX_HDR_OVERRUN);
            break;
        }
        const unsigned char *name = frame + pos + KX_HEADER_ENTRY_FIXED;
        if (!kx_utf8_valid(name, name_length)) {
            status = kx_header_error(err, pos, KX_HDR_UTF8);
            break;
        }
        if (refs) {
            refs[i].name = name;
            refs[i].length = name_length;
            refs[i].position = (uint32_t)pos;
        }
        pos += KX_HEADER_ENTRY_FIXED + name_length + (size_t)value_length;
    }
    if (status == KX_OK && pos != end) status = kx_header_error(err, pos, KX_HDR_LEFTOVER);
    if (status == KX_OK && refs == NULL)
        /* count entries cannot fit in headers_length: the loop above has already failed */
        status = kx_header_error(err, pos, KX_HDR_SHORT);
    if (status == KX_OK && count > 1) {
        qsort(refs, count, sizeof(kx_header_ref), kx_header_ref_cmp);
        uint32_t first_repeat = UINT32_MAX;
        for (i = 1; i < count; i++) {
            if (refs[i].length == refs[i - 1].length &&
                memcmp(refs[i].name, refs[i - 1].name, refs[i].length) == 0 &&
                refs[i].position < first_repeat)
                first_repeat = refs[i].position;
        }
        if (first_repeat != UINT32_MAX)
            status = kx_header_error(err, first_repeat, KX_HDR_DUPLICATE);
    }
    if (refs != small && refs != NULL) free(refs);
    return status;
}

/* Validates the frame at p (avail bytes readable) and fills fi. With verify_crc == 0 the
 * checksum is not recomputed (for frames this process validated before). Offsets in err are
 * relative to p. */
static kx_status kx_frame_parse(const unsigned char *p, size_t avail, uint32_t max_frame,
                                int verify_crc, kx_frame_info *fi, kx_error *err) {
    static const unsigned char magic[4] = {KX_MAGIC_0, KX_MAGIC_1, KX_MAGIC_2, KX_MAGIC_3};
    if (avail < KX_HEADER_SIZE) {
        size_t n = avail < 4 ? avail : 4;
        if (memcmp(p, magic, n) != 0) {
            err->status = KX_ERR_BAD_MAGIC;
            err->offset = 0;
        } else {
            err->status = KX_ERR_TRUNCATED;
            err->offset = avail;
            err->wanted = KX_HEADER_SIZE;
        }
        return err->status;
    }
    if (memcmp(p, magic, 4) != 0) {
        err->status = KX_ERR_BAD_MAGIC;
        err->offset = 0;
        return KX_ERR_BAD_MAGIC;
    }
    if (p[KX_OFF_VERSION] != KX_VERSION) {
        err->status = KX_ERR_VERSION;
        err->offset = KX_OFF_VERSION;
        err->found = p[KX_OFF_VERSION];
        return KX_ERR_VERSION;
    }
    fi->flags = p[KX_OFF_FLAGS];
    if (fi->flags & ~KX_FLAGS_KNOWN) {
        err->status = KX_ERR_FLAGS;
        err->offset = KX_OFF_FLAGS;
        err->found = fi->flags;
        return KX_ERR_FLAGS;
    }
    fi->frame_length = kx_ld32(p + KX_OFF_FRAME_LENGTH);
    if (fi->frame_length < KX_HEADER_SIZE || (fi->frame_length & 7) ||
        fi->frame_length > max_frame) {
        err->status = KX_ERR_LENGTH;
        err->offset = KX_OFF_FRAME_LENGTH;
        err->found = fi->frame_length;
        err->wanted = max_frame;
        return KX_ERR_LENGTH;
    }
    if (fi->frame_length > avail) {
        err->status = KX_ERR_TRUNCATED;
        err->offset = avail;
        err->wanted = fi->frame_length;
        return KX_ERR_TRUNCATED;
    }
    fi->key_length = kx_ld32(p + KX_OFF_KEY_LENGTH);
    fi->headers_length = kx_ld32(p + KX_OFF_HEADERS_LENGTH);
    fi->payload_length = kx_ld32(p + KX_OFF_PAYLOAD_LENGTH);
    uint64_t used = (uint64_t)KX_HEADER_SIZE + fi->key_length + fi->headers_length +
                    fi->payload_length;
    if ((!(fi->flags & KX_FLAG_KEY) && fi->key_length != 0) || used > fi->frame_length ||
        fi->frame_length - used > 7) {
        err->status = KX_ERR_SECTIONS;
        err->offset = KX_OFF_KEY_LENGTH;
        err->found = used;
        err->wanted = fi->frame_length;
        return KX_ERR_SECTIONS;
    }
    fi->crc = kx_ld32(p + KX_OFF_CRC);
    if (verify_crc) {
        uint32_t computed = kx_crc32c(0, p + 8, fi->frame_length - 8);
        if (computed != fi->crc) {
            err->status = KX_ERR_CHECKSUM;
            err->offset = KX_OFF_CRC;
            err->found = fi->crc;
            err->wanted = computed;
            return KX_ERR_CHECKSUM;
        }
    }
    for (size_t i = (size_t)used; i < fi->frame_length; i++) {
        if (p[i]) {
            err->status = KX_ERR_SECTIONS;
            err->offset = i;
            err->found = p[i];
            err->wanted = 0;
            return KX_ERR_SECTIONS;
        }
    }
    fi->header_count = kx_ld16(p + KX_OFF_HEADER_COUNT);
    fi->producer_id = kx_ld64(p + KX_OFF_PRODUCER);
    fi->sequence = kx_ld64(p + KX_OFF_SEQUENCE);
    fi->timestamp_ns = (int64_t)kx_ld64(p + KX_OFF_TIMESTAMP);
    fi->partition = kx_ld32(p + KX_OFF_PARTITION);
    return kx_frame_check_headers(p, fi, err);
}

#endif /* KX_FRAME_H */
