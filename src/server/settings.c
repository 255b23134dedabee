/*
 * settings.c (qpc-server): the node's schema, the values it computes at start and the
 * rules across keys (settings.h). The layering, the file reader and every message
 * about a single value are libqpc's (qpc/config.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "qpc/addr.h"
#include "qpc/envelope.h"
#include "qpc/error.h"
#include "settings.h"

static const char *const log_levels[] = { "error", "warn", "info", "debug", NULL };
static const char *const trust_modes[] = { "auto", "key", "ca", NULL };

static const struct qpc_config_table_spec federation_peers = {
    .noun = "federation peer", .nouns = "federation peers", .short_noun = "peer",
    .name_word = "domain", .example = "10.0.0.2:7001", .max_entries = 1024,
    .key_after_address = true,
};

#define SV(field) offsetof(struct server_settings, field)
#define MIB (INT64_C(1024) * 1024)

static const struct qpc_config_key keys[] = {
    { .name = "listen", .flag = "--listen", .type = QPC_CONFIG_ADDR, .env = "QPC_LISTEN",
      .def = "0.0.0.0:7000", .offset = SV(listen), .flags = QPC_CONFIG_PORT0,
      .metavar = "HOST:PORT",
      .help = "address for client QUIC connections (host:port or [v6]:port)" },
    { .name = "data_dir", .flag = "--data-dir", .type = QPC_CONFIG_STRING,
      .env = "QPC_DATA_DIR", .def = "", .offset = SV(data_dir), .metavar = "DIR",
      .help = "where queues and the identity live; \"\" = $HOME/.local/share/quicprochat/server" },
    { .name = "log_level", .flag = "--log-level", .type = QPC_CONFIG_ENUM,
      .env = "QPC_LOG_LEVEL", .def = "info", .offset = SV(log_level), .choices = log_levels,
      .metavar = "LEVEL", .help = "error, warn, info or debug" },
    { .name = "mdns_enabled", .flag = "--mdns-enabled", .type = QPC_CONFIG_BOOL,
      .env = "QPC_MDNS_ENABLED", .def = "true", .offset = SV(mdns_enabled), .metavar = "BOOL",
      .help = "announce _quicprochat._udp.local. on the local network" },
    { .name = "mdns_interfaces", .flag = "--mdns-interfaces", .type = QPC_CONFIG_LIST,
      .env = "QPC_MDNS_INTERFACES", .def = "", .offset = SV(mdns_interfaces),
      .flags = QPC_CONFIG_IFNAME, .metavar = "IF,...",
      .help = "interfaces mDNS uses; empty = all" },
    { .name = "federation_enabled", .flag = "--federation-enabled", .type = QPC_CONFIG_BOOL,
      .env = "QPC_FEDERATION_ENABLED", .def = "false", .offset = SV(federation_enabled),
      .metavar = "BOOL", .help = "relay messages to and from other nodes" },
    { .name = "federation_domain", .flag = "--federation-domain", .type = QPC_CONFIG_STRING,
      .env = "QPC_LOCAL_DOMAIN", .def = "", .offset = SV(federation_domain),
      .flags = QPC_CONFIG_HOSTNAME | QPC_CONFIG_EMPTY_OK, .metavar = "DOMAIN",
      .help = "this node's domain; \"\" = <hostname>.mesh.local" },
    { .name = "federation_listen", .flag = "--federation-listen", .type = QPC_CONFIG_ADDR,
      .env = "QPC_FEDERATION_LISTEN", .def = "0.0.0.0:7001", .offset = SV(federation_listen),
      .flags = QPC_CONFIG_PORT0, .metavar = "HOST:PORT",
      .help = "address for federation (mTLS) connections" },
    { .name = "federation_trust", .flag = "--federation-trust", .type = QPC_CONFIG_ENUM,
      .env = "QPC_FEDERATION_TRUST", .def = "auto", .offset = SV(federation_trust),
      .choices = trust_modes, .metavar = "MODE",
      .help = "how peers prove their domain: key (pinned Ed25519 keys), ca (certificates "
              "naming the domain), auto (ca if federation_ca is set)" },
    { .name = "federation_cert", .flag = "--federation-cert", .type = QPC_CONFIG_STRING,
      .env = "QPC_FEDERATION_CERT", .def = "", .offset = SV(federation_cert),
      .metavar = "FILE", .help = "this node's federation certificate (DER; trust ca)" },
    { .name = "federation_key", .flag = "--federation-key", .type = QPC_CONFIG_STRING,
      .env = "QPC_FEDERATION_KEY", .def = "", .offset = SV(federation_key), .metavar = "FILE",
      .help = "private key of federation_cert (DER)" },
    { .name = "federation_ca", .flag = "--federation-ca", .type = QPC_CONFIG_STRING,
      .env = "QPC_FEDERATION_CA", .def = "", .offset = SV(federation_ca), .metavar = "FILE",
      .help = "CA certificate that signs every federation peer (DER)" },
    { .name = "peers", .flag = "--peers", .type = QPC_CONFIG_LIST, .env = "QPC_PEERS",
      .def = "", .offset = SV(peers), .metavar = "HOST:PORT,...",
      .help = "static peers: other nodes' federation endpoints, dialled only to exchange "
              "announces (no domain, no messages); needs federation_enabled" },
    { .name = "federation_peers", .flag = "--federation-peers", .type = QPC_CONFIG_TABLE,
      .env = "QPC_FEDERATION_PEERS", .def = "", .offset = SV(federation_peers),
      .table = &federation_peers, .metavar = "DOM=HOST:PORT KEY,...",
      .help = "known nodes: [federation_peers] table of domain = \"host:port KEY\" "
              "(KEY: the node's federation key; trust ca: \"host:port\")" },
    { .name = "metrics_listen", .flag = "--metrics-listen", .type = QPC_CONFIG_ADDR,
      .env = "QPC_METRICS_LISTEN", .def = "127.0.0.1:9464", .offset = SV(metrics_listen),
      .flags = QPC_CONFIG_EMPTY_OK | QPC_CONFIG_PORT0, .metavar = "HOST:PORT",
      .help = "Prometheus metrics endpoint; \"\" disables it" },
    { .name = "max_frame_size", .flag = "--max-frame-size", .type = QPC_CONFIG_INT,
      .env = "QPC_MAX_FRAME_SIZE", .def = "1048576", .offset = SV(max_frame_size),
      .min = 4096, .max = 64 * MIB, .metavar = "BYTES",
      .help = "largest stream frame accepted" },
    { .name = "max_envelope_size", .flag = "--max-envelope-size", .type = QPC_CONFIG_INT,
      .env = "QPC_MAX_ENVELOPE_SIZE", .def = "262144", .offset = SV(max_envelope_size),
      .min = 1024, .max = 64 * MIB, .metavar = "BYTES", .help = "largest envelope accepted" },
    { .name = "queue_quota", .flag = "--queue-quota", .type = QPC_CONFIG_INT,
      .env = "QPC_QUEUE_QUOTA", .def = "10000", .offset = SV(queue_quota),
      .min = 1, .max = 10000000, .metavar = "N", .help = "messages held per recipient" },
    { .name = "queue_max_bytes", .flag = "--queue-max-bytes", .type = QPC_CONFIG_INT,
      .env = "QPC_QUEUE_MAX_BYTES", .def = "268435456", .offset = SV(queue_max_bytes),
      .min = MIB, .max = 1024 * 1024 * MIB, .metavar = "BYTES",
      .help = "bytes held over all queues" },
    { .name = "default_ttl", .flag = "--default-ttl", .type = QPC_CONFIG_INT,
      .env = "QPC_DEFAULT_TTL", .def = "86400", .offset = SV(default_ttl),
      .min = 1, .max = QPC_TTL_MAX_S, .metavar = "SECONDS",
      .help = "TTL of messages that do not carry one" },
    { .name = "max_ttl", .flag = "--max-ttl", .type = QPC_CONFIG_INT, .env = "QPC_MAX_TTL",
      .def = "604800", .offset = SV(max_ttl), .min = 1, .max = QPC_TTL_MAX_S,
      .metavar = "SECONDS", .help = "longest TTL a message may ask for" },
    { .name = "relay_enabled", .flag = "--relay-enabled", .type = QPC_CONFIG_BOOL,
      .env = "QPC_RELAY_ENABLED", .def = "true", .offset = SV(relay_enabled),
      .metavar = "BOOL", .help = "relay QUIC packets for peers that cannot meet" },
    { .name = "relay_rate_limit", .flag = "--relay-rate-limit", .type = QPC_CONFIG_INT,
      .env = "QPC_RELAY_RATE_LIMIT", .def = "2000", .offset = SV(relay_rate_limit),
      .min = 1, .max = 10000000, .metavar = "PPS", .help = "relayed packets/s per client" },
    { .name = "idle_timeout_ms", .flag = "--idle-timeout-ms", .type = QPC_CONFIG_INT,
      .env = "QPC_IDLE_TIMEOUT_MS", .def = "30000", .offset = SV(idle_timeout_ms),
      .min = 1000, .max = 3600000, .metavar = "MS", .help = "QUIC idle timeout" },
    { .name = "max_client_connections", .flag = "--max-client-connections",
      .type = QPC_CONFIG_INT, .env = "QPC_MAX_CLIENT_CONNECTIONS", .def = "10000",
      .offset = SV(max_client_connections), .min = 1, .max = 1000000, .metavar = "N",
      .help = "client connections at once, all keys together" },
    { .name = "max_connections_per_client", .flag = "--max-connections-per-client",
      .type = QPC_CONFIG_INT, .env = "QPC_MAX_CONNECTIONS_PER_CLIENT", .def = "16",
      .offset = SV(max_connections_per_client), .min = 1, .max = 1000000, .metavar = "N",
      .help = "client connections at once per client key" },
    { .name = "quic_retry_threshold", .flag = "--quic-retry-threshold", .type = QPC_CONFIG_INT,
      .env = "QPC_QUIC_RETRY_THRESHOLD", .def = "64", .offset = SV(quic_retry_threshold),
      .min = 0, .max = 1024, .metavar = "N",
      .help = "handshakes in progress from which new clients must answer a QUIC Retry "
              "(0: always)" },
};

const struct qpc_config_schema server_schema = {
    .program = "qpc-server",
    .keys = keys,
    .key_count = sizeof(keys) / sizeof(keys[0]),
    .values_size = sizeof(struct server_settings),
};

const struct server_settings *server_settings(const struct qpc_config *cfg)
{
    return qpc_config_values(cfg);
}

/* Writes a message without an origin (it is about the settings as a whole). */
__attribute__((format(printf, 3, 4)))
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (err != NULL && errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return QPC_ERR_CONFIG;
}

