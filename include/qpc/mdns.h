/*
 * mdns.h: announce a node or a peer and find nearby ones with mDNS / DNS-SD.
 *
 * A node announces the service `_quicprochat._udp.local.` with three TXT
 * records, `ver=1`, `server=<host:port>` and `domain=<local_domain>` (qpc_mdns_announce).
 * A client that listens for P2P announces `_quicprochat-p2p._udp.local.` with `ver=1`,
 * `peer=<hex key>` and `p2p=<host:port>` (qpc_mdns_announce_service, which takes any
 * service type and TXT set). Browsers ask for one or more service types and resolve
 * each instance to a host, an address, a port and every TXT key=value pair.
 *
 * The one idea: there is no avahi-daemon. Each process embeds its own mDNS responder
 * (Avahi's avahi-core) driven by the process's single libev loop, so a node works in a
 * bare network namespace or on a router without D-Bus. Because several responders may
 * share one host (two nodes, or a node beside avahi-daemon), each embedded responder
 * needs a host name of its own: pass a label such as "qpc-1a2b3c4d" made from the node's
 * identity (qpc_mdns_host_label_from_key). Name collisions are handled as RFC 6762 asks:
 * a taken host name or instance name is replaced by an alternative ("name #2") and
 * announced again; qpc_mdns_announced_name() tells which name won.
 *
 * Everything learned by browsing is a claim by some host on the link, not a proof: use
 * it to find addresses, and let the TLS handshake with the expected key decide who is
 * who.
 *
 * Nothing here blocks; everything happens in callbacks of the caller's libev loop. All
 * functions must be called from the thread that runs that loop.
 */
#ifndef QPC_MDNS_H
#define QPC_MDNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "qpc/encoding.h"

#define QPC_MDNS_SERVICE_TYPE "_quicprochat._udp" /* nodes; the domain ".local." is added */
#define QPC_MDNS_P2P_SERVICE_TYPE "_quicprochat-p2p._udp" /* clients listening for P2P */
#define QPC_MDNS_TXT_VERSION "1"                  /* value of the ver= TXT record */
#define QPC_MDNS_LABEL_MAX 63                     /* bytes of one DNS label */
#define QPC_MDNS_HOST_LABEL_LEN (4 + 8 + 1)       /* "qpc-" + 8 hex + NUL */
#define QPC_MDNS_TXT_MAX 16        /* TXT pairs announced, and reported per instance */
#define QPC_MDNS_TXT_ITEM_MAX 255  /* bytes of one "key=value" TXT string */
#define QPC_MDNS_BROWSE_TYPES_MAX 4 /* service types one responder browses at a time */

struct qpc_mdns;

/* How the embedded responder is set up. Zero-initialise and fill what you need. */
struct qpc_mdns_config {
    /*
     * Host name label to claim (no ".local"). NULL: "qpc-" and 8 random hex digits.
     * Copied. If the name is taken on the link an alternative ("qpc-1a2b3c4d-2") is used.
     */
    const char *host_label;
    /*
     * NULL-terminated list of interface names to use (e.g. {"br-mesh", NULL}), or NULL
     * for every multicast-capable interface. Copied. Tests restrict this to their own
     * interfaces so no traffic leaves the machine.
     */
    const char *const *interfaces;
    bool use_ipv6; /* also run mDNS over IPv6 (ff02::fb) */
};

/* One TXT record, "key=value". */
struct qpc_mdns_txt {
    const char *key;   /* printable ASCII without '=', not empty */
    const char *value; /* "" for a record "key=" or "key"; cut at the first NUL byte */
};

