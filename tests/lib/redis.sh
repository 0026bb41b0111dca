# redis.sh - a throwaway redis-server for one test: unix socket in the
# test's temporary folder (and optionally a TCP port on 127.0.0.1), no
# persistence, tracked by PID. It can be stopped and started again on the
# same socket and port to simulate an outage.
#
#	redis_start [--tcp]	start; sets REDIS_SOCK, REDIS_PORT (0: none), REDIS_PID
#	redis_stop		stop (SIGTERM, waits until the socket is gone)
#	redis_restart		start again on the same socket and port
#	rcli ARGS...		redis-cli on the socket, raw output
#	redis_keys PAT / redis_zcard KEY / redis_ok
#				checked reads: they fail when Redis does not answer
#
# Needs common.sh sourced and t_init called first.

REDIS_SOCK=""
REDIS_PORT=0
REDIS_PID=""
REDIS_LOG=""

redis_start()
{
	[ "${1:-}" = "--tcp" ] && REDIS_PORT=$(t_free_port)
	REDIS_SOCK=${REDIS_SOCK:-$T/redis.sock}
	REDIS_LOG=$T/redis.log
	redis_spawn
}

redis_spawn()
{
	local i opts=()
	rm -f "$REDIS_SOCK"
	# Redis 7 refuses DEBUG (DEBUG SLEEP simulates a stuck server) unless
	# it is enabled
	case $(redis-server --version 2>/dev/null) in
	*" v="[0-6].*) ;;
	*) opts+=(--enable-debug-command local) ;;
	esac
	redis-server --port "$REDIS_PORT" --bind 127.0.0.1 \
		--unixsocket "$REDIS_SOCK" --unixsocketperm 777 \
		--save '' --appendonly no --dir "$T" "${opts[@]}" \
		--logfile "$REDIS_LOG" --daemonize no </dev/null >/dev/null 2>&1 &
	REDIS_PID=$!
	t_track "$REDIS_PID"
	for ((i = 0; i < 100; i++)); do
		if [ -S "$REDIS_SOCK" ] &&
		   [ "$(redis-cli -s "$REDIS_SOCK" ping 2>/dev/null)" = PONG ]; then
			return 0
		fi
		t_alive "$REDIS_PID" || break
		sleep 0.1
	done
	t_diag "$(tail -n 20 "$REDIS_LOG" 2>/dev/null)"
	t_bail "redis-server did not start"
}

redis_stop()
{
	[ -n "$REDIS_PID" ] || return 0
	t_kill_pid "$REDIS_PID" 5
	t_untrack "$REDIS_PID"
	REDIS_PID=""
	t_wait_until 5 test ! -S "$REDIS_SOCK"
	rm -f "$REDIS_SOCK"
	if [ "$REDIS_PORT" != 0 ]; then
		t_wait_port_closed "$REDIS_PORT" 5
	fi
	return 0
}

redis_restart()
{
	redis_stop
	redis_spawn
}

rcli()
{
	redis-cli -s "$REDIS_SOCK" "$@"
}

# redis_zcard KEY: members of a sorted set (0 when it does not exist);
# "redis-unreachable" (never a number) and status 1 when Redis did not answer
redis_zcard()
{
	local out
	if ! out=$(rcli zcard "$1" 2>&1) || ! [[ $out =~ ^[0-9]+$ ]]; then
		echo "redis_zcard $1: Redis did not answer: $out" >&2
		echo "redis-unreachable"
		return 1
	fi
	echo "$out"
}

# redis_keys PATTERN: matching keys, one per line, sorted. When Redis does
# not answer (the scan fails) it prints "redis-unreachable" instead, so that
# neither an "" nor a "| wc -l" = 0 comparison passes, and returns 1.
redis_keys()
{
	local out
	if ! out=$(rcli --scan --pattern "$1" 2>&1); then
		echo "redis_keys $1: Redis did not answer: $out" >&2
		echo "redis-unreachable"
		return 1
	fi
	[ -n "$out" ] && printf '%s\n' "$out" | sort
	return 0
}

# redis_ok: Redis answers PING (use before a check that reads "no key" as
# good news)
redis_ok()
{
	[ "$(rcli ping 2>/dev/null)" = PONG ]
}
