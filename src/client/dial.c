/*
 * dial.c: reaching a peer (dial.h; the whole story is in docs/paths.md).
 *
 * The one idea: paths race, they do not queue. When something waits for a peer, every
 * candidate it has (what it told us on a link, what the server says, what mDNS says,
 * the directory) is tried at once, and with a server session up the relayed path is
 * dialled at once beside them; the first path that works carries the message, and
 * traffic moves to a direct path as soon as one is up (the relayed link is closed, and
 * comes back at once if the direct one dies).
 *
 * Candidates on one of my own subnets are dialled straight away: no NAT lies between.
 * A far candidate is never dialled first at normal TTL while a server can coordinate,
 * because behind a NAT without an input firewall our first packet would land on the
 * peer's NAT itself, and the conntrack entry it leaves makes the peer's own mapping
 * toward us clash and move to another port (DESIGN.md, measured in tests/lib/lab.sh).
 * So a punch goes in an order no packet can overtake: we send TTL-2 probes (they open
 * our mapping and die at the router after our NAT), then ask the server to punch; the
 * server tells the peer, which probes and dials us at once, through our open mapping.
 * We dial its far candidates ourselves DIAL_OWN_DIAL_MS later (its mapping is open by
 * then), for the NATs where only our packets can open the way.
 *
 * While such a coordinated attempt runs and looks promising, a relayed link waits
 * DIAL_HEADSTART_MS before it carries anything (Happy-Eyeballs style: the direct attempt
 * gets a head start, the relay is a fallback that is already up). Promising: neither
 * side's NAT changes ports (its server sees it on the port it listens on; a NAT that
 * picks a new port per destination defeats punching) and no punch for the same
 * addresses failed in this process already. While a direct handshake with one of the
 * peer's candidates has heard from it (the path carries, the handshake is finishing) the
 * head start goes on, up to DIAL_HEADSTART_MAX_MS. Attempts are bounded by punch.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utlist.h>

#include "dial.h"
#include "handover.h"
#include "link.h"
#include "qpc/addr.h"
#include "output.h"
#include "qpc/error.h"
#include "qpc/log.h"
#include "qpc/resolve.h"
#include "routes.h"
#include "session.h"

static const uint8_t *my_key(const struct client *cl)
{
    return qpc_identity_public_key(cl->id);
}

/* Both sides' addresses: a change on either gives a new punch budget. */
static uint64_t digest_of(const struct client *cl, const struct peer_state *ps)
{
    return candidates_digest(&ps->cands) * 31u + candidates_digest(&cl->my_cands);
}

/* A server can coordinate punches: a session is up or being made. */
static bool coordinated(const struct client *cl)
{
    return cl->session != NULL;
}

static bool far(const struct client *cl, const char *addr)
{
    return coordinated(cl) && !candidate_on_link(&cl->nets, addr);
}

static void arm(struct client *cl, struct peer_state *ps);

/* Logs a refusal of the punch budget, at most one line per PUNCH_LOG_MS. */
static void refused(struct client *cl, const char *what, uint64_t now)
{
    unsigned unlogged = 0;

    if (punch_log_due(&cl->punch, now, &unlogged))
        qpc_log_info("node", "%s refused by the punch limits (%u more since the last such line)",
                     what, unlogged);
}

/* A name being looked up for a dial (cl->lookups): typed into the directory, or a static
 * peer's address (config `peers`, which may come without a key). */
struct dial_lookup {
    struct client *cl;
    bool has_key;
    uint8_t key[QPC_KEY_LEN];
    char addr[QPC_ADDRESS_MAX + 1];
    uint64_t *serial;                  /* NULL, or where the new link's serial goes (a static
                                        * peer's: valid until dial_stop, which comes first) */
    struct qpc_resolve *q;
    struct dial_lookup *prev, *next;
};

/* Dials addr, now at sa, for ps: a link that remembers the text it was dialled as. */
static int dial_at(struct client *cl, struct peer_state *ps, const char *addr,
                   const struct sockaddr *sa, socklen_t len)
{
    struct link *l = link_new(cl, ps, false, addr);
    int rc;

    if (l == NULL)
        return QPC_ERR_NOMEM;
    l->initiated = true;
    rc = qpc_quic_connect(cl->ep, sa, len, QPC_ALPN_P2P, ps->key, l, &l->conn);
    if (rc < 0) {
        link_free(l);
        return rc;
    }
    ps->dialing++;
    return 0;
}

/* Dials addr, now at sa, expecting whoever answers (a static peer without a key yet). */
static int dial_keyless_at(struct client *cl, const char *addr, const struct sockaddr *sa,
                           socklen_t len, uint64_t *serial)
{
    struct link *l = link_new(cl, NULL, false, addr);
    int rc;

    if (l == NULL)
        return QPC_ERR_NOMEM;
    l->initiated = true;
    if ((rc = qpc_quic_connect(cl->ep, sa, len, QPC_ALPN_P2P, NULL, l, &l->conn)) < 0) {
        link_free(l);
        return rc;
    }
    if (serial != NULL)
        *serial = l->serial;
    return 0;
}

