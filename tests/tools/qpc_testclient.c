/*
 * qpc_testclient: drives a qpc-server over the client ALPN for the integration tests.
 * Not the real client: it prints one machine-readable line per event and exits.
 *
 *   qpc_testclient -i ID.json id                          print the peer id
 *   qpc_testclient -i ID.json -S HOST:PORT send KEY[@DOMAIN] COUNT
 *          [-b BATCH] [-z BYTES] [-Z BYTES] [-t TTL] [-w WINDOW] [-F] [-R]
 *       one line per item "ok INDEX IDHEX STATUS" as the answers arrive (flushed), then
 *       "summary sent=N OK=.. ..." ; -z is the payload size, -Z the size of the whole
 *       encoded envelope (the payload is sized to make it exactly that);
 *       -b > 1 uses batch_enqueue; -F signs the envelopes
 *       with a key that is not ours (the node must answer FORBIDDEN); -R sets a recipient
 *       field that differs from the envelope's (INVALID).
 *   qpc_testclient -i ID.json -S HOST:PORT fetch [-a] [-p PAGE]
 *       every queued item as "msg SEQ IDHEX PAYLOAD"; -a acks each page after printing
 *   qpc_testclient -i ID.json -S HOST:PORT ack SEQ...      prints "deleted N"
 *   qpc_testclient -i ID.json -S HOST:PORT listen COUNT [-T SECONDS]
 *       enables push, prints "ready", then "push SEQ IDHEX PAYLOAD" per pushed item
 *   qpc_testclient -i ID.json -S HOST:PORT peer KEY
 *       peer_info: "online 0|1" and "address ADDR" per address the node observes
 *   qpc_testclient -i ID.json -S HOST:PORT garbage COUNT [-U] [-T SECONDS]
 *       sends COUNT frames that are not a ClientRequest (-U: well-formed requests of a
 *       kind no node knows, as a newer client's would be), prints "answers N" (error
 *       answers received) and "closed REASON" once the node closes; exits 0 when it
 *       closed, 4 when it had not after SECONDS
 *   qpc_testclient -i ID.json -S HOST:PORT hold COUNT
 *       opens COUNT more connections with the same identity, one after another, and
 *       prints "admitted N" and one "refused REASON" per connection the node closed
 *   qpc_testclient -i ID.json -S HOST:PORT relay KEY COUNT
 *       sends COUNT relay datagrams 0x01||KEY||"ping-I", 20 ms apart
 *   qpc_testclient -i ID.json -S HOST:PORT punch KEY [CANDIDATE...]
 *       registers the candidates (PathRequest), then asks the node to punch KEY; prints
 *       "observed ADDR" and "status NAME" from the answers
 *   qpc_testclient -i ID.json -S HOST:PORT recv COUNT [-T SECONDS]
 *       prints "ready", then "dgram SRCKEY PAYLOAD" per relay datagram and
 *       "punch KEY ADDR" per PunchNotice; exits 0 after COUNT datagrams, 4 at the timeout
 *
 * Exit status: 0 done, 1 usage or setup failure, 3 the connection ended early, 4 timeout.
 */
#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qpc/identity.h"
#include "testclient.h"

#define REPLY_TIMEOUT_S 30.0

struct opts {
    const char *identity, *server;
    size_t batch, size, envelope_size, window, page;
    uint32_t ttl;
    bool ack, forge, wrong_recipient, unknown_kind;
    double timeout;
};

/* --- send ------------------------------------------------------------------------------- */

/* Makes envelope i with a payload of o->size bytes, or sized so that the encoded envelope
 * is exactly o->envelope_size bytes (varint lengths can make a size unreachable: then
 * the nearest below). */
