/*
 * policy.c - one message's journey through the rate limits.
 *
 * MAIL FROM decides the direction and who the sender is; each RCPT TO of an
 * outbound, non-exempt message reserves one unit per applicable rule in
 * Redis (one atomic script for all rules of the recipient's network); the
 * end of message commits what was reserved; abort, close or a failure
 * releases it. Nothing here knows libmilter: callbacks.c translates.
 */
#include <ctype.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "ratelimit.h"
#include "log.h"
#include "policy.h"

#define MAX_MSG_RULES 64 /* rules whose count=messages state fits a bitmask */

static char instance_id[17];
static atomic_ulong msg_counter;

void policy_init(void)
{
	uint64_t r = 0;

	if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
		r = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid();
	snprintf(instance_id, sizeof(instance_id), "%016llx", (unsigned long long)r);
}

static void *xrealloc(void *p, size_t n, size_t size)
{
	void *q = reallocarray(p, n, size);

	if (q == NULL) {
		log_msg(LOG_CRIT, NULL, "out of memory");
		abort();
	}
	return q;
}

static char *xstrdup(const char *s)
{
	char *d = strdup(s);

	if (d == NULL) {
		log_msg(LOG_CRIT, NULL, "out of memory");
		abort();
	}
	return d;
}

static void copy_str(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src ? src : "");
}

void policy_conn_init(struct conn_state *c, const struct ipaddr *client,
		      const char *daemon_name)
{
	memset(c, 0, sizeof(*c));
	c->client = *client;
	ipaddr_format(&c->client, c->client_text, sizeof(c->client_text));
	copy_str(c->daemon_name, sizeof(c->daemon_name), daemon_name);
}

static void msg_free(struct msg_state *m)
{
	for (size_t i = 0; i < m->n_held; i++) {
		free((char *)m->held[i].network);
		free((char *)m->held[i].scope);
		free((char *)m->held[i].member);
	}
	free(m->held);
	free(m->nets);
	config_release(m->cfg);
	free(m);
}

/* give back every reservation of the transaction and forget it */
void policy_abort(struct conn_state *c)
{
	struct msg_state *m = c->msg;

	if (m == NULL)
		return;
	if (m->n_held > 0 && store_release(m->cfg, m->held, m->n_held) != STORE_OK)
		log_msg(LOG_WARNING, m->qid,
			"could not release %zu reservation(s): %s; they expire in %lds",
			m->n_held, store_last_error(), m->cfg->reservation_ttl);
	msg_free(m);
	c->msg = NULL;
}

void policy_conn_end(struct conn_state *c)
{
	policy_abort(c);
}

static bool sender_is_exempt(const struct config *cfg, const struct address *a,
			     const char *sender_id)
{
	for (size_t i = 0; i < cfg->exempt_senders.n; i++) {
		const char *e = cfg->exempt_senders.v[i];
		const char *at = strchr(e, '@');

		if (at != NULL && at != e) { /* a whole address */
			if (strcmp(e, a->full) == 0 || strcmp(e, sender_id) == 0)
				return true;
		} else { /* "domain" or "@domain" */
			char *d = (char *)(at ? at + 1 : e);
			struct strlist one = {.v = &d, .n = 1};

			if (a->status == ADDR_OK && domain_in_list(&one, a->domain))
				return true;
		}
	}
	return false;
}

/* the identity scope=sender counts: the authenticated user, else the sender */
static void sender_identity(const struct msg_state *m, const char *auth_user,
			    char *out, size_t size)
{
	if (auth_user != NULL && *auth_user != '\0') {
		struct address a;

		if (strchr(auth_user, '@') != NULL &&
		    address_normalize(auth_user, m->cfg->subaddress_separator, &a) == ADDR_OK) {
			copy_str(out, size, a.full);
			return;
		}
		size_t i;
		for (i = 0; auth_user[i] != '\0' && i + 1 < size; i++) {
			unsigned char ch = (unsigned char)auth_user[i];
			out[i] = (ch < 0x21 || ch == 0x7f) ? '_' : (char)tolower(ch);
		}
		out[i] = '\0';
		return;
	}
	switch (m->sender.status) {
	case ADDR_OK:
		copy_str(out, size, m->sender.full);
		break;
	case ADDR_NULL:
		copy_str(out, size, "<>");
		break;
	default:
		copy_str(out, size, NETWORK_INVALID);
	}
}

