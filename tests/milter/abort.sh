#!/bin/bash
# abort.sh - milter protocol: a transaction aborted at every stage (after
# MAIL, after RCPTs, after the headers, after the body) and connections
# closed without an abort give their reservations back: Redis has no
# pending unit left and the window does not count them.
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
t_need miltertest redis-server redis-cli
t_init abort

redis_start
MC_SOCKET=unix:$T/milter.sock
milter_std_conf >"$T/m.conf"
milter_start m "$T/m.conf" "$MC_SOCKET"

mt_run abort "$OBM_SRCDIR/tests/milter/abort.lua" "sock=$MC_SOCKET" "mlog=$(milter_log m)"

milter_stop m
t_done
