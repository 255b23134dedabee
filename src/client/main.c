/*
 * main.c (qpc): the command line. A table of subcommands (name, function, one line of
 * description) like wireguard-tools' wg; `qpc --help` is generated from it. With no
 * subcommand on a terminal, qpc starts the REPL.
 *
 * The one idea: subcommands are for scripts, so each one says what happened through its
 * exit code (client.h: enum qpc_exit), not only through text: a script can tell
 * "delivered" from "held for later" from "no such peer" from "state file corrupt".
 *
 * Built without mesh (QPC_MESH 0) the same table runs through the server alone: mDNS
 * and the mesh-only options are refused saying so, and --help says what this build is.
 */
#include <getopt.h>
#include <langinfo.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sodium.h>

#include "client.h"
#include "contacts.h"
#if QPC_MESH
#include "discover.h"
#endif
#include "history.h"
#include "homes.h"
#include "node.h"
#include "output.h"
#include "routes.h"
#include "session.h"
#include "share.h"
#include "state.h"
#include "qpc/direct.h"
#include "qpc/error.h"
#include "qpc/log.h"

int repl_run(struct client *cl);

struct opts {
    const char *config;
    bool json;
    bool no_mdns;
    double timeout_s;       /* send/broadcast: how long to wait; listen: 0 = forever */
    double receipt_wait_s;  /* send: how long to wait for the receipt once held */
    long count;             /* listen: exit after this many messages (0 = never) */
};

#define RECEIPT_WAIT_DEFAULT_S 10.0
static struct opts g_opts = { .timeout_s = -1, .receipt_wait_s = RECEIPT_WAIT_DEFAULT_S };

struct subcommand {
    const char *name;
    int (*fn)(struct client *cl, int argc, char **argv);
    const char *args;
    const char *description;
};

static void sig_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct client *cl = w->data;

    if (w->signum == SIGINT && cl->on_interrupt != NULL) {
        cl->on_interrupt(cl);
        return;
    }
    cl->stop = true;
    ev_break(loop, EVBREAK_ALL);
}

/*
 * Text is UTF-8 everywhere (messages, names, topics), and the line editor reads and
 * draws characters through the locale: without setlocale every non-ASCII key would be
 * dropped. The environment's locale is taken; the plain C locale, which knows only
 * ASCII, is widened to C.UTF-8 for characters alone. Numbers stay in the C locale so
 * "--timeout 1.5" means the same everywhere.
 */
static void set_locale(void)
{
    const char *cs;

    setlocale(LC_ALL, "");
    cs = nl_langinfo(CODESET);
    if (cs != NULL && strcmp(cs, "ANSI_X3.4-1968") == 0)
        setlocale(LC_CTYPE, "C.UTF-8");
    setlocale(LC_NUMERIC, "C");
}

/* Loads identity and state; returns an exit code and prints why on failure. */
static int open_state(struct client *cl, bool create)
{
    char err[PATH_MAX + 256] = "";   /* messages name files in data_dir */
    char path[PATH_MAX + 32];
    int rc = state_open(cl, create, err, sizeof(err));

    if (rc != EXIT_OK) {
        if (!create && err[0] == '\0')
            snprintf(err, sizeof(err), "no identity in %s (run 'qpc identity' first)", cl->data_dir);
        fprintf(stderr, "qpc: %s\n", err);
        return rc;
    }
    snprintf(path, sizeof(path), "%s/%s", cl->data_dir, HISTORY_FILE);
    /* Without it messages still go and come; the user is told that none are kept. */
    if (history_open(path, &cl->history, err, sizeof(err)) < 0)
        qpc_log_warn("history", "no message history: %s (left untouched)", err);
    output_turns_start(cl);   /* one history commit per loop turn */
    cl->channels = qpc_broadcast_set_new();
    if (cl->channels == NULL)
        return EXIT_FAIL;
    if (state_load_subscriptions(cl, err, sizeof(err)) < 0) {
        fprintf(stderr, "qpc: %s\n", err);
        return EXIT_STATE;
    }
    return EXIT_OK;
}

static int start_node(struct client *cl, bool accept)
{
    char err[512] = "";

    if (node_start(cl, accept, err, sizeof(err)) < 0) {
        fprintf(stderr, "qpc: %s\n", err);
        return EXIT_FAIL;
    }
#if QPC_MESH
    if (cl->cc->mdns_enabled && !g_opts.no_mdns && discover_start(cl, err, sizeof(err)) < 0)
        qpc_log_warn("discover", "%s", err);
#endif
    if (cl->cc->server[0] != '\0' && session_connect(cl, cl->cc->server, err, sizeof(err)) < 0)
        qpc_log_warn("session", "%s", err);
#if QPC_MESH
    node_dial_known(cl);
#endif
    return EXIT_OK;
}

/*
 * Without mesh the server is the only way in or out: a subcommand that sends or receives
 * says so when none is given (false: a usage error) rather than wait for nothing.
 */
static bool have_a_way(const struct client *cl, const char *what)
{
    if (QPC_MESH || cl->cc->server[0] != '\0')
        return true;
    fprintf(stderr, "qpc: %s needs a server (--server HOST:PORT): %s\n", what, CLIENT_NO_MESH);
    return false;
}

