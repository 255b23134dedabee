/*
 * federation.c: node-to-node delivery (ALPN quicprochat/federation/1, CA-verified mTLS).
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
 * it was seen at and the default federation port).
 */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <utlist.h>

#include "qpc/error.h"
#include "qpc/log.h"
#include "server.h"

#define PUMP_BATCH 1000u          /* outbox rows leased per pump */
#define LEASE_MS 60000u           /* a leased row is due again after this at the latest */
#define SEND_BATCH_MAX 1000u      /* items per RelayEnqueueRequest */
#define FRAME_MARGIN 4096u
#define LINK_BCAST_MAX 256u       /* broadcasts waiting per link while it connects */
/* Rows one link may hold. Without a bound a peer that stops reading its stream or
 * never answers would make every pump lease more (and, once LEASE_MS passed, the same
 * rows again) onto its link; what is over goes back to the outbox with a failed attempt. */
#define LINK_WAITING_MAX (4u * PUMP_BATCH)
#define LINK_WAITING_BYTES (64u * 1024 * 1024)
#define LINK_INFLIGHT_MAX (16u * PUMP_BATCH)
#define LEARNED_MAX 512u          /* nodes learned from mDNS (anyone on the link can announce) */

struct learned_node {
    char key[QPC_QUEUE_DOMAIN_MAX + 1];      /* domain_key(domain): the hash key */
    char domain[QPC_QUEUE_DOMAIN_MAX + 1];
    char addr[QPC_ADDRESS_MAX + 1];
    UT_hash_handle hh;
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
    size_t n;
    struct out_batch *prev, *next;
};

struct link {
    int kind;                                /* OBJ_LINK */
    struct node *node;
    char key[QPC_QUEUE_DOMAIN_MAX + 1];      /* domain_key(domain): the hash key */
    char domain[QPC_QUEUE_DOMAIN_MAX + 1];
    struct qpc_quic_conn *conn;              /* NULL while not connected */
    bool ready;
    int64_t stream_id;
    struct qpc_outbox_item *waiting;         /* leased rows not yet sent */
    size_t n_waiting, cap_waiting, waiting_bytes;
    struct out_batch *inflight;              /* sent, answer pending */
    size_t n_inflight;                       /* rows in inflight */
    struct bcast_blob *bcasts;               /* broadcasts waiting to go (best effort) */
    size_t n_bcasts;
    uint64_t next_request_id;
    UT_hash_handle hh;
};

/* --- resolve_destination ------------------------------------------------------------- */

/* The key of a domain in n->learned and n->links: lower case, as DNS names compare, so
 * a client writing one peer's domain in many spellings cannot make many links to it.
 * False when the domain is too long to be a key. */
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

enum dest_kind resolve_destination(const struct node *n, const char *domain, char *addr,
                                   size_t addrlen)
{
    const char *found;
    struct learned_node *ln = NULL;
    char key[QPC_QUEUE_DOMAIN_MAX + 1];

    if (domain == NULL || domain[0] == '\0' || strcasecmp(domain, n->sc->federation_domain) == 0)
        return DEST_LOCAL;
    if (!n->sc->federation_enabled)
        return DEST_UNKNOWN;
    found = qpc_config_table_get(&n->sc->federation_peers, domain);
    if (found == NULL && domain_key(key, domain)) {
        HASH_FIND_STR(n->learned, key, ln);
        if (ln != NULL)
            found = ln->addr;
    }
    if (found == NULL)
        return DEST_UNKNOWN;
    if (addr != NULL)
        snprintf(addr, addrlen, "%s", found);
    return DEST_REMOTE;
}

