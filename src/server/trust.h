/*
 * trust.h: which node may speak for which federation domain.
 *
 * The one idea (DESIGN.md, "Federation trust is bound to the domain"): a domain is
 * proven, never claimed. With federation_trust = "key" (the default) each domain has
 * one Ed25519 key: the one written beside its address in [federation_peers], or, for a
 * node only learned from mDNS, the key it showed the first time this node dialled it,
 * pinned then in identity.json (QPC_PIN_DOMAIN, trust on first use). A key already
 * bound to one domain never proves another, and a configured domain is never taken
 * over by what mDNS says. With federation_trust = "ca" the CA's certificate must list
 * the domain as a subjectAltName dNSName, checked on both sides of the mutual TLS.
 *
 * federation.c asks which key or name to insist on when it dials a domain and whether
 * the node it reached may have its rows (trust_accept_dialled); federation_service.c
 * asks whether a connected node proves the origin_domain of its requests
 * (trust_check_claim).
 */
#ifndef QPC_SERVER_TRUST_H
#define QPC_SERVER_TRUST_H

#include <stdbool.h>
#include <stdint.h>

#include "qpc/encoding.h"
#include "node.h"

struct session;

/* Reads [federation_peers] ("host:port" or "host:port KEY") into the table of configured
 * domains. 0 or QPC_ERR_NOMEM (the settings were validated: every entry parses). */
int trust_start(struct node *n);
void trust_stop(struct node *n);

/* True with federation_trust = "key": the federation endpoint shows the identity key. */
bool trust_by_key(const struct node *n);

/* The address configured for domain (borrowed, valid until trust_stop), or NULL when
 * the domain is not in [federation_peers]. Case-insensitive. */
const char *trust_peer_address(const struct node *n, const char *domain);

/*
 * The key domain must prove (key mode): the configured one, else the one pinned on
 * first use. Returns 0 (key filled), QPC_ERR_NOT_FOUND (no key known yet: the first
 * dial learns it) or QPC_ERR_INVALID.
 */
int trust_domain_key(const struct node *n, const char *domain, uint8_t key[static QPC_KEY_LEN]);

/*
 * Key mode: the node this one dialled for domain showed key (its TLS handshake proved
 * it holds it). Accepts when key is the one known for domain; when none is known yet,
 * and key speaks for no other domain, pins it for domain (saved in identity.json, so
 * the binding survives restarts) and accepts. Returns 0 or QPC_ERR_REFUSED (logged).
 */
int trust_accept_dialled(struct node *n, const char *domain, const uint8_t key[static QPC_KEY_LEN]);

enum trust_claim {
    TRUST_PROVEN,      /* the peer's key or certificate is the one for that domain */
    TRUST_UNPROVEN,    /* key mode: a key nobody knows, claiming a domain nobody pinned */
    TRUST_REFUSED,     /* the domain belongs to another key, or the key to another domain,
                        * or (CA mode) the certificate does not name the domain */
};

/*
 * Whether the peer of an accepted federation session s may say it is domain (the
 * origin_domain of its requests). An unproven peer may still hand over envelopes for
 * this node's own users (any client could), but nothing that relies on who it is.
 */
enum trust_claim trust_check_claim(const struct node *n, const struct session *s,
                                   const char *domain);

#endif
