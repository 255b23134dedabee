/*
 * test_server_session.c: the node's limits that belong to a client KEY, not to a
 * connection (src/server/session.c): the caps on connections per key and in all,
 * refused with a reason the client sees and a counter; rate buckets shared by every
 * connection of one key and kept across a reconnect. A real session endpoint on
 * loopback with clients made by the QUIC harness; the caps are small here (the node
 * sets its own in client_service.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "quic_harness.h"
#include "qpc/identity.h"
#include "session.h"

#define MAX_SESSIONS 3
#define MAX_PER_KEY 2
#define SLOW 0.001       /* a refill so slow that no token comes back during a test */

struct fix {
    struct ev_loop *loop;
    int silent_dns;                    /* a DNS server on loopback that never answers */
    char dns_servers[64];
    struct qpc_resolver_config rcfg;
    struct node node;
    struct server_settings sc;
    struct session_endpoint *ep;
    struct session *opened[16];
    size_t n_opened, n_closed;
    struct side clients[8];
    size_t n_clients;
};

static struct fix *the_fix;

static void on_open(struct session *s)
{
    the_fix->opened[the_fix->n_opened++] = s;
}

static void on_closed(struct session *s, const struct qpc_quic_close_info *info)
{
    for (size_t i = 0; i < the_fix->n_opened; i++)
        if (the_fix->opened[i] == s)
            the_fix->opened[i] = NULL;
    the_fix->n_closed++;
}

static const struct session_callbacks callbacks = { .on_open = on_open, .on_closed = on_closed };

