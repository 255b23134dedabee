/*
 * envelope.h: MeshEnvelope, the signed unit that travels the mesh.
 *
 * The one idea: what is signed is a canonical, domain-separated byte string built from
 * every field except hop_count and the signature itself, never the protobuf bytes
 * (protobuf encoding is not canonical). The envelope id is SHA-256 of that same string,
 * so two nodes always agree on an id and relays may bump hop_count without breaking the
 * signature. The exact layout is documented in docs/envelope.md.
 *
 * Direct envelopes carry a payload end-to-end encrypted to the recipient with libsodium
 * crypto_box over X25519 keys converted from the Ed25519 identity keys. Broadcast
 * envelopes have no recipient and a topic; their payload is sealed by broadcast.h.
 *
 * The pure functions here take `now_ms` (milliseconds since the Unix epoch) and do no
 * I/O, so tests drive time explicitly.
 */
#ifndef QPC_ENVELOPE_H
#define QPC_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qpc/encoding.h"

#define QPC_ENVELOPE_VERSION 1
#define QPC_ID_LEN 32                   /* SHA-256 */
#define QPC_SIG_LEN 64                  /* Ed25519 signature */
#define QPC_SECRET_KEY_LEN 64           /* libsodium Ed25519 secret key (seed || public) */
#define QPC_TOPIC_MAX 255               /* bytes of a broadcast topic name */
#define QPC_PAYLOAD_MAX (1024 * 1024)   /* largest payload accepted by decode */
#define QPC_MAX_HOPS_DEFAULT 8
#define QPC_TTL_DEFAULT_S (24 * 3600)
#define QPC_TTL_MAX_S (7 * 24 * 3600)   /* longest TTL a node accepts (and so the longest an id
                                         * stays in a dedup set) */
#define QPC_CLOCK_SKEW_MS (5 * 60 * 1000) /* created_at up to this far ahead is tolerated */

struct qpc_envelope {
    uint32_t version;
    uint8_t id[QPC_ID_LEN];              /* SHA-256 of the signed bytes; set by sign/decode */
    uint8_t sender[QPC_KEY_LEN];         /* Ed25519 public key */
    bool has_recipient;                  /* false for broadcast */
    uint8_t recipient[QPC_KEY_LEN];      /* Ed25519 public key when has_recipient */
    char *topic;                         /* broadcast topic (owned, NUL-terminated) or NULL */
    uint64_t created_at_ms;
    uint32_t ttl_s;
    uint32_t hop_count;                  /* not signed: relays increment it */
    uint32_t max_hops;
    uint8_t *payload;                    /* owned */
    size_t payload_len;
    uint8_t signature[QPC_SIG_LEN];
};

/* Frees the fields an envelope owns (topic, payload) and zeroes it. NULL is a no-op. */
void qpc_envelope_clear(struct qpc_envelope *env);

/*
 * Fills env for a new message: version, sender (the public half of secret_key),
 * recipient (NULL for broadcast), topic (NULL for direct; copied), created_at_ms = now_ms,
 * ttl_s, max_hops, hop_count 0, payload copied. Then signs it (see qpc_envelope_sign).
 * env must be cleared or zeroed; on error it is left cleared.
 * Returns 0, QPC_ERR_INVALID (ttl 0 or above QPC_TTL_MAX_S, max_hops 0, topic too long
 * or both/neither of recipient and topic), QPC_ERR_TOO_LARGE, or QPC_ERR_NOMEM.
 */
int qpc_envelope_init(struct qpc_envelope *env, const uint8_t secret_key[static QPC_SECRET_KEY_LEN],
                      const uint8_t *recipient, const char *topic, uint64_t now_ms, uint32_t ttl_s,
                      uint32_t max_hops, const uint8_t *payload, size_t payload_len);

