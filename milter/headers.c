/*
 * headers.c - collect the header fields classification looks at
 * (README, "Classification") and parse the From field's RFC 5322 address
 * list into normalised mailboxes.
 *
 * Why our own parser: GMime parses addresses well, but it would pull GLib
 * (its allocator, its main-loop types, its own string handling) into a
 * daemon that needs one function from it. What classification needs is
 * narrower than a full parser: the addr-spec of each mailbox, with an
 * honest "this does not parse" for anything else. That fits in a single
 * bounded pass over the value.
 *
 * The parser makes one left-to-right pass over the value. A mailbox ends
 * at a comma or a semicolon outside quoted strings, comments, domain
 * literals and angle brackets; a colon there starts a group (its name is
 * dropped), a semicolon ends it. For each mailbox it keeps, in a bounded
 * stack buffer, either the contents of its angle-addr (display name
 * ignored) or, without one, its bare addr-spec; comments and folding
 * whitespace are dropped, quoted strings and domain literals are kept as
 * written. The result goes through address_normalize with no sub-address
 * stripping.
 *
 * A mailbox is counted but marked ADDR_INVALID when its syntax is broken:
 * an unterminated quoted string, comment, domain literal or angle-addr,
 * a stray ')' ']' '>' or '\', a second '<', words after the angle-addr, two
 * words with no angle-addr (a phrase, not an address), an addr-spec too
 * long for the buffer, or an empty or unparseable addr-spec (<> included:
 * a From mailbox is never the null sender). So a caller checking From
 * alignment sees "not aligned" instead of a guess.
 *
 * RFC 2047 encoded words (=?charset?B|Q?text?=) outside quotes and angle
 * brackets are taken as one word, so a malformed one holding ',' '<' '@'
 * or '"' does not split or open anything. The encoded text cannot hold
 * '?' and the charset cannot hold '=' or '?', so a failed attempt never
 * rescans more than a constant amount: the pass stays linear.
 *
 * Bounds: time linear in the value's length; comment nesting is a
 * counter, not recursion; no heap allocation (address_normalize frees
 * its own libidn2 result before returning).
 */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "address.h"
#include "headers.h"

/* longest addr-spec kept (a source route, a quoted local part, a UTF-8 domain) */
#define SPEC_MAX 2048

enum token_kind {
	TOKEN_NONE,
	TOKEN_WORD,    /* atom, quoted string, domain literal, encoded word */
	TOKEN_SPECIAL, /* '.', '@', and in an angle-addr ',' ':' ';' */
};

/* what has been seen of the current mailbox */
struct mailbox_scan {
	char buf[SPEC_MAX + 1];
	size_t len;
	bool overlong;        /* BUF overflowed */
	bool spaced;          /* two words with only CFWS between them */
	bool gap;             /* CFWS since the last token */
	enum token_kind last; /* kind of the last token in BUF */
	bool any;             /* anything but CFWS */
	bool broken;          /* structural garbage */
	bool angle;           /* an angle-addr was opened */
	bool in_angle;        /* ... and is not closed yet */
};

/* where the mailboxes go */
struct mailbox_list {
	struct address *out;
	size_t max;
	size_t n;
};

static void scan_reset(struct mailbox_scan *ms)
{
	ms->len = 0;
	ms->overlong = false;
	ms->spaced = false;
	ms->gap = false;
	ms->last = TOKEN_NONE;
	ms->any = false;
	ms->broken = false;
	ms->angle = false;
	ms->in_angle = false;
}

/* Start a token of KIND in the current mailbox. */
static void scan_token(struct mailbox_scan *ms, enum token_kind kind)
{
	ms->any = true;
	/* after "<...>" only comments and whitespace may follow */
	if (ms->angle && !ms->in_angle)
		ms->broken = true;
	if (kind == TOKEN_WORD && ms->last == TOKEN_WORD && ms->gap)
		ms->spaced = true;
	ms->last = kind;
	ms->gap = false;
}

static void scan_byte(struct mailbox_scan *ms, char c)
{
	if (ms->len < SPEC_MAX)
		ms->buf[ms->len++] = c;
	else
		ms->overlong = true;
}

/* Mark the mailbox broken by a stray character. */
static void scan_garbage(struct mailbox_scan *ms)
{
	ms->any = true;
	ms->broken = true;
}

/* A '<' outside quotes, comments and literals. */
static void scan_angle_open(struct mailbox_scan *ms)
{
	if (ms->angle) {
		scan_garbage(ms);
		return;
	}
	/* what came before was the display name: forget it */
	ms->len = 0;
	ms->overlong = false;
	ms->spaced = false;
	ms->gap = false;
	ms->last = TOKEN_NONE;
	ms->any = true;
	ms->angle = true;
	ms->in_angle = true;
}

static void address_invalid(struct address *a)
{
	memset(a, 0, sizeof(*a));
	a->status = ADDR_INVALID;
}

