/*
 * metrics.c: the Prometheus text endpoint (libmicrohttpd), on loopback by default.
 *
 * The one idea: libmicrohttpd runs without a thread of its own. It is started in epoll
 * mode and its single epoll descriptor is watched by the node's libev loop, so a scrape
 * is served between two loop iterations and reads the counters without locks; the
 * counters are plain integers the rest of the node increments.
 *
 * What is shown: plain counters of struct node_counters come from one table (COUNTERS:
 * name, help, field), so a new counter is one line there; everything with labels or
 * computed at the scrape has a small render function per area (process, connections,
 * queues, federation, mDNS, errors). Names follow Prometheus' rules (base units in the name,
 * _total on counters, a HELP and TYPE line for every family); tests/it_metrics.sh runs
 * `promtool check metrics` on a live node, and docs/server.md lists every metric with
 * what to alert on (packaging/prometheus/qpc-alerts.yml).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <ngtcp2/ngtcp2.h>
#include <sqlite3.h>

#include "qpc/error.h"
#include "qpc/log.h"
#include "announce.h"
#include "mesh.h"
#include "metrics.h"
#include "relay.h"
#include "federation.h"
#include "session.h"

#ifndef QPC_BUILD_TYPE
#define QPC_BUILD_TYPE "unknown"
#endif
#if defined(__SANITIZE_ADDRESS__)
#define BUILD_SANITIZE "address,undefined"   /* QPC_SANITIZE turns on both together */
#else
#define BUILD_SANITIZE "none"
#endif

struct metrics {
    struct MHD_Daemon *daemon;
    ev_io io;
    ev_timer timer;
    struct node *node;
};

static const char *const ERR_NAMES[ERRK_COUNT] = {
    [ERRK_INVALID] = "invalid", [ERRK_FORBIDDEN] = "forbidden",
    [ERRK_QUEUE_FULL] = "queue_full", [ERRK_TOO_LARGE] = "too_large",
    [ERRK_EXPIRED] = "expired", [ERRK_UNKNOWN_DOMAIN] = "unknown_domain",
    [ERRK_INTERNAL] = "internal", [ERRK_PROTOCOL] = "protocol",
    [ERRK_FEDERATION] = "federation_unreachable", [ERRK_RELAY_DROPPED] = "relay_dropped",
};

/* A counter of struct node_counters without labels. */
struct counter_metric {
    const char *name;
    const char *help;
    size_t offset;   /* of its uint64_t in struct node_counters */
};

#define COUNTER(name, field, help) { name, help, offsetof(struct node_counters, field) }

static const struct counter_metric COUNTERS[] = {
    /* delivery */
    COUNTER("qpc_enqueued_total", enqueued, "Envelopes committed to a local queue."),
    COUNTER("qpc_deferred_total", deferred, "Envelopes committed to the federation outbox."),
    COUNTER("qpc_delivered_total", delivered, "Envelopes handed to recipients (fetch and push)."),
    COUNTER("qpc_acked_total", acked, "Envelopes deleted after the recipient's ack."),
    COUNTER("qpc_commits_total", commits, "Group commits (one durable transaction each)."),
    /* federation */
    COUNTER("qpc_federated_total", federated, "Envelopes accepted by a remote node."),
    COUNTER("qpc_federated_received_total", federated_in,
            "Envelopes received from remote nodes and stored."),
    /* relay and hole punching (docs/paths.md) */
    COUNTER("qpc_relayed_packets_total", relayed_packets, "Relay datagrams forwarded."),
    COUNTER("qpc_punch_requests_total", punch_requests,
            "Hole punches clients asked this node to coordinate (PathRequest.punch)."),
    COUNTER("qpc_punch_refused_total", punch_refused,
            "Punch requests refused by the per-client punch rate."),
    COUNTER("qpc_punch_notices_total", punch_notices,
            "Punch notices sent (one per session of the peer asked for)."),
    COUNTER("qpc_punch_direct_total", punch_direct,
            "Direct paths clients reported after a punch this node coordinated."),
    /* broadcasts */
    COUNTER("qpc_broadcasts_received_total", broadcasts_in,
            "New broadcasts verified (from clients and nodes)."),
    COUNTER("qpc_broadcasts_relayed_total", broadcasts_relayed,
            "Broadcast copies sent to clients and federation peers."),
    COUNTER("qpc_broadcasts_duplicate_total", broadcasts_duplicate,
            "Broadcasts dropped because their id was already seen."),
    COUNTER("qpc_broadcasts_later_copies_total", broadcasts_later_copies,
            "Broadcasts seen before that came by fewer hops and were passed on again."),
    COUNTER("qpc_broadcasts_rate_limited_total", broadcasts_rate_limited,
            "Client broadcasts refused by the per-client rate limit."),
    COUNTER("qpc_broadcasts_known_invalid_total", broadcasts_known_invalid,
            "Replays of a forged broadcast, refused without a signature check."),
    COUNTER("qpc_broadcasts_dedup_full_total", broadcasts_dedup_full,
            "Broadcasts refused because the dedup set was full of ids within their TTL."),
    /* announces (docs/routing.md, "Through nodes") */
    COUNTER("qpc_announces_received_total", announces_in,
            "New announces verified (signature and hash chain), from clients and nodes."),
    COUNTER("qpc_announces_passed_total", announces_passed,
            "Announce copies passed on to clients and to federated and static peers."),
    COUNTER("qpc_announces_duplicate_total", announces_duplicate,
            "Announces dropped as already seen (same origin and seqno, or an older seqno)."),
    COUNTER("qpc_announces_shed_total", announces_shed,
            "Announce copies not sent to a client over its budget (2 a second, bursts of 60)."),
};

