/*
 * test_mx.c - recipient networks by MX host (mx.c) against a real DNS
 * server and a real Redis, both started by the test: dnsmasq on 127.0.0.1
 * and a free port, answering only the records given below and logging
 * every query (so that cache hits can be proven by counting queries at the
 * server), and a throwaway redis-server (redis_helper.h).
 *
 * Covered: patterns (wildcard and exact), dns_server syntax, a Google
 * hosted domain grouped with gmail.com, preference order, no MX (an A
 * record only, NXDOMAIN, a CNAME alone) with the RFC 5321 implicit MX,
 * "no MX" answers shared through Redis, the longest mx_cache_ttl, a
 * resolver that never answers (bounded latency, fallback, logged once),
 * the in-process cache, the Redis cache used by a second process, the
 * record of grouped domains for outboundctl, the LRU bound, threads, Redis
 * down, and the latency of a cold and a warm lookup (printed).
 *
 * Needs /usr/sbin/dnsmasq (Debian package dnsmasq-base); without it the
 * test is skipped (exit 77).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include "redis_helper.h"
#include "redis_raw.h"

#include "address.h"
#include "config.h"
#include "mx.h"
#include "network.h"
#include "store.h"

#define DNSMASQ "/usr/sbin/dnsmasq"
#define N(a) (sizeof(a) / sizeof((a)[0]))
#define LAT_DOMAINS 40

static const char *self;      /* argv[0], for the second process */
static char dir[64];          /* the test's temporary folder */
static char dns_log[128];
static int dns_port;
static pid_t dns_pid;
static int hole_fd = -1;      /* a UDP socket nobody reads: a resolver that never answers */
static int hole_port;
static unsigned conf_seq;
static unsigned sync_seq;

/* the records dnsmasq serves (options without their leading dashes) */
static const char *const records[] = {
	"local=/example/",
	"local=/test/",
	"mx-host=acme.example,aspmx.l.google.com,10",
	"mx-host=gmail.com,gmail-smtp-in.l.google.com,5",
	"mx-host=pref.example,alt1.aspmx.l.google.com,20",
	"mx-host=pref.example,mta5.am0.yahoodns.net,10",
	"mx-host=second.example,mx.unrelated.test,10",
	"mx-host=second.example,alt2.aspmx.l.google.com,20",
	"mx-host=exact.example,mx.exact.test,10",
	"mx-host=notexact.example,sub.mx.exact.test,10",
	"mx-host=apex.example,google.com,10",
	"mx-host=other.example,mx.other.test,10",
	"host-record=aonly.example,192.0.2.10",
	"host-record=www.implicit.example,192.0.2.11",
	/* MX queries answered with a CNAME alone: the target has no MX */
	"host-record=target.cname.test,192.0.2.12",
	"cname=cnameonly.example,target.cname.test",
	"cname=www.cname.implicit.example,target.cname.test",
	/* a CNAME to a name with MX records: the MX records come along */
	"cname=alias.example,acme.example",
	"mx-host=longttl.example,aspmx.l.google.com,10",
};

/* ---- time --------------------------------------------------------------- */

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static long long now_us(void)
{
	return now_ns() / 1000;
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return x < y ? -1 : x > y;
}

static long long median(long long *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_ll);
	return v[n / 2];
}

/* ---- dnsmasq -------------------------------------------------------------- */

/* a port that is free right now for UDP and TCP on 127.0.0.1 */
static int free_port(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int port = 0;

	for (int tries = 0; tries < 20 && port == 0; tries++) {
		int u = socket(AF_INET, SOCK_DGRAM, 0), t;

		memset(&a, 0, sizeof(a));
		a.sin_family = AF_INET;
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (u < 0 || bind(u, (struct sockaddr *)&a, sizeof(a)) != 0 ||
		    getsockname(u, (struct sockaddr *)&a, &len) != 0) {
			if (u >= 0)
				close(u);
			continue;
		}
		t = socket(AF_INET, SOCK_STREAM, 0);
		if (t >= 0 && bind(t, (struct sockaddr *)&a, sizeof(a)) == 0)
			port = ntohs(a.sin_port);
		if (t >= 0)
			close(t);
		close(u);
	}
	return port;
}

static bool file_has(const char *path, const char *needle)
{
	FILE *fp = fopen(path, "r");
	char line[1024];
	bool found = false;

	if (fp == NULL)
		return false;
	while (!found && fgets(line, sizeof(line), fp) != NULL)
		found = strstr(line, needle) != NULL;
	fclose(fp);
	return found;
}

/* MX queries for NAME that reached dnsmasq */
static int dns_queries(const char *name)
{
	char needle[300], line[1024];
	FILE *fp = fopen(dns_log, "r");
	int n = 0;

	assert_non_null(fp);
	snprintf(needle, sizeof(needle), "query[MX] %s from ", name);
	while (fgets(line, sizeof(line), fp) != NULL)
		if (strstr(line, needle) != NULL)
			n++;
	fclose(fp);
	return n;
}

static void dns_stop(void)
{
	int status;

	if (dns_pid <= 0)
		return;
	kill(dns_pid, SIGTERM);
	for (int i = 0; i < 500 && waitpid(dns_pid, &status, WNOHANG) == 0; i++)
		redis_test_sleep_ms(10);
	if (waitpid(dns_pid, &status, WNOHANG) == 0) {
		kill(dns_pid, SIGKILL);
		waitpid(dns_pid, &status, 0);
	}
	dns_pid = 0;
}

/* the records as a dnsmasq configuration file; its path in PATH */
static int dns_write_conf(char *path, size_t size)
{
	FILE *fp;

	snprintf(path, size, "%s/dnsmasq.conf", dir);
	if ((fp = fopen(path, "w")) == NULL)
		return -1;
	for (size_t i = 0; i < N(records); i++)
		fprintf(fp, "%s\n", records[i]);
	for (int i = 0; i < LAT_DOMAINS; i++)
		fprintf(fp, "mx-host=lat%d.example,aspmx.l.google.com,10\n", i);
	for (int i = 0; i < 200; i++)
		fprintf(fp, "mx-host=t%d.example,aspmx.l.google.com,10\n", i);
	return fclose(fp) == 0 ? 0 : -1;
}

