/*
 * qpc_p2p_inject: a hostile or replaying P2P peer for the client's integration tests.
 * It dials a listening qpc over quicprochat/p2p/1 with a fresh identity and sends
 * crafted envelopes, printing the ack status the client answers for each:
 *
 *   qpc_p2p_inject HOST:PORT PEER_KEY_HEX MODE...
 *
 * MODE is one of (several may follow each other, sent in order on one connection):
 *   valid     a correct message "inject valid N"
 *   replay    the previous valid envelope again, byte for byte
 *   forged    a correct envelope whose signature has one bit flipped
 *   impostor  an envelope claiming another sender's key (signed with ours)
 *   expired   correctly signed, created two minutes ago with a 60 s TTL
 *   future    correctly signed, created one hour in the future
 *   receipt=ID             a receipt (DirectContent) from us naming envelope id ID (hex):
 *                          genuine in form, but ID was never sent to us, so it proves nothing
 *   impostor-receipt=ID=K  a receipt naming ID that claims to come from key K (hex: the
 *                          real recipient) but is signed with our key
 *   hop0-from=PATH         a correct message from the identity in PATH (an identity.json:
 *                          a third peer's key) with hop_count 0: what a neighbour that
 *                          forwards that peer's traffic and resets hop_count sends
 *   for=PATH   a correct message from us to the identity in PATH (an identity.json: a third
 *              peer, not the one dialled), for the dialled client to forward
 *   bounce     (last, at most once) sent nothing at first: the first envelope the client
 *              then sends us that is not its own is acked DEFERRED (a hand-over: it
 *              gives up its copy) and sent back to it byte for byte, as a neighbour
 *              whose route leads back would; prints "bounced ID". Every envelope the
 *              client sends us is acked DEFERRED ("got ID")
 *   garbage=N  N frames of bytes that are no P2pFrame (6 bytes each, in one burst); no
 *              ack is expected: the client should close the connection instead
 *   badenv=N   N well-formed P2pFrames whose envelope bytes are no MeshEnvelope; acks
 *              may come (INVALID), but the client should close the connection
 * Texts are DirectContent texts, as qpc sends them (docs/envelope.md).
 * Output: one line "ack MODE STATUS" per envelope (STATUS as in proto Status, numeric);
 * with garbage, "closed by peer: REASON" when the client closes the connection.
 * Exit status: 0 all acks arrived (with garbage: and the client then closed the
 * connection), 1 usage/setup failure, 3 connection failed, 4 timeout.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ev.h>
#include <sodium.h>

#include "qpc/proto.h"
#include "qpc/addr.h"
#include "qpc/direct.h"
#include "qpc/encoding.h"
#include "qpc/envelope.h"
#include "qpc/error.h"
#include "qpc/identity.h"
#include "qpc/quic.h"

#define MAX_MODES 16

struct inj {
    struct ev_loop *loop;
    uint8_t pk[32], sk[64], peer[32];
    struct qpc_box_cache *box;
    char **modes;
    int nmodes, acks;
    int envs[MAX_MODES], nenvs;        /* the modes that send an envelope, in order */
    bool garbage;                      /* some mode sent garbage: a close is expected */
    bool bounce, bounced;              /* bounce asked for, and done */
    int64_t sid;
    uint8_t *last_valid;
    size_t last_valid_len;
    int rc;
};

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Builds the encoded envelope for one mode (caller frees *out). */
static int build(struct inj *in, const char *mode, int n, uint8_t **out, size_t *len)
{
    struct qpc_envelope env = { 0 };
    char text[64];
    uint8_t *box = NULL, *plain = NULL;
    size_t blen = 0, plen = 0;
    uint64_t created = now_ms();
    uint32_t ttl = 3600;
    int rc;

    if (strcmp(mode, "replay") == 0) {
        if (in->last_valid == NULL)
            return QPC_ERR_INVALID;
        *out = malloc(in->last_valid_len);
        memcpy(*out, in->last_valid, in->last_valid_len);
        *len = in->last_valid_len;
        return 0;
    }
    if (strcmp(mode, "expired") == 0) {
        created -= 120000;
        ttl = 60;
    } else if (strcmp(mode, "future") == 0) {
        created += 3600000;
    }
    if (strncmp(mode, "hop0-from=", 10) == 0) {
        struct qpc_identity *other = NULL;
        struct qpc_box_cache *obox;
        char err[256];

        if (qpc_identity_load(mode + 10, &other, err, sizeof(err)) != 0) {
            fprintf(stderr, "%s: %s\n", mode + 10, err);
            return QPC_ERR_INVALID;
        }
        snprintf(text, sizeof(text), "inject hop0 %d", n);
        obox = qpc_box_cache_new(qpc_identity_secret_key(other));
        rc = obox == NULL ? QPC_ERR_NOMEM : qpc_direct_encode_text(text, strlen(text), NULL, &plain, &plen);
        if (rc == 0)
            rc = qpc_box_seal(obox, in->peer, plain, plen, &box, &blen);
        if (rc == 0)   /* signed by that peer; hop_count 0 as if it came straight from it */
            rc = qpc_envelope_init(&env, qpc_identity_secret_key(other), in->peer, NULL, created, ttl, 8,
                                   box, blen);
        if (rc == 0)
            rc = qpc_envelope_encode(&env, out, len);
        qpc_box_cache_free(obox);
        qpc_identity_free(other);
        free(box);
        free(plain);
        qpc_envelope_clear(&env);
        return rc;
    }
    if (strncmp(mode, "for=", 4) == 0) {
        struct qpc_identity *other = NULL;
        uint8_t to[32];
        char err[256];

        if (qpc_identity_load(mode + 4, &other, err, sizeof(err)) != 0) {
            fprintf(stderr, "%s: %s\n", mode + 4, err);
            return QPC_ERR_INVALID;
        }
        memcpy(to, qpc_identity_public_key(other), 32);
        qpc_identity_free(other);
        snprintf(text, sizeof(text), "inject for %d", n);
        rc = qpc_direct_encode_text(text, strlen(text), NULL, &plain, &plen);
        if (rc == 0)
            rc = qpc_box_seal(in->box, to, plain, plen, &box, &blen);
        if (rc == 0)
            rc = qpc_envelope_init(&env, in->sk, to, NULL, created, ttl, 8, box, blen);
        if (rc == 0)
            rc = qpc_envelope_encode(&env, out, len);
        free(box);
        free(plain);
        qpc_envelope_clear(&env);
        return rc;
    }
    if (strncmp(mode, "receipt=", 8) == 0 || strncmp(mode, "impostor-receipt=", 17) == 0) {
        struct qpc_receipt_item item = { .path = QPC_RECEIPT_PATH_DIRECT, .received_at_ms = created };
        const char *idhex = strchr(mode, '=') + 1;
        char hex[65];

        snprintf(hex, sizeof(hex), "%.64s", idhex);
        if (qpc_hex_decode(item.id, QPC_ID_LEN, hex) != 0)
            return QPC_ERR_INVALID;
        rc = qpc_direct_encode_receipt(&item, 1, NULL, &plain, &plen);
    } else {
        snprintf(text, sizeof(text), "inject %s %d", mode, n);
        rc = qpc_direct_encode_text(text, strlen(text), NULL, &plain, &plen);
    }
    if (rc == 0)
        rc = qpc_box_seal(in->box, in->peer, plain, plen, &box, &blen);
    if (rc == 0)
        rc = qpc_envelope_init(&env, in->sk, in->peer, NULL, created, ttl, 8, box, blen);
    free(box);
    free(plain);
    if (rc < 0)
        return rc;
    if (strcmp(mode, "forged") == 0) {
        env.signature[10] ^= 0x01;
    } else if (strcmp(mode, "impostor") == 0) {
        uint8_t opk[32], osk[64];

        crypto_sign_keypair(opk, osk);
        memcpy(env.sender, opk, 32);
        /* Re-hash the id for the new sender but keep OUR signature: verify must fail. */
        uint8_t sig[64];
        memcpy(sig, env.signature, 64);
        qpc_envelope_sign(&env, osk);
        memcpy(env.signature, sig, 64);
    }
    rc = qpc_envelope_encode(&env, out, len);
    if (rc == 0 && strncmp(mode, "impostor-receipt=", 17) == 0) {
        /* On the wire: the real recipient's key as sender, no id (the receiver computes
         * it for that sender), our signature: it can only fail to verify. */
        const char *k = strchr(mode + 17, '=');
        Qpc__MeshEnvelope *m = qpc__mesh_envelope__unpack(NULL, *len, *out);
        uint8_t claimed[32];

        if (k == NULL || m == NULL || qpc_key_from_hex(claimed, k + 1) != 0) {
            qpc_envelope_clear(&env);
            return QPC_ERR_INVALID;
        }
        memcpy(m->sender.data, claimed, 32);
        m->id.len = 0;
        *len = qpc__mesh_envelope__pack(m, *out);
        qpc__mesh_envelope__free_unpacked(m, NULL);
    }
    if (rc == 0 && strcmp(mode, "valid") == 0) {
        free(in->last_valid);
        in->last_valid = malloc(*len);
        memcpy(in->last_valid, *out, *len);
        in->last_valid_len = *len;
    }
    qpc_envelope_clear(&env);
    return rc;
}