static void family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One family with one unlabelled sample. */
static void metric(FILE *f, const char *name, const char *type, const char *help, uint64_t v)
{
    family(f, name, type, help);
    fprintf(f, "%s %llu\n", name, (unsigned long long)v);
}

/* One family with a sample per service: the client endpoint and the federation one. */
static void per_service(FILE *f, const char *name, const char *type, const char *help,
                        uint64_t client, uint64_t federation)
{
    family(f, name, type, help);
    fprintf(f, "%s{service=\"client\"} %llu\n", name, (unsigned long long)client);
    fprintf(f, "%s{service=\"federation\"} %llu\n", name, (unsigned long long)federation);
}

static void gauge_seconds(FILE *f, const char *name, const char *help, uint64_t ms)
{
    family(f, name, "gauge", help);
    fprintf(f, "%s %llu.%03u\n", name, (unsigned long long)(ms / 1000), (unsigned)(ms % 1000));
}

/* A label value as the text format wants it: backslash, quote and newline escaped. */
static void label_value(FILE *f, const char *v)
{
    for (; *v != '\0'; v++) {
        if (*v == '\\' || *v == '"')
            fputc('\\', f);
        if (*v == '\n')
            fputs("\\n", f);
        else
            fputc(*v, f);
    }
}

static void render_process(FILE *f, const struct node *n)
{
    const ngtcp2_info *ng = ngtcp2_version(0);
    const char *const labels[][2] = {
        { "version", QPC_VERSION }, { "build_type", QPC_BUILD_TYPE },
        { "sanitize", BUILD_SANITIZE }, { "sqlite", sqlite3_libversion() },
        { "ngtcp2", ng != NULL ? ng->version_str : "" },
        { "gnutls", gnutls_check_version(NULL) }, { "microhttpd", MHD_get_version() },
    };

    family(f, "qpc_build_info", "gauge",
           "Always 1; the labels say which qpc-server runs, how it was built and the "
           "versions of the libraries it runs with.");
    fputs("qpc_build_info{", f);
    for (size_t i = 0; i < sizeof(labels) / sizeof(labels[0]); i++) {
        fprintf(f, "%s%s=\"", i > 0 ? "," : "", labels[i][0]);
        label_value(f, labels[i][1] != NULL ? labels[i][1] : "");
        fputc('"', f);
    }
    fputs("} 1\n", f);
    gauge_seconds(f, "qpc_uptime_seconds", "Seconds since the process started (monotonic clock).",
                  node_mono_ms() - n->started_mono_ms);
    gauge_seconds(f, "process_start_time_seconds",
                  "Start time of the process since the Unix epoch in seconds.", n->started_ms);
}

