/*
 * mesh.h: the node as a carrier of signed announces (include/qpc/announce.h) between
 * its clients and the nodes it is federated or statically peered with.
 *
 * The one idea: a node is one more hop of the announce flood, not a router. It checks
 * each announce once (cheap dedup first, then the signature and hash chain), passes a
 * new one on once with qpc_announce_forward to every other client that listens and to
 * every federated node, and keeps the latest announce of each origin so that a client
 * that turns push on, or a node whose link comes up, learns at once what this node
 * knows. Everything is bounded and in memory: a restart forgets it, and the origins'
 * periodic announces rebuild it.
 */
#ifndef QPC_SERVER_MESH_H
#define QPC_SERVER_MESH_H

#include <stdint.h>

#include "qpc/proto.h"
#include "node.h"
#include "session.h"

/* Why an announce was refused (qpc_announces_refused_total{reason}). */
enum mesh_refusal {
    MESH_REFUSED_INVALID,      /* malformed: bad lengths, addresses, hops > max_hops */
    MESH_REFUSED_FORGED,       /* signature or hash chain wrong */
    MESH_REFUSED_NOT_ORIGIN,   /* hops 0 from a session that is not its origin */
    MESH_REFUSED_RATE,         /* over the sender's announce rate */
    MESH_REFUSED_COUNT
};
extern const char *const mesh_refusal_names[MESH_REFUSED_COUNT];

/* Creates the (empty) dedup table and origin cache and tells federation how to greet a
 * link that comes up. 0 or QPC_ERR_NOMEM. */
int mesh_start(struct node *n);
void mesh_stop(struct node *n);
/* Forgets dedup entries and origins past their hold time (maintenance timer). */
void mesh_gc(struct node *n);

/* ClientRequest.announce from client session s. Not answered: announces are periodic,
 * and a lost or refused one is replaced by the next. */
void mesh_handle_client(struct session *s, const Qpc__MeshAnnounce *pb);
/* FederationRequest.announce from the federated node of session s: answered with one
 * status (OK, DUPLICATE, INVALID, FORBIDDEN, RATE_LIMITED). */
void mesh_handle_federation(struct session *s, uint64_t request_id, const Qpc__MeshAnnounce *pb);
/* Sends a client that just turned push on the latest live announce of every origin
 * this node knows (once per session). */
void mesh_replay(struct session *s);
/* The home node domain key's latest live announce names (signed by key), or NULL.
 * Valid until the next announce is taken. */
const char *mesh_home(const struct node *n, const uint8_t key[static QPC_KEY_LEN]);
/* Origins in the cache now (metrics). */
size_t mesh_origins(const struct node *n);

#endif
