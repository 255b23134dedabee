/*
 * encoding.h: text encodings of keys and ids (hex, base64), kept apart from their users
 * as wireguard-tools does. Decoders reject anything that is not exactly the expected
 * length; none of them allocate. Also the big-endian byte writers every canonical
 * (signed or authenticated) byte string is built with, so the envelope, the announce and
 * the broadcast AD cannot drift apart in how they lay out an integer.
 */
#ifndef QPC_ENCODING_H
#define QPC_ENCODING_H

#include <stddef.h>
#include <stdint.h>

#define QPC_KEY_LEN 32                       /* Ed25519 public key, X25519 key, channel key */
#define QPC_KEY_HEX_LEN (QPC_KEY_LEN * 2 + 1) /* with the terminating NUL */

/* Writes the lowercase hex of bin[0..len) and a NUL to hex (2*len+1 bytes). */
void qpc_hex_encode(char *hex, const uint8_t *bin, size_t len);

/*
 * Decodes exactly len bytes from the hex string (upper or lower case, no separators,
 * no trailing characters). Returns 0 or QPC_ERR_INVALID.
 */
int qpc_hex_decode(uint8_t *bin, size_t len, const char *hex);

/* Key helpers with the length in the type, checked by the compiler. */
void qpc_key_to_hex(char hex[static QPC_KEY_HEX_LEN], const uint8_t key[static QPC_KEY_LEN]);
int qpc_key_from_hex(uint8_t key[static QPC_KEY_LEN], const char *hex);

/*
 * Parses a 32-byte key given as 64 hex characters or as standard/URL-safe base64
 * (with or without padding). Returns 0 or QPC_ERR_INVALID.
 */
int qpc_key_from_text(uint8_t key[static QPC_KEY_LEN], const char *text);

/*
 * Canonical-bytes writers: each stores its value at p, big-endian (network order), and
 * returns p advanced past what it wrote. The caller owns p and has checked it has room;
 * nothing is bounds-checked here. qpc_put_bytes copies len bytes of src (src may be NULL
 * when len is 0).
 */
uint8_t *qpc_put_u8(uint8_t *p, uint8_t v);
uint8_t *qpc_put_u16(uint8_t *p, uint16_t v);
uint8_t *qpc_put_u32(uint8_t *p, uint32_t v);
uint8_t *qpc_put_u64(uint8_t *p, uint64_t v);
uint8_t *qpc_put_bytes(uint8_t *p, const void *src, size_t len);

#endif
