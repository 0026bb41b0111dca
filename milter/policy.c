/*
 * policy.c - one message's journey.
 *
 * MAIL FROM decides the direction and who the sender is; each RCPT TO of an
 * outbound, non-exempt message reserves one unit per rule in Redis (one
 * atomic script for all rules of the recipient's network) and, in the same
 * round trip, looks up whether the recipient is a known correspondent of
 * the sender and was mailed by the sender in the last hour (the first
 * recipient also reads the sender's blocks and velocity); headers are
 * collected; the end of message classifies from what the recipients found
 * (classify.c, pure), picks the class's action, and in one round trip
 * commits the units of the rules that apply to the class, releases the
 * others, adds the recipients to the velocity, learns relationships from
 * personal mail and counts. Abort, close or a failure releases what is
 * held. Inbound mail is never limited: it only teaches relationships.
 * Nothing here knows libmilter: callbacks.c translates.
 */
#include <ctype.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "lease.h"
#include "log.h"
#include "policy.h"
#include "ratelimit.h"
#include "stats.h"


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
	size_t len = src != NULL ? strlen(src) : 0;

	if (len > size - 1)
		len = size - 1;

	memcpy(dst, src != NULL ? src : "", len);
	dst[len] = '\0';
}

void policy_conn_init(struct conn_state *c, const struct ipaddr *client,
		      const char *daemon_name)
{
	memset(c, 0, sizeof(*c));
	c->client = *client;
	ipaddr_format(&c->client, c->client_text, sizeof(c->client_text));
	copy_str(c->daemon_name, sizeof(c->daemon_name), daemon_name);
}

/* forget the held units (after they were given back) */
static void clear_held(struct msg_state *m)
{
	lease_clear(&m->held);
}

/* forget the refusals (after they were counted) */
static void clear_refusals(struct msg_state *m)
{
	for (size_t i = 0; i < m->n_refusals; i++) {
		free(m->refusals[i].rcpt);
		free(m->refusals[i].network);
	}
	m->n_refusals = 0;
}

static void msg_free(struct msg_state *m)
{
	lease_free(&m->held);
	free(m->held_rule);
	clear_refusals(m);
	free(m->refusals);
	for (size_t i = 0; i < m->n_rcpt_addrs; i++)
		free(m->rcpt_addrs[i]);
	free(m->rcpt_addrs);
	free(m->rcpt_known);
	free(m->rcpt_recent);
	free(m->nets);
	config_release(m->cfg);
	free(m);
}

static const char *mode_name(const struct config *cfg)
{
	return cfg->mode == MODE_MONITOR ? "monitor" : "enforce";
}

/*
 * The action of a message's log line and decision log entry: in monitor
 * mode an action that stops or holds mail was not taken, and says so
 * (would-hold, would-tempfail, would-reject); accept and tag were.
 */
static const char *logged_action(const struct config *cfg, enum class_action wanted)
{
	static const char *const would[] = {
		[ACTION_HOLD] = "would-hold",
		[ACTION_TEMPFAIL] = "would-tempfail",
		[ACTION_REJECT] = "would-reject",
	};

	if (cfg->mode == MODE_MONITOR && (unsigned)wanted <= ACTION_REJECT && would[wanted])
		return would[wanted];
	return action_name(wanted);
}

/* the name of the count of refused recipients: monitor mode refused none */
static const char *tempfailed_field(const struct config *cfg)
{
	return cfg->mode == MODE_MONITOR ? "would_tempfail" : "tempfailed";
}

/* the counters and log entries of the recipients refused by a limit */
static void stats_refusals(const struct msg_state *m, const char *client, struct stats_batch *b)
{
	bool monitor = m->cfg->mode == MODE_MONITOR;

	for (size_t i = 0; i < m->n_refusals; i++) {
		const struct refusal *r = &m->refusals[i];
		char used[24], max[24], window[24];

		stats_count(b, COUNT_STATS, NULL, 1, "net:%s:%s", r->network,
			    monitor ? "monitor_tempfailed" : "tempfailed");
		snprintf(used, sizeof(used), "%ld", r->used);
		snprintf(max, sizeof(max), "%ld", r->max);
		snprintf(window, sizeof(window), "%ld", r->window);
		stats_log(b, 12, "type", "tempfail", "qid", m->qid[0] ? m->qid : LOG_NOQUEUE,
			  "sender", m->sender_id, "client", client, "rcpt", r->rcpt,
			  "network", r->network, "rule", r->rule, "limit", r->limit, "used", used,
			  "max", max, "window", window, "mode", mode_name(m->cfg));
	}
	if (!monitor)
		stats_count(b, COUNT_SENDER, m->sender_id, (long)m->n_refusals, "tempfailed");
}

