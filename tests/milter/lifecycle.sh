#!/bin/bash
# lifecycle.sh - the daemon's socket, signals and exit, on the real daemon
# and a throwaway Redis:
#
#  * a TCP socket without a host (inet:PORT, inet6:PORT: every interface)
#    is refused by -t and at start, with FILE:LINE and what to write
#    instead, and nothing listens; a host given explicitly (127.0.0.1,
#    0.0.0.0, ::1, ::) passes -t, and inet:PORT@127.0.0.1 listens on the
#    loopback address only (/proc/net/tcp);
#  * the signal pipe: both ends non-blocking and close-on-exec
#    (/proc/PID/fdinfo);
#  * a storm of 100,000 SIGHUPs sent as fast as perl can: the daemon runs
#    on (it reloads, fewer times than it was signalled), answers a message,
#    and exits 0 within 5 s of SIGTERM;
#  * as root, started without -f with user = nobody, socket and pid file
#    in a folder of their own (root's, as systemd or an administrator
#    makes it): the folder is given to nobody, the daemon runs as nobody,
#    and after SIGTERM neither the socket nor the pid file is left;
#  * as root, the socket in a folder shared with another file: the folder
#    is left alone and the start warns that the socket will stay behind;
#  * a start without -f that fails before it detaches (no folder for the
#    pid file) exits 1 with the reason on stderr, not only in syslog; a
#    reload logs the file and the mode it now runs in.
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
t_need miltertest redis-server redis-cli perl
t_init lifecycle

MILTER=$OBM_BUILD/outbound-milter
[ -x "$MILTER" ] || t_bail "$MILTER not built (run make)"
redis_start

# one message through the milter: one Gmail recipient, accepted
cat >"$T/msg.lua" <<'EOF'
dofile(srcdir .. "/tests/milter/mtlib.lua")
local conn = T.open({ label = label, daemon = "ORIGINATING" })
T.is(T.mail(conn, "alice@example.com"), "continue", label .. ": MAIL FROM continues")
T.is(T.rcpt(conn, "bob@gmail.com"), "continue", label .. ": RCPT TO continues")
T.finish_message(conn, nil, label)
mt.disconnect(conn)
T.finish()
EOF

# conf FILE SOCKET [ROOT-OPTION...]: the shared test configuration on
# SOCKET, with more options at the top level
conf()
{
	local file=$1 sock=$2
	shift 2
	MC_SOCKET=$sock milter_std_conf >"$file"
	printf '%s\n' "$@" >>"$file"
}

# ---- TCP sockets: the host must be written out -----------------------------

port=$(t_free_port)
for fam in inet inet6; do
	conf "$T/bare-$fam.conf" "$fam:$port"
	line=$(grep -n '^socket = ' "$T/bare-$fam.conf" | cut -d: -f1)
	if [ "$fam" = inet ]; then
		want="write inet:$port@127.0.0.1 \\(loopback\\) or inet:$port@ADDRESS of a private interface"
	else
		want="write inet6:$port@::1 \\(loopback\\) or inet6:$port@ADDRESS of a private interface"
	fi
	out=$("$MILTER" -t -c "$T/bare-$fam.conf" 2>&1)
	rc=$?
	t_is "-t, socket $fam:PORT: exit 1" "$rc" 1
	t_like "-t, socket $fam:PORT: FILE:LINE error saying what to write" "$out" \
		"^$T/bare-$fam.conf:$line: error: socket '$fam:$port': no host: libmilter would listen on every interface.*$want"
	out=$(timeout -k 2 10 "$MILTER" -f -c "$T/bare-$fam.conf" 2>&1 </dev/null)
	rc=$?
	t_is "start with socket $fam:PORT: exit 1" "$rc" 1
	t_like "start with socket $fam:PORT: FILE:LINE error" "$out" \
		"$T/bare-$fam.conf:$line: error: socket '$fam:$port': no host"
	t_like "start with socket $fam:PORT: not starting" "$out" "has errors; not starting"
	t_not "start with socket $fam:PORT: nothing listens on the port" t_port_listening "$port"
done
for sock in "inet:$port@127.0.0.1" "inet:$port@0.0.0.0" "inet6:$port@::1" "inet6:$port@::"; do
	conf "$T/explicit.conf" "$sock"
	out=$("$MILTER" -t -c "$T/explicit.conf" 2>&1)
	rc=$?
	t_is "-t, socket $sock: exit 0" "$rc" 0
	t_is "-t, socket $sock: no message" "$out" ""
