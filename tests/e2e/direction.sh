#!/bin/bash
# direction.sh - end to end: which mail is limited. outbound_networks does
# not contain 127.0.0.1 here, so only the submission port (Postfix's
# milter_macro_daemon_name=ORIGINATING) is outbound; mail on the plain
# smtpd port is inbound and never limited; an exempt client on the
# submission port is not limited either; the null sender is, by the client
# address.
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
. "$OBM_SRCDIR/tests/lib/postfix.sh"
t_need redis-server redis-cli postfix smtp-sink swaks
[ "$(id -u)" -eq 0 ] || t_skip_all "needs root for a private Postfix instance"
t_init e2e-direction

redis_start
MC_SOCKET=unix:$T/milter.sock MC_OUTBOUND_NETWORKS='"192.0.2.0/24"' \
	MC_EXEMPT_CLIENTS='"127.0.0.2/32"' milter_std_conf >"$T/m.conf"
milter_start m "$T/m.conf" "unix:$T/milter.sock"
sink_start s
pf_setup a s "unix:$T/milter.sock" tempfail
pf_start a
to=$(for i in $(seq 1 12); do printf 'u%d@gmail.com,' "$i"; done)
to=${to%,}

# inbound port: not limited
smtp_send "$T/in.out" "${PF_IN[a]}" ext@example.org "$to"
t_is "inbound port: all 12 gmail.com recipients accepted" \
	"$(smtp_rcpt_replies "$T/in.out" | grep -c ' 250 ')" 12
t_is "inbound port: no rate window for the external sender" \
	"$(redis_keys 'obm:*ext@example.org*')" ""

# submission port: limited
smtp_send "$T/out.out" "${PF_OUT[a]}" a@example.com "$to"
r=$(smtp_rcpt_replies "$T/out.out")
t_is "submission port: 10 accepted" "$(grep -c ' 250 ' <<<"$r")" 10
t_is "submission port: 2 refused with 451 4.7.1" "$(grep -c ' 451 4\.7\.1 ' <<<"$r")" 2

# submission port from an exempt client address (127.0.0.2)
smtp_send "$T/exempt.out" "${PF_OUT[a]}" b@example.com "$to" --local-interface 127.0.0.2
t_is "submission port, exempt client 127.0.0.2: all 12 accepted" \
	"$(smtp_rcpt_replies "$T/exempt.out" | grep -c ' 250 ')" 12

# the null sender is limited like anyone, here by the client address
smtp_send "$T/null.out" "${PF_OUT[a]}" '<>' "$to"
r=$(smtp_rcpt_replies "$T/null.out")
t_is "submission port, null sender: 10 accepted" "$(grep -c ' 250 ' <<<"$r")" 10
t_is "submission port, null sender: 2 refused with 451 4.7.1" "$(grep -c ' 451 4\.7\.1 ' <<<"$r")" 2
t_is "submission port, null sender: the window is the client's" \
	"$(rcli ZCARD 'obm:{google}:w:per-sender:127.0.0.1')" 10

sink_wait_rcpts s 44 20
t_is "the sink got every accepted recipient (12 + 10 + 12 + 10)" "$(sink_rcpts s)" 44
pf_wait_empty a 20
t_is "queue empty" "$(pf_queue_count a)" 0

pf_stop a
milter_stop m
t_done
