#!/bin/bash
# later-filter.sh - end to end: what outbound-milter counts when another
# filter refuses a message. Postfix calls the filters of smtpd_milters in
# order; libmilter does not pass an abort on to a filter once its end of
# message has been answered, so a filter listed after outbound-milter that
# refuses the message leaves it counted as sent (its units committed, the
# sender's velocity raised): the error is on the safe side, never a unit
# given back for mail that went out. Listed last, outbound-milter only sees
# the end of the messages that the other filters let through, and a
# refused message gives its reservations back.
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
. "$OBM_SRCDIR/tests/lib/postfix.sh"
t_need redis-server redis-cli postfix smtp-sink swaks
[ "$(id -u)" -eq 0 ] || t_fail "needs root for a private Postfix instance"
t_init e2e-later-filter

LASTWORD=$OBM_BUILD/tests/tools/lastword
[ -x "$LASTWORD" ] || t_bail "no $LASTWORD (make tests)"

redis_start
MC_SOCKET=unix:$T/milter.sock milter_std_conf >"$T/m.conf"
milter_start m "$T/m.conf" "unix:$T/milter.sock"
mlog=$(milter_log m)
"$LASTWORD" -p "unix:$T/last.sock" -a reject -m refuse >"$T/lastword.log" 2>&1 &
t_track $!
t_wait_socket "$T/last.sock" 10 || t_bail "lastword did not start"
sink_start s
# a: outbound-milter first, the refusing filter after it; b: the other way round
pf_setup a s "unix:$T/milter.sock unix:$T/last.sock" tempfail
pf_start a
pf_setup b s "unix:$T/last.sock unix:$T/milter.sock" tempfail
pf_start b

window() # SENDER: units counted for SENDER on google by rule per-sender
{
	rcli ZCARD "obm:{google}:w:per-sender:$1" | grep -Ex '[0-9]+' || echo "no answer"
}
pending() # SENDER: units of SENDER still pending on google
{
	rcli ZCARD "obm:{google}:p:per-sender:$1" | grep -Ex '[0-9]+' || echo "no answer"
}

# outbound-milter first: it accepts, the last filter refuses
smtp_send "$T/a1.out" "${PF_OUT[a]}" refuse-a@example.com u1@gmail.com
t_like "a: the later filter refuses the message" "$(smtp_data_reply "$T/a1.out")" \
	'^550 5\.7\.1 Refused by the last filter'
t_file_like "a: outbound-milter had accepted it" "$mlog" \
	'class=personal action=tag sender=refuse-a@example\.com '
t_is "a: its unit stays counted (no abort reaches outbound-milter)" "$(window refuse-a@example.com)" 1
t_is "a: and is committed, not pending" "$(pending refuse-a@example.com)" 0
t_is "a: the recipient is in the sender's velocity" \
	"$(rcli ZCARD 'obm:{s:refuse-a@example.com}:vel')" 1

# outbound-milter last: the refusal comes first and its units go back
smtp_send "$T/b1.out" "${PF_OUT[b]}" refuse-b@example.com u2@gmail.com
t_like "b: the earlier filter refuses the message" "$(smtp_data_reply "$T/b1.out")" \
	'^550 5\.7\.1 Refused by the last filter'
window_is() { [ "$(window "$1")" = "$2" ]; }
t_wait_until 5 window_is refuse-b@example.com 0
t_is "b: outbound-milter never classified it" \
	"$(grep -c 'class=.*sender=refuse-b@example\.com' "$mlog")" 0
t_is "b: its reservation was given back" "$(window refuse-b@example.com)" 0
t_is "b: nothing pending" "$(pending refuse-b@example.com)" 0

# a message both filters accept is counted once, on either order
smtp_send "$T/a2.out" "${PF_OUT[a]}" ok@example.com u3@gmail.com
smtp_send "$T/b2.out" "${PF_OUT[b]}" ok@example.com u4@gmail.com
t_like "a: accepted" "$(smtp_data_reply "$T/a2.out")" '^250 '
t_like "b: accepted" "$(smtp_data_reply "$T/b2.out")" '^250 '
t_is "both orders: one unit each" "$(window ok@example.com)" 2
sink_wait_rcpts s 2 20
t_is "the sink got the two accepted messages" "$(sink_msgs s)" 2

pf_stop a
pf_stop b
milter_stop m
t_done
