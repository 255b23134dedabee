/*
 * mdns.c: mDNS / DNS-SD announcement and discovery of quicprochat nodes and peers on
 * avahi-core.
 *
 * Each process embeds an Avahi responder (AvahiServer) that runs on the process's
 * libev loop through mdns_poll.c. The one idea: Avahi is a state machine driven by
 * callbacks, so qpc_mdns_announce only remembers what to announce, and the records are
 * (re)built from that whenever the responder reaches RUNNING, whenever the link reports
 * a collision (under an alternative name), and whenever our addresses change. There
 * are two record groups: the host group (A/AAAA of our host name, which we publish
 * ourselves to avoid Avahi's reverse PTR records; see docs/mdns.md) and the service
 * group (PTR, SRV, TXT) of the one announced instance, whose type and TXT set the
 * caller chooses. Browsing runs one Avahi browser per service type asked for and keeps
 * one resolver per instance seen, keyed by browser, interface, protocol and name, so a
 * goodbye can be reported with the data the caller saw when the instance was added.
 */
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sodium.h>
/* Instance names in the browse table arrive from any host on the link: keyed hash, and
 * an insert that cannot allocate fails instead of exit()ing (e->hh.tbl stays NULL). */
#define HASH_NONFATAL_OOM 1
#include "qpc/uthash_keyed.h"

#include <avahi-common/alternative.h>
#include <avahi-common/domain.h>
#include <avahi-common/error.h>
#include <avahi-common/malloc.h>
#include <avahi-common/strlst.h>
#include <avahi-core/core.h>
#include <avahi-core/log.h>
#include <avahi-core/lookup.h>
#include <avahi-core/publish.h>

#include "mdns_poll.h"
#include "mdns_txt.h"
#include "qpc/error.h"
#include "qpc/log.h"
#include "qpc/mdns.h"

#define TXT_VALUE_MAX 200      /* node TXT values (server=, domain=): the old, tighter limit */
#define HOST_ADDRS_MAX 32      /* addresses we publish for our host name */
#define ADDR_RESCAN_S 5.0      /* how often interface addresses are checked for changes */
#define SEEN_MAX 512           /* instances tracked per type (one resolver each); more are ignored */
#define AVAHI_LOG_BURST 10     /* avahi-core lines logged per window ... */
#define AVAHI_LOG_WINDOW_S 60  /* ... the rest are counted and reported once */

#define SEEN_KEY_MAX (48 + AVAHI_LABEL_MAX * 4)

/* One service type being browsed, with its caller's callback. */
struct browser {
    char *type;                   /* NULL: slot free */
    AvahiSServiceBrowser *avahi;
    qpc_mdns_browse_cb cb;
    void *arg;
    struct qpc_mdns *m;
    size_t tracked;               /* its instances in qpc_mdns.seen */
};

/* Resolved data of one instance; every string is owned here. */
struct seen_data {
    char *host, *address, *ver, *server, *domain;
    struct mdns_txt_pairs txt;
};

/* One instance seen by a browser; the hash key names it on one interface/protocol. */
struct seen_service {
    char key[SEEN_KEY_MAX];
    AvahiSServiceResolver *resolver;
    bool reported; /* reported as added, so its removal is reported too */
    struct qpc_mdns_service svc; /* points into name, br->type and d */
    struct qpc_mdns_txt txt[QPC_MDNS_TXT_MAX];
    char *name;
    struct seen_data d;
    struct browser *br;
    UT_hash_handle hh;
};

/* An address of ours and the interface it lives on: one A or AAAA record. */
struct host_addr {
    AvahiIfIndex ifindex;
    AvahiAddress addr;
};

struct qpc_mdns {
    struct ev_loop *loop;
    struct qpc_mdns_poll *poll;
    AvahiServer *server;
    bool use_ipv6;
    char **interfaces; /* NULL-terminated copy of cfg->interfaces, or NULL for all */
    const char *last_error;

    /*
     * Host name records: A/AAAA for "<label>.local" on each interface, published by us
     * rather than by Avahi (publish_addresses = 0) so that no reverse PTR is published:
     * two responders on one host would both claim "1.0.0.127.in-addr.arpa" with
     * different targets and rename themselves forever.
     */
    char *host_label;            /* current: the caller's, or an alternative */
    char host_fqdn[AVAHI_DOMAIN_NAME_MAX];
    AvahiSEntryGroup *host_group;
    bool host_established;
    struct host_addr addrs[HOST_ADDRS_MAX];
    size_t n_addrs;
    ev_timer rescan;

    /* announcement: what the caller asked for, and the records that carry it */
    bool announcing;
    char *instance;  /* current name: the caller's, or an alternative after a collision */
    char *type;      /* service type announced */
    uint16_t port;
    AvahiStringList *txt; /* the caller's TXT records (Avahi keeps lists reversed) */
    AvahiSEntryGroup *group;
    bool established;

