/*
 * config.h: settings of qpc-server (`qpc-server.toml`) and qpc (`qpc.toml`).
 *
 * The one idea: every setting is a row of a schema (name, type, environment variable,
 * default, help, where it is stored), and every value -- the default, a line of the
 * file, an environment variable, a command-line flag -- goes through the same setter.
 * Each value remembers where it came from, and a value from a weaker source never
 * replaces one from a stronger source, so "flag over env over file over default" holds
 * whatever order the program applies the layers in.
 *
 * The file format is a strict TOML subset (docs/config.md): top-level keys and
 * `[tables]`; basic strings "..." with escapes, decimal integers (sign and `_`
 * allowed), booleans, arrays of strings (may span lines, trailing comma allowed),
 * `#` comments, bare and quoted keys. Anything else is an error reported as
 * "FILE:LINE: problem" in a caller-supplied buffer, with QPC_ERR_CONFIG.
 *
 * Typical program start (the order of the calls does not matter for precedence, but
 * this order reports errors in the order a user expects):
 *
 *     struct qpc_config *cfg;
 *     char err[512];
 *     if (qpc_config_new(&cfg, QPC_CONFIG_SERVER) < 0) ...
 *     rc = qpc_config_load_file(cfg, path, err, sizeof err);
 *     if (rc == QPC_ERR_NOT_FOUND && !path_given_by_user) rc = 0;   // optional file
 *     if (rc == 0) rc = qpc_config_load_env(cfg, NULL, err, sizeof err);
 *     for each --key=value flag:
 *         rc = qpc_config_set(cfg, key, value, QPC_CONFIG_SOURCE_FLAG, err, sizeof err);
 *     if (rc == 0) rc = qpc_config_resolve_paths(cfg, getenv("HOME"), hostname, err, sizeof err);
 *     if (rc == 0) rc = qpc_config_validate(cfg, err, sizeof err);
 *     const struct qpc_server_config *sc = qpc_config_server(cfg);
 *
 * Nothing here exits or logs; file reading is the only I/O (qpc_config_load_file).
 */
#ifndef QPC_CONFIG_H
#define QPC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Which program's schema a config object follows. */
enum qpc_config_kind {
    QPC_CONFIG_SERVER = 0,    /* qpc-server, file qpc-server.toml */
    QPC_CONFIG_CLIENT = 1,    /* qpc, file qpc.toml */
};

/* Where a value came from, weakest first. A set from a weaker source is ignored. */
enum qpc_config_source {
    QPC_CONFIG_SOURCE_DEFAULT = 0,
    QPC_CONFIG_SOURCE_FILE = 1,
    QPC_CONFIG_SOURCE_ENV = 2,
    QPC_CONFIG_SOURCE_FLAG = 3,
};

/* An array of strings (owned by the config object). */
struct qpc_config_strings {
    char **items;
    size_t count;
};

/* One entry of [federation_peers]: a remote node's domain and its "host:port". */
struct qpc_config_peer {
    char *domain;
    char *addr;
};

struct qpc_config_peers {
    struct qpc_config_peer *items;   /* in the order they were given */
    size_t count;
};

/*
 * The node's settings. Strings are never NULL (possibly ""), owned by the config object
 * and valid until it is freed or the key is set again. Integers are range-checked
 * (docs/config.md lists the ranges), so narrowing them to the width a module wants is safe.
 */
