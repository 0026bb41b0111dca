/*
 * ratelimit.c - rate limit rules as plain arithmetic, without Redis: which
 * limits a rule puts on one network, whose traffic a rule counts, and the
 * sliding-window check. milter/lua/reserve.lua performs the same check
 * atomically on the shared windows; the two must stay in step (the store
 * integration test compares them over a random sequence).
 *
 * Windows are half-open, (now - length, now]: a unit admitted exactly one
 * window length ago has left it. A unit stamped later than now (a clock
 * that stepped back) still counts, so that no window can ever hold more
 * than its limit. A limit of 0 refuses everything.
 */
#include <string.h>

#include "ratelimit.h"

/* burst_window in ms, kept within 1 s .. 1 h (the configuration's range) */
static long long limits_burst_ms(long burst_window)
{
	if (burst_window < 1)
		burst_window = 1;
	if (burst_window > 3600)
		burst_window = 3600;
	return (long long)burst_window * 1000;
}

struct limit_values ratelimit_effective(const struct limit_rule *rule, const char *network)
{
	struct limit_values lv = {
		.hourly = rule->hourly,
		.burst = rule->burst,
		.burst_window = rule->burst_window,
	};
	size_t i;

	if (network == NULL)
		return lv;
	for (i = 0; i < rule->n_overrides; i++) {
		const struct limit_override *o = &rule->overrides[i];

		if (o->network == NULL || strcmp(o->network, network) != 0)
			continue;
		/* a negative value in an override means "as the rule says" */
		if (o->hourly >= 0)
			lv.hourly = o->hourly;
		if (o->burst >= 0)
			lv.burst = o->burst;
		break;
	}
	return lv;
}

const char *ratelimit_scope_value(const struct limit_rule *rule, const struct msg_identity *id)
{
	const char *v;

	switch (rule->scope) {
	case SCOPE_SENDER:
		v = id->sender;
		break;
	case SCOPE_SENDER_DOMAIN:
		v = id->sender_domain;
		break;
	case SCOPE_CLIENT:
		v = id->client;
		break;
	case SCOPE_GLOBAL:
	default:
		return "*";
	}
	return v != NULL ? v : "";
}

/*
 * Count the units in (now - len, now] and later, and find the oldest of
 * them (*OLDEST is left alone when there is none).
 */
static size_t limits_count_window(const long long *times, size_t n, long long now,
				  long long len, long long *oldest)
{
	size_t i, count = 0;
	long long lo = now - len;

	for (i = 0; i < n; i++) {
		if (times[i] <= lo)
			continue;
		if (count == 0 || times[i] < *oldest)
			*oldest = times[i];
		count++;
	}
	return count;
}

enum window_verdict ratelimit_window_check(const long long *times_ms, size_t n, long long now_ms,
					struct limit_values lv, long long *retry_ms)
{
	long long len[2] = { HOUR_MS, limits_burst_ms(lv.burst_window) };
	long limit[2] = { lv.hourly, lv.burst };
	enum window_verdict which[2] = { WINDOW_OVER_HOURLY, WINDOW_OVER_BURST };
	int w;

	for (w = 0; w < 2; w++) {
		long long oldest = 0;
		size_t used = limits_count_window(times_ms, n, now_ms, len[w], &oldest);

		if (limit[w] > 0 && used < (size_t)limit[w])
			continue;
		/* refused: one unit leaves when the oldest one ages out */
		if (retry_ms != NULL)
			*retry_ms = used > 0 ? oldest + len[w] - now_ms : len[w];
		return which[w];
	}
	return WINDOW_ADMIT;
}
