/*
 * identity.h: the self-sovereign mesh identity, the peer directory and key pins.
 *
 * The one idea: who I am (an Ed25519 keypair made on first start, no registration) and
 * whom I know (peers by public key; names and addresses with the keys pinned for them)
 * live together in ONE JSON file that is only ever replaced atomically (qpc/fileio.h:
 * temp file, fsync, rename, fsync of the directory) and is created mode 0600. A file
 * that exists but cannot be read or parsed is reported and never overwritten: losing
 * the secret key means losing the identity. The file format is documented in
 * docs/identity.md.
 *
 * A peer id is the lowercase hex of the 32-byte public key; wherever a user types one,
 * a unique prefix is accepted (qpc_identity_peer_find).
 *
 * Peers and pins are kept apart because they are keyed differently. A peer is known by
 * its key (its addresses change). A pin is known by a name -- an address someone typed
 * ("10.0.0.1:7000"), or a DNS name such as a federation domain -- and holds the key that
 * belongs to that name, once it is known: learned on first use or given, and then
 * fixed, like an SSH host key. A different key for a pinned name is refused
 * (QPC_ERR_REFUSED). What a name stands for is the program's business; the identity
 * only keeps the binding and refuses to let it change silently.
 *
 * Everything here is in memory except load/save/load_or_create. Functions that take
 * `now_ms` (milliseconds since the Unix epoch) never read the clock. Not thread-safe:
 * one owner at a time.
 *
 * Every `errbuf, errlen` pair is optional (NULL, 0 is allowed); when given, it receives
 * a NUL-terminated English message for the user, naming the file where there is one.
 */
#ifndef QPC_IDENTITY_H
#define QPC_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qpc/addr.h"       /* QPC_ADDRESS_MAX; addresses are checked with qpc_addr_valid */
#include "qpc/encoding.h"

#define QPC_IDENTITY_FILE_VERSION 1
#define QPC_IDENTITY_SEED_LEN 32               /* Ed25519 seed (RFC 8032 private key) */
#define QPC_IDENTITY_SECRET_KEY_LEN 64         /* libsodium secret key: seed || public key */
#define QPC_IDENTITY_FILE_MAX (16u * 1024 * 1024) /* larger files are refused unread */
#define QPC_IDENTITY_NAME_MAX 64               /* bytes of UTF-8 in a display name */
#define QPC_PEER_ADDRESSES_MAX 8               /* addresses kept per peer, newest first */
#define QPC_PEERS_MAX 4096                     /* peer directory size */
#define QPC_PINS_MAX 1024                      /* pins of each kind */

/* How a peer was most recently learned or seen. */
enum qpc_peer_source {
    QPC_PEER_SOURCE_MDNS,    /* mDNS/DNS-SD discovery */
    QPC_PEER_SOURCE_MANUAL,  /* typed by the user */
    QPC_PEER_SOURCE_SERVER,  /* told by a node we are connected to */
    QPC_PEER_SOURCE_DIRECT,  /* a direct P2P connection */
    QPC_PEER_SOURCE_TOFU,    /* a key learned on first use (a pin) */
    QPC_PEER_SOURCE_RELAY,   /* seen through a relay node */
};

enum qpc_peer_kind {
    QPC_PEER_CLIENT,
    QPC_PEER_SERVER,
};

/*
 * One entry of the peer directory. Owned by the identity and read-only for callers;
 * a pointer stays valid until that peer is removed or evicted, or the identity freed.
 */
struct qpc_peer {
    uint8_t key[QPC_KEY_LEN];                     /* Ed25519 public key */
    char id[QPC_KEY_HEX_LEN];                     /* lowercase hex of key */
    char *name;                                   /* display name, or NULL */
    char *addresses[QPC_PEER_ADDRESSES_MAX];      /* "host:port", lowercase, newest first */
    size_t address_count;
    uint64_t last_seen_ms;
    enum qpc_peer_source source;
    enum qpc_peer_kind kind;
    bool pinned;                                  /* kept when the directory is full */
};

