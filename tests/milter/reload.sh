#!/bin/bash
# reload.sh - configuration check and reload: -t accepts a good file and
# reports FILE:LINE for a bad one; SIGHUP installs a new configuration
# (the rate history is kept: the limit is not in the key), a transaction
# in flight finishes under the configuration it started with, and a bad
# file is refused while the old configuration stays in force.
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
t_need miltertest redis-server redis-cli
t_init reload

redis_start
MC_SOCKET=unix:$T/milter.sock
conf=$T/m.conf
MC_BURST=10 milter_std_conf >"$T/conf-10"
MC_BURST=12 milter_std_conf >"$T/conf-12"
MC_BURST=12 MC_MODE=monitor milter_std_conf >"$T/conf-12-monitor"
# a broken file: valid up to an out-of-range burst on a known line
{
	MC_BURST=5 milter_std_conf | sed 's/^mode = .*/mode = enforce/'
	echo 'limit broken {'
	echo '	burst = -3'
	echo '}'
} >"$T/conf-bad"
badline=$(grep -n 'burst = -3' "$T/conf-bad" | cut -d: -f1)

# -t: configuration check
out=$("$OBM_MILTER" -t -c "$T/conf-10" 2>&1)
t_is "-t on a good file exits 0" "$?" 0
out=$("$OBM_MILTER" -t -c "$T/conf-bad" 2>&1)
rc=$?
t_is "-t on a bad file exits 1" "$rc" 1
t_like "-t reports FILE:LINE of the bad value (file with comments)" "$out" \
	"^$T/conf-bad:$badline: "
grep -v '^#' "$T/conf-bad" >"$T/conf-bad-nc"
badline=$(grep -n 'burst = -3' "$T/conf-bad-nc" | cut -d: -f1)
out=$("$OBM_MILTER" -t -c "$T/conf-bad-nc" 2>&1)
t_like "-t reports FILE:LINE of the bad value (file without comments)" "$out" \
	"^$T/conf-bad-nc:$badline: "
printf 'socket = "unix:%s/x.sock"\nno_such_option = 1\n' "$T" >"$T/conf-unknown"
out=$("$OBM_MILTER" -t -c "$T/conf-unknown" 2>&1)
rc=$?
t_is "-t on an unknown option exits 1" "$rc" 1
t_like "-t names the file and line of the unknown option" "$out" "$T/conf-unknown:2:"

cp "$T/conf-10" "$conf"
milter_start m "$conf" "$MC_SOCKET"

mt_run reload "$OBM_SRCDIR/tests/milter/reload.lua" "sock=$MC_SOCKET" \
	"mlog=$(milter_log m)" "conf=$conf" "tdir=$T" "mpid=${MILTER_PID[m]}"

t_ok "milter still running after the reloads" t_alive "${MILTER_PID[m]}"
milter_stop m
t_done
