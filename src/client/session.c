/*
 * session.c: the client's connection to its qpc-server (ALPN quicprochat/client/1).
 *
 * The one idea: the server is one more way to reach people, not the centre. The session
 * rides on the node's own UDP socket (so the address the server observes is the one
 * peers can dial), authenticates with the identity key, pins the server's key on first
 * use, and then does four jobs: hold envelopes for peers we cannot reach (enqueue),
 * hand us what others left for us (push + fetch, acked once what we did with it is
 * durable: session_ack_pending after the loop turn's commit),
 * tell us where a peer is and coordinate hole punches (peer_info, our registered
 * candidates, punch requests and notices: docs/paths.md), and carry the packets of
 * relayed P2P connections in DATAGRAM frames (0x01 || peer key || packet).
 *
 * It is the layer below the P2P node: what it learns goes up only through the
 * callbacks set once (session.h), so it never calls into the node's files.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qpc/addr.h"
#include "inbound.h"
#include "output.h"
#include "qpc/proto.h"
#include "session.h"
#include "state.h"
#include "qpc/direct.h"
#include "qpc/error.h"
#include "qpc/log.h"
#include "qpc/resolve.h"

#define RECONNECT_MIN_S 1.0    /* the first retry after a connection failed or ended */
#define RECONNECT_MAX_S 60.0   /* retries back off, doubling, up to this */
#define TRIAL_TIMEOUT_S 10.0   /* a new server has this long to answer before it is given up */
#define PENDING_MAX 4096       /* unanswered requests remembered; the oldest is forgotten */
enum pending_kind { PEND_ENQUEUE, PEND_PEER_INFO, PEND_BROADCAST, PEND_PATH, PEND_OTHER };

struct pending {
    uint64_t request_id;
    enum pending_kind kind;
    uint8_t key[QPC_KEY_LEN];          /* recipient (enqueue) or asked peer (peer_info) */
    uint8_t id[QPC_ID_LEN];
    bool report;                       /* enqueue: show the answer (my message, its receipt awaited) */
    bool kept;                         /* enqueue: our outbox keeps a copy (sent again later) */
    bool punch;                        /* path: it asked the server to punch toward key */
    UT_hash_handle hh;
};

struct session {
    struct client *cl;
    char address[QPC_ADDRESS_MAX + 1];
    struct qpc_quic_conn *conn;
    bool up;
    bool has_sid;
    int64_t sid;
    uint64_t next_request;
    uint64_t last_seq;
    uint64_t *unacked;                 /* items handed up, acked after the next commit */
    size_t n_unacked, cap_unacked;
    char domain[QPC_QUEUE_DOMAIN_MAX + 1];   /* the server's node domain, "" unknown */
    struct pending *pending;
    ev_timer reconnect;
    double backoff;                    /* seconds until the next reconnect */
    bool closing;
    bool trial;                        /* tried beside the working session (session_connect) */
    ev_timer trial_timeout;
    struct qpc_resolve *resolving;     /* the server's name being looked up (conn NULL) */
};

void session_set_callbacks(struct client *cl, const struct session_callbacks *cb)
{
    cl->session_cb = cb;
}

bool session_up(const struct client *cl)
{
    return cl->session != NULL && cl->session->up;
}

const char *session_address(const struct client *cl)
{
    return cl->session != NULL ? cl->session->address : NULL;
}

const char *session_domain(const struct client *cl)
{
    return cl->session != NULL && cl->session->up ? cl->session->domain : "";
}

bool session_owns_conn(const struct client *cl, const struct qpc_quic_conn *conn)
{
    return (cl->session != NULL && cl->session->conn == conn) ||
           (cl->session_trial != NULL && cl->session_trial->conn == conn);
}

static void session_free(struct client *cl, struct session *s);

static int send_request(struct session *s, Qpc__ClientRequest *req)
{
    if (!s->up || !s->has_sid)
        return QPC_ERR_CLOSED;
    req->request_id = ++s->next_request;
    return qpc_quic_conn_send_message(s->conn, s->sid, &req->base);
}