/* start dnsmasq on a free port; 0 once it logged that it started */
static int dns_start(void)
{
	char conf[128], port[32], pidf[128], logf[160], out[128];

	if (dns_write_conf(conf, sizeof(conf)) != 0)
		return -1;
	snprintf(pidf, sizeof(pidf), "--pid-file=%s/dnsmasq.pid", dir);
	snprintf(logf, sizeof(logf), "--log-facility=%s", dns_log);
	snprintf(out, sizeof(out), "%s/dnsmasq.out", dir);
	for (int attempt = 0; attempt < 5; attempt++) {
		/* -k: stay our child; -C: only our records, no /etc/dnsmasq.conf */
		const char *argv[] = {
			DNSMASQ, "-k", "-C", conf, "--no-resolv", "--no-hosts", "--no-poll",
			"--listen-address=127.0.0.1", "--bind-interfaces", port, pidf,
			"--user=root", "--group=root", "--cache-size=0", "--log-queries", logf,
			NULL,
		};
		long long deadline;
		int status;
		pid_t pid;

		if ((dns_port = free_port()) == 0)
			return -1;
		snprintf(port, sizeof(port), "--port=%d", dns_port);
		unlink(dns_log);
		fflush(NULL);
		if ((pid = fork()) < 0)
			return -1;
		if (pid == 0) {
			int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);

			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (fd >= 0) {
				dup2(fd, 1);
				dup2(fd, 2);
				close(fd);
			}
			execv(argv[0], (char *const *)argv);
			_exit(127);
		}
		dns_pid = pid;
		deadline = redis_test_ms() + 10000;
		while (redis_test_ms() < deadline) {
			if (waitpid(pid, &status, WNOHANG) == pid) {
				dns_pid = 0;
				break; /* the port was taken meanwhile: another one */
			}
			if (file_has(dns_log, "started, version"))
				return 0;
			redis_test_sleep_ms(10);
		}
		if (dns_pid > 0) {
			dns_stop();
			return -1;
		}
	}
	return -1;
}

/* a UDP socket that receives and never answers */
static int hole_start(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);

	hole_fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (hole_fd < 0)
		return -1;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(hole_fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    getsockname(hole_fd, (struct sockaddr *)&a, &len) != 0)
		return -1;
	hole_port = ntohs(a.sin_port);
	return 0;
}

/* ---- configurations ---------------------------------------------------------- */

struct conf_opts {
	const char *server;  /* dns_server; NULL: dnsmasq */
	int timeout_ms;      /* 0: 300 */
	long cache_ttl;      /* 0: 3600 */
	bool off;            /* mx_grouping = false */
	const char *redis;   /* redis socket; NULL: the test server */
};

static void report_fail(void *arg, const char *file, int line, bool is_error, const char *msg)
{
	(void)arg;
	fprintf(stderr, "%s:%d: %s: %s\n", file, line, is_error ? "error" : "warning", msg);
}

/*
 * A configuration from a file written here, under a prefix of its own
 * (so that each starts with an empty Redis cache); its path in PATH.
 */
static struct config *conf_load(const struct conf_opts *o, char *path, size_t psize)
{
	char server[64], local[160];
	struct config *c;
	FILE *fp;

	if (path == NULL) {
		path = local;
		psize = sizeof(local);
	}
	if (o->server != NULL)
		snprintf(server, sizeof(server), "%s", o->server);
	else
		snprintf(server, sizeof(server), "127.0.0.1:%d", dns_port);
	snprintf(path, psize, "%s/obm-%u.conf", dir, ++conf_seq);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fprintf(fp,
		"mx_grouping = %s\n"
		"mx_cache_ttl = %ld\n"
		"dns_timeout_ms = %d\n"
		"dns_server = \"%s\"\n"
		"redis {\n"
		"  socket = \"%s\"\n"
		"  prefix = \"%s%u:\"\n"
		"  timeout_ms = 500\n"
		"}\n"
		"network google { domains = {\"gmail.com\", \"googlemail.com\"}; "
		"mx = {\"*.google.com\", \"aspmx.l.google.com\"} }\n"
		"network yahoo { domains = {\"yahoo.com\"}; mx = {\"*.yahoodns.net\"} }\n"
		"network exact { mx = {\"mx.exact.test\"} }\n"
		"network implicit { mx = {\"*.implicit.example\"} }\n"
		"limit any { }\n",
		o->off ? "false" : "true", o->cache_ttl > 0 ? o->cache_ttl : 3600,
		o->timeout_ms > 0 ? o->timeout_ms : 300, server,
		o->redis != NULL ? o->redis : srv.sock, prefix, conf_seq);
	fclose(fp);
	c = config_load(path, report_fail, NULL);
	assert_non_null(c);
	c->generation = conf_seq;
	return c;
}

static struct config *conf_std(void)
{
	struct conf_opts o = {0};

	return conf_load(&o, NULL, 0);
}

/* network_of for an address at DOMAIN */
static const char *net_of(const struct config *c, const char *domain, char *buf)
{
	char raw_addr[300];
	struct address a;

	snprintf(raw_addr, sizeof(raw_addr), "user@%s", domain);
	address_normalize(raw_addr, "+", &a);
	assert_int_equal(a.status, ADDR_OK);
	return network_of(c, &a, buf, NETWORK_MAX);
}

/*
 * dnsmasq handles queries in order: once a fresh query shows in its log,
 * every earlier one does too.
 */
