/*
 * route.c: the routing table: one best route per destination peer.
 *
 * The one idea: every observation is offered to qpc_route_update and judged by a single
 * preference rule (documented in include/qpc/route.h and docs/routing.md), so the
 * discovery, connection and relay code never compare routes themselves. Entries are
 * plain values (fixed-size strings, no pointers) kept in a uthash table keyed by the
 * destination's public key; lookups and listings hand out copies. No I/O, no clock.
 *
 * Routes from announces add babeld's loop avoidance in front of that rule: a
 * feasibility distance per destination, kept in a second hash beside the routes because
 * it must outlive the route it came from (a route that expired and comes back through a
 * loop must still be refused).
 */
#include <stdlib.h>
#include <string.h>
/* Destinations are public keys anyone can mint, announced in envelopes a stranger sends:
 * the table uses a keyed hash, and an insert that cannot allocate fails instead of
 * exit()ing. */
#define HASH_NONFATAL_OOM 1
#include "qpc/uthash_keyed.h"

#include "qpc/announce.h"
#include "qpc/error.h"
#include "qpc/route.h"

struct route_entry {
    struct qpc_route route;   /* route.dest is the hash key */
    UT_hash_handle hh;
};

struct fd_entry {
    struct qpc_route_fd fd;   /* fd.dest is the hash key */
    UT_hash_handle hh;
};

struct qpc_route_table {
    struct route_entry *by_dest;   /* uthash head */
    struct fd_entry *fds;          /* feasibility distances, by destination */
    uint64_t stale_ms;
};

struct qpc_route_table *qpc_route_table_new(uint64_t stale_ms)
{
    struct qpc_route_table *table = calloc(1, sizeof(*table));

    if (table != NULL)
        table->stale_ms = stale_ms != 0 ? stale_ms : QPC_ROUTE_STALE_MS_DEFAULT;
    return table;
}

void qpc_route_table_free(struct qpc_route_table *table)
{
    struct route_entry *e, *tmp;

    if (table == NULL)
        return;
    struct fd_entry *f, *ftmp;

    HASH_ITER(hh, table->by_dest, e, tmp) {
        HASH_DEL(table->by_dest, e);
        free(e);
    }
    HASH_ITER(hh, table->fds, f, ftmp) {
        HASH_DEL(table->fds, f);
        free(f);
    }
    free(table);
}

static struct route_entry *find_entry(const struct qpc_route_table *table,
                                      const uint8_t dest[QPC_KEY_LEN])
{
    struct route_entry *e = NULL;

    HASH_FIND(hh, table->by_dest, dest, QPC_KEY_LEN, e);
    return e;
}

static bool needs_address(enum qpc_route_via via)
{
    return via != QPC_ROUTE_VIA_PEER;
}

static bool route_valid(const struct qpc_route *r, uint64_t now_ms)
{
    if ((unsigned)r->via > QPC_ROUTE_VIA_RELAY || (unsigned)r->source > QPC_ROUTE_SRC_ANNOUNCE)
        return false;
    if (r->source == QPC_ROUTE_SRC_ANNOUNCE && !r->has_seqno)
        return false;
    if (r->hops == 0 || r->last_seen_ms > now_ms)
        return false;
    if (memchr(r->name, '\0', sizeof(r->name)) == NULL ||
        memchr(r->next_hop, '\0', sizeof(r->next_hop)) == NULL)
        return false;
    if (needs_address(r->via) && r->next_hop[0] == '\0')
        return false;
    /* A route to X through X is a loop, not a path. */
    if (r->via == QPC_ROUTE_VIA_PEER && memcmp(r->via_peer, r->dest, QPC_KEY_LEN) == 0)
        return false;
    return true;
}

static bool same_next_hop(const struct qpc_route *a, const struct qpc_route *b)
{
    if (a->via != b->via || strcmp(a->next_hop, b->next_hop) != 0)
        return false;
    return a->via != QPC_ROUTE_VIA_PEER || memcmp(a->via_peer, b->via_peer, QPC_KEY_LEN) == 0;
}

