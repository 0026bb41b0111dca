#!/bin/bash
# sasl.sh - real SMTP AUTH through Postfix: who is limited, blocked and
# exempt when the client authenticated, and what the null sender <> is.
#
# One private Postfix relaying to smtp-sink, with
#  - a SASL port (Cyrus SASL, sasldb made here, PLAIN and LOGIN): not
#    ORIGINATING, and Postfix lets only authenticated clients relay there,
#    so its mail is outbound for the milter only because the client
#    authenticated;
#  - the plain inbound port, which is outbound only for clients from
#    127.0.0.2 (outbound_networks = 127.0.0.2/32, the "trusted network";
#    swaks --local-interface 127.0.0.2); from 127.0.0.1 it is inbound.
# The milter: one rule per-sender, burst 3 per 60 s (hourly 100), so the
# 4th recipient of one identity on one network gets 451 4.7.1;
# exempt_senders alerts@example.com, bulk.example, svc@example.com;
# spam-risk is rejected (550 5.7.1) so that a block is seen in the reply.
#
# Each case gives 4 recipients on one network (or 1 for the blocks):
#  0. the set-up itself: AUTH with the right password 235, with a wrong one
#     535; unauthenticated relay on the SASL port refused by Postfix (554);
#     unauthenticated mail to a relay domain on the SASL port is inbound
#     (4 of 4 accepted, no class header); <> from 127.0.0.1 on the inbound
#     port is inbound too
#  1. control: user carol sending as carol@example.com is limited as
#     "carol" (3 + 451, window obm:{google}:w:per-sender:carol, personal)
#  2. user alice sending as <> is limited as "alice" the same way, counted
#     and classified like any mail (known=0, velocity=3), and those units
#     count against alice's other mail
#  3. blocked user bob sending as <> is spam-risk: 550 5.7.1 (control: bob
#     as bob@example.com; a block on an envelope address applies to the
#     user who sends as it, erin as shared@example.com)
#  4. user frank sending as an exempt address (alerts@example.com, a
#     bulk.example address) is limited as "frank"; control: the exempt
#     login svc@example.com stays exempt whatever it sends as
#  5. unauthenticated from the trusted network: alerts@example.com and
#     news@bulk.example stay exempt; ops@example.com is limited (control)
#  6. unauthenticated <> from the trusted network is limited by its client
#     address (window obm:{google}:w:per-sender:127.0.0.2)
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
. "$OBM_SRCDIR/tests/lib/postfix.sh"
t_init e2e-sasl

# every tool is a requirement: missing, the test fails (make check
# installs them through contrib/install-deps)
for c in redis-server redis-cli postfix postconf postqueue smtp-sink swaks saslpasswd2 \
	sasldblistusers2 python3; do
	command -v "$c" >/dev/null 2>&1 || t_bail "$c is not installed (contrib/install-deps)"
done
[ "$(id -u)" -eq 0 ] || t_bail "needs root for a private Postfix instance"
CTL=$OBM_BUILD/outboundctl
[ -x "$CTL" ] || t_bail "$CTL is missing (make)"

RULE='burst 3 per 60s \(rule per-sender\)'
redis_start
MC_SOCKET=unix:$T/milter.sock MC_OUTBOUND_NETWORKS='"127.0.0.2/32"' \
	MC_EXEMPT_SENDERS='"alerts@example.com", "bulk.example", "svc@example.com"' \
	MC_HOURLY=100 MC_BURST=3 MC_WINDOW=60 MC_CLASSIFY='	header_detail = true' \
	MC_CLASSES='class personal { action = tag }
class bulk { action = tag }
class "spam-risk" { action = reject }' milter_std_conf >"$T/m.conf"
milter_start m "$T/m.conf" "unix:$T/milter.sock"
mlog=$(milter_log m)
sink_start s
pf_setup a s "unix:$T/milter.sock" tempfail "relay_domains = partner.example"
pf_add_sasl_port a sasl "unix:$T/milter.sock" alice:pw-alice bob:pw-bob carol:pw-carol \
	erin:pw-erin frank:pw-frank svc@example.com:pw-svc
