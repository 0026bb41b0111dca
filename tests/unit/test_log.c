/*
 * test_log.c - the quoting of log line values (log_quote, log_quote_into,
 * log_msg): a table of hostile values (quoted local parts with spaces,
 * forged fields, SRS addresses, quotes, backslashes, control bytes, UTF-8,
 * empty and over-long values) written into lines with other fields, then
 * read back field by field by the independent reader of logparse.h and
 * compared with what was written; plain values written bare, byte for
 * byte as before; every byte value; every buffer size; random values; the
 * ring of LOG_QUOTE_SLOTS buffers per thread; and whole lines through
 * log_msg's standard error copy.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "logparse.h"

#define LOG_LINE_TEST 4096 /* longer than a log_msg line may be */

/* a value and whether log_quote may cut it for length */
struct hostile {
	const char *v;
	bool cut;
};

static char long_plain[2000 + 1];  /* bare but too long: quoted and cut */
static char long_quotes[600 + 1];  /* every byte escaped as \" */
static char long_ctl[400 + 1];     /* every byte escaped as \xHH */
static char long_spaces[1500 + 1]; /* "a b a b ..." */
static char fits_1023[1023 + 1];   /* the longest bare value */
static char fits_1024[1024 + 1];   /* one more: quoted and cut */

static const struct hostile table[] = {
	/* quoted local parts, forged fields */
	{ "\"x client=1.2.3.4\"@evil.example", false },
	{ "\"john doe\"@example.com", false },
	{ "\"x\" client=1.2.3.4 sender=boss@example.com", false },
	{ "u@evil.example client=6.6.6.6 sender=boss@example.com", false },
	{ "\"a reasons=- class=personal action=accept\"@evil.example", false },
	{ "reasons=rcpt-count", false },
	{ "x reasons=-", false },
	{ " reasons=-", false },
	{ "class=personal", false },
	/* '=' in addresses */
	{ "a=b@x.example", false },
	{ "SRS0=ab=cd=example.com=u@fwd.example", false },
	{ "SRS1=xyz=fwd.example==ab=cd=example.com=u@fwd2.example", false },
	{ "=", false },
	{ "==", false },
	{ "a=", false },
	{ "=a", false },
	/* quotes and backslashes */
	{ "\"", false },
	{ "\"\"", false },
	{ "\\", false },
	{ "\\\"", false },
	{ "\"a\\\"b\"@evil.example", false },
	{ "a\\b@x.example", false },
	{ "\\x41", false },
	{ "\\x4", false },
	{ "end\\", false },
	{ "\"unterminated", false },
	/* white space and control bytes (NUL cannot be in a C string) */
	{ " ", false },
	{ "  ", false },
	{ "a ", false },
	{ " a", false },
	{ "tab\there", false },
	{ "cr\rlf\nnext: line", false },
	{ "\r\nNOQUEUE: action=tempfail rcpt=x@gmail.com", false },
	{ "a\x01" "b", false },
	{ "\x1b[31mred\x1b[0m", false },
	{ "\x7f", false },
	{ "x\x0b\x0c\x1f", false },
	/* UTF-8, valid and not */
	{ "j\xc3\xb6rg@example.com", false },
	{ "\xf0\x9f\x98\x80@x.example", false },
	{ "\xff\xfe", false },
	{ "\xc3(", false },
	{ "\xe2\x80\xae" "moc.elpmaxe@x", false },
	/* look-alikes of the cut marker and of empty */
	{ "...", false },
	{ "a...", false },
	{ "-", false },
	{ "", false },
	/* over-long */
	{ long_plain, true },
	{ long_quotes, true },
	{ long_ctl, true },
	{ long_spaces, true },
	{ fits_1023, false },
	{ fits_1024, true },
};
#define N_TABLE (sizeof(table) / sizeof(table[0]))

/* plain values: written bare, exactly as they are */
static const char *const plain[] = {
	"alice@example.com",
	"a.b+c-d_e@sub.example.co.uk",
	"o'brien@example.ie",
	"{x}@y.com",
	"192.0.2.7",
	"2001:db8::1",
	"[192.0.2.1]",
	"u@[ipv6:2001:db8::1]",
	"google:10,yahoo:10",
	"google:1",
	"rcpt-count,list-unsubscribe,no-one-click",
	"-",
	"<>",
	"invalid",
	"per-sender",
	"NOQUEUE",
	"x",
};
#define N_PLAIN (sizeof(plain) / sizeof(plain[0]))

