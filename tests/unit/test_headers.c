/*
 * test_headers.c - the header collector and the From address-list parser:
 * a table of real-world From values (RFC 5322 appendix A shapes, mailer
 * habits, broken ones) with the expected mailboxes, every flag of
 * headers_add, the FROM_MAX cap, and hostile input (random bytes with a
 * fixed seed, 1 MB values) that must never crash and must keep the
 * parser's invariants.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "address.h"
#include "headers.h"

/* an expected mailbox: its normalised local@domain, or BAD for ADDR_INVALID */
#define BAD NULL
#define CASE_MAX 4

struct from_case {
	const char *value;
	size_t n;                    /* mailboxes found */
	const char *want[CASE_MAX];  /* the first min(n, CASE_MAX) of them */
};

static const struct from_case cases[] = {
	/* display names, quoted strings, case */
	{ "\"Doe, John\" <John.Doe@Example.COM>", 1, { "john.doe@example.com" } },
	{ "\"Joe Q. Public\" <john.q.public@example.com>", 1, { "john.q.public@example.com" } },
	{ "Joe Q. Public <john.q.public@example.com>", 1, { "john.q.public@example.com" } },
	{ "\"a@b\" <c@d.example>", 1, { "c@d.example" } },
	{ "\"Giant; \\\"Big\\\" Box\" <sysservices@example.net>", 1, { "sysservices@example.net" } },
	{ "\"unbalanced \\\"quote\" <q@example.com>", 1, { "q@example.com" } },
	{ "John \"Johnny\" Doe <jd@example.com>", 1, { "jd@example.com" } },
	{ "<boss@nil.test>", 1, { "boss@nil.test" } },
	{ "user@example.org", 1, { "user@example.org" } },
	{ "John <JOHN@EXAMPLE.COM.>", 1, { "john@example.com" } },
	{ "Tagged <user+tag@example.com>", 1, { "user+tag@example.com" } },
	{ "\"john doe\"@example.com", 1, { "\"john doe\"@example.com" } },
	{ "<\"John Doe\"@Example.com>", 1, { "\"john doe\"@example.com" } },
	{ "<user@[192.0.2.1]>", 1, { "user@[192.0.2.1]" } },
	{ "user@[IPv6:2001:db8::1]", 1, { "user@[ipv6:2001:db8::1]" } },
	{ "john@example.com <john@example.com>", 1, { "john@example.com" } },
	{ "\"john@example.com\" <john@example.com>", 1, { "john@example.com" } },
	{ "[EXTERNAL] Bob <bob@partner.example>", 1, { "bob@partner.example" } },
	{ "Who? <one@y.test>", 1, { "one@y.test" } },

	/* several mailboxes, groups, empty elements */
	{ "Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>", 3,
	  { "mary@x.test", "jdoe@example.org", "one@y.test" } },
	{ "\"Smith, J.\" <j.smith@example.com>, \"Doe, J.\" <j.doe@example.com>", 2,
	  { "j.smith@example.com", "j.doe@example.com" } },
	{ "A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;", 3,
	  { "c@a.test", "joe@where.test", "jdoe@one.test" } },
	{ "A Group(Some people):Chris Jones <c@(Chris's host.)public.example>, "
	  "joe@example.org, John <jdoe@one.test> (my dear friend); (the end of the group)", 3,
	  { "c@public.example", "joe@example.org", "jdoe@one.test" } },
	{ "team: a@x.example, b@y.example;", 2, { "a@x.example", "b@y.example" } },
	{ "Team: <a@x.example>, <b@y.example>; Other <c@z.example>", 3,
	  { "a@x.example", "b@y.example", "c@z.example" } },
	{ "Undisclosed recipients:;", 0, { NULL } },
	{ "undisclosed-recipients:;", 0, { NULL } },
	{ "Re: Meeting <m@example.com>", 1, { "m@example.com" } },
	{ "a@b.example,,,,c@d.example,", 2, { "a@b.example", "c@d.example" } },
	{ "a@b.example, garbage, c@d.example", 3, { "a@b.example", BAD, "c@d.example" } },
	{ "Name <user@example.com>;", 1, { "user@example.com" } },

	/* comments */
	{ "user@example.org (Comment (nested))", 1, { "user@example.org" } },
	{ "<user@example.com> (Comment)", 1, { "user@example.com" } },
	{ "Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>", 1,
	  { "pete@silly.test" } },
	{ "(only a comment)", 0, { NULL } },

	/* obsolete syntax: routes, CFWS around dots */
	{ "<@route.example:user@example.org>", 1, { "user@example.org" } },
	{ "Mary Smith <@node.test:mary@example.net>, , jdoe@test  . example", 2,
	  { "mary@example.net", "jdoe@test.example" } },
	{ "<@a.example,@b.example:u@d.example>", 1, { "u@d.example" } },

	/* RFC 2047 encoded words, raw UTF-8 */
	{ "=?UTF-8?B?SsO2cmc=?= <jorg@example.de>", 1, { "jorg@example.de" } },
	{ "=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?= <keld@dkuug.dk>", 1, { "keld@dkuug.dk" } },
	{ "=?utf-8?B?w4lsb2lzZQ==?= =?utf-8?B?IER1cG9udA==?= <elo@example.fr>", 1,
	  { "elo@example.fr" } },
	{ "=?UTF-8?Q?Doe,_John_<x@evil.example>?= <john@example.com>", 1,
	  { "john@example.com" } },
	{ "\"=?utf-8?Q?Smith,_J?=\" <j@example.com>", 1, { "j@example.com" } },
	{ "Info =?UTF-8?Q?=3C?= <info@shop.example>", 1, { "info@shop.example" } },
	{ "J\xc3\xb6rg M\xc3\xbcller <joerg@example.de>", 1, { "joerg@example.de" } },
	{ "Bob <bob@b\xc3\xbc" "cher.example>", 1, { "bob@xn--bcher-kva.example" } },

	/* folding: CRLF + WSP, bare LF */
	{ "John Doe\r\n <john@example.com>", 1, { "john@example.com" } },
	{ "Alice <alice@example.com>,\r\n\tBob <bob@example.org>", 2,
	  { "alice@example.com", "bob@example.org" } },
	{ "Alice\n <alice@example.com>", 1, { "alice@example.com" } },
	{ "\"multi\r\n line\" <m@example.com>", 1, { "m@example.com" } },

	/* empty, blank, garbage, unbalanced */
	{ "", 0, { NULL } },
	{ " \t \r\n ", 0, { NULL } },
	{ "\"unterminated <a@b.example>", 1, { BAD } },
	{ "<<<>>>", 1, { BAD } },
	{ "@@@", 1, { BAD } },
	{ "<>", 1, { BAD } },
	{ "John Doe", 1, { BAD } },
	{ "john doe@example.com", 1, { BAD } },
	{ "John <john@example.com> extra words", 1, { BAD } },
	{ "<a@example.com> <b@example.com>", 1, { BAD } },
	{ "a@b.example (unclosed comment", 1, { BAD } },
	{ "John <john@example.com", 1, { BAD } },
	{ "john@example.com>", 1, { BAD } },
	{ "John) <john@example.com>", 1, { BAD } },
	{ "a@b@c.example", 1, { BAD } },
	{ "user@", 1, { BAD } },
	{ "user@[192.0.2.1", 1, { BAD } },
	{ ")(", 1, { BAD } },
	{ "Bob] <bob@example.com>", 1, { BAD } },
	{ "x\\y <a@b.example>", 1, { BAD } },
	{ "a: b: c@d.example;", 1, { BAD } },
	{ "<a@b.example>: c@d.example;", 1, { BAD } },
	{ "ok@example.com, <<bad>>, also@example.org", 3,
	  { "ok@example.com", BAD, "also@example.org" } },
};

