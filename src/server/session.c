/*
 * session.c: the connections of the node and the order their answers leave in.
 *
 * The one idea: a reply is a place in its session's FIFO. A service that can answer at
 * once fills the place as it takes it (session_send_message); one that answers later,
 * after a group commit, takes the place now and fills it then (session_reply_reserve,
 * session_reply_send). The FIFO is sent from its head as far as places are filled, so
 * answers keep request order whatever finishes first. A session that closes with places
 * still open detaches them: the service still ends each one, and it goes nowhere.
 *
 * Everything else here is plumbing the services should not repeat: one endpoint
 * configuration for both ALPNs, the QUIC callbacks that turn connections into sessions
 * (and refuse newcomers while the node stops), dialling by "host:port" (a name is looked
 * up with the endpoint's resolver while the loop goes on: such a session has no
 * connection until the answer, and ends through on_closed if none comes), the directory
 * of connected clients by key, the one pack-and-send of a protobuf message, and the
 * limit on unsent replies that disconnects a client that does not read.
 *
 * Limits belong to the key, not to a connection: an entry of the directory holds the
 * key's rate buckets and counts its connections (capped at admission, as are the
 * client connections in all), and it lingers SESSION_LINGER_S after the key's last
 * connection, on a list oldest first, so a reconnect does not refill its buckets.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utlist.h>

#include "qpc/addr.h"
#include "qpc/error.h"
#include "qpc/log.h"
#include "qpc/resolve.h"
#include "qpc/uthash_keyed.h"
#include "session.h"

#define REPLY_BACKLOG_MAX 100000u   /* unsent replies before a client that does not read
                                     * is disconnected */
#define REPLY_BACKLOG_BYTES (64u * 1024 * 1024)   /* or unsent bytes (plus two frames): a
                                     * tiny fetch can ask for a frame-sized answer */

/* The callbacks of an endpoint get a `user` pointer that is either the endpoint (a
 * connection not admitted yet) or a session; each starts with its kind. */
enum obj_kind { OBJ_ENDPOINT = 1, OBJ_SESSION };

/* A client key: its connections, and its rate buckets, which outlive them (linger). */
struct client_entry {
    uint8_t key[QPC_KEY_LEN];
    struct session *sessions;      /* utlist DL, through session prev/next */
    size_t n_sessions;
    struct token_bucket rates[SESSION_RATE_COUNT];
    double idle_since;             /* ratelimit_now() when its last session ended */
    struct client_entry *lprev, *lnext;   /* on the endpoint's linger list while idle */
    UT_hash_handle hh;
};

struct session_endpoint {
    int kind;                      /* OBJ_ENDPOINT */
    struct node *node;
    struct qpc_quic_endpoint *quic;
    const struct session_callbacks *cb;
    char alpn[64];
    bool clients;
    struct client_entry *by_key;   /* connected clients (keyed hash: keys are free to mint)
                                    * and idle ones whose buckets linger */
    struct client_entry *lingering;/* idle entries, oldest first (utlist DL via lprev/lnext) */
    size_t n_lingering;
    size_t n_sessions;             /* client sessions admitted and not yet freed */
    size_t max_sessions, max_sessions_per_key;
    struct qpc_resolver *resolver; /* made at the first dial of a name */
    const struct qpc_resolver_config *resolver_cfg;
    struct session *unconnected;   /* dialled sessions without a conn yet (utlist DL via
                                    * uprev/unext): looking up, or ending */
};

struct session_reply {
    struct session *owner;         /* NULL once the session is gone */
    struct session_reply *prev, *next;
    uint8_t *frame;                /* the encoded answer once filled */
    size_t frame_len;
};


/* --- the reply FIFO ------------------------------------------------------------------ */

static void reply_free(struct session_reply *r)
{
    free(r->frame);
    free(r);
}

/* Closes a session whose unsent replies grow too many or too large: it does not read
 * (the close is carried out at the top of the loop, so s stays valid here). */
static void backlog_check(struct session *s)
{
    size_t max_bytes = REPLY_BACKLOG_BYTES + 2 * (size_t)s->node->sc->max_frame_size;

    if (s->backlog_closed ||
        (s->reply_count <= REPLY_BACKLOG_MAX && s->reply_bytes <= max_bytes))
        return;
    s->backlog_closed = true;
    qpc_log_warn("delivery", "%s does not read its replies; closing", s->peer_addr);
    session_close(s, QPC_QUIC_APP_REFUSED, "reply backlog");
}