/* A name was looked up (from the loop): dial it if the peer is still wanted. */
static void name_resolved(void *arg, int rc, const struct sockaddr *sa, socklen_t salen,
                          const char *why)
{
    struct dial_lookup *dl = arg;
    struct client *cl = dl->cl;
    struct peer_state *ps;

    DL_DELETE(cl->lookups, dl);
    if (rc != 0) {
        qpc_log_info("dial", "cannot look up %s: %s", dl->addr, why);
    } else if (cl->closing || cl->ep == NULL) {
        /* nothing more to start */
    } else if (!dl->has_key) {
        dial_keyless_at(cl, dl->addr, sa, salen, dl->serial);
    } else if ((ps = peers_find(&cl->peers, dl->key)) != NULL && !link_direct_at(ps, dl->addr) &&
               dial_at(cl, ps, dl->addr, sa, salen) == 0 && dl->serial != NULL) {
        *dl->serial = ps->links->serial;   /* link_new puts the newest first */
    }
    free(dl);
}

/* Looks addr (a name) up and dials it when the answer comes, expecting key (NULL:
 * whoever answers); one lookup per key and name at a time. */
static int dial_name(struct client *cl, const uint8_t *key, const char *addr, uint64_t *serial)
{
    struct dial_lookup *dl;
    int rc;

    DL_FOREACH(cl->lookups, dl)
        if (dl->has_key == (key != NULL) && (key == NULL || memcmp(dl->key, key, QPC_KEY_LEN) == 0) &&
            strcmp(dl->addr, addr) == 0)
            return 0;   /* already on its way */
    if (cl->resolver == NULL && (rc = qpc_resolver_new(cl->loop, NULL, &cl->resolver)) < 0)
        return rc;
    if ((dl = calloc(1, sizeof(*dl))) == NULL)
        return QPC_ERR_NOMEM;
    dl->cl = cl;
    dl->has_key = key != NULL;
    if (key != NULL)
        memcpy(dl->key, key, QPC_KEY_LEN);
    dl->serial = serial;
    snprintf(dl->addr, sizeof(dl->addr), "%s", addr);
    rc = qpc_resolve_start_family(cl->resolver, addr, qpc_quic_endpoint_dial_family(cl->ep),
                                  name_resolved, dl, &dl->q);
    if (rc < 0) {
        free(dl);
        return rc;
    }
    DL_APPEND(cl->lookups, dl);
    return 0;
}

void dial_stop(struct client *cl)
{
    struct dial_lookup *dl, *tmp;

    DL_FOREACH_SAFE(cl->lookups, dl, tmp) {
        DL_DELETE(cl->lookups, dl);
        qpc_resolve_cancel(dl->q);
        free(dl);
    }
}

static int dial_addr(struct client *cl, struct peer_state *ps, const char *addr)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    int rc;

    if (!qpc_addr_is_numeric(addr))
        return dial_name(cl, ps->key, addr, NULL);   /* never a blocking lookup on the loop */
    rc = qpc_addr_resolve(addr, &ss, &len);
    if (rc < 0)
        return rc;
    return dial_at(cl, ps, addr, (struct sockaddr *)&ss, len);
}

/* TTL-2 datagrams toward addr: our NAT's mapping opens, the far NAT sees nothing. */
static void probe(struct client *cl, const char *addr)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;

    if (qpc_addr_resolve(addr, &ss, &len) < 0)
        return;
    for (int i = 0; i < PUNCH_PROBES; i++)
        qpc_quic_endpoint_send_probe(cl->ep, (struct sockaddr *)&ss, len, PUNCH_PROBE_TTL);
}

/* Every candidate of ps worth a try: what it told (freshest knowledge first), then the
 * numeric addresses of its directory entry, none of them mine. */
static void targets(const struct client *cl, struct peer_state *ps, struct candidates *out)
{
    const struct qpc_peer *p = qpc_identity_peer_get(cl->id, ps->key);
    struct candidates all = ps->cands;

    for (size_t i = 0; p != NULL && i < p->address_count; i++)
        candidates_add(&all, p->addresses[i], cl->allow_loopback);
    candidates_clear(out);
    for (size_t i = 0; i < all.n && out->n < DIAL_TARGETS_MAX; i++)
        if (!candidates_contains(&cl->my_cands, all.addr[i]))
            candidates_add(out, all.addr[i], true);
}

/* Dials the targets of ps that have no direct link yet: the far ones too when far_too. */
static void dial_targets(struct client *cl, struct peer_state *ps, const struct candidates *t, bool far_too)
{
    for (size_t i = 0; i < t->n; i++)
        if (!link_direct_at(ps, t->addr[i]) && (far_too || !far(cl, t->addr[i])))
            dial_addr(cl, ps, t->addr[i]);
}

/* Names the user typed into the directory are dialled as typed (no candidate rules). */
static void dial_names(struct client *cl, struct peer_state *ps)
{
    const struct qpc_peer *p = qpc_identity_peer_get(cl->id, ps->key);

    for (size_t i = 0; p != NULL && i < p->address_count; i++)
        if (!qpc_addr_is_numeric(p->addresses[i]) && !link_direct_at(ps, p->addresses[i]))
            dial_addr(cl, ps, p->addresses[i]);
}

