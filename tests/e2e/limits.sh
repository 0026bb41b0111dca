#!/bin/bash
# limits.sh - end to end through a private Postfix relaying to smtp-sink:
# 10 gmail.com recipients pass, the 11th gets "451 4.7.1" at RCPT and the
# message is delivered to the first 10 and to the yahoo.com recipient of
# the same transaction; after the burst window (6 s) more pass again; the
# hourly cap (30) holds. The milter log carries Postfix's queue id.
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
. "$OBM_SRCDIR/tests/lib/postfix.sh"
t_need redis-server redis-cli postfix smtp-sink swaks
[ "$(id -u)" -eq 0 ] || t_skip_all "needs root for a private Postfix instance"
t_init e2e-limits

redis_start
MC_SOCKET=unix:$T/milter.sock MC_WINDOW=6 MC_HOURLY=30 milter_std_conf >"$T/m.conf"
milter_start m "$T/m.conf" "unix:$T/milter.sock"
mlog=$(milter_log m)
sink_start s
pf_setup a s "unix:$T/milter.sock" tempfail
pf_start a
port=${PF_OUT[a]}
S=a@example.com

# message 1: u1..u11@gmail.com and y1@yahoo.com
to=$(for i in $(seq 1 11); do printf 'u%d@gmail.com,' "$i"; done)y1@yahoo.com
smtp_send "$T/m1.out" "$port" "$S" "$to" --header "X-Test-Id: m1"
t_is "message 1: swaks succeeds" "$?" 0
replies=$(smtp_rcpt_replies "$T/m1.out")
t_is "message 1: 10 gmail.com recipients get 250" \
	"$(grep -Ec '^u([1-9]|10)@gmail.com 250 ' <<<"$replies")" 10
t_like "message 1: the 11th gets 451 4.7.1 naming network, limit and window" \
	"$(grep '^u11@gmail.com ' <<<"$replies")" \
	'^u11@gmail.com 451 4\.7\.1 Rate limit for network google reached: burst 10 per 6s \(rule per-sender\)'
t_like "message 1: yahoo.com recipient after the refusal gets 250" \
	"$(grep '^y1@yahoo.com ' <<<"$replies")" '^y1@yahoo.com 250 '
data=$(smtp_data_reply "$T/m1.out")
t_like "message 1: queued" "$data" '^250 .*queued as [0-9A-F]+'
qid=$(sed -n 's/.*queued as \([0-9A-F]*\).*/\1/p' <<<"$data")

# message 2 right away, before waiting for any delivery: still inside the
# burst window that message 1 filled (6 s, far longer than one session)
smtp_send "$T/m2.out" "$port" "$S" u12@gmail.com --header "X-Test-Id: m2"
t_like "message 2 (same window): 451 4.7.1 at RCPT" \
	"$(smtp_rcpt_replies "$T/m2.out")" '^u12@gmail.com 451 4\.7\.1 '

sink_wait_rcpts s 11 20
want=$( (for i in $(seq 1 10); do echo "u$i@gmail.com"; done; echo y1@yahoo.com) | sort)
t_is "message 1: the sink got the 10 accepted gmail.com and the yahoo.com recipient" \
	"$(sink_rcpt_list s)" "$want"
t_is "message 1: one message at the sink" "$(sink_msgs s)" 1
t_file_like "Postfix logs the milter's 451 for u11" "$(pf_maillog a)" \
	'milter-reject: RCPT from .*451 4\.7\.1 Rate limit for network google.*to=<u11@gmail.com>'
t_file_like "milter log line carries Postfix's queue id" "$mlog" \
	"^(outbound-milter: )?$qid: action=tempfail rcpt=u11@gmail.com network=google rule=per-sender limit=burst used=10/10 window=6s"
# 11 recipients nobody knows: spam-risk, tagged (tests/lib/milter.sh tags
# every class, so that this mail is delivered rather than held)
t_file_like "milter decision line for message 1" "$mlog" \
	"$qid: class=spam-risk action=tag sender=$S client=127.0.0.1 rcpts=11 known=0 velocity=11 tempfailed=1 networks=(google:10,yahoo:1|yahoo:1,google:10) mode=enforce reasons=rcpt-count,unknown-recipients,no-unsubscribe,no-one-click( |$)"

# after the burst window: 10 more pass (20 this hour), then 10 more (30);
# every unit of a message is admitted before its SMTP session ends, so
# 6.2 s after the end of one session its units have left the window
t_last=$(t_now)
for m in 3 4; do
	t_sleep_until "$(t_after 6.2 "$t_last")"
	to=$(for i in $(seq 1 10); do printf 'm%du%d@gmail.com,' "$m" "$i"; done)
	smtp_send "$T/m$m.out" "$port" "$S" "${to%,}" --header "X-Test-Id: m$m"
	t_last=$(t_now)
	t_is "message $m (next burst window): all 10 gmail.com recipients get 250" \
		"$(smtp_rcpt_replies "$T/m$m.out" | grep -c ' 250 ')" 10
done

# the hourly cap: 30 used, nothing more this hour even in a fresh window
t_sleep_until "$(t_after 6.2 "$t_last")"
smtp_send "$T/m5.out" "$port" "$S" "h1@gmail.com,y2@yahoo.com" --header "X-Test-Id: m5"
replies=$(smtp_rcpt_replies "$T/m5.out")
t_like "message 5: hourly cap reached, 451 names the hourly limit" \
	"$(grep '^h1@gmail.com ' <<<"$replies")" \
	'^h1@gmail.com 451 4\.7\.1 Rate limit for network google reached: hourly 30 per 3600s \(rule per-sender\)'
t_like "message 5: yahoo.com still passes" "$(grep '^y2@yahoo.com ' <<<"$replies")" ' 250 '

sink_wait_rcpts s 32 20
t_is "the sink got 32 recipients in total (10+1, 10, 10, 1)" "$(sink_rcpts s)" 32
t_is "30 gmail.com recipients delivered in all" "$(sink_rcpt_list s | grep -c '@gmail.com$')" 30
t_is "redis window of the sender holds 30 units" \
	"$(redis_zcard "obm:{google}:w:per-sender:$S")" 30
t_is "nothing left pending" "$(redis_zcard "obm:{google}:p:per-sender:$S")" 0
pf_wait_empty a 20
t_is "the Postfix queue is empty (nothing deferred or bounced)" "$(pf_queue_count a)" 0

pf_stop a
milter_stop m
t_done
