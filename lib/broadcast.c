/*
 * broadcast.c: broadcast channels: channel keys, the subscriber's channel set, and
 * sealing/opening of broadcast payloads with XChaCha20-Poly1305-IETF.
 *
 * The one idea: the AEAD's associated data is rebuilt from the envelope header on both
 * sides (label, version, sender, created_at_ms, ttl_s, max_hops, topic), so the only
 * thing that travels is nonce || ciphertext || tag, and any edit to the header the
 * payload was sealed against makes opening fail. The layout is in docs/broadcast.md.
 *
 * HKDF comes from GnuTLS because libsodium 1.0.18 has none; the AEAD and the wiping of
 * keys come from libsodium. The set is a uthash table keyed by topic; topics arrive in
 * envelopes from strangers and are looked up here, so the hash is keyed (uthash_keyed.h)
 * and an insert that cannot allocate fails with QPC_ERR_NOMEM instead of exit()ing.
 */
#include <stdlib.h>
#include <string.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <sodium.h>
#define HASH_NONFATAL_OOM 1
#include "qpc/uthash_keyed.h"

#include "qpc/broadcast.h"
#include "qpc/encoding.h"
#include "qpc/error.h"

#define SHA256_LEN 32
#define HKDF_MAX_OKM (255 * SHA256_LEN)
#define LABEL_LEN (sizeof(QPC_BROADCAST_LABEL) - 1)
/* label || version(4) || sender(32) || created_at_ms(8) || ttl_s(4) || max_hops(4)
 * || topic_len(1) || topic */
#define AD_MAX (LABEL_LEN + 4 + QPC_KEY_LEN + 8 + 4 + 4 + 1 + QPC_TOPIC_MAX)

struct qpc_channel {
    char *topic;                 /* owned; the hash key */
    uint8_t key[QPC_KEY_LEN];    /* wiped before the channel is freed */
    bool is_private;
    UT_hash_handle hh;
};

struct qpc_channel_set {
    struct qpc_channel *by_topic;   /* uthash head */
};

/* --- keys ---------------------------------------------------------------------------- */

int qpc_broadcast_hkdf_sha256(uint8_t *okm, size_t okm_len, const uint8_t *ikm, size_t ikm_len,
                              const uint8_t *salt, size_t salt_len, const uint8_t *info,
                              size_t info_len)
{
    /* RFC 5869 2.2: an absent salt is HashLen zero bytes. Passing them explicitly keeps
     * us independent of how GnuTLS treats an empty datum. */
    static const uint8_t zero_salt[SHA256_LEN];
    uint8_t prk[SHA256_LEN];
    gnutls_datum_t ikm_d = { (unsigned char *)ikm, (unsigned int)ikm_len };
    gnutls_datum_t salt_d = { (unsigned char *)zero_salt, sizeof(zero_salt) };
    gnutls_datum_t prk_d = { prk, sizeof(prk) };
    gnutls_datum_t info_d = { (unsigned char *)info, (unsigned int)info_len };
    static const uint8_t empty[1];
    int ret = QPC_ERR_CRYPTO;

    if (okm == NULL || okm_len == 0 || okm_len > HKDF_MAX_OKM || (ikm == NULL && ikm_len > 0) ||
        (salt == NULL && salt_len > 0) || (info == NULL && info_len > 0) ||
        ikm_len > UINT32_MAX || salt_len > UINT32_MAX || info_len > UINT32_MAX)
        return QPC_ERR_INVALID;
    if (salt_len > 0) {
        salt_d.data = (unsigned char *)salt;
        salt_d.size = (unsigned int)salt_len;
    }
    if (ikm == NULL)
        ikm_d.data = (unsigned char *)empty;
    if (info == NULL)
        info_d.data = (unsigned char *)empty;

    if (gnutls_hkdf_extract(GNUTLS_MAC_SHA256, &ikm_d, &salt_d, prk) < 0)
        goto cleanup;
    if (gnutls_hkdf_expand(GNUTLS_MAC_SHA256, &prk_d, &info_d, okm, okm_len) < 0)
        goto cleanup;
    ret = 0;
cleanup:
    sodium_memzero(prk, sizeof(prk));
    if (ret != 0)
        sodium_memzero(okm, okm_len);
    return ret;
}

