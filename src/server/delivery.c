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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qpc/envelope.h"
#include "qpc/error.h"
#include "qpc/log.h"
#include "qpc/pbarena.h"
#include "server.h"

#define FETCH_PAGE_DEFAULT 256u
#define FETCH_PAGE_MAX 10000u
#define FRAME_MARGIN 1024u          /* room for the fields around the items of a page */
#define PUNCH_RATE_PER_S 5.0       /* punch notices a client may cause per second... */
#define PUNCH_BURST 20.0            /* ...and at once (dialling several peers) */
#define COMMIT_MAX_DELAY 0.002      /* seconds a staged write may wait for the loop to idle */
#define COMMIT_MAX_ITEMS 20000u     /* or this many staged writes */

enum reply_kind { R_ENQUEUE, R_BATCH, R_FED };

struct item_ctx {
    struct pending *p;
    size_t index;
    bool remote;
    uint8_t recipient[QPC_KEY_LEN];
    uint8_t *push_blob;            /* copy kept only when the recipient listens for pushes */
    size_t push_len;
};

/* An enqueue-like request waiting for its commit; its answer has a reserved place in
 * the session's reply order. */
struct pending {
    struct node *node;
    struct session_reply *slot;
    uint64_t request_id;
    enum reply_kind kind;
    size_t n, waiting;             /* items, and items whose completion has not run */
    int *statuses;                 /* Qpc__Status per item */
    struct item_ctx *items;
};

/* --- replies ------------------------------------------------------------------------ */

