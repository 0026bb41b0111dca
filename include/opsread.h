/*
 * opsread.h - what outboundctl reads from Redis for operations and incident
 * triage (doc/REDIS.md): hourly counters, top senders, rate window usage,
 * velocity, blocks and the decision log. Read-only, except opsread_reset,
 * which deletes a sender's rate windows on an operator's request. The
 * views built from these reads are opsview.h.
 *
 * One connection per struct opsread, opened with the daemon's redis
 * settings (socket or host/port, timeout_ms, AUTH from password_file with
 * the optional ACL user, SELECT db). The milter never uses this module;
 * its own access to Redis is store.h. Out of memory ends the program.
 *
 * A window counts committed and pending units; a reservation that
 * expired unconfirmed still counts until the milter's next check on that
 * window removes it.
 */
#ifndef OBM_OPSREAD_H
#define OBM_OPSREAD_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "ratelimit.h"

#define OPS_HOURS_MAX 192 /* hourly counters live 8 days */

/* the UTC hour bucket YYYYMMDDHH of MS since the epoch */
void ops_hour(long long ms, char out[16]);

/* ---- memory: out of memory ends the program ------------------------------------ */

/* "outboundctl: out of memory" on stderr, exit status 1 */
void ops_oom(void) __attribute__((noreturn));
/* V with room for one more than N elements of SIZE (CAP: 0, 16, 32, ...) */
void *ops_grow(void *v, size_t *cap, size_t n, size_t size);
char *ops_strdup(const char *s);

/* ---- name -> count lists: counter fields, senders ----------------------------- */

struct ops_count {
	char *name;
	long long n;
};

struct ops_counts {
	struct ops_count *v;
	size_t n, cap;
};

void ops_counts_add(struct ops_counts *c, const char *name, size_t len, long long n);
/* sort by name and add up entries of the same name */
void ops_counts_merge(struct ops_counts *c);
/* largest count first, then by name */
void ops_counts_sort_desc(struct ops_counts *c);
/* the count of NAME (0 when absent) */
long long ops_counts_get(const struct ops_counts *c, const char *name);
void ops_counts_free(struct ops_counts *c);

/* ---- rate window usage ------------------------------------------------------------ */

/* the units one scope value has in the windows of one rule on one network */
struct ops_usage {
	char *network;
	char *rule;
	char *scope;
	const struct limit_rule *def; /* NULL: the rule is no longer configured */
	struct limit_values lv;       /* effective limits on this network (def != NULL) */
	long long hourly;             /* units in the last hour */
	long long burst;              /* units in the last burst_window (-1: unknown) */
	bool fetched;
};

struct ops_usages {
	struct ops_usage *v;
	size_t n, cap;
};

/* free the names of one row */
void ops_usage_clear(struct ops_usage *u);
void ops_usages_free(struct ops_usages *u);
/* sort by network, rule, scope and drop duplicates */
void ops_usages_unique(struct ops_usages *u);
/* the fuller of its two windows, as used / limit (a limit of 0 counts as full) */
double ops_usage_ratio(const struct ops_usage *u);
/* most used first (ratio, then hourly units, then names) */
void ops_usages_sort_busiest(struct ops_usages *u);

/* ---- decision log entries ------------------------------------------------------ */

struct ops_entry {
	char id[48];  /* stream entry id, "MS-SEQ" */
	long long ms; /* its time */
	char **kv;    /* field, value, field, value, ... */
	size_t n_kv;
};

struct ops_entries {
	struct ops_entry *v;
	size_t n, cap;
};

/* the value of FIELD, NULL when the entry has none */
const char *ops_entry_get(const struct ops_entry *e, const char *field);
void ops_entries_free(struct ops_entries *l);

/* which entries a reader wants; NULL/0 members match everything */
struct ops_filter {
	const char *sender;
	const char *qid;
	const char *cls;     /* message entries of that class */
	const char *type;    /* "message" or "tempfail" */
	long long since_ms;  /* entries at or after this time */
};

