/*
 * main.c (qpc-server): options, start-up, signals and shutdown of a quicprochat node.
 *
 * The one idea: configuration errors are the user's to fix, so every one of them ends
 * the program before anything is started, with the message of the config module
 * ("FILE:LINE: what; what to do") and exit status 2. Once the node runs, everything
 * happens on one libev loop; SIGTERM/SIGINT stop accepting connections, commit what is
 * staged, let the answers leave, withdraw the mDNS announcement and exit 0.
 *
 * This is the composition root: the only file that knows every module. Start-up order:
 * identity (made on first start), durable queue, broadcast store, group commit, client
 * endpoint, federation tables, announce tables and the federation endpoint, metrics,
 * mDNS; shutdown runs it backwards.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sodium.h>

#include "qpc/error.h"
#include "qpc/log.h"
#include "qpc/tls.h"
#include "announce.h"
#include "broadcast.h"
#include "client_service.h"
#include "delivery.h"
#include "federation.h"
#include "federation_service.h"
#include "mesh.h"
#include "metrics.h"
#include "node.h"
#include "relay.h"
#include "session.h"
#include "trust.h"

#define EXIT_CONFIG 2
#define MAINT_INTERVAL_S 1.0
#define STOP_GRACE_S 0.3       /* time for committed answers to leave before the exit */
#define DEFAULT_CONFIG_FILE "qpc-server.toml"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: qpc-server [OPTION]...\n"
            "The quicprochat node: delivery queues for its clients, mDNS announcement,\n"
            "federation with other nodes, relay between clients.\n"
            "\n"
            "  -h, --help             show this help and exit\n"
            "  -V, --version          show the version and exit\n"
            "  -c, --config=FILE      read FILE (default ./" DEFAULT_CONFIG_FILE
            " if it exists; env QPC_CONFIG)\n"
            "      --check-config     validate the configuration, print the effective\n"
            "                         settings with their origin, and exit (0 = valid)\n"
            "      --print-federation-key\n"
            "                         print this node's federation key (made on first\n"
            "                         use, like at start) and exit; other nodes write it\n"
            "                         in their [federation_peers]\n"
            "\n"
            "Settings (flag > QPC_* environment > file > default; booleans may be given\n"
            "as --key alone or --key=true/false):\n");
    qpc_config_print_help(&server_schema, out);
    fprintf(out, "\nExit status: 0 after SIGTERM/SIGINT, 1 on a start-up failure, 2 on a "
                 "configuration error.\n");
}

static bool key_is_boolean(const char *flag_name)
{
    char name[128];

    snprintf(name, sizeof(name), "%s", flag_name);
    for (char *p = name; *p; p++)
        if (*p == '-')
            *p = '_';
    for (size_t i = 0; i < server_schema.key_count; i++) {
        if (strcmp(server_schema.keys[i].name, name) == 0)
            return server_schema.keys[i].type == QPC_CONFIG_BOOL;
    }
    return false;
}

struct options {
    const char *config_path;
    bool config_given;
    bool check_config;
    bool print_key;
};

/*
 * Applies the command line. Settings go straight into cfg with source "flag"; the
 * order of layers does not matter because the config module keeps the strongest.
 * Returns 0, 1 (help/version printed: exit 0) or a negative error with err filled.
 */
