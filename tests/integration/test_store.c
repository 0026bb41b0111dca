/*
 * test_store.c - store.c and reserve.lua against a real redis-server that
 * the test starts itself (redis_helper.h): key names and TTLs, reserve /
 * commit / release, all-or-nothing reservations over several rules, refusal
 * counters, the window arithmetic compared with ratelimit.c, expiry of
 * abandoned reservations, the commit of a reservation that expired first
 * (counted at its admission time), binary-safe keys, NOSCRIPT, AUTH/ACL/SELECT,
 * reconnects, exactness under concurrent threads, and a Redis that is down
 * or stuck.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <signal.h>

#include "redis_helper.h"
#include "redis_raw.h"

#include "config.h"
#include "ratelimit.h"
#include "store.h"

#define T0 1893456000000LL /* 2030-01-01 00:00:00 UTC, in ms */
#define T0_HOUR "2030010100"


/* ---- helpers ---------------------------------------------------------- */

static void cfg_init(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->redis.socket = srv.sock;
	cfg->redis.timeout_ms = 200;
	cfg->redis.prefix = prefix;
	cfg->reservation_ttl = 60;
	cfg->generation = 1;
	cfg->mode = MODE_ENFORCE;
}

static struct store_unit unit_of(const char *net, const char *rule, const char *scope,
				 const char *member, long hourly, long burst, long window)
{
	struct store_unit u = { .network = net, .rule = rule, .scope = scope,
				.scope_len = strlen(scope), .member = member,
				.lv = { hourly, burst, window } };

	return u;
}

/* PREFIX{NET}:KIND:RULE:SCOPE as store.c documents it */
static size_t key_of(char *buf, size_t size, const char *net, char kind, const char *rule,
		     const char *scope, size_t scope_len)
{
	int n = snprintf(buf, size, "%s{%s}:%c:%s:", prefix, net, kind, rule);

	assert_true(n > 0 && (size_t)n + scope_len < size);
	memcpy(buf + n, scope, scope_len);
	buf[n + scope_len] = '\0';
	return (size_t)n + scope_len;
}

static long long zscore(const char *key, size_t klen, const char *member)
{
	return raw_int("ZSCORE %b %s", key, klen, member);
}

static long long zcard(const char *key, size_t klen)
{
	return raw_int("ZCARD %b", key, klen);
}

static long long pttl(const char *key, size_t klen)
{
	return raw_int("PTTL %b", key, klen);
}

/* a field of INFO, as a number */
static long long info_field(const char *section, const char *name)
{
	redisReply *r = raw_cmd("INFO %s", section);
	char *p = strstr(r->str, name);
	long long v;

	assert_non_null(p);
	v = atoll(p + strlen(name) + 1);
	freeReplyObject(r);
	return v;
}

static int reserve1(const struct config *cfg, struct store_unit *u, long long now,
		    struct store_verdict *v)
{
	return store_reserve(cfg, u, 1, now, v);
}

/* the Redis server's clock (TIME), in ms */
static long long server_ms(void)
{
	redisReply *r = raw_cmd("TIME");
	long long t;

	assert_int_equal(r->elements, 2);
	t = atoll(r->element[0]->str) * 1000 + atoll(r->element[1]->str) / 1000;
	freeReplyObject(r);
	return t;
}

/* the admission times of a window, ascending; *N gets the count */
static long long *window_times(const char *key, size_t klen, size_t *n)
{
	redisReply *r = raw_cmd("ZRANGE %b 0 -1 WITHSCORES", key, klen);
	long long *t;
	size_t i;

	assert_int_equal(r->type, REDIS_REPLY_ARRAY);
	*n = r->elements / 2;
	t = calloc(*n + 1, sizeof(*t));
	assert_non_null(t);
	for (i = 0; i < *n; i++)
		t[i] = atoll(r->element[2 * i + 1]->str);
	freeReplyObject(r);
	return t;
}

/* ---- basics ----------------------------------------------------------- */

static void test_reserve_commit_release(void **state)
{
	struct config cfg;
	struct store_unit u = unit_of("gmail", "basic", "alice@example.org", "q1.1", 100, 10, 60);
	struct store_unit two[2];
	struct store_verdict v;
	char w[256], p[256];
	size_t wl, pl;
	long long t;

	(void)state;
	cfg_init(&cfg);
	wl = key_of(w, sizeof(w), "gmail", 'w', "basic", "alice@example.org", 17);
	pl = key_of(p, sizeof(p), "gmail", 'p', "basic", "alice@example.org", 17);

	assert_int_equal(reserve1(&cfg, &u, T0, &v), STORE_OK);
	assert_int_equal(v.unit, -1);
	assert_int_equal(v.which, WINDOW_ADMIT);
	assert_int_equal(v.admitted_ms, T0);
	u.admitted_ms = v.admitted_ms;
	/* admitted at T0, pending until T0 + reservation_ttl */
	assert_int_equal(zscore(w, wl, "q1.1"), T0);
	assert_int_equal(zscore(p, pl, "q1.1"), T0 + 60000);
	t = pttl(w, wl);
	assert_true(t > 3660000 - 5000 && t <= 3660000);
	t = pttl(p, pl);
	assert_true(t > 120000 - 5000 && t <= 120000);

	/* commit: no longer pending, still counted */
	assert_int_equal(store_commit(&cfg, &u, 1), STORE_OK);
	assert_int_equal(zscore(p, pl, "q1.1"), -1);
	assert_int_equal(zscore(w, wl, "q1.1"), T0);

	/* release: gone from both */
	u.member = "q2.1";
	assert_int_equal(reserve1(&cfg, &u, T0 + 1, &v), STORE_OK);
	assert_int_equal(zscore(p, pl, "q2.1"), T0 + 60001);
	assert_int_equal(store_release(&cfg, &u, 1), STORE_OK);
	assert_int_equal(zscore(w, wl, "q2.1"), -1);
	assert_int_equal(zscore(p, pl, "q2.1"), -1);
	assert_int_equal(zcard(w, wl), 1);

	/* commit and release take units of several networks in one call */
	two[0] = unit_of("gmail", "basic", "bob@example.org", "q3.1", 100, 10, 60);
	two[1] = unit_of("yahoo", "basic", "bob@example.org", "q3.1", 100, 10, 60);
	assert_int_equal(reserve1(&cfg, &two[0], T0 + 2, &v), STORE_OK);
	assert_int_equal(reserve1(&cfg, &two[1], T0 + 2, &v), STORE_OK);
	assert_int_equal(store_release(&cfg, two, 2), STORE_OK);
	wl = key_of(w, sizeof(w), "yahoo", 'w', "basic", "bob@example.org", 15);
	assert_int_equal(raw_int("EXISTS %b", w, wl), 0);
	wl = key_of(w, sizeof(w), "gmail", 'w', "basic", "bob@example.org", 15);
	assert_int_equal(raw_int("EXISTS %b", w, wl), 0);

	/* nothing to do is fine */
	assert_int_equal(store_reserve(&cfg, NULL, 0, T0, &v), STORE_OK);
	assert_int_equal(v.unit, -1);
	assert_int_equal(store_commit(&cfg, NULL, 0), STORE_OK);
	assert_int_equal(store_release(&cfg, NULL, 0), STORE_OK);
	assert_int_equal(store_ping(&cfg), STORE_OK);
}

