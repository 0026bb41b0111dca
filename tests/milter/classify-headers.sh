#!/bin/bash
# classify-headers.sh - milter protocol: the headers classification reads.
# From alignment (display names, comments, several mailboxes, sub-domains,
# the authenticated user) -> from-mismatch; Precedence bulk/list/junk,
# List-Id and List-Unsubscribe make a one-recipient message bulk-like;
# one-click unsubscribe, Message-ID and Date advice on bulk-like mail only;
# a class header submitted by the client is removed and replaced; nothing
# of an aborted message leaks into the next; exempt senders and bounces
# are classified too.
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
t_need miltertest redis-server redis-cli
t_init classify-headers

redis_start
MC_HOURLY=1000 MC_BURST=100 MC_EXEMPT_SENDERS='"exempt@example.com"' \
	MC_CLASSIFY='	header_detail = true' MC_SOCKET=unix:$T/milter.sock milter_std_conf >"$T/m.conf"
milter_start m "$T/m.conf" "unix:$T/milter.sock"

mt_run headers "$OBM_SRCDIR/tests/milter/classify-headers.lua" \
	"sock=unix:$T/milter.sock" "mlog=$(milter_log m)"

milter_stop m
t_done
