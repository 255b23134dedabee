/*
 * fuzz_announce.c: libFuzzer target for MeshAnnounce, what every neighbour (and every
 * server and federated node) may send.
 *
 * Every input goes unpack -> qpc_announce_from_pb -> verify; an announce that converted
 * must pack again and convert to the same struct, and one that verified must still
 * verify after qpc_announce_forward (or stop at its hop limit).
 * Seeds: fuzz/corpus/fuzz_announce/ (a valid announce with addresses and a domain, and
 * one passed on two hops).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qpc/announce.h"
#include "qpc/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Qpc__MeshAnnounce *pb, *again;
    struct qpc_announce a, b;
    struct qpc_announce_pb s;
    uint8_t buf[4096];
    size_t len;

    if (size > 4096 || (pb = qpc__mesh_announce__unpack(NULL, size, data)) == NULL)
        return 0;
    if (qpc_announce_from_pb(pb, &a) != 0) {
        qpc__mesh_announce__free_unpacked(pb, NULL);
        return 0;
    }
    qpc__mesh_announce__free_unpacked(pb, NULL);

    qpc_announce_to_pb(&a, &s);
    len = qpc__mesh_announce__get_packed_size(&s.pb);
    if (len > sizeof(buf))
        abort();
    qpc__mesh_announce__pack(&s.pb, buf);
    if ((again = qpc__mesh_announce__unpack(NULL, len, buf)) == NULL)
        abort();
    if (qpc_announce_from_pb(again, &b) != 0 || memcmp(&a, &b, sizeof(a)) != 0)
        abort();
    qpc__mesh_announce__free_unpacked(again, NULL);

    if (qpc_announce_verify(&a) == 0) {
        int ret = qpc_announce_forward(&a);

        if (ret == 0 && qpc_announce_verify(&a) != 0)
            abort();
        if (ret != 0 && ret != QPC_ERR_HOP_LIMIT)
            abort();
    }
    return 0;
}
