/*
 * direct.c: DirectContent, the plaintext of a direct envelope (direct.h).
 *
 * The one idea: the decoder trusts nothing but accepts what a later version may add.
 * The bytes come out of a box only their sender could make, so unknown fields cannot
 * ride along unsigned and are allowed; but protobuf-c hands strings over as C strings,
 * so a NUL inside one would silently cut it short: every decoded message must re-encode
 * to exactly its input size, which also refuses a field written twice.
 */
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "qpc/direct.h"
#include "qpc/proto.h"
#include "qpc/error.h"

bool qpc_direct_domain_valid(const char *text)
{
    size_t n = text != NULL ? strnlen(text, QPC_DIRECT_DOMAIN_MAX + 1) : 0, label = 0;

    if (n == 0 || n > QPC_DIRECT_DOMAIN_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];

        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '-') {
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return label > 0;
}

/* NULL or "" is no domain; anything else must be a DNS name. */
static int check_domain(const char *domain)
{
    return domain == NULL || domain[0] == '\0' || qpc_direct_domain_valid(domain) ? 0 : QPC_ERR_INVALID;
}

static int pack(const Qpc__DirectContent *msg, uint8_t **out, size_t *out_len)
{
    size_t len = qpc__direct_content__get_packed_size(msg);
    uint8_t *buf = malloc(len > 0 ? len : 1);

    if (buf == NULL)
        return QPC_ERR_NOMEM;
    qpc__direct_content__pack(msg, buf);
    *out = buf;
    *out_len = len;
    return 0;
}

int qpc_direct_encode_text(const char *text, size_t len, const char *reply_domain,
                           uint8_t **out, size_t *out_len)
{
    Qpc__DirectContent msg = QPC__DIRECT_CONTENT__INIT;
    char *copy;
    int rc;

    *out = NULL;
    *out_len = 0;
    if (len > QPC_DIRECT_TEXT_MAX)
        return QPC_ERR_TOO_LARGE;
    if ((text == NULL && len > 0) || (len > 0 && memchr(text, '\0', len) != NULL) ||
        check_domain(reply_domain) != 0)
        return QPC_ERR_INVALID;
    /* protobuf-c wants a C string; the copy holds the secret text and is wiped. */
    if ((copy = malloc(len + 1)) == NULL)
        return QPC_ERR_NOMEM;
    if (len > 0)
        memcpy(copy, text, len);
    copy[len] = '\0';
    msg.body_case = QPC__DIRECT_CONTENT__BODY_TEXT;
    msg.text = copy;
    msg.reply_domain = (char *)(reply_domain != NULL ? reply_domain : "");
    rc = pack(&msg, out, out_len);
    sodium_memzero(copy, len + 1);
    free(copy);
    return rc;
}

int qpc_direct_encode_receipt(const struct qpc_receipt_item *items, size_t n,
                              const char *reply_domain, uint8_t **out, size_t *out_len)
{
    Qpc__DirectContent msg = QPC__DIRECT_CONTENT__INIT;
    Qpc__Receipt receipt = QPC__RECEIPT__INIT;
    Qpc__ReceiptItem *wire = NULL, **ptrs = NULL;
    int rc = QPC_ERR_INVALID;

    *out = NULL;
    *out_len = 0;
    if (items == NULL || n == 0 || n > QPC_RECEIPT_ITEMS_MAX || check_domain(reply_domain) != 0)
        return QPC_ERR_INVALID;
    wire = calloc(n, sizeof(*wire));
    ptrs = calloc(n, sizeof(*ptrs));
    if (wire == NULL || ptrs == NULL) {
        rc = QPC_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (items[i].path > QPC_RECEIPT_PATH_MESH ||
            strnlen(items[i].via, QPC_RECEIPT_VIA_MAX + 1) > QPC_RECEIPT_VIA_MAX)
            goto out;
        qpc__receipt_item__init(&wire[i]);
        wire[i].id.data = (uint8_t *)items[i].id;
        wire[i].id.len = QPC_ID_LEN;
        wire[i].hops = items[i].hops;
        wire[i].path = (Qpc__ReceiptPath)items[i].path;
        wire[i].received_at = items[i].received_at_ms;
        wire[i].via = (char *)items[i].via;
        ptrs[i] = &wire[i];
    }
    receipt.items = ptrs;
    receipt.n_items = n;
    msg.body_case = QPC__DIRECT_CONTENT__BODY_RECEIPT;
    msg.receipt = &receipt;
    msg.reply_domain = (char *)(reply_domain != NULL ? reply_domain : "");
    rc = pack(&msg, out, out_len);
out:
    free(wire);
    free(ptrs);
    return rc;
}

