/*
 * qpc_bcast_inject: hands a node crafted broadcast envelopes (ClientRequest.broadcast) as
 * a throw-away identity, for tests/it_server_broadcast.sh. It checks that the node relays
 * a good broadcast once and refuses the rest, in this order, one line per step:
 *
 *   fresh        a valid broadcast on the open channel TOPIC, text TEXT     -> OK
 *   replay       the same bytes again                                      -> DUPLICATE
 *   rehopped     the same envelope with hop_count + 1 (same id)            -> DUPLICATE
 *   forged       a new envelope whose signature has one bit flipped        -> INVALID
 *   forged-again the same forged bytes (refused by lookup, no signature
 *                check: qpc_broadcasts_known_invalid_total counts it)       -> INVALID
 *   forged-first a forged copy of another new envelope ...                 -> INVALID
 *   real-after   ... then the real one: a forgery must not poison dedup    -> OK
 *   expired      created two TTLs ago (signed correctly)                   -> EXPIRED
 *   last-hop     hop_count = max_hops: accepted, passed to nobody          -> OK
 *   direct       a direct envelope sent as a broadcast                     -> INVALID
 *   garbage      bytes that are not a MeshEnvelope                         -> INVALID
 *
 * Prints "STEP STATUS" per step; exit 0 when every status is the expected one, 2 when one
 * differs, 1 on setup failure, 4 on timeout.
 *
 * usage: qpc_bcast_inject HOST:PORT TOPIC TEXT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "qpc/broadcast.h"
#include "testclient.h"

struct step {
    const char *name;
    int want;
    int got;        /* -1 until answered */
    uint64_t rid;
};

static struct step g_steps[16];
static size_t g_nsteps, g_answered;

static const char *status_name(int st)
{
    static const char *names[] = { "OK", "INVALID", "FORBIDDEN", "QUEUE_FULL", "TOO_LARGE",
                                   "EXPIRED", "UNKNOWN_DOMAIN", "DEFERRED", "INTERNAL",
                                   "DUPLICATE", "RATE_LIMITED" };

    return st >= 0 && st <= 10 ? names[st] : "?";
}

static void on_msg(struct tc *t, const Qpc__ServerMessage *m)
{
    if (m->body_case != QPC__SERVER_MESSAGE__BODY_BROADCAST_ACK)
        return;
    for (size_t i = 0; i < g_nsteps; i++) {
        if (g_steps[i].rid == m->request_id && g_steps[i].got < 0) {
            g_steps[i].got = (int)m->broadcast_ack->status;
            g_answered++;
        }
    }
}

static bool all_answered(struct tc *t)
{
    return g_answered == g_nsteps;
}

/* Sends one BroadcastRequest and waits for its answer (so the order is the node's too). */
static int step(struct tc *t, const char *name, int want, const uint8_t *buf, size_t len)
{
    Qpc__ClientRequest req = QPC__CLIENT_REQUEST__INIT;
    Qpc__BroadcastRequest br = QPC__BROADCAST_REQUEST__INIT;
    struct step *s = &g_steps[g_nsteps++];
    int rc;

    s->name = name;
    s->want = want;
    s->got = -1;
    br.envelope.data = (uint8_t *)buf;
    br.envelope.len = len;
    req.body_case = QPC__CLIENT_REQUEST__BODY_BROADCAST;
    req.broadcast = &br;
    rc = tc_send(t, &req, &s->rid);
    if (rc != 0)
        return rc;
    return tc_run_until(t, all_answered, 10.0) ? 0 : QPC_ERR_TIMEOUT;
}

/* A signed broadcast on the open channel topic, created at created_ms, encoded. */
static int make(const uint8_t sk[64], const char *topic, const char *text, uint64_t created_ms,
                uint32_t hop_count, bool flip_sig, uint8_t **out, size_t *out_len)
{
    struct qpc_channel_set *set = qpc_broadcast_set_new();
    const struct qpc_channel *ch = NULL;
    struct qpc_envelope env = { 0 };
    int rc = set == NULL ? QPC_ERR_NOMEM : qpc_broadcast_subscribe(set, topic, NULL, &ch);

    if (rc == 0)
        rc = qpc_broadcast_envelope_new(ch, sk, created_ms, 3600, QPC_MAX_HOPS_DEFAULT,
                                        (const uint8_t *)text, strlen(text), &env);
    if (rc == 0) {
        env.hop_count = hop_count;
        if (flip_sig)
            env.signature[7] ^= 0x10;
        rc = qpc_envelope_encode(&env, out, out_len);
    }
    qpc_envelope_clear(&env);
    qpc_broadcast_set_free(set);
    return rc;
}

