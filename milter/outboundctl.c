/*
 * outboundctl.c - the operations command line (SPEC section 2).
 *
 * Reads the daemon's configuration (-c FILE) to find Redis, the key prefix
 * and the sub-address separator, and works on the keys of doc/REDIS.md:
 * relationships and blocks through store.c, like the milter; counters,
 * windows and the decision log through opsread.c (stats, top, sender,
 * network, log, reset, metrics). Every address goes through
 * address_normalize with the configured separator, exactly as the milter
 * normalises it, so that Mixed-Case+tag@Example.COM and
 * mixed-case@example.com name the same key.
 *
 * Commands are rows of a table (words, operands, options, handler, help):
 * adding one is adding a row and its handler. Options may come before,
 * between or after the command words; "--" ends them. Output is a table or
 * a sentence for people, JSON (--json) for programs.
 *
 * "Now" is the clock, or OBM_NOW (epoch seconds) from the environment: the
 * tests fix the hour buckets and windows with it.
 *
 * Configuration errors are printed as FILE:LINE: error: ...; warnings are
 * left to `outbound-milter -t`. Exit status: 0 success, 1 usage or
 * configuration error, 2 when Redis cannot be reached (or fails a command).
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "address.h"
#include "config.h"
#include "network.h"
#include "opsread.h"
#include "ratelimit.h"
#include "store.h"

#ifndef OBM_VERSION
#define OBM_VERSION "unknown"
#endif

#define EXIT_USAGE 1
#define EXIT_REDIS 2

#define SENDER_MAX (ADDR_LOCAL_MAX + ADDR_DOMAIN_MAX + 2)
#define DEFAULT_REASON "blocked with outboundctl"
#define TTL_MAX_SECONDS (100LL * 365 * 86400)

/* options; the global ones are taken by every command */
enum {
	OPT_CONFIG = 1u << 0,
	OPT_JSON = 1u << 1,
	OPT_HELP = 1u << 2,
	OPT_VERSION = 1u << 3,
	OPT_REASON = 1u << 4,
	OPT_TTL = 1u << 5,
	OPT_HOURS = 1u << 6,
	OPT_INTERVAL = 1u << 7,
	OPT_NETWORK = 1u << 8,
	OPT_SENDER = 1u << 9,
	OPT_QUEUE_ID = 1u << 10,
	OPT_CLASS = 1u << 11,
	OPT_SINCE = 1u << 12,
	OPT_FOLLOW = 1u << 13,
	OPT_COUNT = 1u << 14,
};
#define OPT_GLOBAL (OPT_CONFIG | OPT_JSON | OPT_HELP | OPT_VERSION)

struct option_def {
	const char *name; /* long form, without "--" */
	char letter;      /* short form, 0 for none */
	bool has_arg;
	unsigned flag;
};

static const struct option_def option_defs[] = {
	{ "config", 'c', true, OPT_CONFIG },
	{ "json", 0, false, OPT_JSON },
	{ "help", 'h', false, OPT_HELP },
	{ "version", 'V', false, OPT_VERSION },
	{ "reason", 0, true, OPT_REASON },
	{ "ttl", 0, true, OPT_TTL },
	{ "hours", 0, true, OPT_HOURS },
	{ "interval", 0, true, OPT_INTERVAL },
	{ "network", 0, true, OPT_NETWORK },
	{ "sender", 0, true, OPT_SENDER },
	{ "queue-id", 0, true, OPT_QUEUE_ID },
	{ "class", 0, true, OPT_CLASS },
	{ "since", 0, true, OPT_SINCE },
	{ "follow", 'f', false, OPT_FOLLOW },
	{ "count", 'n', true, OPT_COUNT },
};
#define N_OPTIONS (sizeof(option_defs) / sizeof(option_defs[0]))

/* what one run was asked to do */
struct ctl {
	unsigned seen;           /* OPT_* given on the command line */
	const char *config_file;
	bool json;
	const char *reason;
	const char *ttl;
	const char *hours;
	const char *interval;
	const char *network;
	const char *sender;
	const char *qid;
	const char *cls;
	const char *since;
	const char *count;
	bool follow;
	long long now_ms;        /* the clock, or OBM_NOW */
	char **words;            /* the non-option arguments */
	int n_words;
	struct config *cfg;
};

struct command {
	const char *name;  /* command words: "block", "rel add" */
	const char *args;  /* the rest of its usage line */
	int min_args;      /* operands after the command words */
	int max_args;      /* -1: any number */
	unsigned opts;     /* options it takes besides the global ones */
	int (*run)(struct ctl *ctl, char **args, int n);
	const char *help;
};

static int cmd_rel_add(struct ctl *ctl, char **args, int n);
static int cmd_rel_del(struct ctl *ctl, char **args, int n);
static int cmd_rel_show(struct ctl *ctl, char **args, int n);
static int cmd_rel_import(struct ctl *ctl, char **args, int n);
static int cmd_block(struct ctl *ctl, char **args, int n);
static int cmd_unblock(struct ctl *ctl, char **args, int n);
static int cmd_stats(struct ctl *ctl, char **args, int n);
static int cmd_top(struct ctl *ctl, char **args, int n);
static int cmd_sender(struct ctl *ctl, char **args, int n);
static int cmd_network(struct ctl *ctl, char **args, int n);
static int cmd_log(struct ctl *ctl, char **args, int n);
static int cmd_reset(struct ctl *ctl, char **args, int n);
static int cmd_metrics(struct ctl *ctl, char **args, int n);

static const struct command commands[] = {
	{ "stats", "[--hours N]", 0, 0, OPT_HOURS, cmd_stats,
	  "classes, actions, networks (used/limit of\n"
	  "the busiest sender per rule), top senders;\n"
	  "N hour buckets added up (default 1: this\n"
	  "UTC hour)" },
	{ "top", "[--interval S]", 0, 0, OPT_INTERVAL, cmd_top,
	  "live view of the above, refreshed every S\n"
	  "seconds (default 2); q or Ctrl-C quits" },
	{ "sender", "ADDRESS", 1, 1, 0, cmd_sender,
	  "limits in use per network, velocity, class\n"
	  "counts (this hour, 24 h), block, last\n"
	  "decisions" },
	{ "network", "NAME", 1, 1, 0, cmd_network,
	  "usage of one network (or a domain's) by\n"
	  "its top 20 senders" },
	{ "log", "[--sender A] [--queue-id Q] [--class C] [--since T] [--follow] [--count N]",
	  0, 0, OPT_SENDER | OPT_QUEUE_ID | OPT_CLASS | OPT_SINCE | OPT_FOLLOW | OPT_COUNT,
	  cmd_log,
	  "decision log, newest last (default: last\n"
	  "20 entries); T: 2026-11-30T14:00:00Z,\n"
	  "epoch seconds or 15m, 2h ago; --follow\n"
	  "waits for more (with --json: one object\n"
	  "a line)" },
	{ "rel add", "SENDER RECIPIENT...", 2, -1, 0, cmd_rel_add,
	  "make RECIPIENTs known to SENDER (seen now)" },
	{ "rel del", "SENDER RECIPIENT...", 2, -1, 0, cmd_rel_del,
	  "forget those relationships" },
	{ "rel show", "SENDER", 1, 1, 0, cmd_rel_show,
	  "SENDER's relationships, newest first" },
	{ "rel import", "SENDER FILE", 2, 2, 0, cmd_rel_import,
	  "add FILE's addresses, one a line ('-':\n"
	  "stdin; '#' comments); bad lines are skipped" },
	{ "block", "ADDRESS [--reason R] [--ttl DURATION]", 1, 1, OPT_REASON | OPT_TTL,
	  cmd_block,
	  "freeze a sender on every MTA (its mail is\n"
	  "spam-risk); DURATION: 3600, 90s, 30m, 12h,\n"
	  "7d (default: until unblocked)" },
	{ "unblock", "ADDRESS", 1, 1, 0, cmd_unblock, "lift a block" },
	{ "reset", "ADDRESS [--network NAME]", 1, 1, OPT_NETWORK, cmd_reset,
	  "clear the sender's rate windows (every\n"
	  "network, or one)" },
	{ "metrics", "", 0, 0, 0, cmd_metrics,
	  "Prometheus text exposition; the *_hour\n"
	  "gauges count the current UTC hour bucket" },
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

/* ---- messages ------------------------------------------------------------- */

static void usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: outboundctl [-c FILE] [--json] COMMAND [ARGUMENTS]\n\nCommands:\n");
	for (i = 0; i < N_COMMANDS; i++) {
		const char *h = commands[i].help;
		int w = fprintf(f, "  %s %s", commands[i].name, commands[i].args);

		/* the help text in a second column, continued lines aligned */
		if (w > 34) {
			fputc('\n', f);
			w = 0;
		}
		fprintf(f, "%*s", 36 - w, "");
		for (; *h != '\0'; h++) {
			fputc(*h, f);
			if (*h == '\n')
				fprintf(f, "%36s", "");
		}
		fputc('\n', f);
	}
	fprintf(f, "\nOptions (before or after the command words):\n"
		   "  -c, --config FILE   configuration file, default\n"
		   "                      " OBM_DEFAULT_CONFIG "\n"
		   "      --json          output JSON\n"
		   "  -h, --help          show this help\n"
		   "  -V, --version       print the version\n"
		   "\nExit status: 0 success, 1 usage or configuration error,\n"
		   "2 Redis cannot be reached.\n");
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("outboundctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'outboundctl --help'.\n", stderr);
	return EXIT_USAGE;
}

static int redis_error(void)
{
	fprintf(stderr, "outboundctl: %s\n", store_last_error());
	return EXIT_REDIS;
}

/* redis_check - once the arguments are good: can Redis be reached? */
static int redis_check(const struct ctl *ctl)
{
	return store_ping(ctl->cfg) == STORE_OK ? 0 : redis_error();
}

static void out_of_memory(void)
{
	fprintf(stderr, "outboundctl: out of memory\n");
	exit(EXIT_FAILURE);
}

/* ---- JSON and text output ---------------------------------------------------- */

/* ---- arguments ------------------------------------------------------------- */

/*
 * normalize_sender - the store's name for SENDER: an address normalised as
 * the milter does; for blocks (LOGIN_OK) also an SMTP AUTH login name
 * without '@', lowercased, which is how the milter names authenticated
 * senders whose login is not an address.
 */
static bool normalize_sender(const struct ctl *ctl, const char *raw, bool login_ok, char *out,
			     size_t size)
{
	struct address a;
	size_t i;

	if (strchr(raw, '@') != NULL || !login_ok) {
		if (address_normalize(raw, ctl->cfg->subaddress_separator, &a) != ADDR_OK) {
			fprintf(stderr, "outboundctl: '%s' is not a valid address\n", raw);
			return false;
		}
		snprintf(out, size, "%s", a.full);
		return true;
	}
	if (raw[0] == '\0' || strlen(raw) >= size) {
		fprintf(stderr, "outboundctl: '%s' is neither an address nor a login name\n", raw);
		return false;
	}
	for (i = 0; raw[i] != '\0'; i++) {
		unsigned char c = (unsigned char)raw[i];

		if (c <= 0x20 || c == 0x7f || c == '<' || c == '>') {
			fprintf(stderr,
				"outboundctl: '%s' is neither an address nor a login name\n", raw);
			return false;
		}
		out[i] = (char)tolower(c);
	}
	out[i] = '\0';
	return true;
}

/* normalize_rcpt - RAW as the milter stores a recipient, malloc'd; NULL if invalid */
static char *normalize_rcpt(const struct ctl *ctl, const char *raw)
{
	struct address a;
	char *s;

	if (address_normalize(raw, ctl->cfg->subaddress_separator, &a) != ADDR_OK)
		return NULL;
	if ((s = strdup(a.full)) == NULL)
		out_of_memory();
	return s;
}

/*
 * parse_duration - "3600", "90s", "30m", "12h", "7d" into seconds (> 0);
 * -1 when not a duration
 */
