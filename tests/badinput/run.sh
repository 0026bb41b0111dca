#!/bin/bash
# run.sh - the bad-input test: hostile addresses, headers, macros and
# command sequences from tests/badinput/corpus/*.case, played against the
# real milter (with a real Redis) by milter-client.pl over the milter
# protocol, and the cases Postfix lets through sent through a private
# Postfix by smtp-raw.pl. Every case must be answered (no crash, no hang)
# with the documented reply, and afterwards every Redis key must follow the
# schema of doc/REDIS.md (redis-keys.ere); the data written before the
# Redis-looking input is still there (nothing was flushed). Every
# refusal and decision line the milter logs reads back field by field,
# whatever the addresses (tests/lib/logfields.pl).
#
#	bash tests/badinput/run.sh		(or: tests/run-all BUILD faults)
#	OBM_BADINPUT_CASES="nul-bytes redis-syntax" runs only those cases
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
. "$OBM_SRCDIR/tests/lib/postfix.sh"
. "$OBM_SRCDIR/tests/faults/lib/faults.bash"
t_need redis-server redis-cli perl
t_init badinput

BI=$OBM_SRCDIR/tests/badinput
LF=$OBM_SRCDIR/tests/lib/logfields.pl

# log_lines_check LABEL: every refusal and decision line the milter logged
# so far reads back field by field (tests/lib/logfields.pl), no field twice
log_lines_check()
{
	local res
	res=$(grep -aE '^outbound-milter: .*: (action|class)=' "$mlog" | perl "$LF" --each)
	grep '^# ' <<<"$res" | head -n 10
	res=$(tail -n 1 <<<"$res")
	t_like "$1: ${res% *} refusal and decision lines, all read back" "$res" '^[1-9][0-9]* 0$'
}

# token_of NEEDLE KEY: the value of KEY in the first log line holding
# NEEDLE, as read back (logfields.pl --show); "-" when there is no such line
token_of()
{
	local l
	l=$(grep -aF -- "$1" "$mlog" | head -n 1)
	[ -n "$l" ] || { echo -; return; }
	perl "$LF" --show "$l" | sed -n "s/^$2=//p"
}

redis_start
MC_SOCKET=unix:$T/milter.sock
# the class header with its counts: the cases read them
MC_CLASSIFY='	header_detail = true'
milter_std_conf >"$T/m.conf"
milter_start m "$T/m.conf" "$MC_SOCKET"
mpid=${MILTER_PID[m]}
mlog=$(milter_log m)

# run_cases LABEL CASEFILE...: play cases, count their ok/not ok lines
run_cases()
{
	local label=$1 out=$T/cases-$1.out rc np nf
	shift
	timeout -k 5 300 perl "$BI/milter-client.pl" --pid "$mpid" "$MC_SOCKET" "$@" >"$out" 2>&1
	rc=$?
	cat "$out"
	np=$(grep -c '^ok - ' "$out")
	nf=$(grep -c '^not ok - ' "$out")
	T_PASS=$((T_PASS + np))
	T_FAIL=$((T_FAIL + nf))
	grep -q '^# end of cases' "$out" ||
		t_fail "$label: the client ran to its end (status $rc)" "$(tail -n 5 "$out")"
}

# ---- over the milter protocol -------------------------------------------------

cases=()
if [ -n "${OBM_BADINPUT_CASES:-}" ]; then
	for c in $OBM_BADINPUT_CASES; do
		cases+=("$BI/corpus/$c.case")
	done
