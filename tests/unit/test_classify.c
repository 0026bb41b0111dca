/*
 * test_classify.c - the classifier (README, "Classification"), table-driven: every
 * rule, every threshold at and one past its boundary, the known-recipient
 * ratio exactly met and just missed, every reason token in its place, the
 * require_* switches, all-internal mail, blocked senders and missing
 * headers; plus purity (same input, same output, input left untouched).
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "classify.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* header flags of a row */
#define H_UNSUB 0x01u   /* List-Unsubscribe */
#define H_ONECLICK 0x02u /* List-Unsubscribe-Post: List-Unsubscribe=One-Click */
#define H_LISTID 0x04u  /* List-Id */
#define H_PREC 0x08u    /* Precedence: bulk|list|junk */
#define H_AUTO 0x10u    /* Auto-Submitted: auto-generated */
#define H_MSGID 0x20u   /* Message-ID */
#define H_DATE 0x40u    /* Date */
#define H_NULL 0x80u    /* no header struct at all (headers == NULL) */
#define H_ADV (H_ONECLICK | H_MSGID | H_DATE) /* every bulk-sender advice met */
#define H_GOOD (H_UNSUB | H_ADV)               /* a well-formed bulk message */

/* thresholds of a row */
struct conf_row {
	long max_rcpts;
	long max_hourly;
	double ratio;
	bool req_unsub;
	bool req_aligned;
};

#define DEF { 5, 50, 0.5, true, true } /* the shipped defaults */
#define NO_UNSUB { 5, 50, 0.5, false, true }
#define NO_ALIGN { 5, 50, 0.5, true, false }
#define LAX { 5, 50, 0.5, false, false }
#define RATIO(r) { 5, 50, (r), true, true }

struct row {
	const char *name;
	struct conf_row c;
	unsigned rcpts, known, velocity;
	bool blocked, aligned;
	unsigned hdr;
	enum msg_class cls;
	const char *reasons;
};

#define P CLASS_PERSONAL
#define B CLASS_BULK
#define S CLASS_SPAM_RISK

