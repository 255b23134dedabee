/*
 * test_mdns.c: the libev AvahiPoll adapter, and qpc_mdns announcing, browsing, goodbyes
 * and collision renames between responders in one process; a node's fixed TXT set and a
 * peer's own service type and TXT set, browsed side by side.
 *
 * The responder tests run inside a private network namespace the test makes for itself
 * (unshare(CLONE_NEWNET), loopback only), so no packet leaves the test; they need root
 * (CAP_SYS_ADMIN) and are skipped without it. Waits are bounded by a deadline timer;
 * nothing asserts on how long anything took.
 */
#define _GNU_SOURCE /* unshare */
#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <cmocka.h>

#include <avahi-core/log.h>

#include "mdns_poll.h"
#include "qpc/error.h"
#include "qpc/log.h"
#include "qpc/mdns.h"

#define DEADLINE_S 30.0 /* far beyond what mDNS probing needs; only a guard against hangs */

/* ---- helpers ------------------------------------------------------------------- */

typedef bool (*predicate)(void *arg);

struct wait_state {
    predicate done;
    void *arg;
    bool met;
};

static void wait_check(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct wait_state *s = w->data;

    (void)revents;
    if (s->done(s->arg)) {
        s->met = true;
        ev_break(loop, EVBREAK_ONE);
    }
}

static void wait_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w, (void)revents;
    ev_break(loop, EVBREAK_ONE);
}

/* Runs loop until done(arg) holds (true) or DEADLINE_S passes (false). */
static bool run_until(struct ev_loop *loop, predicate done, void *arg)
{
    struct wait_state s = { .done = done, .arg = arg };
    ev_timer check, deadline;

    check.data = &s;
    ev_timer_init(&check, wait_check, 0.02, 0.02);
    ev_timer_init(&deadline, wait_deadline, DEADLINE_S, 0.);
    ev_timer_start(loop, &check);
    ev_timer_start(loop, &deadline);
    ev_run(loop, 0);
    ev_timer_stop(loop, &check);
    ev_timer_stop(loop, &deadline);
    return s.met;
}

/* ---- the AvahiPoll adapter --------------------------------------------------------- */

struct timeout_probe {
    const AvahiPoll *api;
    int fired;
    int rearm_until; /* re-arm from the callback until fired reaches this */
    bool free_in_callback;
};

static void timeout_cb(AvahiTimeout *t, void *userdata)
{
    struct timeout_probe *p = userdata;
    struct timeval now;

    p->fired++;
    if (p->free_in_callback) {
        p->api->timeout_free(t);
    } else if (p->fired < p->rearm_until) {
        gettimeofday(&now, NULL);
        p->api->timeout_update(t, &now);
    }
}

static bool fired_three_times(void *arg)
{
    return ((struct timeout_probe *)arg)->fired >= 3;
}

static void test_poll_timeout_fires_and_can_be_rearmed_from_its_callback(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct qpc_mdns_poll *poll = qpc_mdns_poll_new(loop);
    struct timeout_probe p = { .api = qpc_mdns_poll_api(poll), .rearm_until = 3 };
    struct timeval past = { .tv_sec = 1, .tv_usec = 0 }; /* long ago: due at once */
    AvahiTimeout *t = p.api->timeout_new(p.api, &past, timeout_cb, &p);

    (void)state;
    assert_non_null(t);
    assert_true(run_until(loop, fired_three_times, &p));
    assert_int_equal(p.fired, 3);
    p.api->timeout_free(t);
    qpc_mdns_poll_free(poll);
    ev_loop_destroy(loop);
}

static void test_poll_disabled_timeout_never_fires(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct qpc_mdns_poll *poll = qpc_mdns_poll_new(loop);
    struct timeout_probe p = { .api = qpc_mdns_poll_api(poll) };
    struct timeval now;
    AvahiTimeout *off = p.api->timeout_new(p.api, NULL, timeout_cb, &p);
    AvahiTimeout *cancelled;
    ev_timer guard;

    (void)state;
    gettimeofday(&now, NULL);
    cancelled = p.api->timeout_new(p.api, &now, timeout_cb, &p);
    p.api->timeout_update(cancelled, NULL);
    /* Only the guard is active: the loop runs it once and returns. */
    ev_timer_init(&guard, wait_deadline, 0.2, 0.);
    ev_timer_start(loop, &guard);
    ev_run(loop, 0);
    assert_int_equal(p.fired, 0);
    p.api->timeout_free(off);
    p.api->timeout_free(cancelled);
    qpc_mdns_poll_free(poll);
    ev_loop_destroy(loop);
}

