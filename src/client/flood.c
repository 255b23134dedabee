/*
 * flood.c: broadcast flooding (flood.h).
 *
 * The one idea: a broadcast goes everywhere once. Each node verifies it once (dedup by
 * id first, in receive.c), shows it if it holds the channel key, and passes it on to
 * every other link -- and to its server, unless it came from there -- with hop_count + 1
 * until max_hops. Nodes keep live broadcasts in the store and hand them to peers (and a
 * server) they meet later; the receivers drop copies by id.
 *
 * Built without mesh (QPC_MESH 0) there are no links: a broadcast goes to the server and
 * comes from it, and the live ones are kept for the next session.
 */
#include <stdlib.h>
#include <string.h>

#include "flood.h"
#if QPC_MESH
#include "link.h"
#endif
#include "session.h"

/* Sends env to the best link of every peer but the one it came from and its sender
 * (without mesh there is none). */
static void to_links(struct client *cl, const struct qpc_envelope *env, const struct link *except)
{
#if QPC_MESH
    struct peer_state *ps = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;

    if (qpc_envelope_encode(env, &buf, &len) < 0)
        return;
    while ((ps = peers_next(&cl->peers, ps)) != NULL) {
        struct link *l = link_best(ps);

        if (l != NULL && l != except && (except == NULL || except->ps != ps) &&
            memcmp(ps->key, env->sender, QPC_KEY_LEN) != 0)
            link_send_envelope_bytes(l, buf, len);
    }
    free(buf);
#endif
}

/* Keeps env (moved) in the store for peers met later; if the store will not, its id is
 * at least marked seen so a copy coming back is dropped. */
static void keep(struct client *cl, struct qpc_envelope *env, uint64_t now)
{
    if (qpc_store_put(cl->store, env, now) < 0) {
        qpc_store_mark_seen(cl->store, env->id, qpc_envelope_expires_at_ms(env), now);
        qpc_envelope_clear(env);
    }
}

/* Both move env into the store once it has gone out: no copy of its payload per hop. */
void flood_originate(struct client *cl, struct qpc_envelope *env, uint64_t now)
{
    to_links(cl, env, NULL);
    session_broadcast(cl, env);
    keep(cl, env, now);
}

void flood_relay(struct client *cl, struct qpc_envelope *env, const struct link *from, uint64_t now)
{
    if (qpc_envelope_hop(env) == 0) {
        to_links(cl, env, from);
        if (from != NULL)
            session_broadcast(cl, env);   /* the server floods to its clients and nodes */
    }
    keep(cl, env, now);
}

#if QPC_MESH
static int to_link_cb(void *ctx, const struct qpc_envelope *env)
{
    link_send_envelope(ctx, env);
    return 0;
}

void flood_replay_to_link(struct client *cl, struct link *l, uint64_t now)
{
    qpc_store_foreach_broadcast(cl->store, now, to_link_cb, l);
}
#endif

static int to_server_cb(void *ctx, const struct qpc_envelope *env)
{
    session_broadcast(ctx, env);
    return 0;
}

void flood_replay_to_server(struct client *cl, uint64_t now)
{
    qpc_store_foreach_broadcast(cl->store, now, to_server_cb, cl);
}
