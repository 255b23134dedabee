/*
 * share.h: my identity as something to hand to someone: the qpc: text (contacts.h) and
 * a QR code of it drawn in the terminal (share.c).
 */
#ifndef QPC_CLIENT_SHARE_H
#define QPC_CLIENT_SHARE_H

#include <stddef.h>

#include "client.h"
#include "contacts.h"

/*
 * Writes my qpc: text into out: my key, my name, and the addresses a peer can dial me
 * at (the listen address, or for a wildcard listener the addresses of my interfaces,
 * each with the listen port; none while the port is not fixed). Returns its length or
 * a QPC_ERR_*.
 */
int share_my_text(const struct client *cl, char *out, size_t cap);

/* Says (above the prompt in the REPL) the text and its QR code. Returns 0 or a QPC_ERR_*. */
int share_show(struct client *cl);

#endif
