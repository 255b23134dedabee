/*
 * delivery.c: the client service of the node (ALPN quicprochat/client/1) and the
 * machinery every request shares: sessions, ordered replies and the group commit.
 *
 * The one idea: a reply is a `struct pending` in its session's FIFO. Requests that only
 * read (fetch, peer_info) or that run their own transaction (ack) get a finished reply
 * at once; enqueues STAGE their items in the queue and their reply is finished by the
 * completions that qpc_queue_commit() runs after the transaction is durable. The FIFO
 * is sent from its head as far as replies are finished, so answers keep request order
 * and no enqueue is acknowledged before its commit.
 *
 * When to commit: as soon as the loop has nothing else pending (an ev_idle watcher,
 * started by the first staged write), so a commit takes everything that had arrived,
 * however many socket reads that took; under a load that never lets the loop go idle,
 * commit_cb (an ev_prepare watcher of the highest priority, so it runs before the QUIC
 * endpoint's own prepare watcher sends packets) commits once the oldest staged write is
 * COMMIT_MAX_DELAY old or COMMIT_MAX_ITEMS are staged. Fewer, larger transactions write
 * each hot B-tree page once per commit instead of once per socket read.
 *
 * A client is who its certificate says (the key the QUIC layer hands to on_connected).
 * Fetch and ack take no recipient: they always act on that key, so a client cannot name,
 * see or delete another client's queue.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utlist.h>

#include "qpc/envelope.h"
#include "qpc/error.h"
#include "qpc/log.h"
#include "qpc/pbarena.h"
#include "server.h"

#define FETCH_PAGE_DEFAULT 256u
#define FETCH_PAGE_MAX 10000u
#define REPLY_BACKLOG_MAX 100000u   /* unsent replies before a client that does not read
                                     * is disconnected */
#define REPLY_BACKLOG_BYTES (64u * 1024 * 1024)   /* or unsent bytes (plus two frames): a
                                     * tiny fetch can ask for a frame-sized answer */
#define FRAME_MARGIN 1024u          /* room for the fields around the items of a page */
#define PUNCH_RATE_PER_S 5.0       /* punch notices a client may cause per second... */
#define PUNCH_BURST 20.0            /* ...and at once (dialling several peers) */
#define COMMIT_MAX_DELAY 0.002      /* seconds a staged write may wait for the loop to idle */
#define COMMIT_MAX_ITEMS 20000u     /* or this many staged writes */

enum reply_kind { R_READY, R_ENQUEUE, R_BATCH, R_FED };

struct item_ctx {
    struct pending *p;
    size_t index;
    bool remote;
    uint8_t recipient[QPC_KEY_LEN];
    uint8_t *push_blob;            /* copy kept only when the recipient listens for pushes */
    size_t push_len;
};

struct pending {
    struct node *node;
    struct session *owner;         /* NULL once the session is gone */
    struct pending *prev, *next;   /* in owner->replies */
    uint64_t request_id;
    enum reply_kind kind;
    size_t n, waiting;             /* items, and items whose completion has not run */
    int *statuses;                 /* Qpc__Status per item */
    struct item_ctx *items;
    uint8_t *frame;                /* the encoded answer once finished */
    size_t frame_len;
};

uint64_t node_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void format_sockaddr(const struct sockaddr *sa, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;

    if (sa != NULL && sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
        snprintf(buf, len, "%s:%u", host, port);
    } else if (sa != NULL && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
        snprintf(buf, len, "[%s]:%u", host, port);
    } else {
        snprintf(buf, len, "?");
    }
}

static int pack_message(const ProtobufCMessage *m, uint8_t **out, size_t *out_len)
{
    size_t len = protobuf_c_message_get_packed_size(m);

    *out = malloc(len > 0 ? len : 1);
    if (*out == NULL)
        return QPC_ERR_NOMEM;
    *out_len = protobuf_c_message_pack(m, *out);
    return 0;
}

/* --- replies ------------------------------------------------------------------------ */

static struct pending *pending_new(struct node *n, struct session *s, uint64_t request_id,
                                   enum reply_kind kind, size_t items)
{
    struct pending *p = calloc(1, sizeof(*p));

    if (p == NULL)
        return NULL;
    p->node = n;
    p->owner = s;
    p->request_id = request_id;
    p->kind = kind;
    p->n = items;
    if (items > 0) {
        p->statuses = calloc(items, sizeof(*p->statuses));
        p->items = calloc(items, sizeof(*p->items));
        if (p->statuses == NULL || p->items == NULL) {
            free(p->statuses);
            free(p->items);
            free(p);
            return NULL;
        }
    }
    return p;
}