bool ops_entry_match(const struct ops_entry *e, const struct ops_filter *f);

/* ---- the connection ------------------------------------------------------------- */

struct opsread;

/*
 * Connect with CFG's redis settings. NOW_MS is "now" for every window and
 * hour bucket read through this handle. NULL when Redis cannot be reached
 * (opsread_error() says why).
 */
struct opsread *opsread_open(const struct config *cfg, long long now_ms);
void opsread_close(struct opsread *o);
/* move "now" (the live view) */
void opsread_set_now(struct opsread *o, long long now_ms);
/* the configuration the handle was opened with */
const struct config *opsread_config(const struct opsread *o);
/* text of the last error, "redis: ..." */
const char *opsread_error(void);

/*
 * Fleet counters of the HOURS buckets ending with the current one, added
 * up (FIELDS: fields of PREFIX{stats}:h:HOUR, merged), and the senders of
 * PREFIX{stats}:top:HOUR added up, most recipients first (TOP; at most
 * TOP_N of them, 0 for all). -1 on error.
 */
int opsread_stats(struct opsread *o, int hours, struct ops_counts *fields,
		  struct ops_counts *top, size_t top_n);

/*
 * SENDER's hour hashes PREFIX{s:SENDER}:h:HOUR of the HOURS buckets ending
 * with the current one added up (SUM, merged) and the current one alone
 * (NOW). -1 on error.
 */
int opsread_sender_hours(struct opsread *o, const char *sender, int hours,
			 struct ops_counts *sum, struct ops_counts *now);

/* distinct recipients SENDER mailed in the last hour; -1 on error */
long long opsread_velocity(struct opsread *o, const char *sender);
/* known correspondents of SENDER; -1 on error */
long long opsread_relationships(struct opsread *o, const char *sender);
/*
 * SENDER's block: 1 blocked (REASON, *TTL seconds or -1 for none), 0 not
 * blocked, -1 on error
 */
int opsread_block(struct opsread *o, const char *sender, char *reason, size_t size,
		  long long *ttl);
/* number of blocked senders; -1 on error */
long long opsread_blocked_count(struct opsread *o);
/* entries in the decision log; -1 on error */
long long opsread_log_length(struct opsread *o);

/*
 * Rate windows. opsread_usage_scan adds the windows found by SCAN: those of
 * NETWORK (NULL: every network) whose scope value is SCOPE (NULL: any).
 * opsread_usage_add adds one window by name. opsread_usage_fetch counts the
 * units of every window not yet fetched (both windows, one pipeline) and
 * fills in the limits from the configuration. -1 on error.
 */
int opsread_usage_scan(struct opsread *o, const char *network, const char *scope,
		       struct ops_usages *out);
void opsread_usage_add(struct opsread *o, const char *network, const char *rule,
		       const char *scope, struct ops_usages *out);
int opsread_usage_fetch(struct opsread *o, struct ops_usages *u);

/*
 * Decision log, newest first: entries matching F, at most WANT (0: no
 * limit), looking at no more than MAX_SCAN entries (0: no limit) and none
 * older than F->since_ms. -1 on error.
 */
int opsread_log_back(struct opsread *o, const struct ops_filter *f, size_t want,
		     size_t max_scan, struct ops_entries *out);
/* the id of the newest entry ("0-0" when the log is empty); -1 on error */
int opsread_log_last_id(struct opsread *o, char *id, size_t size);
/*
 * Wait up to BLOCK_MS for entries newer than LAST_ID (updated), append
 * those matching F to OUT, oldest first. Number of entries read, -1 on error.
 */
int opsread_log_wait(struct opsread *o, char *last_id, size_t size, long block_ms,
		     const struct ops_filter *f, struct ops_entries *out);

/*
 * Delete SENDER's rate windows (the w and p keys whose scope value is
 * SENDER, of every rule not configured with another scope) on NETWORK, or
 * on every network when NETWORK is NULL. Number of keys deleted, -1 on error.
 */
long long opsread_reset(struct opsread *o, const char *sender, const char *network);

#endif
