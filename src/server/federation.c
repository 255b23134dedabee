/*
 * federation.c: this node's side of node-to-node delivery: the outbox pump and the
 * outgoing links that carry it, the nodes learned from mDNS, resolve_destination, and
 * the forwarding of broadcasts to other nodes. (Requests other nodes send here are
 * decoded by federation_service.c and handled by delivery.c and broadcast.c.)
 *
 * The one idea: an envelope for a remote domain is never sent straight from the client's
 * request. It is committed to the durable outbox first (the client gets DEFERRED), and
 * the outbox pump -- run after each commit that added rows and once a second -- leases
 * the due rows, groups them by domain and sends them on one link per domain as
 * RelayEnqueueRequest (relay_enqueue). A row leaves the outbox only when the remote node
 * answered for it after its own commit; on a refusal that a retry cannot cure it is
 * dropped and logged, on any failure (unreachable, closed, busy) it gets a failed
 * attempt and the queue's capped exponential back-off decides when it is due again,
 * until its TTL ends. A crash at any point leaves the row in the outbox, leased at
 * most LEASE_MS, so nothing acknowledged is lost; a row sent twice is stored once by the
 * receiving queue (idempotent per recipient and envelope id).
 *
 * resolve_destination maps a domain to this node, to a static peer of the config
 * ([federation_peers]) or to a node learned from mDNS (TXT domain=, dialled at the host
 * it was seen at and the default federation port). A link is a session this node dialled
 * (session_dial) on the federation endpoint; its events come back through
 * link_callbacks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <utlist.h>

#include "qpc/addr.h"
#include "qpc/error.h"
#include "qpc/log.h"
#include "qpc/proto.h"
#include "qpc/uthash_keyed.h"
#include "federation.h"
#include "request.h"
#include "session.h"
#include "trust.h"

#define PUMP_BATCH 1000u          /* outbox rows leased per pump */
#define LEASE_MS 60000u           /* a leased row is due again after this at the latest */
#define SEND_BATCH_MAX REQUEST_BATCH_MAX        /* items per RelayEnqueueRequest */
#define SEND_BCAST_MAX REQUEST_BROADCASTS_MAX    /* envelopes per RelayBroadcastRequest */
#define FRAME_MARGIN 4096u
#define LINK_BCAST_MAX 256u       /* broadcasts waiting per link while it connects */
#define LINK_ANNOUNCE_MAX 1024u   /* announces waiting per link (mesh.c caches 512 origins) */
/* Rows one link may hold. Without a bound a peer that stops reading its stream or
 * never answers would make every pump lease more (and, once LEASE_MS passed, the same
 * rows again) onto its link; what is over goes back to the outbox with a failed attempt. */
#define LINK_WAITING_MAX (4u * PUMP_BATCH)
#define LINK_WAITING_BYTES (64u * 1024 * 1024)
#define LINK_INFLIGHT_MAX (16u * PUMP_BATCH)
#define LEARNED_MAX 512u          /* nodes learned from mDNS (anyone on the link can announce) */
#define ROUTE_INTERVAL_MS 10000u  /* a link sends its node's table this often */
#define ROUTE_HOLD_MS (3u * ROUTE_INTERVAL_MS)   /* a route not heard again is gone */
#define ROUTE_METRIC_MAX 8u       /* hops; a route longer than this is unreachable */
#define ROUTES_MAX 1024u          /* domains learned from other nodes */
#define HANDED_MAX 8192u          /* envelope ids this node handed on, remembered ... */
#define HANDED_HOLD_MS (10u * 60 * 1000)   /* ... this long, to refuse one coming back */
#define DIAL_BACKOFF_MIN_MS 1000u /* a configured peer is redialled after this ... */
#define DIAL_BACKOFF_MAX_MS 60000u   /* ... doubling up to this while it stays down */

struct learned_node {
    char key[QPC_QUEUE_DOMAIN_MAX + 1];      /* domain_key(domain): the hash key */
    char domain[QPC_QUEUE_DOMAIN_MAX + 1];
    char addr[QPC_ADDRESS_MAX + 1];
    UT_hash_handle hh;
};

/* An announce waiting on a link (already hopped by mesh.c): best effort, like a broadcast. */
struct ann_item {
    struct qpc_announce a;
    struct ann_item *next;
};

/* A broadcast envelope waiting on a link: not in the outbox, lost if the link fails. */
struct bcast_blob {
    uint8_t *blob;
    size_t len;
    struct bcast_blob *next;
};

struct out_batch {
    uint64_t request_id;
    uint64_t *oids;
    uint8_t (*ids)[QPC_ID_LEN];              /* the envelope ids of oids, to remember */
    size_t n;
    struct out_batch *prev, *next;
};

struct link {
    struct node *node;
    char key[QPC_QUEUE_DOMAIN_MAX + 1];      /* domain_key(domain): the hash key */
    char domain[QPC_QUEUE_DOMAIN_MAX + 1];
    struct session *s;                       /* NULL while not connected */
    bool ready;                              /* s is open with its stream */
    struct qpc_outbox_item *waiting;         /* leased rows not yet sent */
    size_t n_waiting, cap_waiting, waiting_bytes;
    struct out_batch *inflight;              /* sent, answer pending */
    size_t n_inflight;                       /* rows in inflight */
    struct bcast_blob *bcasts;               /* broadcasts waiting to go (best effort) */
    size_t n_bcasts;
    struct ann_item *anns;                   /* announces waiting to go (best effort) */
    size_t n_anns;
    bool static_peer;                        /* a `peers` entry: announces only, no domain */
    char addr[QPC_ADDRESS_MAX + 1];          /* static_peer: where it is dialled */
    uint64_t next_request_id;
    bool opened;                             /* the current connection reached link_open */
    uint64_t last_ok_ms;                     /* wall clock of the last open or answer; 0 never */
    uint64_t failures;                       /* connections that never came up */
    uint64_t next_dial_mono;                 /* configured peers: redial not before */
    uint32_t dial_backoff_ms;
    uint64_t next_routes_mono;               /* when this link sends the table again */
    UT_hash_handle hh;
};

/* A domain no link of ours reaches, reached through the federated node via. */
struct domain_route {
    char key[QPC_QUEUE_DOMAIN_MAX + 1];      /* domain_key(domain) */
    char domain[QPC_QUEUE_DOMAIN_MAX + 1];
    char via[QPC_QUEUE_DOMAIN_MAX + 1];      /* domain_key of the next hop */
    uint32_t metric;                         /* hops from this node */
    uint64_t expires_mono;
    bool seen;                               /* in the update being applied */
    UT_hash_handle hh;
};

