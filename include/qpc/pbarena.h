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
 *
 * Bytes from a peer decide how much protobuf-c allocates: a 1 MiB frame of empty
 * repeated items becomes half a million structs. A heap limit bounds what the arena
 * takes from malloc for one message; beyond it an allocation fails and the unpack
 * fails with it, cleanly (protobuf-c frees what it had built).
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
    size_t heap_max;                /* 0: no limit on what comes from malloc */
    size_t heap_used;               /* bytes malloc'd so far (not lowered by frees) */
};

/*
 * Sets arena up over buf (cap bytes; borrowed, must outlive every message unpacked with
 * it; buf may be NULL with cap 0, then every piece is malloc'd). Cannot fail.
 */
void qpc_pbarena_init(struct qpc_pbarena *arena, void *buf, size_t cap);

/* From now on at most max bytes in all (counted since init) come from malloc; 0 lifts
 * the limit. */
void qpc_pbarena_set_heap_max(struct qpc_pbarena *arena, size_t max);

/* True when p was handed out from the arena's buffer (not from the heap). */
bool qpc_pbarena_owns(const struct qpc_pbarena *arena, const void *p);

#endif
