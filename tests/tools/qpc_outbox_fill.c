/*
 * qpc_outbox_fill: writes messages straight into a client's outbox, as qpc would have
 * held them while their recipient was away, for tests of what the client does with a
 * large outbox at start.
 *
 *   qpc_outbox_fill DATA_DIR RECIPIENT_KEY COUNT
 *
 * Each message is a DirectContent text "fill N" from the identity in DATA_DIR to
 * RECIPIENT_KEY (signed, boxed), held as an outbox row under "p2p" together with its
 * "await" row (the client waits for its receipt), committed 1000 at a time. The client
 * must not be running. Exit 0, or 1 with a message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sodium.h>

#include "qpc/direct.h"
#include "qpc/encoding.h"
#include "qpc/envelope.h"
#include "qpc/error.h"
#include "qpc/identity.h"
#include "qpc/queue.h"

static uint64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int failures;

static void done_cb(void *arg, int status, uint64_t seq)
{
    if (status != 0)
        failures++;
}

int main(int argc, char **argv)
{
    char path[4096], err[512];
    struct qpc_identity *id = NULL;
    struct qpc_queue *q = NULL;
    struct qpc_box_cache *box;
    uint8_t rcpt[QPC_KEY_LEN];
    unsigned long count;
    uint64_t now = wall_ms();

    if (argc != 4 || sodium_init() < 0 || qpc_key_from_hex(rcpt, argv[2]) < 0 ||
        (count = strtoul(argv[3], NULL, 10)) == 0) {
        fprintf(stderr, "usage: qpc_outbox_fill DATA_DIR RECIPIENT_KEY COUNT\n");
        return 1;
    }
    snprintf(path, sizeof(path), "%s/identity.json", argv[1]);
    if (qpc_identity_load(path, &id, err, sizeof(err)) < 0) {
        fprintf(stderr, "qpc_outbox_fill: %s\n", err);
        return 1;
    }
    snprintf(path, sizeof(path), "%s/outbox.db", argv[1]);
    if (qpc_queue_open(path, &(struct qpc_queue_limits){ .sync = QPC_QUEUE_SYNC_NORMAL }, &q, err,
                       sizeof(err)) < 0) {
        fprintf(stderr, "qpc_outbox_fill: %s\n", err);
        return 1;
    }
    box = qpc_box_cache_new(qpc_identity_secret_key(id));
    for (unsigned long i = 0; i < count; i++) {
        struct qpc_envelope env = { 0 };
        uint8_t *plain = NULL, *boxed = NULL, *wire = NULL, created[8];
        size_t plen = 0, blen = 0, wlen = 0;
        char text[64];
        int rc;

        snprintf(text, sizeof(text), "fill %lu", i);
        rc = qpc_direct_encode_text(text, strlen(text), NULL, &plain, &plen);
        if (rc == 0)
            rc = qpc_box_seal(box, rcpt, plain, plen, &boxed, &blen);
        if (rc == 0)
            rc = qpc_envelope_init(&env, qpc_identity_secret_key(id), rcpt, NULL, now, 3600, 8, boxed, blen);
        if (rc == 0)
            rc = qpc_envelope_encode(&env, &wire, &wlen);
        for (int k = 0; k < 8; k++)
            created[k] = (uint8_t)(env.created_at_ms >> (56 - 8 * k));
        if (rc == 0)
            rc = qpc_queue_outbox_add(q, "p2p", rcpt, env.id, qpc_envelope_expires_at_ms(&env), wire, wlen,
                                      now, done_cb, NULL);
        if (rc == 0)
            rc = qpc_queue_outbox_add(q, "await", rcpt, env.id, qpc_envelope_expires_at_ms(&env), created,
                                      sizeof(created), now, done_cb, NULL);
        free(plain);
        free(boxed);
        free(wire);
        qpc_envelope_clear(&env);
        if (rc < 0) {
            fprintf(stderr, "qpc_outbox_fill: message %lu: %s\n", i, qpc_strerror(rc));
            return 1;
        }
        if ((i + 1) % 1000 == 0 && qpc_queue_commit(q) < 0) {
            fprintf(stderr, "qpc_outbox_fill: commit: %s\n", qpc_queue_errmsg(q));
            return 1;
        }
    }
    if (qpc_queue_commit(q) < 0 || failures > 0) {
        fprintf(stderr, "qpc_outbox_fill: %d rows not stored: %s\n", failures, qpc_queue_errmsg(q));
        return 1;
    }
    qpc_box_cache_free(box);
    qpc_queue_close(q);
    qpc_identity_free(id);
    printf("filled %lu\n", count);
    return 0;
}