static long parse_duration(const char *s)
{
	long long v = 0, unit = 1;
	const char *p = s;

	if (!isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++) {
		v = v * 10 + (*p - '0');
		if (v > TTL_MAX_SECONDS)
			return -1;
	}
	switch (*p) {
	case '\0':
		break;
	case 's':
		break;
	case 'm':
		unit = 60;
		break;
	case 'h':
		unit = 3600;
		break;
	case 'd':
		unit = 86400;
		break;
	case 'w':
		unit = 7 * 86400;
		break;
	default:
		return -1;
	}
	if (*p != '\0' && p[1] != '\0')
		return -1;
	v *= unit;
	if (v <= 0 || v > TTL_MAX_SECONDS || v > LONG_MAX)
		return -1;
	return (long)v;
}

/* a list of normalised recipients, sorted and without duplicates once done */
struct rcpt_list {
	char **v;
	size_t n, cap;
};

static void rcpt_list_add(struct rcpt_list *l, char *s)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		char **v = realloc(l->v, cap * sizeof(*v));

		if (v == NULL)
			out_of_memory();
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = s;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* rcpt_list_unique - sort, drop duplicates */
static void rcpt_list_unique(struct rcpt_list *l)
{
	size_t i, k = 0;

	if (l->n == 0)
		return;
	qsort(l->v, l->n, sizeof(*l->v), cmp_str);
	for (i = 1; i < l->n; i++) {
		if (strcmp(l->v[i], l->v[k]) == 0)
			free(l->v[i]);
		else
			l->v[++k] = l->v[i];
	}
	l->n = k + 1;
}

static void rcpt_list_free(struct rcpt_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* warn_max - more addresses than one sender keeps */
static void warn_max(const struct ctl *ctl, const char *sender, size_t n)
{
	if ((long long)n > (long long)ctl->cfg->relationship_max)
		fprintf(stderr,
			"outboundctl: warning: %zu addresses for %s, but relationship_max is %ld: "
			"only %ld of them are kept\n",
			n, sender, ctl->cfg->relationship_max, ctl->cfg->relationship_max);
}

/* ---- rel ----------------------------------------------------------------- */

/* rcpt_args - normalise the recipient operands; false (usage error) if one is bad */
static bool rcpt_args(const struct ctl *ctl, char **args, int n, struct rcpt_list *l)
{
	int i;

	for (i = 0; i < n; i++) {
		char *s = normalize_rcpt(ctl, args[i]);

		if (s == NULL) {
			fprintf(stderr, "outboundctl: '%s' is not a valid address\n", args[i]);
			rcpt_list_free(l);
			return false;
		}
		rcpt_list_add(l, s);
	}
	rcpt_list_unique(l);
	return true;
}

static void print_count(const struct ctl *ctl, const char *sender, const char *key, size_t n,
			const char *text)
{
	if (ctl->json) {
		fputs("{\"sender\":", stdout);
		ops_json_string(stdout, sender);
		printf(",\"%s\":%zu}\n", key, n);
	} else {
		printf("%s: %zu %s\n", sender, n, text);
	}
}

static int cmd_rel_add(struct ctl *ctl, char **args, int n)
{
	struct rcpt_list l = { 0 };
	char sender[SENDER_MAX];
	int rv = 0;

	if (!normalize_sender(ctl, args[0], false, sender, sizeof(sender)) ||
	    !rcpt_args(ctl, args + 1, n - 1, &l))
		return EXIT_USAGE;
	warn_max(ctl, sender, l.n);
	if ((rv = redis_check(ctl)) == 0 &&
	    store_rel_add(ctl->cfg, sender, (const char *const *)l.v, l.n, 0) != STORE_OK)
		rv = redis_error();
	if (rv == 0)
		print_count(ctl, sender, "added", l.n,
			    l.n == 1 ? "relationship added" : "relationships added");
	rcpt_list_free(&l);
	return rv;
}

static int cmd_rel_del(struct ctl *ctl, char **args, int n)
{
	struct rcpt_list l = { 0 };
	char sender[SENDER_MAX];
	int rv = 0;

	if (!normalize_sender(ctl, args[0], false, sender, sizeof(sender)) ||
	    !rcpt_args(ctl, args + 1, n - 1, &l))
		return EXIT_USAGE;
	if ((rv = redis_check(ctl)) == 0 &&
	    store_rel_del(ctl->cfg, sender, (const char *const *)l.v, l.n) != STORE_OK)
		rv = redis_error();
	if (rv == 0)
		print_count(ctl, sender, "deleted", l.n,
			    l.n == 1 ? "relationship deleted" : "relationships deleted");
	rcpt_list_free(&l);
	return rv;
}

/* the entries of rel show, kept to size the table */
struct rel_rows {
	char **rcpt;
	long long *seen;
	size_t n, cap;
	bool oom;
};

static void rel_row(void *arg, const char *rcpt, long long last_seen_ms)
{
	struct rel_rows *r = arg;

	if (r->oom)
		return;
	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 64;
		char **v = realloc(r->rcpt, cap * sizeof(*v));
		long long *t;

		if (v == NULL) {
			r->oom = true;
			return;
		}
		r->rcpt = v;
		if ((t = realloc(r->seen, cap * sizeof(*t))) == NULL) {
			r->oom = true;
			return;
		}
		r->seen = t;
		r->cap = cap;
	}
	if ((r->rcpt[r->n] = strdup(rcpt)) == NULL) {
		r->oom = true;
		return;
	}
	r->seen[r->n++] = last_seen_ms;
}

static int cmd_rel_show(struct ctl *ctl, char **args, int n)
{
	struct rel_rows rows = { 0 };
	char sender[SENDER_MAX], when[32];
	size_t i, width = strlen("RECIPIENT");
	int rv = 0;

	(void)n;
	if (!normalize_sender(ctl, args[0], false, sender, sizeof(sender)))
		return EXIT_USAGE;
	if ((rv = redis_check(ctl)) != 0)
		return rv;
	if (store_rel_list(ctl->cfg, sender, rel_row, &rows) < 0) {
		rv = redis_error();
		goto out;
	}
	if (rows.oom) {
		fprintf(stderr, "outboundctl: out of memory\n");
		rv = EXIT_REDIS;
		goto out;
	}
	if (ctl->json) {
		putchar('[');
		for (i = 0; i < rows.n; i++) {
			ops_iso_time(when, sizeof(when), rows.seen[i]);
			fputs(i ? ",\n{\"recipient\":" : "\n{\"recipient\":", stdout);
			ops_json_string(stdout, rows.rcpt[i]);
			printf(",\"last_seen\":\"%s\",\"last_seen_ms\":%lld}", when, rows.seen[i]);
		}
		fputs(rows.n ? "\n]\n" : "]\n", stdout);
		goto out;
	}
	if (rows.n == 0) {
		printf("%s: no relationships\n", sender);
		goto out;
	}
	for (i = 0; i < rows.n; i++)
		if (strlen(rows.rcpt[i]) > width)
			width = strlen(rows.rcpt[i]);
	printf("%-*s  %s\n", (int)width, "RECIPIENT", "LAST SEEN (UTC)");
	for (i = 0; i < rows.n; i++) {
		ops_iso_time(when, sizeof(when), rows.seen[i]);
		ops_text_safe(stdout, rows.rcpt[i]);
		printf("%*s  %s\n", (int)(width - strlen(rows.rcpt[i])), "", when);
	}
out:
	for (i = 0; i < rows.n; i++)
		free(rows.rcpt[i]);
	free(rows.rcpt);
	free(rows.seen);
	return rv;
}

/* import_line - the address on LINE, or NULL for a blank or comment line */
static char *import_line(char *line)
{
	char *p, *end;

	for (p = line; *p == ' ' || *p == '\t'; p++)
		;
	/* a comment: '#' first, or after white space */
	for (end = p; *end != '\0'; end++)
		if (*end == '#' && (end == p || end[-1] == ' ' || end[-1] == '\t'))
			break;
	*end = '\0';
	while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' ||
			   end[-1] == '\n'))
		*--end = '\0';
	return *p != '\0' ? p : NULL;
}

static int cmd_rel_import(struct ctl *ctl, char **args, int n)
{
	struct rcpt_list l = { 0 };
	char sender[SENDER_MAX];
	const char *file = args[1], *name;
	unsigned long lineno = 0, invalid = 0;
	char *line = NULL;
	size_t size = 0;
	ssize_t len;
	FILE *fp;
	int rv = 0;

	(void)n;
	if (!normalize_sender(ctl, args[0], false, sender, sizeof(sender)))
		return EXIT_USAGE;
	if (strcmp(file, "-") == 0) {
		fp = stdin;
		name = "stdin";
	} else if ((fp = fopen(file, "r")) == NULL) {
		fprintf(stderr, "outboundctl: %s: %s\n", file, strerror(errno));
		return EXIT_USAGE;
	} else {
		name = file;
	}
	while ((len = getline(&line, &size, fp)) >= 0) {
		char *addr, *s;

		lineno++;
		if (memchr(line, '\0', (size_t)len) != NULL) {
			fprintf(stderr, "%s:%lu: a NUL byte; line skipped\n", name, lineno);
			invalid++;
			continue;
		}
		if ((addr = import_line(line)) == NULL)
			continue;
		if ((s = normalize_rcpt(ctl, addr)) == NULL) {
			fprintf(stderr, "%s:%lu: not a valid address: ", name, lineno);
			ops_text_safe(stderr, addr);
			fputs("; line skipped\n", stderr);
			invalid++;
			continue;
		}
		rcpt_list_add(&l, s);
	}
	if (ferror(fp)) {
		fprintf(stderr, "outboundctl: %s: %s\n", name, strerror(errno));
		rv = EXIT_USAGE;
	}
	free(line);
	if (fp != stdin)
		fclose(fp);
	if (rv != 0)
		goto out;
	rcpt_list_unique(&l);
	warn_max(ctl, sender, l.n);
	if ((rv = redis_check(ctl)) != 0)
		goto out;
	if (store_rel_add(ctl->cfg, sender, (const char *const *)l.v, l.n, 0) != STORE_OK) {
		rv = redis_error();
		goto out;
	}
	if (ctl->json) {
		fputs("{\"sender\":", stdout);
		ops_json_string(stdout, sender);
		printf(",\"imported\":%zu,\"invalid\":%lu}\n", l.n, invalid);
	} else {
		printf("%s: %zu %s imported", sender, l.n,
		       l.n == 1 ? "relationship" : "relationships");
		if (invalid > 0)
			printf(", %lu invalid %s skipped", invalid, invalid == 1 ? "line" : "lines");
		putchar('\n');
	}
out:
	rcpt_list_free(&l);
	return rv;
}

/* ---- block / unblock --------------------------------------------------------- */

static int cmd_block(struct ctl *ctl, char **args, int n)
{
	char sender[SENDER_MAX];
	const char *reason = ctl->reason != NULL ? ctl->reason : DEFAULT_REASON;
	long ttl = 0;
	int rv;

	(void)n;
	if (ctl->ttl != NULL && (ttl = parse_duration(ctl->ttl)) < 0)
		return usage_error("--ttl '%s': not a positive duration like 3600, 90s, 30m, "
				   "12h or 7d",
				   ctl->ttl);
	if (!normalize_sender(ctl, args[0], true, sender, sizeof(sender)))
		return EXIT_USAGE;
	if ((rv = redis_check(ctl)) != 0)
		return rv;
	if (store_block(ctl->cfg, sender, reason, ttl) != STORE_OK)
		return redis_error();
	if (ctl->json) {
		fputs("{\"sender\":", stdout);
		ops_json_string(stdout, sender);
		fputs(",\"blocked\":true,\"reason\":", stdout);
		ops_json_string(stdout, reason);
		if (ttl > 0)
			printf(",\"ttl\":%ld}\n", ttl);
		else
			fputs(",\"ttl\":null}\n", stdout);
	} else {
		printf("%s: blocked ", sender);
		if (ttl > 0) {
			char when[32];

			ops_iso_time(when, sizeof(when), ((long long)time(NULL) + ttl) * 1000);
			printf("for %s%s, until %s", ctl->ttl,
			       isdigit((unsigned char)ctl->ttl[strlen(ctl->ttl) - 1]) ? "s" : "",
			       when);
		} else
			fputs("until unblocked", stdout);
		fputs(" (reason: ", stdout);
		ops_text_safe(stdout, reason);
		fputs(")\n", stdout);
	}
	return 0;
}

