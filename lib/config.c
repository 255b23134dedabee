/*
 * config.c: the settings of qpc-server and qpc: schema, layering and a strict reader
 * for the small TOML subset the config files use (docs/config.md).
 *
 * The one idea: a schema table row per key says its type, environment variable,
 * default (as text), range, help and where in the typed struct it lives. Every value,
 * whatever its origin, becomes a `struct tval` and goes through assign(), which checks
 * it against the row and stores it unless a stronger source already set the key. The
 * defaults themselves are parsed from the table's text by the same code, so the
 * documentation, the --help text and the behaviour cannot drift apart.
 *
 * No C TOML library is packaged in Debian, so the reader below is hand-written: it
 * first checks that the whole buffer is UTF-8 without NUL bytes, then walks it once,
 * counting lines, and stops at the first problem with "NAME:LINE: what is wrong".
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
#include "qpc/envelope.h"
#include "qpc/error.h"
#include "qpc/toml.h"
#include "qpc/utf8.h"

#define MAX_KEYS 32
#define MAX_KEY_BYTES QPC_TOML_KEY_MAX
#define MAX_STRING_BYTES QPC_TOML_STRING_MAX
#define MAX_LIST_ITEMS QPC_TOML_ARRAY_MAX
#define MAX_PEERS 1024
#define TOKEN_SHOWN 40            /* bytes of a bad token quoted back in a message */

/* ------------------------------------------------------------------ schema ----- */

enum vtype {
    T_STRING,   /* any text */
    T_ADDR,     /* "host:port" or "[v6]:port" */
    T_ENUM,     /* one of spec->choices */
    T_INT,      /* int64 within [min, max] */
    T_BOOL,
    T_LIST,     /* array of strings */
    T_PEERS,    /* [table] of domain = "host:port" */
};

/* spec->flags */
#define F_EMPTY_OK  0x1u   /* T_ADDR, T_STRING(F_HOSTNAME): "" is allowed */
#define F_PORT0     0x2u   /* T_ADDR: port 0 (any) is allowed: a listening address */
#define F_HOSTNAME  0x4u   /* T_STRING: must be a DNS name */
#define F_IFNAME    0x8u   /* T_LIST: items are network interface names */

struct key_spec {
    const char *name;
    const char *flag;
    enum vtype type;
    const char *env;
    const char *def;              /* default, in the text syntax of qpc_config_set */
    size_t offset;                /* in the kind's typed struct */
    int64_t min, max;             /* T_INT */
    unsigned flags;
    const char *const *choices;   /* T_ENUM, NULL-terminated */
    const char *metavar;
    const char *help;
};

static const char *const log_levels[] = { "error", "warn", "info", "debug", NULL };

#define SV(field) offsetof(struct qpc_server_config, field)
#define CV(field) offsetof(struct qpc_client_config, field)
#define MIB (INT64_C(1024) * 1024)