static void check_case(const struct from_case *c, size_t idx)
{
	struct address out[CASE_MAX];
	size_t n;

	memset(out, 0x5a, sizeof(out));
	n = headers_parse_addresses(c->value, out, CASE_MAX);
	if (n != c->n)
		fail_msg("case %zu [%s]: %zu mailboxes, want %zu", idx, c->value, n, c->n);
	for (size_t i = 0; i < n && i < CASE_MAX; i++) {
		const struct address *a = &out[i];

		if (c->want[i] == BAD) {
			if (a->status != ADDR_INVALID || a->full[0] != '\0')
				fail_msg("case %zu [%s] mailbox %zu: status %d (%s), want invalid",
					 idx, c->value, i, (int) a->status, a->full);
		} else if (a->status != ADDR_OK || strcmp(a->full, c->want[i]) != 0) {
			fail_msg("case %zu [%s] mailbox %zu: status %d (%s), want %s",
				 idx, c->value, i, (int) a->status,
				 a->status == ADDR_OK ? a->full : "-", c->want[i]);
		}
	}
}

static void test_from_table(void **state)
{
	(void) state;
	assert_true(sizeof(cases) / sizeof(cases[0]) >= 40);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_case(&cases[i], i);
}

/* what every parse must satisfy, whatever the input */
static void check_invariants(const char *value, const struct address *out,
			     size_t max, size_t n)
{
	size_t seps = 0;

	/* a mailbox ends only at ',' ';' ':' or the end of the value */
	for (const char *p = value; *p; p++)
		if (*p == ',' || *p == ';' || *p == ':')
			seps++;
	assert_true(n <= seps + 1);

	for (size_t i = 0; i < n && i < max; i++) {
		const struct address *a = &out[i];
		struct address again;
		char full[sizeof(a->full)];

		if (a->status != ADDR_OK) {
			assert_int_equal(a->status, ADDR_INVALID);
			assert_string_equal(a->full, "");
			continue;
		}
		assert_true(a->local[0] != '\0');
		assert_true(a->domain[0] != '\0');
		snprintf(full, sizeof(full), "%s@%s", a->local, a->domain);
		assert_string_equal(a->full, full);
		assert_int_equal(address_normalize(a->full, "", &again), ADDR_OK);
		if (strcmp(again.full, a->full) != 0)
			fail_msg("not a fixed point: %s -> %s", a->full, again.full);
	}
}

