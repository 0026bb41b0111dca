/*
 * lease.h - the reservations of transactions still running. Each
 * transaction keeps the units it holds in a lease; while any lease is open
 * a thread renews their pending expiry (store_renew) every third of
 * reservation_ttl, so that a unit stops counting by expiry only when the
 * milter holding it died, never because a client is slow.
 */
#ifndef OBM_LEASE_H
#define OBM_LEASE_H

#include <stdbool.h>
#include <stddef.h>

#include "store.h"

/* the units one transaction holds (strings owned here); zero it to start */
struct lease {
	struct store_unit *units;
	size_t n, cap;
	struct lease *prev, *next; /* in the list of open leases while n > 0 */
};

/* add N units (their strings copied) to L */
void lease_hold(struct lease *l, const struct store_unit *units, size_t n);
/* forget L's units (committed or released by the caller) */
void lease_clear(struct lease *l);
/* lease_clear and free L's memory */
void lease_free(struct lease *l);

/* start and stop the renewing thread (the daemon; 0 when started) */
int lease_start(void);
void lease_stop(void);
/* renew every open lease now, in the calling thread (STORE_OK or STORE_ERR) */
int lease_renew_all(void);

#endif