static int parse_args(int argc, char **argv, struct qpc_config *cfg, struct options *o,
                      char *err, size_t errlen)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *eq, *value;
        char key[128];
        int rc;

        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            usage(stdout);
            return 1;
        }
        if (strcmp(arg, "-V") == 0 || strcmp(arg, "--version") == 0) {
            printf("qpc-server %s\n", QPC_VERSION);
            return 1;
        }
        if (strcmp(arg, "--check-config") == 0) {
            o->check_config = true;
            continue;
        }
        if (strcmp(arg, "--print-federation-key") == 0) {
            o->print_key = true;
            continue;
        }
        if (strcmp(arg, "-c") == 0 || strcmp(arg, "--config") == 0) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "command line: %s needs a file name", arg);
                return QPC_ERR_CONFIG;
            }
            o->config_path = argv[++i];
            o->config_given = true;
            continue;
        }
        if (strncmp(arg, "--config=", 9) == 0) {
            o->config_path = arg + 9;
            o->config_given = true;
            continue;
        }
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            snprintf(err, errlen, "command line: unexpected argument '%s'; settings are "
                     "--key=value (see --help)", arg);
            return QPC_ERR_CONFIG;
        }
        eq = strchr(arg, '=');
        if (eq != NULL) {
            snprintf(key, sizeof(key), "%.*s", (int)(eq - arg), arg);
            value = eq + 1;
        } else {
            snprintf(key, sizeof(key), "%s", arg);
            if (key_is_boolean(arg + 2) &&
                (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0))
                value = "true";
            else if (i + 1 < argc)
                value = argv[++i];
            else
                value = NULL;
        }
        if (value == NULL) {
            /* Let the config module name the key (or suggest one) before asking for a value. */
            rc = qpc_config_set(cfg, key, "", QPC_CONFIG_SOURCE_FLAG, err, errlen);
            if (rc == 0)
                snprintf(err, errlen, "command line: %s needs a value", key);
            return QPC_ERR_CONFIG;
        }
        rc = qpc_config_set(cfg, key, value, QPC_CONFIG_SOURCE_FLAG, err, errlen);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* CA mode: the three files must be there, parse and belong together, so that neither
 * --check-config nor a start says "valid" and then fails with an I/O error. */
static int check_federation_files(const struct server_settings *sc, char *err, size_t errlen)
{
    if (!sc->federation_enabled || strcmp(sc->federation_trust, "ca") != 0)
        return 0;
    return qpc_tls_federation_files_check(sc->federation_cert, sc->federation_key,
                                          sc->federation_ca, sc->federation_domain, err,
                                          errlen) == 0 ? 0 : QPC_ERR_CONFIG;
}

/* All configuration layers; 0, 1 (exit 0 now) or a negative error with err filled. */
static int load_config(int argc, char **argv, struct qpc_config *cfg, struct options *o,
                       char *err, size_t errlen)
{
    char hostname[256] = "";
    const char *env_path = getenv("QPC_CONFIG");
    int rc;

    o->config_path = DEFAULT_CONFIG_FILE;
    if (env_path != NULL && env_path[0] != '\0') {
        o->config_path = env_path;
        o->config_given = true;
    }
    rc = parse_args(argc, argv, cfg, o, err, errlen);
    if (rc != 0)
        return rc;
    rc = qpc_config_load_file(cfg, o->config_path, err, errlen);
    if (rc == QPC_ERR_NOT_FOUND && !o->config_given)
        rc = 0;
    if (rc == 0)
        rc = qpc_config_load_env(cfg, NULL, err, errlen);
    if (rc == 0) {
        gethostname(hostname, sizeof(hostname) - 1);
        rc = server_settings_resolve(cfg, getenv("HOME"), hostname[0] ? hostname : NULL, err,
                                     errlen);
    }
    if (rc == 0)
        rc = server_settings_validate(cfg, err, errlen);
    if (rc == 0)
        rc = delivery_check_settings(server_settings(cfg), err, errlen);
    if (rc == 0)
        rc = check_federation_files(server_settings(cfg), err, errlen);
    return rc;
}

/* --- run ------------------------------------------------------------------------------- */

static void stop_now(struct ev_loop *loop, ev_timer *w, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct node *n = w->data;

    if (n->stopping)
        return;
    qpc_log_info("server", "signal %d: stopping (no new connections, finishing commits)",
                 w->signum);
    n->stopping = true;
    /* Newcomers get CONNECTION_REFUSED at once instead of a handshake that on_connected
     * would refuse anyway; connections already there finish during the grace period. */
    session_endpoint_stop_accepting(n->client_ep);
    session_endpoint_stop_accepting(n->fed_ep);
    delivery_commit(n);            /* whatever is staged is committed and answered */
    ev_timer_init(&n->stop_w, stop_now, STOP_GRACE_S, 0.0);
    ev_timer_start(loop, &n->stop_w);
}

static void maintenance(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct node *n = w->data;
    uint64_t now = node_now_ms();
    size_t removed = 0, out_removed = 0;

    if (qpc_queue_expire(n->queue, now, &removed) != 0 ||
        qpc_queue_outbox_expire(n->queue, now, &out_removed) != 0)
        qpc_log_error("server", "expiry failed: %s", qpc_queue_errmsg(n->queue));
    if (removed + out_removed > 0)
        qpc_log_info("server", "expired %zu queued and %zu outbox envelope(s)", removed,
                     out_removed);
    broadcast_gc(n, now);
    mesh_gc(n);
    federation_pump(n, now);
}

