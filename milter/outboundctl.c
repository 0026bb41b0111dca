/*
 * outboundctl.c - the operations command line (outboundctl(1)).
 *
 * Reads the daemon's configuration (-c FILE) to find Redis, the key prefix
 * and the sub-address separator, and works on the keys of doc/REDIS.md:
 * relationships and blocks through store.c, like the milter; counters,
 * windows and the decision log (stats, top, sender, network, log, reset,
 * metrics) through opsread.c, shown by the views of opsview.c. Every
 * address goes through address_normalize with the configured separator,
 * exactly as the milter normalises it, so that Mixed-Case+tag@Example.COM
 * and mixed-case@example.com name the same key.
 *
 * Commands are rows of a table (words, operands, options, handler, help):
 * adding one is adding a row and its handler. Options may come before,
 * between or after the command words; "--" ends them. Output is a table or
 * a sentence for people, JSON (--json) for programs.
 *
 * "Now" is the clock, or OBM_NOW (epoch seconds) from the environment: the
 * tests fix the hour buckets and windows with it.
 *
 * Credentials: a command that only reads (stats, top, sender, network,
 * log, metrics, rel show) uses the redis section's readonly_user and
 * readonly_password_file when they are set, the others user and
 * password_file. The choice is made once, by swapping the two pairs in
 * this run's own copy of the configuration before anything connects, so
 * store.c and opsread.c connect as they always do. The configuration is
 * loaded without opening the password files; the one in use is opened
 * before the command runs, so that a user who may not read it is told so,
 * as whom, and what to use instead.
 *
 * Configuration errors are printed as FILE:LINE: error: ...; warnings are
 * left to `outbound-milter -t`. Exit status: 0 success, 1 usage error (the
 * command line), 2 when the command cannot be carried out: configuration
 * missing, unreadable or with errors, a password file that cannot be read,
 * a file to import that cannot be read, Redis unreachable or refusing a
 * command. Each failure says why on stderr, in lines that start with
 * "outboundctl: " (one, but for a configuration with several errors).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
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
#include "opsview.h"
#include "ratelimit.h"
#include "store.h"

#ifndef OBM_VERSION
#define OBM_VERSION "unknown"
#endif

#define EXIT_USAGE 1 /* the command line is wrong */
#define EXIT_FAIL 2  /* configuration, credentials, a file or Redis failed it */

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
	bool reads;        /* only reads: may use the read-only credentials */
	int (*run)(struct ctl *ctl, char **args, int n);
	const char *help;
};

