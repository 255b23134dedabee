/*
 * share.c: my identity as the qpc: text and as a QR code in the terminal (share.h).
 *
 * The one idea: meeting in person is the best way to exchange keys, so the key travels
 * as a picture a phone or another qpc can read off the screen, and as text that
 * /mesh add and qpc peer add take exactly as pasted. The code is drawn with Unicode
 * half blocks, two modules per character cell, light modules in the terminal's
 * foreground colour, so on the usual light-on-dark terminal it reads as a normal
 * dark-on-light code (as qrencode -t UTF8 draws it), with the quiet zone of four
 * modules the standard asks for.
 */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <qrencode.h>

#include "output.h"
#include "qpc/addr.h"
#include "qpc/error.h"
#include "share.h"

#define QUIET 4

/* Addresses peers can dial: interface addresses for a wildcard listener (none without
 * mesh: nothing listens, the socket is the server connection's). */
static void my_addresses(const struct client *cl, struct contacts_card *card)
{
    char host[QPC_ADDRESS_MAX + 1];
    uint16_t port = 0;
    struct ifaddrs *ifs = NULL;

    if (!QPC_MESH || qpc_addr_parse(cl->cc->listen, host, sizeof(host), &port) < 0)
        return;
    if (cl->listen_port != 0)
        port = cl->listen_port;     /* the node runs: the port it has */
    if (port == 0)
        return;                     /* chosen anew each start: nothing to hand out */
    if (strcmp(host, "0.0.0.0") != 0 && strcmp(host, "::") != 0 && strcmp(host, "[::]") != 0) {
        if (strlen(host) + 7 <= QPC_ADDRESS_MAX)
            snprintf(card->addrs[card->naddrs++], sizeof(card->addrs[0]), "%.*s:%u",
                     QPC_ADDRESS_MAX - 7, host, port);
        return;
    }
    if (getifaddrs(&ifs) < 0)
        return;
    for (struct ifaddrs *i = ifs; i != NULL && card->naddrs < CONTACTS_CARD_ADDRS_MAX; i = i->ifa_next) {
        char a[INET_ADDRSTRLEN];

        if (i->ifa_addr == NULL || i->ifa_addr->sa_family != AF_INET || !(i->ifa_flags & IFF_UP) ||
            (i->ifa_flags & IFF_LOOPBACK))
            continue;
        inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, a, sizeof(a));
        snprintf(card->addrs[card->naddrs++], sizeof(card->addrs[0]), "%s:%u", a, port);
    }
    freeifaddrs(ifs);
}

int share_my_text(const struct client *cl, char *out, size_t cap)
{
    struct contacts_card card = { 0 };

    memcpy(card.key, qpc_identity_public_key(cl->id), QPC_KEY_LEN);
    if (qpc_identity_name(cl->id) != NULL)
        snprintf(card.name, sizeof(card.name), "%s", qpc_identity_name(cl->id));
    my_addresses(cl, &card);
    return contacts_card_format(out, cap, &card);
}

static bool dark(const QRcode *qr, int x, int y)
{
    if (x < 0 || y < 0 || x >= qr->width || y >= qr->width)
        return false;                           /* the quiet zone is light */
    return qr->data[y * qr->width + x] & 1;
}

int share_show(struct client *cl)
{
    static const char *const cell[4] = { "\u2588", "\u2580", "\u2584", " " };   /* by dark bits */
    char text[CONTACTS_CARD_MAX];
    QRcode *qr;
    int n = share_my_text(cl, text, sizeof(text));

    if (n < 0)
        return n;
    qr = QRcode_encodeString8bit(text, 0, QR_ECLEVEL_M);
    if (qr == NULL)
        return QPC_ERR_NOMEM;
    for (int y = -QUIET; y < qr->width + QUIET; y += 2) {
        char row[4 * 3 * (256 + 2 * QUIET) + 1];
        size_t o = 0;

        for (int x = -QUIET; x < qr->width + QUIET; x++) {
            /* light is drawn: the upper half block when only the lower module is dark */
            int bits = (dark(qr, x, y) ? 1 : 0) | (dark(qr, x, y + 1) ? 2 : 0);
            const char *c = bits == 0 ? cell[0] : bits == 1 ? cell[2] : bits == 2 ? cell[1] : cell[3];

            memcpy(row + o, c, strlen(c));
            o += strlen(c);
        }
        row[o] = '\0';
        say(cl, "%s", row);
    }
    QRcode_free(qr);
    say(cl, "%s", text);
    if (!QPC_MESH)
        say(cl, "(no address in it: this qpc has no mesh, so others reach you through your server)");
    else if (strstr(text, "addr=") == NULL)
        say(cl, "(no address in it: qpc listens on a port chosen at each start; a fixed one, "
            "--listen 0.0.0.0:7100, puts your addresses in)");
    say(cl, "others add you by pasting that text: /mesh add <text> or qpc peer add <text>");
    return 0;
}
