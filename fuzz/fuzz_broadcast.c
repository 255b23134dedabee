/*
 * fuzz_broadcast.c: broadcast payloads are opened from bytes any relay may have forged.
 * The input is tried three ways: as the payload of a fixed broadcast header, as a whole
 * encoded envelope opened through a channel set, and as a BroadcastBatch (decoded with
 * its bounds, taken into a fresh vouch table at the seeds' time: a batch that decodes
 * re-encodes to the same bytes, and one taken once is known the second time). None may
 * crash, leak or read out of bounds; authentication must simply fail.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qpc/broadcast.h"
#include "qpc/broadcast_batch.h"
#include "qpc/envelope.h"

static struct qpc_channel_set *channels;
static const struct qpc_channel *fuzz_channel;

static void setup(void)
{
    static const uint8_t private_key[QPC_KEY_LEN] = { 1, 2, 3, 4 };

    channels = qpc_broadcast_set_new();
    if (channels == NULL)
        abort();
    if (qpc_broadcast_subscribe(channels, "fuzz", NULL, &fuzz_channel) != 0)
        abort();
    if (qpc_broadcast_subscribe(channels, "private", private_key, NULL) != 0)
        abort();
}

static void open_as_payload(const uint8_t *data, size_t size)
{
    struct qpc_envelope env = {
        .version = QPC_ENVELOPE_VERSION, .topic = (char *)"fuzz",
        .created_at_ms = 1700000000000ull, .ttl_s = 3600, .max_hops = 8,
        .payload = (uint8_t *)data, .payload_len = size,
    };
    uint8_t *out = NULL;
    size_t out_len = 0;

    if (qpc_broadcast_open(fuzz_channel, &env, &out, &out_len) == 0)
        free(out);
}

static void open_as_envelope(const uint8_t *data, size_t size)
{
    struct qpc_envelope env = { 0 };
    uint8_t *out = NULL;
    size_t out_len = 0;

    if (qpc_envelope_decode(&env, data, size) != 0)
        return;
    if (qpc_broadcast_open_envelope(channels, &env, &out, &out_len) == 0)
        free(out);
    qpc_envelope_clear(&env);
}

#define NOW 1700000000000ull   /* the seeds' time (tests/tools/qpc_fuzz_seeds.c) */

static void take_as_batch(const uint8_t *data, size_t size)
{
    struct qpc_broadcast_batch b;
    struct qpc_batch_vouches *v;
    uint8_t *wire = NULL;
    size_t len = 0;

    if (qpc_broadcast_batch_decode(&b, data, size) != 0)
        return;
    /* decode accepts only what encode writes: the same bytes come back. */
    if (qpc_broadcast_batch_encode(&b, &wire, &len) != 0 || len != size || memcmp(wire, data, size) != 0)
        abort();
    free(wire);
    if ((v = qpc_batch_vouches_new(8)) == NULL)   /* small: the eviction runs too */
        abort();
    if (qpc_batch_vouches_take(v, &b, NOW) == 1 && qpc_batch_vouches_take(v, &b, NOW + 1) != 0)
        abort();
    qpc_batch_vouches_free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (channels == NULL)
        setup();
    open_as_payload(data, size);
    open_as_envelope(data, size);
    take_as_batch(data, size);
    return 0;
}