static void pending_free(struct pending *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->n; i++)
        free(p->items[i].push_blob);
    free(p->items);
    free(p->statuses);
    free(p->frame);
    free(p);
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
    qpc_quic_conn_close(s->conn, QPC_QUIC_APP_REFUSED, "reply backlog");
}

/* Appends p to its owner's FIFO (the reply will leave once it and all before it are
 * finished). Refuses to grow the backlog of a client that does not read. */
static void pending_append(struct session *s, struct pending *p)
{
    DL_APPEND(s->replies, p);
    s->reply_count++;
    s->reply_bytes += p->frame_len;
    backlog_check(s);
}

/* Appends an already encoded unsolicited or immediate answer. Takes frame. */
static void session_send_ready(struct session *s, uint64_t request_id, uint8_t *frame, size_t len)
{
    struct pending *p = pending_new(s->node, s, request_id, R_READY, 0);

    if (p == NULL) {
        free(frame);
        return;
    }
    p->frame = frame;
    p->frame_len = len;
    pending_append(s, p);
    session_flush(s);
}

void session_send_packed(struct session *s, uint8_t *buf, size_t len)
{
    session_send_ready(s, 0, buf, len);
}

void session_flush(struct session *s)
{
    while (s->replies != NULL && s->replies->frame != NULL) {
        struct pending *p = s->replies;
        int rc = QPC_ERR_CLOSED;

        if (s->has_stream)
            rc = qpc_quic_conn_send_frame(s->conn, s->stream_id, p->frame, p->frame_len);
        if (rc == QPC_ERR_AGAIN)
            return;   /* on_writable calls us again */
        if (rc != 0)
            qpc_log_debug("delivery", "%s: reply dropped: %s", s->peer_addr, qpc_strerror(rc));
        DL_DELETE(s->replies, p);
        s->reply_count--;
        s->reply_bytes -= p->frame_len;
        pending_free(p);
    }
}

static const char *status_text(int st)
{
    switch (st) {
    case QPC__STATUS__STATUS_OK: return "";
    case QPC__STATUS__STATUS_INVALID: return "malformed request or envelope";
    case QPC__STATUS__STATUS_FORBIDDEN: return "envelope sender is not the authenticated client";
    case QPC__STATUS__STATUS_QUEUE_FULL: return "recipient's queue is full";
    case QPC__STATUS__STATUS_TOO_LARGE: return "envelope above this node's size limit";
    case QPC__STATUS__STATUS_EXPIRED: return "envelope expired or its TTL is above this node's maximum";
    case QPC__STATUS__STATUS_UNKNOWN_DOMAIN: return "no route to the recipient's domain";
    case QPC__STATUS__STATUS_DEFERRED: return "held for a remote node";
    default: return "node failure; retry later";
    }
}

static void count_status(struct node *n, int st)
{
    static const int kind_of[] = {
        [QPC__STATUS__STATUS_INVALID] = ERRK_INVALID,
        [QPC__STATUS__STATUS_FORBIDDEN] = ERRK_FORBIDDEN,
        [QPC__STATUS__STATUS_QUEUE_FULL] = ERRK_QUEUE_FULL,
        [QPC__STATUS__STATUS_TOO_LARGE] = ERRK_TOO_LARGE,
        [QPC__STATUS__STATUS_EXPIRED] = ERRK_EXPIRED,
        [QPC__STATUS__STATUS_UNKNOWN_DOMAIN] = ERRK_UNKNOWN_DOMAIN,
        [QPC__STATUS__STATUS_INTERNAL] = ERRK_INTERNAL,
    };

    if (st != QPC__STATUS__STATUS_OK && st != QPC__STATUS__STATUS_DEFERRED &&
        st > 0 && (size_t)st < sizeof(kind_of) / sizeof(kind_of[0]))
        n->c.errors[kind_of[st]]++;
}