/* What a pin's name is. Each kind is its own namespace, bounded by QPC_PINS_MAX. */
enum qpc_pin_kind {
    QPC_PIN_ADDRESS = 0,     /* "host:port" (qpc_addr_valid): a node reached by address */
    QPC_PIN_DOMAIN = 1,      /* a DNS name (qpc_addr_check_name): e.g. a federation domain */
};
#define QPC_PIN_KINDS 2

/*
 * A name noted, with the key pinned for it once known. Owned by the identity and
 * read-only for callers; valid until it is forgotten or the identity freed.
 */
struct qpc_pin {
    enum qpc_pin_kind kind;
    char *name;                                   /* lowercase */
    bool has_key;                                 /* false until a key is pinned */
    uint8_t key[QPC_KEY_LEN];                     /* the pinned Ed25519 key when has_key */
    uint64_t noted_at_ms;
    uint64_t pinned_at_ms;                        /* 0 unless has_key */
};

struct qpc_identity;

/* --- life cycle ------------------------------------------------------------------ */

/*
 * Makes a new identity with a fresh random keypair and empty directories.
 * *out is owned by the caller (qpc_identity_free). Returns 0, QPC_ERR_CRYPTO
 * (libsodium could not initialise) or QPC_ERR_NOMEM.
 */
int qpc_identity_generate(struct qpc_identity **out);

/*
 * Makes the identity whose Ed25519 seed (the RFC 8032 private key) is seed, e.g. for
 * tests or restoring a backup. seed is copied. Returns like qpc_identity_generate.
 */
int qpc_identity_from_seed(const uint8_t seed[static QPC_IDENTITY_SEED_LEN],
                           struct qpc_identity **out);

/* Wipes the secret key (sodium_memzero) and frees everything. NULL is a no-op. */
void qpc_identity_free(struct qpc_identity *id);

/* --- the file ---------------------------------------------------------------------- */

/*
 * Parses an identity file's bytes (untrusted: every field is type- and length-checked,
 * public_key must match secret_seed). buf need not be NUL-terminated and is not kept.
 * On success *out is owned by the caller. Returns 0, QPC_ERR_TOO_LARGE (len above
 * QPC_IDENTITY_FILE_MAX), QPC_ERR_VERSION (a version other than 1), QPC_ERR_CORRUPT
 * (anything else wrong; errbuf says what and where, e.g. "peers[2].id: ..."),
 * QPC_ERR_CRYPTO or QPC_ERR_NOMEM. On error *out is NULL.
 */
int qpc_identity_parse(const char *buf, size_t len, struct qpc_identity **out,
                       char *errbuf, size_t errlen);

/*
 * Serialises id as the JSON of docs/identity.md (peers sorted by id, pins by
 * name, so equal identities give equal bytes). *out is a NUL-terminated malloc'd
 * string of *out_len bytes; it holds the secret seed, so the caller wipes it
 * (sodium_memzero) before free. Returns 0 or QPC_ERR_NOMEM.
 */
int qpc_identity_serialize(const struct qpc_identity *id, char **out, size_t *out_len);

/*
 * Reads and parses the file at path. Errors name the file in errbuf. Returns what
 * qpc_identity_parse returns, or QPC_ERR_NOT_FOUND (no such file), QPC_ERR_IO (cannot
 * open/read, not a regular file; errno is kept), QPC_ERR_TOO_LARGE (checked before
 * reading) or QPC_ERR_INVALID (empty path).
 */
int qpc_identity_load(const char *path, struct qpc_identity **out, char *errbuf, size_t errlen);

/*
 * Writes id to path atomically: a temp file "<path>.tmp-XXXXXXXX" in the same directory
 * created with mode 0600, written, fsync'd, renamed over path, then the directory
 * fsync'd. On failure the temp file is removed and path is unchanged.
 * Returns 0, QPC_ERR_IO (errno kept; errbuf names the file) or QPC_ERR_NOMEM.
 */
int qpc_identity_save(const struct qpc_identity *id, const char *path, char *errbuf, size_t errlen);