static int setup(void **state)
{
	size_t i;

	(void)state;
	memset(long_plain, 'a', sizeof(long_plain) - 1);
	memset(long_quotes, '"', sizeof(long_quotes) - 1);
	memset(long_ctl, '\x01', sizeof(long_ctl) - 1);
	for (i = 0; i + 1 < sizeof(long_spaces); i++)
		long_spaces[i] = i % 2 ? ' ' : 'a';
	memset(fits_1023, 'f', sizeof(fits_1023) - 1);
	memset(fits_1024, 'g', sizeof(fits_1024) - 1);
	return 0;
}

/* bare_value - V would be written as it is (non-empty, only bare bytes) */
static bool bare_value(const char *v)
{
	if (*v == '\0')
		return false;
	for (; *v != '\0'; v++)
		if (!lp_bare_byte((unsigned char)*v))
			return false;
	return true;
}

/* expect_field - field I of L is KEY and reads back as WANT (or its cut start) */
static void expect_field(const struct lp_line *l, int i, const char *key, const char *want,
			 bool cut_ok, size_t row)
{
	if (i >= l->n)
		fail_msg("row %zu: field %d (%s) missing, %d fields", row, i, key, l->n);
	if (strcmp(l->f[i].key, key) != 0)
		fail_msg("row %zu: field %d is '%s', want '%s'", row, i, l->f[i].key, key);
	if (!lp_same_or_cut(l->f[i].value, l->f[i].len, want, cut_ok))
		fail_msg("row %zu: field %s reads back as '%s' (%zu bytes), want %zu bytes%s", row,
			 key, l->f[i].value, l->f[i].len, strlen(want),
			 cut_ok ? " or their start and ..." : "");
}

/*
 * Each hostile value in three fields of a refusal-like line at once,
 * between plain ones: the line reads back as exactly those fields.
 */
static void test_hostile_lines(void **state)
{
	char line[8192];
	struct lp_line l;
	size_t i;

	(void)state;
	for (i = 0; i < N_TABLE; i++) {
		const struct hostile *h = &table[i];
		const char *q;

		snprintf(line, sizeof(line),
			 "action=tempfail rcpt=%s network=google rule=per-sender used=10/10 "
			 "sender=%s client=%s reasons=%s",
			 log_quote(h->v), log_quote(h->v), log_quote("192.0.2.7"), log_quote(h->v));
		if (lp_parse(line, &l) != 0)
			fail_msg("row %zu: the line does not parse: %s", i, line);
		assert_int_equal(l.n, 8);
		expect_field(&l, 0, "action", "tempfail", false, i);
		expect_field(&l, 1, "rcpt", h->v, h->cut, i);
		expect_field(&l, 2, "network", "google", false, i);
		expect_field(&l, 3, "rule", "per-sender", false, i);
		expect_field(&l, 4, "used", "10/10", false, i);
		expect_field(&l, 5, "sender", h->v, h->cut, i);
		expect_field(&l, 6, "client", "192.0.2.7", false, i);
		expect_field(&l, 7, "reasons", h->v, h->cut, i);
		/* bare exactly when the value is plain; cut exactly when the table says so */
		q = log_quote(h->v);
		if (bare_value(h->v) && strlen(h->v) < LOG_QUOTE_SIZE)
			assert_string_equal(q, h->v);
		else
			assert_true(q[0] == '"' && q[strlen(q) - 1] == '"');
		if (h->cut) {
			assert_true(strlen(q) < LOG_QUOTE_SIZE);
			assert_true(strlen(q) > LOG_QUOTE_SIZE - 16); /* cut as late as it can */
			assert_memory_equal(q + strlen(q) - 4, "...\"", 4);
			assert_false(l.f[1].len == strlen(h->v));
		} else {
			assert_int_equal(l.f[1].len, strlen(h->v));
		}
	}
}

