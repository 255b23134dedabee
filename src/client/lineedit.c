/*
 * lineedit.c: the REPL's line editor, libedit's own API (histedit.h) on the libev loop,
 * fed by us (lineedit.h).
 *
 * The one idea: we read the terminal and libedit only edits. libedit 3.1-20221030's
 * readline emulation corrupts the heap in callback mode once a line passes about 5,500
 * bytes (rl_callback_read_char ends each call with _rl_update_pos, which writes a NUL
 * through rl_line_buffer, a pointer into a conversion buffer that el_line has since
 * reallocated: valgrind shows the write into the freed block; docs/client.md). So the
 * readline emulation is not used at all, and libedit never reads the terminal:
 *   - printable text, one typed character or a pasted run of 100 KB alike, goes into
 *     the line with one el_insertstr per read and is drawn once (a paste costs a few
 *     dozen redraws, not one per character);
 *   - keys (control characters, escape sequences) go through el_gets in unbuffered
 *     mode, one key per call, read from our buffer (EL_GETCFN);
 *   - a line that passes max_line is dropped whole, up to its end, and reported.
 * Text is UTF-8: incomplete characters wait for the rest, malformed bytes and C1
 * controls from the terminal are dropped. Without a terminal, lines are read plainly.
 */
#define _GNU_SOURCE   /* vasprintf, wcwidth */
#include <ctype.h>
#include <errno.h>
#include <langinfo.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <wchar.h>
#include <histedit.h>

#include "lineedit.h"
#include "qpc/utf8.h"

#define READ_CHUNK 16384
#define HOLD_MAX 16                 /* an unfinished character or escape sequence */
#define HISTORY_SIZE 1000
#define EOF_CHAR 0x04               /* Ctrl-D */
/* Bound to qpc-refresh. No terminal sends it whole: escape_len ends a CSI at its first
 * final byte ('q'), so "pcR" would arrive as text. */
static const unsigned char refresh_key[] = "\033[qpcR";

static struct {
    EditLine *el;
    History *hist;
    struct ev_loop *loop;
    ev_io in;
    ev_signal winch;
    const struct lineedit_callbacks *cb;
    void *arg;
    char prompt[64];
    size_t prompt_cols;
    char history_path[PATH_MAX];
    size_t max_line;
    bool active;
    bool tty;
    bool utf8;                      /* the locale's characters are UTF-8 */
    bool shown;                     /* prompt and line are on the screen */
    bool hidden;                    /* lineedit_hide took them off */
    unsigned char hold[HOLD_MAX];   /* start of a character or key that has not all arrived */
    size_t nhold;
    const unsigned char *feed;      /* what el_gets reads next (le_getc) */
    size_t feed_len;
    bool discarding;                /* dropping the rest of a line that was too long */
    char *plain;                    /* without a terminal: the line so far */
    size_t plain_len;
    const char *cands[LINEEDIT_CANDIDATES_MAX];
} le;

static char *prompt_fn(EditLine *el)
{
    return le.prompt;
}

/* libedit's reader: the next character of what we fed. Only keys are fed, whole; a
 * key sequence libedit wants more of than arrived is waited for (as libedit would). */
static int le_getc(EditLine *el, wchar_t *wc)
{
    uint32_t cp;
    size_t n;

    if (le.feed_len == 0) {
        unsigned char c;
        ssize_t r;

        do
            r = read(STDIN_FILENO, &c, 1);
        while (r < 0 && errno == EINTR);
        if (r <= 0)
            return r == 0 ? 0 : -1;
        *wc = c;
        return 1;
    }
    n = qpc_utf8_decode((const char *)le.feed, le.feed_len, &cp);
    if (n == 0)
        n = 1, cp = 0xfffd;
    le.feed += n;
    le.feed_len -= n;
    *wc = (wchar_t)cp;
    return 1;
}

static unsigned char refresh_fn(EditLine *el, int ch)
{
    return CC_REFRESH;
}

