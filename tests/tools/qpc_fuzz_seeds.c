/*
 * qpc_fuzz_seeds: writes the seed corpora of the fuzz targets that need valid protobuf
 * or sealed payloads to get past their first check:
 *
 *   qpc_fuzz_seeds DIR     (the checked-in seeds: qpc_fuzz_seeds fuzz/corpus)
 *
 * DIR/fuzz_server_request/  a ClientRequest of every kind (enqueue and batch with
 *                           envelopes that pass every item check at the target's fixed
 *                           time, fetch, ack, push, peer_info, broadcast, an unknown
 *                           kind) and a relay datagram
 * DIR/fuzz_federation/      relay_enqueue, relay_broadcast, a FederationResponse
 * DIR/fuzz_wire/            frame streams (several frames, an empty one, a split header)
 * DIR/fuzz_broadcast/       a payload sealed for the target's fixed header, a whole
 *                           broadcast envelope
 * DIR/fuzz_announce/        a MeshAnnounce with addresses and a domain, and one passed
 *                           on two hops
 *
 * Keys and times are the targets' fixed ones (sender seed 32 x 0x01, recipient seed
 * 32 x 0x02, now 1700000000000 ms), so the output is the same on every run except for
 * random nonces.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sodium.h>

#include "qpc/announce.h"
#include "qpc/broadcast.h"
#include "qpc/envelope.h"
#include "qpc/wire.h"
#include "qpc/proto.h"

#define NOW 1700000000000ull

static const char *out_dir;
static uint8_t sender_pk[32], sender_sk[64], rcpt_pk[32], rcpt_sk[64];

static void die(const char *what)
{
    fprintf(stderr, "qpc_fuzz_seeds: %s\n", what);
    exit(1);
}

static void write_seed(const char *target, const char *name, const uint8_t *data, size_t len)
{
    char path[1024];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", out_dir, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        die(path);
    snprintf(path, sizeof(path), "%s/%s/%s", out_dir, target, name);
    f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0)
        die(path);
}

static void write_message(const char *target, const char *name, const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len > 0 ? len : 1);

    if (buf == NULL)
        die("out of memory");
    protobuf_c_message_pack(m, buf);
    write_seed(target, name, buf, len);
    free(buf);
}

/* A direct envelope from the sender to the recipient, encoded. */
static void direct(const char *text, ProtobufCBinaryData *out)
{
    struct qpc_envelope env = { 0 };

    if (qpc_envelope_init(&env, sender_sk, rcpt_pk, NULL, NOW, 3600, 8, (const uint8_t *)text,
                          strlen(text)) != 0 ||
        qpc_envelope_encode(&env, &out->data, &out->len) != 0)
        die("direct envelope");
    qpc_envelope_clear(&env);
}

/* A broadcast envelope on the open channel "fuzz", encoded. */
static void broadcast(const struct qpc_channel *ch, const char *text, ProtobufCBinaryData *out)
{
    struct qpc_envelope env = { 0 };

    if (qpc_broadcast_envelope_new(ch, sender_sk, NOW, 3600, 8, (const uint8_t *)text,
                                   strlen(text), &env) != 0 ||
        qpc_envelope_encode(&env, &out->data, &out->len) != 0)
        die("broadcast envelope");
    qpc_envelope_clear(&env);
}

static void item_of(Qpc__EnqueueItem *item, ProtobufCBinaryData *env, const char *domain)
{
    qpc__enqueue_item__init(item);
    item->recipient.data = rcpt_pk;
    item->recipient.len = sizeof(rcpt_pk);
    item->domain = (char *)domain;
    item->envelope = *env;
}