/* plain values are bare, and today's lines come out byte for byte */
static void test_plain_bare(void **state)
{
	char line[1024], out[LOG_QUOTE_SIZE];
	size_t i;

	(void)state;
	for (i = 0; i < N_PLAIN; i++) {
		assert_string_equal(log_quote(plain[i]), plain[i]);
		assert_int_equal(log_quote_into(out, sizeof(out), plain[i]), strlen(plain[i]));
		assert_string_equal(out, plain[i]);
	}
	snprintf(line, sizeof(line),
		 "action=%s rcpt=%s network=%s rule=%s limit=%s used=%ld/%ld window=%lds "
		 "retry=%lds sender=%s client=%s",
		 "tempfail", log_quote("x@gmail.com"), log_quote("google"), log_quote("per-sender"),
		 "burst", 10L, 10L, 60L, 12L, log_quote("a@example.com"), log_quote("192.0.2.7"));
	assert_string_equal(line, "action=tempfail rcpt=x@gmail.com network=google "
				  "rule=per-sender limit=burst used=10/10 window=60s retry=12s "
				  "sender=a@example.com client=192.0.2.7");
	snprintf(line, sizeof(line),
		 "class=%s action=%s sender=%s client=%s rcpts=%u known=%u velocity=%u "
		 "tempfailed=%u networks=%s mode=%s reasons=%s%s",
		 "bulk", "tag", log_quote("a@example.com"), log_quote("192.0.2.7"), 11u, 9u, 14u, 1u,
		 log_quote("google:10,yahoo:1"), "enforce",
		 log_quote("rcpt-count,list-unsubscribe,no-one-click"), "");
	assert_string_equal(line, "class=bulk action=tag sender=a@example.com client=192.0.2.7 "
				  "rcpts=11 known=9 velocity=14 tempfailed=1 "
				  "networks=google:10,yahoo:1 mode=enforce "
				  "reasons=rcpt-count,list-unsubscribe,no-one-click");
	/* and what is not plain is quoted, with the escapes of log.h */
	assert_string_equal(log_quote(""), "\"\"");
	assert_string_equal(log_quote(NULL), "\"\"");
	assert_string_equal(log_quote("a b"), "\"a b\"");
	assert_string_equal(log_quote("a=b@x"), "\"a=b@x\"");
	assert_string_equal(log_quote("\"x client=1.2.3.4\"@evil.example"),
			    "\"\\\"x client=1.2.3.4\\\"@evil.example\"");
	assert_string_equal(log_quote("a\\b"), "\"a\\\\b\"");
	assert_string_equal(log_quote("\t\x7f\xc3\xb6"), "\"\\x09\\x7f\\xc3\\xb6\"");
}

/* "a" BYTE "b" for every byte: quoted exactly when the byte is not bare, reads back */
static void test_every_byte(void **state)
{
	char v[4], out[64], line[96];
	struct lp_line l;
	int b;

	(void)state;
	for (b = 1; b < 256; b++) {
		v[0] = 'a';
		v[1] = (char)b;
		v[2] = 'b';
		v[3] = '\0';
		log_quote_into(out, sizeof(out), v);
		assert_int_equal(out[0] == '"', !lp_bare_byte((unsigned char)b));
		snprintf(line, sizeof(line), "k=%s z=1", out);
		if (lp_parse(line, &l) != 0)
			fail_msg("byte 0x%02x: '%s' does not parse", b, line);
		assert_int_equal(l.n, 2);
		assert_int_equal(l.f[0].len, 3);
		assert_memory_equal(l.f[0].value, v, 3);
	}
}

/*
 * Every size from 0 to 64 for every table value: nothing written past
 * SIZE, the length returned is the string's, and the result reads back as
 * the value or its start followed by "..."; below 8 bytes, "".
 */
static void test_sizes(void **state)
{
	char buf[64 + 16], line[160];
	struct lp_line l;
	size_t i, size, n;

	(void)state;
	for (i = 0; i < N_TABLE; i++) {
		for (size = 0; size <= 64; size++) {
			memset(buf, 0x5a, sizeof(buf));
			n = log_quote_into(buf, size, table[i].v);
			for (size_t k = size; k < sizeof(buf); k++)
				if (buf[k] != 0x5a)
					fail_msg("row %zu size %zu: byte %zu written", i, size, k);
			if (size == 0)
				continue;
			assert_int_equal(n, strlen(buf));
			assert_true(n < size);
			if (size < 8) {
				assert_int_equal(n, 0);
				continue;
			}
			snprintf(line, sizeof(line), "k=%s", buf);
			if (lp_parse(line, &l) != 0)
				fail_msg("row %zu size %zu: '%s' does not parse", i, size, line);
			assert_int_equal(l.n, 1);
			if (!lp_same_or_cut(l.f[0].value, l.f[0].len, table[i].v, true))
				fail_msg("row %zu size %zu: '%s' is neither the value nor its start",
					 i, size, buf);
		}
	}
}