/* rule A has room, rule B is full: nothing is admitted anywhere */
static void test_refusal_admits_nothing(void **state)
{
	struct config cfg;
	struct store_unit u[2];
	struct store_verdict v;
	char wa[256], pa[256], wb[256], c[256];
	size_t wal, pal, wbl;

	(void)state;
	cfg_init(&cfg);
	wal = key_of(wa, sizeof(wa), "net1", 'w', "ruleA", "s", 1);
	pal = key_of(pa, sizeof(pa), "net1", 'p', "ruleA", "s", 1);
	wbl = key_of(wb, sizeof(wb), "net1", 'w', "ruleB", "s", 1);
	snprintf(c, sizeof(c), "%s{net1}:c:%s", prefix, T0_HOUR);

	u[0] = unit_of("net1", "ruleA", "s", "m1", 100, 10, 60);
	u[1] = unit_of("net1", "ruleB", "s", "m1", 100, 1, 60);
	assert_int_equal(store_reserve(&cfg, u, 2, T0, &v), STORE_OK);
	assert_int_equal(zcard(wa, wal), 1);
	assert_int_equal(zcard(wb, wbl), 1);

	u[0].member = u[1].member = "m2";
	assert_int_equal(store_reserve(&cfg, u, 2, T0 + 100, &v), STORE_OVER);
	assert_int_equal(v.unit, 1);
	assert_int_equal(v.which, WINDOW_OVER_BURST);
	assert_int_equal(v.used, 1);
	assert_int_equal(v.limit, 1);
	assert_int_equal(v.retry_ms, 60000 - 100);
	assert_int_equal(zcard(wa, wal), 1); /* A unchanged */
	assert_int_equal(zcard(pa, pal), 1);
	assert_int_equal(zscore(wa, wal, "m2"), -1);
	assert_int_equal(zscore(wb, wbl, "m2"), -1);
	/* a refusal writes nothing at all (the milter counts it later) */
	assert_int_equal(raw_int("EXISTS %s", c), 0);

	/* same with the full rule first */
	u[0] = unit_of("net1", "ruleB", "s", "m3", 100, 1, 60);
	u[1] = unit_of("net1", "ruleA", "s", "m3", 100, 10, 60);
	assert_int_equal(store_reserve(&cfg, u, 2, T0 + 200, &v), STORE_OVER);
	assert_int_equal(v.unit, 0);
	assert_int_equal(zcard(wa, wal), 1);

	/* again */
	assert_int_equal(store_reserve(&cfg, u, 2, T0 + 300, &v), STORE_OVER);
	assert_int_equal(v.unit, 0);
	assert_int_equal(zcard(wa, wal), 1);

	/* an admission counts nothing */
	u[0] = unit_of("net1", "ruleA", "s", "m4", 100, 10, 60);
	assert_int_equal(store_reserve(&cfg, u, 1, T0 + 400, &v), STORE_OK);
	assert_int_equal(zcard(wa, wal), 2);
	assert_int_equal(raw_int("EXISTS %s", c), 0);
}

/* two units on the same window in one call must both fit */
static void test_same_window_twice(void **state)
{
	struct config cfg;
	struct store_unit u[2];
	struct store_verdict v;
	char w[256];
	size_t wl;

	(void)state;
	cfg_init(&cfg);
	wl = key_of(w, sizeof(w), "net2", 'w', "dup", "s", 1);
	u[0] = unit_of("net2", "dup", "s", "a", 100, 1, 60);
	u[1] = unit_of("net2", "dup", "s", "b", 100, 1, 60);
	assert_int_equal(store_reserve(&cfg, u, 2, T0, &v), STORE_OVER);
	assert_int_equal(v.unit, 1);
	assert_int_equal(v.used, 1);
	assert_int_equal(v.retry_ms, 60000);
	assert_int_equal(raw_int("EXISTS %b", w, wl), 0);
	u[0].lv.burst = u[1].lv.burst = 2;
	assert_int_equal(store_reserve(&cfg, u, 2, T0, &v), STORE_OK);
	assert_int_equal(zcard(w, wl), 2);
}

/* the limit is not part of the key: changing it keeps the history */
static void test_limit_not_in_key(void **state)
{
	struct config cfg;
	struct store_unit u = unit_of("net3", "chg", "x", "", 100, 10, 60);
	struct store_verdict v;
	char m[32];
	int i;

	(void)state;
	cfg_init(&cfg);
	for (i = 0; i < 5; i++) {
		snprintf(m, sizeof(m), "m%d", i);
		u.member = m;
		assert_int_equal(reserve1(&cfg, &u, T0 + i, &v), STORE_OK);
	}
	u.member = "next";
	u.lv.burst = 5;
	assert_int_equal(reserve1(&cfg, &u, T0 + 10, &v), STORE_OVER);
	assert_int_equal(v.which, WINDOW_OVER_BURST);
	assert_int_equal(v.used, 5);
	assert_int_equal(v.limit, 5);
	assert_int_equal(v.retry_ms, 60000 - 10);
	u.lv.burst = 10;
	u.lv.hourly = 5;
	assert_int_equal(reserve1(&cfg, &u, T0 + 10, &v), STORE_OVER);
	assert_int_equal(v.which, WINDOW_OVER_HOURLY);
	assert_int_equal(v.used, 5);
	assert_int_equal(v.retry_ms, 3600000 - 10);
	u.lv.hourly = 6;
	u.lv.burst = 6;
	assert_int_equal(reserve1(&cfg, &u, T0 + 10, &v), STORE_OK);
	u.member = "after";
	assert_int_equal(reserve1(&cfg, &u, T0 + 11, &v), STORE_OVER);
	assert_int_equal(v.used, 6);
}

/* ---- window arithmetic ------------------------------------------------- */

static void test_burst_window(void **state)
{
	struct config cfg;
	struct store_unit u = unit_of("net4", "burst", "s", "", 1000, 10, 2);
	struct store_verdict v;
	char m[32];
	int i;

	(void)state;
	cfg_init(&cfg);
	for (i = 0; i < 10; i++) {
		snprintf(m, sizeof(m), "a%d", i);
		u.member = m;
		assert_int_equal(reserve1(&cfg, &u, T0, &v), STORE_OK);
		assert_int_equal(store_commit(&cfg, &u, 1), STORE_OK);
	}
	u.member = "a10";
	assert_int_equal(reserve1(&cfg, &u, T0, &v), STORE_OVER);
	assert_int_equal(v.which, WINDOW_OVER_BURST);
	assert_int_equal(v.used, 10);
	assert_int_equal(v.limit, 10);
	assert_int_equal(v.retry_ms, 2000);
	assert_int_equal(reserve1(&cfg, &u, T0 + 1999, &v), STORE_OVER);
	assert_int_equal(v.retry_ms, 1);
	/* exactly burst_window later the first ten have left (half-open window) */
	for (i = 10; i < 20; i++) {
		snprintf(m, sizeof(m), "a%d", i);
		u.member = m;
		assert_int_equal(reserve1(&cfg, &u, T0 + 2000, &v), STORE_OK);
	}
	u.member = "a20";
	assert_int_equal(reserve1(&cfg, &u, T0 + 2000, &v), STORE_OVER);
}