done
# the address it is told, and no other: 127.0.0.1:PORT in LISTEN, not 0.0.0.0
conf "$T/loopback.conf" "inet:$port@127.0.0.1"
milter_start loopback "$T/loopback.conf" "inet:$port@127.0.0.1"
hexport=$(printf '%04X' "$port")
t_is "inet:PORT@127.0.0.1 listens on 127.0.0.1 only" \
	"$(awk -v p=":$hexport" '$4 == "0A" && substr($2, length($2) - 4) == p { print $2 }' \
		/proc/net/tcp /proc/net/tcp6)" "0100007F:$hexport"
mt_run loopback "$T/msg.lua" "sock=inet:$port@127.0.0.1" "label=inet on 127.0.0.1"
milter_stop loopback

# ---- the signal pipe and a storm of signals -----------------------------------

# pipe_fds PID: "FD INODE FLAGS" for each descriptor of PID that is a pipe
pipe_fds()
{
	local f fd l
	for f in /proc/"$1"/fd/*; do
		l=$(readlink "$f" 2>/dev/null) || continue
		case $l in
		pipe:*)
			fd=${f##*/}
			echo "$fd ${l#pipe:} $(awk '$1 == "flags:" { print $2 }' "/proc/$1/fdinfo/$fd")"
			;;
		esac
	done
}

conf "$T/storm.conf" "unix:$T/storm.sock"
milter_start storm "$T/storm.conf" "unix:$T/storm.sock"
spid=${MILTER_PID[storm]}
slog=$(milter_log storm)
# the signal pipe is the daemon's first pipe (libmilter may make one later;
# a single inherited end is no pair)
pipes=$(pipe_fds "$spid")
t_diag "pipes of the daemon (fd inode flags):" "$pipes"
pair=$(printf '%s\n' "$pipes" | sort -n | awk 'NF == 3 { if (seen[$2]++) { print $2; exit } }')
t_like "the daemon has a pipe with both ends open" "$pair" '^\[[0-9]+\]$'
while read -r fd ino flags; do
	[ "$ino" = "$pair" ] || continue
	t_is "signal pipe fd $fd: O_NONBLOCK" "$(( 8#$flags & 8#4000 ))" "$(( 8#4000 ))"
	t_is "signal pipe fd $fd: O_CLOEXEC" "$(( 8#$flags & 8#2000000 ))" "$(( 8#2000000 ))"
