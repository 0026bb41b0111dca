#!/bin/bash
# milter-kill.sh - the milter killed with SIGKILL under load (20 SMTP
# sessions through a private Postfix, milter_default_action = tempfail)
# and started again on its stale socket. While it is gone every message is
# tempfailed by Postfix (451), none slips through unfiltered; after the
# restart mail flows again. A session stalled after RCPT holds a
# reservation at the moment of the kill: the abandoned units count until
# reservation_ttl (10 s) and then expire. At the end the rate windows and
# the fleet counters agree with what the sink received: the only
# difference allowed is a message counted by the dying milter whose
# acceptance never reached Postfix (in flight at the kill, tempfailed to
# its client). sent = delivered + tempfailed, exactly.
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
. "$OBM_SRCDIR/tests/lib/postfix.sh"
. "$OBM_SRCDIR/tests/faults/lib/faults.bash"
t_need redis-server redis-cli postfix smtp-sink swaks perl
[ "$(id -u)" -eq 0 ] || t_skip_all "needs root for a private Postfix instance"
t_init faults-milter-kill

TTL=10
DOMAINS=gmail.com,yahoo.com,example.org
SENDERS=4

redis_start
MC_SOCKET=unix:$T/milter.sock
MC_EXTRA="reservation_ttl = $TTL"
faults_conf >"$T/m.conf"
milter_start m1 "$T/m.conf" "$MC_SOCKET"
sink_start s
pf_setup a s "$MC_SOCKET" tempfail
pf_start a
port=${PF_OUT[a]}

# pending units in Redis, all networks and senders
pending_units()
{
	local k n=0 keys c
	keys=$(redis_keys 'obm:{*}:p:*') || { echo "$keys"; return 1; }
	for k in $keys; do
		c=$(redis_zcard "$k") || { echo "$c"; return 1; }
		n=$((n + c))
	done
	echo "$n"
}

window_units()
{
	local k n=0 keys c
	keys=$(redis_keys 'obm:{*}:w:*') || { echo "$keys"; return 1; }
	for k in $keys; do
		c=$(redis_zcard "$k") || { echo "$c"; return 1; }
		n=$((n + c))
	done
	echo "$n"
}

# a session that stops after its RCPT (fd 7), so that a reservation is
# pending when the milter dies
smtp_reply()
{
	local line
	while IFS= read -r -t 30 line <&7; do
		line=${line%$'\r'}
		case $line in
		[0-9][0-9][0-9]-*) ;;
		*) echo "${line:0:3}"; return 0 ;;
		esac
	done
	echo none
}

stall_open()
{
	exec 7<>"/dev/tcp/127.0.0.1/$port" || return 1
	smtp_reply >/dev/null
	printf 'EHLO stall.test.example\r\n' >&7
	smtp_reply >/dev/null
	printf 'MAIL FROM:<stall@example.com>\r\n' >&7
	STALL_MAIL=$(smtp_reply)
	printf 'RCPT TO:<stalled@gmail.com>\r\n' >&7
	STALL_RCPT=$(smtp_reply)
}

load_start L --port "$port" --sessions 20 --messages 100000 --rcpts 1,3,10 --retry-pause 100 \
	--senders "$SENDERS" --domains "$DOMAINS"
load_wait_progress L 500 60 || t_fail "500 messages before the kill"
stall_open
t_is "stalled session: MAIL and RCPT accepted before the kill" "$STALL_MAIL $STALL_RCPT" "250 250"

# SIGKILL
t_kill=$(t_now)
milter_kill m1
sleep 0.3
abandoned=$(pending_units)
t_ge "after SIGKILL: abandoned reservations are pending in Redis" "$abandoned" 1
t_is "the stalled session's reservation is among them" \
	"$(rcli zcard 'obm:{google}:p:per-sender:stall@example.com')" 1
printf 'DATA\r\n' >&7
stall_data=$(smtp_reply)
if [ "$stall_data" = 354 ]; then
	printf 'Subject: stalled\r\nX-Test-Id: stalled\r\n\r\nstalled\r\n.\r\n' >&7
	stall_data=$(smtp_reply)
fi
exec 7>&-
t_like "stalled session: its message is tempfailed after the kill (milter_default_action)" \
	"$stall_data" '^4'

