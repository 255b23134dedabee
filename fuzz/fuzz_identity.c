/*
 * fuzz_identity.c: the identity file parser on arbitrary bytes.
 *
 * qpc_identity_parse is what qpc_identity_load runs on a file's contents, so any crash,
 * leak or sanitizer report here is one a damaged or planted identity file could cause.
 * A parse that succeeds is serialised and parsed again: the second result must
 * serialise to the same bytes (the loader and writer agree on the format).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qpc/identity.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct qpc_identity *id = NULL, *again = NULL;
    char err[256];
    char *text = NULL, *text2 = NULL;
    size_t len = 0, len2 = 0;

    if (qpc_identity_parse((const char *)data, size, &id, err, sizeof(err)) != 0)
        return 0;
    if (qpc_identity_serialize(id, &text, &len) == 0) {
        if (qpc_identity_parse(text, len, &again, err, sizeof(err)) != 0)
            abort();   /* we wrote something we cannot read back */
        if (qpc_identity_serialize(again, &text2, &len2) != 0 || len != len2 ||
            memcmp(text, text2, len) != 0)
            abort();   /* a round trip changed the identity */
    }
    free(text);
    free(text2);
    qpc_identity_free(again);
    qpc_identity_free(id);
    return 0;
}
