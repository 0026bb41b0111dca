#!/bin/bash
# manpages.sh - the manual pages in doc/: each renders with groff -ww (at
# the default width and at 65 columns) and with man --warnings without a
# single warning, its .TH and NAME match the file name; every option of
# conf/outbound-milter.conf has an entry in outbound-milter.conf.5 showing
# the shipped default, and every section kind a heading; every command of
# outboundctl (outboundctl(1), and whatever the built outboundctl lists in
# --help) has a synopsis line and an entry in outboundctl.1, every option
# it lists is mentioned; every option of outbound-milter -h has an entry
# in outbound-milter.8; the example configuration printed in
# outbound-milter.conf.5 passes outbound-milter -t.
. "$(dirname "$0")/../lib/common.sh"
t_need groff
t_init manpages

DOC=$OBM_SRCDIR/doc
CONF=$OBM_SRCDIR/conf/outbound-milter.conf
PAGES=(outbound-milter.8 outbound-milter.conf.5 outboundctl.1)
MILTER=$OBM_BUILD/outbound-milter
CTL=$OBM_BUILD/outboundctl

# the outboundctl commands outboundctl(1) documents
DOC_COMMANDS=(stats top sender network log block unblock reset
	"rel add" "rel del" "rel show" "rel import" metrics)

# render PAGE: plain ASCII text without bold, underline or overstrike,
# lines long enough that no tag wraps; entries (.TP tags) start in column 8
render()
{
	groff -man -Tascii -P-cbou -rLL=250n "$DOC/$1" 2>/dev/null
}

# re_quote TEXT: TEXT as a literal in an extended regular expression
re_quote()
{
	# shellcheck disable=SC2016
	printf '%s' "$1" | sed 's/[][\.|$(){}?+*^]/\\&/g'
}

# has_entry RENDERED NAME: a .TP entry whose tag starts with NAME
has_entry()
{
	printf '%s\n' "$1" | grep -Eq -- "^ {7}$(re_quote "$2")( |,|$)"
}

# t_entry TESTNAME RENDERED NAME: passes when RENDERED has an entry for NAME
t_entry()
{
	if has_entry "$2" "$3"; then
		t_pass "$1"
	else
		t_fail "$1" "no entry starting with '$3' in the rendered page"
	fi
}

# ---- every page renders without warnings ---------------------------------

