/*
 * bench_envelope.c: how many 1 KiB direct envelopes one core builds and opens per
 * second, next to the raw libsodium operations they cannot beat, measured in the same
 * run. Prints figures; asserts nothing.
 *
 *   build = qpc_box_seal + qpc_envelope_init (hash + sign) + qpc_envelope_encode
 *   open  = qpc_envelope_decode (hash) + qpc_envelope_verify (hash + verify) + qpc_box_open
 *
 * Ceilings (each includes the 24-byte random nonce a box needs):
 *   naive : Ed25519 over the 1064-byte box + crypto_box_easy with a fresh X25519
 *   cached: Ed25519 over the 1064-byte box + crypto_box_easy_afternm (the real path's
 *           caching policy: one shared key per peer, computed once)
 *   tight : Ed25519 over 59 bytes + crypto_box_easy_afternm: exactly the libsodium calls
 *           the real path makes, without hashing, protobuf or allocation.
 * Each figure is the median of 5 runs of about 0.5 s of this thread's CPU time (so
 * operations per CPU-second of one core), interleaved with the others.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sodium.h>

#include "qpc/envelope.h"
#include "qpc/error.h"

#define PAYLOAD_LEN 1024
#define BOX_LEN (PAYLOAD_LEN + QPC_BOX_OVERHEAD)
#define RUNS 5
#define RUN_SECONDS 0.5
#define SIGNED_MSG_LEN 59   /* "quicprochat/envelope-id/v1\0" || id */

struct party {
    uint8_t pk[crypto_sign_PUBLICKEYBYTES];
    uint8_t sk[crypto_sign_SECRETKEYBYTES];
    uint8_t x_pk[crypto_box_PUBLICKEYBYTES];
    uint8_t x_sk[crypto_box_SECRETKEYBYTES];
    struct qpc_box_cache *cache;
};

static struct party alice, bob;
static uint8_t payload[PAYLOAD_LEN];
static uint8_t shared_ab[crypto_box_BEFORENMBYTES];   /* for the cached ceilings */
static uint8_t wire_ref[4096];                          /* one encoded envelope to open */
static size_t wire_ref_len;
static uint8_t box_ref[BOX_LEN], sig_ref[64], sig_short_ref[64], msg_short[SIGNED_MSG_LEN];

