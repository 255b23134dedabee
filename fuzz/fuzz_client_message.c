/*
 * fuzz_client_message.c: libFuzzer target for what the client does with a frame from
 * its server before the session acts on it (src/client/inbound.c), and with the
 * addresses in it (src/client/candidates.c): a ServerMessage decoded and shape-checked,
 * then every envelope of a fetch page, push or broadcast notice decoded, and every
 * observed address and candidate of a punch notice, a peer_info answer or a path answer
 * checked as a candidate, as dial.c does. Nothing may crash, leak or read out of bounds;
 * what passes must be within the caps, and a normalized candidate must normalize to
 * itself.
 * Seeds: fuzz/corpus/fuzz_client_message/ (tests/tools/qpc_fuzz_seeds.c).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "candidates.h"
#include "inbound.h"
#include "qpc/direct.h"
#include "qpc/envelope.h"

static void check_candidate(const char *text)
{
    char norm[CANDIDATE_TEXT_MAX], again[CANDIDATE_TEXT_MAX];

    for (int loop = 0; loop < 2; loop++) {
        if (!candidate_normalize(text, loop, norm))
            continue;
        if (strlen(norm) >= CANDIDATE_TEXT_MAX || !candidate_normalize(norm, loop, again) ||
            strcmp(norm, again) != 0)
            abort();
    }
}

/* What dial.c's learn() does with a list: each one through candidates_add, bounded. */
static void check_list(char *const *addrs, size_t n_addrs, char *const *cands, size_t n_cands)
{
    struct candidates c = { 0 };

    if (n_addrs > INBOUND_ADDRESSES_MAX || n_cands > INBOUND_CANDIDATES_MAX)
        abort();
    for (size_t i = 0; i < n_addrs; i++) {
        check_candidate(addrs[i]);
        candidates_add(&c, addrs[i], false);
    }
    for (size_t i = 0; i < n_cands; i++) {
        check_candidate(cands[i]);
        candidates_add(&c, cands[i], true);
    }
    if (c.n > CANDIDATES_MAX)
        abort();
    for (size_t i = 0; i < c.n; i++)
        if (!candidates_contains(&c, c.addr[i]))
            abort();
    (void)candidates_digest(&c);
}

static void check_envelope(const uint8_t *d, size_t n)
{
    struct qpc_envelope env = { 0 };

    if (qpc_envelope_decode(&env, d, n) == 0)
        qpc_envelope_clear(&env);
}

static void check_items(Qpc__QueuedEnvelope **items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        check_envelope(items[i]->envelope.data, items[i]->envelope.len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Qpc__ServerMessage *m = inbound_server_message(data, size);

    if (m == NULL)
        return 0;
    switch (m->body_case) {
    case QPC__SERVER_MESSAGE__BODY_FETCH:
        check_items(m->fetch->items, m->fetch->n_items);
        break;
    case QPC__SERVER_MESSAGE__BODY_PUSH:
        check_items(m->push->items, m->push->n_items);
        break;
    case QPC__SERVER_MESSAGE__BODY_PUSH_ACK:
        if (m->push_ack->domain != NULL)
            (void)qpc_direct_domain_valid(m->push_ack->domain);
        break;
    case QPC__SERVER_MESSAGE__BODY_PEER_INFO:
        check_list(m->peer_info->addresses, m->peer_info->n_addresses, m->peer_info->candidates,
                   m->peer_info->n_candidates);
        break;
    case QPC__SERVER_MESSAGE__BODY_PUNCH:
        if (m->punch->key.len != QPC_KEY_LEN)
            abort();
        check_list(m->punch->addresses, m->punch->n_addresses, m->punch->candidates,
                   m->punch->n_candidates);
        break;
    case QPC__SERVER_MESSAGE__BODY_PATH:
        if (m->path->observed != NULL)
            check_candidate(m->path->observed);
        break;
    case QPC__SERVER_MESSAGE__BODY_BROADCAST:
        check_envelope(m->broadcast->envelope.data, m->broadcast->envelope.len);
        break;
    default:
        break;
    }
    qpc__server_message__free_unpacked(m, NULL);
    return 0;
}
