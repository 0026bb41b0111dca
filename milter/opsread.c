/*
 * opsread.c - outboundctl's reading side of the Redis data model
 * (doc/REDIS.md): counters, top senders, rate window usage, velocity,
 * blocks and the decision log, plus the one operator write that belongs
 * with them, deleting a sender's rate windows (opsread_reset). What the
 * commands show is built from these reads in opsview.c.
 *
 * One hiredis connection per handle, made like the milter's: the unix
 * socket wins over host/port, the connect (with AUTH from password_file,
 * the ACL user when set, and SELECT) must finish within timeout_ms.
 * Commands may read more than the milter's do (SCAN, log ranges), so their
 * timeout is timeout_ms but at least one second. Many small reads (one
 * ZCOUNT per window, one HGETALL per hour) go out pipelined in batches.
 *
 * Nothing here changes a key except opsread_reset. Out of memory ends the
 * program (this is a command line tool's module).
 */
#define _GNU_SOURCE /* vasprintf */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "opsread.h"
#include "store.h"

#define OPS_CMD_TIMEOUT_MIN_MS 1000
#define OPS_BATCH 256        /* commands per pipelined batch */
#define OPS_SCAN_COUNT "1000"
#define OPS_LOG_BATCH 500    /* entries per XREVRANGE */

struct opsread {
	redisContext *c; /* NULL after an I/O error */
	const struct config *cfg;
	const char *prefix;
	long long now_ms;
	int timeout_ms;     /* connect */
	int cmd_timeout_ms; /* every command */
};

static char ops_err[512];

const char *opsread_error(void)
{
	return ops_err;
}

static void ops_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void ops_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ops_err, sizeof(ops_err), fmt, ap);
	va_end(ap);
}

/* ---- memory ---------------------------------------------------------------------- */

void ops_oom(void)
{
	fputs("outboundctl: out of memory\n", stderr);
	exit(EXIT_FAILURE);
}

void *ops_grow(void *v, size_t *cap, size_t n, size_t size)
{
	size_t c;

	if (n < *cap)
		return v;
	c = *cap ? 2 * *cap : 16;
	if ((v = realloc(v, c * size)) == NULL)
		ops_oom();
	*cap = c;
	return v;
}

static char *ops_strndup(const char *s, size_t len)
{
	char *d = malloc(len + 1);

	if (d == NULL)
		ops_oom();
	memcpy(d, s, len);
	d[len] = '\0';
	return d;
}

char *ops_strdup(const char *s)
{
	return ops_strndup(s, strlen(s));
}

static char *ops_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *ops_printf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		ops_oom();
	return s;
}

/* ops_glob - S with the SCAN pattern characters * ? [ ] \ escaped, malloc'd */
static char *ops_glob(const char *s)
{
	char *d = malloc(2 * strlen(s) + 1), *p = d;

	if (d == NULL)
		ops_oom();
	for (; *s != '\0'; s++) {
		if (strchr("*?[]\\", *s) != NULL)
			*p++ = '\\';
		*p++ = *s;
	}
	*p = '\0';
	return d;
}

/* ---- times ------------------------------------------------------------------------- */

void ops_hour(long long ms, char out[16])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(out, 16, "%Y%m%d%H", &tm) == 0)
		snprintf(out, 16, "0000000000");
}

static struct timeval ops_tv(long long ms)
{
	struct timeval tv;

	if (ms < 1)
		ms = 1;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
	return tv;
}

/* ---- name -> count lists ---------------------------------------------------------- */

void ops_counts_add(struct ops_counts *c, const char *name, size_t len, long long n)
{
	c->v = ops_grow(c->v, &c->cap, c->n, sizeof(*c->v));
	c->v[c->n].name = ops_strndup(name, len);
	c->v[c->n++].n = n;
}

static int ops_count_by_name(const void *a, const void *b)
{
	return strcmp(((const struct ops_count *)a)->name, ((const struct ops_count *)b)->name);
}

static int ops_count_by_n(const void *a, const void *b)
{
	const struct ops_count *x = a, *y = b;

	if (x->n != y->n)
		return x->n > y->n ? -1 : 1;
	return strcmp(x->name, y->name);
}

void ops_counts_merge(struct ops_counts *c)
{
	size_t i, k = 0;

	if (c->n == 0)
		return;
	qsort(c->v, c->n, sizeof(*c->v), ops_count_by_name);
	for (i = 1; i < c->n; i++) {
		if (strcmp(c->v[i].name, c->v[k].name) == 0) {
			c->v[k].n += c->v[i].n;
			free(c->v[i].name);
		} else {
			c->v[++k] = c->v[i];
		}
	}
	c->n = k + 1;
}

void ops_counts_sort_desc(struct ops_counts *c)
{
	if (c->n > 1)
		qsort(c->v, c->n, sizeof(*c->v), ops_count_by_n);
}

long long ops_counts_get(const struct ops_counts *c, const char *name)
{
	long long n = 0;
	size_t i;

	for (i = 0; i < c->n; i++)
		if (strcmp(c->v[i].name, name) == 0)
			n += c->v[i].n;
	return n;
}

