/*
 * main.c - outbound-milter, the daemon: options, configuration check and
 * load, socket setup, detaching, privilege drop, signals, smfi_main.
 *
 * Signals: libmilter runs its own thread that sigwait()s for SIGHUP,
 * SIGTERM and SIGINT and stops the filter on any of them, noticing it only
 * at its next poll timeout (about 5 s). So smfi_main runs in a second thread
 * created with the three signals blocked, while the main thread keeps them
 * unblocked with a handler. The kernel hands a process-directed signal to
 * the thread group leader (this main thread) whenever it can take it, so
 * SIGHUP becomes a reload, and SIGTERM/SIGINT stop new connections
 * (smfi_stop), wait a bounded time for the work in flight, and exit. The
 * handler only writes a byte to a pipe that the main loop reads. Should
 * libmilter's thread take a SIGTERM instead, smfi_main returns and the
 * main loop ends the same way.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
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

#define SHUTDOWN_GRACE_MS 3500

static int wake_pipe[2] = {-1, -1};
static int milter_status;

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
		syslog(is_error ? LOG_ERR : LOG_WARNING, "%s:%d: %s: %s", file, line,
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

static void on_signal(int sig)
{
	int saved = errno;
	const char *what = sig == SIGHUP ? "H" : "T";

	if (write(wake_pipe[1], what, 1) < 0) {
		/* the pipe is full: the main loop has work pending anyway */
	}
	errno = saved;
}

