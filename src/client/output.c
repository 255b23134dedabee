/*
 * output.c: how events reach the user.
 *
 * The one idea: every part of the client reports through emit(), and only this file
 * decides the form: a plain line for scripts (`qpc listen`), a JSON object per line
 * (`--json`), or, in the REPL, a line printed above the prompt without destroying what
 * the user is typing (clear the input line, print, let libedit redraw prompt and buffer).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <editline/readline.h>
#include <jansson.h>

#include "output.h"
#include "qpc/encoding.h"
#include "qpc/error.h"
#include <stdlib.h>

static bool repl_active;
static bool in_command;   /* a typed command runs: the prompt is not on screen */

void output_set_repl(bool on)
{
    repl_active = on;
}

void output_set_in_command(bool on)
{
    in_command = on;
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

/* Prints one finished line, free of control codes; in the REPL above the prompt. */
static void put_line_clean(const char *line)
{
    if (repl_active && !in_command) {
        fputs("\r\033[K", stdout);
        fputs(line, stdout);
        fputc('\n', stdout);
        fflush(stdout);
        rl_forced_update_display();
        return;
    }
    fputs(line, stdout);
    fputc('\n', stdout);
    fflush(stdout);
}

/*
 * Replaces terminal control codes in place: C0 and DEL, and the C1 codes in their UTF-8
 * form (U+0080..U+009F, e.g. U+009B is CSI on many terminals). Every printed line may
 * carry text a peer, a server or a host on the link chose.
 */
static void scrub_controls(char *s)
{
    for (unsigned char *p = (unsigned char *)s; *p != '\0'; p++) {
        if (*p < 0x20 || *p == 0x7f)
            *p = '?';
        else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
            p[0] = '?', p[1] = '?';
    }
}

/* Prints one line (control codes replaced); in the REPL above the prompt. */
static void put_line(const char *line_in)
{
    char *line = strdup(line_in);

    if (line == NULL)
        return;
    scrub_controls(line);
    put_line_clean(line);
    free(line);
}

void say(struct client *cl, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    /* A multi-line text is printed line by line so each goes above the prompt. */
    char *save = NULL;
    for (char *l = strtok_r(buf, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save))
        put_line(l);
}

void info(struct client *cl, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    struct event ev = { .kind = EVT_INFO };

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    ev.text = buf;
    ev.text_len = strlen(buf);
    emit(cl, &ev);
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

/* Replaces control characters so a peer cannot drive our terminal. */
static void sanitize(char *dst, size_t cap, const char *src, size_t len)
{
    size_t o = 0;

    for (size_t i = 0; i < len && o + 1 < cap; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    dst[o] = '\0';
}

/* A JSON string of text; bytes that are not valid UTF-8 (a peer chose them) become '?',
 * since one invalid byte would make json_dumps fail and the whole line vanish. */
static json_t *json_text(const char *text, size_t len)
{
    json_t *j = json_stringn(text, len);
    char *copy;

    if (j != NULL)
        return j;
    copy = malloc(len ? len : 1);
    if (copy == NULL)
        return NULL;
    for (size_t i = 0; i < len; i++)
        copy[i] = (unsigned char)text[i] >= 0x80 ? '?' : text[i];
    j = json_stringn(copy, len);
    free(copy);
    return j;
}

static void emit_json(const struct event *ev)
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
        json_object_set_new(o, "topic", json_string(ev->topic));
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
    s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (s != NULL)
        put_line(s);
    free(s);
    json_decref(o);
}

static void emit_plain(const struct event *ev)
{
    char who[13] = "", idh[13] = "", text[2048], line[2600];

    if (ev->peer != NULL)
        short_id(who, ev->peer);
    if (ev->id != NULL)
        qpc_hex_encode(idh, ev->id, 6);
    sanitize(text, sizeof(text), ev->text != NULL ? ev->text : "", ev->text != NULL ? ev->text_len : 0);
    switch (ev->kind) {
    case EVT_MESSAGE:
        snprintf(line, sizeof(line), "[%s] <%s> %s (%s, %u hop%s)", idh, who, text,
                 path_name(ev->path), ev->hops, ev->hops == 1 ? "" : "s");
        break;
    case EVT_BROADCAST:
        snprintf(line, sizeof(line), "[#%s] <%s> %s", ev->topic, who, text);
        break;
    case EVT_DELIVERED:
        /* "delivered ID to WHO (N hops, via X, T ms)", from the recipient's receipt. */
        snprintf(line, sizeof(line), "delivered %s to %s (%u hop%s, via %s%s%s, %llu ms)", idh, who,
                 ev->hops, ev->hops == 1 ? "" : "s", via_name(ev->path),
                 ev->via != NULL ? " " : "", ev->via != NULL ? ev->via : "",
                 (unsigned long long)ev->elapsed_ms);
        break;
    case EVT_HELD:
        snprintf(line, sizeof(line), "held %s for %s by %s", idh, who, ev->via != NULL ? ev->via : "?");
        break;
    case EVT_QUEUED:
        snprintf(line, sizeof(line), "queued %s for %s: %s", idh, who, text);
        break;
    case EVT_FAILED:
        snprintf(line, sizeof(line), "failed %s to %s: %s", idh, who,
                 ev->text != NULL ? text : qpc_strerror(ev->err));
        break;
    case EVT_INFO:
        snprintf(line, sizeof(line), "%s", text);
        break;
    case EVT_REFUSED_ENVELOPE:
        snprintf(line, sizeof(line), "refused envelope from %s: %s", who[0] ? who : "?",
                 qpc_strerror(ev->err));
        break;
    }
    put_line(line);
}

void emit(struct client *cl, const struct event *ev)
{
    /* Copies arriving over a second path are normal in a mesh: only scripts see them. */
    if (ev->kind == EVT_REFUSED_ENVELOPE && ev->err == QPC_ERR_DUPLICATE && cl->out_mode != OUT_JSON)
        ;
    else if (cl->out_mode == OUT_JSON)
        emit_json(ev);
    else
        emit_plain(ev);
    if (cl->watch != NULL)
        cl->watch(cl, ev);
}