/* The same envelope (same id) one hop further, as a second path would bring it. */
static int rehop(const uint8_t *buf, size_t len, uint8_t **out, size_t *out_len)
{
    struct qpc_envelope env = { 0 };
    int rc = qpc_envelope_decode(&env, buf, len);

    if (rc == 0)
        rc = qpc_envelope_hop(&env);
    if (rc == 0)
        rc = qpc_envelope_encode(&env, out, out_len);
    qpc_envelope_clear(&env);
    return rc;
}

int main(int argc, char **argv)
{
    uint8_t pk[32], sk[64], *e1 = NULL, *e1h = NULL, *bad = NULL, *e2f = NULL, *e2 = NULL,
                             *old = NULL, *last = NULL, *direct = NULL;
    size_t l1 = 0, l1h = 0, lbad = 0, l2f = 0, l2 = 0, lold = 0, llast = 0, ldirect = 0;
    static const uint8_t garbage[] = { 0xff, 0xff, 0xff, 0x01, 0x02 };
    char text2[512];
    struct tc t = { 0 };
    uint64_t now;
    int rc, status = 0;

    if (argc != 4) {
        fprintf(stderr, "usage: qpc_bcast_inject HOST:PORT TOPIC TEXT\n");
        return 1;
    }
    if (sodium_init() < 0)
        return 1;
    crypto_sign_keypair(pk, sk);
    now = tc_now_ms();
    snprintf(text2, sizeof(text2), "%s (after a forgery)", argv[3]);
    rc = make(sk, argv[2], argv[3], now, 0, false, &e1, &l1);
    if (rc == 0)
        rc = rehop(e1, l1, &e1h, &l1h);
    if (rc == 0)
        rc = make(sk, argv[2], "forged", now, 0, true, &bad, &lbad);
    if (rc == 0)
        rc = make(sk, argv[2], text2, now + 1, 0, true, &e2f, &l2f);
    if (rc == 0)
        rc = make(sk, argv[2], text2, now + 1, 0, false, &e2, &l2);
    if (rc == 0)
        rc = make(sk, argv[2], "too old", now - 2 * 3600 * 1000, 0, false, &old, &lold);
    if (rc == 0)
        rc = make(sk, argv[2], "last hop", now + 2, QPC_MAX_HOPS_DEFAULT, false, &last, &llast);
    if (rc == 0)
        rc = tc_make_envelope(sk, pk, (const uint8_t *)"x", 1, 3600, &direct, &ldirect, NULL);
    if (rc != 0) {
        fprintf(stderr, "qpc_bcast_inject: cannot build envelopes: %s\n", qpc_strerror(rc));
        status = 1;
        goto out;
    }
    t.on_msg = on_msg;
    if (tc_connect(&t, ev_default_loop(0), sk, argv[1], 10.0) != 0) {
        status = 1;
        goto out;
    }
    if ((rc = step(&t, "fresh", QPC__STATUS__STATUS_OK, e1, l1)) == 0 &&
        (rc = step(&t, "replay", QPC__STATUS__STATUS_DUPLICATE, e1, l1)) == 0 &&
        (rc = step(&t, "rehopped", QPC__STATUS__STATUS_DUPLICATE, e1h, l1h)) == 0 &&
        (rc = step(&t, "forged", QPC__STATUS__STATUS_INVALID, bad, lbad)) == 0 &&
        (rc = step(&t, "forged-again", QPC__STATUS__STATUS_INVALID, bad, lbad)) == 0 &&
        (rc = step(&t, "forged-first", QPC__STATUS__STATUS_INVALID, e2f, l2f)) == 0 &&
        (rc = step(&t, "real-after", QPC__STATUS__STATUS_OK, e2, l2)) == 0 &&
        (rc = step(&t, "expired", QPC__STATUS__STATUS_EXPIRED, old, lold)) == 0 &&
        (rc = step(&t, "last-hop", QPC__STATUS__STATUS_OK, last, llast)) == 0 &&
        (rc = step(&t, "direct", QPC__STATUS__STATUS_INVALID, direct, ldirect)) == 0)
        rc = step(&t, "garbage", QPC__STATUS__STATUS_INVALID, garbage, sizeof(garbage));
    for (size_t i = 0; i < g_nsteps; i++) {
        printf("%s %s\n", g_steps[i].name,
               g_steps[i].got < 0 ? "NO_ANSWER" : status_name(g_steps[i].got));
        if (g_steps[i].got != g_steps[i].want && status == 0)
            status = 2;
    }
    if (rc != 0 && status == 0)
        status = rc == QPC_ERR_TIMEOUT ? 4 : 1;
    tc_free(&t);
out:
    free(e1);
    free(e1h);
    free(bad);
    free(e2f);
    free(e2);
    free(old);
    free(last);
    free(direct);
    return status;
}
