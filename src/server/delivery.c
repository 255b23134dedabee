/*
 * delivery.c: the delivery queues of the node: enqueue, batch enqueue, fetch, ack and
 * push for clients, the same staging for items other nodes relay here, and the group
 * commit.
 *
 * The one idea: nothing is acknowledged before it is on disk, and one fsync pays for
 * everything that arrived meanwhile, and that fsync never stops the loop. Requests that
 * only read (fetch) are answered at once; enqueues and acks STAGE their writes in the
 * queue and reserve their answer's place in the session's reply order. The commit
 * writes them in one transaction on the loop (some 100-300 us) and returns before the
 * disk has them: item_committed pushes each new message to its listening recipients at
 * once, while the answers to senders wait for the queue's sync thread (QPC_QUEUE_SYNC_
 * THREAD) to fsync the WAL; its eventfd (synced_w) then runs the completions, which fill
 * the reserved places in and wake the federation outbox pump. (With the fsync in the
 * commit on the loop, one slow fsync, over 100 ms at the tail of a shared disk, held
 * every push and every other event for that long.) A push before the fsync loses
 * nothing: a recipient's ack of it is a delete in a later transaction, which the WAL
 * never keeps without the insert before it, and a message lost with an unsynced
 * transaction was not acknowledged to its sender, who sends it again (the recipient
 * drops the copy by envelope id). (An ack in a transaction of its own cost an fsync
 * per push a client acknowledged.) Acks wait for a commit that happens anyway, at most
 * ACK_COMMIT_DELAY.
 *
 * When to commit: as soon as the loop has nothing else pending (an ev_idle watcher,
 * started by the first staged write), so a commit takes everything that had arrived,
 * however many socket reads that took; under a load that never lets the loop go idle,
 * commit_cb (an ev_prepare watcher of the highest priority, so it runs before the QUIC
 * endpoint's own prepare watcher sends packets) commits once the oldest staged write is
 * COMMIT_MAX_DELAY old or COMMIT_MAX_ITEMS are staged. Fewer, larger transactions write
 * each hot B-tree page once per commit instead of once per socket read.
 *
 * A client is who its certificate says (the session's key). Fetch and ack take no
 * recipient: they always act on that key, so a client cannot name, see or delete
 * another client's queue.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "qpc/addr.h"
#include "qpc/envelope.h"
#include "qpc/error.h"
#include "qpc/log.h"
#include "delivery.h"
#include "federation.h"
#include "mesh.h"
#include "request.h"

#define FETCH_PAGE_DEFAULT 256u
#define FETCH_PAGE_MAX 10000u
#define FETCH_ITEM_OVERHEAD 24u     /* a QueuedEnvelope's seq, tags and lengths, at most */
#define FETCH_FRAME_OVERHEAD 64u    /* the ServerMessage and FetchResponse around them */
#define SKIP_LOG_INTERVAL_MS 10000u
#define COMMIT_MAX_DELAY 0.002      /* seconds a staged write may wait for the loop to idle */
#define COMMIT_MAX_ITEMS 20000u     /* or this many staged writes */
/* An ack needs no prompt commit: until it is durable the worst case is that the client
 * is handed the item again (it drops it by id), and clients do not wait for the answer.
 * So an ack rides along with the next commit that enqueues make anyway, or is committed
 * this long after it arrived: at a light load that halves the commits (and fsyncs) a
 * pushed message costs, since each push is followed by its recipient's ack. */
#define ACK_COMMIT_DELAY 0.1

struct delivery {
    struct node *node;
    ev_prepare commit_w;           /* commits when staged writes grow old */
    ev_idle commit_idle_w;         /* commits when the loop has nothing else to do */
    ev_timer ack_commit_w;         /* commits staged acks nothing else committed */
    ev_io synced_w;                /* the queue's sync thread made commits durable */
    double staged_since;           /* ratelimit_now() of the oldest uncommitted write */
    bool outbox_kick;              /* outbox rows were committed: pump soon */
};

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
    enum delivery_kind kind;
    size_t n, waiting;             /* items, and items whose completion has not run */
    int *statuses;                 /* Qpc__Status per item */
    struct item_ctx *items;
    const struct session *from;    /* the requester, while its items are staged (only then) */
};

/* --- answers --------------------------------------------------------------------------- */