/* Encodes the answer of a finished enqueue / batch / federation request. */
static int pending_encode(struct pending *p)
{
    Qpc__ServerMessage msg = QPC__SERVER_MESSAGE__INIT;
    Qpc__EnqueueResponse er = QPC__ENQUEUE_RESPONSE__INIT;
    Qpc__BatchEnqueueResponse br = QPC__BATCH_ENQUEUE_RESPONSE__INIT;
    Qpc__FederationResponse fr = QPC__FEDERATION_RESPONSE__INIT;

    for (size_t i = 0; i < p->n; i++)
        count_status(p->node, p->statuses[i]);
    switch (p->kind) {
    case R_ENQUEUE:
        msg.request_id = p->request_id;
        er.status = (Qpc__Status)p->statuses[0];
        er.detail = (char *)status_text(p->statuses[0]);
        msg.body_case = QPC__SERVER_MESSAGE__BODY_ENQUEUE;
        msg.enqueue = &er;
        return pack_message(&msg.base, &p->frame, &p->frame_len);
    case R_BATCH:
        msg.request_id = p->request_id;
        br.n_statuses = p->n;
        br.statuses = (Qpc__Status *)p->statuses;
        msg.body_case = QPC__SERVER_MESSAGE__BODY_BATCH_ENQUEUE;
        msg.batch_enqueue = &br;
        return pack_message(&msg.base, &p->frame, &p->frame_len);
    case R_FED:
        fr.request_id = p->request_id;
        fr.n_statuses = p->n;
        fr.statuses = (Qpc__Status *)p->statuses;
        return pack_message(&fr.base, &p->frame, &p->frame_len);
    default:
        return QPC_ERR_INVALID;
    }
}

/* Every item of p has its status: encode and send, or free if nobody waits. */
static void pending_finish(struct pending *p)
{
    struct session *s = p->owner;

    if (s == NULL) {
        pending_free(p);
        return;
    }
    if (pending_encode(p) != 0) {
        /* Out of memory: the client times out and retries; enqueues are idempotent. */
        DL_DELETE(s->replies, p);
        s->reply_count--;
        pending_free(p);
        return;
    }
    s->reply_bytes += p->frame_len;
    backlog_check(s);
    session_flush(s);
}

/* --- pushes ---------------------------------------------------------------------------- */

static bool wants_push(struct node *n, const uint8_t key[static QPC_KEY_LEN])
{
    struct key_entry *ke;
    struct session *s;

    HASH_FIND(hh, n->clients, key, QPC_KEY_LEN, ke);
    if (ke == NULL)
        return false;
    DL_FOREACH(ke->sessions, s) {
        if (s->push)
            return true;
    }
    return false;
}

static void push_item(struct node *n, const uint8_t key[static QPC_KEY_LEN], uint64_t seq,
                      const uint8_t *blob, size_t len)
{
    struct key_entry *ke;
    struct session *s;

    HASH_FIND(hh, n->clients, key, QPC_KEY_LEN, ke);
    if (ke == NULL)
        return;
    DL_FOREACH(ke->sessions, s) {
        Qpc__ServerMessage msg = QPC__SERVER_MESSAGE__INIT;
        Qpc__Push push = QPC__PUSH__INIT;
        Qpc__QueuedEnvelope qe = QPC__QUEUED_ENVELOPE__INIT;
        Qpc__QueuedEnvelope *items[1] = { &qe };
        uint8_t *frame;
        size_t flen;

        if (!s->push)
            continue;
        qe.seq = seq;
        qe.envelope.data = (uint8_t *)blob;
        qe.envelope.len = len;
        push.n_items = 1;
        push.items = items;
        msg.body_case = QPC__SERVER_MESSAGE__BODY_PUSH;
        msg.push = &push;
        if (pack_message(&msg.base, &frame, &flen) != 0)
            continue;
        n->c.delivered++;
        session_send_ready(s, 0, frame, flen);
    }
}

/* --- staging and completion -------------------------------------------------------------- */

static int status_of_queue_err(int err)
{
    switch (err) {
    case 0: return QPC__STATUS__STATUS_OK;
    case QPC_ERR_QUEUE_FULL:
    case QPC_ERR_STORE_FULL: return QPC__STATUS__STATUS_QUEUE_FULL;
    case QPC_ERR_TOO_LARGE: return QPC__STATUS__STATUS_TOO_LARGE;
    case QPC_ERR_EXPIRED: return QPC__STATUS__STATUS_EXPIRED;
    case QPC_ERR_INVALID: return QPC__STATUS__STATUS_INVALID;
    default: return QPC__STATUS__STATUS_INTERNAL;
    }
}

/* Completion of one staged item: runs after the commit (or at close). */
static void item_done(void *arg, int status, uint64_t seq)
{
    struct item_ctx *it = arg;
    struct pending *p = it->p;
    struct node *n = p->node;

    if (status == 0 && it->remote) {
        p->statuses[it->index] = QPC__STATUS__STATUS_DEFERRED;
        n->c.deferred++;
        n->outbox_kick = true;
    } else if (status == 0) {
        p->statuses[it->index] = QPC__STATUS__STATUS_OK;
        n->c.enqueued++;
        if (p->kind == R_FED)
            n->c.federated_in++;
        if (it->push_blob != NULL)
            push_item(n, it->recipient, seq, it->push_blob, it->push_len);
    } else {
        p->statuses[it->index] = status_of_queue_err(status);
        if (status == QPC_ERR_DB)
            qpc_log_error("delivery", "commit failed: %s", qpc_queue_errmsg(n->queue));
    }
    free(it->push_blob);
    it->push_blob = NULL;
    if (--p->waiting == 0)
        pending_finish(p);
}

