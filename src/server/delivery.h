/*
 * delivery.h: the delivery queues of the node's clients (enqueue, batch, fetch, ack,
 * push) and the group commit that makes every accepted envelope durable before it is
 * answered. The requests arrive decoded from client_service.c (and relay_enqueue from
 * federation_service.c); answers go out through the session layer.
 */
#ifndef QPC_SERVER_DELIVERY_H
#define QPC_SERVER_DELIVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qpc/proto.h"
#include "node.h"
#include "session.h"

/* Where a set of items came from; it decides the checks and the form of the answer. */
enum delivery_kind {
    DELIVERY_ENQUEUE,   /* ClientRequest.enqueue: one item, EnqueueResponse */
    DELIVERY_BATCH,     /* ClientRequest.batch_enqueue: BatchEnqueueResponse */
    DELIVERY_RELAYED,   /* FederationRequest.relay_enqueue from another node:
                         * FederationResponse, local recipients only */
};

/* Bytes a frame needs beyond the envelope it carries (the request or answer around
 * it: ids, tags, lengths, a recipient key and a domain of up to 253 bytes). */
#define DELIVERY_FRAME_MARGIN 1024u

/*
 * Checks the settings delivery depends on beyond what the config module checks alone:
 * max_envelope_size must be at least DELIVERY_FRAME_MARGIN below max_frame_size, so an
 * envelope the node accepts always fits the frames that carry it on (fetch, push,
 * federation). Returns 0, or QPC_ERR_CONFIG with a message naming both keys in err.
 */
int delivery_check_settings(const struct server_settings *sc, char *err, size_t errlen);

/* Starts the commit watchers (idle and prepare). 0 or QPC_ERR_NOMEM. */
int delivery_start(struct node *n);
/* Stops them and frees the delivery state (commit first: delivery_commit). */
void delivery_stop(struct node *n);
/* Commits what is staged, which pushes new messages to their recipients; the answers
 * to their senders (and the outbox pump) follow once the queue's sync thread made the
 * commit durable. No-op before delivery_start. */
void delivery_commit(struct node *n);
/* delivery_commit, then waits for the fsync and answers: for the shutdown, before the
 * sessions the answers go to are gone. */
void delivery_flush(struct node *n);

/*
 * Checks and stages count items (borrowed; what is kept is copied) from session s. Each
 * client item must come from the client's own key; relayed items are trusted by mTLS
 * but must be for this node's domain. The answer (one status per item, in order) takes
 * its place in s's reply order now and leaves after the commit.
 */
void delivery_enqueue(struct session *s, uint64_t request_id, enum delivery_kind kind,
                      Qpc__EnqueueItem **items, size_t count);
/* One page of the client's own queue (never another's). */
void delivery_fetch(struct session *s, uint64_t request_id, const Qpc__FetchRequest *f);
/* Stages the deletion of the client's own items up to / listed in a; answers how many
 * went after the commit, in its place in s's reply order. */
void delivery_ack(struct session *s, uint64_t request_id, const Qpc__AckRequest *a);
/* Turns pushes of newly committed items on or off for this session; answers push_ack. */
void delivery_set_push(struct session *s, uint64_t request_id, bool enable);

#endif