/* An envelope id this node handed on to another node (oldest first in the table). */
struct handed {
    uint8_t id[QPC_ID_LEN];
    uint64_t at_mono;
    UT_hash_handle hh;
};

struct federation {
    /* Keyed hashing (uthash_keyed.h): a client picks the domains it sends to and anyone
     * on the link picks the domains it announces. */
    struct link *links;            /* outgoing links by domain_key */
    struct learned_node *learned;  /* nodes learned from mDNS by domain_key */
    struct domain_route *routes;   /* domains beyond one hop, by domain_key */
    struct handed *handed;         /* ids handed on recently (keyed: ids are chosen by senders) */
    /* The static peers of `peers` (settings): links of their own, outside the table of
     * links by domain, so no domain ever resolves to one and no outbox row, broadcast or
     * route table is ever written to them: they carry announces alone. */
    struct link *statics;
    size_t n_statics;
    void (*greeter)(struct node *n, struct link *l);   /* mesh.c: what a new link is told */
};

/* Monotonic milliseconds: every timeout and interval here (DESIGN.md, "The clock"). */
static uint64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* --- resolve_destination ------------------------------------------------------------- */

/* The key of a domain in the tables of learned nodes and links: lower case, as DNS
 * names compare, so a client writing one peer's domain in many spellings cannot make
 * many links to it. False when the domain is too long to be a key. */
static bool domain_key(char key[static QPC_QUEUE_DOMAIN_MAX + 1], const char *domain)
{
    size_t i = 0;

    for (; domain[i] != '\0'; i++) {
        if (i == QPC_QUEUE_DOMAIN_MAX)
            return false;
        key[i] = (domain[i] >= 'A' && domain[i] <= 'Z') ? (char)(domain[i] - 'A' + 'a')
                                                          : domain[i];
    }
    key[i] = '\0';
    return true;
}

/* The address of a node we reach ourselves (configured, else learned), or NULL. */
static const char *direct_addr(const struct node *n, const char *domain)
{
    const char *found = trust_peer_address(n, domain);
    struct learned_node *ln = NULL;
    char key[QPC_QUEUE_DOMAIN_MAX + 1];

    if (found == NULL && n->federation != NULL && domain_key(key, domain)) {
        HASH_FIND_STR(n->federation->learned, key, ln);
        if (ln != NULL)
            found = ln->addr;
    }
    return found;
}

/* The route to domain through another node, if one is live. */
static struct domain_route *route_get(const struct node *n, const char *domain)
{
    struct domain_route *rt = NULL;
    char key[QPC_QUEUE_DOMAIN_MAX + 1];

    if (n->federation == NULL || !domain_key(key, domain))
        return NULL;
    HASH_FIND_STR(n->federation->routes, key, rt);
    return rt != NULL && rt->expires_mono > mono_ms() ? rt : NULL;
}

/* The domain whose link carries rows for domain: itself when we reach it, else the
 * next hop of its route (borrowed), or NULL. */
static const char *next_hop(const struct node *n, const char *domain)
{
    struct domain_route *rt;

    if (direct_addr(n, domain) != NULL)
        return domain;
    rt = route_get(n, domain);
    return rt != NULL && direct_addr(n, rt->via) != NULL ? rt->via : NULL;
}

enum dest_kind resolve_destination(const struct node *n, const char *domain, char *addr,
                                   size_t addrlen)
{
    const char *hop, *found;

    if (domain == NULL || domain[0] == '\0' || strcasecmp(domain, n->sc->federation_domain) == 0)
        return DEST_LOCAL;
    if (!n->sc->federation_enabled)
        return DEST_UNKNOWN;
    hop = next_hop(n, domain);
    found = hop != NULL ? direct_addr(n, hop) : NULL;
    if (found == NULL)
        return DEST_UNKNOWN;
    if (addr != NULL)
        snprintf(addr, addrlen, "%s", found);
    return DEST_REMOTE;
}

/*
 * A way to domain opened (a link up, a route or an mDNS sighting learned): rows held for
 * it that wait out a back-off (a client's envelope for a domain routed later, a node
 * that was down) are due now; the pump takes them on its next run (at once after new
 * routes and on a link that opens, within a second otherwise).
 */
static void wake_rows(struct node *n, const char *domain)
{
    size_t woken = 0;
    int rc;

    if (n->queue == NULL || n->stopping)
        return;
    rc = qpc_queue_outbox_wake(n->queue, domain, node_now_ms(), &woken);
    if (rc != 0) {
        qpc_log_warn("federation", "outbox wake for %s failed: %s", domain, qpc_queue_errmsg(n->queue));
        return;
    }
    if (woken > 0)
        qpc_log_info("federation", "a way to %s opened: %zu envelope(s) held for it go now", domain, woken);
}

void federation_learn(struct node *n, const char *domain, const char *host)
{
    struct learned_node *ln;
    bool v6 = strchr(host, ':') != NULL;
    char key[QPC_QUEUE_DOMAIN_MAX + 1];

    if (n->federation == NULL || domain == NULL || domain[0] == '\0' ||
        !domain_key(key, domain) || strcasecmp(domain, n->sc->federation_domain) == 0)
        return;
    if (trust_peer_address(n, domain) != NULL) {
        /* A configured domain is reached where the config says, whoever announces it. */
        qpc_log_debug("federation", "mDNS: %s at %s ignored (configured in "
                      "[federation_peers])", domain, host);
        return;
    }
    if (v6 && strncasecmp(host, "fe80:", 5) == 0)
        return;   /* link-local needs a scope id: dial such nodes by a routable address */
    HASH_FIND_STR(n->federation->learned, key, ln);
    if (ln != NULL && v6 && strchr(ln->addr, '[') == NULL)
        return;   /* keep an IPv4 address: our federation socket may be IPv4 only */
    if (ln == NULL) {
        if (HASH_COUNT(n->federation->learned) >= LEARNED_MAX)
            return;
        ln = calloc(1, sizeof(*ln));
        if (ln == NULL)
            return;
        snprintf(ln->key, sizeof(ln->key), "%s", key);
        snprintf(ln->domain, sizeof(ln->domain), "%s", domain);
        HASH_ADD_STR(n->federation->learned, key, ln);
    }
    snprintf(ln->addr, sizeof(ln->addr), v6 ? "[%s]:%u" : "%s:%u", host,
             QPC_QUIC_PORT_FEDERATION);
    qpc_log_info("federation", "learned node %s at %s (mDNS)", ln->domain, ln->addr);
    wake_rows(n, ln->domain);
}

static void link_retire(struct node *n, const char *domain);

