#!/bin/bash
# limits.sh - milter protocol: the 11th recipient of one network in the
# burst window gets a 451 at RCPT while the other networks pass; a
# per-network override (hourly = 2 for yahoo) refuses the 3rd yahoo
# recipient; Redis holds exactly the admitted units; log lines name the
# network, rule, limit and window.
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
t_need miltertest redis-server redis-cli
t_init limits

redis_start
MC_SOCKET=unix:$T/milter.sock
MC_LIMIT_EXTRA='	network yahoo {
		hourly = 2
		burst = 10
	}'
milter_std_conf >"$T/m.conf"
milter_start m "$T/m.conf" "$MC_SOCKET"

mt_run limits "$OBM_SRCDIR/tests/milter/limits.lua" "sock=$MC_SOCKET" "mlog=$(milter_log m)"

milter_stop m
t_done
