/*
 * repl.c: the interactive client, a libedit line editor on the node's libev loop.
 *
 * The one idea: the REPL is a table. Each row is a command (its words, its usage, one
 * line of help, a handler); /help, the usage shown on wrong arguments and tab completion
 * are all generated from the rows, so they cannot drift apart. Lines come from the line
 * editor (lineedit.c: libedit on the loop), so messages arriving while the user types
 * are printed above the prompt by output.c and the typed line is redrawn.
 *
 * Built without mesh (QPC_MESH 0) the rows of the mesh's own commands stay, without a
 * handler: typed, they say this build has no mesh; /help and completion leave them out.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <signal.h>
#include <sodium.h>

#include "client.h"
#include "contacts.h"
#if QPC_MESH
#include "announce.h"
#include "discover.h"
#endif
#include "history.h"
#include "homes.h"
#include "lineedit.h"
#include "node.h"
#include "output.h"
#include "routes.h"
#include "session.h"
#include "share.h"
#include "state.h"
#include "qpc/error.h"
#include "qpc/log.h"

struct command {
    const char *name;        /* words typed, e.g. "/mesh send" */
    const char *args;        /* usage of the arguments, e.g. "<peer_id> <msg>" */
    const char *help;
    int (*fn)(struct client *cl, char *args);   /* 0, or -1 to print the usage; NULL: a
                                                 * mesh command this build has not */
    int nargs_min;           /* words required in args (the last may be "rest of line") */
};

static bool g_quit;

/* Splits off the next word of *s (NULL when none is left). */
static char *next_word(char **s)
{
    char *w, *p = *s;

    while (*p && isspace((unsigned char)*p))
        p++;
    if (*p == '\0')
        return NULL;
    w = p;
    while (*p && !isspace((unsigned char)*p))
        p++;
    if (*p)
        *p++ = '\0';
    *s = p;
    return w;
}

