/*
 * config.c - the configuration file (outbound-milter.conf(5)).
 *
 * config_load() reads a libconfuse file into an immutable, validated
 * struct config: every string is copied out of libconfuse, domains are
 * normalised, words become enums, CIDR blocks are parsed. Every problem is
 * handed to the caller's reporter as FILE:LINE, errors and warnings alike,
 * sorted by line; one error and config_load() returns NULL.
 *
 * The file is read into memory first and its comments and the ';' between
 * options (outbound-milter.conf(5) writes `{ domains = {...}; mx = {...} }`) are
 * blanked out, newlines kept: libconfuse 3.3 knows no ';' and counts lines
 * wrongly after a comment, so it gets a text where neither occurs.
 *
 * libconfuse keeps no line numbers for values, so while it parses, a value
 * callback on every option records the line each value came from, and a
 * hidden list option with a default in every titled section (its name
 * starts with '|', which no option name in a file can reach) is parsed by
 * libconfuse the moment a section opens, which gives the line of the
 * section header and the place to catch duplicate titles.
 *
 * libconfuse's scanner is one global, so loads are serialised.
 *
 * config_install/acquire/release keep the process-wide current snapshot;
 * a snapshot is freed when its last holder lets go of it.
 */
#define _GNU_SOURCE /* asprintf */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <confuse.h>
#include <idn2.h>

#include "cidr.h"
#include "config.h"
#include "mx.h"
#include "store.h" /* VELOCITY_CAP */

#define NAME_MAX_LEN 64 /* network and limit names: they become part of Redis keys */

/*
 * Ranges of the numeric options (doc/outbound-milter.conf.5). Every one
 * has an upper bound: a number passes through millisecond arithmetic,
 * Redis TTLs (SET EX refuses what overflows in milliseconds) and Lua
 * numbers, and a bound far above any sane setting costs nothing.
 */
#define LIMIT_UNITS_MAX 100000000L   /* hourly, burst: 100 million units per window */
#define RELATIONSHIP_TTL_MAX 36500L  /* days: 100 years */
#define RELATIONSHIPS_MAX 1000000L   /* relationships kept per sender */
#define RECIPIENTS_MAX 1000000L      /* personal_max_recipients */
#define LOG_ENTRIES_MAX 100000000L   /* decision log length */
#define REDIS_DB_MAX 65535L          /* SELECT index */
#define DOMAIN_MAX_LEN 253
#define MSG_MAX 1024


/* ---------------------------------------------------------------- options */

/* A titled section's open marker: see the header comment. */
#define OPEN_MARK(name) CFG_STR_LIST(name, "{open}", CFGF_NONE)
#define MARK_CLASS "|class"
#define MARK_NETWORK "|network"
#define MARK_LIMIT "|limit"
#define MARK_OVERRIDE "|override"

static cfg_opt_t redis_opts[] = {
	CFG_STR("host", "127.0.0.1", CFGF_NONE),
	CFG_INT("port", 6379, CFGF_NONE),
	CFG_STR("socket", "", CFGF_NONE),
	CFG_STR("user", "", CFGF_NONE),
	CFG_STR("password_file", "", CFGF_NONE),
	CFG_STR("readonly_user", "", CFGF_NONE),
	CFG_STR("readonly_password_file", "", CFGF_NONE),
	CFG_INT("db", 0, CFGF_NONE),
	CFG_STR("prefix", "obm:", CFGF_NONE),
	CFG_INT("timeout_ms", 200, CFGF_NONE),
	CFG_STR("on_error", "accept", CFGF_NONE),
	CFG_END()
};

static cfg_opt_t classify_opts[] = {
	CFG_INT("personal_max_recipients", 5, CFGF_NONE),
	CFG_INT("personal_max_hourly", 50, CFGF_NONE),
	CFG_FLOAT("min_known_ratio", 0.5, CFGF_NONE),
	CFG_BOOL("require_unsubscribe", cfg_true, CFGF_NONE),
	CFG_BOOL("require_aligned_from", cfg_true, CFGF_NONE),
	CFG_STR("header", "X-Outbound-Class", CFGF_NONE),
	CFG_BOOL("add_header", cfg_true, CFGF_NONE),
	CFG_BOOL("header_detail", cfg_false, CFGF_NONE),
	CFG_END()
};

static cfg_opt_t class_opts[] = {
	CFG_STR("action", NULL, CFGF_NODEFAULT), /* default depends on the class */
	OPEN_MARK(MARK_CLASS),
	CFG_END()
};

static cfg_opt_t network_opts[] = {
	CFG_STR_LIST("domains", NULL, CFGF_NONE),
	CFG_STR_LIST("mx", NULL, CFGF_NONE),
	OPEN_MARK(MARK_NETWORK),
	CFG_END()
};

static cfg_opt_t override_opts[] = {
	CFG_INT("hourly", 0, CFGF_NODEFAULT), /* unset: the rule's own value */
	CFG_INT("burst", 0, CFGF_NODEFAULT),
	OPEN_MARK(MARK_OVERRIDE),
	CFG_END()
};

static cfg_opt_t limit_opts[] = {
	CFG_STR("scope", "sender", CFGF_NONE),
	CFG_INT("hourly", 100, CFGF_NONE),
	CFG_INT("burst", 10, CFGF_NONE),
	CFG_INT("burst_window", 60, CFGF_NONE),
	CFG_STR("count", "recipients", CFGF_NONE),
	CFG_STR_LIST("classes", "{\"personal\", \"bulk\", \"spam-risk\"}", CFGF_NONE),
	CFG_SEC("network", override_opts, CFGF_MULTI | CFGF_TITLE),
	OPEN_MARK(MARK_LIMIT),
	CFG_END()
};

static cfg_opt_t root_opts[] = {
	CFG_STR("socket", "unix:/var/spool/postfix/outbound-milter/milter.sock", CFGF_NONE),
	CFG_STR("socket_mode", "0660", CFGF_NONE),
	CFG_STR("socket_group", "postfix", CFGF_NONE),
	CFG_STR("pid_file", "/run/outbound-milter/outbound-milter.pid", CFGF_NONE),
	CFG_STR("mode", "enforce", CFGF_NONE),
	CFG_STR("user", "", CFGF_NONE),
	CFG_STR("group", "", CFGF_NONE),
	CFG_STR_LIST("outbound_daemons", "{\"ORIGINATING\"}", CFGF_NONE),
	CFG_STR_LIST("outbound_networks", "{\"127.0.0.0/8\", \"::1/128\"}", CFGF_NONE),
	CFG_STR_LIST("local_domains", NULL, CFGF_NONE),
	CFG_STR_LIST("exempt_senders", NULL, CFGF_NONE),
	CFG_STR_LIST("exempt_clients", NULL, CFGF_NONE),
	CFG_STR("subaddress_separator", "+", CFGF_NONE),
	CFG_BOOL("learn_inbound", cfg_true, CFGF_NONE),
	CFG_BOOL("learn_outbound", cfg_true, CFGF_NONE),
	CFG_INT("relationship_ttl", 365, CFGF_NONE),
	CFG_INT("relationship_max", 10000, CFGF_NONE),
	CFG_BOOL("mx_grouping", cfg_false, CFGF_NONE),
	CFG_INT("mx_cache_ttl", 86400, CFGF_NONE),
	CFG_INT("dns_timeout_ms", 300, CFGF_NONE),
	CFG_STR("dns_server", "", CFGF_NONE),
	CFG_INT("reservation_ttl", 300, CFGF_NONE),
	CFG_INT("log_max_entries", 100000, CFGF_NONE),
	CFG_SEC("redis", redis_opts, CFGF_NONE),
	CFG_SEC("classify", classify_opts, CFGF_NONE),
	CFG_SEC("class", class_opts, CFGF_MULTI | CFGF_TITLE),
	CFG_SEC("network", network_opts, CFGF_MULTI | CFGF_TITLE),
	CFG_SEC("limit", limit_opts, CFGF_MULTI | CFGF_TITLE),
	CFG_END()
};

