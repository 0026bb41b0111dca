#!/bin/bash
# cluster-slots.sh - every multi-key command the milter and outboundctl
# send keeps its keys in one Redis Cluster hash slot, each key with a
# {hash tag}. The keys are the ones actually sent: `redis-cli MONITOR` on
# the test's Redis captures the traffic of messages that exercise every
# store path (reserve over two rules and three networks, refusals, commit,
# abort and release, renewal of a slow message (reservation_ttl = 10),
# classification and learning, an authenticated login, a blocked sender,
# inbound learning) and of outboundctl (rel add/import/del, block,
# unblock, reset, stats, sender, network, log, metrics).
# cluster-slots.py computes the slots itself (CRC16/XMODEM, the {tag}
# rule; its --selftest proves it refuses an untagged key, keys of two tags
# and an unknown command), and every distinct key's slot is compared with
# CLUSTER KEYSLOT of a cluster-enabled redis-server. Keys touched inside a
# script must lie in the script's slot.
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
t_need miltertest redis-server redis-cli python3
t_init cluster-slots

CTL=$OBM_BUILD/outboundctl
[ -x "$CTL" ] || t_bail "$CTL is missing (make $OBM_BUILD/outboundctl)"
PY="$OBM_SRCDIR/tests/milter/cluster-slots.py"

# the checker itself
out=$(python3 "$PY" --selftest)
printf '%s\n' "$out"
T_PASS=$((T_PASS + $(grep -c '^ok - ' <<<"$out")))
T_FAIL=$((T_FAIL + $(grep -c '^not ok - ' <<<"$out")))
t_is "selftest ran its 12 checks" "$(grep -c '^\(not \)\{0,1\}ok - ' <<<"$out")" 12

redis_start
redis-cli -s "$REDIS_SOCK" MONITOR >"$T/monitor.txt" 2>&1 &
mon=$!
t_track "$mon"
t_ok "MONITOR is running" t_wait_until 5 grep -q '^OK' "$T/monitor.txt"

MC_SOCKET=unix:$T/milter.sock
MC_BURST=10 MC_HOURLY=30
MC_LOCAL_DOMAINS='"example.com"'
MC_OUTBOUND_NETWORKS='"127.0.0.0/8"'
MC_CLASSES='class personal { action = tag }
class bulk { action = tag }
class "spam-risk" { action = hold }'
MC_EXTRA='reservation_ttl = 10
limit all-senders {
	scope = global
	hourly = 1000
	burst = 1000
	burst_window = 60
}'
milter_std_conf >"$T/m.conf"
milter_start m "$T/m.conf" "$MC_SOCKET"

cat >"$T/traffic.lua" <<'LUA'
dofile(srcdir .. "/tests/milter/mtlib.lua")
local S = "slots@example.com"
-- refusals over three networks and two rules, commit
local conn = T.open()
T.is(T.mail(conn, S), "continue", "MAIL FROM")
local r = T.rcpts(conn, T.addrs("gmail.com", 12), "SLOT0001")
T.is(T.count(r, "replycode"), 2, "11th and 12th gmail.com recipients refused")
T.rcpts(conn, { "y1@yahoo.com", "h1@hotmail.com", "[192.0.2.7]@x.test", "colleague@example.com" }, "SLOT0001")
T.finish_message(conn, "SLOT0001", "message 1")
-- abort: release
T.is(T.mail(conn, S), "continue", "MAIL FROM 2")
T.rcpts(conn, { "y2@yahoo.com", "h2@hotmail.com" }, "SLOT0002")
T.must(mt.abort(conn), "abort")
-- a slow message: its units are renewed (reservation_ttl 10 s: every
-- 3.3 s); wait for the renewal to show in the capture
T.is(T.mail(conn, S), "continue", "MAIL FROM 3")
T.rcpts(conn, { "y3@yahoo.com", "z@yahoo.com" }, "SLOT0003")
T.headers(conn)
local renewed = false
for _ = 1, 200 do
	local f = io.open(monfile, "r")
	local all = f and f:read("a") or ""
	if f then f:close() end
	if all:find('[0 lua] "ZADD" "obm:{yahoo}:p:', 1, true) and all:find('"XX"', 1, true) then
		renewed = true
		break
	end
	mt.sleep(0.05)
