/*
 * address.h - the one address normaliser, used everywhere (README, "What it does").
 */
#ifndef OBM_ADDRESS_H
#define OBM_ADDRESS_H

#include <stddef.h>

#define ADDR_LOCAL_MAX 64
#define ADDR_DOMAIN_MAX 255

enum address_status {
	ADDR_OK,      /* local@domain */
	ADDR_NULL,    /* the null sender <> */
	ADDR_INVALID, /* no domain, or does not parse; network "invalid" */
};

struct address {
	enum address_status status;
	char local[ADDR_LOCAL_MAX + 1];   /* lowercased, sub-address stripped */
	char domain[ADDR_DOMAIN_MAX + 1]; /* lowercased A-labels, or "[literal]" */
	char full[ADDR_LOCAL_MAX + ADDR_DOMAIN_MAX + 2]; /* local@domain, "" unless OK */
};

/*
 * Normalise RAW (as given to MAIL FROM / RCPT TO, with or without <>, may
 * hold any bytes) into OUT: strip <>, drop source routes, lowercase, IDN
 * U-labels -> A-labels, strip a sub-address at the first of the characters
 * in SUBADDR_SEP ("" or NULL keeps it), remove a trailing dot from the
 * domain. Never fails on bad input: returns OUT->status.
 */
enum address_status address_normalize(const char *raw, const char *subaddr_sep,
				       struct address *out);

#endif
