/*
 * tls.c: the TLS of the QUIC transport: its certificates, and each connection's session.
 *
 * The one idea: on identity connections the X.509 certificate is an envelope for the
 * Ed25519 key and nothing else. We make it self-signed from the identity key at start-up
 * and, on the other side, read the key back out of it; TLS 1.3's CertificateVerify has
 * already proven that the peer holds the private half. Federation uses the same
 * identity certificates by default (a node proves its domain by the key pinned for it,
 * which the application checks), or an ordinary CA chain loaded from DER files, in
 * which case the domain a node dials must be a subjectAltName dNSName of the
 * certificate the other side presents.
 *
 * One socket serves both kinds, so which certificate a server presents is only known
 * once the client's ALPN is: a post-ClientHello hook sets it. The verify hook then
 * checks the peer the way its ALPN asks (key, or chain). Both find their connection's
 * state through the session pointer that ngtcp2_crypto_gnutls also uses.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <gnutls/abstract.h>
#include <gnutls/x509.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <sodium.h>

#include "qpc/error.h"
#include "qpc/fileio.h"
#include "qpc/quic.h"
#include "qpc/tls.h"

const char QPC_TLS_PRIORITY[] =
    "%DISABLE_TLS13_COMPAT_MODE:NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:"
    "+AES-256-GCM:+CHACHA20-POLY1305:+AES-128-CCM:-GROUP-ALL:+GROUP-X25519:"
    "+GROUP-SECP256R1:+GROUP-SECP384R1:+GROUP-SECP521R1";

static int make_self_signed(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key,
                            const uint8_t pub[static QPC_KEY_LEN])
{
    uint8_t serial[16];
    char cn[QPC_KEY_HEX_LEN];
    time_t now = time(NULL);
    /* RFC 5280's "no well-defined expiration" (99991231235959Z) needs a 64-bit time_t:
     * with a 32-bit one (Debian 12 armhf, mipsel) GnuTLS's constant wraps and the
     * certificate would expire in 1970. There the last second the system can count is it. */
    time_t expiry = sizeof(time_t) >= 8 ? GNUTLS_X509_NO_WELL_DEFINED_EXPIRATION
                                        : (time_t)INT32_MAX;

    randombytes_buf(serial, sizeof(serial));
    serial[0] &= 0x7f;   /* a positive INTEGER */
    qpc_key_to_hex(cn, pub);
    if (gnutls_x509_crt_set_version(crt, 3) < 0 ||
        gnutls_x509_crt_set_serial(crt, serial, sizeof(serial)) < 0 ||
        gnutls_x509_crt_set_activation_time(crt, now - 24 * 3600) < 0 ||
        gnutls_x509_crt_set_expiration_time(crt, expiry) < 0 ||
        gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
                                      QPC_KEY_HEX_LEN - 1) < 0 ||
        gnutls_x509_crt_set_issuer_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
                                             QPC_KEY_HEX_LEN - 1) < 0 ||
        gnutls_x509_crt_set_key(crt, key) < 0 ||
        gnutls_x509_crt_set_basic_constraints(crt, 0, -1) < 0 ||
        gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE) < 0 ||
        gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA512, 0) < 0)
        return QPC_ERR_CRYPTO;
    return 0;
}

int qpc_tls_identity_cred_new(gnutls_certificate_credentials_t *out,
                              const uint8_t secret_key[static QPC_TLS_SECRET_KEY_LEN])
{
    gnutls_x509_privkey_t key = NULL;
    gnutls_x509_crt_t crt = NULL;
    gnutls_certificate_credentials_t cred = NULL;
    /* libsodium keeps seed || public key; GnuTLS wants them apart. */
    gnutls_datum_t k = { (unsigned char *)secret_key, 32 };
    gnutls_datum_t x = { (unsigned char *)secret_key + 32, 32 };
    int ret = QPC_ERR_CRYPTO;

    if (gnutls_x509_privkey_init(&key) < 0 || gnutls_x509_crt_init(&crt) < 0) {
        ret = QPC_ERR_NOMEM;
        goto cleanup;
    }
    if (gnutls_x509_privkey_import_ecc_raw(key, GNUTLS_ECC_CURVE_ED25519, &x, NULL, &k) < 0)
        goto cleanup;
    ret = make_self_signed(crt, key, secret_key + 32);
    if (ret < 0)
        goto cleanup;
    if (gnutls_certificate_allocate_credentials(&cred) < 0) {
        ret = QPC_ERR_NOMEM;
        goto cleanup;
    }
    if (gnutls_certificate_set_x509_key(cred, &crt, 1, key) < 0) {
        ret = QPC_ERR_CRYPTO;
        goto cleanup;
    }
    *out = cred;
    cred = NULL;
    ret = 0;
cleanup:
    if (cred != NULL)
        gnutls_certificate_free_credentials(cred);
    if (crt != NULL)
        gnutls_x509_crt_deinit(crt);
    if (key != NULL)
        gnutls_x509_privkey_deinit(key);   /* set_x509_key keeps its own copy */
    return ret;
}

