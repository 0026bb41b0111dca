/*
 * opsview.c - what outboundctl's stats, top, sender, network, log and
 * metrics show: each view gathered in one go from the reads of opsread.c,
 * then written as text tables for people or as JSON (metrics: the
 * Prometheus text exposition) to any FILE, so that outboundctl.c keeps
 * only the command line, the terminal handling of top and the --follow
 * loop. First the output helpers the views share with outboundctl.c (a
 * JSON writer, text tables, times and durations), then the views.
 *
 * Nothing here talks to Redis itself. Out of memory ends the program.
 */
#define _GNU_SOURCE /* vasprintf, timegm */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "network.h"
#include "opsview.h"

/* ---- output helpers --------------------------------------------------------------- */

size_t ops_utf8_len(const unsigned char *s, size_t left)
{
	size_t n, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4;
	else
		return 0;
	if (n > left)
		return 0;
	for (i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	/* overlong forms, surrogates, beyond U+10FFFF */
	if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] > 0x9f) ||
	    (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] > 0x8f))
		return 0;
	return n;
}

void ops_json_string(FILE *f, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t left = strlen(str), n;

	fputc('"', f);
	while (left > 0) {
		switch (*s) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		case '\b':
			fputs("\\b", f);
			break;
		case '\f':
			fputs("\\f", f);
			break;
		default:
			if (*s < 0x20 || *s == 0x7f) {
				fprintf(f, "\\u%04x", *s);
			} else if ((n = ops_utf8_len(s, left)) == 0) {
				fputs("\\ufffd", f);
			} else {
				fwrite(s, 1, n, f);
				s += n;
				left -= n;
				continue;
			}
		}
		s++;
		left--;
	}
	fputc('"', f);
}

