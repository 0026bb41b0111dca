#!/bin/bash
# valgrind.sh - the milter under valgrind memcheck
# (--leak-check=full --errors-for-leak-kinds=definite) while a short load
# goes through a private Postfix: messages of 1, 3 and 10 recipients
# (tempfails from a tight yahoo limit, spam-risk mail held), a Redis outage
# in the middle (the error and reconnect paths), a SIGHUP reload, then
# SIGTERM. valgrind must report no error and no definite leak, and every
# message is accounted for.
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
. "$OBM_SRCDIR/tests/lib/postfix.sh"
. "$OBM_SRCDIR/tests/faults/lib/faults.bash"
t_need valgrind redis-server redis-cli postfix smtp-sink perl
[ "$(id -u)" -eq 0 ] || t_skip_all "needs root for a private Postfix instance"
t_init faults-valgrind

PAUSE_MS=20	# between the messages of a session: a few hundred messages in all
VG_ERR=99

redis_start
MC_SOCKET=unix:$T/milter.sock
MC_LIMIT_EXTRA='network yahoo { hourly = 10; burst = 10 }'
MC_CLASSES='class personal { action = tag }
class bulk { action = tag }
class "spam-risk" { action = hold }'
faults_conf >"$T/m.conf"
[ -x "$OBM_MILTER" ] || t_bail "$OBM_MILTER not built (run make)"

valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite \
	--show-leak-kinds=definite,possible --error-exitcode=$VG_ERR --track-fds=no \
	--num-callers=30 --log-file="$T/valgrind.log" \
	"$OBM_MILTER" -f -c "$T/m.conf" </dev/null >"$T/milter.log" 2>&1 &
vpid=$!
t_track "$vpid"
t_wait_until 60 t_unix_listening "$T/milter.sock" ||
	t_bail "the milter did not come up under valgrind: $(tail -n 20 "$T/valgrind.log")"
sink_start s
pf_setup a s "$MC_SOCKET" tempfail
pf_start a

load_start L --port "${PF_OUT[a]}" --sessions 4 --messages 100000 --rcpts 1,3,10 \
	--senders 10 --pause "$PAUSE_MS" --retry-pause 50
load_wait_progress L 100 120 || t_fail "100 messages"
sleep 2

# Redis away for 2 s
redis_stop
sleep 2
redis_spawn
sleep 3

# a reload
kill -HUP "$vpid"
t_wait_log "$T/milter.log" 'reloaded' 20 || t_fail "SIGHUP reload logged"
sleep 3
load_stop L
load_wait L 300
t_ok "the milter is still running after the load" t_alive "$vpid"

# SIGTERM; valgrind then checks for leaks
kill -TERM "$vpid"
t_wait_until 120 eval "! t_alive $vpid"
if t_alive "$vpid"; then
	t_fail "the milter under valgrind exits after SIGTERM (120 s)"
	kill -KILL "$vpid"
fi
wait "$vpid"
st=$?
t_untrack "$vpid"
t_is "valgrind exit status (0: no error, no definite leak; $VG_ERR: errors)" "$st" 0

pf_wait_settled a 60 || t_fail "Postfix delivered or held everything within 60 s"
account valgrind L s a

summary=$(grep -E 'ERROR SUMMARY|definitely lost:|indirectly lost:|possibly lost:|still reachable:|All heap blocks' \
	"$T/valgrind.log" | sed 's/^==[0-9]*== *//')
fig "valgrind: $(grep -c 'class=' "$T/milter.log") messages classified under memcheck;" \
	"$(tr '\n' ';' <<<"$summary")"
t_file_like "valgrind: ERROR SUMMARY: 0 errors" "$T/valgrind.log" 'ERROR SUMMARY: 0 errors'
t_file_unlike "valgrind: no definite leak" "$T/valgrind.log" 'definitely lost: [1-9]'
t_file_unlike "valgrind: no invalid access or uninitialised value" "$T/valgrind.log" \
	'Invalid (read|write|free)|uninitialised|Mismatched free|overlap'
if [ "$T_FAIL" -gt 0 ]; then
	t_diag "valgrind log:" "$(grep -v '^==[0-9]*== *$' "$T/valgrind.log" | tail -n 80)"
fi
t_file_like "the milter logged the Redis outage" "$T/milter.log" 'unavailable'
t_file_like "the milter logged its stop" "$T/milter.log" 'stopped'

pf_stop a
t_done
