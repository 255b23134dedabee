/*
 * metrics.c: the Prometheus text endpoint (libmicrohttpd), on loopback by default.
 *
 * The one idea: libmicrohttpd runs without a thread of its own. It is started in epoll
 * mode and its single epoll descriptor is watched by the node's libev loop, so a scrape
 * is served between two loop iterations and reads the counters without locks; the
 * counters are plain integers the rest of the node increments.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <microhttpd.h>

#include "qpc/error.h"
#include "qpc/log.h"
#include "metrics.h"
#include "federation.h"
#include "session.h"

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

static void metric(FILE *f, const char *name, const char *type, const char *help, uint64_t v)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name,
            (unsigned long long)v);
}

static void peer_up(const struct federation_peer_state *st, void *arg)
{
    if (st->via == NULL)
        fprintf(arg, "qpc_federation_peer_up{domain=\"%s\"} %d\n", st->domain, st->up ? 1 : 0);
}

static void peer_last_ok(const struct federation_peer_state *st, void *arg)
{
    if (st->via == NULL && st->last_ok_ms > 0)
        fprintf(arg, "qpc_federation_peer_last_success_seconds{domain=\"%s\"} %llu.%03u\n",
                st->domain, (unsigned long long)(st->last_ok_ms / 1000),
                (unsigned)(st->last_ok_ms % 1000));
}

static void peer_failures(const struct federation_peer_state *st, void *arg)
{
    if (st->via == NULL)
        fprintf(arg, "qpc_federation_peer_failures_total{domain=\"%s\"} %llu\n", st->domain,
                (unsigned long long)st->failures);
}

static void peer_route(const struct federation_peer_state *st, void *arg)
{
    if (st->via != NULL && st->up)
        fprintf(arg, "qpc_federation_route_hops{domain=\"%s\",via=\"%s\"} %u\n", st->domain,
                st->via, st->metric);
}

/* Per peer domain (domains are DNS names: nothing to escape in a label value). */
static void render_peers(struct node *n, FILE *f)
{
    fprintf(f, "# HELP qpc_federation_peer_up 1 while the link to the node of this domain is "
               "open (its key or certificate proven), else 0.\n"
               "# TYPE qpc_federation_peer_up gauge\n");
    federation_foreach_peer(n, peer_up, f);
    fprintf(f, "# HELP qpc_federation_peer_last_success_seconds Unix time of the last link "
               "opened to or answer from the node of this domain.\n"
               "# TYPE qpc_federation_peer_last_success_seconds gauge\n");
    federation_foreach_peer(n, peer_last_ok, f);
    fprintf(f, "# HELP qpc_federation_peer_failures_total Connections to the node of this "
               "domain that never came up (unreachable, or it did not prove the domain).\n"
               "# TYPE qpc_federation_peer_failures_total counter\n");
    federation_foreach_peer(n, peer_failures, f);
    fprintf(f, "# HELP qpc_federation_route_hops Domains reached through another federated "
               "node: hops, and the next hop.\n# TYPE qpc_federation_route_hops gauge\n");
    federation_foreach_peer(n, peer_route, f);
}

