/*
 * store.h - the only interface to Redis. One connection per thread, created
 * on first use, with connect and command timeouts, AUTH/SELECT, scripts
 * loaded once per connection and run with EVALSHA (reloaded on NOSCRIPT),
 * and reconnect with back-off after a failure.
 *
 * Rate windows: for each (rule, scope value, network) a sorted set of
 * admitted units scored by admission time (ms), plus a sorted set of the
 * units still pending (scored by their expiry). Keys share the network's
 * hash tag: PREFIX{NETWORK}:w:RULE:SCOPE and PREFIX{NETWORK}:p:RULE:SCOPE.
 */
#ifndef OBM_STORE_H
#define OBM_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "ratelimit.h"

enum store_status { STORE_ERR = -1, STORE_OK = 0, STORE_OVER = 1 };

/* one unit to reserve under one rule, or one held unit to commit/release */
struct store_unit {
	const char *network;
	const char *rule;
	const char *scope; /* binary-safe: scope_len bytes */
	size_t scope_len;
	const char *member; /* unique id of the unit */
	struct limit_values lv; /* used by store_reserve only */
};

struct store_verdict {
	int unit;                   /* index of the unit that was refused, -1 if none */
	enum window_verdict which;  /* which window refused */
	long used;                  /* units in that window */
	long limit;                 /* the limit of that window */
	long long retry_ms;         /* until one unit leaves that window */
};

/*
 * Atomically check every unit (all of one network) and, when all fit, admit
 * them all as pending reservations (expiring after cfg->reservation_ttl).
 * STORE_OVER: nothing admitted; V says which. In MONITOR mode the refusal is
 * counted as "would tempfail" instead of "tempfailed". NOW_MS is 0 to use the
 * Redis server clock (tests pass their own clock).
 */
int store_reserve(const struct config *cfg, const struct store_unit *units, size_t n,
		  bool monitor, long long now_ms, struct store_verdict *v);

/* Confirm held units (any networks) in one round trip. */
int store_commit(const struct config *cfg, const struct store_unit *units, size_t n);

/* Give back held units (any networks) in one round trip. */
int store_release(const struct config *cfg, const struct store_unit *units, size_t n);

/* STORE_OK when Redis answers PING on this thread's connection */
int store_ping(const struct config *cfg);

/* text of this thread's last store error ("" when none) */
const char *store_last_error(void);

/* close this thread's connection (also done automatically at thread exit) */
void store_disconnect(void);

#endif