/*
 * Loads path if it exists. Only if it does NOT exist: creates the missing parent
 * directories (mode 0700), generates a new identity and writes it without ever
 * replacing a file (link(2) of a finished temp file, so a file created meanwhile by
 * another process wins and is loaded instead). A file that exists but cannot be read
 * or parsed is reported (QPC_ERR_IO, QPC_ERR_CORRUPT, QPC_ERR_VERSION,
 * QPC_ERR_TOO_LARGE, with the file named in errbuf) and left untouched.
 * *created (may be NULL) tells whether a new identity was made. Also returns
 * QPC_ERR_INVALID (empty path), QPC_ERR_IO (cannot create a directory or write the
 * file), QPC_ERR_CRYPTO or QPC_ERR_NOMEM.
 */
int qpc_identity_load_or_create(const char *path, struct qpc_identity **out, bool *created,
                                char *errbuf, size_t errlen);

/* --- who I am ----------------------------------------------------------------------- */

/* My Ed25519 public key (32 bytes, owned by id). */
const uint8_t *qpc_identity_public_key(const struct qpc_identity *id);

/*
 * My libsodium Ed25519 secret key (seed || public key, 64 bytes, owned by id), as
 * envelope.h and tls want it. Do not copy it further than needed.
 */
const uint8_t *qpc_identity_secret_key(const struct qpc_identity *id);

/* My peer id: lowercase hex of the public key (64 characters, NUL-terminated, owned). */
const char *qpc_identity_peer_id(const struct qpc_identity *id);

/* My display name or NULL (owned by id). */
const char *qpc_identity_name(const struct qpc_identity *id);

/*
 * Sets (copies) or clears (NULL) my display name. A name is 1..QPC_IDENTITY_NAME_MAX
 * bytes of valid UTF-8 without control characters. Returns 0, QPC_ERR_INVALID or
 * QPC_ERR_NOMEM.
 */
int qpc_identity_set_name(struct qpc_identity *id, const char *name);

/* --- the peer directory ------------------------------------------------------------ */

/*
 * Records that the peer with public key `key` was seen at now_ms: creates the entry or
 * merges into it. name (may be NULL: keep the one known) replaces the stored name;
 * address (may be NULL) becomes the newest of the peer's addresses (moved to the front
 * if known, the oldest dropped beyond QPC_PEER_ADDRESSES_MAX); last_seen_ms becomes the
 * later of the stored value and now_ms; source and kind are set. When the directory is
 * full, the unpinned peer seen longest ago is evicted to make room.
 * *out (may be NULL) receives the entry. Inputs are copied.
 * Returns 0, QPC_ERR_INVALID (my own key, bad name or address, unknown enum value),
 * QPC_ERR_STORE_FULL (full of pinned peers) or QPC_ERR_NOMEM; on error nothing changed.
 */
int qpc_identity_peer_upsert(struct qpc_identity *id, const uint8_t key[static QPC_KEY_LEN],
                             const char *name, const char *address, uint64_t now_ms,
                             enum qpc_peer_source source, enum qpc_peer_kind kind,
                             const struct qpc_peer **out);

/* The peer with exactly this key, or NULL. */
const struct qpc_peer *qpc_identity_peer_get(const struct qpc_identity *id,
                                             const uint8_t key[static QPC_KEY_LEN]);

/*
 * Collects the peers whose id starts with prefix (1..64 hex characters, either case):
 * up to max of them into matches (may be NULL when max is 0), in directory order.
 * *total receives the number of all matches. Returns 0 or QPC_ERR_INVALID (empty,
 * too long, or a non-hex character).
 */
int qpc_identity_peer_match(const struct qpc_identity *id, const char *prefix,
                            const struct qpc_peer **matches, size_t max, size_t *total);

/*
 * Resolves a typed peer id: a full id or a prefix matching exactly one peer gives that
 * peer in *out. Returns 0, QPC_ERR_INVALID (not a hex prefix), QPC_ERR_NOT_FOUND, or
 * QPC_ERR_AMBIGUOUS, in which case errbuf lists the candidates
 * ("ambiguous prefix 'ab': abcd..., abef..." with "and N more" when they do not fit).
 */
int qpc_identity_peer_find(const struct qpc_identity *id, const char *prefix,
                           const struct qpc_peer **out, char *errbuf, size_t errlen);

/* Sets whether a peer is pinned (never evicted). Returns 0 or QPC_ERR_NOT_FOUND. */
int qpc_identity_peer_set_pinned(struct qpc_identity *id, const uint8_t key[static QPC_KEY_LEN],
                                 bool pinned);

