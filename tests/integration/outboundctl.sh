#!/bin/bash
# outboundctl.sh - the operations CLI against a throwaway Redis: rel add,
# del, show (table and --json) and import (comments, blank and invalid
# lines, standard input, the relationship_max warning), block (reason,
# every DURATION form, the TTL in Redis) and unblock, address
# normalisation (Mixed-Case+tag@Example.COM), options before and after the
# command words, JSON escaping, and the exit status: 1 for usage errors,
# 2 for a configuration or a file that cannot be used and when Redis is
# down (who may read what: ctl-access.sh). Then stats, top, sender,
# network, log (filters, --since forms, --follow), reset and metrics on
# hand-written keys of doc/REDIS.md with a fixed clock (OBM_NOW): human
# tables compared with tests/golden/outboundctl-*.txt (`make golden`
# regenerates them and prints the diff), --json parsed, the exposition checked like promtool
# does, top in tmux (q and Ctrl-C). Log, sender and top with hostile
# values in the entries (spaces, '=', quotes, control bytes, forged
# fields): every line reads back field by field (tests/lib/logfields.pl).
# OBM_VALGRIND=1 runs every command under valgrind.
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
t_need redis-server redis-cli
t_init outboundctl

CTL=$OBM_BUILD/outboundctl
[ -x "$CTL" ] || t_bail "$CTL is missing (make $OBM_BUILD/outboundctl)"
# OBM_VALGRIND=1: every run under valgrind; a memory error or leak fails it
CTL_CMD=("$CTL")
if [ "${OBM_VALGRIND:-0}" = 1 ]; then
	t_need valgrind
	# shellcheck disable=SC2054
	CTL_CMD=(valgrind -q --error-exitcode=99 --leak-check=full
		--errors-for-leak-kinds=definite,indirect "$CTL")
fi

redis_start
P="obmctl:"
cat >"$T/ctl.conf" <<EOF
redis {
  socket = "$REDIS_SOCK"
  prefix = "$P"
  timeout_ms = 500
}
subaddress_separator = "+"
relationship_ttl = 10
relationship_max = 5
EOF
TTL_MS=$((10 * 86400000))

# run ARGS...: outboundctl with the test configuration; sets RC, OUT, ERR
run()
{
	"${CTL_CMD[@]}" -c "$T/ctl.conf" "$@" >"$T/out" 2>"$T/err"
	RC=$?
	OUT=$(cat "$T/out")
	ERR=$(cat "$T/err")
}

# run_raw ARGS...: the same without -c
run_raw()
{
	"${CTL_CMD[@]}" "$@" >"$T/out" 2>"$T/err"
	RC=$?
	OUT=$(cat "$T/out")
	ERR=$(cat "$T/err")
}

now_ms() { date +%s%3N; }

# json_ok: $OUT parses as JSON (when python3 is there to tell)
json_ok()
{
	command -v python3 >/dev/null 2>&1 || return 0
	printf '%s' "$OUT" | python3 -c 'import json, sys; json.load(sys.stdin)'
}

# json_get EXPR: a value from $OUT by a Python expression on `d`
json_get()
{
	printf '%s' "$OUT" | python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"
}

members() { rcli zrange "$1" 0 -1 | sort | tr '\n' ' '; }

# ---- help, version, usage errors -------------------------------------------

run_raw --help
t_is "--help exits 0" "$RC" 0
t_like "--help shows the usage" "$OUT" '^usage: outboundctl'
t_like "--help lists rel import" "$OUT" 'rel import SENDER FILE'
t_like "--help lists block" "$OUT" 'block ADDRESS \[--reason R\] \[--ttl DURATION\]'
run_raw -h
t_is "-h exits 0" "$RC" 0
run_raw -V
t_is "-V exits 0" "$RC" 0
t_like "-V prints the version" "$OUT" '^outboundctl [0-9]+\.[0-9]+'

run_raw
t_is "no command: exit 1" "$RC" 1
t_like "no command: usage on stderr" "$ERR" '^usage: outboundctl'
run frobnicate
t_is "unknown command: exit 1" "$RC" 1
t_like "unknown command: said so" "$ERR" "unknown command 'frobnicate'"
run rel
t_is "rel without a subcommand: exit 1" "$RC" 1
t_like "rel without a subcommand: rel usage" "$ERR" 'usage: outboundctl rel show SENDER'
run rel frob a@b.example
t_is "unknown rel subcommand: exit 1" "$RC" 1
run rel add a@b.example
t_is "rel add without recipients: exit 1" "$RC" 1
t_like "rel add without recipients: said so" "$ERR" 'rel add: missing arguments'
run rel show a@b.example c@d.example
t_is "rel show with two senders: exit 1" "$RC" 1
run rel import a@b.example
t_is "rel import without a file: exit 1" "$RC" 1
run unblock
t_is "unblock without an address: exit 1" "$RC" 1
run --bogus rel show a@b.example
t_is "unknown option: exit 1" "$RC" 1
t_like "unknown option: named" "$ERR" "unknown option '--bogus'"
run rel add a@b.example c@d.example --reason x
t_is "--reason on rel add: exit 1" "$RC" 1
t_like "--reason on rel add: does not apply" "$ERR" "option '--reason' does not apply"
run block a@b.example --ttl
t_is "--ttl without a value: exit 1" "$RC" 1
for bad in 0 -5 12x 1.5h h 10dd 99999999999999; do
	run block a@b.example --ttl "$bad"
	t_is "--ttl '$bad' refused" "$RC" 1
done
run rel add a@b.example 'not an address'
t_is "invalid recipient: exit 1" "$RC" 1
t_like "invalid recipient: named" "$ERR" "'not an address' is not a valid address"
run rel add 'no-at-sign' c@d.example
t_is "invalid sender: exit 1" "$RC" 1
t_is "usage errors wrote nothing" "$(redis_keys "$P*")" ""

run_raw -c "$T/missing.conf" rel show a@b.example
t_is "missing configuration: exit 2" "$RC" 2
t_like "missing configuration: named, with the reason" "$ERR" \
	'^outboundctl: .*missing\.conf: .*No such file or directory$'
t_is "missing configuration: one line" "$(printf '%s\n' "$ERR" | wc -l)" 1
printf 'redis {\n  socket = "%s"\n}\nno_such_option = 1\n' "$REDIS_SOCK" >"$T/bad.conf"
run_raw -c "$T/bad.conf" rel show a@b.example
t_is "bad configuration: exit 2" "$RC" 2
t_like "bad configuration: FILE:LINE" "$ERR" '^outboundctl: .*bad\.conf:4: error: '
t_is "bad configuration: one line" "$(printf '%s\n' "$ERR" | wc -l)" 1

# ---- rel add / show / del ---------------------------------------------------

REL="${P}{s:mixed-case@example.com}:rel"
t0=$(now_ms)
run rel add Mixed-Case+tag@Example.COM Bob+news@Partner.EXAMPLE carol@partner.example \
	bob@partner.example
t1=$(now_ms)
t_is "rel add: exit 0" "$RC" 0
t_is "rel add: output" "$OUT" "mixed-case@example.com: 2 relationships added"
t_is "rel add: normalised key and members" "$(members "$REL")" \
	"bob@partner.example carol@partner.example "