void ops_text_safe(FILE *f, const char *s)
{
	for (; *s != '\0'; s++)
		fputc(((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s, f);
}

size_t ops_text_width(const char *s)
{
	size_t w = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

static void ops_json_sep(struct ops_json *w, const char *key)
{
	if (w->more[w->depth])
		fputc(',', w->f);
	w->more[w->depth] = true;
	if (key != NULL) {
		ops_json_string(w->f, key);
		fputc(':', w->f);
	}
}

void ops_json_open(struct ops_json *w, const char *key, char bracket)
{
	ops_json_sep(w, key);
	fputc(bracket, w->f);
	if (w->depth + 1 < (int)(sizeof(w->more) / sizeof(w->more[0])))
		w->depth++;
	w->more[w->depth] = false;
}

void ops_json_close(struct ops_json *w, char bracket)
{
	fputc(bracket, w->f);
	if (w->depth > 0)
		w->depth--;
	if (w->depth == 0)
		fputc('\n', w->f);
}

void ops_json_str(struct ops_json *w, const char *key, const char *v)
{
	ops_json_sep(w, key);
	if (v != NULL)
		ops_json_string(w->f, v);
	else
		fputs("null", w->f);
}

void ops_json_int(struct ops_json *w, const char *key, long long v)
{
	ops_json_sep(w, key);
	fprintf(w->f, "%lld", v);
}

void ops_json_bool(struct ops_json *w, const char *key, bool v)
{
	ops_json_sep(w, key);
	fputs(v ? "true" : "false", w->f);
}

void ops_json_null(struct ops_json *w, const char *key)
{
	ops_json_sep(w, key);
	fputs("null", w->f);
}

void ops_table_init(struct ops_table *t, const char *columns)
{
	char *p;

	memset(t, 0, sizeof(*t));
	t->spec = ops_strdup(columns);
	for (p = t->spec; p != NULL && t->ncol < OPS_TABLE_COLS;) {
		char *bar = strchr(p, '|');

		if (bar != NULL)
			*bar = '\0';
		t->right[t->ncol] = *p == '>';
		t->head[t->ncol++] = *p == '>' ? p + 1 : p;
		p = bar != NULL ? bar + 1 : NULL;
	}
}

/* table_push - append the malloc'd cell S */
static void table_push(struct ops_table *t, char *s)
{
	t->cells = ops_grow(t->cells, &t->cap, t->n, sizeof(*t->cells));
	t->cells[t->n++] = s;
}

void ops_table_cell(struct ops_table *t, const char *s)
{
	table_push(t, ops_strdup(s != NULL ? s : "-"));
}

void ops_table_cellf(struct ops_table *t, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		ops_oom();
	va_end(ap);
	table_push(t, s);
}

size_t ops_table_rows(const struct ops_table *t)
{
	return t->ncol ? t->n / t->ncol : 0;
}

static void ops_table_line(const struct ops_table *t, FILE *f, int indent,
			   const char *const *cells, const size_t *width)
{
	size_t c, w;

	fprintf(f, "%*s", indent, "");
	for (c = 0; c < t->ncol; c++) {
		w = ops_text_width(cells[c]);
		if (t->right[c])
			fprintf(f, "%*s", (int)(width[c] - w), "");
		ops_text_safe(f, cells[c]);
		if (c + 1 == t->ncol)
			break;
		fprintf(f, "%*s", (int)(t->right[c] ? 2 : width[c] - w + 2), "");
	}
	fputc('\n', f);
}

void ops_table_print(const struct ops_table *t, FILE *f, int indent)
{
	size_t width[OPS_TABLE_COLS], r, c, rows = ops_table_rows(t);

	for (c = 0; c < t->ncol; c++)
		width[c] = ops_text_width(t->head[c]);
	for (r = 0; r < rows; r++)
		for (c = 0; c < t->ncol; c++)
			if (ops_text_width(t->cells[r * t->ncol + c]) > width[c])
				width[c] = ops_text_width(t->cells[r * t->ncol + c]);
	ops_table_line(t, f, indent, t->head, width);
	for (r = 0; r < rows; r++)
		ops_table_line(t, f, indent, (const char *const *)&t->cells[r * t->ncol], width);
}

void ops_table_free(struct ops_table *t)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t->spec);
	memset(t, 0, sizeof(*t));
}

void ops_iso_time(char *buf, size_t size, long long ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, size, "?");
}

void ops_duration(char *buf, size_t size, long long s)
{
	if (s < 0)
		s = 0;
	if (s < 60)
		snprintf(buf, size, "%llds", s);
	else if (s < 3600)
		snprintf(buf, size, "%lldm%02llds", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, size, "%lldh%02lldm", s / 3600, s % 3600 / 60);
	else
		snprintf(buf, size, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
}

long long ops_parse_time(const char *s, long long now_ms)
{
	int y, mo, d, h = 0, mi = 0, sec = 0, n = 0;
	long long v = 0, unit;
	const char *p = s;
	struct tm tm;
	time_t t;

	if (*p >= '0' && *p <= '9' && strlen(s) >= 10 && s[4] == '-') {
		/* ISO-8601 UTC: a date, then optionally THH:MM[:SS] and Z */
		/* field widths bound every number; %n checks the whole was digits */
		if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10) /* NOLINT(cert-err34-c) */
			return -1;
		p = s + n;
		if (*p == 'T' || *p == ' ') {
			n = 0;
			if (sscanf(p + 1, "%2d:%2d%n", &h, &mi, &n) != 2 || n != 5) /* NOLINT(cert-err34-c) */
				return -1;
			p += 1 + n;
			if (*p == ':') {
				n = 0;
				if (sscanf(p + 1, "%2d%n", &sec, &n) != 1 || n != 2) /* NOLINT(cert-err34-c) */
					return -1;
				p += 1 + n;
			}
			if (*p == 'Z')
				p++;
		}
		if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
		    sec > 60)
			return -1;
		memset(&tm, 0, sizeof(tm));
		tm.tm_year = y - 1900;
		tm.tm_mon = mo - 1;
		tm.tm_mday = d;
		tm.tm_hour = h;
		tm.tm_min = mi;
		tm.tm_sec = sec;
		if ((t = timegm(&tm)) == (time_t)-1)
			return -1;
		return (long long)t * 1000;
	}
	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (*p - '0');
		if (v > 100000000000LL)
			return -1;
	}
	if (*p == '\0')
		return v * 1000; /* epoch seconds */
	if ((unit = ops_unit_seconds(*p)) < 0)
		return -1;
	if (p[1] != '\0' || v * unit * 1000 > now_ms)
		return -1;
	return now_ms - v * unit * 1000;
}