int qpc_tls_federation_cred_new(gnutls_certificate_credentials_t *out, const char *cert_path,
                                const char *key_path, const char *ca_path)
{
    gnutls_datum_t cert = { NULL, 0 }, key = { NULL, 0 }, ca = { NULL, 0 };
    gnutls_certificate_credentials_t cred = NULL;
    int ret = QPC_ERR_IO;

    if (cert_path == NULL || key_path == NULL || ca_path == NULL) {
        ret = QPC_ERR_CONFIG;
        goto cleanup;
    }
    if (gnutls_load_file(cert_path, &cert) < 0 || gnutls_load_file(key_path, &key) < 0 ||
        gnutls_load_file(ca_path, &ca) < 0)
        goto cleanup;
    if (gnutls_certificate_allocate_credentials(&cred) < 0) {
        ret = QPC_ERR_NOMEM;
        goto cleanup;
    }
    ret = QPC_ERR_CONFIG;
    if (gnutls_certificate_set_x509_key_mem2(cred, &cert, &key, GNUTLS_X509_FMT_DER, NULL, 0) < 0)
        goto cleanup;
    if (gnutls_certificate_set_x509_trust_mem(cred, &ca, GNUTLS_X509_FMT_DER) <= 0)
        goto cleanup;
    *out = cred;
    cred = NULL;
    ret = 0;
cleanup:
    if (cred != NULL)
        gnutls_certificate_free_credentials(cred);
    if (key.data != NULL) {
        sodium_memzero(key.data, key.size);
        gnutls_free(key.data);
    }
    gnutls_free(cert.data);
    gnutls_free(ca.data);
    return ret;
}

/* Reads path into *d (gnutls_free it); err names the file and the reason. */
static int load_named(const char *what, const char *path, gnutls_datum_t *d, char *err,
                      size_t errlen)
{
    FILE *f;

    if (path == NULL || path[0] == '\0') {
        snprintf(err, errlen, "%s is not set", what);
        return QPC_ERR_CONFIG;
    }
    f = fopen(path, "rb");   /* for the reason: gnutls_load_file only says it failed */
    if (f == NULL) {
        snprintf(err, errlen, "%s %s: cannot be read: %s", what, path, strerror(errno));
        return QPC_ERR_IO;
    }
    fclose(f);
    if (gnutls_load_file(path, d) < 0) {
        snprintf(err, errlen, "%s %s: cannot be read", what, path);
        return QPC_ERR_IO;
    }
    return 0;
}

/* Imports a DER certificate; err names the file. */
static int import_cert(const char *what, const char *path, const gnutls_datum_t *d,
                       gnutls_x509_crt_t *crt, char *err, size_t errlen)
{
    if (gnutls_x509_crt_init(crt) < 0)
        return QPC_ERR_NOMEM;
    if (gnutls_x509_crt_import(*crt, d, GNUTLS_X509_FMT_DER) < 0) {
        snprintf(err, errlen, "%s %s: not an X.509 certificate in DER%s", what, path,
                 d->size > 10 && memcmp(d->data, "-----BEGIN", 10) == 0
                     ? " (it is PEM: certtool --certificate-info --infile F.pem --outder "
                       "--outfile F.der)"
                     : "");
        return QPC_ERR_CONFIG;
    }
    return 0;
}

