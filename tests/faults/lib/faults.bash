# faults.bash - helpers shared by the fault and load tests (tests/faults/):
# a background SMTP load (tests/faults/lib/smtp-load.pl) through the
# private Postfix, its exact accounting against what smtp-sink received and
# what Postfix holds, the milter's resident memory, the Redis key schema of
# doc/REDIS.md and the fleet counters.
#
#	load_start NAME ARGS...	start smtp-load.pl run --out $T/load-NAME ARGS...
#	load_wait NAME [TMO]	wait for it to end (asserts it ended in time, exit 0)
#	load_stop NAME		create its stop file (sessions end after their message)
#	load_progress NAME	messages it has finished so far
#	load_wait_progress NAME N [TMO]	until at least N messages are done
#	load_summary NAME [OPTS]	NAME=VALUE totals (smtp-load.pl summary)
#	load_get NAME KEY [OPTS]	one total
#	pf_wait_settled NAME [TMO]	until nothing but held mail is queued
#	pf_held_count NAME / pf_held_rcpts NAME	held messages / their recipients
#	pf_held_ids NAME	X-Test-Id of every held message, sorted
#	sink_ids NAME		X-Test-Id of every message at the sink, sorted, unique
#	account NAME LOAD SINK PF	assert sent = delivered + tempfailed + held,
#				message by message and recipient by recipient
#	rss_kb PID		VmRSS of a process in kB
#	redis_schema_check LABEL	every key in Redis matches doc/REDIS.md
#	stats_sum ERE		sum of the fields matching ERE over every
#				P{stats}:h:HOUR hash
#	store_affected LOG...	"MSGS RCPTS OTHER": messages (and their
#				accepted recipients) whose counters the milter
#				could not write (Redis failed or timed out:
#				class=unknown, or "could not record the
#				decision"), and other writes it could not do
#	t_between NAME GOT LOW HIGH	LOW <= GOT <= HIGH
#	fig TEXT		a "# figure: TEXT" line (the measured figures)
#
# Needs common.sh, redis.sh, milter.sh and postfix.sh sourced first.

FAULTS_LIB=$OBM_SRCDIR/tests/faults/lib
SMTP_LOAD=$FAULTS_LIB/smtp-load.pl
declare -A LOAD_PID=()

fig()
{
	echo "# figure: $*"
}

load_start()
{
	local name=$1
	shift
	rm -rf "$T/load-$name" "$T/load-$name.stop"
	mkdir -p "$T/load-$name"
	perl "$SMTP_LOAD" run --out "$T/load-$name" --stop-file "$T/load-$name.stop" \
		--id-prefix "$name" "$@" </dev/null >"$T/load-$name.log" 2>&1 &
	LOAD_PID[$name]=$!
	t_track "${LOAD_PID[$name]}"
}

load_stop()
{
	: >"$T/load-$1.stop"
}

load_progress()
{
	local n
	n=$(cat "$T/load-$1"/result.* 2>/dev/null | wc -l)
	echo "${n:-0}"
}

load_progress_ge()
{
	[ "$(load_progress "$1")" -ge "$2" ]
}

load_wait_progress()
{
	t_wait_until "${3:-60}" load_progress_ge "$1" "$2"
}

# load_wait NAME [TMO]: the load ends on its own within TMO seconds
load_wait()
{
	local name=$1 tmo=${2:-300} pid=${LOAD_PID[$1]} i st
	for ((i = 0; i < tmo * 10; i++)); do
		t_alive "$pid" || break
		sleep 0.1
	done
	if t_alive "$pid"; then
		t_fail "load $name ends within ${tmo}s (a session hangs)" \
			"$(tail -n 5 "$T/load-$name.log")"
		kill -TERM "$pid" 2>/dev/null
		t_kill_pid "$pid" 10
		t_untrack "$pid"
		return 1
	fi
	wait "$pid"
	st=$?
	t_untrack "$pid"
	t_is "load $name: client exit status" "$st" 0
	[ "$st" -eq 0 ] || t_diag "$(tail -n 10 "$T/load-$name.log")"
	return 0
}

load_summary()
{
	local name=$1
	shift
	perl "$SMTP_LOAD" summary "$T/load-$name" "$@"
}

load_get()
{
	local name=$1 key=$2
	shift 2
	load_summary "$name" "$@" | sed -n "s/^$key=//p"
}

# messages queued anywhere but in the hold queue
pf_unsettled_count()
{
	pf_queue "$1" | grep '"queue_name"' | grep -vc '"queue_name": *"hold"'
}

