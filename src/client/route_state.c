/*
 * route_state.c: the routing table across restarts (route_state.h).
 *
 * The one idea: routes are soft state, refreshed by every announce, so they are
 * written as a snapshot (one transaction: the table replaced whole) at most every few
 * seconds while it changed, with synchronous=NORMAL: a crash costs the last seconds of
 * routes, which the next announces bring back; no message depends on them. The
 * feasibility distances are saved with them, so a restarted node does not take back,
 * through a loop, a route it had already given up; and my own last seqno, so my next
 * announce is newer than every one the mesh has seen. The peers' home domains (homes.c)
 * go into the same snapshot: a `qpc send` started beside a `qpc listen` reads them here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>

#include "output.h"
#include "qpc/announce.h"
#include "qpc/error.h"
#include "homes.h"
#include "qpc/log.h"
#include "route_state.h"

struct route_state {
    sqlite3 *db;                       /* NULL: could not be opened (routes live in memory) */
    bool dirty;
    uint64_t saved_mono_ms;
    bool have_seqno;
    uint32_t seqno;                    /* the last one I used */
};

static const char schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    "CREATE TABLE IF NOT EXISTS routes ("
    "  dest BLOB PRIMARY KEY, name TEXT NOT NULL, via INTEGER NOT NULL, via_peer BLOB NOT NULL,"
    "  next_hop TEXT NOT NULL, hops INTEGER NOT NULL, rtt INTEGER NOT NULL,"
    "  last_seen INTEGER NOT NULL, source INTEGER NOT NULL, has_seqno INTEGER NOT NULL,"
    "  seqno INTEGER NOT NULL, hold INTEGER NOT NULL, retracted INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS fds ("
    "  dest BLOB PRIMARY KEY, seqno INTEGER NOT NULL, metric INTEGER NOT NULL,"
    "  updated INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS homes ("
    "  dest BLOB PRIMARY KEY, domain TEXT NOT NULL, seqno INTEGER NOT NULL, heard INTEGER NOT NULL);";

static void warn_db(struct route_state *rs, const char *what)
{
    qpc_log_warn("routes", "%s %s: %s", ROUTE_STATE_FILE, what, sqlite3_errmsg(rs->db));
}

static void copy_text(char *dst, size_t cap, const unsigned char *src)
{
    snprintf(dst, cap, "%s", src != NULL ? (const char *)src : "");
}

static void load_routes(struct route_state *rs, struct qpc_route_table *rt, uint64_t now)
{
    sqlite3_stmt *st = NULL;
    size_t n = 0;

    if (sqlite3_prepare_v2(rs->db, "SELECT dest, name, via, via_peer, next_hop, hops, rtt, last_seen,"
                           " source, has_seqno, seqno, hold, retracted FROM routes", -1, &st, NULL) != SQLITE_OK) {
        warn_db(rs, "routes");
        return;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        struct qpc_route r;

        memset(&r, 0, sizeof(r));
        if (sqlite3_column_bytes(st, 0) != QPC_KEY_LEN || sqlite3_column_bytes(st, 3) != QPC_KEY_LEN)
            continue;
        memcpy(r.dest, sqlite3_column_blob(st, 0), QPC_KEY_LEN);
        copy_text(r.name, sizeof(r.name), sqlite3_column_text(st, 1));
        r.via = (enum qpc_route_via)sqlite3_column_int(st, 2);
        memcpy(r.via_peer, sqlite3_column_blob(st, 3), QPC_KEY_LEN);
        copy_text(r.next_hop, sizeof(r.next_hop), sqlite3_column_text(st, 4));
        r.hops = (uint32_t)sqlite3_column_int64(st, 5);
        r.rtt_ms = (uint32_t)sqlite3_column_int64(st, 6);
        r.last_seen_ms = (uint64_t)sqlite3_column_int64(st, 7);
        if (r.last_seen_ms > now)
            r.last_seen_ms = now;   /* the clock stepped back meanwhile */
        r.source = (enum qpc_route_source)sqlite3_column_int(st, 8);
        r.has_seqno = sqlite3_column_int(st, 9) != 0;
        r.seqno = (uint32_t)sqlite3_column_int64(st, 10);
        r.hold_ms = (uint64_t)sqlite3_column_int64(st, 11);
        r.retracted = sqlite3_column_int(st, 12) != 0;
        /* The table checks every field as it would an offer; what it refuses is dropped. */
        if (qpc_route_update(rt, &r, now, NULL) == 0)
            n++;
    }
    sqlite3_finalize(st);
    if (n > 0)
        qpc_log_info("routes", "%zu routes loaded from %s", n, ROUTE_STATE_FILE);
}