static const struct row rows[] = {
	/* rule 1: recipient count, at the threshold and one over */
	{ "one recipient", DEF, 1, 1, 1, false, true, H_ADV, P, "" },
	{ "rcpts at max, all unknown", DEF, 5, 0, 5, false, false, 0, P, "" },
	{ "rcpts one over, no unsub required", NO_UNSUB, 6, 6, 6, false, true, H_ADV, B,
	  "rcpt-count" },
	{ "rcpts one over, unsub required", DEF, 6, 6, 6, false, true, H_ADV, S,
	  "rcpt-count,no-unsubscribe" },
	{ "rcpts at max 0", { 0, 50, 0.5, false, true }, 1, 1, 1, false, true, H_ADV, B,
	  "rcpt-count" },
	{ "rcpts at max 100", { 100, 50, 0.5, false, true }, 100, 100, 1, false, true, H_ADV, P,
	  "" },
	{ "rcpts one over max 100", { 100, 50, 0.5, false, true }, 101, 101, 1, false, true,
	  H_ADV, B, "rcpt-count" },

	/* rule 1: velocity, at the threshold and one over */
	{ "velocity at max", DEF, 1, 0, 50, false, true, H_ADV, P, "" },
	{ "velocity one over", NO_UNSUB, 1, 1, 51, false, true, H_ADV, B, "velocity" },
	{ "velocity one over, recipient unknown", NO_UNSUB, 1, 0, 51, false, true, H_ADV, S,
	  "velocity,unknown-recipients" },
	{ "velocity at max 0", { 5, 0, 0.5, false, true }, 1, 1, 0, false, true, H_ADV, P, "" },
	{ "velocity one over max 0", { 5, 0, 0.5, false, true }, 1, 1, 1, false, true, H_ADV, B,
	  "velocity" },

	/* rule 1: list headers, each alone */
	{ "list-id", NO_UNSUB, 1, 1, 1, false, true, H_ADV | H_LISTID, B, "list-id" },
	{ "list-unsubscribe", DEF, 1, 1, 1, false, true, H_GOOD, B, "list-unsubscribe" },
	{ "precedence", NO_UNSUB, 1, 1, 1, false, true, H_ADV | H_PREC, B, "precedence" },
	{ "auto-submitted is not a list header", DEF, 1, 1, 1, false, true, H_ADV | H_AUTO, P,
	  "" },
	{ "every bulk-like trigger", DEF, 6, 6, 51, false, true,
	  H_GOOD | H_LISTID | H_PREC | H_AUTO, B,
	  "rcpt-count,velocity,list-id,list-unsubscribe,precedence" },

	/* all internal: personal whatever the headers say */
	{ "all internal, every list header", DEF, 0, 0, 1000, false, false,
	  H_LISTID | H_UNSUB | H_PREC, P, "" },
	{ "all internal, no headers", DEF, 0, 0, 0, false, false, 0, P, "" },
	{ "all internal, NULL headers", DEF, 0, 0, 60, false, false, H_NULL, P, "" },
	{ "all internal, blocked", DEF, 0, 0, 1000, true, false, H_LISTID | H_PREC, S,
	  "blocked" },

	/* blocked senders */
	{ "blocked, personal-looking", DEF, 1, 1, 1, true, true, H_ADV, S, "blocked" },
	{ "blocked, personal-looking, nothing else right", DEF, 2, 0, 2, true, false, 0, S,
	  "blocked" },
	{ "blocked, clean bulk", DEF, 1, 1, 1, true, true, H_GOOD, S,
	  "list-unsubscribe,blocked" },
	{ "blocked, unknown recipients", DEF, 10, 4, 10, true, true, H_GOOD, S,
	  "rcpt-count,list-unsubscribe,blocked,unknown-recipients" },
	{ "blocked, lax conf", LAX, 6, 6, 6, true, false, H_ADV, S, "rcpt-count,blocked" },

	/* require_unsubscribe and require_aligned_from switched on and off */
	{ "from mismatch", DEF, 6, 6, 6, false, false, H_GOOD, S,
	  "rcpt-count,list-unsubscribe,from-mismatch" },
	{ "from mismatch, not required", NO_ALIGN, 6, 6, 6, false, false, H_GOOD, B,
	  "rcpt-count,list-unsubscribe" },
	{ "no unsubscribe, not required", NO_UNSUB, 1, 1, 1, false, true, H_ADV | H_LISTID, B,
	  "list-id" },
	{ "no unsubscribe and mismatch, both off", LAX, 6, 6, 6, false, false, H_ADV, B,
	  "rcpt-count" },
	{ "no unsubscribe and mismatch, both on", DEF, 6, 6, 6, false, false, H_ADV, S,
	  "rcpt-count,no-unsubscribe,from-mismatch" },
	{ "mismatch on personal mail", DEF, 1, 0, 1, false, false, 0, P, "" },

	/* every reason at once, in order */
	{ "every reason but list-unsubscribe", DEF, 6, 0, 51, true, false, H_LISTID | H_PREC, S,
	  "rcpt-count,velocity,list-id,precedence,blocked,unknown-recipients,"
	  "no-unsubscribe,from-mismatch,no-one-click,no-message-id,no-date" },
	{ "every reason but no-unsubscribe", DEF, 6, 0, 51, true, false,
	  H_UNSUB | H_LISTID | H_PREC, S,
	  "rcpt-count,velocity,list-id,list-unsubscribe,precedence,blocked,"
	  "unknown-recipients,from-mismatch,no-one-click,no-message-id,no-date" },

	/* bulk-sender advice: on bulk-like mail only, never a spam-risk reason */
	{ "no one-click", DEF, 1, 1, 1, false, true, H_UNSUB | H_MSGID | H_DATE, B,
	  "list-unsubscribe,no-one-click" },
	{ "no message-id", DEF, 1, 1, 1, false, true, H_UNSUB | H_ONECLICK | H_DATE, B,
	  "list-unsubscribe,no-message-id" },
	{ "no date", DEF, 1, 1, 1, false, true, H_UNSUB | H_ONECLICK | H_MSGID, B,
	  "list-unsubscribe,no-date" },
	{ "no advice met", DEF, 1, 1, 1, false, true, H_UNSUB, B,
	  "list-unsubscribe,no-one-click,no-message-id,no-date" },
	{ "one-click without list-unsubscribe", NO_UNSUB, 6, 6, 6, false, true, H_ADV, B,
	  "rcpt-count" },
	{ "no advice on personal mail", DEF, 1, 1, 1, false, true, 0, P, "" },
	{ "advice on spam-risk", DEF, 6, 2, 6, false, true, H_UNSUB | H_DATE, S,
	  "rcpt-count,list-unsubscribe,unknown-recipients,no-one-click,no-message-id" },

	/* NULL headers: no header at all */
	{ "NULL headers, personal", DEF, 1, 0, 1, false, true, H_NULL, P, "" },
	{ "NULL headers, many recipients", DEF, 6, 6, 6, false, true, H_NULL, S,
	  "rcpt-count,no-unsubscribe,no-one-click,no-message-id,no-date" },
	{ "NULL headers, no unsub required", NO_UNSUB, 6, 6, 6, false, true, H_NULL, B,
	  "rcpt-count,no-one-click,no-message-id,no-date" },
	{ "NULL headers, blocked", DEF, 1, 1, 1, true, true, H_NULL, S, "blocked" },
	{ "NULL headers, velocity", LAX, 1, 0, 51, false, false, H_NULL, S,
	  "velocity,unknown-recipients,no-one-click,no-message-id,no-date" },

	/* min_known_ratio exactly met (bulk) and just missed (spam-risk) */
	{ "0.5 10/10", RATIO(0.5), 10, 10, 10, false, true, H_GOOD, B,
	  "rcpt-count,list-unsubscribe" },
	{ "0.5 5/10", RATIO(0.5), 10, 5, 10, false, true, H_GOOD, B,
	  "rcpt-count,list-unsubscribe" },
	{ "0.5 4/10", RATIO(0.5), 10, 4, 10, false, true, H_GOOD, S,
	  "rcpt-count,list-unsubscribe,unknown-recipients" },
	{ "0.5 2/3", RATIO(0.5), 3, 2, 3, false, true, H_GOOD, B, "list-unsubscribe" },
	{ "0.5 1/3", RATIO(0.5), 3, 1, 3, false, true, H_GOOD, S,
	  "list-unsubscribe,unknown-recipients" },
	{ "0.5 4/7", RATIO(0.5), 7, 4, 7, false, true, H_GOOD, B,
	  "rcpt-count,list-unsubscribe" },
	{ "0.5 3/7", RATIO(0.5), 7, 3, 7, false, true, H_GOOD, S,
	  "rcpt-count,list-unsubscribe,unknown-recipients" },
	{ "0.5 1/1", RATIO(0.5), 1, 1, 1, false, true, H_GOOD, B, "list-unsubscribe" },
	{ "0.5 0/1", RATIO(0.5), 1, 0, 1, false, true, H_GOOD, S,
	  "list-unsubscribe,unknown-recipients" },
	{ "0.3 3/10", RATIO(0.3), 10, 3, 10, false, true, H_GOOD, B,
	  "rcpt-count,list-unsubscribe" },
	{ "0.3 2/10", RATIO(0.3), 10, 2, 10, false, true, H_GOOD, S,
	  "rcpt-count,list-unsubscribe,unknown-recipients" },
	{ "0.3 3/7", RATIO(0.3), 7, 3, 7, false, true, H_GOOD, B,
	  "rcpt-count,list-unsubscribe" },
	{ "0.3 2/7", RATIO(0.3), 7, 2, 7, false, true, H_GOOD, S,
	  "rcpt-count,list-unsubscribe,unknown-recipients" },
	{ "0.3 1/3", RATIO(0.3), 3, 1, 3, false, true, H_GOOD, B, "list-unsubscribe" },
	{ "0.3 0/3", RATIO(0.3), 3, 0, 3, false, true, H_GOOD, S,
	  "list-unsubscribe,unknown-recipients" },
	{ "1.0 7/7", RATIO(1.0), 7, 7, 7, false, true, H_GOOD, B,
	  "rcpt-count,list-unsubscribe" },
	{ "1.0 6/7", RATIO(1.0), 7, 6, 7, false, true, H_GOOD, S,
	  "rcpt-count,list-unsubscribe,unknown-recipients" },
	{ "1.0 3/3", RATIO(1.0), 3, 3, 3, false, true, H_GOOD, B, "list-unsubscribe" },
	{ "1.0 2/3", RATIO(1.0), 3, 2, 3, false, true, H_GOOD, S,
	  "list-unsubscribe,unknown-recipients" },
	{ "0.0 0/7", RATIO(0.0), 7, 0, 7, false, true, H_GOOD, B,
	  "rcpt-count,list-unsubscribe" },
	{ "0.0 0/3", RATIO(0.0), 3, 0, 3, false, true, H_GOOD, B, "list-unsubscribe" },
	{ "0.1 1/10", RATIO(0.1), 10, 1, 10, false, true, H_GOOD, B,
	  "rcpt-count,list-unsubscribe" },
	{ "0.1 0/10", RATIO(0.1), 10, 0, 10, false, true, H_GOOD, S,
	  "rcpt-count,list-unsubscribe,unknown-recipients" },
	{ "0.6 3/5", RATIO(0.6), 5, 3, 5, false, true, H_GOOD, B, "list-unsubscribe" },
	{ "0.6 2/5", RATIO(0.6), 5, 2, 5, false, true, H_GOOD, S,
	  "list-unsubscribe,unknown-recipients" },
	{ "0.7 7/10", RATIO(0.7), 10, 7, 10, false, true, H_GOOD, B,
	  "rcpt-count,list-unsubscribe" },
	{ "0.7 6/10", RATIO(0.7), 10, 6, 10, false, true, H_GOOD, S,
	  "rcpt-count,list-unsubscribe,unknown-recipients" },
	/* 0.07 * 100 and 0.55 * 100 come out above 7 and 55 in binary floating point */
	{ "0.07 7/100", RATIO(0.07), 100, 7, 100, false, true, H_GOOD, B,
	  "rcpt-count,velocity,list-unsubscribe" },
	{ "0.07 6/100", RATIO(0.07), 100, 6, 100, false, true, H_GOOD, S,
	  "rcpt-count,velocity,list-unsubscribe,unknown-recipients" },
	{ "0.55 55/100", RATIO(0.55), 100, 55, 40, false, true, H_GOOD, B,
	  "rcpt-count,list-unsubscribe" },
	{ "0.55 54/100", RATIO(0.55), 100, 54, 40, false, true, H_GOOD, S,
	  "rcpt-count,list-unsubscribe,unknown-recipients" },
	/* ... and by more than any fixed small tolerance with large counts */
	{ "0.55 1.65e9/3e9", RATIO(0.55), 3000000000u, 1650000000u, 1, false, true, H_GOOD, B,
	  "rcpt-count,list-unsubscribe" },
	{ "0.55 (1.65e9-1)/3e9", RATIO(0.55), 3000000000u, 1649999999u, 1, false, true, H_GOOD,
	  S, "rcpt-count,list-unsubscribe,unknown-recipients" },
	{ "0.07 2.1e8/3e9", RATIO(0.07), 3000000000u, 210000000u, 1, false, true, H_GOOD, B,
	  "rcpt-count,list-unsubscribe" },
	/* counts near the top of unsigned */
	{ "0.5 2e9/4e9", RATIO(0.5), 4000000000u, 2000000000u, 1, false, true, H_GOOD, B,
	  "rcpt-count,list-unsubscribe" },
	{ "0.5 (2e9-1)/4e9", RATIO(0.5), 4000000000u, 1999999999u, 1, false, true, H_GOOD, S,
	  "rcpt-count,list-unsubscribe,unknown-recipients" },
	{ "1.0 max/max", RATIO(1.0), UINT_MAX, UINT_MAX, UINT_MAX, false, true, H_GOOD, B,
	  "rcpt-count,velocity,list-unsubscribe" },
	{ "1.0 (max-1)/max", RATIO(1.0), UINT_MAX, UINT_MAX - 1, UINT_MAX, false, true, H_GOOD,
	  S, "rcpt-count,velocity,list-unsubscribe,unknown-recipients" },
};

