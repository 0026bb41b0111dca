/*
 * test_ratelimit.c - the rate limit arithmetic of ratelimit.c: window boundaries,
 * hourly before burst, zero limits, retry times, per-network overrides and
 * scope values, plus a property check over a long random admission run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ratelimit.h"

#define NOW 1700000000000LL

struct window_case {
	const char *what;
	long long ago[8]; /* unit times as NOW - ago (negative: in the future) */
	size_t n;
	struct limit_values lv;
	enum window_verdict expect;
	long long retry; /* expected retry_ms when refused */
};

static const struct window_case window_cases[] = {
	{ "empty windows admit", { 0 }, 0, { 100, 10, 60 }, WINDOW_ADMIT, 0 },
	{ "a unit exactly one hour old has left", { 3600000, 3599999 }, 2, { 2, 10, 60 },
	  WINDOW_ADMIT, 0 },
	{ "a unit 1 ms younger than an hour still counts", { 3599999, 3599998 }, 2,
	  { 2, 10, 60 }, WINDOW_OVER_HOURLY, 1 },
	{ "a unit exactly burst_window old has left", { 60000, 1 }, 2, { 100, 2, 60 },
	  WINDOW_ADMIT, 0 },
	{ "a unit 1 ms younger than burst_window counts", { 59999, 1 }, 2, { 100, 2, 60 },
	  WINDOW_OVER_BURST, 1 },
	{ "hourly is checked before burst", { 1, 2 }, 2, { 2, 2, 60 }, WINDOW_OVER_HOURLY,
	  3600000 - 2 },
	{ "burst refuses while the hour has room", { 1, 2 }, 2, { 3, 2, 60 },
	  WINDOW_OVER_BURST, 60000 - 2 },
	{ "hourly = 0 refuses everything", { 0 }, 0, { 0, 10, 60 }, WINDOW_OVER_HOURLY,
	  3600000 },
	{ "burst = 0 refuses everything", { 0 }, 0, { 10, 0, 60 }, WINDOW_OVER_BURST, 60000 },
	{ "a unit admitted at now counts", { 0 }, 1, { 10, 1, 60 }, WINDOW_OVER_BURST, 60000 },
	{ "a unit stamped in the future counts", { -5 }, 1, { 10, 1, 60 }, WINDOW_OVER_BURST,
	  60005 },
	{ "retry follows the oldest unit, in any order", { 10, 30, 20 }, 3, { 100, 3, 60 },
	  WINDOW_OVER_BURST, 60000 - 30 },
	{ "over a lowered limit retry is still the oldest", { 10, 20, 30 }, 3, { 100, 2, 60 },
	  WINDOW_OVER_BURST, 60000 - 30 },
	{ "units older than the burst window count for the hour", { 120000, 180000, 1 }, 3,
	  { 3, 2, 60 }, WINDOW_OVER_HOURLY, 3600000 - 180000 },
	{ "old units do not count for the burst", { 120000, 180000, 1 }, 3, { 10, 2, 60 },
	  WINDOW_ADMIT, 0 },
	{ "burst_window 0 is taken as 1 s", { 999, 1000 }, 2, { 10, 1, 0 }, WINDOW_OVER_BURST,
	  1 },
	{ "burst_window 1 s", { 999, 1 }, 2, { 10, 2, 1 }, WINDOW_OVER_BURST, 1 },
	{ "burst_window above an hour is an hour", { 3599999, 3600001 }, 2, { 10, 1, 7200 },
	  WINDOW_OVER_BURST, 1 },
};

static void test_window_table(void **state)
{
	size_t i, j;

	(void)state;
	for (i = 0; i < sizeof(window_cases) / sizeof(window_cases[0]); i++) {
		const struct window_case *c = &window_cases[i];
		long long times[8], retry = -1;
		enum window_verdict got;

		for (j = 0; j < c->n; j++)
			times[j] = NOW - c->ago[j];
		got = ratelimit_window_check(times, c->n, NOW, c->lv, &retry);
		if (got != c->expect || (got != WINDOW_ADMIT && retry != c->retry))
			fail_msg("%s: verdict %d retry %lld, expected %d retry %lld", c->what, got,
				 retry, c->expect, c->retry);
		if (got == WINDOW_ADMIT)
			assert_int_equal(retry, -1); /* left alone */
		/* RETRY_MS may be NULL */
		assert_int_equal(ratelimit_window_check(times, c->n, NOW, c->lv, NULL), c->expect);
	}
}

/* a full window admits again exactly when its oldest unit leaves */
static void test_retry_is_exact(void **state)
{
	long long times[3] = { NOW - 100, NOW - 50, NOW - 10 };
	struct limit_values lv = { 1000, 3, 60 };
	long long retry = 0;

	(void)state;
	assert_int_equal(ratelimit_window_check(times, 3, NOW, lv, &retry), WINDOW_OVER_BURST);
	assert_int_equal(retry, 60000 - 100);
	assert_int_equal(ratelimit_window_check(times, 3, NOW + retry - 1, lv, NULL),
			 WINDOW_OVER_BURST);
	assert_int_equal(ratelimit_window_check(times, 3, NOW + retry, lv, NULL), WINDOW_ADMIT);
}

static uint64_t rng_state;