char *metrics_render(struct node *n, size_t *len)
{
    struct qpc_queue_stats st = { 0 };
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);

    if (f == NULL)
        return NULL;
    if (qpc_queue_stats(n->queue, &st) != 0)
        n->c.errors[ERRK_INTERNAL]++;
    fprintf(f, "# HELP qpc_connections Open QUIC connections.\n# TYPE qpc_connections gauge\n");
    fprintf(f, "qpc_connections{service=\"client\"} %zu\n",
            session_endpoint_conn_count(n->client_ep));
    /* Established only: a dial that is still trying to reach a node that is down is
     * not a connection. */
    fprintf(f, "qpc_connections{service=\"federation\"} %llu\n",
            (unsigned long long)(n->c.fed_accepted_open + federation_links_up(n)));
    fprintf(f, "# HELP qpc_connections_total Connections accepted or opened.\n"
               "# TYPE qpc_connections_total counter\n");
    fprintf(f, "qpc_connections_total{service=\"client\"} %llu\n",
            (unsigned long long)n->c.connections_total);
    fprintf(f, "qpc_connections_total{service=\"federation\"} %llu\n",
            (unsigned long long)n->c.fed_connections_total);
    fprintf(f, "# HELP qpc_connections_refused_total Client connections refused over a cap.\n"
               "# TYPE qpc_connections_refused_total counter\n");
    fprintf(f, "qpc_connections_refused_total{reason=\"node_full\"} %llu\n",
            (unsigned long long)n->c.conn_refused[CONN_REFUSED_FULL]);
    fprintf(f, "qpc_connections_refused_total{reason=\"per_key\"} %llu\n",
            (unsigned long long)n->c.conn_refused[CONN_REFUSED_PER_KEY]);
    metric(f, "qpc_enqueued_total", "counter", "Envelopes committed to a local queue.",
           n->c.enqueued);
    metric(f, "qpc_deferred_total", "counter", "Envelopes committed to the federation outbox.",
           n->c.deferred);
    metric(f, "qpc_delivered_total", "counter", "Envelopes handed to recipients (fetch and push).",
           n->c.delivered);
    metric(f, "qpc_acked_total", "counter", "Envelopes deleted after the recipient's ack.",
           n->c.acked);
    metric(f, "qpc_federated_total", "counter", "Envelopes accepted by a remote node.",
           n->c.federated);
    metric(f, "qpc_federated_received_total", "counter",
           "Envelopes received from remote nodes and stored.", n->c.federated_in);
    metric(f, "qpc_relayed_packets_total", "counter", "Relay datagrams forwarded.",
           n->c.relayed_packets);
    metric(f, "qpc_broadcasts_received_total", "counter",
           "New broadcasts verified (from clients and nodes).", n->c.broadcasts_in);
    metric(f, "qpc_broadcasts_relayed_total", "counter",
           "Broadcast copies sent to clients and federation peers.", n->c.broadcasts_relayed);
    metric(f, "qpc_broadcasts_duplicate_total", "counter",
           "Broadcasts dropped because their id was already seen.", n->c.broadcasts_duplicate);
    metric(f, "qpc_broadcasts_rate_limited_total", "counter",
           "Client broadcasts refused by the per-client rate limit.",
           n->c.broadcasts_rate_limited);
    metric(f, "qpc_broadcasts_known_invalid_total", "counter",
           "Replays of a forged broadcast, refused without a signature check.",
           n->c.broadcasts_known_invalid);
    metric(f, "qpc_broadcasts_dedup_full_total", "counter",
           "Broadcasts refused because the dedup set was full of ids within their TTL.",
           n->c.broadcasts_dedup_full);
    metric(f, "qpc_commits_total", "counter", "Group commits (one durable transaction each).",
           n->c.commits);
    metric(f, "qpc_queued_messages", "gauge", "Messages in delivery queues.", st.items);
    metric(f, "qpc_queued_bytes", "gauge", "Bytes in delivery queues.", st.bytes);
    metric(f, "qpc_queue_recipients", "gauge", "Recipients with queued messages.", st.recipients);
    metric(f, "qpc_outbox_depth", "gauge", "Envelopes waiting for a remote node.",
           st.outbox_items);
    metric(f, "qpc_outbox_bytes", "gauge", "Bytes waiting for a remote node.", st.outbox_bytes);
    metric(f, "qpc_queue_transactions_total", "counter",
           "Durable transactions committed to queue.db (each one fsync).",
           qpc_queue_transactions(n->queue));
    render_peers(n, f);
    fprintf(f, "# HELP qpc_errors_total Refusals and failures by kind.\n"
               "# TYPE qpc_errors_total counter\n");
    for (int k = 0; k < ERRK_COUNT; k++)
        fprintf(f, "qpc_errors_total{kind=\"%s\"} %llu\n", ERR_NAMES[k],
                (unsigned long long)n->c.errors[k]);
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