static int make_one(const uint8_t *sk, const uint8_t *recipient, const struct opts *o, size_t i,
                    uint8_t **blob, size_t *len, uint8_t id[QPC_ID_LEN])
{
    size_t plen = o->envelope_size > 256 ? o->envelope_size - 256 : o->size;
    int rc = 1;

    for (int round = 0; round < 8; round++) {
        uint8_t *payload = malloc(plen + 32);
        int n;

        if (payload == NULL)
            return 1;
        n = snprintf((char *)payload, 32, "m%zu", i);
        if (plen < (size_t)n)
            plen = (size_t)n;
        memset(payload + n, 'x', plen - (size_t)n);
        free(*blob);
        *blob = NULL;
        rc = tc_make_envelope(sk, recipient, payload, plen, o->ttl, blob, len, id);
        free(payload);
        if (rc != 0 || o->envelope_size == 0 || *len == o->envelope_size)
            return rc;
        if (*len > o->envelope_size)
            plen -= *len - o->envelope_size;
        else if (round < 7)
            plen += o->envelope_size - *len;
    }
    return *len <= o->envelope_size ? 0 : 1;
}

struct flight {
    uint64_t rid;
    size_t start, n;
};

struct sender {
    struct flight *ring;
    size_t head, tail, cap;     /* ring of requests in flight, answered in order */
    uint8_t (*ids)[QPC_ID_LEN];
    size_t answered;
    unsigned counts[9];
    bool protocol_error;
    size_t mark;               /* answered when the current wait began */
    bool can_send;             /* items remain to be sent */
};

static void print_item(struct sender *s, size_t index, int status)
{
    char hex[QPC_ID_LEN * 2 + 1];

    qpc_hex_encode(hex, s->ids[index], QPC_ID_LEN);
    printf("ok %zu %s %s\n", index, hex, tc_status_name(status));
    if (status >= 0 && status <= 8)
        s->counts[status]++;
    s->answered++;
}

static void sender_msg(struct tc *t, const Qpc__ServerMessage *m)
{
    struct sender *s = t->user;
    struct flight *f;

    if (m->request_id == 0 || s->head == s->tail) {
        return;
    }
    f = &s->ring[s->head % s->cap];
    if (f->rid != m->request_id) {
        fprintf(stderr, "testclient: answer %llu out of order (expected %llu)\n",
                (unsigned long long)m->request_id, (unsigned long long)f->rid);
        s->protocol_error = true;
        return;
    }
    if (m->body_case == QPC__SERVER_MESSAGE__BODY_ERROR) {
        printf("error %s %s\n", tc_status_name(m->error->status),
               m->error->detail != NULL ? m->error->detail : "");
        s->protocol_error = true;
    } else if (m->body_case == QPC__SERVER_MESSAGE__BODY_ENQUEUE && f->n == 1) {
        print_item(s, f->start, m->enqueue->status);
    } else if (m->body_case == QPC__SERVER_MESSAGE__BODY_BATCH_ENQUEUE &&
               m->batch_enqueue->n_statuses == f->n) {
        for (size_t i = 0; i < f->n; i++)
            print_item(s, f->start + i, m->batch_enqueue->statuses[i]);
    } else {
        fprintf(stderr, "testclient: unexpected answer (case %d)\n", m->body_case);
        s->protocol_error = true;
    }
    fflush(stdout);
    s->head++;
}

static bool sender_progress(struct tc *t)
{
    struct sender *s = t->user;

    /* Wake for a new answer, or for room in the window while items remain. */
    return s->protocol_error || s->answered != s->mark ||
           (s->can_send && s->tail - s->head < s->cap);
}