end
T.ok(renewed, "the slow message's units were renewed within 10 s")
T.body(conn)
T.eom(conn, "SLOT0003")
mt.disconnect(conn)
-- an authenticated login from outside, and a null sender
conn = T.open({ ip = "192.0.2.30", daemon = "smtpd" })
T.is(T.mail(conn, "x@example.net", { auth = "loginuser" }), "continue", "authenticated MAIL FROM")
T.rcpts(conn, { "a1@yahoo.com", "a2@gmail.com" }, "SLOT0004")
T.finish_message(conn, "SLOT0004", "authenticated")
T.is(T.mail(conn, "", { auth = "loginuser" }), "continue", "authenticated null sender")
T.rcpts(conn, { "a3@yahoo.com" }, "SLOT0005")
T.finish_message(conn, "SLOT0005", "null sender")
mt.disconnect(conn)
-- inbound: a reply teaches a relationship
conn = T.open({ ip = "198.51.100.9", daemon = "smtpd" })
T.is(T.mail(conn, "friend@partner.test"), "continue", "inbound MAIL FROM")
T.rcpts(conn, { S }, "SLOT0006")
T.finish_message(conn, "SLOT0006", "inbound")
mt.disconnect(conn)
T.finish()
LUA
mt_run traffic "$T/traffic.lua" "sock=$MC_SOCKET" "mlog=$(milter_log m)" "monfile=$T/monitor.txt"
t_file_like "a renewal happened while the slow message waited" "$T/monitor.txt" \
	'\[0 lua\] "ZADD" "obm:\{yahoo\}:p:[^"]*" "XX"'

# outboundctl, on the same Redis
S=slots@example.com
printf 'r1@gmail.com\nr2@yahoo.com\n' >"$T/rel.txt"
for args in "rel add $S k1@gmail.com k2@yahoo.com" "rel import $S $T/rel.txt" \
	"rel del $S k1@gmail.com" "rel show $S" "block blocked@example.com --reason test" \
	"sender blocked@example.com" "unblock blocked@example.com" "stats" "--json stats" \
	"sender $S" "network google" "log --count 5" "metrics" "reset $S --network yahoo" \
	"reset $S"; do
	# shellcheck disable=SC2086
	"$CTL" -c "$T/m.conf" $args >"$T/ctl.out" 2>&1
	t_is "outboundctl $args: exit 0" "$?" 0
done
# a blocked sender's message
"$CTL" -c "$T/m.conf" block b2@example.com >/dev/null 2>&1
cat >"$T/blocked.lua" <<'LUA'
dofile(srcdir .. "/tests/milter/mtlib.lua")
local conn = T.open()
T.is(T.mail(conn, "b2@example.com"), "continue", "blocked sender: MAIL FROM")
T.rcpts(conn, { "q@gmail.com" }, "SLOT0007")
T.finish_message(conn, "SLOT0007", "blocked sender")
mt.disconnect(conn)
T.finish()
LUA
mt_run blocked "$T/blocked.lua" "sock=$MC_SOCKET" "mlog=$(milter_log m)"
milter_stop m
redis-cli -s "$REDIS_SOCK" PING >/dev/null
sleep 0.3
t_kill_pid "$mon"
t_untrack "$mon"

t_diag "MONITOR captured $(wc -l <"$T/monitor.txt") lines"
out=$(python3 "$PY" "$T/monitor.txt" "" --keys "$T/keys.txt")
printf '%s\n' "$out"
T_PASS=$((T_PASS + $(grep -c '^ok - ' <<<"$out")))
T_FAIL=$((T_FAIL + $(grep -c '^not ok - ' <<<"$out")))
stat=$(grep '^STAT ' <<<"$out")
t_like "the checker read the capture" "$stat" '^STAT multi=[0-9]+ evalsha=[0-9]+ inner=[0-9]+ problems=0$'
evalsha=$(sed -n 's/.* evalsha=\([0-9]*\).*/\1/p' <<<"$stat")
multi=$(sed -n 's/.*multi=\([0-9]*\).*/\1/p' <<<"$stat")
t_ge "the capture holds script calls (reserve and renew)" "${evalsha:-0}" 20
t_ge "every script call is a multi-key check (or a one-key renew)" "${multi:-0}" 15
t_ok "reserve over two rules sent 4 keys in one call" grep -q '^# script call with 4 keys: ' <<<"$out"
t_ok "renew sent one key per call" grep -q '^# script call with 1 keys: ' <<<"$out"

# the slots computed by the checker against Redis's own, on a
# cluster-enabled server
port=$(t_free_port)
mkdir -p "$T/cluster"
redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes \
	--cluster-config-file "$T/cluster/nodes.conf" --dir "$T/cluster" --save '' \
	--appendonly no --daemonize no >"$T/cluster.log" 2>&1 &
cpid=$!
t_track "$cpid"
t_wait_port "$port" 10 || t_bail "cluster-enabled redis-server did not start"
nkeys=$(wc -l <"$T/keys.txt")
t_ge "keys to compare" "$nkeys" 20
mism=0
while read -r s k; do
	r=$(redis-cli -p "$port" CLUSTER KEYSLOT "$k")
	if [ "$r" != "$s" ]; then
		mism=$((mism + 1))
		t_diag "slot of $k: checker $s, Redis $r"
	fi
done <"$T/keys.txt"
t_is "the checker's slot equals CLUSTER KEYSLOT for all $nkeys keys" "$mism" 0
t_kill_pid "$cpid"
t_untrack "$cpid"
t_done
