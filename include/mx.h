/*
 * mx.h - recipient networks by MX host (README, "MX grouping"): with
 * mx_grouping = true, a domain that no network lists by name belongs to
 * the network whose mx patterns match one of its MX hosts. Lookups go to
 * an in-process LRU cache, then Redis, then DNS (c-ares) with a hard
 * timeout of dns_timeout_ms.
 */
#ifndef OBM_MX_H
#define OBM_MX_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

#define MX_HOST_MAX 253     /* a host name without its trailing dot */
#define MX_HOSTS_MAX 16     /* MX hosts kept per domain, best first */
#define MX_CACHE_MAX 10000  /* domains in the in-process cache */
#define MX_CACHE_TTL_MAX 604800 /* s: the largest mx_cache_ttl (7 days) */
#define MX_NEGATIVE_TTL 300 /* s, at most: "no MX" and NXDOMAIN answers */
#define MX_FAILED_TTL 60    /* s, at most: failed lookups (in process only) */
#define MX_LOG_INTERVAL 600 /* s: a failing domain is logged once per this */
#define MX_RECORD_INTERVAL 3600 /* s: a grouping is written to Redis once per this */

/* what a domain's MX lookup found */
enum mx_kind {
	MX_KIND_HOSTS,  /* MX hosts */
	MX_KIND_NONE,   /* no MX records (or NXDOMAIN, or a null MX) */
	MX_KIND_FAILED, /* no usable answer in time: timeout, SERVFAIL, ... */
};

/* where the answer came from */
enum mx_source {
	MX_SOURCE_NONE,    /* not looked up (mx_grouping off, literal, ...) */
	MX_SOURCE_PROCESS, /* the in-process cache */
	MX_SOURCE_REDIS,   /* the Redis cache */
	MX_SOURCE_DNS,     /* a DNS query */
};

/* details of one mx_network_info call */
struct mx_info {
	enum mx_source source;
	enum mx_kind kind;
	char host[MX_HOST_MAX + 1]; /* the host whose pattern matched, "" if none */
	long long dns_us;           /* time waited for DNS, 0 when not asked */
};

/*
 * The network of DOMAIN (lowercase A-labels, as address_normalize gives)
 * by its MX hosts. True and the network name in BUF when a pattern of a
 * configured network matches; false (BUF untouched) when mx_grouping is
 * off, nothing matches or the lookup failed: the caller falls back to the
 * registrable domain. Never waits for DNS longer than dns_timeout_ms.
 */
bool mx_network(const struct config *cfg, const char *domain, char *buf, size_t size);

/* The same, telling in INFO (may be NULL) how the answer was found. */
bool mx_network_info(const struct config *cfg, const char *domain, char *buf, size_t size,
		     struct mx_info *info);

/*
 * HOST matches PATTERN: "*.example.com" matches any host below
 * example.com (not example.com itself), any other pattern only itself.
 * Case-insensitive; a trailing dot on HOST is ignored.
 */
bool mx_pattern_match(const char *pattern, const char *host);

/*
 * Parse a dns_server value: "" (the system resolvers), "IP" (port 53) or
 * "IP:PORT", "[IPv6]:PORT". On success fills ADDR (size >= 46) and PORT
 * (0 for "") and returns 0; -1 when it is none of those.
 */
int mx_server_parse(const char *s, char *addr, size_t size, int *port);

/* counters since the start of the process (or the last mx_cache_clear) */
struct mx_stats {
	unsigned long lookups;       /* mx_network calls that looked anything up */
	unsigned long process_hits;
	unsigned long redis_hits;
	unsigned long dns_queries;
	unsigned long dns_failures;  /* timeouts and other failed queries */
	unsigned long failures_logged;
	unsigned long evictions;     /* domains dropped from the full cache */
};
void mx_stats_get(struct mx_stats *out);

/* Forget every cached domain and reset the counters (tests, shutdown). */
void mx_cache_clear(void);

#endif
