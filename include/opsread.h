/*
 * opsread.h - what outboundctl reads from Redis for operations and incident
 * triage (doc/REDIS.md): hourly counters, top senders, rate window usage,
 * velocity, blocks and the decision log. Read-only, except opsread_reset,
 * which deletes a sender's rate windows on an operator's request.
 *
 * One connection per struct opsread, opened with the daemon's redis
 * settings (socket or host/port, timeout_ms, AUTH from password_file with
 * the optional ACL user, SELECT db). The milter never uses this module;
 * its own access to Redis is store.h. Out of memory ends the program.
 *
 * Below the reads: the views of outboundctl's commands (stats, top,
 * sender, network, log lines, metrics), each gathered in one go and then
 * written as a table for people or as JSON, and the small output helpers
 * they share (JSON writer, text tables, times and durations).
 *
 * A window counts committed and pending units; a reservation that
 * expired unconfirmed still counts until the milter's next check on that
 * window removes it.
 */
#ifndef OBM_OPSREAD_H
#define OBM_OPSREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "address.h"
#include "config.h"
#include "ratelimit.h"

#define OPS_HOURS_MAX 192 /* hourly counters live 8 days */

/* the UTC hour bucket YYYYMMDDHH of MS since the epoch */
void ops_hour(long long ms, char out[16]);

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

/* ---- output helpers shared by outboundctl's commands ------------------------ */

/* length of the valid UTF-8 sequence at S (at most LEFT bytes), 0 if none */
size_t ops_utf8_len(const unsigned char *s, size_t left);
/* S as a JSON string; bytes that are not UTF-8 become U+FFFD */
void ops_json_string(FILE *f, const char *s);
/* S for a terminal: control characters become '?' */
void ops_text_safe(FILE *f, const char *s);
/* columns S takes on a terminal (characters, not bytes) */
size_t ops_text_width(const char *s);

/* a compact JSON writer: values separated and keys written as needed */
struct ops_json {
	FILE *f;
	int depth;
	bool more[32]; /* a value was written at this depth */
};

/* KEY is NULL inside arrays and at the top */
void ops_json_open(struct ops_json *w, const char *key, char bracket);
/* the outermost close ends the line */
void ops_json_close(struct ops_json *w, char bracket);
void ops_json_str(struct ops_json *w, const char *key, const char *v); /* NULL: null */
void ops_json_int(struct ops_json *w, const char *key, long long v);
void ops_json_bool(struct ops_json *w, const char *key, bool v);
void ops_json_null(struct ops_json *w, const char *key);

/* a text table: column widths from the content, numbers right-aligned */
#define OPS_TABLE_COLS 10
struct ops_table {
	char *spec;                       /* the column names, owned */
	const char *head[OPS_TABLE_COLS];
	bool right[OPS_TABLE_COLS];
	size_t ncol;
	char **cells;                     /* row after row */
	size_t n, cap;
};