/* Sets key, which the layers left empty, to a followed by b. */
static int compute(struct qpc_config *cfg, const char *key, const char *a, const char *b,
                   char *err, size_t errlen)
{
    size_t n = strlen(a) + strlen(b) + 1;
    char *text = malloc(n);
    int rc;

    if (text == NULL)
        return QPC_ERR_NOMEM;
    snprintf(text, n, "%s%s", a, b);
    rc = qpc_config_set_computed(cfg, key, text, err, errlen);
    free(text);
    return rc;
}

int server_settings_resolve(struct qpc_config *cfg, const char *home, const char *hostname,
                            char *err, size_t errlen)
{
    const struct server_settings *s = server_settings(cfg);
    int rc = 0;

    if (s->data_dir[0] == '\0') {
        if (home == NULL || home[0] != '/')
            return fail(err, errlen, "data_dir is empty and HOME is not an absolute path; "
                        "set data_dir in the file or QPC_DATA_DIR");
        rc = compute(cfg, "data_dir", home, "/.local/share/quicprochat/server", err, errlen);
    }
    if (rc == 0 && s->federation_domain[0] == '\0') {
        char label[64];
        size_t n = hostname ? strcspn(hostname, ".") : 0;
        if (n == 0 || n >= sizeof(label))
            return fail(err, errlen, "federation_domain is empty and the host name is unknown; "
                        "set federation_domain or QPC_LOCAL_DOMAIN");
        memcpy(label, hostname, n);
        label[n] = '\0';
        if (qpc_addr_check_name(label) != NULL)
            return fail(err, errlen, "the host name '%s' does not make a domain name; set "
                        "federation_domain or QPC_LOCAL_DOMAIN", label);
        rc = compute(cfg, "federation_domain", label, ".mesh.local", err, errlen);
    }
    if (rc == 0 && strcmp(s->federation_trust, "auto") == 0)
        rc = compute(cfg, "federation_trust", s->federation_ca[0] != '\0' ? "ca" : "key", "",
                     err, errlen);
    return rc;
}