    /* browsing */
    struct browser browsers[QPC_MDNS_BROWSE_TYPES_MAX];
    struct seen_service *seen; /* uthash, over every browser */
};

static int err_from_avahi(int aerr)
{
    switch (aerr) {
    case AVAHI_OK: return 0;
    case AVAHI_ERR_NO_MEMORY: return QPC_ERR_NOMEM;
    case AVAHI_ERR_COLLISION: return QPC_ERR_EXISTS;
    case AVAHI_ERR_INVALID_HOST_NAME:
    case AVAHI_ERR_INVALID_DOMAIN_NAME:
    case AVAHI_ERR_INVALID_SERVICE_NAME:
    case AVAHI_ERR_INVALID_SERVICE_TYPE:
    case AVAHI_ERR_INVALID_PORT:
    case AVAHI_ERR_INVALID_RECORD:
    case AVAHI_ERR_INVALID_ARGUMENT:
    case AVAHI_ERR_INVALID_CONFIG: return QPC_ERR_INVALID;
    default: return QPC_ERR_IO;
    }
}

/*
 * avahi-core chats at info level ("Joining mDNS multicast group ..."); keep warnings and
 * errors. Any host on the link can make Avahi warn (malformed or misdirected packets),
 * so the lines go through qpc_log (its sink, its control-byte stripping) at most
 * AVAHI_LOG_BURST per AVAHI_LOG_WINDOW_S, and the rest are counted. The log function is
 * process-wide in Avahi, hence the process-wide, locked state.
 */
static struct {
    pthread_mutex_t lock;
    bool started;
    time_t window_start;
    unsigned logged, suppressed;
} avahi_log_limit = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void avahi_log_to_qpc(AvahiLogLevel level, const char *txt)
{
    struct timespec now;
    unsigned dropped = 0;
    bool pass;

    if (level > AVAHI_LOG_WARN)
        return;
    clock_gettime(CLOCK_MONOTONIC, &now);
    pthread_mutex_lock(&avahi_log_limit.lock);
    if (!avahi_log_limit.started || now.tv_sec - avahi_log_limit.window_start >= AVAHI_LOG_WINDOW_S) {
        dropped = avahi_log_limit.suppressed;
        avahi_log_limit.started = true;
        avahi_log_limit.window_start = now.tv_sec;
        avahi_log_limit.logged = avahi_log_limit.suppressed = 0;
    }
    pass = avahi_log_limit.logged < AVAHI_LOG_BURST;
    if (pass)
        avahi_log_limit.logged++;
    else if (avahi_log_limit.suppressed < UINT32_MAX)
        avahi_log_limit.suppressed++;
    pthread_mutex_unlock(&avahi_log_limit.lock);
    if (dropped > 0)
        qpc_log_warn("mdns", "%u avahi messages suppressed", dropped);
    if (pass)
        qpc_log(level <= AVAHI_LOG_ERROR ? QPC_LOG_ERROR : QPC_LOG_WARN, "mdns", "avahi: %s", txt);
}

void qpc_mdns_host_label_from_key(char label[static QPC_MDNS_HOST_LABEL_LEN],
                                  const uint8_t key[static QPC_KEY_LEN])
{
    char hex[QPC_KEY_HEX_LEN];

    qpc_key_to_hex(hex, key);
    snprintf(label, QPC_MDNS_HOST_LABEL_LEN, "qpc-%.8s", hex);
}

/* ---- our addresses ------------------------------------------------------------------ */

static bool interface_allowed(const struct qpc_mdns *m, const char *name)
{
    if (m->interfaces == NULL)
        return true;
    for (char **i = m->interfaces; *i != NULL; i++)
        if (strcmp(*i, name) == 0)
            return true;
    return false;
}

/*
 * Lists the addresses Avahi would announce for us: on interfaces that are up and can
 * do multicast (or are loopback), not point-to-point, and allowed by the config.
 */
static size_t collect_addresses(const struct qpc_mdns *m, struct host_addr out[static HOST_ADDRS_MAX])
{
    struct ifaddrs *list = NULL;
    size_t n = 0;

    if (getifaddrs(&list) != 0)
        return 0;
    for (struct ifaddrs *i = list; i != NULL && n < HOST_ADDRS_MAX; i = i->ifa_next) {
        if (i->ifa_addr == NULL || !(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_POINTOPOINT) ||
            !(i->ifa_flags & (IFF_MULTICAST | IFF_LOOPBACK)) || !interface_allowed(m, i->ifa_name))
            continue;
        memset(&out[n], 0, sizeof(out[n]));
        if (i->ifa_addr->sa_family == AF_INET) {
            out[n].addr.proto = AVAHI_PROTO_INET;
            out[n].addr.data.ipv4.address = ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr;
        } else if (i->ifa_addr->sa_family == AF_INET6 && m->use_ipv6) {
            out[n].addr.proto = AVAHI_PROTO_INET6;
            memcpy(out[n].addr.data.ipv6.address, &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, 16);
        } else {
            continue;
        }
        out[n].ifindex = (AvahiIfIndex)if_nametoindex(i->ifa_name);
        if (out[n].ifindex > 0)
            n++;
    }
    freeifaddrs(list);
    return n;
}

