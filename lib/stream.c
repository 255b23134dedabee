/*
 * stream.c: the streams of a QUIC connection: frames in, chunk queues out, back-pressure.
 *
 * The one idea: stream data handed to ngtcp2 must stay put until the peer acknowledges
 * it (ngtcp2 retransmits from our memory), so each stream keeps the frames it sends in a
 * queue of chunks that is trimmed only as ACKs arrive. The bytes queued but not yet
 * acknowledged are what back-pressure is measured in: at stream_buffer a send returns
 * QPC_ERR_AGAIN, and on_writable follows once the queue drained to half. Small frames
 * are packed into shared chunks, so 10,000 tiny messages are not 10,000 allocations.
 * Incoming bytes go straight into the stream's frame decoder (wire.h) and the flow
 * control windows are extended by what was consumed.
 *
 * A protobuf message (qpc_quic_conn_send_message) is packed straight into the queue
 * behind its frame header. quic.c's writer asks for what to send next
 * (qpc_stream_next_out) and tells what ngtcp2 took; nothing here writes packets.
 */
#include <stdlib.h>
#include <string.h>

#include <ngtcp2/ngtcp2.h>
/* Stream ids arrive in packets: keyed hash, and no exit() when an insert cannot
 * allocate. */
#define HASH_NONFATAL_OOM 1
#include "qpc/uthash_keyed.h"
#include <utlist.h>

#include "qpc/error.h"
#include "qpc/quic.h"
#include "qpc/wire.h"
#include "quic_internal.h"

#define CHUNK_MIN 16384                  /* small frames are packed into chunks this big */

struct chunk {
    struct chunk *next;
    size_t len, cap;
    uint8_t data[];
};

struct stream {
    int64_t id;
    UT_hash_handle hh;
    struct qpc_wire_decoder dec;
    struct chunk *head, *tail;           /* queued bytes, not yet acknowledged */
    uint64_t head_off;                   /* stream offset of head->data[0] */
    uint64_t acked, end;                 /* acknowledged up to / queued up to */
    struct chunk *cur;                   /* next byte not yet given to ngtcp2 */
    size_t cur_pos;
    bool want_writable;
    bool in_ready;
    bool fin_queued, fin_sent;           /* our direction ended (after the queue) */
    bool peer_ended;                     /* on_stream_end was reported */
    uint64_t frame_began;                /* ngtcp2 time the half-received frame began; 0 */
    unsigned blocked_round;
    struct stream *rprev, *rnext;        /* the connection's list of streams to send */
};

static struct stream *stream_get(struct qpc_quic_conn *c, int64_t id, bool create)
{
    struct stream *s;

    HASH_FIND(hh, c->streams, &id, sizeof(id), s);
    if (s != NULL || !create)
        return s;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->id = id;
    qpc_wire_decoder_init(&s->dec, c->ep->max_frame);
    HASH_ADD(hh, c->streams, id, sizeof(s->id), s);
    if (s->hh.tbl == NULL) {
        qpc_wire_decoder_clear(&s->dec);
        free(s);
        return NULL;
    }
    return s;
}

static void stream_free(struct stream *s)
{
    struct chunk *ch, *tmp;

    LL_FOREACH_SAFE(s->head, ch, tmp)
        free(ch);
    qpc_wire_decoder_clear(&s->dec);
    free(s);
}

static void stream_ready(struct qpc_quic_conn *c, struct stream *s, bool ready)
{
    if (ready && !s->in_ready)
        DL_APPEND2(c->ready, s, rprev, rnext);
    else if (!ready && s->in_ready)
        DL_DELETE2(c->ready, s, rprev, rnext);
    s->in_ready = ready;
}

static void stream_remove(struct qpc_quic_conn *c, struct stream *s)
{
    stream_ready(c, s, false);
    HASH_DEL(c->streams, s);
    stream_free(s);
}

void qpc_stream_free_all(struct qpc_quic_conn *c)
{
    struct stream *s, *tmp;

    HASH_ITER(hh, c->streams, s, tmp) {
        HASH_DEL(c->streams, s);
        stream_free(s);
    }
    c->ready = NULL;
}

/* ---- sending: the chunk queue ------------------------------------------------------- */

/* Fills v with the bytes not yet handed to ngtcp2; returns the count of entries. */
static size_t stream_unsent_vec(struct stream *s, ngtcp2_vec *v, size_t max)
{
    struct chunk *ch = s->cur;
    size_t n = 0, pos = s->cur_pos;

    for (; ch != NULL && n < max; ch = ch->next, pos = 0) {
        v[n].base = ch->data + pos;
        v[n].len = ch->len - pos;
        n++;
    }
    return n;
}

