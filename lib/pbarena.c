/*
 * pbarena.c: bump allocation for protobuf-c unpacking (see pbarena.h).
 *
 * The one idea: an allocation either comes from the buffer (and is never freed on its
 * own) or from malloc (and is freed by free); the address range tells which, so no
 * bookkeeping per piece is needed.
 */
#include <stdint.h>
#include <stdlib.h>

#include "qpc/pbarena.h"

#define ARENA_ALIGN 16u   /* enough for every field type protobuf-c stores */

static void *arena_alloc(void *data, size_t size)
{
    struct qpc_pbarena *a = data;
    uintptr_t base = (uintptr_t)a->buf;
    size_t start = (size_t)(((base + a->used + ARENA_ALIGN - 1) & ~(uintptr_t)(ARENA_ALIGN - 1))
                            - base);

    if (start <= a->cap && size <= a->cap - start) {
        a->used = start + size;
        return a->buf + start;
    }
    if (a->heap_max > 0 && (a->heap_used > a->heap_max || size > a->heap_max - a->heap_used))
        return NULL;
    a->heap_used += size;
    return malloc(size > 0 ? size : 1);
}

static void arena_free(void *data, void *p)
{
    struct qpc_pbarena *a = data;

    if (!qpc_pbarena_owns(a, p))
        free(p);
}

void qpc_pbarena_init(struct qpc_pbarena *arena, void *buf, size_t cap)
{
    arena->allocator.alloc = arena_alloc;
    arena->allocator.free = arena_free;
    arena->allocator.allocator_data = arena;
    arena->buf = buf;
    arena->cap = buf != NULL ? cap : 0;
    arena->used = 0;
    arena->heap_max = 0;
    arena->heap_used = 0;
}

void qpc_pbarena_set_heap_max(struct qpc_pbarena *arena, size_t max)
{
    arena->heap_max = max;
}

bool qpc_pbarena_owns(const struct qpc_pbarena *arena, const void *p)
{
    uintptr_t u = (uintptr_t)p, b = (uintptr_t)arena->buf;

    return arena->cap > 0 && u >= b && u - b < arena->cap;
}
