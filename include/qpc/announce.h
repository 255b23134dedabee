/*
 * announce.h: signed announces, how a node says "I am here, reach me so" to the mesh.
 *
 * The one idea: the routing table is built from announces alone, and every number in
 * an announce that a route depends on is protected. The origin signs its key, a
 * sequence number, its addresses and a hop limit; the hop count itself changes at each
 * hop, so it cannot be signed, and a forwarder could otherwise shorten it to attract
 * traffic (the attack envelopes' hop_count allows). Instead the origin draws a random
 * seed s and signs top = H^max_hops(s); after h hops the announce carries
 * chain = H^h(s). A forwarder can hash once more (a longer path) but cannot find a
 * preimage (a shorter one). This is SAODV's hop-count hash chain; H is BLAKE2b-256
 * (libsodium crypto_generichash).
 *
 * The signed bytes are canonical, never protobuf bytes:
 *   "quicprochat/announce/v1\0" || key(32) || seqno(u32 BE) || created_at(u64 BE)
 *   || interval_s(u32 BE) || max_hops(u32 BE) || top(32) || n_addresses(u8)
 *   || for each address: len(u8) || bytes || domain_len(u8) || domain bytes
 * and the signature is Ed25519 over them. docs/routing.md, "Announces", gives the
 * rules a receiver applies (hops 0 only from the origin's own link, seqno feasibility).
 *
 * Pure functions, no I/O: time comes in as now_ms (wall clock, ms since the Unix
 * epoch; created_at is for display and staleness, never for ordering: seqno orders).
 */
#ifndef QPC_ANNOUNCE_H
#define QPC_ANNOUNCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qpc/addr.h"
#include "qpc/encoding.h"
#include "qpc/envelope.h"
#include "qpc/proto.h"

#define QPC_ANNOUNCE_HASH_LEN 32
#define QPC_ANNOUNCE_HOPS_MAX 16        /* largest max_hops accepted */
#define QPC_ANNOUNCE_ADDRS_MAX 8        /* addresses per announce */
#define QPC_ANNOUNCE_DOMAIN_MAX 253     /* bytes of the origin's home domain */

struct qpc_announce {
    uint8_t key[QPC_KEY_LEN];                /* origin's Ed25519 public key */
    uint32_t seqno;                          /* compared with qpc_announce_seqno_newer */
    uint64_t created_at_ms;
    uint32_t interval_s;                     /* the origin announces at least this often */
    uint32_t max_hops;                       /* 1..QPC_ANNOUNCE_HOPS_MAX */
    uint8_t top[QPC_ANNOUNCE_HASH_LEN];      /* H^max_hops(seed) */
    size_t n_addresses;
    char addresses[QPC_ANNOUNCE_ADDRS_MAX][QPC_ADDR_TEXT_MAX]; /* numeric "host:port" */
    char domain[QPC_ANNOUNCE_DOMAIN_MAX + 1];                  /* "" when none */
    uint8_t signature[QPC_SIG_LEN];
    /* Not signed: changed by each forwarder through qpc_announce_forward. */
    uint32_t hops;                           /* 0 as sent by the origin */
    uint8_t chain[QPC_ANNOUNCE_HASH_LEN];    /* H^hops(seed) */
};

/*
 * Fills a for a new announce by the owner of secret_key (libsodium's 64-byte form; only
 * read): a fresh random seed (kept only as chain, hops 0), top, and the signature.
 * addresses (n of them, at most QPC_ANNOUNCE_ADDRS_MAX; copied) must be numeric
 * "host:port" texts; domain may be NULL or "".
 * Returns 0 or QPC_ERR_INVALID (max_hops 0 or above QPC_ANNOUNCE_HOPS_MAX, interval 0,
 * too many or malformed addresses, domain too long), QPC_ERR_CRYPTO.
 */
int qpc_announce_create(struct qpc_announce *a, const uint8_t secret_key[static QPC_SECRET_KEY_LEN],
                        uint32_t seqno, uint64_t now_ms, uint32_t interval_s, uint32_t max_hops,
                        const char *const *addresses, size_t n, const char *domain);

/*
 * Checks a received announce: shape, signature over the canonical bytes, and the hash
 * chain (H^(max_hops - hops)(chain) == top). Does not check freshness or where it came
 * from: the caller applies the rules of docs/routing.md.
 * Returns 0, QPC_ERR_INVALID (bad shape, hops > max_hops), QPC_ERR_BAD_SIGNATURE
 * (signature or chain wrong).
 */
int qpc_announce_verify(const struct qpc_announce *a);

/*
 * Checks copy, a later copy of the announce verified (which qpc_announce_verify passed
 * before; both only read): the same signed fields and signature, and a hash chain that
 * lands on top from copy's own hops. The origin's signature over those bytes was
 * checked once, so a copy that came a shorter or longer way costs a few hashes, not a
 * signature check; what it may teach is its distance, which the chain proves.
 * Returns 0, QPC_ERR_INVALID (bad shape, hops > max_hops), QPC_ERR_BAD_SIGNATURE (any
 * signed field differs, or the chain is wrong).
 */
int qpc_announce_verify_copy(const struct qpc_announce *verified, const struct qpc_announce *copy);

/*
 * Prepares a to be passed on one more hop: hops + 1, chain = H(chain).
 * Returns 0, or QPC_ERR_HOP_LIMIT when hops already equals max_hops (do not pass on).
 */
int qpc_announce_forward(struct qpc_announce *a);

/* True when seqno a is newer than b in serial-number arithmetic (RFC 1982, 32 bits). */
bool qpc_announce_seqno_newer(uint32_t a, uint32_t b);

/*
 * Dedup key of an announce: BLAKE2b-256 over key || seqno. The same announce arriving
 * over two paths has one id whatever its hops.
 */
void qpc_announce_id(const struct qpc_announce *a, uint8_t id[static QPC_ID_LEN]);

/*
 * Strict conversion from the decoded protobuf (every length checked, addresses valid and
 * numeric). Does not verify: call qpc_announce_verify next.
 * Returns 0 or QPC_ERR_INVALID.
 */
int qpc_announce_from_pb(const Qpc__MeshAnnounce *pb, struct qpc_announce *out);

/*
 * Storage for the protobuf form of one announce: qpc_announce_to_pb points pb's fields
 * into this struct and into a (which must outlive it), so nothing is allocated and
 * nothing needs freeing. Pack pb (or embed &s->pb in a frame) while both live.
 */
struct qpc_announce_pb {
    Qpc__MeshAnnounce pb;
    Qpc__AnnounceBody body;
    char *address_ptrs[QPC_ANNOUNCE_ADDRS_MAX];
};
void qpc_announce_to_pb(const struct qpc_announce *a, struct qpc_announce_pb *s);

#endif
