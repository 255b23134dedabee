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
 * DIR/fuzz_client_message/  a ServerMessage of every kind the client acts on (fetch page,
 *                           push, push_ack, peer_info, punch notice, path, broadcast,
 *                           error, enqueue and broadcast answers)
 * DIR/fuzz_p2p/             P2pFrames: an envelope, an ack, PathCandidates, an unknown kind
 * DIR/fuzz_relay/           relay datagrams: a real client Initial of the P2P ALPN (made
 *                           by an endpoint through a relay path), a short-header packet
 * DIR/fuzz_mdns/            TXT rdata of a peer's and a node's announcement
 * DIR/fuzz_announce/        a MeshAnnounce with addresses and a domain, and one passed
 *                           on two hops (also as a ClientRequest in fuzz_server_request/
 *                           and as a FederationRequest in fuzz_federation/)
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
#include <ev.h>
#include <sodium.h>
#include <avahi-common/strlst.h>

#include "qpc/announce.h"
#include "qpc/broadcast.h"
#include "qpc/broadcast_batch.h"
#include "qpc/encoding.h"
#include "qpc/quic.h"
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
/* A batch over three broadcasts of the sender at NOW: it verifies in the fuzz target. */
static void batch_seed(const struct qpc_channel *ch)
{
    struct qpc_envelope env = { 0 };
    struct qpc_broadcast_batch b;
    uint8_t digests[3][QPC_ID_LEN];
    uint8_t *wire = NULL;
    size_t len = 0;

    for (size_t i = 0; i < 3; i++) {
        if (qpc_broadcast_envelope_new(ch, sender_sk, NOW, 3600, 8, (const uint8_t *)"one of three", 12, &env) != 0 ||
            qpc_broadcast_batch_digest(&env, digests[i]) != 0)
            die("batch envelope");
        qpc_envelope_clear(&env);
    }
    if (qpc_broadcast_batch_sign(&b, sender_sk, (const uint8_t (*)[QPC_ID_LEN])digests, 3, NOW) != 0 ||
        qpc_broadcast_batch_encode(&b, &wire, &len) != 0)
        die("batch");
    write_seed("fuzz_broadcast", "batch", wire, len);
    free(wire);
}

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
    batch_seed(ch);
}

