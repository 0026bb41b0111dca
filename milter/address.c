/*
 * address.c - the one envelope address normaliser (README, "What it does", step 3).
 *
 * Input is whatever the SMTP client sent as MAIL FROM / RCPT TO argument
 * and may hold any byte. The result is either the null sender, an invalid
 * address, or local@domain with:
 *   - <> and a source route (<@a,@b:user@dom>) removed, ESMTP parameters
 *     after the closing > ignored;
 *   - the local part lowercased (ASCII only; UTF-8 kept as bytes), a quoted
 *     local part kept in its quoted form, a sub-address stripped at the first
 *     separator character unless that would leave nothing;
 *   - the domain lowercased, its trailing dot removed, U-labels converted to
 *     A-labels (libidn2), or an address literal [192.0.2.1] / [IPv6:...]
 *     kept as it is (lowercased).
 *
 * Everything runs on the caller's struct and the stack; the only heap
 * allocation is libidn2's result, freed before returning.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include <idn2.h>

#include "address.h"

/* longest UTF-8 domain handed to libidn2 (4 bytes per code point at most) */
#define DOMAIN_RAW_MAX ((size_t)4 * ADDR_DOMAIN_MAX)

static int ascii_lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

static bool is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* true when [S, S+LEN) is well-formed UTF-8 (no overlongs, surrogates) */
static bool utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		unsigned long cp;

		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (len - i - 1 < n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000)
		    || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

/*
 * Skip a quoted string starting at S[I] == '"'. Returns the index just past
 * the closing quote, or LEN when it is not closed.
 */
static size_t quoted_end(const char *s, size_t i, size_t len)
{
	for (i++; i < len; i++) {
		if (s[i] == '\\') {
			if (++i >= len)
				return len;
		} else if (s[i] == '"') {
			return i + 1;
		}
	}
	return len;
}

/*
 * Validate the local part [S, S+LEN) and store it lowercased into OUT,
 * stripping a sub-address. Returns false when it is not acceptable.
 */
static bool local_store(const char *s, size_t len, const char *sep,
			char out[ADDR_LOCAL_MAX + 1])
{
	if (len == 0 || len > ADDR_LOCAL_MAX)
		return false;
	if (!utf8_valid((const unsigned char *) s, len))
		return false;

	if (s[0] == '"') {
		/* quoted-string: the whole local part, nothing after it */
		if (len < 2 || quoted_end(s, 0, len) != len || s[len - 1] != '"')
			return false;
	} else {
		for (size_t i = 0; i < len; i++)
			if (strchr(" ()<>[]:;@\\,\"", s[i]) != NULL)
				return false;
		if (sep != NULL && *sep != '\0') {
			size_t cut = 0;

			while (cut < len && strchr(sep, s[cut]) == NULL)
				cut++;
			if (cut > 0)
				len = cut;
		}
	}
	for (size_t i = 0; i < len; i++)
		out[i] = (char) ascii_lower((unsigned char) s[i]);
	out[len] = '\0';
	return true;
}

/* "[192.0.2.1]" or "[IPv6:2001:db8::1]", lowercased into OUT */
static bool literal_store(const char *s, size_t len,
			  char out[ADDR_DOMAIN_MAX + 1])
{
	char inner[INET6_ADDRSTRLEN + 8];
	unsigned char bin[sizeof(struct in6_addr)];
	size_t n;

	if (len < 3 || s[len - 1] != ']' || len > ADDR_DOMAIN_MAX)
		return false;
	n = len - 2;
	if (n >= sizeof(inner))
		return false;
	memcpy(inner, s + 1, n);
	inner[n] = '\0';
	if (strncasecmp(inner, "ipv6:", 5) == 0) {
		if (inet_pton(AF_INET6, inner + 5, bin) != 1)
			return false;
	} else if (inet_pton(AF_INET, inner, bin) != 1) {
		return false;
	}
	for (size_t i = 0; i < len; i++)
		out[i] = (char) ascii_lower((unsigned char) s[i]);
	out[len] = '\0';
	return true;
}

/* label syntax of an ASCII (A-label) domain */
static bool domain_check(const char *d)
{
	size_t label = 0;
	size_t len = strlen(d);

	if (len == 0 || len > ADDR_DOMAIN_MAX)
		return false;
	for (size_t i = 0; i <= len; i++) {
		char c = d[i];

		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63)
				return false;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
			   || c == '-' || c == '_') {
			label++;
		} else {
			return false;
		}
	}
	return true;
}