int qpc_tls_federation_files_check(const char *cert_path, const char *key_path,
                                   const char *ca_path, const char *domain, char *err,
                                   size_t errlen)
{
    gnutls_datum_t cert = { NULL, 0 }, key = { NULL, 0 }, ca = { NULL, 0 };
    gnutls_x509_crt_t crt = NULL, cacrt = NULL;
    gnutls_x509_privkey_t pk = NULL;
    gnutls_pubkey_t cert_pub = NULL;
    unsigned char id1[64], id2[64];
    size_t id1_len = sizeof(id1), id2_len = sizeof(id2);
    unsigned int status = 0, critical = 0;
    int ret;

    if ((ret = load_named("federation_cert", cert_path, &cert, err, errlen)) != 0 ||
        (ret = load_named("federation_key", key_path, &key, err, errlen)) != 0 ||
        (ret = load_named("federation_ca", ca_path, &ca, err, errlen)) != 0)
        goto out;
    qpc_file_warn_exposed(key_path, "the federation private key");
    if ((ret = import_cert("federation_cert", cert_path, &cert, &crt, err, errlen)) != 0 ||
        (ret = import_cert("federation_ca", ca_path, &ca, &cacrt, err, errlen)) != 0)
        goto out;
    ret = QPC_ERR_CONFIG;
    if (gnutls_x509_privkey_init(&pk) < 0) {
        ret = QPC_ERR_NOMEM;
        goto out;
    }
    if (gnutls_x509_privkey_import(pk, &key, GNUTLS_X509_FMT_DER) < 0 &&
        gnutls_x509_privkey_import_pkcs8(pk, &key, GNUTLS_X509_FMT_DER, NULL,
                                         GNUTLS_PKCS_PLAIN) < 0) {
        bool is_ca = key.size == ca.size && memcmp(key.data, ca.data, key.size) == 0;
        bool is_cert = key.size == cert.size && memcmp(key.data, cert.data, key.size) == 0;
        snprintf(err, errlen, "federation_key %s: not a private key in DER%s", key_path,
                 is_ca     ? " (it is the CA certificate, the same file as federation_ca)"
                 : is_cert ? " (it is the certificate, the same file as federation_cert)"
                           : "");
        goto out;
    }
    if (gnutls_x509_crt_get_basic_constraints(cacrt, &critical, NULL, NULL) <= 0) {
        snprintf(err, errlen, "federation_ca %s: not a CA certificate (no CA basic "
                 "constraint)", ca_path);
        goto out;
    }
    if (cert.size == ca.size && memcmp(cert.data, ca.data, cert.size) == 0) {
        snprintf(err, errlen, "federation_cert %s is the CA certificate; give this node's "
                 "own certificate, signed by the CA", cert_path);
        goto out;
    }
    if (gnutls_pubkey_init(&cert_pub) < 0 || gnutls_pubkey_import_x509(cert_pub, crt, 0) < 0 ||
        gnutls_pubkey_get_key_id(cert_pub, 0, id1, &id1_len) < 0 ||
        gnutls_x509_privkey_get_key_id(pk, 0, id2, &id2_len) < 0) {
        snprintf(err, errlen, "federation_key %s: its public key cannot be read", key_path);
        goto out;
    }
    if (id1_len != id2_len || memcmp(id1, id2, id1_len) != 0) {
        snprintf(err, errlen, "federation_key %s does not belong to federation_cert %s (it is "
                 "the key of another certificate)", key_path, cert_path);
        goto out;
    }
    if (gnutls_x509_crt_verify(crt, &cacrt, 1, 0, &status) < 0 || status != 0) {
        snprintf(err, errlen, "federation_cert %s is not signed by federation_ca %s (or has "
                 "expired)", cert_path, ca_path);
        goto out;
    }
    if (domain != NULL && domain[0] != '\0' && qpc_tls_cert_has_dns_name(&cert, domain) != 0) {
        snprintf(err, errlen, "federation_cert %s does not name federation_domain %s as a "
                 "subjectAltName dNSName, so every peer would refuse it; have the CA add it "
                 "(certtool template: dns_name = \"%s\")", cert_path, domain, domain);
        goto out;
    }
    ret = 0;
out:
    if (pk != NULL)
        gnutls_x509_privkey_deinit(pk);
    if (cert_pub != NULL)
        gnutls_pubkey_deinit(cert_pub);
    if (crt != NULL)
        gnutls_x509_crt_deinit(crt);
    if (cacrt != NULL)
        gnutls_x509_crt_deinit(cacrt);
    if (key.data != NULL) {
        sodium_memzero(key.data, key.size);
        gnutls_free(key.data);
    }
    gnutls_free(cert.data);
    gnutls_free(ca.data);
    return ret;
}

