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
 * The milter's calls are pipelines, one round trip each: a recipient's
 * reservation with its lookups (store_rcpt), then everything the end of
 * the message writes (store_finish). Their commands are encoded by resp.c
 * into a request buffer kept with the connection, keys written straight
 * into it, so that a round trip allocates nothing of ours; arguments are
 * counted strings, so scope values (addresses, domains) are binary-safe and
 * never meet a format. Every reply is read, so an error reply leaves the
 * connection usable; a reply that does not come in time drops the
 * connection, and what came before it is still used (a reservation that
 * Redis answered stands). Nothing is logged here; callers get STORE_ERR
 * and store_last_error().
 *
 * A reservation (reserve.lua) returns its admission time; the commit puts
 * each unit in its window at that time, so that a message slower than
 * reservation_ttl, whose pending unit an expiry check dropped, is counted
 * all the same.
 *
 * Besides the rate windows (reserve.lua) this file keeps, per sender, the
 * relationships (PREFIX{s:SENDER}:rel, recipient -> last seen), the
 * velocity set (PREFIX{s:SENDER}:vel, recipient -> last mailed, one hour,
 * at most VELOCITY_CAP) and blocks (PREFIX{s:SENDER}:block), and the hourly
 * statistics (doc/REDIS.md: PREFIX{stats}:h:HOUR and others). Keys of
 * different senders may live in different cluster slots, so every command
 * names keys of one hash tag only.
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

#include "resp.h"
#include "store.h"

/* embedded from milter/lua/ by the build */
extern const char lua_reserve[];
extern const char lua_renew[];

#define STORE_BACKOFF_MIN_MS 100
#define STORE_BACKOFF_MAX_MS 1000
#define STORE_DEFAULT_TIMEOUT_MS 200
#define STORE_ERR_SIZE 256

enum store_script { SCRIPT_RESERVE, SCRIPT_RENEW, SCRIPT_COUNT };

static const char *const store_script_src[SCRIPT_COUNT] = {
	[SCRIPT_RESERVE] = lua_reserve,
	[SCRIPT_RENEW] = lua_renew,
};

/* one thread's connection and its reconnect state */
struct store_conn {
	redisContext *c;               /* NULL when not connected */
	unsigned long generation;      /* of the configuration it was made with */
	char sha[SCRIPT_COUNT][41];    /* "" until loaded on this connection */
	long long retry_at;            /* monotonic ms: no connect before this */
	int backoff_ms;                /* wait after the next failed connect */
	char conn_err[STORE_ERR_SIZE]; /* why the last connect failed */
	struct resp_buf req;           /* the request being built, reused */
	redisReply **replies;          /* the replies of a batch, reused */
	size_t cap_replies;
};

static pthread_key_t store_tkey;
static pthread_once_t store_once = PTHREAD_ONCE_INIT;
static int store_key_ok;

static __thread char store_err[STORE_ERR_SIZE];
/* the last connect failed because Redis said no (AUTH, SELECT) or the password was unreadable */
static __thread bool store_refused;

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