pf_start a
SASL=${PF_PORT[a/sasl]}
IN=${PF_IN[a]}
maillog=$(pf_maillog a)

# ctl ARGS...: outboundctl with the milter's configuration; output in $OUT
ctl()
{
	OUT=$("$CTL" -c "$T/m.conf" "$@" 2>&1)
}

# auth USER: the swaks options of a SASL login (the password is pw-USER)
auth()
{
	printf '%s\n' --auth PLAIN --auth-user "$1" --auth-password "pw-${1%%@*}"
}

# send_auth ID USER FROM TO: send ID on the SASL port logged in as USER
send_auth()
{
	local id=$1 user=$2 from=$3 to=$4 opts
	mapfile -t opts < <(auth "$user")
	smtp_send_id "$id" "$SASL" "$from" "$to" "${opts[@]}"
}

# trusted ID FROM TO: send ID unauthenticated on the inbound port from 127.0.0.2
trusted()
{
	smtp_send_id "$1" "$IN" "$2" "$3" --local-interface 127.0.0.2
}

# four PREFIX DOMAIN: PREFIX1@DOMAIN,...,PREFIX4@DOMAIN
four()
{
	echo "${1}1@$2,${1}2@$2,${1}3@$2,${1}4@$2"
}

# t_auth_ok ID USER: the transcript of ID shows the AUTH accepted
t_auth_ok()
{
	t_like "$1: AUTH as $2 accepted (235)" \
		"$(grep -m1 -E '^(<-|<\*\*) +(235|535|454) ' "$T/$1.out")" '^<-  235 2\.7\.0 '
}

# t_limited ID NET PREFIX DOMAIN: 3 of the 4 recipients get 250, the 4th
# the milter's 451 4.7.1 for network NET; the sink got exactly those 3
t_limited()
{
	local id=$1 net=$2 p=$3 dom=$4 r
	r=$(smtp_rcpt_replies "$T/$id.out")
	t_is "$id: the first 3 recipients get 250" \
		"$(grep -Ec "^${p}[123]@$dom 250 " <<<"$r")" 3
	t_like "$id: the 4th gets 451 4.7.1 from the rate limit" \
		"$(grep "^${p}4@$dom " <<<"$r")" \
		"^${p}4@$dom 451 4\.7\.1 Rate limit for network $net reached: $RULE"
	t_is "$id: the sink got the 3 accepted recipients" "$(sink_rcpts_of "$id")" \
		"$(printf '%s\n' "${p}1@$dom" "${p}2@$dom" "${p}3@$dom")"
}

# t_unlimited ID PREFIX DOMAIN: all 4 recipients get 250 and are delivered
t_unlimited()
{
	local id=$1 p=$2 dom=$3
	t_is "$id: all 4 recipients get 250" \
		"$(smtp_rcpt_replies "$T/$id.out" | grep -Ec "^${p}[1-4]@$dom 250 ")" 4
	t_is "$id: the sink got all 4" "$(sink_rcpts_of "$id")" \
		"$(printf '%s\n' "${p}1@$dom" "${p}2@$dom" "${p}3@$dom" "${p}4@$dom")"
}

# sink_rcpts_of ID: recipients of message ID at the sink, sorted (waits
# for it)
sink_rcpts_of()
{
	local f
	t_wait_until 20 sink_has s "$1"
	f=$(sink_file_by_id s "$1")
	[ -n "$f" ] || { echo "(not delivered)"; return 0; }
	sed -n 's/^X-Rcpt-Args: *<\{0,1\}\([^ >]*\).*/\1/p' "$f" | sort
}

# window RULE NET SCOPE: units in that rate window
window()
{
	redis_zcard "obm:{$2}:w:$1:$3"
}