/* Turns the loop until *done or timeout seconds (<= 0: until a signal). */
static void run_until_done(struct client *cl, const bool *done, double timeout)
{
    ev_tstamp end = ev_now(cl->loop) + timeout;

    while (!*done && !cl->stop) {
        ev_now_update(cl->loop);
        if (timeout > 0 && ev_now(cl->loop) >= end)
            break;
        if (!ev_run(cl->loop, EVRUN_ONCE))
            break;
    }
}

/*
 * Resolves a typed peer: a full key, a name, or a unique prefix of a known peer's id
 * (contacts.c has the rules). With report, says why it failed. Returns 0 or what
 * contacts_resolve returns.
 */
static int resolve_peer_arg(struct client *cl, const char *text, uint8_t key[static QPC_KEY_LEN],
                            bool report)
{
    char err[1024];
    int rc = routes_resolve(cl->id, cl->routes, text, key, err, sizeof(err));

    if (rc < 0 && report)
        fprintf(stderr, "qpc: %s\n", err);
    return rc;
}

/*
 * A peer id not in the directory may belong to a peer announcing itself on the link:
 * with mDNS on, the node runs (started here) for up to DISCOVER_WAIT_S while discovery
 * fills the directory. Returns what resolve_peer_arg returns, having reported it.
 */
#if QPC_MESH
static int resolve_peer_discovering(struct client *cl, const char *text, uint8_t key[static QPC_KEY_LEN],
                                    bool *started)
{
    int rc = resolve_peer_arg(cl, text, key, false);
    ev_tstamp end;

    *started = false;
    if (rc != QPC_ERR_NOT_FOUND || !cl->cc->mdns_enabled || g_opts.no_mdns)
        return rc == 0 ? 0 : resolve_peer_arg(cl, text, key, true);
    if (start_node(cl, true) != EXIT_OK)
        return QPC_ERR_IO;
    *started = true;
    end = ev_now(cl->loop) + DISCOVER_WAIT_S;
    while (rc == QPC_ERR_NOT_FOUND && !cl->stop && cl->discover != NULL) {
        ev_now_update(cl->loop);
        if (ev_now(cl->loop) >= end || !ev_run(cl->loop, EVRUN_ONCE))
            break;
        rc = resolve_peer_arg(cl, text, key, false);
    }
    return rc == 0 ? 0 : resolve_peer_arg(cl, text, key, true);
}
#else
/* Without mesh nobody is announced on the link: the directory alone says who is meant. */
static int resolve_peer_discovering(struct client *cl, const char *text, uint8_t key[static QPC_KEY_LEN],
                                    bool *started)
{
    *started = false;
    return resolve_peer_arg(cl, text, key, true);
}
#endif

/* ---- subcommands -------------------------------------------------------------------- */

static int sub_identity(struct client *cl, int argc, char **argv)
{
    int rc = open_state(cl, true);

    if (rc != EXIT_OK)
        return rc;
    if (argc > 2 || (argc == 2 && strcmp(argv[1], "--qr") != 0)) {
        fprintf(stderr, "usage: qpc identity [--qr] [--json]\n");
        return EXIT_USAGE;
    }
    if (argc == 2)
        return share_show(cl) == 0 ? EXIT_OK : EXIT_FAIL;
    if (g_opts.json)
        printf("{\"peer_id\":\"%s\",\"file\":\"%s\",\"peers\":%zu}\n", qpc_identity_peer_id(cl->id),
               cl->identity_path, qpc_identity_peer_count(cl->id));
    else
        printf("%s\n", qpc_identity_peer_id(cl->id));
    return EXIT_OK;
}

/* The routing table as saved (routes.db), one line per destination, for scripts. */
static int sub_route(struct client *cl, int argc, char **argv)
{
    struct qpc_route *r = NULL;
    size_t n = 0;
    uint64_t now = now_ms();
    int rc;

    (void)argv;
    if (argc != 1) {
        fprintf(stderr, "usage: qpc route\n");
        return EXIT_USAGE;
    }
    if ((rc = open_state(cl, false)) != EXIT_OK)
        return rc;
    if (qpc_route_list(cl->routes, &r, &n) < 0)
        return EXIT_FAIL;
    /* destination, via, next hop, hops ("?": from traffic), source, seqno, age in s,
     * "retracted" when its next hop's link is down, and "home DOMAIN" when the peer's
     * announces name its node (what a message through my server is addressed to) */
    for (size_t i = 0; i < n; i++) {
        char dest[QPC_KEY_HEX_LEN], next[QPC_ROUTE_ADDR_MAX], hops[12], seq[12];
        const char *home = homes_get(cl->homes, r[i].dest);

        qpc_key_to_hex(dest, r[i].dest);
        if (r[i].via == QPC_ROUTE_VIA_PEER)
            qpc_key_to_hex(next, r[i].via_peer);
        else
            snprintf(next, sizeof(next), "%s", r[i].next_hop[0] ? r[i].next_hop : "-");
        snprintf(hops, sizeof(hops), r[i].hops == QPC_ROUTE_HOPS_UNKNOWN ? "?" : "%u", r[i].hops);
        snprintf(seq, sizeof(seq), r[i].has_seqno ? "%u" : "-", r[i].seqno);
        printf("%s %s %s %s %s %s %llu%s%s%s\n", dest, qpc_route_via_name(r[i].via), next, hops,
               qpc_route_source_name(r[i].source), seq,
               (unsigned long long)(now > r[i].last_seen_ms ? (now - r[i].last_seen_ms) / 1000 : 0),
               r[i].retracted ? " retracted" : "", home != NULL ? " home " : "", home != NULL ? home : "");
    }
    free(r);
    return EXIT_OK;
}