static void test_count_only(void **state)
{
	struct address out[2];
	const char *v = "a@x.example, b@y.example, c@z.example";

	(void) state;
	assert_int_equal(headers_parse_addresses(v, NULL, 0), 3);
	assert_int_equal(headers_parse_addresses(v, NULL, 5), 3);
	assert_int_equal(headers_parse_addresses(NULL, out, 2), 0);
	memset(out, 0x5a, sizeof(out));
	assert_int_equal(headers_parse_addresses(v, out, 2), 3);
	assert_string_equal(out[0].full, "a@x.example");
	assert_string_equal(out[1].full, "b@y.example");
	check_invariants(v, out, 2, 3);
}

static void test_init(void **state)
{
	struct msg_headers h;

	(void) state;
	memset(&h, 0x5a, sizeof(h));
	headers_init(&h);
	assert_false(h.list_unsubscribe || h.one_click || h.list_id || h.precedence_bulk
		     || h.auto_submitted || h.message_id || h.date);
	assert_int_equal(h.from_fields, 0);
	assert_int_equal(h.n_from, 0);
}

/* one header NAME: VALUE on fresh headers */
static struct msg_headers one(const char *name, const char *value)
{
	struct msg_headers h;

	headers_init(&h);
	headers_add(&h, name, value);
	return h;
}

static void test_list_unsubscribe(void **state)
{
	(void) state;
	assert_true(one("List-Unsubscribe", "<mailto:unsub@example.com>").list_unsubscribe);
	assert_true(one("list-unsubscribe", "<https://x.example/u?id=1>, <mailto:u@x.example>")
		    .list_unsubscribe);
	assert_true(one("LIST-UNSUBSCRIBE", "https://x.example/u").list_unsubscribe);
	assert_true(one("List-Unsubscribe", "\r\n <mailto:u@x.example>").list_unsubscribe);
	assert_false(one("List-Unsubscribe", "").list_unsubscribe);
	assert_false(one("List-Unsubscribe", " \t\r\n ").list_unsubscribe);
	assert_false(one("List-Unsubscribe", NULL).list_unsubscribe);
	assert_false(one("List-Unsubscribe-Post", "<mailto:u@x.example>").list_unsubscribe);
	assert_false(one("X-List-Unsubscribe", "<mailto:u@x.example>").list_unsubscribe);
}

