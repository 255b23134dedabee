/*
 * handover.h: custody in motion: holding an envelope, and handing what is held to the
 * next holder (handover.c).
 */
#ifndef QPC_CLIENT_HANDOVER_H
#define QPC_CLIENT_HANDOVER_H

#include <stdint.h>

#include "client.h"

/* What became of a hold, after the loop turn's commit: 0 when the envelope is durable and
 * queued in the store, else why not (nothing of it stays persisted then). */
typedef void (*handover_done_fn)(struct client *cl, void *arg, int status);

/*
 * Holds env: its outbox row is staged now and committed at the end of the loop turn
 * (turn.c); after that commit the envelope is queued in the store and done(cl, arg,
 * status) runs (done may be NULL). domain (NULL or "") is the recipient's node domain
 * for my own envelopes that go through federation. env is moved (zeroed) when 0 is
 * returned; otherwise it stays the caller's, nothing is staged and done is not called:
 * QPC_ERR_EXISTS (this id is held already), or the outbox's immediate refusal.
 */
int handover_hold(struct client *cl, struct qpc_envelope *env, const char *domain, uint64_t now,
                  handover_done_fn done, void *arg);

/*
 * Sends what can go now: held queues whose recipient (or its route's next peer) has a
 * link up, and parked envelopes whose link died or whose holder refused for now. Each
 * moves into custody as handed to that link.
 */
void handover_flush(struct client *cl);

#if QPC_MESH
/* The link held envelope id for recipient goes on now: link_toward's, unless that leads
 * back to the neighbour it came from (split horizon), or NULL. */
struct link *handover_link_for(struct client *cl, const uint8_t recipient[static QPC_KEY_LEN],
                               const uint8_t id[static QPC_ID_LEN]);
#endif

/*
 * P2P gives up on key for now (or its node is elsewhere): what is held for it is parked
 * (kept in the outbox for the next link), and my own envelopes among it are enqueued at
 * the server too when a session is up (a server accepts envelopes from their sender
 * alone), with the node domain they were held for; the user is told "queued" for the
 * messages no server took.
 */
void handover_to_server(struct client *cl, const uint8_t key[static QPC_KEY_LEN]);

/* A server session came up: what is parked for the server alone (held for a node
 * domain) is enqueued there again; the server keeps one copy per id. */
void handover_session_up(struct client *cl);

/* Do I tell the user what becomes of env? Only for my messages whose receipt I wait
 * for: not for receipts I send, nor once the receipt came. */
bool handover_reports(const struct client *cl, const struct qpc_envelope *env);

#endif