/*
 * Checks one item and stages it. sender is the key the envelope must come from (the
 * authenticated client) or NULL for federation, where the origin node is trusted by
 * mTLS and only local recipients are accepted. Returns -1 when staged (the completion
 * sets the status), else the refusal status.
 */
static int stage_item(struct pending *p, size_t i, const Qpc__EnqueueItem *item,
                      const uint8_t *sender, uint64_t now)
{
    struct node *n = p->node;
    struct item_ctx *it = &p->items[i];
    struct qpc_envelope env = { 0 };
    enum dest_kind dest;
    uint64_t expires;
    int st = -1, rc;

    if (item == NULL || item->recipient.len != QPC_KEY_LEN || item->envelope.len == 0)
        return QPC__STATUS__STATUS_INVALID;
    if (item->envelope.len > (size_t)n->sc->max_envelope_size)
        return QPC__STATUS__STATUS_TOO_LARGE;
    rc = qpc_envelope_decode(&env, item->envelope.data, item->envelope.len);
    if (rc != 0)
        return rc == QPC_ERR_TOO_LARGE ? QPC__STATUS__STATUS_TOO_LARGE
                                       : QPC__STATUS__STATUS_INVALID;
    if (!env.has_recipient || memcmp(env.recipient, item->recipient.data, QPC_KEY_LEN) != 0) {
        st = QPC__STATUS__STATUS_INVALID;
        goto out;
    }
    if (sender != NULL && memcmp(env.sender, sender, QPC_KEY_LEN) != 0) {
        st = QPC__STATUS__STATUS_FORBIDDEN;
        goto out;
    }
    if (env.ttl_s > (uint64_t)n->sc->max_ttl || qpc_envelope_expired(&env, now)) {
        st = QPC__STATUS__STATUS_EXPIRED;
        goto out;
    }
    if (env.created_at_ms > now + QPC_CLOCK_SKEW_MS) {
        st = QPC__STATUS__STATUS_INVALID;
        goto out;
    }
    dest = resolve_destination(n, item->domain, NULL, 0);
    if (dest == DEST_UNKNOWN || (dest == DEST_REMOTE && sender == NULL)) {
        st = QPC__STATUS__STATUS_UNKNOWN_DOMAIN;   /* federation does not relay further */
        goto out;
    }
    expires = qpc_envelope_expires_at_ms(&env);
    it->p = p;
    it->index = i;
    it->remote = dest == DEST_REMOTE;
    memcpy(it->recipient, env.recipient, QPC_KEY_LEN);
    if (!it->remote && wants_push(n, env.recipient)) {
        it->push_blob = malloc(item->envelope.len);
        if (it->push_blob != NULL) {
            memcpy(it->push_blob, item->envelope.data, item->envelope.len);
            it->push_len = item->envelope.len;
        }
    }
    if (it->remote)
        rc = qpc_queue_outbox_add(n->queue, item->domain, env.recipient, env.id, expires,
                                  item->envelope.data, item->envelope.len, now, item_done, it);
    else
        rc = qpc_queue_enqueue(n->queue, env.recipient, env.id, expires, item->envelope.data,
                               item->envelope.len, now, item_done, it);
    if (rc != 0) {
        free(it->push_blob);
        it->push_blob = NULL;
        st = status_of_queue_err(rc);
        goto out;
    }
    p->waiting++;
    if (!ev_is_active(&n->commit_idle_w)) {
        n->staged_since = ev_now(n->loop);
        ev_idle_start(n->loop, &n->commit_idle_w);
    }
out:
    qpc_envelope_clear(&env);
    return st;
}

/* Stages the items of an enqueue-like request; the reply goes out after the commit. */
static void handle_items(struct session *s, uint64_t request_id, enum reply_kind kind,
                         Qpc__EnqueueItem **items, size_t count, const uint8_t *sender)
{
    struct node *n = s->node;
    struct pending *p;
    uint64_t now = node_now_ms();

    p = pending_new(n, s, request_id, kind, count);
    if (p == NULL)
        return;
    pending_append(s, p);
    p->waiting = 1;   /* held until every item is staged, so it cannot finish early */
    for (size_t i = 0; i < count; i++) {
        int st = stage_item(p, i, items[i], sender, now);
        if (st >= 0)
            p->statuses[i] = st;
    }
    if (--p->waiting == 0)
        pending_finish(p);
}

