/*
 * envelope.c: MeshEnvelope life cycle: build, sign, verify, encode, decode, and the
 * crypto_box sealing of direct payloads.
 *
 * The canonical signed bytes (docs/envelope.md) are the only thing hashed; protobuf is
 * merely the carrier. id = SHA-256(canonical bytes), and the Ed25519 signature covers
 * the short, domain-separated string "quicprochat/envelope-id/v1\0" || id rather than
 * the canonical bytes themselves: the hash is computed anyway (fast, through GnuTLS and
 * the CPU's SHA instructions), and signing 59 bytes spares libsodium's two SHA-512
 * passes over the whole payload. hop_count stays outside both, so relays can increment
 * it without breaking anything.
 */
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <gnutls/crypto.h>

/* uthash would exit() when an insert cannot allocate; make it tell us instead. */
#define HASH_NONFATAL_OOM 1
#define uthash_nonfatal_oom(elt) ((elt)->add_failed = true)
#include "qpc/uthash_keyed.h"   /* peer keys are free to mint: keyed hash */
#include <utlist.h>

#include "qpc/encoding.h"
#include "qpc/envelope.h"
#include "qpc/error.h"
#include "qpc/pbarena.h"
#include "qpc.pb-c.h"

/* Domain strings, NUL included, so neither can be a prefix of the other or of a TLS
 * 1.3 CertificateVerify content (which starts with 64 spaces): the same key signs both. */
static const char CANON_DOMAIN[] = "quicprochat/envelope/v1";
static const char SIGN_DOMAIN[] = "quicprochat/envelope-id/v1";
#define CANON_DOMAIN_LEN sizeof(CANON_DOMAIN)   /* 24, with the NUL */
#define SIGN_DOMAIN_LEN sizeof(SIGN_DOMAIN)     /* 27, with the NUL */
#define SIGN_MSG_LEN (SIGN_DOMAIN_LEN + QPC_ID_LEN)

/* Longest canonical prefix before the payload bytes. */
#define CANON_HEAD_MAX (CANON_DOMAIN_LEN + 4 + QPC_KEY_LEN + 1 + QPC_KEY_LEN + 2 + \
                        QPC_TOPIC_MAX + 8 + 4 + 4 + 4)
/* Canonical strings up to this size are built on the stack (no malloc on the hot path). */
#define CANON_STACK_MAX 4096

/* Stack room for an unpacked envelope: the message struct and every field of one with
 * a payload of up to about 3 KiB. */
#define DECODE_SCRATCH 4096

/* Largest protobuf we parse at all: the payload cap plus generous room for the rest. */
#define WIRE_MAX (QPC_PAYLOAD_MAX + 1024)

void qpc_envelope_clear(struct qpc_envelope *env)
{
    if (env == NULL)
        return;
    free(env->topic);
    free(env->payload);
    memset(env, 0, sizeof(*env));
}

uint64_t qpc_envelope_expires_at_ms(const struct qpc_envelope *env)
{
    uint64_t ttl_ms = (uint64_t)env->ttl_s * 1000u;

    /* Saturate: a decoded, not yet verified created_at may be anything. */
    if (env->created_at_ms > UINT64_MAX - ttl_ms)
        return UINT64_MAX;
    return env->created_at_ms + ttl_ms;
}

bool qpc_envelope_expired(const struct qpc_envelope *env, uint64_t now_ms)
{
    return now_ms >= qpc_envelope_expires_at_ms(env);
}

int qpc_envelope_hop(struct qpc_envelope *env)
{
    if (env->hop_count >= env->max_hops)
        return QPC_ERR_HOP_LIMIT;
    env->hop_count++;
    return 0;
}

size_t qpc_envelope_mem_size(const struct qpc_envelope *env)
{
    return sizeof(*env) + env->payload_len + (env->topic ? strlen(env->topic) + 1 : 0);
}

int qpc_envelope_copy(struct qpc_envelope *dst, const struct qpc_envelope *src)
{
    *dst = *src;
    dst->topic = NULL;
    dst->payload = NULL;
    if (src->topic != NULL && (dst->topic = strdup(src->topic)) == NULL)
        goto nomem;
    if (src->payload_len > 0) {
        if ((dst->payload = malloc(src->payload_len)) == NULL)
            goto nomem;
        memcpy(dst->payload, src->payload, src->payload_len);
    }
    return 0;
nomem:
    qpc_envelope_clear(dst);
    return QPC_ERR_NOMEM;
}