void ops_counts_free(struct ops_counts *c)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		free(c->v[i].name);
	free(c->v);
	memset(c, 0, sizeof(*c));
}

/* ---- usage rows --------------------------------------------------------------------- */

void ops_usage_clear(struct ops_usage *u)
{
	free(u->network);
	free(u->rule);
	free(u->scope);
}

void ops_usages_free(struct ops_usages *u)
{
	size_t i;

	for (i = 0; i < u->n; i++)
		ops_usage_clear(&u->v[i]);
	free(u->v);
	memset(u, 0, sizeof(*u));
}

static int ops_usage_by_name(const void *a, const void *b)
{
	const struct ops_usage *x = a, *y = b;
	int d;

	if ((d = strcmp(x->network, y->network)) != 0)
		return d;
	if ((d = strcmp(x->rule, y->rule)) != 0)
		return d;
	return strcmp(x->scope, y->scope);
}

void ops_usages_unique(struct ops_usages *u)
{
	size_t i, k = 0;

	if (u->n == 0)
		return;
	qsort(u->v, u->n, sizeof(*u->v), ops_usage_by_name);
	for (i = 1; i < u->n; i++) {
		if (ops_usage_by_name(&u->v[i], &u->v[k]) == 0)
			ops_usage_clear(&u->v[i]);
		else
			u->v[++k] = u->v[i];
	}
	u->n = k + 1;
}

static double ops_ratio(long long used, long limit)
{
	if (used <= 0)
		return 0;
	if (limit <= 0)
		return 1e9;
	return (double)used / (double)limit;
}

double ops_usage_ratio(const struct ops_usage *u)
{
	double h, b;

	if (u->def == NULL)
		return 0;
	h = ops_ratio(u->hourly, u->lv.hourly);
	b = u->burst >= 0 ? ops_ratio(u->burst, u->lv.burst) : 0;
	return h > b ? h : b;
}

static int ops_usage_by_load(const void *a, const void *b)
{
	const struct ops_usage *x = a, *y = b;
	double rx = ops_usage_ratio(x), ry = ops_usage_ratio(y);

	if (rx != ry)
		return rx > ry ? -1 : 1;
	if (x->hourly != y->hourly)
		return x->hourly > y->hourly ? -1 : 1;
	if (x->burst != y->burst)
		return x->burst > y->burst ? -1 : 1;
	return ops_usage_by_name(a, b);
}

void ops_usages_sort_busiest(struct ops_usages *u)
{
	if (u->n > 1)
		qsort(u->v, u->n, sizeof(*u->v), ops_usage_by_load);
}

/* ---- log entries ------------------------------------------------------------------- */

const char *ops_entry_get(const struct ops_entry *e, const char *field)
{
	size_t i;

	for (i = 0; i + 1 < e->n_kv; i += 2)
		if (strcmp(e->kv[i], field) == 0)
			return e->kv[i + 1];
	return NULL;
}

static void ops_entry_free(struct ops_entry *e)
{
	size_t i;

	for (i = 0; i < e->n_kv; i++)
		free(e->kv[i]);
	free(e->kv);
}