/* Appends r to its owner's FIFO. Refuses to grow the backlog of a client that does
 * not read. */
static void reply_append(struct session *s, struct session_reply *r)
{
    r->owner = s;
    DL_APPEND(s->replies, r);
    s->reply_count++;
    s->reply_bytes += r->frame_len;
    backlog_check(s);
}

/* Sends the filled replies at the head of the FIFO, in order. */
static void session_flush(struct session *s)
{
    while (s->replies != NULL && s->replies->frame != NULL) {
        struct session_reply *r = s->replies;
        int rc = QPC_ERR_CLOSED;

        if (s->has_stream)
            rc = qpc_quic_conn_send_frame(s->conn, s->stream_id, r->frame, r->frame_len);
        if (rc == QPC_ERR_AGAIN)
            return;   /* on_writable calls us again */
        if (rc != 0)
            qpc_log_debug("delivery", "%s: reply dropped: %s", s->peer_addr, qpc_strerror(rc));
        DL_DELETE(s->replies, r);
        s->reply_count--;
        s->reply_bytes -= r->frame_len;
        reply_free(r);
    }
}

void session_send_message(struct session *s, const ProtobufCMessage *m)
{
    struct session_reply *r = calloc(1, sizeof(*r));

    if (r == NULL)
        return;
    if (qpc_quic_pack_message(m, &r->frame, &r->frame_len) != 0) {
        free(r);
        return;
    }
    reply_append(s, r);
    session_flush(s);
}

struct session_reply *session_reply_reserve(struct session *s)
{
    struct session_reply *r = calloc(1, sizeof(*r));

    if (r != NULL)
        reply_append(s, r);
    return r;
}

struct session *session_reply_session(const struct session_reply *r)
{
    return r->owner;
}

void session_reply_cancel(struct session_reply *r)
{
    struct session *s = r->owner;

    if (s != NULL) {
        DL_DELETE(s->replies, r);
        s->reply_count--;
    }
    reply_free(r);
    if (s != NULL)
        session_flush(s);   /* the places behind it may be filled already */
}

void session_reply_send(struct session_reply *r, const ProtobufCMessage *m)
{
    struct session *s = r->owner;

    if (s == NULL || qpc_quic_pack_message(m, &r->frame, &r->frame_len) != 0) {
        /* Out of memory: the client times out and retries; enqueues are idempotent. */
        session_reply_cancel(r);
        return;
    }
    s->reply_bytes += r->frame_len;
    backlog_check(s);
    session_flush(s);
}

int session_write_message(struct session *s, const ProtobufCMessage *m)
{
    if (!s->has_stream)
        return QPC_ERR_NOT_FOUND;
    return qpc_quic_conn_send_message(s->conn, s->stream_id, m);
}

int session_send_datagram(struct session *s, const uint8_t *data, size_t len)
{
    if (s->conn == NULL)
        return QPC_ERR_NOT_FOUND;   /* dialled by name, not connected yet */
    return qpc_quic_conn_send_datagram(s->conn, data, len);
}

static void unconnected_end_soon(struct session *s, const char *reason);

void session_close(struct session *s, uint64_t app_code, const char *reason)
{
    if (s->conn != NULL)
        qpc_quic_conn_close(s->conn, app_code, reason);
    else   /* still looking up its name: it ends from the loop, like a connection */
        unconnected_end_soon(s, reason);
}

/* --- sessions and the client directory --------------------------------------------- */

static struct session *session_new(struct session_endpoint *e, struct qpc_quic_conn *conn,
                                   const struct session_callbacks *cb)
{
    struct session *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    s->kind = OBJ_SESSION;
    s->node = e->node;
    s->ep = e;
    s->conn = conn;
    s->cb = cb;
    return s;
}

static void session_free(struct session *s);

/* A dialled session that never got a connection ends: on_closed with err and why. */
static void unconnected_end(struct session *s, int err, const char *why)
{
    struct session_endpoint *e = s->ep;
    struct qpc_quic_close_info info = { .err = err, .reason = why };

    qpc_resolve_cancel(s->resolving);
    s->resolving = NULL;
    ev_timer_stop(e->node->loop, &s->unconnected_end);
    DL_DELETE2(e->unconnected, s, uprev, unext);
    if (s->cb->on_closed != NULL)
        s->cb->on_closed(s, &info);
    session_free(s);
}

