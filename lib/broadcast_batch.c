/*
 * broadcast_batch.c: a sender's signature over a burst of its broadcasts, and the table
 * of what verified batches vouch for (broadcast_batch.h).
 *
 * What is signed is a canonical byte string, never the protobuf (not canonical):
 *   "quicprochat/broadcast-batch/v1\0" || sender (32) || created_at_ms (u64 BE) ||
 *   n (u32 BE) || n digests of 32 bytes.
 * The domain string, NUL included, differs from the envelope's and the announce's, so
 * one identity key signing all three can never have one signature taken for another.
 * The table maps (32 bytes, signer) to a deadline: an envelope digest (what vouches) or
 * a batch id (what refuses a replay); the two hash domains differ, so they never collide. uthash keeps insertion order, which is also deadline order (every entry
 * lives QPC_BATCH_KEEP_MS from its insertion), so the oldest is always the head.
 */
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <gnutls/crypto.h>

/* uthash would exit() when an insert cannot allocate; make it tell us instead. */
#define HASH_NONFATAL_OOM 1
#define uthash_nonfatal_oom(elt) ((elt)->add_failed = true)
#include "qpc/uthash_keyed.h"   /* digests arrive from peers: keyed hash */

#include "qpc/broadcast_batch.h"
#include "qpc/encoding.h"
#include "qpc/error.h"
#include "qpc.pb-c.h"

static const char BATCH_DOMAIN[] = "quicprochat/broadcast-batch/v1";
static const char LEAF_DOMAIN[] = "quicprochat/batch-leaf/v1";
#define BATCH_DOMAIN_LEN sizeof(BATCH_DOMAIN)   /* 31, with the NUL */
#define LEAF_DOMAIN_LEN sizeof(LEAF_DOMAIN)     /* 26, with the NUL */
#define CANON_MAX (BATCH_DOMAIN_LEN + QPC_KEY_LEN + 8 + 4 + QPC_BATCH_MAX * QPC_ID_LEN)

int qpc_broadcast_batch_digest(const struct qpc_envelope *env, uint8_t out[static QPC_ID_LEN])
{
    uint8_t buf[LEAF_DOMAIN_LEN + QPC_ID_LEN + QPC_SIG_LEN];
    uint8_t *p = buf;

    p = qpc_put_bytes(p, LEAF_DOMAIN, LEAF_DOMAIN_LEN);
    p = qpc_put_bytes(p, env->id, QPC_ID_LEN);
    qpc_put_bytes(p, env->signature, QPC_SIG_LEN);
    return gnutls_hash_fast(GNUTLS_DIG_SHA256, buf, sizeof(buf), out) == 0 ? 0 : QPC_ERR_CRYPTO;
}

static bool count_ok(size_t n)
{
    return n >= QPC_BATCH_MIN && n <= QPC_BATCH_MAX;
}

/* Writes the canonical bytes into buf (CANON_MAX); returns their length. */
static size_t canonical(const struct qpc_broadcast_batch *b, uint8_t buf[static CANON_MAX])
{
    uint8_t *p = buf;

    p = qpc_put_bytes(p, BATCH_DOMAIN, BATCH_DOMAIN_LEN);
    p = qpc_put_bytes(p, b->sender, QPC_KEY_LEN);
    p = qpc_put_u64(p, b->created_at_ms);
    p = qpc_put_u32(p, (uint32_t)b->n);
    p = qpc_put_bytes(p, b->digests, b->n * QPC_ID_LEN);
    return (size_t)(p - buf);
}

int qpc_broadcast_batch_sign(struct qpc_broadcast_batch *b, const uint8_t secret_key[static QPC_SECRET_KEY_LEN],
                             const uint8_t (*digests)[QPC_ID_LEN], size_t n, uint64_t now_ms)
{
    uint8_t buf[CANON_MAX];
    size_t len;

    memset(b, 0, sizeof(*b));
    if (!count_ok(n))
        return QPC_ERR_INVALID;
    if (sodium_init() < 0)
        return QPC_ERR_CRYPTO;
    memcpy(b->sender, secret_key + 32, QPC_KEY_LEN);   /* libsodium sk = seed || pk */
    b->created_at_ms = now_ms;
    b->n = n;
    memcpy(b->digests, digests, n * QPC_ID_LEN);
    len = canonical(b, buf);
    return crypto_sign_detached(b->signature, NULL, buf, len, secret_key) == 0 ? 0 : QPC_ERR_CRYPTO;
}

int qpc_broadcast_batch_id(const struct qpc_broadcast_batch *b, uint8_t id[static QPC_ID_LEN])
{
    uint8_t buf[CANON_MAX];
    size_t len;

    if (!count_ok(b->n))
        return QPC_ERR_INVALID;
    len = canonical(b, buf);
    return gnutls_hash_fast(GNUTLS_DIG_SHA256, buf, len, id) == 0 ? 0 : QPC_ERR_CRYPTO;
}