void ops_entries_free(struct ops_entries *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		ops_entry_free(&l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static bool ops_field_is(const struct ops_entry *e, const char *field, const char *want)
{
	const char *v;

	if (want == NULL)
		return true;
	return (v = ops_entry_get(e, field)) != NULL && strcmp(v, want) == 0;
}

bool ops_entry_match(const struct ops_entry *e, const struct ops_filter *f)
{
	if (f == NULL)
		return true;
	if (f->since_ms > 0 && e->ms < f->since_ms)
		return false;
	if (f->cls != NULL && !ops_field_is(e, "type", "message"))
		return false;
	return ops_field_is(e, "sender", f->sender) && ops_field_is(e, "qid", f->qid) &&
	       ops_field_is(e, "class", f->cls) && ops_field_is(e, "type", f->type);
}

/* ops_id_parse - "MS-SEQ" into its parts; false when it is not one */
static bool ops_id_parse(const char *id, unsigned long long *ms, unsigned long long *seq)
{
	char *end;

	errno = 0;
	*ms = strtoull(id, &end, 10);
	if (end == id || *end != '-' || errno != 0)
		return false;
	id = end + 1;
	*seq = strtoull(id, &end, 10);
	return end != id && *end == '\0' && errno == 0;
}

/* ops_entry_from - a stream entry reply [id, [field, value, ...]] into E */
static bool ops_entry_from(const redisReply *r, struct ops_entry *e)
{
	const redisReply *f;
	unsigned long long ms, seq;
	size_t i;

	memset(e, 0, sizeof(*e));
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_STRING || r->element[0]->len >= sizeof(e->id))
		return false;
	memcpy(e->id, r->element[0]->str, r->element[0]->len);
	e->id[r->element[0]->len] = '\0';
	if (!ops_id_parse(e->id, &ms, &seq))
		return false;
	e->ms = (long long)ms;
	f = r->element[1];
	if (f->type != REDIS_REPLY_ARRAY)
		return true; /* a deleted entry */
	if (f->elements > 0 && (e->kv = calloc(f->elements, sizeof(*e->kv))) == NULL)
		ops_oom();
	for (i = 0; i + 1 < f->elements; i += 2) {
		if (f->element[i]->type != REDIS_REPLY_STRING ||
		    f->element[i + 1]->type != REDIS_REPLY_STRING)
			continue;
		e->kv[e->n_kv++] = ops_strndup(f->element[i]->str, f->element[i]->len);
		e->kv[e->n_kv++] = ops_strndup(f->element[i + 1]->str, f->element[i + 1]->len);
	}
	return true;
}

static void ops_entries_push(struct ops_entries *l, struct ops_entry *e)
{
	l->v = ops_grow(l->v, &l->cap, l->n, sizeof(*l->v));
	l->v[l->n++] = *e;
}

/* ---- connection --------------------------------------------------------------------- */

static void ops_io_error(struct opsread *o, const char *what)
{
	if (o->c != NULL && o->c->err == REDIS_ERR_IO &&
	    (errno == EAGAIN || errno == EWOULDBLOCK))
		ops_fail("redis: %s: no answer within %d ms", what, o->cmd_timeout_ms);
	else if (o->c != NULL)
		ops_fail("redis: %s: %s", what, o->c->errstr[0] ? o->c->errstr : "connection error");
	else
		ops_fail("redis: %s: not connected", what);
	if (o->c != NULL) {
		redisFree(o->c);
		o->c = NULL;
	}
}

/* ops_command - one command (ARGV ends with NULL); NULL on failure, error replies included */
static redisReply *ops_commandv(struct opsread *o, const char **argv)
{
	size_t lens[16];
	redisReply *r;
	int argc;

	for (argc = 0; argc < 16 && argv[argc] != NULL; argc++)
		lens[argc] = strlen(argv[argc]);
	if (o->c == NULL) {
		ops_fail("redis: %s: not connected", argv[0]);
		return NULL;
	}
	if ((r = redisCommandArgv(o->c, argc, argv, lens)) == NULL) {
		ops_io_error(o, argv[0]);
		return NULL;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		ops_fail("redis: %s: %.*s", argv[0], (int)r->len, r->str);
		freeReplyObject(r);
		return NULL;
	}
	return r;
}

#define ops_command(o, ...) ops_commandv((o), (const char *[]){ __VA_ARGS__, NULL })

/* ops_append - queue one command of a pipeline */
static void ops_appendv(struct opsread *o, const char **argv)
{
	size_t lens[16];
	int argc;

	for (argc = 0; argc < 16 && argv[argc] != NULL; argc++)
		lens[argc] = strlen(argv[argc]);
	if (o->c != NULL && redisAppendCommandArgv(o->c, argc, argv, lens) != REDIS_OK)
		ops_oom();
}

#define ops_append(o, ...) ops_appendv((o), (const char *[]){ __VA_ARGS__, NULL })

/*
 * ops_next - the next reply of a pipeline. NULL on an I/O error (the
 * connection is gone). An error reply is returned as such: every reply of
 * a batch must be read.
 */
static redisReply *ops_next(struct opsread *o, const char *what)
{
	void *r = NULL;

	if (o->c == NULL) {
		ops_fail("redis: %s: not connected", what);
		return NULL;
	}
	if (redisGetReply(o->c, &r) != REDIS_OK || r == NULL) {
		ops_io_error(o, what);
		return NULL;
	}
	return r;
}

struct opsread *opsread_open(const struct config *cfg, long long now_ms)
{
	const struct redis_conf *rc = &cfg->redis;
	struct opsread *o;

	if ((o = calloc(1, sizeof(*o))) == NULL)
		ops_oom();
	o->cfg = cfg;
	o->prefix = rc->prefix != NULL ? rc->prefix : "obm:";
	o->now_ms = now_ms;
	o->timeout_ms = rc->timeout_ms > 0 ? rc->timeout_ms : 200;
	o->cmd_timeout_ms = o->timeout_ms > OPS_CMD_TIMEOUT_MIN_MS ? o->timeout_ms
								 : OPS_CMD_TIMEOUT_MIN_MS;
	if ((o->c = store_open(cfg, o->cmd_timeout_ms)) == NULL) {
		ops_fail("%s", store_last_error());
		goto fail;
	}
	return o;
fail:
	opsread_close(o);
	return NULL;
}

void opsread_close(struct opsread *o)
{
	if (o == NULL)
		return;
	if (o->c != NULL)
		redisFree(o->c);
	free(o);
}

void opsread_set_now(struct opsread *o, long long now_ms)
{
	o->now_ms = now_ms;
}

const struct config *opsread_config(const struct opsread *o)
{
	return o->cfg;
}

/* ---- generic reads --------------------------------------------------------------------- */

static long long ops_strtoll(const char *s, size_t len)
{
	char buf[32], *end;
	long long v;

	if (len == 0 || len >= sizeof(buf))
		return 0;
	memcpy(buf, s, len);
	buf[len] = '\0';
	errno = 0;
	v = strtoll(buf, &end, 10);
	if (*end == '\0' && errno == 0)
		return v;
	/* a float score (ZINCRBY) */
	{
		double d = strtod(buf, NULL);

		return (long long)(d >= 0 ? d + 0.5 : d - 0.5);
	}
}

/* ops_pairs - a flat [name, number, ...] reply (HGETALL, WITHSCORES) into OUT */
static void ops_pairs(const redisReply *r, struct ops_counts *out)
{
	size_t i;

	if (r->type != REDIS_REPLY_ARRAY)
		return;
	for (i = 0; i + 1 < r->elements; i += 2) {
		const redisReply *k = r->element[i], *v = r->element[i + 1];

		if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
			continue;
		ops_counts_add(out, k->str, k->len, ops_strtoll(v->str, v->len));
	}
}

/*
 * ops_read_all - run CMD (one of HGETALL, ZREVRANGE 0 N WITHSCORES) on
 * every key of KEYS, pipelined, and add the pairs to OUT
 */
static int ops_read_all(struct opsread *o, char **keys, size_t n, const char *top,
			struct ops_counts *out)
{
	size_t i, k, end;
	redisReply *r;
	int rv = 0;

	for (i = 0; i < n; i = end) {
		end = i + OPS_BATCH < n ? i + OPS_BATCH : n;
		for (k = i; k < end; k++) {
			if (top == NULL)
				ops_append(o, "HGETALL", keys[k]);
			else
				ops_append(o, "ZREVRANGE", keys[k], "0", top, "WITHSCORES");
		}
		for (k = i; k < end; k++) {
			if ((r = ops_next(o, top == NULL ? "HGETALL" : "ZREVRANGE")) == NULL)
				return -1;
			if (r->type == REDIS_REPLY_ERROR) {
				ops_fail("redis: %s: %.*s", keys[k], (int)r->len, r->str);
				rv = -1;
			} else {
				ops_pairs(r, out);
			}
			freeReplyObject(r);
		}
	}
	return rv;
}

/* ops_hour_keys - PREFIX MIDDLE HOUR for the HOURS buckets ending now, newest first */
static char **ops_hour_keys(const struct opsread *o, const char *middle, int hours)
{
	char **keys, hour[16];
	int i;

	if ((keys = calloc((size_t)hours, sizeof(*keys))) == NULL)
		ops_oom();
	for (i = 0; i < hours; i++) {
		ops_hour(o->now_ms - (long long)i * HOUR_MS, hour);
		keys[i] = ops_printf("%s%s%s", o->prefix, middle, hour);
	}
	return keys;
}

static void ops_keys_free(char **keys, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
}

/*
 * ops_scan - every key matching PATTERN (SCAN may repeat one: the caller
 * sorts them out); FN is called per key
 */
static int ops_scan(struct opsread *o, const char *pattern,
		    void (*fn)(void *arg, const char *key, size_t len), void *arg)
{
	char cursor[32] = "0";
	redisReply *r;

	do {
		const redisReply *c, *keys;
		size_t i;

		if ((r = ops_command(o, "SCAN", cursor, "MATCH", pattern, "COUNT",
				     OPS_SCAN_COUNT)) == NULL)
			return -1;
		if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		    (c = r->element[0])->type != REDIS_REPLY_STRING || c->len >= sizeof(cursor) ||
		    (keys = r->element[1])->type != REDIS_REPLY_ARRAY) {
			ops_fail("redis: SCAN: unexpected reply");
			freeReplyObject(r);
			return -1;
		}
		memcpy(cursor, c->str, c->len);
		cursor[c->len] = '\0';
		for (i = 0; i < keys->elements; i++)
			if (keys->element[i]->type == REDIS_REPLY_STRING)
				fn(arg, keys->element[i]->str, keys->element[i]->len);
		freeReplyObject(r);
	} while (strcmp(cursor, "0") != 0);
	return 0;
}