static void test_poll_timeout_may_free_itself_in_its_callback(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct qpc_mdns_poll *poll = qpc_mdns_poll_new(loop);
    struct timeout_probe p = { .api = qpc_mdns_poll_api(poll), .free_in_callback = true };
    struct timeval now;

    (void)state;
    gettimeofday(&now, NULL);
    assert_non_null(p.api->timeout_new(p.api, &now, timeout_cb, &p));
    ev_run(loop, 0); /* returns when nothing is active any more: the timeout freed itself */
    assert_int_equal(p.fired, 1);
    qpc_mdns_poll_free(poll);
    ev_loop_destroy(loop);
}

struct watch_probe {
    const AvahiPoll *api;
    int calls;
    AvahiWatchEvent seen, reported;
};

static void watch_cb(AvahiWatch *w, int fd, AvahiWatchEvent event, void *userdata)
{
    struct watch_probe *p = userdata;
    char byte;

    p->calls++;
    p->seen = event;
    p->reported = p->api->watch_get_events(w);
    assert_int_equal(read(fd, &byte, 1), 1);
    p->api->watch_free(w); /* allowed from inside the callback */
}

static void test_poll_watch_reports_readable_fd(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct qpc_mdns_poll *poll = qpc_mdns_poll_new(loop);
    struct watch_probe p = { .api = qpc_mdns_poll_api(poll) };
    int fds[2];

    (void)state;
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(write(fds[1], "x", 1), 1);
    assert_non_null(p.api->watch_new(p.api, fds[0], AVAHI_WATCH_IN, watch_cb, &p));
    ev_run(loop, 0); /* returns once the watch has freed itself */
    assert_int_equal(p.calls, 1);
    assert_int_equal(p.seen, AVAHI_WATCH_IN);
    assert_int_equal(p.reported, AVAHI_WATCH_IN);
    close(fds[0]);
    close(fds[1]);
    qpc_mdns_poll_free(poll);
    ev_loop_destroy(loop);
}

static void test_poll_watch_without_events_stays_quiet_until_updated(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct qpc_mdns_poll *poll = qpc_mdns_poll_new(loop);
    struct watch_probe p = { .api = qpc_mdns_poll_api(poll) };
    AvahiWatch *w;
    ev_timer guard;
    int fds[2];

    (void)state;
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(write(fds[1], "x", 1), 1);
    w = p.api->watch_new(p.api, fds[0], AVAHI_WATCH_IN, watch_cb, &p);
    p.api->watch_update(w, 0);
    ev_timer_init(&guard, wait_deadline, 0.2, 0.);
    ev_timer_start(loop, &guard);
    ev_run(loop, 0);
    assert_int_equal(p.calls, 0);
    p.api->watch_update(w, AVAHI_WATCH_IN);
    ev_run(loop, 0); /* the callback reads the byte and frees w */
    assert_int_equal(p.calls, 1);
    close(fds[0]);
    close(fds[1]);
    qpc_mdns_poll_free(poll);
    ev_loop_destroy(loop);
}

/* ---- pure helpers -------------------------------------------------------------------- */

static void test_mdns_host_label_is_qpc_and_first_8_hex_of_key(void **state)
{
    uint8_t key[QPC_KEY_LEN] = { 0x1a, 0x2b, 0x3c, 0x4d, 0xff };
    char label[QPC_MDNS_HOST_LABEL_LEN];

    (void)state;
    qpc_mdns_host_label_from_key(label, key);
    assert_string_equal(label, "qpc-1a2b3c4d");
}

/* ---- responders in a private network namespace --------------------------------------- */

static const char *const LOOPBACK_ONLY[] = { "lo", NULL };

/* Set when the private namespace could not be made: main() then reports the test as
 * skipped (exit 77, CTest's SKIP_RETURN_CODE) rather than passed. */