/* The port of a "host:port" candidate text (0 if none). */
static unsigned port_of(const char *addr)
{
    const char *colon = strrchr(addr, ':');

    return colon != NULL ? (unsigned)strtoul(colon + 1, NULL, 10) : 0;
}

/* Worth holding the relay back for: no NAT on either side is known to change ports. */
static bool promising(const struct client *cl, const struct peer_state *ps)
{
    bool mine_remaps = cl->server_observed[0] != '\0' && port_of(cl->server_observed) != cl->listen_port;

    return !mine_remaps && !ps->nat_remaps && ps->punch_failed_digest != digest_of(cl, ps);
}

/* True while a direct handshake with one of ps's candidates has heard from it. */
static bool direct_heard(struct client *cl, struct peer_state *ps)
{
    struct candidates t;

    targets(cl, ps, &t);
    for (size_t i = 0; i < t.n; i++) {
        struct sockaddr_storage ss;
        socklen_t len = 0;

        if (qpc_addr_resolve(t.addr[i], &ss, &len) == 0 &&
            qpc_quic_endpoint_hears(cl->ep, (struct sockaddr *)&ss, len))
            return true;
    }
    return false;
}

/* One coordinated punch toward the far targets of t: probes, then the server is asked.
 * False when the budget or the session said no. */
static bool punch(struct client *cl, struct peer_state *ps, const struct candidates *t, bool urgent,
                  uint64_t now)
{
    uint64_t digest = digest_of(cl, ps);
    enum punch_verdict v;
    bool any = false;

    for (size_t i = 0; i < t->n && !any; i++)
        any = far(cl, t->addr[i]) && !link_direct_at(ps, t->addr[i]);
    if (!any || !session_up(cl))
        return false;
    v = punch_allow(&cl->punch, &ps->punch, digest, ps->stranger, urgent, now);
    if (v != PUNCH_OK) {
        if (v == PUNCH_RATE)
            refused(cl, "a punch", now);
        return false;
    }
    for (size_t i = 0; i < t->n; i++)
        if (far(cl, t->addr[i]))
            probe(cl, t->addr[i]);
    if (session_punch(cl, ps->key) < 0)
        return false;
    ps->punch_asked_ms = now;
    ps->own_dial_ms = now + DIAL_OWN_DIAL_MS;
    if (promising(cl, ps) && !link_direct_up(ps)) {
        if (ps->headstart_until_ms == 0)
            ps->headstart_from_ms = now;
        ps->headstart_until_ms = now + DIAL_HEADSTART_MS;
    }
    return true;
}

/* A direct attempt: near candidates dialled, far ones punched (or, with no session yet,
 * dialled uncoordinated once DIAL_SESSION_WAIT_MS has passed). */
static void attempt(struct client *cl, struct peer_state *ps, bool urgent, uint64_t now)
{
    struct candidates t;

    if (cl->closing || link_direct_up(ps))
        return;
    targets(cl, ps, &t);
    dial_names(cl, ps);
    dial_targets(cl, ps, &t, false);
    if (!session_up(cl)) {
        bool any = false;

        for (size_t i = 0; i < t.n; i++)
            any |= far(cl, t.addr[i]);
        if (any && ps->session_wait_ms == 0)
            ps->session_wait_ms = now + DIAL_SESSION_WAIT_MS;
    } else {
        punch(cl, ps, &t, urgent, now);
    }
    arm(cl, ps);
}

int dial_static(struct client *cl, const char *addr, const uint8_t *key, uint64_t *serial)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    struct peer_state *ps = key != NULL ? peers_get(&cl->peers, key) : NULL;
    int rc;

    if (key != NULL && ps == NULL)
        return QPC_ERR_NOMEM;
    if (!qpc_addr_is_numeric(addr))   /* the link, and its serial, come with the answer */
        return dial_name(cl, key, addr, serial);
    if (key != NULL) {
        if ((rc = dial_addr(cl, ps, addr)) == 0)
            *serial = ps->links->serial;   /* link_new puts the newest first */
        return rc;
    }
    if ((rc = qpc_addr_resolve(addr, &ss, &len)) < 0)
        return rc;
    return dial_keyless_at(cl, addr, (struct sockaddr *)&ss, len, serial);
}

void dial_fresh_address(struct client *cl, struct peer_state *ps, const char *addr)
{
    if (!link_direct_up(ps) && !link_direct_at(ps, addr))
        dial_addr(cl, ps, addr);
}

void dial_discovered(struct client *cl, struct peer_state *ps, const struct candidates *cands)
{
    /* mDNS is link-local: these are dialled at once, by both sides of the pair (what is
     * held for the peer goes as soon as a link is up; duplicates are closed). */
    candidates_merge(&ps->cands, cands);
    for (size_t i = 0; i < cands->n && i < DIAL_TARGETS_MAX && !link_direct_up(ps); i++)
        if (!link_direct_at(ps, cands->addr[i]) && !candidates_contains(&cl->my_cands, cands->addr[i]))
            dial_addr(cl, ps, cands->addr[i]);
}