static size_t terminal_cols(void)
{
    struct winsize ws;

    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return 80;
}

/* Columns the text takes on screen (libedit shows a control character as ^X). */
static size_t wide_cols(const wchar_t *s, const wchar_t *end)
{
    size_t cols = 0;

    for (; s < end; s++) {
        int w = wcwidth(*s);

        cols += w >= 0 ? (size_t)w : 2;
    }
    return cols;
}

static void finish_line(const char *line, size_t len);
static void eof(void);

/* Runs fed keys through libedit, one el_gets per key; a newline ends the line. */
static void keys(const unsigned char *p, size_t n)
{
    le.feed = p;
    le.feed_len = n;
    while (le.feed_len > 0 && le.active) {
        const LineInfoW *li = el_wline(le.el);
        bool was_empty = li->lastchar == li->buffer;
        int count = 0;
        const char *line = el_gets(le.el, &count);

        /* In unbuffered mode an empty line comes back as NULL; Ctrl-D on an empty line
         * comes back as that one character. */
        if (line == NULL)
            continue;
        if (was_empty && count == 1 && line[0] == EOF_CHAR) {
            eof();
            break;
        }
        if (count > 0 && line[count - 1] == '\n')
            finish_line(line, (size_t)count - 1);
    }
    le.feed_len = 0;
}

static void redraw(void)
{
    keys(refresh_key, sizeof(refresh_key) - 1);
}

/* Empties the line being edited (on screen too). */
static void empty_line(void)
{
    const LineInfoW *li = el_wline(le.el);

    el_cursor(le.el, (int)(li->lastchar - li->cursor));
    li = el_wline(le.el);
    el_deletestr(le.el, (int)(li->cursor - li->buffer));
    redraw();
}

/* Lines are handed over with the terminal in its normal mode and no prompt on screen;
 * the next prompt is drawn when the handler is done. */
static void finish_line(const char *line, size_t len)
{
    char *copy = malloc(len + 1);

    el_set(le.el, EL_UNBUFFERED, 0);
    le.shown = false;
    if (copy != NULL) {
        memcpy(copy, line, len);
        copy[len] = '\0';
        le.cb->on_line(le.arg, copy, len);
        explicit_bzero(copy, len);   /* a line may hold a channel key */
        free(copy);
    }
    if (le.active) {
        el_set(le.el, EL_UNBUFFERED, 1);
        le.shown = true;
    }
}

static void eof(void)
{
    if (le.tty) {
        el_set(le.el, EL_UNBUFFERED, 0);
        le.shown = false;
    }
    le.cb->on_eof(le.arg);
}

/* The line passed max_line: dropped now; what follows up to its end is dropped too. */
static void too_long(size_t len)
{
    le.discarding = true;
    if (le.tty)
        empty_line();
    le.cb->on_too_long(le.arg, len);
}

/* Inserts printable text (UTF-8, no C0) into the line: one insertion, one redraw. */
static void insert_text(const unsigned char *p, size_t n)
{
    char *clean = malloc(n + 1);
    const LineInfo *li;
    size_t o = 0, have;

    if (clean == NULL)
        return;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = qpc_utf8_decode((const char *)p + i, n - i, &cp);

        if (k == 0) {               /* malformed: dropped */
            i++;
            continue;
        }
        /* C1 controls are dropped; without a UTF-8 locale libedit cannot take more than ASCII */
        if ((cp >= 0x80 && cp < 0xa0) || (cp >= 0x80 && !le.utf8)) {
            i += k;
            continue;
        }
        memcpy(clean + o, p + i, k);
        o += k;
        i += k;
    }
    clean[o] = '\0';
    li = el_line(le.el);
    have = (size_t)(li->lastchar - li->buffer);
    if (have + o > le.max_line)
        too_long(have + o);
    else if (o > 0 && el_insertstr(le.el, clean) == 0)
        redraw();
    free(clean);
}