static void unconnected_end_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct session *s = w->data;

    unconnected_end(s, QPC_ERR_CLOSED, s->end_reason);
}

/* session_close before the name was looked up: the lookup is dropped now, and on_closed
 * runs from the loop, as it does for a connection (the caller may still use s). */
static void unconnected_end_soon(struct session *s, const char *reason)
{
    qpc_resolve_cancel(s->resolving);
    s->resolving = NULL;
    if (ev_is_active(&s->unconnected_end))
        return;
    snprintf(s->end_reason, sizeof(s->end_reason), "%s", reason != NULL ? reason : "");
    ev_timer_start(s->node->loop, &s->unconnected_end);
}

static void set_peer_addr(struct session *s)
{
    socklen_t alen;

    qpc_addr_format(qpc_quic_conn_remote_addr(s->conn, &alen), s->peer_addr,
                    sizeof(s->peer_addr));
}

static void entry_free(struct session_endpoint *e, struct client_entry *ce)
{
    DL_DELETE2(e->lingering, ce, lprev, lnext);
    e->n_lingering--;
    HASH_DEL(e->by_key, ce);
    free(ce);
}

/* Forgets idle entries whose buckets have refilled (older than SESSION_LINGER_S), and
 * the oldest beyond SESSION_LINGER_MAX: keys are free to mint. O(1) per call amortised. */
static void linger_gc(struct session_endpoint *e, double now)
{
    while (e->lingering != NULL &&
           (e->n_lingering > SESSION_LINGER_MAX ||
            now - e->lingering->idle_since >= SESSION_LINGER_S))
        entry_free(e, e->lingering);
}

/* The entry of key (a lingering one is woken), or NULL; never creates one. */
static struct client_entry *entry_find(const struct session_endpoint *e, const uint8_t *key)
{
    struct client_entry *ce;

    HASH_FIND(hh, e->by_key, key, QPC_KEY_LEN, ce);
    return ce;
}

static struct client_entry *entry_get(struct session_endpoint *e, const uint8_t *key)
{
    struct client_entry *ce = entry_find(e, key);

    if (ce != NULL) {
        if (ce->sessions == NULL) {   /* lingering: back in use, buckets as they were */
            DL_DELETE2(e->lingering, ce, lprev, lnext);
            e->n_lingering--;
        }
        return ce;
    }
    ce = calloc(1, sizeof(*ce));
    if (ce == NULL)
        return NULL;
    memcpy(ce->key, key, QPC_KEY_LEN);
    HASH_ADD(hh, e->by_key, key, QPC_KEY_LEN, ce);
    return ce;
}

static void directory_add(struct session_endpoint *e, struct client_entry *ce, struct session *s)
{
    DL_APPEND(ce->sessions, s);
    ce->n_sessions++;
    e->n_sessions++;
    s->client = ce;
}

/* The key's last session gone: its entry lingers so its buckets are not refilled by a
 * reconnect. */
static void directory_remove(struct session_endpoint *e, struct session *s)
{
    struct client_entry *ce = s->client;
    double now = ratelimit_now();

    if (ce == NULL)
        return;
    DL_DELETE(ce->sessions, s);
    ce->n_sessions--;
    e->n_sessions--;
    s->client = NULL;
    if (ce->sessions == NULL) {
        ce->idle_since = now;
        DL_APPEND2(e->lingering, ce, lprev, lnext);
        e->n_lingering++;
    }
    linger_gc(e, now);
}

bool session_take(struct session *s, enum session_rate which, double rate, double burst)
{
    struct token_bucket *b = s->client != NULL ? &s->client->rates[which] : &s->own_rates[which];

    return token_bucket_take(b, ratelimit_now(), rate, burst);
}

/* Detaches the open places (their services still end them) and frees s. */
static void session_free(struct session *s)
{
    struct session_reply *r, *tmp;

    DL_FOREACH_SAFE(s->replies, r, tmp) {
        DL_DELETE(s->replies, r);
        r->owner = NULL;
        if (r->frame != NULL)
            reply_free(r);   /* filled: nobody else holds it */
    }
    if (s->is_client)
        directory_remove(s->ep, s);
    free(s);
}

