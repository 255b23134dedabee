/*
 * link.h: P2P links, one QUIC connection (ALPN quicprochat/p2p/1) to a peer each, and
 * the frames that travel on them (link.c).
 */
#ifndef QPC_CLIENT_LINK_H
#define QPC_CLIENT_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client.h"
#include "qpc/proto.h"

enum conn_kind { CONN_P2P = 1 };   /* a QUIC user pointer to a link starts with this */

struct link {
    int kind;                          /* CONN_P2P: tells link from client on a conn */
    struct client *cl;
    uint64_t serial;                   /* unique in the process: names the link in what
                                        * outlives a loop turn (acks waiting for a commit) */
    struct qpc_quic_conn *conn;
    struct peer_state *ps;             /* set once the peer's key is known */
    bool up, relayed;
    bool has_sid;
    int64_t sid;
    char addr[QPC_ADDRESS_MAX + 1];    /* "host:port", or the relay server's address */
    struct link *next;                 /* in ps->links */
};

/* True when a QUIC user pointer is a link (not the client: session, accepted conn). */
bool link_is(const void *user);

/* A new link (not yet connected) to ps (may be NULL: accepted, key not known yet) at
 * addr (may be NULL). Owned by ps's list once attached; free with link_free. */
struct link *link_new(struct client *cl, struct peer_state *ps, bool relayed, const char *addr);

/* Puts l (accepted, peer now known) into ps's list. */
void link_attach(struct link *l, struct peer_state *ps);

/* Takes l out of its peer's list and frees it. */
void link_free(struct link *l);

/* The up link to peer key with this serial, or NULL (it closed meanwhile). */
struct link *link_find(struct client *cl, const uint8_t key[static QPC_KEY_LEN], uint64_t serial);

/* The stream the peer opened first is the one we answer on. */
void link_note_stream(struct link *l, int64_t sid);

/* Frames out. 0 or a QPC_ERR_*. */
int link_send_envelope(struct link *l, const struct qpc_envelope *env);
int link_send_envelope_bytes(struct link *l, const uint8_t *buf, size_t len);
/* The ack for envelope id (NULL: undecodable) with st, on the stream it came on. */
void link_send_ack(struct link *l, int64_t sid, const uint8_t *id, Qpc__Status st);

/* The link to use toward ps: an up direct link before an up relayed one; NULL if none. */
struct link *link_best(struct peer_state *ps);
/* True when a direct link to ps is up. */
bool link_direct_up(struct peer_state *ps);
/* True when ps has a direct link (up or still connecting) at addr. */
bool link_direct_at(struct peer_state *ps, const char *addr);
/*
 * The link a held envelope for recipient goes out on: to the recipient itself, else
 * to the next peer of its route (routes_next_peer). NULL when neither has a link up.
 */
struct link *link_toward(struct client *cl, const uint8_t recipient[static QPC_KEY_LEN]);

/* Links up, over all peers. */
size_t link_count(const struct client *cl);
/* Prints every up link (for /mesh peers). */
void link_describe(struct client *cl);

#endif
