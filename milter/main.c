/*
 * main.c - outbound-milter, the daemon: options, configuration check and
 * load, socket setup, detaching, privilege drop, signals, smfi_main, and
 * removing the socket and pid file at exit.
 *
 * Signals: SIGHUP reloads, SIGTERM and SIGINT stop new connections
 * (smfi_stop), wait a bounded time for the work in flight, and exit. The
 * main thread alone takes the three signals, with a handler; every other
 * thread blocks them. libmilter's smfi_main would start a thread of its
 * own that sigwait()s for them and stops the filter on any of them (a
 * SIGHUP too): a signal the main thread cannot take at that moment, one
 * arriving while its handler runs for instance, would go to that thread
 * and stop the daemon. So this program defines sigwait(): libmilter's
 * call lands here and its thread sleeps for good with the signals still
 * blocked (any other caller gets the real thing, through sigwaitinfo).
 * The handler only sets a flag and, unless a wake-up is already pending,
 * writes a byte to a pipe that the main loop polls; both ends are
 * non-blocking and close-on-exec, so a storm of signals can neither block
 * the handler nor queue up work: any number of SIGHUPs while a reload
 * runs make one more reload, and a SIGTERM is acted on as soon as the
 * reload in progress ends.
 *
 * Files: the unix socket and the pid file are removed at exit, by the
 * path they had at start and only while they are still the ones this
 * daemon made. Started as root with `user` set, the daemon can only do
 * that if that user may write their folder: a folder that holds nothing
 * but them (a folder of its own, such as /run/outbound-milter) is given to
 * the user at start; a shared folder is left alone and the start logs
 * that the file will stay behind (the next start removes a stale socket).
 */
#define _GNU_SOURCE /* pipe2 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libmilter/mfapi.h>

#include "callbacks.h"
#include "config.h"
#include "lease.h"
#include "log.h"
#include "policy.h"
#include "store.h"

#define SHUTDOWN_GRACE_MS 3500

/* the self-pipe of the signal handler; non-blocking, close-on-exec */
static int wake_pipe[2] = {-1, -1};
static atomic_int want_reload;  /* SIGHUP seen */
static atomic_int want_stop;    /* SIGTERM or SIGINT seen */
static atomic_int milter_done;  /* smfi_main returned */
static atomic_int wake_pending; /* a byte is in the pipe (or on its way) */
static int milter_status;

/* what this daemon made at start: removed at exit, whatever a reload says */
static char *run_socket;         /* the unix socket's path; NULL for inet */
static struct stat run_socket_st;
static char *run_pid_file;       /* the pid file written; NULL if none */

static void usage(FILE *f)
{
	fprintf(f, "usage: outbound-milter [-c FILE] [-f] [-t] [-V] [-h]\n"
		   "  -c FILE  configuration file (default " OBM_DEFAULT_CONFIG ")\n"
		   "  -f       stay in the foreground, log to stderr as well as syslog\n"
		   "  -t       check the configuration and exit 0 (good) or 1 (bad)\n"
		   "  -V       print the version and exit\n");
}

/* configuration problems: stderr as FILE:LINE: ..., and syslog once running */
static bool report_to_syslog;

static void report(void *arg, const char *file, int line, bool is_error, const char *msg)
{
	config_report_stderr(arg, file, line, is_error, msg);
	if (report_to_syslog)
		syslog(is_error ? LOG_ERR : LOG_WARNING, "%s:%d: %s: %s", log_quote(file), line,
		       is_error ? "error" : "warning", msg);
}

/* the file of a unix:/local: milter socket, NULL for inet sockets */
static const char *socket_path(const char *conn)
{
	if (strncmp(conn, "unix:", 5) == 0)
		return conn + 5;
	if (strncmp(conn, "local:", 6) == 0)
		return conn + 6;
	return NULL;
}

_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "the signal handler needs lock-free atomics");

/* libmilter's signal thread waits for SIGHUP, SIGTERM and SIGINT */
static bool libmilter_signal_set(const sigset_t *set)
{
	sigset_t want;

	sigemptyset(&want);
	sigaddset(&want, SIGHUP);
	sigaddset(&want, SIGTERM);
	sigaddset(&want, SIGINT);
	for (int sig = 1; sig < NSIG; sig++)
		if (sigismember(set, sig) != sigismember(&want, sig))
			return false;
	return true;
}

