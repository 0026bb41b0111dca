#!/bin/bash
# monitor.sh - milter protocol: mode = monitor never tempfails; it logs
# action=would-tempfail for the recipients over the limit and marks its
# decision lines mode=monitor.
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
t_need miltertest redis-server redis-cli
t_init monitor

redis_start
MC_SOCKET=unix:$T/milter.sock
MC_MODE=monitor
milter_std_conf >"$T/m.conf"
milter_start m "$T/m.conf" "$MC_SOCKET"

mt_run monitor "$OBM_SRCDIR/tests/milter/monitor.lua" "sock=$MC_SOCKET" "mlog=$(milter_log m)"

milter_stop m
log=$(milter_log m)
t_is "monitor: no recipient was tempfailed" "$(t_count "$log" 'action=tempfail ')" 0
# message 1: recipients 11-13; message 2: all 13 (the window is still full)
t_is "monitor: one would-tempfail line per recipient over the limit" \
	"$(t_count "$log" 'action=would-tempfail rcpt=')" 16
t_done
