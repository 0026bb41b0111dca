#!/bin/bash
# load.sh - 10,000 messages in 20 concurrent SMTP sessions through a
# private Postfix with the milter, relayed to smtp-sink. Recipients per
# message cycle 1, 3, 10 over seven recipient networks (configured ones,
# registrable domains, an address literal); 50 senders. Yahoo has a tight
# per-sender limit, so part of the recipients are tempfailed at RCPT; 10
# unknown recipients make a message spam-risk, which is held. Every message
# and every recipient is accounted for: sent = delivered + held +
# tempfailed, exactly, and the accepted messages are exactly those found at
# the sink or in the hold queue. The fleet counters in Redis agree. The
# milter's resident memory after warm-up (1,000 messages) and at the end
# may differ by at most RSS_BOUND_KB.
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
. "$OBM_SRCDIR/tests/lib/postfix.sh"
. "$OBM_SRCDIR/tests/faults/lib/faults.bash"
t_need redis-server redis-cli postfix smtp-sink perl
[ "$(id -u)" -eq 0 ] || t_skip_all "needs root for a private Postfix instance"
t_init faults-load

MESSAGES=${OBM_LOAD_MESSAGES:-10000}
SESSIONS=20
WARMUP=1000
RSS_BOUND_KB=20480
YAHOO_LIMIT=100

redis_start
MC_SOCKET=unix:$T/milter.sock
MC_LIMIT_EXTRA="network yahoo { hourly = $YAHOO_LIMIT; burst = $YAHOO_LIMIT }"
MC_CLASSIFY='personal_max_hourly = 10000'
MC_CLASSES='class personal { action = tag }
class bulk { action = tag }
class "spam-risk" { action = hold }'
faults_conf >"$T/m.conf"
milter_start m "$T/m.conf" "$MC_SOCKET"
mpid=${MILTER_PID[m]}
sink_start s
pf_setup a s "$MC_SOCKET" tempfail
pf_start a

t0=$(t_now)
load_start L --port "${PF_OUT[a]}" --sessions "$SESSIONS" --messages "$MESSAGES" \
	--rcpts 1,3,10 --senders 50
load_wait_progress L "$WARMUP" 120 || t_fail "warm-up: $WARMUP messages within 120 s"
rss_warm=$(rss_kb "$mpid")
thr_warm=$(threads_of "$mpid")
load_wait L 600
t1=$(t_now)
rss_end=$(rss_kb "$mpid")
thr_end=$(threads_of "$mpid")
t_ok "the milter is still running after the load" t_alive "$mpid"

pf_wait_settled a 120 || t_fail "Postfix delivered or held everything within 120 s" \
	"$(pf_queue a | head -n 5)"
t2=$(t_now)

account load L s a
fig "load: $MESSAGES messages, $SESSIONS sessions: client $(awk -v a="$t0" -v b="$t1" \
	'BEGIN { printf "%.1f s (%.0f msg/s)", b - a, '"$MESSAGES"' / (b - a) }'), all" \
	"delivered or held after $(awk -v a="$t0" -v b="$t2" 'BEGIN { printf "%.1f s", b - a }')"
fig "load: latency at the client: slowest RCPT $(load_get L max_rcpt_ms) ms," \
	"slowest end of data $(load_get L max_eom_ms) ms"
fig "load: milter VmRSS after warm-up ($WARMUP messages) ${rss_warm} kB," \
	"at the end ${rss_end} kB (growth $((rss_end - rss_warm)) kB, bound $RSS_BOUND_KB kB);" \
	"threads $thr_warm then $thr_end"

t_le "load: the milter's resident memory grows by less than $RSS_BOUND_KB kB after warm-up" \
	"$((rss_end - rss_warm))" "$RSS_BOUND_KB"
t_is "load: every message went through the milter (has X-Outbound-Class)" \
	"$(sink_without_header s X-Outbound-Class)" 0
t_ge "load: some recipients were tempfailed (yahoo limit)" "$(load_get L rcpt_4xx)" 1
t_ge "load: some messages were held (spam-risk)" "$(pf_held_count a)" 1

# the fleet counters tell the same story. Exactly, unless the milter
# logged that it could not write some of them (a Redis command timed out
# on this busy machine): then those messages are the only difference.
mlog=$(milter_log m)
accepted=$(load_get L delivered)
held=$(pf_held_count a)
r4=$(load_get L rcpt_4xx)
rd=$(load_get L rcpt_delivered)
read -r aff_m aff_r aff_o < <(store_affected "$mlog")
fig "load: Redis writes the milter could not do (timeouts): $aff_m messages ($aff_r recipients)" \
	"unrecorded or classed unknown, $aff_o other"
t_is "every accepted message has one decision line in the milter log" \
	"$(grep -Ec ': class=[a-z-]+ action=' "$mlog")" "$accepted"
slack=$((aff_m + aff_o))
t_between "counters: msg:* = messages that reached the end of data" \
	"$(stats_sum '^msg:')" $((accepted - aff_m)) "$accepted"
t_between "counters: action:hold = messages held" \
	"$(stats_sum '^action:hold$')" $((held - aff_m)) "$held"
t_between "counters: net:*:tempfailed = recipients tempfailed at RCPT" \
	"$(stats_sum '^net:.*:tempfailed$')" $((r4 - 10 * slack)) "$r4"
t_between "counters: net:*:accepted = recipients delivered or held" \
	"$(stats_sum '^net:.*:accepted$')" $((rd - aff_r)) "$rd"
t_is "no reservation left pending" "$(redis_keys 'obm:{*}:p:*')" ""
redis_schema_check load
t_file_unlike "milter log: no internal error" "$mlog" 'out of memory|could not change the message'

pf_stop a
milter_stop m
t_done