static int cmd_send(struct tc *t, const uint8_t *sk, const struct opts *o, const char *dest,
                    size_t count)
{
    struct sender s = { 0 };
    uint8_t recipient[QPC_KEY_LEN], forged_pk[32], forged_sk[64];
    uint8_t **blobs = NULL;
    size_t *lens = NULL, next = 0;
    char key_hex[65] = "";
    const char *domain = "";
    int ret = 1;

    snprintf(key_hex, sizeof(key_hex), "%.64s", dest);
    if (strchr(dest, '@') != NULL)
        domain = strchr(dest, '@') + 1;
    if (qpc_key_from_hex(recipient, key_hex) != 0) {
        fprintf(stderr, "testclient: bad recipient key '%s'\n", dest);
        return 1;
    }
    crypto_sign_keypair(forged_pk, forged_sk);
    s.cap = o->window;
    s.ring = calloc(s.cap, sizeof(*s.ring));
    s.ids = calloc(count, sizeof(*s.ids));
    blobs = calloc(count, sizeof(*blobs));
    lens = calloc(count, sizeof(*lens));
    if (s.ring == NULL || s.ids == NULL || blobs == NULL || lens == NULL)
        goto out;
    /* Signing costs ~25 us: make every envelope before the first request. */
    for (size_t i = 0; i < count; i++) {
        if (make_one(o->forge ? forged_sk : sk, recipient, o, i, &blobs[i], &lens[i],
                     s.ids[i]) != 0) {
            fprintf(stderr, "testclient: cannot make envelope %zu\n", i);
            goto out;
        }
    }
    t->user = &s;
    t->on_msg = sender_msg;
    while (s.answered < count && !t->closed && !s.protocol_error) {
        while (next < count && s.tail - s.head < s.cap) {
            Qpc__ClientRequest req = QPC__CLIENT_REQUEST__INIT;
            Qpc__EnqueueRequest er = QPC__ENQUEUE_REQUEST__INIT;
            Qpc__BatchEnqueueRequest br = QPC__BATCH_ENQUEUE_REQUEST__INIT;
            size_t n = count - next < o->batch ? count - next : o->batch;
            Qpc__EnqueueItem *items = calloc(n, sizeof(*items));
            Qpc__EnqueueItem **ptrs = calloc(n, sizeof(*ptrs));
            uint64_t rid;
            int rc;

            if (items == NULL || ptrs == NULL) {
                free(items);
                free(ptrs);
                goto out;
            }
            for (size_t i = 0; i < n; i++) {
                qpc__enqueue_item__init(&items[i]);
                items[i].recipient.data = o->wrong_recipient ? forged_pk : recipient;
                items[i].recipient.len = QPC_KEY_LEN;
                items[i].domain = (char *)domain;
                items[i].envelope.data = blobs[next + i];
                items[i].envelope.len = lens[next + i];
                ptrs[i] = &items[i];
            }
            if (o->batch == 1) {
                req.body_case = QPC__CLIENT_REQUEST__BODY_ENQUEUE;
                er.item = ptrs[0];
                req.enqueue = &er;
            } else {
                req.body_case = QPC__CLIENT_REQUEST__BODY_BATCH_ENQUEUE;
                br.n_items = n;
                br.items = ptrs;
                req.batch_enqueue = &br;
            }
            rc = tc_send(t, &req, &rid);
            free(items);
            free(ptrs);
            if (rc == QPC_ERR_AGAIN)
                break;
            if (rc != 0)
                goto out;
            s.ring[s.tail % s.cap] = (struct flight){ rid, next, n };
            s.tail++;
            next += n;
        }
        s.mark = s.answered;
        s.can_send = next < count && s.tail - s.head < s.cap ? false : next < count;
        if (!tc_run_until(t, sender_progress, REPLY_TIMEOUT_S) && !t->closed) {
            ret = 4;
            goto out;
        }
    }
    ret = s.answered == count && !s.protocol_error ? 0 : (t->closed ? 3 : 1);
out:
    printf("summary sent=%zu", s.answered);
    for (int st = 0; st <= 8; st++)
        if (s.counts[st] > 0)
            printf(" %s=%u", tc_status_name(st), s.counts[st]);
    printf("\n");
    fflush(stdout);
    for (size_t i = 0; blobs != NULL && i < count; i++)
        free(blobs[i]);
    free(blobs);
    free(lens);
    free(s.ids);
    free(s.ring);
    return ret;
}

/* --- fetch, ack, listen ------------------------------------------------------------------- */