static struct pending *pending_add(struct session *s, enum pending_kind kind)
{
    struct pending *p = calloc(1, sizeof(*p));

    if (p == NULL)
        return NULL;
    p->request_id = s->next_request;
    p->kind = kind;
    /* A server that never answers must not make the table grow without end. */
    if (HASH_COUNT(s->pending) >= PENDING_MAX) {
        struct pending *oldest = s->pending;

        HASH_DEL(s->pending, oldest);
        free(oldest);
    }
    HASH_ADD(hh, s->pending, request_id, sizeof(uint64_t), p);
    return p;
}

static void fetch(struct session *s)
{
    Qpc__ClientRequest req = QPC__CLIENT_REQUEST__INIT;
    Qpc__FetchRequest f = QPC__FETCH_REQUEST__INIT;

    f.after_seq = s->last_seq;
    req.body_case = QPC__CLIENT_REQUEST__BODY_FETCH;
    req.fetch = &f;
    send_request(s, &req);
}

#define ACK_SEQS_MAX 4096   /* seqs per ack request, so one frame stays small */

void session_ack_pending(struct client *cl)
{
    struct session *s = cl->session;
    size_t done = 0;

    if (s == NULL || s->n_unacked == 0 || !s->up)
        return;
    while (done < s->n_unacked) {
        Qpc__ClientRequest req = QPC__CLIENT_REQUEST__INIT;
        Qpc__AckRequest a = QPC__ACK_REQUEST__INIT;
        size_t n = s->n_unacked - done < ACK_SEQS_MAX ? s->n_unacked - done : ACK_SEQS_MAX;

        a.seqs = s->unacked + done;
        a.n_seqs = n;
        req.body_case = QPC__CLIENT_REQUEST__BODY_ACK;
        req.ack = &a;
        if (send_request(s, &req) < 0)
            break;   /* the items stay queued at the server: they come again */
        done += n;
    }
    s->n_unacked = 0;
}

/* Hands each item up; the ones taken are acked after the next commit (session_ack_pending). */
static void take_items(struct session *s, Qpc__QueuedEnvelope **items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int keep = s->cl->session_cb->on_envelope(s->cl, items[i]->envelope.data,
                                                  items[i]->envelope.len, s->address);

        if (items[i]->seq > s->last_seq)
            s->last_seq = items[i]->seq;
        if (keep)
            continue;
        if (s->n_unacked == s->cap_unacked) {
            size_t cap = s->cap_unacked ? s->cap_unacked * 2 : 64;
            uint64_t *seqs = realloc(s->unacked, cap * sizeof(*seqs));

            if (seqs == NULL)
                continue;   /* not acked: the server hands it over again later */
            s->unacked = seqs;
            s->cap_unacked = cap;
        }
        s->unacked[s->n_unacked++] = items[i]->seq;
    }
}

static const char *status_text(Qpc__Status st)
{
    switch (st) {
    case QPC__STATUS__STATUS_OK: return "ok";
    case QPC__STATUS__STATUS_INVALID: return "invalid";
    case QPC__STATUS__STATUS_FORBIDDEN: return "forbidden";
    case QPC__STATUS__STATUS_QUEUE_FULL: return "recipient's queue full";
    case QPC__STATUS__STATUS_TOO_LARGE: return "too large";
    case QPC__STATUS__STATUS_EXPIRED: return "expired";
    case QPC__STATUS__STATUS_UNKNOWN_DOMAIN: return "unknown domain";
    case QPC__STATUS__STATUS_DEFERRED: return "deferred to a remote node";
    case QPC__STATUS__STATUS_INTERNAL: return "server failure";
    case QPC__STATUS__STATUS_DUPLICATE: return "already seen";
    case QPC__STATUS__STATUS_RATE_LIMITED: return "rate limited";
    default: return "?";
    }
}

/*
 * What the server's answer means for my message. Held: the server has it. A refusal of
 * a message my outbox still keeps is not a failure: the outbox sends it again (to the
 * server later, or straight to the peer), so it is "queued", said with the server's
 * reason; only a message nobody keeps any more (sent through the server alone, /send)
 * has failed when the server refuses it.
 */
