#!/bin/bash
# redis-slow.sh - Redis stuck (DEBUG SLEEP, longer than redis.timeout_ms)
# while mail flows. Over the milter protocol (miltertest, lib/slow.lua)
# every callback that answers is timed, for a milter with on_error =
# accept and one with on_error = tempfail: transactions whose recipients
# were reserved just before Redis got stuck are finished (end of message,
# abort), then whole transactions run while it is stuck. Each callback must
# answer within timeout_ms + MARGIN_MS. At the same time 10 SMTP sessions
# send through a private Postfix to the accept milter: their slowest RCPT
# and end-of-data replies are printed, none may hang, and every message is
# accounted for (sent = delivered + tempfailed). Afterwards the milters use
# Redis again.
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
. "$OBM_SRCDIR/tests/lib/postfix.sh"
. "$OBM_SRCDIR/tests/faults/lib/faults.bash"
t_need miltertest redis-server redis-cli postfix smtp-sink perl
[ "$(id -u)" -eq 0 ] || t_skip_all "needs root for a private Postfix instance"
t_init faults-redis-slow

TIMEOUT_MS=200
# the property: an answer bounded by timeout_ms, never by the stuck Redis
# (SLEEP_S); the margin leaves room for a loaded 2-core machine
MARGIN_MS=${OBM_SLOW_MARGIN_MS:-800}
BOUND_MS=$((TIMEOUT_MS + MARGIN_MS))
SLEEP_S=4

redis_start
MC_TIMEOUT_MS=$TIMEOUT_MS MC_SOCKET=unix:$T/acc.sock MC_ON_ERROR=accept faults_conf >"$T/acc.conf"
MC_TIMEOUT_MS=$TIMEOUT_MS MC_SOCKET=unix:$T/tf.sock MC_ON_ERROR=tempfail faults_conf >"$T/tf.conf"
milter_start acc "$T/acc.conf" "unix:$T/acc.sock"
milter_start tf "$T/tf.conf" "unix:$T/tf.sock"
sink_start s
pf_setup a s "unix:$T/acc.sock" tempfail
pf_start a
SLOW=$OBM_SRCDIR/tests/faults/lib/slow.lua

# Redis healthy: the same transactions, for comparison
mt_run healthy "$SLOW" "sock=unix:$T/acc.sock" policy=accept sleep_s=0 prepare=4 run_s=1 \
	"bound_ms=$BOUND_MS" label=healthy
fig "redis-slow: Redis healthy: $(sed -n 's/^# latency healthy: //p' "$T/mt-healthy.out")"

load_start L --port "${PF_OUT[a]}" --sessions 10 --messages 100000 --rcpts 1,3,10
load_wait_progress L 100 60 || t_fail "load started"

# Redis stuck for SLEEP_S seconds, once for each milter
for p in accept tempfail; do
	[ "$p" = accept ] && m=acc || m=tf
	mt_run "stuck-$p" "$SLOW" "sock=unix:$T/$m.sock" "policy=$p" "sleep_s=$SLEEP_S" \
		prepare=6 "run_s=$((SLEEP_S - 1))" "bound_ms=$BOUND_MS" "label=stuck/$p"
done
load_stop L
load_wait L 120

for p in accept tempfail; do
	out=$T/mt-stuck-$p.out
	fig "redis-slow: Redis stuck (timeout_ms $TIMEOUT_MS), on_error=$p:" \
		"$(sed -n "s|^# latency stuck/$p: ||p" "$out")"
	sed -n "s|^# latency stuck/$p \(.*\)|\1|p" "$out" | sed 's/^/#   /'
done

# the SMTP clients while Redis was stuck
rmax=0 emax=0 nmsg=0
while read -r _ _ a b; do
	from=$(awk -v t="$a" 'BEGIN { printf "%.0f", t * 1000 }')
	to=$(awk -v t="$b" 'BEGIN { printf "%.0f", t * 1000 }')
	v=$(load_get L max_rcpt_ms --from "$from" --to "$to")
	[ "$v" -gt "$rmax" ] && rmax=$v
	v=$(load_get L max_eom_ms --from "$from" --to "$to")
	[ "$v" -gt "$emax" ] && emax=$v
	nmsg=$((nmsg + $(load_get L messages --from "$from" --to "$to")))
done < <(grep -h '^# stuck-window ' "$T/mt-stuck-accept.out" "$T/mt-stuck-tempfail.out")
fig "redis-slow: through Postfix while Redis was stuck: $nmsg messages, slowest RCPT" \
	"$rmax ms, slowest end of data $emax ms; slowest reply of any command in the whole run" \
	"$(load_get L max_cmd_ms) ms"
t_ge "through Postfix: messages sent while Redis was stuck" "$nmsg" 1
t_le "through Postfix: no reply took more than 5 s (no hang)" "$(load_get L max_cmd_ms)" 5000
pf_wait_settled a 60 || t_fail "Postfix delivered everything within 60 s"
account redis-slow L s a

# Redis answers again: both milters use it (a new sender's units show up)
mt_run back "$SLOW" "sock=unix:$T/tf.sock" policy=tempfail sleep_s=0 prepare=2 run_s=1 \
	"bound_ms=$BOUND_MS" label=back
t_ge "after the sleep: the tempfail milter reserves in Redis again" \
	"$(rcli --scan --pattern 'obm:{google}:w:per-sender:slow*@example.com' | wc -l)" 1
redis_schema_check redis-slow

pf_stop a
milter_stop acc
milter_stop tf
t_done
