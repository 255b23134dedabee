/*
 * identity.c: the mesh identity (Ed25519 keypair), the peer directory and key pins,
 * kept in one JSON file.
 *
 * The one idea: the file holds the only copy of a secret nobody can reissue, so it is
 * treated with suspicion both ways. Reading, it is untrusted input: size-capped, every
 * field type- and length-checked, the public key re-derived from the seed and compared.
 * Writing, it is never edited in place: a complete new file is written beside it,
 * fsync'd and renamed over it (fileio.c), so a crash leaves the old or the new file. And a
 * file we cannot read is reported, never replaced with a fresh identity.
 *
 * Peers live in a uthash keyed by public key, pins in one per kind keyed by lowercase
 * name. The public structs (struct qpc_peer, struct qpc_pin) are the first member of
 * the hash entries, so a pointer handed out is also the entry.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

/* uthash must report allocation failure instead of calling exit(). */
#define HASH_NONFATAL_OOM 1
#define uthash_nonfatal_oom(obj) (hash_oom = true)
#include "qpc/uthash_keyed.h"   /* peer keys are free to mint: keyed hash */

#include "qpc/addr.h"
#include "qpc/encoding.h"
#include "qpc/error.h"
#include "qpc/fileio.h"
#include "qpc/identity.h"
#include "qpc/utf8.h"

struct peer_entry {
    struct qpc_peer peer;   /* first: a struct qpc_peer * is a struct peer_entry * */
    UT_hash_handle hh;      /* keyed by peer.key */
};

struct pin_entry {
    struct qpc_pin pin;       /* first, as above */
    UT_hash_handle hh;        /* keyed by the lowercase pin.name */
};

struct qpc_identity {
    uint8_t secret_key[QPC_IDENTITY_SECRET_KEY_LEN]; /* seed || public key */
    uint8_t public_key[QPC_KEY_LEN];
    char peer_id[QPC_KEY_HEX_LEN];
    char *name;
    struct peer_entry *peers;
    struct pin_entry *pins[QPC_PIN_KINDS];
};

/*
 * How each kind of pin is kept in the file: its own array, named as the first kind
 * was (servers noted by address) so that files written before pins were generic read
 * and write the same.
 */
static const struct {
    const char *list;      /* top-level array */
    const char *member;    /* the name's member in each object */
    const char *what;      /* for "not a ..." messages */
} pin_json[QPC_PIN_KINDS] = {
    [QPC_PIN_ADDRESS] = { "servers", "address", "host:port" },
    [QPC_PIN_DOMAIN] = { "domains", "domain", "domain name" },
};

static const char *const source_names[] = {
    [QPC_PEER_SOURCE_MDNS] = "mdns",     [QPC_PEER_SOURCE_MANUAL] = "manual",
    [QPC_PEER_SOURCE_SERVER] = "server", [QPC_PEER_SOURCE_DIRECT] = "direct",
    [QPC_PEER_SOURCE_TOFU] = "tofu",     [QPC_PEER_SOURCE_RELAY] = "relay",
};
#define SOURCE_COUNT (sizeof(source_names) / sizeof(source_names[0]))

static const char *const kind_names[] = {
    [QPC_PEER_CLIENT] = "client",
    [QPC_PEER_SERVER] = "server",
};
#define KIND_COUNT (sizeof(kind_names) / sizeof(kind_names[0]))

/* Writes a message into the caller's optional error buffer. */
__attribute__((format(printf, 3, 4)))
static void set_err(char *errbuf, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (errbuf == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

const char *qpc_peer_source_name(enum qpc_peer_source source)
{
    return (unsigned)source < SOURCE_COUNT ? source_names[source] : "?";
}

const char *qpc_peer_kind_name(enum qpc_peer_kind kind)
{
    return (unsigned)kind < KIND_COUNT ? kind_names[kind] : "?";
}

/* Index of text in names[0..n), or -1. */
static int name_index(const char *const *names, size_t n, const char *text)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], text) == 0)
            return (int)i;
    return -1;
}

/* --- validation of untrusted text ----------------------------------------------- */

/*
 * A display name is shown in terminals next to ids, and names arrive from the network
 * (mDNS, servers), so besides being UTF-8 it may not hold control characters (C0, DEL,
 * C1) nor the bidirectional overrides that make one name look like another.
 */
static bool name_valid(const char *name)
{
    size_t len = strlen(name);

    if (len == 0 || len > QPC_IDENTITY_NAME_MAX)
        return false;
    for (size_t i = 0, n; i < len; i += n) {
        uint32_t cp;

        if ((n = qpc_utf8_decode(name + i, len - i, &cp)) == 0)
            return false;                                   /* overlong, out of range, surrogate */
        if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
            return false;                                   /* control characters */
        if ((cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069))
            return false;                                   /* bidi embeddings, overrides */
    }
    return true;
}

/* True when name may be the name of a pin of kind. */
static bool pin_name_valid(enum qpc_pin_kind kind, const char *name)
{
    switch (kind) {
    case QPC_PIN_ADDRESS: return qpc_addr_valid(name);
    case QPC_PIN_DOMAIN: return name != NULL && qpc_addr_check_name(name) == NULL;
    }
    return false;
}

/* A malloc'd lowercase copy of text if valid is true, else NULL with *rc set. */
static char *dup_lower(const char *text, bool valid, int *rc)
{
    char *copy;

    if (!valid) {
        *rc = QPC_ERR_INVALID;
        return NULL;
    }
    if ((copy = strdup(text)) == NULL) {
        *rc = QPC_ERR_NOMEM;
        return NULL;
    }
    for (char *p = copy; *p != '\0'; p++)
        *p = (char)tolower((unsigned char)*p);
    *rc = 0;
    return copy;
}

/* A malloc'd lowercase copy of a valid address, or NULL (invalid or no memory). */
static char *address_dup_lower(const char *address, int *rc)
{
    return dup_lower(address, qpc_addr_valid(address), rc);
}

/* --- life cycle ------------------------------------------------------------------ */

static void peer_entry_free(struct peer_entry *e)
{
    if (e == NULL)
        return;
    free(e->peer.name);
    for (size_t i = 0; i < e->peer.address_count; i++)
        free(e->peer.addresses[i]);
    free(e);
}