static const char *const mode_words[] = {"enforce", "monitor", NULL};
static const char *const on_error_words[] = {"accept", "tempfail", NULL};
static const char *const scope_words[] = {"sender", "sender_domain", "client", "global", NULL};
static const char *const count_words[] = {"recipients", "messages", NULL};
static const char *const class_words[] = {"personal", "bulk", "spam-risk", NULL};
static const char *const action_words[] = {"accept", "tag", "hold", "tempfail", "reject", NULL};

static const enum class_action class_default_action[CLASS_COUNT] = {
	[CLASS_PERSONAL] = ACTION_TAG,
	[CLASS_BULK] = ACTION_TAG,
	[CLASS_SPAM_RISK] = ACTION_HOLD,
};

/* ----------------------------------------------------------- load state */

struct problem {
	int line;
	bool is_error;
	unsigned seq;
	char *text;
};

/* the line one value (index INDEX of option NAME in section SEC) came from */
struct value_rec {
	const cfg_t *sec;
	char name[32];
	unsigned index;
	int line;
};

enum sec_kind { SEC_CLASS, SEC_NETWORK, SEC_LIMIT, SEC_OVERRIDE };

/* a titled section as it was opened */
struct sec_rec {
	const cfg_t *sec;
	cfg_t *parent; /* the limit of an override */
	enum sec_kind kind;
	char *title;
	int line;
	bool live; /* false once libconfuse may have freed SEC */
};

struct load {
	const char *file;

	struct problem *pv;
	size_t pn, pcap;
	unsigned seq;
	size_t errors;

	struct value_rec *vv;
	size_t vn, vcap;

	struct sec_rec *sv;
	size_t sn, scap;

	cfg_t *cur_limit; /* the limit section being parsed */
	unsigned flags;   /* CONFIG_* of config_load_flags */
	bool oom;
};

/* libconfuse's scanner is global: one load at a time */
static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;
static struct load *load_cur; /* under load_lock */

/* room for one more element in an array of SIZE-byte elements */
static void *grow(struct load *ld, void *v, size_t *cap, size_t n, size_t size)
{
	size_t ncap;
	void *p;

	if (n < *cap)
		return v;
	ncap = *cap ? *cap * 2 : 16;
	p = realloc(v, ncap * size);
	if (p == NULL) {
		ld->oom = true;
		return NULL;
	}
	*cap = ncap;
	return p;
}