static int sub_peer(struct client *cl, int argc, char **argv)
{
    struct contacts_card card;
    const struct qpc_peer *p = NULL;
    const char *addrs[CONTACTS_CARD_ADDRS_MAX];
    char err[512], note[512];
    bool add = argc >= 2 && strcmp(argv[1], "add") == 0;
    bool is_card = add && argc == 3 && contacts_is_card(argv[2]);
    int rc;

    if (argc < 2 || (add && !is_card && (argc < 4 || argc > 5)) ||
        (!add && strcmp(argv[1], "list") != 0)) {
        fprintf(stderr, "usage: qpc peer add <peer_key> <host:port> [name] | qpc peer add qpc:<id>?... | "
                        "qpc peer list\n");
        return EXIT_USAGE;
    }
    rc = open_state(cl, true);
    if (rc != EXIT_OK)
        return rc;
    if (!add) {
        /* the name last: it is the one column a person chose, and may be missing */
        while ((p = qpc_identity_peer_next(cl->id, p)) != NULL) {
            printf("%s %s %s %s ", p->id, qpc_peer_kind_name(p->kind),
                   p->address_count ? p->addresses[0] : "-", qpc_peer_source_name(p->source));
            if (p->name != NULL)
                output_escape(stdout, p->name, strlen(p->name), NULL);
            else
                fputc('-', stdout);
            fputc('\n', stdout);
        }
        return EXIT_OK;
    }
    if (is_card) {
        if (contacts_card_parse(argv[2], &card, err, sizeof(err)) < 0) {
            fprintf(stderr, "qpc: %s\n", err);
            return EXIT_USAGE;
        }
    } else {
        memset(&card, 0, sizeof(card));
        if (qpc_key_from_text(card.key, argv[2]) < 0) {
            fprintf(stderr, "qpc: '%s' is not a peer key (64 hex characters, or a qpc: text)\n", argv[2]);
            return EXIT_USAGE;
        }
        snprintf(card.addrs[0], sizeof(card.addrs[0]), "%s", argv[3]);
        card.naddrs = 1;
        if (argc == 5 && contacts_check_name(cl->id, card.key, argv[4], err, sizeof(err)) < 0) {
            fprintf(stderr, "qpc: %s\n", err);
            return EXIT_USAGE;
        }
        if (argc == 5)
            snprintf(card.name, sizeof(card.name), "%s", argv[4]);
    }
    for (size_t i = 0; i < card.naddrs; i++)
        addrs[i] = card.addrs[i];
    rc = contacts_add(cl->id, card.key, card.name, addrs, card.naddrs, now_ms(), note, sizeof(note),
                      err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "qpc: %s\n", err);
        return EXIT_USAGE;
    }
    if (note[0] != '\0')
        fprintf(stderr, "qpc: added without the name '%s': %s\n", card.name, note);
    cl->id_dirty = true;
    return state_save_identity(cl, true) == 0 ? EXIT_OK : EXIT_FAIL;
}

static int sub_name(struct client *cl, int argc, char **argv)
{
    uint8_t key[QPC_KEY_LEN];
    char err[1024];
    bool me;
    int rc;

    if (argc != 3) {
        fprintf(stderr, "usage: qpc name <peer|me> <name|->\n");
        return EXIT_USAGE;
    }
    rc = open_state(cl, true);
    if (rc != EXIT_OK)
        return rc;
    me = strcmp(argv[1], "me") == 0;
    if (!me && resolve_peer_arg(cl, argv[1], key, true) < 0)
        return EXIT_NO_PEER;
    if (contacts_set_name(cl->id, me ? NULL : key, argv[2], err, sizeof(err)) < 0) {
        fprintf(stderr, "qpc: %s\n", err);
        return EXIT_USAGE;
    }
    cl->id_dirty = true;
    return state_save_identity(cl, true) == 0 ? EXIT_OK : EXIT_FAIL;
}

static int sub_server(struct client *cl, int argc, char **argv)
{
    int rc;

    if (argc != 2) {
        fprintf(stderr, "usage: qpc server <host:port>\n");
        return EXIT_USAGE;
    }
    rc = open_state(cl, true);
    if (rc != EXIT_OK)
        return rc;
    rc = qpc_identity_pin_note(cl->id, QPC_PIN_ADDRESS, argv[1], now_ms(), NULL);
    if (rc < 0) {
        fprintf(stderr, "qpc: bad server address '%s'\n", argv[1]);
        return EXIT_USAGE;
    }
    state_save_server(cl, argv[1]);   /* the REPL connects to it at start */
    cl->id_dirty = true;
    return state_save_identity(cl, true) == 0 ? EXIT_OK : EXIT_FAIL;
}

