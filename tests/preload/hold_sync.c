/*
 * hold_sync.c: an LD_PRELOAD library for the integration tests that holds back the
 * fsync of SQLite's WAL files, so a test can stop a program between "written" and
 * "durable" for as long as it likes, with no timing involved.
 *
 * While the file named by $QPC_HOLD_SYNC exists, every fsync() or fdatasync() of a file
 * whose name ends in "-wal" waits (first creating "$QPC_HOLD_SYNC.held", so the test can
 * see that a sync is being held); it goes on once the file is removed. While
 * "$QPC_HOLD_SYNC.fail" exists, such a sync fails with EIO instead, as on a failing
 * disk. Other files, and every sync when $QPC_HOLD_SYNC is unset, pass straight through.
 */
#define _GNU_SOURCE   /* RTLD_NEXT */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int fsync(int fd);
int fdatasync(int fd);

static int is_wal(int fd)
{
    char link[64], path[PATH_MAX];
    ssize_t n;

    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    n = readlink(link, path, sizeof(path) - 1);
    if (n < 4)
        return 0;
    path[n] = '\0';
    return strcmp(path + n - 4, "-wal") == 0;
}

/* Returns -1 (errno EIO) when the sync is to fail, else 0 once it may go on. */
static int hold(int fd)
{
    const char *hold_path = getenv("QPC_HOLD_SYNC");
    char held[PATH_MAX], failing[PATH_MAX];
    int marker;

    if (hold_path == NULL || !is_wal(fd))
        return 0;
    snprintf(failing, sizeof(failing), "%s.fail", hold_path);
    if (access(failing, F_OK) == 0) {
        errno = EIO;
        return -1;
    }
    if (access(hold_path, F_OK) != 0)
        return 0;
    snprintf(held, sizeof(held), "%s.held", hold_path);
    if ((marker = open(held, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) >= 0)
        close(marker);
    while (access(hold_path, F_OK) == 0)
        usleep(10000);
    return 0;
}

int fsync(int fd)
{
    static int (*real)(int);

    if (real == NULL)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return hold(fd) != 0 ? -1 : real(fd);
}

int fdatasync(int fd)
{
    static int (*real)(int);

    if (real == NULL)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    return hold(fd) != 0 ? -1 : real(fd);
}
