/*
 * headers.h - the message headers classification looks at, collected one
 * header at a time, and the RFC 5322 address-list parser for From.
 */
#ifndef OBM_HEADERS_H
#define OBM_HEADERS_H

#include <stdbool.h>
#include <stddef.h>

#include "address.h"

#define FROM_MAX 8 /* From mailboxes kept; more are counted, not kept */

struct msg_headers {
	bool list_unsubscribe; /* List-Unsubscribe with at least one <uri> or non-blank value */
	bool one_click;        /* List-Unsubscribe-Post: List-Unsubscribe=One-Click (RFC 8058) */
	bool list_id;          /* List-Id */
	bool precedence_bulk;  /* Precedence: bulk, list or junk */
	bool auto_submitted;   /* Auto-Submitted other than "no" */
	bool message_id;       /* Message-ID with a non-blank value */
	bool date;             /* Date with a non-blank value */
	unsigned from_fields;  /* how many From: fields the message has */
	size_t n_from;         /* mailboxes found in the From fields (may exceed FROM_MAX) */
	struct address from[FROM_MAX]; /* the first FROM_MAX of them, normalised */
};

void headers_init(struct msg_headers *h);

/*
 * Look at one header field (NAME without the colon, VALUE unfolded or not,
 * any bytes); names are matched case-insensitively, other headers ignored.
 */
void headers_add(struct msg_headers *h, const char *name, const char *value);

/*
 * Parse an RFC 5322 address list (display names, quoted strings, comments,
 * RFC 2047 encoded words, groups, several mailboxes, folding, garbage) and
 * normalise each mailbox's addr-spec with address_normalize (no sub-address
 * stripping). Writes at most MAX into OUT; returns how many mailboxes were
 * found in all (may exceed MAX). Never fails on bad input.
 */
size_t headers_parse_addresses(const char *value, struct address *out, size_t max);

#endif