else
	cases=("$BI"/corpus/*.case)
fi
for f in "${cases[@]}"; do
	name=$(basename "$f" .case)
	t0=$(t_now)
	run_cases "$name" "$f"
	t_diag "$name: $(awk -v a="$t0" -v b="$(t_now)" 'BEGIN { printf "%.1f s", b - a }')"
	redis_schema_check "after $name"
	t_ok "after $name: the milter is running" t_alive "$mpid"
	[ "$name" = 00-baseline ] &&
		baseline=$(rcli --scan --pattern 'obm:{google}:w:per-sender:base@example.com')
done
if [ -n "${baseline:-}" ]; then
	t_is "nothing was flushed: the first case's rate window is still there" \
		"$(rcli exists "$baseline")" 1
fi
log_lines_check "milter log after the cases"
if [ -z "${OBM_BADINPUT_CASES:-}" ] || [[ " $OBM_BADINPUT_CASES " = *" log-fields "* ]]; then
	t_is "log-fields: the quoted sender reads back as itself" \
		"$(token_of 'LOGF1: class=' sender)" '"x client=1.2.3.4"@evil.example'
	t_is "log-fields: the refused recipient reads back as itself" \
		"$(token_of 'LOGF1: action=tempfail' rcpt)" '"y rcpt=z@gmail.com network=yahoo"@gmail.com'
	t_is "log-fields: the SRS sender reads back as itself" \
		"$(token_of 'LOGF3: class=' sender)" 'srs0=ab=cd=example.com=u@fwd.example'
	t_is "log-fields: the queue id that is not plain is one word" \
		"$(token_of '"LOGF6 client=6.6.6.6": class=' client)" '127.0.0.1'
	t_is "log-fields: every client of its lines is the real one" \
		"$(grep -aE '^outbound-milter: "?LOGF' "$mlog" | while IFS= read -r l; do
			perl "$LF" --show "$l" | grep '^client='; done | sort | uniq -c | tr -s ' ')" \
		" 7 client=127.0.0.1"
fi
t_file_unlike "milter log: no internal error" "$mlog" \
	'out of memory|could not change the message|Internal error|451 4\.3\.0'
t_file_unlike "milter log: no sanitizer report" "$mlog" \
	'(Address|Leak|Undefined|Thread)Sanitizer|runtime error:'

# ---- through Postfix ------------------------------------------------------------
# Postfix refuses most of the above itself; what it lets through must reach
# the milter and be answered as documented.
if [ "$(id -u)" -eq 0 ] && command -v postfix >/dev/null && command -v smtp-sink >/dev/null &&
   [ -z "${OBM_BADINPUT_CASES:-}" ]; then
	sink_start s
	pf_setup a s "$MC_SOCKET" tempfail
	pf_start a
	out=$T/smtp-raw.out
	timeout -k 5 300 perl "$BI/smtp-raw.pl" "${PF_OUT[a]}" "$BI/smtp.cases" >"$out" 2>&1
	cat "$out"
	T_PASS=$((T_PASS + $(grep -c '^ok - ' "$out")))
	T_FAIL=$((T_FAIL + $(grep -c '^not ok - ' "$out")))
	grep -q '^# end of smtp cases' "$out" || t_fail "smtp-raw.pl ran to its end" "$(tail -n 5 "$out")"
	pf_wait_settled a 30 || t_fail "Postfix delivered everything within 30 s"
	t_is "through Postfix: every delivered message was classified (has X-Outbound-Class)" \
		"$(sink_without_header s X-Outbound-Class)" 0
	t_is "through Postfix: every accepted message arrived" "$(sink_ids s | tr '\n' ' ')" \
		"smtp-baseline smtp-crlf smtp-emptyunsub smtp-garbagefrom smtp-hugeunsub smtp-logfields smtp-long smtp-many smtp-nul smtp-redis smtp-utf8 "
	hdr()
	{
		sink_header "$(sink_file_by_id s "$1")" X-Outbound-Class
	}
	t_like "through Postfix: a 100 KB List-Unsubscribe counts as one" \
		"$(hdr smtp-hugeunsub)" 'reasons=.*list-unsubscribe'
	t_unlike "through Postfix: an empty List-Unsubscribe does not" \
		"$(hdr smtp-emptyunsub)" 'reasons=.*list-unsubscribe'
	t_like "through Postfix: 1,000 recipients classified" "$(hdr smtp-many)" '; rcpts=1000;'
	t_is "through Postfix: 1,000 recipients delivered" \
		"$(grep -c '^X-Rcpt-Args:' "$(sink_file_by_id s smtp-many)")" 1000
	t_like "through Postfix: garbage From headers are not aligned" \
		"$(hdr smtp-garbagefrom)" '^personal; '
	t_like "through Postfix: the Redis-looking recipients are classified" \
		"$(hdr smtp-redis)" '; rcpts=4;'
	t_file_unlike "Postfix: the milter never failed (no default action applied)" \
		"$(pf_maillog a)" 'milter.*(unexpected EOF|can.t read|read error|timeout)'
	t_like "through Postfix: the recipients that would forge log fields are classified" \
		"$(hdr smtp-logfields)" '; rcpts=3;'
	log_lines_check "milter log after the SMTP cases"
	t_is "through Postfix: the quoted sender's decision reads back with the real client" \
		"$(token_of 'class=personal action=tag sender="\"w client=1.2.3.4\"@evil.example"' client)" \
		127.0.0.1
	redis_schema_check "after the SMTP cases"
	pf_stop a
elif [ -z "${OBM_BADINPUT_CASES:-}" ]; then
	t_fail "the SMTP cases need root, postfix and smtp-sink (contrib/install-deps installs them)"
else
	t_diag "SMTP cases not run: OBM_BADINPUT_CASES selects cases"
fi

t_ok "the milter is still running" t_alive "$mpid"
milter_stop m
t_done
