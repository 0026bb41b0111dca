#!/bin/bash
# signals.sh - SIGHUP and SIGTERM under load (20 SMTP sessions through a
# private Postfix, milter_default_action = tempfail).
#   1. SIGHUP with a valid new configuration (the class header renamed):
#      logged as reloaded; messages started after the reload carry the new
#      header; mail keeps flowing.
#   2. SIGHUP with a broken configuration: refused with FILE:LINE in the
#      log, the daemon keeps running on the configuration it had.
#   3. SIGTERM: the daemon exits within 5 s, status 0; afterwards Postfix
#      tempfails; no message is lost: sent = delivered + tempfailed, and
#      every delivered message went through the milter.
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
. "$OBM_SRCDIR/tests/lib/postfix.sh"
. "$OBM_SRCDIR/tests/faults/lib/faults.bash"
t_need redis-server redis-cli postfix smtp-sink perl
[ "$(id -u)" -eq 0 ] || t_skip_all "needs root for a private Postfix instance"
t_init faults-signals

H_OLD=X-Outbound-Class
H_NEW=X-Obm-Reloaded

redis_start
MC_SOCKET=unix:$T/milter.sock
faults_conf >"$T/m.conf"
milter_start m "$T/m.conf" "$MC_SOCKET"
mpid=${MILTER_PID[m]}
mlog=$(milter_log m)
sink_start s
pf_setup a s "$MC_SOCKET" tempfail
pf_start a

# install NEW as the configuration file in one step
conf_install()
{
	cp "$1" "$T/m.conf.tmp" && mv -f "$T/m.conf.tmp" "$T/m.conf"
}

# sink_id_headers NAME: "ID HEADER" per delivered message, HEADER being the
# class header it carries (old, new, both or none)
sink_id_headers()
{
	find "${SINK_DIR[$1]}" -type f -print0 | xargs -0 -r awk -v o="$H_OLD" -v n="$H_NEW" '
		FNR == 1 { id = ""; ho = 0; hn = 0; done = 0 }
		done { next }
		{ sub(/\r$/, "") }
		/^$/ { done = 1; print id, (ho && hn ? "both" : ho ? "old" : hn ? "new" : "none"); next }
		tolower($0) ~ "^" tolower(o) ":" { ho = 1 }
		tolower($0) ~ "^" tolower(n) ":" { hn = 1 }
		/^X-Test-Id:/ { id = $2 }'
}

load_start L --port "${PF_OUT[a]}" --sessions 20 --messages 100000 --rcpts 1,3,10 \
	--retry-pause 100
load_wait_progress L 300 60 || t_fail "300 messages before the first SIGHUP"

# 1. valid new configuration
MC_CLASSIFY="header = \"$H_NEW\"" faults_conf >"$T/new.conf"
conf_install "$T/new.conf"
kill -HUP "$mpid"
t_wait_log "$mlog" 'configuration .* reloaded' 10
t_reloaded=$(t_now)
t_file_like "SIGHUP, valid file: reloaded" "$mlog" "configuration $T/m.conf reloaded"
t_ok "SIGHUP, valid file: the daemon runs on" t_alive "$mpid"
n=$(load_progress L)
load_wait_progress L $((n + 300)) 60 || t_fail "mail flows after the reload"

# 2. broken configuration
{
	cat "$T/new.conf"
	echo 'limit broken { scope = nobody; hourly = -5 }'
} >"$T/broken.conf"
bad_line=$(wc -l <"$T/broken.conf")
conf_install "$T/broken.conf"
kill -HUP "$mpid"
t_wait_log "$mlog" 'reload of .* refused' 10
t_refused=$(t_now)
t_file_like "SIGHUP, broken file: refused and logged" "$mlog" \
	"reload of $T/m.conf refused"
t_file_like "SIGHUP, broken file: the error names FILE:LINE" "$mlog" "$T/m.conf:$bad_line:"
t_ok "SIGHUP, broken file: the daemon runs on" t_alive "$mpid"
n=$(load_progress L)
load_wait_progress L $((n + 300)) 60 || t_fail "mail flows after the refused reload"
conf_install "$T/new.conf"

# 3. SIGTERM under load
t_term=$(t_now)
kill -TERM "$mpid"
for ((i = 0; i < 100; i++)); do
	t_alive "$mpid" || break
	sleep 0.05
done
t_gone=$(t_now)
if t_alive "$mpid"; then
	t_fail "SIGTERM under load: exits within 5 s"
	kill -KILL "$mpid"
	wait "$mpid"
else
	wait "$mpid"
	st=$?
	t_is "SIGTERM under load: exit status 0" "$st" 0
fi
t_untrack "$mpid"
unset 'MILTER_PID[m]'
exit_s=$(awk -v a="$t_term" -v b="$t_gone" 'BEGIN { printf "%.2f", b - a }')
fig "signals: SIGTERM under load: the milter exited after $exit_s s"
t_ok "SIGTERM under load: exits within 5 s ($exit_s s)" \
	awk -v x="$exit_s" 'BEGIN { exit !(x <= 5) }'
t_file_like "SIGTERM: the stop is logged" "$mlog" 'stopped'
t_file_unlike "no sanitizer report" "$mlog" '(Address|Leak|Undefined|Thread)Sanitizer|runtime error:'

# Postfix tempfails while no milter runs; then stop the load
sleep 2
load_stop L
load_wait L 120
pf_wait_settled a 60 || t_fail "Postfix delivered everything within 60 s"
account signals L s a

# which configuration each delivered message saw
sink_id_headers s >"$T/id-headers"
started_ms()
{
	awk -v t="$1" 'BEGIN { printf "%.0f", t * 1000 }'
}
rl=$(started_ms "$t_reloaded")
cat "$T/load-L"/result.* | awk -v t="$rl" '$10 == "delivered" && $11 > t + 200 { print $1 }' |
	sort >"$T/after-reload"
t_is "every delivered message carries exactly one class header" \
	"$(awk '$2 != "old" && $2 != "new"' "$T/id-headers" | wc -l)" 0
t_ge "messages delivered after the reload" "$(wc -l <"$T/after-reload")" 1
t_is "messages started after the reload carry the new header" \
	"$(join "$T/after-reload" <(sort "$T/id-headers") | awk '$2 != "new"' | wc -l)" 0
t_ge "messages before the reload carry the old header" \
	"$(awk '$2 == "old"' "$T/id-headers" | wc -l)" 1
term_ms=$(started_ms "$t_term")
gone_ms=$(started_ms "$t_gone")
t_is "nothing that started after the milter was gone was accepted" \
	"$(load_get L delivered --from $((gone_ms + 100)))" 0
fig "signals: messages around SIGTERM: $(load_get L messages --from "$term_ms" --to \
	$((gone_ms + 2000))) sent from SIGTERM to 2 s after the exit," \
	"$(load_get L delivered --from "$term_ms") of them delivered"
fig "signals: reload at $(awk -v a="$t_reloaded" -v b="$t_refused" \
	'BEGIN { printf "%.1f", b - a }') s before the refused one; messages delivered with the" \
	"old header $(awk '$2 == "old"' "$T/id-headers" | wc -l), with the new one" \
	"$(awk '$2 == "new"' "$T/id-headers" | wc -l)"
redis_schema_check signals

pf_stop a
t_done
