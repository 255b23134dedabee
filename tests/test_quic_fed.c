/*
 * test_quic_fed.c: federation mutual TLS. A test PKI is made with certtool by
 * tests/data/make_fed_certs.sh (the same commands docs/transport.md shows): a CA, two
 * nodes it signed, and a rogue node signed by another CA.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <unistd.h>
#include <cmocka.h>

#include "quic_harness.h"

static char g_dir[] = "/tmp/qpc-fed-XXXXXX";

static int make_pki(void **state)
{
    const char *data = getenv("QPC_TEST_DATA");
    char cmd[1024];

    if (mkdtemp(g_dir) == NULL)
        return -1;
    snprintf(cmd, sizeof(cmd), "sh '%s/make_fed_certs.sh' '%s'", data ? data : "tests/data",
             g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int remove_pki(void **state)
{
    char cmd[1024];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

struct node {
    struct side side;
    char cert[512], key[512], ca[512];
};

static int node_open(struct node *n, struct ev_loop *loop, const char *name, bool accept)
{
    struct qpc_quic_config cfg;

    side_keys(&n->side);
    side_config(&cfg, &n->side, accept);
    snprintf(n->cert, sizeof(n->cert), "%s/%s.der", g_dir, name);
    snprintf(n->key, sizeof(n->key), "%s/%s.key.der", g_dir, name);
    snprintf(n->ca, sizeof(n->ca), "%s/ca.der", g_dir);
    cfg.alpns[0] = QPC_ALPN_FEDERATION;
    cfg.alpns[1] = QPC_ALPN_CLIENT;   /* one socket may serve federation and clients */
    cfg.alpns[2] = NULL;
    cfg.fed_cert_der = n->cert;
    cfg.fed_key_der = n->key;
    cfg.fed_ca_der = n->ca;
    return qpc_quic_endpoint_new(&n->side.ep, loop, &cfg);
}

static int node_connect(struct node *from, struct node *to, const char *alpn)
{
    struct sockaddr_storage ss;
    socklen_t len;

    side_addr(&to->side, &ss, &len);
    return qpc_quic_connect(from->side.ep, (struct sockaddr *)&ss, len, alpn, NULL,
                            &from->side, NULL);
}

struct duo {
    struct node *a, *b;
};

static bool duo_connected(void *arg)
{
    struct duo *d = arg;

    return d->a->side.connected && d->b->side.connected;
}

static bool duo_closed(void *arg)
{
    struct duo *d = arg;

    return d->a->side.closed && d->b->side.closed;
}

static void test_quic_federation_nodes_of_one_ca_connect(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct node a = { 0 }, b = { 0 };
    struct duo d = { &a, &b };

    assert_int_equal(node_open(&a, loop, "node-a", true), 0);
    assert_int_equal(node_open(&b, loop, "node-b", false), 0);
    assert_int_equal(node_connect(&b, &a, QPC_ALPN_FEDERATION), 0);
    assert_true(run_until(loop, duo_connected, &d, 10));
    assert_string_equal(a.side.alpn, QPC_ALPN_FEDERATION);
    assert_string_equal(b.side.alpn, QPC_ALPN_FEDERATION);
    assert_false(a.side.has_peer_key);   /* the CA vouches, not an identity key */
    qpc_quic_endpoint_free(b.side.ep);
    qpc_quic_endpoint_free(a.side.ep);
    ev_loop_destroy(loop);
}

static void test_quic_federation_refuses_client_not_signed_by_ca(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct node a = { 0 }, rogue = { 0 };
    struct duo d = { &a, &rogue };

    assert_int_equal(node_open(&a, loop, "node-a", true), 0);
    assert_int_equal(node_open(&rogue, loop, "rogue", false), 0);   /* trusts our CA */
    assert_int_equal(node_connect(&rogue, &a, QPC_ALPN_FEDERATION), 0);
    assert_true(run_until(loop, duo_closed, &d, 10));
    assert_int_equal(a.side.connected, 0);
    /* In TLS 1.3 the client finishes before the server has judged its certificate,
     * so the rogue may see on_connected; then the server's refusal closes it. */
    assert_int_equal(a.side.last_err, QPC_ERR_TLS);
    assert_int_equal(rogue.side.last_err, QPC_ERR_TLS);
    assert_true(rogue.side.last_by_peer);
    assert_int_equal(qpc_quic_endpoint_conn_count(a.side.ep), 0);
    qpc_quic_endpoint_free(rogue.side.ep);
    qpc_quic_endpoint_free(a.side.ep);
    ev_loop_destroy(loop);
}