static void test_one_click(void **state)
{
	(void) state;
	assert_true(one("List-Unsubscribe-Post", "List-Unsubscribe=One-Click").one_click);
	assert_true(one("list-unsubscribe-post", "list-unsubscribe=one-click").one_click);
	assert_true(one("List-Unsubscribe-Post", "  LIST-UNSUBSCRIBE=ONE-CLICK \t").one_click);
	assert_true(one("List-Unsubscribe-Post", "\r\n List-Unsubscribe=One-Click\r\n").one_click);
	assert_false(one("List-Unsubscribe-Post", "List-Unsubscribe = One-Click").one_click);
	assert_false(one("List-Unsubscribe-Post", "List-Unsubscribe=One-Click-Extra").one_click);
	assert_false(one("List-Unsubscribe-Post", "List-Unsubscribe=One-Click; x").one_click);
	assert_false(one("List-Unsubscribe-Post", "One-Click").one_click);
	assert_false(one("List-Unsubscribe-Post", "List-Unsubscribe=One-Clic").one_click);
	assert_false(one("List-Unsubscribe-Post", "").one_click);
	assert_false(one("List-Unsubscribe", "List-Unsubscribe=One-Click").one_click);
	/* one-click alone does not make a List-Unsubscribe */
	assert_false(one("List-Unsubscribe-Post", "List-Unsubscribe=One-Click").list_unsubscribe);
}

static void test_list_id(void **state)
{
	(void) state;
	assert_true(one("List-Id", "Example list <list.example.com>").list_id);
	assert_true(one("LIST-ID", "<list.example.com>").list_id);
	assert_false(one("List-Idx", "<list.example.com>").list_id);
	assert_false(one("List-Unsubscribe", "<mailto:u@x.example>").list_id);
}

static void test_precedence(void **state)
{
	(void) state;
	assert_true(one("Precedence", "bulk").precedence_bulk);
	assert_true(one("precedence", "List").precedence_bulk);
	assert_true(one("PRECEDENCE", "JUNK").precedence_bulk);
	assert_true(one("Precedence", "  bulk  ").precedence_bulk);
	assert_true(one("Precedence", "bulk (newsletter)").precedence_bulk);
	assert_true(one("Precedence", "(set by the list (v2)) list").precedence_bulk);
	assert_true(one("Precedence", "\r\n\tjunk").precedence_bulk);
	assert_false(one("Precedence", "first-class").precedence_bulk);
	assert_false(one("Precedence", "bulky").precedence_bulk);
	assert_false(one("Precedence", "special-delivery").precedence_bulk);
	assert_false(one("Precedence", "").precedence_bulk);
	assert_false(one("Precedence", "(bulk)").precedence_bulk);
	assert_false(one("Precedence", "(unterminated bulk").precedence_bulk);
	assert_false(one("X-Precedence", "bulk").precedence_bulk);
}

static void test_auto_submitted(void **state)
{
	(void) state;
	assert_false(one("Auto-Submitted", "no").auto_submitted);
	assert_false(one("Auto-Submitted", "No").auto_submitted);
	assert_false(one("auto-submitted", " NO (a person wrote this) ").auto_submitted);
	assert_false(one("Auto-Submitted", "(comment) no").auto_submitted);
	assert_false(one("Auto-Submitted", "").auto_submitted);
	assert_true(one("Auto-Submitted", "auto-generated").auto_submitted);
	assert_true(one("AUTO-SUBMITTED", "auto-replied").auto_submitted);
	assert_true(one("Auto-Submitted", "auto-replied; owner-email=\"x@y.example\"").auto_submitted);
	assert_true(one("Auto-Submitted", "auto-notified").auto_submitted);
	assert_true(one("Auto-Submitted", "nope").auto_submitted);
	assert_true(one("Auto-Submitted", "no-thanks").auto_submitted);
}