int qpc_tls_peer_key(gnutls_session_t session, uint8_t key[static QPC_KEY_LEN])
{
    const gnutls_datum_t *certs;
    unsigned int ncerts = 0;
    gnutls_pubkey_t pub = NULL;
    gnutls_ecc_curve_t curve;
    gnutls_datum_t x = { NULL, 0 };
    int ret = QPC_ERR_TLS;

    certs = gnutls_certificate_get_peers(session, &ncerts);
    if (certs == NULL || ncerts == 0)
        goto cleanup;
    if (gnutls_pubkey_init(&pub) < 0)
        goto cleanup;
    if (gnutls_pubkey_import_x509_raw(pub, &certs[0], GNUTLS_X509_FMT_DER, 0) < 0)
        goto cleanup;
    if (gnutls_pubkey_get_pk_algorithm(pub, NULL) != GNUTLS_PK_EDDSA_ED25519)
        goto cleanup;
    if (gnutls_pubkey_export_ecc_raw2(pub, &curve, &x, NULL, 0) < 0)
        goto cleanup;
    if (curve != GNUTLS_ECC_CURVE_ED25519 || x.size != QPC_KEY_LEN)
        goto cleanup;
    memcpy(key, x.data, QPC_KEY_LEN);
    ret = 0;
cleanup:
    gnutls_free(x.data);
    if (pub != NULL)
        gnutls_pubkey_deinit(pub);
    return ret;
}

int qpc_tls_verify_peer_chain(gnutls_session_t session)
{
    unsigned int status = 0;

    if (gnutls_certificate_verify_peers2(session, &status) < 0 || status != 0)
        return QPC_ERR_TLS;
    return 0;
}

