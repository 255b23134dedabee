/*
 * wire.c: the incremental decoder and encoder for length-prefixed frames.
 *
 * The common case on a fast stream is that a whole frame sits inside one piece of
 * stream data; then the decoder hands out a pointer into that piece and copies
 * nothing. Only a frame split across pieces is assembled in the decoder's buffer. The
 * buffer grows with the bytes that actually arrived (doubling, capped at the announced
 * length, which is checked against max_frame first), so a peer that announces a large
 * frame and then sends nothing costs us a header, not max_frame bytes per stream.
 */
#include <stdlib.h>
#include <string.h>

#include "qpc/encoding.h"
#include "qpc/error.h"
#include "qpc/wire.h"

/* A buffer grown for one big frame is given back once it is no longer needed. */
#define KEEP_BUF_MAX ((size_t)64 * 1024)
/* First allocation for a split frame; doubling from here reaches 1 MiB in 8 steps. */
#define BUF_MIN ((size_t)4096)

void qpc_wire_decoder_init(struct qpc_wire_decoder *d, size_t max_frame)
{
    memset(d, 0, sizeof(*d));
    d->max_frame = max_frame ? max_frame : QPC_WIRE_FRAME_MAX_DEFAULT;
}

void qpc_wire_decoder_clear(struct qpc_wire_decoder *d)
{
    if (d == NULL)
        return;
    free(d->buf);
    memset(d, 0, sizeof(*d));
}

void qpc_wire_header_encode(uint8_t header[static QPC_WIRE_HEADER_LEN], uint32_t len)
{
    qpc_put_u32(header, len);
}

static size_t header_decode(const uint8_t h[static QPC_WIRE_HEADER_LEN])
{
    return ((size_t)h[0] << 24) | ((size_t)h[1] << 16) | ((size_t)h[2] << 8) | h[3];
}

/*
 * Makes room for need bytes of the current frame body (need <= d->frame_len). Grows
 * geometrically so a frame arriving in many small pieces costs O(log n) reallocs, and
 * never beyond the announced length.
 */
static int reserve(struct qpc_wire_decoder *d, size_t need)
{
    uint8_t *nb;
    size_t cap;

    if (need <= d->buf_cap)
        return 0;
    cap = d->buf_cap < BUF_MIN ? BUF_MIN : d->buf_cap;
    while (cap < need && cap <= d->frame_len / 2)
        cap *= 2;
    if (cap < need || cap > d->frame_len)
        cap = d->frame_len;
    nb = realloc(d->buf, cap);
    if (nb == NULL)
        return QPC_ERR_NOMEM;
    d->buf = nb;
    d->buf_cap = cap;
    return 0;
}

bool qpc_wire_decoder_pending(const struct qpc_wire_decoder *d, size_t *announced)
{
    bool header_done = d->header_have == QPC_WIRE_HEADER_LEN;

    if (announced != NULL)
        *announced = header_done ? d->frame_len : 0;
    return !d->failed && d->header_have > 0;
}

int qpc_wire_decoder_feed(struct qpc_wire_decoder *d, const uint8_t *data, size_t len,
                          size_t *consumed, const uint8_t **frame, size_t *frame_len)
{
    size_t used = 0, take;
    int ret = 0;

    *consumed = 0;
    if (d->failed)
        return QPC_ERR_TOO_LARGE;
    /* A previous frame is gone now: drop an oversized assembly buffer. */
    if (d->header_have == 0 && d->buf_cap > KEEP_BUF_MAX) {
        free(d->buf);
        d->buf = NULL;
        d->buf_cap = 0;
    }
    if (d->header_have < QPC_WIRE_HEADER_LEN) {
        take = QPC_WIRE_HEADER_LEN - d->header_have;
        if (take > len)
            take = len;
        memcpy(d->header + d->header_have, data, take);
        d->header_have += take;
        used += take;
        if (d->header_have < QPC_WIRE_HEADER_LEN)
            goto out;
        d->frame_len = header_decode(d->header);
        d->buf_have = 0;
        if (d->frame_len > d->max_frame) {
            d->failed = 1;
            ret = QPC_ERR_TOO_LARGE;
            goto out;
        }
        /* Whole body already here: hand out a pointer into the caller's data. */
        if (len - used >= d->frame_len) {
            *frame = data + used;
            *frame_len = d->frame_len;
            used += d->frame_len;
            d->header_have = 0;
            ret = 1;
            goto out;
        }
    }
    take = d->frame_len - d->buf_have;
    if (take > len - used)
        take = len - used;
    if (take > 0) {
        ret = reserve(d, d->buf_have + take);
        if (ret < 0)
            goto out;
        memcpy(d->buf + d->buf_have, data + used, take);
    }
    d->buf_have += take;
    used += take;
    if (d->buf_have == d->frame_len) {
        *frame = d->buf;
        *frame_len = d->frame_len;
        d->header_have = 0;
        ret = 1;
    }
out:
    *consumed = used;
    return ret;
}

int qpc_wire_frame_encode(uint8_t **out, size_t *out_len, const uint8_t *body, size_t len,
                          size_t max_frame)
{
    uint8_t *buf;

    if (max_frame == 0)
        max_frame = QPC_WIRE_FRAME_MAX_DEFAULT;
    if (len > max_frame || len > QPC_WIRE_FRAME_MAX_LIMIT)
        return QPC_ERR_TOO_LARGE;
    buf = malloc(len + QPC_WIRE_HEADER_LEN);
    if (buf == NULL)
        return QPC_ERR_NOMEM;
    qpc_wire_header_encode(buf, (uint32_t)len);
    if (len > 0)
        memcpy(buf + QPC_WIRE_HEADER_LEN, body, len);
    *out = buf;
    *out_len = len + QPC_WIRE_HEADER_LEN;
    return 0;
}
