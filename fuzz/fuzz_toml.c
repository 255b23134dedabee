/*
 * fuzz_toml.c: the TOML-subset reader on arbitrary bytes.
 *
 * Whatever the input, the reader must return without a crash or leak, every string it
 * reports must be valid UTF-8 without NUL, lines must only grow, and a refusal must
 * come with a "fuzz.toml:LINE: " message. The handler keeps every other key and value
 * it is given, so both ownership paths (taken, left to the reader) are exercised.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qpc/error.h"
#include "qpc/toml.h"
#include "qpc/utf8.h"

struct seen {
    int last_line;
    unsigned events;
};

static void check_text(const char *s)
{
    if (s == NULL || !qpc_utf8_valid(s, strlen(s)))
        abort();
}

static void check_line(struct seen *s, int line)
{
    if (line < 1 || line < s->last_line)
        abort();
    s->last_line = line;
    s->events++;
}

static int on_table(void *ctx, const char *name, int line, char *err, size_t errlen)
{
    check_text(name);
    check_line(ctx, line);
    return 0;
}

static int on_key(void *ctx, const char *table, const char *key, int line, char *err,
                  size_t errlen)
{
    if (table != NULL)
        check_text(table);
    check_text(key);
    check_line(ctx, line);
    return 0;
}

static int on_value(void *ctx, const char *table, char **key, struct qpc_toml_value *v,
                    int line, int end_line, char *err, size_t errlen)
{
    struct seen *s = ctx;
    check_line(s, line);
    if (end_line < line)
        abort();
    s->last_line = end_line;
    if (v->type == QPC_TOML_STRING)
        check_text(v->string);
    for (size_t i = 0; i < v->count; i++)
        check_text(v->items[i]);
    if (s->events % 2) {   /* take this one, as a caller that stores values does */
        free(*key);
        *key = NULL;
        qpc_toml_value_free(v);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct qpc_toml_handler h = { on_table, on_key, on_value };
    struct seen s = { 0 };
    char err[256];
    int rc = qpc_toml_parse("fuzz.toml", (const char *)data, size, &h, &s, err, sizeof(err));
    if (rc != 0 && (rc != QPC_ERR_CONFIG || strncmp(err, "fuzz.toml:", 10) != 0))
        abort();
    return 0;
}