static void pin_entry_free(struct pin_entry *e)
{
    if (e == NULL)
        return;
    free(e->pin.name);
    free(e);
}

void qpc_identity_free(struct qpc_identity *id)
{
    struct peer_entry *p, *ptmp;
    struct pin_entry *s, *stmp;

    if (id == NULL)
        return;
    HASH_ITER(hh, id->peers, p, ptmp) {
        HASH_DEL(id->peers, p);
        peer_entry_free(p);
    }
    for (int k = 0; k < QPC_PIN_KINDS; k++) {
        HASH_ITER(hh, id->pins[k], s, stmp) {
            HASH_DEL(id->pins[k], s);
            pin_entry_free(s);
        }
    }
    free(id->name);
    sodium_memzero(id, sizeof(*id));
    free(id);
}

int qpc_identity_from_seed(const uint8_t seed[static QPC_IDENTITY_SEED_LEN],
                           struct qpc_identity **out)
{
    struct qpc_identity *id;

    *out = NULL;
    if (sodium_init() < 0)
        return QPC_ERR_CRYPTO;
    if ((id = calloc(1, sizeof(*id))) == NULL)
        return QPC_ERR_NOMEM;
    if (crypto_sign_seed_keypair(id->public_key, id->secret_key, seed) != 0) {
        qpc_identity_free(id);
        return QPC_ERR_CRYPTO;
    }
    qpc_key_to_hex(id->peer_id, id->public_key);
    *out = id;
    return 0;
}

int qpc_identity_generate(struct qpc_identity **out)
{
    uint8_t seed[QPC_IDENTITY_SEED_LEN];
    int rc;

    *out = NULL;
    if (sodium_init() < 0)
        return QPC_ERR_CRYPTO;
    randombytes_buf(seed, sizeof(seed));
    rc = qpc_identity_from_seed(seed, out);
    sodium_memzero(seed, sizeof(seed));
    return rc;
}

const uint8_t *qpc_identity_public_key(const struct qpc_identity *id)
{
    return id->public_key;
}

const uint8_t *qpc_identity_secret_key(const struct qpc_identity *id)
{
    return id->secret_key;
}

const char *qpc_identity_peer_id(const struct qpc_identity *id)
{
    return id->peer_id;
}

const char *qpc_identity_name(const struct qpc_identity *id)
{
    return id->name;
}

int qpc_identity_set_name(struct qpc_identity *id, const char *name)
{
    char *copy = NULL;

    if (name != NULL) {
        if (!name_valid(name))
            return QPC_ERR_INVALID;
        if ((copy = strdup(name)) == NULL)
            return QPC_ERR_NOMEM;
    }
    free(id->name);
    id->name = copy;
    return 0;
}

/* --- peer directory ------------------------------------------------------------- */

size_t qpc_identity_peer_count(const struct qpc_identity *id)
{
    return HASH_COUNT(id->peers);
}

const struct qpc_peer *qpc_identity_peer_next(const struct qpc_identity *id,
                                              const struct qpc_peer *prev)
{
    const struct peer_entry *e;

    if (prev == NULL)
        e = id->peers;
    else
        e = ((const struct peer_entry *)prev)->hh.next;
    return e != NULL ? &e->peer : NULL;
}

static struct peer_entry *peer_lookup(const struct qpc_identity *id, const uint8_t *key)
{
    struct peer_entry *e = NULL;

    HASH_FIND(hh, id->peers, key, QPC_KEY_LEN, e);
    return e;
}

const struct qpc_peer *qpc_identity_peer_get(const struct qpc_identity *id,
                                             const uint8_t key[static QPC_KEY_LEN])
{
    struct peer_entry *e = peer_lookup(id, key);

    return e != NULL ? &e->peer : NULL;
}

/* The unpinned peer seen longest ago: the one to evict when the directory is full. */
static struct peer_entry *peer_oldest_unpinned(struct qpc_identity *id)
{
    struct peer_entry *e, *tmp, *oldest = NULL;

    HASH_ITER(hh, id->peers, e, tmp) {
        if (!e->peer.pinned && (oldest == NULL || e->peer.last_seen_ms < oldest->peer.last_seen_ms))
            oldest = e;
    }
    return oldest;
}

/* Makes address (owned, lowercase) the newest of p's addresses; takes ownership. */
static void peer_add_address(struct qpc_peer *p, char *address)
{
    size_t i;

    for (i = 0; i < p->address_count; i++)
        if (strcmp(p->addresses[i], address) == 0)
            break;
    if (i < p->address_count) {             /* known: move it to the front */
        free(address);
        address = p->addresses[i];
    } else if (p->address_count == QPC_PEER_ADDRESSES_MAX) {
        i = p->address_count - 1;           /* full: the oldest goes */
        free(p->addresses[i]);
    } else {
        i = p->address_count++;
    }
    memmove(&p->addresses[1], &p->addresses[0], i * sizeof(p->addresses[0]));
    p->addresses[0] = address;
}

/* Adds a new, empty entry for key, evicting if the directory is full. */
static int peer_insert(struct qpc_identity *id, const uint8_t *key, struct peer_entry **out)
{
    struct peer_entry *e, *victim = NULL;
    bool hash_oom = false;

    if (HASH_COUNT(id->peers) >= QPC_PEERS_MAX &&
        (victim = peer_oldest_unpinned(id)) == NULL)
        return QPC_ERR_STORE_FULL;
    if ((e = calloc(1, sizeof(*e))) == NULL)
        return QPC_ERR_NOMEM;
    memcpy(e->peer.key, key, QPC_KEY_LEN);
    qpc_key_to_hex(e->peer.id, key);
    HASH_ADD(hh, id->peers, peer.key, QPC_KEY_LEN, e);
    if (hash_oom) {
        free(e);
        return QPC_ERR_NOMEM;
    }
    if (victim != NULL) {
        HASH_DEL(id->peers, victim);
        peer_entry_free(victim);
    }
    *out = e;
    return 0;
}