void dial_known(struct client *cl)
{
    const struct qpc_peer *p = NULL;

    while ((p = qpc_identity_peer_next(cl->id, p)) != NULL) {
        struct peer_state *ps;

        if (p->kind != QPC_PEER_CLIENT || p->address_count == 0)
            continue;
        ps = peers_get(&cl->peers, p->key);
        if (ps != NULL && link_best(ps) == NULL) {
            /* mesh links: near candidates and typed names only; far ones are punched
             * when something waits for the peer, not for every contact at every start */
            struct candidates t;

            targets(cl, ps, &t);
            dial_names(cl, ps);
            dial_targets(cl, ps, &t, !coordinated(cl));
        }
    }
}

/* ---- the relayed path ------------------------------------------------------------ */

static int relay_send_cb(void *user, const uint8_t *pkt, size_t len)
{
    struct peer_state *ps = user;

    ps->relay_used_ms = now_ms();
    return session_relay_send(ps->cl, ps->key, pkt, len);
}

static struct qpc_quic_relay *relay_path(struct client *cl, struct peer_state *ps)
{
    if (ps->relay == NULL && session_up(cl) &&
        qpc_quic_relay_new(cl->ep, relay_send_cb, ps, &ps->relay) < 0)
        ps->relay = NULL;
    return ps->relay;
}

/* Dials the peer through the relay unless a relayed link exists (up or connecting). */
static void dial_relayed(struct client *cl, struct peer_state *ps)
{
    struct qpc_quic_relay *r;
    struct link *l;

    if (cl->closing || link_relayed_any(ps) || link_direct_up(ps) || (r = relay_path(cl, ps)) == NULL)
        return;
    l = link_new(cl, ps, true, session_address(cl));
    if (l == NULL)
        return;
    l->initiated = true;
    if (qpc_quic_connect_relayed(cl->ep, r, QPC_ALPN_P2P, ps->key, l, &l->conn) < 0)
        link_free(l);
    else
        ps->relay_used_ms = now_ms();
}

/* A key we know nothing of: its peer state only within the strangers' bound. */
static struct peer_state *peer_for(struct client *cl, const uint8_t key[static QPC_KEY_LEN], const char *what,
                                   uint64_t now)
{
    struct peer_state *ps = peers_find(&cl->peers, key);

    if (ps != NULL || memcmp(key, my_key(cl), QPC_KEY_LEN) == 0)
        return ps;
    if (qpc_identity_peer_get(cl->id, key) != NULL)
        return peers_get(&cl->peers, key);
    if (!punch_stranger_admit(peers_strangers(&cl->peers))) {
        refused(cl, what, now);
        return NULL;
    }
    ps = peers_get(&cl->peers, key);
    if (ps != NULL)
        ps->stranger = true;
    return ps;
}

void dial_relay_input(struct client *cl, const uint8_t key[static QPC_KEY_LEN],
                      const uint8_t *pkt, size_t len)
{
    uint64_t now = now_ms();
    struct peer_state *ps = peer_for(cl, key, "a stranger's relayed connection", now);
    struct qpc_quic_relay *r = ps != NULL ? relay_path(cl, ps) : NULL;

    if (r == NULL)
        return;
    ps->relay_used_ms = now;
    qpc_quic_endpoint_input_relayed(cl->ep, r, pkt, len);
}

void dial_session_down(struct client *cl)
{
    struct peer_state *ps = NULL;

    while ((ps = peers_next(&cl->peers, ps)) != NULL) {
        if (ps->relay != NULL) {
            qpc_quic_relay_free(ps->relay);   /* ends relayed links: node.c's cb_closed */
            ps->relay = NULL;
        }
        ps->headstart_until_ms = 0;           /* no relay to hold back any more */
    }
}

void dial_check_stalled(struct client *cl, uint64_t now)
{
    struct peer_state *ps = NULL;
    struct link *l;

    while ((ps = peers_next(&cl->peers, ps)) != NULL) {
        LL_FOREACH(ps->links, l) {
            char who[13];

            if (l->retiring && l->up && now > l->retire_ms + DIAL_STALL_MS) {
                qpc_quic_conn_close(l->conn, QPC_QUIC_APP_NO_ERROR, "direct path up");
                l->up = false;   /* its acks will not come: custody sends again */
                continue;
            }
            if (l->relayed || !session_up(cl) || !link_stalled(l, now, DIAL_STALL_MS))
                continue;   /* no relay to fall back to: QUIC's own timeout decides */
            short_id(who, ps->key);
            if (l->unacked > 0)
                info(cl, "%s: direct path stalled (%s), back to the relay", who, l->addr);
            else
                qpc_log_info("node", "link to %s stalled (%s): closed", who, l->addr);
            qpc_quic_conn_close(l->conn, QPC_QUIC_APP_NO_ERROR, "path stalled");
            l->up = false;
            ps->punch_failed_digest = digest_of(cl, ps);   /* no head start next time */
        }
    }
}

