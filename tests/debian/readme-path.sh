#!/bin/bash
# readme-path.sh - the README's Deployment section followed step by step on
# a stock Debian 12 root (tests/lib/debroot.sh: debootstrap minbase,
# cached; its own network namespace, so that its Postfix and Redis use
# their stock ports 25, 587 and 6379):
#   - the system Postfix as the installer's "Internet Site" leaves it
#     (Debian's default master.cf: the port-25 smtpd chrooted; the
#     snakeoil certificate), then the package with
#     `apt install ./outbound-milter_*.deb` (BUILD/, from `make deb`);
#   - Redis: the aclfile, the ACL user outbound-milter, the default user
#     switched off behind an admin user, ACL SAVE;
#   - the configuration edited as the README says, `outbound-milter -t`,
#     the daemon started with the unit's ExecStart command line (no
#     systemd in a chroot; the README's non-systemd way), monitor mode,
#     then enforce by -t and SIGHUP;
#   - Postfix: main.cf.snippet appended to main.cf, master.cf.snippet
#     appended to Debian's master.cf, Cyrus SASL with a sasldb as the
#     README tells.
# Checks: inbound mail on port 25 (a client outside mynetworks and
# outbound_networks) goes through the milter and teaches the relationship
# (ZSCORE in Redis); authenticated submission on 587 (STARTTLS, AUTH
# PLAIN) goes through it, is limited (its unit in the sender's window) and
# reaches the sink with X-Outbound-Class: personal (the correspondent
# learned inbound); a 35-recipient message to Gmail (burst 10) gets 10
# recipients accepted, 25 answered 451 4.7.1, the transaction completes
# with 250 and the 10 are delivered, no 421; Redis restarted: the ACL
# user still exists, `outbound-milter -t` passes, a message still goes
# through limited.
#
# Delivery: main.cf gets relayhost = [127.0.0.1]:2526, an smtp-sink (the
# host's) inside the root's namespace; the only change to what the
# README makes. Client addresses: 192.0.2.10 (the server) and 192.0.2.20
# (a remote client) on the namespace's loopback, so that port-25 mail
# comes from outside mynetworks and outbound_networks.
# Logs: no journald in a chroot; debroot's syslog listener collects what
# the milter and Postfix send to /dev/log in $DR_ROOT/var/log/syslog
# (what `journalctl -t outbound-milter` shows on a real host).
#
#	bash tests/debian/readme-path.sh	(as root; OBM_SRCDIR, OBM_BUILD)
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/debroot.sh"
. "$OBM_SRCDIR/tests/lib/postfix.sh"
dr_need
t_need swaks smtp-sink
t_init readme-path

README=$OBM_SRCDIR/README.md
VERSION=$(sed -n 's/^VERSION *:= *//p' "$OBM_SRCDIR/Makefile")
ARCH=$(dpkg --print-architecture)
DEB=$OBM_BUILD/outbound-milter_${VERSION}_${ARCH}.deb
[ -f "$DEB" ] || t_bail "no $DEB: run make deb first"
CONF=/etc/outbound-milter/outbound-milter.conf
EX=/usr/share/doc/outbound-milter/examples
SRV=192.0.2.10
CLI=192.0.2.20
SINKPORT=2526
ADMIN_PW=admin-$RANDOM$RANDOM

# the README still says what this test does (a changed step fails here
# first, so that the test is updated with it)
readme_has()
{
	sed -n '/^## Deployment/,/^## /p' "$README" | grep -qF -- "$1"
}
for s in 'apt install ./outbound-milter_' 'aclfile /etc/redis/users.acl' \
	'~obm:* resetchannels +@all -@dangerous' 'ACL SAVE' 'ACL SETUSER default off' \
	'main.cf.snippet' 'master.cf.snippet' 'saslpasswd2' \
	"'pwcheck_method: auxprop'" 'sasldb_path: /etc/postfix/sasl/sasldb2' \
	'outbound-milter -t' 'postsuper -H' 'postqueue -i' \
	'journalctl -t outbound-milter' \
	'/usr/sbin/outbound-milter -c /etc/outbound-milter/outbound-milter.conf' \
	'kill -TERM'; do
	t_ok "README Deployment names: $s" readme_has "$s"
done

