/*
 * config.h: a program's settings, layered from defaults, a TOML file, the environment
 * and the command line, following a schema the program supplies.
 *
 * The one idea: every setting is a row of the program's schema (name, flag, type,
 * environment variable, default as text, range or choices, help, and where in the
 * program's own struct the value lives), and every value -- the default, a line of the
 * file, an environment variable, a command-line flag -- goes through the same setter.
 * Each value remembers where it came from, and a value from a weaker source never
 * replaces one from a stronger source, so "flag over env over file over default" holds
 * whatever order the program applies the layers in. The --help lines and the
 * effective-configuration printout are generated from the same rows, so the
 * documentation and the behaviour cannot drift apart.
 *
 * The library knows no program's keys. A program declares, in its own files:
 *
 *     struct my_settings { char *hub; int64_t retries; bool verbose; ... };
 *     static const struct qpc_config_key keys[] = {
 *         { .name = "hub", .flag = "--hub", .type = QPC_CONFIG_ADDR, .env = "MY_HUB",
 *           .def = "", .offset = offsetof(struct my_settings, hub),
 *           .flags = QPC_CONFIG_EMPTY_OK, .metavar = "HOST:PORT", .help = "hub to report to" },
 *         ...
 *     };
 *     const struct qpc_config_schema my_schema = { "myprog", keys,
 *         sizeof(keys) / sizeof(keys[0]), sizeof(struct my_settings) };
 *
 * and at start (the order of the calls does not matter for precedence, but this order
 * reports errors in the order a user expects):
 *
 *     struct qpc_config *cfg;
 *     char err[512];
 *     if (qpc_config_new(&cfg, &my_schema) < 0) ...
 *     rc = qpc_config_load_file(cfg, path, err, sizeof err);
 *     if (rc == QPC_ERR_NOT_FOUND && !path_given_by_user) rc = 0;   // optional file
 *     if (rc == 0) rc = qpc_config_load_env(cfg, NULL, err, sizeof err);
 *     for each --key=value flag:
 *         rc = qpc_config_set(cfg, key, value, QPC_CONFIG_SOURCE_FLAG, err, sizeof err);
 *     then the program's own steps: values computed at start (qpc_config_set_computed),
 *     rules across keys;
 *     const struct my_settings *s = qpc_config_values(cfg);
 *
 * The file format is a strict TOML subset read by qpc/toml.h (docs/config.md). Every
 * message names its origin: "FILE:LINE: ", "environment NAME: " or "command line: ",
 * then what is wrong and what to do, in a caller-supplied buffer with QPC_ERR_CONFIG.
 * Nothing here exits or logs; reading a file is the only I/O (qpc_config_load_file).
 */
#ifndef QPC_CONFIG_H
#define QPC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Where a value came from, weakest first. A set from a weaker source is ignored. */
enum qpc_config_source {
    QPC_CONFIG_SOURCE_DEFAULT = 0,
    QPC_CONFIG_SOURCE_FILE = 1,
    QPC_CONFIG_SOURCE_ENV = 2,
    QPC_CONFIG_SOURCE_FLAG = 3,
};

/* The types a key may have, and the C type of its field in the program's struct. */
enum qpc_config_type {
    QPC_CONFIG_STRING,  /* char *: any text without control characters */
    QPC_CONFIG_ADDR,    /* char *: "host:port" or "[v6]:port", as qpc_addr_check reads it */
    QPC_CONFIG_ENUM,    /* char *: one of the key's choices */
    QPC_CONFIG_INT,     /* int64_t within [min, max] */
    QPC_CONFIG_BOOL,    /* bool */
    QPC_CONFIG_LIST,    /* struct qpc_config_strings: an array of strings */
    QPC_CONFIG_TABLE,   /* struct qpc_config_table: a [table] of name = "host:port" lines */
};

/* Key flags. */
#define QPC_CONFIG_EMPTY_OK 0x1u  /* ADDR, or STRING with HOSTNAME: "" is allowed too */
#define QPC_CONFIG_PORT0    0x2u  /* ADDR: port 0 ("any") is allowed: an address to listen on */
#define QPC_CONFIG_HOSTNAME 0x4u  /* STRING: must be a DNS name (qpc_addr_check_name) */
#define QPC_CONFIG_IFNAME   0x8u  /* LIST: items are network interface names */
/*
 * The key belongs to a part of the program this build leaves out (a build option). It
 * keeps its row, so its default fills the struct, but any value for it from a file, the
 * environment or the command line is refused with the schema's not_built text (the
 * user learns why rather than "unknown key"); --help and the printout leave it out, and
 * no did-you-mean suggests it.
 */
