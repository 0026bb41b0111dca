#!/bin/bash
# mx.sh - MX grouping end to end: a private Postfix with the milter, whose
# dns_server is a dnsmasq on loopback where acme.example has its MX at
# aspmx.l.google.com. One burst split between gmail.com (google by name)
# and acme.example (google by MX) tempfails the 11th recipient overall,
# while a domain without MX records keeps its own network; acme.example is
# asked of DNS once for all its recipients, the answer is cached in Redis
# and the grouping recorded. A second milter whose resolver never answers
# still lets its mail through, each recipient domain delayed once by at
# most dns_timeout_ms, and logs the failure once.
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
. "$OBM_SRCDIR/tests/lib/postfix.sh"
. "$OBM_SRCDIR/tests/lib/dns.sh"
t_need redis-server redis-cli postfix smtp-sink swaks
[ "$(id -u)" -eq 0 ] || t_skip_all "needs root for a private Postfix instance"
t_init e2e-mx

redis_start
dns_start local=/example/ \
	mx-host=acme.example,aspmx.l.google.com,10 \
	mx-host=acme.example,alt1.aspmx.l.google.com,20 \
	host-record=plain.example,192.0.2.25
dns_blackhole_start

# milter_conf NAME DNS_SERVER: the shared test configuration with MX
# grouping on and MX patterns for google
milter_conf()
{
	MC_SOCKET=unix:$T/$1.sock MC_WINDOW=60 MC_HOURLY=100 MC_EXTRA="
mx_grouping = true
mx_cache_ttl = 3600
dns_timeout_ms = 300
dns_server = \"$2\"
" milter_std_conf | sed 's|^network google { domains = {"gmail.com", "googlemail.com"} }$|network google { domains = {"gmail.com", "googlemail.com"}; mx = {"*.google.com"} }|' \
		>"$T/$1.conf"
	grep -q 'mx = {"\*.google.com"}' "$T/$1.conf" ||
		t_bail "milter_std_conf changed: no google network line to add mx patterns to"
}

milter_conf m "$DNS_SERVER"
milter_conf slow "$DNS_HOLE_SERVER"
"$OBM_MILTER" -t -c "$T/m.conf" >"$T/m-check.out" 2>&1
t_is "the configuration checks clean (outbound-milter -t)" "$?" 0
milter_start m "$T/m.conf" "unix:$T/m.sock"
milter_start slow "$T/slow.conf" "unix:$T/slow.sock"
mlog=$(milter_log m)
sink_start s
pf_setup a s "unix:$T/m.sock" tempfail
pf_add_port a slow "unix:$T/slow.sock" outbound tempfail
pf_start a
port=${PF_OUT[a]}
S=burst@example.com

# g1 c1 g2 c2 ... g5 c5: 10 recipients of network google, then c6, then
# a domain without MX records
to=$(for i in 1 2 3 4 5; do printf 'g%d@gmail.com,c%d@acme.example,' "$i" "$i"; done)
to="${to}c6@acme.example,p1@plain.example"

smtp_send "$T/m1.out" "$port" "$S" "$to" --header "X-Test-Id: m1"
t_is "message 1: swaks succeeds" "$?" 0
replies=$(smtp_rcpt_replies "$T/m1.out")
t_is "message 1: 5 gmail.com and 5 acme.example recipients get 250" \
	"$(grep -Ec '^(g[1-5]@gmail\.com|c[1-5]@acme\.example) 250 ' <<<"$replies")" 10
t_like "message 1: the 11th (c6@acme.example) gets 451 4.7.1 for network google" \
	"$(grep '^c6@acme.example ' <<<"$replies")" \
	'^c6@acme.example 451 4\.7\.1 Rate limit for network google reached: burst 10 per 60s \(rule per-sender\)'
t_like "message 1: plain.example (no MX) is its own network and passes" \
	"$(grep '^p1@plain.example ' <<<"$replies")" '^p1@plain.example 250 '
sink_wait_rcpts s 11 20
want=$( (for i in 1 2 3 4 5; do echo "g$i@gmail.com"; echo "c$i@acme.example"; done
	echo p1@plain.example) | sort)
t_is "message 1: the sink got the 10 accepted google recipients and plain.example" \
	"$(sink_rcpt_list s)" "$want"