struct session *session_find(const struct session_endpoint *e,
                             const uint8_t key[static QPC_KEY_LEN])
{
    struct client_entry *ce;

    if (e == NULL)
        return NULL;
    ce = entry_find(e, key);
    return ce != NULL ? ce->sessions : NULL;
}

struct session *session_next_of_client(const struct session *s)
{
    return s->next;
}

void session_foreach_client(struct session_endpoint *e,
                            void (*fn)(struct session *s, void *arg), void *arg)
{
    struct client_entry *ce, *tmp;
    struct session *s;

    if (e == NULL)
        return;
    HASH_ITER(hh, e->by_key, ce, tmp) {
        DL_FOREACH(ce->sessions, s)
            fn(s, arg);
    }
}

/* --- QUIC callbacks ------------------------------------------------------------------ */

/*
 * Refuses a client over a cap: CONNECTION_CLOSE with the reason, a counter, and a log
 * line (one per reason per 10 s: the one who hits a cap is usually the one who tries
 * again at once).
 */
static int refuse_client(struct session_endpoint *e, struct qpc_quic_conn *conn,
                         const uint8_t *key, int which, const char *reason)
{
    static struct qpc_log_limit limits[2];
    uint64_t suppressed = 0;
    char hex[QPC_KEY_HEX_LEN];
    socklen_t alen;
    char addr[64];

    e->node->c.conn_refused[which]++;
    if (qpc_log_limit_pass(&limits[which], ratelimit_now_ms(), 10000, &suppressed)) {
        qpc_key_to_hex(hex, key);
        qpc_addr_format(qpc_quic_conn_remote_addr(conn, &alen), addr, sizeof(addr));
        qpc_log_warn("session", "client %.16s... at %s refused: %s (%llu more refused like it)",
                     hex, addr, reason, (unsigned long long)suppressed);
    }
    qpc_quic_conn_close(conn, QPC_QUIC_APP_REFUSED, reason);
    return 1;
}

/* An incoming connection finished its handshake: admit it as a session, or refuse. */
static int admit(struct session_endpoint *e, struct qpc_quic_conn *conn, const char *alpn,
                 const uint8_t *peer_key)
{
    struct client_entry *ce = NULL;
    struct session *s;

    if (e->node->stopping || strcmp(alpn, e->alpn) != 0 || (e->clients && peer_key == NULL))
        return 1;
    if (e->clients) {
        linger_gc(e, ratelimit_now());
        if (e->max_sessions > 0 && e->n_sessions >= e->max_sessions)
            return refuse_client(e, conn, peer_key, CONN_REFUSED_FULL,
                                 "too many client connections on this node");
        ce = entry_find(e, peer_key);
        if (ce != NULL && e->max_sessions_per_key > 0 &&
            ce->n_sessions >= e->max_sessions_per_key)
            return refuse_client(e, conn, peer_key, CONN_REFUSED_PER_KEY,
                                 "too many connections for this key");
        if ((ce = entry_get(e, peer_key)) == NULL)
            return 1;
    }
    s = session_new(e, conn, e->cb);
    if (s == NULL) {
        if (ce != NULL && ce->sessions == NULL) {   /* made for it: linger like any other */
            ce->idle_since = ratelimit_now();
            DL_APPEND2(e->lingering, ce, lprev, lnext);
            e->n_lingering++;
        }
        return 1;
    }
    set_peer_addr(s);
    if (peer_key != NULL) {
        s->has_peer_key = true;
        memcpy(s->key, peer_key, QPC_KEY_LEN);
    }
    if (e->clients) {
        s->is_client = true;
        directory_add(e, ce, s);
    }
    qpc_quic_conn_set_user(conn, s);
    if (s->cb->on_open != NULL)
        s->cb->on_open(s);
    return 0;
}

static int on_connected(struct qpc_quic_conn *conn, const char *alpn, const uint8_t *peer_key,
                        void *user)
{
    struct session *s = user;

    if (*(int *)user == OBJ_ENDPOINT)
        return admit(user, conn, alpn, peer_key);
    /* A connection this node dialled. */
    if (strcmp(alpn, s->ep->alpn) != 0 || qpc_quic_conn_open_stream(conn, &s->stream_id) != 0)
        return 1;
    if (peer_key != NULL) {
        s->has_peer_key = true;
        memcpy(s->key, peer_key, QPC_KEY_LEN);
    }
    s->has_stream = true;
    if (s->cb->on_open != NULL)
        s->cb->on_open(s);
    return 0;
}

