/*
 * toml.h: a strict reader for the small TOML subset configuration files use.
 *
 * No C TOML library is packaged in Debian, and the files need only a little of TOML:
 * top-level `key = value` lines and `[table]` headers followed by their own key lines;
 * values are basic strings "..." (escapes \" \\ \b \f \n \r \t \uXXXX \UXXXXXXXX),
 * decimal integers (sign, '_' between digits, no leading zero), booleans `true` and
 * `false`, and arrays of strings (which may span lines, with comments and a trailing
 * comma); `#` comments; bare keys [A-Za-z0-9_-]+ and quoted keys "...". LF or CRLF line
 * ends; a UTF-8 byte-order mark is skipped. Everything else TOML has (floats, dates,
 * literal and multi-line strings, inline tables, dotted keys, arrays of tables) is
 * refused with a message that names it, so a user is never left guessing whether a
 * construct was silently ignored.
 *
 * The one idea: the reader knows the syntax, the caller knows the meaning. It walks the
 * buffer once and reports what it finds to three callbacks, in file order, with line
 * numbers; it keeps nothing. It does not refuse a key or a table given twice (TOML
 * does): only the caller knows what its keys are, and so it is the caller that says
 * "duplicate key 'x' (first set on line 3)".
 *
 * Errors: the first problem stops the walk. A syntax problem is written to err as
 * "NAME:LINE: what is wrong; what to write instead" and returned as QPC_ERR_CONFIG. A
 * callback that refuses returns a negative QPC_ERR_* after writing its own message to
 * err (the same err, errlen the reader was given); the reader returns that code as it
 * is. err is always NUL-terminated when errlen > 0.
 */
#ifndef QPC_TOML_H
#define QPC_TOML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QPC_TOML_MAX_BYTES (1024 * 1024)   /* larger buffers are refused unread */
#define QPC_TOML_KEY_MAX 256               /* bytes of a key or table name */
#define QPC_TOML_STRING_MAX 4096           /* bytes of a string value, decoded */
#define QPC_TOML_ARRAY_MAX 256             /* items of an array */

enum qpc_toml_type {
    QPC_TOML_STRING,
    QPC_TOML_INTEGER,
    QPC_TOML_BOOLEAN,
    QPC_TOML_ARRAY,      /* of strings */
};

/*
 * A value as read. Strings are NUL-terminated, valid UTF-8 without NUL. The reader owns
 * string and items; a value callback may take either (and set the pointer to NULL, or
 * count to 0 for items) to keep it, and must then free it with free().
 */
struct qpc_toml_value {
    enum qpc_toml_type type;
    char *string;        /* QPC_TOML_STRING */
    int64_t integer;     /* QPC_TOML_INTEGER */
    bool boolean;        /* QPC_TOML_BOOLEAN */
    char **items;        /* QPC_TOML_ARRAY: count strings, each malloc'd */
    size_t count;
};

/*
 * What the reader reports. Each callback returns 0 to go on or a negative QPC_ERR_*
 * to stop (after writing its message to err). Any of them may be NULL (ignored).
 * `name` is the file's name as given to qpc_toml_parse; `table` is the name of the
 * open [table], or NULL above the first header. Strings passed are borrowed for the
 * call unless said otherwise.
 */
struct qpc_toml_handler {
    /* A "[name]" header on line. */
    int (*table)(void *ctx, const char *name, int line, char *err, size_t errlen);
    /*
     * "key =" on line, before its value is read, so an unknown key is reported before
     * whatever is wrong with its value.
     */
    int (*key)(void *ctx, const char *table, const char *key, int line, char *err,
               size_t errlen);
    /*
     * The value of *key. line is the key's line; an array may end on a later line,
     * end_line. The callback may take *key (set it to NULL; free() it later) and the
     * value's allocations, as described at struct qpc_toml_value.
     */
    int (*value)(void *ctx, const char *table, char **key, struct qpc_toml_value *value,
                 int line, int end_line, char *err, size_t errlen);
};

/*
 * Reads len bytes at buf (need not be NUL-terminated; a NUL byte in it, invalid UTF-8
 * or more than QPC_TOML_MAX_BYTES is an error) and reports them to h with ctx.
 * name (borrowed) starts every message. Returns 0, QPC_ERR_CONFIG, QPC_ERR_NOMEM or
 * what a callback returned.
 */
int qpc_toml_parse(const char *name, const char *buf, size_t len,
                   const struct qpc_toml_handler *h, void *ctx, char *err, size_t errlen);

/*
 * Parses len bytes at s as a TOML decimal integer: optional sign, digits, single '_'
 * between digits, no leading zero. For values given as text elsewhere (environment
 * variables, flags), so that they follow the file's syntax. Returns 0,
 * QPC_ERR_INVALID (not such an integer) or QPC_ERR_TOO_LARGE (does not fit in int64).
 */
int qpc_toml_parse_integer(const char *s, size_t len, int64_t *out);

/* Frees what value still owns and zeroes it. */
void qpc_toml_value_free(struct qpc_toml_value *value);

#endif
