/*
 * output.c: how events reach the user.
 *
 * The one idea: every part of the client reports through emit(), and only this file
 * decides the form: a plain line for scripts (`qpc listen`), a JSON object per line
 * (`--json`), or, in the REPL, lines printed above the prompt without destroying what
 * the user is typing (lineedit_hide, print, lineedit_show).
 *
 * Nearly every text shown was chosen by someone else (a peer's message, a name, a
 * topic, a server's detail, a host's mDNS record), so nothing reaches the terminal
 * unescaped: control characters, malformed UTF-8 and the bidirectional overrides that
 * reorder what is seen come out as \xNN or \uNNNN, whatever their length. A message is
 * shown whole however long it is; its lines after the first are indented.
 */
#define _GNU_SOURCE   /* vasprintf, wcwidth */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>

#include "contacts.h"
#include "history.h"
#include "lineedit.h"
#include "output.h"
#include "qpc/broadcast.h"
#include "qpc/encoding.h"
#include "qpc/error.h"
#include "qpc/utf8.h"

#define CONTINUATION_INDENT "    "
#define TOPICS_WARNED_MAX 256           /* channels whose key mismatch was reported */

static bool repl_active;
/* Lines of a turn whose history writes are not committed yet, in the order said. */
static char *held_buf;
static size_t held_len, held_cap;
static char topics_warned[TOPICS_WARNED_MAX][QPC_TOPIC_MAX + 1];
static size_t ntopics_warned;

void output_set_repl(bool on)
{
    repl_active = on;
}

uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void short_id(char out[static 13], const uint8_t key[static QPC_KEY_LEN])
{
    qpc_hex_encode(out, key, 6);
}

const char *path_name(enum path_kind p)
{
    switch (p) {
    case PATH_DIRECT: return "direct";
    case PATH_RELAYED: return "relayed";
    case PATH_SERVER: return "server";
    case PATH_MESH: return "mesh";
    }
    return "?";
}

/* How a receipt says the message came, as the words after "via". */
static const char *via_name(enum path_kind p)
{
    switch (p) {
    case PATH_DIRECT: return "direct link";
    case PATH_RELAYED: return "relay";
    case PATH_SERVER: return "server";
    case PATH_MESH: return "neighbour";
    }
    return "?";
}

/* Bidirectional embeddings, overrides and isolates: they reorder the text around them. */
static bool is_bidi_control(uint32_t cp)
{
    return (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

void output_escape(FILE *f, const char *s, size_t len, const char *indent)
{
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t k = qpc_utf8_decode(s + i, len - i, &cp);

        if (k == 0) {
            fprintf(f, "\\x%02x", (unsigned char)s[i]);
            i++;
            continue;
        }
        if (cp == '\n' && indent != NULL)
            fprintf(f, "\n%s", indent);
        else if (cp == '\t')
            fputc('\t', f);
        else if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0))
            fprintf(f, "\\x%02x", (unsigned)cp);
        else if (is_bidi_control(cp))
            fprintf(f, "\\u%04x", (unsigned)cp);
        else
            fwrite(s + i, 1, k, f);
        i += k;
    }
}

/* Shows what is held, in one write (the prompt moved out of the way once). */
static void show_held(void)
{
    if (held_len > 0) {
        lineedit_hide();
        fwrite(held_buf, 1, held_len, stdout);
        fflush(stdout);
        lineedit_show();
    }
    held_len = 0;
}

/* Keeps text and its newline for show_held; false when there is no memory for it. */
static bool hold(const char *text)
{
    size_t n = strlen(text) + 1;

    if (held_len + n > held_cap) {
        size_t cap = held_cap > 0 ? held_cap : 4096;
        char *p;

        while (cap < held_len + n)
            cap *= 2;
        if ((p = realloc(held_buf, cap)) == NULL)
            return false;
        held_buf = p;
        held_cap = cap;
    }
    memcpy(held_buf + held_len, text, n - 1);
    held_buf[held_len + n - 1] = '\n';
    held_len += n;
    return true;
}

/* Prints finished, escaped text (one or more lines); in the REPL above the prompt. While
 * the turn's history writes are uncommitted it waits for the commit (output_turns_start);
 * short of memory to wait, it commits now and shows everything in order. */
