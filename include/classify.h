/*
 * classify.h - the message class (personal, bulk, spam-risk) and the
 * reasons for it, as a pure function of the inputs (README, "Classification").
 */
#ifndef OBM_CLASSIFY_H
#define OBM_CLASSIFY_H

#include <stdbool.h>

#include "config.h"
#include "headers.h"

#define REASONS_MAX 256

struct classify_input {
	unsigned rcpts;    /* accepted external recipients */
	unsigned known;    /* how many of them are known correspondents */
	unsigned velocity; /* distinct external recipients of the sender in the last hour */
	bool blocked;      /* the sender is blocked (outboundctl block) */
	bool from_aligned; /* every From mailbox is in the sender's organisational domain */
	const struct msg_headers *headers;
};

struct classify_result {
	enum msg_class cls;
	char reasons[REASONS_MAX]; /* comma-separated tokens, "" when none */
};

/*
 * Reason tokens, in this order:
 *   why it is bulk-like:  rcpt-count velocity list-id list-unsubscribe precedence
 *   why it is spam-risk:  blocked unknown-recipients no-unsubscribe from-mismatch
 *   bulk-sender advice:   no-one-click no-message-id no-date (bulk-like mail only)
 */
void classify_message(const struct classify_conf *cc, const struct classify_input *in,
		      struct classify_result *out);

#endif
