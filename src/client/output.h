/*
 * output.h: how events and lines reach the user (output.c), and the client's clock.
 */
#ifndef QPC_CLIENT_OUTPUT_H
#define QPC_CLIENT_OUTPUT_H

#include <stdbool.h>
#include <stdint.h>

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
/* While a typed command runs, lines are printed plainly (libedit redraws the prompt after). */
void output_set_in_command(bool on);

#endif
