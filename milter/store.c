/*
 * store.c - the only file that speaks Redis.
 *
 * Each thread has its own hiredis connection (a redisContext is not
 * thread-safe), made on first use from the configuration's redis section:
 * the unix socket wins over host/port, the connect and every command have
 * the timeout timeout_ms, AUTH (with the ACL user when one is set) takes the
 * password from password_file, SELECT picks the database. Lua scripts are
 * loaded with SCRIPT LOAD once per connection and run with EVALSHA, loaded
 * again when Redis answers NOSCRIPT.
 *
 * A connection is dropped after any I/O error or timeout (hiredis cannot go
 * on with a context whose err is set) and when the configuration changed
 * (another generation). After a failed connect the thread does not try
 * again for a while (100 ms, doubling to 1 s); meanwhile calls fail at once
 * instead of blocking. Nothing is queued or replayed.
 *
 * Arguments always go out as counted strings (redisCommandArgv), so scope
 * values (addresses, domains) are binary-safe and never meet a format.
 * Nothing is logged here; callers get STORE_ERR and store_last_error().
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "store.h"

/* embedded from milter/lua/ by the build */
extern const char lua_reserve[];

#define STORE_BACKOFF_MIN_MS 100
#define STORE_BACKOFF_MAX_MS 1000
#define STORE_DEFAULT_TIMEOUT_MS 200
#define STORE_ERR_SIZE 256
#define STORE_FIELD_TEMPFAILED "tempfailed"
#define STORE_FIELD_MONITOR "monitor_tempfailed"

enum store_script { SCRIPT_RESERVE, SCRIPT_COUNT };

static const char *const store_script_src[SCRIPT_COUNT] = {
	[SCRIPT_RESERVE] = lua_reserve,
};

/* one thread's connection and its reconnect state */
struct store_conn {
	redisContext *c;               /* NULL when not connected */
	unsigned long generation;      /* of the configuration it was made with */
	char sha[SCRIPT_COUNT][41];    /* "" until loaded on this connection */
	long long retry_at;            /* monotonic ms: no connect before this */
	int backoff_ms;                /* wait after the next failed connect */
	char conn_err[STORE_ERR_SIZE]; /* why the last connect failed */
};

static pthread_key_t store_tkey;
static pthread_once_t store_once = PTHREAD_ONCE_INIT;
static int store_key_ok;

static __thread char store_err[STORE_ERR_SIZE];

/* store_fail - remember why the current call failed */
static void store_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void store_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(store_err, sizeof(store_err), fmt, ap);
	va_end(ap);
}

const char *store_last_error(void)
{
	return store_err;
}

static long long store_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timeval store_tv(long long ms)
{
	struct timeval tv;

	if (ms < 1)
		ms = 1;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	return tv;
}

static int store_timeout_ms(const struct config *cfg)
{
	return cfg->redis.timeout_ms > 0 ? cfg->redis.timeout_ms : STORE_DEFAULT_TIMEOUT_MS;
}

/* store_drop - close the connection (its loaded scripts go with it) */
static void store_drop(struct store_conn *s)
{
	if (s->c != NULL)
		redisFree(s->c);
	s->c = NULL;
	memset(s->sha, 0, sizeof(s->sha));
}

static void store_conn_free(void *arg)
{
	struct store_conn *s = arg;

	store_drop(s);
	free(s);
}

static void store_key_init(void)
{
	store_key_ok = pthread_key_create(&store_tkey, store_conn_free) == 0;
}

/* store_conn_get - this thread's state, created on first use */
static struct store_conn *store_conn_get(void)
{
	struct store_conn *s;

	pthread_once(&store_once, store_key_init);
	if (!store_key_ok) {
		store_fail("redis: cannot create the per-thread connection key");
		return NULL;
	}
	s = pthread_getspecific(store_tkey);
	if (s != NULL)
		return s;
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		store_fail("redis: out of memory");
		return NULL;
	}
	s->backoff_ms = STORE_BACKOFF_MIN_MS;
	if (pthread_setspecific(store_tkey, s) != 0) {
		free(s);
		store_fail("redis: cannot set the per-thread connection");
		return NULL;
	}
	return s;
}