/* True when two listening addresses would claim the same UDP port. */
static bool addrs_clash(const char *a, const char *b)
{
    char ha[QPC_ADDR_HOST_MAX + 1], hb[QPC_ADDR_HOST_MAX + 1];
    uint16_t pa, pb;
    if (qpc_addr_parse(a, ha, sizeof(ha), &pa) != 0 || qpc_addr_parse(b, hb, sizeof(hb), &pb) != 0)
        return false;
    if (pa != pb || pa == 0)
        return false;
    bool wild_a = !strcmp(ha, "0.0.0.0") || !strcmp(ha, "::");
    bool wild_b = !strcmp(hb, "0.0.0.0") || !strcmp(hb, "::");
    return wild_a || wild_b || strcasecmp(ha, hb) == 0;
}

int server_settings_validate(const struct qpc_config *cfg, char *err, size_t errlen)
{
    const struct server_settings *s = server_settings(cfg);
    if (s->default_ttl > s->max_ttl)
        return fail(err, errlen, "default_ttl (%lld s) is larger than max_ttl (%lld s); "
                    "lower default_ttl or raise max_ttl", (long long)s->default_ttl,
                    (long long)s->max_ttl);
    if (s->max_envelope_size > s->max_frame_size)
        return fail(err, errlen, "max_envelope_size (%lld) is larger than max_frame_size "
                    "(%lld), so no envelope that large could arrive; lower max_envelope_size or "
                    "raise max_frame_size", (long long)s->max_envelope_size,
                    (long long)s->max_frame_size);
    if (s->queue_max_bytes < s->max_envelope_size)
        return fail(err, errlen, "queue_max_bytes (%lld) is smaller than "
                    "max_envelope_size (%lld); raise queue_max_bytes",
                    (long long)s->queue_max_bytes, (long long)s->max_envelope_size);
    for (size_t i = 0; i < s->peers.count; i++) {
        char host[QPC_ADDR_HOST_MAX + 1];
        uint16_t port = 0;
        if (qpc_addr_parse(s->peers.items[i], host, sizeof(host), &port) != 0 || port == 0)
            return fail(err, errlen, "peers item \"%.64s\" is not an address to dial; write "
                        "\"host:port\" or \"[v6]:port\" of the other node's federation "
                        "endpoint, e.g. \"10.0.0.2:7001\"", s->peers.items[i]);
    }
    if (s->peers.count > 0 && !s->federation_enabled)
        return fail(err, errlen, "peers is set but federation_enabled is false: static peers "
                    "are dialled on the federation endpoint; set federation_enabled = true, "
                    "or remove peers");
    if (s->federation_enabled) {
        bool ca = strcmp(s->federation_trust, "ca") == 0 ||
                  (strcmp(s->federation_trust, "auto") == 0 && s->federation_ca[0] != '\0');
        const char *missing = s->federation_cert[0] == '\0' ? "federation_cert (QPC_FEDERATION_CERT)"
                            : s->federation_key[0] == '\0' ? "federation_key (QPC_FEDERATION_KEY)"
                            : s->federation_ca[0] == '\0' ? "federation_ca (QPC_FEDERATION_CA)"
                            : NULL;
        if (ca && missing != NULL)
            return fail(err, errlen, "federation_trust is \"ca\" but %s is empty; "
                        "CA-checked federation needs the cert, key and CA files (DER), or "
                        "set federation_trust = \"key\" to federate by pinned keys",
                        missing);
        if (!ca && (s->federation_cert[0] != '\0' || s->federation_key[0] != '\0'))
            return fail(err, errlen, "federation_cert or federation_key is set but "
                        "federation_trust is \"key\" (or \"auto\" without federation_ca): "
                        "with pinned keys no certificate files are used; set federation_ca "
                        "(and federation_trust = \"ca\") for a CA, or remove the files");
        for (size_t i = 0; i < s->federation_peers.count; i++) {
            const struct qpc_config_entry *e = &s->federation_peers.items[i];
            bool has_key = e->value[strcspn(e->value, " \t")] != '\0';
            if (!ca && !has_key)
                return fail(err, errlen, "federation peer '%s' has no key, and with "
                            "federation_trust = \"key\" a peer proves its domain by its key; "
                            "write \"%s\" = \"%s <its key>\" (the key the other node prints "
                            "at start as 'federation key:', or with qpc-server "
                            "--print-federation-key), or use federation_trust = \"ca\"",
                            e->name, e->name, e->value);
            if (ca && has_key)
                return fail(err, errlen, "federation peer '%s' has a key, but with "
                            "federation_trust = \"ca\" the certificate proves the domain; "
                            "write \"%s\" = \"%.*s\", or use federation_trust = \"key\"",
                            e->name, e->name, (int)strcspn(e->value, " \t"), e->value);
        }
        if (addrs_clash(s->listen, s->federation_listen))
            return fail(err, errlen, "listen (%s) and federation_listen (%s) use the "
                        "same port; give federation its own port (default 7001)", s->listen,
                        s->federation_listen);
    }
    return 0;
}