/* random bytes, random lengths: always one field that reads back */
static void test_random(void **state)
{
	static char v[1600];
	char line[LOG_QUOTE_SIZE + 16];
	struct lp_line l;
	unsigned seed = 20261208;
	size_t len, k;
	int i;

	(void)state;
	for (i = 0; i < 50000; i++) {
		len = (size_t)rand_r(&seed) % (i % 10 == 0 ? sizeof(v) - 1 : 40);
		for (k = 0; k < len; k++) {
			int r = rand_r(&seed);

			/* mostly the bytes that matter: quote, backslash, space, '=', 'x' */
			v[k] = r % 3 ? "\"\\ =x\x01\x7f\xc3"[r % 8] : (char)(1 + r % 255);
		}
		v[len] = '\0';
		snprintf(line, sizeof(line), "a=1 v=%s b=2", log_quote(v));
		if (lp_parse(line, &l) != 0)
			fail_msg("random %d: does not parse: %s", i, line);
		assert_int_equal(l.n, 3);
		assert_string_equal(l.f[2].value, "2");
		if (!lp_same_or_cut(l.f[1].value, l.f[1].len, v, true))
			fail_msg("random %d: reads back differently: %s", i, line);
		/* only a value too long for its buffer is cut */
		if (4 * len + 10 <= LOG_QUOTE_SIZE)
			assert_int_equal(l.f[1].len, len);
	}
}

/* the ring: LOG_QUOTE_SLOTS results usable together, then reused in turn */
static void test_ring(void **state)
{
	const char *p[LOG_QUOTE_SLOTS + 1];
	char v[LOG_QUOTE_SLOTS + 1][16], line[512];
	struct lp_line l;
	int i, k;

	(void)state;
	for (i = 0; i <= LOG_QUOTE_SLOTS; i++) {
		snprintf(v[i], sizeof(v[i]), "v %d=x", i);
		p[i] = log_quote(v[i]);
	}
	for (i = 0; i < LOG_QUOTE_SLOTS; i++)
		for (k = i + 1; k < LOG_QUOTE_SLOTS; k++)
			assert_ptr_not_equal(p[i], p[k]);
	/* the ninth took the first one's buffer */
	assert_ptr_equal(p[LOG_QUOTE_SLOTS], p[0]);
	assert_string_equal(p[0], "\"v 8=x\"");
	for (i = 1; i < LOG_QUOTE_SLOTS; i++) {
		char want[32];

		snprintf(want, sizeof(want), "\"v %d=x\"", i);
		assert_string_equal(p[i], want);
	}
	/* eight quoted values in one line, as a log_msg call may use */
	snprintf(line, sizeof(line), "a=%s b=%s c=%s d=%s e=%s f=%s g=%s h=%s", log_quote("1 a"),
		 log_quote("2=b"), log_quote("3\"c"), log_quote("4\\d"), log_quote("5\te"),
		 log_quote(""), log_quote("7 g"), log_quote("8 h"));
	assert_int_equal(lp_parse(line, &l), 0);
	assert_int_equal(l.n, 8);
	assert_string_equal(l.f[0].value, "1 a");
	assert_string_equal(l.f[1].value, "2=b");
	assert_string_equal(l.f[2].value, "3\"c");
	assert_string_equal(l.f[3].value, "4\\d");
	assert_string_equal(l.f[4].value, "5\te");
	assert_string_equal(l.f[5].value, "");
	assert_string_equal(l.f[6].value, "7 g");
	assert_string_equal(l.f[7].value, "8 h");
}

/* each thread has its own ring: values quoted at the same time never mix */
static void *ring_thread(void *arg)
{
	char v[64], want[80];
	const char *a, *b;
	int i;

	for (i = 0; i < 20000; i++) {
		snprintf(v, sizeof(v), "t%ld x=%d", (long)(intptr_t)arg, i);
		snprintf(want, sizeof(want), "\"%s\"", v);
		a = log_quote(v);
		b = log_quote("y z");
		if (strcmp(a, want) != 0 || strcmp(b, "\"y z\"") != 0)
			return (void *)1;
	}
	return NULL;
}

static void test_ring_threads(void **state)
{
	pthread_t t[4];
	void *rv;
	long i;

	(void)state;
	for (i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, ring_thread, (void *)(intptr_t)i), 0);
	for (i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], &rv), 0);
		assert_null(rv);
	}
}

/* capture - the standard error copy of what FN(ARG) logs, into OUT */
static void capture(void (*fn)(const void *), const void *arg, char *out, size_t size)
{
	char path[] = "/tmp/obm-test-log.XXXXXX";
	int fd = mkstemp(path), saved;
	ssize_t n;

	assert_true(fd >= 0);
	unlink(path);
	fflush(stderr);
	saved = dup(2);
	assert_true(saved >= 0);
	assert_int_equal(dup2(fd, 2), 2);
	fn(arg);
	fflush(stderr);
	assert_int_equal(dup2(saved, 2), 2);
	close(saved);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	n = read(fd, out, size - 1);
	close(fd);
	assert_true(n > 0);
	out[n] = '\0';
}

