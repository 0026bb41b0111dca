#!/bin/bash
# classify.sh - classification end to end through a private Postfix
# relaying to smtp-sink; personal tag, bulk tag, spam-risk hold;
# local_domains example.com; outbound = the submission port
# (ORIGINATING), the other port is inbound. Asserted on what the sink
# received, on postqueue -j, on Postfix's log and on the milter's
# decision lines:
#  1. one recipient, no list headers: delivered with X-Outbound-Class: personal
#  2. 20 recipients nobody knows, no List-Unsubscribe: in the hold queue,
#     reasons rcpt-count,unknown-recipients,no-unsubscribe,no-one-click
#     (Postfix does not log a milter's hold reason: the reasons are checked
#     in the decision line and the held message's header)
#  3. the same 20 imported with outboundctl rel import, List-Unsubscribe
#     and an aligned From: delivered as bulk
#  4. inbound mail from bob@partner.example to alice@example.com on the
#     inbound port; alice's reply to bob is personal with known=1
#  5. a forged X-Outbound-Class header is replaced by ours
#  6. a blocked sender's message is held with reason blocked; after
#     outboundctl unblock the next one passes
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
. "$OBM_SRCDIR/tests/lib/postfix.sh"
t_need redis-server redis-cli postfix smtp-sink swaks postcat
[ "$(id -u)" -eq 0 ] || t_skip_all "needs root for a private Postfix instance"
t_init e2e-classify

CTL=$OBM_BUILD/outboundctl
redis_start
MC_SOCKET=unix:$T/milter.sock MC_OUTBOUND_NETWORKS='"192.0.2.0/24"' \
	MC_LOCAL_DOMAINS='"example.com"' MC_HOURLY=1000 MC_BURST=100 \
	MC_CLASSES='class personal { action = tag }
class bulk { action = tag }
class "spam-risk" { action = hold }' milter_std_conf >"$T/m.conf"
milter_start m "$T/m.conf" "unix:$T/milter.sock"
mlog=$(milter_log m)
sink_start s
pf_setup a s "unix:$T/milter.sock" tempfail
pf_start a
OUT=${PF_OUT[a]}
IN=${PF_IN[a]}
maillog=$(pf_maillog a)

# ctl ARGS...: outboundctl with the milter's configuration; output in
# $T/ctl.out, status returned
ctl()
{
	if [ ! -x "$CTL" ]; then
		echo "$CTL not built" >"$T/ctl.out"
		return 127
	fi
	"$CTL" -c "$T/m.conf" "$@" >"$T/ctl.out" 2>&1
}

# 1. personal
qid=$(smtp_send_id row1 "$OUT" personal@example.com friend@partner.example)
t_like "1: queued" "$qid" '^[0-9A-F]+$'
t_is "1: delivered with X-Outbound-Class: personal, no counts (header_detail off)" \
	"$(sink_class s row1)" "personal"
t_is "1: decision line" "$(milter_decision "$mlog" "$qid")" \
	"class=personal action=tag sender=personal@example.com client=127.0.0.1 rcpts=1 known=0 velocity=1 tempfailed=0 networks=partner.example:1 mode=enforce reasons=-"

# 2. 20 recipients nobody knows, no List-Unsubscribe: held
NEWS=news@example.com
twenty=$( (for i in $(seq 1 10); do echo "sub$i@gmail.com"; done
	for i in $(seq 11 20); do echo "sub$i@yahoo.com"; done))
to20=$(paste -sd, <<<"$twenty")
SR=rcpt-count,unknown-recipients,no-unsubscribe,no-one-click
qid2=$(smtp_send_id row2 "$OUT" "$NEWS" "$to20")
t_like "2: accepted (250 after DATA)" "$qid2" '^[0-9A-F]+$'
t_is "2: all 20 recipients got 250" "$(smtp_rcpt_replies "$T/row2.out" | grep -c ' 250 ')" 20
t_is "2: postqueue -j shows it in the hold queue" "$(pf_queue_name a "$qid2")" hold
t_is "2: postqueue -j lists its 20 recipients" \
	"$(pf_queue_rcpts a "$qid2" | sort)" "$(sort <<<"$twenty")"
# Postfix (milter8.c) drops the text of a quarantine request and logs
# "milter triggers HOLD action": the reasons are in the milter's decision
# line and in the held message's class header
t_file_like "2: Postfix logs milter-hold" "$maillog" \
	"$qid2: milter-hold: END-OF-MESSAGE from [^ ]*: milter triggers HOLD action; from=<$NEWS>"
t_is "2: decision line" "$(milter_decision "$mlog" "$qid2" | sed 's/networks=[^ ]* //')" \
	"class=spam-risk action=hold sender=$NEWS client=127.0.0.1 rcpts=20 known=0 velocity=20 tempfailed=0 mode=enforce reasons=$SR"
t_is "2: the held message carries the class header" \
	"$(postcat -c "$(pf_conf a)" -hq "$qid2" 2>/dev/null | sed -n 's/^X-Outbound-Class: //p')" \
	"spam-risk; reasons=$SR"