/* End the current mailbox: count it, normalise it when there is room. */
static void mailbox_finish(struct mailbox_list *ml, struct mailbox_scan *ms)
{
	if (!ms->any && !ms->broken) {
		scan_reset(ms);
		return; /* an empty list element: "a@b.example, , c@d.example" */
	}
	if (ml->n < ml->max) {
		struct address *a = &ml->out[ml->n];

		if (ms->broken || ms->overlong || ms->spaced || ms->in_angle) {
			address_invalid(a);
		} else {
			ms->buf[ms->len] = '\0';
			if (address_normalize(ms->buf, "", a) != ADDR_OK)
				address_invalid(a);
		}
	}
	ml->n++;
	scan_reset(ms);
}

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* a byte of an atom: not whitespace and not one of the specials */
static bool is_word_byte(char c)
{
	return c != '\0' && !is_wsp(c) && strchr("()<>[]:;@\\,.\"", c) == NULL;
}

/* a byte of an RFC 2047 charset (token): no CTL, space or especial */
static bool is_charset_byte(unsigned char c)
{
	return c > 0x20 && c < 0x7f && strchr("()<>@,;:\"/[]?.=", c) == NULL;
}

/*
 * When S[I..] starts an encoded word "=?charset?B|Q?text?=", return the
 * index just past it; otherwise 0. The text may hold any byte but space,
 * CTL and '?' (a malformed Q text with ',' '<' '@' '"' included).
 */
static size_t encoded_word_end(const char *s, size_t i, size_t len)
{
	size_t j = i + 2;
	size_t start = j;

	while (j < len && is_charset_byte((unsigned char) s[j]))
		j++;
	if (j == start || j >= len || s[j] != '?')
		return 0;
	j++;
	if (j >= len || (s[j] != 'B' && s[j] != 'b' && s[j] != 'Q' && s[j] != 'q'))
		return 0;
	j++;
	if (j >= len || s[j] != '?')
		return 0;
	j++;
	while (j < len && s[j] != '?' && (unsigned char) s[j] > 0x20
	       && (unsigned char) s[j] != 0x7f)
		j++;
	if (j + 1 >= len || s[j] != '?' || s[j + 1] != '=')
		return 0;
	return j + 2;
}

/* Skip the comment at S[I] == '('; returns the index past its ')'. */
static size_t comment_skip(struct mailbox_scan *ms, const char *s, size_t i,
			   size_t len)
{
	size_t depth = 0;

	ms->gap = true;
	while (i < len) {
		char c = s[i++];

		if (c == '\\') {
			if (i < len)
				i++;
		} else if (c == '(') {
			depth++;
		} else if (c == ')') {
			if (--depth == 0)
				return i;
		}
	}
	ms->broken = true; /* unterminated */
	return len;
}

/*
 * Copy the quoted string (OPEN '"') or domain literal (OPEN '[') at S[I]
 * into the mailbox as one word, dropping folding CR and LF (and, in a
 * literal, all whitespace). Returns the index past its end.
 */
static size_t delimited_copy(struct mailbox_scan *ms, const char *s, size_t i,
			     size_t len, char open)
{
	char close = open == '"' ? '"' : ']';

	scan_token(ms, TOKEN_WORD);
	scan_byte(ms, s[i++]);
	while (i < len) {
		char c = s[i++];

		if (c == '\\') {
			scan_byte(ms, c);
			if (i < len)
				scan_byte(ms, s[i++]);
		} else if (c == close) {
			scan_byte(ms, c);
			return i;
		} else if (c == '\r' || c == '\n') {
			continue;
		} else if (open == '[' && is_wsp(c)) {
			continue;
		} else {
			scan_byte(ms, c);
		}
	}
	ms->broken = true; /* unterminated */
	return len;
}

/* Copy the atom (or encoded word) at S[I]; returns the index past it. */
static size_t word_copy(struct mailbox_scan *ms, const char *s, size_t i,
			size_t len)
{
	size_t end = 0;

	scan_token(ms, TOKEN_WORD);
	if (!ms->in_angle && s[i] == '=' && i + 1 < len && s[i + 1] == '?')
		end = encoded_word_end(s, i, len);
	if (end == 0) {
		end = i + 1; /* always make progress */
		while (end < len && is_word_byte(s[end]))
			end++;
	}
	for (; i < end; i++)
		scan_byte(ms, s[i]);
	return end;
}