void dial_gc(struct client *cl, uint64_t now)
{
    struct peer_state *ps = NULL;

    while ((ps = peers_next(&cl->peers, ps)) != NULL) {
        if (ps->relay != NULL && !link_relayed_any(ps) && now > ps->relay_used_ms + DIAL_RELAY_IDLE_MS) {
            qpc_quic_relay_free(ps->relay);
            ps->relay = NULL;
        }
    }
}

/* ---- the race ---------------------------------------------------------------------- */

/* Arms ps's timer for the nearest thing due, or stops it. */
static void arm(struct client *cl, struct peer_state *ps)
{
    uint64_t now = now_ms(), next = UINT64_MAX;
    const uint64_t due[] = { ps->headstart_until_ms, ps->own_dial_ms, ps->session_wait_ms,
                             ps->reaching ? ps->race_deadline_ms : 0 };

    for (size_t i = 0; i < sizeof(due) / sizeof(due[0]); i++)
        if (due[i] != 0 && due[i] < next)
            next = due[i];
    ev_timer_stop(cl->loop, &ps->timer);
    if (next == UINT64_MAX || cl->closing)
        return;
    ev_timer_set(&ps->timer, next > now ? (double)(next - now) / 1000.0 : 0.0, 0.0);
    ev_timer_start(cl->loop, &ps->timer);
}

void dial_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct peer_state *ps = w->data;
    struct client *cl = ps->cl;
    uint64_t now = now_ms();
    struct candidates t;

    if (ps->headstart_until_ms != 0 && now >= ps->headstart_until_ms &&
        now < ps->headstart_from_ms + DIAL_HEADSTART_MAX_MS && !link_direct_up(ps) && direct_heard(cl, ps))
        ps->headstart_until_ms = now + 10;   /* the handshake is finishing: a little longer */
    if (ps->headstart_until_ms != 0 && now >= ps->headstart_until_ms) {
        ps->headstart_until_ms = 0;
        /* no direct path in time: later messages in this process do not wait for it */
        if (!link_direct_up(ps))
            ps->punch_failed_digest = ps->punch.digest;
        handover_flush(cl);
    }
    if (ps->own_dial_ms != 0 && now >= ps->own_dial_ms) {
        ps->own_dial_ms = 0;
        if (!link_direct_up(ps)) {
            targets(cl, ps, &t);
            dial_targets(cl, ps, &t, true);
        }
    }
    if (ps->session_wait_ms != 0 && now >= ps->session_wait_ms) {
        ps->session_wait_ms = 0;
        if (!link_direct_up(ps)) {
            targets(cl, ps, &t);
            if (session_up(cl))
                punch(cl, ps, &t, true, now);
            else
                dial_targets(cl, ps, &t, true);
        }
    }
    if (ps->reaching && link_usable(ps, now) != NULL)
        ps->reaching = false;
    if (ps->reaching && now >= ps->race_deadline_ms) {
        char who[13];

        ps->reaching = false;
        short_id(who, ps->key);
        /* What the race was for may have gone meanwhile, over the mesh (in flight on a
         * route, or delivered): then there is nothing to hand over, and nothing to say. */
        if (!custody_waits_for(&cl->custody, cl->store, ps->key)) {
            qpc_log_debug("node", "no direct path to %s within %lld ms; nothing waits for it", who,
                          (long long)cl->cc->direct_timeout_ms);
        } else {
            qpc_log_info("node", "no path to %s within %lld ms: handing over to the server", who,
                         (long long)cl->cc->direct_timeout_ms);
            handover_to_server(cl, ps->key);
        }
    }
    arm(cl, ps);
}

/* The server's part of a race: the relayed path at once, and peer_info. Until its answer
 * says whether a direct attempt runs, a relayed link that is up already waits (at most
 * DIAL_HEADSTART_MS; the answer is one round trip, the relayed handshake two). */
static void race_server(struct client *cl, struct peer_state *ps, uint64_t now)
{
    ps->relay_on_answer = false;
    dial_relayed(cl, ps);
    session_peer_info(cl, ps->key);
    if (ps->headstart_until_ms < now + DIAL_HEADSTART_MS && ps->punch_failed_digest != digest_of(cl, ps)) {
        if (ps->headstart_until_ms == 0)
            ps->headstart_from_ms = now;
        ps->headstart_until_ms = now + DIAL_HEADSTART_MS;
    }
}

/* A race; a redial's server part waits for peer_info's answer (dial_peer_info) before
 * it dials the relayed path: a peer that is not at the server costs one small request
 * per back-off, not a relayed handshake (large Initials, retried until its timeout). */
