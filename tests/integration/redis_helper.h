/*
 * redis_helper.h - a throwaway redis-server for C tests.
 *
 * redis_test_start() runs `redis-server --port 0 --unixsocket DIR/redis.sock
 * --save '' --appendonly no --daemonize no` as a child process in a fresh
 * mkdtemp directory and waits until the socket answers; redis_test_stop()
 * ends it by its PID (SIGTERM, then SIGKILL if it does not go) and
 * redis_test_cleanup() also removes the directory. redis_test_restart()
 * starts it again on the same socket (outage tests), redis_test_pause() and
 * redis_test_resume() freeze and thaw it (SIGSTOP/SIGCONT: a stuck server),
 * redis_test_connect() gives a separate raw hiredis connection for checks.
 *
 * With OBM_TEST_REDIS_SOCK set, redis_test_start() uses that server instead
 * of starting one (unless the test needs extra server options); tests that
 * stop or pause the server must then skip (redis_test_owned() is false).
 */
#ifndef OBM_REDIS_HELPER_H
#define OBM_REDIS_HELPER_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#define REDIS_TEST_MAX_ARGS 16

struct redis_test_server {
	pid_t pid;         /* the redis-server child, 0 when none */
	bool external;     /* OBM_TEST_REDIS_SOCK: not ours to stop */
	bool paused;
	char dir[64];      /* mkdtemp directory, "" when none */
	char sock[256];    /* unix socket path */
	const char *extra[REDIS_TEST_MAX_ARGS]; /* more server options */
	int n_extra;
};

static inline long long redis_test_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void redis_test_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* a raw connection to the test server (2 s timeouts), NULL on failure */
static inline redisContext *redis_test_connect(const struct redis_test_server *srv)
{
	struct timeval tv = { 2, 0 };
	redisContext *c = redisConnectUnixWithTimeout(srv->sock, tv);

	if (c == NULL)
		return NULL;
	if (c->err || redisSetTimeout(c, tv) != REDIS_OK) {
		redisFree(c);
		return NULL;
	}
	return c;
}

/* true once the socket answers a PING with anything (NOAUTH counts) */
static inline bool redis_test_answers(const struct redis_test_server *srv)
{
	redisContext *c = redis_test_connect(srv);
	redisReply *r;

	if (c == NULL)
		return false;
	r = redisCommand(c, "PING");
	redisFree(c);
	if (r == NULL)
		return false;
	freeReplyObject(r);
	return true;
}

/* fork/exec redis-server in srv->dir; 0 once it answers */
static inline int redis_test_spawn(struct redis_test_server *srv)
{
	const char *argv[16 + REDIS_TEST_MAX_ARGS];
	char log[128];
	long long deadline;
	int argc = 0, i;
	pid_t pid;

	argv[argc++] = "redis-server";
	argv[argc++] = "--port";
	argv[argc++] = "0";
	argv[argc++] = "--unixsocket";
	argv[argc++] = srv->sock;
	argv[argc++] = "--save";
	argv[argc++] = "";
	argv[argc++] = "--appendonly";
	argv[argc++] = "no";
	argv[argc++] = "--daemonize";
	argv[argc++] = "no";
	argv[argc++] = "--dir";
	argv[argc++] = srv->dir;
	for (i = 0; i < srv->n_extra; i++)
		argv[argc++] = srv->extra[i];
	argv[argc] = NULL;
	snprintf(log, sizeof(log), "%s/redis.log", srv->dir);

	fflush(NULL);
	if ((pid = fork()) < 0)
		return -1;
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);

		/* do not outlive a test that crashes */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	srv->pid = pid;
	srv->paused = false;
	deadline = redis_test_ms() + 10000;
	while (redis_test_ms() < deadline) {
		int status;

		if (waitpid(pid, &status, WNOHANG) == pid) {
			fprintf(stderr, "redis-server exited early, see %s\n", log);
			srv->pid = 0;
			return -1;
		}
		if (redis_test_answers(srv))
			return 0;
		redis_test_sleep_ms(10);
	}
	fprintf(stderr, "redis-server did not answer on %s\n", srv->sock);
	return -1;
}