static void on_enqueue_answer(struct session *s, struct pending *p, const Qpc__EnqueueResponse *r)
{
    struct event ev = { .peer = p->key, .id = p->id, .via = s->address };
    char why[QPC_ADDRESS_MAX + 128];
    bool held = r->status == QPC__STATUS__STATUS_OK || r->status == QPC__STATUS__STATUS_DEFERRED;

    /* Custody moved to the node whatever is shown: told up first (the id is copied, the
     * pending entry is freed by the caller). */
    if (held && s->cl->session_cb->on_held != NULL)
        s->cl->session_cb->on_held(s->cl, p->id);
    if (!p->report)
        return;
    if (held) {
        ev.kind = EVT_HELD;
    } else if (p->kept) {
        ev.kind = EVT_QUEUED;
        snprintf(why, sizeof(why), "server %s did not take it (%s); kept in outbox, sent again "
                 "later", s->address, status_text(r->status));
        ev.text = why;
        ev.text_len = strlen(why);
    } else {
        ev.kind = EVT_FAILED;
        ev.text = status_text(r->status);
        ev.text_len = strlen(ev.text);
        ev.err = QPC_ERR_REFUSED;
    }
    emit(s->cl, &ev);
    if (ev.kind == EVT_FAILED)
        s->cl->session_cb->on_refused(s->cl, p->id);
}

static void on_message(struct session *s, const Qpc__ServerMessage *m)
{
    struct pending *p = NULL;

    if (m->request_id != 0) {
        HASH_FIND(hh, s->pending, &m->request_id, sizeof(uint64_t), p);
        if (p != NULL)
            HASH_DEL(s->pending, p);
    }
    switch (m->body_case) {
    case QPC__SERVER_MESSAGE__BODY_ENQUEUE:
    case QPC__SERVER_MESSAGE__BODY_ERROR:
        if (p != NULL && p->kind == PEND_ENQUEUE)
            on_enqueue_answer(s, p, m->body_case == QPC__SERVER_MESSAGE__BODY_ENQUEUE ? m->enqueue : m->error);
        else if (m->body_case == QPC__SERVER_MESSAGE__BODY_ERROR)
            qpc_log_warn("session", "server: %s", m->error->detail);
        break;
    case QPC__SERVER_MESSAGE__BODY_FETCH:
        take_items(s, m->fetch->items, m->fetch->n_items);
        if (m->fetch->more)
            fetch(s);
        break;
    case QPC__SERVER_MESSAGE__BODY_PUSH:
        take_items(s, m->push->items, m->push->n_items);
        break;
    case QPC__SERVER_MESSAGE__BODY_PUSH_ACK:
        /* The node names its domain here: receipts for my messages are sent to it. */
        if (m->push_ack->domain != NULL && qpc_direct_domain_valid(m->push_ack->domain))
            snprintf(s->domain, sizeof(s->domain), "%s", m->push_ack->domain);
        break;
    case QPC__SERVER_MESSAGE__BODY_PEER_INFO:
        if (p != NULL && p->kind == PEND_PEER_INFO && s->cl->session_cb->on_peer_info != NULL)
            s->cl->session_cb->on_peer_info(s->cl, p->key, m->peer_info->online, m->peer_info->addresses,
                                            m->peer_info->n_addresses, m->peer_info->candidates,
                                            m->peer_info->n_candidates);
        break;
    case QPC__SERVER_MESSAGE__BODY_PATH:
        if (p == NULL || p->kind != PEND_PATH)
            break;
        if (m->path->observed != NULL && m->path->observed[0] != '\0' &&
            s->cl->session_cb->on_observed != NULL)
            s->cl->session_cb->on_observed(s->cl, m->path->observed);
        if (p->punch && m->path->status == QPC__STATUS__STATUS_RATE_LIMITED &&
            s->cl->session_cb->on_punch_refused != NULL)
            s->cl->session_cb->on_punch_refused(s->cl, p->key);
        break;
    case QPC__SERVER_MESSAGE__BODY_BROADCAST:
        /* Flooded by the server: handled like a broadcast from a peer. */
        s->cl->session_cb->on_envelope(s->cl, m->broadcast->envelope.data, m->broadcast->envelope.len,
                                       s->address);
        break;
    case QPC__SERVER_MESSAGE__BODY_BROADCAST_ACK:
        /* Best effort: a duplicate is normal in a flood; anything else is worth a line. */
        if (p != NULL && p->kind == PEND_BROADCAST &&
            m->broadcast_ack->status != QPC__STATUS__STATUS_OK &&
            m->broadcast_ack->status != QPC__STATUS__STATUS_DUPLICATE)
            qpc_log_warn("session", "server %s did not relay a broadcast: %s", s->address,
                         status_text(m->broadcast_ack->status));
        break;
    case QPC__SERVER_MESSAGE__BODY_ANNOUNCE:
        if (m->announce != NULL)
            s->cl->session_cb->on_announce(s->cl, m->announce);
        break;
    case QPC__SERVER_MESSAGE__BODY_PUNCH:
        /* Someone asked for us: dial toward them so our NAT lets their packets in. */
        if (m->punch->key.len == QPC_KEY_LEN && s->cl->session_cb->on_punch != NULL)
            s->cl->session_cb->on_punch(s->cl, m->punch->key.data, m->punch->addresses, m->punch->n_addresses,
                                        m->punch->candidates, m->punch->n_candidates);
        break;
    default:
        break;
    }
    free(p);
}

