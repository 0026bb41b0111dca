#!/bin/bash
# retry-after.sh - end to end through a private Postfix relaying to
# smtp-sink: the ", try again in Ns" of the 451 reply and the retry= field
# of the milter's log line carry the time until the oldest unit of the
# full window leaves it, rounded up to a second, for the burst window
# (60 s, burst 2) and the hourly one (yahoo: hourly 2). Bounds come from
# clock readings taken around each SMTP session: with the first units
# admitted between TA and TB (message 1) and a refusal between TC and TD
# (message 2, 4 s later), N lies in [floor(W - (TD - TA)), ceil(W - (TC -
# TB))]: a fixed value (the window itself) or a time counted from the
# wrong end fails. The SMTP reply and the log line of the same recipient
# give the same N.
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
. "$OBM_SRCDIR/tests/lib/postfix.sh"
t_need redis-server redis-cli postfix smtp-sink swaks
[ "$(id -u)" -eq 0 ] || t_skip_all "needs root for a private Postfix instance"
t_init e2e-retry-after

redis_start
MC_SOCKET=unix:$T/milter.sock MC_WINDOW=60 MC_BURST=2 MC_HOURLY=30 \
	MC_LIMIT_EXTRA='	network yahoo {
		hourly = 2
		burst = 10
	}' milter_std_conf >"$T/m.conf"
milter_start m "$T/m.conf" "unix:$T/milter.sock"
mlog=$(milter_log m)
sink_start s
pf_setup a s "unix:$T/milter.sock" tempfail
pf_start a
port=${PF_OUT[a]}
S=r@example.com

# retry_smtp OUT RCPT: N of "try again in Ns" in the reply to RCPT
retry_smtp()
{
	smtp_rcpt_replies "$1" | grep "^$2 451 " | sed -n 's/.*, try again in \([0-9]*\)s$/\1/p'
}
# retry_log RCPT: N of retry=Ns in the milter's tempfail line for RCPT
retry_log()
{
	t_wait_log "$mlog" "action=tempfail rcpt=$1 " 5 >/dev/null 2>&1 || true
	grep "action=tempfail rcpt=$1 " "$mlog" | sed -n 's/.* retry=\([0-9]*\)s .*/\1/p'
}
# in_range N LO HI
in_range()
{
	[[ $1 =~ ^[0-9]+$ ]] && [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]
}
# lo W FROM TO: floor(W - (TO - FROM)); hi W FROM TO: ceil(W - (TO - FROM))
lo() { awk -v w="$1" -v a="$2" -v b="$3" 'BEGIN { x = w - (b - a); print int(x) - (x < int(x)) }'; }
hi() { awk -v w="$1" -v a="$2" -v b="$3" 'BEGIN { x = w - (b - a); print (x == int(x)) ? x : int(x) + 1 }'; }

# check LABEL OUT RCPT W LO HI: the reply and the log line of RCPT
check()
{
	local label=$1 out=$2 rcpt=$3 w=$4 lo=$5 hi=$6 ns nl
	t_like "$label: 451 4.7.1 with the window and a retry time" \
		"$(smtp_rcpt_replies "$out" | grep "^$rcpt ")" \
		"^$rcpt 451 4\\.7\\.1 Rate limit for network .* per ${w}s \\(rule per-sender\\), try again in [0-9]+s\$"
	ns=$(retry_smtp "$out" "$rcpt")
	nl=$(retry_log "$rcpt")
	t_diag "$label: try again in ${ns}s, log retry=${nl}s, bounds [$lo, $hi]"
	t_ok "$label: SMTP retry $ns within [$lo, $hi]" in_range "$ns" "$lo" "$hi"
	t_ok "$label: log retry= is a number" in_range "$nl" 0 "$w"
	t_is "$label: the log line's retry= equals the SMTP reply's" "$nl" "$ns"
}

# message 1: two gmail.com and two yahoo.com recipients are admitted, the
# third of each refused (burst 2 per 60 s; hourly 2)
ta=$(t_now)
smtp_send "$T/m1.out" "$port" "$S" u1@gmail.com,u2@gmail.com,u3@gmail.com,y1@yahoo.com,y2@yahoo.com,y3@yahoo.com \
	--header "X-Test-Id: m1"
tb=$(t_now)
t_is "message 1: 4 recipients accepted" "$(smtp_rcpt_replies "$T/m1.out" | grep -c ' 250 ')" 4
check "message 1, burst" "$T/m1.out" u3@gmail.com 60 "$(lo 60 "$ta" "$tb")" 60
check "message 1, hourly" "$T/m1.out" y3@yahoo.com 3600 "$(lo 3600 "$ta" "$tb")" 3600

# message 2, 4 s after message 1 ended: both windows still full, the
# retry time 4 s shorter
t_sleep_until "$(t_after 4 "$tb")"
tc=$(t_now)
smtp_send "$T/m2.out" "$port" "$S" u4@gmail.com,y4@yahoo.com --header "X-Test-Id: m2"
td=$(t_now)
t_diag "message 1 from $ta to $tb, message 2 from $tc to $td"
check "message 2, burst" "$T/m2.out" u4@gmail.com 60 "$(lo 60 "$ta" "$td")" "$(hi 60 "$tb" "$tc")"
check "message 2, hourly" "$T/m2.out" y4@yahoo.com 3600 "$(lo 3600 "$ta" "$td")" "$(hi 3600 "$tb" "$tc")"
t_ok "message 2: the burst retry is at most 56 s (4 s of the window gone)" \
	in_range "$(retry_smtp "$T/m2.out" u4@gmail.com)" 0 56

sink_wait_rcpts s 4 20
t_is "the sink got the 4 accepted recipients" "$(sink_rcpts s)" 4
pf_stop a
milter_stop m
t_done