/*
 * Recomputes env->id (SHA-256 of the canonical bytes) and env->signature (Ed25519 by
 * secret_key over "quicprochat/envelope-id/v1\0" || id; docs/envelope.md says why the id
 * and not the whole string is signed). secret_key is libsodium's 64-byte form (seed ||
 * public key); it is only read. Call it again after changing any signed field.
 * Returns 0, QPC_ERR_INVALID (env->sender is not the public half of secret_key, or the
 * shape is invalid as described at qpc_envelope_verify), QPC_ERR_VERSION,
 * QPC_ERR_TOO_LARGE, QPC_ERR_NOMEM or QPC_ERR_CRYPTO.
 */
int qpc_envelope_sign(struct qpc_envelope *env, const uint8_t secret_key[static QPC_SECRET_KEY_LEN]);

/*
 * Checks an envelope received from anywhere: the id matches the canonical bytes, the
 * signature verifies under env->sender, it is not expired at now_ms, not created more
 * than QPC_CLOCK_SKEW_MS in the future, hop_count <= max_hops and the shape is valid:
 * version QPC_ENVELOPE_VERSION, exactly one of recipient and topic, topic 1..QPC_TOPIC_MAX
 * bytes, 1 <= ttl_s <= QPC_TTL_MAX_S, max_hops >= 1, payload_len <= QPC_PAYLOAD_MAX.
 * The checks run cheapest first; the id is rehashed (about 1 us per KiB) so a field
 * changed after decode or sign is caught; the signature check (~60 us) comes last.
 * Returns 0, QPC_ERR_BAD_SIGNATURE, QPC_ERR_EXPIRED, QPC_ERR_FUTURE, QPC_ERR_HOP_LIMIT,
 * QPC_ERR_VERSION, QPC_ERR_INVALID or QPC_ERR_NOMEM (payload above 4 KiB, hash buffer).
 */
int qpc_envelope_verify(const struct qpc_envelope *env, uint64_t now_ms);

/*
 * Every check of qpc_envelope_verify except the Ed25519 signature (the id is rehashed, so
 * a field changed after decode still fails). Only for an envelope whose id and signature
 * a verified broadcast batch of its sender vouches for (qpc_batch_vouches_cover in
 * broadcast_batch.h): that batch's signature stands for this one. Returns as
 * qpc_envelope_verify, never QPC_ERR_BAD_SIGNATURE for the signature itself.
 */
int qpc_envelope_verify_vouched(const struct qpc_envelope *env, uint64_t now_ms);

/* True when env's TTL has ended at now_ms (now_ms >= created_at_ms + ttl_s * 1000). */
bool qpc_envelope_expired(const struct qpc_envelope *env, uint64_t now_ms);

/* Milliseconds since the epoch at which env expires (saturates at UINT64_MAX). */
uint64_t qpc_envelope_expires_at_ms(const struct qpc_envelope *env);

/*
 * Prepares env to be relayed one hop further: increments hop_count.
 * Returns QPC_ERR_HOP_LIMIT (and leaves env unchanged) when hop_count >= max_hops.
 */
int qpc_envelope_hop(struct qpc_envelope *env);

/*
 * Encodes env as a protobuf MeshEnvelope (proto/qpc.proto), id included. On success *out
 * is a malloc'd buffer the caller frees and *out_len its length; on error *out is NULL.
 * Returns 0, QPC_ERR_INVALID / QPC_ERR_VERSION / QPC_ERR_TOO_LARGE (shape, see
 * qpc_envelope_verify) or QPC_ERR_NOMEM.
 */
int qpc_envelope_encode(const struct qpc_envelope *env, uint8_t **out, size_t *out_len);