/* ---- counters ----------------------------------------------------------------------- */

int opsread_stats(struct opsread *o, int hours, struct ops_counts *fields,
		  struct ops_counts *top, size_t top_n)
{
	char **hk = ops_hour_keys(o, "{stats}:h:", hours);
	char **tk = ops_hour_keys(o, "{stats}:top:", hours);
	char stop[24];
	int rv;

	/* one bucket: its own top N; several: every sender, to add them up */
	snprintf(stop, sizeof(stop), "%zd", hours == 1 && top_n > 0 ? (ssize_t)top_n - 1 : -1);
	rv = ops_read_all(o, hk, (size_t)hours, NULL, fields);
	if (rv == 0)
		rv = ops_read_all(o, tk, (size_t)hours, stop, top);
	ops_keys_free(hk, (size_t)hours);
	ops_keys_free(tk, (size_t)hours);
	if (rv != 0)
		return -1;
	ops_counts_merge(fields);
	ops_counts_merge(top);
	ops_counts_sort_desc(top);
	while (top_n > 0 && top->n > top_n)
		free(top->v[--top->n].name);
	return 0;
}

int opsread_sender_hours(struct opsread *o, const char *sender, int hours,
			 struct ops_counts *sum, struct ops_counts *now)
{
	char *middle = ops_printf("{s:%s}:h:", sender);
	char **keys = ops_hour_keys(o, middle, hours);
	int rv;