static void log_refusal(const void *arg)
{
	const char *v = arg;

	log_msg(LOG_DEBUG, "4F1A2B3C",
		"action=%s rcpt=%s network=%s rule=%s limit=%s used=%ld/%ld window=%lds "
		"retry=%lds sender=%s client=%s",
		"tempfail", log_quote(v), log_quote("google"), log_quote("per-sender"), "burst",
		10L, 10L, 60L, 12L, log_quote(v), log_quote("192.0.2.7"));
}

/*
 * the longest decision line: sender, networks and reasons each cut at
 * LOG_QUOTE_SIZE, the longest client address, the largest numbers
 */
static void log_longest(const void *arg)
{
	(void)arg;
	log_msg(LOG_DEBUG, "",
		"class=%s action=%s sender=%s client=%s rcpts=%u known=%u velocity=%u "
		"tempfailed=%u networks=%s mode=%s reasons=%s%s",
		"spam-risk", "tempfail", log_quote(long_ctl),
		log_quote("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"), 4294967295u,
		4294967295u, 4294967295u, 4294967295u, log_quote(long_spaces), "monitor",
		log_quote(long_ctl), " limited=no");
}

/* a queue id that is not plain (the MTA's, never the client's) */
static void log_odd_qid(const void *arg)
{
	log_msg(LOG_DEBUG, arg, "class=%s sender=%s", "personal", log_quote("a@example.com"));
}

/* a line longer than any the daemon writes: cut, but still one line */
static void log_too_long(const void *arg)
{
	log_msg(LOG_DEBUG, "4F1A2B3C", "note=%s", (const char *)arg);
}

/* whole lines through log_msg (its standard error copy, as with -f) */
static void test_log_msg(void **state)
{
	static char out[16384];
	struct lp_line l;
	const char *prefix = "outbound-milter: 4F1A2B3C: ", *np = "outbound-milter: NOQUEUE: ";
	size_t i, len;

	(void)state;
	log_open(true);
	for (i = 0; i < N_TABLE; i++) {
		capture(log_refusal, table[i].v, out, sizeof(out));
		len = strlen(out);
		assert_true(len > 0 && out[len - 1] == '\n');
		assert_null(memchr(out, '\n', len - 1)); /* one line, whatever the value */
		assert_memory_equal(out, prefix, strlen(prefix));
		if (lp_parse_n(out + strlen(prefix), len - 1 - strlen(prefix), &l) != 0)
			fail_msg("row %zu: the logged line does not parse: %s", i, out);
		assert_int_equal(l.n, 10);
		expect_field(&l, 0, "action", "tempfail", false, i);
		expect_field(&l, 1, "rcpt", table[i].v, table[i].cut, i);
		expect_field(&l, 7, "retry", "12s", false, i);
		expect_field(&l, 8, "sender", table[i].v, table[i].cut, i);
		expect_field(&l, 9, "client", "192.0.2.7", false, i);
	}
	capture(log_longest, NULL, out, sizeof(out));
	len = strlen(out);
	assert_memory_equal(out, np, strlen(np));
	if (lp_parse_n(out + strlen(np), len - 1 - strlen(np), &l) != 0)
		fail_msg("the longest line is cut short (%zu bytes): ...%s", len,
			 out + (len > 80 ? len - 80 : 0));
	assert_int_equal(l.n, 12);
	expect_field(&l, 2, "sender", long_ctl, true, 0);
	expect_field(&l, 3, "client", "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", false, 0);
	expect_field(&l, 8, "networks", long_spaces, true, 0);
	expect_field(&l, 10, "reasons", long_ctl, true, 0);
	expect_field(&l, 11, "limited", "no", false, 0);

	capture(log_odd_qid, "Q 1 client=6.6.6.6", out, sizeof(out));
	assert_string_equal(out, "outbound-milter: \"Q 1 client=6.6.6.6\": class=personal "
				 "sender=a@example.com\n");
	capture(log_odd_qid, "", out, sizeof(out));
	assert_string_equal(out, "outbound-milter: NOQUEUE: class=personal sender=a@example.com\n");
	{
		static char big[3 * LOG_LINE_TEST];

		memset(big, 'b', sizeof(big) - 1);
		capture(log_too_long, big, out, sizeof(out));
		len = strlen(out);
		assert_true(len > 4 * LOG_QUOTE_SIZE - 64 && out[len - 1] == '\n');
		assert_null(memchr(out, '\n', len - 1));
	}
	closelog();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hostile_lines),
		cmocka_unit_test(test_plain_bare),
		cmocka_unit_test(test_every_byte),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_random),
		cmocka_unit_test(test_ring),
		cmocka_unit_test(test_ring_threads),
		cmocka_unit_test(test_log_msg),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