static void client_message_seeds(const struct qpc_channel *ch)
{
    const char *T = "fuzz_client_message";
    Qpc__ServerMessage m = QPC__SERVER_MESSAGE__INIT;
    Qpc__FetchResponse fr = QPC__FETCH_RESPONSE__INIT;
    Qpc__Push push = QPC__PUSH__INIT;
    Qpc__PushResponse pa = QPC__PUSH_RESPONSE__INIT;
    Qpc__PeerInfoResponse pi = QPC__PEER_INFO_RESPONSE__INIT;
    Qpc__PunchNotice pn = QPC__PUNCH_NOTICE__INIT;
    Qpc__PathResponse path = QPC__PATH_RESPONSE__INIT;
    Qpc__BroadcastNotice bn = QPC__BROADCAST_NOTICE__INIT;
    Qpc__BroadcastResponse ba = QPC__BROADCAST_RESPONSE__INIT;
    Qpc__EnqueueResponse er = QPC__ENQUEUE_RESPONSE__INIT;
    Qpc__QueuedEnvelope q[2] = { QPC__QUEUED_ENVELOPE__INIT, QPC__QUEUED_ENVELOPE__INIT };
    Qpc__QueuedEnvelope *items[2] = { &q[0], &q[1] };
    ProtobufCBinaryData envs[2], bcast;
    char *observed[] = { "203.0.113.5:40123", "[2001:db8::1]:4433" };
    char *cands[] = { "192.168.1.20:4433", "10.0.0.7:4433", "[fd00::7]:4433", "127.0.0.1:4433" };

    direct("fetched one", &envs[0]);
    direct("fetched two", &envs[1]);
    broadcast(ch, "flooded", &bcast);
    for (int i = 0; i < 2; i++) {
        q[i].seq = 100 + (uint64_t)i;
        q[i].envelope = envs[i];
    }
    m.request_id = 1;
    m.body_case = QPC__SERVER_MESSAGE__BODY_FETCH;
    fr.status = QPC__STATUS__STATUS_OK;
    fr.items = items;
    fr.n_items = 2;
    fr.more = true;
    m.fetch = &fr;
    write_message(T, "fetch_page", &m.base);

    m.request_id = 0;
    m.body_case = QPC__SERVER_MESSAGE__BODY_PUSH;
    push.items = items;
    push.n_items = 1;
    m.push = &push;
    write_message(T, "push", &m.base);

    m.request_id = 2;
    m.body_case = QPC__SERVER_MESSAGE__BODY_PUSH_ACK;
    pa.domain = "node.example.org";
    m.push_ack = &pa;
    write_message(T, "push_ack", &m.base);

    m.request_id = 3;
    m.body_case = QPC__SERVER_MESSAGE__BODY_PEER_INFO;
    pi.online = true;
    pi.addresses = observed;
    pi.n_addresses = 2;
    pi.candidates = cands;
    pi.n_candidates = 4;
    m.peer_info = &pi;
    write_message(T, "peer_info", &m.base);

    m.request_id = 0;
    m.body_case = QPC__SERVER_MESSAGE__BODY_PUNCH;
    pn.key.data = sender_pk;
    pn.key.len = sizeof(sender_pk);
    pn.addresses = observed;
    pn.n_addresses = 1;
    pn.candidates = cands;
    pn.n_candidates = 3;
    m.punch = &pn;
    write_message(T, "punch_notice", &m.base);

    m.request_id = 4;
    m.body_case = QPC__SERVER_MESSAGE__BODY_PATH;
    path.status = QPC__STATUS__STATUS_RATE_LIMITED;
    path.observed = observed[0];
    path.candidates = 3;
    m.path = &path;
    write_message(T, "path", &m.base);

    m.request_id = 0;
    m.body_case = QPC__SERVER_MESSAGE__BODY_BROADCAST;
    bn.envelope = bcast;
    m.broadcast = &bn;
    write_message(T, "broadcast", &m.base);

    m.request_id = 5;
    m.body_case = QPC__SERVER_MESSAGE__BODY_BROADCAST_ACK;
    ba.status = QPC__STATUS__STATUS_DUPLICATE;
    m.broadcast_ack = &ba;
    write_message(T, "broadcast_ack", &m.base);

    m.request_id = 6;
    m.body_case = QPC__SERVER_MESSAGE__BODY_ERROR;
    er.status = QPC__STATUS__STATUS_INVALID;
    er.detail = "malformed request";
    m.error = &er;
    write_message(T, "error", &m.base);

    m.request_id = 7;
    m.body_case = QPC__SERVER_MESSAGE__BODY_ENQUEUE;
    er.status = QPC__STATUS__STATUS_DEFERRED;
    er.detail = "";
    m.enqueue = &er;
    write_message(T, "enqueue_answer", &m.base);

    for (int i = 0; i < 2; i++)
        free(envs[i].data);
    free(bcast.data);
}

static void p2p_seeds(void)
{
    const char *T = "fuzz_p2p";
    Qpc__P2pFrame f = QPC__P2P_FRAME__INIT;
    Qpc__P2pAck ack = QPC__P2P_ACK__INIT;
    Qpc__PathCandidates pc = QPC__PATH_CANDIDATES__INIT;
    ProtobufCBinaryData env;
    uint8_t id[32];
    char *addrs[] = { "192.168.1.20:4433", "[2001:db8::20]:4433", "203.0.113.9:61000" };

    direct("on a link", &env);
    f.body_case = QPC__P2P_FRAME__BODY_ENVELOPE;
    f.envelope = env;
    write_message(T, "envelope", &f.base);

    memset(id, 0x5a, sizeof(id));
    f.body_case = QPC__P2P_FRAME__BODY_ACK;
    ack.id.data = id;
    ack.id.len = sizeof(id);
    ack.status = QPC__STATUS__STATUS_DEFERRED;
    f.ack = &ack;
    write_message(T, "ack", &f.base);

    f.body_case = QPC__P2P_FRAME__BODY_CANDIDATES;
    pc.addresses = addrs;
    pc.n_addresses = 3;
    pc.observed = "198.51.100.4:50000";
    pc.instance = 0x0123456789abcdefull;
    pc.links = 1;
    f.candidates = &pc;
    write_message(T, "candidates", &f.base);

    f.body_case = QPC__P2P_FRAME__BODY__NOT_SET;
    write_message(T, "unknown_kind", &f.base);
    free(env.data);
}

