#ifndef CLINKACCEL_H
#define CLINKACCEL_H
#include <stddef.h>
#include <stdint.h>

/// Advances a CRC-32C register (not inverted) over `len` bytes. Uses the SSE4.2 crc32
/// instruction when the CPU has it, a slicing table otherwise. Pure computation, no I/O.
uint32_t lk_crc32c_advance(uint32_t crc, const void *data, size_t len);

/// Index of the first 0x00 in `data[0..<len]`, or `len` if there is none.
size_t lk_find_zero(const void *data, size_t len);

#endif
