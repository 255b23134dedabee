/*
 * fuzz_p2p.c: libFuzzer target for what a node does with a frame on a P2P link before
 * it acts on it (src/client/inbound.c): a P2pFrame decoded and shape-checked, then its
 * envelope decoded, its ack's id and status read as custody does, and the addresses of
 * PathCandidates checked as candidates (src/client/candidates.c), as dial.c adds them.
 * A frame of known fields that decodes must encode again and decode to the same kind
 * and sizes.
 * Nothing may crash, leak or read out of bounds.
 * Seeds: fuzz/corpus/fuzz_p2p/ (tests/tools/qpc_fuzz_seeds.c).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "candidates.h"
#include "inbound.h"
#include "qpc/envelope.h"

static void check_same(const Qpc__P2pFrame *f)
{
    size_t len = qpc__p2p_frame__get_packed_size(f);
    uint8_t *buf = malloc(len > 0 ? len : 1);
    Qpc__P2pFrame *g;

    if (buf == NULL)
        abort();
    /* protobuf-c keeps unknown fields, malformed ones too (an over-long tag 0), and
     * packs them again as they came: only a frame of known fields must round-trip. */
    if (f->base.n_unknown_fields != 0 ||
        (f->body_case == QPC__P2P_FRAME__BODY_ACK && f->ack->base.n_unknown_fields != 0) ||
        (f->body_case == QPC__P2P_FRAME__BODY_CANDIDATES && f->candidates->base.n_unknown_fields != 0) ||
        f->body_case == QPC__P2P_FRAME__BODY_ANNOUNCE) {
        free(buf);
        return;
    }
    if (qpc__p2p_frame__pack(f, buf) != len)
        abort();
    g = inbound_p2p_frame(buf, len);
    if (g == NULL || g->body_case != f->body_case)
        abort();
    if (f->body_case == QPC__P2P_FRAME__BODY_ENVELOPE && g->envelope.len != f->envelope.len)
        abort();
    if (f->body_case == QPC__P2P_FRAME__BODY_CANDIDATES &&
        g->candidates->n_addresses != f->candidates->n_addresses)
        abort();
    qpc__p2p_frame__free_unpacked(g, NULL);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Qpc__P2pFrame *f = inbound_p2p_frame(data, size);
    struct qpc_envelope env = { 0 };
    struct candidates c = { 0 };

    if (f == NULL)
        return 0;
    switch (f->body_case) {
    case QPC__P2P_FRAME__BODY_ENVELOPE:
        if (f->envelope.len == 0)
            abort();
        if (qpc_envelope_decode(&env, f->envelope.data, f->envelope.len) == 0)
            qpc_envelope_clear(&env);
        break;
    case QPC__P2P_FRAME__BODY_ACK:
        if (f->ack->id.len != 0 && f->ack->id.len != QPC_ID_LEN)
            abort();
        break;
    case QPC__P2P_FRAME__BODY_CANDIDATES:
        if (f->candidates->n_addresses > INBOUND_CANDIDATES_MAX)
            abort();
        for (size_t i = 0; i < f->candidates->n_addresses; i++)
            candidates_add(&c, f->candidates->addresses[i], i % 2 == 0);
        if (c.n > CANDIDATES_MAX)
            abort();
        break;
    default:
        break;
    }
    check_same(f);
    qpc__p2p_frame__free_unpacked(f, NULL);
    return 0;
}
