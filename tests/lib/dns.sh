# dns.sh - a throwaway DNS server for one test: dnsmasq on 127.0.0.1 and a
# free port, answering only from the records the test gives it (no
# /etc/resolv.conf, no /etc/hosts, no upstream), logging every query to a
# file so that tests can count what reached it; a child process tracked
# by PID. Also a "black hole" resolver that reads queries and never
# answers (timeout tests).
#
#	dns_start RECORD...	start dnsmasq; sets DNS_PORT, DNS_PID, DNS_LOG and
#				DNS_SERVER ("127.0.0.1:PORT", for dns_server =)
#	dns_stop		stop it
#	dns_queries NAME [TYPE]	queries for NAME (of TYPE, default MX) so far
#	dns_blackhole_start	a UDP socket on 127.0.0.1 that drops every
#				query; sets DNS_HOLE_PORT, DNS_HOLE_PID,
#				DNS_HOLE_SERVER
#	dns_blackhole_stop
#
# RECORD is a dnsmasq option without its leading dashes, e.g.
#	mx-host=acme.example,aspmx.l.google.com,10
#	host-record=aonly.example,192.0.2.10
#	local=/example/		(answer NXDOMAIN/NODATA for the rest of .example)
#
# Needs common.sh sourced and t_init called first; dnsmasq from the Debian
# package dnsmasq-base (/usr/sbin/dnsmasq), python3 for the black hole.

DNS_PORT=0
DNS_PID=""
DNS_LOG=""
DNS_SERVER=""
DNS_HOLE_PORT=0
DNS_HOLE_PID=""
DNS_HOLE_SERVER=""
DNSMASQ=${DNSMASQ:-/usr/sbin/dnsmasq}

# dns_udp_port_bound PORT: some UDP socket uses PORT
dns_udp_port_bound()
{
	local hex
	hex=$(printf '%04X' "$1")
	awk -v p=":$hex" 'substr($2, length($2) - 4) == p { f = 1 }
		END { exit !f }' /proc/net/udp /proc/net/udp6 2>/dev/null
}

# dns_free_port: a port free for both TCP and UDP (dnsmasq binds both)
dns_free_port()
{
	local p i
	for ((i = 0; i < 50; i++)); do
		p=$(t_free_port)
		dns_udp_port_bound "$p" || { echo "$p"; return 0; }
	done
	t_bail "no free UDP port found"
}

dns_start()
{
	local args=() r i
	[ -x "$DNSMASQ" ] || t_skip_all "dnsmasq not installed (Debian package dnsmasq-base)"
	DNS_PORT=$(dns_free_port)
	DNS_LOG=$T/dnsmasq.log
	: >"$DNS_LOG"
	for r in "$@"; do
		args+=("--$r")
	done
	# -k: stay a child of this shell; -C /dev/null: no /etc/dnsmasq.conf;
	# no DHCP, no caching of anything, every query logged
	"$DNSMASQ" -k -C /dev/null --no-resolv --no-hosts --no-poll \
		--listen-address=127.0.0.1 --bind-interfaces --port="$DNS_PORT" \
		--pid-file="$T/dnsmasq.pid" --user=root --group=root \
		--cache-size=0 --log-queries --log-facility="$DNS_LOG" \
		"${args[@]}" </dev/null >"$T/dnsmasq.out" 2>&1 &
	DNS_PID=$!
	t_track "$DNS_PID"
	DNS_SERVER=127.0.0.1:$DNS_PORT
	for ((i = 0; i < 100; i++)); do
		if t_port_listening "$DNS_PORT" && grep -q 'started' "$DNS_LOG" 2>/dev/null; then
			return 0
		fi
		t_alive "$DNS_PID" || break
		sleep 0.05
	done
	t_diag "dnsmasq:" "$(cat "$T/dnsmasq.out" 2>/dev/null)" "$(tail -n 20 "$DNS_LOG" 2>/dev/null)"
	t_bail "dnsmasq did not start"
}

dns_stop()
{
	[ -n "$DNS_PID" ] || return 0
	t_kill_pid "$DNS_PID" 5
	t_untrack "$DNS_PID"
	DNS_PID=""
}

# dns_queries NAME [TYPE]: how many queries for NAME of TYPE reached dnsmasq
dns_queries()
{
	local n
	n=$(grep -Fc "query[${2:-MX}] $1 from " "$DNS_LOG" 2>/dev/null)
	echo "${n:-0}"
}

dns_blackhole_start()
{
	local i
	t_need python3
	DNS_HOLE_PORT=$(dns_free_port)
	python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
while True:
    s.recvfrom(65535)
' "$DNS_HOLE_PORT" </dev/null >"$T/blackhole.out" 2>&1 &
	DNS_HOLE_PID=$!
	t_track "$DNS_HOLE_PID"
	DNS_HOLE_SERVER=127.0.0.1:$DNS_HOLE_PORT
	for ((i = 0; i < 100; i++)); do
		dns_udp_port_bound "$DNS_HOLE_PORT" && return 0
		t_alive "$DNS_HOLE_PID" || break
		sleep 0.05
	done
	t_bail "the black hole resolver did not start: $(cat "$T/blackhole.out")"
}

dns_blackhole_stop()
{
	[ -n "$DNS_HOLE_PID" ] || return 0
	t_kill_pid "$DNS_HOLE_PID" 5
	t_untrack "$DNS_HOLE_PID"
	DNS_HOLE_PID=""
}
