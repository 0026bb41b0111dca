#!/bin/bash
# crash.sh - the milter is killed (SIGKILL) with reservations pending: a
# new milter starts on the stale unix socket, the abandoned reservations
# still count until reservation_ttl (10 s) and then expire by themselves.
# Finally SIGTERM stops the milter within 5 s although a client holds a
# transaction open.
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
t_need miltertest redis-server redis-cli
t_init crash

redis_start
MC_SOCKET=unix:$T/milter.sock
MC_EXTRA='reservation_ttl = 10'
milter_std_conf >"$T/m.conf"
milter_start m1 "$T/m.conf" "$MC_SOCKET"

# reserve 5 units, then the script kills the milter with the transaction open
mt_run reserve "$OBM_SRCDIR/tests/milter/crash.lua" "sock=$MC_SOCKET" \
	"phase=reserve" "mpid=${MILTER_PID[m1]}"
t0=$(t_now)
t_wait_until 5 eval "! t_alive ${MILTER_PID[m1]}"
t_not "first milter is gone" t_alive "${MILTER_PID[m1]}"
milter_kill m1
t_ok "stale socket file left behind" test -S "$T/milter.sock"

milter_start m2 "$T/m.conf" "$MC_SOCKET"
t_ok "a new milter starts on the stale socket (running, accepting connections)" \
	eval "t_alive ${MILTER_PID[m2]} && milter_listening $MC_SOCKET"
mt_run within-ttl "$OBM_SRCDIR/tests/milter/crash.lua" "sock=$MC_SOCKET" "phase=within"

# past the reservation TTL the abandoned units are gone
t_sleep_until "$(t_after 11.5 "$t0")"
mt_run after-ttl "$OBM_SRCDIR/tests/milter/crash.lua" "sock=$MC_SOCKET" "phase=after"

# SIGTERM with a transaction open: a client in the middle of a message
(cd "$T" && miltertest -D "srcdir=$OBM_SRCDIR" -D "redis=$REDIS_SOCK" -D "sock=$MC_SOCKET" \
	-D phase=hold -s "$OBM_SRCDIR/tests/milter/crash.lua") >"$T/hold.out" 2>&1 &
hold=$!
t_track "$hold"
t_wait_log "$T/hold.out" '^# holding' 10 || t_fail "holding client did not start" "$(cat "$T/hold.out")"
milter_stop m2
t_kill_pid "$hold" 1
t_untrack "$hold"
t_done