void qpc_direct_clear(struct qpc_direct_content *c)
{
    if (c == NULL)
        return;
    if (c->text != NULL) {
        sodium_memzero(c->text, c->text_len);
        free(c->text);
    }
    free(c->items);
    memset(c, 0, sizeof(*c));
}

static int take_receipt(struct qpc_direct_content *c, const Qpc__Receipt *r)
{
    if (r == NULL || r->n_items == 0 || r->n_items > QPC_RECEIPT_ITEMS_MAX)
        return QPC_ERR_INVALID;
    if ((c->items = calloc(r->n_items, sizeof(*c->items))) == NULL)
        return QPC_ERR_NOMEM;
    c->n_items = r->n_items;
    for (size_t i = 0; i < r->n_items; i++) {
        const Qpc__ReceiptItem *w = r->items[i];
        size_t vlen = strlen(w->via);

        if (w->id.len != QPC_ID_LEN || (unsigned)w->path > QPC_RECEIPT_PATH_MESH || vlen > QPC_RECEIPT_VIA_MAX)
            return QPC_ERR_INVALID;
        memcpy(c->items[i].id, w->id.data, QPC_ID_LEN);
        c->items[i].hops = w->hops;
        c->items[i].path = (enum qpc_receipt_path)w->path;
        c->items[i].received_at_ms = w->received_at;
        memcpy(c->items[i].via, w->via, vlen + 1);
    }
    return 0;
}

int qpc_direct_decode(struct qpc_direct_content *c, const uint8_t *buf, size_t len)
{
    Qpc__DirectContent *msg;
    int rc = QPC_ERR_INVALID;

    memset(c, 0, sizeof(*c));
    if (len > QPC_PAYLOAD_MAX)
        return QPC_ERR_TOO_LARGE;
    if ((msg = qpc__direct_content__unpack(NULL, len, buf)) == NULL)
        return QPC_ERR_INVALID;
    if (qpc__direct_content__get_packed_size(msg) != len)
        goto out;
    if (msg->reply_domain[0] != '\0') {
        if (!qpc_direct_domain_valid(msg->reply_domain))
            goto out;
        memcpy(c->reply_domain, msg->reply_domain, strlen(msg->reply_domain) + 1);
    }
    switch (msg->body_case) {
    case QPC__DIRECT_CONTENT__BODY_TEXT:
        c->kind = QPC_DIRECT_TEXT;
        c->text_len = strlen(msg->text);
        if ((c->text = malloc(c->text_len + 1)) == NULL) {
            rc = QPC_ERR_NOMEM;
            goto out;
        }
        memcpy(c->text, msg->text, c->text_len + 1);
        rc = 0;
        break;
    case QPC__DIRECT_CONTENT__BODY_RECEIPT:
        c->kind = QPC_DIRECT_RECEIPT;
        rc = take_receipt(c, msg->receipt);
        break;
    default:
        break;
    }
out:
    /* protobuf-c's copy of the text is freed without wiping: wipe it first. */
    if (msg->body_case == QPC__DIRECT_CONTENT__BODY_TEXT && msg->text != NULL)
        sodium_memzero(msg->text, strlen(msg->text));
    qpc__direct_content__free_unpacked(msg, NULL);
    if (rc != 0)
        qpc_direct_clear(c);
    return rc;
}