static void dns_sync(void)
{
	struct conf_opts o = { .cache_ttl = 1 };
	struct config *c = conf_load(&o, NULL, 0);
	char name[64], buf[NETWORK_MAX];
	long long deadline = redis_test_ms() + 3000;

	snprintf(name, sizeof(name), "sync%u.example", ++sync_seq);
	assert_false(mx_network(c, name, buf, sizeof(buf)));
	while (dns_queries(name) == 0 && redis_test_ms() < deadline)
		redis_test_sleep_ms(5);
	assert_int_equal(dns_queries(name), 1);
	config_free(c);
}

/* the string value of KEY ("" when none) and its TTL in seconds */
static void redis_get(const char *key, char *buf, size_t size, long long *ttl)
{
	redisReply *r = redisCommand(raw_get(), "GET %s", key);

	assert_non_null(r);
	snprintf(buf, size, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
	freeReplyObject(r);
	r = redisCommand(raw, "TTL %s", key);
	assert_non_null(r);
	*ttl = r->integer;
	freeReplyObject(r);
}

/* ---- patterns and dns_server (no DNS) ------------------------------------- */

static void test_patterns(void **state)
{
	(void)state;
	assert_true(mx_pattern_match("*.google.com", "aspmx.l.google.com"));
	assert_true(mx_pattern_match("*.google.com", "ALT1.ASPMX.L.GOOGLE.COM."));
	assert_true(mx_pattern_match("*.google.com", "x.google.com"));
	assert_false(mx_pattern_match("*.google.com", "google.com"));
	assert_false(mx_pattern_match("*.google.com", "evilgoogle.com"));
	assert_false(mx_pattern_match("*.google.com", "google.com.evil.test"));
	assert_true(mx_pattern_match("aspmx.l.google.com", "aspmx.l.google.com"));
	assert_true(mx_pattern_match("aspmx.l.google.com", "AspMX.l.google.com."));
	assert_false(mx_pattern_match("aspmx.l.google.com", "alt1.aspmx.l.google.com"));
	assert_false(mx_pattern_match("aspmx.l.google.com", "aspmx.l.google.co"));
	assert_false(mx_pattern_match("", "x.test"));
	assert_false(mx_pattern_match("*.", "x.test"));
	assert_false(mx_pattern_match(NULL, "x.test"));
	assert_false(mx_pattern_match("x.test", NULL));
}

static void test_server_syntax(void **state)
{
	static const struct {
		const char *in;
		int rc;
		const char *addr;
		int port;
	} cases[] = {
		{ "", 0, "", 0 },
		{ "127.0.0.1", 0, "127.0.0.1", 53 },
		{ "127.0.0.1:5353", 0, "127.0.0.1", 5353 },
		{ "::1", 0, "::1", 53 },
		{ "[::1]", 0, "::1", 53 },
		{ "[2001:db8::53]:1053", 0, "2001:db8::53", 1053 },
		{ "127.0.0.1:0", -1, NULL, 0 },
		{ "127.0.0.1:65536", -1, NULL, 0 },
		{ "127.0.0.1:", -1, NULL, 0 },
		{ "127.0.0.1:53x", -1, NULL, 0 },
		{ "localhost", -1, NULL, 0 },
		{ "ns.example.com:53", -1, NULL, 0 },
		{ "300.1.1.1", -1, NULL, 0 },
		{ "[::1", -1, NULL, 0 },
		{ "[::1]x", -1, NULL, 0 },
		{ "[127.0.0.1]:53", -1, NULL, 0 },
		{ " 127.0.0.1", -1, NULL, 0 },
	};
	char addr[64];
	int port;

	(void)state;
	for (size_t i = 0; i < N(cases); i++) {
		int rc = mx_server_parse(cases[i].in, addr, sizeof(addr), &port);

		if (rc != cases[i].rc)
			print_message("dns_server '%s': got %d\n", cases[i].in, rc);
		assert_int_equal(rc, cases[i].rc);
		if (rc == 0) {
			assert_string_equal(addr, cases[i].addr);
			assert_int_equal(port, cases[i].port);
		}
	}
}

/* ---- grouping ------------------------------------------------------------------- */

static void test_google_hosted_domain(void **state)
{
	struct config *c = conf_std();
	char buf[NETWORK_MAX], key[256], val[256];
	struct mx_info info;
	long long ttl;

	(void)state;
	mx_cache_clear();
	/* gmail.com is google by name: no query */
	assert_string_equal(net_of(c, "gmail.com", buf), "google");
	/* acme.example has MX aspmx.l.google.com: google too */
	assert_true(mx_network_info(c, "acme.example", buf, sizeof(buf), &info));
	assert_string_equal(buf, "google");
	assert_int_equal(info.source, MX_SOURCE_DNS);
	assert_int_equal(info.kind, MX_KIND_HOSTS);
	assert_string_equal(info.host, "aspmx.l.google.com");
	assert_string_equal(net_of(c, "acme.example", buf), "google");
	assert_string_equal(net_of(c, "ACME.example.", buf), "google");

	/* the answer is cached in Redis with mx_cache_ttl */
	snprintf(key, sizeof(key), "%s{mx:acme.example}", c->redis.prefix);
	redis_get(key, val, sizeof(val), &ttl);
	assert_string_equal(val, "mx aspmx.l.google.com");
	assert_true(ttl > 3500 && ttl <= 3600);
	/* and the grouping is recorded, with a TTL */
	snprintf(key, sizeof(key), "%s{mx}:net:google", c->redis.prefix);
	{
		redisReply *r = redisCommand(raw_get(), "ZSCORE %s acme.example", key);

		assert_non_null(r);
		assert_int_equal(r->type, REDIS_REPLY_STRING);
		freeReplyObject(r);
		r = redisCommand(raw, "TTL %s", key);
		assert_true(r->integer > 0 && r->integer <= STORE_MX_KEEP_S);
		freeReplyObject(r);
	}

	dns_sync();
	assert_int_equal(dns_queries("gmail.com"), 0);
	assert_int_equal(dns_queries("acme.example"), 1);
	config_free(c);
}

struct case_net {
	const char *domain;
	const char *net;     /* network_of */
	enum mx_kind kind;
	const char *host;    /* the matching MX host */
};

static void test_preference_and_patterns(void **state)
{
	static const struct case_net cases[] = {
		/* MX 10 at yahoodns.net, MX 20 at google.com: the best wins */
		{ "pref.example", "yahoo", MX_KIND_HOSTS, "mta5.am0.yahoodns.net" },
		/* the best host matches nothing, the next one does */
		{ "second.example", "google", MX_KIND_HOSTS, "alt2.aspmx.l.google.com" },
		/* an exact pattern matches that host only */
		{ "exact.example", "exact", MX_KIND_HOSTS, "mx.exact.test" },
		{ "notexact.example", "notexact.example", MX_KIND_HOSTS, "" },
		/* *.google.com is below google.com, not google.com itself */
		{ "apex.example", "apex.example", MX_KIND_HOSTS, "" },
		{ "other.example", "other.example", MX_KIND_HOSTS, "" },
	};
	struct config *c = conf_std();
	char buf[NETWORK_MAX];

	(void)state;
	mx_cache_clear();
	for (size_t i = 0; i < N(cases); i++) {
		struct mx_info info;
		bool ok = mx_network_info(c, cases[i].domain, buf, sizeof(buf), &info);

		print_message("%s: source %d kind %d host '%s'\n", cases[i].domain, info.source,
			      info.kind, info.host);
		assert_int_equal(ok, cases[i].host[0] != '\0');
		assert_int_equal(info.kind, cases[i].kind);
		assert_string_equal(info.host, cases[i].host);
		assert_string_equal(net_of(c, cases[i].domain, buf), cases[i].net);
	}
	dns_sync();
	for (size_t i = 0; i < N(cases); i++)
		assert_int_equal(dns_queries(cases[i].domain), 1);
	config_free(c);
}

static void test_no_mx(void **state)
{
	struct config *c = conf_std();
	char buf[NETWORK_MAX], key[256], val[64];
	struct mx_info info;
	long long ttl;

	(void)state;
	mx_cache_clear();
	/* an A record only: the domain is its own MX, matches nothing */
	assert_false(mx_network_info(c, "aonly.example", buf, sizeof(buf), &info));
	assert_int_equal(info.source, MX_SOURCE_DNS);
	assert_int_equal(info.kind, MX_KIND_NONE);
	assert_string_equal(net_of(c, "aonly.example", buf), "aonly.example");
	assert_string_equal(net_of(c, "mail.aonly.example", buf), "aonly.example");
	/* NXDOMAIN */
	assert_false(mx_network_info(c, "nothere.example", buf, sizeof(buf), &info));
	assert_int_equal(info.kind, MX_KIND_NONE);
	assert_string_equal(net_of(c, "nothere.example", buf), "nothere.example");
	/* no MX, but the name itself matches a pattern (RFC 5321 implicit MX) */
	assert_true(mx_network_info(c, "www.implicit.example", buf, sizeof(buf), &info));
	assert_int_equal(info.kind, MX_KIND_NONE);
	assert_string_equal(buf, "implicit");
	assert_string_equal(info.host, "www.implicit.example");

	/* negative answers: cached in Redis for min(300, mx_cache_ttl) */
	snprintf(key, sizeof(key), "%s{mx:aonly.example}", c->redis.prefix);
	redis_get(key, val, sizeof(val), &ttl);
	assert_string_equal(val, "none");
	assert_true(ttl > 250 && ttl <= MX_NEGATIVE_TTL);
	snprintf(key, sizeof(key), "%s{mx:nothere.example}", c->redis.prefix);
	redis_get(key, val, sizeof(val), &ttl);
	assert_string_equal(val, "none");

	dns_sync();
	assert_int_equal(dns_queries("aonly.example"), 1);
	assert_int_equal(dns_queries("nothere.example"), 1);
	/* the A record was never asked for */
	assert_false(file_has(dns_log, "query[A] aonly.example"));
	config_free(c);
}

/* what is never looked up */
static void test_no_lookup(void **state)
{
	struct conf_opts o = { .off = true };
	struct config *off = conf_load(&o, NULL, 0), *c = conf_std();
	char buf[NETWORK_MAX];
	struct mx_stats st;

	(void)state;
	mx_cache_clear();
	/* mx_grouping = false */
	assert_string_equal(net_of(off, "other.example", buf), "other.example");
	assert_false(mx_network(off, "acme.example", buf, sizeof(buf)));
	/* literals, single labels, configured domains */
	assert_string_equal(net_of(c, "[192.0.2.1]", buf), "[192.0.2.1]");
	assert_false(mx_network(c, "localhost", buf, sizeof(buf)));
	assert_false(mx_network(c, "bad{domain}.example", buf, sizeof(buf)));
	assert_false(mx_network(c, "", buf, sizeof(buf)));
	assert_false(mx_network(NULL, "acme.example", buf, sizeof(buf)));
	assert_string_equal(net_of(c, "googlemail.com", buf), "google");
	mx_stats_get(&st);
	assert_int_equal(st.lookups, 0);
	assert_int_equal(st.dns_queries, 0);
	dns_sync();
	assert_int_equal(dns_queries("localhost"), 0);
	assert_int_equal(dns_queries("googlemail.com"), 0);
	config_free(off);
	config_free(c);
}

/* ---- caches ---------------------------------------------------------------- */

static void test_process_cache(void **state)
{
	struct config *c = conf_std();
	char buf[NETWORK_MAX];
	struct mx_info info;
	struct mx_stats st;

	(void)state;
	mx_cache_clear();
	for (int i = 0; i < 100; i++) {
		assert_true(mx_network_info(c, "acme.example", buf, sizeof(buf), &info));
		assert_string_equal(buf, "google");
		assert_int_equal(info.source, i == 0 ? MX_SOURCE_DNS : MX_SOURCE_PROCESS);
		assert_false(mx_network_info(c, "aonly.example", buf, sizeof(buf), &info));
		assert_int_equal(info.source, i == 0 ? MX_SOURCE_DNS : MX_SOURCE_PROCESS);
	}
	mx_stats_get(&st);
	assert_int_equal(st.lookups, 200);
	assert_int_equal(st.dns_queries, 2);
	assert_int_equal(st.process_hits, 198);
	assert_int_equal(st.redis_hits, 0);
	dns_sync();
	/* one for test_google_hosted_domain, one for this test */
	assert_int_equal(dns_queries("acme.example"), 2);
	assert_int_equal(dns_queries("aonly.example"), 2);

	/* the in-process cache empty, the Redis cache answers */
	mx_cache_clear();
	assert_true(mx_network_info(c, "acme.example", buf, sizeof(buf), &info));
	assert_int_equal(info.source, MX_SOURCE_REDIS);
	assert_true(mx_network_info(c, "acme.example", buf, sizeof(buf), &info));
	assert_int_equal(info.source, MX_SOURCE_PROCESS);
	dns_sync();
	assert_int_equal(dns_queries("acme.example"), 2);
	config_free(c);
}

/* in the child: look DOMAINS up under the configuration FILE, print how */
static int child_lookup(const char *file, char **domains, int n)
{
	struct config *c = config_load(file, report_fail, NULL);

	if (c == NULL)
		return 2;
	c->generation = 1;
	for (int i = 0; i < n; i++) {
		char buf[NETWORK_MAX] = "-";
		struct mx_info info;
		long long t0 = now_us();
		bool ok = mx_network_info(c, domains[i], buf, sizeof(buf), &info);

		printf("%s %s %d %lld\n", domains[i], ok ? buf : "-", info.source,
		       now_us() - t0);
	}
	config_free(c);
	store_disconnect();
	mx_cache_clear();
	return 0;
}

/* run this program as a second process; its output in OUT */
static void run_child(const char *file, const char *const *domains, int n, char *out,
		      size_t size)
{
	const char *argv[16];
	int fds[2], status, argc = 0;
	size_t got = 0;
	ssize_t r;
	pid_t pid;

	assert_true(n < 12);
	argv[argc++] = self;
	argv[argc++] = "--child-lookup";
	argv[argc++] = file;
	for (int i = 0; i < n; i++)
		argv[argc++] = domains[i];
	argv[argc] = NULL;
	assert_int_equal(pipe(fds), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execv(self, (char *const *)argv);
		_exit(127);
	}
	close(fds[1]);
	while (got + 1 < size && (r = read(fds[0], out + got, size - got - 1)) > 0)
		got += (size_t)r;
	out[got] = '\0';
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_redis_cache_second_process(void **state)
{
	static const char *const domains[] = { "second.example", "pref.example",
					       "aonly.example" };
	struct conf_opts o = {0};
	char path[160], buf[NETWORK_MAX], out[1024], want[64];
	struct config *c;
	int before[N(domains)];

	(void)state;
	mx_cache_clear();
	c = conf_load(&o, path, sizeof(path));
	dns_sync();
	for (size_t i = 0; i < N(domains); i++)
		before[i] = dns_queries(domains[i]);
	/* this process asks DNS ... */
	assert_string_equal(net_of(c, "second.example", buf), "google");
	assert_string_equal(net_of(c, "pref.example", buf), "yahoo");
	assert_string_equal(net_of(c, "aonly.example", buf), "aonly.example");
	/* ... another one, same Redis, finds the answers there */
	run_child(path, domains, (int)N(domains), out, sizeof(out));
	print_message("second process:\n%s", out);
	snprintf(want, sizeof(want), "second.example google %d ", MX_SOURCE_REDIS);
	assert_non_null(strstr(out, want));
	snprintf(want, sizeof(want), "pref.example yahoo %d ", MX_SOURCE_REDIS);
	assert_non_null(strstr(out, want));
	snprintf(want, sizeof(want), "aonly.example - %d ", MX_SOURCE_REDIS);
	assert_non_null(strstr(out, want));
	dns_sync();
	for (size_t i = 0; i < N(domains); i++)
		assert_int_equal(dns_queries(domains[i]), before[i] + 1);
	config_free(c);
}

/*
 * An MX query answered with a CNAME alone (its target has no MX): a "no
 * MX" answer for the domain itself (its own name matched against the
 * patterns), cached in Redis like any other so that the next lookup,
 * here by another process, is served from there and not from DNS.
 */
static void test_cname_only(void **state)
{
	static const char *const domains[] = { "cnameonly.example",
					       "www.cname.implicit.example", "alias.example" };
	struct conf_opts o = {0};
	char path[160], buf[NETWORK_MAX], key[256], val[256], out[1024], want[80];
	struct config *c;
	struct mx_info info;
	long long ttl;

	(void)state;
	mx_cache_clear();
	c = conf_load(&o, path, sizeof(path));
	/* no MX behind the CNAME: the registrable domain */
	assert_false(mx_network_info(c, "cnameonly.example", buf, sizeof(buf), &info));
	assert_int_equal(info.source, MX_SOURCE_DNS);
	assert_int_equal(info.kind, MX_KIND_NONE);
	assert_string_equal(net_of(c, "cnameonly.example", buf), "cnameonly.example");
	/* the domain's own name matches a pattern: that network */
	assert_true(mx_network_info(c, "www.cname.implicit.example", buf, sizeof(buf), &info));
	assert_int_equal(info.kind, MX_KIND_NONE);
	assert_string_equal(buf, "implicit");
	assert_string_equal(info.host, "www.cname.implicit.example");
	/* a CNAME to a domain with MX records: grouped by those */
	assert_true(mx_network_info(c, "alias.example", buf, sizeof(buf), &info));
	assert_int_equal(info.kind, MX_KIND_HOSTS);
	assert_string_equal(buf, "google");

	/* in Redis as a "no MX" answer, with the negative lifetime */
	snprintf(key, sizeof(key), "%s{mx:cnameonly.example}", c->redis.prefix);
	redis_get(key, val, sizeof(val), &ttl);
	assert_string_equal(val, "none");
	assert_true(ttl > 250 && ttl <= MX_NEGATIVE_TTL);
	snprintf(key, sizeof(key), "%s{mx:www.cname.implicit.example}", c->redis.prefix);
	redis_get(key, val, sizeof(val), &ttl);
	assert_string_equal(val, "none");
	snprintf(key, sizeof(key), "%s{mx:alias.example}", c->redis.prefix);
	redis_get(key, val, sizeof(val), &ttl);
	assert_string_equal(val, "mx aspmx.l.google.com");

	/* the next lookup (another process, same Redis) reads Redis, not DNS */
	run_child(path, domains, (int)N(domains), out, sizeof(out));
	print_message("second process:\n%s", out);
	snprintf(want, sizeof(want), "cnameonly.example - %d ", MX_SOURCE_REDIS);
	assert_non_null(strstr(out, want));
	snprintf(want, sizeof(want), "www.cname.implicit.example implicit %d ", MX_SOURCE_REDIS);
	assert_non_null(strstr(out, want));
	snprintf(want, sizeof(want), "alias.example google %d ", MX_SOURCE_REDIS);
	assert_non_null(strstr(out, want));
	/* and this process's cache emptied, from Redis too */
	mx_cache_clear();
	assert_false(mx_network_info(c, "cnameonly.example", buf, sizeof(buf), &info));
	assert_int_equal(info.source, MX_SOURCE_REDIS);
	assert_int_equal(info.kind, MX_KIND_NONE);
	dns_sync();
	for (size_t i = 0; i < N(domains); i++)
		assert_int_equal(dns_queries(domains[i]), 1);
	config_free(c);
}

/* the longest mx_cache_ttl is what Redis keeps (SET EX takes it) */
static void test_longest_cache_ttl(void **state)
{
	static const char *const domains[] = { "longttl.example" };
	struct conf_opts o = { .cache_ttl = MX_CACHE_TTL_MAX };
	char path[160], buf[NETWORK_MAX], key[256], val[256], out[256], want[64];
	struct config *c;
	long long ttl;

	(void)state;
	mx_cache_clear();
	c = conf_load(&o, path, sizeof(path));
	assert_int_equal(c->mx_cache_ttl, MX_CACHE_TTL_MAX);
	assert_string_equal(net_of(c, "longttl.example", buf), "google");
	snprintf(key, sizeof(key), "%s{mx:longttl.example}", c->redis.prefix);
	redis_get(key, val, sizeof(val), &ttl);
	assert_string_equal(val, "mx aspmx.l.google.com");
	assert_true(ttl > MX_CACHE_TTL_MAX - 60 && ttl <= MX_CACHE_TTL_MAX);
	run_child(path, domains, 1, out, sizeof(out));
	snprintf(want, sizeof(want), "longttl.example google %d ", MX_SOURCE_REDIS);
	assert_non_null(strstr(out, want));
	config_free(c);
}

struct listed {
	char domains[16][64];
	int n;
};

static void list_fn(void *arg, const char *domain, long long last_seen_ms)
{
	struct listed *l = arg;

	assert_true(last_seen_ms > 0);
	if (l->n < 16)
		snprintf(l->domains[l->n], sizeof(l->domains[0]), "%s", domain);
	l->n++;
}

static bool listed_has(const struct listed *l, const char *d)
{
	for (int i = 0; i < l->n && i < 16; i++)
		if (strcmp(l->domains[i], d) == 0)
			return true;
	return false;
}

static void test_network_list(void **state)
{
	struct config *c = conf_std();
	char buf[NETWORK_MAX];
	struct listed l = {0};

	(void)state;
	mx_cache_clear();
	assert_string_equal(net_of(c, "acme.example", buf), "google");
	assert_string_equal(net_of(c, "second.example", buf), "google");
	assert_string_equal(net_of(c, "pref.example", buf), "yahoo");
	assert_string_equal(net_of(c, "other.example", buf), "other.example");
	assert_int_equal(store_mx_network_list(c, "google", list_fn, &l), 2);
	assert_true(listed_has(&l, "acme.example"));
	assert_true(listed_has(&l, "second.example"));
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_mx_network_list(c, "yahoo", list_fn, &l), 1);
	assert_string_equal(l.domains[0], "pref.example");
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_mx_network_list(c, "other.example", list_fn, &l), 0);
	assert_int_equal(store_mx_network_list(c, "nosuch", list_fn, &l), 0);
	assert_int_equal(store_mx_network_list(c, NULL, list_fn, &l), STORE_ERR);
	config_free(c);
}