/* A resolved instance of a service, as reported to a browse callback. */
struct qpc_mdns_service {
    const char *type;    /* service type it was browsed as, e.g. "_quicprochat-p2p._udp" */
    const char *name;    /* instance name, e.g. "nodeA" (unescaped UTF-8) */
    const char *host;    /* target host name, e.g. "qpc-1a2b3c4d.local" */
    const char *address; /* numeric address of host, e.g. "10.201.0.1" or "fe80::1" */
    uint16_t port;       /* port of the SRV record */
    int ifindex;         /* interface it was seen on */
    bool is_local;       /* announced by this very process */
    /* TXT values; NULL when the record is absent. Clients should ignore an instance
     * whose ver is not QPC_MDNS_TXT_VERSION. */
    const char *ver;
    const char *server;
    const char *domain;
    /* Every TXT record in the order announced (at most QPC_MDNS_TXT_MAX; further ones
     * are left out), ver/server/domain included. */
    const struct qpc_mdns_txt *txt;
    size_t txt_count;
};

/* What qpc_mdns_announce_service announces. */
struct qpc_mdns_announcement {
    const char *type;     /* service type such as QPC_MDNS_P2P_SERVICE_TYPE; NULL: the node's */
    const char *instance; /* instance name: one DNS label, at most QPC_MDNS_LABEL_MAX bytes */
    uint16_t port;        /* SRV port, not 0 */
    const struct qpc_mdns_txt *txt; /* txt_count records, announced in this order */
    size_t txt_count;     /* at most QPC_MDNS_TXT_MAX */
};

/*
 * Called when an instance is resolved (added = true; called again with added = true
 * when its records change) and when it goes away (added = false: a goodbye packet or
 * the records' TTL ran out; the fields are those last reported). Only instances that
 * were reported as added are reported as removed. svc and every string in it belong to
 * the library and are valid only during the call: copy what you keep. The callback may
 * call qpc_mdns_browse_stop() but must not call qpc_mdns_free().
 */
typedef void (*qpc_mdns_browse_cb)(const struct qpc_mdns_service *svc, bool added, void *arg);

/*
 * Writes "qpc-" and the first 8 hex digits of key into label: a host label that is
 * stable for a node and unlikely to collide with another node's.
 */
void qpc_mdns_host_label_from_key(char label[static QPC_MDNS_HOST_LABEL_LEN],
                                  const uint8_t key[static QPC_KEY_LEN]);

/*
 * Starts an embedded mDNS responder on loop (borrowed: it must outlive the responder)
 * with cfg (may be NULL for defaults; copied). It neither announces nor browses until
 * told. On success *out is the new responder, freed with qpc_mdns_free.
 * Returns 0, QPC_ERR_INVALID (bad host label or interface name), QPC_ERR_NOMEM, or
 * QPC_ERR_IO (sockets could not be opened: e.g. no permission for port 5353 or no
 * network stack; qpc_mdns_last_error() is not available then, see stderr).
 */
int qpc_mdns_new(struct ev_loop *loop, const struct qpc_mdns_config *cfg, struct qpc_mdns **out);

/*
 * Stops everything, sends goodbye packets for what was announced (synchronously, so
 * a process may exit right after) and frees m. NULL is a no-op.
 */
void qpc_mdns_free(struct qpc_mdns *m);

/*
 * Announces one instance of any service type with the caller's TXT records (a). Every
 * string is copied. The announcement goes out when the responder is running (probing
 * takes about a second); on a name collision the instance is renamed and announced
 * again. Announcing again replaces the previous instance (one per responder).
 * Returns 0, QPC_ERR_INVALID (a NULL; a type that is not "_name._udp" or "_name._tcp"
 * with a service name of at most 15 characters; empty or too long instance; port 0;
 * more than QPC_MDNS_TXT_MAX records; an empty key, a key with '=' or a byte outside
 * printable ASCII, a key given twice, a NULL value, or "key=value" longer than
 * QPC_MDNS_TXT_ITEM_MAX), QPC_ERR_NOMEM, or QPC_ERR_IO (Avahi refused the records).
 * On error the previous announcement is left as it was, except after QPC_ERR_IO
 * (withdrawn).
 */
int qpc_mdns_announce_service(struct qpc_mdns *m, const struct qpc_mdns_announcement *a);

