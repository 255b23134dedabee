/*
 * contacts.c: who the user means (contacts.h).
 *
 * The one idea: a typo must not reach the wrong person. So what was typed is matched
 * against everything it could mean -- a full key, a name, an id prefix -- and only one
 * match is taken; two are refused with both listed, and so is a prefix too short to be
 * meant (under 4 hex digits, 16 for a peer known only from an mDNS claim). The refusal
 * lists the candidates, so the user sees at once what to type instead.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "contacts.h"
#include "qpc/addr.h"
#include "qpc/encoding.h"
#include "qpc/error.h"
#include "qpc/utf8.h"

#define MATCHES_MAX 64

static bool all_hex(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (!isxdigit((unsigned char)*s))
            return false;
    return true;
}

static bool same_name(const char *a, const char *b)
{
    return strcasecmp(a, b) == 0;   /* ASCII letters fold; other bytes compare exactly */
}

/* "1a2b3c4d5e6f (bob), 99aa... (-) and 3 more" */
static void list_candidates(char *out, size_t cap, const struct qpc_peer *const *m, size_t n,
                            size_t total)
{
    size_t used = 0;

    out[0] = '\0';
    for (size_t i = 0; i < n && i < CONTACTS_CANDIDATES_SHOWN && used < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, "%s%.12s (%s)", i == 0 ? "" : ", ",
                                 m[i]->id, m[i]->name != NULL ? m[i]->name : "no name");
    if (total > CONTACTS_CANDIDATES_SHOWN && used < cap)
        snprintf(out + used, cap - used, " and %zu more", total - CONTACTS_CANDIDATES_SHOWN);
}

int contacts_resolve(const struct qpc_identity *id, const char *text, uint8_t key[static QPC_KEY_LEN],
                     const struct qpc_peer **peer, char *err, size_t errlen)
{
    const struct qpc_peer *m[MATCHES_MAX], *by_prefix[MATCHES_MAX], *p = NULL;
    size_t n = 0, nprefix = 0, total_prefix = 0, len = strlen(text);
    bool hex = all_hex(text), named = false;
    char cands[512], scratch[1];

    if (err == NULL || errlen == 0)
        err = scratch, errlen = 0;   /* written nowhere: every snprintf below gets 0 */
    if (peer != NULL)
        *peer = NULL;
    if (len == 2 * QPC_KEY_LEN && hex && qpc_key_from_hex(key, text) == 0) {
        if (peer != NULL)
            *peer = qpc_identity_peer_get(id, key);
        return 0;
    }
    while ((p = qpc_identity_peer_next(id, p)) != NULL)
        if (p->name != NULL && same_name(p->name, text) && n < MATCHES_MAX)
            m[n++] = p, named = true;
    if (hex && len <= 2 * QPC_KEY_LEN &&
        qpc_identity_peer_match(id, text, by_prefix, MATCHES_MAX, &total_prefix) == 0)
        nprefix = total_prefix < MATCHES_MAX ? total_prefix : MATCHES_MAX;
    /* A prefix too short to be meant does not compete with a name that matches. */
    if (!(named && len < CONTACTS_PREFIX_MIN)) {
        for (size_t i = 0; i < nprefix && n < MATCHES_MAX; i++) {
            bool dup = false;

            for (size_t j = 0; j < n; j++)
                dup |= m[j] == by_prefix[i];
            if (!dup)
                m[n++] = by_prefix[i];
        }
    } else {
        total_prefix = 0;
    }
    if (n == 0) {
        if (!hex && qpc_utf8_valid(text, len))
            snprintf(err, errlen, "no known peer is named '%s' (/mesh peers lists them; "
                     "/name <id> <name> gives one)", text);
        else if (!hex)
            snprintf(err, errlen, "'%s' is neither a name nor a peer id (hex)", text);
        else
            snprintf(err, errlen, "no known peer matches '%s' (no id starts with it; see /mesh peers)", text);
        return hex || qpc_utf8_valid(text, len) ? QPC_ERR_NOT_FOUND : QPC_ERR_INVALID;
    }
    if (n == 1 && named) {
        memcpy(key, m[0]->key, QPC_KEY_LEN);
        if (peer != NULL)
            *peer = m[0];
        return 0;
    }
    list_candidates(cands, sizeof(cands), m, n, named ? n : total_prefix + (n - nprefix));
    if (n > 1) {
        snprintf(err, errlen, "'%s' is ambiguous: it %s %zu peers: %s; give more digits of "
                 "the id%s", text, named ? "names or starts the id of" : "starts the id of",
                 named ? n : total_prefix, cands, named ? "" : " or the name");
        return QPC_ERR_AMBIGUOUS;
    }
    if (len < CONTACTS_PREFIX_MIN) {
        snprintf(err, errlen, "'%s' is too short to be sure: give at least %d hex digits of the "
                 "id, or the name; it matches %s", text, CONTACTS_PREFIX_MIN, cands);
        return QPC_ERR_REFUSED;
    }
    if (m[0]->source == QPC_PEER_SOURCE_MDNS && len < CONTACTS_MDNS_PREFIX_MIN) {
        snprintf(err, errlen, "'%s' matches a peer known only from mDNS: give at least %d hex "
                 "digits of its id (anyone on the link can announce a key made to match a "
                 "short prefix); it matches %s", text, CONTACTS_MDNS_PREFIX_MIN, cands);
        return QPC_ERR_REFUSED;
    }
    memcpy(key, m[0]->key, QPC_KEY_LEN);
    if (peer != NULL)
        *peer = m[0];
    return 0;
}

