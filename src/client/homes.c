/*
 * homes.c: each peer's home node domain, from its signed announces (homes.h).
 *
 * The one idea: a domain here is the peer's own signed word, so only the peer can move
 * its messages to another node, and only with a newer announce; nobody else can point
 * them elsewhere. The hash is kept in the order entries were last heard (an update is
 * deleted and added again), so the oldest is at its head for eviction and expiry.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "homes.h"
#include "qpc/direct.h"
#include "qpc/error.h"
#include "qpc/uthash_keyed.h"   /* peer keys are free to mint */

struct entry {
    struct home e;
    UT_hash_handle hh;
};

struct homes {
    struct entry *all;
};

struct homes *homes_new(void)
{
    return calloc(1, sizeof(struct homes));
}

void homes_free(struct homes *h)
{
    struct entry *x, *tmp;

    if (h == NULL)
        return;
    HASH_ITER(hh, h->all, x, tmp) {
        HASH_DEL(h->all, x);
        free(x);
    }
    free(h);
}

static struct entry *find(const struct homes *h, const uint8_t key[static QPC_KEY_LEN])
{
    struct entry *x = NULL;

    HASH_FIND(hh, h->all, key, QPC_KEY_LEN, x);
    return x;
}

static void drop(struct homes *h, struct entry *x)
{
    HASH_DEL(h->all, x);
    free(x);
}

/* Keeps e (domain "" or valid) as key's entry, newest last. */
static bool put(struct homes *h, const struct home *e)
{
    struct entry *x = find(h, e->key);
    bool changed = x != NULL ? strcmp(x->e.domain, e->domain) != 0 : e->domain[0] != '\0';

    if (x != NULL) {
        HASH_DEL(h->all, x);
    } else {
        if (HASH_COUNT(h->all) >= HOMES_MAX)
            drop(h, h->all);   /* the head: heard longest ago */
        if ((x = calloc(1, sizeof(*x))) == NULL)
            return false;      /* learned again from the next announce */
    }
    x->e = *e;
    HASH_ADD(hh, h->all, e.key, QPC_KEY_LEN, x);
    return changed;
}

bool homes_learn(struct homes *h, const uint8_t key[static QPC_KEY_LEN], const char *domain,
                 uint32_t seqno, uint64_t now_ms)
{
    struct entry *x = find(h, key);
    struct home e;

    if (domain == NULL || strlen(domain) > QPC_ANNOUNCE_DOMAIN_MAX || !qpc_direct_domain_valid(domain))
        domain = "";
    if (x != NULL && seqno == x->e.seqno) {
        x->e.heard_ms = now_ms;   /* the same announce by another path, or again */
        return false;
    }
    if (x != NULL && !qpc_announce_seqno_newer(seqno, x->e.seqno))
        return false;             /* older: a replay, or a slower path */
    /* An announce without a domain does not forget the home: the origin made it before
     * its node named its domain (a restart, the first second of a session) or while it
     * has no session; its last node is still where it collects messages, and "" would
     * send them to my node's queue, which it never reads. Its seqno is kept all the same,
     * so an older announce cannot move the home back. */
    memset(&e, 0, sizeof(e));
    memcpy(e.key, key, QPC_KEY_LEN);
    strcpy(e.domain, domain[0] != '\0' || x == NULL ? domain : x->e.domain);   /* lengths checked */
    e.seqno = seqno;
    e.heard_ms = now_ms;
    return put(h, &e);
}

const char *homes_get(const struct homes *h, const uint8_t key[static QPC_KEY_LEN])
{
    const struct entry *x = h != NULL ? find(h, key) : NULL;

    return x != NULL && x->e.domain[0] != '\0' ? x->e.domain : NULL;
}

const char *homes_enqueue_domain(const struct homes *h, const uint8_t key[static QPC_KEY_LEN],
                                 const char *mine)
{
    const char *d = homes_get(h, key);

    if (d == NULL || (mine != NULL && strcasecmp(d, mine) == 0))
        return "";
    return d;
}

size_t homes_expire(struct homes *h, uint64_t now_ms, uint64_t max_age_ms)
{
    struct entry *x, *tmp;
    size_t n = 0;

    HASH_ITER(hh, h->all, x, tmp) {
        /* heard_ms is wall clock: one from the future (the clock stepped back) stays. */
        if (x->e.heard_ms > now_ms || now_ms - x->e.heard_ms <= max_age_ms)
            continue;
        drop(h, x);
        n++;
    }
    return n;
}

int homes_list(const struct homes *h, struct home **out, size_t *n)
{
    const struct entry *x;
    size_t i = 0, count = HASH_COUNT(h->all);

    *out = NULL;
    *n = 0;
    if (count == 0)
        return 0;
    if ((*out = calloc(count, sizeof(**out))) == NULL)
        return QPC_ERR_NOMEM;
    for (x = h->all; x != NULL; x = x->hh.next)
        (*out)[i++] = x->e;
    *n = i;
    return 0;
}

void homes_restore(struct homes *h, const struct home *e)
{
    struct home copy = *e;

    copy.domain[QPC_ANNOUNCE_DOMAIN_MAX] = '\0';
    if (copy.domain[0] != '\0' && !qpc_direct_domain_valid(copy.domain))
        return;
    put(h, &copy);
}