void federation_learn(struct node *n, const char *domain, const char *host)
{
    struct learned_node *ln;
    bool v6 = strchr(host, ':') != NULL;
    char key[QPC_QUEUE_DOMAIN_MAX + 1];

    if (domain == NULL || domain[0] == '\0' || !domain_key(key, domain) ||
        strcasecmp(domain, n->sc->federation_domain) == 0)
        return;
    if (v6 && strncasecmp(host, "fe80:", 5) == 0)
        return;   /* link-local needs a scope id: dial such nodes by a routable address */
    HASH_FIND_STR(n->learned, key, ln);
    if (ln != NULL && v6 && strchr(ln->addr, '[') == NULL)
        return;   /* keep an IPv4 address: our federation socket may be IPv4 only */
    if (ln == NULL) {
        if (HASH_COUNT(n->learned) >= LEARNED_MAX)
            return;
        ln = calloc(1, sizeof(*ln));
        if (ln == NULL)
            return;
        snprintf(ln->key, sizeof(ln->key), "%s", key);
        snprintf(ln->domain, sizeof(ln->domain), "%s", domain);
        HASH_ADD_STR(n->learned, key, ln);
    }
    snprintf(ln->addr, sizeof(ln->addr), v6 ? "[%s]:%u" : "%s:%u", host,
             QPC_QUIC_PORT_FEDERATION);
    qpc_log_info("federation", "learned node %s at %s (mDNS)", ln->domain, ln->addr);
}

static void link_retire(struct node *n, const char *domain);