static void test_hourly_across_bursts(void **state)
{
	struct config cfg;
	struct store_unit u = unit_of("net5", "hour", "s", "", 25, 10, 60);
	struct store_verdict v;
	int k, i, admitted = 0;
	char m[32];

	(void)state;
	cfg_init(&cfg);
	for (k = 0; k < 5; k++) {
		for (i = 0; i < 12; i++) {
			snprintf(m, sizeof(m), "h%d.%d", k, i);
			u.member = m;
			if (reserve1(&cfg, &u, T0 + k * 60000LL, &v) == STORE_OK) {
				assert_int_equal(store_commit(&cfg, &u, 1), STORE_OK);
				admitted++;
				continue;
			}
			if (admitted < 25 && i < 10)
				fail_msg("refused at %d.%d with %d admitted", k, i, admitted);
			if (admitted >= 25) {
				assert_int_equal(v.which, WINDOW_OVER_HOURLY);
				assert_int_equal(v.used, 25);
				assert_int_equal(v.limit, 25);
				assert_int_equal(v.retry_ms, 3600000 - k * 60000LL);
			} else {
				assert_int_equal(v.which, WINDOW_OVER_BURST);
			}
		}
	}
	assert_int_equal(admitted, 25);
	/* one hour after the first ten, they have left the hourly window */
	u.member = "late1";
	assert_int_equal(reserve1(&cfg, &u, T0 + 3600000 - 1, &v), STORE_OVER);
	assert_int_equal(reserve1(&cfg, &u, T0 + 3600000, &v), STORE_OK);
}

/* ---- Redis against ratelimit.c over a random sequence ------------------- */

struct model_unit {
	long long t;
	long long expiry; /* 0 once committed */
	char member[16];
};

struct model {
	struct model_unit *u;
	size_t n;
};

static void model_expire(struct model *m, long long now)
{
	size_t i, k = 0;

	for (i = 0; i < m->n; i++)
		if (m->u[i].expiry == 0 || m->u[i].expiry > now)
			m->u[k++] = m->u[i];
	m->n = k;
}

static void model_remove(struct model *m, const char *member)
{
	size_t i, k = 0;

	for (i = 0; i < m->n; i++)
		if (strcmp(m->u[i].member, member) != 0)
			m->u[k++] = m->u[i];
	m->n = k;
}

/*
 * oracle_admits - the limit's definition, written out here rather than
 * taken from ratelimit.c: a unit may be admitted at NOW when fewer than
 * burst units were admitted after NOW - burst_window and fewer than hourly
 * after NOW - 1 hour (a unit exactly one window old no longer counts).
 * T holds the N admission times that count (committed or still reserved).
 */
static bool oracle_admits(const long long *t, size_t n, long long now, struct limit_values lv)
{
	long in_burst = 0, in_hour = 0;

	for (size_t j = 0; j < n; j++) {
		in_burst += t[j] > now - lv.burst_window * 1000LL;
		in_hour += t[j] > now - HOUR_MS;
	}
	return in_burst < lv.burst && in_hour < lv.hourly;
}

/* ratelimit.c's verdict for one rule, with the used count for comparison */
static enum window_verdict model_check(const struct model *m, long long now,
				       struct limit_values lv, long *used, long long *retry)
{
	long long *t = calloc(m->n + 1, sizeof(*t));
	enum window_verdict w;
	long long len;
	size_t i;

	assert_non_null(t);
	for (i = 0; i < m->n; i++)
		t[i] = m->u[i].t;
	w = ratelimit_window_check(t, m->n, now, lv, retry);
	/* the code under test and the definition agree, at every step */
	if ((w == WINDOW_ADMIT) != oracle_admits(t, m->n, now, lv))
		fail_msg("at %lld: ratelimit.c says %d, the definition %s", now, w,
			 oracle_admits(t, m->n, now, lv) ? "admit" : "refuse");
	len = w == WINDOW_OVER_HOURLY ? HOUR_MS : lv.burst_window * 1000LL;
	*used = 0;
	for (i = 0; i < m->n; i++)
		*used += t[i] > now - len;
	free(t);
	return w;
}

static uint64_t rng_state;

