#!/bin/bash
# security.sh - the daemon's security properties, on the real daemon with a
# throwaway Redis that requires a password and has an ACL user:
#
#  * no shell-outs: neither the sources in milter/ (comments stripped) nor
#    the linked programs call system, popen, exec* or posix_spawn;
#  * no format-string use of client data: every milter/*.c compiles with
#    -Wformat=2 -Wsuggest-attribute=format -Werror (a format that is not a
#    literal, or a va_list wrapper without a format attribute, is an
#    error), a control file passing client data as the format of log_msg
#    is refused by the same flags, and no log_msg/syslog call has a format
#    that is not a string literal;
#  * Redis AUTH with an ACL user (restricted to the obm: keys, no
#    dangerous commands) and password_file works end to end; -t and the
#    start refuse a wrong password, an ACL without the scripts or the
#    keys (naming the server and the user), and only warn when Redis is
#    down; a password that goes wrong later is refused by Redis and the
#    milter applies on_error;
#  * password_file: readable by other users (0644, 0604) is refused by -t
#    and at start (exit 1) with FILE:LINE; 0640 and 0600 are accepted; a
#    missing file or a relative path is refused; a reload with a
#    world-readable file is refused and the old configuration kept;
#  * privilege drop (as root): a throwaway system user and group created
#    here (and removed at the end); /proc/PID/status shows real, effective,
#    saved and file uid/gid switched, only the user's groups, no
#    capabilities; the daemon still reaches Redis and reloads; a user that
#    does not exist, a password file the user cannot read, or a start
#    without root with user set all stop the start with exit 1;
#  * the unix socket gets socket_mode and socket_group (stat);
#  * without -f the daemon detaches and its pid file is complete when the
#    starting process returns (what systemd's Type=forking relies on).
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
t_need redis-server redis-cli miltertest perl
t_init security

MILTER=$OBM_BUILD/outbound-milter
[ -x "$MILTER" ] || t_bail "$MILTER not built (run make)"
SRC=$OBM_SRCDIR/milter
# the libraries of the Makefile
PKGS=$(sed -n 's/^PKGS[[:space:]]*:*=[[:space:]]*//p' "$OBM_SRCDIR/Makefile")
CC=${CC:-cc}

# ---- no shell-outs -----------------------------------------------------------

# the sources without their comments (the preprocessor strips them, includes
# are not expanded)
shell_calls='(^|[^A-Za-z0-9_.>])(system|popen|execl|execle|execlp|execv|execve|execvp|execvpe|fexecve|posix_spawn|posix_spawnp|wordexp)[[:space:]]*\('
found=""
for f in "$SRC"/*.c; do
	hits=$("$CC" -fpreprocessed -dD -E -P "$f" 2>/dev/null | grep -nE "$shell_calls")
	[ -n "$hits" ] && found+="$(basename "$f"): $hits"$'\n'
done
t_is "no system/popen/exec*/posix_spawn in milter/*.c" "$found" ""

# and the programs import none of them (covers everything linked in)
for prog in "$MILTER" "$OBM_BUILD/outboundctl"; do
	[ -x "$prog" ] || continue
	imports=$(nm -D --undefined-only "$prog" 2>/dev/null |
		awk '{ sub(/@.*/, "", $NF); print $NF }' |
		grep -E '^(system|popen|exec[lv][pe]*|fexecve|posix_spawnp?|wordexp)$')
	t_is "$(basename "$prog") imports no function that runs another program" "$imports" ""
done

# ---- no format-string use of client data ----------------------------------

# shellcheck disable=SC2086 # a list of package names
read -ra pkg_cflags <<<"$(pkg-config --cflags $PKGS)"
fmt_flags=(-std=gnu11 -Wall -Wextra -Wformat=2 -Wformat-security -Wsuggest-attribute=format
	-O2 -I"$OBM_SRCDIR/include" -I"$OBM_BUILD/gen" "${pkg_cflags[@]}" -DOBM_VERSION='"test"')
