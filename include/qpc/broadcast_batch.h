/*
 * broadcast_batch.h: one signature over a sender's burst of broadcasts.
 *
 * The one idea: checking a broadcast costs one Ed25519 verification (65-75 us here) at
 * every node it reaches, and that, not the network, bounds a burst (docs/mesh_lab.md,
 * "Broadcast throughput"). When a sender puts out several broadcasts in one loop turn,
 * it also signs one batch: the list of their digests, SHA-256(leaf domain || id ||
 * signature). The batch travels just before them; a node verifies the batch once and
 * then checks each envelope of it by hash (qpc_envelope_verify_vouched), which is as
 * strong as its own signature: the id is SHA-256 of everything signed, the batch's
 * signer must be the envelope's sender, and the digest binds the envelope's own
 * signature too, so a relay cannot swap that for garbage that later nodes, without the
 * batch, would refuse. Every envelope keeps its own signature: a node that missed the
 * batch, a node met later (the store's replay), the server, or an older qpc checks it
 * alone, as before.
 *
 * A batch is only an accelerator, never needed: a forged, stale or unknown batch is
 * refused or ignored and the envelopes are verified one by one. A node keeps the
 * digests of the batches it verified for QPC_BATCH_KEEP_MS in a bounded table
 * (qpc_batch_vouches), and a batch it knows already is neither verified nor passed on
 * again, so a replay costs one hash and goes nowhere.
 *
 * Pure logic: no I/O, time comes in as now_ms. Layout: docs/broadcast.md "Batches".
 */
#ifndef QPC_BROADCAST_BATCH_H
#define QPC_BROADCAST_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qpc/envelope.h"

#define QPC_BATCH_MIN 2                    /* a lone broadcast travels alone, as before */
#define QPC_BATCH_MAX 64                   /* envelopes named by one batch */
#define QPC_BATCH_MAX_AGE_MS (60 * 1000)   /* a batch older than this is refused */
#define QPC_BATCH_KEEP_MS (120 * 1000)     /* how long its digests vouch (> the age limit,
                                            * so a batch cannot come back once forgotten) */
#define QPC_BATCH_VOUCHES_DEFAULT 16384    /* digests a node keeps (256 full batches) */
#define QPC_BATCH_WIRE_MAX 4096            /* an encoded batch is at most about 2.4 KB */

struct qpc_broadcast_batch {
    uint8_t sender[QPC_KEY_LEN];           /* Ed25519 public key, sender of every envelope */
    uint64_t created_at_ms;
    size_t n;                              /* QPC_BATCH_MIN..QPC_BATCH_MAX */
    uint8_t digests[QPC_BATCH_MAX][QPC_ID_LEN];
    uint8_t signature[QPC_SIG_LEN];
};

/*
 * The digest a batch lists for env: SHA-256("quicprochat/batch-leaf/v1\0" || env->id ||
 * env->signature). env->id must be set (sign or decode did). Returns 0 or QPC_ERR_CRYPTO.
 */
int qpc_broadcast_batch_digest(const struct qpc_envelope *env, uint8_t out[static QPC_ID_LEN]);

/*
 * Fills b with the n digests (QPC_BATCH_MIN..QPC_BATCH_MAX), sender = the public half of
 * secret_key, created_at = now_ms, and signs it. secret_key is only read.
 * Returns 0, QPC_ERR_INVALID (n out of range) or QPC_ERR_CRYPTO.
 */
int qpc_broadcast_batch_sign(struct qpc_broadcast_batch *b, const uint8_t secret_key[static QPC_SECRET_KEY_LEN],
                             const uint8_t (*digests)[QPC_ID_LEN], size_t n, uint64_t now_ms);

/*
 * The batch's id: SHA-256 of its canonical signed bytes (what the table remembers to
 * refuse a replay). Returns 0, QPC_ERR_INVALID (n out of range) or QPC_ERR_CRYPTO.
 */
int qpc_broadcast_batch_id(const struct qpc_broadcast_batch *b, uint8_t id[static QPC_ID_LEN]);

/*
 * Checks the batch's signature and age: created no more than QPC_BATCH_MAX_AGE_MS before
 * now_ms and no more than QPC_CLOCK_SKEW_MS after it. Returns 0, QPC_ERR_INVALID (n out
 * of range), QPC_ERR_EXPIRED, QPC_ERR_FUTURE, QPC_ERR_BAD_SIGNATURE or QPC_ERR_CRYPTO.
 */
int qpc_broadcast_batch_verify(const struct qpc_broadcast_batch *b, uint64_t now_ms);

/*
 * Encodes b as a protobuf BroadcastBatch (proto/qpc.proto). *out is malloc'd (caller
 * frees), NULL on error. Returns 0, QPC_ERR_INVALID (n out of range) or QPC_ERR_NOMEM.
 */
int qpc_broadcast_batch_encode(const struct qpc_broadcast_batch *b, uint8_t **out, size_t *out_len);

/*
 * Decodes bytes anyone may have sent into b (overwritten). Safe on any input. Refused as
 * QPC_ERR_TOO_LARGE: input above QPC_BATCH_WIRE_MAX or more than QPC_BATCH_MAX digests;
 * QPC_ERR_INVALID: not protobuf, unknown or repeated fields (a non-canonical encoding),
 * a sender not 32 bytes, a signature not 64, a digest not 32, fewer than QPC_BATCH_MIN
 * digests. Does not verify: call qpc_batch_vouches_take. buf is only read.
 */
int qpc_broadcast_batch_decode(struct qpc_broadcast_batch *b, const uint8_t *buf, size_t len);

/* --- what a node's verified batches vouch for -------------------------------------- */

struct qpc_batch_vouches;

/*
 * A table of at most max digests (0: QPC_BATCH_VOUCHES_DEFAULT); when full, the oldest
 * go first. Returns NULL when out of memory. Free with qpc_batch_vouches_free (NULL is
 * fine). Not thread-safe: one per loop.
 */
struct qpc_batch_vouches *qpc_batch_vouches_new(size_t max);
void qpc_batch_vouches_free(struct qpc_batch_vouches *v);

/*
 * A batch that arrived: known already (its id is in the table) is 0, with no signature
 * check; else it is verified (qpc_broadcast_batch_verify) and its digests vouch for the
 * sender's envelopes until now_ms + QPC_BATCH_KEEP_MS: 1 (new: pass it on). b is only
 * read. Returns 1, 0, the errors of qpc_broadcast_batch_verify, or QPC_ERR_NOMEM.
 */
int qpc_batch_vouches_take(struct qpc_batch_vouches *v, const struct qpc_broadcast_batch *b, uint64_t now_ms);

/*
 * True when a batch verified by this table, signed by env->sender and not yet forgotten
 * at now_ms, lists env's digest (its id and signature as they are now). Then
 * qpc_envelope_verify_vouched is the check env needs. env is only read.
 */
bool qpc_batch_vouches_cover(struct qpc_batch_vouches *v, const struct qpc_envelope *env, uint64_t now_ms);

/* Digests and batch ids held (for tests and metrics). */
size_t qpc_batch_vouches_count(const struct qpc_batch_vouches *v);

#endif