/* ---- announcing ------------------------------------------------------------------ */

static void group_changed(AvahiServer *s, AvahiSEntryGroup *g, AvahiEntryGroupState state,
                          void *userdata);

/* Replaces *name by Avahi's alternative: "name" -> "name #2" or "host" -> "host-2". */
static int rename_to_alternative(char **name, bool host)
{
    char *alt = host ? avahi_alternative_host_name(*name) : avahi_alternative_service_name(*name);
    char *copy;

    if (alt == NULL)
        return QPC_ERR_NOMEM;
    copy = strdup(alt);
    avahi_free(alt);
    if (copy == NULL)
        return QPC_ERR_NOMEM;
    free(*name);
    *name = copy;
    return 0;
}

/* Records an Avahi failure and turns it into our error code. */
static int fail_avahi(struct qpc_mdns *m, int aerr)
{
    if (aerr != AVAHI_OK)
        m->last_error = avahi_strerror(aerr);
    return err_from_avahi(aerr);
}

/* (Re)builds the A/AAAA records of our host name from the current addresses. */
static int publish_host(struct qpc_mdns *m, AvahiServer *s)
{
    int aerr = AVAHI_OK;

    if (m->host_group == NULL && (m->host_group = avahi_s_entry_group_new(s, group_changed, m)) == NULL)
        return fail_avahi(m, avahi_server_errno(s));
    avahi_s_entry_group_reset(m->host_group);
    m->host_established = false;
    snprintf(m->host_fqdn, sizeof(m->host_fqdn), "%s.local", m->host_label);
    m->n_addrs = collect_addresses(m, m->addrs);
    for (size_t i = 0; i < m->n_addrs && aerr == AVAHI_OK; i++)
        aerr = avahi_server_add_address(s, m->host_group, m->addrs[i].ifindex, AVAHI_PROTO_UNSPEC,
                                        AVAHI_PUBLISH_NO_REVERSE, m->host_fqdn, &m->addrs[i].addr);
    if (aerr == AVAHI_OK && m->n_addrs > 0)
        aerr = avahi_s_entry_group_commit(m->host_group);
    return fail_avahi(m, aerr);
}

/*
 * (Re)builds and commits the service records for the current instance name. A name
 * already taken by another service of this same responder is renamed here; one taken
 * elsewhere on the link comes back later as AVAHI_ENTRY_GROUP_COLLISION.
 */
static int publish_service(struct qpc_mdns *m, AvahiServer *s)
{
    AvahiProtocol proto = m->use_ipv6 ? AVAHI_PROTO_UNSPEC : AVAHI_PROTO_INET;
    int aerr = AVAHI_ERR_COLLISION;
    int ret;

    if (m->group == NULL && (m->group = avahi_s_entry_group_new(s, group_changed, m)) == NULL)
        return fail_avahi(m, avahi_server_errno(s));
    m->established = false;
    while (aerr == AVAHI_ERR_COLLISION) {
        avahi_s_entry_group_reset(m->group);
        aerr = avahi_server_add_service_strlst(s, m->group, AVAHI_IF_UNSPEC, proto, 0, m->instance,
                                               m->type, NULL, m->host_fqdn, m->port, m->txt);
        if (aerr == AVAHI_ERR_COLLISION && (ret = rename_to_alternative(&m->instance, false)) != 0)
            return ret;
    }
    if (aerr == AVAHI_OK)
        aerr = avahi_s_entry_group_commit(m->group);
    return fail_avahi(m, aerr);
}

static int publish_all(struct qpc_mdns *m, AvahiServer *s)
{
    int ret = publish_host(m, s);

    if (ret == 0)
        ret = publish_service(m, s);
    return ret;
}

static void group_changed(AvahiServer *s, AvahiSEntryGroup *g, AvahiEntryGroupState state,
                          void *userdata)
{
    struct qpc_mdns *m = userdata;
    bool host = g == m->host_group;

    switch (state) {
    case AVAHI_ENTRY_GROUP_ESTABLISHED:
        if (host)
            m->host_established = true;
        else
            m->established = true;
        break;
    case AVAHI_ENTRY_GROUP_COLLISION:
        /*
         * Someone on the link owns this name: take the next one and probe again. A new
         * host name changes the SRV target, so the service is rebuilt too.
         */
        if (host && rename_to_alternative(&m->host_label, true) == 0)
            publish_all(m, s);
        else if (!host && rename_to_alternative(&m->instance, false) == 0)
            publish_service(m, s);
        break;
    case AVAHI_ENTRY_GROUP_FAILURE:
        m->last_error = avahi_strerror(avahi_server_errno(s));
        break;
    case AVAHI_ENTRY_GROUP_UNCOMMITED:
    case AVAHI_ENTRY_GROUP_REGISTERING:
        break;
    }
}

