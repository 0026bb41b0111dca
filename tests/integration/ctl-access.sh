#!/bin/bash
# ctl-access.sh - who may run outboundctl, and what it says when it cannot:
# a throwaway Redis that requires AUTH, with the milter's ACL user and the
# read-only user of outboundctl(1) (created exactly as the page shows:
# password on standard input, the rule checked against the page), and,
# as root, a throwaway user and two groups (removed at the end):
#
#  * exit 1 only for a bad command line; 2 for a missing configuration, one
#    with a syntax error (FILE:LINE), one the user may not read;
#  * a user who may not read password_file: exit 2, one line naming the
#    file, the reason, the user and the read-only credentials as the way
#    out; the same for a writing command, and for a readonly_password_file
#    the user may not read;
#  * with readonly_user/readonly_password_file the user reads: stats, log,
#    sender, network, metrics, rel show, top, log --follow (which Redis
#    shows as authenticated as the read-only user), and Redis logged no
#    refusal for any of them (ACL LOG empty): the rule is all they need;
#  * the writing commands ignore the read-only credentials (root writes
#    with a configuration that has both), and a configuration that gives
#    the read-only user to a writing command gets Redis's NOPERM, exit 2;
#  * outbound-milter -t does not open readonly_password_file.
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
t_need redis-server redis-cli
t_init ctl-access

CTL=$OBM_BUILD/outboundctl
MILTER=$OBM_BUILD/outbound-milter
[ -x "$CTL" ] || t_bail "$CTL is missing (make $OBM_BUILD/outboundctl)"

# the read-only rule of outboundctl(1), section CREDENTIALS: the command
# line and the ACL file line give the rule created below
page=$(sed -e 's/\\-/-/g' -e "s/\\\\(aq/'/g" -e 's/\\f[BIR]//g' "$OBM_SRCDIR/doc/outboundctl.1")
t_ok "outboundctl.1: ACL SETUSER with the rule tested here" grep -qF \
	"reset on '~obm:*' resetchannels -@all +@read -@dangerous +ping +select" <<<"$page"
t_ok "outboundctl.1: the ACL file line with the same rule" grep -qF \
	"user outbound-ro on >password ~obm:* resetchannels -@all +@read -@dangerous +ping +select" \
	<<<"$page"

# ---- Redis: AUTH required, the milter's user, the read-only user ------------

redis_start
secret() { head -c 24 /dev/urandom | base64 | tr -d '/+='; }
ADMIN_PASS=$(secret)
rcli ACL SETUSER admin on ">$ADMIN_PASS" '~*' '&*' '+@all' >/dev/null
acli() { redis-cli -s "$REDIS_SOCK" --no-auth-warning --user admin --pass "$ADMIN_PASS" "$@"; }
rcli CONFIG SET requirepass "$(secret)" >/dev/null

RW_PW=$T/redis.pw
RO_PW=$T/redis-ro.pw
install -m 0600 /dev/null "$RW_PW"
secret >"$RW_PW"
printf '>%s' "$(cat "$RW_PW")" | acli -x ACL SETUSER obm-milter on '~obm:*' resetchannels \
	'+@all' '-@dangerous' '-@admin' >/dev/null
# as outboundctl(1) shows it
install -m 0640 /dev/null "$RO_PW"
acli ACL GENPASS >"$RO_PW"
out=$(printf '>%s' "$(cat "$RO_PW")" |
	acli -x ACL SETUSER outbound-ro reset on '~obm:*' resetchannels -@all +@read -@dangerous \
		+ping +select)
t_is "the read-only user is created as the page shows" "$out" OK

# conf FILE [LINES...]: a configuration with the redis section's extra LINES
conf()
{
	local file=$1
	shift
	{
		printf 'redis {\n  socket = "%s"\n  timeout_ms = 500\n' "$REDIS_SOCK"
		printf '  %s\n' "$@"
		printf '}\nnetwork google { domains = {"gmail.com"} }\n'
		printf 'limit per-sender {\n  hourly = 30\n  burst = 10\n}\n'
	} >"$file"
	chmod 0644 "$file"
}
conf "$T/rw.conf" 'user = "obm-milter"' "password_file = \"$RW_PW\""
conf "$T/ro.conf" 'user = "obm-milter"' "password_file = \"$RW_PW\"" \
	'readonly_user = "outbound-ro"' "readonly_password_file = \"$RO_PW\""
