/*
 * test_config.c - config_load: the shipped conf/outbound-milter.conf (clean,
 * every option documented, the documented defaults), an empty file, every
 * kind of error and warning with its exact line, the manual's one-line
 * syntax with ';', domain normalisation, overrides and classes, and the
 * reference counting of the current snapshot (also under threads).
 * Run it under valgrind to check for leaks.
 */
#define _GNU_SOURCE /* asprintf */
#include <malloc.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------ helpers */

struct report {
	int line;
	bool is_error;
	char msg[512];
};

struct reports {
	size_t n;
	size_t errors;
	struct report r[64];
	char file[512];
};

static void collect(void *arg, const char *file, int line, bool is_error, const char *msg)
{
	struct reports *rs = arg;

	snprintf(rs->file, sizeof(rs->file), "%s", file);
	if (is_error)
		rs->errors++;
	if (rs->n < N(rs->r)) {
		rs->r[rs->n].line = line;
		rs->r[rs->n].is_error = is_error;
		snprintf(rs->r[rs->n].msg, sizeof(rs->r[rs->n].msg), "%s", msg);
		rs->n++;
	}
}

static void print_reports(const struct reports *rs)
{
	for (size_t i = 0; i < rs->n; i++)
		print_message("  report: %d: %s: %s\n", rs->r[i].line,
			      rs->r[i].is_error ? "error" : "warning", rs->r[i].msg);
}

/*
 * A temporary file holding LEN bytes of TEXT; the caller unlinks and frees.
 * NULL on failure (no cmocka assertion: threads use it too).
 */
static char *write_temp_raw(const char *text, size_t len)
{
	const char *dir = getenv("TMPDIR");
	char *path;
	int fd;

	if (dir == NULL || *dir == '\0')
		dir = "/tmp";
	if (asprintf(&path, "%s/obm-config-XXXXXX", dir) < 0)
		return NULL;
	fd = mkstemp(path);
	if (fd < 0) {
		free(path);
		return NULL;
	}
	if (write(fd, text, len) != (ssize_t)len) {
		close(fd);
		unlink(path);
		free(path);
		return NULL;
	}
	close(fd);
	return path;
}

static char *write_temp(const char *text, size_t len)
{
	char *path = write_temp_raw(text, len);

	assert_non_null(path);
	return path;
}

/* load TEXT from a temporary file, collecting the reports; thread-safe */
static struct config *load_text_raw(const char *text, struct reports *rs, bool *ok)
{
	char *path = write_temp_raw(text, strlen(text));
	struct config *cfg;

	memset(rs, 0, sizeof(*rs));
	*ok = path != NULL;
	if (path == NULL)
		return NULL;
	cfg = config_load(path, collect, rs);
	unlink(path);
	free(path);
	return cfg;
}

static struct config *load_text(const char *text, struct reports *rs)
{
	bool ok;
	struct config *cfg = load_text_raw(text, rs, &ok);

	assert_true(ok);
	return cfg;
}

static bool has_report(const struct reports *rs, int line, bool is_error, const char *needle)
{
	for (size_t i = 0; i < rs->n; i++)
		if (rs->r[i].line == line && rs->r[i].is_error == is_error &&
		    strstr(rs->r[i].msg, needle) != NULL)
			return true;
	return false;
}

/* TEXT must fail with an error at LINE whose message holds NEEDLE */
static void expect_error(const char *text, int line, const char *needle)
{
	struct reports rs;
	struct config *cfg = load_text(text, &rs);

	if (cfg != NULL || !has_report(&rs, line, true, needle)) {
		print_message("config:\n%s\nexpected error at line %d with '%s'\n", text, line,
			      needle);
		print_reports(&rs);
	}
	config_free(cfg);
	assert_null(cfg);
	assert_true(has_report(&rs, line, true, needle));
}

/* TEXT must load, with a warning at LINE whose message holds NEEDLE */
static void expect_warning(const char *text, int line, const char *needle)
{
	struct reports rs;
	struct config *cfg = load_text(text, &rs);

	if (cfg == NULL || !has_report(&rs, line, false, needle)) {
		print_message("config:\n%s\nexpected warning at line %d with '%s'\n", text,
			      line, needle);
		print_reports(&rs);
	}
	assert_non_null(cfg);
	assert_int_equal(rs.errors, 0);
	assert_true(has_report(&rs, line, false, needle));
	config_free(cfg);
}

/* TEXT must load without any report */
static struct config *load_clean(const char *text)
{
	struct reports rs;
	struct config *cfg = load_text(text, &rs);

	if (cfg == NULL || rs.n != 0) {
		print_message("config:\n%s\nexpected no reports\n", text);
		print_reports(&rs);
	}
	assert_non_null(cfg);
	assert_int_equal(rs.n, 0);
	return cfg;
}

static char *shipped_path(void)
{
	const char *src = getenv("OBM_SRCDIR");
	char *path;

	assert_true(asprintf(&path, "%s/conf/outbound-milter.conf",
			     src && *src ? src : ".") > 0);
	return path;
}

static char *read_all(const char *path)
{
	FILE *fp = fopen(path, "r");
	char *buf;
	long n;

	if (fp == NULL)
		print_message("cannot open %s (set OBM_SRCDIR to the source tree)\n", path);
	assert_non_null(fp);
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	n = ftell(fp);
	assert_true(n > 0);
	rewind(fp);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
	buf[n] = '\0';
	fclose(fp);
	return buf;
}

#define LIMIT "limit any { }\n" /* keeps "nothing is limited" out of the way */

/* ------------------------------------------------------------ defaults */