static const char *const token_order[] = {
	"rcpt-count", "velocity", "list-id", "list-unsubscribe", "precedence",
	"blocked", "unknown-recipients", "no-unsubscribe", "from-mismatch",
	"no-one-click", "no-message-id", "no-date",
};

static void conf_fill(struct classify_conf *cc, const struct conf_row *c)
{
	memset(cc, 0, sizeof(*cc));
	cc->personal_max_recipients = c->max_rcpts;
	cc->personal_max_hourly = c->max_hourly;
	cc->min_known_ratio = c->ratio;
	cc->require_unsubscribe = c->req_unsub;
	cc->require_aligned_from = c->req_aligned;
	cc->header = NULL;
	cc->add_header = true;
}

/* Fill the headers by hand (no dependency on the header parser). */
static void headers_fill(struct msg_headers *h, unsigned hdr)
{
	memset(h, 0, sizeof(*h));
	h->list_unsubscribe = (hdr & H_UNSUB) != 0;
	h->one_click = (hdr & H_ONECLICK) != 0;
	h->list_id = (hdr & H_LISTID) != 0;
	h->precedence_bulk = (hdr & H_PREC) != 0;
	h->auto_submitted = (hdr & H_AUTO) != 0;
	h->message_id = (hdr & H_MSGID) != 0;
	h->date = (hdr & H_DATE) != 0;
	h->from_fields = 1;
	h->n_from = 1;
}

