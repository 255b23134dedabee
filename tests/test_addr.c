/*
 * test_addr.c: address text. The strict reader (settings, typed addresses) with the
 * message it gives, the shape check of stored addresses, DNS names, and the writer of
 * socket addresses.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>

#include "qpc/addr.h"
#include "qpc/error.h"

static void test_addr_parse_accepts_host_port_forms(void **state)
{
    (void)state;
    static const struct { const char *addr, *host; int port; } good[] = {
        { "0.0.0.0:7000", "0.0.0.0", 7000 }, { "[::]:0", "::", 0 },
        { "[fe80::1%eth0]:7001", "fe80::1%eth0", 7001 }, { "node1.mesh.local:65535", "node1.mesh.local", 65535 },
        { "localhost:1", "localhost", 1 },
    };
    static const char *const bad[] = {
        "", ":7000", "host:", "host", "::1:7000", "[::1]7000", "[::1:7000", "[zz]:1",
        "1.2.3.4:65536", "1.2.3.4:-1", "1.2.3:5", "bad host:1", "-a:1", "[fe80::1%]:1",
    };
    char host[64];
    uint16_t port;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(qpc_addr_parse(good[i].addr, host, sizeof(host), &port), 0);
        assert_string_equal(host, good[i].host);
        assert_int_equal(port, good[i].port);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (qpc_addr_parse(bad[i], host, sizeof(host), &port) != QPC_ERR_INVALID)
            fail_msg("accepted bad address \"%s\"", bad[i]);
    assert_int_equal(qpc_addr_parse("node1.mesh.local:1", host, 8, &port), QPC_ERR_INVALID);
    assert_int_equal(qpc_addr_parse(NULL, host, sizeof(host), &port), QPC_ERR_INVALID);
}

/* Each refusal says what to write instead; these sentences reach users unchanged. */
static void test_addr_check_says_what_is_wrong(void **state)
{
    (void)state;
    static const struct { const char *addr, *why; } cases[] = {
        { "", "it is empty" },
        { "[::1", "'[' has no matching ']'" },
        { "[::1]7000", "the port is missing after ']' (write [v6]:port)" },
        { "host", "the port is missing (write host:port)" },
        { "::1:7000", "an IPv6 address needs brackets, like [::1]:7000" },
        { ":7000", "the host is empty (use 0.0.0.0 or [::] for every address)" },
        { "[]:7000", "the host is empty (use 0.0.0.0 or [::] for every address)" },
        { "host:", "the port is empty" },
        { "host:70a", "the port must be a decimal number" },
        { "host:70000", "the port is above 65535" },
        { "[fe80::1%]:1", "the IPv6 zone after '%' is empty" },
        { "[zz]:1", "the text in [...] is not an IPv6 address" },
        { "300.1.1.1:5", "the host is not a valid IPv4 address" },
        { "a..b:5", "the host is not a valid name or address" },
    };
    char host[256];
    uint16_t port = 1;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *why = qpc_addr_check(cases[i].addr, host, sizeof(host), &port);
        if (why == NULL || strcmp(why, cases[i].why) != 0)
            fail_msg("\"%s\": got \"%s\", want \"%s\"", cases[i].addr, why ? why : "(ok)",
                     cases[i].why);
    }
    /* Port 0 is an address ("any port"); whether it may be used is the caller's call. */
    assert_null(qpc_addr_check("0.0.0.0:0", host, sizeof(host), &port));
    assert_int_equal(port, 0);
    /* The host is not needed to check: NULL buffers are fine. */
    assert_null(qpc_addr_check("[::1]:7000", NULL, 0, NULL));
    /* A host longer than the buffer, or than any host may be, is too long. */
    assert_string_equal(qpc_addr_check("abcdefgh:1", host, 8, &port), "the host is too long");
    char big[QPC_ADDR_HOST_MAX + 8];
    memset(big, 'a', sizeof(big));
    memcpy(big + QPC_ADDR_HOST_MAX + 1, ":1", 3);
    assert_string_equal(qpc_addr_check(big, NULL, 0, NULL), "the host is too long");
}