/* The first packet a P2P dial through a relay path sends: a real, decryptable Initial. */
struct first_packet {
    uint8_t pkt[1500];
    size_t len;
};

static int keep_first(void *user, const uint8_t *pkt, size_t len)
{
    struct first_packet *fp = user;

    if (fp->len == 0 && len <= sizeof(fp->pkt)) {
        memcpy(fp->pkt, pkt, len);
        fp->len = len;
    }
    return 0;
}

static void relay_seeds(void)
{
    const char *T = "fuzz_relay";
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct qpc_quic_config cfg = { .bind_addr = "127.0.0.1" };
    struct qpc_quic_endpoint *ep = NULL;
    struct qpc_quic_relay *relay = NULL;
    struct first_packet fp = { .len = 0 };
    uint8_t dgram[1 + 32 + 1500];

    cfg.identity_sk = sender_sk;
    if (loop == NULL || qpc_quic_endpoint_new(&ep, loop, &cfg) != 0 ||
        qpc_quic_relay_new(ep, keep_first, &fp, &relay) != 0 ||
        qpc_quic_connect_relayed(ep, relay, QPC_ALPN_P2P, rcpt_pk, NULL, NULL) != 0)
        die("relay endpoint");
    for (int i = 0; i < 100 && fp.len == 0; i++)
        ev_run(loop, EVRUN_NOWAIT);
    if (fp.len == 0)
        die("no Initial came out of the relay path");
    dgram[0] = 0x01;
    memcpy(dgram + 1, sender_pk, 32);
    memcpy(dgram + 33, fp.pkt, fp.len);
    write_seed(T, "initial", dgram, 33 + fp.len);
    memset(dgram + 33, 0x43, 40);   /* a short-header packet for no known connection */
    write_seed(T, "short_header", dgram, 33 + 40);
    qpc_quic_endpoint_free(ep);
    ev_loop_destroy(loop);
}

static void mdns_seeds(void)
{
    char peer[80], hex[65];
    uint8_t buf[1024];
    AvahiStringList *l;
    size_t n;

    qpc_key_to_hex(hex, sender_pk);
    snprintf(peer, sizeof(peer), "peer=%s", hex);
    l = avahi_string_list_new("ver=1", peer, "p2p=192.168.1.20:4433,[2001:db8::20]:4433", NULL);
    if (l == NULL || (n = avahi_string_list_serialize(l, buf, sizeof(buf))) == 0)
        die("txt");
    write_seed("fuzz_mdns", "peer", buf, n);
    avahi_string_list_free(l);
    l = avahi_string_list_new("ver=1", "server=192.168.1.1:4433", "domain=node.example.org",
                              "ver=2", "noequals", NULL);
    if (l == NULL || (n = avahi_string_list_serialize(l, buf, sizeof(buf))) == 0)
        die("txt");
    write_seed("fuzz_mdns", "node", buf, n);
    avahi_string_list_free(l);
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
    {
        /* The same announce as a client's and as a node's request. */
        Qpc__ClientRequest creq = QPC__CLIENT_REQUEST__INIT;
        Qpc__FederationRequest freq = QPC__FEDERATION_REQUEST__INIT;

        creq.request_id = 9;
        creq.body_case = QPC__CLIENT_REQUEST__BODY_ANNOUNCE;
        creq.announce = &s.pb;
        write_message("fuzz_server_request", "announce", &creq.base);
        freq.request_id = 9;
        freq.body_case = QPC__FEDERATION_REQUEST__BODY_ANNOUNCE;
        freq.announce = &s.pb;
        write_message("fuzz_federation", "announce", &freq.base);
    }
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
    client_message_seeds(ch);
    p2p_seeds();
    relay_seeds();
    mdns_seeds();
    announce_seeds();
    qpc_broadcast_set_free(set);
    printf("seeds written under %s\n", out_dir);
    return 0;
}