static void load_fds(struct route_state *rs, struct qpc_route_table *rt)
{
    sqlite3_stmt *st = NULL;

    if (sqlite3_prepare_v2(rs->db, "SELECT dest, seqno, metric, updated FROM fds", -1, &st, NULL) != SQLITE_OK) {
        warn_db(rs, "feasibility distances");
        return;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        struct qpc_route_fd fd;

        if (sqlite3_column_bytes(st, 0) != QPC_KEY_LEN)
            continue;
        memcpy(fd.dest, sqlite3_column_blob(st, 0), QPC_KEY_LEN);
        fd.seqno = (uint32_t)sqlite3_column_int64(st, 1);
        fd.metric = (uint32_t)sqlite3_column_int64(st, 2);
        fd.updated_ms = (uint64_t)sqlite3_column_int64(st, 3);
        qpc_route_fd_set(rt, &fd);
    }
    sqlite3_finalize(st);
}

static void load_homes(struct route_state *rs, struct homes *h)
{
    sqlite3_stmt *st = NULL;

    /* Oldest first, so the table's eviction order is what it was. */
    if (sqlite3_prepare_v2(rs->db, "SELECT dest, domain, seqno, heard FROM homes ORDER BY heard",
                           -1, &st, NULL) != SQLITE_OK) {
        warn_db(rs, "home domains");
        return;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        struct home e;

        memset(&e, 0, sizeof(e));
        if (sqlite3_column_bytes(st, 0) != QPC_KEY_LEN)
            continue;
        memcpy(e.key, sqlite3_column_blob(st, 0), QPC_KEY_LEN);
        copy_text(e.domain, sizeof(e.domain), sqlite3_column_text(st, 1));
        e.seqno = (uint32_t)sqlite3_column_int64(st, 2);
        e.heard_ms = (uint64_t)sqlite3_column_int64(st, 3);
        homes_restore(h, &e);   /* checks the domain as an announce's would be */
    }
    sqlite3_finalize(st);
}

static void load_seqno(struct route_state *rs)
{
    sqlite3_stmt *st = NULL;

    if (sqlite3_prepare_v2(rs->db, "SELECT v FROM meta WHERE k = 'seqno'", -1, &st, NULL) != SQLITE_OK)
        return;
    if (sqlite3_step(st) == SQLITE_ROW) {
        rs->seqno = (uint32_t)sqlite3_column_int64(st, 0);
        rs->have_seqno = true;
    }
    sqlite3_finalize(st);
}

int route_state_open(struct client *cl)
{
    char path[PATH_MAX + 32];
    struct route_state *rs;
    char *msg = NULL;

    if ((cl->routes = qpc_route_table_new(0)) == NULL || (cl->homes = homes_new()) == NULL ||
        (rs = calloc(1, sizeof(*rs))) == NULL) {
        qpc_route_table_free(cl->routes);
        cl->routes = NULL;
        homes_free(cl->homes);
        cl->homes = NULL;
        return QPC_ERR_NOMEM;
    }
    cl->route_state = rs;
    snprintf(path, sizeof(path), "%s/%s", cl->data_dir, ROUTE_STATE_FILE);
    /* The busy timeout before the schema: a `qpc route` or a second qpc may hold the
     * file for a moment just then, and a lock met without one fails at once, leaving
     * this node without kept routes for its whole run. */
    if (sqlite3_open_v2(path, &rs->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK ||
        sqlite3_busy_timeout(rs->db, 2000) != SQLITE_OK ||   /* a qpc listen and a REPL may share the directory */
        sqlite3_exec(rs->db, schema, NULL, NULL, &msg) != SQLITE_OK) {
        qpc_log_warn("routes", "%s: %s: routes are not kept across restarts", path,
                     msg != NULL ? msg : sqlite3_errmsg(rs->db));
        sqlite3_free(msg);
        sqlite3_close(rs->db);
        rs->db = NULL;
        return 0;
    }
    /* Routes first (each sets a distance as it is taken), then the saved distances over
     * them: those are what was true when the table was saved. */
    load_routes(rs, cl->routes, now_ms());
    load_fds(rs, cl->routes);
    load_homes(rs, cl->homes);
    load_seqno(rs);
    return 0;
}

static bool run(struct route_state *rs, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);

    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        warn_db(rs, what);
        return false;
    }
    return true;
}

