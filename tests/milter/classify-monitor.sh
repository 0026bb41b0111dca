#!/bin/bash
# classify-monitor.sh - milter protocol: mode = monitor with spam-risk
# hold and bulk reject configured: nothing is held, tempfailed or
# rejected, every message gets the class header, and the decision line
# names the action that would have been taken with mode=monitor.
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
t_need miltertest redis-server redis-cli
t_init classify-monitor

redis_start
MC_MODE=monitor MC_HOURLY=1000 MC_BURST=100 MC_CLASSES='class personal { action = accept }
class bulk { action = reject }
class "spam-risk" { action = hold }' \
	MC_SOCKET=unix:$T/milter.sock milter_std_conf >"$T/m.conf"
milter_start m "$T/m.conf" "unix:$T/milter.sock"

mt_run monitor "$OBM_SRCDIR/tests/milter/classify-monitor.lua" \
	"sock=unix:$T/milter.sock" "mlog=$(milter_log m)"

milter_stop m
log=$(milter_log m)
t_is "monitor: no decision line in enforce mode" "$(t_count "$log" 'class=.* mode=enforce')" 0
t_done
