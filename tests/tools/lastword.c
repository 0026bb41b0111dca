/*
 * lastword.c - a test filter that runs after outbound-milter and has the
 * last word on each message: it answers every end of message with the
 * reply named on its command line, so that tests can show what
 * outbound-milter does with a message that a later filter refuses after
 * outbound-milter itself accepted it.
 *
 *	lastword -p SOCKET -a accept|reject|tempfail [-m SENDER_SUBSTRING]
 *
 * With -m only messages whose envelope sender contains the string get the
 * reply; the others are accepted. Each end of message is logged to stdout
 * ("eom SENDER REPLY"). A unix socket is created mode 0666 (Postfix runs as
 * user postfix). SIGTERM stops it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libmilter/mfapi.h>

static const char *action = "accept";
static const char *match = "";

static sfsistat lw_mail(SMFICTX *ctx, char **argv)
{
	free(smfi_getpriv(ctx));
	smfi_setpriv(ctx, strdup(argv != NULL && argv[0] != NULL ? argv[0] : ""));
	return SMFIS_CONTINUE;
}

static sfsistat lw_eom(SMFICTX *ctx)
{
	const char *sender = smfi_getpriv(ctx);
	const char *reply = sender != NULL && strstr(sender, match) != NULL ? action : "accept";

	printf("eom %s %s\n", sender ? sender : "?", reply);
	fflush(stdout);
	if (strcmp(reply, "reject") == 0) {
		smfi_setreply(ctx, "550", "5.7.1", "Refused by the last filter");
		return SMFIS_REJECT;
	}
	if (strcmp(reply, "tempfail") == 0) {
		smfi_setreply(ctx, "451", "4.7.1", "Deferred by the last filter");
		return SMFIS_TEMPFAIL;
	}
	return SMFIS_CONTINUE;
}

static sfsistat lw_close(SMFICTX *ctx)
{
	free(smfi_getpriv(ctx));
	smfi_setpriv(ctx, NULL);
	return SMFIS_CONTINUE;
}

static struct smfiDesc lastword_desc = {
	.xxfi_name = "lastword",
	.xxfi_version = SMFI_VERSION,
	.xxfi_flags = 0,
	.xxfi_envfrom = lw_mail,
	.xxfi_eom = lw_eom,
	.xxfi_close = lw_close,
};

int main(int argc, char **argv)
{
	const char *sock = NULL;
	int ch;

	while ((ch = getopt(argc, argv, "p:a:m:")) != -1) {
		switch (ch) {
		case 'p':
			sock = optarg;
			break;
		case 'a':
			action = optarg;
			break;
		case 'm':
			match = optarg;
			break;
		default:
			sock = NULL;
			optind = argc;
			break;
		}
	}
	if (sock == NULL || (strcmp(action, "accept") != 0 && strcmp(action, "reject") != 0 &&
			     strcmp(action, "tempfail") != 0)) {
		fputs("usage: lastword -p SOCKET -a accept|reject|tempfail [-m SENDER_SUBSTRING]\n",
		      stderr);
		return 2;
	}
	umask(0);
	if (smfi_setconn((char *)sock) != MI_SUCCESS || smfi_register(lastword_desc) != MI_SUCCESS ||
	    smfi_opensocket(1) != MI_SUCCESS) {
		fprintf(stderr, "lastword: cannot listen on %s\n", sock);
		return 1;
	}
	return smfi_main() == MI_SUCCESS ? 0 : 1;
}