static int setup(void **state)
{
    struct fix *f = calloc(1, sizeof(*f));
    struct session_endpoint_config ec = { 0 };

    if (f == NULL || qpc_identity_generate(&f->node.identity) != 0)
        return -1;
    the_fix = f;
    f->loop = ev_loop_new(0);
    f->sc.max_frame_size = 65536;
    f->sc.idle_timeout_ms = 30000;
    f->node.loop = f->loop;
    f->node.sc = &f->sc;
    ec.listen = "127.0.0.1:0";
    ec.alpn = QPC_ALPN_CLIENT;
    ec.clients = true;
    ec.max_sessions = MAX_SESSIONS;
    ec.max_sessions_per_key = MAX_PER_KEY;
    f->silent_dns = socket(AF_INET, SOCK_DGRAM, 0);
    {
        struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(sin);

        if (f->silent_dns < 0 || bind(f->silent_dns, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
            getsockname(f->silent_dns, (struct sockaddr *)&sin, &len) != 0)
            return -1;
        snprintf(f->dns_servers, sizeof(f->dns_servers), "127.0.0.1:%u", (unsigned)ntohs(sin.sin_port));
    }
    f->rcfg.servers = f->dns_servers;
    f->rcfg.timeout_ms = 500;
    f->rcfg.tries = 1;
    ec.resolver = &f->rcfg;
    if (session_endpoint_open(&f->node, &ec, &callbacks, &f->ep) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fix *f = *state;

    for (size_t i = 0; i < f->n_clients; i++)
        qpc_quic_endpoint_free(f->clients[i].ep);
    session_endpoint_close(f->ep);
    close(f->silent_dns);
    qpc_identity_free(f->node.identity);
    ev_loop_destroy(f->loop);
    free(f);
    return 0;
}

/* A client endpoint with the keys of `like` (or fresh ones), connected to the node. */
static struct side *dial(struct fix *f, const struct side *like)
{
    struct side *c = &f->clients[f->n_clients++];
    struct qpc_quic_config qc;
    int32_t port = session_endpoint_port(f->ep);
    struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };

    if (like != NULL) {
        memcpy(c->pk, like->pk, sizeof(c->pk));
        memcpy(c->sk, like->sk, sizeof(c->sk));
    } else {
        side_keys(c);
    }
    side_config(&qc, c, false);
    assert_int_equal(qpc_quic_endpoint_new(&c->ep, f->loop, &qc), 0);
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    assert_int_equal(qpc_quic_connect(c->ep, (struct sockaddr *)&to, sizeof(to),
                                      QPC_ALPN_CLIENT, NULL, c, NULL), 0);
    return c;
}

struct settle { struct fix *f; struct side *c; size_t opened; };

/* The client's handshake is done and the node has either admitted or refused it. */
static bool settled(void *arg)
{
    struct settle *st = arg;

    return st->c->closed > 0 || (st->c->connected > 0 && st->f->n_opened > st->opened);
}

static struct side *dial_and_settle(struct fix *f, const struct side *like)
{
    struct settle st = { f, NULL, f->n_opened };

    st.c = dial(f, like);
    assert_true(run_until(f->loop, settled, &st, 10.0));
    run_for(f->loop, 0.05);   /* a refusal's CONNECTION_CLOSE reaches the client */
    return st.c;
}

static void test_session_refuses_a_key_above_its_connection_cap(void **state)
{
    struct fix *f = *state;
    struct side *a1 = dial_and_settle(f, NULL);
    struct side *a2 = dial_and_settle(f, a1);
    struct side *a3 = dial_and_settle(f, a1);

    assert_int_equal(a1->closed, 0);
    assert_int_equal(a2->closed, 0);
    assert_int_equal(f->n_opened, 2);
    assert_int_equal(a3->closed, 1);
    assert_true(a3->last_is_app);
    assert_int_equal(a3->last_code, QPC_QUIC_APP_REFUSED);
    assert_string_equal(a3->last_reason, "too many connections for this key");
    assert_int_equal(f->node.c.conn_refused[CONN_REFUSED_PER_KEY], 1);
    /* Another key is still welcome. */
    assert_int_equal(dial_and_settle(f, NULL)->closed, 0);
    assert_int_equal(f->n_opened, 3);
}

static void test_session_refuses_any_key_when_the_node_is_full(void **state)
{
    struct fix *f = *state;

    for (int i = 0; i < MAX_SESSIONS; i++)
        assert_int_equal(dial_and_settle(f, NULL)->closed, 0);
    struct side *late = dial_and_settle(f, NULL);
    assert_int_equal(late->closed, 1);
    assert_string_equal(late->last_reason, "too many client connections on this node");
    assert_int_equal(f->node.c.conn_refused[CONN_REFUSED_FULL], 1);
    assert_int_equal(f->n_opened, MAX_SESSIONS);
}

static void test_session_rate_is_shared_by_every_connection_of_a_key(void **state)
{
    struct fix *f = *state;
    struct side *a1 = dial_and_settle(f, NULL);
    struct side *a2 = dial_and_settle(f, a1);
    struct side *b = dial_and_settle(f, NULL);
    struct session *sa1 = f->opened[0], *sa2 = f->opened[1], *sb = f->opened[2];

    assert_int_equal(a2->closed + b->closed, 0);
    assert_non_null(sa1);
    assert_non_null(sa2);
    assert_non_null(sb);
    /* Three tokens for key A, whichever of its connections takes them. */
    assert_true(session_take(sa1, SESSION_RATE_RELAY, SLOW, 3.0));
    assert_true(session_take(sa2, SESSION_RATE_RELAY, SLOW, 3.0));
    assert_true(session_take(sa1, SESSION_RATE_RELAY, SLOW, 3.0));
    assert_false(session_take(sa2, SESSION_RATE_RELAY, SLOW, 3.0));
    assert_false(session_take(sa1, SESSION_RATE_RELAY, SLOW, 3.0));
    /* Each rate is its own bucket, and key B has its own. */
    assert_true(session_take(sa2, SESSION_RATE_BROADCAST, SLOW, 3.0));
    assert_true(session_take(sb, SESSION_RATE_RELAY, SLOW, 3.0));
}

struct gone { struct fix *f; size_t want; };

static bool closed_enough(void *arg)
{
    struct gone *g = arg;

    return g->f->n_closed >= g->want;
}

static void test_session_rate_survives_a_reconnect(void **state)
{
    struct fix *f = *state;
    struct side *a1 = dial_and_settle(f, NULL);
    struct gone g = { f, 1 };
    struct session *s;

    s = f->opened[0];
    assert_true(session_take(s, SESSION_RATE_PUNCH, SLOW, 2.0));
    assert_true(session_take(s, SESSION_RATE_PUNCH, SLOW, 2.0));
    assert_false(session_take(s, SESSION_RATE_PUNCH, SLOW, 2.0));
    /* The client goes away and comes back at once: its bucket is still empty. */
    session_close(s, QPC_QUIC_APP_NO_ERROR, "bye");
    assert_true(run_until(f->loop, closed_enough, &g, 10.0));
    dial_and_settle(f, a1);
    s = f->opened[1];
    assert_non_null(s);
    assert_false(session_take(s, SESSION_RATE_PUNCH, SLOW, 2.0));
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

/* A dial by name whose DNS server never answers. */
struct dialled { int closed; int err; char reason[256]; };
static struct dialled the_dial;

static void dial_closed(struct session *s, const struct qpc_quic_close_info *info)
{
    the_dial.closed++;
    the_dial.err = info->err;
    snprintf(the_dial.reason, sizeof(the_dial.reason), "%s", info->reason);
}

static const struct session_callbacks dial_callbacks = { .on_closed = dial_closed };

static bool dial_ended(void *arg)
{
    return the_dial.closed > 0;
}

static void test_session_dial_by_name_does_not_stall_the_node(void **state)
{
    struct fix *f = *state;
    struct session *s = NULL;
    struct side *c;

    memset(&the_dial, 0, sizeof(the_dial));
    assert_int_equal(session_dial(f->ep, "fed.never-answers.test:7001", NULL, NULL,
                                  &dial_callbacks, f, &s), 0);
    assert_non_null(s);
    assert_null(s->conn);                /* no address yet */
    assert_int_equal(the_dial.closed, 0);
    /* While the lookup waits, the node admits a client. */
    c = dial_and_settle(f, NULL);
    assert_int_equal(c->closed, 0);
    assert_int_equal(f->n_opened, 1);
    assert_int_equal(the_dial.closed, 0);
    /* Then the lookup gives up, and says so. */
    assert_true(run_until(f->loop, dial_ended, NULL, 30.0));
    print_message("dial ended: %s (%s)\n", qpc_strerror(the_dial.err), the_dial.reason);
    assert_int_equal(the_dial.err, QPC_ERR_TIMEOUT);
    assert_non_null(strstr(the_dial.reason, "fed.never-answers.test:7001"));
    assert_int_equal(the_dial.closed, 1);
}

static void test_session_closed_while_looking_up_ends_from_the_loop(void **state)
{
    struct fix *f = *state;
    struct session *s = NULL;

    memset(&the_dial, 0, sizeof(the_dial));
    assert_int_equal(session_dial(f->ep, "gone.never-answers.test:7001", NULL, NULL,
                                  &dial_callbacks, f, &s), 0);
    session_close(s, QPC_QUIC_APP_SHUTDOWN, "node left");
    assert_int_equal(the_dial.closed, 0);   /* not from inside session_close */
    assert_true(run_until(f->loop, dial_ended, NULL, 5.0));
    assert_int_equal(the_dial.err, QPC_ERR_CLOSED);
    assert_string_equal(the_dial.reason, "node left");
    /* And one still looking up when the endpoint closes ends then (teardown). */
    assert_int_equal(session_dial(f->ep, "late.never-answers.test:7001", NULL, NULL,
                                  &dial_callbacks, f, &s), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_session_refuses_a_key_above_its_connection_cap),
        T(test_session_refuses_any_key_when_the_node_is_full),
        T(test_session_rate_is_shared_by_every_connection_of_a_key),
        T(test_session_rate_survives_a_reconnect),
        T(test_session_dial_by_name_does_not_stall_the_node),
        T(test_session_closed_while_looking_up_ends_from_the_loop),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
