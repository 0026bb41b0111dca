/*
 * mx.c - recipient networks by MX host (README, "MX grouping").
 *
 * With mx_grouping = true, a domain that no network lists by name belongs
 * to the first network with an mx pattern ("*.google.com": any host below
 * google.com; "aspmx.l.google.com": that host only) matching one of the
 * domain's MX hosts, the hosts tried best first (lowest preference, then
 * by name). A domain without MX records is its own implicit MX host
 * (RFC 5321 section 5.1): its own name is matched; no address lookup is
 * needed for that. No match, or no answer in time: mx_network() says so
 * and the caller falls back to the registrable domain.
 *
 * Answers come from three places, cheapest first:
 *   1. the in-process cache: MX_CACHE_MAX domains, the least recently used
 *      dropped first; a hash table and a list under one mutex;
 *   2. Redis (store_mx_get), shared by every milter process and host;
 *   3. DNS: an MX query with c-ares, to dns_server or else the resolvers
 *      of /etc/resolv.conf, waited for dns_timeout_ms at most in all.
 * What is cached is the host list ("mx H1 H2 ..." or, for every answer
 * without MX hosts, a CNAME alone included, "none"), not the
 * network, so a reload that changes the patterns needs no flush, and
 * milters with different networks can share the Redis cache.
 *
 * Lifetimes: MX hosts mx_cache_ttl seconds; no MX (NODATA, NXDOMAIN, a
 * null MX) min(MX_NEGATIVE_TTL, mx_cache_ttl), in both caches; a failed
 * lookup (timeout, SERVFAIL, REFUSED, no resolver) min(MX_FAILED_TTL,
 * mx_cache_ttl) in this process only, since another host's resolver may
 * be fine. A failing domain is logged at most once per MX_LOG_INTERVAL.
 *
 * Every domain grouped into a network is recorded in Redis for
 * `outboundctl network NAME` (store_mx_put), once per domain per process
 * per MX_RECORD_INTERVAL and after each reload.
 *
 * The DNS part makes one c-ares channel per query: cold lookups are rare,
 * and so no channel outlives a configuration or a thread. The wait is
 * poll() on the channel's sockets with the remaining time; past the
 * deadline the query is cancelled.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <ares.h>
#include <arpa/nameser.h>

#include "log.h"
#include "mx.h"
#include "network.h"
#include "store.h"

#define MX_VALUE_MAX 2048      /* "mx H1 H2 ...": what one domain's answer takes */
#define MX_RECORDS_MAX 64      /* MX records of one answer looked at */
#define MX_BUCKETS 16384       /* hash buckets of the in-process cache (power of 2) */
#define MX_DEFAULT_TIMEOUT_MS 300
#define MX_VALUE_NONE "none"   /* the cached form of an answer without MX hosts */

/* one domain in the in-process cache */
struct mx_entry {
	struct mx_entry *hnext;      /* hash chain */
	struct mx_entry *prev, *next; /* LRU list, most recent first */
	char *domain;
	char *value;                 /* "mx H1 H2" or "none"; NULL when FAILED */
	enum mx_kind kind;
	long long expires;           /* monotonic ms */
	long long recorded;          /* monotonic ms of the last store_mx_put of the grouping */
	unsigned long recorded_gen;  /* the configuration generation it was recorded under */
	long long logged;            /* monotonic ms of the last failure log line, 0: never */
};

static pthread_mutex_t mx_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mx_entry *mx_table[MX_BUCKETS]; /* hash chains, under mx_lock */
static struct mx_entry *mx_head, *mx_tail;
static size_t mx_count;

static atomic_ulong st_lookups, st_process_hits, st_redis_hits, st_dns_queries,
	st_dns_failures, st_failures_logged, st_evictions;

static pthread_once_t mx_ares_once = PTHREAD_ONCE_INIT;
static int mx_ares_status = ARES_ENOTINITIALIZED;

static long long mx_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long mx_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- names and patterns ------------------------------------------------- */

/*
 * NAME is a host name we look up, cache and key Redis by: 1..253 bytes of
 * letters, digits, '-', '_' and '.', with a dot, no empty label.
 */