static bool is_fresh(const struct qpc_route *r, uint64_t now_ms, uint64_t stale_ms)
{
    uint64_t hold = r->hold_ms != 0 ? r->hold_ms : stale_ms;

    if (r->retracted)
        return false;
    /* A stored route "seen after now" (the clock stepped back) is young, not old. */
    return r->last_seen_ms >= now_ms || now_ms - r->last_seen_ms <= hold;
}

static struct fd_entry *find_fd(const struct qpc_route_table *table, const uint8_t dest[QPC_KEY_LEN])
{
    struct fd_entry *f = NULL;

    HASH_FIND(hh, table->fds, dest, QPC_KEY_LEN, f);
    return f;
}

static bool fd_feasible(const struct fd_entry *f, uint32_t seqno, uint32_t metric)
{
    if (f == NULL || qpc_announce_seqno_newer(seqno, f->fd.seqno))
        return true;
    return seqno == f->fd.seqno && metric <= f->fd.metric;
}

bool qpc_route_feasible(const struct qpc_route_table *table, const uint8_t dest[static QPC_KEY_LEN],
                        uint32_t seqno, uint32_t metric)
{
    return table != NULL && fd_feasible(find_fd(table, dest), seqno, metric);
}

/* Where a full FD hash makes room: the distance updated longest ago. */
static void fd_evict_one(struct qpc_route_table *table)
{
    struct fd_entry *f, *victim = NULL;

    for (f = table->fds; f != NULL; f = f->hh.next)
        if (victim == NULL || f->fd.updated_ms < victim->fd.updated_ms)
            victim = f;
    if (victim != NULL) {
        HASH_DEL(table->fds, victim);
        free(victim);
    }
}

static int fd_put(struct qpc_route_table *table, const struct qpc_route_fd *fd)
{
    struct fd_entry *f = find_fd(table, fd->dest);

    if (f != NULL) {
        f->fd = *fd;
        return 0;
    }
    if (HASH_COUNT(table->fds) >= QPC_ROUTE_TABLE_MAX)
        fd_evict_one(table);
    if ((f = calloc(1, sizeof(*f))) == NULL)
        return QPC_ERR_NOMEM;
    f->fd = *fd;
    HASH_ADD(hh, table->fds, fd.dest, QPC_KEY_LEN, f);
    if (f->hh.tbl == NULL) {
        free(f);
        return QPC_ERR_NOMEM;
    }
    return 0;
}

/* A route with a seqno was kept: the FD follows it (babeld's update of the source). */
static int fd_note(struct qpc_route_table *table, const struct qpc_route *r, uint64_t now_ms)
{
    struct fd_entry *f = find_fd(table, r->dest);
    struct qpc_route_fd fd = { .seqno = r->seqno, .metric = r->hops, .updated_ms = now_ms };

    memcpy(fd.dest, r->dest, QPC_KEY_LEN);
    if (f != NULL && !qpc_announce_seqno_newer(r->seqno, f->fd.seqno)) {
        if (r->hops >= f->fd.metric)
            return 0;
        f->fd.metric = r->hops;
        f->fd.updated_ms = now_ms;
        return 0;
    }
    return fd_put(table, &fd);
}

/* An announced (feasible) offer against the stored route: the rule of route.h. */
static bool prefer_announced(const struct qpc_route *old, const struct qpc_route *new,
                             uint64_t now_ms, uint64_t stale_ms)
{
    if (old->source == QPC_ROUTE_SRC_ENVELOPE || same_next_hop(old, new))
        return true;
    if (!is_fresh(old, now_ms, stale_ms))
        return true;
    if (old->source == QPC_ROUTE_SRC_DIRECT)   /* a link: another link as short replaces it */
        return new->source == QPC_ROUTE_SRC_DIRECT ? new->hops <= old->hops : new->hops < old->hops;
    if (old->source != QPC_ROUTE_SRC_ANNOUNCE && !old->has_seqno)
        return true;   /* a claimed address is no path; an announce's is */
    return new->hops < old->hops;
}

