/*
 * test_fileio.c: atomic file replacement. The mode is exact whatever the umask, the old
 * file survives every failure, and no temp file is ever left behind.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "qpc/error.h"
#include "qpc/fileio.h"
#include "qpc/log.h"

struct tmpdir {
    char dir[64];
    char path[96];
};

static int setup(void **state)
{
    struct tmpdir *t = calloc(1, sizeof(*t));

    assert_non_null(t);
    snprintf(t->dir, sizeof(t->dir), "/tmp/qpc-fileio-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->path, sizeof(t->path), "%s/state.json", t->dir);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    struct tmpdir *t = *state;
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
    if (system(cmd) != 0)
        return -1;
    free(t);
    return 0;
}

static size_t count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = malloc(1 << 21);

    assert_non_null(f);
    assert_non_null(buf);
    *len = fread(buf, 1, 1 << 21, f);
    fclose(f);
    return buf;
}

static void expect_content(const char *path, const char *want, size_t want_len)
{
    size_t len;
    char *got = slurp(path, &len);

    assert_int_equal(len, want_len);
    assert_memory_equal(got, want, len);
    free(got);
}

static void test_fileio_write_sets_the_mode_exactly_whatever_the_umask(void **state)
{
    struct tmpdir *t = *state;
    static const mode_t umasks[] = { 0, 022, 077 };
    static const mode_t modes[] = { 0600, 0640, 0644 };
    struct stat st;

    for (size_t i = 0; i < 3; i++) {
        mode_t old = umask(umasks[i]);
        int rc = qpc_file_write_atomic(t->path, "x", 1, modes[i], NULL, 0);

        umask(old);
        assert_int_equal(rc, 0);
        assert_int_equal(stat(t->path, &st), 0);
        assert_int_equal(st.st_mode & 07777, modes[i]);
    }
    assert_int_equal(count_entries(t->dir), 1);
}

static void test_fileio_write_replaces_the_content_and_leaves_no_temp(void **state)
{
    struct tmpdir *t = *state;
    size_t big_len = 1 << 20;
    char *big = malloc(big_len);

    assert_non_null(big);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (char)(i * 31 + 7);
    assert_int_equal(qpc_file_write_atomic(t->path, "first", 5, 0600, NULL, 0), 0);
    expect_content(t->path, "first", 5);
    assert_int_equal(qpc_file_write_atomic(t->path, big, big_len, 0600, NULL, 0), 0);
    expect_content(t->path, big, big_len);
    assert_int_equal(qpc_file_write_atomic(t->path, "", 0, 0600, NULL, 0), 0);
    expect_content(t->path, "", 0);
    assert_int_equal(count_entries(t->dir), 1);
    free(big);
}

/* A link planted at the path is replaced; the file it points to is never written. */
static void test_fileio_write_replaces_a_symlink_not_its_target(void **state)
{
    struct tmpdir *t = *state;
    char target[128];
    struct stat st;

    snprintf(target, sizeof(target), "%s/target", t->dir);
    assert_int_equal(qpc_file_write_atomic(target, "keep", 4, 0600, NULL, 0), 0);
    assert_int_equal(symlink(target, t->path), 0);
    assert_int_equal(qpc_file_write_atomic(t->path, "new", 3, 0600, NULL, 0), 0);
    assert_int_equal(lstat(t->path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    expect_content(target, "keep", 4);
    expect_content(t->path, "new", 3);
}

/* The rename fails (a directory is in the way): error named, temp removed. */
static void test_fileio_failed_rename_removes_the_temp_file(void **state)
{
    struct tmpdir *t = *state;
    char sub[128], inside[160], err[256] = "";

    snprintf(sub, sizeof(sub), "%s/dir", t->dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(inside, sizeof(inside), "%s/file", sub);
    assert_int_equal(qpc_file_write_atomic(inside, "x", 1, 0600, NULL, 0), 0);
    assert_int_equal(qpc_file_write_atomic(sub, "data", 4, 0600, err, sizeof(err)), QPC_ERR_IO);
    assert_non_null(strstr(err, sub));
    assert_non_null(strstr(err, "cannot move temp file into place"));
    assert_int_equal(count_entries(t->dir), 1);   /* only the directory */
    assert_int_equal(count_entries(sub), 1);
}

/* A write that fails half way (the file size limit) leaves the old file and no temp. */
static void test_fileio_failed_write_keeps_the_old_file(void **state)
{
    struct tmpdir *t = *state;
    struct rlimit old, small;
    char data[8192], err[256] = "";
    int rc, saved;

    memset(data, 'z', sizeof(data));
    assert_int_equal(qpc_file_write_atomic(t->path, "old", 3, 0600, NULL, 0), 0);
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    small = old;
    small.rlim_cur = 4096;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    rc = qpc_file_write_atomic(t->path, data, sizeof(data), 0600, err, sizeof(err));
    saved = errno;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, SIG_DFL);
    assert_int_equal(rc, QPC_ERR_IO);
    assert_int_equal(saved, EFBIG);                      /* errno is the failed step's */
    assert_non_null(strstr(err, "cannot write temp file"));
    expect_content(t->path, "old", 3);
    assert_int_equal(count_entries(t->dir), 1);
}

static void test_fileio_missing_directory_is_an_io_error(void **state)
{
    struct tmpdir *t = *state;
    char path[160], err[256] = "";

    snprintf(path, sizeof(path), "%s/no/such/file", t->dir);
    assert_int_equal(qpc_file_write_atomic(path, "x", 1, 0600, err, sizeof(err)), QPC_ERR_IO);
    assert_non_null(strstr(err, "cannot create temp file"));
    assert_non_null(strstr(err, "No such file"));
    assert_int_equal(count_entries(t->dir), 0);
}

static void test_fileio_create_never_replaces(void **state)
{
    struct tmpdir *t = *state;
    char link_path[128], err[256] = "";
    struct stat st;

    assert_int_equal(qpc_file_create_atomic(t->path, "one", 3, 0600, NULL, 0), 0);
    assert_int_equal(stat(t->path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(qpc_file_create_atomic(t->path, "two", 3, 0600, err, sizeof(err)),
                     QPC_ERR_EXISTS);
    assert_non_null(strstr(err, "already exists"));
    expect_content(t->path, "one", 3);
    /* A dangling link counts as something there: it is not followed, not replaced. */
    snprintf(link_path, sizeof(link_path), "%s/dangling", t->dir);
    assert_int_equal(symlink("/nonexistent/qpc-target", link_path), 0);
    assert_int_equal(qpc_file_create_atomic(link_path, "x", 1, 0600, NULL, 0), QPC_ERR_EXISTS);
    assert_int_equal(lstat(link_path, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_int_equal(count_entries(t->dir), 2);
}

static char warned[1024];
static int warnings;

static void capture(enum qpc_log_level level, const char *line, void *arg)
{
    (void)arg;
    if (level == QPC_LOG_WARN) {
        snprintf(warned, sizeof(warned), "%s", line);
        warnings++;
    }
}

static void test_fileio_secret_open_to_others_is_warned_with_the_chmod(void **state)
{
    struct tmpdir *t = *state;
    char want[160];
    static const struct { mode_t mode; bool warns; } cases[] = {
        { 0600, false }, { 0400, false }, { 0700, false },
        { 0644, true }, { 0640, true }, { 0604, true }, { 0620, true }, { 0666, true },
    };

    assert_int_equal(qpc_file_write_atomic(t->path, "x", 1, 0600, NULL, 0), 0);
    qpc_log_set_sink(capture, NULL);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        warnings = 0;
        warned[0] = '\0';
        assert_int_equal(chmod(t->path, cases[i].mode), 0);
        assert_int_equal(qpc_file_warn_exposed(t->path, "the secret key"), cases[i].warns);
        assert_int_equal(warnings, cases[i].warns ? 1 : 0);
        if (cases[i].warns) {
            snprintf(want, sizeof(want), "chmod 600 %s", t->path);
            assert_non_null(strstr(warned, want));
            assert_non_null(strstr(warned, "the secret key"));
        }
    }
    /* Absent, or not a regular file: nothing to say here (the open reports it). */
    warnings = 0;
    assert_false(qpc_file_warn_exposed("/nonexistent/qpc-identity.json", "x"));
    assert_false(qpc_file_warn_exposed(t->dir, "x"));
    assert_int_equal(warnings, 0);
    qpc_log_set_sink(NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fileio_write_sets_the_mode_exactly_whatever_the_umask, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fileio_write_replaces_the_content_and_leaves_no_temp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fileio_write_replaces_a_symlink_not_its_target, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fileio_failed_rename_removes_the_temp_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fileio_failed_write_keeps_the_old_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fileio_missing_directory_is_an_io_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fileio_create_never_replaces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fileio_secret_open_to_others_is_warned_with_the_chmod, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
