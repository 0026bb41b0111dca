#!/bin/bash
# install.sh - `make install` into a temporary DESTDIR, with PREFIX=/usr
# and with the default PREFIX (/usr/local): every file that must be
# installed is there with its mode (programs 0755, everything else 0644,
# folders 0755), nothing else is installed outside the documentation
# folder, nothing is writable by group or others; the installed programs
# run and the installed configuration passes -t; the systemd unit names the
# installed program and configuration and passes systemd-analyze verify; a
# second install keeps a configuration the administrator changed. The
# Postfix snippets parse with postconf without a warning (main.cf options,
# the submission services with milter_macro_daemon_name=ORIGINATING), and
# the Sendmail snippet expands with m4 to an INPUT_MAIL_FILTER line with
# its time limits.
. "$(dirname "$0")/../lib/common.sh"
t_need make install
t_init install

# install_into DESTDIR [MAKE VARIABLES...]: make install, quietly
install_into()
{
	local dest=$1
	shift
	make -s -C "$OBM_SRCDIR" B="$OBM_BUILD" DESTDIR="$dest" "$@" install \
		>>"$T/make-install.log" 2>&1
}

# listing DESTDIR: "TYPE MODE PATH" of everything below it, sorted
listing()
{
	(cd "$1" && find . -mindepth 1 -printf '%y %m %P\n' | sort -k3)
}

