/*
 * fuzz_server_request.c: libFuzzer target for what a node does with a client's frame
 * before any service acts on it (src/server/request.c): decode a ClientRequest in the
 * bounded arena, check its shape and caps, then the per-item checks of an enqueue or a
 * batch (strict envelope decode, recipient, sender, TTL, clock) and of a broadcast. The
 * same bytes are also tried as a relay datagram header. Nothing may crash, leak or read
 * out of bounds; whatever passes must be within the caps, and every refusal must carry
 * a kind, a status and a detail.
 * Seeds: fuzz/corpus/fuzz_server_request/ (tests/tools/qpc_fuzz_seeds.c).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "qpc/announce.h"
#include "request.h"

#define FUZZ_NOW_MS 1700000000000ull   /* the seeds were made at this time */
#define FUZZ_MAX_ENVELOPE 262144u      /* the node's default max_envelope_size */
#define FUZZ_MAX_TTL 604800u

static uint8_t sender[crypto_sign_PUBLICKEYBYTES];
static bool ready;

/* The client the seeds were signed by (seed 32 bytes 0x01), as if authenticated. */
static void setup(void)
{
    uint8_t seed[crypto_sign_SEEDBYTES], sk[crypto_sign_SECRETKEYBYTES];

    if (sodium_init() < 0)
        abort();
    memset(seed, 1, sizeof(seed));
    crypto_sign_seed_keypair(sender, sk, seed);
    ready = true;
}

static void check_item(const Qpc__EnqueueItem *item)
{
    struct qpc_envelope env;
    int st = request_check_item(item, sender, FUZZ_NOW_MS, FUZZ_MAX_ENVELOPE, FUZZ_MAX_TTL, &env);

    if (st == -1) {
        if (!env.has_recipient || memcmp(env.sender, sender, QPC_KEY_LEN) != 0)
            abort();   /* passed without the checks it claims */
        qpc_envelope_clear(&env);
    } else if (st < 0 || st > QPC__STATUS__STATUS_RATE_LIMITED) {
        abort();
    }
}

static void check_request(const Qpc__ClientRequest *req)
{
    struct qpc_envelope env;

    switch (req->body_case) {
    case QPC__CLIENT_REQUEST__BODY_ENQUEUE:
        check_item(req->enqueue->item);
        break;
    case QPC__CLIENT_REQUEST__BODY_BATCH_ENQUEUE:
        if (req->batch_enqueue->n_items == 0 || req->batch_enqueue->n_items > REQUEST_BATCH_MAX)
            abort();
        for (size_t i = 0; i < req->batch_enqueue->n_items; i++)
            check_item(req->batch_enqueue->items[i]);
        break;
    case QPC__CLIENT_REQUEST__BODY_ACK:
        if (req->ack->n_seqs > REQUEST_ACK_SEQS_MAX)
            abort();
        break;
    case QPC__CLIENT_REQUEST__BODY_BROADCAST:
        if (request_check_broadcast(req->broadcast->envelope.data, req->broadcast->envelope.len,
                                    FUZZ_MAX_ENVELOPE, &env) == -1) {
            if (env.has_recipient || env.topic == NULL)
                abort();
            qpc_envelope_clear(&env);
        }
        break;
    case QPC__CLIENT_REQUEST__BODY_PATH:
        if (req->path->n_candidates > REQUEST_CANDIDATES_MAX)
            abort();
        break;
    case QPC__CLIENT_REQUEST__BODY_ANNOUNCE: {
        struct qpc_announce ann;

        /* What mesh.c does next with it: the strict conversion, then the signature. */
        if (req->announce == NULL)
            abort();
        if (qpc_announce_from_pb(req->announce, &ann) == 0)
            (void)qpc_announce_verify(&ann);
        break;
    }
    case QPC__CLIENT_REQUEST__BODY_FETCH:
    case QPC__CLIENT_REQUEST__BODY_PUSH:
    case QPC__CLIENT_REQUEST__BODY_PEER_INFO:
        break;
    default:
        abort();   /* request_client_decode lets no other kind through */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct request_arena a;
    struct request_refusal why;
    Qpc__ClientRequest *req;
    const uint8_t *dest;

    if (!ready)
        setup();
    request_arena_init(&a, size);
    req = request_client_decode(data, size, &a, &why);
    if (req != NULL) {
        check_request(req);
        qpc__client_request__free_unpacked(req, &a.pb.allocator);
    } else if (why.problem >= REQUEST_PROBLEM_COUNT || why.detail[0] == '\0' ||
               memchr(why.detail, '\0', sizeof(why.detail)) == NULL) {
        abort();
    }
    if (a.pb.heap_used > a.pb.heap_max)
        abort();
    request_arena_clear(&a);
    dest = request_relay_destination(data, size, 1350);
    if (dest != NULL && (size <= REQUEST_RELAY_HEADER || dest != data + 1))
        abort();
    return 0;
}