/* The rest of the line without surrounding blanks, or NULL if empty. */
static char *rest(char **s)
{
    char *p = *s, *e;

    while (*p && isspace((unsigned char)*p))
        p++;
    if (*p == '\0')
        return NULL;
    e = p + strlen(p);
    while (e > p && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return p;
}

/* Resolves a typed peer: a full key, a name, or a unique id prefix (contacts.c). */
static int resolve_peer(struct client *cl, const char *text, uint8_t key[static QPC_KEY_LEN])
{
    char err[1024];
    int rc = routes_resolve(cl->id, cl->routes, text, key, err, sizeof(err));

    if (rc < 0)
        say(cl, "%s", err);
    return rc;
}

/* A peer to send to: resolved, and not oneself. */
static int resolve_recipient(struct client *cl, const char *text, uint8_t key[static QPC_KEY_LEN])
{
    if (resolve_peer(cl, text, key) < 0)
        return -1;
    if (memcmp(key, qpc_identity_public_key(cl->id), QPC_KEY_LEN) == 0) {
        say(cl, "'%s' is your own peer id: a message to yourself is not sent (%s lists the "
            "others)", text, QPC_MESH ? "/mesh peers" : "qpc peer list");
        return -1;
    }
    return 0;
}

/* Text over the largest message is refused whole: nothing is ever sent in part. */
static bool message_fits(struct client *cl, const char *msg)
{
    size_t len = strlen(msg);

    if (len <= MESSAGE_TEXT_MAX)
        return true;
    say(cl, "that message is %zu bytes; the largest is %d bytes: nothing was sent "
        "(send it in parts)", len, MESSAGE_TEXT_MAX);
    return false;
}

/* ---- handlers ------------------------------------------------------------------------ */

static int cmd_help(struct client *cl, char *args);

#if QPC_MESH
#define MESH_ONLY(fn) fn
static int cmd_peers(struct client *cl, char *args)
{
    discover_print(cl);
    return 0;
}
#else
#define MESH_ONLY(fn) NULL   /* the row stays: typed, it says this build has no mesh */
#endif

static int cmd_server(struct client *cl, char *args)
{
    char *addr = next_word(&args);
    int rc;

    if (addr == NULL || rest(&args) != NULL)
        return -1;
    rc = qpc_identity_pin_note(cl->id, QPC_PIN_ADDRESS, addr, now_ms(), NULL);
    if (rc < 0) {
        say(cl, "cannot note server '%s': %s", addr, qpc_strerror(rc));
        return 0;
    }
    cl->id_dirty = true;
    state_save_identity(cl, true);
    state_save_server(cl, addr);
    say(cl, "noted server %s (use /connect %s to connect)", addr, addr);
    return 0;
}

/* /mesh add <key> <host:port> [name], or /mesh add qpc:<id>?name=..&addr=.. as pasted */
static int cmd_add(struct client *cl, char *args)
{
    char *first = next_word(&args), *addr, *name;
    struct contacts_card card = { 0 };
    const char *addrs[CONTACTS_CARD_ADDRS_MAX];
    char err[512], note[512], label[13];
    int rc;

    if (first == NULL)
        return -1;
    if (contacts_is_card(first)) {
        if (rest(&args) != NULL)
            return -1;
        if (contacts_card_parse(first, &card, err, sizeof(err)) < 0) {
            say(cl, "%s", err);
            return 0;
        }
    } else {
        addr = next_word(&args);
        name = rest(&args);
        if (addr == NULL)
            return -1;
        if (qpc_key_from_text(card.key, first) < 0) {
            say(cl, "'%s' is not a full peer key (64 hex characters) nor a qpc: text", first);
            return 0;
        }
        if (name != NULL && contacts_check_name(cl->id, card.key, name, err, sizeof(err)) < 0) {
            say(cl, "%s", err);
            return 0;
        }
        snprintf(card.addrs[0], sizeof(card.addrs[0]), "%s", addr);
        card.naddrs = 1;
        snprintf(card.name, sizeof(card.name), "%s", name != NULL ? name : "");
    }
    for (size_t i = 0; i < card.naddrs; i++)
        addrs[i] = card.addrs[i];
    rc = contacts_add(cl->id, card.key, card.name, addrs, card.naddrs, now_ms(), note, sizeof(note),
                      err, sizeof(err));
    if (rc < 0) {
        say(cl, "%s", err);
        return 0;
    }
    cl->id_dirty = true;
    state_save_identity(cl, true);
#if QPC_MESH
    node_peer_seen(cl, card.key, NULL, QPC_PEER_SOURCE_MANUAL);
#endif
    short_id(label, card.key);
    say(cl, "added peer %s%s%s%s%s", label, card.naddrs > 0 ? " at " : "", card.naddrs > 0 ? card.addrs[0] : "",
        output_peer_name(cl, card.key) != NULL ? " as " : "",
        output_peer_name(cl, card.key) != NULL ? output_peer_name(cl, card.key) : "");
    if (note[0] != '\0')
        say(cl, "the name '%s' was left out: %s (/name %s <name> gives one)", card.name, note, label);
    return 0;
}

/* /name <peer|me> <name|->: what a peer is called here (or what I call myself). */
static int cmd_name(struct client *cl, char *args)
{
    char *who = next_word(&args), *name = next_word(&args);
    uint8_t key[QPC_KEY_LEN];
    char err[1024], label[13];
    bool me;

    if (who == NULL || name == NULL || rest(&args) != NULL)
        return -1;
    me = strcmp(who, "me") == 0;
    if (!me && resolve_peer(cl, who, key) < 0)
        return 0;
    if (contacts_set_name(cl->id, me ? NULL : key, name, err, sizeof(err)) < 0) {
        say(cl, "%s", err);
        return 0;
    }
    cl->id_dirty = true;
    state_save_identity(cl, true);
    if (me)
        say(cl, strcmp(name, "-") == 0 ? "you have no name now" : "your name is %s (in /mesh identity "
            "and the qpc: text others add)", name);
    else if (strcmp(name, "-") == 0)
        short_id(label, key), say(cl, "%s has no name now", label);
    else
        short_id(label, key), say(cl, "%s is %s now: '/mesh send %s <text>' reaches it", label, name, name);
    return 0;
}

#if QPC_MESH
static int cmd_mesh_send(struct client *cl, char *args)
{
    char *who = next_word(&args), *msg = rest(&args);
    uint8_t key[QPC_KEY_LEN], id[QPC_ID_LEN];
    char idh[13], wh[13];
    int rc;

    if (who == NULL || msg == NULL)
        return -1;
    if (!message_fits(cl, msg) || resolve_recipient(cl, who, key) < 0)
        return 0;
    rc = node_send_text(cl, key, NULL, msg, id);
    if (rc < 0) {
        say(cl, "cannot send: %s", qpc_strerror(rc));
        return 0;
    }
    qpc_hex_encode(idh, id, 6);
    say(cl, "sending %s to %s ...", idh, output_label(cl, key, wh));
    return 0;
}
#endif

static int cmd_broadcast(struct client *cl, char *args)
{
    char *topic = next_word(&args), *msg = rest(&args);
    uint8_t id[QPC_ID_LEN];
    char idh[13];
    int rc;

    if (topic == NULL || msg == NULL)
        return -1;
    if (!message_fits(cl, msg))
        return 0;
    rc = node_broadcast(cl, topic, msg, id);
    if (rc < 0) {
        say(cl, "cannot broadcast: %s", qpc_strerror(rc));
        return 0;
    }
    qpc_hex_encode(idh, id, 6);
#if QPC_MESH
    say(cl, "broadcast %s on #%s to %zu link%s", idh, topic, node_link_count(cl),
        node_link_count(cl) == 1 ? "" : "s");
#else
    if (session_up(cl))
        say(cl, "broadcast %s on #%s to server %s", idh, topic, session_address(cl));
    else
        say(cl, "broadcast %s on #%s kept: no server session now; it goes when one comes up "
            "(/connect)", idh, topic);
#endif
    return 0;
}

static int cmd_subscribe(struct client *cl, char *args)
{
    char *topic = next_word(&args), *key = next_word(&args);
    int rc;

    if (topic == NULL || rest(&args) != NULL)
        return -1;
    rc = key != NULL ? qpc_broadcast_subscribe_text(cl->channels, topic, key, NULL)
                     : qpc_broadcast_subscribe(cl->channels, topic, NULL, NULL);
    if (rc < 0) {
        say(cl, "cannot subscribe to '%s': %s", topic, output_channel_refusal(topic, key != NULL, rc));
        return 0;
    }
    if (key != NULL)
        state_remember_key_text(topic, key);
    state_save_subscriptions(cl);
    say(cl, "subscribed to #%s (%s channel)", topic, key != NULL ? "private" : "open");
    return 0;
}

static int cmd_unsubscribe(struct client *cl, char *args)
{
    char *topic = next_word(&args);

    if (topic == NULL || rest(&args) != NULL)
        return -1;
    if (qpc_broadcast_unsubscribe(cl->channels, topic) < 0) {
        say(cl, "not subscribed to '%s'", topic);
        return 0;
    }
    state_remember_key_text(topic, NULL);
    state_save_subscriptions(cl);
    say(cl, "unsubscribed from #%s", topic);
    return 0;
}

#if QPC_MESH
/* The name /mesh route shows: the directory's (the user may rename), else the route's. */
static const char *route_name(const struct client *cl, const struct qpc_route *r)
{
    const char *name = output_peer_name(cl, r->dest);

    return name != NULL ? name : r->name[0] ? r->name : "-";
}

static int cmd_route(struct client *cl, char *args)
{
    struct qpc_route *r = NULL;
    size_t n = 0;
    uint64_t now = now_ms();

    if (rest(&args) != NULL)
        return -1;
    if (qpc_route_list(cl->routes, &r, &n) < 0)
        return 0;
    say(cl, "%-12s %-10s %-8s %-28s %4s %6s %-8s %s", "destination", "name", "via", "next hop", "hops",
        "age", "source", "path now");
    for (size_t i = 0; i < n; i++) {
        char dest[13], nh[QPC_ROUTE_ADDR_MAX + 16], path[QPC_ADDRESS_MAX + 32];

        short_id(dest, r[i].dest);
        if (r[i].via == QPC_ROUTE_VIA_PEER) {
            char vp[13];
            short_id(vp, r[i].via_peer);
            snprintf(nh, sizeof(nh), "peer %s", vp);
        } else {
            snprintf(nh, sizeof(nh), "%s", r[i].next_hop);
        }
        node_path_text(cl, r[i].dest, path, sizeof(path));
        char hops[12];

        if (r[i].hops == QPC_ROUTE_HOPS_UNKNOWN)
            snprintf(hops, sizeof(hops), "?");   /* from traffic: nobody vouches for a length */
        else
            snprintf(hops, sizeof(hops), "%u", r[i].hops);
        const char *home = homes_get(cl->homes, r[i].dest);

        say(cl, "%-12s %-10s %-8s %-28s %4s %5llus %-8s %s%s%s", dest, route_name(cl, &r[i]),
            qpc_route_via_name(r[i].via), nh, hops,
            (unsigned long long)(now > r[i].last_seen_ms ? (now - r[i].last_seen_ms) / 1000 : 0),
            qpc_route_source_name(r[i].source), r[i].retracted ? "retracted" : path,
            home != NULL ? ", home " : "", home != NULL ? home : "");
    }
    if (n == 0)
        say(cl, "(no routes yet)");
    free(r);
    return 0;
}

/* One line, so a script (tests/it_mesh_announce_quiet.sh, mesh_lab.py) can read it. */
static int cmd_announces(struct client *cl, char *args)
{
    struct announce_stats st;

    if (rest(&args) != NULL)
        return -1;
    announce_get_stats(cl, &st);
    say(cl, "announces: made %llu (triggered %llu), link frames %llu bytes %llu, server frames %llu "
        "bytes %llu, passed on %llu, links up %llu replayed %llu, received %llu refused %llu "
        "over rate %llu, spared %llu; seqno requests sent %llu received %llu answered %llu "
        "forwarded %llu bumped %llu dropped %llu; later copies %llu passed on %llu",
        (unsigned long long)st.made, (unsigned long long)st.triggered,
        (unsigned long long)st.link_frames, (unsigned long long)st.link_bytes,
        (unsigned long long)st.server_frames, (unsigned long long)st.server_bytes,
        (unsigned long long)st.passed_on, (unsigned long long)st.link_ups,
        (unsigned long long)st.replayed, (unsigned long long)st.received,
        (unsigned long long)st.refused, (unsigned long long)st.limited,
        (unsigned long long)st.skipped, (unsigned long long)st.sr_sent,
        (unsigned long long)st.sr_received, (unsigned long long)st.sr_answered,
        (unsigned long long)st.sr_forwarded, (unsigned long long)st.sr_bumped,
        (unsigned long long)st.sr_dropped, (unsigned long long)st.copies,
        (unsigned long long)st.copies_passed);
    return 0;
}
#endif

static int cmd_identity(struct client *cl, char *args)
{
    const struct qpc_pin *s = NULL;

    if (rest(&args) != NULL)
        return -1;
    say(cl, "peer id:  %s", qpc_identity_peer_id(cl->id));
    if (qpc_identity_name(cl->id) != NULL)
        say(cl, "name:     %s", qpc_identity_name(cl->id));
    say(cl, "file:     %s", cl->identity_path);
    if (QPC_MESH)
        say(cl, "listen:   %s", cl->listen_text);
    say(cl, "peers:    %zu known", qpc_identity_peer_count(cl->id));
    while ((s = qpc_identity_pin_next(cl->id, QPC_PIN_ADDRESS, s)) != NULL) {
        char hex[QPC_KEY_HEX_LEN] = "(key not pinned yet)";

        if (s->has_key)
            qpc_key_to_hex(hex, s->key);
        say(cl, "server:   %s %s", s->name, hex);
    }
    share_show(cl);
    return 0;
}

#define STORE_LISTED_MAX 64   /* recipients listed by /mesh store */

/* What waits for one recipient: in the store, or out of it (in flight, parked). */
struct waiting {
    uint8_t key[QPC_KEY_LEN];
    size_t queued, in_flight, parked;
};

struct store_view {
    struct client *cl;
    struct waiting w[STORE_LISTED_MAX];
    size_t n, more;
    size_t queued, queued_bytes, in_flight, parked, others;
};

static struct waiting *waiting_for(struct store_view *v, const uint8_t key[static QPC_KEY_LEN])
{
    for (size_t i = 0; i < v->n; i++)
        if (memcmp(v->w[i].key, key, QPC_KEY_LEN) == 0)
            return &v->w[i];
    if (v->n == STORE_LISTED_MAX) {
        v->more++;
        return NULL;
    }
    memset(&v->w[v->n], 0, sizeof(v->w[0]));
    memcpy(v->w[v->n].key, key, QPC_KEY_LEN);
    return &v->w[v->n++];
}

static int queue_count_cb(void *ctx, const struct qpc_store_queue_info *q)
{
    struct store_view *v = ctx;
    struct waiting *w;

    if (q->recipient == NULL) {
        say(v->cl, "  #%s: %zu live broadcast%s kept for peers that connect later", q->topic, q->count,
            q->count == 1 ? "" : "s");
        return 0;
    }
    v->queued += q->count;
    v->queued_bytes += q->bytes;
    if ((w = waiting_for(v, q->recipient)) != NULL)
        w->queued += q->count;
    return 0;
}

/*
 * /mesh store: what waits to be delivered, wherever it is. A message leaves the store
 * when it is handed to a link or the server, and stays in my custody (and outbox) until
 * acked, so the store's own figures alone say 0 while a message waits.
 */
static int cmd_store(struct client *cl, char *args)
{
    static struct store_view v;
    struct qpc_store_stats st;
    struct inflight *f, *tmp;
    char label[13];

    if (rest(&args) != NULL)
        return -1;
    memset(&v, 0, sizeof(v));
    v.cl = cl;
    qpc_store_get_stats(cl->store, &st);
    qpc_store_foreach_queue(cl->store, queue_count_cb, &v);
    HASH_ITER(hh, cl->custody.by_id, f, tmp) {
        struct waiting *w = waiting_for(&v, f->env.recipient);

        if (f->link != NULL)
            v.in_flight++;
        else
            v.parked++;
        if (w != NULL && f->link != NULL)
            w->in_flight++;
        else if (w != NULL)
            w->parked++;
        if (!f->mine)
            v.others++;
    }
    say(cl, "waiting: %zu message%s: %zu queued (no way yet), %zu in flight (handed on, not acked "
        "yet), %zu parked (sent again when a way appears); %zu held for others among those "
        "handed on or parked; %zu in the outbox on disk",
        v.queued + v.in_flight + v.parked, v.queued + v.in_flight + v.parked == 1 ? "" : "s",
        v.queued, v.in_flight, v.parked, v.others, state_outbox_count(cl));
    for (size_t i = 0; i < v.n; i++)
        say(cl, "  for %s: %zu queued, %zu in flight, %zu parked", output_label(cl, v.w[i].key, label),
            v.w[i].queued, v.w[i].in_flight, v.w[i].parked);
    if (v.more > 0)
        say(cl, "  and %zu more recipients", v.more);
    say(cl, "store: %zu envelopes (%zu bytes) for %zu recipients and %zu topics; %zu ids remembered",
        st.envelopes, st.bytes, st.recipients, st.topics, st.dedup_entries);
    say(cl, "totals: %llu stored, %llu forwarded, %llu expired, %llu duplicates refused",
        (unsigned long long)st.put, (unsigned long long)st.forwarded,
        (unsigned long long)st.expired, (unsigned long long)st.refused_duplicate);
    say(cl, "broadcast batches: %llu signed, %llu taken from links, %llu refused; %llu broadcasts checked by "
        "hash, not Ed25519", (unsigned long long)cl->batches.sent, (unsigned long long)cl->batches.taken,
        (unsigned long long)cl->batches.refused, (unsigned long long)cl->batches.by_hash);
    say(cl, "broadcast copies: %llu that came by fewer hops than the first passed on",
        (unsigned long long)cl->bcast_copies_passed);
    say(cl, "receipts: %zu of my messages wait for one, %zu owed to others, %llu refused (not sent to their signer)",
        receipts_waiting_count(&cl->receipts), receipts_owed_count(&cl->receipts),
        (unsigned long long)cl->receipts.refused);
    return 0;
}

static int cmd_connect(struct client *cl, char *args)
{
    char *addr = next_word(&args);
    char err[256] = "", saved[QPC_ADDRESS_MAX + 1];
#if QPC_MESH
    char found[QPC_ADDRESS_MAX + 1];
#endif
    const struct qpc_pin *s = NULL;

    if (rest(&args) != NULL)
        return -1;
    if (addr == NULL) {
        /* the configured one, the saved one, the only one noted, the one mDNS found */
        if (cl->cc->server[0] != '\0')
            addr = (char *)cl->cc->server;
        else if (state_saved_server(cl, saved, sizeof(saved)) == 0)
            addr = saved;
        else if ((s = qpc_identity_pin_next(cl->id, QPC_PIN_ADDRESS, NULL)) != NULL)
            addr = s->name;
#if QPC_MESH
        else if (discover_node_address(cl, found, sizeof(found)) == 0)
            addr = found;
#endif
        else {
            say(cl, "no server known: /connect <host:port>%s",
                QPC_MESH ? " (or /mesh peers for nodes on the link)" : "");
            return 0;
        }
    }
    if (session_connect(cl, addr, err, sizeof(err)) < 0)
        say(cl, "%s", err);
    else if (cl->session_trial != NULL)
        say(cl, "trying %s; the session with %s stays until it answers", addr, session_address(cl));
    else if (!session_up(cl))
        say(cl, "connecting to %s ...", addr);
    return 0;
}

static int cmd_send(struct client *cl, char *args)
{
    char *who = next_word(&args), *msg = rest(&args), *at;
    const char *domain;
    uint8_t key[QPC_KEY_LEN], id[QPC_ID_LEN];
    char idh[13];
    int rc;

    if (who == NULL || msg == NULL)
        return -1;
    if (!message_fits(cl, msg))
        return 0;
    if ((at = strrchr(who, '@')) != NULL)
        *at = '\0';
    if (resolve_recipient(cl, who, key) < 0)
        return 0;
    if (!session_up(cl)) {
        say(cl, "not connected to a server (/connect first)");
        return 0;
    }
    /* Without a domain: the peer's home node as its signed announces say, else the
     * server's own (a client of the same node). */
    domain = at != NULL ? at + 1 : homes_enqueue_domain(cl->homes, key, session_domain(cl));
    if (domain[0] == '\0')
        domain = session_domain(cl);
    rc = node_send_text(cl, key, domain[0] != '\0' ? domain : NULL, msg, id);
    if (rc < 0) {
        say(cl, "cannot send: %s", qpc_strerror(rc));
        return 0;
    }
    qpc_hex_encode(idh, id, 6);
    say(cl, "sent to server %s (%s), waiting for the recipient's receipt", session_address(cl), idh);
    return 0;
}

static int cmd_history(struct client *cl, char *args)
{
    char *what = next_word(&args), *count = next_word(&args);

    if (rest(&args) != NULL)
        return -1;
    output_history(cl, what, count, false);
    return 0;
}

static int cmd_quit(struct client *cl, char *args)
{
    g_quit = true;
    ev_break(cl->loop, EVBREAK_ALL);
    return 0;
}

static const struct command commands[] = {
    { "/mesh peers", "", "nodes seen via mDNS (with TXT fields) and known peers", MESH_ONLY(cmd_peers), 0 },
    { "/mesh server", "<host:port>", "note a server (persisted)", cmd_server, 1 },
    { "/mesh send", "<peer_id> <msg>", "direct P2P message (a name, or 4+ hex digits of the id)",
      MESH_ONLY(cmd_mesh_send), 2 },
    { "/mesh broadcast", "<topic> <msg>", "publish to a broadcast channel", cmd_broadcast, 2 },
    { "/mesh subscribe", "<topic> [key]", "join a channel (open, or private with a key)", cmd_subscribe, 1 },
    { "/mesh route", "", "routing table: destination, next hop, hops, age, source, home node", MESH_ONLY(cmd_route), 0 },
    { "/mesh identity", "", "my mesh identity, known servers, and a QR code to share it", cmd_identity, 0 },
    { "/mesh store", "", "store-and-forward statistics", cmd_store, 0 },
    { "/mesh announces", "", "announces made, sent (frames, bytes), passed on, replayed, received", MESH_ONLY(cmd_announces), 0 },
    { "/mesh add", "<peer_key> <host:port> [name]", "add a peer (or paste its qpc: text)", cmd_add, 1 },
    { "/name", "<peer|me> <name|->", "name a peer (or yourself); - removes the name", cmd_name, 2 },
    { "/connect", "[host:port]", "connect to a server (default: the configured or noted one)", cmd_connect, 0 },
    { "/send", "<peer_id|key@domain> <msg>", "send through the server", cmd_send, 2 },
    { "/unsubscribe", "<topic>", "leave a broadcast channel", cmd_unsubscribe, 1 },
    { "/help", "", "this list", cmd_help, 0 },
    { "/history", "[peer|#topic] [N]", "the last N messages, with times and outcomes", cmd_history, 0 },
    { "/quit", "", "leave (also Ctrl-D)", cmd_quit, 0 },
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static int cmd_help(struct client *cl, char *args)
{
    for (size_t i = 0; i < NCOMMANDS; i++) {
        char head[96];

        if (commands[i].fn == NULL)
            continue;
        snprintf(head, sizeof(head), "%s %s", commands[i].name, commands[i].args);
        say(cl, "  %-44s %s", head, commands[i].help);
    }
    return 0;
}

/* Finds the longest command whose words start line; *rest_out is what follows. */
static const struct command *lookup(char *line, char **rest_out)
{
    const struct command *best = NULL;
    size_t best_len = 0;

    for (size_t i = 0; i < NCOMMANDS; i++) {
        size_t n = strlen(commands[i].name);

        if (strncmp(line, commands[i].name, n) == 0 && (line[n] == '\0' || isspace((unsigned char)line[n])) &&
            n > best_len) {
            best = &commands[i];
            best_len = n;
        }
    }
    if (best != NULL)
        *rest_out = line + best_len;
    return best;
}

void repl_execute(struct client *cl, char *line);
void repl_execute(struct client *cl, char *line)
{
    char *args = NULL, *p = line;
    const struct command *c;

    while (isspace((unsigned char)*p))
        p++;
    if (*p == '\0')
        return;
    c = lookup(p, &args);
    if (c == NULL) {
        if (strncmp(p, "/mesh", 5) == 0 && (p[5] == '\0' || isspace((unsigned char)p[5]))) {
            char words[128] = "";

            for (size_t i = 0; i < NCOMMANDS; i++)
                if (strncmp(commands[i].name, "/mesh ", 6) == 0 && commands[i].fn != NULL)
                    snprintf(words + strlen(words), sizeof(words) - strlen(words), "%s%s",
                             words[0] ? "|" : "", commands[i].name + 6);
            say(cl, "usage: /mesh %s ...", words);
            return;
        }
        say(cl, "unknown command '%.40s%s' (/help lists them; a message goes with %s "
            "<peer> <text>)", p, strlen(p) > 40 ? "..." : "", QPC_MESH ? "/mesh send" : "/send");
        return;
    }
    if (c->fn == NULL) {
        say(cl, "%s: %s (/help lists what it has)", c->name, CLIENT_NO_MESH);
        return;
    }
    if (c->fn(cl, args) < 0)
        say(cl, "usage: %s %s", c->name, c->args);
}

/* ---- the line editor's callbacks ----------------------------------------------------- */

/* True for a line that carries a channel key (/mesh subscribe <topic> <key>). */
static bool line_has_secret(const char *line)
{
    char copy[512], *p = copy, *w1, *w2, *w3, *w4;
    bool secret;

    snprintf(copy, sizeof(copy), "%s", line);
    w1 = next_word(&p), w2 = next_word(&p), w3 = next_word(&p), w4 = next_word(&p);
    secret = w1 != NULL && w2 != NULL && w3 != NULL && w4 != NULL && strcmp(w1, "/mesh") == 0 &&
             strcmp(w2, "subscribe") == 0;
    sodium_memzero(copy, sizeof(copy));
    return secret;
}

static void on_line(void *arg, char *line, size_t len)
{
    struct client *cl = arg;

    /* A private channel key must not end up in the history file. */
    if (!line_has_secret(line))
        lineedit_history_add(line);
    repl_execute(cl, line);
}

static void on_eof(void *arg)
{
    struct client *cl = arg;

    g_quit = true;
    ev_break(cl->loop, EVBREAK_ALL);
}

static void on_too_long(void *arg, size_t len)
{
    say(arg, "that line is over %zu bytes (the largest message is %d bytes): it was dropped "
        "whole, up to its end; nothing of it was sent", len, MESSAGE_TEXT_MAX);
}

/* Candidates for the word being completed: commands, then peer ids or topics. */
static size_t complete(void *arg, const char *line, size_t word_start, size_t cursor,
                       const char **cands, size_t max)
{
    static char firsts[NCOMMANDS][32], seconds[NCOMMANDS][32];
    static const struct qpc_channel **chans;
    struct client *cl = arg;
    char before[256];
    size_t n = 0, nchans = 0;

    snprintf(before, sizeof(before), "%.*s", (int)word_start, line);
    char *b = before, *w1 = next_word(&b), *w2 = next_word(&b), *w3 = next_word(&b);

    if (w1 == NULL) {
        for (size_t i = 0; i < NCOMMANDS && n < max; i++) {
            char *sp;

            if (commands[i].fn == NULL)
                continue;
            snprintf(firsts[i], sizeof(firsts[i]), "%s", commands[i].name);
            if ((sp = strchr(firsts[i], ' ')) != NULL)
                *sp = '\0';
            cands[n++] = firsts[i];
        }
    } else if (strcmp(w1, "/mesh") == 0 && w2 == NULL) {
        for (size_t i = 0; i < NCOMMANDS && n < max; i++)
            if (strncmp(commands[i].name, "/mesh ", 6) == 0 && commands[i].fn != NULL) {
                snprintf(seconds[i], sizeof(seconds[i]), "%s", commands[i].name + 6);
                cands[n++] = seconds[i];
            }
    } else if ((strcmp(w1, "/send") == 0 && w2 == NULL) || (strcmp(w1, "/name") == 0 && w2 == NULL) ||
               (strcmp(w1, "/history") == 0 && w2 == NULL) ||
               (strcmp(w1, "/mesh") == 0 && strcmp(w2, "send") == 0 && w3 == NULL)) {
        const struct qpc_peer *p = NULL;

        /* names first: they are what people type */
        while ((p = qpc_identity_peer_next(cl->id, p)) != NULL && n < max)
            if (p->name != NULL)
                cands[n++] = p->name;
        while ((p = qpc_identity_peer_next(cl->id, p)) != NULL && n < max)
            cands[n++] = p->id;
    } else if ((strcmp(w1, "/unsubscribe") == 0 && w2 == NULL) ||
               (strcmp(w1, "/mesh") == 0 && w2 != NULL &&
                (strcmp(w2, "broadcast") == 0 || strcmp(w2, "subscribe") == 0) && w3 == NULL)) {
        free(chans);
        chans = NULL;
        if (qpc_broadcast_list(cl->channels, &chans, &nchans) == 0)
            for (size_t i = 0; i < nchans && n < max; i++)
                cands[n++] = qpc_channel_topic(chans[i]);
    }
    (void)cursor;
    return n;
}

static const struct lineedit_callbacks editor_cb = {
    .on_line = on_line,
    .on_eof = on_eof,
    .on_too_long = on_too_long,
    .complete = complete,
};

/* Ctrl-C in the REPL clears the typed line instead of leaving. */
static void on_interrupt(struct client *cl)
{
    lineedit_clear_line();
}

static void log_to_screen(enum qpc_log_level level, const char *line, void *arg)
{
    say(arg, "%s", line);
}

int repl_run(struct client *cl);
int repl_run(struct client *cl)
{
    char history[PATH_MAX + 32], err[256];

    g_quit = false;
    snprintf(history, sizeof(history), "%s/history", cl->data_dir);
    if (lineedit_start(cl->loop, "qpc> ", history, LINE_MAX_BYTES, &editor_cb, cl, err, sizeof(err)) < 0) {
        fprintf(stderr, "qpc: %s\n", err);
        return EXIT_FAIL;
    }
    output_set_repl(true);
    qpc_log_set_sink(log_to_screen, cl);
    cl->on_interrupt = on_interrupt;
    signal(SIGQUIT, SIG_IGN);   /* Ctrl-backslash would dump core: only Ctrl-D or /quit leave */
    if (QPC_MESH)
        say(cl, "qpc %s - peer id %s - listening on %s - /help for commands", QPC_VERSION,
            qpc_identity_peer_id(cl->id), cl->listen_text);
    else
        say(cl, "qpc %s - peer id %s - no mesh in this build: everything goes through the server "
            "- /help for commands", QPC_VERSION, qpc_identity_peer_id(cl->id));
    output_unread(cl);
    while (!g_quit && !cl->stop)
        ev_run(cl->loop, EVRUN_ONCE);
    cl->on_interrupt = NULL;
    lineedit_stop();
    qpc_log_set_sink(NULL, NULL);
    output_set_repl(false);
    fputc('\n', stdout);
    return EXIT_OK;
}