pf_settled()
{
	[ "$(pf_unsettled_count "$1")" -eq 0 ]
}

# pf_wait_settled NAME [TMO]: until every message is delivered or held;
# deferred mail is flushed on the way
pf_wait_settled()
{
	local name=$1 tmo=${2:-60} i
	for ((i = 0; i < tmo; i++)); do
		pf_settled "$name" && return 0
		[ $((i % 5)) -eq 4 ] && pf_flush "$name"
		sleep 1
	done
	pf_settled "$name"
}

pf_held_count()
{
	pf_queue "$1" | grep -c '"queue_name": *"hold"'
}

pf_held_rcpts()
{
	pf_queue "$1" | grep '"queue_name": *"hold"' | grep -o '"address":' | wc -l
}

pf_held_qids()
{
	pf_queue "$1" | grep '"queue_name": *"hold"' |
		sed -n 's/.*"queue_id": *"\([^"]*\)".*/\1/p'
}

pf_held_ids()
{
	local conf
	conf=$(pf_conf "$1")
	pf_held_qids "$1" | xargs -r -n 200 postcat -c "$conf" -h -q 2>/dev/null |
		tr -d '\r' | sed -n 's/^X-Test-Id: *//p' | sort -u
}

sink_ids()
{
	find "${SINK_DIR[$1]}" -type f -exec grep -ah '^X-Test-Id:' {} + 2>/dev/null |
		tr -d '\r' | sed 's/^X-Test-Id: *//' | sort -u
}

# client-side ids of the messages that got 2xx at the end of data
load_delivered_ids()
{
	cat "$T/load-$1"/result.* 2>/dev/null | awk '$10 == "delivered" { print $1 }' | sort -u
}

load_error_ids()
{
	cat "$T/load-$1"/result.* 2>/dev/null | awk '$10 == "error" { print $1 }' | sort -u
}

# account LABEL LOAD SINK PF: everything the load sent is accounted for.
# Prints the figures; the caller waited for Postfix to settle.
account()
{
	local label=$1 load=$2 sink=$3 pf=$4 s
	local msgs delivered tempfailed rejected errors rcpts rd rt rr r4 dropped broken rb
	local sink_n sink_r held_n held_r
	s=$(load_summary "$load")
	msgs=$(sed -n 's/^messages=//p' <<<"$s")
	delivered=$(sed -n 's/^delivered=//p' <<<"$s")
	tempfailed=$(sed -n 's/^tempfailed=//p' <<<"$s")
	rejected=$(sed -n 's/^rejected=//p' <<<"$s")
	errors=$(sed -n 's/^error=//p' <<<"$s")
	dropped=$(sed -n 's/^dropped=//p' <<<"$s")
	broken=$(sed -n 's/^broken=//p' <<<"$s")
	rb=$(sed -n 's/^rcpt_broken=//p' <<<"$s")
	rcpts=$(sed -n 's/^rcpts=//p' <<<"$s")
	rd=$(sed -n 's/^rcpt_delivered=//p' <<<"$s")
	rt=$(sed -n 's/^rcpt_tempfailed=//p' <<<"$s")
	rr=$(sed -n 's/^rcpt_rejected=//p' <<<"$s")
	r4=$(sed -n 's/^rcpt_4xx=//p' <<<"$s")

	sink_ids "$sink" >"$T/acc-$label.sink"
	pf_held_ids "$pf" >"$T/acc-$label.held"
	load_delivered_ids "$load" >"$T/acc-$label.client"
	sink_n=$(wc -l <"$T/acc-$label.sink")
	sink_r=$(sink_rcpts "$sink")
	held_n=$(pf_held_count "$pf")
	held_r=$(pf_held_rcpts "$pf")

	fig "$label: messages sent=$msgs delivered=$((delivered - held_n)) held=$held_n" \
		"tempfailed=$tempfailed rejected=$rejected unknown=$errors broken=$broken" \
		"(client 2xx=$delivered)"
	fig "$label: recipients sent=$rcpts delivered=$sink_r held=$held_r" \
		"tempfailed=$rt (4xx replies at RCPT: $r4) rejected=$rr broken=$rb;" \
		"sessions broken mid-transaction: $dropped"

	t_ge "$label: the load sent messages" "$msgs" 1
	t_is "$label: every message has a client-side outcome" \
		"$((delivered + tempfailed + rejected + errors + broken))" "$msgs"
	t_is "$label: no message of unknown fate (connection lost after the data)" "$errors" 0
	# a connection that breaks without a reply is not a tempfail: Postfix
	# stays up in every fault test, so none is expected
	t_is "$label: no SMTP connection broke or failed without a reply" "$broken" 0
	t_is "$label: no message rejected (5xx)" "$rejected" 0
	t_is "$label: sent = delivered + held + tempfailed + broken (messages)" \
		"$((sink_n + held_n + tempfailed + broken))" "$msgs"
	t_is "$label: sent = delivered + held + tempfailed + broken (recipients)" \
		"$((sink_r + held_r + rt + rb))" "$rcpts"
	t_is "$label: the messages accepted (2xx) are exactly those delivered or held" \
		"$(sort -u "$T/acc-$label.sink" "$T/acc-$label.held" | md5sum)" \
		"$(md5sum <"$T/acc-$label.client")"
	t_is "$label: no message both delivered and held" \
		"$(comm -12 "$T/acc-$label.sink" "$T/acc-$label.held" | wc -l)" 0
	t_is "$label: every message delivered once (sink files = messages)" \
		"$(sink_msgs "$sink")" "$sink_n"
	t_is "$label: accepted recipients = delivered + held recipients" \
		"$((sink_r + held_r))" "$rd"
}

