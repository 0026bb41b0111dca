/*
 * stats.h - what a transaction leaves behind for dashboards and incident
 * triage (doc/REDIS.md): hourly counters and decision log entries,
 * gathered here and written by one store_finish in the same round trip as
 * the commit or release. One batch per thread at a time; a warm thread
 * allocates nothing for it.
 */
#ifndef OBM_STATS_H
#define OBM_STATS_H

#include <stddef.h>

#include "store.h"

struct stats_mem;

/* one batch: arrays and strings in the calling thread's kept memory */
struct stats_batch {
	struct stats_mem *mem;
	struct store_count *counts;
	size_t n_counts;
	struct store_log *logs;
	size_t n_logs;
	size_t n_fields; /* log name/value strings so far */
};

void stats_init(struct stats_batch *b);
void stats_free(struct stats_batch *b);

/*
 * add BY to a counter; the field name is FIELD_FMT with each %s replaced by
 * a string argument (no other conversion; unused for COUNT_TOP)
 */
void stats_count(struct stats_batch *b, enum store_count_key key, const char *sender, long by,
		 const char *field_fmt, ...) __attribute__((format(printf, 5, 6)));

/* one decision log entry of N name/value pairs (strings, copied) */
void stats_log(struct stats_batch *b, size_t n, ...);

/* point F at the batch's counters and log entries (add nothing after this) */
void stats_attach(struct stats_batch *b, struct store_finish *f);

#endif