struct waiter {
    uint64_t rid;
    bool got;
    int status;
    uint64_t last_seq;
    bool more;
    uint32_t deleted;
    size_t pushes, want;
    size_t items;
};

static void print_envelope(const char *what, uint64_t seq, const ProtobufCBinaryData *blob)
{
    struct qpc_envelope env = { 0 };
    char hex[QPC_ID_LEN * 2 + 1], text[41];
    size_t k = 0;

    if (qpc_envelope_decode(&env, blob->data, blob->len) != 0) {
        printf("%s %llu undecodable\n", what, (unsigned long long)seq);
        return;
    }
    qpc_hex_encode(hex, env.id, QPC_ID_LEN);
    for (; k < env.payload_len && k < sizeof(text) - 1; k++)
        text[k] = isprint(env.payload[k]) ? (char)env.payload[k] : '.';
    text[k] = '\0';
    printf("%s %llu %s %s\n", what, (unsigned long long)seq, hex, text);
    qpc_envelope_clear(&env);
}

static void waiter_msg(struct tc *t, const Qpc__ServerMessage *m)
{
    struct waiter *w = t->user;

    if (m->body_case == QPC__SERVER_MESSAGE__BODY_PUSH) {
        for (size_t i = 0; i < m->push->n_items; i++) {
            print_envelope("push", m->push->items[i]->seq, &m->push->items[i]->envelope);
            w->pushes++;
        }
        fflush(stdout);
        return;
    }
    if (m->request_id != w->rid)
        return;
    w->got = true;
    switch (m->body_case) {
    case QPC__SERVER_MESSAGE__BODY_FETCH:
        w->status = m->fetch->status;
        w->more = m->fetch->more;
        w->items = m->fetch->n_items;
        for (size_t i = 0; i < m->fetch->n_items; i++) {
            print_envelope("msg", m->fetch->items[i]->seq, &m->fetch->items[i]->envelope);
            w->last_seq = m->fetch->items[i]->seq;
        }
        break;
    case QPC__SERVER_MESSAGE__BODY_ACK:
        w->status = m->ack->status;
        w->deleted = m->ack->deleted;
        break;
    case QPC__SERVER_MESSAGE__BODY_PUSH_ACK:
        w->status = m->push_ack->status;
        break;
    case QPC__SERVER_MESSAGE__BODY_ERROR:
        w->status = m->error->status;
        printf("error %s %s\n", tc_status_name(m->error->status),
               m->error->detail != NULL ? m->error->detail : "");
        break;
    default:
        w->status = -1;
        break;
    }
    fflush(stdout);
}

static bool waiter_got(struct tc *t)
{
    return ((struct waiter *)t->user)->got;
}

static bool waiter_all_pushed(struct tc *t)
{
    struct waiter *w = t->user;

    return w->pushes >= w->want;
}

static int request(struct tc *t, Qpc__ClientRequest *req)
{
    struct waiter *w = t->user;
    int rc;

    w->got = false;
    rc = tc_send(t, req, &w->rid);
    if (rc != 0) {
        fprintf(stderr, "testclient: send: %s\n", qpc_strerror(rc));
        return 1;
    }
    if (!tc_run_until(t, waiter_got, REPLY_TIMEOUT_S))
        return t->closed ? 3 : 4;
    return w->status == QPC__STATUS__STATUS_OK ? 0 : 1;
}

static int ack_upto(struct tc *t, uint64_t seq)
{
    Qpc__ClientRequest req = QPC__CLIENT_REQUEST__INIT;
    Qpc__AckRequest ar = QPC__ACK_REQUEST__INIT;

    ar.up_to_seq = seq;
    req.body_case = QPC__CLIENT_REQUEST__BODY_ACK;
    req.ack = &ar;
    return request(t, &req);
}