struct qpc_server_config {
    char *listen;                  /* client QUIC address, "host:port" or "[v6]:port" */
    char *data_dir;                /* "" until qpc_config_resolve_paths() */
    char *log_level;               /* "error", "warn", "info" or "debug" */
    bool mdns_enabled;
    struct qpc_config_strings mdns_interfaces; /* empty = every interface */
    bool federation_enabled;
    char *federation_domain;       /* "" until qpc_config_resolve_paths() */
    char *federation_listen;
    char *federation_cert;         /* DER file paths; required when federation is enabled */
    char *federation_key;
    char *federation_ca;
    struct qpc_config_peers federation_peers;
    char *metrics_listen;          /* "" disables the metrics endpoint */
    int64_t max_frame_size;        /* bytes */
    int64_t max_envelope_size;     /* bytes, <= max_frame_size */
    int64_t queue_quota;           /* messages per recipient */
    int64_t queue_max_bytes;       /* bytes over all queues */
    int64_t default_ttl;           /* seconds, <= max_ttl */
    int64_t max_ttl;               /* seconds, <= QPC_TTL_MAX_S */
    bool relay_enabled;
    int64_t relay_rate_limit;      /* packets per second per client */
    int64_t idle_timeout_ms;
};

/* The client's settings; same ownership rules as struct qpc_server_config. */
struct qpc_client_config {
    char *data_dir;                /* "" until qpc_config_resolve_paths() */
    char *listen;                  /* P2P address; port 0 = any */
    char *server;                  /* node to use, "host:port"; "" = none (mDNS may find one) */
    bool mdns_enabled;
    struct qpc_config_strings mdns_interfaces; /* empty = every interface */
    int64_t store_per_recipient;   /* messages held per unreachable recipient */
    int64_t store_max_bytes;
    int64_t default_ttl;           /* seconds */
    int64_t max_hops;
    int64_t direct_timeout_ms;     /* how long a direct P2P attempt may take before relay/store */
    char *log_level;
};

struct qpc_config;

/*
 * Creates a config object of the given kind holding every default (source "default").
 * *out receives the new object, owned by the caller (free with qpc_config_free).
 * Returns 0, QPC_ERR_INVALID (unknown kind) or QPC_ERR_NOMEM.
 */
int qpc_config_new(struct qpc_config **out, enum qpc_config_kind kind);

/* Frees cfg and everything it owns. NULL is a no-op. */
void qpc_config_free(struct qpc_config *cfg);

/* The kind cfg was created with. */
enum qpc_config_kind qpc_config_kind(const struct qpc_config *cfg);

/*
 * The typed settings, borrowed from cfg (valid until it is freed; a later set may
 * replace any string). Returns NULL when cfg is of the other kind.
 */
const struct qpc_server_config *qpc_config_server(const struct qpc_config *cfg);
const struct qpc_client_config *qpc_config_client(const struct qpc_config *cfg);

/*
 * Reads and applies the TOML file at path (source "file"). Files over 1 MiB are refused.
 * Messages in err (always NUL-terminated when errlen > 0) start with "path:LINE: ".
 * Returns 0; QPC_ERR_NOT_FOUND when the file does not exist (err names the path, so a
 * program may treat a missing default file as empty); QPC_ERR_IO when it cannot be read;
 * QPC_ERR_CONFIG for any syntax, schema or value error; QPC_ERR_NOMEM.
 * On an error cfg may hold some of the file's values; the caller should give up on it.
 */
int qpc_config_load_file(struct qpc_config *cfg, const char *path, char *err, size_t errlen);

/*
 * Same as qpc_config_load_file for len bytes at buf (need not be NUL-terminated; a NUL
 * byte in it is an error). name is used in messages in place of a path (not kept).
 * Returns 0, QPC_ERR_CONFIG or QPC_ERR_NOMEM.
 */
int qpc_config_load_buffer(struct qpc_config *cfg, const char *name, const char *buf,
                           size_t len, char *err, size_t errlen);

/*
 * Applies the QPC_* environment variable of every key that has one (source "env").
 * envp is an environ-style array of "NAME=value" strings ending with NULL (borrowed),
 * or NULL to read the process environment with getenv(). A variable set to the empty
 * string sets the empty value (valid for strings and lists, an error for numbers).
 * Booleans accept true/false/1/0/yes/no (any case); lists are comma-separated;
 * federation peers are "domain=host:port,domain2=host:port".
 * Returns 0, QPC_ERR_CONFIG (err starts with "environment NAME: ") or QPC_ERR_NOMEM.
 */
