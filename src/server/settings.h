/*
 * settings.h (qpc-server): the node's settings, `qpc-server.toml`, its environment
 * variables and flags, as a schema for libqpc's configuration engine (qpc/config.h).
 *
 * The one idea: the table in settings.c is the whole truth about a setting (name, flag,
 * variable, default, range, help); what only makes sense for a node -- values computed
 * at start, rules that involve several keys -- is here too, and nowhere else.
 */
#ifndef QPC_SERVER_SETTINGS_H
#define QPC_SERVER_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qpc/config.h"

/*
 * The node's settings (docs/config.md lists every key). Filled by the engine, borrowed
 * from the struct qpc_config: strings are never NULL (possibly ""), integers are within
 * their ranges, so narrowing them to the width a module wants is safe.
 */
struct server_settings {
    char *listen;                  /* client QUIC address, "host:port" or "[v6]:port" */
    char *data_dir;                /* "" until server_settings_resolve() */
    char *log_level;               /* "error", "warn", "info" or "debug" */
    bool mdns_enabled;
    struct qpc_config_strings mdns_interfaces; /* empty = every interface */
    bool federation_enabled;
    char *federation_domain;       /* "" until server_settings_resolve() */
    char *federation_listen;
    char *federation_trust;        /* "key" or "ca" after server_settings_resolve() ("auto"
                                    * before: "ca" when federation_ca is set, else "key") */
    char *federation_cert;         /* DER file paths; required with federation_trust = "ca" */
    char *federation_key;
    char *federation_ca;
    struct qpc_config_table federation_peers; /* domain -> "host:port" or "host:port KEY" */
    struct qpc_config_strings peers;   /* static peers: "host:port" of other nodes' federation
                                        * endpoints, dialled to exchange announces only */
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
    int64_t max_client_connections;     /* client connections at once, all keys */
    int64_t max_connections_per_client; /* ... per client key */
    int64_t quic_retry_threshold;  /* handshakes in progress from which a new peer must
                                    * answer a Retry first (0: always) */
};

/* The schema: qpc_config_new(&cfg, &server_schema). */
extern const struct qpc_config_schema server_schema;

/* The settings of cfg (made from server_schema), borrowed from it. */
const struct server_settings *server_settings(const struct qpc_config *cfg);

/*
 * Fills the settings whose empty value means "computed at start", once all layers are
 * applied: data_dir -> HOME/.local/share/quicprochat/server, federation_domain ->
 * HOSTNAME.mesh.local (first label of the host name), federation_trust "auto" -> "ca"
 * when federation_ca is set, else "key". home and hostname are borrowed;
 * either may be NULL, an error only if it is needed. Explicit values are left alone and
 * the recorded sources do not change.
 * Returns 0, QPC_ERR_CONFIG (a needed value is missing: err says which key to set) or
 * QPC_ERR_NOMEM.
 */
int server_settings_resolve(struct qpc_config *cfg, const char *home, const char *hostname,
                            char *err, size_t errlen);

/*
 * Checks the rules that involve more than one key: default_ttl <= max_ttl,
 * max_envelope_size <= max_frame_size <= ..., federation needs its cert/key/CA files and
 * a port of its own. Returns 0 or QPC_ERR_CONFIG (err names the keys and the fix).
 */
int server_settings_validate(const struct qpc_config *cfg, char *err, size_t errlen);

#endif