void session_on_frame(struct client *cl, struct qpc_quic_conn *conn, const uint8_t *d, size_t n)
{
    static struct qpc_log_limit limit;
    Qpc__ServerMessage *m = inbound_server_message(d, n);
    uint64_t suppressed = 0;

    if (m == NULL) {
        if (qpc_log_limit_pass(&limit, mono_ms(), 10000, &suppressed))
            qpc_log_warn("session", "malformed server message dropped (%llu more like it "
                         "suppressed)", (unsigned long long)suppressed);
        return;
    }
    on_message(cl->session, m);
    qpc__server_message__free_unpacked(m, NULL);
}

void session_on_datagram(struct client *cl, const uint8_t *d, size_t n)
{
    const uint8_t *key, *pkt;
    size_t len;

    if (cl->session_cb->on_relay_packet != NULL && inbound_relay_datagram(d, n, &key, &pkt, &len))
        cl->session_cb->on_relay_packet(cl, key, pkt, len);
}

int session_relay_send(struct client *cl, const uint8_t key[static QPC_KEY_LEN], const uint8_t *pkt,
                       size_t len)
{
    uint8_t buf[1 + QPC_KEY_LEN + 1400];

    if (!session_up(cl) || len > sizeof(buf) - 1 - QPC_KEY_LEN)
        return 1;
    buf[0] = INBOUND_RELAY_TAG;
    memcpy(buf + 1, key, QPC_KEY_LEN);
    memcpy(buf + 1 + QPC_KEY_LEN, pkt, len);
    return qpc_quic_conn_send_datagram(cl->session->conn, buf, 1 + QPC_KEY_LEN + len) == 0 ? 0 : 1;
}

