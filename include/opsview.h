/*
 * opsview.h - what outboundctl's commands show (stats, top, sender,
 * network, log lines, metrics): each view gathered in one go through the
 * reads of opsread.h, then written as a table for people or as JSON to
 * any FILE; and the small output helpers they share (JSON writer, text
 * tables, times and durations).
 */
#ifndef OBM_OPSVIEW_H
#define OBM_OPSVIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "address.h"
#include "opsread.h"

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

/* seconds in one duration unit: s, m, h, d, w; -1 for anything else */
long long ops_unit_seconds(char suffix);

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

/*
 * a decision log entry as JSON, and as a line like the daemon's decision
 * line, every value quoted by the rule of log.h (never cut)
 */
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

#endif