/* Interfaces come and go (DHCP, a mesh link appearing): republish when they change. */
static void rescan_addresses(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct qpc_mdns *m = w->data;
    struct host_addr now[HOST_ADDRS_MAX];
    size_t n;

    (void)loop, (void)revents;
    if (!m->announcing || avahi_server_get_state(m->server) != AVAHI_SERVER_RUNNING)
        return;
    memset(now, 0, sizeof(now));
    n = collect_addresses(m, now);
    if (n != m->n_addrs || memcmp(now, m->addrs, n * sizeof(now[0])) != 0)
        publish_host(m, m->server);
}

static void server_changed(AvahiServer *s, AvahiServerState state, void *userdata)
{
    struct qpc_mdns *m = userdata;

    /* Avahi calls this from inside avahi_server_new, before m->server is set. */
    m->server = s;
    switch (state) {
    case AVAHI_SERVER_RUNNING:
        if (m->announcing && (m->group == NULL || avahi_s_entry_group_is_empty(m->group)))
            publish_all(m, s);
        break;
    case AVAHI_SERVER_COLLISION:
    case AVAHI_SERVER_REGISTERING:
        /* Avahi publishes no host records of its own here (we do), so this happens
         * only if it is reconfigured; start over once it runs again. */
        if (m->host_group != NULL)
            avahi_s_entry_group_reset(m->host_group);
        if (m->group != NULL)
            avahi_s_entry_group_reset(m->group);
        m->established = m->host_established = false;
        break;
    case AVAHI_SERVER_FAILURE:
        m->last_error = avahi_strerror(avahi_server_errno(s));
        break;
    case AVAHI_SERVER_INVALID:
        break;
    }
}

/* RFC 6763 §6.4: a key is printable US-ASCII other than '=', at least one character. */
static bool txt_key_valid(const char *key)
{
    if (key == NULL || key[0] == '\0')
        return false;
    for (const char *c = key; *c != '\0'; c++)
        if (*c < 0x20 || *c > 0x7e || *c == '=')
            return false;
    return true;
}

/*
 * "_name._udp" or "_name._tcp" with a service name of 1 to 15 letters, digits and
 * hyphens (RFC 6335 §5.1; Avahi's own check lets longer names through).
 */
static bool service_type_valid(const char *type)
{
    size_t n;

    if (type == NULL || type[0] != '_' || !avahi_is_valid_service_type_strict(type))
        return false;
    n = strcspn(type + 1, ".");
    if (n == 0 || n > 15 || (strcmp(type + 1 + n, "._udp") != 0 && strcmp(type + 1 + n, "._tcp") != 0))
        return false;
    for (size_t i = 1; i <= n; i++)
        if (!(type[i] == '-' || (type[i] >= 'a' && type[i] <= 'z') || (type[i] >= 'A' && type[i] <= 'Z') ||
              (type[i] >= '0' && type[i] <= '9')))
            return false;
    return true;
}

static bool announcement_valid(const struct qpc_mdns_announcement *a, const char *type)
{
    if (a->instance == NULL || a->instance[0] == '\0' || strlen(a->instance) > QPC_MDNS_LABEL_MAX ||
        a->port == 0 || !service_type_valid(type) || a->txt_count > QPC_MDNS_TXT_MAX ||
        (a->txt_count > 0 && a->txt == NULL))
        return false;
    for (size_t i = 0; i < a->txt_count; i++) {
        if (!txt_key_valid(a->txt[i].key) || a->txt[i].value == NULL ||
            strlen(a->txt[i].key) + 1 + strlen(a->txt[i].value) > QPC_MDNS_TXT_ITEM_MAX)
            return false;
        for (size_t j = 0; j < i; j++)
            if (strcmp(a->txt[i].key, a->txt[j].key) == 0)
                return false;
    }
    return true;
}

int qpc_mdns_announce_service(struct qpc_mdns *m, const struct qpc_mdns_announcement *a)
{
    const char *type = a != NULL && a->type != NULL ? a->type : QPC_MDNS_SERVICE_TYPE;
    char *name = NULL, *typ = NULL;
    AvahiStringList *txt = NULL;
    int ret = QPC_ERR_INVALID;

    if (m == NULL || a == NULL || !announcement_valid(a, type))
        goto cleanup;
    ret = QPC_ERR_NOMEM;
    name = strdup(a->instance);
    typ = strdup(type);
    if (name == NULL || typ == NULL)
        goto cleanup;
    for (size_t i = 0; i < a->txt_count; i++) {
        AvahiStringList *more = avahi_string_list_add_pair(txt, a->txt[i].key, a->txt[i].value);

        if (more == NULL)
            goto cleanup;
        txt = more;
    }
    qpc_mdns_withdraw(m);
    m->instance = name;
    m->type = typ;
    m->txt = txt;
    m->port = a->port;
    m->announcing = true;
    name = typ = NULL;
    txt = NULL;
    ret = 0;
    if (avahi_server_get_state(m->server) == AVAHI_SERVER_RUNNING)
        ret = publish_all(m, m->server);
    if (ret != 0)
        qpc_mdns_withdraw(m);
cleanup:
    free(name);
    free(typ);
    avahi_string_list_free(txt);
    return ret;
}