/* True when addr ("host:port" or "[v6]:port", as federation_learn writes it) is host. */
static bool addr_is_host(const char *addr, const char *host)
{
    size_t hl = strlen(host);

    if (addr[0] == '[')
        return strncasecmp(addr + 1, host, hl) == 0 && addr[hl + 1] == ']';
    return strncasecmp(addr, host, hl) == 0 && addr[hl] == ':';
}

void federation_forget(struct node *n, const char *domain, const char *host)
{
    struct learned_node *ln;
    char key[QPC_QUEUE_DOMAIN_MAX + 1];

    if (n->federation == NULL || domain == NULL || !domain_key(key, domain))
        return;
    HASH_FIND_STR(n->federation->learned, key, ln);
    /* Only the announcer at the address we dial can withdraw it: a goodbye from anyone
     * else on the link changes nothing (and configured domains are never learned). */
    if (ln != NULL && host != NULL && !addr_is_host(ln->addr, host)) {
        qpc_log_debug("federation", "mDNS goodbye for %s from %s ignored (it is at %s)",
                      ln->domain, host, ln->addr);
        return;
    }
    if (ln != NULL) {
        qpc_log_info("federation", "node %s left (mDNS goodbye or expiry)", ln->domain);
        HASH_DEL(n->federation->learned, ln);
        free(ln);
        link_retire(n, key);
    }
}

/* --- links ------------------------------------------------------------------------------ */

static struct link *link_get(struct node *n, const char *domain)
{
    struct link *l;
    char key[QPC_QUEUE_DOMAIN_MAX + 1];

    if (!domain_key(key, domain))
        return NULL;
    HASH_FIND_STR(n->federation->links, key, l);
    if (l != NULL)
        return l;
    l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->node = n;
    l->next_request_id = 1;
    snprintf(l->key, sizeof(l->key), "%s", key);
    snprintf(l->domain, sizeof(l->domain), "%s", domain);
    HASH_ADD_STR(n->federation->links, key, l);
    return l;
}

/* Frees a link that is not connected and whose domain no longer resolves, so domains
 * announced once on mDNS (by anyone on the link) do not pile up links. */
static void link_free_if_unrouted(struct node *n, struct link *l)
{
    if (l->s != NULL || resolve_destination(n, l->domain, NULL, 0) == DEST_REMOTE)
        return;
    HASH_DEL(n->federation->links, l);
    free(l->waiting);   /* empty: every row went back with link_fail_all */
    free(l);
}

/* Gives rows a failed attempt, all in one transaction (one fsync however many). */
static void mark_failed(struct node *n, const uint64_t *oids, size_t count, uint64_t now)
{
    if (count > 0 && qpc_queue_outbox_mark_failed_many(n->queue, oids, count, now, NULL) != 0)
        qpc_log_error("federation", "outbox update of %zu row(s) failed: %s", count,
                      qpc_queue_errmsg(n->queue));
}

/* Everything taken from the outbox for this link goes back with a failed attempt. */
static void link_fail_all(struct link *l, const char *why)
{
    struct node *n = l->node;
    struct out_batch *b, *tmp;
    uint64_t now = node_now_ms();
    size_t count = l->n_waiting + l->n_inflight, k = 0;
    uint64_t *oids = count > 0 ? malloc(count * sizeof(*oids)) : NULL;

    for (size_t i = 0; i < l->n_waiting; i++) {
        if (oids != NULL)
            oids[k++] = l->waiting[i].oid;
        free(l->waiting[i].blob);
    }
    l->n_waiting = 0;
    l->waiting_bytes = 0;
    l->n_inflight = 0;
    DL_FOREACH_SAFE(l->inflight, b, tmp) {
        for (size_t i = 0; oids != NULL && i < b->n && k < count; i++)
            oids[k++] = b->oids[i];
        DL_DELETE(l->inflight, b);
        free(b->oids);
        free(b->ids);
        free(b);
    }
    /* Out of memory for the list: the rows stay leased and are due again when the
     * lease ends, which is a failed attempt without the back-off. */
    mark_failed(n, oids, k, now);
    free(oids);
    if (count > 0) {
        qpc_log_warn("federation", "node %s: %s; %zu envelope(s) stay in the outbox for retry",
                     l->domain, why, count);
    }
}

static int link_take(struct link *l, struct qpc_outbox_item *it)
{
    if (l->n_waiting >= LINK_WAITING_MAX || l->waiting_bytes >= LINK_WAITING_BYTES ||
        l->n_inflight >= LINK_INFLIGHT_MAX)
        return QPC_ERR_AGAIN;
    if (l->n_waiting == l->cap_waiting) {
        size_t cap = l->cap_waiting ? l->cap_waiting * 2 : 64;
        struct qpc_outbox_item *w = realloc(l->waiting, cap * sizeof(*w));
        if (w == NULL)
            return QPC_ERR_NOMEM;
        l->waiting = w;
        l->cap_waiting = cap;
    }
    l->waiting[l->n_waiting++] = *it;
    l->waiting_bytes += it->blob_len;
    it->blob = NULL;   /* the link owns the blob now */
    return 0;
}

static void link_drop_bcasts(struct link *l)
{
    struct bcast_blob *b, *tmp;

    LL_FOREACH_SAFE(l->bcasts, b, tmp) {
        LL_DELETE(l->bcasts, b);
        free(b->blob);
        free(b);
    }
    l->n_bcasts = 0;
}

static void link_drop_anns(struct link *l)
{
    struct ann_item *a, *tmp;

    LL_FOREACH_SAFE(l->anns, a, tmp) {
        LL_DELETE(l->anns, a);
        free(a);
    }
    l->n_anns = 0;
}

/* Sends waiting announces, one FederationRequest each (the field is not repeated); the
 * receiver answers each with one status, which nobody waits for: the next periodic
 * announce replaces a lost one. */
static void link_send_anns(struct link *l)
{
    while (l->ready && l->anns != NULL) {
        Qpc__FederationRequest req = QPC__FEDERATION_REQUEST__INIT;
        struct qpc_announce_pb apb;
        struct ann_item *a = l->anns;
        int rc;

        qpc_announce_to_pb(&a->a, &apb);
        req.request_id = l->next_request_id;
        req.body_case = QPC__FEDERATION_REQUEST__BODY_ANNOUNCE;
        req.announce = &apb.pb;
        rc = session_write_message(l->s, &req.base);
        if (rc == QPC_ERR_AGAIN)
            return;   /* on_writable resumes */
        if (rc != 0) {
            l->node->c.errors[ERRK_FEDERATION]++;
            qpc_log_warn("federation", "node %s: %zu announce(s) dropped: %s", l->domain,
                         l->n_anns, qpc_strerror(rc));
            link_drop_anns(l);
            return;
        }
        l->next_request_id++;
        LL_DELETE(l->anns, a);
        free(a);
        l->n_anns--;
    }
}