int session_on_connected(struct client *cl, struct qpc_quic_conn *conn, const uint8_t *key)
{
    struct session *s = cl->session_trial != NULL && cl->session_trial->conn == conn ? cl->session_trial
                                                                                     : cl->session;
    Qpc__ClientRequest req = QPC__CLIENT_REQUEST__INIT;
    Qpc__PushRequest push = QPC__PUSH_REQUEST__INIT;
    int rc;

    if (key == NULL)
        return 1;
    rc = qpc_identity_pin_key(cl->id, QPC_PIN_ADDRESS, s->address, key, now_ms());
    if (rc == QPC_ERR_REFUSED) {
        info(cl, "server %s presented a different key than the one pinned: refused "
                 "(forget the server to accept a new key)", s->address);
        return 1;
    }
    cl->id_dirty = true;
    if (s->trial) {
        /* The new server answered: now it replaces the old session. */
        struct session *old = cl->session;

        ev_timer_stop(cl->loop, &s->trial_timeout);
        s->trial = false;
        cl->session_trial = NULL;
        cl->session = s;
        if (old != NULL)
            session_free(cl, old);
    }
    s->backoff = RECONNECT_MIN_S;
    /* Saved only now that it answered: a typo is never remembered. */
    state_save_server(cl, s->address);
    if (qpc_quic_conn_open_stream(conn, &s->sid) < 0)
        return 1;
    s->has_sid = true;
    s->up = true;
    push.enable = true;
    req.body_case = QPC__CLIENT_REQUEST__BODY_PUSH;
    req.push = &push;
    send_request(s, &req);
    fetch(s);
    qpc_log_info("session", "connected to %s", s->address);
    info(cl, "connected to server %s", s->address);
    cl->session_cb->on_up(cl, true);
    return 0;
}

static void reconnect_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct client *cl = w->data;
    char err[256];

    if (cl->session != NULL && cl->session->conn == NULL && cl->session->resolving == NULL &&
        session_connect(cl, cl->session->address, err, sizeof(err)) < 0)
        qpc_log_warn("session", "%s", err);
}

void session_on_closed(struct client *cl, const struct qpc_quic_conn *conn,
                       const struct qpc_quic_close_info *info_)
{
    struct session *s = cl->session;
    struct pending *p, *tmp;
    bool was_up;

    if (cl->session_trial != NULL && cl->session_trial->conn == conn) {
        struct session *t = cl->session_trial;

        info(cl, "cannot connect to %s: %s%s%s; %s", t->address, qpc_strerror(info_->err),
             info_->reason[0] ? ": " : "", info_->reason,
             session_up(cl) ? "the session with the server before stays" : "nothing was saved");
        t->conn = NULL;
        cl->session_trial = NULL;
        session_free(cl, t);
        return;
    }
    was_up = s->up;

    s->conn = NULL;
    s->up = false;
    s->has_sid = false;
    s->n_unacked = 0;   /* the server keeps them and hands them over on the next session */
    s->last_seq = 0;
    HASH_ITER(hh, s->pending, p, tmp) {
        HASH_DEL(s->pending, p);
        free(p);
    }
    if (was_up) {
        info(cl, "server %s: connection closed (%s)", s->address, qpc_strerror(info_->err));
        cl->session_cb->on_up(cl, false);
    } else {
        qpc_log_warn("session", "cannot connect to %s: %s%s%s", s->address, qpc_strerror(info_->err),
                     info_->reason[0] ? ": " : "", info_->reason);
    }
    if (!s->closing) {
        ev_timer_set(&s->reconnect, s->backoff, 0.0);
        ev_timer_start(cl->loop, &s->reconnect);
        s->backoff = s->backoff * 2 > RECONNECT_MAX_S ? RECONNECT_MAX_S : s->backoff * 2;
    }
}

static void trial_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct client *cl = w->data;
    struct session *t = cl->session_trial;

    if (t == NULL)
        return;
    info(cl, "no answer from %s within %.0f s; %s", t->address, TRIAL_TIMEOUT_S,
         session_up(cl) ? "the session with the server before stays" : "nothing was saved");
    cl->session_trial = NULL;
    session_free(cl, t);
}

static struct session *session_new(struct client *cl, const char *address)
{
    struct session *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    s->cl = cl;
    snprintf(s->address, sizeof(s->address), "%s", address);
    s->backoff = RECONNECT_MIN_S;
    ev_timer_init(&s->reconnect, reconnect_cb, RECONNECT_MIN_S, 0.0);
    s->reconnect.data = cl;
    ev_timer_init(&s->trial_timeout, trial_timeout_cb, TRIAL_TIMEOUT_S, 0.0);
    s->trial_timeout.data = cl;
    return s;
}

