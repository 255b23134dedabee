/*
 * test_tls.c: identity certificates carry exactly the identity key; federation files
 * are checked when loaded; an endpoint serves only ALPNs it has credentials for.
 * (The sessions' hooks run in real handshakes: test_quic.c, test_quic_fed.c.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <gnutls/abstract.h>
#include <gnutls/x509.h>
#include <sodium.h>

#include "qpc/error.h"
#include "qpc/quic.h"
#include "qpc/tls.h"

static void test_tls_identity_certificate_carries_identity_key(void **state)
{
    uint8_t pk[32], sk[64];
    gnutls_certificate_credentials_t cred;
    gnutls_datum_t der = { NULL, 0 }, x = { NULL, 0 };
    gnutls_pubkey_t pub;
    gnutls_x509_crt_t crt;
    gnutls_ecc_curve_t curve;
    char cn[128];
    size_t cnlen = sizeof(cn);
    char hex[65];
    unsigned int verify = 1;

    assert_true(sodium_init() >= 0);
    crypto_sign_keypair(pk, sk);
    assert_int_equal(qpc_tls_identity_cred_new(&cred, sk), 0);
    assert_int_equal(gnutls_certificate_get_crt_raw(cred, 0, 0, &der), 0);
    assert_int_equal(gnutls_pubkey_init(&pub), 0);
    assert_int_equal(gnutls_pubkey_import_x509_raw(pub, &der, GNUTLS_X509_FMT_DER, 0), 0);
    assert_int_equal(gnutls_pubkey_export_ecc_raw2(pub, &curve, &x, NULL, 0), 0);
    assert_int_equal(curve, GNUTLS_ECC_CURVE_ED25519);
    assert_int_equal(x.size, 32);
    assert_memory_equal(x.data, pk, 32);
    /* Self-signed, and named by the peer id. */
    assert_int_equal(gnutls_x509_crt_init(&crt), 0);
    assert_int_equal(gnutls_x509_crt_import(crt, &der, GNUTLS_X509_FMT_DER), 0);
    assert_int_equal(gnutls_x509_crt_verify(crt, &crt, 1, 0, &verify), 0);
    assert_int_equal(verify, 0);
    assert_int_equal(gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn,
                                                   &cnlen), 0);
    for (int i = 0; i < 32; i++)
        sprintf(hex + 2 * i, "%02x", pk[i]);
    assert_string_equal(cn, hex);
    gnutls_x509_crt_deinit(crt);
    gnutls_free(x.data);
    gnutls_pubkey_deinit(pub);
    gnutls_certificate_free_credentials(cred);
}

static void test_tls_federation_missing_file_is_io_error(void **state)
{
    gnutls_certificate_credentials_t cred = NULL;

    assert_int_equal(qpc_tls_federation_cred_new(&cred, "/nonexistent/a.der",
                                                 "/nonexistent/a.key", "/nonexistent/ca.der"),
                     QPC_ERR_IO);
    assert_null(cred);
    assert_int_equal(qpc_tls_federation_cred_new(&cred, NULL, NULL, NULL), QPC_ERR_CONFIG);
}

static void test_tls_federation_garbage_file_is_config_error(void **state)
{
    char path[] = "/tmp/qpc-tls-XXXXXX";
    int fd = mkstemp(path);
    gnutls_certificate_credentials_t cred = NULL;

    assert_true(fd >= 0);
    assert_int_equal(write(fd, "not DER at all", 14), 14);
    close(fd);
    assert_int_equal(qpc_tls_federation_cred_new(&cred, path, path, path), QPC_ERR_CONFIG);
    assert_null(cred);
    unlink(path);
}

static void test_tls_endpoint_serves_only_alpns_it_has_credentials_for(void **state)
{
    uint8_t pk[32], sk[64];
    char long_alpn[QPC_TLS_ALPN_MAX + 1];
    const char *ok[] = { QPC_ALPN_CLIENT, QPC_ALPN_P2P, NULL };
    const char *fed[] = { QPC_ALPN_P2P, QPC_ALPN_FEDERATION, NULL };
    const char *empty[] = { "", NULL };
    const char *too_long[] = { long_alpn, NULL };
    struct qpc_tls_endpoint te;

    assert_true(sodium_init() >= 0);
    crypto_sign_keypair(pk, sk);
    memset(long_alpn, 'a', QPC_TLS_ALPN_MAX);
    long_alpn[QPC_TLS_ALPN_MAX] = '\0';

    assert_int_equal(qpc_tls_endpoint_init(&te, sk, NULL, NULL, NULL, false, ok, 3), 0);
    assert_int_equal(te.nalpns, 2);
    assert_memory_equal(te.alpn_d[1].data, QPC_ALPN_P2P, strlen(QPC_ALPN_P2P));
    assert_int_equal(te.alpn_d[1].size, strlen(QPC_ALPN_P2P));
    assert_non_null(qpc_tls_endpoint_cred(&te, QPC_ALPN_CLIENT));
    assert_ptr_equal(qpc_tls_endpoint_cred(&te, QPC_ALPN_P2P), te.id_cred);
    assert_null(qpc_tls_endpoint_cred(&te, QPC_ALPN_FEDERATION));
    qpc_tls_endpoint_clear(&te);
    assert_null(te.id_cred);
    assert_int_equal(te.nalpns, 0);
    qpc_tls_endpoint_clear(&te);   /* twice: a no-op */

    /* Federation without its files, identity ALPNs without a key, bad names. */
    assert_int_equal(qpc_tls_endpoint_init(&te, sk, NULL, NULL, NULL, false, fed, 3), QPC_ERR_CONFIG);
    assert_null(te.id_cred);
    assert_int_equal(qpc_tls_endpoint_init(&te, NULL, NULL, NULL, NULL, false, ok, 3), QPC_ERR_CONFIG);
    assert_int_equal(qpc_tls_endpoint_init(&te, sk, NULL, NULL, NULL, false, empty, 2), QPC_ERR_INVALID);
    assert_int_equal(qpc_tls_endpoint_init(&te, sk, NULL, NULL, NULL, false, too_long, 2),
                     QPC_ERR_INVALID);
    assert_int_equal(qpc_tls_endpoint_init(&te, sk, "/nonexistent/a.der", NULL, NULL, false, ok, 3),
                     QPC_ERR_CONFIG);   /* one federation file of three */
    assert_int_equal(qpc_tls_endpoint_init(&te, sk, NULL, NULL, NULL, false, ok, QPC_TLS_ALPNS_MAX + 1),
                     QPC_ERR_INVALID);
    assert_null(te.id_cred);
    assert_int_equal(te.nalpns, 0);
    (void)state;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_identity_certificate_carries_identity_key),
        cmocka_unit_test(test_tls_federation_missing_file_is_io_error),
        cmocka_unit_test(test_tls_federation_garbage_file_is_config_error),
        cmocka_unit_test(test_tls_endpoint_serves_only_alpns_it_has_credentials_for),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