static struct pending *pending_new(struct node *n, uint64_t request_id, enum reply_kind kind,
                                   size_t items)
{
    struct pending *p = calloc(1, sizeof(*p));

    if (p == NULL)
        return NULL;
    p->node = n;
    p->request_id = request_id;
    p->kind = kind;
    p->n = items;
    p->statuses = calloc(items > 0 ? items : 1, sizeof(*p->statuses));
    p->items = calloc(items > 0 ? items : 1, sizeof(*p->items));
    if (p->statuses == NULL || p->items == NULL) {
        free(p->statuses);
        free(p->items);
        free(p);
        return NULL;
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
    free(p);
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

/* Every item of p has its status: the answer takes its reserved place (or goes
 * nowhere when the session closed meanwhile). */
static void pending_finish(struct pending *p)
{
    Qpc__ServerMessage msg = QPC__SERVER_MESSAGE__INIT;
    Qpc__EnqueueResponse er = QPC__ENQUEUE_RESPONSE__INIT;
    Qpc__BatchEnqueueResponse br = QPC__BATCH_ENQUEUE_RESPONSE__INIT;
    Qpc__FederationResponse fr = QPC__FEDERATION_RESPONSE__INIT;

    if (session_reply_session(p->slot) == NULL) {
        session_reply_cancel(p->slot);
        pending_free(p);
        return;
    }
    for (size_t i = 0; i < p->n; i++)
        count_status(p->node, p->statuses[i]);
    switch (p->kind) {
    case R_ENQUEUE:
        msg.request_id = p->request_id;
        er.status = (Qpc__Status)p->statuses[0];
        er.detail = (char *)status_text(p->statuses[0]);
        msg.body_case = QPC__SERVER_MESSAGE__BODY_ENQUEUE;
        msg.enqueue = &er;
        session_reply_send(p->slot, &msg.base);
        break;
    case R_BATCH:
        msg.request_id = p->request_id;
        br.n_statuses = p->n;
        br.statuses = (Qpc__Status *)p->statuses;
        msg.body_case = QPC__SERVER_MESSAGE__BODY_BATCH_ENQUEUE;
        msg.batch_enqueue = &br;
        session_reply_send(p->slot, &msg.base);
        break;
    case R_FED:
        fr.request_id = p->request_id;
        fr.n_statuses = p->n;
        fr.statuses = (Qpc__Status *)p->statuses;
        session_reply_send(p->slot, &fr.base);
        break;
    }
    pending_free(p);
}

/* --- pushes ---------------------------------------------------------------------------- */

static bool wants_push(struct node *n, const uint8_t key[static QPC_KEY_LEN])
{
    for (struct session *s = session_find(n->client_ep, key); s != NULL;
         s = session_next_of_client(s)) {
        if (s->push)
            return true;
    }
    return false;
}

static void push_item(struct node *n, const uint8_t key[static QPC_KEY_LEN], uint64_t seq,
                      const uint8_t *blob, size_t len)
{
    for (struct session *s = session_find(n->client_ep, key); s != NULL;
         s = session_next_of_client(s)) {
        Qpc__ServerMessage msg = QPC__SERVER_MESSAGE__INIT;
        Qpc__Push push = QPC__PUSH__INIT;
        Qpc__QueuedEnvelope qe = QPC__QUEUED_ENVELOPE__INIT;
        Qpc__QueuedEnvelope *items[1] = { &qe };

        if (!s->push)
            continue;
        qe.seq = seq;
        qe.envelope.data = (uint8_t *)blob;
        qe.envelope.len = len;
        push.n_items = 1;
        push.items = items;
        msg.body_case = QPC__SERVER_MESSAGE__BODY_PUSH;
        msg.push = &push;
        n->c.delivered++;
        session_send_message(s, &msg.base);
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

    p = pending_new(n, request_id, kind, count);
    if (p == NULL)
        return;
    p->slot = session_reply_reserve(s);
    if (p->slot == NULL) {
        pending_free(p);
        return;
    }
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
    session_send_message(s, &msg->base);
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
    struct session *first = NULL;
    bool punch;

    if (r->key.len == QPC_KEY_LEN)
        first = session_find(s->node->client_ep, r->key.data);
    /* Each answer makes the named peer's client send packets toward the asker: within
     * the rate the asker still learns the addresses, but no more notices are sent. */
    punch = first != NULL && session_take_token(&s->punch_rate, ev_now(s->node->loop),
                                                PUNCH_RATE_PER_S, PUNCH_BURST);
    if (first != NULL) {
        for (struct session *t = first; t != NULL; t = session_next_of_client(t)) {
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
        session_close(s, QPC_QUIC_APP_REFUSED, "malformed federation request");
    } else {
        qpc_log_debug("federation", "%zu item(s) from %s (%s)", req->relay_enqueue->n_items,
                      req->relay_enqueue->origin_domain, s->peer_addr);
        handle_items(s, req->request_id, R_FED, req->relay_enqueue->items,
                     req->relay_enqueue->n_items, NULL);
    }
    if (req != NULL)
        qpc__federation_request__free_unpacked(req, NULL);
}

/* --- client endpoint callbacks -------------------------------------------------------------- */

static void on_open(struct session *s)
{
    s->node->c.connections_total++;
    if (qpc_log_get_level() >= QPC_LOG_DEBUG) {
        char hex[QPC_KEY_HEX_LEN];
        qpc_key_to_hex(hex, s->key);
        qpc_log_debug("delivery", "client %.16s... connected from %s", hex, s->peer_addr);
    }
}

static void on_datagram(struct session *s, const uint8_t *data, size_t len)
{
    relay_datagram(s->node, s, data, len);
}

static const struct session_callbacks client_callbacks = {
    .on_open = on_open,
    .on_frame = handle_request,
    .on_datagram = on_datagram,
};

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
    struct session_endpoint_config ec = { 0 };
    int rc;

    ec.listen = n->sc->listen;
    ec.alpn = QPC_ALPN_CLIENT;
    ec.clients = true;
    rc = session_endpoint_open(n, &ec, &client_callbacks, &n->client_ep);
    if (rc != 0)
        return rc;
    n->client_port = session_endpoint_port(n->client_ep);
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
    session_endpoint_close(n->client_ep);
    n->client_ep = NULL;
}