/* the documented defaults (outbound-milter.conf(5)), whatever file gave them */
static void assert_defaults(const struct config *c)
{
	assert_string_equal(c->socket, "unix:/var/spool/postfix/outbound-milter/milter.sock");
	assert_int_equal(c->socket_mode, 0660);
	assert_string_equal(c->socket_group, "postfix");
	assert_string_equal(c->pid_file, "/run/outbound-milter/outbound-milter.pid");
	assert_int_equal(c->mode, MODE_ENFORCE);
	assert_string_equal(c->user, "");
	assert_string_equal(c->group, "");
	assert_int_equal(c->outbound_daemons.n, 1);
	assert_string_equal(c->outbound_daemons.v[0], "ORIGINATING");
	assert_int_equal(c->outbound_networks.n, 2);
	assert_int_equal(c->outbound_networks.v[0].prefix, 8);
	assert_int_equal(c->outbound_networks.v[1].prefix, 128);
	assert_int_equal(c->local_domains.n, 0);
	assert_int_equal(c->exempt_senders.n, 0);
	assert_int_equal(c->exempt_clients.n, 0);
	assert_string_equal(c->subaddress_separator, "+");
	assert_true(c->learn_inbound);
	assert_true(c->learn_outbound);
	assert_int_equal(c->relationship_ttl, 365);
	assert_int_equal(c->relationship_max, 10000);
	assert_false(c->mx_grouping);
	assert_int_equal(c->mx_cache_ttl, 86400);
	assert_int_equal(c->dns_timeout_ms, 300);
	assert_string_equal(c->dns_server, "");
	assert_int_equal(c->reservation_ttl, 300);
	assert_int_equal(c->log_max_entries, 100000);

	assert_string_equal(c->redis.host, "127.0.0.1");
	assert_int_equal(c->redis.port, 6379);
	assert_string_equal(c->redis.socket, "");
	assert_string_equal(c->redis.user, "");
	assert_string_equal(c->redis.password_file, "");
	assert_string_equal(c->redis.readonly_user, "");
	assert_string_equal(c->redis.readonly_password_file, "");
	assert_int_equal(c->redis.db, 0);
	assert_string_equal(c->redis.prefix, "obm:");
	assert_int_equal(c->redis.timeout_ms, 200);
	assert_int_equal(c->redis.on_error, ON_ERROR_ACCEPT);

	assert_int_equal(c->classify.personal_max_recipients, 5);
	assert_int_equal(c->classify.personal_max_hourly, 50);
	assert_true(c->classify.min_known_ratio == 0.5);
	assert_true(c->classify.require_unsubscribe);
	assert_true(c->classify.require_aligned_from);
	assert_string_equal(c->classify.header, "X-Outbound-Class");
	assert_true(c->classify.add_header);
	assert_false(c->classify.header_detail);

	assert_int_equal(c->class_action[CLASS_PERSONAL], ACTION_TAG);
	assert_int_equal(c->class_action[CLASS_BULK], ACTION_TAG);
	assert_int_equal(c->class_action[CLASS_SPAM_RISK], ACTION_HOLD);
	assert_int_equal(c->refs, 1);
}

static void test_empty_file(void **state)
{
	struct reports rs;
	struct config *c = load_text("", &rs);

	(void)state;
	assert_non_null(c);
	assert_defaults(c);
	assert_int_equal(c->n_networks, 0);
	assert_int_equal(c->n_limits, 0);
	/* the only report: nothing is limited (a warning without a line) */
	assert_int_equal(rs.n, 1);
	assert_int_equal(rs.errors, 0);
	assert_true(has_report(&rs, 0, false, "nothing is rate limited"));
	config_free(c);

	/* one limit section: every rule value at its default */
	c = load_clean("# only comments\n\n" LIMIT);
	assert_defaults(c);
	assert_int_equal(c->n_limits, 1);
	assert_string_equal(c->limits[0].name, "any");
	assert_int_equal(c->limits[0].scope, SCOPE_SENDER);
	assert_int_equal(c->limits[0].hourly, 100);
	assert_int_equal(c->limits[0].burst, 10);
	assert_int_equal(c->limits[0].burst_window, 60);
	assert_int_equal(c->limits[0].count, COUNT_RECIPIENTS);
	assert_int_equal(c->limits[0].classes, CLASS_ALL);
	assert_int_equal(c->limits[0].n_overrides, 0);
	config_free(c);
}

/* every option of outbound-milter.conf(5) */
static const char *const all_options[] = {
	"socket", "socket_mode", "socket_group", "pid_file", "mode", "user", "group",
	"outbound_daemons", "outbound_networks", "local_domains", "exempt_senders",
	"exempt_clients", "subaddress_separator", "learn_inbound", "learn_outbound",
	"relationship_ttl", "relationship_max", "mx_grouping", "mx_cache_ttl",
	"dns_timeout_ms", "dns_server",
	"reservation_ttl", "log_max_entries", "redis", "host", "port", "password_file",
	"readonly_user", "readonly_password_file", "db", "prefix",
	"timeout_ms", "on_error", "classify", "personal_max_recipients",
	"personal_max_hourly", "min_known_ratio", "require_unsubscribe",
	"require_aligned_from", "header", "add_header", "header_detail", "class", "action",
	"network",
	"domains", "mx", "limit", "scope", "hourly", "burst", "burst_window", "count",
	"classes",
};

static void test_shipped_conf(void **state)
{
	char *path = shipped_path();
	char *text = read_all(path);
	struct reports rs = {0};
	struct config *c;

	(void)state;
	c = config_load(path, collect, &rs);
	print_reports(&rs);
	assert_non_null(c);
	assert_int_equal(rs.n, 0); /* no error, no warning */
	assert_string_equal(c->file, path);
	assert_defaults(c);

	assert_int_equal(c->n_networks, 3);
	assert_string_equal(c->networks[0].name, "google");
	assert_int_equal(c->networks[0].domains.n, 2);
	assert_string_equal(c->networks[0].domains.v[0], "gmail.com");
	assert_string_equal(c->networks[0].domains.v[1], "googlemail.com");
	assert_int_equal(c->networks[0].mx.n, 1);
	assert_string_equal(c->networks[0].mx.v[0], "*.google.com");
	assert_string_equal(c->networks[1].name, "microsoft");
	assert_int_equal(c->networks[1].domains.n, 4);
	assert_string_equal(c->networks[1].mx.v[0], "*.outlook.com");
	assert_string_equal(c->networks[2].name, "yahoo");
	assert_int_equal(c->networks[2].domains.n, 3);
	assert_string_equal(c->networks[2].domains.v[2], "aol.com");
	assert_string_equal(c->networks[2].mx.v[0], "*.yahoodns.net");

	assert_int_equal(c->n_limits, 1);
	assert_string_equal(c->limits[0].name, "per-sender");
	assert_int_equal(c->limits[0].scope, SCOPE_SENDER);
	assert_int_equal(c->limits[0].hourly, 100);
	assert_int_equal(c->limits[0].burst, 10);
	assert_int_equal(c->limits[0].burst_window, 60);
	assert_int_equal(c->limits[0].count, COUNT_RECIPIENTS);
	assert_int_equal(c->limits[0].classes, CLASS_ALL);
	config_free(c);

	/* every option is documented in it */
	for (size_t i = 0; i < N(all_options); i++) {
		if (strstr(text, all_options[i]) == NULL)
			print_message("option %s is not in %s\n", all_options[i], path);
		assert_non_null(strstr(text, all_options[i]));
	}
	/* and the difference between the two units is explained */
	assert_non_null(strstr(text, "count = recipients"));
	assert_non_null(strstr(text, "recipients  every recipient"));
	assert_non_null(strstr(text, "messages    a message is one unit"));
	free(text);
	free(path);
}

