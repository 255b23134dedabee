/*
 * relay.c: helps two clients of this node reach each other (docs/paths.md): it keeps
 * the address candidates each session registers, answers peer_info with where a peer's
 * sessions are and what they registered, coordinates hole punches (punch notices), and
 * relays DATAGRAMs carrying their P2P connection when no direct path works
 * (docs/protocol.md, "Relay datagrams").
 *
 * The one idea: the node only swaps the address in the 33-byte header -- a client sends
 * 0x01 || destination key || packet, the destination receives 0x01 || source key ||
 * packet -- and never looks inside the packet, which is a QUIC packet of the peers' own
 * end-to-end TLS session. The source key is the one the sender authenticated with, so a
 * client cannot pose as another. Several processes may share one identity (`qpc listen`
 * and `qpc send` from one data directory), so a key can have several sessions: a
 * datagram goes to the session of that key that last sent to the sender (its pin), and
 * to every session of the key (at most RELAY_FANOUT_MAX) while there is none; each
 * process drops the packets of connections it does not have.
 *
 * A punch is ordered so that no packet of the peer can reach the asker's NAT before the
 * asker has opened it: a client that registered candidates gets no punch notice for its
 * peer_info; it first sends TTL-2 datagrams toward the peer's candidates (they open its
 * own mapping and die at the next router) and then asks with PathRequest.punch, and
 * only then is the peer told to send.
 *
 * Each client key has token buckets (relay: relay_rate_limit packets per second, one
 * second of burst; punch notices: PUNCH_RATE_PER_S), shared by its connections, so one
 * client cannot use the node as a free amplifier; excess datagrams are dropped, which
 * QUIC treats as loss.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qpc/addr.h"
#include "qpc/error.h"
#include "qpc/log.h"
#include "qpc/uthash_keyed.h"
#include "relay.h"
#include "request.h"

#define RELAY_TAG REQUEST_RELAY_TAG
#define RELAY_HEADER REQUEST_RELAY_HEADER
#define RELAY_FANOUT_MAX 4          /* sessions of one key a datagram is copied to */
#define PIN_STALE_S 30.0            /* a pin unused this long is not trusted any more */
#define PUNCH_RATE_PER_S 5.0        /* punch notices a client may cause per second... */
#define PUNCH_BURST 20.0            /* ...and at once (dialling several peers) */
#define PUNCH_REPORT_S 120.0        /* a direct path reported this long after a punch counts */
#define PEER_ADDRS_MAX 16u          /* addresses (and candidates) in one peer_info answer */
#define CLIENT_STATS_MAX 32         /* clients with their own relay counters (the rest: "other") */

/* Relayed traffic of one source client, for the metrics. */
struct client_stats {
    uint8_t key[QPC_KEY_LEN];
    uint64_t packets, bytes;
    UT_hash_handle hh;
};

struct relay {
    struct client_stats *by_key;     /* at most CLIENT_STATS_MAX */
    uint64_t other_packets, other_bytes;
};

/* Seconds on a clock that never steps (pins and punch records compare ages). */
static double mono_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int relay_start(struct node *n)
{
    n->relay = calloc(1, sizeof(*n->relay));
    return n->relay != NULL ? 0 : QPC_ERR_NOMEM;
}

void relay_stop(struct node *n)
{
    struct client_stats *c, *tmp;

    if (n->relay == NULL)
        return;
    HASH_ITER(hh, n->relay->by_key, c, tmp) {
        HASH_DEL(n->relay->by_key, c);
        free(c);
    }
    free(n->relay);
    n->relay = NULL;
}

/* Counts one relayed packet of len bytes from key. A full table gives the place of a
 * client that is no longer connected to the newcomer (its counts go to "other"): keys
 * are free to mint, the label set must stay bounded. */
static void count_relayed(struct node *n, const uint8_t key[static QPC_KEY_LEN], size_t len)
{
    struct relay *r = n->relay;
    struct client_stats *c = NULL, *old, *tmp;

    if (r == NULL)
        return;
    HASH_FIND(hh, r->by_key, key, QPC_KEY_LEN, c);
    if (c == NULL && HASH_COUNT(r->by_key) >= CLIENT_STATS_MAX) {
        HASH_ITER(hh, r->by_key, old, tmp) {
            if (session_find(n->client_ep, old->key) == NULL) {
                r->other_packets += old->packets;
                r->other_bytes += old->bytes;
                HASH_DEL(r->by_key, old);
                free(old);
                break;
            }
        }
    }
    if (c == NULL && HASH_COUNT(r->by_key) < CLIENT_STATS_MAX && (c = calloc(1, sizeof(*c))) != NULL) {
        memcpy(c->key, key, QPC_KEY_LEN);
        HASH_ADD(hh, r->by_key, key, QPC_KEY_LEN, c);
    }
    if (c != NULL) {
        c->packets++;
        c->bytes += len;
    } else {
        r->other_packets++;
        r->other_bytes += len;
    }
}