int qpc_mdns_announce(struct qpc_mdns *m, const char *instance, uint16_t port, const char *server,
                      const char *domain)
{
    struct qpc_mdns_txt txt[3] = {
        { "ver", QPC_MDNS_TXT_VERSION }, { "server", server }, { "domain", domain },
    };
    struct qpc_mdns_announcement a = {
        .type = QPC_MDNS_SERVICE_TYPE, .instance = instance, .port = port, .txt = txt,
        .txt_count = domain != NULL && domain[0] != '\0' ? 3 : 2,
    };

    if (server == NULL || server[0] == '\0' || strlen(server) > TXT_VALUE_MAX ||
        (domain != NULL && strlen(domain) > TXT_VALUE_MAX))
        return QPC_ERR_INVALID;
    return qpc_mdns_announce_service(m, &a);
}

int qpc_mdns_withdraw(struct qpc_mdns *m)
{
    /* Freeing a group sends goodbyes (TTL 0) for its records. */
    if (m->group != NULL)
        avahi_s_entry_group_free(m->group);
    if (m->host_group != NULL)
        avahi_s_entry_group_free(m->host_group);
    m->group = m->host_group = NULL;
    m->announcing = m->established = m->host_established = false;
    free(m->instance);
    free(m->type);
    avahi_string_list_free(m->txt);
    m->instance = m->type = NULL;
    m->txt = NULL;
    return 0;
}

const char *qpc_mdns_announced_name(const struct qpc_mdns *m)
{
    return m->announcing ? m->instance : NULL;
}

bool qpc_mdns_is_established(const struct qpc_mdns *m)
{
    return m->established && m->host_established;
}

const char *qpc_mdns_host_name(const struct qpc_mdns *m)
{
    return m->host_fqdn;
}

const char *qpc_mdns_last_error(const struct qpc_mdns *m)
{
    return m->last_error;
}

/* ---- browsing -------------------------------------------------------------------- */

static void seen_data_clear(struct seen_data *d)
{
    free(d->host);
    free(d->address);
    free(d->ver);
    free(d->server);
    free(d->domain);
    mdns_txt_pairs_clear(&d->txt);
    memset(d, 0, sizeof(*d));
}

static void seen_free(struct seen_service *e)
{
    if (e->resolver != NULL)
        avahi_s_service_resolver_free(e->resolver);
    seen_data_clear(&e->d);
    free(e->name);
    free(e);
}

/*
 * Splits one TXT string into a copied key and value ("" when there is no '='). A value
 * containing NUL bytes is cut at the first one. Returns 0, 1 (not a key=value string:
 * empty key; skip it) or QPC_ERR_NOMEM.
 */
static int txt_pair(AvahiStringList *item, char **key, char **value)
{
    char *k = NULL, *v = NULL;
    int ret = 0;

    *key = *value = NULL;
    if (avahi_string_list_get_pair(item, &k, &v, NULL) < 0)
        return QPC_ERR_NOMEM;
    if (k == NULL || k[0] == '\0') {
        ret = 1;
    } else {
        *key = strdup(k);
        *value = strdup(v != NULL ? v : "");
        if (*key == NULL || *value == NULL) {
            free(*key);
            free(*value);
            *key = *value = NULL;
            ret = QPC_ERR_NOMEM;
        }
    }
    avahi_free(k);
    avahi_free(v);
    return ret;
}

const char *mdns_txt_find(const struct mdns_txt_pairs *p, const char *key)
{
    for (size_t i = 0; i < p->count; i++)
        if (strcmp(p->key[i], key) == 0)
            return p->value[i];
    return NULL;
}

void mdns_txt_pairs_clear(struct mdns_txt_pairs *p)
{
    for (size_t i = 0; i < p->count; i++) {
        free(p->key[i]);
        free(p->value[i]);
    }
    memset(p, 0, sizeof(*p));
}

/* Copies the value of TXT key into *out (NULL when absent). Returns 0 or QPC_ERR_NOMEM. */
static int txt_value(const struct seen_data *d, const char *key, char **out)
{
    const char *v = mdns_txt_find(&d->txt, key);

    *out = v != NULL ? strdup(v) : NULL;
    return v != NULL && *out == NULL ? QPC_ERR_NOMEM : 0;
}

/*
 * Avahi keeps a string list in reverse order (parsed ones too), so the list is walked
 * backwards by first counting.
 */