/* the commented second rule of the shipped file, uncommented, is valid */
static void test_shipped_example_rule(void **state)
{
	char *path = shipped_path();
	char *text = read_all(path);
	char *start = strstr(text, "# limit fleet-bulk {");
	char *conf, *out;
	struct config *c;
	const struct limit_rule *r;

	(void)state;
	assert_non_null(start);
	conf = malloc(strlen(text) * 2 + 1);
	assert_non_null(conf);
	out = conf + sprintf(conf, "%s\n", text);
	/* "# x" -> "x" up to and including "# }" */
	for (char *line = start; line != NULL && *line == '#';) {
		char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);

		if (len >= 2) {
			memcpy(out, line + 2, len - 2);
			out += len - 2;
		}
		*out++ = '\n';
		if (len >= 3 && strncmp(line, "# }", 3) == 0)
			break;
		line = nl ? nl + 1 : NULL;
	}
	*out = '\0';

	c = load_clean(conf);
	assert_int_equal(c->n_limits, 2);
	r = &c->limits[1];
	assert_string_equal(r->name, "fleet-bulk");
	assert_int_equal(r->scope, SCOPE_GLOBAL);
	assert_int_equal(r->count, COUNT_MESSAGES);
	assert_int_equal(r->classes, (1u << CLASS_BULK) | (1u << CLASS_SPAM_RISK));
	assert_int_equal(r->n_overrides, 1);
	assert_string_equal(r->overrides[0].network, "google");
	assert_true(r->overrides[0].hourly > r->hourly);
	config_free(c);
	free(conf);
	free(text);
	free(path);
}

/* ------------------------------------------------------------ credentials */

/* load TEXT with FLAGS; the reports in RS */
static struct config *load_flags(const char *text, unsigned flags, struct reports *rs)
{
	char *file = write_temp_raw(text, strlen(text));
	struct config *c;

	assert_non_null(file);
	memset(rs, 0, sizeof(*rs));
	c = config_load_flags(file, flags, collect, rs);
	unlink(file);
	free(file);
	return c;
}

/* load a redis section with OPTION = "VALUE" on its line 2, with FLAGS */
static struct config *load_redis_opt(const char *option, const char *value, unsigned flags,
				     struct reports *rs)
{
	char text[512];

	snprintf(text, sizeof(text), "redis {\n %s = \"%s\"\n}\n" LIMIT, option, value);
	return load_flags(text, flags, rs);
}

/* the read-only credentials: the same rules as password_file, never opened */
static void test_readonly_credentials(void **state)
{
	char pw[] = "/tmp/obm-test-pw.XXXXXX", text[512];
	int fd = mkstemp(pw);
	struct reports rs;
	struct config *c;

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(chmod(pw, 0640), 0);
	snprintf(text, sizeof(text),
		 "redis {\n readonly_user = \"ro\"\n readonly_password_file = \"%s\"\n}\n" LIMIT,
		 pw);
	c = load_flags(text, 0, &rs);
	print_reports(&rs);
	assert_non_null(c);
	assert_int_equal(rs.n, 0);
	assert_string_equal(c->redis.readonly_user, "ro");
	assert_string_equal(c->redis.readonly_password_file, pw);
	assert_string_equal(c->redis.user, "");
	assert_string_equal(c->redis.password_file, "");
	config_free(c);

	/* readable by others, relative, missing: refused as for password_file */
	assert_int_equal(chmod(pw, 0644), 0);
	assert_null(c = load_redis_opt("readonly_password_file", pw, 0, &rs));
	assert_true(has_report(&rs, 2, true, "readonly_password_file"));
	assert_true(has_report(&rs, 2, true, "has mode 0644"));
	assert_null(c = load_redis_opt("readonly_password_file", "ro.pw", 0, &rs));
	assert_true(has_report(&rs, 2, true,
			       "readonly_password_file 'ro.pw' must be an absolute path"));
	assert_null(c = load_redis_opt("readonly_password_file", "/nonexistent/ro.pw", 0, &rs));
	assert_true(has_report(&rs, 2, true, "No such file"));
	/* a user without a password would be ignored: an error */
	assert_null(c = load_redis_opt("readonly_user", "ro", 0, &rs));
	assert_true(has_report(&rs, 2, true, "readonly_password_file is not"));

	/* CONFIG_CREDENTIALS_UNOPENED: the same checks on password_file */
	assert_null(c = load_redis_opt("password_file", pw, CONFIG_CREDENTIALS_UNOPENED, &rs));
	assert_true(has_report(&rs, 2, true, "password_file"));
	assert_true(has_report(&rs, 2, true, "has mode 0644"));
	assert_null(c = load_redis_opt("password_file", "/nonexistent/pw",
				       CONFIG_CREDENTIALS_UNOPENED, &rs));
	assert_true(has_report(&rs, 2, true, "No such file"));
	assert_int_equal(chmod(pw, 0600), 0);
	c = load_redis_opt("password_file", pw, CONFIG_CREDENTIALS_UNOPENED, &rs);
	assert_non_null(c);
	assert_int_equal(rs.n, 0);
	config_free(c);
	unlink(pw);
}

/* ------------------------------------------------------------ parsing */