	free(middle);
	rv = ops_read_all(o, keys, 1, NULL, now);
	if (rv == 0)
		rv = ops_read_all(o, keys, (size_t)hours, NULL, sum);
	ops_keys_free(keys, (size_t)hours);
	if (rv != 0)
		return -1;
	ops_counts_merge(sum);
	ops_counts_merge(now);
	return 0;
}

static long long ops_integer(struct opsread *o, redisReply *r)
{
	long long v = -1;

	(void)o;
	if (r == NULL)
		return -1;
	if (r->type == REDIS_REPLY_INTEGER)
		v = r->integer;
	else
		ops_fail("redis: unexpected reply");
	freeReplyObject(r);
	return v;
}

long long opsread_velocity(struct opsread *o, const char *sender)
{
	char *key = ops_printf("%s{s:%s}:vel", o->prefix, sender);
	char min[32];
	long long v;

	snprintf(min, sizeof(min), "(%lld", o->now_ms - HOUR_MS);
	v = ops_integer(o, ops_command(o, "ZCOUNT", key, min, "+inf"));
	free(key);
	return v;
}

long long opsread_relationships(struct opsread *o, const char *sender)
{
	char *key = ops_printf("%s{s:%s}:rel", o->prefix, sender);
	long long v = ops_integer(o, ops_command(o, "ZCARD", key));

	free(key);
	return v;
}

int opsread_block(struct opsread *o, const char *sender, char *reason, size_t size,
		  long long *ttl)
{
	char *key = ops_printf("%s{s:%s}:block", o->prefix, sender);
	redisReply *g, *t;
	int rv = -1;

	ops_append(o, "GET", key);
	ops_append(o, "TTL", key);
	free(key);
	g = ops_next(o, "GET");
	t = g != NULL ? ops_next(o, "TTL") : NULL;
	if (g == NULL || t == NULL) {
		/* the connection is gone */
	} else if (g->type == REDIS_REPLY_NIL) {
		rv = 0;
	} else if (g->type == REDIS_REPLY_STRING && t->type == REDIS_REPLY_INTEGER) {
		snprintf(reason, size, "%.*s", (int)g->len, g->str);
		*ttl = t->integer >= 0 ? t->integer : -1;
		rv = 1;
	} else {
		ops_fail("redis: GET: %.*s", (int)g->len, g->str ? g->str : "unexpected reply");
	}
	if (g != NULL)
		freeReplyObject(g);
	if (t != NULL)
		freeReplyObject(t);
	return rv;
}

static void ops_count_key(void *arg, const char *key, size_t len)
{
	struct ops_counts *c = arg;

	ops_counts_add(c, key, len, 1);
}

long long opsread_blocked_count(struct opsread *o)
{
	char *g = ops_glob(o->prefix);
	char *pattern = ops_printf("%s{s:*}:block", g);
	struct ops_counts keys = { 0 };
	long long n = -1;

	if (ops_scan(o, pattern, ops_count_key, &keys) == 0) {
		ops_counts_merge(&keys);
		n = (long long)keys.n;
	}
	ops_counts_free(&keys);
	free(pattern);
	free(g);
	return n;
}

long long opsread_log_length(struct opsread *o)
{
	char *key = ops_printf("%s{log}", o->prefix);
	long long v = ops_integer(o, ops_command(o, "XLEN", key));

	free(key);
	return v;
}

/* ---- rate windows ------------------------------------------------------------------- */

static const struct limit_rule *ops_rule(const struct config *cfg, const char *name)
{
	size_t i;

	for (i = 0; i < cfg->n_limits; i++)
		if (strcmp(cfg->limits[i].name, name) == 0)
			return &cfg->limits[i];
	return NULL;
}

/*
 * ops_parse_window - KEY (PREFIX{NET}:K:RULE:SCOPE with K one of KINDS)
 * into its parts, pointers into KEY with lengths; false when it is not one
 */
struct ops_wkey {
	const char *net, *rule, *scope;
	size_t net_len, rule_len, scope_len;
	char kind;
};

