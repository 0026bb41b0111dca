#!/bin/bash
# ops.sh - the operations view of real traffic: a private Postfix with the
# milter relays to smtp-sink, and outboundctl reads what the milter wrote
# to Redis (no hand-written keys). Personal tag, bulk tag, spam-risk hold;
# per-sender limit burst 10 per 60 s.
#  1. a scripted mix: 3 personal messages, 2 bulk ones (imported
#     relationships, List-Unsubscribe), 2 spam-risk ones (held), and a
#     burst of 13 gmail.com recipients of which 3 are tempfailed (it is
#     bulk: 3 bulk messages in all); then
#     stats --json, sender --json, log and metrics report exactly that
#  2. top in tmux shows the network, class and sender rows, quits on q
#  3. a second MTA with its own milter process on the same Redis: after
#     outboundctl block, the sender's very next message there is held
#  4. a longer run (about 300 messages from 60 senders with smtp-source,
#     tempfails and aborted transactions among them): every key in Redis
#     has a TTL except the decision log and blocks set without --ttl
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
. "$OBM_SRCDIR/tests/lib/postfix.sh"
t_need redis-server redis-cli postfix smtp-sink smtp-source swaks python3
[ "$(id -u)" -eq 0 ] || t_skip_all "needs root for a private Postfix instance"
t_init e2e-ops

CTL=$OBM_BUILD/outboundctl
[ -x "$CTL" ] || t_bail "$CTL is missing (make $OBM_BUILD/outboundctl)"

# the counters are per UTC hour: do not start right before the hour turns
left=$((3600 - $(date +%s) % 3600))
if [ "$left" -lt 150 ]; then
	t_diag "waiting ${left}s for the next hour bucket"
	sleep $((left + 2))
fi
HOUR=$(date -u +%Y%m%d%H)

redis_start
mport=$(t_free_port)
classes='class personal { action = tag }
class bulk { action = tag }
class "spam-risk" { action = hold }'
MC_CLASSES=$classes MC_LOCAL_DOMAINS='"example.com"' MC_HOURLY=1000 MC_BURST=10 MC_WINDOW=60 \
	MC_SOCKET=unix:$T/m1.sock milter_std_conf >"$T/m1.conf"
MC_CLASSES=$classes MC_LOCAL_DOMAINS='"example.com"' MC_HOURLY=1000 MC_BURST=10 MC_WINDOW=60 \
	MC_SOCKET=inet:$mport@127.0.0.1 milter_std_conf >"$T/m2.conf"
milter_start m1 "$T/m1.conf" "unix:$T/m1.sock"
sink_start s
pf_setup a s "unix:$T/m1.sock" tempfail
pf_start a
OUT_A=${PF_OUT[a]}

# ctl ARGS...: outboundctl with the milter's configuration; sets RC, OUT
ctl()
{
	"$CTL" -c "$T/m1.conf" "$@" >"$T/ctl.out" 2>"$T/ctl.err"
	RC=$?
	OUT=$(cat "$T/ctl.out")
}

# queue_gone MTA QID: the message left the queue (delivered)
queue_gone()
{
	[ -z "$(pf_queue_name "$1" "$2")" ]
}

# list PREFIX N DOMAIN: PREFIX1@DOMAIN,...,PREFIXN@DOMAIN
list()
{
	local i
	for ((i = 1; i <= $2; i++)); do
		printf '%s%d@%s\n' "$1" "$i" "$3"
	done | paste -sd,
}

# ---- 1. the scripted mix ---------------------------------------------------------

P=pers@example.com
for id in 1 2 3; do
	case $id in
	1) to=friend1@partner.example ;;
	2) to=friend2@partner.example ;;
	3) to=friend3@yahoo.com ;;
	esac
	qid=$(smtp_send_id "personal$id" "$OUT_A" "$P" "$to")
	t_like "personal $id: queued" "$qid" '^[0-9A-F]+$'
done

NEWS=news@example.com
subs="$(list g 5 gmail.com),$(list y 5 yahoo.com)"
tr ',' '\n' <<<"$subs" >"$T/subs.txt"
ctl rel import "$NEWS" "$T/subs.txt"
t_is "bulk: relationships imported" "$RC" 0
for id in 1 2; do
	qid=$(smtp_send_id "bulk$id" "$OUT_A" "$NEWS" "$subs" \
		--header 'List-Unsubscribe: <mailto:unsub@example.com>' \
		--header "From: News <$NEWS>")
	t_like "bulk $id: queued" "$qid" '^[0-9A-F]+$'
done

