#!/bin/bash
# logfields.sh - log lines under hostile input, through the real daemon:
# envelope senders, recipients and logins with quoted local parts that
# hold spaces and forged fields (client=, rcpt=, reasons=), '=' (SRS),
# quotes and UTF-8, and a queue id that is not plain (logfields.lua).
# Every line the daemon logs for them (its standard error copy of syslog)
# and every line outboundctl log and sender print from its decision log
# read back, token by token (tests/lib/logfields.pl), as exactly the
# fields expected: the sender as the daemon normalises it, the real
# client, nothing added or changed.
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
t_need miltertest redis-server redis-cli perl
t_init logfields

CTL=$OBM_BUILD/outboundctl
[ -x "$CTL" ] || t_bail "$CTL is missing (make $OBM_BUILD/outboundctl)"
LF=$OBM_SRCDIR/tests/lib/logfields.pl

redis_start
MC_SOCKET=unix:$T/milter.sock
MC_BURST=2
milter_std_conf >"$T/m.conf"
milter_start m "$T/m.conf" "$MC_SOCKET"
mlog=$(milter_log m)

mt_run logfields "$OBM_SRCDIR/tests/milter/logfields.lua" "sock=$MC_SOCKET" "mlog=$mlog"

# the senders and recipients as the daemon normalises them
S1='"x client=1.2.3.4"@evil.example'
R1='"y rcpt=z@gmail.com network=yahoo"@gmail.com'
S2='a=b@x.example'
R2='"g h=i"@yahoo.com'
S3='srs0=ab=cd=example.com=u@fwd.example'
S4='"a reasons=- class=personal"@evil.example'
S5='"say \"hi\" sender=x@y"@evil.example'
S6=$'j\xc3\xb6rg@evil.example'
S7='evil_client=1.2.3.4'

# line NAME NEEDLE EXPECT...: the one line of FILE ($in) holding NEEDLE
# reads back as EXPECT (logfields.pl)
line()
{
	local name=$1 needle=$2 n l
	shift 2
	n=$(grep -cF -- "$needle" "$in")
	if [ "$n" -ne 1 ]; then
		t_fail "$name" "$n lines hold '$needle', want 1" "$(tail -n 20 "$in")"
		return
	fi
	l=$(grep -F -- "$needle" "$in")
	t_ok "$name" perl "$LF" "${l#  }" "$@"
}

# decision QID SENDER RCPTS TEMPFAILED NETWORKS: the daemon's decision line
decision()
{
	line "daemon: $1: decision line" "outbound-milter: $1: class=" \
		outbound-milter: "$1:" class=personal action=tag "sender=$2" client=127.0.0.1 \
		"rcpts=$3" known=0 "velocity=$3" "tempfailed=$4" "networks=$5" mode=enforce \
		reasons=-
}

# refusal QID RCPT NETWORK SENDER: the daemon's line for a refused recipient
refusal()
{
	line "daemon: $1: refusal line" "outbound-milter: $1: action=tempfail" \
		outbound-milter: "$1:" action=tempfail "rcpt=$2" "network=$3" rule=per-sender \
		limit=burst used=2/2 window=60s '~retry=^[0-9]+s$' "sender=$4" client=127.0.0.1
}

in=$mlog
t_wait_log "$mlog" 'LF0007: class=' 5
refusal LF0001 "$R1" google "$S1"
decision LF0001 "$S1" 2 1 google:2
refusal LF0002 "$R2" yahoo "$S2"
decision LF0002 "$S2" 2 1 yahoo:2
decision LF0003 "$S3" 1 0 google:1
decision LF0004 "$S4" 1 0 google:1
decision LF0005 "$S5" 1 0 google:1
decision LF0006 "$S6" 1 0 google:1
decision LF0007 "$S7" 1 0 google:1
line "daemon: a queue id that is not plain, quoted" 'outbound-milter: "LF 8 client=6.6.6.6": ' \
	outbound-milter: '=LF 8 client=6.6.6.6:' class=personal action=tag \
	sender=q8@example.com client=127.0.0.1 rcpts=1 known=0 velocity=1 tempfailed=0 \
	networks=google:1 mode=enforce reasons=-
