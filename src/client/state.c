/*
 * state.c: what the client keeps in its data directory.
 *
 *   identity.json       keypair, peer directory, noted servers (identity.h; atomic, 0600),
 *                       written only when its content changed, at most once a second
 *   outbox.db           SQLite (queue.h outbox rows), two kinds told apart by the domain
 *                       column: "p2p" (or "p2p@DOMAIN", mine for a recipient on node
 *                       DOMAIN): an envelope held for a peer, mine or forwarded for
 *                       someone else, including the receipts I owe; it goes only when the
 *                       next holder acknowledged it. "await": my message whose receipt I
 *                       wait for (blob: its created_at, 8 bytes big-endian).
 *   seen.log            ids of messages already shown to me, one "hex expires_ms" line
 *                       each, so a copy arriving later over another path (the server, a
 *                       relay) is never shown twice, even after a restart
 *   subscriptions.json  broadcast channels: topic and, for private ones, the key (0600)
 *
 * Two ideas. A file that exists but cannot be parsed is reported and left alone (never
 * overwritten), because it may hold the only copy of the identity or of a key. And the
 * outbox is written by group commit: rows are staged while the loop turn runs and
 * committed once at its end (state_commit), so a relaying node pays one fsync per turn,
 * not one per message; everything that promises durability (acks, "held") waits for it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jansson.h>
#include <sodium.h>

#include "output.h"
#include "route_state.h"
#include "state.h"
#include "qpc/encoding.h"
#include "qpc/error.h"
#include "qpc/addr.h"
#include "qpc/fileio.h"
#include "qpc/log.h"

#define OUTBOX_DOMAIN "p2p"
#define OUTBOX_DOMAIN_AT "p2p@"      /* followed by the recipient's node domain */
#define AWAIT_DOMAIN "await"
#define LOAD_PAGE 1000               /* outbox rows read per query at load and refill */

enum row_kind { ROW_ENVELOPE = 0, ROW_AWAIT = 1 };

/* One outbox row of ours: the id and kind, and its oid once committed. */
struct persisted {
    uint8_t key[QPC_ID_LEN + 1];     /* id || kind */
    uint64_t oid;                    /* 0 while its row is only staged */
    uint64_t expires_at_ms;
    bool forgotten;                  /* unpersisted while staged: remove after the commit */
    char *domain;                    /* ROW_ENVELOPE: recipient's node domain, or NULL */
    uint8_t came_from[QPC_KEY_LEN];  /* ROW_ENVELOPE: the neighbour that handed it to me */
    uint64_t came_at_ms;             /* when it did */
    bool has_came_from;              /* (in memory only: a restart forgets it) */
    UT_hash_handle hh;
};

/* A staged row's completion. */
struct staged_row {
    struct client *cl;
    struct persisted *p;
    state_done_fn done;
    void *arg;
};

struct after_commit {
    state_done_fn fn;
    void *arg;
    struct after_commit *next;
};

static int path_join(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);

    return (n < 0 || (size_t)n >= cap) ? QPC_ERR_INVALID : 0;
}

static void row_key(uint8_t key[static QPC_ID_LEN + 1], const uint8_t id[static QPC_ID_LEN],
                    enum row_kind kind)
{
    memcpy(key, id, QPC_ID_LEN);
    key[QPC_ID_LEN] = (uint8_t)kind;
}

static struct persisted *row_find(const struct client *cl, const uint8_t id[static QPC_ID_LEN],
                                  enum row_kind kind)
{
    uint8_t key[QPC_ID_LEN + 1];
    struct persisted *p = NULL;

    row_key(key, id, kind);
    HASH_FIND(hh, cl->persisted, key, sizeof(key), p);
    return p;
}

static struct persisted *row_new(struct client *cl, const uint8_t id[static QPC_ID_LEN],
                                 enum row_kind kind, uint64_t expires_at_ms, const char *domain)
{
    struct persisted *p = calloc(1, sizeof(*p));

    if (p == NULL)
        return NULL;
    if (domain != NULL && domain[0] != '\0' && (p->domain = strdup(domain)) == NULL) {
        free(p);
        return NULL;
    }
    row_key(p->key, id, kind);
    p->expires_at_ms = expires_at_ms;
    HASH_ADD(hh, cl->persisted, key, sizeof(p->key), p);
    return p;
}

