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
 * A reservation reports its admission time; the commit counts each unit
 * at that time, even when its pending entry expired meanwhile.
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
	long long admitted_ms;  /* commit: store_verdict.admitted_ms of its reservation */
};

struct store_verdict {
	int unit;                   /* index of the unit that was refused, -1 if none */
	enum window_verdict which;  /* which window refused */
	long used;                  /* units in that window */
	long limit;                 /* the limit of that window */
	long long retry_ms;         /* until one unit leaves that window */
	long long admitted_ms;      /* STORE_OK with units: their admission time (ms) */
};

/*
 * Atomically check every unit (all of one network) and, when all fit, admit
 * them all as pending reservations (expiring after cfg->reservation_ttl).
 * STORE_OK: V->admitted_ms is the admission time, by the clock the check
 * used; the caller keeps it in each unit it holds, for the commit.
 * STORE_OVER: nothing admitted; V says which. Nothing is counted here: the
 * caller counts refusals with its next store_finish. NOW_MS is 0 to use the
 * Redis server clock (tests pass their own clock).
 */
int store_reserve(const struct config *cfg, const struct store_unit *units, size_t n,
		  long long now_ms, struct store_verdict *v);

/*
 * Confirm held units (any networks) in one round trip: each is counted in
 * its window at its admitted_ms, put back there if an expiry check dropped
 * it after reservation_ttl (a slow message), and is no longer pending. A
 * unit without admitted_ms (0) is counted at the time of the commit if it
 * is not in its window any more.
 */
int store_commit(const struct config *cfg, const struct store_unit *units, size_t n);

/*
 * Keep held units (any networks) pending: each one still in its pending
 * set expires reservation_ttl from now (Redis clock), so that the units of
 * a transaction that is still running never stop counting however long its
 * client takes. Units already committed or released are left alone. One
 * round trip (two when Redis lost the script).
 */
int store_renew(const struct config *cfg, const struct store_unit *units, size_t n);

/* Give back held units (any networks) in one round trip. */
int store_release(const struct config *cfg, const struct store_unit *units, size_t n);

/*
 * Senders: relationships, velocity and blocks. Keys of one sender share
 * the hash tag {s:SENDER}:
 *   PREFIX{s:SENDER}:rel    sorted set, recipient -> last seen (ms)
 *   PREFIX{s:SENDER}:vel    sorted set, recipient -> last mailed (ms), last hour
 *   PREFIX{s:SENDER}:block  string, the reason; TTL when the block has one
 */
#define VELOCITY_CAP 10000 /* recipients kept per sender in the velocity set */

/*
 * What a recipient's round trip reads besides its reservation; the caller
 * adds them up over the message (store_velocity_new).
 */
struct store_lookup {
	const char *rel_sender; /* whose correspondents RCPT may be */
	const char *vel_sender; /* whose velocity set; NULL: rel_sender */
	const char *rcpt;       /* NULL: no per-recipient lookup */
	bool message;           /* also the message's own inputs (once a message) */
	long long now_ms;       /* the caller's clock; 0: now */
};

struct store_found {
	int status;   /* STORE_OK when the lookups below were read */
	bool known;   /* RCPT: a correspondent of rel_sender seen within relationship_ttl */
	bool recent;  /* RCPT: mailed by vel_sender within the last hour */
	long velocity; /* message: distinct recipients of vel_sender in the last hour */
	bool blocked; /* message: rel_sender or vel_sender is blocked */
	char block_reason[128];
};

/*
 * One recipient, one round trip: reserve UNITS as store_reserve does (N 0:
 * nothing to reserve) and, with Q, look up what Q asks into F. Returns the
 * reservation's answer (STORE_OK with V->admitted_ms, STORE_OVER with V,
 * STORE_ERR); F->status says whether the lookups were read. A failed
 * lookup does not undo an admitted reservation, even when its reply never
 * came (a timeout after the reservation's reply: the connection is dropped,
 * the reservation's answer still stands). V and F may be NULL.
 */
int store_rcpt(const struct config *cfg, const struct store_unit *units, size_t n,
	       long long now_ms, struct store_verdict *v, const struct store_lookup *q,
	       struct store_found *f);

/*
 * The velocity with a message: BEFORE (store_found.velocity) plus the
 * distinct addresses among RCPTS (N, duplicates allowed) that are not
 * RECENT, at most VELOCITY_CAP (what the set can hold).
 */
long store_velocity(long before, const char *const *rcpts, const unsigned char *recent,
		    size_t n);

/* "RCPT is a known correspondent of SENDER" */
struct store_pair {
	const char *sender;
	const char *rcpt;
};

/* an hourly counter (doc/REDIS.md), kept 8 days */
enum store_count_key {
	COUNT_STATS,  /* HINCRBY PREFIX{stats}:h:HOUR FIELD BY */
	COUNT_SENDER, /* HINCRBY PREFIX{s:SENDER}:h:HOUR FIELD BY */
	COUNT_TOP,    /* ZINCRBY PREFIX{stats}:top:HOUR BY SENDER */
};

