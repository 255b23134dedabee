/*
 * test_settings.c: the two programs' settings (src/server/settings.c,
 * src/client/settings.c) through the configuration engine: their defaults, files,
 * environment and flags, every message a user can get, and the rules of each program.
 *
 * Most tests feed a file from memory (qpc_config_load_buffer) named "t.toml", so every
 * message is expected to start with "t.toml:LINE:".
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "qpc/config.h"
#include "qpc/error.h"
#include "../src/client/settings.h"
#include "../src/server/settings.h"

#define SERVER (&server_schema)
#define CLIENT (&client_schema)

static struct qpc_config *new_cfg(const struct qpc_config_schema *kind)
{
    struct qpc_config *cfg = NULL;
    assert_int_equal(qpc_config_new(&cfg, kind), 0);
    assert_non_null(cfg);
    return cfg;
}

static int load(struct qpc_config *cfg, const char *text, char *err, size_t errlen)
{
    return qpc_config_load_buffer(cfg, "t.toml", text, strlen(text), err, errlen);
}

/* Loads text into a fresh config of kind and expects QPC_ERR_CONFIG with every want. */
static void expect_error(const struct qpc_config_schema *kind, const char *text, const char *want,
                         const char *want2)
{
    struct qpc_config *cfg = new_cfg(kind);
    char err[512] = "";
    int rc = load(cfg, text, err, sizeof(err));
    if (rc != QPC_ERR_CONFIG || strstr(err, want) == NULL ||
        (want2 != NULL && strstr(err, want2) == NULL))
        fail_msg("input:\n%s\nrc=%d err=\"%s\"\nwanted \"%s\" and \"%s\"", text, rc, err, want,
                 want2 ? want2 : "");
    qpc_config_free(cfg);
}

static void test_config_defaults_follow_the_schema(void **state)
{
    (void)state;
    struct qpc_config *cfg = new_cfg(SERVER);
    const struct server_settings *s = server_settings(cfg);
    assert_non_null(s);
    assert_ptr_equal(qpc_config_schema(cfg), SERVER);
    assert_string_equal(s->listen, "0.0.0.0:7000");
    assert_string_equal(s->data_dir, "");
    assert_string_equal(s->log_level, "info");
    assert_true(s->mdns_enabled);
    assert_int_equal(s->mdns_interfaces.count, 0);
    assert_false(s->federation_enabled);
    assert_string_equal(s->federation_domain, "");
    assert_string_equal(s->federation_listen, "0.0.0.0:7001");
    assert_string_equal(s->federation_cert, "");
    assert_string_equal(s->federation_key, "");
    assert_string_equal(s->federation_ca, "");
    assert_int_equal(s->federation_peers.count, 0);
    assert_string_equal(s->metrics_listen, "127.0.0.1:9464");
    assert_int_equal(s->max_frame_size, 1048576);
    assert_int_equal(s->max_envelope_size, 262144);
    assert_int_equal(s->queue_quota, 10000);
    assert_int_equal(s->queue_max_bytes, 268435456);
    assert_int_equal(s->default_ttl, 86400);
    assert_int_equal(s->max_ttl, 604800);
    assert_true(s->relay_enabled);
    assert_int_equal(s->relay_rate_limit, 2000);
    assert_int_equal(s->idle_timeout_ms, 30000);
    assert_int_equal(qpc_config_source_of(cfg, "listen"), QPC_CONFIG_SOURCE_DEFAULT);
    assert_int_equal(qpc_config_source_of(cfg, "nope"), -1);
    char err[256];
    assert_int_equal(server_settings_validate(cfg, err, sizeof(err)), 0);
    qpc_config_free(cfg);

    cfg = new_cfg(CLIENT);
    const struct client_settings *c = client_settings(cfg);
    assert_non_null(c);
    assert_ptr_equal(qpc_config_schema(cfg), CLIENT);
    assert_string_equal(c->data_dir, "");
    assert_string_equal(c->listen, "0.0.0.0:0");
    assert_string_equal(c->server, "");
    assert_true(c->mdns_enabled);
    assert_int_equal(c->store_per_recipient, 1000);
    assert_int_equal(c->store_max_bytes, 67108864);
    assert_int_equal(c->default_ttl, 86400);
    assert_int_equal(c->max_hops, 8);
    assert_int_equal(c->direct_timeout_ms, 3000);
    assert_string_equal(c->log_level, "warn");
    qpc_config_free(cfg);
}

static const char full_server_file[] =
    "# a node on the Freifunk mesh\n"
    "listen = \"[::]:7100\"   # all IPv6\n"
    "data_dir = \"/var/lib/qpc\"\n"
    "log_level = \"debug\"\n"
    "\n"
    "mdns_enabled = false\n"
    "mdns_interfaces = [\"bat0\", \"wlan0\"]\n"
    "federation_enabled = true\n"
    "federation_domain = \"node1.mesh.local\"\n"
    "\"federation_listen\" = \"10.0.0.1:7101\"\n"
    "federation_cert = \"/etc/qpc/cert.der\"\n"
    "federation_key = \"/etc/qpc/key.der\"\n"
    "federation_ca = \"/etc/qpc/ca.der\"\n"
    "metrics_listen = \"\"\n"
    "peers = [\"10.0.0.9:7001\", \"[fd00::9]:7001\"]   # announces only\n"
    "max_frame_size = 2_097_152\n"
    "max_envelope_size = +524288\n"
    "queue_quota = 500\n"
    "queue_max_bytes = 1_073_741_824\n"
    "default_ttl = 3600\n"
    "max_ttl = 7200\n"
    "relay_enabled = false\n"
    "relay_rate_limit = 100\n"
    "idle_timeout_ms = 60000\n"
    "\n"
    "[federation_peers]\n"
    "\"node2.mesh.local\" = \"10.0.0.2:7001\"\n"
    "node3 = \"[fe80::1%bat0]:7001\"\n";