/*
 * store_io_error - describe a failure of context C (which is then unusable).
 * A command timeout shows as EAGAIN from the socket.
 */
static void store_io_error(redisContext *c, const char *what, int timeout_ms)
{
	if (c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK))
		store_fail("redis: %s: no answer within %d ms", what, timeout_ms);
	else
		store_fail("redis: %s: %s", what, c->errstr[0] ? c->errstr : "connection error");
}

/* store_read_password - first line of FILE, without its line ending */
static int store_read_password(const char *file, char *buf, size_t size)
{
	FILE *fp;
	size_t len;

	if ((fp = fopen(file, "r")) == NULL) {
		store_fail("redis: password_file %s: %s", file, strerror(errno));
		return -1;
	}
	if (fgets(buf, (int)size, fp) == NULL)
		buf[0] = '\0';
	fclose(fp);
	len = strlen(buf);
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		buf[--len] = '\0';
	if (len == 0) {
		store_fail("redis: password_file %s: no password on its first line", file);
		return -1;
	}
	return 0;
}

/*
 * store_setup_command - one command while connecting. The whole connect
 * (handshake, AUTH, SELECT) shares one timeout_ms budget ending at DEADLINE.
 * 0 when Redis answered with anything but an error.
 */
static int store_setup_command(redisContext *c, long long deadline, int timeout_ms,
			       int argc, const char **argv, const size_t *lens)
{
	redisReply *r;
	int ok;

	if (redisSetTimeout(c, store_tv(deadline - store_now_ms())) != REDIS_OK) {
		store_fail("redis: cannot set the command timeout");
		return -1;
	}
	if ((r = redisCommandArgv(c, argc, argv, lens)) == NULL) {
		store_io_error(c, argv[0], timeout_ms);
		return -1;
	}
	ok = r->type != REDIS_REPLY_ERROR;
	if (!ok)
		store_fail("redis: %s: %.*s", argv[0], (int)r->len, r->str);
	freeReplyObject(r);
	return ok ? 0 : -1;
}

/*
 * store_handshake - AUTH and SELECT on a fresh connection, then PING: a
 * server that accepts connections but does not answer (stuck, or a full
 * listen backlog) fails the connect and so starts the back-off.
 */
static int store_handshake(redisContext *c, const struct redis_conf *rc, long long deadline,
			   int timeout_ms)
{
	const char *argv[3];
	size_t lens[3];
	int rv;

	if (rc->password_file != NULL && rc->password_file[0] != '\0') {
		char pass[1024];
		int argc = 0;

		if (store_read_password(rc->password_file, pass, sizeof(pass)) != 0)
			return -1;
		argv[argc] = "AUTH";
		lens[argc++] = 4;
		if (rc->user != NULL && rc->user[0] != '\0') {
			argv[argc] = rc->user;
			lens[argc++] = strlen(rc->user);
		}
		argv[argc] = pass;
		lens[argc++] = strlen(pass);
		rv = store_setup_command(c, deadline, timeout_ms, argc, argv, lens);
		explicit_bzero(pass, sizeof(pass));
		if (rv != 0)
			return -1;
	}
	if (rc->db != 0) {
		char db[16];

		snprintf(db, sizeof(db), "%d", rc->db);
		argv[0] = "SELECT";
		lens[0] = 6;
		argv[1] = db;
		lens[1] = strlen(db);
		if (store_setup_command(c, deadline, timeout_ms, 2, argv, lens) != 0)
			return -1;
	}
	argv[0] = "PING";
	lens[0] = 4;
	return store_setup_command(c, deadline, timeout_ms, 1, argv, lens);
}

/*
 * store_connect - make sure this thread has a usable connection for CFG.
 * Fails at once while backing off after a failed connect.
 */