/* Length of the escape sequence at p, or 0 while it has not all arrived. */
static size_t escape_len(const unsigned char *p, size_t n)
{
    size_t i;

    if (n < 2)
        return 0;
    if (p[1] == '[') {              /* CSI: parameters, then one final byte */
        for (i = 2; i < n && i < HOLD_MAX; i++)
            if (p[i] >= 0x40 && p[i] <= 0x7e)
                return i + 1;
        return i >= HOLD_MAX ? HOLD_MAX : 0;
    }
    if (p[1] == 'O')                /* SS3: one more byte */
        return n >= 3 ? 3 : 0;
    if (p[1] >= 0x80) {             /* Meta with a non-ASCII character */
        uint32_t cp;
        size_t k = qpc_utf8_decode((const char *)p + 1, n - 1, &cp);

        return k > 0 ? 1 + k : (n - 1 >= 4 ? 2 : 0);
    }
    return 2;                       /* Meta-key */
}

/* Where the text stops being whole characters: an incomplete last one waits. */
static size_t whole_chars(const unsigned char *p, size_t n)
{
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        unsigned char c = p[n - back];
        size_t need;

        if ((c & 0xc0) == 0x80)
            continue;               /* a continuation byte: look further back */
        need = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 1;
        return need > back ? n - back : n;
    }
    return n;
}

static void hold(const unsigned char *p, size_t n)
{
    if (n > HOLD_MAX)
        n = HOLD_MAX;
    memmove(le.hold, p, n);
    le.nhold = n;
}

static void process(const unsigned char *p, size_t n)
{
    size_t i = 0;

    while (i < n && le.active) {
        size_t j, end;

        if (le.discarding) {
            while (i < n && p[i] != '\r' && p[i] != '\n')
                i++;
            if (i < n) {
                i++;
                le.discarding = false;
            }
            continue;
        }
        if (p[i] == 0x1b) {
            size_t k = escape_len(p + i, n - i);

            if (k == 0) {
                hold(p + i, n - i);
                return;
            }
            keys(p + i, k);
            i += k;
            continue;
        }
        if (p[i] < 0x20 || p[i] == 0x7f) {
            keys(p + i, 1);
            i++;
            continue;
        }
        for (j = i; j < n && p[j] >= 0x20 && p[j] != 0x7f; j++)
            ;
        end = j == n ? i + whole_chars(p + i, j - i) : j;
        insert_text(p + i, end - i);
        if (end < j) {
            hold(p + end, j - end);
            return;
        }
        i = j;
    }
}

/* Without a terminal: lines split at newlines, bounded like the editor's. */
static void process_plain(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n && le.active; i++) {
        if (p[i] == '\n') {
            if (!le.discarding) {
                le.plain[le.plain_len] = '\0';
                le.cb->on_line(le.arg, le.plain, le.plain_len);
            }
            explicit_bzero(le.plain, le.plain_len);
            le.plain_len = 0;
            le.discarding = false;
        } else if (!le.discarding && le.plain_len >= le.max_line) {
            le.discarding = true;
            le.cb->on_too_long(le.arg, le.plain_len + 1);
        } else if (!le.discarding) {
            le.plain[le.plain_len++] = (char)p[i];
        }
    }
}

static void stdin_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    unsigned char buf[HOLD_MAX + READ_CHUNK];
    size_t have = le.nhold;
    ssize_t r;

    memcpy(buf, le.hold, le.nhold);
    le.nhold = 0;
    r = read(STDIN_FILENO, buf + have, READ_CHUNK);
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) {
        hold(buf, have);
        return;
    }
    if (r <= 0) {                   /* the terminal or pipe is gone */
        eof();
        return;
    }
    if (le.tty)
        process(buf, have + (size_t)r);
    else
        process_plain(buf, have + (size_t)r);
}

static void winch_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    el_resize(le.el);
    if (le.shown) {
        lineedit_hide();
        lineedit_show();
    }
}

