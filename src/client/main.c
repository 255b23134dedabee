/*
 * main.c (qpc): command line of the client. Until the server issue lands it
 * answers --help and --version only; it says so rather than pretending to run.
 */
#include <stdio.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: qpc [OPTION]...\n"
            "The quicprochat client (REPL and scripting subcommands).\n"
            "\n"
            "  -h, --help     show this help and exit\n"
            "  -V, --version  show the version and exit\n"
            "\n"
            "This build has no client yet: the REPL is not implemented.\n");
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "-V") == 0 || strcmp(argv[i], "--version") == 0) {
            printf("qpc %s\n", QPC_VERSION);
            return 0;
        }
        fprintf(stderr, "qpc: unknown option '%s'\n", argv[i]);
        usage(stderr);
        return 2;
    }
    fprintf(stderr, "qpc: the REPL is not implemented in this build\n");
    return 1;
}