static void test_values_and_syntax(void **state)
{
	struct config *c;

	(void)state;
	/* password_file must exist and be private to the daemon's user */
	char pw[] = "/tmp/obm-test-pw.XXXXXX", text[4096];
	int fd = mkstemp(pw);
	assert_true(fd >= 0);
	close(fd);
	snprintf(text, sizeof(text),
		"socket = \"inet:10025@127.0.0.1\"\n"
		"socket_mode = \"0600\"\n"
		"socket_group = \"\"\n"
		"mode = monitor\n"
		"user = \"obm\"; group = \"obm\"\n"
		"outbound_daemons = {\"ORIGINATING\", \"submission\"}\n"
		"outbound_networks = {\"192.0.2.0/24\", \"2001:db8::/32\", \"198.51.100.7\"}\n"
		"local_domains = {\"Example.ORG.\", \"bücher.example\"}\n"
		"exempt_senders = {\"Boss@Example.COM\", \"@Partner.Example\", \"trusted.example.\"}\n"
		"exempt_clients = {\"203.0.113.0/24\"}\n"
		"subaddress_separator = \"+-\"\n"
		"learn_inbound = false; learn_outbound = no\n"
		"relationship_ttl = 30\n"
		"relationship_max = 500\n"
		"mx_grouping = true\n"
		"mx_cache_ttl = 600\n"
		"dns_timeout_ms = 5000; dns_server = \"[2001:db8::53]:5353\"\n"
		"reservation_ttl = 120\n"
		"redis { host = \"redis.example\"; port = 6380; socket = \"/run/redis.sock\"\n"
		"        user = \"milter\"; password_file = \"%s\"; db = 3\n"
		"        readonly_user = \"milter-ro\"; readonly_password_file = \"%s\"\n"
		"        prefix = \"test:\"; timeout_ms = 50; on_error = tempfail }\n"
		"classify { personal_max_recipients = 0; personal_max_hourly = 20\n"
		"           min_known_ratio = 0.75; require_unsubscribe = false\n"
		"           require_aligned_from = false; header = \"X-Class\"; add_header = false\n"
		"           header_detail = true }\n"
		"class personal { action = accept }\n"
		"class bulk { action = reject }\n"
		"class \"spam-risk\" { action = tempfail }\n"
		"network Google { domains = {\"GMail.com\"}; mx = {\"*.Google.COM.\"} }\n"
		"limit a { scope = sender_domain; count = messages; hourly = 0; burst = 0 }\n"
		"limit b { scope = client; burst_window = 3600 }\n"
		"limit c { scope = global; classes = {\"spam-risk\"} }\n", pw, pw);
	c = load_clean(text);
	assert_string_equal(c->socket, "inet:10025@127.0.0.1");
	assert_int_equal(c->socket_mode, 0600);
	assert_string_equal(c->socket_group, "");
	assert_int_equal(c->mode, MODE_MONITOR);
	assert_string_equal(c->user, "obm");
	assert_string_equal(c->group, "obm");
	assert_int_equal(c->outbound_daemons.n, 2);
	assert_true(strlist_contains(&c->outbound_daemons, "submission"));
	assert_false(strlist_contains(&c->outbound_daemons, "SUBMISSION"));
	assert_int_equal(c->outbound_networks.n, 3);
	assert_int_equal(c->outbound_networks.v[0].prefix, 24);
	assert_int_equal(c->outbound_networks.v[1].prefix, 32);
	assert_int_equal(c->outbound_networks.v[2].prefix, 32);
	assert_int_equal(c->local_domains.n, 2);
	assert_string_equal(c->local_domains.v[0], "example.org");
	assert_string_equal(c->local_domains.v[1], "xn--bcher-kva.example");
	assert_int_equal(c->exempt_senders.n, 3);
	assert_string_equal(c->exempt_senders.v[0], "boss@example.com");
	assert_string_equal(c->exempt_senders.v[1], "@partner.example");
	assert_string_equal(c->exempt_senders.v[2], "trusted.example");
	assert_int_equal(c->exempt_clients.n, 1);
	assert_string_equal(c->subaddress_separator, "+-");
	assert_false(c->learn_inbound);
	assert_false(c->learn_outbound);
	assert_int_equal(c->relationship_ttl, 30);
	assert_int_equal(c->relationship_max, 500);
	assert_true(c->mx_grouping);
	assert_int_equal(c->mx_cache_ttl, 600);
	assert_int_equal(c->dns_timeout_ms, 5000);
	assert_string_equal(c->dns_server, "[2001:db8::53]:5353");
	assert_int_equal(c->reservation_ttl, 120);

	assert_string_equal(c->redis.host, "redis.example");
	assert_int_equal(c->redis.port, 6380);
	assert_string_equal(c->redis.socket, "/run/redis.sock");
	assert_string_equal(c->redis.user, "milter");
	assert_string_equal(c->redis.password_file, pw);
	assert_string_equal(c->redis.readonly_user, "milter-ro");
	assert_string_equal(c->redis.readonly_password_file, pw);
	assert_int_equal(c->redis.db, 3);
	assert_string_equal(c->redis.prefix, "test:");
	assert_int_equal(c->redis.timeout_ms, 50);
	assert_int_equal(c->redis.on_error, ON_ERROR_TEMPFAIL);

	assert_int_equal(c->classify.personal_max_recipients, 0);
	assert_int_equal(c->classify.personal_max_hourly, 20);
	assert_true(c->classify.min_known_ratio == 0.75);
	assert_false(c->classify.require_unsubscribe);
	assert_false(c->classify.require_aligned_from);
	assert_string_equal(c->classify.header, "X-Class");
	assert_false(c->classify.add_header);
	assert_true(c->classify.header_detail);

	assert_int_equal(c->class_action[CLASS_PERSONAL], ACTION_ACCEPT);
	assert_int_equal(c->class_action[CLASS_BULK], ACTION_REJECT);
	assert_int_equal(c->class_action[CLASS_SPAM_RISK], ACTION_TEMPFAIL);

	assert_int_equal(c->n_networks, 1);
	assert_string_equal(c->networks[0].name, "google");
	assert_string_equal(c->networks[0].domains.v[0], "gmail.com");
	assert_string_equal(c->networks[0].mx.v[0], "*.google.com");

	assert_int_equal(c->n_limits, 3);
	assert_int_equal(c->limits[0].scope, SCOPE_SENDER_DOMAIN);
	assert_int_equal(c->limits[0].count, COUNT_MESSAGES);
	assert_int_equal(c->limits[0].hourly, 0);
	assert_int_equal(c->limits[0].burst, 0);
	assert_int_equal(c->limits[1].scope, SCOPE_CLIENT);
	assert_int_equal(c->limits[1].burst_window, 3600);
	assert_int_equal(c->limits[2].scope, SCOPE_GLOBAL);
	assert_int_equal(c->limits[2].classes, 1u << CLASS_SPAM_RISK);
	config_free(c);

	/* lists: += appends to the default, a second = replaces */
	c = load_clean("outbound_networks += {\"10.0.0.0/8\"}\n"
		       "outbound_daemons = {\"a\"}\noutbound_daemons = {\"b\"}\n" LIMIT);
	assert_int_equal(c->outbound_networks.n, 3);
	assert_int_equal(c->outbound_daemons.n, 1);
	assert_string_equal(c->outbound_daemons.v[0], "b");
	config_free(c);

	/* numbers are decimal, whatever libconfuse would make of 010 */
	c = load_clean("limit a { hourly = 010; burst = 8 }\n");
	assert_int_equal(c->limits[0].hourly, 10);
	config_free(c);

	/* ';' and comments of every kind, inside strings they are text */
	c = load_clean("socket = \"unix:/run/a;b#c//d\" # trailing\n"
		       "// whole line\n"
		       "/* block\n   comment; */ socket_group = \"x/*y*/\"\n"
		       "pid_file = /run/x//y.pid\n" LIMIT);
	assert_string_equal(c->socket, "unix:/run/a;b#c//d");
	assert_string_equal(c->socket_group, "x/*y*/");
	assert_string_equal(c->pid_file, "/run/x//y.pid");
	config_free(c);
	unlink(pw);
}