/* The preference rule of route.h, numbered as there. */
static bool prefer_new(const struct qpc_route *old, const struct qpc_route *new,
                       uint64_t now_ms, uint64_t stale_ms)
{
    bool old_fresh, new_fresh;

    if (new->has_seqno)
        return prefer_announced(old, new, now_ms, stale_ms);
    /* A fresh announced route yields only to a link with fewer hops, or (the link's own
     * route, refreshed by its announces) to news of a link, judged as usual below. */
    if ((old->has_seqno || old->source == QPC_ROUTE_SRC_ANNOUNCE) && is_fresh(old, now_ms, stale_ms) &&
        !(new->source == QPC_ROUTE_SRC_DIRECT &&
          (new->hops < old->hops || old->source == QPC_ROUTE_SRC_DIRECT)))
        return false;
    /* An envelope's sighting has no metric: it only fills a gap or refreshes itself. */
    if (new->source == QPC_ROUTE_SRC_ENVELOPE && old->source != QPC_ROUTE_SRC_ENVELOPE &&
        is_fresh(old, now_ms, stale_ms))
        return false;
    if (same_next_hop(old, new))                                        /* 2 */
        return new->last_seen_ms >= old->last_seen_ms;
    old_fresh = is_fresh(old, now_ms, stale_ms);
    new_fresh = is_fresh(new, now_ms, stale_ms);
    if (old_fresh != new_fresh)                                         /* 3 */
        return new_fresh;
    if (new->hops != old->hops)                                         /* 4 */
        return new->hops < old->hops;
    return new->last_seen_ms > old->last_seen_ms;                       /* 5, 6 */
}

/* Which of two routes to drop when the table is full: a typed route last, then the one
 * heard from longest ago. */
static bool worth_less(const struct qpc_route *a, const struct qpc_route *b)
{
    if ((a->source == QPC_ROUTE_SRC_MANUAL) != (b->source == QPC_ROUTE_SRC_MANUAL))
        return b->source == QPC_ROUTE_SRC_MANUAL;
    return a->last_seen_ms < b->last_seen_ms;
}

/* The table is full: drops the entry worth least, unless that would be the newcomer r.
 * Linear, but only when full, and cheaper than the signature check behind each offer. */
static bool evict_one(struct qpc_route_table *table, const struct qpc_route *r)
{
    struct route_entry *e, *victim = NULL;

    for (e = table->by_dest; e != NULL; e = e->hh.next)
        if (victim == NULL || worth_less(&e->route, &victim->route))
            victim = e;
    if (victim == NULL || !worth_less(&victim->route, r))
        return false;
    HASH_DEL(table->by_dest, victim);
    free(victim);
    return true;
}

int qpc_route_update(struct qpc_route_table *table, const struct qpc_route *r, uint64_t now_ms,
                     bool *changed)
{
    struct route_entry *e;
    struct qpc_route merged;

    if (changed != NULL)
        *changed = false;
    if (table == NULL || r == NULL || !route_valid(r, now_ms))
        return QPC_ERR_INVALID;
    if (r->has_seqno && !fd_feasible(find_fd(table, r->dest), r->seqno, r->hops))
        return 0;   /* it could come from a loop: babeld's feasibility condition */

    e = find_entry(table, r->dest);
    if (e == NULL) {                                                    /* 1 */
        if ((e = calloc(1, sizeof(*e))) == NULL)
            return QPC_ERR_NOMEM;
        e->route = *r;
        if (HASH_COUNT(table->by_dest) >= QPC_ROUTE_TABLE_MAX && !evict_one(table, r)) {
            free(e);
            return 0;   /* the new route is the one least worth keeping */
        }
        HASH_ADD(hh, table->by_dest, route.dest, QPC_KEY_LEN, e);
        if (e->hh.tbl == NULL) {   /* uthash could not grow the table */
            free(e);
            return QPC_ERR_NOMEM;
        }
    } else {
        if (!prefer_new(&e->route, r, now_ms, table->stale_ms))
            return 0;
        merged = *r;
        if (merged.name[0] == '\0')
            memcpy(merged.name, e->route.name, sizeof(merged.name));
        if (merged.rtt_ms == QPC_ROUTE_RTT_UNKNOWN && same_next_hop(&e->route, r))
            merged.rtt_ms = e->route.rtt_ms;
        e->route = merged;   /* same dest, so the hash key is unchanged */
    }
    if (changed != NULL)
        *changed = true;
    return r->has_seqno ? fd_note(table, r, now_ms) : 0;
}