score=$(rcli zscore "$REL" bob@partner.example)
t_ge "rel add: last seen is now (not before)" "$score" "$t0"
t_le "rel add: last seen is now (not after)" "$score" "$t1"
t_ge "rel add: TTL of relationship_ttl" "$(rcli pttl "$REL")" $((TTL_MS - 10000))
t_le "rel add: TTL at most relationship_ttl" "$(rcli pttl "$REL")" "$TTL_MS"

# options after the command words, and JSON
run rel add x@y.example Z@Y.example --json
t_is "rel add --json after the words: exit 0" "$RC" 0
t_is "rel add --json" "$OUT" '{"sender":"x@y.example","added":1}'
"${CTL_CMD[@]}" rel show --json x@y.example -c "$T/ctl.conf" >"$T/out" 2>"$T/err"
t_is "-c after the words" "$?" 0
t_like "rel show after -c at the end" "$(cat "$T/out")" '"recipient":"z@y.example"'

# known times: carol newer than bob
now=$(now_ms)
bob_ms=$((now - 86400000))
rcli zadd "$REL" "$bob_ms" bob@partner.example "$((now - 1000))" carol@partner.example \
	>/dev/null
bob_iso=$(date -u -d "@$((bob_ms / 1000))" +%Y-%m-%dT%H:%M:%SZ)
# one past the TTL: not shown
rcli zadd "$REL" "$((now - TTL_MS - 60000))" old@partner.example >/dev/null

run rel show MIXED-CASE+other@example.com
t_is "rel show: exit 0" "$RC" 0
t_is "rel show: header" "$(sed -n 1p "$T/out")" \
	"RECIPIENT              LAST SEEN (UTC)"
t_like "rel show: newest first" "$(sed -n 2p "$T/out")" \
	'^carol@partner\.example +[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$'
t_is "rel show: ISO-8601 UTC" "$(sed -n 3p "$T/out")" "bob@partner.example    $bob_iso"
t_is "rel show: expired entries hidden" "$(wc -l <"$T/out")" 3

run --json rel show mixed-case@example.com
t_is "rel show --json: exit 0" "$RC" 0
t_ok "rel show --json: valid JSON" json_ok
t_like "rel show --json: objects" "$OUT" \
	"\{\"recipient\":\"bob@partner\.example\",\"last_seen\":\"$bob_iso\",\"last_seen_ms\":$bob_ms\}"
if command -v python3 >/dev/null 2>&1; then
	t_is "rel show --json: an array, newest first" \
		"$(json_get "','.join(e['recipient'] for e in d)")" \
		"carol@partner.example,bob@partner.example"
fi

run rel show nobody@example.com
t_is "rel show of nobody: exit 0" "$RC" 0
t_is "rel show of nobody: said so" "$OUT" "nobody@example.com: no relationships"
run rel show nobody@example.com --json
t_is "rel show --json of nobody: []" "$OUT" "[]"

run rel del Mixed-Case@EXAMPLE.com CAROL+x@partner.example nobody@partner.example
t_is "rel del: exit 0" "$RC" 0
t_is "rel del: output" "$OUT" "mixed-case@example.com: 2 relationships deleted"
t_is "rel del: removed" "$(members "$REL")" "bob@partner.example old@partner.example "
run --json rel del mixed-case@example.com bob@partner.example
t_is "rel del --json" "$OUT" '{"sender":"mixed-case@example.com","deleted":1}'

# ---- rel import ---------------------------------------------------------------

printf '%s\n' '# permission list, exported 2024-05-01' 'bob@list.example' '' \
	'  Carol+Promo@List.EXAMPLE   # signed up at the fair' 'not-an-address' \
	'<dave@list.example>' '@nolocal.example' 'bob@list.example' '   ' '#the end' \
	>"$T/list.txt"
printf 'Eve@List.example\r\n' >>"$T/list.txt"
NREL="${P}{s:news@ours.example}:rel"
run rel import News+x@Ours.example "$T/list.txt"
t_is "rel import: exit 0" "$RC" 0
t_is "rel import: count" "$OUT" \
	"news@ours.example: 4 relationships imported, 2 invalid lines skipped"
t_like "rel import: FILE:LINE for a bad line" "$ERR" "^$T/list\.txt:5: not a valid address: not-an-address"
t_like "rel import: the second bad line" "$ERR" "$T/list\.txt:7: not a valid address: @nolocal\.example"
t_is "rel import: exactly two complaints" "$(printf '%s\n' "$ERR" | grep -c .)" 2
t_is "rel import: members" "$(members "$NREL")" \
	"bob@list.example carol@list.example dave@list.example eve@list.example "
t_le "rel import: TTL" "$(rcli pttl "$NREL")" "$TTL_MS"

run --json rel import news@ours.example "$T/list.txt"
t_is "rel import --json" "$OUT" '{"sender":"news@ours.example","imported":4,"invalid":2}'

printf 'frank@list.example\n# only a comment\n' |
	"${CTL_CMD[@]}" -c "$T/ctl.conf" rel import news@ours.example - >"$T/out" 2>"$T/err"
t_is "rel import from stdin: exit 0" "$?" 0
t_is "rel import from stdin: count" "$(cat "$T/out")" "news@ours.example: 1 relationship imported"
t_is "rel import from stdin: added" "$(rcli zscore "$NREL" frank@list.example | grep -c .)" 1
printf 'bad line\n' | "${CTL_CMD[@]}" -c "$T/ctl.conf" rel import news@ours.example - \
	>"$T/out" 2>"$T/err"
t_like "rel import from stdin: stdin:LINE" "$(cat "$T/err")" '^stdin:1: not a valid address'

# more than relationship_max (5): a warning, and only 5 kept
seq 1 7 | sed 's/.*/user&@big.example/' >"$T/big.txt"
run rel import big@ours.example "$T/big.txt"
t_is "rel import over relationship_max: exit 0" "$RC" 0
t_like "rel import over relationship_max: warning" "$ERR" \
	'warning: 7 addresses for big@ours.example, but relationship_max is 5'
t_is "rel import over relationship_max: 5 kept" \
	"$(redis_zcard "${P}{s:big@ours.example}:rel")" 5

run rel import news@ours.example "$T/no-such-file"
t_is "rel import of a missing file: exit 2" "$RC" 2
t_like "rel import of a missing file: named" "$ERR" 'no-such-file'
: >"$T/empty.txt"
run rel import news@ours.example "$T/empty.txt"
t_is "rel import of an empty file: exit 0" "$RC" 0
t_is "rel import of an empty file: 0" "$OUT" "news@ours.example: 0 relationships imported"

# ---- block / unblock ---------------------------------------------------------

BLK="${P}{s:spammer@example.com}:block"
run block Spammer+x@Example.COM --reason "phished account" --ttl 12h
t_is "block: exit 0" "$RC" 0
t_like "block: output" "$OUT" '^spammer@example\.com: blocked for 12h, until [0-9T:-]+Z \(reason: phished account\)$'
t_is "block: reason in Redis" "$(rcli get "$BLK")" "phished account"
t_ge "block: TTL set" "$(rcli ttl "$BLK")" $((43200 - 10))
t_le "block: TTL at most 12h" "$(rcli ttl "$BLK")" 43200