static void test_overrides_and_classes(void **state)
{
	struct config *c;
	const struct limit_rule *r;

	(void)state;
	c = load_clean(
		"network google { domains = {\"gmail.com\"} }\n"
		"network yahoo { domains = {\"yahoo.com\"} }\n"
		"limit per-sender {\n"
		"  hourly = 100; burst = 10; burst_window = 120\n"
		"  classes = {bulk, \"spam-risk\"}\n"
		"  network google { hourly = 300; burst = 30 }\n"
		"  network yahoo { hourly = 50 }\n"
		"  network Example.ORG { burst = 5 }\n"
		"  network invalid { hourly = 0; burst = 0 }\n"
		"}\n"
		"limit personal-only { classes = {personal} }\n");
	assert_int_equal(c->n_limits, 2);
	r = &c->limits[0];
	assert_int_equal(r->burst_window, 120);
	assert_int_equal(r->classes, (1u << CLASS_BULK) | (1u << CLASS_SPAM_RISK));
	assert_int_equal(r->n_overrides, 4);
	assert_string_equal(r->overrides[0].network, "google");
	assert_int_equal(r->overrides[0].hourly, 300);
	assert_int_equal(r->overrides[0].burst, 30);
	assert_string_equal(r->overrides[1].network, "yahoo");
	assert_int_equal(r->overrides[1].hourly, 50);
	assert_int_equal(r->overrides[1].burst, 10); /* the rule's own */
	assert_string_equal(r->overrides[2].network, "example.org");
	assert_int_equal(r->overrides[2].hourly, 100);
	assert_int_equal(r->overrides[2].burst, 5);
	assert_string_equal(r->overrides[3].network, "invalid");
	assert_int_equal(r->overrides[3].hourly, 0);
	assert_int_equal(c->limits[1].classes, 1u << CLASS_PERSONAL);
	config_free(c);
}

/* ------------------------------------------------------------ problems */

struct bad_case {
	const char *text;
	int line;
	const char *needle;
};

