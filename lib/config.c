/*
 * config.c: layering of a program's settings by a schema the program supplies
 * (include/qpc/config.h); the file syntax is read by toml.c.
 *
 * The one idea: a schema row per key says its type, environment variable, default (as
 * text), range, help and where in the program's struct it lives. Every value, whatever
 * its origin, becomes a `struct tval` and goes through assign(), which checks it
 * against the row and stores it unless a stronger source already set the key. The
 * defaults themselves are parsed from the row's text by the same code, so the
 * documentation, the --help text and the behaviour cannot drift apart.
 *
 * Messages are for the person editing the file: each names the origin, the key as
 * that person wrote it (the flag on the command line, the name elsewhere), what is
 * wrong, and what to write instead. The schema supplies every word that is about the
 * program (its name, what a table's entries are); the rest is said here once.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "qpc/addr.h"
#include "qpc/config.h"
#include "qpc/encoding.h"
#include "qpc/error.h"
#include "qpc/toml.h"
#include "qpc/utf8.h"

#define MAX_KEY_BYTES QPC_TOML_KEY_MAX
#define MAX_STRING_BYTES QPC_TOML_STRING_MAX
#define MAX_LIST_ITEMS QPC_TOML_ARRAY_MAX
#define TOKEN_SHOWN 40            /* bytes of a bad token quoted back in a message */

/* Where each key's current value came from. */
struct key_state {
    enum qpc_config_source source;
    const char *file;             /* points into files[] when source is FILE */
    int line;
};

struct qpc_config {
    const struct qpc_config_schema *schema;
    const struct qpc_config_key *keys;   /* schema->keys */
    size_t nkeys;
    void *values;                        /* the program's struct, schema->values_size */
    struct key_state *state;             /* nkeys */
    char **files;                        /* names of the files loaded, owned */
    size_t nfiles;
};

/* ------------------------------------------------------------ values ----------- */

enum tkind { V_STR, V_INT, V_BOOL, V_LIST, V_TABLE };

/* A value on its way into the config; owns what it points to until assign() takes it. */
struct tval {
    enum tkind kind;
    char *s;
    int64_t i;
    bool b;
    bool is_auto;       /* V_INT of a QPC_CONFIG_AUTO key: the word "auto" (i unused) */
    struct qpc_config_strings list;
    struct qpc_config_table table;
};

/* Where a value comes from, for precedence and for the prefix of messages. */
struct origin {
    enum qpc_config_source source;
    const char *file;   /* FILE: its name */
    int line;           /* FILE: line number */
    const char *env;    /* ENV: variable name */
};

static void strings_free(struct qpc_config_strings *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

static void table_free(struct qpc_config_table *t)
{
    for (size_t i = 0; i < t->count; i++) {
        free(t->items[i].name);
        free(t->items[i].value);
    }
    free(t->items);
    t->items = NULL;
    t->count = 0;
}

static void tval_free(struct tval *v)
{
    free(v->s);
    strings_free(&v->list);
    table_free(&v->table);
    memset(v, 0, sizeof(*v));
}

static int strings_push(struct qpc_config_strings *l, char *item)
{
    char **n = realloc(l->items, (l->count + 1) * sizeof(*n));
    if (n == NULL)
        return QPC_ERR_NOMEM;
    l->items = n;
    l->items[l->count++] = item;
    return 0;
}

static int table_push(struct qpc_config_table *t, char *name, char *value)
{
    struct qpc_config_entry *n = realloc(t->items, (t->count + 1) * sizeof(*n));
    if (n == NULL)
        return QPC_ERR_NOMEM;
    t->items = n;
    t->items[t->count].name = name;
    t->items[t->count].value = value;
    t->count++;
    return 0;
}

static const struct qpc_config_entry *table_find(const struct qpc_config_table *t,
                                                 const char *name)
{
    for (size_t i = 0; i < t->count; i++)
        if (strcasecmp(t->items[i].name, name) == 0)
            return &t->items[i];
    return NULL;
}

const char *qpc_config_table_get(const struct qpc_config_table *table, const char *name)
{
    const struct qpc_config_entry *e = table != NULL && name != NULL ? table_find(table, name)
                                                                     : NULL;
    return e != NULL ? e->value : NULL;
}

/* ------------------------------------------------------------ messages --------- */

static void vmsg(char *err, size_t errlen, const struct origin *o, const char *fmt, va_list ap)
{
    if (err == NULL || errlen == 0)
        return;
    int n = 0;
    switch (o ? o->source : QPC_CONFIG_SOURCE_DEFAULT) {
    case QPC_CONFIG_SOURCE_FILE: n = snprintf(err, errlen, "%s:%d: ", o->file, o->line); break;
    case QPC_CONFIG_SOURCE_ENV: n = snprintf(err, errlen, "environment %s: ", o->env); break;
    case QPC_CONFIG_SOURCE_FLAG: n = snprintf(err, errlen, "command line: "); break;
    case QPC_CONFIG_SOURCE_DEFAULT: n = 0; err[0] = '\0'; break;
    }
    if (n < 0 || (size_t)n >= errlen)
        return;
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
}

/* Writes "prefix: message" to err and returns QPC_ERR_CONFIG. */
__attribute__((format(printf, 4, 5)))
static int fail(char *err, size_t errlen, const struct origin *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(err, errlen, o, fmt, ap);
    va_end(ap);
    return QPC_ERR_CONFIG;
}

static int nomem(char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "out of memory while reading the configuration");
    return QPC_ERR_NOMEM;
}

/* How a key is named to the user in a message from this origin. */
static const char *key_label(const struct qpc_config_key *k, const struct origin *o)
{
    return o->source == QPC_CONFIG_SOURCE_FLAG ? k->flag : k->name;
}

