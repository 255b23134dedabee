/*
 * settings.c (qpc): the client's schema and the one value it computes at start
 * (settings.h). The layering, the file reader and every message about a value are
 * libqpc's (qpc/config.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qpc/envelope.h"
#include "qpc/error.h"
#include "settings.h"
#include "verify.h"   /* VERIFY_MAX_THREADS */

static const char *const log_levels[] = { "error", "warn", "info", "debug", NULL };

#define CV(field) offsetof(struct client_settings, field)
#define MIB (INT64_C(1024) * 1024)
/* A key only the mesh uses: a build without it refuses a value for it, saying why. */
#define MESH_ONLY (QPC_MESH ? 0u : QPC_CONFIG_NOT_BUILT)

static const struct qpc_config_key keys[] = {
    { .name = "data_dir", .flag = "--data-dir", .type = QPC_CONFIG_STRING,
      .env = "QPC_CLIENT_DATA_DIR", .def = "", .offset = CV(data_dir), .metavar = "DIR",
      .help = "identity, peers and store; \"\" = $HOME/.local/share/quicprochat" },
    { .name = "listen", .flag = "--listen", .type = QPC_CONFIG_ADDR,
      .env = "QPC_CLIENT_LISTEN", .def = "0.0.0.0:0", .offset = CV(listen),
      .flags = QPC_CONFIG_PORT0 | MESH_ONLY, .metavar = "HOST:PORT",
      .help = "local address for P2P QUIC; port 0 = any" },
    { .name = "server", .flag = "--server", .type = QPC_CONFIG_ADDR, .env = "QPC_SERVER",
      .def = "", .offset = CV(server), .flags = QPC_CONFIG_EMPTY_OK, .metavar = "HOST:PORT",
      .help = QPC_MESH ? "node to use; \"\" = none (find one with /mesh peers)"
                       : "node to use; \"\" = none (nothing is sent or received without one)" },
    { .name = "mdns_enabled", .flag = "--mdns-enabled", .type = QPC_CONFIG_BOOL,
      .env = "QPC_CLIENT_MDNS_ENABLED", .def = "true", .offset = CV(mdns_enabled),
      .flags = MESH_ONLY, .metavar = "BOOL", .help = "browse for nodes with mDNS" },
    { .name = "mdns_interfaces", .flag = "--mdns-interfaces", .type = QPC_CONFIG_LIST,
      .env = "QPC_CLIENT_MDNS_INTERFACES", .def = "", .offset = CV(mdns_interfaces),
      .flags = QPC_CONFIG_IFNAME | MESH_ONLY, .metavar = "IF,...",
      .help = "interfaces mDNS uses; empty = all" },
    { .name = "store_per_recipient", .flag = "--store-per-recipient", .type = QPC_CONFIG_INT,
      .env = "QPC_CLIENT_STORE_PER_RECIPIENT", .def = "1000",
      .offset = CV(store_per_recipient), .min = 1, .max = 1000000, .metavar = "N",
      .help = "messages held per unreachable peer" },
    { .name = "store_max_bytes", .flag = "--store-max-bytes", .type = QPC_CONFIG_INT,
      .env = "QPC_CLIENT_STORE_MAX_BYTES", .def = "67108864", .offset = CV(store_max_bytes),
      .min = MIB, .max = 1024 * 1024 * MIB, .metavar = "BYTES",
      .help = "bytes held in the store" },
    { .name = "default_ttl", .flag = "--default-ttl", .type = QPC_CONFIG_INT,
      .env = "QPC_CLIENT_DEFAULT_TTL", .def = "86400", .offset = CV(default_ttl),
      .min = 1, .max = QPC_TTL_MAX_S, .metavar = "SECONDS", .help = "TTL of messages sent" },
    { .name = "max_hops", .flag = "--max-hops", .type = QPC_CONFIG_INT,
      .env = "QPC_CLIENT_MAX_HOPS", .def = "8", .offset = CV(max_hops), .min = 1, .max = 255,
      .metavar = "N", .help = "hops a message sent may travel" },
    { .name = "direct_timeout_ms", .flag = "--direct-timeout-ms", .type = QPC_CONFIG_INT,
      .env = "QPC_CLIENT_DIRECT_TIMEOUT_MS", .def = "3000", .offset = CV(direct_timeout_ms),
      .min = 100, .max = 600000, .flags = MESH_ONLY, .metavar = "MS",
      .help = "time for a direct P2P attempt before relay or store" },
    { .name = "announce_interval_s", .flag = "--announce-interval-s", .type = QPC_CONFIG_INT,
      .env = "QPC_CLIENT_ANNOUNCE_INTERVAL_S", .def = "120", .offset = CV(announce_interval_s),
      .min = 1, .max = 3600, .flags = MESH_ONLY, .metavar = "SECONDS",
      .help = "how often this node re-announces itself to the mesh when nothing changed (at once on a change)" },
    { .name = "verify_threads", .flag = "--verify-threads", .type = QPC_CONFIG_INT,
      .env = "QPC_CLIENT_VERIFY_THREADS", .def = "auto", .offset = CV(verify_threads),
      .min = 0, .max = VERIFY_MAX_THREADS, .flags = QPC_CONFIG_AUTO | MESH_ONLY, .metavar = "N",
      .help = "threads that check the signatures of envelopes relayed over links; 0 = on the "
              "event loop, auto = none on 1 CPU, 2 on more" },
    { .name = "peers", .flag = "--peers", .type = QPC_CONFIG_LIST, .env = "QPC_CLIENT_PEERS",
      .def = "", .offset = CV(peers), .flags = QPC_CONFIG_ADDRS | MESH_ONLY, .metavar = "HOST:PORT,...",
      .help = "static peers, dialled at start and redialled with back-off" },
    { .name = "log_level", .flag = "--log-level", .type = QPC_CONFIG_ENUM,
      .env = "QPC_CLIENT_LOG_LEVEL", .def = "warn", .offset = CV(log_level),
      .choices = log_levels, .metavar = "LEVEL", .help = "error, warn, info or debug" },
};