static bool netns_unavailable;

/* Moves this process into a new, empty network namespace with lo up. */
static int private_netns(void **state)
{
    struct ifreq ifr = { 0 };
    int fd;

    (void)state;
    if (unshare(CLONE_NEWNET) != 0) {
        print_message("cannot unshare the network namespace (%s): responder tests skipped\n",
                      strerror(errno));
        netns_unavailable = true;
        return 0;
    }
    fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(fd >= 0);
    strcpy(ifr.ifr_name, "lo");
    assert_int_equal(ioctl(fd, SIOCGIFFLAGS, &ifr), 0);
    ifr.ifr_flags |= IFF_UP;
    assert_int_equal(ioctl(fd, SIOCSIFFLAGS, &ifr), 0);
    close(fd);
    *state = (void *)1;
    return 0;
}

#define NEED_NETNS(state)                                                                \
    do {                                                                                 \
        if (*(state) == NULL)                                                            \
            skip();                                                                      \
    } while (0)

static struct qpc_mdns *responder(struct ev_loop *loop, const char *host_label)
{
    struct qpc_mdns_config cfg = { .host_label = host_label, .interfaces = LOOPBACK_ONLY };
    struct qpc_mdns *m = NULL;

    assert_int_equal(qpc_mdns_new(loop, &cfg, &m), 0);
    assert_non_null(m);
    return m;
}

struct sighting {
    int added, removed;
    char name[QPC_MDNS_LABEL_MAX + 8];
    char type[64];
    char ver[8], server[64], domain[64], host[80];
    uint16_t port;
    size_t txt_count;
    char txt[QPC_MDNS_TXT_MAX][96]; /* "key=value" as reported, in order */
    char peer_via_lookup[80];       /* qpc_mdns_service_txt(svc, "peer") */
};

static void copy_or_empty(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src != NULL ? src : "");
}

static void on_service(const struct qpc_mdns_service *svc, bool added, void *arg)
{
    struct sighting *s = arg;

    if (added)
        s->added++;
    else
        s->removed++;
    copy_or_empty(s->name, sizeof(s->name), svc->name);
    copy_or_empty(s->ver, sizeof(s->ver), svc->ver);
    copy_or_empty(s->server, sizeof(s->server), svc->server);
    copy_or_empty(s->domain, sizeof(s->domain), svc->domain);
    copy_or_empty(s->host, sizeof(s->host), svc->host);
    copy_or_empty(s->type, sizeof(s->type), svc->type);
    copy_or_empty(s->peer_via_lookup, sizeof(s->peer_via_lookup), qpc_mdns_service_txt(svc, "peer"));
    s->port = svc->port;
    s->txt_count = svc->txt_count;
    for (size_t i = 0; i < svc->txt_count && i < QPC_MDNS_TXT_MAX; i++)
        snprintf(s->txt[i], sizeof(s->txt[i]), "%s=%s", svc->txt[i].key, svc->txt[i].value);
}

static bool seen_added(void *arg)
{
    return ((struct sighting *)arg)->added > 0;
}

static bool seen_removed(void *arg)
{
    return ((struct sighting *)arg)->removed > 0;
}

static void test_mdns_browser_resolves_announcement_and_sees_goodbye(void **state)
{
    struct ev_loop *loop;
    struct qpc_mdns *node, *client;
    struct sighting s = { 0 };

    NEED_NETNS(state);
    loop = ev_loop_new(EVFLAG_AUTO);
    node = responder(loop, "qpc-node0001");
    client = responder(loop, "qpc-client01");
    assert_int_equal(qpc_mdns_announce(node, "nodeA", 7000, "10.201.0.1:7000", "nodeA.mesh.local"), 0);
    assert_int_equal(qpc_mdns_browse_start(client, on_service, &s), 0);
    assert_int_equal(qpc_mdns_browse_start(client, on_service, &s), QPC_ERR_EXISTS);

    assert_true(run_until(loop, seen_added, &s));
    assert_string_equal(s.name, "nodeA");
    assert_string_equal(s.ver, "1");
    assert_string_equal(s.server, "10.201.0.1:7000");
    assert_string_equal(s.domain, "nodeA.mesh.local");
    assert_string_equal(s.host, "qpc-node0001.local");
    assert_int_equal(s.port, 7000);
    assert_int_equal(s.removed, 0);
    /* The node's TXT set is exactly these three, in this order. */
    assert_string_equal(s.type, QPC_MDNS_SERVICE_TYPE);
    assert_int_equal(s.txt_count, 3);
    assert_string_equal(s.txt[0], "ver=1");
    assert_string_equal(s.txt[1], "server=10.201.0.1:7000");
    assert_string_equal(s.txt[2], "domain=nodeA.mesh.local");

    assert_int_equal(qpc_mdns_withdraw(node), 0);
    assert_null(qpc_mdns_announced_name(node));
    assert_true(run_until(loop, seen_removed, &s));
    assert_string_equal(s.name, "nodeA");

    qpc_mdns_free(client);
    qpc_mdns_free(node);
    ev_loop_destroy(loop);
}

