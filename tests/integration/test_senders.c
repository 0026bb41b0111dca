/*
 * test_senders.c - the sender half of store.c against a real redis-server
 * that the test starts itself (redis_helper.h): which recipients are known
 * (relationship TTL), velocity (one-hour window, distinct recipients,
 * bounded by VELOCITY_CAP), blocks of either sender, learning with the
 * relationship_max cap, the end-of-message writes (commit, release, learn,
 * counters) in one call, the relationship lists and blocks of outboundctl,
 * key names and TTLs as documented in store.h, the commands each call
 * sends (INFO commandstats), one round trip per call (counted by a relay
 * between the store and Redis), a recipient's round trip whose later
 * replies never come (the relay holds them back), error replies, and a
 * Redis that is down.
 */
#define _GNU_SOURCE /* asprintf */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "redis_helper.h"
#include "redis_raw.h"

#include "config.h"
#include "store.h"

#define T0 1893456000000LL /* 2030-01-01 00:00:00 UTC, in ms */
#define T0_HOUR "2030010100"
#define DAY_MS 86400000LL
#define TTL_DAYS 30
#define REL_MAX 100


/* ---- helpers ---------------------------------------------------------- */

static void cfg_init(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->redis.socket = srv.sock;
	cfg->redis.timeout_ms = 200;
	cfg->redis.prefix = prefix;
	cfg->reservation_ttl = 60;
	cfg->relationship_ttl = TTL_DAYS;
	cfg->relationship_max = REL_MAX;
	cfg->generation = 1;
	cfg->mode = MODE_ENFORCE;
}

/* PREFIX{s:SENDER}:KIND as store.h documents it */
static const char *skey(char *buf, size_t size, const char *sender, const char *kind)
{
	int n = snprintf(buf, size, "%s{s:%s}:%s", prefix, sender, kind);

	assert_true(n > 0 && (size_t)n < size);
	return buf;
}

static long long zscore(const char *key, const char *member)
{
	return raw_int("ZSCORE %s %s", key, member);
}

static long long zcard(const char *key)
{
	return raw_int("ZCARD %s", key);
}

static long long pttl(const char *key)
{
	return raw_int("PTTL %s", key);
}

/* a string value, "" for nil (caller frees) */
static char *raw_get_str(const char *key)
{
	redisReply *r = raw_cmd("GET %s", key);
	char *s = strdup(r->type == REDIS_REPLY_STRING ? r->str : "");

	freeReplyObject(r);
	assert_non_null(s);
	return s;
}

/* NAMES[i] = "PFXi@DOMAIN" for i in [0, N); free with names_free */
static char **names_make(const char *pfx, const char *domain, size_t n)
{
	char **v = calloc(n + 1, sizeof(*v));
	size_t i;

	assert_non_null(v);
	for (i = 0; i < n; i++) {
		assert_true(asprintf(&v[i], "%s%zu@%s", pfx, i, domain) > 0);
	}
	return v;
}

static void names_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* what a message's classification reads, added up as the milter does */
struct inputs {
	unsigned known_count;
	long velocity;
	bool blocked;
	char block_reason[128];
};

/*
 * A message from REL (relationships) and VEL (velocity; NULL: REL) to
 * RCPTS at NOW, as the milter sends it: each recipient's round trip looks
 * it up (the first also reads the blocks and the velocity so far), then
 * the end of message adds the recipients to the velocity. KNOWN (may be
 * NULL) gets each recipient's flag.
 */
static int inputs(const struct config *cfg, const char *rel, const char *vel,
		  const char *const *rcpts, size_t n, long long now, unsigned char *known,
		  struct inputs *in)
{
	unsigned char *recent = calloc(n + 1, 1);
	struct store_lookup q = { rel, vel, NULL, true, now };
	struct store_found f;
	struct store_finish fin = { .vel_sender = vel != NULL ? vel : rel, .vel_rcpts = rcpts,
				    .n_vel = n, .now_ms = now };
	size_t i;
	int rv = STORE_OK;

	assert_non_null(recent);
	memset(in, 0, sizeof(*in));
	if (n > 0 && rcpts == NULL)
		rv = STORE_ERR;
	for (i = 0; rv == STORE_OK && i < (n > 0 ? n : 1); i++) {
		q.rcpt = n > 0 ? rcpts[i] : NULL;
		q.message = i == 0;
		if (store_rcpt(cfg, NULL, 0, 0, NULL, &q, &f) != STORE_OK || f.status != STORE_OK) {
			rv = STORE_ERR;
			break;
		}
		if (q.message) {
			in->velocity = f.velocity;
			in->blocked = f.blocked;
			memcpy(in->block_reason, f.block_reason, sizeof(in->block_reason));
		}
		if (n == 0)
			break;
		if (known != NULL)
			known[i] = f.known;
		in->known_count += f.known;
		recent[i] = f.recent;
	}
	if (rv == STORE_OK && n > 0)
		rv = store_finish(cfg, &fin);
	if (rv == STORE_OK)
		in->velocity = store_velocity(in->velocity, rcpts, recent, n);
	else
		memset(in, 0, sizeof(*in));
	free(recent);
	return rv;
}

/* ---- commands sent: INFO commandstats ------------------------------------ */

/* the text of INFO commandstats (caller frees) */
static char *stats_take(void)
{
	redisReply *r = raw_cmd("INFO commandstats");
	char *s = strdup(r->str);

	freeReplyObject(r);
	assert_non_null(s);
	return s;
}

/* calls of CMD (lowercase) in a commandstats text, 0 when never called */
static long long stats_calls(const char *info, const char *cmd)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "cmdstat_%s:calls=", cmd);
	p = strstr(info, pat);
	return p != NULL ? atoll(p + strlen(pat)) : 0;
}

/* calls of every command but INFO */
static long long stats_total(const char *info)
{
	const char *p = info;
	long long sum = 0;

	while ((p = strstr(p, "cmdstat_")) != NULL) {
		const char *c = strstr(p, ":calls=");

		if (c == NULL)
			break;
		if (strncmp(p, "cmdstat_info:", 13) != 0)
			sum += atoll(c + 7);
		p = c;
	}
	return sum;
}

/*
 * check_commands - between BEFORE and AFTER, exactly the commands listed
 * (NAME, COUNT pairs ending with NULL) ran, and nothing else
 */
static void check_commands(const char *before, const char *after, ...)
{
	long long want = 0;
	const char *name;
	va_list ap;

	va_start(ap, after);
	while ((name = va_arg(ap, const char *)) != NULL) {
		long long n = va_arg(ap, long long);
		long long got = stats_calls(after, name) - stats_calls(before, name);

		if (got != n)
			fail_msg("%s: %lld calls, want %lld", name, got, n);
		want += n;
	}
	va_end(ap);
	assert_int_equal(stats_total(after) - stats_total(before), want);
}

/* ---- a relay that counts round trips -------------------------------------- */

/*
 * Sits between the store and Redis on its own unix socket and counts the
 * times the client starts talking after Redis (or nobody) spoke last: one
 * per round trip, however many commands a pipeline holds, and the
 * connections it accepted. Armed (relay_hold), it passes only the first
 * replies of the client's next round trip and holds back everything Redis
 * says after them on that connection: the later replies of a pipeline
 * never come.
 */
struct relay {
	char path[96];
	const char *upstream;
	int lfd;
	pthread_t th;
	int stop;  /* atomic */
	int turns; /* atomic */
	int conns; /* atomic */
	int armed; /* atomic: relay_hold was called */
	int pass;  /* replies passed once armed */
};

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, buf, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		buf += w;
		len -= (size_t)w;
	}
	return 0;
}