int qpc_broadcast_batch_verify(const struct qpc_broadcast_batch *b, uint64_t now_ms)
{
    uint8_t buf[CANON_MAX];
    size_t len;

    if (!count_ok(b->n))
        return QPC_ERR_INVALID;
    if (b->created_at_ms > now_ms && b->created_at_ms - now_ms > QPC_CLOCK_SKEW_MS)
        return QPC_ERR_FUTURE;
    if (b->created_at_ms <= now_ms && now_ms - b->created_at_ms > QPC_BATCH_MAX_AGE_MS)
        return QPC_ERR_EXPIRED;
    if (sodium_init() < 0)
        return QPC_ERR_CRYPTO;
    len = canonical(b, buf);
    if (crypto_sign_verify_detached(b->signature, buf, len, b->sender) != 0)
        return QPC_ERR_BAD_SIGNATURE;
    return 0;
}

/* --- protobuf carrier ------------------------------------------------------------- */

int qpc_broadcast_batch_encode(const struct qpc_broadcast_batch *b, uint8_t **out, size_t *out_len)
{
    Qpc__BroadcastBatch msg = QPC__BROADCAST_BATCH__INIT;
    ProtobufCBinaryData digests[QPC_BATCH_MAX];
    uint8_t *buf;
    size_t len;

    *out = NULL;
    *out_len = 0;
    if (!count_ok(b->n))
        return QPC_ERR_INVALID;
    /* protobuf-c's structs are not const-correct; pack only reads them. */
    msg.sender.data = (uint8_t *)b->sender;
    msg.sender.len = QPC_KEY_LEN;
    msg.created_at = b->created_at_ms;
    for (size_t i = 0; i < b->n; i++) {
        digests[i].data = (uint8_t *)b->digests[i];
        digests[i].len = QPC_ID_LEN;
    }
    msg.digests = digests;
    msg.n_digests = b->n;
    msg.signature.data = (uint8_t *)b->signature;
    msg.signature.len = QPC_SIG_LEN;
    len = qpc__broadcast_batch__get_packed_size(&msg);
    if ((buf = malloc(len)) == NULL)
        return QPC_ERR_NOMEM;
    qpc__broadcast_batch__pack(&msg, buf);
    *out = buf;
    *out_len = len;
    return 0;
}

int qpc_broadcast_batch_decode(struct qpc_broadcast_batch *b, const uint8_t *buf, size_t len)
{
    uint8_t again[QPC_BATCH_WIRE_MAX];
    Qpc__BroadcastBatch *msg;
    int ret = QPC_ERR_INVALID;

    memset(b, 0, sizeof(*b));
    if (len > QPC_BATCH_WIRE_MAX)
        return QPC_ERR_TOO_LARGE;   /* before protobuf-c allocates anything for it */
    if ((msg = qpc__broadcast_batch__unpack(NULL, len, buf)) == NULL)
        return QPC_ERR_INVALID;
    /* Only what encode writes, byte for byte: packed again, the message must give the
     * input back (a repeated or unknown field, an explicit default, a varint over-long
     * or with bits beyond 64 all fail; equal sizes alone would let the last through). */
    if (msg->base.n_unknown_fields != 0 || qpc__broadcast_batch__get_packed_size(msg) != len ||
        qpc__broadcast_batch__pack(msg, again) != len || memcmp(again, buf, len) != 0)
        goto out;
    if (msg->n_digests > QPC_BATCH_MAX) {
        ret = QPC_ERR_TOO_LARGE;
        goto out;
    }
    if (msg->n_digests < QPC_BATCH_MIN || msg->sender.len != QPC_KEY_LEN || msg->signature.len != QPC_SIG_LEN)
        goto out;
    for (size_t i = 0; i < msg->n_digests; i++) {
        if (msg->digests[i].len != QPC_ID_LEN)
            goto out;
        memcpy(b->digests[i], msg->digests[i].data, QPC_ID_LEN);
    }
    memcpy(b->sender, msg->sender.data, QPC_KEY_LEN);
    memcpy(b->signature, msg->signature.data, QPC_SIG_LEN);
    b->created_at_ms = msg->created_at;
    b->n = msg->n_digests;
    ret = 0;
out:
    qpc__broadcast_batch__free_unpacked(msg, NULL);
    if (ret != 0)
        memset(b, 0, sizeof(*b));
    return ret;
}

/* --- the table --------------------------------------------------------------------- */

/* Keyed by what it names and who signed it, so another signer listing the same digest
 * (in a batch of its own, which verifies) adds an entry of its own and can neither vouch
 * for the sender's envelope nor push the sender's entry out. */