# the read-only user where a writing command looks
conf "$T/ro-as-rw.conf" 'user = "outbound-ro"' "password_file = \"$RO_PW\""

# ctl ARGS...: outboundctl (as root, or as whatever comes before in AS); sets RC, OUT, ERR
AS=()
ctl()
{
	"${AS[@]}" "$CTL" "$@" >"$T/out" 2>"$T/err"
	RC=$?
	OUT=$(cat "$T/out")
	ERR=$(cat "$T/err")
}
lines() { printf '%s\n' "$1" | grep -c .; }

# ---- exit status: 1 for the command line, 2 for the rest ---------------------

ctl -c "$T/rw.conf" stats --bogus
t_is "bad option: exit 1" "$RC" 1
ctl -c "$T/rw.conf" sender
t_is "missing operand: exit 1" "$RC" 1
ctl -c "$T/no-such.conf" stats
t_is "missing configuration: exit 2" "$RC" 2
t_is "missing configuration: one line, file and reason" "$ERR" \
	"outboundctl: $T/no-such.conf: error: cannot read the configuration: No such file or directory"
printf 'redis {\n  socket = "%s"\n  port = 1 2\n}\n' "$REDIS_SOCK" >"$T/syntax.conf"
ctl -c "$T/syntax.conf" stats
t_is "syntax error: exit 2" "$RC" 2
t_like "syntax error: FILE:LINE" "$ERR" "^outboundctl: $T/syntax.conf:3: error: "
conf "$T/rel.conf" 'password_file = "redis.pw"'
ctl -c "$T/rel.conf" stats
t_is "relative password_file: exit 2" "$RC" 2
t_like "relative password_file: FILE:LINE" "$ERR" \
	"^outboundctl: $T/rel.conf:[0-9]+: error: redis: password_file 'redis.pw' must be an absolute path"
chmod 0644 "$RO_PW"
ctl -c "$T/ro.conf" stats
t_is "readonly_password_file readable by everyone: exit 2" "$RC" 2
t_like "readonly_password_file readable by everyone: FILE:LINE" "$ERR" \
	"^outboundctl: $T/ro.conf:[0-9]+: error: redis: readonly_password_file $RO_PW has mode 0644"
chmod 0640 "$RO_PW"

# ---- root: writes with password_file whatever else is set; the data -----------

ctl -c "$T/ro.conf" block spammer@example.com --reason 'phished'
t_is "root, both credentials: block uses password_file: exit 0" "$RC" 0
ctl -c "$T/ro.conf" rel add alice@example.com bob@gmail.com
t_is "root, both credentials: rel add: exit 0" "$RC" 0
H=$(date -u +%Y%m%d%H)
acli HSET "obm:{stats}:h:$H" msg:personal 3 rcpt:personal 4 action:tag 3 \
	net:google:accepted 4 >/dev/null
acli ZADD "obm:{stats}:top:$H" 4 alice@example.com >/dev/null
acli ZADD 'obm:{google}:w:per-sender:alice@example.com' "$(date +%s%3N)" u1 >/dev/null
acli XADD 'obm:{log}' '*' type message qid 4F1A sender alice@example.com client 192.0.2.7 \
	rcpts 1 known 1 velocity 1 tempfailed 0 networks google:1 class personal action tag \
	mode enforce reasons - >/dev/null

# the read-only user where a writing command needs the milter's: Redis refuses
ctl -c "$T/ro-as-rw.conf" block other@example.com
t_is "read-only user, block: exit 2" "$RC" 2
t_like "read-only user, block: Redis's NOPERM" "$ERR" \
	"^outboundctl: redis: SET: NOPERM .*'set' command"
ctl -c "$T/ro-as-rw.conf" unblock spammer@example.com
t_is "read-only user, unblock: exit 2" "$RC" 2
t_like "read-only user, unblock: Redis's NOPERM" "$ERR" "NOPERM"
ctl -c "$T/ro-as-rw.conf" reset alice@example.com
t_is "read-only user, reset: exit 2" "$RC" 2
t_like "read-only user, reset: Redis's NOPERM" "$ERR" "^outboundctl: redis: DEL: NOPERM"
t_is "read-only user, reset: the window is still there" \
	"$(acli EXISTS 'obm:{google}:w:per-sender:alice@example.com')" 1