static void stream_advance(struct qpc_quic_conn *c, struct stream *s, size_t n)
{
    while (n > 0 && s->cur != NULL) {
        size_t take = s->cur->len - s->cur_pos;

        if (take > n)
            take = n;
        s->cur_pos += take;
        n -= take;
        if (s->cur_pos == s->cur->len) {
            s->cur = s->cur->next;
            s->cur_pos = 0;
        }
    }
    if (s->cur == NULL && (!s->fin_queued || s->fin_sent))
        stream_ready(c, s, false);
}

static void stream_acked(struct stream *s, uint64_t upto)
{
    if (upto > s->acked)
        s->acked = upto;
    while (s->head != NULL && s->head != s->cur && s->head_off + s->head->len <= s->acked) {
        struct chunk *ch = s->head;

        s->head_off += ch->len;
        s->head = ch->next;
        if (s->tail == ch)
            s->tail = NULL;
        free(ch);
    }
}

/* Appends a frame header for a body of len bytes to s's queue and returns where the
 * body goes (the caller fills all len bytes before anything else runs), or NULL when
 * out of memory (then nothing was queued). */
/* Appends need bytes to the stream's queue and returns where they go. */
static uint8_t *stream_append(struct qpc_quic_conn *c, struct stream *s, size_t need)
{
    struct chunk *ch = s->tail;
    uint8_t *at;

    /* Small frames are packed into the tail chunk: bytes already handed to ngtcp2
     * never move, so appending behind them is safe. */
    if (ch != NULL && ch->cap - ch->len >= need) {
        if (s->cur == NULL) {
            s->cur = ch;
            s->cur_pos = ch->len;
        }
    } else {
        size_t cap = need > CHUNK_MIN ? need : CHUNK_MIN;

        ch = malloc(sizeof(*ch) + cap);
        if (ch == NULL)
            return NULL;
        ch->next = NULL;
        ch->len = 0;
        ch->cap = cap;
        if (s->tail != NULL)
            s->tail->next = ch;
        else
            s->head = ch;
        s->tail = ch;
        if (s->head == ch)
            s->head_off = s->end;
        if (s->cur == NULL) {
            s->cur = ch;
            s->cur_pos = 0;
        }
    }
    at = ch->data + ch->len;
    ch->len += need;
    s->end += need;
    stream_ready(c, s, true);
    return at;
}

/* Queues one frame's header and returns where its len bytes of body go. */
static uint8_t *stream_reserve(struct qpc_quic_conn *c, struct stream *s, size_t len)
{
    uint8_t *at = stream_append(c, s, QPC_WIRE_HEADER_LEN + len);

    if (at == NULL)
        return NULL;
    qpc_wire_header_encode(at, (uint32_t)len);
    return at + QPC_WIRE_HEADER_LEN;
}

/* ---- the writer's side (quic.c's conn_write) ------------------------------------------ */

void qpc_stream_next_out(struct qpc_quic_conn *c, struct qpc_stream_out *o)
{
    struct stream *s;

    o->s = NULL;
    o->id = -1;
    o->nv = 0;
    o->total = 0;
    o->flags = 0;
    o->want_fin = false;
    DL_FOREACH2(c->ready, s, rnext)
        if (s->blocked_round != c->round)
            break;
    if (s == NULL)
        return;
    o->s = s;
    o->id = s->id;
    o->nv = stream_unsent_vec(s, o->v, QPC_STREAM_OUT_VECS);
    o->flags = NGTCP2_WRITE_STREAM_FLAG_MORE;
    /* FIN rides with the last queued bytes, or alone. */
    o->want_fin = s->fin_queued && !s->fin_sent &&
                  (o->nv < QPC_STREAM_OUT_VECS || s->cur == NULL);
    if (o->want_fin)
        o->flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
    for (size_t i = 0; i < o->nv; i++)
        o->total += o->v[i].len;
}

void qpc_stream_out_done(struct qpc_quic_conn *c, const struct qpc_stream_out *o,
                         size_t written)
{
    if (o->want_fin && written == o->total)
        o->s->fin_sent = true;
    stream_advance(c, o->s, written);
}

void qpc_stream_out_blocked(struct qpc_quic_conn *c, const struct qpc_stream_out *o)
{
    o->s->blocked_round = c->round;
}

void qpc_stream_notify_writable(struct qpc_quic_conn *c)
{
    struct stream *s, *tmp;

    c->writable_check = false;
    HASH_ITER(hh, c->streams, s, tmp) {
        if (c->ending)
            return;
        if (s->want_writable && s->end - s->acked < c->ep->stream_buffer / 2) {
            s->want_writable = false;
            if (c->ep->cb.on_writable != NULL)
                c->ep->cb.on_writable(c, s->id, c->user);
        }
    }
}

