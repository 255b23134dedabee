/*
 * punch.h: how much hole punching anyone can make this node do (punch.c).
 *
 * A punch attempt sends a few TTL-2 datagrams to each candidate of a peer and QUIC
 * Initials after them. Candidates come from servers, links and mDNS, and through a
 * server from whoever asks for us, so every attempt passes this budget: per peer, at
 * most PUNCH_TRIES_MAX attempts for one set of addresses (a new set, on either side,
 * gives new tries), at least PUNCH_RETRY_MS apart; for the whole node, a token bucket
 * of attempts per second, a smaller one for strangers (keys we know nothing of), and a
 * cap on the peer states strangers may make. What is refused is logged at most once per
 * PUNCH_LOG_MS, with the count of what was left unsaid.
 *
 * Pure logic over plain state: time is an argument, nothing is sent.
 */
#ifndef QPC_CLIENT_PUNCH_H
#define QPC_CLIENT_PUNCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PUNCH_TRIES_MAX 3              /* attempts per peer for one set of addresses */
#define PUNCH_RETRY_MS 5000u           /* between two attempts toward one peer */
#define PUNCH_RATE_PER_S 10.0          /* attempts per second, all peers... */
#define PUNCH_BURST 20.0               /* ...and at once */
#define PUNCH_STRANGER_RATE_PER_S 2.0  /* of them for strangers, per second... */
#define PUNCH_STRANGER_BURST 4.0       /* ...and at once */
#define PUNCH_STRANGERS_MAX 32         /* live peer states made for strangers */
#define PUNCH_LOG_MS 60000u            /* at most one line about refusals this often */
#define PUNCH_PROBES 3                 /* TTL-2 datagrams per candidate and attempt */
#define PUNCH_PROBE_TTL 2              /* past one's own NAT, dead at the router after it */
#define PUNCH_TARGETS_MAX 8            /* candidates one attempt sends to (known peer) */
#define PUNCH_STRANGER_TARGETS_MAX 4   /* ... for a stranger */

/* A token bucket over milliseconds; starts full on first use. */
struct punch_bucket {
    double tokens;
    uint64_t last_ms;
    bool used;
};

/* The node-wide budget. Zero-initialised is ready. */
struct punch_budget {
    struct punch_bucket all, strangers;
    uint64_t next_log_ms;
    unsigned unlogged;                 /* refusals since the last line */
};

/* Per peer: the attempts made for its current addresses. Zero-initialised is ready. */
struct punch_peer {
    uint64_t digest;                   /* candidates_digest of both sides' addresses */
    unsigned tries;
    uint64_t last_ms;                  /* last attempt; 0: none */
};

enum punch_verdict {
    PUNCH_OK = 0,
    PUNCH_TOO_SOON,                    /* the last attempt toward this peer is recent */
    PUNCH_EXHAUSTED,                   /* PUNCH_TRIES_MAX made for these addresses */
    PUNCH_RATE,                        /* the node-wide (or strangers') rate is used up */
};

/*
 * May an attempt toward a peer (stranger: we know nothing of it) start at now, with
 * digest naming both sides' addresses? PUNCH_OK counts the attempt (tries, tokens);
 * anything else changes nothing. urgent skips PUNCH_RETRY_MS (something waits for the
 * peer and its addresses just became known); the tries still count.
 */
enum punch_verdict punch_allow(struct punch_budget *b, struct punch_peer *p, uint64_t digest,
                               bool stranger, bool urgent, uint64_t now);

/* True when one more stranger peer state may be made, given how many there are. */
bool punch_stranger_admit(size_t strangers_now);

/*
 * A refusal happened at now: true when it may be logged now (then *unlogged receives
 * how many refusals since the last line were not), false when it is only counted.
 */
bool punch_log_due(struct punch_budget *b, uint64_t now, unsigned *unlogged);

#endif
