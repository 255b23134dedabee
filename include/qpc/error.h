/*
 * error.h: the error codes every libqpc function returns.
 *
 * Functions return 0 on success or a negative QPC_ERR_* value; the caller decides
 * what to do with it. Nothing in libqpc exits the process. qpc_strerror() gives a
 * short English text for logs and users; where more context is useful (a file name, a
 * line number) the function that found the problem fills a caller-supplied buffer.
 */
#ifndef QPC_ERROR_H
#define QPC_ERROR_H

enum qpc_err {
    QPC_OK = 0,
    QPC_ERR_NOMEM = -1,          /* allocation failed */
    QPC_ERR_INVALID = -2,        /* bad argument or malformed input */
    QPC_ERR_IO = -3,             /* read/write/fsync/rename failed; errno is kept */
    QPC_ERR_CORRUPT = -4,        /* a stored file exists but cannot be parsed */
    QPC_ERR_NOT_FOUND = -5,      /* no such peer, key, entry */
    QPC_ERR_AMBIGUOUS = -6,      /* a peer id prefix matches more than one peer */
    QPC_ERR_BAD_SIGNATURE = -7,  /* signature or id does not match the content */
    QPC_ERR_EXPIRED = -8,        /* envelope's TTL has ended */
    QPC_ERR_FUTURE = -9,         /* envelope claims to be created too far in the future */
    QPC_ERR_HOP_LIMIT = -10,     /* hop_count reached max_hops */
    QPC_ERR_DUPLICATE = -11,     /* envelope id already seen */
    QPC_ERR_QUEUE_FULL = -12,    /* recipient's queue is at capacity */
    QPC_ERR_STORE_FULL = -13,    /* global byte cap reached */
    QPC_ERR_TOO_LARGE = -14,     /* input larger than the configured limit */
    QPC_ERR_DECRYPT = -15,       /* AEAD or crypto_box authentication failed */
    QPC_ERR_CRYPTO = -16,        /* a crypto primitive failed (key conversion, RNG) */
    QPC_ERR_CONFIG = -17,        /* configuration error; details in the caller's buffer */
    QPC_ERR_VERSION = -18,       /* unsupported wire or file version */
    QPC_ERR_EXISTS = -19,        /* entry already exists */
    QPC_ERR_AGAIN = -20,         /* would block: try again when told */
    QPC_ERR_CLOSED = -21,        /* connection or stream closed */
    QPC_ERR_TIMEOUT = -22,       /* peer did not answer in time */
    QPC_ERR_TLS = -23,           /* TLS handshake or certificate failure */
    QPC_ERR_REFUSED = -24,       /* peer refused (wrong key, ALPN, not authorised) */
    QPC_ERR_QUIC = -25,          /* QUIC protocol error */
    QPC_ERR_DB = -26,            /* database error */
    QPC_ERR_PERMISSION = -27,    /* not allowed for this caller */
};

/* Returns a static, human-readable description of err (never NULL). */
const char *qpc_strerror(int err);

#endif