static int store_connect(struct store_conn *s, const struct config *cfg)
{
	const struct redis_conf *rc = &cfg->redis;
	int timeout_ms = store_timeout_ms(cfg);
	long long start, deadline;
	redisContext *c;
	char where[128];

	if (s->c != NULL && s->generation == cfg->generation)
		return 0;
	store_drop(s);

	start = store_now_ms();
	if (start < s->retry_at) {
		store_fail("redis: unavailable, next attempt in %lld ms (%s)", s->retry_at - start,
			   s->conn_err);
		return -1;
	}
	deadline = start + timeout_ms;

	if (rc->socket != NULL && rc->socket[0] != '\0') {
		snprintf(where, sizeof(where), "%s", rc->socket);
		c = redisConnectUnixWithTimeout(rc->socket, store_tv(timeout_ms));
	} else {
		const char *host = rc->host != NULL && rc->host[0] ? rc->host : "127.0.0.1";
		int port = rc->port > 0 ? rc->port : 6379;

		snprintf(where, sizeof(where), "%s:%d", host, port);
		c = redisConnectWithTimeout(host, port, store_tv(timeout_ms));
	}
	if (c == NULL) {
		store_fail("redis: connect %s: out of memory", where);
	} else if (c->err) {
		store_fail("redis: connect %s: %s", where, c->errstr);
	} else if (store_handshake(c, rc, deadline, timeout_ms) == 0) {
		if (redisSetTimeout(c, store_tv(timeout_ms)) == REDIS_OK) {
			s->c = c;
			s->generation = cfg->generation;
			s->backoff_ms = STORE_BACKOFF_MIN_MS;
			s->retry_at = 0;
			return 0;
		}
		store_fail("redis: connect %s: cannot set the command timeout", where);
	}
	if (c != NULL)
		redisFree(c);

	/* back off before the next attempt on this thread */
	snprintf(s->conn_err, sizeof(s->conn_err), "%s", store_err);
	s->retry_at = store_now_ms() + s->backoff_ms;
	s->backoff_ms = s->backoff_ms * 2 > STORE_BACKOFF_MAX_MS ? STORE_BACKOFF_MAX_MS
								 : s->backoff_ms * 2;
	return -1;
}

/*
 * store_command - run one command on this thread's connection. Returns the
 * reply (the caller frees it; it may be an error reply), or NULL after an
 * I/O error or timeout, which also drops the connection.
 */
static redisReply *store_command(struct store_conn *s, const struct config *cfg, int argc,
				 const char **argv, const size_t *lens)
{
	redisReply *r = redisCommandArgv(s->c, argc, argv, lens);

	if (r == NULL) {
		store_io_error(s->c, argv[0], store_timeout_ms(cfg));
		store_drop(s);
	}
	return r;
}

/* store_load_script - SCRIPT LOAD on this connection, keep the sha */
static int store_load_script(struct store_conn *s, const struct config *cfg,
			     enum store_script k)
{
	const char *argv[3] = { "SCRIPT", "LOAD", store_script_src[k] };
	size_t lens[3] = { 6, 4, strlen(store_script_src[k]) };
	redisReply *r;
	int rv = -1;

	if ((r = store_command(s, cfg, 3, argv, lens)) == NULL)
		return -1;
	if (r->type == REDIS_REPLY_STRING && r->len == 40) {
		memcpy(s->sha[k], r->str, 40);
		s->sha[k][40] = '\0';
		rv = 0;
	} else if (r->type == REDIS_REPLY_ERROR) {
		store_fail("redis: SCRIPT LOAD: %.*s", (int)r->len, r->str);
	} else {
		store_fail("redis: SCRIPT LOAD: unexpected reply");
	}
	freeReplyObject(r);
	return rv;
}

/*
 * store_eval - EVALSHA script K; ARGV[0] and ARGV[1] are filled in here.
 * Loads the script when this connection has not yet, and again (once) when
 * Redis has forgotten it.
 */
static redisReply *store_eval(struct store_conn *s, const struct config *cfg,
			      enum store_script k, int argc, const char **argv, size_t *lens)
{
	redisReply *r;
	int attempt;