ctl -c "$T/ro-as-rw.conf" rel add alice@example.com carol@gmail.com
t_is "read-only user, rel add: exit 2" "$RC" 2
t_like "read-only user, rel add: Redis's NOPERM" "$ERR" "NOPERM"
ctl -c "$T/ro-as-rw.conf" rel del alice@example.com bob@gmail.com
t_is "read-only user, rel del: exit 2" "$RC" 2
t_is "nothing was written by the read-only user" \
	"$(acli ZCARD 'obm:{s:alice@example.com}:rel') $(acli EXISTS 'obm:{s:other@example.com}:block')" \
	"1 0"

# ---- a user who is not root ----------------------------------------------------

if [ "$(id -u)" -ne 0 ]; then
	t_fail "other users need root to be tried"
	t_done
fi
t_need useradd userdel groupadd groupdel setpriv
U=obm-ctl-$$
GRW=obm-rw-$$		# may read password_file; U is not in it
GRO=obm-adm-$$		# may read readonly_password_file; U is, when said so
ctl_users_cleanup()
{
	userdel -f "$U" 2>/dev/null
	getent group "$U" >/dev/null && groupdel "$U"
	getent group "$GRW" >/dev/null && groupdel "$GRW"
	getent group "$GRO" >/dev/null && groupdel "$GRO"
}
t_at_exit ctl_users_cleanup
useradd --system --user-group --no-create-home --home-dir /nonexistent \
	--shell /usr/sbin/nologin "$U" || t_bail "useradd $U failed"
groupadd --system "$GRW" || t_bail "groupadd $GRW failed"
groupadd --system "$GRO" || t_bail "groupadd $GRO failed"
uid=$(id -u "$U")
gid=$(id -g "$U")
gro=$(getent group "$GRO" | cut -d: -f3)
chown "root:$GRW" "$RW_PW"
chmod 0640 "$RW_PW"
chown "root:$GRO" "$RO_PW"
chmod 0640 "$RO_PW"
# the program where the user can run it
install -m 0755 "$CTL" "$T/outboundctl"
CTL=$T/outboundctl
AS_PLAIN=(setpriv --reuid="$uid" --regid="$gid" --clear-groups)
AS_ADM=(setpriv --reuid="$uid" --regid="$gid" --groups="$gro")

# without read-only credentials: exit 2, why, as whom, what to use
AS=("${AS_PLAIN[@]}")
ctl -c "$T/rw.conf" stats
t_is "$U, password_file unreadable: stats: exit 2" "$RC" 2
t_is "$U, password_file unreadable: stats: one line" "$(lines "$ERR")" 1
t_like "$U, password_file unreadable: stats: file, reason, user, way out" "$ERR" \
	"^outboundctl: cannot read the Redis credentials: password_file $RW_PW: Permission denied \\(running as user $U\\); .*readonly_user and readonly_password_file"
t_is "$U, password_file unreadable: stats: nothing on stdout" "$OUT" ""
ctl -c "$T/rw.conf" block x@example.com
t_is "$U, password_file unreadable: block: exit 2" "$RC" 2
t_like "$U, password_file unreadable: block: a writing command needs it" "$ERR" \
	"^outboundctl: cannot read the Redis credentials: password_file $RW_PW: Permission denied \\(running as user $U\\); this command writes"
# not in the read-only group either
ctl -c "$T/ro.conf" stats
t_is "$U, not in $GRO: stats: exit 2" "$RC" 2
t_like "$U, not in $GRO: stats: names readonly_password_file" "$ERR" \
	"^outboundctl: cannot read the Redis credentials: readonly_password_file $RO_PW: Permission denied \\(running as user $U\\); "
chmod 0600 "$T/ro.conf"
ctl -c "$T/ro.conf" stats
t_is "$U, configuration unreadable: exit 2" "$RC" 2
t_like "$U, configuration unreadable: file and reason" "$ERR" \
	"^outboundctl: $T/ro.conf: error: cannot read the configuration: Permission denied$"
chmod 0644 "$T/ro.conf"

