/*
 * mload.c - milter protocol load generator for the benchmark.
 *
 * Plays the MTA side of the Sendmail milter protocol (version 6, the one
 * Postfix speaks) against one filter socket, from N concurrent connections,
 * and measures messages per second and the latency of each message.
 *
 * Each connection negotiates like Postfix (SMFIC_OPTNEG offering every
 * action and protocol step), honours what the filter asks for (skipped
 * steps, no-reply steps, its macro lists), then sends per message:
 * MAIL, RCPT x R, DATA, a few headers, EOH, one body chunk and the end of
 * the body, reading every SMFIR_* reply the protocol requires. Commands that
 * need no reply are queued and go out with the next one that does, in one
 * write, as a good MTA does. Several messages may share a connection (-m);
 * the default, one message per connection, is what smtp-source and a
 * submission client do.
 *
 * The latency of a message runs from its first byte (the connection set-up
 * included when it opens the connection) to the final reply to its end of
 * body. Output: one line of key=value pairs on stdout; rt_per_msg is the
 * number of times per message the MTA side had to wait for a reply.
 *
 *	mload -s SOCKET [-c CONNS] [-n MESSAGES] [-r RCPTS] [-m PER_CONN]
 *	      [-N NET,NET,...] [-S SENDERS] [-O SENDER_OFFSET] [-b BODY_BYTES]
 *	      [-d DAEMON_NAME] [-t TIMEOUT_S]
 *	SOCKET is unix:PATH (or a path) or inet:PORT@HOST.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <libmilter/mfdef.h>

/* macro stages, in the order of SMFIR_SETSYMLIST indexes (SMFIM_*) */
enum { ST_CONNECT, ST_HELO, ST_ENVFROM, ST_ENVRCPT, ST_DATA, ST_EOM, ST_EOH, ST_COUNT };

/* what Postfix sends when the filter names no list (its milter_*_macros) */
static const char *default_macros[ST_COUNT] = {
	[ST_CONNECT] = "j {daemon_name} {daemon_addr} v _",
	[ST_HELO] = "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}",
	[ST_ENVFROM] = "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}",
	[ST_ENVRCPT] = "{rcpt_addr} {rcpt_host} {rcpt_mailer}",
	[ST_DATA] = "i",
	[ST_EOM] = "i",
	[ST_EOH] = "i",
};

static const char stage_cmd[ST_COUNT] = {
	[ST_CONNECT] = SMFIC_CONNECT, [ST_HELO] = SMFIC_HELO, [ST_ENVFROM] = SMFIC_MAIL,
	[ST_ENVRCPT] = SMFIC_RCPT, [ST_DATA] = SMFIC_DATA, [ST_EOM] = SMFIC_BODYEOB,
	[ST_EOH] = SMFIC_EOH,
};

struct options {
	const char *socket;
	int conns;
	long messages;
	int rcpts;
	int per_conn;
	char **nets;
	int nnets;
	long senders;
	long sender_offset;
	int body_bytes;
	const char *daemon_name;
	int timeout;
};

static struct options opt = {
	.conns = 8,
	.messages = 1000,
	.rcpts = 1,
	.per_conn = 1,
	.senders = 1000,
	.body_bytes = 512,
	.daemon_name = "ORIGINATING",
	.timeout = 60,
};

static atomic_long next_message;
static atomic_int failed;
/* connections that could not be made or broke (write error, EOF, read
 * error): never a refusal by the filter, counted apart in the output */
static atomic_long broken;

/* what one message's current values are, for the macros */
struct msgvals {
	char qid[24];
	char sender[64];
	char rcpt[96];
};

struct counts {
	long messages;	/* messages that reached a final reply */
	long accepted;	/* final continue/accept at end of body */
	long refused;	/* rejected, tempfailed or discarded at some point */
	long rcpt_refused;	/* recipients refused (tempfail/reject at RCPT) */
	long held;	/* quarantined (SMFIR_QUARANTINE) */
	long changes;	/* header and other modification replies */
	long conns;	/* connections opened */
	long waits;	/* times the MTA side waited for a reply (round trips) */
};

