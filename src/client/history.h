/*
 * history.h: every message sent and received, kept in DATA_DIR/messages.db (history.c).
 *
 * A row is one message: direct (peer) or broadcast (topic), mine or not, with the time
 * it was written (the sender's clock) and the time it arrived (mine: when the delivery
 * was confirmed), and for mine the last outcome the node reported (queued, held by X,
 * delivered via Y, failed: why). The history invents no state of its own.
 */
#ifndef QPC_CLIENT_HISTORY_H
#define QPC_CLIENT_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client.h"

#define HISTORY_FILE "messages.db"
#define HISTORY_DEFAULT_ROWS 20

struct history;

/* One message as stored. Pointers are valid during the callback only. */
struct history_row {
    uint8_t id[QPC_ID_LEN];
    bool mine;                     /* I sent it */
    bool has_peer;
    uint8_t peer[QPC_KEY_LEN];     /* direct: the other side; broadcast: its sender (none: mine) */
    const char *topic;             /* broadcast, else NULL */
    const char *text;
    size_t text_len;
    uint64_t sent_ms;              /* created_at: the sender's clock */
    uint64_t received_ms;          /* arrived here, or (mine) delivery confirmed; 0: not yet */
    const char *state;             /* mine: "queued", "held", "delivered", "failed"; NULL: none yet */
    const char *detail;            /* held by / delivered via / why it failed, or NULL */
    const char *path;              /* how it came or went ("direct", "relayed", "server"), or NULL */
    uint32_t hops;
    bool unread;
};

/* Opens (creating) the history at path. Returns 0 or a QPC_ERR_*, err saying why: a file
 * of 0 bytes or one that fails the integrity check is QPC_ERR_CORRUPT, left as it is. */
int history_open(const char *path, struct history **out, char *err, size_t errlen);
/* Commits what is pending (history_commit), then closes. */
void history_close(struct history *h);

/*
 * Batched (on), the writes of one loop turn share one transaction, opened by the first
 * of them and ended by history_commit, which the owner of the loop calls at the end of
 * every turn (output.c) and before it shows anything written in the turn: "written down
 * before it is shown" then holds per turn. Off (the default, and after it is turned
 * off, which commits), every write is its own commit.
 */
void history_set_batched(struct history *h, bool on);

/* True while the turn's transaction is open: something written is not committed yet. */
bool history_pending(const struct history *h);

/* Ends the turn's transaction. Returns 0 (also when nothing was pending), or QPC_ERR_DB
 * (warned) when the commit failed and what the turn wrote is lost. */
int history_commit(struct history *h);

/* Records a message I sent: to peer (direct) or on topic (broadcast). */
void history_add_sent(struct history *h, const uint8_t id[static QPC_ID_LEN], const uint8_t *peer,
                      const char *topic, const char *text, size_t len, uint64_t sent_ms);

/* Records a message that arrived (EVT_MESSAGE or EVT_BROADCAST) by path ("direct"...);
 * read: it was shown to the user as it came. */
void history_add_received(struct history *h, const struct event *ev, const char *path,
                          uint64_t received_ms, bool read);

/* Records what the node said became of one of my messages (an EVT_* outcome event). A
 * later event never takes back a delivery. */
void history_note_outcome(struct history *h, const struct event *ev, const char *path, uint64_t at_ms);

/*
 * Calls fn for the last n messages (oldest first) with peer (direct ones, either way),
 * or on topic, or all when both are NULL. With mark_read, the ones listed are read now.
 * Returns how many were listed, or a QPC_ERR_*.
 */
int history_list(struct history *h, const uint8_t *peer, const char *topic, size_t n, bool mark_read,
                 void (*fn)(void *ctx, const struct history_row *r), void *ctx);

/* Calls fn for each conversation with unread messages: peer (direct) or topic. */
int history_unread(struct history *h,
                   void (*fn)(void *ctx, const uint8_t *peer, const char *topic, size_t count), void *ctx);

#endif
