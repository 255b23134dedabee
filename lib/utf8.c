/*
 * utf8.c: UTF-8 well-formedness (include/qpc/utf8.h).
 *
 * One decoder, so that the config reader, the identity file's names and whatever
 * comes next agree on which bytes are text: the lead byte fixes the length and the
 * smallest code point that length may carry, which is what rules out overlong forms.
 */
#include "qpc/utf8.h"

size_t qpc_utf8_decode(const char *s, size_t len, uint32_t *cp)
{
    const unsigned char *p = (const unsigned char *)s;
    uint32_t c, min;
    size_t n;

    if (len == 0)
        return 0;
    if (p[0] < 0x80) {
        *cp = p[0];
        return 1;
    }
    if ((p[0] & 0xe0) == 0xc0) {
        n = 2, c = p[0] & 0x1fu, min = 0x80;
    } else if ((p[0] & 0xf0) == 0xe0) {
        n = 3, c = p[0] & 0x0fu, min = 0x800;
    } else if ((p[0] & 0xf8) == 0xf0) {
        n = 4, c = p[0] & 0x07u, min = 0x10000;
    } else {
        return 0;   /* a continuation byte, or 0xf8..0xff */
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (p[i] & 0x3fu);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return n;
}

size_t qpc_utf8_check(const char *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        uint32_t cp;
        size_t n;

        if ((unsigned char)s[i] < 0x80) {   /* ASCII runs are the common case */
            i++;
            continue;
        }
        if ((n = qpc_utf8_decode(s + i, len - i, &cp)) == 0)
            return i;
        i += n;
    }
    return len;
}

bool qpc_utf8_valid(const char *s, size_t len)
{
    return qpc_utf8_check(s, len) == len;
}