static void put_text(struct client *cl, const char *text)
{
    bool holding = held_len > 0 || (cl != NULL && history_pending(cl->history));

    if (holding && hold(text))
        return;
    if (holding) {
        history_commit(cl->history);
        show_held();
    }
    lineedit_hide();
    fputs(text, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    lineedit_show();
}

/* The end of a turn: the history's commit, then what it held back. */
static void turn_shown(struct client *cl)
{
    history_commit(cl->history);
    show_held();
}

static void shown_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    turn_shown(w->data);
}

void output_turns_start(struct client *cl)
{
    if (cl->loop == NULL || cl->history == NULL || ev_is_active(&cl->shown))
        return;
    history_set_batched(cl->history, true);
    ev_prepare_init(&cl->shown, shown_cb);
    cl->shown.data = cl;
    ev_prepare_start(cl->loop, &cl->shown);
    ev_unref(cl->loop);   /* it must not keep the loop running on its own */
}

void output_turns_stop(struct client *cl)
{
    if (cl->loop != NULL && ev_is_active(&cl->shown)) {
        ev_ref(cl->loop);
        ev_prepare_stop(cl->loop, &cl->shown);
    }
    history_set_batched(cl->history, false);
    show_held();
    free(held_buf);
    held_buf = NULL;
    held_cap = 0;
}

void say(struct client *cl, const char *fmt, ...)
{
    char *raw = NULL, *out = NULL;
    size_t outlen = 0;
    va_list ap;
    FILE *f;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&raw, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    f = open_memstream(&out, &outlen);
    if (f != NULL) {
        /* Our own line breaks stay; every other control character is escaped. */
        char *save = NULL, *l = strtok_r(raw, "\n", &save);

        for (bool first = true; l != NULL; l = strtok_r(NULL, "\n", &save), first = false) {
            if (!first)
                fputc('\n', f);
            output_escape(f, l, strlen(l), NULL);
        }
        fclose(f);
        put_text(cl, out);
    }
    free(out);
    free(raw);
}

void info(struct client *cl, const char *fmt, ...)
{
    char *buf = NULL;
    va_list ap;
    struct event ev = { .kind = EVT_INFO };
    int n;

    va_start(ap, fmt);
    n = vasprintf(&buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    ev.text = buf;
    ev.text_len = (size_t)n;
    emit(cl, &ev);
    free(buf);
}

const char *output_peer_name(const struct client *cl, const uint8_t key[static QPC_KEY_LEN])
{
    const struct qpc_peer *p = cl->id != NULL ? qpc_identity_peer_get(cl->id, key) : NULL;

    return p != NULL && p->name != NULL ? p->name : NULL;
}

const char *output_label(const struct client *cl, const uint8_t key[static QPC_KEY_LEN], char buf[static 13])
{
    const char *name = output_peer_name(cl, key);

    if (name != NULL)
        return name;
    short_id(buf, key);
    return buf;
}

void output_who(FILE *f, const struct client *cl, const uint8_t key[static QPC_KEY_LEN])
{
    const char *name = output_peer_name(cl, key);
    char id[13];

    if (name != NULL) {
        output_escape(f, name, strlen(name), NULL);
        return;
    }
    short_id(id, key);
    fputs(id, f);
}

void output_time(char *out, size_t cap, uint64_t at_ms, uint64_t now)
{
    time_t t = (time_t)(at_ms / 1000), n = (time_t)(now / 1000);
    struct tm tm, tn;

    localtime_r(&t, &tm);
    localtime_r(&n, &tn);
    if (tm.tm_year == tn.tm_year && tm.tm_yday == tn.tm_yday)
        strftime(out, cap, "%H:%M", &tm);
    else
        strftime(out, cap, "%Y-%m-%d %H:%M", &tm);
}

const char *output_channel_refusal(const char *topic, bool with_key, int rc)
{
    if (rc == QPC_ERR_EXISTS)
        return "already subscribed with another key (/unsubscribe first)";
    if (rc == QPC_ERR_INVALID && !qpc_broadcast_topic_valid(topic))
        return "that is not a channel name: 1 to 255 bytes without control characters";
    if (rc == QPC_ERR_INVALID && with_key)
        return "that is not a channel key: a key is 32 bytes written as 64 hex digits or in "
               "base64 (43 or 44 characters); leave it out for the open channel of that name";
    return qpc_strerror(rc);
}

static const char *kind_name(enum event_kind k)
{
    switch (k) {
    case EVT_MESSAGE: return "message";
    case EVT_BROADCAST: return "broadcast";
    case EVT_DELIVERED: return "delivered";
    case EVT_HELD: return "held";
    case EVT_QUEUED: return "queued";
    case EVT_FAILED: return "failed";
    case EVT_INFO: return "info";
    case EVT_REFUSED_ENVELOPE: return "refused";
    }
    return "?";
}

/* A JSON string of text; malformed UTF-8 (a peer chose it) becomes U+FFFD, since one
 * invalid byte would make json_dumps fail and the whole line vanish. */
static json_t *json_text(const char *text, size_t len)
{
    json_t *j = json_stringn(text, len);
    char *copy, *o;

    if (j != NULL)
        return j;
    copy = malloc(3 * len + 1);
    if (copy == NULL)
        return NULL;
    o = copy;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t k = qpc_utf8_decode(text + i, len - i, &cp);

        if (k == 0) {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        } else {
            memcpy(o, text + i, k);
            o += k;
            i += k;
        }
    }
    j = json_stringn(copy, (size_t)(o - copy));
    free(copy);
    return j;
}