/* Validate the domain [S, S+LEN) and store it normalised into OUT. */
static bool domain_store(const char *s, size_t len,
			 char out[ADDR_DOMAIN_MAX + 1])
{
	char raw[DOMAIN_RAW_MAX + 1];
	bool ascii = true;

	if (len == 0)
		return false;
	if (s[0] == '[')
		return literal_store(s, len, out);
	if (s[len - 1] == '.')
		len--;
	if (len == 0 || len > DOMAIN_RAW_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char) s[i];

		if (c == '{' || c == '}' || c == ' ')
			return false;
		if (c >= 0x80)
			ascii = false;
		raw[i] = (char) ascii_lower(c);
	}
	raw[len] = '\0';

	if (!ascii) {
		char *alabel = NULL;
		bool ok;

		if (!utf8_valid((const unsigned char *) raw, len))
			return false;
		if (idn2_to_ascii_8z(raw, &alabel, IDN2_NONTRANSITIONAL) != IDN2_OK) {
			idn2_free(alabel);
			alabel = NULL;
			if (idn2_to_ascii_8z(raw, &alabel, IDN2_TRANSITIONAL) != IDN2_OK) {
				idn2_free(alabel);
				return false;
			}
		}
		ok = alabel != NULL && strlen(alabel) <= ADDR_DOMAIN_MAX;
		if (ok) {
			size_t n = strlen(alabel);

			for (size_t i = 0; i < n; i++)
				out[i] = (char) ascii_lower((unsigned char) alabel[i]);
			out[n] = '\0';
		}
		idn2_free(alabel);
		if (!ok)
			return false;
	} else {
		if (len > ADDR_DOMAIN_MAX)
			return false;
		memcpy(out, raw, len + 1);
	}
	return domain_check(out);
}

/* Parse the mailbox (no <>, no route) [S, S+LEN) into OUT. */
static bool mailbox_parse(const char *s, size_t len, const char *sep,
			  struct address *out)
{
	size_t at;

	if (len == 0)
		return false;
	if (s[0] == '"') {
		at = quoted_end(s, 0, len);
		if (at >= len || s[at] != '@')
			return false;
	} else {
		const char *p = memchr(s, '@', len);

		if (p == NULL)
			return false;
		at = (size_t) (p - s);
	}
	if (!local_store(s, at, sep, out->local))
		return false;
	if (!domain_store(s + at + 1, len - at - 1, out->domain))
		return false;
	return true;
}

/*
 * Drop a source route "@a,@b:" in front of the mailbox. Bracketed literals
 * in the route may contain ':'. Returns false for a route without ':'.
 */
static bool route_skip(const char **s, size_t *len)
{
	size_t i;
	bool in_literal = false;

	if (*len == 0 || (*s)[0] != '@')
		return true;
	for (i = 0; i < *len; i++) {
		char c = (*s)[i];

		if (c == '[')
			in_literal = true;
		else if (c == ']')
			in_literal = false;
		else if (c == ':' && !in_literal)
			break;
	}
	if (i >= *len)
		return false;
	*s += i + 1;
	*len -= i + 1;
	return true;
}

static void trim(const char **s, size_t *len)
{
	while (*len > 0 && (*s)[0] == ' ') {
		(*s)++;
		(*len)--;
	}
	while (*len > 0 && (*s)[*len - 1] == ' ')
		(*len)--;
}

static enum address_status address_set(struct address *out,
				       enum address_status status)
{
	out->status = status;
	if (status != ADDR_OK) {
		out->local[0] = '\0';
		out->domain[0] = '\0';
		out->full[0] = '\0';
	}
	return status;
}

enum address_status address_normalize(const char *raw, const char *subaddr_sep,
				       struct address *out)
{
	const char *s = raw;
	size_t len;

	if (out == NULL)
		return ADDR_INVALID;
	memset(out, 0, sizeof(*out));
	if (raw == NULL)
		return address_set(out, ADDR_INVALID);

	/* control characters anywhere, even in ESMTP parameters: reject */
	len = strlen(raw);
	for (size_t i = 0; i < len; i++)
		if (is_ctl((unsigned char) raw[i]))
			return address_set(out, ADDR_INVALID);

	trim(&s, &len);
	if (len == 0)
		return address_set(out, ADDR_NULL);

	if (s[0] == '<') {
		size_t i = 1;

		/* the mailbox ends at the first '>' outside a quoted string */
		while (i < len && s[i] != '>') {
			if (s[i] == '"')
				i = quoted_end(s, i, len);
			else
				i++;
		}
		if (i >= len)
			return address_set(out, ADDR_INVALID);
		len = i - 1;
		s++;
		trim(&s, &len);
		if (len == 0)
			return address_set(out, ADDR_NULL);
	}

	if (!route_skip(&s, &len) || !mailbox_parse(s, len, subaddr_sep, out))
		return address_set(out, ADDR_INVALID);

	/* both parts are bounded, this always fits */
	{
		size_t l = strlen(out->local);
		size_t d = strlen(out->domain);

		memcpy(out->full, out->local, l);
		out->full[l] = '@';
		memcpy(out->full + l + 1, out->domain, d + 1);
	}
	return address_set(out, ADDR_OK);
}