static void test_message_id_date(void **state)
{
	(void) state;
	assert_true(one("Message-ID", "<1234@mail.example.com>").message_id);
	assert_true(one("Message-Id", "<1234@mail.example.com>").message_id);
	assert_true(one("message-id", "not even angle-bracketed").message_id);
	assert_false(one("Message-ID", "").message_id);
	assert_false(one("Message-ID", "  \r\n\t").message_id);
	assert_false(one("Resent-Message-ID", "<1@x.example>").message_id);
	assert_true(one("Date", "Mon, 1 Jan 2024 10:00:00 +0000").date);
	assert_true(one("DATE", "garbage").date);
	assert_false(one("Date", "").date);
	assert_false(one("Date", " ").date);
	assert_false(one("Resent-Date", "Mon, 1 Jan 2024 10:00:00 +0000").date);
}

static void test_other_headers(void **state)
{
	struct msg_headers h, zero;

	(void) state;
	headers_init(&h);
	headers_init(&zero);
	headers_add(&h, "Subject", "List-Unsubscribe=One-Click");
	headers_add(&h, "X-From", "a@b.example");
	headers_add(&h, "Fromm", "a@b.example");
	headers_add(&h, "Sender", "a@b.example");
	headers_add(&h, "Reply-To", "a@b.example");
	headers_add(&h, "", "bulk");
	headers_add(&h, NULL, "bulk");
	headers_add(NULL, "From", "a@b.example");
	/* from[] holds n_from mailboxes (none): only the fields before it count */
	assert_memory_equal(&h, &zero, offsetof(struct msg_headers, from));
	assert_int_equal(h.n_from, 0);
}

static void test_from_fields(void **state)
{
	struct msg_headers h;

	(void) state;
	headers_init(&h);
	headers_add(&h, "From", "Alice <Alice@Example.com>");
	assert_int_equal(h.from_fields, 1);
	assert_int_equal(h.n_from, 1);
	assert_string_equal(h.from[0].full, "alice@example.com");

	/* a second From field (malformed message) is counted and appended */
	headers_add(&h, "from", "bob@example.org, Carol <carol@example.net>");
	assert_int_equal(h.from_fields, 2);
	assert_int_equal(h.n_from, 3);
	assert_string_equal(h.from[1].full, "bob@example.org");
	assert_string_equal(h.from[2].full, "carol@example.net");

	/* an empty From field counts as a field with no mailbox */
	headers_add(&h, "FROM ", "");
	assert_int_equal(h.from_fields, 3);
	assert_int_equal(h.n_from, 3);

	/* an unparseable one adds an invalid mailbox */
	headers_add(&h, "From", "\"broken <x@y.example>");
	assert_int_equal(h.from_fields, 4);
	assert_int_equal(h.n_from, 4);
	assert_int_equal(h.from[3].status, ADDR_INVALID);
	assert_string_equal(h.from[3].full, "");

	/* group with no members */
	headers_init(&h);
	headers_add(&h, "From", "undisclosed-recipients:;");
	assert_int_equal(h.from_fields, 1);
	assert_int_equal(h.n_from, 0);
}

static void test_from_max(void **state)
{
	struct msg_headers h;
	char value[1024];
	char want[64];
	size_t len = 0;

	(void) state;
	/* twelve mailboxes in one field: all counted, FROM_MAX kept */
	for (int i = 0; i < 12; i++)
		len += (size_t) snprintf(value + len, sizeof(value) - len,
					 "%sU%d <u%d@d%d.example>", i ? ", " : "", i, i, i);
	headers_init(&h);
	headers_add(&h, "From", value);
	assert_int_equal(h.from_fields, 1);
	assert_int_equal(h.n_from, 12);
	for (int i = 0; i < FROM_MAX; i++) {
		snprintf(want, sizeof(want), "u%d@d%d.example", i, i);
		assert_int_equal(h.from[i].status, ADDR_OK);
		assert_string_equal(h.from[i].full, want);
	}
	/* a later field only adds to the count */
	headers_add(&h, "From", "late@example.com, later@example.com");
	assert_int_equal(h.from_fields, 2);
	assert_int_equal(h.n_from, 14);
	assert_string_equal(h.from[FROM_MAX - 1].full, "u7@d7.example");

	/* five plus five across two fields: the first three of the second kept */
	headers_init(&h);
	headers_add(&h, "From", "a0@x.example,a1@x.example,a2@x.example,a3@x.example,a4@x.example");
	headers_add(&h, "From", "b0@y.example,b1@y.example,b2@y.example,b3@y.example,b4@y.example");
	assert_int_equal(h.n_from, 10);
	assert_string_equal(h.from[4].full, "a4@x.example");
	assert_string_equal(h.from[5].full, "b0@y.example");
	assert_string_equal(h.from[7].full, "b2@y.example");
}