/* Sends waiting broadcasts in RelayBroadcastRequests (answers are only counted by the
 * receiver: a lost one is not retried). */
/* A learned node left: its link is freed (when connected, once the close is done). */
static void link_retire(struct node *n, const char *domain)
{
    struct link *l;

    HASH_FIND_STR(n->federation->links, domain, l);   /* domain is a key (domain_key) */
    if (l == NULL || resolve_destination(n, domain, NULL, 0) == DEST_REMOTE)
        return;
    if (l->s != NULL) {
        session_close(l->s, QPC_QUIC_APP_SHUTDOWN, "node left");
        return;   /* on_closed returns its rows to the outbox and frees it */
    }
    link_fail_all(l, "node left");
    link_drop_bcasts(l);
    link_free_if_unrouted(n, l);
}

static void link_send_bcasts(struct link *l)
{
    struct node *n = l->node;
    size_t budget = (size_t)n->sc->max_frame_size - FRAME_MARGIN;

    while (l->ready && l->bcasts != NULL) {
        Qpc__FederationRequest req = QPC__FEDERATION_REQUEST__INIT;
        Qpc__RelayBroadcastRequest rb = QPC__RELAY_BROADCAST_REQUEST__INIT;
        ProtobufCBinaryData envs[SEND_BCAST_MAX];
        struct bcast_blob *b = l->bcasts;
        size_t k = 0, used = 0;
        int rc;

        for (; b != NULL && k < SEND_BCAST_MAX && (k == 0 || used + b->len + 16 <= budget); b = b->next) {
            envs[k].data = b->blob;
            envs[k].len = b->len;
            used += b->len + 16;
            k++;
        }
        rb.origin_domain = n->sc->federation_domain;
        rb.n_envelopes = k;
        rb.envelopes = envs;
        req.request_id = l->next_request_id;
        req.body_case = QPC__FEDERATION_REQUEST__BODY_RELAY_BROADCAST;
        req.relay_broadcast = &rb;
        rc = session_write_message(l->s, &req.base);
        if (rc == QPC_ERR_AGAIN)
            return;   /* on_writable resumes */
        if (rc != 0) {
            n->c.errors[ERRK_FEDERATION]++;
            qpc_log_warn("federation", "node %s: %zu broadcast(s) dropped: %s", l->domain,
                         l->n_bcasts, qpc_strerror(rc));
            link_drop_bcasts(l);
            return;
        }
        l->next_request_id++;
        for (size_t i = 0; i < k; i++) {
            b = l->bcasts;
            LL_DELETE(l->bcasts, b);
            free(b->blob);
            free(b);
            l->n_bcasts--;
        }
    }
}

/* Sends waiting rows in RelayEnqueueRequests until done or the stream is full. */
static void link_send(struct link *l)
{
    struct node *n = l->node;
    size_t budget = (size_t)n->sc->max_frame_size - FRAME_MARGIN;

    link_send_bcasts(l);
    link_send_anns(l);
    while (l->ready && l->n_waiting > 0) {
        Qpc__FederationRequest req = QPC__FEDERATION_REQUEST__INIT;
        Qpc__RelayEnqueueRequest rr = QPC__RELAY_ENQUEUE_REQUEST__INIT;
        Qpc__EnqueueItem items[SEND_BATCH_MAX], *ptrs[SEND_BATCH_MAX];
        struct out_batch *b = NULL;
        size_t k = 0, used = 0;
        int rc = QPC_ERR_NOMEM;

        /* 128: the item's other fields and tags, besides its domain */
        while (k < l->n_waiting && k < SEND_BATCH_MAX &&
               (k == 0 || used + l->waiting[k].blob_len + strlen(l->waiting[k].domain) + 128 <=
                              budget)) {
            qpc__enqueue_item__init(&items[k]);
            items[k].recipient.data = l->waiting[k].recipient;
            items[k].recipient.len = QPC_KEY_LEN;
            items[k].domain = l->waiting[k].domain;
            items[k].envelope.data = l->waiting[k].blob;
            items[k].envelope.len = l->waiting[k].blob_len;
            ptrs[k] = &items[k];
            used += l->waiting[k].blob_len + strlen(l->waiting[k].domain) + 128;
            k++;
        }
        rr.origin_domain = n->sc->federation_domain;
        rr.n_items = k;
        rr.items = ptrs;
        req.request_id = l->next_request_id;
        req.body_case = QPC__FEDERATION_REQUEST__BODY_RELAY_ENQUEUE;
        req.relay_enqueue = &rr;
        b = calloc(1, sizeof(*b));
        if (b != NULL && (b->oids = calloc(k, sizeof(*b->oids))) != NULL &&
            (b->ids = calloc(k, sizeof(*b->ids))) != NULL)
            rc = session_write_message(l->s, &req.base);
        if (rc == QPC_ERR_AGAIN) {
            if (b != NULL) {
                free(b->oids);
                free(b->ids);
            }
            free(b);
            return;   /* on_writable resumes */
        }
        if (rc == QPC_ERR_TOO_LARGE && k == 1) {
            /* One row that can never fit a frame (an envelope near max_frame_size): retrying
             * it would fail the whole link again on every pump, so it is dropped. */
            free(b->oids);
            free(b->ids);
            free(b);
            qpc_log_warn("federation", "node %s: envelope of %zu bytes does not fit a frame; "
                         "dropped", l->domain, l->waiting[0].blob_len);
            n->c.errors[ERRK_TOO_LARGE]++;
            if (qpc_queue_outbox_remove_many(n->queue, &l->waiting[0].oid, 1, NULL) < 0)
                qpc_log_error("federation", "outbox remove failed: %s",
                              qpc_queue_errmsg(n->queue));
            l->waiting_bytes -= l->waiting[0].blob_len;
            free(l->waiting[0].blob);
            memmove(l->waiting, l->waiting + 1, (l->n_waiting - 1) * sizeof(*l->waiting));
            l->n_waiting--;
            continue;
        }
        if (rc != 0) {
            if (b != NULL) {
                free(b->oids);
                free(b->ids);
            }
            free(b);
            link_fail_all(l, qpc_strerror(rc));
            return;
        }
        b->request_id = l->next_request_id++;
        b->n = k;
        for (size_t i = 0; i < k; i++) {
            b->oids[i] = l->waiting[i].oid;
            memcpy(b->ids[i], l->waiting[i].id, QPC_ID_LEN);
            l->waiting_bytes -= l->waiting[i].blob_len;
            free(l->waiting[i].blob);
        }
        DL_APPEND(l->inflight, b);
        l->n_inflight += k;
        memmove(l->waiting, l->waiting + k, (l->n_waiting - k) * sizeof(*l->waiting));
        l->n_waiting -= k;
    }
}

