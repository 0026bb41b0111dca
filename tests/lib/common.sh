# common.sh - shared helpers for the shell test suites (tests/milter,
# tests/e2e): a private temporary folder, free TCP ports, tracking of every
# started process by PID with one cleanup on exit, TAP-like assertions that
# count passes and failures, and helpers that wait for a socket, a port or a
# log line with a timeout.
#
# Usage, at the top of a test script:
#	. "$(dirname "$0")/../lib/common.sh"
#	t_init NAME
#	... t_is "name" "$got" "$want" ...
#	t_done
#
# Environment: OBM_BUILD (build folder, default build), OBM_SRCDIR (source
# tree, default the folder above tests/), OBM_KEEP_TMP=1 keeps the
# temporary folder for inspection.

set -u

OBM_SRCDIR=${OBM_SRCDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
OBM_BUILD=${OBM_BUILD:-build}
case $OBM_BUILD in
/*) ;;
*) OBM_BUILD=$OBM_SRCDIR/$OBM_BUILD ;;
esac
export OBM_SRCDIR OBM_BUILD

T=""			# the test's private temporary folder
T_NAME=""
T_PASS=0
T_FAIL=0
T_PIDS=()		# processes started by the test, killed at exit
T_HOOKS=()		# commands run at exit, last registered first
T_PORTS=" "		# ports already handed out by t_free_port
T_DONE=0

# t_init NAME: create the temporary folder and install the cleanup trap.
t_init()
{
	T_NAME=$1
	T=$(mktemp -d "${TMPDIR:-/tmp}/obm-$T_NAME.XXXXXX") || {
		echo "Bail out! cannot create a temporary folder"
		exit 1
	}
	# Postfix daemons (user postfix) must reach sockets and files in here.
	chmod 0755 "$T"
	trap t_cleanup EXIT
	trap 'echo "# interrupted"; exit 130' INT TERM HUP
	echo "# $T_NAME: temporary folder $T"
}

# t_diag TEXT...: a comment line in the test output
t_diag()
{
	local line
	printf '%s\n' "$@" | while IFS= read -r line; do
		echo "# $line"
	done
}

t_pass()
{
	T_PASS=$((T_PASS + 1))
	echo "ok - $1"
}

# t_fail NAME [DIAGNOSTIC...]
t_fail()
{
	T_FAIL=$((T_FAIL + 1))
	echo "not ok - $1"
	shift
	[ $# -gt 0 ] && t_diag "$@"
	return 0
}

# t_ok NAME CMD...: passes when CMD exits 0
t_ok()
{
	local name=$1
	shift
	if "$@"; then
		t_pass "$name"
	else
		t_fail "$name" "command failed: $*"
	fi
}

# t_not NAME CMD...: passes when CMD exits non-zero
t_not()
{
	local name=$1
	shift
	if "$@"; then
		t_fail "$name" "command unexpectedly succeeded: $*"
	else
		t_pass "$name"
	fi
}

# t_is NAME GOT WANT
t_is()
{
	if [ "$2" = "$3" ]; then
		t_pass "$1"
	else
		t_fail "$1" "got:  '$2'" "want: '$3'"
	fi
}

# t_like NAME GOT ERE
t_like()
{
	if printf '%s\n' "$2" | grep -Eq -- "$3"; then
		t_pass "$1"
	else
		t_fail "$1" "got:  '$2'" "want match: /$3/"
	fi
}

# t_unlike NAME GOT ERE
t_unlike()
{
	if printf '%s\n' "$2" | grep -Eq -- "$3"; then
		t_fail "$1" "got:  '$2'" "want no match: /$3/"
	else
		t_pass "$1"
	fi
}

# t_ge NAME GOT MIN / t_le NAME GOT MAX: integer comparisons
t_ge()
{
	if [ "$2" -ge "$3" ] 2>/dev/null; then
		t_pass "$1"
	else
		t_fail "$1" "got:  '$2'" "want: >= $3"
	fi
}

t_le()
{
	if [ "$2" -le "$3" ] 2>/dev/null; then
		t_pass "$1"
	else
		t_fail "$1" "got:  '$2'" "want: <= $3"
	fi
}

# t_file_like NAME FILE ERE: some line of FILE matches (fails when FILE
# does not exist or cannot be read)
t_file_like()
{
	if [ ! -f "$2" ] || [ ! -r "$2" ]; then
		t_fail "$1" "missing evidence: '$2' does not exist or cannot be read"
	elif grep -Eq -- "$3" "$2"; then
		t_pass "$1"
	else
		t_fail "$1" "no line of $2 matches /$3/"
		t_diag "$(tail -n 15 "$2")"
	fi
}

# t_file_unlike NAME FILE ERE: no line of FILE matches; a file that does
# not exist or cannot be read is a failure, not a pass
t_file_unlike()
{
	local st
	if [ ! -f "$2" ] || [ ! -r "$2" ]; then
		t_fail "$1" "missing evidence: '$2' does not exist or cannot be read"
		return 0
	fi
	grep -Eq -- "$3" "$2"
	st=$?
	if [ "$st" -eq 0 ]; then
		t_fail "$1" "$2 has a line matching /$3/:" \
			"$(grep -E -m 3 -- "$3" "$2")"
	elif [ "$st" -eq 1 ]; then
		t_pass "$1"
	else
		t_fail "$1" "grep could not read $2 (status $st)"
	fi
}

# t_count FILE ERE: number of lines of FILE matching ERE; when FILE does not
# exist or cannot be read it prints "missing:FILE" (never a number, so no
# t_is/t_ge/t_le comparison passes on it) and returns 1
t_count()
{
	local n
	if [ ! -f "$1" ] || [ ! -r "$1" ]; then
		echo "missing:$1"
		return 1
	fi
	n=$(grep -Ec -- "$2" "$1")
	[ $? -le 1 ] || { echo "unreadable:$1"; return 1; }
	echo "${n:-0}"
}

# t_bail MESSAGE: stop the test now (the cleanup still runs)
t_bail()
{
	echo "Bail out! $*"
	T_FAIL=$((T_FAIL + 1))
	exit 1
}

# t_skip_all REASON: nothing can be tested here (exit 77 = skipped)
t_skip_all()
{
	echo "# SKIP $*"
	T_DONE=1
	exit 77
}

# t_need CMD...: skip the whole test when a tool is missing
t_need()
{
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || t_skip_all "$c not installed"
	done
}

# t_done: print the summary; the exit status says whether all passed.
t_done()
{
	T_DONE=1
	echo "# $T_NAME: $T_PASS passed, $T_FAIL failed"
	if [ "$T_FAIL" -gt 0 ] || [ "$T_PASS" -eq 0 ]; then
		exit 1
	fi
	exit 0
}

# t_track PID: kill PID at exit unless it is already gone
t_track()
{
	T_PIDS+=("$1")
}

t_untrack()
{
	local i
	for i in "${!T_PIDS[@]}"; do
		[ "${T_PIDS[$i]}" = "$1" ] && unset 'T_PIDS[$i]'
	done
	return 0
}

# t_at_exit CMD...: run CMD (one string, eval'd) at exit, before processes
# are killed; hooks run last registered first.
t_at_exit()
{
	T_HOOKS+=("$*")
}

# t_alive PID: running (an exited child that was not yet reaped is not);
# reads /proc so that it needs no procps
t_alive()
{
	local st
	kill -0 "$1" 2>/dev/null || return 1
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	st=${st##*) }
	case ${st%% *} in
	Z|X) return 1 ;;
	esac
	return 0
}

# t_kill_pid PID [TIMEOUT]: SIGTERM, wait up to TIMEOUT seconds (default 5),
# then SIGKILL. Returns 0 when it went away on SIGTERM, 1 when it needed
# SIGKILL. Reaps our own children.
t_kill_pid()
{
	local pid=$1 tmo=${2:-5} i
	t_alive "$pid" || { wait "$pid" 2>/dev/null; return 0; }
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < tmo * 10; i++)); do
		t_alive "$pid" || break
		sleep 0.1
	done
	if t_alive "$pid"; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		return 1
	fi
	wait "$pid" 2>/dev/null
	return 0
}

t_cleanup()
{
	local rc=$? i pid
	trap - EXIT INT TERM HUP
	for ((i = ${#T_HOOKS[@]} - 1; i >= 0; i--)); do
		eval "${T_HOOKS[$i]}" >/dev/null 2>&1
	done
	for pid in "${T_PIDS[@]}"; do
		t_kill_pid "$pid" 5
	done
	if [ "$T_DONE" -eq 0 ]; then
		echo "# $T_NAME: ended early (status $rc): $T_PASS passed, $T_FAIL failed"
		[ "$rc" -eq 0 ] && rc=1
	fi
	if [ -n "$T" ] && [ -d "$T" ]; then
		if [ "${OBM_KEEP_TMP:-0}" = 1 ]; then
			echo "# kept $T"
		else
			rm -rf "$T"
		fi
	fi
	exit "$rc"
}

# t_free_port: print a TCP port on 127.0.0.1 that nothing listens on and
# that this test has not handed out before. Ports come from 20000-32767,
# below Linux's ephemeral range, so that outgoing connections do not take
# them meanwhile.
t_free_port()
{
	local p i
	for ((i = 0; i < 200; i++)); do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % 12768))
		case $T_PORTS in
		*" $p "*) continue ;;
		esac
		t_port_listening "$p" && continue
		# nothing bound to it either (a connect would also tell a
		# listener elsewhere; /proc lists every bound TCP socket)
		t_port_bound "$p" && continue
		T_PORTS="$T_PORTS$p "
		echo "$p"
		return 0
	done
	t_bail "no free TCP port found"
}

# t_wait_until TIMEOUT CMD...: poll CMD every 0.1 s until it succeeds
t_wait_until()
{
	local tmo=$1 i
	shift
	for ((i = 0; i < tmo * 10; i++)); do
		"$@" 2>/dev/null && return 0
		sleep 0.1
	done
	"$@" 2>/dev/null
}

t_port_open()
{
	(exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null
}

# t_wait_socket PATH [TIMEOUT]
t_wait_socket()
{
	t_wait_until "${2:-10}" test -S "$1"
}

# t_port_listening PORT: some socket listens on TCP PORT (read from
# /proc, without connecting, so the listener sees no stray connection)
t_port_listening()
{
	local hex
	hex=$(printf '%04X' "$1")
	awk -v p=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { f = 1 }
		END { exit !f }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# t_port_bound PORT: some TCP socket uses PORT locally, in any state
t_port_bound()
{
	local hex
	hex=$(printf '%04X' "$1")
	awk -v p=":$hex" 'substr($2, length($2) - 4) == p { f = 1 }
		END { exit !f }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# t_unix_listening PATH: a process listens on the unix socket PATH (a
# stale socket file left by a dead process does not count)
t_unix_listening()
{
	awk -v p="$1" '$NF == p && $4 == "00010000" { f = 1 } END { exit !f }' \
		/proc/net/unix 2>/dev/null
}

# t_wait_port PORT [TIMEOUT]: until something listens on PORT
t_wait_port()
{
	t_wait_until "${2:-10}" t_port_listening "$1"
}

# t_wait_port_closed PORT [TIMEOUT]: until nothing listens on PORT
t_wait_port_closed()
{
	local tmo=${2:-10} i
	for ((i = 0; i < tmo * 10; i++)); do
		t_port_listening "$1" || return 0
		sleep 0.1
	done
	return 1
}

t_grep_q()
{
	[ -f "$1" ] && grep -Eq -- "$2" "$1"
}

# t_wait_log FILE ERE [TIMEOUT]: until a line of FILE matches
t_wait_log()
{
	t_wait_until "${3:-10}" t_grep_q "$1" "$2"
}

# t_json TEXT EXPR: a value of the JSON document TEXT, by a Python
# expression on d
t_json()
{
	printf '%s' "$1" | python3 -c "import json, sys; d = json.load(sys.stdin); print($2)"
}

t_count_ge()
{
	local n
	n=$(t_count "$1" "$2") || return 1
	[ "$n" -ge "$3" ]
}

# t_wait_log_count FILE ERE N [TIMEOUT]: until at least N lines match
t_wait_log_count()
{
	t_wait_until "${4:-10}" t_count_ge "$1" "$2" "$3"
}

# t_now: seconds since the epoch with decimals
t_now()
{
	date +%s.%N
}

# t_sleep_until EPOCH: sleep until the given time (decimal seconds)
t_sleep_until()
{
	local d
	d=$(awk -v t="$1" -v n="$(t_now)" 'BEGIN { d = t - n; printf "%.3f", (d > 0 ? d : 0) }')
	sleep "$d"
}

# t_after SECONDS [FROM]: the time SECONDS after FROM (default now)
t_after()
{
	awk -v t="${2:-$(t_now)}" -v s="$1" 'BEGIN { printf "%.3f", t + s }'
}
