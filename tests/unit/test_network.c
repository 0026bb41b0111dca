/*
 * test_network.c - recipient network: configured networks by domain or
 * parent domain (most specific wins), address literals, "invalid", and the
 * registrable domain from the public suffix list. The configuration is built
 * by hand here so this test does not depend on the config parser.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "address.h"
#include "config.h"
#include "network.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static char *google_domains[] = { "gmail.com", "googlemail.com" };
static char *microsoft_domains[] = { "outlook.com", "hotmail.com", "live.com" };
static char *corp_domains[] = { "example.org" };
static char *corp_eu_domains[] = { "eu.example.org", "eu-example.net" };
static char *corp_de_domains[] = { "de.eu.example.org" };
static char *dup_domains[] = { "gmail.com" };
static char *empty_domain[] = { "" };

/* corp-de is listed before its parents and corp-eu after: order must not matter */
static struct network_def networks[] = {
	{ .name = "corp-de", .domains = { corp_de_domains, N(corp_de_domains) } },
	{ .name = "google", .domains = { google_domains, N(google_domains) } },
	{ .name = "microsoft", .domains = { microsoft_domains, N(microsoft_domains) } },
	{ .name = "corp", .domains = { corp_domains, N(corp_domains) } },
	{ .name = "corp-eu", .domains = { corp_eu_domains, N(corp_eu_domains) } },
	{ .name = "google-again", .domains = { dup_domains, N(dup_domains) } },
	{ .name = "matches-nothing", .domains = { empty_domain, N(empty_domain) } },
};

static struct config cfg = {
	.networks = networks,
	.n_networks = N(networks),
};

/* network of the normalised form of RAW under CONF */
static const char *net_of(const struct config *conf, const char *raw, char *buf)
{
	struct address a;

	address_normalize(raw, "+", &a);
	return network_of(conf, &a, buf, NETWORK_MAX);
}

struct net_case {
	const char *raw;
	const char *with_cfg;    /* network under cfg */
	const char *without_cfg; /* network with no configured networks */
};

static const struct net_case net_cases[] = {
	{ "user@gmail.com", "google", "gmail.com" },
	{ "user@x.gmail.com", "google", "gmail.com" },
	{ "user@a.b.x.gmail.com", "google", "gmail.com" },
	{ "user@xgmail.com", "xgmail.com", "xgmail.com" },
	{ "user@gmail.com.evil.example", "evil.example", "evil.example" },
	{ "user@googlemail.com", "google", "googlemail.com" },
	{ "user@outlook.com", "microsoft", "outlook.com" },
	{ "user@mail.outlook.com", "microsoft", "outlook.com" },
	{ "user@mail.example.co.uk", "example.co.uk", "example.co.uk" },
	{ "user@example.co.uk", "example.co.uk", "example.co.uk" },
	{ "user@co.uk", "co.uk", "co.uk" },
	{ "user@localhost", "localhost", "localhost" },
	{ "user@example.com", "example.com", "example.com" },
	{ "user@a.b.example.com", "example.com", "example.com" },
	{ "user@a.b.c.example.org", "corp", "example.org" },
	{ "user@example.org", "corp", "example.org" },
	{ "user@eu.example.org", "corp-eu", "example.org" },
	{ "user@x.eu.example.org", "corp-eu", "example.org" },
	{ "user@de.eu.example.org", "corp-de", "example.org" },
	{ "user@mx.de.eu.example.org", "corp-de", "example.org" },
	{ "user@xde.eu.example.org", "corp-eu", "example.org" },
	{ "user@eu-example.net", "corp-eu", "eu-example.net" },
	{ "USER@Mail.Example.CO.UK.", "example.co.uk", "example.co.uk" },
	{ "<User+Tag@X.GMAIL.COM>", "google", "gmail.com" },
	{ "user@BÜCHER.example", "xn--bcher-kva.example", "xn--bcher-kva.example" },
	{ "user@mail.bücher.de", "xn--bcher-kva.de", "xn--bcher-kva.de" },
	{ "user@[192.0.2.1]", "[192.0.2.1]", "[192.0.2.1]" },
	{ "user@[IPv6:2001:DB8::1]", "[ipv6:2001:db8::1]", "[ipv6:2001:db8::1]" },
	{ "<>", "invalid", "invalid" },
	{ "", "invalid", "invalid" },
	{ "no-domain", "invalid", "invalid" },
	{ "user@", "invalid", "invalid" },
	{ "a@b\r\nFLUSHALL", "invalid", "invalid" },
};

static void test_network_table(void **state)
{
	struct config empty = { 0 };
	char buf[NETWORK_MAX];

	(void) state;
	for (size_t i = 0; i < N(net_cases); i++) {
		const struct net_case *c = &net_cases[i];
		const char *got;

		got = net_of(&cfg, c->raw, buf);
		if (got != buf || strcmp(got, c->with_cfg) != 0)
			fail_msg("%s: network %s, want %s", c->raw, got, c->with_cfg);
		got = net_of(&empty, c->raw, buf);
		if (strcmp(got, c->without_cfg) != 0)
			fail_msg("%s: no config: %s, want %s", c->raw, got, c->without_cfg);
		got = net_of(NULL, c->raw, buf);
		if (strcmp(got, c->without_cfg) != 0)
			fail_msg("%s: NULL config: %s, want %s", c->raw, got, c->without_cfg);
	}
}