/* give back every reservation of the transaction, count its refusals, forget it */
void policy_abort(struct conn_state *c)
{
	struct msg_state *m = c->msg;
	struct stats_batch b;

	if (m == NULL)
		return;
	stats_init(&b);
	stats_refusals(m, c->client_text, &b);
	struct store_finish f = {.release = m->held.units, .n_release = m->held.n};
	stats_attach(&b, &f);
	if (store_finish(m->cfg, &f) != STORE_OK)
		log_msg(LOG_WARNING, m->qid,
			"could not release %zu reservation(s): %s; they expire in %lds",
			m->held.n, store_last_error(), m->cfg->reservation_ttl);
	stats_free(&b);
	msg_free(m);
	c->msg = NULL;
}

void policy_conn_end(struct conn_state *c)
{
	policy_abort(c);
}

/*
 * exempt_senders against the message's identity ID (sender_id) and, when
 * the identity is an address, ID_ADDR: a whole-address entry matches the
 * identity itself (a plain login too), a "domain" or "@domain" entry the
 * identity address's domain and its subdomains. The envelope sender of
 * authenticated mail is never looked at: a user cannot borrow an exempt
 * address by writing it into MAIL FROM.
 */
static bool sender_is_exempt(const struct config *cfg, const char *id,
			     const struct address *id_addr)
{
	for (size_t i = 0; i < cfg->exempt_senders.n; i++) {
		const char *e = cfg->exempt_senders.v[i];
		const char *at = strchr(e, '@');

		if (strcmp(e, id) == 0)
			return true;
		if (at == NULL || at == e) { /* "domain" or "@domain" */
			char *d = (char *)(at ? at + 1 : e);
			struct strlist one = {.v = &d, .n = 1};

			if (id_addr->status == ADDR_OK && domain_in_list(&one, id_addr->domain))
				return true;
		}
	}
	return false;
}

/*
 * Who the message is from, for limits, velocity, blocks and exemptions:
 * the authenticated user when the client authenticated (whatever envelope
 * sender it gave), else the envelope sender, else, for the null sender,
 * the client's address. OUT gets it as a string (an address normalised,
 * a plain login lowercased with blanks and controls as '_'); ADDR the
 * same as an address when it is one (status ADDR_INVALID otherwise).
 */
static void sender_identity(const struct msg_state *m, const char *auth_user,
			    const char *client, char *out, size_t size, struct address *addr)
{
	addr->status = ADDR_INVALID;
	if (auth_user != NULL && *auth_user != '\0') {
		if (strchr(auth_user, '@') != NULL &&
		    address_normalize(auth_user, m->cfg->subaddress_separator, addr) == ADDR_OK) {
			copy_str(out, size, addr->full);
			return;
		}
		addr->status = ADDR_INVALID;
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
		*addr = m->sender;
		copy_str(out, size, m->sender.full);
		break;
	case ADDR_NULL:
		copy_str(out, size, client);
		break;
	default:
		copy_str(out, size, NETWORK_INVALID);
	}
}

/*
 * The value of scope = sender_domain: the envelope sender's domain, but
 * for the null sender (which Postfix's reject_sender_login_mismatch does
 * not check) the identity's domain when it is an address, else the
 * identity itself (a plain login, the client's address).
 */
static void sender_domain_of(const struct msg_state *m, const struct address *id_addr,
			     char *out, size_t size)
{
	if (m->sender.status == ADDR_OK)
		copy_str(out, size, m->sender.domain);
	else if (m->sender.status != ADDR_NULL)
		copy_str(out, size, NETWORK_INVALID);
	else if (id_addr->status == ADDR_OK)
		copy_str(out, size, id_addr->domain);
	else
		copy_str(out, size, m->sender_id);
}