/* ---- failures ------------------------------------------------------------------ */

static void test_resolver_never_answers(void **state)
{
	static const int timeouts[] = { 300, 50 };
	char server[64], buf[NETWORK_MAX], key[256], val[64];
	struct mx_stats st;
	long long ttl;

	(void)state;
	snprintf(server, sizeof(server), "127.0.0.1:%d", hole_port);
	for (size_t k = 0; k < N(timeouts); k++) {
		struct conf_opts o = { .server = server, .timeout_ms = timeouts[k], .cache_ttl = 1 };
		struct config *c = conf_load(&o, NULL, 0);
		struct mx_info info;
		long long t0, elapsed;

		mx_cache_clear();
		t0 = now_us();
		assert_string_equal(net_of(c, "mail.acme.example", buf), "acme.example");
		elapsed = now_us() - t0;
		printf("# resolver never answers, dns_timeout_ms = %d: RCPT delayed %.1f ms, "
		       "network acme.example (fallback)\n", timeouts[k], elapsed / 1000.0);
		assert_true(elapsed >= timeouts[k] * 1000LL - 5000);
		assert_true(elapsed <= timeouts[k] * 1000LL + 250000);
		mx_stats_get(&st);
		assert_int_equal(st.dns_failures, 1);
		assert_int_equal(st.failures_logged, 1);

		/* the failure is remembered in this process: no second wait */
		t0 = now_us();
		assert_false(mx_network_info(c, "mail.acme.example", buf, sizeof(buf), &info));
		elapsed = now_us() - t0;
		assert_int_equal(info.source, MX_SOURCE_PROCESS);
		assert_int_equal(info.kind, MX_KIND_FAILED);
		assert_true(elapsed < 50000);
		/* and not shared through Redis */
		snprintf(key, sizeof(key), "%s{mx:mail.acme.example}", c->redis.prefix);
		redis_get(key, val, sizeof(val), &ttl);
		assert_string_equal(val, "");

		/* after min(60, mx_cache_ttl) = 1 s it is tried again, not logged again */
		redis_test_sleep_ms(1100);
		assert_false(mx_network_info(c, "mail.acme.example", buf, sizeof(buf), &info));
		assert_int_equal(info.source, MX_SOURCE_DNS);
		assert_true(info.dns_us <= timeouts[k] * 1000LL + 250000);
		mx_stats_get(&st);
		assert_int_equal(st.dns_failures, 2);
		assert_int_equal(st.failures_logged, 1);
		config_free(c);
	}
	/* a refused query (not our zone) fails at once, falls back too */
	{
		struct config *c = conf_std();
		struct mx_info info;

		mx_cache_clear();
		assert_false(mx_network_info(c, "www.example.org", buf, sizeof(buf), &info));
		assert_int_equal(info.kind, MX_KIND_FAILED);
		assert_true(info.dns_us < 250000);
		assert_string_equal(net_of(c, "www.example.org", buf), "example.org");
		config_free(c);
	}
}