for p in "${PAGES[@]}"; do
	if [ ! -f "$DOC/$p" ]; then
		t_fail "$p exists" "no $DOC/$p"
		continue
	fi
	t_pass "$p exists"
	out=$(groff -man -Tutf8 -ww -z "$DOC/$p" 2>&1)
	t_is "$p: groff -ww, default width, no warning" "$out" ""
	out=$(groff -man -Tutf8 -ww -z -rLL=65n "$DOC/$p" 2>&1)
	t_is "$p: groff -ww, 65 columns, no warning" "$out" ""
	out=$(groff -man -Tascii -ww -z "$DOC/$p" 2>&1)
	t_is "$p: groff -Tascii -ww, no warning" "$out" ""
	if command -v man >/dev/null 2>&1; then
		out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$DOC/$p" 2>&1 >/dev/null)
		t_is "$p: man --warnings, no warning" "$out" ""
	fi

	# .TH NAME SECTION and the NAME line agree with the file name
	name=${p%.*}
	sect=${p##*.}
	th=$(sed -n 's/^\.TH[[:space:]]\{1,\}\([^[:space:]]*\)[[:space:]]\{1,\}\([^[:space:]]*\).*/\1 \2/p' \
		"$DOC/$p" | head -n 1 | sed 's/\\-/-/g; s/"//g')
	t_is "$p: .TH names the page" "$th" "$(printf '%s' "$name" | tr '[:lower:]' '[:upper:]') $sect"
	text=$(render "$p")
	whatis=$(printf '%s\n' "$text" | sed -n '/^NAME$/{n;p;q}')
	t_like "$p: NAME line" "$whatis" "^ +$(re_quote "$name") - [A-Za-z]"
	if command -v lexgrog >/dev/null 2>&1; then
		t_like "$p: lexgrog reads the NAME section" \
			"$(lexgrog "$DOC/$p" 2>&1)" "\"$(re_quote "$name") - "
	fi
done

# ---- outbound-milter.conf.5: every option of the shipped file -------------

[ -f "$CONF" ] || t_bail "no $CONF"
CONF5=$(render outbound-milter.conf.5)

# options of the shipped file as NAME<TAB>VALUE, comments dropped, one per
# assignment (several may share a line, separated by ';'); section kinds
# (words that open a section: `redis {`, `network google {`) to SECTIONS
OPTIONS=()
SECTIONS=()
opener='^[[:space:]]*([A-Za-z_]+)([[:space:]]+("[^"]*"|[A-Za-z0-9_.-]+))?[[:space:]]*\{(.*)$'
assign='^[[:space:]]*([a-z_]+)[[:space:]]*=[[:space:]]*(.*[^[:space:]])[[:space:]]*$'
while IFS= read -r line || [ -n "$line" ]; do
	line=${line%%#*}
	IFS=';' read -ra parts <<<"$line"
	for s in "${parts[@]}"; do
		while [[ $s =~ $opener ]]; do
			SECTIONS+=("${BASH_REMATCH[1]}")
			s=${BASH_REMATCH[4]}
		done
		[[ $s =~ $assign ]] || continue
		name=${BASH_REMATCH[1]}
		value=${BASH_REMATCH[2]}
		# the '}' closing a one-line section is not part of the value
		while [[ $value == *"}" ]]; do
			opens=${value//[^\{]/}
			closes=${value//[^\}]/}
			[ ${#closes} -gt ${#opens} ] || break
			value=${value%\}}
			value=${value%"${value##*[![:space:]]}"}
		done
		OPTIONS+=("$name	$value")
	done
done <"$CONF"

t_ge "options found in $CONF" "${#OPTIONS[@]}" 40

declare -A seen=()
for o in "${OPTIONS[@]}"; do
	name=${o%%	*}
	value=${o#*	}
	if [ -z "${seen[$name]:-}" ]; then
		seen[$name]=1
		if has_entry "$CONF5" "$name ="; then
			t_pass "outbound-milter.conf.5 documents $name"
		else
			t_fail "outbound-milter.conf.5 documents $name" \
				"no entry '$name = ...' in the rendered page"
		fi
	fi
	# the shipped default appears in the entry; the contents of the
	# shipped network and class sections are examples, not defaults
	case $name in
	domains|mx|action) continue ;;
	esac
	if printf '%s\n' "$CONF5" | grep -E -- "^ {7}$(re_quote "$name") = " |
		grep -Fq -e "(default $value)" -e "(default $value,"; then
		t_pass "outbound-milter.conf.5: $name defaults to $value"
	else
		t_fail "outbound-milter.conf.5: $name defaults to $value" \
			"entries: $(printf '%s\n' "$CONF5" | grep -E -- "^ {7}$(re_quote "$name") = ")"
	fi
done

declare -A sec_seen=()
for sec in "${SECTIONS[@]}"; do
	[ -n "${sec_seen[$sec]:-}" ] && continue
	sec_seen[$sec]=1
	if printf '%s\n' "$CONF5" | grep -E '^[A-Z][A-Z :]*$' | grep -Eiqw -- "$sec"; then
		t_pass "outbound-milter.conf.5 has a heading for the $sec section"
	else
		t_fail "outbound-milter.conf.5 has a heading for the $sec section"
	fi
done
for sec in redis classify class network limit; do
	[ -n "${sec_seen[$sec]:-}" ] ||
		t_fail "$CONF has a $sec section (the page documents one)"
done

# the `network NAME { ... }` override inside a limit section
t_entry "outbound-milter.conf.5 documents limit network overrides" \
	"$CONF5" "network NAME {"

# the example configuration of the page is a valid configuration
printf '%s\n' "$CONF5" |
	awk -v pad="              " '/^EXAMPLE$/ { f = 1; next } f && /^[A-Z]/ { exit }
		f && substr($0, 1, 14) == pad { print substr($0, 15); next }
		f && /^$/ { print }' \
	>"$T/example.conf.in"
t_ge "outbound-milter.conf.5 has an example" \
	"$(grep -c '=' "$T/example.conf.in")" 10
# the password file it names must exist and be private: point it at one of ours
printf 'a-password\n' >"$T/redis.password"
chmod 0600 "$T/redis.password"
sed -E "s|(password_file[[:space:]]*=[[:space:]]*)\"[^\"]*\"|\1\"$T/redis.password\"|" \
	"$T/example.conf.in" >"$T/example.conf"
if [ -x "$MILTER" ]; then
	out=$("$MILTER" -t -c "$T/example.conf" 2>&1)
	rc=$?
	t_is "the example of outbound-milter.conf.5 passes outbound-milter -t" "$rc" 0
	# its Redis (10.0.0.5) is not there: -t says it could not try it
	t_is "the example of outbound-milter.conf.5 has no warning but Redis's absence" \
		"$(grep -v ': warning: redis at 10.0.0.5:6379 cannot be reached now ' <<<"$out")" ""
else
	t_fail "$MILTER not built: the example cannot be checked"
fi

# ---- outboundctl.1: every command and option --------------------------------

CTL1=$(render outboundctl.1)
commands=("${DOC_COMMANDS[@]}")
ctl_options=(-c --config --json -h --help -V --version)
if [ -x "$CTL" ]; then
	help=$("$CTL" --help 2>&1)
	# command lines of the help: two spaces, then the lowercase words
	while IFS= read -r c; do
		[ -n "$c" ] && commands+=("$c")
	done < <(printf '%s\n' "$help" |
		sed -n '/^Commands:/,/^$/p' |
		sed -n 's/^  \([a-z][a-z-]*\( [a-z][a-z-]*\)*\)\( .*\)\{0,1\}$/\1/p')
	while IFS= read -r o; do
		ctl_options+=("$o")
	done < <(printf '%s\n' "$help" | grep -oE -- '--[a-z][a-z-]*' | sort -u)
else
	t_diag "$CTL not built: only the documented commands checked"
fi

declare -A cmd_seen=()
for c in "${commands[@]}"; do
	[ -n "${cmd_seen[$c]:-}" ] && continue
	cmd_seen[$c]=1
	t_entry "outboundctl.1 has an entry for '$c'" "$CTL1" "$c"
	if printf '%s\n' "$CTL1" | grep -Eq -- "^ +outboundctl $(re_quote "$c")( |$)"; then
		t_pass "outboundctl.1 synopsis shows 'outboundctl $c'"
	else
		t_fail "outboundctl.1 synopsis shows 'outboundctl $c'"
	fi
done

declare -A opt_seen=()
for o in "${ctl_options[@]}"; do
	[ -n "${opt_seen[$o]:-}" ] && continue
	opt_seen[$o]=1
	if printf '%s\n' "$CTL1" | grep -Eq -- "(^|[^a-z-])$(re_quote "$o")([^a-z-]|$)"; then
		t_pass "outboundctl.1 mentions $o"
	else
		t_fail "outboundctl.1 mentions $o"
	fi
done

for s in 0 1 2; do
	t_entry "outboundctl.1 explains exit status $s" \
		"$(printf '%s\n' "$CTL1" | sed -n '/^EXIT STATUS$/,/^[A-Z]/p')" "$s"
done

# ---- outbound-milter.8: every option ------------------------------------------

MILTER8=$(render outbound-milter.8)
milter_options=(-c -f -t -V -h)
if [ -x "$MILTER" ]; then
	while IFS= read -r o; do
		milter_options+=("$o")
	done < <("$MILTER" -h 2>&1 | grep -oE -- '(^  |\[)-[A-Za-z]' | grep -oE -- '-[A-Za-z]')
fi
declare -A mopt_seen=()
for o in "${milter_options[@]}"; do
	[ -n "${mopt_seen[$o]:-}" ] && continue
	mopt_seen[$o]=1
	t_entry "outbound-milter.8 has an entry for $o" "$MILTER8" "$o"
done
for s in SIGHUP SIGTERM; do
	t_entry "outbound-milter.8 explains $s" \
		"$(printf '%s\n' "$MILTER8" | sed -n '/^SIGNALS$/,/^[A-Z]/p')" "$s"
done

t_done