static void emit_json(struct client *cl, const struct event *ev, uint64_t now)
{
    json_t *o = json_object();
    char hex[QPC_ID_LEN * 2 + 1];
    char *s;

    json_object_set_new(o, "event", json_string(kind_name(ev->kind)));
    if (ev->peer != NULL) {
        qpc_hex_encode(hex, ev->peer, QPC_KEY_LEN);
        json_object_set_new(o, ev->kind == EVT_MESSAGE || ev->kind == EVT_BROADCAST ||
                                       ev->kind == EVT_REFUSED_ENVELOPE ? "from" : "to",
                            json_string(hex));
    }
    if (ev->id != NULL) {
        qpc_hex_encode(hex, ev->id, QPC_ID_LEN);
        json_object_set_new(o, "id", json_string(hex));
    }
    if (ev->topic != NULL)
        json_object_set_new(o, "topic", json_text(ev->topic, strlen(ev->topic)));
    if (ev->text != NULL)
        json_object_set_new(o, ev->kind == EVT_MESSAGE || ev->kind == EVT_BROADCAST ? "text" : "detail",
                            json_text(ev->text, ev->text_len));
    if (ev->kind == EVT_MESSAGE || ev->kind == EVT_DELIVERED || ev->kind == EVT_BROADCAST) {
        json_object_set_new(o, "path", json_string(path_name(ev->path)));
        json_object_set_new(o, "hops", json_integer(ev->hops));
    }
    if (ev->via != NULL)
        json_object_set_new(o, "via", json_text(ev->via, strlen(ev->via)));
    if (ev->kind == EVT_DELIVERED)
        json_object_set_new(o, "ms", json_integer((json_int_t)ev->elapsed_ms));
    if (ev->err != 0)
        json_object_set_new(o, "error", json_string(qpc_strerror(ev->err)));
    if (ev->peer != NULL && output_peer_name(cl, ev->peer) != NULL)
        json_object_set_new(o, "name", json_text(output_peer_name(cl, ev->peer),
                                                 strlen(output_peer_name(cl, ev->peer))));
    if (ev->sent_ms != 0)
        json_object_set_new(o, "sent_ms", json_integer((json_int_t)ev->sent_ms));
    json_object_set_new(o, "time_ms", json_integer((json_int_t)now));
    s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (s != NULL)
        put_text(cl, s);   /* ENSURE_ASCII: no byte of it can drive a terminal */
    free(s);
    json_decref(o);
}

/* ", sent 10:02" when a message was written well before it arrived (it waited). */
static void sent_note(FILE *f, uint64_t sent_ms, uint64_t now)
{
    char when[32];

    if (sent_ms == 0 || (sent_ms + 60000 > now && now + 60000 > sent_ms))
        return;
    output_time(when, sizeof(when), sent_ms, now);
    fprintf(f, ", sent %s", when);
}

