/*
 * repl.c: the interactive client, a libedit line editor on the node's libev loop.
 *
 * The one idea: the REPL is a table. Each row is a command (its words, its usage, one
 * line of help, a handler); /help, the usage shown on wrong arguments and tab completion
 * are all generated from the rows, so they cannot drift apart. libedit runs in callback
 * mode (rl_callback_read_char from an ev_io on stdin), so messages arriving while the
 * user types are printed above the prompt by output.c and the typed line is redrawn.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <editline/readline.h>
#include <sodium.h>

#include "client.h"
#include "discover.h"
#include "node.h"
#include "output.h"
#include "session.h"
#include "state.h"
#include "qpc/error.h"
#include "qpc/log.h"

struct command {
    const char *name;        /* words typed, e.g. "/mesh send" */
    const char *args;        /* usage of the arguments, e.g. "<peer_id> <msg>" */
    const char *help;
    int (*fn)(struct client *cl, char *args);   /* 0, or -1 to print the usage */
    int nargs_min;           /* words required in args (the last may be "rest of line") */
};

static struct client *g_cl;   /* libedit callbacks carry no user pointer */
static bool g_quit;
static ev_io g_stdin;
static char g_history[PATH_MAX + 32];

/* Splits off the next word of *s (NULL when none is left). */
static char *next_word(char **s)
{
    char *w, *p = *s;

    while (*p && isspace((unsigned char)*p))
        p++;
    if (*p == '\0')
        return NULL;
    w = p;
    while (*p && !isspace((unsigned char)*p))
        p++;
    if (*p)
        *p++ = '\0';
    *s = p;
    return w;
}

