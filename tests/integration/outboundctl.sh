#!/bin/bash
# outboundctl.sh - the operations CLI against a throwaway Redis: rel add,
# del, show (table and --json) and import (comments, blank and invalid
# lines, standard input, the relationship_max warning), block (reason,
# every DURATION form, the TTL in Redis) and unblock, address
# normalisation (Mixed-Case+tag@Example.COM), options before and after the
# command words, JSON escaping, and the exit status: 1 for usage and
# configuration errors, 2 when Redis is down. OBM_VALGRIND=1 runs every
# command under valgrind.
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
t_is "missing configuration: exit 1" "$RC" 1
t_like "missing configuration: named" "$ERR" 'missing\.conf'
printf 'redis {\n  socket = "%s"\n}\nno_such_option = 1\n' "$REDIS_SOCK" >"$T/bad.conf"
run_raw -c "$T/bad.conf" rel show a@b.example
t_is "bad configuration: exit 1" "$RC" 1
t_like "bad configuration: FILE:LINE" "$ERR" 'bad\.conf:[0-9]+: '

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
t_is "rel import of a missing file: exit 1" "$RC" 1
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

# ---- Redis down: exit 2 -------------------------------------------------------

redis_stop
for cmd in "rel add a@b.example c@d.example" "rel del a@b.example c@d.example" \
	"rel show a@b.example" "rel import a@b.example $T/list.txt" "block a@b.example" \
	"block a@b.example --ttl 1h" "unblock a@b.example" "--json rel show a@b.example"; do
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

t_done