static void on_frame(struct qpc_quic_conn *conn, int64_t stream_id, const uint8_t *data,
                     size_t len, void *user)
{
    struct session *s = user;

    if (s->kind != OBJ_SESSION)
        return;
    if (!s->has_stream) {
        s->has_stream = true;
        s->stream_id = stream_id;
    }
    if (s->cb->on_frame != NULL)
        s->cb->on_frame(s, data, len);
}

static void on_datagram(struct qpc_quic_conn *conn, const uint8_t *data, size_t len, void *user)
{
    struct session *s = user;

    if (s->kind == OBJ_SESSION && s->cb->on_datagram != NULL)
        s->cb->on_datagram(s, data, len);
}

static void on_writable(struct qpc_quic_conn *conn, int64_t stream_id, void *user)
{
    struct session *s = user;

    if (s->kind != OBJ_SESSION)
        return;
    session_flush(s);
    if (s->cb->on_writable != NULL)
        s->cb->on_writable(s);
}

static void on_closed(struct qpc_quic_conn *conn, const struct qpc_quic_close_info *info,
                      void *user)
{
    struct session *s = user;

    if (s->kind != OBJ_SESSION)
        return;
    if (s->cb->on_closed != NULL)
        s->cb->on_closed(s, info);
    session_free(s);
}

/* --- endpoints and dialling ---------------------------------------------------------- */

int session_endpoint_open(struct node *n, const struct session_endpoint_config *cfg,
                          const struct session_callbacks *cb, struct session_endpoint **out)
{
    const struct server_settings *sc = n->sc;
    struct qpc_quic_config qc = { 0 };
    struct session_endpoint *e;
    char host[256];
    uint16_t port;
    int rc;

    rc = qpc_addr_parse(cfg->listen, host, sizeof(host), &port);
    if (rc != 0)
        return rc;
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return QPC_ERR_NOMEM;
    e->kind = OBJ_ENDPOINT;
    e->node = n;
    e->cb = cb;
    e->clients = cfg->clients;
    e->max_sessions = cfg->max_sessions;
    e->max_sessions_per_key = cfg->max_sessions_per_key;
    e->resolver_cfg = cfg->resolver;
    snprintf(e->alpn, sizeof(e->alpn), "%s", cfg->alpn);
    qc.bind_addr = host;
    qc.port = port;
    qc.accept = true;
    qc.alpns[0] = cfg->alpn;
    if (cfg->clients || cfg->by_key)
        qc.identity_sk = qpc_identity_secret_key(n->identity);
    qc.fed_by_key = cfg->by_key;
    qc.fed_cert_der = cfg->cert_der;
    qc.fed_key_der = cfg->key_der;
    qc.fed_ca_der = cfg->ca_der;
    qc.max_frame = (size_t)sc->max_frame_size;
    qc.idle_timeout_ms = (uint64_t)sc->idle_timeout_ms;
    qc.keepalive_ms = cfg->keepalive_ms;
    /* The node's setting: 0 means every new peer is validated. */
    qc.retry_threshold = sc->quic_retry_threshold > 0 ? (int)sc->quic_retry_threshold
                                                     : QPC_QUIC_RETRY_ALWAYS;
    qc.cb.on_connected = on_connected;
    qc.cb.on_frame = on_frame;
    qc.cb.on_datagram = on_datagram;
    qc.cb.on_writable = on_writable;
    qc.cb.on_closed = on_closed;
    qc.user = e;
    rc = qpc_quic_endpoint_new(&e->quic, n->loop, &qc);
    if (rc != 0) {
        free(e);
        return rc;
    }
    *out = e;
    return 0;
}

void session_endpoint_close(struct session_endpoint *e)
{
    if (e == NULL)
        return;
    /* Runs on_closed for every connection, which frees the sessions and leaves every
     * entry lingering; those go here. */
    while (e->unconnected != NULL)
        unconnected_end(e->unconnected, QPC_ERR_CLOSED, "endpoint closed");
    qpc_resolver_free(e->resolver);
    qpc_quic_endpoint_free(e->quic);
    while (e->lingering != NULL)
        entry_free(e, e->lingering);
    free(e);
}

void session_endpoint_stop_accepting(struct session_endpoint *e)
{
    if (e != NULL)
        qpc_quic_endpoint_set_accepting(e->quic, false);
}