struct vouch {
    uint8_t key[QPC_ID_LEN + QPC_KEY_LEN];   /* digest or batch id || signer: the hash key */
    uint64_t until_ms;
    bool add_failed;                   /* set by uthash on out of memory */
    UT_hash_handle hh;
};

struct qpc_batch_vouches {
    struct vouch *table;               /* insertion order = deadline order */
    size_t max;
};

struct qpc_batch_vouches *qpc_batch_vouches_new(size_t max)
{
    struct qpc_batch_vouches *v = calloc(1, sizeof(*v));

    if (v != NULL)
        v->max = max > 0 ? max : QPC_BATCH_VOUCHES_DEFAULT;
    return v;
}

static void drop(struct qpc_batch_vouches *v, struct vouch *e)
{
    HASH_DEL(v->table, e);
    free(e);
}

void qpc_batch_vouches_free(struct qpc_batch_vouches *v)
{
    struct vouch *e, *tmp;

    if (v == NULL)
        return;
    HASH_ITER(hh, v->table, e, tmp)
        drop(v, e);
    free(v);
}

size_t qpc_batch_vouches_count(const struct qpc_batch_vouches *v)
{
    return HASH_COUNT(v->table);
}

static void make_key(uint8_t key[static QPC_ID_LEN + QPC_KEY_LEN], const uint8_t what[static QPC_ID_LEN],
                     const uint8_t signer[static QPC_KEY_LEN])
{
    memcpy(key, what, QPC_ID_LEN);
    memcpy(key + QPC_ID_LEN, signer, QPC_KEY_LEN);
}

static struct vouch *find(struct qpc_batch_vouches *v, const uint8_t what[static QPC_ID_LEN],
                          const uint8_t signer[static QPC_KEY_LEN], uint64_t now_ms)
{
    uint8_t key[QPC_ID_LEN + QPC_KEY_LEN];
    struct vouch *e = NULL;

    make_key(key, what, signer);
    HASH_FIND(hh, v->table, key, sizeof(key), e);
    return e != NULL && now_ms < e->until_ms ? e : NULL;
}

/* Adds (what, signer) until until_ms; one there already is replaced (so the table stays
 * in deadline order). */
static int put(struct qpc_batch_vouches *v, const uint8_t what[static QPC_ID_LEN],
               const uint8_t signer[static QPC_KEY_LEN], uint64_t until_ms)
{
    uint8_t key[QPC_ID_LEN + QPC_KEY_LEN];
    struct vouch *e = NULL;

    make_key(key, what, signer);
    HASH_FIND(hh, v->table, key, sizeof(key), e);
    if (e != NULL)
        drop(v, e);
    if ((e = calloc(1, sizeof(*e))) == NULL)
        return QPC_ERR_NOMEM;
    memcpy(e->key, key, sizeof(key));
    e->until_ms = until_ms;
    HASH_ADD(hh, v->table, key, sizeof(e->key), e);
    if (e->add_failed) {
        free(e);
        return QPC_ERR_NOMEM;
    }
    return 0;
}

/* Forgets what is past its deadline, then the oldest until room entries fit. */
static void make_room(struct qpc_batch_vouches *v, size_t room, uint64_t now_ms)
{
    while (v->table != NULL &&
           (v->table->until_ms <= now_ms || HASH_COUNT(v->table) + room > v->max))
        drop(v, v->table);
}

int qpc_batch_vouches_take(struct qpc_batch_vouches *v, const struct qpc_broadcast_batch *b, uint64_t now_ms)
{
    uint8_t id[QPC_ID_LEN];
    uint64_t until = now_ms + QPC_BATCH_KEEP_MS;
    int rc;

    if ((rc = qpc_broadcast_batch_id(b, id)) < 0)
        return rc;
    if (find(v, id, b->sender, now_ms) != NULL)
        return 0;   /* a replay, or a copy by another way: nothing new, nothing to pass on */
    if ((rc = qpc_broadcast_batch_verify(b, now_ms)) < 0)
        return rc;
    make_room(v, b->n + 1, now_ms);
    if ((rc = put(v, id, b->sender, until)) < 0)
        return rc;
    for (size_t i = 0; i < b->n; i++)
        if ((rc = put(v, b->digests[i], b->sender, until)) < 0)
            return rc;
    return 1;
}

bool qpc_batch_vouches_cover(struct qpc_batch_vouches *v, const struct qpc_envelope *env, uint64_t now_ms)
{
    uint8_t digest[QPC_ID_LEN];

    if (v == NULL || v->table == NULL || qpc_broadcast_batch_digest(env, digest) < 0)
        return false;
    /* Looked up under the envelope's sender: a batch vouches only for its own signer's
     * envelopes, whatever digests it lists. */
    return find(v, digest, env->sender, now_ms) != NULL;
}