/* COLUMNS: "NAME|>COUNT|..." ('>' right-aligns a column) */
void ops_table_init(struct ops_table *t, const char *columns);
/* the next cell, rows filled left to right */
void ops_table_cell(struct ops_table *t, const char *s);
void ops_table_cellf(struct ops_table *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
size_t ops_table_rows(const struct ops_table *t);
/* the header and the rows, each line after INDENT spaces */
void ops_table_print(const struct ops_table *t, FILE *f, int indent);
void ops_table_free(struct ops_table *t);

/* "YYYY-MM-DDTHH:MM:SSZ" for MS since the epoch */
void ops_iso_time(char *buf, size_t size, long long ms);
/* "45s", "12m30s", "3h05m", "2d04h" */
void ops_duration(char *buf, size_t size, long long seconds);
/*
 * A point in time for --since, in ms: ISO-8601 UTC (2026-11-30T14:02:03Z,
 * 2026-11-30T14:02Z, 2026-11-30), epoch seconds (1796040000) or a time
 * before NOW_MS (90s, 15m, 2h, 7d, 1w). -1 when it is none of these.
 */
long long ops_parse_time(const char *s, long long now_ms);

/* ---- views: what the commands show, gathered, then as JSON or text ------------- */

#define OPS_TOP_SENDERS 10 /* stats and metrics list that many senders */
#define OPS_TOP_SHOW 5     /* top: senders and recent tempfails shown */
#define OPS_NETWORK_TOP 20 /* network: scope values shown */
#define OPS_SENDER_MAX (ADDR_LOCAL_MAX + ADDR_DOMAIN_MAX + 2) /* an address or login */

/* personal, bulk, spam-risk or unknown */
bool ops_class_known(const char *name);

/* one network's line: its counters and the busiest scope value of each rule */
struct ops_net {
	const char *name;
	long long accepted, tempfailed, monitor_tempfailed;
	const struct ops_usage *busy; /* the first of n_busy rows of ops_stats.usage */
	size_t n_busy;
};

/* stats, top and metrics: the fleet counters of some hours and the windows now */
struct ops_stats {
	int hours;
	struct ops_counts fields; /* counter fields added up */
	struct ops_counts top;    /* senders, most recipients first */
	struct ops_usages usage;  /* the busiest scope value per (network, rule) */
	struct ops_counts names;  /* network names (owns ops_net.name) */
	struct ops_net *nets;     /* most recipients first */
	size_t n_nets;
	bool monitor;             /* monitor-mode counters present */
};

/* counters of HOURS buckets, every window now, TOP_N senders; -1 on error */
int ops_stats_gather(struct opsread *o, int hours, size_t top_n, struct ops_stats *v);
void ops_stats_free(struct ops_stats *v);
/* the members of the stats object, inside an open one */
void ops_stats_json_body(struct ops_json *w, const struct ops_stats *v, long long now_ms);
void ops_stats_print(FILE *f, const struct ops_stats *v, long long now_ms);
/* one screen of outboundctl top (TF: recent tempfail entries) */
void ops_top_frame(FILE *f, const struct ops_stats *v, const struct ops_entries *tf,
		   long long now_ms, long interval);

/* a decision log entry as JSON, and as a line like the daemon's decision line */
void ops_json_entry(struct ops_json *w, const struct ops_entry *e);
void ops_log_line(FILE *f, const struct ops_entry *e);

/* sender: everything about one sender (NAME set by the caller) */
struct ops_sender {
	char name[OPS_SENDER_MAX];
	struct ops_counts day, hour;           /* counters: last 24 h, this hour */
	struct ops_counts nets_day, nets_hour; /* accepted recipients per network */
	struct ops_usages windows;             /* the windows its mail counts in */
	struct ops_entries decisions;          /* newest first */
	long long velocity, relationships, ttl;
	int blocked;
	char reason[512];
};

int ops_sender_gather(struct opsread *o, struct ops_sender *v);
void ops_sender_free(struct ops_sender *v);
void ops_sender_json(FILE *f, const struct ops_sender *v);
void ops_sender_print(FILE *f, const struct ops_sender *v);

/* network: one network's counters this hour and its busiest scope values (NAME set) */
struct ops_network {
	const char *name;
	struct ops_counts fields;
	struct ops_usages usage; /* busiest first */
	long long accepted, tempfailed, monitor_tempfailed;
	char **mx_domains; /* domains grouped into it by their MX hosts, newest first */
	size_t n_mx_domains;
};

int ops_network_gather(struct opsread *o, struct ops_network *v);
void ops_network_free(struct ops_network *v);
void ops_network_json(FILE *f, const struct ops_network *v, long long now_ms);
void ops_network_print(FILE *f, const struct ops_network *v, long long now_ms);

/*
 * metrics: the Prometheus text exposition (or JSON) of the current hour
 * bucket, the blocks and the log length; ops_metrics_down only says
 * outbound_milter_up 0
 */
void ops_metrics_write(FILE *f, const struct ops_stats *v, long long blocked, long long log_len,
		       long long now_ms, bool json);
void ops_metrics_down(FILE *f);

/* seconds in one duration unit: s, m, h, d, w; -1 for anything else */
long long ops_unit_seconds(char suffix);

#endif