struct pair {
    struct qpc_mdns *a, *b;
};

static bool both_established(void *arg)
{
    struct pair *p = arg;

    return qpc_mdns_is_established(p->a) && qpc_mdns_is_established(p->b);
}

static void test_mdns_renames_instance_when_name_is_taken(void **state)
{
    struct ev_loop *loop;
    struct pair p;
    const char *first, *second;

    NEED_NETNS(state);
    loop = ev_loop_new(EVFLAG_AUTO);
    p.a = responder(loop, "qpc-dupa0001");
    p.b = responder(loop, "qpc-dupb0001");
    assert_int_equal(qpc_mdns_announce(p.a, "same", 7000, "10.0.0.1:7000", "a.mesh.local"), 0);
    assert_int_equal(qpc_mdns_announce(p.b, "same", 7000, "10.0.0.2:7000", "b.mesh.local"), 0);
    assert_true(run_until(loop, both_established, &p));
    first = qpc_mdns_announced_name(p.a);
    second = qpc_mdns_announced_name(p.b);
    assert_non_null(first);
    assert_non_null(second);
    assert_string_not_equal(first, second);
    /* One keeps the name, the other takes Avahi's alternative "same #2". */
    assert_true((strcmp(first, "same") == 0 && strcmp(second, "same #2") == 0) ||
                (strcmp(first, "same #2") == 0 && strcmp(second, "same") == 0));
    /* Different host labels on one machine do not collide: the host names stay. */
    assert_string_equal(qpc_mdns_host_name(p.a), "qpc-dupa0001.local");
    assert_string_equal(qpc_mdns_host_name(p.b), "qpc-dupb0001.local");
    qpc_mdns_free(p.a);
    qpc_mdns_free(p.b);
    ev_loop_destroy(loop);
}

/*
 * Two responders on one machine with the same host label publish identical address
 * records, which RFC 6762 does not count as a conflict: both run, neither renames.
 * (Different labels on one machine must not collide either: no reverse PTR records.)
 */
static void test_mdns_same_host_label_on_one_machine_is_no_conflict(void **state)
{
    struct ev_loop *loop;
    struct pair p;

    NEED_NETNS(state);
    loop = ev_loop_new(EVFLAG_AUTO);
    p.a = responder(loop, "qpc-twin0001");
    p.b = responder(loop, "qpc-twin0001");
    assert_int_equal(qpc_mdns_announce(p.a, "twin a", 7000, "10.0.0.1:7000", NULL), 0);
    assert_int_equal(qpc_mdns_announce(p.b, "twin b", 7000, "10.0.0.2:7000", NULL), 0);
    assert_true(run_until(loop, both_established, &p));
    assert_string_equal(qpc_mdns_host_name(p.a), "qpc-twin0001.local");
    assert_string_equal(qpc_mdns_host_name(p.b), "qpc-twin0001.local");
    assert_string_equal(qpc_mdns_announced_name(p.a), "twin a");
    assert_string_equal(qpc_mdns_announced_name(p.b), "twin b");
    qpc_mdns_free(p.a);
    qpc_mdns_free(p.b);
    ev_loop_destroy(loop);
}

