/*
 * announce.h: the node's mDNS presence: it announces itself to clients on the link and
 * tells federation about the other nodes it sees.
 */
#ifndef QPC_SERVER_ANNOUNCE_H
#define QPC_SERVER_ANNOUNCE_H

#include <stdbool.h>
#include <stddef.h>

#include "node.h"

/* Starts the mDNS responder (when mdns_enabled), announces the node and browses for
 * others. 0 or error (the node runs on without mDNS). */
int announce_start(struct node *n);
/* True while the responder runs. */
bool announce_running(const struct node *n);
/* What mDNS shows now (for metrics); all zero and false while the responder is off. */
struct announce_seen {
    bool running;
    bool established;   /* our records passed probing and are published on the link */
    size_t nodes;       /* other nodes' instances on the link, each name once */
    size_t peers;       /* clients announcing P2P on the link, each name once */
};
void announce_seen(const struct node *n, struct announce_seen *out);
/* The host clients should dial: the listen address unless it is a wildcard, else the
 * first IPv4 address of an mDNS interface (of any interface when the list is empty).
 * False when there is none. */
bool announce_dial_host(const struct node *n, char *host, size_t len);
/* Withdraws the announcement (goodbye packets) and frees the responder. */
void announce_stop(struct node *n);

#endif