static const struct session_callbacks link_callbacks;

/* The next dial of a link that did not come up waits twice as long as the last. */
static void link_backoff(struct link *l)
{
    l->dial_backoff_ms = l->dial_backoff_ms == 0 ? DIAL_BACKOFF_MIN_MS
                         : l->dial_backoff_ms >= DIAL_BACKOFF_MAX_MS / 2 ? DIAL_BACKOFF_MAX_MS
                                                                         : l->dial_backoff_ms * 2;
    l->next_dial_mono = mono_ms() + l->dial_backoff_ms;
}

/* Dials the link's node, insisting on what proves its domain: the key known for it
 * (none yet for a learned node: link_open pins the first), or in CA mode the domain as
 * a dNSName of its certificate. No row is sent before link_open accepted the peer. */
static int dial(struct link *l, const char *addr)
{
    struct node *n = l->node;
    uint8_t key[QPC_KEY_LEN];
    bool by_key = trust_by_key(n);
    bool has_key = !l->static_peer && by_key && trust_domain_key(n, l->domain, key) == 0;
    /* A static peer: any key, or in CA mode any certificate of the CA (it carries only
     * announces, which are signed by their origins). */
    int rc = session_dial(n->fed_ep, addr, has_key ? key : NULL,
                          by_key || l->static_peer ? NULL : l->domain, &link_callbacks, l,
                          &l->s);

    if (rc == 0)
        n->c.fed_connections_total++;
    else
        l->s = NULL;
    return rc;
}

/* Queues a copy of blob on the link to domain and gets it moving. 1 queued, 0 not. */
static size_t bcast_to(struct node *n, const char *domain, const uint8_t *blob, size_t len)
{
    char addr[QPC_ADDRESS_MAX + 1];
    struct bcast_blob *b;
    struct link *l;

    if (resolve_destination(n, domain, addr, sizeof(addr)) != DEST_REMOTE ||
        (l = link_get(n, domain)) == NULL || l->n_bcasts >= LINK_BCAST_MAX)
        return 0;
    b = calloc(1, sizeof(*b));
    if (b == NULL || (b->blob = malloc(len)) == NULL) {
        free(b);
        return 0;
    }
    memcpy(b->blob, blob, len);
    b->len = len;
    LL_APPEND(l->bcasts, b);
    l->n_bcasts++;
    if (l->s == NULL && dial(l, addr) != 0) {
        qpc_log_warn("federation", "node %s: cannot dial; broadcast dropped", domain);
        link_drop_bcasts(l);
        return 0;
    }
    if (l->ready)
        link_send(l);
    return 1;
}

/* Queues a copy of a on link l when it is up (1 queued, 0 not). A link that is down is
 * dialled instead (the address: addr, or NULL to resolve the link's domain), and when it
 * comes up it is sent what the node knows (mesh.c's greeter), this announce included. */
static size_t ann_to(struct node *n, struct link *l, const char *addr,
                     const struct qpc_announce *a)
{
    char found[QPC_ADDRESS_MAX + 1];
    struct ann_item *it;

    if (!l->ready) {
        if (l->s != NULL || mono_ms() < l->next_dial_mono)
            return 0;   /* connecting, or down and waiting for its next dial */
        if (addr == NULL) {
            if (resolve_destination(n, l->domain, found, sizeof(found)) != DEST_REMOTE)
                return 0;
            addr = found;
        }
        if (dial(l, addr) != 0) {
            l->failures++;
            n->c.errors[ERRK_FEDERATION]++;
            link_backoff(l);
        }
        return 0;
    }
    if (l->n_anns >= LINK_ANNOUNCE_MAX || (it = malloc(sizeof(*it))) == NULL)
        return 0;
    it->a = *a;
    it->next = NULL;
    LL_APPEND(l->anns, it);
    l->n_anns++;
    link_send(l);
    return 1;
}

size_t federation_announce_link(struct link *l, const struct qpc_announce *a)
{
    return ann_to(l->node, l, l->static_peer ? l->addr : NULL, a);
}

/* True when session from (an accepted federation connection) is the node of link l:
 * the same proven key, or the same proven domain. */
static bool link_is_session(const struct link *l, const struct session *from)
{
    if (l->s != NULL && l->s->has_peer_key && from->has_peer_key &&
        memcmp(l->s->key, from->key, QPC_KEY_LEN) == 0)
        return true;
    return !l->static_peer && from->fed_domain[0] != '\0' &&
           strcasecmp(l->domain, from->fed_domain) == 0;
}

size_t federation_announce(struct node *n, const struct qpc_announce *a,
                           const struct session *from)
{
    const struct qpc_config_table *peers = &n->sc->federation_peers;
    struct federation *f = n->federation;
    struct learned_node *ln, *tmp;
    struct link *l;
    size_t sent = 0;

    if (n->fed_ep == NULL || n->stopping || f == NULL)
        return 0;
    for (size_t i = 0; i < peers->count; i++) {
        l = link_get(n, peers->items[i].name);
        if (l != NULL && (from == NULL || !link_is_session(l, from)))
            sent += ann_to(n, l, NULL, a);
    }
    HASH_ITER(hh, f->learned, ln, tmp) {
        if (trust_peer_address(n, ln->domain) != NULL)
            continue;
        l = link_get(n, ln->domain);
        if (l != NULL && (from == NULL || !link_is_session(l, from)))
            sent += ann_to(n, l, NULL, a);
    }
    for (size_t i = 0; i < f->n_statics; i++) {
        l = &f->statics[i];
        if (from == NULL || !link_is_session(l, from))
            sent += ann_to(n, l, l->addr, a);
    }
    return sent;
}

size_t federation_broadcast(struct node *n, const uint8_t *blob, size_t len,
                            const char *origin_domain)
{
    const struct qpc_config_table *peers = &n->sc->federation_peers;
    struct learned_node *ln, *tmp;
    size_t sent = 0;

    if (n->fed_ep == NULL || n->stopping)
        return 0;
    for (size_t i = 0; i < peers->count; i++)
        if (origin_domain == NULL || strcasecmp(peers->items[i].name, origin_domain) != 0)
            sent += bcast_to(n, peers->items[i].name, blob, len);
    HASH_ITER(hh, n->federation->learned, ln, tmp) {
        if ((origin_domain == NULL || strcasecmp(ln->domain, origin_domain) != 0) &&
            trust_peer_address(n, ln->domain) == NULL)
            sent += bcast_to(n, ln->domain, blob, len);
    }
    return sent;
}

