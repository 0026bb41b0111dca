/*
 * ratelimit.h - rate limit rules as plain arithmetic: the limits a rule puts on
 * one network, whose traffic a rule counts, and the sliding-window check
 * (the same arithmetic the Redis script performs atomically).
 */
#ifndef OBM_RATELIMIT_H
#define OBM_RATELIMIT_H

#include <stddef.h>

#include "config.h"

#define HOUR_MS 3600000LL

struct limit_values {
	long hourly;
	long burst;
	long burst_window; /* seconds */
};

/* what a message is, as far as scopes go */
struct msg_identity {
	const char *sender;        /* auth user if any, else normalised envelope sender */
	const char *sender_domain; /* domain of the envelope sender ("" for <>) */
	const char *client;        /* client IP, printable */
};

enum window_verdict { WINDOW_ADMIT = 0, WINDOW_OVER_HOURLY = 1, WINDOW_OVER_BURST = 2 };

/* RULE's limits for NETWORK: its override for that network or the rule's own. */
struct limit_values ratelimit_effective(const struct limit_rule *rule, const char *network);

/* The value RULE counts under for this message ("*" for global). */
const char *ratelimit_scope_value(const struct limit_rule *rule, const struct msg_identity *id);

/*
 * Would one more unit at NOW_MS be admitted, given the times (ms, any
 * order) of the units already admitted? Windows are (now - length, now].
 * On refusal *RETRY_MS (when not NULL) is how long until one unit leaves
 * the window that refused.
 */
enum window_verdict ratelimit_window_check(const long long *times_ms, size_t n, long long now_ms,
					struct limit_values lv, long long *retry_ms);

#endif
