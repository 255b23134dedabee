/*
 * fileio.h: replacing a file so that a crash leaves the old or the new one, never a mix.
 *
 * The one idea: a file that matters (an identity with its secret key, a program's
 * state) is never edited in place. The new content goes to a temp file beside it,
 * "<path>.tmp-XXXXXXXX", which is created with O_CREAT|O_EXCL|O_NOFOLLOW and given its
 * final mode before any byte is written (so a secret is never readable by others, not
 * even for a moment, whatever the umask); it is written in full, fsync'd, renamed over
 * the path, and then the directory is fsync'd so the rename itself survives a power
 * cut. On every error the temp file is removed and the path is left as it was.
 *
 * For secrets: data is written from the caller's buffer and never copied. What reached
 * the disk in a temp file that is then removed is, as with any deleted file, left to
 * the file system.
 *
 * Reading side: qpc_file_warn_exposed says so when a secret's file is open to others.
 *
 * Every `errbuf, errlen` pair is optional (NULL, 0); when given it receives an English
 * message naming the path and the step that failed ("PATH: cannot fsync temp file:
 * Input/output error"). On QPC_ERR_IO errno is that of the failed step.
 */
#ifndef QPC_FILEIO_H
#define QPC_FILEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/*
 * Puts len bytes of data (borrowed) at path with permission bits mode, replacing what
 * is there. A symbolic link at path is replaced by the file, its target is not
 * written. Returns 0, QPC_ERR_IO or QPC_ERR_NOMEM. On an error path is unchanged, except
 * when only the last step (the directory's fsync) failed: then the new file is in place
 * but whether it survives a crash is not known, which the error reports.
 */
int qpc_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                          char *errbuf, size_t errlen);

/*
 * Like qpc_file_write_atomic, but never replaces anything: when path exists (also as a
 * dangling symbolic link), or appears while the temp file is written, returns
 * QPC_ERR_EXISTS ("PATH: already exists") and leaves it alone. The last step is
 * renameat2(RENAME_NOREPLACE), or link(2) on file systems without it. For "create on
 * first start" when two processes may start at once: exactly one of them wins.
 * Returns 0, QPC_ERR_EXISTS, QPC_ERR_IO or QPC_ERR_NOMEM.
 */
int qpc_file_create_atomic(const char *path, const void *data, size_t len, mode_t mode,
                           char *errbuf, size_t errlen);

/*
 * For a file that holds a secret (`holds` says which, e.g. "the secret key"): when
 * group or others have any permission on it (mode & 0077), writes one warning naming
 * the file, its mode and the command that fixes it ("chmod 600 PATH"), as wg(8) does
 * for a world-accessible configuration, and returns true. The file is still used: it
 * may have been readable for a while already, so the key may have to be replaced, which
 * is for its owner to decide. Returns false (silent) when the mode is private or the
 * file cannot be examined (the caller's open reports that).
 */
bool qpc_file_warn_exposed(const char *path, const char *holds);

#endif