void policy_mail(struct conn_state *c, const char *sender, const char *auth_user,
		 const char *qid)
{
	struct msg_state *m;
	const struct config *cfg;

	policy_abort(c);
	m = calloc(1, sizeof(*m));
	if (m == NULL) {
		log_msg(LOG_CRIT, qid, "out of memory");
		abort();
	}
	m->cfg = config_acquire();
	cfg = m->cfg;
	snprintf(m->id, sizeof(m->id), "%s.%lu", instance_id,
		 atomic_fetch_add(&msg_counter, 1) + 1);
	copy_str(m->qid, sizeof(m->qid), qid);
	address_normalize(sender, cfg->subaddress_separator, &m->sender);
	sender_identity(m, auth_user, m->sender_id, sizeof(m->sender_id));

	m->outbound = (auth_user != NULL && *auth_user != '\0') ||
		      strlist_contains(&cfg->outbound_daemons, c->daemon_name) ||
		      cidr_list_match(&cfg->outbound_networks, &c->client);
	m->limited = m->outbound && m->sender.status != ADDR_NULL &&
		     !cidr_list_match(&cfg->exempt_clients, &c->client) &&
		     !sender_is_exempt(cfg, &m->sender, m->sender_id);
	c->msg = m;
}

static struct net_tally *tally_get(struct msg_state *m, const char *name)
{
	for (size_t i = 0; i < m->n_nets; i++)
		if (strcmp(m->nets[i].name, name) == 0)
			return &m->nets[i];
	if (m->n_nets == m->cap_nets) {
		m->cap_nets = m->cap_nets ? m->cap_nets * 2 : 4;
		m->nets = xrealloc(m->nets, m->cap_nets, sizeof(*m->nets));
	}
	struct net_tally *t = &m->nets[m->n_nets++];
	memset(t, 0, sizeof(*t));
	copy_str(t->name, sizeof(t->name), name);
	return t;
}

static void hold_units(struct msg_state *m, const struct store_unit *u, size_t n)
{
	if (m->n_held + n > m->cap_held) {
		m->cap_held = (m->n_held + n) * 2;
		m->held = xrealloc(m->held, m->cap_held, sizeof(*m->held));
	}
	for (size_t i = 0; i < n; i++) {
		struct store_unit *h = &m->held[m->n_held++];

		*h = u[i];
		h->network = xstrdup(u[i].network);
		h->scope = xstrdup(u[i].scope);
		h->member = xstrdup(u[i].member);
	}
}

/* printable ASCII only, for SMTP reply texts */
static void sanitize(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			*s = '?';
}

static const char *window_name(enum window_verdict w)
{
	return w == WINDOW_OVER_HOURLY ? "hourly" : "burst";
}

static void refuse_rcpt(struct msg_state *m, struct conn_state *c, const struct address *rcpt,
			const struct store_unit *u, const struct store_verdict *v,
			struct net_tally *t, struct rcpt_result *res)
{
	bool monitor = m->cfg->mode == MODE_MONITOR;
	long window = v->which == WINDOW_OVER_HOURLY ? 3600 : u->lv.burst_window;
	long retry = (long)((v->retry_ms + 999) / 1000);

	t->tempfailed++;
	m->tempfailed++;
	log_msg(LOG_NOTICE, m->qid,
		"action=%s rcpt=%s network=%s rule=%s limit=%s used=%ld/%ld window=%lds "
		"retry=%lds sender=%s client=%s",
		monitor ? "would-tempfail" : "tempfail",
		rcpt->status == ADDR_OK ? rcpt->full : NETWORK_INVALID, u->network, u->rule,
		window_name(v->which), v->used, v->limit, window, retry, m->sender_id,
		c->client_text);
	if (monitor) {
		t->accepted++;
		m->rcpts++;
		return;
	}
	res->outcome = RCPT_TEMPFAIL_LIMIT;
	snprintf(res->reply, sizeof(res->reply),
		 "Rate limit for network %s reached: %s %ld per %lds (rule %s), "
		 "try again in %lds",
		 u->network, window_name(v->which), v->limit, window, u->rule, retry);
	sanitize(res->reply);
}

void policy_rcpt(struct conn_state *c, const char *rcpt, const char *qid,
		 struct rcpt_result *res)
{
	struct msg_state *m = c->msg;
	struct address a;
	char net[NETWORK_MAX];
	struct net_tally *t;

	res->outcome = RCPT_ACCEPT;
	res->reply[0] = '\0';
	if (m == NULL || !m->outbound)
		return;
	if (qid != NULL && *qid != '\0')
		copy_str(m->qid, sizeof(m->qid), qid);

	const struct config *cfg = m->cfg;
	address_normalize(rcpt, cfg->subaddress_separator, &a);
	if (a.status == ADDR_OK && domain_in_list(&cfg->local_domains, a.domain))
		return; /* internal: never limited */
	network_of(cfg, &a, net, sizeof(net));
	t = tally_get(m, net);
	if (!m->limited || cfg->n_limits == 0) {
		t->accepted++;
		m->rcpts++;
		return;
	}

	struct msg_identity id = {
		.sender = m->sender_id,
		.sender_domain = m->sender.status == ADDR_OK ? m->sender.domain : NETWORK_INVALID,
		.client = c->client_text,
	};
	struct store_unit units[cfg->n_limits];
	char members[2][sizeof(m->id) + 16];
	size_t n = 0;

