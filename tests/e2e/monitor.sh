#!/bin/bash
# monitor.sh - mode = monitor end to end through a private Postfix relaying
# to smtp-sink (burst 3 per 60 s, spam-risk configured to hold):
#  1. a message to 5 gmail.com recipients (2 over the burst) and
#  2. one to 20 recipients nobody knows (spam-risk, would be held)
# are both accepted at every RCPT and at DATA, nothing is left in
# Postfix's queue (postqueue -j: no hold, no deferred) and the sink gets
# all 25 recipients. The milter logs action=would-tempfail for the 2 and
# its decision lines say would_tempfail=2 and action=would-hold with
# mode=monitor. The would-be counters are read back from Redis as the
# milter wrote them (P{stats}:h:HOUR: net:google:monitor_tempfailed = 2,
# monitor:hold and monitor:tag = the decision lines, no action:* or
# tempfailed field;
# the sender's hour has no tempfailed or held; the decision log stream's
# entries say mode=monitor) and through `outboundctl --json stats`. The
# google window holds only the 3 units enforce mode would have admitted.
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
. "$OBM_SRCDIR/tests/lib/postfix.sh"
t_need redis-server redis-cli postfix smtp-sink swaks python3
[ "$(id -u)" -eq 0 ] || t_skip_all "needs root for a private Postfix instance"
t_init e2e-monitor

CTL=$OBM_BUILD/outboundctl
[ -x "$CTL" ] || t_bail "$CTL is missing (make $OBM_BUILD/outboundctl)"
redis_start
MC_SOCKET=unix:$T/milter.sock MC_MODE=monitor MC_BURST=3 MC_WINDOW=60 MC_HOURLY=30 \
	MC_LOCAL_DOMAINS='"example.com"' \
	MC_CLASSES='class personal { action = tag }
class bulk { action = tag }
class "spam-risk" { action = hold }' milter_std_conf >"$T/m.conf"
milter_start m "$T/m.conf" "unix:$T/milter.sock"
mlog=$(milter_log m)
sink_start s
pf_setup a s "unix:$T/milter.sock" tempfail
pf_start a
port=${PF_OUT[a]}
hour0=$(date -u +%Y%m%d%H)

# 1. over the burst: 5 gmail.com recipients
to=$(for i in 1 2 3 4 5; do printf 'u%d@gmail.com,' "$i"; done)
q1=$(smtp_send_id mon1 "$port" over@example.com "${to%,}")
t_like "1: queued" "$q1" '^[0-9A-F]+$'
t_is "1: all 5 RCPT accepted (250)" "$(smtp_rcpt_replies "$T/mon1.out" | grep -c '^u[1-5]@gmail.com 250 ')" 5
t_is "1: no 4xx at RCPT" "$(smtp_rcpt_replies "$T/mon1.out" | grep -c ' 4[0-9][0-9] ')" 0

# 2. spam-risk: 20 recipients nobody knows, each its own network
to=$(for i in $(seq 1 20); do printf 'r%d@rcpt%d.test,' "$i" "$i"; done)
q2=$(smtp_send_id mon2 "$port" bulk@example.com "${to%,}")
t_like "2: queued" "$q2" '^[0-9A-F]+$'
t_is "2: all 20 RCPT accepted (250)" "$(smtp_rcpt_replies "$T/mon2.out" | grep -c ' 250 ')" 20

sink_wait_rcpts s 25 30
t_is "the sink got all 25 recipients" "$(sink_rcpts s)" 25
t_ok "message 1 delivered" sink_has s mon1
t_ok "message 2 delivered" sink_has s mon2
t_ok "Postfix's queue empties" pf_wait_empty a 20
q=$(pf_queue a)
t_ok "postqueue -j answers" test $? -eq 0
t_is "postqueue -j: nothing held or deferred" "$(grep -c '"queue_name"' <<<"$q")" 0
t_file_unlike "Postfix logged no milter hold" "$(pf_maillog a)" 'milter-hold'
t_file_unlike "Postfix logged no milter reject or tempfail" "$(pf_maillog a)" 'milter-reject'

# the milter's lines
d1=$(milter_decision "$mlog" "$q1")
d2=$(milter_decision "$mlog" "$q2")
t_diag "decision 1: $d1" "decision 2: $d2"
t_like "1: decision line: would_tempfail=2, mode=monitor" "$d1" ' would_tempfail=2 .*mode=monitor'
t_like "1: decision line counts the 5 gmail.com recipients" "$d1" 'networks=google:5( |$)'
t_like "2: decision line: spam-risk, action=would-hold, mode=monitor" "$d2" \
	'^class=spam-risk action=would-hold .* would_tempfail=0 .*mode=monitor'