# what reached the DNS server, and what Redis keeps
t_is "acme.example: one MX query for six recipients" "$(dns_queries acme.example)" 1
t_is "plain.example: one MX query" "$(dns_queries plain.example)" 1
t_is "gmail.com (google by name): no query" "$(dns_queries gmail.com)" 0
t_is "no address query for the domain without MX" "$(dns_queries plain.example A)" 0
t_is "network google holds 10 units of the sender" \
	"$(redis_zcard "obm:{google}:w:per-sender:$S")" 10
t_is "network plain.example holds 1 unit" \
	"$(redis_zcard "obm:{plain.example}:w:per-sender:$S")" 1
t_is "Redis caches acme.example's MX hosts, best first" \
	"$(rcli get 'obm:{mx:acme.example}')" "mx aspmx.l.google.com alt1.aspmx.l.google.com"
ttl=$(rcli ttl 'obm:{mx:acme.example}')
t_ok "the cached MX answer has a TTL of at most mx_cache_ttl ($ttl)" \
	test "$ttl" -gt 3500 -a "$ttl" -le 3600
t_is "Redis caches plain.example as having no MX" "$(rcli get 'obm:{mx:plain.example}')" none
ttl=$(rcli ttl 'obm:{mx:plain.example}')
t_ok "the negative answer lives at most 300 s ($ttl)" test "$ttl" -gt 0 -a "$ttl" -le 300
t_is "acme.example is recorded as grouped into google" \
	"$(rcli zrange 'obm:{mx}:net:google' 0 -1)" acme.example
ttl=$(rcli ttl 'obm:{mx}:net:google')
t_ok "the record of grouped domains has a TTL ($ttl)" test "$ttl" -gt 0
t_file_like "the milter logs the grouping" "$mlog" \
	'mx lookup acme.example: network google \(mx aspmx.l.google.com\)'

# the same burst window, acme.example only: still google's limit, from cache
smtp_send "$T/m2.out" "$port" "$S" c7@acme.example --header "X-Test-Id: m2"
t_like "message 2: acme.example alone is refused by google's burst" \
	"$(smtp_rcpt_replies "$T/m2.out")" '^c7@acme.example 451 4\.7\.1 .*network google'
t_is "message 2: answered from the cache, no new query" "$(dns_queries acme.example)" 1

# a resolver that never answers: mail flows, each domain waits once
slowport=${PF_PORT[a/slow]}
slog=$(milter_log slow)
S2=slow@example.com
start=$(t_now)
smtp_send "$T/s1.out" "$slowport" "$S2" "x1@slow.example,x2@slow.example,x3@other.example" \
	--header "X-Test-Id: s1"
t_is "black hole resolver: swaks succeeds" "$?" 0
end=$(t_now)
t_is "black hole resolver: all 3 recipients get 250" \
	"$(smtp_rcpt_replies "$T/s1.out" | grep -c ' 250 ')" 3
t_is "black hole resolver: slow.example logged once, with the fallback network" \
	"$(t_count "$slog" 'mx lookup slow\.example: no answer within 300 ms .*using network slow\.example')" 1
t_file_like "black hole resolver: other.example logged too" "$slog" \
	'mx lookup other\.example: no answer within 300 ms'
t_is "black hole resolver: units on the fallback network" \
	"$(redis_zcard "obm:{slow.example}:w:per-sender:$S2")" 2
secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
t_diag "black hole resolver: the SMTP transaction with 2 domains took $secs s"
t_ok "black hole resolver: the transaction took less than 3 s (2 lookups of 0.3 s)" \
	awk -v a="$start" -v b="$end" 'BEGIN { exit !(b - a < 3) }'
t_is "black hole resolver: the failure is not cached in Redis" \
	"$(rcli exists 'obm:{mx:slow.example}')" 0
smtp_send "$T/s2.out" "$slowport" "$S2" "x4@slow.example" --header "X-Test-Id: s2"
t_is "black hole resolver: a second message is not logged again" \
	"$(t_count "$slog" 'mx lookup slow\.example: ')" 1

sink_wait_rcpts s 15 20
pf_wait_empty a 20
t_is "the Postfix queue is empty (nothing deferred or bounced)" "$(pf_queue_count a)" 0

pf_stop a
milter_stop m
milter_stop slow
dns_blackhole_stop
dns_stop
t_done
