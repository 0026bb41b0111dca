/*
 * stats.c - gather a transaction's hourly counters and decision log
 * entries (doc/REDIS.md) for one store_finish. The batch owns copies of
 * every string, so callers may pass their stack buffers.
 */
#define _GNU_SOURCE /* vasprintf */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "stats.h"

static void *grow(void *p, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return p;
	size_t ncap = *cap ? *cap * 2 : 8;
	while (ncap < need)
		ncap *= 2;
	p = reallocarray(p, ncap, size);
	if (p == NULL) {
		log_msg(LOG_CRIT, NULL, "out of memory");
		abort();
	}
	*cap = ncap;
	return p;
}

/* keep P for stats_free */
static void *own(struct stats_batch *b, void *p)
{
	if (p == NULL) {
		log_msg(LOG_CRIT, NULL, "out of memory");
		abort();
	}
	b->owned = grow(b->owned, &b->cap_owned, b->n_owned + 1, sizeof(*b->owned));
	b->owned[b->n_owned++] = p;
	return p;
}

void stats_init(struct stats_batch *b)
{
	memset(b, 0, sizeof(*b));
}

void stats_free(struct stats_batch *b)
{
	for (size_t i = 0; i < b->n_owned; i++)
		free(b->owned[i]);
	free(b->owned);
	free(b->counts);
	free(b->logs);
	memset(b, 0, sizeof(*b));
}

void stats_count(struct stats_batch *b, enum store_count_key key, const char *sender, long by,
		 const char *field_fmt, ...)
{
	char *field = NULL;
	va_list ap;

	if (by == 0)
		return;
	if (key != COUNT_TOP) {
		va_start(ap, field_fmt);
		if (vasprintf(&field, field_fmt, ap) < 0)
			field = NULL;
		va_end(ap);
		own(b, field);
	}
	b->counts = grow(b->counts, &b->cap_counts, b->n_counts + 1, sizeof(*b->counts));
	b->counts[b->n_counts++] = (struct store_count){
		.key = key,
		.sender = sender ? own(b, strdup(sender)) : NULL,
		.field = field,
		.by = by,
	};
}

void stats_log(struct stats_batch *b, size_t n, ...)
{
	const char **fields = own(b, calloc(2 * n + 1, sizeof(*fields)));
	va_list ap;

	va_start(ap, n);
	for (size_t i = 0; i < 2 * n; i++) {
		const char *s = va_arg(ap, const char *);
		fields[i] = own(b, strdup(s ? s : ""));
	}
	va_end(ap);
	b->logs = grow(b->logs, &b->cap_logs, b->n_logs + 1, sizeof(*b->logs));
	b->logs[b->n_logs++] = (struct store_log){.fields = fields, .n_fields = n};
}

void stats_attach(const struct stats_batch *b, struct store_finish *f)
{
	f->counts = b->counts;
	f->n_counts = b->n_counts;
	f->logs = b->logs;
	f->n_logs = b->n_logs;
}