struct conn {
	int fd;
	unsigned long pflags;	/* protocol steps the filter negotiated */
	char *macros[ST_COUNT];	/* macro names to send per stage, space separated */
	char *out;	/* queued commands not yet written */
	size_t outlen, outcap;
	unsigned char in[65536 + 16];
	size_t inlen, inoff;
	int used;	/* messages sent on this connection */
};

struct worker {
	pthread_t tid;
	int id;
	long *lat_us;	/* one latency per message, microseconds */
	long nlat, caplat;
	struct counts c;
	char body[1 << 16];
	int bodylen;
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("mload: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

/* a worker's failure: reported once, the run ends with status 1 */
static void fail(const char *fmt, ...)
{
	va_list ap;

	if (atomic_fetch_add(&failed, 1) != 0)
		return;
	va_start(ap, fmt);
	fputs("mload: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static long now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000L + ts.tv_nsec / 1000;
}

/* ---- output queue ---- */

static void out_reserve(struct conn *c, size_t n)
{
	if (c->outlen + n <= c->outcap)
		return;
	while (c->outlen + n > c->outcap)
		c->outcap = c->outcap ? 2 * c->outcap : 8192;
	c->out = realloc(c->out, c->outcap);
	if (c->out == NULL)
		die("out of memory");
}

/* start a command: length placeholder and command byte; returns its offset */
static size_t cmd_begin(struct conn *c, char cmd)
{
	size_t at = c->outlen;

	out_reserve(c, 5);
	c->outlen += 4;
	c->out[c->outlen++] = cmd;
	return at;
}

static void cmd_add(struct conn *c, const void *p, size_t n)
{
	out_reserve(c, n);
	memcpy(c->out + c->outlen, p, n);
	c->outlen += n;
}

static void cmd_str(struct conn *c, const char *s)
{
	cmd_add(c, s, strlen(s) + 1);
}

static void cmd_end(struct conn *c, size_t at)
{
	uint32_t len = htonl((uint32_t)(c->outlen - at - 4));

	memcpy(c->out + at, &len, 4);
}

static int out_flush(struct conn *c)
{
	size_t off = 0;

	while (off < c->outlen) {
		ssize_t w = write(c->fd, c->out + off, c->outlen - off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			atomic_fetch_add(&broken, 1);
			fail("write: %s", strerror(errno));
			return -1;
		}
		off += (size_t)w;
	}
	c->outlen = 0;
	return 0;
}

/* ---- replies ---- */

/* read one reply packet: *cmd, data in *data (len *dlen); 0 or -1 */
static int reply_read(struct conn *c, char *cmd, unsigned char **data, size_t *dlen)
{
	for (;;) {
		size_t avail = c->inlen - c->inoff;

		if (avail >= 4) {
			uint32_t len;

			memcpy(&len, c->in + c->inoff, 4);
			len = ntohl(len);
			if (len < 1 || len > sizeof(c->in) - 4) {
				fail("bad reply length %u", len);
				return -1;
			}
			if (avail >= 4 + (size_t)len) {
				*cmd = (char)c->in[c->inoff + 4];
				*data = c->in + c->inoff + 5;
				*dlen = len - 1;
				c->inoff += 4 + len;
				return 0;
			}
		}
		if (c->inoff > 0) {
			memmove(c->in, c->in + c->inoff, avail);
			c->inlen = avail;
			c->inoff = 0;
		}
		ssize_t r = read(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			atomic_fetch_add(&broken, 1);
			fail("read: %s", r == 0 ? "connection closed by the filter" : strerror(errno));
			return -1;
		}
		c->inlen += (size_t)r;
	}
}

enum verdict { V_CONTINUE, V_ACCEPT, V_REFUSE, V_SKIP, V_ERROR };

/* flush the queue and read replies up to the one that answers the last
 * command; modification replies (end of body) are counted on the way */
static enum verdict reply_wait(struct conn *c, struct counts *cnt)
{
	char cmd;
	unsigned char *data;
	size_t dlen;

	if (out_flush(c) != 0)
		return V_ERROR;
	cnt->waits++;
	for (;;) {
		if (reply_read(c, &cmd, &data, &dlen) != 0)
			return V_ERROR;
		switch (cmd) {
		case SMFIR_CONTINUE:
			return V_CONTINUE;
		case SMFIR_ACCEPT:
			return V_ACCEPT;
		case SMFIR_SKIP:
			return V_SKIP;
		case SMFIR_REJECT:
		case SMFIR_TEMPFAIL:
		case SMFIR_DISCARD:
		case SMFIR_REPLYCODE:
		case SMFIR_SHUTDOWN:
		case SMFIR_CONN_FAIL:
			return V_REFUSE;
		case SMFIR_PROGRESS:
			break;
		case SMFIR_QUARANTINE:
			cnt->held++;
			cnt->changes++;
			break;
		case SMFIR_ADDHEADER:
		case SMFIR_INSHEADER:
		case SMFIR_CHGHEADER:
		case SMFIR_ADDRCPT:
		case SMFIR_ADDRCPT_PAR:
		case SMFIR_DELRCPT:
		case SMFIR_CHGFROM:
		case SMFIR_REPLBODY:
			cnt->changes++;
			break;
		default:
			fail("unexpected reply '%c'", cmd);
			return V_ERROR;
		}
	}
}

/* ---- macros ---- */

static const char *macro_value(const char *name, const struct msgvals *v, char *buf, size_t n)
{
	if (strcmp(name, "j") == 0)
		return "mta.bench.example";
	if (strcmp(name, "{daemon_name}") == 0)
		return opt.daemon_name;
	if (strcmp(name, "{daemon_addr}") == 0 || strcmp(name, "{rcpt_host}") == 0 ||
	    strcmp(name, "{mail_host}") == 0)
		return "127.0.0.1";
	if (strcmp(name, "v") == 0)
		return "Postfix 3.7";
	if (strcmp(name, "_") == 0)
		return "client.bench.example [127.0.0.1]";
	if (strcmp(name, "{client_addr}") == 0)
		return "127.0.0.1";
	if (strcmp(name, "{client_name}") == 0)
		return "client.bench.example";
	if (strcmp(name, "{mail_mailer}") == 0 || strcmp(name, "{rcpt_mailer}") == 0)
		return "smtp";
	if (v == NULL)
		return NULL;
	if (strcmp(name, "i") == 0)
		return v->qid;
	if (strcmp(name, "{mail_addr}") == 0)
		return v->sender;
	if (strcmp(name, "{rcpt_addr}") == 0) {
		snprintf(buf, n, "%s", v->rcpt);
		return buf;
	}
	return NULL;	/* undefined: not sent, like Postfix ({auth_*} without SASL) */
}

/* queue the SMFIC_MACRO packet of one stage, if any value is defined */
static void macros_send(struct conn *c, int stage, const struct msgvals *v)
{
	const char *list = c->macros[stage];
	char name[64], buf[128];
	size_t at = 0;
	int any = 0;

	if (list == NULL)
		return;
	for (const char *p = list; *p != '\0';) {
		size_t n;
		const char *val;

		while (*p == ' ')
			p++;
		n = strcspn(p, " ");
		if (n == 0)
			break;
		if (n < sizeof(name)) {
			memcpy(name, p, n);
			name[n] = '\0';
			val = macro_value(name, v, buf, sizeof(buf));
			if (val != NULL) {
				if (!any) {
					at = cmd_begin(c, SMFIC_MACRO);
					cmd_add(c, &stage_cmd[stage], 1);
					any = 1;
				}
				cmd_str(c, name);
				cmd_str(c, val);
			}
		}
		p += n;
	}
	if (any)
		cmd_end(c, at);
}

/* ---- connection ---- */

static int sock_open(void)
{
	const char *s = opt.socket;
	int fd;

	if (strncmp(s, "inet:", 5) == 0) {
		struct sockaddr_in sin = {.sin_family = AF_INET};
		const char *at = strchr(s, '@');
		int one = 1;

		sin.sin_port = htons((uint16_t)atoi(s + 5));
		if (inet_pton(AF_INET, at ? at + 1 : "127.0.0.1", &sin.sin_addr) != 1)
			die("bad inet socket %s", s);
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0)
			return -1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
			close(fd);
			return -1;
		}
	} else {
		struct sockaddr_un sun = {.sun_family = AF_UNIX};
		const char *path = s;

		if (strncmp(s, "unix:", 5) == 0)
			path = s + 5;
		else if (strncmp(s, "local:", 6) == 0)
			path = s + 6;
		if (strlen(path) >= sizeof(sun.sun_path))
			die("socket path too long: %s", path);
		strcpy(sun.sun_path, path);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (fd < 0)
			return -1;
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
			close(fd);
			return -1;
		}
	}
	struct timeval tv = {.tv_sec = opt.timeout};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

static void conn_reset(struct conn *c)
{
	for (int i = 0; i < ST_COUNT; i++) {
		free(c->macros[i]);
		c->macros[i] = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->outlen = 0;
	c->inlen = c->inoff = 0;
	c->used = 0;
}

static uint32_t get32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return ntohl(v);
}

/* open, negotiate, send the connect and HELO steps; 0 or -1 */
static int conn_open(struct conn *c, struct counts *cnt)
{
	uint32_t v[3] = {htonl(SMFI_PROT_VERSION), htonl(SMFI_CURR_ACTS), htonl(SMFI_CURR_PROT)};
	char cmd;
	unsigned char *data;
	size_t dlen, at;

	conn_reset(c);
	c->fd = sock_open();
	if (c->fd < 0) {
		atomic_fetch_add(&broken, 1);
		fail("connect %s: %s", opt.socket, strerror(errno));
		return -1;
	}
	cnt->conns++;
	cnt->waits++;
	at = cmd_begin(c, SMFIC_OPTNEG);
	cmd_add(c, v, sizeof(v));
	cmd_end(c, at);
	if (out_flush(c) != 0 || reply_read(c, &cmd, &data, &dlen) != 0)
		return -1;
	if (cmd != SMFIC_OPTNEG || dlen < MILTER_OPTLEN) {
		fail("bad option negotiation reply '%c' (%zu bytes)", cmd, dlen);
		return -1;
	}
	c->pflags = get32(data + 8);
	for (int i = 0; i < ST_COUNT; i++)
		c->macros[i] = strdup(default_macros[i]);
	/* the filter's own macro lists: (stage, "names") pairs */
	for (size_t off = MILTER_OPTLEN; off + 4 < dlen;) {
		uint32_t stage = get32(data + off);
		const char *names = (const char *)data + off + 4;
		size_t n = strnlen(names, dlen - off - 4);

		if (stage < ST_COUNT) {
			free(c->macros[stage]);
			c->macros[stage] = strndup(names, n);
		}
		off += 4 + n + 1;
	}

	if (!(c->pflags & SMFIP_NOCONNECT)) {
		static const char host[] = "client.bench.example";
		static const char addr[] = "127.0.0.1";
		uint16_t port = htons(40000);

		macros_send(c, ST_CONNECT, NULL);
		at = cmd_begin(c, SMFIC_CONNECT);
		cmd_str(c, host);
		cmd_add(c, "4", 1);
		cmd_add(c, &port, 2);
		cmd_str(c, addr);
		cmd_end(c, at);
		if (!(c->pflags & SMFIP_NR_CONN) && reply_wait(c, cnt) != V_CONTINUE) {
			fail("connect step not answered with continue");
			return -1;
		}
	}
	if (!(c->pflags & SMFIP_NOHELO)) {
		macros_send(c, ST_HELO, NULL);
		at = cmd_begin(c, SMFIC_HELO);
		cmd_str(c, "client.bench.example");
		cmd_end(c, at);
		if (!(c->pflags & SMFIP_NR_HELO) && reply_wait(c, cnt) != V_CONTINUE) {
			fail("HELO step not answered with continue");
			return -1;
		}
	}
	return 0;
}

static void conn_close(struct conn *c)
{
	if (c->fd >= 0) {
		size_t at = cmd_begin(c, SMFIC_QUIT);

		cmd_end(c, at);
		out_flush(c);
	}
	conn_reset(c);
}

/* ---- one message ---- */

/* queue a step and, unless the filter said it needs no reply, wait for it */
static enum verdict step(struct conn *c, struct counts *cnt, unsigned long nr)
{
	if (c->pflags & nr)
		return V_CONTINUE;
	return reply_wait(c, cnt);
}

/* returns -1 on a protocol or I/O error */
static int message_send(struct worker *w, struct conn *c, long k)
{
	struct msgvals v;
	struct counts *cnt = &w->c;
	enum verdict r;
	size_t at;
	int accepted_rcpts = 0;
	char buf[160];
	long s = opt.sender_offset + k % opt.senders;

	snprintf(v.qid, sizeof(v.qid), "%lX", 0x100000L + k);
	snprintf(v.sender, sizeof(v.sender), "sender%ld@example.com", s);

	if (!(c->pflags & SMFIP_NOMAIL)) {
		macros_send(c, ST_ENVFROM, &v);
		at = cmd_begin(c, SMFIC_MAIL);
		snprintf(buf, sizeof(buf), "<%s>", v.sender);
		cmd_str(c, buf);
		cmd_str(c, "SIZE=1000");
		cmd_end(c, at);
		r = step(c, cnt, SMFIP_NR_MAIL);
		if (r == V_ERROR)
			return -1;
		if (r != V_CONTINUE)
			goto done_early;
	}
	for (int j = 0; j < opt.rcpts; j++) {
		snprintf(v.rcpt, sizeof(v.rcpt), "user%ld.%d@%s", k % 100000, j,
			 opt.nets[j % opt.nnets]);
		if (c->pflags & SMFIP_NORCPT) {
			accepted_rcpts++;
			continue;
		}
		macros_send(c, ST_ENVRCPT, &v);
		at = cmd_begin(c, SMFIC_RCPT);
		snprintf(buf, sizeof(buf), "<%s>", v.rcpt);
		cmd_str(c, buf);
		cmd_end(c, at);
		r = step(c, cnt, SMFIP_NR_RCPT);
		if (r == V_ERROR)
			return -1;
		if (r == V_REFUSE)
			cnt->rcpt_refused++;
		else
			accepted_rcpts++;
	}
	if (accepted_rcpts == 0) {
		/* no recipient left: the MTA ends the transaction */
		at = cmd_begin(c, SMFIC_ABORT);
		cmd_end(c, at);
		cnt->refused++;
		cnt->messages++;
		return 0;
	}
	if (!(c->pflags & SMFIP_NODATA)) {
		macros_send(c, ST_DATA, &v);
		at = cmd_begin(c, SMFIC_DATA);
		cmd_end(c, at);
		r = step(c, cnt, SMFIP_NR_DATA);
		if (r == V_ERROR)
			return -1;
		if (r != V_CONTINUE)
			goto done_early;
	}
	if (!(c->pflags & SMFIP_NOHDRS)) {
		const char *hdr[][2] = {
			{"From", NULL}, {"To", NULL}, {"Subject", "benchmark message"},
			{"Date", "Mon, 30 Nov 2026 12:00:00 +0000"}, {"Message-ID", NULL},
		};
		char from[96], to[112], mid[64];
		int lead = (c->pflags & SMFIP_HDR_LEADSPC) != 0;

		snprintf(from, sizeof(from), "%sSender <%s>", lead ? " " : "", v.sender);
		snprintf(to, sizeof(to), "%s<%s>", lead ? " " : "", v.rcpt);
		snprintf(mid, sizeof(mid), "%s<%s.bench@example.com>", lead ? " " : "", v.qid);
		hdr[0][1] = from;
		hdr[1][1] = to;
		hdr[4][1] = mid;
		for (size_t i = 0; i < sizeof(hdr) / sizeof(hdr[0]); i++) {
			at = cmd_begin(c, SMFIC_HEADER);
			cmd_str(c, hdr[i][0]);
			if (lead && hdr[i][1][0] != ' ') {
				cmd_add(c, " ", 1);
			}
			cmd_str(c, hdr[i][1]);
			cmd_end(c, at);
			r = step(c, cnt, SMFIP_NR_HDR);
			if (r == V_ERROR)
				return -1;
			if (r == V_SKIP)
				break;
			if (r != V_CONTINUE)
				goto done_early;
		}
	}
	if (!(c->pflags & SMFIP_NOEOH)) {
		macros_send(c, ST_EOH, &v);
		at = cmd_begin(c, SMFIC_EOH);
		cmd_end(c, at);
		r = step(c, cnt, SMFIP_NR_EOH);
		if (r == V_ERROR)
			return -1;
		if (r != V_CONTINUE)
			goto done_early;
	}
	if (!(c->pflags & SMFIP_NOBODY) && w->bodylen > 0) {
		at = cmd_begin(c, SMFIC_BODY);
		cmd_add(c, w->body, (size_t)w->bodylen);
		cmd_end(c, at);
		r = step(c, cnt, SMFIP_NR_BODY);
		if (r == V_ERROR)
			return -1;
		if (r == V_REFUSE || r == V_ACCEPT)
			goto done_early;
	}
	macros_send(c, ST_EOM, &v);
	at = cmd_begin(c, SMFIC_BODYEOB);
	cmd_end(c, at);
	r = reply_wait(c, cnt);
	if (r == V_ERROR)
		return -1;
	cnt->messages++;
	if (r == V_REFUSE)
		cnt->refused++;
	else
		cnt->accepted++;
	return 0;

done_early:
	/* accepted or refused before the end of the body: the MTA tells the
	 * filter the transaction is over */
	at = cmd_begin(c, SMFIC_ABORT);
	cmd_end(c, at);
	cnt->messages++;
	if (r == V_REFUSE)
		cnt->refused++;
	else
		cnt->accepted++;
	return 0;
}

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	struct conn c = {.fd = -1};
	long k;