static int cmd_unblock(struct ctl *ctl, char **args, int n)
{
	char sender[SENDER_MAX];
	int rv;

	(void)n;
	if (!normalize_sender(ctl, args[0], true, sender, sizeof(sender)))
		return EXIT_USAGE;
	if ((rv = redis_check(ctl)) != 0)
		return rv;
	if ((rv = store_unblock(ctl->cfg, sender)) == STORE_ERR)
		return redis_error();
	if (ctl->json) {
		fputs("{\"sender\":", stdout);
		ops_json_string(stdout, sender);
		printf(",\"unblocked\":%s}\n", rv == STORE_OK ? "true" : "false");
	} else {
		printf("%s: %s\n", sender, rv == STORE_OK ? "unblocked" : "was not blocked");
	}
	return 0;
}

/* ---- reading: shared parts ----------------------------------------------------------- */

static const char *const class_names[] = { "personal", "bulk", "spam-risk", "unknown" };
#define N_CLASS_NAMES (sizeof(class_names) / sizeof(class_names[0]))
static const char *const action_names[] = { "accept", "tag", "hold", "tempfail", "reject" };
#define N_ACTION_NAMES (sizeof(action_names) / sizeof(action_names[0]))

#define TOP_SENDERS 10       /* stats, metrics */
#define NETWORK_TOP 20       /* network NAME */
#define SENDER_HOURS 24      /* sender: counters of the last 24 buckets */
#define SENDER_DECISIONS 10  /* sender: last decisions shown */
#define SENDER_LOG_SCAN 20000 /* sender: log entries looked at for them, at most */
#define LOG_COUNT 20         /* log: entries shown by default */
#define FOLLOW_BLOCK_MS 500  /* log --follow: one XREAD BLOCK */

/* ops_connect - the reading connection, or NULL after saying why (exit status 2) */
static struct opsread *ops_connect(const struct ctl *ctl)
{
	struct opsread *o = opsread_open(ctl->cfg, ctl->now_ms);

	if (o == NULL)
		fprintf(stderr, "outboundctl: %s\n", opsread_error());
	return o;
}

/* ops_failed - a read failed: say why, close, exit status 2 */
static int ops_failed(struct opsread *o)
{
	fprintf(stderr, "outboundctl: %s\n", opsread_error());
	opsread_close(o);
	return EXIT_REDIS;
}

/* parse_number - S as an integer in MIN..MAX */
static bool parse_number(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	if (s == NULL || !isdigit((unsigned char)*s))
		return false;
	errno = 0;
	v = strtol(s, &end, 10);
	if (*end != '\0' || errno != 0 || v < min || v > max)
		return false;
	*out = v;
	return true;
}

/* hour_span - "2026-11-30 14:00-14:59 UTC" for the HOURS buckets ending with NOW's */
static void hour_span(char *buf, size_t size, long long now_ms, int hours)
{
	time_t start = (time_t)((now_ms - now_ms % HOUR_MS) / 1000 - (long long)(hours - 1) * 3600);
	time_t last = (time_t)((now_ms - now_ms % HOUR_MS) / 1000 + 3599);
	char a[32], b[32];
	struct tm ta, tb;

	if (gmtime_r(&start, &ta) == NULL || gmtime_r(&last, &tb) == NULL) {
		snprintf(buf, size, "?");
		return;
	}
	strftime(a, sizeof(a), "%Y-%m-%d %H:%M", &ta);
	if (ta.tm_yday == tb.tm_yday && ta.tm_year == tb.tm_year)
		strftime(b, sizeof(b), "%H:%M", &tb);
	else
		strftime(b, sizeof(b), "%Y-%m-%d %H:%M", &tb);
	snprintf(buf, size, "%s-%s UTC", a, b);
}

/*
 * normalize_network - NAME as the milter names networks: a configured
 * network, an IP literal, or for a domain the network it belongs to (the
 * configured one or its registrable domain), lowercased
 */
static bool normalize_network(const struct ctl *ctl, const char *raw, char *out, size_t size)
{
	struct address a;
	char lower[NETWORK_MAX], probe[NETWORK_MAX + 16];
	size_t i;

	if (raw[0] == '\0' || strlen(raw) >= sizeof(lower)) {
		fprintf(stderr, "outboundctl: '%s' is not a network name\n", raw);
		return false;
	}
	for (i = 0; raw[i] != '\0'; i++) {
		unsigned char c = (unsigned char)raw[i];

		if (c <= 0x20 || c == 0x7f || c == '{' || c == '}') {
			fprintf(stderr, "outboundctl: '%s' is not a network name\n", raw);
			return false;
		}
		lower[i] = (char)tolower(c);
	}
	lower[i] = '\0';
	for (i = 0; i < ctl->cfg->n_networks; i++)
		if (strcmp(ctl->cfg->networks[i].name, lower) == 0)
			break;
	snprintf(out, size, "%s", lower);
	if (i < ctl->cfg->n_networks || lower[0] == '[' || strchr(lower, '.') == NULL)
		return true;
	snprintf(probe, sizeof(probe), "postmaster@%s", raw);
	if (address_normalize(probe, "", &a) == ADDR_OK)
		network_of(ctl->cfg, &a, out, size);
	return true;
}

/* usage_cells - "used/limit" of both windows of U; "-" for what is unknown */
static void usage_cells(const struct ops_usage *u, char *hourly, char *burst, size_t size)
{
	if (u->def != NULL) {
		snprintf(hourly, size, "%lld/%ld", u->hourly, u->lv.hourly);
		snprintf(burst, size, "%lld/%ld", u->burst, u->lv.burst);
	} else {
		snprintf(hourly, size, "%lld/-", u->hourly);
		snprintf(burst, size, "-");
	}
}

static void json_window(struct ops_json *w, const char *key, long long used, long limit,
			long window, bool known)
{
	ops_json_open(w, key, '{');
	if (used >= 0)
		ops_json_int(w, "used", used);
	else
		ops_json_null(w, "used");
	if (known) {
		ops_json_int(w, "limit", limit);
		ops_json_int(w, "window", window);
	} else {
		ops_json_null(w, "limit");
		ops_json_null(w, "window");
	}
	ops_json_close(w, '}');
}

/* json_usage - one window row: rule, scope, hourly and burst use against the limits */
static void json_usage(struct ops_json *w, const struct ops_usage *u, bool with_network)
{
	bool known = u->def != NULL;

	ops_json_open(w, NULL, '{');
	if (with_network)
		ops_json_str(w, "network", u->network);
	ops_json_str(w, "rule", u->rule);
	ops_json_str(w, "scope", u->scope);
	json_window(w, "hourly", u->hourly, u->lv.hourly, 3600, known);
	json_window(w, "burst", known ? u->burst : -1, u->lv.burst, u->lv.burst_window, known);
	ops_json_close(w, '}');
}

static bool usage_empty(const struct ops_usage *u)
{
	return u->hourly <= 0 && u->burst <= 0;
}

/* usage_drop_empty - leave out windows without a unit in them (waiting for their TTL) */
static void usage_drop_empty(struct ops_usages *u)
{
	size_t i, k = 0;

	for (i = 0; i < u->n; i++) {
		if (usage_empty(&u->v[i])) {
			free(u->v[i].network);
			free(u->v[i].rule);
			free(u->v[i].scope);
		} else {
			u->v[k++] = u->v[i];
		}
	}
	u->n = k;
}

static int usage_by_rule_load(const void *a, const void *b)
{
	const struct ops_usage *x = a, *y = b;
	double rx = ops_usage_ratio(x), ry = ops_usage_ratio(y);
	int d;

	if ((d = strcmp(x->network, y->network)) != 0 || (d = strcmp(x->rule, y->rule)) != 0)
		return d;
	if (rx != ry)
		return rx > ry ? -1 : 1;
	if (x->hourly != y->hourly)
		return x->hourly > y->hourly ? -1 : 1;
	return strcmp(x->scope, y->scope);
}

/* ---- stats ------------------------------------------------------------------------- */

/* one network's line: its counters and the busiest scope value of each rule */
struct net_row {
	const char *name;
	long long accepted, tempfailed, monitor_tempfailed;
	const struct ops_usage *busy; /* first of n_busy rows in stats_view.usage */
	size_t n_busy;
};

struct stats_view {
	int hours;
	struct ops_counts fields; /* counter fields added up */
	struct ops_counts top;    /* senders, most recipients first */
	struct ops_usages usage;  /* the busiest scope value per (network, rule) */
	struct ops_counts names;  /* network names */
	struct net_row *nets;
	size_t n_nets;
	bool monitor;             /* monitor-mode counters present */
};

