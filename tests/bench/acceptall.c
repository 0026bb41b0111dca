/*
 * acceptall.c - the benchmark's reference filter: a libmilter filter that
 * accepts everything and does nothing else.
 *
 * It registers every message callback, each answering "continue", and no
 * negotiate callback: libmilter's defaults decide the protocol, as in the
 * simplest filter one can write. What it costs Postfix is the price of the
 * milter protocol itself, the floor outbound-milter is compared with.
 *
 *	acceptall -p SOCKET [-T TIMEOUT_S]
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

static sfsistat aa_connect(SMFICTX *ctx, char *host, _SOCK_ADDR *addr)
{
	(void)ctx;
	(void)host;
	(void)addr;
	return SMFIS_CONTINUE;
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
	(void)ctx;
	(void)name;
	(void)value;
	return SMFIS_CONTINUE;
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

static struct smfiDesc acceptall_desc = {
	.xxfi_name = "acceptall",
	.xxfi_version = SMFI_VERSION,
	.xxfi_flags = 0,
	.xxfi_connect = aa_connect,
	.xxfi_helo = aa_helo,
	.xxfi_envfrom = aa_args,
	.xxfi_envrcpt = aa_args,
	.xxfi_header = aa_header,
	.xxfi_eoh = aa_step,
	.xxfi_body = aa_body,
	.xxfi_eom = aa_step,
	.xxfi_abort = aa_step,
	.xxfi_close = aa_step,
	.xxfi_data = aa_step,
};

int main(int argc, char **argv)
{
	const char *sock = NULL;
	int ch, timeout = 60;

	while ((ch = getopt(argc, argv, "p:T:")) != -1) {
		switch (ch) {
		case 'p':
			sock = optarg;
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
		fputs("usage: acceptall -p SOCKET [-T TIMEOUT_S]\n", stderr);
		return 2;
	}
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
