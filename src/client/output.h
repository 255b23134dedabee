/*
 * output.h: how events and lines reach the user (output.c), and the client's clock.
 */
#ifndef QPC_CLIENT_OUTPUT_H
#define QPC_CLIENT_OUTPUT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "client.h"

/* Wall-clock milliseconds since the Unix epoch (envelope times are wall time). */
uint64_t now_ms(void);
/* Monotonic milliseconds (rates and intervals: never steps when the wall clock does). */
uint64_t mono_ms(void);

void emit(struct client *cl, const struct event *ev);
void info(struct client *cl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints a line on stdout (plain) or above the prompt (REPL). */
void say(struct client *cl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void short_id(char out[static 13], const uint8_t key[static QPC_KEY_LEN]);
const char *path_name(enum path_kind p);
/* Called by repl.c to take over printing. */
void output_set_repl(bool on);

/*
 * From output_turns_start on, the history's writes of one loop turn are one transaction
 * and the lines shown in a turn that wrote are held back until that commit, at the end of
 * the turn (an ev_prepare watcher), then written in one go: one commit and one write per
 * turn instead of one per message. output_turns_stop commits and shows what is held.
 */
void output_turns_start(struct client *cl);
void output_turns_stop(struct client *cl);
/*
 * Writes s[0..len) to f so that no byte of it can drive a terminal: control characters
 * and malformed UTF-8 as \xNN, bidirectional overrides as \uNNNN. With indent, a
 * newline stays a line break followed by indent; without, it is escaped too.
 */
void output_escape(FILE *f, const char *s, size_t len, const char *indent);
/* The name given to key in the directory, or NULL (owned by the identity). */
const char *output_peer_name(const struct client *cl, const uint8_t key[static QPC_KEY_LEN]);
/* Who key is, for a line: its name if it has one (owned by the identity), else the
 * 12-hex short id written into buf. */
const char *output_label(const struct client *cl, const uint8_t key[static QPC_KEY_LEN], char buf[static 13]);
/* Writes who key is: its name (escaped) if it has one, else the 12-hex short id. */
void output_who(FILE *f, const struct client *cl, const uint8_t key[static QPC_KEY_LEN]);
/* Why subscribing to topic (with a key or not) failed with rc, in words for the user. */
const char *output_channel_refusal(const char *topic, bool with_key, int rc);
/* Local time of at_ms as shown: "HH:MM" on the day of now, else "YYYY-MM-DD HH:MM". */
void output_time(char *out, size_t cap, uint64_t at_ms, uint64_t now);

struct history_row;
/* Prints one message of the history: a line (times, who, text, outcome) or a JSON object. */
void output_history_row(struct client *cl, const struct history_row *r, bool json);
/*
 * Lists the history: what is a peer (name, id, prefix), "#topic", a count alone, or
 * NULL for everything; count the last how many (NULL: HISTORY_DEFAULT_ROWS). What is
 * listed as lines is read from then on. Refusals are said. Returns 0 or a QPC_ERR_*.
 */
int output_history(struct client *cl, const char *what, const char *count, bool json);
/* Says how many messages are unread, per conversation (nothing when none are). */
void output_unread(struct client *cl);

#endif