int qpc_tls_cert_has_dns_name(const gnutls_datum_t *der, const char *name)
{
    gnutls_x509_crt_t crt = NULL;
    char san[QPC_TLS_NAME_MAX + 2];
    int ret = QPC_ERR_NOT_FOUND;

    if (der == NULL || name == NULL || name[0] == '\0')
        return QPC_ERR_INVALID;
    if (gnutls_x509_crt_init(&crt) < 0)
        return QPC_ERR_NOMEM;
    if (gnutls_x509_crt_import(crt, der, GNUTLS_X509_FMT_DER) < 0) {
        ret = QPC_ERR_TLS;
        goto out;
    }
    /* Only dNSName entries count (no CN fallback, no wildcards): the domain is what the
     * CA wrote for this node, exactly. */
    for (unsigned i = 0;; i++) {
        size_t len = sizeof(san);
        unsigned critical = 0;
        int type = gnutls_x509_crt_get_subject_alt_name(crt, i, san, &len, &critical);

        if (type == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
            break;
        if (type == GNUTLS_E_SHORT_MEMORY_BUFFER)
            continue;   /* longer than any domain */
        if (type < 0) {
            ret = QPC_ERR_TLS;
            break;
        }
        if (type == GNUTLS_SAN_DNSNAME && len == strlen(name) && memchr(san, 0, len) == NULL &&
            strncasecmp(san, name, len) == 0) {
            ret = 0;
            break;
        }
    }
out:
    gnutls_x509_crt_deinit(crt);
    return ret;
}

int qpc_tls_peer_has_dns_name(gnutls_session_t session, const char *name)
{
    const gnutls_datum_t *certs;
    unsigned int ncerts = 0;

    certs = gnutls_certificate_get_peers(session, &ncerts);
    if (certs == NULL || ncerts == 0)
        return QPC_ERR_TLS;
    return qpc_tls_cert_has_dns_name(&certs[0], name);
}

/* ---- endpoints ------------------------------------------------------------------------ */

static bool is_federation(const char *alpn)
{
    return strcmp(alpn, QPC_ALPN_FEDERATION) == 0;
}

gnutls_certificate_credentials_t qpc_tls_endpoint_cred(const struct qpc_tls_endpoint *te,
                                                       const char *alpn)
{
    return is_federation(alpn) && !te->fed_by_key ? te->fed_cred : te->id_cred;
}

void qpc_tls_endpoint_clear(struct qpc_tls_endpoint *te)
{
    for (size_t i = 0; i < te->nalpns; i++)
        free(te->alpns[i]);
    if (te->id_cred != NULL)
        gnutls_certificate_free_credentials(te->id_cred);
    if (te->fed_cred != NULL)
        gnutls_certificate_free_credentials(te->fed_cred);
    if (te->priority != NULL)
        gnutls_priority_deinit(te->priority);
    memset(te, 0, sizeof(*te));
}

int qpc_tls_endpoint_init(struct qpc_tls_endpoint *te, const uint8_t *identity_sk,
                          const char *fed_cert_der, const char *fed_key_der,
                          const char *fed_ca_der, bool fed_by_key, const char *const *alpns,
                          size_t max)
{
    int ret = QPC_ERR_INVALID;

    memset(te, 0, sizeof(*te));
    te->fed_by_key = fed_by_key;
    if (gnutls_priority_init2(&te->priority, QPC_TLS_PRIORITY, NULL, 0) < 0) {
        te->priority = NULL;
        ret = QPC_ERR_TLS;
        goto fail;
    }
    if (max > QPC_TLS_ALPNS_MAX)
        goto fail;
    if (identity_sk != NULL) {
        ret = qpc_tls_identity_cred_new(&te->id_cred, identity_sk);
        if (ret < 0)
            goto fail;
    }
    if (fed_cert_der != NULL || fed_key_der != NULL || fed_ca_der != NULL) {
        ret = qpc_tls_federation_cred_new(&te->fed_cred, fed_cert_der, fed_key_der, fed_ca_der);
        if (ret < 0)
            goto fail;
    }
    for (size_t i = 0; i < max && alpns[i] != NULL; i++) {
        size_t len = strlen(alpns[i]);

        ret = QPC_ERR_INVALID;
        if (len == 0 || len >= QPC_TLS_ALPN_MAX)
            goto fail;
        ret = QPC_ERR_CONFIG;
        if (qpc_tls_endpoint_cred(te, alpns[i]) == NULL)
            goto fail;
        ret = QPC_ERR_NOMEM;
        te->alpns[i] = strdup(alpns[i]);
        if (te->alpns[i] == NULL)
            goto fail;
        te->alpn_d[i].data = (unsigned char *)te->alpns[i];
        te->alpn_d[i].size = (unsigned)len;
        te->nalpns++;
    }
    return 0;
fail:
    qpc_tls_endpoint_clear(te);
    return ret;
}

/* True when alpn's peers are checked by their CA chain (not by their key). */
static bool checked_by_chain(const struct qpc_tls_endpoint *te, const char *alpn)
{
    return is_federation(alpn) && !te->fed_by_key;
}

/* ---- sessions ------------------------------------------------------------------------- */

static struct qpc_tls_session *session_of(gnutls_session_t s)
{
    ngtcp2_crypto_conn_ref *ref = gnutls_session_get_ptr(s);

    return (struct qpc_tls_session *)((char *)ref - offsetof(struct qpc_tls_session, ref));
}

/* Copies the ALPN GnuTLS selected into ts->alpn; false if there is none (or too long). */
static bool alpn_take(struct qpc_tls_session *ts)
{
    gnutls_datum_t p = { NULL, 0 };

    if (gnutls_alpn_get_selected_protocol(ts->session, &p) != 0 || p.size == 0 ||
        p.size >= QPC_TLS_ALPN_MAX)
        return false;
    memcpy(ts->alpn, p.data, p.size);
    ts->alpn[p.size] = '\0';
    return true;
}

/* Server side: the ALPN decides which certificate we present. */
static int post_client_hello_cb(gnutls_session_t s)
{
    struct qpc_tls_session *ts = session_of(s);
    gnutls_certificate_credentials_t cred;

    if (!alpn_take(ts))
        return GNUTLS_E_NO_APPLICATION_PROTOCOL;
    cred = qpc_tls_endpoint_cred(ts->te, ts->alpn);
    if (cred == NULL || gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred) < 0)
        return GNUTLS_E_NO_APPLICATION_PROTOCOL;
    return 0;
}

