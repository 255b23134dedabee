/*
 * state.h: what the client keeps in its data directory (state.c).
 */
#ifndef QPC_CLIENT_STATE_H
#define QPC_CLIENT_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client.h"

/* Loads or creates the identity and opens the outbox; errors go to err. Returns an exit code. */
int state_open(struct client *cl, bool create, char *err, size_t errlen);
void state_close(struct client *cl);
/* Saves the identity file if the directory changed. */
int state_save_identity(struct client *cl);
/* Persists a held envelope (committed before return). 0 or a QPC_ERR_*. */
int state_persist(struct client *cl, const struct qpc_envelope *env, uint64_t now);
/* Forgets a persisted envelope after it was acked. Unknown ids are ignored. */
void state_unpersist(struct client *cl, const uint8_t id[static QPC_ID_LEN]);
/* Envelopes in the outbox on disk (mine and those held for others). */
size_t state_outbox_count(const struct client *cl);
/* Loads every persisted envelope into the store. Returns how many. */
int state_load_outbox(struct client *cl, uint64_t now);
/* Notes on disk only (seen.log) that env was shown: after a restart it is a duplicate.
 * For broadcasts, whose in-memory dedup entry the store makes when it keeps them. */
void state_note_shown(struct client *cl, const struct qpc_envelope *env);
/* Remembers (on disk) that an envelope for me was shown, so it is never shown twice. */
void state_mark_delivered(struct client *cl, const struct qpc_envelope *env, uint64_t now);
/* DATA_DIR/server: the server that last answered, connected at the next start. */
void state_save_server(struct client *cl, const char *address);
/* The saved server's address into out. Returns 0 or QPC_ERR_NOT_FOUND (none, or unusable). */
int state_saved_server(const struct client *cl, char *out, size_t cap);
/* Subscriptions file: loads into cl->channels / saves it. */
int state_load_subscriptions(struct client *cl, char *err, size_t errlen);
int state_save_subscriptions(struct client *cl);
/* Remembers the text of a private channel key (NULL: forget) for the subscriptions file. */
void state_remember_key_text(const char *topic, const char *key_text);

#endif