# in the read-only group: every reading command works
AS=("${AS_ADM[@]}")
acli ACL LOG RESET >/dev/null
ctl -c "$T/ro.conf" stats
t_is "$U in $GRO: stats: exit 0" "$RC" 0
t_like "$U in $GRO: stats: the top sender" "$OUT" 'alice@example.com'
t_is "$U in $GRO: stats: nothing on stderr" "$ERR" ""
ctl -c "$T/ro.conf" --json stats --hours 2
t_is "$U in $GRO: stats --json --hours 2: exit 0" "$RC" 0
ctl -c "$T/ro.conf" log
t_is "$U in $GRO: log: exit 0" "$RC" 0
t_like "$U in $GRO: log: the entry" "$OUT" ' 4F1A class=personal action=tag '
ctl -c "$T/ro.conf" sender alice@example.com
t_is "$U in $GRO: sender: exit 0" "$RC" 0
ctl -c "$T/ro.conf" sender spammer@example.com
t_like "$U in $GRO: sender: the block (with its TTL)" "$OUT" 'phished'
ctl -c "$T/ro.conf" network google
t_is "$U in $GRO: network: exit 0" "$RC" 0
ctl -c "$T/ro.conf" metrics
t_is "$U in $GRO: metrics: exit 0" "$RC" 0
t_like "$U in $GRO: metrics: up" "$OUT" '^outbound_milter_up 1$'
ctl -c "$T/ro.conf" rel show alice@example.com
t_is "$U in $GRO: rel show: exit 0" "$RC" 0
t_like "$U in $GRO: rel show: the relationship" "$OUT" 'bob@gmail.com'
ctl -c "$T/ro.conf" top
t_is "$U in $GRO: top (one frame): exit 0" "$RC" 0
# log --follow: authenticated as the read-only user while it waits
"${AS_ADM[@]}" "$CTL" -c "$T/ro.conf" log --follow >"$T/follow.out" 2>"$T/follow.err" &
fpid=$!
t_track "$fpid"
t_ok "$U in $GRO: log --follow waits" t_wait_until 5 \
	eval "acli CLIENT LIST | grep -q 'cmd=xread'"
t_like "$U in $GRO: log --follow: connected as outbound-ro" \
	"$(acli CLIENT LIST | grep 'cmd=xread')" ' user=outbound-ro '
acli XADD 'obm:{log}' '*' type message qid 4F1B sender alice@example.com client 192.0.2.7 \
	rcpts 1 known 1 velocity 1 tempfailed 0 networks google:1 class personal action tag \
	mode enforce reasons - >/dev/null
t_ok "$U in $GRO: log --follow: shows the new entry" \
	t_wait_until 5 grep -q ' 4F1B class=' "$T/follow.out"
kill -TERM "$fpid"
wait "$fpid" 2>/dev/null
t_untrack "$fpid"
t_is "$U in $GRO: log --follow: nothing on stderr" "$(cat "$T/follow.err")" ""
t_is "Redis refused the read-only user nothing (ACL LOG empty)" "$(acli ACL LOG | grep -c .)" 0

# writing commands still need password_file
ctl -c "$T/ro.conf" unblock spammer@example.com
t_is "$U in $GRO: unblock: exit 2" "$RC" 2
t_like "$U in $GRO: unblock: needs password_file" "$ERR" \
	"password_file $RW_PW: Permission denied \\(running as user $U\\); this command writes"
ctl -c "$T/ro.conf" reset alice@example.com
t_is "$U in $GRO: reset: exit 2" "$RC" 2
t_is "$U in $GRO: the block is still there" \
	"$(acli EXISTS 'obm:{s:spammer@example.com}:block')" 1

# the daemon never opens readonly_password_file (the user may read only its own)
if [ -x "$MILTER" ]; then
	install -m 0600 -o "$U" "$RW_PW" "$T/own.pw"
	conf "$T/daemon.conf" 'user = "obm-milter"' "password_file = \"$T/own.pw\"" \
		'readonly_user = "outbound-ro"' "readonly_password_file = \"$RO_PW\""
	out=$("${AS_PLAIN[@]}" "$MILTER" -t -c "$T/daemon.conf" 2>&1)
	t_is "outbound-milter -t as $U, readonly_password_file unreadable: exit 0" "$?" 0
	t_unlike "outbound-milter -t as $U: no word of readonly_password_file" "$out" \
		'readonly_password_file'
fi

t_done
