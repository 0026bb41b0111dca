/*
 * test_address.c - address_normalize: a table of tricky envelope addresses,
 * length limits, and hostile input (1 MB strings, random bytes) that must
 * never crash and must always give a consistent result.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "address.h"

struct addr_case {
	const char *raw;
	const char *sep;
	enum address_status status;
	const char *local;  /* expected when ADDR_OK */
	const char *domain; /* expected when ADDR_OK */
};

#define OK(raw, sep, l, d) { raw, sep, ADDR_OK, l, d }
#define NUL(raw) { raw, "+", ADDR_NULL, "", "" }
#define BAD(raw) { raw, "+", ADDR_INVALID, "", "" }

static const struct addr_case cases[] = {
	/* brackets, spaces, case */
	OK("<user@example.com>", "+", "user", "example.com"),
	OK("user@example.com", "+", "user", "example.com"),
	OK("  <user@example.com>  ", "+", "user", "example.com"),
	OK("< user@example.com >", "+", "user", "example.com"),
	OK("<User.Name@Example.COM>", "+", "user.name", "example.com"),
	OK("POSTMASTER@EXAMPLE.COM", "+", "postmaster", "example.com"),
	OK("user@localhost", "+", "user", "localhost"),
	OK("<user@example.com> SIZE=1000 BODY=8BITMIME", "+", "user", "example.com"),
	OK("{x}@y.com", "+", "{x}", "y.com"),
	OK("user@exa_mple.com", "+", "user", "exa_mple.com"),
	OK("o'brien@example.ie", "+", "o'brien", "example.ie"),

	/* source routes */
	OK("<@a.example,@b.example:user@dom.example>", "+", "user", "dom.example"),
	OK("@a.example:user@dom.example", "+", "user", "dom.example"),
	OK("<@[IPv6:2001:db8::1]:user@dom.example>", "+", "user", "dom.example"),
	BAD("<@a.example,@b.example>"),
	BAD("<@a.example:>"),

	/* quoted local parts */
	OK("\"John Doe\"@Example.com", "+", "\"john doe\"", "example.com"),
	OK("<\"a@b\"@example.com>", "+", "\"a@b\"", "example.com"),
	OK("<\"a>b\"@example.com>", "+", "\"a>b\"", "example.com"),
	OK("<\"a\\\"b\"@example.com>", "+", "\"a\\\"b\"", "example.com"),
	OK("\"user+tag\"@example.com", "+", "\"user+tag\"", "example.com"),
	BAD("<\"unterminated@example.com>"),
	BAD("\"a\"b@example.com"),

	/* null sender */
	NUL("<>"),
	NUL(""),
	NUL("   "),
	NUL(" <> "),
	NUL("< >"),

	/* sub-addresses */
	OK("user+tag@example.com", "+", "user", "example.com"),
	OK("User+Tag+More@example.com", "+", "user", "example.com"),
	OK("user-tag+x@example.com", "+-", "user", "example.com"),
	OK("user+tag-x@example.com", "+-", "user", "example.com"),
	OK("user+tag@example.com", "", "user+tag", "example.com"),
	OK("user+tag@example.com", NULL, "user+tag", "example.com"),
	OK("+tag@example.com", "+", "+tag", "example.com"),
	OK("-user@example.com", "+-", "-user", "example.com"),

	/* trailing dot, IDN */
	OK("user@example.com.", "+", "user", "example.com"),
	BAD("user@example.com.."),
	BAD("user@."),
	OK("user@BÜCHER.example", "+", "user", "xn--bcher-kva.example"),
	OK("user@bücher.example.", "+", "user", "xn--bcher-kva.example"),
	OK("user@MÜNCHEN.de", "+", "user", "xn--mnchen-3ya.de"),
	OK("user@faß.de", "+", "user", "xn--fa-hia.de"),
	OK("user@\xf0\x9f\x98\x80.com", "+", "user", "xn--e28h.com"),
	OK("user@xn--bcher-kva.example", "+", "user", "xn--bcher-kva.example"),
	BAD("user@b\xffx.com"),
	BAD("user@example.com\x80"),
	BAD("user@\xc3(.com"),
	BAD("user@ü..com"),
	BAD("user@ü{.com"),

	/* UTF-8 local parts */
	OK("j\xc3\xb6rg@example.com", "+", "j\xc3\xb6rg", "example.com"),
	OK("J\xc3\x96RG@example.com", "+", "j\xc3\x96rg", "example.com"),
	BAD("\xff@example.com"),
	BAD("a\xc0\xaf" "b@example.com"),
	BAD("a\xed\xa0\x80@example.com"),

	/* address literals */
	OK("user@[192.0.2.1]", "+", "user", "[192.0.2.1]"),
	OK("<user@[IPv6:2001:DB8::1]>", "+", "user", "[ipv6:2001:db8::1]"),
	OK("user@[IPv6:::ffff:192.0.2.1]", "+", "user", "[ipv6:::ffff:192.0.2.1]"),
	BAD("user@[999.0.2.1]"),
	BAD("user@[foo]"),
	BAD("user@[192.0.2.1"),
	BAD("user@[ipv6:192.0.2.1]"),
	BAD("user@[2001:db8::1]"),
	BAD("user@[]"),

	/* structure */
	BAD(NULL),
	BAD("user@"),
	BAD("<user@>"),
	BAD("@example.com"),
	BAD("<@example.com>"),
	BAD("userexample.com"),
	BAD("a@b@example.com"),
	BAD("user@a..b"),
	BAD("user@.example.com"),
	BAD("<user@example.com"),
	BAD("user@example.com>"),
	BAD("<<user@example.com>>"),
	BAD("<john doe@example.com>"),
	BAD("a(comment)@example.com"),
	BAD("a,b@example.com"),
	BAD("a\\b@example.com"),
	BAD("user@exa mple.com"),
	BAD("user@exa/mple.com"),
	BAD("user@exam\"ple.com"),
	BAD("user@example.com;DROP"),

	/* control characters, injection-looking input */
	BAD("a\x01" "b@example.com"),
	BAD("a@b\r\nFLUSHALL"),
	BAD("<user@example.com>\r\n"),
	BAD("<user@example.com> SIZE=1\nRCPT"),
	BAD("us\ter@example.com"),
	BAD("user@exa\x7fmple.com"),
	BAD("\"a\rb\"@example.com"),
	BAD("\x1b[31m@example.com"),
	BAD("user@dom}"),
	BAD("user@{dom}.com"),
	BAD("user@{x}"),
	BAD("user@dom\r\n*1\r\n$8\r\nFLUSHALL"),
};