#define READS true
#define WRITES false

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
	{ "stats", "[--hours N]", 0, 0, OPT_HOURS, READS, cmd_stats,
	  "classes, actions, networks (used/limit of\n"
	  "the busiest sender per rule), top senders;\n"
	  "N hour buckets added up (default 1: this\n"
	  "UTC hour)" },
	{ "top", "[--interval S]", 0, 0, OPT_INTERVAL, READS, cmd_top,
	  "live view of the above, refreshed every S\n"
	  "seconds (default 2); q or Ctrl-C quits" },
	{ "sender", "ADDRESS", 1, 1, 0, READS, cmd_sender,
	  "limits in use per network, velocity, class\n"
	  "counts (this hour, 24 h), block, last\n"
	  "decisions" },
	{ "network", "NAME", 1, 1, 0, READS, cmd_network,
	  "usage of one network (or a domain's) by\n"
	  "its top 20 senders" },
	{ "log", "[--sender A] [--queue-id Q] [--class C] [--since T] [--follow] [--count N]",
	  0, 0, OPT_SENDER | OPT_QUEUE_ID | OPT_CLASS | OPT_SINCE | OPT_FOLLOW | OPT_COUNT,
	  READS, cmd_log,
	  "decision log, newest last (default: last\n"
	  "20 entries); T: 2026-11-30T14:00:00Z,\n"
	  "epoch seconds or 15m, 2h ago; --follow\n"
	  "waits for more (with --json: one object\n"
	  "a line)" },
	{ "rel add", "SENDER RECIPIENT...", 2, -1, 0, WRITES, cmd_rel_add,
	  "make RECIPIENTs known to SENDER (seen now)" },
	{ "rel del", "SENDER RECIPIENT...", 2, -1, 0, WRITES, cmd_rel_del,
	  "forget those relationships" },
	{ "rel show", "SENDER", 1, 1, 0, READS, cmd_rel_show,
	  "SENDER's relationships, newest first" },
	{ "rel import", "SENDER FILE", 2, 2, 0, WRITES, cmd_rel_import,
	  "add FILE's addresses, one a line ('-':\n"
	  "stdin; '#' comments); bad lines are skipped" },
	{ "block", "ADDRESS [--reason R] [--ttl DURATION]", 1, 1, OPT_REASON | OPT_TTL,
	  WRITES, cmd_block,
	  "freeze a sender on every MTA (its mail is\n"
	  "spam-risk); DURATION: 3600, 90s, 30m, 12h,\n"
	  "7d (default: until unblocked)" },
	{ "unblock", "ADDRESS", 1, 1, 0, WRITES, cmd_unblock, "lift a block" },
	{ "reset", "ADDRESS [--network NAME]", 1, 1, OPT_NETWORK, WRITES, cmd_reset,
	  "clear the sender's rate windows (every\n"
	  "network, or one)" },
	{ "metrics", "", 0, 0, 0, READS, cmd_metrics,
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
		int w = fprintf(f, "  %s%s%s", commands[i].name, commands[i].args[0] ? " " : "",
				commands[i].args);

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
		   "  -f, -n N            log: --follow, --count N\n"
		   "\nExit status: 0 success, 1 usage error, 2 the command could not\n"
		   "be carried out (configuration or password file unreadable or\n"
		   "wrong, Redis unreachable or refusing).\n");
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
	return EXIT_FAIL;
}

/* redis_check - once the arguments are good: can Redis be reached? */
static int redis_check(const struct ctl *ctl)
{
	return store_ping(ctl->cfg) == STORE_OK ? 0 : redis_error();
}

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
		ops_oom();
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
	if (*p != '\0' && ((unit = ops_unit_seconds(*p)) < 0 || p[1] != '\0'))
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
	l->v = ops_grow(l->v, &l->cap, l->n, sizeof(*l->v));
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

/* rel add and rel del: SENDER then the recipients, one round trip */
static int rel_change(struct ctl *ctl, char **args, int n, bool add)
{
	struct rcpt_list l = { 0 };
	char sender[OPS_SENDER_MAX];
	int rv = 0, st;

	if (!normalize_sender(ctl, args[0], false, sender, sizeof(sender)) ||
	    !rcpt_args(ctl, args + 1, n - 1, &l))
		return EXIT_USAGE;
	if (add)
		warn_max(ctl, sender, l.n);
	if ((rv = redis_check(ctl)) == 0) {
		st = add ? store_rel_add(ctl->cfg, sender, (const char *const *)l.v, l.n, 0)
			 : store_rel_del(ctl->cfg, sender, (const char *const *)l.v, l.n);
		if (st != STORE_OK)
			rv = redis_error();
	}
	if (rv == 0 && add)
		print_count(ctl, sender, "added", l.n,
			    l.n == 1 ? "relationship added" : "relationships added");
	else if (rv == 0)
		print_count(ctl, sender, "deleted", l.n,
			    l.n == 1 ? "relationship deleted" : "relationships deleted");
	rcpt_list_free(&l);
	return rv;
}

static int cmd_rel_add(struct ctl *ctl, char **args, int n)
{
	return rel_change(ctl, args, n, true);
}

