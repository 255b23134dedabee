/*
 * lineedit.h: the REPL's line editor on the libev loop (lineedit.c).
 *
 * One terminal per process, so one editor: the functions act on a single instance.
 * The editor owns standard input while it runs; whoever prints while it runs calls
 * lineedit_hide() before and lineedit_show() after, so the typed line survives.
 */
#ifndef QPC_CLIENT_LINEEDIT_H
#define QPC_CLIENT_LINEEDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <ev.h>

#define LINEEDIT_CANDIDATES_MAX 512

struct lineedit_callbacks {
    /* A finished line, without its newline, NUL-terminated; len bytes. The callee may
     * modify it and must not keep it: it is wiped and freed after the call. */
    void (*on_line)(void *arg, char *line, size_t len);
    /* Ctrl-D on an empty line, or the end of standard input. */
    void (*on_eof)(void *arg);
    /* A line of len bytes (so far) passed max_line: it was dropped whole, nothing of it
     * runs; the rest of it up to its newline is dropped too. */
    void (*on_too_long)(void *arg, size_t len);
    /*
     * Completion (Tab): line[0..cursor) is what precedes the cursor, word_start where
     * the word being completed begins. Fills up to max candidate words (the callee owns
     * them; valid until the next call) and returns how many. The editor keeps those
     * starting with the word, inserts a unique one (and a space) or their longest common
     * prefix, and lists them when nothing can be inserted. May be NULL.
     */
    size_t (*complete)(void *arg, const char *line, size_t word_start, size_t cursor,
                       const char **cands, size_t max);
};

/*
 * Starts editing on standard input with prompt; lines past max_line bytes are refused.
 * On a terminal this is libedit (emacs keys, history from and to history_path, which
 * may be NULL); otherwise lines are read plainly. cb must outlive the editor. Returns 0,
 * or -1 when libedit cannot start (err says why).
 */
int lineedit_start(struct ev_loop *loop, const char *prompt, const char *history_path,
                   size_t max_line, const struct lineedit_callbacks *cb, void *arg,
                   char *err, size_t errlen);
/* Stops reading, saves the history and gives the terminal back as it was. */
void lineedit_stop(void);
/* True while the editor runs. */
bool lineedit_active(void);
/* Adds a line to the history (and its file). */
void lineedit_history_add(const char *line);
/* Before printing: the prompt and typed line are taken off the screen. No-op if idle. */
void lineedit_hide(void);
/* After printing: prompt and typed line drawn again, cursor where it was. */
void lineedit_show(void);
/* Ctrl-C: the typed line is cleared (the editor keeps running). */
void lineedit_clear_line(void);

#endif