static void render_connections(FILE *f, const struct node *n)
{
    /* Federation: established only; a dial that is still trying to reach a node that is
     * down is not a connection. */
    per_service(f, "qpc_connections", "gauge", "Open QUIC connections.",
                session_endpoint_conn_count(n->client_ep),
                n->c.fed_accepted_open + federation_links_up(n));
    per_service(f, "qpc_connections_total", "counter", "Connections accepted or opened.",
                n->c.connections_total, n->c.fed_connections_total);
    family(f, "qpc_connections_refused_total", "counter",
           "Client connections refused over a cap.");
    fprintf(f, "qpc_connections_refused_total{reason=\"node_full\"} %llu\n",
            (unsigned long long)n->c.conn_refused[CONN_REFUSED_FULL]);
    fprintf(f, "qpc_connections_refused_total{reason=\"per_key\"} %llu\n",
            (unsigned long long)n->c.conn_refused[CONN_REFUSED_PER_KEY]);
    {
        struct qpc_quic_endpoint_stats cs, fs;

        session_endpoint_quic_stats(n->client_ep, &cs);
        session_endpoint_quic_stats(n->fed_ep, &fs);
        per_service(f, "qpc_quic_retries_total", "counter",
                    "QUIC Retry packets sent: new peers asked to prove their address "
                    "(quic_retry_threshold).", cs.retries_sent, fs.retries_sent);
        per_service(f, "qpc_quic_retry_tokens_refused_total", "counter",
                    "Initials whose Retry token did not verify (dropped).",
                    cs.tokens_refused, fs.tokens_refused);
        per_service(f, "qpc_quic_initials_unopened_total", "counter",
                    "New peers' Initials whose protection did not open (forged or damaged; "
                    "dropped before any state).", cs.initials_unopened, fs.initials_unopened);
        per_service(f, "qpc_quic_retry_superseded_total", "counter",
                    "Half-open connections ended because their client went on after a "
                    "Retry under another connection id.", cs.retry_superseded,
                    fs.retry_superseded);
    }
}

static void render_counters(FILE *f, const struct node *n)
{
    for (size_t i = 0; i < sizeof(COUNTERS) / sizeof(COUNTERS[0]); i++) {
        const uint64_t *v = (const uint64_t *)((const char *)&n->c + COUNTERS[i].offset);

        metric(f, COUNTERS[i].name, "counter", COUNTERS[i].help, *v);
    }
}

/* Age of a row stored at enqueued_ms (0: no row), never negative. */
static uint64_t age_ms(uint64_t now_ms, uint64_t enqueued_ms)
{
    return enqueued_ms != 0 && now_ms > enqueued_ms ? now_ms - enqueued_ms : 0;
}

/* The delivery queues and the outbox: depth, age of the oldest row, limits. */
/* Time to a direct path after a punch (a histogram in seconds, as Prometheus wants its
 * units; the node counts milliseconds) and the relay's per-client figures. */
static void render_paths(FILE *f, struct node *n)
{
    static const uint32_t bounds_ms[NODE_PUNCH_BUCKETS] = NODE_PUNCH_BUCKET_BOUNDS;
    const char *name = "qpc_punch_time_to_direct_seconds";

    family(f, name, "histogram",
           "Time from asking for a punch to the direct path, as reported by the asking client.");
    for (size_t b = 0; b < NODE_PUNCH_BUCKETS; b++)
        fprintf(f, "%s_bucket{le=\"%u.%03u\"} %llu\n", name, bounds_ms[b] / 1000,
                bounds_ms[b] % 1000, (unsigned long long)n->c.punch_ms_buckets[b]);
    fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)n->c.punch_direct);
    fprintf(f, "%s_sum %llu.%03u\n", name, (unsigned long long)(n->c.punch_ms_sum / 1000),
            (unsigned)(n->c.punch_ms_sum % 1000));
    fprintf(f, "%s_count %llu\n", name, (unsigned long long)n->c.punch_direct);
    relay_metrics_write(n, f);
}

static void render_queues(FILE *f, struct node *n)
{
    struct qpc_queue_stats st = { 0 };
    struct qpc_queue_limits lim;
    uint64_t now = node_now_ms();

    if (qpc_queue_stats(n->queue, &st) != 0)
        n->c.errors[ERRK_INTERNAL]++;
    qpc_queue_limits_get(n->queue, &lim);
    metric(f, "qpc_queued_messages", "gauge", "Messages in delivery queues.", st.items);
    metric(f, "qpc_queued_bytes", "gauge", "Bytes in delivery queues.", st.bytes);
    metric(f, "qpc_queue_recipients", "gauge", "Recipients with queued messages.", st.recipients);
    gauge_seconds(f, "qpc_queue_oldest_message_age_seconds",
                  "Seconds since the oldest message still in a delivery queue was stored "
                  "(0 when the queues are empty).", age_ms(now, st.oldest_enqueued_ms));
    metric(f, "qpc_queue_max_bytes", "gauge",
           "Bytes all delivery queues may hold together (queue_max_bytes).", lim.max_total_bytes);
    metric(f, "qpc_queue_recipient_max_messages", "gauge",
           "Messages one recipient's queue may hold (queue_quota).", lim.max_items_per_recipient);
    metric(f, "qpc_outbox_depth", "gauge", "Envelopes waiting for a remote node.",
           st.outbox_items);
    metric(f, "qpc_outbox_bytes", "gauge", "Bytes waiting for a remote node.", st.outbox_bytes);
    gauge_seconds(f, "qpc_outbox_oldest_message_age_seconds",
                  "Seconds since the oldest envelope still waiting for a remote node was "
                  "stored (0 when the outbox is empty).", age_ms(now, st.outbox_oldest_enqueued_ms));
    metric(f, "qpc_outbox_max_messages", "gauge", "Envelopes the outbox may hold.",
           lim.max_outbox_items);
    metric(f, "qpc_queue_transactions_total", "counter",
           "Write transactions committed to queue.db (made durable by the sync thread's fsyncs).",
           qpc_queue_transactions(n->queue));
}