/* store_conn_destroy - close the connection and free everything of S */
static void store_conn_destroy(struct store_conn *s)
{
	store_drop(s);
	resp_free(&s->req);
	free(s->replies);
	free(s);
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
	if (s != NULL)
		store_conn_destroy(s);
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
		store_conn_destroy(s);
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
	if (!ok) {
		store_fail("redis: %s: %.*s", argv[0], (int)r->len, r->str);
		store_refused = true;
	}
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

		if (store_read_password(rc->password_file, pass, sizeof(pass)) != 0) {
			store_refused = true;
			return -1;
		}
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

	store_refused = false;
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
 * store_verify_command - one command of the check on C; 0, or -1 with
 * why (Redis's error: NOPERM names the command or key it refused).
 */
static int store_verify_command(redisContext *c, int argc, const char **argv,
				const size_t *lens, const char *what)
{
	redisReply *r = redisCommandArgv(c, argc, argv, lens);
	int rv = 0;

	if (r == NULL) {
		store_fail("redis: %s: %s", what, c->errstr[0] ? c->errstr : "connection error");
		return -1;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		store_fail("redis: %s: %.*s", what, (int)r->len, r->str);
		rv = -1;
	}
	freeReplyObject(r);
	return rv;
}

enum store_check store_verify(const struct config *cfg)
{
	int timeout_ms = store_timeout_ms(cfg);
	enum store_check rv = STORE_CHECK_OK;
	const char *argv[3];
	size_t lens[3];
	char key[512], pass[1024];
	const char *pw = cfg->redis.password_file;
	redisContext *c;

	/* the password file first: unusable whether Redis is up or not */
	if (pw != NULL && pw[0] != '\0') {
		int bad = store_read_password(pw, pass, sizeof(pass));

		explicit_bzero(pass, sizeof(pass));
		if (bad != 0)
			return STORE_CHECK_REFUSED;
	}
	if ((c = store_open(cfg, timeout_ms)) == NULL)
		return store_refused ? STORE_CHECK_REFUSED : STORE_CHECK_UNREACHABLE;
	for (int k = 0; k < SCRIPT_COUNT && rv == STORE_CHECK_OK; k++) {
		argv[0] = "SCRIPT";
		argv[1] = "LOAD";
		argv[2] = store_script_src[k];
		lens[0] = 6;
		lens[1] = 4;
		lens[2] = strlen(argv[2]);
		if (store_verify_command(c, 3, argv, lens, "SCRIPT LOAD") != 0)
			rv = STORE_CHECK_REFUSED;
	}
	/* a write under the prefix: an ACL that forbids the keys fails here */
	snprintf(key, sizeof(key), "%scheck", cfg->redis.prefix);
	argv[0] = "PEXPIRE";
	argv[1] = key;
	argv[2] = "1";
	lens[0] = 7;
	lens[1] = strlen(key);
	lens[2] = 1;
	if (rv == STORE_CHECK_OK && store_verify_command(c, 3, argv, lens, "PEXPIRE") != 0)
		rv = STORE_CHECK_REFUSED;
	if (rv == STORE_CHECK_REFUSED && c->err != 0)
		rv = STORE_CHECK_UNREACHABLE; /* lost on the way, not refused */
	redisFree(c);
	return rv;
}

/* ---- keys ------------------------------------------------------------------ */

/*
 * A key as the pieces it is made of. Each kind of key is defined once
 * (store_key_*) and then written straight into a request (store_put_key)
 * or, off the hot path, copied into a string (store_key_dup).
 */
#define STORE_KEY_PIECES 8
struct store_key {
	const char *s[STORE_KEY_PIECES];
	size_t len[STORE_KEY_PIECES];
	int n;
	size_t total;
};

static void store_key_add(struct store_key *k, const char *s, size_t len)
{
	k->s[k->n] = s;
	k->len[k->n++] = len;
	k->total += len;
}

static void store_key_str(struct store_key *k, const char *s)
{
	store_key_add(k, s != NULL ? s : "", s != NULL ? strlen(s) : 0);
}

/* start K with the configured prefix */
static void store_key_prefix(struct store_key *k, const struct config *cfg)
{
	k->n = 0;
	k->total = 0;
	store_key_str(k, cfg->redis.prefix);
}

/* "PREFIX{NETWORK}:KIND:RULE:SCOPE", KIND "w:" or "p:" (the scope is binary-safe) */
static void store_key_unit(struct store_key *k, const struct config *cfg,
			   const struct store_unit *u, const char *kind)
{
	store_key_prefix(k, cfg);
	store_key_add(k, "{", 1);
	store_key_str(k, u->network);
	store_key_add(k, "}:", 2);
	store_key_str(k, kind);
	store_key_str(k, u->rule);
	store_key_add(k, ":", 1);
	store_key_add(k, u->scope_len > 0 ? u->scope : "", u->scope_len);
}

/* "PREFIX{s:SENDER}:KIND" */
static void store_key_sender(struct store_key *k, const struct config *cfg, const char *sender,
			     const char *kind)
{
	store_key_prefix(k, cfg);
	store_key_add(k, "{s:", 3);
	store_key_str(k, sender);
	store_key_add(k, "}:", 2);
	store_key_str(k, kind);
}

/* "PREFIX{mx:DOMAIN}" */
static void store_key_mx_domain(struct store_key *k, const struct config *cfg,
				const char *domain)
{
	store_key_prefix(k, cfg);
	store_key_add(k, "{mx:", 4);
	store_key_str(k, domain);
	store_key_add(k, "}", 1);
}

/* "PREFIX{mx}:net:NETWORK" */
static void store_key_mx_net(struct store_key *k, const struct config *cfg, const char *network)
{
	store_key_prefix(k, cfg);
	store_key_add(k, "{mx}:net:", 9);
	store_key_str(k, network);
}

/* store_put_key - K as one argument of the request being built */
static void store_put_key(struct resp_buf *r, const struct store_key *k)
{
	int i;

	resp_bulk_begin(r, k->total);
	for (i = 0; i < k->n; i++)
		resp_put(r, k->s[i], k->len[i]);
	resp_bulk_end(r);
}

/* store_key_dup - K as a C string, malloc'd (NULL when out of memory) */
static char *store_key_dup(const struct store_key *k)
{
	char *d = malloc(k->total + 1), *p = d;
	int i;

	if (d == NULL) {
		store_fail("redis: out of memory");
		return NULL;
	}
	for (i = 0; i < k->n; i++) {
		if (k->len[i] > 0)
			memcpy(p, k->s[i], k->len[i]);
		p += k->len[i];
	}
	*p = '\0';
	return d;
}

/* ---- pipelines ---------------------------------------------------------- */

/*
 * A batch of commands sent in one round trip: the commands are encoded
 * into this connection's request buffer (resp.h, reused from one batch to
 * the next), store_batch_run hands the whole request to hiredis at once
 * and reads every reply in order, so that the connection stays in step
 * even when some command failed. Keys of different senders or networks may
 * live in different cluster slots, so every command names one key only
 * (the reserve script's keys share one network's hash tag).
 */
struct store_batch {
	struct store_conn *s;
	const struct config *cfg;
	const char *what;     /* names the operation in errors */
	redisReply **replies; /* one per command, filled by run (s->replies) */
	size_t sent;          /* commands queued */
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
	resp_reset(&b->s->req);
	return STORE_OK;
}

/*
 * store_batch_fail - a command could not be built (the builder said why):
 * the batch is not sent.
 */
static void store_batch_fail(struct store_batch *b)
{
	b->rv = STORE_ERR;
}

/*
 * store_cmd - start a command of ARGC arguments; the caller writes them
 * into the request returned.
 */
static struct resp_buf *store_cmd(struct store_batch *b, size_t argc)
{
	struct store_conn *s = b->s;

	if (b->sent == s->cap_replies) {
		size_t cap = s->cap_replies ? 2 * s->cap_replies : 32;
		/* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
		redisReply **r = realloc(s->replies, cap * sizeof(*r));

		if (r == NULL) {
			s->req.failed = true;
			return &s->req;
		}
		s->replies = r;
		s->cap_replies = cap;
	}
	b->sent++;
	resp_array(&s->req, argc);
	return &s->req;
}

/* store_is_noscript - Redis does not know the script (any more) */
static bool store_is_noscript(const redisReply *r)
{
	return r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

/*
 * store_batch_run - send what was queued and read every reply. STORE_ERR
 * after an I/O error or timeout (the connection is dropped), an error reply
 * (the first one is reported; NOSCRIPT is left to the caller) or a failure
 * to build a command.
 */
static int store_batch_run(struct store_batch *b)
{
	struct store_conn *s = b->s;
	size_t i;

	if (s->req.failed) {
		store_fail("redis: %s: out of memory", b->what);
		b->rv = STORE_ERR;
	}
	if (b->rv != STORE_OK || b->sent == 0)
		return b->rv;
	if (redisAppendFormattedCommand(s->c, s->req.p, s->req.len) != REDIS_OK) {
		store_fail("redis: %s: cannot queue the commands", b->what);
		store_drop(s);
		return b->rv = STORE_ERR;
	}
	b->replies = s->replies;
	for (i = 0; i < b->sent; i++) {
		redisReply *r;

		if (redisGetReply(s->c, (void **)&r) != REDIS_OK || r == NULL) {
			store_io_error(s->c, b->what, store_timeout_ms(b->cfg));
			store_broken(s);
			return b->rv = STORE_ERR;
		}
		b->replies[b->got++] = r;
		if (r->type == REDIS_REPLY_ERROR && b->rv == STORE_OK && !store_is_noscript(r)) {
			store_fail("redis: %s: %.*s", b->what, (int)r->len, r->str);
			b->rv = STORE_ERR;
		}
	}
	return b->rv;
}

#define STORE_REQ_KEEP ((size_t)256 * 1024) /* a larger request buffer is not kept */

/* store_batch_end - free the replies (the buffers stay for the next batch) */
static void store_batch_end(struct store_batch *b)
{
	size_t i;

	for (i = 0; i < b->got; i++)
		freeReplyObject(b->replies[i]);
	b->got = b->sent = 0;
	b->replies = NULL;
	/* a message to thousands of recipients does not pin its memory */
	if (b->s != NULL && b->s->req.cap > STORE_REQ_KEEP)
		resp_free(&b->s->req);
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

/* store_batch_key_cmd - queue CMD KEY [A2 [A3]] (C strings) */
static void store_batch_key_cmd(struct store_batch *b, const char *cmd, const struct store_key *k,
				const char *a2, const char *a3)
{
	struct resp_buf *r = store_cmd(b, a3 != NULL ? 4 : a2 != NULL ? 3 : 2);

	resp_str(r, cmd);
	store_put_key(r, k);
	if (a2 != NULL)
		resp_str(r, a2);
	if (a3 != NULL)
		resp_str(r, a3);
}

#define STORE_CHUNK 1000 /* members per ZADD / ZREM */

/*
 * store_batch_members - queue CMD KEY [SCORE] M1 [SCORE] M2 ... for the N
 * members, at most CHUNK members per command (0: all in one); with SCORE
 * NULL the members go without scores (ZREM, ZMSCORE).
 */
static void store_batch_members(struct store_batch *b, const char *cmd,
				const struct store_key *k, const char *score,
				const char *const *members, size_t n, size_t chunk)
{
	size_t per = score != NULL ? 2 : 1;
	size_t most = chunk > 0 && chunk < n ? chunk : n;
	size_t done = 0, slen = score != NULL ? strlen(score) : 0;

	while (done < n) {
		size_t m = n - done < most ? n - done : most, i;
		struct resp_buf *r = store_cmd(b, 2 + per * m);

		resp_str(r, cmd);
		store_put_key(r, k);
		for (i = 0; i < m; i++) {
			if (score != NULL)
				resp_bulk(r, score, slen);
			resp_str(r, members[done + i]);
		}
		done += m;
	}
}

/*
 * store_batch_touch - MEMBERS (N) of the sorted set K were seen at NOW:
 * then entries older than KEEP_MS go, the newest MAX stay, and the set
 * lives KEEP_MS after this. Relationships, velocity and the MX groups all
 * keep their sets this way.
 */
static void store_batch_touch(struct store_batch *b, const struct store_key *k,
			      const char *const *members, size_t n, long long now,
			      long long keep_ms, long long max)
{
	char snow[24], cutoff[24], rank[24], skeep[24];

	if (n == 0)
		return;
	snprintf(snow, sizeof(snow), "%lld", now);
	snprintf(cutoff, sizeof(cutoff), "(%lld", now - keep_ms);
	snprintf(rank, sizeof(rank), "%lld", -max - 1);
	snprintf(skeep, sizeof(skeep), "%lld", keep_ms);
	store_batch_members(b, "ZADD", k, snow, members, n, STORE_CHUNK);
	store_batch_key_cmd(b, "ZREMRANGEBYSCORE", k, "-inf", cutoff);
	store_batch_key_cmd(b, "ZREMRANGEBYRANK", k, "0", rank);
	store_batch_key_cmd(b, "PEXPIRE", k, skeep, NULL);
}

/* RCPTS become known correspondents of SENDER, last seen NOW */
static void store_batch_learn(struct store_batch *b, const char *sender,
			      const char *const *rcpts, size_t n, long long now)
{
	struct store_key k;

	store_key_sender(&k, b->cfg, sender, "rel");
	store_batch_touch(b, &k, rcpts, n, now, store_rel_ttl_ms(b->cfg), store_rel_max(b->cfg));
}

/* ---- rate windows -------------------------------------------------------- */

static int store_check_unit(const struct store_unit *u)
{
	if (u->member == NULL || (u->scope == NULL && u->scope_len > 0)) {
		store_fail("redis: incomplete unit");
		return -1;
	}
	return 0;
}

/* the configured reservation_ttl in ms (at least a second) */
static long long store_reservation_ttl_ms(const struct config *cfg)
{
	return (long long)(cfg->reservation_ttl > 0 ? cfg->reservation_ttl : 1) * 1000;
}

/* the units of one reservation: complete, all of one network, not too many */
static int store_check_reserve(const struct store_unit *units, size_t n)
{
	size_t i;

	if (n > 10000) {
		store_fail("redis: reserve: too many units (%zu)", n);
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (store_check_unit(&units[i]) != 0)
			return -1;
		if (units[i].network == NULL || strcmp(units[i].network, units[0].network) != 0) {
			store_fail("redis: reserve: units of more than one network");
			return -1;
		}
	}
	return 0;
}

/*
 * store_queue_reserve - EVALSHA reserve.lua for UNITS:
 * sha numkeys w1 p1 .. wn pn now ttl m1 h1 b1 bw1 .. mn hn bn bwn
 */
static void store_queue_reserve(struct store_batch *b, const struct store_unit *units, size_t n,
				long long now_ms)
{
	const struct config *cfg = b->cfg;
	struct resp_buf *r = store_cmd(b, 3 + 2 * n + 2 + 4 * n);
	struct store_key k;
	size_t i;

	resp_bulk(r, "EVALSHA", 7);
	resp_bulk(r, b->s->sha[SCRIPT_RESERVE], 40);
	resp_ll(r, 2 * (long long)n);
	for (i = 0; i < n; i++) {
		store_key_unit(&k, cfg, &units[i], "w:");
		store_put_key(r, &k);
		store_key_unit(&k, cfg, &units[i], "p:");
		store_put_key(r, &k);
	}
	resp_ll(r, now_ms > 0 ? now_ms : 0);
	resp_ll(r, store_reservation_ttl_ms(cfg));
	for (i = 0; i < n; i++) {
		const struct limit_values *lv = &units[i].lv;
		long bw = lv->burst_window < 1 ? 1 : lv->burst_window > 3600 ? 3600
									  : lv->burst_window;

		resp_str(r, units[i].member);
		resp_ll(r, lv->hourly);
		resp_ll(r, lv->burst);
		resp_ll(r, (long long)bw * 1000);
	}
}

/* store_unexpected - WHAT got reply R, which is not what it wanted */
static int store_unexpected(const char *what, const redisReply *r)
{
	if (r->type == REDIS_REPLY_ERROR)
		store_fail("redis: %s: %.*s", what, (int)r->len, r->str);
	else
		store_fail("redis: %s: unexpected reply", what);
	return STORE_ERR;
}

/* store_parse_verdict - reserve.lua's answer (admission time or refusal) into V */
static int store_parse_verdict(const redisReply *r, size_t n, struct store_verdict *v)
{
	const redisReply *const *e;

	if (r->type == REDIS_REPLY_ERROR)
		return store_unexpected("reserve", r);
	if (r->type == REDIS_REPLY_INTEGER && r->integer > 0) {
		v->admitted_ms = r->integer;
		return STORE_OK;
	}
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

/* store_score_ms - a sorted set score as sent by Redis; false when not one */
static bool store_score_ms(const redisReply *r, double *ms)
{
	char *end;

	if (r->type != REDIS_REPLY_STRING || r->len == 0)
		return false;
	*ms = strtod(r->str, &end);
	return *end == '\0';
}

/* the sender whose velocity and second block Q reads */
static const char *store_vel_sender(const struct store_lookup *q)
{
	return q->vel_sender != NULL ? q->vel_sender : q->rel_sender;
}

/* store_queue_lookup - the reads of Q (parsed by store_parse_lookup) */
static void store_queue_lookup(struct store_batch *b, const struct store_lookup *q,
			       long long now_ms)
{
	const char *vel_sender = store_vel_sender(q);
	struct store_key rel, vel, block;
	char cutoff[24];

	store_key_sender(&rel, b->cfg, q->rel_sender, "rel");
	store_key_sender(&vel, b->cfg, vel_sender, "vel");
	if (q->rcpt != NULL) {
		store_batch_key_cmd(b, "ZSCORE", &rel, q->rcpt, NULL);
		store_batch_key_cmd(b, "ZSCORE", &vel, q->rcpt, NULL);
	}
	if (!q->message)
		return;
	snprintf(cutoff, sizeof(cutoff), "%lld", now_ms - HOUR_MS);
	store_batch_key_cmd(b, "ZCOUNT", &vel, cutoff, "+inf");
	store_key_sender(&block, b->cfg, q->rel_sender, "block");
	store_batch_key_cmd(b, "GET", &block, NULL, NULL);
	if (strcmp(q->rel_sender, vel_sender) != 0) {
		store_key_sender(&block, b->cfg, vel_sender, "block");
		store_batch_key_cmd(b, "GET", &block, NULL, NULL);
	}
}

/* store_parse_lookup - the replies from I on into F */
static int store_parse_lookup(const struct store_batch *b, size_t i, const struct store_lookup *q,
			      long long now_ms, struct store_found *f)
{
	const redisReply *r;
	size_t n_block = strcmp(q->rel_sender, store_vel_sender(q)) != 0 ? 2 : 1, k;
	double ms;

	if (q->rcpt != NULL) {
		r = b->replies[i++];
		if (r->type != REDIS_REPLY_NIL) {
			if (!store_score_ms(r, &ms))
				return store_unexpected("lookup", r);
			f->known = ms >= (double)(now_ms - store_rel_ttl_ms(b->cfg));
		}
		r = b->replies[i++];
		if (r->type != REDIS_REPLY_NIL) {
			if (!store_score_ms(r, &ms))
				return store_unexpected("lookup", r);
			f->recent = ms >= (double)(now_ms - HOUR_MS);
		}
	}
	if (!q->message)
		return STORE_OK;
	r = b->replies[i++];
	if (r->type != REDIS_REPLY_INTEGER)
		return store_unexpected("lookup", r);
	f->velocity = (long)r->integer;
	for (k = 0; k < n_block; k++) {
		r = b->replies[i++];
		if (r->type == REDIS_REPLY_NIL || f->blocked)
			continue;
		if (r->type != REDIS_REPLY_STRING)
			return store_unexpected("lookup", r);
		f->blocked = true;
		snprintf(f->block_reason, sizeof(f->block_reason), "%.*s", (int)r->len, r->str);
	}
	return STORE_OK;
}

/* store_reserve_alone - the reservation in a round trip of its own (after NOSCRIPT) */
static int store_reserve_alone(const struct config *cfg, const struct store_unit *units,
			       size_t n, long long now_ms, struct store_verdict *v)
{
	struct store_batch b;
	int rv = STORE_ERR;

	if (store_batch_begin(&b, cfg, "reserve") != STORE_OK)
		return STORE_ERR;
	if (store_load_script(b.s, cfg, SCRIPT_RESERVE) == 0) {
		store_queue_reserve(&b, units, n, now_ms);
		if (store_batch_run(&b) == STORE_OK) {
			if (store_is_noscript(b.replies[0]))
				store_fail("redis: EVALSHA: script missing after reload");
			else
				rv = store_parse_verdict(b.replies[0], n, v);
		}
	}
	store_batch_end(&b);
	return rv;
}

int store_rcpt(const struct config *cfg, const struct store_unit *units, size_t n,
	       long long now_ms, struct store_verdict *v, const struct store_lookup *q,
	       struct store_found *f)
{
	struct store_verdict dummy;
	struct store_found unused;
	struct store_batch b;
	long long now_lookup = 0;
	bool again = false;
	size_t i_lookup;
	int rv;

	if (v == NULL)
		v = &dummy;
	if (f == NULL)
		f = &unused;
	memset(v, 0, sizeof(*v));
	v->unit = -1;
	v->which = WINDOW_ADMIT;
	memset(f, 0, sizeof(*f));
	f->status = STORE_ERR;
	if (n > 0 && store_check_reserve(units, n) != 0)
		return STORE_ERR;
	if (q != NULL && q->rel_sender == NULL) {
		store_fail("redis: lookup: no sender");
		return STORE_ERR;
	}
	if (q == NULL && n == 0)
		return STORE_OK;
	if (store_batch_begin(&b, cfg, n > 0 ? "reserve" : "lookup") != STORE_OK)
		return STORE_ERR;
	/* the one extra round trip of a new connection */
	if (n > 0 && b.s->sha[SCRIPT_RESERVE][0] == '\0' &&
	    store_load_script(b.s, cfg, SCRIPT_RESERVE) != 0) {
		store_batch_end(&b);
		return STORE_ERR;
	}
	if (n > 0)
		store_queue_reserve(&b, units, n, now_ms);
	i_lookup = b.sent;
	if (q != NULL) {
		now_lookup = q->now_ms > 0 ? q->now_ms : store_wall_ms();
		store_queue_lookup(&b, q, now_lookup);
	}
	/*
	 * An error reply spoils only its own part. A timeout or lost connection
	 * (the connection is then dropped) spoils the replies that did not
	 * come: a reservation answered before it stands, so that the caller
	 * holds (and later commits or releases) what Redis admitted.
	 */
	if (store_batch_run(&b) != STORE_OK && b.got < b.sent &&
	    (n == 0 || b.got == 0 || store_is_noscript(b.replies[0]))) {
		store_batch_end(&b);
		return STORE_ERR;
	}
	rv = STORE_OK;
	if (n > 0) {
		again = store_is_noscript(b.replies[0]);
		if (!again)
			rv = store_parse_verdict(b.replies[0], n, v);
	}
	if (q != NULL && b.got == b.sent &&
	    store_parse_lookup(&b, i_lookup, q, now_lookup, f) == STORE_OK) {
		f->status = STORE_OK;
	} else if (q != NULL) {
		memset(f, 0, sizeof(*f));
		f->status = STORE_ERR;
	}
	store_batch_end(&b);
	if (again) /* Redis forgot the script (SCRIPT FLUSH, failover) */
		rv = store_reserve_alone(cfg, units, n, now_ms, v);
	return rv;
}

int store_reserve(const struct config *cfg, const struct store_unit *units, size_t n,
		  long long now_ms, struct store_verdict *v)
{
	return store_rcpt(cfg, units, n, now_ms, v, NULL, NULL);
}

/* store_batch_release - ZREM each unit from its pending set and its window */
static void store_batch_release(struct store_batch *b, const struct store_unit *units, size_t n)
{
	static const char *const kinds[2] = { "p:", "w:" };
	struct store_key k;
	size_t i;
	int j;

	for (i = 0; i < n; i++)
		for (j = 0; j < 2; j++) {
			store_key_unit(&k, b->cfg, &units[i], kinds[j]);
			store_batch_key_cmd(b, "ZREM", &k, units[i].member, NULL);
		}
}

/* a string that may be NULL, compared as "" */
static int store_cmp_opt(const char *a, const char *b)
{
	return strcmp(a != NULL ? a : "", b != NULL ? b : "");
}

/* store_window_cmp - order of the windows (network, rule, scope) of units A and B */
static int store_window_cmp(const struct store_unit *a, const struct store_unit *b)
{
	size_t len = a->scope_len < b->scope_len ? a->scope_len : b->scope_len;
	int c;

	if ((c = store_cmp_opt(a->network, b->network)) != 0 ||
	    (c = store_cmp_opt(a->rule, b->rule)) != 0)
		return c;
	if (len > 0 && (c = memcmp(a->scope, b->scope, len)) != 0)
		return c;
	return a->scope_len < b->scope_len ? -1 : a->scope_len > b->scope_len;
}

/* qsort: units (pointers into one array) by window, then by place in the array */
static int store_unit_order(const void *pa, const void *pb)
{
	const struct store_unit *a = *(const struct store_unit *const *)pa;
	const struct store_unit *b = *(const struct store_unit *const *)pb;
	int c = store_window_cmp(a, b);

	return c != 0 ? c : a < b ? -1 : a > b;
}

/* how long a window outlives its last write: 1 h + reservation_ttl (ms) */
static long long store_window_ttl_ms(const struct config *cfg)
{
	return HOUR_MS + store_reservation_ttl_ms(cfg);
}

/*
 * store_batch_commit_window - commit the N units U of one window: ZREM
 * them from the pending set p, then ZADD NX them to the window w at their
 * admission time, then PEXPIRE w. Once a unit has left p no expiry check
 * (reserve.lua) drops it from w; the ZADD puts back a unit that a check
 * dropped before, because the message outlived reservation_ttl, and leaves
 * one that is still there as it is. A window re-created by the ZADD gets
 * its TTL back: 1 h + reservation_ttl from now is at least what any unit
 * in it needs, as each was admitted at or before now and counts one hour.
 */
static void store_batch_commit_window(struct store_batch *b, const struct store_unit *const *u,
				      size_t n, long long now)
{
	struct resp_buf *r;
	struct store_key k;
	size_t done, m, i;

	store_key_unit(&k, b->cfg, u[0], "p:");
	for (done = 0; done < n; done += m) {
		m = n - done < STORE_CHUNK ? n - done : STORE_CHUNK;
		r = store_cmd(b, 2 + m);
		resp_str(r, "ZREM");
		store_put_key(r, &k);
		for (i = done; i < done + m; i++)
			resp_str(r, u[i]->member);
	}
	store_key_unit(&k, b->cfg, u[0], "w:");
	for (done = 0; done < n; done += m) {
		m = n - done < STORE_CHUNK ? n - done : STORE_CHUNK;
		r = store_cmd(b, 3 + 2 * m);
		resp_str(r, "ZADD");
		store_put_key(r, &k);
		resp_str(r, "NX");
		for (i = done; i < done + m; i++) {
			resp_ll(r, u[i]->admitted_ms > 0 ? u[i]->admitted_ms : now);
			resp_str(r, u[i]->member);
		}
	}
	r = store_cmd(b, 3);
	resp_str(r, "PEXPIRE");
	store_put_key(r, &k);
	resp_ll(r, store_window_ttl_ms(b->cfg));
}

#define STORE_ORDER_STACK 256 /* units ordered without an allocation */

/*
 * store_order_by_window - pointers to UNITS (N) sorted by window, then by
 * place: in STACK (STORE_ORDER_STACK entries) when they fit, else
 * allocated (free it when it is not STACK). NULL when out of memory.
 */
static const struct store_unit **store_order_by_window(const struct store_unit *units, size_t n,
							const struct store_unit **stack)
{
	const struct store_unit **order;

	/* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
	order = n <= STORE_ORDER_STACK ? stack : malloc(n * sizeof(*order));
	if (order == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		order[i] = &units[i];
	/* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
	qsort(order, n, sizeof(*order), store_unit_order);
	return order;
}

/* the end of the run of ORDER (N) from I on that shares order[I]'s window */
static size_t store_window_end(const struct store_unit *const *order, size_t i, size_t n)
{
	size_t j = i + 1;

	while (j < n && store_window_cmp(order[i], order[j]) == 0)
		j++;
	return j;
}

/* store_batch_commit - commit UNITS (N), window by window (NOW: for units without admitted_ms) */
static void store_batch_commit(struct store_batch *b, const struct store_unit *units, size_t n,
			       long long now)
{
	const struct store_unit *stack[STORE_ORDER_STACK];
	const struct store_unit **order;
	size_t i, j;

	if (n == 0)
		return;
	if ((order = store_order_by_window(units, n, stack)) == NULL) {
		store_fail("redis: %s: out of memory", b->what);
		store_batch_fail(b);
		return;
	}
	for (i = 0; i < n; i = j) {
		j = store_window_end(order, i, n);
		store_batch_commit_window(b, order + i, j - i, now);
	}
	if (order != stack)
		free(order);
}

/*
 * store_queue_renew - EVALSHA renew.lua for the N units U of one window,
 * in chunks: sha 1 p now ttl m1 .. mk
 */
static void store_queue_renew(struct store_batch *b, const struct store_unit *const *u, size_t n)
{
	struct store_key k;
	size_t done, m, i;

	store_key_unit(&k, b->cfg, u[0], "p:");
	for (done = 0; done < n; done += m) {
		struct resp_buf *r;

		m = n - done < STORE_CHUNK ? n - done : STORE_CHUNK;
		r = store_cmd(b, 6 + m);
		resp_bulk(r, "EVALSHA", 7);
		resp_bulk(r, b->s->sha[SCRIPT_RENEW], 40);
		resp_ll(r, 1);
		store_put_key(r, &k);
		resp_ll(r, 0);
		resp_ll(r, store_reservation_ttl_ms(b->cfg));
		for (i = done; i < done + m; i++)
			resp_str(r, u[i]->member);
	}
}

/* store_renew_once - one round trip of renewals; *NOSCRIPT set when Redis lost the script */
static int store_renew_once(const struct config *cfg, const struct store_unit *const *order,
			    size_t n, bool *noscript)
{
	struct store_batch b;
	size_t i, j;
	int rv;

	*noscript = false;
	if (store_batch_begin(&b, cfg, "renew") != STORE_OK)
		return STORE_ERR;
	if (b.s->sha[SCRIPT_RENEW][0] == '\0' && store_load_script(b.s, cfg, SCRIPT_RENEW) != 0) {
		store_batch_end(&b);
		return STORE_ERR;
	}
	for (i = 0; i < n; i = j) {
		j = store_window_end(order, i, n);
		store_queue_renew(&b, order + i, j - i);
	}
	rv = store_batch_run(&b);
	for (i = 0; i < b.got; i++)
		if (store_is_noscript(b.replies[i])) {
			*noscript = true;
			b.s->sha[SCRIPT_RENEW][0] = '\0';
			rv = STORE_ERR;
		}
	store_batch_end(&b);
	return rv;
}

int store_renew(const struct config *cfg, const struct store_unit *units, size_t n)
{
	const struct store_unit *stack[STORE_ORDER_STACK];
	const struct store_unit **order;
	bool noscript;
	size_t i;
	int rv;

	if (n == 0)
		return STORE_OK;
	for (i = 0; i < n; i++)
		if (store_check_unit(&units[i]) != 0)
			return STORE_ERR;
	if ((order = store_order_by_window(units, n, stack)) == NULL) {
		store_fail("redis: renew: out of memory");
		return STORE_ERR;
	}
	rv = store_renew_once(cfg, order, n, &noscript);
	if (rv != STORE_OK && noscript) /* Redis forgot the script: load it and go again */
		rv = store_renew_once(cfg, order, n, &noscript);
	if (order != stack)
		free(order);
	return rv;
}

/* ---- velocity -------------------------------------------------------------- */

static int store_cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

#define STORE_VELOCITY_STACK 256 /* recipients sorted without an allocation */

long store_velocity(long before, const char *const *rcpts, const unsigned char *recent,
		    size_t n)
{
	const char *stack[STORE_VELOCITY_STACK];
	const char **fresh = n <= STORE_VELOCITY_STACK ? stack : malloc(n * sizeof(*fresh));
	size_t i, k = 0;
	long v = before > 0 ? before : 0;

	if (n > 0 && fresh != NULL) {
		for (i = 0; i < n; i++)
			if (!recent[i])
				fresh[k++] = rcpts[i];
		qsort(fresh, k, sizeof(*fresh), store_cmp_str);
		for (i = 0; i < k; i++)
			if (i == 0 || strcmp(fresh[i], fresh[i - 1]) != 0)
				v++;
		if (fresh != stack)
			free(fresh);
	} else {
		/* out of memory: duplicates count twice, erring on the high side */
		for (i = 0; i < n; i++)
			v += !recent[i];
	}
	return v < VELOCITY_CAP ? v : VELOCITY_CAP;
}

/* RCPTS were mailed by SENDER at NOW: its set keeps the last hour, at most VELOCITY_CAP */
static void store_batch_velocity(struct store_batch *b, const char *sender,
				 const char *const *rcpts, size_t n, long long now)
{
	struct store_key k;

	store_key_sender(&k, b->cfg, sender, "vel");
	store_batch_touch(b, &k, rcpts, n, now, HOUR_MS, VELOCITY_CAP);
}

/* ---- counters and the decision log --------------------------------------- */

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

/* store_key_count - the key counter C goes to in HOUR (doc/REDIS.md) */
static void store_key_count(struct store_key *k, const struct config *cfg,
			    const struct store_count *c, const char *hour)
{
	if (c->key == COUNT_SENDER) {
		store_key_sender(k, cfg, c->sender, "h:");
	} else {
		store_key_prefix(k, cfg);
		store_key_str(k, c->key == COUNT_TOP ? "{stats}:top:" : "{stats}:h:");
	}
	store_key_str(k, hour);
}

/* counters A and B go to the same key */
static bool store_same_count_key(const struct store_count *a, const struct store_count *b)
{
	return a->key == b->key && (a->key != COUNT_SENDER || strcmp(a->sender, b->sender) == 0);
}

/*
 * store_batch_counts - HINCRBY (ZINCRBY for the top senders) each counter
 * of the hour of NOW_MS, and give every key touched its 8-day TTL once.
 */
static void store_batch_counts(struct store_batch *b, const struct store_count *counts,
			       size_t n, long long now_ms)
{
	char hour[16];
	struct store_key k;
	size_t i, j;

	if (n == 0)
		return;
	if (store_hour(now_ms, hour, sizeof(hour)) != 0) {
		store_batch_fail(b);
		return;
	}
	for (i = 0; i < n; i++) {
		struct resp_buf *r = store_cmd(b, 4);
		bool top = counts[i].key == COUNT_TOP;

		store_key_count(&k, b->cfg, &counts[i], hour);
		resp_str(r, top ? "ZINCRBY" : "HINCRBY");
		store_put_key(r, &k);
		if (top) {
			resp_ll(r, counts[i].by);
			resp_str(r, counts[i].sender);
			/* bounded: the 1000 biggest senders of the hour */
			store_batch_key_cmd(b, "ZREMRANGEBYRANK", &k, "0", STORE_TOP_TRIM);
		} else {
			resp_str(r, counts[i].field);
			resp_ll(r, counts[i].by);
		}
	}
	for (i = 0; i < n; i++) {
		for (j = 0; j < i; j++)
			if (store_same_count_key(&counts[j], &counts[i]))
				break;
		if (j < i)
			continue; /* already given its TTL */
		store_key_count(&k, b->cfg, &counts[i], hour);
		store_batch_key_cmd(b, "EXPIRE", &k, STORE_STATS_TTL, NULL);
	}
}

/* store_batch_log - XADD each entry to the capped decision log */
static void store_batch_log(struct store_batch *b, const struct store_log *logs, size_t n)
{
	struct store_key k;
	size_t i, j;

	if (n == 0 || b->cfg->log_max_entries <= 0)
		return;
	store_key_prefix(&k, b->cfg);
	store_key_add(&k, "{log}", 5);
	for (i = 0; i < n; i++) {
		struct resp_buf *r = store_cmd(b, 6 + 2 * logs[i].n_fields);

		resp_str(r, "XADD");
		store_put_key(r, &k);
		resp_str(r, "MAXLEN");
		resp_str(r, "~");
		resp_ll(r, b->cfg->log_max_entries);
		resp_str(r, "*");
		for (j = 0; j < 2 * logs[i].n_fields; j++)
			resp_str(r, logs[i].fields[j] != NULL ? logs[i].fields[j] : "");
	}
}

/* ---- end of message ------------------------------------------------------ */

/* store_check_finish - everything F names is complete */
static int store_check_finish(const struct store_finish *f, const char *what)
{
	size_t i;

	for (i = 0; i < f->n_commit; i++)
		if (store_check_unit(&f->commit[i]) != 0)
			return -1;
	for (i = 0; i < f->n_release; i++)
		if (store_check_unit(&f->release[i]) != 0)
			return -1;
	for (i = 0; i < f->n_learn; i++)
		if (f->learn[i].sender == NULL || f->learn[i].rcpt == NULL) {
			store_fail("redis: %s: incomplete relationship", what);
			return -1;
		}
	for (i = 0; i < f->n_vel; i++)
		if (f->vel_sender == NULL || f->vel_rcpts[i] == NULL) {
			store_fail("redis: %s: incomplete velocity", what);
			return -1;
		}
	for (i = 0; i < f->n_counts; i++)
		if ((f->counts[i].key != COUNT_TOP && f->counts[i].field == NULL) ||
		    (f->counts[i].key != COUNT_STATS && f->counts[i].sender == NULL)) {
			store_fail("redis: %s: incomplete counter", what);
			return -1;
		}
	return 0;
}

/* store_finish_run - store_finish, with WHAT naming the operation in errors */
static int store_finish_run(const struct config *cfg, const struct store_finish *f,
			    const char *what)
{
	struct store_batch b;
	const char **run = NULL;
	long long now;
	size_t i;
	int rv;

	if (f->n_commit == 0 && f->n_release == 0 && f->n_learn == 0 && f->n_vel == 0 &&
	    f->n_counts == 0 && f->n_logs == 0)
		return STORE_OK;
	if (store_check_finish(f, what) != 0)
		return STORE_ERR;
	if (f->n_learn > 0 && (run = malloc(f->n_learn * sizeof(*run))) == NULL) {
		store_fail("redis: %s: out of memory", what);
		return STORE_ERR;
	}
	if (store_batch_begin(&b, cfg, what) != STORE_OK) {
		free(run);
		return STORE_ERR;
	}
	now = f->now_ms > 0 ? f->now_ms : store_wall_ms();

	store_batch_commit(&b, f->commit, f->n_commit, now);
	store_batch_release(&b, f->release, f->n_release);
	/* one ZADD (and one set of trims) per run of pairs of the same sender */
	for (i = 0; i < f->n_learn;) {
		const char *sender = f->learn[i].sender;
		size_t k = 0;

		while (i < f->n_learn && strcmp(f->learn[i].sender, sender) == 0)
			run[k++] = f->learn[i++].rcpt;
		store_batch_learn(&b, sender, run, k, now);
	}
	if (f->n_vel > 0)
		store_batch_velocity(&b, f->vel_sender, f->vel_rcpts, f->n_vel, now);
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
	struct store_key k;
	int rv;

	if (store_check_rcpts(sender, rcpts, n, "rel del") != 0)
		return STORE_ERR;
	if (n == 0)
		return STORE_OK;
	if (store_batch_begin(&b, cfg, "rel del") != STORE_OK)
		return STORE_ERR;
	store_key_sender(&k, cfg, sender, "rel");
	store_batch_members(&b, "ZREM", &k, NULL, rcpts, n, STORE_CHUNK);
	rv = store_batch_run(&b);
	store_batch_end(&b);
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

/* store_sender_key_dup - "PREFIX{s:SENDER}:KIND" as a C string (malloc'd) */
static char *store_sender_key_dup(const struct config *cfg, const char *sender, const char *kind)
{
	struct store_key k;

	store_key_sender(&k, cfg, sender, kind);
	return store_key_dup(&k);
}

long store_rel_list(const struct config *cfg, const char *sender,
		    void (*fn)(void *arg, const char *rcpt, long long last_seen_ms), void *arg)
{
	char *key;

	if (sender == NULL || fn == NULL) {
		store_fail("redis: rel list: no sender or function");
		return STORE_ERR;
	}
	if ((key = store_sender_key_dup(cfg, sender, "rel")) == NULL)
		return STORE_ERR;
	return store_list_since(cfg, key, store_wall_ms() - store_rel_ttl_ms(cfg), "rel list", fn,
				arg);
}

int store_block(const struct config *cfg, const char *sender, const char *reason,
		long ttl_seconds)
{
	const char *argv[5];
	char ttl[24];
	redisReply *r;
	char *key;
	int argc = 3, rv = STORE_ERR;

	if (sender == NULL || ttl_seconds < 0) {
		store_fail("redis: block: no sender or a negative TTL");
		return STORE_ERR;
	}
	if ((key = store_sender_key_dup(cfg, sender, "block")) == NULL)
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
	redisReply *r;
	char *key;
	int rv = STORE_ERR;

	if (sender == NULL) {
		store_fail("redis: unblock: no sender");
		return STORE_ERR;
	}
	if ((key = store_sender_key_dup(cfg, sender, "block")) == NULL)
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
	store_conn_destroy(s); /* closed, not kept for another thread */
}

/* ---- MX grouping (mx.c) ------------------------------------------------------ */

int store_mx_get(const struct config *cfg, const char *domain, char *buf, size_t size,
		 long long *ttl_ms)
{
	struct store_batch b;
	const redisReply *v, *t;
	struct store_key k;
	int rv = STORE_ERR;

	if (domain == NULL || buf == NULL || size == 0) {
		store_fail("redis: mx get: no domain or buffer");
		return STORE_ERR;
	}
	if (store_batch_begin(&b, cfg, "mx get") != STORE_OK)
		return STORE_ERR;
	store_key_mx_domain(&k, cfg, domain);
	store_batch_key_cmd(&b, "GET", &k, NULL, NULL);
	store_batch_key_cmd(&b, "PTTL", &k, NULL, NULL);
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
	return rv;
}

int store_mx_put(const struct config *cfg, const char *domain, const char *value,
		 long ttl_seconds, const char *network, long long now_ms)
{
	struct store_batch b;
	struct store_key k;
	char ttl[24];
	int rv;

	if (domain == NULL || (value != NULL && ttl_seconds < 1)) {
		store_fail("redis: mx put: no domain or no TTL");
		return STORE_ERR;
	}
	if (value == NULL && network == NULL)
		return STORE_OK;
	if (store_batch_begin(&b, cfg, "mx put") != STORE_OK)
		return STORE_ERR;
	if (value != NULL) {
		struct resp_buf *r = store_cmd(&b, 5);

		snprintf(ttl, sizeof(ttl), "%ld", ttl_seconds);
		store_key_mx_domain(&k, cfg, domain);
		resp_str(r, "SET");
		store_put_key(r, &k);
		resp_str(r, value);
		resp_str(r, "EX");
		resp_str(r, ttl);
	}
	if (network != NULL) {
		const char *member[1] = { domain };

		store_key_mx_net(&k, cfg, network);
		store_batch_touch(&b, &k, member, 1, now_ms > 0 ? now_ms : store_wall_ms(),
				  STORE_MX_KEEP_S * 1000LL, STORE_MX_NET_MAX);
	}
	rv = store_batch_run(&b);
	store_batch_end(&b);
	return rv;
}

long store_mx_network_list(const struct config *cfg, const char *network,
			   void (*fn)(void *arg, const char *domain, long long last_seen_ms),
			   void *arg)
{
	struct store_key k;
	char *key;

	if (network == NULL || fn == NULL) {
		store_fail("redis: mx list: no network or function");
		return STORE_ERR;
	}
	store_key_mx_net(&k, cfg, network);
	if ((key = store_key_dup(&k)) == NULL)
		return STORE_ERR;
	return store_list_since(cfg, key, store_wall_ms() - STORE_MX_KEEP_S * 1000LL, "mx list",
				fn, arg);
}