size_t headers_parse_addresses(const char *value, struct address *out, size_t max)
{
	struct mailbox_list ml = { out, out != NULL ? max : 0, 0 };
	struct mailbox_scan ms;
	bool in_group = false;
	size_t len;
	size_t i = 0;

	if (value == NULL)
		return 0;
	len = strlen(value);
	scan_reset(&ms);

	while (i < len) {
		char c = value[i];

		switch (c) {
		case ' ':
		case '\t':
		case '\r':
		case '\n':
			ms.gap = true;
			i++;
			break;
		case '(':
			i = comment_skip(&ms, value, i, len);
			break;
		case '"':
		case '[':
			i = delimited_copy(&ms, value, i, len, c);
			break;
		case '<':
			scan_angle_open(&ms);
			i++;
			break;
		case '>':
			if (ms.in_angle)
				ms.in_angle = false;
			else
				scan_garbage(&ms);
			i++;
			break;
		case '@':
		case '.':
			scan_token(&ms, TOKEN_SPECIAL);
			scan_byte(&ms, c);
			i++;
			break;
		case ',':
		case ';':
		case ':':
			i++;
			if (ms.in_angle) {
				/* a source route "<@a,@b:u@d>"; anything else fails later */
				scan_token(&ms, TOKEN_SPECIAL);
				scan_byte(&ms, c);
			} else if (c == ',') {
				mailbox_finish(&ml, &ms);
			} else if (c == ';') {
				mailbox_finish(&ml, &ms);
				in_group = false;
			} else if (in_group || ms.angle) {
				scan_garbage(&ms); /* nested group, or "<a@b>:" */
			} else {
				/* "name:" starts a group; a broken name still counts */
				if (ms.broken)
					mailbox_finish(&ml, &ms);
				scan_reset(&ms);
				in_group = true;
			}
			break;
		case ')':
		case ']':
		case '\\':
			scan_garbage(&ms);
			i++;
			break;
		default:
			i = word_copy(&ms, value, i, len);
			break;
		}
	}
	if (ms.in_angle)
		ms.broken = true;
	mailbox_finish(&ml, &ms);
	return ml.n;
}

/* true when VALUE holds nothing but whitespace and folding */
static bool value_blank(const char *value)
{
	for (; *value != '\0'; value++)
		if (!is_wsp(*value))
			return false;
	return true;
}

/*
 * The first keyword of VALUE, skipping whitespace and (nested) comments;
 * it ends at whitespace, '(' or ';'. Returns its length, 0 when none.
 */
static size_t value_keyword(const char *value, const char **start)
{
	const char *p = value;
	size_t n = 0;

	for (;;) {
		while (is_wsp(*p))
			p++;
		if (*p != '(')
			break;
		{
			size_t depth = 0;

			do {
				if (*p == '\\' && p[1] != '\0')
					p++;
				else if (*p == '(')
					depth++;
				else if (*p == ')')
					depth--;
				p++;
			} while (*p != '\0' && depth > 0);
		}
	}
	*start = p;
	while (p[n] != '\0' && !is_wsp(p[n]) && p[n] != '(' && p[n] != ';')
		n++;
	return n;
}

static bool keyword_is(const char *kw, size_t n, const char *word)
{
	return n == strlen(word) && strncasecmp(kw, word, n) == 0;
}

/* List-Unsubscribe-Post: exactly "List-Unsubscribe=One-Click" (RFC 8058) */
static bool value_one_click(const char *value)
{
	static const char want[] = "List-Unsubscribe=One-Click";
	size_t len = strlen(value);

	while (len > 0 && is_wsp(value[len - 1]))
		len--;
	while (len > 0 && is_wsp(*value)) {
		value++;
		len--;
	}
	return len == sizeof(want) - 1 && strncasecmp(value, want, len) == 0;
}

/* NAME equals WANT ignoring case and whitespace before the colon */
static bool name_is(const char *name, size_t len, const char *want)
{
	return len == strlen(want) && strncasecmp(name, want, len) == 0;
}

void headers_init(struct msg_headers *h)
{
	/* from[] is written before it is read (n_from counts it): not cleared */
	memset(h, 0, offsetof(struct msg_headers, from));
}

void headers_add(struct msg_headers *h, const char *name, const char *value)
{
	size_t nlen;

	if (h == NULL || name == NULL)
		return;
	if (value == NULL)
		value = "";
	nlen = strlen(name);
	while (nlen > 0 && (name[nlen - 1] == ' ' || name[nlen - 1] == '\t'))
		nlen--;

	if (name_is(name, nlen, "From")) {
		size_t kept = h->n_from < FROM_MAX ? h->n_from : FROM_MAX;

		h->from_fields++;
		h->n_from += headers_parse_addresses(value, h->from + kept,
						     FROM_MAX - kept);
	} else if (name_is(name, nlen, "List-Unsubscribe")) {
		if (!value_blank(value))
			h->list_unsubscribe = true;
	} else if (name_is(name, nlen, "List-Unsubscribe-Post")) {
		if (value_one_click(value))
			h->one_click = true;
	} else if (name_is(name, nlen, "List-Id")) {
		h->list_id = true;
	} else if (name_is(name, nlen, "Precedence")) {
		const char *kw;
		size_t n = value_keyword(value, &kw);

		if (keyword_is(kw, n, "bulk") || keyword_is(kw, n, "list")
		    || keyword_is(kw, n, "junk"))
			h->precedence_bulk = true;
	} else if (name_is(name, nlen, "Auto-Submitted")) {
		const char *kw;
		size_t n = value_keyword(value, &kw);

		/* a blank value asserts nothing; any keyword but "no" does */
		if (n > 0 && !keyword_is(kw, n, "no"))
			h->auto_submitted = true;
	} else if (name_is(name, nlen, "Message-ID")) {
		if (!value_blank(value))
			h->message_id = true;
	} else if (name_is(name, nlen, "Date")) {
		if (!value_blank(value))
			h->date = true;
	}
}