static uint64_t rng_next(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void test_random_against_limits(void **state)
{
	enum { STEPS = 3000 };
	struct limit_values lva = { 30, 5, 10 }, lvb = { 45, 8, 30 };
	struct model ma = { calloc(STEPS, sizeof(struct model_unit)), 0 };
	struct model mb = { calloc(STEPS, sizeof(struct model_unit)), 0 };
	struct config cfg;
	long long now = T0;
	size_t step, admitted = 0, refused = 0, i, n;
	char wa[256];
	size_t wal;
	long long *times;

	(void)state;
	assert_non_null(ma.u);
	assert_non_null(mb.u);
	cfg_init(&cfg);
	cfg.reservation_ttl = 5;
	wal = key_of(wa, sizeof(wa), "net6", 'w', "randA", "s", 1);
	rng_state = 0x2545f4914f6cdd1dULL;
	for (step = 0; step < STEPS; step++) {
		struct store_unit u[2];
		struct store_verdict v;
		enum window_verdict ea, eb;
		long useda, usedb;
		long long ra = 0, rb = 0;
		char member[16];
		int rv, action;

		/* mostly small steps (many bursts refused), sometimes long gaps */
		if (rng_next() % 50 == 0)
			now += (long long)(rng_next() % 600000);
		else
			now += (long long)(rng_next() % 1500);
		snprintf(member, sizeof(member), "s%zu", step);
		u[0] = unit_of("net6", "randA", "s", member, lva.hourly, lva.burst, lva.burst_window);
		u[1] = unit_of("net6", "randB", "s", member, lvb.hourly, lvb.burst, lvb.burst_window);

		model_expire(&ma, now);
		model_expire(&mb, now);
		ea = model_check(&ma, now, lva, &useda, &ra);
		eb = model_check(&mb, now, lvb, &usedb, &rb);

		rv = store_reserve(&cfg, u, 2, now, &v);
		u[0].admitted_ms = u[1].admitted_ms = v.admitted_ms;
		if (ea != WINDOW_ADMIT || eb != WINDOW_ADMIT) {
			int which = ea != WINDOW_ADMIT ? 0 : 1;

			if (rv != STORE_OVER || v.unit != which ||
			    v.which != (which == 0 ? ea : eb) ||
			    v.used != (which == 0 ? useda : usedb) ||
			    v.limit != (which == 0 ? (ea == WINDOW_OVER_HOURLY ? lva.hourly : lva.burst)
						   : (eb == WINDOW_OVER_HOURLY ? lvb.hourly : lvb.burst)) ||
			    v.retry_ms != (which == 0 ? ra : rb))
				fail_msg("step %zu: redis rv %d unit %d which %d used %ld retry %lld; "
					 "ratelimit.c unit %d which %d used %ld retry %lld", step, rv,
					 v.unit, v.which, v.used, v.retry_ms, which,
					 which == 0 ? ea : eb, which == 0 ? useda : usedb,
					 which == 0 ? ra : rb);
			refused++;
			continue;
		}
		if (rv != STORE_OK)
			fail_msg("step %zu: redis rv %d (%s) but ratelimit.c admits", step, rv,
				 store_last_error());
		assert_int_equal(v.admitted_ms, now);
		admitted++;
		ma.u[ma.n] = (struct model_unit){ now, now + 5000, "" };
		snprintf(ma.u[ma.n++].member, sizeof(ma.u[0].member), "%s", member);
		mb.u[mb.n] = (struct model_unit){ now, now + 5000, "" };
		snprintf(mb.u[mb.n++].member, sizeof(mb.u[0].member), "%s", member);

		action = (int)(rng_next() % 10);
		if (action < 6) {
			assert_int_equal(store_commit(&cfg, u, 2), STORE_OK);
			ma.u[ma.n - 1].expiry = 0;
			mb.u[mb.n - 1].expiry = 0;
		} else if (action < 8) {
			assert_int_equal(store_release(&cfg, u, 2), STORE_OK);
			model_remove(&ma, member);
			model_remove(&mb, member);
		} /* else abandoned: expires after reservation_ttl */
	}
	/* both sides agree on the window itself too (past the last expiries) */
	{
		struct store_unit probe = unit_of("net6", "randA", "s", "probe", 0, 0, 10);
		struct store_verdict v;

		now += 10000;
		assert_int_equal(store_reserve(&cfg, &probe, 1, now, &v), STORE_OVER);
		model_expire(&ma, now);
	}
	times = window_times(wa, wal, &n);
	{
		size_t live = 0;

		for (i = 0; i < ma.n; i++)
			live += ma.u[i].t > now - HOUR_MS;
		assert_int_equal(n, live);
	}
	free(times);
	printf("random sequence: %d steps, %zu admitted, %zu refused, redis == ratelimit.c\n",
	       STEPS, admitted, refused);
	assert_true(admitted > 100);
	assert_true(refused > 100);
	free(ma.u);
	free(mb.u);
}

/* a reservation nobody commits or releases stops counting after its TTL */
static void test_abandoned_reservation_expires(void **state)
{
	struct config cfg;
	struct store_unit u = unit_of("net7", "ttl", "s", "old", 100, 1, 60);
	struct store_verdict v;
	char w[256], p[256];
	size_t wl, pl;

	(void)state;
	cfg_init(&cfg);
	cfg.reservation_ttl = 1;
	wl = key_of(w, sizeof(w), "net7", 'w', "ttl", "s", 1);
	pl = key_of(p, sizeof(p), "net7", 'p', "ttl", "s", 1);
	assert_int_equal(reserve1(&cfg, &u, T0, &v), STORE_OK);
	assert_int_equal(zscore(p, pl, "old"), T0 + 1000);
	u.member = "new";
	assert_int_equal(reserve1(&cfg, &u, T0 + 999, &v), STORE_OVER);
	assert_int_equal(zscore(w, wl, "old"), T0);
	assert_int_equal(reserve1(&cfg, &u, T0 + 1001, &v), STORE_OK);
	assert_int_equal(zscore(w, wl, "old"), -1);
	assert_int_equal(zscore(p, pl, "old"), -1);
	assert_int_equal(zscore(w, wl, "new"), T0 + 1001);
	/* a committed one is not expired */
	assert_int_equal(store_commit(&cfg, &u, 1), STORE_OK);
	u.member = "newer";
	assert_int_equal(reserve1(&cfg, &u, T0 + 5000, &v), STORE_OVER);
	assert_int_equal(zscore(w, wl, "new"), T0 + 1001);
}

/*
 * A message slower than reservation_ttl: its pending unit expires and
 * another reservation on the same window drops it; the commit must count
 * it all the same, at its admission time, in a window that keeps a TTL.
 */
/*
 * store_renew keeps a held unit pending past its first expiry (server
 * clock), so that another reservation on the window still counts it;
 * it never brings an expiry forward and leaves committed, released and
 * unknown members alone; a unit no longer renewed expires as before.
 */
static void test_renew(void **state)
{
	struct config cfg;
	struct store_unit held = unit_of("net11", "renew", "s", "held", 2, 10, 60);
	struct store_unit other = unit_of("net11", "renew", "s", "other", 2, 10, 60);
	struct store_unit late = unit_of("net11", "renew", "s", "late", 2, 10, 60);
	struct store_unit gone = unit_of("net11", "renew", "s", "gone", 2, 10, 60);
	struct store_verdict v;
	char w[256], p[256];
	size_t wl, pl;
	long long before, after;

	(void)state;
	cfg_init(&cfg);
	cfg.reservation_ttl = 1;
	wl = key_of(w, sizeof(w), "net11", 'w', "renew", "s", 1);
	pl = key_of(p, sizeof(p), "net11", 'p', "renew", "s", 1);

	assert_int_equal(reserve1(&cfg, &held, 0, &v), STORE_OK);
	before = zscore(p, pl, "held");
	redis_test_sleep_ms(600);
	assert_int_equal(store_renew(&cfg, &held, 1), STORE_OK);
	after = zscore(p, pl, "held");
	assert_true(after >= before + 500);
	/* renewing with an expiry that is not later changes nothing */
	raw_int("ZADD %b XX %lld held", p, pl, after + 60000);
	assert_int_equal(store_renew(&cfg, &held, 1), STORE_OK);
	assert_int_equal(zscore(p, pl, "held"), after + 60000);
	raw_int("ZADD %b XX %lld held", p, pl, after);
	redis_test_sleep_ms(600); /* past the first expiry, within the renewed one */
	assert_int_equal(reserve1(&cfg, &other, 0, &v), STORE_OK);
	assert_int_equal(zcard(w, wl), 2);
	assert_true(zscore(p, pl, "held") > 0);
	/* the window is full: the renewed unit counts */
	assert_int_equal(reserve1(&cfg, &late, 0, &v), STORE_OVER);
	assert_int_equal(v.used, 2);

	/* committed or unknown members are not made pending again */
	assert_int_equal(store_commit(&cfg, &held, 1), STORE_OK);
	assert_int_equal(store_renew(&cfg, &held, 1), STORE_OK);
	assert_int_equal(zscore(p, pl, "held"), -1);
	assert_int_equal(store_renew(&cfg, &gone, 1), STORE_OK);
	assert_int_equal(zscore(p, pl, "gone"), -1);
	assert_int_equal(zscore(w, wl, "gone"), -1);

	/* not renewed: "other" expires and stops counting, as a dead milter's */
	redis_test_sleep_ms(1100);
	assert_int_equal(reserve1(&cfg, &late, 0, &v), STORE_OK);
	assert_int_equal(zscore(w, wl, "other"), -1);
	assert_int_equal(zcard(w, wl), 2); /* held (committed) and late */

	/* Redis lost the script: loaded again */
	freeReplyObject(raw_cmd("SCRIPT FLUSH"));
	assert_int_equal(store_renew(&cfg, &late, 1), STORE_OK);
	assert_true(zscore(p, pl, "late") > 0);
}

static void test_commit_after_expiry(void **state)
{
	struct config cfg;
	struct store_unit slow = unit_of("net10", "slow", "s", "slow", 2, 10, 60);
	struct store_unit fast = unit_of("net10", "slow", "s", "fast", 2, 10, 60);
	struct store_unit third = unit_of("net10", "slow", "s", "third", 2, 10, 60);
	struct store_unit lone = unit_of("net10", "lone", "s", "lone", 5, 10, 60);
	struct store_unit probe = unit_of("net10", "lone", "s", "probe", 0, 10, 60);
	struct store_finish f;
	struct store_verdict v;
	char w[256], p[256], lw[256];
	size_t wl, pl, lwl;
	long long t, before;

	(void)state;
	cfg_init(&cfg);
	cfg.reservation_ttl = 1;
	wl = key_of(w, sizeof(w), "net10", 'w', "slow", "s", 1);
	pl = key_of(p, sizeof(p), "net10", 'p', "slow", "s", 1);
	lwl = key_of(lw, sizeof(lw), "net10", 'w', "lone", "s", 1);

	assert_int_equal(reserve1(&cfg, &slow, T0, &v), STORE_OK);
	slow.admitted_ms = v.admitted_ms;
	/* past its TTL, the next reservation on the window drops it */
	assert_int_equal(reserve1(&cfg, &fast, T0 + 1500, &v), STORE_OK);
	fast.admitted_ms = v.admitted_ms;
	assert_int_equal(zscore(w, wl, "slow"), -1);
	assert_int_equal(zscore(p, pl, "slow"), -1);

	/* both messages complete: both counted, each at its admission time */
	assert_int_equal(store_commit(&cfg, &fast, 1), STORE_OK);
	assert_int_equal(store_commit(&cfg, &slow, 1), STORE_OK);
	assert_int_equal(zscore(w, wl, "slow"), T0);
	assert_int_equal(zscore(w, wl, "fast"), T0 + 1500);
	assert_int_equal(zcard(w, wl), 2);
	assert_int_equal(raw_int("EXISTS %b", p, pl), 0);
	/* the times the reservations reported */
	assert_int_equal(slow.admitted_ms, T0);
	assert_int_equal(fast.admitted_ms, T0 + 1500);
	/* and both count: hourly 2 stays full until the slow one is an hour old */
	assert_int_equal(reserve1(&cfg, &third, T0 + 2000, &v), STORE_OVER);
	assert_int_equal(v.which, WINDOW_OVER_HOURLY);
	assert_int_equal(v.used, 2);
	assert_int_equal(v.retry_ms, HOUR_MS - 2000);
	assert_int_equal(reserve1(&cfg, &third, T0 + HOUR_MS, &v), STORE_OK);
	/* committing again changes nothing */
	assert_int_equal(store_commit(&cfg, &fast, 1), STORE_OK);
	assert_int_equal(zscore(w, wl, "fast"), T0 + 1500);

	/* a window whose only unit was dropped is gone: the commit makes it
	 * again, with the TTL of a window (1 h + reservation_ttl) */
	assert_int_equal(reserve1(&cfg, &lone, T0, &v), STORE_OK);
	lone.admitted_ms = v.admitted_ms;
	assert_int_equal(reserve1(&cfg, &probe, T0 + 1500, &v), STORE_OVER);
	assert_int_equal(v.used, 0);
	assert_int_equal(raw_int("EXISTS %b", lw, lwl), 0);
	assert_int_equal(store_commit(&cfg, &lone, 1), STORE_OK);
	assert_int_equal(zscore(lw, lwl, "lone"), T0);
	t = pttl(lw, lwl);
	assert_true(t > HOUR_MS + 1000 - 5000 && t <= HOUR_MS + 1000);

	/* without its admission time a dropped unit counts from the commit on;
	 * one still in its window stays as it is */
	lone.member = "anon";
	assert_int_equal(reserve1(&cfg, &lone, T0 + 2000, &v), STORE_OK);
	assert_int_equal(reserve1(&cfg, &probe, T0 + 3500, &v), STORE_OVER);
	assert_int_equal(zscore(lw, lwl, "anon"), -1);
	lone.admitted_ms = 0;
	memset(&f, 0, sizeof(f));
	f.commit = &lone;
	f.n_commit = 1;
	f.now_ms = T0 + 4000;
	assert_int_equal(store_finish(&cfg, &f), STORE_OK);
	assert_int_equal(zscore(lw, lwl, "anon"), T0 + 4000);
	lone.member = "anon2";
	assert_int_equal(reserve1(&cfg, &lone, T0 + 4100, &v), STORE_OK);
	assert_int_equal(store_finish(&cfg, &f), STORE_OK);
	assert_int_equal(zscore(lw, lwl, "anon2"), T0 + 4100);

	/* many units of a few windows, in any order: each window gets all of
	 * its units back (in chunks), whatever their order in the call */
	{
		enum { MANY = 1500 };
		struct store_unit *many = calloc(MANY, sizeof(*many));
		char (*names)[16] = calloc(MANY, sizeof(*names));
		char mw[256];
		size_t mwl, i;

		assert_non_null(many);
		assert_non_null(names);
		for (i = 0; i < MANY; i++) {
			snprintf(names[i], sizeof(names[i]), "u%zu", i);
			many[i] = unit_of("net10", "many", i % 3 == 0 ? "x" : "y", names[i], 10000,
					  10000, 60);
		}
		assert_int_equal(store_reserve(&cfg, many, MANY, T0, &v), STORE_OK);
		for (i = 0; i < MANY; i++)
			many[i].admitted_ms = v.admitted_ms;
		probe = unit_of("net10", "many", "x", "probe", 0, 10, 60);
		assert_int_equal(reserve1(&cfg, &probe, T0 + 1500, &v), STORE_OVER);
		probe.scope = "y";
		assert_int_equal(reserve1(&cfg, &probe, T0 + 1500, &v), STORE_OVER);
		mwl = key_of(mw, sizeof(mw), "net10", 'w', "many", "x", 1);
		assert_int_equal(raw_int("EXISTS %b", mw, mwl), 0);
		assert_int_equal(store_commit(&cfg, many, MANY), STORE_OK);
		assert_int_equal(zcard(mw, mwl), MANY / 3);
		assert_int_equal(zscore(mw, mwl, "u1497"), T0);
		mwl = key_of(mw, sizeof(mw), "net10", 'w', "many", "y", 1);
		assert_int_equal(zcard(mw, mwl), MANY - MANY / 3);
		assert_int_equal(zscore(mw, mwl, "u1499"), T0);
		assert_true(pttl(mw, mwl) > HOUR_MS);
		mwl = key_of(mw, sizeof(mw), "net10", 'p', "many", "y", 1);
		assert_int_equal(raw_int("EXISTS %b", mw, mwl), 0);
		free(many);
		free(names);
	}

	/* with the server clock the admission time is the server's now */
	lone.member = "clock";
	before = server_ms();
	assert_int_equal(reserve1(&cfg, &lone, 0, &v), STORE_OK);
	t = server_ms();
	assert_true(v.admitted_ms >= before && v.admitted_ms <= t);
	assert_int_equal(zscore(lw, lwl, "clock"), v.admitted_ms);
}

/* ---- keys, scripts, connections ---------------------------------------- */

static void test_binary_safe_scope(void **state)
{
	static const char scope[] = "a\0b %s%n\r\n*{x}:\xff";
	struct config cfg;
	struct store_unit u = unit_of("net8", "bin", "", "m %s\r\n1", 100, 10, 60);
	struct store_verdict v;
	char w[256];
	size_t wl;

	(void)state;
	cfg_init(&cfg);
	u.scope = scope;
	u.scope_len = sizeof(scope) - 1;
	wl = key_of(w, sizeof(w), "net8", 'w', "bin", scope, sizeof(scope) - 1);
	assert_int_equal(reserve1(&cfg, &u, T0, &v), STORE_OK);
	assert_int_equal(raw_int("ZSCORE %b %b", w, wl, u.member, strlen(u.member)), T0);
	/* a scope cut at the NUL is another key */
	assert_int_equal(raw_int("EXISTS %b", w, strlen(w)), 0);
	assert_int_equal(store_release(&cfg, &u, 1), STORE_OK);
	assert_int_equal(raw_int("EXISTS %b", w, wl), 0);
}

static void test_noscript_reload(void **state)
{
	struct config cfg;
	struct store_unit u = unit_of("net9", "ns", "s", "m1", 100, 10, 60);
	struct store_verdict v;

	(void)state;
	cfg_init(&cfg);
	assert_int_equal(reserve1(&cfg, &u, T0, &v), STORE_OK);
	freeReplyObject(raw_cmd("SCRIPT FLUSH"));
	u.member = "m2";
	assert_int_equal(reserve1(&cfg, &u, T0, &v), STORE_OK);
	u.member = "m3";
	assert_int_equal(reserve1(&cfg, &u, T0, &v), STORE_OK);
}

static void test_bad_calls(void **state)
{
	struct config cfg;
	struct store_unit u[2];
	struct store_verdict v;
	char p[256];
	size_t pl;

	(void)state;
	cfg_init(&cfg);
	u[0] = unit_of("netA", "bad", "s", "m", 100, 10, 60);
	u[1] = unit_of("netB", "bad", "s", "m", 100, 10, 60);
	assert_int_equal(store_reserve(&cfg, u, 2, T0, &v), STORE_ERR);
	assert_non_null(strstr(store_last_error(), "network"));
	u[1] = u[0];
	u[1].member = NULL;
	assert_int_equal(store_reserve(&cfg, u, 2, T0, &v), STORE_ERR);
	assert_int_equal(store_commit(&cfg, u, 2), STORE_ERR);

	/* an error reply in a pipeline fails the call, the connection stays in step */
	pl = key_of(p, sizeof(p), "netA", 'p', "bad", "s", 1);
	freeReplyObject(raw_cmd("SET %b x", p, pl));
	u[1] = unit_of("netA", "bad", "t", "m", 100, 10, 60);
	assert_int_equal(store_commit(&cfg, u, 2), STORE_ERR);
	assert_non_null(strstr(store_last_error(), "WRONGTYPE"));
	assert_int_equal(store_ping(&cfg), STORE_OK);
	assert_int_equal(store_commit(&cfg, &u[1], 1), STORE_OK);
	assert_int_equal(store_reserve(&cfg, u, 1, T0, &v), STORE_ERR);
	assert_non_null(strstr(store_last_error(), "WRONGTYPE"));
	assert_int_equal(store_ping(&cfg), STORE_OK);
	freeReplyObject(raw_cmd("DEL %b", p, pl));
}

/* a new configuration generation makes a new connection, the same one does not */
static void test_generation_reconnects(void **state)
{
	struct config cfg;
	long long before;

	(void)state;
	cfg_init(&cfg);
	assert_int_equal(store_ping(&cfg), STORE_OK);
	before = info_field("stats", "total_connections_received");
	assert_int_equal(store_ping(&cfg), STORE_OK);
	assert_int_equal(store_ping(&cfg), STORE_OK);
	assert_int_equal(info_field("stats", "total_connections_received"), before);
	cfg.generation = 2;
	assert_int_equal(store_ping(&cfg), STORE_OK);
	assert_int_equal(info_field("stats", "total_connections_received"), before + 1);
	assert_int_equal(store_ping(&cfg), STORE_OK);
	assert_int_equal(info_field("stats", "total_connections_received"), before + 1);
	store_disconnect();
	assert_int_equal(store_ping(&cfg), STORE_OK);
	assert_int_equal(info_field("stats", "total_connections_received"), before + 2);
}

static void *ping_thread(void *arg)
{
	return (void *)(intptr_t)store_ping(arg);
}

/*
 * each thread has its own connection; when a thread ends its connection is
 * kept for the next new thread, so threads that come and go do not connect
 * again
 */
static void test_thread_connections(void **state)
{
	struct config cfg;
	pthread_t th[4];
	long long clients, conns;
	void *rv;
	int i;

	(void)state;
	cfg_init(&cfg);
	assert_int_equal(store_ping(&cfg), STORE_OK);
	clients = info_field("clients", "connected_clients");
	for (i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, ping_thread, &cfg), 0);
	for (i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], &rv), 0);
		assert_int_equal((intptr_t)rv, STORE_OK);
	}
	/* at most one kept connection per thread that ran at once */
	assert_true(info_field("clients", "connected_clients") <= clients + 4);

	/* threads one after the other reuse the kept connections */
	conns = info_field("stats", "total_connections_received");
	for (i = 0; i < 8; i++) {
		assert_int_equal(pthread_create(&th[0], NULL, ping_thread, &cfg), 0);
		assert_int_equal(pthread_join(th[0], &rv), 0);
		assert_int_equal((intptr_t)rv, STORE_OK);
	}
	assert_int_equal(info_field("stats", "total_connections_received"), conns);
	assert_true(info_field("clients", "connected_clients") <= clients + 4);
}

