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
 *
 * Besides the rate windows (reserve.lua) this file keeps, per sender, the
 * relationships (PREFIX{s:SENDER}:rel, recipient -> last seen), the
 * velocity set (PREFIX{s:SENDER}:vel, recipient -> last mailed, one hour,
 * at most VELOCITY_CAP) and blocks (PREFIX{s:SENDER}:block), and the hourly
 * statistics (doc/REDIS.md: PREFIX{stats}:h:HOUR and others). What the end of a message
 * reads and writes goes as pipelines of single-key commands, one round
 * trip each (keys of different senders may live in different cluster
 * slots); every reply is read, so an error reply leaves the connection
 * usable.
 */
#include <errno.h>
#include <poll.h>
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

/*
 * Connections of threads that ended, kept for the next new thread:
 * libmilter's workers come and go with the load, and a new connection
 * costs a connect, a PING and a SCRIPT LOAD. Each connection still belongs
 * to one thread at a time.
 */
#define STORE_SPARE_MAX 64
static pthread_mutex_t store_spare_lock = PTHREAD_MUTEX_INITIALIZER;
static struct store_conn *store_spare[STORE_SPARE_MAX];
static size_t store_n_spare;

/* thread exit: keep the connection for another thread, or close it */
static void store_conn_free(void *arg)
{
	struct store_conn *s = arg;

	pthread_mutex_lock(&store_spare_lock);
	if (s->c != NULL && store_n_spare < STORE_SPARE_MAX) {
		store_spare[store_n_spare++] = s;
		s = NULL;
	}
	pthread_mutex_unlock(&store_spare_lock);
	if (s != NULL) {
		store_drop(s);
		free(s);
	}
}

/* a kept connection of an ended thread, or NULL */
static struct store_conn *store_spare_take(void)
{
	struct store_conn *s = NULL;

