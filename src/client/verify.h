/*
 * verify.h: envelope signatures checked off the loop, answered on it in arrival order.
 *
 * A relay owes every envelope it forwards a signature check (qpc_envelope_verify, tens
 * of microseconds of Ed25519), and on one core that check is two thirds of what
 * forwarding costs. This pool runs the check on a few worker threads; everything else
 * (dedup, custody, the commit, the acks) stays on the one loop. A worker only reads the
 * envelope it was given and writes the result into the job; the loop learns of finished
 * jobs through an ev_async watcher and runs their callbacks in the order the jobs were
 * submitted, so what arrives on a link is handled in the order it came, as before, and
 * at most VERIFY_ANSWERS_PER_TURN per loop turn: while the loop sat in one commit's fsync
 * the workers may have finished a whole window, which must not become one turn's holds
 * (the store takes at most store_per_recipient per peer until the flush after the commit).
 *
 * Ownership: the envelope passed to verify_submit belongs to the caller, who must neither
 * change nor free it until its callback ran. Bounded: at most VERIFY_MAX_PENDING jobs
 * wait; verify_submit refuses more (QPC_ERR_QUEUE_FULL) and the caller verifies inline,
 * which paces a flooding peer by the loop again.
 */
#ifndef QPC_CLIENT_VERIFY_H
#define QPC_CLIENT_VERIFY_H

#include <ev.h>
#include <stdint.h>

#include "qpc/envelope.h"

#define VERIFY_MAX_THREADS 4
#define VERIFY_MAX_PENDING 4096
#define VERIFY_ANSWERS_PER_TURN 256   /* answered per loop turn: a turn's commit and the
                                       * holds it lets into the store stay bounded */

struct verify_pool;

/* Called on the loop, in submission order, with qpc_envelope_verify's result, or with
 * QPC_ERR_CLOSED for a job that was still waiting when the pool was freed (the envelope
 * was not checked: the caller frees what it holds and answers nothing). */
typedef void (*verify_done_fn)(void *arg, int rc);

/* Makes a pool of threads workers (1..VERIFY_MAX_THREADS; 0 picks one per online CPU,
 * capped) answering on loop. Returns 0, QPC_ERR_NOMEM, or QPC_ERR_IO when no thread
 * could be started. */
int verify_pool_new(struct ev_loop *loop, unsigned threads, struct verify_pool **out);

/* Queues env to be checked as of now_ms; done(arg, rc) follows on the loop. Returns 0,
 * QPC_ERR_QUEUE_FULL (VERIFY_MAX_PENDING wait: verify inline) or QPC_ERR_NOMEM. */
int verify_submit(struct verify_pool *p, const struct qpc_envelope *env, uint64_t now_ms,
                  verify_done_fn done, void *arg);

/* Jobs submitted and not yet answered. */
size_t verify_pending(const struct verify_pool *p);

/* Stops the workers (a check under way finishes first), answers every job not yet
 * answered with QPC_ERR_CLOSED, and frees the pool. NULL is fine. */
void verify_pool_free(struct verify_pool *p);

#endif