static void input_fill(struct classify_input *in, struct msg_headers *h, const struct row *r)
{
	memset(in, 0, sizeof(*in));
	in->rcpts = r->rcpts;
	in->known = r->known;
	in->velocity = r->velocity;
	in->blocked = r->blocked;
	in->from_aligned = r->aligned;
	headers_fill(h, r->hdr);
	in->headers = (r->hdr & H_NULL) ? NULL : h;
}

static const char *cls_str(enum msg_class c)
{
	switch (c) {
	case CLASS_PERSONAL:
		return "personal";
	case CLASS_BULK:
		return "bulk";
	case CLASS_SPAM_RISK:
		return "spam-risk";
	default:
		return "?";
	}
}

static int token_index(const char *tok, size_t len)
{
	for (size_t i = 0; i < N(token_order); i++)
		if (strlen(token_order[i]) == len && memcmp(token_order[i], tok, len) == 0)
			return (int)i;
	return -1;
}

/* Every token known, no spaces, no empty token, each after the one before. */
static bool reasons_well_formed(const char *s)
{
	int last = -1;

	if (*s == '\0')
		return true;
	for (;;) {
		const char *comma = strchr(s, ',');
		size_t len = comma != NULL ? (size_t)(comma - s) : strlen(s);
		int idx = token_index(s, len);

		if (idx <= last)
			return false;
		last = idx;
		if (comma == NULL)
			return true;
		s = comma + 1;
	}
}