# check_tree NAME DESTDIR PREFIX: the files of an install with PREFIX
check_tree()
{
	local name=$1 d=$2 p=${3#/} want got extra f
	want=$(sort -k3 <<EOF
f 755 $p/sbin/outbound-milter
f 755 $p/bin/outboundctl
f 644 etc/outbound-milter/outbound-milter.conf
f 644 $p/share/man/man1/outboundctl.1
f 644 $p/share/man/man5/outbound-milter.conf.5
f 644 $p/share/man/man8/outbound-milter.8
f 644 $p/lib/systemd/system/outbound-milter.service
f 644 $p/share/doc/outbound-milter/examples/main.cf.snippet
f 644 $p/share/doc/outbound-milter/examples/master.cf.postqueue.snippet
f 644 $p/share/doc/outbound-milter/examples/master.cf.snippet
f 644 $p/share/doc/outbound-milter/examples/outbound-milter.mc
EOF
)
	got=$(listing "$d" | grep '^f ')
	while IFS= read -r f; do
		if grep -qxF -- "$f" <<<"$got"; then
			t_pass "$name: ${f#f } installed"
		else
			t_fail "$name: ${f#f } installed" \
				"got: $(grep -F -- " ${f##* }" <<<"$got" || echo missing)"
		fi
	done <<<"$want"
	# anything else: only more documentation, read-only for others
	extra=$(grep -vxF -f <(printf '%s\n' "$want") <<<"$got" |
		grep -vE "^f 644 $p/share/doc/outbound-milter/")
	t_is "$name: no other file installed (besides documentation)" "$extra" ""
	t_is "$name: every folder has mode 0755" \
		"$(listing "$d" | awk '$1 == "d" && $2 != "755"')" ""
	t_is "$name: no other file type (links, devices...)" \
		"$(listing "$d" | awk '$1 != "d" && $1 != "f"')" ""
	t_is "$name: nothing writable by group or others" \
		"$(cd "$d" && find . -perm /022 -printf '%m %P\n')" ""
	t_is "$name: nothing set-uid or set-gid" \
		"$(cd "$d" && find . -perm /6000 -printf '%m %P\n')" ""
}

# ---- PREFIX=/usr (a distribution package) --------------------------------------

D=$T/root-usr
if install_into "$D" PREFIX=/usr; then
	t_pass "make install DESTDIR=... PREFIX=/usr"
else
	t_fail "make install DESTDIR=... PREFIX=/usr" "$(tail -n 20 "$T/make-install.log")"
fi
check_tree "PREFIX=/usr" "$D" /usr

M=$D/usr/sbin/outbound-milter
CONF=$D/etc/outbound-milter/outbound-milter.conf
if [ -x "$M" ]; then
	t_like "installed outbound-milter -V" "$("$M" -V 2>&1)" '^outbound-milter [0-9]+\.[0-9]+'
	out=$("$M" -t -c "$CONF" 2>&1)
	t_is "installed configuration passes -t" "$?" 0
	# no Redis on the default port here: -t says it could not try it
	t_is "installed configuration: no warning but Redis's absence" \
		"$(grep -v ': warning: redis at 127.0.0.1:6379 cannot be reached now ' <<<"$out")" ""
fi
if [ -x "$D/usr/bin/outboundctl" ]; then
	"$D/usr/bin/outboundctl" --help >/dev/null 2>&1
	t_is "installed outboundctl --help" "$?" 0
fi
t_ok "installed configuration equals conf/outbound-milter.conf" \
	cmp -s "$CONF" "$OBM_SRCDIR/conf/outbound-milter.conf"
for f in main.cf.snippet master.cf.snippet master.cf.postqueue.snippet; do
	t_ok "installed $f equals contrib/postfix/$f" \
		cmp -s "$D/usr/share/doc/outbound-milter/examples/$f" "$OBM_SRCDIR/contrib/postfix/$f"
done
t_ok "installed outbound-milter.mc equals contrib/sendmail/outbound-milter.mc" \
	cmp -s "$D/usr/share/doc/outbound-milter/examples/outbound-milter.mc" \
	"$OBM_SRCDIR/contrib/sendmail/outbound-milter.mc"

# the unit: the installed program and configuration, Type=forking with the
# pid_file of the shipped configuration, reload by SIGHUP
UNIT=$D/usr/lib/systemd/system/outbound-milter.service
unit_value()
{
	sed -n "s/^$2=//p" "$1"
}
t_is "unit: ExecStart" "$(unit_value "$UNIT" ExecStart)" \
	"/usr/sbin/outbound-milter -c /etc/outbound-milter/outbound-milter.conf"
# shellcheck disable=SC2016 # $MAINPID is systemd's, not the shell's
t_is "unit: ExecReload checks, then sends SIGHUP" "$(unit_value "$UNIT" ExecReload)" \
	"$(printf '%s\n' "/usr/sbin/outbound-milter -t -c /etc/outbound-milter/outbound-milter.conf" \
		'/bin/kill -HUP $MAINPID')"
t_is "unit: Type" "$(unit_value "$UNIT" Type)" forking
pid_file=$(sed -n 's/^pid_file[[:space:]]*=[[:space:]]*"\(.*\)".*/\1/p' "$CONF")
t_is "unit: PIDFile is the shipped pid_file" "$(unit_value "$UNIT" PIDFile)" "$pid_file"
sock=$(sed -n 's/^socket[[:space:]]*=[[:space:]]*"unix:\(.*\)".*/\1/p' "$CONF")
t_is "unit: RuntimeDirectory holds the shipped pid_file" \
	"/run/$(unit_value "$UNIT" RuntimeDirectory)" "$(dirname "$pid_file")"
t_is "shipped socket: in Postfix's queue directory" "$(dirname "$sock")" \
	/var/spool/postfix/outbound-milter
t_is "unit: ReadWritePaths opens the socket's folder" "$(unit_value "$UNIT" ReadWritePaths)" \
	"-$(dirname "$sock")"
if command -v systemd-analyze >/dev/null 2>&1; then
	# the unit with its programs pointing into DESTDIR (verify wants
	# them to exist), checked against the host's own units
	mkdir -p "$T/unit"
	sed "s|/usr/sbin/outbound-milter|$M|g" "$UNIT" >"$T/unit/outbound-milter.service"
	out=$(systemd-analyze verify --man=no "$T/unit/outbound-milter.service" 2>&1)
	rc=$?
	t_is "systemd-analyze verify of the installed unit: exit 0" "$rc" 0
	t_is "systemd-analyze verify: no complaint" "$out" ""
else
	t_fail "verifying the unit needs systemd-analyze (contrib/install-deps installs systemd)"
fi

# a second install keeps the administrator's configuration
printf '# changed by the administrator\n' >>"$CONF"
install_into "$D" PREFIX=/usr
t_is "second make install keeps a changed configuration" "$(tail -n 1 "$CONF")" \
	"# changed by the administrator"

# ---- default PREFIX (/usr/local) ---------------------------------------------

D2=$T/root-local
if install_into "$D2"; then
	t_pass "make install DESTDIR=... (default PREFIX)"
else
	t_fail "make install DESTDIR=... (default PREFIX)" "$(tail -n 20 "$T/make-install.log")"
fi
check_tree "PREFIX=/usr/local" "$D2" /usr/local
t_is "PREFIX=/usr/local: unit ExecStart names the installed program" \
	"$(unit_value "$D2/usr/local/lib/systemd/system/outbound-milter.service" ExecStart)" \
	"/usr/local/sbin/outbound-milter -c /etc/outbound-milter/outbound-milter.conf"

# ---- the Postfix snippets ------------------------------------------------------

if command -v postconf >/dev/null 2>&1; then
	P=$T/postfix
	mkdir -p "$P"
	cp "$OBM_SRCDIR/contrib/postfix/main.cf.snippet" "$P/main.cf"
	# a master.cf with the daemons Postfix needs, then the snippet
	if [ -f /etc/postfix/master.cf ]; then
		grep -vE '^(submission|submissions)[[:space:]]' /etc/postfix/master.cf >"$P/master.cf"
	else
		printf 'smtp inet n - y - - smtpd\n' >"$P/master.cf"
	fi
	cat "$OBM_SRCDIR/contrib/postfix/master.cf.snippet" >>"$P/master.cf"
	out=$(postconf -c "$P" -n 2>&1 >/dev/null)
	t_is "main.cf.snippet: postconf without a warning" "$out" ""
	out=$(postconf -c "$P" -M 2>&1 >/dev/null)
	t_is "master.cf.snippet: postconf -M without a warning" "$out" ""
	pc()
	{
		postconf -c "$P" -h "$1" 2>/dev/null
	}
	t_is "main.cf: smtpd_milters is the shipped socket, relative to the queue directory" \
		"unix:$(pc queue_directory)/$(pc smtpd_milters | sed 's/^unix://')" "unix:$sock"
	t_is "main.cf: milter_default_action" "$(pc milter_default_action)" tempfail
	t_is "main.cf: milter_protocol" "$(pc milter_protocol)" 6
	t_like "main.cf: milter_connect_macros has {client_addr}" \
		"$(pc milter_connect_macros)" '(^| )\{client_addr\}( |$)'
	t_like "main.cf: milter_connect_macros has {daemon_name}" \
		"$(pc milter_connect_macros)" '(^| )\{daemon_name\}( |$)'
	t_like "main.cf: milter_mail_macros has {auth_authen}" \
		"$(pc milter_mail_macros)" '(^| )\{auth_authen\}( |$)'
	t_like "main.cf: milter_rcpt_macros has the queue id" "$(pc milter_rcpt_macros)" '(^| )i( |$)'
	t_like "main.cf: milter_command_timeout set" "$(pc milter_command_timeout)" '^[0-9]+s$'
	for svc in submission submissions; do
		t_is "master.cf: $svc has milter_macro_daemon_name=ORIGINATING" \
			"$(postconf -c "$P" -hP "$svc/inet/milter_macro_daemon_name" 2>/dev/null)" \
			ORIGINATING
		t_is "master.cf: $svc runs smtpd without chroot" \
			"$(postconf -c "$P" -M "$svc/inet" 2>/dev/null | awk '{ print $5, $8 }')" "n smtpd"
	done
	# the post-queue snippet in place of the submission entries
	grep -vE '^(submission|submissions)[[:space:]]' "$P/master.cf" |
		sed '/^#/d' >"$P/master.cf.pre"
	awk '/^(submission|submissions)[[:space:]]/{skip=1; next} /^[^ #]/{skip=0} !skip' \
		"$P/master.cf.pre" >"$P/master.cf"
	cat "$OBM_SRCDIR/contrib/postfix/master.cf.postqueue.snippet" >>"$P/master.cf"
	out=$(postconf -c "$P" -M 2>&1 >/dev/null)
	t_is "master.cf.postqueue.snippet: postconf -M without a warning" "$out" ""
	t_is "post-queue: submission has no milter" \
		"$(postconf -c "$P" -hP submission/inet/smtpd_milters 2>/dev/null)" ""
	t_like "post-queue: submission hands its mail to the shaper" \
		"$(postconf -c "$P" -hP submission/inet/content_filter 2>/dev/null)" '^obm-shaper:\[127\.0\.0\.1\]:[0-9]+$'
	t_is "post-queue: the loopback smtpd carries the milter" \
		"unix:$(pc queue_directory)/$(postconf -c "$P" -hP 127.0.0.1:10027/inet/smtpd_milters 2>/dev/null | sed 's/^unix://')" \
		"unix:$sock"
	t_is "post-queue: the loopback smtpd is ORIGINATING" \
		"$(postconf -c "$P" -hP 127.0.0.1:10027/inet/milter_macro_daemon_name 2>/dev/null)" \
		ORIGINATING
	t_like "ORIGINATING is an outbound daemon in the shipped configuration" \
		"$(grep -E '^outbound_daemons' "$CONF")" '"ORIGINATING"'
else
	t_fail "checking the Postfix snippets needs postconf (contrib/install-deps installs postfix)"
fi

# ---- the Sendmail snippet ------------------------------------------------------

MC=$OBM_SRCDIR/contrib/sendmail/outbound-milter.mc
if command -v m4 >/dev/null 2>&1; then
	# expand with stand-ins for Sendmail's cf macros: shows the quoting
	# is balanced and what each line produces
	out=$({
		printf '%s\n' "define(\`INPUT_MAIL_FILTER', \`FILTER[\$1][\$2]')dnl"
		cat "$MC"
	} | m4 2>&1)
	# a Sendmail host has no Postfix queue directory: the comment says to
	# set socket to this folder of the daemon's own
	t_like "outbound-milter.mc: INPUT_MAIL_FILTER for /run/outbound-milter/milter.sock" "$out" \
		"^FILTER\[outbound-milter\]\[S=local:/run/outbound-milter/milter.sock, F=T, T=C:[0-9]+s;S:[0-9]+s;R:[0-9]+s;E:[0-9]+m\]$"
	t_unlike "outbound-milter.mc: m4 reports nothing" "$out" 'm4:'
else
	t_like "outbound-milter.mc: INPUT_MAIL_FILTER line" "$(cat "$MC")" \
		"^INPUT_MAIL_FILTER\(\`outbound-milter', \`S=local:$sock, F=T, T=C:"
fi
t_like "outbound-milter.mc: connect macros with {client_addr}" "$(cat "$MC")" \
	"confMILTER_MACROS_CONNECT.*\{client_addr\}"
t_like "outbound-milter.mc: MAIL macros with {auth_authen}" "$(cat "$MC")" \
	"confMILTER_MACROS_ENVFROM.*\{auth_authen\}"

t_done
