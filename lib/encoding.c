/*
 * encoding.c: hex and base64 for keys. libsodium's constant-time codecs are used so a
 * secret key being parsed does not leak through timing. The big-endian writers at the
 * end are shared by every canonical byte string (envelope, announce, broadcast AD).
 */
#include <string.h>
#include <sodium.h>

#include "qpc/encoding.h"
#include "qpc/error.h"

void qpc_hex_encode(char *hex, const uint8_t *bin, size_t len)
{
    sodium_bin2hex(hex, len * 2 + 1, bin, len);
}

int qpc_hex_decode(uint8_t *bin, size_t len, const char *hex)
{
    size_t got = 0;
    const char *end = NULL;

    if (hex == NULL || strlen(hex) != len * 2)
        return QPC_ERR_INVALID;
    if (sodium_hex2bin(bin, len, hex, len * 2, NULL, &got, &end) != 0 || got != len || *end != '\0')
        return QPC_ERR_INVALID;
    return 0;
}

void qpc_key_to_hex(char hex[static QPC_KEY_HEX_LEN], const uint8_t key[static QPC_KEY_LEN])
{
    qpc_hex_encode(hex, key, QPC_KEY_LEN);
}

int qpc_key_from_hex(uint8_t key[static QPC_KEY_LEN], const char *hex)
{
    return qpc_hex_decode(key, QPC_KEY_LEN, hex);
}

static int key_from_base64(uint8_t key[static QPC_KEY_LEN], const char *text, int variant)
{
    size_t got = 0;
    const char *end = NULL;
    size_t n = strlen(text);

    if (sodium_base642bin(key, QPC_KEY_LEN, text, n, NULL, &got, &end, variant) != 0)
        return QPC_ERR_INVALID;
    if (got != QPC_KEY_LEN || *end != '\0')
        return QPC_ERR_INVALID;
    return 0;
}

int qpc_key_from_text(uint8_t key[static QPC_KEY_LEN], const char *text)
{
    static const int variants[] = {
        sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
        sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING,
    };

    if (text == NULL)
        return QPC_ERR_INVALID;
    if (qpc_key_from_hex(key, text) == 0)
        return 0;
    for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++)
        if (key_from_base64(key, text, variants[i]) == 0)
            return 0;
    sodium_memzero(key, QPC_KEY_LEN);
    return QPC_ERR_INVALID;
}

/* --- big-endian writers for canonical bytes ----------------------------------------- */

uint8_t *qpc_put_u8(uint8_t *p, uint8_t v)
{
    *p = v;
    return p + 1;
}

uint8_t *qpc_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return p + 2;
}

uint8_t *qpc_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return p + 4;
}

uint8_t *qpc_put_u64(uint8_t *p, uint64_t v)
{
    p = qpc_put_u32(p, (uint32_t)(v >> 32));
    return qpc_put_u32(p, (uint32_t)v);
}

uint8_t *qpc_put_bytes(uint8_t *p, const void *src, size_t len)
{
    /* memcpy with a NULL source is undefined even for 0 bytes (an absent topic). */
    if (len > 0)
        memcpy(p, src, len);
    return p + len;
}