t0=$(date +%s)
dr_new || t_bail "no Debian root"
dr_syslog || t_bail "no syslog listener"
SYSLOG=$DR_SYSLOG
dr_netns ip addr add "$SRV/32" dev lo
dr_netns ip addr add "$CLI/32" dev lo

# ---- a stock Debian 12 mail server -----------------------------------------
dr_run debconf-set-selections <<'EOF'
postfix postfix/main_mailer_type select Internet Site
postfix postfix/mailname string mail.example.org
EOF
dr_apt install postfix >"$T/apt-postfix.log" 2>&1 ||
	t_bail "apt install postfix: $(tail -n 20 "$T/apt-postfix.log")"
t_like "Debian's master.cf: the port-25 smtpd is chrooted" \
	"$(grep -E '^smtp +inet' "$DR_ROOT/etc/postfix/master.cf")" '^smtp +inet +n +- +y '

# ---- 1. Install ----------------------------------------------------------
cp "$DEB" "$DR_ROOT/root/"
dr_apt install "/root/$(basename "$DEB")" >"$T/apt-deb.log" 2>&1 ||
	t_bail "apt install the package: $(tail -n 20 "$T/apt-deb.log")"
t_ok "redis-server came with the package" test -x "$DR_ROOT/usr/bin/redis-server"
t_diag "root ready in $(($(date +%s) - t0)) s"

# ---- delivery to the sink (the test's one change) --------------------------
# shellcheck disable=SC2034  # read by postfix.sh's sink_* helpers
SINK_DIR[s]=$T/sink
mkdir -p "$T/sink"
chown postfix "$T/sink"
dr_netns smtp-sink -u postfix -d "$T/sink/%Y%m%d%H%M%S." -h sink \
	"127.0.0.1:$SINKPORT" 100 </dev/null >"$T/sink.log" 2>&1 &
t_track $!
dr_wait_port "$SINKPORT" 10 || t_bail "smtp-sink did not start"
dr_run postconf -e "relayhost = [127.0.0.1]:$SINKPORT"

# ---- 2. Redis (README step): aclfile, users, default off, ACL SAVE ----------
redis_pids()
{
	local p
	for p in $(dr_pids); do
		[ "$(cat "/proc/$p/comm" 2>/dev/null)" = redis-server ] && echo "$p"
	done
}
redis_gone()
{
	[ -z "$(redis_pids)" ]
}
# the init script's stop does not wait for the process to exit
redis_stop()
{
	dr_ns service redis-server stop >/dev/null 2>&1
	t_wait_until 10 redis_gone
}
redis_start()
{
	dr_ns service redis-server start >/dev/null 2>&1
	dr_wait_port 6379 10
}
rcli()
{
	dr_ns redis-cli --no-auth-warning --user admin --pass "$ADMIN_PW" "$@"
}
redis_start || t_bail "redis-server did not start"
cat >"$DR_ROOT/root/redis-step.sh" <<EOF
set -e
echo 'aclfile /etc/redis/users.acl' >>/etc/redis/redis.conf
install -m 0640 -o redis -g redis /dev/null /etc/redis/users.acl
EOF
dr_run sh /root/redis-step.sh || t_bail "redis.conf"
redis_stop && redis_start || t_bail "redis did not restart with the aclfile"
cat >"$DR_ROOT/root/redis-users.sh" <<EOF
set -e
ADMIN_PW='$ADMIN_PW'
PW=\$(head -c 24 /dev/urandom | base64)
install -m 0640 -o root -g outbound-milter /dev/null /etc/outbound-milter/redis.password
printf '%s\n' "\$PW" >/etc/outbound-milter/redis.password
redis-cli <<EOT
ACL SETUSER outbound-milter on >\$PW ~obm:* resetchannels +@all -@dangerous
ACL SETUSER admin on >\$ADMIN_PW ~* &* +@all
ACL SETUSER default off
ACL SAVE
EOT
EOF
t_like "the ACL commands, one redis-cli session (default off does not end it)" \
	"$(dr_ns sh /root/redis-users.sh 2>&1 | tr '\n' ' ')" '^OK OK OK OK $'