/* --- canonical bytes, id, signature ------------------------------------------------ */

/*
 * The shape every envelope must have before it is hashed, sent or accepted; the
 * canonical layout relies on it (topic fits a u16, payload a u32).
 */
static int check_shape(const struct qpc_envelope *env)
{
    size_t topic_len = env->topic ? strlen(env->topic) : 0;

    if (env->version != QPC_ENVELOPE_VERSION)
        return QPC_ERR_VERSION;
    if (env->has_recipient == (env->topic != NULL))
        return QPC_ERR_INVALID;   /* exactly one of recipient and topic */
    if (env->topic != NULL && (topic_len == 0 || topic_len > QPC_TOPIC_MAX))
        return QPC_ERR_INVALID;
    if (env->ttl_s == 0 || env->ttl_s > QPC_TTL_MAX_S || env->max_hops == 0)
        return QPC_ERR_INVALID;
    if (env->payload_len > QPC_PAYLOAD_MAX)
        return QPC_ERR_TOO_LARGE;
    if (env->payload_len > 0 && env->payload == NULL)
        return QPC_ERR_INVALID;
    return 0;
}

/* Writes the canonical bytes up to and including the payload length; returns the end. */
static uint8_t *put_canonical_head(uint8_t *p, const struct qpc_envelope *env)
{
    size_t topic_len = env->topic ? strlen(env->topic) : 0;

    p = qpc_put_bytes(p, CANON_DOMAIN, CANON_DOMAIN_LEN);
    p = qpc_put_u32(p, env->version);
    p = qpc_put_bytes(p, env->sender, QPC_KEY_LEN);
    p = qpc_put_u8(p, env->has_recipient ? 1 : 0);
    if (env->has_recipient)
        p = qpc_put_bytes(p, env->recipient, QPC_KEY_LEN);
    p = qpc_put_u16(p, (uint16_t)topic_len);
    p = qpc_put_bytes(p, env->topic, topic_len);
    p = qpc_put_u64(p, env->created_at_ms);
    p = qpc_put_u32(p, env->ttl_s);
    p = qpc_put_u32(p, env->max_hops);
    return qpc_put_u32(p, (uint32_t)env->payload_len);
}

/* id = SHA-256(canonical bytes). env must have passed check_shape. */
static int compute_id(const struct qpc_envelope *env, uint8_t id[static QPC_ID_LEN])
{
    uint8_t stack[CANON_STACK_MAX];
    uint8_t *buf = stack;
    size_t total = CANON_HEAD_MAX + env->payload_len;
    int ret = QPC_ERR_CRYPTO;
    uint8_t *end;

    if (total > sizeof(stack) && (buf = malloc(total)) == NULL)
        return QPC_ERR_NOMEM;
    end = put_canonical_head(buf, env);
    end = qpc_put_bytes(end, env->payload, env->payload_len);
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, buf, (size_t)(end - buf), id) == 0)
        ret = 0;
    if (buf != stack)
        free(buf);
    return ret;
}

static void sign_message(uint8_t msg[static SIGN_MSG_LEN], const uint8_t id[static QPC_ID_LEN])
{
    memcpy(msg, SIGN_DOMAIN, SIGN_DOMAIN_LEN);
    memcpy(msg + SIGN_DOMAIN_LEN, id, QPC_ID_LEN);
}

int qpc_envelope_sign(struct qpc_envelope *env, const uint8_t secret_key[static QPC_SECRET_KEY_LEN])
{
    uint8_t msg[SIGN_MSG_LEN];
    int ret;

    if (sodium_init() < 0)
        return QPC_ERR_CRYPTO;
    if ((ret = check_shape(env)) != 0)
        return ret;
    /* A signature that can never verify is a bug to report, not an envelope to send. */
    if (memcmp(env->sender, secret_key + 32, QPC_KEY_LEN) != 0)
        return QPC_ERR_INVALID;
    if ((ret = compute_id(env, env->id)) != 0)
        return ret;
    sign_message(msg, env->id);
    if (crypto_sign_detached(env->signature, NULL, msg, sizeof(msg), secret_key) != 0)
        return QPC_ERR_CRYPTO;
    return 0;
}