static unsigned next_rand(unsigned *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return *seed >> 8;
}

static void test_random(void **state)
{
	static const char *const pieces[] = {
		"<", ">", "\"", "(", ")", "\\", ",", ";", ":", "@", ".", "[", "]",
		" ", "\t", "\r\n ", "\n", "=?", "?=", "?Q?", "?B?", "UTF-8", "a", "Z",
		"user", "example.com", "x\xc3\xbc", "\xff", "\x80", "\x01", "=3C",
		"<a@b.example>", "\"q, r\"", "grp:", ";", "(c (n))", "@r.example:",
		"[192.0.2.1]", "[IPv6:::1]", "=?utf-8?q?a,<b@c>?=", "xn--bcher-kva",
	};
	const size_t npieces = sizeof(pieces) / sizeof(pieces[0]);
	char buf[600];
	struct address out[FROM_MAX];
	struct address again[FROM_MAX];
	unsigned seed = 20240601;

	(void) state;
	for (int iter = 0; iter < 100000; iter++) {
		size_t len = 0;
		size_t target = next_rand(&seed) % (iter % 4 == 0 ? 40 : 500);
		size_t n, m;

		while (len < target) {
			unsigned r = next_rand(&seed);

			if (r % 5 == 0) {
				buf[len++] = (char) (1 + (r >> 4) % 255);
			} else {
				const char *p = pieces[(r >> 4) % npieces];
				size_t pl = strlen(p);

				if (len + pl >= sizeof(buf))
					break;
				memcpy(buf + len, p, pl);
				len += pl;
			}
		}
		buf[len] = '\0';
		n = headers_parse_addresses(buf, out, FROM_MAX);
		check_invariants(buf, out, FROM_MAX, n);
		/* deterministic, and the cap does not change the count */
		m = headers_parse_addresses(buf, again, 2);
		assert_int_equal(m, n);
		for (size_t i = 0; i < n && i < 2; i++) {
			assert_int_equal(again[i].status, out[i].status);
			assert_string_equal(again[i].full, out[i].full);
		}
	}
}

/* parse a 1 MB VALUE; it must finish quickly (linear time) */
static size_t parse_big(const char *value, struct address *out)
{
	clock_t start = clock();
	size_t n = headers_parse_addresses(value, out, FROM_MAX);
	double secs = (double) (clock() - start) / CLOCKS_PER_SEC;

	/* linear is milliseconds (a second or so under valgrind); quadratic is hours */
	if (secs > 20.0)
		fail_msg("1 MB value took %.1f s", secs);
	check_invariants(value, out, FROM_MAX, n);
	return n;
}

static void fill(char *buf, size_t size, const char *pattern)
{
	size_t pl = strlen(pattern);

	for (size_t i = 0; i < size; i++)
		buf[i] = pattern[i % pl];
	buf[size] = '\0';
}

