/*
 * settings.h (qpc): the client's settings, `qpc.toml`, its environment variables and
 * flags, as a schema for libqpc's configuration engine (qpc/config.h).
 *
 * Client variables are QPC_CLIENT_* (QPC_SERVER excepted) so that a node and a client
 * on one machine do not pick up each other's settings.
 */
#ifndef QPC_CLIENT_SETTINGS_H
#define QPC_CLIENT_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qpc/config.h"

/*
 * QPC_MESH: 1 when qpc is built with its mesh (the default), 0 for a client-server-only
 * build (cmake -DQPC_MESH=OFF; docs/client.md, "Without mesh"). CMakeLists.txt defines
 * it for every client file; a file compiled without it would silently lose its mesh.
 */
#ifndef QPC_MESH
#error "QPC_MESH is not defined: build the client through CMakeLists.txt (option QPC_MESH)"
#endif

/* What a build without mesh says when it is asked for a mesh-only setting or command. */
#define CLIENT_NO_MESH "this qpc is built without mesh support (cmake -DQPC_MESH=OFF): it " \
    "makes no P2P links and uses no mDNS; messages go through its server (--server)"

/*
 * The client's settings (docs/config.md lists every key); same ownership and range
 * rules as struct server_settings: borrowed from the struct qpc_config, strings never NULL.
 */
struct client_settings {
    char *data_dir;                /* "" until client_settings_resolve() */
    char *listen;                  /* P2P address; port 0 = any (mesh only) */
    char *server;                  /* node to use, "host:port"; "" = none (mDNS may find one) */
    bool mdns_enabled;             /* (mesh only) */
    struct qpc_config_strings mdns_interfaces; /* empty = every interface (mesh only) */
    int64_t store_per_recipient;   /* messages held per unreachable recipient */
    int64_t store_max_bytes;
    int64_t default_ttl;           /* seconds */
    int64_t max_hops;
    int64_t direct_timeout_ms;     /* how long a direct P2P attempt may take before relay/store
                                    * (mesh only) */
    int64_t announce_interval_s;   /* my announces go at least this often (mesh only) */
    int64_t verify_threads;        /* signature checks of relayed envelopes off the loop:
                                    * 0 = on it (DESIGN.md's one loop), 1..4 threads, or
                                    * QPC_CONFIG_AUTO_VALUE ("auto", the default):
                                    * client_verify_threads() says how many (mesh only) */
    struct qpc_config_strings peers;   /* static peers, "host:port": dialled at start (mesh only) */
    char *log_level;
};

/* The schema: qpc_config_new(&cfg, &client_schema). Without mesh (QPC_MESH 0) the mesh
 * only keys keep their rows and defaults but are refused from every layer, saying
 * CLIENT_NO_MESH, and --help leaves them out (QPC_CONFIG_NOT_BUILT). */
extern const struct qpc_config_schema client_schema;

/* The settings of cfg (made from client_schema), borrowed from it. */
const struct client_settings *client_settings(const struct qpc_config *cfg);

/* What verify_threads = auto gives at most (client_verify_threads). */
#define CLIENT_VERIFY_AUTO_MAX 2u

/*
 * How many signature-checking threads a relay runs (verify.h; 0 = checks on the loop)
 * for the setting verify_threads and online_cpus (sysconf(_SC_NPROCESSORS_ONLN); < 1
 * when unknown, taken as one). An explicit 0..4 is kept; auto is none on one CPU,
 * otherwise min(online_cpus, CLIENT_VERIFY_AUTO_MAX), so 2 on any multi-core machine.
 * Pure, for the tests.
 */
unsigned client_verify_threads(int64_t setting, long online_cpus);

/*
 * Fills data_dir when the layers left it empty: HOME/.local/share/quicprochat. home is
 * borrowed and may be NULL, an error only if it is needed. The client's keys are
 * independent of each other (every range is checked when a value is set), so there is
 * no validation step beyond this.
 * Returns 0, QPC_ERR_CONFIG (err says to set data_dir) or QPC_ERR_NOMEM.
 */
int client_settings_resolve(struct qpc_config *cfg, const char *home, char *err, size_t errlen);

#endif