/*
 * sigwait() for the whole program, libmilter included (see the header
 * comment): libmilter's wait for the three signals never ends, so they
 * stay blocked in its thread and only the main thread's handler takes
 * them; any other wait is sigwaitinfo's.
 */
int sigwait(const sigset_t *restrict set, int *restrict sig)
{
	int got;

	if (libmilter_signal_set(set))
		for (;;)
			pause(); /* nothing here is ever delivered to this thread */
	do
		got = sigwaitinfo(set, NULL);
	while (got < 0 && errno == EINTR);
	if (got < 0)
		return errno;
	*sig = got;
	return 0;
}

/* wake the main loop; async-signal-safe, never blocks */
static void wake(void)
{
	if (atomic_exchange(&wake_pending, 1))
		return; /* a byte is there already: the main loop will look */
	if (write(wake_pipe[1], "", 1) < 0) {
		/* EAGAIN: the pipe is full, so the main loop wakes anyway */
	}
}

static void on_signal(int sig)
{
	int saved = errno;

	atomic_store(sig == SIGHUP ? &want_reload : &want_stop, 1);
	wake();
	errno = saved;
}

static void *milter_thread(void *arg)
{
	(void)arg;
	milter_status = smfi_main();
	atomic_store(&milter_done, 1);
	wake();
	return NULL;
}

/* smfi_stop() waits for libmilter's listener to leave poll(), up to 5 s */
static void *stop_thread(void *arg)
{
	(void)arg;
	smfi_stop();
	return NULL;
}

/*
 * Remove the unix socket made at start, if it is still that socket (a
 * second daemon may have taken the path meanwhile). Called as soon as the
 * daemon stops and again at exit; libmilter may have removed it already.
 */
static void remove_socket(void)
{
	struct stat st;

	if (run_socket == NULL || lstat(run_socket, &st) != 0 || !S_ISSOCK(st.st_mode) ||
	    st.st_dev != run_socket_st.st_dev || st.st_ino != run_socket_st.st_ino)
		return;
	if (unlink(run_socket) != 0 && errno != ENOENT)
		log_msg(LOG_WARNING, NULL, "cannot remove the socket %s: %s", log_quote(run_socket),
			strerror(errno));
}

/* remove the pid file written at start, if it still names this process */
static void remove_pid_file(void)
{
	char buf[32];
	ssize_t n;
	int fd;

	if (run_pid_file == NULL)
		return;
	fd = open(run_pid_file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	if (strtol(buf, NULL, 10) != (long)getpid())
		return;
	if (unlink(run_pid_file) != 0 && errno != ENOENT)
		log_msg(LOG_WARNING, NULL, "cannot remove the pid file %s: %s",
			log_quote(run_pid_file), strerror(errno));
}

/*
 * Stop taking connections now: a unix socket disappears at once (Postfix
 * then applies milter_default_action to new sessions); libmilter is told
 * to stop from a thread of its own so the grace period starts right away.
 */
static void stop_listening(void)
{
	pthread_t tid;

	remove_socket();
	if (pthread_create(&tid, NULL, stop_thread, NULL) == 0)
		pthread_detach(tid);
}

static void reload(const char *file)
{
	struct config *old = config_acquire();
	struct config *cfg = config_load(file, report, NULL);

	if (cfg == NULL) {
		log_msg(LOG_ERR, NULL, "reload of %s refused: errors above; the running "
				       "configuration stays in force", log_quote(file));
	} else {
		if (strcmp(old->socket, cfg->socket) != 0)
			log_msg(LOG_WARNING, NULL, "socket changed to %s: takes effect at restart",
				log_quote(cfg->socket));
		const char *mode = cfg->mode == MODE_MONITOR ? "monitor" : "enforce";

		config_install(cfg);
		log_msg(LOG_INFO, NULL, "configuration %s reloaded, mode=%s", log_quote(file), mode);
	}
	config_release(old);
}

/*
 * TCP_NODELAY on the listening inet socket, which accepted connections
 * inherit: a milter reply goes out as more than one small write, and with
 * Nagle's algorithm the second waits for the MTA's delayed ACK (about
 * 40 ms, twice a message). libmilter does not hand out its listening
 * socket, so it is found among our descriptors: a TCP socket in LISTEN.
 */
static void tcp_no_delay(void)
{
	for (int fd = 3; fd < 1024; fd++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss), olen;
		int listening = 0, on = 1;

		memset(&ss, 0, sizeof(ss));
		olen = sizeof(listening);
		if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &olen) != 0 ||
		    !listening || getsockname(fd, (struct sockaddr *)&ss, &len) != 0 ||
		    (ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
			continue;
		if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) != 0)
			log_msg(LOG_WARNING, NULL, "TCP_NODELAY on the milter socket: %s",
				strerror(errno));
	}
}

