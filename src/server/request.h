/*
 * request.h: the node's first look at every request a peer sends it: decoding, the
 * shape of the request and its caps, before any service spends work on it.
 *
 * The one idea: a request is untrusted bytes until it passed here, and passing costs
 * at most a bounded amount of memory and time whatever the bytes are. Decoding runs in
 * an arena whose total is a small multiple of the frame (request_arena_init), so a
 * frame of a million empty items fails to decode instead of becoming a million structs;
 * a request that decodes is checked against the caps on its repeated fields (items per
 * batch, seqs per ack, envelopes per relayed broadcast) before a service makes one
 * context per item. The caps are far above what real clients and nodes send (a fetch
 * page of seqs, the batches federation.c sends), so only a broken or hostile peer
 * meets them. Everything here is pure (no sockets, no node, time is an argument), so
 * the fuzz targets fuzz/fuzz_server_request.c and fuzz/fuzz_federation.c drive it
 * directly; docs/protocol.md lists the caps.
 */
#ifndef QPC_SERVER_REQUEST_H
#define QPC_SERVER_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qpc/envelope.h"
#include "qpc/pbarena.h"
#include "qpc/proto.h"

#define REQUEST_BATCH_MAX 1000u        /* items per BatchEnqueueRequest and per
                                        * RelayEnqueueRequest (federation.c sends at most
                                        * this many; a benchmark batch is 500) */
#define REQUEST_ACK_SEQS_MAX 10000u    /* seqs per AckRequest: one full fetch page */
#define REQUEST_BROADCASTS_MAX 64u     /* envelopes per RelayBroadcastRequest (what
                                        * federation.c puts in one) */
#define REQUEST_DOMAIN_ROUTES_MAX 1025u /* routes per DomainRouteUpdate: the sender's own
                                        * domain and federation.c's ROUTES_MAX learned */
#define REQUEST_RELAY_TAG 0x01
#define REQUEST_RELAY_HEADER 33u       /* tag + 32-byte key before a relayed packet */

/* Why a request was refused; kinds are counted and logged apart (client_service.c). */
enum request_problem {
    REQUEST_UNDECODABLE,           /* not the expected message, or above the decode budget */
    REQUEST_UNKNOWN,               /* decoded, but names no request this node knows */
    REQUEST_EMPTY,                 /* a batch without items */
    REQUEST_TOO_MANY,              /* a repeated field above its cap */
    REQUEST_PROBLEM_COUNT
};

struct request_refusal {
    enum request_problem problem;
    uint64_t request_id;           /* the request's id when it decoded, else 0 */
    Qpc__Status status;            /* the status to answer with */
    char detail[128];              /* what was wrong, for the answer and the log */
};

/* The memory one request may decode into: a buffer of about twice the frame, and as
 * much again from malloc at most. */
struct request_arena {
    struct qpc_pbarena pb;
    void *buf;                     /* owned */
};

/* Sets a up for a frame of len bytes. Without memory for the buffer it still works,
 * with the heap limit alone. Free with request_arena_clear. */
void request_arena_init(struct request_arena *a, size_t len);
void request_arena_clear(struct request_arena *a);

/*
 * Decodes a ClientRequest frame (data is only read) into a's memory and checks its
 * shape and caps. Returns the request, valid until it is freed with
 * qpc__client_request__free_unpacked(req, &a->pb.allocator) and a is cleared; or NULL
 * with *why filled (UNDECODABLE, UNKNOWN, EMPTY batch, TOO_MANY items or seqs).
 */
Qpc__ClientRequest *request_client_decode(const uint8_t *data, size_t len,
                                          struct request_arena *a,
                                          struct request_refusal *why);

/*
 * The same for a FederationRequest from another node: relay_enqueue must hold 1 ..
 * REQUEST_BATCH_MAX items, relay_broadcast at most REQUEST_BROADCASTS_MAX envelopes.
 * Free with qpc__federation_request__free_unpacked(req, &a->pb.allocator).
 */
Qpc__FederationRequest *request_federation_decode(const uint8_t *data, size_t len,
                                                  struct request_arena *a,
                                                  struct request_refusal *why);

/*
 * A FederationResponse a node answered our relay_enqueue with: at most
 * REQUEST_BATCH_MAX statuses. Free with qpc__federation_response__free_unpacked(r,
 * &a->pb.allocator).
 */
Qpc__FederationResponse *request_federation_response_decode(const uint8_t *data, size_t len,
                                                            struct request_arena *a,
                                                            struct request_refusal *why);

/* What a sender does with an outbox row after the remote node's status for it. */
enum request_fed_outcome {
    REQUEST_FED_DELIVERED,         /* OK: stored there; the row goes */
    REQUEST_FED_RETRY,             /* QUEUE_FULL, INTERNAL, DEFERRED or no status: later */
    REQUEST_FED_REFUSED,           /* any other status: no retry can cure it; the row goes */
};
enum request_fed_outcome request_fed_outcome_of(int status);

/*
 * Checks one EnqueueItem, cheapest first: shape, size (max_envelope), strict envelope
 * decode, recipient field equal to the envelope's, sender equal to `sender` (the
 * authenticated client; NULL for a node, trusted by mTLS), TTL within max_ttl_s and not
 * over at now_ms, not created more than QPC_CLOCK_SKEW_MS ahead. Returns -1 when the
 * item may be staged, with the envelope decoded into *env (the caller clears it), or
 * the Qpc__Status to answer (then *env is cleared).
 */
int request_check_item(const Qpc__EnqueueItem *item, const uint8_t *sender, uint64_t now_ms,
                       size_t max_envelope, uint64_t max_ttl_s, struct qpc_envelope *env);

/*
 * A broadcast's bytes before dedup and signature (broadcast.c): not empty, within
 * max_envelope, strict decode, a topic and no recipient. Returns -1 with *env decoded
 * (the caller clears it) or the Qpc__Status to answer.
 */
int request_check_broadcast(const uint8_t *data, size_t len, size_t max_envelope,
                            struct qpc_envelope *env);

/*
 * A relay datagram from a client: 0x01 || destination key (32) || packet of at least
 * one byte, within max_len. Returns the destination key (pointing into data) or NULL.
 */
const uint8_t *request_relay_destination(const uint8_t *data, size_t len, size_t max_len);

#endif
