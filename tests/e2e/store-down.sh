#!/bin/bash
# store-down.sh - Redis stopped while Postfix sends: through the milter
# with redis.on_error = accept every message is delivered with the header
# "X-Outbound-Class: unknown; reasons=store-unavailable"; through the
# milter with on_error = tempfail every recipient gets "451 4.3.0" and the
# client keeps the message. Every message is counted: sent = delivered +
# tempfailed, none lost. When Redis is back, the limits apply again.
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
. "$OBM_SRCDIR/tests/lib/postfix.sh"
t_need redis-server redis-cli postfix smtp-sink swaks
[ "$(id -u)" -eq 0 ] || t_skip_all "needs root for a private Postfix instance"
t_init e2e-store-down

redis_start
MC_SOCKET=unix:$T/acc.sock MC_ON_ERROR=accept milter_std_conf >"$T/acc.conf"
MC_SOCKET=unix:$T/tf.sock MC_ON_ERROR=tempfail milter_std_conf >"$T/tf.conf"
milter_start acc "$T/acc.conf" "unix:$T/acc.sock"
milter_start tf "$T/tf.conf" "unix:$T/tf.sock"
sink_start s
pf_setup a s "" tempfail
pf_add_port a acc "unix:$T/acc.sock" outbound
pf_add_port a tf "unix:$T/tf.sock" outbound
pf_start a
HDR_UNKNOWN='X-Outbound-Class: unknown; reasons=store-unavailable'

# sink_file_of ID: the sink file of the message with header X-Test-Id: ID
sink_file_of()
{
	local f
	while IFS= read -r f; do
		if grep -q "^X-Test-Id: $1\$" "$f"; then
			echo "$f"
			return 0
		fi
	done < <(sink_files s)
}

# send ID PORT TO [swaks options]: one message; prints "delivered",
# "tempfailed" or "other"
send()
{
	local id=$1 port=$2 to=$3 out=$T/$1.out data
	shift 3
	smtp_send "$out" "$port" "sender-$id@example.com" "$to" --header "X-Test-Id: $id" "$@"
	data=$(smtp_data_reply "$out")
	if [[ $data == 250* ]]; then
		echo delivered
	elif smtp_rcpt_replies "$out" | grep -q ' 4[0-9][0-9] ' &&
	     ! smtp_rcpt_replies "$out" | grep -q ' 250 '; then
		echo tempfailed
	else
		echo other
	fi
}

# Redis up: both paths work, no unknown header
t_is "Redis up: accept milter delivers" "$(send up-acc "${PF_PORT[a/acc]}" u1@gmail.com)" delivered
t_is "Redis up: tempfail milter delivers" "$(send up-tf "${PF_PORT[a/tf]}" u1@gmail.com)" delivered
sink_wait_rcpts s 2 20
f=$(sink_file_of up-acc)
if [ -n "$f" ]; then
	t_file_unlike "Redis up: no store-unavailable header" "$f" "^$HDR_UNKNOWN"
else
	t_fail "Redis up: no store-unavailable header" \
		"missing evidence: message up-acc never reached the sink"
fi

# Redis down
redis_stop
sent=0
delivered=0
tempfailed=0
for i in 1 2 3 4 5; do
	# message 1 tries to forge its class: the milter's header replaces it
	forge=()
	[ "$i" -eq 1 ] && forge=(--add-header "X-Outbound-Class: personal; forged=yes")
	r=$(send "down-acc-$i" "${PF_PORT[a/acc]}" "d$i@gmail.com,d$i@yahoo.com" "${forge[@]}")
	sent=$((sent + 1))
	case $r in
	delivered) delivered=$((delivered + 1)) ;;
	tempfailed) tempfailed=$((tempfailed + 1)) ;;
	esac
	t_is "Redis down, on_error=accept: message $i delivered" "$r" delivered
	r=$(send "down-tf-$i" "${PF_PORT[a/tf]}" "d$i@gmail.com,d$i@yahoo.com")
	sent=$((sent + 1))
	case $r in
	delivered) delivered=$((delivered + 1)) ;;
	tempfailed) tempfailed=$((tempfailed + 1)) ;;
	esac
	t_is "Redis down, on_error=tempfail: message $i tempfailed" "$r" tempfailed
	t_is "Redis down, on_error=tempfail: message $i: both RCPTs 451 4.3.0" \
		"$(smtp_rcpt_replies "$T/down-tf-$i.out" | grep -c ' 451 4\.3\.0 ')" 2
done
t_is "Redis down: every message sent is delivered or tempfailed" \
	"$((delivered + tempfailed))" "$sent"

sink_wait_rcpts s 12 20
pf_wait_empty a 20
t_is "Redis down: the Postfix queue is empty (nothing deferred, nothing bounced)" \
	"$(pf_queue_count a)" 0
arrived=0
for i in 1 2 3 4 5; do
	f=$(sink_file_of "down-acc-$i")
	if [ -n "$f" ]; then
		arrived=$((arrived + 1))
		t_ok "Redis down: message $i carries '$HDR_UNKNOWN'" grep -q "^$HDR_UNKNOWN" "$f"
		t_is "Redis down: message $i has the header once" \
			"$(grep -c '^X-Outbound-Class:' "$f")" 1
		[ "$i" -eq 1 ] && t_file_unlike "Redis down: the forged X-Outbound-Class is gone" \
			"$f" 'forged=yes'

		t_is "Redis down: message $i reached both recipients" "$(grep -c '^X-Rcpt-Args:' "$f")" 2
	fi
	t_is "Redis down: tempfailed message $i did not arrive" "$(sink_file_of "down-tf-$i")" ""
done
t_is "Redis down: the sink has every delivered message" "$arrived" "$delivered"
t_is "sink total: 2 before the outage + 5 during" "$(sink_msgs s)" 7

# Redis back: limits apply again (after each milter's reconnect back-off)
redis_restart
for p in acc tf; do
	back=no
	for i in $(seq 1 30); do
		smtp_send "$T/probe-$p-$i.out" "${PF_PORT[a/$p]}" "probe-$p@example.com" "p$i@yahoo.com"
		if [ "$(redis_zcard "obm:{yahoo}:w:per-sender:probe-$p@example.com")" -gt 0 ]; then
			back=yes
			break
		fi
		sleep 0.5
	done
	t_is "Redis back: the $p milter uses Redis again within 15 s" "$back" yes
done
to=$(for i in $(seq 1 11); do printf 'b%d@gmail.com,' "$i"; done)
for p in acc tf; do
	smtp_send "$T/back-$p.out" "${PF_PORT[a/$p]}" "back-$p@example.com" "${to%,}"
	r=$(smtp_rcpt_replies "$T/back-$p.out")
	t_is "Redis back ($p): 10 accepted" "$(grep -c ' 250 ' <<<"$r")" 10
	t_like "Redis back ($p): the 11th refused" "$(grep '^b11@' <<<"$r")" ' 451 4\.7\.1 '
done

pf_stop a
milter_stop acc
milter_stop tf
t_done