static void client_seeds(const struct qpc_channel *ch)
{
    const char *T = "fuzz_server_request";
    Qpc__ClientRequest req = QPC__CLIENT_REQUEST__INIT;
    Qpc__EnqueueRequest er = QPC__ENQUEUE_REQUEST__INIT;
    Qpc__BatchEnqueueRequest br = QPC__BATCH_ENQUEUE_REQUEST__INIT;
    Qpc__FetchRequest fr = QPC__FETCH_REQUEST__INIT;
    Qpc__AckRequest ar = QPC__ACK_REQUEST__INIT;
    Qpc__PushRequest pr = QPC__PUSH_REQUEST__INIT;
    Qpc__PeerInfoRequest pi = QPC__PEER_INFO_REQUEST__INIT;
    Qpc__BroadcastRequest bc = QPC__BROADCAST_REQUEST__INIT;
    Qpc__EnqueueItem items[3], *ptrs[3] = { &items[0], &items[1], &items[2] };
    ProtobufCBinaryData envs[3], bcast;
    uint64_t seqs[] = { 1, 2, 300, 70000 };
    uint8_t dgram[1 + 32 + 16];

    direct("hello", &envs[0]);
    direct("second message", &envs[1]);
    direct("for a remote node", &envs[2]);
    broadcast(ch, "bulletin", &bcast);

    req.request_id = 1;
    item_of(&items[0], &envs[0], "");
    er.item = &items[0];
    req.body_case = QPC__CLIENT_REQUEST__BODY_ENQUEUE;
    req.enqueue = &er;
    write_message(T, "enqueue", &req.base);

    item_of(&items[1], &envs[1], "");
    item_of(&items[2], &envs[2], "other.mesh");
    br.n_items = 3;
    br.items = ptrs;
    req.request_id = 2;
    req.body_case = QPC__CLIENT_REQUEST__BODY_BATCH_ENQUEUE;
    req.batch_enqueue = &br;
    write_message(T, "batch", &req.base);

    fr.after_seq = 41;
    fr.limit = 256;
    req.request_id = 3;
    req.body_case = QPC__CLIENT_REQUEST__BODY_FETCH;
    req.fetch = &fr;
    write_message(T, "fetch", &req.base);

    ar.up_to_seq = 40;
    ar.n_seqs = sizeof(seqs) / sizeof(seqs[0]);
    ar.seqs = seqs;
    req.request_id = 4;
    req.body_case = QPC__CLIENT_REQUEST__BODY_ACK;
    req.ack = &ar;
    write_message(T, "ack", &req.base);

    pr.enable = true;
    req.request_id = 5;
    req.body_case = QPC__CLIENT_REQUEST__BODY_PUSH;
    req.push = &pr;
    write_message(T, "push", &req.base);

    pi.key.data = rcpt_pk;
    pi.key.len = sizeof(rcpt_pk);
    req.request_id = 6;
    req.body_case = QPC__CLIENT_REQUEST__BODY_PEER_INFO;
    req.peer_info = &pi;
    write_message(T, "peer_info", &req.base);

    bc.envelope = bcast;
    req.request_id = 7;
    req.body_case = QPC__CLIENT_REQUEST__BODY_BROADCAST;
    req.broadcast = &bc;
    write_message(T, "broadcast", &req.base);

    req.request_id = 8;
    req.body_case = QPC__CLIENT_REQUEST__BODY__NOT_SET;
    write_message(T, "unknown", &req.base);

    dgram[0] = 0x01;
    memcpy(dgram + 1, rcpt_pk, 32);
    memset(dgram + 33, 0xc3, 16);   /* looks like a QUIC short-header packet */
    write_seed(T, "relay_datagram", dgram, sizeof(dgram));

    for (int i = 0; i < 3; i++)
        free(envs[i].data);
    free(bcast.data);
}

static void federation_seeds(const struct qpc_channel *ch)
{
    const char *T = "fuzz_federation";
    Qpc__FederationRequest req = QPC__FEDERATION_REQUEST__INIT;
    Qpc__RelayEnqueueRequest re = QPC__RELAY_ENQUEUE_REQUEST__INIT;
    Qpc__RelayBroadcastRequest rb = QPC__RELAY_BROADCAST_REQUEST__INIT;
    Qpc__FederationResponse resp = QPC__FEDERATION_RESPONSE__INIT;
    Qpc__EnqueueItem items[2], *ptrs[2] = { &items[0], &items[1] };
    ProtobufCBinaryData envs[2], bcasts[2];
    Qpc__Status statuses[] = { QPC__STATUS__STATUS_OK, QPC__STATUS__STATUS_QUEUE_FULL,
                               QPC__STATUS__STATUS_FORBIDDEN, QPC__STATUS__STATUS_DEFERRED };

    direct("relayed one", &envs[0]);
    direct("relayed two", &envs[1]);
    broadcast(ch, "flooded one", &bcasts[0]);
    broadcast(ch, "flooded two", &bcasts[1]);

    item_of(&items[0], &envs[0], "b.mesh.test");
    item_of(&items[1], &envs[1], "b.mesh.test");
    re.origin_domain = "a.mesh.test";
    re.n_items = 2;
    re.items = ptrs;
    req.request_id = 1;
    req.body_case = QPC__FEDERATION_REQUEST__BODY_RELAY_ENQUEUE;
    req.relay_enqueue = &re;
    write_message(T, "relay_enqueue", &req.base);

    rb.origin_domain = "a.mesh.test";
    rb.n_envelopes = 2;
    rb.envelopes = bcasts;
    req.request_id = 2;
    req.body_case = QPC__FEDERATION_REQUEST__BODY_RELAY_BROADCAST;
    req.relay_broadcast = &rb;
    write_message(T, "relay_broadcast", &req.base);

    resp.request_id = 1;
    resp.n_statuses = sizeof(statuses) / sizeof(statuses[0]);
    resp.statuses = statuses;
    write_message(T, "response", &resp.base);

    for (int i = 0; i < 2; i++) {
        free(envs[i].data);
        free(bcasts[i].data);
    }
}

