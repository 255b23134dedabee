/*
 * quic_initial.c: is this client Initial real? Decided before any connection exists.
 *
 * The one idea: a client's first Initial is protected with keys anyone can derive from
 * its destination connection id (RFC 9001 5.2), so it proves nothing about the sender,
 * but a stranger flooding us with Initial-shaped random bytes cannot make one that
 * opens without doing the same encryption a client does. ngtcp2 would find that out
 * too, but only inside a new connection with its TLS session, which is what a forged
 * Initial must not cost us. So the endpoint opens the packet here first, with nettle
 * on the stack (no allocation), and makes a connection only for one that opens.
 * Only QUIC v1 is spoken (the endpoint's Version Negotiation offers nothing else).
 */
#include <string.h>

#include <nettle/aes.h>
#include <nettle/gcm.h>
#include <nettle/hkdf.h>
#include <nettle/hmac.h>
#include <nettle/memops.h>
#include <ngtcp2/ngtcp2.h>
#include <sodium.h>

#include "qpc/error.h"
#include "quic_initial.h"

#define SECRET_LEN SHA256_DIGEST_SIZE
#define SAMPLE_OFFSET 4               /* the sample starts 4 bytes after the packet number */
#define SAMPLE_LEN 16
#define TAG_LEN GCM_DIGEST_SIZE

/* RFC 9001 5.2: initial_salt of QUIC v1. */
static const uint8_t initial_salt_v1[20] = {
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17,
    0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a,
};

/* HKDF-Expand-Label of TLS 1.3 (RFC 8446 7.1) with an empty context; mac is keyed with
 * the secret, and stays so (nettle's digest restarts from the key), so that one keying
 * serves the three keys drawn from the client secret. */
static void expand_label(uint8_t *out, size_t outlen, struct hmac_sha256_ctx *mac,
                         const char *label)
{
    uint8_t info[2 + 1 + 6 + 32 + 1];
    size_t llen = strlen(label), n = 0;

    info[n++] = (uint8_t)(outlen >> 8);
    info[n++] = (uint8_t)outlen;
    info[n++] = (uint8_t)(6 + llen);
    memcpy(info + n, "tls13 ", 6);
    n += 6;
    memcpy(info + n, label, llen);
    n += llen;
    info[n++] = 0;   /* no context */
    hkdf_expand(mac, (nettle_hash_update_func *)hmac_sha256_update,
                (nettle_hash_digest_func *)hmac_sha256_digest, SECRET_LEN, n, info, outlen, out);
}

int qpc_quic_initial_keys_derive(struct qpc_quic_initial_keys *k, const uint8_t *dcid,
                                 size_t dcidlen)
{
    /* HMAC keyed with the public salt, made once: a forged Initial is one key fewer. */
    static struct hmac_sha256_ctx salted;
    static bool have_salted;
    struct hmac_sha256_ctx mac;
    uint8_t initial[SECRET_LEN], client[SECRET_LEN];

    if (dcidlen > NGTCP2_MAX_CIDLEN)
        return QPC_ERR_INVALID;
    if (!have_salted) {
        hmac_sha256_set_key(&salted, sizeof(initial_salt_v1), initial_salt_v1);
        have_salted = true;
    }
    hkdf_extract(&salted, (nettle_hash_update_func *)hmac_sha256_update,
                 (nettle_hash_digest_func *)hmac_sha256_digest, SECRET_LEN, dcidlen, dcid,
                 initial);
    hmac_sha256_set_key(&mac, SECRET_LEN, initial);
    expand_label(client, sizeof(client), &mac, "client in");
    hmac_sha256_set_key(&mac, SECRET_LEN, client);
    expand_label(k->key, sizeof(k->key), &mac, "quic key");
    expand_label(k->iv, sizeof(k->iv), &mac, "quic iv");
    expand_label(k->hp, sizeof(k->hp), &mac, "quic hp");
    sodium_memzero(&mac, sizeof(mac));
    sodium_memzero(initial, sizeof(initial));
    sodium_memzero(client, sizeof(client));
    return 0;
}

bool qpc_quic_initial_opens(const uint8_t *data, size_t len)
{
    static uint8_t plain[NGTCP2_MAX_UDP_PAYLOAD_SIZE * 64];   /* one loop, no threads */
    struct qpc_quic_initial_keys k;
    struct aes128_ctx hp;
    struct gcm_aes128_ctx gcm;
    ngtcp2_pkt_hd hd;
    ngtcp2_ssize pn_off;
    uint8_t hdr[NGTCP2_MAX_UDP_PAYLOAD_SIZE], mask[SAMPLE_LEN], nonce[QPC_QUIC_INITIAL_IV_LEN];
    uint8_t tag[TAG_LEN];
    size_t pnlen, end, ctlen;
    bool ok;

    pn_off = ngtcp2_pkt_decode_hd_long(&hd, data, len);
    if (pn_off < 0 || hd.type != NGTCP2_PKT_INITIAL || hd.version != NGTCP2_PROTO_VER_V1)
        return false;
    /* The packet ends where its Length says, inside the datagram (later coalesced
     * packets are not looked at), and holds a sample and a tag. */
    if (hd.len > len - (size_t)pn_off || hd.len < SAMPLE_OFFSET + SAMPLE_LEN ||
        (size_t)pn_off + 4 > sizeof(hdr))
        return false;
    end = (size_t)pn_off + hd.len;
    if (qpc_quic_initial_keys_derive(&k, hd.dcid.data, hd.dcid.datalen) != 0)
        return false;
    /* Header protection (RFC 9001 5.4): the low 4 bits of the first byte, then the
     * packet number of 1 to 4 bytes that they give. */
    aes128_set_encrypt_key(&hp, k.hp);
    aes128_encrypt(&hp, SAMPLE_LEN, mask, data + pn_off + SAMPLE_OFFSET);
    memcpy(hdr, data, (size_t)pn_off + 4);
    hdr[0] ^= mask[0] & 0x0f;
    pnlen = (size_t)(hdr[0] & 0x03) + 1;
    memcpy(nonce, k.iv, sizeof(nonce));
    for (size_t i = 0; i < pnlen; i++) {
        hdr[pn_off + i] ^= mask[1 + i];
        /* A first Initial's packet number is the truncated one (nothing received yet),
         * right-aligned into the nonce (RFC 9001 5.3). */
        nonce[sizeof(nonce) - pnlen + i] ^= hdr[pn_off + i];
    }
    ctlen = end - (size_t)pn_off - pnlen;
    ok = false;
    if (ctlen >= TAG_LEN && ctlen - TAG_LEN <= sizeof(plain)) {
        gcm_aes128_set_key(&gcm, k.key);
        gcm_aes128_set_iv(&gcm, sizeof(nonce), nonce);
        gcm_aes128_update(&gcm, (size_t)pn_off + pnlen, hdr);
        gcm_aes128_decrypt(&gcm, ctlen - TAG_LEN, plain, data + pn_off + pnlen);
        gcm_aes128_digest(&gcm, TAG_LEN, tag);
        ok = memeql_sec(tag, data + end - TAG_LEN, TAG_LEN) != 0;
        sodium_memzero(&gcm, sizeof(gcm));
    }
    sodium_memzero(&hp, sizeof(hp));
    sodium_memzero(&k, sizeof(k));
    return ok;
}