void federation_forget(struct node *n, const char *domain)
{
    struct learned_node *ln;
    char key[QPC_QUEUE_DOMAIN_MAX + 1];

    if (domain == NULL || !domain_key(key, domain))
        return;
    HASH_FIND_STR(n->learned, key, ln);
    if (ln != NULL) {
        qpc_log_info("federation", "node %s left (mDNS goodbye or expiry)", ln->domain);
        HASH_DEL(n->learned, ln);
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
    HASH_FIND_STR(n->links, key, l);
    if (l != NULL)
        return l;
    l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->kind = OBJ_LINK;
    l->node = n;
    l->next_request_id = 1;
    snprintf(l->key, sizeof(l->key), "%s", key);
    snprintf(l->domain, sizeof(l->domain), "%s", domain);
    HASH_ADD_STR(n->links, key, l);
    return l;
}

/* Frees a link that is not connected and whose domain no longer resolves, so domains
 * announced once on mDNS (by anyone on the link) do not pile up links. */
static void link_free_if_unrouted(struct node *n, struct link *l)
{
    if (l->conn != NULL || resolve_destination(n, l->domain, NULL, 0) == DEST_REMOTE)
        return;
    HASH_DEL(n->links, l);
    free(l->waiting);   /* empty: every row went back with link_fail_all */
    free(l);
}

static void mark_failed(struct node *n, uint64_t oid, uint64_t now)
{
    int rc = qpc_queue_outbox_mark_failed(n->queue, oid, now, NULL);

    if (rc != 0 && rc != QPC_ERR_NOT_FOUND)
        qpc_log_error("federation", "outbox update failed: %s", qpc_queue_errmsg(n->queue));
}

/* Everything taken from the outbox for this link goes back with a failed attempt. */
static void link_fail_all(struct link *l, const char *why)
{
    struct node *n = l->node;
    struct out_batch *b, *tmp;
    uint64_t now = node_now_ms();
    size_t count = l->n_waiting;

    for (size_t i = 0; i < l->n_waiting; i++) {
        mark_failed(n, l->waiting[i].oid, now);
        free(l->waiting[i].blob);
    }
    l->n_waiting = 0;
    l->waiting_bytes = 0;
    l->n_inflight = 0;
    DL_FOREACH_SAFE(l->inflight, b, tmp) {
        for (size_t i = 0; i < b->n; i++)
            mark_failed(n, b->oids[i], now);
        count += b->n;
        DL_DELETE(l->inflight, b);
        free(b->oids);
        free(b);
    }
    if (count > 0) {
        n->c.errors[ERRK_FEDERATION]++;
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

/* Sends waiting broadcasts in RelayBroadcastRequests (answers are only counted by the
 * receiver: a lost one is not retried). */
/* A learned node left: its link is freed (when connected, once the close is done). */
static void link_retire(struct node *n, const char *domain)
{
    struct link *l;

    HASH_FIND_STR(n->links, domain, l);   /* domain is a key (domain_key) */
    if (l == NULL || resolve_destination(n, domain, NULL, 0) == DEST_REMOTE)
        return;
    if (l->conn != NULL) {
        qpc_quic_conn_close(l->conn, QPC_QUIC_APP_SHUTDOWN, "node left");
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
        ProtobufCBinaryData envs[64];
        struct bcast_blob *b = l->bcasts;
        size_t k = 0, used = 0, len;
        uint8_t *frame;
        int rc = QPC_ERR_NOMEM;

        for (; b != NULL && k < 64 && (k == 0 || used + b->len + 16 <= budget); b = b->next) {
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
        len = qpc__federation_request__get_packed_size(&req);
        frame = malloc(len);
        if (frame != NULL) {
            qpc__federation_request__pack(&req, frame);
            rc = qpc_quic_conn_send_frame(l->conn, l->stream_id, frame, len);
        }
        free(frame);
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
    while (l->ready && l->n_waiting > 0) {
        Qpc__FederationRequest req = QPC__FEDERATION_REQUEST__INIT;
        Qpc__RelayEnqueueRequest rr = QPC__RELAY_ENQUEUE_REQUEST__INIT;
        Qpc__EnqueueItem items[SEND_BATCH_MAX], *ptrs[SEND_BATCH_MAX];
        struct out_batch *b = NULL;
        size_t k = 0, used = 0, len;
        uint8_t *frame = NULL;
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
        len = qpc__federation_request__get_packed_size(&req);
        frame = malloc(len);
        b = calloc(1, sizeof(*b));
        if (frame != NULL && b != NULL && (b->oids = calloc(k, sizeof(*b->oids))) != NULL) {
            qpc__federation_request__pack(&req, frame);
            rc = qpc_quic_conn_send_frame(l->conn, l->stream_id, frame, len);
        }
        free(frame);
        if (rc == QPC_ERR_AGAIN) {
            if (b != NULL)
                free(b->oids);
            free(b);
            return;   /* on_writable resumes */
        }
        if (rc == QPC_ERR_TOO_LARGE && k == 1) {
            /* One row that can never fit a frame (an envelope near max_frame_size): retrying
             * it would fail the whole link again on every pump, so it is dropped. */
            free(b->oids);
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
            if (b != NULL)
                free(b->oids);
            free(b);
            link_fail_all(l, qpc_strerror(rc));
            return;
        }
        b->request_id = l->next_request_id++;
        b->n = k;
        for (size_t i = 0; i < k; i++) {
            b->oids[i] = l->waiting[i].oid;
            l->waiting_bytes -= l->waiting[i].blob_len;
            free(l->waiting[i].blob);
        }
        DL_APPEND(l->inflight, b);
        l->n_inflight += k;
        memmove(l->waiting, l->waiting + k, (l->n_waiting - k) * sizeof(*l->waiting));
        l->n_waiting -= k;
    }
}

static int dial(struct link *l, const char *addr)
{
    struct node *n = l->node;
    struct addrinfo hints = { 0 }, *res = NULL;
    char host[256], port_s[8];
    uint16_t port;
    int rc;

    rc = qpc_addr_parse(addr, host, sizeof(host), &port);
    if (rc != 0)
        return rc;
    snprintf(port_s, sizeof(port_s), "%u", port);
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_NUMERICSERV;
    if (getaddrinfo(host, port_s, &hints, &res) != 0 || res == NULL)
        return QPC_ERR_NOT_FOUND;
    rc = qpc_quic_connect(n->fed_ep, res->ai_addr, res->ai_addrlen, QPC_ALPN_FEDERATION, NULL,
                          l, &l->conn);
    freeaddrinfo(res);
    if (rc == 0)
        n->c.fed_connections_total++;
    else
        l->conn = NULL;
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
    if (l->conn == NULL && dial(l, addr) != 0) {
        qpc_log_warn("federation", "node %s: cannot dial; broadcast dropped", domain);
        link_drop_bcasts(l);
        return 0;
    }
    if (l->ready)
        link_send(l);
    return 1;
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
    HASH_ITER(hh, n->learned, ln, tmp) {
        if ((origin_domain == NULL || strcasecmp(ln->domain, origin_domain) != 0) &&
            qpc_config_table_get(&n->sc->federation_peers, ln->domain) == NULL)
            sent += bcast_to(n, ln->domain, blob, len);
    }
    return sent;
}

void federation_pump(struct node *n, uint64_t now_ms)
{
    struct qpc_outbox_item *items = NULL;
    struct link *l, *tmp;
    size_t count = 0;
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
        if (resolve_destination(n, items[i].domain, NULL, 0) != DEST_REMOTE ||
            (l = link_get(n, items[i].domain)) == NULL || link_take(l, &items[i]) != 0)
            mark_failed(n, items[i].oid, now_ms);   /* no route now: perhaps later (mDNS) */
    }
    qpc_outbox_items_free(items, count);
    HASH_ITER(hh, n->links, l, tmp) {
        if (l->n_waiting == 0)
            continue;
        if (l->conn == NULL) {
            if (resolve_destination(n, l->domain, addr, sizeof(addr)) != DEST_REMOTE ||
                (rc = dial(l, addr)) != 0)
                link_fail_all(l, "cannot dial");
        } else if (l->ready) {
            link_send(l);
        }
    }
}

static void link_response(struct link *l, const uint8_t *data, size_t len)
{
    struct node *n = l->node;
    Qpc__FederationResponse *r = qpc__federation_response__unpack(NULL, len, data);
    struct out_batch *b;
    uint64_t now = node_now_ms();

    if (r == NULL) {
        qpc_quic_conn_close(l->conn, QPC_QUIC_APP_REFUSED, "malformed federation response");
        return;
    }
    DL_SEARCH_SCALAR(l->inflight, b, request_id, r->request_id);
    if (b != NULL) {
        size_t done = 0;   /* b->oids[0..done) are the rows to remove */
        for (size_t i = 0; i < b->n; i++) {
            int st = i < r->n_statuses ? (int)r->statuses[i] : QPC__STATUS__STATUS_INTERNAL;
            if (st == QPC__STATUS__STATUS_QUEUE_FULL || st == QPC__STATUS__STATUS_INTERNAL ||
                st == QPC__STATUS__STATUS_DEFERRED) {
                mark_failed(n, b->oids[i], now);   /* the remote node may take it later */
                continue;
            }
            if (st == QPC__STATUS__STATUS_OK)
                n->c.federated++;
            else
                qpc_log_warn("federation", "node %s refused an envelope (status %d); dropped",
                             l->domain, st);
            b->oids[done++] = b->oids[i];
        }
        /* One transaction (one fsync) for the whole answer, not one per envelope. If it
         * fails the rows stay leased and are sent again; the receiver stores them once. */
        if (qpc_queue_outbox_remove_many(n->queue, b->oids, done, NULL) < 0)
            qpc_log_error("federation", "outbox remove of %zu row(s) failed: %s", done,
                          qpc_queue_errmsg(n->queue));
        DL_DELETE(l->inflight, b);
        l->n_inflight -= b->n;
        free(b->oids);
        free(b);
    }
    qpc__federation_response__free_unpacked(r, NULL);
}

/* --- federation endpoint callbacks ------------------------------------------------------------ */

static int on_connected(struct qpc_quic_conn *conn, const char *alpn, const uint8_t *peer_key,
                        void *user)
{
    int kind = *(int *)user;

    if (strcmp(alpn, QPC_ALPN_FEDERATION) != 0)
        return 1;
    if (kind == OBJ_NODE) {
        struct node *n = user;
        struct session *s;
        if (n->stopping || (s = session_new(n, conn, true)) == NULL)
            return 1;
        n->c.fed_connections_total++;
        qpc_log_debug("federation", "node connected from %s", s->peer_addr);
        return 0;
    }
    if (kind == OBJ_LINK) {
        struct link *l = user;
        if (qpc_quic_conn_open_stream(conn, &l->stream_id) != 0)
            return 1;
        l->ready = true;
        qpc_log_info("federation", "connected to node %s", l->domain);
        link_send(l);
        return 0;
    }
    return 1;
}

static void on_frame(struct qpc_quic_conn *conn, int64_t stream_id, const uint8_t *data,
                     size_t len, void *user)
{
    int kind = *(int *)user;

    if (kind == OBJ_SESSION) {
        struct session *s = user;
        if (!s->has_stream) {
            s->has_stream = true;
            s->stream_id = stream_id;
        }
        delivery_handle_federation(s, data, len);
    } else if (kind == OBJ_LINK) {
        link_response(user, data, len);
    }
}

static void on_writable(struct qpc_quic_conn *conn, int64_t stream_id, void *user)
{
    int kind = *(int *)user;

    if (kind == OBJ_SESSION)
        session_flush(user);
    else if (kind == OBJ_LINK)
        link_send(user);
}

static void on_closed(struct qpc_quic_conn *conn, const struct qpc_quic_close_info *info,
                      void *user)
{
    int kind = *(int *)user;

    if (kind == OBJ_SESSION) {
        session_closed(user);
    } else if (kind == OBJ_LINK) {
        struct link *l = user;
        char why[320];

        snprintf(why, sizeof(why), "connection ended (%s%s%s)", qpc_strerror(info->err),
                 info->reason[0] ? ": " : "", info->reason);
        l->conn = NULL;
        l->ready = false;
        link_fail_all(l, why);
        link_drop_bcasts(l);
        link_free_if_unrouted(l->node, l);
    }
}

int federation_start(struct node *n)
{
    const struct server_settings *sc = n->sc;
    struct qpc_quic_config qc = { 0 };
    char host[256];
    uint16_t port;
    int rc;

    if (!sc->federation_enabled)
        return 0;
    rc = qpc_addr_parse(sc->federation_listen, host, sizeof(host), &port);
    if (rc != 0)
        return rc;
    qc.bind_addr = host;
    qc.port = port;
    qc.accept = true;
    qc.alpns[0] = QPC_ALPN_FEDERATION;
    qc.fed_cert_der = sc->federation_cert;
    qc.fed_key_der = sc->federation_key;
    qc.fed_ca_der = sc->federation_ca;
    qc.max_frame = (size_t)sc->max_frame_size;
    qc.idle_timeout_ms = (uint64_t)sc->idle_timeout_ms;
    qc.keepalive_ms = (uint64_t)sc->idle_timeout_ms / 3;
    qc.cb.on_connected = on_connected;
    qc.cb.on_frame = on_frame;
    qc.cb.on_writable = on_writable;
    qc.cb.on_closed = on_closed;
    qc.user = n;
    return qpc_quic_endpoint_new(&n->fed_ep, n->loop, &qc);
}

void federation_stop(struct node *n)
{
    struct link *l, *tmp;
    struct learned_node *ln, *ltmp;

    /* Closing the endpoint ends every link: their rows go back to the outbox. */
    qpc_quic_endpoint_free(n->fed_ep);
    n->fed_ep = NULL;
    HASH_ITER(hh, n->links, l, tmp) {
        link_fail_all(l, "node stopping");
        link_drop_bcasts(l);
        HASH_DEL(n->links, l);
        free(l->waiting);
        free(l);
    }
    HASH_ITER(hh, n->learned, ln, ltmp) {
        HASH_DEL(n->learned, ln);
        free(ln);
    }
}