for i in 4 5; do
	t_file_like "1: would-tempfail line for u$i" "$mlog" \
		"$q1: action=would-tempfail rcpt=u$i@gmail.com network=google rule=per-sender limit=burst used=3/3 window=60s retry=[0-9]+s"
done
t_is "exactly 2 would-tempfail lines" "$(t_count "$mlog" 'action=would-tempfail rcpt=')" 2
t_is "no action=tempfail line" "$(t_count "$mlog" 'action=tempfail ')" 0
t_is "no action=hold line" "$(t_count "$mlog" 'action=hold ')" 0
would_hold=$(t_count "$mlog" ': class=[^ ]* action=would-hold ')
t_ge "at least message 2 would have been held" "$would_hold" 1

# Redis, as the milter wrote it; the hour may have turned meanwhile: add
# up every hour bucket of the stats hash
hsum()
{
	local k total=0 v
	for k in $(redis-cli -s "$REDIS_SOCK" --scan --pattern "obm:{stats}:h:*"); do
		v=$(redis-cli -s "$REDIS_SOCK" HGET "$k" "$1")
		total=$((total + ${v:-0}))
	done
	echo "$total"
}
t_is "Redis answers" "$(redis-cli -s "$REDIS_SOCK" PING)" PONG
t_ge "a stats hour hash exists" "$(redis-cli -s "$REDIS_SOCK" --scan --pattern 'obm:{stats}:h:*' | wc -l)" 1
t_diag "obm:{stats}:h:$hour0:" "$(redis-cli -s "$REDIS_SOCK" HGETALL "obm:{stats}:h:$hour0" | paste - -)"
t_is "Redis: net:google:monitor_tempfailed = 2" "$(hsum net:google:monitor_tempfailed)" 2
t_is "Redis: no net:google:tempfailed" "$(hsum net:google:tempfailed)" 0
t_is "Redis: net:google:accepted = 5" "$(hsum net:google:accepted)" 5
t_is "Redis: monitor:hold = the would-hold decision lines" "$(hsum monitor:hold)" "$would_hold"
t_is "Redis: no action:hold" "$(hsum action:hold)" 0
would_tag=$(t_count "$mlog" ': class=[^ ]* action=tag ')
t_is "Redis: monitor:tag = the tagged decision lines" "$(hsum monitor:tag)" "$would_tag"
t_is "Redis: no action:* field (monitor mode counts monitor:*)" \
	"$(hkeys | grep -c '^action:')" 0
t_is "Redis: no tempfailed field of any network" \
	"$(hkeys | grep -c ':tempfailed$')" 0
t_is "Redis: the sender's hour: no tempfailed" \
	"$(redis-cli -s "$REDIS_SOCK" HGET "obm:{s:over@example.com}:h:$hour0" tempfailed)" ""
t_is "Redis: the sender's hour: no held" \
	"$(redis-cli -s "$REDIS_SOCK" HGET "obm:{s:bulk@example.com}:h:$hour0" held)" ""
t_is "Redis: the google window holds the 3 units enforce mode would admit" \
	"$(redis_zcard "obm:{google}:w:per-sender:over@example.com")" 3
stream=$(redis-cli -s "$REDIS_SOCK" XRANGE 'obm:{log}' - +)
t_is "decision log: 2 tempfail entries" "$(grep -cx 'tempfail' <<<"$stream")" 2
t_is "decision log: every entry mode=monitor" \
	"$(grep -A1 -x 'mode' <<<"$stream" | grep -vx -e mode -e -- | sort -u)" monitor
t_ok "decision log: the would-hold entry" grep -qx 'would-hold' <<<"$stream"

# outboundctl --json stats, on the same Redis
json=$("$CTL" -c "$T/m.conf" --json stats 2>"$T/ctl.err")
t_is "outboundctl --json stats: exit 0" "$?" 0
printf '%s' "$json" >"$T/stats.json"
t_ok "outboundctl --json stats: valid JSON" python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$T/stats.json"
j()
{
	python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
		"$T/stats.json" "$1" 2>&1
}
t_is "stats --json: google monitor_tempfailed = 2" \
	"$(j '[n["monitor_tempfailed"] for n in d["networks"] if n["network"] == "google"]')" "[2]"
t_is "stats --json: google tempfailed = 0, accepted = 5" \
	"$(j '[(n["tempfailed"], n["accepted"]) for n in d["networks"] if n["network"] == "google"]')" "[(0, 5)]"
t_is "stats --json: monitor_actions hold and tag as in the log" \
	"$(j '(d["monitor_actions"]["hold"], d["monitor_actions"]["tag"])')" "($would_hold, $would_tag)"
t_is "stats --json: no real action counted" "$(j 'sum(d["actions"].values())')" 0
t_is "stats --json: 2 messages, 25 recipients" "$(j '(d["messages"], d["recipients"])')" "(2, 25)"

pf_stop a
milter_stop m
t_done