t_like "users.acl holds the users" "$(cat "$DR_ROOT/etc/redis/users.acl")" 'user outbound-milter on #'
t_like "the default user refuses anonymous clients" "$(dr_ns redis-cli PING 2>&1)" 'NOAUTH'
t_is "users.acl: owner redis, mode 0640" \
	"$(dr_run stat -c '%U %a' /etc/redis/users.acl)" "redis 640"
t_is "redis.password: root:outbound-milter 0640" \
	"$(dr_run stat -c '%U:%G %a' /etc/outbound-milter/redis.password)" "root:outbound-milter 640"
PW=$(head -n 1 "$DR_ROOT/etc/outbound-milter/redis.password")
mcli()
{
	dr_ns redis-cli --no-auth-warning --user outbound-milter --pass "$PW" "$@"
}
t_like "the milter's user: no other keys" "$(mcli SET other 1 2>&1)" 'NOPERM'
t_like "the milter's user: no administrative command" "$(mcli CONFIG GET dir 2>&1)" 'NOPERM'
t_is "the milter's user: its keys" "$(mcli SET obm:probe 1 2>&1)" OK
mcli DEL obm:probe >/dev/null

# ---- 3. Configure and start in monitor mode ---------------------------------
cat >"$DR_ROOT/root/conf-step.sh" <<'EOF'
set -e
f=/etc/outbound-milter/outbound-milter.conf
sed -i -e 's/^mode = enforce/mode = monitor/' \
	-e 's/^local_domains = {}/local_domains = {"mail.example.org"}/' \
	-e '/^redis {/,/^}/ s|^\( *user = \)""|\1"outbound-milter"|' \
	-e '/^redis {/,/^}/ s|^\( *password_file = \)""|\1"/etc/outbound-milter/redis.password"|' "$f"
EOF
dr_run sh /root/conf-step.sh
t_like "configuration: mode, Redis user and password file set" \
	"$(grep -cE '^mode = monitor|^  user = "outbound-milter"|password_file = "/etc/outbound-milter/redis.password"' \
	"$DR_ROOT$CONF")" '^3$'
out=$(dr_ns outbound-milter -t 2>&1)
t_is "outbound-milter -t passes (Redis AUTH checked)" "$?" 0
[ -n "$out" ] && t_diag "$out"