static void reach(struct client *cl, struct peer_state *ps, bool redial)
{
    uint64_t now = now_ms();

    if (link_usable(ps, now) != NULL) {
        handover_flush(cl);
        return;
    }
    if (ps->reaching || cl->closing)
        return;
    ps->reaching = true;
    ps->race_deadline_ms = now + (uint64_t)cl->cc->direct_timeout_ms;
    attempt(cl, ps, true, now);
    if (session_up(cl) && redial && !link_relayed_any(ps)) {
        ps->relay_on_answer = true;
        session_peer_info(cl, ps->key);
    } else if (session_up(cl)) {
        race_server(cl, ps, now);
    }
    arm(cl, ps);
}

void dial_reach(struct client *cl, struct peer_state *ps)
{
    reach(cl, ps, false);
}

void dial_retry(struct client *cl, const uint8_t key[static QPC_KEY_LEN], uint64_t now)
{
    struct peer_state *ps;

    if (link_toward(cl, key) != NULL)
        return;
    ps = peers_find(&cl->peers, key);
    if (ps == NULL || now < ps->next_dial_ms || ps->reaching)
        return;
    ps->next_dial_ms = now + ps->backoff_ms;
    ps->backoff_ms = ps->backoff_ms * 2 > DIAL_BACKOFF_MAX_MS ? DIAL_BACKOFF_MAX_MS : ps->backoff_ms * 2;
    reach(cl, ps, true);
}

void dial_retry_direct(struct client *cl, uint64_t now)
{
    struct peer_state *ps = NULL;

    while ((ps = peers_next(&cl->peers, ps)) != NULL) {
        struct link *l = link_best(ps);

        if (l != NULL && l->relayed && now >= ps->next_direct_try_ms) {
            ps->next_direct_try_ms = now + DIAL_DIRECT_RETRY_MS;
            attempt(cl, ps, false, now);
        }
    }
}

void dial_session_up(struct client *cl)
{
    struct peer_state *ps = NULL;
    uint64_t now = now_ms();

    dial_refresh_candidates(cl, now, true);
    while ((ps = peers_next(&cl->peers, ps)) != NULL) {
        if (!ps->reaching && ps->session_wait_ms == 0)
            continue;
        ps->session_wait_ms = 0;
        attempt(cl, ps, true, now);
        if (ps->reaching)
            race_server(cl, ps, now);
        arm(cl, ps);
    }
}

/* ---- what others tell ------------------------------------------------------------ */

/* Adds the server's texts to c (checked), observed addresses first. Returns what was
 * new: LEARNED_OBSERVED when an observed address was, LEARNED_OTHER for a candidate. */
enum { LEARNED_OBSERVED = 1, LEARNED_OTHER = 2 };
static int learn(struct client *cl, struct candidates *c, char *const *addrs, size_t n_addrs,
                 char *const *cands, size_t n_cands)
{
    int what = 0;

    for (size_t i = 0; i < n_addrs && i < CANDIDATES_MAX; i++)
        if (candidates_add(c, addrs[i], cl->allow_loopback))
            what |= LEARNED_OBSERVED;
    for (size_t i = 0; i < n_cands && i < 2 * CANDIDATES_MAX; i++)
        if (candidates_add(c, cands[i], cl->allow_loopback))
            what |= LEARNED_OTHER;
    return what;
}

/* True when no observed address has the port of a registered candidate: the peer's NAT
 * gave it another port (with no candidates registered nothing is known: false). */
static bool remaps(char *const *addrs, size_t n_addrs, char *const *cands, size_t n_cands)
{
    if (n_addrs == 0 || n_cands == 0)
        return false;
    for (size_t i = 0; i < n_addrs && i < CANDIDATES_MAX; i++)
        for (size_t j = 0; j < n_cands && j < 2 * CANDIDATES_MAX; j++)
            if (port_of(addrs[i]) == port_of(cands[j]))
                return false;
    return true;
}

static void direct_again(struct client *cl, struct peer_state *ps, int learned, uint64_t now);

