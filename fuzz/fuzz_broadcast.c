/*
 * fuzz_broadcast.c: broadcast payloads are opened from bytes any relay may have forged.
 * The input is tried two ways: as the payload of a fixed broadcast header, and as a whole
 * encoded envelope opened through a channel set. Neither may crash, leak or read out of
 * bounds; authentication must simply fail.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qpc/broadcast.h"
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (channels == NULL)
        setup();
    open_as_payload(data, size);
    open_as_envelope(data, size);
    return 0;
}
