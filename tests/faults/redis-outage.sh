#!/bin/bash
# redis-outage.sh - Redis stopped in the middle of a load run and started
# again. Two milters share one Redis: one with redis.on_error = accept, one
# with on_error = tempfail, each behind its own Postfix port; 20 sessions
# alternate between the two ports. While Redis is down the accept milter
# lets mail through marked "X-Outbound-Class: unknown;
# reasons=store-unavailable" and the tempfail milter answers 451 4.3.0;
# neither crashes or hangs. When Redis is back, each milter writes to it
# again within RECONNECT_BOUND seconds (measured from the moment the new
# redis-server was started). Every message is delivered or tempfailed to
# the client, none lost: sent = delivered + tempfailed, exactly.
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
. "$OBM_SRCDIR/tests/lib/postfix.sh"
. "$OBM_SRCDIR/tests/faults/lib/faults.bash"
t_need redis-server redis-cli postfix smtp-sink perl
[ "$(id -u)" -eq 0 ] || t_skip_all "needs root for a private Postfix instance"
t_init faults-redis-outage

OUTAGE=3		# seconds Redis stays down
RECONNECT_BOUND=1.5	# seconds; the back-off tops out at 1 s
HDR_UNKNOWN='X-Outbound-Class: unknown; reasons=store-unavailable'

redis_start
MC_SOCKET=unix:$T/acc.sock MC_ON_ERROR=accept faults_conf >"$T/acc.conf"
MC_SOCKET=unix:$T/tf.sock MC_ON_ERROR=tempfail faults_conf >"$T/tf.conf"
milter_start acc "$T/acc.conf" "unix:$T/acc.sock"
milter_start tf "$T/tf.conf" "unix:$T/tf.sock"
sink_start s
pf_setup a s "" tempfail
pf_add_port a acc "unix:$T/acc.sock" outbound
pf_add_port a tf "unix:$T/tf.sock" outbound
pf_start a
pacc=${PF_PORT[a/acc]}
ptf=${PF_PORT[a/tf]}

# first_key PATTERN: true once a key matching PATTERN exists
first_key()
{
	[ -n "$(rcli --scan --pattern "$1" | head -n 1)" ]
}

load_start L --port "$pacc,$ptf" --sender-domain acc.example,tf.example \
	--sessions 20 --messages 100000 --rcpts 1,3,10
load_wait_progress L 500 60 || t_fail "500 messages before the outage"

# Redis goes away in the middle of the run
redis_stop
t_down=$(t_now)
before=$(load_progress L)
sleep "$OUTAGE"
during=$(($(load_progress L) - before))
t_ok "the load goes on while Redis is down ($during messages)" test "$during" -gt 50

# and comes back: how long until each milter writes to it again
t_up=$(t_now)
redis_spawn
t_ready=$(t_now)
got_acc="" got_tf=""
for ((i = 0; i < 500; i++)); do
	[ -z "$got_acc" ] && first_key 'obm:{*}:w:*@acc.example' && got_acc=$(t_now)
	[ -z "$got_tf" ] && first_key 'obm:{*}:w:*@tf.example' && got_tf=$(t_now)
	[ -n "$got_acc" ] && [ -n "$got_tf" ] && break
	sleep 0.02
done
rec_acc=$(awk -v a="$t_up" -v b="${got_acc:-0}" 'BEGIN { if (b == 0) print "never"; else printf "%.3f", b - a }')
rec_tf=$(awk -v a="$t_up" -v b="${got_tf:-0}" 'BEGIN { if (b == 0) print "never"; else printf "%.3f", b - a }')
fig "redis-outage: Redis down ${OUTAGE} s; back in use ${rec_acc} s (on_error=accept milter)" \
	"and ${rec_tf} s (on_error=tempfail milter) after redis-server was started" \
	"(it answered PING after $(awk -v a="$t_up" -v b="$t_ready" 'BEGIN { printf "%.3f", b - a }') s)"
for r in "accept:$rec_acc" "tempfail:$rec_tf"; do
	t_ok "the on_error=${r%%:*} milter uses Redis again within ${RECONNECT_BOUND} s (${r#*:} s)" \
		awk -v x="${r#*:}" -v b="$RECONNECT_BOUND" 'BEGIN { exit !(x != "never" && x <= b) }'
done

# some more load with Redis back, then stop
sleep 2
load_stop L
load_wait L 120
t_ok "accept milter still running" t_alive "${MILTER_PID[acc]}"
t_ok "tempfail milter still running" t_alive "${MILTER_PID[tf]}"
pf_wait_settled a 60 || t_fail "Postfix delivered everything within 60 s" "$(pf_queue a | head -n 5)"

account redis-outage L s a

# what each milter did while Redis was down: the messages that started
# after Redis was gone and ended before it was started again
from=$(awk -v t="$t_down" 'BEGIN { printf "%.0f", t * 1000 }')
to=$(awk -v t="$t_up" 'BEGIN { printf "%.0f", t * 1000 }')
acc_n=$(load_get L messages --port "$pacc" --from "$from" --to "$to")
acc_d=$(load_get L delivered --port "$pacc" --from "$from" --to "$to")
tf_n=$(load_get L messages --port "$ptf" --from "$from" --to "$to")
tf_t=$(load_get L tempfailed --port "$ptf" --from "$from" --to "$to")
tf_r4=$(load_get L rcpt_4xx --port "$ptf" --from "$from" --to "$to")
tf_rc=$(load_get L rcpts --port "$ptf" --from "$from" --to "$to")
fig "redis-outage: during the outage on_error=accept: $acc_d of $acc_n messages delivered;" \
	"on_error=tempfail: $tf_t of $tf_n messages tempfailed ($tf_r4 of $tf_rc recipients 4xx at RCPT)"
t_ge "outage: the accept milter saw traffic" "$acc_n" 1
t_is "outage, on_error=accept: every message delivered" "$acc_d" "$acc_n"
t_ge "outage: the tempfail milter saw traffic" "$tf_n" 1
t_is "outage, on_error=tempfail: every message tempfailed" "$tf_t" "$tf_n"
t_is "outage, on_error=tempfail: every recipient 4xx at RCPT" "$tf_r4" "$tf_rc"
t_file_like "Postfix logs the tempfail milter's 451 4.3.0" "$(pf_maillog a)" \
	'milter-reject: RCPT from .*451 4\.3\.0 Rate limit store unavailable'
n_unknown=$(find "${SINK_DIR[s]}" -type f -exec grep -l "^$HDR_UNKNOWN" {} + | wc -l)
t_ge "outage: messages delivered with '$HDR_UNKNOWN'" "$n_unknown" 1
t_is "outage: only the accept milter's mail carries the unknown class" \
	"$(find "${SINK_DIR[s]}" -type f -exec grep -l "^$HDR_UNKNOWN" {} + |
		while IFS= read -r f; do grep -L '^X-Mail-Args: <s[0-9]*@acc.example>' "$f"; done |
		wc -l)" 0
t_is "every delivered message went through a milter (one X-Outbound-Class)" \
	"$(sink_without_header s X-Outbound-Class)" 0
t_le "no command waited more than 5 s for its reply (no hang)" "$(load_get L max_cmd_ms)" 5000
fig "redis-outage: slowest reply at the client $(load_get L max_cmd_ms) ms"
t_file_like "the accept milter logged the outage" "$(milter_log acc)" 'unavailable'
t_file_like "the tempfail milter logged the outage" "$(milter_log tf)" 'unavailable'
redis_schema_check redis-outage

pf_stop a
milter_stop acc
milter_stop tf
t_done