/* Sends the link's node every domain this node reaches, with its metric: its own (0),
 * the nodes it has a link up to (1) and its routes, but never back the routes learned
 * from that very node (split horizon). Best effort: a table lost is sent again. */
static void link_send_routes(struct link *l)
{
    struct node *n = l->node;
    Qpc__FederationRequest req = QPC__FEDERATION_REQUEST__INIT;
    Qpc__DomainRouteUpdate up = QPC__DOMAIN_ROUTE_UPDATE__INIT;
    Qpc__DomainRoute *rs = calloc(ROUTES_MAX + 1, sizeof(*rs));
    Qpc__DomainRoute **ptrs = calloc(ROUTES_MAX + 1, sizeof(*ptrs));
    struct link *o, *otmp;
    struct domain_route *rt, *rtmp;
    uint64_t now = mono_ms();
    size_t k = 0;

    l->next_routes_mono = now + ROUTE_INTERVAL_MS;
    if (rs == NULL || ptrs == NULL)
        goto out;
#define ADD_ROUTE(d, m) do { qpc__domain_route__init(&rs[k]); rs[k].domain = (char *)(d); \
        rs[k].metric = (m); ptrs[k] = &rs[k]; k++; } while (0)
    ADD_ROUTE(n->sc->federation_domain, 0);
    HASH_ITER(hh, n->federation->links, o, otmp) {
        if (k <= ROUTES_MAX && o != l && o->ready && strcmp(o->key, l->key) != 0)
            ADD_ROUTE(o->domain, 1);
    }
    HASH_ITER(hh, n->federation->routes, rt, rtmp) {
        if (k <= ROUTES_MAX && rt->expires_mono > now && strcmp(rt->via, l->key) != 0 &&
            strcmp(rt->key, l->key) != 0)
            ADD_ROUTE(rt->domain, rt->metric);
    }
#undef ADD_ROUTE
    up.origin_domain = n->sc->federation_domain;
    up.n_routes = k;
    up.routes = ptrs;
    req.request_id = l->next_request_id++;
    req.body_case = QPC__FEDERATION_REQUEST__BODY_DOMAIN_ROUTES;
    req.domain_routes = &up;
    if (session_write_message(l->s, &req.base) != 0)
        l->next_routes_mono = now;   /* stream full: try again at the next pump */
out:
    free(rs);
    free(ptrs);
}

/* Configured peers keep a link open (redialled with back-off while down), so their
 * state is known before there is traffic and domain routes can be exchanged. */
static void keep_configured_links(struct node *n)
{
    uint64_t now = mono_ms();
    char addr[QPC_ADDRESS_MAX + 1];

    for (size_t i = 0; i < n->federation->n_statics; i++) {
        struct link *l = &n->federation->statics[i];
        if (l->s != NULL || now < l->next_dial_mono)
            continue;
        if (dial(l, l->addr) != 0) {
            l->failures++;
            n->c.errors[ERRK_FEDERATION]++;
            link_backoff(l);
        }
    }

    for (size_t i = 0; i < n->sc->federation_peers.count; i++) {
        struct link *l = link_get(n, n->sc->federation_peers.items[i].name);
        if (l == NULL || l->s != NULL || now < l->next_dial_mono)
            continue;
        if (resolve_destination(n, l->domain, addr, sizeof(addr)) != DEST_REMOTE ||
            dial(l, addr) != 0) {
            l->failures++;
            n->c.errors[ERRK_FEDERATION]++;
            link_backoff(l);
        }
    }
}

void federation_pump(struct node *n, uint64_t now_ms)
{
    struct qpc_outbox_item *items = NULL;
    struct link *l, *tmp;
    size_t count = 0, n_unrouted = 0;
    uint64_t unrouted[PUMP_BATCH];
    char addr[QPC_ADDRESS_MAX + 1];
    int rc;

    if (n->fed_ep == NULL || n->stopping)
        return;
    rc = qpc_queue_outbox_due(n->queue, now_ms, PUMP_BATCH, LEASE_MS, &items, &count);
    if (rc != 0) {
        qpc_log_error("federation", "outbox read failed: %s", qpc_queue_errmsg(n->queue));
        return;
    }
    for (size_t i = 0; i < count; i++) {
        const char *hop = resolve_destination(n, items[i].domain, NULL, 0) == DEST_REMOTE
                              ? next_hop(n, items[i].domain) : NULL;
        if (hop == NULL || (l = link_get(n, hop)) == NULL || link_take(l, &items[i]) != 0)
            unrouted[n_unrouted++] = items[i].oid;   /* no route now: perhaps later (mDNS) */
    }
    mark_failed(n, unrouted, n_unrouted, now_ms);
    qpc_outbox_items_free(items, count);
    keep_configured_links(n);
    HASH_ITER(hh, n->federation->links, l, tmp) {
        if (l->ready && mono_ms() >= l->next_routes_mono)
            link_send_routes(l);
        if (l->n_waiting == 0)
            continue;
        if (l->s == NULL) {
            if (resolve_destination(n, l->domain, addr, sizeof(addr)) != DEST_REMOTE ||
                (rc = dial(l, addr)) != 0) {
                l->failures++;
                n->c.errors[ERRK_FEDERATION]++;
                link_fail_all(l, "cannot dial");
            }
        } else if (l->ready) {
            link_send(l);
        }
    }
}

/* Notes that this node handed the envelope id on (an OK from the next node). */
static void remember_handed(struct node *n, const uint8_t id[static QPC_ID_LEN])
{
    struct federation *f = n->federation;
    struct handed *h = NULL;

    HASH_FIND(hh, f->handed, id, QPC_ID_LEN, h);
    if (h != NULL) {
        HASH_DEL(f->handed, h);   /* re-added at the end: the table stays oldest first */
    } else if (HASH_COUNT(f->handed) >= HANDED_MAX) {
        h = f->handed;            /* the oldest */
        HASH_DEL(f->handed, h);
    } else if ((h = calloc(1, sizeof(*h))) == NULL) {
        return;
    }
    memcpy(h->id, id, QPC_ID_LEN);
    h->at_mono = mono_ms();
    HASH_ADD(hh, f->handed, id, QPC_ID_LEN, h);
}

