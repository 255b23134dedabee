/*
 * node.h: the P2P node as the rest of the client sees it (node.c).
 */
#ifndef QPC_CLIENT_NODE_H
#define QPC_CLIENT_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client.h"

/* Opens the QUIC endpoint (accepting P2P connections when listen; never without mesh,
 * QPC_MESH 0, whose socket takes any port), loads the outbox, starts the periodic jobs
 * and sets the session's callbacks. Errors go to err. */
int node_start(struct client *cl, bool listen, char *err, size_t errlen);
/* Before leaving: every link is closed with a goodbye and the loop turned so the goodbyes
 * (relayed ones too, while the session is still up) go out; nothing new starts after. */
void node_shutdown(struct client *cl);
void node_stop(struct client *cl);
/*
 * Sends text to peer (a DirectContent text, E2E encrypted, signed) and waits for its
 * receipt. domain NULL: by the ladder (direct, relay, then held by my server); a node
 * domain: through my server and federation at once (the session must be up), P2P still
 * taking it if a link to the peer appears. id_out receives the envelope id. The outcome
 * comes as events (held, queued, delivered, failed): the hold is committed at the end
 * of the loop turn. Returns 0, QPC_ERR_INVALID (my own key, a bad domain),
 * QPC_ERR_CLOSED (a domain but no session), QPC_ERR_TOO_LARGE or another QPC_ERR_*.
 */
int node_send_text(struct client *cl, const uint8_t peer[static QPC_KEY_LEN], const char *domain,
                   const char *text, uint8_t id_out[static QPC_ID_LEN]);
int node_broadcast(struct client *cl, const char *topic, const char *text,
                   uint8_t id_out[static QPC_ID_LEN]);
#if QPC_MESH   /* the P2P side: a qpc built without mesh has none of it */
/* A peer was seen at address (typed by the user, told by a server): dial it. addr NULL:
 * dial its known addresses unless a link is up. */
void node_peer_seen(struct client *cl, const uint8_t key[static QPC_KEY_LEN], const char *addr,
                    enum qpc_peer_source src);
/*
 * A peer announced itself on mDNS with key at cands (checked, best first): a claim, not a
 * proof. Notes the first in the directory and routing table where that cannot displace
 * verified knowledge, and dials them all (expecting key in the TLS handshake), as the
 * peer dials us: the duplicate rule keeps one link.
 */
void node_peer_discovered(struct client *cl, const uint8_t key[static QPC_KEY_LEN],
                          const struct candidates *cands);
/* Which path the peer with key is on: "direct ADDR", "relayed via ADDR" or "none". */
void node_path_text(struct client *cl, const uint8_t key[static QPC_KEY_LEN], char *out, size_t cap);
/* My address candidates now (for mDNS). */
const struct candidates *node_candidates(const struct client *cl);
/* Dials every directory peer with an address (mesh links). */
void node_dial_known(struct client *cl);
/* Prints the link list for /mesh peers. */
void node_describe_links(struct client *cl);
size_t node_link_count(const struct client *cl);
bool node_peer_connected(const struct client *cl, const uint8_t key[static QPC_KEY_LEN]);
#endif

#endif
