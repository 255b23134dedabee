/*
 * tls.h: the TLS identities the QUIC transport presents and checks (GnuTLS).
 *
 * Two kinds of credentials exist. Identity credentials (client and P2P ALPNs) hold a
 * self-signed X.509 certificate made at start-up over the node's Ed25519 identity key:
 * the certificate is only a carrier for the key, and what the other side checks is the
 * key itself (qpc_tls_peer_key). Federation credentials are loaded from DER files and
 * checked against a CA (mutual TLS, qpc_tls_verify_peer_chain).
 */
#ifndef QPC_TLS_H
#define QPC_TLS_H

#include <stdint.h>
#include <gnutls/gnutls.h>

#include "qpc/encoding.h"

#define QPC_TLS_SECRET_KEY_LEN 64   /* libsodium Ed25519 secret key: seed || public key */

/*
 * TLS 1.3 priority string for QUIC: the ciphers and groups ngtcp2 can use, no
 * middlebox compatibility mode.
 */
extern const char QPC_TLS_PRIORITY[];

/*
 * Makes credentials with a fresh self-signed certificate (CN = hex of the public key,
 * no expiry) for the Ed25519 key secret_key (libsodium layout, not kept; the private
 * key is copied into GnuTLS). *out is owned by the caller:
 * gnutls_certificate_free_credentials. Errors: QPC_ERR_CRYPTO (GnuTLS refused the key
 * or the certificate), QPC_ERR_NOMEM.
 */
int qpc_tls_identity_cred_new(gnutls_certificate_credentials_t *out,
                              const uint8_t secret_key[static QPC_TLS_SECRET_KEY_LEN]);

/*
 * Makes federation credentials from three DER files: this node's certificate, its
 * private key and the CA that signs every federation node. *out is owned by the caller.
 * Errors: QPC_ERR_IO (a file cannot be read), QPC_ERR_CONFIG (a file is not valid DER
 * of the expected kind, or key and certificate do not match), QPC_ERR_NOMEM.
 */
int qpc_tls_federation_cred_new(gnutls_certificate_credentials_t *out, const char *cert_path,
                                const char *key_path, const char *ca_path);

/*
 * Extracts the Ed25519 public key from the first certificate the peer of session
 * presented. Does not judge the certificate otherwise (it is self-signed by design;
 * possession of the key is proven by the TLS handshake itself).
 * Errors: QPC_ERR_TLS (no certificate, unparsable, or the key is not Ed25519).
 */
int qpc_tls_peer_key(gnutls_session_t session, uint8_t key[static QPC_KEY_LEN]);

/*
 * Verifies the peer's certificate chain of session against the trust list of the
 * session's credentials (the federation CA). Host names are not checked: federation
 * peers are named by their CA-signed certificates, and are often reached by address.
 * Errors: QPC_ERR_TLS (no certificate, or not signed by the CA, expired, revoked).
 */
int qpc_tls_verify_peer_chain(gnutls_session_t session);

#endif