static void test_huge(void **state)
{
	const size_t size = 1024 * 1024;
	char *buf = malloc(size + 1);
	struct address out[FROM_MAX];
	struct msg_headers h;
	unsigned seed = 777;
	size_t n;

	(void) state;
	assert_non_null(buf);

	/* random non-NUL bytes */
	for (size_t i = 0; i < size; i++)
		buf[i] = (char) (1 + next_rand(&seed) % 255);
	buf[size] = '\0';
	parse_big(buf, out);

	/* thousands of commas: no mailbox at all */
	fill(buf, size, ",");
	assert_int_equal(parse_big(buf, out), 0);
	fill(buf, size, ", ,;");
	assert_int_equal(parse_big(buf, out), 0);

	/* many mailboxes: all counted, the first FROM_MAX kept */
	fill(buf, size, "u@example.com,");
	n = parse_big(buf, out);
	assert_int_equal(n, (size + 13) / 14);
	for (int i = 0; i < FROM_MAX; i++)
		assert_string_equal(out[i].full, "u@example.com");

	/* one huge display name, then the address */
	fill(buf, size, "Name ");
	memcpy(buf + size - 20, "<ok@example.com>    ", 20);
	assert_int_equal(parse_big(buf, out), 1);
	assert_string_equal(out[0].full, "ok@example.com");

	/* one huge quoted display name */
	fill(buf, size, "q\\\"");
	buf[0] = '"';
	buf[size - 21] = 'q'; /* so the closing quote is not escaped */
	memcpy(buf + size - 20, "\" <ok@example.com>  ", 20);
	assert_int_equal(parse_big(buf, out), 1);
	assert_string_equal(out[0].full, "ok@example.com");

	/* a huge addr-spec, huge route: kept as invalid */
	fill(buf, size, "a");
	buf[size / 2] = '@';
	assert_int_equal(parse_big(buf, out), 1);
	assert_int_equal(out[0].status, ADDR_INVALID);
	fill(buf, size, "@r.example,");
	buf[0] = '<';
	memcpy(buf + size - 16, "u@example.com>  ", 16);
	assert_int_equal(parse_big(buf, out), 1);
	assert_int_equal(out[0].status, ADDR_INVALID);

	/* unbalanced everything */
	fill(buf, size, "(");
	assert_int_equal(parse_big(buf, out), 1);
	assert_int_equal(out[0].status, ADDR_INVALID);
	fill(buf, size, "((()");
	assert_int_equal(parse_big(buf, out), 1);
	fill(buf, size, ")");
	assert_int_equal(parse_big(buf, out), 1);
	fill(buf, size, "\"");
	parse_big(buf, out);
	fill(buf, size, "<");
	assert_int_equal(parse_big(buf, out), 1);
	fill(buf, size, ">");
	assert_int_equal(parse_big(buf, out), 1);
	fill(buf, size, "[");
	assert_int_equal(parse_big(buf, out), 1);
	fill(buf, size, "\\");
	assert_int_equal(parse_big(buf, out), 1);

	/* encoded-word look-alikes that never close */
	fill(buf, size, "=?");
	parse_big(buf, out);
	fill(buf, size, "=?utf-8?q?");
	parse_big(buf, out);
	fill(buf, size, "=?utf-8?q?x=");
	parse_big(buf, out);
	fill(buf, size, "=?u?q?a?=,");
	parse_big(buf, out);

	/* groups, folding */
	fill(buf, size, "g:a@b.example;");
	n = parse_big(buf, out);
	assert_int_equal(n, size / 14 + 1);
	fill(buf, size, "\r\n ");
	assert_int_equal(parse_big(buf, out), 0);

	/* and through headers_add */
	fill(buf, size, "x@y.example, ");
	headers_init(&h);
	headers_add(&h, "From", buf);
	headers_add(&h, "List-Unsubscribe-Post", buf);
	headers_add(&h, "Precedence", buf);
	headers_add(&h, "Auto-Submitted", buf);
	assert_int_equal(h.n_from, (size + 12) / 13);
	assert_true(h.auto_submitted);
	assert_false(h.precedence_bulk);
	assert_false(h.one_click);
	fill(buf, size, "(");
	headers_add(&h, "Precedence", buf);
	headers_add(&h, "Auto-Submitted", buf);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_from_table),
		cmocka_unit_test(test_count_only),
		cmocka_unit_test(test_init),
		cmocka_unit_test(test_list_unsubscribe),
		cmocka_unit_test(test_one_click),
		cmocka_unit_test(test_list_id),
		cmocka_unit_test(test_precedence),
		cmocka_unit_test(test_auto_submitted),
		cmocka_unit_test(test_message_id_date),
		cmocka_unit_test(test_other_headers),
		cmocka_unit_test(test_from_fields),
		cmocka_unit_test(test_from_max),
		cmocka_unit_test(test_random),
		cmocka_unit_test(test_huge),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