t_is "daemon: one line per refusal and decision, no more" \
	"$(grep -c '^outbound-milter: LF000[0-9]: ' "$mlog")" 9
bad=0
: >"$T/tokens"
while IFS= read -r l; do
	perl "$LF" --show "$l" >>"$T/tokens" || { t_diag "does not read back: $l"; bad=$((bad + 1)); }
done < <(grep '^outbound-milter: LF000[0-9]: ' "$mlog")
t_is "daemon: every line of the messages reads back" "$bad" 0
t_is "daemon: read back, no client but the real one" \
	"$(grep '^client=' "$T/tokens" | sort | uniq -c | tr -s ' ')" " 9 client=127.0.0.1"

# the decision log, as outboundctl prints it
"$CTL" -c "$T/m.conf" log >"$T/log.out" 2>&1
t_is "outboundctl log: exit 0" "$?" 0
in=$T/log.out
t_is "outboundctl log: one line an entry" "$(grep -c . "$in")" 10
T_=$'^20[0-9-]+T[0-9:]+Z$'
line "outboundctl log: LF0001 tempfail" "LF0001 tempfail" "~=$T_" LF0001 tempfail \
	"sender=$S1" client=127.0.0.1 "rcpt=$R1" network=google rule=per-sender limit=burst \
	used=2/2 window=60s mode=enforce
line "outboundctl log: LF0002 tempfail" "LF0002 tempfail" "~=$T_" LF0002 tempfail \
	"sender=$S2" client=127.0.0.1 "rcpt=$R2" network=yahoo rule=per-sender limit=burst \
	used=2/2 window=60s mode=enforce
# ctl_decision QID SENDER RCPTS TEMPFAILED NETWORKS
ctl_decision()
{
	line "outboundctl log: $1 decision" "$1 class=" "~=$T_" "$1" class=personal action=tag \
		"sender=$2" client=127.0.0.1 "rcpts=$3" known=0 "velocity=$3" "tempfailed=$4" \
		"networks=$5" mode=enforce reasons=-
}
ctl_decision LF0001 "$S1" 2 1 google:2
ctl_decision LF0002 "$S2" 2 1 yahoo:2
ctl_decision LF0003 "$S3" 1 0 google:1
ctl_decision LF0004 "$S4" 1 0 google:1
ctl_decision LF0005 "$S5" 1 0 google:1
ctl_decision LF0006 "$S6" 1 0 google:1
ctl_decision LF0007 "$S7" 1 0 google:1
line "outboundctl log: a queue id that is not plain" '"LF 8 client=6.6.6.6" class=' "~=$T_" \
	'=LF 8 client=6.6.6.6' class=personal action=tag sender=q8@example.com \
	client=127.0.0.1 rcpts=1 known=0 velocity=1 tempfailed=0 networks=google:1 \
	mode=enforce reasons=-

"$CTL" -c "$T/m.conf" sender "$S1" >"$T/sender.out" 2>&1
t_is "outboundctl sender with a quoted local part: exit 0" "$?" 0
in=$T/sender.out
line "outboundctl sender: its decision" "LF0001 class=" "~=$T_" LF0001 class=personal \
	action=tag "sender=$S1" client=127.0.0.1 rcpts=2 known=0 velocity=2 tempfailed=1 \
	networks=google:2 mode=enforce reasons=-
line "outboundctl sender: its tempfail" "LF0001 tempfail" "~=$T_" LF0001 tempfail \
	"sender=$S1" client=127.0.0.1 "rcpt=$R1" network=google rule=per-sender limit=burst \
	used=2/2 window=60s mode=enforce

milter_stop m
t_done
