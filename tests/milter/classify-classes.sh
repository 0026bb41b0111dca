#!/bin/bash
# classify-classes.sh - milter protocol: a limit rule with classes =
# {"bulk", "spam-risk"} leaves personal mail alone (its reservations are
# given back at end of message) while a rule for every class counts it;
# bulk mail counts in both; a message tempfailed for its class gives back
# every unit of every rule.
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
t_need miltertest redis-server redis-cli
t_init classify-classes

redis_start
MC_HOURLY=1000 MC_BURST=100 MC_CLASSES='class personal { action = tag }
class bulk { action = tag }
class "spam-risk" { action = tempfail }' MC_EXTRA='
limit bulk-only {
	scope = sender
	hourly = 1000
	burst = 100
	classes = {"bulk", "spam-risk"}
}' MC_CLASSIFY='	header_detail = true' MC_SOCKET=unix:$T/milter.sock milter_std_conf >"$T/m.conf"
milter_start m "$T/m.conf" "unix:$T/milter.sock"

mt_run classes "$OBM_SRCDIR/tests/milter/classify-classes.lua" \
	"sock=unix:$T/milter.sock" "mlog=$(milter_log m)"

milter_stop m
t_done