size_t qpc_route_expire(struct qpc_route_table *table, uint64_t now_ms, uint64_t max_age_ms)
{
    struct route_entry *e, *tmp;
    size_t removed = 0;

    if (table == NULL)
        return 0;
    HASH_ITER(hh, table->by_dest, e, tmp) {
        uint64_t age = e->route.last_seen_ms < now_ms ? now_ms - e->route.last_seen_ms : 0;

        /* A route seen "after" now_ms (clock stepped back) is young, not old. */
        if (age > max_age_ms || (e->route.hold_ms != 0 && age / 2 > e->route.hold_ms)) {
            HASH_DEL(table->by_dest, e);
            free(e);
            removed++;
        }
    }
    return removed;
}

int qpc_route_fd_get(const struct qpc_route_table *table, const uint8_t dest[static QPC_KEY_LEN],
                     struct qpc_route_fd *out)
{
    const struct fd_entry *f;

    if (table == NULL || (f = find_fd(table, dest)) == NULL)
        return QPC_ERR_NOT_FOUND;
    *out = f->fd;
    return 0;
}

int qpc_route_fd_set(struct qpc_route_table *table, const struct qpc_route_fd *fd)
{
    if (table == NULL || fd == NULL || fd->metric == 0)
        return QPC_ERR_INVALID;
    return fd_put(table, fd);
}

int qpc_route_fd_list(const struct qpc_route_table *table, struct qpc_route_fd **out, size_t *n)
{
    const struct fd_entry *f;
    size_t count = table == NULL ? 0 : HASH_COUNT(table->fds), i = 0;

    *out = NULL;
    *n = 0;
    if (count == 0)
        return 0;
    if ((*out = calloc(count, sizeof(**out))) == NULL)
        return QPC_ERR_NOMEM;
    for (f = table->fds; f != NULL; f = f->hh.next)
        (*out)[i++] = f->fd;
    *n = count;
    return 0;
}

size_t qpc_route_fd_expire(struct qpc_route_table *table, uint64_t now_ms, uint64_t max_age_ms)
{
    struct fd_entry *f, *tmp;
    size_t removed = 0;

    if (table == NULL)
        return 0;
    HASH_ITER(hh, table->fds, f, tmp) {
        if (f->fd.updated_ms < now_ms && now_ms - f->fd.updated_ms > max_age_ms) {
            HASH_DEL(table->fds, f);
            free(f);
            removed++;
        }
    }
    return removed;
}

size_t qpc_route_retract(struct qpc_route_table *table, const uint8_t peer[static QPC_KEY_LEN])
{
    struct route_entry *e;
    size_t n = 0;

    if (table == NULL)
        return 0;
    for (e = table->by_dest; e != NULL; e = e->hh.next) {
        bool through = e->route.via == QPC_ROUTE_VIA_PEER && memcmp(e->route.via_peer, peer, QPC_KEY_LEN) == 0;
        bool own = e->route.source == QPC_ROUTE_SRC_DIRECT && memcmp(e->route.dest, peer, QPC_KEY_LEN) == 0;

        if ((through || own) && !e->route.retracted) {
            e->route.retracted = true;
            n++;
        }
    }
    return n;
}

