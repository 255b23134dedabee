/*
 * announce.c: signed announces: create, verify, pass on one hop, and the protobuf carrier.
 *
 * The one idea: the only numbers a route trusts are the ones nobody but the origin can
 * set. The origin signs canonical bytes (announce.h) that include top = H^max_hops(seed);
 * the hop count rides outside the signature, bound to it by the hash chain: after h hops
 * the announce carries H^h(seed), and a receiver hashes max_hops - h more times and must
 * land on top. A forwarder can add hops (hash once more) but not remove them (that needs
 * a preimage of BLAKE2b). Pure functions: no I/O, no clock, no allocation.
 */
#include <string.h>
#include <sodium.h>

#include "qpc/announce.h"
#include "qpc/encoding.h"
#include "qpc/error.h"

/* NUL included, so the domain cannot be a prefix of the envelope's or of a TLS 1.3
 * CertificateVerify content: the same identity key signs all three. */
static const char SIGN_DOMAIN[] = "quicprochat/announce/v1";
#define SIGN_DOMAIN_LEN sizeof(SIGN_DOMAIN)   /* 24, with the NUL */

/* Longest canonical string: the fixed part, every address at its longest, the domain. */
#define CANON_MAX (SIGN_DOMAIN_LEN + QPC_KEY_LEN + 4 + 8 + 4 + 4 + QPC_ANNOUNCE_HASH_LEN + 1 + \
                   QPC_ANNOUNCE_ADDRS_MAX * (1 + QPC_ADDR_TEXT_MAX) + 1 + QPC_ANNOUNCE_DOMAIN_MAX)

static uint8_t *put_text(uint8_t *p, const char *s, size_t len)
{
    return qpc_put_bytes(qpc_put_u8(p, (uint8_t)len), s, len);
}

/* H: one BLAKE2b-256 over 32 bytes, in place. */
static int hash_once(uint8_t h[static QPC_ANNOUNCE_HASH_LEN])
{
    uint8_t out[QPC_ANNOUNCE_HASH_LEN];

    if (crypto_generichash(out, sizeof(out), h, QPC_ANNOUNCE_HASH_LEN, NULL, 0) != 0)
        return QPC_ERR_CRYPTO;
    memcpy(h, out, sizeof(out));
    return 0;
}

static int hash_times(uint8_t h[static QPC_ANNOUNCE_HASH_LEN], uint32_t n)
{
    int ret;

    for (uint32_t i = 0; i < n; i++)
        if ((ret = hash_once(h)) != 0)
            return ret;
    return 0;
}

/* The chain of a (hops to max_hops) hashes to top: the distance a forwarder claims is
 * at least the true one. */
static int check_chain(const struct qpc_announce *a)
{
    uint8_t h[QPC_ANNOUNCE_HASH_LEN];
    int ret;

    memcpy(h, a->chain, sizeof(h));
    if ((ret = hash_times(h, a->max_hops - a->hops)) != 0)
        return ret;
    return sodium_memcmp(h, a->top, sizeof(h)) == 0 ? 0 : QPC_ERR_BAD_SIGNATURE;
}

/* An address as an announce may carry it: numeric host:port that fits the array. */
static bool address_ok(const char *text, size_t room)
{
    const char *nul = memchr(text, '\0', room);

    return nul != NULL && nul != text && qpc_addr_is_numeric(text);
}

static bool domain_ok(const char *domain, size_t room)
{
    const char *nul = memchr(domain, '\0', room);

    if (nul == NULL || (size_t)(nul - domain) > QPC_ANNOUNCE_DOMAIN_MAX)
        return false;
    return domain[0] == '\0' || qpc_addr_check_name(domain) == NULL;
}

/* Everything but the signature and the chain: what from_pb and verify both insist on. */
static int check_shape(const struct qpc_announce *a)
{
    if (a->max_hops == 0 || a->max_hops > QPC_ANNOUNCE_HOPS_MAX || a->hops > a->max_hops)
        return QPC_ERR_INVALID;
    if (a->interval_s == 0 || a->n_addresses > QPC_ANNOUNCE_ADDRS_MAX)
        return QPC_ERR_INVALID;
    for (size_t i = 0; i < a->n_addresses; i++)
        if (!address_ok(a->addresses[i], sizeof(a->addresses[i])))
            return QPC_ERR_INVALID;
    if (!domain_ok(a->domain, sizeof(a->domain)))
        return QPC_ERR_INVALID;
    return 0;
}