long long ops_unit_seconds(char suffix)
{
	switch (suffix) {
	case 's':
		return 1;
	case 'm':
		return 60;
	case 'h':
		return 3600;
	case 'd':
		return 86400;
	case 'w':
		return 7 * 86400LL;
	default:
		return -1;
	}
}

/* ---- views: what the commands show, gathered, then as JSON or text ------------------- */

static const char *const class_names[] = { "personal", "bulk", "spam-risk", "unknown" };
#define N_CLASS_NAMES (sizeof(class_names) / sizeof(class_names[0]))
static const char *const action_names[] = { "accept", "tag", "hold", "tempfail", "reject" };
#define N_ACTION_NAMES (sizeof(action_names) / sizeof(action_names[0]))

#define SENDER_HOURS 24       /* sender: counters of the last 24 buckets */
#define SENDER_DECISIONS 10   /* sender: last decisions shown */
#define SENDER_LOG_SCAN 20000 /* sender: log entries looked at for them, at most */
#define TOP_BAR 20            /* top: width of a bar */

/* ops_hour_span - "2026-11-30 14:00-14:59 UTC" for the HOURS buckets ending with NOW's */
static void ops_hour_span(char *buf, size_t size, long long now_ms, int hours)
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
		if (usage_empty(&u->v[i]))
			ops_usage_clear(&u->v[i]);
		else
			u->v[k++] = u->v[i];
	}
	u->n = k;
}

/*
 * usage_read - add the windows SCAN finds (of NETWORK, with scope value
 * SCOPE; NULL: any) to U, drop duplicate rows, count the units of each and
 * leave out the empty ones; -1 on error
 */
static int usage_read(struct opsread *o, const char *network, const char *scope,
		      struct ops_usages *u)
{
	if (opsread_usage_scan(o, network, scope, u) != 0)
		return -1;
	ops_usages_unique(u);
	if (opsread_usage_fetch(o, u) != 0)
		return -1;
	usage_drop_empty(u);
	return 0;
}

/* usage_row - the RULE, SCOPE, HOURLY, BURST and WINDOW cells of U */
static void usage_row(struct ops_table *t, const struct ops_usage *u)
{
	char hourly[48], burst[48];

	usage_cells(u, hourly, burst, sizeof(hourly));
	ops_table_cell(t, u->rule);
	ops_table_cell(t, u->scope);
	ops_table_cell(t, hourly);
	ops_table_cell(t, burst);
	if (u->def != NULL)
		ops_table_cellf(t, "%lds", u->lv.burst_window);
	else
		ops_table_cell(t, "-");
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
	const struct ops_net *x = a, *y = b;
	long long tx = x->accepted + x->tempfailed, ty = y->accepted + y->tempfailed;

	if (tx != ty)
		return tx > ty ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* stats_networks - the networks of the counters and of the windows, busiest first */
static void stats_networks(struct ops_stats *v)
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
		ops_oom();
	for (i = 0; i < v->names.n; i++) {
		struct ops_net *r = &v->nets[v->n_nets++];

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
		    strcmp(u->v[i].rule, u->v[k - 1].rule) == 0)
			ops_usage_clear(&u->v[i]);
		else
			u->v[k++] = u->v[i];
	}
	u->n = k;
}