/* ---- exactness under concurrency --------------------------------------- */

struct hammer {
	pthread_t th;
	const struct config *cfg;
	struct store_unit proto;
	int id;
	long long until;
	long attempts, admitted, over_hourly, over_burst, errors;
};

static void *hammer_run(void *arg)
{
	struct hammer *h = arg;
	char member[48];

	while (redis_test_ms() < h->until) {
		struct store_unit u = h->proto;
		struct store_verdict v;
		int rv;

		snprintf(member, sizeof(member), "t%d.%ld", h->id, h->attempts);
		u.member = member;
		h->attempts++;
		rv = store_reserve(h->cfg, &u, 1, 0, &v);
		if (rv == STORE_OK) {
			u.admitted_ms = v.admitted_ms;
			if (store_commit(h->cfg, &u, 1) == STORE_OK)
				h->admitted++;
			else
				h->errors++;
		} else if (rv == STORE_OVER) {
			if (v.which == WINDOW_OVER_HOURLY)
				h->over_hourly++;
			else
				h->over_burst++;
		} else {
			h->errors++;
		}
	}
	store_disconnect();
	return NULL;
}

/* the largest number of times (ascending) in any window (t - len, t] */
static long max_in_window(const long long *t, size_t n, long long len)
{
	size_t i, lo = 0, hi = 0;
	long best = 0;

	for (i = 0; i < n; i++) {
		while (hi < n && t[hi] <= t[i])
			hi++;
		while (t[lo] <= t[i] - len)
			lo++;
		if ((long)(hi - lo) > best)
			best = (long)(hi - lo);
	}
	return best;
}