	for (attempt = 0; attempt < 2; attempt++) {
		if (s->sha[k][0] == '\0' && store_load_script(s, cfg, k) != 0)
			return NULL;
		argv[0] = "EVALSHA";
		lens[0] = 7;
		argv[1] = s->sha[k];
		lens[1] = 40;
		if ((r = store_command(s, cfg, argc, argv, lens)) == NULL)
			return NULL;
		if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
			freeReplyObject(r);
			s->sha[k][0] = '\0';
			continue;
		}
		if (r->type == REDIS_REPLY_ERROR) {
			store_fail("redis: EVALSHA: %.*s", (int)r->len, r->str);
			freeReplyObject(r);
			return NULL;
		}
		return r;
	}
	store_fail("redis: EVALSHA: script missing after reload");
	return NULL;
}

/* store_key - "PREFIX{NETWORK}:KIND:RULE:SCOPE" (binary-safe), malloc'd */
static char *store_key(const struct config *cfg, const struct store_unit *u, char kind,
		       size_t *len)
{
	const char *prefix = cfg->redis.prefix != NULL ? cfg->redis.prefix : "";
	const char *net = u->network != NULL ? u->network : "";
	const char *rule = u->rule != NULL ? u->rule : "";
	size_t lp = strlen(prefix), ln = strlen(net), lr = strlen(rule);
	char *k, *p;

	*len = lp + 1 + ln + 1 + 3 + lr + 1 + u->scope_len;
	if ((k = malloc(*len + 1)) == NULL) {
		store_fail("redis: out of memory");
		return NULL;
	}
	p = k;
	memcpy(p, prefix, lp);
	p += lp;
	*p++ = '{';
	memcpy(p, net, ln);
	p += ln;
	*p++ = '}';
	*p++ = ':';
	*p++ = kind;
	*p++ = ':';
	memcpy(p, rule, lr);
	p += lr;
	*p++ = ':';
	if (u->scope_len > 0)
		memcpy(p, u->scope, u->scope_len);
	p += u->scope_len;
	*p = '\0';
	return k;
}

/* store_counter_key - "PREFIX{NETWORK}:c:YYYYMMDDHH" for the UTC hour of NOW_MS */
static char *store_counter_key(const struct config *cfg, const char *network,
			       long long now_ms, size_t *len)
{
	const char *prefix = cfg->redis.prefix != NULL ? cfg->redis.prefix : "";
	time_t t = now_ms > 0 ? (time_t)(now_ms / 1000) : time(NULL);
	struct tm tm;
	char hour[16];
	size_t size;
	char *k;

	if (gmtime_r(&t, &tm) == NULL || strftime(hour, sizeof(hour), "%Y%m%d%H", &tm) == 0) {
		store_fail("redis: cannot format the counter hour");
		return NULL;
	}
	size = strlen(prefix) + strlen(network) + strlen(hour) + 6;
	if ((k = malloc(size)) == NULL) {
		store_fail("redis: out of memory");
		return NULL;
	}
	*len = (size_t)snprintf(k, size, "%s{%s}:c:%s", prefix, network, hour);
	return k;
}

static int store_check_unit(const struct store_unit *u)
{
	if (u->member == NULL || (u->scope == NULL && u->scope_len > 0)) {
		store_fail("redis: incomplete unit");
		return -1;
	}
	return 0;
}

/* the numbers one unit passes to reserve.lua */
struct store_nums {
	char hourly[24];
	char burst[24];
	char window[24];
};

/* store_parse_verdict - reserve.lua's answer into V */
static int store_parse_verdict(const redisReply *r, size_t n, struct store_verdict *v)
{
	const redisReply *const *e;

	if (r->type == REDIS_REPLY_INTEGER && r->integer == 0)
		return STORE_OK;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 5)
		goto bad;
	e = (const redisReply *const *)r->element;
	if (e[0]->type != REDIS_REPLY_INTEGER || e[0]->integer < 1 ||
	    (size_t)e[0]->integer > n || e[1]->type != REDIS_REPLY_STRING ||
	    e[2]->type != REDIS_REPLY_INTEGER || e[3]->type != REDIS_REPLY_INTEGER ||
	    e[4]->type != REDIS_REPLY_INTEGER)
		goto bad;
	v->unit = (int)(e[0]->integer - 1);
	if (strcmp(e[1]->str, "hourly") == 0)
		v->which = WINDOW_OVER_HOURLY;
	else if (strcmp(e[1]->str, "burst") == 0)
		v->which = WINDOW_OVER_BURST;
	else
		goto bad;
	v->used = (long)e[2]->integer;
	v->limit = (long)e[3]->integer;
	v->retry_ms = e[4]->integer;
	return STORE_OVER;