void ops_stats_free(struct ops_stats *v)
{
	ops_counts_free(&v->fields);
	ops_counts_free(&v->top);
	ops_usages_free(&v->usage);
	ops_counts_free(&v->names);
	free(v->nets);
	memset(v, 0, sizeof(*v));
}

/* stats_gather - counters of HOURS buckets, the windows now, TOP_N senders; -1 on error */
int ops_stats_gather(struct opsread *o, int hours, size_t top_n, struct ops_stats *v)
{
	size_t i;

	memset(v, 0, sizeof(*v));
	v->hours = hours;
	if (opsread_stats(o, hours, &v->fields, &v->top, top_n) != 0 ||
	    usage_read(o, NULL, NULL, &v->usage) != 0)
		return -1;
	stats_busiest(&v->usage);
	for (i = 0; i < v->fields.n; i++)
		if (strncmp(v->fields.v[i].name, "monitor:", 8) == 0 && v->fields.v[i].n > 0)
			v->monitor = true;
	stats_networks(v);
	return 0;
}

/* the class names to show: the four, then any other the counters have */
static void stats_classes(const struct ops_stats *v, struct ops_counts *out)
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

void ops_stats_json_body(struct ops_json *w, const struct ops_stats *v, long long now_ms)
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
		const struct ops_net *r = &v->nets[i];

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

static void stats_print_classes(FILE *f, const struct ops_stats *v)
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

static void stats_print_actions(FILE *f, const struct ops_stats *v)
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

static void stats_print_networks(FILE *f, const struct ops_stats *v)
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
		const struct ops_net *r = &v->nets[i];

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

void ops_stats_print(FILE *f, const struct ops_stats *v, long long now_ms)
{
	char span[128];

	ops_hour_span(span, sizeof(span), now_ms, v->hours);
	if (v->hours == 1)
		fprintf(f, "Hour %s (the current hour bucket)\n\n", span);
	else
		fprintf(f, "Last %d hours: %s\n\n", v->hours, span);
	stats_print_classes(f, v);
	fputc('\n', f);
	stats_print_actions(f, v);
	fputs("\nNetworks (HOURLY, BURST: the busiest scope value of each rule, windows now)\n", f);
	stats_print_networks(f, v);
	fputc('\n', f);
	stats_print_top(f, &v->top, v->top.n);
}

bool ops_class_known(const char *name)
{
	size_t i;

	for (i = 0; i < N_CLASS_NAMES; i++)
		if (strcmp(name, class_names[i]) == 0)
			return true;
	return false;
}

/* ---- log ------------------------------------------------------------------------- */

static const char *const log_numeric[] = { "rcpts", "known", "velocity", "tempfailed", "would_tempfail",
					   "used", "max", "window" };