int contacts_check_name(const struct qpc_identity *id, const uint8_t *key, const char *name,
                        char *err, size_t errlen)
{
    const struct qpc_peer *p = NULL;
    size_t len = strlen(name);
    char scratch[1];

    if (err == NULL || errlen == 0)
        err = scratch, errlen = 0;
    for (size_t i = 0, k; i < len; i += k) {
        uint32_t cp;

        if ((k = qpc_utf8_decode(name + i, len - i, &cp)) == 0)
            break;
        if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0) || (cp >= 0x202a && cp <= 0x202e) ||
            (cp >= 0x2066 && cp <= 0x2069)) {
            snprintf(err, errlen, "a name may not hold control characters or direction overrides");
            return QPC_ERR_INVALID;
        }
        /* no-break, ideographic and typographic spaces split words for the eye too */
        if (cp == ' ' || cp == '\t' || cp == 0xa0 || cp == 0x3000 || (cp >= 0x2000 && cp <= 0x200b)) {
            snprintf(err, errlen, "a name is one word (no spaces): it is typed where a peer id is");
            return QPC_ERR_INVALID;
        }
    }
    if (len == 0 || len > QPC_IDENTITY_NAME_MAX || !qpc_utf8_valid(name, len)) {
        snprintf(err, errlen, "a name is 1 to %d bytes of UTF-8", QPC_IDENTITY_NAME_MAX);
        return QPC_ERR_INVALID;
    }
    if (name[0] == '#' || strchr(name, '@') != NULL || same_name(name, "me")) {
        snprintf(err, errlen, "a name may not start with '#' (a channel), hold '@' (key@domain) "
                 "or be 'me' (yourself)");
        return QPC_ERR_INVALID;
    }
    while ((p = qpc_identity_peer_next(id, p)) != NULL) {
        if (p->name == NULL || !same_name(p->name, name) ||
            (key != NULL && memcmp(p->key, key, QPC_KEY_LEN) == 0))
            continue;
        snprintf(err, errlen, "'%s' is already the name of %.12s: choose another, or rename "
                 "that one first (/name %.12s <other name>)", name, p->id, p->id);
        return QPC_ERR_EXISTS;
    }
    return 0;
}

int contacts_set_name(struct qpc_identity *id, const uint8_t *key, const char *name,
                      char *err, size_t errlen)
{
    bool clear = name == NULL || strcmp(name, "-") == 0;
    int rc = clear ? 0 : contacts_check_name(id, key, name, err, errlen);

    if (rc < 0)
        return rc;
    if (key == NULL)
        rc = qpc_identity_set_name(id, clear ? NULL : name);
    else
        rc = qpc_identity_peer_set_name(id, key, clear ? NULL : name);
    if (rc == QPC_ERR_NOT_FOUND && err != NULL && errlen > 0)
        snprintf(err, errlen, "that peer is not in the directory (/mesh add it first)");
    return rc;
}