static void test_config_reads_full_server_file(void **state)
{
    (void)state;
    struct qpc_config *cfg = new_cfg(SERVER);
    char err[256] = "";
    assert_int_equal(load(cfg, full_server_file, err, sizeof(err)), 0);
    const struct server_settings *s = server_settings(cfg);
    assert_string_equal(s->listen, "[::]:7100");
    assert_string_equal(s->data_dir, "/var/lib/qpc");
    assert_string_equal(s->log_level, "debug");
    assert_false(s->mdns_enabled);
    assert_int_equal(s->mdns_interfaces.count, 2);
    assert_string_equal(s->mdns_interfaces.items[0], "bat0");
    assert_string_equal(s->mdns_interfaces.items[1], "wlan0");
    assert_true(s->federation_enabled);
    assert_string_equal(s->federation_domain, "node1.mesh.local");
    assert_string_equal(s->federation_listen, "10.0.0.1:7101");
    assert_string_equal(s->federation_ca, "/etc/qpc/ca.der");
    assert_string_equal(s->metrics_listen, "");
    assert_int_equal(s->max_frame_size, 2097152);
    assert_int_equal(s->max_envelope_size, 524288);
    assert_int_equal(s->queue_quota, 500);
    assert_int_equal(s->queue_max_bytes, 1073741824);
    assert_int_equal(s->default_ttl, 3600);
    assert_int_equal(s->max_ttl, 7200);
    assert_false(s->relay_enabled);
    assert_int_equal(s->relay_rate_limit, 100);
    assert_int_equal(s->idle_timeout_ms, 60000);
    assert_int_equal(s->peers.count, 2);
    assert_string_equal(s->peers.items[1], "[fd00::9]:7001");
    assert_int_equal(s->federation_peers.count, 2);
    assert_string_equal(qpc_config_table_get(&s->federation_peers, "node2.mesh.local"), "10.0.0.2:7001");
    assert_string_equal(qpc_config_table_get(&s->federation_peers, "NODE3"), "[fe80::1%bat0]:7001");
    assert_null(qpc_config_table_get(&s->federation_peers, "node4"));
    assert_int_equal(qpc_config_source_of(cfg, "max_ttl"), QPC_CONFIG_SOURCE_FILE);
    assert_int_equal(qpc_config_source_of(cfg, "federation_peers"), QPC_CONFIG_SOURCE_FILE);
    assert_int_equal(server_settings_validate(cfg, err, sizeof(err)), 0);
    qpc_config_free(cfg);
}

static void test_config_reads_client_file_with_crlf_and_bom(void **state)
{
    (void)state;
    static const char text[] =
        "\xef\xbb\xbf# written on Windows\r\n"
        "server = \"node1.mesh.local:7000\"\r\n"
        "listen = \"0.0.0.0:7002\"\r\n"
        "max_hops = 3\r\n"
        "direct_timeout_ms = 500\r\n";
    struct qpc_config *cfg = new_cfg(CLIENT);
    char err[256] = "";
    assert_int_equal(load(cfg, text, err, sizeof(err)), 0);
    const struct client_settings *c = client_settings(cfg);
    assert_string_equal(c->server, "node1.mesh.local:7000");
    assert_string_equal(c->listen, "0.0.0.0:7002");
    assert_int_equal(c->max_hops, 3);
    assert_int_equal(c->direct_timeout_ms, 500);
    qpc_config_free(cfg);
}

