/*
 * fuzz_direct.c: libFuzzer target for the plaintext of direct envelopes (DirectContent).
 * The bytes come out of a box a stranger may have made, so the decoder sees anything.
 * What it accepts must encode again and decode to the same text or receipt items.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qpc/direct.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct qpc_direct_content c, again;
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc;

    if (qpc_direct_decode(&c, data, size) != 0)
        return 0;
    if (c.kind == QPC_DIRECT_TEXT)
        rc = qpc_direct_encode_text(c.text, c.text_len, c.reply_domain, &buf, &len);
    else
        rc = qpc_direct_encode_receipt(c.items, c.n_items, c.reply_domain, &buf, &len);
    if (rc != 0 || qpc_direct_decode(&again, buf, len) != 0)
        abort();
    if (again.kind != c.kind || strcmp(again.reply_domain, c.reply_domain) != 0)
        abort();
    if (c.kind == QPC_DIRECT_TEXT &&
        (again.text_len != c.text_len || memcmp(again.text, c.text, c.text_len) != 0))
        abort();
    if (c.kind == QPC_DIRECT_RECEIPT &&
        (again.n_items != c.n_items || memcmp(again.items, c.items, c.n_items * sizeof(*c.items)) != 0))
        abort();
    qpc_direct_clear(&again);
    qpc_direct_clear(&c);
    free(buf);
    return 0;
}
