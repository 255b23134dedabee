/*
 * test_toml.c: the TOML-subset reader on its own: what it reports to its callbacks and
 * in which order, how it refuses what the subset lacks, and with which line.
 * Buffers are named "t.toml", so every message starts with "t.toml:LINE:".
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "qpc/error.h"
#include "qpc/toml.h"

/* Every event as one line of text, e.g. "value [peers] a:2-2 string=h:1". */
struct record {
    char log[8192];
    size_t used;
    const char *refuse_key;      /* key callback refuses this key */
    const char *refuse_value;    /* value callback refuses this key */
    bool take;                   /* value callback takes key and value */
    char *taken[64];
    size_t ntaken;
};

__attribute__((format(printf, 2, 3)))
static void logf_(struct record *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    r->used += (size_t)vsnprintf(r->log + r->used, sizeof(r->log) - r->used, fmt, ap);
    va_end(ap);
}

static int on_table(void *ctx, const char *name, int line, char *err, size_t errlen)
{
    logf_(ctx, "table %s:%d\n", name, line);
    return 0;
}

static int on_key(void *ctx, const char *table, const char *key, int line, char *err,
                  size_t errlen)
{
    struct record *r = ctx;
    logf_(r, "key [%s] %s:%d\n", table ? table : "", key, line);
    if (r->refuse_key != NULL && strcmp(key, r->refuse_key) == 0) {
        snprintf(err, errlen, "t.toml:%d: no %s here", line, key);
        return QPC_ERR_CONFIG;
    }
    return 0;
}

static int on_value(void *ctx, const char *table, char **key, struct qpc_toml_value *v,
                    int line, int end_line, char *err, size_t errlen)
{
    struct record *r = ctx;
    logf_(r, "value [%s] %s:%d-%d ", table ? table : "", *key, line, end_line);
    switch (v->type) {
    case QPC_TOML_STRING: logf_(r, "string=%s\n", v->string); break;
    case QPC_TOML_INTEGER: logf_(r, "integer=%lld\n", (long long)v->integer); break;
    case QPC_TOML_BOOLEAN: logf_(r, "boolean=%s\n", v->boolean ? "true" : "false"); break;
    case QPC_TOML_ARRAY:
        logf_(r, "array=");
        for (size_t i = 0; i < v->count; i++)
            logf_(r, "%s%s", i ? "|" : "", v->items[i]);
        logf_(r, "\n");
        break;
    }
    if (r->refuse_value != NULL && strcmp(*key, r->refuse_value) == 0) {
        snprintf(err, errlen, "t.toml:%d: bad %s", line, *key);
        return QPC_ERR_INVALID;
    }
    if (r->take && r->ntaken + 2 <= 64) {
        r->taken[r->ntaken++] = *key;
        *key = NULL;
        if (v->type == QPC_TOML_STRING) {
            r->taken[r->ntaken++] = v->string;
            v->string = NULL;
        }
    }
    return 0;
}

static const struct qpc_toml_handler handler = { on_table, on_key, on_value };

static int parse(struct record *r, const char *text, size_t len, char *err, size_t errlen)
{
    return qpc_toml_parse("t.toml", text, len, &handler, r, err, errlen);
}

static void test_toml_reports_tables_keys_and_values_in_file_order(void **state)
{
    static const char text[] =
        "\xef\xbb\xbf# a comment\r\n"
        "name = \"caf\\u00e9 \\\"q\\\" \\\\ \\t\\U0001F600\"  # trailing\n"
        "\"quoted key\" = -9_223_372_036_854_775_808\n"
        "on = true\n"
        "off = false\n"
        "list = [   # spans lines\n"
        "  \"a\",\n"
        "\n"
        "  \"b\", # b\n"
        "]\n"
        "empty = []\n"
        "\n"
        "[peers]\n"
        "node-2 = \"h:1\"\n"
        "[more]\n";
    struct record r = { 0 };
    char err[256] = "";
    (void)state;
    assert_int_equal(parse(&r, text, sizeof(text) - 1, err, sizeof(err)), 0);
    assert_string_equal(err, "");
    assert_string_equal(r.log,
        "key [] name:2\n"
        "value [] name:2-2 string=caf\xc3\xa9 \"q\" \\ \t\xf0\x9f\x98\x80\n"
        "key [] quoted key:3\n"
        "value [] quoted key:3-3 integer=-9223372036854775808\n"
        "key [] on:4\n"
        "value [] on:4-4 boolean=true\n"
        "key [] off:5\n"
        "value [] off:5-5 boolean=false\n"
        "key [] list:6\n"
        "value [] list:6-10 array=a|b\n"
        "key [] empty:11\n"
        "value [] empty:11-11 array=\n"
        "table peers:13\n"
        "key [peers] node-2:14\n"
        "value [peers] node-2:14-14 string=h:1\n"
        "table more:15\n");
}

