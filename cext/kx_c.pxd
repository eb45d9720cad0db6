# C declarations of kx_crc32c.h and kx_frame.h, kept apart from the logic that uses them
# (the uvloop layout: extern blocks in their own .pxd).
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t


cdef extern from "kx_crc32c.h" nogil:
    void kx_crc32c_init()
    uint32_t kx_crc32c(uint32_t crc, const void *buf, size_t length)
    uint32_t kx_crc32c_table(uint32_t crc, const void *buf, size_t length)
    const char *kx_crc32c_impl_name()
    int kx_crc32c_using(int impl, uint32_t crc, const void *buf, size_t length, uint32_t *out)
    enum:
        KX_CRC_IMPL_TABLE
        KX_CRC_IMPL_SSE42
        KX_CRC_IMPL_AVX512
        KX_CRC_IMPL_ARMV8


cdef extern from "kx_frame.h" nogil:
    # 0xFFFFFFF8 does not fit a C int: a typed constant, or Cython converts it as -8.
    const uint32_t KX_MAX_FRAME_LIMIT
    enum:
        KX_HEADER_SIZE
        KX_DEFAULT_MAX_FRAME
        KX_MAX_HEADER_NAME
        KX_MAX_HEADER_COUNT
        KX_HEADER_ENTRY_FIXED
        KX_VERSION

    ctypedef enum kx_status:
        KX_OK
        KX_ERR_TRUNCATED
        KX_ERR_BAD_MAGIC
        KX_ERR_VERSION
        KX_ERR_FLAGS
        KX_ERR_LENGTH
        KX_ERR_SECTIONS
        KX_ERR_CHECKSUM
        KX_ERR_HEADER
        KX_ERR_TRAILING
        KX_ERR_NOMEM

    ctypedef enum kx_header_problem:
        KX_HDR_SHORT
        KX_HDR_NAME_LENGTH
        KX_HDR_OVERRUN
        KX_HDR_UTF8
        KX_HDR_LEFTOVER
        KX_HDR_DUPLICATE

    ctypedef struct kx_frame_info:
        uint64_t producer_id
        uint64_t sequence
        int64_t timestamp_ns
        uint32_t partition
        uint32_t frame_length
        uint32_t key_length
        uint32_t headers_length
        uint32_t payload_length
        uint32_t crc
        uint16_t header_count
        uint8_t flags

    ctypedef struct kx_error:
        kx_status status
        size_t offset
        uint64_t found
        uint64_t wanted

    uint64_t kx_frame_size(uint64_t key_length, uint64_t headers_length, uint64_t payload_length)
    void kx_frame_write_header(unsigned char *p, uint32_t frame_length, int has_key,
                               uint16_t header_count, uint64_t producer_id, uint64_t sequence,
                               int64_t timestamp_ns, uint32_t partition, uint32_t key_length,
                               uint32_t headers_length, uint32_t payload_length)
    uint32_t kx_frame_seal(unsigned char *p, uint32_t frame_length)
    kx_status kx_frame_parse(const unsigned char *p, size_t avail, uint32_t max_frame,
                             int verify_crc, kx_frame_info *fi, kx_error *err)
    void kx_st16(unsigned char *p, uint16_t v)
    void kx_st32(unsigned char *p, uint32_t v)
    uint16_t kx_ld16(const unsigned char *p)
    uint32_t kx_ld32(const unsigned char *p)
    uint64_t kx_ld64(const unsigned char *p)