void relay_metrics_write(struct node *n, FILE *f)
{
    struct client_stats *c, *tmp;
    char hex[QPC_KEY_HEX_LEN];
    static const char *const what[2] = { "packets", "bytes" };

    if (n->relay == NULL)
        return;
    for (int w = 0; w < 2; w++) {
        fprintf(f, "# HELP qpc_relayed_%s_by_client_total Relay datagram %s forwarded, by "
                   "source client (first 16 hex digits of its key; at most %d, the rest \"other\").\n"
                   "# TYPE qpc_relayed_%s_by_client_total counter\n",
                what[w], what[w], CLIENT_STATS_MAX, what[w]);
        HASH_ITER(hh, n->relay->by_key, c, tmp) {
            qpc_key_to_hex(hex, c->key);
            fprintf(f, "qpc_relayed_%s_by_client_total{client=\"%.16s\"} %llu\n", what[w], hex,
                    (unsigned long long)(w == 0 ? c->packets : c->bytes));
        }
        fprintf(f, "qpc_relayed_%s_by_client_total{client=\"other\"} %llu\n", what[w],
                (unsigned long long)(w == 0 ? n->relay->other_packets : n->relay->other_bytes));
    }
}

/* ---- relay datagrams --------------------------------------------------------------- */

/* Per-client (per key, however many connections) rate of relayed packets: rate and
 * burst are both relay_rate_limit. */
static bool relay_allowed(struct node *n, struct session *s)
{
    double rate = (double)n->sc->relay_rate_limit;

    return session_take(s, SESSION_RATE_RELAY, rate, rate);
}

/* True when t is a live session of the client with key. */
static bool session_of(const struct node *n, const uint8_t key[static QPC_KEY_LEN], const struct session *t)
{
    for (struct session *x = session_find(n->client_ep, key); x != NULL; x = session_next_of_client(x))
        if (x == t)
            return true;
    return false;
}

/* The session of key that datagrams from s go to, or NULL (none pinned, gone, stale). */
static struct session *pin_get(struct session *s, const uint8_t key[static QPC_KEY_LEN], double now)
{
    for (size_t i = 0; i < SESSION_PATH_SLOTS; i++) {
        if (s->paths.pins[i].to == NULL || memcmp(s->paths.pins[i].key, key, QPC_KEY_LEN) != 0)
            continue;
        if (now - s->paths.pins[i].last < PIN_STALE_S && session_of(s->node, key, s->paths.pins[i].to))
            return s->paths.pins[i].to;
        s->paths.pins[i].to = NULL;
        return NULL;
    }
    return NULL;
}

/* from sent to s: s's datagrams for from's key go to from, unless another live session
 * of that key holds the pin (the first to answer keeps it; the others' packets still
 * reach s, whose QUIC drops what belongs to no connection it has). */
static void pin_note(struct session *s, struct session *from, double now)
{
    size_t slot = SESSION_PATH_SLOTS, oldest = 0;

    for (size_t i = 0; i < SESSION_PATH_SLOTS; i++) {
        if (s->paths.pins[i].to != NULL && memcmp(s->paths.pins[i].key, from->key, QPC_KEY_LEN) == 0) {
            if (s->paths.pins[i].to == from || pin_get(s, from->key, now) == NULL) {
                s->paths.pins[i].to = from;
                s->paths.pins[i].last = now;
            }
            return;
        }
        if (s->paths.pins[i].to == NULL && slot == SESSION_PATH_SLOTS)
            slot = i;
        if (s->paths.pins[i].last < s->paths.pins[oldest].last)
            oldest = i;
    }
    if (slot == SESSION_PATH_SLOTS)
        slot = oldest;
    memcpy(s->paths.pins[slot].key, from->key, QPC_KEY_LEN);
    s->paths.pins[slot].to = from;
    s->paths.pins[slot].last = now;
}