void policy_mail(struct conn_state *c, const char *sender, const char *auth_user,
		 const char *qid)
{
	struct msg_state *m;
	const struct config *cfg;

	policy_abort(c);
	/* 6 KB, most of it header space that is written before it is read */
	m = malloc(sizeof(*m));
	if (m == NULL) {
		log_msg(LOG_CRIT, qid, "out of memory");
		abort();
	}
	memset(m, 0, offsetof(struct msg_state, headers));
	m->cfg = config_acquire();
	cfg = m->cfg;
	snprintf(m->id, sizeof(m->id), "%s.%lu", instance_id,
		 atomic_fetch_add(&msg_counter, 1) + 1);
	copy_str(m->qid, sizeof(m->qid), qid);
	address_normalize(sender, cfg->subaddress_separator, &m->sender);
	struct address id_addr;
	sender_identity(m, auth_user, c->client_text, m->sender_id, sizeof(m->sender_id),
			&id_addr);
	sender_domain_of(m, &id_addr, m->sender_domain, sizeof(m->sender_domain));
	headers_init(&m->headers);

	m->outbound = (auth_user != NULL && *auth_user != '\0') ||
		      strlist_contains(&cfg->outbound_daemons, c->daemon_name) ||
		      cidr_list_match(&cfg->outbound_networks, &c->client);
	m->limited = m->outbound && !cidr_list_match(&cfg->exempt_clients, &c->client) &&
		     !sender_is_exempt(cfg, m->sender_id, &id_addr);
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

static void hold_units(struct msg_state *m, const struct store_unit *u, const unsigned *rule,
		       size_t n)
{
	if (m->held.n + n > m->cap_held_rule) {
		m->cap_held_rule = (m->held.n + n) * 2;
		m->held_rule = xrealloc(m->held_rule, m->cap_held_rule, sizeof(*m->held_rule));
	}
	for (size_t i = 0; i < n; i++)
		m->held_rule[m->held.n + i] = rule[i];
	lease_hold(&m->held, u, n); /* kept pending while the transaction lives */
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
	if (m->n_refusals == m->cap_refusals) {
		m->cap_refusals = m->cap_refusals ? 2 * m->cap_refusals : 4;
		m->refusals = xrealloc(m->refusals, m->cap_refusals, sizeof(*m->refusals));
	}
	m->refusals[m->n_refusals++] = (struct refusal){
		.rcpt = xstrdup(rcpt->status == ADDR_OK ? rcpt->full : NETWORK_INVALID),
		.network = xstrdup(u->network),
		.rule = u->rule,
		.limit = window_name(v->which),
		.used = v->used,
		.max = v->limit,
		.window = window,
	};
	log_msg(LOG_NOTICE, m->qid,
		"action=%s rcpt=%s network=%s rule=%s limit=%s used=%ld/%ld window=%lds "
		"retry=%lds sender=%s client=%s",
		monitor ? "would-tempfail" : "tempfail",
		log_quote(rcpt->status == ADDR_OK ? rcpt->full : NETWORK_INVALID),
		log_quote(u->network), log_quote(u->rule), window_name(v->which), v->used,
		v->limit, window, retry, log_quote(m->sender_id), log_quote(c->client_text));
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

/* keep A, with what its lookup found (F NULL: nothing) */
static void remember_rcpt(struct msg_state *m, const struct address *a,
			  const struct store_found *f)
{
	if (a->status != ADDR_OK)
		return;
	if (m->n_rcpt_addrs == m->cap_rcpt_addrs) {
		m->cap_rcpt_addrs = m->cap_rcpt_addrs ? m->cap_rcpt_addrs * 2 : 8;
		m->rcpt_addrs = xrealloc(m->rcpt_addrs, m->cap_rcpt_addrs, sizeof(*m->rcpt_addrs));
		m->rcpt_known = xrealloc(m->rcpt_known, m->cap_rcpt_addrs, 1);
		m->rcpt_recent = xrealloc(m->rcpt_recent, m->cap_rcpt_addrs, 1);
	}
	m->rcpt_known[m->n_rcpt_addrs] = f != NULL && f->known;
	m->rcpt_recent[m->n_rcpt_addrs] = f != NULL && f->recent;
	m->rcpt_addrs[m->n_rcpt_addrs++] = xstrdup(a->full);
}

/* an accepted external recipient of an outbound message */
static void accept_rcpt(struct msg_state *m, struct net_tally *t, const struct address *a,
			const struct store_found *f)
{
	t->accepted++;
	m->rcpts++;
	remember_rcpt(m, a, f);
}

static long long wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* whose relationships the message's recipients are looked up in */
static const char *rel_sender(const struct msg_state *m)
{
	return m->sender.status == ADDR_OK ? m->sender.full : m->sender_id;
}

/*
 * What the round trip of recipient A (NULL: an internal one) looks up:
 * A among the sender's correspondents and recent recipients, and, until a
 * recipient has read them, the message's own inputs. False when nothing:
 * after a store failure the message's class is unknown anyway.
 */
static bool rcpt_lookup(const struct msg_state *m, const struct address *a,
			struct store_lookup *q)
{
	if (m->store_failed)
		return false;
	*q = (struct store_lookup){
		.rel_sender = rel_sender(m),
		.vel_sender = m->sender_id,
		.rcpt = a != NULL && a->status == ADDR_OK ? a->full : NULL,
		.message = !m->have_inputs,
		.now_ms = wall_ms(),
	};
	return q->rcpt != NULL || q->message;
}

/* keep the message's own inputs from F; false when the lookups failed */
static bool take_found(struct msg_state *m, const struct store_lookup *q,
		       const struct store_found *f)
{
	if (f->status != STORE_OK) {
		if (!m->store_failed)
			log_msg(LOG_WARNING, m->qid, "rate limit store unavailable: %s",
				store_last_error());
		m->store_failed = true;
		return false;
	}
	if (q->message) {
		m->have_inputs = true;
		m->blocked = f->blocked;
		m->velocity_before = f->velocity;
	}
	return true;
}

/*
 * The member of a reservation: "ID.rSEQ" for a recipient's units, "ID.m"
 * (SEQ 0) for the message's; OUT has room for ID and 16 more bytes.
 */
static void member_name(char *out, const char *id, unsigned seq)
{
	char digits[12], *d = digits + sizeof(digits);
	size_t len = strlen(id);

	memcpy(out, id, len);
	out[len++] = '.';
	if (seq == 0) {
		out[len++] = 'm';
	} else {
		out[len++] = 'r';
		do
			*--d = (char)('0' + seq % 10);
		while ((seq /= 10) != 0);
		memcpy(out + len, d, (size_t)(digits + sizeof(digits) - d));
		len += (size_t)(digits + sizeof(digits) - d);
	}
	out[len] = '\0';
}

/*
 * The units recipient number m->rcpt_seq + 1 of network T reserves, one per
 * rule of the first N_RULES (a count=messages rule only once a message and
 * network); RULE_OF gets each unit's rule, MEMBERS the reservation ids the
 * units point to. Returns how many.
 */
static size_t rcpt_units(struct msg_state *m, const struct conn_state *c,
			 const struct net_tally *t, size_t n_rules, struct store_unit *units,
			 unsigned *rule_of, char (*members)[sizeof(m->id) + 16])
{
	const struct config *cfg = m->cfg;
	struct msg_identity id = {
		.sender = m->sender_id,
		.sender_domain = m->sender_domain,
		.client = c->client_text,
	};
	size_t n = 0;

	m->rcpt_seq++;
	member_name(members[0], m->id, m->rcpt_seq);
	member_name(members[1], m->id, 0);
	for (size_t i = 0; i < n_rules; i++) {
		const struct limit_rule *r = &cfg->limits[i];
		bool per_message = r->count == COUNT_MESSAGES;

		if (per_message && (t->msg_units & (1ULL << i)))
			continue; /* this message already holds its unit here */
		const char *scope = ratelimit_scope_value(r, &id);
		rule_of[n] = (unsigned)i;
		units[n++] = (struct store_unit){
			.network = t->name,
			.rule = r->name,
			.scope = scope,
			.scope_len = strlen(scope),
			.member = per_message ? members[1] : members[0],
			.lv = ratelimit_effective(r, t->name),
		};
	}
	return n;
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
	if (m == NULL)
		return;
	if (qid != NULL && *qid != '\0')
		copy_str(m->qid, sizeof(m->qid), qid);

	const struct config *cfg = m->cfg;
	address_normalize(rcpt, cfg->subaddress_separator, &a);
	bool internal = a.status == ADDR_OK && domain_in_list(&cfg->local_domains, a.domain);
	if (!m->outbound) {
		if (internal) /* inbound mail to a local user teaches relationships */
			remember_rcpt(m, &a, NULL);
		return;
	}

	struct store_lookup q;
	struct store_found f = {.status = STORE_ERR};
	const struct store_found *found = NULL;
	bool look = rcpt_lookup(m, internal ? NULL : &a, &q);

	if (internal) {
		/* never limited, not counted among the recipients */
		if (look) {
			store_rcpt(cfg, NULL, 0, 0, NULL, &q, &f);
			take_found(m, &q, &f);
		}
		return;
	}
	network_of(cfg, &a, net, sizeof(net));
	t = tally_get(m, net);
	size_t n_rules = m->limited ? cfg->n_limits : 0;

	struct store_unit units[n_rules + 1];
	unsigned rule_of[n_rules + 1];
	char members[2][sizeof(m->id) + 16];
	size_t n = rcpt_units(m, c, t, n_rules, units, rule_of, members);

	if (n == 0 && !look) {
		accept_rcpt(m, t, &a, NULL);
		return;
	}

	/* one round trip: the reservation and the lookups */
	struct store_verdict v;
	int rv = store_rcpt(cfg, units, n, 0, &v, look ? &q : NULL, &f);
	if (look && rv != STORE_ERR && take_found(m, &q, &f))
		found = &f;
	switch (rv) {
	case STORE_OK:
		for (size_t i = 0; i < n; i++) /* the commit counts them at this time */
			units[i].admitted_ms = v.admitted_ms;
		hold_units(m, units, rule_of, n);
		for (size_t i = 0; i < n_rules; i++)
			if (cfg->limits[i].count == COUNT_MESSAGES)
				t->msg_units |= 1ULL << i;
		accept_rcpt(m, t, &a, found);
		return;
	case STORE_OVER:
		refuse_rcpt(m, c, &a, &units[v.unit >= 0 && (size_t)v.unit < n ? v.unit : 0], &v,
			    t, res);
		if (res->outcome == RCPT_ACCEPT) /* monitor mode */
			remember_rcpt(m, &a, found);
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
		accept_rcpt(m, t, &a, NULL);
	}
}

void policy_header(struct conn_state *c, const char *name, const char *value)
{
	struct msg_state *m = c->msg;

	if (m == NULL || !m->outbound)
		return;
	if (strcasecmp(name, m->cfg->classify.header) == 0)
		m->forged_headers++;
	headers_add(&m->headers, name, value ? value : "");
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
				memcpy(buf + size - 4, "...", 4);
			return;
		}
		len += (size_t)w;
	}
	if (len == 0)
		snprintf(buf, size, "-");
}

