/*
 * fuzz_headers.c - libFuzzer target for the header collector (headers_add)
 * and the From address-list parser (headers_parse_addresses).
 *
 * Built and run by tests/fuzz/run (make fuzz, make check), e.g.
 *   tests/fuzz/run build 60 headers
 * fuzz-sources: milter/headers.c milter/address.c
 * fuzz-pkgs: libidn2
 *
 * Input format (also that of the seed corpus, tests/fuzz/corpus/headers/):
 *   byte 0     selects the header name: (byte + 2) % 10 picks
 *                0 From               5 Auto-Submitted
 *                1 List-Unsubscribe   6 Message-ID
 *                2 List-Unsubscribe-Post  7 Date
 *                3 List-Id            8 Subject (a header that is ignored)
 *                4 Precedence         9 the name is the value's bytes up to
 *                                       its first ':', the value the rest
 *              so the ASCII digits '0'..'9' select 0..9; bit 0x80 set
 *              upper-cases the name, else bit 0x40 set lower-cases it.
 *   bytes 1..  the raw header value, cut at the first NUL (as a C string
 *              from the milter would be); folding CRLF/LF kept as sent.
 *
 * Besides memory errors, undefined behaviour and leaks, the target aborts
 * when a result breaks an invariant: the count is bounded by the number of
 * separators, at most FROM_MAX mailboxes are kept and they are the same as
 * a direct parse, every kept OK mailbox has a non-empty local part and
 * domain with full == local@domain and normalises to itself again, every
 * other one is ADDR_INVALID with empty strings, the cap does not change
 * the count, and the non-From flags agree with a simple reading of the
 * value.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "address.h"
#include "headers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const names[] = {
	"From", "List-Unsubscribe", "List-Unsubscribe-Post", "List-Id",
	"Precedence", "Auto-Submitted", "Message-ID", "Date", "Subject",
};

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

static bool blank(const char *v)
{
	for (; *v; v++)
		if (*v != ' ' && *v != '\t' && *v != '\r' && *v != '\n')
			return false;
	return true;
}

static void check_mailbox(const struct address *a)
{
	struct address again;
	size_t l, d;

	if (a->status != ADDR_OK) {
		CHECK(a->status == ADDR_INVALID);
		CHECK(a->full[0] == '\0' && a->local[0] == '\0' && a->domain[0] == '\0');
		return;
	}
	l = strnlen(a->local, sizeof(a->local));
	d = strnlen(a->domain, sizeof(a->domain));
	CHECK(l > 0 && l <= ADDR_LOCAL_MAX);
	CHECK(d > 0 && d <= ADDR_DOMAIN_MAX);
	CHECK(strlen(a->full) == l + 1 + d);
	CHECK(memcmp(a->full, a->local, l) == 0 && a->full[l] == '@'
	      && memcmp(a->full + l + 1, a->domain, d) == 0);
	CHECK(address_normalize(a->full, "", &again) == ADDR_OK);
	CHECK(strcmp(again.full, a->full) == 0);
}

static bool same_mailbox(const struct address *a, const struct address *b)
{
	return a->status == b->status && strcmp(a->full, b->full) == 0;
}

static void check_from(const char *value)
{
	struct address out[FROM_MAX];
	struct address few[2];
	struct msg_headers h;
	size_t n, seps = 0, kept;

	n = headers_parse_addresses(value, out, FROM_MAX);
	for (const char *p = value; *p; p++)
		if (*p == ',' || *p == ';' || *p == ':')
			seps++;
	CHECK(n <= seps + 1);
	kept = n < FROM_MAX ? n : FROM_MAX;
	for (size_t i = 0; i < kept; i++)
		check_mailbox(&out[i]);

	/* the cap changes what is kept, not what is counted */
	CHECK(headers_parse_addresses(value, few, 2) == n);
	CHECK(headers_parse_addresses(value, NULL, 0) == n);
	for (size_t i = 0; i < kept && i < 2; i++)
		CHECK(same_mailbox(&few[i], &out[i]));

	/* through headers_add, twice: counted twice, kept in order */
	headers_init(&h);
	headers_add(&h, "From", value);
	CHECK(h.from_fields == 1 && h.n_from == n);
	for (size_t i = 0; i < kept; i++)
		CHECK(same_mailbox(&h.from[i], &out[i]));
	headers_add(&h, "from", value);
	CHECK(h.from_fields == 2 && h.n_from == 2 * n);
	for (size_t i = kept; i < FROM_MAX && i < 2 * n; i++)
		CHECK(same_mailbox(&h.from[i], &out[i - kept]));
}

/* "From" whatever its case, with blanks before the colon */
static bool name_is_from(const char *name)
{
	size_t n = strlen(name);

	while (n > 0 && (name[n - 1] == ' ' || name[n - 1] == '\t'))
		n--;
	return n == 4 && strncasecmp(name, "From", 4) == 0;
}

static void upcase(char *s, bool upper)
{
	for (; *s; s++) {
		if (upper && *s >= 'a' && *s <= 'z')
			*s = (char) (*s - 'a' + 'A');
		else if (!upper && *s >= 'A' && *s <= 'Z')
			*s = (char) (*s - 'A' + 'a');
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct msg_headers h;
	char name[32];
	char *buf;
	const char *value;
	const char *hname;
	unsigned sel;
	bool from;

	if (size == 0)
		return 0;
	sel = ((unsigned) data[0] + 2) % 10;
	buf = malloc(size);
	if (buf == NULL)
		return 0;
	memcpy(buf, data + 1, size - 1);
	buf[size - 1] = '\0';

	if (sel == 9) {
		char *colon = strchr(buf, ':');

		if (colon != NULL) {
			*colon = '\0';
			value = colon + 1;
		} else {
			value = "";
		}
		hname = buf;
	} else {
		strcpy(name, names[sel]);
		if (data[0] & 0x80)
			upcase(name, true);
		else if (data[0] & 0x40)
			upcase(name, false);
		hname = name;
		value = buf;
	}

	headers_init(&h);
	headers_add(&h, hname, value);
	from = name_is_from(hname);
	if (!from)
		CHECK(h.from_fields == 0 && h.n_from == 0);
	else
		CHECK(h.from_fields == 1);
	if (sel == 1)
		CHECK(h.list_unsubscribe == !blank(value));
	if (sel == 6)
		CHECK(h.message_id == !blank(value));
	if (sel == 7)
		CHECK(h.date == !blank(value));
	if (sel == 3)
		CHECK(h.list_id);
	if (sel == 8)
		CHECK(!h.list_unsubscribe && !h.one_click && !h.list_id
		      && !h.precedence_bulk && !h.auto_submitted
		      && !h.message_id && !h.date);

	/* every value is also parsed as an address list */
	check_from(value);
	free(buf);
	return 0;
}
