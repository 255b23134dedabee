/*
 * fuzz_config.c: the configuration engine on arbitrary bytes, through a schema made up
 * here that has a key of every type and every flag.
 *
 * The first byte says whether the rest is a whole file or the text value of one key
 * given to qpc_config_set (the second byte picks the key). A file that is accepted must
 * print to a file that is accepted again with the same printout: print() and the reader
 * agree on the syntax, so --check-config output can be used as a config file. Anything
 * else must be refused without a crash or a leak.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qpc/config.h"
#include "qpc/error.h"

struct fuzz_values {
    char *text, *domain, *listen, *dial, *level;
    int64_t count;
    bool flag;
    struct qpc_config_strings words, ifaces;
    struct qpc_config_table peers;
};

static const char *const levels[] = { "low", "mid", "high", NULL };
static const struct qpc_config_table_spec peer_spec = {
    .noun = "peer", .nouns = "peers", .short_noun = "peer", .name_word = "name",
    .example = "10.0.0.1:1", .max_entries = 64,
};

#define FV(f) offsetof(struct fuzz_values, f)
static const struct qpc_config_key fuzz_keys[] = {
    { .name = "text", .flag = "--text", .type = QPC_CONFIG_STRING, .env = "F_TEXT",
      .def = "x", .offset = FV(text), .metavar = "T", .help = "any text" },
    { .name = "domain", .flag = "--domain", .type = QPC_CONFIG_STRING, .env = "F_DOMAIN",
      .def = "", .offset = FV(domain), .flags = QPC_CONFIG_HOSTNAME | QPC_CONFIG_EMPTY_OK,
      .metavar = "D", .help = "a DNS name" },
    { .name = "listen", .flag = "--listen", .type = QPC_CONFIG_ADDR, .env = "F_LISTEN",
      .def = "0.0.0.0:0", .offset = FV(listen), .flags = QPC_CONFIG_PORT0, .metavar = "A",
      .help = "where to listen" },
    { .name = "dial", .flag = "--dial", .type = QPC_CONFIG_ADDR, .env = "F_DIAL", .def = "",
      .offset = FV(dial), .flags = QPC_CONFIG_EMPTY_OK, .metavar = "A", .help = "whom to dial" },
    { .name = "level", .flag = "--level", .type = QPC_CONFIG_ENUM, .env = "F_LEVEL",
      .def = "mid", .offset = FV(level), .choices = levels, .metavar = "L", .help = "a choice" },
    { .name = "count", .flag = "--count", .type = QPC_CONFIG_INT, .env = "F_COUNT",
      .def = "-5", .offset = FV(count), .min = -1000, .max = INT64_MAX, .metavar = "N",
      .help = "a number" },
    { .name = "flag", .flag = "--flag", .type = QPC_CONFIG_BOOL, .env = NULL, .def = "true",
      .offset = FV(flag), .metavar = "B", .help = "a boolean without a variable" },
    { .name = "words", .flag = "--words", .type = QPC_CONFIG_LIST, .env = "F_WORDS",
      .def = "a,b", .offset = FV(words), .metavar = "W,...", .help = "a list" },
    { .name = "ifaces", .flag = "--ifaces", .type = QPC_CONFIG_LIST, .env = "F_IFACES",
      .def = "", .offset = FV(ifaces), .flags = QPC_CONFIG_IFNAME, .metavar = "IF,...",
      .help = "interfaces" },
    { .name = "peers", .flag = "--peers", .type = QPC_CONFIG_TABLE, .env = "F_PEERS",
      .def = "", .offset = FV(peers), .table = &peer_spec, .metavar = "N=A,...",
      .help = "a table" },
};
static const struct qpc_config_schema fuzz_schema = {
    .program = "fuzz", .keys = fuzz_keys, .key_count = sizeof(fuzz_keys) / sizeof(fuzz_keys[0]),
    .values_size = sizeof(struct fuzz_values),
};

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

/* Cuts the "  # origin" comment off every line: origins differ, values must not. */
static void strip_origins(char *s)
{
    while ((s = strstr(s, "  # ")) != NULL)
        memmove(s, strchr(s, '\n'), strlen(strchr(s, '\n')) + 1);
}

static void fuzz_file(const uint8_t *data, size_t size)
{
    struct qpc_config *cfg = NULL, *again = NULL;
    char err[256], *first = NULL, *second = NULL;
    if (qpc_config_new(&cfg, &fuzz_schema) != 0)
        abort();
    if (qpc_config_load_buffer(cfg, "fuzz.toml", (const char *)data, size, err, sizeof(err)) == 0) {
        first = print_to_string(cfg);
        if (qpc_config_new(&again, &fuzz_schema) != 0)
            abort();
        if (qpc_config_load_buffer(again, "fuzz.toml", first, strlen(first), err, sizeof(err)) != 0) {
            fprintf(stderr, "printed config refused: %s\n%s\n", err, first);
            abort();
        }
        second = print_to_string(again);
        strip_origins(first);
        strip_origins(second);
        if (strcmp(first, second) != 0)
            abort();
        /* a computed value never changes the recorded origin */
        int before = qpc_config_source_of(cfg, "domain");
        if (qpc_config_set_computed(cfg, "domain", "fuzz.mesh.local", err, sizeof(err)) != 0 ||
            qpc_config_source_of(cfg, "domain") != before)
            abort();
    } else if (strncmp(err, "fuzz.toml:", 10) != 0 && strncmp(err, "out of memory", 13) != 0) {
        abort();   /* every refusal of a file names it */
    }
    free(first);
    free(second);
    qpc_config_free(again);
    qpc_config_free(cfg);
}

static void fuzz_set(uint8_t which, const uint8_t *data, size_t size)
{
    struct qpc_config *cfg = NULL;
    const struct qpc_config_key *k = &fuzz_keys[which % fuzz_schema.key_count];
    char err[256];
    char *text = malloc(size + 1);
    if (text == NULL || qpc_config_new(&cfg, &fuzz_schema) != 0)
        abort();
    memcpy(text, data, size);
    text[size] = '\0';
    if (qpc_config_set(cfg, k->flag, text, QPC_CONFIG_SOURCE_FLAG, err, sizeof(err)) == 0 &&
        qpc_config_source_of(cfg, k->name) != QPC_CONFIG_SOURCE_FLAG)
        abort();
    /* a weaker source is checked but never wins */
    qpc_config_set(cfg, k->name, text, QPC_CONFIG_SOURCE_ENV, err, sizeof(err));
    qpc_config_set(cfg, text, "1", QPC_CONFIG_SOURCE_ENV, err, sizeof(err));
    qpc_config_set_computed(cfg, k->name, text, err, sizeof(err));
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
    if (data[0] & 2)
        fuzz_set(data[1], data + 2, size - 2);
    else
        fuzz_file(data + 1, size - 1);
    return 0;
}