/* mode and group of a unix socket, so Postfix's smtpd (user postfix) can connect */
static int socket_permissions(const struct config *cfg)
{
	const char *path = socket_path(cfg->socket);
	struct group *gr;

	if (path == NULL)
		return 0;
	if (chmod(path, (mode_t)cfg->socket_mode) != 0) {
		log_msg(LOG_ERR, NULL, "chmod %s: %s", log_quote(path), strerror(errno));
		return -1;
	}
	if (cfg->socket_group[0] == '\0')
		return 0;
	gr = getgrnam(cfg->socket_group); /* cppcheck-suppress getgrnamCalled ; before any thread */
	if (gr == NULL) {
		log_msg(LOG_WARNING, NULL, "socket_group %s does not exist; %s keeps its group",
			log_quote(cfg->socket_group), log_quote(path));
		return 0;
	}
	if (chown(path, (uid_t)-1, gr->gr_gid) != 0) {
		log_msg(LOG_ERR, NULL, "chown %s to group %s: %s", log_quote(path),
			log_quote(cfg->socket_group), strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Switch to `group` and `user` for good: supplementary groups first, then
 * the group, then the user, and make sure root cannot be regained. Any
 * failure stops the start: a daemon told to give up root never goes on
 * running as root. Started by that user already (no root), there is
 * nothing to switch.
 */
static int drop_privileges(const struct config *cfg)
{
	const char *who = cfg->user[0] != '\0' ? cfg->user : cfg->group;
	bool have_user = cfg->user[0] != '\0';
	uid_t uid = getuid();
	gid_t gid;

	if (!have_user && cfg->group[0] == '\0')
		return 0;
	/* looked up while still root; the entries are copied at once */
	if (have_user) {
		struct passwd *pw;

		errno = 0;
		pw = getpwnam(cfg->user); /* cppcheck-suppress getpwnamCalled ; before any thread */
		if (pw == NULL) {
			log_msg(LOG_ERR, NULL, "cannot switch to user %s: %s", log_quote(cfg->user),
				errno != 0 ? strerror(errno) : "no such user");
			return -1;
		}
		uid = pw->pw_uid;
		gid = pw->pw_gid;
	}
	if (cfg->group[0] != '\0') {
		struct group *gr;

		errno = 0;
		gr = getgrnam(cfg->group); /* cppcheck-suppress getgrnamCalled ; before any thread */
		if (gr == NULL) {
			log_msg(LOG_ERR, NULL, "cannot switch to group %s: %s", log_quote(cfg->group),
				errno != 0 ? strerror(errno) : "no such group");
			return -1;
		}
		gid = gr->gr_gid;
	}
	if (geteuid() != 0) {
		if (getuid() == uid && geteuid() == uid && getgid() == gid && getegid() == gid)
			return 0;
		log_msg(LOG_ERR, NULL, "cannot switch to %s %s: not started as root",
			have_user ? "user" : "group", log_quote(who));
		return -1;
	}
	if ((have_user ? initgroups(cfg->user, gid) : setgroups(1, &gid)) != 0 ||
	    setgid(gid) != 0 || (have_user && setuid(uid) != 0)) {
		log_msg(LOG_ERR, NULL, "cannot switch to %s %s: %s", have_user ? "user" : "group",
			log_quote(who), strerror(errno));
		return -1;
	}
	if (getgid() != gid || getegid() != gid ||
	    (have_user && (getuid() != uid || geteuid() != uid)) ||
	    (have_user && uid != 0 && setuid(0) == 0)) {
		log_msg(LOG_ERR, NULL, "switching to %s %s did not drop root", have_user ? "user" : "group",
			log_quote(who));
		return -1;
	}
	return 0;
}

/*
 * After the switch: the user the daemon now runs as must be able to read
 * the Redis password file, or every connection to Redis would fail.
 */
static int check_password_access(const struct config *cfg)
{
	const char *file = cfg->redis.password_file;

	if (file == NULL || file[0] == '\0' || access(file, R_OK) == 0)
		return 0;
	log_msg(LOG_ERR, NULL, "redis: password_file %s cannot be read by uid %ld: %s",
		log_quote(file), (long)getuid(), strerror(errno));
	return -1;
}

/* DIR of PATH into DIR (size PATH_MAX) and its last part into *BASE */
static bool split_path(const char *path, char *dir, const char **base)
{
	const char *slash = strrchr(path, '/');
	size_t len;

	if (slash == NULL || slash[1] == '\0')
		return false;
	len = slash == path ? 1 : (size_t)(slash - path);
	if (len >= PATH_MAX)
		return false;
	memcpy(dir, path, len);
	dir[len] = '\0';
	*base = slash + 1;
	return true;
}

/* the folder open as DFD holds no entry but those named in NAMES */
static bool dir_holds_only(int dfd, const char *const *names, size_t n)
{
	int fd = dup(dfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;
	bool only = d != NULL;

	if (d == NULL && fd >= 0)
		close(fd);
	/* cppcheck-suppress readdirCalled ; before any thread */
	while (only && (e = readdir(d)) != NULL) {
		bool known = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;

		for (size_t i = 0; i < n && !known; i++)
			known = strcmp(e->d_name, names[i]) == 0;
		only = known;
	}
	if (d != NULL)
		closedir(d);
	return only;
}

/*
 * Started as root and about to become UID: give the folder of FILE to
 * UID when it is the daemon's own, so that FILE can be removed at exit.
 * Its own: owned by root, not writable by everybody, not "/", and holding
 * nothing but the socket and the pid file (NAMES). Only the owner changes
 * (and the owner gets write and search permission); the group and its
 * permissions stay, so Postfix's group keeps reaching the socket. Any
 * other folder is left as it is.
 */
static void give_own_dir(const char *file, const char *const *names, size_t n, uid_t uid,
			 const char *user)
{
	char dir[PATH_MAX];
	const char *base;
	struct stat st;
	int fd;

	if (!split_path(file, dir, &base) || strcmp(dir, "/") == 0)
		return;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	if (fstat(fd, &st) == 0 && st.st_uid == 0 && uid != 0 && (st.st_mode & S_IWOTH) == 0 &&
	    dir_holds_only(fd, names, n)) {
		if (fchown(fd, uid, (gid_t)-1) != 0 ||
		    ((st.st_mode & (S_IWUSR | S_IXUSR)) != (S_IWUSR | S_IXUSR) &&
		     fchmod(fd, (st.st_mode & 07777) | S_IWUSR | S_IXUSR) != 0))
			log_msg(LOG_WARNING, NULL, "cannot give the folder %s to user %s: %s",
				log_quote(dir), log_quote(user), strerror(errno));
		else
			log_msg(LOG_INFO, NULL, "folder %s given to user %s, so that the daemon "
				"removes its files there when it stops", log_quote(dir),
				log_quote(user));
	}
	close(fd);
}

/* before the switch to `user`: the folders of the socket and the pid file */
static void give_own_dirs(const struct config *cfg, bool with_pid_file)
{
	const char *files[2], *names[2];
	char dirs[2][PATH_MAX];
	size_t n = 0;
	struct passwd *pw;

	if (cfg->user[0] == '\0' || geteuid() != 0)
		return;
	pw = getpwnam(cfg->user); /* cppcheck-suppress getpwnamCalled ; before any thread */
	if (pw == NULL || pw->pw_uid == 0)
		return; /* drop_privileges says why */
	if (run_socket != NULL)
		files[n++] = run_socket;
	if (with_pid_file && run_pid_file != NULL)
		files[n++] = run_pid_file;
	for (size_t i = 0; i < n; i++)
		if (!split_path(files[i], dirs[i], &names[i]))
			return;
	for (size_t i = 0; i < n; i++) {
		const char *mine[2];
		size_t k = 0;

		if (i == 1 && strcmp(dirs[0], dirs[1]) == 0)
			break; /* the same folder: done with the first */
		for (size_t j = 0; j < n; j++)
			if (strcmp(dirs[j], dirs[i]) == 0)
				mine[k++] = names[j];
		give_own_dir(files[i], mine, k, pw->pw_uid, cfg->user);
	}
}

/*
 * After the switch: say at start, not at exit, when the socket or the pid
 * file will have to stay behind because their folder is closed to us.
 */
static void check_removable(const char *what, const char *file)
{
	char dir[PATH_MAX];
	const char *base;

	if (file == NULL || !split_path(file, dir, &base) || access(dir, W_OK | X_OK) == 0)
		return;
	log_msg(LOG_WARNING, NULL,
		"the %s %s will stay behind when the daemon stops: uid %ld cannot write the "
		"folder %s (give the daemon a folder of its own, see outbound-milter(8))",
		what, log_quote(file), (long)getuid(), log_quote(dir));
}

/*
 * Started as root: create the folder of FILE when it is missing (its own
 * last component only; a missing parent is an error that names it), as
 * MODE, owned by root and group GROUP ("" keeps root's). Holding nothing
 * else, it is the daemon's own: give_own_dirs then hands it to `user`, so
 * that the daemon can remove FILE when it stops. Without
 * systemd's RuntimeDirectory, /run/outbound-milter does not exist after a
 * boot; the socket folder inside Postfix's queue directory may not exist
 * before the first start. Anything that exists is left as it is.
 */
static int make_own_dir(const char *what, const char *file, mode_t mode, const char *group)
{
	char dir[PATH_MAX], parent[PATH_MAX];
	const char *base, *pbase;
	gid_t gid = 0;
	struct stat st;

	if (file == NULL || !split_path(file, dir, &base) || stat(dir, &st) == 0)
		return 0;
	if (errno != ENOENT || geteuid() != 0)
		return 0; /* opening the file says why */
	if (split_path(dir, parent, &pbase) && stat(parent, &st) != 0) {
		log_msg(LOG_ERR, NULL, "cannot create the folder of the %s %s: %s: %s%s", what,
			log_quote(file), log_quote(parent), strerror(errno),
			strncmp(parent, "/var/spool/postfix", 18) == 0
				? " (is Postfix installed here?)"
				: "");
		return -1;
	}
	if (group[0] != '\0') {
		const struct group *gr = getgrnam(group); /* cppcheck-suppress getgrnamCalled ; before any thread */

		if (gr != NULL)
			gid = gr->gr_gid;
	}
	if (mkdir(dir, mode) != 0 || chown(dir, 0, gid) != 0 || chmod(dir, mode) != 0) {
		log_msg(LOG_ERR, NULL, "cannot create the folder %s of the %s: %s", log_quote(dir),
			what, strerror(errno));
		return -1;
	}
	log_msg(LOG_INFO, NULL, "created the folder %s (mode %04o) for the %s", log_quote(dir),
		(unsigned)mode, what);
	return 0;
}

/*
 * Redis takes this configuration's credentials and scripts (store_verify).
 * Refused: an error naming the file, the server and the user, and 1 (the
 * start stops; -t fails). Not reachable now: a warning and 0, since Redis
 * may start later and on_error covers the meantime. CHECK_ONLY (-t):
 * printed on stderr as FILE: error: ..., like the configuration's
 * problems; otherwise logged.
 */
static int check_redis(const char *file, const struct config *cfg, bool check_only)
{
	const struct redis_conf *rc = &cfg->redis;
	enum store_check r = store_verify(cfg);
	const char *user = rc->user != NULL ? rc->user : "";
	const char *host = rc->host != NULL && rc->host[0] != '\0' ? rc->host : "127.0.0.1";
	const char *why = store_last_error();
	char where[300], msg[1024];
	bool refused = r == STORE_CHECK_REFUSED;

	if (r == STORE_CHECK_OK)
		return 0;
	if (strncmp(why, "redis: ", 7) == 0)
		why += 7;
	if (rc->socket != NULL && rc->socket[0] != '\0')
		snprintf(where, sizeof(where), "%s", rc->socket);
	else
		snprintf(where, sizeof(where), "%s:%d", host, rc->port > 0 ? rc->port : 6379);
	if (refused)
		snprintf(msg, sizeof(msg), "redis at %s, %s%s%s: %s", where,
			 user[0] ? "user \"" : "the default user", user, user[0] ? "\"" : "", why);
	else
		snprintf(msg, sizeof(msg),
			 "redis at %s cannot be reached now (%s): its credentials and scripts are "
			 "not checked; until it answers, on_error applies",
			 where, why);
	if (check_only)
		fprintf(stderr, "%s: %s: %s\n", file, refused ? "error" : "warning", msg);
	else
		log_msg(refused ? LOG_ERR : LOG_WARNING, NULL, "%s: %s", log_quote(file), msg);
	return refused ? 1 : 0;
}

/* the pid file, created before privileges are dropped and before the fork */
static FILE *pid_file_open(const char *pid_file)
{
	FILE *f;

	if (pid_file[0] == '\0')
		return NULL;
	f = fopen(pid_file, "w");
	if (f == NULL)
		log_msg(LOG_ERR, NULL, "cannot write pid_file %s: %s", log_quote(pid_file),
			strerror(errno));
	return f;
}

/*
 * Go to the background. The parent writes the child's pid to PIDF before it
 * exits, so whoever waits for the parent (systemd's Type=forking) finds the
 * file complete.
 */
static int detach(FILE *pidf)
{
	pid_t pid = fork();
	int fd;

	if (pid < 0)
		return -1;
	if (pid > 0) {
		if (pidf != NULL) {
			bool bad = fprintf(pidf, "%ld\n", (long)pid) < 0;

			if (fclose(pidf) != 0 || bad) {
				log_msg(LOG_ERR, NULL, "cannot write the pid file: %s",
					strerror(errno));
				kill(pid, SIGTERM);
				_exit(1);
			}
		}
		_exit(0);
	}
	if (pidf != NULL)
		fclose(pidf);
	if (setsid() < 0 || chdir("/") != 0)
		return -1;
	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	return 0;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
	const char *file = OBM_DEFAULT_CONFIG;
	bool foreground = false, check_only = false;
	struct config *cfg;
	pthread_t tid;
	sigset_t block;
	bool stopping = false;
	struct sigaction sa;
	FILE *pidf = NULL;
	mode_t old_umask;
	int ch, opened;

	while ((ch = getopt(argc, argv, "c:ftVh")) != -1) {
		switch (ch) {
		case 'c':
			file = optarg;
			break;
		case 'f':
			foreground = true;
			break;
		case 't':
			check_only = true;
			break;
		case 'V':
			printf("outbound-milter %s\n", OBM_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 1;
	}

	cfg = config_load(file, report, NULL);
	if (check_only) {
		int rv = cfg == NULL ? 1 : check_redis(file, cfg, true);

		if (cfg != NULL)
			config_free(cfg);
		return rv;
	}
	/* until it detaches, a start that fails says why on stderr too */
	log_open(true);
	report_to_syslog = true;
	if (cfg == NULL) {
		log_msg(LOG_ERR, NULL, "configuration %s has errors; not starting", log_quote(file));
		return 1;
	}
	/* before the socket exists: Postfix never meets a daemon about to give up */
	if (check_redis(file, cfg, false) != 0) {
		config_free(cfg);
		return 1;
	}
	policy_init();
	config_install(cfg);

	if (smfi_register(callbacks_desc) == MI_FAILURE ||
	    smfi_setconn(cfg->socket) == MI_FAILURE) {
		log_msg(LOG_ERR, NULL, "cannot register the filter on %s", log_quote(cfg->socket));
		return 1;
	}
	/*
	 * true: remove a stale unix socket left by a crash. The socket is
	 * created closed to everyone but root, then given socket_mode and
	 * socket_group, so that no other user can slip in meanwhile.
	 */
	if (make_own_dir("socket", socket_path(cfg->socket), 0750, cfg->socket_group) != 0 ||
	    (!foreground && make_own_dir("pid file", cfg->pid_file, 0755, "") != 0))
		return 1;
	old_umask = umask(0177);
	opened = smfi_opensocket(true);
	umask(old_umask);
	if (opened == MI_FAILURE) {
		log_msg(LOG_ERR, NULL, "cannot open socket %s", log_quote(cfg->socket));
		return 1;
	}
	if (socket_permissions(cfg) != 0)
		return 1;
	if (socket_path(cfg->socket) != NULL) {
		run_socket = strdup(socket_path(cfg->socket));
		if (run_socket == NULL || lstat(run_socket, &run_socket_st) != 0) {
			log_msg(LOG_ERR, NULL, "socket %s: %s", log_quote(cfg->socket),
				strerror(errno));
			return 1;
		}
	}
	tcp_no_delay();
	callbacks_skip_data(run_socket != NULL);

	/*
	 * The handlers are in place before the starter returns: a SIGHUP or
	 * SIGTERM sent right after the start waits in the pipe for the main
	 * loop rather than killing the process.
	 */
	if (pipe2(wake_pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
		log_msg(LOG_ERR, NULL, "pipe: %s", strerror(errno));
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	/* everything that can stop the start fails here, before detaching */
	if (!foreground && (pidf = pid_file_open(cfg->pid_file)) == NULL && cfg->pid_file[0] != '\0')
		return 1;
	if (pidf != NULL && (run_pid_file = strdup(cfg->pid_file)) == NULL) {
		log_msg(LOG_ERR, NULL, "out of memory");
		return 1;
	}
	give_own_dirs(cfg, pidf != NULL);
	if (drop_privileges(cfg) != 0 || check_password_access(cfg) != 0)
		return 1;
	check_removable("socket", run_socket);
	check_removable("pid file", run_pid_file);
	if (!foreground && detach(pidf) != 0) {
		log_msg(LOG_ERR, NULL, "cannot detach: %s", strerror(errno));
		return 1;
	}
	log_set_stderr(foreground);

	sigemptyset(&block);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	pthread_sigmask(SIG_BLOCK, &block, NULL);
	if (pthread_create(&tid, NULL, milter_thread, NULL) != 0) {
		log_msg(LOG_ERR, NULL, "cannot start the milter thread");
		return 1;
	}
	/* slow clients keep their reservations (lease.c) */
	if (lease_start() != 0) {
		log_msg(LOG_ERR, NULL, "cannot start the reservation renewal thread");
		return 1;
	}
	pthread_sigmask(SIG_UNBLOCK, &block, NULL);

	log_msg(LOG_INFO, NULL, "started %s on %s, mode=%s", OBM_VERSION, log_quote(cfg->socket),
		cfg->mode == MODE_MONITOR ? "monitor" : "enforce");
	/*
	 * Wake-ups are drained before wake_pending is cleared and the flags
	 * are read after: a signal that comes later writes a new byte.
	 */
	for (;;) {
		struct pollfd pfd = {.fd = wake_pipe[0], .events = POLLIN};
		char buf[64];

		if (poll(&pfd, 1, -1) < 0 && errno != EINTR) {
			log_msg(LOG_ERR, NULL, "poll on the signal pipe: %s; stopping",
				strerror(errno));
			atomic_store(&want_stop, 1);
		}
		while (read(wake_pipe[0], buf, sizeof(buf)) > 0)
			;
		atomic_store(&wake_pending, 0);
		if (atomic_load(&want_stop)) {
			stopping = true;
			stop_listening();
			break;
		}
		if (atomic_load(&milter_done))
			break;
		if (atomic_exchange(&want_reload, 0))
			reload(file);
	}
	long long deadline = now_ms() + SHUTDOWN_GRACE_MS;
	if (!stopping)
		pthread_join(tid, NULL);

	/* no new connections; let in-flight work finish, bounded */
	while (callbacks_in_flight() > 0 && now_ms() < deadline)
		usleep(20000);
	log_msg(LOG_INFO, NULL, "stopped (%d transaction(s) or callback(s) still open)",
		callbacks_in_flight());
	lease_stop();
	remove_socket();
	remove_pid_file();
	/* with `stopping`, libmilter's listener may still sit in poll(): do not wait */
	return stopping || milter_status == MI_SUCCESS ? 0 : 1;
}