static void row_free(struct client *cl, struct persisted *p)
{
    HASH_DEL(cl->persisted, p);
    free(p->domain);
    free(p);
}

/* Forgets p: a committed row is removed in the next commit, a staged one after its own. */
static void row_forget(struct client *cl, struct persisted *p)
{
    if (p->oid == 0) {
        p->forgotten = true;
        return;
    }
    if (qpc_queue_outbox_stage_remove(cl->outbox, p->oid, NULL, NULL) < 0)
        qpc_log_warn("state", "outbox: cannot drop a row (it is sent again after a restart)");
    row_free(cl, p);
}

static void load_seen(struct client *cl, const char *path, uint64_t now)
{
    FILE *f = fopen(path, "r");
    char line[160];

    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL) {
        char hex[QPC_ID_LEN * 2 + 1];
        unsigned long long exp;
        uint8_t id[QPC_ID_LEN];

        /* A torn last line (crash while appending) is skipped, not fatal. */
        if (sscanf(line, "%64s %llu", hex, &exp) != 2 || qpc_hex_decode(id, QPC_ID_LEN, hex) != 0)
            continue;
        if (exp > now)
            qpc_store_mark_seen(cl->store, id, exp, now);
    }
    fclose(f);
}

/* Hash of the identity file's content as the program would write it now. */
static int identity_hash(const struct client *cl, uint8_t out[static 32])
{
    char *text = NULL;
    size_t len = 0;
    int rc = qpc_identity_serialize(cl->id, &text, &len);

    if (rc < 0)
        return rc;
    crypto_generichash(out, 32, (const uint8_t *)text, len, NULL, 0);
    sodium_memzero(text, len);   /* it holds the secret key */
    free(text);
    return 0;
}