bad=""
for f in "$SRC"/*.c; do
	out=$("$CC" "${fmt_flags[@]}" -fsyntax-only "$f" 2>&1 |
		grep -E '(warning|error):' |
		# libconfuse's error callback type has no format attribute;
		# config.c's cb_error itself is declared with one
		grep -v "argument 2 of .cfg_set_error_function. might be a candidate")
	[ -n "$out" ] && bad+="$(basename "$f"): $out"$'\n'
done
t_is "milter/*.c: no non-literal format, no unchecked va_list wrapper" "$bad" ""

# control: client data as a format is an error under the project's flags
cat >"$T/fmt.c" <<'EOF'
#include "log.h"
void fmt_control(const char *client_data);
void fmt_control(const char *client_data)
{
	log_msg(LOG_INFO, "QID", client_data);
}
EOF
out=$("$CC" -std=gnu11 -Wall -Wextra -Werror -Wformat=2 -I"$OBM_SRCDIR/include" \
	-fsyntax-only "$T/fmt.c" 2>&1)
rc=$?
t_not "control: log_msg(level, qid, client_data) does not compile" test "$rc" -eq 0
t_like "control: refused as a format that is not a string literal" "$out" \
	'format not a string literal|format-security|format-nonliteral'

# log_msg/syslog calls (comments stripped): the format argument starts with
# a string literal (log_msg: 3rd argument, syslog: 2nd)
cat >"$T/fmtscan.pl" <<'EOF'
# reads one C file (comments stripped) on stdin; prints the calls of
# log_msg/syslog whose format argument is not a string literal
local $/;
my $s = <STDIN>;
my %pos = (log_msg => 2, syslog => 1);
while ($s =~ /\b(log_msg|syslog)\s*\(/g) {
	my ($name, $i, $depth, $cur, $instr) = ($1, pos($s), 1, "", 0);
	my @args;
	for (; $i < length($s) && $depth > 0; $i++) {
		my $c = substr($s, $i, 1);
		if ($instr) {
			$cur .= $c;
			if ($c eq "\\") { $cur .= substr($s, ++$i, 1); next; }
			$instr = 0 if $c eq '"';
			next;
		}
		if ($c eq '"') { $instr = 1; $cur .= $c; next; }
		if ($c eq '(') { $depth++; }
		if ($c eq ')') { $depth--; last if $depth == 0; }
		if ($c eq ',' && $depth == 1) { push @args, $cur; $cur = ""; next; }
		$cur .= $c;
	}
	push @args, $cur;
	next if $args[0] =~ /^\s*(int|const|char|unsigned|void)\b/;	# a declaration
	my $fmt = $args[$pos{$name}] // "";
	print "$name($fmt)\n" unless $fmt =~ /^\s*"/;
}
EOF
bad=""
for f in "$SRC"/*.c; do
	out=$("$CC" -fpreprocessed -dD -E -P "$f" 2>/dev/null | perl "$T/fmtscan.pl")
	[ -n "$out" ] && bad+="$(basename "$f"): $out"$'\n'
done
t_is "every log_msg/syslog format in milter/*.c is a string literal" "$bad" ""
out=$(printf '%s\n' 'log_msg(LOG_INFO, qid, "%s", x);' 'log_msg(LOG_INFO, qid, rcpt);' \
	'syslog(LOG_ERR, header_value);' | perl "$T/fmtscan.pl")
t_is "control: the scan finds non-literal formats" "$out" \
	"$(printf '%s\n' 'log_msg( rcpt)' 'syslog( header_value)')"

# ---- Redis with requirepass and an ACL user -------------------------------------

redis_start
secret()
{
	head -c 24 /dev/urandom | base64 | tr -d '/+='
}
ADMIN_PASS=$(secret)
MILTER_PASS=$(secret)
REDIS_USER=obm-milter
rcli ACL SETUSER admin on ">$ADMIN_PASS" '~*' '&*' '+@all' >/dev/null
# the milter's user: its own keys only, no administrative commands
rcli ACL SETUSER "$REDIS_USER" on ">$MILTER_PASS" '~obm:*' resetchannels '+@all' \
	'-@dangerous' '-@admin' >/dev/null
rcli CONFIG SET requirepass "$(secret)" >/dev/null
acli()
{
	redis-cli -s "$REDIS_SOCK" --no-auth-warning --user admin --pass "$ADMIN_PASS" "$@"
}
t_is "Redis refuses commands without AUTH" "$(rcli ping 2>&1 | head -n 1)" \
	"NOAUTH Authentication required."
t_is "Redis ACL user $REDIS_USER exists" \
	"$(acli ACL LIST | grep -c "^user $REDIS_USER on ")" 1

# the configuration: the shared test configuration with the lines this test
# needs. sec_conf FILE PWFILE [ROOT-OPTIONS...]; root options replace the
# socket_mode line
sec_conf()
{
	local file=$1 pw=$2 extra
	shift 2
	extra=$(printf '%s\n' "$@")
	milter_std_conf |
		awk -v pw="$pw" -v user="$REDIS_USER" -v extra="$extra" '
			/^socket_mode = / { if (extra != "") print extra; else print; next }
			{ print }
			/^redis \{/ { printf "\tuser = \"%s\"\n\tpassword_file = \"%s\"\n", user, pw }' \
		>"$file"
}

# line of FILE holding password_file
pw_line()
{
	grep -n 'password_file = ' "$1" | head -n 1 | cut -d: -f1
}

# one message through the milter: sender alice@example.com, one Gmail
# recipient; WANT is the RCPT reply (continue, or replycode when refused)
cat >"$T/sec.lua" <<'EOF'
dofile(srcdir .. "/tests/milter/mtlib.lua")
local conn = T.open({ label = label })
T.is(T.mail(conn, "alice@example.com"), "continue", label .. ": MAIL FROM continues")
T.is(T.rcpt(conn, "bob@gmail.com"), want, label .. ": RCPT TO bob@gmail.com: " .. want)
if want == "continue" then
	T.finish_message(conn, nil, label)
end
mt.disconnect(conn)
T.finish()
EOF

PW=$T/redis.pw
printf '%s\n' "$MILTER_PASS" >"$PW"
chmod 0600 "$PW"

# ---- password_file permissions ------------------------------------------------

sec_conf "$T/pw.conf" "$PW"
L=$(pw_line "$T/pw.conf")
for mode in 0644 0604; do
	chmod "$mode" "$PW"
	out=$("$MILTER" -t -c "$T/pw.conf" 2>&1)
	rc=$?
	t_is "-t with password_file mode $mode: exit 1" "$rc" 1
	t_like "-t with password_file mode $mode: FILE:LINE error" "$out" \
		"^$T/pw.conf:$L: error: redis: password_file $PW has mode $mode: other users"
done
chmod 0644 "$PW"
out=$(timeout -k 2 10 "$MILTER" -f -c "$T/pw.conf" 2>&1 </dev/null)
rc=$?
t_is "start with a world-readable password_file: exit 1" "$rc" 1
t_like "start with a world-readable password_file: FILE:LINE error" "$out" \
	"$T/pw.conf:$L: error: redis: password_file $PW has mode 0644"
t_like "start with a world-readable password_file: not starting" "$out" "not starting"
t_not "start with a world-readable password_file: no socket left listening" \
	t_unix_listening "$T/milter.sock"
for mode in 0640 0600 0400; do
	chmod "$mode" "$PW"
	out=$("$MILTER" -t -c "$T/pw.conf" 2>&1)
	rc=$?
	t_is "-t with password_file mode $mode: exit 0" "$rc" 0
	t_is "-t with password_file mode $mode: no message" "$out" ""
done
sec_conf "$T/missing.conf" "$T/no-such.pw"
out=$("$MILTER" -t -c "$T/missing.conf" 2>&1)
rc=$?
t_is "-t with a missing password_file: exit 1" "$rc" 1
t_like "-t with a missing password_file: FILE:LINE error" "$out" \
	"^$T/missing.conf:$L: error: redis: password_file $T/no-such.pw: No such file"
sec_conf "$T/relative.conf" "redis.pw"
out=$("$MILTER" -t -c "$T/relative.conf" 2>&1)
rc=$?
t_is "-t with a relative password_file: exit 1" "$rc" 1
t_like "-t with a relative password_file: FILE:LINE error" "$out" \
	"^$T/relative.conf:$L: error: redis: password_file 'redis.pw' must be an absolute path"

# ---- AUTH with the ACL user, as root -------------------------------------------------

chmod 0600 "$PW"
MC_ON_ERROR=tempfail sec_conf "$T/auth.conf" "$PW" 'socket_mode = "0600"' 'socket_group = ""'
milter_start auth "$T/auth.conf" "unix:$T/milter.sock"
mt_run auth "$T/sec.lua" "sock=unix:$T/milter.sock" "label=AUTH as $REDIS_USER" "want=continue"
t_is "the message used one unit in Redis, under the ACL user's keys" \
	"$(acli ZCARD 'obm:{google}:w:per-sender:alice@example.com')" 1
t_is "Redis denied the ACL user nothing (ACL LOG empty)" "$(acli ACL LOG | grep -c .)" 0
t_is "every key in Redis is under obm:" "$(acli --scan | grep -vc '^obm:')" 0
t_is "socket_mode 0600, socket_group \"\": socket mode and owner" \
	"$(stat -c '%a %U' "$T/milter.sock")" "600 root"
milter_stop auth

# -t and the start try the credentials, the scripts and the keys: a
# refusal names the server and the user; a Redis that is down is no
# configuration error (on_error covers it)
printf 'not-the-password\n' >"$T/wrong.pw"
chmod 0600 "$T/wrong.pw"
MC_ON_ERROR=tempfail sec_conf "$T/wrong.conf" "$T/wrong.pw"
out=$("$MILTER" -t -c "$T/wrong.conf" 2>&1)
rc=$?
t_is "-t with a wrong password: exit 1" "$rc" 1
t_like "-t with a wrong password: the server, the user and Redis's answer" "$out" \
	"^$T/wrong.conf: error: redis at $REDIS_SOCK, user \"$REDIS_USER\": AUTH: WRONGPASS"
out=$(timeout -k 2 10 "$MILTER" -f -c "$T/wrong.conf" 2>&1 </dev/null)
rc=$?
t_is "start with a wrong password: exit 1" "$rc" 1
t_like "start with a wrong password: the reason on stderr" "$out" \
	", user \"$REDIS_USER\": AUTH: WRONGPASS"
t_not "start with a wrong password: no socket left listening" t_unix_listening "$T/milter.sock"
for acl in "-@scripting:SCRIPT LOAD: NOPERM" "~other:*:PEXPIRE: NOPERM"; do
	rule=${acl%%:[A-Z]*}
	want=${acl#"$rule:"}
	acli ACL SETUSER obm-narrow reset on ">$MILTER_PASS" '~obm:*' resetchannels '+@all' \
		'-@dangerous' >/dev/null
	[ "$rule" = "~other:*" ] && acli ACL SETUSER obm-narrow resetkeys '~other:*' >/dev/null
	[ "$rule" = "-@scripting" ] && acli ACL SETUSER obm-narrow -@scripting >/dev/null
	sec_conf "$T/narrow.conf" "$PW"
	sed -i "s/user = \"$REDIS_USER\"/user = \"obm-narrow\"/" "$T/narrow.conf"
	out=$("$MILTER" -t -c "$T/narrow.conf" 2>&1)
	rc=$?
	t_is "-t with an ACL user without $rule: exit 1" "$rc" 1
	t_like "-t with an ACL user without $rule: what Redis refused" "$out" \
		", user \"obm-narrow\": $want"
done
acli ACL DELUSER obm-narrow >/dev/null
sed "s|$REDIS_SOCK|$T/no-redis.sock|" "$T/pw.conf" >"$T/down.conf"
out=$("$MILTER" -t -c "$T/down.conf" 2>&1)
rc=$?
t_is "-t with Redis down: exit 0" "$rc" 0
t_like "-t with Redis down: a warning that the credentials are not checked" "$out" \
	"^$T/down.conf: warning: redis at $T/no-redis.sock cannot be reached now .*not checked"

# a password that goes wrong while the daemon runs: Redis refuses, on_error
# = tempfail applies at RCPT
MC_ON_ERROR=tempfail sec_conf "$T/later.conf" "$T/later.pw"
install -m 0600 "$PW" "$T/later.pw"
milter_start wrong "$T/later.conf" "unix:$T/milter.sock"
cp "$T/wrong.pw" "$T/later.pw"
kill -HUP "${MILTER_PID[wrong]}"
t_wait_log "$(milter_log wrong)" 'reloaded' 5
mt_run wrong "$T/sec.lua" "sock=unix:$T/milter.sock" "label=wrong password" "want=replycode"
t_file_like "wrong password: the AUTH failure is logged" "$(milter_log wrong)" \
	'AUTH.*(WRONGPASS|invalid username-password)'
milter_stop wrong

# ---- privilege drop --------------------------------------------------------------

if [ "$(id -u)" -ne 0 ]; then
	t_fail "the privilege drop and the socket group need root to be tried"
else
	t_need useradd userdel groupadd groupdel setpriv
	U=obm-sec-$$
	SG=obm-sock-$$
	sec_users_cleanup()
	{
		local n
		# userdel refuses while the user runs processes
		for n in "${!MILTER_PID[@]}"; do
			milter_kill "$n"
		done
		userdel -f "$U"
		getent group "$U" >/dev/null && groupdel "$U"
		getent group "$SG" >/dev/null && groupdel "$SG"
	}
	t_at_exit sec_users_cleanup
	useradd --system --user-group --no-create-home --home-dir /nonexistent \
		--shell /usr/sbin/nologin "$U" || t_bail "useradd $U failed"
	groupadd --system "$SG" || t_bail "groupadd $SG failed"
	uid=$(id -u "$U")
	gid=$(id -g "$U")
	sgid=$(getent group "$SG" | cut -d: -f3)
	t_diag "user $U uid $uid gid $gid, socket group $SG gid $sgid"

	# the password file: root-owned, readable by the user's group only
	chown "root:$U" "$PW"
	chmod 0640 "$PW"
	MC_ON_ERROR=tempfail sec_conf "$T/drop.conf" "$PW" 'socket_mode = "0660"' \
		"socket_group = \"$SG\"" "user = \"$U\"" "group = \"$U\""
	milter_start drop "$T/drop.conf" "unix:$T/milter.sock"
	pid=${MILTER_PID[drop]}
	st=/proc/$pid/status
	t_is "dropped: Uid (real, effective, saved, fs)" \
		"$(awk '$1 == "Uid:" { print $2, $3, $4, $5 }' "$st")" "$uid $uid $uid $uid"
	t_is "dropped: Gid (real, effective, saved, fs)" \
		"$(awk '$1 == "Gid:" { print $2, $3, $4, $5 }' "$st")" "$gid $gid $gid $gid"
	t_is "dropped: supplementary groups are the user's only" \
		"$(awk '$1 == "Groups:" { $1 = ""; print }' "$st" | xargs)" "$gid"
	t_is "dropped: no effective capabilities" \
		"$(awk '$1 == "CapEff:" { print $2 }' "$st")" 0000000000000000
	t_is "dropped: no permitted capabilities" \
		"$(awk '$1 == "CapPrm:" { print $2 }' "$st")" 0000000000000000
	t_is "socket_mode 0660, socket_group $SG: socket mode, owner and group" \
		"$(stat -c '%a %U %G' "$T/milter.sock")" "660 root $SG"
	acli DEL 'obm:{google}:w:per-sender:alice@example.com' >/dev/null
	mt_run drop "$T/sec.lua" "sock=unix:$T/milter.sock" "label=as $U" "want=continue"
	t_is "as $U: the message reached Redis" \
		"$(acli ZCARD 'obm:{google}:w:per-sender:alice@example.com')" 1

	# reloads run as the user: a good one is taken, a world-readable
	# password file is refused and the old configuration kept
	log=$(milter_log drop)
	kill -HUP "$pid"
	t_ok "as $U: SIGHUP reloads the configuration" \
		t_wait_log "$log" 'configuration .* reloaded' 5
	chmod 0644 "$PW"
	kill -HUP "$pid"
	t_ok "as $U: reload with a world-readable password_file refused" \
		t_wait_log "$log" 'reload of .* refused' 5
	t_file_like "as $U: the refusal names FILE:LINE" "$log" \
		"$T/drop.conf:[0-9]+: error: redis: password_file $PW has mode 0644"
	chmod 0640 "$PW"
	t_ok "as $U: still running after the refused reload" t_alive "$pid"
	mt_run drop-after "$T/sec.lua" "sock=unix:$T/milter.sock" "label=as $U after reload" \
		"want=continue"
	milter_stop drop

	# a start that cannot drop, or cannot read the password file once
	# dropped, stops with exit 1 and says why
	fail_start()
	{
		local name=$1 conf=$2 want=$3 out rc
		shift 3
		out=$(timeout -k 2 10 "$@" "$MILTER" -f -c "$conf" 2>&1 </dev/null)
		rc=$?
		t_is "$name: exit 1" "$rc" 1
		t_like "$name: says why" "$out" "$want"
	}
	sec_conf "$T/nouser.conf" "$PW" 'socket_mode = "0660"' "user = \"obm-no-such-user-$$\""
	fail_start "user that does not exist" "$T/nouser.conf" \
		"cannot switch to user obm-no-such-user-$$: no such user"
	sec_conf "$T/nogroup.conf" "$PW" 'socket_mode = "0660"' "user = \"$U\"" \
		"group = \"obm-no-such-group-$$\""
	fail_start "group that does not exist" "$T/nogroup.conf" \
		"cannot switch to group obm-no-such-group-$$: no such group"
	chown root:root "$PW"
	chmod 0600 "$PW"
	sec_conf "$T/unreadable.conf" "$PW" 'socket_mode = "0660"' "user = \"$U\""
	fail_start "password_file the user cannot read" "$T/unreadable.conf" \
		"password_file $PW cannot be read by uid $uid"

	# started without root, told to switch to another user (root here):
	# refuses; told to be the user it already is: runs
	port=$(t_free_port)
	install -m 0600 -o "$uid" -g "$gid" "$PW" "$T/self.pw"
	MC_SOCKET=inet:$port@127.0.0.1 sec_conf "$T/noroot.conf" "$T/self.pw" \
		'socket_mode = "0660"' 'user = "root"'
	chmod 0644 "$T/noroot.conf"
	fail_start "started as $U with user = root" "$T/noroot.conf" \
		"cannot switch to user root: not started as root" \
		setpriv --reuid="$uid" --regid="$gid" --init-groups
	MC_SOCKET=inet:$port@127.0.0.1 sec_conf "$T/self.conf" "$T/self.pw" \
		'socket_mode = "0660"' "user = \"$U\"" "group = \"$U\""
	chmod 0644 "$T/self.conf"
	setpriv --reuid="$uid" --regid="$gid" --init-groups \
		"$MILTER" -f -c "$T/self.conf" </dev/null >"$T/self.log" 2>&1 &
	spid=$!
	t_track "$spid"
	t_ok "started as $U with user = $U: runs" t_wait_port "$port" 10
	t_is "started as $U with user = $U: runs as $U" \
		"$(awk '$1 == "Uid:" { print $2, $3 }' "/proc/$spid/status" 2>/dev/null)" "$uid $uid"
	kill -TERM "$spid"
	t_ok "started as $U with user = $U: exits within 5 s of SIGTERM" \
		t_wait_until 5 eval "! t_alive $spid"
	wait "$spid"
	t_is "started as $U with user = $U: exit status 0" "$?" 0
	t_untrack "$spid"
fi

# ---- detaching and the pid file ---------------------------------------------------

chown root:root "$PW" 2>/dev/null
chmod 0600 "$PW"
sec_conf "$T/detach.conf" "$PW" 'socket_mode = "0660"'
rm -f "$T/milter.pid"
"$MILTER" -c "$T/detach.conf" </dev/null >"$T/detach.out" 2>&1
rc=$?
t_is "without -f: the starting process exits 0" "$rc" 0
# no waiting: the file must be complete when the starter has returned
dpid=$(cat "$T/milter.pid" 2>/dev/null)
t_like "without -f: the pid file holds a pid as soon as the start returns" "$dpid" '^[0-9]+$'
if [[ $dpid =~ ^[0-9]+$ ]]; then
	t_track "$dpid"
	t_is "without -f: the pid file names the running daemon" \
		"$(readlink "/proc/$dpid/exe" 2>/dev/null)" "$(readlink -f "$MILTER")"
	t_ok "without -f: the socket accepts connections" \
		t_wait_until 5 t_unix_listening "$T/milter.sock"
	kill -TERM "$dpid"
	t_ok "without -f: exits within 5 s of SIGTERM" \
		t_wait_until 5 eval "! t_alive $dpid"
	t_untrack "$dpid"
	t_not "without -f: the pid file is removed at exit" test -e "$T/milter.pid"
fi

t_done