/* ---- ngtcp2 callbacks ------------------------------------------------------------------ */

/* The peer will send nothing more on the stream (FIN or RESET_STREAM): tell once. */
static void stream_peer_ended(struct qpc_quic_conn *c, int64_t stream_id)
{
    struct stream *s = stream_get(c, stream_id, false);

    if (s == NULL || s->peer_ended)
        return;
    s->peer_ended = true;
    if (c->ep->cb.on_stream_end != NULL)
        c->ep->cb.on_stream_end(c, stream_id, c->user);
}

int qpc_stream_recv_data_cb(ngtcp2_conn *qc, uint32_t flags, int64_t stream_id,
                            uint64_t offset, const uint8_t *data, size_t datalen,
                            void *user_data, void *stream_user_data)
{
    struct qpc_quic_conn *c = user_data;
    struct qpc_quic_endpoint *ep = c->ep;
    struct stream *s;
    const uint8_t *frame;
    size_t used, flen, pos = 0;
    int rv;

    ngtcp2_conn_extend_max_stream_offset(qc, stream_id, datalen);
    ngtcp2_conn_extend_max_offset(qc, datalen);
    if (c->ending)
        return 0;
    s = stream_get(c, stream_id, true);
    if (s == NULL)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    while (pos < datalen && !c->ending) {
        rv = qpc_wire_decoder_feed(&s->dec, data + pos, datalen - pos, &used, &frame, &flen);
        if (rv < 0) {
            qpc_conn_end(c, rv, true, false, true, QPC_QUIC_APP_FRAME_TOO_LARGE,
                         rv == QPC_ERR_TOO_LARGE ? "frame too large" : "out of memory");
            break;
        }
        pos += used;
        if (rv == 1) {
            s->frame_began = 0;   /* the next frame's clock starts with its first byte */
            if (ep->cb.on_frame != NULL)
                ep->cb.on_frame(c, stream_id, frame, flen, c->user);
        }
    }
    if (!c->ending && s->frame_began == 0 && qpc_wire_decoder_pending(&s->dec, NULL)) {
        s->frame_began = qpc_quic_now();
        qpc_conn_mark_dirty(c);   /* the connection's timer now also waits for this */
    }
    if ((flags & NGTCP2_STREAM_DATA_FLAG_FIN) && !c->ending)
        stream_peer_ended(c, stream_id);
    return 0;
}

uint64_t qpc_stream_frame_deadline(const struct qpc_quic_conn *c)
{
    uint64_t first = UINT64_MAX;
    const struct stream *s, *tmp;

    HASH_ITER(hh, c->streams, s, tmp) {
        size_t announced = 0;
        uint64_t due;

        if (s->frame_began == 0 || s->peer_ended ||
            !qpc_wire_decoder_pending(&s->dec, &announced))
            continue;
        due = s->frame_began + c->ep->frame_timeout +
              (uint64_t)(announced / QPC_QUIC_FRAME_MIN_RATE) * NGTCP2_SECONDS;
        if (due < first)
            first = due;
    }
    return first;
}

int qpc_stream_reset_cb(ngtcp2_conn *qc, int64_t stream_id, uint64_t final_size,
                        uint64_t app_error_code, void *user_data, void *stream_user_data)
{
    stream_peer_ended(user_data, stream_id);
    return 0;
}

int qpc_stream_acked_cb(ngtcp2_conn *qc, int64_t stream_id, uint64_t offset, uint64_t datalen,
                        void *user_data, void *stream_user_data)
{
    struct qpc_quic_conn *c = user_data;
    struct stream *s = stream_get(c, stream_id, false);

    if (s != NULL) {
        stream_acked(s, offset + datalen);
        if (s->want_writable)
            c->writable_check = true;
    }
    return 0;
}

int qpc_stream_open_cb(ngtcp2_conn *qc, int64_t stream_id, void *user_data)
{
    return stream_get(user_data, stream_id, true) ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
}

int qpc_stream_close_cb(ngtcp2_conn *qc, uint32_t flags, int64_t stream_id,
                        uint64_t app_error_code, void *user_data, void *stream_user_data)
{
    struct qpc_quic_conn *c = user_data;
    struct stream *s = stream_get(c, stream_id, false);

    if (s != NULL)
        stream_remove(c, s);
    if (!ngtcp2_is_bidi_stream(stream_id))
        return 0;
    if (!ngtcp2_conn_is_local_stream(qc, stream_id))
        ngtcp2_conn_extend_max_streams_bidi(qc, 1);   /* the peer may open another */
    return 0;
}