static void test_table(void **state)
{
	unsigned failed = 0;

	(void)state;
	for (size_t i = 0; i < N(rows); i++) {
		const struct row *r = &rows[i];
		struct classify_conf cc;
		struct classify_input in;
		struct msg_headers h;
		struct classify_result out;

		conf_fill(&cc, &r->c);
		input_fill(&in, &h, r);
		memset(&out, 'x', sizeof(out)); /* the result must be fully written */
		out.cls = CLASS_COUNT;
		classify_message(&cc, &in, &out);

		if (memchr(out.reasons, '\0', sizeof(out.reasons)) == NULL) {
			printf("row %zu (%s): reasons not terminated\n", i, r->name);
			failed++;
			continue;
		}
		if (out.cls != r->cls || strcmp(out.reasons, r->reasons) != 0) {
			printf("row %zu (%s): got %s \"%s\", want %s \"%s\"\n", i, r->name,
			       cls_str(out.cls), out.reasons, cls_str(r->cls), r->reasons);
			failed++;
		}
		if (!reasons_well_formed(out.reasons)) {
			printf("row %zu (%s): malformed reasons \"%s\"\n", i, r->name,
			       out.reasons);
			failed++;
		}
		/* personal mail never carries a reason */
		if (out.cls == CLASS_PERSONAL && out.reasons[0] != '\0') {
			printf("row %zu (%s): personal with reasons\n", i, r->name);
			failed++;
		}
	}
	assert_true(N(rows) >= 40);
	assert_int_equal(failed, 0);
}