RISKY=risky@example.com
for id in 1 2; do
	# two networks: 12 on one would go over the burst limit of 10
	qid=$(smtp_send_id "risky$id" "$OUT_A" "$RISKY" "$(list "r" 6 "example$id.net")")
	t_like "spam-risk $id: queued" "$qid" '^[0-9A-F]+$'
	t_is "spam-risk $id: on hold" "$(pf_queue_name a "$qid")" hold
done

BURST=burst@example.com
burst_to=$(list b 13 gmail.com)
tr ',' '\n' <<<"$burst_to" >"$T/burst.txt"
ctl rel import "$BURST" "$T/burst.txt"
BQID=$(smtp_send_id burst "$OUT_A" "$BURST" "$burst_to" \
	--header 'List-Unsubscribe: <mailto:unsub@example.com>' --header "From: <$BURST>")
t_like "burst: queued" "$BQID" '^[0-9A-F]+$'
replies=$(smtp_rcpt_replies "$T/burst.out")
t_is "burst: 10 recipients accepted" "$(grep -c ' 250 ' <<<"$replies")" 10
t_is "burst: 3 tempfailed with 451 4.7.1" "$(grep -c ' 451 4\.7\.1 ' <<<"$replies")" 3

# counters are written with the end of each transaction: all there now
ctl stats --json
t_is "stats --json: exit 0" "$RC" 0
t_is "stats --json: the hour bucket" "$(t_json "$OUT" "d['hour']")" "$HOUR"
t_is "stats --json: messages and recipients per class" \
	"$(t_json "$OUT" "' '.join('%s=%d/%d' % (k, v['messages'], v['recipients']) for k, v in d['classes'].items())")" \
	"personal=3/3 bulk=3/30 spam-risk=2/12 unknown=0/0"
t_is "stats --json: actions" \
	"$(t_json "$OUT" "' '.join('%s=%d' % kv for kv in d['actions'].items())")" \
	"accept=0 tag=6 hold=2 tempfail=0 reject=0"
t_is "stats --json: networks accepted/tempfailed" \
	"$(t_json "$OUT" "' '.join('%s=%d/%d' % (n['network'], n['accepted'], n['tempfailed']) for n in d['networks'])")" \
	"google=20/3 yahoo=11/0 example1.net=6/0 example2.net=6/0 partner.example=2/0"
t_is "stats --json: google at its burst limit" \
	"$(t_json "$OUT" "[(l['rule'], l['burst']['used'], l['burst']['limit']) for n in d['networks'] if n['network'] == 'google' for l in n['limits']]")" \
	"[('per-sender', 10, 10)]"
t_is "stats --json: top senders" \
	"$(t_json "$OUT" "' '.join('%s=%d' % (s['sender'], s['recipients']) for s in d['top_senders'])")" \
	"news@example.com=20 risky@example.com=12 burst@example.com=10 pers@example.com=3"

ctl sender BURST+x@Example.COM --json
t_is "sender --json: exit 0" "$RC" 0
t_is "sender --json burst: this hour" \
	"$(t_json "$OUT" "[d['this_hour'][k] for k in ('messages', 'sent', 'recipients', 'held', 'refused', 'tempfailed')]")" \
	"[1, 1, 10, 0, 0, 3]"
t_is "sender --json burst: class and network" \
	"$(t_json "$OUT" "(d['this_hour']['classes']['bulk'], d['this_hour']['networks'], d['last_24h']['recipients'])")" \
	"(1, {'google': 10}, 10)"
t_is "sender --json burst: velocity" "$(t_json "$OUT" "d['velocity']")" 10
t_is "sender --json burst: its window on google" \
	"$(t_json "$OUT" "[(l['network'], l['rule'], l['hourly']['used'], l['hourly']['limit'], l['burst']['used']) for l in d['limits']]")" \
	"[('google', 'per-sender', 10, 1000, 10)]"
t_is "sender --json burst: decisions (3 tempfails, then the message)" \
	"$(t_json "$OUT" "' '.join(e['type'] + ':' + e['qid'] for e in d['decisions'])")" \
	"tempfail:$BQID tempfail:$BQID tempfail:$BQID message:$BQID"
ctl sender "$RISKY" --json
t_is "sender --json risky: held and sent" \
	"$(t_json "$OUT" "[d['this_hour'][k] for k in ('messages', 'sent', 'recipients', 'held')] + [d['this_hour']['classes']['spam-risk'], d['this_hour']['networks']]")" \
	"[2, 2, 12, 2, 2, {'example1.net': 6, 'example2.net': 6}]"
ctl sender "$P" --json
t_is "sender --json personal: networks" \
	"$(t_json "$OUT" "(d['this_hour']['messages'], d['this_hour']['classes']['personal'], d['this_hour']['networks'])")" \
	"(3, 3, {'partner.example': 2, 'yahoo': 1})"

