#!/bin/bash
# scopes.sh - milter protocol: rule scopes and counting. Milter "rules"
# has three rules at once (per-sender 10, per-domain 15 with scope
# sender_domain, fleet 18 with scope global) and a recipient must fit all
# of them; milter "client" limits per client address; milter "messages"
# counts one unit per message and network (count = messages).
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
t_need miltertest redis-server redis-cli
t_init scopes

redis_start
MC_SOCKET=unix:$T/rules.sock MC_EXTRA='
limit per-domain {
	scope = sender_domain
	hourly = 100
	burst = 15
	burst_window = 60
}
limit fleet {
	scope = global
	hourly = 100
	burst = 18
	burst_window = 60
}' milter_std_conf >"$T/rules.conf"

# the other two use their own key prefix in the same Redis
sed -e "s|^socket = .*|socket = \"unix:$T/client.sock\"|" \
    -e 's|^\(\s*\)timeout_ms = |\1prefix = "c:"\n\1timeout_ms = |' \
    -e 's/^limit per-sender/limit per-client/' \
    -e 's/^\(\s*\)scope = sender$/\1scope = client/' \
    -e 's/^\(\s*\)burst = 10$/\1burst = 4/' "$T/rules.conf" |
	sed '/^limit per-domain/,$d' >"$T/client.conf"
sed -e "s|^socket = .*|socket = \"unix:$T/messages.sock\"|" \
    -e 's|^\(\s*\)timeout_ms = |\1prefix = "m:"\n\1timeout_ms = |' \
    -e 's/^limit per-sender/limit per-message/' \
    -e 's/^\(\s*\)count = recipients$/\1count = messages/' \
    -e 's/^\(\s*\)burst = 10$/\1burst = 3/' "$T/rules.conf" |
	sed '/^limit per-domain/,$d' >"$T/messages.conf"

for m in rules client messages; do
	milter_start "$m" "$T/$m.conf" "unix:$T/$m.sock"
done

mt_run scopes "$OBM_SRCDIR/tests/milter/scopes.lua" "sock=unix:$T/rules.sock" \
	"sock_client=unix:$T/client.sock" "sock_messages=unix:$T/messages.sock" \
	"mlog=$(milter_log rules)"

for m in rules client messages; do
	milter_stop "$m"
done
t_done
