/*
 * hash.c: the keyed hash every hash table of libqpc and its programs uses
 * (qpc/uthash_keyed.h says why tables need one).
 *
 * One random SipHash key per process, made on first use: a per-file key (a static in a
 * header) would give two files different buckets for the same table.
 */
#include <pthread.h>
#include <string.h>
#include <sodium.h>

#include "qpc/uthash_keyed.h"

static unsigned char hash_key[crypto_shorthash_KEYBYTES];
static pthread_once_t hash_key_once = PTHREAD_ONCE_INIT;

static void make_hash_key(void)
{
    /* randombytes_buf works before sodium_init (it initialises its source itself), but
     * the call keeps libsodium's one-time set-up in one predictable place. */
    if (sodium_init() < 0)
        (void)0;
    randombytes_buf(hash_key, sizeof(hash_key));
}

unsigned qpc_hash_keyed(const void *key, size_t len)
{
    unsigned char out[crypto_shorthash_BYTES];
    unsigned h;

    pthread_once(&hash_key_once, make_hash_key);
    crypto_shorthash(out, key, len, hash_key);
    memcpy(&h, out, sizeof(h));
    return h;
}
