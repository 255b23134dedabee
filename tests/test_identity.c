/*
 * test_identity.c: the identity file and the peer directory.
 *
 * File tests work in a fresh directory under $TMPDIR (or /tmp) and remove it. Corrupt
 * file cases check three things each: the error code, that the message names the file
 * and the fault, and that the file is byte-for-byte unchanged afterwards, also after
 * load_or_create (which must never replace an identity it cannot read).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "qpc/encoding.h"
#include "qpc/error.h"
#include "qpc/identity.h"

/* RFC 8032, section 7.1, TEST 1. */
static const char rfc8032_seed_hex[] =
    "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
static const char rfc8032_pk_hex[] =
    "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

/* --- helpers ------------------------------------------------------------------------ */

struct tmpdir {
    char dir[256];
    char path[512];   /* dir/identity.json */
};

static int setup_tmpdir(void **state)
{
    struct tmpdir *t = calloc(1, sizeof(*t));
    const char *base = getenv("TMPDIR");

    assert_non_null(t);
    snprintf(t->dir, sizeof(t->dir), "%s/qpc-identity-XXXXXX", base && *base ? base : "/tmp");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->path, sizeof(t->path), "%s/identity.json", t->dir);
    *state = t;
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

static int teardown_tmpdir(void **state)
{
    struct tmpdir *t = *state;

    nftw(t->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(t);
    return 0;
}

static void key_from_hex_or_fail(uint8_t key[QPC_KEY_LEN], const char *hex)
{
    assert_int_equal(qpc_key_from_hex(key, hex), 0);
}

/* A key whose hex id starts with the given hex prefix, the rest filled with fill. */
static void key_with_prefix(uint8_t key[QPC_KEY_LEN], const char *prefix, char fill)
{
    char hex[QPC_KEY_HEX_LEN];

    memset(hex, fill, QPC_KEY_HEX_LEN - 1);
    hex[QPC_KEY_HEX_LEN - 1] = '\0';
    memcpy(hex, prefix, strlen(prefix));
    key_from_hex_or_fail(key, hex);
}

static void write_bytes(const char *path, const char *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
}

/* Reads a whole file into a malloc'd buffer (NUL-terminated for convenience). */
static char *read_bytes(const char *path, size_t *len)
{
    struct stat st;
    char *buf;
    int fd = open(path, O_RDONLY);

    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    buf = malloc((size_t)st.st_size + 1);
    assert_non_null(buf);
    assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
    buf[st.st_size] = '\0';
    close(fd);
    *len = (size_t)st.st_size;
    return buf;
}

static size_t count_dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t n = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static struct qpc_identity *identity_from_rfc_seed(void)
{
    uint8_t seed[QPC_IDENTITY_SEED_LEN];
    struct qpc_identity *id = NULL;

    assert_int_equal(qpc_hex_decode(seed, sizeof(seed), rfc8032_seed_hex), 0);
    assert_int_equal(qpc_identity_from_seed(seed, &id), 0);
    return id;
}

/* An identity with a name, two peers (one with addresses, pinned) and two servers. */
static struct qpc_identity *populated_identity(void)
{
    struct qpc_identity *id = NULL;
    uint8_t k1[QPC_KEY_LEN], k2[QPC_KEY_LEN], ks[QPC_KEY_LEN];

    assert_int_equal(qpc_identity_generate(&id), 0);
    assert_int_equal(qpc_identity_set_name(id, "Zoë at the hackerspace"), 0);
    key_with_prefix(k1, "ab12", '1');
    key_with_prefix(k2, "cd34", '2');
    key_with_prefix(ks, "ef56", '3');
    assert_int_equal(qpc_identity_peer_upsert(id, k1, "alice", "192.168.1.5:7000", 1000,
                                              QPC_PEER_SOURCE_MDNS, QPC_PEER_CLIENT, NULL), 0);
    assert_int_equal(qpc_identity_peer_upsert(id, k1, NULL, "[fe80::1]:7000", 2000,
                                              QPC_PEER_SOURCE_DIRECT, QPC_PEER_CLIENT, NULL), 0);
    assert_int_equal(qpc_identity_peer_set_pinned(id, k1, true), 0);
    assert_int_equal(qpc_identity_peer_upsert(id, k2, NULL, NULL, 3000, QPC_PEER_SOURCE_SERVER,
                                              QPC_PEER_SERVER, NULL), 0);
    assert_int_equal(qpc_identity_pin_note(id, QPC_PIN_ADDRESS, "node1.mesh.local:7000", 4000, NULL), 0);
    assert_int_equal(qpc_identity_pin_key(id, QPC_PIN_ADDRESS, "10.0.0.1:7000", ks, 5000), 0);
    return id;
}

static void assert_identities_equal(const struct qpc_identity *a, const struct qpc_identity *b)
{
    const struct qpc_peer *p;
    const struct qpc_pin *s;

    assert_memory_equal(qpc_identity_public_key(a), qpc_identity_public_key(b), QPC_KEY_LEN);
    assert_memory_equal(qpc_identity_secret_key(a), qpc_identity_secret_key(b),
                        QPC_IDENTITY_SECRET_KEY_LEN);
    assert_string_equal(qpc_identity_peer_id(a), qpc_identity_peer_id(b));
    if (qpc_identity_name(a) == NULL)
        assert_null(qpc_identity_name(b));
    else
        assert_string_equal(qpc_identity_name(a), qpc_identity_name(b));
    assert_int_equal(qpc_identity_peer_count(a), qpc_identity_peer_count(b));
    for (p = qpc_identity_peer_next(a, NULL); p != NULL; p = qpc_identity_peer_next(a, p)) {
        const struct qpc_peer *q = qpc_identity_peer_get(b, p->key);

        assert_non_null(q);
        assert_string_equal(p->id, q->id);
        if (p->name == NULL)
            assert_null(q->name);
        else
            assert_string_equal(p->name, q->name);
        assert_int_equal(p->address_count, q->address_count);
        for (size_t i = 0; i < p->address_count; i++)
            assert_string_equal(p->addresses[i], q->addresses[i]);
        assert_int_equal(p->last_seen_ms, q->last_seen_ms);
        assert_int_equal(p->source, q->source);
        assert_int_equal(p->kind, q->kind);
        assert_int_equal(p->pinned, q->pinned);
    }
    assert_int_equal(qpc_identity_pin_count(a, QPC_PIN_ADDRESS), qpc_identity_pin_count(b, QPC_PIN_ADDRESS));
    for (s = qpc_identity_pin_next(a, QPC_PIN_ADDRESS, NULL); s != NULL; s = qpc_identity_pin_next(a, QPC_PIN_ADDRESS, s)) {
        const struct qpc_pin *t = qpc_identity_pin_get(b, QPC_PIN_ADDRESS, s->name);

        assert_non_null(t);
        assert_int_equal(s->has_key, t->has_key);
        if (s->has_key)
            assert_memory_equal(s->key, t->key, QPC_KEY_LEN);
        assert_int_equal(s->noted_at_ms, t->noted_at_ms);
        assert_int_equal(s->pinned_at_ms, t->pinned_at_ms);
    }
}

/* --- keys ------------------------------------------------------------------------------ */

static void test_identity_rfc8032_test1_seed_gives_rfc_public_key(void **state)
{
    struct qpc_identity *id = identity_from_rfc_seed();
    uint8_t pk[QPC_KEY_LEN];

    (void)state;
    key_from_hex_or_fail(pk, rfc8032_pk_hex);
    assert_memory_equal(qpc_identity_public_key(id), pk, QPC_KEY_LEN);
    assert_string_equal(qpc_identity_peer_id(id), rfc8032_pk_hex);
    /* libsodium's secret key layout: seed || public key. */
    assert_memory_equal(qpc_identity_secret_key(id) + 32, pk, QPC_KEY_LEN);
    qpc_identity_free(id);
}

static void test_identity_rfc8032_test1_signature_of_empty_message(void **state)
{
    /* RFC 8032 TEST 1 signs the empty message; our secret key must reproduce it. */
    static const char sig_hex[] =
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";
    struct qpc_identity *id = identity_from_rfc_seed();
    uint8_t sig[64], expected[64];

    (void)state;
    assert_int_equal(qpc_hex_decode(expected, sizeof(expected), sig_hex), 0);
    assert_int_equal(crypto_sign_detached(sig, NULL, (const uint8_t *)"", 0,
                                          qpc_identity_secret_key(id)), 0);
    assert_memory_equal(sig, expected, sizeof(sig));
    qpc_identity_free(id);
}

static void test_identity_generate_makes_distinct_working_keys(void **state)
{
    struct qpc_identity *a = NULL, *b = NULL;
    uint8_t sig[64];
    static const uint8_t msg[] = "hello mesh";

    (void)state;
    assert_int_equal(qpc_identity_generate(&a), 0);
    assert_int_equal(qpc_identity_generate(&b), 0);
    assert_memory_not_equal(qpc_identity_public_key(a), qpc_identity_public_key(b), QPC_KEY_LEN);
    assert_int_equal(strlen(qpc_identity_peer_id(a)), 64);
    assert_int_equal(crypto_sign_detached(sig, NULL, msg, sizeof(msg), qpc_identity_secret_key(a)), 0);
    assert_int_equal(crypto_sign_verify_detached(sig, msg, sizeof(msg), qpc_identity_public_key(a)), 0);
    assert_int_not_equal(crypto_sign_verify_detached(sig, msg, sizeof(msg),
                                                     qpc_identity_public_key(b)), 0);
    assert_null(qpc_identity_name(a));
    assert_int_equal(qpc_identity_peer_count(a), 0);
    assert_int_equal(qpc_identity_pin_count(a, QPC_PIN_ADDRESS), 0);
    qpc_identity_free(a);
    qpc_identity_free(b);
}

static void test_identity_set_name_refuses_control_and_bidi_characters(void **state)
{
    struct qpc_identity *id = identity_from_rfc_seed();
    char long_name[QPC_IDENTITY_NAME_MAX + 2];

    (void)state;
    assert_int_equal(qpc_identity_set_name(id, "bob"), 0);
    assert_string_equal(qpc_identity_name(id), "bob");
    assert_int_equal(qpc_identity_set_name(id, "Zoë 🙂"), 0);
    assert_int_equal(qpc_identity_set_name(id, "evil\x1b[2J"), QPC_ERR_INVALID);
    assert_int_equal(qpc_identity_set_name(id, "new\nline"), QPC_ERR_INVALID);
    assert_int_equal(qpc_identity_set_name(id, "c1\xc2\x9b"), QPC_ERR_INVALID);
    assert_int_equal(qpc_identity_set_name(id, "rlo\xe2\x80\xae"), QPC_ERR_INVALID);
    assert_int_equal(qpc_identity_set_name(id, "bad\xff"), QPC_ERR_INVALID);
    assert_int_equal(qpc_identity_set_name(id, "overlong\xc0\xaf"), QPC_ERR_INVALID);
    assert_int_equal(qpc_identity_set_name(id, "surrogate\xed\xa0\x80"), QPC_ERR_INVALID);
    assert_int_equal(qpc_identity_set_name(id, "cut\xe2\x82"), QPC_ERR_INVALID);
    assert_int_equal(qpc_identity_set_name(id, ""), QPC_ERR_INVALID);
    memset(long_name, 'x', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    assert_int_equal(qpc_identity_set_name(id, long_name), QPC_ERR_INVALID);
    long_name[QPC_IDENTITY_NAME_MAX] = '\0';
    assert_int_equal(qpc_identity_set_name(id, long_name), 0);
    assert_int_equal(qpc_identity_set_name(id, NULL), 0);
    assert_null(qpc_identity_name(id));
    qpc_identity_free(id);
}

/* --- the file ----------------------------------------------------------------------- */

static void test_identity_save_then_load_round_trips_keys_peers_servers(void **state)
{
    struct tmpdir *t = *state;
    struct qpc_identity *id = populated_identity(), *back = NULL;
    char err[256] = "";

    assert_int_equal(qpc_identity_save(id, t->path, err, sizeof(err)), 0);
    assert_int_equal(qpc_identity_load(t->path, &back, err, sizeof(err)), 0);
    assert_identities_equal(id, back);
    assert_identities_equal(back, id);
    qpc_identity_free(id);
    qpc_identity_free(back);
}

static void test_identity_large_directory_round_trips(void **state)
{
    struct tmpdir *t = *state;
    struct qpc_identity *id = identity_from_rfc_seed(), *back = NULL;
    uint8_t k[QPC_KEY_LEN] = {0};
    char addr[64], err[256] = "";

    for (uint32_t i = 0; i < 300; i++) {
        memcpy(k, &i, sizeof(i));
        for (int j = 0; j < QPC_PEER_ADDRESSES_MAX; j++) {
            snprintf(addr, sizeof(addr), "peer-%u.mesh.example:%d", i, 7000 + j);
            assert_int_equal(qpc_identity_peer_upsert(id, k, "a \"quoted\" name", addr,
                                                      (uint64_t)i * 1000 + (uint64_t)j,
                                                      QPC_PEER_SOURCE_RELAY, QPC_PEER_SERVER,
                                                      NULL), 0);
        }
    }
    assert_int_equal(qpc_identity_save(id, t->path, err, sizeof(err)), 0);
    assert_int_equal(qpc_identity_load(t->path, &back, err, sizeof(err)), 0);
    assert_int_equal(qpc_identity_peer_count(back), 300);
    assert_identities_equal(id, back);
    qpc_identity_free(id);
    qpc_identity_free(back);
}

static void test_identity_save_makes_mode_0600_whatever_the_umask(void **state)
{
    struct tmpdir *t = *state;
    struct qpc_identity *id = identity_from_rfc_seed();
    struct stat st;
    mode_t old = umask(0);   /* the most permissive umask: nothing beyond 0600 */

    assert_int_equal(qpc_identity_save(id, t->path, NULL, 0), 0);
    assert_int_equal(stat(t->path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);
    /* A umask that takes the owner's write bit must not leave a read-only file. */
    umask(0277);
    assert_int_equal(qpc_identity_save(id, t->path, NULL, 0), 0);
    umask(old);
    assert_int_equal(stat(t->path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    qpc_identity_free(id);
}

static void test_identity_save_leaves_no_temp_file_and_replaces_old_file(void **state)
{
    struct tmpdir *t = *state;
    struct qpc_identity *id = populated_identity(), *back = NULL;
    struct stat st;

    write_bytes(t->path, "old contents", 12);
    assert_int_equal(qpc_identity_save(id, t->path, NULL, 0), 0);
    assert_int_equal(qpc_identity_save(id, t->path, NULL, 0), 0);
    assert_int_equal(count_dir_entries(t->dir), 1);
    assert_int_equal(stat(t->path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(qpc_identity_load(t->path, &back, NULL, 0), 0);
    assert_identities_equal(id, back);
    qpc_identity_free(id);
    qpc_identity_free(back);
}

static void test_identity_save_into_missing_directory_fails_cleanly(void **state)
{
    struct tmpdir *t = *state;
    struct qpc_identity *id = identity_from_rfc_seed();
    char path[600], err[512] = "";

    snprintf(path, sizeof(path), "%s/no/such/dir/identity.json", t->dir);
    assert_int_equal(qpc_identity_save(id, path, err, sizeof(err)), QPC_ERR_IO);
    assert_non_null(strstr(err, path));
    assert_int_equal(count_dir_entries(t->dir), 0);
    qpc_identity_free(id);
}

static void test_identity_serialize_is_deterministic_whatever_the_insert_order(void **state)
{
    struct qpc_identity *a = identity_from_rfc_seed(), *b = identity_from_rfc_seed();
    uint8_t k1[QPC_KEY_LEN], k2[QPC_KEY_LEN];
    char *ta = NULL, *tb = NULL;
    size_t la = 0, lb = 0;

    (void)state;
    key_with_prefix(k1, "01", 'a');
    key_with_prefix(k2, "02", 'b');
    assert_int_equal(qpc_identity_peer_upsert(a, k1, "one", NULL, 1, QPC_PEER_SOURCE_MANUAL,
                                              QPC_PEER_CLIENT, NULL), 0);
    assert_int_equal(qpc_identity_peer_upsert(a, k2, "two", NULL, 2, QPC_PEER_SOURCE_MANUAL,
                                              QPC_PEER_CLIENT, NULL), 0);
    assert_int_equal(qpc_identity_pin_note(a, QPC_PIN_ADDRESS, "a.example:1", 5, NULL), 0);
    assert_int_equal(qpc_identity_pin_note(a, QPC_PIN_ADDRESS, "b.example:1", 6, NULL), 0);
    assert_int_equal(qpc_identity_pin_note(b, QPC_PIN_ADDRESS, "b.example:1", 6, NULL), 0);
    assert_int_equal(qpc_identity_pin_note(b, QPC_PIN_ADDRESS, "a.example:1", 5, NULL), 0);
    assert_int_equal(qpc_identity_peer_upsert(b, k2, "two", NULL, 2, QPC_PEER_SOURCE_MANUAL,
                                              QPC_PEER_CLIENT, NULL), 0);
    assert_int_equal(qpc_identity_peer_upsert(b, k1, "one", NULL, 1, QPC_PEER_SOURCE_MANUAL,
                                              QPC_PEER_CLIENT, NULL), 0);
    assert_int_equal(qpc_identity_serialize(a, &ta, &la), 0);
    assert_int_equal(qpc_identity_serialize(b, &tb, &lb), 0);
    assert_int_equal(la, lb);
    assert_string_equal(ta, tb);
    assert_non_null(strstr(ta, rfc8032_seed_hex));
    assert_true(strstr(ta, "\"01aaaa") < strstr(ta, "\"02bbbb"));
    sodium_memzero(ta, la);
    sodium_memzero(tb, lb);
    free(ta);
    free(tb);
    qpc_identity_free(a);
    qpc_identity_free(b);
}

static void test_identity_load_or_create_makes_missing_file_and_parent_dirs(void **state)
{
    struct tmpdir *t = *state;
    struct qpc_identity *id = NULL, *again = NULL;
    char path[700], parent[600];
    struct stat st;
    bool created = false;

    snprintf(parent, sizeof(parent), "%s/home/.config/qpc", t->dir);
    snprintf(path, sizeof(path), "%s/identity.json", parent);
    assert_int_equal(qpc_identity_load_or_create(path, &id, &created, NULL, 0), 0);
    assert_true(created);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(stat(parent, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0700);
    assert_int_equal(count_dir_entries(parent), 1);   /* no temp file left */

    assert_int_equal(qpc_identity_load_or_create(path, &again, &created, NULL, 0), 0);
    assert_false(created);
    assert_identities_equal(id, again);
    qpc_identity_free(id);
    qpc_identity_free(again);
}

static void test_identity_load_of_missing_file_is_not_found(void **state)
{
    struct tmpdir *t = *state;
    struct qpc_identity *id = NULL;
    char err[600] = "";

    assert_int_equal(qpc_identity_load(t->path, &id, err, sizeof(err)), QPC_ERR_NOT_FOUND);
    assert_null(id);
    assert_non_null(strstr(err, t->path));
    assert_int_equal(count_dir_entries(t->dir), 0);
}

/*
 * One corrupt-file case: the bytes, the code load must return and a piece of text the
 * message must contain (besides the file name).
 */
struct corrupt_case {
    const char *what;
    const char *text;
    int rc;
    const char *message;
};

#define SEED "\"secret_seed\":\"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60\""
#define PK "\"public_key\":\"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a\""
#define PEER_ID "\"id\":\"abababababababababababababababababababababababababababababababab\""
#define GOOD_PEER "{" PEER_ID ",\"last_seen\":1,\"source\":\"mdns\",\"kind\":\"client\"}"

static const struct corrupt_case corrupt_cases[] = {
    {"empty file", "", QPC_ERR_CORRUPT, "not valid JSON"},
    {"bad JSON", "{\"version\":1,", QPC_ERR_CORRUPT, "not valid JSON"},
    {"trailing garbage", "{\"version\":1," SEED "," PK "} x", QPC_ERR_CORRUPT, "not valid JSON"},
    {"top level array", "[1,2]", QPC_ERR_CORRUPT, "not a JSON object"},
    {"no version", "{" SEED "," PK "}", QPC_ERR_CORRUPT, "version: missing"},
    {"version is a string", "{\"version\":\"1\"," SEED "," PK "}", QPC_ERR_CORRUPT,
     "version: not an integer"},
    {"unknown version", "{\"version\":2," SEED "," PK "}", QPC_ERR_VERSION, "version 2"},
    {"duplicate key", "{\"version\":1,\"version\":1," SEED "," PK "}", QPC_ERR_CORRUPT,
     "duplicate"},
    {"seed missing", "{\"version\":1," PK "}", QPC_ERR_CORRUPT, "secret_seed: missing"},
    {"seed not hex",
     "{\"version\":1,\"secret_seed\":\"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7fzz\","
     PK "}", QPC_ERR_CORRUPT, "secret_seed: not 64 hex"},
    {"seed too short", "{\"version\":1,\"secret_seed\":\"9d61\"," PK "}", QPC_ERR_CORRUPT,
     "secret_seed: not 64 hex"},
    {"seed is a number", "{\"version\":1,\"secret_seed\":12," PK "}", QPC_ERR_CORRUPT,
     "secret_seed: not a string"},
    {"key mismatch",
     "{\"version\":1," SEED ",\"public_key\":\"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511b\"}",
     QPC_ERR_CORRUPT, "does not belong"},
    {"name with escape sequence", "{\"version\":1," SEED "," PK ",\"name\":\"a\\u001b[2J\"}",
     QPC_ERR_CORRUPT, "name"},
    {"NUL inside a string", "{\"version\":1," SEED "," PK ",\"name\":\"a\\u0000b\"}",
     QPC_ERR_CORRUPT, "not valid JSON"},
    {"peers not an array", "{\"version\":1," SEED "," PK ",\"peers\":{}}", QPC_ERR_CORRUPT,
     "peers: not an array"},
    {"peer not an object", "{\"version\":1," SEED "," PK ",\"peers\":[3]}", QPC_ERR_CORRUPT,
     "peers[0]: not an object"},
    {"peer id bad hex",
     "{\"version\":1," SEED "," PK ",\"peers\":[{\"id\":\"xyz\",\"last_seen\":1,\"source\":\"mdns\",\"kind\":\"client\"}]}",
     QPC_ERR_CORRUPT, "peers[0].id"},
    {"peer is me",
     "{\"version\":1," SEED "," PK ",\"peers\":[{\"id\":\"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a\",\"last_seen\":1,\"source\":\"mdns\",\"kind\":\"client\"}]}",
     QPC_ERR_CORRUPT, "my own key"},
    {"peer listed twice", "{\"version\":1," SEED "," PK ",\"peers\":[" GOOD_PEER "," GOOD_PEER "]}",
     QPC_ERR_CORRUPT, "peers[1].id: listed twice"},
    {"last_seen negative",
     "{\"version\":1," SEED "," PK ",\"peers\":[{" PEER_ID ",\"last_seen\":-5,\"source\":\"mdns\",\"kind\":\"client\"}]}",
     QPC_ERR_CORRUPT, "peers[0].last_seen"},
    {"last_seen a float",
     "{\"version\":1," SEED "," PK ",\"peers\":[{" PEER_ID ",\"last_seen\":1.5,\"source\":\"mdns\",\"kind\":\"client\"}]}",
     QPC_ERR_CORRUPT, "peers[0].last_seen"},
    {"last_seen too big for an integer",
     "{\"version\":1," SEED "," PK ",\"peers\":[{" PEER_ID ",\"last_seen\":99999999999999999999999,\"source\":\"mdns\",\"kind\":\"client\"}]}",
     QPC_ERR_CORRUPT, "not valid JSON"},
    {"unknown source",
     "{\"version\":1," SEED "," PK ",\"peers\":[{" PEER_ID ",\"last_seen\":1,\"source\":\"carrier pigeon\",\"kind\":\"client\"}]}",
     QPC_ERR_CORRUPT, "peers[0].source: unknown value"},
    {"kind missing",
     "{\"version\":1," SEED "," PK ",\"peers\":[{" PEER_ID ",\"last_seen\":1,\"source\":\"mdns\"}]}",
     QPC_ERR_CORRUPT, "peers[0].kind: missing"},
    {"pinned not a boolean",
     "{\"version\":1," SEED "," PK ",\"peers\":[{" PEER_ID ",\"last_seen\":1,\"source\":\"mdns\",\"kind\":\"client\",\"pinned\":1}]}",
     QPC_ERR_CORRUPT, "peers[0].pinned"},
    {"address without port",
     "{\"version\":1," SEED "," PK ",\"peers\":[{" PEER_ID ",\"addresses\":[\"host\"],\"last_seen\":1,\"source\":\"mdns\",\"kind\":\"client\"}]}",
     QPC_ERR_CORRUPT, "peers[0].addresses[0]"},
    {"too many addresses",
     "{\"version\":1," SEED "," PK ",\"peers\":[{" PEER_ID ",\"addresses\":[\"a:1\",\"a:2\",\"a:3\",\"a:4\",\"a:5\",\"a:6\",\"a:7\",\"a:8\",\"a:9\"],\"last_seen\":1,\"source\":\"mdns\",\"kind\":\"client\"}]}",
     QPC_ERR_CORRUPT, "peers[0].addresses"},
    {"duplicate address",
     "{\"version\":1," SEED "," PK ",\"peers\":[{" PEER_ID ",\"addresses\":[\"a:1\",\"A:1\"],\"last_seen\":1,\"source\":\"mdns\",\"kind\":\"client\"}]}",
     QPC_ERR_CORRUPT, "peers[0].addresses[1]: duplicate"},
    {"server without address", "{\"version\":1," SEED "," PK ",\"servers\":[{\"noted_at\":1}]}",
     QPC_ERR_CORRUPT, "servers[0].address: missing"},
    {"server key without pinned_at",
     "{\"version\":1," SEED "," PK ",\"servers\":[{\"address\":\"a:1\",\"noted_at\":1,\"key\":\"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a\"}]}",
     QPC_ERR_CORRUPT, "servers[0].pinned_at: missing"},
    {"server key bad hex",
     "{\"version\":1," SEED "," PK ",\"servers\":[{\"address\":\"a:1\",\"noted_at\":1,\"key\":\"00\",\"pinned_at\":2}]}",
     QPC_ERR_CORRUPT, "servers[0].key"},
    {"server listed twice (other case)",
     "{\"version\":1," SEED "," PK ",\"servers\":[{\"address\":\"a:1\",\"noted_at\":1},{\"address\":\"A:1\",\"noted_at\":1}]}",
     QPC_ERR_CORRUPT, "servers[1].address: listed twice"},
};

/* A valid file, so that cutting it short is tested too. */
static const char valid_file[] =
    "{\"version\":1," SEED "," PK ",\"name\":\"me\",\"peers\":[" GOOD_PEER "],"
    "\"servers\":[{\"address\":\"a:1\",\"noted_at\":1}]}";

static void check_corrupt_file_refused_and_unchanged(struct tmpdir *t, const char *what,
                                                     const char *text, size_t len, int rc,
                                                     const char *message)
{
    struct qpc_identity *id = NULL;
    char err[1024] = "", *after;
    size_t after_len = 0;
    bool created = true;

    print_message("case: %s\n", what);
    write_bytes(t->path, text, len);
    assert_int_equal(qpc_identity_load(t->path, &id, err, sizeof(err)), rc);
    assert_null(id);
    assert_non_null(strstr(err, t->path));
    if (message != NULL && strstr(err, message) == NULL)
        fail_msg("%s: message '%s' lacks '%s'", what, err, message);

    err[0] = '\0';
    assert_int_equal(qpc_identity_load_or_create(t->path, &id, &created, err, sizeof(err)), rc);
    assert_null(id);
    assert_false(created);
    assert_non_null(strstr(err, t->path));

    after = read_bytes(t->path, &after_len);
    assert_int_equal(after_len, len);
    assert_memory_equal(after, text, len);
    free(after);
    assert_int_equal(count_dir_entries(t->dir), 1);
}

static void test_identity_corrupt_files_are_refused_named_and_left_unchanged(void **state)
{
    struct tmpdir *t = *state;
    struct qpc_identity *id = NULL;

    /* The valid base must load, or the cases below would prove nothing. */
    write_bytes(t->path, valid_file, strlen(valid_file));
    assert_int_equal(qpc_identity_load(t->path, &id, NULL, 0), 0);
    qpc_identity_free(id);
    for (size_t i = 0; i < sizeof(corrupt_cases) / sizeof(corrupt_cases[0]); i++) {
        const struct corrupt_case *c = &corrupt_cases[i];

        check_corrupt_file_refused_and_unchanged(t, c->what, c->text, strlen(c->text), c->rc,
                                                 c->message);
    }
}

static void test_identity_every_truncation_of_a_file_is_refused(void **state)
{
    struct tmpdir *t = *state;
    struct qpc_identity *id = populated_identity(), *back = NULL;
    char *text = NULL;
    size_t len = 0, cut;

    assert_int_equal(qpc_identity_serialize(id, &text, &len), 0);
    /* Drop the final newline and closing brace at least: every shorter prefix is bad JSON. */
    for (cut = 0; cut + 2 < len; cut++)
        assert_int_equal(qpc_identity_parse(text, cut, &back, NULL, 0), QPC_ERR_CORRUPT);
    assert_int_equal(qpc_identity_parse(text, len, &back, NULL, 0), 0);
    assert_identities_equal(id, back);
    /* And one truncated file on disk goes through the whole load_or_create path. */
    check_corrupt_file_refused_and_unchanged(t, "truncated file", text, len / 2, QPC_ERR_CORRUPT,
                                             "not valid JSON");
    sodium_memzero(text, len);
    free(text);
    qpc_identity_free(id);
    qpc_identity_free(back);
}

static void test_identity_oversized_file_is_refused_unread(void **state)
{
    struct tmpdir *t = *state;
    struct qpc_identity *id = NULL;
    char err[600] = "";
    struct stat st;
    bool created = true;
    int fd = open(t->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)QPC_IDENTITY_FILE_MAX + 1), 0);   /* sparse */
    close(fd);
    assert_int_equal(qpc_identity_load(t->path, &id, err, sizeof(err)), QPC_ERR_TOO_LARGE);
    assert_non_null(strstr(err, t->path));
    assert_int_equal(qpc_identity_load_or_create(t->path, &id, &created, NULL, 0),
                     QPC_ERR_TOO_LARGE);
    assert_false(created);
    assert_int_equal(stat(t->path, &st), 0);
    assert_int_equal(st.st_size, (off_t)QPC_IDENTITY_FILE_MAX + 1);
    assert_int_equal(qpc_identity_parse("{}", (size_t)QPC_IDENTITY_FILE_MAX + 1, &id, NULL, 0),
                     QPC_ERR_TOO_LARGE);
}

static void test_identity_path_that_is_not_a_regular_file_is_an_io_error(void **state)
{
    struct tmpdir *t = *state;
    struct qpc_identity *id = NULL;
    char fifo[600], err[700] = "";
    bool created = true;

    assert_int_equal(mkdir(t->path, 0700), 0);   /* a directory where the file should be */
    assert_int_equal(qpc_identity_load_or_create(t->path, &id, &created, err, sizeof(err)),
                     QPC_ERR_IO);
    assert_null(id);
    assert_false(created);
    assert_non_null(strstr(err, t->path));
    assert_non_null(strstr(err, "not a regular file"));

    /* A FIFO must be refused at once, not block the reader forever. */
    snprintf(fifo, sizeof(fifo), "%s/fifo.json", t->dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(qpc_identity_load_or_create(fifo, &id, &created, err, sizeof(err)),
                     QPC_ERR_IO);
    assert_non_null(strstr(err, fifo));
}

static void test_identity_load_refuses_empty_path(void **state)
{
    struct qpc_identity *id = NULL;

    (void)state;
    assert_int_equal(qpc_identity_load("", &id, NULL, 0), QPC_ERR_INVALID);
    assert_int_equal(qpc_identity_load_or_create("", &id, NULL, NULL, 0), QPC_ERR_INVALID);
}

/* --- peer directory ------------------------------------------------------------------- */

static void test_identity_peer_upsert_merges_addresses_newest_first_bounded(void **state)
{
    struct qpc_identity *id = identity_from_rfc_seed();
    const struct qpc_peer *p = NULL;
    uint8_t k[QPC_KEY_LEN];
    char addr[32];

    (void)state;
    key_with_prefix(k, "aa", '0');
    assert_int_equal(qpc_identity_peer_upsert(id, k, "alice", "Host.Example:7000", 500,
                                              QPC_PEER_SOURCE_MDNS, QPC_PEER_CLIENT, &p), 0);
    assert_string_equal(p->addresses[0], "host.example:7000");   /* lowercased */
    assert_int_equal(qpc_identity_peer_upsert(id, k, NULL, "10.0.0.2:7000", 400,
                                              QPC_PEER_SOURCE_RELAY, QPC_PEER_CLIENT, &p), 0);
    assert_string_equal(p->name, "alice");          /* kept when not given */
    assert_int_equal(p->last_seen_ms, 500);         /* an older sighting does not go back */
    assert_int_equal(p->source, QPC_PEER_SOURCE_RELAY);
    assert_int_equal(p->address_count, 2);
    assert_string_equal(p->addresses[0], "10.0.0.2:7000");
    /* A known address seen again moves to the front without duplicating. */
    assert_int_equal(qpc_identity_peer_upsert(id, k, "alice2", "host.example:7000", 900,
                                              QPC_PEER_SOURCE_DIRECT, QPC_PEER_CLIENT, &p), 0);
    assert_int_equal(p->address_count, 2);
    assert_string_equal(p->addresses[0], "host.example:7000");
    assert_string_equal(p->addresses[1], "10.0.0.2:7000");
    assert_string_equal(p->name, "alice2");
    assert_int_equal(p->last_seen_ms, 900);
    /* Beyond the bound, the oldest addresses go. */
    for (int i = 1; i <= QPC_PEER_ADDRESSES_MAX; i++) {
        snprintf(addr, sizeof(addr), "192.0.2.%d:7000", i);
        assert_int_equal(qpc_identity_peer_upsert(id, k, NULL, addr, 1000 + (uint64_t)i,
                                                  QPC_PEER_SOURCE_MDNS, QPC_PEER_CLIENT, &p), 0);
    }
    assert_int_equal(p->address_count, QPC_PEER_ADDRESSES_MAX);
    snprintf(addr, sizeof(addr), "192.0.2.%d:7000", QPC_PEER_ADDRESSES_MAX);
    assert_string_equal(p->addresses[0], addr);
    assert_string_equal(p->addresses[QPC_PEER_ADDRESSES_MAX - 1], "192.0.2.1:7000");
    assert_int_equal(qpc_identity_peer_count(id), 1);
    qpc_identity_free(id);
}

static void test_identity_peer_upsert_refuses_bad_input_and_changes_nothing(void **state)
{
    struct qpc_identity *id = identity_from_rfc_seed();
    const struct qpc_peer *p;
    uint8_t k[QPC_KEY_LEN];

    (void)state;
    key_with_prefix(k, "bb", '0');
    assert_int_equal(qpc_identity_peer_upsert(id, qpc_identity_public_key(id), "me", NULL, 1,
                                              QPC_PEER_SOURCE_MANUAL, QPC_PEER_CLIENT, NULL),
                     QPC_ERR_INVALID);
    assert_int_equal(qpc_identity_peer_upsert(id, k, "x", "no-port", 1, QPC_PEER_SOURCE_MANUAL,
                                              QPC_PEER_CLIENT, NULL), QPC_ERR_INVALID);
    assert_int_equal(qpc_identity_peer_upsert(id, k, "bell\a", NULL, 1, QPC_PEER_SOURCE_MANUAL,
                                              QPC_PEER_CLIENT, NULL), QPC_ERR_INVALID);
    assert_int_equal(qpc_identity_peer_upsert(id, k, NULL, NULL, 1, (enum qpc_peer_source)42,
                                              QPC_PEER_CLIENT, NULL), QPC_ERR_INVALID);
    assert_int_equal(qpc_identity_peer_upsert(id, k, NULL, NULL, 1, QPC_PEER_SOURCE_MANUAL,
                                              (enum qpc_peer_kind)7, NULL), QPC_ERR_INVALID);
    assert_int_equal(qpc_identity_peer_count(id), 0);
    assert_int_equal(qpc_identity_peer_upsert(id, k, "bob", "b:1", 1, QPC_PEER_SOURCE_MANUAL,
                                              QPC_PEER_CLIENT, NULL), 0);
    assert_int_equal(qpc_identity_peer_upsert(id, k, "bob\x7f", "c:1", 2, QPC_PEER_SOURCE_MDNS,
                                              QPC_PEER_SERVER, NULL), QPC_ERR_INVALID);
    p = qpc_identity_peer_get(id, k);
    assert_non_null(p);
    assert_string_equal(p->name, "bob");
    assert_int_equal(p->address_count, 1);
    assert_int_equal(p->last_seen_ms, 1);
    assert_int_equal(p->kind, QPC_PEER_CLIENT);
    qpc_identity_free(id);
}

static void test_identity_peer_set_name_changes_only_the_name(void **state)
{
    struct qpc_identity *id = identity_from_rfc_seed();
    const struct qpc_peer *p;
    uint8_t k[QPC_KEY_LEN], other[QPC_KEY_LEN];

    (void)state;
    key_with_prefix(k, "0a", 'c');
    key_with_prefix(other, "0b", 'c');
    assert_int_equal(qpc_identity_peer_upsert(id, k, "old", "10.0.0.1:7000", 1234,
                                              QPC_PEER_SOURCE_MDNS, QPC_PEER_CLIENT, NULL), 0);
    assert_int_equal(qpc_identity_peer_set_name(id, k, "Jürgen"), 0);
    p = qpc_identity_peer_get(id, k);
    assert_string_equal(p->name, "Jürgen");
    assert_int_equal(p->source, QPC_PEER_SOURCE_MDNS);   /* naming is not meeting */
    assert_int_equal(p->last_seen_ms, 1234);
    assert_int_equal(qpc_identity_peer_set_name(id, k, "bad\x1b[0m"), QPC_ERR_INVALID);
    assert_string_equal(p->name, "Jürgen");
    assert_int_equal(qpc_identity_peer_set_name(id, k, NULL), 0);
    assert_null(p->name);
    assert_int_equal(qpc_identity_peer_set_name(id, other, "x"), QPC_ERR_NOT_FOUND);
    qpc_identity_free(id);
}

static void test_identity_peer_remove_count_and_iterate(void **state)
{
    struct qpc_identity *id = identity_from_rfc_seed();
    const struct qpc_peer *p;
    uint8_t keys[5][QPC_KEY_LEN];
    bool seen[5] = {false};
    size_t n = 0;

    (void)state;
    for (int i = 0; i < 5; i++) {
        char prefix[3] = {'0', (char)('1' + i), '\0'};

        key_with_prefix(keys[i], prefix, 'c');
        assert_int_equal(qpc_identity_peer_upsert(id, keys[i], NULL, NULL, (uint64_t)i,
                                                  QPC_PEER_SOURCE_MANUAL, QPC_PEER_CLIENT, NULL), 0);
    }
    assert_int_equal(qpc_identity_peer_count(id), 5);
    assert_int_equal(qpc_identity_peer_remove(id, keys[2]), 0);
    assert_int_equal(qpc_identity_peer_remove(id, keys[2]), QPC_ERR_NOT_FOUND);
    assert_null(qpc_identity_peer_get(id, keys[2]));
    assert_int_equal(qpc_identity_peer_count(id), 4);
    for (p = qpc_identity_peer_next(id, NULL); p != NULL; p = qpc_identity_peer_next(id, p)) {
        for (int i = 0; i < 5; i++)
            if (memcmp(p->key, keys[i], QPC_KEY_LEN) == 0)
                seen[i] = true;
        n++;
    }
    assert_int_equal(n, 4);
    assert_true(seen[0] && seen[1] && !seen[2] && seen[3] && seen[4]);
    assert_int_equal(qpc_identity_peer_set_pinned(id, keys[2], true), QPC_ERR_NOT_FOUND);
    qpc_identity_free(id);
}

static void test_identity_full_directory_evicts_oldest_unpinned_peer(void **state)
{
    struct qpc_identity *id = identity_from_rfc_seed();
    uint8_t k[QPC_KEY_LEN], first[QPC_KEY_LEN], second[QPC_KEY_LEN];

    (void)state;
    memset(k, 0, sizeof(k));
    for (uint32_t i = 0; i < QPC_PEERS_MAX; i++) {
        memcpy(k, &i, sizeof(i));
        k[31] = 0x55;
        if (i == 0)
            memcpy(first, k, QPC_KEY_LEN);
        if (i == 1)
            memcpy(second, k, QPC_KEY_LEN);
        assert_int_equal(qpc_identity_peer_upsert(id, k, NULL, NULL, 1000 + i,
                                                  QPC_PEER_SOURCE_MDNS, QPC_PEER_CLIENT, NULL), 0);
    }
    assert_int_equal(qpc_identity_peer_count(id), QPC_PEERS_MAX);
    assert_int_equal(qpc_identity_peer_set_pinned(id, first, true), 0);
    k[31] = 0x66;
    assert_int_equal(qpc_identity_peer_upsert(id, k, NULL, NULL, 99999, QPC_PEER_SOURCE_MDNS,
                                              QPC_PEER_CLIENT, NULL), 0);
    assert_int_equal(qpc_identity_peer_count(id), QPC_PEERS_MAX);
    assert_non_null(qpc_identity_peer_get(id, first));    /* pinned: kept though oldest */
    assert_null(qpc_identity_peer_get(id, second));       /* oldest unpinned: evicted */
    assert_non_null(qpc_identity_peer_get(id, k));
    qpc_identity_free(id);
}

static void test_identity_directory_full_of_pinned_peers_refuses_new_one(void **state)
{
    struct qpc_identity *id = identity_from_rfc_seed();
    uint8_t k[QPC_KEY_LEN];

    (void)state;
    memset(k, 0, sizeof(k));
    for (uint32_t i = 0; i < QPC_PEERS_MAX; i++) {
        memcpy(k, &i, sizeof(i));
        assert_int_equal(qpc_identity_peer_upsert(id, k, NULL, NULL, i, QPC_PEER_SOURCE_MANUAL,
                                                  QPC_PEER_CLIENT, NULL), 0);
        assert_int_equal(qpc_identity_peer_set_pinned(id, k, true), 0);
    }
    k[31] = 0x77;
    assert_int_equal(qpc_identity_peer_upsert(id, k, NULL, NULL, 1, QPC_PEER_SOURCE_MANUAL,
                                              QPC_PEER_CLIENT, NULL), QPC_ERR_STORE_FULL);
    assert_int_equal(qpc_identity_peer_count(id), QPC_PEERS_MAX);
    assert_null(qpc_identity_peer_get(id, k));
    qpc_identity_free(id);
}

/* A directory with ids starting ab00..., ab11..., cd22... (names alice, bob, -). */
static struct qpc_identity *prefix_directory(void)
{
    struct qpc_identity *id = identity_from_rfc_seed();
    uint8_t k[QPC_KEY_LEN];

    key_with_prefix(k, "ab00", '0');
    assert_int_equal(qpc_identity_peer_upsert(id, k, "alice", NULL, 1, QPC_PEER_SOURCE_MANUAL,
                                              QPC_PEER_CLIENT, NULL), 0);
    key_with_prefix(k, "ab11", '1');
    assert_int_equal(qpc_identity_peer_upsert(id, k, "bob", NULL, 1, QPC_PEER_SOURCE_MANUAL,
                                              QPC_PEER_CLIENT, NULL), 0);
    key_with_prefix(k, "cd22", '2');
    assert_int_equal(qpc_identity_peer_upsert(id, k, NULL, NULL, 1, QPC_PEER_SOURCE_MANUAL,
                                              QPC_PEER_CLIENT, NULL), 0);
    return id;
}

static void test_identity_peer_find_exact_and_unique_prefix(void **state)
{
    struct qpc_identity *id = prefix_directory();
    const struct qpc_peer *p = NULL;
    char full[QPC_KEY_HEX_LEN];

    (void)state;
    memset(full, '1', QPC_KEY_HEX_LEN - 1);
    full[QPC_KEY_HEX_LEN - 1] = '\0';
    memcpy(full, "ab11", 4);
    assert_int_equal(qpc_identity_peer_find(id, full, &p, NULL, 0), 0);
    assert_string_equal(p->id, full);
    assert_int_equal(qpc_identity_peer_find(id, "c", &p, NULL, 0), 0);
    assert_memory_equal(p->id, "cd22", 4);
    assert_int_equal(qpc_identity_peer_find(id, "AB0", &p, NULL, 0), 0);   /* any case */
    assert_string_equal(p->name, "alice");
    assert_int_equal(qpc_identity_peer_find(id, "ab1", &p, NULL, 0), 0);
    assert_string_equal(p->name, "bob");
    qpc_identity_free(id);
}

static void test_identity_peer_find_ambiguous_prefix_lists_candidates(void **state)
{
    struct qpc_identity *id = prefix_directory();
    const struct qpc_peer *p = (const struct qpc_peer *)1, *matches[4];
    char err[512] = "";
    size_t total = 0;

    (void)state;
    assert_int_equal(qpc_identity_peer_find(id, "ab", &p, err, sizeof(err)), QPC_ERR_AMBIGUOUS);
    assert_null(p);
    assert_non_null(strstr(err, "ambiguous prefix 'ab'"));
    assert_non_null(strstr(err, "ab00000000000000"));
    assert_non_null(strstr(err, "ab11111111111111"));
    assert_non_null(strstr(err, "alice"));
    assert_null(strstr(err, "cd22"));
    assert_int_equal(qpc_identity_peer_match(id, "A", matches, 4, &total), 0);
    assert_int_equal(total, 2);
    assert_int_equal(qpc_identity_peer_match(id, "0", NULL, 0, &total), 0);
    assert_int_equal(total, 0);
    /* A small buffer is truncated, not overrun. */
    char small[20];
    memset(small, 'Z', sizeof(small));
    assert_int_equal(qpc_identity_peer_find(id, "ab", &p, small, 12), QPC_ERR_AMBIGUOUS);
    assert_int_equal(strlen(small), 11);
    assert_int_equal(small[12], 'Z');
    qpc_identity_free(id);
}

static void test_identity_peer_find_many_candidates_says_how_many_more(void **state)
{
    struct qpc_identity *id = identity_from_rfc_seed();
    const struct qpc_peer *p;
    uint8_t k[QPC_KEY_LEN];
    char err[1024] = "";

    (void)state;
    for (int i = 0; i < 12; i++) {
        char prefix[4];

        snprintf(prefix, sizeof(prefix), "f%02x", i);
        key_with_prefix(k, prefix, 'e');
        assert_int_equal(qpc_identity_peer_upsert(id, k, NULL, NULL, 1, QPC_PEER_SOURCE_MANUAL,
                                                  QPC_PEER_CLIENT, NULL), 0);
    }
    assert_int_equal(qpc_identity_peer_find(id, "f", &p, err, sizeof(err)), QPC_ERR_AMBIGUOUS);
    assert_non_null(strstr(err, "(12 peers)"));
    assert_non_null(strstr(err, "and 4 more"));
    qpc_identity_free(id);
}

static void test_identity_peer_find_not_found_and_invalid_prefixes(void **state)
{
    struct qpc_identity *id = prefix_directory();
    const struct qpc_peer *p = NULL;
    char err[256] = "", too_long[QPC_KEY_HEX_LEN + 1];

    (void)state;
    assert_int_equal(qpc_identity_peer_find(id, "ef", &p, err, sizeof(err)), QPC_ERR_NOT_FOUND);
    assert_null(p);
    assert_non_null(strstr(err, "'ef'"));
    assert_int_equal(qpc_identity_peer_find(id, "abx", &p, err, sizeof(err)), QPC_ERR_INVALID);
    assert_int_equal(qpc_identity_peer_find(id, "ab 0", &p, NULL, 0), QPC_ERR_INVALID);
    assert_int_equal(qpc_identity_peer_find(id, "", &p, NULL, 0), QPC_ERR_INVALID);
    assert_int_equal(qpc_identity_peer_find(id, NULL, &p, NULL, 0), QPC_ERR_INVALID);
    assert_int_equal(qpc_identity_peer_find(id, "-1", &p, NULL, 0), QPC_ERR_INVALID);
    memset(too_long, 'a', sizeof(too_long) - 1);
    too_long[sizeof(too_long) - 1] = '\0';
    assert_int_equal(qpc_identity_peer_find(id, too_long, &p, NULL, 0), QPC_ERR_INVALID);
    qpc_identity_free(id);
}

/* --- key pins: servers by address (TOFU), domains --------------------------------------- */

static void test_identity_server_tofu_pins_first_key_and_refuses_a_changed_one(void **state)
{
    struct qpc_identity *id = identity_from_rfc_seed();
    const struct qpc_pin *s = NULL;
    uint8_t k1[QPC_KEY_LEN], k2[QPC_KEY_LEN], got[QPC_KEY_LEN];

    (void)state;
    key_with_prefix(k1, "11", '1');
    key_with_prefix(k2, "22", '2');
    assert_int_equal(qpc_identity_pin_note(id, QPC_PIN_ADDRESS, "Node1.Mesh.Local:7000", 100, &s), 0);
    assert_string_equal(s->name, "node1.mesh.local:7000");
    assert_false(s->has_key);
    assert_int_equal(qpc_identity_pin_lookup(id, QPC_PIN_ADDRESS, "node1.mesh.local:7000", got), QPC_ERR_NOT_FOUND);
    /* Noting again changes nothing. */
    assert_int_equal(qpc_identity_pin_note(id, QPC_PIN_ADDRESS, "node1.mesh.local:7000", 999, &s), 0);
    assert_int_equal(s->noted_at_ms, 100);
    assert_int_equal(qpc_identity_pin_count(id, QPC_PIN_ADDRESS), 1);

    assert_int_equal(qpc_identity_pin_key(id, QPC_PIN_ADDRESS, "NODE1.mesh.local:7000", k1, 200), 0);
    assert_int_equal(qpc_identity_pin_lookup(id, QPC_PIN_ADDRESS, "node1.mesh.local:7000", got), 0);
    assert_memory_equal(got, k1, QPC_KEY_LEN);
    assert_int_equal(qpc_identity_pin_key(id, QPC_PIN_ADDRESS, "node1.mesh.local:7000", k1, 300), 0);
    assert_int_equal(qpc_identity_pin_get(id, QPC_PIN_ADDRESS, "node1.mesh.local:7000")->pinned_at_ms, 200);

    /* A different key for a pinned address: refused, like SSH's changed host key. */
    assert_int_equal(qpc_identity_pin_key(id, QPC_PIN_ADDRESS, "node1.mesh.local:7000", k2, 400),
                     QPC_ERR_REFUSED);
    assert_int_equal(qpc_identity_pin_lookup(id, QPC_PIN_ADDRESS, "node1.mesh.local:7000", got), 0);
    assert_memory_equal(got, k1, QPC_KEY_LEN);

    /* Only forgetting the server lets a new key in. */
    assert_int_equal(qpc_identity_pin_forget(id, QPC_PIN_ADDRESS, "node1.mesh.local:7000"), 0);
    assert_int_equal(qpc_identity_pin_forget(id, QPC_PIN_ADDRESS, "node1.mesh.local:7000"), QPC_ERR_NOT_FOUND);
    assert_int_equal(qpc_identity_pin_key(id, QPC_PIN_ADDRESS, "node1.mesh.local:7000", k2, 500), 0);
    assert_int_equal(qpc_identity_pin_lookup(id, QPC_PIN_ADDRESS, "node1.mesh.local:7000", got), 0);
    assert_memory_equal(got, k2, QPC_KEY_LEN);
    qpc_identity_free(id);
}

static void test_identity_server_refuses_bad_addresses_and_unknown_lookups(void **state)
{
    struct qpc_identity *id = identity_from_rfc_seed();
    uint8_t k[QPC_KEY_LEN] = {1}, got[QPC_KEY_LEN];

    (void)state;
    assert_int_equal(qpc_identity_pin_note(id, QPC_PIN_ADDRESS, "no port", 1, NULL), QPC_ERR_INVALID);
    assert_int_equal(qpc_identity_pin_key(id, QPC_PIN_ADDRESS, "host:99999", k, 1), QPC_ERR_INVALID);
    assert_int_equal(qpc_identity_pin_lookup(id, QPC_PIN_ADDRESS, "bad", got), QPC_ERR_INVALID);
    assert_int_equal(qpc_identity_pin_lookup(id, QPC_PIN_ADDRESS, "unknown:1", got), QPC_ERR_NOT_FOUND);
    assert_null(qpc_identity_pin_get(id, QPC_PIN_ADDRESS, "unknown:1"));
    assert_null(qpc_identity_pin_get(id, QPC_PIN_ADDRESS, NULL));
    assert_int_equal(qpc_identity_pin_count(id, QPC_PIN_ADDRESS), 0);
    qpc_identity_free(id);
}

static void test_identity_server_list_has_a_bound(void **state)
{
    struct qpc_identity *id = identity_from_rfc_seed();
    const struct qpc_pin *s;
    char addr[64];
    size_t n = 0;

    (void)state;
    for (int i = 0; i < QPC_PINS_MAX; i++) {
        snprintf(addr, sizeof(addr), "server%d.example:7000", i);
        assert_int_equal(qpc_identity_pin_note(id, QPC_PIN_ADDRESS, addr, 1, NULL), 0);
    }
    assert_int_equal(qpc_identity_pin_note(id, QPC_PIN_ADDRESS, "one-more.example:7000", 1, NULL),
                     QPC_ERR_STORE_FULL);
    /* A known one is still fine. */
    assert_int_equal(qpc_identity_pin_note(id, QPC_PIN_ADDRESS, "server0.example:7000", 1, NULL), 0);
    for (s = qpc_identity_pin_next(id, QPC_PIN_ADDRESS, NULL); s != NULL;
         s = qpc_identity_pin_next(id, QPC_PIN_ADDRESS, s))
        n++;
    assert_int_equal(n, QPC_PINS_MAX);
    /* Each kind has its own bound: addresses filling up leave room for domains. */
    assert_int_equal(qpc_identity_pin_note(id, QPC_PIN_DOMAIN, "a.mesh.local", 1, NULL), 0);
    qpc_identity_free(id);
}

/* The same facility for DNS names: a federation domain and the key pinned for it. */
static void test_identity_domain_pins_are_their_own_namespace(void **state)
{
    struct qpc_identity *id = identity_from_rfc_seed();
    const struct qpc_pin *p = NULL;
    uint8_t k1[QPC_KEY_LEN], k2[QPC_KEY_LEN], got[QPC_KEY_LEN];

    (void)state;
    key_with_prefix(k1, "11", '1');
    key_with_prefix(k2, "22", '2');
    assert_int_equal(qpc_identity_pin_key(id, QPC_PIN_DOMAIN, "Node2.Mesh.Local", k1, 10), 0);
    assert_non_null(p = qpc_identity_pin_get(id, QPC_PIN_DOMAIN, "node2.mesh.LOCAL"));
    assert_int_equal(p->kind, QPC_PIN_DOMAIN);
    assert_string_equal(p->name, "node2.mesh.local");
    assert_int_equal(p->noted_at_ms, 10);
    assert_int_equal(p->pinned_at_ms, 10);
    assert_int_equal(qpc_identity_pin_key(id, QPC_PIN_DOMAIN, "node2.mesh.local", k2, 20),
                     QPC_ERR_REFUSED);
    assert_int_equal(qpc_identity_pin_lookup(id, QPC_PIN_DOMAIN, "node2.mesh.local", got), 0);
    assert_memory_equal(got, k1, QPC_KEY_LEN);
    /* kinds do not see each other's names, and each checks its own syntax */
    assert_int_equal(qpc_identity_pin_count(id, QPC_PIN_DOMAIN), 1);
    assert_int_equal(qpc_identity_pin_count(id, QPC_PIN_ADDRESS), 0);
    assert_null(qpc_identity_pin_next(id, QPC_PIN_ADDRESS, NULL));
    assert_int_equal(qpc_identity_pin_note(id, QPC_PIN_DOMAIN, "node2.mesh.local:7000", 1, NULL),
                     QPC_ERR_INVALID);
    assert_int_equal(qpc_identity_pin_note(id, QPC_PIN_DOMAIN, "a..b", 1, NULL), QPC_ERR_INVALID);
    assert_int_equal(qpc_identity_pin_note(id, QPC_PIN_ADDRESS, "node2.mesh.local", 1, NULL),
                     QPC_ERR_INVALID);
    /* an unknown kind is refused everywhere, never used as an index */
    assert_int_equal(qpc_identity_pin_note(id, (enum qpc_pin_kind)7, "a", 1, NULL),
                     QPC_ERR_INVALID);
    assert_int_equal(qpc_identity_pin_lookup(id, (enum qpc_pin_kind)7, "a", got),
                     QPC_ERR_INVALID);
    assert_null(qpc_identity_pin_get(id, (enum qpc_pin_kind)7, "a"));
    assert_null(qpc_identity_pin_next(id, (enum qpc_pin_kind)7, NULL));
    assert_int_equal(qpc_identity_pin_count(id, (enum qpc_pin_kind)7), 0);
    assert_int_equal(qpc_identity_pin_forget(id, (enum qpc_pin_kind)7, "a"), QPC_ERR_NOT_FOUND);
    assert_int_equal(qpc_identity_pin_forget(id, QPC_PIN_DOMAIN, "NODE2.mesh.local"), 0);
    assert_int_equal(qpc_identity_pin_count(id, QPC_PIN_DOMAIN), 0);
    qpc_identity_free(id);
}

/* Domain pins are written as "domains", and only when there are any. */
static void test_identity_domain_pins_round_trip_and_are_checked(void **state)
{
    struct qpc_identity *id = identity_from_rfc_seed(), *back = NULL;
    uint8_t k[QPC_KEY_LEN], got[QPC_KEY_LEN];
    char *text = NULL, err[256] = "";
    size_t len = 0;

    (void)state;
    assert_int_equal(qpc_identity_serialize(id, &text, &len), 0);
    assert_null(strstr(text, "domains"));
    assert_non_null(strstr(text, "\"servers\": []"));
    free(text);
    key_with_prefix(k, "77", '7');
    assert_int_equal(qpc_identity_pin_note(id, QPC_PIN_DOMAIN, "b.mesh", 5, NULL), 0);
    assert_int_equal(qpc_identity_pin_key(id, QPC_PIN_DOMAIN, "a.mesh", k, 6), 0);
    assert_int_equal(qpc_identity_serialize(id, &text, &len), 0);
    assert_non_null(strstr(text, "\"domains\": [\n    {\n      \"domain\": \"a.mesh\""));
    assert_int_equal(qpc_identity_parse(text, len, &back, err, sizeof(err)), 0);
    assert_int_equal(qpc_identity_pin_count(back, QPC_PIN_DOMAIN), 2);
    assert_int_equal(qpc_identity_pin_lookup(back, QPC_PIN_DOMAIN, "a.mesh", got), 0);
    assert_memory_equal(got, k, QPC_KEY_LEN);
    assert_false(qpc_identity_pin_get(back, QPC_PIN_DOMAIN, "b.mesh")->has_key);
    sodium_memzero(text, len);
    free(text);
    qpc_identity_free(back);
    qpc_identity_free(id);

    static const struct { const char *json, *message; } bad[] = {
        { "{\"version\":1," SEED "," PK ",\"domains\":[{\"domain\":\"a:1\",\"noted_at\":1}]}",
          "domains[0].domain: not a domain name" },
        { "{\"version\":1," SEED "," PK ",\"domains\":[{\"domain\":\"a\",\"noted_at\":1},"
          "{\"domain\":\"A\",\"noted_at\":2}]}", "domains[1].domain: listed twice" },
        { "{\"version\":1," SEED "," PK ",\"domains\":[{\"noted_at\":1}]}",
          "domains[0].domain: missing" },
        { "{\"version\":1," SEED "," PK ",\"domains\":{}}", "domains: not an array" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        back = NULL;
        assert_int_equal(qpc_identity_parse(bad[i].json, strlen(bad[i].json), &back, err,
                                            sizeof(err)), QPC_ERR_CORRUPT);
        assert_null(back);
        if (strstr(err, bad[i].message) == NULL)
            fail_msg("case %zu: '%s' lacks '%s'", i, err, bad[i].message);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity_rfc8032_test1_seed_gives_rfc_public_key),
        cmocka_unit_test(test_identity_rfc8032_test1_signature_of_empty_message),
        cmocka_unit_test(test_identity_generate_makes_distinct_working_keys),
        cmocka_unit_test(test_identity_set_name_refuses_control_and_bidi_characters),
        cmocka_unit_test_setup_teardown(test_identity_save_then_load_round_trips_keys_peers_servers,
                                        setup_tmpdir, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_identity_large_directory_round_trips,
                                        setup_tmpdir, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_identity_save_makes_mode_0600_whatever_the_umask,
                                        setup_tmpdir, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_identity_save_leaves_no_temp_file_and_replaces_old_file,
                                        setup_tmpdir, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_identity_save_into_missing_directory_fails_cleanly,
                                        setup_tmpdir, teardown_tmpdir),
        cmocka_unit_test(test_identity_serialize_is_deterministic_whatever_the_insert_order),
        cmocka_unit_test_setup_teardown(test_identity_load_or_create_makes_missing_file_and_parent_dirs,
                                        setup_tmpdir, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_identity_load_of_missing_file_is_not_found,
                                        setup_tmpdir, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_identity_corrupt_files_are_refused_named_and_left_unchanged,
                                        setup_tmpdir, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_identity_every_truncation_of_a_file_is_refused,
                                        setup_tmpdir, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_identity_oversized_file_is_refused_unread,
                                        setup_tmpdir, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_identity_path_that_is_not_a_regular_file_is_an_io_error,
                                        setup_tmpdir, teardown_tmpdir),
        cmocka_unit_test(test_identity_load_refuses_empty_path),
        cmocka_unit_test(test_identity_peer_upsert_merges_addresses_newest_first_bounded),
        cmocka_unit_test(test_identity_peer_upsert_refuses_bad_input_and_changes_nothing),
        cmocka_unit_test(test_identity_peer_remove_count_and_iterate),
        cmocka_unit_test(test_identity_peer_set_name_changes_only_the_name),
        cmocka_unit_test(test_identity_full_directory_evicts_oldest_unpinned_peer),
        cmocka_unit_test(test_identity_directory_full_of_pinned_peers_refuses_new_one),
        cmocka_unit_test(test_identity_peer_find_exact_and_unique_prefix),
        cmocka_unit_test(test_identity_peer_find_ambiguous_prefix_lists_candidates),
        cmocka_unit_test(test_identity_peer_find_many_candidates_says_how_many_more),
        cmocka_unit_test(test_identity_peer_find_not_found_and_invalid_prefixes),
        cmocka_unit_test(test_identity_server_tofu_pins_first_key_and_refuses_a_changed_one),
        cmocka_unit_test(test_identity_server_refuses_bad_addresses_and_unknown_lookups),
        cmocka_unit_test(test_identity_server_list_has_a_bound),
        cmocka_unit_test(test_identity_domain_pins_are_their_own_namespace),
        cmocka_unit_test(test_identity_domain_pins_round_trip_and_are_checked),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
