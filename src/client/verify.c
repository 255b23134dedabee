/*
 * verify.c: envelope signatures checked on worker threads (verify.h).
 *
 * The one idea: the workers run one pure function, qpc_envelope_verify, on an envelope
 * nobody else touches meanwhile, and nothing more; the loop keeps everything that has
 * state. Jobs wait in one list in submission order; `next` is the first no worker took
 * yet. A worker takes the next job, checks it without the lock, marks it finished and
 * wakes the loop (ev_async_send, which libev coalesces). The loop answers finished jobs
 * from the head of the list and stops at the first unfinished one, so answers keep the
 * order of arrival even when a later check ends first.
 */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "qpc/error.h"
#include "verify.h"

struct job {
    struct job *next;
    const struct qpc_envelope *env;    /* the caller's, unchanged until answered */
    uint64_t now_ms;
    verify_done_fn done;
    void *arg;
    int rc;
    bool finished;                     /* under the lock */
};

struct verify_pool {
    struct ev_loop *loop;
    ev_async wake;
    pthread_mutex_t mu;
    pthread_cond_t work;
    struct job *head, *tail;           /* every job not yet answered, in submission order */
    struct job *next;                  /* the first one no worker took */
    size_t pending;
    bool stop;
    unsigned n_threads;
    pthread_t threads[VERIFY_MAX_THREADS];
};

static void *worker(void *arg)
{
    struct verify_pool *p = arg;
    struct job *j;
    int rc;

    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->next == NULL)
            pthread_cond_wait(&p->work, &p->mu);
        if (p->stop)
            break;
        j = p->next;
        p->next = j->next;
        pthread_mutex_unlock(&p->mu);
        rc = qpc_envelope_verify(j->env, j->now_ms);
        pthread_mutex_lock(&p->mu);
        j->rc = rc;
        j->finished = true;
        ev_async_send(p->loop, &p->wake);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* On the loop: answers the finished jobs at the head, in order, at most
 * VERIFY_ANSWERS_PER_TURN of them; when more are finished it wakes itself again, so the
 * turn's commit runs between the batches. */
static void wake_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    struct verify_pool *p = w->data;
    struct job *done = NULL, **tail = &done, *j;
    size_t n = 0;
    bool more;

    pthread_mutex_lock(&p->mu);
    while (n < VERIFY_ANSWERS_PER_TURN && p->head != NULL && p->head->finished) {
        j = p->head;
        p->head = j->next;
        p->pending--;
        *tail = j;
        tail = &j->next;
        n++;
    }
    if (p->head == NULL)
        p->tail = NULL;
    more = p->head != NULL && p->head->finished;
    *tail = NULL;
    pthread_mutex_unlock(&p->mu);
    if (more)
        ev_async_send(loop, w);
    /* Outside the lock: a callback may submit again. */
    while ((j = done) != NULL) {
        done = j->next;
        j->done(j->arg, j->rc);
        free(j);
    }
}

int verify_pool_new(struct ev_loop *loop, unsigned threads, struct verify_pool **out)
{
    struct verify_pool *p;
    sigset_t all, old;

    *out = NULL;
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);

        threads = n < 1 ? 1 : n > VERIFY_MAX_THREADS ? VERIFY_MAX_THREADS : (unsigned)n;
    }
    if (threads > VERIFY_MAX_THREADS)
        threads = VERIFY_MAX_THREADS;
    if ((p = calloc(1, sizeof(*p))) == NULL)
        return QPC_ERR_NOMEM;
    p->loop = loop;
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p);
        return QPC_ERR_NOMEM;
    }
    if (pthread_cond_init(&p->work, NULL) != 0) {
        pthread_mutex_destroy(&p->mu);
        free(p);
        return QPC_ERR_NOMEM;
    }
    ev_async_init(&p->wake, wake_cb);
    p->wake.data = p;
    ev_async_start(loop, &p->wake);
    ev_unref(loop);   /* the pool alone keeps no loop running */
    /* Signals stay with the loop's thread: the workers start with all of them blocked. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (unsigned i = 0; i < threads; i++) {
        if (pthread_create(&p->threads[p->n_threads], NULL, worker, p) != 0)
            break;
        p->n_threads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (p->n_threads == 0) {
        verify_pool_free(p);
        return QPC_ERR_IO;
    }
    *out = p;
    return 0;
}

int verify_submit(struct verify_pool *p, const struct qpc_envelope *env, uint64_t now_ms,
                  verify_done_fn done, void *arg)
{
    struct job *j;

    if (p->pending >= VERIFY_MAX_PENDING)   /* only the loop changes it upward */
        return QPC_ERR_QUEUE_FULL;
    if ((j = calloc(1, sizeof(*j))) == NULL)
        return QPC_ERR_NOMEM;
    j->env = env;
    j->now_ms = now_ms;
    j->done = done;
    j->arg = arg;
    pthread_mutex_lock(&p->mu);
    if (p->tail != NULL)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    if (p->next == NULL)
        p->next = j;
    p->pending++;
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

size_t verify_pending(const struct verify_pool *p)
{
    return p->pending;
}

void verify_pool_free(struct verify_pool *p)
{
    struct job *j;

    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    ev_ref(p->loop);
    ev_async_stop(p->loop, &p->wake);
    while ((j = p->head) != NULL) {
        p->head = j->next;
        j->done(j->arg, QPC_ERR_CLOSED);
        free(j);
    }
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