static const struct bad_case errors[] = {
	/* unknown option, in the file and in a section */
	{"socket = \"unix:/x\"\nbogus = 1\n", 2, "bogus"},
	{"redis {\n  port = 6379\n  colour = red\n}\n", 3, "colour"},
	{"limit a {\n  network google {\n    bust = 1\n  }\n}\n", 3, "bust"},
	/* wrong type */
	{"limit a {\n  hourly = lots\n}\n", 2, "hourly"},
	{"\nlearn_inbound = maybe\n", 2, "learn_inbound"},
	{"classify {\n  min_known_ratio = half\n}\n", 2, "min_known_ratio"},
	{"redis { port = 12a }\n", 1, "port"},
	{"limit a { hourly = 99999999999999999999 }\n", 1, "hourly"},
	{"socket = {\"a\", \"b\"}\n", 1, "{"},
	/* syntax */
	{"limit a {\n  hourly 5\n}\n", 2, "equal sign"},
	{"limit a {\n  hourly = 5\n\n", 1, "never closed"},
	{"limit a {\n  network b {\n  hourly = 5\n}\n", 1, "never closed"},
	{"limit a {\n}\n}\n", 3, "without a matching"},
	{"\n\nsocket = \"unix:/x\n\n", 3, "string never closed"},
	{"\n/* comment\n\n", 2, "comment never closed"},
	/* numbers out of range */
	{"limit a {\n\n  hourly = -1\n}\n", 3, "negative"},
	{"limit a {\n  burst = -5\n}\n", 2, "negative"},
	{"limit a {\n  burst_window = 0\n}\n", 2, "burst_window"},
	{"limit a {\n  burst_window = 3601\n}\n", 2, "burst_window"},
	{"redis {\n  timeout_ms = 0\n}\n", 2, "timeout_ms"},
	{"redis {\n  timeout_ms = 60001\n}\n", 2, "timeout_ms"},
	{"redis {\n  port = 0\n}\n", 2, "port"},
	{"redis {\n  port = 65536\n}\n", 2, "port"},
	{"redis { db = -1 }\n", 1, "db"},
	{"reservation_ttl = 9\n", 1, "reservation_ttl"},
	{"dns_timeout_ms = 0\n", 1, "dns_timeout_ms"},
	{"\ndns_timeout_ms = 5001\n", 2, "dns_timeout_ms"},
	{"dns_server = \"localhost\"\n", 1, "dns_server 'localhost'"},
	{"dns_server = \"127.0.0.1:0\"\n", 1, "dns_server"},
	{"dns_server = \"127.0.0.1:65536\"\n", 1, "dns_server"},
	{"dns_server = \"[::1\"\n", 1, "dns_server"},
	{"reservation_ttl = 3601\n", 1, "reservation_ttl"},
	{"relationship_ttl = 0\n", 1, "relationship_ttl"},
	{"classify {\n  personal_max_recipients = -1\n}\n", 2, "personal_max_recipients"},
	{"classify {\n  min_known_ratio = 1.5\n}\n", 2, "min_known_ratio"},
	{"classify {\n  min_known_ratio = -0.1\n}\n", 2, "min_known_ratio"},
	{"limit a {\n  network google { burst = -1 }\n}\n", 2, "negative"},
	/* every number has an upper bound */
	{"mx_cache_ttl = 604801\n", 1, "mx_cache_ttl = 604801: out of range 1..604800"},
	{"mx_cache_ttl = 9223372036854775807\n", 1, "out of range 1..604800"},
	{"mx_cache_ttl = 0\n", 1, "mx_cache_ttl = 0: out of range 1..604800"},
	{"relationship_ttl = 36501\n", 1, "relationship_ttl = 36501: out of range 1..36500"},
	{"relationship_max = 1000001\n", 1, "relationship_max = 1000001: out of range 1..1000000"},
	{"relationship_max = 0\n", 1, "relationship_max"},
	{"log_max_entries = 100000001\n", 1, "out of range 0..100000000"},
	{"log_max_entries = -1\n", 1, "log_max_entries = -1: must not be negative (range 0..100000000)"},
	{"redis {\n  db = 65536\n}\n", 2, "redis: db = 65536: out of range 0..65535"},
	{"classify {\n  personal_max_recipients = 1000001\n}\n", 2,
	 "classify: personal_max_recipients = 1000001: out of range 0..1000000"},
	{"classify {\n  personal_max_hourly = 10001\n}\n", 2,
	 "classify: personal_max_hourly = 10001: out of range 0..10000"},
	{"classify {\n  personal_max_hourly = -1\n}\n", 2, "personal_max_hourly"},
	{"limit a {\n  hourly = 100000001\n}\n", 2, "limit a: hourly = 100000001: out of range 0..100000000"},
	{"limit a {\n  burst = 100000001\n}\n", 2, "limit a: burst = 100000001: out of range"},
	{"limit a {\n  network google {\n    hourly = 100000001\n  }\n}\n", 3,
	 "limit a: network google: hourly = 100000001: out of range 0..100000000"},
	{"limit a {\n  network google { burst = 9223372036854775807 }\n}\n", 2,
	 "burst = 9223372036854775807: out of range"},
	/* words */
	{"mode = fast\n", 1, "fast"},
	{"redis {\n  on_error = retry\n}\n", 2, "retry"},
	{"limit a {\n  scope = user\n}\n", 2, "user"},
	{"limit a {\n  count = bytes\n}\n", 2, "bytes"},
	{"limit a {\n  classes = {bulk,\n    junk}\n}\n", 3, "junk"},
	{"class bulk {\n  action = drop\n}\n", 2, "drop"},
	{"class personal { }\nclass spam { action = tag }\n", 2, "spam"},
	/* duplicates */
	{"network a { domains = {\"a.com\"} }\nnetwork b { domains = {\"b.com\"} }\n"
	 "network a { domains = {\"c.com\"} }\n", 3, "duplicate network 'a'"},
	{"network a { domains = {\"a.com\"} }\nnetwork A { domains = {\"c.com\"} }\n", 2,
	 "duplicate network"},
	{"limit a { }\n\nlimit a { hourly = 5 }\n", 3, "duplicate limit 'a'"},
	{"limit a {\n  network x.com { hourly = 1 }\n  network y.com { hourly = 1 }\n"
	 "  network x.com { hourly = 2 }\n}\n", 4, "duplicate network override"},
	{"class bulk { }\nclass bulk { action = hold }\n", 2, "duplicate class"},
	{"network a {\n  domains = {\"a.com\"}\n}\nnetwork b {\n  domains = {\"b.com\",\n"
	 "    \"A.com.\"}\n}\n", 6, "already in network a"},
	{"network a {\n  domains = {\"a.com\"}\n}\nnetwork b {\n  domains = {\"b.com\",\n"
	 "  \"b.com\", \"bad domain\",\n  \"a.com\"}\n}\n", 7, "already in network a"},
	/* addresses, domains, names */
	{"outbound_networks = {\"10.0.0.0/8\",\n  \"10.0.0.0/33\"}\n", 2, "10.0.0.0/33"},
	{"exempt_clients = {\n  \"not-an-ip\"\n}\n", 2, "not-an-ip"},
	{"local_domains = {\"ex ample.com\"}\n", 1, "ex ample.com"},
	{"network a {\n  domains = {\"a..com\"}\n}\n", 2, "a..com"},
	{"network a {\n  mx = {\"*.\"}\n}\n", 2, "mx"},
	{"network a {\n  domains = {\"\xff\xfe.com\"}\n}\n", 2, "domain"},
	{"exempt_senders = {\"user@bad domain\"}\n", 1, "bad domain"},
	{"network \"a b\" { domains = {\"a.com\"} }\n", 1, "a b"},
	{"network invalid { domains = {\"a.com\"} }\n", 1, "reserved"},
	{"limit \"a:b\" { }\n", 1, "a:b"},
	/* socket, mode, strings */
	{"socket = \"/run/obm.sock\"\n", 1, "must start with"},
	{"socket = \"unix:\"\n", 1, "path"},
	{"socket = \"inet:0@127.0.0.1\"\n", 1, "port"},
	{"socket = \"inet:70000@127.0.0.1\"\n", 1, "port"},
	{"socket = \"inet:smtp@127.0.0.1\"\n", 1, "port"},
	/* a TCP socket on every interface only when asked for by name */
	{"socket = \"inet:10025\"\n", 1,
	 "no host: libmilter would listen on every interface"},
	{"\nsocket = \"inet:10025\"\n", 2,
	 "write inet:10025@127.0.0.1 (loopback) or inet:10025@ADDRESS of a private interface"},
	{"socket = \"inet:8894\"\n", 1, "(inet:8894@0.0.0.0 if every interface is really meant)"},
	{"socket = \"inet6:10025\"\n", 1, "write inet6:10025@::1 (loopback)"},
	{"socket = \"inet6:10025\"\n", 1, "(inet6:10025@:: if every interface"},
	{"socket = \"inet:10025@\"\n", 1, "needs a host after '@'"},
	{"socket = \"inet:10025@ 127.0.0.1\"\n", 1, "without spaces"},
	/* paths the daemon still finds after changing to / */
	{"socket = \"unix:run/milter.sock\"\n", 1, "must be absolute"},
	{"socket = \"local:milter.sock\"\n", 1, "must be absolute"},
	{"\npid_file = \"run/milter.pid\"\n", 2, "pid_file 'run/milter.pid': the path must be absolute"},
	{"socket_mode = \"0778\"\n", 1, "0778"},
	{"socket_mode = \"1777\"\n", 1, "1777"},
	{"socket_mode = \"\"\n", 1, "socket_mode"},
	{"redis {\n  prefix = \"\"\n}\n", 2, "prefix"},
	{"redis {\n  prefix = \"a{b}\"\n}\n", 2, "prefix"},
	{"redis { host = \"\" }\n", 1, "host or socket"},
	{"classify {\n  header = \"X Bad:\"\n}\n", 2, "header"},
	{"subaddress_separator = \"@\"\n", 1, "subaddress_separator"},
	{"outbound_daemons = {\"\"}\n", 1, "empty"},
	/* rules that can never match */
	{"limit a {\n  hourly = 5\n}\nlimit none {\n  classes = {}\n}\n", 4, "never match"},
};