/* Dials s->address, now at sa: the QUIC handshake starts (session_on_connected goes on). */
static int dial_server(struct client *cl, struct session *s, const struct sockaddr *sa,
                       socklen_t salen)
{
    uint8_t key[QPC_KEY_LEN];
    bool pinned = qpc_identity_pin_lookup(cl->id, QPC_PIN_ADDRESS, s->address, key) == 0;
    int rc = qpc_quic_connect(cl->ep, sa, salen, QPC_ALPN_CLIENT, pinned ? key : NULL, cl,
                              &s->conn);

    if (rc < 0)
        s->conn = NULL;
    return rc;
}

/* The session (or trial) s could not start: say why; a trial is dropped, the session
 * tries again after its back-off. */
static void server_unreachable(struct client *cl, struct session *s, const char *why)
{
    if (s->trial) {
        info(cl, "cannot connect to %s: %s; %s", s->address, why,
             session_up(cl) ? "the session with the server before stays" : "nothing was saved");
        cl->session_trial = NULL;
        session_free(cl, s);
        return;
    }
    qpc_log_warn("session", "cannot connect to %s: %s", s->address, why);
    ev_timer_set(&s->reconnect, s->backoff, 0.0);
    ev_timer_start(cl->loop, &s->reconnect);
    s->backoff = s->backoff * 2 > RECONNECT_MAX_S ? RECONNECT_MAX_S : s->backoff * 2;
}

/* The server's name was looked up (from the loop): dial, or wait for the next try. */
static void server_resolved(void *arg, int rc, const struct sockaddr *sa, socklen_t salen,
                            const char *why)
{
    struct session *s = arg;
    struct client *cl = s->cl;
    char text[192];

    s->resolving = NULL;
    if (rc == 0) {
        if (cl->ep != NULL && (rc = dial_server(cl, s, sa, salen)) == 0)
            return;
        why = qpc_strerror(rc != 0 ? rc : QPC_ERR_CLOSED);
        snprintf(text, sizeof(text), "%s", why);
    } else {
        snprintf(text, sizeof(text), "name lookup: %s", why);
    }
    server_unreachable(cl, s, text);
}

/*
 * With a session already there (up, or retrying its server), a different address is
 * tried beside it: the old session is replaced only once the new server answered, and
 * nothing is saved before that, so a typo costs nothing (session_on_connected).
 * A numeric address is dialled at once; a name is looked up first, from the loop
 * (qpc/resolve.h), and whatever goes wrong then is said by server_unreachable.
 */
int session_connect(struct client *cl, const char *address_in, char *err, size_t errlen)
{
    struct session *s = cl->session;
    /* A copy: the caller's text may be the old session's address (reconnect_cb), which
     * session_close below frees. */
    char address[QPC_ADDRESS_MAX + 1];
    char host[QPC_ADDRESS_MAX + 1];
    uint16_t p;
    struct sockaddr_storage ss;
    socklen_t sslen = 0;
    bool trial, numeric;
    int rc;

    if (!qpc_addr_valid(address_in) ||
        qpc_addr_parse(address_in, host, sizeof(host), &p) < 0) {
        snprintf(err, errlen, "bad server address '%s' (want host:port)", address_in);
        return QPC_ERR_INVALID;
    }
    snprintf(address, sizeof(address), "%s", address_in);
    if (s != NULL && strcmp(s->address, address) == 0) {
        if (s->conn != NULL || s->resolving != NULL)
            return 0;
    }
    if (cl->session_cb == NULL) {   /* node_start sets them: a session needs the node */
        snprintf(err, errlen, "cannot connect to %s: the node is not started", address);
        return QPC_ERR_INVALID;
    }
    trial = s != NULL && strcmp(s->address, address) != 0;
    numeric = qpc_addr_is_numeric(address);
    if (numeric && qpc_addr_resolve(address, &ss, &sslen) < 0) {
        snprintf(err, errlen, "cannot resolve %s%s", host, trial ? "; the session before stays" : "");
        if (!trial && s != NULL)
            ev_timer_start(cl->loop, &s->reconnect);
        return QPC_ERR_NOT_FOUND;
    }
    if (!numeric && cl->resolver == NULL &&
        (rc = qpc_resolver_new(cl->loop, NULL, &cl->resolver)) < 0) {
        snprintf(err, errlen, "cannot look up %s: %s", host, qpc_strerror(rc));
        return rc;
    }
    if (trial) {
        if (cl->session_trial != NULL)
            session_free(cl, cl->session_trial);
        cl->session_trial = NULL;
    } else if (s == NULL) {
        if ((s = session_new(cl, address)) == NULL)
            return QPC_ERR_NOMEM;
        cl->session = s;
    }
    if (trial && (s = session_new(cl, address)) == NULL)
        return QPC_ERR_NOMEM;
    if (numeric)
        rc = dial_server(cl, s, (struct sockaddr *)&ss, sslen);
    else
        rc = qpc_resolve_start_family(cl->resolver, address, qpc_quic_endpoint_dial_family(cl->ep),
                                      server_resolved, s, &s->resolving);
    if (rc < 0) {
        snprintf(err, errlen, "cannot connect to %s: %s%s", address, qpc_strerror(rc),
                 trial ? "; the session before stays" : "");
        if (trial)
            session_free(cl, s);
        else
            ev_timer_start(cl->loop, &s->reconnect);
        return rc;
    }
    if (trial) {
        s->trial = true;
        cl->session_trial = s;
        ev_timer_start(cl->loop, &s->trial_timeout);
    }
    return 0;
}