/* Meaning is the caller's: a key or table given twice is reported twice. */
static void test_toml_leaves_duplicates_to_the_caller(void **state)
{
    static const char text[] = "a = 1\na = 2\n[t]\n[t]\n";
    struct record r = { 0 };
    char err[128];
    (void)state;
    assert_int_equal(parse(&r, text, sizeof(text) - 1, err, sizeof(err)), 0);
    assert_string_equal(r.log, "key [] a:1\nvalue [] a:1-1 integer=1\n"
                               "key [] a:2\nvalue [] a:2-2 integer=2\n"
                               "table t:3\ntable t:4\n");
}

/* A refusal stops the walk; the callback's code and message come back unchanged. */
static void test_toml_callback_refusal_stops_with_its_message(void **state)
{
    struct record r = { .refuse_key = "b" };
    char err[128] = "";
    (void)state;
    /* the key is refused before its broken value is read */
    assert_int_equal(parse(&r, "a = 1\nb = nonsense\nc = 3\n", 24, err, sizeof(err)),
                     QPC_ERR_CONFIG);
    assert_string_equal(err, "t.toml:2: no b here");
    assert_null(strstr(r.log, "c:"));

    struct record r2 = { .refuse_value = "a" };
    assert_int_equal(parse(&r2, "a = [\n\"x\"]\nb = 2\n", 17, err, sizeof(err)), QPC_ERR_INVALID);
    assert_string_equal(err, "t.toml:1: bad a");
    assert_null(strstr(r2.log, "b:"));
}

/* A callback may keep the key and string it is given (ASan checks nothing leaks). */
static void test_toml_callback_may_take_key_and_value(void **state)
{
    struct record r = { .take = true };
    char err[128];
    (void)state;
    assert_int_equal(parse(&r, "a = \"x\"\nb = [\"y\"]\n", 18, err, sizeof(err)), 0);
    assert_int_equal(r.ntaken, 3);
    assert_string_equal(r.taken[0], "a");
    assert_string_equal(r.taken[1], "x");
    assert_string_equal(r.taken[2], "b");
    for (size_t i = 0; i < r.ntaken; i++)
        free(r.taken[i]);
}

/* Each syntax problem is reported with the line it is on and what to write instead. */
static void test_toml_syntax_errors_name_their_line(void **state)
{
    static const struct { const char *text, *want; } cases[] = {
        { "a = \"b\"\nlisten \"0.0.0.0:1\"\n", "t.toml:2: expected '=' after key 'listen', found '\"'" },
        { "\n\nlisten = \"0.0.0.0:1\n", "t.toml:3: string is not closed: add '\"' before the end of the line" },
        { "listen = \"0.0.0.0:1", "t.toml:1: string is not closed" },
        { "d = \"C:\\dir\"\n", "t.toml:1: unknown escape '\\d' in string" },
        { "d = \"a\\u00\"\n", "t.toml:1: \\u needs exactly 4 hex digits" },
        { "d = \"a\\u0000\"\n", "t.toml:1: \\u0000 (NUL) is not allowed in a string" },
        { "d = \"a\\uD800\"\n", "t.toml:1: \\uD800 is not a Unicode scalar value" },
        { "d = \"a\\U00110000\"\n", "t.toml:1: \\U00110000 is not a Unicode scalar value" },
        { "d = \"a\tb\x01\"\n", "t.toml:1: control character 0x01 in a string; write it as \\u0001" },
        { "d = \"\"\"x\"\"\"\n", "t.toml:1: multi-line strings" },
        { "d = 'x'\n", "t.toml:1: literal strings '...' are not supported" },
        { "l = [\"a\",\n\"b\"\n\n", "t.toml:4: array opened on line 1 is not closed with ']'" },
        { "l = [\"a\"\n \"b\"]\n", "t.toml:2: expected ',' or ']' in array, found '\"'" },
        { "l = [\"a\",\n 7]\n", "t.toml:2: arrays may only hold strings in double quotes; found '7'" },
        { "l = [[\"a\"]]\n", "t.toml:1: arrays may only hold strings" },
        { "#\n[peers\n", "t.toml:2: expected ']' to close the table header [peers, found end of line" },
        { "[[peers]]\n", "t.toml:1: arrays of tables [[...]] are not supported" },
        { "\n\nfederation.listen = \"x\"\n", "t.toml:3: dotted keys ('federation.x') are not supported" },
        { "[a.b]\n", "t.toml:1: dotted keys" },
        { "t = 1.5\n", "t.toml:1: floating-point numbers are not supported ('1.5')" },
        { "t = 1e3\n", "t.toml:1: floating-point" },
        { "t = 0x10\n", "t.toml:1: only decimal integers are supported, not '0x10'" },
        { "t = 0100\n", "t.toml:1: '0100' is not a valid integer" },
        { "t = 1__0\n", "t.toml:1: '1__0' is not a valid integer (no leading zeros; '_' only between digits)" },
        { "t = 10_\n", "t.toml:1: '10_' is not a valid integer" },
        { "t = 9223372036854775808\n", "t.toml:1: integer 9223372036854775808 does not fit in 64 bits" },
        { "l = 0.0.0.0:7000\n", "t.toml:1: '0.0.0.0:7000' is not a value; if it is a string, put it in double quotes" },
        { "b = True\n", "t.toml:1: booleans are written in lower case: true or false" },
        { "b =\n", "t.toml:1: expected a value after '=', found end of line" },
        { "b = { a = 1 }\n", "t.toml:1: inline tables {...} are not supported; use a [table] header" },
        { "t = 10 20\n", "t.toml:1: unexpected '2' after a value; put one setting per line" },
        { "\n\n\nt = 10 # ok\nq = 5 x\n", "t.toml:5: unexpected 'x' after a value" },
        { "t = 10\rq = 5\n", "t.toml:1: carriage return not followed by a line feed" },
        { "# fine\n= 5\n", "t.toml:2: expected a key, found '='" },
        { "\"\" = 5\n", "t.toml:1: empty quoted key \"\"" },
        { "'k' = \"x:1\"\n", "t.toml:1: literal-quoted keys '...' are not supported" },
        { "# comment with a \x01 in it\n", "t.toml:1: control character 0x01 in a comment" },
        { "a = 1\n\n\xff\n", "t.toml:3: invalid UTF-8 (byte 0xff); save the file as UTF-8" },
        { "# over-long \xc0\xaf\n", "t.toml:1: invalid UTF-8 (byte 0xc0)" },
        { "[peers] x\n", "t.toml:1: unexpected 'x' after a table header" },
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct record r = { 0 };
        char err[256] = "";
        int rc = parse(&r, cases[i].text, strlen(cases[i].text), err, sizeof(err));
        if (rc != QPC_ERR_CONFIG || strncmp(err, cases[i].want, strlen(cases[i].want)) != 0)
            fail_msg("case %zu: rc=%d err=\"%s\"\nwanted \"%s...\"", i, rc, err, cases[i].want);
    }
}