static void test_addr_check_name_follows_dns_rules(void **state)
{
    (void)state;
    char long_label[80], long_name[300];
    assert_null(qpc_addr_check_name("node1.mesh.local"));
    assert_null(qpc_addr_check_name("a"));
    assert_null(qpc_addr_check_name("under_score.x-y"));
    assert_string_equal(qpc_addr_check_name(""), "it is empty");
    assert_string_equal(qpc_addr_check_name("a..b"),
                        "it has an empty label (two dots, or a dot at an end)");
    assert_string_equal(qpc_addr_check_name("a."),
                        "it has an empty label (two dots, or a dot at an end)");
    assert_string_equal(qpc_addr_check_name("-a.b"), "a label starts or ends with '-'");
    assert_string_equal(qpc_addr_check_name("a.b-"), "a label starts or ends with '-'");
    assert_string_equal(qpc_addr_check_name("a b"),
                        "it may hold only letters, digits, '-', '_' and '.'");
    memset(long_label, 'a', 64);
    long_label[64] = '\0';
    assert_string_equal(qpc_addr_check_name(long_label), "a label is longer than 63 characters");
    for (size_t i = 0; i < 254; i++)
        long_name[i] = i % 2 ? '.' : 'a';
    long_name[254] = '\0';
    assert_string_equal(qpc_addr_check_name(long_name), "it is longer than 253 characters");
}

/* The shape check used for stored addresses: looser about the host, strict about form. */
static void test_addr_valid_checks_the_shape_of_stored_addresses(void **state)
{
    static const char *good[] = {"192.168.1.42:7000", "node1.mesh.local:7001", "[::1]:7000",
                                 "[fe80::1%eth0]:1", "a:65535"};
    static const char *bad[] = {"", "host", "host:", ":7000", "host:0", "host:65536",
                                "host:7000x", "host:-1", "::1:7000", "[::1]7000", "[::1:7000",
                                "[]:7000", "ho st:1", "host:123456", "h\x01:1", "h\xc3\xa9:1",
                                "]a[:1"};
    char longest[QPC_ADDRESS_MAX + 2];

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!qpc_addr_valid(good[i]))
            fail_msg("refused good address '%s'", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (qpc_addr_valid(bad[i]))
            fail_msg("accepted bad address '%s'", bad[i]);
    assert_false(qpc_addr_valid(NULL));
    memset(longest, 'h', sizeof(longest));
    memcpy(longest + QPC_ADDRESS_MAX - 2, ":1", 3);
    assert_true(qpc_addr_valid(longest));
    memset(longest, 'h', sizeof(longest));
    memcpy(longest + QPC_ADDRESS_MAX - 1, ":1", 3);
    assert_false(qpc_addr_valid(longest));
    /* Hosts are not interpreted: a name the strict reader refuses still loads. */
    assert_true(qpc_addr_valid("300.1.1.1:7000"));
    assert_false(qpc_addr_valid("[a[b]:1"));
    assert_false(qpc_addr_valid("host:007000"));   /* more than 5 port digits */
}

