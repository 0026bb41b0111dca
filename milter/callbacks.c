/*
 * callbacks.c - the xxfi_* functions. They only translate: libmilter
 * arguments and macros in, policy calls, SMTP replies and header changes
 * out. Connection state lives in the libmilter private pointer.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "callbacks.h"
#include "log.h"
#include "policy.h"

static atomic_int busy_callbacks;
static bool skip_data = true;

void callbacks_skip_data(bool on)
{
	skip_data = on;
}

static atomic_int open_transactions;

int callbacks_in_flight(void)
{
	return atomic_load(&busy_callbacks) + atomic_load(&open_transactions);
}

#define ENTER() atomic_fetch_add(&busy_callbacks, 1)
#define LEAVE(v)                                       \
	do {                                           \
		atomic_fetch_sub(&busy_callbacks, 1);  \
		return (v);                            \
	} while (0)

static const char *macro(SMFICTX *ctx, const char *name)
{
	const char *v = smfi_getsymval(ctx, (char *)name);
	return v ? v : "";
}

/* libmilter's private data of one connection */
struct session {
	unsigned long no_reply;  /* SMFIP_NR_* steps negotiated: they answer SMFIS_NOREPLY */
	struct conn_state conn;
};

/* the connection's session, created when missing (an unknown client until connect) */
static struct session *session_get(SMFICTX *ctx)
{
	struct session *s = smfi_getpriv(ctx);

	if (s == NULL) {
		struct ipaddr none = {0};

		s = calloc(1, sizeof(*s));
		if (s == NULL)
			return NULL;
		policy_conn_init(&s->conn, &none, macro(ctx, "{daemon_name}"));
		smfi_setpriv(ctx, s);
	}
	return s;
}

/* the connection state, or NULL before any */
static struct conn_state *conn_of(SMFICTX *ctx)
{
	struct session *s = smfi_getpriv(ctx);
	return s ? &s->conn : NULL;
}

/* a step negotiated without reply answers SMFIS_NOREPLY whatever happened */
static sfsistat answer(SMFICTX *ctx, unsigned long step, sfsistat v)
{
	struct session *s = smfi_getpriv(ctx);
	return s != NULL && (s->no_reply & step) ? SMFIS_NOREPLY : v;
}

/* end the transaction in progress without delivery: reservations go back */
static void transaction_end(struct conn_state *c)
{
	if (c->msg == NULL)
		return;
	policy_abort(c);
	atomic_fetch_sub(&open_transactions, 1);
}

/* smfi_setreply text: '%' must be doubled */
static void set_reply(SMFICTX *ctx, const char *rcode, const char *xcode, const char *text)
{
	char buf[2 * REPLY_MAX];
	size_t j = 0;

	for (size_t i = 0; text[i] != '\0' && j + 2 < sizeof(buf); i++) {
		if (text[i] == '%')
			buf[j++] = '%';
		buf[j++] = text[i];
	}
	buf[j] = '\0';
	if (smfi_setreply(ctx, (char *)rcode, (char *)xcode, buf) != MI_SUCCESS)
		log_msg(LOG_WARNING, macro(ctx, "i"), "could not set reply %s %s", rcode, xcode);
}

static sfsistat cb_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1,
			     unsigned long f2, unsigned long f3, unsigned long *pf0,
			     unsigned long *pf1, unsigned long *pf2, unsigned long *pf3)
{
	/* steps we never look at; DATA only on a unix socket (callbacks.h) */
	const unsigned long skip = SMFIP_NOHELO | SMFIP_NOEOH | SMFIP_NOBODY |
				   SMFIP_NOUNKNOWN | (skip_data ? SMFIP_NODATA : 0);
	/* connect, MAIL FROM and headers never change the outcome: no reply needed */
	const unsigned long no_reply = SMFIP_NR_CONN | SMFIP_NR_MAIL | SMFIP_NR_HDR;
	struct session *s = session_get(ctx);

	(void)f2;
	(void)f3;
	*pf0 = f0 & (SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE | SMFIF_SETSYMLIST);
	*pf1 = f1 & (skip | (s != NULL ? no_reply : 0));
	*pf2 = 0;
	*pf3 = 0;
	if (s != NULL)
		s->no_reply = *pf1 & no_reply;
	if (f0 & SMFIF_SETSYMLIST) {
		smfi_setsymlist(ctx, SMFIM_CONNECT, "{daemon_name}");
		smfi_setsymlist(ctx, SMFIM_ENVFROM, "i {auth_authen}");
		smfi_setsymlist(ctx, SMFIM_ENVRCPT, "i");
		smfi_setsymlist(ctx, SMFIM_EOM, "i");
		/*
		 * Postfix sends a step's macros even when the step is skipped,
		 * and an empty list would mean its defaults (the TLS details
		 * at HELO): the queue id is the smallest list to ask for.
		 */
		smfi_setsymlist(ctx, SMFIM_HELO, "i");
		smfi_setsymlist(ctx, SMFIM_DATA, "i");
		smfi_setsymlist(ctx, SMFIM_EOH, "i");
	}
	return SMFIS_CONTINUE;
}

static sfsistat cb_connect(SMFICTX *ctx, char *hostname, _SOCK_ADDR *hostaddr)
{
	struct session *s;
	struct ipaddr ip;

	(void)hostname;
	ENTER();
	if ((s = session_get(ctx)) == NULL)
		LEAVE(answer(ctx, SMFIP_NR_CONN, SMFIS_TEMPFAIL));
	transaction_end(&s->conn);
	ipaddr_from_sockaddr((const struct sockaddr *)hostaddr, &ip);
	policy_conn_init(&s->conn, &ip, macro(ctx, "{daemon_name}"));
	LEAVE(answer(ctx, SMFIP_NR_CONN, SMFIS_CONTINUE));
}