static void emit_plain(struct client *cl, const struct event *ev, uint64_t now)
{
    char idh[13] = "", who[13] = "?", when[32];
    const char *text = ev->text != NULL ? ev->text : "";
    size_t tlen = ev->text != NULL ? ev->text_len : 0;
    char *line = NULL;
    size_t llen = 0;
    FILE *f = open_memstream(&line, &llen);

    if (f == NULL)
        return;
    if (ev->id != NULL)
        qpc_hex_encode(idh, ev->id, 6);
    /* Outcomes name the peer by id: the line before ("sending ... to <name>") gave its
     * name, and scripts match these lines by id. Messages show the name. */
    if (ev->peer != NULL)
        short_id(who, ev->peer);
    output_time(when, sizeof(when), now, now);
    switch (ev->kind) {
    case EVT_MESSAGE:
        fprintf(f, "[%s] <", when);
        output_who(f, cl, ev->peer);
        fputs("> ", f);
        output_escape(f, text, tlen, CONTINUATION_INDENT);
        fprintf(f, " (%s, %u hop%s", path_name(ev->path), ev->hops, ev->hops == 1 ? "" : "s");
        sent_note(f, ev->sent_ms, now);
        fputc(')', f);
        break;
    case EVT_BROADCAST:
        fprintf(f, "[%s] [#", when);
        output_escape(f, ev->topic, strlen(ev->topic), NULL);
        fputs("] <", f);
        output_who(f, cl, ev->peer);
        fputs("> ", f);
        output_escape(f, text, tlen, CONTINUATION_INDENT);
        if (ev->sent_ms != 0 && (ev->sent_ms + 60000 <= now || now + 60000 <= ev->sent_ms)) {
            fputs(" (", f);
            sent_note(f, ev->sent_ms, now);
            fputc(')', f);
        }
        break;
    case EVT_DELIVERED:
        /* "delivered ID to WHO (N hops, via X, T ms)", from the recipient's receipt. */
        fprintf(f, "delivered %s to %s (%u hop%s, via %s", idh, who, ev->hops, ev->hops == 1 ? "" : "s",
                via_name(ev->path));
        if (ev->via != NULL) {
            fputc(' ', f);
            output_escape(f, ev->via, strlen(ev->via), NULL);
        }
        fprintf(f, ", %llu ms)", (unsigned long long)ev->elapsed_ms);
        break;
    case EVT_HELD:
        fprintf(f, "held %s for %s", idh, who);
        fputs(" by ", f);
        output_escape(f, ev->via != NULL ? ev->via : "?", ev->via != NULL ? strlen(ev->via) : 1, NULL);
        break;
    case EVT_QUEUED:
        fprintf(f, "queued %s for %s", idh, who);
        fputs(": ", f);
        output_escape(f, text, tlen, NULL);
        break;
    case EVT_FAILED:
        fprintf(f, "failed %s to %s", idh, who);
        fputs(": ", f);
        if (ev->text != NULL)
            output_escape(f, text, tlen, NULL);
        else
            fputs(qpc_strerror(ev->err), f);
        break;
    case EVT_INFO:
        output_escape(f, text, tlen, NULL);
        break;
    case EVT_REFUSED_ENVELOPE:
        fputs("refused envelope from ", f);
        if (ev->peer != NULL)
            output_who(f, cl, ev->peer);
        else
            fputc('?', f);
        fprintf(f, ": %s", qpc_strerror(ev->err));
        break;
    }
    fclose(f);
    put_text(cl, line);
    free(line);
}

/*
 * A broadcast on a subscribed channel that my key cannot open: someone else uses the
 * channel's name with another key (or sends garbage). Said once per channel, with what
 * it means, instead of "decryption failed" for every message they send.
 */
static void report_key_mismatch(struct client *cl, const struct event *ev)
{
    for (size_t i = 0; i < ntopics_warned; i++)
        if (strcmp(topics_warned[i], ev->topic) == 0)
            return;
    if (ntopics_warned < TOPICS_WARNED_MAX)
        snprintf(topics_warned[ntopics_warned++], sizeof(topics_warned[0]), "%s", ev->topic);
    say(cl, "#%s: a broadcast from %s could not be read with your key for #%s: someone uses "
        "this channel name with another key. Further ones on #%s are not reported; to read "
        "them, subscribe with their key (/unsubscribe %s, then /mesh subscribe %s <key>)",
        ev->topic, output_peer_name(cl, ev->peer) != NULL ? output_peer_name(cl, ev->peer) : "a peer",
        ev->topic, ev->topic, ev->topic, ev->topic);
}

