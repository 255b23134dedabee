/*
 * qpc_mesh_announce: hands announces to a qpc-server over the client ALPN, or listens
 * for the ones it passes on, for tests/it_server_announce.sh. Not the real client.
 *
 *   qpc_mesh_announce -i ID.json -S HOST:PORT send KIND COUNT [-q SEQNO] [-r] [-H HOPS]
 *       sends COUNT announces of KIND (seqnos SEQNO, SEQNO+1, ...; -r: the same one COUNT
 *       times), then waits until the node has read them (a push-off request answered
 *       after them) and prints "sent COUNT" and "origin KEYHEX" per origin used:
 *         own        this identity's own announce, hops 0 (the only one a node takes
 *                    at hops 0 from this session)
 *         relayed    a fresh origin's announce, hopped once (a client passing one on)
 *         notorigin  a fresh origin's announce at hops 0 (refused: not_origin)
 *         forged     this identity's announce with one signature bit flipped (forged)
 *         shortened  a fresh origin's announce hopped twice that claims one hop (its
 *                    hash chain does not reach the top: forged)
 *         malformed  a MeshAnnounce whose key is 31 bytes (invalid)
 *       -H is the announces' max_hops (default 8).
 *   qpc_mesh_announce -i ID.json -S HOST:PORT listen COUNT [-T SECONDS]
 *       turns push on, prints "ready", then "announce KEYHEX SEQNO HOPS" per announce the
 *       node sends; exits 0 after COUNT (COUNT 0: at the timeout), 4 at the timeout.
 *
 * Exit status: 0 done, 1 usage or setup failure, 3 the connection ended early, 4 timeout.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qpc/announce.h"
#include "qpc/identity.h"
#include "testclient.h"

struct state {
    uint64_t rid;
    bool answered;
    size_t announces, want;
};

static void on_msg(struct tc *t, const Qpc__ServerMessage *m)
{
    struct state *st = t->user;
    struct qpc_announce a;
    char hex[QPC_KEY_HEX_LEN];

    if (m->body_case == QPC__SERVER_MESSAGE__BODY_ANNOUNCE) {
        if (qpc_announce_from_pb(m->announce, &a) != 0 || qpc_announce_verify(&a) != 0) {
            printf("bad-announce\n");
        } else {
            qpc_key_to_hex(hex, a.key);
            printf("announce %s %u %u\n", hex, a.seqno, a.hops);
        }
        fflush(stdout);
        st->announces++;
        return;
    }
    if (m->request_id == st->rid)
        st->answered = true;
}

static bool answered(struct tc *t)
{
    return ((struct state *)t->user)->answered;
}

static bool all_in(struct tc *t)
{
    struct state *st = t->user;

    return st->want > 0 && st->announces >= st->want;
}

static int push(struct tc *t, bool on)
{
    struct state *st = t->user;
    Qpc__ClientRequest req = QPC__CLIENT_REQUEST__INIT;
    Qpc__PushRequest pr = QPC__PUSH_REQUEST__INIT;

    pr.enable = on;
    req.body_case = QPC__CLIENT_REQUEST__BODY_PUSH;
    req.push = &pr;
    st->answered = false;
    if (tc_send(t, &req, &st->rid) != 0)
        return 3;
    return tc_run_until(t, answered, 30.0) ? 0 : t->closed ? 3 : 4;
}

/* Makes announce i of kind into *a (its origin's key printed once by the caller). */
static int make(const char *kind, const uint8_t *my_sk, uint32_t seqno, uint32_t max_hops,
                struct qpc_announce *a)
{
    static const char *const addrs[] = { "127.0.0.1:9" };
    uint8_t pk[QPC_KEY_LEN], sk[QPC_SECRET_KEY_LEN];
    const uint8_t *use = my_sk;
    int rc;

    if (strcmp(kind, "own") != 0 && strcmp(kind, "forged") != 0) {
        crypto_sign_keypair(pk, sk);
        use = sk;
    }
    rc = qpc_announce_create(a, use, seqno, tc_now_ms(), 30, max_hops, addrs, 1, NULL);
    sodium_memzero(sk, sizeof(sk));
    if (rc != 0)
        return rc;
    if (strcmp(kind, "relayed") == 0)
        return qpc_announce_forward(a);
    if (strcmp(kind, "forged") == 0)
        a->signature[7] ^= 0x10;
    if (strcmp(kind, "shortened") == 0) {
        if ((rc = qpc_announce_forward(a)) != 0 || (rc = qpc_announce_forward(a)) != 0)
            return rc;
        a->hops = 1;   /* chain is H^2(seed): one hash short of the top for hops 1 */
    }
    return 0;
}