int mdns_txt_copy_all(struct mdns_txt_pairs *d, AvahiStringList *txt)
{
    AvahiStringList *items[QPC_MDNS_TXT_MAX];
    unsigned total = avahi_string_list_length(txt);
    unsigned skip = total > QPC_MDNS_TXT_MAX ? total - QPC_MDNS_TXT_MAX : 0;
    size_t n = 0;
    int ret = 0;

    /* The list's first element is the wire's last: drop the surplus from the front. */
    for (AvahiStringList *i = txt; i != NULL; i = avahi_string_list_get_next(i)) {
        if (skip > 0) {
            skip--;
            continue;
        }
        items[n++] = i;
    }
    while (n > 0 && ret >= 0) {
        char **k = &d->key[d->count], **v = &d->value[d->count];

        ret = txt_pair(items[--n], k, v);
        if (ret != 0)
            continue;
        if (mdns_txt_find(d, *k) != NULL) {
            /* A key given twice counts once (RFC 6763 §6.4: the first one wins). */
            free(*k);
            free(*v);
            *k = *v = NULL;
            continue;
        }
        d->count++;
    }
    return ret < 0 ? ret : 0;
}

/*
 * Replaces e's resolved data. Everything is copied first and swapped in only on success:
 * on failure e->svc keeps pointing at the strings last reported, which a later removal
 * hands to the callback again.
 */
static int seen_fill(struct seen_service *e, const char *host, const AvahiAddress *a, uint16_t port,
                     AvahiStringList *txt, AvahiIfIndex iface, AvahiLookupResultFlags flags)
{
    char addr[AVAHI_ADDRESS_STR_MAX];
    struct seen_data fresh = { 0 };
    int ret = QPC_ERR_NOMEM;

    avahi_address_snprint(addr, sizeof(addr), a);
    fresh.host = strdup(host);
    fresh.address = strdup(addr);
    if (fresh.host == NULL || fresh.address == NULL)
        goto cleanup;
    if ((ret = mdns_txt_copy_all(&fresh.txt, txt)) != 0 || (ret = txt_value(&fresh, "ver", &fresh.ver)) != 0 ||
        (ret = txt_value(&fresh, "server", &fresh.server)) != 0 ||
        (ret = txt_value(&fresh, "domain", &fresh.domain)) != 0)
        goto cleanup;
    seen_data_clear(&e->d);
    e->d = fresh;
    memset(&fresh, 0, sizeof(fresh));
    for (size_t i = 0; i < e->d.txt.count; i++)
        e->txt[i] = (struct qpc_mdns_txt){ e->d.txt.key[i], e->d.txt.value[i] };
    e->svc = (struct qpc_mdns_service){
        .type = e->br->type, .name = e->name, .host = e->d.host, .address = e->d.address,
        .port = port, .ifindex = iface, .is_local = (flags & AVAHI_LOOKUP_RESULT_LOCAL) != 0,
        .ver = e->d.ver, .server = e->d.server, .domain = e->d.domain,
        .txt = e->txt, .txt_count = e->d.txt.count,
    };
cleanup:
    seen_data_clear(&fresh);
    return ret;
}

const char *qpc_mdns_service_txt(const struct qpc_mdns_service *svc, const char *key)
{
    for (size_t i = 0; svc != NULL && key != NULL && i < svc->txt_count; i++)
        if (strcmp(svc->txt[i].key, key) == 0)
            return svc->txt[i].value;
    return NULL;
}

static void resolved(AvahiSServiceResolver *r, AvahiIfIndex iface, AvahiProtocol proto,
                     AvahiResolverEvent event, const char *name, const char *type, const char *domain,
                     const char *host, const AvahiAddress *a, uint16_t port, AvahiStringList *txt,
                     AvahiLookupResultFlags flags, void *userdata)
{
    struct seen_service *e = userdata;
    struct browser *br = e->br;

    /* A timeout or failure is not final: the resolver keeps listening and reports
     * FOUND if the records arrive later. Removal comes from the browser. */
    if (event != AVAHI_RESOLVER_FOUND)
        return;
    if (seen_fill(e, host, a, port, txt, iface, flags) != 0) {
        br->m->last_error = "out of memory while resolving";
        return;
    }
    e->reported = true;
    br->cb(&e->svc, true, br->arg);
    (void)r, (void)proto, (void)name, (void)type, (void)domain;
}

static void seen_key(char key[static SEEN_KEY_MAX], const struct browser *br, AvahiIfIndex iface,
                     AvahiProtocol proto, const char *name)
{
    snprintf(key, SEEN_KEY_MAX, "%d/%d/%d/%s", (int)(br - br->m->browsers), iface, proto, name);
}