/* Ends s (closing its connection) and frees it; the caller has unlinked it from cl. */
static void session_free(struct client *cl, struct session *s)
{
    struct pending *p, *tmp;

    s->closing = true;
    qpc_resolve_cancel(s->resolving);
    s->resolving = NULL;
    ev_timer_stop(cl->loop, &s->reconnect);
    ev_timer_stop(cl->loop, &s->trial_timeout);
    if (s->conn != NULL) {
        /* on_closed runs later from the loop; detach so it finds no session. */
        qpc_quic_conn_set_user(s->conn, NULL);
        qpc_quic_conn_close(s->conn, QPC_QUIC_APP_NO_ERROR, "bye");
        if (s->up)
            cl->session_cb->on_up(cl, false);
    }
    HASH_ITER(hh, s->pending, p, tmp) {
        HASH_DEL(s->pending, p);
        free(p);
    }
    free(s->unacked);
    free(s);
}

void session_close(struct client *cl)
{
    if (cl->session_trial != NULL)
        session_free(cl, cl->session_trial);
    cl->session_trial = NULL;
    if (cl->session != NULL)
        session_free(cl, cl->session);
    cl->session = NULL;
}

int session_enqueue(struct client *cl, const struct qpc_envelope *env, const char *domain, bool report,
                    bool kept)
{
    struct session *s = cl->session;
    Qpc__ClientRequest req = QPC__CLIENT_REQUEST__INIT;
    Qpc__EnqueueRequest er = QPC__ENQUEUE_REQUEST__INIT;
    Qpc__EnqueueItem item = QPC__ENQUEUE_ITEM__INIT;
    uint8_t *buf = NULL;
    size_t len = 0;
    struct pending *p;
    int rc;

    if (!session_up(cl))
        return QPC_ERR_CLOSED;
    rc = qpc_envelope_encode(env, &buf, &len);
    if (rc < 0)
        return rc;
    item.recipient.data = (uint8_t *)env->recipient;
    item.recipient.len = QPC_KEY_LEN;
    item.domain = (char *)(domain != NULL ? domain : "");
    item.envelope.data = buf;
    item.envelope.len = len;
    er.item = &item;
    req.body_case = QPC__CLIENT_REQUEST__BODY_ENQUEUE;
    req.enqueue = &er;
    rc = send_request(s, &req);
    free(buf);
    if (rc < 0)
        return rc;
    p = pending_add(s, PEND_ENQUEUE);
    if (p != NULL) {
        memcpy(p->key, env->recipient, QPC_KEY_LEN);
        memcpy(p->id, env->id, QPC_ID_LEN);
        p->report = report;
        p->kept = kept;
    }
    return 0;
}

