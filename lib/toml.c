/*
 * toml.c: the strict TOML-subset reader (include/qpc/toml.h).
 *
 * It first checks that the whole buffer is UTF-8 without NUL bytes, then walks it once,
 * counting lines, and stops at the first problem with "NAME:LINE: what is wrong". Every
 * refusal of a TOML feature outside the subset names the feature and what to write
 * instead: the people editing these files are operators, not TOML experts.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "qpc/error.h"
#include "qpc/toml.h"
#include "qpc/utf8.h"

#define TOKEN_SHOWN 40            /* bytes of a bad token quoted back in a message */

struct parser {
    const char *name;
    const char *p, *end;
    int line;                     /* of ps->p */
    char *err;
    size_t errlen;
    const struct qpc_toml_handler *h;
    void *ctx;
    char *table;                  /* name of the open [table], or NULL */
};

static void vmsg(char *err, size_t errlen, const char *name, int line, const char *fmt,
                 va_list ap)
{
    int n;

    if (err == NULL || errlen == 0)
        return;
    n = snprintf(err, errlen, "%s:%d: ", name, line);
    if (n < 0 || (size_t)n >= errlen)
        return;
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
}

/* Writes "NAME:LINE: message" for the current line and returns QPC_ERR_CONFIG. */
__attribute__((format(printf, 2, 3)))
static int perr(struct parser *ps, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(ps->err, ps->errlen, ps->name, ps->line, fmt, ap);
    va_end(ap);
    return QPC_ERR_CONFIG;
}

static int nomem(struct parser *ps)
{
    if (ps->err != NULL && ps->errlen > 0)
        snprintf(ps->err, ps->errlen, "out of memory while reading the configuration");
    return QPC_ERR_NOMEM;
}

void qpc_toml_value_free(struct qpc_toml_value *v)
{
    free(v->string);
    for (size_t i = 0; i < v->count; i++)
        free(v->items[i]);
    free(v->items);
    memset(v, 0, sizeof(*v));
}

static int items_push(struct qpc_toml_value *v, char *item)
{
    char **n = realloc(v->items, (v->count + 1) * sizeof(*n));
    if (n == NULL)
        return QPC_ERR_NOMEM;
    v->items = n;
    v->items[v->count++] = item;
    return 0;
}

/*
 * Parses a TOML decimal integer: optional sign, digits, single '_' between digits, no
 * leading zero. Returns 0, -1 (syntax) or -2 (does not fit in int64).
 */