/*
 * Announces a node: one instance of _quicprochat._udp with exactly the TXT records
 * ver=1, server=<server> (the "host:port" clients should dial) and domain=<domain> (the
 * node's federation domain; NULL or "" leaves domain= out), in that order. Otherwise as
 * qpc_mdns_announce_service. Returns 0, QPC_ERR_INVALID (empty or too long name, port 0,
 * server NULL or empty, or a TXT value too long), QPC_ERR_NOMEM, or QPC_ERR_IO.
 */
int qpc_mdns_announce(struct qpc_mdns *m, const char *instance, uint16_t port, const char *server,
                      const char *domain);

/*
 * Withdraws the instance announced by qpc_mdns_announce(_service), sending goodbye packets
 * (TTL 0) so browsers drop it at once. Nothing announced is not an error. Returns 0.
 */
int qpc_mdns_withdraw(struct qpc_mdns *m);

/*
 * The instance name currently announced (after any collision renames), or NULL when
 * nothing is announced. Owned by m, valid until the next call into m.
 */
const char *qpc_mdns_announced_name(const struct qpc_mdns *m);

/*
 * True once the announced instance and the address records of our host name have
 * passed probing and are published on the link. False again while a collision rename
 * is being probed.
 */
bool qpc_mdns_is_established(const struct qpc_mdns *m);

/*
 * The host name our SRV record points at ("qpc-1a2b3c4d.local", or an alternative such
 * as "qpc-1a2b3c4d-2.local" after a collision); owned by m, valid until the next call
 * into m or the next loop iteration.
 */
const char *qpc_mdns_host_name(const struct qpc_mdns *m);

/*
 * Starts browsing for instances of service type `type` (e.g. QPC_MDNS_P2P_SERVICE_TYPE;
 * copied) on the local link, resolving each one. cb (with arg, borrowed) is called from
 * the loop as described at qpc_mdns_browse_cb, with svc->type set to the type. Up to
 * QPC_MDNS_BROWSE_TYPES_MAX types can be browsed at once, each with its own callback.
 * Any host on the link can announce instances, so at most 512 of each type are tracked
 * at a time (a crowd of one type cannot hide another); further ones are ignored until
 * some go away (qpc_mdns_last_error says so). Returns 0, QPC_ERR_INVALID (type or cb NULL, type not a valid service type),
 * QPC_ERR_EXISTS (that type is browsed already), QPC_ERR_STORE_FULL (as many types as
 * allowed are browsed), QPC_ERR_NOMEM or QPC_ERR_IO.
 */
int qpc_mdns_browse_type_start(struct qpc_mdns *m, const char *type, qpc_mdns_browse_cb cb,
                               void *arg);

/* qpc_mdns_browse_type_start for the nodes' type, QPC_MDNS_SERVICE_TYPE. */
int qpc_mdns_browse_start(struct qpc_mdns *m, qpc_mdns_browse_cb cb, void *arg);

/*
 * How many instances of service type `type` are resolved right now (reported as added
 * and not yet as removed), each instance name counted once however many interfaces it
 * is seen on, this process's own announcement left out. For metrics: it walks the
 * instances tracked (at most 512 per type). 0 for NULL m or type.
 */
size_t qpc_mdns_seen_count(const struct qpc_mdns *m, const char *type);

/* Stops browsing every type and forgets every instance seen, without calling callbacks. */
void qpc_mdns_browse_stop(struct qpc_mdns *m);

/*
 * The value of TXT record key in svc (compared exactly), or NULL when svc has none. The
 * string belongs to svc and lives as long as it.
 */
const char *qpc_mdns_service_txt(const struct qpc_mdns_service *svc, const char *key);

/*
 * Text of the last asynchronous failure Avahi reported (probing failed, host name
 * could not be registered), or NULL if none. Owned by m (static text).
 */
const char *qpc_mdns_last_error(const struct qpc_mdns *m);

#endif
