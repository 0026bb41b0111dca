/*
 * stats.h - what a transaction leaves behind for dashboards and incident
 * triage (doc/REDIS.md): hourly counters and decision log entries,
 * gathered here and written by one store_finish in the same round trip as
 * the commit or release.
 */
#ifndef OBM_STATS_H
#define OBM_STATS_H

#include <stddef.h>

#include "store.h"

struct stats_batch {
	struct store_count *counts;
	size_t n_counts, cap_counts;
	struct store_log *logs;
	size_t n_logs, cap_logs;
	char **owned; /* every string and field array the batch points to */
	size_t n_owned, cap_owned;
};

void stats_init(struct stats_batch *b);
void stats_free(struct stats_batch *b);

/* add BY to a counter; the field name is formatted (unused for COUNT_TOP) */
void stats_count(struct stats_batch *b, enum store_count_key key, const char *sender, long by,
		 const char *field_fmt, ...) __attribute__((format(printf, 5, 6)));

/* one decision log entry of N name/value pairs (strings, copied) */
void stats_log(struct stats_batch *b, size_t n, ...);

/* point F at the batch's counters and log entries */
void stats_attach(const struct stats_batch *b, struct store_finish *f);

#endif
