/*
 * test_backoff.c - the per-thread connect back-off of store.c, measured
 * from the outside. The "Redis" is a unix socket whose listener accepts
 * each connection, notes the time and closes it, so every connect attempt
 * fails in the handshake and is seen exactly once. One thread calls
 * store_ping() every 2 ms until its 8th attempt: the listener must see
 * attempts spaced 100, 200, 400, 800, 1000, 1000, 1000 ms (the delay
 * doubles from 100 ms up to 1000 ms and stays there), about 4.5 s for 8
 * attempts, not one per call.
 * Bounds are generous for a loaded 2-core machine and ASan: each gap at
 * least 80 % of its step and at most the step + 400 ms, and each gap of
 * the doubling part longer than the one before. A second thread that has
 * not failed yet connects at once (the back-off is per thread), while the
 * first is still backing off. That a successful connect resets the delay
 * is not covered here (test_store.c's test_redis_down checks that a
 * restarted Redis is used again within the longest step).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "redis_helper.h"

#include "config.h"
#include "store.h"

#define MAX_ACCEPTS 64

static char dir[64];
static char sock_path[96];
static int lfd = -1;
static pthread_t listener;
static atomic_int stop_listener;
static atomic_int n_accepts;
static long long accepts[MAX_ACCEPTS];

/* accept, note the time, close; until told to stop */
static void *listen_run(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop_listener)) {
		struct pollfd p = { .fd = lfd, .events = POLLIN };
		int fd;

		if (poll(&p, 1, 20) <= 0)
			continue;
		if ((fd = accept(lfd, NULL, NULL)) < 0)
			continue;
		int n = atomic_load(&n_accepts);
		if (n < MAX_ACCEPTS)
			accepts[n] = redis_test_ms();
		atomic_store(&n_accepts, n + 1);
		close(fd);
	}
	return NULL;
}

static int setup(void **state)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/obm-backoff.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(sock_path, sizeof(sock_path), "%s/redis.sock", dir);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", sock_path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(lfd, 64) != 0)
		return -1;
	return pthread_create(&listener, NULL, listen_run, NULL) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	atomic_store(&stop_listener, 1);
	pthread_join(listener, NULL);
	close(lfd);
	unlink(sock_path);
	rmdir(dir);
	return 0;
}

static void cfg_init(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->redis.socket = sock_path;
	cfg->redis.timeout_ms = 200;
	cfg->redis.prefix = "obm:";
	cfg->reservation_ttl = 60;
	cfg->generation = 1;
	cfg->mode = MODE_ENFORCE;
}

struct other {
	struct config *cfg;
	int rv;
	long long took;
	int before, after;
};

/* one store_ping() on a thread of its own */
static void *other_run(void *arg)
{
	struct other *o = arg;
	long long t = redis_test_ms();

	o->before = atomic_load(&n_accepts);
	o->rv = store_ping(o->cfg);
	o->took = redis_test_ms() - t;
	/* the listener notes the attempt within its 20 ms poll */
	for (int i = 0; i < 100 && atomic_load(&n_accepts) == o->before; i++)
		redis_test_sleep_ms(5);
	o->after = atomic_load(&n_accepts);
	store_disconnect();
	return NULL;
}

static void test_backoff_schedule(void **state)
{
	static const long step[] = { 100, 200, 400, 800, 1000, 1000, 1000 };
	const int n_step = (int)(sizeof(step) / sizeof(step[0]));
	struct config cfg;
	long long start, t;
	int calls = 0, n, i;
	bool other_done = false;
	int other_idx = -1;

	(void)state;
	cfg_init(&cfg);
	start = redis_test_ms();
	/* 100+200+400+800+1000+1000+1000 = 4500 ms: 8 attempts of this thread
	 * (9 with the other thread's); give up after 8 s */
	while ((t = redis_test_ms()) - start < 8000 && atomic_load(&n_accepts) < 9) {
		assert_int_equal(store_ping(&cfg), STORE_ERR);
		calls++;
		/* 3 s in (back-off 1000 ms by now): another thread is not held back */
		if (!other_done && t - start >= 3000) {
			struct other o = { .cfg = &cfg };
			pthread_t tid;

			assert_int_equal(pthread_create(&tid, NULL, other_run, &o), 0);
			pthread_join(tid, NULL);
			other_done = true;
			other_idx = o.before;
			printf("other thread: store_ping %s in %lld ms, attempts %d -> %d\n",
			       o.rv == STORE_OK ? "ok" : "failed", o.took, o.before, o.after);
			assert_int_equal(o.rv, STORE_ERR);
			assert_true(o.took < 1000);
			assert_int_equal(o.after, o.before + 1);
		}
		redis_test_sleep_ms(2);
	}
	printf("last error: %s\n", store_last_error());
	assert_non_null(strstr(store_last_error(), "redis"));
	store_disconnect();
	redis_test_sleep_ms(100);
	n = atomic_load(&n_accepts);
	printf("%d store_ping calls, %d connect attempts (1 of them the other thread's)\n",
	       calls, n);
	assert_true(n <= MAX_ACCEPTS);
	assert_true(other_idx >= 0);

	/* the other thread's attempt, taken out: the main thread was waiting
	 * in pthread_join meanwhile, so it is the one with index other_idx */
	long long own[MAX_ACCEPTS];
	int m = 0;
	for (i = 0; i < n; i++)
		if (i != other_idx)
			own[m++] = accepts[i];
	for (i = 0; i < m; i++)
		printf("attempt %d at %lld ms%s\n", i + 1, own[i] - start,
		       i > 0 ? "" : " (the first call)");
	for (i = 1; i < m; i++)
		printf("gap %d: %lld ms (step %ld)\n", i, own[i] - own[i - 1],
		       i - 1 < n_step ? step[i - 1] : -1L);
	assert_int_equal(m, 8);
	assert_true(own[0] - start < 300);
	for (i = 1; i < m; i++) {
		long long gap = own[i] - own[i - 1];

		assert_true(gap >= step[i - 1] * 8 / 10);
		assert_true(gap <= step[i - 1] + 400);
		if (i >= 2 && i <= 4)
			assert_true(gap > own[i - 1] - own[i - 2]); /* doubling */
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff_schedule),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