ctl log --json
t_is "log --json: 8 message entries" "$(t_json "$OUT" "sum(e['type'] == 'message' for e in d)")" 8
t_is "log --json: 3 tempfail entries" "$(t_json "$OUT" "sum(e['type'] == 'tempfail' for e in d)")" 3
ctl log --queue-id "$BQID"
t_like "log --queue-id: a tempfail line" "$OUT" \
	" $BQID tempfail sender=burst@example.com client=127\.0\.0\.1 rcpt=b1[123]@gmail\.com network=google rule=per-sender limit=burst used=10/10 window=60s mode=enforce"
t_like "log --queue-id: the decision line" "$OUT" \
	" $BQID class=bulk action=tag sender=burst@example.com client=127\.0\.0\.1 rcpts=10 known=10 velocity=10 tempfailed=3 networks=google:10 mode=enforce reasons="
ctl log --class spam-risk
t_is "log --class spam-risk: the two held messages" "$(grep -c 'action=hold' <<<"$OUT")" 2

ctl metrics
t_is "metrics: exit 0" "$RC" 0
for want in 'outbound_milter_up 1' \
	'outbound_milter_messages_hour{class="personal"} 3' \
	'outbound_milter_messages_hour{class="bulk"} 3' \
	'outbound_milter_messages_hour{class="spam-risk"} 2' \
	'outbound_milter_recipients_hour{class="bulk"} 30' \
	'outbound_milter_recipients_hour{class="spam-risk"} 12' \
	'outbound_milter_actions_hour{action="tag",mode="enforce"} 6' \
	'outbound_milter_actions_hour{action="hold",mode="enforce"} 2' \
	'outbound_milter_network_recipients_hour{network="google",result="accepted"} 20' \
	'outbound_milter_network_recipients_hour{network="google",result="tempfailed"} 3' \
	'outbound_milter_network_recipients_hour{network="yahoo",result="accepted"} 11' \
	'outbound_milter_top_sender_recipients_hour{sender="news@example.com"} 20' \
	'outbound_milter_top_sender_recipients_hour{sender="burst@example.com"} 10' \
	'outbound_milter_log_entries 11'; do
	if grep -qxF -- "$want" <<<"$OUT"; then
		t_pass "metrics: $want"
	else
		t_fail "metrics: $want" "$(grep -F "${want%% *}" <<<"$OUT")"
	fi
done
t_is "metrics: no duplicate series" "$(grep -v '^#' <<<"$OUT" | sed 's/ [^ ]*$//' | sort | uniq -d)" ""

# ---- 2. top in tmux ---------------------------------------------------------------

if command -v tmux >/dev/null 2>&1; then
	TMUX_SOCK="obm-e2e-ops-$$"
	t_at_exit "tmux -L '$TMUX_SOCK' kill-server; rm -f '/tmp/tmux-$(id -u)/$TMUX_SOCK'"
	printf '#!/bin/bash\n%q -c %q top --interval 1\necho "top exited $?"\nsleep 30\n' \
		"$CTL" "$T/m1.conf" >"$T/top.sh"
	chmod +x "$T/top.sh"
	pane() { tmux -L "$TMUX_SOCK" capture-pane -p; }
	pane_has() { pane | grep -Eq -- "$1"; }
	tmux -L "$TMUX_SOCK" new-session -d -x 220 -y 50 "$T/top.sh"
	t_wait_until 10 pane_has 'RECENT TEMPFAILS'
	t_like "top: the google row" "$(pane)" \
		'^  google +20 +3 +per-sender +\[#?-+\] +10/1000 +[0-9]+/10 '
	t_like "top: the classes" "$(pane)" \
		'personal 3/3  bulk 3/30  spam-risk 2/12  unknown 0/0'
	t_like "top: the busiest sender first" "$(pane)" '^  news@example\.com +20$'
	t_like "top: a recent tempfail" "$(pane)" \
		"$BQID tempfail sender=burst@example\.com .* limit=burst used=10/10"
	tmux -L "$TMUX_SOCK" send-keys q
	t_wait_until 5 pane_has 'top exited'
	t_like "top: q quits, exit 0" "$(pane)" 'top exited 0'
	tmux -L "$TMUX_SOCK" kill-server
else
	t_fail "top in tmux" "tmux is not installed (apt-get install tmux)"
fi

# ---- 3. block on one milter stops the sender on another ---------------------------

