/*
 * logparse.h - a strict reader of the daemon's key=value log lines, for
 * tests (test_log.c, fuzz_logquote.c). It is written from the rule in
 * log.h, not from log.c: fields are separated by one space outside
 * quotes; a field is a key up to its first '=' and a value that is either
 * bare (printable ASCII without space, '"', '\\' or '=') or a quoted
 * string in which \" \\ and \xHH are the only escapes and every other
 * byte is printable ASCII. Anything else makes the whole line malformed.
 */
#ifndef OBM_TEST_LOGPARSE_H
#define OBM_TEST_LOGPARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#define LP_MAX_FIELDS 32

struct lp_field {
	char key[64];
	char *value; /* unescaped, NUL-terminated, inside lp_line.store */
	size_t len;
	bool quoted;
};

struct lp_line {
	int n;
	struct lp_field f[LP_MAX_FIELDS];
	char store[16384];
	size_t used;
};

static inline int lp_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static inline bool lp_bare_byte(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '=';
}

/*
 * lp_value - the value at *P up to the next space outside quotes (or the
 * end of LEN bytes), unescaped into OUT of SIZE; its length, -1 when it is
 * malformed or does not fit. *P is left on the space or the end.
 */
static inline long lp_value(const char **p, const char *end, char *out, size_t size,
			    bool *quoted)
{
	const char *s = *p;
	size_t n = 0;

	*quoted = s < end && *s == '"';
	if (!*quoted) {
		for (; s < end && *s != ' '; s++) {
			if (!lp_bare_byte((unsigned char)*s) || n + 1 >= size)
				return -1;
			out[n++] = *s;
		}
		if (n == 0) /* an empty value is written "" */
			return -1;
		out[n] = '\0';
		*p = s;
		return (long)n;
	}
	for (s++;; s++) {
		unsigned char c;
		int hi, lo;

		if (s >= end)
			return -1; /* no closing quote */
		c = (unsigned char)*s;
		if (c == '"')
			break;
		if (n + 1 >= size)
			return -1;
		if (c == '\\') {
			if (s + 1 >= end)
				return -1;
			if (s[1] == '"' || s[1] == '\\') {
				out[n++] = s[1];
				s++;
			} else if (s[1] == 'x' && s + 3 < end && (hi = lp_hex(s[2])) >= 0 &&
				   (lo = lp_hex(s[3])) >= 0) {
				out[n++] = (char)(hi * 16 + lo);
				s += 3;
			} else {
				return -1;
			}
		} else if (c < 0x20 || c >= 0x7f) {
			return -1; /* raw control or 8-bit byte inside quotes */
		} else {
			out[n++] = (char)c;
		}
	}
	s++; /* the closing quote: a space or the end must follow */
	if (s < end && *s != ' ')
		return -1;
	out[n] = '\0';
	*p = s;
	return (long)n;
}

/* lp_parse - LINE (LEN bytes) as fields into L; 0, or -1 when malformed */
static inline int lp_parse_n(const char *line, size_t len, struct lp_line *l)
{
	const char *p = line, *end = line + len;

	l->n = 0;
	l->used = 0;
	if (len == 0)
		return -1;
	for (;;) {
		struct lp_field *f;
		const char *k = p;
		long vl;

		if (l->n == LP_MAX_FIELDS)
			return -1;
		f = &l->f[l->n];
		while (p < end && *p != '=' && *p != ' ')
			p++;
		if (p == end || *p != '=' || p == k || (size_t)(p - k) >= sizeof(f->key))
			return -1;
		for (const char *q = k; q < p; q++)
			if (!lp_bare_byte((unsigned char)*q))
				return -1;
		memcpy(f->key, k, (size_t)(p - k));
		f->key[p - k] = '\0';
		p++;
		f->value = l->store + l->used;
		vl = lp_value(&p, end, f->value, sizeof(l->store) - l->used, &f->quoted);
		if (vl < 0)
			return -1;
		f->len = (size_t)vl;
		l->used += (size_t)vl + 1;
		l->n++;
		if (p == end)
			return 0;
		p++; /* the one space between fields */
		if (p == end)
			return -1; /* a trailing space */
	}
}

static inline int lp_parse(const char *line, struct lp_line *l)
{
	return lp_parse_n(line, strlen(line), l);
}

/*
 * lp_same_or_cut - GOT (parsed back) is WANT, or, when CUT_OK, the start of
 * WANT followed by "..." (a value cut for length)
 */
static inline bool lp_same_or_cut(const char *got, size_t got_len, const char *want,
				  bool cut_ok)
{
	size_t wl = strlen(want);

	if (got_len == wl && memcmp(got, want, wl) == 0)
		return true;
	if (!cut_ok || got_len < 3 || memcmp(got + got_len - 3, "...", 3) != 0)
		return false;
	return got_len - 3 < wl && memcmp(got, want, got_len - 3) == 0;
}

#endif