struct store_count {
	enum store_count_key key;
	const char *sender; /* COUNT_SENDER, COUNT_TOP */
	const char *field;  /* COUNT_STATS, COUNT_SENDER */
	long by;
};

/* one decision log entry: N_FIELDS name/value pairs (FIELDS has 2 * N_FIELDS) */
struct store_log {
	const char *const *fields;
	size_t n_fields;
};

/* everything the end of a message writes, sent in one round trip */
struct store_finish {
	const struct store_unit *commit; /* as store_commit: counted at admitted_ms */
	size_t n_commit;
	const struct store_unit *release;
	size_t n_release;
	const struct store_pair *learn; /* relationships to add or refresh (last seen = now) */
	size_t n_learn;
	const char *vel_sender;         /* VEL_RCPTS were mailed by VEL_SENDER now */
	const char *const *vel_rcpts;
	size_t n_vel;
	const struct store_count *counts;
	size_t n_counts;
	const struct store_log *logs; /* XADD PREFIX{log} MAXLEN ~ log_max_entries */
	size_t n_logs;
	long long now_ms;
};
int store_finish(const struct config *cfg, const struct store_finish *f);

/* Relationship lists (outboundctl rel) */
int store_rel_add(const struct config *cfg, const char *sender, const char *const *rcpts,
		  size_t n, long long now_ms);
int store_rel_del(const struct config *cfg, const char *sender, const char *const *rcpts,
		  size_t n);
/* calls FN for each entry, newest first; returns the number listed or STORE_ERR */
long store_rel_list(const struct config *cfg, const char *sender,
		    void (*fn)(void *arg, const char *rcpt, long long last_seen_ms), void *arg);

/* Blocks (outboundctl block/unblock); TTL_SECONDS 0 = until unblocked */
int store_block(const struct config *cfg, const char *sender, const char *reason,
		long ttl_seconds);
/* STORE_OK when a block was removed, STORE_OVER when there was none */
int store_unblock(const struct config *cfg, const char *sender);

/*
 * A new connection of the caller's own (outboundctl): connect, AUTH,
 * SELECT and PING within timeout_ms, then COMMAND_TIMEOUT_MS for each
 * command. NULL on failure (store_last_error says why); redisFree it.
 */
struct redisContext;
struct redisContext *store_open(const struct config *cfg, int command_timeout_ms);

/*
 * Whether Redis takes this configuration: connect, AUTH (with the ACL
 * user), SELECT, PING, SCRIPT LOAD of the milter's scripts and a write
 * under the key prefix, on a connection of its own (closed again). An ACL
 * that forbids the scripts or the keys, a wrong password or an unreadable
 * password file is STORE_CHECK_REFUSED; a Redis that cannot be reached
 * now is STORE_CHECK_UNREACHABLE, which is no configuration error. The
 * reason is in store_last_error.
 */
enum store_check { STORE_CHECK_OK, STORE_CHECK_REFUSED, STORE_CHECK_UNREACHABLE };
enum store_check store_verify(const struct config *cfg);

/* STORE_OK when Redis answers PING on this thread's connection */
int store_ping(const struct config *cfg);

/* text of this thread's last store error ("" when none) */
const char *store_last_error(void);

/* close this thread's connection (also done automatically at thread exit) */
void store_disconnect(void);

/*
 * MX grouping (mx.c, doc/REDIS.md):
 *   PREFIX{mx:DOMAIN}  string, DOMAIN's MX hosts best first ("mx H1 H2 ...")
 *                      or "none"; TTL as given
 *   PREFIX{mx}:net:NET sorted set, domain -> last grouped into NET (ms);
 *                      entries older than STORE_MX_KEEP_S dropped, at most
 *                      STORE_MX_NET_MAX kept; TTL STORE_MX_KEEP_S
 */
#define STORE_MX_KEEP_S 691200 /* 8 days */
#define STORE_MX_NET_MAX 100000

/*
 * The cached MX answer of DOMAIN into BUF and its remaining lifetime into
 * *TTL_MS: STORE_OK; STORE_OVER when there is none (or it does not fit).
 */
int store_mx_get(const struct config *cfg, const char *domain, char *buf, size_t size,
		 long long *ttl_ms);

/*
 * One round trip: cache VALUE for DOMAIN for TTL_SECONDS (VALUE NULL:
 * nothing cached) and, with NETWORK, record that DOMAIN was grouped into
 * NETWORK at NOW_MS (0: now).
 */
int store_mx_put(const struct config *cfg, const char *domain, const char *value,
		 long ttl_seconds, const char *network, long long now_ms);

/*
 * The domains grouped into NETWORK by their MX hosts in the last
 * STORE_MX_KEEP_S, most recent first: FN for each, returns how many or
 * STORE_ERR (outboundctl network NAME).
 */
long store_mx_network_list(const struct config *cfg, const char *network,
			   void (*fn)(void *arg, const char *domain, long long last_seen_ms),
			   void *arg);

#endif