static int open_store(struct node *n, char *err, size_t errlen)
{
    struct qpc_queue_limits lim = { 0 };
    char path[4096];

    lim.max_items_per_recipient = (uint32_t)n->sc->queue_quota;
    lim.max_total_bytes = (uint64_t)n->sc->queue_max_bytes;
    lim.max_bytes_per_recipient = (uint64_t)n->sc->queue_max_bytes;
    lim.max_blob_len = (size_t)n->sc->max_envelope_size;
    lim.sync = QPC_QUEUE_SYNC_THREAD;   /* FULL's durability, the fsync off the loop */
    snprintf(path, sizeof(path), "%s/queue.db", n->sc->data_dir);
    return qpc_queue_open(path, &lim, &n->queue, err, errlen);
}

/* --print-federation-key: the identity key is the federation key (federation_trust key);
 * made on first use, as a first start would. Returns the exit status. */
static int print_federation_key(struct node *n)
{
    char err[512] = "", path[4096];
    bool created = false;
    int rc;

    snprintf(path, sizeof(path), "%s/identity.json", n->sc->data_dir);
    rc = qpc_identity_load_or_create(path, &n->identity, &created, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "qpc-server: identity: %s\n", err[0] ? err : qpc_strerror(rc));
        return 1;
    }
    printf("%s\n", qpc_identity_peer_id(n->identity));
    if (created)
        fprintf(stderr, "qpc-server: new identity made in %s (mode 0600)\n", path);
    if (strcmp(n->sc->federation_trust, "ca") == 0)
        fprintf(stderr, "qpc-server: note: federation_trust is \"ca\": peers check this "
                        "node's certificate (%s), not this key\n", n->sc->federation_cert);
    qpc_identity_free(n->identity);
    n->identity = NULL;
    return 0;
}

static void print_banner(struct node *n)
{
    char host[256];

    if (!announce_dial_host(n, host, sizeof(host)))
        snprintf(host, sizeof(host), "127.0.0.1");
    snprintf(n->client_addr, sizeof(n->client_addr), strchr(host, ':') ? "[%s]:%u" : "%s:%u",
             host, n->client_port);
    printf("qpc-server %s\n", QPC_VERSION);
    printf("peer id:    %s\n", qpc_identity_peer_id(n->identity));
    printf("listening:  %s (clients, ALPN %s)\n", n->sc->listen, QPC_ALPN_CLIENT);
    printf("domain:     %s\n", n->sc->federation_domain);
    if (n->fed_ep != NULL && trust_by_key(n))
        printf("federation: %s (ALPN %s, pinned keys)\nfederation key: %s\n",
               n->sc->federation_listen, QPC_ALPN_FEDERATION, qpc_identity_peer_id(n->identity));
    else if (n->fed_ep != NULL)
        printf("federation: %s (ALPN %s, CA: certificates name the domain)\n",
               n->sc->federation_listen, QPC_ALPN_FEDERATION);
    else
        printf("federation: off\n");
    if (n->metrics != NULL)
        printf("metrics:    http://%s/metrics\n", n->sc->metrics_listen);
    printf("mdns:       %s\n", announce_running(n) ? "announcing _quicprochat._udp.local." : "off");
    printf("data:       %s\n", n->sc->data_dir);
    printf("connect:    qpc --server %s\n", n->client_addr);
    fflush(stdout);
}

