/*
 * mdns_txt.h: the TXT records of a resolved instance, copied out of Avahi's list
 * (lib/mdns.c). Internal to the library; fuzz/fuzz_mdns.c drives it with TXT data
 * parsed from the wire, the same list a resolver hands over.
 */
#ifndef QPC_MDNS_TXT_H
#define QPC_MDNS_TXT_H

#include <stddef.h>
#include <avahi-common/strlst.h>

#include "qpc/mdns.h"

/* key[i]=value[i], i < count, in the order announced; keys unique and never empty. */
struct mdns_txt_pairs {
    char *key[QPC_MDNS_TXT_MAX], *value[QPC_MDNS_TXT_MAX];
    size_t count;
};

/*
 * Copies every key=value string of txt into p (empty, zeroed) in the order announced:
 * at most QPC_MDNS_TXT_MAX (the first ones), a key given twice counts once (the first,
 * RFC 6763 6.4), a string without a key is skipped, one without '=' has the value "",
 * a value is cut at its first NUL byte. Returns 0 or QPC_ERR_NOMEM (p holds what was
 * copied before; clear it either way).
 */
int mdns_txt_copy_all(struct mdns_txt_pairs *p, AvahiStringList *txt);

/* The value of key in p, or NULL. */
const char *mdns_txt_find(const struct mdns_txt_pairs *p, const char *key);

/* Frees what p holds and zeroes it. */
void mdns_txt_pairs_clear(struct mdns_txt_pairs *p);

#endif