static void test_redis_down(void **state)
{
	char sock[128], buf[NETWORK_MAX];
	struct conf_opts o = { .redis = sock };
	struct config *c;
	struct mx_info info;

	(void)state;
	snprintf(sock, sizeof(sock), "%s/no-redis.sock", dir);
	c = conf_load(&o, NULL, 0);
	mx_cache_clear();
	assert_true(mx_network_info(c, "acme.example", buf, sizeof(buf), &info));
	assert_string_equal(buf, "google");
	assert_int_equal(info.source, MX_SOURCE_DNS);
	assert_true(mx_network_info(c, "acme.example", buf, sizeof(buf), &info));
	assert_int_equal(info.source, MX_SOURCE_PROCESS);
	config_free(c);
	store_disconnect();
}

/* ---- bounds and threads ----------------------------------------------------------- */

static void test_lru_bound(void **state)
{
	const int n = MX_CACHE_MAX + 100;
	struct config *c = conf_std();
	char buf[NETWORK_MAX], name[64];
	struct mx_info info;
	struct mx_stats st;
	int i;

	(void)state;
	mx_cache_clear();
	/* N domains in the Redis cache, looked up in order */
	for (i = 0; i < n; i++)
		redisAppendCommand(raw_get(), "SET %s{mx:e%d.example} %s EX 600", c->redis.prefix, i,
				   "mx aspmx.l.google.com");
	for (i = 0; i < n; i++) {
		redisReply *r;

		assert_int_equal(redisGetReply(raw, (void **)&r), REDIS_OK);
		freeReplyObject(r);
	}
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "e%d.example", i);
		assert_true(mx_network_info(c, name, buf, sizeof(buf), &info));
		assert_int_equal(info.source, MX_SOURCE_REDIS);
	}
	mx_stats_get(&st);
	assert_int_equal(st.evictions, 100);
	/* the most recent are still here, the first ones were dropped */
	assert_true(mx_network_info(c, "e10099.example", buf, sizeof(buf), &info));
	assert_int_equal(info.source, MX_SOURCE_PROCESS);
	assert_true(mx_network_info(c, "e99.example", buf, sizeof(buf), &info));
	assert_int_equal(info.source, MX_SOURCE_REDIS); /* back in: e100 goes */
	assert_true(mx_network_info(c, "e100.example", buf, sizeof(buf), &info));
	assert_int_equal(info.source, MX_SOURCE_REDIS); /* back in: e101 goes */
	/* a hit makes an entry the most recent: e102 survives the next eviction */
	assert_true(mx_network_info(c, "e102.example", buf, sizeof(buf), &info));
	assert_int_equal(info.source, MX_SOURCE_PROCESS);
	assert_true(mx_network_info(c, "e0.example", buf, sizeof(buf), &info));
	assert_int_equal(info.source, MX_SOURCE_REDIS); /* e103 goes, not e102 */
	assert_true(mx_network_info(c, "e102.example", buf, sizeof(buf), &info));
	assert_int_equal(info.source, MX_SOURCE_PROCESS);
	assert_true(mx_network_info(c, "e103.example", buf, sizeof(buf), &info));
	assert_int_equal(info.source, MX_SOURCE_REDIS);
	mx_stats_get(&st);
	assert_int_equal(st.evictions, 104);
	/* no DNS at all */
	mx_stats_get(&st);
	assert_int_equal(st.dns_queries, 0);
	config_free(c);
}

