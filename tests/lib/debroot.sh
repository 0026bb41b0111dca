# debroot.sh - a stock Debian 12 root for tests that install and run the
# product the way an administrator would: a debootstrap --variant=minbase
# bookworm base built once and cached outside the clone, a fresh copy of
# it per test in a temporary folder, commands run in it by chroot either
# with the host's network (apt) or in the root's own network namespace
# (so that its stock ports 25, 587 and 6379 never meet the host's), a
# small syslog listener standing in for journald, and one cleanup that
# kills every process of the root by PID, unmounts everything and removes
# the folder.
#
# Usage (as root; common.sh sourced and t_init called first, or not: the
# cleanup then runs from an EXIT trap of its own):
#	. "$OBM_SRCDIR/tests/lib/debroot.sh"
#	dr_need				# skip the test (exit 77) when it cannot run
#	dr_new				# DR_ROOT, DR_NS: a fresh root, lo up
#	dr_apt install postfix		# apt-get -y in the root, host network
#	dr_syslog			# /dev/log -> $DR_ROOT/var/log/syslog
#	dr_ns service redis-server start	# in the root and its namespace
#	dr_netns swaks --server 127.0.0.1:25 ...	# a host program in the namespace
#
# Functions (the interface; kept stable):
#	dr_need			skip the whole test (t_skip_all, or exit 77)
#				unless run as root with debootstrap, chroot,
#				ip (netns), nsenter, flock and python3
#	dr_base			build the cached base once (under a lock, so
#				that tests started together wait for one
#				build); prints its path. dr_new calls it.
#	dr_new			a fresh root from the base in a new temporary
#				folder: sets DR_ROOT (the folder) and DR_NS
#				(its network namespace, loopback up), mounts
#				/proc and a minimal /dev (tmpfs: null, zero,
#				full, random, urandom, tty, fd links),
#				installs a policy-rc.d that refuses every
#				service start during apt (exit 101), registers
#				dr_cleanup to run at exit. One root per shell.
#	dr_run CMD...		CMD in the root (chroot) with the host network,
#				a clean environment (PATH, HOME=/root,
#				LANG=C.UTF-8, DEBIAN_FRONTEND=noninteractive)
#	dr_ns CMD...		the same in the root's network namespace
#	dr_netns CMD...		a host program (not chrooted) in the root's
#				network namespace: swaks, smtp-sink, redis-cli
#				of the host against the root's services
#	dr_apt ARGS...		apt-get -y -q ARGS in the root (host network),
#				its /var/cache/apt/archives bind-mounted from
#				the persistent archive cache for the duration
#				(one apt at a time across tests: a lock); when
#				it fails on stale package lists it runs
#				apt-get update and tries once more
#	dr_syslog [FILE]	a syslog listener (python3 on the host) on the
#				root's /dev/log writing one line per message
#				("YYYY-mm-ddTHH:MM:SS TAG[PID]: TEXT") to
#				FILE, default $DR_ROOT/var/log/syslog; sets
#				DR_SYSLOG (the file) and DR_SYSLOG_PID. Start
#				it before the daemons: they connect to
#				/dev/log once (Postfix before its chroot).
#	dr_pids			PIDs of the root: processes whose root
#				directory is DR_ROOT or below it (Postfix's
#				own chroot) or that are in DR_NS
#	dr_port_listening PORT	something listens on TCP PORT in DR_NS
#	dr_wait_port PORT [TMO]	until it does (default 20 s)
#	dr_cleanup		kill every process of the root (SIGTERM, then
#				SIGKILL after 5 s), stop the syslog listener,
#				unmount everything below DR_ROOT, delete the
#				namespace and the folder (never while a mount
#				is left). Idempotent.
#
# Environment:
#	OBM_DEBROOT_CACHE	cache folder (default /var/cache/outbound-milter-tests):
#				base-SUITE-ARCH/ (the base), apt-archives/
#				(downloaded .debs, kept across runs),
#				debootstrap-debs/, and the lock files.
#				Remove it to start cold.
#	OBM_DEBROOT_SUITE	default bookworm
#	OBM_DEBROOT_MIRROR	default http://deb.debian.org/debian
#	OBM_DEBROOT_SECURITY	default http://deb.debian.org/debian-security
#	OBM_DEBROOT_TMPDIR	where fresh roots go (default /var/tmp)
#	OBM_KEEP_TMP=1		keep the root's folder (processes are still
#				killed and mounts removed)

