#!/bin/bash
# direction.sh - milter protocol: who is limited. Inbound mail (client
# outside outbound_networks, no authentication, other daemon) is never
# limited; {daemon_name} ORIGINATING and authentication make a connection
# outbound, and authenticated mail is scoped by the authenticated user; the
# null sender is limited by the user, else by the client address; exempt
# senders (address and whole domain, matched on the identity) and exempt
# clients are never limited.
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
t_need miltertest redis-server redis-cli
t_init direction

redis_start
MC_SOCKET=unix:$T/milter.sock
MC_EXEMPT_SENDERS='"exempt@example.com", "@exempt.example"'
MC_EXEMPT_CLIENTS='"127.0.0.2/32", "2001:db8::/32"'
milter_std_conf >"$T/m.conf"
milter_start m "$T/m.conf" "$MC_SOCKET"

mt_run direction "$OBM_SRCDIR/tests/milter/direction.lua" "sock=$MC_SOCKET" "mlog=$(milter_log m)"

milter_stop m
t_done