static int start(struct node *n)
{
    char err[512] = "", path[4096];
    bool created = false;
    int rc;

    snprintf(path, sizeof(path), "%s/identity.json", n->sc->data_dir);
    rc = qpc_identity_load_or_create(path, &n->identity, &created, err, sizeof(err));
    if (rc != 0) {
        qpc_log_error("server", "identity: %s", err[0] ? err : qpc_strerror(rc));
        return rc;
    }
    if (created)
        qpc_log_info("server", "new identity made in %s", path);
    rc = open_store(n, err, sizeof(err));
    if (rc != 0) {
        qpc_log_error("server", "queue database: %s", err[0] ? err : qpc_strerror(rc));
        return rc;
    }
    rc = broadcast_start(n);
    if (rc != 0)
        return rc;
    rc = delivery_start(n);
    if (rc != 0)
        return rc;
    rc = relay_start(n);
    if (rc != 0)
        return rc;
    rc = client_service_start(n);
    if (rc != 0) {
        qpc_log_error("server", "cannot listen on %s: %s", n->sc->listen, qpc_strerror(rc));
        return rc;
    }
    rc = trust_start(n);
    if (rc == 0)
        rc = federation_start(n);
    if (rc == 0)
        rc = mesh_start(n);
    if (rc != 0)
        return rc;
    rc = federation_service_start(n);
    if (rc != 0) {
        qpc_log_error("server", "federation on %s: %s", n->sc->federation_listen,
                      qpc_strerror(rc));
        return rc;
    }
    rc = metrics_start(n);
    if (rc != 0)
        return rc;
    if (announce_start(n) != 0)   /* a node without mDNS still serves its clients */
        qpc_log_warn("server", "mDNS announcement could not start; continuing without it");
    return 0;
}

static void stop(struct node *n)
{
    if (ev_is_active(&n->maint_w))
        ev_timer_stop(n->loop, &n->maint_w);
    if (n->queue != NULL && n->client_ep != NULL)
        delivery_flush(n);
    announce_stop(n);
    metrics_stop(n);
    federation_service_stop(n);   /* links end first: their rows go back to the outbox */
    mesh_stop(n);
    federation_stop(n);
    trust_stop(n);
    client_service_stop(n);
    relay_stop(n);
    delivery_stop(n);
    broadcast_stop(n);
    qpc_queue_close(n->queue);
    qpc_identity_free(n->identity);
}

int main(int argc, char **argv)
{
    struct node n = { 0 };
    struct options opt = { 0 };
    enum qpc_log_level level;
    char err[1024] = "";
    int rc, status = 1;

    n.started_mono_ms = node_mono_ms();
    n.started_ms = node_now_ms();
    signal(SIGPIPE, SIG_IGN);
    if (sodium_init() < 0) {
        fprintf(stderr, "qpc-server: libsodium cannot initialise\n");
        return 1;
    }
    if (qpc_config_new(&n.cfg, &server_schema) != 0) {
        fprintf(stderr, "qpc-server: out of memory\n");
        return 1;
    }
    rc = load_config(argc, argv, n.cfg, &opt, err, sizeof(err));
    if (rc == 1) {
        status = 0;
        goto out;
    }
    if (rc != 0) {
        fprintf(stderr, "qpc-server: %s\n", err[0] ? err : qpc_strerror(rc));
        fprintf(stderr, "qpc-server: configuration error; see qpc-server --help and "
                        "docs/config.md\n");
        status = EXIT_CONFIG;
        goto out;
    }
    n.sc = server_settings(n.cfg);
    if (opt.print_key) {
        status = print_federation_key(&n);
        goto out;
    }
    if (opt.check_config) {
        qpc_config_print(n.cfg, stdout);
        fprintf(stderr, "qpc-server: configuration is valid\n");
        status = 0;
        goto out;
    }
    if (qpc_log_level_parse(n.sc->log_level, &level) == 0)
        qpc_log_set_level(level);
    qpc_log_set_timestamps(1);

    n.loop = ev_default_loop(0);
    if (start(&n) == 0) {
        print_banner(&n);
        ev_signal_init(&n.sigterm_w, on_signal, SIGTERM);
        ev_signal_init(&n.sigint_w, on_signal, SIGINT);
        n.sigterm_w.data = n.sigint_w.data = &n;
        ev_signal_start(n.loop, &n.sigterm_w);
        ev_signal_start(n.loop, &n.sigint_w);
        ev_timer_init(&n.maint_w, maintenance, MAINT_INTERVAL_S, MAINT_INTERVAL_S);
        n.maint_w.data = &n;
        ev_timer_start(n.loop, &n.maint_w);
        ev_run(n.loop, 0);
        ev_signal_stop(n.loop, &n.sigterm_w);
        ev_signal_stop(n.loop, &n.sigint_w);
        status = 0;
    }
    stop(&n);
    if (status == 0)
        qpc_log_info("server", "stopped");
out:
    qpc_config_free(n.cfg);
    return status;
}
