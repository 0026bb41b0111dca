#!/bin/bash
# error-limits.sh - end to end: a message to more recipients of one
# network than its burst allows, on a submission port with Postfix's
# default error limits (smtpd_soft_error_limit 10, smtpd_hard_error_limit
# 20, smtpd_error_sleep_time 1s) and on one with the error settings of the
# shipped contrib/postfix/master.cf.snippet (taken from the file). 35 Gmail
# recipients, burst 10:
#   - defaults: after 20 refused recipients smtpd answers "421 too many
#     errors" and drops the transaction, the 10 accepted recipients with
#     it: nothing is delivered;
#   - the snippet's settings: 10 accepted, 25 refused with 451 4.7.1, the
#     transaction completes (250 queued) and the 10 are delivered.
# The milter listens on the shipped layout: its socket in the instance's
# queue directory, outbound-milter/milter.sock (the daemon creates the
# folder), and both ports name it as main.cf.snippet does, relative to
# the queue directory; the snippet's port runs chrooted, as Debian's
# port-25 smtpd does, the other not.
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
. "$OBM_SRCDIR/tests/lib/postfix.sh"
t_need redis-server redis-cli postfix smtp-sink swaks
[ "$(id -u)" -eq 0 ] || t_fail "needs root for a private Postfix instance"
t_init e2e-error-limits

SNIPPET=$OBM_SRCDIR/contrib/postfix/master.cf.snippet
REL=$(sed -n 's/^smtpd_milters = //p' "$OBM_SRCDIR/contrib/postfix/main.cf.snippet")
t_is "main.cf.snippet names the socket relative to the queue directory" "$REL" \
	unix:outbound-milter/milter.sock
redis_start
sink_start s
pf_setup a s "$REL" tempfail
SOCK=${PF_DIR[a]}/spool/${REL#unix:}
MC_SOCKET=unix:$SOCK MC_BURST=10 MC_WINDOW=60 MC_HOURLY=100 milter_std_conf >"$T/m.conf"
milter_start m "$T/m.conf" "unix:$SOCK"
cf=$(pf_conf a)/master.cf
pf_add_port a defaults "$REL"
printf '%s\n' "  -o smtpd_soft_error_limit=10" "  -o smtpd_hard_error_limit=20" \
	"  -o smtpd_error_sleep_time=1s" >>"$cf"
pf_add_port a shipped "$REL"
# the snippet's port chrooted, like Debian's smtp service
port=${PF_PORT[a/shipped]}
sed -i "s/^127.0.0.1:$port inet n - n - - smtpd$/127.0.0.1:$port inet n - y - - smtpd/" "$cf"
t_is "the snippet's port is chrooted" "$(grep -c "^127.0.0.1:$port inet n - y " "$cf")" 1
awk '/^submission /{e=1; next} /^[^ #]/{e=0} e && /error_limit|error_sleep_time/' "$SNIPPET" >>"$cf"
t_is "the snippet's submission entry sets the three error settings" \
	"$(awk '/^submission /{e=1; next} /^[^ #]/{e=0} e && /error_limit|error_sleep_time/' "$SNIPPET" | wc -l)" 3
pf_start a

to=$(for i in $(seq 1 35); do printf 'u%d@gmail.com,' "$i"; done)
to=${to%,}

# Postfix's defaults: the transaction is lost
smtp_send "$T/def.out" "${PF_PORT[a/defaults]}" def@example.com "$to" --header "X-Test-Id: def"
t_like "defaults: smtpd gives up with 421 too many errors" \
	"$(grep -E '^<\*\* +421 ' "$T/def.out" | head -n 1)" '421 .*[Tt]oo many errors'
t_is "defaults: no 250 after DATA" "$(smtp_data_reply "$T/def.out" | grep -c '^250 ')" 0

# the snippet's settings: the message goes out to the recipients the burst allows
smtp_send "$T/ship.out" "${PF_PORT[a/shipped]}" ship@example.com "$to" --header "X-Test-Id: ship"
r=$(smtp_rcpt_replies "$T/ship.out")
t_is "snippet: 10 recipients accepted" "$(grep -c ' 250 ' <<<"$r")" 10
t_is "snippet: 25 refused with 451 4.7.1" "$(grep -c ' 451 4\.7\.1 ' <<<"$r")" 25
t_like "snippet: the transaction completes" "$(smtp_data_reply "$T/ship.out")" '^250 .*queued as'
sink_wait_rcpts s 10 20
t_is "snippet: the 10 accepted recipients are delivered" \
	"$(sink_rcpt_list s | sort -u | wc -l)" 10
t_is "defaults: nothing of the dropped transaction delivered" "$(sink_file_by_id s def)" ""

pf_stop a
milter_stop m
t_done