void emit(struct client *cl, const struct event *ev)
{
    uint64_t now = now_ms();

    /* Written down before it is shown: what the user saw is in the history. Batched,
     * the line waits for the turn's commit (put_text). */
    if (ev->kind == EVT_MESSAGE || ev->kind == EVT_BROADCAST)
        history_add_received(cl->history, ev, path_name(ev->path), now, cl->out_mode == OUT_REPL);
    else
        history_note_outcome(cl->history, ev, path_name(ev->path), now);

    /* Copies arriving over a second path are normal in a mesh: only scripts see them. */
    if (ev->kind == EVT_REFUSED_ENVELOPE && ev->err == QPC_ERR_DUPLICATE && cl->out_mode != OUT_JSON)
        ;
    else if (ev->kind == EVT_REFUSED_ENVELOPE && ev->err == QPC_ERR_DECRYPT && ev->topic != NULL &&
             cl->out_mode != OUT_JSON)
        report_key_mismatch(cl, ev);
    else if (cl->out_mode == OUT_JSON)
        emit_json(cl, ev, now);
    else
        emit_plain(cl, ev, now);
    if (cl->watch != NULL)
        cl->watch(cl, ev);
}

/* ---- the history, listed ------------------------------------------------------------------ */

static void history_row_json(struct client *cl, const struct history_row *r)
{
    json_t *o = json_object();
    char hex[QPC_ID_LEN * 2 + 1];
    char *s;

    qpc_hex_encode(hex, r->id, QPC_ID_LEN);
    json_object_set_new(o, "id", json_string(hex));
    json_object_set_new(o, "mine", json_boolean(r->mine));
    if (r->has_peer) {
        qpc_hex_encode(hex, r->peer, QPC_KEY_LEN);
        json_object_set_new(o, r->mine ? "to" : "from", json_string(hex));
        if (output_peer_name(cl, r->peer) != NULL)
            json_object_set_new(o, "name", json_text(output_peer_name(cl, r->peer),
                                                     strlen(output_peer_name(cl, r->peer))));
    }
    if (r->topic != NULL)
        json_object_set_new(o, "topic", json_text(r->topic, strlen(r->topic)));
    json_object_set_new(o, "text", json_text(r->text, r->text_len));
    json_object_set_new(o, "sent_ms", json_integer((json_int_t)r->sent_ms));
    json_object_set_new(o, "received_ms", r->received_ms ? json_integer((json_int_t)r->received_ms) : json_null());
    if (r->mine)
        json_object_set_new(o, "state", r->state != NULL ? json_string(r->state) : json_null());
    if (r->detail != NULL)
        json_object_set_new(o, "detail", json_text(r->detail, strlen(r->detail)));
    if (r->path != NULL)
        json_object_set_new(o, "path", json_string(r->path));
    s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (s != NULL)
        put_text(cl, s);
    free(s);
    json_decref(o);
}

