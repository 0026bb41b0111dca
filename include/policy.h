/*
 * policy.h - one message's journey, independent of libmilter: direction,
 * sender identity and exemptions at MAIL FROM, a reservation per recipient
 * at RCPT TO, headers collected, classification and action at end of
 * message (commit, learn, count), release on abort. The callbacks
 * translate libmilter calls into these functions and their results back.
 */
#ifndef OBM_POLICY_H
#define OBM_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "address.h"
#include "cidr.h"
#include "classify.h"
#include "config.h"
#include "headers.h"
#include "lease.h"
#include "network.h"
#include "store.h"

#define QID_MAX 64
#define REPLY_MAX 512

/* per SMTP connection */
struct conn_state {
	struct ipaddr client;
	char client_text[64];
	char daemon_name[64];
	struct msg_state *msg; /* the transaction in progress, or NULL */
};

/* one recipient network seen in the current message */
struct net_tally {
	char name[NETWORK_MAX];
	unsigned accepted;
	unsigned tempfailed;
	unsigned long long msg_units; /* bit per rule: count=messages unit held */
};

/* a recipient tempfailed (or, in monitor mode, that would have been) by a limit */
struct refusal {
	char *rcpt;
	char *network;
	const char *rule; /* in the message's configuration */
	const char *limit; /* "hourly" or "burst" */
	long used, max, window;
};

/* per transaction (MAIL FROM .. end of message / abort) */
struct msg_state {
	struct config *cfg; /* the snapshot this message runs under (a reference) */
	bool outbound;
	bool limited; /* outbound and not exempt */
	bool store_failed;
	struct address sender;
	char sender_id[ADDR_LOCAL_MAX + ADDR_DOMAIN_MAX + 2]; /* the identity (policy.c) */
	char sender_domain[ADDR_LOCAL_MAX + ADDR_DOMAIN_MAX + 2]; /* scope = sender_domain */
	char qid[QID_MAX];
	char id[48]; /* unique id; members of reservations derive from it */
	unsigned rcpt_seq;
	unsigned rcpts;
	unsigned tempfailed;
	unsigned forged_headers; /* our class header, as submitted by the client */

	/* outbound: accepted external recipients; inbound: local recipients */
	char **rcpt_addrs;
	unsigned char *rcpt_known;  /* per rcpt_addrs: a known correspondent */
	unsigned char *rcpt_recent; /* per rcpt_addrs: mailed by the sender in the last hour */
	size_t n_rcpt_addrs, cap_rcpt_addrs;

	/* the message's own inputs, read with its first recipient */
	bool have_inputs;
	bool blocked;
	long velocity_before; /* distinct recipients of the sender in the last hour */

	struct lease held;   /* reservations held, kept pending while the transaction lives */
	unsigned *held_rule; /* index in cfg->limits of each held unit */
	size_t cap_held_rule;
	struct net_tally *nets;
	size_t n_nets, cap_nets;
	struct refusal *refusals; /* counted and logged with the next store write */
	size_t n_refusals, cap_refusals;

	struct msg_headers headers; /* last: headers_init clears what needs it */
};

enum rcpt_outcome {
	RCPT_ACCEPT,
	RCPT_TEMPFAIL_LIMIT, /* 451 4.7.1 */
	RCPT_TEMPFAIL_ERROR, /* 451 4.3.0 */
};

struct rcpt_result {
	enum rcpt_outcome outcome;
	char reply[REPLY_MAX]; /* text after the codes, for the SMTP reply */
};

enum eom_outcome {
	EOM_ACCEPT,
	EOM_TEMPFAIL,       /* 451 4.7.1: the class's action */
	EOM_REJECT,         /* 550 5.7.1: the class's action */
	EOM_TEMPFAIL_ERROR, /* 451 4.3.0: the store failed with on_error = tempfail */
};

struct eom_result {
	enum eom_outcome outcome;
	unsigned remove_headers; /* delete this many header_name headers first */
	bool add_header;         /* then add header_name: header_value */
	bool quarantine;         /* put the message on hold with `reply` as the reason */
	char header_name[128];
	char header_value[REASONS_MAX + 128];
	char reply[REPLY_MAX];   /* reply text or hold reason */
};

void policy_conn_init(struct conn_state *c, const struct ipaddr *client,
		      const char *daemon_name);
/* end of connection: releases and frees any transaction in progress */
void policy_conn_end(struct conn_state *c);

/* MAIL FROM: starts a new transaction (ending any previous one) */
void policy_mail(struct conn_state *c, const char *sender, const char *auth_user,
		 const char *qid);
/* a header of the message */
void policy_header(struct conn_state *c, const char *name, const char *value);
/* RCPT TO */
void policy_rcpt(struct conn_state *c, const char *rcpt, const char *qid,
		 struct rcpt_result *res);
/*
 * end of message: commits reservations and logs the decision. The
 * transaction stays open: policy_done() ends it once the answer is given,
 * or policy_abort() gives its units back if the message cannot be accepted.
 */
void policy_eom(struct conn_state *c, const char *qid, struct eom_result *res);
void policy_done(struct conn_state *c);
/* the transaction ended without delivery (abort, reject, tempfail) */
void policy_abort(struct conn_state *c);

/* set once at start: a process-unique prefix for reservation ids */
void policy_init(void);

#endif