static int sub_subscribe(struct client *cl, int argc, char **argv)
{
    bool sub = strcmp(argv[0], "subscribe") == 0;
    int rc;

    if (argc < 2 || argc > (sub ? 3 : 2)) {
        fprintf(stderr, sub ? "usage: qpc subscribe <topic> [key]\n" : "usage: qpc unsubscribe <topic>\n");
        return EXIT_USAGE;
    }
    rc = open_state(cl, true);
    if (rc != EXIT_OK)
        return rc;
    if (sub)
        rc = argc == 3 ? qpc_broadcast_subscribe_text(cl->channels, argv[1], argv[2], NULL)
                       : qpc_broadcast_subscribe(cl->channels, argv[1], NULL, NULL);
    else
        rc = qpc_broadcast_unsubscribe(cl->channels, argv[1]);
    if (rc < 0) {
        fprintf(stderr, "qpc: cannot %s '%s': %s\n", sub ? "subscribe to" : "unsubscribe from", argv[1],
                sub ? output_channel_refusal(argv[1], argc == 3, rc) : "not subscribed");
        return EXIT_USAGE;
    }
    if (sub && argc == 3)
        state_remember_key_text(argv[1], argv[2]);
    if (!sub)
        state_remember_key_text(argv[1], NULL);
    return state_save_subscriptions(cl) == 0 ? EXIT_OK : EXIT_FAIL;
}

/*
 * `qpc send`: waits for the outcome of one message and turns it into the exit code. Only
 * the recipient's verified receipt is "delivered" (0). Once something holds the message
 * (my outbox, a server, a neighbour) it waits receipt_wait_s more for the receipt, then
 * says "held" (3).
 */
struct send_wait {
    uint8_t id[QPC_ID_LEN];
    bool done;
    bool held;
    int code;
    ev_tstamp held_until;    /* loop time at which a held message stops waiting */
};

static void send_watch(struct client *cl, const struct event *ev)
{
    struct send_wait *w = cl->watch_arg;

    if (ev->id == NULL || memcmp(ev->id, w->id, QPC_ID_LEN) != 0)
        return;
    switch (ev->kind) {
    case EVT_DELIVERED:
        w->code = EXIT_OK;
        w->done = true;
        break;
    case EVT_HELD:
    case EVT_QUEUED:
        w->code = EXIT_QUEUED;
        if (!w->held)
            w->held_until = ev_now(cl->loop) + g_opts.receipt_wait_s;
        w->held = true;
        w->done = g_opts.receipt_wait_s <= 0;
        break;
    case EVT_FAILED:
        w->code = ev->err == QPC_ERR_DB || ev->err == QPC_ERR_IO ? EXIT_FAIL : EXIT_REFUSED;
        w->done = true;
        break;
    default:
        break;
    }
}

/* Turns the loop until the message's outcome is known, the receipt wait after a hold
 * ran out, or the overall timeout (<= 0: none). */
static void run_send(struct client *cl, struct send_wait *w, double timeout)
{
    ev_tstamp end = ev_now(cl->loop) + timeout;

    while (!w->done && !cl->stop) {
        ev_now_update(cl->loop);
        if ((timeout > 0 && ev_now(cl->loop) >= end) || (w->held && ev_now(cl->loop) >= w->held_until))
            break;
        if (!ev_run(cl->loop, EVRUN_ONCE))
            break;
    }
}

/* Waits for the server session (a send through a node domain needs it) and for the
 * node to name its domain, which the message carries so that the receipt finds its way
 * back through federation. */
#define SESSION_WAIT_S 8.0   /* without mesh: how long send and broadcast wait for the server */
static bool wait_session(struct client *cl, double seconds)
{
    ev_tstamp end = ev_now(cl->loop) + seconds;

    while (!(session_up(cl) && session_domain(cl)[0] != '\0') && !cl->stop) {
        ev_now_update(cl->loop);
        if (ev_now(cl->loop) >= end || !ev_run(cl->loop, EVRUN_ONCE))
            break;
    }
    return session_up(cl);
}