# two seconds without a milter, then a new one on the stale socket
sleep 2
t_ok "stale socket file left behind" test -S "$T/milter.sock"
t_restart=$(t_now)
milter_start m2 "$T/m.conf" "$MC_SOCKET"
t_ok "a new milter starts on the stale socket (running, accepting connections)" \
	eval "t_alive ${MILTER_PID[m2]} && milter_listening $MC_SOCKET"
before=$(load_progress L)
sleep 2
load_stop L
load_wait L 120
t_ge "mail flows again after the restart" "$(($(load_progress L) - before))" 1

# while no milter ran: nothing delivered
from=$(awk -v t="$t_kill" 'BEGIN { printf "%.0f", (t + 0.1) * 1000 }')
to=$(awk -v t="$t_restart" 'BEGIN { printf "%.0f", t * 1000 }')
down_n=$(load_get L messages --from "$from" --to "$to")
down_d=$(load_get L delivered --from "$from" --to "$to")
fig "milter-kill: while the milter was gone: $down_n messages, $down_d delivered"
t_ge "messages were sent while the milter was gone" "$down_n" 1
t_is "while the milter was gone nothing was accepted (Postfix tempfails)" "$down_d" 0

pf_wait_settled a 60 || t_fail "Postfix delivered everything within 60 s"
account milter-kill L s a
t_is "every delivered message went through the milter (has X-Outbound-Class)" \
	"$(sink_without_header s X-Outbound-Class)" 0
t_file_like "Postfix applied milter_default_action" "$(pf_maillog a)" \
	'milter.*(unexpected EOF|can.t read|connect to|Connection refused|No such file)'

# messages in flight at the kill that the client saw tempfailed: the dying
# milter may have committed and counted them just before it died
kill_ms=$(awk -v t="$t_kill" 'BEGIN { printf "%.0f", t * 1000 }')
inflight=$(cat "$T/load-L"/result.* | awk -v k="$kill_ms" \
	'$11 <= k && $12 >= k && $10 == "tempfailed" { n++; r += $5 } END { print n + 0, r + 0 }')
inflight_msgs=${inflight% *}
inflight_rcpts=${inflight#* }

# past reservation_ttl: a message per sender to every network checks every
# pending set; the abandoned units are gone
t_sleep_until "$(t_after $((TTL + 1)) "$t_kill")"
for snd in $(seq -f 's%g@example.com' 0 $((SENDERS - 1))) stall@example.com; do
	smtp_send "$T/probe-$snd.out" "$port" "$snd" \
		"probe@gmail.com,probe@yahoo.com,probe@example.org" --header "X-Test-Id: probe-$snd"
	t_like "probe from $snd delivered" "$(smtp_data_reply "$T/probe-$snd.out")" '^250 '
done
pf_wait_settled a 30
left=$(pending_units)
fig "milter-kill: reservations abandoned by the killed milter: $abandoned;" \
	"pending $((TTL + 1)) s later, after one message per sender and network: $left"
t_is "past reservation_ttl the abandoned reservations are gone" "$left" 0

# counters against the sink (the probes included). Above: at most what
# was in flight at the kill. Below: only messages whose counters the milter
# logged it could not write (a Redis command timed out on this busy machine).
sink_r=$(sink_rcpts s)
sink_m=$(sink_msgs s)
units=$(window_units)
counted=$(stats_sum '^msg:')
acc_r=$(stats_sum '^net:.*:accepted$')
read -r aff_m aff_r _ < <(store_affected "$(milter_log m1)" "$(milter_log m2)")
fig "milter-kill: delivered $sink_m messages / $sink_r recipients; Redis: $units units in the" \
	"rate windows, msg:* $counted, net:*:accepted $acc_r; in flight at the kill and" \
	"tempfailed to the client: $inflight_msgs messages / $inflight_rcpts recipients;" \
	"not recorded (Redis timeouts): $aff_m messages / $aff_r recipients"
t_between "rate window units = delivered recipients (+ at most the $inflight_rcpts in flight at the kill)" \
	"$units" $((sink_r - aff_r)) $((sink_r + inflight_rcpts))
t_between "msg:* = delivered messages (+ at most the $inflight_msgs in flight at the kill)" \
	"$counted" $((sink_m - aff_m)) $((sink_m + inflight_msgs))
t_between "net:*:accepted = delivered recipients (+ at most the $inflight_rcpts in flight)" \
	"$acc_r" $((sink_r - aff_r)) $((sink_r + inflight_rcpts))
redis_schema_check milter-kill

pf_stop a
milter_stop m2
t_done
