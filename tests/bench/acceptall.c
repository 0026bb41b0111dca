/*
 * acceptall.c - the benchmark's reference filter: a libmilter filter that
 * accepts everything and does nothing else.
 *
 * It registers every message callback, each answering "continue", and no
 * negotiate callback: libmilter's defaults decide the protocol, as in the
 * simplest filter one can write. What it costs Postfix is the price of the
 * milter protocol itself, the floor outbound-milter is compared with.
 *
 * With -n it negotiates the protocol shape outbound-milter asks for: the
 * steps it skips (SMFIP_NOHELO, NOEOH, NOBODY, NOUNKNOWN, NODATA) and the
 * no-reply steps (SMFIP_NR_CONN, NR_MAIL, NR_HDR, answered with
 * SMFIS_NOREPLY): the same do-nothing filter with fewer exchanges, to show
 * what that shape alone does to Postfix on a unix and on a TCP socket.
 *
 * With -d as well it keeps the DATA step (no SMFIP_NODATA).
 *
 *	acceptall -p SOCKET [-n [-d]] [-T TIMEOUT_S]
 *	SOCKET is unix:PATH or inet:PORT@HOST (libmilter syntax). A unix
 *	socket is created mode 0666 so that Postfix (user postfix) can use it.
 *	SIGTERM or SIGINT stops it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libmilter/mfapi.h>

static const unsigned long no_reply = SMFIP_NR_CONN | SMFIP_NR_MAIL | SMFIP_NR_HDR;
static const unsigned long skip = SMFIP_NOHELO | SMFIP_NOEOH | SMFIP_NOBODY | SMFIP_NOUNKNOWN |
				  SMFIP_NODATA;
static int want_no_reply;
static int keep_data;

/* the answer to a step: none when its no-reply flag was negotiated */
static sfsistat aa_answer(SMFICTX *ctx, unsigned long step)
{
	unsigned long *nr = smfi_getpriv(ctx);

	return nr != NULL && (*nr & step) ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

static sfsistat aa_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1,
			     unsigned long f2, unsigned long f3, unsigned long *pf0,
			     unsigned long *pf1, unsigned long *pf2, unsigned long *pf3)
{
	unsigned long *nr = malloc(sizeof(*nr));

	(void)f0;
	(void)f2;
	(void)f3;
	if (nr == NULL)
		return SMFIS_REJECT;	/* libmilter: give up on this connection */
	*nr = f1 & no_reply;
	smfi_setpriv(ctx, nr);
	*pf0 = 0;
	*pf1 = *nr | (f1 & skip & (keep_data ? ~(unsigned long)SMFIP_NODATA : ~0UL));
	*pf2 = 0;
	*pf3 = 0;
	return SMFIS_CONTINUE;
}

static sfsistat aa_connect(SMFICTX *ctx, char *host, _SOCK_ADDR *addr)
{
	(void)host;
	(void)addr;
	return aa_answer(ctx, SMFIP_NR_CONN);
}

static sfsistat aa_mail(SMFICTX *ctx, char **argv)
{
	(void)argv;
	return aa_answer(ctx, SMFIP_NR_MAIL);
}

static sfsistat aa_helo(SMFICTX *ctx, char *helo)
{
	(void)ctx;
	(void)helo;
	return SMFIS_CONTINUE;
}

static sfsistat aa_args(SMFICTX *ctx, char **argv)
{
	(void)ctx;
	(void)argv;
	return SMFIS_CONTINUE;
}

static sfsistat aa_header(SMFICTX *ctx, char *name, char *value)
{
	(void)name;
	(void)value;
	return aa_answer(ctx, SMFIP_NR_HDR);
}

static sfsistat aa_body(SMFICTX *ctx, unsigned char *chunk, size_t len)
{
	(void)ctx;
	(void)chunk;
	(void)len;
	return SMFIS_CONTINUE;
}

static sfsistat aa_step(SMFICTX *ctx)
{
	(void)ctx;
	return SMFIS_CONTINUE;
}

static sfsistat aa_close(SMFICTX *ctx)
{
	free(smfi_getpriv(ctx));
	smfi_setpriv(ctx, NULL);
	return SMFIS_CONTINUE;
}

static struct smfiDesc acceptall_desc = {
	.xxfi_name = "acceptall",
	.xxfi_version = SMFI_VERSION,
	.xxfi_flags = 0,
	.xxfi_connect = aa_connect,
	.xxfi_helo = aa_helo,
	.xxfi_envfrom = aa_mail,
	.xxfi_envrcpt = aa_args,
	.xxfi_header = aa_header,
	.xxfi_eoh = aa_step,
	.xxfi_body = aa_body,
	.xxfi_eom = aa_step,
	.xxfi_abort = aa_step,
	.xxfi_close = aa_close,
	.xxfi_data = aa_step,
};

int main(int argc, char **argv)
{
	const char *sock = NULL;
	int ch, timeout = 60;

	while ((ch = getopt(argc, argv, "p:ndT:")) != -1) {
		switch (ch) {
		case 'p':
			sock = optarg;
			break;
		case 'n':
			want_no_reply = 1;
			break;
		case 'd':
			keep_data = 1;
			break;
		case 'T':
			timeout = atoi(optarg);
			break;
		default:
			sock = NULL;
			optind = argc;
			break;
		}
	}
	if (sock == NULL) {
		fputs("usage: acceptall -p SOCKET [-n [-d]] [-T TIMEOUT_S]\n", stderr);
		return 2;
	}
	if (want_no_reply)
		acceptall_desc.xxfi_negotiate = aa_negotiate;
	umask(0);
	if (smfi_setconn((char *)sock) != MI_SUCCESS || smfi_settimeout(timeout) != MI_SUCCESS ||
	    smfi_setbacklog(128) != MI_SUCCESS || smfi_register(acceptall_desc) != MI_SUCCESS) {
		fprintf(stderr, "acceptall: cannot set up libmilter for %s\n", sock);
		return 1;
	}
	if (smfi_opensocket(1) != MI_SUCCESS) {
		fprintf(stderr, "acceptall: cannot listen on %s\n", sock);
		return 1;
	}
	return smfi_main() == MI_SUCCESS ? 0 : 1;
}