static int sub_send(struct client *cl, int argc, char **argv)
{
    struct send_wait w = { .code = EXIT_QUEUED };
    uint8_t key[QPC_KEY_LEN];
    char text[MESSAGE_TEXT_MAX + 1] = "", who[512];
    const char *domain = NULL;
    char *at;
    size_t used = 0;
    bool started;
    int rc;

    if (argc < 3) {
        fprintf(stderr, "usage: qpc send <peer>[@domain] <message...> (peer: a name, an id or 4+ hex "
                "digits of one; @domain: through my server to that node)\n");
        return EXIT_USAGE;
    }
    /* Stops at the first truncation: past it, sizeof(text) - used would wrap around. */
    for (int i = 2; i < argc && used < sizeof(text); i++)
        used += (size_t)snprintf(text + used, sizeof(text) - used, "%s%s", i > 2 ? " " : "", argv[i]);
    if (used >= sizeof(text)) {
        fprintf(stderr, "qpc: that message is over %d bytes, the largest: nothing was sent "
                "(send it in parts)\n", MESSAGE_TEXT_MAX);
        return EXIT_USAGE;
    }
    /* peer@domain: the last '@' followed by a DNS name (a peer's name may hold an '@'). */
    snprintf(who, sizeof(who), "%s", argv[1]);
    if ((at = strrchr(who, '@')) != NULL && at > who && qpc_direct_domain_valid(at + 1)) {
        *at = '\0';
        domain = at + 1;
    }
    if (!have_a_way(cl, "sending"))
        return EXIT_USAGE;
    rc = open_state(cl, true);
    if (rc != EXIT_OK)
        return rc;
    rc = resolve_peer_discovering(cl, who, key, &started);
    if (rc == QPC_ERR_IO)
        return EXIT_FAIL;
    if (rc < 0)
        return EXIT_NO_PEER;
    if (memcmp(key, qpc_identity_public_key(cl->id), QPC_KEY_LEN) == 0) {
        fprintf(stderr, "qpc: '%s' is your own peer id: a message to yourself is not sent\n", who);
        return EXIT_USAGE;
    }
    rc = started ? EXIT_OK : start_node(cl, true);
    if (rc != EXIT_OK)
        return rc;
    if (domain != NULL && !wait_session(cl, 2.0 * (double)cl->cc->direct_timeout_ms / 1000.0 + 2.0)) {
        fprintf(stderr, "qpc: sending to %s@%s needs a server: none is connected (--server)\n", who, domain);
        return EXIT_FAIL;
    }
    /* Without mesh the server is the only way: the message goes once the session is up
     * (if it does not come, the message is kept in the outbox: exit 3). */
    if (!QPC_MESH && domain == NULL)
        wait_session(cl, SESSION_WAIT_S);
    cl->watch = send_watch;
    cl->watch_arg = &w;
    rc = node_send_text(cl, key, domain, text, w.id);
    if (rc < 0) {
        fprintf(stderr, "qpc: cannot send: %s\n", qpc_strerror(rc));
        return rc == QPC_ERR_TOO_LARGE || rc == QPC_ERR_INVALID ? EXIT_USAGE : EXIT_FAIL;
    }
    run_send(cl, &w, g_opts.timeout_s > 0 ? g_opts.timeout_s
                     : 3.0 * (double)cl->cc->direct_timeout_ms / 1000.0 + 5.0 + g_opts.receipt_wait_s);
    if (w.code == EXIT_OK) {
        /* The receipt's ack is queued for the end of this turn: let it leave, or the
         * recipient would send the receipt again (by the server) for nothing. */
        bool never = false;

        cl->stop = false;
        run_until_done(cl, &never, 0.3);
    }
    return w.code;
}

static void listen_watch(struct client *cl, const struct event *ev)
{
    long *left = cl->watch_arg;

    if ((ev->kind == EVT_MESSAGE || ev->kind == EVT_BROADCAST) && *left > 0 && --*left == 0) {
        cl->stop = true;
        ev_break(cl->loop, EVBREAK_ALL);
    }
}

static int sub_listen(struct client *cl, int argc, char **argv)
{
    long left = g_opts.count;
    bool never = false;
    int rc;

    if (argc > 1) {
        fprintf(stderr, "usage: qpc listen [--json] [--count N] [--timeout S]\n");
        return EXIT_USAGE;
    }
    if (!have_a_way(cl, "listening"))
        return EXIT_USAGE;
    rc = open_state(cl, true);
    if (rc != EXIT_OK)
        return rc;
    rc = start_node(cl, true);
    if (rc != EXIT_OK)
        return rc;
    if (!QPC_MESH && g_opts.json)   /* nothing listens here: what arrives comes through the server */
        printf("{\"event\":\"listening\",\"peer_id\":\"%s\",\"server\":\"%s\"}\n",
               qpc_identity_peer_id(cl->id), cl->cc->server);
    else if (!QPC_MESH)
        printf("listening as %s through server %s (no mesh in this build)\n", qpc_identity_peer_id(cl->id),
               cl->cc->server);
    else if (g_opts.json)
        printf("{\"event\":\"listening\",\"peer_id\":\"%s\",\"address\":\"%s\"}\n",
               qpc_identity_peer_id(cl->id), cl->listen_text);
    else
        printf("listening as %s on %s\n", qpc_identity_peer_id(cl->id), cl->listen_text);
    fflush(stdout);
    cl->watch = listen_watch;
    cl->watch_arg = &left;
    if (g_opts.count > 0 || g_opts.timeout_s > 0)
        run_until_done(cl, &never, g_opts.timeout_s);
    else
        ev_run(cl->loop, 0);
    if (left == 0 && g_opts.count > 0) {
        /* The last message's ack is queued on its stream: let it go out before leaving,
         * or the sender would keep it and send it again later. */
        cl->stop = false;
        run_until_done(cl, &never, 0.3);
    }
    return g_opts.count > 0 && left > 0 ? EXIT_FAIL : EXIT_OK;
}