	m->rcpt_seq++;
	snprintf(members[0], sizeof(members[0]), "%s.r%u", m->id, m->rcpt_seq);
	snprintf(members[1], sizeof(members[1]), "%s.m", m->id);
	for (size_t i = 0; i < cfg->n_limits; i++) {
		const struct limit_rule *r = &cfg->limits[i];
		bool per_message = r->count == COUNT_MESSAGES && i < MAX_MSG_RULES;

		if (per_message && (t->msg_units & (1ULL << i)))
			continue; /* this message already holds its unit here */
		const char *scope = ratelimit_scope_value(r, &id);
		units[n++] = (struct store_unit){
			.network = t->name,
			.rule = r->name,
			.scope = scope,
			.scope_len = strlen(scope),
			.member = per_message ? members[1] : members[0],
			.lv = ratelimit_effective(r, t->name),
		};
	}
	if (n == 0) {
		t->accepted++;
		m->rcpts++;
		return;
	}

	struct store_verdict v;
	switch (store_reserve(cfg, units, n, cfg->mode == MODE_MONITOR, 0, &v)) {
	case STORE_OK:
		hold_units(m, units, n);
		for (size_t i = 0; i < cfg->n_limits && i < MAX_MSG_RULES; i++)
			if (cfg->limits[i].count == COUNT_MESSAGES)
				t->msg_units |= 1ULL << i;
		t->accepted++;
		m->rcpts++;
		return;
	case STORE_OVER:
		refuse_rcpt(m, c, &a, &units[v.unit >= 0 && (size_t)v.unit < n ? v.unit : 0], &v,
			    t, res);
		return;
	default:
		if (!m->store_failed)
			log_msg(LOG_WARNING, m->qid, "rate limit store unavailable: %s; on_error=%s",
				store_last_error(),
				cfg->redis.on_error == ON_ERROR_ACCEPT ? "accept" : "tempfail");
		m->store_failed = true;
		if (cfg->redis.on_error == ON_ERROR_TEMPFAIL) {
			t->tempfailed++;
			m->tempfailed++;
			res->outcome = RCPT_TEMPFAIL_ERROR;
			snprintf(res->reply, sizeof(res->reply),
				 "Rate limit store unavailable, try again later");
			return;
		}
		t->accepted++;
		m->rcpts++;
	}
}

void policy_header(struct conn_state *c, const char *name)
{
	struct msg_state *m = c->msg;

	if (m != NULL && m->outbound && strcasecmp(name, m->cfg->classify.header) == 0)
		m->forged_headers++;
}

static void format_networks(const struct msg_state *m, char *buf, size_t size)
{
	size_t len = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < m->n_nets; i++) {
		int w = snprintf(buf + len, size - len, "%s%s:%u", i ? "," : "", m->nets[i].name,
				 m->nets[i].accepted);
		if (w < 0 || (size_t)w >= size - len) {
			if (size > 4)
				strcpy(buf + size - 4, "...");
			return;
		}
		len += (size_t)w;
	}
	if (len == 0)
		snprintf(buf, size, "-");
}

void policy_eom(struct conn_state *c, const char *qid, struct eom_result *res)
{
	struct msg_state *m = c->msg;
	char nets[1024];

	memset(res, 0, sizeof(*res));
	res->outcome = EOM_ACCEPT;
	if (m == NULL)
		return;
	if (qid != NULL && *qid != '\0')
		copy_str(m->qid, sizeof(m->qid), qid);
	if (!m->outbound)
		return;
	if (m->n_held > 0 && store_commit(m->cfg, m->held, m->n_held) != STORE_OK) {
		log_msg(LOG_WARNING, m->qid,
			"could not commit %zu reservation(s): %s; the message goes on, its units "
			"expire in %lds",
			m->n_held, store_last_error(), m->cfg->reservation_ttl);
		m->store_failed = true;
	}
	/* a client cannot choose its own class: our header is ours alone */
	copy_str(res->header_name, sizeof(res->header_name), m->cfg->classify.header);
	res->remove_headers = m->forged_headers;
	if (m->store_failed && m->cfg->classify.add_header) {
		res->add_header = true;
		snprintf(res->header_value, sizeof(res->header_value),
			 "unknown; reasons=store-unavailable");
	}
	format_networks(m, nets, sizeof(nets));
	log_msg(LOG_INFO, m->qid,
		"action=accept sender=%s client=%s rcpts=%u tempfailed=%u networks=%s mode=%s%s%s",
		m->sender_id, c->client_text, m->rcpts, m->tempfailed, nets,
		m->cfg->mode == MODE_MONITOR ? "monitor" : "enforce",
		m->limited ? "" : " limited=no",
		m->store_failed ? " reasons=store-unavailable" : "");
}

void policy_done(struct conn_state *c)
{
	if (c->msg != NULL) {
		msg_free(c->msg);
		c->msg = NULL;
	}
}