static bool mx_name_ok(const char *name)
{
	size_t len = strlen(name), label = 0;
	bool dot = false;

	if (len == 0 || len > MX_HOST_MAX)
		return false;
	for (const char *p = name; *p; p++) {
		if (*p == '.') {
			if (label == 0)
				return false;
			label = 0;
			dot = true;
		} else if (isalnum((unsigned char)*p) || *p == '-' || *p == '_') {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return dot && label > 0;
}

bool mx_pattern_match(const char *pattern, const char *host)
{
	size_t hlen, plen;

	if (pattern == NULL || host == NULL)
		return false;
	hlen = strlen(host);
	if (hlen > 0 && host[hlen - 1] == '.')
		hlen--;
	if (pattern[0] == '*' && pattern[1] == '.') {
		const char *suffix = pattern + 1; /* ".example.com" */

		plen = strlen(suffix);
		return plen > 1 && hlen > plen &&
		       strncasecmp(host + hlen - plen, suffix, plen) == 0;
	}
	plen = strlen(pattern);
	return plen > 0 && plen == hlen && strncasecmp(host, pattern, hlen) == 0;
}

/* the first network (in configuration order) with a pattern matching HOST */
static const struct network_def *mx_match_host(const struct config *cfg, const char *host)
{
	for (size_t i = 0; i < cfg->n_networks; i++) {
		const struct network_def *net = &cfg->networks[i];

		for (size_t k = 0; k < net->mx.n; k++)
			if (mx_pattern_match(net->mx.v[k], host))
				return net;
	}
	return NULL;
}

static bool mx_any_pattern(const struct config *cfg)
{
	for (size_t i = 0; i < cfg->n_networks; i++)
		if (cfg->networks[i].mx.n > 0)
			return true;
	return false;
}

/*
 * The network of a cached answer VALUE of DOMAIN: its hosts in order, or
 * DOMAIN itself when it has none. HOST gets the host that matched.
 */
static const struct network_def *mx_match_value(const struct config *cfg, const char *domain,
						const char *value, char *host, size_t hsize)
{
	const struct network_def *net;
	const char *p, *end;
	char one[MX_HOST_MAX + 1];

	if (strncmp(value, "mx ", 3) != 0) {
		net = mx_match_host(cfg, domain);
		if (net != NULL)
			snprintf(host, hsize, "%s", domain);
		return net;
	}
	for (p = value + 3; *p; p = *end ? end + 1 : end) {
		size_t len;

		end = strchr(p, ' ');
		if (end == NULL)
			end = p + strlen(p);
		len = (size_t)(end - p);
		if (len == 0 || len > MX_HOST_MAX)
			continue;
		memcpy(one, p, len);
		one[len] = '\0';
		if ((net = mx_match_host(cfg, one)) != NULL) {
			snprintf(host, hsize, "%s", one);
			return net;
		}
	}
	return NULL;
}

/*
 * A cached value we understand: "none" or "mx " and host names. The
 * writer shares only values this accepts, so what one milter puts into
 * Redis every milter can read back.
 */
static bool mx_value_ok(const char *v)
{
	if (strcmp(v, MX_VALUE_NONE) == 0)
		return true;
	if (strncmp(v, "mx ", 3) != 0 || v[3] == '\0')
		return false;
	for (v += 3; *v; v++)
		if (!(isalnum((unsigned char)*v) || *v == '-' || *v == '_' || *v == '.' ||
		      *v == ' '))
			return false;
	return true;
}

/* ---- dns_server ---------------------------------------------------------- */

int mx_server_parse(const char *s, char *addr, size_t size, int *port)
{
	unsigned char bin[16];
	char host[64];
	const char *colon;
	size_t hlen;
	long p = 53;

	if (s == NULL || addr == NULL || size < INET6_ADDRSTRLEN || port == NULL)
		return -1;
	if (*s == '\0') {
		addr[0] = '\0';
		*port = 0;
		return 0;
	}
	if (s[0] == '[') { /* [IPv6]:PORT or [IPv6] */
		const char *close = strchr(s, ']');

		if (close == NULL)
			return -1;
		hlen = (size_t)(close - s - 1);
		if (hlen == 0 || hlen >= sizeof(host))
			return -1;
		memcpy(host, s + 1, hlen);
		host[hlen] = '\0';
		if (inet_pton(AF_INET6, host, bin) != 1)
			return -1;
		colon = close[1] == ':' ? close + 1 : NULL;
		if (colon == NULL && close[1] != '\0')
			return -1;
	} else if (strchr(s, ':') != strrchr(s, ':')) { /* bare IPv6, no port */
		if (strlen(s) >= sizeof(host) || inet_pton(AF_INET6, s, bin) != 1)
			return -1;
		snprintf(host, sizeof(host), "%s", s);
		colon = NULL;
	} else { /* IPv4[:PORT] */
		colon = strchr(s, ':');
		hlen = colon != NULL ? (size_t)(colon - s) : strlen(s);
		if (hlen == 0 || hlen >= sizeof(host))
			return -1;
		memcpy(host, s, hlen);
		host[hlen] = '\0';
		if (inet_pton(AF_INET, host, bin) != 1)
			return -1;
	}
	if (colon != NULL) {
		const char *d = colon + 1;

		if (*d == '\0' || strlen(d) > 5)
			return -1;
		for (p = 0; *d; d++) {
			if (!isdigit((unsigned char)*d))
				return -1;
			p = p * 10 + (*d - '0');
		}
		if (p < 1 || p > 65535)
			return -1;
	}
	snprintf(addr, size, "%s", host);
	*port = (int)p;
	return 0;
}

/* ---- the in-process cache --------------------------------------------------- */

static unsigned mx_hash(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h & (MX_BUCKETS - 1);
}

/* under mx_lock */
static struct mx_entry *mx_find(const char *domain)
{
	struct mx_entry *e;

	for (e = mx_table[mx_hash(domain)]; e != NULL; e = e->hnext)
		if (strcmp(e->domain, domain) == 0)
			return e;
	return NULL;
}

/* under mx_lock: unlink E from the LRU list */
static void mx_lru_unlink(struct mx_entry *e)
{
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		mx_head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		mx_tail = e->prev;
	e->prev = e->next = NULL;
}

/* under mx_lock: E becomes the most recently used */
static void mx_lru_front(struct mx_entry *e)
{
	if (mx_head == e)
		return;
	if (e->prev != NULL || e->next != NULL || mx_tail == e)
		mx_lru_unlink(e);
	e->next = mx_head;
	if (mx_head != NULL)
		mx_head->prev = e;
	mx_head = e;
	if (mx_tail == NULL)
		mx_tail = e;
}

static void mx_entry_free(struct mx_entry *e)
{
	free(e->domain);
	free(e->value);
	free(e);
}

/* under mx_lock: drop E from the table and the list, and free it */
static void mx_remove(struct mx_entry *e)
{
	struct mx_entry **pp = &mx_table[mx_hash(e->domain)];

	while (*pp != NULL && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp == e)
		*pp = e->hnext;
	mx_lru_unlink(e);
	mx_count--;
	mx_entry_free(e);
}

/* the answer a cache lookup hands out */
struct mx_answer {
	enum mx_kind kind;
	char value[MX_VALUE_MAX]; /* "" when FAILED */
};

/*
 * ANS says "no MX hosts": NODATA, NXDOMAIN, a null MX, or an answer with
 * no MX record in it (a CNAME alone, its target without MX). Every such
 * answer has the one form MX_VALUE_NONE, in both caches.
 */
static void mx_answer_none(struct mx_answer *ans)
{
	ans->kind = MX_KIND_NONE;
	snprintf(ans->value, sizeof(ans->value), "%s", MX_VALUE_NONE);
}

/*
 * A live cache entry for DOMAIN into ANS; true on a hit. *RECORD tells
 * whether the grouping is due to be written to Redis (and marks it as
 * written: one thread does it).
 */
static bool mx_cache_get(const char *domain, long long now, unsigned long gen,
			 struct mx_answer *ans, bool *record)
{
	struct mx_entry *e;
	bool hit = false;

	*record = false;
	pthread_mutex_lock(&mx_lock);
	e = mx_find(domain);
	if (e != NULL && e->expires > now) {
		hit = true;
		ans->kind = e->kind;
		snprintf(ans->value, sizeof(ans->value), "%s", e->value != NULL ? e->value : "");
		if (e->recorded == 0 || e->recorded_gen != gen ||
		    now - e->recorded >= MX_RECORD_INTERVAL * 1000LL) {
			*record = true;
			e->recorded = now;
			e->recorded_gen = gen;
		}
		mx_lru_front(e);
	}
	pthread_mutex_unlock(&mx_lock);
	return hit;
}

/*
 * Store ANS for DOMAIN until EXPIRES (an entry that is there is updated:
 * it keeps when it was last logged). *RECORD as for mx_cache_get (a new
 * answer is always due); *LOG: a failure is due to be logged. Out of
 * memory: nothing is cached.
 */
static void mx_cache_put(const char *domain, const struct mx_answer *ans, long long now,
			 long long expires, unsigned long gen, bool *record, bool *log)
{
	struct mx_entry *e;
	char *value = NULL;

	*record = true;
	*log = ans->kind == MX_KIND_FAILED; /* not remembered: say it every time */
	if (ans->kind != MX_KIND_FAILED && (value = strdup(ans->value)) == NULL)
		return;
	pthread_mutex_lock(&mx_lock);
	if ((e = mx_find(domain)) == NULL) {
		if ((e = calloc(1, sizeof(*e))) == NULL || (e->domain = strdup(domain)) == NULL) {
			free(e);
			goto out;
		}
		/* one in, one out: the least recently used */
		if (mx_count >= MX_CACHE_MAX && mx_tail != NULL) {
			mx_remove(mx_tail);
			atomic_fetch_add(&st_evictions, 1);
		}
		e->hnext = mx_table[mx_hash(domain)];
		mx_table[mx_hash(domain)] = e;
		mx_count++;
	}
	free(e->value);
	e->value = value;
	value = NULL;
	e->kind = ans->kind;
	e->expires = expires;
	e->recorded = now;
	e->recorded_gen = gen;
	if (*log && e->logged != 0 && now - e->logged < MX_LOG_INTERVAL * 1000LL)
		*log = false;
	else if (*log)
		e->logged = now;
	mx_lru_front(e);
out:
	pthread_mutex_unlock(&mx_lock);
	free(value);
}

void mx_cache_clear(void)
{
	pthread_mutex_lock(&mx_lock);
	while (mx_head != NULL)
		mx_remove(mx_head);
	mx_count = 0;
	pthread_mutex_unlock(&mx_lock);
	atomic_store(&st_lookups, 0);
	atomic_store(&st_process_hits, 0);
	atomic_store(&st_redis_hits, 0);
	atomic_store(&st_dns_queries, 0);
	atomic_store(&st_dns_failures, 0);
	atomic_store(&st_failures_logged, 0);
	atomic_store(&st_evictions, 0);
}

void mx_stats_get(struct mx_stats *out)
{
	out->lookups = atomic_load(&st_lookups);
	out->process_hits = atomic_load(&st_process_hits);
	out->redis_hits = atomic_load(&st_redis_hits);
	out->dns_queries = atomic_load(&st_dns_queries);
	out->dns_failures = atomic_load(&st_dns_failures);
	out->failures_logged = atomic_load(&st_failures_logged);
	out->evictions = atomic_load(&st_evictions);
}

/* ---- DNS ------------------------------------------------------------------ */

static void mx_ares_init(void)
{
	mx_ares_status = ares_library_init(ARES_LIB_INIT_ALL);
}

/* one query in flight and what it found */
struct mx_query {
	bool done;
	int status;              /* the c-ares status of the query */
	struct mx_answer ans;
	char why[96];            /* FAILED: what went wrong */
};

struct mx_rec {
	unsigned short pref;
	char host[MX_HOST_MAX + 1];
};

static int mx_rec_cmp(const void *a, const void *b)
{
	const struct mx_rec *x = a, *y = b;

	if (x->pref != y->pref)
		return x->pref < y->pref ? -1 : 1;
	return strcmp(x->host, y->host);
}

/* the MX records of a reply, best first, into Q->ans */
static void mx_parse(struct mx_query *q, const unsigned char *abuf, int alen)
{
	struct ares_mx_reply *head = NULL, *r;
	struct mx_rec *recs;
	size_t n = 0, used, kept = 0;
	int rc;

	rc = ares_parse_mx_reply(abuf, alen, &head);
	if (rc == ARES_ENODATA) {
		mx_answer_none(&q->ans);
		return;
	}
	if (rc != ARES_SUCCESS) {
		q->ans.kind = MX_KIND_FAILED;
		snprintf(q->why, sizeof(q->why), "bad reply: %s", ares_strerror(rc));
		return;
	}
	recs = calloc(MX_RECORDS_MAX, sizeof(*recs));
	if (recs == NULL) {
		ares_free_data(head);
		q->ans.kind = MX_KIND_FAILED;
		snprintf(q->why, sizeof(q->why), "out of memory");
		return;
	}
	for (r = head; r != NULL && n < MX_RECORDS_MAX; r = r->next) {
		size_t len;

		if (r->host == NULL)
			continue;
		len = strlen(r->host);
		if (len > 0 && r->host[len - 1] == '.')
			len--;
		if (len == 0 || len > MX_HOST_MAX)
			continue; /* "." is a null MX (RFC 7505): no host */
		memcpy(recs[n].host, r->host, len);
		recs[n].host[len] = '\0';
		for (char *c = recs[n].host; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		if (!mx_name_ok(recs[n].host))
			continue;
		recs[n].pref = r->priority;
		n++;
	}
	ares_free_data(head);
	qsort(recs, n, sizeof(*recs), mx_rec_cmp);

	used = (size_t)snprintf(q->ans.value, sizeof(q->ans.value), "mx");
	for (size_t i = 0; i < n && kept < MX_HOSTS_MAX; i++) {
		size_t len = strlen(recs[i].host);
		bool dup = false;

		for (size_t j = 0; j < i && !dup; j++)
			dup = strcmp(recs[j].host, recs[i].host) == 0;
		if (dup)
			continue;
		if (used + 1 + len >= sizeof(q->ans.value))
			break;
		q->ans.value[used++] = ' ';
		memcpy(q->ans.value + used, recs[i].host, len + 1);
		used += len;
		kept++;
	}
	free(recs);
	if (kept == 0)
		mx_answer_none(&q->ans); /* no usable MX record: a CNAME alone, a null MX */
	else
		q->ans.kind = MX_KIND_HOSTS;
}

static void mx_query_done(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct mx_query *q = arg;

	(void)timeouts;
	if (q->done)
		return;
	q->done = true;
	q->status = status;
	q->ans.value[0] = '\0';
	switch (status) {
	case ARES_SUCCESS:
		mx_parse(q, abuf, alen);
		break;
	case ARES_ENODATA:   /* the name exists, no MX */
	case ARES_ENOTFOUND: /* NXDOMAIN */
		mx_answer_none(&q->ans);
		break;
	case ARES_ECANCELLED:
	case ARES_EDESTRUCTION:
		q->ans.kind = MX_KIND_FAILED; /* the caller says why */
		break;
	default:
		q->ans.kind = MX_KIND_FAILED;
		snprintf(q->why, sizeof(q->why), "%s", ares_strerror(status));
		break;
	}
}

/* the channel's sockets into PFD; how many */
static int mx_poll_set(ares_channel ch, struct pollfd *pfd)
{
	ares_socket_t socks[ARES_GETSOCK_MAXNUM];
	/* bit I: socket I readable, bit I + MAXNUM: writable (c-ares' own
	 * macros shift a signed 1 into the sign bit) */
	unsigned bits = (unsigned)ares_getsock(ch, socks, ARES_GETSOCK_MAXNUM);
	int n = 0;

	for (int i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
		short ev = 0;

		if ((bits >> i) & 1u)
			ev |= POLLIN;
		if ((bits >> (i + ARES_GETSOCK_MAXNUM)) & 1u)
			ev |= POLLOUT;
		if (ev == 0)
			continue;
		pfd[n].fd = socks[i];
		pfd[n].events = ev;
		pfd[n].revents = 0;
		n++;
	}
	return n;
}

/* a c-ares channel set up from CFG, NULL after saying why in Q */
static ares_channel mx_channel(const struct config *cfg, int timeout_ms, struct mx_query *q)
{
	struct ares_options opts;
	ares_channel ch;
	char addr[INET6_ADDRSTRLEN + 1], csv[INET6_ADDRSTRLEN + 16];
	int port, rc;

	pthread_once(&mx_ares_once, mx_ares_init);
	if (mx_ares_status != ARES_SUCCESS) {
		snprintf(q->why, sizeof(q->why), "c-ares: %s", ares_strerror(mx_ares_status));
		return NULL;
	}
	memset(&opts, 0, sizeof(opts));
	/* no search list, no HOSTALIASES; two tries that fit the deadline */
	opts.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
	opts.timeout = timeout_ms / 3 > 0 ? timeout_ms / 3 : 1;
	opts.tries = 2;
	rc = ares_init_options(&ch, &opts, ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
	if (rc != ARES_SUCCESS) {
		snprintf(q->why, sizeof(q->why), "c-ares: %s", ares_strerror(rc));
		return NULL;
	}
	if (cfg->dns_server != NULL && cfg->dns_server[0] != '\0') {
		if (mx_server_parse(cfg->dns_server, addr, sizeof(addr), &port) != 0) {
			snprintf(q->why, sizeof(q->why), "bad dns_server");
			ares_destroy(ch);
			return NULL;
		}
		if (strchr(addr, ':') != NULL)
			snprintf(csv, sizeof(csv), "[%s]:%d", addr, port);
		else
			snprintf(csv, sizeof(csv), "%s:%d", addr, port);
		rc = ares_set_servers_ports_csv(ch, csv);
		if (rc != ARES_SUCCESS) {
			snprintf(q->why, sizeof(q->why), "dns_server %s: %s", csv, ares_strerror(rc));
			ares_destroy(ch);
			return NULL;
		}
	}
	return ch;
}

/* ask DNS for DOMAIN's MX hosts, waiting TIMEOUT_MS at most */
static void mx_resolve(const struct config *cfg, const char *domain, int timeout_ms,
		       struct mx_query *q)
{
	long long deadline = mx_now_us() + timeout_ms * 1000LL;
	struct pollfd pfd[ARES_GETSOCK_MAXNUM];
	ares_channel ch;

	memset(q, 0, sizeof(*q));
	q->ans.kind = MX_KIND_FAILED;
	if ((ch = mx_channel(cfg, timeout_ms, q)) == NULL) {
		q->done = true;
		return;
	}
	ares_query(ch, domain, ns_c_in, ns_t_mx, mx_query_done, q);
	while (!q->done) {
		long long left = deadline - mx_now_us(); /* us */
		struct timeval max, tv, *tvp;
		int n, wait, rc;

		if (left <= 0) {
			ares_cancel(ch);
			q->done = true;
			q->ans.kind = MX_KIND_FAILED;
			snprintf(q->why, sizeof(q->why), "no answer within %d ms", timeout_ms);
			break;
		}
		n = mx_poll_set(ch, pfd);
		max.tv_sec = left / 1000000;
		max.tv_usec = left % 1000000;
		tvp = ares_timeout(ch, &max, &tv);
		/* poll() counts ms: round up, so that the loop never spins */
		wait = (int)(tvp->tv_sec * 1000 + (tvp->tv_usec + 999) / 1000);
		rc = poll(pfd, (nfds_t)n, wait);
		if (rc <= 0) {
			ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
			continue;
		}
		for (int i = 0; i < n && !q->done; i++) {
			if (pfd[i].revents == 0)
				continue;
			ares_process_fd(ch,
					pfd[i].revents & (POLLIN | POLLERR | POLLHUP) ? pfd[i].fd
										  : ARES_SOCKET_BAD,
					pfd[i].revents & POLLOUT ? pfd[i].fd : ARES_SOCKET_BAD);
		}
	}
	ares_destroy(ch);
	/* c-ares gave up on its own tries just before the deadline: the same thing */
	if (q->ans.kind == MX_KIND_FAILED && (q->status == ARES_ETIMEOUT || q->why[0] == '\0'))
		snprintf(q->why, sizeof(q->why), "no answer within %d ms", timeout_ms);
}

/* ---- the lookup --------------------------------------------------------------- */

static long mx_ttl_for(const struct config *cfg, enum mx_kind kind)
{
	long ttl = cfg->mx_cache_ttl > 0 ? cfg->mx_cache_ttl : 1;

	if (ttl > MX_CACHE_TTL_MAX)
		ttl = MX_CACHE_TTL_MAX; /* config.c refuses more; ms arithmetic and SET EX stay in range */

	if (kind == MX_KIND_NONE && ttl > MX_NEGATIVE_TTL)
		return MX_NEGATIVE_TTL;
	if (kind == MX_KIND_FAILED && ttl > MX_FAILED_TTL)
		return MX_FAILED_TTL;
	return ttl;
}

/* a lookup of NAME failed (once per MX_LOG_INTERVAL per domain) */
static void mx_log_failure(const struct config *cfg, const char *name, const char *why)
{
	char fallback[NETWORK_MAX];

	atomic_fetch_add(&st_failures_logged, 1);
	network_registrable(name, fallback, sizeof(fallback));
	log_msg(LOG_WARNING, NULL,
		"mx lookup %s: %s (resolver %s); using network %s, next try in %ld s",
		log_quote(name), why[0] ? why : "failed",
		log_quote(cfg->dns_server != NULL && cfg->dns_server[0] ? cfg->dns_server
									: "system"),
		log_quote(fallback), mx_ttl_for(cfg, MX_KIND_FAILED));
}

bool mx_network(const struct config *cfg, const char *domain, char *buf, size_t size)
{
	return mx_network_info(cfg, domain, buf, size, NULL);
}

bool mx_network_info(const struct config *cfg, const char *domain, char *buf, size_t size,
		     struct mx_info *info)
{
	struct mx_info dummy;
	struct mx_query q;
	struct mx_answer ans;
	const struct network_def *net;
	char name[MX_HOST_MAX + 1];
	bool record = false, log = false, share;
	long long now, ttl_ms = 0;
	int timeout_ms;
	size_t len;

	if (info == NULL)
		info = &dummy;
	memset(info, 0, sizeof(*info));
	q.why[0] = '\0';
	info->source = MX_SOURCE_NONE;
	info->kind = MX_KIND_FAILED;
	if (cfg == NULL || !cfg->mx_grouping || domain == NULL || !mx_any_pattern(cfg))
		return false;
	len = strlen(domain);
	if (len > 0 && domain[len - 1] == '.')
		len--;
	if (len == 0 || len > MX_HOST_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		name[i] = (char)tolower((unsigned char)domain[i]);
	name[len] = '\0';
	if (!mx_name_ok(name))
		return false; /* literals, single labels, odd bytes: no lookup */

	atomic_fetch_add(&st_lookups, 1);
	now = mx_now_ms();
	if (mx_cache_get(name, now, cfg->generation, &ans, &record)) {
		info->source = MX_SOURCE_PROCESS;
		atomic_fetch_add(&st_process_hits, 1);
	} else if (store_mx_get(cfg, name, ans.value, sizeof(ans.value), &ttl_ms) == STORE_OK &&
		   mx_value_ok(ans.value)) {
		long long keep;

		info->source = MX_SOURCE_REDIS;
		atomic_fetch_add(&st_redis_hits, 1);
		ans.kind = strcmp(ans.value, MX_VALUE_NONE) == 0 ? MX_KIND_NONE : MX_KIND_HOSTS;
		keep = mx_ttl_for(cfg, ans.kind) * 1000LL;
		if (ttl_ms > 0 && ttl_ms < keep)
			keep = ttl_ms;
		mx_cache_put(name, &ans, now, now + keep, cfg->generation, &record, &log);
	} else {
		long long t0 = mx_now_us();

		timeout_ms = cfg->dns_timeout_ms > 0 ? cfg->dns_timeout_ms : MX_DEFAULT_TIMEOUT_MS;
		atomic_fetch_add(&st_dns_queries, 1);
		mx_resolve(cfg, name, timeout_ms, &q);
		info->dns_us = mx_now_us() - t0;
		info->source = MX_SOURCE_DNS;
		ans = q.ans;
		now = mx_now_ms();
		mx_cache_put(name, &ans, now, now + mx_ttl_for(cfg, ans.kind) * 1000LL,
			     cfg->generation, &record, &log);
	}
	info->kind = ans.kind;

	if (ans.kind == MX_KIND_FAILED) {
		if (info->source == MX_SOURCE_DNS) {
			atomic_fetch_add(&st_dns_failures, 1);
			if (log)
				mx_log_failure(cfg, name, q.why);
		}
		return false;
	}
	net = mx_match_value(cfg, name, ans.value, info->host, sizeof(info->host));
	if (net != NULL && net->name == NULL)
		net = NULL;
	/*
	 * One round trip shares a fresh DNS answer and records the grouping;
	 * a Redis failure only costs other processes a query of their own.
	 */
	share = info->source == MX_SOURCE_DNS && mx_value_ok(ans.value);
	if (share || (record && net != NULL))
		store_mx_put(cfg, name, share ? ans.value : NULL, mx_ttl_for(cfg, ans.kind),
			     record && net != NULL ? net->name : NULL, 0);
	if (net == NULL)
		return false;
	if (info->source == MX_SOURCE_DNS)
		log_msg(LOG_INFO, NULL, "mx lookup %s: network %s (mx %s), %lld ms",
			log_quote(name), log_quote(net->name), log_quote(info->host),
			(info->dns_us + 500) / 1000);
	if (buf != NULL && size > 0)
		snprintf(buf, size, "%s", net->name);
	return true;
}
