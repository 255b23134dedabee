/*
 * fileio.c: atomic replacement of a file (include/qpc/fileio.h).
 *
 * Temp file, mode, write, fsync, close, rename (or a no-replace rename), fsync of the
 * directory: every step can fail, and each failure leaves no temp file behind. The
 * temp name has a random suffix so two writers of the same path do not collide, and
 * O_EXCL|O_NOFOLLOW means a name planted by someone else is never opened.
 */
#define _GNU_SOURCE   /* renameat2, RENAME_NOREPLACE */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "qpc/error.h"
#include "qpc/fileio.h"
#include "qpc/log.h"

#define TEMP_ATTEMPTS 16

/* Writes all of buf to fd, retrying short writes and EINTR. */
static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* fsync of the directory holding path, so a rename or link survives a crash. */
static int sync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    int fd, ret = -1;

    if (slash == NULL)
        dir = strdup(".");
    else if (slash == path)
        dir = strdup("/");
    else
        dir = strndup(path, (size_t)(slash - path));
    if (dir == NULL)
        return -1;
    if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
        /* Some file systems cannot sync a directory (EINVAL); nothing more to do there. */
        ret = (fsync(fd) == 0 || errno == EINVAL) ? 0 : -1;
        close(fd);
    }
    free(dir);
    return ret;
}

static int write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                        bool replace, char *errbuf, size_t errlen)
{
    size_t tmp_size = strlen(path) + sizeof(".tmp-12345678");
    char *tmp;
    const char *step = "cannot create temp file";
    int fd = -1, rc = QPC_ERR_IO, err = 0;
    bool tmp_exists = false, placed = false;

    if (sodium_init() < 0) {
        if (errbuf != NULL && errlen > 0)
            snprintf(errbuf, errlen, "%s: cannot initialise the random generator", path);
        return QPC_ERR_IO;
    }
    if ((tmp = malloc(tmp_size)) == NULL)
        return QPC_ERR_NOMEM;
    for (int attempt = 0; fd < 0 && attempt < TEMP_ATTEMPTS; attempt++) {
        snprintf(tmp, tmp_size, "%s.tmp-%08x", path, (unsigned)randombytes_random());
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode & 07777);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0)
        goto fail;
    tmp_exists = true;
    /* open() applied the umask; the mode is exact before the first byte arrives. */
    step = "cannot write temp file";
    if (fchmod(fd, mode & 07777) != 0 || write_all(fd, data, len) != 0)
        goto fail;
    step = "cannot fsync temp file";
    if (fsync(fd) != 0)
        goto fail;
    step = "cannot close temp file";
    err = close(fd);
    fd = -1;
    if (err != 0)
        goto fail;
    step = "cannot move temp file into place";
    if (replace) {
        placed = rename(tmp, path) == 0;
        tmp_exists = !placed;
    } else if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0) {
        placed = true;
        tmp_exists = false;
    } else if (errno == EINVAL || errno == ENOSYS) {
        placed = link(tmp, path) == 0;   /* file systems without RENAME_NOREPLACE */
    }
    if (!placed) {
        if (!replace && errno == EEXIST)
            rc = QPC_ERR_EXISTS;
        goto fail;
    }
    if (tmp_exists) {
        unlink(tmp);   /* the link(2) fallback leaves the temp name behind */
        tmp_exists = false;
    }
    step = "cannot fsync its directory";
    if (sync_parent_dir(path) != 0)
        goto fail;
    free(tmp);
    return 0;
fail:
    err = errno;
    if (fd >= 0)
        close(fd);
    if (tmp_exists)
        unlink(tmp);
    if (errbuf != NULL && errlen > 0) {
        if (rc == QPC_ERR_EXISTS)
            snprintf(errbuf, errlen, "%s: already exists", path);
        else
            snprintf(errbuf, errlen, "%s: %s: %s", path, step, strerror(err));
    }
    free(tmp);
    errno = err;
    return rc;
}

int qpc_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                          char *errbuf, size_t errlen)
{
    return write_atomic(path, data, len, mode, true, errbuf, errlen);
}

int qpc_file_create_atomic(const char *path, const void *data, size_t len, mode_t mode,
                           char *errbuf, size_t errlen)
{
    return write_atomic(path, data, len, mode, false, errbuf, errlen);
}

bool qpc_file_warn_exposed(const char *path, const char *holds)
{
    struct stat sb;

    if (path == NULL || stat(path, &sb) != 0 || !S_ISREG(sb.st_mode) || (sb.st_mode & 0077) == 0)
        return false;
    qpc_log_warn("file", "%s holds %s but is %s by others (mode %04o): run `chmod 600 %s`",
                 path, holds != NULL ? holds : "a secret",
                 (sb.st_mode & 0044) != 0 ? "readable" : "accessible",
                 (unsigned)(sb.st_mode & 07777), path);
    return true;
}
