/*
 * fuzz_config.c: the config reader on arbitrary bytes.
 *
 * The first byte picks the schema (server or client) and whether the rest is a whole
 * file or the text value of one key given to qpc_config_set (second byte picks the key).
 * A file that is accepted must print to a file that is accepted again with the same
 * printout: print() and the reader agree on the syntax, so --check-config output can
 * be used as a config file. Anything else must be refused without a crash or a leak.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qpc/config.h"
#include "qpc/error.h"

static char *print_to_string(const struct qpc_config *cfg)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (f == NULL)
        abort();
    qpc_config_print(cfg, f);
    fclose(f);
    return out;
}

static void fuzz_file(enum qpc_config_kind kind, const uint8_t *data, size_t size)
{
    struct qpc_config *cfg = NULL, *again = NULL;
    char err[256], *first = NULL, *second = NULL;
    if (qpc_config_new(&cfg, kind) != 0)
        abort();
    if (qpc_config_load_buffer(cfg, "fuzz.toml", (const char *)data, size, err, sizeof(err)) == 0) {
        qpc_config_validate(cfg, err, sizeof(err));
        first = print_to_string(cfg);
        if (qpc_config_new(&again, kind) != 0)
            abort();
        if (qpc_config_load_buffer(again, "fuzz.toml", first, strlen(first), err, sizeof(err)) != 0) {
            fprintf(stderr, "printed config refused: %s\n%s\n", err, first);
            abort();
        }
        second = print_to_string(again);
        /* origins differ (file line numbers), so compare the setting lines' values only */
        for (char *s = first; (s = strstr(s, "  # ")) != NULL; )
            memmove(s, strchr(s, '\n'), strlen(strchr(s, '\n')) + 1);
        for (char *s = second; (s = strstr(s, "  # ")) != NULL; )
            memmove(s, strchr(s, '\n'), strlen(strchr(s, '\n')) + 1);
        if (strcmp(first, second) != 0)
            abort();
        if (qpc_config_resolve_paths(cfg, "/home/fuzz", "fuzzhost", err, sizeof(err)) != 0)
            abort();
    }
    free(first);
    free(second);
    qpc_config_free(again);
    qpc_config_free(cfg);
}

static void fuzz_set(enum qpc_config_kind kind, uint8_t which, const uint8_t *data, size_t size)
{
    struct qpc_config *cfg = NULL;
    struct qpc_config_key_info info;
    char err[256];
    char *text = malloc(size + 1);
    if (text == NULL || qpc_config_new(&cfg, kind) != 0)
        abort();
    memcpy(text, data, size);
    text[size] = '\0';
    qpc_config_key_at(kind, which % qpc_config_key_count(kind), &info);
    qpc_config_set(cfg, info.flag, text, QPC_CONFIG_SOURCE_FLAG, err, sizeof(err));
    qpc_config_set(cfg, text, "1", QPC_CONFIG_SOURCE_ENV, err, sizeof(err));
    char *out = print_to_string(cfg);
    free(out);
    qpc_config_free(cfg);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    enum qpc_config_kind kind = (data[0] & 1) ? QPC_CONFIG_CLIENT : QPC_CONFIG_SERVER;
    if (data[0] & 2)
        fuzz_set(kind, data[1], data + 2, size - 2);
    else
        fuzz_file(kind, data + 1, size - 1);
    return 0;
}