/* The rest of the line without surrounding blanks, or NULL if empty. */
static char *rest(char **s)
{
    char *p = *s, *e;

    while (*p && isspace((unsigned char)*p))
        p++;
    if (*p == '\0')
        return NULL;
    e = p + strlen(p);
    while (e > p && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return p;
}

/* Resolves a typed peer id: a full key, or a unique prefix of a known peer. */
static int resolve_peer(struct client *cl, const char *text, uint8_t key[static QPC_KEY_LEN])
{
    const struct qpc_peer *p = NULL;
    char err[512];
    int rc;

    if (strlen(text) == 64 && qpc_key_from_hex(key, text) == 0)
        return 0;
    rc = qpc_identity_peer_find(cl->id, text, &p, err, sizeof(err));
    if (rc == 0 && !discover_prefix_trusted(p, text)) {
        say(cl, "'%s' matches a peer known only from mDNS: give at least %d hex digits of its id",
            text, DISCOVER_PREFIX_MIN);
        return QPC_ERR_REFUSED;
    }
    if (rc == 0) {
        memcpy(key, p->key, QPC_KEY_LEN);
        return 0;
    }
    if (rc == QPC_ERR_AMBIGUOUS)
        say(cl, "%s", err);
    else if (rc == QPC_ERR_NOT_FOUND)
        say(cl, "no known peer matches '%s' (see /mesh peers)", text);
    else
        say(cl, "'%s' is not a peer id (hex)", text);
    return rc;
}

/* ---- handlers ------------------------------------------------------------------------ */

static int cmd_help(struct client *cl, char *args);

static int cmd_peers(struct client *cl, char *args)
{
    discover_print(cl);
    return 0;
}

static int cmd_server(struct client *cl, char *args)
{
    char *addr = next_word(&args);
    int rc;

    if (addr == NULL || rest(&args) != NULL)
        return -1;
    rc = qpc_identity_pin_note(cl->id, QPC_PIN_ADDRESS, addr, now_ms(), NULL);
    if (rc < 0) {
        say(cl, "cannot note server '%s': %s", addr, qpc_strerror(rc));
        return 0;
    }
    cl->id_dirty = true;
    state_save_identity(cl, true);
    say(cl, "noted server %s (use /connect %s to connect)", addr, addr);
    return 0;
}

static int cmd_add(struct client *cl, char *args)
{
    char *id = next_word(&args), *addr = next_word(&args), *name = rest(&args);
    uint8_t key[QPC_KEY_LEN];
    int rc;

    if (id == NULL || addr == NULL)
        return -1;
    if (qpc_key_from_text(key, id) < 0) {
        say(cl, "'%s' is not a full peer key (64 hex characters)", id);
        return 0;
    }
    rc = qpc_identity_peer_upsert(cl->id, key, name, addr, now_ms(), QPC_PEER_SOURCE_MANUAL,
                                  QPC_PEER_CLIENT, NULL);
    if (rc < 0) {
        say(cl, "cannot add peer: %s", qpc_strerror(rc));
        return 0;
    }
    cl->id_dirty = true;
    state_save_identity(cl, true);
    node_peer_seen(cl, key, NULL, QPC_PEER_SOURCE_MANUAL);
    say(cl, "added peer %.12s at %s", id, addr);
    return 0;
}

static int cmd_mesh_send(struct client *cl, char *args)
{
    char *who = next_word(&args), *msg = rest(&args);
    uint8_t key[QPC_KEY_LEN], id[QPC_ID_LEN];
    char idh[13], wh[13];
    int rc;

    if (who == NULL || msg == NULL)
        return -1;
    if (resolve_peer(cl, who, key) < 0)
        return 0;
    rc = node_send_text(cl, key, NULL, msg, id);
    if (rc < 0) {
        say(cl, "cannot send: %s", qpc_strerror(rc));
        return 0;
    }
    qpc_hex_encode(idh, id, 6);
    short_id(wh, key);
    say(cl, "sending %s to %s ...", idh, wh);
    return 0;
}

static int cmd_broadcast(struct client *cl, char *args)
{
    char *topic = next_word(&args), *msg = rest(&args);
    uint8_t id[QPC_ID_LEN];
    char idh[13];
    int rc;

    if (topic == NULL || msg == NULL)
        return -1;
    rc = node_broadcast(cl, topic, msg, id);
    if (rc < 0) {
        say(cl, "cannot broadcast: %s", qpc_strerror(rc));
        return 0;
    }
    qpc_hex_encode(idh, id, 6);
    say(cl, "broadcast %s on #%s to %zu link%s", idh, topic, node_link_count(cl),
        node_link_count(cl) == 1 ? "" : "s");
    return 0;
}

static int cmd_subscribe(struct client *cl, char *args)
{
    char *topic = next_word(&args), *key = next_word(&args);
    int rc;

    if (topic == NULL || rest(&args) != NULL)
        return -1;
    rc = key != NULL ? qpc_broadcast_subscribe_text(cl->channels, topic, key, NULL)
                     : qpc_broadcast_subscribe(cl->channels, topic, NULL, NULL);
    if (rc < 0) {
        say(cl, "cannot subscribe to '%s': %s", topic, rc == QPC_ERR_EXISTS
            ? "already subscribed with another key (/unsubscribe first)" : qpc_strerror(rc));
        return 0;
    }
    if (key != NULL)
        state_remember_key_text(topic, key);
    state_save_subscriptions(cl);
    say(cl, "subscribed to #%s (%s channel)", topic, key != NULL ? "private" : "open");
    return 0;
}

static int cmd_unsubscribe(struct client *cl, char *args)
{
    char *topic = next_word(&args);

    if (topic == NULL || rest(&args) != NULL)
        return -1;
    if (qpc_broadcast_unsubscribe(cl->channels, topic) < 0) {
        say(cl, "not subscribed to '%s'", topic);
        return 0;
    }
    state_remember_key_text(topic, NULL);
    state_save_subscriptions(cl);
    say(cl, "unsubscribed from #%s", topic);
    return 0;
}

static int cmd_route(struct client *cl, char *args)
{
    struct qpc_route *r = NULL;
    size_t n = 0;
    uint64_t now = now_ms();

    if (rest(&args) != NULL)
        return -1;
    if (qpc_route_list(cl->routes, &r, &n) < 0)
        return 0;
    say(cl, "%-12s %-10s %-8s %-28s %4s %6s %s", "destination", "name", "via", "next hop", "hops",
        "age", "source");
    for (size_t i = 0; i < n; i++) {
        char dest[13], nh[QPC_ROUTE_ADDR_MAX + 16];

        short_id(dest, r[i].dest);
        if (r[i].via == QPC_ROUTE_VIA_PEER) {
            char vp[13];
            short_id(vp, r[i].via_peer);
            snprintf(nh, sizeof(nh), "peer %s", vp);
        } else {
            snprintf(nh, sizeof(nh), "%s", r[i].next_hop);
        }
        say(cl, "%-12s %-10s %-8s %-28s %4u %5llus %s", dest, r[i].name[0] ? r[i].name : "-",
            qpc_route_via_name(r[i].via), nh, r[i].hops,
            (unsigned long long)(now > r[i].last_seen_ms ? (now - r[i].last_seen_ms) / 1000 : 0),
            qpc_route_source_name(r[i].source));
    }
    if (n == 0)
        say(cl, "(no routes yet)");
    free(r);
    return 0;
}

static int cmd_identity(struct client *cl, char *args)
{
    const struct qpc_pin *s = NULL;

    if (rest(&args) != NULL)
        return -1;
    say(cl, "peer id:  %s", qpc_identity_peer_id(cl->id));
    if (qpc_identity_name(cl->id) != NULL)
        say(cl, "name:     %s", qpc_identity_name(cl->id));
    say(cl, "file:     %s", cl->identity_path);
    say(cl, "listen:   %s", cl->listen_text);
    say(cl, "peers:    %zu known", qpc_identity_peer_count(cl->id));
    while ((s = qpc_identity_pin_next(cl->id, QPC_PIN_ADDRESS, s)) != NULL) {
        char hex[QPC_KEY_HEX_LEN] = "(key not pinned yet)";

        if (s->has_key)
            qpc_key_to_hex(hex, s->key);
        say(cl, "server:   %s %s", s->name, hex);
    }
    return 0;
}

static int queue_line_cb(void *ctx, const struct qpc_store_queue_info *q)
{
    struct client *cl = ctx;
    char who[13];

    if (q->recipient != NULL) {
        short_id(who, q->recipient);
        say(cl, "  for %s: %zu message%s, %zu bytes", who, q->count, q->count == 1 ? "" : "s", q->bytes);
    } else {
        say(cl, "  #%s: %zu broadcast%s", q->topic, q->count, q->count == 1 ? "" : "s");
    }
    return 0;
}

static int cmd_store(struct client *cl, char *args)
{
    struct qpc_store_stats st;

    if (rest(&args) != NULL)
        return -1;
    qpc_store_get_stats(cl->store, &st);
    say(cl, "store: %zu envelopes (%zu bytes) for %zu recipients and %zu topics; %zu ids remembered",
        st.envelopes, st.bytes, st.recipients, st.topics, st.dedup_entries);
    say(cl, "totals: %llu stored, %llu forwarded, %llu expired, %llu duplicates refused",
        (unsigned long long)st.put, (unsigned long long)st.forwarded,
        (unsigned long long)st.expired, (unsigned long long)st.refused_duplicate);
    say(cl, "receipts: %zu of my messages wait for one, %zu owed to others, %llu refused (not sent to their signer)",
        receipts_waiting_count(&cl->receipts), receipts_owed_count(&cl->receipts),
        (unsigned long long)cl->receipts.refused);
    qpc_store_foreach_queue(cl->store, queue_line_cb, cl);
    return 0;
}

static int cmd_connect(struct client *cl, char *args)
{
    char *addr = next_word(&args);
    char err[256] = "";
    const struct qpc_pin *s = NULL;

    if (rest(&args) != NULL)
        return -1;
    if (addr == NULL) {
        if (cl->cc->server[0] != '\0')
            addr = (char *)cl->cc->server;
        else if ((s = qpc_identity_pin_next(cl->id, QPC_PIN_ADDRESS, NULL)) != NULL)
            addr = s->name;
        else {
            say(cl, "no server known: /connect <host:port> or /mesh server <host:port>");
            return 0;
        }
    }
    if (session_connect(cl, addr, err, sizeof(err)) < 0)
        say(cl, "%s", err);
    else
        say(cl, "connecting to %s ...", addr);
    return 0;
}

static int cmd_send(struct client *cl, char *args)
{
    char *who = next_word(&args), *msg = rest(&args), *at;
    const char *domain;
    uint8_t key[QPC_KEY_LEN], id[QPC_ID_LEN];
    char idh[13];
    int rc;

    if (who == NULL || msg == NULL)
        return -1;
    if ((at = strchr(who, '@')) != NULL)
        *at = '\0';
    if (resolve_peer(cl, who, key) < 0)
        return 0;
    if (!session_up(cl)) {
        say(cl, "not connected to a server (/connect first)");
        return 0;
    }
    /* Without a domain: the server's own (a client of the same node). */
    domain = at != NULL ? at + 1 : session_domain(cl);
    rc = node_send_text(cl, key, domain[0] != '\0' ? domain : NULL, msg, id);
    if (rc < 0) {
        say(cl, "cannot send: %s", qpc_strerror(rc));
        return 0;
    }
    qpc_hex_encode(idh, id, 6);
    say(cl, "sending %s through server %s ...", idh, session_address(cl));
    return 0;
}

static int cmd_quit(struct client *cl, char *args)
{
    g_quit = true;
    ev_break(cl->loop, EVBREAK_ALL);
    return 0;
}

static const struct command commands[] = {
    { "/mesh peers", "", "nodes seen via mDNS (with TXT fields) and known peers", cmd_peers, 0 },
    { "/mesh server", "<host:port>", "note a server (persisted)", cmd_server, 1 },
    { "/mesh send", "<peer_id> <msg>", "direct P2P message (a unique id prefix is enough)", cmd_mesh_send, 2 },
    { "/mesh broadcast", "<topic> <msg>", "publish to a broadcast channel", cmd_broadcast, 2 },
    { "/mesh subscribe", "<topic> [key]", "join a channel (open, or private with a key)", cmd_subscribe, 1 },
    { "/mesh route", "", "routing table: destination, next hop, hops, age, source", cmd_route, 0 },
    { "/mesh identity", "", "my mesh identity and known servers", cmd_identity, 0 },
    { "/mesh store", "", "store-and-forward statistics", cmd_store, 0 },
    { "/mesh add", "<peer_key> <host:port> [name]", "add a peer to the directory", cmd_add, 2 },
    { "/connect", "[host:port]", "connect to a server (default: the configured or noted one)", cmd_connect, 0 },
    { "/send", "<peer_id|key@domain> <msg>", "send through the server", cmd_send, 2 },
    { "/unsubscribe", "<topic>", "leave a broadcast channel", cmd_unsubscribe, 1 },
    { "/help", "", "this list", cmd_help, 0 },
    { "/quit", "", "leave", cmd_quit, 0 },
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static int cmd_help(struct client *cl, char *args)
{
    for (size_t i = 0; i < NCOMMANDS; i++) {
        char head[96];

        snprintf(head, sizeof(head), "%s %s", commands[i].name, commands[i].args);
        say(cl, "  %-44s %s", head, commands[i].help);
    }
    return 0;
}

/* Finds the longest command whose words start line; *rest_out is what follows. */
static const struct command *lookup(char *line, char **rest_out)
{
    const struct command *best = NULL;
    size_t best_len = 0;

    for (size_t i = 0; i < NCOMMANDS; i++) {
        size_t n = strlen(commands[i].name);

        if (strncmp(line, commands[i].name, n) == 0 && (line[n] == '\0' || isspace((unsigned char)line[n])) &&
            n > best_len) {
            best = &commands[i];
            best_len = n;
        }
    }
    if (best != NULL)
        *rest_out = line + best_len;
    return best;
}

void repl_execute(struct client *cl, char *line);
void repl_execute(struct client *cl, char *line)
{
    char *args = NULL, *p = line;
    const struct command *c;

    while (isspace((unsigned char)*p))
        p++;
    if (*p == '\0')
        return;
    c = lookup(p, &args);
    if (c == NULL) {
        if (strncmp(p, "/mesh", 5) == 0 && (p[5] == '\0' || isspace((unsigned char)p[5]))) {
            say(cl, "usage: /mesh peers|server|send|broadcast|subscribe|route|identity|store|add ...");
            return;
        }
        say(cl, "unknown command '%s' (/help lists them)", p);
        return;
    }
    if (c->fn(cl, args) < 0)
        say(cl, "usage: %s %s", c->name, c->args);
}

/* ---- libedit glue ------------------------------------------------------------------ */

/* True for a line that carries a channel key (/mesh subscribe <topic> <key>). */
static bool line_has_secret(const char *line)
{
    char copy[512], *p = copy, *w1, *w2, *w3, *w4;
    bool secret;

    snprintf(copy, sizeof(copy), "%s", line);
    w1 = next_word(&p), w2 = next_word(&p), w3 = next_word(&p), w4 = next_word(&p);
    secret = w1 != NULL && w2 != NULL && w3 != NULL && w4 != NULL && strcmp(w1, "/mesh") == 0 &&
             strcmp(w2, "subscribe") == 0;
    sodium_memzero(copy, sizeof(copy));
    return secret;
}

static void on_line(char *line)
{
    bool secret;
    size_t len;

    if (line == NULL) {             /* EOF (Ctrl-D) */
        g_quit = true;
        ev_break(g_cl->loop, EVBREAK_ALL);
        return;
    }
    /* A private channel key must not end up in the history file (or stay in memory). */
    secret = line_has_secret(line);
    len = strlen(line);   /* before the command splits the line into words with NULs */
    if (*line != '\0' && !secret) {
        add_history(line);
        if (g_history[0])
            write_history(g_history);
    }
    /* libedit redraws the prompt after the handler: print plainly until then. */
    output_set_in_command(true);
    repl_execute(g_cl, line);
    output_set_in_command(false);
    if (secret)
        sodium_memzero(line, len);
    free(line);
    /* libedit's callback mode leaves the line editor in buffered mode after a line,
     * so the next read would block the loop until Enter: installing the handler again
     * switches back to one-character reads and draws a fresh prompt. */
    if (!g_quit)
        rl_callback_handler_install("qpc> ", on_line);
}

static void stdin_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    rl_callback_read_char();
}

/* Candidates for the word being completed: commands, then peer ids or topics. */
static const char *g_words[512];
static size_t g_nwords;

static char *word_gen(const char *text, int state)
{
    static size_t i;
    size_t len = strlen(text);

    if (state == 0)
        i = 0;
    while (i < g_nwords) {
        const char *w = g_words[i++];

        if (strncmp(w, text, len) == 0)
            return strdup(w);
    }
    return NULL;
}

static char **complete(const char *text, int start, int end)
{
    static char firsts[NCOMMANDS][32], seconds[NCOMMANDS][32];
    static const struct qpc_channel **chans;
    char before[256];
    size_t nchans = 0;

    rl_attempted_completion_over = 1;
    g_nwords = 0;
    snprintf(before, sizeof(before), "%.*s", start, rl_line_buffer);
    char *b = before, *w1 = next_word(&b), *w2 = next_word(&b), *w3 = next_word(&b);

    if (w1 == NULL) {
        for (size_t i = 0; i < NCOMMANDS; i++) {
            char *sp;
            bool dup = false;

            snprintf(firsts[i], sizeof(firsts[i]), "%s", commands[i].name);
            if ((sp = strchr(firsts[i], ' ')) != NULL)
                *sp = '\0';
            for (size_t j = 0; j < g_nwords; j++)
                dup |= strcmp(g_words[j], firsts[i]) == 0;
            if (!dup)
                g_words[g_nwords++] = firsts[i];
        }
    } else if (strcmp(w1, "/mesh") == 0 && w2 == NULL) {
        for (size_t i = 0; i < NCOMMANDS; i++)
            if (strncmp(commands[i].name, "/mesh ", 6) == 0) {
                snprintf(seconds[i], sizeof(seconds[i]), "%s", commands[i].name + 6);
                g_words[g_nwords++] = seconds[i];
            }
    } else if ((strcmp(w1, "/send") == 0 && w2 == NULL) ||
               (strcmp(w1, "/mesh") == 0 && strcmp(w2, "send") == 0 && w3 == NULL)) {
        const struct qpc_peer *p = NULL;

        while ((p = qpc_identity_peer_next(g_cl->id, p)) != NULL && g_nwords < 512)
            g_words[g_nwords++] = p->id;
    } else if ((strcmp(w1, "/unsubscribe") == 0 && w2 == NULL) ||
               (strcmp(w1, "/mesh") == 0 && w2 != NULL &&
                (strcmp(w2, "broadcast") == 0 || strcmp(w2, "subscribe") == 0) && w3 == NULL)) {
        free(chans);
        chans = NULL;
        if (qpc_broadcast_list(g_cl->channels, &chans, &nchans) == 0)
            for (size_t i = 0; i < nchans && g_nwords < 512; i++)
                g_words[g_nwords++] = qpc_channel_topic(chans[i]);
    }
    (void)end;
    return rl_completion_matches(text, word_gen);
}

static void log_to_screen(enum qpc_log_level level, const char *line, void *arg)
{
    say(arg, "%s", line);
}

int repl_run(struct client *cl);
int repl_run(struct client *cl)
{
    g_cl = cl;
    g_quit = false;
    output_set_repl(true);
    qpc_log_set_sink(log_to_screen, cl);
    snprintf(g_history, sizeof(g_history), "%s/history", cl->data_dir);
    using_history();
    read_history(g_history);
    rl_attempted_completion_function = complete;
    rl_callback_handler_install("qpc> ", on_line);
    say(cl, "qpc %s - peer id %s - listening on %s - /help for commands", QPC_VERSION,
        qpc_identity_peer_id(cl->id), cl->listen_text);
    ev_io_init(&g_stdin, stdin_cb, STDIN_FILENO, EV_READ);
    ev_io_start(cl->loop, &g_stdin);
    while (!g_quit && !cl->stop)
        ev_run(cl->loop, EVRUN_ONCE);
    ev_io_stop(cl->loop, &g_stdin);
    rl_callback_handler_remove();
    qpc_log_set_sink(NULL, NULL);
    output_set_repl(false);
    fputc('\n', stdout);
    return EXIT_OK;
}