static int cmd_fetch(struct tc *t, const struct opts *o)
{
    struct waiter w = { 0 };
    uint64_t after = 0;
    size_t total = 0;
    int rc;

    t->user = &w;
    t->on_msg = waiter_msg;
    do {
        Qpc__ClientRequest req = QPC__CLIENT_REQUEST__INIT;
        Qpc__FetchRequest fr = QPC__FETCH_REQUEST__INIT;

        fr.after_seq = after;
        fr.limit = (uint32_t)o->page;
        req.body_case = QPC__CLIENT_REQUEST__BODY_FETCH;
        req.fetch = &fr;
        w.last_seq = after;
        if ((rc = request(t, &req)) != 0)
            return rc;
        total += w.items;
        after = w.last_seq;
        if (o->ack && w.items > 0 && (rc = ack_upto(t, after)) != 0)
            return rc;
    } while (w.more);
    printf("fetched %zu\n", total);
    return 0;
}

static int cmd_ack(struct tc *t, char **seqs, size_t n)
{
    struct waiter w = { 0 };
    Qpc__ClientRequest req = QPC__CLIENT_REQUEST__INIT;
    Qpc__AckRequest ar = QPC__ACK_REQUEST__INIT;
    uint64_t *v = calloc(n ? n : 1, sizeof(*v));
    int rc;

    if (v == NULL)
        return 1;
    for (size_t i = 0; i < n; i++)
        v[i] = strtoull(seqs[i], NULL, 10);
    t->user = &w;
    t->on_msg = waiter_msg;
    ar.n_seqs = n;
    ar.seqs = v;
    req.body_case = QPC__CLIENT_REQUEST__BODY_ACK;
    req.ack = &ar;
    rc = request(t, &req);
    free(v);
    if (rc == 0)
        printf("deleted %u\n", w.deleted);
    return rc;
}

static int cmd_listen(struct tc *t, const struct opts *o, size_t want)
{
    struct waiter w = { .want = want };
    Qpc__ClientRequest req = QPC__CLIENT_REQUEST__INIT;
    Qpc__PushRequest pr = QPC__PUSH_REQUEST__INIT;
    int rc;

    t->user = &w;
    t->on_msg = waiter_msg;
    pr.enable = true;
    req.body_case = QPC__CLIENT_REQUEST__BODY_PUSH;
    req.push = &pr;
    if ((rc = request(t, &req)) != 0)
        return rc;
    printf("ready\n");
    fflush(stdout);
    if (!tc_run_until(t, waiter_all_pushed, o->timeout))
        return t->closed ? 3 : 4;
    return 0;
}

/* --- peer_info and relay --------------------------------------------------------------- */

struct relay_state {
    bool got;
    size_t dgrams, want;
    size_t answers, want_answers;      /* PathResponses (punch) */
};

static void relay_msg(struct tc *t, const Qpc__ServerMessage *m)
{
    struct relay_state *r = t->user;
    char hex[QPC_KEY_HEX_LEN];

    if (m->body_case == QPC__SERVER_MESSAGE__BODY_PATH) {
        printf("observed %s\nstatus %s\n", m->path->observed, tc_status_name(m->path->status));
        r->got = ++r->answers >= r->want_answers;
    } else if (m->body_case == QPC__SERVER_MESSAGE__BODY_PEER_INFO) {
        printf("online %d\n", m->peer_info->online ? 1 : 0);
        for (size_t i = 0; i < m->peer_info->n_addresses; i++)
            printf("address %s\n", m->peer_info->addresses[i]);
        r->got = true;
    } else if (m->body_case == QPC__SERVER_MESSAGE__BODY_PUSH_ACK) {
        r->got = true;
    } else if (m->body_case == QPC__SERVER_MESSAGE__BODY_PUNCH &&
               m->punch->key.len == QPC_KEY_LEN) {
        qpc_key_to_hex(hex, m->punch->key.data);
        for (size_t i = 0; i < m->punch->n_addresses; i++)
            printf("punch %s %s\n", hex, m->punch->addresses[i]);
    }
    fflush(stdout);
}

