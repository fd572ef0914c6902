#ifndef CLINKACCEL_H
#define CLINKACCEL_H
#include <stddef.h>
#include <stdint.h>

/// Advances a CRC-32C register (not inverted) over `len` bytes. Uses the SSE4.2 crc32
/// instruction when the CPU has it, a slicing table otherwise. Pure computation, no I/O.
uint32_t lk_crc32c_advance(uint32_t crc, const void *data, size_t len);

/// Index of the first 0x00 in `data[0..<len]`, or `len` if there is none.
size_t lk_find_zero(const void *data, size_t len);

/// Raw deflate (RFC 1951) for one direction of one stream (docs/protocol.md §5.7), kept in C
/// because it is zlib's. One compressor's history runs for the stream's whole life.
typedef struct lk_deflater lk_deflater;
typedef struct lk_inflater lk_inflater;

/// A compressor at `level` (1-9) with a window of 2^`window_bits` bytes (9-15) and zlib's
/// `mem_level` (1-9). NULL if zlib cannot allocate it.
lk_deflater *lk_deflater_create(int level, int window_bits, int mem_level);
void lk_deflater_destroy(lk_deflater *d);
/// An output capacity that `lk_deflate_sync` of `len` bytes never exceeds.
size_t lk_deflate_sync_bound(lk_deflater *d, size_t len);
/// Compresses all of `in` and ends with a sync flush, so that every byte can be decompressed
/// from what was written. Returns the bytes written to `out`, or -1 if zlib failed or `cap`
/// was too small (the compressor must then be discarded).
long lk_deflate_sync(lk_deflater *d, const void *in, size_t len, void *out, size_t cap);

/// A decompressor for a window of up to 2^`window_bits` bytes. NULL if zlib cannot allocate it.
lk_inflater *lk_inflater_create(int window_bits);
void lk_inflater_destroy(lk_inflater *z);
/// Decompresses from `in`, writing at most `cap` bytes to `out`. Returns the bytes written and
/// sets `*consumed` to the input used; stops early only when `out` is full. Returns -1 for
/// data that is not raw deflate or that ends the deflate stream (a final block).
long lk_inflate(lk_inflater *z, const void *in, size_t len, size_t *consumed, void *out, size_t cap);

#endif