int qpc_envelope_init(struct qpc_envelope *env, const uint8_t secret_key[static QPC_SECRET_KEY_LEN],
                      const uint8_t *recipient, const char *topic, uint64_t now_ms, uint32_t ttl_s,
                      uint32_t max_hops, const uint8_t *payload, size_t payload_len)
{
    int ret = QPC_ERR_INVALID;

    memset(env, 0, sizeof(*env));
    if ((recipient == NULL) == (topic == NULL))
        goto fail;
    if (topic != NULL && (topic[0] == '\0' || strnlen(topic, QPC_TOPIC_MAX + 1) > QPC_TOPIC_MAX))
        goto fail;
    if (ttl_s == 0 || ttl_s > QPC_TTL_MAX_S || max_hops == 0)
        goto fail;
    if (payload_len > 0 && payload == NULL)
        goto fail;
    ret = QPC_ERR_TOO_LARGE;
    if (payload_len > QPC_PAYLOAD_MAX)
        goto fail;

    ret = QPC_ERR_NOMEM;
    env->version = QPC_ENVELOPE_VERSION;
    memcpy(env->sender, secret_key + 32, QPC_KEY_LEN);   /* libsodium sk = seed || pk */
    if (recipient != NULL) {
        env->has_recipient = true;
        memcpy(env->recipient, recipient, QPC_KEY_LEN);
    }
    if (topic != NULL && (env->topic = strdup(topic)) == NULL)
        goto fail;
    env->created_at_ms = now_ms;
    env->ttl_s = ttl_s;
    env->max_hops = max_hops;
    if (payload_len > 0) {
        if ((env->payload = malloc(payload_len)) == NULL)
            goto fail;
        memcpy(env->payload, payload, payload_len);
        env->payload_len = payload_len;
    }
    if ((ret = qpc_envelope_sign(env, secret_key)) != 0)
        goto fail;
    return 0;
fail:
    qpc_envelope_clear(env);
    return ret;
}

/* Every check of qpc_envelope_verify but the Ed25519 one; id is the rehashed id. */
static int check_all_but_signature(const struct qpc_envelope *env, uint64_t now_ms, uint8_t id[static QPC_ID_LEN])
{
    int ret;

    /* Cheapest checks first. */
    if ((ret = check_shape(env)) != 0)
        return ret == QPC_ERR_TOO_LARGE ? QPC_ERR_INVALID : ret;
    if (env->hop_count > env->max_hops)
        return QPC_ERR_HOP_LIMIT;
    if (qpc_envelope_expired(env, now_ms))
        return QPC_ERR_EXPIRED;
    if (env->created_at_ms > now_ms && env->created_at_ms - now_ms > QPC_CLOCK_SKEW_MS)
        return QPC_ERR_FUTURE;
    if (sodium_init() < 0)
        return QPC_ERR_CRYPTO;
    /* Rehashing (about a microsecond per KiB) is what makes a field changed after
     * decode, or a forged env->id, fail here instead of being trusted. */
    if ((ret = compute_id(env, id)) != 0)
        return ret;
    if (memcmp(id, env->id, QPC_ID_LEN) != 0)
        return QPC_ERR_BAD_SIGNATURE;
    return 0;
}

int qpc_envelope_verify(const struct qpc_envelope *env, uint64_t now_ms)
{
    uint8_t id[QPC_ID_LEN];
    uint8_t msg[SIGN_MSG_LEN];
    int ret;

    /* The signature (tens of microseconds) last. */
    if ((ret = check_all_but_signature(env, now_ms, id)) != 0)
        return ret;
    sign_message(msg, id);
    if (crypto_sign_verify_detached(env->signature, msg, sizeof(msg), env->sender) != 0)
        return QPC_ERR_BAD_SIGNATURE;
    return 0;
}

int qpc_envelope_verify_vouched(const struct qpc_envelope *env, uint64_t now_ms)
{
    uint8_t id[QPC_ID_LEN];

    return check_all_but_signature(env, now_ms, id);
}

/* --- protobuf carrier ------------------------------------------------------------- */

static ProtobufCBinaryData binary(const uint8_t *data, size_t len)
{
    /* protobuf-c's struct is not const-correct; pack only reads it. */
    ProtobufCBinaryData bd = { .len = len, .data = (uint8_t *)data };
    return bd;
}