size_t session_endpoint_conn_count(const struct session_endpoint *e)
{
    return e != NULL ? qpc_quic_endpoint_conn_count(e->quic) : 0;
}

void session_endpoint_quic_stats(const struct session_endpoint *e,
                                 struct qpc_quic_endpoint_stats *out)
{
    qpc_quic_endpoint_get_stats(e != NULL ? e->quic : NULL, out);
}

uint16_t session_endpoint_port(const struct session_endpoint *e)
{
    struct sockaddr_storage ss;
    socklen_t slen = sizeof(ss);

    if (qpc_quic_endpoint_local_addr(e->quic, &ss, &slen) != 0)
        return 0;
    return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                          : ((struct sockaddr_in *)&ss)->sin_port);
}

/* Connects s to ss with what it insists on (dial_key, dial_name). */
static int dial_connect(struct session *s, const struct sockaddr *sa, socklen_t salen)
{
    int rc = qpc_quic_connect(s->ep->quic, sa, salen, s->ep->alpn,
                              s->dial_has_key ? s->dial_key : NULL, s, &s->conn);

    if (rc != 0) {
        s->conn = NULL;
        return rc;
    }
    if (s->dial_name[0] != '\0')   /* checked by session_dial: it cannot fail */
        qpc_quic_conn_expect_name(s->conn, s->dial_name);
    set_peer_addr(s);
    return 0;
}

/* The name of a dialled session was looked up: connect, or end it. */
static void dial_resolved(void *arg, int rc, const struct sockaddr *sa, socklen_t salen,
                          const char *why)
{
    struct session *s = arg;
    char text[256];

    s->resolving = NULL;
    if (rc == 0) {
        rc = dial_connect(s, sa, salen);
        if (rc == 0) {
            DL_DELETE2(s->ep->unconnected, s, uprev, unext);
            return;
        }
        why = qpc_strerror(rc);
    }
    snprintf(text, sizeof(text), "%s: %s", s->peer_addr, why);
    qpc_log_info("session", "cannot dial %s", text);
    unconnected_end(s, rc, text);
}

int session_dial(struct session_endpoint *e, const char *addr, const uint8_t *expected_key,
                 const char *expected_name, const struct session_callbacks *cb, void *owner,
                 struct session **out)
{
    struct sockaddr_storage ss;
    socklen_t slen = 0;
    struct session *s;
    int rc;

    if (expected_name != NULL && (expected_name[0] == '\0' || strlen(expected_name) > 253))
        return QPC_ERR_INVALID;
    if (!qpc_addr_is_numeric(addr)) {
        char host[QPC_ADDR_HOST_MAX + 1];
        uint16_t port;

        if (qpc_addr_parse(addr, host, sizeof(host), &port) != 0 || port == 0)
            return QPC_ERR_INVALID;
    } else if ((rc = qpc_addr_resolve(addr, &ss, &slen)) != 0) {
        return rc;
    }
    s = session_new(e, NULL, cb);
    if (s == NULL)
        return QPC_ERR_NOMEM;
    s->dialled = true;
    s->owner = owner;
    if (expected_key != NULL) {
        s->dial_has_key = true;
        memcpy(s->dial_key, expected_key, QPC_KEY_LEN);
    }
    if (expected_name != NULL)
        snprintf(s->dial_name, sizeof(s->dial_name), "%s", expected_name);
    ev_timer_init(&s->unconnected_end, unconnected_end_cb, 0.0, 0.0);
    s->unconnected_end.data = s;
    if (slen > 0) {   /* numeric: connect now */
        rc = dial_connect(s, (struct sockaddr *)&ss, slen);
        if (rc != 0) {
            free(s);
            return rc;
        }
        *out = s;
        return 0;
    }
    snprintf(s->peer_addr, sizeof(s->peer_addr), "%s", addr);   /* until it connects */
    qpc_log_debug("session", "looking up %s", addr);
    rc = e->resolver == NULL ? qpc_resolver_new(e->node->loop, e->resolver_cfg, &e->resolver) : 0;
    if (rc == 0)
        rc = qpc_resolve_start_family(e->resolver, addr, qpc_quic_endpoint_dial_family(e->quic), dial_resolved, s,
                                      &s->resolving);
    if (rc != 0) {
        free(s);
        return rc;
    }
    DL_APPEND2(e->unconnected, s, uprev, unext);
    *out = s;
    return 0;
}