static void check_case(const struct addr_case *c, size_t idx)
{
	struct address a;
	char want_full[sizeof(a.full)];
	enum address_status st;

	memset(&a, 0x5a, sizeof(a));
	st = address_normalize(c->raw, c->sep, &a);
	if (st != c->status || a.status != c->status)
		fail_msg("case %zu (%s): status %d, want %d", idx,
			 c->raw ? c->raw : "(null)", (int) st, (int) c->status);
	if (c->status == ADDR_OK) {
		snprintf(want_full, sizeof(want_full), "%s@%s", c->local, c->domain);
		if (strcmp(a.local, c->local) != 0 || strcmp(a.domain, c->domain) != 0
		    || strcmp(a.full, want_full) != 0)
			fail_msg("case %zu (%s): got %s / %s / %s, want %s / %s", idx,
				 c->raw, a.local, a.domain, a.full, c->local, c->domain);
	} else {
		assert_string_equal(a.full, "");
		assert_string_equal(a.local, "");
		assert_string_equal(a.domain, "");
	}
}

static void test_table(void **state)
{
	(void) state;
	assert_true(sizeof(cases) / sizeof(cases[0]) >= 50);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_case(&cases[i], i);
}

/* "<" LOCAL_LEN x 'a' "@" DOMAIN ">" */
static enum address_status try_lengths(size_t local_len, const char *domain,
				       struct address *a)
{
	char buf[2048];

	assert_true(local_len + strlen(domain) + 4 < sizeof(buf));
	buf[0] = '<';
	memset(buf + 1, 'a', local_len);
	snprintf(buf + 1 + local_len, sizeof(buf) - 1 - local_len, "@%s>", domain);
	return address_normalize(buf, "+", a);
}

static void test_local_length(void **state)
{
	struct address a;

	(void) state;
	assert_int_equal(try_lengths(64, "example.com", &a), ADDR_OK);
	assert_int_equal(strlen(a.local), 64);
	assert_int_equal(strlen(a.full), 64 + 1 + strlen("example.com"));
	assert_int_equal(try_lengths(65, "example.com", &a), ADDR_INVALID);
	assert_string_equal(a.full, "");
	assert_int_equal(try_lengths(1000, "example.com", &a), ADDR_INVALID);
	/* the limit applies to what was sent, not to what is left after +tag */
	assert_int_equal(address_normalize(
		"a+bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb@x.com",
		"+", &a), ADDR_INVALID);
}

/* a domain of exactly LEN bytes: 40-byte labels, last one shorter */
static void make_domain(char *dom, size_t len)
{
	for (size_t i = 0; i < len; i++)
		dom[i] = (i % 41 == 40) ? '.' : 'e';
	if (dom[len - 1] == '.')
		dom[len - 1] = 'e';
	if (len > 1 && dom[len - 2] == '.')
		dom[len - 2] = 'e';
	dom[len] = '\0';
	assert_int_equal(strlen(dom), len);
}

