/*
 * homes.h: each peer's home node, as its own signed announces say (homes.c).
 *
 * A peer that is a client of a qpc-server puts that node's domain into its announces,
 * under its signature. A message through my server to a peer of another node must name
 * that domain (EnqueueItem.domain) for the node to federate it; without one it waits in
 * my node's own queue for a peer that never comes there. This table remembers the
 * domain per peer: set only from verified announces, newest seqno wins; an announce
 * without a domain leaves the last one (the peer's last node still holds messages for
 * it; my node's queue never would). Bounded; unheard entries age
 * out with the routes (ROUTES_MAX_AGE_MS).
 *
 * Pure logic: time is an argument; route_state.c keeps it in routes.db.
 */
#ifndef QPC_CLIENT_HOMES_H
#define QPC_CLIENT_HOMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qpc/announce.h"
#include "qpc/encoding.h"

#define HOMES_MAX 4096                 /* peers whose home is remembered; the oldest goes */

struct homes;

/* One peer's home as stored (listing and loading). */
struct home {
    uint8_t key[QPC_KEY_LEN];
    char domain[QPC_ANNOUNCE_DOMAIN_MAX + 1];
    uint32_t seqno;                    /* of the announce that said it */
    uint64_t heard_ms;                 /* wall clock, when it was last said */
};

/* An empty table, or NULL when out of memory. */
struct homes *homes_new(void);
void homes_free(struct homes *h);

/*
 * A verified announce of key (seqno, domain "" or a DNS name) was heard at now_ms.
 * Newer than what is kept (or nothing kept): its seqno is kept, and its domain unless
 * it is "" (then the last domain stays).
 * The same seqno again refreshes heard_ms only; an older one changes nothing. A domain
 * that is not a valid node domain (qpc_direct_domain_valid) is treated as "".
 * Returns true when the kept domain changed (the caller saves the table).
 */
bool homes_learn(struct homes *h, const uint8_t key[static QPC_KEY_LEN], const char *domain,
                 uint32_t seqno, uint64_t now_ms);

/* The home domain kept for key, or NULL. Valid until the next change of the table. */
const char *homes_get(const struct homes *h, const uint8_t key[static QPC_KEY_LEN]);

/*
 * The domain a message of mine to key names when it goes through my server: key's home,
 * unless none is known or it is my own node's (mine: my server's domain, "" unknown;
 * compared without case). Returns "" for "my node's own queue".
 */
const char *homes_enqueue_domain(const struct homes *h, const uint8_t key[static QPC_KEY_LEN],
                                 const char *mine);

/* Drops entries not heard for max_age_ms. Returns how many. */
size_t homes_expire(struct homes *h, uint64_t now_ms, uint64_t max_age_ms);

/*
 * Every entry, oldest first, into *out (malloc'd, the caller frees; NULL when empty).
 * Returns 0 or QPC_ERR_NOMEM.
 */
int homes_list(const struct homes *h, struct home **out, size_t *n);

/* Puts e back as stored (loading), heard_ms included; an entry whose domain is neither
 * "" nor valid is dropped. */
void homes_restore(struct homes *h, const struct home *e);

#endif
