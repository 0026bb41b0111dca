#!/bin/bash
# messages.sh - milter protocol: many messages on one connection; no state
# leaks from one message into the next (recipients, sender, networks), and
# the rate window still counts across messages.
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
t_need miltertest redis-server redis-cli
t_init messages

redis_start
MC_SOCKET=unix:$T/milter.sock
milter_std_conf >"$T/m.conf"
milter_start m "$T/m.conf" "$MC_SOCKET"

mt_run messages "$OBM_SRCDIR/tests/milter/messages.lua" "sock=$MC_SOCKET" "mlog=$(milter_log m)"

milter_stop m
t_done