static void *milter_thread(void *arg)
{
	(void)arg;
	milter_status = smfi_main();
	if (write(wake_pipe[1], "Q", 1) < 0)
		log_msg(LOG_ERR, NULL, "cannot wake the main thread: %s", strerror(errno));
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
 * Stop taking connections now: a unix socket disappears at once (Postfix
 * then applies milter_default_action to new sessions); libmilter is told
 * to stop from a thread of its own so the grace period starts right away.
 */
static void stop_listening(void)
{
	struct config *cfg = config_acquire();
	pthread_t tid;
	const char *path = socket_path(cfg->socket);

	if (path != NULL)
		unlink(path);
	config_release(cfg);
	if (pthread_create(&tid, NULL, stop_thread, NULL) == 0)
		pthread_detach(tid);
}

static void reload(const char *file)
{
	struct config *old = config_acquire();
	struct config *cfg = config_load(file, report, NULL);

	if (cfg == NULL) {
		log_msg(LOG_ERR, NULL, "reload of %s refused: errors above; the running "
				       "configuration stays in force", file);
	} else {
		if (strcmp(old->socket, cfg->socket) != 0)
			log_msg(LOG_WARNING, NULL, "socket changed to %s: takes effect at restart",
				cfg->socket);
		config_install(cfg);
		log_msg(LOG_INFO, NULL, "configuration %s reloaded", file);
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
		log_msg(LOG_ERR, NULL, "chmod %s: %s", path, strerror(errno));
		return -1;
	}
	if (cfg->socket_group[0] == '\0')
		return 0;
	gr = getgrnam(cfg->socket_group); /* cppcheck-suppress getgrnamCalled ; before any thread */
	if (gr == NULL) {
		log_msg(LOG_WARNING, NULL, "socket_group %s does not exist; %s keeps its group",
			cfg->socket_group, path);
		return 0;
	}
	if (chown(path, (uid_t)-1, gr->gr_gid) != 0) {
		log_msg(LOG_ERR, NULL, "chown %s to group %s: %s", path, cfg->socket_group,
			strerror(errno));
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
			log_msg(LOG_ERR, NULL, "cannot switch to user %s: %s", cfg->user,
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
			log_msg(LOG_ERR, NULL, "cannot switch to group %s: %s", cfg->group,
				errno != 0 ? strerror(errno) : "no such group");
			return -1;
		}
		gid = gr->gr_gid;
	}
	if (geteuid() != 0) {
		if (getuid() == uid && geteuid() == uid && getgid() == gid && getegid() == gid)
			return 0;
		log_msg(LOG_ERR, NULL, "cannot switch to %s %s: not started as root",
			have_user ? "user" : "group", who);
		return -1;
	}
	if ((have_user ? initgroups(cfg->user, gid) : setgroups(1, &gid)) != 0 ||
	    setgid(gid) != 0 || (have_user && setuid(uid) != 0)) {
		log_msg(LOG_ERR, NULL, "cannot switch to %s %s: %s", have_user ? "user" : "group",
			who, strerror(errno));
		return -1;
	}
	if (getgid() != gid || getegid() != gid ||
	    (have_user && (getuid() != uid || geteuid() != uid)) ||
	    (have_user && uid != 0 && setuid(0) == 0)) {
		log_msg(LOG_ERR, NULL, "switching to %s %s did not drop root", have_user ? "user" : "group",
			who);
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
	log_msg(LOG_ERR, NULL, "redis: password_file %s cannot be read by uid %ld: %s", file,
		(long)getuid(), strerror(errno));
	return -1;
}

/* the pid file, created before privileges are dropped and before the fork */
static FILE *pid_file_open(const char *pid_file)
{
	FILE *f;

	if (pid_file[0] == '\0')
		return NULL;
	f = fopen(pid_file, "w");
	if (f == NULL)
		log_msg(LOG_ERR, NULL, "cannot write pid_file %s: %s", pid_file, strerror(errno));
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
	if (check_only)
		return cfg != NULL ? (config_free(cfg), 0) : 1;
	log_open(foreground);
	report_to_syslog = true;
	if (cfg == NULL) {
		log_msg(LOG_ERR, NULL, "configuration %s has errors; not starting", file);
		return 1;
	}
	policy_init();
	config_install(cfg);

	if (smfi_register(callbacks_desc) == MI_FAILURE ||
	    smfi_setconn(cfg->socket) == MI_FAILURE) {
		log_msg(LOG_ERR, NULL, "cannot register the filter on %s", cfg->socket);
		return 1;
	}
	/*
	 * true: remove a stale unix socket left by a crash. The socket is
	 * created closed to everyone but root, then given socket_mode and
	 * socket_group, so that no other user can slip in meanwhile.
	 */
	old_umask = umask(0177);
	opened = smfi_opensocket(true);
	umask(old_umask);
	if (opened == MI_FAILURE) {
		log_msg(LOG_ERR, NULL, "cannot open socket %s", cfg->socket);
		return 1;
	}
	if (socket_permissions(cfg) != 0)
		return 1;
	tcp_no_delay();
	callbacks_skip_data(socket_path(cfg->socket) != NULL);

	/*
	 * The handlers are in place before the starter returns: a SIGHUP or
	 * SIGTERM sent right after the start is queued in the pipe for the
	 * main loop rather than killing the process.
	 */
	if (pipe(wake_pipe) != 0) {
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
	if (drop_privileges(cfg) != 0 || check_password_access(cfg) != 0)
		return 1;
	if (!foreground && detach(pidf) != 0) {
		log_msg(LOG_ERR, NULL, "cannot detach: %s", strerror(errno));
		return 1;
	}

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

	log_msg(LOG_INFO, NULL, "started %s on %s, mode=%s", OBM_VERSION, cfg->socket,
		cfg->mode == MODE_MONITOR ? "monitor" : "enforce");
	for (;;) {
		char c;
		ssize_t n = read(wake_pipe[0], &c, 1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || c == 'Q')
			break;
		if (c == 'H')
			reload(file);
		if (c == 'T') {
			stopping = true;
			stop_listening();
			break;
		}
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
	cfg = config_acquire();
	if (!foreground && cfg->pid_file[0] != '\0')
		unlink(cfg->pid_file);
	config_release(cfg);
	/* with `stopping`, libmilter's listener may still sit in poll(): do not wait */
	return stopping || milter_status == MI_SUCCESS ? 0 : 1;
}
