/*
 * state.c: what the client keeps in its data directory.
 *
 *   identity.json       keypair, peer directory, noted servers (identity.h; atomic, 0600)
 *   outbox.db           envelopes held for peers that were unreachable (SQLite, queue.h
 *                       outbox rows under the pseudo-domain "p2p"), mine and those I
 *                       forward for others; a row goes only when its recipient (or the
 *                       next holder) acknowledged it, so a held message survives restarts
 *   seen.log            ids of messages already shown to me, one "hex expires_ms" line
 *                       each, so a copy arriving later over another path (the server, a
 *                       relay) is never shown twice, even after a restart
 *   subscriptions.json  broadcast channels: topic and, for private ones, the key (0600)
 *
 * The one idea: a file that exists but cannot be parsed is reported and left alone
 * (never overwritten), because it may hold the only copy of the identity or of a key.
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
#include "state.h"
#include "qpc/encoding.h"
#include "qpc/error.h"
#include "qpc/addr.h"
#include "qpc/fileio.h"
#include "qpc/log.h"

#define OUTBOX_DOMAIN "p2p"

struct persisted {
    uint8_t id[QPC_ID_LEN];
    uint64_t oid;
    UT_hash_handle hh;
};

static int path_join(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);

    return (n < 0 || (size_t)n >= cap) ? QPC_ERR_INVALID : 0;
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

int state_open(struct client *cl, bool create, char *err, size_t errlen)
{
    char path[PATH_MAX + 32];
    bool created = false;
    int rc;
    /* FULL: a held envelope is acked (DEFERRED) or reported held on the strength of this
     * commit, so it must survive a power cut too (docs/queue.md). */
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
        return rc == QPC_ERR_DB || rc == QPC_ERR_VERSION ? EXIT_STATE : EXIT_FAIL;
    path_join(path, sizeof(path), cl->data_dir, "seen.log");
    load_seen(cl, path, now_ms());
    cl->seen_log = fopen(path, "a");
    if (cl->seen_log == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

void state_close(struct client *cl)
{
    struct persisted *p, *tmp;

    if (cl->id != NULL)
        state_save_identity(cl);
    HASH_ITER(hh, cl->persisted, p, tmp) {
        HASH_DEL(cl->persisted, p);
        free(p);
    }
    qpc_queue_close(cl->outbox);
    cl->outbox = NULL;
    if (cl->seen_log != NULL)
        fclose(cl->seen_log);
    cl->seen_log = NULL;
    qpc_store_free(cl->store);
    cl->store = NULL;
    qpc_identity_free(cl->id);
    cl->id = NULL;
}

int state_save_identity(struct client *cl)
{
    char err[512];
    int rc;

    if (!cl->id_dirty)
        return 0;
    rc = qpc_identity_save(cl->id, cl->identity_path, err, sizeof(err));
    if (rc < 0)
        qpc_log_error("state", "%s", err);
    else
        cl->id_dirty = false;
    return rc;
}

struct persist_done {
    int status;
    uint64_t oid;
};

static void persist_done_cb(void *arg, int status, uint64_t seq)
{
    struct persist_done *d = arg;

    d->status = status;
    d->oid = seq;
}

int state_persist(struct client *cl, const struct qpc_envelope *env, uint64_t now)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    struct persist_done d = { QPC_ERR_DB, 0 };
    struct persisted *p = NULL;
    int rc;

    rc = qpc_envelope_encode(env, &buf, &len);
    if (rc < 0)
        goto out;
    rc = qpc_queue_outbox_add(cl->outbox, OUTBOX_DOMAIN, env->recipient, env->id,
                              qpc_envelope_expires_at_ms(env), buf, len, now, persist_done_cb, &d);
    if (rc < 0)
        goto out;
    rc = qpc_queue_commit(cl->outbox);
    if (rc == 0)
        rc = d.status;
    if (rc < 0)
        goto out;
    HASH_FIND(hh, cl->persisted, env->id, QPC_ID_LEN, p);
    if (p == NULL) {
        p = calloc(1, sizeof(*p));
        if (p == NULL) {
            rc = QPC_ERR_NOMEM;
            goto out;
        }
        memcpy(p->id, env->id, QPC_ID_LEN);
        HASH_ADD(hh, cl->persisted, id, QPC_ID_LEN, p);
    }
    p->oid = d.oid;
out:
    free(buf);
    return rc;
}

void state_unpersist(struct client *cl, const uint8_t id[static QPC_ID_LEN])
{
    struct persisted *p = NULL;

    HASH_FIND(hh, cl->persisted, id, QPC_ID_LEN, p);
    if (p == NULL)
        return;
    if (qpc_queue_outbox_remove(cl->outbox, p->oid) < 0)
        qpc_log_warn("state", "outbox: %s", qpc_queue_errmsg(cl->outbox));
    HASH_DEL(cl->persisted, p);
    free(p);
}

size_t state_outbox_count(const struct client *cl)
{
    return HASH_COUNT(cl->persisted);
}

int state_load_outbox(struct client *cl, uint64_t now)
{
    struct qpc_outbox_item *items = NULL;
    size_t n = 0;
    int loaded = 0;

    if (qpc_queue_outbox_expire(cl->outbox, now, NULL) < 0 ||
        qpc_queue_outbox_due(cl->outbox, now, 10000, 0, &items, &n) < 0) {
        qpc_log_error("state", "outbox: %s", qpc_queue_errmsg(cl->outbox));
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        struct qpc_envelope env = { 0 };
        struct persisted *p;

        if (strcmp(items[i].domain, OUTBOX_DOMAIN) != 0 ||
            qpc_envelope_decode(&env, items[i].blob, items[i].blob_len) < 0) {
            qpc_log_warn("state", "outbox row %llu unreadable, dropped",
                         (unsigned long long)items[i].oid);
            qpc_queue_outbox_remove(cl->outbox, items[i].oid);
            continue;
        }
        p = calloc(1, sizeof(*p));
        if (p == NULL || qpc_store_put(cl->store, &env, now) < 0) {
            free(p);
            qpc_envelope_clear(&env);
            continue;
        }
        memcpy(p->id, items[i].id, QPC_ID_LEN);
        p->oid = items[i].oid;
        HASH_ADD(hh, cl->persisted, id, QPC_ID_LEN, p);
        loaded++;
    }
    qpc_outbox_items_free(items, n);
    return loaded;
}

void state_note_shown(struct client *cl, const struct qpc_envelope *env)
{
    char hex[QPC_ID_LEN * 2 + 1];

    if (cl->seen_log == NULL)
        return;
    qpc_hex_encode(hex, env->id, QPC_ID_LEN);
    fprintf(cl->seen_log, "%s %llu\n", hex, (unsigned long long)qpc_envelope_expires_at_ms(env));
    fflush(cl->seen_log);
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
        if (key != NULL)
            state_remember_key_text(topic, key);
    }
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