milter_start m2 "$T/m2.conf" "inet:$mport@127.0.0.1"
pf_setup b s "inet:127.0.0.1:$mport" tempfail
pf_start b
V=victim@example.com
qid=$(smtp_send_id victim1 "${PF_OUT[b]}" "$V" friend@partner.example)
t_like "victim: delivered through MTA b before the block" "$qid" '^[0-9A-F]+$'
t_wait_until 10 queue_gone b "$qid"
t_is "victim: delivered before the block" "$(pf_queue_name b "$qid")" ""
ctl block "$V" --reason "compromised at 3 a.m." --ttl 1h
t_is "block: exit 0" "$RC" 0
qid=$(smtp_send_id victim2 "${PF_OUT[b]}" "$V" friend@partner.example)
t_is "block: the next message through the other milter is held" "$(pf_queue_name b "$qid")" hold
ctl log --sender "$V" --count 1
t_like "block: its decision says blocked" "$OUT" \
	" $qid class=spam-risk action=hold sender=$V .* reasons=blocked$"
qid=$(smtp_send_id victim3 "$OUT_A" "$V" friend@partner.example)
t_is "block: held through the first milter too" "$(pf_queue_name a "$qid")" hold
ctl sender "$V"
t_like "sender: the block, its reason and TTL" "$OUT" \
	'block: +blocked \(reason: compromised at 3 a\.m\.\), expires in (59m[0-9]{2}s|1h00m)'
ctl unblock "$V"
qid=$(smtp_send_id victim4 "${PF_OUT[b]}" "$V" friend@partner.example)
t_wait_until 10 queue_gone b "$qid"
t_is "unblock: delivered again" "$(pf_queue_name b "$qid")" ""

# ---- 4. a longer run: every key that grows with traffic has a TTL --------------------

ctl block forever@example.com
# load K ARGS...: smtp-source as sender loadK@example.com, in the background
load()
{
	local k=$1
	shift
	timeout -k 5 90 smtp-source -N -s 1 -f "load$k@example.com" "$@" "127.0.0.1:$OUT_A" \
		>"$T/load$k.out" 2>&1 &
	pids+=($!)
}
nets=(gmail.com yahoo.com example.org "[192.0.2.9]")
pids=()
# 40 senders with 6 one-recipient messages and 10 with 3 three-recipient
# ones: under the burst limit (10 per 60 s); 5 with one 6-recipient
# message (held); 5 that try 12 recipients at once: smtp-source gives up
# at the first 451, so those transactions end in an abort
for k in $(seq 1 60); do
	net=${nets[$((k % 4))]}
	if [ "$k" -le 40 ]; then
		load "$k" -m 6 -r 1 -t "u@$net"
	elif [ "$k" -le 50 ]; then
		load "$k" -m 3 -r 3 -t "u@$net"
	elif [ "$k" -le 55 ]; then
		load "$k" -m 1 -r 6 -t "u@$net"
	else
		load "$k" -m 1 -r 12 -t "u@$net"
	fi
	if [ $((k % 10)) -eq 0 ]; then
		for p in "${pids[@]}"; do
			wait "$p"
		done
		pids=()
	fi
done
t_is "long run: the over-limit senders gave up at a 451" \
	"$(cat "$T"/load5[6-9].out "$T/load60.out" | grep -c 'recipient rejected: 451 4\.7\.1')" 5
ctl stats --json
# 8 + 4 messages before, 40 * 6 + 10 * 3 + 5 now
t_is "long run: every message counted" "$(t_json "$OUT" "d['messages']")" 287
# 3 before, and one 451 for each of the 5 aborted transactions
t_is "long run: every tempfail counted, aborted transactions too" \
	"$(t_json "$OUT" "sum(n['tempfailed'] for n in d['networks'])")" 8
keys=$(rcli --scan --pattern '*' | sort)
t_ge "long run: keys to look at" "$(grep -c . <<<"$keys")" 50
no_ttl=""
while IFS= read -r key; do
	[ -n "$key" ] || continue
	ttl=$(rcli ttl "$key")
	if [ "$ttl" -lt 0 ] 2>/dev/null; then
		no_ttl="$no_ttl$key "
	fi
done <<<"$keys"
t_is "long run: every key has a TTL except the log and a block without --ttl" \
	"$no_ttl" "obm:{log} obm:{s:forever@example.com}:block "
t_le "long run: the hour counters live 8 days" "$(rcli ttl "obm:{stats}:h:$HOUR")" $((8 * 86400))
t_ge "long run: the hour counters live about 8 days" "$(rcli ttl "obm:{stats}:h:$HOUR")" \
	$((8 * 86400 - 7200))

pf_stop a
pf_stop b
milter_stop m1
milter_stop m2
t_done
