/*
 * fuzz_relay.c: libFuzzer target for relay datagrams, 0x01 || 32-byte key || one QUIC
 * packet, on both sides of the relay:
 *   - the node's check of a client's datagram (src/server/request.c,
 *     request_relay_destination: tag, length, where the destination key is);
 *   - the client's split of what its node relays (src/client/inbound.c,
 *     inbound_relay_datagram), then the QUIC packet handed to a real accepting P2P
 *     endpoint through a relay path (qpc_quic_endpoint_input_relayed: header parse,
 *     connection lookup, an Initial accepted into a handshake), as dial.c does.
 * Each input gets its own relay path, freed after it (its connections end when the loop
 * turns), so no input leaves state behind for the next. The endpoint's replies go to a
 * send function that drops them. Nothing may crash, leak or read out of bounds.
 * Seeds: fuzz/corpus/fuzz_relay/ (tests/tools/qpc_fuzz_seeds.c: a real client Initial).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <ev.h>
#include <sodium.h>

#include "inbound.h"
#include "qpc/quic.h"
#include "request.h"

static struct ev_loop *loop;
static struct qpc_quic_endpoint *ep;
static size_t replies;

static int drop_reply(void *user, const uint8_t *pkt, size_t len)
{
    (void)user, (void)pkt, (void)len;
    replies++;
    return 0;
}

static void setup(void)
{
    uint8_t seed[crypto_sign_SEEDBYTES], pk[crypto_sign_PUBLICKEYBYTES];
    uint8_t sk[crypto_sign_SECRETKEYBYTES];
    struct qpc_quic_config cfg = { .bind_addr = "127.0.0.1", .accept = true,
                                   .alpns = { QPC_ALPN_P2P, NULL } };

    if (sodium_init() < 0)
        abort();
    memset(seed, 2, sizeof(seed));   /* the seeds' recipient */
    crypto_sign_seed_keypair(pk, sk, seed);
    cfg.identity_sk = sk;
    loop = ev_loop_new(EVFLAG_AUTO);
    if (loop == NULL || qpc_quic_endpoint_new(&ep, loop, &cfg) != 0)
        abort();
    sodium_memzero(sk, sizeof(sk));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *key, *pkt, *dest;
    struct qpc_quic_relay *relay = NULL;
    size_t len;

    if (ep == NULL)
        setup();
    dest = request_relay_destination(data, size, QPC_QUIC_DATAGRAM_MAX);
    if (dest != NULL && (size <= REQUEST_RELAY_HEADER || size > QPC_QUIC_DATAGRAM_MAX ||
                         dest != data + 1))
        abort();
    if (!inbound_relay_datagram(data, size, &key, &pkt, &len))
        return 0;
    if (key != data + 1 || pkt != data + 1 + QPC_KEY_LEN || len + 1 + QPC_KEY_LEN != size)
        abort();
    if (qpc_quic_relay_new(ep, drop_reply, NULL, &relay) != 0)
        abort();
    if (qpc_quic_endpoint_input_relayed(ep, relay, pkt, len) != 0)
        abort();
    qpc_quic_relay_free(relay);
    ev_run(loop, EVRUN_NOWAIT);   /* the closes of what the packet started */
    return 0;
}