static int sub_broadcast(struct client *cl, int argc, char **argv)
{
    uint8_t id[QPC_ID_LEN];
    bool never = false;
    size_t links;
    int rc;

    if (argc != 3) {
        fprintf(stderr, "usage: qpc broadcast <topic> <message>\n");
        return EXIT_USAGE;
    }
    if (!have_a_way(cl, "a broadcast"))
        return EXIT_USAGE;
    if (strlen(argv[2]) > MESSAGE_TEXT_MAX) {
        fprintf(stderr, "qpc: that message is %zu bytes; the largest is %d bytes: nothing was "
                "sent (send it in parts)\n", strlen(argv[2]), MESSAGE_TEXT_MAX);
        return EXIT_USAGE;
    }
    rc = open_state(cl, true);
    if (rc != EXIT_OK)
        return rc;
    rc = start_node(cl, true);
    if (rc != EXIT_OK)
        return rc;
    /* Give the mesh links (or without mesh the session) a moment to come up, then flood
     * and let the frames drain. */
#if QPC_MESH
    run_until_done(cl, &never, 1.0 + (double)cl->cc->direct_timeout_ms / 2000.0);
#else
    wait_session(cl, SESSION_WAIT_S);
#endif
    rc = node_broadcast(cl, argv[1], argv[2], id);
    if (rc < 0) {
        fprintf(stderr, "qpc: cannot broadcast: %s\n", qpc_strerror(rc));
        return EXIT_USAGE;
    }
#if QPC_MESH
    links = node_link_count(cl);
    printf("broadcast on #%s to %zu link%s%s%s\n", argv[1], links, links == 1 ? "" : "s",
           session_up(cl) ? " and server " : "", session_up(cl) ? session_address(cl) : "");
#else
    links = 0;
    if (session_up(cl))
        printf("broadcast on #%s to server %s\n", argv[1], session_address(cl));
    else
        printf("broadcast on #%s not sent: no session with server %s (kept for the next one "
               "while this runs)\n", argv[1], cl->cc->server);
#endif
    run_until_done(cl, &never, g_opts.timeout_s > 0 ? g_opts.timeout_s : 2.0);
    return links > 0 || session_up(cl) ? EXIT_OK : EXIT_QUEUED;
}

/*
 * The server the REPL uses without being told: the one that answered last (or was set
 * with qpc server), else the only one noted. Scripts use --server only, so that what
 * a subcommand does does not depend on an earlier run.
 */
static const char *saved_server(struct client *cl, char *buf, size_t cap)
{
    const struct qpc_pin *only = qpc_identity_pin_next(cl->id, QPC_PIN_ADDRESS, NULL);

    if (state_saved_server(cl, buf, cap) == 0)
        return buf;
    if (only != NULL && qpc_identity_pin_count(cl->id, QPC_PIN_ADDRESS) == 1)
        return only->name;
    return NULL;
}

static int sub_repl(struct client *cl, int argc, char **argv)
{
    char buf[QPC_ADDRESS_MAX + 1], err[512];
    const char *server;
    int rc = open_state(cl, true);

    if (rc != EXIT_OK)
        return rc;
    rc = start_node(cl, true);
    if (rc != EXIT_OK)
        return rc;
    if (cl->session == NULL && (server = saved_server(cl, buf, sizeof(buf))) != NULL &&
        session_connect(cl, server, err, sizeof(err)) < 0)
        qpc_log_warn("session", "%s", err);
    cl->out_mode = OUT_REPL;
    return repl_run(cl);
}

static int sub_history(struct client *cl, int argc, char **argv)
{
    int rc;

    if (argc > 3) {
        fprintf(stderr, "usage: qpc history [peer|#topic] [N] [--json]\n");
        return EXIT_USAGE;
    }
    rc = open_state(cl, false);
    if (rc != EXIT_OK)
        return rc;
    rc = output_history(cl, argc > 1 ? argv[1] : NULL, argc > 2 ? argv[2] : NULL, g_opts.json);
    return rc == 0 ? EXIT_OK : rc == QPC_ERR_NOT_FOUND || rc == QPC_ERR_AMBIGUOUS || rc == QPC_ERR_REFUSED
                                   ? EXIT_NO_PEER : rc == QPC_ERR_INVALID ? EXIT_USAGE : EXIT_STATE;
}

static int sub_help(struct client *cl, int argc, char **argv);
static int sub_version(struct client *cl, int argc, char **argv)
{
    printf("qpc %s%s\n", QPC_VERSION, QPC_MESH ? "" : " (built without mesh)");
    return EXIT_OK;
}