static int unix_connect(const char *path)
{
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* the length of the first complete RESP reply in BUF (LEN bytes), -1 if incomplete */
static long resp_reply_len(const char *buf, size_t len)
{
	const char *nl = len > 0 ? memchr(buf, '\n', len) : NULL;
	long n, at, k, sub;

	if (nl == NULL)
		return -1;
	at = nl - buf + 1;
	switch (buf[0]) {
	case '+':
	case '-':
	case ':':
		return at;
	case '$':
		n = atol(buf + 1);
		if (n < 0)
			return at;
		return (size_t)(at + n + 2) <= len ? at + n + 2 : -1;
	case '*':
		n = atol(buf + 1);
		for (k = 0; k < n; k++) {
			if ((sub = resp_reply_len(buf + at, len - (size_t)at)) < 0)
				return -1;
			at += sub;
		}
		return at;
	default:
		return -1;
	}
}

/* the length of the first N complete replies in BUF (LEN bytes), -1 if incomplete */
static long resp_replies_len(const char *buf, size_t len, int n)
{
	long at = 0, sub;

	while (n-- > 0) {
		if ((sub = resp_reply_len(buf + at, len - (size_t)at)) < 0)
			return -1;
		at += sub;
	}
	return at;
}

static void relay_pump(struct relay *rl, int cfd, int ufd, char *buf, char *held, size_t size)
{
	int last = 0; /* 1: the client sent last, 2: Redis did */
	int mode = 0; /* 0: relaying, 1: passing the first replies, 2: holding back */
	size_t have = 0; /* bytes of Redis's replies in HELD (mode 1) */
	int pass = 0;

	while (!__atomic_load_n(&rl->stop, __ATOMIC_SEQ_CST)) {
		struct pollfd f[2] = { { cfd, POLLIN, 0 }, { ufd, POLLIN, 0 } };
		ssize_t n;

		if (poll(f, 2, 50) <= 0)
			continue;
		if (f[0].revents != 0) {
			if ((n = read(cfd, buf, size)) <= 0)
				return;
			if (last != 1) {
				__atomic_add_fetch(&rl->turns, 1, __ATOMIC_SEQ_CST);
				if (mode == 0 && __atomic_exchange_n(&rl->armed, 0, __ATOMIC_SEQ_CST)) {
					pass = rl->pass;
					mode = pass > 0 ? 1 : 2;
					have = 0;
				}
			}
			last = 1;
			if (write_all(ufd, buf, (size_t)n) != 0)
				return;
		}
		if (f[1].revents != 0) {
			long len;

			if ((n = read(ufd, buf, size)) <= 0)
				return;
			last = 2;
			if (mode == 2)
				continue; /* held back */
			if (mode == 0) {
				if (write_all(cfd, buf, (size_t)n) != 0)
					return;
				continue;
			}
			if (have + (size_t)n > size)
				return;
			memcpy(held + have, buf, (size_t)n);
			have += (size_t)n;
			if ((len = resp_replies_len(held, have, pass)) >= 0) {
				if (write_all(cfd, held, (size_t)len) != 0)
					return;
				mode = 2;
			}
		}
	}
}

static void *relay_main(void *arg)
{
	struct relay *rl = arg;
	size_t size = 1 << 20;
	char *buf = malloc(size), *held = malloc(size);

	if (buf == NULL || held == NULL) {
		free(buf);
		free(held);
		return NULL;
	}
	while (!__atomic_load_n(&rl->stop, __ATOMIC_SEQ_CST)) {
		struct pollfd pl = { rl->lfd, POLLIN, 0 };
		int cfd, ufd;

		if (poll(&pl, 1, 50) <= 0)
			continue;
		if ((cfd = accept(rl->lfd, NULL, NULL)) < 0)
			continue;
		__atomic_add_fetch(&rl->conns, 1, __ATOMIC_SEQ_CST);
		if ((ufd = unix_connect(rl->upstream)) >= 0) {
			relay_pump(rl, cfd, ufd, buf, held, size);
			close(ufd);
		}
		close(cfd);
	}
	free(buf);
	free(held);
	return NULL;
}

static void relay_start(struct relay *rl, const char *dir)
{
	struct sockaddr_un sa;

	memset(rl, 0, sizeof(*rl));
	rl->upstream = srv.sock;
	snprintf(rl->path, sizeof(rl->path), "%s/relay.%ld.sock", dir, (long)getpid());
	unlink(rl->path);
	rl->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(rl->lfd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", rl->path);
	assert_int_equal(bind(rl->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(rl->lfd, 4), 0);
	assert_int_equal(pthread_create(&rl->th, NULL, relay_main, rl), 0);
}

static void relay_stop(struct relay *rl)
{
	__atomic_store_n(&rl->stop, 1, __ATOMIC_SEQ_CST);
	pthread_join(rl->th, NULL);
	close(rl->lfd);
	unlink(rl->path);
}

static int relay_turns(struct relay *rl)
{
	return __atomic_exchange_n(&rl->turns, 0, __ATOMIC_SEQ_CST);
}

static int relay_conns(struct relay *rl)
{
	return __atomic_load_n(&rl->conns, __ATOMIC_SEQ_CST);
}

/* of the client's next round trip, pass the first PASS replies, hold back the rest */
static void relay_hold(struct relay *rl, int pass)
{
	rl->pass = pass;
	__atomic_store_n(&rl->armed, 1, __ATOMIC_SEQ_CST);
}

/* ---- known correspondents ------------------------------------------------ */

static void test_known_flags(void **state)
{
	struct config cfg;
	struct inputs in;
	unsigned char known[6];
	const char *rcpts[6] = { "fresh@a.example", "edge@a.example", "stale@a.example",
				 "never@a.example", "fresh@a.example", "future@a.example" };
	long long ttl = TTL_DAYS * DAY_MS;
	char rel[256], vel[256];

	(void)state;
	cfg_init(&cfg);
	skey(rel, sizeof(rel), "kf@ours.example", "rel");
	skey(vel, sizeof(vel), "kf-id", "vel");
	freeReplyObject(raw_cmd("ZADD %s %lld fresh@a.example %lld edge@a.example "
				"%lld stale@a.example %lld future@a.example",
				rel, T0 - DAY_MS, T0 - ttl, T0 - ttl - 1, T0 + 5000));

	assert_int_equal(inputs(&cfg, "kf@ours.example", "kf-id", rcpts, 6, T0, known, &in),
			 STORE_OK);
	/* last seen exactly relationship_ttl ago still counts, 1 ms more does not */
	assert_int_equal(known[0], 1);
	assert_int_equal(known[1], 1);
	assert_int_equal(known[2], 0);
	assert_int_equal(known[3], 0);
	assert_int_equal(known[4], 1);
	assert_int_equal(known[5], 1);
	assert_int_equal(in.known_count, 4);
	assert_false(in.blocked);
	assert_string_equal(in.block_reason, "");
	/* the velocity set is vel_sender's, not rel_sender's */
	assert_int_equal(in.velocity, 5);
	assert_int_equal(zcard(vel), 5);
	assert_int_equal(raw_int("EXISTS %s", skey(vel, sizeof(vel), "kf@ours.example", "vel")),
			 0);
	/* looking up changes no relationship */
	assert_int_equal(zscore(rel, "fresh@a.example"), T0 - DAY_MS);
	assert_int_equal(zcard(rel), 4);

	/* a day later "edge" has expired too; known may be NULL (count only) */
	assert_int_equal(inputs(&cfg, "kf@ours.example", "kf-id", rcpts, 6, T0 + DAY_MS, NULL,
				&in),
			 STORE_OK);
	assert_int_equal(in.known_count, 3);

	/* a shorter TTL in the configuration applies at once */
	cfg.relationship_ttl = 1;
	assert_int_equal(inputs(&cfg, "kf@ours.example", "kf-id", rcpts, 6, T0, known, &in),
			 STORE_OK);
	assert_int_equal(known[0], 1);
	assert_int_equal(known[1], 0);
	assert_int_equal(in.known_count, 3);

	/* a sender nobody knows */
	assert_int_equal(inputs(&cfg, "nobody@ours.example", "kf-id", rcpts, 6, T0, known, &in),
			 STORE_OK);
	assert_int_equal(in.known_count, 0);
	assert_int_equal(known[0] | known[1] | known[4] | known[5], 0);
}

/* thousands of recipients in one call */
static void test_known_many(void **state)
{
	struct config cfg;
	struct inputs in;
	size_t n = 5000, i;
	char **r = names_make("m", "many.example", n);
	unsigned char *known = calloc(n, 1);
	char rel[256], vel[256];
	redisReply *rep;

	(void)state;
	assert_non_null(known);
	cfg_init(&cfg);
	skey(rel, sizeof(rel), "many@ours.example", "rel");
	skey(vel, sizeof(vel), "many@ours.example", "vel");
	/* every third one is known */
	for (i = 0; i < n; i += 3)
		freeReplyObject(raw_cmd("ZADD %s %lld %s", rel, T0 - 1000, r[i]));
	assert_int_equal(inputs(&cfg, "many@ours.example", NULL, (const char *const *)r, n, T0,
				known, &in),
			 STORE_OK);
	for (i = 0; i < n; i++)
		if (known[i] != (i % 3 == 0))
			fail_msg("known[%zu] = %d", i, known[i]);
	assert_int_equal(in.known_count, (n + 2) / 3);
	assert_int_equal(in.velocity, (long)n);
	rep = raw_cmd("ZRANGEBYSCORE %s %lld %lld", vel, T0, T0);
	assert_int_equal(rep->elements, n);
	freeReplyObject(rep);
	free(known);
	names_free(r, n);
}

/* ---- velocity -------------------------------------------------------------- */

static void test_velocity_window(void **state)
{
	struct config cfg;
	struct inputs in;
	const char *ab[2] = { "a@x.example", "b@x.example" };
	const char *bc[2] = { "b@x.example", "c@x.example" };
	const char *d[1] = { "d@x.example" };
	char vel[256];
	long long t;

	(void)state;
	cfg_init(&cfg);
	skey(vel, sizeof(vel), "vw@ours.example", "vel");

	assert_int_equal(inputs(&cfg, "vw@ours.example", NULL, ab, 2, T0, NULL, &in), STORE_OK);
	assert_int_equal(in.velocity, 2);
	assert_int_equal(zscore(vel, "a@x.example"), T0);
	t = pttl(vel);
	assert_true(t > 3600000 - 5000 && t <= 3600000);

	/* distinct recipients: b again counts once, its time moves on */
	assert_int_equal(inputs(&cfg, "vw@ours.example", NULL, bc, 2, T0 + 600000, NULL, &in),
			 STORE_OK);
	assert_int_equal(in.velocity, 3);
	assert_int_equal(zscore(vel, "b@x.example"), T0 + 600000);

	/* exactly an hour after a it still counts ... */
	assert_int_equal(inputs(&cfg, "vw@ours.example", NULL, NULL, 0, T0 + HOUR_MS, NULL, &in),
			 STORE_OK);
	assert_int_equal(in.velocity, 3);
	/* ... 1 ms later it is gone */
	assert_int_equal(inputs(&cfg, "vw@ours.example", NULL, d, 1, T0 + HOUR_MS + 1, NULL,
				&in),
			 STORE_OK);
	assert_int_equal(in.velocity, 3);
	assert_int_equal(zscore(vel, "a@x.example"), -1);
	assert_int_equal(zcard(vel), 3);

	/* a quiet hour later only d is left; then nothing */
	assert_int_equal(inputs(&cfg, "vw@ours.example", NULL, NULL, 0,
				T0 + HOUR_MS + 600000 + 1, NULL, &in),
			 STORE_OK);
	assert_int_equal(in.velocity, 1);
	assert_int_equal(inputs(&cfg, "vw@ours.example", NULL, NULL, 0, T0 + 3 * HOUR_MS, NULL,
				&in),
			 STORE_OK);
	assert_int_equal(in.velocity, 0);
	/* reading writes nothing; the next message's recipients trim the set */
	assert_int_equal(zcard(vel), 3);
	assert_int_equal(inputs(&cfg, "vw@ours.example", NULL, ab, 1, T0 + 3 * HOUR_MS, NULL,
				&in),
			 STORE_OK);
	assert_int_equal(in.velocity, 1);
	assert_int_equal(zcard(vel), 1);
	assert_int_equal(zscore(vel, "a@x.example"), T0 + 3 * HOUR_MS);
}

static void test_velocity_cap(void **state)
{
	struct config cfg;
	struct inputs in;
	char **first = names_make("f", "cap.example", VELOCITY_CAP);
	char **more = names_make("g", "cap.example", 500);
	char vel[256];
	size_t i;

	(void)state;
	cfg_init(&cfg);
	cfg.redis.timeout_ms = 2000; /* 10000 members under valgrind */
	cfg.generation = 2;
	skey(vel, sizeof(vel), "cap@ours.example", "vel");

	assert_int_equal(inputs(&cfg, "cap@ours.example", NULL, (const char *const *)first,
				VELOCITY_CAP, T0, NULL, &in),
			 STORE_OK);
	assert_int_equal(in.velocity, VELOCITY_CAP);
	assert_int_equal(inputs(&cfg, "cap@ours.example", NULL, (const char *const *)more, 500,
				T0 + 1000, NULL, &in),
			 STORE_OK);
	/* bounded: the newest VELOCITY_CAP stay, the oldest went */
	assert_int_equal(in.velocity, VELOCITY_CAP);
	assert_int_equal(zcard(vel), VELOCITY_CAP);
	for (i = 0; i < 500; i++)
		assert_int_equal(zscore(vel, more[i]), T0 + 1000);
	assert_int_equal(raw_int("ZCOUNT %s %lld %lld", vel, T0, T0), VELOCITY_CAP - 500);
	names_free(first, VELOCITY_CAP);
	names_free(more, 500);
	store_disconnect();
}

/* ---- blocks ---------------------------------------------------------------- */

static void test_blocks(void **state)
{
	struct config cfg;
	struct inputs in;
	const char *r1[1] = { "x@y.example" };
	char long_reason[300], block[256], vblock[256];
	long long t;

	(void)state;
	cfg_init(&cfg);
	skey(block, sizeof(block), "bl@ours.example", "block");
	skey(vblock, sizeof(vblock), "bl-login", "block");

	assert_int_equal(inputs(&cfg, "bl@ours.example", "bl-login", r1, 1, T0, NULL, &in),
			 STORE_OK);
	assert_false(in.blocked);

	/* the envelope sender, until unblocked */
	assert_int_equal(store_block(&cfg, "bl@ours.example", "phished account", 0), STORE_OK);
	assert_int_equal(pttl(block), -1);
	{
		char *v = raw_get_str(block);

		assert_string_equal(v, "phished account");
		free(v);
	}
	assert_int_equal(inputs(&cfg, "bl@ours.example", "bl-login", r1, 1, T0, NULL, &in),
			 STORE_OK);
	assert_true(in.blocked);
	assert_string_equal(in.block_reason, "phished account");
	assert_int_equal(store_unblock(&cfg, "bl@ours.example"), STORE_OK);
	assert_int_equal(store_unblock(&cfg, "bl@ours.example"), STORE_OVER);
	assert_int_equal(raw_int("EXISTS %s", block), 0);

	/* the other identity, with a TTL */
	assert_int_equal(store_block(&cfg, "bl-login", "spam run", 120), STORE_OK);
	t = pttl(vblock);
	assert_true(t > 115000 && t <= 120000);
	assert_int_equal(inputs(&cfg, "bl@ours.example", "bl-login", r1, 1, T0, NULL, &in),
			 STORE_OK);
	assert_true(in.blocked);
	assert_string_equal(in.block_reason, "spam run");

	/* both: the relationship sender's reason comes first */
	assert_int_equal(store_block(&cfg, "bl@ours.example", "first", 60), STORE_OK);
	assert_int_equal(inputs(&cfg, "bl@ours.example", "bl-login", r1, 1, T0, NULL, &in),
			 STORE_OK);
	assert_true(in.blocked);
	assert_string_equal(in.block_reason, "first");

	/* blocking again replaces reason and TTL; 0 = no TTL */
	assert_int_equal(store_block(&cfg, "bl@ours.example", "again", 0), STORE_OK);
	assert_int_equal(pttl(block), -1);

	/* an empty reason still blocks; a long one is cut, not overflowed */
	assert_int_equal(store_block(&cfg, "bl@ours.example", "", 0), STORE_OK);
	assert_int_equal(store_unblock(&cfg, "bl-login"), STORE_OK);
	assert_int_equal(inputs(&cfg, "bl@ours.example", "bl-login", r1, 1, T0, NULL, &in),
			 STORE_OK);
	assert_true(in.blocked);
	assert_string_equal(in.block_reason, "");
	memset(long_reason, 'r', sizeof(long_reason) - 1);
	long_reason[sizeof(long_reason) - 1] = '\0';
	assert_int_equal(store_block(&cfg, "bl@ours.example", long_reason, 0), STORE_OK);
	assert_int_equal(inputs(&cfg, "bl@ours.example", "bl@ours.example", r1, 1, T0, NULL, &in),
			 STORE_OK);
	assert_true(in.blocked);
	assert_int_equal(strlen(in.block_reason), sizeof(in.block_reason) - 1);
	assert_int_equal(store_unblock(&cfg, "bl@ours.example"), STORE_OK);

	/* a block that expired is no block */
	assert_int_equal(store_block(&cfg, "bl-login", "short", 1), STORE_OK);
	freeReplyObject(raw_cmd("PEXPIRE %s 1", vblock));
	redis_test_sleep_ms(20);
	assert_int_equal(inputs(&cfg, "bl@ours.example", "bl-login", r1, 1, T0, NULL, &in),
			 STORE_OK);
	assert_false(in.blocked);
	assert_int_equal(store_block(&cfg, "bl-login", "x", -1), STORE_ERR);
}

/* ---- learning ---------------------------------------------------------------- */

static int learn_one(const struct config *cfg, const char *sender, const char *rcpt,
		     long long now)
{
	struct store_pair p = { sender, rcpt };
	struct store_finish f = { .learn = &p, .n_learn = 1, .now_ms = now };

	return store_finish(cfg, &f);
}

static void test_learn_cap(void **state)
{
	struct config cfg;
	struct store_pair pairs[3];
	struct store_finish f;
	char **r = names_make("c", "cap.example", 8);
	char rel[256];
	redisReply *rep;
	size_t i;

	(void)state;
	cfg_init(&cfg);
	cfg.relationship_max = 5;
	skey(rel, sizeof(rel), "lc@ours.example", "rel");

	for (i = 0; i < 8; i++) {
		assert_int_equal(learn_one(&cfg, "lc@ours.example", r[i], T0 + (long long)i),
				 STORE_OK);
		assert_int_equal(zcard(rel), i + 1 < 5 ? i + 1 : 5);
	}
	/* exactly the 5 newest are kept */
	rep = raw_cmd("ZRANGE %s 0 -1", rel);
	assert_int_equal(rep->elements, 5);
	for (i = 0; i < 5; i++)
		assert_string_equal(rep->element[i]->str, r[i + 3]);
	freeReplyObject(rep);

	/* two new ones push out the two oldest; an old one seen again is kept */
	pairs[0] = (struct store_pair){ "lc@ours.example", "new1@cap.example" };
	pairs[1] = (struct store_pair){ "lc@ours.example", r[3] };
	pairs[2] = (struct store_pair){ "lc@ours.example", "new2@cap.example" };
	memset(&f, 0, sizeof(f));
	f.learn = pairs;
	f.n_learn = 3;
	f.now_ms = T0 + 100;
	assert_int_equal(store_finish(&cfg, &f), STORE_OK);
	assert_int_equal(zcard(rel), 5);
	assert_int_equal(zscore(rel, r[3]), T0 + 100);
	assert_int_equal(zscore(rel, "new1@cap.example"), T0 + 100);
	assert_int_equal(zscore(rel, "new2@cap.example"), T0 + 100);
	assert_int_equal(zscore(rel, r[4]), -1);
	assert_int_equal(zscore(rel, r[5]), -1);
	assert_int_equal(zscore(rel, r[6]), T0 + 6);
	assert_int_equal(zscore(rel, r[7]), T0 + 7);
	names_free(r, 8);
}

static void test_learn_refresh_and_expiry(void **state)
{
	struct config cfg;
	struct inputs in;
	const char *rc[1] = { "bob@partner.example" };
	unsigned char known[1];
	long long ttl = TTL_DAYS * DAY_MS, t;
	char rel[256];

	(void)state;
	cfg_init(&cfg);
	skey(rel, sizeof(rel), "lr@ours.example", "rel");
	/* an entry past the TTL, left by an older configuration */
	freeReplyObject(raw_cmd("ZADD %s %lld old@partner.example", rel, T0 - ttl - 1));

	assert_int_equal(learn_one(&cfg, "lr@ours.example", "bob@partner.example", T0), STORE_OK);
	assert_int_equal(zscore(rel, "bob@partner.example"), T0);
	/* learning drops what expired, and keeps the set for relationship_ttl */
	assert_int_equal(zscore(rel, "old@partner.example"), -1);
	t = pttl(rel);
	assert_true(t > ttl - 5000 && t <= ttl);

	/* seen again 20 days later: last seen moves */
	assert_int_equal(learn_one(&cfg, "lr@ours.example", "bob@partner.example",
				   T0 + 20 * DAY_MS),
			 STORE_OK);
	assert_int_equal(zscore(rel, "bob@partner.example"), T0 + 20 * DAY_MS);
	/* so 40 days after the first time it is still known, 51 days not */
	assert_int_equal(inputs(&cfg, "lr@ours.example", NULL, rc, 1, T0 + 40 * DAY_MS, known,
				&in),
			 STORE_OK);
	assert_int_equal(known[0], 1);
	assert_int_equal(inputs(&cfg, "lr@ours.example", NULL, rc, 1, T0 + 51 * DAY_MS, known,
				&in),
			 STORE_OK);
	assert_int_equal(known[0], 0);
}

/* ---- the end of a message -------------------------------------------------- */

static struct store_unit unit_of(const char *net, const char *rule, const char *scope,
				 const char *member)
{
	struct store_unit u = { .network = net, .rule = rule, .scope = scope,
				.scope_len = strlen(scope), .member = member,
				.lv = { 100, 100, 60 } };

	return u;
}

/* per-sender hour hash, top senders, decision log: keys, values, TTLs, cap */
static void test_finish_sender_top_log(void **state)
{
	struct config cfg;
	struct store_count counts[] = {
		{ COUNT_SENDER, "st@ours.example", "sent", 1 },
		{ COUNT_SENDER, "st@ours.example", "net:google", 3 },
		{ COUNT_TOP, "st@ours.example", NULL, 3 },
		{ COUNT_TOP, "other@ours.example", NULL, 1 },
	};
	const char *fields[] = { "type", "message", "qid", "ABC123", "class", "bulk" };
	struct store_log logs[] = { { fields, 3 }, { fields, 2 } };
	struct store_finish f;
	char h[256], top[256], lg[256];
	redisReply *r;
	long long t;

	(void)state;
	cfg_init(&cfg);
	cfg.log_max_entries = 1000;
	memset(&f, 0, sizeof(f));
	f.counts = counts;
	f.n_counts = 4;
	f.logs = logs;
	f.n_logs = 2;
	f.now_ms = T0;
	assert_int_equal(store_finish(&cfg, &f), STORE_OK);
	assert_int_equal(store_finish(&cfg, &f), STORE_OK);

	snprintf(h, sizeof(h), "%s{s:st@ours.example}:h:" T0_HOUR, prefix);
	snprintf(top, sizeof(top), "%s{stats}:top:" T0_HOUR, prefix);
	snprintf(lg, sizeof(lg), "%s{log}", prefix);
	assert_int_equal(raw_int("HGET %s sent", h), 2);
	assert_int_equal(raw_int("HGET %s net:google", h), 6);
	assert_int_equal(zscore(top, "st@ours.example"), 6);
	assert_int_equal(zscore(top, "other@ours.example"), 2);
	t = raw_int("TTL %s", h);
	assert_true(t > 8 * 86400 - 10 && t <= 8 * 86400);
	t = raw_int("TTL %s", top);
	assert_true(t > 8 * 86400 - 10 && t <= 8 * 86400);

	assert_int_equal(raw_int("XLEN %s", lg), 4);
	r = raw_cmd("XREVRANGE %s + - COUNT 1", lg);
	assert_non_null(r);
	assert_int_equal(r->type, REDIS_REPLY_ARRAY);
	assert_int_equal(r->element[0]->element[1]->elements, 4); /* 2 pairs */
	assert_string_equal(r->element[0]->element[1]->element[3]->str, "ABC123");
	freeReplyObject(r);
	r = raw_cmd("XREVRANGE %s + - COUNT 2", lg);
	assert_int_equal(r->element[1]->element[1]->elements, 6); /* 3 pairs */
	assert_string_equal(r->element[1]->element[1]->element[5]->str, "bulk");
	freeReplyObject(r);

	/* log_max_entries = 0: no log at all */
	raw_int("DEL %s", lg);
	cfg.log_max_entries = 0;
	assert_int_equal(store_finish(&cfg, &f), STORE_OK);
	assert_int_equal(raw_int("EXISTS %s", lg), 0);

	/* a counter without its sender is refused before anything is sent */
	struct store_count bad = { COUNT_TOP, NULL, NULL, 1 };
	f.counts = &bad;
	f.n_counts = 1;
	assert_int_equal(store_finish(&cfg, &f), STORE_ERR);
}

static void test_finish_everything(void **state)
{
	struct config cfg;
	struct store_unit commit[2], release[1];
	struct store_pair learn[5] = {
		{ "fe@ours.example", "r1@a.example" },
		{ "fe@ours.example", "r2@a.example" },
		{ "other@ours.example", "r3@a.example" },
		{ "fe@ours.example", "r4@a.example" },
		{ "fe@ours.example", "r5@a.example" },
	};
	struct store_count counts[3] = { { COUNT_STATS, NULL, "msgs:personal", 1 }, { COUNT_STATS, NULL, "rcpts:personal", 4 },
					 { COUNT_STATS, NULL, "net:google:accepted", 2 } };
	struct store_finish f;
	struct store_verdict v;
	char w[256], p[256], rel[256], stats[256];
	char *before, *after;
	redisReply *r;
	long long t;

	(void)state;
	cfg_init(&cfg);
	commit[0] = unit_of("google", "fin", "fe@ours.example", "m1.1");
	commit[1] = unit_of("yahoo", "fin", "fe@ours.example", "m1.2");
	release[0] = unit_of("google", "fin", "fe@ours.example", "m1.3");
	assert_int_equal(store_reserve(&cfg, &commit[0], 1, T0, &v), STORE_OK);
	commit[0].admitted_ms = v.admitted_ms;
	assert_int_equal(store_reserve(&cfg, &commit[1], 1, T0, &v), STORE_OK);
	commit[1].admitted_ms = v.admitted_ms;
	assert_int_equal(store_reserve(&cfg, &release[0], 1, T0, &v), STORE_OK);

	memset(&f, 0, sizeof(f));
	f.commit = commit;
	f.n_commit = 2;
	f.release = release;
	f.n_release = 1;
	f.learn = learn;
	f.n_learn = 5;
	f.counts = counts;
	f.n_counts = 3;
	f.now_ms = T0 + 5;
	before = stats_take();
	assert_int_equal(store_finish(&cfg, &f), STORE_OK);
	after = stats_take();
	/* 2 commits in 2 windows (each ZREM, ZADD, PEXPIRE) + 1 release (2
	 * ZREM); 3 runs of senders, each ZADD and 3 trims; 3 HINCRBY and one
	 * EXPIRE */
	if (!srv.external)
		check_commands(before, after, "zrem", 4LL, "zadd", 5LL, "zremrangebyscore", 3LL,
			       "zremrangebyrank", 3LL, "pexpire", 5LL, "hincrby", 3LL, "expire",
			       1LL, (const char *)NULL);
	free(before);
	free(after);

	/* committed: still counted, no longer pending; released: gone */
	snprintf(w, sizeof(w), "%s{google}:w:fin:fe@ours.example", prefix);
	snprintf(p, sizeof(p), "%s{google}:p:fin:fe@ours.example", prefix);
	assert_int_equal(zscore(w, "m1.1"), T0);
	assert_int_equal(zscore(p, "m1.1"), -1);
	assert_int_equal(zscore(w, "m1.3"), -1);
	assert_int_equal(zscore(p, "m1.3"), -1);
	snprintf(p, sizeof(p), "%s{yahoo}:p:fin:fe@ours.example", prefix);
	assert_int_equal(raw_int("EXISTS %s", p), 0);

	/* learned */
	skey(rel, sizeof(rel), "fe@ours.example", "rel");
	assert_int_equal(zcard(rel), 4);
	assert_int_equal(zscore(rel, "r5@a.example"), T0 + 5);
	skey(rel, sizeof(rel), "other@ours.example", "rel");
	assert_int_equal(zscore(rel, "r3@a.example"), T0 + 5);

	/* counted in the hour of now_ms, kept 8 days */
	snprintf(stats, sizeof(stats), "%s{stats}:h:" T0_HOUR, prefix);
	r = raw_cmd("HGETALL %s", stats);
	assert_int_equal(r->elements, 6);
	freeReplyObject(r);
	assert_int_equal(raw_int("HGET %s msgs:personal", stats), 1);
	assert_int_equal(raw_int("HGET %s rcpts:personal", stats), 4);
	assert_int_equal(raw_int("HGET %s net:google:accepted", stats), 2);
	t = raw_int("TTL %s", stats);
	assert_true(t > 8 * 86400 - 10 && t <= 8 * 86400);
	/* and added up */
	f.n_commit = f.n_release = f.n_learn = 0;
	f.now_ms = T0 + HOUR_MS - 1;
	assert_int_equal(store_finish(&cfg, &f), STORE_OK);
	assert_int_equal(raw_int("HGET %s rcpts:personal", stats), 8);
	/* the next hour has its own hash */
	f.now_ms = T0 + HOUR_MS;
	assert_int_equal(store_finish(&cfg, &f), STORE_OK);
	assert_int_equal(raw_int("HGET %s rcpts:personal", stats), 8);
	snprintf(stats, sizeof(stats), "%s{stats}:h:2030010101", prefix);
	assert_int_equal(raw_int("HGET %s rcpts:personal", stats), 4);

	/* nothing to do is fine */
	memset(&f, 0, sizeof(f));
	assert_int_equal(store_finish(&cfg, &f), STORE_OK);
}

/* now_ms 0: the local clock's hour */
static void test_counts_clock(void **state)
{
	struct config cfg;
	struct store_count c = { COUNT_STATS, NULL, "clock", 3 };
	struct store_finish f = { .counts = &c, .n_counts = 1 };
	char k1[256], k2[256], hour[16];
	time_t t;
	struct tm tm;
	long long v;

	(void)state;
	cfg_init(&cfg);
	t = time(NULL);
	strftime(hour, sizeof(hour), "%Y%m%d%H", gmtime_r(&t, &tm));
	snprintf(k1, sizeof(k1), "%s{stats}:h:%s", prefix, hour);
	assert_int_equal(store_finish(&cfg, &f), STORE_OK);
	t = time(NULL);
	strftime(hour, sizeof(hour), "%Y%m%d%H", gmtime_r(&t, &tm));
	snprintf(k2, sizeof(k2), "%s{stats}:h:%s", prefix, hour);
	/* the hour may have turned during the call */
	v = raw_int("HGET %s clock", k1);
	if (v == -1 && strcmp(k1, k2) != 0)
		v = raw_int("HGET %s clock", k2);
	assert_int_equal(v, 3);
	assert_true(raw_int("TTL %s", v == 3 ? k1 : k2) > 8 * 86400 - 10);
}

/* ---- a recipient's round trip ------------------------------------------------- */

static struct store_unit rcpt_unit(const char *member, long hourly)
{
	struct store_unit u = unit_of("rl-net", "rl", "rl@ours.example", member);

	u.lv.hourly = hourly;
	u.lv.burst = 100;
	u.lv.burst_window = 60;
	return u;
}

static void test_rcpt_lookups(void **state)
{
	struct config cfg;
	struct store_unit u;
	struct store_verdict v;
	struct store_found f;
	struct store_lookup q = { "rl@ours.example", "rl-login", "k@x.example", true, T0 };
	char rel[256], vel[256], block[256];

	(void)state;
	cfg_init(&cfg);
	skey(rel, sizeof(rel), "rl@ours.example", "rel");
	skey(vel, sizeof(vel), "rl-login", "vel");
	skey(block, sizeof(block), "rl-login", "block");
	freeReplyObject(raw_cmd("ZADD %s %lld k@x.example", rel, T0 - DAY_MS));
	freeReplyObject(raw_cmd("ZADD %s %lld k@x.example %lld old@x.example", vel, T0 - 1000,
				T0 - HOUR_MS - 1));
	freeReplyObject(raw_cmd("SET %s compromised", block));

	/* admitted, and everything looked up in the same call */
	u = rcpt_unit("rl1", 10);
	assert_int_equal(store_rcpt(&cfg, &u, 1, T0, &v, &q, &f), STORE_OK);
	assert_int_equal(f.status, STORE_OK);
	assert_true(f.known);
	assert_true(f.recent);
	assert_int_equal(f.velocity, 1); /* old@ was mailed more than an hour ago */
	assert_true(f.blocked);
	assert_string_equal(f.block_reason, "compromised");

	/* refused by the limit: the lookups are still read */
	u = rcpt_unit("rl2", 0);
	q.rcpt = "new@x.example";
	q.message = false;
	assert_int_equal(store_rcpt(&cfg, &u, 1, T0, &v, &q, &f), STORE_OVER);
	assert_int_equal(v.which, WINDOW_OVER_HOURLY);
	assert_int_equal(f.status, STORE_OK);
	assert_false(f.known);
	assert_false(f.recent);
	assert_false(f.blocked); /* not asked for */

	/* Redis forgot the script: reserved anyway, lookups kept */
	freeReplyObject(raw_cmd("SCRIPT FLUSH"));
	u = rcpt_unit("rl3", 10);
	q.rcpt = "k@x.example";
	assert_int_equal(store_rcpt(&cfg, &u, 1, T0, &v, &q, &f), STORE_OK);
	assert_int_equal(f.status, STORE_OK);
	assert_true(f.known);
	assert_int_equal(raw_int("ZCARD %s{rl-net}:p:rl:rl@ours.example", prefix), 2);

	/* a lookup that fails does not hide an admitted reservation */
	freeReplyObject(raw_cmd("DEL %s", rel));
	freeReplyObject(raw_cmd("SET %s not-a-zset", rel));
	u = rcpt_unit("rl4", 10);
	assert_int_equal(store_rcpt(&cfg, &u, 1, T0, &v, &q, &f), STORE_OK);
	assert_int_equal(f.status, STORE_ERR);
	assert_false(f.known);
	assert_non_null(strstr(store_last_error(), "WRONGTYPE"));
	assert_int_equal(raw_int("ZCARD %s{rl-net}:p:rl:rl@ours.example", prefix), 3);
	assert_int_equal(store_ping(&cfg), STORE_OK);
	freeReplyObject(raw_cmd("DEL %s %s", rel, block));

	/* nothing asked: nothing sent, OK */
	assert_int_equal(store_rcpt(&cfg, NULL, 0, 0, &v, NULL, &f), STORE_OK);
	q.rel_sender = NULL;
	assert_int_equal(store_rcpt(&cfg, NULL, 0, 0, &v, &q, &f), STORE_ERR);
}

/* this thread's connection made and the reserve script loaded on it */
static void warm_up(const struct config *cfg)
{
	struct store_unit u = unit_of("lt-net", "warm", "lt@ours.example", "warm");
	struct store_verdict v;

	assert_int_equal(store_reserve(cfg, &u, 1, T0, &v), STORE_OK);
	assert_int_equal(store_release(cfg, &u, 1), STORE_OK);
}

/*
 * The lookups' replies never come after the reservation's reply was read:
 * the reservation stands (reported, in Redis, committed or released later
 * on a new connection), the lookups failed, the connection is dropped.
 */
static void test_rcpt_late_timeout(void **state)
{
	struct config cfg;
	struct relay rl;
	struct store_unit u[2];
	struct store_verdict v;
	struct store_found f;
	struct store_lookup q = { "lt@ours.example", "lt-login", "k@x.example", true, T0 };
	struct store_finish fin;
	char w1[256], p1[256], w2[256], p2[256], rel[256];
	long long t;

	(void)state;
	relay_start(&rl, srv.dir[0] ? srv.dir : "/tmp");
	cfg_init(&cfg);
	cfg.redis.socket = rl.path;
	cfg.generation = 60;
	snprintf(w1, sizeof(w1), "%s{lt-net}:w:lt1:lt@ours.example", prefix);
	snprintf(p1, sizeof(p1), "%s{lt-net}:p:lt1:lt@ours.example", prefix);
	snprintf(w2, sizeof(w2), "%s{lt-net}:w:lt2:lt@ours.example", prefix);
	snprintf(p2, sizeof(p2), "%s{lt-net}:p:lt2:lt@ours.example", prefix);
	/* the lookups would find something: a known correspondent */
	freeReplyObject(raw_cmd("ZADD %s %lld k@x.example",
				skey(rel, sizeof(rel), "lt@ours.example", "rel"), T0 - 1000));

	warm_up(&cfg);
	assert_int_equal(relay_conns(&rl), 1);

	/* Redis answers the reservation; the five lookups' replies never come */
	u[0] = unit_of("lt-net", "lt1", "lt@ours.example", "m1");
	u[1] = unit_of("lt-net", "lt2", "lt@ours.example", "m1");
	relay_hold(&rl, 1);
	t = redis_test_ms();
	assert_int_equal(store_rcpt(&cfg, u, 2, T0, &v, &q, &f), STORE_OK);
	t = redis_test_ms() - t;
	assert_int_equal(v.admitted_ms, T0);
	assert_int_equal(v.unit, -1);
	assert_int_equal(f.status, STORE_ERR);
	assert_false(f.known);
	assert_non_null(strstr(store_last_error(), "no answer within"));
	assert_true(t >= cfg.redis.timeout_ms - 20 && t <= cfg.redis.timeout_ms + 150);
	/* admitted in Redis: counted and pending under both rules */
	assert_int_equal(zscore(w1, "m1"), T0);
	assert_int_equal(zscore(p1, "m1"), T0 + 60000);
	assert_int_equal(zscore(w2, "m1"), T0);
	assert_int_equal(zscore(p2, "m1"), T0 + 60000);

	/* the connection was dropped: after the back-off a new one commits
	 * one unit and releases the other */
	redis_test_sleep_ms(150);
	u[0].admitted_ms = u[1].admitted_ms = v.admitted_ms;
	memset(&fin, 0, sizeof(fin));
	fin.commit = &u[0];
	fin.n_commit = 1;
	fin.release = &u[1];
	fin.n_release = 1;
	assert_int_equal(store_finish(&cfg, &fin), STORE_OK);
	assert_int_equal(relay_conns(&rl), 2);
	assert_int_equal(zscore(w1, "m1"), T0);
	assert_int_equal(zscore(p1, "m1"), -1);
	assert_int_equal(zscore(w2, "m1"), -1);
	assert_int_equal(zscore(p2, "m1"), -1);

	/* a refusal answered before the timeout is reported as one */
	warm_up(&cfg);
	u[0] = unit_of("lt-net", "lt1", "lt@ours.example", "m2");
	u[0].lv.hourly = 1;
	relay_hold(&rl, 1);
	assert_int_equal(store_rcpt(&cfg, u, 1, T0 + 1, &v, &q, &f), STORE_OVER);
	assert_int_equal(v.unit, 0);
	assert_int_equal(v.which, WINDOW_OVER_HOURLY);
	assert_int_equal(v.used, 1);
	assert_int_equal(f.status, STORE_ERR);
	assert_int_equal(zscore(w1, "m2"), -1);

	/* no reply at all: nothing is known, an error (the reservation, if
	 * Redis made it, expires after reservation_ttl) */
	redis_test_sleep_ms(150);
	warm_up(&cfg);
	u[0] = unit_of("lt-net", "lt1", "lt@ours.example", "m3");
	relay_hold(&rl, 0);
	assert_int_equal(store_rcpt(&cfg, u, 1, T0 + 2, &v, &q, &f), STORE_ERR);
	assert_int_equal(f.status, STORE_ERR);
	assert_non_null(strstr(store_last_error(), "no answer within"));
	assert_int_equal(zscore(p1, "m3"), T0 + 2 + 60000);

	/* nothing held back on a new connection: everything answered as usual */
	redis_test_sleep_ms(150);
	u[0] = unit_of("lt-net", "lt1", "lt@ours.example", "m4");
	assert_int_equal(store_rcpt(&cfg, u, 1, T0 + 3, &v, &q, &f), STORE_OK);
	assert_int_equal(f.status, STORE_OK);
	assert_true(f.known);
	assert_int_equal(relay_conns(&rl), 4);

	store_disconnect();
	relay_stop(&rl);
}

/* the velocity a message reaches: distinct new recipients on top, capped */
static void test_velocity_sum(void **state)
{
	const char *r[6] = { "a@x", "b@x", "a@x", "c@x", "b@x", "d@x" };
	unsigned char recent[6] = { 0, 0, 0, 1, 0, 1 };
	unsigned char none[6] = { 1, 1, 1, 1, 1, 1 };

	(void)state;
	assert_int_equal(store_velocity(0, r, recent, 6), 2);   /* a, b */
	assert_int_equal(store_velocity(7, r, recent, 6), 9);
	assert_int_equal(store_velocity(7, r, none, 6), 7);
	assert_int_equal(store_velocity(-3, r, none, 0), 0);
	assert_int_equal(store_velocity(VELOCITY_CAP - 1, r, recent, 6), VELOCITY_CAP);
}

/* ---- commands and round trips ------------------------------------------------ */

static void test_inputs_commands(void **state)
{
	struct config cfg;
	struct inputs in;
	const char *rc[3] = { "a@c.example", "b@c.example", "c@c.example" };
	char *before, *after;

	(void)state;
	if (srv.external)
		skip();
	cfg_init(&cfg);
	assert_int_equal(store_ping(&cfg), STORE_OK);

	/* per recipient two ZSCOREs; once a message ZCOUNT and a GET per sender;
	 * the end of message writes the velocity */
	before = stats_take();
	assert_int_equal(inputs(&cfg, "ic@ours.example", "ic-login", rc, 3, T0, NULL, &in),
			 STORE_OK);
	after = stats_take();
	check_commands(before, after, "zscore", 6LL, "zcount", 1LL, "get", 2LL, "zadd", 1LL,
		       "zremrangebyscore", 1LL, "zremrangebyrank", 1LL, "pexpire", 1LL,
		       (const char *)NULL);
	free(before);
	free(after);

	/* one sender: one GET; no recipients: nothing looked up, nothing written */
	before = stats_take();
	assert_int_equal(inputs(&cfg, "ic@ours.example", "ic@ours.example", NULL, 0, T0, NULL,
				&in),
			 STORE_OK);
	after = stats_take();
	check_commands(before, after, "zcount", 1LL, "get", 1LL, (const char *)NULL);
	assert_int_equal(in.velocity, 0);
	free(before);
	free(after);

	/* store_commit and store_release are store_finish underneath */
	{
		struct store_unit u = unit_of("ic", "r", "s", "m");

		before = stats_take();
		assert_int_equal(store_commit(&cfg, &u, 1), STORE_OK);
		assert_int_equal(store_release(&cfg, &u, 1), STORE_OK);
		after = stats_take();
		check_commands(before, after, "zrem", 3LL, "zadd", 1LL, "pexpire", 1LL,
			       (const char *)NULL);
		free(before);
		free(after);
	}

	/* a commit writes each window once: its pending set, its units, its TTL */
	{
		struct store_unit c[4] = { unit_of("ic", "r", "s", "c1"), unit_of("ic2", "r", "s", "c1"),
					   unit_of("ic", "r", "s", "c2"), unit_of("ic", "r", "s", "c3") };
		char w[256];

		before = stats_take();
		assert_int_equal(store_commit(&cfg, c, 4), STORE_OK);
		after = stats_take();
		check_commands(before, after, "zrem", 2LL, "zadd", 2LL, "pexpire", 2LL,
			       (const char *)NULL);
		free(before);
		free(after);
		snprintf(w, sizeof(w), "%s{ic}:w:r:s", prefix);
		assert_int_equal(zcard(w), 3);
		assert_true(pttl(w) > HOUR_MS + 60000 - 5000);
		assert_int_equal(store_release(&cfg, c, 4), STORE_OK);
	}
}

static void test_round_trips(void **state)
{
	struct config cfg;
	struct relay rl;
	struct store_unit u[2];
	struct store_verdict v;
	struct store_pair learn[3] = { { "rt@ours.example", "a@r.example" },
				       { "rt2@ours.example", "b@r.example" },
				       { "rt@ours.example", "c@r.example" } };
	struct store_count counts[2] = { { COUNT_STATS, NULL, "msgs:personal", 1 }, { COUNT_STATS, NULL, "rcpts:personal", 3 } };
	struct store_finish f;
	char **many = names_make("rt", "r.example", 20);
	const char *rc[2] = { "a@r.example", "z@r.example" };
	struct store_lookup q = { "rt@ours.example", "rt-login", "a@r.example", true, T0 };
	struct store_found found;

	(void)state;
	relay_start(&rl, srv.dir[0] ? srv.dir : "/tmp");
	cfg_init(&cfg);
	cfg.redis.socket = rl.path;
	cfg.generation = 50;

	/* connecting checks with a PING of its own, then store_ping's PING:
	 * the relay sees each round trip */
	assert_int_equal(store_ping(&cfg), STORE_OK);
	assert_int_equal(relay_turns(&rl), 2);
	assert_int_equal(store_ping(&cfg), STORE_OK);
	assert_int_equal(relay_turns(&rl), 1);

	/* a recipient: reservation and lookups in one round trip (the first
	 * reservation of a connection loads the script first) */
	u[0] = unit_of("google", "rt", "rt@ours.example", "m0");
	assert_int_equal(store_rcpt(&cfg, u, 1, T0, &v, &q, &found), STORE_OK);
	assert_int_equal(found.status, STORE_OK);
	assert_int_equal(relay_turns(&rl), 2);
	u[0] = unit_of("google", "rt", "rt@ours.example", "m1");
	u[1] = unit_of("google", "rt", "rt@ours.example", "m2");
	assert_int_equal(store_rcpt(&cfg, u, 2, T0, &v, &q, &found), STORE_OK);
	assert_int_equal(found.status, STORE_OK);
	assert_int_equal(relay_turns(&rl), 1);
	q.message = false;
	assert_int_equal(store_rcpt(&cfg, NULL, 0, 0, NULL, &q, &found), STORE_OK);
	assert_int_equal(relay_turns(&rl), 1);
	assert_int_equal(store_reserve(&cfg, u, 2, T0, &v), STORE_OK);
	assert_int_equal(relay_turns(&rl), 1);

	memset(&f, 0, sizeof(f));
	f.commit = &u[0];
	f.n_commit = 1;
	f.release = &u[1];
	f.n_release = 1;
	f.learn = learn;
	f.n_learn = 3;
	f.counts = counts;
	f.n_counts = 2;
	f.vel_sender = "rt-login";
	f.vel_rcpts = (const char *const *)many;
	f.n_vel = 20;
	f.now_ms = T0;
	assert_int_equal(store_finish(&cfg, &f), STORE_OK);
	assert_int_equal(relay_turns(&rl), 1);

	assert_int_equal(store_commit(&cfg, u, 2), STORE_OK);
	assert_int_equal(relay_turns(&rl), 1);
	assert_int_equal(store_release(&cfg, u, 2), STORE_OK);
	assert_int_equal(relay_turns(&rl), 1);

	assert_int_equal(store_rel_add(&cfg, "rt@ours.example", rc, 2, T0), STORE_OK);
	assert_int_equal(relay_turns(&rl), 1);
	assert_int_equal(store_rel_del(&cfg, "rt@ours.example", rc, 2), STORE_OK);
	assert_int_equal(relay_turns(&rl), 1);

	store_disconnect();
	relay_stop(&rl);
	names_free(many, 20);
}

/* ---- relationship lists and blocks for outboundctl ---------------------------- */

struct listed {
	char rcpt[16][64];
	long long seen[16];
	int n;
};

static void list_fn(void *arg, const char *rcpt, long long last_seen_ms)
{
	struct listed *l = arg;

	if (l->n < 16) {
		snprintf(l->rcpt[l->n], sizeof(l->rcpt[l->n]), "%s", rcpt);
		l->seen[l->n] = last_seen_ms;
	}
	l->n++;
}

static void count_fn(void *arg, const char *rcpt, long long last_seen_ms)
{
	(void)rcpt;
	(void)last_seen_ms;
	(*(long *)arg)++;
}

static long long wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_rel_lists(void **state)
{
	struct config cfg;
	struct listed l;
	const char *two[2] = { "p@l.example", "q@l.example" };
	const char *del[2] = { "q@l.example", "absent@l.example" };
	long long now = wall_ms(), t;
	long ttl = TTL_DAYS * DAY_MS;
	char rel[256];
	char **many;
	redisReply *rep;
	long n;

	(void)state;
	cfg_init(&cfg);
	skey(rel, sizeof(rel), "rl@ours.example", "rel");

	assert_int_equal(store_rel_add(&cfg, "rl@ours.example", two, 2, now - 2000), STORE_OK);
	assert_int_equal(store_rel_add(&cfg, "rl@ours.example", &two[0], 1, now - 1000),
			 STORE_OK);
	t = pttl(rel);
	assert_true(t > ttl - 5000 && t <= ttl);
	/* an expired entry is not listed */
	freeReplyObject(raw_cmd("ZADD %s %lld gone@l.example", rel, now - ttl - DAY_MS));

	memset(&l, 0, sizeof(l));
	assert_int_equal(store_rel_list(&cfg, "rl@ours.example", list_fn, &l), 2);
	assert_int_equal(l.n, 2);
	/* newest first */
	assert_string_equal(l.rcpt[0], "p@l.example");
	assert_int_equal(l.seen[0], now - 1000);
	assert_string_equal(l.rcpt[1], "q@l.example");
	assert_int_equal(l.seen[1], now - 2000);

	assert_int_equal(store_rel_del(&cfg, "rl@ours.example", del, 2), STORE_OK);
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_rel_list(&cfg, "rl@ours.example", list_fn, &l), 1);
	assert_string_equal(l.rcpt[0], "p@l.example");
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_rel_list(&cfg, "none@ours.example", list_fn, &l), 0);
	assert_int_equal(store_rel_add(&cfg, "rl@ours.example", NULL, 0, 0), STORE_OK);
	assert_int_equal(store_rel_del(&cfg, "rl@ours.example", NULL, 0), STORE_OK);

	/* a large import goes in chunks and keeps relationship_max, the default clock */
	cfg.relationship_max = 1000;
	cfg.redis.timeout_ms = 2000;
	cfg.generation = 3;
	many = names_make("i", "imp.example", 2500);
	assert_int_equal(store_rel_add(&cfg, "imp@ours.example", (const char *const *)many, 2500,
				       0),
			 STORE_OK);
	skey(rel, sizeof(rel), "imp@ours.example", "rel");
	assert_int_equal(zcard(rel), 1000);
	/* all of them last seen now, by the local clock */
	rep = raw_cmd("ZRANGE %s 0 -1 WITHSCORES", rel);
	assert_int_equal(rep->elements, 2000);
	assert_true(atoll(rep->element[1]->str) >= now);
	assert_true(atoll(rep->element[1]->str) == atoll(rep->element[1999]->str));
	assert_true(atoll(rep->element[1999]->str) <= wall_ms());
	freeReplyObject(rep);
	n = 0;
	assert_int_equal(store_rel_list(&cfg, "imp@ours.example", count_fn, &n), 1000);
	assert_int_equal(n, 1000);
	assert_int_equal(store_rel_del(&cfg, "imp@ours.example", (const char *const *)many, 2500),
			 STORE_OK);
	assert_int_equal(raw_int("EXISTS %s", rel), 0);
	names_free(many, 2500);
	store_disconnect();
}

/* ---- errors ------------------------------------------------------------------ */

static void test_errors(void **state)
{
	struct config cfg;
	struct inputs in;
	struct store_unit u = unit_of("er", "r", "s", "m");
	struct store_verdict v;
	struct store_pair bad_pair = { "er@ours.example", NULL };
	struct store_pair pairs[2] = { { "wrong@ours.example", "x@e.example" },
				       { "er@ours.example", "y@e.example" } };
	struct store_count bad_count = { COUNT_STATS, NULL, NULL, 1 };
	struct store_finish f;
	const char *rc[2] = { "x@e.example", NULL };
	char rel[256], p[256];
	struct listed l;

	(void)state;
	cfg_init(&cfg);

	/* bad calls */
	assert_int_equal(inputs(&cfg, NULL, NULL, rc, 1, T0, NULL, &in), STORE_ERR);
	assert_int_equal(inputs(&cfg, "er@ours.example", NULL, rc, 2, T0, NULL, &in), STORE_ERR);
	assert_int_equal(inputs(&cfg, "er@ours.example", NULL, NULL, 1, T0, NULL, &in), STORE_ERR);
	memset(&f, 0, sizeof(f));
	f.learn = &bad_pair;
	f.n_learn = 1;
	assert_int_equal(store_finish(&cfg, &f), STORE_ERR);
	memset(&f, 0, sizeof(f));
	f.counts = &bad_count;
	f.n_counts = 1;
	assert_int_equal(store_finish(&cfg, &f), STORE_ERR);
	assert_int_equal(store_rel_add(&cfg, NULL, rc, 1, T0), STORE_ERR);
	assert_int_equal(store_rel_add(&cfg, "er@ours.example", rc, 2, T0), STORE_ERR);
	assert_int_equal(store_rel_del(&cfg, "er@ours.example", rc, 2), STORE_ERR);
	assert_int_equal(store_rel_list(&cfg, NULL, list_fn, &l), STORE_ERR);
	assert_int_equal(store_block(&cfg, NULL, "r", 0), STORE_ERR);
	assert_int_equal(store_unblock(&cfg, NULL), STORE_ERR);

	/* a key of the wrong type: an error, every reply read, the connection usable */
	skey(rel, sizeof(rel), "wrong@ours.example", "rel");
	freeReplyObject(raw_cmd("SET %s not-a-zset", rel));
	assert_int_equal(inputs(&cfg, "wrong@ours.example", NULL, rc, 1, T0, NULL, &in),
			 STORE_ERR);
	assert_non_null(strstr(store_last_error(), "WRONGTYPE"));
	assert_int_equal(in.velocity, 0);
	assert_int_equal(store_ping(&cfg), STORE_OK);
	assert_int_equal(inputs(&cfg, "er@ours.example", NULL, rc, 1, T0, NULL, &in), STORE_OK);
	assert_int_equal(in.velocity, 1);

	/* in store_finish the other writes still happen */
	assert_int_equal(store_reserve(&cfg, &u, 1, T0, &v), STORE_OK);
	memset(&f, 0, sizeof(f));
	f.commit = &u;
	f.n_commit = 1;
	f.learn = pairs;
	f.n_learn = 2;
	f.now_ms = T0;
	assert_int_equal(store_finish(&cfg, &f), STORE_ERR);
	assert_non_null(strstr(store_last_error(), "WRONGTYPE"));
	snprintf(p, sizeof(p), "%s{er}:p:r:s", prefix);
	assert_int_equal(zscore(p, "m"), -1);
	assert_int_equal(zscore(skey(rel, sizeof(rel), "er@ours.example", "rel"), "y@e.example"),
			 T0);
	assert_int_equal(store_ping(&cfg), STORE_OK);

	assert_int_equal(store_rel_list(&cfg, "wrong@ours.example", list_fn, &l), STORE_ERR);
	assert_non_null(strstr(store_last_error(), "WRONGTYPE"));
	skey(rel, sizeof(rel), "wrong@ours.example", "rel");
	freeReplyObject(raw_cmd("DEL %s", rel));

	/* a block key of the wrong type */
	skey(rel, sizeof(rel), "wrong@ours.example", "block");
	freeReplyObject(raw_cmd("ZADD %s 1 x", rel));
	assert_int_equal(inputs(&cfg, "wrong@ours.example", NULL, rc, 1, T0, NULL, &in),
			 STORE_ERR);
	assert_false(in.blocked);
	freeReplyObject(raw_cmd("DEL %s", rel));
	assert_int_equal(store_ping(&cfg), STORE_OK);
}

/* ---- Redis down ------------------------------------------------------------ */

static void test_redis_down(void **state)
{
	struct config cfg;
	struct inputs in;
	const char *rc[1] = { "x@d.example" };
	struct store_pair pair = { "dn@ours.example", "x@d.example" };
	struct store_count c = { COUNT_STATS, NULL, "msgs", 1 };
	struct store_unit u = unit_of("dn", "r", "s", "m");
	struct store_finish f = { .commit = &u, .n_commit = 1, .learn = &pair, .n_learn = 1,
				  .counts = &c, .n_counts = 1, .now_ms = T0 };
	struct listed l;
	long long t, restarted;
	int round;

	(void)state;
	if (!redis_test_owned(&srv))
		skip();
	cfg_init(&cfg);
	cfg.generation = 300;
	assert_int_equal(store_ping(&cfg), STORE_OK);
	redis_test_stop(&srv);

	/* the first call finds the connection dead, later ones cannot connect
	 * or are backing off: all fail, none waits longer than the timeout */
	for (round = 0; round < 3; round++) {
		t = redis_test_ms();
		assert_int_equal(inputs(&cfg, "dn@ours.example", "dn", rc, 1, T0, NULL, &in),
				 STORE_ERR);
		assert_int_equal(store_finish(&cfg, &f), STORE_ERR);
		assert_int_equal(store_commit(&cfg, &u, 1), STORE_ERR);
		assert_int_equal(store_release(&cfg, &u, 1), STORE_ERR);
		assert_int_equal(store_rel_add(&cfg, "dn@ours.example", rc, 1, T0), STORE_ERR);
		assert_int_equal(store_rel_del(&cfg, "dn@ours.example", rc, 1), STORE_ERR);
		assert_int_equal(store_rel_list(&cfg, "dn@ours.example", list_fn, &l), STORE_ERR);
		assert_int_equal(store_block(&cfg, "dn@ours.example", "r", 0), STORE_ERR);
		assert_int_equal(store_unblock(&cfg, "dn@ours.example"), STORE_ERR);
		t = redis_test_ms() - t;
		printf("redis down: 9 calls failed in %lld ms: %s\n", t, store_last_error());
		assert_true(t <= cfg.redis.timeout_ms + 100);
		assert_non_null(strstr(store_last_error(), "redis"));
		redis_test_sleep_ms(150);
	}

	assert_int_equal(redis_test_restart(&srv), 0);
	restarted = redis_test_ms();
	while (inputs(&cfg, "dn@ours.example", "dn", rc, 1, T0, NULL, &in) != STORE_OK) {
		if (redis_test_ms() - restarted > 1500)
			fail_msg("still failing 1.5 s after restart: %s", store_last_error());
		redis_test_sleep_ms(5);
	}
	assert_int_equal(in.velocity, 1);
	raw_close();
}

/* ---- setup ------------------------------------------------------------- */

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_flags),
		cmocka_unit_test(test_known_many),
		cmocka_unit_test(test_velocity_window),
		cmocka_unit_test(test_velocity_cap),
		cmocka_unit_test(test_blocks),
		cmocka_unit_test(test_learn_cap),
		cmocka_unit_test(test_learn_refresh_and_expiry),
		cmocka_unit_test(test_finish_everything),
		cmocka_unit_test(test_finish_sender_top_log),
		cmocka_unit_test(test_counts_clock),
		cmocka_unit_test(test_inputs_commands),
		cmocka_unit_test(test_round_trips),
		cmocka_unit_test(test_rcpt_lookups),
		cmocka_unit_test(test_rcpt_late_timeout),
		cmocka_unit_test(test_velocity_sum),
		cmocka_unit_test(test_rel_lists),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_redis_down),
	};

	/* OBM_CMOCKA_FILTER=pattern runs only the matching cmocka tests */
	if (getenv("OBM_CMOCKA_FILTER") != NULL)
		cmocka_set_test_filter(getenv("OBM_CMOCKA_FILTER"));
	return cmocka_run_group_tests(tests, raw_group_setup, raw_group_teardown);
}