/* end the server by its PID and reap it */
static inline void redis_test_stop(struct redis_test_server *srv)
{
	long long deadline;
	int status;

	if (srv->external || srv->pid <= 0)
		return;
	kill(srv->pid, SIGCONT);
	kill(srv->pid, SIGTERM);
	deadline = redis_test_ms() + 5000;
	while (waitpid(srv->pid, &status, WNOHANG) == 0) {
		if (redis_test_ms() > deadline) {
			kill(srv->pid, SIGKILL);
			waitpid(srv->pid, &status, 0);
			break;
		}
		redis_test_sleep_ms(5);
	}
	srv->pid = 0;
	srv->paused = false;
}

/* start a server (EXTRA: NULL-terminated server options, or NULL) */
static inline int redis_test_start(struct redis_test_server *srv, const char *const *extra)
{
	const char *env = getenv("OBM_TEST_REDIS_SOCK");

	memset(srv, 0, sizeof(*srv));
	if (extra != NULL)
		for (; *extra != NULL && srv->n_extra < REDIS_TEST_MAX_ARGS; extra++)
			srv->extra[srv->n_extra++] = *extra;
	if (env != NULL && env[0] != '\0' && srv->n_extra == 0) {
		srv->external = true;
		snprintf(srv->sock, sizeof(srv->sock), "%s", env);
		return redis_test_answers(srv) ? 0 : -1;
	}
	snprintf(srv->dir, sizeof(srv->dir), "/tmp/obm-redis-XXXXXX");
	if (mkdtemp(srv->dir) == NULL) {
		srv->dir[0] = '\0';
		return -1;
	}
	snprintf(srv->sock, sizeof(srv->sock), "%s/redis.sock", srv->dir);
	return redis_test_spawn(srv);
}

/* start the stopped server again on the same socket */
static inline int redis_test_restart(struct redis_test_server *srv)
{
	if (srv->external || srv->dir[0] == '\0')
		return -1;
	redis_test_stop(srv);
	return redis_test_spawn(srv);
}

static inline bool redis_test_owned(const struct redis_test_server *srv)
{
	return !srv->external && srv->pid > 0;
}

/* freeze / thaw the server: it keeps its socket but answers nothing */
static inline int redis_test_pause(struct redis_test_server *srv)
{
	if (!redis_test_owned(srv) || kill(srv->pid, SIGSTOP) != 0)
		return -1;
	srv->paused = true;
	return 0;
}

static inline int redis_test_resume(struct redis_test_server *srv)
{
	if (!redis_test_owned(srv) || kill(srv->pid, SIGCONT) != 0)
		return -1;
	srv->paused = false;
	return 0;
}

/* stop the server and remove its directory */
static inline void redis_test_cleanup(struct redis_test_server *srv)
{
	DIR *d;
	struct dirent *e;

	redis_test_stop(srv);
	if (srv->external || srv->dir[0] == '\0')
		return;
	if ((d = opendir(srv->dir)) != NULL) {
		while ((e = readdir(d)) != NULL) {
			char path[512];

			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			snprintf(path, sizeof(path), "%s/%s", srv->dir, e->d_name);
			unlink(path);
		}
		closedir(d);
	}
	rmdir(srv->dir);
	srv->dir[0] = '\0';
}

/*
 * redis_test_drop_prefix - on a shared server (OBM_TEST_REDIS_SOCK), remove
 * every key that starts with PREFIX, which this run wrote
 */
static inline void redis_test_drop_prefix(redisContext *c, const char *prefix)
{
	char cursor[32] = "0";

	do {
		redisReply *r = redisCommand(c, "SCAN %s MATCH %s* COUNT 1000", cursor, prefix);

		if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
			if (r != NULL)
				freeReplyObject(r);
			return;
		}
		snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
		for (size_t i = 0; i < r->element[1]->elements; i++) {
			const redisReply *k = r->element[1]->element[i];

			freeReplyObject(redisCommand(c, "DEL %b", k->str, (size_t)k->len));
		}
		freeReplyObject(r);
	} while (strcmp(cursor, "0") != 0);
}

#endif
