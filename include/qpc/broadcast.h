/*
 * broadcast.h: broadcast channels, lightweight pub/sub over the mesh.
 *
 * A channel is a topic name and a 32-byte symmetric key. An open channel's key is
 * HKDF-SHA256 of the topic name under a fixed label, so anyone who knows the name can
 * read it (a community bulletin board); a private channel's key is handed out of band.
 * Payloads are XChaCha20-Poly1305-IETF: a random 24-byte nonce followed by the
 * ciphertext and its 16-byte tag.
 *
 * The one idea: the associated data binds the ciphertext to the topic and to the signed
 * envelope header it travels in (sender, created_at_ms, ttl_s, max_hops, version), so a
 * relay cannot lift a sealed payload into another envelope, another sender's name or
 * another topic that happens to share the key. The exact byte layout is in
 * docs/broadcast.md.
 *
 * A channel set is the subscriber's list of channels, keyed by topic. It owns every key
 * and wipes them when a channel is dropped. Nothing here does I/O.
 */
#ifndef QPC_BROADCAST_H
#define QPC_BROADCAST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qpc/encoding.h"
#include "qpc/envelope.h"

#define QPC_BROADCAST_LABEL "quicprochat/broadcast/v1"   /* HKDF salt and AD prefix */
#define QPC_BROADCAST_OPEN_INFO "open channel key"       /* HKDF info for open channels */
#define QPC_BROADCAST_NONCE_LEN 24                        /* XChaCha20 nonce */
#define QPC_BROADCAST_TAG_LEN 16                          /* Poly1305 tag */
#define QPC_BROADCAST_OVERHEAD (QPC_BROADCAST_NONCE_LEN + QPC_BROADCAST_TAG_LEN)
/* Largest plaintext that still fits an envelope payload once sealed. */
#define QPC_BROADCAST_PLAINTEXT_MAX (QPC_PAYLOAD_MAX - QPC_BROADCAST_OVERHEAD)

struct qpc_channel;       /* one subscribed topic and its key (opaque) */
struct qpc_channel_set;   /* the channels a node or client is subscribed to (opaque) */

/* --- keys ---------------------------------------------------------------------------- */

/*
 * HKDF-SHA256 (RFC 5869), extract then expand, through GnuTLS. Writes okm_len bytes
 * (at most 255 * 32) to okm. salt may be NULL when salt_len is 0 (RFC 5869 then uses 32
 * zero bytes); info may be NULL when info_len is 0. Exposed so tests check the RFC
 * vectors through exactly the calls channel keys use.
 * Returns 0, QPC_ERR_INVALID (okm_len 0 or too long) or QPC_ERR_CRYPTO.
 */
int qpc_broadcast_hkdf_sha256(uint8_t *okm, size_t okm_len, const uint8_t *ikm, size_t ikm_len,
                              const uint8_t *salt, size_t salt_len, const uint8_t *info,
                              size_t info_len);

/*
 * Derives the key of the open channel named topic: HKDF-SHA256 with ikm = the topic's
 * bytes, salt = QPC_BROADCAST_LABEL, info = QPC_BROADCAST_OPEN_INFO. Topics are compared
 * and hashed byte for byte: "News" and "news" are different channels.
 * Returns 0, QPC_ERR_INVALID (topic not valid, see qpc_broadcast_topic_valid) or
 * QPC_ERR_CRYPTO. On error key is zeroed.
 */
int qpc_broadcast_open_key(uint8_t key[static QPC_KEY_LEN], const char *topic);

/*
 * True when topic is usable as a channel name: 1 to QPC_TOPIC_MAX bytes, no ASCII
 * control characters (a topic is shown on terminals and typed in the REPL). Other bytes,
 * UTF-8 included, are allowed.
 */
bool qpc_broadcast_topic_valid(const char *topic);

/* --- the channel set ------------------------------------------------------------------ */

/* Creates an empty channel set. Returns NULL when out of memory or libsodium fails. */
struct qpc_channel_set *qpc_broadcast_set_new(void);

/* Wipes every key and frees the set and its channels. NULL is a no-op. */
void qpc_broadcast_set_free(struct qpc_channel_set *set);

/*
 * Subscribes to topic. key is the 32-byte private channel key (copied; the caller may
 * wipe its copy) or NULL for the open channel, whose key is derived from the name.
 * Subscribing again with the same key is not an error and returns the existing channel;
 * a different key (or open vs private) is QPC_ERR_EXISTS: unsubscribe first.
 * On success *out (if out is not NULL) points to the channel, owned by the set and valid
 * until it is unsubscribed or the set is freed.
 * Returns 0, QPC_ERR_INVALID (bad topic), QPC_ERR_EXISTS, QPC_ERR_NOMEM or QPC_ERR_CRYPTO.
 */
int qpc_broadcast_subscribe(struct qpc_channel_set *set, const char *topic,
                            const uint8_t *key, const struct qpc_channel **out);