static void browsed(AvahiSServiceBrowser *b, AvahiIfIndex iface, AvahiProtocol proto,
                    AvahiBrowserEvent event, const char *name, const char *type, const char *domain,
                    AvahiLookupResultFlags flags, void *userdata)
{
    struct browser *br = userdata;
    struct qpc_mdns *m = br->m;
    struct seen_service *e = NULL;
    char key[SEEN_KEY_MAX];

    if (event != AVAHI_BROWSER_NEW && event != AVAHI_BROWSER_REMOVE)
        return; /* CACHE_EXHAUSTED, ALL_FOR_NOW: nothing to do; FAILURE: kept in last_error */
    seen_key(key, br, iface, proto, name);
    HASH_FIND_STR(m->seen, key, e);
    if (event == AVAHI_BROWSER_NEW && e == NULL) {
        /* Per type, so a crowd of one type (P2P clients) cannot hide another (nodes). */
        if (br->tracked >= SEEN_MAX) {
            m->last_error = "too many instances on the link; ignoring new ones";
            return;
        }
        e = calloc(1, sizeof(*e));
        if (e == NULL || (e->name = strdup(name)) == NULL)
            goto nomem;
        memcpy(e->key, key, sizeof(key));
        e->br = br;
        e->resolver = avahi_s_service_resolver_new(m->server, iface, proto, name, type, domain,
                                                   proto, 0, resolved, e);
        if (e->resolver == NULL)
            goto nomem;
        HASH_ADD_STR(m->seen, key, e);
        if (e->hh.tbl == NULL)
            goto nomem;
        br->tracked++;
    } else if (event == AVAHI_BROWSER_REMOVE && e != NULL) {
        HASH_DEL(m->seen, e);
        br->tracked--;
        if (e->reported)
            br->cb(&e->svc, false, br->arg);
        seen_free(e);
    }
    (void)b, (void)flags;
    return;
nomem:
    m->last_error = "out of memory while browsing";
    if (e != NULL)
        seen_free(e);
}

int qpc_mdns_browse_type_start(struct qpc_mdns *m, const char *type, qpc_mdns_browse_cb cb,
                               void *arg)
{
    AvahiProtocol proto = m->use_ipv6 ? AVAHI_PROTO_UNSPEC : AVAHI_PROTO_INET;
    struct browser *free_slot = NULL;

    if (cb == NULL || !service_type_valid(type))
        return QPC_ERR_INVALID;
    for (size_t i = QPC_MDNS_BROWSE_TYPES_MAX; i-- > 0;) {
        struct browser *br = &m->browsers[i];

        if (br->type == NULL)
            free_slot = br;
        else if (strcmp(br->type, type) == 0)
            return QPC_ERR_EXISTS;
    }
    if (free_slot == NULL)
        return QPC_ERR_STORE_FULL;
    if ((free_slot->type = strdup(type)) == NULL)
        return QPC_ERR_NOMEM;
    free_slot->cb = cb;
    free_slot->arg = arg;
    free_slot->m = m;
    free_slot->avahi = avahi_s_service_browser_new(m->server, AVAHI_IF_UNSPEC, proto, type, NULL, 0,
                                                   browsed, free_slot);
    if (free_slot->avahi == NULL) {
        free(free_slot->type);
        free_slot->type = NULL;
        return err_from_avahi(avahi_server_errno(m->server));
    }
    return 0;
}

int qpc_mdns_browse_start(struct qpc_mdns *m, qpc_mdns_browse_cb cb, void *arg)
{
    return qpc_mdns_browse_type_start(m, QPC_MDNS_SERVICE_TYPE, cb, arg);
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

size_t qpc_mdns_seen_count(const struct qpc_mdns *m, const char *type)
{
    const char *names[SEEN_MAX];
    struct seen_service *e, *tmp;
    size_t n = 0, distinct = 0;

    if (m == NULL || type == NULL)
        return 0;
    HASH_ITER(hh, m->seen, e, tmp) {
        if (e->reported && !e->svc.is_local && n < SEEN_MAX && strcmp(e->br->type, type) == 0)
            names[n++] = e->name;
    }
    /* One instance seen on two interfaces is two entries: count each name once. */
    qsort(names, n, sizeof(names[0]), compare_names);
    for (size_t i = 0; i < n; i++)
        distinct += i == 0 || strcmp(names[i - 1], names[i]) != 0;
    return distinct;
}

void qpc_mdns_browse_stop(struct qpc_mdns *m)
{
    struct seen_service *e, *tmp;

    for (size_t i = 0; i < QPC_MDNS_BROWSE_TYPES_MAX; i++) {
        struct browser *br = &m->browsers[i];

        if (br->avahi != NULL)
            avahi_s_service_browser_free(br->avahi);
        free(br->type);
        memset(br, 0, sizeof(*br));
    }
    HASH_ITER(hh, m->seen, e, tmp) {
        HASH_DEL(m->seen, e);
        seen_free(e);
    }
}

/* ---- life cycle ------------------------------------------------------------------ */

static int config_fill(AvahiServerConfig *sc, const struct qpc_mdns_config *cfg, const char *label)
{
    avahi_server_config_init(sc);
    sc->host_name = avahi_strdup(label);
    if (sc->host_name == NULL)
        return QPC_ERR_NOMEM;
    sc->use_ipv4 = 1;
    sc->use_ipv6 = cfg->use_ipv6;
    sc->publish_hinfo = 0;
    sc->publish_workstation = 0;
    sc->publish_domain = 0;
    sc->publish_addresses = 0;     /* we publish our host's A/AAAA ourselves: see publish_host */
    sc->disallow_other_stacks = 0; /* share port 5353 with avahi-daemon or another node */
    sc->enable_wide_area = 0;
    sc->enable_reflector = 0;
    for (const char *const *name = cfg->interfaces; name != NULL && *name != NULL; name++) {
        sc->allow_interfaces = avahi_string_list_add(sc->allow_interfaces, *name);
        if (sc->allow_interfaces == NULL)
            return QPC_ERR_NOMEM;
    }
    return 0;
}

static void free_strv(char **v)
{
    for (char **i = v; i != NULL && *i != NULL; i++)
        free(*i);
    free(v);
}

/* Copies a NULL-terminated string vector; NULL stays NULL. Returns 0 or QPC_ERR_NOMEM. */
static int copy_strv(char ***out, const char *const *v)
{
    size_t n = 0;

    *out = NULL;
    if (v == NULL)
        return 0;
    while (v[n] != NULL)
        n++;
    if ((*out = calloc(n + 1, sizeof(char *))) == NULL)
        return QPC_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        if (v[i][0] == '\0' || strlen(v[i]) >= IF_NAMESIZE)
            return QPC_ERR_INVALID;
        if (((*out)[i] = strdup(v[i])) == NULL)
            return QPC_ERR_NOMEM;
    }
    return 0;
}

