#!/bin/bash
# store-down.sh - milter protocol: Redis unreachable or stuck. With
# redis.on_error = accept the mail goes through with the header
# "X-Outbound-Class: unknown; reasons=store-unavailable"; with
# on_error = tempfail every recipient gets a 4xx reply at RCPT. A stuck
# Redis (DEBUG SLEEP) costs no more than the command timeout; when Redis
# comes back the limits apply again.
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
t_need miltertest redis-server redis-cli
t_init store-down

redis_start
MC_SOCKET=unix:$T/accept.sock MC_ON_ERROR=accept milter_std_conf >"$T/accept.conf"
MC_SOCKET=unix:$T/tempfail.sock MC_ON_ERROR=tempfail milter_std_conf >"$T/tempfail.conf"
milter_start accept "$T/accept.conf" "unix:$T/accept.sock"
milter_start tempfail "$T/tempfail.conf" "unix:$T/tempfail.sock"

# both work while Redis is up (and hold a connection to it)
mt_run warmup-accept "$OBM_SRCDIR/tests/milter/store-down.lua" "sock=unix:$T/accept.sock" \
	"mlog=$(milter_log accept)" "phase=up" "policy=accept"
mt_run warmup-tempfail "$OBM_SRCDIR/tests/milter/store-down.lua" "sock=unix:$T/tempfail.sock" \
	"mlog=$(milter_log tempfail)" "phase=up" "policy=tempfail"

# Redis stopped
redis_stop
mt_run down-accept "$OBM_SRCDIR/tests/milter/store-down.lua" "sock=unix:$T/accept.sock" \
	"mlog=$(milter_log accept)" "phase=down" "policy=accept"
mt_run down-tempfail "$OBM_SRCDIR/tests/milter/store-down.lua" "sock=unix:$T/tempfail.sock" \
	"mlog=$(milter_log tempfail)" "phase=down" "policy=tempfail"

# Redis back: the limits apply again
redis_restart
mt_run back-accept "$OBM_SRCDIR/tests/milter/store-down.lua" "sock=unix:$T/accept.sock" \
	"mlog=$(milter_log accept)" "phase=back" "policy=accept"
mt_run back-tempfail "$OBM_SRCDIR/tests/milter/store-down.lua" "sock=unix:$T/tempfail.sock" \
	"mlog=$(milter_log tempfail)" "phase=back" "policy=tempfail"

# Redis stuck for 3 s: answers within the command timeout (200 ms) + slack
mt_run stuck "$OBM_SRCDIR/tests/milter/store-down.lua" "sock=unix:$T/accept.sock" \
	"sock2=unix:$T/tempfail.sock" "mlog=$(milter_log accept)" "phase=stuck" "policy=both"

milter_stop accept
milter_stop tempfail
t_done