# 3. the same 20 as a permission list, with List-Unsubscribe: bulk
printf '%s\n' "$twenty" >"$T/subscribers.txt"
ctl rel import "$NEWS" "$T/subscribers.txt"
t_is "3: outboundctl rel import exits 0" "$?" 0
t_diag "$(head -n 5 "$T/ctl.out")"
t_is "3: Redis holds the 20 relationships" "$(redis_zcard "obm:{s:$NEWS}:rel")" 20
qid3=$(smtp_send_id row3 "$OUT" "$NEWS" "$to20" --header 'List-Unsubscribe: <mailto:unsub@example.com>' \
	--header "From: Example News <$NEWS>")
t_like "3: queued" "$qid3" '^[0-9A-F]+$'
t_is "3: delivered as bulk, with its reasons and no counts" "$(sink_class s row3)" \
	"bulk; reasons=rcpt-count,list-unsubscribe,no-one-click"
t_is "3: the sink got all 20 recipients" \
	"$(grep -c '^X-Rcpt-Args:' "$(sink_file_by_id s row3)" 2>/dev/null)" 20
t_like "3: decision line" "$(milter_decision "$mlog" "$qid3")" \
	"^class=bulk action=tag sender=$NEWS client=127.0.0.1 rcpts=20 known=20 velocity=20 tempfailed=0 networks=[^ ]+ mode=enforce reasons=rcpt-count,list-unsubscribe,no-one-click$"
t_is "3: the held message of row 2 did not arrive" "$(sink_file_by_id s row2)" ""

# 4. inbound mail teaches; the reply is personal with known=1
qid4=$(smtp_send_id row4-in "$IN" bob@partner.example alice@example.com)
t_like "4: inbound message queued" "$qid4" '^[0-9A-F]+$'
t_is "4: inbound message delivered without a class header" "$(sink_class s row4-in)" ""
t_ok "4: bob@partner.example is known to alice@example.com" \
	test -n "$(rcli zscore 'obm:{s:alice@example.com}:rel' bob@partner.example)"
t_is "4: inbound mail has no decision line" "$(grep -c "$qid4: class=" "$mlog")" 0
qid4r=$(smtp_send_id row4-reply "$OUT" alice@example.com bob@partner.example)
t_is "4: alice's reply is personal" "$(sink_class s row4-reply)" "personal"
t_like "4: reply decision line" "$(milter_decision "$mlog" "$qid4r")" \
	'^class=personal action=tag sender=alice@example.com .* known=1 velocity=1 '

# 5. a forged class header is replaced
qid5=$(smtp_send_id row5 "$OUT" forger@example.com friend@partner.example \
	--add-header 'X-Outbound-Class: personal' --add-header 'x-outbound-class: bulk; forged=yes')
t_like "5: queued" "$qid5" '^[0-9A-F]+$'
t_is "5: exactly one X-Outbound-Class header at the sink, ours" "$(sink_class s row5)" \
	"personal"
t_is "5: swaks did send the two forged headers" \
	"$(grep -ci '^ -> x-outbound-class:' "$T/row5.out")" 2

# 6. a blocked sender is held; unblocked it passes
B=blocked@example.com
ctl block "$B" --reason "compromised account"
t_is "6: outboundctl block exits 0" "$?" 0
t_diag "$(head -n 5 "$T/ctl.out")"
t_ok "6: the block is in Redis" test "$(rcli exists "obm:{s:$B}:block")" = 1
qid6=$(smtp_send_id row6-blocked "$OUT" "$B" friend@partner.example)
t_like "6: accepted (250 after DATA)" "$qid6" '^[0-9A-F]+$'
t_is "6: blocked sender's message is in the hold queue" "$(pf_queue_name a "$qid6")" hold
t_file_like "6: Postfix logs milter-hold" "$maillog" \
	"$qid6: milter-hold: END-OF-MESSAGE from [^ ]*: milter triggers HOLD action; from=<$B>"
t_is "6: the held message's class header gives the reason blocked" \
	"$(postcat -c "$(pf_conf a)" -hq "$qid6" 2>/dev/null | sed -n 's/^X-Outbound-Class: //p')" \
	"spam-risk; reasons=blocked"
t_like "6: decision line" "$(milter_decision "$mlog" "$qid6")" \
	"^class=spam-risk action=hold sender=$B .* reasons=blocked$"
ctl unblock "$B"
t_is "6: outboundctl unblock exits 0" "$?" 0
t_is "6: the block is gone from Redis" "$(rcli exists "obm:{s:$B}:block")" 0
qid6b=$(smtp_send_id row6-unblocked "$OUT" "$B" friend@partner.example)
t_is "6: after unblock the message is delivered as personal" "$(sink_class s row6-unblocked)" \
	"personal"
t_is "6: after unblock: not in any queue" "$(pf_queue_name a "$qid6b")" ""
t_is "6: the blocked message did not arrive" "$(sink_file_by_id s row6-blocked)" ""

# what stays: the two held messages, nothing else
queue_at_most()
{
	[ "$(pf_queue_count a)" -le "$1" ]
}
pf_flush a
t_wait_until 20 queue_at_most 2
t_is "the queue holds exactly the two held messages" \
	"$(pf_queue_list a)" \
	"$(printf '%s hold\n%s hold\n' "$qid2" "$qid6" | sort)"
t_is "the sink got 6 messages (1, 3, 4 in, 4 reply, 5, 6 after unblock)" "$(sink_msgs s)" 6

pf_stop a
milter_stop m
t_done