/* every numeric option at both ends of its range loads, with that value */
static void test_numeric_bounds(void **state)
{
	struct config *c;

	(void)state;
	c = load_clean("relationship_ttl = 36500\nrelationship_max = 1000000\n"
		       "mx_cache_ttl = 604800\ndns_timeout_ms = 5000\n"
		       "reservation_ttl = 3600\nlog_max_entries = 100000000\n"
		       "redis { port = 65535; db = 65535; timeout_ms = 60000 }\n"
		       "classify { personal_max_recipients = 1000000\n"
		       "           personal_max_hourly = 10000; min_known_ratio = 1 }\n"
		       "limit a { hourly = 100000000; burst = 100000000; burst_window = 3600\n"
		       "          network b.example { hourly = 100000000; burst = 100000000 } }\n");
	assert_int_equal(c->relationship_ttl, 36500);
	assert_int_equal(c->relationship_max, 1000000);
	assert_int_equal(c->mx_cache_ttl, 604800);
	assert_int_equal(c->dns_timeout_ms, 5000);
	assert_int_equal(c->reservation_ttl, 3600);
	assert_int_equal(c->log_max_entries, 100000000);
	assert_int_equal(c->redis.port, 65535);
	assert_int_equal(c->redis.db, 65535);
	assert_int_equal(c->redis.timeout_ms, 60000);
	assert_int_equal(c->classify.personal_max_recipients, 1000000);
	assert_int_equal(c->classify.personal_max_hourly, 10000);
	assert_true(c->classify.min_known_ratio == 1.0);
	assert_int_equal(c->limits[0].hourly, 100000000);
	assert_int_equal(c->limits[0].burst, 100000000);
	assert_int_equal(c->limits[0].burst_window, 3600);
	assert_int_equal(c->limits[0].overrides[0].hourly, 100000000);
	assert_int_equal(c->limits[0].overrides[0].burst, 100000000);
	config_free(c);

	c = load_clean("relationship_ttl = 1\nrelationship_max = 1\nmx_cache_ttl = 1\n"
		       "dns_timeout_ms = 1\nreservation_ttl = 10\nlog_max_entries = 0\n"
		       "redis { port = 1; db = 0; timeout_ms = 1 }\n"
		       "classify { personal_max_recipients = 0; personal_max_hourly = 0\n"
		       "           min_known_ratio = 0 }\n"
		       "limit a { hourly = 0; burst = 0; burst_window = 1\n"
		       "          network b.example { hourly = 0; burst = 0 } }\n");
	assert_int_equal(c->relationship_ttl, 1);
	assert_int_equal(c->relationship_max, 1);
	assert_int_equal(c->mx_cache_ttl, 1);
	assert_int_equal(c->dns_timeout_ms, 1);
	assert_int_equal(c->reservation_ttl, 10);
	assert_int_equal(c->log_max_entries, 0);
	assert_int_equal(c->redis.port, 1);
	assert_int_equal(c->redis.timeout_ms, 1);
	assert_int_equal(c->classify.personal_max_hourly, 0);
	assert_int_equal(c->limits[0].burst_window, 1);
	assert_int_equal(c->limits[0].overrides[0].hourly, 0);
	config_free(c);
}

/* sockets that say where they listen are accepted as written */
static void test_explicit_sockets(void **state)
{
	static const char *const ok[] = {
		"inet:10025@127.0.0.1", "inet:10025@0.0.0.0", "inet:10025@[192.0.2.1]",
		"inet:10025@localhost", "inet6:10025@::1", "inet6:10025@::",
		"inet6:10025@[::1]", "unix:/run/outbound-milter/milter.sock",
		"local:/var/spool/postfix/outbound-milter/milter.sock",
	};
	char text[256];

	(void)state;
	for (size_t i = 0; i < N(ok); i++) {
		struct config *c;

		snprintf(text, sizeof(text), "socket = \"%s\"\n" LIMIT, ok[i]);
		c = load_clean(text);
		assert_string_equal(c->socket, ok[i]);
		config_free(c);
	}
	/* no pid file at all is fine too */
	config_free(load_clean("pid_file = \"\"\n" LIMIT));
}

/* comments before the problem must not shift its line (libconfuse 3.3 would) */
static const char comment_prefix[] =
	"# one\n"
	"# two\n"
	"/* three\n"
	"   four */\n"
	"// five\n"
	"socket_group = \"postfix\" # six\n";

static void test_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < N(errors); i++) {
		char *shifted;

		expect_error(errors[i].text, errors[i].line, errors[i].needle);
		assert_true(asprintf(&shifted, "%s%s", comment_prefix, errors[i].text) > 0);
		expect_error(shifted, errors[i].line + 6, errors[i].needle);
		free(shifted);
	}
}

static const struct bad_case warnings[] = {
	{"limit a {\n  network foo { hourly = 5 }\n}\n", 2, "neither a configured network"},
	{"network google { domains = {\"gmail.com\"} }\nlimit a {\n"
	 "  network mail.gmail.com { hourly = 5 }\n}\n", 3, "belongs to network google"},
	{"limit a {\n  hourly = 5\n  burst = 10\n}\n", 3, "larger than hourly"},
	{"limit a {\n  burst = 200\n}\n", 2, "larger than hourly"},
	{"limit a {\n  network x.example { hourly = 5 }\n}\n", 2, "larger than hourly"},
	{"", 0, "nothing is rate limited"},
	{"network a {\n  domains = {\"a.com\", \"A.COM\"}\n}\n" LIMIT, 2, "listed twice"},
	{"network empty { }\n" LIMIT, 1, "no recipient belongs"},
	{"mx_grouping = true\n" LIMIT, 1, "no network has mx"},
};

/* LIMITS_MAX limit sections load; one more is an error on its line */
static void test_limits_max(void **state)
{
	char text[8192];
	size_t len = 0;

	(void)state;
	for (int i = 0; i < LIMITS_MAX; i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len, "limit r%d { hourly = 50 }\n", i);
	config_free(load_clean(text));
	snprintf(text + len, sizeof(text) - len, "limit extra { hourly = 50 }\n");
	expect_error(text, LIMITS_MAX + 1, "at most 64 limit sections");
}

static void test_warnings(void **state)
{
	(void)state;
	for (size_t i = 0; i < N(warnings); i++)
		expect_warning(warnings[i].text, warnings[i].line, warnings[i].needle);

	/* plausible domains, configured networks and "invalid" are fine */
	config_free(load_clean("network google { domains = {\"gmail.com\"} }\n"
			       "limit a {\n"
			       "  network google { hourly = 50 }\n"
			       "  network example.co.uk { hourly = 50 }\n"
			       "  network xn--bcher-kva.example { hourly = 50 }\n"
			       "  network invalid { hourly = 50 }\n"
			       "}\n"));
}

static void test_many_problems_sorted(void **state)
{
	struct reports rs;
	struct config *c;

	(void)state;
	c = load_text("limit a {\n"
		      "  burst_window = 0\n"
		      "  network foo { hourly = 1; burst = 1 }\n"
		      "}\n"
		      "mode = fast\n"
		      "redis { port = 0 }\n",
		      &rs);
	assert_null(c);
	assert_int_equal(rs.errors, 3);
	assert_int_equal(rs.n, 4);
	for (size_t i = 1; i < rs.n; i++)
		assert_true(rs.r[i - 1].line <= rs.r[i].line);
	assert_true(has_report(&rs, 2, true, "burst_window"));
	assert_true(has_report(&rs, 3, false, "foo"));
	assert_true(has_report(&rs, 5, true, "fast"));
	assert_true(has_report(&rs, 6, true, "port"));
}

static void test_file_problems(void **state)
{
	static const char nul_text[] = "socket_group = \"a\"\nmode = enf\0orce\n";
	struct reports rs = {0};
	struct config *c;
	char *path;

	(void)state;
	c = config_load("/nonexistent/outbound-milter.conf", collect, &rs);
	assert_null(c);
	assert_int_equal(rs.errors, 1);
	assert_true(has_report(&rs, 0, true, "No such file"));
	assert_string_equal(rs.file, "/nonexistent/outbound-milter.conf");

	path = write_temp(nul_text, sizeof(nul_text) - 1);
	memset(&rs, 0, sizeof(rs));
	c = config_load(path, collect, &rs);
	assert_null(c);
	assert_true(has_report(&rs, 2, true, "NUL"));
	unlink(path);
	free(path);

	/* a NULL reporter is allowed */
	c = config_load("/nonexistent/outbound-milter.conf", NULL, NULL);
	assert_null(c);
}