static uint64_t rng_next(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/*
 * Greedy admission over 3 hours of random attempts: no sliding window ever
 * holds more than its limit, and every refusal was justified by a full
 * window at that moment.
 */
static void test_random_run_properties(void **state)
{
	enum { MAX = 20000 };
	struct limit_values lv = { 25, 10, 60 };
	long long *adm = calloc(MAX, sizeof(*adm));
	long long now = NOW, bw = lv.burst_window * 1000LL;
	size_t n = 0, refused = 0, i, j, attempt;

	(void)state;
	assert_non_null(adm);
	rng_state = 0x9e3779b97f4a7c15ULL;
	for (attempt = 0; attempt < MAX && n < MAX; attempt++) {
		long long retry = 0;
		enum window_verdict v;

		now += (long long)(rng_next() % 2000); /* bursts of same-ms attempts too */
		v = ratelimit_window_check(adm, n, now, lv, &retry);
		if (v == WINDOW_ADMIT) {
			adm[n++] = now;
			continue;
		}
		refused++;
		/* justified: the refusing window is full at NOW ... */
		{
			long long len = v == WINDOW_OVER_HOURLY ? HOUR_MS : bw;
			long lim = v == WINDOW_OVER_HOURLY ? lv.hourly : lv.burst;
			size_t in = 0;

			for (j = 0; j < n; j++)
				in += adm[j] > now - len;
			assert_true(in >= (size_t)lim);
			/* ... and has room again after retry_ms, not before */
			assert_true(retry > 0 && retry <= len);
			assert_int_not_equal(ratelimit_window_check(adm, n, now + retry - 1, lv, NULL),
					     WINDOW_ADMIT);
		}
	}
	assert_true(n > 100);
	assert_true(refused > 100);
	for (i = 0; i < n; i++) {
		size_t in_hour = 0, in_burst = 0;

		for (j = 0; j < n; j++) {
			if (adm[j] > adm[i] - HOUR_MS && adm[j] <= adm[i])
				in_hour++;
			if (adm[j] > adm[i] - bw && adm[j] <= adm[i])
				in_burst++;
		}
		assert_true(in_hour <= (size_t)lv.hourly);
		assert_true(in_burst <= (size_t)lv.burst);
	}
	free(adm);
}

static void test_effective_overrides(void **state)
{
	struct limit_override ov[] = {
		{ "gmail", 500, 50 },
		{ "yahoo", 20, -1 }, /* burst as the rule says */
	};
	struct limit_rule rule = {
		.name = "per-sender", .scope = SCOPE_SENDER, .hourly = 100, .burst = 10,
		.burst_window = 60, .count = COUNT_RECIPIENTS, .classes = CLASS_ALL,
		.overrides = ov, .n_overrides = 2,
	};
	struct limit_values lv;

	(void)state;
	lv = ratelimit_effective(&rule, "gmail");
	assert_int_equal(lv.hourly, 500);
	assert_int_equal(lv.burst, 50);
	assert_int_equal(lv.burst_window, 60);
	lv = ratelimit_effective(&rule, "yahoo");
	assert_int_equal(lv.hourly, 20);
	assert_int_equal(lv.burst, 10);
	lv = ratelimit_effective(&rule, "other");
	assert_int_equal(lv.hourly, 100);
	assert_int_equal(lv.burst, 10);
	lv = ratelimit_effective(&rule, "Gmail"); /* names are exact */
	assert_int_equal(lv.hourly, 100);
	lv = ratelimit_effective(&rule, NULL);
	assert_int_equal(lv.hourly, 100);
	assert_int_equal(lv.burst, 10);
	rule.n_overrides = 0;
	lv = ratelimit_effective(&rule, "gmail");
	assert_int_equal(lv.hourly, 100);
	/* zero overrides are real limits, not "unset" */
	ov[0].hourly = 0;
	ov[0].burst = 0;
	rule.n_overrides = 2;
	lv = ratelimit_effective(&rule, "gmail");
	assert_int_equal(lv.hourly, 0);
	assert_int_equal(lv.burst, 0);
}

static void test_scope_values(void **state)
{
	struct limit_rule rule = { .name = "r", .hourly = 1, .burst = 1, .burst_window = 1 };
	struct msg_identity id = { "alice@example.org", "example.org", "192.0.2.7" };
	struct msg_identity none = { NULL, NULL, NULL };

	(void)state;
	rule.scope = SCOPE_SENDER;
	assert_string_equal(ratelimit_scope_value(&rule, &id), "alice@example.org");
	assert_string_equal(ratelimit_scope_value(&rule, &none), "");
	rule.scope = SCOPE_SENDER_DOMAIN;
	assert_string_equal(ratelimit_scope_value(&rule, &id), "example.org");
	assert_string_equal(ratelimit_scope_value(&rule, &none), "");
	rule.scope = SCOPE_CLIENT;
	assert_string_equal(ratelimit_scope_value(&rule, &id), "192.0.2.7");
	assert_string_equal(ratelimit_scope_value(&rule, &none), "");
	rule.scope = SCOPE_GLOBAL;
	assert_string_equal(ratelimit_scope_value(&rule, &id), "*");
	assert_string_equal(ratelimit_scope_value(&rule, &none), "*");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_window_table),
		cmocka_unit_test(test_retry_is_exact),
		cmocka_unit_test(test_random_run_properties),
		cmocka_unit_test(test_effective_overrides),
		cmocka_unit_test(test_scope_values),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