static void hammer_run_all(const char *rule, struct limit_values lv, int nthreads,
			   long duration_ms, long long **times_out, size_t *n_out,
			   long *attempts_out, long *over_hourly_out, long long *end_out)
{
	struct config cfg;
	struct hammer *h = calloc((size_t)nthreads, sizeof(*h));
	long long until;
	long attempts = 0, admitted = 0, errors = 0, over_hourly = 0;
	char w[256], p[256];
	size_t wl, pl, i, n;
	long long *t;
	int k;

	assert_non_null(h);
	cfg_init(&cfg);
	wl = key_of(w, sizeof(w), "hot", 'w', rule, "*", 1);
	pl = key_of(p, sizeof(p), "hot", 'p', rule, "*", 1);
	until = redis_test_ms() + duration_ms;
	for (k = 0; k < nthreads; k++) {
		h[k].cfg = &cfg;
		h[k].proto = unit_of("hot", rule, "*", "", lv.hourly, lv.burst, lv.burst_window);
		h[k].id = k;
		h[k].until = until;
		assert_int_equal(pthread_create(&h[k].th, NULL, hammer_run, &h[k]), 0);
	}
	for (k = 0; k < nthreads; k++) {
		assert_int_equal(pthread_join(h[k].th, NULL), 0);
		attempts += h[k].attempts;
		admitted += h[k].admitted;
		errors += h[k].errors;
		over_hourly += h[k].over_hourly;
	}
	free(h);
	assert_int_equal(errors, 0);
	*end_out = server_ms(); /* the Redis clock when the last attempts were made */

	t = window_times(w, wl, &n);
	assert_int_equal((long)n, admitted);          /* every admitted unit is there */
	assert_int_equal(raw_int("EXISTS %b", p, pl), 0); /* all committed */
	assert_true(attempts > admitted);           /* demand was higher */
	/* every admitted unit was admissible given the ones before it */
	for (i = 0; i < n; i++) {
		long long retry;

		if (ratelimit_window_check(t, i, t[i], lv, &retry) != WINDOW_ADMIT)
			fail_msg("unit %zu at %lld was over the limit", i, t[i]);
		if (!oracle_admits(t, i, t[i], lv))
			fail_msg("unit %zu at %lld was over the limit by its definition", i, t[i]);
	}
	*times_out = t;
	*n_out = n;
	*attempts_out = attempts;
	*over_hourly_out = over_hourly;
}