static void relay_to(struct node *n, struct session *from, struct session *to, const uint8_t *out,
                     size_t len, double now)
{
    if (session_send_datagram(to, out, len) == 0) {
        n->c.relayed_packets++;
        count_relayed(n, from->key, len - RELAY_HEADER);
        pin_note(to, from, now);
    } else {
        n->c.errors[ERRK_RELAY_DROPPED]++;
    }
}

void relay_datagram(struct session *from, const uint8_t *data, size_t len)
{
    struct node *n = from->node;
    uint8_t out[QPC_QUIC_DATAGRAM_MAX];
    const uint8_t *dest = request_relay_destination(data, len, sizeof(out));
    struct session *to;
    double now = mono_s();
    size_t sent = 0;

    if (!n->sc->relay_enabled || dest == NULL || !relay_allowed(n, from)) {
        n->c.errors[ERRK_RELAY_DROPPED]++;
        return;
    }
    out[0] = RELAY_TAG;
    memcpy(out + 1, from->key, QPC_KEY_LEN);
    memcpy(out + RELAY_HEADER, data + RELAY_HEADER, len - RELAY_HEADER);
    to = pin_get(from, dest, now);
    if (to != NULL) {
        relay_to(n, from, to, out, len, now);
        return;
    }
    for (to = session_find(n->client_ep, dest); to != NULL && sent < RELAY_FANOUT_MAX;
         to = session_next_of_client(to)) {
        if (to == from)
            continue;
        relay_to(n, from, to, out, len, now);
        sent++;
    }
    if (sent == 0)
        n->c.errors[ERRK_RELAY_DROPPED]++;
}

/* ---- candidates, peer_info, punches ------------------------------------------------ */

/* Numeric "host:port" with a port: what a client may register (it checks more itself). */
static bool candidate_ok(const char *text)
{
    char host[SESSION_CANDIDATE_LEN];
    uint8_t bin[16];
    uint16_t port;

    return text != NULL && strlen(text) < SESSION_CANDIDATE_LEN &&
           qpc_addr_parse(text, host, sizeof(host), &port) == 0 && port != 0 &&
           (inet_pton(AF_INET, host, bin) == 1 || inet_pton(AF_INET6, host, bin) == 1);
}

/* Tells session t that the client of session s wants to reach it, from s's address and
 * s's candidates. */
static void send_punch(struct session *t, struct session *s)
{
    Qpc__ServerMessage pm = QPC__SERVER_MESSAGE__INIT;
    Qpc__PunchNotice pn = QPC__PUNCH_NOTICE__INIT;
    char *mine[1] = { s->peer_addr };
    char *cands[SESSION_CANDIDATES_MAX];

    for (size_t i = 0; i < s->paths.n_candidates; i++)
        cands[i] = s->paths.candidates[i];
    pn.key.data = s->key;
    pn.key.len = QPC_KEY_LEN;
    pn.n_addresses = 1;
    pn.addresses = mine;
    pn.n_candidates = s->paths.n_candidates;
    pn.candidates = cands;
    pm.body_case = QPC__SERVER_MESSAGE__BODY_PUNCH;
    pm.punch = &pn;
    session_send_message(t, &pm.base);
    t->node->c.punch_notices++;
}

/* Sends every other session of key a notice that s asks for them; false when s is over
 * its punch rate (then nothing is sent). */
static bool punch_sessions(struct session *s, const uint8_t key[static QPC_KEY_LEN])
{
    struct session *first = session_find(s->node->client_ep, key);

    if (first == NULL)
        return true;
    if (!session_take(s, SESSION_RATE_PUNCH, PUNCH_RATE_PER_S, PUNCH_BURST))
        return false;
    for (struct session *t = first; t != NULL; t = session_next_of_client(t))
        if (t != s)
            send_punch(t, s);
    return true;
}