bad:
	store_fail("redis: reserve: unexpected reply");
	return STORE_ERR;
}

int store_reserve(const struct config *cfg, const struct store_unit *units, size_t n,
		  bool monitor, long long now_ms, struct store_verdict *v)
{
	struct store_verdict dummy;
	struct store_conn *s;
	const char **argv = NULL;
	size_t *lens = NULL;
	char **keys = NULL;
	struct store_nums *nums = NULL;
	char ttl[24], now[24], numkeys[24];
	size_t i, nkeys = 0, argc;
	redisReply *r;
	int rv = STORE_ERR;

	if (v == NULL)
		v = &dummy;
	memset(v, 0, sizeof(*v));
	v->unit = -1;
	v->which = WINDOW_ADMIT;
	if (n == 0)
		return STORE_OK;
	if (n > 10000) {
		store_fail("redis: reserve: too many units (%zu)", n);
		return STORE_ERR;
	}
	for (i = 0; i < n; i++) {
		if (store_check_unit(&units[i]) != 0)
			return STORE_ERR;
		if (units[i].network == NULL ||
		    strcmp(units[i].network, units[0].network) != 0) {
			store_fail("redis: reserve: units of more than one network");
			return STORE_ERR;
		}
	}

	/* EVALSHA sha numkeys counter w1 p1 .. now ttl field m1 h1 b1 bw1 .. */
	argc = 3 + 1 + 2 * n + 3 + 4 * n;
	argv = calloc(argc, sizeof(*argv));
	lens = calloc(argc, sizeof(*lens));
	keys = calloc(1 + 2 * n, sizeof(*keys));
	nums = calloc(n, sizeof(*nums));
	if (argv == NULL || lens == NULL || keys == NULL || nums == NULL) {
		store_fail("redis: out of memory");
		goto out;
	}

	if ((keys[nkeys] = store_counter_key(cfg, units[0].network, now_ms, &lens[3])) == NULL)
		goto out;
	argv[3] = keys[nkeys++];
	for (i = 0; i < n; i++) {
		size_t a = 4 + 2 * i;

		if ((keys[nkeys] = store_key(cfg, &units[i], 'w', &lens[a])) == NULL)
			goto out;
		argv[a] = keys[nkeys++];
		if ((keys[nkeys] = store_key(cfg, &units[i], 'p', &lens[a + 1])) == NULL)
			goto out;
		argv[a + 1] = keys[nkeys++];
	}
	snprintf(now, sizeof(now), "%lld", now_ms > 0 ? now_ms : 0);
	snprintf(ttl, sizeof(ttl), "%lld",
		 (long long)(cfg->reservation_ttl > 0 ? cfg->reservation_ttl : 1) * 1000);
	snprintf(numkeys, sizeof(numkeys), "%zu", 1 + 2 * n);
	argv[2] = numkeys;
	lens[2] = strlen(numkeys);
	{
		size_t a = 4 + 2 * n;
		const char *field = monitor ? STORE_FIELD_MONITOR : STORE_FIELD_TEMPFAILED;

		argv[a] = now;
		lens[a] = strlen(now);
		argv[a + 1] = ttl;
		lens[a + 1] = strlen(ttl);
		argv[a + 2] = field;
		lens[a + 2] = strlen(field);
		for (i = 0; i < n; i++) {
			const struct limit_values *lv = &units[i].lv;
			long bw = lv->burst_window < 1 ? 1 : lv->burst_window > 3600 ? 3600
										  : lv->burst_window;
			size_t b = a + 3 + 4 * i;

			snprintf(nums[i].hourly, sizeof(nums[i].hourly), "%ld", lv->hourly);
			snprintf(nums[i].burst, sizeof(nums[i].burst), "%ld", lv->burst);
			snprintf(nums[i].window, sizeof(nums[i].window), "%ld", bw * 1000);
			argv[b] = units[i].member;
			lens[b] = strlen(units[i].member);
			argv[b + 1] = nums[i].hourly;
			lens[b + 1] = strlen(nums[i].hourly);
			argv[b + 2] = nums[i].burst;
			lens[b + 2] = strlen(nums[i].burst);
			argv[b + 3] = nums[i].window;
			lens[b + 3] = strlen(nums[i].window);
		}
	}

	if ((s = store_conn_get()) == NULL || store_connect(s, cfg) != 0)
		goto out;
	if ((r = store_eval(s, cfg, SCRIPT_RESERVE, (int)argc, argv, lens)) == NULL)
		goto out;
	rv = store_parse_verdict(r, n, v);
	freeReplyObject(r);
out:
	if (keys != NULL)
		for (i = 0; i < nkeys; i++)
			free(keys[i]);
	free(keys);
	free(nums);
	free(lens);
	free(argv);
	return rv;
}