int contacts_add(struct qpc_identity *id, const uint8_t key[static QPC_KEY_LEN], const char *name,
                 const char *const *addrs, size_t naddrs, uint64_t now_ms,
                 char *note, size_t notelen, char *err, size_t errlen)
{
    char scratch[1];
    int rc = 0;

    if (err == NULL || errlen == 0)
        err = scratch, errlen = 0;
    if (note != NULL && notelen > 0)
        note[0] = '\0';
    if (memcmp(key, qpc_identity_public_key(id), QPC_KEY_LEN) == 0) {
        snprintf(err, errlen, "that is your own identity");
        return QPC_ERR_INVALID;
    }
    for (size_t i = 0; i < naddrs; i++) {
        if (!qpc_addr_valid(addrs[i])) {
            snprintf(err, errlen, "'%s' is not a host:port address", addrs[i]);
            return QPC_ERR_INVALID;
        }
    }
    if (name != NULL && name[0] != '\0' && contacts_check_name(id, key, name, note, notelen) < 0)
        name = NULL;
    /* Upserting puts each address first: the last one given ends up oldest. */
    for (size_t i = naddrs; rc == 0 && i-- > 0;)
        rc = qpc_identity_peer_upsert(id, key, NULL, addrs[i], now_ms, QPC_PEER_SOURCE_MANUAL,
                                      QPC_PEER_CLIENT, NULL);
    if (rc == 0 && naddrs == 0)
        rc = qpc_identity_peer_upsert(id, key, NULL, NULL, now_ms, QPC_PEER_SOURCE_MANUAL,
                                      QPC_PEER_CLIENT, NULL);
    if (rc == 0 && name != NULL && name[0] != '\0')
        rc = qpc_identity_peer_set_name(id, key, name);
    if (rc < 0)
        snprintf(err, errlen, "cannot add the peer: %s", qpc_strerror(rc));
    return rc;
}

/* ---- the text form ---------------------------------------------------------------------- */

static bool unreserved(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* Appends value percent-encoded; false when it does not fit. */
static bool put_encoded(char *out, size_t cap, size_t *used, const char *value, bool keep_addr)
{
    for (const unsigned char *v = (const unsigned char *)value; *v; v++) {
        int n = unreserved(*v) || (keep_addr && (*v == ':' || *v == '[' || *v == ']'))
                    ? snprintf(out + *used, cap - *used, "%c", *v)
                    : snprintf(out + *used, cap - *used, "%%%02X", *v);

        if (n < 0 || (size_t)n >= cap - *used)
            return false;
        *used += (size_t)n;
    }
    return true;
}

int contacts_card_format(char *out, size_t cap, const struct contacts_card *card)
{
    char hex[QPC_KEY_HEX_LEN];
    const char *sep = "?";   /* before the first parameter, then "&" */
    size_t used;
    int n;

    qpc_key_to_hex(hex, card->key);
    n = snprintf(out, cap, "%s%s", CONTACTS_CARD_SCHEME, hex);
    if (n < 0 || (size_t)n >= cap)
        goto too_large;
    used = (size_t)n;
    if (card->name[0] != '\0') {
        n = snprintf(out + used, cap - used, "%sname=", sep);
        sep = "&";
        if (n < 0 || (size_t)n >= cap - used)
            goto too_large;
        used += (size_t)n;
        if (!put_encoded(out, cap, &used, card->name, false))
            goto too_large;
    }
    for (size_t i = 0; i < card->naddrs && i < CONTACTS_CARD_ADDRS_MAX; i++) {
        n = snprintf(out + used, cap - used, "%saddr=", sep);
        sep = "&";
        if (n < 0 || (size_t)n >= cap - used)
            goto too_large;
        used += (size_t)n;
        if (!put_encoded(out, cap, &used, card->addrs[i], true))
            goto too_large;
    }
    return (int)used;
too_large:
    if (cap > 0)
        out[0] = '\0';
    return QPC_ERR_TOO_LARGE;
}

bool contacts_is_card(const char *text)
{
    while (isspace((unsigned char)*text))
        text++;
    return strncasecmp(text, CONTACTS_CARD_SCHEME, strlen(CONTACTS_CARD_SCHEME)) == 0;
}

/* Decodes %XX escapes of s[0..len) into out (cap bytes, NUL-terminated); false if bad. */
static bool decode_value(const char *s, size_t len, char *out, size_t cap)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '%') {
            char h[3];

            if (i + 2 >= len || !isxdigit((unsigned char)s[i + 1]) || !isxdigit((unsigned char)s[i + 2]))
                return false;
            h[0] = s[i + 1], h[1] = s[i + 2], h[2] = '\0';
            c = (unsigned char)strtoul(h, NULL, 16);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (c == '\0' || o + 1 >= cap)
            return false;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return true;
}