# sink_without_header NAME HEADER: sink messages lacking HEADER (did not
# pass through the milter)
sink_without_header()
{
	local n
	n=$(find "${SINK_DIR[$1]}" -type f -exec grep -aL "^$2:" {} + 2>/dev/null | wc -l)
	echo "${n:-0}"
}

rss_kb()
{
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null
}

threads_of()
{
	awk '/^Threads:/ { print $2 }' "/proc/$1/status" 2>/dev/null
}

# the allowed key patterns (doc/REDIS.md), one ERE a line
REDIS_SCHEMA=$OBM_SRCDIR/tests/badinput/redis-keys.ere

# redis_schema_check LABEL [PREFIX]: every key matches one documented pattern
redis_schema_check()
{
	local label=$1 bad n
	if ! rcli --scan >"$T/keys-$label.txt" 2>"$T/keys-$label.err"; then
		t_fail "$label: Redis keys follow doc/REDIS.md" \
			"missing evidence: redis-cli --scan failed: $(cat "$T/keys-$label.err")"
		return 0
	fi
	n=$(wc -l <"$T/keys-$label.txt")
	bad=$(LC_ALL=C grep -v -E -f <(grep -v '^#' "$REDIS_SCHEMA" | grep .) "$T/keys-$label.txt" |
		head -n 20 | cat -A)
	if [ -z "$bad" ]; then
		t_pass "$label: all $n Redis keys follow doc/REDIS.md"
	else
		t_fail "$label: Redis keys outside doc/REDIS.md" "$bad"
	fi
}

# stats_sum ERE: sum of every field matching ERE in the P{stats}:h:HOUR hashes
stats_sum()
{
	local k total=0 v keys
	keys=$(redis_keys 'obm:{stats}:h:*') || { echo "$keys"; return 1; }
	for k in $keys; do
		v=$(rcli hgetall "$k" | awk -v re="$1" 'NR % 2 == 1 { f = $0; next }
			f ~ re { s += $0 } END { print s + 0 }')
		total=$((total + v))
	done
	echo "$total"
}

store_affected()
{
	cat "$@" 2>/dev/null | awk '
		/could not record the decision/ { sub(/^outbound-milter: /, ""); bad[$1] = 1; next }
		/could not (release|commit)/ { other++; next }
		/ class=[a-z-]+ action=/ {
			line = $0; sub(/^outbound-milter: /, "", line); split(line, f, " ")
			q = f[1]; sub(/:$/, "", q)
			r = 0; if (match(line, / rcpts=[0-9]+/)) r = substr(line, RSTART + 7, RLENGTH - 7)
			rc[q] = r
			if (line ~ / class=unknown /) bad[q ":"] = 1
		}
		END {
			for (q in bad) { k = q; sub(/:$/, "", k); m++; n += rc[k] }
			print m + 0, n + 0, other + 0
		}'
}

t_between()
{
	if [ "$2" -ge "$3" ] 2>/dev/null && [ "$2" -le "$4" ]; then
		t_pass "$1"
	else
		t_fail "$1" "got:  '$2'" "want: $3 .. $4"
	fi
}

# faults_conf: a milter configuration for load: every class tagged, limits
# far above the load (MC_* of tests/lib/milter.sh may still be set first)
faults_conf()
{
	MC_HOURLY=${MC_HOURLY:-10000000} MC_BURST=${MC_BURST:-10000000} \
		MC_WINDOW=${MC_WINDOW:-60} milter_std_conf
}
