/*
 * classify.c - the message class (personal, bulk, spam-risk) and its
 * reasons, a pure function of the counts, the sender's state and the
 * collected headers (README, "Classification").
 *
 * Rules:
 *   bulk-like: more external recipients than personal_max_recipients, a
 *     velocity over personal_max_hourly, or a list header (List-Id,
 *     List-Unsubscribe, Precedence: bulk|list|junk). A message with no
 *     external recipient is never bulk-like.
 *   spam-risk: a blocked sender, always; or bulk-like mail with too few
 *     known recipients, without List-Unsubscribe (require_unsubscribe), or
 *     with a From outside the sender's organisational domain
 *     (require_aligned_from).
 *   bulk: any other bulk-like mail. personal: everything else.
 * Bulk-like mail also gets the bulk-sender advice (no-one-click,
 * no-message-id, no-date). Every trigger that holds is listed, in the
 * order documented in classify.h.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "classify.h"

/* min_known_ratio is compared at this resolution (nine decimal places) */
#define RATIO_SCALE 1000000000ULL

/* Append TOKEN to the comma-separated list in OUT; never overflows. */
static void reasons_add(struct classify_result *out, const char *token)
{
	size_t len = strlen(out->reasons);
	size_t need = strlen(token) + (len > 0 ? 1 : 0);

	if (len + need >= sizeof(out->reasons))
		return;
	if (len > 0)
		out->reasons[len++] = ',';
	memcpy(out->reasons + len, token, strlen(token) + 1);
}

/*
 * known/rcpts < ratio, in integer arithmetic so that a ratio that is
 * exactly met ("0.3" with 3 of 10) is never taken for a shortfall by a
 * rounding error. The ratio is rounded to 1/RATIO_SCALE; every product fits
 * in 64 bits (counts are below 2^32, the scaled ratio below 2^31).
 */
static bool classify_too_few_known(unsigned known, unsigned rcpts, double ratio)
{
	uint64_t scaled;

	if (rcpts == 0 || isnan(ratio) || ratio <= 0.0)
		return false;
	if (ratio >= 2.0)
		scaled = 2 * RATIO_SCALE; /* above 1: nothing can meet it */
	else
		scaled = (uint64_t)(ratio * (double)RATIO_SCALE + 0.5);
	return (uint64_t)known * RATIO_SCALE < scaled * (uint64_t)rcpts;
}

void classify_message(const struct classify_conf *cc, const struct classify_input *in,
		      struct classify_result *out)
{
	static const struct msg_headers no_headers; /* all false */
	const struct msg_headers *h = in->headers != NULL ? in->headers : &no_headers;
	bool bulk_like = false;
	bool risk = false;

	out->cls = CLASS_PERSONAL;
	out->reasons[0] = '\0';

	/* Why it is bulk-like; all-internal mail is personal whatever it says. */
	if (in->rcpts > 0) {
		if ((long long)in->rcpts > (long long)cc->personal_max_recipients) {
			reasons_add(out, "rcpt-count");
			bulk_like = true;
		}
		if ((long long)in->velocity > (long long)cc->personal_max_hourly) {
			reasons_add(out, "velocity");
			bulk_like = true;
		}
		if (h->list_id) {
			reasons_add(out, "list-id");
			bulk_like = true;
		}
		if (h->list_unsubscribe) {
			reasons_add(out, "list-unsubscribe");
			bulk_like = true;
		}
		if (h->precedence_bulk) {
			reasons_add(out, "precedence");
			bulk_like = true;
		}
	}

	/* Why it is spam-risk: blocked always counts, the rest on bulk-like mail. */
	if (in->blocked) {
		reasons_add(out, "blocked");
		risk = true;
	}
	if (bulk_like) {
		if (classify_too_few_known(in->known, in->rcpts, cc->min_known_ratio)) {
			reasons_add(out, "unknown-recipients");
			risk = true;
		}
		if (cc->require_unsubscribe && !h->list_unsubscribe) {
			reasons_add(out, "no-unsubscribe");
			risk = true;
		}
		if (cc->require_aligned_from && !in->from_aligned) {
			reasons_add(out, "from-mismatch");
			risk = true;
		}

		/* The mailbox providers' bulk-sender requirements. */
		if (!h->one_click)
			reasons_add(out, "no-one-click");
		if (!h->message_id)
			reasons_add(out, "no-message-id");
		if (!h->date)
			reasons_add(out, "no-date");
	}

	if (risk)
		out->cls = CLASS_SPAM_RISK;
	else if (bulk_like)
		out->cls = CLASS_BULK;
}