int session_announce(struct client *cl, const Qpc__MeshAnnounce *a)
{
    Qpc__ClientRequest req = QPC__CLIENT_REQUEST__INIT;

    if (!session_up(cl))
        return QPC_ERR_CLOSED;
    req.body_case = QPC__CLIENT_REQUEST__BODY_ANNOUNCE;
    req.announce = (Qpc__MeshAnnounce *)a;   /* pack only reads it */
    return send_request(cl->session, &req);   /* no answer is expected */
}

void session_peer_info(struct client *cl, const uint8_t key[static QPC_KEY_LEN])
{
    struct session *s = cl->session;
    Qpc__ClientRequest req = QPC__CLIENT_REQUEST__INIT;
    Qpc__PeerInfoRequest pi = QPC__PEER_INFO_REQUEST__INIT;
    struct pending *p;

    pi.key.data = (uint8_t *)key;
    pi.key.len = QPC_KEY_LEN;
    req.body_case = QPC__CLIENT_REQUEST__BODY_PEER_INFO;
    req.peer_info = &pi;
    if (send_request(s, &req) < 0)
        return;
    p = pending_add(s, PEND_PEER_INFO);
    if (p != NULL)
        memcpy(p->key, key, QPC_KEY_LEN);
}

/* Sends one PathRequest (pr filled by the caller); its answer is expected, and for a
 * punch it names the key (mine: a refusal is reported up). */
static int path_request(struct client *cl, Qpc__PathRequest *pr)
{
    struct session *s = cl->session;
    Qpc__ClientRequest req = QPC__CLIENT_REQUEST__INIT;
    struct pending *p;
    int rc;

    if (!session_up(cl))
        return QPC_ERR_CLOSED;
    req.body_case = QPC__CLIENT_REQUEST__BODY_PATH;
    req.path = pr;
    rc = send_request(s, &req);
    if (rc == 0 && (p = pending_add(s, PEND_PATH)) != NULL && pr->punch.len == QPC_KEY_LEN) {
        memcpy(p->key, pr->punch.data, QPC_KEY_LEN);
        p->punch = true;
    }
    return rc;
}

int session_register_candidates(struct client *cl, char *const *cands, size_t n)
{
    Qpc__PathRequest pr = QPC__PATH_REQUEST__INIT;

    pr.set_candidates = true;
    pr.candidates = (char **)cands;
    pr.n_candidates = n;
    return path_request(cl, &pr);
}

int session_punch(struct client *cl, const uint8_t key[static QPC_KEY_LEN])
{
    Qpc__PathRequest pr = QPC__PATH_REQUEST__INIT;

    pr.punch.data = (uint8_t *)key;
    pr.punch.len = QPC_KEY_LEN;
    return path_request(cl, &pr);
}

void session_report_direct(struct client *cl, const uint8_t key[static QPC_KEY_LEN], uint32_t ms)
{
    Qpc__PathRequest pr = QPC__PATH_REQUEST__INIT;

    pr.direct.data = (uint8_t *)key;
    pr.direct.len = QPC_KEY_LEN;
    pr.direct_ms = ms;
    path_request(cl, &pr);
}

int session_broadcast(struct client *cl, const struct qpc_envelope *env)
{
    struct session *s = cl->session;
    Qpc__ClientRequest req = QPC__CLIENT_REQUEST__INIT;
    Qpc__BroadcastRequest br = QPC__BROADCAST_REQUEST__INIT;
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc;

    if (!session_up(cl))
        return QPC_ERR_CLOSED;
    rc = qpc_envelope_encode(env, &buf, &len);
    if (rc < 0)
        return rc;
    br.envelope.data = buf;
    br.envelope.len = len;
    req.body_case = QPC__CLIENT_REQUEST__BODY_BROADCAST;
    req.broadcast = &br;
    rc = send_request(s, &req);
    free(buf);
    if (rc == 0)
        pending_add(s, PEND_BROADCAST);
    return rc;
}