/* ---- completion ---------------------------------------------------------------------- */

static void list_candidates(const char **m, size_t n)
{
    size_t width = 0, cols = terminal_cols(), per_row;

    for (size_t i = 0; i < n; i++)
        if (strlen(m[i]) > width)
            width = strlen(m[i]);
    width += 2;
    per_row = cols / width > 0 ? cols / width : 1;
    lineedit_hide();
    for (size_t i = 0; i < n; i++)
        printf("%-*s%s", (int)width, m[i], (i + 1) % per_row == 0 || i + 1 == n ? "\n" : "");
    fflush(stdout);
    lineedit_show();
}

static unsigned char complete_fn(EditLine *el, int ch)
{
    const LineInfo *li = el_line(el);
    size_t cursor = (size_t)(li->cursor - li->buffer), ws = cursor, wl, m = 0, common;
    char *before = malloc(cursor + 1);
    const char *match[LINEEDIT_CANDIDATES_MAX];
    unsigned char rc = CC_ERROR;
    size_t n;

    if (before == NULL || le.cb->complete == NULL)
        goto out;
    memcpy(before, li->buffer, cursor);
    before[cursor] = '\0';
    while (ws > 0 && !isspace((unsigned char)before[ws - 1]))
        ws--;
    wl = cursor - ws;
    n = le.cb->complete(le.arg, before, ws, cursor, le.cands, LINEEDIT_CANDIDATES_MAX);
    for (size_t i = 0; i < n; i++) {
        bool dup = false;

        if (strncmp(le.cands[i], before + ws, wl) != 0)
            continue;
        for (size_t j = 0; j < m; j++)
            dup |= strcmp(match[j], le.cands[i]) == 0;
        if (!dup)
            match[m++] = le.cands[i];
    }
    if (m == 0)
        goto out;
    if (m == 1) {
        char *ins = malloc(strlen(match[0]) - wl + 2);

        if (ins != NULL) {
            sprintf(ins, "%s ", match[0] + wl);
            el_insertstr(el, ins);
            free(ins);
        }
        rc = CC_REFRESH;
        goto out;
    }
    common = strlen(match[0]);
    for (size_t i = 1; i < m; i++) {
        size_t k = 0;

        while (k < common && match[i][k] == match[0][k])
            k++;
        common = k;
    }
    common = whole_chars((const unsigned char *)match[0], common);
    if (common > wl) {
        char *ins = strndup(match[0] + wl, common - wl);

        if (ins != NULL)
            el_insertstr(el, ins);
        free(ins);
        rc = CC_REFRESH;
        goto out;
    }
    list_candidates(match, m);
    rc = CC_NORM;
out:
    free(before);
    return rc;
}

/* ---- the public face ------------------------------------------------------------------- */