static void test_domain_length(void **state)
{
	struct address a;
	char dom[1024];
	size_t n;

	(void) state;
	/* label of 63 is fine, 64 is not */
	memset(dom, 'b', 63);
	strcpy(dom + 63, ".com");
	assert_int_equal(try_lengths(1, dom, &a), ADDR_OK);
	assert_string_equal(a.domain, dom);
	memset(dom, 'b', 64);
	strcpy(dom + 64, ".com");
	assert_int_equal(try_lengths(1, dom, &a), ADDR_INVALID);

	/* 255 bytes total is the maximum: 63.63.63.63 = 255 */
	n = 0;
	for (int l = 0; l < 4; l++) {
		memset(dom + n, 'c', 63);
		n += 63;
		dom[n++] = '.';
	}
	dom[--n] = '\0';
	assert_int_equal(strlen(dom), 255);
	assert_int_equal(try_lengths(64, dom, &a), ADDR_OK);
	assert_int_equal(strlen(a.full), 64 + 1 + 255);
	/* with a trailing dot it is still 255 */
	strcat(dom, ".");
	assert_int_equal(try_lengths(1, dom, &a), ADDR_OK);
	/* 256 and 300 bytes are too long, whatever the labels */
	make_domain(dom, 256);
	assert_int_equal(try_lengths(1, dom, &a), ADDR_INVALID);
	make_domain(dom, 300);
	assert_int_equal(try_lengths(1, dom, &a), ADDR_INVALID);
	make_domain(dom, 254);
	assert_int_equal(try_lengths(1, dom, &a), ADDR_OK);
	assert_string_equal(a.domain, dom);

	/* a U-label domain whose A-label form is too long */
	n = 0;
	for (int l = 0; l < 5; l++) {
		for (int k = 0; k < 20; k++) {
			memcpy(dom + n, "\xc3\xbc", 2);
			n += 2;
		}
		dom[n++] = '.';
	}
	strcpy(dom + n, "com");
	assert_int_equal(try_lengths(1, dom, &a), ADDR_OK);
	assert_true(strlen(a.domain) <= ADDR_DOMAIN_MAX);
	for (int l = 0; l < 5; l++) {
		for (int k = 0; k < 20; k++) {
			memcpy(dom + n, "\xc3\xbc", 2);
			n += 2;
		}
		dom[n++] = '.';
	}
	strcpy(dom + n, "com");
	assert_int_equal(try_lengths(1, dom, &a), ADDR_INVALID);
}

/* what every result must satisfy, whatever the input */
static void check_invariants(const char *raw, const char *sep,
			     const struct address *a)
{
	struct address again;

	switch (a->status) {
	case ADDR_OK:
		assert_true(a->local[0] != '\0');
		assert_true(strlen(a->local) <= ADDR_LOCAL_MAX);
		assert_true(a->domain[0] != '\0');
		assert_true(strlen(a->domain) <= ADDR_DOMAIN_MAX);
		assert_true(strlen(a->full) == strlen(a->local) + 1 + strlen(a->domain));
		for (const char *p = a->full; *p; p++) {
			unsigned char c = (unsigned char) *p;

			assert_false(c < 0x20 || c == 0x7f);
			assert_false(c >= 'A' && c <= 'Z');
		}
		for (const char *p = a->domain; *p; p++)
			assert_false(*p == '{' || *p == '}' || *p == ' '
				     || (unsigned char) *p >= 0x80);
		/* normalising the result again gives the same result */
		assert_int_equal(address_normalize(a->full, sep, &again), ADDR_OK);
		if (strcmp(again.full, a->full) != 0)
			fail_msg("not idempotent: %s -> %s", a->full, again.full);
		break;
	case ADDR_NULL:
	case ADDR_INVALID:
		assert_string_equal(a->full, "");
		break;
	default:
		fail_msg("bad status %d for input of %zu bytes", (int) a->status,
			 raw ? strlen(raw) : 0);
	}
}

