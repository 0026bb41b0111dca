/*
 * test_cidr.c - IPv4/IPv6 address and CIDR block parsing, formatting and
 * matching, IPv4-mapped IPv6 addresses, and inputs that must be refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cmocka.h>

#include "cidr.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

struct parse_case {
	const char *text;
	int family;          /* 0: must be refused */
	unsigned prefix;
	const char *network; /* printable network address after masking */
};

static const struct parse_case parse_cases[] = {
	{ "10.0.0.0/8", AF_INET, 8, "10.0.0.0" },
	{ "192.0.2.1", AF_INET, 32, "192.0.2.1" },
	{ "192.0.2.1/32", AF_INET, 32, "192.0.2.1" },
	{ "0.0.0.0/0", AF_INET, 0, "0.0.0.0" },
	{ "10.1.2.3/8", AF_INET, 8, "10.0.0.0" },
	{ "192.0.2.255/25", AF_INET, 25, "192.0.2.128" },
	{ "192.0.2.255/31", AF_INET, 31, "192.0.2.254" },
	{ "172.16.5.4/012", AF_INET, 12, "172.16.0.0" },
	{ "::1/128", AF_INET6, 128, "::1" },
	{ "::1", AF_INET6, 128, "::1" },
	{ "::/0", AF_INET6, 0, "::" },
	{ "2001:db8::/32", AF_INET6, 32, "2001:db8::" },
	{ "2001:DB8:1:2::ff/64", AF_INET6, 64, "2001:db8:1:2::" },
	{ "2001:db8:ffff::/33", AF_INET6, 33, "2001:db8:8000::" },
	{ "2001:db8::1/127", AF_INET6, 127, "2001:db8::" },
	{ "::ffff:192.0.2.0/120", AF_INET6, 120, "::ffff:192.0.2.0" },
	{ "fe80::1/10", AF_INET6, 10, "fe80::" },

	{ "", 0, 0, NULL },
	{ "/8", 0, 0, NULL },
	{ "10.0.0.0/", 0, 0, NULL },
	{ "10.0.0.0/33", 0, 0, NULL },
	{ "10.0.0.0/-1", 0, 0, NULL },
	{ "10.0.0.0/+8", 0, 0, NULL },
	{ "10.0.0.0/8 ", 0, 0, NULL },
	{ "10.0.0.0/ 8", 0, 0, NULL },
	{ " 10.0.0.0/8", 0, 0, NULL },
	{ "10.0.0.0/8/8", 0, 0, NULL },
	{ "10.0.0.0/0008", 0, 0, NULL },
	{ "10.0.0.0/4294967304", 0, 0, NULL },
	{ "10.0.0.0/8x", 0, 0, NULL },
	{ "10.0.0/8", 0, 0, NULL },
	{ "10/8", 0, 0, NULL },
	{ "256.0.0.0/8", 0, 0, NULL },
	{ "10.0.0.0.0/8", 0, 0, NULL },
	{ "::1/129", 0, 0, NULL },
	{ "2001:db8::/200", 0, 0, NULL },
	{ "2001:db8:::/32", 0, 0, NULL },
	{ "2001:db8::g/32", 0, 0, NULL },
	{ "fe80::1%eth0/64", 0, 0, NULL },
	{ "[::1]/128", 0, 0, NULL },
	{ "localhost", 0, 0, NULL },
	{ "garbage", 0, 0, NULL },
	{ "1.2.3.4:25", 0, 0, NULL },
	{ "0x0a.0.0.0/8", 0, 0, NULL },
};

static void test_parse(void **state)
{
	char buf[INET6_ADDRSTRLEN];

	(void) state;
	for (size_t i = 0; i < N(parse_cases); i++) {
		const struct parse_case *c = &parse_cases[i];
		struct cidr cidr;
		int rc;

		memset(&cidr, 0x77, sizeof(cidr));
		rc = cidr_parse(c->text, &cidr);
		if (c->family == 0) {
			if (rc != -1 || cidr.net.family != 0)
				fail_msg("%s: accepted", c->text);
			continue;
		}
		if (rc != 0)
			fail_msg("%s: refused", c->text);
		assert_int_equal(cidr.net.family, c->family);
		assert_int_equal(cidr.prefix, c->prefix);
		ipaddr_format(&cidr.net, buf, sizeof(buf));
		if (strcmp(buf, c->network) != 0)
			fail_msg("%s: network %s, want %s", c->text, buf, c->network);
	}
	assert_int_equal(cidr_parse(NULL, &(struct cidr) { 0 }), -1);
	assert_int_equal(cidr_parse("10.0.0.0/8", NULL), -1);
}