static const struct key_spec server_keys[] = {
    { "listen", "--listen", T_ADDR, "QPC_LISTEN", "0.0.0.0:7000", SV(listen), 0, 0, F_PORT0,
      NULL, "HOST:PORT", "address for client QUIC connections (host:port or [v6]:port)" },
    { "data_dir", "--data-dir", T_STRING, "QPC_DATA_DIR", "", SV(data_dir), 0, 0, 0, NULL,
      "DIR", "where queues and the identity live; \"\" = $HOME/.local/share/quicprochat/server" },
    { "log_level", "--log-level", T_ENUM, "QPC_LOG_LEVEL", "info", SV(log_level), 0, 0, 0,
      log_levels, "LEVEL", "error, warn, info or debug" },
    { "mdns_enabled", "--mdns-enabled", T_BOOL, "QPC_MDNS_ENABLED", "true", SV(mdns_enabled),
      0, 0, 0, NULL, "BOOL", "announce _quicprochat._udp.local. on the local network" },
    { "mdns_interfaces", "--mdns-interfaces", T_LIST, "QPC_MDNS_INTERFACES", "",
      SV(mdns_interfaces), 0, 0, F_IFNAME, NULL, "IF,...",
      "interfaces mDNS uses; empty = all" },
    { "federation_enabled", "--federation-enabled", T_BOOL, "QPC_FEDERATION_ENABLED", "false",
      SV(federation_enabled), 0, 0, 0, NULL, "BOOL", "relay messages to and from other nodes" },
    { "federation_domain", "--federation-domain", T_STRING, "QPC_LOCAL_DOMAIN", "",
      SV(federation_domain), 0, 0, F_HOSTNAME | F_EMPTY_OK, NULL, "DOMAIN",
      "this node's domain; \"\" = <hostname>.mesh.local" },
    { "federation_listen", "--federation-listen", T_ADDR, "QPC_FEDERATION_LISTEN",
      "0.0.0.0:7001", SV(federation_listen), 0, 0, F_PORT0, NULL, "HOST:PORT",
      "address for federation (mTLS) connections" },
    { "federation_cert", "--federation-cert", T_STRING, "QPC_FEDERATION_CERT", "",
      SV(federation_cert), 0, 0, 0, NULL, "FILE", "this node's federation certificate (DER)" },
    { "federation_key", "--federation-key", T_STRING, "QPC_FEDERATION_KEY", "",
      SV(federation_key), 0, 0, 0, NULL, "FILE", "private key of federation_cert (DER)" },
    { "federation_ca", "--federation-ca", T_STRING, "QPC_FEDERATION_CA", "", SV(federation_ca),
      0, 0, 0, NULL, "FILE", "CA certificate that signs every federation peer (DER)" },
    { "federation_peers", "--federation-peers", T_PEERS, "QPC_FEDERATION_PEERS", "",
      SV(federation_peers), 0, 0, 0, NULL, "DOM=HOST:PORT,...",
      "known nodes: [federation_peers] table of domain = \"host:port\"" },
    { "metrics_listen", "--metrics-listen", T_ADDR, "QPC_METRICS_LISTEN", "127.0.0.1:9464",
      SV(metrics_listen), 0, 0, F_EMPTY_OK | F_PORT0, NULL, "HOST:PORT",
      "Prometheus metrics endpoint; \"\" disables it" },
    { "max_frame_size", "--max-frame-size", T_INT, "QPC_MAX_FRAME_SIZE", "1048576",
      SV(max_frame_size), 4096, 64 * MIB, 0, NULL, "BYTES", "largest stream frame accepted" },
    { "max_envelope_size", "--max-envelope-size", T_INT, "QPC_MAX_ENVELOPE_SIZE", "262144",
      SV(max_envelope_size), 1024, 64 * MIB, 0, NULL, "BYTES", "largest envelope accepted" },
    { "queue_quota", "--queue-quota", T_INT, "QPC_QUEUE_QUOTA", "10000", SV(queue_quota), 1,
      10000000, 0, NULL, "N", "messages held per recipient" },
    { "queue_max_bytes", "--queue-max-bytes", T_INT, "QPC_QUEUE_MAX_BYTES", "268435456",
      SV(queue_max_bytes), MIB, 1024 * 1024 * MIB, 0, NULL, "BYTES",
      "bytes held over all queues" },
    { "default_ttl", "--default-ttl", T_INT, "QPC_DEFAULT_TTL", "86400", SV(default_ttl), 1,
      QPC_TTL_MAX_S, 0, NULL, "SECONDS", "TTL of messages that do not carry one" },
    { "max_ttl", "--max-ttl", T_INT, "QPC_MAX_TTL", "604800", SV(max_ttl), 1, QPC_TTL_MAX_S, 0,
      NULL, "SECONDS", "longest TTL a message may ask for" },
    { "relay_enabled", "--relay-enabled", T_BOOL, "QPC_RELAY_ENABLED", "true",
      SV(relay_enabled), 0, 0, 0, NULL, "BOOL", "relay QUIC packets for peers that cannot meet" },
    { "relay_rate_limit", "--relay-rate-limit", T_INT, "QPC_RELAY_RATE_LIMIT", "2000",
      SV(relay_rate_limit), 1, 10000000, 0, NULL, "PPS", "relayed packets/s per client" },
    { "idle_timeout_ms", "--idle-timeout-ms", T_INT, "QPC_IDLE_TIMEOUT_MS", "30000",
      SV(idle_timeout_ms), 1000, 3600000, 0, NULL, "MS", "QUIC idle timeout" },
};

static const struct key_spec client_keys[] = {
    { "data_dir", "--data-dir", T_STRING, "QPC_CLIENT_DATA_DIR", "", CV(data_dir), 0, 0, 0,
      NULL, "DIR", "identity, peers and store; \"\" = $HOME/.local/share/quicprochat" },
    { "listen", "--listen", T_ADDR, "QPC_CLIENT_LISTEN", "0.0.0.0:0", CV(listen), 0, 0, F_PORT0,
      NULL, "HOST:PORT", "local address for P2P QUIC; port 0 = any" },
    { "server", "--server", T_ADDR, "QPC_SERVER", "", CV(server), 0, 0, F_EMPTY_OK, NULL,
      "HOST:PORT", "node to use; \"\" = none (find one with /mesh peers)" },
    { "mdns_enabled", "--mdns-enabled", T_BOOL, "QPC_CLIENT_MDNS_ENABLED", "true",
      CV(mdns_enabled), 0, 0, 0, NULL, "BOOL", "browse for nodes with mDNS" },
    { "mdns_interfaces", "--mdns-interfaces", T_LIST, "QPC_CLIENT_MDNS_INTERFACES", "",
      CV(mdns_interfaces), 0, 0, F_IFNAME, NULL, "IF,...", "interfaces mDNS uses; empty = all" },
    { "store_per_recipient", "--store-per-recipient", T_INT, "QPC_CLIENT_STORE_PER_RECIPIENT",
      "1000", CV(store_per_recipient), 1, 1000000, 0, NULL, "N",
      "messages held per unreachable peer" },
    { "store_max_bytes", "--store-max-bytes", T_INT, "QPC_CLIENT_STORE_MAX_BYTES", "67108864",
      CV(store_max_bytes), MIB, 1024 * 1024 * MIB, 0, NULL, "BYTES", "bytes held in the store" },
    { "default_ttl", "--default-ttl", T_INT, "QPC_CLIENT_DEFAULT_TTL", "86400", CV(default_ttl),
      1, QPC_TTL_MAX_S, 0, NULL, "SECONDS", "TTL of messages sent" },
    { "max_hops", "--max-hops", T_INT, "QPC_CLIENT_MAX_HOPS", "8", CV(max_hops), 1, 255, 0,
      NULL, "N", "hops a message sent may travel" },
    { "direct_timeout_ms", "--direct-timeout-ms", T_INT, "QPC_CLIENT_DIRECT_TIMEOUT_MS", "3000",
      CV(direct_timeout_ms), 100, 600000, 0, NULL, "MS",
      "time for a direct P2P attempt before relay or store" },
    { "log_level", "--log-level", T_ENUM, "QPC_CLIENT_LOG_LEVEL", "warn", CV(log_level), 0, 0, 0,
      log_levels, "LEVEL", "error, warn, info or debug" },
};