/* "a", "a or b", "a, b or c": the choices of an enum key, each in quote marks q. */
static void join_choices(char *buf, size_t len, const struct qpc_config_key *k, const char *q)
{
    size_t n = 0, used = 0;
    while (k->choices[n] != NULL)
        n++;
    buf[0] = '\0';
    for (size_t i = 0; i < n && used < len; i++) {
        const char *sep = i == 0 ? "" : i + 1 == n ? " or " : ", ";
        int w = snprintf(buf + used, len - used, "%s%s%s%s", sep, q, k->choices[i], q);
        if (w < 0)
            return;
        used += (size_t)w;
    }
}

/* What a key expects, for "'KEY' expects ..., got ..." messages. */
static const char *type_phrase(const struct qpc_config_key *k, char *buf, size_t len)
{
    switch (k->type) {
    case QPC_CONFIG_STRING: return "a string in double quotes";
    case QPC_CONFIG_ADDR: return "an address string like \"0.0.0.0:7000\" or \"[::1]:7000\"";
    case QPC_CONFIG_ENUM: {
        char choices[256];
        join_choices(choices, sizeof(choices), k, "\"");
        snprintf(buf, len, "a string (%s)", choices);
        return buf;
    }
    case QPC_CONFIG_INT:
        return (k->flags & QPC_CONFIG_AUTO) ? "an integer or \"auto\"" : "an integer";
    case QPC_CONFIG_BOOL: return "a boolean (true or false)";
    case QPC_CONFIG_LIST:
        if (k->flags & QPC_CONFIG_ADDRS)
            return "an array of addresses like [\"192.0.2.1:7000\", \"[2001:db8::1]:7000\"]";
        return (k->flags & QPC_CONFIG_IFNAME) ? "an array of strings like [\"eth0\", \"wlan0\"]"
                                              : "an array of strings like [\"a\", \"b\"]";
    case QPC_CONFIG_TABLE: return "a table";
    }
    return "?";
}

static const char *kind_phrase(enum tkind k)
{
    switch (k) {
    case V_STR: return "a string";
    case V_INT: return "an integer";
    case V_BOOL: return "a boolean";
    case V_LIST: return "an array";
    case V_TABLE: return "a table";
    }
    return "?";
}

/* -------------------------------------------------------- did you mean -------- */

static int fold(int c)
{
    c = tolower((unsigned char)c);
    return c == '-' ? '_' : c;
}

