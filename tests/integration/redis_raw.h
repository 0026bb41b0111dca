/*
 * redis_raw.h - the integration test's own view of its Redis, beside the
 * code under test: the server SRV (redis_helper.h) and a plain hiredis
 * connection to it for writing keys by hand and checking what the store
 * wrote, and PREFIX, the key prefix of this process's tests. Include after
 * cmocka.h and redis_helper.h, once per test program; raw_group_setup and
 * raw_group_teardown serve cmocka_run_group_tests.
 */
#ifndef OBM_REDIS_RAW_H
#define OBM_REDIS_RAW_H

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "store.h"

static struct redis_test_server srv;
static redisContext *raw;
static char prefix[64] __attribute__((unused));

/* the connection, made again after an error (a test may stop the server) */
static inline redisContext *raw_get(void)
{
	if (raw != NULL && raw->err) {
		redisFree(raw);
		raw = NULL;
	}
	if (raw == NULL)
		raw = redis_test_connect(&srv);
	assert_non_null(raw);
	return raw;
}

/* a command whose reply the caller frees; an error reply fails the test */
static inline redisReply *raw_cmd(const char *fmt, ...)
{
	redisReply *r;
	va_list ap;

	va_start(ap, fmt);
	r = redisvCommand(raw_get(), fmt, ap);
	va_end(ap);
	assert_non_null(r);
	if (r->type == REDIS_REPLY_ERROR)
		fail_msg("redis: %s", r->str);
	return r;
}

/* an integer or numeric string reply; -1 for nil */
static inline long long raw_int(const char *fmt, ...)
{
	redisReply *r;
	long long v = 0;
	va_list ap;

	va_start(ap, fmt);
	r = redisvCommand(raw_get(), fmt, ap);
	va_end(ap);
	assert_non_null(r);
	if (r->type == REDIS_REPLY_INTEGER)
		v = r->integer;
	else if (r->type == REDIS_REPLY_STRING)
		v = atoll(r->str);
	else if (r->type == REDIS_REPLY_NIL)
		v = -1;
	else
		fail_msg("unexpected reply type %d", r->type);
	freeReplyObject(r);
	return v;
}

/* the raw connection closed (a test that stops the server calls it too) */
static inline void raw_close(void)
{
	if (raw != NULL)
		redisFree(raw);
	raw = NULL;
}

/* start SRV (or use OBM_TEST_REDIS_SOCK's) with PREFIX this process's own */
static inline int raw_start(void)
{
	signal(SIGPIPE, SIG_IGN);
	snprintf(prefix, sizeof(prefix), "obmtest:%ld:", (long)getpid());
	if (redis_test_start(&srv, NULL) != 0) {
		fprintf(stderr, "cannot start redis-server\n");
		return -1;
	}
	return 0;
}

/* PREFIX's keys dropped from a shared server, the connection closed, SRV stopped */
static inline void raw_stop(void)
{
	if (srv.external)
		redis_test_drop_prefix(raw_get(), prefix);
	raw_close();
	redis_test_cleanup(&srv);
}

/* cmocka group setup: the server up, PREFIX set */
static inline int raw_group_setup(void **state)
{
	(void)state;
	return raw_start();
}

/* cmocka group teardown: the store's and our connections closed, the server down */
static inline int raw_group_teardown(void **state)
{
	(void)state;
	store_disconnect();
	raw_stop();
	return 0;
}

#endif
