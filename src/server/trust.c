/*
 * trust.c: the binding of federation domains to the keys or certificates that prove
 * them (trust.h). The configured domains come from [federation_peers]; domains learned
 * from mDNS are pinned on first use in the identity file (generic key pins of kind
 * QPC_PIN_DOMAIN, docs/identity.md), so this file keeps no store of its own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sodium.h>

#include "qpc/error.h"
#include "qpc/log.h"
#include "session.h"
#include "trust.h"

struct peer {
    const char *domain;                     /* borrowed from the settings */
    char addr[QPC_ADDRESS_MAX + 1];
    bool has_key;
    uint8_t key[QPC_KEY_LEN];
};

struct trust {
    bool by_key;
    struct peer *peers;
    size_t n_peers;
};

int trust_start(struct node *n)
{
    const struct qpc_config_table *t = &n->sc->federation_peers;
    struct trust *tr = calloc(1, sizeof(*tr));

    if (tr == NULL || (t->count > 0 && (tr->peers = calloc(t->count, sizeof(*tr->peers))) == NULL)) {
        free(tr);
        return QPC_ERR_NOMEM;
    }
    tr->by_key = strcmp(n->sc->federation_trust, "ca") != 0;
    for (size_t i = 0; i < t->count; i++) {
        const char *v = t->items[i].value;
        size_t alen = strcspn(v, " \t");
        struct peer *p = &tr->peers[tr->n_peers++];

        p->domain = t->items[i].name;
        snprintf(p->addr, sizeof(p->addr), "%.*s", (int)alen, v);
        if (v[alen] != '\0')   /* the config checked it is 64 hex digits */
            p->has_key = qpc_key_from_hex(p->key, v + alen + strspn(v + alen, " \t")) == 0;
    }
    n->trust = tr;
    return 0;
}

void trust_stop(struct node *n)
{
    if (n->trust == NULL)
        return;
    free(n->trust->peers);
    free(n->trust);
    n->trust = NULL;
}

bool trust_by_key(const struct node *n)
{
    return n->trust != NULL ? n->trust->by_key : strcmp(n->sc->federation_trust, "ca") != 0;
}

static const struct peer *configured(const struct node *n, const char *domain)
{
    if (n->trust == NULL || domain == NULL)
        return NULL;
    for (size_t i = 0; i < n->trust->n_peers; i++)
        if (strcasecmp(n->trust->peers[i].domain, domain) == 0)
            return &n->trust->peers[i];
    return NULL;
}

const char *trust_peer_address(const struct node *n, const char *domain)
{
    const struct peer *p = configured(n, domain);

    return p != NULL ? p->addr : NULL;
}

int trust_domain_key(const struct node *n, const char *domain, uint8_t key[static QPC_KEY_LEN])
{
    const struct peer *p;

    if (domain == NULL || domain[0] == '\0')
        return QPC_ERR_INVALID;
    p = configured(n, domain);
    if (p != NULL) {
        if (!p->has_key)
            return QPC_ERR_NOT_FOUND;
        memcpy(key, p->key, QPC_KEY_LEN);
        return 0;
    }
    return qpc_identity_pin_lookup(n->identity, QPC_PIN_DOMAIN, domain, key);
}

/* The domain key speaks for, configured or pinned (borrowed), or NULL. */
static const char *domain_of_key(const struct node *n, const uint8_t key[static QPC_KEY_LEN])
{
    const struct qpc_pin *pin = NULL;

    for (size_t i = 0; n->trust != NULL && i < n->trust->n_peers; i++)
        if (n->trust->peers[i].has_key &&
            sodium_memcmp(n->trust->peers[i].key, key, QPC_KEY_LEN) == 0)
            return n->trust->peers[i].domain;
    while ((pin = qpc_identity_pin_next(n->identity, QPC_PIN_DOMAIN, pin)) != NULL)
        if (pin->has_key && sodium_memcmp(pin->key, key, QPC_KEY_LEN) == 0)
            return pin->name;
    return NULL;
}

int trust_accept_dialled(struct node *n, const char *domain, const uint8_t key[static QPC_KEY_LEN])
{
    uint8_t known[QPC_KEY_LEN];
    char hex[QPC_KEY_HEX_LEN], path[4096], err[512] = "";
    const char *other;
    int rc;

    qpc_key_to_hex(hex, key);
    rc = trust_domain_key(n, domain, known);
    if (rc == 0) {
        if (sodium_memcmp(known, key, QPC_KEY_LEN) == 0)
            return 0;
        qpc_log_warn("federation", "node %s showed key %.16s..., not the one pinned for it; "
                     "refused", domain, hex);
        return QPC_ERR_REFUSED;
    }
    if (configured(n, domain) != NULL)
        return QPC_ERR_REFUSED;   /* configured without a key: only in CA mode */
    other = domain_of_key(n, key);
    if (other != NULL && strcasecmp(other, domain) != 0) {
        qpc_log_warn("federation", "the node found for %s has the key of %s; refused (one key "
                     "proves one domain)", domain, other);
        return QPC_ERR_REFUSED;
    }
    rc = qpc_identity_pin_key(n->identity, QPC_PIN_DOMAIN, domain, key, node_now_ms());
    if (rc != 0) {
        qpc_log_warn("federation", "cannot pin the key of %s: %s; refused", domain,
                     qpc_strerror(rc));
        return QPC_ERR_REFUSED;
    }
    snprintf(path, sizeof(path), "%s/identity.json", n->sc->data_dir);
    if (qpc_identity_save(n->identity, path, err, sizeof(err)) != 0)
        qpc_log_warn("federation", "the pin of %s is kept in memory only: %s", domain, err);
    qpc_log_info("federation", "pinned key %s for %s (first use; it alone proves that "
                 "domain from now on)", hex, domain);
    return 0;
}

enum trust_claim trust_check_claim(const struct node *n, const struct session *s,
                                   const char *domain)
{
    uint8_t known[QPC_KEY_LEN];
    const char *other;

    if (domain == NULL || domain[0] == '\0')
        return TRUST_UNPROVEN;
    if (!trust_by_key(n))
        return qpc_quic_conn_peer_has_name(s->conn, domain) == 0 ? TRUST_PROVEN : TRUST_REFUSED;
    if (!s->has_peer_key)
        return TRUST_REFUSED;
    if (trust_domain_key(n, domain, known) == 0)
        return sodium_memcmp(known, s->key, QPC_KEY_LEN) == 0 ? TRUST_PROVEN : TRUST_REFUSED;
    other = domain_of_key(n, s->key);
    if (other != NULL && strcasecmp(other, domain) != 0)
        return TRUST_REFUSED;
    return TRUST_UNPROVEN;
}