static int toml_int(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    uint64_t mag = 0, limit = (uint64_t)INT64_MAX;
    if (i < len && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    if (i >= len || !isdigit((unsigned char)s[i]))
        return -1;
    if (s[i] == '0' && i + 1 < len)
        return -1;   /* leading zero, or 0x/0o/0b */
    if (neg)
        limit++;
    bool overflow = false;
    for (; i < len; i++) {
        if (s[i] == '_') {
            if (i + 1 >= len || !isdigit((unsigned char)s[i + 1]) || !isdigit((unsigned char)s[i - 1]))
                return -1;
            continue;
        }
        if (!isdigit((unsigned char)s[i]))
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (mag > (limit - d) / 10)
            overflow = true;
        else
            mag = mag * 10 + d;
    }
    if (overflow)
        return -2;
    *out = neg ? (mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag) : (int64_t)mag;
    return 0;
}

/* A printable description of the byte at p, for "found X" messages. */
static const char *describe(const struct parser *ps, char buf[static 16])
{
    if (ps->p >= ps->end)
        return "end of file";
    unsigned char c = (unsigned char)*ps->p;
    if (c == '\n' || c == '\r')
        return "end of line";
    if (c > 0x20 && c < 0x7f)
        snprintf(buf, 16, "'%c'", c);
    else
        snprintf(buf, 16, "byte 0x%02x", c);
    return buf;
}

static bool at(const struct parser *ps, char c)
{
    return ps->p < ps->end && *ps->p == c;
}

static void skip_blank(struct parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t'))
        ps->p++;
}

static int skip_comment(struct parser *ps)
{
    while (ps->p < ps->end && *ps->p != '\n' && *ps->p != '\r') {
        unsigned char c = (unsigned char)*ps->p;
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return perr(ps, "control character 0x%02x in a comment", c);
        ps->p++;
    }
    return 0;
}

/* At '\n' or '\r': consumes one line ending and counts the line. */
static int eat_newline(struct parser *ps)
{
    if (*ps->p == '\r') {
        if (ps->p + 1 >= ps->end || ps->p[1] != '\n')
            return perr(ps, "carriage return not followed by a line feed");
        ps->p++;
    }
    ps->p++;
    ps->line++;
    return 0;
}

/* After a key/value or header: blanks, an optional comment, then end of line or file. */
static int end_of_line(struct parser *ps, const char *after)
{
    char b[16];
    skip_blank(ps);
    if (at(ps, '#')) {
        int rc = skip_comment(ps);
        if (rc < 0)
            return rc;
    }
    if (ps->p >= ps->end)
        return 0;
    if (*ps->p == '\n' || *ps->p == '\r')
        return eat_newline(ps);
    return perr(ps, "unexpected %s after %s; put one setting per line", describe(ps, b), after);
}

static int put_utf8(char *out, size_t *n, uint32_t cp)
{
    if (cp < 0x80) {
        out[(*n)++] = (char)cp;
    } else if (cp < 0x800) {
        out[(*n)++] = (char)(0xc0 | (cp >> 6));
        out[(*n)++] = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out[(*n)++] = (char)(0xe0 | (cp >> 12));
        out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[(*n)++] = (char)(0x80 | (cp & 0x3f));
    } else {
        out[(*n)++] = (char)(0xf0 | (cp >> 18));
        out[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
        out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[(*n)++] = (char)(0x80 | (cp & 0x3f));
    }
    return 0;
}

/* The escape after a backslash (ps->p at the letter). Appends to out. */
static int parse_escape(struct parser *ps, char *out, size_t *n)
{
    char c = *ps->p++;
    size_t digits = 0;
    uint32_t cp = 0;
    switch (c) {
    case '"': out[(*n)++] = '"'; return 0;
    case '\\': out[(*n)++] = '\\'; return 0;
    case 'n': out[(*n)++] = '\n'; return 0;
    case 't': out[(*n)++] = '\t'; return 0;
    case 'r': out[(*n)++] = '\r'; return 0;
    case 'b': out[(*n)++] = '\b'; return 0;
    case 'f': out[(*n)++] = '\f'; return 0;
    case 'u': digits = 4; break;
    case 'U': digits = 8; break;
    default:
        ps->p--;
        if ((unsigned char)c < 0x20 || (unsigned char)c >= 0x7f)
            return perr(ps, "a backslash must be followed by an escape letter; "
                        "valid escapes are \\\" \\\\ \\n \\t \\uXXXX");
        return perr(ps, "unknown escape '\\%c' in string; valid escapes are \\\" \\\\ \\n "
                    "\\t \\uXXXX (write a backslash as \\\\)", c);
    }
    for (size_t i = 0; i < digits; i++) {
        if (ps->p >= ps->end || !isxdigit((unsigned char)*ps->p))
            return perr(ps, "\\%c needs exactly %zu hex digits", c, digits);
        char h = *ps->p++;
        cp = (cp << 4) | (uint32_t)(isdigit((unsigned char)h) ? h - '0' : (tolower(h) - 'a' + 10));
    }
    if (cp == 0)
        return perr(ps, "\\u0000 (NUL) is not allowed in a string");
    if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return perr(ps, "\\%c%0*X is not a Unicode scalar value", c, (int)digits, cp);
    return put_utf8(out, n, cp);
}

/* A basic string; ps->p at the opening quote. *out is allocated. */
static int parse_string(struct parser *ps, char **out)
{
    char *buf = malloc(QPC_TOML_STRING_MAX + 8);
    size_t n = 0;
    int rc = 0;
    if (buf == NULL)
        return nomem(ps);
    if (ps->end - ps->p >= 3 && ps->p[1] == '"' && ps->p[2] == '"') {
        rc = perr(ps, "multi-line strings (\"\"\") are not supported; use \"...\" with \\n");
        goto out;
    }
    ps->p++;
    for (;;) {
        if (ps->p >= ps->end || *ps->p == '\n' || *ps->p == '\r') {
            rc = perr(ps, "string is not closed: add '\"' before the end of the line");
            goto out;
        }
        if (n > QPC_TOML_STRING_MAX) {
            rc = perr(ps, "string is longer than %d bytes", QPC_TOML_STRING_MAX);
            goto out;
        }
        unsigned char c = (unsigned char)*ps->p;
        if (c == '"') {
            ps->p++;
            break;
        }
        if (c == '\\') {
            ps->p++;
            if (ps->p >= ps->end) {
                rc = perr(ps, "string is not closed: add '\"' before the end of the file");
                goto out;
            }
            if ((rc = parse_escape(ps, buf, &n)) < 0)
                goto out;
            continue;
        }
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            rc = perr(ps, "control character 0x%02x in a string; write it as \\u%04X", c, c);
            goto out;
        }
        buf[n++] = (char)c;
        ps->p++;
    }
    buf[n] = '\0';
    *out = buf;
    return 0;
out:
    free(buf);
    return rc;
}

/* A bare key [A-Za-z0-9_-]+ or a quoted key. *out is allocated. */
static int parse_key(struct parser *ps, char **out)
{
    char b[16];
    if (at(ps, '"')) {
        int rc = parse_string(ps, out);
        if (rc == 0 && (*out)[0] == '\0') {
            free(*out);
            return perr(ps, "empty quoted key \"\"");
        }
        return rc;
    }
    if (at(ps, '\''))
        return perr(ps, "literal-quoted keys '...' are not supported; use \"...\"");
    const char *start = ps->p;
    while (ps->p < ps->end && (isalnum((unsigned char)*ps->p) || *ps->p == '_' || *ps->p == '-'))
        ps->p++;
    if (ps->p == start)
        return perr(ps, "expected a key, found %s", describe(ps, b));
    if ((size_t)(ps->p - start) > QPC_TOML_KEY_MAX)
        return perr(ps, "key longer than %d bytes", QPC_TOML_KEY_MAX);
    return (*out = strndup(start, (size_t)(ps->p - start))) ? 0 : nomem(ps);
}

/* After a key: blanks, and a '.' would start a dotted key, which the subset lacks. */
static int after_key(struct parser *ps, const char *key)
{
    skip_blank(ps);
    if (at(ps, '.'))
        return perr(ps, "dotted keys ('%.*s.x') are not supported; use a [table] header",
                    TOKEN_SHOWN, key);
    return 0;
}

/* Skips blanks, comments and line ends inside an array. */
static int skip_array_space(struct parser *ps)
{
    for (;;) {
        skip_blank(ps);
        if (at(ps, '#')) {
            int rc = skip_comment(ps);
            if (rc < 0)
                return rc;
        }
        if (ps->p < ps->end && (*ps->p == '\n' || *ps->p == '\r')) {
            int rc = eat_newline(ps);
            if (rc < 0)
                return rc;
            continue;
        }
        return 0;
    }
}

static int parse_array(struct parser *ps, struct qpc_toml_value *v)
{
    char b[16];
    int open_line = ps->line, rc;
    v->type = QPC_TOML_ARRAY;
    ps->p++;
    for (;;) {
        if ((rc = skip_array_space(ps)) < 0)
            return rc;
        if (ps->p >= ps->end)
            return perr(ps, "array opened on line %d is not closed with ']'", open_line);
        if (at(ps, ']')) {
            ps->p++;
            return 0;
        }
        if (!at(ps, '"'))
            return perr(ps, "arrays may only hold strings in double quotes; found %s",
                        describe(ps, b));
        if (v->count >= QPC_TOML_ARRAY_MAX)
            return perr(ps, "array has more than %d items", QPC_TOML_ARRAY_MAX);
        char *item;
        if ((rc = parse_string(ps, &item)) < 0)
            return rc;
        if ((rc = items_push(v, item)) < 0) {
            free(item);
            return nomem(ps);
        }
        if ((rc = skip_array_space(ps)) < 0)
            return rc;
        if (at(ps, ','))
            ps->p++;
        else if (!at(ps, ']'))
            return ps->p >= ps->end
                   ? perr(ps, "array opened on line %d is not closed with ']'", open_line)
                   : perr(ps, "expected ',' or ']' in array, found %s", describe(ps, b));
    }
}

/* Length of the prefix of s[0..len) made of bytes in set (s need not be NUL-terminated). */
static size_t span(const char *s, size_t len, const char *set)
{
    size_t i = 0;
    while (i < len && s[i] != '\0' && strchr(set, s[i]) != NULL)
        i++;
    return i;
}

/* A token that is not a string or an array: integer, boolean, or a clear refusal. */
static int parse_scalar(struct parser *ps, struct qpc_toml_value *v)
{
    const char *start = ps->p;
    while (ps->p < ps->end && !strchr(" \t#\n\r,]", *ps->p))
        ps->p++;
    size_t len = (size_t)(ps->p - start);
    int shown = len > TOKEN_SHOWN ? TOKEN_SHOWN : (int)len;
    if ((len == 4 && !memcmp(start, "true", 4)) || (len == 5 && !memcmp(start, "false", 5))) {
        v->type = QPC_TOML_BOOLEAN;
        v->boolean = len == 4;
        return 0;
    }
    ps->p = start;   /* errors point at the token's line, which is this one */
    if (len > 0 && (isdigit((unsigned char)*start) || *start == '+' || *start == '-')) {
        int r = toml_int(start, len, &v->integer);
        if (r == 0) {
            v->type = QPC_TOML_INTEGER;
            ps->p = start + len;
            return 0;
        }
        if (r == -2)
            return perr(ps, "integer %.*s does not fit in 64 bits", shown, start);
        if (len > 1 && start[0] == '0' && strchr("xob", start[1]))
            return perr(ps, "only decimal integers are supported, not '%.*s'", shown, start);
        bool numeric = span(start, len, "0123456789+-_.eE") == len;
        bool floaty = memchr(start, '.', len) || memchr(start, 'e', len) ||
                      memchr(start, 'E', len);
        if (numeric && !floaty)
            return perr(ps, "'%.*s' is not a valid integer (no leading zeros; '_' only "
                        "between digits)", shown, start);
        if (numeric)
            return perr(ps, "floating-point numbers are not supported ('%.*s')", shown, start);
    }
    if ((len == 4 && !strncasecmp(start, "true", 4)) ||
        (len == 5 && !strncasecmp(start, "false", 5)))
        return perr(ps, "booleans are written in lower case: true or false");
    if (at(ps, '\''))
        return perr(ps, "literal strings '...' are not supported; use \"...\" "
                    "(write a backslash as \\\\)");
    if (at(ps, '{'))
        return perr(ps, "inline tables {...} are not supported; use a [table] header");
    if (len == 0) {
        char b[16];
        return perr(ps, "expected a value after '=', found %s", describe(ps, b));
    }
    return perr(ps, "'%.*s' is not a value; if it is a string, put it in double quotes",
                shown, start);
}

static int parse_value(struct parser *ps, struct qpc_toml_value *v)
{
    memset(v, 0, sizeof(*v));
    if (at(ps, '"')) {
        v->type = QPC_TOML_STRING;
        return parse_string(ps, &v->string);
    }
    if (at(ps, '['))
        return parse_array(ps, v);
    return parse_scalar(ps, v);
}


static int parse_table_header(struct parser *ps)
{
    char *name = NULL, b[16];
    int rc;
    ps->p++;
    if (at(ps, '['))
        return perr(ps, "arrays of tables [[...]] are not supported");
    skip_blank(ps);
    if ((rc = parse_key(ps, &name)) < 0)
        return rc;
    if ((rc = after_key(ps, name)) < 0)
        goto out;
    if (!at(ps, ']')) {
        rc = perr(ps, "expected ']' to close the table header [%s, found %s", name,
                  describe(ps, b));
        goto out;
    }
    ps->p++;
    if (ps->h->table != NULL && (rc = ps->h->table(ps->ctx, name, ps->line, ps->err,
                                                   ps->errlen)) < 0)
        goto out;
    free(ps->table);
    ps->table = name;
    name = NULL;
out:
    free(name);
    return rc;
}

static int parse_keyval(struct parser *ps)
{
    char *key = NULL, b[16];
    struct qpc_toml_value v = { 0 };
    int rc, line;
    if ((rc = parse_key(ps, &key)) < 0)
        return rc;
    if ((rc = after_key(ps, key)) < 0)
        goto out;
    if (!at(ps, '=')) {
        rc = perr(ps, "expected '=' after key '%s', found %s", key, describe(ps, b));
        goto out;
    }
    ps->p++;
    skip_blank(ps);
    line = ps->line;   /* a value may span lines; it belongs to the key's line */
    if (ps->h->key != NULL &&
        (rc = ps->h->key(ps->ctx, ps->table, key, line, ps->err, ps->errlen)) < 0)
        goto out;
    if ((rc = parse_value(ps, &v)) < 0)
        goto out;
    if (ps->h->value != NULL)
        rc = ps->h->value(ps->ctx, ps->table, &key, &v, line, ps->line, ps->err, ps->errlen);
out:
    qpc_toml_value_free(&v);
    free(key);
    return rc;
}

static int parse_document(struct parser *ps)
{
    int rc = 0;
    while (rc == 0 && ps->p < ps->end) {
        skip_blank(ps);
        if (ps->p >= ps->end)
            break;
        char c = *ps->p;
        if (c == '\n' || c == '\r') {
            rc = eat_newline(ps);
        } else if (c == '#') {
            if ((rc = skip_comment(ps)) == 0)
                rc = end_of_line(ps, "a comment");
        } else if (c == '[') {
            if ((rc = parse_table_header(ps)) == 0)
                rc = end_of_line(ps, "a table header");
        } else {
            if ((rc = parse_keyval(ps)) == 0)
                rc = end_of_line(ps, "a value");
        }
    }
    return rc;
}

/* The line number of byte pos in buf. */
static int line_of(const char *buf, const char *pos)
{
    int line = 1;
    for (const char *c = buf; c < pos; c++)
        line += *c == '\n';
    return line;
}

__attribute__((format(printf, 5, 6)))
static int fail_at(char *err, size_t errlen, const char *name, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(err, errlen, name, line, fmt, ap);
    va_end(ap);
    return QPC_ERR_CONFIG;
}

int qpc_toml_parse(const char *name, const char *buf, size_t len,
                   const struct qpc_toml_handler *h, void *ctx, char *err, size_t errlen)
{
    static const struct qpc_toml_handler none = { 0 };
    struct parser ps = { .name = name ? name : "(config)", .p = buf, .end = buf + len,
                         .line = 1, .err = err, .errlen = errlen, .h = h ? h : &none,
                         .ctx = ctx };
    const char *nul;
    size_t bad;
    int rc;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (len > QPC_TOML_MAX_BYTES)
        return fail_at(err, errlen, ps.name, 1, "file is larger than %d bytes",
                       QPC_TOML_MAX_BYTES);
    if ((nul = memchr(buf, '\0', len)) != NULL)
        return fail_at(err, errlen, ps.name, line_of(buf, nul),
                       "NUL byte in the file; is it a text file?");
    if ((bad = qpc_utf8_check(buf, len)) < len)
        return fail_at(err, errlen, ps.name, line_of(buf, buf + bad),
                       "invalid UTF-8 (byte 0x%02x); save the file as UTF-8",
                       (unsigned char)buf[bad]);
    if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
        ps.p += 3;   /* a UTF-8 byte-order mark, as some editors write */
    rc = parse_document(&ps);
    free(ps.table);
    return rc;
}

int qpc_toml_parse_integer(const char *s, size_t len, int64_t *out)
{
    int r = toml_int(s, len, out);
    return r == 0 ? 0 : r == -2 ? QPC_ERR_TOO_LARGE : QPC_ERR_INVALID;
}
