/*
 * mesh_table.c: the dedup table of announce ids and the cache of the latest announce
 * per origin (mesh_table.h says why both are bounded and how they evict).
 */
#include <stdlib.h>
#include <string.h>

#include "qpc/uthash_keyed.h"
#include "mesh_table.h"

struct seen_id {
    uint8_t id[QPC_ID_LEN];
    uint64_t at;
    UT_hash_handle hh;
};

struct origin {
    uint8_t key[QPC_KEY_LEN];
    struct qpc_announce latest;          /* as the node passes it on (already hopped) */
    bool passable;                       /* false: it reached its hop limit here */
    uint64_t heard;
    uint64_t hold_ms;
    UT_hash_handle hh;
};

struct mesh_table {
    struct mesh_table_limits lim;
    struct seen_id *ids;                 /* oldest first */
    struct origin *origins;              /* heard from longest ago first */
};

struct mesh_table *mesh_table_new(const struct mesh_table_limits *lim)
{
    struct mesh_table *t = calloc(1, sizeof(*t));

    if (t != NULL)
        t->lim = *lim;
    return t;
}

void mesh_table_free(struct mesh_table *t)
{
    struct seen_id *e, *etmp;
    struct origin *o, *otmp;

    if (t == NULL)
        return;
    HASH_ITER(hh, t->ids, e, etmp) {
        HASH_DEL(t->ids, e);
        free(e);
    }
    HASH_ITER(hh, t->origins, o, otmp) {
        HASH_DEL(t->origins, o);
        free(o);
    }
    free(t);
}

bool mesh_table_seen(const struct mesh_table *t, const uint8_t id[static QPC_ID_LEN],
                     uint64_t now)
{
    struct seen_id *e = NULL;

    HASH_FIND(hh, t->ids, id, QPC_ID_LEN, e);
    return e != NULL && now - e->at < t->lim.id_hold_ms;
}

void mesh_table_remember(struct mesh_table *t, const uint8_t id[static QPC_ID_LEN], uint64_t now)
{
    struct seen_id *e = NULL;

    HASH_FIND(hh, t->ids, id, QPC_ID_LEN, e);
    if (e != NULL) {
        HASH_DEL(t->ids, e);                 /* added again at the end: newest */
    } else if (HASH_COUNT(t->ids) >= t->lim.ids_max) {
        e = t->ids;                          /* the oldest goes */
        if (e == NULL)
            return;                          /* ids_max 0: remember nothing */
        HASH_DEL(t->ids, e);
    } else if ((e = calloc(1, sizeof(*e))) == NULL) {
        return;
    }
    memcpy(e->id, id, QPC_ID_LEN);
    e->at = now;
    HASH_ADD(hh, t->ids, id, QPC_ID_LEN, e);
}

static bool live(const struct origin *o, uint64_t now)
{
    return now - o->heard < o->hold_ms;
}

bool mesh_table_take_latest(struct mesh_table *t, const struct qpc_announce *a, bool passable,
                            uint64_t now)
{
    struct origin *o = NULL;
    uint64_t hold = (uint64_t)a->interval_s * 3000u;

    HASH_FIND(hh, t->origins, a->key, QPC_KEY_LEN, o);
    if (o != NULL && live(o, now) && !qpc_announce_seqno_newer(a->seqno, o->latest.seqno))
        return false;
    if (o != NULL) {
        HASH_DEL(t->origins, o);
    } else if (HASH_COUNT(t->origins) >= t->lim.origins_max) {
        o = t->origins;                      /* heard from longest ago */
        if (o == NULL)
            return true;                     /* origins_max 0: new, but not kept */
        HASH_DEL(t->origins, o);
    } else if ((o = calloc(1, sizeof(*o))) == NULL) {
        return true;                         /* not kept, still new */
    }
    memcpy(o->key, a->key, QPC_KEY_LEN);
    o->latest = *a;
    o->passable = passable;
    o->heard = now;
    o->hold_ms = hold < t->lim.origin_hold_max_ms ? hold : t->lim.origin_hold_max_ms;
    HASH_ADD(hh, t->origins, key, QPC_KEY_LEN, o);
    return true;
}

const char *mesh_table_home(const struct mesh_table *t, const uint8_t key[static QPC_KEY_LEN],
                            uint64_t now)
{
    struct origin *o = NULL;

    HASH_FIND(hh, t->origins, key, QPC_KEY_LEN, o);
    return o != NULL && live(o, now) && o->latest.domain[0] != '\0' ? o->latest.domain : NULL;
}

void mesh_table_foreach_live(const struct mesh_table *t, uint64_t now,
                             void (*fn)(const struct qpc_announce *a, void *arg), void *arg)
{
    const struct origin *o;

    for (o = t->origins; o != NULL; o = o->hh.next)
        if (o->passable && live(o, now))
            fn(&o->latest, arg);
}

void mesh_table_gc(struct mesh_table *t, uint64_t now)
{
    struct seen_id *e, *etmp;
    struct origin *o, *otmp;

    HASH_ITER(hh, t->ids, e, etmp) {         /* oldest first: stop at the first young one */
        if (now - e->at < t->lim.id_hold_ms)
            break;
        HASH_DEL(t->ids, e);
        free(e);
    }
    HASH_ITER(hh, t->origins, o, otmp) {     /* each has its own hold: look at all */
        if (!live(o, now)) {
            HASH_DEL(t->origins, o);
            free(o);
        }
    }
}

size_t mesh_table_ids(const struct mesh_table *t)
{
    return HASH_COUNT(t->ids);
}

size_t mesh_table_origins(const struct mesh_table *t)
{
    return HASH_COUNT(t->origins);
}
