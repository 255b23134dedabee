/*
 * state.h: what the client keeps in its data directory (state.c), and the group commit
 * of its outbox.
 *
 * Writes to the outbox are staged during a loop turn and committed once at its end
 * (state_commit, called by turn.c): one transaction, one fsync, however many envelopes
 * arrived. What depends on a write being durable (an ack to the peer that handed us an
 * envelope, the user being told "held") runs from a completion or from
 * state_after_commit, after that commit.
 */
#ifndef QPC_CLIENT_STATE_H
#define QPC_CLIENT_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client.h"

/* Runs after the commit that holds a staged write: status 0 when it is durable, else why
 * not (QPC_ERR_DB, QPC_ERR_QUEUE_FULL: outbox full, QPC_ERR_CLOSED: never committed). */
typedef void (*state_done_fn)(struct client *cl, void *arg, int status);

/* Loads or creates the identity and opens the outbox; errors go to err. Returns an exit code. */
int state_open(struct client *cl, bool create, char *err, size_t errlen);
/* Commits what is staged, saves the identity if it changed, closes every file. */
void state_close(struct client *cl);

/*
 * Saves the identity file if the directory changed and its content differs from what was
 * last written; unless force, at most once per STATE_SAVE_INTERVAL_MS (the user's own
 * commands and exit force it). Returns 0 or the error of the save.
 */
#define STATE_SAVE_INTERVAL_MS 1000u
int state_save_identity(struct client *cl, bool force);

/*
 * Stages env's outbox row (env is only read: it is encoded here), a held envelope for its
 * recipient; domain (NULL or "") is the recipient's node domain for my own envelopes
 * enqueued at my server through federation. done(cl, arg, status) runs after the commit.
 * Returns 0 (staged), QPC_ERR_EXISTS (a row for this id is held or staged already: done
 * is not called), or an immediate refusal (QPC_ERR_TOO_LARGE, QPC_ERR_EXPIRED,
 * QPC_ERR_INVALID, QPC_ERR_NOMEM; done is not called).
 */
int state_hold(struct client *cl, const struct qpc_envelope *env, const char *domain, uint64_t now,
               state_done_fn done, void *arg);
/* True when a row for id is held (or staged and not forgotten). */
bool state_holds(const struct client *cl, const uint8_t id[static QPC_ID_LEN]);
/* The node domain given when id was held ("" for none or an unknown id). */
const char *state_hold_domain(const struct client *cl, const uint8_t id[static QPC_ID_LEN]);
/* Remembers which neighbour handed me held envelope id at now (split horizon: it is
 * not sent back there for a while, custody_may_send_to). Kept in memory with the row;
 * unknown ids are ignored. */
void state_note_came_from(struct client *cl, const uint8_t id[static QPC_ID_LEN],
                          const uint8_t peer[static QPC_KEY_LEN], uint64_t now);
/* That neighbour's key (owned by the row, valid until it is unpersisted) and in *at
 * when, or NULL (none noted, or the row is going). */
const uint8_t *state_came_from(const struct client *cl, const uint8_t id[static QPC_ID_LEN], uint64_t *at);
/* Forgets a held envelope (acked, refused for good, expired): its row goes in the next
 * commit. Unknown ids are ignored. */
void state_unpersist(struct client *cl, const uint8_t id[static QPC_ID_LEN]);

/* Stages the row saying "I wait for the receipt of my message id to recipient" (created
 * at created_at_ms, gone at expires_at_ms), so a receipt that comes after a restart is
 * still recognised. 0 or a QPC_ERR_*. */
int state_await(struct client *cl, const uint8_t id[static QPC_ID_LEN],
                const uint8_t recipient[static QPC_KEY_LEN], uint64_t created_at_ms,
                uint64_t expires_at_ms, uint64_t now);
/* The wait for id's receipt ended (receipt, refusal, expiry): its row goes. */
void state_unawait(struct client *cl, const uint8_t id[static QPC_ID_LEN]);

/* fn(cl, arg, status) runs after the next commit, with that commit's result (0 also when
 * nothing was staged), in the order registered. Returns 0 or QPC_ERR_NOMEM. */
int state_after_commit(struct client *cl, state_done_fn fn, void *arg);

/*
 * The group commit: flushes seen.log, commits every staged outbox write in one
 * transaction, runs their completions, then the after-commit list. Returns 0 or the
 * commit's error (every completion has run either way).
 */
int state_commit(struct client *cl);

/*
 * Loads the outbox at start, every row, page by page: held envelopes into the store as
 * far as it takes them (the rest stay on disk for state_refill), waits for receipts into
 * cl->receipts. Returns how many envelopes went into the store.
 */
int state_load_outbox(struct client *cl, uint64_t now);
/*
 * Rows the store could not take at load (it was full) are loaded once it has room again:
 * called periodically; does nothing while none wait on disk or the store has not emptied
 * since the last try. Returns how many were loaded.
 */
int state_refill(struct client *cl, uint64_t now);
/* Drops rows (and their bookkeeping) whose TTL has ended. */
void state_expire(struct client *cl, uint64_t now);

/* Envelopes held in the outbox (mine, receipts I owe, and those held for others). */
size_t state_outbox_count(const struct client *cl);
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