static double now_s(void)
{
    struct timespec ts;

    /* CPU time of this thread: other processes on a busy build machine do not count. */
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fail(const char *what, int err)
{
    fprintf(stderr, "bench_envelope: %s: %s\n", what, qpc_strerror(err));
    exit(1);
}

/* --- the real paths ---------------------------------------------------------------- */

static void real_build(void)
{
    struct qpc_envelope env;
    uint8_t *box = NULL, *wire = NULL;
    size_t box_len = 0, wire_len = 0;
    int ret;

    if ((ret = qpc_box_seal(alice.cache, bob.pk, payload, sizeof(payload), &box, &box_len)) != 0)
        fail("seal", ret);
    if ((ret = qpc_envelope_init(&env, alice.sk, bob.pk, NULL, 1700000000000ull, 3600, 8, box,
                                 box_len)) != 0)
        fail("init", ret);
    if ((ret = qpc_envelope_encode(&env, &wire, &wire_len)) != 0)
        fail("encode", ret);
    free(wire);
    qpc_envelope_clear(&env);
    free(box);
}

static void real_open(void)
{
    struct qpc_envelope env;
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    int ret;

    if ((ret = qpc_envelope_decode(&env, wire_ref, wire_ref_len)) != 0)
        fail("decode", ret);
    if ((ret = qpc_envelope_verify(&env, 1700000001000ull)) != 0)
        fail("verify", ret);
    if ((ret = qpc_box_open(bob.cache, env.sender, env.payload, env.payload_len, &plain,
                            &plain_len)) != 0)
        fail("open", ret);
    free(plain);
    qpc_envelope_clear(&env);
}

/* --- ceilings: libsodium alone ------------------------------------------------------ */

static uint8_t scratch_box[BOX_LEN], scratch_sig[64], scratch_plain[PAYLOAD_LEN];

static void naive_build(void)
{
    randombytes_buf(scratch_box, crypto_box_NONCEBYTES);
    if (crypto_box_easy(scratch_box + crypto_box_NONCEBYTES, payload, PAYLOAD_LEN, scratch_box,
                        bob.x_pk, alice.x_sk) != 0)
        fail("naive box", QPC_ERR_CRYPTO);
    crypto_sign_detached(scratch_sig, NULL, scratch_box, BOX_LEN, alice.sk);
}

static void cached_build(void)
{
    randombytes_buf(scratch_box, crypto_box_NONCEBYTES);
    crypto_box_easy_afternm(scratch_box + crypto_box_NONCEBYTES, payload, PAYLOAD_LEN,
                            scratch_box, shared_ab);
    crypto_sign_detached(scratch_sig, NULL, scratch_box, BOX_LEN, alice.sk);
}

static void tight_build(void)
{
    randombytes_buf(scratch_box, crypto_box_NONCEBYTES);
    crypto_box_easy_afternm(scratch_box + crypto_box_NONCEBYTES, payload, PAYLOAD_LEN,
                            scratch_box, shared_ab);
    crypto_sign_detached(scratch_sig, NULL, msg_short, SIGNED_MSG_LEN, alice.sk);
}

static void naive_open(void)
{
    if (crypto_sign_verify_detached(sig_ref, box_ref, BOX_LEN, alice.pk) != 0 ||
        crypto_box_open_easy(scratch_plain, box_ref + crypto_box_NONCEBYTES,
                             BOX_LEN - crypto_box_NONCEBYTES, box_ref, alice.x_pk, bob.x_sk) != 0)
        fail("naive open", QPC_ERR_DECRYPT);
}

static void cached_open(void)
{
    if (crypto_sign_verify_detached(sig_ref, box_ref, BOX_LEN, alice.pk) != 0 ||
        crypto_box_open_easy_afternm(scratch_plain, box_ref + crypto_box_NONCEBYTES,
                                     BOX_LEN - crypto_box_NONCEBYTES, box_ref, shared_ab) != 0)
        fail("cached open", QPC_ERR_DECRYPT);
}

static void tight_open(void)
{
    if (crypto_sign_verify_detached(sig_short_ref, msg_short, SIGNED_MSG_LEN, alice.pk) != 0 ||
        crypto_box_open_easy_afternm(scratch_plain, box_ref + crypto_box_NONCEBYTES,
                                     BOX_LEN - crypto_box_NONCEBYTES, box_ref, shared_ab) != 0)
        fail("tight open", QPC_ERR_DECRYPT);
}

/* --- measurement ------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Operations per second of one run of about RUN_SECONDS. */
static double run_once(void (*op)(void))
{
    double start = now_s(), elapsed;
    long n = 0;

    do {
        for (int i = 0; i < 32; i++)
            op();
        n += 32;
        elapsed = now_s() - start;
    } while (elapsed < RUN_SECONDS);
    return (double)n / elapsed;
}

/*
 * Medians of RUNS runs for each of the 4 operations. The runs are interleaved (real,
 * naive, cached, tight, real, ...) so a burst of load from other processes hits all
 * of them alike and the ratios stay meaningful on a busy machine.
 */
static void rates(void (*ops[4])(void), double out[4])
{
    double samples[4][RUNS];

    for (int r = 0; r < RUNS; r++)
        for (int k = 0; k < 4; k++)
            samples[k][r] = run_once(ops[k]);
    for (int k = 0; k < 4; k++) {
        qsort(samples[k], RUNS, sizeof(samples[k][0]), cmp_double);
        out[k] = samples[k][RUNS / 2];
    }
}

static void make_party(struct party *p)
{
    crypto_sign_keypair(p->pk, p->sk);
    if (crypto_sign_ed25519_pk_to_curve25519(p->x_pk, p->pk) != 0)
        fail("key conversion", QPC_ERR_CRYPTO);
    crypto_sign_ed25519_sk_to_curve25519(p->x_sk, p->sk);
    if ((p->cache = qpc_box_cache_new(p->sk)) == NULL)
        fail("cache", QPC_ERR_NOMEM);
}

static void setup(void)
{
    struct qpc_envelope env;
    uint8_t *box = NULL, *wire = NULL;
    size_t box_len = 0, wire_len = 0;
    int ret;

    make_party(&alice);
    make_party(&bob);
    randombytes_buf(payload, sizeof(payload));
    if (crypto_box_beforenm(shared_ab, bob.x_pk, alice.x_sk) != 0)
        fail("beforenm", QPC_ERR_CRYPTO);

    if ((ret = qpc_box_seal(alice.cache, bob.pk, payload, sizeof(payload), &box, &box_len)) != 0)
        fail("seal", ret);
    if ((ret = qpc_envelope_init(&env, alice.sk, bob.pk, NULL, 1700000000000ull, 3600, 8, box,
                                 box_len)) != 0)
        fail("init", ret);
    if ((ret = qpc_envelope_encode(&env, &wire, &wire_len)) != 0 || wire_len > sizeof(wire_ref))
        fail("encode", ret);
    memcpy(wire_ref, wire, wire_len);
    wire_ref_len = wire_len;
    memcpy(box_ref, box, BOX_LEN);
    crypto_sign_detached(sig_ref, NULL, box_ref, BOX_LEN, alice.sk);
    randombytes_buf(msg_short, sizeof(msg_short));
    crypto_sign_detached(sig_short_ref, NULL, msg_short, SIGNED_MSG_LEN, alice.sk);
    free(wire);
    free(box);
    qpc_envelope_clear(&env);
}

static void report(const char *what, double real, double naive, double cached, double tight)
{
    printf("%s\n", what);
    printf("  libqpc                                    %10.0f /s\n", real);
    printf("  ceiling naive  (sign 1 KiB, fresh X25519) %10.0f /s   real/ceiling %5.1f%%\n",
           naive, 100.0 * real / naive);
    printf("  ceiling cached (sign 1 KiB, afternm)      %10.0f /s   real/ceiling %5.1f%%\n",
           cached, 100.0 * real / cached);
    printf("  ceiling tight  (sign 59 B,  afternm)      %10.0f /s   real/ceiling %5.1f%%\n",
           tight, 100.0 * real / tight);
}

int main(void)
{
    void (*build_ops[4])(void) = { real_build, naive_build, cached_build, tight_build };
    void (*open_ops[4])(void) = { real_open, naive_open, cached_open, tight_open };
    double r[4];

    if (sodium_init() < 0)
        return 1;
    setup();
    printf("bench_envelope: 1 KiB payloads, per CPU-second of one core, median of %d runs of %.1f s\n", RUNS,
           RUN_SECONDS);

    rates(build_ops, r);
    report("(a) build: seal + init/sign + encode", r[0], r[1], r[2], r[3]);
    rates(open_ops, r);
    report("(b) open: decode + verify + box_open", r[0], r[1], r[2], r[3]);

    qpc_box_cache_free(alice.cache);
    qpc_box_cache_free(bob.cache);
    sodium_memzero(&alice, sizeof(alice));
    sodium_memzero(&bob, sizeof(bob));
    sodium_memzero(shared_ab, sizeof(shared_ab));
    return 0;
}
