#!/bin/bash
# ci-skips.sh - .ci/skips, the check that makes a silent skip fail CI: a
# SKIP line of tests/run-all that .ci/allowed-skips does not declare is
# reported with its reason and counted; a declared one is not; the
# shipped allow-list declares nothing (CI runs as root with every package
# of contrib/install-deps); and tests/run-all really prints a SKIP line
# for a test that exits 77, which is what .ci/skips reads.
. "$(dirname "$0")/../lib/common.sh"
t_init ci-skips

SKIPS=$OBM_SRCDIR/.ci/skips
printf '%s\n' "PASS unit/test_a (0s)" "SKIP e2e/sasl (saslpasswd2 not installed)" \
	"SKIP milter/x (needs root)" "FAIL e2e/y (3s, exit 1)" "2 passed, 1 failed" >"$T/run.log"

out=$("$SKIPS" "$T/run.log")
t_is "two undeclared skips: exit status 2" "$?" 2
t_is "each reported with its reason" "$out" \
	"$(printf '%s\n' "undeclared skip: e2e/sasl (saslpasswd2 not installed)" \
		"undeclared skip: milter/x (needs root)")"

printf '%s\n' "# comment" "e2e/sasl   # no SASL on this runner" >"$T/allowed"
out=$("$SKIPS" -a "$T/allowed" "$T/run.log")
t_is "one declared: exit status 1" "$?" 1
t_is "only the undeclared one reported" "$out" "undeclared skip: milter/x (needs root)"

printf '%s\n' "PASS unit/test_a (0s)" "1 passed, 0 failed" >"$T/clean.log"
out=$("$SKIPS" "$T/clean.log")
t_is "no skip: exit status 0" "$?" 0
t_is "no skip: nothing printed" "$out" ""

t_is "the shipped allow-list declares no test" \
	"$(sed -e 's/#.*//' "$OBM_SRCDIR/.ci/allowed-skips" | awk 'NF' | wc -l)" 0

# tests/run-all prints SKIP for exit 77, on a private copy of the tree with
# one test of its own
mkdir -p "$T/tree/tests/milter" "$T/build"
cp "$OBM_SRCDIR/tests/run-all" "$T/tree/tests/"
printf '%s\n' '#!/bin/bash' 'echo "# SKIP a tool is missing"' 'exit 77' >"$T/tree/tests/milter/gone.sh"
out=$(env -u OBM_TEST_FILTER "$T/tree/tests/run-all" "$T/build" milter 2>&1)
t_like "tests/run-all: a test that exits 77 is a SKIP line" "$out" \
	'^SKIP milter/gone \(a tool is missing\)$'
printf '%s\n' "$out" >"$T/skip.log"
out=$("$SKIPS" "$T/skip.log")
t_is "... which .ci/skips counts" "$?" 1
t_done
