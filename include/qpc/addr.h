/*
 * addr.h: network addresses as text, "host:port" or "[v6]:port", in and out.
 *
 * The one idea: an address is text until the moment it is dialled or bound, and every
 * program reads and writes that text the same way. Two readings exist because the
 * text comes from two kinds of places:
 *
 *  - qpc_addr_check / qpc_addr_parse: what a user writes in a setting or types at a
 *    prompt. The host must be an IPv4 literal, an IPv6 literal in brackets (with an
 *    optional "%zone") or a DNS name; the port 0..65535 (whether 0 may be used is the
 *    caller's business: it means "any" for a listening address). A refusal comes with
 *    a sentence that says what to fix.
 *  - qpc_addr_valid: what is stored and compared as a key (a directory of peers, pins),
 *    often learned from others. Only the shape is checked: printable ASCII without
 *    spaces, a non-empty host (in brackets when it holds ':'), a port 1..65535, at most
 *    QPC_ADDRESS_MAX characters. The host is not interpreted, so an address written by
 *    a newer or an older program still loads.
 *
 * And one writer, qpc_addr_format, for the address of a socket: "a.b.c.d:port" or
 * "[v6]:port". All of it is text work without I/O: names are looked up by
 * qpc/resolve.h, on the event loop.
 */
#ifndef QPC_ADDR_H
#define QPC_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>

#define QPC_ADDRESS_MAX 262        /* characters of a stored "host:port" text */
#define QPC_ADDR_HOST_MAX 255      /* bytes of a host, brackets removed */
#define QPC_ADDR_TEXT_MAX 56       /* qpc_addr_format output with its NUL, at most */

/*
 * Checks text, "host:port" or "[v6]:port", as a setting or a typed address. On success
 * returns NULL and, when host is not NULL, copies the host (brackets removed,
 * NUL-terminated; a host of hostlen bytes or more, or of more than QPC_ADDR_HOST_MAX,
 * is refused as too long) and stores the port in *port (may be NULL). On a refusal
 * returns a static English phrase saying what is wrong ("the port is missing (write
 * host:port)"); host and *port are then unspecified. text is borrowed.
 */
const char *qpc_addr_check(const char *text, char *host, size_t hostlen, uint16_t *port);

/*
 * qpc_addr_check for callers that need no sentence: 0, or QPC_ERR_INVALID (also when
 * text, host or port is NULL).
 */
int qpc_addr_parse(const char *text, char *host, size_t hostlen, uint16_t *port);

/*
 * Checks a DNS name (a federation domain, the host part of an address): 1..253 bytes,
 * labels of 1..63 letters, digits, '-' or '_', not starting or ending with '-'.
 * Returns NULL when it is one, else a static phrase saying why not ("it has an empty
 * label (two dots, or a dot at an end)").
 */
const char *qpc_addr_check_name(const char *name);

/*
 * True when text has the shape of a stored address (see above): 3..QPC_ADDRESS_MAX
 * characters 0x21..0x7e, a non-empty host without ':', '[' or ']' or a bracketed one
 * ("[fe80::1%eth0]") without further brackets inside, ':' and 1..5 decimal digits of a
 * port 1..65535. NULL is not valid.
 */
bool qpc_addr_valid(const char *text);

/*
 * Writes the address of sa (AF_INET or AF_INET6; borrowed) to buf as "a.b.c.d:port" or
 * "[v6]:port". An IPv4-mapped IPv6 address (a dual-stack socket's view of an IPv4
 * peer) is written as the IPv4 address, the form that peer can be dialled at. The
 * zone of a link-local address is not written. buf always holds a NUL-terminated
 * string when len > 0: "?" for NULL or another family, truncated when too small
 * (QPC_ADDR_TEXT_MAX always suffices).
 * Returns 0, QPC_ERR_INVALID (NULL or an unknown family) or QPC_ERR_TOO_LARGE (truncated).
 */
int qpc_addr_format(const struct sockaddr *sa, char *buf, size_t len);

/*
 * True when text is "a.b.c.d:port" or "[v6]:port" with a port 1..65535: an address that
 * needs no name resolution (and so can be trusted not to block, or to be steered by
 * whoever answers DNS). text is borrowed; NULL is false.
 */
bool qpc_addr_is_numeric(const char *text);

/*
 * Converts a numeric text ("a.b.c.d:port" or "[v6]:port", port 1..65535) to its UDP
 * socket address in *ss (*len its length), without I/O: it never asks a resolver, so it
 * never blocks. A name is refused with QPC_ERR_AGAIN: look it up with qpc_resolve_start
 * (qpc/resolve.h), which answers later from the event loop.
 * Returns 0, QPC_ERR_INVALID (not host:port, port 0), QPC_ERR_AGAIN (a name) or
 * QPC_ERR_NOT_FOUND.
 */
int qpc_addr_resolve(const char *text, struct sockaddr_storage *ss, socklen_t *len);

#endif
