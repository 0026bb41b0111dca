/*
 * stats.c - gather a transaction's hourly counters and decision log
 * entries (doc/REDIS.md) for one store_finish. The batch owns copies of
 * every string, so callers may pass their stack buffers.
 *
 * The copies and the arrays live in memory of the calling thread that is
 * kept from one batch to the next (freed when the thread ends), so that a
 * warm thread counts and logs a message without allocating. A thread has
 * one batch at a time.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "stats.h"

#define STATS_BLOCK 8192          /* bytes per block of strings */
#define STATS_KEEP ((size_t)256 * 1024) /* more than this is given back after a batch */

/* a block of string space: strings are appended, all forgotten at once */
struct stats_block {
	struct stats_block *next;
	size_t size, used;
	char data[];
};

/* one thread's kept memory */
struct stats_mem {
	struct stats_block *blocks; /* the first one is filled first */
	struct stats_block *cur;    /* the one being filled */
	struct store_count *counts;
	size_t cap_counts;
	struct store_log *logs;
	size_t cap_logs;
	const char **fields;        /* the log entries' name/value pointers */
	size_t cap_fields;
};

static pthread_key_t stats_key;
static pthread_once_t stats_once = PTHREAD_ONCE_INIT;

static void stats_mem_free(void *arg)
{
	struct stats_mem *m = arg;

	while (m->blocks != NULL) {
		struct stats_block *next = m->blocks->next;

		free(m->blocks);
		m->blocks = next;
	}
	free(m->counts);
	free(m->logs);
	free(m->fields);
	free(m);
}

static void stats_key_init(void)
{
	if (pthread_key_create(&stats_key, stats_mem_free) != 0) {
		log_msg(LOG_CRIT, NULL, "cannot create the statistics thread key");
		abort();
	}
}

static void *stats_oom(void *p)
{
	if (p == NULL) {
		log_msg(LOG_CRIT, NULL, "out of memory");
		abort();
	}
	return p;
}

static struct stats_mem *stats_mem_get(void)
{
	struct stats_mem *m;

	pthread_once(&stats_once, stats_key_init);
	if ((m = pthread_getspecific(stats_key)) == NULL) {
		m = stats_oom(calloc(1, sizeof(*m)));
		if (pthread_setspecific(stats_key, m) != 0) {
			log_msg(LOG_CRIT, NULL, "cannot keep the statistics memory");
			abort();
		}
	}
	return m;
}

/* room for NEED elements of SIZE in *P (capacity *CAP), kept for later batches */
static void *grow(void *p, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return p;
	size_t ncap = *cap ? *cap * 2 : 32;
	while (ncap < need)
		ncap *= 2;
	p = stats_oom(reallocarray(p, ncap, size));
	*cap = ncap;
	return p;
}

/* LEN + 1 bytes of string space for the batch */
static char *stats_space(struct stats_batch *b, size_t len)
{
	struct stats_mem *m = b->mem;
	struct stats_block *k, **link = m->cur != NULL ? &m->cur->next : &m->blocks;

	/* blocks fill in order: the ones before cur have no room left that counts */
	for (k = m->cur != NULL ? m->cur : m->blocks; k != NULL; link = &k->next, k = k->next)
		if (k->size - k->used > len) {
			char *s = k->data + k->used;

			k->used += len + 1;
			m->cur = k;
			return s;
		}
	size_t size = len + 1 > STATS_BLOCK ? len + 1 : STATS_BLOCK;
	k = stats_oom(malloc(sizeof(*k) + size));
	k->next = NULL;
	k->size = size;
	k->used = len + 1;
	*link = k;
	m->cur = k;
	return k->data;
}

static const char *stats_copy(struct stats_batch *b, const char *s)
{
	size_t len = strlen(s);
	char *d = stats_space(b, len);

	memcpy(d, s, len + 1);
	return d;
}

