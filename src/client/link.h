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
#include "qpc/log.h"
#include "qpc/proto.h"

enum conn_kind { CONN_P2P = 1 };   /* a QUIC user pointer to a link starts with this */

#define LINK_STALL_PTOS 3   /* probe timeouts in a row that make a link stalled */
/* Keep-alive PING on an idle link, from the end that dialled it only: the PING and the
 * ACK it draws reset both ends' idle timers (30 s) and refresh NAT mappings both ways,
 * and one link per pair means every link has one dialler. Well under the idle timeout,
 * so a lost PING is probed again in time. */
#define LINK_KEEPALIVE_MS 20000u
/* Garbage on a link (link_note_garbage): this many undecodable frames within the window
 * close it; its log lines come at most one per interval. */
#define LINK_GARBAGE_MAX 16u
#define LINK_GARBAGE_WINDOW_MS 60000u
#define LINK_GARBAGE_LOG_MS 10000u

struct link {
    int kind;                          /* CONN_P2P: tells link from client on a conn */
    struct client *cl;
    uint64_t serial;                   /* unique in the process: names the link in what
                                        * outlives a loop turn (acks waiting for a commit) */
    struct qpc_quic_conn *conn;
    struct peer_state *ps;             /* set once the peer's key is known */
    bool up, relayed;
    bool came_up;                      /* its handshake finished once (up may be cleared
                                        * before the close): losing it races again at
                                        * once, a handshake that never finished does not */
    bool initiated;                    /* we dialled it (the duplicate rule needs to know) */
    bool has_sid;
    int64_t sid;
    bool has_instance;                 /* the peer told its process instance on it */
    uint64_t peer_instance;
    uint64_t up_ms;                    /* when it came up (the older of two is kept) */
    bool retiring;                     /* relayed, a direct path took over: closed once its
                                        * envelopes are acked (dial.c), carries nothing new */
    uint64_t retire_ms;
    unsigned unacked;                  /* envelopes sent on it and not acked yet */
    uint64_t unacked_since_ms;         /* the last progress while some were unacked */
    char addr[QPC_ADDRESS_MAX + 1];    /* "host:port", or the relay server's address */
    unsigned garbage;                  /* undecodable frames in the current window */
    uint64_t garbage_since_ms;         /* the window's start (mono_ms) */
    bool garbage_closed;               /* closed for garbage: later frames are ignored */
    struct qpc_log_limit garbage_log;  /* while the peer is not known (then the peer's) */
    double ann_tokens;                 /* announces it may still send us (announce.c) */
    uint64_t ann_refill_ms;            /* when the bucket was last refilled (mono) */
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

/*
 * The peer sent what no real peer sends on l (an undecodable frame or envelope; what is
 * named by `what`) at now (mono_ms). Logged at most once per LINK_GARBAGE_LOG_MS per
 * peer (all its links together), with the count held back since; LINK_GARBAGE_MAX of them within
 * LINK_GARBAGE_WINDOW_MS close the link (QPC_QUIC_APP_REFUSED), so one peer's garbage
 * costs a bounded number of lines and decodes instead of one of each per frame for ever.
 * Returns true when l is closed for garbage (now or before): drop the frame unanswered.
 */
bool link_note_garbage(struct link *l, uint64_t now, const char *what);

/* The stream the peer opened first is the one we answer on. */
void link_note_stream(struct link *l, int64_t sid);

/* Frames out. 0 or a QPC_ERR_*. */
int link_send_envelope(struct link *l, const struct qpc_envelope *env);
int link_send_envelope_bytes(struct link *l, const uint8_t *buf, size_t len);
/* Sends an encoded BroadcastBatch (P2pFrame body 6) on l's stream: never acked, so it
 * counts for no stall. Returns 0 or the stream's error. buf is only read. */
int link_send_batch_bytes(struct link *l, const uint8_t *buf, size_t len);
/* An announce (P2pFrame announce) on l. 0 or a QPC_ERR_*. */
int link_send_announce(struct link *l, const Qpc__MeshAnnounce *a);
/* A seqno request (P2pFrame seqno_request) on l. 0 or a QPC_ERR_*. */
int link_send_seqreq(struct link *l, const Qpc__MeshSeqnoRequest *r);
/* An ack came in on l at now: the path carries (link_stalled). */
void link_note_ack(struct link *l, uint64_t now);
/* True when envelopes on l have waited more than after_ms for any ack, or QUIC has had
 * LINK_STALL_PTOS probe timeouts in a row: the path is dead or nearly so, though QUIC's
 * idle timeout has not said so yet. */
bool link_stalled(const struct link *l, uint64_t now, uint64_t after_ms);
/* The ack for envelope id (NULL: undecodable) with st, on the stream it came on. */
void link_send_ack(struct link *l, int64_t sid, const uint8_t *id, Qpc__Status st);

/* The best link up toward ps: an up direct link before an up relayed one (retiring ones
 * left out); NULL if none. */
struct link *link_best(struct peer_state *ps);
/*
 * The link traffic to ps takes at now: link_best, except that a relayed link carries
 * nothing while a coordinated direct attempt has its head start (ps->headstart_until_ms,
 * set by dial.c). NULL when none may.
 */
struct link *link_usable(struct peer_state *ps, uint64_t now);
/* True when a direct link to ps is up. */
bool link_direct_up(struct peer_state *ps);
/* True when ps has a direct link (up or still connecting) at addr. */
bool link_direct_at(struct peer_state *ps, const char *addr);
/* True when ps has a relayed link, up or still connecting. */
bool link_relayed_any(struct peer_state *ps);

/* Sends my candidates, where I see l's peer come from, and my instance on l. */
void link_send_candidates(struct link *l, const struct candidates *mine, uint64_t instance);

/*
 * One link per pair: among ps's up links of one kind (direct, relayed) to the same peer
 * process (same instance), a crossed pair keeps the one the smaller key initiated (both
 * sides compute the same); two that I initiated keep the older. The others are closed.
 * me is my key.
 */
void link_dedup(struct peer_state *ps, const uint8_t me[static QPC_KEY_LEN]);

/* Which path ps is on, for people: "direct ADDR", "relayed via ADDR" or "none". */
void link_path_text(struct peer_state *ps, char *out, size_t cap);
/*
 * The link a held envelope for recipient goes out on now: to the recipient itself, else
 * to the next peer of its route (routes_next_peer). NULL when neither has a usable link
 * (link_usable).
 */
struct link *link_toward(struct client *cl, const uint8_t recipient[static QPC_KEY_LEN]);

/* Peers with a link up. */
size_t link_count(const struct client *cl);
/* Prints each peer with a link up once, with the path it is on (for /mesh peers). */
void link_describe(struct client *cl);

#endif