int qpc_config_load_env(struct qpc_config *cfg, const char *const *envp, char *err,
                        size_t errlen);

/*
 * The one setter: parses text (borrowed) as the value of key and stores it with the
 * given source, unless the key already holds a value from a stronger source, in which
 * case the value is still checked but then dropped. The text syntax is the environment
 * syntax described above. For QPC_CONFIG_SOURCE_FLAG the key may be spelt with dashes
 * ("log-level") or with a leading "--". An unknown key gets a did-you-mean suggestion.
 * Returns 0, QPC_ERR_CONFIG (unknown key, wrong type, out of range; err explains what
 * to do) or QPC_ERR_NOMEM.
 */
int qpc_config_set(struct qpc_config *cfg, const char *key, const char *text,
                   enum qpc_config_source source, char *err, size_t errlen);

/* The source of key's current value; -1 (as int) when key is unknown. */
int qpc_config_source_of(const struct qpc_config *cfg, const char *key);

/* "default", "file", "env" or "flag". */
const char *qpc_config_source_name(enum qpc_config_source source);

/*
 * Fills the settings whose empty value means "computed at start":
 *   server data_dir          -> HOME/.local/share/quicprochat/server
 *   client data_dir          -> HOME/.local/share/quicprochat
 *   server federation_domain -> HOSTNAME.mesh.local
 * home and hostname are borrowed; either may be NULL when the program has none, which
 * is an error only if it is needed. Values set explicitly are left alone, and the
 * recorded source is not changed.
 * Returns 0, QPC_ERR_CONFIG (needed value missing: err says which key to set) or
 * QPC_ERR_NOMEM.
 */
int qpc_config_resolve_paths(struct qpc_config *cfg, const char *home, const char *hostname,
                             char *err, size_t errlen);

/*
 * Checks rules that involve more than one key, once all layers are applied:
 * default_ttl <= max_ttl, max_envelope_size <= max_frame_size, federation needs its
 * cert/key/CA files, federation_listen differs from listen, ...
 * Returns 0 or QPC_ERR_CONFIG (err names the keys and the fix).
 */
int qpc_config_validate(const struct qpc_config *cfg, char *err, size_t errlen);

/*
 * Writes the effective configuration to out as a TOML file that this parser reads back,
 * each line with a comment naming its origin ("# default", "# file PATH:LINE",
 * "# env QPC_LISTEN", "# flag"). For --check-config. Returns 0 or QPC_ERR_IO.
 */
int qpc_config_print(const struct qpc_config *cfg, FILE *out);

/* Public description of one key, for --help and for building option tables. */
struct qpc_config_key_info {
    const char *name;         /* key in the file, e.g. "log_level" */
    const char *flag;         /* command-line flag, e.g. "--log-level" */
    const char *env;          /* environment variable, or NULL */
    const char *type;         /* "string", "address", "integer", "boolean", "list", "table" */
    const char *default_text; /* default in the text syntax of qpc_config_set */
    const char *help;         /* one line */
};

/* Number of keys of a kind (0 for an unknown kind). */
size_t qpc_config_key_count(enum qpc_config_kind kind);

/*
 * Fills *info for key number i of kind (strings are static).
 * Returns 0 or QPC_ERR_INVALID when i or kind is out of range.
 */
int qpc_config_key_at(enum qpc_config_kind kind, size_t i, struct qpc_config_key_info *info);

/*
 * Writes one --help line per key of kind to out: flag, what it sets, env variable and
 * default. Returns 0 or QPC_ERR_IO.
 */
int qpc_config_print_help(enum qpc_config_kind kind, FILE *out);

/* The "host:port" of the federation peer for domain (exact match, borrowed), or NULL. */
const char *qpc_config_peer_addr(const struct qpc_server_config *sc, const char *domain);

#endif