t_diag "sasldb users: $(sasldblistusers2 -f "$(pf_conf a)/sasl/sasldb2" 2>&1 | paste -sd' ')"

# ---- 0. the set-up --------------------------------------------------------------
qid=$(send_auth c0-auth carol carol@example.com friend@partner.example)
t_like "0: AUTH PLAIN with the sasldb password succeeds" \
	"$(grep -m1 -E '^(<-|<\*\*) +(235|535|454) ' "$T/c0-auth.out")" \
	'^<-  235 2\.7\.0 Authentication successful'
if [ -z "$qid" ]; then
	t_diag "$(cat "$T/c0-auth.out")" "$(grep -i sasl "$maillog" | tail -n 10)"
	t_bail "SMTP AUTH through Cyrus SASL does not work: nothing else can be tested"
fi
t_file_like "0: Postfix logs the SASL login on the message" "$maillog" \
	"$qid: client=[^ ]*\[127\.0\.0\.1\], sasl_method=PLAIN, sasl_username=carol$"
t_like "0: the milter sees the login as the sender identity" "$(milter_decision "$mlog" "$qid")" \
	'^class=personal action=tag sender=carol client=127\.0\.0\.1 rcpts=1 '
smtp_send "$T/c0-bad.out" "$SASL" carol@example.com u1@gmail.com \
	--auth LOGIN --auth-user carol --auth-password wrong
t_like "0: AUTH LOGIN with a wrong password is refused (535)" \
	"$(grep -m1 -E '^(<-|<\*\*) +(235|535|454) ' "$T/c0-bad.out")" '^<\*\* +535 5\.7\.8 '
t_file_like "0: Postfix logs the failed login" "$maillog" \
	'SASL LOGIN authentication failed: .*sasl_username=carol'
smtp_send_id c0-relay "$SASL" carol@example.com u1@gmail.com >/dev/null
t_like "0: unauthenticated relay on the SASL port: Postfix says 554 5.7.1" \
	"$(smtp_rcpt_replies "$T/c0-relay.out")" '^u1@gmail.com 554 5\.7\.1 .*Relay access denied'
qid=$(smtp_send_id c0-unauth "$SASL" someone@example.org "$(four p partner.example)")
t_like "0: unauthenticated mail to a relay domain on the SASL port is queued" "$qid" '^[0-9A-F]+$'
t_unlimited c0-unauth p partner.example
t_is "0: ... it is inbound for the milter: no class header" "$(sink_class s c0-unauth)" ""
t_is "0: ... and no decision line" "$(grep -c "$qid: class=" "$mlog")" 0
smtp_send_id c0-in-null "$IN" '<>' "$(four in gmail.com)" >/dev/null
t_unlimited c0-in-null in gmail.com
t_is "0: <> from 127.0.0.1 on the inbound port is inbound: no class header" \
	"$(sink_class s c0-in-null)" ""

# ---- 1. control: an authenticated user with its own address ---------------------
qid=$(send_auth c1-carol carol carol@example.com "$(four c gmail.com)")
t_like "1: carol's message is queued" "$qid" '^[0-9A-F]+$'
t_limited c1-carol google c gmail.com
t_is "1: carol's window is the login's: 3 units" "$(window per-sender google carol)" 3
t_is "1: no window for the envelope address" \
	"$(redis_keys 'obm:*:w:*:carol@example.com')" ""
t_is "1: delivered as personal" "$(sink_class s c1-carol)" \
	"personal; rcpts=3; known=0; velocity=4"

# ---- 2. an authenticated user sending as <> ---------------------------------------
qid=$(send_auth c2-alice-null alice '<>' "$(four n gmail.com)")
t_like "2: alice's <> message is queued" "$qid" '^[0-9A-F]+$'
t_file_like "2: Postfix logs alice's login on it" "$maillog" \
	"$qid: client=[^ ]*\[127\.0\.0\.1\], sasl_method=PLAIN, sasl_username=alice$"