static long long field_get(const struct ops_counts *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* field_get - the count of the field named by FMT */
static long long field_get(const struct ops_counts *c, const char *fmt, ...)
{
	char name[NETWORK_MAX + 64];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(name, sizeof(name), fmt, ap);
	va_end(ap);
	return ops_counts_get(c, name);
}

static int net_row_cmp(const void *a, const void *b)
{
	const struct net_row *x = a, *y = b;
	long long tx = x->accepted + x->tempfailed, ty = y->accepted + y->tempfailed;

	if (tx != ty)
		return tx > ty ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* stats_networks - the networks of the counters and of the windows, busiest first */
static void stats_networks(struct stats_view *v)
{
	static const char *const suffixes[] = { ":accepted", ":tempfailed", ":monitor_tempfailed" };
	size_t i, k, u;

	for (i = 0; i < v->fields.n; i++) {
		const char *f = v->fields.v[i].name;
		size_t len = strlen(f);

		if (strncmp(f, "net:", 4) != 0)
			continue;
		for (k = 0; k < sizeof(suffixes) / sizeof(suffixes[0]); k++) {
			size_t sl = strlen(suffixes[k]);

			if (len > 4 + sl && strcmp(f + len - sl, suffixes[k]) == 0) {
				ops_counts_add(&v->names, f + 4, len - 4 - sl, 0);
				break;
			}
		}
	}
	for (i = 0; i < v->usage.n; i++)
		ops_counts_add(&v->names, v->usage.v[i].network, strlen(v->usage.v[i].network), 0);
	ops_counts_merge(&v->names);
	if (v->names.n > 0 && (v->nets = calloc(v->names.n, sizeof(*v->nets))) == NULL)
		out_of_memory();
	for (i = 0; i < v->names.n; i++) {
		struct net_row *r = &v->nets[v->n_nets++];

		r->name = v->names.v[i].name;
		r->accepted = field_get(&v->fields, "net:%s:accepted", r->name);
		r->tempfailed = field_get(&v->fields, "net:%s:tempfailed", r->name);
		r->monitor_tempfailed = field_get(&v->fields, "net:%s:monitor_tempfailed", r->name);
		if (r->monitor_tempfailed > 0)
			v->monitor = true;
		/* usage is sorted by network: this one's rows are together */
		for (u = 0; u < v->usage.n && strcmp(v->usage.v[u].network, r->name) != 0; u++)
			;
		r->busy = u < v->usage.n ? &v->usage.v[u] : NULL;
		for (; u < v->usage.n && strcmp(v->usage.v[u].network, r->name) == 0; u++)
			r->n_busy++;
	}
	if (v->n_nets > 1)
		qsort(v->nets, v->n_nets, sizeof(*v->nets), net_row_cmp);
}

/* stats_busiest - keep the fullest scope value of each (network, rule) */
static void stats_busiest(struct ops_usages *u)
{
	size_t i, k = 0;

	if (u->n > 1)
		qsort(u->v, u->n, sizeof(*u->v), usage_by_rule_load);
	for (i = 0; i < u->n; i++) {
		if (k > 0 && strcmp(u->v[i].network, u->v[k - 1].network) == 0 &&
		    strcmp(u->v[i].rule, u->v[k - 1].rule) == 0) {
			free(u->v[i].network);
			free(u->v[i].rule);
			free(u->v[i].scope);
		} else {
			u->v[k++] = u->v[i];
		}
	}
	u->n = k;
}

static void stats_free(struct stats_view *v)
{
	ops_counts_free(&v->fields);
	ops_counts_free(&v->top);
	ops_usages_free(&v->usage);
	ops_counts_free(&v->names);
	free(v->nets);
	memset(v, 0, sizeof(*v));
}

/* stats_gather - counters of HOURS buckets, the windows now, TOP_N senders; -1 on error */
static int stats_gather(struct opsread *o, int hours, size_t top_n, struct stats_view *v)
{
	size_t i;

	memset(v, 0, sizeof(*v));
	v->hours = hours;
	if (opsread_stats(o, hours, &v->fields, &v->top, top_n) != 0 ||
	    opsread_usage_scan(o, NULL, NULL, &v->usage) != 0)
		return -1;
	ops_usages_unique(&v->usage);
	if (opsread_usage_fetch(o, &v->usage) != 0)
		return -1;
	usage_drop_empty(&v->usage);
	stats_busiest(&v->usage);
	for (i = 0; i < v->fields.n; i++)
		if (strncmp(v->fields.v[i].name, "monitor:", 8) == 0 && v->fields.v[i].n > 0)
			v->monitor = true;
	stats_networks(v);
	return 0;
}

/* the class names to show: the four, then any other the counters have */
static void stats_classes(const struct stats_view *v, struct ops_counts *out)
{
	size_t i;

	for (i = 0; i < N_CLASS_NAMES; i++)
		ops_counts_add(out, class_names[i], strlen(class_names[i]), 0);
	for (i = 0; i < v->fields.n; i++) {
		const char *f = v->fields.v[i].name, *c = f + 4;
		size_t k;

		if (strncmp(f, "msg:", 4) != 0 && strncmp(f, "rcpt:", 5) != 0)
			continue;
		if (f[0] == 'r')
			c = f + 5;
		for (k = 0; k < out->n && strcmp(out->v[k].name, c) != 0; k++)
			;
		if (k == out->n)
			ops_counts_add(out, c, strlen(c), 0);
	}
}

static void stats_json_body(struct ops_json *w, const struct stats_view *v, long long now_ms)
{
	struct ops_counts classes = { 0 };
	long long msgs = 0, rcpts = 0, start = now_ms - now_ms % HOUR_MS;
	char hour[16], when[32];
	size_t i, k;

	ops_hour(now_ms, hour);
	ops_json_str(w, "hour", hour);
	ops_json_int(w, "hours", v->hours);
	ops_iso_time(when, sizeof(when), start - (long long)(v->hours - 1) * HOUR_MS);
	ops_json_str(w, "from", when);
	ops_iso_time(when, sizeof(when), start + HOUR_MS);
	ops_json_str(w, "until", when);

	stats_classes(v, &classes);
	ops_json_open(w, "classes", '{');
	for (i = 0; i < classes.n; i++) {
		long long m = field_get(&v->fields, "msg:%s", classes.v[i].name);
		long long r = field_get(&v->fields, "rcpt:%s", classes.v[i].name);

		ops_json_open(w, classes.v[i].name, '{');
		ops_json_int(w, "messages", m);
		ops_json_int(w, "recipients", r);
		ops_json_close(w, '}');
		msgs += m;
		rcpts += r;
	}
	ops_json_close(w, '}');
	ops_counts_free(&classes);
	ops_json_int(w, "messages", msgs);
	ops_json_int(w, "recipients", rcpts);

	ops_json_open(w, "actions", '{');
	for (i = 0; i < N_ACTION_NAMES; i++)
		ops_json_int(w, action_names[i], field_get(&v->fields, "action:%s", action_names[i]));
	ops_json_close(w, '}');
	ops_json_open(w, "monitor_actions", '{');
	for (i = 0; i < N_ACTION_NAMES; i++)
		ops_json_int(w, action_names[i],
			     field_get(&v->fields, "monitor:%s", action_names[i]));
	ops_json_close(w, '}');

	ops_json_open(w, "networks", '[');
	for (i = 0; i < v->n_nets; i++) {
		const struct net_row *r = &v->nets[i];

		ops_json_open(w, NULL, '{');
		ops_json_str(w, "network", r->name);
		ops_json_int(w, "accepted", r->accepted);
		ops_json_int(w, "tempfailed", r->tempfailed);
		ops_json_int(w, "monitor_tempfailed", r->monitor_tempfailed);
		ops_json_open(w, "limits", '[');
		for (k = 0; k < r->n_busy; k++)
			json_usage(w, &r->busy[k], false);
		ops_json_close(w, ']');
		ops_json_close(w, '}');
	}
	ops_json_close(w, ']');

	ops_json_open(w, "top_senders", '[');
	for (i = 0; i < v->top.n; i++) {
		ops_json_open(w, NULL, '{');
		ops_json_str(w, "sender", v->top.v[i].name);
		ops_json_int(w, "recipients", v->top.v[i].n);
		ops_json_close(w, '}');
	}
	ops_json_close(w, ']');
}

static void stats_print_classes(FILE *f, const struct stats_view *v)
{
	struct ops_counts classes = { 0 };
	struct ops_table t;
	long long msgs = 0, rcpts = 0;
	size_t i;

	stats_classes(v, &classes);
	ops_table_init(&t, "CLASS|>MESSAGES|>RECIPIENTS");
	for (i = 0; i < classes.n; i++) {
		long long m = field_get(&v->fields, "msg:%s", classes.v[i].name);
		long long r = field_get(&v->fields, "rcpt:%s", classes.v[i].name);

		ops_table_cell(&t, classes.v[i].name);
		ops_table_cellf(&t, "%lld", m);
		ops_table_cellf(&t, "%lld", r);
		msgs += m;
		rcpts += r;
	}
	ops_table_cell(&t, "total");
	ops_table_cellf(&t, "%lld", msgs);
	ops_table_cellf(&t, "%lld", rcpts);
	ops_table_print(&t, f, 0);
	ops_table_free(&t);
	ops_counts_free(&classes);
}

static void stats_print_actions(FILE *f, const struct stats_view *v)
{
	struct ops_table t;
	size_t i;

	ops_table_init(&t, v->monitor ? "ACTION|>MESSAGES|>MONITOR (WOULD)" : "ACTION|>MESSAGES");
	for (i = 0; i < N_ACTION_NAMES; i++) {
		ops_table_cell(&t, action_names[i]);
		ops_table_cellf(&t, "%lld", field_get(&v->fields, "action:%s", action_names[i]));
		if (v->monitor)
			ops_table_cellf(&t, "%lld",
					field_get(&v->fields, "monitor:%s", action_names[i]));
	}
	ops_table_print(&t, f, 0);
	ops_table_free(&t);
}

static void stats_print_networks(FILE *f, const struct stats_view *v)
{
	struct ops_table t;
	char hourly[48], burst[48];
	size_t i, k;

	if (v->n_nets == 0) {
		fputs("No network traffic.\n", f);
		return;
	}
	ops_table_init(&t, v->monitor ? "NETWORK|>ACCEPTED|>TEMPFAILED|>WOULD TEMPFAIL|RULE|>HOURLY|"
					 ">BURST|BUSIEST"
				       : "NETWORK|>ACCEPTED|>TEMPFAILED|RULE|>HOURLY|>BURST|BUSIEST");
	for (i = 0; i < v->n_nets; i++) {
		const struct net_row *r = &v->nets[i];

		for (k = 0; k == 0 || k < r->n_busy; k++) {
			ops_table_cell(&t, k == 0 ? r->name : "");
			if (k == 0) {
				ops_table_cellf(&t, "%lld", r->accepted);
				ops_table_cellf(&t, "%lld", r->tempfailed);
				if (v->monitor)
					ops_table_cellf(&t, "%lld", r->monitor_tempfailed);
			} else {
				ops_table_cell(&t, "");
				ops_table_cell(&t, "");
				if (v->monitor)
					ops_table_cell(&t, "");
			}
			if (r->n_busy == 0) {
				ops_table_cell(&t, "-");
				ops_table_cell(&t, "-");
				ops_table_cell(&t, "-");
				ops_table_cell(&t, "-");
				continue;
			}
			usage_cells(&r->busy[k], hourly, burst, sizeof(hourly));
			ops_table_cell(&t, r->busy[k].rule);
			ops_table_cell(&t, hourly);
			ops_table_cell(&t, burst);
			ops_table_cell(&t, r->busy[k].scope);
		}
	}
	ops_table_print(&t, f, 0);
	ops_table_free(&t);
}

static void stats_print_top(FILE *f, const struct ops_counts *top, size_t max)
{
	struct ops_table t;
	size_t i;

	if (top->n == 0) {
		fputs("No top senders.\n", f);
		return;
	}
	ops_table_init(&t, "TOP SENDER|>RECIPIENTS");
	for (i = 0; i < top->n && i < max; i++) {
		ops_table_cell(&t, top->v[i].name);
		ops_table_cellf(&t, "%lld", top->v[i].n);
	}
	ops_table_print(&t, f, 0);
	ops_table_free(&t);
}

static int cmd_stats(struct ctl *ctl, char **args, int n)
{
	struct stats_view v;
	struct opsread *o;
	long hours = 1;
	char span[128];

	(void)args;
	(void)n;
	if (ctl->hours != NULL && !parse_number(ctl->hours, 1, OPS_HOURS_MAX, &hours))
		return usage_error("--hours '%s': a number of hours from 1 to %d", ctl->hours,
				   OPS_HOURS_MAX);
	if ((o = ops_connect(ctl)) == NULL)
		return EXIT_REDIS;
	if (stats_gather(o, (int)hours, TOP_SENDERS, &v) != 0) {
		stats_free(&v);
		return ops_failed(o);
	}
	if (ctl->json) {
		struct ops_json w = { .f = stdout };

		ops_json_open(&w, NULL, '{');
		stats_json_body(&w, &v, ctl->now_ms);
		ops_json_close(&w, '}');
	} else {
		hour_span(span, sizeof(span), ctl->now_ms, (int)hours);
		if (hours == 1)
			printf("Hour %s (the current hour bucket)\n\n", span);
		else
			printf("Last %ld hours: %s\n\n", hours, span);
		stats_print_classes(stdout, &v);
		putchar('\n');
		stats_print_actions(stdout, &v);
		printf("\nNetworks (HOURLY, BURST: the busiest scope value of each rule, windows now)\n");
		stats_print_networks(stdout, &v);
		putchar('\n');
		stats_print_top(stdout, &v.top, TOP_SENDERS);
	}
	stats_free(&v);
	opsread_close(o);
	return 0;
}

/* ---- log ------------------------------------------------------------------------- */

static const char *const log_numeric[] = { "rcpts", "known", "velocity", "tempfailed",
					   "used", "max", "window" };

static bool all_digits(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return strlen(s) < 19;
}

static void json_entry(struct ops_json *w, const struct ops_entry *e)
{
	char when[32];
	size_t i, k;

	ops_iso_time(when, sizeof(when), e->ms);
	ops_json_open(w, NULL, '{');
	ops_json_str(w, "id", e->id);
	ops_json_str(w, "time", when);
	ops_json_int(w, "time_ms", e->ms);
	for (i = 0; i + 1 < e->n_kv; i += 2) {
		const char *name = e->kv[i], *val = e->kv[i + 1];

		if (strcmp(name, "id") == 0 || strcmp(name, "time") == 0 ||
		    strcmp(name, "time_ms") == 0)
			continue;
		for (k = 0; k < sizeof(log_numeric) / sizeof(log_numeric[0]); k++)
			if (strcmp(name, log_numeric[k]) == 0)
				break;
		if (k < sizeof(log_numeric) / sizeof(log_numeric[0]) && all_digits(val))
			ops_json_int(w, name, strtoll(val, NULL, 10));
		else
			ops_json_str(w, name, val);
	}
	ops_json_close(w, '}');
}

static void log_field(FILE *f, const struct ops_entry *e, const char *name)
{
	const char *v = ops_entry_get(e, name);

	if (v == NULL)
		return;
	fprintf(f, " %s=", name);
	ops_text_safe(f, v);
}

/*
 * log_line - one entry as the daemon's decision line, after its time:
 * 2026-11-30T14:02:03Z QID class=bulk action=tag sender=... reasons=...
 * 2026-11-30T14:02:03Z QID tempfail sender=... rcpt=... used=10/10 window=60s
 */
static void log_line(FILE *f, const struct ops_entry *e)
{
	static const char *const msg_fields[] = { "class", "action", "sender", "client", "rcpts",
						  "known", "velocity", "tempfailed", "networks",
						  "mode", "reasons" };
	static const char *const tf_fields[] = { "sender", "client", "rcpt", "network", "rule",
						 "limit" };
	const char *type = ops_entry_get(e, "type"), *qid = ops_entry_get(e, "qid");
	const char *used = ops_entry_get(e, "used"), *max = ops_entry_get(e, "max");
	const char *window = ops_entry_get(e, "window");
	char when[32];
	size_t i;

	ops_iso_time(when, sizeof(when), e->ms);
	fprintf(f, "%s ", when);
	ops_text_safe(f, qid != NULL ? qid : "-");
	if (type != NULL && strcmp(type, "tempfail") == 0) {
		fputs(" tempfail", f);
		for (i = 0; i < sizeof(tf_fields) / sizeof(tf_fields[0]); i++)
			log_field(f, e, tf_fields[i]);
		if (used != NULL) {
			fputs(" used=", f);
			ops_text_safe(f, used);
			if (max != NULL) {
				fputc('/', f);
				ops_text_safe(f, max);
			}
		}
		if (window != NULL) {
			fputs(" window=", f);
			ops_text_safe(f, window);
			if (all_digits(window))
				fputc('s', f);
		}
		log_field(f, e, "mode");
	} else if (type == NULL || strcmp(type, "message") == 0) {
		for (i = 0; i < sizeof(msg_fields) / sizeof(msg_fields[0]); i++)
			log_field(f, e, msg_fields[i]);
	} else {
		for (i = 0; i + 1 < e->n_kv; i += 2) {
			if (strcmp(e->kv[i], "qid") == 0)
				continue;
			fputc(' ', f);
			ops_text_safe(f, e->kv[i]);
			fputc('=', f);
			ops_text_safe(f, e->kv[i + 1]);
		}
	}
	fputc('\n', f);
}

static volatile sig_atomic_t stop_requested;

static void stop_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* catch_stop - SIGINT, SIGTERM and SIGHUP end a loop; no restart: a wait returns */
static void catch_stop(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = stop_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

static void log_print(const struct ctl *ctl, struct ops_json *w, const struct ops_entry *e)
{
	if (ctl->json)
		json_entry(w, e);
	else
		log_line(stdout, e);
}

static int cmd_log(struct ctl *ctl, char **args, int n)
{
	struct ops_filter f = { 0 };
	struct ops_entries l = { 0 };
	struct ops_json w = { .f = stdout };
	char sender[SENDER_MAX], last[48];
	struct opsread *o;
	long count = LOG_COUNT;
	size_t i;
	int rv = 0;

	(void)args;
	(void)n;
	if (ctl->count != NULL && !parse_number(ctl->count, 1, 1000000, &count))
		return usage_error("--count '%s': a number from 1 to 1000000", ctl->count);
	if (ctl->since != NULL && (f.since_ms = ops_parse_time(ctl->since, ctl->now_ms)) < 0)
		return usage_error("--since '%s': not a time like 2026-11-30T14:00:00Z, "
				   "1796040000, 15m or 2h",
				   ctl->since);
	if (ctl->cls != NULL) {
		for (i = 0; i < N_CLASS_NAMES; i++)
			if (strcmp(ctl->cls, class_names[i]) == 0)
				break;
		if (i == N_CLASS_NAMES)
			return usage_error("--class '%s': personal, bulk, spam-risk or unknown",
					   ctl->cls);
		f.cls = ctl->cls;
	}
	if (ctl->sender != NULL) {
		if (!normalize_sender(ctl, ctl->sender, true, sender, sizeof(sender)))
			return EXIT_USAGE;
		f.sender = sender;
	}
	f.qid = ctl->qid;
	if ((o = ops_connect(ctl)) == NULL)
		return EXIT_REDIS;
	/* the newest entry first, so that --follow misses nothing in between */
	if ((ctl->follow && opsread_log_last_id(o, last, sizeof(last)) != 0) ||
	    opsread_log_back(o, &f, ctl->since != NULL && ctl->count == NULL ? 0 : (size_t)count,
			     0, &l) != 0) {
		ops_entries_free(&l);
		return ops_failed(o);
	}
	/* newest last; with --follow one JSON object a line */
	if (ctl->json && !ctl->follow)
		ops_json_open(&w, NULL, '[');
	for (i = l.n; i > 0; i--)
		log_print(ctl, &w, &l.v[i - 1]);
	if (ctl->json && !ctl->follow)
		ops_json_close(&w, ']');
	ops_entries_free(&l);
	if (!ctl->follow) {
		opsread_close(o);
		return 0;
	}
	fflush(stdout);
	catch_stop();
	while (!stop_requested) {
		if (opsread_log_wait(o, last, sizeof(last), FOLLOW_BLOCK_MS, &f, &l) < 0) {
			if (stop_requested)
				break;
			ops_entries_free(&l);
			return ops_failed(o);
		}
		for (i = 0; i < l.n; i++)
			log_print(ctl, &w, &l.v[i]);
		ops_entries_free(&l);
		if (fflush(stdout) != 0)
			break;
	}
	opsread_close(o);
	return rv;
}

/* ---- sender ------------------------------------------------------------------------ */

/* sender_windows - the windows the sender's mail counts in, on NETS and any found by SCAN */
static int sender_windows(const struct ctl *ctl, struct opsread *o, const char *sender,
			  const struct ops_counts *nets, struct ops_usages *u)
{
	const char *at = strrchr(sender, '@');
	size_t i, k;

	for (i = 0; i < nets->n; i++) {
		for (k = 0; k < ctl->cfg->n_limits; k++) {
			const struct limit_rule *r = &ctl->cfg->limits[k];
			const char *scope = NULL;

			if (r->scope == SCOPE_SENDER)
				scope = sender;
			else if (r->scope == SCOPE_SENDER_DOMAIN && at != NULL)
				scope = at + 1;
			else if (r->scope == SCOPE_GLOBAL)
				scope = "*";
			if (scope != NULL)
				opsread_usage_add(o, nets->v[i].name, r->name, scope, u);
		}
	}
	if (opsread_usage_scan(o, NULL, sender, u) != 0)
		return -1;
	ops_usages_unique(u);
	if (opsread_usage_fetch(o, u) != 0)
		return -1;
	usage_drop_empty(u);
	return 0;
}

/* sender_nets - networks named by "net:NET" fields, into OUT (merged) */
static void sender_nets(const struct ops_counts *fields, struct ops_counts *out)
{
	size_t i;

	for (i = 0; i < fields->n; i++)
		if (strncmp(fields->v[i].name, "net:", 4) == 0 && fields->v[i].name[4] != '\0')
			ops_counts_add(out, fields->v[i].name + 4, strlen(fields->v[i].name + 4),
				       fields->v[i].n);
	ops_counts_merge(out);
}

static const char *const sender_counters[][2] = {
	{ "messages", "msg" },   { "sent", "sent" },       { "recipients", "rcpts" },
	{ "held", "held" },      { "refused", "refused" }, { "tempfailed", "tempfailed" },
};
#define N_SENDER_COUNTERS (sizeof(sender_counters) / sizeof(sender_counters[0]))

static void sender_json_hours(struct ops_json *w, const char *key, const struct ops_counts *c)
{
	struct ops_counts nets = { 0 };
	size_t i;

	ops_json_open(w, key, '{');
	for (i = 0; i < N_SENDER_COUNTERS; i++)
		ops_json_int(w, sender_counters[i][0], ops_counts_get(c, sender_counters[i][1]));
	ops_json_open(w, "classes", '{');
	for (i = 0; i < N_CLASS_NAMES; i++)
		ops_json_int(w, class_names[i], field_get(c, "class:%s", class_names[i]));
	ops_json_close(w, '}');
	sender_nets(c, &nets);
	ops_json_open(w, "networks", '{');
	for (i = 0; i < nets.n; i++)
		ops_json_int(w, nets.v[i].name, nets.v[i].n);
	ops_json_close(w, '}');
	ops_json_close(w, '}');
	ops_counts_free(&nets);
}

/* the facts about one sender, read in one go */
struct sender_view {
	char name[SENDER_MAX];
	struct ops_counts day, hour; /* counters: last 24 h, this hour */
	struct ops_counts nets_day, nets_hour;
	struct ops_usages windows;
	struct ops_entries decisions; /* newest first */
	long long velocity, relationships, ttl;
	int blocked;
	char reason[512];
};

static void sender_free(struct sender_view *v)
{
	ops_counts_free(&v->day);
	ops_counts_free(&v->hour);
	ops_counts_free(&v->nets_day);
	ops_counts_free(&v->nets_hour);
	ops_usages_free(&v->windows);
	ops_entries_free(&v->decisions);
}

static int sender_gather(const struct ctl *ctl, struct opsread *o, struct sender_view *v)
{
	struct ops_filter f = { .sender = v->name };

	if (opsread_sender_hours(o, v->name, SENDER_HOURS, &v->day, &v->hour) != 0)
		return -1;
	sender_nets(&v->day, &v->nets_day);
	sender_nets(&v->hour, &v->nets_hour);
	if (sender_windows(ctl, o, v->name, &v->nets_day, &v->windows) != 0 ||
	    (v->velocity = opsread_velocity(o, v->name)) < 0 ||
	    (v->relationships = opsread_relationships(o, v->name)) < 0 ||
	    (v->blocked = opsread_block(o, v->name, v->reason, sizeof(v->reason), &v->ttl)) < 0 ||
	    opsread_log_back(o, &f, SENDER_DECISIONS, SENDER_LOG_SCAN, &v->decisions) != 0)
		return -1;
	ops_usages_sort_busiest(&v->windows);
	return 0;
}

static void sender_json(const struct sender_view *v)
{
	struct ops_json w = { .f = stdout };
	size_t i;

	ops_json_open(&w, NULL, '{');
	ops_json_str(&w, "sender", v->name);
	ops_json_bool(&w, "blocked", v->blocked == 1);
	if (v->blocked == 1) {
		ops_json_open(&w, "block", '{');
		ops_json_str(&w, "reason", v->reason);
		if (v->ttl >= 0)
			ops_json_int(&w, "ttl", v->ttl);
		else
			ops_json_null(&w, "ttl");
		ops_json_close(&w, '}');
	} else {
		ops_json_null(&w, "block");
	}
	ops_json_int(&w, "velocity", v->velocity);
	ops_json_int(&w, "relationships", v->relationships);
	sender_json_hours(&w, "this_hour", &v->hour);
	sender_json_hours(&w, "last_24h", &v->day);
	ops_json_open(&w, "limits", '[');
	for (i = 0; i < v->windows.n; i++)
		json_usage(&w, &v->windows.v[i], true);
	ops_json_close(&w, ']');
	ops_json_open(&w, "decisions", '[');
	for (i = v->decisions.n; i > 0; i--)
		json_entry(&w, &v->decisions.v[i - 1]);
	ops_json_close(&w, ']');
	ops_json_close(&w, '}');
}

static void sender_print(const struct sender_view *v)
{
	struct ops_table t;
	char hourly[48], burst[48], d[32];
	size_t i;

	printf("Sender %s\n", v->name);
	if (v->blocked == 1) {
		fputs("  block:          blocked (reason: ", stdout);
		ops_text_safe(stdout, v->reason);
		if (v->ttl >= 0) {
			ops_duration(d, sizeof(d), v->ttl);
			printf("), expires in %s\n", d);
		} else {
			fputs("), until unblocked\n", stdout);
		}
	} else {
		fputs("  block:          none\n", stdout);
	}
	printf("  velocity:       %lld distinct recipients in the last hour\n", v->velocity);
	printf("  relationships:  %lld known correspondents\n\n", v->relationships);

	ops_table_init(&t, "COUNTER|>THIS HOUR|>LAST 24 H");
	for (i = 0; i < N_SENDER_COUNTERS; i++) {
		ops_table_cell(&t, sender_counters[i][0]);
		ops_table_cellf(&t, "%lld", ops_counts_get(&v->hour, sender_counters[i][1]));
		ops_table_cellf(&t, "%lld", ops_counts_get(&v->day, sender_counters[i][1]));
	}
	for (i = 0; i < N_CLASS_NAMES; i++) {
		ops_table_cell(&t, class_names[i]);
		ops_table_cellf(&t, "%lld", field_get(&v->hour, "class:%s", class_names[i]));
		ops_table_cellf(&t, "%lld", field_get(&v->day, "class:%s", class_names[i]));
	}
	ops_table_print(&t, stdout, 0);
	ops_table_free(&t);

	putchar('\n');
	if (v->nets_day.n == 0) {
		fputs("No accepted recipients in the last 24 h.\n", stdout);
	} else {
		ops_table_init(&t, "NETWORK|>THIS HOUR|>LAST 24 H");
		for (i = 0; i < v->nets_day.n; i++) {
			ops_table_cell(&t, v->nets_day.v[i].name);
			ops_table_cellf(&t, "%lld",
					ops_counts_get(&v->nets_hour, v->nets_day.v[i].name));
			ops_table_cellf(&t, "%lld", v->nets_day.v[i].n);
		}
		ops_table_print(&t, stdout, 0);
		ops_table_free(&t);
	}

	putchar('\n');
	if (v->windows.n == 0) {
		fputs("No limits in use (no unit in any window now).\n", stdout);
	} else {
		fputs("Limits in use (windows now)\n", stdout);
		ops_table_init(&t, "NETWORK|RULE|SCOPE|>HOURLY|>BURST|>WINDOW");
		for (i = 0; i < v->windows.n; i++) {
			const struct ops_usage *u = &v->windows.v[i];

			usage_cells(u, hourly, burst, sizeof(hourly));
			ops_table_cell(&t, u->network);
			ops_table_cell(&t, u->rule);
			ops_table_cell(&t, u->scope);
			ops_table_cell(&t, hourly);
			ops_table_cell(&t, burst);
			if (u->def != NULL)
				ops_table_cellf(&t, "%lds", u->lv.burst_window);
			else
				ops_table_cell(&t, "-");
		}
		ops_table_print(&t, stdout, 0);
		ops_table_free(&t);
	}

	putchar('\n');
	if (v->decisions.n == 0) {
		fputs("No decisions in the log.\n", stdout);
		return;
	}
	printf("Last decisions (newest last)\n");
	for (i = v->decisions.n; i > 0; i--)
		log_line(stdout, &v->decisions.v[i - 1]);
}

static int cmd_sender(struct ctl *ctl, char **args, int n)
{
	struct sender_view v;
	struct opsread *o;

	(void)n;
	memset(&v, 0, sizeof(v));
	if (!normalize_sender(ctl, args[0], true, v.name, sizeof(v.name)))
		return EXIT_USAGE;
	if ((o = ops_connect(ctl)) == NULL)
		return EXIT_REDIS;
	if (sender_gather(ctl, o, &v) != 0) {
		sender_free(&v);
		return ops_failed(o);
	}
	if (ctl->json)
		sender_json(&v);
	else
		sender_print(&v);
	sender_free(&v);
	opsread_close(o);
	return 0;
}

/* ---- network ------------------------------------------------------------------------ */

static int cmd_network(struct ctl *ctl, char **args, int n)
{
	struct ops_counts fields = { 0 }, top = { 0 };
	struct ops_usages u = { 0 };
	char net[NETWORK_MAX], hourly[48], burst[48], span[128];
	long long accepted, tempfailed;
	struct opsread *o;
	size_t i, shown;

	(void)n;
	if (!normalize_network(ctl, args[0], net, sizeof(net)))
		return EXIT_USAGE;
	if ((o = ops_connect(ctl)) == NULL)
		return EXIT_REDIS;
	if (opsread_stats(o, 1, &fields, &top, 1) != 0 ||
	    opsread_usage_scan(o, net, NULL, &u) != 0 || (ops_usages_unique(&u), 0) ||
	    opsread_usage_fetch(o, &u) != 0) {
		ops_counts_free(&fields);
		ops_counts_free(&top);
		ops_usages_free(&u);
		return ops_failed(o);
	}
	usage_drop_empty(&u);
	ops_usages_sort_busiest(&u);
	accepted = field_get(&fields, "net:%s:accepted", net);
	tempfailed = field_get(&fields, "net:%s:tempfailed", net);
	shown = u.n < NETWORK_TOP ? u.n : NETWORK_TOP;
	if (ctl->json) {
		struct ops_json w = { .f = stdout };
		char hour[16];

		ops_hour(ctl->now_ms, hour);
		ops_json_open(&w, NULL, '{');
		ops_json_str(&w, "network", net);
		ops_json_str(&w, "hour", hour);
		ops_json_int(&w, "accepted", accepted);
		ops_json_int(&w, "tempfailed", tempfailed);
		ops_json_int(&w, "monitor_tempfailed",
			     field_get(&fields, "net:%s:monitor_tempfailed", net));
		ops_json_int(&w, "scope_values", (long long)u.n);
		ops_json_open(&w, "top", '[');
		for (i = 0; i < shown; i++)
			json_usage(&w, &u.v[i], false);
		ops_json_close(&w, ']');
		ops_json_close(&w, '}');
	} else {
		hour_span(span, sizeof(span), ctl->now_ms, 1);
		printf("Network %s, hour %s: %lld recipients accepted, %lld tempfailed\n", net, span,
		       accepted, tempfailed);
		if (u.n == 0) {
			fputs("No unit in any window now.\n", stdout);
		} else {
			struct ops_table t;

			printf("%zu scope %s in the windows now", u.n, u.n == 1 ? "value" : "values");
			printf(u.n > shown ? ", the %zu busiest:\n\n" : ":\n\n", shown);
			ops_table_init(&t, "RULE|SCOPE|>HOURLY|>BURST|>WINDOW");
			for (i = 0; i < shown; i++) {
				usage_cells(&u.v[i], hourly, burst, sizeof(hourly));
				ops_table_cell(&t, u.v[i].rule);
				ops_table_cell(&t, u.v[i].scope);
				ops_table_cell(&t, hourly);
				ops_table_cell(&t, burst);
				if (u.v[i].def != NULL)
					ops_table_cellf(&t, "%lds", u.v[i].lv.burst_window);
				else
					ops_table_cell(&t, "-");
			}
			ops_table_print(&t, stdout, 0);
			ops_table_free(&t);
		}
	}
	ops_counts_free(&fields);
	ops_counts_free(&top);
	ops_usages_free(&u);
	opsread_close(o);
	return 0;
}

/* ---- reset -------------------------------------------------------------------------- */

static int cmd_reset(struct ctl *ctl, char **args, int n)
{
	char sender[SENDER_MAX], net[NETWORK_MAX];
	struct opsread *o;
	long long deleted;

	(void)n;
	if (!normalize_sender(ctl, args[0], true, sender, sizeof(sender)) ||
	    (ctl->network != NULL && !normalize_network(ctl, ctl->network, net, sizeof(net))))
		return EXIT_USAGE;
	if ((o = ops_connect(ctl)) == NULL)
		return EXIT_REDIS;
	if ((deleted = opsread_reset(o, sender, ctl->network != NULL ? net : NULL)) < 0)
		return ops_failed(o);
	if (ctl->json) {
		struct ops_json w = { .f = stdout };

		ops_json_open(&w, NULL, '{');
		ops_json_str(&w, "sender", sender);
		ops_json_str(&w, "network", ctl->network != NULL ? net : NULL);
		ops_json_int(&w, "deleted", deleted);
		ops_json_close(&w, '}');
	} else {
		printf("%s: %lld rate window %s deleted", sender, deleted,
		       deleted == 1 ? "key" : "keys");
		if (ctl->network != NULL)
			printf(" (network %s)", net);
		putchar('\n');
	}
	opsread_close(o);
	return 0;
}

/* ---- metrics ------------------------------------------------------------------------- */

/* one metric family of the exposition: its samples, label sets preformatted */
struct prom_sample {
	char *labels; /* {name="value",...} or "" */
	long long v;
};

struct prom_family {
	const char *name;
	const char *help;
	struct prom_sample *s;
	size_t n, cap;
};

/* prom_value - a label value: UTF-8 (else U+FFFD), backslash, quote and newline escaped */
static void prom_value(FILE *f, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t left = strlen(str), n;

	while (left > 0) {
		if (*s == '\\' || *s == '"') {
			fputc('\\', f);
			fputc(*s, f);
		} else if (*s == '\n') {
			fputs("\\n", f);
		} else if ((n = ops_utf8_len(s, left)) == 0) {
			fputs("\xef\xbf\xbd", f);
		} else {
			fwrite(s, 1, n, f);
			s += n;
			left -= n;
			continue;
		}
		s++;
		left--;
	}
}

/* prom_add - a sample with up to two labels (NULL names end the list) */
static void prom_add(struct prom_family *fam, long long v, const char *k1, const char *v1,
		     const char *k2, const char *v2)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	if ((f = open_memstream(&buf, &len)) == NULL)
		out_of_memory();
	if (k1 != NULL) {
		fprintf(f, "{%s=\"", k1);
		prom_value(f, v1);
		fputc('"', f);
		if (k2 != NULL) {
			fprintf(f, ",%s=\"", k2);
			prom_value(f, v2);
			fputc('"', f);
		}
		fputc('}', f);
	}
	if (fclose(f) != 0 || buf == NULL)
		out_of_memory();
	if (fam->n == fam->cap) {
		size_t cap = fam->cap ? 2 * fam->cap : 16;
		struct prom_sample *s = realloc(fam->s, cap * sizeof(*s));

		if (s == NULL)
			out_of_memory();
		fam->s = s;
		fam->cap = cap;
	}
	fam->s[fam->n].labels = buf;
	fam->s[fam->n++].v = v;
}

static int prom_cmp(const void *a, const void *b)
{
	return strcmp(((const struct prom_sample *)a)->labels,
		      ((const struct prom_sample *)b)->labels);
}

/* prom_print - HELP, TYPE and the samples; one series per label set (added up) */
static void prom_print(const struct prom_family *fam)
{
	size_t i, k;

	printf("# HELP %s %s\n# TYPE %s gauge\n", fam->name, fam->help, fam->name);
	if (fam->n > 1)
		qsort(fam->s, fam->n, sizeof(*fam->s), prom_cmp);
	for (i = 0; i < fam->n; i = k) {
		long long v = fam->s[i].v;

		for (k = i + 1; k < fam->n && strcmp(fam->s[k].labels, fam->s[i].labels) == 0; k++)
			v += fam->s[k].v;
		printf("%s%s %lld\n", fam->name, fam->s[i].labels, v);
	}
}

static void prom_json(struct ops_json *w, const struct prom_family *fam)
{
	size_t i;

	for (i = 0; i < fam->n; i++) {
		ops_json_open(w, NULL, '{');
		ops_json_str(w, "name", fam->name);
		ops_json_str(w, "labels", fam->s[i].labels);
		ops_json_int(w, "value", fam->s[i].v);
		ops_json_close(w, '}');
	}
}

static void prom_free(struct prom_family *fam)
{
	size_t i;

	for (i = 0; i < fam->n; i++)
		free(fam->s[i].labels);
	free(fam->s);
}

enum {
	M_UP,
	M_HOUR_START,
	M_MESSAGES,
	M_RECIPIENTS,
	M_ACTIONS,
	M_NETWORK,
	M_TOP,
	M_BLOCKED,
	M_LOG,
	M_COUNT
};

static void metrics_fill(struct prom_family *m, const struct stats_view *v,
			 long long blocked, long long log_len, long long now_ms)
{
	struct ops_counts classes = { 0 };
	size_t i;

	prom_add(&m[M_UP], 1, NULL, NULL, NULL, NULL);
	prom_add(&m[M_HOUR_START], (now_ms - now_ms % HOUR_MS) / 1000, NULL, NULL, NULL, NULL);
	stats_classes(v, &classes);
	for (i = 0; i < classes.n; i++) {
		const char *c = classes.v[i].name;

		prom_add(&m[M_MESSAGES], field_get(&v->fields, "msg:%s", c), "class", c, NULL,
			 NULL);
		prom_add(&m[M_RECIPIENTS], field_get(&v->fields, "rcpt:%s", c), "class", c, NULL,
			 NULL);
	}
	ops_counts_free(&classes);
	for (i = 0; i < N_ACTION_NAMES; i++) {
		const char *a = action_names[i];

		prom_add(&m[M_ACTIONS], field_get(&v->fields, "action:%s", a), "action", a, "mode",
			 "enforce");
		if (v->monitor)
			prom_add(&m[M_ACTIONS], field_get(&v->fields, "monitor:%s", a), "action",
				 a, "mode", "monitor");
	}
	for (i = 0; i < v->n_nets; i++) {
		const struct net_row *r = &v->nets[i];

		prom_add(&m[M_NETWORK], r->accepted, "network", r->name, "result", "accepted");
		prom_add(&m[M_NETWORK], r->tempfailed, "network", r->name, "result", "tempfailed");
		if (r->monitor_tempfailed > 0)
			prom_add(&m[M_NETWORK], r->monitor_tempfailed, "network", r->name, "result",
				 "monitor_tempfailed");
	}
	for (i = 0; i < v->top.n; i++)
		prom_add(&m[M_TOP], v->top.v[i].n, "sender", v->top.v[i].name, NULL, NULL);
	prom_add(&m[M_BLOCKED], blocked, NULL, NULL, NULL, NULL);
	prom_add(&m[M_LOG], log_len, NULL, NULL, NULL, NULL);
}

static int cmd_metrics(struct ctl *ctl, char **args, int n)
{
	struct prom_family m[M_COUNT] = {
		[M_UP] = { "outbound_milter_up", "1 when outboundctl could read the counters "
						 "in Redis, 0 when it could not." },
		[M_HOUR_START] = { "outbound_milter_hour_start_timestamp_seconds",
				   "Start of the current UTC hour bucket that the *_hour gauges "
				   "count." },
		[M_MESSAGES] = { "outbound_milter_messages_hour",
				 "Messages per class in the current UTC hour bucket." },
		[M_RECIPIENTS] = { "outbound_milter_recipients_hour",
				   "Recipients of the messages per class in the current UTC hour "
				   "bucket." },
		[M_ACTIONS] = { "outbound_milter_actions_hour",
				"Messages per class action in the current UTC hour bucket (mode "
				"monitor: the action it would have taken)." },
		[M_NETWORK] = { "outbound_milter_network_recipients_hour",
				"Recipients per recipient network accepted or tempfailed by a "
				"rate limit in the current UTC hour bucket." },
		[M_TOP] = { "outbound_milter_top_sender_recipients_hour",
			    "Recipients of the accepted mail of the 10 busiest senders in the "
			    "current UTC hour bucket." },
		[M_BLOCKED] = { "outbound_milter_blocked_senders",
				"Senders blocked with outboundctl block." },
		[M_LOG] = { "outbound_milter_log_entries", "Entries in the decision log stream." },
	};
	struct stats_view v;
	struct opsread *o;
	long long blocked = -1, log_len = -1;
	size_t i;
	int rv = 0;

	(void)args;
	(void)n;
	memset(&v, 0, sizeof(v));
	if ((o = ops_connect(ctl)) == NULL ||
	    stats_gather(o, 1, TOP_SENDERS, &v) != 0 || (blocked = opsread_blocked_count(o)) < 0 ||
	    (log_len = opsread_log_length(o)) < 0) {
		if (o != NULL)
			fprintf(stderr, "outboundctl: %s\n", opsread_error());
		/* a scraper still learns that the counters could not be read */
		if (!ctl->json)
			printf("# HELP %s %s\n# TYPE %s gauge\n%s 0\n", m[M_UP].name, m[M_UP].help,
			       m[M_UP].name, m[M_UP].name);
		stats_free(&v);
		opsread_close(o);
		return EXIT_REDIS;
	}
	metrics_fill(m, &v, blocked, log_len, ctl->now_ms);
	if (ctl->json) {
		struct ops_json w = { .f = stdout };

		ops_json_open(&w, NULL, '[');
		for (i = 0; i < M_COUNT; i++)
			prom_json(&w, &m[i]);
		ops_json_close(&w, ']');
	} else {
		for (i = 0; i < M_COUNT; i++)
			prom_print(&m[i]);
	}
	for (i = 0; i < M_COUNT; i++)
		prom_free(&m[i]);
	stats_free(&v);
	opsread_close(o);
	return rv;
}

/* ---- top --------------------------------------------------------------------------------- */

#define TOP_BAR 20
#define TOP_SHOW 5 /* top senders and recent tempfails shown */

static volatile sig_atomic_t top_resized;
static struct termios top_saved_tio;
static bool top_tio_saved, top_screen;

static void top_winch(int sig)
{
	(void)sig;
	top_resized = 1;
}

/* top_restore - the terminal as it was: cooked mode, cursor, main screen */
static void top_restore(void)
{
	if (top_tio_saved) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &top_saved_tio);
		top_tio_saved = false;
	}
	if (top_screen) {
		fputs("\033[?25h\033[?1049l", stdout);
		fflush(stdout);
		top_screen = false;
	}
}