/* Every token of the table appears in some row's expected reasons. */
static void test_every_token_covered(void **state)
{
	(void)state;
	for (size_t t = 0; t < N(token_order); t++) {
		bool seen = false;
		size_t tl = strlen(token_order[t]);

		for (size_t i = 0; i < N(rows) && !seen; i++) {
			const char *s = rows[i].reasons;

			while (*s != '\0' && !seen) {
				const char *comma = strchr(s, ',');
				size_t len = comma != NULL ? (size_t)(comma - s) : strlen(s);

				seen = len == tl && memcmp(s, token_order[t], tl) == 0;
				s += len + (comma != NULL);
			}
		}
		if (!seen)
			printf("token %s not covered\n", token_order[t]);
		assert_true(seen);
	}
}

/* The longest possible reason list fits with room to spare. */
static void test_reasons_fit(void **state)
{
	size_t total = 0;

	(void)state;
	for (size_t t = 0; t < N(token_order); t++)
		total += strlen(token_order[t]) + 1;
	assert_true(total <= REASONS_MAX);
}

/* Same input twice gives the same output, and the input is not written. */
static void test_pure(void **state)
{
	(void)state;
	for (size_t i = 0; i < N(rows); i++) {
		const struct row *r = &rows[i];
		struct classify_conf cc, cc_copy;
		struct classify_input in, in_copy;
		struct msg_headers h, h_copy;
		struct classify_result a, b;

		conf_fill(&cc, &r->c);
		input_fill(&in, &h, r);
		memcpy(&cc_copy, &cc, sizeof(cc));
		memcpy(&in_copy, &in, sizeof(in));
		memcpy(&h_copy, &h, sizeof(h));

		memset(&a, 0xaa, sizeof(a));
		memset(&b, 0x55, sizeof(b));
		classify_message(&cc, &in, &a);
		classify_message(&cc, &in, &b);

		assert_int_equal(a.cls, b.cls);
		assert_string_equal(a.reasons, b.reasons);
		assert_memory_equal(&cc, &cc_copy, sizeof(cc));
		assert_memory_equal(&in, &in_copy, sizeof(in));
		assert_memory_equal(&h, &h_copy, sizeof(h));
	}
}

/* A result reused across messages carries nothing over. */
static void test_result_reused(void **state)
{
	struct classify_conf cc;
	struct classify_input in;
	struct msg_headers h;
	struct classify_result out;

	(void)state;
	conf_fill(&cc, &(struct conf_row)DEF);
	input_fill(&in, &h, &(struct row){ "", DEF, 6, 0, 51, true, false, H_LISTID, S, "" });
	classify_message(&cc, &in, &out);
	assert_int_equal(out.cls, CLASS_SPAM_RISK);
	assert_string_equal(out.reasons, "rcpt-count,velocity,list-id,blocked,"
			    "unknown-recipients,no-unsubscribe,from-mismatch,no-one-click,"
			    "no-message-id,no-date");

	memset(&in, 0, sizeof(in));
	in.rcpts = 1;
	in.known = 1;
	in.velocity = 1;
	in.from_aligned = true;
	classify_message(&cc, &in, &out);
	assert_int_equal(out.cls, CLASS_PERSONAL);
	assert_string_equal(out.reasons, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_every_token_covered),
		cmocka_unit_test(test_reasons_fit),
		cmocka_unit_test(test_pure),
		cmocka_unit_test(test_result_reused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
