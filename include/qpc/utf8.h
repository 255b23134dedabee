/*
 * utf8.h: UTF-8 well-formedness, the one check every reader of untrusted text needs.
 *
 * "Well-formed" is the Unicode definition (RFC 3629): no overlong forms, no surrogates
 * (U+D800..U+DFFF), nothing above U+10FFFF, no stray or missing continuation bytes.
 * NUL (U+0000) is well-formed UTF-8; callers that refuse it check for it themselves,
 * as they do for control characters, because what is allowed there differs by caller.
 * Nothing here allocates.
 */
#ifndef QPC_UTF8_H
#define QPC_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Decodes the code point at the start of s[0..len) into *cp. Returns the length of
 * its encoding (1..4), or 0 when len is 0 or s does not start with a well-formed
 * sequence (then *cp is unspecified).
 */
size_t qpc_utf8_decode(const char *s, size_t len, uint32_t *cp);

/*
 * The offset of the first byte of s[0..len) that does not start a well-formed
 * sequence, or len when all of it is well-formed. For messages such as "invalid UTF-8
 * (byte 0xff) on line 3".
 */
size_t qpc_utf8_check(const char *s, size_t len);

/* True when all of s[0..len) is well-formed UTF-8. */
bool qpc_utf8_valid(const char *s, size_t len);

#endif