static void test_network_status(void **state)
{
	struct address a;
	char buf[NETWORK_MAX];

	(void) state;
	/* a struct that claims OK is trusted; any other status is "invalid" */
	memset(&a, 0, sizeof(a));
	a.status = ADDR_NULL;
	assert_string_equal(network_of(&cfg, &a, buf, sizeof(buf)), "invalid");
	a.status = ADDR_INVALID;
	strcpy(a.domain, "gmail.com");
	assert_string_equal(network_of(&cfg, &a, buf, sizeof(buf)), "invalid");
	a.status = ADDR_OK;
	assert_string_equal(network_of(&cfg, &a, buf, sizeof(buf)), "google");
	a.domain[0] = '\0';
	assert_string_equal(network_of(&cfg, &a, buf, sizeof(buf)), "invalid");
	assert_string_equal(network_of(&cfg, NULL, buf, sizeof(buf)), "invalid");

	/* a small buffer is truncated, never overrun */
	memset(buf, 'Z', sizeof(buf));
	strcpy(a.domain, "gmail.com");
	assert_string_equal(network_of(&cfg, &a, buf, 4), "goo");
	assert_int_equal(buf[4], 'Z');
}

static void test_network_deterministic(void **state)
{
	char a[NETWORK_MAX], b[NETWORK_MAX];

	(void) state;
	/* the same input gives the same network every time */
	for (int i = 0; i < 1000; i++) {
		assert_string_equal(net_of(&cfg, "u@x.de.eu.example.org", a),
				    net_of(&cfg, "u@x.de.eu.example.org", b));
		assert_string_equal(a, "corp-de");
	}
}

static void test_registrable(void **state)
{
	char buf[NETWORK_MAX];
	char small[8];

	(void) state;
	assert_string_equal(network_registrable("mail.example.co.uk", buf, sizeof(buf)),
			    "example.co.uk");
	assert_string_equal(network_registrable("a.b.example.com", buf, sizeof(buf)),
			    "example.com");
	assert_string_equal(network_registrable("MAIL.EXAMPLE.CO.UK", buf, sizeof(buf)),
			    "example.co.uk");
	assert_string_equal(network_registrable("example.com", buf, sizeof(buf)),
			    "example.com");
	assert_string_equal(network_registrable("com", buf, sizeof(buf)), "com");
	assert_string_equal(network_registrable("co.uk", buf, sizeof(buf)), "co.uk");
	assert_string_equal(network_registrable("localhost", buf, sizeof(buf)),
			    "localhost");
	assert_string_equal(network_registrable("[192.0.2.1]", buf, sizeof(buf)),
			    "[192.0.2.1]");
	assert_string_equal(network_registrable("", buf, sizeof(buf)), "invalid");
	assert_string_equal(network_registrable(NULL, buf, sizeof(buf)), "invalid");
	assert_string_equal(network_registrable("mail.example.co.uk", small,
						sizeof(small)), "example");
}

/* the per-thread cache answers what libpsl answered, whatever collides */
static void test_registrable_cache(void **state)
{
	char dom[300], want[300], buf[NETWORK_MAX];
	char long_label[61];

	(void) state;
	memset(long_label, 'l', sizeof(long_label) - 1);
	long_label[sizeof(long_label) - 1] = '\0';
	for (int pass = 0; pass < 3; pass++)
		for (int i = 0; i < 300; i++) {
			int k = pass == 1 ? 299 - i : (i * 7) % 300;

			const char *tld = k % 3 == 0 ? "co.uk" : k % 3 == 1 ? "com" : "com.au";

			snprintf(dom, sizeof(dom), "h%d.Sub.Example-%d.%s", k, k, tld);
			snprintf(want, sizeof(want), "example-%d.%s", k, tld);
			assert_string_equal(network_registrable(dom, buf, sizeof(buf)), want);
		}
	/* too long to be kept: still right, every time */
	snprintf(dom, sizeof(dom), "mx.%.60s.%.60s.example.org", long_label, long_label);
	snprintf(want, sizeof(want), "example.org");
	for (int i = 0; i < 3; i++)
		assert_string_equal(network_registrable(dom, buf, sizeof(buf)), want);
	/* a short buffer still gets a cached answer cut, not overflowed */
	assert_string_equal(network_registrable("a.example.co.uk", buf, sizeof(buf)),
			    "example.co.uk");
	assert_string_equal(network_registrable("a.example.co.uk", buf, 5), "exam");
}

static void test_domain_in_list(void **state)
{
	static char *local[] = { "example.com", "Corp.Example.NET", "" };
	struct strlist list = { local, N(local) };
	struct strlist none = { NULL, 0 };

	(void) state;
	assert_true(domain_in_list(&list, "example.com"));
	assert_true(domain_in_list(&list, "mail.example.com"));
	assert_true(domain_in_list(&list, "a.b.example.com"));
	assert_true(domain_in_list(&list, "corp.example.net"));
	assert_true(domain_in_list(&list, "x.corp.example.net"));
	assert_false(domain_in_list(&list, "xexample.com"));
	assert_false(domain_in_list(&list, "example.com.evil"));
	assert_false(domain_in_list(&list, "com"));
	assert_false(domain_in_list(&list, "example.net"));
	assert_false(domain_in_list(&list, ".com"));
	assert_false(domain_in_list(&list, ""));
	assert_false(domain_in_list(&list, NULL));
	assert_false(domain_in_list(NULL, "example.com"));
	assert_false(domain_in_list(&none, "example.com"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_network_table),
		cmocka_unit_test(test_network_status),
		cmocka_unit_test(test_network_deterministic),
		cmocka_unit_test(test_registrable),
		cmocka_unit_test(test_registrable_cache),
		cmocka_unit_test(test_domain_in_list),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
