/*
 * quic_initial.h: checks a client's first Initial before any connection state is made
 * for it (quic_initial.c).
 */
#ifndef QPC_QUIC_INITIAL_H
#define QPC_QUIC_INITIAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QPC_QUIC_INITIAL_KEY_LEN 16   /* AES-128-GCM key, and the AES-128 header key */
#define QPC_QUIC_INITIAL_IV_LEN 12

/* The client's Initial packet protection of QUIC v1 (RFC 9001 5.2), from the
 * destination connection id of its first Initial. Wiped by the caller. */
struct qpc_quic_initial_keys {
    uint8_t key[QPC_QUIC_INITIAL_KEY_LEN];
    uint8_t iv[QPC_QUIC_INITIAL_IV_LEN];
    uint8_t hp[QPC_QUIC_INITIAL_KEY_LEN];
};

/* Derives the client's Initial keys of QUIC v1 for dcid (dcidlen bytes, at most 20).
 * Returns 0 or QPC_ERR_INVALID (dcid too long). */
int qpc_quic_initial_keys_derive(struct qpc_quic_initial_keys *k, const uint8_t *dcid,
                                 size_t dcidlen);

/*
 * Whether the first packet of the datagram data (len bytes) is a QUIC v1 Initial that
 * its own connection id's keys open: header protection removed and the AEAD tag
 * verified. data is only read. Costs two key derivations' worth of hashing and one
 * AES-GCM pass, no allocation; what it spares is a connection with its TLS session for
 * every forged Initial.
 */
bool qpc_quic_initial_opens(const uint8_t *data, size_t len);

#endif