static void relay_dgram(struct tc *t, const uint8_t *d, size_t n)
{
    struct relay_state *r = t->user;
    char hex[QPC_KEY_HEX_LEN];

    if (n < 1 + QPC_KEY_LEN || d[0] != 0x01)
        return;
    qpc_key_to_hex(hex, d + 1);
    printf("dgram %s %.*s\n", hex, (int)(n - 1 - QPC_KEY_LEN), (const char *)d + 1 + QPC_KEY_LEN);
    fflush(stdout);
    r->dgrams++;
}

static bool relay_got(struct tc *t)
{
    return ((struct relay_state *)t->user)->got;
}

static bool relay_all(struct tc *t)
{
    struct relay_state *r = t->user;

    return r->dgrams >= r->want;
}

static bool never(struct tc *t)
{
    return false;
}

static int cmd_peer(struct tc *t, const char *key_hex)
{
    struct relay_state r = { 0 };
    Qpc__ClientRequest req = QPC__CLIENT_REQUEST__INIT;
    Qpc__PeerInfoRequest pr = QPC__PEER_INFO_REQUEST__INIT;
    uint8_t key[QPC_KEY_LEN];

    if (qpc_key_from_hex(key, key_hex) != 0)
        return 1;
    t->user = &r;
    t->on_msg = relay_msg;
    pr.key.data = key;
    pr.key.len = QPC_KEY_LEN;
    req.body_case = QPC__CLIENT_REQUEST__BODY_PEER_INFO;
    req.peer_info = &pr;
    if (tc_send(t, &req, NULL) != 0 || !tc_run_until(t, relay_got, REPLY_TIMEOUT_S))
        return t->closed ? 3 : 4;
    return 0;
}

static int cmd_punch(struct tc *t, const char *key_hex, char **cands, size_t n)
{
    struct relay_state r = { .want_answers = 2 };
    Qpc__ClientRequest req = QPC__CLIENT_REQUEST__INIT;
    Qpc__PathRequest pr = QPC__PATH_REQUEST__INIT;
    uint8_t key[QPC_KEY_LEN];

    if (qpc_key_from_hex(key, key_hex) != 0)
        return 1;
    t->user = &r;
    t->on_msg = relay_msg;
    pr.set_candidates = true;
    pr.candidates = cands;
    pr.n_candidates = n;
    req.body_case = QPC__CLIENT_REQUEST__BODY_PATH;
    req.path = &pr;
    if (tc_send(t, &req, NULL) != 0)
        return 1;
    pr = (Qpc__PathRequest)QPC__PATH_REQUEST__INIT;
    pr.punch.data = key;
    pr.punch.len = QPC_KEY_LEN;
    req.path = &pr;
    if (tc_send(t, &req, NULL) != 0 || !tc_run_until(t, relay_got, REPLY_TIMEOUT_S))
        return t->closed ? 3 : 4;
    return 0;
}

static int cmd_relay(struct tc *t, const char *key_hex, size_t count)
{
    uint8_t dg[1 + QPC_KEY_LEN + 32];

    dg[0] = 0x01;
    if (qpc_key_from_hex(dg + 1, key_hex) != 0)
        return 1;
    for (size_t i = 0; i < count; i++) {
        int n = snprintf((char *)dg + 1 + QPC_KEY_LEN, 32, "ping-%zu", i);
        int rc = qpc_quic_conn_send_datagram(t->conn, dg, 1 + QPC_KEY_LEN + (size_t)n);
        if (rc != 0 && rc != QPC_ERR_AGAIN)
            return 1;
        if (count <= 10)
            tc_run_until(t, never, 0.02);
        else
            ev_run(t->loop, EVRUN_NOWAIT);
    }
    tc_run_until(t, never, 0.3);   /* let the last datagrams leave */
    printf("relayed %zu\n", count);
    return 0;
}