static void problem(struct load *ld, int line, bool is_error, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void problem(struct load *ld, int line, bool is_error, const char *fmt, ...)
{
	char buf[MSG_MAX];
	struct problem *p;
	va_list ap;

	if (is_error)
		ld->errors++;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	for (char *c = buf; *c; c++)
		if ((unsigned char)*c < ' ' || *c == 0x7f)
			*c = '?'; /* the text of the file may hold anything */

	p = grow(ld, ld->pv, &ld->pcap, ld->pn, sizeof(*ld->pv));
	if (p == NULL)
		return;
	ld->pv = p;
	p = &ld->pv[ld->pn];
	p->text = strdup(buf);
	if (p->text == NULL) {
		ld->oom = true;
		return;
	}
	p->line = line;
	p->is_error = is_error;
	p->seq = ld->seq++;
	ld->pn++;
}

static void record_value(struct load *ld, const cfg_t *sec, const char *name,
			 unsigned index, int line)
{
	struct value_rec *r;

	r = grow(ld, ld->vv, &ld->vcap, ld->vn, sizeof(*ld->vv));
	if (r == NULL)
		return;
	ld->vv = r;
	r = &ld->vv[ld->vn++];
	r->sec = sec;
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->index = index;
	r->line = line;
}

/* line of a value; 0 when it was not in the file (a default) */
static int value_line(const struct load *ld, const cfg_t *sec, const char *name,
		      unsigned index)
{
	for (size_t i = ld->vn; i-- > 0;) {
		const struct value_rec *r = &ld->vv[i];

		if (r->sec == sec && r->index == index && strcmp(r->name, name) == 0)
			return r->line;
	}
	return 0;
}

/* the first of the lines that is known */
static int first_line(int a, int b, int c)
{
	return a ? a : b ? b : c;
}

static const struct sec_rec *sec_find(const struct load *ld, const cfg_t *sec)
{
	for (size_t i = ld->sn; i-- > 0;)
		if (ld->sv[i].live && ld->sv[i].sec == sec)
			return &ld->sv[i];
	return NULL;
}

/* line of a titled section's header */
static int sec_line(const struct load *ld, const cfg_t *sec)
{
	const struct sec_rec *r = sec_find(ld, sec);

	return r != NULL ? r->line : 0;
}

static const char *kind_word(enum sec_kind k)
{
	switch (k) {
	case SEC_CLASS:
		return "class";
	case SEC_NETWORK:
		return "network";
	case SEC_LIMIT:
		return "limit";
	case SEC_OVERRIDE:
		return "network override";
	}
	return "section";
}

/* ------------------------------------------------- libconfuse callbacks */

static int parse_long(const char *s, long *out)
{
	char *end;
	long v;

	if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (*end != '\0' || errno == ERANGE)
		return -1;
	*out = v;
	return 0;
}

static int parse_double(const char *s, double *out)
{
	char *end;
	double v;

	if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (*end != '\0' || errno == ERANGE || !isfinite(v))
		return -1;
	*out = v;
	return 0;
}

/*
 * Every value of every option passes here: record its line, convert it.
 * Numbers are decimal only (libconfuse would read 010 as 8).
 */
static int cb_value(cfg_t *sec, cfg_opt_t *opt, const char *value, void *result)
{
	struct load *ld = load_cur;
	int b;

	if (ld != NULL)
		record_value(ld, sec, opt->name, opt->nvalues ? opt->nvalues - 1 : 0,
			     sec->line);
	switch (opt->type) {
	case CFGT_INT:
		if (parse_long(value, result) != 0) {
			cfg_error(sec, "invalid integer value '%s' for option '%s'",
				  value ? value : "", opt->name);
			return -1;
		}
		return 0;
	case CFGT_FLOAT:
		if (parse_double(value, result) != 0) {
			cfg_error(sec, "invalid number '%s' for option '%s'",
				  value ? value : "", opt->name);
			return -1;
		}
		return 0;
	case CFGT_BOOL:
		b = cfg_parse_boolean(value);
		if (b < 0) {
			cfg_error(sec, "invalid boolean value '%s' for option '%s' "
				  "(use true or false)", value ? value : "", opt->name);
			return -1;
		}
		*(int *)result = b;
		return 0;
	case CFGT_STR:
		*(const char **)result = value;
		return 0;
	default:
		cfg_error(sec, "internal error: option '%s' of unexpected type", opt->name);
		return -1;
	}
}

/*
 * A titled section was just created (libconfuse parses its open marker's
 * default): note the header line, catch a duplicate title.
 */
static int cb_open(cfg_t *sec, cfg_opt_t *opt, const char *value, void *result)
{
	struct load *ld = load_cur;
	struct sec_rec *r;
	enum sec_kind kind;
	cfg_t *parent = NULL;
	const char *title = sec->title ? sec->title : "";
	size_t i;

	*(const char **)result = value;
	if (ld == NULL)
		return 0;
	if (strcmp(opt->name, MARK_CLASS) == 0)
		kind = SEC_CLASS;
	else if (strcmp(opt->name, MARK_NETWORK) == 0)
		kind = SEC_NETWORK;
	else if (strcmp(opt->name, MARK_LIMIT) == 0)
		kind = SEC_LIMIT;
	else
		kind = SEC_OVERRIDE;
	if (kind == SEC_OVERRIDE)
		parent = ld->cur_limit;

	for (i = 0; i < ld->sn; i++) {
		r = &ld->sv[i];
		if (r->live && r->kind == kind && r->parent == parent &&
		    strcasecmp(r->title, title) == 0) {
			if (kind == SEC_OVERRIDE)
				problem(ld, sec->line, true,
					"limit %s: duplicate network override '%s' "
					"(first at line %d)",
					ld->cur_limit ? cfg_title(ld->cur_limit) : "?",
					title, r->line);
			else
				problem(ld, sec->line, true,
					"duplicate %s '%s' (first at line %d)",
					kind_word(kind), title, r->line);
			break;
		}
	}

	/* libconfuse may have freed a section at this address: forget it */
	for (i = 0; i < ld->sn; i++)
		if (ld->sv[i].sec == sec || ld->sv[i].parent == sec)
			ld->sv[i].live = false;
	for (i = 0; i < ld->vn; i++)
		if (ld->vv[i].sec == sec)
			ld->vv[i].sec = NULL;

	r = grow(ld, ld->sv, &ld->scap, ld->sn, sizeof(*ld->sv));
	if (r == NULL)
		return 0;
	ld->sv = r;
	r = &ld->sv[ld->sn];
	r->title = strdup(title);
	if (r->title == NULL) {
		ld->oom = true;
		return 0;
	}
	r->sec = sec;
	r->parent = parent;
	r->kind = kind;
	r->line = sec->line;
	r->live = true;
	ld->sn++;
	if (kind == SEC_LIMIT)
		ld->cur_limit = sec;
	return 0;
}

/* libconfuse's own messages (syntax, unknown option, bad number ...) */
static void cb_error(cfg_t *sec, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

static void cb_error(cfg_t *sec, const char *fmt, va_list ap)
{
	struct load *ld = load_cur;
	char buf[MSG_MAX], where[2 * NAME_MAX_LEN + DOMAIN_MAX_LEN + 32] = "";
	const char *name = sec ? cfg_name(sec) : NULL;
	const char *title = sec ? cfg_title(sec) : NULL;
	const struct sec_rec *r;

	if (ld == NULL)
		return;
	if (strcmp(fmt, "no such option '%s'") == 0)
		fmt = "unknown option '%s'"; /* the words Postfix uses */
	vsnprintf(buf, sizeof(buf), fmt, ap);
	if (name != NULL && strcmp(name, "root") != 0) {
		r = sec_find(ld, sec);
		if (r != NULL && r->kind == SEC_OVERRIDE && r->parent != NULL)
			snprintf(where, sizeof(where), "limit %s: network %s: ",
				 cfg_title(r->parent), title ? title : "");
		else
			snprintf(where, sizeof(where), "%s%s%s: ", name, title ? " " : "",
				 title ? title : "");
	}
	problem(ld, sec ? sec->line : 0, true, "%s%s", where, buf);
}

/* set the callbacks on every option, templates and sections made so far */
static void hook_opts(cfg_opt_t *opts)
{
	for (cfg_opt_t *o = opts; o->name != NULL; o++) {
		switch (o->type) {
		case CFGT_SEC:
			if (o->subopts != NULL)
				hook_opts(o->subopts);
			for (unsigned i = 0; i < o->nvalues; i++)
				hook_opts(o->values[i]->section->opts);
			break;
		case CFGT_INT:
		case CFGT_FLOAT:
		case CFGT_BOOL:
		case CFGT_STR:
			o->parsecb = o->name[0] == '|' ? cb_open : cb_value;
			break;
		default:
			break;
		}
	}
}

/* ------------------------------------------------------------- checks */

static char *dup_str(struct load *ld, const char *s)
{
	char *d = strdup(s != NULL ? s : "");

	if (d == NULL)
		ld->oom = true;
	return d;
}

static int word_index(const char *const *words, const char *w)
{
	for (int i = 0; words[i] != NULL; i++)
		if (strcasecmp(words[i], w) == 0)
			return i;
	return -1;
}

static void word_list(const char *const *words, char *buf, size_t size)
{
	size_t used = 0;

	buf[0] = '\0';
	for (int i = 0; words[i] != NULL && used < size; i++) {
		int n = snprintf(buf + used, size - used, "%s%s",
				 i == 0 ? "" : words[i + 1] == NULL ? " or " : ", ", words[i]);

		if (n < 0)
			break;
		used += (size_t)n;
	}
}

/* an enum option: its index in WORDS, DEF (and an error) when not one of them */
static int get_word(struct load *ld, cfg_t *sec, const char *pfx, const char *name,
		    const char *const *words, int def)
{
	const char *v = cfg_getstr(sec, name);
	char list[128];
	int i;

	if (v == NULL)
		return def;
	i = word_index(words, v);
	if (i >= 0)
		return i;
	word_list(words, list, sizeof(list));
	problem(ld, value_line(ld, sec, name, 0), true, "%s%s: '%s' is not %s", pfx, name,
		v, list);
	return def;
}

/* an integer option that must lie within MIN..MAX */
static long get_int(struct load *ld, cfg_t *sec, const char *pfx, const char *name,
		    long min, long max)
{
	long v = cfg_getint(sec, name);
	int line;

	if (v >= min && v <= max)
		return v;
	line = value_line(ld, sec, name, 0);
	if (v < 0 && min == 0)
		problem(ld, line, true, "%s%s = %ld: must not be negative (range 0..%ld)", pfx,
			name, v, max);
	else
		problem(ld, line, true, "%s%s = %ld: out of range %ld..%ld", pfx, name, v,
			min, max);
	return v < min ? min : max;
}

static char *get_str(struct load *ld, cfg_t *sec, const char *name)
{
	return dup_str(ld, cfg_getstr(sec, name));
}

static void lower_ascii(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

static bool has_8bit(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return true;
	return false;
}

/* host name syntax: labels of letters, digits, '-' and '_', 1..63 long */
static bool hostname_ok(const char *s, bool wildcard_ok)
{
	size_t len = strlen(s);
	size_t label = 0;

	if (len == 0 || len > DOMAIN_MAX_LEN)
		return false;
	if (wildcard_ok && s[0] == '*' && s[1] == '.')
		s += 2;
	if (*s == '\0')
		return false;
	for (; *s; s++) {
		if (*s == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!(isalnum((unsigned char)*s) || *s == '-' || *s == '_'))
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0;
}

/*
 * A domain (or, with WILDCARD_OK, an MX pattern "*.google.com") as the
 * rest of the milter sees domains: lowercase A-labels without a trailing
 * dot. NULL and *WHY when it is unusable (*WHY NULL: out of memory).
 */
static char *domain_normalize(const char *in, bool wildcard_ok, const char **why)
{
	const char *prefix = "";
	char *d, *alabel = NULL, *out;
	size_t len;
	int rc;

	*why = "not a valid domain name";
	if (wildcard_ok && strncmp(in, "*.", 2) == 0) {
		prefix = "*.";
		in += 2;
	}
	d = strdup(in);
	if (d == NULL) {
		*why = NULL;
		return NULL;
	}
	len = strlen(d);
	if (len > 0 && d[len - 1] == '.')
		d[--len] = '\0';
	if (has_8bit(d)) {
		rc = idn2_to_ascii_8z(d, &alabel, IDN2_NONTRANSITIONAL);
		if (rc != IDN2_OK) {
			idn2_free(alabel);
			alabel = NULL;
			rc = idn2_to_ascii_8z(d, &alabel, IDN2_TRANSITIONAL);
		}
		free(d);
		if (rc != IDN2_OK) {
			idn2_free(alabel);
			*why = "not a valid internationalised domain name";
			return NULL;
		}
		d = strdup(alabel);
		idn2_free(alabel);
		if (d == NULL) {
			*why = NULL;
			return NULL;
		}
	}
	lower_ascii(d);
	if (asprintf(&out, "%s%s", prefix, d) < 0) {
		free(d);
		*why = NULL;
		return NULL;
	}
	free(d);
	if (!hostname_ok(out, wildcard_ok)) {
		free(out);
		return NULL;
	}
	return out;
}

/* DOMAIN is NAME or a subdomain of NAME */
static bool domain_within(const char *domain, const char *name)
{
	size_t dl = strlen(domain), nl = strlen(name);

	if (dl == nl)
		return strcmp(domain, name) == 0;
	return dl > nl && domain[dl - nl - 1] == '.' && strcmp(domain + dl - nl, name) == 0;
}

/* could be a registrable domain: dotted, letters in the last label */
static bool plausible_domain(const char *s)
{
	const char *tld = strrchr(s, '.');

	if (tld == NULL || !hostname_ok(s, false) || strchr(s, '_') != NULL)
		return false;
	tld++;
	if (strncmp(tld, "xn--", 4) == 0)
		return strlen(tld) > 4;
	if (strlen(tld) < 2)
		return false;
	for (const char *p = tld; *p; p++)
		if (!isalpha((unsigned char)*p))
			return false;
	return true;
}

/* network and limit names end up in Redis keys and log lines */
static bool name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > NAME_MAX_LEN)
		return false;
	for (; *s; s++)
		if (!(isalnum((unsigned char)*s) || *s == '.' || *s == '-' || *s == '_'))
			return false;
	return true;
}

/* "0660" -> 0660; -1 when not an octal mode */
static int parse_mode(const char *s)
{
	long v = 0;

	if (*s == '\0' || strlen(s) > 4)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '7')
			return -1;
		v = v * 8 + (*s - '0');
	}
	return v <= 0777 ? (int)v : -1;
}

