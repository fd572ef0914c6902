// Raw deflate with a sync flush after every chunk, and its inverse, for compressed stream data
// (docs/protocol.md §5.7). A thin wrapper: zlib owns the format; this file only hides z_stream
// from Swift and fixes the parameters the protocol relies on (raw, no header, no final block).
#include "CLinkAccel.h"
#include <limits.h>
#include <stdlib.h>
#include <zlib.h>

struct lk_deflater { z_stream z; };
struct lk_inflater { z_stream z; };

lk_deflater *lk_deflater_create(int level, int window_bits, int mem_level) {
    lk_deflater *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    if (deflateInit2(&d->z, level, Z_DEFLATED, -window_bits, mem_level, Z_DEFAULT_STRATEGY) != Z_OK) {
        free(d);
        return NULL;
    }
    return d;
}

void lk_deflater_destroy(lk_deflater *d) {
    if (!d) return;
    deflateEnd(&d->z);
    free(d);
}

size_t lk_deflate_sync_bound(lk_deflater *d, size_t len) {
    // deflateBound covers the blocks; a sync flush adds an empty stored block (5 bytes) after
    // up to 7 pending bits, and each 64 KiB of stored data its own 5-byte header.
    return (size_t)deflateBound(&d->z, (uLong)len) + 16 + 5 * (len / 65535 + 1);
}

long lk_deflate_sync(lk_deflater *d, const void *in, size_t len, void *out, size_t cap) {
    // zlib counts in uInt; callers pass chunks of kilobytes, but the API says size_t.
    if (len > UINT_MAX || cap > UINT_MAX) return -1;
    d->z.next_in = (Bytef *)in;
    d->z.avail_in = (uInt)len;
    d->z.next_out = (Bytef *)out;
    d->z.avail_out = (uInt)cap;
    int rc = deflate(&d->z, Z_SYNC_FLUSH);
    // With room left over, zlib has written everything, flush marker included.
    if (rc != Z_OK || d->z.avail_in != 0 || d->z.avail_out == 0) return -1;
    return (long)(cap - d->z.avail_out);
}

lk_inflater *lk_inflater_create(int window_bits) {
    lk_inflater *z = calloc(1, sizeof *z);
    if (!z) return NULL;
    if (inflateInit2(&z->z, -window_bits) != Z_OK) {
        free(z);
        return NULL;
    }
    return z;
}

void lk_inflater_destroy(lk_inflater *z) {
    if (!z) return;
    inflateEnd(&z->z);
    free(z);
}

long lk_inflate(lk_inflater *z, const void *in, size_t len, size_t *consumed, void *out, size_t cap) {
    if (len > UINT_MAX || cap > UINT_MAX) return -1;
    z->z.next_in = (Bytef *)in;
    z->z.avail_in = (uInt)len;
    z->z.next_out = (Bytef *)out;
    z->z.avail_out = (uInt)cap;
    int rc = Z_OK;
    // Called even without input: output held back from the last call (the rest of a copy that
    // did not fit) comes out now.
    if (cap > 0) rc = inflate(&z->z, Z_SYNC_FLUSH);
    *consumed = len - z->z.avail_in;
    // Z_BUF_ERROR only says no progress was possible (input ended mid-block): not an error.
    if (rc != Z_OK && rc != Z_BUF_ERROR) return -1;
    return (long)(cap - z->z.avail_out);
}