struct worker {
	const struct config *cfg;
	int id;
	int wrong;
};

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	char name[64], buf[NETWORK_MAX];

	for (int i = 0; i < 2000; i++) {
		int d = (i * 7 + w->id * 13) % 200;

		snprintf(name, sizeof(name), "t%d.example", d);
		if (!mx_network(w->cfg, name, buf, sizeof(buf)) || strcmp(buf, "google") != 0)
			w->wrong++;
		if (i % 50 == 0 && (!mx_network(w->cfg, "pref.example", buf, sizeof(buf)) ||
				    strcmp(buf, "yahoo") != 0))
			w->wrong++;
	}
	store_disconnect();
	return NULL;
}

static void test_threads(void **state)
{
	struct config *c = conf_std();
	struct worker w[4];
	pthread_t t[4];
	struct mx_stats st;
	int total = 0;
	char name[64];

	(void)state;
	mx_cache_clear();
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){ .cfg = c, .id = i };
		assert_int_equal(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].wrong, 0);
	}
	mx_stats_get(&st);
	print_message("threads: %lu lookups, %lu process hits, %lu Redis hits, %lu queries\n",
		      st.lookups, st.process_hits, st.redis_hits, st.dns_queries);
	assert_int_equal(st.lookups, 4 * (2000 + 40));
	/* each domain is asked for at most once per thread that raced for it */
	assert_true(st.dns_queries + st.redis_hits >= 201);
	assert_true(st.dns_queries <= 4 * 201);
	dns_sync();
	for (int d = 0; d < 200; d++) {
		int q;

		snprintf(name, sizeof(name), "t%d.example", d);
		q = dns_queries(name);
		assert_true(q >= 1 && q <= 4);
		total += q;
	}
	print_message("threads: %d queries for 200 domains\n", total);
	config_free(c);
}

