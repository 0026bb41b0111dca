/*
 * test_policy.c - policy.c driven directly against a real redis-server
 * (redis_helper.h), on threads with small stacks: a message's size must
 * never reach the stack (a message of thousands of recipients under many
 * rules is accepted, committed and counted exactly), and the identity of
 * a message (authenticated user, envelope sender, client address for the
 * null sender) is what its windows are keyed by.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <string.h>

#include "redis_helper.h"
#include "redis_raw.h"

#include "config.h"
#include "policy.h"

#define SMALL_STACK (256 * 1024) /* far below what 16,000 units once took */
#define RULES 8
#define MANY_RCPTS 2000

static char conf_dir[] = "/tmp/obm-test-policy.XXXXXX";
static char conf_path[512];

/* write and install a configuration of RULES rules (high limits) on SRV */
static void install_config(void)
{
	const char *dir = conf_dir;
	FILE *f;

	assert_non_null(mkdtemp(conf_dir));
	snprintf(conf_path, sizeof(conf_path), "%s/policy.conf", dir);
	f = fopen(conf_path, "w");
	assert_non_null(f);
	fprintf(f, "socket = \"unix:%s/unused.sock\"\n"
		   "outbound_networks = {\"127.0.0.0/8\"}\n"
		   "redis {\n\tsocket = \"%s\"\n\tprefix = \"%s\"\n\ttimeout_ms = 2000\n}\n"
		   "network google { domains = {\"gmail.com\"} }\n",
		dir, srv.sock, prefix);
	for (int i = 0; i < RULES; i++)
		fprintf(f, "limit r%d {\n\tscope = %s\n\thourly = 100000\n\tburst = 100000\n"
			   "\tburst_window = 60\n}\n",
			i, i % 2 ? "sender" : "global");
	fputs("class \"spam-risk\" { action = tag }\n", f);
	fclose(f);
	struct config *cfg = config_load(conf_path, config_report_stderr, NULL);
	assert_non_null(cfg);
	config_install(cfg);
	policy_init();
}

struct message {
	const char *sender, *auth, *client;
	unsigned n_rcpts;
	unsigned accepted;
	enum eom_outcome outcome;
	char header[REASONS_MAX + 128];
};

/* one outbound message through policy.c, as the callbacks would drive it */
static void *send_message(void *arg)
{
	struct message *msg = arg;
	struct conn_state *c = calloc(1, sizeof(*c));
	struct ipaddr ip;
	struct rcpt_result rr;
	struct eom_result er;
	char rcpt[64];

	if (c == NULL || ipaddr_parse(msg->client, &ip) != 0) {
		free(c);
		return NULL;
	}
	policy_conn_init(c, &ip, "smtpd");
	policy_mail(c, msg->sender, msg->auth, "TESTQ");
	for (unsigned i = 0; i < msg->n_rcpts; i++) {
		snprintf(rcpt, sizeof(rcpt), "<user%u@gmail.com>", i);
		policy_rcpt(c, rcpt, "TESTQ", &rr);
		msg->accepted += rr.outcome == RCPT_ACCEPT;
	}
	policy_eom(c, "TESTQ", &er);
	msg->outcome = er.outcome;
	snprintf(msg->header, sizeof(msg->header), "%s", er.add_header ? er.header_value : "");
	if (er.outcome == EOM_ACCEPT)
		policy_done(c);
	else
		policy_abort(c);
	policy_conn_end(c);
	free(c);
	return msg;
}

/* run send_message on a thread with a stack of SIZE bytes */
static void run_small_stack(struct message *msg, size_t size)
{
	pthread_attr_t attr;
	pthread_t t;
	void *ret = NULL;

	assert_int_equal(pthread_attr_init(&attr), 0);
	assert_int_equal(pthread_attr_setstacksize(&attr, size), 0);
	assert_int_equal(pthread_create(&t, &attr, send_message, msg), 0);
	assert_int_equal(pthread_join(t, &ret), 0);
	pthread_attr_destroy(&attr);
	assert_ptr_equal(ret, msg);
}

static long long window(const char *rule, const char *scope)
{
	return raw_int("ZCARD %s{google}:w:%s:%s", prefix, rule, scope);
}

static long long pending(const char *rule, const char *scope)
{
	return raw_int("ZCARD %s{google}:p:%s:%s", prefix, rule, scope);
}

/* 2,000 recipients under 8 rules: 16,000 units held and committed */
static void test_many_units_small_stack(void **state)
{
	struct message msg = { .sender = "<big@example.com>", .client = "127.0.0.1",
			       .n_rcpts = MANY_RCPTS };

	(void)state;
	run_small_stack(&msg, SMALL_STACK);
	assert_int_equal(msg.accepted, MANY_RCPTS);
	assert_int_equal(msg.outcome, EOM_ACCEPT);
	assert_string_equal(msg.header,
			    "spam-risk"); /* 2,000 unknown recipients, tagged: class alone */
	for (int i = 0; i < RULES; i++) {
		char rule[16];

		snprintf(rule, sizeof(rule), "r%d", i);
		const char *scope = i % 2 ? "big@example.com" : "*";
		assert_int_equal(window(rule, scope), MANY_RCPTS);
		assert_int_equal(pending(rule, scope), 0);
	}
	assert_int_equal(raw_int("ZCARD %s{s:big@example.com}:vel", prefix), MANY_RCPTS);
}

/* the null sender: the user when authenticated, else the client address */
static void test_null_sender_identity(void **state)
{
	struct message anon = { .sender = "<>", .client = "127.0.0.5", .n_rcpts = 3 };
	struct message user = { .sender = "<>", .auth = "Carol@Example.COM",
				.client = "127.0.0.6", .n_rcpts = 4 };

	(void)state;
	run_small_stack(&anon, SMALL_STACK);
	run_small_stack(&user, SMALL_STACK);
	assert_int_equal(anon.outcome, EOM_ACCEPT);
	assert_int_equal(user.outcome, EOM_ACCEPT);
	assert_int_equal(window("r1", "127.0.0.5"), 3);
	assert_int_equal(window("r1", "carol@example.com"), 4);
	assert_int_equal(raw_int("ZCARD %s{s:127.0.0.5}:vel", prefix), 3);
	assert_int_equal(raw_int("ZCARD %s{s:carol@example.com}:vel", prefix), 4);
	assert_int_equal(raw_int("EXISTS %s{google}:w:r1:<>", prefix), 0);
}

static int setup(void **state)
{
	if (raw_group_setup(state) != 0)
		return -1;
	install_config();
	return 0;
}

/* the server down, the configuration's folder gone */
static int teardown(void **state)
{
	unlink(conf_path);
	rmdir(conf_dir);
	return raw_group_teardown(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_many_units_small_stack),
		cmocka_unit_test(test_null_sender_identity),
	};

	if (getenv("OBM_CMOCKA_FILTER") != NULL)
		cmocka_set_test_filter(getenv("OBM_CMOCKA_FILTER"));
	return cmocka_run_group_tests(tests, setup, teardown);
}