static void peer_up(const struct federation_peer_state *st, void *arg)
{
    if (st->via == NULL && !st->static_peer)
        fprintf(arg, "qpc_federation_peer_up{domain=\"%s\"} %d\n", st->domain, st->up ? 1 : 0);
}

static void peer_last_ok(const struct federation_peer_state *st, void *arg)
{
    if (st->via == NULL && !st->static_peer && st->last_ok_ms > 0)
        fprintf(arg, "qpc_federation_peer_last_success_seconds{domain=\"%s\"} %llu.%03u\n",
                st->domain, (unsigned long long)(st->last_ok_ms / 1000),
                (unsigned)(st->last_ok_ms % 1000));
}

static void peer_failures(const struct federation_peer_state *st, void *arg)
{
    if (st->via == NULL && !st->static_peer)
        fprintf(arg, "qpc_federation_peer_failures_total{domain=\"%s\"} %llu\n", st->domain,
                (unsigned long long)st->failures);
}

static void peer_route(const struct federation_peer_state *st, void *arg)
{
    if (st->via != NULL && st->up)
        fprintf(arg, "qpc_federation_route_hops{domain=\"%s\",via=\"%s\"} %u\n", st->domain,
                st->via, st->metric);
}

static void static_peer_up(const struct federation_peer_state *st, void *arg)
{
    if (st->static_peer) {
        fputs("qpc_static_peer_up{address=\"", arg);
        label_value(arg, st->domain);
        fprintf(arg, "\"} %d\n", st->up ? 1 : 0);
    }
}

/* Per peer domain (domains are DNS names: nothing to escape in a label value). */
static void render_federation(FILE *f, struct node *n)
{
    family(f, "qpc_federation_peer_up", "gauge", "1 while the link to the node of this domain "
           "is open (its key or certificate proven), else 0.");
    federation_foreach_peer(n, peer_up, f);
    family(f, "qpc_federation_peer_last_success_seconds", "gauge", "Unix time of the last link "
           "opened to or answer from the node of this domain.");
    federation_foreach_peer(n, peer_last_ok, f);
    family(f, "qpc_federation_peer_failures_total", "counter", "Connections to the node of "
           "this domain that never came up (unreachable, or it did not prove the domain).");
    federation_foreach_peer(n, peer_failures, f);
    family(f, "qpc_federation_route_hops", "gauge",
           "Domains reached through another federated node: hops, and the next hop.");
    federation_foreach_peer(n, peer_route, f);
    family(f, "qpc_static_peer_up", "gauge", "1 while the link to this static peer (peers "
           "setting: announces only) is open, else 0.");
    federation_foreach_peer(n, static_peer_up, f);
}

static void render_announces(FILE *f, const struct node *n)
{
    family(f, "qpc_announces_refused_total", "counter", "Announces refused, by reason: "
           "invalid (malformed), forged (signature or hash chain), not_origin (hops 0 from "
           "another than its origin), rate_limited (over the sender's announce rate).");
    for (int k = 0; k < MESH_REFUSED_COUNT; k++)
        fprintf(f, "qpc_announces_refused_total{reason=\"%s\"} %llu\n", mesh_refusal_names[k],
                (unsigned long long)n->c.announces_refused[k]);
    metric(f, "qpc_announce_origins", "gauge",
           "Origins whose latest announce this node keeps for newcomers.", mesh_origins(n));
}

static void render_mdns(FILE *f, const struct node *n)
{
    struct announce_seen seen;

    announce_seen(n, &seen);
    metric(f, "qpc_mdns_enabled", "gauge", "1 when mdns_enabled is set.", n->sc->mdns_enabled);
    metric(f, "qpc_mdns_established", "gauge",
           "1 while this node's mDNS records are published on the link (probing is over).",
           seen.established);
    metric(f, "qpc_mdns_nodes", "gauge",
           "Other nodes announcing _quicprochat._udp on the link now.", seen.nodes);
    metric(f, "qpc_mdns_peers", "gauge",
           "Clients announcing P2P (_quicprochat-p2p._udp) on the link now.", seen.peers);
}