/* ---- latency --------------------------------------------------------------------- */

static void test_latency(void **state)
{
	struct conf_opts o = {0};
	struct config *c = conf_load(&o, NULL, 0), *plain;
	long long cold[LAT_DOMAINS], redis_warm[LAT_DOMAINS], warm[1000], base[1000];
	char buf[NETWORK_MAX], name[64];
	struct mx_info info;

	(void)state;
	o.off = true;
	plain = conf_load(&o, NULL, 0);
	mx_cache_clear();
	for (int i = 0; i < LAT_DOMAINS; i++) {
		long long t0;

		snprintf(name, sizeof(name), "lat%d.example", i);
		t0 = now_ns();
		assert_string_equal(net_of(c, name, buf), "google");
		cold[i] = now_ns() - t0;
	}
	mx_cache_clear();
	for (int i = 0; i < LAT_DOMAINS; i++) {
		long long t0;

		snprintf(name, sizeof(name), "lat%d.example", i);
		t0 = now_ns();
		assert_string_equal(net_of(c, name, buf), "google");
		redis_warm[i] = now_ns() - t0;
		assert_true(mx_network_info(c, name, buf, sizeof(buf), &info));
		assert_int_equal(info.source, MX_SOURCE_PROCESS);
	}
	for (int i = 0; i < 1000; i++) {
		long long t0;

		snprintf(name, sizeof(name), "lat%d.example", i % LAT_DOMAINS);
		t0 = now_ns();
		assert_string_equal(net_of(c, name, buf), "google");
		warm[i] = now_ns() - t0;
		t0 = now_ns();
		assert_string_equal(net_of(plain, name, buf), name);
		base[i] = now_ns() - t0;
	}
	printf("# mx latency of network_of per recipient (median of %d, %d, 1000, 1000 lookups):\n"
	       "#   cold: DNS (dnsmasq on loopback), Redis miss and write  %8.1f us\n"
	       "#   warm from Redis (another process asked before)         %8.1f us\n"
	       "#   warm in process                                        %8.1f us\n"
	       "#   for comparison, mx_grouping = false (public suffixes)  %8.1f us\n",
	       LAT_DOMAINS, LAT_DOMAINS, median(cold, LAT_DOMAINS) / 1000.0,
	       median(redis_warm, LAT_DOMAINS) / 1000.0, median(warm, 1000) / 1000.0,
	       median(base, 1000) / 1000.0);
	dns_sync();
	for (int i = 0; i < LAT_DOMAINS; i++) {
		snprintf(name, sizeof(name), "lat%d.example", i);
		assert_int_equal(dns_queries(name), 1);
	}
	config_free(c);
	config_free(plain);
}