for d in 3600:3600 90s:90 30m:1800 7d:604800 2w:1209600; do
	run block spammer@example.com --ttl "${d%%:*}"
	ttl=$(rcli ttl "$BLK")
	if [ "$RC" -eq 0 ] && [ "$ttl" -le "${d#*:}" ] && [ "$ttl" -ge $((${d#*:} - 10)) ]; then
		t_pass "--ttl ${d%%:*} is ${d#*:} s"
	else
		t_fail "--ttl ${d%%:*} is ${d#*:} s" "exit $RC, ttl $ttl: $ERR"
	fi
done

run block --ttl=90s --reason='say "hi"\path
next' spammer@example.com --json
t_is "block --json: exit 0" "$RC" 0
t_ok "block --json: valid JSON" json_ok
t_is "block --json: escaped" "$OUT" \
	'{"sender":"spammer@example.com","blocked":true,"reason":"say \"hi\"\\path\nnext","ttl":90}'

run --json block spammer@example.com --reason $'bad\xffbyte\x01 \xc3\xa9t\xc3\xa9'
t_ok "block --json, not UTF-8: valid JSON" json_ok
t_like "block --json, not UTF-8: replaced and escaped" "$OUT" \
	'"reason":"bad\\ufffdbyte\\u0001 été"'

run block spammer@example.com
t_is "block without --ttl: exit 0" "$RC" 0
t_is "block without --ttl: no TTL" "$(rcli ttl "$BLK")" -1
t_is "block without --reason: a default reason" "$(rcli get "$BLK")" "blocked with outboundctl"
t_like "block without --ttl: until unblocked" "$OUT" 'blocked until unblocked'

run block SomeLogin
t_is "block of a login name: exit 0" "$RC" 0
t_is "block of a login name: lowercased key" "$(rcli exists "${P}{s:somelogin}:block")" 1
run block 'bad login'
t_is "block of a name with a space: exit 1" "$RC" 1

run unblock SPAMMER@example.com
t_is "unblock: exit 0" "$RC" 0
t_is "unblock: output" "$OUT" "spammer@example.com: unblocked"
t_is "unblock: key gone" "$(rcli exists "$BLK")" 0
run unblock spammer@example.com
t_is "unblock of no block: exit 0" "$RC" 0
t_is "unblock of no block: said so" "$OUT" "spammer@example.com: was not blocked"
run --json unblock somelogin
t_is "unblock --json" "$OUT" '{"sender":"somelogin","unblocked":true}'

# ---- operations: stats, top, sender, network, log, reset, metrics ------------------
#
# Hand-written keys exactly as doc/REDIS.md describes them, under their own
# prefix; "now" fixed with OBM_NOW so that hour buckets and windows, and so
# the human tables, are stable: they are compared with tests/golden/. A run
# never writes there: with OBM_GOLDEN_OUT=DIR (set by `make golden`, which
# then copies DIR over tests/golden/ and prints the diff) it also writes
# each table to DIR.

GOLDEN=$OBM_SRCDIR/tests/golden
OP="obmops:"
cat >"$T/ops.conf" <<EOF
redis {
  socket = "$REDIS_SOCK"
  prefix = "$OP"
  timeout_ms = 500
}
subaddress_separator = "+"
network google { domains = {"gmail.com", "googlemail.com"} }
network yahoo { domains = {"yahoo.com"} }
limit per-sender {
  scope = sender
  hourly = 30
  burst = 10
  burst_window = 60
  network google { hourly = 50 }
}
limit per-domain {
  scope = sender_domain
  hourly = 1000
  burst = 100
  burst_window = 600
}
limit per-client {
  scope = client
  hourly = 200
  burst = 20
  burst_window = 60
}
EOF

NOW=1796043723			# 2026-11-30T13:02:03Z
NOW_MS=$((NOW * 1000))
H=2026113013			# the current hour bucket
H1=2026113012
H2=2026113011
HOLD=2026112912			# 25 hours ago: outside the sender's 24 h

# ops ARGS...: outboundctl with the operations configuration at NOW
ops()
{
	OBM_NOW=$NOW "${CTL_CMD[@]}" -c "$T/ops.conf" "$@" >"$T/out" 2>"$T/err"
	RC=$?
	OUT=$(cat "$T/out")
	ERR=$(cat "$T/err")
}

# golden NAME: $OUT is tests/golden/outboundctl-NAME.txt
golden()
{
	local f=$GOLDEN/outboundctl-$1.txt
	if [ -n "${OBM_GOLDEN_OUT:-}" ]; then
		mkdir -p "$OBM_GOLDEN_OUT"
		printf '%s\n' "$OUT" >"$OBM_GOLDEN_OUT/outboundctl-$1.txt"
	fi
	if [ -f "$f" ] && [ "$OUT" = "$(cat "$f")" ]; then
		t_pass "$1: output as in tests/golden/outboundctl-$1.txt"
	else
		t_fail "$1: output as in tests/golden/outboundctl-$1.txt" \
			"$(diff -u "$f" <(printf '%s\n' "$OUT") 2>&1 | head -n 40)"
	fi
}

# units KEY FIRST_AGO_MS STEP_MS COUNT TAG: COUNT members scored NOW - FIRST_AGO_MS,
# then STEP_MS earlier each
units()
{
	local key=$1 ago=$2 step=$3 n=$4 tag=$5 i
	for ((i = 0; i < n; i++)); do
		printf 'ZADD "%s" %d %s-%d\n' "$key" $((NOW_MS - ago - i * step)) "$tag" "$i"
	done
}

# entry AGO_S SEQ FIELD VALUE...: a decision log entry at NOW - AGO_S
entry()
{
	local ago=$1 seq=$2 arg line
	shift 2
	line="XADD \"${OP}{log}\" $(((NOW - ago) * 1000))-$seq"
	for arg in "$@"; do
		line="$line \"$arg\""
	done
	printf '%s\n' "$line"
}

# msg AGO QID SENDER CLASS ACTION RCPTS NETWORKS REASONS [TEMPFAILED]
msg()
{
	entry "$1" 0 type message qid "$2" sender "$3" client 192.0.2.7 rcpts "$6" known 0 \
		velocity "$6" tempfailed "${9:-0}" networks "$7" class "$4" action "$5" \
		mode enforce reasons "$8"
}

{
	# fleet counters, three hours
	printf 'HSET "%s" %s\n' "${OP}{stats}:h:$H" "msg:personal 5 rcpt:personal 6 msg:bulk 2 rcpt:bulk 40 msg:spam-risk 1 rcpt:spam-risk 20 msg:unknown 1 rcpt:unknown 1 action:accept 1 action:tag 7 action:hold 1 net:google:accepted 30 net:google:tempfailed 4 net:yahoo:accepted 12 net:example.co.uk:accepted 5 net:[192.0.2.1]:accepted 1"
	printf 'HSET "%s" %s\n' "${OP}{stats}:h:$H1" "msg:personal 10 rcpt:personal 10 action:tag 10 net:google:accepted 10"
	printf 'HSET "%s" %s\n' "${OP}{stats}:h:$H2" "msg:bulk 1 rcpt:bulk 5 msg:newclass 1 rcpt:newclass 2 action:tag 1 monitor:hold 1 net:yahoo:accepted 5 net:yahoo:monitor_tempfailed 3"
	printf 'ZADD "%s" 40 news@example.com 6 alice@example.com 1 %s\n' "${OP}{stats}:top:$H" \
		"\"we\\\"ird\\\\x@example.com\""
	printf 'ZADD "%s" 10 alice@example.com 5 bob@example.com\n' "${OP}{stats}:top:$H1"
	printf 'ZADD "%s" 5 news@example.com\n' "${OP}{stats}:top:$H2"

	# rate windows
	units "${OP}{google}:w:per-sender:alice@example.com" 1000 2000 10 a
	units "${OP}{google}:w:per-sender:alice@example.com" 1800000 1000 15 b
	units "${OP}{google}:p:per-sender:alice@example.com" -300000 1 1 a-0
	units "${OP}{google}:w:per-sender:news@example.com" 1200000 1000 30 n
	units "${OP}{google}:w:per-sender:old@example.com" 7200000 1000 4 o
	units "${OP}{yahoo}:w:per-sender:alice@example.com" 10000 1000 2 y
	units "${OP}{google}:w:per-domain:example.com" 100000 1000 40 d
	units "${OP}{google}:w:retired:alice@example.com" 500000 1000 3 r
	units "${OP}{[192.0.2.1]}:w:per-sender:alice@example.com" 5000 1 1 i
	units "${OP}{google}:w:per-client:192.0.2.7" 20000 1000 5 c
	# counts under another scope: reset alice@example.com leaves it
	units "${OP}{google}:w:per-domain:alice@example.com" 7200000 1 1 x

	# alice
	printf 'HSET "%s" %s\n' "${OP}{s:alice@example.com}:h:$H" "msg 3 sent 2 rcpts 6 held 1 refused 1 tempfailed 4 class:personal 2 class:spam-risk 1 net:google 5 net:yahoo 1"
	printf 'HSET "%s" %s\n' "${OP}{s:alice@example.com}:h:$H1" "msg 10 sent 10 rcpts 10 class:personal 10 net:google 10"
	printf 'HSET "%s" %s\n' "${OP}{s:alice@example.com}:h:$HOLD" "msg 100 sent 100 rcpts 100 class:bulk 100 net:google 100"
	units "${OP}{s:alice@example.com}:vel" 1000 60000 7 v
	units "${OP}{s:alice@example.com}:vel" 4000000 1000 2 vo
	printf 'ZADD "%s" 1 a@x.example 2 b@x.example 3 c@x.example 4 d@x.example\n' \
		"${OP}{s:alice@example.com}:rel"
	printf 'SET "%s" "phished account"\n' "${OP}{s:alice@example.com}:block"

	# the decision log, oldest first
	msg 7000 1A0001 news@example.com spam-risk hold 20 google:10,yahoo:10 \
		rcpt-count,unknown-recipients,no-unsubscribe,no-one-click
	for k in 1 2 3 4 5 6; do
		msg $((6000 - k * 60)) "1B000$k" alice@example.com personal tag 1 google:1 -
	done
	msg 3000 1A0002 alice@example.com personal tag 1 google:1 -
	msg 2400 1A0003 news@example.com bulk tag 20 google:10,yahoo:10 rcpt-count,list-unsubscribe
	entry 1200 0 type tempfail qid 1A0004 sender alice@example.com client 192.0.2.7 \
		rcpt a11@gmail.com network google rule per-sender limit burst used 10 max 10 \
		window 60 mode enforce
	entry 1200 1 type tempfail qid 1A0004 sender alice@example.com client 192.0.2.7 \
		rcpt a12@gmail.com network google rule per-sender limit burst used 10 max 10 \
		window 60 mode enforce
	msg 1199 1A0004 alice@example.com personal tag 10 google:10 - 2
	msg 600 1A0005 bob@example.com unknown accept 1 yahoo:1 store-unavailable
	msg 300 1A0006 'ctl\x01char@example.com' personal tag 1 google:1 'a\"b'
	entry 120 0 type tempfail qid NOQUEUE sender carol@example.com client 192.0.2.8 \
		rcpt c@yahoo.com network yahoo rule per-sender limit hourly used 30 max 30 \
		window 3600 mode monitor
	msg 60 1A0007 alice@example.com spam-risk hold 1 google:1 blocked
	msg 30 1A0008 alice@example.com personal tag 1 google:1 -
} | rcli >"$T/load.out" 2>&1
t_unlike "ops: the hand-written keys loaded" "$(cat "$T/load.out")" 'ERR|rror'

# stats
ops stats
t_is "stats: exit 0" "$RC" 0
golden stats
ops stats --json
t_is "stats --json: exit 0" "$RC" 0
t_ok "stats --json: valid JSON" json_ok
if command -v python3 >/dev/null 2>&1; then
	t_is "stats --json: classes" \
		"$(json_get "' '.join('%s=%d/%d' % (k, v['messages'], v['recipients']) for k, v in d['classes'].items())")" \
		"personal=5/6 bulk=2/40 spam-risk=1/20 unknown=1/1"
	t_is "stats --json: google used/limit of its busiest sender" \
		"$(json_get "[(l['scope'], l['hourly']['used'], l['hourly']['limit'], l['burst']['used'], l['burst']['limit']) for n in d['networks'] if n['network'] == 'google' for l in n['limits'] if l['rule'] == 'per-sender'][0]")" \
		"('alice@example.com', 25, 50, 10, 10)"
	t_is "stats --json: top senders" \
		"$(json_get "[(s['sender'], s['recipients']) for s in d['top_senders']]")" \
		"[('news@example.com', 40), ('alice@example.com', 6), ('we\"ird\\\\x@example.com', 1)]"
fi
ops stats --hours 3
t_is "stats --hours 3: exit 0" "$RC" 0
golden stats-hours3
ops --json stats --hours=3
if command -v python3 >/dev/null 2>&1; then
	t_is "stats --hours 3 --json: summed" \
		"$(json_get "(d['hours'], d['from'], d['messages'], d['recipients'], d['monitor_actions']['hold'], [(s['sender'], s['recipients']) for s in d['top_senders']][:3])")" \
		"(3, '2026-11-30T11:00:00Z', 21, 84, 1, [('news@example.com', 45), ('alice@example.com', 16), ('bob@example.com', 5)])"
fi
for bad in 0 193 x 1.5 -1; do
	ops stats --hours "$bad"
	t_is "stats --hours '$bad': exit 1" "$RC" 1
done
ops stats extra
t_is "stats with an operand: exit 1" "$RC" 1

# sender
ops sender Alice+Tag@EXAMPLE.com
t_is "sender: exit 0" "$RC" 0
golden sender
ops sender alice@example.com --json
t_is "sender --json: exit 0" "$RC" 0
t_ok "sender --json: valid JSON" json_ok
if command -v python3 >/dev/null 2>&1; then
	t_is "sender --json: this hour" \
		"$(json_get "[d['this_hour'][k] for k in ('messages', 'sent', 'recipients', 'held', 'refused', 'tempfailed')]")" \
		"[3, 2, 6, 1, 1, 4]"
	t_is "sender --json: last 24 h leaves out the bucket 25 h ago" \
		"$(json_get "(d['last_24h']['messages'], d['last_24h']['classes'], d['last_24h']['networks'])")" \
		"(13, {'personal': 12, 'bulk': 0, 'spam-risk': 1, 'unknown': 0}, {'google': 15, 'yahoo': 1})"
	t_is "sender --json: velocity, relationships, block" \
		"$(json_get "(d['velocity'], d['relationships'], d['blocked'], d['block'])")" \
		"(7, 4, True, {'reason': 'phished account', 'ttl': None})"
	t_is "sender --json: limits in use" \
		"$(json_get "sorted((l['network'], l['rule'], l['scope'], l['hourly']['used'], l['burst']['used']) for l in d['limits'])")" \
		"[('[192.0.2.1]', 'per-sender', 'alice@example.com', 1, 1), ('google', 'per-domain', 'example.com', 40, 40), ('google', 'per-sender', 'alice@example.com', 25, 10), ('google', 'retired', 'alice@example.com', 3, None), ('yahoo', 'per-sender', 'alice@example.com', 2, 2)]"
	t_is "sender --json: the last 10 decisions, newest last" \
		"$(json_get "' '.join(e['qid'] + ('/' + e['rcpt'] if e['type'] == 'tempfail' else '') for e in d['decisions'])")" \
		"1B0003 1B0004 1B0005 1B0006 1A0002 1A0004/a11@gmail.com 1A0004/a12@gmail.com 1A0004 1A0007 1A0008"
fi
# a reservation that expired unconfirmed (its milter died) does not count,
# even before a milter's next check of the window removes it
rcli zadd "${OP}{expiry.example}:w:per-sender:exp@example.com" $((NOW_MS - 1000)) e-0 \
	$((NOW_MS - 2000)) e-1 $((NOW_MS - 3000)) e-2 $((NOW_MS - 4000)) e-3 >/dev/null
rcli zadd "${OP}{expiry.example}:p:per-sender:exp@example.com" $((NOW_MS - 500)) e-1 \
	$((NOW_MS - 100)) e-3 $((NOW_MS + 60000)) e-2 >/dev/null
ops sender exp@example.com --json
t_is "sender --json, expired reservations: exit 0" "$RC" 0
if command -v python3 >/dev/null 2>&1; then
	t_is "sender --json: expired reservations left out of the windows" \
		"$(json_get "[(l['network'], l['hourly']['used'], l['burst']['used']) for l in d['limits']]")" \
		"[('expiry.example', 2, 2)]"
fi
rcli del "${OP}{expiry.example}:w:per-sender:exp@example.com" \
	"${OP}{expiry.example}:p:per-sender:exp@example.com" >/dev/null

ops sender nobody@example.com
t_is "sender without traffic: exit 0" "$RC" 0
golden sender-nobody
"${CTL_CMD[@]}" -c "$T/ops.conf" block spammer@example.com --ttl 2h --reason "spam run" >/dev/null
ops sender spammer@example.com
t_like "sender: a block with a TTL" "$OUT" \
	'block: +blocked \(reason: spam run\), expires in (1h59m|2h00m)'
ops sender 'not an address'
t_is "sender: an invalid address: exit 1" "$RC" 1
ops sender
t_is "sender without an address: exit 1" "$RC" 1
ops sender a@b.example --hours 2
t_is "sender --hours: exit 1" "$RC" 1

# network
ops network google
t_is "network: exit 0" "$RC" 0
golden network-google
ops network GMail.com
t_is "network of a domain: the domain's network" "$OUT" "$(cat "$GOLDEN/outboundctl-network-google.txt")"
ops network '[192.0.2.1]'
t_is "network of an IP literal: exit 0" "$RC" 0
golden network-literal
ops network Example.CO.UK --json
t_ok "network --json: valid JSON" json_ok
if command -v python3 >/dev/null 2>&1; then
	t_is "network --json: registrable domain, counters" \
		"$(json_get "(d['network'], d['accepted'], d['tempfailed'], d['top'])")" \
		"('example.co.uk', 5, 0, [])"
	ops network google --json
	t_is "network --json: busiest first" \
		"$(json_get "[(u['rule'], u['scope'], u['hourly']['used']) for u in d['top']]")" \
		"[('per-sender', 'alice@example.com', 25), ('per-sender', 'news@example.com', 30), ('per-domain', 'example.com', 40), ('per-client', '192.0.2.7', 5), ('retired', 'alice@example.com', 3)]"
fi
ops network ''
t_is "network '': exit 1" "$RC" 1

# log
ops log
t_is "log: exit 0" "$RC" 0
golden log
ops log --count 3
t_is "log --count 3: the last three" "$(cut -d' ' -f2 <<<"$OUT" | tr '\n' ' ')" "NOQUEUE 1A0007 1A0008 "
t_is "log --count 3: three lines" "$(wc -l <<<"$OUT")" 3
ops log --count=3 --sender ALICE+x@Example.com
t_is "log --sender: normalised, newest last" "$(cut -d' ' -f2 <<<"$OUT" | tr '\n' ' ')" \
	"1A0004 1A0007 1A0008 "
ops log -n 2 --sender alice@example.com
t_is "log -n 2" "$(wc -l <<<"$OUT")" 2
ops log --queue-id 1A0004
t_is "log --queue-id: the message and its two tempfails" "$OUT" \
"2026-11-30T12:42:03Z 1A0004 tempfail sender=alice@example.com client=192.0.2.7 rcpt=a11@gmail.com network=google rule=per-sender limit=burst used=10/10 window=60s mode=enforce
2026-11-30T12:42:03Z 1A0004 tempfail sender=alice@example.com client=192.0.2.7 rcpt=a12@gmail.com network=google rule=per-sender limit=burst used=10/10 window=60s mode=enforce
2026-11-30T12:42:04Z 1A0004 class=personal action=tag sender=alice@example.com client=192.0.2.7 rcpts=10 known=0 velocity=10 tempfailed=2 networks=google:10 mode=enforce reasons=-"
ops log --class bulk
t_is "log --class bulk" "$(cut -d' ' -f2 <<<"$OUT")" "1A0003"
ops log --class spam-risk --sender news@example.com
t_is "log --class and --sender" "$(cut -d' ' -f2 <<<"$OUT")" "1A0001"
ops log --since 2026-11-30T12:57:03Z
t_is "log --since ISO-8601 (inclusive)" "$(cut -d' ' -f2 <<<"$OUT" | tr '\n' ' ')" \
	"1A0006 NOQUEUE 1A0007 1A0008 "
ops log --since 5m
t_is "log --since 5m" "$(cut -d' ' -f2 <<<"$OUT" | tr '\n' ' ')" "1A0006 NOQUEUE 1A0007 1A0008 "
ops log --since $((NOW - 100))
t_is "log --since epoch seconds" "$(cut -d' ' -f2 <<<"$OUT" | tr '\n' ' ')" "1A0007 1A0008 "
ops log --since 2026-11-30T12:00Z --count 2
t_is "log --since with --count: the newest of them" "$(cut -d' ' -f2 <<<"$OUT" | tr '\n' ' ')" \
	"1A0007 1A0008 "
ops log --since 2026-11-30 --sender news@example.com
t_is "log --since a date" "$(cut -d' ' -f2 <<<"$OUT" | tr '\n' ' ')" "1A0001 1A0003 "
ops log --sender nobody@example.com
t_is "log: nothing matches: exit 0" "$RC" 0
t_is "log: nothing matches: no output" "$OUT" ""
ops log --json --count 4
t_is "log --json: exit 0" "$RC" 0
t_ok "log --json: valid JSON" json_ok
if command -v python3 >/dev/null 2>&1; then
	t_is "log --json: entries, newest last, numbers as numbers" \
		"$(json_get "[(e['id'], e['qid'], e['time'], e.get('rcpts'), e.get('used')) for e in d]")" \
		"[('1796043423000-0', '1A0006', '2026-11-30T12:57:03Z', 1, None), ('1796043603000-0', 'NOQUEUE', '2026-11-30T13:00:03Z', None, 30), ('1796043663000-0', '1A0007', '2026-11-30T13:01:03Z', 1, None), ('1796043693000-0', '1A0008', '2026-11-30T13:01:33Z', 1, None)]"
	t_is "log --json: a control character escaped" \
		"$(json_get "[e['sender'] for e in d if e['qid'] == '1A0006'][0] == 'ctl\x01char@example.com'")" True
fi
for bad in "--since yesterday" "--since 2026-13-01" "--since 5x" "--class nope" "--count 0" \
	"--count x" "--queue-id"; do
	# shellcheck disable=SC2086
	ops log $bad
	t_is "log $bad: exit 1" "$RC" 1
done

# log, sender and top with hostile values in the entries (their own prefix):
# every printed line reads back, token by token (tests/lib/logfields.pl),
# as exactly the fields of its entry; a value never adds or changes a field
HP="obmhostile:"
sed "s/prefix = \"$OP\"/prefix = \"$HP\"/" "$T/ops.conf" >"$T/hostile.conf"
hostile()
{
	OBM_NOW=$NOW "${CTL_CMD[@]}" -c "$T/hostile.conf" "$@" >"$T/out" 2>"$T/err"
	RC=$?
	OUT=$(cat "$T/out")
}
# fields ... - the line of $OUT that holds WHAT is exactly FIELDS
fields()
{
	local name=$1 what=$2 line
	shift 2
	line=$(grep -F -- "$what" <<<"$OUT" | head -n 1)
	line=${line#  }
	t_ok "$name" perl "$OBM_SRCDIR/tests/lib/logfields.pl" "$line" "$@"
}
LF_QUOTED='"x client=1.2.3.4"@evil.example'
LF_RCPT='"y rcpt=z@gmail.com network=yahoo"@gmail.com'
LF_SRS='SRS0=ab=cd=example.com=u@fwd.example'
LF_CTL=$'"j\xc3\xb6rg\ttab\\\\ \\"q\\""@evil.example'
{
	rcli XADD "${HP}{log}" $(((NOW - 50) * 1000))-0 type message qid 1H0001 \
		sender "$LF_QUOTED" client 192.0.2.9 rcpts 1 known 0 velocity 1 tempfailed 1 \
		networks google:1 class personal action tag mode enforce reasons -
	rcli XADD "${HP}{log}" $(((NOW - 40) * 1000))-0 type tempfail qid 1H0002 \
		sender 'a=b@x.example' client 192.0.2.9 rcpt "$LF_RCPT" network google \
		rule per-sender limit burst used 10 max 10 window 60 mode enforce
	rcli XADD "${HP}{log}" $(((NOW - 30) * 1000))-0 type message qid 1H0003 \
		sender "$LF_SRS" client 192.0.2.9 rcpts 2 known 0 velocity 2 tempfailed 0 \
		networks 'google:1 mode=monitor' class bulk action tag mode enforce \
		reasons 'rcpt-count reasons=-'
	rcli XADD "${HP}{log}" $(((NOW - 20) * 1000))-0 type message qid 'Q 1 class=bulk' \
		sender "$LF_CTL" client 192.0.2.9 rcpts 1 known 0 velocity 1 tempfailed 0 \
		networks '' class personal action tag mode enforce reasons 'a\"b\\'
	rcli XADD "${HP}{log}" $(((NOW - 10) * 1000))-0 type tempfail qid 1H0005 \
		sender "$LF_QUOTED" client 192.0.2.9 rcpt x@gmail.com network google \
		rule per-sender limit burst used '10 x' max 10 window '60 s=1' mode enforce
	rcli XADD "${HP}{log}" $(((NOW - 5) * 1000))-0 type note qid 1H0006 'k=x y' 'v w'
} >"$T/hostile.out" 2>&1
t_unlike "hostile: the entries loaded" "$(cat "$T/hostile.out")" 'ERR|rror'
hostile log
t_is "hostile: log: exit 0" "$RC" 0
t_is "hostile: log: one line an entry" "$(grep -c . <<<"$OUT")" 6
fields "hostile: log: a quoted local part with a space and client= inside" 1H0001 \
	2026-11-30T13:01:13Z 1H0001 class=personal action=tag "sender=$LF_QUOTED" \
	client=192.0.2.9 rcpts=1 known=0 velocity=1 tempfailed=1 networks=google:1 \
	mode=enforce reasons=-
t_like "hostile: log: the quoted value as the daemon writes it" "$OUT" \
	' sender="\\"x client=1\.2\.3\.4\\"@evil\.example" client=192\.0\.2\.9 '
fields "hostile: log: '=' in the sender, rcpt= and network= in the recipient" 1H0002 \
	2026-11-30T13:01:23Z 1H0002 tempfail sender=a=b@x.example client=192.0.2.9 \
	"rcpt=$LF_RCPT" network=google rule=per-sender limit=burst used=10/10 window=60s \
	mode=enforce
fields "hostile: log: SRS sender, forged fields in networks and reasons" 1H0003 \
	2026-11-30T13:01:33Z 1H0003 class=bulk action=tag "sender=$LF_SRS" \
	client=192.0.2.9 rcpts=2 known=0 velocity=2 tempfailed=0 \
	'networks=google:1 mode=monitor' mode=enforce 'reasons=rcpt-count reasons=-'
fields "hostile: log: queue id, UTF-8, tab, quotes and backslashes, empty value" '"Q 1' \
	2026-11-30T13:01:43Z '=Q 1 class=bulk' class=personal action=tag "sender=$LF_CTL" \
	client=192.0.2.9 rcpts=1 known=0 velocity=1 tempfailed=0 networks= mode=enforce \
	'reasons=a\"b\\'
fields "hostile: log: used and window that are not numbers" 1H0005 \
	2026-11-30T13:01:53Z 1H0005 tempfail "sender=$LF_QUOTED" client=192.0.2.9 \
	rcpt=x@gmail.com network=google rule=per-sender limit=burst 'used=10 x/10' \
	'window=60 s=1' mode=enforce
fields "hostile: log: an entry of another type, its field name made harmless" 1H0006 \
	2026-11-30T13:01:58Z 1H0006 type=note 'k?x?y=v w'
t_is "hostile: log: printable ASCII only (no raw control or 8-bit byte)" \
	"$(LC_ALL=C tr -d '\040-\176\n' <"$T/out" | wc -c)" 0
hostile log --sender "$LF_QUOTED"
t_is "hostile: log --sender with a quoted local part: its two entries" \
	"$(cut -d' ' -f2 <<<"$OUT" | tr '\n' ' ')" "1H0001 1H0005 "
hostile log --json
t_is "hostile: log --json: exit 0" "$RC" 0
t_ok "hostile: log --json: every value read back as stored" perl -MJSON::PP -e '
	my ($q, $r, $srs, $ctl) = @ARGV;
	local $/;
	my $d = JSON::PP->new->utf8->decode(<STDIN>);
	my %e = map { ($_->{qid} => $_) } @$d;
	my $s = $e{"Q 1 class=bulk"}{sender};
	utf8::encode($s);
	my @bad = grep { !$_->[1] } (
	    [ "1H0001 sender", $e{"1H0001"}{sender} eq $q ],
	    [ "1H0002 rcpt", $e{"1H0002"}{rcpt} eq $r ],
	    [ "1H0002 sender", $e{"1H0002"}{sender} eq "a=b\@x.example" ],
	    [ "1H0003 sender", $e{"1H0003"}{sender} eq $srs ],
	    [ "1H0003 reasons", $e{"1H0003"}{reasons} eq "rcpt-count reasons=-" ],
	    [ "Q 1 reasons", $e{"Q 1 class=bulk"}{reasons} eq "a\\\"b\\\\" ],
	    [ "Q 1 sender", $s eq $ctl ],
	    [ "1H0006 k=x y", $e{"1H0006"}{"k=x y"} eq "v w" ]);
	print "# differs: $_->[0]\n" for @bad;
	exit(@bad ? 1 : 0)' "$LF_QUOTED" "$LF_RCPT" "$LF_SRS" "$LF_CTL" <"$T/out"
hostile sender "$LF_QUOTED"
t_is "hostile: sender with a quoted local part: exit 0" "$RC" 0
fields "hostile: sender: the last decisions read back" 1H0001 \
	2026-11-30T13:01:13Z 1H0001 class=personal action=tag "sender=$LF_QUOTED" \
	client=192.0.2.9 rcpts=1 known=0 velocity=1 tempfailed=1 networks=google:1 \
	mode=enforce reasons=-
fields "hostile: sender: its tempfail reads back" 1H0005 \
	2026-11-30T13:01:53Z 1H0005 tempfail "sender=$LF_QUOTED" client=192.0.2.9 \
	rcpt=x@gmail.com network=google rule=per-sender limit=burst 'used=10 x/10' \
	'window=60 s=1' mode=enforce
hostile top
fields "hostile: top: a recent tempfail reads back" 1H0002 \
	2026-11-30T13:01:23Z 1H0002 tempfail sender=a=b@x.example client=192.0.2.9 \
	"rcpt=$LF_RCPT" network=google rule=per-sender limit=burst used=10/10 window=60s \
	mode=enforce

# log --follow: new entries as they come, filtered; ends on SIGTERM and SIGINT
follow_check()
{
	local sig=$1 pid
	: >"$T/follow.out"
	"$CTL" -c "$T/ops.conf" log --follow --count 1 --sender alice@example.com \
		>"$T/follow.out" 2>"$T/follow.err" &
	pid=$!
	t_track "$pid"
	t_wait_log "$T/follow.out" '.' 5
	rcli XADD "${OP}{log}" '*' type message qid "F1$sig" sender bob@example.com class personal \
		>/dev/null
	rcli XADD "${OP}{log}" '*' type message qid "F2$sig" sender alice@example.com class bulk \
		action tag >/dev/null
	t_wait_log "$T/follow.out" "F2$sig" 5
	t_file_like "log --follow ($sig): a new entry shows up" "$T/follow.out" \
		"^[0-9T:-]+Z F2$sig class=bulk action=tag sender=alice@example.com$"
	t_file_unlike "log --follow ($sig): the filter applies" "$T/follow.out" "F1$sig"
	t_is "log --follow ($sig): the backlog is --count entries" \
		"$(grep -c . "$T/follow.out")" 2
	kill -"$sig" "$pid"
	t_wait_until 3 eval "! t_alive $pid"
	if t_alive "$pid"; then
		t_fail "log --follow ends on SIG$sig"
	else
		wait "$pid"
		t_is "log --follow ends on SIG$sig with exit 0" "$?" 0
	fi
	t_untrack "$pid"
}
follow_check TERM
follow_check INT
"$CTL" -c "$T/ops.conf" --json log -f -n 1 --queue-id F3 >"$T/follow.out" 2>&1 &
fpid=$!
t_track "$fpid"
# the follower is reading once its XREAD BLOCK is on the server
follower_waits() { rcli CLIENT LIST | grep -q 'cmd=xread'; }
t_ok "log --follow: its XREAD waits on the server" t_wait_until 5 follower_waits
rcli XADD "${OP}{log}" '*' type message qid F3 sender x@example.com rcpts 3 >/dev/null
t_wait_log "$T/follow.out" '"qid":"F3"' 5
t_like "log --follow --json: one object a line" "$(cat "$T/follow.out")" \
	'^\{"id":"[0-9]+-[0-9]+","time":"[0-9T:-]+Z","time_ms":[0-9]+,"type":"message","qid":"F3","sender":"x@example.com","rcpts":3\}$'
t_kill_pid "$fpid" 3
t_untrack "$fpid"

# top: one frame when not on a terminal; --json one object a line
ops top
t_is "top, not on a terminal: exit 0 after one frame" "$RC" 0
golden top
OBM_NOW=$NOW timeout 10 "$CTL" -c "$T/ops.conf" top --json --interval 1 >"$T/top.json" 2>&1 &
tpid=$!
t_track "$tpid"
t_wait_log_count "$T/top.json" '^\{' 2 5
kill -TERM "$tpid"
wait "$tpid"
t_is "top --json: ends on SIGTERM with exit 0" "$?" 0
t_untrack "$tpid"
t_ge "top --json: one object per interval" "$(grep -c '^{' "$T/top.json")" 2
OUT=$(head -n 1 "$T/top.json")
t_ok "top --json: valid JSON" json_ok
ops top --interval 0
t_is "top --interval 0: exit 1" "$RC" 1

# top in a terminal (tmux): the rows, then q quits and Ctrl-C quits
if command -v tmux >/dev/null 2>&1; then
	TMUX_SOCK="obm-ops-$$"
	t_at_exit "tmux -L '$TMUX_SOCK' kill-server; rm -f '/tmp/tmux-$(id -u)/$TMUX_SOCK'"
	# top, then its exit status and whether the terminal is canonical again
	cat >"$T/top-run.sh" <<EOF
#!/bin/bash
OBM_NOW=$NOW '$CTL' -c '$T/ops.conf' top "\$@"
echo "top exited \$?"
stty -a | grep -o -- '-\{0,1\}icanon'
sleep 30
EOF
	chmod +x "$T/top-run.sh"
	pane() { tmux -L "$TMUX_SOCK" capture-pane -p; }
	pane_has() { pane | grep -Eq -- "$1"; }
	tmux -L "$TMUX_SOCK" new-session -d -x 120 -y 40 "$T/top-run.sh --interval 1"
	t_wait_until 5 pane_has 'TOP SENDERS THIS HOUR'
	t_like "top in tmux: the network rows" "$(pane)" \
		'google +30 +4 +per-client +\[#-{19}\] +5/200 +5/20 +192\.0\.2\.7'
	t_like "top in tmux: a half-full bar" "$(pane)" \
		'per-sender +\[#{10}-{10}\] +25/50 +10/10 +alice@example\.com'
	t_like "top in tmux: classes this hour" "$(pane)" \
		'personal 5/6  bulk 2/40  spam-risk 1/20  unknown 1/1'
	t_like "top in tmux: top senders" "$(pane)" 'news@example\.com +40'
	tmux -L "$TMUX_SOCK" send-keys q
	t_wait_until 5 pane_has 'top exited'
	t_like "top in tmux: q quits with exit 0" "$(pane)" 'top exited 0'
	t_like "top in tmux: the terminal is back in canonical mode" "$(pane)" '^icanon$'
	tmux -L "$TMUX_SOCK" kill-server
	TMUX_SOCK="obm-ops2-$$"
	t_at_exit "tmux -L '$TMUX_SOCK' kill-server; rm -f '/tmp/tmux-$(id -u)/$TMUX_SOCK'"
	tmux -L "$TMUX_SOCK" new-session -d -x 100 -y 30 "$T/top-run.sh"
	t_wait_until 5 pane_has 'TOP SENDERS THIS HOUR'
	tmux -L "$TMUX_SOCK" send-keys C-c
	t_wait_until 5 pane_has 'top exited'
	t_like "top in tmux: Ctrl-C quits with exit 0" "$(pane)" 'top exited 0'
	t_like "top in tmux: Ctrl-C: the terminal is back in canonical mode" "$(pane)" '^icanon$'
	tmux -L "$TMUX_SOCK" kill-server
else
	t_fail "top in a terminal needs tmux (contrib/install-deps installs it)"
fi

# metrics: text exposition, valid, no duplicate series, escaped labels
ops metrics
t_is "metrics: exit 0" "$RC" 0
golden metrics
metrics_valid()
{
	printf '%s\n' "$OUT" | awk '
		/^# HELP / { if (help[$3]++) { print "two HELP for " $3; bad = 1 }; next }
		/^# TYPE / { if (type[$3]++) { print "two TYPE for " $3; bad = 1 }
			if ($4 !~ /^(gauge|counter|untyped)$/) { print "type " $4; bad = 1 }; next }
		/^#/ { next }
		{
			name = $0; sub(/[{ ].*/, "", name)
			if (name !~ /^[a-zA-Z_:][a-zA-Z0-9_:]*$/) { print "name " name; bad = 1 }
			if (!(name in type)) { print "sample before TYPE: " name; bad = 1 }
			series = $0; sub(/ [^ ]+$/, "", series)
			if (seen[series]++) { print "duplicate " series; bad = 1 }
			if ($NF !~ /^-?[0-9]+(\.[0-9]+)?$/) { print "value " $NF; bad = 1 }
			lab = series; sub(/^[^{]*/, "", lab)
			if (lab != "" && lab !~ /^\{[a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*"(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*")*\}$/) {
				print "labels " lab; bad = 1 }
			# the samples of one family together
			if (name != last && done[name]) { print "family split " name; bad = 1 }
			if (name != last) { done[last] = 1; last = name }
		}
		END { exit bad }'
}
t_ok "metrics: HELP/TYPE, names, labels, values, no duplicate series" metrics_valid
t_like "metrics: a quote and a backslash escaped" "$OUT" \
	'^outbound_milter_top_sender_recipients_hour\{sender="we\\"ird\\\\x@example\.com"\} 1$'
ops metrics --json
t_ok "metrics --json: valid JSON" json_ok

# reset: w and p keys of sender-scoped rules (and of retired rules)
ops reset Alice+x@example.com --network Yahoo.COM
t_is "reset --network: exit 0" "$RC" 0
t_is "reset --network: output" "$OUT" "alice@example.com: 1 rate window key deleted (network yahoo)"
t_is "reset --network: yahoo's window gone" \
	"$(rcli exists "${OP}{yahoo}:w:per-sender:alice@example.com")" 0
t_is "reset --network: google's windows kept" \
	"$(rcli exists "${OP}{google}:w:per-sender:alice@example.com")" 1
ops reset alice@example.com --json
t_is "reset: exit 0" "$RC" 0
t_is "reset --json" "$OUT" '{"sender":"alice@example.com","network":null,"deleted":4}'
t_is "reset: the windows and pending units gone" "$(redis_keys "${OP}{*}:*:*:alice@example.com")" \
	"${OP}{google}:w:per-domain:alice@example.com"
t_is "reset: other senders' windows kept" \
	"$(rcli exists "${OP}{google}:w:per-sender:news@example.com")" 1
ops reset alice@example.com
t_is "reset again: nothing left" "$OUT" "alice@example.com: 0 rate window keys deleted"
ops reset 'bad address'
t_is "reset of a bad address: exit 1" "$RC" 1
ops reset a@b.example --network
t_is "reset --network without a name: exit 1" "$RC" 1

# ---- Redis down: exit 2 -------------------------------------------------------

redis_stop
for cmd in "rel add a@b.example c@d.example" "rel del a@b.example c@d.example" \
	"rel show a@b.example" "rel import a@b.example $T/list.txt" "block a@b.example" \
	"block a@b.example --ttl 1h" "unblock a@b.example" "--json rel show a@b.example" \
	"stats" "stats --json" "top" "sender a@b.example" "network google" "log" "log --follow" \
	"reset a@b.example" "metrics"; do
	t_start=$(now_ms)
	# shellcheck disable=SC2086
	run $cmd
	t_is "Redis down: $cmd: exit 2" "$RC" 2
	t_like "Redis down: $cmd: says why" "$ERR" '^outboundctl: redis: '
	t_le "Redis down: $cmd: fast" $(($(now_ms) - t_start)) 2000
done
run rel add a@b.example 'not an address'
t_is "Redis down: a usage error is still exit 1" "$RC" 1
run block a@b.example --ttl 5x
t_is "Redis down: a bad duration is still exit 1" "$RC" 1
ops metrics
t_is "Redis down: metrics: exit 2" "$RC" 2
t_like "Redis down: metrics still says outbound_milter_up 0" "$OUT" '^outbound_milter_up 0$'
ops log --since never
t_is "Redis down: a bad --since is still exit 1" "$RC" 1

t_done