static struct pending *pending_new(struct node *n, uint64_t request_id, enum delivery_kind kind,
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
    case DELIVERY_ENQUEUE:
        msg.request_id = p->request_id;
        er.status = (Qpc__Status)p->statuses[0];
        er.detail = (char *)status_text(p->statuses[0]);
        msg.body_case = QPC__SERVER_MESSAGE__BODY_ENQUEUE;
        msg.enqueue = &er;
        session_reply_send(p->slot, &msg.base);
        break;
    case DELIVERY_BATCH:
        msg.request_id = p->request_id;
        br.n_statuses = p->n;
        br.statuses = (Qpc__Status *)p->statuses;
        msg.body_case = QPC__SERVER_MESSAGE__BODY_BATCH_ENQUEUE;
        msg.batch_enqueue = &br;
        session_reply_send(p->slot, &msg.base);
        break;
    case DELIVERY_RELAYED:
        fr.request_id = p->request_id;
        fr.n_statuses = p->n;
        fr.statuses = (Qpc__Status *)p->statuses;
        session_reply_send(p->slot, &fr.base);
        break;
    }
    pending_free(p);
}

/*
 * A failure of the queue database, logged at most once per interval per kind (a damaged
 * file or a full disk fails every request; the message names the file and says what
 * to do). The count is in qpc_errors_total{kind="internal"} anyway.
 */
enum db_op { DB_COMMIT, DB_FETCH, DB_ACK, DB_REFUSED, DB_OP_COUNT };

static void log_queue_failure(struct node *n, enum db_op op)
{
    static const char *const what[DB_OP_COUNT] = {
        "group commit failed", "fetch failed", "ack failed", "write refused",
    };
    static struct qpc_log_limit limits[DB_OP_COUNT];
    uint64_t suppressed = 0;

    if (qpc_log_limit_pass(&limits[op], ratelimit_now_ms(), SKIP_LOG_INTERVAL_MS, &suppressed))
        qpc_log_error("delivery", "%s: %s (%llu more like it)", what[op],
                      qpc_queue_errmsg(n->queue), (unsigned long long)suppressed);
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
        /* To a client: held for a remote node. To the node that handed it over: OK,
         * this node has it durably now and carries it on (custody moves one hop). */
        p->statuses[it->index] = p->kind == DELIVERY_RELAYED ? QPC__STATUS__STATUS_OK
                                                             : QPC__STATUS__STATUS_DEFERRED;
        n->c.deferred++;
        if (p->kind == DELIVERY_RELAYED)
            n->c.federated_in++;
        n->delivery->outbox_kick = true;
    } else if (status == 0) {
        p->statuses[it->index] = QPC__STATUS__STATUS_OK;
        n->c.enqueued++;
        if (p->kind == DELIVERY_RELAYED)
            n->c.federated_in++;
    } else {
        p->statuses[it->index] = status_of_queue_err(status);   /* delivery_commit logs */
    }
    free(it->push_blob);
    it->push_blob = NULL;
    if (--p->waiting == 0)
        pending_finish(p);
}

/*
 * A queue row is committed, not yet durable: its recipient may have it now (see the
 * top of this file for why that is safe), its sender's answer waits for item_done.
 */
static void item_committed(void *arg, uint64_t seq)
{
    struct item_ctx *it = arg;

    if (it->push_blob == NULL)
        return;
    push_item(it->p->node, it->recipient, seq, it->push_blob, it->push_len);
    free(it->push_blob);
    it->push_blob = NULL;
}

/* Something was staged: commit once the loop is idle (or commit_cb finds it old). */
static void commit_soon(struct node *n)
{
    if (!ev_is_active(&n->delivery->commit_idle_w)) {
        n->delivery->staged_since = ratelimit_now();
        ev_idle_start(n->loop, &n->delivery->commit_idle_w);
    }
}

/*
 * The domain an item goes to. A client's envelope that names none (my own node's queue)
 * for a recipient that is not connected here, whose latest signed announce names
 * another home node, goes to that node: the recipient collects its messages there, and
 * would never fetch them here. This is the announce's word, signed by the recipient, so
 * only the recipient can point its messages elsewhere (as homes.c does in the client).
 * Otherwise the item's own domain. home is a buffer for the copy.
 */