static void test_toml_refuses_nul_and_oversized_buffers(void **state)
{
    static const char text[] = "a = 10\nb = 5\0\n";
    struct record r = { 0 };
    char err[256] = "";
    size_t big_len = QPC_TOML_MAX_BYTES + 1;
    char *big = malloc(big_len);
    (void)state;
    assert_int_equal(parse(&r, text, sizeof(text) - 1, err, sizeof(err)), QPC_ERR_CONFIG);
    assert_string_equal(err, "t.toml:2: NUL byte in the file; is it a text file?");
    assert_string_equal(r.log, "");   /* refused before anything is reported */
    assert_non_null(big);
    memset(big, '\n', big_len);
    assert_int_equal(parse(&r, big, big_len, err, sizeof(err)), QPC_ERR_CONFIG);
    assert_string_equal(err, "t.toml:1: file is larger than 1048576 bytes");
    assert_int_equal(parse(&r, big, big_len - 1, err, sizeof(err)), 0);
    free(big);
    /* Limits on strings, keys and arrays hold too. */
    char line[QPC_TOML_STRING_MAX + 16];
    int n = snprintf(line, sizeof(line), "s = \"");
    memset(line + n, 'x', QPC_TOML_STRING_MAX + 1);
    memcpy(line + n + QPC_TOML_STRING_MAX + 1, "\"\n", 3);
    assert_int_equal(parse(&r, line, strlen(line), err, sizeof(err)), QPC_ERR_CONFIG);
    assert_non_null(strstr(err, "string is longer than 4096 bytes"));
    /* No buffer for the message is fine. */
    assert_int_equal(parse(&r, "x = ", 4, NULL, 0), QPC_ERR_CONFIG);
}

static void test_toml_parse_integer_follows_the_file_syntax(void **state)
{
    int64_t v = 0;
    (void)state;
    assert_int_equal(qpc_toml_parse_integer("1_000", 5, &v), 0);
    assert_int_equal(v, 1000);
    assert_int_equal(qpc_toml_parse_integer("+7", 2, &v), 0);
    assert_int_equal(v, 7);
    assert_int_equal(qpc_toml_parse_integer("0", 1, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(qpc_toml_parse_integer("9223372036854775807", 19, &v), 0);
    assert_true(v == INT64_MAX);
    assert_int_equal(qpc_toml_parse_integer("-9223372036854775808", 20, &v), 0);
    assert_true(v == INT64_MIN);
    assert_int_equal(qpc_toml_parse_integer("9223372036854775808", 19, &v), QPC_ERR_TOO_LARGE);
    assert_int_equal(qpc_toml_parse_integer("-9223372036854775809", 20, &v), QPC_ERR_TOO_LARGE);
    static const char *const bad[] = { "", "-", "01", "0x1", "1__0", "_1", "1_", "1.0", "1e3", " 1" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (qpc_toml_parse_integer(bad[i], strlen(bad[i]), &v) != QPC_ERR_INVALID)
            fail_msg("accepted \"%s\"", bad[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_toml_reports_tables_keys_and_values_in_file_order),
        cmocka_unit_test(test_toml_leaves_duplicates_to_the_caller),
        cmocka_unit_test(test_toml_callback_refusal_stops_with_its_message),
        cmocka_unit_test(test_toml_callback_may_take_key_and_value),
        cmocka_unit_test(test_toml_syntax_errors_name_their_line),
        cmocka_unit_test(test_toml_refuses_nul_and_oversized_buffers),
        cmocka_unit_test(test_toml_parse_integer_follows_the_file_syntax),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