int lineedit_start(struct ev_loop *loop, const char *prompt, const char *history_path,
                   size_t max_line, const struct lineedit_callbacks *cb, void *arg,
                   char *err, size_t errlen)
{
    HistEvent hev;
    const char *codeset = nl_langinfo(CODESET);
    wchar_t wprompt[64];
    size_t np;

    memset(&le, 0, sizeof(le));
    le.loop = loop;
    le.cb = cb;
    le.arg = arg;
    le.max_line = max_line;
    le.tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
    le.utf8 = codeset != NULL && strcmp(codeset, "UTF-8") == 0;
    snprintf(le.prompt, sizeof(le.prompt), "%s", prompt);
    np = mbstowcs(wprompt, le.prompt, 63);
    le.prompt_cols = np == (size_t)-1 ? strlen(le.prompt) : wide_cols(wprompt, wprompt + np);
    if (history_path != NULL)
        snprintf(le.history_path, sizeof(le.history_path), "%s", history_path);
    if (!le.tty) {
        le.plain = malloc(max_line + 1);
        if (le.plain == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    } else {
        le.el = el_init("qpc", stdin, stdout, stderr);
        le.hist = history_init();
        if (le.el == NULL || le.hist == NULL) {
            snprintf(err, errlen, "cannot start the line editor (libedit)");
            if (le.el != NULL)
                el_end(le.el);
            if (le.hist != NULL)
                history_end(le.hist);
            return -1;
        }
        history(le.hist, &hev, H_SETSIZE, HISTORY_SIZE);
        history(le.hist, &hev, H_SETUNIQUE, 1);
        if (le.history_path[0] != '\0')
            history(le.hist, &hev, H_LOAD, le.history_path);
        el_set(le.el, EL_EDITOR, "emacs");
        el_set(le.el, EL_HIST, history, le.hist);
        el_set(le.el, EL_PROMPT, prompt_fn);
        el_set(le.el, EL_GETCFN, le_getc);
        /* el_wset: the narrow el_set copies name and help with wcsdup, and el_end never
         * frees those copies (LeakSanitizer sees them); these literals need no copy. */
        el_wset(le.el, EL_ADDFN, L"qpc-refresh", L"redraw the line", refresh_fn);
        el_set(le.el, EL_BIND, (const char *)refresh_key, "qpc-refresh", NULL);
        el_wset(le.el, EL_ADDFN, L"qpc-complete", L"complete the word", complete_fn);
        el_set(le.el, EL_BIND, "^I", "qpc-complete", NULL);
        ev_signal_init(&le.winch, winch_cb, SIGWINCH);
        ev_signal_start(loop, &le.winch);
    }
    le.active = true;
    if (le.tty) {
        el_set(le.el, EL_UNBUFFERED, 1);   /* raw mode, first prompt */
        le.shown = true;
    }
    ev_io_init(&le.in, stdin_cb, STDIN_FILENO, EV_READ);
    ev_io_start(loop, &le.in);
    return 0;
}

void lineedit_stop(void)
{
    if (!le.active)
        return;
    le.active = false;
    ev_io_stop(le.loop, &le.in);
    if (le.tty) {
        ev_signal_stop(le.loop, &le.winch);
        if (le.shown)
            el_set(le.el, EL_UNBUFFERED, 0);
        el_end(le.el);
        history_end(le.hist);
        le.el = NULL;
        le.hist = NULL;
    }
    free(le.plain);
    le.plain = NULL;
    le.shown = false;
}

bool lineedit_active(void)
{
    return le.active;
}

void lineedit_history_add(const char *line)
{
    HistEvent hev;

    if (!le.active || !le.tty || line[0] == '\0')
        return;
    history(le.hist, &hev, H_ENTER, line);
    if (le.history_path[0] != '\0' && history(le.hist, &hev, H_SAVE, le.history_path) >= 0)
        chmod(le.history_path, 0600);   /* what was typed to whom is nobody else's business */
}

void lineedit_hide(void)
{
    const LineInfoW *li;
    size_t rows, cols;

    if (!le.active || !le.tty || !le.shown || le.hidden)
        return;
    li = el_wline(le.el);
    cols = terminal_cols();
    rows = (le.prompt_cols + wide_cols(li->buffer, li->cursor)) / cols;
    fputc('\r', stdout);
    if (rows > 0)
        fprintf(stdout, "\033[%zuA", rows);
    fputs("\033[J", stdout);
    fflush(stdout);
    le.hidden = true;
}

void lineedit_show(void)
{
    if (!le.active || !le.tty || !le.hidden)
        return;
    le.hidden = false;
    fflush(stdout);
    el_set(le.el, EL_REFRESH);
}

void lineedit_clear_line(void)
{
    const LineInfoW *li;

    if (!le.active || !le.tty || !le.shown)
        return;
    le.discarding = false;
    li = el_wline(le.el);
    if (li->lastchar == li->buffer) {
        lineedit_hide();
        fputs("(Ctrl-D or /quit leaves)\n", stdout);
        lineedit_show();
        return;
    }
    empty_line();
}