EXEC=$(sed -n 's/^ExecStart=//p' "$DR_ROOT/lib/systemd/system/outbound-milter.service")
t_is "the unit's command line" "$EXEC" "/usr/sbin/outbound-milter -c $CONF"
# shellcheck disable=SC2086
out=$(dr_ns $EXEC 2>&1)
t_is "the daemon starts with the unit's command line" "$?" 0
[ -n "$out" ] && t_diag "$out"
SOCK=/var/spool/postfix/outbound-milter/milter.sock
t_wait_until 10 test -S "$DR_ROOT$SOCK"
t_is "socket: group postfix, 660" "$(dr_run stat -c '%G %a' "$SOCK" 2>&1)" "postfix 660"
t_is "its folder: outbound-milter:postfix 750" \
	"$(dr_run stat -c '%U:%G %a' "${SOCK%/*}" 2>&1)" "outbound-milter:postfix 750"
MPID=$(cat "$DR_ROOT/run/outbound-milter/outbound-milter.pid" 2>/dev/null)
t_like "pid file" "$MPID" '^[0-9]+$'
t_like "the daemon dropped root" "$(awk '/^Uid:/{print $2}' "/proc/$MPID/status" 2>/dev/null)" '^[1-9]'

# ---- 4. Postfix: the snippets, SASL ----------------------------------------
cat >"$DR_ROOT/root/postfix-step.sh" <<EOF
set -e
cat $EX/main.cf.snippet >>/etc/postfix/main.cf
cat $EX/master.cf.snippet >>/etc/postfix/master.cf
printf '%s\n' 'pwcheck_method: auxprop' 'auxprop_plugin: sasldb' 'mech_list: PLAIN LOGIN' \
       'sasldb_path: /etc/postfix/sasl/sasldb2' >/etc/postfix/sasl/smtpd.conf
for u in alice bob carol; do
	echo "secret-\$u" | saslpasswd2 -p -f /etc/postfix/sasl/sasldb2 -c -u "\$(postconf -h myhostname)" \$u
done
chgrp postfix /etc/postfix/sasl/sasldb2 && chmod 0640 /etc/postfix/sasl/sasldb2
useradd -m alice
EOF
# apt inside the step: the archive cache and the host network
dr_apt install sasl2-bin libsasl2-modules >"$T/apt-sasl.log" 2>&1 ||
	t_bail "apt install sasl2-bin: $(tail -n 20 "$T/apt-sasl.log")"
dr_run sh /root/postfix-step.sh >"$T/postfix-step.log" 2>&1 ||
	t_bail "Postfix step: $(tail -n 20 "$T/postfix-step.log")"
t_is "postfix check" "$(dr_run postfix check 2>&1)" ""
t_is "smtpd_milters" "$(dr_run postconf -h smtpd_milters)" "unix:outbound-milter/milter.sock"
dr_ns service postfix start >"$T/postfix-start.log" 2>&1
dr_wait_port 25 20 || t_bail "Postfix did not listen on 25: $(cat "$T/postfix-start.log")"
dr_wait_port 587 10 || t_bail "Postfix did not listen on 587"

# swaks (the host's) in the root's namespace
send()
{
	local out=$1
	shift
	timeout -k 5 90 nsenter --net="/run/netns/$DR_NS" swaks --timeout 60 \
		--header "Subject: readme path" "$@" >"$T/$out.raw" 2>&1
	local rc=$?
	# swaks marks the TLS part of a session ~> and <~: as plain text for
	# the transcript readers of postfix.sh
	sed -e 's/^ ~> / -> /' -e 's/^<~\* /<** /' -e 's/^<~ /<- /' "$T/$out.raw" >"$T/$out.out"
	return "$rc"
}
submit()
{
	local out=$1 user=$2
	shift 2
	send "$out" --server "$SRV" --port 587 --helo client.example -tls \
		--auth PLAIN --auth-user "$user" --auth-password "secret-$user" \
		--from "$user@mail.example.org" "$@"
}

# ---- inbound on port 25 (chrooted smtpd) -----------------------------------
send in --server "$SRV" --port 25 --local-interface "$CLI" --helo mx.gmail.example \
	--from friend@gmail.com --to alice@mail.example.org --header "X-Test-Id: in"
t_like "port 25: accepted" "$(smtp_data_reply "$T/in.out")" '^250 '
t_unlike "port 25: no tempfail (the chrooted smtpd reaches the socket)" \
	"$(cat "$T/in.out")" '451 4\.7\.1 Service unavailable'
t_wait_until 15 grep -q 'X-Test-Id: in' "$DR_ROOT/var/mail/alice"
t_ok "port 25: delivered to alice's mailbox" grep -q 'X-Test-Id: in' "$DR_ROOT/var/mail/alice"
t_like "port 25: inbound taught the relationship (Redis)" \
	"$(rcli --scan --pattern 'obm:*alice@mail.example.org*rel*' | head -n 1)" 'rel'
t_like "port 25: friend@gmail.com is alice's correspondent" \
	"$(rcli ZSCORE 'obm:{s:alice@mail.example.org}:rel' friend@gmail.com)" '^[0-9]'

# ---- authenticated submission, monitor mode --------------------------------
submit mon alice --to friend@gmail.com --header "X-Test-Id: mon"
t_like "submission (monitor): accepted" "$(smtp_data_reply "$T/mon.out")" '^250 '
t_like "submission: STARTTLS and AUTH" "$(grep -E '^<~ +235 ' "$T/mon.raw")" '235'
t_is "submission (monitor): class header at the sink" "$(sink_class s mon)" personal

# ---- 6. Enforce: -t && SIGHUP ----------------------------------------------
sed -i 's/^mode = monitor/mode = enforce/' "$DR_ROOT$CONF"
dr_ns outbound-milter -t >"$T/t2.log" 2>&1 && kill -HUP "$MPID"
t_wait_until 10 sh -c "grep -q 'outbound-milter.*mode=enforce' '$SYSLOG'"
t_file_like "reload logged with the mode" "$SYSLOG" 'outbound-milter.*(reload|configuration).*mode=enforce'

submit out alice --to friend@gmail.com --header "X-Test-Id: out"
t_like "submission: accepted" "$(smtp_data_reply "$T/out.out")" '^250 '
t_is "submission: X-Outbound-Class personal at the sink" "$(sink_class s out)" personal
t_ge "submission: limited (units in alice's window)" \
	"$(rcli --scan --pattern 'obm:{google}:w:*alice*' | while read -r k; do rcli ZCARD "$k"; done | awk '{s += $1} END {print s + 0}')" 1

# ---- 35 recipients to one network, burst 10 --------------------------------
to=$(for i in $(seq 1 35); do printf 'u%d@gmail.com,' "$i"; done)
submit big bob --to "${to%,}" --header "X-Test-Id: big"
r=$(smtp_rcpt_replies "$T/big.out")
t_is "35 recipients: 10 accepted" "$(grep -c ' 250 ' <<<"$r")" 10
t_is "35 recipients: 25 answered 451 4.7.1" "$(grep -c ' 451 4\.7\.1 ' <<<"$r")" 25
t_unlike "35 recipients: no 421" "$(cat "$T/big.out")" '^<\*\* +421 '
t_like "35 recipients: the transaction completes" "$(smtp_data_reply "$T/big.out")" '^250 .*queued as'
# 10 new correspondents at once, none known, no List-Unsubscribe: the
# default configuration classes it spam-risk and holds it (action hold);
# the administrator reads why and releases it
qid=$(smtp_data_reply "$T/big.out" | sed -n 's/.*queued as \([0-9A-Za-z]*\).*/\1/p')
q=$(dr_ns postqueue -j 2>/dev/null | grep "\"$qid\"")
t_like "35 recipients: held by the class action (hold queue)" "$q" '"queue_name": *"hold"'
t_is "35 recipients: the held message has the 10 accepted recipients" \
	"$(printf '%s' "$q" | grep -o '"address": *"[^"]*"' | sort -u | wc -l)" 10
# released messages wait in the deferred queue for the next queue run:
# postqueue -i delivers it now
dr_ns postsuper -H "$qid" >/dev/null 2>&1
dr_ns postqueue -i "$qid" >/dev/null 2>&1
big_rcpts()
{
	local f
	f=$(sink_file_by_id s big)
	[ -n "$f" ] && grep -c '^X-Rcpt-Args:' "$f"
}
big_done()
{
	[ "$(big_rcpts)" = 10 ]
}
t_wait_until 20 big_done
big_done || t_diag "queue: $(dr_ns postqueue -j 2>&1)" "$(grep "$qid" "$SYSLOG" | tail -n 5)"
t_is "35 recipients: released, the 10 accepted delivered" "$(big_rcpts)" 10

# ---- Redis restarted: the ACL user survives ---------------------------------
redis_stop || t_fail "redis stopped"
redis_start || t_bail "redis did not start again"
t_like "after the restart: the ACL user is there" "$(rcli ACL LIST 2>&1)" 'user outbound-milter on '
t_like "after the restart: default still off" "$(dr_ns redis-cli PING 2>&1)" 'NOAUTH'
out=$(dr_ns outbound-milter -t 2>&1)
t_is "after the restart: outbound-milter -t passes" "$?" 0
[ -n "$out" ] && t_diag "$out"
submit after carol --to friend2@gmail.com --header "X-Test-Id: after"
t_like "after the restart: accepted" "$(smtp_data_reply "$T/after.out")" '^250 '
t_like "after the restart: class header at the sink" "$(sink_class s after)" '^(personal|bulk|unknown)'
t_ge "after the restart: limited (carol's unit in the window)" \
	"$(rcli --scan --pattern 'obm:{google}:w:*carol*' | while read -r k; do rcli ZCARD "$k"; done | awk '{s += $1} END {print s + 0}')" 1
t_file_unlike "no Redis error in the milter's log" "$SYSLOG" 'outbound-milter.*(NOAUTH|NOPERM|WRONGPASS)'

# ---- stop (README: without systemd) ----------------------------------------
dr_ns service postfix stop >/dev/null 2>&1
kill -TERM "$MPID"
t_wait_until 10 sh -c "! kill -0 $MPID"
t_not "the daemon stopped on SIGTERM" kill -0 "$MPID" 2>/dev/null
t_not "it removed its socket" test -e "$DR_ROOT$SOCK"
t_not "it removed its pid file" test -e "$DR_ROOT/run/outbound-milter/outbound-milter.pid"
t_diag "total $(($(date +%s) - t0)) s"
t_done