/* The whole table in one transaction. */
static bool write_snapshot(struct route_state *rs, const struct qpc_route_table *rt, const struct homes *h)
{
    struct qpc_route *routes = NULL;
    struct qpc_route_fd *fds = NULL;
    struct home *homes = NULL;
    size_t nr = 0, nf = 0, nh = 0;
    sqlite3_stmt *ins_r = NULL, *ins_f = NULL, *ins_m = NULL, *ins_h = NULL;
    bool ok = false;

    if (qpc_route_list(rt, &routes, &nr) < 0 || qpc_route_fd_list(rt, &fds, &nf) < 0 ||
        (h != NULL && homes_list(h, &homes, &nh) < 0))
        goto out;
    if (sqlite3_exec(rs->db, "BEGIN IMMEDIATE; DELETE FROM routes; DELETE FROM fds; DELETE FROM homes;",
                     NULL, NULL, NULL) != SQLITE_OK) {
        warn_db(rs, "save");
        sqlite3_exec(rs->db, "ROLLBACK", NULL, NULL, NULL);
        goto out;
    }
    if (sqlite3_prepare_v2(rs->db, "INSERT INTO routes VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", -1, &ins_r, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(rs->db, "INSERT INTO fds VALUES (?,?,?,?)", -1, &ins_f, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(rs->db, "INSERT OR REPLACE INTO meta VALUES ('seqno', ?)", -1, &ins_m, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(rs->db, "INSERT INTO homes VALUES (?,?,?,?)", -1, &ins_h, NULL) != SQLITE_OK) {
        warn_db(rs, "save");
        goto rollback;
    }
    for (size_t i = 0; i < nr; i++) {
        const struct qpc_route *r = &routes[i];

        sqlite3_bind_blob(ins_r, 1, r->dest, QPC_KEY_LEN, SQLITE_STATIC);
        sqlite3_bind_text(ins_r, 2, r->name, -1, SQLITE_STATIC);
        sqlite3_bind_int(ins_r, 3, (int)r->via);
        sqlite3_bind_blob(ins_r, 4, r->via_peer, QPC_KEY_LEN, SQLITE_STATIC);
        sqlite3_bind_text(ins_r, 5, r->next_hop, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins_r, 6, r->hops);
        sqlite3_bind_int64(ins_r, 7, r->rtt_ms);
        sqlite3_bind_int64(ins_r, 8, (sqlite3_int64)r->last_seen_ms);
        sqlite3_bind_int(ins_r, 9, (int)r->source);
        sqlite3_bind_int(ins_r, 10, r->has_seqno);
        sqlite3_bind_int64(ins_r, 11, r->seqno);
        sqlite3_bind_int64(ins_r, 12, (sqlite3_int64)r->hold_ms);
        sqlite3_bind_int(ins_r, 13, r->retracted);
        if (!run(rs, ins_r, "save"))
            goto rollback;
    }
    for (size_t i = 0; i < nf; i++) {
        sqlite3_bind_blob(ins_f, 1, fds[i].dest, QPC_KEY_LEN, SQLITE_STATIC);
        sqlite3_bind_int64(ins_f, 2, fds[i].seqno);
        sqlite3_bind_int64(ins_f, 3, fds[i].metric);
        sqlite3_bind_int64(ins_f, 4, (sqlite3_int64)fds[i].updated_ms);
        if (!run(rs, ins_f, "save"))
            goto rollback;
    }
    for (size_t i = 0; i < nh; i++) {
        sqlite3_bind_blob(ins_h, 1, homes[i].key, QPC_KEY_LEN, SQLITE_STATIC);
        sqlite3_bind_text(ins_h, 2, homes[i].domain, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins_h, 3, homes[i].seqno);
        sqlite3_bind_int64(ins_h, 4, (sqlite3_int64)homes[i].heard_ms);
        if (!run(rs, ins_h, "save"))
            goto rollback;
    }
    if (rs->have_seqno) {
        sqlite3_bind_int64(ins_m, 1, rs->seqno);
        if (!run(rs, ins_m, "save"))
            goto rollback;
    }
    if (sqlite3_exec(rs->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK) {
        ok = true;
        goto out;
    }
    warn_db(rs, "commit");
rollback:
    sqlite3_exec(rs->db, "ROLLBACK", NULL, NULL, NULL);
out:
    sqlite3_finalize(ins_r);
    sqlite3_finalize(ins_f);
    sqlite3_finalize(ins_m);
    sqlite3_finalize(ins_h);
    free(routes);
    free(fds);
    free(homes);
    return ok;
}

void route_state_save(struct client *cl, bool force)
{
    struct route_state *rs = cl->route_state;
    uint64_t mono = mono_ms();

    if (rs == NULL || rs->db == NULL || !rs->dirty)
        return;
    if (!force && mono - rs->saved_mono_ms < ROUTE_STATE_SAVE_MS)
        return;
    rs->saved_mono_ms = mono;
    if (write_snapshot(rs, cl->routes, cl->homes))
        rs->dirty = false;
}

void route_state_close(struct client *cl)
{
    struct route_state *rs = cl->route_state;

    if (rs != NULL) {
        route_state_save(cl, true);
        sqlite3_close(rs->db);
        free(rs);
        cl->route_state = NULL;
    }
    qpc_route_table_free(cl->routes);
    cl->routes = NULL;
    homes_free(cl->homes);
    cl->homes = NULL;
}

void route_state_changed(struct client *cl)
{
    if (cl->route_state != NULL)
        cl->route_state->dirty = true;
}

uint32_t route_state_next_seqno(struct client *cl, uint64_t wall_ms)
{
    struct route_state *rs = cl->route_state;
    uint32_t clock = (uint32_t)(wall_ms / 1000), next;

    if (rs == NULL)
        return clock;
    next = rs->have_seqno ? rs->seqno + 1 : clock;
    if (qpc_announce_seqno_newer(clock, next))
        next = clock;
    rs->seqno = next;
    rs->have_seqno = true;
    rs->dirty = true;
    return next;
}