static bool ops_parse_window(const char *prefix, const char *key, size_t len,
			     const char *kinds, struct ops_wkey *w)
{
	size_t pl = strlen(prefix);
	const char *p, *end = key + len, *close, *colon;

	if (len < pl + 6 || memcmp(key, prefix, pl) != 0 || key[pl] != '{')
		return false;
	p = key + pl + 1;
	if ((close = memchr(p, '}', (size_t)(end - p))) == NULL || close == p ||
	    end - close < 5 || close[1] != ':' || strchr(kinds, close[2]) == NULL ||
	    close[2] == '\0' || close[3] != ':')
		return false;
	/* sender keys ({s:...}) and the fleet's ({stats}, {log}) are not windows */
	if (close - p >= 2 && p[0] == 's' && p[1] == ':')
		return false;
	w->net = p;
	w->net_len = (size_t)(close - p);
	w->kind = close[2];
	w->rule = close + 4;
	/* rule names have no ':' (letters, digits, '.', '-', '_'); scopes may */
	if ((colon = memchr(w->rule, ':', (size_t)(end - w->rule))) == NULL || colon == w->rule)
		return false;
	w->rule_len = (size_t)(colon - w->rule);
	w->scope = colon + 1;
	w->scope_len = (size_t)(end - w->scope);
	return w->scope_len > 0;
}

static void ops_usage_push(struct opsread *o, struct ops_usages *out, char *net, char *rule,
			   char *scope)
{
	struct ops_usage *u;

	out->v = ops_grow(out->v, &out->cap, out->n, sizeof(*out->v));
	u = &out->v[out->n++];
	memset(u, 0, sizeof(*u));
	u->network = net;
	u->rule = rule;
	u->scope = scope;
	u->def = ops_rule(o->cfg, rule);
	u->burst = -1;
}

void opsread_usage_add(struct opsread *o, const char *network, const char *rule,
		       const char *scope, struct ops_usages *out)
{
	ops_usage_push(o, out, ops_strdup(network), ops_strdup(rule), ops_strdup(scope));
}

struct ops_scan_usage {
	struct opsread *o;
	struct ops_usages *out;
	const char *scope; /* NULL: any */
};

static void ops_usage_key(void *arg, const char *key, size_t len)
{
	struct ops_scan_usage *s = arg;
	struct ops_wkey w;

	if (!ops_parse_window(s->o->prefix, key, len, "w", &w))
		return;
	if (s->scope != NULL &&
	    (w.scope_len != strlen(s->scope) || memcmp(w.scope, s->scope, w.scope_len) != 0))
		return;
	ops_usage_push(s->o, s->out, ops_strndup(w.net, w.net_len),
		       ops_strndup(w.rule, w.rule_len), ops_strndup(w.scope, w.scope_len));
}

int opsread_usage_scan(struct opsread *o, const char *network, const char *scope,
		       struct ops_usages *out)
{
	char *gp = ops_glob(o->prefix);
	char *gn = network != NULL ? ops_glob(network) : ops_strdup("*");
	char *gs = scope != NULL ? ops_glob(scope) : ops_strdup("*");
	char *pattern = ops_printf("%s{%s}:w:*:%s", gp, gn, gs);
	struct ops_scan_usage s = { o, out, scope };
	int rv;

	/* "*:SCOPE" also matches longer scopes ending in ":SCOPE": ops_usage_key checks */
	rv = ops_scan(o, pattern, ops_usage_key, &s);
	free(pattern);
	free(gs);
	free(gn);
	free(gp);
	return rv;
}

/* ops_usage_reply - the number of one ZCOUNT reply; -1 when it is not one */
static long long ops_usage_reply(redisReply *r)
{
	long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;

	if (r->type == REDIS_REPLY_ERROR)
		ops_fail("redis: ZCOUNT: %.*s", (int)r->len, r->str);
	freeReplyObject(r);
	return v;
}

#define OPS_EXPIRED_MAX "1000" /* expired reservations looked at per window */

/* the window key of X, KIND 'w' or 'p' (malloc'd) */
static char *ops_window_key(const struct opsread *o, const struct ops_usage *x, char kind)
{
	return ops_printf("%s{%s}:%c:%s:%s", o->prefix, x->network, kind, x->rule, x->scope);
}

/*
 * Reservations that expired unconfirmed (their milter died or lost the
 * message) still sit in the window until a milter's next check of it
 * removes them; they do not count. EXPIRED (a reply array, freed here)
 * lists them; one ZSCORE each finds those inside X's windows.
 */
static int ops_usage_expired(struct opsread *o, struct ops_usage *x, redisReply *expired)
{
	char *key = ops_window_key(o, x, 'w');
	size_t i, n = expired->elements;
	int rv = 0;

	for (i = 0; i < n; i++)
		ops_append(o, "ZSCORE", key,
			   expired->element[i]->type == REDIS_REPLY_STRING ? expired->element[i]->str
									 : "");
	for (i = 0; i < n; i++) {
		redisReply *r = ops_next(o, "ZSCORE");
		double ms;

		if (r == NULL) {
			rv = -1;
			break;
		}
		if (r->type == REDIS_REPLY_STRING && (ms = strtod(r->str, NULL)) > 0) {
			/* windows are (now - length, now] */
			if (ms > (double)(o->now_ms - HOUR_MS) && x->hourly > 0)
				x->hourly--;
			if (x->def != NULL && x->burst > 0 &&
			    ms > (double)(o->now_ms - (long long)x->lv.burst_window * 1000))
				x->burst--;
		}
		freeReplyObject(r);
	}
	free(key);
	freeReplyObject(expired);
	return rv;
}