/* Levenshtein distance, ignoring case and treating '-' as '_'. known is short. */
static size_t edit_distance(const char *typed, const char *known)
{
    size_t m = strlen(known);
    size_t row[MAX_KEY_BYTES + 1], prev[MAX_KEY_BYTES + 1];
    if (m > MAX_KEY_BYTES)
        m = MAX_KEY_BYTES;
    for (size_t j = 0; j <= m; j++)
        prev[j] = j;
    size_t i = 0;
    for (const char *t = typed; *t != '\0'; t++) {
        i++;
        row[0] = i;
        for (size_t j = 1; j <= m; j++) {
            size_t sub = prev[j - 1] + (fold(*t) == fold(known[j - 1]) ? 0 : 1);
            size_t del = prev[j] + 1, ins = row[j - 1] + 1;
            row[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, row, (m + 1) * sizeof(size_t));
    }
    return prev[m];
}

/* The known key (of the wanted table-ness) nearest to typed, or NULL if none is. */
static const struct qpc_config_key *nearest_key(const struct qpc_config *cfg,
                                                const char *typed, bool tables)
{
    const struct qpc_config_key *best = NULL;
    size_t best_d = SIZE_MAX;
    for (size_t i = 0; i < cfg->nkeys; i++) {
        if ((cfg->keys[i].type == QPC_CONFIG_TABLE) != tables ||
            (cfg->keys[i].flags & QPC_CONFIG_NOT_BUILT))
            continue;
        size_t d = edit_distance(typed, cfg->keys[i].name);
        if (d < best_d) {
            best_d = d;
            best = &cfg->keys[i];
        }
    }
    return best;
}

/*
 * The suggestion part of an unknown-key message. A near miss is a likely typo; a far
 * one is still named (it is the best guess) but without pretending to be the fix.
 */
static void suggestion(char *buf, size_t len, const char *typed, const char *near,
                       const char *shown, const char *open, const char *close)
{
    size_t d = edit_distance(typed, near), n = strlen(near);
    if (d <= 2 || d * 3 <= n)
        snprintf(buf, len, "did you mean %s%s%s?", open, shown, close);
    else
        snprintf(buf, len, "the closest known one is %s%s%s; docs/config.md lists them all",
                 open, shown, close);
}

static int find_key(const struct qpc_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nkeys; i++)
        if (strcmp(cfg->keys[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* A value for a key this build leaves out: refused, saying why (the schema's words). */
static int not_built(const struct qpc_config *cfg, const struct qpc_config_key *k,
                     const struct origin *o, char *err, size_t errlen)
{
    return fail(err, errlen, o, "%s: %s", key_label(k, o), cfg->schema->not_built);
}

/* ------------------------------------------------------ value checks ---------- */

/* An item of an address list: what qpc_addr_check says, and a port to dial. */
static const char *addr_item_problem(const char *s)
{
    uint16_t port = 0;
    const char *why = qpc_addr_check(s, NULL, 0, &port);

    if (why != NULL)
        return why;
    return port == 0 ? "port 0 cannot be dialled" : NULL;
}

static const char *ifname_problem(const char *s)
{
    size_t len = strlen(s);
    if (len == 0)
        return "an interface name is empty";
    if (len > 15)
        return "an interface name is longer than 15 characters";
    for (const char *p = s; *p; p++)
        if (*p == '/' || isspace((unsigned char)*p) || iscntrl((unsigned char)*p))
            return "an interface name may not contain '/' or spaces";
    return NULL;
}

/* Checks one table entry, a DNS name and an address to dial; o says where it came from. */
static int check_entry(const struct qpc_config_table_spec *t, const char *name,
                       const char *addr, const struct origin *o, char *err, size_t errlen)
{
    uint16_t port;
    const char *why = qpc_addr_check_name(name);
    if (why != NULL)
        return fail(err, errlen, o, "%s '%.*s' is not a domain name: %s", t->noun,
                    TOKEN_SHOWN, name, why);
    size_t alen = strcspn(addr, " \t");
    char *just_addr = strndup(addr, alen);
    if (just_addr == NULL)
        return nomem(err, errlen);
    why = qpc_addr_check(just_addr, NULL, 0, &port);
    free(just_addr);
    if (why == NULL && port == 0)
        why = "port 0 cannot be dialled";
    if (why == NULL && addr[alen] != '\0' && !t->key_after_address)
        why = "an address has no spaces";
    if (why != NULL)
        return fail(err, errlen, o, "%s '%s' has address \"%.*s\": %s", t->noun, name,
                    TOKEN_SHOWN, addr, why);
    if (addr[alen] != '\0') {
        const char *key = addr + alen + strspn(addr + alen, " \t");
        uint8_t raw[QPC_KEY_LEN];
        if (strlen(key) != QPC_KEY_HEX_LEN - 1 || qpc_key_from_hex(raw, key) != 0)
            return fail(err, errlen, o, "%s '%s': after the address comes its key, 64 hex "
                        "digits (an Ed25519 public key), got \"%.*s\"", t->noun, name,
                        TOKEN_SHOWN, key);
    }
    return 0;
}

static enum tkind kind_of(enum qpc_config_type t)
{
    switch (t) {
    case QPC_CONFIG_INT: return V_INT;
    case QPC_CONFIG_BOOL: return V_BOOL;
    case QPC_CONFIG_LIST: return V_LIST;
    case QPC_CONFIG_TABLE: return V_TABLE;
    case QPC_CONFIG_STRING: case QPC_CONFIG_ADDR: case QPC_CONFIG_ENUM: break;
    }
    return V_STR;
}

/* Checks v against key k. Types must match; ranges and formats are checked here. */
static int check_value(const struct qpc_config_key *k, const struct tval *v,
                       const struct origin *o, char *err, size_t errlen)
{
    const char *label = key_label(k, o);
    char phrase[320];
    if (v->kind != kind_of(k->type))
        return fail(err, errlen, o, "'%s' expects %s, got %s", label,
                    type_phrase(k, phrase, sizeof(phrase)), kind_phrase(v->kind));
    switch (k->type) {
    case QPC_CONFIG_STRING:
        if ((k->flags & QPC_CONFIG_HOSTNAME) &&
            !(v->s[0] == '\0' && (k->flags & QPC_CONFIG_EMPTY_OK))) {
            const char *why = qpc_addr_check_name(v->s);
            if (why != NULL)
                return fail(err, errlen, o, "'%s' = \"%.*s\" is not a domain name: %s", label,
                            TOKEN_SHOWN, v->s, why);
        }
        return 0;
    case QPC_CONFIG_ADDR: {
        uint16_t port;
        const char *why;
        if (v->s[0] == '\0' && (k->flags & QPC_CONFIG_EMPTY_OK))
            return 0;
        why = qpc_addr_check(v->s, NULL, 0, &port);
        if (why == NULL && port == 0 && !(k->flags & QPC_CONFIG_PORT0))
            why = "port 0 cannot be dialled";
        if (why != NULL)
            return fail(err, errlen, o, "'%s' = \"%.*s\" is not a usable address: %s", label,
                        TOKEN_SHOWN, v->s, why);
        return 0;
    }
    case QPC_CONFIG_ENUM:
        for (const char *const *c = k->choices; *c != NULL; c++)
            if (strcmp(*c, v->s) == 0)
                return 0;
        join_choices(phrase, sizeof(phrase), k, "");
        return fail(err, errlen, o, "'%s' = \"%.*s\" is not allowed; use one of %s", label,
                    TOKEN_SHOWN, v->s, phrase);
    case QPC_CONFIG_INT:
        if (v->is_auto)
            return 0;   /* only made for a QPC_CONFIG_AUTO key (auto_word) */
        if (v->i < k->min || v->i > k->max)
            return fail(err, errlen, o,
                        "'%s' = %lld is out of range; use %lld to %lld (%s)%s", label,
                        (long long)v->i, (long long)k->min, (long long)k->max, k->metavar,
                        (k->flags & QPC_CONFIG_AUTO) ? " or \"auto\"" : "");
        return 0;
    case QPC_CONFIG_BOOL:
        return 0;
    case QPC_CONFIG_LIST:
        for (size_t i = 0; i < v->list.count; i++) {
            const char *why = (k->flags & QPC_CONFIG_IFNAME) ? ifname_problem(v->list.items[i])
                              : (k->flags & QPC_CONFIG_ADDRS) ? addr_item_problem(v->list.items[i])
                              : NULL;
            if (why != NULL)
                return fail(err, errlen, o, "'%s' item \"%.*s\": %s", label, TOKEN_SHOWN,
                            v->list.items[i], why);
        }
        return 0;
    case QPC_CONFIG_TABLE:
        for (size_t i = 0; i < v->table.count; i++) {
            int rc = check_entry(k->table, v->table.items[i].name, v->table.items[i].value, o,
                                 err, errlen);
            if (rc < 0)
                return rc;
        }
        return 0;
    }
    return QPC_ERR_INVALID;
}

/* ------------------------------------------------------------- storing --------- */

static void *slot(struct qpc_config *cfg, const struct qpc_config_key *k)
{
    return (char *)cfg->values + k->offset;
}

static void slot_free(struct qpc_config *cfg, const struct qpc_config_key *k)
{
    void *p = slot(cfg, k);
    switch (k->type) {
    case QPC_CONFIG_STRING: case QPC_CONFIG_ADDR: case QPC_CONFIG_ENUM:
        free(*(char **)p);
        *(char **)p = NULL;
        break;
    case QPC_CONFIG_LIST: strings_free(p); break;
    case QPC_CONFIG_TABLE: table_free(p); break;
    case QPC_CONFIG_INT: case QPC_CONFIG_BOOL: break;
    }
}

/* Puts v into key k's field, which must be free; takes what v owns. */
static void store(struct qpc_config *cfg, const struct qpc_config_key *k, struct tval *v)
{
    void *p = slot(cfg, k);
    switch (k->type) {
    case QPC_CONFIG_STRING: case QPC_CONFIG_ADDR: case QPC_CONFIG_ENUM:
        *(char **)p = v->s;
        v->s = NULL;
        break;
    case QPC_CONFIG_INT: *(int64_t *)p = v->is_auto ? QPC_CONFIG_AUTO_VALUE : v->i; break;
    case QPC_CONFIG_BOOL: *(bool *)p = v->b; break;
    case QPC_CONFIG_LIST:
        *(struct qpc_config_strings *)p = v->list;
        memset(&v->list, 0, sizeof(v->list));
        break;
    case QPC_CONFIG_TABLE:
        *(struct qpc_config_table *)p = v->table;
        memset(&v->table, 0, sizeof(v->table));
        break;
    }
}

/* True when text is the word a QPC_CONFIG_AUTO key takes for "the program decides". */
static bool auto_word(const struct qpc_config_key *k, const char *text)
{
    return k->type == QPC_CONFIG_INT && (k->flags & QPC_CONFIG_AUTO) && strcmp(text, "auto") == 0;
}

/*
 * Checks v for key number idx and stores it unless a stronger source set the key.
 * Always consumes v.
 */
static int assign(struct qpc_config *cfg, size_t idx, struct tval *v, const struct origin *o,
                  char *err, size_t errlen)
{
    const struct qpc_config_key *k = &cfg->keys[idx];
    struct key_state *st = &cfg->state[idx];
    int rc;
    if (v->kind == V_STR && auto_word(k, v->s)) {   /* the file's string "auto" */
        free(v->s);
        v->s = NULL;
        v->kind = V_INT;
        v->is_auto = true;
    }
    rc = check_value(k, v, o, err, errlen);
    if (rc == 0 && o->source >= st->source) {
        slot_free(cfg, k);
        store(cfg, k, v);
        st->source = o->source;
        st->file = o->source == QPC_CONFIG_SOURCE_FILE ? o->file : NULL;
        st->line = o->source == QPC_CONFIG_SOURCE_FILE ? o->line : 0;
    }
    tval_free(v);
    return rc;
}

/* -------------------------------------------------------- text values ---------- */

static bool has_control(const char *s)
{
    for (; *s; s++)
        if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
            return true;   /* tab is allowed, as in a TOML basic string */
    return false;
}

static char *dup_trimmed(const char *s, size_t len)
{
    while (len > 0 && (*s == ' ' || *s == '\t')) { s++; len--; }
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t')) len--;
    return strndup(s, len);
}

/* One "name=host:port" item of a table given as text; takes item. */
static int text_entry(const struct qpc_config_key *k, char *item, struct tval *v,
                      const struct origin *o, char *err, size_t errlen)
{
    const struct qpc_config_table_spec *t = k->table;
    char *eq = strchr(item, '='), *name = NULL, *addr = NULL;
    int rc = 0;
    if (eq == NULL) {
        rc = fail(err, errlen, o, "'%s' item \"%.*s\" needs the form %s=host:port",
                  key_label(k, o), TOKEN_SHOWN, item, t->name_word);
    } else if (v->table.count >= t->max_entries) {
        rc = fail(err, errlen, o, "more than %zu %s", t->max_entries, t->nouns);
    } else {
        name = dup_trimmed(item, (size_t)(eq - item));
        addr = dup_trimmed(eq + 1, strlen(eq + 1));
        if (name == NULL || addr == NULL)
            rc = nomem(err, errlen);
        else if (table_find(&v->table, name) != NULL)
            rc = fail(err, errlen, o, "%s '%s' is given twice", t->noun, name);
        else if ((rc = check_entry(t, name, addr, o, err, errlen)) == 0)
            rc = table_push(&v->table, name, addr);
        if (rc < 0) {
            free(name);
            free(addr);
        }
    }
    free(item);
    return rc;
}

/* Splits comma-separated text into trimmed, non-empty items of a list or a table. */
static int split_text(const struct qpc_config_key *k, const char *text, struct tval *v,
                      const struct origin *o, char *err, size_t errlen)
{
    const char *p = text;
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char *item = dup_trimmed(p, len);
        int rc = 0;
        if (item == NULL)
            return nomem(err, errlen);
        if (item[0] == '\0') {
            free(item);
        } else if (k->type == QPC_CONFIG_LIST) {
            rc = v->list.count >= MAX_LIST_ITEMS
                 ? fail(err, errlen, o, "'%s' has more than %d items", key_label(k, o),
                        MAX_LIST_ITEMS)
                 : strings_push(&v->list, item);
            if (rc < 0)
                free(item);
        } else {
            rc = text_entry(k, item, v, o, err, errlen);
        }
        if (rc < 0)
            return rc;
        p += len + (comma ? 1 : 0);
    }
    return 0;
}

/* Turns text in the env/flag syntax into a value for key k. */
static int value_from_text(const struct qpc_config_key *k, const char *text, struct tval *v,
                           const struct origin *o, char *err, size_t errlen)
{
    const char *label = key_label(k, o);
    memset(v, 0, sizeof(*v));
    if (!qpc_utf8_valid(text, strlen(text)) || has_control(text))
        return fail(err, errlen, o, "'%s' holds control characters or invalid UTF-8", label);
    switch (k->type) {
    case QPC_CONFIG_STRING: case QPC_CONFIG_ADDR: case QPC_CONFIG_ENUM:
        if (strlen(text) > MAX_STRING_BYTES)
            return fail(err, errlen, o, "'%s' is longer than %d bytes", label, MAX_STRING_BYTES);
        v->kind = V_STR;
        return (v->s = strdup(text)) ? 0 : nomem(err, errlen);
    case QPC_CONFIG_INT: {
        int r;
        v->kind = V_INT;
        if (auto_word(k, text)) {
            v->is_auto = true;
            return 0;
        }
        r = qpc_toml_parse_integer(text, strlen(text), &v->i);
        if (r == QPC_ERR_TOO_LARGE)
            return fail(err, errlen, o, "'%s' = %.*s does not fit in a 64-bit integer; use %lld to %lld",
                        label, TOKEN_SHOWN, text, (long long)k->min, (long long)k->max);
        if (r < 0 && (k->flags & QPC_CONFIG_AUTO))
            return fail(err, errlen, o, "'%s' expects a decimal integer (%lld to %lld) or "
                        "auto, got \"%.*s\"", label, (long long)k->min, (long long)k->max,
                        TOKEN_SHOWN, text);
        if (r < 0)
            return fail(err, errlen, o, "'%s' expects a decimal integer (like %s), got \"%.*s\"",
                        label, k->def, TOKEN_SHOWN, text);
        return 0;
    }
    case QPC_CONFIG_BOOL:
        v->kind = V_BOOL;
        if (!strcasecmp(text, "true") || !strcmp(text, "1") || !strcasecmp(text, "yes"))
            v->b = true;
        else if (!strcasecmp(text, "false") || !strcmp(text, "0") || !strcasecmp(text, "no"))
            v->b = false;
        else
            return fail(err, errlen, o, "'%s' expects a boolean (true/false, 1/0, yes/no), got \"%.*s\"",
                        label, TOKEN_SHOWN, text);
        return 0;
    case QPC_CONFIG_LIST:
        v->kind = V_LIST;
        return split_text(k, text, v, o, err, errlen);
    case QPC_CONFIG_TABLE:
        v->kind = V_TABLE;
        return split_text(k, text, v, o, err, errlen);
    }
    return QPC_ERR_INVALID;
}

/* ------------------------------------------------------------ objects ---------- */

static size_t field_size(enum qpc_config_type t)
{
    switch (t) {
    case QPC_CONFIG_INT: return sizeof(int64_t);
    case QPC_CONFIG_BOOL: return sizeof(bool);
    case QPC_CONFIG_LIST: return sizeof(struct qpc_config_strings);
    case QPC_CONFIG_TABLE: return sizeof(struct qpc_config_table);
    case QPC_CONFIG_STRING: case QPC_CONFIG_ADDR: case QPC_CONFIG_ENUM: break;
    }
    return sizeof(char *);
}

/* True when every row of s is complete and names are unique; defaults are checked later. */
static bool schema_ok(const struct qpc_config_schema *s)
{
    if (s == NULL || s->program == NULL || s->keys == NULL || s->key_count == 0)
        return false;
    for (size_t i = 0; i < s->key_count; i++) {
        const struct qpc_config_key *k = &s->keys[i];
        if (k->name == NULL || k->name[0] == '\0' || strlen(k->name) > MAX_KEY_BYTES ||
            k->flag == NULL || k->def == NULL || k->metavar == NULL || k->help == NULL ||
            (unsigned)k->type > QPC_CONFIG_TABLE ||
            k->offset > s->values_size || s->values_size - k->offset < field_size(k->type))
            return false;
        if ((k->type == QPC_CONFIG_ENUM && (k->choices == NULL || k->choices[0] == NULL)) ||
            (k->type == QPC_CONFIG_INT && k->min > k->max))
            return false;
        /* the stored "auto" must not be a number the key also takes */
        if ((k->flags & QPC_CONFIG_AUTO) &&
            (k->type != QPC_CONFIG_INT || k->min <= QPC_CONFIG_AUTO_VALUE))
            return false;
        if (k->type == QPC_CONFIG_TABLE &&
            (k->table == NULL || k->table->noun == NULL || k->table->nouns == NULL ||
             k->table->short_noun == NULL || k->table->name_word == NULL ||
             k->table->example == NULL))
            return false;
        if ((k->flags & QPC_CONFIG_NOT_BUILT) && s->not_built == NULL)
            return false;
        for (size_t j = 0; j < i; j++)
            if (strcmp(s->keys[j].name, k->name) == 0)
                return false;
    }
    return true;
}

int qpc_config_new(struct qpc_config **out, const struct qpc_config_schema *schema)
{
    struct qpc_config *cfg;
    int rc = 0;
    *out = NULL;
    if (!schema_ok(schema))
        return QPC_ERR_INVALID;
    if ((cfg = calloc(1, sizeof(*cfg))) == NULL)
        return QPC_ERR_NOMEM;
    cfg->schema = schema;
    cfg->keys = schema->keys;
    cfg->nkeys = schema->key_count;
    cfg->values = calloc(1, schema->values_size);
    cfg->state = calloc(cfg->nkeys, sizeof(*cfg->state));
    if (cfg->values == NULL || cfg->state == NULL)
        rc = QPC_ERR_NOMEM;
    struct origin o = { .source = QPC_CONFIG_SOURCE_DEFAULT };
    for (size_t i = 0; i < cfg->nkeys && rc == 0; i++) {
        struct tval v;
        char err[160];
        rc = value_from_text(&cfg->keys[i], cfg->keys[i].def, &v, &o, err, sizeof(err));
        if (rc == 0)
            rc = assign(cfg, i, &v, &o, err, sizeof(err));
        else
            tval_free(&v);
    }
    if (rc < 0) {
        qpc_config_free(cfg);
        return rc == QPC_ERR_NOMEM ? rc : QPC_ERR_INVALID;   /* a bad default is a bug */
    }
    *out = cfg;
    return 0;
}

void qpc_config_free(struct qpc_config *cfg)
{
    if (cfg == NULL)
        return;
    if (cfg->values != NULL)
        for (size_t i = 0; i < cfg->nkeys; i++)
            slot_free(cfg, &cfg->keys[i]);
    for (size_t i = 0; i < cfg->nfiles; i++)
        free(cfg->files[i]);
    free(cfg->files);
    free(cfg->values);
    free(cfg->state);
    free(cfg);
}

const struct qpc_config_schema *qpc_config_schema(const struct qpc_config *cfg)
{
    return cfg->schema;
}

const void *qpc_config_values(const struct qpc_config *cfg)
{
    return cfg->values;
}

const char *qpc_config_source_name(enum qpc_config_source source)
{
    switch (source) {
    case QPC_CONFIG_SOURCE_DEFAULT: return "default";
    case QPC_CONFIG_SOURCE_FILE: return "file";
    case QPC_CONFIG_SOURCE_ENV: return "env";
    case QPC_CONFIG_SOURCE_FLAG: return "flag";
    }
    return "?";
}

int qpc_config_source_of(const struct qpc_config *cfg, const char *key)
{
    int i = find_key(cfg, key);
    return i < 0 ? -1 : (int)cfg->state[i].source;
}

/* ------------------------------------------------------------ setters ---------- */

int qpc_config_set(struct qpc_config *cfg, const char *key, const char *text,
                   enum qpc_config_source source, char *err, size_t errlen)
{
    char name[MAX_KEY_BYTES + 1];
    /* The origin a caller means: "(set)" stands for a file, key for its variable. */
    struct origin o = { .source = source, .file = "(set)", .line = 0, .env = key };
    struct tval v;
    int idx, rc;
    if (key == NULL || text == NULL || source > QPC_CONFIG_SOURCE_FLAG)
        return fail(err, errlen, NULL, "qpc_config_set: missing key or value");
    if (source == QPC_CONFIG_SOURCE_FLAG && strncmp(key, "--", 2) == 0)
        key += 2;
    if (strlen(key) > MAX_KEY_BYTES)
        return fail(err, errlen, &o, "option name longer than %d bytes", MAX_KEY_BYTES);
    strcpy(name, key);
    if (source == QPC_CONFIG_SOURCE_FLAG)
        for (char *c = name; *c; c++)
            if (*c == '-')
                *c = '_';
    idx = find_key(cfg, name);
    if (idx < 0) {
        const struct qpc_config_key *near = nearest_key(cfg, name, false);
        const struct qpc_config_key *near_t = nearest_key(cfg, name, true);
        if (near == NULL || (near_t != NULL && edit_distance(name, near_t->name) <
                                               edit_distance(name, near->name)))
            near = near_t;
        char hint[128];
        suggestion(hint, sizeof(hint), name, near->name,
                   source == QPC_CONFIG_SOURCE_FLAG ? near->flag : near->name, "'", "'");
        return fail(err, errlen, &o, "unknown %s '%s'; %s",
                    source == QPC_CONFIG_SOURCE_FLAG ? "option" : "key", key, hint);
    }
    if (cfg->keys[idx].env != NULL)
        o.env = cfg->keys[idx].env;
    if (cfg->keys[idx].flags & QPC_CONFIG_NOT_BUILT)
        return not_built(cfg, &cfg->keys[idx], &o, err, errlen);
    rc = value_from_text(&cfg->keys[idx], text, &v, &o, err, errlen);
    if (rc < 0) {
        tval_free(&v);
        return rc;
    }
    return assign(cfg, (size_t)idx, &v, &o, err, errlen);
}

int qpc_config_set_computed(struct qpc_config *cfg, const char *key, const char *text,
                            char *err, size_t errlen)
{
    struct origin o = { .source = QPC_CONFIG_SOURCE_DEFAULT };
    struct tval v = { .kind = V_STR };
    int idx = key != NULL && text != NULL ? find_key(cfg, key) : -1, rc;
    if (idx < 0 || kind_of(cfg->keys[idx].type) != V_STR)
        return QPC_ERR_INVALID;
    if ((v.s = strdup(text)) == NULL)
        return nomem(err, errlen);
    rc = check_value(&cfg->keys[idx], &v, &o, err, errlen);
    if (rc == 0) {
        slot_free(cfg, &cfg->keys[idx]);
        store(cfg, &cfg->keys[idx], &v);
    }
    tval_free(&v);
    return rc;
}

static const char *env_lookup(const char *const *envp, const char *name)
{
    size_t n = strlen(name);
    if (envp == NULL)
        return getenv(name);
    for (; *envp != NULL; envp++)
        if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
            return *envp + n + 1;
    return NULL;
}

int qpc_config_load_env(struct qpc_config *cfg, const char *const *envp, char *err,
                        size_t errlen)
{
    for (size_t i = 0; i < cfg->nkeys; i++) {
        const struct qpc_config_key *k = &cfg->keys[i];
        const char *text = k->env ? env_lookup(envp, k->env) : NULL;
        struct origin o = { .source = QPC_CONFIG_SOURCE_ENV, .env = k->env };
        struct tval v;
        int rc;
        if (text == NULL)
            continue;
        if (k->flags & QPC_CONFIG_NOT_BUILT)
            return not_built(cfg, k, &o, err, errlen);
        rc = value_from_text(k, text, &v, &o, err, errlen);
        if (rc == 0)
            rc = assign(cfg, i, &v, &o, err, errlen);
        else
            tval_free(&v);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ------------------------------------------------------------ files ---------- */

/* What one qpc_config_load_buffer call tracks while the TOML reader walks the file. */
struct loader {
    struct qpc_config *cfg;
    const char *file;        /* the remembered name, for origins */
    int *seen_line;          /* per key: line where it was set in this file; 0 = not */
    int table;               /* key index of the open [table], or -1 */
    struct origin table_origin;
    struct qpc_config_table entries;   /* of the open table, applied when it closes */
};

static struct origin file_origin(const struct loader *ld, int line)
{
    return (struct origin){ .source = QPC_CONFIG_SOURCE_FILE, .file = ld->file, .line = line };
}

/* Applies the collected entries of the open table, if any. */
static int close_table(struct loader *ld, char *err, size_t errlen)
{
    struct tval v = { .kind = V_TABLE };
    if (ld->table < 0)
        return 0;
    v.table = ld->entries;
    memset(&ld->entries, 0, sizeof(ld->entries));
    int idx = ld->table;
    ld->table = -1;
    return assign(ld->cfg, (size_t)idx, &v, &ld->table_origin, err, errlen);
}

static int on_table(void *ctx, const char *name, int line, char *err, size_t errlen)
{
    struct loader *ld = ctx;
    struct origin o = file_origin(ld, line);
    int rc, idx;
    if ((rc = close_table(ld, err, errlen)) < 0)
        return rc;
    idx = find_key(ld->cfg, name);
    if (idx < 0) {
        const struct qpc_config_key *near = nearest_key(ld->cfg, name, true);
        char hint[128];
        if (near != NULL)
            suggestion(hint, sizeof(hint), name, near->name, near->name, "[", "]");
        return near ? fail(err, errlen, &o, "unknown table [%s]; %s", name, hint)
                    : fail(err, errlen, &o, "unknown table [%s]; this file has no tables", name);
    }
    if (ld->cfg->keys[idx].flags & QPC_CONFIG_NOT_BUILT)
        return not_built(ld->cfg, &ld->cfg->keys[idx], &o, err, errlen);
    if (ld->cfg->keys[idx].type != QPC_CONFIG_TABLE)
        return fail(err, errlen, &o, "'%s' is a key, not a table: write %s = ... above the "
                    "first [table]", name, name);
    if (ld->seen_line[idx] != 0)
        return fail(err, errlen, &o, "table [%s] appears twice (first on line %d)", name,
                    ld->seen_line[idx]);
    ld->seen_line[idx] = line;
    ld->table = idx;
    ld->table_origin = o;
    return 0;
}

/* Top-level keys are checked before their value is read: an unknown key comes first. */
static int on_key(void *ctx, const char *table, const char *key, int line, char *err,
                  size_t errlen)
{
    struct loader *ld = ctx;
    struct origin o = file_origin(ld, line);
    const struct qpc_config_key *k;
    int idx;
    if (table != NULL)
        return 0;   /* an entry of the open table: checked with its value */
    idx = find_key(ld->cfg, key);
    if (idx < 0) {
        const struct qpc_config_key *near = nearest_key(ld->cfg, key, false);
        char hint[128];
        if (near == NULL)
            return fail(err, errlen, &o, "unknown key '%s'; this file has only tables", key);
        suggestion(hint, sizeof(hint), key, near->name, near->name, "'", "'");
        return fail(err, errlen, &o, "unknown key '%s'; %s", key, hint);
    }
    k = &ld->cfg->keys[idx];
    if (k->flags & QPC_CONFIG_NOT_BUILT)
        return not_built(ld->cfg, k, &o, err, errlen);
    if (k->type == QPC_CONFIG_TABLE)
        return fail(err, errlen, &o, "'%s' is a table: write a [%s] header, then one "
                    "%s = \"host:port\" line per %s", key, key, k->table->name_word,
                    k->table->short_noun);
    if (ld->seen_line[idx] != 0)
        return fail(err, errlen, &o, "duplicate key '%s' (first set on line %d)", key,
                    ld->seen_line[idx]);
    return 0;
}

/* Moves a value the reader made into a struct tval. */
static void tval_from_toml(struct tval *v, struct qpc_toml_value *t)
{
    memset(v, 0, sizeof(*v));
    switch (t->type) {
    case QPC_TOML_STRING: v->kind = V_STR; v->s = t->string; t->string = NULL; break;
    case QPC_TOML_INTEGER: v->kind = V_INT; v->i = t->integer; break;
    case QPC_TOML_BOOLEAN: v->kind = V_BOOL; v->b = t->boolean; break;
    case QPC_TOML_ARRAY:
        v->kind = V_LIST;
        v->list.items = t->items;
        v->list.count = t->count;
        t->items = NULL;
        t->count = 0;
        break;
    }
}

/* One `name = "host:port"` line inside the open table; o is where it ends. */
static int table_entry(struct loader *ld, char **name, struct tval *v, const struct origin *o,
                       char *err, size_t errlen)
{
    const struct qpc_config_key *k = &ld->cfg->keys[ld->table];
    const struct qpc_config_table_spec *t = k->table;
    if (v->kind != V_STR)
        return fail(err, errlen, o, "%s '%s' expects an address string like \"%s\", got %s",
                    t->noun, *name, t->example, kind_phrase(v->kind));
    if (find_key(ld->cfg, *name) >= 0)
        return fail(err, errlen, o, "'%s' is a top-level key but appears inside [%s]; move "
                    "it above the table header", *name, k->name);
    if (table_find(&ld->entries, *name) != NULL)
        return fail(err, errlen, o, "duplicate %s '%s'", t->noun, *name);
    if (ld->entries.count >= t->max_entries)
        return fail(err, errlen, o, "more than %zu %s", t->max_entries, t->nouns);
    int rc = check_entry(t, *name, v->s, o, err, errlen);
    if (rc < 0)
        return rc;
    if (table_push(&ld->entries, *name, v->s) < 0)
        return nomem(err, errlen);
    *name = NULL;   /* now owned by the table, as is the value */
    v->s = NULL;
    return 0;
}

static int on_value(void *ctx, const char *table, char **key, struct qpc_toml_value *t,
                    int line, int end_line, char *err, size_t errlen)
{
    struct loader *ld = ctx;
    struct tval v;
    int rc;
    tval_from_toml(&v, t);
    if (table != NULL) {
        struct origin o = file_origin(ld, end_line);
        rc = table_entry(ld, key, &v, &o, err, errlen);
        tval_free(&v);
        return rc;
    }
    int idx = find_key(ld->cfg, *key);   /* on_key made sure it is known */
    struct origin o = file_origin(ld, line);
    ld->seen_line[idx] = line;
    return assign(ld->cfg, (size_t)idx, &v, &o, err, errlen);
}

/* Keeps a copy of name for print(); returns it or NULL. */
static const char *remember_file(struct qpc_config *cfg, const char *name)
{
    char **n = realloc(cfg->files, (cfg->nfiles + 1) * sizeof(*n));
    if (n == NULL)
        return NULL;
    cfg->files = n;
    if ((n[cfg->nfiles] = strdup(name)) == NULL)
        return NULL;
    return n[cfg->nfiles++];
}

int qpc_config_load_buffer(struct qpc_config *cfg, const char *name, const char *buf,
                           size_t len, char *err, size_t errlen)
{
    static const struct qpc_toml_handler handler = { on_table, on_key, on_value };
    struct loader ld = { .cfg = cfg, .table = -1 };
    int rc;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if ((ld.seen_line = calloc(cfg->nkeys, sizeof(*ld.seen_line))) == NULL ||
        (ld.file = remember_file(cfg, name != NULL ? name : "(config)")) == NULL) {
        free(ld.seen_line);
        return nomem(err, errlen);
    }
    rc = qpc_toml_parse(ld.file, buf, len, &handler, &ld, err, errlen);
    if (rc == 0)
        rc = close_table(&ld, err, errlen);
    table_free(&ld.entries);
    free(ld.seen_line);
    return rc;
}

int qpc_config_load_file(struct qpc_config *cfg, const char *path, char *err, size_t errlen)
{
    FILE *f = NULL;
    char *buf = NULL;
    size_t len = 0;
    int rc = 0;
    if ((f = fopen(path, "rb")) == NULL) {
        int e = errno;
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "cannot open config file '%s': %s%s", path, strerror(e),
                     e == ENOENT ? " (create it, or name another file)" : "");
        return e == ENOENT ? QPC_ERR_NOT_FOUND : QPC_ERR_IO;
    }
    if ((buf = malloc(QPC_TOML_MAX_BYTES + 1)) == NULL) {
        rc = nomem(err, errlen);
        goto out;
    }
    len = fread(buf, 1, QPC_TOML_MAX_BYTES + 1, f);
    if (ferror(f)) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "cannot read config file '%s': %s", path, strerror(errno));
        rc = QPC_ERR_IO;
        goto out;
    }
    rc = qpc_config_load_buffer(cfg, path, buf, len, err, errlen);
out:
    free(buf);
    fclose(f);
    return rc;
}

/* ------------------------------------------------------------- output ---------- */

static void print_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", out);
        else if (c == '\t')
            fputs("\\t", out);
        else if (c < 0x20 || c == 0x7f)
            fprintf(out, "\\u%04X", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

static void print_origin(FILE *out, const struct qpc_config *cfg, size_t i)
{
    const struct qpc_config_key *k = &cfg->keys[i];
    const struct key_state *st = &cfg->state[i];
    switch (st->source) {
    case QPC_CONFIG_SOURCE_DEFAULT: fputs("  # default", out); break;
    case QPC_CONFIG_SOURCE_FILE: fprintf(out, "  # file %s:%d", st->file, st->line); break;
    case QPC_CONFIG_SOURCE_ENV: fprintf(out, "  # env %s", k->env); break;
    case QPC_CONFIG_SOURCE_FLAG: fprintf(out, "  # flag %s", k->flag); break;
    }
    fputc('\n', out);
}

int qpc_config_print(const struct qpc_config *cfg, FILE *out)
{
    fprintf(out, "# effective configuration of %s (precedence: flag > env > file > default)\n",
            cfg->schema->program);
    for (size_t i = 0; i < cfg->nkeys; i++) {
        const struct qpc_config_key *k = &cfg->keys[i];
        const void *p = (const char *)cfg->values + k->offset;
        if (k->type == QPC_CONFIG_TABLE || (k->flags & QPC_CONFIG_NOT_BUILT))
            continue;   /* tables go last: every key after a header belongs to it */
        fprintf(out, "%s = ", k->name);
        switch (k->type) {
        case QPC_CONFIG_STRING: case QPC_CONFIG_ADDR: case QPC_CONFIG_ENUM:
            print_string(out, *(char *const *)p);
            break;
        case QPC_CONFIG_INT:
            if ((k->flags & QPC_CONFIG_AUTO) && *(const int64_t *)p == QPC_CONFIG_AUTO_VALUE)
                fputs("\"auto\"", out);   /* a string: what the file reader takes back */
            else
                fprintf(out, "%lld", (long long)*(const int64_t *)p);
            break;
        case QPC_CONFIG_BOOL: fputs(*(const bool *)p ? "true" : "false", out); break;
        case QPC_CONFIG_LIST: {
            const struct qpc_config_strings *l = p;
            fputc('[', out);
            for (size_t j = 0; j < l->count; j++) {
                fputs(j ? ", " : "", out);
                print_string(out, l->items[j]);
            }
            fputc(']', out);
            break;
        }
        case QPC_CONFIG_TABLE: break;
        }
        print_origin(out, cfg, i);
    }
    for (size_t i = 0; i < cfg->nkeys; i++) {
        const struct qpc_config_table *t;
        if (cfg->keys[i].type != QPC_CONFIG_TABLE || (cfg->keys[i].flags & QPC_CONFIG_NOT_BUILT))
            continue;
        t = (const void *)((const char *)cfg->values + cfg->keys[i].offset);
        fprintf(out, "\n[%s]", cfg->keys[i].name);
        print_origin(out, cfg, i);
        for (size_t j = 0; j < t->count; j++) {
            print_string(out, t->items[j].name);
            fputs(" = ", out);
            print_string(out, t->items[j].value);
            fputc('\n', out);
        }
    }
    return ferror(out) ? QPC_ERR_IO : 0;
}

int qpc_config_print_help(const struct qpc_config_schema *schema, FILE *out)
{
    if (schema == NULL)
        return QPC_ERR_INVALID;
    for (size_t i = 0; i < schema->key_count; i++) {
        const struct qpc_config_key *k = &schema->keys[i];
        char opt[64], env[80] = "";
        if (k->flags & QPC_CONFIG_NOT_BUILT)
            continue;
        snprintf(opt, sizeof(opt), "%s=%s", k->flag, k->metavar);
        if (k->env != NULL)
            snprintf(env, sizeof(env), "env %s, ", k->env);
        bool quoted = kind_of(k->type) == V_STR;
        const char *def = k->def[0] == '\0' && !quoted ? "none" : k->def;
        fprintf(out, "  %-32s %s [%sdefault %s%s%s]\n", opt, k->help, env,
                quoted ? "\"" : "", def, quoted ? "\"" : "");
    }
    return ferror(out) ? QPC_ERR_IO : 0;
}