bool qpc_broadcast_topic_valid(const char *topic)
{
    size_t n;

    if (topic == NULL)
        return false;
    n = strlen(topic);
    if (n == 0 || n > QPC_TOPIC_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)topic[i];
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

int qpc_broadcast_open_key(uint8_t key[static QPC_KEY_LEN], const char *topic)
{
    if (!qpc_broadcast_topic_valid(topic)) {
        sodium_memzero(key, QPC_KEY_LEN);
        return QPC_ERR_INVALID;
    }
    return qpc_broadcast_hkdf_sha256(key, QPC_KEY_LEN, (const uint8_t *)topic, strlen(topic),
                                     (const uint8_t *)QPC_BROADCAST_LABEL, LABEL_LEN,
                                     (const uint8_t *)QPC_BROADCAST_OPEN_INFO,
                                     sizeof(QPC_BROADCAST_OPEN_INFO) - 1);
}

/* --- the channel set ------------------------------------------------------------------ */

static void channel_free(struct qpc_channel *ch)
{
    sodium_memzero(ch->key, sizeof(ch->key));
    free(ch->topic);
    free(ch);
}

struct qpc_channel_set *qpc_broadcast_set_new(void)
{
    if (sodium_init() < 0)   /* seeds the RNG used for nonces; idempotent */
        return NULL;
    return calloc(1, sizeof(struct qpc_channel_set));
}

void qpc_broadcast_set_free(struct qpc_channel_set *set)
{
    struct qpc_channel *ch, *tmp;

    if (set == NULL)
        return;
    HASH_ITER(hh, set->by_topic, ch, tmp) {
        HASH_DEL(set->by_topic, ch);
        channel_free(ch);
    }
    free(set);
}

static struct qpc_channel *find_channel(const struct qpc_channel_set *set, const char *topic)
{
    struct qpc_channel *ch = NULL;

    HASH_FIND_STR(set->by_topic, topic, ch);
    return ch;
}

/* Same channel if both are open, or both private with equal keys (compared in constant
 * time: the existing key is a secret). */
static bool same_channel(const struct qpc_channel *ch, bool is_private, const uint8_t key[QPC_KEY_LEN])
{
    return ch->is_private == is_private && sodium_memcmp(ch->key, key, QPC_KEY_LEN) == 0;
}

int qpc_broadcast_subscribe(struct qpc_channel_set *set, const char *topic,
                            const uint8_t *key, const struct qpc_channel **out)
{
    struct qpc_channel *ch = NULL;
    struct qpc_channel *existing;
    uint8_t k[QPC_KEY_LEN];
    int ret;

    if (set == NULL || !qpc_broadcast_topic_valid(topic))
        return QPC_ERR_INVALID;
    if (key != NULL)
        memcpy(k, key, sizeof(k));
    else if ((ret = qpc_broadcast_open_key(k, topic)) != 0)
        goto cleanup;

    existing = find_channel(set, topic);
    if (existing != NULL) {
        ret = same_channel(existing, key != NULL, k) ? 0 : QPC_ERR_EXISTS;
        if (ret == 0 && out != NULL)
            *out = existing;
        goto cleanup;
    }

    ret = QPC_ERR_NOMEM;
    if ((ch = calloc(1, sizeof(*ch))) == NULL || (ch->topic = strdup(topic)) == NULL)
        goto cleanup;
    memcpy(ch->key, k, sizeof(k));
    ch->is_private = key != NULL;
    HASH_ADD_KEYPTR(hh, set->by_topic, ch->topic, strlen(ch->topic), ch);
    if (ch->hh.tbl == NULL)   /* uthash could not grow the table: ch is not in it */
        goto cleanup;
    if (out != NULL)
        *out = ch;
    ch = NULL;
    ret = 0;
cleanup:
    if (ch != NULL)
        channel_free(ch);
    sodium_memzero(k, sizeof(k));
    return ret;
}

int qpc_broadcast_subscribe_text(struct qpc_channel_set *set, const char *topic,
                                 const char *key_text, const struct qpc_channel **out)
{
    uint8_t key[QPC_KEY_LEN];
    int ret;

    if (key_text == NULL)
        return QPC_ERR_INVALID;
    ret = qpc_key_from_text(key, key_text);
    if (ret == 0)
        ret = qpc_broadcast_subscribe(set, topic, key, out);
    sodium_memzero(key, sizeof(key));
    return ret;
}

int qpc_broadcast_unsubscribe(struct qpc_channel_set *set, const char *topic)
{
    struct qpc_channel *ch;

    if (set == NULL || topic == NULL || (ch = find_channel(set, topic)) == NULL)
        return QPC_ERR_NOT_FOUND;
    HASH_DEL(set->by_topic, ch);
    channel_free(ch);
    return 0;
}

const struct qpc_channel *qpc_broadcast_lookup(const struct qpc_channel_set *set, const char *topic)
{
    if (set == NULL || topic == NULL)
        return NULL;
    return find_channel(set, topic);
}

size_t qpc_broadcast_count(const struct qpc_channel_set *set)
{
    return set == NULL ? 0 : HASH_COUNT(set->by_topic);
}

static int compare_topics(const void *a, const void *b)
{
    const struct qpc_channel *const *x = a;
    const struct qpc_channel *const *y = b;

    return strcmp((*x)->topic, (*y)->topic);
}

int qpc_broadcast_list(const struct qpc_channel_set *set, const struct qpc_channel ***out,
                       size_t *n)
{
    const struct qpc_channel **all;
    const struct qpc_channel *ch;
    size_t count = qpc_broadcast_count(set);
    size_t i = 0;

    *out = NULL;
    *n = 0;
    if (count == 0)
        return 0;
    if ((all = calloc(count, sizeof(*all))) == NULL)
        return QPC_ERR_NOMEM;
    for (ch = set->by_topic; ch != NULL; ch = ch->hh.next)
        all[i++] = ch;
    qsort(all, count, sizeof(*all), compare_topics);
    *out = all;
    *n = count;
    return 0;
}

const char *qpc_channel_topic(const struct qpc_channel *ch)
{
    return ch->topic;
}

bool qpc_channel_is_private(const struct qpc_channel *ch)
{
    return ch->is_private;
}

/* --- sealing payloads ----------------------------------------------------------------- */

/* Builds the associated data for topic and the header fields of hdr into ad (AD_MAX
 * bytes); returns its length. topic is valid, so its length fits one byte. */
static size_t build_ad(uint8_t ad[static AD_MAX], const struct qpc_envelope *hdr, const char *topic)
{
    size_t topic_len = strlen(topic);
    uint8_t *p = ad;

    p = qpc_put_bytes(p, QPC_BROADCAST_LABEL, LABEL_LEN);
    p = qpc_put_u32(p, hdr->version);
    p = qpc_put_bytes(p, hdr->sender, QPC_KEY_LEN);
    p = qpc_put_u64(p, hdr->created_at_ms);
    p = qpc_put_u32(p, hdr->ttl_s);
    p = qpc_put_u32(p, hdr->max_hops);
    p = qpc_put_u8(p, (uint8_t)topic_len);
    p = qpc_put_bytes(p, topic, topic_len);
    return (size_t)(p - ad);
}

int qpc_broadcast_seal(const struct qpc_channel *ch, const struct qpc_envelope *hdr,
                       const uint8_t *plaintext, size_t len, uint8_t **out, size_t *out_len)
{
    uint8_t ad[AD_MAX];
    size_t ad_len;
    uint8_t *box;
    unsigned long long clen = 0;

    *out = NULL;
    *out_len = 0;
    if (ch == NULL || hdr == NULL || hdr->has_recipient || (plaintext == NULL && len > 0) ||
        (hdr->topic != NULL && strcmp(hdr->topic, ch->topic) != 0))
        return QPC_ERR_INVALID;
    if (len > QPC_BROADCAST_PLAINTEXT_MAX)
        return QPC_ERR_TOO_LARGE;
    if ((box = malloc(len + QPC_BROADCAST_OVERHEAD)) == NULL)
        return QPC_ERR_NOMEM;

    ad_len = build_ad(ad, hdr, ch->topic);
    /* A random 192-bit nonce never repeats in practice, so every sender can seal under
     * the shared channel key without coordinating counters. */
    randombytes_buf(box, QPC_BROADCAST_NONCE_LEN);
    if (crypto_aead_xchacha20poly1305_ietf_encrypt(box + QPC_BROADCAST_NONCE_LEN, &clen, plaintext,
                                                   len, ad, ad_len, NULL, box, ch->key) != 0) {
        free(box);
        return QPC_ERR_CRYPTO;
    }
    *out = box;
    *out_len = QPC_BROADCAST_NONCE_LEN + (size_t)clen;
    return 0;
}

int qpc_broadcast_open(const struct qpc_channel *ch, const struct qpc_envelope *env,
                       uint8_t **out, size_t *out_len)
{
    uint8_t ad[AD_MAX];
    size_t ad_len;
    uint8_t *plain;
    size_t max_len;
    unsigned long long plen = 0;

    *out = NULL;
    *out_len = 0;
    if (ch == NULL || env == NULL || env->has_recipient || env->topic == NULL ||
        strcmp(env->topic, ch->topic) != 0 || (env->payload == NULL && env->payload_len > 0))
        return QPC_ERR_INVALID;
    if (env->payload_len < QPC_BROADCAST_OVERHEAD)
        return QPC_ERR_DECRYPT;

    max_len = env->payload_len - QPC_BROADCAST_OVERHEAD;
    if ((plain = malloc(max_len + 1)) == NULL)
        return QPC_ERR_NOMEM;
    ad_len = build_ad(ad, env, ch->topic);
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &plen, NULL,
                                                   env->payload + QPC_BROADCAST_NONCE_LEN,
                                                   env->payload_len - QPC_BROADCAST_NONCE_LEN,
                                                   ad, ad_len, env->payload, ch->key) != 0) {
        free(plain);
        return QPC_ERR_DECRYPT;
    }
    plain[plen] = '\0';
    *out = plain;
    *out_len = (size_t)plen;
    return 0;
}