static void test_quic_federation_refuses_server_not_signed_by_ca(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct node rogue = { 0 }, b = { 0 };
    struct duo d = { &rogue, &b };

    assert_int_equal(node_open(&rogue, loop, "rogue", true), 0);
    assert_int_equal(node_open(&b, loop, "node-b", false), 0);
    assert_int_equal(node_connect(&b, &rogue, QPC_ALPN_FEDERATION), 0);
    assert_true(run_until(loop, duo_closed, &d, 10));
    assert_int_equal(b.side.connected, 0);
    assert_int_equal(rogue.side.connected, 0);
    assert_int_equal(b.side.last_err, QPC_ERR_TLS);
    qpc_quic_endpoint_free(b.side.ep);
    qpc_quic_endpoint_free(rogue.side.ep);
    ev_loop_destroy(loop);
}

static void test_quic_federation_alpn_needs_federation_credentials(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct node a = { 0 };
    struct side plain = { 0 };
    struct qpc_quic_config cfg;
    struct sockaddr_storage ss;
    socklen_t len;

    assert_int_equal(node_open(&a, loop, "node-a", true), 0);
    side_keys(&plain);
    side_config(&cfg, &plain, false);
    assert_int_equal(qpc_quic_endpoint_new(&plain.ep, loop, &cfg), 0);
    side_addr(&a.side, &ss, &len);
    assert_int_equal(qpc_quic_connect(plain.ep, (struct sockaddr *)&ss, len,
                                      QPC_ALPN_FEDERATION, NULL, &plain, NULL),
                     QPC_ERR_CONFIG);
    /* Serving the federation ALPN without its credentials is a configuration error. */
    side_config(&cfg, &plain, true);
    cfg.alpns[0] = QPC_ALPN_FEDERATION;
    cfg.alpns[1] = NULL;
    {
        struct qpc_quic_endpoint *bad = NULL;

        assert_int_equal(qpc_quic_endpoint_new(&bad, loop, &cfg), QPC_ERR_CONFIG);
        assert_null(bad);
    }
    qpc_quic_endpoint_free(plain.ep);
    qpc_quic_endpoint_free(a.side.ep);
    ev_loop_destroy(loop);
}

struct two {
    struct side *x, *y;
};

static bool two_connected(void *arg)
{
    struct two *t = arg;

    return t->x->connected && t->y->connected;
}

static void test_quic_federation_node_serves_identity_alpn_on_same_socket(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct node a = { 0 };
    struct side cli = { 0 };
    struct qpc_quic_config cfg;
    struct sockaddr_storage ss;
    socklen_t len;

    assert_int_equal(node_open(&a, loop, "node-a", true), 0);
    side_keys(&cli);
    side_config(&cfg, &cli, false);
    assert_int_equal(qpc_quic_endpoint_new(&cli.ep, loop, &cfg), 0);
    side_addr(&a.side, &ss, &len);
    /* The client expects the node's identity key, not its federation certificate. */
    assert_int_equal(qpc_quic_connect(cli.ep, (struct sockaddr *)&ss, len, QPC_ALPN_CLIENT,
                                      a.side.pk, &cli, NULL), 0);
    {
        struct two t = { &a.side, &cli };

        assert_true(run_until(loop, two_connected, &t, 10));
    }
    assert_int_equal(cli.connected, 1);
    assert_memory_equal(cli.peer_key, a.side.pk, 32);
    assert_memory_equal(a.side.peer_key, cli.pk, 32);
    qpc_quic_endpoint_free(cli.ep);
    qpc_quic_endpoint_free(a.side.ep);
    ev_loop_destroy(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quic_federation_nodes_of_one_ca_connect),
        cmocka_unit_test(test_quic_federation_refuses_client_not_signed_by_ca),
        cmocka_unit_test(test_quic_federation_refuses_server_not_signed_by_ca),
        cmocka_unit_test(test_quic_federation_alpn_needs_federation_credentials),
        cmocka_unit_test(test_quic_federation_node_serves_identity_alpn_on_same_socket),
    };

    return cmocka_run_group_tests(tests, make_pki, remove_pki);
}