t_limited c2-alice-null google n gmail.com
t_is "2: the <> units are in alice's window" "$(window per-sender google alice)" 3
t_is "2: delivered as personal, recipients looked up and counted" \
	"$(sink_class s c2-alice-null)" "personal; rcpts=3; known=0; velocity=3"
t_like "2: decision line names alice" "$(milter_decision "$mlog" "$qid")" \
	'^class=personal action=tag sender=alice client=127\.0\.0\.1 rcpts=3 known=0 velocity=3 tempfailed=1 '
ctl sender alice --json
t_is "2: outboundctl sender alice: its window on google" \
	"$(t_json "$OUT" "[(l['network'], l['rule'], l['burst']['used'], l['burst']['limit']) for l in d['limits']]" 2>&1)" \
	"[('google', 'per-sender', 3, 3)]"
t_is "2: outboundctl sender alice: velocity" "$(t_json "$OUT" "d['velocity']" 2>&1)" 3
# the same user with an address right after: the window is full
send_auth c2-alice-addr alice alice@example.com "n5@gmail.com,y1@yahoo.com" >/dev/null
r=$(smtp_rcpt_replies "$T/c2-alice-addr.out")
t_like "2: alice's next gmail.com recipient, from her address, gets 451" \
	"$(grep '^n5@gmail.com ' <<<"$r")" "^n5@gmail.com 451 4\.7\.1 Rate limit for network google reached: $RULE"
t_like "2: ... while yahoo.com passes" "$(grep '^y1@yahoo.com ' <<<"$r")" '^y1@yahoo.com 250 '
t_auth_ok c2-alice-addr alice

# ---- 3. blocks --------------------------------------------------------------------
ctl block bob --reason "compromised account"
t_like "3: outboundctl block bob" "$OUT" '^bob: blocked'
t_is "3: the block is in Redis" "$(rcli exists 'obm:{s:bob}:block')" 1
send_auth c3-bob-addr bob bob@example.com friend@partner.example >/dev/null
t_auth_ok c3-bob-addr bob
t_like "3: control: blocked bob as bob@example.com is refused 550 5.7.1 (blocked)" \
	"$(smtp_data_reply "$T/c3-bob-addr.out")" '^550 5\.7\.1 Message classified spam-risk \(blocked\)'
qid=$(send_auth c3-bob-null bob '<>' friend@partner.example)
t_auth_ok c3-bob-null bob
t_like "3: blocked bob as <> is refused 550 5.7.1 (blocked)" \
	"$(smtp_data_reply "$T/c3-bob-null.out")" '^550 5\.7\.1 Message classified spam-risk \(blocked\)'
[ -n "$qid" ] && t_diag "bob's <> message was queued as $qid: $(milter_decision "$mlog" "$qid")"
ctl block shared@example.com
t_like "3: outboundctl block shared@example.com" "$OUT" '^shared@example.com: blocked'
send_auth c3-erin-shared erin shared@example.com friend@partner.example >/dev/null
t_like "3: erin sending as the blocked shared@example.com is refused 550 5.7.1" \
	"$(smtp_data_reply "$T/c3-erin-shared.out")" '^550 5\.7\.1 Message classified spam-risk \(blocked\)'
qid=$(send_auth c3-erin-own erin erin@example.com friend@partner.example)
t_like "3: control: erin as erin@example.com is queued" "$qid" '^[0-9A-F]+$'
t_is "3: ... and delivered as personal" "$(sink_class s c3-erin-own)" \
	"personal; rcpts=1; known=0; velocity=1"

# ---- 4. an authenticated user borrowing an exempt envelope sender ------------------
qid=$(send_auth c4-frank-alerts frank alerts@example.com "$(four f gmail.com)")
t_like "4: frank's message as alerts@example.com is queued" "$qid" '^[0-9A-F]+$'
t_auth_ok c4-frank-alerts frank
t_limited c4-frank-alerts google f gmail.com
t_is "4: the units are frank's" "$(window per-sender google frank)" 3
t_is "4: no window for alerts@example.com" \
	"$(redis_keys 'obm:*:w:*:alerts@example.com')" ""
