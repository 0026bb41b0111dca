#!/bin/bash
# slow-data.sh - milter protocol: a message whose DATA outlasts
# reservation_ttl (10 s) keeps its reservation while its session lives
# (renewed by the milter), so another session of the same sender cannot
# take the hour's budget again meanwhile; once both complete the hourly
# window (hourly = 2) holds both messages exactly, each at its admission
# time, and refuses a third.
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