static void test_huge_garbage(void **state)
{
	const size_t size = 1024 * 1024;
	char *buf = malloc(size + 1);
	struct address a;
	unsigned seed = 12345;

	(void) state;
	assert_non_null(buf);

	/* 1 MB of random non-NUL bytes */
	for (size_t i = 0; i < size; i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = (char) (1 + (seed >> 16) % 255);
	}
	buf[size] = '\0';
	address_normalize(buf, "+", &a);
	check_invariants(buf, "+", &a);

	/* 1 MB local part, 1 MB domain, 1 MB route, 1 MB quoted string */
	memset(buf, 'a', size);
	buf[0] = '<';
	buf[size / 2] = '@';
	buf[size - 1] = '>';
	assert_int_equal(address_normalize(buf, "+", &a), ADDR_INVALID);
	buf[size / 2] = 'a';
	buf[1] = '@';
	assert_int_equal(address_normalize(buf, "+", &a), ADDR_INVALID);
	buf[1] = '"';
	assert_int_equal(address_normalize(buf, "+", &a), ADDR_INVALID);
	memcpy(buf, "<u@", 3);
	assert_int_equal(address_normalize(buf, "+", &a), ADDR_INVALID);
	/* U-label domain of 1 MB */
	memcpy(buf, "u@", 2);
	for (size_t i = 2; i + 2 <= size; i += 2)
		memcpy(buf + i, "\xc3\xbc", 2);
	buf[size - (size % 2)] = '\0';
	assert_int_equal(address_normalize(buf, "+", &a), ADDR_INVALID);
	/* a valid address followed by 1 MB of ESMTP parameters */
	memset(buf, 'x', size);
	memcpy(buf, "<user@example.com> ", 19);
	buf[size] = '\0';
	assert_int_equal(address_normalize(buf, "+", &a), ADDR_OK);
	assert_string_equal(a.full, "user@example.com");
	/* a 1 MB space run around <> */
	memset(buf, ' ', size);
	memcpy(buf + size / 2, "<>", 2);
	assert_int_equal(address_normalize(buf, "+", &a), ADDR_NULL);
	free(buf);
}

static void test_random(void **state)
{
	static const char alphabet[] = "<>@\"\\:,.[]+-_ {}aAzZ09\xc3\xbc\xff\x80\x7f\r\n\t"
				       "IPv6:1.2.3.4xn--";
	char buf[512];
	struct address a;
	unsigned seed = 4242;
	const char *seps[] = { "+", "+-", "", NULL };

	(void) state;
	for (int iter = 0; iter < 100000; iter++) {
		size_t len;

		seed = seed * 1103515245u + 12345u;
		len = (seed >> 16) % (sizeof(buf) - 1);
		if (iter % 3 == 0)
			len %= 40;
		for (size_t i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			if ((seed >> 24) % 4 == 0)
				buf[i] = (char) (1 + (seed >> 8) % 255);
			else
				buf[i] = alphabet[(seed >> 8) % (sizeof(alphabet) - 1)];
		}
		buf[len] = '\0';
		address_normalize(buf, seps[iter % 4], &a);
		check_invariants(buf, seps[iter % 4], &a);
	}
}

/* random edits of the valid table entries: more inputs that almost parse */
static void test_mutations(void **state)
{
	static const char alphabet[] = "<>@\"\\:,.[]+-_ {}aZ9\xc3\xbc\xff\r";
	char buf[256];
	struct address a;
	unsigned seed = 777;
	size_t n_ok = 0;

	(void) state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (cases[i].raw == NULL || strlen(cases[i].raw) >= 120)
			continue;
		for (int iter = 0; iter < 500; iter++) {
			size_t len;
			int edits;

			snprintf(buf, sizeof(buf), "%s", cases[i].raw);
			len = strlen(buf);
			seed = seed * 1103515245u + 12345u;
			edits = 1 + (int) ((seed >> 16) % 3);
			for (int e = 0; e < edits; e++) {
				size_t pos;
				char c;

				seed = seed * 1103515245u + 12345u;
				pos = len ? (seed >> 8) % (len + 1) : 0;
				c = alphabet[(seed >> 20) % (sizeof(alphabet) - 1)];
				switch ((seed >> 28) % 3) {
				case 0: /* insert */
					if (len + 2 >= sizeof(buf))
						break;
					memmove(buf + pos + 1, buf + pos, len - pos + 1);
					buf[pos] = c;
					len++;
					break;
				case 1: /* delete */
					if (pos < len) {
						memmove(buf + pos, buf + pos + 1, len - pos);
						len--;
					}
					break;
				default: /* replace */
					if (pos < len)
						buf[pos] = c;
					break;
				}
			}
			address_normalize(buf, cases[i].sep, &a);
			check_invariants(buf, cases[i].sep, &a);
			n_ok += a.status == ADDR_OK;
		}
	}
	/* the edits must have left plenty of valid addresses to check */
	assert_true(n_ok > 5000);
}

static void test_null_out(void **state)
{
	(void) state;
	assert_int_equal(address_normalize("user@example.com", "+", NULL), ADDR_INVALID);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_local_length),
		cmocka_unit_test(test_domain_length),
		cmocka_unit_test(test_huge_garbage),
		cmocka_unit_test(test_random),
		cmocka_unit_test(test_mutations),
		cmocka_unit_test(test_null_out),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