int qpc_identity_peer_upsert(struct qpc_identity *id, const uint8_t key[static QPC_KEY_LEN],
                             const char *name, const char *address, uint64_t now_ms,
                             enum qpc_peer_source source, enum qpc_peer_kind kind,
                             const struct qpc_peer **out)
{
    struct peer_entry *e;
    char *name_copy = NULL, *address_copy = NULL;
    int rc = 0;

    if (sodium_memcmp(key, id->public_key, QPC_KEY_LEN) == 0 ||
        (unsigned)source >= SOURCE_COUNT || (unsigned)kind >= KIND_COUNT ||
        (name != NULL && !name_valid(name)))
        return QPC_ERR_INVALID;
    /* Copy everything first, so a failure leaves the directory as it was. */
    if (address != NULL && (address_copy = address_dup_lower(address, &rc)) == NULL)
        goto out;
    if (name != NULL && (name_copy = strdup(name)) == NULL) {
        rc = QPC_ERR_NOMEM;
        goto out;
    }
    if ((e = peer_lookup(id, key)) == NULL && (rc = peer_insert(id, key, &e)) != 0)
        goto out;
    if (name_copy != NULL) {
        free(e->peer.name);
        e->peer.name = name_copy;
        name_copy = NULL;
    }
    if (address_copy != NULL) {
        peer_add_address(&e->peer, address_copy);
        address_copy = NULL;
    }
    if (now_ms > e->peer.last_seen_ms)
        e->peer.last_seen_ms = now_ms;
    e->peer.source = source;
    e->peer.kind = kind;
    if (out != NULL)
        *out = &e->peer;
out:
    free(name_copy);
    free(address_copy);
    return rc;
}

int qpc_identity_peer_set_pinned(struct qpc_identity *id, const uint8_t key[static QPC_KEY_LEN],
                                 bool pinned)
{
    struct peer_entry *e = peer_lookup(id, key);

    if (e == NULL)
        return QPC_ERR_NOT_FOUND;
    e->peer.pinned = pinned;
    return 0;
}

int qpc_identity_peer_set_name(struct qpc_identity *id, const uint8_t key[static QPC_KEY_LEN],
                               const char *name)
{
    struct peer_entry *e = peer_lookup(id, key);
    char *copy = NULL;

    if (e == NULL)
        return QPC_ERR_NOT_FOUND;
    if (name != NULL) {
        if (!name_valid(name))
            return QPC_ERR_INVALID;
        if ((copy = strdup(name)) == NULL)
            return QPC_ERR_NOMEM;
    }
    free(e->peer.name);
    e->peer.name = copy;
    return 0;
}

int qpc_identity_peer_remove(struct qpc_identity *id, const uint8_t key[static QPC_KEY_LEN])
{
    struct peer_entry *e = peer_lookup(id, key);

    if (e == NULL)
        return QPC_ERR_NOT_FOUND;
    HASH_DEL(id->peers, e);
    peer_entry_free(e);
    return 0;
}

int qpc_identity_peer_match(const struct qpc_identity *id, const char *prefix,
                            const struct qpc_peer **matches, size_t max, size_t *total)
{
    char lower[QPC_KEY_HEX_LEN];
    size_t len, n = 0;
    const struct peer_entry *e;

    *total = 0;
    if (prefix == NULL || (len = strlen(prefix)) == 0 || len > QPC_KEY_HEX_LEN - 1)
        return QPC_ERR_INVALID;
    for (size_t i = 0; i < len; i++) {
        if (!isxdigit((unsigned char)prefix[i]))
            return QPC_ERR_INVALID;
        lower[i] = (char)tolower((unsigned char)prefix[i]);
    }
    for (e = id->peers; e != NULL; e = e->hh.next) {
        if (memcmp(e->peer.id, lower, len) != 0)
            continue;
        if (n < max)
            matches[n] = &e->peer;
        n++;
    }
    *total = n;
    return 0;
}

/* Candidates listed in an "ambiguous prefix" message. */
#define AMBIGUOUS_LISTED 8

int qpc_identity_peer_find(const struct qpc_identity *id, const char *prefix,
                           const struct qpc_peer **out, char *errbuf, size_t errlen)
{
    const struct qpc_peer *found[AMBIGUOUS_LISTED];
    size_t total = 0, used, shown;
    int rc;

    *out = NULL;
    if ((rc = qpc_identity_peer_match(id, prefix, found, AMBIGUOUS_LISTED, &total)) != 0) {
        set_err(errbuf, errlen, "'%.80s' is not a peer id or prefix (hex digits only)",
                prefix != NULL ? prefix : "");
        return rc;
    }
    if (total == 1) {
        *out = found[0];
        return 0;
    }
    if (total == 0) {
        set_err(errbuf, errlen, "no peer id starts with '%s'", prefix);
        return QPC_ERR_NOT_FOUND;
    }
    if (errbuf != NULL && errlen > 0) {
        shown = total < AMBIGUOUS_LISTED ? total : AMBIGUOUS_LISTED;
        used = (size_t)snprintf(errbuf, errlen, "ambiguous prefix '%s' (%zu peers):", prefix, total);
        for (size_t i = 0; i < shown && used < errlen; i++) {
            const struct qpc_peer *p = found[i];
            used += (size_t)snprintf(errbuf + used, errlen - used, "%s %.16s...%s%s%s",
                                     i == 0 ? "" : ",", p->id, p->name ? " (" : "",
                                     p->name ? p->name : "", p->name ? ")" : "");
        }
        if (total > shown && used < errlen)
            snprintf(errbuf + used, errlen - used, " and %zu more", total - shown);
    }
    return QPC_ERR_AMBIGUOUS;
}

/* --- key pins ------------------------------------------------------------------------ */

size_t qpc_identity_pin_count(const struct qpc_identity *id, enum qpc_pin_kind kind)
{
    return (unsigned)kind < QPC_PIN_KINDS ? HASH_COUNT(id->pins[kind]) : 0;
}

const struct qpc_pin *qpc_identity_pin_next(const struct qpc_identity *id,
                                            enum qpc_pin_kind kind, const struct qpc_pin *prev)
{
    const struct pin_entry *e;

    if ((unsigned)kind >= QPC_PIN_KINDS)
        return NULL;
    if (prev == NULL)
        e = id->pins[kind];
    else
        e = ((const struct pin_entry *)prev)->hh.next;
    return e != NULL ? &e->pin : NULL;
}