static void test_parse_long(void **state)
{
	char buf[4096];
	struct cidr c;

	(void) state;
	memset(buf, '1', sizeof(buf) - 1);
	buf[sizeof(buf) - 1] = '\0';
	assert_int_equal(cidr_parse(buf, &c), -1);
	buf[3] = '/';
	assert_int_equal(cidr_parse(buf, &c), -1);
	memset(buf, ':', sizeof(buf) - 1);
	assert_int_equal(cidr_parse(buf, &c), -1);
}

static void test_ipaddr_parse_format(void **state)
{
	static const struct {
		const char *in;
		int family;
		const char *out;
	} t[] = {
		{ "192.0.2.1", AF_INET, "192.0.2.1" },
		{ "0.0.0.0", AF_INET, "0.0.0.0" },
		{ "255.255.255.255", AF_INET, "255.255.255.255" },
		{ "2001:DB8:0:0:0:0:0:1", AF_INET6, "2001:db8::1" },
		{ "::", AF_INET6, "::" },
		{ "::ffff:192.0.2.1", AF_INET6, "::ffff:192.0.2.1" },
		{ "192.0.2.1/32", 0, NULL },
		{ "192.0.2", 0, NULL },
		{ "192.0.2.01", 0, NULL },
		{ "", 0, NULL },
		{ "::1::", 0, NULL },
		{ "x", 0, NULL },
	};
	struct ipaddr ip;
	char buf[INET6_ADDRSTRLEN];
	char tiny[4];

	(void) state;
	for (size_t i = 0; i < N(t); i++) {
		int rc = ipaddr_parse(t[i].in, &ip);

		if (t[i].family == 0) {
			if (rc != -1 || ip.family != 0)
				fail_msg("%s: accepted", t[i].in);
			assert_string_equal(ipaddr_format(&ip, buf, sizeof(buf)), "unknown");
			continue;
		}
		if (rc != 0)
			fail_msg("%s: refused", t[i].in);
		assert_int_equal(ip.family, t[i].family);
		assert_string_equal(ipaddr_format(&ip, buf, sizeof(buf)), t[i].out);
	}
	assert_int_equal(ipaddr_parse(NULL, &ip), -1);
	assert_int_equal(ip.family, 0);
	assert_string_equal(ipaddr_format(NULL, buf, sizeof(buf)), "unknown");
	/* too small a buffer: no overrun, a truncated "unknown" */
	assert_int_equal(ipaddr_parse("2001:db8::1", &ip), 0);
	memset(tiny, 'Z', sizeof(tiny));
	ipaddr_format(&ip, tiny, sizeof(tiny));
	assert_int_equal(tiny[sizeof(tiny) - 1], '\0');
	assert_string_equal(ipaddr_format(&ip, NULL, 0), "unknown");
}

static void test_from_sockaddr(void **state)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	struct sockaddr_un sun;
	struct ipaddr ip;
	char buf[INET6_ADDRSTRLEN];

	(void) state;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(25);
	assert_int_equal(inet_pton(AF_INET, "198.51.100.7", &sin.sin_addr), 1);
	ipaddr_from_sockaddr((struct sockaddr *) &sin, &ip);
	assert_int_equal(ip.family, AF_INET);
	assert_string_equal(ipaddr_format(&ip, buf, sizeof(buf)), "198.51.100.7");

	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::25", &sin6.sin6_addr), 1);
	ipaddr_from_sockaddr((struct sockaddr *) &sin6, &ip);
	assert_int_equal(ip.family, AF_INET6);
	assert_string_equal(ipaddr_format(&ip, buf, sizeof(buf)), "2001:db8::25");

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, "/tmp/x");
	ipaddr_from_sockaddr((struct sockaddr *) &sun, &ip);
	assert_int_equal(ip.family, 0);
	assert_string_equal(ipaddr_format(&ip, buf, sizeof(buf)), "unknown");

	ipaddr_from_sockaddr((struct sockaddr *) &sin, &ip);
	ipaddr_from_sockaddr(NULL, &ip);
	assert_int_equal(ip.family, 0);
	ipaddr_from_sockaddr(NULL, NULL);
}

struct match_case {
	const char *block;
	const char *ip;
	bool match;
};