/* organisational (registrable) domain of an address, "" when it has none */
static void org_domain(const struct address *a, char *buf, size_t size)
{
	buf[0] = '\0';
	if (a->status == ADDR_OK)
		network_registrable(a->domain, buf, size);
}

/* every From mailbox is in the organisational domain of the envelope sender or the user */
static bool from_is_aligned(const struct msg_state *m)
{
	char env[NETWORK_MAX], user[NETWORK_MAX], from[NETWORK_MAX];
	const struct msg_headers *h = &m->headers;
	struct address ua;

	if (h->n_from == 0 || h->n_from > FROM_MAX)
		return false;
	org_domain(&m->sender, env, sizeof(env));
	user[0] = '\0';
	if (strchr(m->sender_id, '@') != NULL &&
	    address_normalize(m->sender_id, "", &ua) == ADDR_OK)
		org_domain(&ua, user, sizeof(user));
	for (size_t i = 0; i < h->n_from; i++) {
		org_domain(&h->from[i], from, sizeof(from));
		if (from[0] == '\0' || (strcmp(from, env) != 0 && strcmp(from, user) != 0))
			return false;
	}
	return true;
}

/* what the class's action becomes in this mode: monitor only ever tags */
static enum class_action effective_action(const struct config *cfg, enum class_action a)
{
	return cfg->mode == MODE_MONITOR ? ACTION_TAG : a;
}