	while (atomic_load(&failed) == 0 &&
	       (k = atomic_fetch_add(&next_message, 1)) < opt.messages) {
		long t0 = now_us();

		if (c.fd < 0 || c.used >= opt.per_conn) {
			if (c.fd >= 0)
				conn_close(&c);
			if (conn_open(&c, &w->c) != 0)
				break;
		}
		if (message_send(w, &c, k) != 0)
			break;
		c.used++;
		if (c.used >= opt.per_conn)
			conn_close(&c);	/* the QUIT belongs to this message */
		else if (out_flush(&c) != 0)
			break;
		if (w->nlat == w->caplat) {
			w->caplat = w->caplat ? 2 * w->caplat : 1024;
			w->lat_us = realloc(w->lat_us, (size_t)w->caplat * sizeof(long));
			if (w->lat_us == NULL)
				die("out of memory");
		}
		w->lat_us[w->nlat++] = now_us() - t0;
	}
	conn_close(&c);
	free(c.out);
	return NULL;
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

static double pct(const long *v, long n, double p)
{
	long i;

	if (n == 0)
		return 0;
	i = (long)(p * (double)(n - 1) + 0.5);
	return (double)v[i] / 1000.0;
}

static void usage(void)
{
	fputs("usage: mload -s SOCKET [-c CONNS] [-n MESSAGES] [-r RCPTS] [-m PER_CONN]\n"
	      "             [-N NET,NET,...] [-S SENDERS] [-O SENDER_OFFSET] [-b BODY_BYTES]\n"
	      "             [-d DAEMON_NAME] [-t TIMEOUT_S]\n", stderr);
	exit(2);
}

static void nets_parse(char *list)
{
	char *save = NULL;

	opt.nnets = 0;
	for (char *p = strtok_r(list, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
		opt.nets = realloc(opt.nets, (size_t)(opt.nnets + 1) * sizeof(char *));
		if (opt.nets == NULL)
			die("out of memory");
		opt.nets[opt.nnets++] = p;
	}
	if (opt.nnets == 0)
		usage();
}

int main(int argc, char **argv)
{
	static char default_nets[] = "gmail.com,yahoo.com,outlook.com,example.org,example.net";
	struct worker *w;
	struct counts tot = {0};
	long *all, n = 0, t0, t1;
	int ch;

	while ((ch = getopt(argc, argv, "s:c:n:r:m:N:S:O:b:d:t:")) != -1) {
		switch (ch) {
		case 's': opt.socket = optarg; break;
		case 'c': opt.conns = atoi(optarg); break;
		case 'n': opt.messages = atol(optarg); break;
		case 'r': opt.rcpts = atoi(optarg); break;
		case 'm': opt.per_conn = atoi(optarg); break;
		case 'N': nets_parse(optarg); break;
		case 'S': opt.senders = atol(optarg); break;
		case 'O': opt.sender_offset = atol(optarg); break;
		case 'b': opt.body_bytes = atoi(optarg); break;
		case 'd': opt.daemon_name = optarg; break;
		case 't': opt.timeout = atoi(optarg); break;
		default: usage();
		}
	}
	if (opt.socket == NULL || opt.conns < 1 || opt.messages < 0 || opt.rcpts < 1 ||
	    opt.per_conn < 1 || opt.senders < 1 || opt.body_bytes < 0 ||
	    opt.body_bytes > 60000 || opt.timeout < 1)
		usage();
	if (opt.nets == NULL)
		nets_parse(default_nets);

	w = calloc((size_t)opt.conns, sizeof(*w));
	if (w == NULL)
		die("out of memory");
	t0 = now_us();
	for (int i = 0; i < opt.conns; i++) {
		w[i].id = i;
		for (int j = 0; j < opt.body_bytes; j++)
			w[i].body[j] = (j % 72 == 71) ? '\n' : (char)('a' + j % 26);
		w[i].bodylen = opt.body_bytes;
		if (pthread_create(&w[i].tid, NULL, worker_run, &w[i]) != 0)
			die("pthread_create failed");
	}
	for (int i = 0; i < opt.conns; i++)
		pthread_join(w[i].tid, NULL);
	t1 = now_us();

	all = malloc((size_t)(opt.messages + 1) * sizeof(long));
	if (all == NULL)
		die("out of memory");
	for (int i = 0; i < opt.conns; i++) {
		memcpy(all + n, w[i].lat_us, (size_t)w[i].nlat * sizeof(long));
		n += w[i].nlat;
		tot.messages += w[i].c.messages;
		tot.accepted += w[i].c.accepted;
		tot.refused += w[i].c.refused;
		tot.rcpt_refused += w[i].c.rcpt_refused;
		tot.held += w[i].c.held;
		tot.changes += w[i].c.changes;
		tot.conns += w[i].c.conns;
		tot.waits += w[i].c.waits;
		free(w[i].lat_us);
	}
	qsort(all, (size_t)n, sizeof(long), cmp_long);
	double secs = (double)(t1 - t0) / 1e6;
	printf("msgs=%ld secs=%.3f rate=%.1f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f "
	       "accepted=%ld refused=%ld rcpt_refused=%ld held=%ld changes=%ld conns=%ld "
	       "rt_per_msg=%.2f broken=%ld\n",
	       n, secs, secs > 0 ? (double)n / secs : 0.0, pct(all, n, 0.50), pct(all, n, 0.99),
	       n ? (double)all[n - 1] / 1000.0 : 0.0, tot.accepted, tot.refused,
	       tot.rcpt_refused, tot.held, tot.changes, tot.conns,
	       n ? (double)tot.waits / (double)n : 0.0, atomic_load(&broken));
	free(all);
	free(w);
	free(opt.nets);
	return atomic_load(&failed) ? 1 : 0;
}