/* top_terminal - keys without Enter or echo (signals stay on), alternate screen */
static void top_terminal(void)
{
	struct termios raw;
	struct sigaction sa;

	catch_stop();
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = top_winch;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGWINCH, &sa, NULL);
	if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &top_saved_tio) == 0) {
		raw = top_saved_tio;
		raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		raw.c_cc[VMIN] = 0;
		raw.c_cc[VTIME] = 0;
		if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) == 0)
			top_tio_saved = true;
	}
	atexit(top_restore);
	fputs("\033[?1049h\033[?25l", stdout);
	top_screen = true;
}

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* top_wait - INTERVAL seconds, or less on a key or a resize; false: quit */
static bool top_wait(long interval)
{
	long long end = mono_ms() + interval * 1000;

	while (!stop_requested && !top_resized) {
		long long left = end - mono_ms();
		struct timeval tv;
		fd_set fds;
		char keys[32];
		ssize_t k, i;

		if (left <= 0)
			break;
		tv.tv_sec = (time_t)(left / 1000);
		tv.tv_usec = (suseconds_t)(left % 1000 * 1000);
		FD_ZERO(&fds);
		if (top_tio_saved)
			FD_SET(STDIN_FILENO, &fds);
		if (select(top_tio_saved ? STDIN_FILENO + 1 : 0, &fds, NULL, NULL, &tv) <= 0)
			continue;
		if ((k = read(STDIN_FILENO, keys, sizeof(keys))) == 0) {
			stop_requested = 1; /* the terminal hung up */
			break;
		}
		for (i = 0; i < k; i++)
			if (keys[i] == 'q' || keys[i] == 'Q')
				stop_requested = 1;
	}
	top_resized = 0;
	return !stop_requested;
}

