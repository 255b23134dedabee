/*
 * queue_sync.h: the thread that makes a queue's commits durable (QPC_QUEUE_SYNC_THREAD),
 * internal to lib/queue.c.
 *
 * The queue's connection runs synchronous=NORMAL: COMMIT writes the WAL frames and
 * returns without waiting for the disk. This thread then calls fdatasync() on the WAL
 * file, which is what synchronous=FULL would have done inside COMMIT, and tells the
 * owner's thread through an eventfd that everything committed before that fsync began
 * is durable. It also runs the WAL checkpoints, on a connection of its own, so neither
 * wait (2.5 ms on a quiet disk, over 100 ms at the tail of a shared one) is spent on the
 * owner's event loop. The thread never touches the owner's connection.
 *
 * Generations: the owner numbers its write transactions (qpc_queue_transactions) and
 * asks for generation g to be synced; the thread syncs once for everything asked so
 * far, however many transactions that is.
 */
#ifndef QPC_QUEUE_SYNC_H
#define QPC_QUEUE_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct queue_syncer;

/*
 * Opens the WAL file of db_path ("<db_path>-wal", which the owner's connection must
 * have made already), a checkpoint connection to db_path and an eventfd, and starts the
 * thread. first_gen is the generation already durable (the owner's transaction count
 * at this point). On success *out owns all of it until queue_syncer_stop. Returns 0,
 * QPC_ERR_NOMEM or QPC_ERR_DB with a message in err (errlen bytes).
 */
int queue_syncer_start(const char *db_path, uint64_t first_gen, struct queue_syncer **out,
                       char *err, size_t errlen);

/* Asks for every transaction up to gen to be made durable, and for a checkpoint after
 * the next sync when checkpoint is true. Never blocks on the disk. */
void queue_syncer_request(struct queue_syncer *s, uint64_t gen, bool checkpoint);

/* Readable (EPOLLIN) when a sync has ended since the last queue_syncer_poll. */
int queue_syncer_fd(const struct queue_syncer *s);

/*
 * Drains the eventfd and reports the highest generation known durable. *failed is true
 * once an fdatasync failed (sticky: the kernel may have dropped the pages it could not
 * write, so nothing later can be trusted either); err then has the reason.
 */
void queue_syncer_poll(struct queue_syncer *s, uint64_t *synced, bool *failed, char *err,
                       size_t errlen);

/* Blocks until generation gen is durable or a sync has failed. */
void queue_syncer_wait(struct queue_syncer *s, uint64_t gen);

/* Syncs what was asked for, stops the thread and frees everything. NULL is a no-op. */
void queue_syncer_stop(struct queue_syncer *s);

#endif