static void render_errors(FILE *f, const struct node *n)
{
    family(f, "qpc_errors_total", "counter", "Refusals and failures by kind.");
    for (int k = 0; k < ERRK_COUNT; k++)
        fprintf(f, "qpc_errors_total{kind=\"%s\"} %llu\n", ERR_NAMES[k],
                (unsigned long long)n->c.errors[k]);
}

char *metrics_render(struct node *n, size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);

    if (f == NULL)
        return NULL;
    render_process(f, n);
    render_connections(f, n);
    render_counters(f, n);
    render_paths(f, n);
    render_queues(f, n);
    render_federation(f, n);
    render_mdns(f, n);
    render_announces(f, n);
    render_errors(f, n);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    static const char not_found[] = "not found: try /metrics\n";
    struct metrics *m = cls;
    struct MHD_Response *resp;
    unsigned code = MHD_HTTP_OK;
    enum MHD_Result ret;
    char *body = NULL;
    size_t len = 0;

    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return MHD_NO;
    if (strcmp(url, "/metrics") == 0 || strcmp(url, "/") == 0)
        body = metrics_render(m->node, &len);
    if (body != NULL) {
        resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    } else {
        code = MHD_HTTP_NOT_FOUND;
        resp = MHD_create_response_from_buffer(sizeof(not_found) - 1, (void *)not_found,
                                               MHD_RESPMEM_PERSISTENT);
    }
    if (resp == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "text/plain; version=0.0.4");
    ret = MHD_queue_response(conn, code, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* Runs libmicrohttpd and re-arms the timer at its next deadline. */
static void run_daemon(struct metrics *m)
{
    MHD_UNSIGNED_LONG_LONG timeout_ms;

    MHD_run(m->daemon);
    ev_timer_stop(m->node->loop, &m->timer);
    if (MHD_get_timeout(m->daemon, &timeout_ms) == MHD_YES) {
        ev_timer_set(&m->timer, (double)timeout_ms / 1000.0, 0.0);
        ev_timer_start(m->node->loop, &m->timer);
    }
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    run_daemon(w->data);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    run_daemon(w->data);
}

int metrics_start(struct node *n)
{
    struct sockaddr_storage ss = { 0 };
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    const union MHD_DaemonInfo *info;
    unsigned flags = MHD_USE_EPOLL;
    struct metrics *m;
    char host[256];
    uint16_t port;
    int rc;

    if (n->sc->metrics_listen[0] == '\0')
        return 0;
    rc = qpc_addr_parse(n->sc->metrics_listen, host, sizeof(host), &port);
    if (rc != 0)
        return rc;
    if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        flags |= MHD_USE_IPv6;
    } else {
        qpc_log_error("metrics", "metrics_listen needs a numeric address, got '%s'", host);
        return QPC_ERR_CONFIG;
    }
    m = calloc(1, sizeof(*m));
    if (m == NULL)
        return QPC_ERR_NOMEM;
    m->node = n;
    m->daemon = MHD_start_daemon(flags, port, NULL, NULL, answer, m, MHD_OPTION_SOCK_ADDR, &ss,
                                 MHD_OPTION_CONNECTION_LIMIT, 64u,
                                 MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
    if (m->daemon == NULL ||
        (info = MHD_get_daemon_info(m->daemon, MHD_DAEMON_INFO_EPOLL_FD)) == NULL) {
        qpc_log_error("metrics", "cannot listen on %s", n->sc->metrics_listen);
        if (m->daemon != NULL)
            MHD_stop_daemon(m->daemon);
        free(m);
        return QPC_ERR_IO;
    }
    ev_io_init(&m->io, io_cb, info->epoll_fd, EV_READ);
    m->io.data = m;
    ev_io_start(n->loop, &m->io);
    ev_init(&m->timer, timer_cb);
    m->timer.data = m;
    n->metrics = m;
    qpc_log_info("metrics", "Prometheus metrics on http://%s/metrics", n->sc->metrics_listen);
    return 0;
}

void metrics_stop(struct node *n)
{
    struct metrics *m = n->metrics;

    if (m == NULL)
        return;
    ev_io_stop(n->loop, &m->io);
    ev_timer_stop(n->loop, &m->timer);
    MHD_stop_daemon(m->daemon);
    free(m);
    n->metrics = NULL;
}