static int on_connected(struct qpc_quic_conn *c, const char *alpn, const uint8_t *key, void *user)
{
    struct inj *in = user;

    if (qpc_quic_conn_open_stream(c, &in->sid) < 0)
        return 1;
    for (int i = 0; i < in->nmodes; i++) {
        Qpc__P2pFrame f = QPC__P2P_FRAME__INIT;
        uint8_t *env = NULL, *buf;
        size_t elen = 0, flen;

        if (strncmp(in->modes[i], "badenv=", 7) == 0) {
            static const uint8_t junk[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
            long n = strtol(in->modes[i] + 7, NULL, 10);

            f.body_case = QPC__P2P_FRAME__BODY_ENVELOPE;
            f.envelope.data = (uint8_t *)junk;
            f.envelope.len = sizeof(junk);
            flen = qpc__p2p_frame__get_packed_size(&f);
            buf = malloc(flen);
            qpc__p2p_frame__pack(&f, buf);
            for (long k = 0; k < n; k++)
                qpc_quic_conn_send_frame(c, in->sid, buf, flen);
            free(buf);
            continue;
        }
        if (strncmp(in->modes[i], "garbage=", 8) == 0) {
            /* 0xff: field 31 with wire type 7, which no protobuf decoder takes. */
            static const uint8_t junk[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
            long n = strtol(in->modes[i] + 8, NULL, 10);

            for (long k = 0; k < n; k++)
                qpc_quic_conn_send_frame(c, in->sid, junk, sizeof(junk));
            continue;
        }
        if (strcmp(in->modes[i], "bounce") == 0)
            continue;   /* sent when the client sends us something (on_frame) */
        if (build(in, in->modes[i], i, &env, &elen) < 0) {
            fprintf(stderr, "cannot build %s\n", in->modes[i]);
            in->rc = 1;
            ev_break(in->loop, EVBREAK_ALL);
            return 0;
        }
        f.body_case = QPC__P2P_FRAME__BODY_ENVELOPE;
        f.envelope.data = env;
        f.envelope.len = elen;
        flen = qpc__p2p_frame__get_packed_size(&f);
        buf = malloc(flen);
        qpc__p2p_frame__pack(&f, buf);
        qpc_quic_conn_send_frame(c, in->sid, buf, flen);
        free(buf);
        free(env);
    }
    return 0;
}

/* An envelope the client sent us: acked DEFERRED (we "hold" it now), and with bounce
 * the first one not its own goes straight back to it. */
static void on_envelope(struct inj *in, struct qpc_quic_conn *c, int64_t sid, const Qpc__P2pFrame *f)
{
    struct qpc_envelope env = { 0 };
    Qpc__P2pAck ack = QPC__P2P_ACK__INIT;
    Qpc__P2pFrame a = QPC__P2P_FRAME__INIT;
    uint8_t *buf;
    size_t len;
    char hex[65];

    if (qpc_envelope_decode(&env, f->envelope.data, f->envelope.len) < 0)
        return;
    qpc_hex_encode(hex, env.id, QPC_ID_LEN);
    ack.id.data = env.id;
    ack.id.len = QPC_ID_LEN;
    ack.status = QPC__STATUS__STATUS_DEFERRED;
    a.body_case = QPC__P2P_FRAME__BODY_ACK;
    a.ack = &ack;
    len = qpc__p2p_frame__get_packed_size(&a);
    buf = malloc(len);
    qpc__p2p_frame__pack(&a, buf);
    qpc_quic_conn_send_frame(c, sid, buf, len);
    free(buf);
    printf("got %s\n", hex);
    if (in->bounce && !in->bounced && memcmp(env.sender, in->peer, 32) != 0) {
        in->bounced = true;
        len = qpc__p2p_frame__get_packed_size(f);
        buf = malloc(len);
        qpc__p2p_frame__pack(f, buf);
        qpc_quic_conn_send_frame(c, in->sid, buf, len);
        free(buf);
        printf("bounced %s\n", hex);
    }
    fflush(stdout);
    qpc_envelope_clear(&env);
}

static void on_frame(struct qpc_quic_conn *c, int64_t sid, const uint8_t *d, size_t n, void *user)
{
    struct inj *in = user;
    Qpc__P2pFrame *f = qpc__p2p_frame__unpack(NULL, n, d);

    if (f != NULL && f->body_case == QPC__P2P_FRAME__BODY_ENVELOPE)
        on_envelope(in, c, sid, f);

    if (f != NULL && f->body_case == QPC__P2P_FRAME__BODY_ACK && in->acks < in->nenvs) {
        printf("ack %s %d\n", in->modes[in->envs[in->acks]], (int)f->ack->status);
        fflush(stdout);
        if (++in->acks == in->nenvs && !in->garbage) {
            in->rc = 0;
            ev_break(in->loop, EVBREAK_ALL);
        }
    }
    if (f != NULL)
        qpc__p2p_frame__free_unpacked(f, NULL);
}

static void on_closed(struct qpc_quic_conn *c, const struct qpc_quic_close_info *info, void *user)
{
    struct inj *in = user;

    if (in->garbage && info->by_peer && in->acks == in->nenvs) {
        printf("closed by peer: %s\n", info->reason);
        fflush(stdout);
        in->rc = 0;
        ev_break(in->loop, EVBREAK_ALL);
    } else if (in->acks < in->nenvs || in->garbage) {
        fprintf(stderr, "connection ended: %s\n", qpc_strerror(info->err));
        in->rc = 3;
        ev_break(in->loop, EVBREAK_ALL);
    }
}

static void timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
    struct inj in = { .rc = 4 };
    struct qpc_quic_config cfg = { 0 };
    struct qpc_quic_endpoint *ep = NULL;
    char host[300], port[8];
    uint16_t p;
    struct addrinfo hints = { .ai_socktype = SOCK_DGRAM }, *res = NULL;
    ev_timer to;

    if (argc < 4 || argc - 3 > MAX_MODES || sodium_init() < 0 ||
        qpc_addr_parse(argv[1], host, sizeof(host), &p) < 0 ||
        qpc_key_from_hex(in.peer, argv[2]) < 0) {
        fprintf(stderr, "usage: qpc_p2p_inject HOST:PORT PEER_KEY MODE...\n");
        return 1;
    }
    in.modes = argv + 3;
    in.nmodes = argc - 3;
    for (int i = 0; i < in.nmodes; i++) {
        if (strncmp(in.modes[i], "garbage=", 8) == 0 || strncmp(in.modes[i], "badenv=", 7) == 0)
            in.garbage = true;
        else if (strcmp(in.modes[i], "bounce") == 0 && (in.bounce || i != in.nmodes - 1)) {
            fprintf(stderr, "bounce comes last, once\n");
            return 1;
        } else {
            in.bounce |= strcmp(in.modes[i], "bounce") == 0;
            in.envs[in.nenvs++] = i;
        }
    }
    crypto_sign_keypair(in.pk, in.sk);
    in.box = qpc_box_cache_new(in.sk);
    in.loop = EV_DEFAULT;
    snprintf(port, sizeof(port), "%u", p);
    if (getaddrinfo(host, port, &hints, &res) != 0)
        return 1;
    cfg.bind_addr = res->ai_family == AF_INET ? "0.0.0.0" : "::";
    cfg.identity_sk = in.sk;
    cfg.cb.on_connected = on_connected;
    cfg.cb.on_frame = on_frame;
    cfg.cb.on_closed = on_closed;
    cfg.user = &in;
    if (qpc_quic_endpoint_new(&ep, in.loop, &cfg) < 0 ||
        qpc_quic_connect(ep, res->ai_addr, res->ai_addrlen, QPC_ALPN_P2P, in.peer, &in, NULL) < 0) {
        fprintf(stderr, "cannot connect\n");
        return 1;
    }
    freeaddrinfo(res);
    ev_timer_init(&to, timeout_cb, 20.0, 0.0);
    ev_timer_start(in.loop, &to);
    ev_run(in.loop, 0);
    qpc_quic_endpoint_free(ep);
    qpc_box_cache_free(in.box);
    free(in.last_valid);
    return in.rc;
}
