/*
 * fuzz_mdns.c: libFuzzer target for the TXT records of an mDNS announcement, which
 * anyone on the link can send. The input is TXT rdata as on the wire (length-prefixed
 * strings); Avahi parses it into the list a resolver hands over, lib/mdns.c copies the
 * pairs out (mdns_txt_copy_all), and the values are read as the programs read them:
 * ver, server (a numeric address, src/client/discover.c), peer (a hex key), p2p (address
 * candidates, src/client/candidates.c). The pairs must be within QPC_MDNS_TXT_MAX, keys
 * non-empty, unique and without '='; candidates within CANDIDATES_MAX and of bounded
 * length. Nothing may crash, leak or read out of bounds.
 * Seeds: fuzz/corpus/fuzz_mdns/ (tests/tools/qpc_fuzz_seeds.c).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <avahi-common/strlst.h>

#include "candidates.h"
#include "mdns_txt.h"
#include "qpc/addr.h"
#include "qpc/encoding.h"
#include "qpc/envelope.h"
#include "qpc/mdns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    AvahiStringList *list = NULL;
    struct mdns_txt_pairs p = { 0 };
    struct qpc_mdns_txt txt[QPC_MDNS_TXT_MAX];
    struct qpc_mdns_service svc = { 0 };
    struct candidates c;
    uint8_t key[QPC_KEY_LEN];
    const char *v;

    if (avahi_string_list_parse(data, size, &list) < 0)
        return 0;
    if (mdns_txt_copy_all(&p, list) != 0)
        abort();
    if (p.count > QPC_MDNS_TXT_MAX)
        abort();
    for (size_t i = 0; i < p.count; i++) {
        if (p.key[i] == NULL || p.key[i][0] == '\0' || strchr(p.key[i], '=') != NULL ||
            p.value[i] == NULL)
            abort();
        for (size_t j = 0; j < i; j++)
            if (strcmp(p.key[i], p.key[j]) == 0)
                abort();
        txt[i] = (struct qpc_mdns_txt){ p.key[i], p.value[i] };
    }
    svc.txt = txt;
    svc.txt_count = p.count;
    svc.ver = mdns_txt_find(&p, "ver");
    if ((v = qpc_mdns_service_txt(&svc, "server")) != NULL)
        (void)(qpc_addr_is_numeric(v) && qpc_addr_valid(v));
    if ((v = qpc_mdns_service_txt(&svc, "peer")) != NULL && strlen(v) == 2 * QPC_KEY_LEN)
        (void)qpc_key_from_hex(key, v);
    if ((v = qpc_mdns_service_txt(&svc, "p2p")) != NULL) {
        for (int loop = 0; loop < 2; loop++) {
            candidates_clear(&c);
            if (candidates_from_txt(&c, v, loop) > CANDIDATES_MAX || c.n > CANDIDATES_MAX)
                abort();
            for (size_t i = 0; i < c.n; i++)
                if (strlen(c.addr[i]) >= CANDIDATE_TEXT_MAX)
                    abort();
        }
    }
    mdns_txt_pairs_clear(&p);
    avahi_string_list_free(list);
    return 0;
}