static const char *home_domain(const struct node *n, const Qpc__EnqueueItem *item,
                               const uint8_t recipient[static QPC_KEY_LEN], bool from_client,
                               char home[static QPC_ANNOUNCE_DOMAIN_MAX + 1])
{
    const char *d = item->domain != NULL ? item->domain : "";
    const char *h;

    if (!from_client || d[0] != '\0' || !n->sc->federation_enabled ||
        session_find(n->client_ep, recipient) != NULL ||
        (h = mesh_home(n, recipient)) == NULL || strcasecmp(h, n->sc->federation_domain) == 0)
        return d;
    snprintf(home, QPC_ANNOUNCE_DOMAIN_MAX + 1, "%s", h);
    qpc_log_debug("delivery", "an envelope naming no domain goes to its recipient's home %s "
                  "(its announce)", home);
    return home;
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
    struct qpc_envelope env;
    enum dest_kind dest;
    char home[QPC_ANNOUNCE_DOMAIN_MAX + 1];
    const char *domain;
    uint64_t expires;
    int st, rc;

    st = request_check_item(item, sender, now, (size_t)n->sc->max_envelope_size,
                            (uint64_t)n->sc->max_ttl, &env);
    if (st >= 0)
        return st;
    domain = home_domain(n, item, env.recipient, sender != NULL, home);
    dest = resolve_destination(n, domain, NULL, 0);
    /* A client's envelope for a domain this node cannot route yet (a domain route not
     * learned yet, a node not seen on mDNS yet, a link not up yet) is held in the outbox
     * like any remote one: the pump retries it, and a way to the domain that opens makes
     * it due at once (federation.c). Refused only where no way can ever open: federation
     * off, or no DNS name. A node's envelope goes on only along a route it has now. */
    if (dest == DEST_UNKNOWN && sender != NULL && n->sc->federation_enabled &&
        qpc_addr_check_name(domain) == NULL)
        dest = DEST_REMOTE;
    if (dest == DEST_UNKNOWN) {
        st = QPC__STATUS__STATUS_UNKNOWN_DOMAIN;
        goto out;
    }
    if (dest == DEST_REMOTE && sender == NULL &&
        (st = federation_forward_status(n, p->from, domain, env.id)) >= 0)
        goto out;   /* another node's envelope goes on only along a route (federation.c) */
    st = -1;
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
        rc = qpc_queue_outbox_add(n->queue, domain, env.recipient, env.id, expires,
                                  item->envelope.data, item->envelope.len, now, item_done, it);
    else
        rc = qpc_queue_enqueue(n->queue, env.recipient, env.id, expires, item->envelope.data,
                               item->envelope.len, now, item_done, it);
    if (rc != 0) {
        free(it->push_blob);
        it->push_blob = NULL;
        st = status_of_queue_err(rc);
        if (rc == QPC_ERR_DB)
            log_queue_failure(n, DB_REFUSED);   /* a damaged file refuses every write */
        goto out;
    }
    p->waiting++;
    commit_soon(n);
out:
    qpc_envelope_clear(&env);
    return st;
}

void delivery_enqueue(struct session *s, uint64_t request_id, enum delivery_kind kind,
                      Qpc__EnqueueItem **items, size_t count)
{
    struct node *n = s->node;
    const uint8_t *sender = kind == DELIVERY_RELAYED ? NULL : s->key;
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
    p->from = s;
    for (size_t i = 0; i < count; i++) {
        int st = stage_item(p, i, items[i], sender, now);
        if (st >= 0)
            p->statuses[i] = st;
    }
    p->from = NULL;
    if (--p->waiting == 0)
        pending_finish(p);
}

/* --- the other requests ------------------------------------------------------------------ */

int delivery_check_settings(const struct server_settings *sc, char *err, size_t errlen)
{
    if (sc->max_frame_size >= DELIVERY_FRAME_MARGIN &&
        sc->max_envelope_size <= sc->max_frame_size - DELIVERY_FRAME_MARGIN)
        return 0;
    snprintf(err, errlen, "max_envelope_size (%lld) must be at least %u bytes below "
             "max_frame_size (%lld): an envelope travels inside a frame with the request "
             "or answer around it, and one that fills the frame could be accepted but never "
             "fetched; lower max_envelope_size to %lld or raise max_frame_size to %lld",
             (long long)sc->max_envelope_size, DELIVERY_FRAME_MARGIN,
             (long long)sc->max_frame_size,
             (long long)sc->max_frame_size - DELIVERY_FRAME_MARGIN,
             (long long)sc->max_envelope_size + DELIVERY_FRAME_MARGIN);
    return QPC_ERR_CONFIG;
}

/* An item that no frame can carry: queued while max_frame_size was larger. It stays
 * queued (the operator may raise the limit again) but no page can hold it. */
