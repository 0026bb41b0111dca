/*
 * network.c - recipient domain -> recipient network (README, "What it does", step 3).
 *
 * A normalised address belongs to:
 *   - "invalid" when it is the null sender or did not parse;
 *   - the configured network whose domains list holds its domain or a parent
 *     of it (the most specific entry wins when several match);
 *   - with mx_grouping, the configured network whose mx patterns match one
 *     of the domain's MX hosts (mx.c);
 *   - its address literal ("[192.0.2.1]") for literal domains;
 *   - otherwise its registrable domain from the public suffix list
 *     (mail.example.co.uk -> example.co.uk), or the domain itself when it
 *     has none (a public suffix or a single label).
 *
 * The public suffix list is loaded once per process: the distribution's
 * file when it is newer than the data built into libpsl, else the builtin.
 * Each thread keeps its last answers in a small cache.
 *
 * mx.c (c-ares and Redis) is an optional part: mx_network is a weak
 * reference, so this file also builds alone (the address fuzz target) and
 * then only has steps 1 and 3. Every program that loads a configuration
 * has it, since config.c checks dns_server with mx_server_parse().
 */
#include <pthread.h>
#include <string.h>
#include <strings.h>

#include <libpsl.h>

#include "mx.h"
#include "network.h"

#pragma weak mx_network

static pthread_once_t psl_once = PTHREAD_ONCE_INIT;
static const psl_ctx_t *psl_ctx; /* process lifetime, never freed */

static void network_psl_init(void)
{
	psl_ctx_t *latest = psl_latest(NULL);

	if (latest != NULL)
		psl_ctx = latest;
	else
		psl_ctx = psl_builtin();
}

static const char *copy_out(const char *s, char *buf, size_t size)
{
	size_t len;

	if (buf == NULL || size == 0)
		return "";
	len = strnlen(s, size - 1);
	memcpy(buf, s, len);
	buf[len] = '\0';
	return buf;
}

/*
 * Length of ENTRY when DOMAIN equals it or is a subdomain of it, else 0.
 * Comparison is case-insensitive; empty entries match nothing.
 */
static size_t domain_match_len(const char *domain, size_t dlen,
			       const char *entry)
{
	size_t elen;

	if (entry == NULL || (elen = strlen(entry)) == 0 || elen > dlen)
		return 0;
	if (strcasecmp(domain + dlen - elen, entry) != 0)
		return 0;
	if (elen < dlen && domain[dlen - elen - 1] != '.')
		return 0;
	return elen;
}

bool domain_in_list(const struct strlist *list, const char *domain)
{
	size_t dlen;

	if (list == NULL || domain == NULL || (dlen = strlen(domain)) == 0)
		return false;
	for (size_t i = 0; i < list->n; i++)
		if (domain_match_len(domain, dlen, list->v[i]) > 0)
			return true;
	return false;
}

/*
 * The registrable domains this thread looked up last: libpsl searches its
 * list on every call, and the recipients of one message (and the From
 * check) name the same few domains again and again. Direct-mapped by a
 * hash of the lowercase domain; longer domains are not kept.
 */
#define REG_CACHE_SLOTS 32
#define REG_CACHE_LEN 96
struct reg_entry {
	char domain[REG_CACHE_LEN]; /* "" when empty */
	char reg[REG_CACHE_LEN];
};
static __thread struct reg_entry reg_cache[REG_CACHE_SLOTS];

const char *network_registrable(const char *domain, char *buf, size_t size)
{
	char lower[ADDR_DOMAIN_MAX + 1];
	const char *reg = NULL;
	struct reg_entry *e;
	size_t len;

	if (domain == NULL || *domain == '\0')
		return copy_out(NETWORK_INVALID, buf, size);
	len = strlen(domain);
	if (domain[0] == '[' || len > ADDR_DOMAIN_MAX)
		return copy_out(domain, buf, size);

	/* libpsl compares bytes: look up the lowercase form (hashed on the way) */
	unsigned h = 2166136261u;
	for (size_t i = 0; i <= len; i++) {
		char c = domain[i];

		lower[i] = (c >= 'A' && c <= 'Z') ? (char) (c - 'A' + 'a') : c;
		h = (h ^ (unsigned char)lower[i]) * 16777619u;
	}
	e = &reg_cache[h % REG_CACHE_SLOTS];
	if (len < REG_CACHE_LEN && strcmp(e->domain, lower) == 0)
		return copy_out(e->reg, buf, size);
	pthread_once(&psl_once, network_psl_init);
	if (psl_ctx != NULL)
		reg = psl_registrable_domain(psl_ctx, lower);
	if (reg == NULL)
		reg = lower;
	size_t rlen = strlen(reg);
	if (len < REG_CACHE_LEN && rlen < REG_CACHE_LEN) {
		memcpy(e->domain, lower, len + 1);
		memcpy(e->reg, reg, rlen + 1);
	}
	return copy_out(reg, buf, size);
}

const char *network_of(const struct config *cfg, const struct address *addr,
		       char *buf, size_t size)
{
	const struct network_def *best = NULL;
	size_t best_len = 0;
	size_t dlen;

	if (addr == NULL || addr->status != ADDR_OK || addr->domain[0] == '\0')
		return copy_out(NETWORK_INVALID, buf, size);
	dlen = strlen(addr->domain);

	if (cfg != NULL) {
		for (size_t i = 0; i < cfg->n_networks; i++) {
			const struct network_def *net = &cfg->networks[i];

			for (size_t k = 0; k < net->domains.n; k++) {
				size_t m = domain_match_len(addr->domain, dlen,
							    net->domains.v[k]);

				/* strictly longer: the first one wins a tie */
				if (m > best_len) {
					best_len = m;
					best = net;
				}
			}
		}
	}
	if (best != NULL && best->name != NULL)
		return copy_out(best->name, buf, size);
	if (cfg != NULL && cfg->mx_grouping && mx_network != NULL && buf != NULL && size > 0 &&
	    mx_network(cfg, addr->domain, buf, size))
		return buf;
	return network_registrable(addr->domain, buf, size);
}