static void top_bar(char *buf, size_t size, long long used, long limit)
{
	long long fill = used <= 0 ? 0 : limit <= 0 ? TOP_BAR : (used * TOP_BAR + limit - 1) / limit;
	size_t i;

	if (size < TOP_BAR + 3)
		return;
	if (fill > TOP_BAR)
		fill = TOP_BAR;
	buf[0] = '[';
	for (i = 0; i < TOP_BAR; i++)
		buf[i + 1] = (long long)i < fill ? '#' : '-';
	buf[TOP_BAR + 1] = ']';
	buf[TOP_BAR + 2] = '\0';
}

/* top_frame - one screen of the live view into F */
static void top_frame(FILE *f, const struct stats_view *v, const struct ops_entries *tf,
		      long long now_ms, long interval)
{
	struct ops_counts classes = { 0 };
	struct ops_table t;
	char when[32], hour[128], bar[TOP_BAR + 4], hourly[48], burst[48];
	size_t i, k;

	ops_iso_time(when, sizeof(when), now_ms);
	hour_span(hour, sizeof(hour), now_ms, 1);
	fprintf(f, "outboundctl top  %s  hour %s  every %lds  q: quit\n\n", when, hour, interval);

	fputs("NETWORKS: the busiest scope value of each rule (windows now)\n", f);
	if (v->n_nets == 0)
		fputs("  no traffic this hour\n", f);
	ops_table_init(&t, "NETWORK|>ACCEPTED|>TEMPFAILED|RULE|HOURLY|>USED|>BURST|BUSIEST");
	for (i = 0; i < v->n_nets; i++) {
		const struct net_row *r = &v->nets[i];

		for (k = 0; k == 0 || k < r->n_busy; k++) {
			ops_table_cell(&t, k == 0 ? r->name : "");
			if (k == 0) {
				ops_table_cellf(&t, "%lld", r->accepted);
				ops_table_cellf(&t, "%lld", r->tempfailed);
			} else {
				ops_table_cell(&t, "");
				ops_table_cell(&t, "");
			}
			if (r->n_busy == 0) {
				ops_table_cell(&t, "-");
				ops_table_cell(&t, "");
				ops_table_cell(&t, "-");
				ops_table_cell(&t, "-");
				ops_table_cell(&t, "-");
				continue;
			}
			usage_cells(&r->busy[k], hourly, burst, sizeof(hourly));
			top_bar(bar, sizeof(bar), r->busy[k].hourly,
				r->busy[k].def != NULL ? r->busy[k].lv.hourly : 0);
			ops_table_cell(&t, r->busy[k].rule);
			ops_table_cell(&t, r->busy[k].def != NULL ? bar : "");
			ops_table_cell(&t, hourly);
			ops_table_cell(&t, burst);
			ops_table_cell(&t, r->busy[k].scope);
		}
	}
	if (v->n_nets > 0)
		ops_table_print(&t, f, 2);
	ops_table_free(&t);

	fputs("\nCLASSES THIS HOUR (messages/recipients):", f);
	stats_classes(v, &classes);
	for (i = 0; i < classes.n; i++)
		fprintf(f, "  %s %lld/%lld", classes.v[i].name,
			field_get(&v->fields, "msg:%s", classes.v[i].name),
			field_get(&v->fields, "rcpt:%s", classes.v[i].name));
	ops_counts_free(&classes);
	fputs("\n\nTOP SENDERS THIS HOUR\n", f);
	if (v->top.n == 0)
		fputs("  none\n", f);
	ops_table_init(&t, "SENDER|>RECIPIENTS");
	for (i = 0; i < v->top.n && i < TOP_SHOW; i++) {
		ops_table_cell(&t, v->top.v[i].name);
		ops_table_cellf(&t, "%lld", v->top.v[i].n);
	}
	if (v->top.n > 0)
		ops_table_print(&t, f, 2);
	ops_table_free(&t);

	fputs("\nRECENT TEMPFAILS\n", f);
	if (tf->n == 0)
		fputs("  none\n", f);
	for (i = 0; i < tf->n; i++) {
		fputs("  ", f);
		log_line(f, &tf->v[i]);
	}
}