static void log_undeliverable(struct session *s, const struct qpc_queue_item *it)
{
    static struct qpc_log_limit limit;   /* process-wide, like the log level */
    uint64_t suppressed = 0;

    s->node->c.errors[ERRK_TOO_LARGE]++;
    if (!qpc_log_limit_pass(&limit, ratelimit_now_ms(), SKIP_LOG_INTERVAL_MS, &suppressed))
        return;
    qpc_log_error("delivery", "queued envelope seq %llu (%zu bytes) is larger than a frame "
                  "can carry (max_frame_size %lld); it is skipped by fetch until "
                  "max_frame_size is raised to at least %zu or it expires (%llu more "
                  "suppressed)", (unsigned long long)it->seq, it->blob_len,
                  (long long)s->node->sc->max_frame_size,
                  it->blob_len + FETCH_ITEM_OVERHEAD + FETCH_FRAME_OVERHEAD,
                  (unsigned long long)suppressed);
}

void delivery_fetch(struct session *s, uint64_t request_id, const Qpc__FetchRequest *f)
{
    struct node *n = s->node;
    Qpc__ServerMessage msg = QPC__SERVER_MESSAGE__INIT;
    Qpc__FetchResponse fr = QPC__FETCH_RESPONSE__INIT;
    Qpc__QueuedEnvelope *qes = NULL, **ptrs = NULL;
    struct qpc_queue_item *items = NULL;
    size_t limit = f->limit == 0 ? FETCH_PAGE_DEFAULT : f->limit;
    size_t count = 0, fetched = 0, used = 0, budget, carry;
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
        log_queue_failure(n, DB_FETCH);
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
    /*
     * A page must fit in one frame: stop early and say "more" when the next item would
     * not fit. Every page holds at least one item, whatever its size, or an envelope too
     * big for the page budget would be answered "no items, more" for ever and hold up
     * every message behind it (delivery_check_settings keeps max_envelope_size far
     * enough below max_frame_size that any envelope accepted fits a page of its own).
     */
    budget = (size_t)n->sc->max_frame_size - DELIVERY_FRAME_MARGIN;
    carry = (size_t)n->sc->max_frame_size - FETCH_FRAME_OVERHEAD;
    for (size_t i = 0; i < count && i < limit; i++) {
        size_t need = items[i].blob_len + FETCH_ITEM_OVERHEAD;
        Qpc__QueuedEnvelope *qe = &qes[fr.n_items];

        if (need > carry) {
            log_undeliverable(s, &items[i]);
            continue;
        }
        if (fr.n_items > 0 && used + need > budget) {
            fr.more = true;
            break;
        }
        used += need;
        qpc__queued_envelope__init(qe);
        qe->seq = items[i].seq;
        qe->envelope.data = items[i].blob;
        qe->envelope.len = items[i].blob_len;
        ptrs[fr.n_items++] = qe;
    }
    /* A page of nothing but undeliverable items ends the client's paging: "more" with
     * no item would make it ask for the same page again at once. */
    if (fr.n_items == 0)
        fr.more = false;
    fr.items = ptrs;
    n->c.delivered += fr.n_items;
    msg.request_id = request_id;
    msg.body_case = QPC__SERVER_MESSAGE__BODY_FETCH;
    msg.fetch = &fr;
    session_send_message(s, &msg.base);
    free(ptrs);
    free(qes);
    qpc_queue_items_free(items, fetched);
}

/* An ack waiting for its commit; its answer has a reserved place in the reply order. */
struct ack_ctx {
    struct node *node;
    struct session_reply *slot;
    uint64_t request_id;
};

static void ack_done(void *arg, int status, uint64_t removed)
{
    struct ack_ctx *a = arg;
    Qpc__ServerMessage msg = QPC__SERVER_MESSAGE__INIT;
    Qpc__AckResponse ar = QPC__ACK_RESPONSE__INIT;

    if (status == 0)
        a->node->c.acked += removed;
    ar.status = status == 0 ? QPC__STATUS__STATUS_OK : QPC__STATUS__STATUS_INTERNAL;
    ar.deleted = status == 0 ? (uint32_t)removed : 0;
    msg.request_id = a->request_id;
    msg.body_case = QPC__SERVER_MESSAGE__BODY_ACK;
    msg.ack = &ar;
    session_reply_send(a->slot, &msg.base);   /* a cancel when the session closed */
    free(a);
}

void delivery_ack(struct session *s, uint64_t request_id, const Qpc__AckRequest *a)
{
    struct node *n = s->node;
    struct ack_ctx *ctx = calloc(1, sizeof(*ctx));
    int rc;

    if (ctx == NULL)
        return;   /* the client's request times out, as for an enqueue */
    ctx->node = n;
    ctx->request_id = request_id;
    if ((ctx->slot = session_reply_reserve(s)) == NULL) {
        free(ctx);
        return;
    }
    if (a->up_to_seq == 0 && a->n_seqs == 0) {
        ack_done(ctx, 0, 0);   /* nothing to delete, nothing to wait for */
        return;
    }
    rc = qpc_queue_ack_stage(n->queue, s->key, a->up_to_seq, a->seqs, a->n_seqs, ack_done, ctx);
    if (rc != 0) {
        log_queue_failure(n, DB_ACK);
        ack_done(ctx, rc, 0);
        return;
    }
    if (!ev_is_active(&n->delivery->ack_commit_w)) {
        ev_timer_set(&n->delivery->ack_commit_w, ACK_COMMIT_DELAY, 0.0);
        ev_timer_start(n->loop, &n->delivery->ack_commit_w);
    }
}