/*
 * The store answered nothing usable: on_error decides. accept lets the
 * message through marked unknown (its units are still committed);
 * tempfail asks the client to come back.
 */
static void eom_store_failed(struct msg_state *m, struct conn_state *c, const char *nets,
			     struct eom_result *res)
{
	const struct config *cfg = m->cfg;
	bool accept = cfg->redis.on_error == ON_ERROR_ACCEPT;

	if (accept) {
		if (m->held.n > 0 && store_commit(cfg, m->held.units, m->held.n) != STORE_OK)
			log_msg(LOG_WARNING, m->qid,
				"could not commit %zu reservation(s): %s; they expire in %lds",
				m->held.n, store_last_error(), cfg->reservation_ttl);
		if (cfg->classify.add_header) {
			res->add_header = true;
			snprintf(res->header_value, sizeof(res->header_value),
				 "unknown; reasons=store-unavailable");
		}
	} else {
		res->outcome = EOM_TEMPFAIL_ERROR;
		snprintf(res->reply, sizeof(res->reply),
			 "Rate limit store unavailable, try again later");
	}
	log_msg(LOG_WARNING, m->qid,
		"class=unknown action=%s sender=%s client=%s rcpts=%u %s=%u networks=%s "
		"mode=%s reasons=store-unavailable",
		accept ? "accept" : "tempfail", log_quote(m->sender_id),
		log_quote(c->client_text), m->rcpts, tempfailed_field(cfg), m->tempfailed,
		log_quote(nets),
		cfg->mode == MODE_MONITOR ? "monitor" : "enforce");
}

