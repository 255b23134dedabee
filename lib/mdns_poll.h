/*
 * mdns_poll.h (internal): Avahi's AvahiPoll main-loop vtable implemented on libev, so the
 * embedded avahi-core responder runs inside the process's one libev loop.
 */
#ifndef QPC_MDNS_POLL_H
#define QPC_MDNS_POLL_H

#include <ev.h>
#include <avahi-common/watch.h>

struct qpc_mdns_poll;

/*
 * Creates an adapter for loop (borrowed; must outlive the adapter). Returns NULL when
 * out of memory. Free it with qpc_mdns_poll_free only after every watch and timeout
 * made through it is freed (that is: after avahi_server_free).
 */
struct qpc_mdns_poll *qpc_mdns_poll_new(struct ev_loop *loop);

/* The vtable to pass to avahi_server_new; owned by p. */
const AvahiPoll *qpc_mdns_poll_api(struct qpc_mdns_poll *p);

/* Frees p. NULL is a no-op. */
void qpc_mdns_poll_free(struct qpc_mdns_poll *p);

#endif
