#!/bin/bash
# round-trips.sh - milter protocol: Redis round trips of real messages,
# counted by Redis itself (INFO stats): one per recipient and one per end of
# message whatever the recipient count, for limited mail, exempt mail,
# internal recipients, bounces and a refused recipient; new Redis
# connections (PING, SCRIPT LOAD) are counted apart.
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
t_need miltertest redis-server redis-cli
t_init round-trips

redis_start
MC_HOURLY=100000 MC_BURST=35 MC_LOCAL_DOMAINS='"ours.example"' \
	MC_EXEMPT_SENDERS='"exempt@example.com"' \
	MC_EXTRA='limit per-network {
	scope = global
	hourly = 100000
	burst = 100000
}' MC_SOCKET=unix:$T/milter.sock milter_std_conf >"$T/m.conf"
milter_start m "$T/m.conf" "unix:$T/milter.sock"

mt_run round-trips "$OBM_SRCDIR/tests/milter/round-trips.lua" \
	"sock=unix:$T/milter.sock" "mlog=$(milter_log m)"

milter_stop m
t_done