/* inbound mail: its external sender becomes known to each local recipient */
static void eom_inbound(struct msg_state *m)
{
	const struct config *cfg = m->cfg;

	if (!cfg->learn_inbound || m->sender.status != ADDR_OK || m->n_rcpt_addrs == 0 ||
	    domain_in_list(&cfg->local_domains, m->sender.domain))
		return;
	struct store_pair *pairs = xrealloc(NULL, m->n_rcpt_addrs, sizeof(*pairs));
	for (size_t i = 0; i < m->n_rcpt_addrs; i++)
		pairs[i] = (struct store_pair){.sender = m->rcpt_addrs[i], .rcpt = m->sender.full};
	struct store_finish f = {.learn = pairs, .n_learn = m->n_rcpt_addrs, .now_ms = wall_ms()};
	if (store_finish(cfg, &f) != STORE_OK)
		log_msg(LOG_WARNING, m->qid, "could not learn relationships from inbound mail: %s",
			store_last_error());
	free(pairs);
}

/*
 * The header value, for the outside world: "CLASS", with "; reasons=R"
 * when the message is held or bulk. How many people the sender wrote to
 * and how many it knows stay inside (log, Redis) unless header_detail
 * asks for them: "CLASS; rcpts=N; known=K; velocity=V[; reasons=R]".
 */
static void class_header(const struct classify_conf *cc, enum class_action act,
			 const struct classify_input *in, const struct classify_result *cr,
			 char *buf, size_t size)
{
	bool reasons = cr->reasons[0] != '\0' &&
		       (cc->header_detail || act == ACTION_HOLD || cr->cls == CLASS_BULK);
	int n;

	if (cc->header_detail)
		n = snprintf(buf, size, "%s; rcpts=%u; known=%u; velocity=%u",
			     class_name(cr->cls), in->rcpts, in->known, in->velocity);
	else
		n = snprintf(buf, size, "%s", class_name(cr->cls));
	if (reasons && n > 0 && (size_t)n < size)
		snprintf(buf + n, size - (size_t)n, "; reasons=%s", cr->reasons);
}

/*
 * The classification inputs, from what the recipients' round trips found;
 * false when the store failed. Only a message whose recipients never
 * reached the store reads its own inputs here.
 */
static bool eom_inputs(struct msg_state *m, struct classify_input *in)
{
	if (!m->have_inputs) {
		struct store_lookup q;
		struct store_found f = {.status = STORE_ERR};

		if (!rcpt_lookup(m, NULL, &q))
			return false;
		store_rcpt(m->cfg, NULL, 0, 0, NULL, &q, &f);
		if (!take_found(m, &q, &f))
			return false;
	}
	in->known = 0;
	for (size_t i = 0; i < m->n_rcpt_addrs; i++)
		in->known += m->rcpt_known[i];
	in->velocity = (unsigned)store_velocity(m->velocity_before,
						(const char *const *)m->rcpt_addrs, m->rcpt_recent,
						m->n_rcpt_addrs);
	in->blocked = m->blocked;
	return true;
}