#define QPC_CONFIG_NOT_BUILT 0x10u
#define QPC_CONFIG_ADDRS    0x20u /* LIST: items are "host:port" (qpc_addr_check, port 1..65535) */
/*
 * INT: the word "auto" is a value too (a string "auto" in the file, auto in the
 * environment and on the command line; the default may be "auto"). It is stored as
 * QPC_CONFIG_AUTO_VALUE, which the key's range must leave out (min >= 0), and the
 * program turns it into a number at start (what "auto" means is the program's: the
 * library only carries the word). --check-config prints it back as "auto".
 */
#define QPC_CONFIG_AUTO     0x40u
#define QPC_CONFIG_AUTO_VALUE INT64_C(-1)

/* A QPC_CONFIG_LIST value. Owned by the config object. */
struct qpc_config_strings {
    char **items;
    size_t count;
};

/* One line of a QPC_CONFIG_TABLE: a DNS name and the "host:port" it maps to. */
struct qpc_config_entry {
    char *name;
    char *value;
};

/* A QPC_CONFIG_TABLE value, entries in the order given. Owned by the config object. */
struct qpc_config_table {
    struct qpc_config_entry *items;
    size_t count;
};

/*
 * What the entries of a QPC_CONFIG_TABLE key are, for its messages. A table maps DNS
 * names (compared case-insensitively, each given once) to addresses that can be
 * dialled (port 0 refused). In the environment and on the command line it is written
 * "name=host:port,name2=host:port". With key_after_address, a value may also be
 * "host:port KEY", the address, spaces, and 64 hex digits of an Ed25519 public key
 * (the key that name must prove); the value is kept as written, and the program splits
 * it (the first space ends the address).
 */
struct qpc_config_table_spec {
    const char *noun;         /* one entry: "regional hub" */
    const char *nouns;        /* several: "regional hubs" */
    const char *short_noun;   /* "hub", as in "one site = "host:port" line per hub" */
    const char *name_word;    /* what an entry's name is: "site" */
    const char *example;      /* an address shown in messages: "192.0.2.1:9000" */
    size_t max_entries;
    bool key_after_address;   /* "host:port KEY" is allowed too (see above) */
};

/*
 * One row of a schema. Strings are static (they must outlive every config object made
 * from the schema). name, flag, def, metavar and help are required; env may be NULL
 * (the key has no environment variable).
 */
struct qpc_config_key {
    const char *name;           /* in the file: "retry_limit" */
    const char *flag;           /* on the command line: "--retry-limit" */
    enum qpc_config_type type;
    const char *env;            /* environment variable: "MY_RETRY_LIMIT", or NULL */
    const char *def;            /* default, in the text syntax of qpc_config_set */
    size_t offset;              /* offsetof the field in the program's struct */
    int64_t min, max;           /* QPC_CONFIG_INT: the range */
    unsigned flags;             /* QPC_CONFIG_EMPTY_OK, ... */
    const char *const *choices; /* QPC_CONFIG_ENUM: NULL-terminated */
    const char *metavar;        /* for --help and range messages: "HOST:PORT", "SECONDS" */
    const char *help;           /* one line */
    const struct qpc_config_table_spec *table; /* QPC_CONFIG_TABLE: what its entries are */
};

/* A program's settings: its rows and the struct they fill. */
struct qpc_config_schema {
    const char *program;              /* named in the printout's heading */
    const struct qpc_config_key *keys;
    size_t key_count;
    size_t values_size;               /* sizeof the program's struct */
    /* Why keys flagged QPC_CONFIG_NOT_BUILT are refused, after "KEY: " in the message;
     * required when any key has that flag, NULL otherwise. */
    const char *not_built;
};

struct qpc_config;

/*
 * Creates a config object for schema (borrowed: it must outlive the object) holding
 * every default (source "default"). The schema is checked: every row complete, names
 * unique, each field inside values_size, each default valid for its row.
 * *out receives the new object, owned by the caller (free with qpc_config_free).
 * Returns 0, QPC_ERR_INVALID (NULL or a bad schema: a bug in the program) or
 * QPC_ERR_NOMEM; on error *out is NULL.
 */
int qpc_config_new(struct qpc_config **out, const struct qpc_config_schema *schema);

/* Frees cfg and everything it owns. NULL is a no-op. */
void qpc_config_free(struct qpc_config *cfg);

/* The schema cfg was made with. */
const struct qpc_config_schema *qpc_config_schema(const struct qpc_config *cfg);

/*
 * The program's struct, filled in (values_size bytes, borrowed from cfg: valid until it
 * is freed; a later set may replace any string, list or table in it). Strings are never
 * NULL (possibly ""). Integers are within their key's range, so narrowing them to the
 * width a module wants is safe.
 */