void delivery_set_push(struct session *s, uint64_t request_id, bool enable)
{
    Qpc__ServerMessage msg = QPC__SERVER_MESSAGE__INIT;
    Qpc__PushResponse pr = QPC__PUSH_RESPONSE__INIT;

    s->push = enable;
    pr.status = QPC__STATUS__STATUS_OK;
    /* The client names it in its messages, so receipts for them find their way back
     * to this node through federation (docs/envelope.md, "Direct plaintext"). */
    pr.domain = (char *)s->node->sc->federation_domain;
    msg.request_id = request_id;
    msg.body_case = QPC__SERVER_MESSAGE__BODY_PUSH_ACK;
    msg.push_ack = &pr;
    session_send_message(s, &msg.base);
}

/* --- group commit ------------------------------------------------------------------------------ */

void delivery_commit(struct node *n)
{
    struct delivery *d = n->delivery;

    if (d == NULL)
        return;
    if (ev_is_active(&d->commit_idle_w))
        ev_idle_stop(n->loop, &d->commit_idle_w);
    if (ev_is_active(&d->ack_commit_w))
        ev_timer_stop(n->loop, &d->ack_commit_w);   /* its acks go in this commit */
    if (qpc_queue_staged(n->queue) > 0) {
        if (qpc_queue_commit(n->queue) != 0)
            log_queue_failure(n, DB_COMMIT);
        n->c.commits++;
    }
    if (d->outbox_kick) {
        d->outbox_kick = false;
        federation_pump(n, node_now_ms());
    }
}

static void commit_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    struct delivery *d = w->data;

    if (d->outbox_kick || qpc_queue_staged(d->node->queue) >= COMMIT_MAX_ITEMS ||
        (ev_is_active(&d->commit_idle_w) && ratelimit_now() - d->staged_since >= COMMIT_MAX_DELAY))
        delivery_commit(d->node);
}

static void ack_commit_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct delivery *d = w->data;

    delivery_commit(d->node);
}

static void commit_idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
    struct delivery *d = w->data;

    delivery_commit(d->node);
}

/* The sync thread's fsync ended: answer what it made durable (commit_cb pumps the
 * outbox if that woke it). */
static void synced_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct delivery *d = w->data;

    qpc_queue_complete(d->node->queue);
}

void delivery_flush(struct node *n)
{
    delivery_commit(n);
    qpc_queue_flush(n->queue);
}

int delivery_start(struct node *n)
{
    struct delivery *d = calloc(1, sizeof(*d));

    if (d == NULL)
        return QPC_ERR_NOMEM;
    d->node = n;
    ev_prepare_init(&d->commit_w, commit_cb);
    d->commit_w.data = d;
    ev_set_priority(&d->commit_w, EV_MAXPRI);   /* before the endpoint flushes packets */
    ev_prepare_start(n->loop, &d->commit_w);
    ev_idle_init(&d->commit_idle_w, commit_idle_cb);
    d->commit_idle_w.data = d;
    ev_timer_init(&d->ack_commit_w, ack_commit_cb, ACK_COMMIT_DELAY, 0.0);
    d->ack_commit_w.data = d;
    qpc_queue_set_committed(n->queue, item_committed);
    if (qpc_queue_sync_fd(n->queue) >= 0) {
        ev_io_init(&d->synced_w, synced_cb, qpc_queue_sync_fd(n->queue), EV_READ);
        d->synced_w.data = d;
        ev_io_start(n->loop, &d->synced_w);
    }
    n->delivery = d;
    return 0;
}

void delivery_stop(struct node *n)
{
    struct delivery *d = n->delivery;

    if (d == NULL)
        return;
    ev_prepare_stop(n->loop, &d->commit_w);
    ev_idle_stop(n->loop, &d->commit_idle_w);
    ev_timer_stop(n->loop, &d->ack_commit_w);
    ev_io_stop(n->loop, &d->synced_w);
    qpc_queue_set_committed(n->queue, NULL);
    free(d);
    n->delivery = NULL;
}