/* fuzz_wire: byte 0 seeds the piece sizes, the rest is a stream of frames. */
static void wire_seeds(void)
{
    uint8_t buf[512];
    size_t n = 0;

    buf[n++] = 7;
    for (uint32_t len = 0; len < 40; len += 13) {
        qpc_wire_header_encode(buf + n, len);
        n += QPC_WIRE_HEADER_LEN;
        memset(buf + n, 'a' + (int)len % 26, len);
        n += len;
    }
    write_seed("fuzz_wire", "frames", buf, n);
    n = 0;
    buf[n++] = 2;                    /* pieces of 3 bytes: headers split across feeds */
    qpc_wire_header_encode(buf + n, 300);
    n += QPC_WIRE_HEADER_LEN;
    memset(buf + n, 'z', 300);
    n += 300;
    write_seed("fuzz_wire", "split_header", buf, n);
    n = 0;
    buf[n++] = 63;
    qpc_wire_header_encode(buf + n, 4096);   /* at the target's limit, then cut short */
    n += QPC_WIRE_HEADER_LEN;
    memset(buf + n, 'q', 64);
    n += 64;
    write_seed("fuzz_wire", "truncated_max", buf, n);
}

/* fuzz_broadcast: the payload of its fixed header, and a whole envelope. */
static void broadcast_seeds(const struct qpc_channel *ch)
{
    struct qpc_envelope hdr = {
        .version = QPC_ENVELOPE_VERSION, .topic = (char *)"fuzz",
        .created_at_ms = NOW, .ttl_s = 3600, .max_hops = 8,
    };
    ProtobufCBinaryData whole;
    uint8_t *sealed = NULL;
    size_t sealed_len = 0;

    if (qpc_broadcast_seal(ch, &hdr, (const uint8_t *)"sealed for the fuzz header", 26, &sealed,
                           &sealed_len) != 0)
        die("seal");
    write_seed("fuzz_broadcast", "sealed_payload", sealed, sealed_len);
    free(sealed);
    broadcast(ch, "a whole broadcast envelope", &whole);
    write_seed("fuzz_broadcast", "envelope", whole.data, whole.len);
    free(whole.data);
}

/* fuzz_announce: the sender's announce as its neighbour sees it, and two hops on. */
static void announce_seeds(void)
{
    static const char *const addrs[] = { "192.0.2.1:7000", "[2001:db8::1]:7000" };
    struct qpc_announce a;
    struct qpc_announce_pb s;

    if (qpc_announce_create(&a, sender_sk, 7, NOW, 30, 8, addrs, 2, "a.mesh.test") != 0)
        die("announce");
    qpc_announce_to_pb(&a, &s);
    write_message("fuzz_announce", "origin", &s.pb.base);
    if (qpc_announce_forward(&a) != 0 || qpc_announce_forward(&a) != 0)
        die("announce forward");
    qpc_announce_to_pb(&a, &s);
    write_message("fuzz_announce", "two_hops", &s.pb.base);
}

int main(int argc, char **argv)
{
    uint8_t seed[32];
    struct qpc_channel_set *set;
    const struct qpc_channel *ch = NULL;

    if (argc != 2) {
        fprintf(stderr, "usage: qpc_fuzz_seeds DIR   (e.g. fuzz/corpus)\n");
        return 1;
    }
    out_dir = argv[1];
    if (sodium_init() < 0)
        die("libsodium");
    memset(seed, 1, sizeof(seed));
    crypto_sign_seed_keypair(sender_pk, sender_sk, seed);
    memset(seed, 2, sizeof(seed));
    crypto_sign_seed_keypair(rcpt_pk, rcpt_sk, seed);
    set = qpc_broadcast_set_new();
    if (set == NULL || qpc_broadcast_subscribe(set, "fuzz", NULL, &ch) != 0)
        die("channel");
    client_seeds(ch);
    federation_seeds(ch);
    wire_seeds();
    broadcast_seeds(ch);
    announce_seeds();
    qpc_broadcast_set_free(set);
    printf("seeds written under %s\n", out_dir);
    return 0;
}
