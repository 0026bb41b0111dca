#!/bin/bash
# classify-actions.sh - milter protocol: the action of each class at end
# of message and the class header (with its counts under header_detail,
# without them by default). One milter with personal tag, bulk reject, spam-risk
# tempfail (550 5.7.1 / 451 4.7.1 naming the class and the reasons, every
# unit given back); one with personal accept, bulk tag, spam-risk hold
# (smfi_quarantine with the reasons, header added, nothing added for
# accept, a forged class header removed in every case); one with the
# header renamed and add_header = false (nothing added, a submitted header
# of that name still removed).
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/milter.sh"
t_need miltertest redis-server redis-cli
t_init classify-actions

redis_start
MC_HOURLY=1000 MC_BURST=100 MC_CLASSES='class personal { action = tag }
class bulk { action = reject }
class "spam-risk" { action = tempfail }' \
	MC_CLASSIFY='	header_detail = true' MC_SOCKET=unix:$T/act.sock milter_std_conf >"$T/act.conf"
MC_HOURLY=1000 MC_BURST=100 MC_CLASSES='class personal { action = accept }
class bulk { action = tag }
class "spam-risk" { action = hold }' \
	MC_SOCKET=unix:$T/hold.sock milter_std_conf >"$T/hold.conf"
MC_HOURLY=1000 MC_BURST=100 MC_CLASSIFY='	header = "X-Obm-Class"
	add_header = false' MC_SOCKET=unix:$T/nohdr.sock milter_std_conf >"$T/nohdr.conf"
milter_start act "$T/act.conf" "unix:$T/act.sock"
milter_start hold "$T/hold.conf" "unix:$T/hold.sock"
milter_start nohdr "$T/nohdr.conf" "unix:$T/nohdr.sock"

mt_run act "$OBM_SRCDIR/tests/milter/classify-actions.lua" variant=act \
	"sock=unix:$T/act.sock" "mlog=$(milter_log act)"
mt_run hold "$OBM_SRCDIR/tests/milter/classify-actions.lua" variant=hold \
	"sock=unix:$T/hold.sock" "mlog=$(milter_log hold)"
mt_run nohdr "$OBM_SRCDIR/tests/milter/classify-actions.lua" variant=nohdr \
	"sock=unix:$T/nohdr.sock" "mlog=$(milter_log nohdr)"

milter_stop act
milter_stop hold
milter_stop nohdr
t_done