/* top_show - FRAME on the terminal from the top left, lines cut to COLS, at most ROWS */
static void top_show(const char *frame, int cols, int rows)
{
	const char *p = frame;
	int row = 0;

	fputs("\033[H", stdout);
	while (*p != '\0' && row < rows - 1) {
		const char *nl = strchr(p, '\n');
		size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p), i;
		int w = 0;

		for (i = 0; i < len; i++) {
			if (((unsigned char)p[i] & 0xc0) != 0x80 && ++w > cols)
				break;
			fputc(p[i], stdout);
		}
		fputs("\033[K\r\n", stdout);
		row++;
		p += len + (nl != NULL);
	}
	fputs("\033[J", stdout);
	fflush(stdout);
}

static int top_gather(struct opsread *o, struct stats_view *v, struct ops_entries *tf)
{
	struct ops_filter f = { .type = "tempfail" };

	if (stats_gather(o, 1, TOP_SHOW, v) != 0)
		return -1;
	return opsread_log_back(o, &f, TOP_SHOW, 2000, tf);
}

static long long clock_ms(const struct ctl *ctl);

static int cmd_top(struct ctl *ctl, char **args, int n)
{
	bool live = isatty(STDOUT_FILENO) && !ctl->json;
	struct opsread *o;
	long interval = 2;

	(void)args;
	(void)n;
	if (ctl->interval != NULL && !parse_number(ctl->interval, 1, 3600, &interval))
		return usage_error("--interval '%s': seconds from 1 to 3600", ctl->interval);
	if ((o = ops_connect(ctl)) == NULL)
		return EXIT_REDIS;
	if (live)
		top_terminal();
	else if (ctl->json)
		catch_stop();
	do {
		struct stats_view v;
		struct ops_entries tf = { 0 };
		struct winsize ws;
		char *frame = NULL;
		size_t len = 0;
		FILE *f;
		int ok;

		ctl->now_ms = clock_ms(ctl);
		if (o == NULL)
			o = opsread_open(ctl->cfg, ctl->now_ms);
		else
			opsread_set_now(o, ctl->now_ms);
		memset(&v, 0, sizeof(v));
		ok = o != NULL && top_gather(o, &v, &tf) == 0;
		if (!ok && !live) {
			stats_free(&v);
			ops_entries_free(&tf);
			if (o == NULL) {
				fprintf(stderr, "outboundctl: %s\n", opsread_error());
				return EXIT_REDIS;
			}
			return ops_failed(o);
		}
		if (ctl->json) {
			struct ops_json w = { .f = stdout };
			size_t i;

			ops_json_open(&w, NULL, '{');
			stats_json_body(&w, &v, ctl->now_ms);
			ops_json_open(&w, "tempfails", '[');
			for (i = 0; i < tf.n; i++)
				json_entry(&w, &tf.v[i]);
			ops_json_close(&w, ']');
			ops_json_close(&w, '}');
			fflush(stdout);
		} else {
			if ((f = open_memstream(&frame, &len)) == NULL)
				out_of_memory();
			if (ok)
				top_frame(f, &v, &tf, ctl->now_ms, interval);
			else
				fprintf(f, "outboundctl top: %s\n(trying again every %lds; q: quit)\n",
					opsread_error(), interval);
			if (fclose(f) != 0)
				out_of_memory();
			if (live) {
				if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) != 0 || ws.ws_col == 0)
					ws.ws_col = 80, ws.ws_row = 24;
				top_show(frame, ws.ws_col, ws.ws_row);
			} else {
				fputs(frame, stdout);
			}
			free(frame);
		}
		if (!ok) {
			opsread_close(o);
			o = NULL;
		}
		stats_free(&v);
		ops_entries_free(&tf);
		/* not on a terminal: one frame, like top -b -n 1 (JSON: one a line) */
	} while ((live || ctl->json) && top_wait(interval));
	if (live)
		top_restore();
	opsread_close(o);
	return 0;
}