/* Each syntax problem is reported with the line it is on. */
static void test_config_syntax_errors_name_their_line(void **state)
{
    (void)state;
    static const struct { const char *text, *where, *what; } cases[] = {
        { "log_level = \"info\"\nlisten \"0.0.0.0:1\"\n", "t.toml:2:", "expected '=' after key 'listen'" },
        { "\n\nlisten = \"0.0.0.0:1\n", "t.toml:3:", "string is not closed" },
        { "listen = \"0.0.0.0:1", "t.toml:1:", "string is not closed" },
        { "data_dir = \"C:\\dir\"\n", "t.toml:1:", "unknown escape '\\d'" },
        { "data_dir = \"a\\u00\"\n", "t.toml:1:", "exactly 4 hex digits" },
        { "data_dir = \"a\\u0000\"\n", "t.toml:1:", "NUL" },
        { "data_dir = \"a\\uD800\"\n", "t.toml:1:", "not a Unicode scalar value" },
        { "data_dir = \"a\tb\x01\"\n", "t.toml:1:", "control character 0x01" },
        { "data_dir = \"\"\"x\"\"\"\n", "t.toml:1:", "multi-line strings" },
        { "data_dir = 'x'\n", "t.toml:1:", "literal strings" },
        { "mdns_interfaces = [\"a\",\n\"b\"\n\n", "t.toml:4:", "array opened on line 1 is not closed" },
        { "mdns_interfaces = [\"a\"\n \"b\"]\n", "t.toml:2:", "expected ',' or ']' in array" },
        { "mdns_interfaces = [\"a\",\n 7]\n", "t.toml:2:", "arrays may only hold strings" },
        { "mdns_interfaces = [[\"a\"]]\n", "t.toml:1:", "arrays may only hold strings" },
        { "#\n[federation_peers\n", "t.toml:2:", "expected ']' to close the table header" },
        { "[[federation_peers]]\n", "t.toml:1:", "arrays of tables" },
        { "\n\nfederation.listen = \"x\"\n", "t.toml:3:", "dotted keys" },
        { "max_ttl = 1.5\n", "t.toml:1:", "floating-point" },
        { "max_ttl = 1e3\n", "t.toml:1:", "floating-point" },
        { "max_ttl = 0x10\n", "t.toml:1:", "only decimal integers" },
        { "max_ttl = 0100\n", "t.toml:1:", "not a valid integer" },
        { "max_ttl = 1__0\n", "t.toml:1:", "not a valid integer" },
        { "max_ttl = 10_\n", "t.toml:1:", "not a valid integer" },
        { "listen = 0.0.0.0:7000\n", "t.toml:1:", "put it in double quotes" },
        { "log_level = info\n", "t.toml:1:", "put it in double quotes" },
        { "mdns_enabled = True\n", "t.toml:1:", "lower case" },
        { "mdns_enabled =\n", "t.toml:1:", "expected a value after '='" },
        { "mdns_enabled = { a = 1 }\n", "t.toml:1:", "inline tables" },
        { "max_ttl = 10 20\n", "t.toml:1:", "unexpected '2' after a value" },
        { "\n\n\nmax_ttl = 10 # ok\nqueue_quota = 5 x\n", "t.toml:5:", "unexpected 'x'" },
        { "max_ttl = 10\rqueue_quota = 5\n", "t.toml:1:", "carriage return" },
        { "# fine\n= 5\n", "t.toml:2:", "expected a key, found '='" },
        { "\"\" = 5\n", "t.toml:1:", "empty quoted key" },
        { "'listen' = \"x:1\"\n", "t.toml:1:", "literal-quoted keys" },
        { "# comment with a \x01 in it\n", "t.toml:1:", "control character 0x01 in a comment" },
        { "a = 1\n\n\xff\n", "t.toml:3:", "invalid UTF-8" },
        { "# over-long \xc0\xaf\n", "t.toml:1:", "invalid UTF-8" },
        { "[federation_peers] x\n", "t.toml:1:", "after a table header" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_error(SERVER, cases[i].text, cases[i].where, cases[i].what);
}

static void test_config_refuses_nul_byte_with_its_line(void **state)
{
    (void)state;
    static const char text[] = "max_ttl = 10\nqueue_quota = 5\0\n";
    struct qpc_config *cfg = new_cfg(SERVER);
    char err[256] = "";
    assert_int_equal(qpc_config_load_buffer(cfg, "t.toml", text, sizeof(text) - 1, err,
                                            sizeof(err)), QPC_ERR_CONFIG);
    assert_non_null(strstr(err, "t.toml:2: NUL byte"));
    qpc_config_free(cfg);
}

static void test_config_unknown_key_suggests_nearest(void **state)
{
    (void)state;
    expect_error(SERVER, "lisen = \"0.0.0.0:1\"\n", "t.toml:1: unknown key 'lisen'",
                 "did you mean 'listen'?");
    expect_error(SERVER, "\nfederation_domian = \"a\"\n", "t.toml:2:",
                 "did you mean 'federation_domain'?");
    expect_error(SERVER, "max-ttl = 5\n", "unknown key 'max-ttl'",
                 "did you mean 'max_ttl'?");
    expect_error(CLIENT, "store_per_recipent = 5\n", "unknown key",
                 "did you mean 'store_per_recipient'?");
    expect_error(SERVER, "[federation_peer]\n", "t.toml:1: unknown table [federation_peer]",
                 "did you mean [federation_peers]?");
    expect_error(CLIENT, "[federation_peers]\n", "unknown table", "has no tables");
    /* a far miss still names the nearest key, but does not claim it is the typo */
    expect_error(SERVER, "zz = 1\n", "unknown key 'zz'",
                 "the closest known one is '");
    expect_error(SERVER, "[listen]\n", "'listen' is a key, not a table", NULL);
    expect_error(SERVER, "federation_peers = \"a=b:1\"\n", "'federation_peers' is a table",
                 "[federation_peers] header");
}

static void test_config_wrong_type_names_expected_type(void **state)
{
    (void)state;
    expect_error(SERVER, "listen = 7000\n", "t.toml:1: 'listen' expects an address string",
                 "got an integer");
    expect_error(SERVER, "mdns_enabled = \"yes\"\n", "'mdns_enabled' expects a boolean",
                 "got a string");
    expect_error(SERVER, "queue_quota = \"10\"\n", "'queue_quota' expects an integer",
                 "got a string");
    expect_error(SERVER, "mdns_interfaces = \"eth0\"\n",
                 "'mdns_interfaces' expects an array of strings", "got a string");
    expect_error(SERVER, "data_dir = [\"a\"]\n", "'data_dir' expects a string",
                 "got an array");
    expect_error(SERVER, "log_level = \"verbose\"\n", "'log_level' = \"verbose\" is not allowed",
                 "error, warn, info or debug");
    expect_error(SERVER, "\nlisten = \"::1:7000\"\n", "t.toml:2:", "needs brackets");
    expect_error(SERVER, "listen = \"0.0.0.0:70000\"\n", "above 65535", NULL);
    expect_error(SERVER, "listen = \"0.0.0.0\"\n", "port is missing", NULL);
    expect_error(SERVER, "listen = \"300.1.1.1:5\"\n", "not a valid IPv4", NULL);
    expect_error(CLIENT, "server = \"node:0\"\n", "port 0 cannot be dialled", NULL);
    expect_error(SERVER, "federation_domain = \"a..b\"\n", "not a domain name",
                 "empty label");
    expect_error(SERVER, "mdns_interfaces = [\"eth 0\"]\n", "interface name", NULL);
    expect_error(CLIENT, "peers = [\"10.0.0.1:0\"]\n", "'peers' item \"10.0.0.1:0\"", "port 0 cannot be dialled");
    expect_error(CLIENT, "peers = [\"10.0.0.1:7000\", \"10.0.0.2\"]\n", "port is missing", NULL);
    expect_error(CLIENT, "announce_interval_s = 0\n", "announce_interval_s", NULL);
}

/* The client's static peers: an array of dialable addresses, names allowed. */
static void test_config_client_static_peers(void **state)
{
    (void)state;
    struct qpc_config *cfg = new_cfg(CLIENT);
    char err[512] = "";
    assert_int_equal(load(cfg, "peers = [\"10.0.0.1:7000\", \"[fd00::1]:7001\", \"b.mesh.example:7000\"]\n"
                               "announce_interval_s = 60\n", err, sizeof(err)), 0);
    const struct client_settings *s = client_settings(cfg);
    assert_int_equal(s->peers.count, 3);
    assert_string_equal(s->peers.items[1], "[fd00::1]:7001");
    assert_int_equal(s->announce_interval_s, 60);
    qpc_config_free(cfg);
    cfg = new_cfg(CLIENT);
    s = client_settings(cfg);
    assert_int_equal(s->peers.count, 0);
    assert_int_equal(s->announce_interval_s, 120);
    qpc_config_free(cfg);
}

/*
 * verify_threads takes "auto" (the default) from every layer as well as 0..4, prints
 * it back as a string the reader takes again, and client_verify_threads() turns it into
 * no worker on one CPU, otherwise two; explicit counts stay.
 */
static void test_config_client_verify_threads_auto(void **state)
{
    (void)state;
    char err[512] = "", *out = NULL;
    size_t outlen = 0;
    struct qpc_config *cfg = new_cfg(CLIENT);
    const struct client_settings *s = client_settings(cfg);
    assert_int_equal(s->verify_threads, QPC_CONFIG_AUTO_VALUE);
    assert_int_equal(qpc_config_source_of(cfg, "verify_threads"), QPC_CONFIG_SOURCE_DEFAULT);
    assert_int_equal(load(cfg, "verify_threads = 3\n", err, sizeof(err)), 0);
    assert_int_equal(s->verify_threads, 3);
    const char *envp[] = { "QPC_CLIENT_VERIFY_THREADS=auto", NULL };
    assert_int_equal(qpc_config_load_env(cfg, envp, err, sizeof(err)), 0);
    assert_int_equal(s->verify_threads, QPC_CONFIG_AUTO_VALUE);
    assert_int_equal(qpc_config_set(cfg, "--verify-threads", "0", QPC_CONFIG_SOURCE_FLAG, err,
                                    sizeof(err)), 0);
    assert_int_equal(s->verify_threads, 0);
    qpc_config_free(cfg);

    cfg = new_cfg(CLIENT);
    s = client_settings(cfg);
    assert_int_equal(load(cfg, "verify_threads = \"auto\"\n", err, sizeof(err)), 0);
    assert_int_equal(s->verify_threads, QPC_CONFIG_AUTO_VALUE);
    assert_int_equal(qpc_config_source_of(cfg, "verify_threads"), QPC_CONFIG_SOURCE_FILE);
    assert_int_equal(qpc_config_set(cfg, "verify-threads", "auto", QPC_CONFIG_SOURCE_FLAG, err,
                                    sizeof(err)), 0);
    assert_int_equal(s->verify_threads, QPC_CONFIG_AUTO_VALUE);
    FILE *f = open_memstream(&out, &outlen);
    assert_non_null(f);
    assert_int_equal(qpc_config_print(cfg, f), 0);
    fclose(f);
    assert_non_null(strstr(out, "verify_threads = \"auto\"  # flag --verify-threads\n"));
    struct qpc_config *again = new_cfg(CLIENT);
    assert_int_equal(load(again, "verify_threads = 4\n", err, sizeof(err)), 0);
    qpc_config_free(again);
    again = new_cfg(CLIENT);
    if (load(again, out, err, sizeof(err)) != 0)
        fail_msg("printed config does not parse: %s\n%s", err, out);
    assert_int_equal(client_settings(again)->verify_threads, QPC_CONFIG_AUTO_VALUE);
    qpc_config_free(again);
    qpc_config_free(cfg);
    free(out);

    /* -1, the stored "auto", is not a number the key takes; nor is any other word */
    expect_error(CLIENT, "verify_threads = -1\n", "t.toml:1: 'verify_threads' = -1 is out of range",
                 "use 0 to 4 (N) or \"auto\"");
    expect_error(CLIENT, "verify_threads = 5\n", "out of range", NULL);
    expect_error(CLIENT, "verify_threads = \"two\"\n",
                 "'verify_threads' expects an integer or \"auto\", got a string", NULL);
    expect_error(CLIENT, "verify_threads = true\n", "expects an integer or \"auto\"", NULL);
    const char *bad_env[] = { "QPC_CLIENT_VERIFY_THREADS=AUTO", NULL };
    assert_int_equal(qpc_config_load_env(cfg = new_cfg(CLIENT), bad_env, err, sizeof(err)),
                     QPC_ERR_CONFIG);
    assert_non_null(strstr(err, "environment QPC_CLIENT_VERIFY_THREADS: 'verify_threads' "
                                "expects a decimal integer (0 to 4) or auto, got \"AUTO\""));
    assert_int_equal(qpc_config_set(cfg, "--verify-threads", "-1", QPC_CONFIG_SOURCE_FLAG, err,
                                    sizeof(err)), QPC_ERR_CONFIG);
    assert_non_null(strstr(err, "command line: '--verify-threads' = -1 is out of range"));
    assert_int_equal(client_settings(cfg)->verify_threads, QPC_CONFIG_AUTO_VALUE);
    qpc_config_free(cfg);

    /* the rule: one CPU (or an unknown count) none, otherwise two (one was not enough
     * for 10k durable msgs/s on two cores: docs/client.md) */
    assert_int_equal(client_verify_threads(QPC_CONFIG_AUTO_VALUE, -1), 0);
    assert_int_equal(client_verify_threads(QPC_CONFIG_AUTO_VALUE, 0), 0);
    assert_int_equal(client_verify_threads(QPC_CONFIG_AUTO_VALUE, 1), 0);
    assert_int_equal(client_verify_threads(QPC_CONFIG_AUTO_VALUE, 2), 2);
    assert_int_equal(client_verify_threads(QPC_CONFIG_AUTO_VALUE, 3), 2);
    assert_int_equal(client_verify_threads(QPC_CONFIG_AUTO_VALUE, 64), CLIENT_VERIFY_AUTO_MAX);
    assert_int_equal(client_verify_threads(0, 8), 0);
    assert_int_equal(client_verify_threads(3, 1), 3);
    assert_int_equal(client_verify_threads(4, 2), 4);
}

static void test_config_duplicate_key_names_both_lines(void **state)
{
    (void)state;
    expect_error(SERVER, "max_ttl = 10\n# again\nmax_ttl = 20\n",
                 "t.toml:3: duplicate key 'max_ttl'", "first set on line 1");
    expect_error(SERVER, "listen = \"a:1\"\n\"listen\" = \"b:2\"\n",
                 "t.toml:2: duplicate key 'listen'", NULL);
    expect_error(SERVER, "[federation_peers]\n\n[federation_peers]\n",
                 "t.toml:3: table [federation_peers] appears twice", "first on line 1");
    expect_error(SERVER, "[federation_peers]\na = \"h:1\"\n\"A\" = \"h:2\"\n",
                 "t.toml:3: duplicate federation peer 'A'", NULL);
}

static const char *const env_file = "listen = \"0.0.0.0:7100\"\nqueue_quota = 50\n";

static void test_config_env_beats_file_in_either_order(void **state)
{
    (void)state;
    const char *envp[] = { "HOME=/x", "QPC_LISTEN=127.0.0.1:7200", "QPC_MDNS_ENABLED=no",
                           "QPC_LISTENER=ignored", NULL };
    char err[256] = "";
    for (int order = 0; order < 2; order++) {
        struct qpc_config *cfg = new_cfg(SERVER);
        if (order == 0) {
            assert_int_equal(load(cfg, env_file, err, sizeof(err)), 0);
            assert_int_equal(qpc_config_load_env(cfg, envp, err, sizeof(err)), 0);
        } else {
            assert_int_equal(qpc_config_load_env(cfg, envp, err, sizeof(err)), 0);
            assert_int_equal(load(cfg, env_file, err, sizeof(err)), 0);
        }
        const struct server_settings *s = server_settings(cfg);
        assert_string_equal(s->listen, "127.0.0.1:7200");
        assert_false(s->mdns_enabled);
        assert_int_equal(s->queue_quota, 50);
        assert_int_equal(qpc_config_source_of(cfg, "listen"), QPC_CONFIG_SOURCE_ENV);
        assert_int_equal(qpc_config_source_of(cfg, "queue_quota"), QPC_CONFIG_SOURCE_FILE);
        qpc_config_free(cfg);
    }
}

static void test_config_flag_beats_env(void **state)
{
    (void)state;
    const char *envp[] = { "QPC_LOG_LEVEL=warn", "QPC_MAX_TTL=1000", NULL };
    char err[256] = "";
    struct qpc_config *cfg = new_cfg(SERVER);
    assert_int_equal(qpc_config_set(cfg, "--log-level", "error", QPC_CONFIG_SOURCE_FLAG, err,
                                    sizeof(err)), 0);
    assert_int_equal(qpc_config_load_env(cfg, envp, err, sizeof(err)), 0);
    assert_int_equal(qpc_config_set(cfg, "default_ttl", "500", QPC_CONFIG_SOURCE_FLAG, err,
                                    sizeof(err)), 0);
    const struct server_settings *s = server_settings(cfg);
    assert_string_equal(s->log_level, "error");
    assert_int_equal(s->max_ttl, 1000);
    assert_int_equal(s->default_ttl, 500);
    assert_int_equal(qpc_config_source_of(cfg, "log_level"), QPC_CONFIG_SOURCE_FLAG);
    /* a weaker source is still checked, then dropped */
    assert_int_equal(qpc_config_set(cfg, "log_level", "loud", QPC_CONFIG_SOURCE_ENV, err,
                                    sizeof(err)), QPC_ERR_CONFIG);
    assert_int_equal(qpc_config_set(cfg, "log_level", "debug", QPC_CONFIG_SOURCE_ENV, err,
                                    sizeof(err)), 0);
    assert_string_equal(s->log_level, "error");
    /* a later flag replaces an earlier one */
    assert_int_equal(qpc_config_set(cfg, "log-level", "info", QPC_CONFIG_SOURCE_FLAG, err,
                                    sizeof(err)), 0);
    assert_string_equal(s->log_level, "info");
    qpc_config_free(cfg);
}

static void test_config_set_reports_unknown_option_with_suggestion(void **state)
{
    (void)state;
    char err[256] = "";
    struct qpc_config *cfg = new_cfg(SERVER);
    assert_int_equal(qpc_config_set(cfg, "--federaton-listen", "0.0.0.0:1",
                                    QPC_CONFIG_SOURCE_FLAG, err, sizeof(err)), QPC_ERR_CONFIG);
    assert_non_null(strstr(err, "unknown option 'federaton-listen'"));
    assert_non_null(strstr(err, "did you mean '--federation-listen'?"));
    assert_int_equal(qpc_config_set(cfg, "--queue-quota", "lots", QPC_CONFIG_SOURCE_FLAG, err,
                                    sizeof(err)), QPC_ERR_CONFIG);
    assert_non_null(strstr(err, "command line: '--queue-quota' expects a decimal integer"));
    /* dashes are a flag spelling only */
    assert_int_equal(qpc_config_set(cfg, "queue-quota", "5", QPC_CONFIG_SOURCE_ENV, err,
                                    sizeof(err)), QPC_ERR_CONFIG);
    qpc_config_free(cfg);
}

static void test_config_env_values_are_parsed_from_text(void **state)
{
    (void)state;
    static const struct { const char *text; bool want; } bools[] = {
        { "true", true }, { "TRUE", true }, { "1", true }, { "yes", true }, { "Yes", true },
        { "false", false }, { "0", false }, { "no", false }, { "NO", false },
    };
    char err[256] = "";
    struct qpc_config *cfg = new_cfg(SERVER);
    const struct server_settings *s = server_settings(cfg);
    for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
        const char *envp[] = { NULL, NULL };
        char var[64];
        snprintf(var, sizeof(var), "QPC_RELAY_ENABLED=%s", bools[i].text);
        envp[0] = var;
        assert_int_equal(qpc_config_load_env(cfg, envp, err, sizeof(err)), 0);
        assert_int_equal(s->relay_enabled, bools[i].want);
    }
    const char *bad_bool[] = { "QPC_RELAY_ENABLED=maybe", NULL };
    assert_int_equal(qpc_config_load_env(cfg, bad_bool, err, sizeof(err)), QPC_ERR_CONFIG);
    assert_non_null(strstr(err, "environment QPC_RELAY_ENABLED: 'relay_enabled' expects a boolean"));

    const char *lists[] = { "QPC_MDNS_INTERFACES= bat0 , wlan0,", "QPC_METRICS_LISTEN=",
                            "QPC_FEDERATION_PEERS=a.mesh=10.0.0.2:7001, b = [::1]:7001",
                            "QPC_QUEUE_QUOTA=1_000", NULL };
    assert_int_equal(qpc_config_load_env(cfg, lists, err, sizeof(err)), 0);
    assert_int_equal(s->mdns_interfaces.count, 2);
    assert_string_equal(s->mdns_interfaces.items[1], "wlan0");
    assert_string_equal(s->metrics_listen, "");
    assert_int_equal(s->federation_peers.count, 2);
    assert_string_equal(qpc_config_table_get(&s->federation_peers, "b"), "[::1]:7001");
    assert_int_equal(s->queue_quota, 1000);

    const char *bad_peer[] = { "QPC_FEDERATION_PEERS=a.mesh:7001", NULL };
    assert_int_equal(qpc_config_load_env(cfg, bad_peer, err, sizeof(err)), QPC_ERR_CONFIG);
    assert_non_null(strstr(err, "domain=host:port"));
    const char *dup_peer[] = { "QPC_FEDERATION_PEERS=a=h:1,A=h:2", NULL };
    assert_int_equal(qpc_config_load_env(cfg, dup_peer, err, sizeof(err)), QPC_ERR_CONFIG);
    assert_non_null(strstr(err, "given twice"));
    const char *empty_int[] = { "QPC_MAX_TTL=", NULL };
    assert_int_equal(qpc_config_load_env(cfg, empty_int, err, sizeof(err)), QPC_ERR_CONFIG);
    const char *ctl[] = { "QPC_DATA_DIR=/a\nb", NULL };
    assert_int_equal(qpc_config_load_env(cfg, ctl, err, sizeof(err)), QPC_ERR_CONFIG);
    assert_non_null(strstr(err, "control characters"));
    qpc_config_free(cfg);
}

static void test_config_env_reads_process_environment_when_no_envp(void **state)
{
    (void)state;
    char err[256] = "";
    struct qpc_config *cfg = new_cfg(SERVER);
    assert_int_equal(setenv("QPC_QUEUE_QUOTA", "42", 1), 0);
    int rc = qpc_config_load_env(cfg, NULL, err, sizeof(err));
    unsetenv("QPC_QUEUE_QUOTA");
    assert_int_equal(rc, 0);
    assert_int_equal(server_settings(cfg)->queue_quota, 42);
    assert_int_equal(qpc_config_source_of(cfg, "queue_quota"), QPC_CONFIG_SOURCE_ENV);
    qpc_config_free(cfg);
}

static void test_config_client_env_names_do_not_collide_with_server(void **state)
{
    (void)state;
    const char *envp[] = { "QPC_LISTEN=0.0.0.0:9", "QPC_DATA_DIR=/srv", "QPC_SERVER=n:7000",
                           "QPC_CLIENT_LISTEN=0.0.0.0:7005", "QPC_CLIENT_MAX_HOPS=4", NULL };
    char err[256] = "";
    struct qpc_config *cfg = new_cfg(CLIENT);
    assert_int_equal(qpc_config_load_env(cfg, envp, err, sizeof(err)), 0);
    const struct client_settings *c = client_settings(cfg);
    assert_string_equal(c->listen, "0.0.0.0:7005");
    assert_string_equal(c->data_dir, "");
    assert_string_equal(c->server, "n:7000");
    assert_int_equal(c->max_hops, 4);
    qpc_config_free(cfg);
}

static void test_config_arrays_span_lines_with_comments_and_trailing_comma(void **state)
{
    (void)state;
    static const char text[] =
        "mdns_interfaces = [   # the mesh links\n"
        "    \"bat0\",\n"
        "\n"
        "    \"wlan0\", # radio\n"
        "    \"eth1\",\n"
        "]\n"
        "max_ttl = 100\n";
    char err[256] = "";
    struct qpc_config *cfg = new_cfg(SERVER);
    assert_int_equal(load(cfg, text, err, sizeof(err)), 0);
    const struct server_settings *s = server_settings(cfg);
    assert_int_equal(s->mdns_interfaces.count, 3);
    assert_string_equal(s->mdns_interfaces.items[2], "eth1");
    assert_int_equal(s->max_ttl, 100);
    qpc_config_free(cfg);

    cfg = new_cfg(SERVER);
    assert_int_equal(load(cfg, "mdns_interfaces = []\nmdns_enabled = true\n", err, sizeof(err)), 0);
    assert_int_equal(server_settings(cfg)->mdns_interfaces.count, 0);
    qpc_config_free(cfg);
    /* the line of an error inside an array is the line of the bad item */
    expect_error(SERVER, "mdns_interfaces = [\n\"a\",\n\"b/c\"]\n", "t.toml:1:",
                 "interface name");
    expect_error(SERVER, "mdns_interfaces = [\n\"a\",\n,]\n", "t.toml:3:",
                 "arrays may only hold strings");
}

static void test_config_strings_decode_escapes(void **state)
{
    (void)state;
    static const char text[] =
        "data_dir = \"/tmp/a \\\"q\\\" b\\\\c\\td\\ne\\u00e9\\U0001F600\"\n"
        "federation_cert = \"caf\xc3\xa9.der\"\n";
    char err[256] = "";
    struct qpc_config *cfg = new_cfg(SERVER);
    assert_int_equal(load(cfg, text, err, sizeof(err)), 0);
    const struct server_settings *s = server_settings(cfg);
    assert_string_equal(s->data_dir, "/tmp/a \"q\" b\\c\td\ne\xc3\xa9\xf0\x9f\x98\x80");
    assert_string_equal(s->federation_cert, "caf\xc3\xa9.der");
    qpc_config_free(cfg);
}

static void test_config_integer_overflow_and_range_are_refused(void **state)
{
    (void)state;
    expect_error(SERVER, "\nqueue_quota = 9223372036854775808\n", "t.toml:2:",
                 "does not fit in 64 bits");
    expect_error(SERVER, "queue_quota = -9_223_372_036_854_775_809\n",
                 "does not fit in 64 bits", NULL);
    expect_error(SERVER, "queue_quota = -9223372036854775808\n",
                 "'queue_quota' = -9223372036854775808 is out of range", "use 1 to 10000000");
    expect_error(SERVER, "queue_quota = 9223372036854775807\n", "out of range", NULL);
    expect_error(SERVER, "max_ttl = 604801\n", "'max_ttl' = 604801 is out of range",
                 "use 1 to 604800 (SECONDS)");
    expect_error(CLIENT, "max_hops = 0\n", "'max_hops' = 0 is out of range", NULL);
    expect_error(CLIENT, "max_hops = -1\n", "out of range", NULL);

    char err[256] = "";
    struct qpc_config *cfg = new_cfg(SERVER);
    const char *envp[] = { "QPC_MAX_FRAME_SIZE=99999999999999999999", NULL };
    assert_int_equal(qpc_config_load_env(cfg, envp, err, sizeof(err)), QPC_ERR_CONFIG);
    assert_non_null(strstr(err, "environment QPC_MAX_FRAME_SIZE:"));
    assert_non_null(strstr(err, "does not fit in a 64-bit integer"));
    assert_int_equal(server_settings(cfg)->max_frame_size, 1048576);
    qpc_config_free(cfg);
}

static void test_config_missing_file_names_the_path(void **state)
{
    (void)state;
    char err[256] = "";
    struct qpc_config *cfg = new_cfg(SERVER);
    assert_int_equal(qpc_config_load_file(cfg, "/nonexistent/dir/qpc-server.toml", err,
                                          sizeof(err)), QPC_ERR_NOT_FOUND);
    assert_non_null(strstr(err, "'/nonexistent/dir/qpc-server.toml'"));
    assert_non_null(strstr(err, "No such file"));
    qpc_config_free(cfg);
}

static void test_config_file_errors_carry_the_path(void **state)
{
    (void)state;
    char path[] = "/tmp/qpc-config-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    static const char text[] = "max_ttl = 10\n\nrelay_enabled = 3\n";
    assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)(sizeof(text) - 1));
    close(fd);
    char err[512] = "", want[128];
    struct qpc_config *cfg = new_cfg(SERVER);
    int rc = qpc_config_load_file(cfg, path, err, sizeof(err));
    unlink(path);
    assert_int_equal(rc, QPC_ERR_CONFIG);
    snprintf(want, sizeof(want), "%s:3: 'relay_enabled' expects a boolean", path);
    assert_non_null(strstr(err, want));
    qpc_config_free(cfg);
}