/*
 * A libmilter connection spec, as libmilter reads it: "unix:PATH" or
 * "local:PATH"; "inet:PORT@HOST" or "inet6:PORT@HOST", HOST a name, an
 * address or "[ADDRESS]". libmilter binds "inet:PORT" without a host to
 * every interface (INADDR_ANY, in6addr_any). The milter protocol has no
 * authentication: whoever reaches the socket can claim any SMTP AUTH
 * login and client address and spend any sender's budget. So the host
 * must be written out: @127.0.0.1 or a private address, or @0.0.0.0 /
 * @:: for a deliberate choice of every interface. A unix socket needs an
 * absolute path: the daemon changes to / when it detaches, and removes
 * the socket by that path when it stops.
 * NULL when fine, else what is wrong (in BUF, or a constant).
 */
static const char *socket_problem(const char *s, char *buf, size_t size)
{
	const char *rest, *at;
	bool v6;
	long port = 0;

	if (strncmp(s, "unix:", 5) == 0 || strncmp(s, "local:", 6) == 0) {
		rest = strchr(s, ':') + 1;
		if (*rest == '\0')
			return "needs a path after the colon";
		if (*rest != '/')
			return "the path must be absolute (the daemon changes to / when it "
			       "detaches), e.g. unix:/var/spool/postfix/outbound-milter/milter.sock";
		return NULL;
	}
	if (strncmp(s, "inet:", 5) == 0) {
		rest = s + 5;
		v6 = false;
	} else if (strncmp(s, "inet6:", 6) == 0) {
		rest = s + 6;
		v6 = true;
	} else {
		return "must start with unix:, local:, inet: or inet6: "
		       "(e.g. unix:/var/spool/postfix/outbound-milter/milter.sock or inet:10025@127.0.0.1)";
	}
	at = strchr(rest, '@');
	if (rest == at || *rest == '\0')
		return "needs a port: inet:PORT@HOST";
	for (const char *p = rest; p != (at ? at : rest + strlen(rest)); p++) {
		if (!isdigit((unsigned char)*p))
			return "the port must be a number: inet:PORT@HOST";
		port = port * 10 + (*p - '0');
		if (port > 65535)
			break;
	}
	if (port < 1 || port > 65535)
		return "port out of range 1..65535";
	if (at == NULL) {
		if (v6)
			snprintf(buf, size,
				 "no host: libmilter would listen on every interface, and "
				 "whoever reaches a milter socket can claim any SMTP AUTH login "
				 "and spend any sender's limits; write inet6:%ld@::1 (loopback) "
				 "or inet6:%ld@ADDRESS of a private interface and firewall the "
				 "port (inet6:%ld@:: if every interface is really meant)",
				 port, port, port);
		else
			snprintf(buf, size,
				 "no host: libmilter would listen on every interface, and "
				 "whoever reaches a milter socket can claim any SMTP AUTH login "
				 "and spend any sender's limits; write inet:%ld@127.0.0.1 "
				 "(loopback) or inet:%ld@ADDRESS of a private interface and "
				 "firewall the port (inet:%ld@0.0.0.0 if every interface is "
				 "really meant)", port, port, port);
		return buf;
	}
	if (at[1] == '\0')
		return "needs a host after '@'";
	for (const char *p = at + 1; *p; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
			return "the host must be a name or an address without spaces";
	return NULL;
}

/* a header field name (RFC 5322 ftext) */
static bool header_name_ok(const char *s)
{
	if (*s == '\0' || strlen(s) > 76)
		return false;
	for (; *s; s++)
		if (*s < 33 || *s > 126 || *s == ':')
			return false;
	return true;
}

/* ------------------------------------------------------------- building */

static bool strlist_add(struct load *ld, struct strlist *l, char *s)
{
	char **v;

	if (s == NULL)
		return false;
	v = realloc(l->v, (l->n + 1) * sizeof(*l->v));
	if (v == NULL) {
		free(s);
		ld->oom = true;
		return false;
	}
	l->v = v;
	l->v[l->n++] = s;
	return true;
}

static void strlist_free(struct strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* plain strings, non-empty */
static void get_strings(struct load *ld, cfg_t *sec, const char *pfx, const char *name,
			struct strlist *out)
{
	unsigned n = cfg_size(sec, name);

	for (unsigned i = 0; i < n; i++) {
		const char *v = cfg_getnstr(sec, name, i);

		if (v == NULL || *v == '\0') {
			problem(ld, value_line(ld, sec, name, i), true, "%s%s: empty entry",
				pfx, name);
			continue;
		}
		strlist_add(ld, out, dup_str(ld, v));
	}
}

/*
 * Domains (or MX patterns): normalised, duplicates dropped with a warning.
 * With SRC, *SRC gets for each entry of OUT its index in the option (the
 * caller frees it).
 */
static void get_domains(struct load *ld, cfg_t *sec, const char *pfx, const char *name,
			bool wildcard_ok, struct strlist *out, unsigned **src)
{
	unsigned n = cfg_size(sec, name);

	if (src != NULL) {
		*src = calloc(n ? n : 1, sizeof(**src));
		if (*src == NULL) {
			ld->oom = true;
			return;
		}
	}
	for (unsigned i = 0; i < n; i++) {
		const char *v = cfg_getnstr(sec, name, i);
		const char *why;
		char *d = domain_normalize(v ? v : "", wildcard_ok, &why);

		if (d == NULL) {
			if (why == NULL)
				ld->oom = true;
			else
				problem(ld, value_line(ld, sec, name, i), true, "%s%s: '%s': %s",
					pfx, name, v ? v : "", why);
			continue;
		}
		if (strlist_contains(out, d)) {
			problem(ld, value_line(ld, sec, name, i), false,
				"%s%s: '%s' is listed twice", pfx, name, d);
			free(d);
			continue;
		}
		if (src != NULL)
			(*src)[out->n] = i;
		strlist_add(ld, out, d);
	}
}

/* "user@domain", "domain" or "@domain": domain part normalised, all lowercase */
static void get_senders(struct load *ld, cfg_t *sec, const char *name, struct strlist *out)
{
	unsigned n = cfg_size(sec, name);

	for (unsigned i = 0; i < n; i++) {
		const char *v = cfg_getnstr(sec, name, i) ? cfg_getnstr(sec, name, i) : "";
		const char *at = strrchr(v, '@');
		const char *dom = at ? at + 1 : v;
		const char *why;
		char *d, *s;
		int len = at ? (int)(at - v) : 0;

		d = domain_normalize(dom, false, &why);
		if (d == NULL) {
			if (why == NULL)
				ld->oom = true;
			else
				problem(ld, value_line(ld, sec, name, i), true,
					"%s: '%s': bad domain: %s", name, v, why);
			continue;
		}
		if (at != NULL && asprintf(&s, "%.*s@%s", len, v, d) >= 0) {
			lower_ascii(s);
			free(d);
			d = s;
		} else if (at != NULL) {
			free(d);
			ld->oom = true;
			continue;
		}
		strlist_add(ld, out, d);
	}
}

static void get_cidrs(struct load *ld, cfg_t *sec, const char *name, struct cidr_list *out)
{
	unsigned n = cfg_size(sec, name);

	if (n == 0)
		return;
	out->v = calloc(n, sizeof(*out->v));
	if (out->v == NULL) {
		ld->oom = true;
		return;
	}
	for (unsigned i = 0; i < n; i++) {
		const char *v = cfg_getnstr(sec, name, i);

		if (v == NULL || cidr_parse(v, &out->v[out->n]) != 0) {
			problem(ld, value_line(ld, sec, name, i), true,
				"%s: '%s' is not an IPv4/IPv6 address or CIDR block", name,
				v ? v : "");
			continue;
		}
		out->n++;
	}
}

/*
 * A Redis password file (password_file, readonly_password_file) must have
 * an absolute path (the daemon changes to / when it detaches), be a
 * regular file and be closed to other users: a password everybody can
 * read protects nothing, so such a file is refused rather than used.
 * OPEN: it must also be readable now, by whoever loads the configuration
 * (at a reload that is the unprivileged user). A file that is not opened
 * is only looked at, and one that cannot even be looked at (a directory
 * closed to this user) is left to whoever opens it.
 */
static void check_password_file(struct load *ld, cfg_t *sec, const char *name,
				const char *path, bool open_it)
{
	int line = value_line(ld, sec, name, 0);
	struct stat st;
	int fd = -1, rc;

	if (path == NULL || path[0] == '\0')
		return;
	if (path[0] != '/') {
		problem(ld, line, true, "redis: %s '%s' must be an absolute path", name, path);
		return;
	}
	if (open_it) {
		fd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
		rc = fd < 0 ? -1 : fstat(fd, &st);
	} else {
		rc = stat(path, &st);
		if (rc != 0 && errno == EACCES)
			return;
	}
	if (rc != 0)
		problem(ld, line, true, "redis: %s %s: %s", name, path, strerror(errno));
	else if (!S_ISREG(st.st_mode))
		problem(ld, line, true, "redis: %s %s is not a regular file", name, path);
	else if ((st.st_mode & (S_IROTH | S_IWOTH)) != 0)
		problem(ld, line, true, "redis: %s %s has mode %04o: other users "
			"can read or change the password (chmod o-rw)", name, path,
			(unsigned)(st.st_mode & 07777));
	if (fd >= 0)
		close(fd);
}

/*
 * The read-only credentials: the file is only looked at here, the daemon
 * never reads it (it may well be unable to: 0640 root:adm). A user
 * without a password would be ignored without a word, so it is an error.
 */
static void check_readonly(struct load *ld, cfg_t *sec, const struct redis_conf *r)
{
	check_password_file(ld, sec, "readonly_password_file", r->readonly_password_file, false);
	if (r->readonly_user != NULL && r->readonly_user[0] != '\0' &&
	    r->readonly_password_file != NULL && r->readonly_password_file[0] == '\0')
		problem(ld, value_line(ld, sec, "readonly_user", 0), true,
			"redis: readonly_user is set but readonly_password_file is not");
}

static void build_redis(struct load *ld, cfg_t *sec, struct redis_conf *r)
{
	const char *pfx = "redis: ";

	r->host = get_str(ld, sec, "host");
	r->port = (int)get_int(ld, sec, pfx, "port", 1, 65535);
	r->socket = get_str(ld, sec, "socket");
	r->user = get_str(ld, sec, "user");
	r->password_file = get_str(ld, sec, "password_file");
	check_password_file(ld, sec, "password_file", r->password_file,
			    !(ld->flags & CONFIG_CREDENTIALS_UNOPENED));
	r->readonly_user = get_str(ld, sec, "readonly_user");
	r->readonly_password_file = get_str(ld, sec, "readonly_password_file");
	check_readonly(ld, sec, r);
	r->db = (int)get_int(ld, sec, pfx, "db", 0, REDIS_DB_MAX);
	r->prefix = get_str(ld, sec, "prefix");
	r->timeout_ms = (int)get_int(ld, sec, pfx, "timeout_ms", 1, 60000);
	r->on_error = get_word(ld, sec, pfx, "on_error", on_error_words, ON_ERROR_ACCEPT);

	if (r->prefix != NULL && r->prefix[0] == '\0')
		problem(ld, value_line(ld, sec, "prefix", 0), true,
			"redis: prefix must not be empty");
	else if (r->prefix != NULL && strpbrk(r->prefix, "{} \t\r\n") != NULL)
		problem(ld, value_line(ld, sec, "prefix", 0), true,
			"redis: prefix '%s' must not contain braces or white space", r->prefix);
	if (r->host != NULL && r->socket != NULL && r->host[0] == '\0' && r->socket[0] == '\0')
		problem(ld, value_line(ld, sec, "host", 0), true,
			"redis: set host or socket");
}

static void build_classify(struct load *ld, cfg_t *sec, struct classify_conf *c)
{
	const char *pfx = "classify: ";
	double r = cfg_getfloat(sec, "min_known_ratio");

	c->personal_max_recipients =
		get_int(ld, sec, pfx, "personal_max_recipients", 0, RECIPIENTS_MAX);
	/* the sender's velocity stops counting at VELOCITY_CAP: that value never triggers */
	c->personal_max_hourly = get_int(ld, sec, pfx, "personal_max_hourly", 0, VELOCITY_CAP);
	if (!(r >= 0.0 && r <= 1.0))
		problem(ld, value_line(ld, sec, "min_known_ratio", 0), true,
			"classify: min_known_ratio = %g: out of range 0..1", r);
	c->min_known_ratio = r;
	c->require_unsubscribe = cfg_getbool(sec, "require_unsubscribe");
	c->require_aligned_from = cfg_getbool(sec, "require_aligned_from");
	c->header = get_str(ld, sec, "header");
	if (c->header != NULL && !header_name_ok(c->header))
		problem(ld, value_line(ld, sec, "header", 0), true,
			"classify: header '%s' is not a valid header field name", c->header);
	c->add_header = cfg_getbool(sec, "add_header");
	c->header_detail = cfg_getbool(sec, "header_detail");
}

static void build_classes(struct load *ld, cfg_t *root, struct config *c)
{
	unsigned n = cfg_size(root, "class");

	for (int k = 0; k < CLASS_COUNT; k++)
		c->class_action[k] = class_default_action[k];
	for (unsigned i = 0; i < n; i++) {
		cfg_t *sec = cfg_getnsec(root, "class", i);
		const char *title = cfg_title(sec);
		int k = word_index(class_words, title);
		char pfx[96], list[96];

		if (k < 0) {
			word_list(class_words, list, sizeof(list));
			problem(ld, sec_line(ld, sec), true,
				"class '%s': unknown class (the classes are %s)", title, list);
			continue;
		}
		snprintf(pfx, sizeof(pfx), "class %s: ", class_words[k]);
		c->class_action[k] = get_word(ld, sec, pfx, "action", action_words,
					      class_default_action[k]);
	}
}

static void build_networks(struct load *ld, cfg_t *root, struct config *c)
{
	unsigned n = cfg_size(root, "network");

	if (n == 0)
		return;
	c->networks = calloc(n, sizeof(*c->networks));
	if (c->networks == NULL) {
		ld->oom = true;
		return;
	}
	for (unsigned i = 0; i < n; i++) {
		cfg_t *sec = cfg_getnsec(root, "network", i);
		struct network_def *net = &c->networks[c->n_networks++];
		char pfx[NAME_MAX_LEN + 64];
		unsigned *src = NULL;

		net->name = dup_str(ld, cfg_title(sec));
		if (net->name == NULL)
			return;
		lower_ascii(net->name);
		snprintf(pfx, sizeof(pfx), "network %s: ", net->name);
		if (!name_ok(net->name))
			problem(ld, sec_line(ld, sec), true,
				"network '%s': a name is 1..%d letters, digits, '.', '-' or '_'",
				net->name, NAME_MAX_LEN);
		else if (strcmp(net->name, "invalid") == 0)
			problem(ld, sec_line(ld, sec), true,
				"network 'invalid' is reserved for addresses without a usable domain");
		get_domains(ld, sec, pfx, "domains", false, &net->domains, &src);
		get_domains(ld, sec, pfx, "mx", true, &net->mx, NULL);
		if (net->domains.n == 0 && net->mx.n == 0)
			problem(ld, sec_line(ld, sec), false,
				"network %s: neither domains nor mx: no recipient belongs to it",
				net->name);

		/* a domain belongs to one network only */
		for (size_t d = 0; d < net->domains.n; d++) {
			for (size_t j = 0; j + 1 < c->n_networks; j++) {
				if (!strlist_contains(&c->networks[j].domains, net->domains.v[d]))
					continue;
				problem(ld, src ? value_line(ld, sec, "domains", src[d]) : 0, true,
					"network %s: domain '%s' is already in network %s",
					net->name, net->domains.v[d], c->networks[j].name);
			}
		}
		free(src);
	}
}

static const struct network_def *network_find(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->n_networks; i++)
		if (c->networks[i].name != NULL && strcmp(c->networks[i].name, name) == 0)
			return &c->networks[i];
	return NULL;
}

/* the configured network whose domains hold DOMAIN or a parent of it */
static const struct network_def *network_owning(const struct config *c, const char *domain)
{
	for (size_t i = 0; i < c->n_networks; i++)
		for (size_t k = 0; k < c->networks[i].domains.n; k++)
			if (domain_within(domain, c->networks[i].domains.v[k]))
				return &c->networks[i];
	return NULL;
}

static void check_burst(struct load *ld, const char *pfx, long hourly, long burst, int line)
{
	if (burst > hourly)
		problem(ld, line, false,
			"%sburst %ld is larger than hourly %ld: the burst limit can never be reached",
			pfx, burst, hourly);
}

static void build_overrides(struct load *ld, cfg_t *lsec, const char *rule_pfx,
			    const struct config *c, struct limit_rule *rule)
{
	unsigned n = cfg_size(lsec, "network");

	if (n == 0)
		return;
	rule->overrides = calloc(n, sizeof(*rule->overrides));
	if (rule->overrides == NULL) {
		ld->oom = true;
		return;
	}
	for (unsigned i = 0; i < n; i++) {
		cfg_t *sec = cfg_getnsec(lsec, "network", i);
		struct limit_override *o = &rule->overrides[rule->n_overrides++];
		int line = sec_line(ld, sec);
		const struct network_def *owner;
		char pfx[2 * NAME_MAX_LEN + DOMAIN_MAX_LEN + 32];

		o->network = dup_str(ld, cfg_title(sec));
		if (o->network == NULL)
			return;
		lower_ascii(o->network);
		snprintf(pfx, sizeof(pfx), "%snetwork %s: ", rule_pfx, o->network);
		o->hourly = rule->hourly;
		o->burst = rule->burst;
		if (cfg_size(sec, "hourly") > 0)
			o->hourly = get_int(ld, sec, pfx, "hourly", 0, LIMIT_UNITS_MAX);
		if (cfg_size(sec, "burst") > 0)
			o->burst = get_int(ld, sec, pfx, "burst", 0, LIMIT_UNITS_MAX);
		check_burst(ld, pfx, o->hourly, o->burst,
			    first_line(value_line(ld, sec, "burst", 0),
				       value_line(ld, sec, "hourly", 0), line));

		if (network_find(c, o->network) != NULL || strcmp(o->network, "invalid") == 0)
			continue;
		if (!plausible_domain(o->network))
			problem(ld, line, false,
				"%s'%s' is neither a configured network nor a domain: "
				"this override never applies", rule_pfx, o->network);
		else if ((owner = network_owning(c, o->network)) != NULL)
			problem(ld, line, false,
				"%s'%s' belongs to network %s: this override never applies "
				"(write network %s)", rule_pfx, o->network, owner->name,
				owner->name);
	}
}

static void build_limits(struct load *ld, cfg_t *root, struct config *c)
{
	unsigned n = cfg_size(root, "limit");

	if (n == 0) {
		problem(ld, 0, false, "no limit section: nothing is rate limited");
		return;
	}
	if (n > LIMITS_MAX) {
		problem(ld, sec_line(ld, cfg_getnsec(root, "limit", LIMITS_MAX)), true,
			"at most %d limit sections (this is number %d)", LIMITS_MAX,
			LIMITS_MAX + 1);
		return;
	}
	c->limits = calloc(n, sizeof(*c->limits));
	if (c->limits == NULL) {
		ld->oom = true;
		return;
	}
	for (unsigned i = 0; i < n; i++) {
		cfg_t *sec = cfg_getnsec(root, "limit", i);
		struct limit_rule *rule = &c->limits[c->n_limits++];
		int line = sec_line(ld, sec);
		unsigned nc = cfg_size(sec, "classes");
		char pfx[NAME_MAX_LEN + 16];

		rule->name = dup_str(ld, cfg_title(sec));
		if (rule->name == NULL)
			return;
		snprintf(pfx, sizeof(pfx), "limit %s: ", rule->name);
		if (!name_ok(rule->name))
			problem(ld, line, true,
				"limit '%s': a name is 1..%d letters, digits, '.', '-' or '_'",
				rule->name, NAME_MAX_LEN);
		rule->scope = get_word(ld, sec, pfx, "scope", scope_words, SCOPE_SENDER);
		rule->hourly = get_int(ld, sec, pfx, "hourly", 0, LIMIT_UNITS_MAX);
		rule->burst = get_int(ld, sec, pfx, "burst", 0, LIMIT_UNITS_MAX);
		rule->burst_window = get_int(ld, sec, pfx, "burst_window", 1, 3600);
		rule->count = get_word(ld, sec, pfx, "count", count_words, COUNT_RECIPIENTS);

		rule->classes = 0;
		for (unsigned k = 0; k < nc; k++) {
			const char *w = cfg_getnstr(sec, "classes", k);
			int ci = word_index(class_words, w);
			char list[96];

			if (ci < 0) {
				word_list(class_words, list, sizeof(list));
				problem(ld, value_line(ld, sec, "classes", k), true,
					"%sclasses: '%s' is not %s", pfx, w, list);
				continue;
			}
			rule->classes |= 1u << ci;
		}
		if (nc == 0)
			problem(ld, line, true,
				"%sclasses = {}: the rule can never match any message", pfx);

		check_burst(ld, pfx, rule->hourly, rule->burst,
			    first_line(value_line(ld, sec, "burst", 0),
				       value_line(ld, sec, "hourly", 0), line));
		build_overrides(ld, sec, pfx, c, rule);
	}
}

static void build_root(struct load *ld, cfg_t *root, struct config *c)
{
	const char *why;
	char *mode, why_buf[512];

	c->socket = get_str(ld, root, "socket");
	if (c->socket != NULL &&
	    (why = socket_problem(c->socket, why_buf, sizeof(why_buf))) != NULL)
		problem(ld, value_line(ld, root, "socket", 0), true, "socket '%s': %s",
			c->socket, why);
	mode = cfg_getstr(root, "socket_mode");
	c->socket_mode = parse_mode(mode);
	if (c->socket_mode < 0) {
		problem(ld, value_line(ld, root, "socket_mode", 0), true,
			"socket_mode '%s': not an octal mode like \"0660\"", mode);
		c->socket_mode = 0660;
	}
	c->socket_group = get_str(ld, root, "socket_group");
	c->pid_file = get_str(ld, root, "pid_file");
	if (c->pid_file != NULL && c->pid_file[0] != '\0' && c->pid_file[0] != '/')
		problem(ld, value_line(ld, root, "pid_file", 0), true,
			"pid_file '%s': the path must be absolute (the daemon changes to / "
			"when it detaches)", c->pid_file);
	c->mode = get_word(ld, root, "", "mode", mode_words, MODE_ENFORCE);
	c->user = get_str(ld, root, "user");
	c->group = get_str(ld, root, "group");

	get_strings(ld, root, "", "outbound_daemons", &c->outbound_daemons);
	get_cidrs(ld, root, "outbound_networks", &c->outbound_networks);
	get_domains(ld, root, "", "local_domains", false, &c->local_domains, NULL);
	get_senders(ld, root, "exempt_senders", &c->exempt_senders);
	get_cidrs(ld, root, "exempt_clients", &c->exempt_clients);

	c->subaddress_separator = get_str(ld, root, "subaddress_separator");
	if (c->subaddress_separator != NULL) {
		for (const char *p = c->subaddress_separator; *p; p++) {
			if (*p == '@' || *p <= ' ' || *p > '~') {
				problem(ld, value_line(ld, root, "subaddress_separator", 0), true,
					"subaddress_separator '%s': only printable characters "
					"other than '@' and space", c->subaddress_separator);
				break;
			}
		}
	}
	c->learn_inbound = cfg_getbool(root, "learn_inbound");
	c->learn_outbound = cfg_getbool(root, "learn_outbound");
	c->relationship_ttl = get_int(ld, root, "", "relationship_ttl", 1, RELATIONSHIP_TTL_MAX);
	c->relationship_max = get_int(ld, root, "", "relationship_max", 1, RELATIONSHIPS_MAX);
	c->mx_grouping = cfg_getbool(root, "mx_grouping");
	/* MX_CACHE_TTL_MAX (mx.h): 7 days, the cap of common resolvers */
	c->mx_cache_ttl = get_int(ld, root, "", "mx_cache_ttl", 1, MX_CACHE_TTL_MAX);
	c->dns_timeout_ms = (int)get_int(ld, root, "", "dns_timeout_ms", 1, 5000);
	c->dns_server = get_str(ld, root, "dns_server");
	if (c->dns_server != NULL) {
		char addr[INET6_ADDRSTRLEN + 1];
		int port;

		if (mx_server_parse(c->dns_server, addr, sizeof(addr), &port) != 0)
			problem(ld, value_line(ld, root, "dns_server", 0), true,
				"dns_server '%s': not an IP address, IP:PORT or [IPv6]:PORT "
				"(\"\" for the resolvers of /etc/resolv.conf)", c->dns_server);
	}
	c->reservation_ttl = get_int(ld, root, "", "reservation_ttl", 10, 3600);
	c->log_max_entries = get_int(ld, root, "", "log_max_entries", 0, LOG_ENTRIES_MAX);

	build_redis(ld, cfg_getsec(root, "redis"), &c->redis);
	build_classify(ld, cfg_getsec(root, "classify"), &c->classify);
	build_classes(ld, root, c);
	build_networks(ld, root, c);
	build_limits(ld, root, c);

	if (c->mx_grouping) {
		bool any = false;

		for (size_t i = 0; i < c->n_networks; i++)
			any = any || c->networks[i].mx.n > 0;
		if (!any)
			problem(ld, value_line(ld, root, "mx_grouping", 0), false,
				"mx_grouping = true but no network has mx patterns");
	}
}

/* ------------------------------------------------------------- load */

static int problem_cmp(const void *a, const void *b)
{
	const struct problem *x = a, *y = b;
	unsigned lx = x->line > 0 ? (unsigned)x->line : ~0U;
	unsigned ly = y->line > 0 ? (unsigned)y->line : ~0U;

	if (lx != ly)
		return lx < ly ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void load_finish(struct load *ld, config_report_fn report, void *arg)
{
	if (ld->pn > 1)
		qsort(ld->pv, ld->pn, sizeof(*ld->pv), problem_cmp);
	for (size_t i = 0; i < ld->pn; i++) {
		if (report != NULL)
			report(arg, ld->file, ld->pv[i].line, ld->pv[i].is_error,
			       ld->pv[i].text);
		free(ld->pv[i].text);
	}
	if (ld->oom && report != NULL)
		report(arg, ld->file, 0, true, "out of memory");
	free(ld->pv);
	for (size_t i = 0; i < ld->sn; i++)
		free(ld->sv[i].title);
	free(ld->sv);
	free(ld->vv);
}

/* can be part of an unquoted word in libconfuse's scanner */
static bool word_char(int ch)
{
	return ch != '\0' && strchr(" #\"'\t\n\r={}()+,*", ch) == NULL;
}

/* blank S[FROM..TO) but its newlines */
static void blank(char *s, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		if (s[i] != '\n')
			s[i] = ' ';
}

#define MAX_DEPTH 32

/*
 * Blank out comments (# ..., // ..., C comments) and ';' outside strings,
 * following the rules of libconfuse's scanner: '#' starts a comment
 * anywhere, a C comment and "//" only where a word starts. Also catch
 * what libconfuse would miss or report at the wrong place: an unterminated
 * string or comment, a '}' too many, a section never closed. False when
 * one of those was reported.
 */
static bool strip_comments(struct load *ld, char *s, size_t n)
{
	int open_line[MAX_DEPTH];
	int line = 1, depth = 0, start;
	size_t i = 0, k;

	while (i < n) {
		bool word_start = i == 0 || !word_char((unsigned char)s[i - 1]);

		if (s[i] == '\n') {
			line++;
			i++;
		} else if (s[i] == '"' || s[i] == '\'') {
			char q = s[i++];

			start = line;
			while (i < n && s[i] != q) {
				if (s[i] == '\\' && i + 1 < n)
					i++;
				if (s[i] == '\n')
					line++;
				i++;
			}
			if (i >= n) {
				problem(ld, start, true, "string never closed (missing %c)", q);
				return false;
			}
			i++;
		} else if (s[i] == '$' && i + 1 < n && s[i + 1] == '{') {
			while (i < n && s[i] != '}' && s[i] != '\n')
				i++; /* ${VARIABLE}: an environment variable */
			if (i < n && s[i] == '}')
				i++;
		} else if (s[i] == '#') {
			for (k = i; k < n && s[k] != '\n'; k++)
				;
			blank(s, i, k);
			i = k;
		} else if (word_start && s[i] == '/' && i + 1 < n && s[i + 1] == '*') {
			start = line;
			for (k = i + 2; k + 1 < n && !(s[k] == '*' && s[k + 1] == '/'); k++)
				if (s[k] == '\n')
					line++;
			if (k + 1 >= n) {
				problem(ld, start, true, "comment never closed (missing */)");
				return false;
			}
			blank(s, i, k + 2);
			i = k + 2;
		} else if (word_start && s[i] == '/' && i + 1 < n && s[i + 1] == '/') {
			for (k = i; k < n && s[k] != '\n'; k++)
				;
			blank(s, i, k);
			i = k;
		} else {
			if (s[i] == ';') {
				s[i] = ' ';
			} else if (s[i] == '{') {
				if (depth < MAX_DEPTH)
					open_line[depth] = line;
				depth++;
			} else if (s[i] == '}') {
				if (depth == 0) {
					problem(ld, line, true, "'}' without a matching '{'");
					return false;
				}
				depth--;
			}
			i++;
		}
	}
	if (depth > 0) {
		problem(ld, depth <= MAX_DEPTH ? open_line[depth - 1] : line, true,
			"'{' never closed (missing '}' before the end of the file)");
		return false;
	}
	return true;
}

#define CONFIG_MAX_BYTES (16u << 20)

/* the whole file, comments blanked; NULL after reporting why */
static char *read_file(struct load *ld, const char *file, size_t *len)
{
	FILE *fp = fopen(file, "r");
	char *buf = NULL, *p;
	size_t n = 0, cap = 0, got;
	int line = 1;

	if (fp == NULL) {
		problem(ld, 0, true, "cannot read the configuration: %s", strerror(errno));
		return NULL;
	}
	for (;;) {
		if (n == cap) {
			if (cap >= CONFIG_MAX_BYTES) {
				problem(ld, 0, true, "the file is larger than %u bytes",
					CONFIG_MAX_BYTES);
				goto fail;
			}
			cap = cap ? cap * 2 : 8192;
			p = realloc(buf, cap + 1);
			if (p == NULL) {
				ld->oom = true;
				goto fail;
			}
			buf = p;
		}
		got = fread(buf + n, 1, cap - n, fp);
		n += got;
		if (got == 0)
			break;
	}
	if (ferror(fp)) {
		problem(ld, 0, true, "cannot read the configuration: %s", strerror(errno));
		goto fail;
	}
	fclose(fp);
	if (buf == NULL && (buf = malloc(1)) == NULL) {
		ld->oom = true;
		return NULL;
	}
	buf[n] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (buf[i] == '\n')
			line++;
		else if (buf[i] == '\0') {
			problem(ld, line, true, "NUL byte in the file");
			free(buf);
			return NULL;
		}
	}
	if (!strip_comments(ld, buf, n)) {
		free(buf);
		return NULL;
	}
	*len = n;
	return buf;
fail:
	fclose(fp);
	free(buf);
	return NULL;
}

/* parse TEXT into ROOT; false on a syntax error (reported) */
static bool parse_text(struct load *ld, cfg_t *root, const char *file, char *text,
		       size_t len)
{
	FILE *fp;
	int rc;

	if (len == 0)
		return true;
	free(root->filename);
	root->filename = strdup(file); /* cfg_parse_fp() names it "FILE" otherwise */
	fp = fmemopen(text, len, "r");
	if (fp == NULL) {
		ld->oom = true;
		return false;
	}
	rc = cfg_parse_fp(root, fp);
	fclose(fp);
	if (rc != CFG_SUCCESS && ld->errors == 0)
		problem(ld, root->line, true, "syntax error");
	return rc == CFG_SUCCESS;
}

struct config *config_load(const char *file, config_report_fn report, void *arg)
{
	return config_load_flags(file, 0, report, arg);
}

struct config *config_load_flags(const char *file, unsigned flags, config_report_fn report,
				 void *arg)
{
	struct load ld = {.file = file, .flags = flags};
	struct config *c = NULL;
	cfg_t *root;
	char *text;
	size_t len = 0;

	if (file == NULL)
		return NULL;
	text = read_file(&ld, file, &len);
	if (text == NULL)
		goto done;

	pthread_mutex_lock(&load_lock);
	load_cur = &ld;
	root = cfg_init(root_opts, CFGF_NONE);
	if (root == NULL) {
		ld.oom = true;
	} else {
		cfg_set_error_function(root, cb_error);
		hook_opts(root->opts);
		if (parse_text(&ld, root, file, text, len)) {
			c = calloc(1, sizeof(*c));
			if (c == NULL) {
				ld.oom = true;
			} else {
				c->file = dup_str(&ld, file);
				build_root(&ld, root, c);
			}
		}
		cfg_free(root);
	}
	load_cur = NULL;
	pthread_mutex_unlock(&load_lock);
	free(text);

	if (c != NULL && (ld.errors > 0 || ld.oom)) {
		config_free(c);
		c = NULL;
	} else if (c != NULL) {
		c->refs = 1;
	}
done:
	if (c == NULL && ld.errors == 0)
		ld.oom = true; /* failed without saying why: only allocation can do that */
	load_finish(&ld, report, arg);
	return c;
}

void config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	free(cfg->file);
	free(cfg->socket);
	free(cfg->socket_group);
	free(cfg->pid_file);
	free(cfg->user);
	free(cfg->group);
	strlist_free(&cfg->outbound_daemons);
	free(cfg->outbound_networks.v);
	strlist_free(&cfg->local_domains);
	strlist_free(&cfg->exempt_senders);
	free(cfg->exempt_clients.v);
	free(cfg->subaddress_separator);
	free(cfg->dns_server);

	free(cfg->redis.host);
	free(cfg->redis.socket);
	free(cfg->redis.user);
	free(cfg->redis.password_file);
	free(cfg->redis.readonly_user);
	free(cfg->redis.readonly_password_file);
	free(cfg->redis.prefix);
	free(cfg->classify.header);

	for (size_t i = 0; i < cfg->n_networks; i++) {
		free(cfg->networks[i].name);
		strlist_free(&cfg->networks[i].domains);
		strlist_free(&cfg->networks[i].mx);
	}
	free(cfg->networks);
	for (size_t i = 0; i < cfg->n_limits; i++) {
		struct limit_rule *r = &cfg->limits[i];

		free(r->name);
		for (size_t k = 0; k < r->n_overrides; k++)
			free(r->overrides[k].network);
		free(r->overrides);
	}
	free(cfg->limits);
	free(cfg);
}

