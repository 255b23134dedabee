/*
 * contacts.h: who the user means (contacts.c). Names, id prefixes and the shareable
 * text form of an identity ("qpc:<id>?name=..&addr=..").
 *
 * Pure: reads the peer directory it is given, owns nothing, does no I/O. Every place a
 * peer is typed (qpc send, /mesh send, /send, /history, /name) resolves it here, so the
 * rules are the same everywhere; a resolver that knows more peers (routes, announces)
 * calls contacts_resolve first and falls back to its own table on QPC_ERR_NOT_FOUND.
 */
#ifndef QPC_CLIENT_CONTACTS_H
#define QPC_CLIENT_CONTACTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qpc/identity.h"

#define CONTACTS_PREFIX_MIN 4         /* hex digits of a typed id prefix */
#define CONTACTS_MDNS_PREFIX_MIN 16   /* for a peer known only from mDNS: 64 bits, not grindable */
#define CONTACTS_CANDIDATES_SHOWN 8   /* candidates listed when a refusal names them */
#define CONTACTS_CARD_SCHEME "qpc:"
#define CONTACTS_CARD_MAX 1024        /* bytes of the text form, addresses included */
#define CONTACTS_CARD_ADDRS_MAX 4     /* addresses put into or taken from a text form */

/*
 * Resolves what was typed where a peer is meant: a full key (64 hex digits, known or
 * not), a name from the directory (ASCII letters in any case), or a prefix of at least
 * CONTACTS_PREFIX_MIN hex digits of a known peer's id (CONTACTS_MDNS_PREFIX_MIN for a
 * peer known only from mDNS: anyone on the link can announce a key made to match a
 * short prefix). A name and a prefix of another peer's id are ambiguous; so is a name
 * two peers have. On success key receives the peer's key (and *peer, may be NULL, the
 * directory entry or NULL for an unknown full key).
 * Returns 0, QPC_ERR_NOT_FOUND, QPC_ERR_AMBIGUOUS, QPC_ERR_REFUSED (prefix too short;
 * the candidates are listed) or QPC_ERR_INVALID (neither a name nor hex). err (may be
 * NULL) receives a sentence saying what was wrong and what to type instead.
 */
int contacts_resolve(const struct qpc_identity *id, const char *text, uint8_t key[static QPC_KEY_LEN],
                     const struct qpc_peer **peer, char *err, size_t errlen);

/*
 * Checks a name the user wants to give peer key ("me": oneself, key NULL): a
 * display name (qpc_identity_set_name's rules) that is one word (it is typed where a
 * peer id is), does not start with '#' (a channel) nor hold '@' (key@domain), is not
 * "me", and is not another peer's name (any case). Returns 0, QPC_ERR_INVALID or
 * QPC_ERR_EXISTS, err saying why.
 */
int contacts_check_name(const struct qpc_identity *id, const uint8_t *key, const char *name,
                        char *err, size_t errlen);

/*
 * Gives peer key (NULL: oneself) the name (NULL or "-": none) after contacts_check_name.
 * Returns 0, QPC_ERR_NOT_FOUND (key not in the directory), or contacts_check_name's
 * errors, err saying why.
 */
int contacts_set_name(struct qpc_identity *id, const uint8_t *key, const char *name,
                      char *err, size_t errlen);

/*
 * Adds (or updates) peer key as typed by the user: its addresses (the first becomes the
 * newest), source manual, and the name if contacts_check_name takes it; a name it
 * refuses is left out and note (may be NULL) says why, the rest is added. Returns 0,
 * QPC_ERR_INVALID (my own key, a bad address; err says which) or what
 * qpc_identity_peer_upsert returns.
 */
int contacts_add(struct qpc_identity *id, const uint8_t key[static QPC_KEY_LEN], const char *name,
                 const char *const *addrs, size_t naddrs, uint64_t now_ms,
                 char *note, size_t notelen, char *err, size_t errlen);

/* An identity as text to share (a QR code, a message): key, name, addresses. */
struct contacts_card {
    uint8_t key[QPC_KEY_LEN];
    char name[QPC_IDENTITY_NAME_MAX + 1];          /* "" when none */
    char addrs[CONTACTS_CARD_ADDRS_MAX][QPC_ADDRESS_MAX + 1];
    size_t naddrs;
};

/*
 * Writes card as "qpc:<64 hex>[?name=<name>][&addr=<host:port>]...", values
 * percent-encoded (RFC 3986 unreserved characters stay). Returns the length, or
 * QPC_ERR_TOO_LARGE when it does not fit cap (out is then "").
 */
int contacts_card_format(char *out, size_t cap, const struct contacts_card *card);

/* True when text (leading blanks allowed) starts with the text form's scheme. */
bool contacts_is_card(const char *text);

/*
 * Parses a text form as pasted (blanks around it, any case of scheme and hex).
 * Unknown parameters are ignored (later versions may add some); more addresses than
 * CONTACTS_CARD_ADDRS_MAX are ignored. Returns 0 or QPC_ERR_INVALID with err saying
 * which part is wrong (the key, a name that is not one, an address, an escape).
 */
int contacts_card_parse(const char *text, struct contacts_card *out, char *err, size_t errlen);

#endif