static const struct match_case match_cases[] = {
	{ "10.0.0.0/8", "10.0.0.0", true },
	{ "10.0.0.0/8", "10.255.255.255", true },
	{ "10.0.0.0/8", "11.0.0.0", false },
	{ "10.0.0.0/8", "9.255.255.255", false },
	{ "10.1.2.3/8", "10.200.0.1", true },
	{ "192.0.2.128/25", "192.0.2.127", false },
	{ "192.0.2.128/25", "192.0.2.128", true },
	{ "192.0.2.128/25", "192.0.2.255", true },
	{ "192.0.2.1", "192.0.2.1", true },
	{ "192.0.2.1", "192.0.2.2", false },
	{ "172.16.0.0/12", "172.31.255.255", true },
	{ "172.16.0.0/12", "172.32.0.0", false },
	{ "0.0.0.0/0", "203.0.113.9", true },
	{ "0.0.0.0/0", "2001:db8::1", false },
	/* IPv4-mapped IPv6 clients match IPv4 blocks */
	{ "10.0.0.0/8", "::ffff:10.1.2.3", true },
	{ "10.0.0.0/8", "::ffff:11.1.2.3", false },
	{ "192.0.2.1", "::ffff:192.0.2.1", true },
	{ "0.0.0.0/0", "::ffff:1.2.3.4", true },
	/* only the ::ffff:0:0/96 form is mapped */
	{ "10.0.0.0/8", "::10.1.2.3", false },
	{ "10.0.0.0/8", "64:ff9b::10.1.2.3", false },
	{ "10.0.0.0/8", "2001:db8::a01:203", false },
	/* IPv4 clients match IPv6 blocks covering their mapped form */
	{ "::ffff:10.0.0.0/104", "10.9.8.7", true },
	{ "::ffff:10.0.0.0/104", "11.9.8.7", false },
	{ "::ffff:0.0.0.0/96", "198.51.100.1", true },
	{ "2001:db8::/32", "10.0.0.1", false },
	/* IPv6 */
	{ "2001:db8::/32", "2001:db8::1", true },
	{ "2001:db8::/32", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", true },
	{ "2001:db8::/32", "2001:db9::1", false },
	{ "2001:db8::/33", "2001:db8:7fff::1", true },
	{ "2001:db8::/33", "2001:db8:8000::1", false },
	{ "::1/128", "::1", true },
	{ "::1/128", "::2", false },
	{ "::/0", "2001:db8::1", true },
	{ "fe80::/10", "febf::1", true },
	{ "fe80::/10", "fec0::1", false },
};

static void test_match(void **state)
{
	(void) state;
	for (size_t i = 0; i < N(match_cases); i++) {
		const struct match_case *m = &match_cases[i];
		struct cidr c;
		struct ipaddr ip;

		assert_int_equal(cidr_parse(m->block, &c), 0);
		assert_int_equal(ipaddr_parse(m->ip, &ip), 0);
		if (cidr_match(&c, &ip) != m->match)
			fail_msg("%s in %s: %d, want %d", m->ip, m->block,
				 !m->match, m->match);
	}
}

static void test_match_unknown(void **state)
{
	struct cidr c;
	struct ipaddr unknown = { 0 };
	struct cidr zero = { 0 };
	struct ipaddr ip;

	(void) state;
	assert_int_equal(cidr_parse("0.0.0.0/0", &c), 0);
	assert_false(cidr_match(&c, &unknown));
	assert_int_equal(cidr_parse("::/0", &c), 0);
	assert_false(cidr_match(&c, &unknown));
	assert_false(cidr_match(&c, NULL));
	assert_int_equal(ipaddr_parse("10.0.0.1", &ip), 0);
	assert_false(cidr_match(NULL, &ip));
	/* a zeroed (unparsed) block matches nothing */
	assert_false(cidr_match(&zero, &ip));
	/* an out-of-range prefix set by hand matches nothing */
	assert_int_equal(cidr_parse("10.0.0.0/8", &c), 0);
	c.prefix = 33;
	assert_false(cidr_match(&c, &ip));
}

static void test_list_match(void **state)
{
	static const char *blocks[] = { "127.0.0.0/8", "192.0.2.0/24", "::1/128",
					"2001:db8:abcd::/48" };
	struct cidr v[N(blocks)];
	struct cidr_list l = { v, N(blocks) };
	struct cidr_list empty = { NULL, 0 };
	struct ipaddr ip;

	(void) state;
	for (size_t i = 0; i < N(blocks); i++)
		assert_int_equal(cidr_parse(blocks[i], &v[i]), 0);
	assert_int_equal(ipaddr_parse("127.0.0.1", &ip), 0);
	assert_true(cidr_list_match(&l, &ip));
	assert_int_equal(ipaddr_parse("::ffff:192.0.2.77", &ip), 0);
	assert_true(cidr_list_match(&l, &ip));
	assert_int_equal(ipaddr_parse("2001:db8:abcd:1::5", &ip), 0);
	assert_true(cidr_list_match(&l, &ip));
	assert_int_equal(ipaddr_parse("::1", &ip), 0);
	assert_true(cidr_list_match(&l, &ip));
	assert_int_equal(ipaddr_parse("::2", &ip), 0);
	assert_false(cidr_list_match(&l, &ip));
	assert_int_equal(ipaddr_parse("198.51.100.1", &ip), 0);
	assert_false(cidr_list_match(&l, &ip));
	assert_false(cidr_list_match(&empty, &ip));
	assert_false(cidr_list_match(NULL, &ip));
	assert_false(cidr_list_match(&l, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_parse_long),
		cmocka_unit_test(test_ipaddr_parse_format),
		cmocka_unit_test(test_from_sockaddr),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_match_unknown),
		cmocka_unit_test(test_list_match),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
