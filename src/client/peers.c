/*
 * peers.c: the table of live per-peer state and its garbage collection (peers.h).
 *
 * The one idea: a peer_state is cheap to make and anyone can make us make one (connect,
 * or send an envelope for a made-up recipient), so the table forgets the ones nothing
 * points at once it grows large. Nothing else holds a peer_state without one of the
 * things peers_idle checks (a link, the relay's user pointer, the armed race timer),
 * so forgetting an idle one leaves no dangling pointer.
 */
#include <stdlib.h>
#include <string.h>

#include "peers.h"

void peers_init(struct peer_table *t, struct client *cl,
                void (*on_timer)(struct ev_loop *loop, ev_timer *w, int revents),
                uint32_t backoff_start_ms)
{
    t->by_key = NULL;
    t->cl = cl;
    t->on_timer = on_timer;
    t->backoff_start_ms = backoff_start_ms;
}

void peers_clear(struct peer_table *t, struct ev_loop *loop)
{
    struct peer_state *ps, *tmp;

    HASH_ITER(hh, t->by_key, ps, tmp) {
        if (loop != NULL)
            ev_timer_stop(loop, &ps->timer);
        HASH_DEL(t->by_key, ps);
        free(ps);
    }
}

struct peer_state *peers_find(const struct peer_table *t, const uint8_t key[static QPC_KEY_LEN])
{
    struct peer_state *ps = NULL;

    HASH_FIND(hh, t->by_key, key, QPC_KEY_LEN, ps);
    return ps;
}

struct peer_state *peers_get(struct peer_table *t, const uint8_t key[static QPC_KEY_LEN])
{
    struct peer_state *ps = peers_find(t, key);

    if (ps != NULL)
        return ps;
    ps = calloc(1, sizeof(*ps));
    if (ps == NULL)
        return NULL;
    memcpy(ps->key, key, QPC_KEY_LEN);
    ps->cl = t->cl;
    ps->backoff_ms = t->backoff_start_ms;
    ev_timer_init(&ps->timer, t->on_timer, 1.0, 0.0);
    ps->timer.data = ps;
    HASH_ADD(hh, t->by_key, key, QPC_KEY_LEN, ps);
    return ps;
}

size_t peers_count(const struct peer_table *t)
{
    return HASH_COUNT(t->by_key);
}

struct peer_state *peers_next(const struct peer_table *t, const struct peer_state *prev)
{
    return prev == NULL ? t->by_key : prev->hh.next;
}

int peers_duplicate_drop(const struct link_facts *a, const struct link_facts *b, bool i_am_smaller)
{
    if (a->initiated != b->initiated)   /* crossed: the smaller key's connection stays */
        return a->initiated == i_am_smaller ? 2 : 1;
    if (!a->initiated)                  /* both the peer's: it closes one */
        return 0;
    /* both mine: the newer stays (an older one may be dead without our knowing yet:
     * its goodbye lost while the path was down) */
    return a->up_ms < b->up_ms || (a->up_ms == b->up_ms && a->tie < b->tie) ? 1 : 2;
}

size_t peers_strangers(const struct peer_table *t)
{
    const struct peer_state *ps, *tmp;
    size_t n = 0;

    HASH_ITER(hh, t->by_key, ps, tmp)
        n += ps->stranger;
    return n;
}

bool peers_idle(const struct peer_state *ps, const struct custody *c, const struct qpc_store *store)
{
    return ps->links == NULL && ps->relay == NULL && ps->dialing <= 0 &&
           !ev_is_active(&ps->timer) && !ev_is_pending(&ps->timer) &&
           !custody_waits_for(c, store, ps->key);
}

size_t peers_gc(struct peer_table *t, const struct custody *c, const struct qpc_store *store)
{
    struct peer_state *ps, *tmp;
    bool above = HASH_COUNT(t->by_key) > PEERS_GC_ABOVE;
    size_t dropped = 0;

    HASH_ITER(hh, t->by_key, ps, tmp) {
        if (!peers_idle(ps, c, store) || (!above && !ps->stranger))
            continue;
        HASH_DEL(t->by_key, ps);
        free(ps);
        dropped++;
    }
    return dropped;
}