static int cmd_recv(struct tc *t, const struct opts *o, size_t want)
{
    struct relay_state r = { .want = want };
    Qpc__ClientRequest req = QPC__CLIENT_REQUEST__INIT;
    Qpc__PushRequest pr = QPC__PUSH_REQUEST__INIT;

    t->user = &r;
    t->on_msg = relay_msg;
    t->on_dgram = relay_dgram;
    /* A first request makes our stream known to the node, so it can send PunchNotices. */
    req.body_case = QPC__CLIENT_REQUEST__BODY_PUSH;
    req.push = &pr;
    if (tc_send(t, &req, NULL) != 0 || !tc_run_until(t, relay_got, REPLY_TIMEOUT_S))
        return t->closed ? 3 : 4;
    printf("ready\n");
    fflush(stdout);
    if (!tc_run_until(t, relay_all, o->timeout))
        return t->closed ? 3 : 4;
    return 0;
}

/* --- hold ------------------------------------------------------------------------------ */

static bool never(struct tc *t);

static int cmd_hold(struct tc *first, const uint8_t *sk, const char *server, size_t count)
{
    struct tc *conns = calloc(count ? count : 1, sizeof(*conns));
    size_t admitted = 0;

    if (conns == NULL)
        return 1;
    for (size_t i = 0; i < count; i++) {
        if (tc_connect(&conns[i], first->loop, sk, server, 10.0) != 0 && !conns[i].closed)
            break;
        tc_run_until(&conns[i], never, 0.1);   /* a refusal follows the handshake */
    }
    tc_run_until(first, never, 0.3);
    for (size_t i = 0; i < count; i++) {
        if (conns[i].ep != NULL && !conns[i].closed)
            admitted++;
        else if (conns[i].closed)
            printf("refused %s\n", conns[i].close_reason);
    }
    printf("admitted %zu\n", admitted);
    fflush(stdout);
    for (size_t i = 0; i < count; i++)
        tc_free(&conns[i]);
    free(conns);
    return 0;
}

/* --- garbage ------------------------------------------------------------------------------- */

struct garbage_state {
    size_t answers;
};

static void garbage_msg(struct tc *t, const Qpc__ServerMessage *m)
{
    struct garbage_state *g = t->user;

    if (m->body_case == QPC__SERVER_MESSAGE__BODY_ERROR)
        g->answers++;
}

static int cmd_garbage(struct tc *t, const struct opts *o, size_t count)
{
    static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0xff, 0x0f };   /* a bad varint */
    /* request_id 7 and field 99 = 1: a well-formed request of a kind no node knows */
    static const uint8_t unknown[] = { 0x08, 0x07, 0x98, 0x06, 0x01 };
    const uint8_t *frame = o->unknown_kind ? unknown : junk;
    size_t frame_len = o->unknown_kind ? sizeof(unknown) : sizeof(junk);
    struct garbage_state g = { 0 };
    size_t sent = 0;

    t->user = &g;
    t->on_msg = garbage_msg;
    while (sent < count && !t->closed) {
        int rc = qpc_quic_conn_send_frame(t->conn, t->sid, frame, frame_len);
        if (rc == QPC_ERR_AGAIN) {
            tc_run_until(t, never, 0.01);
            continue;
        }
        if (rc != 0)
            break;
        sent++;
        if (sent % 64 == 0)
            ev_run(t->loop, EVRUN_NOWAIT);
    }
    tc_run_until(t, never, o->timeout);   /* returns at once when the node closes */
    printf("sent %zu\nanswers %zu\n", sent, g.answers);
    if (t->closed)
        printf("closed %s\n", t->close_reason);
    fflush(stdout);
    return t->closed ? 0 : 4;
}

static void usage(void)
{
    fprintf(stderr, "usage: qpc_testclient -i ID.json [-S HOST:PORT] "
                    "(id | send KEY[@DOMAIN] COUNT | fetch | ack SEQ... | listen COUNT |\n"
                    "   peer KEY | relay KEY COUNT | recv COUNT | garbage COUNT | hold COUNT)\n"
                    "  options: -b BATCH -z BYTES -Z BYTES -t TTL -w WINDOW -F -R -a -p PAGE -T SECONDS\n");
}