int opsread_usage_fetch(struct opsread *o, struct ops_usages *u)
{
	size_t i, k, end;
	char now[32];
	int rv = 0;

	snprintf(now, sizeof(now), "%lld", o->now_ms);
	for (i = 0; i < u->n; i = end) {
		redisReply *expired[OPS_BATCH];

		end = i + OPS_BATCH < u->n ? i + OPS_BATCH : u->n;
		for (k = i; k < end; k++) {
			struct ops_usage *x = &u->v[k];
			char *key, *pkey, hmin[32], bmin[32];

			if (x->fetched)
				continue;
			if (x->def != NULL)
				x->lv = ratelimit_effective(x->def, x->network);
			key = ops_window_key(o, x, 'w');
			pkey = ops_window_key(o, x, 'p');
			/* windows are (now - length, now]; later stamps still count */
			snprintf(hmin, sizeof(hmin), "(%lld", o->now_ms - HOUR_MS);
			ops_append(o, "ZCOUNT", key, hmin, "+inf");
			if (x->def != NULL) {
				snprintf(bmin, sizeof(bmin), "(%lld",
					 o->now_ms - (long long)x->lv.burst_window * 1000);
				ops_append(o, "ZCOUNT", key, bmin, "+inf");
			}
			/* pending units whose expiry has come (reserve.lua's test) */
			ops_append(o, "ZRANGEBYSCORE", pkey, "-inf", now, "LIMIT", "0",
				   OPS_EXPIRED_MAX);
			free(key);
			free(pkey);
		}
		for (k = i; k < end; k++) {
			struct ops_usage *x = &u->v[k];
			redisReply *r;

			expired[k - i] = NULL;
			if (x->fetched)
				continue;
			if ((r = ops_next(o, "ZCOUNT")) == NULL)
				return -1;
			if ((x->hourly = ops_usage_reply(r)) < 0)
				rv = -1;
			if (x->def != NULL) {
				if ((r = ops_next(o, "ZCOUNT")) == NULL)
					return -1;
				if ((x->burst = ops_usage_reply(r)) < 0)
					rv = -1;
			}
			if ((r = ops_next(o, "ZRANGEBYSCORE")) == NULL)
				return -1;
			if (r->type == REDIS_REPLY_ARRAY && r->elements > 0)
				expired[k - i] = r;
			else
				freeReplyObject(r);
			x->fetched = true;
		}
		/* rare: a milter died holding reservations */
		for (k = i; k < end; k++)
			if (expired[k - i] != NULL && ops_usage_expired(o, &u->v[k], expired[k - i]) != 0) {
				for (k++; k < end; k++)
					if (expired[k - i] != NULL)
						freeReplyObject(expired[k - i]);
				return -1;
			}
	}
	return rv;
}

/* ---- decision log -------------------------------------------------------------------- */

/* ops_id_before - the largest stream id below ID, into OUT; false for 0-0 */
static bool ops_id_before(const char *id, char *out, size_t size)
{
	unsigned long long ms, seq;

	if (!ops_id_parse(id, &ms, &seq))
		return false;
	if (seq > 0)
		snprintf(out, size, "%llu-%llu", ms, seq - 1);
	else if (ms > 0)
		snprintf(out, size, "%llu-%llu", ms - 1, (unsigned long long)-1);
	else
		return false;
	return true;
}

int opsread_log_back(struct opsread *o, const struct ops_filter *f, size_t want,
		     size_t max_scan, struct ops_entries *out)
{
	char *key = ops_printf("%s{log}", o->prefix);
	char end[48] = "+", start[48] = "-", count[24];
	size_t scanned = 0;
	int rv = 0;

	if (f != NULL && f->since_ms > 0)
		snprintf(start, sizeof(start), "%lld", f->since_ms);
	for (;;) {
		size_t batch = OPS_LOG_BATCH, i;
		redisReply *r;

		if (max_scan > 0 && max_scan - scanned < batch)
			batch = max_scan - scanned;
		if (batch == 0)
			break;
		snprintf(count, sizeof(count), "%zu", batch);
		if ((r = ops_command(o, "XREVRANGE", key, end, start, "COUNT", count)) == NULL) {
			rv = -1;
			break;
		}
		if (r->type != REDIS_REPLY_ARRAY) {
			freeReplyObject(r);
			ops_fail("redis: XREVRANGE: unexpected reply");
			rv = -1;
			break;
		}
		for (i = 0; i < r->elements && (want == 0 || out->n < want); i++) {
			struct ops_entry e;

			if (!ops_entry_from(r->element[i], &e))
				continue;
			snprintf(end, sizeof(end), "%s", e.id);
			if (ops_entry_match(&e, f))
				ops_entries_push(out, &e);
			else
				ops_entry_free(&e);
		}
		scanned += r->elements;
		i = r->elements;
		freeReplyObject(r);
		if (i < batch || (want > 0 && out->n >= want) || !ops_id_before(end, end, sizeof(end)))
			break;
	}
	free(key);
	return rv;
}