static void test_exact_burst_concurrent(void **state)
{
	struct limit_values lv = { 1000000, 10, 2 };
	long long *t, bw = 2000, slack = 500, end;
	long attempts, over_hourly, top;
	size_t n, i;

	(void)state;
	hammer_run_all("hammer-burst", lv, 8, 8500, &t, &n, &attempts, &over_hourly, &end);
	top = max_in_window(t, n, bw);
	assert_int_equal(top, lv.burst);
	for (i = (size_t)lv.burst; i < n; i++) {
		/* never more than burst in a window ... */
		assert_true(t[i] - t[i - lv.burst] >= bw);
		/* ... and, as demand never stopped, a freed slot is taken at once */
		if (t[i] - t[i - lv.burst] > bw + slack)
			fail_msg("unit %zu admitted %lld ms after its slot freed", i,
				 t[i] - t[i - lv.burst] - bw);
	}
	/* what the sliding arithmetic allows over the span of the run: a full
	 * burst every burst_window from the first admission on, no more, and
	 * no fewer up to shortly before the end */
	assert_true((long long)n <= lv.burst * ((t[n - 1] - t[0]) / bw + 1));
	assert_true((long long)n >= lv.burst * ((end - slack - t[0]) / bw + 1));
	assert_true(n >= (size_t)(lv.burst * 4));
	printf("exactness (burst): 8 threads, %ld attempts, %zu admitted over %lld ms, "
	       "burst %ld per %lld ms, max in any window %ld\n",
	       attempts, n, t[n - 1] - t[0], lv.burst, bw, top);
	free(t);
}

static void test_exact_hourly_concurrent(void **state)
{
	struct limit_values lv = { 25, 10, 1 };
	long attempts, over_hourly, top;
	long long *t, end;
	size_t n;

	(void)state;
	hammer_run_all("hammer-hourly", lv, 8, 5000, &t, &n, &attempts, &over_hourly, &end);
	assert_int_equal(n, 25);
	top = max_in_window(t, n, 1000);
	assert_int_equal(top, 10);
	assert_int_equal(max_in_window(t, n, HOUR_MS), 25);
	assert_true(over_hourly > 0);
	/* 10 + 10 + 5: each group as soon as the burst window let it in */
	assert_true(t[10] - t[0] >= 1000 && t[10] - t[0] < 1500);
	assert_true(t[20] - t[10] >= 1000 && t[20] - t[10] < 1500);
	printf("exactness (hourly): 8 threads, %ld attempts, %zu admitted, hourly 25, "
	       "burst 10 per 1000 ms, max in any burst window %ld, %ld refused by the hour\n",
	       attempts, n, top, over_hourly);
	free(t);
}

/* ---- AUTH, ACL user, SELECT -------------------------------------------- */

static void write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static void test_auth_password(void **state)
{
	static const char *const opts[] = { "--requirepass", "s3cret pass", NULL };
	struct redis_test_server own;
	struct config cfg;
	struct store_unit u = unit_of("netC", "auth", "s", "m1", 100, 10, 60);
	struct store_verdict v;
	char pw[128], bad[128];

	(void)state;
	assert_int_equal(redis_test_start(&own, opts), 0);
	snprintf(pw, sizeof(pw), "%s/pw", own.dir);
	snprintf(bad, sizeof(bad), "%s/bad", own.dir);
	write_file(pw, "s3cret pass\r\n");
	write_file(bad, "wrong\n");
	cfg_init(&cfg);
	cfg.redis.socket = own.sock;
	cfg.generation = 100;

	cfg.redis.password_file = pw;
	assert_int_equal(store_reserve(&cfg, &u, 1, T0, &v), STORE_OK);
	store_disconnect();

	cfg.redis.password_file = bad;
	assert_int_equal(store_ping(&cfg), STORE_ERR);
	assert_non_null(strstr(store_last_error(), "AUTH"));
	store_disconnect();

	cfg.redis.password_file = NULL;
	assert_int_equal(store_ping(&cfg), STORE_ERR);
	assert_non_null(strstr(store_last_error(), "NOAUTH"));
	store_disconnect();

	snprintf(bad, sizeof(bad), "%s/missing", own.dir);
	cfg.redis.password_file = bad;
	assert_int_equal(store_ping(&cfg), STORE_ERR);
	assert_non_null(strstr(store_last_error(), "password_file"));
	store_disconnect();
	redis_test_cleanup(&own);
}

static void test_acl_user_and_db(void **state)
{
	static const char *const opts[] = { "--user", "milter", "on", ">pw2", "~*", "&*", "+@all",
					     NULL };
	struct redis_test_server own;
	struct config cfg;
	struct store_unit u = unit_of("netD", "acl", "s", "m1", 100, 10, 60);
	struct store_verdict v;
	redisContext *c;
	redisReply *r;
	char pw[128], user[] = "milter", key[256];
	size_t kl;

	(void)state;
	assert_int_equal(redis_test_start(&own, opts), 0);
	snprintf(pw, sizeof(pw), "%s/pw", own.dir);
	write_file(pw, "pw2\n");
	cfg_init(&cfg);
	cfg.redis.socket = own.sock;
	cfg.redis.password_file = pw;
	cfg.redis.user = user;
	cfg.redis.db = 3;
	cfg.generation = 200;
	assert_int_equal(store_reserve(&cfg, &u, 1, T0, &v), STORE_OK);
	store_disconnect();

	kl = key_of(key, sizeof(key), "netD", 'w', "acl", "s", 1);
	c = redis_test_connect(&own);
	assert_non_null(c);
	r = redisCommand(c, "AUTH milter pw2");
	assert_int_equal(r->type, REDIS_REPLY_STATUS);
	freeReplyObject(r);
	r = redisCommand(c, "EXISTS %b", key, kl);
	assert_int_equal(r->integer, 0); /* not in db 0 */
	freeReplyObject(r);
	r = redisCommand(c, "SELECT 3");
	freeReplyObject(r);
	r = redisCommand(c, "EXISTS %b", key, kl);
	assert_int_equal(r->integer, 1);
	freeReplyObject(r);
	redisFree(c);

	/* the default user's password is not this user's */
	cfg.redis.user = NULL;
	assert_int_equal(store_ping(&cfg), STORE_ERR);
	store_disconnect();
	redis_test_cleanup(&own);
}