const struct qpc_config_schema client_schema = {
    .program = "qpc",
    .keys = keys,
    .key_count = sizeof(keys) / sizeof(keys[0]),
    .values_size = sizeof(struct client_settings),
    .not_built = CLIENT_NO_MESH,
};

const struct client_settings *client_settings(const struct qpc_config *cfg)
{
    return qpc_config_values(cfg);
}

unsigned client_verify_threads(int64_t setting, long online_cpus)
{
    if (setting != QPC_CONFIG_AUTO_VALUE)
        return (unsigned)setting;   /* 0..VERIFY_MAX_THREADS: the key's range */
    /* One CPU: a worker would only take turns with the loop on it (DESIGN.md, no threads
     * on the hot path). More: two workers, not CPUs - 1. On two shared cores one worker
     * left a relay at 8.4-9.2k durable msgs/s, under the 10k it must forward, and two
     * reached 13-15k (docs/client.md, bench_forward): the workers sleep when nothing is
     * to be checked, so sharing a core with the loop costs it nothing when it is idle.
     * More than two were never measured. */
    if (online_cpus <= 1)
        return 0;
    return online_cpus < CLIENT_VERIFY_AUTO_MAX ? (unsigned)online_cpus : CLIENT_VERIFY_AUTO_MAX;
}

int client_settings_resolve(struct qpc_config *cfg, const char *home, char *err, size_t errlen)
{
    static const char suffix[] = "/.local/share/quicprochat";
    char *dir;
    int rc;

    if (client_settings(cfg)->data_dir[0] != '\0')
        return 0;
    if (home == NULL || home[0] != '/') {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "data_dir is empty and HOME is not an absolute path; set "
                     "data_dir in the file or QPC_CLIENT_DATA_DIR");
        return QPC_ERR_CONFIG;
    }
    if ((dir = malloc(strlen(home) + sizeof(suffix))) == NULL)
        return QPC_ERR_NOMEM;
    strcpy(dir, home);
    strcat(dir, suffix);
    rc = qpc_config_set_computed(cfg, "data_dir", dir, err, errlen);
    free(dir);
    return rc;
}
