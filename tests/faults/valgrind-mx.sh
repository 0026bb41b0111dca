#!/bin/bash
# valgrind-mx.sh - tests/integration/test_mx (the MX resolver and its
# caches: dnsmasq, a real Redis, a resolver that never answers, threads)
# run again under valgrind memcheck: every test passes, no memory error and
# no block definitely lost, which is what the README's MX section claims.
# In the faults suite: it needs the build without sanitizers.
. "$(dirname "$0")/../lib/common.sh"
t_need valgrind
t_init valgrind-mx

MX=$OBM_BUILD/tests/integration/test_mx
[ -x "$MX" ] || t_bail "$MX not built (run make tests)"
valgrind --error-exitcode=3 --leak-check=full --errors-for-leak-kinds=definite \
	"$MX" >"$T/mx.out" 2>"$T/vg.err"
rc=$?
t_is "test_mx under memcheck: exit 0 (3 would be a memcheck error)" "$rc" 0
t_like "test_mx under memcheck: every test passed" "$(cat "$T/mx.out" "$T/vg.err")" '^\[  PASSED  \] [0-9]+ test\(s\)\.$'
t_like "memcheck: no error" "$(cat "$T/vg.err")" 'ERROR SUMMARY: 0 errors from 0 contexts'
t_like "memcheck: nothing definitely lost" "$(cat "$T/vg.err")" \
	'definitely lost: 0 bytes in 0 blocks|All heap blocks were freed'
[ "$rc" -ne 0 ] && t_diag "$(tail -n 30 "$T/vg.err")"
t_done
