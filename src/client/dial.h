/*
 * dial.h: reaching a peer: which addresses to dial, the fallback ladder, back-off, and
 * the move to a direct path (dial.c). Path work (address candidates, racing, punching)
 * lands here.
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
#define DIAL_DIRECT_RETRY_MS 5000u     /* while relayed, try direct this often */

/* The ladder's step when ps->fallback fires (peers_init takes it: w->data is the peer). */
void dial_fallback_cb(struct ev_loop *loop, ev_timer *w, int revents);

/*
 * Something is waiting for ps: when a link is up, send it; otherwise start the ladder
 * (unless it runs): dial every known address and ask the server where the peer is; after
 * direct_timeout_ms try the relay, after another the server holds it (handover.c).
 */
void dial_reach(struct client *cl, struct peer_state *ps);

/* Dials every known address of ps (newest first, at most 3) unless dials are running. */
int dial_direct(struct client *cl, struct peer_state *ps);

/* A fresh address for ps (told by a server, typed): dialled at once, even while older
 * ones are still tried, unless a direct link is up or a dial to it exists. */
void dial_fresh_address(struct client *cl, struct peer_state *ps, const char *addr);

/* mDNS claims ps is at addr: dialled (with ps's key as the expected TLS key) if anything
 * waits for it, else only by the peer with the smaller key, so a pair makes one link. */
void dial_discovered(struct client *cl, struct peer_state *ps, const char *addr);

/* Dials every directory peer with an address that has no link (mesh links). */
void dial_known(struct client *cl);

/* A recipient that something waits for: dial it again when its back-off has run out. */
void dial_retry(struct client *cl, const uint8_t key[static QPC_KEY_LEN], uint64_t now);

/* Peers reached only through the relay: dial direct again every DIAL_DIRECT_RETRY_MS. */
void dial_retry_direct(struct client *cl, uint64_t now);

/* An outgoing direct dial to ps settled (up or failed): it no longer counts as dialling. */
void dial_settled(struct peer_state *ps);

/*
 * Link l (its peer known) came up: a direct one takes over from the relay (relayed links
 * to the peer are closed), a relayed one schedules direct retries; the ladder stops.
 */
void dial_link_up(struct client *cl, struct link *l, uint64_t now);

/* A relayed QUIC packet from key arrived through the server: into that peer's relay path. */
void dial_relay_input(struct client *cl, const uint8_t key[static QPC_KEY_LEN],
                      const uint8_t *pkt, size_t len);

/* The server session went down: every relay path through it ends (and its links). */
void dial_session_down(struct client *cl);

#endif
