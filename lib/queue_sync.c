/*
 * queue_sync.c: the sync thread of a queue (see queue_sync.h for what it is for).
 *
 * The one idea: synchronous=FULL in WAL mode is synchronous=NORMAL plus one fsync of the
 * WAL after each COMMIT (SQLite's documentation of PRAGMA synchronous). So the owner's
 * connection runs NORMAL, which keeps the WAL consistent (the WAL header is synced when
 * the WAL is restarted, the WAL before and the database after every checkpoint), and
 * this thread adds the missing fsync, on its own file descriptor of the same WAL file
 * (fdatasync makes durable every write made to the file before it began, through any
 * descriptor). Whoever waits for a generation to be durable is told only after such an
 * fsync returned 0. A checkpoint is also a sync: it fsyncs the WAL before it copies it.
 *
 * Locking: one mutex guards the generations and flags; the thread holds it only to read
 * or write them, never across the disk wait.
 */
#define _GNU_SOURCE   /* eventfd */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <sqlite3.h>

#include "qpc/error.h"
#include "qpc/log.h"
#include "queue_sync.h"

struct queue_syncer {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;           /* the thread: work to do, or stop */
    pthread_cond_t done;           /* queue_syncer_wait: a sync ended */
    int wal_fd;                    /* our own descriptor of the WAL file */
    int event_fd;                  /* tells the owner's loop a sync ended */
    sqlite3 *ckpt_db;              /* used by the thread only, for checkpoints */
    char path[512];
    /* guarded by lock */
    uint64_t requested;            /* highest generation asked for */
    uint64_t synced;               /* highest generation durable */
    bool checkpoint;               /* a checkpoint was asked for */
    bool stop;
    bool failed;                   /* an fdatasync failed: sticky */
    char error[256];
};

static int sync_wal(int fd)
{
    int rc;

    do
        rc = fdatasync(fd);
    while (rc != 0 && errno == EINTR);
    return rc == 0 ? 0 : errno;
}

/* A PASSIVE checkpoint never waits for the owner's writer lock, so commits go on beside
 * it; SQLITE_BUSY (another checkpoint is running) only means "later". */
static void checkpoint(struct queue_syncer *s)
{
    int log_frames = 0, done_frames = 0;
    int rc = sqlite3_wal_checkpoint_v2(s->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log_frames,
                                       &done_frames);

    if (rc != SQLITE_OK && rc != SQLITE_BUSY)
        qpc_log_warn("queue", "%s: checkpoint failed: %s", s->path, sqlite3_errmsg(s->ckpt_db));
}

static void *run(void *arg)
{
    struct queue_syncer *s = arg;
    uint64_t one = 1, target;
    bool want_checkpoint;
    int err;

    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (!s->stop && !s->failed && s->requested <= s->synced && !s->checkpoint)
            pthread_cond_wait(&s->wake, &s->lock);
        if (s->failed || (s->stop && s->requested <= s->synced))
            break;
        target = s->requested;
        want_checkpoint = s->checkpoint;
        s->checkpoint = false;
        pthread_mutex_unlock(&s->lock);

        err = target > s->synced ? sync_wal(s->wal_fd) : 0;

        pthread_mutex_lock(&s->lock);
        if (err != 0) {
            s->failed = true;
            snprintf(s->error, sizeof(s->error), "fdatasync of %.200s-wal failed: %s", s->path,
                     strerror(err));
        } else if (target > s->synced) {
            s->synced = target;
        }
        pthread_cond_broadcast(&s->done);
        pthread_mutex_unlock(&s->lock);
        /* The owner learns of it before the checkpoint, which may take far longer. */
        if (write(s->event_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
            qpc_log_warn("queue", "%s: cannot signal a sync: %s", s->path, strerror(errno));
        if (err == 0 && want_checkpoint)
            checkpoint(s);
        pthread_mutex_lock(&s->lock);
    }
    pthread_cond_broadcast(&s->done);
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static void syncer_free(struct queue_syncer *s)
{
    if (s->wal_fd >= 0)
        close(s->wal_fd);
    if (s->event_fd >= 0)
        close(s->event_fd);
    sqlite3_close(s->ckpt_db);   /* not the last connection: the owner's stays open */
    pthread_cond_destroy(&s->done);
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

int queue_syncer_start(const char *db_path, uint64_t first_gen, struct queue_syncer **out,
                       char *err, size_t errlen)
{
    struct queue_syncer *s = calloc(1, sizeof(*s));
    char wal[sizeof(s->path) + 8];
    int ret = QPC_ERR_DB;

    if (s == NULL)
        return QPC_ERR_NOMEM;
    s->wal_fd = s->event_fd = -1;
    s->requested = s->synced = first_gen;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->wake, NULL);
    pthread_cond_init(&s->done, NULL);
    snprintf(s->path, sizeof(s->path), "%s", db_path);
    snprintf(wal, sizeof(wal), "%s-wal", s->path);
    if ((s->wal_fd = open(wal, O_RDONLY | O_CLOEXEC)) < 0) {
        snprintf(err, errlen, "cannot open %s to sync it: %s", wal, strerror(errno));
        goto fail;
    }
    if ((s->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        goto fail;
    }
    /* FULL here too: a checkpoint syncs the WAL before and the database after it copies. */
    if (sqlite3_open_v2(s->path, &s->ckpt_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK ||
        sqlite3_exec(s->ckpt_db, "PRAGMA synchronous = FULL", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "checkpoint connection: %s",
                 s->ckpt_db != NULL ? sqlite3_errmsg(s->ckpt_db) : "out of memory");
        goto fail;
    }
    if (pthread_create(&s->thread, NULL, run, s) != 0) {
        snprintf(err, errlen, "cannot start the sync thread");
        ret = QPC_ERR_NOMEM;
        goto fail;
    }
    *out = s;
    return 0;
fail:
    syncer_free(s);
    return ret;
}

void queue_syncer_request(struct queue_syncer *s, uint64_t gen, bool want_checkpoint)
{
    pthread_mutex_lock(&s->lock);
    if (gen > s->requested)
        s->requested = gen;
    s->checkpoint |= want_checkpoint;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
}

int queue_syncer_fd(const struct queue_syncer *s)
{
    return s->event_fd;
}

void queue_syncer_poll(struct queue_syncer *s, uint64_t *synced, bool *failed, char *err,
                       size_t errlen)
{
    uint64_t count;

    while (read(s->event_fd, &count, sizeof(count)) > 0)
        ;   /* non-blocking: empty now */
    pthread_mutex_lock(&s->lock);
    *synced = s->synced;
    *failed = s->failed;
    if (s->failed && err != NULL && errlen > 0)
        snprintf(err, errlen, "%s", s->error);
    pthread_mutex_unlock(&s->lock);
}

void queue_syncer_wait(struct queue_syncer *s, uint64_t gen)
{
    pthread_mutex_lock(&s->lock);
    if (gen > s->requested) {
        s->requested = gen;
        pthread_cond_signal(&s->wake);
    }
    while (s->synced < gen && !s->failed)
        pthread_cond_wait(&s->done, &s->lock);
    pthread_mutex_unlock(&s->lock);
}

void queue_syncer_stop(struct queue_syncer *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    s->stop = true;   /* the thread first syncs what was asked for */
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    syncer_free(s);
}
