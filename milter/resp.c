/*
 * resp.c - Redis requests (RESP arrays of bulk strings) encoded into a
 * reusable buffer; see resp.h. Numbers are formatted by hand: this runs
 * for every argument of every command on the milter's hot path.
 */
#include <stdlib.h>
#include <string.h>

#include "resp.h"

#define RESP_MIN_CAP 1024

void resp_reset(struct resp_buf *b)
{
	b->len = 0;
	b->failed = false;
	b->bulk_end = 0;
}

void resp_free(struct resp_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
	b->failed = false;
	b->bulk_end = 0;
}

static bool resp_grow(struct resp_buf *b, size_t n);

/* room for N more bytes; false once out of memory */
static inline bool resp_room(struct resp_buf *b, size_t n)
{
	if (__builtin_expect(!b->failed && b->cap - b->len >= n, 1))
		return true;
	return resp_grow(b, n);
}

static bool resp_grow(struct resp_buf *b, size_t n)
{
	size_t cap;
	char *p;

	if (b->failed)
		return false;
	cap = b->cap ? b->cap : RESP_MIN_CAP;
	while (cap - b->len < n) {
		if (cap > ((size_t)-1) / 2) {
			b->failed = true;
			return false;
		}
		cap *= 2;
	}
	if ((p = realloc(b->p, cap)) == NULL) {
		b->failed = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

/* the decimal digits of V written backwards ending at END; returns the first */
static char *resp_digits(unsigned long long v, char *end)
{
	do {
		*--end = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	return end;
}

size_t resp_ll_len(long long v)
{
	char tmp[24], *end = tmp + sizeof(tmp);
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;

	return (size_t)(end - resp_digits(u, end)) + (v < 0);
}

/* resp_header for N of 100 and more */
static void resp_header_long(struct resp_buf *b, char type, size_t n)
{
	char tmp[24], *end = tmp + sizeof(tmp), *d = resp_digits(n, end);
	size_t dl = (size_t)(end - d);

	if (!resp_room(b, dl + 3))
		return;
	b->p[b->len++] = type;
	memcpy(b->p + b->len, d, dl);
	b->len += dl;
	b->p[b->len++] = '\r';
	b->p[b->len++] = '\n';
}

/* TYPE then the decimal N then CRLF ("*3\r\n", "$5\r\n") */
static inline void resp_header(struct resp_buf *b, char type, size_t n)
{
	char *p;

	if (n >= 100 || !resp_room(b, 5)) { /* most arguments are short */
		resp_header_long(b, type, n);
		return;
	}
	p = b->p + b->len;
	*p++ = type;
	if (n >= 10)
		*p++ = (char)('0' + n / 10);
	*p++ = (char)('0' + n % 10);
	*p++ = '\r';
	*p++ = '\n';
	b->len = (size_t)(p - b->p);
}

void resp_array(struct resp_buf *b, size_t n)
{
	resp_header(b, '*', n);
}

void resp_bulk(struct resp_buf *b, const void *s, size_t len)
{
	resp_header(b, '$', len);
	if (!resp_room(b, len + 2))
		return;
	if (len > 0)
		memcpy(b->p + b->len, s, len);
	b->len += len;
	b->p[b->len++] = '\r';
	b->p[b->len++] = '\n';
}

void resp_str(struct resp_buf *b, const char *s)
{
	resp_bulk(b, s, strlen(s));
}

void resp_ll(struct resp_buf *b, long long v)
{
	char tmp[24], *end = tmp + sizeof(tmp);
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
	char *d = resp_digits(u, end);

	if (v < 0)
		*--d = '-';
	resp_bulk(b, d, (size_t)(end - d));
}

void resp_bulk_begin(struct resp_buf *b, size_t len)
{
	resp_header(b, '$', len);
	if (!resp_room(b, len + 2))
		return;
	b->bulk_end = b->len + len;
}

void resp_put(struct resp_buf *b, const void *s, size_t len)
{
	if (b->failed)
		return;
	if (b->len + len > b->bulk_end) {
		b->failed = true;
		return;
	}
	if (len > 0)
		memcpy(b->p + b->len, s, len);
	b->len += len;
}

void resp_put_str(struct resp_buf *b, const char *s)
{
	resp_put(b, s, strlen(s));
}

bool resp_bulk_end(struct resp_buf *b)
{
	if (b->failed)
		return false;
	if (b->len != b->bulk_end) {
		b->failed = true;
		return false;
	}
	/* resp_bulk_begin made room for the CRLF */
	b->p[b->len++] = '\r';
	b->p[b->len++] = '\n';
	return true;
}
