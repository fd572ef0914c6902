// Hot loops of the protocol core (docs/protocol.md §1–2): CRC-32C and the search for 0x00 that
// COBS needs. Kept in C because Swift cannot reach the SSE4.2 crc32 instruction or libc's
// vectorised memchr without it. No state, no I/O.
#include "CLinkAccel.h"
#include <string.h>

static uint32_t table[8][256];
static int table_ready = 0;

static void build_table(void) {
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t c = b;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        table[0][b] = c;
    }
    for (int k = 1; k < 8; k++)
        for (uint32_t b = 0; b < 256; b++)
            table[k][b] = table[0][table[k - 1][b] & 0xFF] ^ (table[k - 1][b] >> 8);
    table_ready = 1;
}

static uint32_t crc_soft(uint32_t crc, const unsigned char *p, size_t len) {
    if (!table_ready) build_table();
    while (len >= 8) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + 4, 4);
        lo ^= crc;
        crc = table[7][lo & 0xFF] ^ table[6][(lo >> 8) & 0xFF] ^ table[5][(lo >> 16) & 0xFF] ^ table[4][lo >> 24]
            ^ table[3][hi & 0xFF] ^ table[2][(hi >> 8) & 0xFF] ^ table[1][(hi >> 16) & 0xFF] ^ table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--) crc = table[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t crc_hw(uint32_t crc, const unsigned char *p, size_t len) {
    uint64_t c = crc;
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        len -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (len--) c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32;
}
#endif

uint32_t lk_crc32c_advance(uint32_t crc, const void *data, size_t len) {
#if defined(__x86_64__)
    static int has_sse42 = -1;
    if (has_sse42 < 0) has_sse42 = __builtin_cpu_supports("sse4.2") ? 1 : 0;
    if (has_sse42) return crc_hw(crc, (const unsigned char *)data, len);
#endif
    return crc_soft(crc, (const unsigned char *)data, len);
}

size_t lk_find_zero(const void *data, size_t len) {
    const void *z = memchr(data, 0, len);
    return z ? (size_t)((const unsigned char *)z - (const unsigned char *)data) : len;
}
