/*
 * error.c: texts for QPC_ERR_* codes. Kept beside the enum's order so a new code is
 * added in both places at once.
 */
#include "qpc/error.h"

const char *qpc_strerror(int err)
{
    switch (err) {
    case QPC_OK: return "success";
    case QPC_ERR_NOMEM: return "out of memory";
    case QPC_ERR_INVALID: return "invalid argument or malformed input";
    case QPC_ERR_IO: return "input/output error";
    case QPC_ERR_CORRUPT: return "file is corrupt";
    case QPC_ERR_NOT_FOUND: return "not found";
    case QPC_ERR_AMBIGUOUS: return "ambiguous peer id prefix";
    case QPC_ERR_BAD_SIGNATURE: return "bad signature";
    case QPC_ERR_EXPIRED: return "expired";
    case QPC_ERR_FUTURE: return "created too far in the future";
    case QPC_ERR_HOP_LIMIT: return "hop limit reached";
    case QPC_ERR_DUPLICATE: return "duplicate";
    case QPC_ERR_QUEUE_FULL: return "recipient queue full";
    case QPC_ERR_STORE_FULL: return "store full";
    case QPC_ERR_TOO_LARGE: return "too large";
    case QPC_ERR_DECRYPT: return "decryption failed";
    case QPC_ERR_CRYPTO: return "cryptographic operation failed";
    case QPC_ERR_CONFIG: return "configuration error";
    case QPC_ERR_VERSION: return "unsupported version";
    case QPC_ERR_EXISTS: return "already exists";
    case QPC_ERR_AGAIN: return "try again";
    case QPC_ERR_CLOSED: return "closed";
    case QPC_ERR_TIMEOUT: return "timed out";
    case QPC_ERR_TLS: return "TLS failure";
    case QPC_ERR_REFUSED: return "refused by peer";
    case QPC_ERR_QUIC: return "QUIC protocol error";
    case QPC_ERR_DB: return "database error";
    case QPC_ERR_PERMISSION: return "permission denied";
    }
    return "unknown error";
}