static void test_config_federation_peers_table(void **state)
{
    (void)state;
    static const char text[] =
        "federation_enabled = false\n"
        "[federation_peers]   # who we talk to\n"
        "\"node2.mesh.local\" = \"10.0.0.2:7001\"\n"
        "node-3 = \"node3.example.org:7001\"\n"
        "\n";
    char err[256] = "";
    struct qpc_config *cfg = new_cfg(SERVER);
    assert_int_equal(load(cfg, text, err, sizeof(err)), 0);
    const struct server_settings *s = server_settings(cfg);
    assert_int_equal(s->federation_peers.count, 2);
    assert_string_equal(s->federation_peers.items[0].name, "node2.mesh.local");
    assert_string_equal(s->federation_peers.items[1].value, "node3.example.org:7001");
    qpc_config_free(cfg);

    expect_error(SERVER, "[federation_peers]\na = 7001\n", "t.toml:2:",
                 "expects an address string");
    expect_error(SERVER, "[federation_peers]\na = \"10.0.0.2\"\n", "t.toml:2:",
                 "port is missing");
    expect_error(SERVER, "[federation_peers]\n\"a b\" = \"h:1\"\n", "t.toml:2:",
                 "not a domain name");
    expect_error(SERVER, "[federation_peers]\na = \"h:1\"\nmax_ttl = \"h:2\"\n",
                 "t.toml:3: 'max_ttl' is a top-level key but appears inside [federation_peers]",
                 "move it above");
    expect_error(SERVER, "[federation_peers]\na.b = \"h:1\"\n", "t.toml:2:",
                 "dotted keys");
    expect_error(SERVER, "[federation_peers]\na = \"h:1 00ff\"\n", "t.toml:2:",
                 "after the address comes its key, 64 hex digits");
}