void output_history_row(struct client *cl, const struct history_row *r, bool json)
{
    uint64_t now = now_ms();
    char when[32], other[32];
    char *line = NULL;
    size_t llen = 0;
    FILE *f;

    if (json) {
        history_row_json(cl, r);
        return;
    }
    if ((f = open_memstream(&line, &llen)) == NULL)
        return;
    output_time(when, sizeof(when), r->mine || r->received_ms == 0 ? r->sent_ms : r->received_ms, now);
    fprintf(f, "[%s] ", when);
    if (r->topic != NULL) {
        fputs("[#", f);
        output_escape(f, r->topic, strlen(r->topic), NULL);
        fputs("] ", f);
    }
    if (r->mine && r->has_peer) {
        fputs("-> ", f);
        output_who(f, cl, r->peer);
        fputs(": ", f);
    } else if (r->mine) {
        fputs("<me> ", f);
    } else {
        fputc('<', f);
        output_who(f, cl, r->peer);
        fputs("> ", f);
    }
    output_escape(f, r->text, r->text_len, CONTINUATION_INDENT);
    fputs("  (", f);
    if (r->mine && r->topic == NULL) {
        /* the outcome the node reported, as it said it */
        fputs(r->state != NULL ? r->state : "sending, no outcome yet", f);
        if (r->state != NULL && strcmp(r->state, "delivered") == 0) {
            output_time(other, sizeof(other), r->received_ms, now);
            fprintf(f, " %s", r->path != NULL ? r->path : "");
            if (r->detail != NULL) {
                fputs(" via ", f);
                output_escape(f, r->detail, strlen(r->detail), NULL);
            }
            fprintf(f, " at %s", other);
        } else if (r->detail != NULL) {
            fputs(strcmp(r->state, "held") == 0 ? " by " : ": ", f);
            output_escape(f, r->detail, strlen(r->detail), NULL);
        }
    } else if (r->mine) {
        fputs("broadcast", f);
    } else {
        output_time(other, sizeof(other), r->sent_ms, now);
        fprintf(f, "sent %s, %s", other, r->path != NULL ? r->path : "?");
    }
    fputc(')', f);
    fclose(f);
    put_text(cl, line);
    free(line);
}

struct list_ctx {
    struct client *cl;
    bool json;
};

static void list_row_cb(void *ctx, const struct history_row *r)
{
    struct list_ctx *c = ctx;

    output_history_row(c->cl, r, c->json);
}

int output_history(struct client *cl, const char *what, const char *count, bool json)
{
    struct list_ctx c = { cl, json };
    uint8_t key[QPC_KEY_LEN];
    char err[1024], *end = NULL;
    const char *topic = NULL;
    unsigned long n = HISTORY_DEFAULT_ROWS;
    bool by_peer = false;
    int rc;

    if (what != NULL && count == NULL && what[0] != '\0' && strspn(what, "0123456789") == strlen(what) &&
        strlen(what) < 7)
        count = what, what = NULL;   /* "/history 50": the last 50 of everything */
    if (count != NULL && ((n = strtoul(count, &end, 10)) == 0 || *end != '\0')) {
        say(cl, "'%s' is not a number of messages (1 or more)", count);
        return QPC_ERR_INVALID;
    }
    if (what != NULL && what[0] == '#') {
        topic = what + 1;
    } else if (what != NULL) {
        if ((rc = contacts_resolve(cl->id, what, key, NULL, err, sizeof(err))) < 0) {
            say(cl, "%s", err);
            return rc;
        }
        by_peer = true;
    }
    if (cl->history == NULL) {
        say(cl, "no history: %s could not be opened", HISTORY_FILE);
        return QPC_ERR_DB;
    }
    rc = history_list(cl->history, by_peer ? key : NULL, topic, n, !json, list_row_cb, &c);
    if (rc == 0 && !json)
        say(cl, "(no messages%s%s yet)", what != NULL ? " with " : "", what != NULL ? what : "");
    return rc < 0 ? rc : 0;
}

struct unread_ctx {
    struct client *cl;
    FILE *f;
    size_t total;
};

static void unread_cb(void *ctx, const uint8_t *peer, const char *topic, size_t count)
{
    struct unread_ctx *u = ctx;

    fprintf(u->f, "%s%zu ", u->total > 0 ? ", " : "", count);
    if (topic != NULL) {
        fputs("on #", u->f);
        output_escape(u->f, topic, strlen(topic), NULL);
    } else if (peer != NULL) {
        fputs("from ", u->f);
        output_who(u->f, u->cl, peer);
    }
    u->total += count;
}

void output_unread(struct client *cl)
{
    struct unread_ctx u = { cl, NULL, 0 };
    char *line = NULL;
    size_t llen = 0;

    if (cl->history == NULL || (u.f = open_memstream(&line, &llen)) == NULL)
        return;
    fputs("unread: ", u.f);
    history_unread(cl->history, unread_cb, &u);
    fputs(" (/history <name|#topic> shows them)", u.f);
    fclose(u.f);
    if (u.total > 0)
        put_text(cl, line);
    free(line);
}