int main(int argc, char **argv)
{
    struct opts o = { .server = "127.0.0.1:7000", .batch = 1, .size = 16, .window = 64,
                      .page = 500, .ttl = 3600, .timeout = 30.0 };
    struct qpc_identity *id = NULL;
    struct tc t = { 0 };
    char err[512];
    const char *cmd;
    int opt, ret = 1;

    while ((opt = getopt(argc, argv, "i:S:b:z:Z:t:w:FRUap:T:")) != -1) {
        switch (opt) {
        case 'i': o.identity = optarg; break;
        case 'S': o.server = optarg; break;
        case 'b': o.batch = strtoul(optarg, NULL, 10); break;
        case 'z': o.size = strtoul(optarg, NULL, 10); break;
        case 'Z': o.envelope_size = strtoul(optarg, NULL, 10); break;
        case 't': o.ttl = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'w': o.window = strtoul(optarg, NULL, 10); break;
        case 'F': o.forge = true; break;
        case 'R': o.wrong_recipient = true; break;
        case 'U': o.unknown_kind = true; break;
        case 'a': o.ack = true; break;
        case 'p': o.page = strtoul(optarg, NULL, 10); break;
        case 'T': o.timeout = strtod(optarg, NULL); break;
        default: usage(); return 1;
        }
    }
    if (o.identity == NULL || optind >= argc || o.batch == 0 || o.window == 0) {
        usage();
        return 1;
    }
    cmd = argv[optind++];
    if (sodium_init() < 0 ||
        qpc_identity_load_or_create(o.identity, &id, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "testclient: identity: %s\n", err);
        return 1;
    }
    if (strcmp(cmd, "id") == 0) {
        printf("%s\n", qpc_identity_peer_id(id));
        ret = 0;
        goto out;
    }
    if (tc_connect(&t, EV_DEFAULT, qpc_identity_secret_key(id), o.server, 10.0) != 0) {
        ret = 3;
        goto out;
    }
    if (strcmp(cmd, "send") == 0 && optind + 2 == argc)
        ret = cmd_send(&t, qpc_identity_secret_key(id), &o, argv[optind],
                       strtoul(argv[optind + 1], NULL, 10));
    else if (strcmp(cmd, "fetch") == 0)
        ret = cmd_fetch(&t, &o);
    else if (strcmp(cmd, "ack") == 0)
        ret = cmd_ack(&t, argv + optind, (size_t)(argc - optind));
    else if (strcmp(cmd, "listen") == 0 && optind + 1 == argc)
        ret = cmd_listen(&t, &o, strtoul(argv[optind], NULL, 10));
    else if (strcmp(cmd, "peer") == 0 && optind + 1 == argc)
        ret = cmd_peer(&t, argv[optind]);
    else if (strcmp(cmd, "punch") == 0 && optind + 1 <= argc)
        ret = cmd_punch(&t, argv[optind], argv + optind + 1, (size_t)(argc - optind - 1));
    else if (strcmp(cmd, "hold") == 0 && optind + 1 == argc)
        ret = cmd_hold(&t, qpc_identity_secret_key(id), o.server, strtoul(argv[optind], NULL, 10));
    else if (strcmp(cmd, "garbage") == 0 && optind + 1 == argc)
        ret = cmd_garbage(&t, &o, strtoul(argv[optind], NULL, 10));
    else if (strcmp(cmd, "relay") == 0 && optind + 2 == argc)
        ret = cmd_relay(&t, argv[optind], strtoul(argv[optind + 1], NULL, 10));
    else if (strcmp(cmd, "recv") == 0 && optind + 1 == argc)
        ret = cmd_recv(&t, &o, strtoul(argv[optind], NULL, 10));
    else
        usage();
    if (t.closed && ret == 0 && strcmp(cmd, "garbage") != 0)
        ret = 3;
out:
    tc_free(&t);
    qpc_identity_free(id);
    return ret;
}