/* The entry for name (any case), or NULL (also for an invalid name or kind). */
static struct pin_entry *pin_lookup(const struct qpc_identity *id, enum qpc_pin_kind kind,
                                    const char *name)
{
    char lower[QPC_ADDRESS_MAX + 1];   /* also holds any DNS name (253) */
    struct pin_entry *e = NULL;
    size_t len;

    if (!pin_name_valid(kind, name) || (len = strlen(name)) > QPC_ADDRESS_MAX)
        return NULL;
    for (size_t i = 0; i < len; i++)
        lower[i] = (char)tolower((unsigned char)name[i]);
    HASH_FIND(hh, id->pins[kind], lower, len, e);
    return e;
}

const struct qpc_pin *qpc_identity_pin_get(const struct qpc_identity *id,
                                           enum qpc_pin_kind kind, const char *name)
{
    struct pin_entry *e = pin_lookup(id, kind, name);

    return e != NULL ? &e->pin : NULL;
}

/* Finds or adds the entry for name. */
static int pin_note(struct qpc_identity *id, enum qpc_pin_kind kind, const char *name,
                    uint64_t now_ms, struct pin_entry **out)
{
    struct pin_entry *e;
    bool hash_oom = false;
    int rc = 0;

    if ((e = pin_lookup(id, kind, name)) != NULL)
        goto done;
    if (!pin_name_valid(kind, name))
        return QPC_ERR_INVALID;
    if (HASH_COUNT(id->pins[kind]) >= QPC_PINS_MAX)
        return QPC_ERR_STORE_FULL;
    if ((e = calloc(1, sizeof(*e))) == NULL)
        return QPC_ERR_NOMEM;
    if ((e->pin.name = dup_lower(name, true, &rc)) == NULL) {
        free(e);
        return rc;
    }
    e->pin.kind = kind;
    e->pin.noted_at_ms = now_ms;
    HASH_ADD_KEYPTR(hh, id->pins[kind], e->pin.name, strlen(e->pin.name), e);
    if (hash_oom) {
        pin_entry_free(e);
        return QPC_ERR_NOMEM;
    }
done:
    *out = e;
    return 0;
}

int qpc_identity_pin_note(struct qpc_identity *id, enum qpc_pin_kind kind, const char *name,
                          uint64_t now_ms, const struct qpc_pin **out)
{
    struct pin_entry *e;
    int rc = pin_note(id, kind, name, now_ms, &e);

    if (rc == 0 && out != NULL)
        *out = &e->pin;
    return rc;
}

int qpc_identity_pin_key(struct qpc_identity *id, enum qpc_pin_kind kind, const char *name,
                         const uint8_t key[static QPC_KEY_LEN], uint64_t now_ms)
{
    struct pin_entry *e;
    int rc;

    if ((rc = pin_note(id, kind, name, now_ms, &e)) != 0)
        return rc;
    if (e->pin.has_key)   /* like SSH: a changed host key is refused, never replaced */
        return memcmp(e->pin.key, key, QPC_KEY_LEN) == 0 ? 0 : QPC_ERR_REFUSED;
    memcpy(e->pin.key, key, QPC_KEY_LEN);
    e->pin.has_key = true;
    e->pin.pinned_at_ms = now_ms;
    return 0;
}

int qpc_identity_pin_lookup(const struct qpc_identity *id, enum qpc_pin_kind kind,
                            const char *name, uint8_t key[static QPC_KEY_LEN])
{
    struct pin_entry *e;

    if (!pin_name_valid(kind, name))
        return QPC_ERR_INVALID;
    if ((e = pin_lookup(id, kind, name)) == NULL || !e->pin.has_key)
        return QPC_ERR_NOT_FOUND;
    memcpy(key, e->pin.key, QPC_KEY_LEN);
    return 0;
}

int qpc_identity_pin_forget(struct qpc_identity *id, enum qpc_pin_kind kind, const char *name)
{
    struct pin_entry *e = pin_lookup(id, kind, name);

    if (e == NULL)
        return QPC_ERR_NOT_FOUND;
    HASH_DEL(id->pins[kind], e);
    pin_entry_free(e);
    return 0;
}

/* --- parsing the file (untrusted input) --------------------------------------------- */

/*
 * Field access with checks. `where` names the object for messages ("" for the top
 * level, "peers[3]." for a peer), so every error says which field is wrong.
 */
struct field_ctx {
    const char *where;
    char *errbuf;
    size_t errlen;
};

/* The member key of obj, or NULL when absent or JSON null; missing required is an error. */
static int get_member(const struct field_ctx *c, json_t *obj, const char *key, bool required,
                      json_t **out)
{
    json_t *v = json_object_get(obj, key);

    *out = NULL;
    if (v == NULL || json_is_null(v)) {
        if (!required)
            return 0;
        set_err(c->errbuf, c->errlen, "%s%s: missing", c->where, key);
        return QPC_ERR_CORRUPT;
    }
    *out = v;
    return 0;
}

static int get_string(const struct field_ctx *c, json_t *obj, const char *key, bool required,
                      const char **out)
{
    json_t *v;
    int rc;

    *out = NULL;
    if ((rc = get_member(c, obj, key, required, &v)) != 0 || v == NULL)
        return rc;
    if (!json_is_string(v)) {
        set_err(c->errbuf, c->errlen, "%s%s: not a string", c->where, key);
        return QPC_ERR_CORRUPT;
    }
    *out = json_string_value(v);
    return 0;
}

static int get_key(const struct field_ctx *c, json_t *obj, const char *key,
                   uint8_t out[static QPC_KEY_LEN])
{
    const char *hex;
    int rc;

    if ((rc = get_string(c, obj, key, true, &hex)) != 0)
        return rc;
    if (qpc_key_from_hex(out, hex) != 0) {
        set_err(c->errbuf, c->errlen, "%s%s: not %d hex characters", c->where, key,
                2 * QPC_KEY_LEN);
        return QPC_ERR_CORRUPT;
    }
    return 0;
}