int contacts_card_parse(const char *text, struct contacts_card *out, char *err, size_t errlen)
{
    const char *p = text, *end;
    char hex[2 * QPC_KEY_LEN + 1], value[CONTACTS_CARD_MAX];
    char scratch[1];

    if (err == NULL || errlen == 0)
        err = scratch, errlen = 0;
    memset(out, 0, sizeof(*out));
    while (isspace((unsigned char)*p))
        p++;
    end = p + strlen(p);
    while (end > p && isspace((unsigned char)end[-1]))
        end--;
    if ((size_t)(end - p) > CONTACTS_CARD_MAX || !contacts_is_card(p)) {
        snprintf(err, errlen, "not an identity in text form (qpc:<peer id>?name=..&addr=..)");
        return QPC_ERR_INVALID;
    }
    p += strlen(CONTACTS_CARD_SCHEME);
    if (end - p < 2 * QPC_KEY_LEN || (end - p > 2 * QPC_KEY_LEN && p[2 * QPC_KEY_LEN] != '?')) {
        snprintf(err, errlen, "the peer id in a qpc: text must be 64 hex digits");
        return QPC_ERR_INVALID;
    }
    memcpy(hex, p, 2 * QPC_KEY_LEN);
    hex[2 * QPC_KEY_LEN] = '\0';
    for (char *h = hex; *h; h++)
        *h = (char)tolower((unsigned char)*h);
    if (qpc_key_from_hex(out->key, hex) < 0) {
        snprintf(err, errlen, "the peer id in a qpc: text must be 64 hex digits");
        return QPC_ERR_INVALID;
    }
    p += 2 * QPC_KEY_LEN;
    if (p < end)
        p++;   /* '?' */
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p)), *eq;
        const char *stop = amp != NULL ? amp : end;

        eq = memchr(p, '=', (size_t)(stop - p));
        if (eq != NULL && !decode_value(eq + 1, (size_t)(stop - eq - 1), value, sizeof(value))) {
            snprintf(err, errlen, "a bad %%-escape in the qpc: text");
            return QPC_ERR_INVALID;
        }
        if (eq != NULL && eq - p == 4 && strncmp(p, "name", 4) == 0) {
            if (strlen(value) > QPC_IDENTITY_NAME_MAX || !qpc_utf8_valid(value, strlen(value))) {
                snprintf(err, errlen, "the name in the qpc: text is not 1 to %d bytes of UTF-8",
                         QPC_IDENTITY_NAME_MAX);
                return QPC_ERR_INVALID;
            }
            memcpy(out->name, value, strlen(value) + 1);
        } else if (eq != NULL && eq - p == 4 && strncmp(p, "addr", 4) == 0) {
            if (!qpc_addr_valid(value) || strlen(value) > QPC_ADDRESS_MAX) {
                snprintf(err, errlen, "'%.64s' in the qpc: text is not a host:port address", value);
                return QPC_ERR_INVALID;
            }
            if (out->naddrs < CONTACTS_CARD_ADDRS_MAX)
                memcpy(out->addrs[out->naddrs++], value, strlen(value) + 1);
        }
        p = amp != NULL ? amp + 1 : end;
    }
    return 0;
}