void config_report_stderr(void *arg, const char *file, int line, bool is_error,
			  const char *msg)
{
	(void)arg;
	if (line > 0)
		fprintf(stderr, "%s:%d: %s: %s\n", file, line, is_error ? "error" : "warning",
			msg);
	else
		fprintf(stderr, "%s: %s: %s\n", file, is_error ? "error" : "warning", msg);
}

/* ---------------------------------------------------- current snapshot */

static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static struct config *current;         /* under current_lock */
static unsigned long last_generation;  /* under current_lock */

void config_install(struct config *cfg)
{
	struct config *old;

	pthread_mutex_lock(&current_lock);
	if (cfg != NULL)
		cfg->generation = ++last_generation;
	old = current;
	current = cfg;
	pthread_mutex_unlock(&current_lock);
	config_release(old);
}

struct config *config_acquire(void)
{
	struct config *cfg;

	pthread_mutex_lock(&current_lock);
	cfg = current;
	if (cfg != NULL)
		cfg->refs++;
	pthread_mutex_unlock(&current_lock);
	return cfg;
}

void config_release(struct config *cfg)
{
	bool last;

	if (cfg == NULL)
		return;
	pthread_mutex_lock(&current_lock);
	last = --cfg->refs == 0;
	pthread_mutex_unlock(&current_lock);
	if (last)
		config_free(cfg);
}

/* ------------------------------------------------------------- helpers */

const char *class_name(enum msg_class c)
{
	return (unsigned)c < CLASS_COUNT ? class_words[c] : "unknown";
}

const char *action_name(enum class_action a)
{
	return (unsigned)a <= ACTION_REJECT ? action_words[a] : "unknown";
}

bool strlist_contains(const struct strlist *l, const char *s)
{
	if (l == NULL || s == NULL)
		return false;
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i], s) == 0)
			return true;
	return false;
}