static int cmd_rel_del(struct ctl *ctl, char **args, int n)
{
	return rel_change(ctl, args, n, false);
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
	char sender[OPS_SENDER_MAX], when[32];
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
		rv = EXIT_FAIL;
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
	char sender[OPS_SENDER_MAX];
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
		return EXIT_FAIL;
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
		rv = EXIT_FAIL;
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
	char sender[OPS_SENDER_MAX];
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
	char sender[OPS_SENDER_MAX];
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

/* ---- reading: stats, top, sender, network, log, reset, metrics ---------------------- */

#define LOG_COUNT 20        /* log: entries shown by default */
#define FOLLOW_BLOCK_MS 500 /* log --follow: one XREAD BLOCK */

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
	return EXIT_FAIL;
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

/* ---- stats -------------------------------------------------------------------------- */

static int cmd_stats(struct ctl *ctl, char **args, int n)
{
	struct ops_stats v;
	struct opsread *o;
	long hours = 1;

	(void)args;
	(void)n;
	if (ctl->hours != NULL && !parse_number(ctl->hours, 1, OPS_HOURS_MAX, &hours))
		return usage_error("--hours '%s': a number of hours from 1 to %d", ctl->hours,
				   OPS_HOURS_MAX);
	if ((o = ops_connect(ctl)) == NULL)
		return EXIT_FAIL;
	if (ops_stats_gather(o, (int)hours, OPS_TOP_SENDERS, &v) != 0) {
		ops_stats_free(&v);
		return ops_failed(o);
	}
	if (ctl->json) {
		struct ops_json w = { .f = stdout };

		ops_json_open(&w, NULL, '{');
		ops_stats_json_body(&w, &v, ctl->now_ms);
		ops_json_close(&w, '}');
	} else {
		ops_stats_print(stdout, &v, ctl->now_ms);
	}
	ops_stats_free(&v);
	opsread_close(o);
	return 0;
}

/* ---- log ------------------------------------------------------------------------------ */

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
		ops_json_entry(w, e);
	else
		ops_log_line(stdout, e);
}

static int cmd_log(struct ctl *ctl, char **args, int n)
{
	struct ops_filter f = { 0 };
	struct ops_entries l = { 0 };
	struct ops_json w = { .f = stdout };
	char sender[OPS_SENDER_MAX], last[48];
	struct opsread *o;
	long count = LOG_COUNT;
	size_t i;

	(void)args;
	(void)n;
	if (ctl->count != NULL && !parse_number(ctl->count, 1, 1000000, &count))
		return usage_error("--count '%s': a number from 1 to 1000000", ctl->count);
	if (ctl->since != NULL && (f.since_ms = ops_parse_time(ctl->since, ctl->now_ms)) < 0)
		return usage_error("--since '%s': not a time like 2026-11-30T14:00:00Z, "
				   "1796040000, 15m or 2h",
				   ctl->since);
	if (ctl->cls != NULL && !ops_class_known(ctl->cls))
		return usage_error("--class '%s': personal, bulk, spam-risk or unknown", ctl->cls);
	f.cls = ctl->cls;
	if (ctl->sender != NULL) {
		if (!normalize_sender(ctl, ctl->sender, true, sender, sizeof(sender)))
			return EXIT_USAGE;
		f.sender = sender;
	}
	f.qid = ctl->qid;
	if ((o = ops_connect(ctl)) == NULL)
		return EXIT_FAIL;
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
	return 0;
}

/* ---- sender ----------------------------------------------------------------------------- */

static int cmd_sender(struct ctl *ctl, char **args, int n)
{
	struct ops_sender v;
	struct opsread *o;

	(void)n;
	memset(&v, 0, sizeof(v));
	if (!normalize_sender(ctl, args[0], true, v.name, sizeof(v.name)))
		return EXIT_USAGE;
	if ((o = ops_connect(ctl)) == NULL)
		return EXIT_FAIL;
	if (ops_sender_gather(o, &v) != 0) {
		ops_sender_free(&v);
		return ops_failed(o);
	}
	if (ctl->json)
		ops_sender_json(stdout, &v);
	else
		ops_sender_print(stdout, &v);
	ops_sender_free(&v);
	opsread_close(o);
	return 0;
}

/* ---- network ------------------------------------------------------------------------ */

/* store_mx_network_list callback: keep one grouped domain */
static void add_mx_domain(void *arg, const char *domain, long long last_seen_ms)
{
	struct ops_network *v = arg;
	char **d = reallocarray(v->mx_domains, v->n_mx_domains + 1, sizeof(*d));

	(void)last_seen_ms;
	if (d == NULL || (d[v->n_mx_domains] = strdup(domain)) == NULL) {
		if (d != NULL)
			v->mx_domains = d;
		return;
	}
	v->mx_domains = d;
	v->n_mx_domains++;
}