static const struct subcommand subcommands[] = {
    { "repl", sub_repl, "", "interactive REPL (the default on a terminal)" },
    { "identity", sub_identity, "[--qr]", "print my peer id (creates it on first use); --qr: as a QR code" },
    { "send", sub_send, "<peer>[@domain] <message...>", "send one message, wait for its receipt" },
    { "listen", sub_listen, "", QPC_MESH ? "run as a node and print one line per arriving message"
                                         : "stay with the server and print one line per arriving message" },
    { "broadcast", sub_broadcast, "<topic> <message>", "publish on a broadcast channel" },
    { "subscribe", sub_subscribe, "<topic> [key]", "join a broadcast channel" },
    { "unsubscribe", sub_subscribe, "<topic>", "leave a broadcast channel" },
    { "peer", sub_peer, "add <key> <host:port> [name] | list", "edit or list the peer directory (add also takes a qpc: text)" },
    { "name", sub_name, "<peer> <name>", "name a peer ('me': yourself; name '-': none)" },
    { "route", sub_route, "", "list the routing table: dest via next-hop hops source seqno age [retracted] [home DOMAIN]" },
    { "server", sub_server, "<host:port>", "save a server: the REPL connects to it at start" },
    { "history", sub_history, "[peer] [N]", "the last N messages with a peer or #topic, or all" },
    { "version", sub_version, "", "print the version" },
    { "help", sub_help, "", "this text" },
};
#define NSUB (sizeof(subcommands) / sizeof(subcommands[0]))

/* What only the mesh has (the routes it learns): a build without mesh does not list it
 * and says so when it is typed. */
static bool mesh_only(const struct subcommand *sc)
{
    return sc->fn == sub_route;
}

static void usage(FILE *out)
{
    fprintf(out, "Usage: qpc [OPTIONS] [SUBCOMMAND [ARGS]]\n"
                 "The quicprochat client. Without a subcommand on a terminal: the REPL.\n");
    if (!QPC_MESH)
        fprintf(out, "Built without mesh (cmake -DQPC_MESH=OFF): client-server only. No P2P links, no\n"
                     "mDNS; every message, receipt and broadcast goes through the server (--server).\n");
    fprintf(out, "\nSubcommands:\n");
    for (size_t i = 0; i < NSUB; i++) {
        char head[64];

        if (!QPC_MESH && mesh_only(&subcommands[i]))
            continue;
        snprintf(head, sizeof(head), "%s %s", subcommands[i].name, subcommands[i].args);
        fprintf(out, "  %-44s %s\n", head, subcommands[i].description);
    }
    fprintf(out, "\nOptions:\n"
                 "  --data-dir DIR        state directory (identity.json, outbox.db, ...)\n"
                 "  --server HOST:PORT    server to connect to\n");
    if (QPC_MESH)
        fprintf(out, "  --listen ADDR:PORT    local P2P address (port 0 = any)\n");
    fprintf(out, "  --config FILE         qpc.toml to read\n"
                 "  --log-level LEVEL     error, warn, info, debug\n"
                 "  --KEY VALUE           any key of qpc.toml (see below)\n");
    if (QPC_MESH)
        fprintf(out, "  --no-mdns             no mDNS: neither browse nor announce\n");
    fprintf(out, "  --json                machine-readable output (identity, listen)\n"
                 "  --timeout SECONDS     how long send/broadcast/listen wait\n"
                 "  --receipt-wait SECONDS  send: how long to wait for the receipt once the\n"
                 "                        message is held (default 10; 0: exit 3 at once)\n"
                 "  --count N             listen: exit after N messages\n"
                 "  -h, --help / -V, --version\n"
                 "\nExit codes: 0 ok/delivered (verified receipt), 1 failure, 2 usage, 3 held (no receipt yet),\n"
                 "4 unknown or ambiguous peer, 5 state file corrupt, 6 refused.\n\nSettings:\n");
    qpc_config_print_help(&client_schema, out);
}

static int sub_help(struct client *cl, int argc, char **argv)
{
    usage(stdout);
    return EXIT_OK;
}