/*
 * store_pipeline - for every unit, ZREM MEMBER from its pending set and,
 * when RELEASE, from its window too; all in one round trip.
 */
static int store_pipeline(const struct config *cfg, const struct store_unit *units, size_t n,
			  bool release, const char *what)
{
	struct store_conn *s;
	size_t i, sent = 0, errors = 0;
	int rv = STORE_OK;

	if (n == 0)
		return STORE_OK;
	for (i = 0; i < n; i++)
		if (store_check_unit(&units[i]) != 0)
			return STORE_ERR;
	if ((s = store_conn_get()) == NULL || store_connect(s, cfg) != 0)
		return STORE_ERR;

	for (i = 0; i < n; i++) {
		const char kinds[2] = { 'p', 'w' };
		int k;

		for (k = 0; k < (release ? 2 : 1); k++) {
			const char *argv[3];
			size_t lens[3];
			char *key = store_key(cfg, &units[i], kinds[k], &lens[1]);
			int ok;

			if (key == NULL) {
				rv = STORE_ERR;
				goto read;
			}
			argv[0] = "ZREM";
			lens[0] = 4;
			argv[1] = key;
			argv[2] = units[i].member;
			lens[2] = strlen(units[i].member);
			ok = redisAppendCommandArgv(s->c, 3, argv, lens) == REDIS_OK;
			free(key);
			if (!ok) {
				store_fail("redis: %s: cannot queue the command", what);
				store_drop(s);
				return STORE_ERR;
			}
			sent++;
		}
	}
read:
	/* read every reply that was sent, so the connection stays in step */
	for (i = 0; i < sent; i++) {
		redisReply *r;

		if (redisGetReply(s->c, (void **)&r) != REDIS_OK || r == NULL) {
			store_io_error(s->c, what, store_timeout_ms(cfg));
			store_drop(s);
			return STORE_ERR;
		}
		if (r->type == REDIS_REPLY_ERROR && errors++ == 0)
			store_fail("redis: %s: %.*s", what, (int)r->len, r->str);
		freeReplyObject(r);
	}
	return errors > 0 ? STORE_ERR : rv;
}

int store_commit(const struct config *cfg, const struct store_unit *units, size_t n)
{
	return store_pipeline(cfg, units, n, false, "commit");
}

int store_release(const struct config *cfg, const struct store_unit *units, size_t n)
{
	return store_pipeline(cfg, units, n, true, "release");
}

int store_ping(const struct config *cfg)
{
	const char *argv[1] = { "PING" };
	size_t lens[1] = { 4 };
	struct store_conn *s;
	redisReply *r;
	int rv = STORE_ERR;

	if ((s = store_conn_get()) == NULL || store_connect(s, cfg) != 0)
		return STORE_ERR;
	if ((r = store_command(s, cfg, 1, argv, lens)) == NULL)
		return STORE_ERR;
	if (r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0)
		rv = STORE_OK;
	else
		store_fail("redis: PING: unexpected reply");
	freeReplyObject(r);
	return rv;
}

void store_disconnect(void)
{
	struct store_conn *s;

	pthread_once(&store_once, store_key_init);
	if (!store_key_ok || (s = pthread_getspecific(store_tkey)) == NULL)
		return;
	pthread_setspecific(store_tkey, NULL);
	store_conn_free(s);
}