static int verify_peer_cb(gnutls_session_t s)
{
    struct qpc_tls_session *ts = session_of(s);
    uint8_t key[QPC_KEY_LEN];

    if (checked_by_chain(ts->te, ts->alpn)) {
        if (qpc_tls_verify_peer_chain(s) != 0)
            return GNUTLS_E_CERTIFICATE_ERROR;
        if (ts->expected_name[0] != '\0' && qpc_tls_peer_has_dns_name(s, ts->expected_name) != 0) {
            ts->name_mismatch = true;
            return GNUTLS_E_CERTIFICATE_ERROR;
        }
        return 0;
    }
    if (qpc_tls_peer_key(s, key) != 0)
        return GNUTLS_E_CERTIFICATE_ERROR;
    if (ts->has_expected && sodium_memcmp(key, ts->expected, QPC_KEY_LEN) != 0) {
        ts->key_mismatch = true;
        return GNUTLS_E_CERTIFICATE_ERROR;
    }
    memcpy(ts->peer_key, key, QPC_KEY_LEN);
    ts->has_peer_key = true;
    return 0;
}

int qpc_tls_session_init(struct qpc_tls_session *ts, const struct qpc_tls_endpoint *te,
                         bool is_server, const char *alpn, const uint8_t *expected_key,
                         ngtcp2_crypto_get_conn get_conn, void *conn)
{
    gnutls_certificate_credentials_t cred;
    gnutls_datum_t offer;
    int rv;

    ts->te = te;
    ts->ref.get_conn = get_conn;
    ts->ref.user_data = conn;
    if (!is_server) {
        snprintf(ts->alpn, sizeof(ts->alpn), "%s", alpn);
        if (expected_key != NULL && !checked_by_chain(te, alpn)) {
            memcpy(ts->expected, expected_key, QPC_KEY_LEN);
            ts->has_expected = true;
        }
    }
    if (gnutls_init(&ts->session, (is_server ? GNUTLS_SERVER : GNUTLS_CLIENT) |
                                      GNUTLS_NO_END_OF_EARLY_DATA) < 0) {
        ts->session = NULL;
        return QPC_ERR_NOMEM;
    }
    rv = is_server ? ngtcp2_crypto_gnutls_configure_server_session(ts->session)
                   : ngtcp2_crypto_gnutls_configure_client_session(ts->session);
    if (rv != 0 || gnutls_priority_set(ts->session, te->priority) < 0)
        return QPC_ERR_TLS;
    gnutls_session_set_ptr(ts->session, &ts->ref);
    gnutls_session_set_verify_function(ts->session, verify_peer_cb);
    if (is_server) {
        /* Provisional credentials; post_client_hello_cb picks by ALPN. */
        cred = te->id_cred ? te->id_cred : te->fed_cred;
        if (gnutls_alpn_set_protocols(ts->session, te->alpn_d, (unsigned)te->nalpns,
                                      GNUTLS_ALPN_MANDATORY | GNUTLS_ALPN_SERVER_PRECEDENCE) < 0)
            return QPC_ERR_TLS;
        gnutls_certificate_server_set_request(ts->session, GNUTLS_CERT_REQUIRE);
        gnutls_handshake_set_post_client_hello_function(ts->session, post_client_hello_cb);
    } else {
        cred = qpc_tls_endpoint_cred(te, alpn);
        offer.data = (unsigned char *)ts->alpn;
        offer.size = (unsigned)strlen(ts->alpn);
        if (gnutls_alpn_set_protocols(ts->session, &offer, 1, GNUTLS_ALPN_MANDATORY) < 0)
            return QPC_ERR_TLS;
    }
    if (cred == NULL)
        return QPC_ERR_CONFIG;
    if (gnutls_credentials_set(ts->session, GNUTLS_CRD_CERTIFICATE, cred) < 0)
        return QPC_ERR_TLS;
    return 0;
}

int qpc_tls_session_handshake_done(struct qpc_tls_session *ts)
{
    if (!alpn_take(ts))
        return QPC_ERR_REFUSED;
    if (!checked_by_chain(ts->te, ts->alpn) && !ts->has_peer_key)
        return QPC_ERR_TLS;
    return 0;
}

int qpc_tls_session_expect_name(struct qpc_tls_session *ts, const char *name)
{
    if (name == NULL || strlen(name) > QPC_TLS_NAME_MAX)
        return QPC_ERR_INVALID;
    snprintf(ts->expected_name, sizeof(ts->expected_name), "%s", name);
    return 0;
}

void qpc_tls_session_clear(struct qpc_tls_session *ts)
{
    if (ts->session != NULL)
        gnutls_deinit(ts->session);
    ts->session = NULL;
}