static void test_report_stderr_format(void **state)
{
	char buf[256] = "";
	FILE *saved = stderr;
	FILE *mem = fmemopen(buf, sizeof(buf) - 1, "w");

	(void)state;
	assert_non_null(mem);
	stderr = mem;
	config_report_stderr(NULL, "f.conf", 12, true, "bad thing");
	config_report_stderr(NULL, "f.conf", 3, false, "odd thing");
	config_report_stderr(NULL, "f.conf", 0, false, "whole file");
	stderr = saved;
	fclose(mem);
	assert_string_equal(buf, "f.conf:12: error: bad thing\n"
				 "f.conf:3: warning: odd thing\n"
				 "f.conf: warning: whole file\n");
}

static void test_names(void **state)
{
	struct strlist l;
	char *v[] = {"a", "b@c"};

	(void)state;
	assert_string_equal(class_name(CLASS_PERSONAL), "personal");
	assert_string_equal(class_name(CLASS_BULK), "bulk");
	assert_string_equal(class_name(CLASS_SPAM_RISK), "spam-risk");
	assert_string_equal(action_name(ACTION_ACCEPT), "accept");
	assert_string_equal(action_name(ACTION_TAG), "tag");
	assert_string_equal(action_name(ACTION_HOLD), "hold");
	assert_string_equal(action_name(ACTION_TEMPFAIL), "tempfail");
	assert_string_equal(action_name(ACTION_REJECT), "reject");
	l.v = v;
	l.n = 2;
	assert_true(strlist_contains(&l, "b@c"));
	assert_false(strlist_contains(&l, "B@c"));
	assert_false(strlist_contains(&l, "b"));
	l.n = 0;
	assert_false(strlist_contains(&l, "a"));
}

/* ------------------------------------------------------------ snapshots */

static size_t heap_in_use(void)
{
	return mallinfo2().uordblks;
}

static void test_refcount(void **state)
{
	struct config *c1, *c2, *held, *cur;
	unsigned long g1;
	size_t before;

	(void)state;
	/* warm up whatever the libraries keep for good (the scanner's buffers) */
	config_free(load_clean(LIMIT));
	config_free(load_clean("socket_group = \"one\"\n" LIMIT));
	config_free(load_clean("socket_group = \"two\"\n" LIMIT));
	before = heap_in_use();

	c1 = load_clean("socket_group = \"one\"\n" LIMIT);
	assert_int_equal(c1->refs, 1);
	config_install(c1);
	cur = config_acquire();
	assert_ptr_equal(cur, c1);
	assert_int_equal(c1->refs, 2);
	g1 = c1->generation;
	assert_true(g1 > 0);
	config_release(cur);
	assert_int_equal(c1->refs, 1);

	held = config_acquire(); /* a message in flight */
	c2 = load_clean("socket_group = \"two\"\n" LIMIT);
	config_install(c2);
	/* the old snapshot lives on for its holder */
	assert_int_equal(held->refs, 1);
	assert_string_equal(held->socket_group, "one");
	cur = config_acquire();
	assert_ptr_equal(cur, c2);
	assert_true(c2->generation > g1);
	assert_string_equal(cur->socket_group, "two");
	config_release(cur);
	config_release(held); /* the last holder: c1 freed here */

	cur = config_acquire();
	assert_ptr_equal(cur, c2);
	config_release(cur);
	config_install(NULL); /* drops c2 */
	assert_null(config_acquire());
	config_release(NULL);

	/* all memory is back (mallinfo2 reads 0 under valgrind/ASan: skipped) */
	if (before != 0)
		assert_int_equal(heap_in_use(), before);
}

struct churn {
	int rounds;
	unsigned long last_generation;
	bool went_backwards;
};

static void *reader(void *arg)
{
	struct churn *ch = arg;

	for (int i = 0; i < ch->rounds; i++) {
		struct config *c = config_acquire();

		if (c == NULL)
			continue;
		if (c->generation < ch->last_generation)
			ch->went_backwards = true;
		ch->last_generation = c->generation;
		if (strcmp(c->redis.prefix, "obm:") != 0)
			ch->went_backwards = true;
		config_release(c);
	}
	return NULL;
}

static void test_refcount_threads(void **state)
{
	struct churn ch[4];
	pthread_t t[4];

	(void)state;
	config_install(load_clean(LIMIT));
	for (size_t i = 0; i < N(t); i++) {
		ch[i] = (struct churn){.rounds = 20000};
		assert_int_equal(pthread_create(&t[i], NULL, reader, &ch[i]), 0);
	}
	for (int i = 0; i < 30; i++)
		config_install(load_clean(LIMIT));
	for (size_t i = 0; i < N(t); i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_false(ch[i].went_backwards);
	}
	config_install(NULL);
}

static void *loader(void *arg)
{
	int *ok = arg;

	for (int i = 0; i < 20; i++) {
		struct reports rs;
		bool written;
		struct config *c = load_text_raw("network n { domains = {\"n.example\"} }\n"
						 "limit a {\n  burst_window = 0\n}\n",
						 &rs, &written);

		if (!written || c != NULL || !has_report(&rs, 3, true, "burst_window"))
			*ok = 0;
		config_free(c);
		c = load_text_raw(LIMIT, &rs, &written);
		if (!written || c == NULL || rs.n != 0)
			*ok = 0;
		config_free(c);
	}
	return NULL;
}

/* loads from several threads at once give each its own, right answer */
static void test_concurrent_loads(void **state)
{
	pthread_t t[3];
	int ok[3] = {1, 1, 1};

	(void)state;
	for (size_t i = 0; i < N(t); i++)
		assert_int_equal(pthread_create(&t[i], NULL, loader, &ok[i]), 0);
	for (size_t i = 0; i < N(t); i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_true(ok[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_file),
		cmocka_unit_test(test_shipped_conf),
		cmocka_unit_test(test_shipped_example_rule),
		cmocka_unit_test(test_values_and_syntax),
		cmocka_unit_test(test_overrides_and_classes),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_numeric_bounds),
		cmocka_unit_test(test_explicit_sockets),
		cmocka_unit_test(test_warnings),
		cmocka_unit_test(test_limits_max),
		cmocka_unit_test(test_many_problems_sorted),
		cmocka_unit_test(test_file_problems),
		cmocka_unit_test(test_report_stderr_format),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_readonly_credentials),
		cmocka_unit_test(test_refcount),
		cmocka_unit_test(test_refcount_threads),
		cmocka_unit_test(test_concurrent_loads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
