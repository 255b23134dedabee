/*
 * fuzz_envelope.c: libFuzzer target for MeshEnvelope decoding, the first thing a node
 * does with bytes from the network.
 *
 * Every input goes decode -> verify (at a fixed time) -> encode -> decode again; an
 * envelope that decoded must re-encode, decode again to the same id, and re-encode to
 * the same bytes. Its payload is also offered to
 * qpc_box_open from the sender, so the box path sees hostile lengths and keys.
 * Seeds: fuzz/corpus/fuzz_envelope/ (valid direct and broadcast envelopes).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "qpc/envelope.h"
#include "qpc/error.h"

#define FUZZ_NOW_MS 1700000000000ull   /* the seeds were made at this time */

static struct qpc_box_cache *box_cache;

/* A fixed recipient key, so runs reproduce; the seeds are addressed to it. */
static struct qpc_box_cache *recipient_cache(void)
{
    uint8_t seed[crypto_sign_SEEDBYTES], pk[crypto_sign_PUBLICKEYBYTES];
    uint8_t sk[crypto_sign_SECRETKEYBYTES];

    if (box_cache != NULL)
        return box_cache;
    if (sodium_init() < 0)
        abort();
    memset(seed, 2, sizeof(seed));
    crypto_sign_seed_keypair(pk, sk, seed);
    box_cache = qpc_box_cache_new(sk);
    sodium_memzero(sk, sizeof(sk));
    if (box_cache == NULL)
        abort();
    return box_cache;
}

/* What decode accepted, encode must take, and the result must decode to the same thing. */
static void check_reencode(const struct qpc_envelope *env)
{
    struct qpc_envelope again;
    uint8_t *buf = NULL, *buf2 = NULL;
    size_t len = 0, len2 = 0;

    if (qpc_envelope_encode(env, &buf, &len) != 0)
        abort();
    if (qpc_envelope_decode(&again, buf, len) != 0)
        abort();
    if (memcmp(again.id, env->id, QPC_ID_LEN) != 0 || again.hop_count != env->hop_count ||
        again.payload_len != env->payload_len)
        abort();
    if (qpc_envelope_encode(&again, &buf2, &len2) != 0 || len2 != len || memcmp(buf, buf2, len) != 0)
        abort();
    qpc_envelope_clear(&again);
    free(buf);
    free(buf2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct qpc_box_cache *cache = recipient_cache();
    struct qpc_envelope env;
    uint8_t *plain = NULL;
    size_t plain_len = 0;

    if (qpc_envelope_decode(&env, data, size) != 0)
        return 0;
    (void)qpc_envelope_verify(&env, FUZZ_NOW_MS);
    (void)qpc_envelope_expired(&env, FUZZ_NOW_MS);
    check_reencode(&env);
    if (qpc_box_open(cache, env.sender, env.payload, env.payload_len, &plain, &plain_len) == 0) {
        sodium_memzero(plain, plain_len);
        free(plain);
    }
    if (qpc_envelope_hop(&env) == 0 && env.hop_count > env.max_hops)
        abort();
    qpc_envelope_clear(&env);
    return 0;
}
