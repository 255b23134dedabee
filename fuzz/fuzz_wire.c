/*
 * fuzz_wire.c: libFuzzer target for the frame decoder. The input is split into pieces
 * whose sizes come from the input itself, so frames straddle feeds; every frame handed
 * out must lie within the limit.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "qpc/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct qpc_wire_decoder d;
    size_t pos = 1, used, flen;
    const uint8_t *frame;

    if (size < 1)
        return 0;
    qpc_wire_decoder_init(&d, 4096);
    while (pos < size) {
        size_t piece = 1 + (data[pos - 1] % 64);
        int rv;

        if (piece > size - pos)
            piece = size - pos;
        rv = qpc_wire_decoder_feed(&d, data + pos, piece, &used, &frame, &flen);
        if (rv < 0)
            break;
        if (rv == 1 && flen > 4096)
            abort();
        if (used == 0)
            abort();   /* progress is guaranteed while input remains */
        pos += used;
    }
    qpc_wire_decoder_clear(&d);
    return 0;
}
