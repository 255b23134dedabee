/*
 * pbarena.h: a bump allocator for protobuf-c unpacking into a caller's buffer.
 *
 * protobuf-c's default allocator mallocs every message, bytes field and string of an
 * unpacked message separately, and free_unpacked frees them one by one: for a batch of
 * hundreds of envelopes that is several malloc/free pairs per item on the hot path.
 * An arena hands out consecutive pieces of one buffer instead; what does not fit is
 * malloc'd as before. Its free releases only those heap pieces (pointers inside the
 * buffer are ignored), so protobuf_c_message_free_unpacked() stays correct and must
 * still be called; afterwards the buffer may be reused or freed.
 */
#ifndef QPC_PBARENA_H
#define QPC_PBARENA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

struct qpc_pbarena {
    ProtobufCAllocator allocator;   /* pass &arena.allocator to *_unpack / free_unpacked */
    uint8_t *buf;                   /* not owned */
    size_t cap, used;
};

/*
 * Sets arena up over buf (cap bytes; borrowed, must outlive every message unpacked with
 * it; buf may be NULL with cap 0, then every piece is malloc'd). Cannot fail.
 */
void qpc_pbarena_init(struct qpc_pbarena *arena, void *buf, size_t cap);

/* True when p was handed out from the arena's buffer (not from the heap). */
bool qpc_pbarena_owns(const struct qpc_pbarena *arena, const void *p);

#endif