/*
 * Sets (copies) or clears (NULL) a peer's display name without touching anything else
 * it is known by (source, kind, time). Names follow qpc_identity_set_name's rules.
 * Returns 0, QPC_ERR_NOT_FOUND, QPC_ERR_INVALID or QPC_ERR_NOMEM.
 */
int qpc_identity_peer_set_name(struct qpc_identity *id, const uint8_t key[static QPC_KEY_LEN],
                               const char *name);

/* Removes a peer; pointers to it become invalid. Returns 0 or QPC_ERR_NOT_FOUND. */
int qpc_identity_peer_remove(struct qpc_identity *id, const uint8_t key[static QPC_KEY_LEN]);

/* Number of peers in the directory. */
size_t qpc_identity_peer_count(const struct qpc_identity *id);

/*
 * Iterates the directory: prev NULL gives the first peer, then each call the next;
 * NULL at the end. Order is insertion order. Do not add or remove peers while
 * iterating (except removing the one just returned after taking its successor).
 */
const struct qpc_peer *qpc_identity_peer_next(const struct qpc_identity *id,
                                              const struct qpc_peer *prev);

/* Text of a source ("mdns", "manual", "server", "direct", "tofu", "relay"); "?" if unknown. */
const char *qpc_peer_source_name(enum qpc_peer_source source);

/* Text of a kind ("client", "server"); "?" if unknown. */
const char *qpc_peer_kind_name(enum qpc_peer_kind kind);

/* --- key pins -------------------------------------------------------------------- */

/*
 * Notes name (of kind; compared case-insensitively, stored lowercase) at now_ms; its key
 * is unknown until pinned. Noting a known name changes nothing. *out (may be NULL)
 * receives the entry. Returns 0, QPC_ERR_INVALID (unknown kind, or name is not of that
 * kind), QPC_ERR_STORE_FULL (QPC_PINS_MAX of that kind) or QPC_ERR_NOMEM.
 */
int qpc_identity_pin_note(struct qpc_identity *id, enum qpc_pin_kind kind, const char *name,
                          uint64_t now_ms, const struct qpc_pin **out);

/*
 * Pins key for name (trust on first use, or a key given out of band). If no key is
 * pinned for name yet, pins it (noting the name first if needed) with pinned_at_ms =
 * now_ms. Returns 0 (pinned now, or the same key was already pinned), QPC_ERR_REFUSED
 * (a DIFFERENT key is pinned for name: possible impersonation; nothing changes, the
 * user must forget the pin to accept the new key), QPC_ERR_INVALID, QPC_ERR_STORE_FULL
 * or QPC_ERR_NOMEM.
 */
int qpc_identity_pin_key(struct qpc_identity *id, enum qpc_pin_kind kind, const char *name,
                         const uint8_t key[static QPC_KEY_LEN], uint64_t now_ms);

/* The pin of kind for name (any case), or NULL (also for an invalid name or kind). */
const struct qpc_pin *qpc_identity_pin_get(const struct qpc_identity *id,
                                           enum qpc_pin_kind kind, const char *name);

/*
 * Copies the key pinned for name into key. Returns 0, QPC_ERR_NOT_FOUND (not noted, or
 * noted but no key pinned yet) or QPC_ERR_INVALID (bad name or kind).
 */
int qpc_identity_pin_lookup(const struct qpc_identity *id, enum qpc_pin_kind kind,
                            const char *name, uint8_t key[static QPC_KEY_LEN]);

/* Forgets a pin and its key. Returns 0 or QPC_ERR_NOT_FOUND. */
int qpc_identity_pin_forget(struct qpc_identity *id, enum qpc_pin_kind kind, const char *name);

/* Number of pins of kind (0 for an unknown kind). */
size_t qpc_identity_pin_count(const struct qpc_identity *id, enum qpc_pin_kind kind);

/* Iterates the pins of kind like qpc_identity_peer_next. */
const struct qpc_pin *qpc_identity_pin_next(const struct qpc_identity *id,
                                            enum qpc_pin_kind kind, const struct qpc_pin *prev);

#endif
