#!/bin/bash
# classify-learn.sh - milter protocol: relationships. Outbound personal
# mail teaches its recipients to the sender (a second message to the same
# recipient is known=1), bulk-like mail teaches nothing, inbound mail
# (a connection that is not outbound) from an external sender to a local
# recipient makes the sender known to that recipient, internal recipients
# are left out of rcpts, entries older than relationship_ttl do not count;
# with learn_inbound = learn_outbound = false nothing is learned while
# imported relationships still count; relationship_max = 3 keeps the 3
# most recent.
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
t_need miltertest redis-server redis-cli
t_init classify-learn

redis_start
# 127.0.0.1 is not an outbound network here: outbound is {daemon_name}
# ORIGINATING, everything else inbound
export MC_OUTBOUND_NETWORKS='"192.0.2.0/24"' MC_LOCAL_DOMAINS='"example.com"'
MC_HOURLY=1000 MC_BURST=100 MC_CLASSIFY='	header_detail = true' MC_SOCKET=unix:$T/learn.sock milter_std_conf >"$T/learn.conf"
MC_HOURLY=1000 MC_BURST=100 MC_LEARN_INBOUND=false MC_LEARN_OUTBOUND=false \
	MC_CLASSIFY='	header_detail = true' MC_SOCKET=unix:$T/nolearn.sock milter_std_conf >"$T/nolearn.conf"
MC_HOURLY=1000 MC_BURST=100 MC_EXTRA='relationship_max = 3' \
	MC_CLASSIFY='	header_detail = true' MC_SOCKET=unix:$T/cap.sock milter_std_conf >"$T/cap.conf"
milter_start learn "$T/learn.conf" "unix:$T/learn.sock"
milter_start nolearn "$T/nolearn.conf" "unix:$T/nolearn.sock"
milter_start cap "$T/cap.conf" "unix:$T/cap.sock"

mt_run learn "$OBM_SRCDIR/tests/milter/classify-learn.lua" variant=learn \
	"sock=unix:$T/learn.sock" "mlog=$(milter_log learn)"
mt_run nolearn "$OBM_SRCDIR/tests/milter/classify-learn.lua" variant=nolearn \
	"sock=unix:$T/nolearn.sock" "mlog=$(milter_log nolearn)"
mt_run cap "$OBM_SRCDIR/tests/milter/classify-learn.lua" variant=cap \
	"sock=unix:$T/cap.sock" "mlog=$(milter_log cap)"

milter_stop learn
milter_stop nolearn
milter_stop cap
t_done
