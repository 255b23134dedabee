/*
 * uthash_keyed.h: uthash with a keyed hash, for tables whose keys a peer chooses.
 *
 * The one idea: uthash's default hash is public, so anyone who picks the keys (peer
 * public keys are minted for free, connection ids and names arrive in packets) can grind
 * them into one bucket and turn every lookup into a list walk. SipHash (libsodium's
 * crypto_shorthash) under a random per-process key makes that guesswork. Include this
 * instead of <uthash.h>; define HASH_NONFATAL_OOM / uthash_nonfatal_oom before it as
 * usual. store.c predates this header and keeps its own copy of the same idea.
 */
#ifndef QPC_LIB_UTHASH_KEYED_H
#define QPC_LIB_UTHASH_KEYED_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sodium.h>

static uint8_t qpc_uthash_key[crypto_shorthash_KEYBYTES];
static pthread_once_t qpc_uthash_key_once = PTHREAD_ONCE_INIT;

static inline void qpc_uthash_key_make(void)
{
    if (sodium_init() < 0)   /* idempotent; randombytes_buf works either way */
        (void)0;
    randombytes_buf(qpc_uthash_key, sizeof(qpc_uthash_key));
}

static inline unsigned qpc_uthash_keyed(const void *key, size_t len)
{
    uint8_t out[crypto_shorthash_BYTES];
    unsigned h;

    pthread_once(&qpc_uthash_key_once, qpc_uthash_key_make);
    crypto_shorthash(out, key, len, qpc_uthash_key);
    memcpy(&h, out, sizeof(h));
    return h;
}

#define HASH_FUNCTION(keyptr, keylen, hashv) \
    ((hashv) = qpc_uthash_keyed((keyptr), (size_t)(keylen)))
#include <uthash.h>

#endif
