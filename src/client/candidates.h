/*
 * candidates.h: address candidates: where a node may be reached, as numeric
 * "host:port" texts (candidates.c).
 *
 * A node's candidates are every usable address of every interface with its P2P port,
 * the address its server observes, and the address its peers see it at. Peers learn
 * them from the server (peer_info, punch notices), from mDNS (p2p= TXT) and on the link
 * itself (PathCandidates), and try them in parallel (dial.c). Whatever comes from
 * others is bounded (CANDIDATES_MAX, CANDIDATE_TEXT_MAX) and validated here: a
 * candidate is a numeric address (never a name: dialling it would make us send DNS
 * queries a stranger chose), with a port, that is neither unspecified, multicast,
 * broadcast nor a link-local IPv6 address (no scope travels with the text), and
 * loopback only where the node itself listens on loopback.
 *
 * Only candidates_gather and candidate_on_link look at the host (getifaddrs); nothing
 * here opens a socket. A candidate set is plain data, copied by value.
 */
#ifndef QPC_CLIENT_CANDIDATES_H
#define QPC_CLIENT_CANDIDATES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CANDIDATES_MAX 8          /* candidates kept per peer, and of my own */
#define CANDIDATES_LOCAL_MAX 6    /* of mine from interfaces: room for observed ones */
#define CANDIDATE_TEXT_MAX 64     /* "[v6]:port" needs at most 47 */
#define CANDIDATES_TXT_MAX 251    /* a TXT string is 255 bytes, "p2p=" takes 4 */

struct candidates {
    size_t n;
    char addr[CANDIDATES_MAX][CANDIDATE_TEXT_MAX];   /* normalized, best first, no repeats */
};

#define LOCAL_NETS_MAX 16

/* The subnets of my interfaces (address and mask, IPv4 mapped into 16 bytes), read once
 * per gathering so that "is this candidate on my link?" costs no system call. */
struct local_nets {
    size_t n;
    struct {
        uint8_t addr[16], mask[16];
    } net[LOCAL_NETS_MAX];
};

/*
 * Checks text as a candidate and writes its normal form to out ("a.b.c.d:port", or
 * "[v6]:port" in inet_ntop's form; a v4-mapped IPv6 address as IPv4). allow_loopback
 * admits 127/8 and ::1. False for anything else (see the top of this file).
 */
bool candidate_normalize(const char *text, bool allow_loopback, char out[static CANDIDATE_TEXT_MAX]);

/* Empties c. */
void candidates_clear(struct candidates *c);

/* Adds text (normalized) at the end unless it is invalid, already there or c is full.
 * True when c changed. */
bool candidates_add(struct candidates *c, const char *text, bool allow_loopback);

/* Adds text at the front (the best, e.g. what a handshake just proved), dropping the
 * last one if c is full. True when c changed (also when it only moved). */
bool candidates_add_first(struct candidates *c, const char *text, bool allow_loopback);

/* Adds every candidate of src to dst (candidates_add). True when dst changed. */
bool candidates_merge(struct candidates *dst, const struct candidates *src);

/* True when c holds text (already normalized). */
bool candidates_contains(const struct candidates *c, const char *text);

/* An order-independent digest: it changes when the set of addresses changes. */
uint64_t candidates_digest(const struct candidates *c);

/*
 * My usable addresses now, with port: listen_host is the host the P2P socket is bound
 * to (numeric). A specific host gives itself only; "0.0.0.0" every IPv4 address of an
 * up interface; "::" or "" (dual stack) every IPv4 and IPv6 address. Loopback addresses
 * are left out unless the node listens on loopback only; link-local IPv6 always. At most
 * CANDIDATES_LOCAL_MAX, IPv4 first. Returns the number written to out (cleared first).
 */
size_t candidates_gather(struct candidates *out, const char *listen_host, uint16_t port);

/* Reads the subnets of my up interfaces into nets (cleared first). */
void local_nets_gather(struct local_nets *nets);

/* True when "host:port" names a loopback address (127/8, ::1, or "localhost"). */
bool candidate_is_loopback(const char *addr);

/* True when host:port's address is on one of the subnets in nets (no router between us,
 * so no NAT: it may be dialled at once), or is a loopback address. */
bool candidate_on_link(const struct local_nets *nets, const char *addr);

/*
 * The compact TXT form: candidates joined by ',' as long as the text stays within
 * CANDIDATES_TXT_MAX bytes. Returns the length written (buf always NUL-terminated;
 * cap must be > CANDIDATES_TXT_MAX).
 */
size_t candidates_to_txt(const struct candidates *c, char *buf, size_t cap);

/* Adds the candidates of a TXT value (one address or a ',' list; at most
 * CANDIDATES_TXT_MAX bytes are read). Returns how many were added. */
size_t candidates_from_txt(struct candidates *c, const char *text, bool allow_loopback);

#endif
