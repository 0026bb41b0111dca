/*
 * network.h - recipient domain -> recipient network (README, "What it does", step 3):
 * configured network by domain or parent domain, else the registrable
 * domain (public suffix list), "invalid" for unusable addresses.
 */
#ifndef OBM_NETWORK_H
#define OBM_NETWORK_H

#include <stdbool.h>
#include <stddef.h>

#include "address.h"
#include "config.h"

#define NETWORK_MAX (ADDR_DOMAIN_MAX + 1)
#define NETWORK_INVALID "invalid"

/* Writes the network name of ADDR into BUF (size >= NETWORK_MAX), returns BUF. */
const char *network_of(const struct config *cfg, const struct address *addr,
		       char *buf, size_t size);

/* DOMAIN equals one of LIST or is a subdomain of one (local_domains). */
bool domain_in_list(const struct strlist *list, const char *domain);

/* registrable domain of DOMAIN into BUF; DOMAIN itself when it has none */
const char *network_registrable(const char *domain, char *buf, size_t size);

#endif