int opsread_log_last_id(struct opsread *o, char *id, size_t size)
{
	char *key = ops_printf("%s{log}", o->prefix);
	redisReply *r = ops_command(o, "XREVRANGE", key, "+", "-", "COUNT", "1");
	struct ops_entry e;
	int rv = -1;

	free(key);
	if (r == NULL)
		return -1;
	if (r->type == REDIS_REPLY_ARRAY) {
		snprintf(id, size, "0-0");
		if (r->elements > 0 && ops_entry_from(r->element[0], &e)) {
			snprintf(id, size, "%s", e.id);
			ops_entry_free(&e);
		}
		rv = 0;
	} else {
		ops_fail("redis: XREVRANGE: unexpected reply");
	}
	freeReplyObject(r);
	return rv;
}

int opsread_log_wait(struct opsread *o, char *last_id, size_t size, long block_ms,
		     const struct ops_filter *f, struct ops_entries *out)
{
	char *key = ops_printf("%s{log}", o->prefix);
	char block[24];
	redisReply *r;
	int n = 0;
	size_t i;

	snprintf(block, sizeof(block), "%ld", block_ms);
	/* the reply may take the whole BLOCK time */
	if (o->c != NULL)
		redisSetTimeout(o->c, ops_tv(block_ms + o->cmd_timeout_ms));
	r = ops_command(o, "XREAD", "COUNT", "1000", "BLOCK", block, "STREAMS", key, last_id);
	if (o->c != NULL)
		redisSetTimeout(o->c, ops_tv(o->cmd_timeout_ms));
	free(key);
	if (r == NULL)
		return -1;
	/* nil: nothing new; else [[key, [entries]]] */
	if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
	    r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2) {
		const redisReply *l = r->element[0]->element[1];

		for (i = 0; l->type == REDIS_REPLY_ARRAY && i < l->elements; i++) {
			struct ops_entry e;

			if (!ops_entry_from(l->element[i], &e))
				continue;
			n++;
			snprintf(last_id, size, "%s", e.id);
			if (ops_entry_match(&e, f))
				ops_entries_push(out, &e);
			else
				ops_entry_free(&e);
		}
	}
	freeReplyObject(r);
	return n;
}

/* ---- reset ---------------------------------------------------------------------------- */

struct ops_reset {
	struct opsread *o;
	const char *sender;
	struct ops_counts keys;
};

static void ops_reset_key(void *arg, const char *key, size_t len)
{
	struct ops_reset *s = arg;
	const struct limit_rule *rule;
	struct ops_wkey w;
	char name[128];

	if (!ops_parse_window(s->o->prefix, key, len, "wp", &w) ||
	    w.scope_len != strlen(s->sender) || memcmp(w.scope, s->sender, w.scope_len) != 0 ||
	    w.rule_len >= sizeof(name))
		return;
	memcpy(name, w.rule, w.rule_len);
	name[w.rule_len] = '\0';
	/* a rule configured with another scope counts something else under this name */
	if ((rule = ops_rule(s->o->cfg, name)) != NULL && rule->scope != SCOPE_SENDER)
		return;
	ops_counts_add(&s->keys, key, len, 0);
}

long long opsread_reset(struct opsread *o, const char *sender, const char *network)
{
	char *gp = ops_glob(o->prefix);
	char *gn = network != NULL ? ops_glob(network) : ops_strdup("*");
	char *gs = ops_glob(sender);
	char *pattern = ops_printf("%s{%s}:[wp]:*:%s", gp, gn, gs);
	struct ops_reset s = { .o = o, .sender = sender };
	long long deleted = 0;
	size_t i, k, end;

	if (ops_scan(o, pattern, ops_reset_key, &s) != 0)
		deleted = -1;
	ops_counts_merge(&s.keys);
	for (i = 0; deleted >= 0 && i < s.keys.n; i = end) {
		end = i + OPS_BATCH < s.keys.n ? i + OPS_BATCH : s.keys.n;
		for (k = i; k < end; k++)
			ops_append(o, "DEL", s.keys.v[k].name);
		for (k = i; k < end; k++) {
			redisReply *r = ops_next(o, "DEL");

			if (r == NULL) {
				deleted = -1;
				break;
			}
			/* refused (NOPERM for a read-only user): said, the batch still read */
			if (r->type == REDIS_REPLY_ERROR && deleted >= 0) {
				ops_fail("redis: DEL: %.*s", (int)r->len, r->str);
				deleted = -1;
			} else if (r->type == REDIS_REPLY_INTEGER && deleted >= 0) {
				deleted += r->integer;
			}
			freeReplyObject(r);
		}
	}
	ops_counts_free(&s.keys);
	free(pattern);
	free(gs);
	free(gn);
	free(gp);
	return deleted;
}