size_t qpc_route_remove_via(struct qpc_route_table *table, const uint8_t via_peer[static QPC_KEY_LEN])
{
    struct route_entry *e, *tmp;
    size_t removed = 0;

    if (table == NULL)
        return 0;
    HASH_ITER(hh, table->by_dest, e, tmp) {
        if (e->route.via == QPC_ROUTE_VIA_PEER && memcmp(e->route.via_peer, via_peer, QPC_KEY_LEN) == 0) {
            HASH_DEL(table->by_dest, e);
            free(e);
            removed++;
        }
    }
    return removed;
}

int qpc_route_lookup(const struct qpc_route_table *table, const uint8_t dest[static QPC_KEY_LEN],
                     struct qpc_route *out)
{
    const struct route_entry *e;

    if (table == NULL || (e = find_entry(table, dest)) == NULL)
        return QPC_ERR_NOT_FOUND;
    *out = e->route;
    return 0;
}

int qpc_route_remove(struct qpc_route_table *table, const uint8_t dest[static QPC_KEY_LEN])
{
    struct route_entry *e;

    if (table == NULL || (e = find_entry(table, dest)) == NULL)
        return QPC_ERR_NOT_FOUND;
    HASH_DEL(table->by_dest, e);
    free(e);
    return 0;
}

size_t qpc_route_count(const struct qpc_route_table *table)
{
    return table == NULL ? 0 : HASH_COUNT(table->by_dest);
}

static int compare_for_display(const void *pa, const void *pb)
{
    const struct qpc_route *a = *(const struct qpc_route *const *)pa;
    const struct qpc_route *b = *(const struct qpc_route *const *)pb;

    if (a->hops != b->hops)
        return a->hops < b->hops ? -1 : 1;
    if (a->last_seen_ms != b->last_seen_ms)
        return a->last_seen_ms > b->last_seen_ms ? -1 : 1;   /* youngest first */
    return memcmp(a->dest, b->dest, QPC_KEY_LEN);
}

int qpc_route_list(const struct qpc_route_table *table, struct qpc_route **out, size_t *n)
{
    const struct route_entry *e;
    const struct qpc_route **order = NULL;
    struct qpc_route *all = NULL;
    size_t count = qpc_route_count(table);
    size_t i = 0;
    int ret = QPC_ERR_NOMEM;

    *out = NULL;
    *n = 0;
    if (count == 0)
        return 0;
    /* Sort pointers, then copy once: entries are ~400 bytes, too big to shuffle. */
    if ((order = calloc(count, sizeof(*order))) == NULL || (all = calloc(count, sizeof(*all))) == NULL)
        goto cleanup;
    for (e = table->by_dest; e != NULL; e = e->hh.next)
        order[i++] = &e->route;
    qsort(order, count, sizeof(*order), compare_for_display);
    for (i = 0; i < count; i++)
        all[i] = *order[i];
    *out = all;
    *n = count;
    all = NULL;
    ret = 0;
cleanup:
    free(order);
    free(all);
    return ret;
}

const char *qpc_route_via_name(enum qpc_route_via via)
{
    switch (via) {
    case QPC_ROUTE_VIA_DIRECT: return "direct";
    case QPC_ROUTE_VIA_PEER: return "peer";
    case QPC_ROUTE_VIA_SERVER: return "server";
    case QPC_ROUTE_VIA_RELAY: return "relay";
    }
    return "?";
}

const char *qpc_route_source_name(enum qpc_route_source source)
{
    switch (source) {
    case QPC_ROUTE_SRC_MDNS: return "mdns";
    case QPC_ROUTE_SRC_DIRECT: return "direct";
    case QPC_ROUTE_SRC_SERVER: return "server";
    case QPC_ROUTE_SRC_ENVELOPE: return "envelope";
    case QPC_ROUTE_SRC_MANUAL: return "manual";
    case QPC_ROUTE_SRC_ANNOUNCE: return "announce";
    }
    return "?";
}