static int get_ms(const struct field_ctx *c, json_t *obj, const char *key, bool required,
                  uint64_t *out)
{
    json_t *v;
    int rc;

    *out = 0;
    if ((rc = get_member(c, obj, key, required, &v)) != 0 || v == NULL)
        return rc;
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        set_err(c->errbuf, c->errlen, "%s%s: not a non-negative integer (milliseconds)",
                c->where, key);
        return QPC_ERR_CORRUPT;
    }
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int get_enum(const struct field_ctx *c, json_t *obj, const char *key,
                    const char *const *names, size_t n, int *out)
{
    const char *text;
    int rc;

    if ((rc = get_string(c, obj, key, true, &text)) != 0)
        return rc;
    if ((*out = name_index(names, n, text)) < 0) {
        set_err(c->errbuf, c->errlen, "%s%s: unknown value '%.32s'", c->where, key, text);
        return QPC_ERR_CORRUPT;
    }
    return 0;
}

static int get_name(const struct field_ctx *c, json_t *obj, char **out)
{
    const char *name;
    int rc;

    *out = NULL;
    if ((rc = get_string(c, obj, "name", false, &name)) != 0 || name == NULL)
        return rc;
    if (!name_valid(name)) {
        set_err(c->errbuf, c->errlen, "%sname: not 1..%d bytes of printable UTF-8", c->where,
                QPC_IDENTITY_NAME_MAX);
        return QPC_ERR_CORRUPT;
    }
    if ((*out = strdup(name)) == NULL)
        return QPC_ERR_NOMEM;
    return 0;
}

/* The optional "addresses" array of a peer: at most QPC_PEER_ADDRESSES_MAX, distinct. */
static int parse_addresses(const struct field_ctx *c, json_t *obj, struct qpc_peer *p)
{
    json_t *arr, *v;
    size_t i;
    int rc;

    if ((rc = get_member(c, obj, "addresses", false, &arr)) != 0 || arr == NULL)
        return rc;
    if (!json_is_array(arr) || json_array_size(arr) > QPC_PEER_ADDRESSES_MAX) {
        set_err(c->errbuf, c->errlen, "%saddresses: not an array of at most %d addresses",
                c->where, QPC_PEER_ADDRESSES_MAX);
        return QPC_ERR_CORRUPT;
    }
    json_array_foreach(arr, i, v) {
        char *address;

        if (!json_is_string(v) || (address = address_dup_lower(json_string_value(v), &rc)) == NULL) {
            if (rc == QPC_ERR_NOMEM)
                return rc;
            set_err(c->errbuf, c->errlen, "%saddresses[%zu]: not a host:port", c->where, i);
            return QPC_ERR_CORRUPT;
        }
        for (size_t k = 0; k < p->address_count; k++) {
            if (strcmp(p->addresses[k], address) == 0) {
                free(address);
                set_err(c->errbuf, c->errlen, "%saddresses[%zu]: duplicate", c->where, i);
                return QPC_ERR_CORRUPT;
            }
        }
        p->addresses[p->address_count++] = address;
    }
    return 0;
}

static int parse_peer(struct qpc_identity *id, json_t *obj, size_t index, const void *arg,
                      char *errbuf, size_t errlen)
{
    char where[32];
    struct field_ctx c = {where, errbuf, errlen};
    struct peer_entry *e;
    json_t *pinned;
    int source = 0, kind = 0;
    bool hash_oom = false;
    int rc;

    snprintf(where, sizeof(where), "peers[%zu].", index);
    if (!json_is_object(obj)) {
        set_err(errbuf, errlen, "peers[%zu]: not an object", index);
        return QPC_ERR_CORRUPT;
    }
    if ((e = calloc(1, sizeof(*e))) == NULL)
        return QPC_ERR_NOMEM;
    if ((rc = get_key(&c, obj, "id", e->peer.key)) != 0)
        goto fail;
    qpc_key_to_hex(e->peer.id, e->peer.key);
    if (memcmp(e->peer.key, id->public_key, QPC_KEY_LEN) == 0 || peer_lookup(id, e->peer.key)) {
        set_err(errbuf, errlen, "%sid: %s", where,
                peer_lookup(id, e->peer.key) ? "listed twice" : "is my own key");
        rc = QPC_ERR_CORRUPT;
        goto fail;
    }
    if ((rc = get_name(&c, obj, &e->peer.name)) != 0 ||
        (rc = parse_addresses(&c, obj, &e->peer)) != 0 ||
        (rc = get_ms(&c, obj, "last_seen", true, &e->peer.last_seen_ms)) != 0 ||
        (rc = get_enum(&c, obj, "source", source_names, SOURCE_COUNT, &source)) != 0 ||
        (rc = get_enum(&c, obj, "kind", kind_names, KIND_COUNT, &kind)) != 0 ||
        (rc = get_member(&c, obj, "pinned", false, &pinned)) != 0)
        goto fail;
    if (pinned != NULL && !json_is_boolean(pinned)) {
        set_err(errbuf, errlen, "%spinned: not true or false", where);
        rc = QPC_ERR_CORRUPT;
        goto fail;
    }
    e->peer.source = (enum qpc_peer_source)source;
    e->peer.kind = (enum qpc_peer_kind)kind;
    e->peer.pinned = pinned != NULL && json_is_true(pinned);
    HASH_ADD(hh, id->peers, peer.key, QPC_KEY_LEN, e);
    if (hash_oom) {
        rc = QPC_ERR_NOMEM;
        goto fail;
    }
    return 0;
fail:
    peer_entry_free(e);
    return rc;
}

static int parse_pin(struct qpc_identity *id, json_t *obj, size_t index, const void *arg,
                     char *errbuf, size_t errlen)
{
    enum qpc_pin_kind kind = *(const enum qpc_pin_kind *)arg;
    const char *list = pin_json[kind].list, *member = pin_json[kind].member;
    char where[32];
    struct field_ctx c = {where, errbuf, errlen};
    struct pin_entry *e;
    const char *name;
    json_t *key;
    uint64_t noted_at, pinned_at;
    int rc;

    snprintf(where, sizeof(where), "%s[%zu].", list, index);
    if (!json_is_object(obj)) {
        set_err(errbuf, errlen, "%s[%zu]: not an object", list, index);
        return QPC_ERR_CORRUPT;
    }
    if ((rc = get_string(&c, obj, member, true, &name)) != 0 ||
        (rc = get_ms(&c, obj, "noted_at", true, &noted_at)) != 0 ||
        (rc = get_member(&c, obj, "key", false, &key)) != 0 ||
        (rc = get_ms(&c, obj, "pinned_at", key != NULL, &pinned_at)) != 0)
        return rc;
    if (!pin_name_valid(kind, name)) {
        set_err(errbuf, errlen, "%s%s: not a %s", where, member, pin_json[kind].what);
        return QPC_ERR_CORRUPT;
    }
    if (pin_lookup(id, kind, name) != NULL) {
        set_err(errbuf, errlen, "%s%s: listed twice", where, member);
        return QPC_ERR_CORRUPT;
    }
    if ((rc = pin_note(id, kind, name, noted_at, &e)) != 0)
        return rc;
    if (key != NULL) {
        if ((rc = get_key(&c, obj, "key", e->pin.key)) != 0) {
            HASH_DEL(id->pins[kind], e);
            pin_entry_free(e);
            return rc;
        }
        e->pin.has_key = true;
        e->pin.pinned_at_ms = pinned_at;
    }
    return 0;
}

