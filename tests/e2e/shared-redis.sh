#!/bin/bash
# shared-redis.sh - two MTAs (two private Postfix instances), each with its
# own milter process (one on a unix socket, one on TCP), share one Redis:
# they enforce one limit between them, one after the other and when eight
# SMTP sessions race through both at once (exactly 10 pass, never more).
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
. "$OBM_SRCDIR/tests/lib/postfix.sh"
t_need redis-server redis-cli postfix smtp-sink swaks
[ "$(id -u)" -eq 0 ] || t_skip_all "needs root for a private Postfix instance"
t_init e2e-shared

redis_start
mport=$(t_free_port)
MC_SOCKET=unix:$T/m1.sock milter_std_conf >"$T/m1.conf"
MC_SOCKET=inet:$mport@127.0.0.1 milter_std_conf >"$T/m2.conf"
milter_start m1 "$T/m1.conf" "unix:$T/m1.sock"
milter_start m2 "$T/m2.conf" "inet:$mport@127.0.0.1"
sink_start s
pf_setup a s "unix:$T/m1.sock" tempfail
pf_setup b s "inet:127.0.0.1:$mport" tempfail
pf_start a
pf_start b

# one after the other: 6 through MTA a, then 6 through MTA b
S=seq@example.com
smtp_send "$T/a1.out" "${PF_OUT[a]}" "$S" \
	"$(for i in 1 2 3 4 5 6; do printf 'a%d@gmail.com,' "$i"; done | sed 's/,$//')"
t_is "MTA a: 6 of 6 accepted" "$(smtp_rcpt_replies "$T/a1.out" | grep -c ' 250 ')" 6
smtp_send "$T/b1.out" "${PF_OUT[b]}" "$S" \
	"$(for i in 1 2 3 4 5 6; do printf 'b%d@gmail.com,' "$i"; done | sed 's/,$//')"
replies=$(smtp_rcpt_replies "$T/b1.out")
t_is "MTA b: 4 of 6 accepted (10 in all)" "$(grep -c ' 250 ' <<<"$replies")" 4
t_is "MTA b: 2 refused with 451 4.7.1" "$(grep -c ' 451 4\.7\.1 ' <<<"$replies")" 2
t_like "MTA b: the refused are the last two" "$(grep ' 451 ' <<<"$replies" | cut -d' ' -f1 | tr '\n' ' ')" \
	'^b5@gmail.com b6@gmail.com $'

# at once: 8 sessions (4 per MTA) with 4 gmail.com recipients each
S=race@example.com
pids=()
for k in 1 2 3 4 5 6 7 8; do
	if [ $((k % 2)) -eq 0 ]; then port=${PF_OUT[a]}; else port=${PF_OUT[b]}; fi
	smtp_send "$T/race$k.out" "$port" "$S" \
		"$(for i in 1 2 3 4; do printf 'r%d-%d@gmail.com,' "$k" "$i"; done | sed 's/,$//')" &
	pids+=($!)
done
for p in "${pids[@]}"; do
	wait "$p"
done
ok=0
refused=0
other=0
for k in 1 2 3 4 5 6 7 8; do
	r=$(smtp_rcpt_replies "$T/race$k.out")
	ok=$((ok + $(grep -c ' 250 ' <<<"$r")))
	refused=$((refused + $(grep -c ' 451 4\.7\.1 ' <<<"$r")))
	other=$((other + $(grep -vc ' 250 \| 451 4\.7\.1 ' <<<"$r")))
done
t_is "race: exactly 10 of 32 recipients accepted across both MTAs" "$ok" 10
t_is "race: the other 22 refused with 451 4.7.1" "$refused" 22
t_is "race: no other reply" "$other" 0

sink_wait_rcpts s 20 20
t_is "sink: 10 recipients from the first sender" "$(sink_rcpts_from s seq@example.com)" 10
t_is "sink: 10 recipients from the racing sender" "$(sink_rcpts_from s race@example.com)" 10
t_is "redis: 10 units for the racing sender" \
	"$(redis_zcard 'obm:{google}:w:per-sender:race@example.com')" 10
t_is "redis: nothing pending" "$(redis_zcard 'obm:{google}:p:per-sender:race@example.com')" 0
t_ge "both milters took part (MTA a)" "$(t_count "$(milter_log m1)" 'race@example.com')" 1
t_ge "both milters took part (MTA b)" "$(t_count "$(milter_log m2)" 'race@example.com')" 1
pf_wait_empty a 20
pf_wait_empty b 20
t_is "queues empty" "$(($(pf_queue_count a) + $(pf_queue_count b)))" 0

pf_stop a
pf_stop b
milter_stop m1
milter_stop m2
t_done