/* the counters and the log entry of a classified message */
static void stats_message(const struct msg_state *m, const char *client,
			  const struct classify_input *in, const struct classify_result *cr,
			  enum class_action wanted, enum class_action act, const char *nets,
			  struct stats_batch *b)
{
	const struct config *cfg = m->cfg;
	const char *cls = class_name(cr->cls), *who = m->sender_id;
	bool delivered = act != ACTION_TEMPFAIL && act != ACTION_REJECT;
	char rcpts[16], known[16], velocity[16], tempfailed[16];

	stats_count(b, COUNT_STATS, NULL, 1, "msg:%s", cls);
	stats_count(b, COUNT_STATS, NULL, (long)in->rcpts, "rcpt:%s", cls);
	stats_count(b, COUNT_STATS, NULL, 1, "%s:%s",
		    cfg->mode == MODE_MONITOR ? "monitor" : "action", action_name(wanted));
	stats_count(b, COUNT_SENDER, who, 1, "msg");
	stats_count(b, COUNT_SENDER, who, 1, "class:%s", cls);
	if (delivered) {
		stats_count(b, COUNT_SENDER, who, 1, "sent");
		stats_count(b, COUNT_SENDER, who, (long)in->rcpts, "rcpts");
		stats_count(b, COUNT_TOP, who, (long)in->rcpts, NULL);
		for (size_t i = 0; i < m->n_nets; i++) {
			stats_count(b, COUNT_STATS, NULL, m->nets[i].accepted, "net:%s:accepted",
				    m->nets[i].name);
			stats_count(b, COUNT_SENDER, who, m->nets[i].accepted, "net:%s",
				    m->nets[i].name);
		}
	} else {
		stats_count(b, COUNT_SENDER, who, 1, "refused");
	}
	if (act == ACTION_HOLD)
		stats_count(b, COUNT_SENDER, who, 1, "held");

	snprintf(rcpts, sizeof(rcpts), "%u", in->rcpts);
	snprintf(known, sizeof(known), "%u", in->known);
	snprintf(velocity, sizeof(velocity), "%u", in->velocity);
	snprintf(tempfailed, sizeof(tempfailed), "%u", m->tempfailed);
	stats_log(b, 13, "type", "message", "qid", m->qid[0] ? m->qid : LOG_NOQUEUE, "sender",
		  who, "client", client, "rcpts", rcpts, "known", known, "velocity", velocity,
		  tempfailed_field(cfg), tempfailed, "networks", nets, "class", cls, "action",
		  logged_action(cfg, wanted), "mode", mode_name(cfg), "reasons",
		  cr->reasons[0] ? cr->reasons : "-");
}

/*
 * One round trip for everything the message leaves behind: commit the units
 * of the rules that apply to its class, release the rest (all of them when
 * it is not delivered), its recipients into the sender's velocity, learn
 * from personal mail, counters, log entries.
 */
static void eom_record(struct msg_state *m, const char *client,
		       const struct classify_input *in, const struct classify_result *cr,
		       enum class_action wanted, enum class_action act, const char *nets,
		       long long now)
{
	const struct config *cfg = m->cfg;
	bool delivered = act != ACTION_TEMPFAIL && act != ACTION_REJECT;
	/* sized by the message: on the heap, never on libmilter's thread stack */
	struct store_unit *commit = xrealloc(NULL, 2 * m->held.n + 1, sizeof(*commit));
	struct store_unit *release = commit + m->held.n;
	struct store_pair *pairs = xrealloc(NULL, m->n_rcpt_addrs + 1, sizeof(*pairs));
	size_t n_commit = 0, n_release = 0, n_learn = 0;
	struct stats_batch b;

	for (size_t i = 0; i < m->held.n; i++) {
		bool applies = cfg->limits[m->held_rule[i]].classes & (1u << cr->cls);
		if (delivered && applies)
			commit[n_commit++] = m->held.units[i];
		else
			release[n_release++] = m->held.units[i];
	}
	/* personal mail teaches: its recipients become known to the sender */
	if (delivered && cr->cls == CLASS_PERSONAL && cfg->learn_outbound &&
	    m->sender.status == ADDR_OK)
		for (size_t i = 0; i < m->n_rcpt_addrs; i++)
			pairs[n_learn++] = (struct store_pair){rel_sender(m), m->rcpt_addrs[i]};

	stats_init(&b);
	stats_refusals(m, client, &b);
	stats_message(m, client, in, cr, wanted, act, nets, &b);
	struct store_finish f = {
		.commit = commit, .n_commit = n_commit,
		.release = release, .n_release = n_release,
		.learn = pairs, .n_learn = n_learn,
		.now_ms = now,
	};
	f.vel_sender = m->sender_id;
	f.vel_rcpts = (const char *const *)m->rcpt_addrs;
	f.n_vel = m->n_rcpt_addrs;
	stats_attach(&b, &f);
	if (store_finish(cfg, &f) != STORE_OK)
		log_msg(LOG_WARNING, m->qid,
			"could not record the decision: %s; reservations expire in %lds",
			store_last_error(), cfg->reservation_ttl);
	stats_free(&b);
	free(commit);
	free(pairs);
}

