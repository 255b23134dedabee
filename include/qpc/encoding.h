/*
 * encoding.h: text encodings of keys and ids (hex, base64), kept apart from their users
 * as wireguard-tools does. Decoders reject anything that is not exactly the expected
 * length; none of them allocate.
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

#endif
