/*
 * tls.c: making and checking the certificates of the QUIC transport.
 *
 * The one idea: on identity connections the X.509 certificate is an envelope for the
 * Ed25519 key and nothing else. We make it self-signed from the identity key at start-up
 * and, on the other side, read the key back out of it; TLS 1.3's CertificateVerify has
 * already proven that the peer holds the private half. Federation instead uses an
 * ordinary CA chain, loaded from DER files.
 */
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <gnutls/abstract.h>
#include <gnutls/x509.h>
#include <sodium.h>

#include "qpc/error.h"
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
