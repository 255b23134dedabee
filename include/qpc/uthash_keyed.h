/*
 * uthash_keyed.h: uthash with a keyed hash, for tables whose keys a peer chooses.
 *
 * The one idea: uthash's default hash is public, so anyone who picks the keys (peer
 * public keys are minted for free, envelope ids, connection ids and domain names arrive
 * in packets) can grind them into one bucket and turn every lookup into a list walk.
 * SipHash (libsodium's crypto_shorthash) under one random key per process makes that
 * guesswork. Include this instead of <uthash.h>; define HASH_NONFATAL_OOM /
 * uthash_nonfatal_oom before it as usual.
 *
 * The key lives in lib/hash.c, not in this header, so a table may be hashed from any
 * number of files of one process and every file computes the same bucket.
 */
#ifndef QPC_UTHASH_KEYED_H
#define QPC_UTHASH_KEYED_H

#include <stddef.h>

/*
 * SipHash-2-4 of key[0..len) under this process's random key (made on first use, thread
 * safe), folded to the width uthash uses. key is only read. Never fails.
 */
unsigned qpc_hash_keyed(const void *key, size_t len);

#define HASH_FUNCTION(keyptr, keylen, hashv) \
    ((hashv) = qpc_hash_keyed((keyptr), (size_t)(keylen)))
#include <uthash.h>

#endif