int qpc_broadcast_open_envelope(const struct qpc_channel_set *set, const struct qpc_envelope *env,
                                uint8_t **out, size_t *out_len)
{
    const struct qpc_channel *ch;

    *out = NULL;
    *out_len = 0;
    if (set == NULL || env == NULL || env->topic == NULL)
        return QPC_ERR_INVALID;
    if ((ch = find_channel(set, env->topic)) == NULL)
        return QPC_ERR_NOT_FOUND;
    return qpc_broadcast_open(ch, env, out, out_len);
}

int qpc_broadcast_envelope_new(const struct qpc_channel *ch,
                               const uint8_t secret_key[static QPC_SECRET_KEY_LEN],
                               uint64_t now_ms, uint32_t ttl_s, uint32_t max_hops,
                               const uint8_t *text, size_t len, struct qpc_envelope *env)
{
    int ret = QPC_ERR_INVALID;

    memset(env, 0, sizeof(*env));
    if (ch == NULL || ttl_s == 0 || ttl_s > QPC_TTL_MAX_S || max_hops == 0)
        goto cleanup;

    /* The header is complete before sealing, because the AD covers it; the signature
     * comes last because it covers the payload. */
    env->version = QPC_ENVELOPE_VERSION;
    if (crypto_sign_ed25519_sk_to_pk(env->sender, secret_key) != 0) {
        ret = QPC_ERR_CRYPTO;
        goto cleanup;
    }
    env->has_recipient = false;
    env->created_at_ms = now_ms;
    env->ttl_s = ttl_s;
    env->max_hops = max_hops;
    env->hop_count = 0;
    if ((env->topic = strdup(ch->topic)) == NULL) {
        ret = QPC_ERR_NOMEM;
        goto cleanup;
    }
    if ((ret = qpc_broadcast_seal(ch, env, text, len, &env->payload, &env->payload_len)) != 0)
        goto cleanup;
    ret = qpc_envelope_sign(env, secret_key);
cleanup:
    if (ret != 0)
        qpc_envelope_clear(env);
    return ret;
}