static void link_response(struct link *l, const uint8_t *data, size_t len)
{
    struct node *n = l->node;
    struct request_arena arena;
    struct request_refusal why;
    Qpc__FederationResponse *r;
    struct out_batch *b;
    uint64_t now = node_now_ms();

    request_arena_init(&arena, len);
    r = request_federation_response_decode(data, len, &arena, &why);
    if (r == NULL) {
        request_arena_clear(&arena);
        n->c.errors[ERRK_PROTOCOL]++;
        qpc_log_warn("federation", "node %s: %s; closing", l->domain, why.detail);
        session_close(l->s, QPC_QUIC_APP_REFUSED, "malformed federation response");
        return;
    }
    DL_SEARCH_SCALAR(l->inflight, b, request_id, r->request_id);
    if (b != NULL) {
        size_t done = 0, retry = 0;   /* b->oids[0..done) are the rows to remove */
        uint64_t *again = malloc(b->n * sizeof(*again));
        for (size_t i = 0; i < b->n; i++) {
            int st = i < r->n_statuses ? (int)r->statuses[i] : QPC__STATUS__STATUS_INTERNAL;
            enum request_fed_outcome o = request_fed_outcome_of(st);

            if (o == REQUEST_FED_RETRY) {
                if (again != NULL)   /* else the lease ends and it is due again */
                    again[retry++] = b->oids[i];   /* the remote node may take it later */
                continue;
            }
            if (o == REQUEST_FED_DELIVERED) {
                n->c.federated++;
                remember_handed(n, b->ids[i]);
            } else {
                qpc_log_warn("federation", "node %s refused an envelope (status %d); dropped",
                             l->domain, st);
            }
            b->oids[done++] = b->oids[i];
        }
        mark_failed(n, again, retry, now);
        free(again);
        /* One transaction (one fsync) for the whole answer, not one per envelope. If it
         * fails the rows stay leased and are sent again; the receiver stores them once. */
        if (qpc_queue_outbox_remove_many(n->queue, b->oids, done, NULL) < 0)
            qpc_log_error("federation", "outbox remove of %zu row(s) failed: %s", done,
                          qpc_queue_errmsg(n->queue));
        DL_DELETE(l->inflight, b);
        l->n_inflight -= b->n;
        l->last_ok_ms = node_now_ms();
        free(b->oids);
        free(b->ids);
        free(b);
    }
    qpc__federation_response__free_unpacked(r, &arena.pb.allocator);
    request_arena_clear(&arena);
}

/* --- the connections of links ---------------------------------------------------------------- */

static void link_open(struct session *s)
{
    struct link *l = s->owner;
    struct federation *f = l->node->federation;

    /* A static peer proves no domain and is given none: nothing is pinned for it, and
     * it is not in the table rows, broadcasts and routes are written to. */
    if (!l->static_peer && trust_by_key(l->node) &&
        (!s->has_peer_key || trust_accept_dialled(l->node, l->domain, s->key) != 0)) {
        session_close(s, QPC_QUIC_APP_REFUSED, "key does not prove the domain");
        return;   /* link_closed puts the rows back */
    }
    l->ready = true;
    l->opened = true;
    l->dial_backoff_ms = 0;
    l->last_ok_ms = node_now_ms();
    qpc_log_info("federation", "connected to %s %s", l->static_peer ? "static peer" : "node",
                 l->domain);
    if (!l->static_peer) {
        link_send_routes(l);
        wake_rows(l->node, l->domain);
    }
    if (f->greeter != NULL)
        f->greeter(l->node, l);
    link_send(l);
}

static void link_frame(struct session *s, const uint8_t *data, size_t len)
{
    link_response(s->owner, data, len);
}

static void link_writable(struct session *s)
{
    link_send(s->owner);
}

static void link_closed(struct session *s, const struct qpc_quic_close_info *info)
{
    struct link *l = s->owner;
    char why[320];

    snprintf(why, sizeof(why), "connection ended (%s%s%s)", qpc_strerror(info->err),
             info->reason[0] ? ": " : "", info->reason);
    l->s = NULL;
    l->ready = false;
    if (!l->opened) {   /* it never came up: unreachable, or it did not prove its domain */
        l->failures++;
        l->node->c.errors[ERRK_FEDERATION]++;
        link_backoff(l);
    } else {
        l->next_dial_mono = mono_ms() + DIAL_BACKOFF_MIN_MS;
    }
    l->opened = false;
    link_fail_all(l, why);
    link_drop_bcasts(l);
    link_drop_anns(l);
    if (!l->static_peer)
        link_free_if_unrouted(l->node, l);
    else
        qpc_log_info("federation", "static peer %s: %s", l->domain, why);
}

static const struct session_callbacks link_callbacks = {
    .on_open = link_open,
    .on_frame = link_frame,
    .on_writable = link_writable,
    .on_closed = link_closed,
};

/* --- domain routes (beyond one hop) ----------------------------------------------------- */

void federation_routes_update(struct session *s, const Qpc__DomainRouteUpdate *u)
{
    struct node *n = s->node;
    struct federation *f = n->federation;
    struct domain_route *rt, *tmp;
    char via[QPC_QUEUE_DOMAIN_MAX + 1], key[QPC_QUEUE_DOMAIN_MAX + 1];
    uint64_t now = mono_ms();
    size_t added = 0;

    if (f == NULL || s->fed_domain[0] == '\0' || !domain_key(via, s->fed_domain))
        return;
    HASH_ITER(hh, f->routes, rt, tmp)
        rt->seen = false;
    for (size_t i = 0; i < u->n_routes && i < ROUTES_MAX; i++) {
        const Qpc__DomainRoute *r = u->routes[i];
        uint32_t m = r->metric >= ROUTE_METRIC_MAX ? ROUTE_METRIC_MAX + 1 : r->metric + 1;

        if (r->domain == NULL || qpc_addr_check_name(r->domain) != NULL ||
            !domain_key(key, r->domain) || strcmp(key, via) == 0 ||
            strcasecmp(r->domain, n->sc->federation_domain) == 0 ||
            direct_addr(n, r->domain) != NULL)
            continue;   /* ourselves, the sender, or a node we reach without help */
        HASH_FIND_STR(f->routes, key, rt);
        if (rt != NULL && strcmp(rt->via, via) == 0) {
            rt->seen = m <= ROUTE_METRIC_MAX;
            rt->metric = m;
            rt->expires_mono = now + ROUTE_HOLD_MS;
            continue;
        }
        if (m > ROUTE_METRIC_MAX || (rt != NULL && rt->expires_mono > now && rt->metric <= m))
            continue;   /* we have a route as short through another node */
        if (rt == NULL) {
            if (HASH_COUNT(f->routes) >= ROUTES_MAX || (rt = calloc(1, sizeof(*rt))) == NULL)
                continue;
            snprintf(rt->key, sizeof(rt->key), "%s", key);
            HASH_ADD_STR(f->routes, key, rt);
        }
        snprintf(rt->domain, sizeof(rt->domain), "%s", r->domain);
        snprintf(rt->via, sizeof(rt->via), "%s", via);
        rt->metric = m;
        rt->expires_mono = now + ROUTE_HOLD_MS;
        rt->seen = true;
        added++;
        qpc_log_info("federation", "route to %s via %s (%u hops)", rt->domain, s->fed_domain, m);
        wake_rows(n, rt->domain);
    }
    /* A full table: what the sender no longer lists it no longer reaches. */
    HASH_ITER(hh, f->routes, rt, tmp) {
        if (strcmp(rt->via, via) == 0 && !rt->seen) {
            qpc_log_info("federation", "route to %s via %s gone", rt->domain, s->fed_domain);
            HASH_DEL(f->routes, rt);
            free(rt);
        }
    }
    if (added > 0)
        federation_pump(n, node_now_ms());   /* rows waiting for those domains can go */
}