/* Key mode: a peer line carries its key; the whole line is kept as written. */
static void test_config_federation_peer_with_key_is_valid(void **state)
{
    (void)state;
    char err[512] = "";
    struct qpc_config *cfg = new_cfg(SERVER);
    static const char text[] =
        "federation_enabled = true\n[federation_peers]\n\"b.mesh\" = \"10.0.0.2:7001   "
        "00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff\"\n";
    assert_int_equal(load(cfg, text, err, sizeof(err)), 0);
    assert_int_equal(server_settings_validate(cfg, err, sizeof(err)), 0);
    assert_int_equal(server_settings_resolve(cfg, "/h", "x", err, sizeof(err)), 0);
    assert_string_equal(server_settings(cfg)->federation_trust, "key");
    assert_int_equal(server_settings(cfg)->peers.count, 0);
    assert_non_null(strstr(qpc_config_table_get(&server_settings(cfg)->federation_peers, "B.mesh"),
                           "10.0.0.2:7001 "));
    qpc_config_free(cfg);
    cfg = new_cfg(SERVER);
    assert_int_equal(load(cfg, "federation_ca = \"/c.der\"\n", err, sizeof(err)), 0);
    assert_int_equal(server_settings_resolve(cfg, "/h", "x", err, sizeof(err)), 0);
    assert_string_equal(server_settings(cfg)->federation_trust, "ca");
    qpc_config_free(cfg);
}

