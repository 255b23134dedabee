/*
 * tls.h: the TLS identities the QUIC transport presents and checks (GnuTLS), and the
 * TLS sessions of its connections.
 *
 * Two kinds of credentials exist. Identity credentials (client and P2P ALPNs) hold a
 * self-signed X.509 certificate made at start-up over the node's Ed25519 identity key:
 * the certificate is only a carrier for the key, and what the other side checks is the
 * key itself (qpc_tls_peer_key). Federation uses the identity credentials too by
 * default (the application pins a key per domain), or credentials loaded from DER files
 * and checked against a CA (mutual TLS, qpc_tls_verify_peer_chain), with the domain a
 * node dials required among the subjectAltName dNSNames of the certificate it is shown
 * (qpc_tls_peer_has_dns_name).
 *
 * The second half of this header is what quic.c uses per endpoint and per connection:
 * the credentials and ALPNs of an endpoint (struct qpc_tls_endpoint) and one GnuTLS
 * session per connection, set up for ngtcp2_crypto_gnutls, whose hooks pick the
 * certificate by the ALPN the client offered and check the peer's certificate
 * (struct qpc_tls_session). Applications do not call these; they use quic.h.
 */
#ifndef QPC_TLS_H
#define QPC_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2_crypto.h>

#include "qpc/encoding.h"

#define QPC_TLS_SECRET_KEY_LEN 64   /* libsodium Ed25519 secret key: seed || public key */
#define QPC_TLS_NAME_MAX 253        /* longest DNS name a certificate is checked for */

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
 * Checks the three federation files of CA mode the way a user needs to hear about them:
 * each exists and is readable, cert_path and ca_path are X.509 certificates in DER,
 * key_path a private key in DER (not the CA or the certificate given again), ca_path
 * is a CA, cert_path is not the CA itself, the key belongs to the certificate, the CA
 * signed the certificate, and (when domain is not NULL or "") the certificate names
 * domain as a subjectAltName dNSName. On failure err (errlen bytes) holds one sentence
 * naming the setting, the file and what is wrong. Returns 0, QPC_ERR_IO (a file cannot
 * be read), QPC_ERR_CONFIG (anything else wrong) or QPC_ERR_NOMEM.
 */
int qpc_tls_federation_files_check(const char *cert_path, const char *key_path,
                                   const char *ca_path, const char *domain, char *err,
                                   size_t errlen);

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

/*
 * Whether the X.509 certificate der (DER; borrowed) lists name among its subjectAltName
 * dNSName entries, compared case-insensitively, exactly (no wildcards, and the subject
 * CN does not count). Returns 0 (it does), QPC_ERR_NOT_FOUND (it does not),
 * QPC_ERR_TLS (not a certificate), QPC_ERR_INVALID (NULL or empty name), QPC_ERR_NOMEM.
 */
int qpc_tls_cert_has_dns_name(const gnutls_datum_t *der, const char *name);

/* qpc_tls_cert_has_dns_name for the first certificate the peer of session presented;
 * QPC_ERR_TLS when it presented none. */
int qpc_tls_peer_has_dns_name(gnutls_session_t session, const char *name);

/* ---- TLS of QUIC endpoints and connections ------------------------------------------- */

#define QPC_TLS_ALPN_MAX 64      /* an ALPN's length stays below this */
#define QPC_TLS_ALPNS_MAX 8      /* ALPNs one endpoint serves */

/*
 * What one endpoint presents: its credentials and the ALPNs it serves when accepting.
 * The federation ALPN (QPC_ALPN_FEDERATION) needs fed_cred, every other ALPN id_cred.
 * Owned by the endpoint; its sessions borrow it, so it outlives them.
 */
struct qpc_tls_endpoint {
    gnutls_priority_t priority;                 /* QPC_TLS_PRIORITY, parsed once and shared
                                                 * by every session (a copy per session
                                                 * cost 8 KiB of each connection) */
    gnutls_certificate_credentials_t id_cred;   /* NULL: no identity ALPNs */
    gnutls_certificate_credentials_t fed_cred;  /* CA mode's credentials, else NULL */
    bool fed_by_key;                            /* the federation ALPN presents id_cred and
                                                 * checks peers by key, as the others do */
    char *alpns[QPC_TLS_ALPNS_MAX];             /* served when accepting, in preference */
    gnutls_datum_t alpn_d[QPC_TLS_ALPNS_MAX];   /* the same, as GnuTLS takes them */
    size_t nalpns;
};

/*
 * Fills te: identity credentials if identity_sk (64-byte libsodium Ed25519 secret key;
 * only read) is not NULL, federation credentials if any of the three DER paths is not
 * NULL (then all three are needed), and copies of the ALPNs alpns[0..max) up to the
 * first NULL. fed_by_key: the federation ALPN uses the identity credentials and key
 * checks (no DER files needed) instead of the CA. The strings are only read. On error te is left cleared.
 * Errors: QPC_ERR_TLS (GnuTLS refused QPC_TLS_PRIORITY); those of
 * qpc_tls_identity_cred_new and qpc_tls_federation_cred_new;
 * QPC_ERR_INVALID (an ALPN empty or not below QPC_TLS_ALPN_MAX bytes, max above
 * QPC_TLS_ALPNS_MAX), QPC_ERR_CONFIG (an ALPN whose credentials are not there),
 * QPC_ERR_NOMEM.
 */