/* the SMTP answer, header and hold of the action */
static void eom_answer(const struct config *cfg, enum class_action act,
		       const struct classify_input *in, const struct classify_result *cr,
		       struct eom_result *res)
{
	const char *why = cr->reasons[0] ? cr->reasons : "no reason";

	switch (act) {
	case ACTION_HOLD:
		res->quarantine = true;
		snprintf(res->reply, sizeof(res->reply), "outbound-milter: %s (%s)",
			 class_name(cr->cls), why);
		/* held mail carries the header too */
		__attribute__((fallthrough));
	case ACTION_TAG:
		if (cfg->classify.add_header) {
			res->add_header = true;
			class_header(&cfg->classify, act, in, cr, res->header_value,
				     sizeof(res->header_value));
		}
		break;
	case ACTION_TEMPFAIL:
		res->outcome = EOM_TEMPFAIL;
		snprintf(res->reply, sizeof(res->reply),
			 "Message classified %s (%s), try again later", class_name(cr->cls), why);
		break;
	case ACTION_REJECT:
		res->outcome = EOM_REJECT;
		snprintf(res->reply, sizeof(res->reply), "Message classified %s (%s)",
			 class_name(cr->cls), why);
		break;
	case ACTION_ACCEPT:
		break;
	}
	sanitize(res->reply);
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
	if (!m->outbound) {
		eom_inbound(m);
		return;
	}

	const struct config *cfg = m->cfg;
	long long now = wall_ms();
	struct classify_input in = {
		.rcpts = m->rcpts,
		.headers = &m->headers,
		.from_aligned = from_is_aligned(m),
	};

	/* a client cannot choose its own class: our header is ours alone */
	copy_str(res->header_name, sizeof(res->header_name), cfg->classify.header);
	res->remove_headers = m->forged_headers;
	format_networks(m, nets, sizeof(nets));

	if (m->store_failed || !eom_inputs(m, &in)) {
		m->store_failed = true;
		eom_store_failed(m, c, nets, res);
		return;
	}

	struct classify_result cr;
	classify_message(&cfg->classify, &in, &cr);
	enum class_action wanted = cfg->class_action[cr.cls];
	enum class_action act = effective_action(cfg, wanted);
	bool delivered = act != ACTION_TEMPFAIL && act != ACTION_REJECT;

	eom_record(m, c->client_text, &in, &cr, wanted, act, nets, now);
	if (!delivered)
		clear_held(m); /* all released already */
	clear_refusals(m); /* counted */
	eom_answer(cfg, act, &in, &cr, res);
	log_msg(LOG_INFO, m->qid,
		"class=%s action=%s sender=%s client=%s rcpts=%u known=%u velocity=%u "
		"%s=%u networks=%s mode=%s reasons=%s%s",
		class_name(cr.cls), logged_action(cfg, wanted), log_quote(m->sender_id),
		log_quote(c->client_text), in.rcpts, in.known, in.velocity, tempfailed_field(cfg),
		m->tempfailed,
		log_quote(nets), mode_name(cfg), log_quote(cr.reasons[0] ? cr.reasons : "-"),
		m->limited ? "" : " limited=no");
}

void policy_done(struct conn_state *c)
{
	if (c->msg != NULL) {
		msg_free(c->msg);
		c->msg = NULL;
	}
}