void federation_peer_closed(struct session *s)
{
    struct federation *f = s->node->federation;
    struct domain_route *rt, *tmp;
    char via[QPC_QUEUE_DOMAIN_MAX + 1];

    if (f == NULL || s->fed_domain[0] == '\0' || !domain_key(via, s->fed_domain))
        return;
    HASH_ITER(hh, f->routes, rt, tmp) {
        if (strcmp(rt->via, via) == 0) {
            HASH_DEL(f->routes, rt);
            free(rt);
        }
    }
}

int federation_forward_status(const struct node *n, const struct session *from,
                              const char *domain, const uint8_t id[static QPC_ID_LEN])
{
    struct handed *h = NULL;
    const char *hop;

    if (from->fed_domain[0] == '\0')
        return QPC__STATUS__STATUS_UNKNOWN_DOMAIN;   /* only a proven node may ask */
    hop = next_hop(n, domain);
    if (hop == NULL || strcasecmp(hop, from->fed_domain) == 0)
        return QPC__STATUS__STATUS_UNKNOWN_DOMAIN;   /* no route, or back where it came from */
    HASH_FIND(hh, n->federation->handed, id, QPC_ID_LEN, h);
    if (h != NULL && mono_ms() - h->at_mono < HANDED_HOLD_MS)
        return QPC__STATUS__STATUS_DEFERRED;   /* it went round: retry once routes settle */
    return -1;
}

size_t federation_links_up(const struct node *n)
{
    struct link *l, *tmp;
    size_t up = 0;

    if (n->federation == NULL)
        return 0;
    HASH_ITER(hh, n->federation->links, l, tmp)
        up += l->ready;
    return up;
}

void federation_foreach_peer(const struct node *n,
                             void (*fn)(const struct federation_peer_state *st, void *arg),
                             void *arg)
{
    struct link *l, *tmp;
    struct domain_route *rt, *rtmp;
    uint64_t now = mono_ms();

    if (n->federation == NULL)
        return;
    HASH_ITER(hh, n->federation->links, l, tmp) {
        struct federation_peer_state st = { .domain = l->domain, .up = l->ready,
            .last_ok_ms = l->last_ok_ms, .failures = l->failures, .metric = 1,
            .outbox_waiting = l->n_waiting + l->n_inflight };
        fn(&st, arg);
    }
    for (size_t i = 0; i < n->federation->n_statics; i++) {
        const struct link *sl = &n->federation->statics[i];
        struct federation_peer_state st = { .domain = sl->addr, .up = sl->ready,
            .last_ok_ms = sl->last_ok_ms, .failures = sl->failures, .static_peer = true };
        fn(&st, arg);
    }
    HASH_ITER(hh, n->federation->routes, rt, rtmp) {
        struct federation_peer_state st = { .domain = rt->domain, .via = rt->via,
            .up = rt->expires_mono > now, .metric = rt->metric };
        fn(&st, arg);
    }
}

/* True when addr is the address of a [federation_peers] entry: that node's link carries
 * announces already, and as a proven one. */
static bool is_federation_peer_addr(const struct node *n, const char *addr)
{
    const struct qpc_config_table *t = &n->sc->federation_peers;

    for (size_t i = 0; i < t->count; i++) {
        const char *v = t->items[i].value;
        size_t alen = strcspn(v, " \t");
        if (strlen(addr) == alen && strncasecmp(v, addr, alen) == 0)
            return true;
    }
    return false;
}

int federation_start(struct node *n)
{
    const struct qpc_config_strings *peers = &n->sc->peers;
    struct federation *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return QPC_ERR_NOMEM;
    if (peers->count > 0 && (f->statics = calloc(peers->count, sizeof(*f->statics))) == NULL) {
        free(f);
        return QPC_ERR_NOMEM;
    }
    for (size_t i = 0; i < peers->count; i++) {
        struct link *l;

        if (is_federation_peer_addr(n, peers->items[i])) {
            qpc_log_info("federation", "static peer %s is in [federation_peers]: its "
                         "federation link carries the announces", peers->items[i]);
            continue;
        }
        l = &f->statics[f->n_statics++];
        l->node = n;
        l->static_peer = true;
        l->next_request_id = 1;
        snprintf(l->addr, sizeof(l->addr), "%s", peers->items[i]);
        snprintf(l->domain, sizeof(l->domain), "%s", peers->items[i]);   /* for the logs */
    }
    n->federation = f;
    return 0;
}

void federation_set_link_greeter(struct node *n, void (*fn)(struct node *n, struct link *l))
{
    if (n->federation != NULL)
        n->federation->greeter = fn;
}

void federation_stop(struct node *n)
{
    struct link *l, *tmp;
    struct learned_node *ln, *ltmp;
    struct federation *f = n->federation;

    if (f == NULL)
        return;
    /* The endpoint is closed already (federation_service_stop): every link's rows went
     * back to the outbox when its connection ended. */
    HASH_ITER(hh, f->links, l, tmp) {
        link_fail_all(l, "node stopping");
        link_drop_bcasts(l);
        link_drop_anns(l);
        HASH_DEL(f->links, l);
        free(l->waiting);
        free(l);
    }
    HASH_ITER(hh, f->learned, ln, ltmp) {
        HASH_DEL(f->learned, ln);
        free(ln);
    }
    {
        struct domain_route *rt, *rtmp;
        struct handed *h, *htmp;
        HASH_ITER(hh, f->routes, rt, rtmp) {
            HASH_DEL(f->routes, rt);
            free(rt);
        }
        HASH_ITER(hh, f->handed, h, htmp) {
            HASH_DEL(f->handed, h);
            free(h);
        }
    }
    for (size_t i = 0; i < f->n_statics; i++) {
        link_drop_anns(&f->statics[i]);
        free(f->statics[i].waiting);
    }
    free(f->statics);
    free(f);
    n->federation = NULL;
}