/*
 * Decodes protobuf bytes into env (which must be cleared; it is overwritten) and
 * recomputes env->id from the canonical bytes; a wire id that disagrees is
 * QPC_ERR_BAD_SIGNATURE (the wire id may be absent). Decode does not verify the
 * signature: call qpc_envelope_verify (after a cheap dedup check on env->id).
 * Safe on any bytes. Refused as QPC_ERR_INVALID: not protobuf, a non-canonical encoding
 * (a field repeated, an unknown field, a default value written out, an over-long
 * varint, a NUL inside the topic), sender/recipient/id not 32 bytes, signature not 64, a topic over
 * QPC_TOPIC_MAX, both or neither of recipient and topic, ttl 0 or above QPC_TTL_MAX_S,
 * max_hops 0. QPC_ERR_TOO_LARGE: payload above QPC_PAYLOAD_MAX or input above it plus
 * 1 KiB. QPC_ERR_VERSION: version not QPC_ENVELOPE_VERSION. Also QPC_ERR_NOMEM.
 * On error env is cleared. buf is only read.
 */
int qpc_envelope_decode(struct qpc_envelope *env, const uint8_t *buf, size_t len);

/* Bytes an envelope occupies in memory (struct, topic, payload): used by store caps. */
size_t qpc_envelope_mem_size(const struct qpc_envelope *env);

/* Deep copy of src into dst (dst must be cleared). Returns 0 or QPC_ERR_NOMEM. */
int qpc_envelope_copy(struct qpc_envelope *dst, const struct qpc_envelope *src);

/* --- end-to-end encryption of direct payloads ---------------------------------------
 *
 * The box is nonce (24 bytes, random) || crypto_box_easy(plaintext) under the sender's
 * X25519 secret and the recipient's X25519 public key, both converted from Ed25519.
 * Shared keys are expensive (one X25519 per pair), so callers keep a qpc_box_cache.
 */

#define QPC_BOX_OVERHEAD (24 + 16)

struct qpc_box_cache;

/*
 * Creates a cache of precomputed shared keys for my_secret_key (converted to X25519 once
 * and kept only in that form). It holds up to 1024 peers and evicts the least recently
 * used one when full. Not thread-safe: one cache per thread (libqpc runs one loop).
 * Returns NULL on allocation failure or if libsodium cannot initialise. Free with
 * qpc_box_cache_free (NULL is a no-op), which wipes every key it held.
 */
struct qpc_box_cache *qpc_box_cache_new(const uint8_t my_secret_key[static QPC_SECRET_KEY_LEN]);
void qpc_box_cache_free(struct qpc_box_cache *cache);

/* Number of peers whose shared key is cached (for tests and metrics). */
size_t qpc_box_cache_count(const struct qpc_box_cache *cache);

/* True when peer's shared key is cached. A pure look-up: it does not count as a use. */
bool qpc_box_cache_contains(const struct qpc_box_cache *cache, const uint8_t peer[static QPC_KEY_LEN]);

/*
 * Encrypts plaintext to peer (an Ed25519 public key) with a fresh random nonce. *out is
 * malloc'd (caller frees), *out_len = len + QPC_BOX_OVERHEAD; on error *out is NULL.
 * Returns 0, QPC_ERR_CRYPTO (peer key not a valid point, or of small order),
 * QPC_ERR_TOO_LARGE (len beyond what crypto_box takes) or QPC_ERR_NOMEM.
 */
int qpc_box_seal(struct qpc_box_cache *cache, const uint8_t peer[static QPC_KEY_LEN],
                 const uint8_t *plaintext, size_t len, uint8_t **out, size_t *out_len);

/*
 * Decrypts a box from peer (an Ed25519 public key). *out is malloc'd, at least one byte
 * even for an empty plaintext (caller frees; it may hold a secret); on error *out is NULL.
 * Returns 0, QPC_ERR_DECRYPT (forged, truncated, wrong key), QPC_ERR_CRYPTO (peer key
 * not a valid point) or QPC_ERR_NOMEM.
 */
int qpc_box_open(struct qpc_box_cache *cache, const uint8_t peer[static QPC_KEY_LEN],
                 const uint8_t *box, size_t len, uint8_t **out, size_t *out_len);

#endif