static void mdns_destroy(struct qpc_mdns *m)
{
    ev_timer_stop(m->loop, &m->rescan);
    if (m->server != NULL)
        avahi_server_free(m->server); /* frees every watch and timeout: poll goes last */
    qpc_mdns_poll_free(m->poll);
    free_strv(m->interfaces);
    free(m->host_label);
    free(m);
}

int qpc_mdns_new(struct ev_loop *loop, const struct qpc_mdns_config *cfg, struct qpc_mdns **out)
{
    static const struct qpc_mdns_config defaults = { 0 };
    struct qpc_mdns *m = NULL;
    AvahiServerConfig sc;
    char label[QPC_MDNS_HOST_LABEL_LEN];
    uint8_t rnd[QPC_KEY_LEN];
    int aerr = 0;
    int ret = QPC_ERR_INVALID;

    memset(&sc, 0, sizeof(sc));
    *out = NULL;
    if (cfg == NULL)
        cfg = &defaults;
    if (cfg->host_label != NULL &&
        (cfg->host_label[0] == '\0' || strlen(cfg->host_label) > QPC_MDNS_LABEL_MAX))
        goto cleanup;
    if (cfg->host_label == NULL) {
        randombytes_buf(rnd, sizeof(rnd));
        qpc_mdns_host_label_from_key(label, rnd);
    }
    ret = QPC_ERR_NOMEM;
    avahi_set_log_function(avahi_log_to_qpc);
    if ((m = calloc(1, sizeof(*m))) == NULL)
        goto cleanup;
    m->loop = loop;
    m->use_ipv6 = cfg->use_ipv6;
    m->rescan.data = m;
    ev_timer_init(&m->rescan, rescan_addresses, ADDR_RESCAN_S, ADDR_RESCAN_S);
    m->host_label = strdup(cfg->host_label != NULL ? cfg->host_label : label);
    if (m->host_label == NULL || (m->poll = qpc_mdns_poll_new(loop)) == NULL ||
        (ret = copy_strv(&m->interfaces, cfg->interfaces)) != 0 ||
        (ret = config_fill(&sc, cfg, m->host_label)) != 0)
        goto cleanup;
    snprintf(m->host_fqdn, sizeof(m->host_fqdn), "%s.local", m->host_label);
    m->server = avahi_server_new(qpc_mdns_poll_api(m->poll), &sc, server_changed, m, &aerr);
    if (m->server == NULL) {
        qpc_log_error("mdns", "cannot start responder: %s", avahi_strerror(aerr));
        ret = aerr == AVAHI_ERR_NO_MEMORY ? QPC_ERR_NOMEM
              : (aerr == AVAHI_ERR_INVALID_HOST_NAME ? QPC_ERR_INVALID : QPC_ERR_IO);
        goto cleanup;
    }
    ev_timer_start(loop, &m->rescan);
    *out = m;
    m = NULL;
    ret = 0;
cleanup:
    avahi_server_config_free(&sc); /* frees what config_fill allocated; zeroes are fine */
    if (m != NULL)
        mdns_destroy(m);
    return ret;
}

void qpc_mdns_free(struct qpc_mdns *m)
{
    if (m == NULL)
        return;
    qpc_mdns_browse_stop(m);
    qpc_mdns_withdraw(m);
    mdns_destroy(m);
}