int main(int argc, char **argv)
{
    static const struct option fixed[] = {
        { "config", required_argument, NULL, 'c' }, { "no-mdns", no_argument, NULL, 'M' },
        { "json", no_argument, NULL, 'j' },         { "timeout", required_argument, NULL, 't' },
        { "count", required_argument, NULL, 'n' },  { "help", no_argument, NULL, 'h' },
        { "receipt-wait", required_argument, NULL, 'r' },
        { "version", no_argument, NULL, 'V' },
    };
    /* Every config key is also a flag (--data-dir, --server, --direct-timeout-ms ...). */
    struct option longopts[64 + sizeof(fixed) / sizeof(fixed[0])];
    size_t nlong = 0, nkeys = client_schema.key_count;
    struct client cl = { 0 };
    char err[512] = "";
    const char *flags[64][2] = { { 0 } };
    size_t nflags = 0;
    const struct subcommand *sc = NULL;
    enum qpc_log_level lvl;
    ev_signal sigint, sigterm;
    int opt, rc = EXIT_USAGE;

    set_locale();
    /* Everything qpc writes is the user's alone (the message history and its WAL, the
     * outbox, seen ids), whatever the data directory's mode or the login's umask. */
    umask(077);
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        longopts[nlong++] = fixed[i];
    for (size_t i = 0; i < nkeys && i < 64 - 1; i++) {
        const struct qpc_config_key *k = &client_schema.keys[i];

        if (strncmp(k->flag, "--", 2) == 0)
            longopts[nlong++] = (struct option){ k->flag + 2, required_argument, NULL, 1000 + (int)i };
    }
    longopts[nlong] = (struct option){ NULL, 0, NULL, 0 };
    while ((opt = getopt_long(argc, argv, "+hV", longopts, NULL)) != -1) {
        if (opt >= 1000 && nflags < 64) {
            flags[nflags][0] = client_schema.keys[opt - 1000].name;
            flags[nflags++][1] = optarg;
            continue;
        }
        switch (opt) {
        case 'c': g_opts.config = optarg; break;
        case 'M':
            if (!QPC_MESH) {
                fprintf(stderr, "qpc: --no-mdns: %s\n", CLIENT_NO_MESH);
                return EXIT_USAGE;
            }
            g_opts.no_mdns = true;
            break;
        case 'j': g_opts.json = true; break;
        case 't': g_opts.timeout_s = strtod(optarg, NULL); break;
        case 'n': g_opts.count = strtol(optarg, NULL, 10); break;
        case 'r': g_opts.receipt_wait_s = strtod(optarg, NULL); break;
        case 'h': usage(stdout); return EXIT_OK;
        case 'V': return sub_version(&cl, 0, NULL);
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        for (size_t i = 0; i < NSUB; i++)
            if (strcmp(argv[optind], subcommands[i].name) == 0)
                sc = &subcommands[i];
        if (sc == NULL) {
            fprintf(stderr, "qpc: unknown subcommand '%s'\n", argv[optind]);
            usage(stderr);
            return EXIT_USAGE;
        }
    } else if (isatty(STDIN_FILENO)) {
        sc = &subcommands[0];
    } else {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!QPC_MESH && mesh_only(sc)) {
        fprintf(stderr, "qpc: %s: %s\n", sc->name, CLIENT_NO_MESH);
        return EXIT_USAGE;
    }
    if (sc->fn == sub_help || sc->fn == sub_version)
        return sc->fn(&cl, argc - optind, argv + optind);
    /* Options after the subcommand (listen --json) are accepted too. */
    {
        int sub_argc = argc - optind;
        char **sub_argv = argv + optind;
        int keep = 1;

        for (int i = 1; i < sub_argc; i++) {
            if (strcmp(sub_argv[i], "--json") == 0)
                g_opts.json = true;
            else if (strcmp(sub_argv[i], "--count") == 0 && i + 1 < sub_argc)
                g_opts.count = strtol(sub_argv[++i], NULL, 10);
            else if (strcmp(sub_argv[i], "--timeout") == 0 && i + 1 < sub_argc)
                g_opts.timeout_s = strtod(sub_argv[++i], NULL);
            else if (strcmp(sub_argv[i], "--receipt-wait") == 0 && i + 1 < sub_argc)
                g_opts.receipt_wait_s = strtod(sub_argv[++i], NULL);
            else
                sub_argv[keep++] = sub_argv[i];
        }
        argc = optind + keep;
    }
    if (sodium_init() < 0 || qpc_config_new(&cl.cfg, &client_schema) < 0) {
        fprintf(stderr, "qpc: cannot initialise\n");
        return EXIT_FAIL;
    }
    rc = g_opts.config != NULL ? qpc_config_load_file(cl.cfg, g_opts.config, err, sizeof(err)) : 0;
    if (rc == 0)
        rc = qpc_config_load_env(cl.cfg, NULL, err, sizeof(err));
    for (size_t i = 0; rc == 0 && i < nflags; i++)
        rc = qpc_config_set(cl.cfg, flags[i][0], flags[i][1], QPC_CONFIG_SOURCE_FLAG, err, sizeof(err));
    if (rc == 0)
        rc = client_settings_resolve(cl.cfg, getenv("HOME"), err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "qpc: %s\n", err);
        qpc_config_free(cl.cfg);
        return EXIT_USAGE;
    }
    cl.cc = client_settings(cl.cfg);
    if (qpc_log_level_parse(cl.cc->log_level, &lvl) == 0)
        qpc_log_set_level(lvl);
    snprintf(cl.data_dir, sizeof(cl.data_dir), "%s", cl.cc->data_dir);
    cl.out_mode = g_opts.json ? OUT_JSON : OUT_PLAIN;
    cl.loop = EV_DEFAULT;
    signal(SIGPIPE, SIG_IGN);
    ev_signal_init(&sigint, sig_cb, SIGINT);
    ev_signal_init(&sigterm, sig_cb, SIGTERM);
    sigint.data = &cl;
    sigterm.data = &cl;
    ev_signal_start(cl.loop, &sigint);
    ev_signal_start(cl.loop, &sigterm);

    rc = sc->fn(&cl, argc - optind, argv + optind);

    if (cl.ep != NULL)
        node_shutdown(&cl);   /* links say goodbye while the session still carries relayed ones */
    session_close(&cl);
#if QPC_MESH
    discover_stop(&cl);
#endif
    output_turns_stop(&cl);   /* commits, then shows what waited for it */
    history_close(cl.history);
    cl.history = NULL;        /* what node_stop still says is not written down */
    if (cl.ep != NULL || cl.box != NULL)
        node_stop(&cl);
    if (cl.id != NULL)
        state_close(&cl);
    qpc_broadcast_set_free(cl.channels);
    qpc_config_free(cl.cfg);
    return rc;
}