void relay_peer_info(struct session *s, uint64_t request_id, const Qpc__PeerInfoRequest *r)
{
    Qpc__ServerMessage msg = QPC__SERVER_MESSAGE__INIT;
    Qpc__PeerInfoResponse pr = QPC__PEER_INFO_RESPONSE__INIT;
    char *addrs[PEER_ADDRS_MAX], *cands[PEER_ADDRS_MAX];
    struct session *first = NULL;

    if (r->key.len == QPC_KEY_LEN)
        first = session_find(s->node->client_ep, r->key.data);
    for (struct session *t = first; t != NULL; t = session_next_of_client(t)) {
        if (pr.n_addresses < PEER_ADDRS_MAX)
            addrs[pr.n_addresses++] = t->peer_addr;
        for (size_t i = 0; i < t->paths.n_candidates && pr.n_candidates < PEER_ADDRS_MAX; i++)
            cands[pr.n_candidates++] = t->paths.candidates[i];
    }
    /* A client that registered asks for its punches itself (PathRequest.punch), after
     * opening its own NAT; an older one gets them with the answer, as before. Within the
     * rate the asker still learns the addresses, but no more notices are sent. */
    if (first != NULL && !s->paths.registered)
        punch_sessions(s, r->key.data);
    pr.online = pr.n_addresses > 0;
    pr.addresses = addrs;
    pr.candidates = cands;
    msg.request_id = request_id;
    msg.body_case = QPC__SERVER_MESSAGE__BODY_PEER_INFO;
    msg.peer_info = &pr;
    session_send_message(s, &msg.base);
}

/* Remembers that s asked to punch key at now (the oldest record makes room). */
static void punched_note(struct session *s, const uint8_t key[static QPC_KEY_LEN], double now)
{
    size_t slot = 0;

    for (size_t i = 0; i < SESSION_PATH_SLOTS; i++) {
        if (memcmp(s->paths.punched[i].key, key, QPC_KEY_LEN) == 0) {
            slot = i;
            break;
        }
        if (s->paths.punched[i].at < s->paths.punched[slot].at)
            slot = i;
    }
    memcpy(s->paths.punched[slot].key, key, QPC_KEY_LEN);
    s->paths.punched[slot].at = now;
}

/* A direct path to key is reported: counted when s asked to punch key lately (once). */
static void direct_report(struct session *s, const uint8_t key[static QPC_KEY_LEN], uint32_t ms, double now)
{
    static const uint32_t bounds[NODE_PUNCH_BUCKETS] = NODE_PUNCH_BUCKET_BOUNDS;
    struct node_counters *c = &s->node->c;

    for (size_t i = 0; i < SESSION_PATH_SLOTS; i++) {
        if (s->paths.punched[i].at == 0 || memcmp(s->paths.punched[i].key, key, QPC_KEY_LEN) != 0)
            continue;
        if (now - s->paths.punched[i].at <= PUNCH_REPORT_S) {
            c->punch_direct++;
            c->punch_ms_sum += ms;
            for (size_t b = 0; b < NODE_PUNCH_BUCKETS; b++)
                if (ms <= bounds[b])
                    c->punch_ms_buckets[b]++;
        }
        s->paths.punched[i].at = 0;
        return;
    }
}

void relay_path_request(struct session *s, uint64_t request_id, const Qpc__PathRequest *r)
{
    Qpc__ServerMessage msg = QPC__SERVER_MESSAGE__INIT;
    Qpc__PathResponse pr = QPC__PATH_RESPONSE__INIT;
    double now = mono_s();

    pr.status = QPC__STATUS__STATUS_OK;
    if (r->set_candidates) {
        s->paths.registered = true;
        s->paths.n_candidates = 0;
        for (size_t i = 0; i < r->n_candidates && s->paths.n_candidates < SESSION_CANDIDATES_MAX; i++)
            if (candidate_ok(r->candidates[i]))
                snprintf(s->paths.candidates[s->paths.n_candidates++], SESSION_CANDIDATE_LEN, "%s",
                         r->candidates[i]);
    }
    if ((r->punch.len != 0 && r->punch.len != QPC_KEY_LEN) ||
        (r->direct.len != 0 && r->direct.len != QPC_KEY_LEN)) {
        pr.status = QPC__STATUS__STATUS_INVALID;
    } else if (r->punch.len == QPC_KEY_LEN && memcmp(r->punch.data, s->key, QPC_KEY_LEN) != 0) {
        s->node->c.punch_requests++;
        if (punch_sessions(s, r->punch.data)) {
            punched_note(s, r->punch.data, now);
        } else {
            s->node->c.punch_refused++;
            pr.status = QPC__STATUS__STATUS_RATE_LIMITED;
        }
    }
    if (r->direct.len == QPC_KEY_LEN)
        direct_report(s, r->direct.data, r->direct_ms, now);
    pr.observed = s->peer_addr;
    pr.candidates = (uint32_t)s->paths.n_candidates;
    msg.request_id = request_id;
    msg.body_case = QPC__SERVER_MESSAGE__BODY_PATH;
    msg.path = &pr;
    session_send_message(s, &msg.base);
}