/* ---- the public stream calls (quic.h) ------------------------------------------------- */

int qpc_quic_conn_open_stream(struct qpc_quic_conn *c, int64_t *stream_id)
{
    int64_t id;
    int rv;

    if (c->ending)
        return QPC_ERR_CLOSED;
    if (!c->handshake_done)
        return QPC_ERR_AGAIN;
    rv = ngtcp2_conn_open_bidi_stream(c->qc, &id, NULL);
    if (rv == NGTCP2_ERR_STREAM_ID_BLOCKED)
        return QPC_ERR_AGAIN;
    if (rv != 0)
        return QPC_ERR_NOMEM;
    if (stream_get(c, id, true) == NULL) {
        ngtcp2_conn_shutdown_stream(c->qc, id, 0);
        return QPC_ERR_NOMEM;
    }
    *stream_id = id;
    return 0;
}

/*
 * Queues a frame header for a body of len bytes on a stream and sets *body to where the
 * body goes; the caller fills all len bytes before anything else runs. The checks and
 * errors are qpc_quic_conn_send_frame's; on error nothing is queued. QPC_ERR_AGAIN
 * asks for on_writable.
 */
static int frame_begin(struct qpc_quic_conn *c, int64_t stream_id, size_t len, uint8_t **body)
{
    struct stream *s;

    if (c->ending)
        return QPC_ERR_CLOSED;
    if (len > c->ep->max_frame)
        return QPC_ERR_TOO_LARGE;
    s = stream_get(c, stream_id, false);
    if (s == NULL)
        return QPC_ERR_NOT_FOUND;
    if (s->fin_queued)
        return QPC_ERR_CLOSED;
    if (s->end - s->acked >= c->ep->stream_buffer) {
        s->want_writable = true;
        return QPC_ERR_AGAIN;
    }
    *body = stream_reserve(c, s, len);
    if (*body == NULL)
        return QPC_ERR_NOMEM;
    qpc_conn_mark_dirty(c);   /* written when the loop next turns, after the body */
    return 0;
}

int qpc_quic_conn_send_frame(struct qpc_quic_conn *c, int64_t stream_id, const uint8_t *data,
                             size_t len)
{
    uint8_t *body;
    int ret = frame_begin(c, stream_id, len, &body);

    if (ret == 0 && len > 0)
        memcpy(body, data, len);
    return ret;
}

int qpc_stream_queue_raw(struct qpc_quic_conn *c, int64_t stream_id, const uint8_t *data,
                         size_t len)
{
    struct stream *s = c->ending ? NULL : stream_get(c, stream_id, false);
    uint8_t *at;

    if (s == NULL || s->fin_queued || len == 0)
        return QPC_ERR_INVALID;
    at = stream_append(c, s, len);
    if (at == NULL)
        return QPC_ERR_NOMEM;
    memcpy(at, data, len);
    qpc_conn_mark_dirty(c);
    return 0;
}

int qpc_quic_conn_send_message(struct qpc_quic_conn *c, int64_t stream_id,
                               const ProtobufCMessage *msg)
{
    uint8_t *body;
    size_t len;
    int ret;

    if (msg == NULL)
        return QPC_ERR_INVALID;
    len = protobuf_c_message_get_packed_size(msg);
    /* Packed in place, behind its frame header: no buffer of the caller's, no copy. */
    ret = frame_begin(c, stream_id, len, &body);
    if (ret == 0 && len > 0)
        protobuf_c_message_pack(msg, body);
    return ret;
}

int qpc_quic_pack_message(const ProtobufCMessage *msg, uint8_t **out, size_t *len)
{
    size_t n;

    if (msg == NULL || out == NULL || len == NULL)
        return QPC_ERR_INVALID;
    n = protobuf_c_message_get_packed_size(msg);
    *out = malloc(n > 0 ? n : 1);   /* a message of defaults packs to nothing */
    if (*out == NULL)
        return QPC_ERR_NOMEM;
    *len = protobuf_c_message_pack(msg, *out);
    return 0;
}

int qpc_quic_conn_end_stream(struct qpc_quic_conn *c, int64_t stream_id)
{
    struct stream *s;

    if (c->ending)
        return QPC_ERR_CLOSED;
    s = stream_get(c, stream_id, false);
    if (s == NULL)
        return QPC_ERR_NOT_FOUND;
    if (!s->fin_queued) {
        s->fin_queued = true;
        stream_ready(c, s, true);
        qpc_conn_mark_dirty(c);
    }
    return 0;
}