/* The canonical signed bytes of announce.h; a's shape is checked. Returns the length. */
static size_t canonical(const struct qpc_announce *a, uint8_t buf[static CANON_MAX])
{
    uint8_t *p = buf;

    p = qpc_put_bytes(p, SIGN_DOMAIN, SIGN_DOMAIN_LEN);
    p = qpc_put_bytes(p, a->key, QPC_KEY_LEN);
    p = qpc_put_u32(p, a->seqno);
    p = qpc_put_u64(p, a->created_at_ms);
    p = qpc_put_u32(p, a->interval_s);
    p = qpc_put_u32(p, a->max_hops);
    p = qpc_put_bytes(p, a->top, QPC_ANNOUNCE_HASH_LEN);
    p = qpc_put_u8(p, (uint8_t)a->n_addresses);
    for (size_t i = 0; i < a->n_addresses; i++)
        p = put_text(p, a->addresses[i], strlen(a->addresses[i]));
    p = put_text(p, a->domain, strlen(a->domain));
    return (size_t)(p - buf);
}

int qpc_announce_create(struct qpc_announce *a, const uint8_t secret_key[static QPC_SECRET_KEY_LEN],
                        uint32_t seqno, uint64_t now_ms, uint32_t interval_s, uint32_t max_hops,
                        const char *const *addresses, size_t n, const char *domain)
{
    uint8_t buf[CANON_MAX];
    size_t len;
    int ret;

    memset(a, 0, sizeof(*a));
    if (n > QPC_ANNOUNCE_ADDRS_MAX || (n > 0 && addresses == NULL))
        return QPC_ERR_INVALID;
    if (domain != NULL && strlen(domain) > QPC_ANNOUNCE_DOMAIN_MAX)
        return QPC_ERR_INVALID;
    for (size_t i = 0; i < n; i++) {
        if (addresses[i] == NULL || strlen(addresses[i]) >= QPC_ADDR_TEXT_MAX)
            return QPC_ERR_INVALID;
        strcpy(a->addresses[i], addresses[i]);   /* length checked just above */
    }
    a->n_addresses = n;
    if (domain != NULL)
        strcpy(a->domain, domain);
    a->seqno = seqno;
    a->created_at_ms = now_ms;
    a->interval_s = interval_s;
    a->max_hops = max_hops;
    if ((ret = check_shape(a)) != 0)
        goto fail;
    ret = QPC_ERR_CRYPTO;
    if (sodium_init() < 0 || crypto_sign_ed25519_sk_to_pk(a->key, secret_key) != 0)
        goto fail;
    /* The seed is sent as the hops-0 chain, so it is no secret from neighbours; what
     * keeps the chain honest is that nobody can invert H, not that the seed is hidden. */
    randombytes_buf(a->chain, sizeof(a->chain));
    memcpy(a->top, a->chain, sizeof(a->top));
    if ((ret = hash_times(a->top, max_hops)) != 0)
        goto fail;
    len = canonical(a, buf);
    if (crypto_sign_detached(a->signature, NULL, buf, len, secret_key) != 0) {
        ret = QPC_ERR_CRYPTO;
        goto fail;
    }
    return 0;
fail:
    memset(a, 0, sizeof(*a));
    return ret;
}

int qpc_announce_verify(const struct qpc_announce *a)
{
    uint8_t buf[CANON_MAX];
    size_t len;
    int ret;

    if ((ret = check_shape(a)) != 0)
        return ret;
    if (sodium_init() < 0)
        return QPC_ERR_CRYPTO;
    /* The chain (at most 16 BLAKE2b calls, well under a microsecond each) before the
     * signature (tens of microseconds): a forwarder's forgery fails on the cheap check. */
    if ((ret = check_chain(a)) != 0)
        return ret;
    len = canonical(a, buf);
    if (crypto_sign_verify_detached(a->signature, buf, len, a->key) != 0)
        return QPC_ERR_BAD_SIGNATURE;
    return 0;
}

static bool signed_fields_equal(const struct qpc_announce *x, const struct qpc_announce *y)
{
    if (memcmp(x->key, y->key, QPC_KEY_LEN) != 0 || x->seqno != y->seqno ||
        x->created_at_ms != y->created_at_ms || x->interval_s != y->interval_s ||
        x->max_hops != y->max_hops || memcmp(x->top, y->top, QPC_ANNOUNCE_HASH_LEN) != 0 ||
        memcmp(x->signature, y->signature, QPC_SIG_LEN) != 0 || x->n_addresses != y->n_addresses ||
        strcmp(x->domain, y->domain) != 0)
        return false;
    for (size_t i = 0; i < x->n_addresses; i++)
        if (strcmp(x->addresses[i], y->addresses[i]) != 0)
            return false;
    return true;
}

int qpc_announce_verify_copy(const struct qpc_announce *verified, const struct qpc_announce *copy)
{
    int ret;

    if ((ret = check_shape(copy)) != 0)
        return ret;
    if (sodium_init() < 0)
        return QPC_ERR_CRYPTO;
    if (!signed_fields_equal(verified, copy))
        return QPC_ERR_BAD_SIGNATURE;
    return check_chain(copy);
}