static int cmd_network(struct ctl *ctl, char **args, int n)
{
	struct ops_network v;
	char net[NETWORK_MAX];
	struct opsread *o;

	(void)n;
	memset(&v, 0, sizeof(v));
	if (!normalize_network(ctl, args[0], net, sizeof(net)))
		return EXIT_USAGE;
	v.name = net;
	if ((o = ops_connect(ctl)) == NULL)
		return EXIT_FAIL;
	if (ops_network_gather(o, &v) != 0 ||
	    store_mx_network_list(ctl->cfg, net, add_mx_domain, &v) < 0) {
		ops_network_free(&v);
		return ops_failed(o);
	}
	store_disconnect();
	if (ctl->json)
		ops_network_json(stdout, &v, ctl->now_ms);
	else
		ops_network_print(stdout, &v, ctl->now_ms);
	ops_network_free(&v);
	opsread_close(o);
	return 0;
}

/* ---- reset -------------------------------------------------------------------------- */

static int cmd_reset(struct ctl *ctl, char **args, int n)
{
	char sender[OPS_SENDER_MAX], net[NETWORK_MAX];
	struct opsread *o;
	long long deleted;

	(void)n;
	if (!normalize_sender(ctl, args[0], true, sender, sizeof(sender)) ||
	    (ctl->network != NULL && !normalize_network(ctl, ctl->network, net, sizeof(net))))
		return EXIT_USAGE;
	if ((o = ops_connect(ctl)) == NULL)
		return EXIT_FAIL;
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

/* ---- metrics ---------------------------------------------------------------------- */

static int cmd_metrics(struct ctl *ctl, char **args, int n)
{
	struct ops_stats v;
	struct opsread *o;
	long long blocked = -1, log_len = -1;

	(void)args;
	(void)n;
	memset(&v, 0, sizeof(v));
	if ((o = ops_connect(ctl)) == NULL ||
	    ops_stats_gather(o, 1, OPS_TOP_SENDERS, &v) != 0 ||
	    (blocked = opsread_blocked_count(o)) < 0 || (log_len = opsread_log_length(o)) < 0) {
		if (o != NULL)
			fprintf(stderr, "outboundctl: %s\n", opsread_error());
		/* a scraper still learns that the counters could not be read */
		if (!ctl->json)
			ops_metrics_down(stdout);
		ops_stats_free(&v);
		opsread_close(o);
		return EXIT_FAIL;
	}
	ops_metrics_write(stdout, &v, blocked, log_len, ctl->now_ms, ctl->json);
	ops_stats_free(&v);
	opsread_close(o);
	return 0;
}

/* ---- top ------------------------------------------------------------------------------- */

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

static int top_gather(struct opsread *o, struct ops_stats *v, struct ops_entries *tf)
{
	struct ops_filter f = { .type = "tempfail" };

	if (ops_stats_gather(o, 1, OPS_TOP_SHOW, v) != 0)
		return -1;
	return opsread_log_back(o, &f, OPS_TOP_SHOW, 2000, tf);
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
		return EXIT_FAIL;
	if (live)
		top_terminal();
	else if (ctl->json)
		catch_stop();
	do {
		struct ops_stats v;
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
			ops_stats_free(&v);
			ops_entries_free(&tf);
			if (o == NULL) {
				fprintf(stderr, "outboundctl: %s\n", opsread_error());
				return EXIT_FAIL;
			}
			return ops_failed(o);
		}
		if (ctl->json) {
			struct ops_json w = { .f = stdout };
			size_t i;

			ops_json_open(&w, NULL, '{');
			ops_stats_json_body(&w, &v, ctl->now_ms);
			ops_json_open(&w, "tempfails", '[');
			for (i = 0; i < tf.n; i++)
				ops_json_entry(&w, &tf.v[i]);
			ops_json_close(&w, ']');
			ops_json_close(&w, '}');
			fflush(stdout);
		} else {
			if ((f = open_memstream(&frame, &len)) == NULL)
				ops_oom();
			if (ok)
				ops_top_frame(f, &v, &tf, ctl->now_ms, interval);
			else
				fprintf(f, "outboundctl top: %s\n(trying again every %lds; q: quit)\n",
					opsread_error(), interval);
			if (fclose(f) != 0)
				ops_oom();
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
		ops_stats_free(&v);
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
			fprintf(stderr, "usage: outboundctl %s%s%s\n", commands[i].name,
				commands[i].args[0] ? " " : "", commands[i].args);
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
 * report_errors - configuration errors as outboundctl: FILE:LINE: error:
 * ...; warnings concern the daemon (outbound-milter -t shows them), not
 * this tool
 */
static void report_errors(void *arg, const char *file, int line, bool is_error,
			  const char *msg)
{
	if (!is_error)
		return;
	fputs("outboundctl: ", stderr);
	config_report_stderr(arg, file, line, is_error, msg);
}

/* ---- credentials ------------------------------------------------------------------ */

/* use_readonly - this run's configuration authenticates with the read-only credentials */
static void use_readonly(struct redis_conf *r)
{
	char *user = r->user, *file = r->password_file;

	/* swapped, not copied: config_free frees all four as before */
	r->user = r->readonly_user;
	r->password_file = r->readonly_password_file;
	r->readonly_user = user;
	r->readonly_password_file = file;
}

/* run_as - "user NAME" this process runs as, or "uid N" */
static const char *run_as(char *buf, size_t size)
{
	struct passwd *pw = getpwuid(geteuid()); /* cppcheck-suppress getpwuidCalled ; no thread here */

	if (pw != NULL && pw->pw_name != NULL)
		snprintf(buf, size, "user %s", pw->pw_name);
	else
		snprintf(buf, size, "uid %lu", (unsigned long)geteuid());
	return buf;
}

/*
 * credentials_check - the password file this run authenticates with can
 * be opened; otherwise one line: which file, why, as whom, and what would
 * work (OPTION: the option naming it; READS: the command only reads;
 * READONLY: the read-only credentials are configured)
 */
static int credentials_check(const char *file, const char *option, bool reads, bool readonly)
{
	char who[80];
	const char *hint;
	int fd, err;

	if (file == NULL || file[0] == '\0')
		return 0;
	if ((fd = open(file, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC)) >= 0) {
		close(fd);
		return 0;
	}
	err = errno;
	if (readonly)
		hint = "the read-only credentials are meant for a group of administrators "
		       "(mode 0640, group adm for instance): ask to be in the file's group";
	else if (reads)
		hint = "to read without it, set readonly_user and readonly_password_file "
		       "in the redis section, see outboundctl(1)";
	else
		hint = "this command writes and needs it: run it as a user who may read "
		       "the file (root)";
	fprintf(stderr,
		"outboundctl: cannot read the Redis credentials: %s %s: %s (running as %s); %s\n",
		option, file, strerror(err), run_as(who, sizeof(who)), hint);
	return EXIT_FAIL;
}

/* credentials_pick - the credentials for CMD, checked; 0 or EXIT_FAIL */
static int credentials_pick(struct ctl *ctl, const struct command *cmd)
{
	struct redis_conf *r = &ctl->cfg->redis;
	bool readonly = cmd->reads && r->readonly_password_file != NULL &&
			r->readonly_password_file[0] != '\0';

	if (readonly)
		use_readonly(r);
	return credentials_check(r->password_file,
				 readonly ? "readonly_password_file" : "password_file", cmd->reads,
				 readonly);
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
	ctl.cfg = config_load_flags(ctl.config_file, CONFIG_CREDENTIALS_UNOPENED, report_errors,
				    NULL);
	if (ctl.cfg == NULL)
		return EXIT_FAIL;
	if ((rv = credentials_pick(&ctl, cmd)) != 0) {
		config_free(ctl.cfg);
		return rv;
	}
	ctl.now_ms = clock_ms(&ctl);
	rv = cmd->run(&ctl, ctl.words + n_name, n_args);
	if (fflush(stdout) != 0 && rv == 0) {
		fprintf(stderr, "outboundctl: writing the output: %s\n", strerror(errno));
		rv = EXIT_FAIL;
	}
	store_disconnect();
	config_free(ctl.cfg);
	return rv;
}
