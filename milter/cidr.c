/*
 * cidr.c - IPv4/IPv6 addresses and CIDR blocks: parse, format, match.
 *
 * An IPv4 address and its IPv4-mapped IPv6 form (::ffff:a.b.c.d) are the
 * same address for matching: a mapped client matches IPv4 blocks, and an
 * IPv4 client matches IPv6 blocks that cover ::ffff:0:0/96.
 * Host bits set in a block ("10.1.2.3/8") are accepted and masked off.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "cidr.h"

static const unsigned char v4mapped_prefix[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

static void ipaddr_clear(struct ipaddr *ip)
{
	memset(ip, 0, sizeof(*ip));
}

int ipaddr_parse(const char *text, struct ipaddr *out)
{
	if (out == NULL)
		return -1;
	ipaddr_clear(out);
	if (text == NULL || *text == '\0')
		return -1;
	if (strchr(text, ':') != NULL) {
		if (inet_pton(AF_INET6, text, out->a) != 1)
			goto bad;
		out->family = AF_INET6;
	} else {
		if (inet_pton(AF_INET, text, out->a) != 1)
			goto bad;
		out->family = AF_INET;
	}
	return 0;
bad:
	ipaddr_clear(out);
	return -1;
}

/* zero every bit of IP after the first PREFIX bits */
static void mask_bits(unsigned char *a, size_t bytes, unsigned prefix)
{
	for (size_t i = 0; i < bytes; i++) {
		unsigned bit = (unsigned) i * 8;

		if (prefix >= bit + 8)
			continue;
		if (prefix <= bit)
			a[i] = 0;
		else
			a[i] &= (unsigned char) (0xff << (8 - (prefix - bit)));
	}
}

int cidr_parse(const char *text, struct cidr *out)
{
	char addr[INET6_ADDRSTRLEN + 1];
	const char *slash;
	size_t alen;
	unsigned max, prefix;

	if (out == NULL)
		return -1;
	memset(out, 0, sizeof(*out));
	if (text == NULL)
		return -1;
	slash = strchr(text, '/');
	alen = slash != NULL ? (size_t) (slash - text) : strlen(text);
	if (alen == 0 || alen >= sizeof(addr))
		return -1;
	memcpy(addr, text, alen);
	addr[alen] = '\0';
	if (ipaddr_parse(addr, &out->net) != 0)
		goto bad;
	max = out->net.family == AF_INET ? 32 : 128;

	if (slash == NULL) {
		prefix = max;
	} else {
		const char *p = slash + 1;
		size_t digits = 0;

		prefix = 0;
		/* plain decimal, no sign, no spaces, at most 3 digits */
		while (p[digits] >= '0' && p[digits] <= '9' && digits < 4) {
			prefix = prefix * 10 + (unsigned) (p[digits] - '0');
			digits++;
		}
		if (digits == 0 || digits > 3 || p[digits] != '\0' || prefix > max)
			goto bad;
	}
	out->prefix = prefix;
	mask_bits(out->net.a, max / 8, prefix);
	return 0;
bad:
	memset(out, 0, sizeof(*out));
	return -1;
}

void ipaddr_from_sockaddr(const struct sockaddr *sa, struct ipaddr *out)
{
	if (out == NULL)
		return;
	ipaddr_clear(out);
	if (sa == NULL)
		return;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *) sa;

		memcpy(out->a, &sin->sin_addr, 4);
		out->family = AF_INET;
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *) sa;

		memcpy(out->a, &sin6->sin6_addr, 16);
		out->family = AF_INET6;
	}
}

const char *ipaddr_format(const struct ipaddr *ip, char *buf, size_t size)
{
	if (buf == NULL || size == 0)
		return "unknown";
	if (ip != NULL && (ip->family == AF_INET || ip->family == AF_INET6)
	    && inet_ntop(ip->family, ip->a, buf, (socklen_t) size) != NULL)
		return buf;
	snprintf(buf, size, "%s", "unknown");
	return buf;
}

/* the first PREFIX bits of A and B are equal */
static bool prefix_equal(const unsigned char *a, const unsigned char *b,
			 unsigned prefix)
{
	size_t whole = prefix / 8;
	unsigned rest = prefix % 8;

	if (memcmp(a, b, whole) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((a[whole] ^ b[whole]) & (unsigned char) (0xff << (8 - rest))) == 0;
}

static bool is_v4mapped(const struct ipaddr *ip)
{
	return ip->family == AF_INET6
	    && memcmp(ip->a, v4mapped_prefix, sizeof(v4mapped_prefix)) == 0;
}

bool cidr_match(const struct cidr *c, const struct ipaddr *ip)
{
	unsigned char mapped[16];

	if (c == NULL || ip == NULL)
		return false;
	if (c->net.family == AF_INET) {
		if (c->prefix > 32)
			return false;
		if (ip->family == AF_INET)
			return prefix_equal(c->net.a, ip->a, c->prefix);
		if (is_v4mapped(ip))
			return prefix_equal(c->net.a, ip->a + 12, c->prefix);
		return false;
	}
	if (c->net.family == AF_INET6) {
		if (c->prefix > 128)
			return false;
		if (ip->family == AF_INET6)
			return prefix_equal(c->net.a, ip->a, c->prefix);
		if (ip->family == AF_INET) {
			memcpy(mapped, v4mapped_prefix, 12);
			memcpy(mapped + 12, ip->a, 4);
			return prefix_equal(c->net.a, mapped, c->prefix);
		}
	}
	return false;
}

bool cidr_list_match(const struct cidr_list *l, const struct ipaddr *ip)
{
	if (l == NULL || ip == NULL)
		return false;
	for (size_t i = 0; i < l->n; i++)
		if (cidr_match(&l->v[i], ip))
			return true;
	return false;
}
