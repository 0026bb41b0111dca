#!/bin/bash
# classify-velocity.sh - milter protocol: velocity is the number of
# distinct external recipients of the sender (authenticated user, else
# envelope sender) in the last hour, this message included; one over
# personal_max_hourly (5 here) makes a one-recipient message bulk-like
# (reason velocity); entries older than an hour do not count.
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
t_need miltertest redis-server redis-cli
t_init classify-velocity

redis_start
MC_HOURLY=1000 MC_BURST=100 MC_CLASSIFY='	personal_max_hourly = 5
	header_detail = true' \
	MC_SOCKET=unix:$T/milter.sock milter_std_conf >"$T/m.conf"
milter_start m "$T/m.conf" "unix:$T/milter.sock"

mt_run velocity "$OBM_SRCDIR/tests/milter/classify-velocity.lua" \
	"sock=unix:$T/milter.sock" "mlog=$(milter_log m)"

milter_stop m
t_done
