/*
 * test_resp.c - the request encoder: byte for byte what hiredis's own
 * formatter produces for the same arguments (random binary arguments,
 * numbers at the limits, keys assembled from pieces), buffer reuse, and
 * the pieces of a bulk string that do not add up to its announced length.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "resp.h"

/* what hiredis sends for ARGV */
static void assert_same_as_hiredis(const struct resp_buf *b, int argc, const char **argv,
				   const size_t *lens)
{
	char *want = NULL;
	int n = redisFormatCommandArgv(&want, argc, argv, lens);

	assert_true(n > 0);
	assert_false(b->failed);
	assert_int_equal(b->len, (size_t)n);
	assert_memory_equal(b->p, want, (size_t)n);
	free(want);
}

static void test_random_commands(void **state)
{
	struct resp_buf b = { 0 };
	char pool[64][300];
	const char *argv[64];
	size_t lens[64];
	unsigned seed = 12345;

	(void)state;
	for (int round = 0; round < 2000; round++) {
		int argc = 1 + (int)(rand_r(&seed) % 64);

		resp_reset(&b);
		resp_array(&b, (size_t)argc);
		for (int i = 0; i < argc; i++) {
			size_t len = (size_t)(rand_r(&seed) % (i % 7 == 0 ? 300 : 12));

			for (size_t k = 0; k < len; k++)
				pool[i][k] = (char)(rand_r(&seed) & 0xff); /* NUL, CR, LF too */
			argv[i] = pool[i];
			lens[i] = len;
			resp_bulk(&b, argv[i], len);
		}
		assert_same_as_hiredis(&b, argc, argv, lens);
	}
	/* the buffer was reused: it grew once to the largest command */
	assert_true(b.cap >= b.len);
	assert_true(b.cap <= 64 * 320 * 2);
	resp_free(&b);
	assert_null(b.p);
}

static void test_numbers(void **state)
{
	static const long long values[] = { 0, 1, -1, 9, 10, 99, 100, -100, 3600000,
					    1700000000000LL, LLONG_MAX, LLONG_MIN };
	struct resp_buf b = { 0 };
	char text[sizeof(values) / sizeof(values[0])][32];
	const char *argv[sizeof(values) / sizeof(values[0])];
	size_t lens[sizeof(values) / sizeof(values[0])];
	size_t n = sizeof(values) / sizeof(values[0]);

	(void)state;
	resp_array(&b, n);
	for (size_t i = 0; i < n; i++) {
		snprintf(text[i], sizeof(text[i]), "%lld", values[i]);
		argv[i] = text[i];
		lens[i] = strlen(text[i]);
		assert_int_equal(resp_ll_len(values[i]), lens[i]);
		resp_ll(&b, values[i]);
	}
	assert_same_as_hiredis(&b, (int)n, argv, lens);
	resp_free(&b);
}

static void test_pieces(void **state)
{
	struct resp_buf b = { 0 };
	const char *argv[3] = { "ZADD", "obm:{s:a@b.example}:vel", "" };
	size_t lens[3] = { 4, strlen(argv[1]), 0 };

	(void)state;
	resp_array(&b, 3);
	resp_str(&b, "ZADD");
	resp_bulk_begin(&b, lens[1]);
	resp_put_str(&b, "obm:");
	resp_put(&b, "{s:", 3);
	resp_put_str(&b, "a@b.example");
	resp_put_str(&b, "}:vel");
	assert_true(resp_bulk_end(&b));
	resp_bulk(&b, "", 0);
	assert_same_as_hiredis(&b, 3, argv, lens);

	/* too short: refused, and the buffer says so until reset */
	resp_reset(&b);
	resp_array(&b, 1);
	resp_bulk_begin(&b, 10);
	resp_put_str(&b, "short");
	assert_false(resp_bulk_end(&b));
	assert_true(b.failed);
	resp_str(&b, "ignored");
	assert_true(b.failed);

	/* too long: refused at the piece that overflows */
	resp_reset(&b);
	assert_false(b.failed);
	resp_array(&b, 1);
	resp_bulk_begin(&b, 3);
	resp_put_str(&b, "four");
	assert_true(b.failed);
	assert_false(resp_bulk_end(&b));
	resp_free(&b);
}

/* one very large argument (a 1 MB header value would look like this) */
static void test_large(void **state)
{
	struct resp_buf b = { 0 };
	size_t len = 1 << 20;
	char *big = malloc(len);
	const char *argv[2] = { "SET", big };
	size_t lens[2] = { 3, len };

	(void)state;
	assert_non_null(big);
	memset(big, 'x', len);
	resp_array(&b, 2);
	resp_str(&b, "SET");
	resp_bulk(&b, big, len);
	assert_same_as_hiredis(&b, 2, argv, lens);
	resp_free(&b);
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_commands),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_pieces),
		cmocka_unit_test(test_large),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