/* ---- command line -------------------------------------------------------------- */

static const struct option_def *option_long(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < N_OPTIONS; i++)
		if (strlen(option_defs[i].name) == len && strncmp(option_defs[i].name, name, len) == 0)
			return &option_defs[i];
	return NULL;
}

static const struct option_def *option_short(char letter)
{
	size_t i;

	for (i = 0; i < N_OPTIONS; i++)
		if (option_defs[i].letter != 0 && option_defs[i].letter == letter)
			return &option_defs[i];
	return NULL;
}

static void option_set(struct ctl *ctl, const struct option_def *o, const char *arg)
{
	ctl->seen |= o->flag;
	switch (o->flag) {
	case OPT_CONFIG:
		ctl->config_file = arg;
		break;
	case OPT_JSON:
		ctl->json = true;
		break;
	case OPT_REASON:
		ctl->reason = arg;
		break;
	case OPT_TTL:
		ctl->ttl = arg;
		break;
	case OPT_HOURS:
		ctl->hours = arg;
		break;
	case OPT_INTERVAL:
		ctl->interval = arg;
		break;
	case OPT_NETWORK:
		ctl->network = arg;
		break;
	case OPT_SENDER:
		ctl->sender = arg;
		break;
	case OPT_QUEUE_ID:
		ctl->qid = arg;
		break;
	case OPT_CLASS:
		ctl->cls = arg;
		break;
	case OPT_SINCE:
		ctl->since = arg;
		break;
	case OPT_FOLLOW:
		ctl->follow = true;
		break;
	case OPT_COUNT:
		ctl->count = arg;
		break;
	default:
		break;
	}
}

/*
 * parse_args - options anywhere among the words; ARGV's words are moved to
 * ctl->words. Returns 0 or EXIT_USAGE.
 */
static int parse_args(struct ctl *ctl, int argc, char **argv)
{
	bool options_end = false;
	int i;

	ctl->words = argv + 1;
	ctl->n_words = 0;
	for (i = 1; i < argc; i++) {
		char *a = argv[i];
		const struct option_def *o;

		if (options_end || a[0] != '-' || a[1] == '\0') {
			ctl->words[ctl->n_words++] = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			options_end = true;
			continue;
		}
		if (a[1] == '-') {
			const char *eq = strchr(a + 2, '=');
			size_t len = eq != NULL ? (size_t)(eq - (a + 2)) : strlen(a + 2);

			if ((o = option_long(a + 2, len)) == NULL)
				return usage_error("unknown option '%.*s'", (int)len + 2, a);
			if (!o->has_arg && eq != NULL)
				return usage_error("option '--%s' takes no value", o->name);
			if (o->has_arg && eq == NULL && i + 1 >= argc)
				return usage_error("option '--%s' needs a value", o->name);
			option_set(ctl, o, o->has_arg ? (eq != NULL ? eq + 1 : argv[++i]) : NULL);
			continue;
		}
		/* short options, possibly grouped: -Vh, -cFILE, -c FILE */
		for (a++; *a != '\0'; a++) {
			if ((o = option_short(*a)) == NULL)
				return usage_error("unknown option '-%c'", *a);
			if (!o->has_arg) {
				option_set(ctl, o, NULL);
				continue;
			}
			if (a[1] != '\0') {
				option_set(ctl, o, a + 1);
			} else if (i + 1 < argc) {
				option_set(ctl, o, argv[++i]);
			} else {
				return usage_error("option '-%c' needs a value", *a);
			}
			break;
		}
	}
	return 0;
}

/* words_match - the first words of the command line are NAME's words; *N gets their count */
static bool words_match(const struct ctl *ctl, const char *name, int *n)
{
	const char *p = name;
	int w = 0;

	while (*p != '\0') {
		size_t len = strcspn(p, " ");

		if (w >= ctl->n_words || strlen(ctl->words[w]) != len ||
		    strncmp(ctl->words[w], p, len) != 0)
			return false;
		w++;
		p += len;
		p += strspn(p, " ");
	}
	*n = w;
	return true;
}

static const struct command *command_find(const struct ctl *ctl, int *n_name)
{
	size_t i;

	for (i = 0; i < N_COMMANDS; i++)
		if (words_match(ctl, commands[i].name, n_name))
			return &commands[i];
	return NULL;
}

/* command_usage_error - wrong words: show the usage lines of commands starting with WORD */
static int command_usage_error(const char *word, const char *what)
{
	size_t i, wl = strlen(word);

	fprintf(stderr, "outboundctl: %s\n", what);
	for (i = 0; i < N_COMMANDS; i++)
		if (strncmp(commands[i].name, word, wl) == 0 &&
		    (commands[i].name[wl] == ' ' || commands[i].name[wl] == '\0'))
			fprintf(stderr, "usage: outboundctl %s %s\n", commands[i].name,
				commands[i].args);
	fputs("Try 'outboundctl --help'.\n", stderr);
	return EXIT_USAGE;
}

static bool command_known_word(const char *word)
{
	size_t i, wl = strlen(word);

	for (i = 0; i < N_COMMANDS; i++)
		if (strncmp(commands[i].name, word, wl) == 0 &&
		    (commands[i].name[wl] == ' ' || commands[i].name[wl] == '\0'))
			return true;
	return false;
}

/*
 * report_errors - configuration errors as FILE:LINE: error: ...; warnings
 * concern the daemon (outbound-milter -t shows them), not this tool
 */
static void report_errors(void *arg, const char *file, int line, bool is_error,
			  const char *msg)
{
	if (is_error)
		config_report_stderr(arg, file, line, is_error, msg);
}

/* clock_ms - now in ms since the epoch: OBM_NOW (epoch seconds) when set, else the clock */
static long long clock_ms(const struct ctl *ctl)
{
	const char *env = getenv("OBM_NOW");
	struct timespec ts;
	long v;

	(void)ctl;
	if (env != NULL && parse_number(env, 0, LONG_MAX, &v))
		return (long long)v * 1000;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
	struct ctl ctl = { 0 };
	const struct command *cmd;
	unsigned extra;
	int n_name = 0, n_args, rv;
	char what[256];

	if ((rv = parse_args(&ctl, argc, argv)) != 0)
		return rv;
	if (ctl.seen & OPT_HELP) {
		usage(stdout);
		return 0;
	}
	if (ctl.seen & OPT_VERSION) {
		printf("outboundctl %s\n", OBM_VERSION);
		return 0;
	}
	if (ctl.n_words == 0) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if ((cmd = command_find(&ctl, &n_name)) == NULL) {
		if (!command_known_word(ctl.words[0]))
			return usage_error("unknown command '%s'", ctl.words[0]);
		snprintf(what, sizeof(what), "%s: %s", ctl.words[0],
			 ctl.n_words > 1 ? "unknown subcommand" : "subcommand missing");
		return command_usage_error(ctl.words[0], what);
	}
	n_args = ctl.n_words - n_name;
	if (n_args < cmd->min_args || (cmd->max_args >= 0 && n_args > cmd->max_args)) {
		snprintf(what, sizeof(what), "%s: %s arguments", cmd->name,
			 n_args < cmd->min_args ? "missing" : "too many");
		return command_usage_error(ctl.words[0], what);
	}
	if ((extra = ctl.seen & ~(OPT_GLOBAL | cmd->opts)) != 0) {
		size_t i;

		for (i = 0; i < N_OPTIONS; i++)
			if (extra & option_defs[i].flag)
				return usage_error("%s: option '--%s' does not apply", cmd->name,
						   option_defs[i].name);
	}

	if (ctl.config_file == NULL)
		ctl.config_file = OBM_DEFAULT_CONFIG;
	if ((ctl.cfg = config_load(ctl.config_file, report_errors, NULL)) == NULL) {
		fprintf(stderr, "outboundctl: %s: configuration not usable\n", ctl.config_file);
		return EXIT_USAGE;
	}
	ctl.now_ms = clock_ms(&ctl);
	rv = cmd->run(&ctl, ctl.words + n_name, n_args);
	if (fflush(stdout) != 0 && rv == 0) {
		fprintf(stderr, "outboundctl: writing the output: %s\n", strerror(errno));
		rv = EXIT_USAGE;
	}
	store_disconnect();
	config_free(ctl.cfg);
	return rv;
}
