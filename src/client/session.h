/*
 * session.h: the client's connection to its qpc-server (session.c).
 *
 * The session sits below the P2P node: the node calls down into it (enqueue, broadcast,
 * peer_info, relayed packets), and the session reports up only through the callbacks
 * the node sets once (session_set_callbacks), as lib's qpc_quic_callbacks do. So the
 * session knows nothing of links, custody or dialling.
 */
#ifndef QPC_CLIENT_SESSION_H
#define QPC_CLIENT_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client.h"
#include "qpc/proto.h"

/* What the session tells the layer above. Every member must be set. */
struct session_callbacks {
    /* An encoded envelope the server handed us (push, fetch page, or a broadcast it
     * flooded); server is its address. Returns 0 when the server may forget it (taken or
     * refused for good; the ack waits for session_ack_pending), nonzero to leave it
     * queued there (refused for now: it comes again on the next connection). */
    int (*on_envelope)(struct client *cl, const uint8_t *buf, size_t len, const char *server);
    /* The server answered peer_info for key: online or not, the addresses it observes
     * for the key's sessions and the candidates they registered (the server's text, not
     * yet checked; n_addrs and n_cands as the server sent them). */
    void (*on_peer_info)(struct client *cl, const uint8_t key[static QPC_KEY_LEN], bool online,
                         char *const *addrs, size_t n_addrs, char *const *cands, size_t n_cands);
    /* A punch notice: key asked the server for us and has opened its NAT toward our
     * candidates; it is at addrs (observed) and cands (registered), unchecked. */
    void (*on_punch)(struct client *cl, const uint8_t key[static QPC_KEY_LEN],
                     char *const *addrs, size_t n_addrs, char *const *cands, size_t n_cands);
    /* The server says where it sees this session come from (unchecked text). */
    void (*on_observed)(struct client *cl, const char *observed);
    /* The server refused to punch toward key for us (its punch rate): nobody was told. */
    void (*on_punch_refused)(struct client *cl, const uint8_t key[static QPC_KEY_LEN]);
    /* A relayed QUIC packet from peer key came in. */
    void (*on_relay_packet)(struct client *cl, const uint8_t key[static QPC_KEY_LEN],
                            const uint8_t *pkt, size_t len);
    /* (on_peer_info, on_punch, on_observed, on_punch_refused and on_relay_packet serve
     * the mesh's paths and may be NULL: a qpc built without mesh ignores what they say.) */
    /* The server refused for good envelope id of mine that only it could carry
     * (session_enqueue without kept): nothing will deliver it. */
    void (*on_refused)(struct client *cl, const uint8_t id[static QPC_ID_LEN]);
    /* The server took envelope id of mine (OK or DEFERRED: on its disk now). It may end
     * the outbox row of what nothing else will end: a receipt (never answered by a
     * receipt) or an envelope only a server carries. May be NULL. */
    void (*on_held)(struct client *cl, const uint8_t id[static QPC_ID_LEN]);
    /* The server passed on an announce (ServerMessage announce); only read. */
    void (*on_announce)(struct client *cl, const Qpc__MeshAnnounce *a);
    /* The session came up (true) or went down (false). */
    void (*on_up)(struct client *cl, bool up);
};

/* Sets the callbacks, once, before the first session_connect. cb must outlive cl. */
void session_set_callbacks(struct client *cl, const struct session_callbacks *cb);

/*
 * Connects to the server at address. While a session exists for another address, the
 * new one is tried beside it and replaces it only when it answers (a failure is said
 * and changes nothing). A server is saved (the identity's servers, and DATA_DIR/server
 * for the next start) only once it answered. Retries back off from 1 s to 60 s.
 * Errors (bad address, cannot resolve) go to err; 0 means the attempt is under way.
 */
int session_connect(struct client *cl, const char *address, char *err, size_t errlen);
void session_close(struct client *cl);
bool session_up(const struct client *cl);
const char *session_address(const struct client *cl);
/* The server's node domain, as it said when push was turned on ("" until then, or from a
 * server that does not say): where others' receipts for my messages must go. */
const char *session_domain(const struct client *cl);
/*
 * Enqueues an envelope at the server for recipient (domain "" = the server's own). With
 * report, the server's answer is shown (held, queued or failed for the envelope's id).
 * kept: a link to the peer may still carry our outbox copy, so a refusal leaves it
 * queued; without, a refusal is final: shown as failed and told up (on_refused).
 */
int session_enqueue(struct client *cl, const struct qpc_envelope *env, const char *domain, bool report,
                    bool kept);
/*
 * Acks every server item handed up (on_envelope returned 0) since the last call: the
 * caller calls it after the commit that made what they changed durable (turn.c), so an
 * item the server forgets is never one a crash would lose.
 */
void session_ack_pending(struct client *cl);
/* Hands a broadcast envelope (already hopped) to the server to flood on. 0 when sent. */
int session_broadcast(struct client *cl, const struct qpc_envelope *env);
/* Sends an announce (mine, or one passed on) to the server. 0 or QPC_ERR_CLOSED. */
int session_announce(struct client *cl, const Qpc__MeshAnnounce *a);
/* Sends one relayed QUIC packet to peer key. 0 or nonzero when dropped. */
int session_relay_send(struct client *cl, const uint8_t key[static QPC_KEY_LEN],
                       const uint8_t *pkt, size_t len);
/* Asks the server where peer key is (the answer goes to on_peer_info). */
void session_peer_info(struct client *cl, const uint8_t key[static QPC_KEY_LEN]);
/* Registers my candidates (n texts, copied) at the server, replacing the ones before;
 * the answer tells where the server sees me (on_observed). 0 or QPC_ERR_CLOSED. */
int session_register_candidates(struct client *cl, char *const *cands, size_t n);
/* Asks the server to tell key's sessions to punch toward me now (I have opened my NAT
 * toward key's candidates). 0 or QPC_ERR_CLOSED. */
int session_punch(struct client *cl, const uint8_t key[static QPC_KEY_LEN]);
/* Tells the server a direct path to key came up ms after I asked it to punch. */
void session_report_direct(struct client *cl, const uint8_t key[static QPC_KEY_LEN], uint32_t ms);

/* The QUIC endpoint's events for the session's connection (node.c dispatches them). */
bool session_owns_conn(const struct client *cl, const struct qpc_quic_conn *conn);
/* Returns 0 to accept the server, nonzero to refuse it (pinned key mismatch). */
int session_on_connected(struct client *cl, struct qpc_quic_conn *conn, const uint8_t *key);
void session_on_frame(struct client *cl, struct qpc_quic_conn *conn, const uint8_t *d, size_t n);
void session_on_datagram(struct client *cl, const uint8_t *d, size_t n);
void session_on_closed(struct client *cl, const struct qpc_quic_conn *conn,
                       const struct qpc_quic_close_info *info);

#endif