#define NKEYS(a) (sizeof(a) / sizeof((a)[0]))
_Static_assert(NKEYS(server_keys) <= MAX_KEYS, "raise MAX_KEYS");
_Static_assert(NKEYS(client_keys) <= MAX_KEYS, "raise MAX_KEYS");

struct qpc_config {
    enum qpc_config_kind kind;
    const struct key_spec *keys;
    size_t nkeys;
    union {
        struct qpc_server_config server;
        struct qpc_client_config client;
    } v;
    enum qpc_config_source source[MAX_KEYS];
    const char *file[MAX_KEYS];   /* points into files[] when source is FILE */
    int line[MAX_KEYS];
    char **files;                 /* names of the files loaded, owned */
    size_t nfiles;
};

/* ------------------------------------------------------------ values ----------- */

enum tkind { V_STR, V_INT, V_BOOL, V_LIST, V_PEERS };

/* A value on its way into the config; owns what it points to until assign() takes it. */
struct tval {
    enum tkind kind;
    char *s;
    int64_t i;
    bool b;
    struct qpc_config_strings list;
    struct qpc_config_peers peers;
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

static void peers_free(struct qpc_config_peers *p)
{
    for (size_t i = 0; i < p->count; i++) {
        free(p->items[i].domain);
        free(p->items[i].addr);
    }
    free(p->items);
    p->items = NULL;
    p->count = 0;
}

static void tval_free(struct tval *v)
{
    free(v->s);
    strings_free(&v->list);
    peers_free(&v->peers);
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

static int peers_push(struct qpc_config_peers *p, char *domain, char *addr)
{
    struct qpc_config_peer *n = realloc(p->items, (p->count + 1) * sizeof(*n));
    if (n == NULL)
        return QPC_ERR_NOMEM;
    p->items = n;
    p->items[p->count].domain = domain;
    p->items[p->count].addr = addr;
    p->count++;
    return 0;
}

static const struct qpc_config_peer *peers_find(const struct qpc_config_peers *p,
                                                const char *domain)
{
    for (size_t i = 0; i < p->count; i++)
        if (strcasecmp(p->items[i].domain, domain) == 0)
            return &p->items[i];
    return NULL;
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
static const char *key_label(const struct key_spec *k, const struct origin *o)
{
    return o->source == QPC_CONFIG_SOURCE_FLAG ? k->flag : k->name;
}

static const char *type_phrase(const struct key_spec *k)
{
    switch (k->type) {
    case T_STRING: return "a string in double quotes";
    case T_ADDR: return "an address string like \"0.0.0.0:7000\" or \"[::1]:7000\"";
    case T_ENUM: return "a string (\"error\", \"warn\", \"info\" or \"debug\")";
    case T_INT: return "an integer";
    case T_BOOL: return "a boolean (true or false)";
    case T_LIST: return "an array of strings like [\"eth0\", \"wlan0\"]";
    case T_PEERS: return "a table";
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
    case V_PEERS: return "a table";
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

/* The known key (of the wanted table-ness) nearest to typed. */
static const struct key_spec *nearest_key(const struct qpc_config *cfg, const char *typed,
                                          bool tables)
{
    const struct key_spec *best = NULL;
    size_t best_d = SIZE_MAX;
    for (size_t i = 0; i < cfg->nkeys; i++) {
        if ((cfg->keys[i].type == T_PEERS) != tables)
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

/* ------------------------------------------------------ value checks ---------- */

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

/* Checks one peer entry; o says where it came from. */
static int check_peer(const char *domain, const char *addr, const struct origin *o,
                      char *err, size_t errlen)
{
    char host[256];
    uint16_t port;
    const char *why = qpc_addr_check_name(domain);
    if (why != NULL)
        return fail(err, errlen, o, "federation peer '%.*s' is not a domain name: %s",
                    TOKEN_SHOWN, domain, why);
    why = qpc_addr_check(addr, host, sizeof(host), &port);
    if (why == NULL && port == 0)
        why = "port 0 cannot be dialled";
    if (why != NULL)
        return fail(err, errlen, o, "federation peer '%s' has address \"%.*s\": %s",
                    domain, TOKEN_SHOWN, addr, why);
    return 0;
}

/* Checks v against key k. Types must match; ranges and formats are checked here. */
static int check_value(const struct key_spec *k, const struct tval *v, const struct origin *o,
                       char *err, size_t errlen)
{
    const char *label = key_label(k, o);
    enum tkind want = k->type == T_INT ? V_INT : k->type == T_BOOL ? V_BOOL
                    : k->type == T_LIST ? V_LIST : k->type == T_PEERS ? V_PEERS : V_STR;
    if (v->kind != want)
        return fail(err, errlen, o, "'%s' expects %s, got %s", label, type_phrase(k),
                    kind_phrase(v->kind));
    switch (k->type) {
    case T_STRING:
        if ((k->flags & F_HOSTNAME) && !(v->s[0] == '\0' && (k->flags & F_EMPTY_OK))) {
            const char *why = qpc_addr_check_name(v->s);
            if (why != NULL)
                return fail(err, errlen, o, "'%s' = \"%.*s\" is not a domain name: %s", label,
                            TOKEN_SHOWN, v->s, why);
        }
        return 0;
    case T_ADDR: {
        char host[256];
        uint16_t port;
        const char *why;
        if (v->s[0] == '\0' && (k->flags & F_EMPTY_OK))
            return 0;
        why = qpc_addr_check(v->s, host, sizeof(host), &port);
        if (why == NULL && port == 0 && !(k->flags & F_PORT0))
            why = "port 0 cannot be dialled";
        if (why != NULL)
            return fail(err, errlen, o, "'%s' = \"%.*s\" is not a usable address: %s", label,
                        TOKEN_SHOWN, v->s, why);
        return 0;
    }
    case T_ENUM:
        for (const char *const *c = k->choices; *c != NULL; c++)
            if (strcmp(*c, v->s) == 0)
                return 0;
        return fail(err, errlen, o, "'%s' = \"%.*s\" is not allowed; use one of %s", label,
                    TOKEN_SHOWN, v->s, k->help);
    case T_INT:
        if (v->i < k->min || v->i > k->max)
            return fail(err, errlen, o,
                        "'%s' = %lld is out of range; use %lld to %lld (%s)", label,
                        (long long)v->i, (long long)k->min, (long long)k->max, k->metavar);
        return 0;
    case T_BOOL:
        return 0;
    case T_LIST:
        for (size_t i = 0; i < v->list.count; i++) {
            const char *why = (k->flags & F_IFNAME) ? ifname_problem(v->list.items[i]) : NULL;
            if (why != NULL)
                return fail(err, errlen, o, "'%s' item \"%.*s\": %s", label, TOKEN_SHOWN,
                            v->list.items[i], why);
        }
        return 0;
    case T_PEERS:
        for (size_t i = 0; i < v->peers.count; i++) {
            int rc = check_peer(v->peers.items[i].domain, v->peers.items[i].addr, o, err,
                                errlen);
            if (rc < 0)
                return rc;
        }
        return 0;
    }
    return QPC_ERR_INVALID;
}

/* ------------------------------------------------------------- storing --------- */

static void *slot(struct qpc_config *cfg, const struct key_spec *k)
{
    return (char *)&cfg->v + k->offset;
}

static void slot_free(struct qpc_config *cfg, const struct key_spec *k)
{
    void *p = slot(cfg, k);
    switch (k->type) {
    case T_STRING: case T_ADDR: case T_ENUM:
        free(*(char **)p);
        *(char **)p = NULL;
        break;
    case T_LIST: strings_free(p); break;
    case T_PEERS: peers_free(p); break;
    case T_INT: case T_BOOL: break;
    }
}

/*
 * Checks v for key number idx and stores it unless a stronger source set the key.
 * Always consumes v.
 */
static int assign(struct qpc_config *cfg, size_t idx, struct tval *v, const struct origin *o,
                  char *err, size_t errlen)
{
    const struct key_spec *k = &cfg->keys[idx];
    int rc = check_value(k, v, o, err, errlen);
    if (rc < 0 || o->source < cfg->source[idx])
        goto out;
    slot_free(cfg, k);
    void *p = slot(cfg, k);
    switch (k->type) {
    case T_STRING: case T_ADDR: case T_ENUM: *(char **)p = v->s; v->s = NULL; break;
    case T_INT: *(int64_t *)p = v->i; break;
    case T_BOOL: *(bool *)p = v->b; break;
    case T_LIST:
        *(struct qpc_config_strings *)p = v->list;
        memset(&v->list, 0, sizeof(v->list));
        break;
    case T_PEERS:
        *(struct qpc_config_peers *)p = v->peers;
        memset(&v->peers, 0, sizeof(v->peers));
        break;
    }
    cfg->source[idx] = o->source;
    cfg->file[idx] = o->source == QPC_CONFIG_SOURCE_FILE ? o->file : NULL;
    cfg->line[idx] = o->source == QPC_CONFIG_SOURCE_FILE ? o->line : 0;
out:
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

/* Splits comma-separated text into trimmed, non-empty items; peers split at '='. */
static int split_text(const struct key_spec *k, const char *text, struct tval *v,
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
        } else if (k->type == T_LIST) {
            rc = v->list.count >= MAX_LIST_ITEMS
                 ? fail(err, errlen, o, "'%s' has more than %d items", key_label(k, o),
                        MAX_LIST_ITEMS)
                 : strings_push(&v->list, item);
            if (rc < 0)
                free(item);
        } else {
            char *eq = strchr(item, '='), *domain = NULL, *addr = NULL;
            if (eq == NULL) {
                rc = fail(err, errlen, o, "'%s' item \"%.*s\" needs the form domain=host:port",
                          key_label(k, o), TOKEN_SHOWN, item);
            } else if (v->peers.count >= MAX_PEERS) {
                rc = fail(err, errlen, o, "more than %d federation peers", MAX_PEERS);
            } else {
                domain = dup_trimmed(item, (size_t)(eq - item));
                addr = dup_trimmed(eq + 1, strlen(eq + 1));
                if (domain == NULL || addr == NULL)
                    rc = nomem(err, errlen);
                else if (peers_find(&v->peers, domain) != NULL)
                    rc = fail(err, errlen, o, "federation peer '%s' is given twice", domain);
                else if ((rc = check_peer(domain, addr, o, err, errlen)) == 0)
                    rc = peers_push(&v->peers, domain, addr);
                if (rc < 0) {
                    free(domain);
                    free(addr);
                }
            }
            free(item);
        }
        if (rc < 0)
            return rc;
        p += len + (comma ? 1 : 0);
    }
    return 0;
}

/* Turns text in the env/flag syntax into a value for key k. */
static int value_from_text(const struct key_spec *k, const char *text, struct tval *v,
                           const struct origin *o, char *err, size_t errlen)
{
    const char *label = key_label(k, o);
    memset(v, 0, sizeof(*v));
    if (!qpc_utf8_valid(text, strlen(text)) || has_control(text))
        return fail(err, errlen, o, "'%s' holds control characters or invalid UTF-8", label);
    switch (k->type) {
    case T_STRING: case T_ADDR: case T_ENUM:
        if (strlen(text) > MAX_STRING_BYTES)
            return fail(err, errlen, o, "'%s' is longer than %d bytes", label, MAX_STRING_BYTES);
        v->kind = V_STR;
        return (v->s = strdup(text)) ? 0 : nomem(err, errlen);
    case T_INT: {
        int r = qpc_toml_parse_integer(text, strlen(text), &v->i);
        v->kind = V_INT;
        if (r == QPC_ERR_TOO_LARGE)
            return fail(err, errlen, o, "'%s' = %.*s does not fit in a 64-bit integer; use %lld to %lld",
                        label, TOKEN_SHOWN, text, (long long)k->min, (long long)k->max);
        if (r < 0)
            return fail(err, errlen, o, "'%s' expects a decimal integer (like %s), got \"%.*s\"",
                        label, k->def, TOKEN_SHOWN, text);
        return 0;
    }
    case T_BOOL:
        v->kind = V_BOOL;
        if (!strcasecmp(text, "true") || !strcmp(text, "1") || !strcasecmp(text, "yes"))
            v->b = true;
        else if (!strcasecmp(text, "false") || !strcmp(text, "0") || !strcasecmp(text, "no"))
            v->b = false;
        else
            return fail(err, errlen, o, "'%s' expects a boolean (true/false, 1/0, yes/no), got \"%.*s\"",
                        label, TOKEN_SHOWN, text);
        return 0;
    case T_LIST:
        v->kind = V_LIST;
        return split_text(k, text, v, o, err, errlen);
    case T_PEERS:
        v->kind = V_PEERS;
        return split_text(k, text, v, o, err, errlen);
    }
    return QPC_ERR_INVALID;
}

/* ------------------------------------------------------------ objects ---------- */

int qpc_config_new(struct qpc_config **out, enum qpc_config_kind kind)
{
    struct qpc_config *cfg;
    int rc = 0;
    *out = NULL;
    if (kind != QPC_CONFIG_SERVER && kind != QPC_CONFIG_CLIENT)
        return QPC_ERR_INVALID;
    if ((cfg = calloc(1, sizeof(*cfg))) == NULL)
        return QPC_ERR_NOMEM;
    cfg->kind = kind;
    cfg->keys = kind == QPC_CONFIG_SERVER ? server_keys : client_keys;
    cfg->nkeys = kind == QPC_CONFIG_SERVER ? NKEYS(server_keys) : NKEYS(client_keys);
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
    for (size_t i = 0; i < cfg->nkeys; i++)
        slot_free(cfg, &cfg->keys[i]);
    for (size_t i = 0; i < cfg->nfiles; i++)
        free(cfg->files[i]);
    free(cfg->files);
    free(cfg);
}

enum qpc_config_kind qpc_config_kind(const struct qpc_config *cfg)
{
    return cfg->kind;
}

const struct qpc_server_config *qpc_config_server(const struct qpc_config *cfg)
{
    return cfg->kind == QPC_CONFIG_SERVER ? &cfg->v.server : NULL;
}

const struct qpc_client_config *qpc_config_client(const struct qpc_config *cfg)
{
    return cfg->kind == QPC_CONFIG_CLIENT ? &cfg->v.client : NULL;
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
    return i < 0 ? -1 : (int)cfg->source[i];
}

/* ------------------------------------------------------------ setter ---------- */

int qpc_config_set(struct qpc_config *cfg, const char *key, const char *text,
                   enum qpc_config_source source, char *err, size_t errlen)
{
    char name[MAX_KEY_BYTES + 1];
    struct origin o = { .source = source, .file = "(set)", .line = 0 };
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
        const struct key_spec *near = nearest_key(cfg, name, false);
        const struct key_spec *near_t = nearest_key(cfg, name, true);
        if (near_t != NULL && edit_distance(name, near_t->name) < edit_distance(name, near->name))
            near = near_t;
        char hint[128];
        suggestion(hint, sizeof(hint), name, near->name,
                   source == QPC_CONFIG_SOURCE_FLAG ? near->flag : near->name, "'", "'");
        return fail(err, errlen, &o, "unknown %s '%s'; %s",
                    source == QPC_CONFIG_SOURCE_FLAG ? "option" : "key", key, hint);
    }
    rc = value_from_text(&cfg->keys[idx], text, &v, &o, err, errlen);
    if (rc < 0) {
        tval_free(&v);
        return rc;
    }
    return assign(cfg, (size_t)idx, &v, &o, err, errlen);
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
        const struct key_spec *k = &cfg->keys[i];
        const char *text = k->env ? env_lookup(envp, k->env) : NULL;
        struct origin o = { .source = QPC_CONFIG_SOURCE_ENV, .env = k->env };
        struct tval v;
        int rc;
        if (text == NULL)
            continue;
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
    int seen_line[MAX_KEYS]; /* line where a key or table was set in this file; 0 = not */
    int table;               /* key index of the open [table], or -1 */
    struct origin table_origin;
    struct qpc_config_peers table_peers;
};

static struct origin file_origin(const struct loader *ld, int line)
{
    return (struct origin){ .source = QPC_CONFIG_SOURCE_FILE, .file = ld->file, .line = line };
}

/* Applies the collected entries of the open table, if any. */
static int close_table(struct loader *ld, char *err, size_t errlen)
{
    struct tval v = { .kind = V_PEERS };
    if (ld->table < 0)
        return 0;
    v.peers = ld->table_peers;
    memset(&ld->table_peers, 0, sizeof(ld->table_peers));
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
        const struct key_spec *near = nearest_key(ld->cfg, name, true);
        char hint[128];
        if (near != NULL)
            suggestion(hint, sizeof(hint), name, near->name, near->name, "[", "]");
        return near ? fail(err, errlen, &o, "unknown table [%s]; %s", name, hint)
                    : fail(err, errlen, &o, "unknown table [%s]; this file has no tables", name);
    }
    if (ld->cfg->keys[idx].type != T_PEERS)
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
    int idx;
    if (table != NULL)
        return 0;
    idx = find_key(ld->cfg, key);
    if (idx < 0) {
        const struct key_spec *near = nearest_key(ld->cfg, key, false);
        char hint[128];
        suggestion(hint, sizeof(hint), key, near->name, near->name, "'", "'");
        return fail(err, errlen, &o, "unknown key '%s'; %s", key, hint);
    }
    if (ld->cfg->keys[idx].type == T_PEERS)
        return fail(err, errlen, &o, "'%s' is a table: write a [%s] header, then one "
                    "domain = \"host:port\" line per peer", key, key);
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

/* One "domain = "host:port"" line inside [federation_peers]; o is where it ends. */
static int table_entry(struct loader *ld, char **key, struct tval *v, const struct origin *o,
                       char *err, size_t errlen)
{
    if (v->kind != V_STR)
        return fail(err, errlen, o, "federation peer '%s' expects an address string like "
                    "\"10.0.0.2:7001\", got %s", *key, kind_phrase(v->kind));
    if (find_key(ld->cfg, *key) >= 0)
        return fail(err, errlen, o, "'%s' is a top-level key but appears inside [%s]; move "
                    "it above the table header", *key, ld->cfg->keys[ld->table].name);
    if (peers_find(&ld->table_peers, *key) != NULL)
        return fail(err, errlen, o, "duplicate federation peer '%s'", *key);
    if (ld->table_peers.count >= MAX_PEERS)
        return fail(err, errlen, o, "more than %d federation peers", MAX_PEERS);
    int rc = check_peer(*key, v->s, o, err, errlen);
    if (rc < 0)
        return rc;
    if (peers_push(&ld->table_peers, *key, v->s) < 0)
        return nomem(err, errlen);
    *key = NULL;   /* now owned by the table, as is the value */
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
    if ((ld.file = remember_file(cfg, name != NULL ? name : "(config)")) == NULL)
        return nomem(err, errlen);
    rc = qpc_toml_parse(ld.file, buf, len, &handler, &ld, err, errlen);
    if (rc == 0)
        rc = close_table(&ld, err, errlen);
    peers_free(&ld.table_peers);
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

/* ------------------------------------------------ resolve and validate -------- */

static int set_derived(struct qpc_config *cfg, const char *key, const char *a, const char *b,
                       char *err, size_t errlen)
{
    int idx = find_key(cfg, key);
    size_t n = strlen(a) + strlen(b) + 1;
    char *s = malloc(n);
    if (s == NULL)
        return nomem(err, errlen);
    snprintf(s, n, "%s%s", a, b);
    char **p = slot(cfg, &cfg->keys[idx]);
    free(*p);
    *p = s;
    return 0;
}

int qpc_config_resolve_paths(struct qpc_config *cfg, const char *home, const char *hostname,
                             char *err, size_t errlen)
{
    const struct key_spec *dk = &cfg->keys[find_key(cfg, "data_dir")];
    char **data_dir = slot(cfg, dk);
    int rc = 0;
    if ((*data_dir)[0] == '\0') {
        if (home == NULL || home[0] != '/')
            return fail(err, errlen, NULL, "data_dir is empty and HOME is not an absolute "
                        "path; set data_dir in the file or %s", dk->env);
        rc = set_derived(cfg, "data_dir", home, cfg->kind == QPC_CONFIG_SERVER
                         ? "/.local/share/quicprochat/server" : "/.local/share/quicprochat",
                         err, errlen);
    }
    if (rc == 0 && cfg->kind == QPC_CONFIG_SERVER && cfg->v.server.federation_domain[0] == '\0') {
        char label[64];
        size_t n = hostname ? strcspn(hostname, ".") : 0;
        if (n == 0 || n >= sizeof(label))
            return fail(err, errlen, NULL, "federation_domain is empty and the host name is "
                        "unknown; set federation_domain or QPC_LOCAL_DOMAIN");
        memcpy(label, hostname, n);
        label[n] = '\0';
        if (qpc_addr_check_name(label) != NULL)
            return fail(err, errlen, NULL, "the host name '%s' does not make a domain name; "
                        "set federation_domain or QPC_LOCAL_DOMAIN", label);
        rc = set_derived(cfg, "federation_domain", label, ".mesh.local", err, errlen);
    }
    return rc;
}

/* True when two listening addresses would claim the same UDP port. */
static bool addrs_clash(const char *a, const char *b)
{
    char ha[256], hb[256];
    uint16_t pa, pb;
    if (qpc_addr_check(a, ha, sizeof(ha), &pa) || qpc_addr_check(b, hb, sizeof(hb), &pb))
        return false;
    if (pa != pb || pa == 0)
        return false;
    bool wild_a = !strcmp(ha, "0.0.0.0") || !strcmp(ha, "::");
    bool wild_b = !strcmp(hb, "0.0.0.0") || !strcmp(hb, "::");
    return wild_a || wild_b || strcasecmp(ha, hb) == 0;
}

int qpc_config_validate(const struct qpc_config *cfg, char *err, size_t errlen)
{
    if (cfg->kind == QPC_CONFIG_CLIENT)
        return 0;   /* client keys are independent; every range is checked when set */
    const struct qpc_server_config *s = &cfg->v.server;
    if (s->default_ttl > s->max_ttl)
        return fail(err, errlen, NULL, "default_ttl (%lld s) is larger than max_ttl (%lld s); "
                    "lower default_ttl or raise max_ttl", (long long)s->default_ttl,
                    (long long)s->max_ttl);
    if (s->max_envelope_size > s->max_frame_size)
        return fail(err, errlen, NULL, "max_envelope_size (%lld) is larger than max_frame_size "
                    "(%lld), so no envelope that large could arrive; lower max_envelope_size or "
                    "raise max_frame_size", (long long)s->max_envelope_size,
                    (long long)s->max_frame_size);
    if (s->queue_max_bytes < s->max_envelope_size)
        return fail(err, errlen, NULL, "queue_max_bytes (%lld) is smaller than "
                    "max_envelope_size (%lld); raise queue_max_bytes",
                    (long long)s->queue_max_bytes, (long long)s->max_envelope_size);
    if (s->federation_enabled) {
        const char *missing = s->federation_cert[0] == '\0' ? "federation_cert (QPC_FEDERATION_CERT)"
                            : s->federation_key[0] == '\0' ? "federation_key (QPC_FEDERATION_KEY)"
                            : s->federation_ca[0] == '\0' ? "federation_ca (QPC_FEDERATION_CA)"
                            : NULL;
        if (missing != NULL)
            return fail(err, errlen, NULL, "federation_enabled is true but %s is empty; "
                        "federation uses mutual TLS and needs the cert, key and CA files "
                        "(DER), or set federation_enabled = false", missing);
        if (addrs_clash(s->listen, s->federation_listen))
            return fail(err, errlen, NULL, "listen (%s) and federation_listen (%s) use the "
                        "same port; give federation its own port (default 7001)", s->listen,
                        s->federation_listen);
    }
    return 0;
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
    const struct key_spec *k = &cfg->keys[i];
    switch (cfg->source[i]) {
    case QPC_CONFIG_SOURCE_DEFAULT: fputs("  # default", out); break;
    case QPC_CONFIG_SOURCE_FILE: fprintf(out, "  # file %s:%d", cfg->file[i], cfg->line[i]); break;
    case QPC_CONFIG_SOURCE_ENV: fprintf(out, "  # env %s", k->env); break;
    case QPC_CONFIG_SOURCE_FLAG: fprintf(out, "  # flag %s", k->flag); break;
    }
    fputc('\n', out);
}

int qpc_config_print(const struct qpc_config *cfg, FILE *out)
{
    size_t table = SIZE_MAX;
    fprintf(out, "# effective configuration of %s (precedence: flag > env > file > default)\n",
            cfg->kind == QPC_CONFIG_SERVER ? "qpc-server" : "qpc");
    for (size_t i = 0; i < cfg->nkeys; i++) {
        const struct key_spec *k = &cfg->keys[i];
        const void *p = (const char *)&cfg->v + k->offset;
        if (k->type == T_PEERS) {
            table = i;   /* tables go last: every key after a header belongs to it */
            continue;
        }
        fprintf(out, "%s = ", k->name);
        switch (k->type) {
        case T_STRING: case T_ADDR: case T_ENUM: print_string(out, *(char *const *)p); break;
        case T_INT: fprintf(out, "%lld", (long long)*(const int64_t *)p); break;
        case T_BOOL: fputs(*(const bool *)p ? "true" : "false", out); break;
        case T_LIST: {
            const struct qpc_config_strings *l = p;
            fputc('[', out);
            for (size_t j = 0; j < l->count; j++) {
                fputs(j ? ", " : "", out);
                print_string(out, l->items[j]);
            }
            fputc(']', out);
            break;
        }
        case T_PEERS: break;
        }
        print_origin(out, cfg, i);
    }
    if (table != SIZE_MAX) {
        const struct qpc_config_peers *peers =
            (const void *)((const char *)&cfg->v + cfg->keys[table].offset);
        fprintf(out, "\n[%s]", cfg->keys[table].name);
        print_origin(out, cfg, table);
        for (size_t j = 0; j < peers->count; j++) {
            print_string(out, peers->items[j].domain);
            fputs(" = ", out);
            print_string(out, peers->items[j].addr);
            fputc('\n', out);
        }
    }
    return ferror(out) ? QPC_ERR_IO : 0;
}

size_t qpc_config_key_count(enum qpc_config_kind kind)
{
    return kind == QPC_CONFIG_SERVER ? NKEYS(server_keys)
         : kind == QPC_CONFIG_CLIENT ? NKEYS(client_keys) : 0;
}

static const char *type_name(enum vtype t)
{
    static const char *const names[] = {
        [T_STRING] = "string", [T_ADDR] = "address", [T_ENUM] = "string", [T_INT] = "integer",
        [T_BOOL] = "boolean", [T_LIST] = "list", [T_PEERS] = "table",
    };
    return names[t];
}

int qpc_config_key_at(enum qpc_config_kind kind, size_t i, struct qpc_config_key_info *info)
{
    const struct key_spec *k;
    if (i >= qpc_config_key_count(kind))
        return QPC_ERR_INVALID;
    k = kind == QPC_CONFIG_SERVER ? &server_keys[i] : &client_keys[i];
    *info = (struct qpc_config_key_info){ .name = k->name, .flag = k->flag, .env = k->env,
                                          .type = type_name(k->type), .default_text = k->def,
                                          .help = k->help };
    return 0;
}

int qpc_config_print_help(enum qpc_config_kind kind, FILE *out)
{
    size_t n = qpc_config_key_count(kind);
    for (size_t i = 0; i < n; i++) {
        const struct key_spec *k = kind == QPC_CONFIG_SERVER ? &server_keys[i] : &client_keys[i];
        char opt[64];
        snprintf(opt, sizeof(opt), "%s=%s", k->flag, k->metavar);
        bool quoted = k->type == T_STRING || k->type == T_ADDR || k->type == T_ENUM;
        const char *def = k->def[0] == '\0' && !quoted ? "none" : k->def;
        fprintf(out, "  %-32s %s [env %s, default %s%s%s]\n", opt, k->help, k->env,
                quoted ? "\"" : "", def, quoted ? "\"" : "");
    }
    return ferror(out) ? QPC_ERR_IO : 0;
}

const char *qpc_config_peer_addr(const struct qpc_server_config *sc, const char *domain)
{
    const struct qpc_config_peer *p = peers_find(&sc->federation_peers, domain);
    return p ? p->addr : NULL;
}
