/*
 * test_stats.c - a transaction's counters and log entries as handed to
 * store_finish: formatted field names (short and long), copies of the
 * caller's strings, many log entries whose arrays grow, memory reused from
 * one batch to the next without one batch seeing another's, a huge batch,
 * and threads each with their own batch. Run under ASan by
 * make check-asan, which catches any pointer left to reused memory.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "stats.h"

static void test_counts(void **state)
{
	struct stats_batch b;
	struct store_finish f = { 0 };
	char sender[64], longname[600];

	(void)state;
	stats_init(&b);
	snprintf(sender, sizeof(sender), "alice@example.org");
	stats_count(&b, COUNT_STATS, NULL, 1, "msg:%s", "personal");
	stats_count(&b, COUNT_SENDER, sender, 3, "net:%s", "google");
	stats_count(&b, COUNT_TOP, sender, 10, NULL);
	stats_count(&b, COUNT_STATS, NULL, 0, "never:%s", "x"); /* 0: not counted */
	stats_count(&b, COUNT_STATS, NULL, 5, "%s%s:%s", "a", "", "b"); /* empty parts */
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	stats_count(&b, COUNT_STATS, NULL, 2, "net:%s:accepted", longname);
	/* the caller's buffer changes: the batch kept its own copy */
	snprintf(sender, sizeof(sender), "mallory@example.org");
	stats_attach(&b, &f);
	assert_int_equal(f.n_counts, 5);
	assert_string_equal(f.counts[3].field, "a:b");
	assert_string_equal(f.counts[0].field, "msg:personal");
	assert_null(f.counts[0].sender);
	assert_int_equal(f.counts[0].by, 1);
	assert_string_equal(f.counts[1].sender, "alice@example.org");
	assert_string_equal(f.counts[1].field, "net:google");
	assert_int_equal(f.counts[1].key, COUNT_SENDER);
	assert_int_equal(f.counts[2].key, COUNT_TOP);
	assert_null(f.counts[2].field);
	assert_int_equal(f.counts[2].by, 10);
	assert_int_equal(strlen(f.counts[4].field), strlen("net::accepted") + 599);
	assert_memory_equal(f.counts[4].field + 4, longname, 599);
	assert_string_equal(f.counts[4].field + 4 + 599, ":accepted");
	assert_int_equal(f.n_logs, 0);
	stats_free(&b);
}

/* enough entries and fields to move every array several times */
static void test_many_logs(void **state)
{
	struct stats_batch b;
	struct store_finish f = { 0 };
	char v[32], w[32];
	size_t i;

	(void)state;
	stats_init(&b);
	for (i = 0; i < 500; i++) {
		snprintf(v, sizeof(v), "r%zu@example.net", i);
		snprintf(w, sizeof(w), "%zu", i * 7);
		if (i % 2 == 0)
			stats_log(&b, 2, "rcpt", v, "used", w);
		else
			stats_log(&b, 3, "rcpt", v, "used", w, "note", NULL);
		snprintf(v, sizeof(v), "%zu", i);
		stats_count(&b, COUNT_STATS, NULL, 1, "n:%s", v);
	}
	stats_attach(&b, &f);
	assert_int_equal(f.n_logs, 500);
	assert_int_equal(f.n_counts, 500);
	for (i = 0; i < 500; i++) {
		snprintf(v, sizeof(v), "r%zu@example.net", i);
		snprintf(w, sizeof(w), "%zu", i * 7);
		assert_int_equal(f.logs[i].n_fields, i % 2 == 0 ? 2 : 3);
		assert_string_equal(f.logs[i].fields[0], "rcpt");
		assert_string_equal(f.logs[i].fields[1], v);
		assert_string_equal(f.logs[i].fields[3], w);
		if (i % 2)
			assert_string_equal(f.logs[i].fields[5], "");
		snprintf(v, sizeof(v), "n:%zu", i);
		assert_string_equal(f.counts[i].field, v);
	}
	stats_free(&b);
}

/* the next batch starts empty and reuses the memory */
static void test_reuse(void **state)
{
	struct stats_batch b;
	struct store_finish f = { 0 };
	const char *first;

	(void)state;
	stats_init(&b);
	stats_count(&b, COUNT_SENDER, "one@example.org", 1, "msg");
	stats_attach(&b, &f);
	first = f.counts[0].sender;
	stats_free(&b);

	memset(&f, 0, sizeof(f));
	stats_init(&b);
	stats_attach(&b, &f);
	assert_int_equal(f.n_counts, 0);
	assert_int_equal(f.n_logs, 0);
	stats_count(&b, COUNT_SENDER, "two@example.org", 1, "msg");
	stats_attach(&b, &f);
	assert_int_equal(f.n_counts, 1);
	assert_string_equal(f.counts[0].sender, "two@example.org");
	assert_ptr_equal(f.counts[0].sender, first); /* same space, no new allocation */
	stats_free(&b);
	stats_free(&b); /* twice is harmless */
}

/* a batch bigger than what is kept afterwards (a message to 5,000 recipients) */
static void test_huge(void **state)
{
	struct stats_batch b;
	struct store_finish f = { 0 };
	char big[2000];
	size_t i;

	(void)state;
	memset(big, 'b', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	for (int round = 0; round < 2; round++) {
		stats_init(&b);
		for (i = 0; i < 1000; i++)
			stats_log(&b, 1, "text", big);
		stats_attach(&b, &f);
		assert_int_equal(f.n_logs, 1000);
		for (i = 0; i < 1000; i += 97)
			assert_string_equal(f.logs[i].fields[1], big);
		stats_free(&b);
	}
}

static void *thread_main(void *arg)
{
	const char *name = arg;
	struct stats_batch b;
	struct store_finish f = { 0 };

	for (int round = 0; round < 200; round++) {
		stats_init(&b);
		for (int i = 0; i < 20; i++) {
			char num[12];

			snprintf(num, sizeof(num), "%d", i);
			stats_count(&b, COUNT_SENDER, name, i + 1, "%s:%s", name, num);
		}
		stats_log(&b, 1, "who", name);
		stats_attach(&b, &f);
		for (int i = 0; i < 20; i++) {
			char want[64];

			snprintf(want, sizeof(want), "%s:%d", name, i);
			if (strcmp(f.counts[i].field, want) != 0 ||
			    strcmp(f.counts[i].sender, name) != 0 ||
			    strcmp(f.logs[0].fields[1], name) != 0)
				return (void *)1;
		}
		stats_free(&b);
	}
	return NULL;
}

static void test_threads(void **state)
{
	static const char *names[4] = { "t0@a.example", "t1@b.example", "t2@c.example",
					"t3@d.example" };
	pthread_t t[4];
	void *rv;

	(void)state;
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, thread_main, (void *)names[i]), 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], &rv), 0);
		assert_null(rv);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counts),
		cmocka_unit_test(test_many_logs),
		cmocka_unit_test(test_reuse),
		cmocka_unit_test(test_huge),
		cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
