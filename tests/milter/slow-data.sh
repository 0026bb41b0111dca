#!/bin/bash
# slow-data.sh - milter protocol: a message whose DATA outlasts
# reservation_ttl (10 s) while another session of the same sender
# reserves on the same window is still counted, at its admission time:
# the hourly window (hourly = 2) afterwards holds both messages exactly
# and refuses a third.
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
t_need miltertest redis-server redis-cli
t_init slow-data

redis_start
MC_SOCKET=unix:$T/milter.sock
MC_HOURLY=2
MC_BURST=2
MC_EXTRA='reservation_ttl = 10'
milter_std_conf >"$T/m.conf"
milter_start m "$T/m.conf" "$MC_SOCKET"

mt_run slow-data "$OBM_SRCDIR/tests/milter/slow-data.lua" "sock=$MC_SOCKET" \
	"mlog=$(milter_log m)"

milter_stop m
t_done