/* --- the other requests ------------------------------------------------------------------ */

static void reply_message(struct session *s, Qpc__ServerMessage *msg)
{
    uint8_t *frame;
    size_t len;

    if (pack_message(&msg->base, &frame, &len) == 0)
        session_send_ready(s, msg->request_id, frame, len);
}

static void handle_fetch(struct session *s, uint64_t request_id, const Qpc__FetchRequest *f)
{
    struct node *n = s->node;
    Qpc__ServerMessage msg = QPC__SERVER_MESSAGE__INIT;
    Qpc__FetchResponse fr = QPC__FETCH_RESPONSE__INIT;
    Qpc__QueuedEnvelope *qes = NULL, **ptrs = NULL;
    struct qpc_queue_item *items = NULL;
    size_t limit = f->limit == 0 ? FETCH_PAGE_DEFAULT : f->limit;
    size_t count = 0, fetched = 0, used = 0, budget;
    int rc;

    if (limit > FETCH_PAGE_MAX)
        limit = FETCH_PAGE_MAX;
    /* One more than asked tells whether another page waits. */
    rc = qpc_queue_fetch(n->queue, s->key, f->after_seq,
                         limit < FETCH_PAGE_MAX ? limit + 1 : limit, node_now_ms(), &items,
                         &count);
    fr.status = QPC__STATUS__STATUS_OK;
    fetched = count;   /* what to free, even when the page is given up below */
    if (rc != 0) {
        fr.status = QPC__STATUS__STATUS_INTERNAL;
        count = 0;
        qpc_log_error("delivery", "fetch failed: %s", qpc_queue_errmsg(n->queue));
    }
    fr.more = count > limit;
    if (count > 0) {
        qes = calloc(count, sizeof(*qes));
        ptrs = calloc(count, sizeof(*ptrs));
        if (qes == NULL || ptrs == NULL) {
            fr.status = QPC__STATUS__STATUS_INTERNAL;
            count = 0;
        }
    }
    /* A page must fit in one frame: stop early and say "more" when it would not. */
    budget = (size_t)n->sc->max_frame_size - FRAME_MARGIN;
    for (size_t i = 0; i < count && i < limit; i++) {
        size_t need = items[i].blob_len + 24;
        if (used + need > budget) {
            fr.more = true;
            break;
        }
        used += need;
        qpc__queued_envelope__init(&qes[i]);
        qes[i].seq = items[i].seq;
        qes[i].envelope.data = items[i].blob;
        qes[i].envelope.len = items[i].blob_len;
        ptrs[i] = &qes[i];
        fr.n_items++;
    }
    fr.items = ptrs;
    n->c.delivered += fr.n_items;
    msg.request_id = request_id;
    msg.body_case = QPC__SERVER_MESSAGE__BODY_FETCH;
    msg.fetch = &fr;
    reply_message(s, &msg);
    free(ptrs);
    free(qes);
    qpc_queue_items_free(items, fetched);
}

static void handle_ack(struct session *s, uint64_t request_id, const Qpc__AckRequest *a)
{
    struct node *n = s->node;
    Qpc__ServerMessage msg = QPC__SERVER_MESSAGE__INIT;
    Qpc__AckResponse ar = QPC__ACK_RESPONSE__INIT;
    size_t removed = 0, more = 0;
    int rc = 0;

    if (a->up_to_seq > 0)
        rc = qpc_queue_ack_upto(n->queue, s->key, a->up_to_seq, &removed);
    if (rc == 0 && a->n_seqs > 0)
        rc = qpc_queue_ack(n->queue, s->key, a->seqs, a->n_seqs, &more);
    ar.status = rc == 0 ? QPC__STATUS__STATUS_OK : QPC__STATUS__STATUS_INTERNAL;
    if (rc != 0)
        qpc_log_error("delivery", "ack failed: %s", qpc_queue_errmsg(n->queue));
    ar.deleted = (uint32_t)(removed + more);
    n->c.acked += removed + more;
    msg.request_id = request_id;
    msg.body_case = QPC__SERVER_MESSAGE__BODY_ACK;
    msg.ack = &ar;
    reply_message(s, &msg);
}

/* peer_info: where a key is connected; that peer is told the asker's address so both
 * send packets towards each other (hole punching). */