static void test_config_validate_checks_rules_across_keys(void **state)
{
    (void)state;
    static const struct { const char *text, *what; } cases[] = {
        { "default_ttl = 7200\nmax_ttl = 3600\n", "default_ttl (7200 s) is larger than max_ttl" },
        { "max_envelope_size = 2000000\n", "max_envelope_size (2000000) is larger than max_frame_size" },
        { "federation_enabled = true\nfederation_trust = \"ca\"\n",
          "federation_cert (QPC_FEDERATION_CERT) is empty" },
        { "federation_enabled = true\nfederation_trust = \"ca\"\nfederation_cert = \"c\"\n"
          "federation_key = \"k\"\n", "federation_ca (QPC_FEDERATION_CA) is empty" },
        { "federation_enabled = true\nfederation_cert = \"c\"\nfederation_key = \"k\"\n",
          "with pinned keys no certificate files are used" },
        { "federation_enabled = true\n[federation_peers]\nb = \"10.0.0.2:7001\"\n",
          "write \"b\" = \"10.0.0.2:7001 <its key>\"" },
        { "federation_enabled = true\nfederation_trust = \"ca\"\nfederation_cert = \"c\"\n"
          "federation_key = \"k\"\nfederation_ca = \"a\"\n[federation_peers]\nb = \"10.0.0.2:7001 "
          "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"\n",
          "write \"b\" = \"10.0.0.2:7001\"" },
        { "federation_enabled = true\nfederation_cert = \"c\"\nfederation_key = \"k\"\n"
          "federation_ca = \"a\"\nlisten = \"10.0.0.1:7001\"\n", "use the same port" },
        { "peers = [\"10.0.0.2:7001\"]\n", "peers is set but federation_enabled is false" },
        { "federation_enabled = true\npeers = [\"10.0.0.2\"]\n",
          "peers item \"10.0.0.2\" is not an address to dial" },
        { "federation_enabled = true\npeers = [\"10.0.0.2:0\"]\n",
          "peers item \"10.0.0.2:0\" is not an address to dial" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[512] = "";
        struct qpc_config *cfg = new_cfg(SERVER);
        assert_int_equal(load(cfg, cases[i].text, err, sizeof(err)), 0);
        assert_int_equal(server_settings_validate(cfg, err, sizeof(err)), QPC_ERR_CONFIG);
        if (strstr(err, cases[i].what) == NULL)
            fail_msg("case %zu: err \"%s\" lacks \"%s\"", i, err, cases[i].what);
        qpc_config_free(cfg);
    }
}

static void test_config_resolve_paths_fills_empty_defaults_only(void **state)
{
    (void)state;
    char err[256] = "";
    struct qpc_config *cfg = new_cfg(SERVER);
    assert_int_equal(server_settings_resolve(cfg, "/home/ana", "router7.lan", err, sizeof(err)), 0);
    const struct server_settings *s = server_settings(cfg);
    assert_string_equal(s->data_dir, "/home/ana/.local/share/quicprochat/server");
    assert_string_equal(s->federation_domain, "router7.mesh.local");
    qpc_config_free(cfg);

    cfg = new_cfg(SERVER);
    assert_int_equal(load(cfg, "data_dir = \"/srv/q\"\nfederation_domain = \"n.mesh\"\n", err,
                          sizeof(err)), 0);
    assert_int_equal(server_settings_resolve(cfg, NULL, NULL, err, sizeof(err)), 0);
    assert_string_equal(server_settings(cfg)->data_dir, "/srv/q");
    assert_string_equal(server_settings(cfg)->federation_domain, "n.mesh");
    qpc_config_free(cfg);

    cfg = new_cfg(SERVER);
    assert_int_equal(server_settings_resolve(cfg, NULL, "h", err, sizeof(err)), QPC_ERR_CONFIG);
    assert_non_null(strstr(err, "QPC_DATA_DIR"));
    assert_int_equal(server_settings_resolve(cfg, "/h", NULL, err, sizeof(err)), QPC_ERR_CONFIG);
    assert_non_null(strstr(err, "QPC_LOCAL_DOMAIN"));
    qpc_config_free(cfg);

    cfg = new_cfg(CLIENT);
    assert_int_equal(client_settings_resolve(cfg, "/home/ana", err, sizeof(err)), 0);
    assert_string_equal(client_settings(cfg)->data_dir, "/home/ana/.local/share/quicprochat");
    qpc_config_free(cfg);
}

/* print() writes a file this reader accepts and that yields the same settings. */
static void test_config_print_round_trips_with_origins(void **state)
{
    (void)state;
    char err[256] = "", *out = NULL;
    size_t outlen = 0;
    const char *envp[] = { "QPC_QUEUE_QUOTA=77", NULL };
    struct qpc_config *cfg = new_cfg(SERVER);
    assert_int_equal(load(cfg, full_server_file, err, sizeof(err)), 0);
    assert_int_equal(qpc_config_load_env(cfg, envp, err, sizeof(err)), 0);
    assert_int_equal(qpc_config_set(cfg, "data_dir", "/a \"b\"\\c\td", QPC_CONFIG_SOURCE_FLAG,
                                    err, sizeof(err)), 0);
    FILE *f = open_memstream(&out, &outlen);
    assert_non_null(f);
    assert_int_equal(qpc_config_print(cfg, f), 0);
    fclose(f);
    assert_non_null(strstr(out, "queue_quota = 77  # env QPC_QUEUE_QUOTA\n"));
    assert_non_null(strstr(out, "max_ttl = 7200  # file t.toml:21\n"));
    assert_non_null(strstr(out, "# flag --data-dir\n"));
    assert_non_null(strstr(out, "[federation_peers]  # file t.toml:26\n"));
    assert_non_null(strstr(out, "\"node2.mesh.local\" = \"10.0.0.2:7001\"\n"));

    struct qpc_config *again = new_cfg(SERVER);
    if (load(again, out, err, sizeof(err)) != 0)
        fail_msg("printed config does not parse: %s\n%s", err, out);
    const struct server_settings *a = server_settings(cfg), *b = server_settings(again);
    assert_string_equal(a->data_dir, b->data_dir);
    assert_string_equal(a->listen, b->listen);
    assert_int_equal(b->queue_quota, 77);
    assert_int_equal(a->mdns_interfaces.count, b->mdns_interfaces.count);
    assert_int_equal(b->federation_peers.count, 2);
    assert_string_equal(qpc_config_table_get(&b->federation_peers, "node3"), "[fe80::1%bat0]:7001");
    assert_int_equal(b->peers.count, 2);
    assert_string_equal(b->peers.items[0], "10.0.0.9:7001");
    qpc_config_free(again);
    qpc_config_free(cfg);
    free(out);
}

static void test_config_help_lists_every_key(void **state)
{
    (void)state;
    static const struct qpc_config_schema *const schemas[] = { SERVER, CLIENT };
    for (int kind = 0; kind < 2; kind++) {
        char *out = NULL;
        size_t outlen = 0, n = schemas[kind]->key_count;
        FILE *f = open_memstream(&out, &outlen);
        assert_non_null(f);
        assert_int_equal(qpc_config_print_help(schemas[kind], f), 0);
        fclose(f);
        assert_true(n >= 11);
        for (size_t i = 0; i < n; i++) {
            const struct qpc_config_key *info = &schemas[kind]->keys[i];
            char flag[64];
            snprintf(flag, sizeof(flag), "--%s", info->name);
            for (char *c = flag + 2; *c; c++)
                if (*c == '_')
                    *c = '-';
            assert_string_equal(info->flag, flag);
            assert_non_null(info->env);
            assert_non_null(strstr(out, info->flag));
            assert_non_null(strstr(out, info->env));
            assert_true(strlen(info->help) > 5);
        }
        free(out);
    }
}

/* The shipped example files hold exactly the defaults. */
static void test_config_example_files_hold_the_defaults(void **state)
{
    (void)state;
    static const struct { const char *file; const struct qpc_config_schema *kind; } examples[] = {
        { "qpc-server.toml.example", SERVER },
        { "qpc.toml.example", CLIENT },
    };
    const char *src = getenv("QPC_SRC");
    assert_non_null(src);   /* set by CTest to the source tree */
    for (size_t i = 0; i < 2; i++) {
        char path[1024], err[512] = "", *a = NULL, *b = NULL;
        size_t alen = 0, blen = 0;
        snprintf(path, sizeof(path), "%s/docs/%s", src, examples[i].file);
        struct qpc_config *ex = new_cfg(examples[i].kind), *def = new_cfg(examples[i].kind);
        if (qpc_config_load_file(ex, path, err, sizeof(err)) != 0)
            fail_msg("%s", err);
        FILE *fa = open_memstream(&a, &alen), *fb = open_memstream(&b, &blen);
        qpc_config_print(ex, fa);
        qpc_config_print(def, fb);
        fclose(fa);
        fclose(fb);
        /* compare values only: cut the "# origin" comment of each line */
        for (char *s = a; (s = strstr(s, "  # ")) != NULL; )
            memmove(s, strchr(s, '\n'), strlen(strchr(s, '\n')) + 1);
        for (char *s = b; (s = strstr(s, "  # ")) != NULL; )
            memmove(s, strchr(s, '\n'), strlen(strchr(s, '\n')) + 1);
        assert_string_equal(a, b);
        free(a);
        free(b);
        qpc_config_free(ex);
        qpc_config_free(def);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_defaults_follow_the_schema),
        cmocka_unit_test(test_config_client_static_peers),
        cmocka_unit_test(test_config_client_verify_threads_auto),
        cmocka_unit_test(test_config_reads_full_server_file),
        cmocka_unit_test(test_config_reads_client_file_with_crlf_and_bom),
        cmocka_unit_test(test_config_syntax_errors_name_their_line),
        cmocka_unit_test(test_config_refuses_nul_byte_with_its_line),
        cmocka_unit_test(test_config_unknown_key_suggests_nearest),
        cmocka_unit_test(test_config_wrong_type_names_expected_type),
        cmocka_unit_test(test_config_duplicate_key_names_both_lines),
        cmocka_unit_test(test_config_env_beats_file_in_either_order),
        cmocka_unit_test(test_config_flag_beats_env),
        cmocka_unit_test(test_config_set_reports_unknown_option_with_suggestion),
        cmocka_unit_test(test_config_env_values_are_parsed_from_text),
        cmocka_unit_test(test_config_env_reads_process_environment_when_no_envp),
        cmocka_unit_test(test_config_client_env_names_do_not_collide_with_server),
        cmocka_unit_test(test_config_arrays_span_lines_with_comments_and_trailing_comma),
        cmocka_unit_test(test_config_strings_decode_escapes),
        cmocka_unit_test(test_config_integer_overflow_and_range_are_refused),
        cmocka_unit_test(test_config_missing_file_names_the_path),
        cmocka_unit_test(test_config_file_errors_carry_the_path),
        cmocka_unit_test(test_config_federation_peers_table),
        cmocka_unit_test(test_config_validate_checks_rules_across_keys),
        cmocka_unit_test(test_config_federation_peer_with_key_is_valid),
        cmocka_unit_test(test_config_resolve_paths_fills_empty_defaults_only),
        cmocka_unit_test(test_config_print_round_trips_with_origins),
        cmocka_unit_test(test_config_help_lists_every_key),
        cmocka_unit_test(test_config_example_files_hold_the_defaults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
