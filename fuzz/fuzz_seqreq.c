/*
 * fuzz_seqreq.c: libFuzzer target for MeshSeqnoRequest, what every neighbour may send.
 *
 * Every input goes unpack -> qpc_seqreq_from_pb; one that converted must pack again and
 * convert to the same struct, and deciding on it (as origin, holder and router) must
 * return a known action and a forward hop limit below the one asked for.
 * Seeds: fuzz/corpus/fuzz_seqreq/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qpc/seqreq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Qpc__MeshSeqnoRequest *pb, *again, out;
    struct qpc_seqreq r, b;
    struct qpc_seqreq_state *st;
    uint8_t buf[256];
    size_t len;

    if (size > 1024 || (pb = qpc__mesh_seqno_request__unpack(NULL, size, data)) == NULL)
        return 0;
    if (qpc_seqreq_from_pb(pb, &r) != 0) {
        qpc__mesh_seqno_request__free_unpacked(pb, NULL);
        return 0;
    }
    qpc__mesh_seqno_request__free_unpacked(pb, NULL);
    qpc_seqreq_to_pb(&r, &out);
    if ((len = qpc__mesh_seqno_request__get_packed_size(&out)) > sizeof(buf))
        abort();
    qpc__mesh_seqno_request__pack(&out, buf);
    if ((again = qpc__mesh_seqno_request__unpack(NULL, len, buf)) == NULL)
        abort();
    if (qpc_seqreq_from_pb(again, &b) != 0 || memcmp(&r, &b, sizeof(r)) != 0)
        abort();
    qpc__mesh_seqno_request__free_unpacked(again, NULL);

    if ((st = qpc_seqreq_state_new()) == NULL)
        return 0;
    for (int i = 0; i < 4; i++) {
        struct qpc_seqreq_view v = { .is_me = i == 0, .have_announce = i == 1, .announce_seqno = r.seqno,
                                     .have_route = i >= 2 };
        uint32_t fwd = UINT32_MAX;
        enum qpc_seqreq_action a = qpc_seqreq_decide(st, &r, &v, 16, 1000 + (uint64_t)i * 20000, &fwd);

        if (a > QPC_SEQREQ_BUMP || (a == QPC_SEQREQ_FORWARD && (fwd >= r.hop_limit || fwd >= 16)))
            abort();
    }
    qpc_seqreq_state_free(st);
    return 0;
}