int qpc_envelope_encode(const struct qpc_envelope *env, uint8_t **out, size_t *out_len)
{
    Qpc__MeshEnvelope msg = QPC__MESH_ENVELOPE__INIT;
    uint8_t *buf;
    size_t len;
    int ret;

    *out = NULL;
    *out_len = 0;
    if ((ret = check_shape(env)) != 0)
        return ret;
    msg.version = env->version;
    msg.id = binary(env->id, QPC_ID_LEN);
    msg.sender = binary(env->sender, QPC_KEY_LEN);
    if (env->has_recipient)
        msg.recipient = binary(env->recipient, QPC_KEY_LEN);
    if (env->topic != NULL)
        msg.topic = env->topic;
    msg.created_at = env->created_at_ms;
    msg.ttl = env->ttl_s;
    msg.hop_count = env->hop_count;
    msg.max_hops = env->max_hops;
    msg.payload = binary(env->payload, env->payload_len);
    msg.signature = binary(env->signature, QPC_SIG_LEN);

    len = qpc__mesh_envelope__get_packed_size(&msg);
    if ((buf = malloc(len > 0 ? len : 1)) == NULL)
        return QPC_ERR_NOMEM;
    qpc__mesh_envelope__pack(&msg, buf);
    *out = buf;
    *out_len = len;
    return 0;
}

/* Copies the unpacked message into env, checking every length. */
static int from_wire(struct qpc_envelope *env, Qpc__MeshEnvelope *msg,
                     const struct qpc_pbarena *arena)
{
    if (msg->version != QPC_ENVELOPE_VERSION)
        return QPC_ERR_VERSION;
    if (msg->sender.len != QPC_KEY_LEN || msg->signature.len != QPC_SIG_LEN)
        return QPC_ERR_INVALID;
    if (msg->id.len != 0 && msg->id.len != QPC_ID_LEN)
        return QPC_ERR_INVALID;
    if (msg->recipient.len != 0 && msg->recipient.len != QPC_KEY_LEN)
        return QPC_ERR_INVALID;
    if (msg->topic != NULL && strlen(msg->topic) > QPC_TOPIC_MAX)
        return QPC_ERR_INVALID;
    if (msg->payload.len > QPC_PAYLOAD_MAX)
        return QPC_ERR_TOO_LARGE;

    env->version = msg->version;
    memcpy(env->sender, msg->sender.data, QPC_KEY_LEN);
    memcpy(env->signature, msg->signature.data, QPC_SIG_LEN);
    if (msg->recipient.len == QPC_KEY_LEN) {
        env->has_recipient = true;
        memcpy(env->recipient, msg->recipient.data, QPC_KEY_LEN);
    }
    /* An absent topic is protobuf-c's shared empty string: never take that. */
    if (msg->topic != NULL && msg->topic[0] != '\0' && (env->topic = strdup(msg->topic)) == NULL)
        return QPC_ERR_NOMEM;
    env->created_at_ms = msg->created_at;
    env->ttl_s = msg->ttl;
    env->hop_count = msg->hop_count;
    env->max_hops = msg->max_hops;
    if (msg->payload.len > 0) {
        if (qpc_pbarena_owns(arena, msg->payload.data)) {
            if ((env->payload = malloc(msg->payload.len)) == NULL)
                return QPC_ERR_NOMEM;
            memcpy(env->payload, msg->payload.data, msg->payload.len);
        } else {
            /* A large payload was malloc'd by the arena's fallback: take it instead of
             * copying it; free_unpacked skips a NULL data pointer. */
            env->payload = msg->payload.data;
            msg->payload.data = NULL;
        }
        env->payload_len = msg->payload.len;
        msg->payload.len = 0;
    }
    return 0;
}

/* A uint64 of 2^63 or more takes ten bytes on the wire, and protobuf-c ignores the bits
 * the tenth byte carries beyond bit 63: there equal sizes do not prove the encoding
 * minimal, only the bytes packed again do. created_at is the one uint64 (a time that
 * far out is absurd, so this costs nothing on the way envelopes really come). */
#define TEN_BYTE_VARINT_MIN (UINT64_C(1) << 63)