static void handle_peer_info(struct session *s, uint64_t request_id, const Qpc__PeerInfoRequest *r)
{
    Qpc__ServerMessage msg = QPC__SERVER_MESSAGE__INIT;
    Qpc__PeerInfoResponse pr = QPC__PEER_INFO_RESPONSE__INIT;
    char *addrs[16];
    struct key_entry *ke = NULL;
    struct session *t;

    bool punch;

    if (r->key.len == QPC_KEY_LEN)
        HASH_FIND(hh, s->node->clients, r->key.data, QPC_KEY_LEN, ke);
    /* Each answer makes the named peer's client send packets toward the asker: within
     * the rate the asker still learns the addresses, but no more notices are sent. */
    punch = ke != NULL && token_bucket_take(&s->punch_rate, ev_now(s->node->loop),
                                            PUNCH_RATE_PER_S, PUNCH_BURST);
    if (ke != NULL) {
        DL_FOREACH(ke->sessions, t) {
            Qpc__ServerMessage pm = QPC__SERVER_MESSAGE__INIT;
            Qpc__PunchNotice pn = QPC__PUNCH_NOTICE__INIT;
            char *mine[1] = { s->peer_addr };

            if (pr.n_addresses < sizeof(addrs) / sizeof(addrs[0]))
                addrs[pr.n_addresses++] = t->peer_addr;
            if (t == s || !punch)
                continue;
            pn.key.data = s->key;
            pn.key.len = QPC_KEY_LEN;
            pn.n_addresses = 1;
            pn.addresses = mine;
            pm.body_case = QPC__SERVER_MESSAGE__BODY_PUNCH;
            pm.punch = &pn;
            reply_message(t, &pm);
        }
    }
    pr.online = pr.n_addresses > 0;
    pr.addresses = addrs;
    msg.request_id = request_id;
    msg.body_case = QPC__SERVER_MESSAGE__BODY_PEER_INFO;
    msg.peer_info = &pr;
    reply_message(s, &msg);
}

static void reply_error(struct session *s, uint64_t request_id, const char *detail)
{
    Qpc__ServerMessage msg = QPC__SERVER_MESSAGE__INIT;
    Qpc__EnqueueResponse er = QPC__ENQUEUE_RESPONSE__INIT;

    s->node->c.errors[ERRK_PROTOCOL]++;
    er.status = QPC__STATUS__STATUS_INVALID;
    er.detail = (char *)detail;
    msg.request_id = request_id;
    msg.body_case = QPC__SERVER_MESSAGE__BODY_ERROR;
    msg.error = &er;
    reply_message(s, &msg);
}

/* Room for an unpacked request: its bytes fields plus the structs around them (a batch
 * item's struct is about 80 bytes). What does not fit comes from malloc. */
static size_t request_arena_size(size_t len)
{
    return len < SIZE_MAX / 4 ? 2 * len + 4096 : 0;
}

static void handle_request(struct session *s, const uint8_t *data, size_t len)
{
    /* One allocation per request instead of several per batch item: the request lives
     * only in this call (staging copies what it keeps). */
    size_t arena_cap = request_arena_size(len);
    void *arena_buf = malloc(arena_cap > 0 ? arena_cap : 1);
    struct qpc_pbarena arena;
    Qpc__ClientRequest *req;
    Qpc__PushResponse pr = QPC__PUSH_RESPONSE__INIT;
    Qpc__ServerMessage msg = QPC__SERVER_MESSAGE__INIT;

    qpc_pbarena_init(&arena, arena_buf, arena_buf != NULL ? arena_cap : 0);
    req = qpc__client_request__unpack(&arena.allocator, len, data);
    if (req == NULL) {
        free(arena_buf);
        reply_error(s, 0, "request is not a ClientRequest");
        return;
    }
    switch (req->body_case) {
    case QPC__CLIENT_REQUEST__BODY_ENQUEUE:
        handle_items(s, req->request_id, R_ENQUEUE, &req->enqueue->item, 1, s->key);
        break;
    case QPC__CLIENT_REQUEST__BODY_BATCH_ENQUEUE:
        if (req->batch_enqueue->n_items == 0) {
            reply_error(s, req->request_id, "empty batch");
            break;
        }
        handle_items(s, req->request_id, R_BATCH, req->batch_enqueue->items,
                     req->batch_enqueue->n_items, s->key);
        break;
    case QPC__CLIENT_REQUEST__BODY_FETCH:
        handle_fetch(s, req->request_id, req->fetch);
        break;
    case QPC__CLIENT_REQUEST__BODY_ACK:
        handle_ack(s, req->request_id, req->ack);
        break;
    case QPC__CLIENT_REQUEST__BODY_PUSH:
        s->push = req->push->enable;
        pr.status = QPC__STATUS__STATUS_OK;
        msg.request_id = req->request_id;
        msg.body_case = QPC__SERVER_MESSAGE__BODY_PUSH_ACK;
        msg.push_ack = &pr;
        reply_message(s, &msg);
        if (s->push)
            broadcast_replay(s);   /* live bulletins it missed */
        break;
    case QPC__CLIENT_REQUEST__BODY_PEER_INFO:
        handle_peer_info(s, req->request_id, req->peer_info);
        break;
    case QPC__CLIENT_REQUEST__BODY_BROADCAST:
        broadcast_handle_client(s, req->request_id, req->broadcast);
        break;
    default:
        reply_error(s, req->request_id, "unknown request");
        break;
    }
    qpc__client_request__free_unpacked(req, &arena.allocator);
    free(arena_buf);
}