static sfsistat cb_envfrom(SMFICTX *ctx, char **argv)
{
	struct session *s;

	ENTER();
	if ((s = session_get(ctx)) == NULL)
		LEAVE(answer(ctx, SMFIP_NR_MAIL, SMFIS_TEMPFAIL));
	transaction_end(&s->conn);
	policy_mail(&s->conn, argv && argv[0] ? argv[0] : "", macro(ctx, "{auth_authen}"),
		    macro(ctx, "i"));
	atomic_fetch_add(&open_transactions, 1);
	LEAVE(answer(ctx, SMFIP_NR_MAIL, SMFIS_CONTINUE));
}

static sfsistat cb_envrcpt(SMFICTX *ctx, char **argv)
{
	struct conn_state *c = conn_of(ctx);
	struct rcpt_result res;

	ENTER();
	if (c == NULL || c->msg == NULL)
		LEAVE(SMFIS_CONTINUE);
	policy_rcpt(c, argv && argv[0] ? argv[0] : "", macro(ctx, "i"), &res);
	switch (res.outcome) {
	case RCPT_TEMPFAIL_LIMIT:
		set_reply(ctx, "451", "4.7.1", res.reply);
		LEAVE(SMFIS_TEMPFAIL);
	case RCPT_TEMPFAIL_ERROR:
		set_reply(ctx, "451", "4.3.0", res.reply);
		LEAVE(SMFIS_TEMPFAIL);
	default:
		LEAVE(SMFIS_CONTINUE);
	}
}

static sfsistat cb_header(SMFICTX *ctx, char *name, char *value)
{
	struct conn_state *c = conn_of(ctx);

	ENTER();
	if (c != NULL && name != NULL)
		policy_header(c, name, value);
	LEAVE(answer(ctx, SMFIP_NR_HDR, SMFIS_CONTINUE));
}

/* apply the header changes and the hold of the end-of-message result */
static int apply_changes(SMFICTX *ctx, const struct eom_result *res)
{
	/* from the last one down, so the indexes of the others stay valid */
	for (unsigned i = res->remove_headers; i >= 1; i--)
		if (smfi_chgheader(ctx, (char *)res->header_name, (int)i, NULL) != MI_SUCCESS)
			return -1;
	if (res->add_header &&
	    smfi_addheader(ctx, (char *)res->header_name, (char *)res->header_value) != MI_SUCCESS)
		return -1;
	if (res->quarantine && smfi_quarantine(ctx, (char *)res->reply) != MI_SUCCESS)
		return -1;
	return 0;
}

static sfsistat cb_eom(SMFICTX *ctx)
{
	struct conn_state *c = conn_of(ctx);
	struct eom_result res;
	const char *qid = macro(ctx, "i");

	ENTER();
	if (c == NULL || c->msg == NULL)
		LEAVE(SMFIS_CONTINUE);
	policy_eom(c, qid, &res);
	switch (res.outcome) {
	case EOM_TEMPFAIL:
	case EOM_REJECT:
	case EOM_TEMPFAIL_ERROR:
		transaction_end(c); /* nothing of it was sent: its units go back */
		if (res.outcome == EOM_REJECT) {
			set_reply(ctx, "550", "5.7.1", res.reply);
			LEAVE(SMFIS_REJECT);
		}
		set_reply(ctx, "451", res.outcome == EOM_TEMPFAIL ? "4.7.1" : "4.3.0", res.reply);
		LEAVE(SMFIS_TEMPFAIL);
	case EOM_ACCEPT:
		break;
	}
	if (apply_changes(ctx, &res) != 0) {
		/* never let through what should have been held or marked */
		log_msg(LOG_ERR, qid, "could not change the message (header %s%s); tempfailed",
			log_quote(res.header_name), res.quarantine ? ", hold" : "");
		transaction_end(c);
		set_reply(ctx, "451", "4.3.0", "Internal error, try again later");
		LEAVE(SMFIS_TEMPFAIL);
	}
	policy_done(c);
	atomic_fetch_sub(&open_transactions, 1);
	LEAVE(SMFIS_CONTINUE);
}

static sfsistat cb_abort(SMFICTX *ctx)
{
	struct conn_state *c = conn_of(ctx);

	ENTER();
	if (c != NULL)
		transaction_end(c);
	LEAVE(SMFIS_CONTINUE);
}

static sfsistat cb_close(SMFICTX *ctx)
{
	struct session *s = smfi_getpriv(ctx);

	ENTER();
	if (s != NULL) {
		transaction_end(&s->conn);
		policy_conn_end(&s->conn);
		free(s);
		smfi_setpriv(ctx, NULL);
	}
	LEAVE(SMFIS_CONTINUE);
}

struct smfiDesc callbacks_desc = {
	.xxfi_name = "outbound-milter",
	.xxfi_version = SMFI_VERSION,
	.xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE | SMFIF_SETSYMLIST,
	.xxfi_connect = cb_connect,
	.xxfi_envfrom = cb_envfrom,
	.xxfi_envrcpt = cb_envrcpt,
	.xxfi_header = cb_header,
	.xxfi_eom = cb_eom,
	.xxfi_abort = cb_abort,
	.xxfi_close = cb_close,
	.xxfi_negotiate = cb_negotiate,
};
