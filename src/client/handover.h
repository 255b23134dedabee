/*
 * handover.h: custody in motion: holding an envelope, and handing what is held to the
 * next holder (handover.c).
 */
#ifndef QPC_CLIENT_HANDOVER_H
#define QPC_CLIENT_HANDOVER_H

#include <stdint.h>

#include "client.h"

/*
 * Holds env: persisted in the outbox (committed), then queued in the store, which takes
 * it (env is moved and zeroed on success). On failure nothing stays persisted and env is
 * still the caller's. Returns 0 or a QPC_ERR_* of the outbox or the store.
 */
int handover_hold(struct client *cl, struct qpc_envelope *env, uint64_t now);

/*
 * Sends what can go now: held queues whose recipient (or its route's next peer) has a
 * link up, and parked envelopes whose link died or whose holder refused for now. Each
 * moves into custody as handed to that link.
 */
void handover_flush(struct client *cl);

/*
 * P2P gives up on key for now: what is held for it is parked (kept in the outbox for
 * the next link), and my own envelopes among it are enqueued at the server too when a
 * session is up (a server accepts envelopes from their sender alone); the user is told
 * "queued" for those no server took.
 */
void handover_to_server(struct client *cl, const uint8_t key[static QPC_KEY_LEN]);

#endif