/* Parses the optional array `key` with parse_one(..., arg, ...) for each element, at most max. */
static int parse_list(struct qpc_identity *id, json_t *root, const char *key, size_t max,
                      int (*parse_one)(struct qpc_identity *, json_t *, size_t, const void *,
                                       char *, size_t),
                      const void *arg, char *errbuf, size_t errlen)
{
    struct field_ctx c = {"", errbuf, errlen};
    json_t *arr, *v;
    size_t i;
    int rc;

    if ((rc = get_member(&c, root, key, false, &arr)) != 0 || arr == NULL)
        return rc;
    if (!json_is_array(arr)) {
        set_err(errbuf, errlen, "%s: not an array", key);
        return QPC_ERR_CORRUPT;
    }
    if (json_array_size(arr) > max) {
        set_err(errbuf, errlen, "%s: more than %zu entries", key, max);
        return QPC_ERR_CORRUPT;
    }
    json_array_foreach(arr, i, v) {
        if ((rc = parse_one(id, v, i, arg, errbuf, errlen)) != 0)
            return rc;
    }
    return 0;
}

static void json_free_wiping_seed(json_t *root);

/* Checks the version, the seed and that public_key belongs to it; makes the identity. */
static int parse_keys(json_t *root, struct qpc_identity **out, char *errbuf, size_t errlen)
{
    struct field_ctx c = {"", errbuf, errlen};
    uint8_t seed[QPC_IDENTITY_SEED_LEN], stored_pk[QPC_KEY_LEN];
    json_t *version;
    int rc;

    if ((rc = get_member(&c, root, "version", true, &version)) != 0)
        return rc;
    if (!json_is_integer(version)) {
        set_err(errbuf, errlen, "version: not an integer");
        return QPC_ERR_CORRUPT;
    }
    if (json_integer_value(version) != QPC_IDENTITY_FILE_VERSION) {
        set_err(errbuf, errlen, "version %" JSON_INTEGER_FORMAT " is not supported (this "
                "program reads version %d)", json_integer_value(version),
                QPC_IDENTITY_FILE_VERSION);
        return QPC_ERR_VERSION;
    }
    if ((rc = get_key(&c, root, "secret_seed", seed)) != 0 ||
        (rc = get_key(&c, root, "public_key", stored_pk)) != 0)
        goto out;
    if ((rc = qpc_identity_from_seed(seed, out)) != 0)
        goto out;
    if (memcmp((*out)->public_key, stored_pk, QPC_KEY_LEN) != 0) {
        set_err(errbuf, errlen, "public_key does not belong to secret_seed");
        qpc_identity_free(*out);
        *out = NULL;
        rc = QPC_ERR_CORRUPT;
    }
out:
    /* jansson's copy of the hex seed is wiped by qpc_identity_parse on every path. */
    sodium_memzero(seed, sizeof(seed));
    return rc;
}

int qpc_identity_parse(const char *buf, size_t len, struct qpc_identity **out,
                       char *errbuf, size_t errlen)
{
    struct field_ctx c = {"", errbuf, errlen};
    struct qpc_identity *id = NULL;
    json_error_t jerr;
    json_t *root = NULL;
    char *name = NULL;
    int rc;

    *out = NULL;
    if (len > QPC_IDENTITY_FILE_MAX) {
        set_err(errbuf, errlen, "larger than %u bytes", QPC_IDENTITY_FILE_MAX);
        return QPC_ERR_TOO_LARGE;
    }
    if (sodium_init() < 0)
        return QPC_ERR_CRYPTO;
    if ((root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
        set_err(errbuf, errlen, "not valid JSON: %s (line %d, column %d)", jerr.text,
                jerr.line, jerr.column);
        return json_error_code(&jerr) == json_error_out_of_memory ? QPC_ERR_NOMEM
                                                                  : QPC_ERR_CORRUPT;
    }
    if (!json_is_object(root)) {
        set_err(errbuf, errlen, "not a JSON object");
        rc = QPC_ERR_CORRUPT;
        goto out;
    }
    if ((rc = parse_keys(root, &id, errbuf, errlen)) != 0 ||
        (rc = get_name(&c, root, &name)) != 0)
        goto out;
    id->name = name;
    if ((rc = parse_list(id, root, "peers", QPC_PEERS_MAX, parse_peer, NULL, errbuf, errlen)) != 0)
        goto out;
    for (int k = 0; k < QPC_PIN_KINDS; k++) {
        enum qpc_pin_kind kind = (enum qpc_pin_kind)k;
        if ((rc = parse_list(id, root, pin_json[k].list, QPC_PINS_MAX, parse_pin, &kind, errbuf,
                             errlen)) != 0)
            goto out;
    }
    *out = id;
    id = NULL;
out:
    qpc_identity_free(id);
    /* Every path, also an unsupported version or a bad peer: the tree holds the hex seed. */
    json_free_wiping_seed(root);
    return rc;
}

/* --- serialising ------------------------------------------------------------------- */

static int cmp_peer_id(const void *a, const void *b)
{
    return strcmp((*(const struct qpc_peer *const *)a)->id, (*(const struct qpc_peer *const *)b)->id);
}

static int cmp_pin_name(const void *a, const void *b)
{
    return strcmp((*(const struct qpc_pin *const *)a)->name,
                  (*(const struct qpc_pin *const *)b)->name);
}

/* Milliseconds as a JSON integer; absurd values beyond int64 are clamped. */
static json_t *json_ms(uint64_t ms)
{
    return json_integer(ms > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)ms);
}

