/*
 * fuzz_federation.c: libFuzzer target for the bytes another node sends (src/server/
 * request.c): each input is decoded as a FederationRequest (relay_enqueue items go
 * through the per-item checks a node's items get: no sender check, mTLS vouches for
 * the node) and as a FederationResponse (each status mapped to what the outbox does with
 * its row). Nothing may crash, leak or read out of bounds; whatever passes must be
 * within the caps.
 * Seeds: fuzz/corpus/fuzz_federation/ (tests/tools/qpc_fuzz_seeds.c).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qpc/announce.h"
#include "request.h"

#define FUZZ_NOW_MS 1700000000000ull
#define FUZZ_MAX_ENVELOPE 262144u
#define FUZZ_MAX_TTL 604800u

static void try_request(const uint8_t *data, size_t size)
{
    struct request_arena a;
    struct request_refusal why;
    Qpc__FederationRequest *req;
    struct qpc_envelope env;

    request_arena_init(&a, size);
    req = request_federation_decode(data, size, &a, &why);
    if (req == NULL) {
        if (why.problem >= REQUEST_PROBLEM_COUNT || why.detail[0] == '\0')
            abort();
    } else if (req->body_case == QPC__FEDERATION_REQUEST__BODY_RELAY_ENQUEUE) {
        if (req->relay_enqueue->n_items == 0 || req->relay_enqueue->n_items > REQUEST_BATCH_MAX)
            abort();
        for (size_t i = 0; i < req->relay_enqueue->n_items; i++)
            if (request_check_item(req->relay_enqueue->items[i], NULL, FUZZ_NOW_MS,
                                   FUZZ_MAX_ENVELOPE, FUZZ_MAX_TTL, &env) == -1)
                qpc_envelope_clear(&env);
    } else if (req->body_case == QPC__FEDERATION_REQUEST__BODY_RELAY_BROADCAST) {
        if (req->relay_broadcast->n_envelopes > REQUEST_BROADCASTS_MAX)
            abort();
        for (size_t i = 0; i < req->relay_broadcast->n_envelopes; i++)
            if (request_check_broadcast(req->relay_broadcast->envelopes[i].data,
                                        req->relay_broadcast->envelopes[i].len,
                                        FUZZ_MAX_ENVELOPE, &env) == -1)
                qpc_envelope_clear(&env);
    } else if (req->body_case == QPC__FEDERATION_REQUEST__BODY_DOMAIN_ROUTES) {
        if (req->domain_routes->n_routes > REQUEST_DOMAIN_ROUTES_MAX)
            abort();
        for (size_t i = 0; i < req->domain_routes->n_routes; i++)
            if (req->domain_routes->routes[i] == NULL)
                abort();
    } else if (req->body_case == QPC__FEDERATION_REQUEST__BODY_ANNOUNCE) {
        struct qpc_announce ann;

        /* What mesh.c does next with it: the strict conversion, then the signature. */
        if (req->announce == NULL)
            abort();
        if (qpc_announce_from_pb(req->announce, &ann) == 0)
            (void)qpc_announce_verify(&ann);
    } else {
        abort();
    }
    if (req != NULL)
        qpc__federation_request__free_unpacked(req, &a.pb.allocator);
    request_arena_clear(&a);
}

static void try_response(const uint8_t *data, size_t size)
{
    struct request_arena a;
    struct request_refusal why;
    Qpc__FederationResponse *r;

    request_arena_init(&a, size);
    r = request_federation_response_decode(data, size, &a, &why);
    if (r != NULL) {
        if (r->n_statuses > REQUEST_BATCH_MAX)
            abort();
        for (size_t i = 0; i < r->n_statuses; i++) {
            enum request_fed_outcome o = request_fed_outcome_of((int)r->statuses[i]);
            if (o != REQUEST_FED_DELIVERED && o != REQUEST_FED_RETRY && o != REQUEST_FED_REFUSED)
                abort();
            if (o == REQUEST_FED_DELIVERED && r->statuses[i] != QPC__STATUS__STATUS_OK)
                abort();   /* only OK removes a row as delivered */
        }
        qpc__federation_response__free_unpacked(r, &a.pb.allocator);
    }
    request_arena_clear(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    try_request(data, size);
    try_response(data, size);
    return 0;
}
