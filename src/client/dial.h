/*
 * dial.h: reaching a peer (dial.c): its candidates raced in parallel, the relayed path
 * beside them, hole punches coordinated by the server, back-off, and the move to a
 * direct path when one appears. Which neighbour a message goes to is routes.c's
 * question; which address and path reach that neighbour is this file's.
 */
#ifndef QPC_CLIENT_DIAL_H
#define QPC_CLIENT_DIAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <ev.h>

#include "client.h"

#define DIAL_BACKOFF_MIN_MS 2000u      /* first redial of a waiting recipient */
#define DIAL_BACKOFF_MAX_MS 30000u
#define DIAL_DIRECT_RETRY_MS PUNCH_RETRY_MS   /* while relayed, try direct this often */
#define DIAL_TARGETS_MAX 8             /* candidates of one peer dialled at once */
#define DIAL_HEADSTART_MS 100u         /* a promising direct attempt goes first this long */
#define DIAL_HEADSTART_MAX_MS 400u     /* ...and longer while its handshake is under way */
#define DIAL_OWN_DIAL_MS 100u          /* after asking for a punch, dial far candidates too */
#define DIAL_SESSION_WAIT_MS 1000u     /* no server session by then: dial uncoordinated */
#define DIAL_RELAY_IDLE_MS 30000u      /* a relay path without links is freed after this */
#define DIAL_STALL_MS 3000u            /* a direct link with acks this late is given up */

/* The race's timer (peers_init takes it: w->data is the peer). */
void dial_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);

/*
 * Something is waiting for ps: when a link may carry it, send it; otherwise start the
 * race (unless it runs): every candidate at once (near ones dialled, far ones opened
 * with TTL-2 probes and punched through the server), the relayed path at once beside
 * them, peer_info asked; what no path carries within direct_timeout_ms is handed to the
 * server (handover.c).
 */
void dial_reach(struct client *cl, struct peer_state *ps);

/* A fresh address for ps typed by the user: dialled at once unless a direct link is up
 * or a dial to it exists. */
/*
 * Dials a static peer (config `peers`) at addr, expecting key (NULL: whoever answers, as
 * a typed address is trusted to be the peer the user meant). *serial receives the new
 * link's serial (announce.c recognises it when it comes up). A name is looked up first
 * (without blocking): the link and *serial then come with the answer, so serial must
 * stay valid until dial_stop (announce_stop comes after it). 0 or a QPC_ERR_*.
 */
int dial_static(struct client *cl, const char *addr, const uint8_t *key, uint64_t *serial);
void dial_fresh_address(struct client *cl, struct peer_state *ps, const char *addr);

/* mDNS says ps announces cands (checked): dialled with ps's key as the expected TLS key,
 * by both sides of a pair (the duplicate rule keeps one link). */
void dial_discovered(struct client *cl, struct peer_state *ps, const struct candidates *cands);

/* Dials every directory peer with an address that has no link (mesh links): its near
 * candidates and typed names (all of them when no server could coordinate a punch). */
void dial_known(struct client *cl);

/* A recipient that something waits for: reach it again when its back-off has run out.
 * Such a redial asks the server's peer_info first and dials the relayed path only once
 * the answer says the peer is online (a peer the server does not see costs no relayed
 * handshake); its direct candidates are dialled at once as in any race. */
void dial_retry(struct client *cl, const uint8_t key[static QPC_KEY_LEN], uint64_t now);

/* Peers reached only through the relay: punch again every DIAL_DIRECT_RETRY_MS, within
 * the punch budget (a few tries per change of addresses). */
void dial_retry_direct(struct client *cl, uint64_t now);

/* An outgoing direct dial to ps settled (up or failed): it no longer counts as dialling. */
void dial_settled(struct peer_state *ps);

/* Drops every lookup of a peer's typed name still in progress (node_stop, before the
 * resolver goes): no dial follows them. */
void dial_stop(struct client *cl);

/*
 * Link l (its peer known) came up: a direct one takes over from the relay (relayed links
 * to the peer are closed) and is reported to the server when a punch made it; a relayed
 * one schedules punches; each sends its candidates on the link.
 */
void dial_link_up(struct client *cl, struct link *l, uint64_t now);

/*
 * A link to ps closed. If it had come up (came_up), something still waits for ps and no
 * link is left: race again (the relay comes back at once). A handshake that never came
 * up races nothing: the redial back-off (dial_retry) tries again, else a peer that
 * cannot be reached would be raced anew at every handshake timeout.
 */
void dial_link_gone(struct client *cl, struct peer_state *ps, bool came_up);

/* The peer on l told its candidates, its instance and how many direct links it has up
 * to me (links; 0: not told) in a frame on an authenticated link. */
void dial_link_candidates(struct client *cl, struct link *l, char *const *addrs, size_t n,
                          uint64_t instance, uint32_t links);

/* The server's peer_info answer (see session.h on_peer_info). */
void dial_peer_info(struct client *cl, const uint8_t key[static QPC_KEY_LEN], bool online,
                    char *const *addrs, size_t n_addrs, char *const *cands, size_t n_cands);

/* A punch notice (see session.h on_punch): within the punch budget, probe and dial. */
void dial_punch_notice(struct client *cl, const uint8_t key[static QPC_KEY_LEN], char *const *addrs,
                       size_t n_addrs, char *const *cands, size_t n_cands);

/* My server session came up: register my candidates, punch for every race. */
void dial_session_up(struct client *cl);

/* My server refused to coordinate a punch toward key (its rate): no head start for it. */
void dial_punch_refused(struct client *cl, const uint8_t key[static QPC_KEY_LEN]);

/* My server says it sees me at observed: one of my candidates. */
void dial_observed(struct client *cl, const char *observed);

/* Gathers my candidates again (due every few seconds, or force); when they changed,
 * tells the server and every link. */
void dial_refresh_candidates(struct client *cl, uint64_t now, bool force);

/* A relayed QUIC packet from key arrived through the server: into that peer's relay path
 * (a stranger's only within the strangers' bound). */
void dial_relay_input(struct client *cl, const uint8_t key[static QPC_KEY_LEN],
                      const uint8_t *pkt, size_t len);

/* The server session went down: every relay path through it ends (and its links). */
void dial_session_down(struct client *cl);

/* Direct links whose envelopes got no ack for DIAL_STALL_MS are closed while a relay can
 * take over: what was on them goes again, through the relay at once (dial_link_gone). */
void dial_check_stalled(struct client *cl, uint64_t now);

/* Frees relay paths idle for DIAL_RELAY_IDLE_MS with no link on them. */
void dial_gc(struct client *cl, uint64_t now);

#endif