set -u

DR_CACHE=${OBM_DEBROOT_CACHE:-/var/cache/outbound-milter-tests}
DR_SUITE=${OBM_DEBROOT_SUITE:-bookworm}
DR_MIRROR=${OBM_DEBROOT_MIRROR:-http://deb.debian.org/debian}
DR_SECURITY=${OBM_DEBROOT_SECURITY:-http://deb.debian.org/debian-security}
DR_ARCH=$(dpkg --print-architecture 2>/dev/null || echo amd64)
DR_ROOT=""
DR_NS=""
DR_SYSLOG=""
DR_SYSLOG_PID=""
DR_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

_dr_say()
{
	echo "# debroot: $*"
}

_dr_skip()
{
	if declare -F t_skip_all >/dev/null; then
		t_skip_all "$*"
	fi
	echo "# SKIP $*"
	exit 77
}

dr_need()
{
	local c
	[ "$(id -u)" -eq 0 ] || _dr_skip "needs root (chroot, mounts, network namespaces)"
	for c in debootstrap chroot ip nsenter flock python3 mount umount; do
		command -v "$c" >/dev/null 2>&1 || _dr_skip "$c not installed"
	done
	ip netns list >/dev/null 2>&1 || _dr_skip "ip netns does not work here"
}

# _dr_mount ROOT: /proc and a minimal /dev
_dr_mount()
{
	local r=$1
	mkdir -p "$r/proc" "$r/dev"
	mountpoint -q "$r/proc" || mount -t proc proc "$r/proc" || return 1
	mountpoint -q "$r/dev" && return 0
	mount -t tmpfs -o mode=0755,size=1m,nosuid dev "$r/dev" || return 1
	mknod -m 0666 "$r/dev/null" c 1 3
	mknod -m 0666 "$r/dev/zero" c 1 5
	mknod -m 0666 "$r/dev/full" c 1 7
	mknod -m 0666 "$r/dev/random" c 1 8
	mknod -m 0666 "$r/dev/urandom" c 1 9
	mknod -m 0666 "$r/dev/tty" c 5 0
	mkdir -p "$r/dev/pts" "$r/dev/shm"
	chmod 1777 "$r/dev/shm"
	ln -s /proc/self/fd "$r/dev/fd"
	ln -s /proc/self/fd/0 "$r/dev/stdin"
	ln -s /proc/self/fd/1 "$r/dev/stdout"
	ln -s /proc/self/fd/2 "$r/dev/stderr"
}

# _dr_mounts ROOT: mount points at or below ROOT, deepest first
_dr_mounts()
{
	awk -v r="$1" '{ p = $5; gsub(/\\040/, " ", p)
		if (p == r || index(p, r "/") == 1) print length(p), p }' \
		/proc/self/mountinfo | sort -rn | cut -d' ' -f2-
}

# _dr_umount ROOT: unmount everything below ROOT; fails if any remains
_dr_umount()
{
	local m i
	for i in 1 2 3; do
		while IFS= read -r m; do
			[ -n "$m" ] && { umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; }
		done <<<"$(_dr_mounts "$1")"
		[ -z "$(_dr_mounts "$1")" ] && return 0
		sleep 0.5
	done
	return 1
}

# _dr_chroot ROOT CMD...: chroot with a clean environment
_dr_chroot()
{
	local r=$1
	shift
	chroot "$r" /usr/bin/env -i PATH="$DR_PATH" HOME=/root LANG=C.UTF-8 \
		TERM=dumb DEBIAN_FRONTEND=noninteractive "$@"
}

_dr_sources()
{
	cat <<EOF
deb $DR_MIRROR $DR_SUITE main
deb $DR_MIRROR $DR_SUITE-updates main
deb $DR_SECURITY $DR_SUITE-security main
EOF
}

dr_base()
{
	local base=$DR_CACHE/base-$DR_SUITE-$DR_ARCH fd rc t0
	mkdir -p "$DR_CACHE/apt-archives/partial" "$DR_CACHE/debootstrap-debs" || return 1
	if [ -f "$base.ok" ]; then
		echo "$base"
		return 0
	fi
	exec {fd}>"$DR_CACHE/base.lock"
	if ! flock -w 1800 "$fd"; then
		exec {fd}>&-
		echo "debroot: timed out waiting for $DR_CACHE/base.lock" >&2
		return 1
	fi
	if [ ! -f "$base.ok" ]; then
		t0=$(date +%s)
		_dr_say "building the $DR_SUITE base in $base (once; cached)" >&2
		rm -rf "$base.tmp"
		debootstrap --variant=minbase --arch="$DR_ARCH" \
			--cache-dir="$DR_CACHE/debootstrap-debs" \
			"$DR_SUITE" "$base.tmp" "$DR_MIRROR" >"$DR_CACHE/debootstrap.log" 2>&1
		rc=$?
		if [ "$rc" -eq 0 ]; then
			_dr_sources >"$base.tmp/etc/apt/sources.list"
			cp /etc/resolv.conf "$base.tmp/etc/resolv.conf" 2>/dev/null
			_dr_mount "$base.tmp" &&
				_dr_chroot "$base.tmp" apt-get -q update >>"$DR_CACHE/debootstrap.log" 2>&1
			rc=$?
			_dr_chroot "$base.tmp" apt-get clean >/dev/null 2>&1
			_dr_umount "$base.tmp" || rc=1
		fi
		if [ "$rc" -ne 0 ]; then
			echo "debroot: building the base failed; see $DR_CACHE/debootstrap.log" >&2
			tail -n 20 "$DR_CACHE/debootstrap.log" >&2
			[ -z "$(_dr_mounts "$base.tmp")" ] && rm -rf "$base.tmp"
			exec {fd}>&-
			return 1
		fi
		rm -rf "$base"
		mv "$base.tmp" "$base" && touch "$base.ok"
		_dr_say "base built in $(($(date +%s) - t0)) s" >&2
	fi
	exec {fd}>&-
	echo "$base"
}

dr_new()
{
	local base
	if [ -n "$DR_ROOT" ]; then
		echo "debroot: dr_new: a root already exists ($DR_ROOT)" >&2
		return 1
	fi
	base=$(dr_base) || return 1
	DR_ROOT=$(mktemp -d "${OBM_DEBROOT_TMPDIR:-/var/tmp}/obm-debroot.XXXXXX") || return 1
	# registered first thing, so that a failure below still cleans up
	if declare -F t_at_exit >/dev/null; then
		t_at_exit dr_cleanup
	else
		trap dr_cleanup EXIT
	fi
	chmod 0755 "$DR_ROOT"
	cp -a "$base/." "$DR_ROOT/" || return 1
	cp /etc/resolv.conf "$DR_ROOT/etc/resolv.conf" 2>/dev/null
	printf '#!/bin/sh\n# debroot: no service starts during apt\nexit 101\n' \
		>"$DR_ROOT/usr/sbin/policy-rc.d"
	chmod 0755 "$DR_ROOT/usr/sbin/policy-rc.d"
	_dr_mount "$DR_ROOT" || return 1
	DR_NS=obm-dr-$$-$RANDOM
	ip netns add "$DR_NS" || { DR_NS=""; return 1; }
	ip -n "$DR_NS" link set lo up || return 1
	_dr_say "root $DR_ROOT, network namespace $DR_NS"
}

dr_run()
{
	_dr_chroot "$DR_ROOT" "$@"
}

# nsenter, not ip netns exec: that one gives every command its own mount
# namespace, and a process of the root then no longer recognises another
# one's /proc/PID/exe (start-stop-daemon --exec, pidof fail)
dr_ns()
{
	nsenter --net="/run/netns/$DR_NS" chroot "$DR_ROOT" /usr/bin/env -i PATH="$DR_PATH" \
		HOME=/root LANG=C.UTF-8 TERM=dumb DEBIAN_FRONTEND=noninteractive "$@"
}

dr_netns()
{
	nsenter --net="/run/netns/$DR_NS" "$@"
}

dr_apt()
{
	local fd rc arch=$DR_ROOT/var/cache/apt/archives
	exec {fd}>"$DR_CACHE/apt.lock"
	flock -w 1800 "$fd" || { exec {fd}>&-; echo "debroot: apt lock timed out" >&2; return 1; }
	mkdir -p "$arch"
	mount --bind "$DR_CACHE/apt-archives" "$arch" || { exec {fd}>&-; return 1; }
	dr_run apt-get -y -q -o Dpkg::Use-Pty=0 "$@"
	rc=$?
	if [ "$rc" -ne 0 ]; then
		_dr_say "apt-get $* failed ($rc): apt-get update and once more"
		dr_run apt-get -q update && dr_run apt-get -y -q -o Dpkg::Use-Pty=0 "$@"
		rc=$?
	fi
	umount "$arch" || umount -l "$arch"
	exec {fd}>&-
	return "$rc"
}

dr_syslog()
{
	DR_SYSLOG=${1:-$DR_ROOT/var/log/syslog}
	rm -f "$DR_ROOT/dev/log"
	: >>"$DR_SYSLOG"
	python3 -u -c '
import os, socket, sys, time, re
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o666)
out = open(sys.argv[2], "a", buffering=1)
hdr = re.compile(r"^<\d+>(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d )?")
while True:
    d = s.recv(65536).decode("utf-8", "replace").rstrip("\n\0")
    out.write(time.strftime("%Y-%m-%dT%H:%M:%S ") + hdr.sub("", d, 1) + "\n")
' "$DR_ROOT/dev/log" "$DR_SYSLOG" </dev/null >/dev/null 2>&1 &
	DR_SYSLOG_PID=$!
	local i
	for ((i = 0; i < 50; i++)); do
		[ -S "$DR_ROOT/dev/log" ] && return 0
		sleep 0.1
	done
	echo "debroot: the syslog listener did not start" >&2
	return 1
}