int state_open(struct client *cl, bool create, char *err, size_t errlen)
{
    char path[PATH_MAX + 32];
    bool created = false;
    int rc;
    /* FULL: a held envelope is acked (DEFERRED) or reported held on the strength of this
     * commit, so it must survive a power cut too (docs/queue.md). Group commit makes it
     * one fsync per loop turn. */
    struct qpc_queue_limits lim = { .sync = QPC_QUEUE_SYNC_FULL };

    if (path_join(cl->identity_path, sizeof(cl->identity_path), cl->data_dir, "identity.json") < 0) {
        snprintf(err, errlen, "data directory path too long");
        return EXIT_USAGE;
    }
    if (create)
        rc = qpc_identity_load_or_create(cl->identity_path, &cl->id, &created, err, errlen);
    else
        rc = qpc_identity_load(cl->identity_path, &cl->id, err, errlen);
    if (rc == QPC_ERR_NOT_FOUND)
        return EXIT_STATE;
    if (rc < 0)
        return rc == QPC_ERR_IO ? EXIT_FAIL : EXIT_STATE;
    if (created)
        qpc_log_info("state", "new identity %s in %s", qpc_identity_peer_id(cl->id), cl->identity_path);
    identity_hash(cl, cl->id_saved_hash);
    receipts_init(&cl->receipts);
    cl->store = qpc_store_new(&(struct qpc_store_limits){
        .per_queue = (uint32_t)cl->cc->store_per_recipient,
        .max_bytes = (size_t)cl->cc->store_max_bytes });
    if (cl->store == NULL) {
        snprintf(err, errlen, "out of memory");
        return EXIT_FAIL;
    }
    path_join(path, sizeof(path), cl->data_dir, "outbox.db");
    rc = qpc_queue_open(path, &lim, &cl->outbox, err, errlen);
    if (rc < 0)
        return rc == QPC_ERR_DB || rc == QPC_ERR_VERSION || rc == QPC_ERR_CORRUPT ? EXIT_STATE
                                                                                 : EXIT_FAIL;
    if (route_state_open(cl) < 0) {
        snprintf(err, errlen, "out of memory");
        return EXIT_FAIL;
    }
    path_join(path, sizeof(path), cl->data_dir, "seen.log");
    load_seen(cl, path, now_ms());
    cl->seen_log = fopen(path, "a");
    if (cl->seen_log == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

static void forget_key_texts(void);

void state_close(struct client *cl)
{
    struct persisted *p, *tmp;

    if (cl->outbox != NULL)
        state_commit(cl);
    if (cl->id != NULL)
        state_save_identity(cl, true);
    /* Staged writes left (none after the commit above) complete with CLOSED here, while
     * the rows they point at still exist. */
    qpc_queue_close(cl->outbox);
    cl->outbox = NULL;
    while (cl->after_head != NULL) {
        struct after_commit *a = cl->after_head;

        cl->after_head = a->next;
        a->fn(cl, a->arg, QPC_ERR_CLOSED);
        free(a);
    }
    cl->after_tail = NULL;
    HASH_ITER(hh, cl->persisted, p, tmp)
        row_free(cl, p);
    if (cl->seen_log != NULL)
        fclose(cl->seen_log);
    cl->seen_log = NULL;
    receipts_clear(&cl->receipts);
    forget_key_texts();
    route_state_close(cl);
    qpc_store_free(cl->store);
    cl->store = NULL;
    qpc_identity_free(cl->id);
    cl->id = NULL;
}

int state_save_identity(struct client *cl, bool force)
{
    char err[512];
    uint8_t hash[32];
    uint64_t mono = mono_ms();
    int rc;

    if (!cl->id_dirty)
        return 0;
    if (!force && cl->id_saved_mono_ms != 0 && mono - cl->id_saved_mono_ms < STATE_SAVE_INTERVAL_MS)
        return 0;   /* stays dirty: the next tick (or exit) writes it */
    if (identity_hash(cl, hash) == 0 && sodium_memcmp(hash, cl->id_saved_hash, sizeof(hash)) == 0) {
        cl->id_dirty = false;   /* marked, but nothing in the file would change */
        return 0;
    }
    rc = qpc_identity_save(cl->id, cl->identity_path, err, sizeof(err));
    if (rc < 0) {
        qpc_log_error("state", "%s", err);
        return rc;
    }
    memcpy(cl->id_saved_hash, hash, sizeof(hash));
    cl->id_saved_mono_ms = mono;
    cl->id_dirty = false;
    return 0;
}

/* ---- the outbox: staged rows, group commit ------------------------------------------ */

static void row_done(void *arg, int status, uint64_t oid)
{
    struct staged_row *s = arg;
    struct client *cl = s->cl;
    struct persisted *p = s->p;

    if (status == 0) {
        p->oid = oid;
        if (p->forgotten)
            row_forget(cl, p);   /* acked or dropped before it was even durable */
    } else {
        row_free(cl, p);
    }
    if (s->done != NULL)
        s->done(cl, s->arg, status);
    free(s);
}

/* Stages one row of ours; done (may be NULL) runs after the commit. */
static int stage_row(struct client *cl, enum row_kind kind, const char *domain_col,
                     const char *domain, const uint8_t id[static QPC_ID_LEN],
                     const uint8_t recipient[static QPC_KEY_LEN], uint64_t expires_at_ms,
                     const uint8_t *blob, size_t len, uint64_t now, state_done_fn done, void *arg)
{
    struct staged_row *s;
    struct persisted *p = row_find(cl, id, kind);
    int rc;

    if (p != NULL)
        return QPC_ERR_EXISTS;   /* held, or staged (and maybe forgotten) this very turn */
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return QPC_ERR_NOMEM;
    if ((p = row_new(cl, id, kind, expires_at_ms, domain)) == NULL) {
        free(s);
        return QPC_ERR_NOMEM;
    }
    s->cl = cl;
    s->p = p;
    s->done = done;
    s->arg = arg;
    rc = qpc_queue_outbox_add(cl->outbox, domain_col, recipient, id, expires_at_ms, blob, len, now,
                              row_done, s);
    if (rc < 0) {
        row_free(cl, p);
        free(s);
    }
    return rc;
}

int state_hold(struct client *cl, const struct qpc_envelope *env, const char *domain, uint64_t now,
               state_done_fn done, void *arg)
{
    char col[QPC_QUEUE_DOMAIN_MAX + 1];
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc;

    if (domain == NULL || domain[0] == '\0')
        snprintf(col, sizeof(col), "%s", OUTBOX_DOMAIN);
    else if ((size_t)snprintf(col, sizeof(col), "%s%s", OUTBOX_DOMAIN_AT, domain) >= sizeof(col))
        return QPC_ERR_INVALID;
    if (state_holds(cl, env->id))
        return QPC_ERR_EXISTS;
    rc = qpc_envelope_encode(env, &buf, &len);
    if (rc == 0)
        rc = stage_row(cl, ROW_ENVELOPE, col, domain, env->id, env->recipient,
                       qpc_envelope_expires_at_ms(env), buf, len, now, done, arg);
    free(buf);
    return rc;
}

bool state_holds(const struct client *cl, const uint8_t id[static QPC_ID_LEN])
{
    const struct persisted *p = row_find(cl, id, ROW_ENVELOPE);

    return p != NULL && !p->forgotten;
}

const char *state_hold_domain(const struct client *cl, const uint8_t id[static QPC_ID_LEN])
{
    const struct persisted *p = row_find(cl, id, ROW_ENVELOPE);

    return p != NULL && p->domain != NULL ? p->domain : "";
}

void state_note_came_from(struct client *cl, const uint8_t id[static QPC_ID_LEN],
                          const uint8_t peer[static QPC_KEY_LEN], uint64_t now)
{
    struct persisted *p = row_find(cl, id, ROW_ENVELOPE);

    if (p == NULL)
        return;
    memcpy(p->came_from, peer, QPC_KEY_LEN);
    p->came_at_ms = now;
    p->has_came_from = true;
}

const uint8_t *state_came_from(const struct client *cl, const uint8_t id[static QPC_ID_LEN], uint64_t *at)
{
    const struct persisted *p = row_find(cl, id, ROW_ENVELOPE);

    if (p == NULL || !p->has_came_from || p->forgotten)
        return NULL;
    *at = p->came_at_ms;
    return p->came_from;
}

void state_unpersist(struct client *cl, const uint8_t id[static QPC_ID_LEN])
{
    struct persisted *p = row_find(cl, id, ROW_ENVELOPE);

    if (p != NULL && !p->forgotten)
        row_forget(cl, p);
}

int state_await(struct client *cl, const uint8_t id[static QPC_ID_LEN],
                const uint8_t recipient[static QPC_KEY_LEN], uint64_t created_at_ms,
                uint64_t expires_at_ms, uint64_t now)
{
    uint8_t blob[8];

    for (int i = 0; i < 8; i++)
        blob[i] = (uint8_t)(created_at_ms >> (56 - 8 * i));
    return stage_row(cl, ROW_AWAIT, AWAIT_DOMAIN, NULL, id, recipient, expires_at_ms, blob,
                     sizeof(blob), now, NULL, NULL);
}

void state_unawait(struct client *cl, const uint8_t id[static QPC_ID_LEN])
{
    struct persisted *p = row_find(cl, id, ROW_AWAIT);

    if (p != NULL && !p->forgotten)
        row_forget(cl, p);
}

int state_after_commit(struct client *cl, state_done_fn fn, void *arg)
{
    struct after_commit *a = calloc(1, sizeof(*a));

    if (a == NULL)
        return QPC_ERR_NOMEM;
    a->fn = fn;
    a->arg = arg;
    if (cl->after_tail != NULL)
        cl->after_tail->next = a;
    else
        cl->after_head = a;
    cl->after_tail = a;
    return 0;
}

int state_commit(struct client *cl)
{
    struct after_commit *list = cl->after_head;
    int rc = 0;

    if (cl->seen_log != NULL)
        fflush(cl->seen_log);   /* what was shown is marked before anything is acked */
    if (qpc_queue_staged(cl->outbox) > 0) {
        rc = qpc_queue_commit(cl->outbox);
        if (rc < 0)
            qpc_log_error("state", "outbox commit failed: %s", qpc_queue_errmsg(cl->outbox));
    }
    /* Detached first: what these callbacks register waits for the next commit. */
    cl->after_head = cl->after_tail = NULL;
    while (list != NULL) {
        struct after_commit *a = list;

        list = a->next;
        a->fn(cl, a->arg, rc);
        free(a);
    }
    return rc;
}

/* ---- loading the outbox ---------------------------------------------------------------- */

/* One held-envelope row into the store; *full when the store refused it for lack of room. */
static int load_envelope_row(struct client *cl, const struct qpc_outbox_item *it, const char *domain,
                             uint64_t now, uint64_t *first_refused)
{
    struct qpc_envelope env = { 0 };
    struct persisted *p;
    int rc;

    if (row_find(cl, it->id, ROW_ENVELOPE) != NULL)
        return 0;   /* loaded before, or in custody */
    if (qpc_envelope_decode(&env, it->blob, it->blob_len) < 0) {
        qpc_log_warn("state", "outbox row %llu unreadable, dropped", (unsigned long long)it->oid);
        qpc_queue_outbox_stage_remove(cl->outbox, it->oid, NULL, NULL);
        return 0;
    }
    if ((p = row_new(cl, it->id, ROW_ENVELOPE, it->expires_at_ms, domain)) == NULL) {
        qpc_envelope_clear(&env);
        return QPC_ERR_NOMEM;
    }
    rc = qpc_store_put(cl->store, &env, now);
    if (rc < 0) {
        /* Full (for this recipient or in all): the row waits on disk for state_refill. */
        if ((rc == QPC_ERR_QUEUE_FULL || rc == QPC_ERR_STORE_FULL) && *first_refused == 0)
            *first_refused = it->oid;
        row_free(cl, p);
        qpc_envelope_clear(&env);
        return 0;
    }
    p->oid = it->oid;
    return 1;
}

static void load_await_row(struct client *cl, const struct qpc_outbox_item *it)
{
    uint64_t created = 0;
    struct persisted *p;

    if (row_find(cl, it->id, ROW_AWAIT) != NULL)
        return;
    if (it->blob_len != 8) {
        qpc_queue_outbox_stage_remove(cl->outbox, it->oid, NULL, NULL);
        return;
    }
    for (int i = 0; i < 8; i++)
        created = created << 8 | it->blob[i];
    if ((p = row_new(cl, it->id, ROW_AWAIT, it->expires_at_ms, NULL)) == NULL)
        return;
    p->oid = it->oid;
    if (receipts_wait(&cl->receipts, it->id, it->recipient, created, it->expires_at_ms) < 0)
        row_free(cl, p);
}

/*
 * Pages through every row with oid > after; returns envelopes loaded. *first_refused gets
 * the oid of the first row the store refused for lack of room (0: none), where the next
 * scan may start.
 */
static int scan_outbox(struct client *cl, uint64_t now, uint64_t after, uint64_t *first_refused)
{
    struct qpc_outbox_item *items = NULL;
    size_t n = 0;
    int loaded = 0;

    *first_refused = 0;
    do {
        if (qpc_queue_outbox_list(cl->outbox, after, LOAD_PAGE, now, &items, &n) < 0) {
            qpc_log_error("state", "outbox: %s", qpc_queue_errmsg(cl->outbox));
            break;
        }
        for (size_t i = 0; i < n; i++) {
            const char *d = items[i].domain;

            if (strcmp(d, OUTBOX_DOMAIN) == 0)
                loaded += load_envelope_row(cl, &items[i], NULL, now, first_refused) > 0;
            else if (strncmp(d, OUTBOX_DOMAIN_AT, strlen(OUTBOX_DOMAIN_AT)) == 0)
                loaded += load_envelope_row(cl, &items[i], d + strlen(OUTBOX_DOMAIN_AT), now,
                                            first_refused) > 0;
            else if (strcmp(d, AWAIT_DOMAIN) == 0)
                load_await_row(cl, &items[i]);
            /* Other kinds (a later version's) are left alone. */
        }
        if (n > 0)
            after = items[n - 1].oid;
        qpc_outbox_items_free(items, n);
    } while (n == LOAD_PAGE);
    return loaded;
}

/* Notes where the next refill starts and what the store held when this scan ended. */
static void scan_done(struct client *cl, uint64_t first_refused)
{
    struct qpc_store_stats st;

    cl->outbox_unloaded = first_refused != 0;
    cl->refill_after = first_refused != 0 ? first_refused - 1 : 0;
    qpc_store_get_stats(cl->store, &st);
    cl->refill_mark = st.envelopes;
}

int state_load_outbox(struct client *cl, uint64_t now)
{
    uint64_t first_refused;
    int loaded;

    if (qpc_queue_outbox_expire(cl->outbox, now, NULL) < 0)
        qpc_log_error("state", "outbox: %s", qpc_queue_errmsg(cl->outbox));
    loaded = scan_outbox(cl, now, 0, &first_refused);
    scan_done(cl, first_refused);
    if (first_refused != 0)
        qpc_log_info("state", "outbox: %d envelopes loaded, more wait on disk until the store has room",
                     loaded);
    return loaded;
}

int state_refill(struct client *cl, uint64_t now)
{
    struct qpc_store_stats st;
    uint64_t first_refused;
    int loaded;

    if (!cl->outbox_unloaded)
        return 0;
    qpc_store_get_stats(cl->store, &st);
    if (st.envelopes >= cl->refill_mark && st.envelopes > 0)
        return 0;   /* nothing left the store since the last try: it would refuse again */
    loaded = scan_outbox(cl, now, cl->refill_after, &first_refused);
    scan_done(cl, first_refused);
    return loaded;
}

void state_expire(struct client *cl, uint64_t now)
{
    struct persisted *p, *tmp;

    HASH_ITER(hh, cl->persisted, p, tmp) {
        if (p->expires_at_ms <= now && p->oid != 0)
            row_free(cl, p);
    }
    if (qpc_queue_outbox_expire(cl->outbox, now, NULL) < 0)
        qpc_log_error("state", "outbox: %s", qpc_queue_errmsg(cl->outbox));
}

size_t state_outbox_count(const struct client *cl)
{
    const struct persisted *p, *tmp;
    size_t n = 0;

    HASH_ITER(hh, cl->persisted, p, tmp)
        n += p->key[QPC_ID_LEN] == ROW_ENVELOPE && !p->forgotten;
    return n;
}

void state_note_shown(struct client *cl, const struct qpc_envelope *env)
{
    char hex[QPC_ID_LEN * 2 + 1];

    if (cl->seen_log == NULL)
        return;
    qpc_hex_encode(hex, env->id, QPC_ID_LEN);
    /* Buffered: state_commit flushes it once per turn, before any ack leaves. */
    fprintf(cl->seen_log, "%s %llu\n", hex, (unsigned long long)qpc_envelope_expires_at_ms(env));
}

void state_mark_delivered(struct client *cl, const struct qpc_envelope *env, uint64_t now)
{
    qpc_store_mark_seen(cl->store, env->id, qpc_envelope_expires_at_ms(env), now);
    state_note_shown(cl, env);
}

/* ---- the saved server ---------------------------------------------------------------- */

void state_save_server(struct client *cl, const char *address)
{
    char path[PATH_MAX + 32], text[QPC_ADDRESS_MAX + 2], why[PATH_MAX + 128] = "", now[QPC_ADDRESS_MAX + 1];

    if (state_saved_server(cl, now, sizeof(now)) == 0 && strcmp(now, address) == 0)
        return;
    path_join(path, sizeof(path), cl->data_dir, "server");
    snprintf(text, sizeof(text), "%s\n", address);
    if (qpc_file_write_atomic(path, text, strlen(text), 0600, why, sizeof(why)) < 0)
        qpc_log_warn("state", "cannot save the server: %s", why);
}

int state_saved_server(const struct client *cl, char *out, size_t cap)
{
    char path[PATH_MAX + 32], line[QPC_ADDRESS_MAX + 2] = "";
    FILE *f;

    path_join(path, sizeof(path), cl->data_dir, "server");
    if ((f = fopen(path, "r")) == NULL)
        return QPC_ERR_NOT_FOUND;
    if (fgets(line, sizeof(line), f) == NULL)
        line[0] = '\0';
    fclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    if (!qpc_addr_valid(line))
        return QPC_ERR_NOT_FOUND;
    snprintf(out, cap, "%s", line);
    return 0;
}

/* ---- subscriptions ------------------------------------------------------------------ */

int state_load_subscriptions(struct client *cl, char *err, size_t errlen)
{
    char path[PATH_MAX + 32];
    json_error_t je;
    json_t *root = NULL, *arr;
    bool has_keys = false;
    int rc = 0;

    path_join(path, sizeof(path), cl->data_dir, "subscriptions.json");
    if (access(path, F_OK) != 0)
        return 0;
    root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    arr = root != NULL ? json_object_get(root, "channels") : NULL;
    if (!json_is_array(arr)) {
        snprintf(err, errlen, "%s: corrupt (%s); left untouched", path,
                 root == NULL ? je.text : "no \"channels\" array");
        rc = QPC_ERR_CORRUPT;
        goto out;
    }
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *c = json_array_get(arr, i);
        const char *topic = json_string_value(json_object_get(c, "topic"));
        const char *key = json_string_value(json_object_get(c, "key"));

        rc = topic == NULL ? QPC_ERR_CORRUPT
             : key != NULL ? qpc_broadcast_subscribe_text(cl->channels, topic, key, NULL)
                           : qpc_broadcast_subscribe(cl->channels, topic, NULL, NULL);
        if (rc < 0) {
            snprintf(err, errlen, "%s: channels[%zu]: %s; left untouched", path, i, qpc_strerror(rc));
            rc = QPC_ERR_CORRUPT;
            goto out;
        }
        if (key != NULL) {
            state_remember_key_text(topic, key);
            has_keys = true;
            /* The tree is freed without a wipe: the copy in it goes now (jansson keeps
             * the length apart, so zeroed bytes are still a valid string to free). */
            sodium_memzero((char *)key, strlen(key));
        }
    }
    if (has_keys)
        qpc_file_warn_exposed(path, "private channel keys");
out:
    json_decref(root);
    return rc;
}

/* Private keys are kept as the text the user gave, in a 0600 file written atomically. */
struct sub_key {
    char topic[QPC_TOPIC_MAX + 1];
    char *key_text;
    UT_hash_handle hh;
};
static struct sub_key *sub_keys;

void state_remember_key_text(const char *topic, const char *key_text)
{
    struct sub_key *k = NULL;

    HASH_FIND_STR(sub_keys, topic, k);
    if (k != NULL) {
        HASH_DEL(sub_keys, k);
        sodium_memzero(k->key_text, strlen(k->key_text));
        free(k->key_text);
        free(k);
    }
    if (key_text == NULL)
        return;
    k = calloc(1, sizeof(*k));
    if (k == NULL)
        return;
    snprintf(k->topic, sizeof(k->topic), "%s", topic);
    k->key_text = strdup(key_text);
    if (k->key_text == NULL) {
        free(k);
        return;
    }
    HASH_ADD_STR(sub_keys, topic, k);
}

/* The key texts go with the state: wiped, not just freed. */
static void forget_key_texts(void)
{
    struct sub_key *k, *tmp;

    HASH_ITER(hh, sub_keys, k, tmp) {
        HASH_DEL(sub_keys, k);
        sodium_memzero(k->key_text, strlen(k->key_text));
        free(k->key_text);
        free(k);
    }
}

int state_save_subscriptions(struct client *cl)
{
    char path[PATH_MAX + 32], why[PATH_MAX + 128] = "";
    const struct qpc_channel **list = NULL;
    size_t n = 0;
    json_t *root = json_object(), *arr = json_array();
    int rc;
    char *text = NULL;

    json_object_set_new(root, "version", json_integer(1));
    json_object_set_new(root, "channels", arr);
    rc = qpc_broadcast_list(cl->channels, &list, &n);
    if (rc < 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_object();
        const char *topic = qpc_channel_topic(list[i]);
        struct sub_key *k = NULL;

        json_object_set_new(c, "topic", json_string(topic));
        HASH_FIND_STR(sub_keys, topic, k);
        if (qpc_channel_is_private(list[i]) && k != NULL)
            json_object_set_new(c, "key", json_string(k->key_text));
        json_array_append_new(arr, c);
    }
    text = json_dumps(root, JSON_INDENT(2));
    rc = QPC_ERR_IO;
    if (text == NULL)
        goto out;
    path_join(path, sizeof(path), cl->data_dir, "subscriptions.json");
    /* It may hold private channel keys: the atomic writer sets 0600 before any byte is
     * written, refuses to follow a planted link and fsyncs the directory. */
    rc = qpc_file_write_atomic(path, text, strlen(text), 0600, why, sizeof(why));
out:
    if (text != NULL) {
        sodium_memzero(text, strlen(text));
        free(text);
    }
    free(list);
    json_decref(root);
    if (rc < 0)
        qpc_log_error("state", "cannot save subscriptions: %s", why[0] ? why : qpc_strerror(rc));
    return rc;
}