void delivery_handle_federation(struct session *s, const uint8_t *data, size_t len)
{
    Qpc__FederationRequest *req = qpc__federation_request__unpack(NULL, len, data);

    if (req != NULL && req->body_case == QPC__FEDERATION_REQUEST__BODY_RELAY_BROADCAST) {
        broadcast_handle_federation(s, req->request_id, req->relay_broadcast);
    } else if (req == NULL || req->body_case != QPC__FEDERATION_REQUEST__BODY_RELAY_ENQUEUE ||
        req->relay_enqueue->n_items == 0) {
        s->node->c.errors[ERRK_PROTOCOL]++;
        qpc_log_warn("federation", "%s sent a malformed request; closing", s->peer_addr);
        qpc_quic_conn_close(s->conn, QPC_QUIC_APP_REFUSED, "malformed federation request");
    } else {
        qpc_log_debug("federation", "%zu item(s) from %s (%s)", req->relay_enqueue->n_items,
                      req->relay_enqueue->origin_domain, s->peer_addr);
        handle_items(s, req->request_id, R_FED, req->relay_enqueue->items,
                     req->relay_enqueue->n_items, NULL);
    }
    if (req != NULL)
        qpc__federation_request__free_unpacked(req, NULL);
}

/* --- sessions ------------------------------------------------------------------------------ */

struct session *session_new(struct node *n, struct qpc_quic_conn *conn, bool federation)
{
    struct session *s = calloc(1, sizeof(*s));
    socklen_t alen;

    if (s == NULL)
        return NULL;
    s->kind = OBJ_SESSION;
    s->node = n;
    s->conn = conn;
    s->federation = federation;
    format_sockaddr(qpc_quic_conn_remote_addr(conn, &alen), s->peer_addr, sizeof(s->peer_addr));
    qpc_quic_conn_set_user(conn, s);
    return s;
}

void session_closed(struct session *s)
{
    struct pending *p, *tmp;
    struct key_entry *ke = NULL;

    DL_FOREACH_SAFE(s->replies, p, tmp) {
        DL_DELETE(s->replies, p);
        p->owner = NULL;
        if (p->waiting == 0)
            pending_free(p);   /* else the last completion frees it */
    }
    if (!s->federation) {
        HASH_FIND(hh, s->node->clients, s->key, QPC_KEY_LEN, ke);
        if (ke != NULL) {
            DL_DELETE(ke->sessions, s);
            if (ke->sessions == NULL) {
                HASH_DEL(s->node->clients, ke);
                free(ke);
            }
        }
    }
    free(s);
}

struct session *delivery_find_session(struct node *n, const uint8_t key[static QPC_KEY_LEN])
{
    struct key_entry *ke;

    HASH_FIND(hh, n->clients, key, QPC_KEY_LEN, ke);
    return ke != NULL ? ke->sessions : NULL;
}

/* --- client endpoint callbacks -------------------------------------------------------------- */

static int on_connected(struct qpc_quic_conn *conn, const char *alpn, const uint8_t *peer_key,
                        void *user)
{
    struct node *n = user;
    struct key_entry *ke;
    struct session *s;

    if (n->stopping || strcmp(alpn, QPC_ALPN_CLIENT) != 0 || peer_key == NULL)
        return 1;
    s = session_new(n, conn, false);
    if (s == NULL)
        return 1;
    memcpy(s->key, peer_key, QPC_KEY_LEN);
    HASH_FIND(hh, n->clients, peer_key, QPC_KEY_LEN, ke);
    if (ke == NULL) {
        ke = calloc(1, sizeof(*ke));
        if (ke == NULL) {
            qpc_quic_conn_set_user(conn, n);
            free(s);
            return 1;
        }
        memcpy(ke->key, peer_key, QPC_KEY_LEN);
        HASH_ADD(hh, n->clients, key, QPC_KEY_LEN, ke);
    }
    DL_APPEND(ke->sessions, s);
    n->c.connections_total++;
    if (qpc_log_get_level() >= QPC_LOG_DEBUG) {
        char hex[QPC_KEY_HEX_LEN];
        qpc_key_to_hex(hex, peer_key);
        qpc_log_debug("delivery", "client %.16s... connected from %s", hex, s->peer_addr);
    }
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
    handle_request(s, data, len);
}