void dial_peer_info(struct client *cl, const uint8_t key[static QPC_KEY_LEN], bool online,
                    char *const *addrs, size_t n_addrs, char *const *cands, size_t n_cands)
{
    struct peer_state *ps = peers_find(&cl->peers, key);
    uint64_t now = now_ms();
    struct candidates before;
    int learned;
    bool relay;

    if (ps == NULL)
        return;
    relay = ps->relay_on_answer;
    ps->relay_on_answer = false;
    if (!online) {
        /* Not at the server: unless a near dial may still answer, it holds the message now
         * (a redial's relayed handshake is not started: no one is there to answer it). */
        if (ps->reaching && ps->dialing <= 0 && link_best(ps) == NULL) {
            ps->reaching = false;
            ps->headstart_until_ms = 0;
            handover_to_server(cl, key);
            arm(cl, ps);
        }
        return;
    }
    /* We asked about this peer: its observed addresses go into the directory (numeric
     * only), as anything a server we are connected to says. */
    for (size_t i = 0; i < n_addrs && i < 4; i++)
        if (routes_address_usable(addrs[i], QPC_PEER_SOURCE_SERVER) &&
            routes_learn_told(cl->id, cl->routes, key, addrs[i], QPC_PEER_SOURCE_SERVER, now))
            cl->id_dirty = true;
    /* A redial's relayed path, now that the peer is known to be there (the race's rules
     * from here on: a promising punch below gives the direct attempt its head start). */
    if (relay && ps->reaching && link_best(ps) == NULL)
        dial_relayed(cl, ps);
    ps->nat_remaps = remaps(addrs, n_addrs, cands, n_cands);
    targets(cl, ps, &before);
    learned = learn(cl, &ps->cands, addrs, n_addrs, cands, n_cands);
    /* An observed address counts as new only if no punch could have aimed at it yet (the
     * directory may have had it: a repeat contact punches once, not twice). */
    if (learned & LEARNED_OBSERVED) {
        char norm[CANDIDATE_TEXT_MAX];

        learned &= ~LEARNED_OBSERVED;
        for (size_t i = 0; i < n_addrs && i < CANDIDATES_MAX; i++)
            if (candidate_normalize(addrs[i], cl->allow_loopback, norm) && !candidates_contains(&before, norm))
                learned |= LEARNED_OBSERVED;
        if (learned == 0)
            learned = LEARNED_OTHER;
    }
    if (learned != 0 && (ps->reaching || link_best(ps) != NULL))
        direct_again(cl, ps, learned, now);
    /* What the answer started decides whether the relay still waits: a near dial, or a
     * promising punch (its NAT keeps ports); else the relay carries now. */
    if (ps->dialing <= 0 && !(ps->punch_asked_ms != 0 && promising(cl, ps))) {
        ps->headstart_until_ms = 0;
        handover_flush(cl);
    }
    arm(cl, ps);
}

/* New candidates of ps from the server: a new punch when its public address is new (or
 * none runs), else the new ones (its LAN addresses) join the punch under way. */
static void direct_again(struct client *cl, struct peer_state *ps, int learned, uint64_t now)
{
    if ((learned & LEARNED_OBSERVED) || ps->punch_asked_ms == 0 || now > ps->punch_asked_ms + 1000) {
        attempt(cl, ps, ps->reaching, now);
    } else {
        /* Only its LAN addresses are new and a punch is under way: near ones are dialled,
         * far ones probed now and dialled with the others (own_dial_ms). */
        struct candidates t;

        targets(cl, ps, &t);
        dial_targets(cl, ps, &t, false);
        for (size_t i = 0; i < t.n; i++)
            if (far(cl, t.addr[i]) && !link_direct_at(ps, t.addr[i]))
                probe(cl, t.addr[i]);
    }
}

void dial_punch_notice(struct client *cl, const uint8_t key[static QPC_KEY_LEN], char *const *addrs,
                       size_t n_addrs, char *const *cands, size_t n_cands)
{
    uint64_t now = now_ms();
    struct peer_state *ps = peer_for(cl, key, "a stranger's punch notice", now);
    struct candidates told = { 0 };
    size_t max;

    if (ps == NULL || cl->closing)
        return;
    learn(cl, &told, addrs, n_addrs, cands, n_cands);
    ps->nat_remaps = remaps(addrs, n_addrs, cands, n_cands);
    candidates_merge(&ps->cands, &told);
    if (link_direct_up(ps) || told.n == 0)
        return;
    /* The asker opened its NAT toward us before asking: answer at once, within budget. */
    if (punch_allow(&cl->punch, &ps->punch, digest_of(cl, ps), ps->stranger, true, now) != PUNCH_OK) {
        refused(cl, "a punch notice", now);
        return;
    }
    max = ps->stranger ? PUNCH_STRANGER_TARGETS_MAX : PUNCH_TARGETS_MAX;
    for (size_t i = 0; i < told.n && i < max; i++) {
        if (link_direct_at(ps, told.addr[i]) || candidates_contains(&cl->my_cands, told.addr[i]))
            continue;
        if (far(cl, told.addr[i]))
            probe(cl, told.addr[i]);   /* our mapping first: the Initial below follows it */
        dial_addr(cl, ps, told.addr[i]);
    }
}

void dial_link_candidates(struct client *cl, struct link *l, char *const *addrs, size_t n,
                          uint64_t instance, uint32_t links)
{
    struct peer_state *ps = l->ps;
    bool changed = false;
    struct link *o;

    l->has_instance = true;
    l->peer_instance = instance;
    /* The peer has this direct link only: any other I hold to that process is dead at its
     * end (closed while the path was down, the goodbye lost) and would win the duplicate
     * rule against this live one. */
    if (links == 1 && !l->relayed && l->up) {
        LL_FOREACH(ps->links, o) {
            if (o != l && o->up && !o->relayed && o->has_instance && o->peer_instance == instance) {
                qpc_quic_conn_close(o->conn, QPC_QUIC_APP_NO_ERROR, "gone at the peer");
                o->up = false;
            }
        }
    }
    for (size_t i = 0; i < n && i < CANDIDATES_MAX; i++)
        changed |= candidates_add(&ps->cands, addrs[i], cl->allow_loopback);
    link_dedup(ps, my_key(cl));
    /* New addresses while only relayed: a new chance for a direct path. */
    if (changed && l->relayed && !link_direct_up(ps))
        attempt(cl, ps, false, now_ms());
}