const void *qpc_config_values(const struct qpc_config *cfg);

/*
 * Reads and applies the TOML file at path (source "file"). Files over
 * QPC_TOML_MAX_BYTES (1 MiB) are refused. Messages in err (always NUL-terminated when
 * errlen > 0) start with "path:LINE: ".
 * Returns 0; QPC_ERR_NOT_FOUND when the file does not exist (err names the path, so a
 * program may treat a missing default file as empty); QPC_ERR_IO when it cannot be read;
 * QPC_ERR_CONFIG for any syntax, schema or value error; QPC_ERR_NOMEM.
 * On an error cfg may hold some of the file's values; the caller should give up on it.
 */
int qpc_config_load_file(struct qpc_config *cfg, const char *path, char *err, size_t errlen);

/*
 * Same as qpc_config_load_file for len bytes at buf (need not be NUL-terminated; a NUL
 * byte in it is an error). name is used in messages in place of a path (copied).
 * Returns 0, QPC_ERR_CONFIG or QPC_ERR_NOMEM.
 */
int qpc_config_load_buffer(struct qpc_config *cfg, const char *name, const char *buf,
                           size_t len, char *err, size_t errlen);

/*
 * Applies the environment variable of every key that has one (source "env").
 * envp is an environ-style array of "NAME=value" strings ending with NULL (borrowed),
 * or NULL to read the process environment with getenv(). A variable set to the empty
 * string sets the empty value (valid for strings and lists, an error for numbers).
 * Booleans accept true/false/1/0/yes/no (any case); lists are comma-separated; tables
 * are "name=host:port,name2=host:port".
 * Returns 0, QPC_ERR_CONFIG (err starts with "environment NAME: ") or QPC_ERR_NOMEM.
 */
int qpc_config_load_env(struct qpc_config *cfg, const char *const *envp, char *err,
                        size_t errlen);

/*
 * The one setter: parses text (borrowed) as the value of key and stores it with the
 * given source, unless the key already holds a value from a stronger source, in which
 * case the value is still checked but then dropped. The text syntax is the environment
 * syntax described above. For QPC_CONFIG_SOURCE_FLAG the key may be spelt with dashes
 * ("retry-limit") or with a leading "--". An unknown key gets a did-you-mean suggestion.
 * Returns 0, QPC_ERR_CONFIG (unknown key, a key this build leaves out, wrong type, out
 * of range; err explains what to do) or QPC_ERR_NOMEM.
 */
int qpc_config_set(struct qpc_config *cfg, const char *key, const char *text,
                   enum qpc_config_source source, char *err, size_t errlen);

/*
 * For a value a program computes at start when the layers left it empty (a directory
 * under $HOME, a name made from the host name): replaces the value of key, a STRING,
 * ADDR or ENUM key, with text (copied) and keeps the recorded source. text is taken
 * as it is, not in the text syntax -- a path may hold whatever bytes the system allows
 * -- but must pass the key's checks (a DNS name, an address, one of the choices).
 * Returns 0, QPC_ERR_CONFIG (the check failed; err says why, without an origin
 * prefix), QPC_ERR_INVALID (unknown key, or a type that is not a string) or
 * QPC_ERR_NOMEM.
 */
int qpc_config_set_computed(struct qpc_config *cfg, const char *key, const char *text,
                            char *err, size_t errlen);

/* The source of key's current value; -1 (as int) when key is unknown. */
int qpc_config_source_of(const struct qpc_config *cfg, const char *key);

/* "default", "file", "env" or "flag". */
const char *qpc_config_source_name(enum qpc_config_source source);

/*
 * Writes the effective configuration to out as a TOML file that this reader reads back:
 * a heading naming the schema's program, then each key with a comment naming its
 * origin ("# default", "# file PATH:LINE", "# env MY_HUB", "# flag --hub"),
 * tables last; keys this build leaves out (QPC_CONFIG_NOT_BUILT) are not written.
 * For --check-config. Returns 0 or QPC_ERR_IO.
 */
int qpc_config_print(const struct qpc_config *cfg, FILE *out);

/*
 * Writes one --help line per key of schema to out (not the QPC_CONFIG_NOT_BUILT ones):
 * flag and metavar, help, environment variable and default. Returns 0, QPC_ERR_INVALID
 * (schema NULL) or QPC_ERR_IO.
 */
int qpc_config_print_help(const struct qpc_config_schema *schema, FILE *out);

/*
 * The value of the entry called name in table (compared case-insensitively; borrowed
 * from the config object), or NULL when there is none.
 */
const char *qpc_config_table_get(const struct qpc_config_table *table, const char *name);

#endif