/* ---- setup ------------------------------------------------------------------------- */

static int group_setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/obm-mx-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(dns_log, sizeof(dns_log), "%s/dnsmasq.log", dir);
	/* every configuration here prefixes its keys with PREFIX */
	if (raw_start() != 0)
		return -1;
	if (dns_start() != 0) {
		fprintf(stderr, "cannot start dnsmasq, see %s/dnsmasq.out\n", dir);
		return -1;
	}
	if (hole_start() != 0) {
		fprintf(stderr, "cannot bind a UDP socket\n");
		return -1;
	}
	return 0;
}

static void rm_dir(const char *d)
{
	DIR *dp = opendir(d);
	struct dirent *e;

	if (dp == NULL)
		return;
	while ((e = readdir(dp)) != NULL) {
		char path[512];

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", d, e->d_name);
		unlink(path);
	}
	closedir(dp);
	rmdir(d);
}

static int group_teardown(void **state)
{
	(void)state;
	mx_cache_clear();
	store_disconnect();
	raw_stop();
	dns_stop();
	if (hole_fd >= 0)
		close(hole_fd);
	hole_fd = -1;
	if (dir[0] != '\0' && getenv("OBM_KEEP_TMP") == NULL)
		rm_dir(dir);
	return 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_patterns),
		cmocka_unit_test(test_server_syntax),
		cmocka_unit_test(test_google_hosted_domain),
		cmocka_unit_test(test_preference_and_patterns),
		cmocka_unit_test(test_no_mx),
		cmocka_unit_test(test_no_lookup),
		cmocka_unit_test(test_process_cache),
		cmocka_unit_test(test_redis_cache_second_process),
		cmocka_unit_test(test_cname_only),
		cmocka_unit_test(test_longest_cache_ttl),
		cmocka_unit_test(test_network_list),
		cmocka_unit_test(test_resolver_never_answers),
		cmocka_unit_test(test_redis_down),
		cmocka_unit_test(test_lru_bound),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_latency),
	};

	self = argv[0];
	if (argc >= 3 && strcmp(argv[1], "--child-lookup") == 0)
		return child_lookup(argv[2], argv + 3, argc - 3);
	if (access(DNSMASQ, X_OK) != 0) {
		printf("# SKIP %s not installed (Debian package dnsmasq-base)\n", DNSMASQ);
		return 77;
	}
	/* OBM_CMOCKA_FILTER=pattern runs only the matching cmocka tests */
	if (getenv("OBM_CMOCKA_FILTER") != NULL)
		cmocka_set_test_filter(getenv("OBM_CMOCKA_FILTER"));
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