/* a number of at most 18 digits (fits a long long) */
static bool all_digits(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 18)
		return false;
	for (; *s != '\0'; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

void ops_json_entry(struct ops_json *w, const struct ops_entry *e)
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

/*
 * log_value - V as the daemon writes a value into its log lines (log.h):
 * bare when it is plain, else quoted and escaped; never cut here
 */
static void log_value(FILE *f, const char *v)
{
	char small[LOG_QUOTE_SIZE], *buf = small;
	/* the worst escape is 4 bytes a byte, plus the quotes and what log_quote_into keeps */
	size_t need = 4 * strlen(v) + 16;

	if (need > sizeof(small) && (buf = malloc(need)) == NULL)
		ops_oom();
	log_quote_into(buf, buf == small ? sizeof(small) : need, v);
	fputs(buf, f);
	if (buf != small)
		free(buf);
}

/* log_key - a field name from the stream: a byte that could end it or start a value is '?' */
static void log_key(FILE *f, const char *k)
{
	if (*k == '\0')
		fputc('?', f);
	for (; *k != '\0'; k++)
		fputc(log_bare_byte((unsigned char)*k) ? *k : '?', f);
}

static void log_field(FILE *f, const struct ops_entry *e, const char *name)
{
	const char *v = ops_entry_get(e, name);

	if (v == NULL)
		return;
	fprintf(f, " %s=", name);
	log_value(f, v);
}

/*
 * log_line - one entry as the daemon's decision line, after its time:
 * 2026-11-30T14:02:03Z QID class=bulk action=tag sender=... reasons=...
 * 2026-11-30T14:02:03Z QID tempfail sender=... rcpt=... used=10/10 window=60s
 * Every value is written as the daemon writes it (log_quote), so that a
 * value from outside can never add or change a field of the line.
 */
void ops_log_line(FILE *f, const struct ops_entry *e)
{
	static const char *const msg_fields[] = { "class", "action", "sender", "client", "rcpts",
						  "known", "velocity", "tempfailed",
						  "would_tempfail", "networks",
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
	log_value(f, qid != NULL ? qid : "-");
	if (type != NULL && strcmp(type, "tempfail") == 0) {
		fputs(" tempfail", f);
		for (i = 0; i < sizeof(tf_fields) / sizeof(tf_fields[0]); i++)
			log_field(f, e, tf_fields[i]);
		if (used != NULL) {
			char *v;

			/* "used/max", one value */
			if (asprintf(&v, "%s%s%s", used, max != NULL ? "/" : "",
				     max != NULL ? max : "") < 0)
				ops_oom();
			fputs(" used=", f);
			log_value(f, v);
			free(v);
		}
		if (window != NULL) {
			fputs(" window=", f);
			if (all_digits(window))
				fprintf(f, "%ss", window);
			else
				log_value(f, window);
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
			log_key(f, e->kv[i]);
			fputc('=', f);
			log_value(f, e->kv[i + 1]);
		}
	}
	fputc('\n', f);
}

/* ---- sender ------------------------------------------------------------------------ */

/* sender_windows - the windows the sender's mail counts in, on NETS and any found by SCAN */
static int sender_windows(struct opsread *o, const char *sender,
			  const struct ops_counts *nets, struct ops_usages *u)
{
	const struct config *cfg = opsread_config(o);
	const char *at = strrchr(sender, '@');
	size_t i, k;

	for (i = 0; i < nets->n; i++) {
		for (k = 0; k < cfg->n_limits; k++) {
			const struct limit_rule *r = &cfg->limits[k];
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
	return usage_read(o, NULL, sender, u);
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

void ops_sender_free(struct ops_sender *v)
{
	ops_counts_free(&v->day);
	ops_counts_free(&v->hour);
	ops_counts_free(&v->nets_day);
	ops_counts_free(&v->nets_hour);
	ops_usages_free(&v->windows);
	ops_entries_free(&v->decisions);
}

int ops_sender_gather(struct opsread *o, struct ops_sender *v)
{
	struct ops_filter f = { .sender = v->name };

	if (opsread_sender_hours(o, v->name, SENDER_HOURS, &v->day, &v->hour) != 0)
		return -1;
	sender_nets(&v->day, &v->nets_day);
	sender_nets(&v->hour, &v->nets_hour);
	if (sender_windows(o, v->name, &v->nets_day, &v->windows) != 0 ||
	    (v->velocity = opsread_velocity(o, v->name)) < 0 ||
	    (v->relationships = opsread_relationships(o, v->name)) < 0 ||
	    (v->blocked = opsread_block(o, v->name, v->reason, sizeof(v->reason), &v->ttl)) < 0 ||
	    opsread_log_back(o, &f, SENDER_DECISIONS, SENDER_LOG_SCAN, &v->decisions) != 0)
		return -1;
	ops_usages_sort_busiest(&v->windows);
	return 0;
}

void ops_sender_json(FILE *f, const struct ops_sender *v)
{
	struct ops_json w = { .f = f };
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
		ops_json_entry(&w, &v->decisions.v[i - 1]);
	ops_json_close(&w, ']');
	ops_json_close(&w, '}');
}

void ops_sender_print(FILE *f, const struct ops_sender *v)
{
	struct ops_table t;
	char d[32];
	size_t i;

	fprintf(f, "Sender %s\n", v->name);
	if (v->blocked == 1) {
		fputs("  block:          blocked (reason: ", f);
		ops_text_safe(f, v->reason);
		if (v->ttl >= 0) {
			ops_duration(d, sizeof(d), v->ttl);
			fprintf(f, "), expires in %s\n", d);
		} else {
			fputs("), until unblocked\n", f);
		}
	} else {
		fputs("  block:          none\n", f);
	}
	fprintf(f, "  velocity:       %lld distinct recipients in the last hour\n", v->velocity);
	fprintf(f, "  relationships:  %lld known correspondents\n\n", v->relationships);

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
	ops_table_print(&t, f, 0);
	ops_table_free(&t);

	fputc('\n', f);
	if (v->nets_day.n == 0) {
		fputs("No accepted recipients in the last 24 h.\n", f);
	} else {
		ops_table_init(&t, "NETWORK|>THIS HOUR|>LAST 24 H");
		for (i = 0; i < v->nets_day.n; i++) {
			ops_table_cell(&t, v->nets_day.v[i].name);
			ops_table_cellf(&t, "%lld",
					ops_counts_get(&v->nets_hour, v->nets_day.v[i].name));
			ops_table_cellf(&t, "%lld", v->nets_day.v[i].n);
		}
		ops_table_print(&t, f, 0);
		ops_table_free(&t);
	}

	fputc('\n', f);
	if (v->windows.n == 0) {
		fputs("No limits in use (no unit in any window now).\n", f);
	} else {
		fputs("Limits in use (windows now)\n", f);
		ops_table_init(&t, "NETWORK|RULE|SCOPE|>HOURLY|>BURST|>WINDOW");
		for (i = 0; i < v->windows.n; i++) {
			ops_table_cell(&t, v->windows.v[i].network);
			usage_row(&t, &v->windows.v[i]);
		}
		ops_table_print(&t, f, 0);
		ops_table_free(&t);
	}

	fputc('\n', f);
	if (v->decisions.n == 0) {
		fputs("No decisions in the log.\n", f);
		return;
	}
	fprintf(f, "Last decisions (newest last)\n");
	for (i = v->decisions.n; i > 0; i--)
		ops_log_line(f, &v->decisions.v[i - 1]);
}

/* ---- network --------------------------------------------------------------------- */

int ops_network_gather(struct opsread *o, struct ops_network *v)
{
	struct ops_counts top = { 0 };
	int rv = -1;

	if (opsread_stats(o, 1, &v->fields, &top, 1) == 0 &&
	    usage_read(o, v->name, NULL, &v->usage) == 0)
		rv = 0;
	ops_counts_free(&top);
	if (rv != 0)
		return -1;
	ops_usages_sort_busiest(&v->usage);
	v->accepted = field_get(&v->fields, "net:%s:accepted", v->name);
	v->tempfailed = field_get(&v->fields, "net:%s:tempfailed", v->name);
	v->monitor_tempfailed = field_get(&v->fields, "net:%s:monitor_tempfailed", v->name);
	return 0;
}

void ops_network_free(struct ops_network *v)
{
	ops_counts_free(&v->fields);
	ops_usages_free(&v->usage);
	for (size_t i = 0; i < v->n_mx_domains; i++)
		free(v->mx_domains[i]);
	free(v->mx_domains);
}

void ops_network_json(FILE *f, const struct ops_network *v, long long now_ms)
{
	struct ops_json w = { .f = f };
	size_t i, shown = v->usage.n < OPS_NETWORK_TOP ? v->usage.n : OPS_NETWORK_TOP;
	char hour[16];

	ops_hour(now_ms, hour);
	ops_json_open(&w, NULL, '{');
	ops_json_str(&w, "network", v->name);
	ops_json_str(&w, "hour", hour);
	ops_json_int(&w, "accepted", v->accepted);
	ops_json_int(&w, "tempfailed", v->tempfailed);
	ops_json_int(&w, "monitor_tempfailed", v->monitor_tempfailed);
	ops_json_int(&w, "scope_values", (long long)v->usage.n);
	ops_json_open(&w, "top", '[');
	for (i = 0; i < shown; i++)
		json_usage(&w, &v->usage.v[i], false);
	ops_json_close(&w, ']');
	ops_json_open(&w, "mx_domains", '[');
	for (i = 0; i < v->n_mx_domains; i++)
		ops_json_str(&w, NULL, v->mx_domains[i]);
	ops_json_close(&w, ']');
	ops_json_close(&w, '}');
}

/* the domains grouped into the network by MX (mx_grouping) */
static void print_mx_domains(FILE *f, const struct ops_network *v)
{
	if (v->n_mx_domains == 0)
		return;
	fprintf(f, "\nDomains grouped into %s by their MX hosts (%zu):\n", v->name,
		v->n_mx_domains);
	for (size_t i = 0; i < v->n_mx_domains; i++)
		fprintf(f, "  %s\n", v->mx_domains[i]);
}

void ops_network_print(FILE *f, const struct ops_network *v, long long now_ms)
{
	size_t i, shown = v->usage.n < OPS_NETWORK_TOP ? v->usage.n : OPS_NETWORK_TOP;
	struct ops_table t;
	char span[128];

	ops_hour_span(span, sizeof(span), now_ms, 1);
	fprintf(f, "Network %s, hour %s: %lld %s accepted, %lld tempfailed\n", v->name, span,
		v->accepted, v->accepted == 1 ? "recipient" : "recipients", v->tempfailed);
	if (v->usage.n == 0) {
		fputs("No unit in any window now.\n", f);
		print_mx_domains(f, v);
		return;
	}
	fprintf(f, "%zu scope %s in the windows now", v->usage.n,
		v->usage.n == 1 ? "value" : "values");
	if (v->usage.n > shown)
		fprintf(f, ", the %zu busiest:\n\n", shown);
	else
		fputs(":\n\n", f);
	ops_table_init(&t, "RULE|SCOPE|>HOURLY|>BURST|>WINDOW");
	for (i = 0; i < shown; i++)
		usage_row(&t, &v->usage.v[i]);
	ops_table_print(&t, f, 0);
	ops_table_free(&t);
	print_mx_domains(f, v);
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
		ops_oom();
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
		ops_oom();
	fam->s = ops_grow(fam->s, &fam->cap, fam->n, sizeof(*fam->s));
	fam->s[fam->n].labels = buf;
	fam->s[fam->n++].v = v;
}

static int prom_cmp(const void *a, const void *b)
{
	return strcmp(((const struct prom_sample *)a)->labels,
		      ((const struct prom_sample *)b)->labels);
}

/* prom_print - HELP, TYPE and the samples; one series per label set (added up) */
static void prom_print(FILE *f, const struct prom_family *fam)
{
	size_t i, k;

	fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n", fam->name, fam->help, fam->name);
	if (fam->n > 1)
		qsort(fam->s, fam->n, sizeof(*fam->s), prom_cmp);
	for (i = 0; i < fam->n; i = k) {
		long long v = fam->s[i].v;

		for (k = i + 1; k < fam->n && strcmp(fam->s[k].labels, fam->s[i].labels) == 0; k++)
			v += fam->s[k].v;
		fprintf(f, "%s%s %lld\n", fam->name, fam->s[i].labels, v);
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

static void metrics_fill(struct prom_family *m, const struct ops_stats *v,
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
		const struct ops_net *r = &v->nets[i];

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

static const struct prom_family prom_families[M_COUNT] = {
	[M_UP] = { "outbound_milter_up",
		   "1 when outboundctl could read the counters in Redis, 0 when it could not.",
		   NULL, 0, 0 },
	[M_HOUR_START] = { "outbound_milter_hour_start_timestamp_seconds",
			   "Start of the current UTC hour bucket that the *_hour gauges count.",
			   NULL, 0, 0 },
	[M_MESSAGES] = { "outbound_milter_messages_hour",
			 "Messages per class in the current UTC hour bucket.", NULL, 0, 0 },
	[M_RECIPIENTS] = { "outbound_milter_recipients_hour",
			   "Recipients of the messages per class in the current UTC hour bucket.",
			   NULL, 0, 0 },
	[M_ACTIONS] = { "outbound_milter_actions_hour",
			"Messages per class action in the current UTC hour bucket (mode monitor: "
			"the action it would have taken).",
			NULL, 0, 0 },
	[M_NETWORK] = { "outbound_milter_network_recipients_hour",
			"Recipients per recipient network, accepted or tempfailed by a rate "
			"limit, in the current UTC hour bucket.",
			NULL, 0, 0 },
	[M_TOP] = { "outbound_milter_top_sender_recipients_hour",
		    "Recipients of the accepted mail of the 10 busiest senders in the current "
		    "UTC hour bucket.",
		    NULL, 0, 0 },
	[M_BLOCKED] = { "outbound_milter_blocked_senders", "Senders blocked with outboundctl block.",
			NULL, 0, 0 },
	[M_LOG] = { "outbound_milter_log_entries", "Entries in the decision log stream.", NULL, 0,
		    0 },
};

void ops_metrics_write(FILE *f, const struct ops_stats *v, long long blocked, long long log_len,
		       long long now_ms, bool json)
{
	struct prom_family m[M_COUNT];
	size_t i;

	memcpy(m, prom_families, sizeof(m));
	metrics_fill(m, v, blocked, log_len, now_ms);
	if (json) {
		struct ops_json w = { .f = f };

		ops_json_open(&w, NULL, '[');
		for (i = 0; i < M_COUNT; i++)
			prom_json(&w, &m[i]);
		ops_json_close(&w, ']');
	} else {
		for (i = 0; i < M_COUNT; i++)
			prom_print(f, &m[i]);
	}
	for (i = 0; i < M_COUNT; i++)
		prom_free(&m[i]);
}

void ops_metrics_down(FILE *f)
{
	const struct prom_family *up = &prom_families[M_UP];

	fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n%s 0\n", up->name, up->help, up->name,
		up->name);
}

/* ---- top --------------------------------------------------------------------------------- */

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
void ops_top_frame(FILE *f, const struct ops_stats *v, const struct ops_entries *tf,
		      long long now_ms, long interval)
{
	struct ops_counts classes = { 0 };
	struct ops_table t;
	char when[32], hour[128], bar[TOP_BAR + 4], hourly[48], burst[48];
	size_t i, k;

	ops_iso_time(when, sizeof(when), now_ms);
	ops_hour_span(hour, sizeof(hour), now_ms, 1);
	fprintf(f, "outboundctl top  %s  hour %s  every %lds  q: quit\n\n", when, hour, interval);

	fputs("NETWORKS: the busiest scope value of each rule (windows now)\n", f);
	if (v->n_nets == 0)
		fputs("  no traffic this hour\n", f);
	ops_table_init(&t, "NETWORK|>ACCEPTED|>TEMPFAILED|RULE|HOURLY|>USED|>BURST|BUSIEST");
	for (i = 0; i < v->n_nets; i++) {
		const struct ops_net *r = &v->nets[i];

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
	for (i = 0; i < v->top.n && i < OPS_TOP_SHOW; i++) {
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
		ops_log_line(f, &tf->v[i]);
	}
}