static void test_mdns_announce_refuses_bad_arguments(void **state)
{
    struct ev_loop *loop;
    struct qpc_mdns *m;
    char long_name[QPC_MDNS_LABEL_MAX + 2];

    NEED_NETNS(state);
    loop = ev_loop_new(EVFLAG_AUTO);
    m = responder(loop, "qpc-args0001");
    memset(long_name, 'x', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    assert_int_equal(qpc_mdns_announce(m, "", 7000, "h:1", NULL), QPC_ERR_INVALID);
    assert_int_equal(qpc_mdns_announce(m, long_name, 7000, "h:1", NULL), QPC_ERR_INVALID);
    assert_int_equal(qpc_mdns_announce(m, "ok", 0, "h:1", NULL), QPC_ERR_INVALID);
    assert_int_equal(qpc_mdns_announce(m, "ok", 7000, NULL, NULL), QPC_ERR_INVALID);
    assert_null(qpc_mdns_announced_name(m));
    assert_int_equal(qpc_mdns_browse_start(m, NULL, NULL), QPC_ERR_INVALID);
    qpc_mdns_free(m);
    ev_loop_destroy(loop);
}

#define PEER_HEX "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f809"

struct two_sightings {
    struct sighting nodes, peers;
};

static bool saw_node_and_peer(void *arg)
{
    struct two_sightings *t = arg;

    return t->nodes.added > 0 && t->peers.added > 0;
}

/*
 * A client announces its own service type with its own TXT set; a browser of both types
 * gets the node through the node callback and the peer through the peer callback, each
 * with every TXT pair in the order announced, and neither type leaks into the other.
 */
static void test_mdns_browses_each_type_with_its_own_callback_and_every_txt_pair(void **state)
{
    struct ev_loop *loop;
    struct qpc_mdns *node, *peer, *client;
    struct two_sightings t = { 0 };
    const struct qpc_mdns_txt txt[] = {
        { "ver", "1" }, { "peer", PEER_HEX }, { "p2p", "10.201.0.7:41000" }, { "x-empty", "" },
    };
    const struct qpc_mdns_announcement a = {
        .type = QPC_MDNS_P2P_SERVICE_TYPE, .instance = "peer-1a2b3c4d", .port = 41000,
        .txt = txt, .txt_count = 4,
    };

    NEED_NETNS(state);
    loop = ev_loop_new(EVFLAG_AUTO);
    node = responder(loop, "qpc-tnode001");
    peer = responder(loop, "qpc-tpeer001");
    client = responder(loop, "qpc-tclnt001");
    assert_int_equal(qpc_mdns_announce(node, "nodeB", 7000, "10.201.0.1:7000", "b.mesh.local"), 0);
    assert_int_equal(qpc_mdns_announce_service(peer, &a), 0);
    assert_int_equal(qpc_mdns_browse_start(client, on_service, &t.nodes), 0);
    assert_int_equal(qpc_mdns_browse_type_start(client, QPC_MDNS_P2P_SERVICE_TYPE, on_service, &t.peers), 0);
    assert_int_equal(qpc_mdns_browse_type_start(client, QPC_MDNS_P2P_SERVICE_TYPE, on_service, &t.peers),
                     QPC_ERR_EXISTS);

    assert_true(run_until(loop, saw_node_and_peer, &t));
    assert_string_equal(t.peers.type, QPC_MDNS_P2P_SERVICE_TYPE);
    assert_string_equal(t.peers.name, "peer-1a2b3c4d");
    assert_string_equal(t.peers.host, "qpc-tpeer001.local");
    assert_int_equal(t.peers.port, 41000);
    assert_int_equal(t.peers.txt_count, 4);
    assert_string_equal(t.peers.txt[0], "ver=1");
    assert_string_equal(t.peers.txt[1], "peer=" PEER_HEX);
    assert_string_equal(t.peers.txt[2], "p2p=10.201.0.7:41000");
    assert_string_equal(t.peers.txt[3], "x-empty=");
    assert_string_equal(t.peers.peer_via_lookup, PEER_HEX);
    assert_string_equal(t.peers.ver, "1");
    assert_string_equal(t.peers.server, ""); /* no server= in a peer's set */
    assert_string_equal(t.nodes.type, QPC_MDNS_SERVICE_TYPE);
    assert_string_equal(t.nodes.name, "nodeB");
    assert_int_equal(t.nodes.txt_count, 3);
    assert_string_equal(t.nodes.peer_via_lookup, "");
    /* Each callback saw only its type (the other instance never came through it). */
    assert_int_equal(t.nodes.added, 1);
    assert_int_equal(t.peers.added, 1);

    /* The peer leaves: only the peer callback hears of it. */
    qpc_mdns_withdraw(peer);
    assert_true(run_until(loop, seen_removed, &t.peers));
    assert_int_equal(t.nodes.removed, 0);
    assert_string_equal(t.peers.txt[1], "peer=" PEER_HEX); /* the data last reported */

    qpc_mdns_free(client);
    qpc_mdns_free(peer);
    qpc_mdns_free(node);
    ev_loop_destroy(loop);
}

struct seen_counts {
    struct qpc_mdns *m;
    size_t nodes, peers;
};

static bool counts_are(void *arg)
{
    struct seen_counts *c = arg;

    return qpc_mdns_seen_count(c->m, QPC_MDNS_SERVICE_TYPE) == c->nodes &&
           qpc_mdns_seen_count(c->m, QPC_MDNS_P2P_SERVICE_TYPE) == c->peers;
}

static void test_mdns_seen_count_counts_each_type_apart_and_leaves_out_our_own(void **state)
{
    struct ev_loop *loop;
    struct qpc_mdns *node, *peer, *self;
    struct two_sightings t = { 0 };
    const struct qpc_mdns_txt txt[] = { { "ver", "1" }, { "peer", PEER_HEX } };
    const struct qpc_mdns_announcement a = {
        .type = QPC_MDNS_P2P_SERVICE_TYPE, .instance = "peer-5e6f7081", .port = 41000,
        .txt = txt, .txt_count = 2,
    };
    struct seen_counts c = { 0 };

    NEED_NETNS(state);
    assert_int_equal(qpc_mdns_seen_count(NULL, QPC_MDNS_SERVICE_TYPE), 0);
    loop = ev_loop_new(EVFLAG_AUTO);
    node = responder(loop, "qpc-cnode001");
    peer = responder(loop, "qpc-cpeer001");
    self = responder(loop, "qpc-cself001");
    assert_int_equal(qpc_mdns_seen_count(self, QPC_MDNS_SERVICE_TYPE), 0);
    assert_int_equal(qpc_mdns_seen_count(self, NULL), 0);
    assert_int_equal(qpc_mdns_announce(node, "nodeC", 7000, "10.201.0.1:7000", "c.mesh.local"), 0);
    assert_int_equal(qpc_mdns_announce(self, "nodeSelf", 7001, "10.201.0.2:7001", "s.mesh.local"), 0);
    assert_int_equal(qpc_mdns_announce_service(peer, &a), 0);
    assert_int_equal(qpc_mdns_browse_start(self, on_service, &t.nodes), 0);
    assert_int_equal(qpc_mdns_browse_type_start(self, QPC_MDNS_P2P_SERVICE_TYPE, on_service, &t.peers), 0);

    assert_true(run_until(loop, saw_node_and_peer, &t));
    c = (struct seen_counts){ .m = self, .nodes = 1, .peers = 1 };
    assert_true(run_until(loop, counts_are, &c));

    /* The peer leaves; the node stays. */
    qpc_mdns_withdraw(peer);
    c.peers = 0;
    assert_true(run_until(loop, counts_are, &c));
    qpc_mdns_withdraw(node);
    c.nodes = 0;
    assert_true(run_until(loop, counts_are, &c));

    qpc_mdns_free(self);
    qpc_mdns_free(peer);
    qpc_mdns_free(node);
    ev_loop_destroy(loop);
}

static void test_mdns_announce_service_refuses_bad_type_and_txt(void **state)
{
    struct ev_loop *loop;
    struct qpc_mdns *m;
    struct qpc_mdns_txt txt[QPC_MDNS_TXT_MAX + 1];
    char long_value[QPC_MDNS_TXT_ITEM_MAX];
    struct qpc_mdns_announcement a = { .type = QPC_MDNS_P2P_SERVICE_TYPE, .instance = "p", .port = 1,
                                       .txt = txt, .txt_count = 1 };

    NEED_NETNS(state);
    loop = ev_loop_new(EVFLAG_AUTO);
    m = responder(loop, "qpc-args0002");
    for (size_t i = 0; i <= QPC_MDNS_TXT_MAX; i++)
        txt[i] = (struct qpc_mdns_txt){ "k", "v" };
    assert_int_equal(qpc_mdns_announce_service(m, NULL), QPC_ERR_INVALID);
    a.type = "_this-name-is-too-long._udp"; /* more than 15 characters */
    assert_int_equal(qpc_mdns_announce_service(m, &a), QPC_ERR_INVALID);
    a.type = "quicprochat";
    assert_int_equal(qpc_mdns_announce_service(m, &a), QPC_ERR_INVALID);
    a.type = QPC_MDNS_P2P_SERVICE_TYPE;
    txt[0].key = "a=b";
    assert_int_equal(qpc_mdns_announce_service(m, &a), QPC_ERR_INVALID);
    txt[0].key = "";
    assert_int_equal(qpc_mdns_announce_service(m, &a), QPC_ERR_INVALID);
    txt[0].key = "tab\there";
    assert_int_equal(qpc_mdns_announce_service(m, &a), QPC_ERR_INVALID);
    txt[0] = (struct qpc_mdns_txt){ "k", NULL };
    assert_int_equal(qpc_mdns_announce_service(m, &a), QPC_ERR_INVALID);
    txt[0] = (struct qpc_mdns_txt){ "k", "v" };
    a.txt_count = 2; /* "k" twice */
    assert_int_equal(qpc_mdns_announce_service(m, &a), QPC_ERR_INVALID);
    a.txt_count = QPC_MDNS_TXT_MAX + 1;
    assert_int_equal(qpc_mdns_announce_service(m, &a), QPC_ERR_INVALID);
    memset(long_value, 'v', sizeof(long_value) - 1);
    long_value[sizeof(long_value) - 1] = '\0';   /* "k=" + 254 bytes: one too many */
    txt[0] = (struct qpc_mdns_txt){ "k", long_value };
    a.txt_count = 1;
    assert_int_equal(qpc_mdns_announce_service(m, &a), QPC_ERR_INVALID);
    assert_null(qpc_mdns_announced_name(m));
    /* A valid one goes through; a later bad one leaves it announced. */
    txt[0] = (struct qpc_mdns_txt){ "ver", "1" };
    assert_int_equal(qpc_mdns_announce_service(m, &a), 0);
    assert_string_equal(qpc_mdns_announced_name(m), "p");
    a.port = 0;
    assert_int_equal(qpc_mdns_announce_service(m, &a), QPC_ERR_INVALID);
    assert_string_equal(qpc_mdns_announced_name(m), "p");
    qpc_mdns_free(m);
    ev_loop_destroy(loop);
}

static void test_mdns_browse_type_start_refuses_bad_type_and_too_many_types(void **state)
{
    struct ev_loop *loop;
    struct qpc_mdns *m;
    struct sighting s = { 0 };
    const char *types[] = { "_qa._udp", "_qb._udp", "_qc._udp", "_qd._udp" };

    NEED_NETNS(state);
    loop = ev_loop_new(EVFLAG_AUTO);
    m = responder(loop, "qpc-args0003");
    assert_int_equal(qpc_mdns_browse_type_start(m, NULL, on_service, &s), QPC_ERR_INVALID);
    assert_int_equal(qpc_mdns_browse_type_start(m, "not a type", on_service, &s), QPC_ERR_INVALID);
    assert_int_equal(qpc_mdns_browse_type_start(m, "_qa._udp", NULL, &s), QPC_ERR_INVALID);
    for (size_t i = 0; i < QPC_MDNS_BROWSE_TYPES_MAX; i++)
        assert_int_equal(qpc_mdns_browse_type_start(m, types[i], on_service, &s), 0);
    assert_int_equal(qpc_mdns_browse_type_start(m, "_qe._udp", on_service, &s), QPC_ERR_STORE_FULL);
    /* Stopping frees every slot. */
    qpc_mdns_browse_stop(m);
    assert_int_equal(qpc_mdns_browse_type_start(m, "_qe._udp", on_service, &s), 0);
    qpc_mdns_free(m);
    ev_loop_destroy(loop);
}

struct log_count {
    int avahi_lines, suppressed_lines, with_control_bytes;
};

static void count_log_line(enum qpc_log_level level, const char *line, void *arg)
{
    struct log_count *c = arg;

    (void)level;
    if (strstr(line, "mdns: avahi: ") != NULL)
        c->avahi_lines++;
    if (strstr(line, "avahi messages suppressed") != NULL)
        c->suppressed_lines++;
    for (const char *p = line; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20)
            c->with_control_bytes++;
}

/* Any host on the link can make Avahi warn: its lines go to our sink, few per minute. */
static void test_mdns_avahi_warnings_go_to_log_sink_rate_limited(void **state)
{
    struct ev_loop *loop;
    struct qpc_mdns *m;
    struct log_count c = { 0 };

    NEED_NETNS(state);
    loop = ev_loop_new(EVFLAG_AUTO);
    m = responder(loop, "qpc-logs0001");
    qpc_log_set_sink(count_log_line, &c);
    for (int i = 0; i < 1000; i++)
        avahi_log_warn("forged packet %d\n\033[2J from the link", i);
    avahi_log_info("chatter that is not logged");
    qpc_log_set_sink(NULL, NULL);
    assert_true(c.avahi_lines >= 1);
    assert_true(c.avahi_lines <= 10);
    assert_true(c.suppressed_lines <= 1);
    assert_int_equal(c.with_control_bytes, 0);
    qpc_mdns_free(m);
    ev_loop_destroy(loop);
}

static void test_mdns_new_refuses_bad_host_label(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct qpc_mdns_config cfg = { .host_label = "", .interfaces = LOOPBACK_ONLY };
    struct qpc_mdns *m = (struct qpc_mdns *)&cfg;

    (void)state;
    assert_int_equal(qpc_mdns_new(loop, &cfg, &m), QPC_ERR_INVALID);
    assert_null(m);
    ev_loop_destroy(loop);
}

int main(void)
{
    const struct CMUnitTest pure[] = {
        cmocka_unit_test(test_poll_timeout_fires_and_can_be_rearmed_from_its_callback),
        cmocka_unit_test(test_poll_disabled_timeout_never_fires),
        cmocka_unit_test(test_poll_timeout_may_free_itself_in_its_callback),
        cmocka_unit_test(test_poll_watch_reports_readable_fd),
        cmocka_unit_test(test_poll_watch_without_events_stays_quiet_until_updated),
        cmocka_unit_test(test_mdns_host_label_is_qpc_and_first_8_hex_of_key),
        cmocka_unit_test(test_mdns_new_refuses_bad_host_label),
    };
    const struct CMUnitTest netns[] = {
        /* First: the log budget is per process and per minute, and responders use it. */
        cmocka_unit_test(test_mdns_avahi_warnings_go_to_log_sink_rate_limited),
        cmocka_unit_test(test_mdns_browser_resolves_announcement_and_sees_goodbye),
        cmocka_unit_test(test_mdns_renames_instance_when_name_is_taken),
        cmocka_unit_test(test_mdns_same_host_label_on_one_machine_is_no_conflict),
        cmocka_unit_test(test_mdns_announce_refuses_bad_arguments),
        cmocka_unit_test(test_mdns_browses_each_type_with_its_own_callback_and_every_txt_pair),
        cmocka_unit_test(test_mdns_seen_count_counts_each_type_apart_and_leaves_out_our_own),
        cmocka_unit_test(test_mdns_announce_service_refuses_bad_type_and_txt),
        cmocka_unit_test(test_mdns_browse_type_start_refuses_bad_type_and_too_many_types),
    };
    int failed = cmocka_run_group_tests_name("mdns_poll", pure, NULL, NULL);

    /* The group state tells the tests whether the private namespace could be made. */
    failed += cmocka_run_group_tests_name("mdns_netns", netns, private_netns, NULL);
    if (failed == 0 && netns_unavailable)
        return 77;   /* half the tests could not run: not a pass */
    return failed;
}