static bool packs_back_to(const Qpc__MeshEnvelope *msg, const uint8_t *buf, size_t len)
{
    uint8_t *again = malloc(len);
    bool same = again != NULL && qpc__mesh_envelope__pack(msg, again) == len && memcmp(again, buf, len) == 0;

    free(again);
    return same;
}

int qpc_envelope_decode(struct qpc_envelope *env, const uint8_t *buf, size_t len)
{
    /* The unpacked message lives only in this call: its pieces come from the stack
     * (one malloc, for the payload, instead of one per field); larger ones from malloc. */
    _Alignas(16) uint8_t scratch[DECODE_SCRATCH];
    struct qpc_pbarena arena;
    Qpc__MeshEnvelope *msg = NULL;
    int ret = QPC_ERR_TOO_LARGE;

    memset(env, 0, sizeof(*env));
    qpc_pbarena_init(&arena, scratch, sizeof(scratch));
    if (len > WIRE_MAX)
        goto out;
    ret = QPC_ERR_INVALID;
    if ((msg = qpc__mesh_envelope__unpack(&arena.allocator, len, buf)) == NULL)
        goto out;
    /* Only the fields encode() writes, each once, minimal varints, no explicit defaults.
     * Re-packing is never longer than the input, so equal sizes prove it. This also
     * catches a NUL inside the topic, which protobuf-c's char * would silently cut
     * short. Unknown fields are refused rather than dropped: nothing unsigned rides
     * along, and a later format changes `version` anyway. */
    if (msg->base.n_unknown_fields != 0 || qpc__mesh_envelope__get_packed_size(msg) != len)
        goto out;
    if (msg->created_at >= TEN_BYTE_VARINT_MIN && !packs_back_to(msg, buf, len))
        goto out;
    if ((ret = from_wire(env, msg, &arena)) != 0)
        goto out;
    if ((ret = check_shape(env)) != 0)
        goto out;
    if ((ret = compute_id(env, env->id)) != 0)
        goto out;
    if (msg->id.len == QPC_ID_LEN && memcmp(msg->id.data, env->id, QPC_ID_LEN) != 0)
        ret = QPC_ERR_BAD_SIGNATURE;
out:
    if (msg != NULL)
        qpc__mesh_envelope__free_unpacked(msg, &arena.allocator);
    if (ret != 0)
        qpc_envelope_clear(env);
    return ret;
}

/* --- crypto_box with cached shared keys ------------------------------------------- */

#define BOX_CACHE_MAX 1024
#define BOX_NONCE_LEN crypto_box_NONCEBYTES

/* One peer's precomputed crypto_box key: found through the hash table, and kept in a
 * recency list (least recently used first) that picks whom to evict. */
struct box_peer {
    uint8_t peer[QPC_KEY_LEN];                     /* Ed25519 public key: the hash key */
    uint8_t shared[crypto_box_BEFORENMBYTES];
    bool add_failed;                               /* set by uthash on out of memory */
    UT_hash_handle hh;
    struct box_peer *prev, *next;                  /* recency list (utlist) */
};

struct qpc_box_cache {
    uint8_t my_x25519_sk[crypto_box_SECRETKEYBYTES];
    struct box_peer *peers;                        /* hash table by peer key */
    struct box_peer *recency;                      /* head = least recently used */
};

struct qpc_box_cache *qpc_box_cache_new(const uint8_t my_secret_key[static QPC_SECRET_KEY_LEN])
{
    struct qpc_box_cache *cache;

    if (sodium_init() < 0)
        return NULL;
    if ((cache = calloc(1, sizeof(*cache))) == NULL)
        return NULL;
    /* Cannot fail for a well-formed libsodium secret key. */
    crypto_sign_ed25519_sk_to_curve25519(cache->my_x25519_sk, my_secret_key);
    return cache;
}

static void box_peer_free(struct box_peer *p)
{
    sodium_memzero(p->shared, sizeof(p->shared));
    free(p);
}

void qpc_box_cache_free(struct qpc_box_cache *cache)
{
    struct box_peer *p, *tmp;

    if (cache == NULL)
        return;
    HASH_ITER(hh, cache->peers, p, tmp) {
        HASH_DEL(cache->peers, p);
        box_peer_free(p);
    }
    sodium_memzero(cache->my_x25519_sk, sizeof(cache->my_x25519_sk));
    free(cache);
}