/* json_object_set_new that reports failure; value may be NULL (then it fails). */
static bool put(json_t *obj, const char *key, json_t *value)
{
    return value != NULL && json_object_set_new(obj, key, value) == 0;
}

static json_t *peer_to_json(const struct qpc_peer *p)
{
    json_t *obj = json_object(), *addresses = json_array();
    bool ok = obj != NULL && addresses != NULL;

    for (size_t i = 0; ok && i < p->address_count; i++)
        ok = json_array_append_new(addresses, json_string(p->addresses[i])) == 0;
    ok = ok && put(obj, "id", json_string(p->id));
    if (ok && p->name != NULL)
        ok = put(obj, "name", json_string(p->name));
    ok = ok && put(obj, "addresses", json_incref(addresses)) &&
         put(obj, "last_seen", json_ms(p->last_seen_ms)) &&
         put(obj, "source", json_string(qpc_peer_source_name(p->source))) &&
         put(obj, "kind", json_string(qpc_peer_kind_name(p->kind))) &&
         put(obj, "pinned", json_boolean(p->pinned));
    json_decref(addresses);
    if (!ok) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

static json_t *pin_to_json(const struct qpc_pin *s)
{
    char hex[QPC_KEY_HEX_LEN];
    json_t *obj = json_object();
    bool ok = obj != NULL && put(obj, pin_json[s->kind].member, json_string(s->name)) &&
              put(obj, "noted_at", json_ms(s->noted_at_ms));

    if (ok && s->has_key) {
        qpc_key_to_hex(hex, s->key);
        ok = put(obj, "key", json_string(hex)) &&
             put(obj, "pinned_at", json_ms(s->pinned_at_ms));
    }
    if (!ok) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

/* Appends the entries of a list sorted by cmp, each converted by to_json. */
static bool put_sorted(json_t *root, const char *key, const void **items, size_t n,
                       int (*cmp)(const void *, const void *), json_t *(*to_json)(const void *))
{
    json_t *arr = json_array();
    bool ok = arr != NULL;

    if (n > 1)
        qsort(items, n, sizeof(items[0]), cmp);
    for (size_t i = 0; ok && i < n; i++)
        ok = json_array_append_new(arr, to_json(items[i])) == 0;
    if (!ok) {
        json_decref(arr);
        return false;
    }
    return put(root, key, arr);   /* put takes arr, also when it fails */
}

static json_t *peer_to_json_v(const void *p) { return peer_to_json(p); }
static json_t *pin_to_json_v(const void *s) { return pin_to_json(s); }

/* Wipes the hex seed inside root (jansson's copy) and frees root. */
static void json_free_wiping_seed(json_t *root)
{
    json_t *seed = json_object_get(root, "secret_seed");

    if (json_is_string(seed))
        sodium_memzero((char *)json_string_value(seed), json_string_length(seed));
    json_decref(root);
}

/* Output buffer for json_dump_callback; it will hold the secret, so growth wipes. */
struct dump_buffer {
    char *text;
    size_t len, cap;
};

static int dump_append(const char *data, size_t size, void *arg)
{
    struct dump_buffer *b = arg;

    if (size > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 4096;
        char *bigger;

        while (cap - b->len < size) {
            if (cap > (size_t)QPC_IDENTITY_FILE_MAX * 2)
                return -1;
            cap *= 2;
        }
        if ((bigger = malloc(cap)) == NULL)
            return -1;
        if (b->text != NULL) {
            memcpy(bigger, b->text, b->len);
            sodium_memzero(b->text, b->cap);
            free(b->text);
        }
        b->text = bigger;
        b->cap = cap;
    }
    memcpy(b->text + b->len, data, size);
    b->len += size;
    return 0;
}

/* Adds the array of pins of kind, sorted by name; an empty "domains" is left out. */
static bool put_pins(json_t *root, const struct qpc_identity *id, enum qpc_pin_kind kind)
{
    size_t n = HASH_COUNT(id->pins[kind]), i = 0;
    const void **pins;
    const struct pin_entry *e;
    bool ok;

    /* Files of programs that pin no domain stay as they were before domains existed. */
    if (n == 0 && kind != QPC_PIN_ADDRESS)
        return true;
    if ((pins = calloc(n + 1, sizeof(*pins))) == NULL)
        return false;
    for (e = id->pins[kind]; e != NULL; e = e->hh.next)
        pins[i++] = &e->pin;
    ok = put_sorted(root, pin_json[kind].list, pins, n, cmp_pin_name, pin_to_json_v);
    free(pins);
    return ok;
}

int qpc_identity_serialize(const struct qpc_identity *id, char **out, size_t *out_len)
{
    size_t n_peers = HASH_COUNT(id->peers), i;
    const void **peers = calloc(n_peers + 1, sizeof(*peers));
    const struct peer_entry *p;
    char hex[2 * QPC_IDENTITY_SEED_LEN + 1];
    json_t *root = json_object();
    struct dump_buffer buf = {NULL, 0, 0};
    int rc = QPC_ERR_NOMEM;

    *out = NULL;
    *out_len = 0;
    if (peers == NULL || root == NULL)
        goto out;
    for (i = 0, p = id->peers; p != NULL; p = p->hh.next)
        peers[i++] = &p->peer;
    qpc_hex_encode(hex, id->secret_key, QPC_IDENTITY_SEED_LEN);
    if (!put(root, "version", json_integer(QPC_IDENTITY_FILE_VERSION)) ||
        !put(root, "secret_seed", json_string(hex)) ||
        !put(root, "public_key", json_string(id->peer_id)) ||
        (id->name != NULL && !put(root, "name", json_string(id->name))) ||
        !put_sorted(root, "peers", peers, n_peers, cmp_peer_id, peer_to_json_v) ||
        !put_pins(root, id, QPC_PIN_ADDRESS) || !put_pins(root, id, QPC_PIN_DOMAIN))
        goto out;
    /* Dump straight into our buffer: no jansson-owned copy of the secret is left. */
    if (json_dump_callback(root, dump_append, &buf, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0 ||
        dump_append("\n", 2, &buf) != 0)    /* final newline and the NUL */
        goto out;
    *out = buf.text;
    *out_len = buf.len - 1;
    buf.text = NULL;
    rc = 0;
out:
    if (buf.text != NULL) {
        sodium_memzero(buf.text, buf.cap);
        free(buf.text);
    }
    sodium_memzero(hex, sizeof(hex));
    json_free_wiping_seed(root);
    free(peers);
    return rc;
}

/* --- the file on disk ------------------------------------------------------------------- */

int qpc_identity_save(const struct qpc_identity *id, const char *path, char *errbuf, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    int rc;

    if ((rc = qpc_identity_serialize(id, &text, &len)) != 0) {
        set_err(errbuf, errlen, "%s: %s", path, qpc_strerror(rc));
        return rc;
    }
    rc = qpc_file_write_atomic(path, text, len, 0600, errbuf, errlen);
    sodium_memzero(text, len);
    free(text);
    return rc;
}

/* Reads the whole regular file at path (at most QPC_IDENTITY_FILE_MAX bytes). */
static int read_file(const char *path, char **out, size_t *out_len, char *errbuf, size_t errlen)
{
    struct stat st;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int fd, rc = QPC_ERR_IO, err = 0;

    *out = NULL;
    *out_len = 0;
    /* O_NONBLOCK: a FIFO planted at path must not hang us before the S_ISREG check. */
    if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) < 0) {
        err = errno;
        rc = err == ENOENT ? QPC_ERR_NOT_FOUND : QPC_ERR_IO;
        set_err(errbuf, errlen, "%s: cannot open: %s", path, strerror(err));
        goto out;
    }
    if (fstat(fd, &st) != 0) {
        err = errno;
        set_err(errbuf, errlen, "%s: cannot stat: %s", path, strerror(err));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        err = EINVAL;
        set_err(errbuf, errlen, "%s: not a regular file", path);
        goto out;
    }
    if (st.st_size > (off_t)QPC_IDENTITY_FILE_MAX) {
        rc = QPC_ERR_TOO_LARGE;
        set_err(errbuf, errlen, "%s: %lld bytes, more than the %u an identity file may have",
                path, (long long)st.st_size, QPC_IDENTITY_FILE_MAX);
        goto out;
    }
    /* One byte more than the size, so a file that grew meanwhile is noticed. */
    cap = (size_t)st.st_size + 1;
    if ((buf = malloc(cap)) == NULL) {
        rc = QPC_ERR_NOMEM;
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, buf + len, cap - len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err = errno;
            set_err(errbuf, errlen, "%s: cannot read: %s", path, strerror(err));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len == cap) {
            rc = QPC_ERR_IO;
            err = EAGAIN;
            set_err(errbuf, errlen, "%s: changed while being read", path);
            goto out;
        }
    }
    *out = buf;
    *out_len = len;
    buf = NULL;
    rc = 0;
out:
    if (buf != NULL) {
        sodium_memzero(buf, cap);
        free(buf);
    }
    if (fd >= 0)
        close(fd);
    errno = err;
    return rc;
}

