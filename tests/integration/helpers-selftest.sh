#!/bin/bash
# helpers-selftest.sh - the test helpers fail when their evidence is
# missing, instead of passing on nothing:
#
#  * t_file_unlike / t_file_like on a file that does not exist: a failure
#    (in a subshell, so that this test's own counts stay clean); t_count on
#    it prints no number, so neither "= 0" nor ">= 0" passes;
#  * pf_queue_count with a postqueue that fails (a stand-in first on PATH):
#    status 1 and no number; pf_queue_empty false; with a stand-in that
#    works, the count is right (2 messages, then 0);
#  * sink_msgs / sink_rcpts on a sink whose folder is gone: no number;
#  * redis_keys / redis_zcard with Redis stopped: status 1 and
#    "redis-unreachable", so "" and "| wc -l = 0" checks cannot pass;
#    with Redis up they read the key back.
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/redis.sh"
. "$OBM_SRCDIR/tests/lib/postfix.sh"
t_need redis-server redis-cli
t_init helpers-selftest

# in_sub CMD...: run a check in a subshell with fresh counts; prints
# "PASSES FAILURES" and the subshell's status (0 only if nothing failed)
in_sub()
{
	local out st
	out=$( T_PASS=0 T_FAIL=0; "$@" >/dev/null 2>&1; echo "$T_PASS $T_FAIL"; [ "$T_FAIL" -eq 0 ] )
	st=$?
	echo "$out status=$st"
}

# ---- files ------------------------------------------------------------------
missing=$T/never-written.log
t_is "t_file_unlike on a missing file: the check fails" \
	"$(in_sub t_file_unlike "x" "$missing" 'Sanitizer')" "0 1 status=1"
t_is "t_file_like on a missing file: the check fails" \
	"$(in_sub t_file_like "x" "$missing" '.')" "0 1 status=1"
: >"$T/empty.log"
t_is "t_file_unlike on an existing clean file still passes" \
	"$(in_sub t_file_unlike "x" "$T/empty.log" 'Sanitizer')" "1 0 status=0"
echo "==1== ERROR: AddressSanitizer: heap-use-after-free" >"$T/asan.log"
t_is "t_file_unlike on a file with the line fails" \
	"$(in_sub t_file_unlike "x" "$T/asan.log" 'Sanitizer')" "0 1 status=1"
t_not "t_count on a missing file: non-zero status" t_count "$missing" 'x'
t_is "t_count on a missing file prints no number" "$(t_count "$missing" 'x')" "missing:$missing"
t_is "t_is NAME \"\$(t_count MISSING ERE)\" 0 fails" \
	"$(in_sub t_is "x" "$(t_count "$missing" 'x')" 0)" "0 1 status=1"
t_is "t_le NAME \"\$(t_count MISSING ERE)\" 0 fails" \
	"$(in_sub t_le "x" "$(t_count "$missing" 'x')" 0)" "0 1 status=1"
t_is "t_count on an existing file counts" "$(t_count "$T/asan.log" 'Sanitizer')" 1
t_not "t_count_ge on a missing file is false (a wait on it times out)" \
	t_count_ge "$missing" 'x' 0

# ---- postqueue ----------------------------------------------------------------
mkdir -p "$T/bin" "$T/pf-x/conf"
PF_DIR[x]=$T/pf-x
cat >"$T/bin/postqueue" <<'EOF'
#!/bin/sh
echo "postqueue: fatal: open /nonexistent/main.cf: No such file or directory" >&2
exit 75
EOF
chmod +x "$T/bin/postqueue"
PATH_SAVED=$PATH
PATH=$T/bin:$PATH
t_not "pf_queue_count with a failing postqueue: non-zero status" pf_queue_count x
t_is "pf_queue_count with a failing postqueue prints no number" \
	"$(pf_queue_count x 2>/dev/null)" postqueue-failed
t_is "t_is NAME \"\$(pf_queue_count)\" 0 fails when postqueue fails" \
	"$(in_sub t_is "x" "$(pf_queue_count x 2>/dev/null)" 0)" "0 1 status=1"
t_not "pf_queue_empty is false when postqueue fails" pf_queue_empty x
t_like "pf_queue says why on stderr" "$(pf_queue x 2>&1 >/dev/null)" 'postqueue -j failed \(status 75\)'
t_not "pf_queue_list with a failing postqueue: non-zero status" pf_queue_list x
t_not "pf_queue on an unknown instance: non-zero status" pf_queue nosuch
cat >"$T/bin/postqueue" <<'EOF'
#!/bin/sh
echo '{"queue_name": "deferred", "queue_id": "AAA1", "recipients": [{"address": "a@gmail.com"}]}'
echo '{"queue_name": "hold", "queue_id": "BBB2", "recipients": [{"address": "b@gmail.com"}]}'
EOF
t_is "pf_queue_count with a working postqueue: 2 messages" "$(pf_queue_count x)" 2
t_is "pf_queue_list with a working postqueue" "$(pf_queue_list x | tr '\n' ' ')" "AAA1 deferred BBB2 hold "
printf '#!/bin/sh\nexit 0\n' >"$T/bin/postqueue"
t_is "pf_queue_count on an empty queue: 0" "$(pf_queue_count x)" 0
t_ok "pf_queue_empty on an empty queue" pf_queue_empty x
PATH=$PATH_SAVED

# ---- sink -------------------------------------------------------------------
SINK_DIR[gone]=$T/sink-gone
t_not "sink_msgs on a sink without its folder: non-zero status" sink_msgs gone
t_is "t_is NAME \"\$(sink_msgs)\" 0 fails when the sink folder is gone" \
	"$(in_sub t_is "x" "$(sink_msgs gone 2>/dev/null)" 0)" "0 1 status=1"
t_is "t_is NAME \"\$(sink_rcpts)\" 0 fails when the sink folder is gone" \
	"$(in_sub t_is "x" "$(sink_rcpts gone 2>/dev/null)" 0)" "0 1 status=1"
mkdir -p "$T/sink-gone"
t_is "sink_msgs on an empty sink folder: 0" "$(sink_msgs gone)" 0

# ---- Redis --------------------------------------------------------------------
redis_start
rcli zadd 'obm:{google}:w:per-sender:a@example.com' 1 u1 >/dev/null
t_is "redis_keys with Redis up: the key" "$(redis_keys 'obm:*')" 'obm:{google}:w:per-sender:a@example.com'
t_is "redis_keys with Redis up, no match: empty" "$(redis_keys 'none:*')" ""
t_is "redis_zcard with Redis up" "$(redis_zcard 'obm:{google}:w:per-sender:a@example.com')" 1
t_ok "redis_ok with Redis up" redis_ok
redis_stop
t_not "redis_keys with Redis stopped: non-zero status" redis_keys 'none:*'
t_is "redis_keys with Redis stopped prints redis-unreachable" \
	"$(redis_keys 'none:*' 2>/dev/null)" redis-unreachable
t_is "t_is NAME \"\$(redis_keys PAT)\" \"\" fails with Redis stopped" \
	"$(in_sub t_is "x" "$(redis_keys 'none:*' 2>/dev/null)" "")" "0 1 status=1"
t_not "redis_zcard with Redis stopped: non-zero status" redis_zcard k
t_is "t_is NAME \"\$(redis_zcard KEY)\" 0 fails with Redis stopped" \
	"$(in_sub t_is "x" "$(redis_zcard k 2>/dev/null)" 0)" "0 1 status=1"
t_not "redis_ok with Redis stopped" redis_ok
t_done