void dial_punch_refused(struct client *cl, const uint8_t key[static QPC_KEY_LEN])
{
    struct peer_state *ps = peers_find(&cl->peers, key);

    if (ps == NULL || ps->headstart_until_ms == 0)
        return;
    ps->headstart_until_ms = 0;   /* the peer was not told: the relay need not wait */
    handover_flush(cl);
    arm(cl, ps);
}

/* ---- my own candidates ------------------------------------------------------------ */

void dial_observed(struct client *cl, const char *observed)
{
    char norm[CANDIDATE_TEXT_MAX];

    if (!candidate_normalize(observed, cl->allow_loopback, norm) || strcmp(norm, cl->server_observed) == 0)
        return;
    snprintf(cl->server_observed, sizeof(cl->server_observed), "%s", norm);
    dial_refresh_candidates(cl, now_ms(), false);
}

void dial_refresh_candidates(struct client *cl, uint64_t now, bool force)
{
    char host[QPC_ADDRESS_MAX + 1] = "";
    uint16_t port;
    struct candidates c;
    struct peer_state *ps = NULL;
    char *texts[CANDIDATES_MAX];

    if (!force && now < cl->next_cands_ms && cl->my_cands.n > 0)
        return;
    cl->next_cands_ms = now + 5000;
    qpc_addr_parse(cl->cc->listen, host, sizeof(host), &port);
    candidates_gather(&c, host, cl->listen_port);
    local_nets_gather(&cl->nets);
    if (cl->server_observed[0] != '\0')
        candidates_add(&c, cl->server_observed, true);
    if (!force && candidates_digest(&c) == candidates_digest(&cl->my_cands) && c.n == cl->my_cands.n)
        return;
    cl->my_cands = c;
    for (size_t i = 0; i < c.n; i++)
        texts[i] = cl->my_cands.addr[i];
    if (session_up(cl))
        session_register_candidates(cl, texts, c.n);
    while ((ps = peers_next(&cl->peers, ps)) != NULL) {
        struct link *l;

        LL_FOREACH(ps->links, l)
            if (l->up)
                link_send_candidates(l, &cl->my_cands, cl->instance);
    }
}

/* ---- links settling ---------------------------------------------------------------- */

void dial_settled(struct peer_state *ps)
{
    if (ps->dialing > 0)
        ps->dialing--;
}

void dial_link_gone(struct client *cl, struct peer_state *ps, bool came_up)
{
    if (came_up && !cl->closing && link_best(ps) == NULL && custody_waits_for(&cl->custody, cl->store, ps->key))
        dial_reach(cl, ps);
}

void dial_link_up(struct client *cl, struct link *l, uint64_t now)
{
    struct peer_state *ps = l->ps;
    char who[13];

    short_id(who, ps->key);
    l->up_ms = now;
    if (!l->relayed) {
        /* A direct path takes over from the relay (the other side may have left the
         * relay first, so remember that we were relayed rather than look for the link). */
        struct link *o, *otmp;
        bool had_relay = ps->was_relayed;

        LL_FOREACH_SAFE(ps->links, o, otmp) {
            if (o == l)
                continue;
            if (o->relayed && o->initiated) {
                /* mine: closed once what went out on it is acked (no copy sent twice);
                 * the peer closes the relayed links it dialled itself */
                had_relay |= o->up;
                if (o->up && o->unacked > 0) {
                    o->retiring = true;
                    o->retire_ms = now;
                } else {
                    qpc_quic_conn_close(o->conn, QPC_QUIC_APP_NO_ERROR, "direct path up");
                    o->up = false;
                }
            } else if (o->relayed) {
                had_relay |= o->up;
            } else if (!o->up && o->initiated) {
                /* the other candidates' handshakes: no point retrying them for 10 s */
                qpc_quic_conn_close(o->conn, QPC_QUIC_APP_NO_ERROR, "another path is up");
            }
        }
        if (had_relay)
            info(cl, "%s: direct path works (%s), leaving the relay", who, l->addr);
        if (ps->punch_asked_ms != 0) {
            session_report_direct(cl, ps->key, (uint32_t)(now - ps->punch_asked_ms));
            ps->punch_asked_ms = 0;
        }
        ps->was_relayed = false;
        ps->headstart_until_ms = 0;
        ps->own_dial_ms = 0;
        ps->session_wait_ms = 0;
        ps->punch_failed_digest = 0;
        ps->punch.tries = 0;       /* what worked costs no tries: only failures are bounded */
    } else {
        ps->was_relayed = true;
        ps->next_direct_try_ms = now + DIAL_DIRECT_RETRY_MS;
    }
    qpc_log_info("node", "link to %s up (%s %s)", who, l->relayed ? "relayed via" : "direct", l->addr);
    ps->stranger = false;          /* the handshake proved the key */
    ps->backoff_ms = DIAL_BACKOFF_MIN_MS;
    if (link_usable(ps, now) != NULL)
        ps->reaching = false;
    link_send_candidates(l, &cl->my_cands, cl->instance);
    arm(cl, ps);
}
