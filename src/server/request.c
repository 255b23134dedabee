/*
 * request.c: decoding and first checks of the requests peers send the node (request.h
 * says why every one of them passes here before any service sees it).
 *
 * The decode budget: protobuf-c allocates per field as it unpacks, so what a frame
 * costs depends on its content, not its size (each empty repeated item is a struct of
 * about 80 bytes and a pointer, for 2 bytes on the wire). The arena holds up to
 * 2 * len + 4 KiB and may take as much again plus 128 KiB from malloc; a frame that
 * needs more is refused as undecodable. Real requests need about len plus 100 bytes per
 * item (an envelope alone is above 150 bytes), and an ack 8 bytes per seq.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qpc/error.h"
#include "request.h"

#define ARENA_SLACK 4096u
#define HEAP_SLACK (128u * 1024)   /* an ack of 10,000 one-byte seqs needs 80 KB */

void request_arena_init(struct request_arena *a, size_t len)
{
    size_t cap = len < SIZE_MAX / 4 ? 2 * len + ARENA_SLACK : 0;

    a->buf = cap > 0 ? malloc(cap) : NULL;
    qpc_pbarena_init(&a->pb, a->buf, a->buf != NULL ? cap : 0);
    qpc_pbarena_set_heap_max(&a->pb, cap > 0 ? cap + HEAP_SLACK : HEAP_SLACK);
}

void request_arena_clear(struct request_arena *a)
{
    free(a->buf);
    a->buf = NULL;
}