dr_pids()
{
	local p r
	[ -n "$DR_ROOT" ] || return 0
	{
		[ -n "$DR_NS" ] && ip netns pids "$DR_NS" 2>/dev/null
		for p in /proc/[0-9]*; do
			r=$(readlink "$p/root" 2>/dev/null) || continue
			case $r in
			"$DR_ROOT" | "$DR_ROOT"/*) echo "${p#/proc/}" ;;
			esac
		done
	} | sort -un | grep -vx -e "$$" -e "${BASHPID:-$$}"
}

dr_port_listening()
{
	local hex
	hex=$(printf '%04X' "$1")
	nsenter --net="/run/netns/$DR_NS" awk -v p=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { f = 1 }
		END { exit !f }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

dr_wait_port()
{
	local i tmo=${2:-20}
	for ((i = 0; i < tmo * 10; i++)); do
		dr_port_listening "$1" && return 0
		sleep 0.1
	done
	return 1
}

dr_cleanup()
{
	local pids i
	[ -n "$DR_ROOT" ] || return 0
	pids=$(dr_pids)
	if [ -n "$pids" ]; then
		# shellcheck disable=SC2086
		kill -TERM $pids 2>/dev/null
		for ((i = 0; i < 50; i++)); do
			pids=$(dr_pids)
			[ -z "$pids" ] && break
			sleep 0.1
		done
		# shellcheck disable=SC2086
		[ -n "$pids" ] && kill -KILL $pids 2>/dev/null && sleep 0.3
	fi
	if [ -n "$DR_SYSLOG_PID" ]; then
		kill "$DR_SYSLOG_PID" 2>/dev/null
		wait "$DR_SYSLOG_PID" 2>/dev/null
		DR_SYSLOG_PID=""
	fi
	if ! _dr_umount "$DR_ROOT"; then
		echo "debroot: mounts left below $DR_ROOT, not removing it:" >&2
		_dr_mounts "$DR_ROOT" >&2
		return 1
	fi
	if [ -n "$DR_NS" ]; then
		ip netns del "$DR_NS" 2>/dev/null
		DR_NS=""
	fi
	if [ "${OBM_KEEP_TMP:-0}" = 1 ]; then
		echo "# kept $DR_ROOT"
	else
		rm -rf "$DR_ROOT"
	fi
	DR_ROOT=""
}
