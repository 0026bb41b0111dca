/*
 * cidr.h - IPv4/IPv6 addresses and CIDR blocks: parse, match.
 */
#ifndef OBM_CIDR_H
#define OBM_CIDR_H

#include <stdbool.h>
#include <stddef.h>

struct sockaddr;

struct ipaddr {
	int family; /* AF_INET, AF_INET6, or 0 when unknown */
	unsigned char a[16];
};

struct cidr {
	struct ipaddr net;
	unsigned prefix; /* 0..32 or 0..128 */
};

struct cidr_list {
	struct cidr *v;
	size_t n;
};

/* "192.0.2.0/24", "2001:db8::/32", or a bare address (full prefix). 0 ok, -1 bad. */
int cidr_parse(const char *text, struct cidr *out);
/* text form of an address, 0 ok, -1 bad */
int ipaddr_parse(const char *text, struct ipaddr *out);
/* from a libmilter connect hostaddr; NULL or non-IP gives family 0 */
void ipaddr_from_sockaddr(const struct sockaddr *sa, struct ipaddr *out);
/* printable form into buf (INET6_ADDRSTRLEN is enough); "unknown" for family 0 */
const char *ipaddr_format(const struct ipaddr *ip, char *buf, size_t size);
/* IPv4-mapped IPv6 (::ffff:a.b.c.d) matches IPv4 blocks */
bool cidr_match(const struct cidr *c, const struct ipaddr *ip);
bool cidr_list_match(const struct cidr_list *l, const struct ipaddr *ip);

#endif