done <<<"$pipes"
# only the main thread can take SIGHUP, SIGTERM and SIGINT: every other
# thread blocks them (SigBlk bits 1, 2 and 15) and none waits for them
others=""
for task in /proc/"$spid"/task/*; do
	[ "${task##*/}" = "$spid" ] && continue
	blk=$(awk '$1 == "SigBlk:" { print $2 }' "$task/status")
	(( (16#$blk & 16#4003) == 16#4003 )) || others+=" ${task##*/}(SigBlk $blk, $(cat "$task/wchan"))"
done
t_is "threads other than the main one never take SIGHUP, SIGTERM or SIGINT" "$others" ""
t_is "the main thread takes them" \
	"$(( 16#$(awk '$1 == "SigBlk:" { print $2 }' "/proc/$spid/task/$spid/status") & 16#4003 ))" 0

sent=$(perl -e 'my ($pid, $n) = @ARGV; my $s = 0;
	for (1 .. $n) { kill("HUP", $pid) or last; $s++ } print $s' "$spid" 100000)
t_is "100,000 SIGHUPs sent" "$sent" 100000
# the storm is over once the last wake-up is handled: a reload is logged
t_ok "after the storm: a reload is logged" t_wait_log "$slog" 'configuration .* reloaded' 10
t_ok "after the storm: still running" t_alive "$spid"
t_file_unlike "after the storm: not stopped" "$slog" 'stopped'
reloads=$(t_count "$slog" 'configuration .* reloaded')
t_diag "the storm made $reloads reloads"
t_ge "after the storm: it reloaded" "$reloads" 1
t_file_like "a reload names the file and the mode it now runs in" "$slog" \
	'configuration .* reloaded, mode=enforce'
t_le "after the storm: signals that came during a reload made one more, not one each" \
	"$reloads" 50000
mt_run storm "$T/msg.lua" "sock=unix:$T/storm.sock" "label=after the storm"
t0=$(t_now)
milter_stop storm
t_diag "exit $(awk -v a="$t0" -v b="$(t_now)" 'BEGIN { printf "%.2f", b - a }') s after SIGTERM"

# ---- started as root, running as nobody ------------------------------------------

if [ "$(id -u)" -ne 0 ] || ! getent passwd nobody >/dev/null; then
	t_fail "the switch to user nobody needs root and the user nobody"
	t_done
fi

# the folder of its own, as systemd (RuntimeDirectory) or an administrator
# makes it: root's, 0755
mkdir "$T/run"
chmod 0755 "$T/run"
conf "$T/own.conf" "unix:$T/run/milter.sock" 'user = "nobody"'
sed -i "s|^pid_file = .*|pid_file = \"$T/run/milter.pid\"|" "$T/own.conf"
"$MILTER" -c "$T/own.conf" </dev/null >"$T/own.out" 2>&1
rc=$?
t_is "as root with user = nobody, detached: the start exits 0" "$rc" 0
dpid=$(cat "$T/run/milter.pid" 2>/dev/null)
t_like "the pid file names the daemon" "$dpid" '^[0-9]+$'
[[ $dpid =~ ^[0-9]+$ ]] || t_bail "no daemon to test: $(cat "$T/own.out")"
t_track "$dpid"
t_ok "the socket accepts connections" t_wait_until 5 t_unix_listening "$T/run/milter.sock"
t_is "the daemon runs as nobody" \
	"$(awk '$1 == "Uid:" { print $2, $3 }' "/proc/$dpid/status")" \
	"$(id -u nobody) $(id -u nobody)"
t_is "its own folder was given to nobody (group and mode kept)" \
	"$(stat -c '%U %G %a' "$T/run")" "nobody root 755"
mt_run own "$T/msg.lua" "sock=unix:$T/run/milter.sock" "label=running as nobody"
kill -TERM "$dpid"
t_ok "as nobody: exits within 5 s of SIGTERM" t_wait_until 5 eval "! t_alive $dpid"
t_untrack "$dpid"
t_not "as nobody: the socket is removed at exit" test -e "$T/run/milter.sock"
t_not "as nobody: the pid file is removed at exit" test -e "$T/run/milter.pid"

# a folder shared with other files is not the daemon's to change
mkdir "$T/shared"
chmod 0755 "$T/shared"
echo keep >"$T/shared/other-file"
conf "$T/shared.conf" "unix:$T/shared/milter.sock" 'user = "nobody"'
milter_start shared "$T/shared.conf" "unix:$T/shared/milter.sock"
t_is "a shared folder keeps its owner" "$(stat -c '%U %a' "$T/shared")" "root 755"
t_file_like "the start says the socket will stay behind, and why" "$(milter_log shared)" \
	"the socket $T/shared/milter.sock will stay behind when the daemon stops: uid $(id -u nobody) cannot write the folder $T/shared"
milter_stop shared
t_is "the shared folder's other file is untouched" "$(cat "$T/shared/other-file")" keep

# without systemd: the missing folders of the socket and the pid file are
# created (the socket's for socket_group, both owned by `user`), and the
# daemon removes both files when it stops
conf "$T/mkdirs.conf" "unix:$T/sockdir/milter.sock" "pid_file = \"$T/rundir/milter.pid\"" \
	'user = "nobody"' 'socket_group = "nogroup"'
out=$(timeout 10 "$MILTER" -c "$T/mkdirs.conf" 2>&1 </dev/null)
rc=$?
t_is "start without -f, folders missing: started" "$rc" 0
pid=$(cat "$T/rundir/milter.pid" 2>/dev/null)
t_is "the socket folder: created 0750 for user and socket_group" \
	"$(stat -c '%U %G %a' "$T/sockdir")" "nobody nogroup 750"
t_is "the pid file folder: created 0755 for user" "$(stat -c '%U %a' "$T/rundir")" "nobody 755"
t_ok "the socket listens" t_unix_listening "$T/sockdir/milter.sock"
if [ -n "$pid" ]; then
	kill -TERM "$pid"
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
fi
t_not "stopped" kill -0 "${pid:-0}"
t_not "the socket is removed at stop" test -e "$T/sockdir/milter.sock"
t_not "the pid file is removed at stop" test -e "$T/rundir/milter.pid"

# a start that fails before detaching says why on stderr, not only in syslog
conf "$T/nopid.conf" "unix:$T/nopid.sock" "pid_file = \"$T/no-such-folder/sub/milter.pid\""
out=$(timeout 10 "$MILTER" -c "$T/nopid.conf" 2>&1 </dev/null)
rc=$?
t_is "start without -f, pid file's parent folder missing: exit 1" "$rc" 1
t_like "start without -f, parent folder missing: the reason on stderr" "$out" \
	"pid file .*no-such-folder/sub/milter.pid: $T/no-such-folder: No such file or directory"
t_not "start without -f, pid file folder missing: nothing left listening" \
	t_unix_listening "$T/nopid.sock"
t_done
