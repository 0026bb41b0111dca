#!/bin/bash
# milter-down.sh - the milter is not running: Postfix with
# milter_default_action = tempfail answers 4xx, the client keeps the
# message and nothing is delivered, queued or bounced; once the milter is
# started the same message goes through. The milter killed between two
# sessions gives the same 4xx, never a silent accept.
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
. "$OBM_SRCDIR/tests/lib/postfix.sh"
t_need redis-server redis-cli postfix smtp-sink swaks
[ "$(id -u)" -eq 0 ] || t_skip_all "needs root for a private Postfix instance"
t_init e2e-milter-down

redis_start
MC_SOCKET=unix:$T/milter.sock milter_std_conf >"$T/m.conf"
sink_start s
pf_setup a s "unix:$T/milter.sock" tempfail
pf_start a
port=${PF_OUT[a]}
S=a@example.com

# 4xx anywhere in the session, and no 250 after DATA
tempfailed()
{
	grep -Eq '^(<-|<\*\*) +4[0-9][0-9] ' "$1" && ! smtp_data_reply "$1" | grep -q '^250'
}

# no milter at all
smtp_send "$T/nomilter.out" "$port" "$S" "u1@gmail.com,y1@yahoo.com"
rc=$?
t_not "milter not running: swaks does not report success" test "$rc" -eq 0
t_ok "milter not running: Postfix answers 4xx" tempfailed "$T/nomilter.out"
t_diag "$(grep -E '^(<-|<\*\*) +4' "$T/nomilter.out" | head -n 2)"
t_file_like "milter not running: Postfix logs the milter connection failure" "$(pf_maillog a)" \
	'warning: connect to Milter service unix:'
sleep 1
t_is "milter not running: nothing delivered" "$(sink_msgs s)" 0
t_is "milter not running: nothing queued" "$(pf_queue_count a)" 0

# the milter starts: the same message goes through
milter_start m "$T/m.conf" "unix:$T/milter.sock"
smtp_send "$T/retry.out" "$port" "$S" "u1@gmail.com,y1@yahoo.com"
t_like "milter started: the retry is queued" "$(smtp_data_reply "$T/retry.out")" '^250 '
sink_wait_rcpts s 2 20
t_is "milter started: 2 recipients delivered" "$(sink_rcpts s)" 2

# the milter dies (SIGKILL) between sessions: tempfail again, nothing lost
milter_kill m
smtp_send "$T/killed.out" "$port" "$S" "u2@gmail.com"
t_ok "milter killed: Postfix answers 4xx" tempfailed "$T/killed.out"
sleep 1
t_is "milter killed: nothing more delivered" "$(sink_rcpts s)" 2
t_is "milter killed: nothing queued" "$(pf_queue_count a)" 0

# and back again on the stale socket
milter_start m2 "$T/m.conf" "unix:$T/milter.sock"
smtp_send "$T/back.out" "$port" "$S" "u2@gmail.com"
t_like "milter restarted: the message is queued" "$(smtp_data_reply "$T/back.out")" '^250 '
sink_wait_rcpts s 3 20
t_is "milter restarted: delivered" "$(sink_rcpts s)" 3
t_is "redis: 2 gmail.com units for the sender (u1, u2)" \
	"$(redis_zcard "obm:{google}:w:per-sender:$S")" 2

pf_stop a
milter_stop m2
t_done