int qpc_announce_forward(struct qpc_announce *a)
{
    int ret;

    if (a->hops >= a->max_hops)
        return QPC_ERR_HOP_LIMIT;
    if ((ret = hash_once(a->chain)) != 0)
        return ret;
    a->hops++;
    return 0;
}

bool qpc_announce_seqno_newer(uint32_t a, uint32_t b)
{
    /* RFC 1982: a is newer when it is ahead by 1..2^31-1; exactly 2^31 apart is
     * undefined there and taken as "not newer" both ways, so neither side wins. */
    uint32_t d = a - b;

    return d != 0 && d < UINT32_C(0x80000000);
}

void qpc_announce_id(const struct qpc_announce *a, uint8_t id[static QPC_ID_LEN])
{
    uint8_t in[QPC_KEY_LEN + 4];

    memcpy(in, a->key, QPC_KEY_LEN);
    qpc_put_u32(in + QPC_KEY_LEN, a->seqno);
    crypto_generichash(id, QPC_ID_LEN, in, sizeof(in), NULL, 0);
}

int qpc_announce_from_pb(const Qpc__MeshAnnounce *pb, struct qpc_announce *out)
{
    const Qpc__AnnounceBody *body;
    size_t len;

    memset(out, 0, sizeof(*out));
    if (pb == NULL || (body = pb->body) == NULL)
        return QPC_ERR_INVALID;
    /* Nothing may ride along unsigned in the body, and nothing unknown outside it: a
     * later format changes the signing domain anyway. */
    if (pb->base.n_unknown_fields != 0 || body->base.n_unknown_fields != 0)
        return QPC_ERR_INVALID;
    if (body->key.len != QPC_KEY_LEN || body->top.len != QPC_ANNOUNCE_HASH_LEN ||
        pb->signature.len != QPC_SIG_LEN || pb->chain.len != QPC_ANNOUNCE_HASH_LEN)
        return QPC_ERR_INVALID;
    if (body->n_addresses > QPC_ANNOUNCE_ADDRS_MAX)
        return QPC_ERR_INVALID;
    for (size_t i = 0; i < body->n_addresses; i++) {
        if (body->addresses[i] == NULL || (len = strlen(body->addresses[i])) >= QPC_ADDR_TEXT_MAX)
            goto invalid;
        memcpy(out->addresses[i], body->addresses[i], len + 1);
    }
    out->n_addresses = body->n_addresses;
    if (body->domain != NULL) {
        if ((len = strlen(body->domain)) > QPC_ANNOUNCE_DOMAIN_MAX)
            goto invalid;
        memcpy(out->domain, body->domain, len + 1);
    }
    memcpy(out->key, body->key.data, QPC_KEY_LEN);
    out->seqno = body->seqno;
    out->created_at_ms = body->created_at;
    out->interval_s = body->interval_s;
    out->max_hops = body->max_hops;
    memcpy(out->top, body->top.data, QPC_ANNOUNCE_HASH_LEN);
    memcpy(out->signature, pb->signature.data, QPC_SIG_LEN);
    out->hops = pb->hops;
    memcpy(out->chain, pb->chain.data, QPC_ANNOUNCE_HASH_LEN);
    if (check_shape(out) != 0)
        goto invalid;
    return 0;
invalid:
    memset(out, 0, sizeof(*out));
    return QPC_ERR_INVALID;
}

static ProtobufCBinaryData binary(const uint8_t *data, size_t len)
{
    /* protobuf-c's struct is not const-correct; pack only reads it. */
    ProtobufCBinaryData bd = { .len = len, .data = (uint8_t *)data };
    return bd;
}

void qpc_announce_to_pb(const struct qpc_announce *a, struct qpc_announce_pb *s)
{
    qpc__mesh_announce__init(&s->pb);
    qpc__announce_body__init(&s->body);
    s->body.key = binary(a->key, QPC_KEY_LEN);
    s->body.seqno = a->seqno;
    s->body.created_at = a->created_at_ms;
    s->body.interval_s = a->interval_s;
    s->body.max_hops = a->max_hops;
    s->body.top = binary(a->top, QPC_ANNOUNCE_HASH_LEN);
    for (size_t i = 0; i < a->n_addresses && i < QPC_ANNOUNCE_ADDRS_MAX; i++)
        s->address_ptrs[i] = (char *)a->addresses[i];
    s->body.n_addresses = a->n_addresses < QPC_ANNOUNCE_ADDRS_MAX ? a->n_addresses
                                                                  : QPC_ANNOUNCE_ADDRS_MAX;
    s->body.addresses = s->address_ptrs;
    s->body.domain = (char *)a->domain;
    s->pb.body = &s->body;
    s->pb.signature = binary(a->signature, QPC_SIG_LEN);
    s->pb.hops = a->hops;
    s->pb.chain = binary(a->chain, QPC_ANNOUNCE_HASH_LEN);
}