static void refuse(struct request_refusal *why, enum request_problem problem, uint64_t rid,
                   Qpc__Status status, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void refuse(struct request_refusal *why, enum request_problem problem, uint64_t rid,
                   Qpc__Status status, const char *fmt, ...)
{
    va_list ap;

    why->problem = problem;
    why->request_id = rid;
    why->status = status;
    va_start(ap, fmt);
    vsnprintf(why->detail, sizeof(why->detail), fmt, ap);
    va_end(ap);
}

Qpc__ClientRequest *request_client_decode(const uint8_t *data, size_t len,
                                          struct request_arena *a,
                                          struct request_refusal *why)
{
    Qpc__ClientRequest *req = qpc__client_request__unpack(&a->pb.allocator, len, data);
    size_t n;

    if (req == NULL) {
        refuse(why, REQUEST_UNDECODABLE, 0, QPC__STATUS__STATUS_INVALID,
               "request is not a ClientRequest");
        return NULL;
    }
    switch (req->body_case) {
    case QPC__CLIENT_REQUEST__BODY_ENQUEUE:
    case QPC__CLIENT_REQUEST__BODY_FETCH:
    case QPC__CLIENT_REQUEST__BODY_PUSH:
    case QPC__CLIENT_REQUEST__BODY_PEER_INFO:
    case QPC__CLIENT_REQUEST__BODY_BROADCAST:
    case QPC__CLIENT_REQUEST__BODY_ANNOUNCE:   /* bounded by its shape (announce.h) */
        return req;
    case QPC__CLIENT_REQUEST__BODY_BATCH_ENQUEUE:
        n = req->batch_enqueue->n_items;
        if (n == 0)
            refuse(why, REQUEST_EMPTY, req->request_id, QPC__STATUS__STATUS_INVALID,
                   "empty batch");
        else if (n > REQUEST_BATCH_MAX)
            refuse(why, REQUEST_TOO_MANY, req->request_id, QPC__STATUS__STATUS_TOO_LARGE,
                   "batch of %zu items is above this node's limit of %u per request", n,
                   REQUEST_BATCH_MAX);
        else
            return req;
        break;
    case QPC__CLIENT_REQUEST__BODY_PATH:
        n = req->path->n_candidates;
        if (n <= REQUEST_CANDIDATES_MAX)
            return req;
        refuse(why, REQUEST_TOO_MANY, req->request_id, QPC__STATUS__STATUS_TOO_LARGE,
               "path request of %zu candidates is above this node's limit of %u", n,
               REQUEST_CANDIDATES_MAX);
        break;
    case QPC__CLIENT_REQUEST__BODY_ACK:
        n = req->ack->n_seqs;
        if (n <= REQUEST_ACK_SEQS_MAX)
            return req;
        refuse(why, REQUEST_TOO_MANY, req->request_id, QPC__STATUS__STATUS_TOO_LARGE,
               "ack of %zu seqs is above this node's limit of %u per request", n,
               REQUEST_ACK_SEQS_MAX);
        break;
    default:
        refuse(why, REQUEST_UNKNOWN, req->request_id, QPC__STATUS__STATUS_INVALID,
               "unknown request");
        break;
    }
    qpc__client_request__free_unpacked(req, &a->pb.allocator);
    return NULL;
}

Qpc__FederationRequest *request_federation_decode(const uint8_t *data, size_t len,
                                                  struct request_arena *a,
                                                  struct request_refusal *why)
{
    Qpc__FederationRequest *req = qpc__federation_request__unpack(&a->pb.allocator, len, data);
    size_t n;

    if (req == NULL) {
        refuse(why, REQUEST_UNDECODABLE, 0, QPC__STATUS__STATUS_INVALID,
               "request is not a FederationRequest");
        return NULL;
    }
    switch (req->body_case) {
    case QPC__FEDERATION_REQUEST__BODY_ANNOUNCE:
        return req;
    case QPC__FEDERATION_REQUEST__BODY_RELAY_ENQUEUE:
        n = req->relay_enqueue->n_items;
        if (n == 0)
            refuse(why, REQUEST_EMPTY, req->request_id, QPC__STATUS__STATUS_INVALID,
                   "relay_enqueue without items");
        else if (n > REQUEST_BATCH_MAX)
            refuse(why, REQUEST_TOO_MANY, req->request_id, QPC__STATUS__STATUS_TOO_LARGE,
                   "relay_enqueue of %zu items is above the limit of %u per request", n,
                   REQUEST_BATCH_MAX);
        else
            return req;
        break;
    case QPC__FEDERATION_REQUEST__BODY_RELAY_BROADCAST:
        n = req->relay_broadcast->n_envelopes;
        if (n <= REQUEST_BROADCASTS_MAX)
            return req;
        refuse(why, REQUEST_TOO_MANY, req->request_id, QPC__STATUS__STATUS_TOO_LARGE,
               "relay_broadcast of %zu envelopes is above the limit of %u per request", n,
               REQUEST_BROADCASTS_MAX);
        break;
    case QPC__FEDERATION_REQUEST__BODY_DOMAIN_ROUTES:
        n = req->domain_routes->n_routes;
        if (n <= REQUEST_DOMAIN_ROUTES_MAX)
            return req;
        refuse(why, REQUEST_TOO_MANY, req->request_id, QPC__STATUS__STATUS_TOO_LARGE,
               "domain_routes of %zu routes is above the limit of %u per request", n,
               REQUEST_DOMAIN_ROUTES_MAX);
        break;
    default:
        refuse(why, REQUEST_UNKNOWN, req->request_id, QPC__STATUS__STATUS_INVALID,
               "unknown federation request");
        break;
    }
    qpc__federation_request__free_unpacked(req, &a->pb.allocator);
    return NULL;
}

Qpc__FederationResponse *request_federation_response_decode(const uint8_t *data, size_t len,
                                                            struct request_arena *a,
                                                            struct request_refusal *why)
{
    Qpc__FederationResponse *r = qpc__federation_response__unpack(&a->pb.allocator, len, data);

    if (r == NULL) {
        refuse(why, REQUEST_UNDECODABLE, 0, QPC__STATUS__STATUS_INVALID,
               "answer is not a FederationResponse");
        return NULL;
    }
    if (r->n_statuses <= REQUEST_BATCH_MAX)
        return r;
    refuse(why, REQUEST_TOO_MANY, r->request_id, QPC__STATUS__STATUS_TOO_LARGE,
           "answer of %zu statuses is above the limit of %u", r->n_statuses,
           REQUEST_BATCH_MAX);
    qpc__federation_response__free_unpacked(r, &a->pb.allocator);
    return NULL;
}

enum request_fed_outcome request_fed_outcome_of(int status)
{
    switch (status) {
    case QPC__STATUS__STATUS_OK:
        return REQUEST_FED_DELIVERED;
    case QPC__STATUS__STATUS_QUEUE_FULL:
    case QPC__STATUS__STATUS_INTERNAL:
    case QPC__STATUS__STATUS_DEFERRED:
        return REQUEST_FED_RETRY;   /* the remote node may take it later */
    default:
        return REQUEST_FED_REFUSED;
    }
}

int request_check_item(const Qpc__EnqueueItem *item, const uint8_t *sender, uint64_t now_ms,
                       size_t max_envelope, uint64_t max_ttl_s, struct qpc_envelope *env)
{
    int rc, st;

    memset(env, 0, sizeof(*env));
    if (item == NULL || item->recipient.len != QPC_KEY_LEN || item->envelope.len == 0)
        return QPC__STATUS__STATUS_INVALID;
    if (item->envelope.len > max_envelope)
        return QPC__STATUS__STATUS_TOO_LARGE;
    rc = qpc_envelope_decode(env, item->envelope.data, item->envelope.len);
    if (rc != 0)
        return rc == QPC_ERR_TOO_LARGE ? QPC__STATUS__STATUS_TOO_LARGE
                                       : QPC__STATUS__STATUS_INVALID;
    if (!env->has_recipient || memcmp(env->recipient, item->recipient.data, QPC_KEY_LEN) != 0)
        st = QPC__STATUS__STATUS_INVALID;
    else if (sender != NULL && memcmp(env->sender, sender, QPC_KEY_LEN) != 0)
        st = QPC__STATUS__STATUS_FORBIDDEN;
    else if (env->ttl_s > max_ttl_s || qpc_envelope_expired(env, now_ms))
        st = QPC__STATUS__STATUS_EXPIRED;
    else if (env->created_at_ms > now_ms + QPC_CLOCK_SKEW_MS)
        st = QPC__STATUS__STATUS_INVALID;
    else
        return -1;
    qpc_envelope_clear(env);
    return st;
}

int request_check_broadcast(const uint8_t *data, size_t len, size_t max_envelope,
                            struct qpc_envelope *env)
{
    int rc;

    memset(env, 0, sizeof(*env));
    if (len == 0)
        return QPC__STATUS__STATUS_INVALID;
    if (len > max_envelope)
        return QPC__STATUS__STATUS_TOO_LARGE;
    rc = qpc_envelope_decode(env, data, len);
    if (rc != 0)
        return rc == QPC_ERR_TOO_LARGE ? QPC__STATUS__STATUS_TOO_LARGE
                                       : rc == QPC_ERR_NOMEM ? QPC__STATUS__STATUS_INTERNAL
                                                             : QPC__STATUS__STATUS_INVALID;
    if (env->has_recipient || env->topic == NULL) {
        qpc_envelope_clear(env);
        return QPC__STATUS__STATUS_INVALID;   /* direct envelopes go through enqueue */
    }
    return -1;
}

const uint8_t *request_relay_destination(const uint8_t *data, size_t len, size_t max_len)
{
    if (len <= REQUEST_RELAY_HEADER || len > max_len || data[0] != REQUEST_RELAY_TAG)
        return NULL;
    return data + 1;
}