	pthread_mutex_lock(&store_spare_lock);
	if (store_n_spare > 0)
		s = store_spare[--store_n_spare];
	pthread_mutex_unlock(&store_spare_lock);
	return s;
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
	if ((s = store_spare_take()) == NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL) {
			store_fail("redis: out of memory");
			return NULL;
		}
		s->backoff_ms = STORE_BACKOFF_MIN_MS;
	}
	if (pthread_setspecific(store_tkey, s) != 0) {
		store_drop(s);
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

/* store_backoff - no new connect on this thread before the back-off delay */
static void store_backoff(struct store_conn *s)
{
	snprintf(s->conn_err, sizeof(s->conn_err), "%s", store_err);
	s->retry_at = store_now_ms() + s->backoff_ms;
	s->backoff_ms = s->backoff_ms * 2 > STORE_BACKOFF_MAX_MS ? STORE_BACKOFF_MAX_MS
								 : s->backoff_ms * 2;
}

/*
 * store_broken - a command failed (timeout, lost connection): drop the
 * connection and back off, so that the rest of this callback fails at once
 * instead of waiting for another connect to a stuck server.
 */
static void store_broken(struct store_conn *s)
{
	store_drop(s);
	store_backoff(s);
}

/*
 * store_conn_alive - a kept connection is still open. Redis never speaks
 * unasked, so anything readable on an idle connection means the server
 * closed it (restarted, killed, timeout): reconnect instead of failing the
 * next command. One poll() without waiting, no round trip.
 */
static bool store_conn_alive(const redisContext *c)
{
	struct pollfd p = { .fd = c->fd, .events = POLLIN };

	return c->err == 0 && poll(&p, 1, 0) == 0;
}

/*
 * store_connect - make sure this thread has a usable connection for CFG.
 * Fails at once while backing off after a failed connect.
 */
static int store_connect(struct store_conn *s, const struct config *cfg)
{
	int timeout_ms = store_timeout_ms(cfg);
	long long start;
	redisContext *c;

	if (s->c != NULL && s->generation == cfg->generation && store_conn_alive(s->c))
		return 0;
	store_drop(s);

	start = store_now_ms();
	if (start < s->retry_at) {
		store_fail("redis: unavailable, next attempt in %lld ms (%s)", s->retry_at - start,
			   s->conn_err);
		return -1;
	}
	if ((c = store_open(cfg, timeout_ms)) != NULL) {
		s->c = c;
		s->generation = cfg->generation;
		s->backoff_ms = STORE_BACKOFF_MIN_MS;
		s->retry_at = 0;
		return 0;
	}
	/* back off before the next attempt on this thread */
	store_backoff(s);
	return -1;
}

redisContext *store_open(const struct config *cfg, int command_timeout_ms)
{
	const struct redis_conf *rc = &cfg->redis;
	int timeout_ms = store_timeout_ms(cfg);
	long long deadline = store_now_ms() + timeout_ms;
	redisContext *c;
	char where[128];

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
		if (redisSetTimeout(c, store_tv(command_timeout_ms)) == REDIS_OK)
			return c;
		store_fail("redis: connect %s: cannot set the command timeout", where);
	}
	if (c != NULL)
		redisFree(c);
	return NULL;
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
		store_broken(s);
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
		  long long now_ms, struct store_verdict *v)
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

	/* EVALSHA sha numkeys w1 p1 .. now ttl m1 h1 b1 bw1 .. */
	argc = 3 + 2 * n + 2 + 4 * n;
	argv = calloc(argc, sizeof(*argv));
	lens = calloc(argc, sizeof(*lens));
	keys = calloc(2 * n, sizeof(*keys));
	nums = calloc(n, sizeof(*nums));
	if (argv == NULL || lens == NULL || keys == NULL || nums == NULL) {
		store_fail("redis: out of memory");
		goto out;
	}

	for (i = 0; i < n; i++) {
		size_t a = 3 + 2 * i;

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
	snprintf(numkeys, sizeof(numkeys), "%zu", 2 * n);
	argv[2] = numkeys;
	lens[2] = strlen(numkeys);
	{
		size_t a = 3 + 2 * n;

		argv[a] = now;
		lens[a] = strlen(now);
		argv[a + 1] = ttl;
		lens[a + 1] = strlen(ttl);
		for (i = 0; i < n; i++) {
			const struct limit_values *lv = &units[i].lv;
			long bw = lv->burst_window < 1 ? 1 : lv->burst_window > 3600 ? 3600
										  : lv->burst_window;
			size_t b = a + 2 + 4 * i;

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

/* ---- pipelines ---------------------------------------------------------- */

/*
 * A batch of plain commands sent in one round trip: store_batch_add only
 * queues a command in hiredis's output buffer, store_batch_run writes them
 * all and reads every reply in order, so that the connection stays in step
 * even when some command failed. Keys of different senders or networks may
 * live in different cluster slots, so every command names one key only.
 */
struct store_batch {
	struct store_conn *s;
	const struct config *cfg;
	const char *what;     /* names the operation in errors */
	redisReply **replies; /* one per queued command, filled by run */
	size_t sent;          /* commands queued */
	size_t cap;           /* room in replies */
	size_t got;           /* replies read */
	int rv;               /* STORE_ERR once anything failed */
};

/* store_batch_begin - connect; STORE_ERR when Redis is unavailable */
static int store_batch_begin(struct store_batch *b, const struct config *cfg, const char *what)
{
	memset(b, 0, sizeof(*b));
	b->cfg = cfg;
	b->what = what;
	b->rv = STORE_OK;
	if ((b->s = store_conn_get()) == NULL || store_connect(b->s, cfg) != 0)
		return STORE_ERR;
	return STORE_OK;
}

/*
 * store_batch_fail - a command could not be built (the builder said why):
 * nothing more is queued, what was queued is still sent and read.
 */
static void store_batch_fail(struct store_batch *b)
{
	b->rv = STORE_ERR;
}

/* store_batch_add - queue one command (ignored once the batch failed) */
static void store_batch_add(struct store_batch *b, int argc, const char **argv,
			    const size_t *lens)
{
	if (b->rv != STORE_OK || b->s->c == NULL)
		return;
	if (b->sent == b->cap) {
		size_t cap = b->cap ? 2 * b->cap : 16;
		/* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
		redisReply **r = realloc(b->replies, cap * sizeof(*r));

		if (r == NULL) {
			store_fail("redis: %s: out of memory", b->what);
			b->rv = STORE_ERR;
			return;
		}
		b->replies = r;
		b->cap = cap;
	}
	if (redisAppendCommandArgv(b->s->c, argc, argv, lens) != REDIS_OK) {
		/* nothing was written yet: dropping the connection discards it all */
		store_fail("redis: %s: cannot queue the command", b->what);
		store_drop(b->s);
		b->sent = 0;
		b->rv = STORE_ERR;
		return;
	}
	b->sent++;
}

/*
 * store_batch_run - send what was queued and read every reply. STORE_ERR
 * after an I/O error or timeout (the connection is dropped), an error reply
 * (the first one is reported) or an earlier failure to build a command.
 */
static int store_batch_run(struct store_batch *b)
{
	size_t i;

	for (i = 0; i < b->sent; i++) {
		redisReply *r;

		if (redisGetReply(b->s->c, (void **)&r) != REDIS_OK || r == NULL) {
			store_io_error(b->s->c, b->what, store_timeout_ms(b->cfg));
			store_broken(b->s);
			b->rv = STORE_ERR;
			return STORE_ERR;
		}
		b->replies[b->got++] = r;
		if (r->type == REDIS_REPLY_ERROR && b->rv == STORE_OK) {
			store_fail("redis: %s: %.*s", b->what, (int)r->len, r->str);
			b->rv = STORE_ERR;
		}
	}
	return b->rv;
}

/* store_batch_end - free the replies */
static void store_batch_end(struct store_batch *b)
{
	size_t i;

	for (i = 0; i < b->got; i++)
		freeReplyObject(b->replies[i]);
	free(b->replies);
	b->replies = NULL;
	b->got = b->sent = b->cap = 0;
}

/* store_wall_ms - the local clock, ms since the epoch */
static long long store_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* the configured relationship lifetime (days) in ms, and the cap */
static long long store_rel_ttl_ms(const struct config *cfg)
{
	return (long long)(cfg->relationship_ttl > 0 ? cfg->relationship_ttl : 365) * 86400000LL;
}

static long long store_rel_max(const struct config *cfg)
{
	return cfg->relationship_max > 0 ? cfg->relationship_max : 10000;
}

/* store_sender_key - "PREFIX{s:SENDER}:KIND", malloc'd */
static char *store_sender_key(const struct config *cfg, const char *sender, const char *kind,
			      size_t *len)
{
	const char *prefix = cfg->redis.prefix != NULL ? cfg->redis.prefix : "";
	size_t size = strlen(prefix) + strlen(sender) + strlen(kind) + 6;
	char *k;

	if ((k = malloc(size)) == NULL) {
		store_fail("redis: out of memory");
		return NULL;
	}
	*len = (size_t)snprintf(k, size, "%s{s:%s}:%s", prefix, sender, kind);
	return k;
}

/* store_batch_units - ZREM each unit from its pending set and, when RELEASE, its window */
static void store_batch_units(struct store_batch *b, const struct store_unit *units, size_t n,
			      bool release)
{
	static const char kinds[2] = { 'p', 'w' };
	size_t i;
	int k;

	for (i = 0; i < n; i++) {
		for (k = 0; k < (release ? 2 : 1); k++) {
			const char *argv[3];
			size_t lens[3];
			char *key = store_key(b->cfg, &units[i], kinds[k], &lens[1]);

			if (key == NULL) {
				store_batch_fail(b);
				return;
			}
			argv[0] = "ZREM";
			lens[0] = 4;
			argv[1] = key;
			argv[2] = units[i].member;
			lens[2] = strlen(units[i].member);
			store_batch_add(b, 3, argv, lens);
			free(key);
		}
	}
}

/* store_batch_simple - queue a command of up to 4 C strings */
static void store_batch_simple(struct store_batch *b, const char *a0, const char *a1,
			       size_t a1len, const char *a2, const char *a3)
{
	const char *argv[4] = { a0, a1, a2, a3 };
	size_t lens[4];
	int argc = a3 != NULL ? 4 : a2 != NULL ? 3 : 2;
	int i;

	lens[0] = strlen(a0);
	lens[1] = a1len;
	for (i = 2; i < argc; i++)
		lens[i] = strlen(argv[i]);
	store_batch_add(b, argc, argv, lens);
}

#define STORE_CHUNK 1000 /* members per ZADD / ZREM */

/*
 * store_batch_members - queue CMD KEY [SCORE] M1 [SCORE] M2 ... for the N
 * members RCPTS, at most CHUNK members per command (0: all in one); with
 * SCORE NULL the members go without scores (ZREM, ZMSCORE).
 */
static void store_batch_members(struct store_batch *b, const char *cmd, const char *key,
				size_t klen, const char *score, const char *const *rcpts, size_t n,
				size_t chunk)
{
	size_t per = score != NULL ? 2 : 1;
	size_t most = chunk > 0 && chunk < n ? chunk : n;
	const char **argv;
	size_t *lens;
	size_t done = 0, slen = score != NULL ? strlen(score) : 0;

	if (n == 0)
		return;
	argv = malloc((2 + per * most) * sizeof(*argv));
	lens = malloc((2 + per * most) * sizeof(*lens));
	if (argv == NULL || lens == NULL) {
		free(argv);
		free(lens);
		store_fail("redis: %s: out of memory", b->what);
		store_batch_fail(b);
		return;
	}
	argv[0] = cmd;
	lens[0] = strlen(cmd);
	argv[1] = key;
	lens[1] = klen;
	while (done < n) {
		size_t m = n - done < most ? n - done : most;
		size_t i, a = 2;

		for (i = 0; i < m; i++) {
			if (score != NULL) {
				argv[a] = score;
				lens[a++] = slen;
			}
			argv[a] = rcpts[done + i];
			lens[a++] = strlen(rcpts[done + i]);
		}
		store_batch_add(b, (int)a, argv, lens);
		done += m;
	}
	free(lens);
	free(argv);
}

/*
 * store_batch_learn - RCPTS become known correspondents of SENDER, last
 * seen NOW; then entries past relationship_ttl go, the newest
 * relationship_max stay, and the set lives relationship_ttl after this.
 */
static void store_batch_learn(struct store_batch *b, const char *sender,
			      const char *const *rcpts, size_t n, long long now)
{
	long long ttl = store_rel_ttl_ms(b->cfg);
	char snow[24], cutoff[24], rank[24], sttl[24];
	size_t klen;
	char *key;

	if (n == 0)
		return;
	if ((key = store_sender_key(b->cfg, sender, "rel", &klen)) == NULL) {
		store_batch_fail(b);
		return;
	}
	snprintf(snow, sizeof(snow), "%lld", now);
	snprintf(cutoff, sizeof(cutoff), "(%lld", now - ttl);
	snprintf(rank, sizeof(rank), "%lld", -store_rel_max(b->cfg) - 1);
	snprintf(sttl, sizeof(sttl), "%lld", ttl);
	store_batch_members(b, "ZADD", key, klen, snow, rcpts, n, STORE_CHUNK);
	store_batch_simple(b, "ZREMRANGEBYSCORE", key, klen, "-inf", cutoff);
	store_batch_simple(b, "ZREMRANGEBYRANK", key, klen, "0", rank);
	store_batch_simple(b, "PEXPIRE", key, klen, sttl, NULL);
	free(key);
}

#define STORE_STATS_TTL "691200" /* 8 days, in seconds */
#define STORE_TOP_TRIM "-1001"    /* keep the 1000 biggest senders an hour */

/* store_hour - "YYYYMMDDHH", the UTC hour of NOW_MS (0: now) */
static int store_hour(long long now_ms, char *hour, size_t size)
{
	time_t t = now_ms > 0 ? (time_t)(now_ms / 1000) : time(NULL);
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(hour, size, "%Y%m%d%H", &tm) == 0) {
		store_fail("redis: cannot format the statistics hour");
		return -1;
	}
	return 0;
}

/* store_count_key - the key a counter goes to (doc/REDIS.md), malloc'd */
static char *store_count_key(const struct config *cfg, const struct store_count *c,
			     const char *hour, size_t *len)
{
	const char *prefix = cfg->redis.prefix != NULL ? cfg->redis.prefix : "";
	char kind[32];
	size_t size;
	char *k;

	if (c->key == COUNT_SENDER) {
		snprintf(kind, sizeof(kind), "h:%s", hour);
		return store_sender_key(cfg, c->sender, kind, len);
	}
	size = strlen(prefix) + strlen(hour) + 16;
	if ((k = malloc(size)) == NULL) {
		store_fail("redis: out of memory");
		return NULL;
	}
	*len = (size_t)snprintf(k, size, "%s{stats}:%s:%s", prefix,
				c->key == COUNT_TOP ? "top" : "h", hour);
	return k;
}

/*
 * store_batch_counts - HINCRBY (ZINCRBY for the top senders) each counter
 * of the hour of NOW_MS, and give every key touched its 8-day TTL once.
 */
static void store_batch_counts(struct store_batch *b, const struct store_count *counts,
			       size_t n, long long now_ms)
{
	char hour[16], by[24];
	char *keys[n + 1];
	size_t lens[n + 1], nkeys = 0, i, j;

	if (n == 0)
		return;
	if (store_hour(now_ms, hour, sizeof(hour)) != 0) {
		store_batch_fail(b);
		return;
	}
	for (i = 0; i < n; i++) {
		size_t klen;
		char *key = store_count_key(b->cfg, &counts[i], hour, &klen);

		if (key == NULL) {
			store_batch_fail(b);
			break;
		}
		snprintf(by, sizeof(by), "%ld", counts[i].by);
		if (counts[i].key == COUNT_TOP) {
			const char *argv[4] = { "ZINCRBY", key, by, counts[i].sender };
			size_t alen[4] = { 7, klen, strlen(by), strlen(counts[i].sender) };

			store_batch_add(b, 4, argv, alen);
			/* bounded: the STORE_TOP_MAX biggest senders of the hour */
			store_batch_simple(b, "ZREMRANGEBYRANK", key, klen, "0", STORE_TOP_TRIM);
		} else {
			store_batch_simple(b, "HINCRBY", key, klen, counts[i].field, by);
		}
		for (j = 0; j < nkeys; j++)
			if (lens[j] == klen && memcmp(keys[j], key, klen) == 0)
				break;
		if (j < nkeys) {
			free(key);
			continue;
		}
		keys[nkeys] = key;
		lens[nkeys++] = klen;
	}
	for (j = 0; j < nkeys; j++) {
		store_batch_simple(b, "EXPIRE", keys[j], lens[j], STORE_STATS_TTL, NULL);
		free(keys[j]);
	}
}

/* store_batch_log - XADD each entry to the capped decision log */
static void store_batch_log(struct store_batch *b, const struct store_log *logs, size_t n)
{
	const char *prefix = b->cfg->redis.prefix != NULL ? b->cfg->redis.prefix : "";
	char key[256], cap[24];
	size_t klen, i, j;

	if (n == 0 || b->cfg->log_max_entries <= 0)
		return;
	klen = (size_t)snprintf(key, sizeof(key), "%s{log}", prefix);
	if (klen >= sizeof(key)) {
		store_fail("redis: %s: prefix too long", b->what);
		store_batch_fail(b);
		return;
	}
	snprintf(cap, sizeof(cap), "%ld", b->cfg->log_max_entries);
	for (i = 0; i < n; i++) {
		size_t argc = 6 + 2 * logs[i].n_fields;
		const char *argv[argc];
		size_t alen[argc];

		argv[0] = "XADD", argv[1] = key, argv[2] = "MAXLEN", argv[3] = "~";
		argv[4] = cap, argv[5] = "*";
		for (j = 0; j < 2 * logs[i].n_fields; j++)
			argv[6 + j] = logs[i].fields[j] != NULL ? logs[i].fields[j] : "";
		for (j = 0; j < argc; j++)
			alen[j] = j == 1 ? klen : strlen(argv[j]);
		store_batch_add(b, (int)argc, argv, alen);
	}
}

/* ---- end of message ------------------------------------------------------ */

/* store_finish_run - store_finish, with WHAT naming the operation in errors */
static int store_finish_run(const struct config *cfg, const struct store_finish *f,
			    const char *what)
{
	struct store_batch b;
	const char **run = NULL;
	long long now;
	size_t i;
	int rv;

	if (f->n_commit == 0 && f->n_release == 0 && f->n_learn == 0 && f->n_counts == 0 &&
	    f->n_logs == 0)
		return STORE_OK;
	for (i = 0; i < f->n_commit; i++)
		if (store_check_unit(&f->commit[i]) != 0)
			return STORE_ERR;
	for (i = 0; i < f->n_release; i++)
		if (store_check_unit(&f->release[i]) != 0)
			return STORE_ERR;
	for (i = 0; i < f->n_learn; i++)
		if (f->learn[i].sender == NULL || f->learn[i].rcpt == NULL) {
			store_fail("redis: %s: incomplete relationship", what);
			return STORE_ERR;
		}
	for (i = 0; i < f->n_counts; i++)
		if ((f->counts[i].key != COUNT_TOP && f->counts[i].field == NULL) ||
		    (f->counts[i].key != COUNT_STATS && f->counts[i].sender == NULL)) {
			store_fail("redis: %s: incomplete counter", what);
			return STORE_ERR;
		}
	if (f->n_learn > 0 && (run = malloc(f->n_learn * sizeof(*run))) == NULL) {
		store_fail("redis: %s: out of memory", what);
		return STORE_ERR;
	}
	if (store_batch_begin(&b, cfg, what) != STORE_OK) {
		free(run);
		return STORE_ERR;
	}
	now = f->now_ms > 0 ? f->now_ms : store_wall_ms();

	store_batch_units(&b, f->commit, f->n_commit, false);
	store_batch_units(&b, f->release, f->n_release, true);
	/* one ZADD (and one set of trims) per run of pairs of the same sender */
	for (i = 0; i < f->n_learn;) {
		const char *sender = f->learn[i].sender;
		size_t k = 0;

		while (i < f->n_learn && strcmp(f->learn[i].sender, sender) == 0)
			run[k++] = f->learn[i++].rcpt;
		store_batch_learn(&b, sender, run, k, now);
	}
	store_batch_counts(&b, f->counts, f->n_counts, f->now_ms);
	store_batch_log(&b, f->logs, f->n_logs);

	rv = store_batch_run(&b);
	store_batch_end(&b);
	free(run);
	return rv;
}

int store_finish(const struct config *cfg, const struct store_finish *f)
{
	return store_finish_run(cfg, f, "finish");
}

int store_commit(const struct config *cfg, const struct store_unit *units, size_t n)
{
	struct store_finish f = { .commit = units, .n_commit = n };

	return store_finish_run(cfg, &f, "commit");
}

int store_release(const struct config *cfg, const struct store_unit *units, size_t n)
{
	struct store_finish f = { .release = units, .n_release = n };

	return store_finish_run(cfg, &f, "release");
}

/* store_score_ms - a sorted set score as sent by Redis; false when not one */
static bool store_score_ms(const redisReply *r, double *ms)
{
	char *end;

	if (r->type != REDIS_REPLY_STRING || r->len == 0)
		return false;
	*ms = strtod(r->str, &end);
	return *end == '\0';
}

/* store_parse_inputs - the replies of store_eom_inputs into IN */
static int store_parse_inputs(const struct store_batch *b, size_t i_known, size_t n,
			      long long cutoff, size_t i_card, size_t i_block, size_t n_block,
			      struct store_inputs *in)
{
	const redisReply *r;
	size_t i;

	if (n > 0) {
		r = b->replies[i_known];
		if (r->type != REDIS_REPLY_ARRAY || r->elements != n)
			goto bad;
		for (i = 0; i < n; i++) {
			const redisReply *e = r->element[i];
			double ms;

			if (e->type == REDIS_REPLY_NIL)
				continue;
			if (!store_score_ms(e, &ms))
				goto bad;
			if (ms >= (double)cutoff) {
				if (in->known != NULL)
					in->known[i] = 1;
				in->known_count++;
			}
		}
	}
	r = b->replies[i_card];
	if (r->type != REDIS_REPLY_INTEGER)
		goto bad;
	in->velocity = (long)r->integer;
	for (i = 0; i < n_block; i++) {
		r = b->replies[i_block + i];
		if (r->type == REDIS_REPLY_NIL)
			continue;
		if (r->type != REDIS_REPLY_STRING)
			goto bad;
		in->blocked = true;
		snprintf(in->block_reason, sizeof(in->block_reason), "%.*s", (int)r->len, r->str);
		break;
	}
	return STORE_OK;
bad:
	store_fail("redis: %s: unexpected reply", b->what);
	return STORE_ERR;
}

int store_eom_inputs(const struct config *cfg, const char *rel_sender, const char *vel_sender,
		     const char *const *rcpts, size_t n, long long now_ms, struct store_inputs *in)
{
	struct store_batch b;
	char *rel = NULL, *vel = NULL, *block[2] = { NULL, NULL };
	size_t rlen, vlen, blen[2], n_block, i, i_known = 0, i_card, i_block;
	char snow[24], cutoff[24], rank[24];
	int rv = STORE_ERR;

	in->known_count = 0;
	in->velocity = 0;
	in->blocked = false;
	in->block_reason[0] = '\0';
	if (in->known != NULL && n > 0)
		memset(in->known, 0, n);
	if (vel_sender == NULL)
		vel_sender = rel_sender;
	if (rel_sender == NULL || (n > 0 && rcpts == NULL)) {
		store_fail("redis: inputs: no sender or recipients");
		return STORE_ERR;
	}
	for (i = 0; i < n; i++)
		if (rcpts[i] == NULL) {
			store_fail("redis: inputs: missing recipient");
			return STORE_ERR;
		}
	if (now_ms <= 0)
		now_ms = store_wall_ms();
	n_block = strcmp(rel_sender, vel_sender) != 0 ? 2 : 1;
	if ((rel = store_sender_key(cfg, rel_sender, "rel", &rlen)) == NULL ||
	    (vel = store_sender_key(cfg, vel_sender, "vel", &vlen)) == NULL ||
	    (block[0] = store_sender_key(cfg, rel_sender, "block", &blen[0])) == NULL ||
	    (n_block == 2 &&
	     (block[1] = store_sender_key(cfg, vel_sender, "block", &blen[1])) == NULL))
		goto out;
	if (store_batch_begin(&b, cfg, "inputs") != STORE_OK)
		goto out;

	snprintf(snow, sizeof(snow), "%lld", now_ms);
	snprintf(cutoff, sizeof(cutoff), "(%lld", now_ms - HOUR_MS);
	snprintf(rank, sizeof(rank), "%d", -(VELOCITY_CAP + 1));
	i_known = b.sent;
	if (n > 0) {
		store_batch_members(&b, "ZMSCORE", rel, rlen, NULL, rcpts, n, 0);
		store_batch_members(&b, "ZADD", vel, vlen, snow, rcpts, n, 0);
	}
	store_batch_simple(&b, "ZREMRANGEBYSCORE", vel, vlen, "-inf", cutoff);
	store_batch_simple(&b, "ZREMRANGEBYRANK", vel, vlen, "0", rank);
	i_card = b.sent;
	store_batch_simple(&b, "ZCARD", vel, vlen, NULL, NULL);
	store_batch_simple(&b, "PEXPIRE", vel, vlen, "3600000", NULL);
	i_block = b.sent;
	for (i = 0; i < n_block; i++)
		store_batch_simple(&b, "GET", block[i], blen[i], NULL, NULL);

	if (store_batch_run(&b) == STORE_OK)
		rv = store_parse_inputs(&b, i_known, n, now_ms - store_rel_ttl_ms(cfg), i_card,
					i_block, n_block, in);
	store_batch_end(&b);
out:
	free(rel);
	free(vel);
	free(block[0]);
	free(block[1]);
	if (rv != STORE_OK) {
		in->known_count = 0;
		in->velocity = 0;
		in->blocked = false;
		in->block_reason[0] = '\0';
		if (in->known != NULL && n > 0)
			memset(in->known, 0, n);
	}
	return rv;
}

/* ---- relationship lists and blocks (outboundctl) --------------------------- */

static int store_check_rcpts(const char *sender, const char *const *rcpts, size_t n,
			     const char *what)
{
	size_t i;

	if (sender == NULL || (n > 0 && rcpts == NULL)) {
		store_fail("redis: %s: no sender or recipients", what);
		return -1;
	}
	for (i = 0; i < n; i++)
		if (rcpts[i] == NULL) {
			store_fail("redis: %s: missing recipient", what);
			return -1;
		}
	return 0;
}

int store_rel_add(const struct config *cfg, const char *sender, const char *const *rcpts,
		  size_t n, long long now_ms)
{
	struct store_batch b;
	int rv;

	if (store_check_rcpts(sender, rcpts, n, "rel add") != 0)
		return STORE_ERR;
	if (n == 0)
		return STORE_OK;
	if (store_batch_begin(&b, cfg, "rel add") != STORE_OK)
		return STORE_ERR;
	store_batch_learn(&b, sender, rcpts, n, now_ms > 0 ? now_ms : store_wall_ms());
	rv = store_batch_run(&b);
	store_batch_end(&b);
	return rv;
}

int store_rel_del(const struct config *cfg, const char *sender, const char *const *rcpts,
		  size_t n)
{
	struct store_batch b;
	size_t klen;
	char *key;
	int rv;

	if (store_check_rcpts(sender, rcpts, n, "rel del") != 0)
		return STORE_ERR;
	if (n == 0)
		return STORE_OK;
	if ((key = store_sender_key(cfg, sender, "rel", &klen)) == NULL)
		return STORE_ERR;
	if (store_batch_begin(&b, cfg, "rel del") != STORE_OK) {
		free(key);
		return STORE_ERR;
	}
	store_batch_members(&b, "ZREM", key, klen, NULL, rcpts, n, STORE_CHUNK);
	rv = store_batch_run(&b);
	store_batch_end(&b);
	free(key);
	return rv;
}

/*
 * store_single - one command of (at most 5) C strings on this thread's
 * connection; NULL on failure, including an error reply.
 */
static redisReply *store_single(const struct config *cfg, int argc, const char **argv)
{
	struct store_conn *s;
	size_t lens[5];
	redisReply *r;
	int i;

	for (i = 0; i < argc && i < 5; i++)
		lens[i] = strlen(argv[i]);
	if ((s = store_conn_get()) == NULL || store_connect(s, cfg) != 0)
		return NULL;
	if ((r = store_command(s, cfg, argc, argv, lens)) == NULL)
		return NULL;
	if (r->type == REDIS_REPLY_ERROR) {
		store_fail("redis: %s: %.*s", argv[0], (int)r->len, r->str);
		freeReplyObject(r);
		return NULL;
	}
	return r;
}

/*
 * store_list_since - call FN for each member of the sorted set KEY (freed
 * here) scored at or after SINCE_MS, newest first; the count or STORE_ERR.
 * WHAT names the operation in errors.
 */
static long store_list_since(const struct config *cfg, char *key, long long since_ms,
			     const char *what,
			     void (*fn)(void *arg, const char *member, long long score_ms),
			     void *arg)
{
	const char *argv[5];
	char min[24];
	redisReply *r;
	long count = 0;
	size_t i;

	snprintf(min, sizeof(min), "%lld", since_ms);
	argv[0] = "ZREVRANGEBYSCORE";
	argv[1] = key;
	argv[2] = "+inf";
	argv[3] = min;
	argv[4] = "WITHSCORES";
	r = store_single(cfg, 5, argv);
	free(key);
	if (r == NULL)
		return STORE_ERR;
	if (r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0) {
		store_fail("redis: %s: unexpected reply", what);
		freeReplyObject(r);
		return STORE_ERR;
	}
	for (i = 0; i + 1 < r->elements; i += 2) {
		double ms;

		if (r->element[i]->type != REDIS_REPLY_STRING ||
		    !store_score_ms(r->element[i + 1], &ms)) {
			store_fail("redis: %s: unexpected reply", what);
			freeReplyObject(r);
			return STORE_ERR;
		}
		fn(arg, r->element[i]->str, (long long)ms);
		count++;
	}
	freeReplyObject(r);
	return count;
}

long store_rel_list(const struct config *cfg, const char *sender,
		    void (*fn)(void *arg, const char *rcpt, long long last_seen_ms), void *arg)
{
	size_t klen;
	char *key;

	if (sender == NULL || fn == NULL) {
		store_fail("redis: rel list: no sender or function");
		return STORE_ERR;
	}
	if ((key = store_sender_key(cfg, sender, "rel", &klen)) == NULL)
		return STORE_ERR;
	return store_list_since(cfg, key, store_wall_ms() - store_rel_ttl_ms(cfg), "rel list", fn,
				arg);
}

int store_block(const struct config *cfg, const char *sender, const char *reason,
		long ttl_seconds)
{
	const char *argv[5];
	size_t klen;
	char ttl[24];
	redisReply *r;
	char *key;
	int argc = 3, rv = STORE_ERR;

	if (sender == NULL || ttl_seconds < 0) {
		store_fail("redis: block: no sender or a negative TTL");
		return STORE_ERR;
	}
	if ((key = store_sender_key(cfg, sender, "block", &klen)) == NULL)
		return STORE_ERR;
	argv[0] = "SET";
	argv[1] = key;
	argv[2] = reason != NULL ? reason : "";
	if (ttl_seconds > 0) {
		snprintf(ttl, sizeof(ttl), "%ld", ttl_seconds);
		argv[argc++] = "EX";
		argv[argc++] = ttl;
	}
	r = store_single(cfg, argc, argv);
	free(key);
	if (r == NULL)
		return STORE_ERR;
	if (r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0)
		rv = STORE_OK;
	else
		store_fail("redis: block: unexpected reply");
	freeReplyObject(r);
	return rv;
}

int store_unblock(const struct config *cfg, const char *sender)
{
	const char *argv[2];
	size_t klen;
	redisReply *r;
	char *key;
	int rv = STORE_ERR;

	if (sender == NULL) {
		store_fail("redis: unblock: no sender");
		return STORE_ERR;
	}
	if ((key = store_sender_key(cfg, sender, "block", &klen)) == NULL)
		return STORE_ERR;
	argv[0] = "DEL";
	argv[1] = key;
	r = store_single(cfg, 2, argv);
	free(key);
	if (r == NULL)
		return STORE_ERR;
	if (r->type == REDIS_REPLY_INTEGER)
		rv = r->integer > 0 ? STORE_OK : STORE_OVER;
	else
		store_fail("redis: unblock: unexpected reply");
	freeReplyObject(r);
	return rv;
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
	store_drop(s); /* closed, not kept for another thread */
	free(s);
}

/* ---- MX grouping (mx.c) ------------------------------------------------------ */

/* store_mx_key - "PREFIX{mx:DOMAIN}" or "PREFIX{mx}:net:NETWORK", malloc'd */
static char *store_mx_key(const struct config *cfg, const char *what, const char *name,
			  size_t *len)
{
	const char *prefix = cfg->redis.prefix != NULL ? cfg->redis.prefix : "";
	size_t size = strlen(prefix) + strlen(name) + 16;
	char *k;

	if ((k = malloc(size)) == NULL) {
		store_fail("redis: out of memory");
		return NULL;
	}
	if (strcmp(what, "net") == 0)
		*len = (size_t)snprintf(k, size, "%s{mx}:net:%s", prefix, name);
	else
		*len = (size_t)snprintf(k, size, "%s{mx:%s}", prefix, name);
	return k;
}

int store_mx_get(const struct config *cfg, const char *domain, char *buf, size_t size,
		 long long *ttl_ms)
{
	struct store_batch b;
	const redisReply *v, *t;
	size_t klen;
	char *key;
	int rv = STORE_ERR;

	if (domain == NULL || buf == NULL || size == 0) {
		store_fail("redis: mx get: no domain or buffer");
		return STORE_ERR;
	}
	if ((key = store_mx_key(cfg, "domain", domain, &klen)) == NULL)
		return STORE_ERR;
	if (store_batch_begin(&b, cfg, "mx get") != STORE_OK) {
		free(key);
		return STORE_ERR;
	}
	store_batch_simple(&b, "GET", key, klen, NULL, NULL);
	store_batch_simple(&b, "PTTL", key, klen, NULL, NULL);
	if (store_batch_run(&b) == STORE_OK) {
		v = b.replies[0];
		t = b.replies[1];
		if (v->type == REDIS_REPLY_NIL) {
			rv = STORE_OVER;
		} else if (v->type != REDIS_REPLY_STRING || t->type != REDIS_REPLY_INTEGER) {
			store_fail("redis: mx get: unexpected reply");
		} else if (v->len >= size || t->integer == -2) {
			rv = STORE_OVER; /* too long to be ours, or gone meanwhile */
		} else {
			memcpy(buf, v->str, v->len);
			buf[v->len] = '\0';
			if (ttl_ms != NULL)
				*ttl_ms = t->integer; /* -1: no TTL (not one we wrote) */
			rv = STORE_OK;
		}
	}
	store_batch_end(&b);
	free(key);
	return rv;
}

int store_mx_put(const struct config *cfg, const char *domain, const char *value,
		 long ttl_seconds, const char *network, long long now_ms)
{
	struct store_batch b;
	char *key = NULL, *net = NULL;
	size_t klen = 0, nlen = 0;
	char ttl[24], now[24], cutoff[24], rank[24], keep[24];
	int rv = STORE_ERR;

	if (domain == NULL || (value != NULL && ttl_seconds < 1)) {
		store_fail("redis: mx put: no domain or no TTL");
		return STORE_ERR;
	}
	if (value == NULL && network == NULL)
		return STORE_OK;
	if (value != NULL && (key = store_mx_key(cfg, "domain", domain, &klen)) == NULL)
		return STORE_ERR;
	if (network != NULL && (net = store_mx_key(cfg, "net", network, &nlen)) == NULL)
		goto out;
	if (store_batch_begin(&b, cfg, "mx put") != STORE_OK)
		goto out;
	if (value != NULL) {
		const char *argv[5] = { "SET", key, value, "EX", ttl };
		size_t lens[5];

		snprintf(ttl, sizeof(ttl), "%ld", ttl_seconds);
		lens[0] = 3;
		lens[1] = klen;
		lens[2] = strlen(value);
		lens[3] = 2;
		lens[4] = strlen(ttl);
		store_batch_add(&b, 5, argv, lens);
	}
	if (network != NULL) {
		const char *member[1] = { domain };

		if (now_ms <= 0)
			now_ms = store_wall_ms();
		snprintf(now, sizeof(now), "%lld", now_ms);
		snprintf(cutoff, sizeof(cutoff), "(%lld", now_ms - STORE_MX_KEEP_S * 1000LL);
		snprintf(rank, sizeof(rank), "%d", -(STORE_MX_NET_MAX + 1));
		snprintf(keep, sizeof(keep), "%d", STORE_MX_KEEP_S);
		store_batch_members(&b, "ZADD", net, nlen, now, member, 1, 0);
		store_batch_simple(&b, "ZREMRANGEBYSCORE", net, nlen, "-inf", cutoff);
		store_batch_simple(&b, "ZREMRANGEBYRANK", net, nlen, "0", rank);
		store_batch_simple(&b, "EXPIRE", net, nlen, keep, NULL);
	}
	rv = store_batch_run(&b);
	store_batch_end(&b);
out:
	free(key);
	free(net);
	return rv;
}

long store_mx_network_list(const struct config *cfg, const char *network,
			   void (*fn)(void *arg, const char *domain, long long last_seen_ms),
			   void *arg)
{
	size_t klen;
	char *key;

	if (network == NULL || fn == NULL) {
		store_fail("redis: mx list: no network or function");
		return STORE_ERR;
	}
	if ((key = store_mx_key(cfg, "net", network, &klen)) == NULL)
		return STORE_ERR;
	return store_list_since(cfg, key, store_wall_ms() - STORE_MX_KEEP_S * 1000LL, "mx list",
				fn, arg);
}