static void test_addr_format_writes_ip_port(void **state)
{
    struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(7000) };
    struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_port = htons(65535) };
    struct sockaddr un = { .sa_family = AF_UNIX };
    char buf[QPC_ADDR_TEXT_MAX];

    (void)state;
    inet_pton(AF_INET, "192.0.2.7", &in.sin_addr);
    assert_int_equal(qpc_addr_format((struct sockaddr *)&in, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "192.0.2.7:7000");

    inet_pton(AF_INET6, "2001:db8::1", &in6.sin6_addr);
    in6.sin6_scope_id = 3;   /* not written: the text is what peers are told, not a zone */
    assert_int_equal(qpc_addr_format((struct sockaddr *)&in6, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "[2001:db8::1]:65535");

    /* A dual-stack socket sees an IPv4 peer as ::ffff:a.b.c.d; it is dialled as IPv4. */
    inet_pton(AF_INET6, "::ffff:10.0.0.2", &in6.sin6_addr);
    in6.sin6_port = htons(0);
    assert_int_equal(qpc_addr_format((struct sockaddr *)&in6, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "10.0.0.2:0");

    /* The longest text fits QPC_ADDR_TEXT_MAX, and what is written parses back. */
    inet_pton(AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", &in6.sin6_addr);
    in6.sin6_port = htons(65535);
    assert_int_equal(qpc_addr_format((struct sockaddr *)&in6, buf, sizeof(buf)), 0);
    assert_true(strlen(buf) < QPC_ADDR_TEXT_MAX);
    assert_true(qpc_addr_valid(buf));
    assert_null(qpc_addr_check(buf, NULL, 0, NULL));

    assert_int_equal(qpc_addr_format(&un, buf, sizeof(buf)), QPC_ERR_INVALID);
    assert_string_equal(buf, "?");
    assert_int_equal(qpc_addr_format(NULL, buf, sizeof(buf)), QPC_ERR_INVALID);
    assert_string_equal(buf, "?");
    assert_int_equal(qpc_addr_format((struct sockaddr *)&in, buf, 8), QPC_ERR_TOO_LARGE);
    assert_int_equal(strlen(buf), 7);
}

static void test_addr_is_numeric_only_for_literal_hosts_with_a_port(void **state)
{
    (void)state;
    assert_true(qpc_addr_is_numeric("10.0.0.1:7000"));
    assert_true(qpc_addr_is_numeric("[fd00::1]:7000"));
    assert_false(qpc_addr_is_numeric("node.mesh.local:7000"));   /* a name */
    assert_false(qpc_addr_is_numeric("10.0.0.1:0"));             /* no port */
    assert_false(qpc_addr_is_numeric("10.0.0.1"));
    assert_false(qpc_addr_is_numeric("999.0.0.1:7000"));
    assert_false(qpc_addr_is_numeric(NULL));
}

static void test_addr_resolve_converts_literals_and_refuses_bad_text(void **state)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    char back[QPC_ADDR_TEXT_MAX];

    (void)state;
    assert_int_equal(qpc_addr_resolve("10.1.2.3:7001", &ss, &len), 0);
    assert_int_equal(len, sizeof(struct sockaddr_in));
    assert_int_equal(qpc_addr_format((struct sockaddr *)&ss, back, sizeof(back)), 0);
    assert_string_equal(back, "10.1.2.3:7001");
    assert_int_equal(qpc_addr_resolve("[fd00::2]:7000", &ss, &len), 0);
    assert_int_equal(qpc_addr_format((struct sockaddr *)&ss, back, sizeof(back)), 0);
    assert_string_equal(back, "[fd00::2]:7000");
    assert_int_equal(qpc_addr_resolve("10.1.2.3:0", &ss, &len), QPC_ERR_INVALID);
    assert_int_equal(qpc_addr_resolve("no port", &ss, &len), QPC_ERR_INVALID);
    assert_int_equal(qpc_addr_resolve(NULL, &ss, &len), QPC_ERR_INVALID);
    /* A name is never looked up here (it would block the loop): qpc_resolve_start is. */
    assert_int_equal(qpc_addr_resolve("localhost:7000", &ss, &len), QPC_ERR_AGAIN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr_parse_accepts_host_port_forms),
        cmocka_unit_test(test_addr_check_says_what_is_wrong),
        cmocka_unit_test(test_addr_check_name_follows_dns_rules),
        cmocka_unit_test(test_addr_valid_checks_the_shape_of_stored_addresses),
        cmocka_unit_test(test_addr_format_writes_ip_port),
        cmocka_unit_test(test_addr_is_numeric_only_for_literal_hosts_with_a_port),
        cmocka_unit_test(test_addr_resolve_converts_literals_and_refuses_bad_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