size_t qpc_box_cache_count(const struct qpc_box_cache *cache)
{
    return HASH_COUNT(cache->peers);
}

bool qpc_box_cache_contains(const struct qpc_box_cache *cache, const uint8_t peer[static QPC_KEY_LEN])
{
    struct box_peer *p;

    HASH_FIND(hh, cache->peers, peer, QPC_KEY_LEN, p);
    return p != NULL;
}

/* Finds or computes the shared key for peer. Returns 0, QPC_ERR_CRYPTO or QPC_ERR_NOMEM. */
static int shared_key(struct qpc_box_cache *cache, const uint8_t peer[static QPC_KEY_LEN],
                      const uint8_t **key)
{
    uint8_t peer_x25519[crypto_box_PUBLICKEYBYTES];
    struct box_peer *p;

    HASH_FIND(hh, cache->peers, peer, QPC_KEY_LEN, p);
    if (p != NULL) {
        DL_DELETE(cache->recency, p);              /* now the most recently used */
        DL_APPEND(cache->recency, p);
        *key = p->shared;
        return 0;
    }
    if ((p = calloc(1, sizeof(*p))) == NULL)
        return QPC_ERR_NOMEM;
    memcpy(p->peer, peer, QPC_KEY_LEN);
    /* Fails for keys that are not points or have small order: nothing is cached then. */
    if (crypto_sign_ed25519_pk_to_curve25519(peer_x25519, peer) != 0 ||
        crypto_box_beforenm(p->shared, peer_x25519, cache->my_x25519_sk) != 0) {
        box_peer_free(p);
        return QPC_ERR_CRYPTO;
    }
    if (HASH_COUNT(cache->peers) >= BOX_CACHE_MAX) {
        struct box_peer *oldest = cache->recency;
        HASH_DEL(cache->peers, oldest);
        DL_DELETE(cache->recency, oldest);
        box_peer_free(oldest);
    }
    HASH_ADD(hh, cache->peers, peer, QPC_KEY_LEN, p);
    if (p->add_failed) {
        box_peer_free(p);
        return QPC_ERR_NOMEM;
    }
    DL_APPEND(cache->recency, p);
    *key = p->shared;
    return 0;
}

int qpc_box_seal(struct qpc_box_cache *cache, const uint8_t peer[static QPC_KEY_LEN],
                 const uint8_t *plaintext, size_t len, uint8_t **out, size_t *out_len)
{
    const uint8_t *key = NULL;
    uint8_t *box;
    int ret;

    *out = NULL;
    *out_len = 0;
    if (len > crypto_box_MESSAGEBYTES_MAX - QPC_BOX_OVERHEAD)
        return QPC_ERR_TOO_LARGE;
    if ((ret = shared_key(cache, peer, &key)) != 0)
        return ret;
    if ((box = malloc(len + QPC_BOX_OVERHEAD)) == NULL)
        return QPC_ERR_NOMEM;
    randombytes_buf(box, BOX_NONCE_LEN);
    if (crypto_box_easy_afternm(box + BOX_NONCE_LEN, plaintext, len, box, key) != 0) {
        free(box);
        return QPC_ERR_CRYPTO;
    }
    *out = box;
    *out_len = len + QPC_BOX_OVERHEAD;
    return 0;
}

int qpc_box_open(struct qpc_box_cache *cache, const uint8_t peer[static QPC_KEY_LEN],
                 const uint8_t *box, size_t len, uint8_t **out, size_t *out_len)
{
    const uint8_t *key = NULL;
    uint8_t *plain;
    size_t plain_len;
    int ret;

    *out = NULL;
    *out_len = 0;
    if (len < QPC_BOX_OVERHEAD)
        return QPC_ERR_DECRYPT;
    if ((ret = shared_key(cache, peer, &key)) != 0)
        return ret;
    plain_len = len - QPC_BOX_OVERHEAD;
    if ((plain = malloc(plain_len > 0 ? plain_len : 1)) == NULL)
        return QPC_ERR_NOMEM;
    if (crypto_box_open_easy_afternm(plain, box + BOX_NONCE_LEN, len - BOX_NONCE_LEN, box,
                                     key) != 0) {
        free(plain);
        return QPC_ERR_DECRYPT;
    }
    *out = plain;
    *out_len = plain_len;
    return 0;
}
