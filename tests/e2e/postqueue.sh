#!/bin/bash
# postqueue.sh - end to end: outbound-milter after Postfix's queue, wired
# with the shipped contrib/postfix/master.cf.postqueue.snippet (its
# re-injection client and loopback smtpd taken as they are; ports and the
# milter socket substituted). A SASL submission port (Cyrus sasldb made
# here) with reject_sender_login_mismatch queues without the milter and
# hands the message to the loopback smtpd. alice, from 127.0.0.2, sends
# one message to 100 Gmail recipients with burst 20 per 2 s:
#   - the submitting client sees no refusal (100 x 250, then 250 queued);
#   - while the limits hold, postqueue -j shows the deferred remainder with
#     the milter's 451 4.7.1 as the reason;
#   - in the end all 100 are delivered, each once, and the queue is empty;
#   - the milter counted the envelope sender (the identity without SMTP
#     AUTH) and saw the re-injecting client 127.0.0.1: Postfix gives
#     milters the connection's own address ({client_addr}), not the one
#     XFORWARD passes on (that one is for Postfix's logs and policies);
#   - alice cannot send as bob@example.com (the login binds the sender).
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
. "$OBM_SRCDIR/tests/lib/postfix.sh"
t_need redis-server redis-cli postfix smtp-sink swaks saslpasswd2 python3
[ "$(id -u)" -eq 0 ] || t_fail "needs root for a private Postfix instance"
t_init e2e-postqueue

SNIPPET=$OBM_SRCDIR/contrib/postfix/master.cf.postqueue.snippet
[ -f "$SNIPPET" ] || t_bail "no $SNIPPET"

redis_start
MC_SOCKET=unix:$T/milter.sock MC_HOURLY=1000 MC_BURST=20 MC_WINDOW=2 milter_std_conf >"$T/m.conf"
milter_start m "$T/m.conf" "unix:$T/milter.sock"
mlog=$(milter_log m)
sink_start s
printf 'alice@example.com alice\n' >"$T/senders"
chmod 0644 "$T/senders"
pf_setup a s "" tempfail "smtpd_sender_login_maps = texthash:$T/senders"
pf_add_sasl_port a sub "" alice:pw-alice
R=$(t_free_port)
cf=$(pf_conf a)/master.cf
# the submission entry's shaping options, as the snippet writes them
awk '/^submission /{e=1; next} /^[^ #]/{e=0} e && /sender_restrictions|smtpd_milters=|content_filter=/' \
	"$SNIPPET" | sed "s/10027/$R/" >>"$cf"
# the re-injection client and the loopback smtpd, as the snippet writes them
sed -n '/^obm-shaper /,$p' "$SNIPPET" |
	sed -e "s/10027/$R/" -e "s|unix:outbound-milter/milter.sock|unix:$T/milter.sock|" >>"$cf"
t_diag "master.cf additions: $(grep -c . "$cf") lines"
pf_start a
SUB=${PF_PORT[a/sub]}
t_wait_port "$R" 10 || t_bail "the loopback smtpd of the snippet does not listen (see $(pf_maillog a))"
AUTH=(--auth PLAIN --auth-user alice --auth-password pw-alice --local-interface 127.0.0.2)

# the login binds the envelope sender
smtp_send "$T/bob.out" "$SUB" bob@example.com u0@gmail.com "${AUTH[@]}"
t_like "alice as bob@example.com: refused by Postfix at MAIL FROM" \
	"$(grep -E '^<\*\* +5[0-9][0-9] ' "$T/bob.out" | head -n 1)" \
	'5\.7\.1 .*not owned by user alice'

to=$(for i in $(seq 1 100); do printf 'u%d@gmail.com,' "$i"; done)
to=${to%,}
t0=$(t_now)
smtp_send "$T/big.out" "$SUB" alice@example.com "$to" "${AUTH[@]}"
t_is "100 recipients: every one gets 250 from the submission port" \
	"$(smtp_rcpt_replies "$T/big.out" | grep -c ' 250 ')" 100
t_like "100 recipients: queued" "$(smtp_data_reply "$T/big.out")" '^250 .*queued as'

# deferred_by_milter: recipients waiting in the queue for the milter's 451
deferred_by_milter()
{
	pf_queue a | python3 -c '
import json, sys
n = 0
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    for r in m.get("recipients", []):
        if "4.7.1" in r.get("delay_reason", ""):
            n += 1
print(n)'
}
seen=0
max_deferred=0
for _ in $(seq 1 40); do
	d=$(deferred_by_milter)
	[ "$d" -gt "$max_deferred" ] && max_deferred=$d
	[ "$d" -gt 0 ] && seen=$((seen + 1))
	[ "$(sink_rcpts s)" -ge 100 ] && break
	sleep 0.5
done
t_diag "largest deferred remainder seen: $max_deferred"
t_ge "postqueue -j showed recipients deferred with the milter's 451 4.7.1" "$seen" 1
t_le "never all 100 deferred: the window let some through each time" "$max_deferred" 99

sink_wait_rcpts s 100 120
t1=$(t_now)
want=$(for i in $(seq 1 100); do echo "u$i@gmail.com"; done | sort)
t_is "all 100 recipients delivered, each once" "$(sink_rcpt_list s)" "$want"
t_diag "delivered in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s, in $(sink_msgs s) deliveries"
t_ge "spread over several deliveries as the burst allowed" "$(sink_msgs s)" 5
pf_wait_empty a 30
t_is "the queue is empty" "$(pf_queue_count a)" 0

t_file_like "the milter refused recipients over the burst, by the envelope sender" "$mlog" \
	'action=tempfail rcpt=u[0-9]+@gmail.com network=google rule=per-sender limit=burst used=20/20 .* sender=alice@example.com client=127\.0\.0\.1$'
t_file_like "Postfix's own log of the loopback smtpd names the original client (XFORWARD)" \
	"$(pf_maillog a)" 'obm-reinject.*client=[^ ]*\[127\.0\.0\.2\]'

pf_stop a
milter_stop m
t_done