/*
 * As qpc_broadcast_subscribe, for a private channel whose key is text: 64 hex characters
 * or base64 (standard or URL-safe, padded or not) of 32 bytes. The parsed key is wiped
 * from the stack before returning.
 * Returns what qpc_broadcast_subscribe returns; unparsable key text is QPC_ERR_INVALID.
 */
int qpc_broadcast_subscribe_text(struct qpc_channel_set *set, const char *topic,
                                 const char *key_text, const struct qpc_channel **out);

/*
 * Leaves topic: the channel's key is wiped and the channel freed (pointers to it become
 * invalid). Returns 0 or QPC_ERR_NOT_FOUND.
 */
int qpc_broadcast_unsubscribe(struct qpc_channel_set *set, const char *topic);

/* The channel for topic, or NULL when not subscribed. Owned by the set. */
const struct qpc_channel *qpc_broadcast_lookup(const struct qpc_channel_set *set,
                                               const char *topic);

/* Number of channels in the set. */
size_t qpc_broadcast_count(const struct qpc_channel_set *set);

/*
 * Lists the channels sorted by topic (byte order). On success *out is a malloc'd array of
 * *n pointers (the caller frees the array, not the channels; NULL when *n is 0), valid
 * until the set changes. Returns 0 or QPC_ERR_NOMEM.
 */
int qpc_broadcast_list(const struct qpc_channel_set *set, const struct qpc_channel ***out,
                       size_t *n);

/* The channel's topic (owned by the channel, NUL-terminated). */
const char *qpc_channel_topic(const struct qpc_channel *ch);

/* True when the channel's key was given out of band, false for an open channel. */
bool qpc_channel_is_private(const struct qpc_channel *ch);

/* --- sealing payloads ----------------------------------------------------------------- */

/*
 * Encrypts plaintext[0..len) for channel ch, bound to the header fields of hdr
 * (version, sender, created_at_ms, ttl_s, max_hops) and to ch's topic. hdr must be a
 * broadcast header: no recipient, and its topic either NULL (not filled in yet) or equal
 * to ch's topic. Its payload, id, signature and hop_count are ignored.
 * On success *out is malloc'd (caller frees) and holds nonce || ciphertext || tag,
 * *out_len = len + QPC_BROADCAST_OVERHEAD.
 * Returns 0, QPC_ERR_INVALID (hdr has a recipient or another topic), QPC_ERR_TOO_LARGE
 * (len > QPC_BROADCAST_PLAINTEXT_MAX), QPC_ERR_NOMEM or QPC_ERR_CRYPTO.
 */
int qpc_broadcast_seal(const struct qpc_channel *ch, const struct qpc_envelope *hdr,
                       const uint8_t *plaintext, size_t len, uint8_t **out, size_t *out_len);

/*
 * Decrypts the payload of the broadcast envelope env with channel ch. The associated
 * data is rebuilt from env's header and env->topic, so any change to them since sealing
 * fails authentication. The caller has verified env (qpc_envelope_verify) first: this
 * checks confidentiality and binding, not the sender's signature.
 * On success *out is malloc'd (caller frees) with *out_len plaintext bytes followed by a
 * NUL that is not counted, so text payloads can be printed directly.
 * Returns 0, QPC_ERR_INVALID (env has a recipient, no topic, or a topic other than ch's),
 * QPC_ERR_DECRYPT (wrong key, tampered or truncated payload, moved to another header),
 * or QPC_ERR_NOMEM.
 */
int qpc_broadcast_open(const struct qpc_channel *ch, const struct qpc_envelope *env,
                       uint8_t **out, size_t *out_len);

/*
 * As qpc_broadcast_open, picking the channel by env->topic from set.
 * Returns what qpc_broadcast_open returns, or QPC_ERR_NOT_FOUND when not subscribed.
 */
int qpc_broadcast_open_envelope(const struct qpc_channel_set *set, const struct qpc_envelope *env,
                                uint8_t **out, size_t *out_len);

/*
 * Builds a complete, signed broadcast envelope on channel ch: fills the header (version,
 * sender = public half of secret_key, topic, created_at_ms = now_ms, ttl_s, max_hops,
 * hop_count 0), seals text[0..len) against that header, then signs it with
 * qpc_envelope_sign. env must be cleared or zeroed; on error it is left cleared.
 * Returns 0, QPC_ERR_INVALID (ttl_s 0 or above QPC_TTL_MAX_S, max_hops 0),
 * QPC_ERR_TOO_LARGE, QPC_ERR_NOMEM, QPC_ERR_CRYPTO, or an error of qpc_envelope_sign.
 */
int qpc_broadcast_envelope_new(const struct qpc_channel *ch,
                               const uint8_t secret_key[static QPC_SECRET_KEY_LEN],
                               uint64_t now_ms, uint32_t ttl_s, uint32_t max_hops,
                               const uint8_t *text, size_t len, struct qpc_envelope *env);

#endif