/* ---- Redis down or stuck ----------------------------------------------- */

static void test_redis_down(void **state)
{
	struct config cfg;
	struct store_unit u = unit_of("netE", "down", "s", "m", 100000, 100000, 60);
	struct store_verdict v;
	long long t, restarted, elapsed;
	int i;

	(void)state;
	if (!redis_test_owned(&srv))
		skip();
	cfg_init(&cfg);
	cfg.generation = 300;
	assert_int_equal(store_reserve(&cfg, &u, 1, 0, &v), STORE_OK);
	redis_test_stop(&srv);

	t = redis_test_ms();
	assert_int_equal(store_reserve(&cfg, &u, 1, 0, &v), STORE_ERR);
	elapsed = redis_test_ms() - t;
	/* bounds: the property is "within a timeout, not waiting on Redis", with
	 * room for a loaded 2-core machine under ASan */
	assert_true(elapsed <= cfg.redis.timeout_ms + 500);
	printf("redis down: first call failed in %lld ms: %s\n", elapsed, store_last_error());

	/* the next calls fail fast, whether backing off or trying again */
	for (i = 0; i < 100; i++) {
		t = redis_test_ms();
		assert_int_equal(store_reserve(&cfg, &u, 1, 0, &v), STORE_ERR);
		assert_true(redis_test_ms() - t < cfg.redis.timeout_ms / 2);
		redis_test_sleep_ms(15);
	}
	assert_non_null(strstr(store_last_error(), "redis"));
	t = redis_test_ms();
	assert_int_equal(store_ping(&cfg), STORE_ERR);
	assert_true(redis_test_ms() - t < cfg.redis.timeout_ms / 2);

	/* back again: a call succeeds within about the longest back-off */
	assert_int_equal(redis_test_restart(&srv), 0);
	restarted = redis_test_ms();
	while (store_reserve(&cfg, &u, 1, 0, &v) != STORE_OK) {
		if (redis_test_ms() - restarted > 2500)
			fail_msg("still failing 2.5 s after restart: %s", store_last_error());
		redis_test_sleep_ms(5);
	}
	elapsed = redis_test_ms() - restarted;
	printf("redis down: working again %lld ms after the restart\n", elapsed);
	assert_true(elapsed <= 1600); /* the longest back-off (1 s) and room */
	/* the checking connection died with the old server */
	raw_close();
	freeReplyObject(raw_cmd("PING"));
}

static void *stuck_thread(void *arg)
{
	const struct config *cfg = arg;
	long long t = redis_test_ms();
	int rv = store_ping(cfg);

	store_disconnect();
	if (rv != STORE_ERR)
		return (void *)(intptr_t)-1;
	return (void *)(intptr_t)(redis_test_ms() - t);
}

static void test_redis_stuck(void **state)
{
	struct config cfg;
	struct store_unit u = unit_of("netF", "stuck", "s", "m", 100000, 100000, 60);
	struct store_verdict v;
	long long t, elapsed, resumed;
	pthread_t th;
	void *rv;
	int i;

	(void)state;
	if (!redis_test_owned(&srv))
		skip();
	cfg_init(&cfg);
	cfg.generation = 400;
	assert_int_equal(store_reserve(&cfg, &u, 1, 0, &v), STORE_OK);
	assert_int_equal(redis_test_pause(&srv), 0);

	/* on the open connection: the command timeout */
	t = redis_test_ms();
	assert_int_equal(store_reserve(&cfg, &u, 1, 0, &v), STORE_ERR);
	elapsed = redis_test_ms() - t;
	printf("redis stuck: call failed after %lld ms (timeout %d): %s\n", elapsed,
	       cfg.redis.timeout_ms, store_last_error());
	assert_true(elapsed >= cfg.redis.timeout_ms - 20);
	assert_true(elapsed <= cfg.redis.timeout_ms + 500);
	/* reconnecting: the socket accepts, nothing answers; the whole connect
	 * stays within timeout_ms, then back-off makes calls fail at once */
	for (i = 0; i < 5; i++) {
		t = redis_test_ms();
		assert_int_equal(store_reserve(&cfg, &u, 1, 0, &v), STORE_ERR);
		elapsed = redis_test_ms() - t;
		assert_true(elapsed <= cfg.redis.timeout_ms + 500);
	}
	t = redis_test_ms();
	assert_int_equal(store_reserve(&cfg, &u, 1, 0, &v), STORE_ERR);
	assert_true(redis_test_ms() - t < 20);
	assert_non_null(strstr(store_last_error(), "next attempt"));

	/* a thread that connects for the first time while Redis is stuck */
	assert_int_equal(pthread_create(&th, NULL, stuck_thread, &cfg), 0);
	assert_int_equal(pthread_join(th, &rv), 0);
	assert_true((intptr_t)rv >= 0);
	assert_true((intptr_t)rv <= cfg.redis.timeout_ms + 150);

	assert_int_equal(redis_test_resume(&srv), 0);
	resumed = redis_test_ms();
	while (store_reserve(&cfg, &u, 1, 0, &v) != STORE_OK) {
		if (redis_test_ms() - resumed > 1500)
			fail_msg("still failing 1.5 s after resume: %s", store_last_error());
		redis_test_sleep_ms(5);
	}
	elapsed = redis_test_ms() - resumed;
	printf("redis stuck: working again %lld ms after it resumed\n", elapsed);
	assert_true(elapsed <= 1300);
}

/* ---- setup ------------------------------------------------------------- */

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reserve_commit_release),
		cmocka_unit_test(test_refusal_admits_nothing),
		cmocka_unit_test(test_same_window_twice),
		cmocka_unit_test(test_limit_not_in_key),
		cmocka_unit_test(test_burst_window),
		cmocka_unit_test(test_hourly_across_bursts),
		cmocka_unit_test(test_random_against_limits),
		cmocka_unit_test(test_abandoned_reservation_expires),
		cmocka_unit_test(test_commit_after_expiry),
		cmocka_unit_test(test_renew),
		cmocka_unit_test(test_binary_safe_scope),
		cmocka_unit_test(test_noscript_reload),
		cmocka_unit_test(test_bad_calls),
		cmocka_unit_test(test_generation_reconnects),
		cmocka_unit_test(test_thread_connections),
		cmocka_unit_test(test_exact_burst_concurrent),
		cmocka_unit_test(test_exact_hourly_concurrent),
		cmocka_unit_test(test_auth_password),
		cmocka_unit_test(test_acl_user_and_db),
		cmocka_unit_test(test_redis_down),
		cmocka_unit_test(test_redis_stuck),
	};

	/* OBM_CMOCKA_FILTER=pattern runs only the matching cmocka tests */
	if (getenv("OBM_CMOCKA_FILTER") != NULL)
		cmocka_set_test_filter(getenv("OBM_CMOCKA_FILTER"));
	return cmocka_run_group_tests(tests, raw_group_setup, raw_group_teardown);
}