static int cmd_send(struct tc *t, const uint8_t *sk, const char *kind, size_t count,
                    uint32_t seqno, bool repeat, uint32_t max_hops)
{
    struct qpc_announce a;
    char hex[QPC_KEY_HEX_LEN], last[QPC_KEY_HEX_LEN] = "";
    static const char *const known[] = { "own", "relayed", "notorigin", "forged", "shortened",
                                         "malformed", NULL };
    bool ok = false;
    int rc;

    for (size_t k = 0; known[k] != NULL; k++)
        ok = ok || strcmp(kind, known[k]) == 0;
    if (!ok) {
        fprintf(stderr, "qpc_mesh_announce: unknown kind %s\n", kind);
        return 1;
    }
    for (size_t i = 0; i < count; i++) {
        Qpc__ClientRequest req = QPC__CLIENT_REQUEST__INIT;
        struct qpc_announce_pb apb;

        if ((i == 0 || !repeat) &&
            (rc = make(kind, sk, seqno + (repeat ? 0 : (uint32_t)i), max_hops, &a)) != 0) {
            fprintf(stderr, "qpc_mesh_announce: make: %s\n", qpc_strerror(rc));
            return 1;
        }
        qpc_announce_to_pb(&a, &apb);
        if (strcmp(kind, "malformed") == 0)
            apb.body.key.len = QPC_KEY_LEN - 1;
        req.body_case = QPC__CLIENT_REQUEST__BODY_ANNOUNCE;
        req.announce = &apb.pb;
        while ((rc = tc_send(t, &req, NULL)) == QPC_ERR_AGAIN)
            tc_run_until(t, answered, 0.05);   /* let the stream drain */
        if (rc != 0) {
            fprintf(stderr, "qpc_mesh_announce: send: %s\n", qpc_strerror(rc));
            return 3;
        }
        qpc_key_to_hex(hex, a.key);
        if (strcmp(hex, last) != 0) {
            printf("origin %s\n", hex);
            memcpy(last, hex, sizeof(last));
        }
    }
    if ((rc = push(t, false)) != 0)
        return rc;
    printf("sent %zu\n", count);
    return 0;
}

static int cmd_listen(struct tc *t, size_t want, double timeout)
{
    struct state *st = t->user;
    int rc;

    st->want = want;
    if ((rc = push(t, true)) != 0)
        return rc;
    printf("ready\n");
    fflush(stdout);
    if (tc_run_until(t, all_in, timeout))
        return 0;
    return t->closed ? 3 : want == 0 ? 0 : 4;
}

static void usage(void)
{
    fprintf(stderr, "usage: qpc_mesh_announce -i ID.json -S HOST:PORT send KIND COUNT "
                    "[-q SEQNO] [-r] [-H HOPS] | listen COUNT [-T SECONDS]\n");
}

int main(int argc, char **argv)
{
    const char *identity = NULL, *server = "127.0.0.1:7000", *cmd;
    uint32_t seqno = 1, max_hops = 8;
    double timeout = 30.0;
    bool repeat = false;
    struct qpc_identity *id = NULL;
    struct state st = { 0 };
    struct tc t = { 0 };
    char err[512] = "";
    int opt, ret = 1;

    while ((opt = getopt(argc, argv, "i:S:q:rH:T:")) != -1) {
        switch (opt) {
        case 'i': identity = optarg; break;
        case 'S': server = optarg; break;
        case 'q': seqno = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'r': repeat = true; break;
        case 'H': max_hops = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'T': timeout = strtod(optarg, NULL); break;
        default: usage(); return 1;
        }
    }
    if (identity == NULL || optind >= argc) {
        usage();
        return 1;
    }
    cmd = argv[optind++];
    if (sodium_init() < 0 ||
        qpc_identity_load_or_create(identity, &id, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "qpc_mesh_announce: identity: %s\n", err);
        return 1;
    }
    if (tc_connect(&t, EV_DEFAULT, qpc_identity_secret_key(id), server, 10.0) != 0) {
        ret = 3;
        goto out;
    }
    t.user = &st;
    t.on_msg = on_msg;
    /* GNU getopt has moved the options before the operands already. */
    if (strcmp(cmd, "send") == 0 && optind + 2 == argc)
        ret = cmd_send(&t, qpc_identity_secret_key(id), argv[optind],
                       strtoul(argv[optind + 1], NULL, 10), seqno, repeat, max_hops);
    else if (strcmp(cmd, "listen") == 0 && optind + 1 == argc)
        ret = cmd_listen(&t, strtoul(argv[optind], NULL, 10), timeout);
    else
        usage();
out:
    fflush(stdout);
    tc_free(&t);
    qpc_identity_free(id);
    return ret;
}
