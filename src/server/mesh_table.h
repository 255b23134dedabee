/*
 * mesh_table.h: what the node remembers of the announces it carried (mesh.c): the
 * dedup table of announce ids and the latest announce of each origin.
 *
 * The one idea: strangers choose both keys (announce ids, origin keys are minted for
 * free), so both tables are bounded in count and time, with a plain eviction rule a
 * reader can check: the dedup table forgets the id seen longest ago, the origin cache
 * the origin heard from longest ago. Both are uthash tables with keyed hashing kept in
 * insertion order (an entry refreshed is moved to the end), so eviction and expiry look
 * at the head. Pure: time (monotonic ms) is an argument; tests/test_server_mesh.c.
 */
#ifndef QPC_SERVER_MESH_TABLE_H
#define QPC_SERVER_MESH_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qpc/announce.h"

struct mesh_table_limits {
    size_t ids_max;                /* announce ids remembered at most ... */
    uint64_t id_hold_ms;           /* ... each for this long */
    size_t origins_max;            /* origins whose latest announce is kept */
    uint64_t origin_hold_max_ms;   /* each kept 3 of its intervals, at most this long */
};

struct mesh_table;

/* A new empty table (lim copied), or NULL without memory. */
struct mesh_table *mesh_table_new(const struct mesh_table_limits *lim);
void mesh_table_free(struct mesh_table *t);

/* True when id was remembered less than id_hold_ms before now. */
bool mesh_table_seen(const struct mesh_table *t, const uint8_t id[static QPC_ID_LEN],
                     uint64_t now);
/* Remembers id at now; when ids_max are held, the one remembered longest ago goes. A
 * failed allocation remembers nothing (the origin cache and the hop limit still bound
 * a loop). */
void mesh_table_remember(struct mesh_table *t, const uint8_t id[static QPC_ID_LEN],
                         uint64_t now);

/*
 * Offers a verified announce (as it will be passed on: already hopped) for its origin's
 * entry. Returns false, changing nothing, when the entry kept is live and its seqno is
 * not older than a's (qpc_announce_seqno_newer): a late copy. Otherwise a (copied)
 * replaces it, passable says whether it may be sent on (false: at its hop limit), and
 * true is returned; a new origin over origins_max evicts the one heard from longest ago.
 */
bool mesh_table_take_latest(struct mesh_table *t, const struct qpc_announce *a, bool passable,
                            uint64_t now);

/* Calls fn for each live, passable entry, heard from longest ago first. fn must not
 * change the table. */
void mesh_table_foreach_live(const struct mesh_table *t, uint64_t now,
                             void (*fn)(const struct qpc_announce *a, void *arg), void *arg);

/* The home domain in key's latest live announce (its own signed word), or NULL when
 * none is kept or it names none. Valid until the table next changes. */
const char *mesh_table_home(const struct mesh_table *t, const uint8_t key[static QPC_KEY_LEN],
                            uint64_t now);

/* Drops ids and origins past their hold time. */
void mesh_table_gc(struct mesh_table *t, uint64_t now);

size_t mesh_table_ids(const struct mesh_table *t);
size_t mesh_table_origins(const struct mesh_table *t);

#endif