void stats_init(struct stats_batch *b)
{
	memset(b, 0, sizeof(*b));
	b->mem = stats_mem_get();
	for (struct stats_block *k = b->mem->blocks; k != NULL; k = k->next)
		k->used = 0;
	b->mem->cur = b->mem->blocks;
}

void stats_free(struct stats_batch *b)
{
	struct stats_mem *m = b->mem;
	size_t kept = 0;

	if (m == NULL)
		return;
	/* a huge message's blocks are not kept for ever */
	for (struct stats_block **link = &m->blocks; *link != NULL;) {
		struct stats_block *k = *link;

		if (kept + k->size > STATS_KEEP) {
			*link = k->next;
			free(k);
			continue;
		}
		k->used = 0;
		kept += k->size;
		link = &k->next;
	}
	m->cur = m->blocks;
	memset(b, 0, sizeof(*b));
}

/*
 * The field name: FMT with each %s replaced by the next string argument
 * (field names are made of words and names only, and this runs a dozen
 * times a message: no printf machinery).
 */
static const char *stats_field(struct stats_batch *b, const char *fmt, va_list ap)
{
	const char *args[8];
	size_t len = 0, n = 0;
	const char *f;
	char *d, *out;

	for (f = fmt; *f; f++) {
		if (f[0] == '%' && f[1] == 's' && n < 8) {
			args[n] = va_arg(ap, const char *);
			if (args[n] == NULL)
				args[n] = "";
			len += strlen(args[n++]);
			f++;
		} else {
			len++;
		}
	}
	out = d = stats_space(b, len);
	n = 0;
	for (f = fmt; *f; f++) {
		if (f[0] == '%' && f[1] == 's' && n < 8) {
			size_t l = strlen(args[n]);

			memcpy(d, args[n++], l);
			d += l;
			f++;
		} else {
			*d++ = *f;
		}
	}
	*d = '\0';
	return out;
}

void stats_count(struct stats_batch *b, enum store_count_key key, const char *sender, long by,
		 const char *field_fmt, ...)
{
	const char *field = NULL;
	va_list ap;

	if (by == 0)
		return;
	if (key != COUNT_TOP) {
		va_start(ap, field_fmt);
		field = stats_field(b, field_fmt, ap);
		va_end(ap);
	}
	struct stats_mem *m = b->mem;
	m->counts = grow(m->counts, &m->cap_counts, b->n_counts + 1, sizeof(*m->counts));
	b->counts = m->counts;
	b->counts[b->n_counts++] = (struct store_count){
		.key = key,
		.sender = sender ? stats_copy(b, sender) : NULL,
		.field = field,
		.by = by,
	};
}

void stats_log(struct stats_batch *b, size_t n, ...)
{
	struct stats_mem *m = b->mem;
	va_list ap;

	/* fields of earlier entries are addressed by index until attached */
	m->fields = grow(m->fields, &m->cap_fields, b->n_fields + 2 * n, sizeof(*m->fields));
	va_start(ap, n);
	for (size_t i = 0; i < 2 * n; i++) {
		const char *s = va_arg(ap, const char *);
		m->fields[b->n_fields + i] = stats_copy(b, s ? s : "");
	}
	va_end(ap);
	m->logs = grow(m->logs, &m->cap_logs, b->n_logs + 1, sizeof(*m->logs));
	b->logs = m->logs;
	/* .fields is set by stats_attach: the array may still move */
	b->logs[b->n_logs++] = (struct store_log){.fields = NULL, .n_fields = n};
	b->n_fields += 2 * n;
}

void stats_attach(struct stats_batch *b, struct store_finish *f)
{
	size_t at = 0;

	for (size_t i = 0; i < b->n_logs; i++) {
		b->logs[i].fields = b->mem->fields + at;
		at += 2 * b->logs[i].n_fields;
	}
	f->counts = b->counts;
	f->n_counts = b->n_counts;
	f->logs = b->logs;
	f->n_logs = b->n_logs;
}