qid=$(send_auth c4-frank-bulk frank news@bulk.example "$(four f yahoo.com)")
t_like "4: frank's message as news@bulk.example (exempt domain) is queued" "$qid" '^[0-9A-F]+$'
t_limited c4-frank-bulk yahoo f yahoo.com
t_is "4: the yahoo units are frank's" "$(window per-sender yahoo frank)" 3
qid=$(send_auth c4-svc svc@example.com other@example.net "$(four s gmail.com)")
t_like "4: control: the exempt login svc@example.com (as other@example.net) is queued" \
	"$qid" '^[0-9A-F]+$'
t_auth_ok c4-svc svc@example.com
t_unlimited c4-svc s gmail.com
t_is "4: control: no window for the exempt login" \
	"$(redis_keys 'obm:*:w:*:svc@example.com')" ""
t_like "4: control: decision line names the login and limited=no" "$(milter_decision "$mlog" "$qid")" \
	'^class=personal action=tag sender=svc@example\.com client=127\.0\.0\.1 rcpts=4 .* limited=no$'

# ---- 5. unauthenticated, trusted network -----------------------------------------
qid=$(trusted c5-ops ops@example.com "$(four o gmail.com)")
t_like "5: control: ops@example.com from 127.0.0.2 is queued" "$qid" '^[0-9A-F]+$'
t_limited c5-ops google o gmail.com
t_is "5: control: ops@example.com's window" "$(window per-sender google ops@example.com)" 3
t_like "5: control: it is outbound (classified, client 127.0.0.2)" "$(milter_decision "$mlog" "$qid")" \
	'^class=personal action=tag sender=ops@example\.com client=127\.0\.0\.2 rcpts=3 '
qid=$(trusted c5-alerts alerts@example.com "$(four a gmail.com)")
t_like "5: alerts@example.com from 127.0.0.2 is queued" "$qid" '^[0-9A-F]+$'
t_unlimited c5-alerts a gmail.com
t_is "5: alerts@example.com is outbound: classified" "$(sink_class s c5-alerts)" \
	"personal; rcpts=4; known=0; velocity=4"
t_like "5: decision line: alerts@example.com from 127.0.0.2, limited=no" "$(milter_decision "$mlog" "$qid")" \
	'^class=personal action=tag sender=alerts@example\.com client=127\.0\.0\.2 rcpts=4 .* limited=no$'
qid=$(trusted c5-bulk news@bulk.example "$(four b yahoo.com)")
t_like "5: news@bulk.example from 127.0.0.2 is queued" "$qid" '^[0-9A-F]+$'
t_unlimited c5-bulk b yahoo.com
t_is "5: no window for the exempt senders" \
	"$(redis_keys 'obm:*:w:*:alerts@example.com'; redis_keys 'obm:*:w:*:news@bulk.example')" ""

# ---- 6. unauthenticated <> from the trusted network -------------------------------
qid=$(trusted c6-null '<>' "$(four z gmail.com)")
t_like "6: <> from 127.0.0.2 is queued" "$qid" '^[0-9A-F]+$'
t_limited c6-null google z gmail.com
t_is "6: the units are the client address's" "$(window per-sender google 127.0.0.2)" 3
t_is "6: no window named <>" "$(redis_keys 'obm:*:w:*:<>')" ""
t_is "6: delivered as personal, counted" "$(sink_class s c6-null)" \
	"personal; rcpts=3; known=0; velocity=3"

# ---- what arrived -----------------------------------------------------------------
pf_wait_empty a 20
t_is "the Postfix queue is empty" "$(pf_queue_count a)" 0
for id in c3-bob-addr c3-bob-null c3-erin-shared; do
	t_is "$id: the refused message did not reach the sink" "$(sink_file_by_id s "$id")" ""
done

pf_stop a
milter_stop m
t_done
