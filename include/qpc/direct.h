/*
 * direct.h: the plaintext of a direct envelope, DirectContent (proto/qpc.proto).
 *
 * The one idea: what the recipient reads after qpc_box_open is never raw text but one
 * DirectContent: a text for the user, or a receipt ("I accepted these envelope ids of
 * yours"). A receipt is therefore an ordinary direct envelope from the recipient back
 * to the sender, end-to-end encrypted and signed like any message, and every path that
 * carries envelopes (direct, relayed, multi-hop, server queues, federation) carries it.
 * The envelope's signature by the recipient and the box opening under its key are what
 * make a receipt verified; this module only encodes and strictly decodes the bytes.
 *
 * reply_domain tells the recipient which node domain its receipts (and replies) go to
 * when they travel through servers and federation; it is a hint from the sender,
 * authenticated like the rest of the plaintext, and may be empty.
 *
 * Pure: no I/O, no clock. Buffers that hold a text are secrets: callers wipe them.
 */
#ifndef QPC_DIRECT_H
#define QPC_DIRECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qpc/envelope.h"

#define QPC_RECEIPT_ITEMS_MAX 256   /* ids in one receipt; more go in the next one */
#define QPC_RECEIPT_VIA_MAX 64      /* bytes of a receipt item's via text */
#define QPC_DIRECT_DOMAIN_MAX 253   /* bytes of reply_domain (a DNS name) */
/* Largest text that fits a direct envelope: payload cap less box and protobuf framing. */
#define QPC_DIRECT_TEXT_MAX (QPC_PAYLOAD_MAX - QPC_BOX_OVERHEAD - 512)

enum qpc_direct_kind {
    QPC_DIRECT_TEXT = 1,
    QPC_DIRECT_RECEIPT = 2,
};

/* How the recipient saw an envelope arrive (proto ReceiptPath; same numbers). */
enum qpc_receipt_path {
    QPC_RECEIPT_PATH_DIRECT = 0,
    QPC_RECEIPT_PATH_RELAYED = 1,
    QPC_RECEIPT_PATH_SERVER = 2,
    QPC_RECEIPT_PATH_MESH = 3,
};

struct qpc_receipt_item {
    uint8_t id[QPC_ID_LEN];
    uint32_t hops;                         /* hop_count on arrival */
    enum qpc_receipt_path path;
    uint64_t received_at_ms;               /* recipient's wall clock */
    char via[QPC_RECEIPT_VIA_MAX + 1];     /* NUL-terminated; "" when none */
};

struct qpc_direct_content {
    enum qpc_direct_kind kind;
    char *text;                            /* QPC_DIRECT_TEXT: owned, NUL-terminated */
    size_t text_len;
    struct qpc_receipt_item *items;        /* QPC_DIRECT_RECEIPT: owned, n_items of them */
    size_t n_items;
    char reply_domain[QPC_DIRECT_DOMAIN_MAX + 1];   /* "" when the sender gave none */
};

/*
 * Encodes a text message (len bytes at text, no NUL among them; need not be
 * NUL-terminated) with reply_domain (NULL or "" for none). *out is malloc'd (the caller
 * wipes it with sodium_memzero and frees it), *out_len its length; on error *out is NULL.
 * Returns 0, QPC_ERR_INVALID (NUL in text, reply_domain not a DNS name),
 * QPC_ERR_TOO_LARGE (len above QPC_DIRECT_TEXT_MAX) or QPC_ERR_NOMEM.
 */
int qpc_direct_encode_text(const char *text, size_t len, const char *reply_domain,
                           uint8_t **out, size_t *out_len);

/*
 * Encodes a receipt for items[0..n) (1..QPC_RECEIPT_ITEMS_MAX; only read) with
 * reply_domain (NULL or ""). *out is malloc'd (caller frees), *out_len its length.
 * Returns 0, QPC_ERR_INVALID (n out of range, a via too long or with a NUL, an unknown
 * path, a bad reply_domain) or QPC_ERR_NOMEM.
 */
int qpc_direct_encode_receipt(const struct qpc_receipt_item *items, size_t n,
                              const char *reply_domain, uint8_t **out, size_t *out_len);

/*
 * Decodes plaintext (len bytes, only read) into c, which is overwritten; on error c is
 * cleared. Safe on any bytes. Refused as QPC_ERR_INVALID: not protobuf, neither text nor
 * receipt, anything that does not survive a re-encode unchanged in size (a NUL inside a
 * string, which protobuf-c would cut short; a field repeated), a receipt with 0 or more
 * than QPC_RECEIPT_ITEMS_MAX items, an id not 32 bytes, an unknown path, a via over
 * QPC_RECEIPT_VIA_MAX, a reply_domain that is not a DNS name. QPC_ERR_TOO_LARGE: len
 * above QPC_PAYLOAD_MAX. Also QPC_ERR_NOMEM. Unknown fields are accepted (the plaintext
 * is authenticated by its sender, so nothing rides along unsigned). Free with
 * qpc_direct_clear.
 */
int qpc_direct_decode(struct qpc_direct_content *c, const uint8_t *buf, size_t len);

/* Wipes the text, frees what c owns and zeroes c. NULL is a no-op. */
void qpc_direct_clear(struct qpc_direct_content *c);

/* True when text is a usable reply_domain: 1..253 bytes of letters, digits, '-' and
 * '.', no empty label. "" is not (callers treat it as "none" before asking). */
bool qpc_direct_domain_valid(const char *text);

#endif