int qpc_tls_endpoint_init(struct qpc_tls_endpoint *te, const uint8_t *identity_sk,
                          const char *fed_cert_der, const char *fed_key_der,
                          const char *fed_ca_der, bool fed_by_key, const char *const *alpns,
                          size_t max);

/* Frees what te holds and zeroes it. A zeroed te is a no-op. */
void qpc_tls_endpoint_clear(struct qpc_tls_endpoint *te);

/* The credentials te presents on alpn (borrowed from te), or NULL if it has none. */
gnutls_certificate_credentials_t qpc_tls_endpoint_cred(const struct qpc_tls_endpoint *te,
                                                       const char *alpn);

/*
 * The TLS side of one QUIC connection. The connection owns it (it is a member of the
 * connection, which must not move); quic.c reads the fields, tls.c writes them.
 */
struct qpc_tls_session {
    /* The GnuTLS session's user pointer: ngtcp2_crypto_gnutls finds the ngtcp2_conn
     * through it, and tls.c's hooks find this struct. */
    ngtcp2_crypto_conn_ref ref;
    gnutls_session_t session;                   /* NULL until qpc_tls_session_init made it */
    const struct qpc_tls_endpoint *te;          /* borrowed */
    /* Client: the ALPN offered. Server: the one chosen at ClientHello. Both: the one
     * negotiated, once qpc_tls_session_handshake_done returned 0. */
    char alpn[QPC_TLS_ALPN_MAX];
    bool has_expected;                          /* client, identity ALPN: key to insist on */
    uint8_t expected[QPC_KEY_LEN];
    bool has_peer_key;                          /* the peer's certificate gave its key */
    uint8_t peer_key[QPC_KEY_LEN];
    bool key_mismatch;                          /* the handshake failed on the expected key */
    char expected_name[QPC_TLS_NAME_MAX + 1];   /* client, CA-checked ALPN: a dNSName the
                                                 * server's certificate must list; "" none */
    bool name_mismatch;                         /* the handshake failed on that name */
};

/*
 * Makes ts's GnuTLS session for a server (is_server) or client connection and sets it
 * up for ngtcp2_crypto_gnutls: TLS 1.3 (QPC_TLS_PRIORITY), the ALPNs (a server offers
 * te's, a client alpn alone), client certificates required by servers, and the hooks
 * that choose the server's certificate by ALPN and check the peer's certificate (the
 * CA chain on a CA-checked federation ALPN; otherwise the Ed25519 key, which must equal
 * expected_key if that is not NULL). alpn (client only; NULL for servers) and
 * expected_key (32 bytes, client only, ignored where the CA decides; NULL: learn
 * the key) are copied. get_conn and conn fill ts->ref: ngtcp2_crypto calls
 * get_conn(&ts->ref) to find the connection, and ts->ref.user_data is conn. ts must
 * start zeroed; te is borrowed. The caller then hands ts->session to ngtcp2
 * (ngtcp2_conn_set_tls_native_handle), and calls qpc_tls_session_clear whatever the
 * result. Errors: QPC_ERR_NOMEM, QPC_ERR_TLS (GnuTLS refused a setting), QPC_ERR_CONFIG
 * (te has no credentials for alpn, or none at all for a server).
 */
int qpc_tls_session_init(struct qpc_tls_session *ts, const struct qpc_tls_endpoint *te,
                         bool is_server, const char *alpn, const uint8_t *expected_key,
                         ngtcp2_crypto_get_conn get_conn, void *conn);

/*
 * Called when the handshake completed: copies the negotiated ALPN into ts->alpn and
 * checks that a peer on an identity ALPN gave its key. Errors: QPC_ERR_REFUSED (no
 * ALPN negotiated), QPC_ERR_TLS (an identity ALPN without the peer's key).
 */
int qpc_tls_session_handshake_done(struct qpc_tls_session *ts);

/*
 * Client, CA-checked federation: the server's certificate must list name (copied) as a
 * subjectAltName dNSName, or the handshake fails (ts->name_mismatch). Call before the
 * server's certificate arrives (right after the connection was made). Returns 0 or
 * QPC_ERR_INVALID (NULL, or longer than QPC_TLS_NAME_MAX).
 */
int qpc_tls_session_expect_name(struct qpc_tls_session *ts, const char *name);

/* Frees ts's GnuTLS session, if any. Clearing twice, or a zeroed ts, is a no-op. */
void qpc_tls_session_clear(struct qpc_tls_session *ts);

#endif