int qpc_identity_load(const char *path, struct qpc_identity **out, char *errbuf, size_t errlen)
{
    char detail[256] = "";
    char *buf = NULL;
    size_t len = 0;
    int rc;

    *out = NULL;
    if (path == NULL || path[0] == '\0') {
        set_err(errbuf, errlen, "identity file name is empty");
        return QPC_ERR_INVALID;
    }
    if ((rc = read_file(path, &buf, &len, errbuf, errlen)) != 0)
        return rc;
    if ((rc = qpc_identity_parse(buf, len, out, detail, sizeof(detail))) != 0)
        set_err(errbuf, errlen, "%s: %s", path, detail[0] ? detail : qpc_strerror(rc));
    else
        qpc_file_warn_exposed(path, "the secret key");
    sodium_memzero(buf, len);
    free(buf);
    return rc;
}

/* Creates every missing directory above path's last component, mode 0700. */
static int make_parent_dirs(const char *path, char *errbuf, size_t errlen)
{
    char *copy = strdup(path);
    int rc = 0;

    if (copy == NULL)
        return QPC_ERR_NOMEM;
    for (char *p = strchr(copy + 1, '/'); p != NULL; p = strchr(p + 1, '/')) {
        *p = '\0';
        if (mkdir(copy, 0700) == 0) {
            (void)chmod(copy, 0700);     /* the umask may have taken bits off */
        } else if (errno != EEXIST) {
            int err = errno;

            set_err(errbuf, errlen, "%s: cannot create directory %s: %s", path, copy,
                    strerror(err));
            errno = err;
            rc = QPC_ERR_IO;
            break;
        }
        *p = '/';
    }
    free(copy);
    return rc;
}

int qpc_identity_load_or_create(const char *path, struct qpc_identity **out, bool *created,
                                char *errbuf, size_t errlen)
{
    struct qpc_identity *id = NULL;
    char *text = NULL;
    size_t len = 0;
    int rc;

    *out = NULL;
    if (created != NULL)
        *created = false;
    /* Only a file that is certainly absent may be created; any other failure is final. */
    if ((rc = qpc_identity_load(path, out, errbuf, errlen)) != QPC_ERR_NOT_FOUND)
        return rc;
    set_err(errbuf, errlen, "%s", "");   /* "no such file" is not an error here */
    if ((rc = make_parent_dirs(path, errbuf, errlen)) != 0)
        return rc;
    if ((rc = qpc_identity_generate(&id)) != 0 ||
        (rc = qpc_identity_serialize(id, &text, &len)) != 0) {
        set_err(errbuf, errlen, "%s: cannot make a new identity: %s", path, qpc_strerror(rc));
        goto out;
    }
    rc = qpc_file_create_atomic(path, text, len, 0600, errbuf, errlen);
    if (rc == QPC_ERR_EXISTS) {          /* another process created it first: use theirs */
        rc = qpc_identity_load(path, out, errbuf, errlen);
        goto out;
    }
    if (rc != 0)
        goto out;
    *out = id;
    id = NULL;
    if (created != NULL)
        *created = true;
out:
    if (text != NULL) {
        sodium_memzero(text, len);
        free(text);
    }
    qpc_identity_free(id);
    return rc;
}