static void on_datagram(struct qpc_quic_conn *conn, const uint8_t *data, size_t len, void *user)
{
    struct session *s = user;

    if (s->kind == OBJ_SESSION)
        relay_datagram(s->node, s, data, len);
}

static void on_writable(struct qpc_quic_conn *conn, int64_t stream_id, void *user)
{
    struct session *s = user;

    if (s->kind == OBJ_SESSION)
        session_flush(s);
}

static void on_closed(struct qpc_quic_conn *conn, const struct qpc_quic_close_info *info,
                      void *user)
{
    struct session *s = user;

    if (s->kind == OBJ_SESSION)
        session_closed(s);
}

/* --- group commit ------------------------------------------------------------------------------ */

void delivery_commit(struct node *n)
{
    if (ev_is_active(&n->commit_idle_w))
        ev_idle_stop(n->loop, &n->commit_idle_w);
    if (qpc_queue_staged(n->queue) > 0) {
        if (qpc_queue_commit(n->queue) != 0)
            qpc_log_error("delivery", "group commit failed: %s", qpc_queue_errmsg(n->queue));
        n->c.commits++;
    }
    if (n->outbox_kick) {
        n->outbox_kick = false;
        federation_pump(n, node_now_ms());
    }
}

static void commit_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    struct node *n = w->data;

    if (n->outbox_kick ||
        (ev_is_active(&n->commit_idle_w) &&
         (ev_now(loop) - n->staged_since >= COMMIT_MAX_DELAY ||
          qpc_queue_staged(n->queue) >= COMMIT_MAX_ITEMS)))
        delivery_commit(n);
}

static void commit_idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
    delivery_commit(w->data);
}

int delivery_start(struct node *n)
{
    const struct server_settings *sc = n->sc;
    struct qpc_quic_config qc = { 0 };
    struct sockaddr_storage ss;
    socklen_t slen = sizeof(ss);
    char host[256];
    uint16_t port;
    int rc;

    rc = qpc_addr_parse(sc->listen, host, sizeof(host), &port);
    if (rc != 0)
        return rc;
    qc.bind_addr = host;
    qc.port = port;
    qc.accept = true;
    qc.alpns[0] = QPC_ALPN_CLIENT;
    qc.identity_sk = qpc_identity_secret_key(n->identity);
    qc.max_frame = (size_t)sc->max_frame_size;
    qc.idle_timeout_ms = (uint64_t)sc->idle_timeout_ms;
    qc.cb.on_connected = on_connected;
    qc.cb.on_frame = on_frame;
    qc.cb.on_datagram = on_datagram;
    qc.cb.on_writable = on_writable;
    qc.cb.on_closed = on_closed;
    qc.user = n;
    rc = qpc_quic_endpoint_new(&n->client_ep, n->loop, &qc);
    if (rc != 0)
        return rc;
    if (qpc_quic_endpoint_local_addr(n->client_ep, &ss, &slen) == 0)
        n->client_port = ntohs(ss.ss_family == AF_INET6
                                   ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                   : ((struct sockaddr_in *)&ss)->sin_port);
    ev_prepare_init(&n->commit_w, commit_cb);
    n->commit_w.data = n;
    ev_set_priority(&n->commit_w, EV_MAXPRI);   /* before the endpoint flushes packets */
    ev_prepare_start(n->loop, &n->commit_w);
    ev_idle_init(&n->commit_idle_w, commit_idle_cb);
    n->commit_idle_w.data = n;
    return 0;
}

void delivery_stop(struct node *n)
{
    if (ev_is_active(&n->commit_w))
        ev_prepare_stop(n->loop, &n->commit_w);
    if (ev_is_active(&n->commit_idle_w))
        ev_idle_stop(n->loop, &n->commit_idle_w);
    /* Freeing the endpoint runs on_closed for every connection, which frees sessions. */
    qpc_quic_endpoint_free(n->client_ep);
    n->client_ep = NULL;
}
