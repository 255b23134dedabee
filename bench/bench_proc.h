/*
 * bench_proc.h: what the benches that run a node as a child process share: starting
 * qpc-server on a loopback port with a throw-away data directory, and reading its
 * resident set and CPU time from /proc while it works. Header-only (static inline), so
 * each bench_*.c, built as its own program, includes it without a library of its own.
 */
#ifndef QPC_BENCH_PROC_H
#define QPC_BENCH_PROC_H

#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

/* Resident set of process pid in KiB (VmRSS), 0 if unknown. */
static inline long bench_rss_kib(pid_t pid)
{
    char path[64], line[256];
    long kib = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    if ((f = fopen(path, "r")) == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* CPU seconds (user + system) process pid has used so far, from /proc; 0 if unknown. */
static inline double bench_cpu_of(pid_t pid)
{
    char path[64], buf[1024], *p;
    unsigned long ut = 0, st = 0;
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if ((f = fopen(path, "r")) == NULL)
        return 0;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* After the command name in parentheses (which may hold spaces): state is field 3,
     * utime 14, stime 15. */
    if ((p = strrchr(buf, ')')) == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/*
 * Forks and execs the node bin with data directory dir, listening on 127.0.0.1:port,
 * no mDNS, no metrics listener, warnings only; extra (NULL-terminated, may be NULL)
 * adds options of the bench's own. Returns the child's pid (-1 if fork failed); the
 * caller waits for it to listen and kills it.
 */
static inline pid_t bench_start_node(const char *bin, const char *dir, unsigned port,
                                     const char *const extra[])
{
    char data[1100], listen[64];
    const char *argv[16];
    size_t n = 0;
    pid_t pid;

    snprintf(data, sizeof(data), "--data-dir=%s", dir);
    snprintf(listen, sizeof(listen), "--listen=127.0.0.1:%u", port);
    argv[n++] = bin;
    argv[n++] = data;
    argv[n++] = listen;
    argv[n++] = "--mdns-enabled=false";
    argv[n++] = "--metrics-listen=";
    for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 14; i++)
        argv[n++] = extra[i];
    argv[n++] = "--log-level=warn";
    argv[n] = NULL;
    pid = fork();
    if (pid == 0) {
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

#endif
