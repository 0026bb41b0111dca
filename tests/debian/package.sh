#!/bin/bash
# package.sh - the Debian package on a stock Debian 12 root, the way an
# administrator uses it: `apt install ./outbound-milter_*.deb` pulls its
# dependencies (and its Recommends, redis-server and postfix) from the
# mirror; the user, group and socket folder exist; `outbound-milter -t`
# passes on the shipped configuration; README.Debian's Redis commands (an
# ACL user kept in redis.conf, the password file) work and survive a Redis
# restart, -t refuses a wrong password; the daemon starts with the unit's
# ExecStart command line (no systemd in a chroot: the unit's
# RuntimeDirectory is created as systemd would, then that exact command
# runs) and drops root; the system Postfix, wired with the postconf
# commands of README.Debian (port 25 chrooted as Debian ships it), relays a
# message through the milter to smtp-sink with X-Outbound-Class; an
# upgrade to a rebuilt 0.1.0+t1 keeps a locally edited conffile; remove
# keeps the configuration and the user; purge leaves no file, user or
# group of the package (every file listed before is checked).
#
# The package is BUILD/outbound-milter_VERSION_ARCH.deb; it is (re)built
# with contrib/build-deb when missing or older than the sources. The root
# comes from tests/lib/debroot.sh (cached debootstrap base, own network
# namespace: the root's Postfix and Redis use their stock ports 25 and
# 6379 without meeting the host's).
#
#	bash tests/debian/package.sh	(as root; OBM_SRCDIR, OBM_BUILD)
. "$(dirname "$0")/../lib/common.sh"
. "$OBM_SRCDIR/tests/lib/debroot.sh"
dr_need
t_need dpkg-deb dpkg-buildpackage dpkg-parsechangelog swaks
t_init package

VERSION=$(sed -n 's/^VERSION *:= *//p' "$OBM_SRCDIR/Makefile")
ARCH=$(dpkg --print-architecture)
DEB=$OBM_BUILD/outbound-milter_${VERSION}_${ARCH}.deb
UPVER=$VERSION+t1
UPDEB=$T/up/outbound-milter_${UPVER}_${ARCH}.deb
CONF=/etc/outbound-milter/outbound-milter.conf
UNIT=/lib/systemd/system/outbound-milter.service
SPOOLDIR=/var/spool/postfix/outbound-milter
SOCK=$SPOOLDIR/milter.sock
SINKPORT=2525

# ---- the packages --------------------------------------------------------

stale=""
if [ -f "$DEB" ]; then
	stale=$(cd "$OBM_SRCDIR" && find Makefile debian milter include conf \
		contrib doc -newer "$DEB" -type f -print -quit)
fi
if [ ! -f "$DEB" ] || [ -n "$stale" ]; then
	t_diag "building $DEB (contrib/build-deb)"
	"$OBM_SRCDIR/contrib/build-deb" "$OBM_BUILD" >"$T/build-deb.log" 2>&1 ||
		t_bail "contrib/build-deb failed: $(tail -n 20 "$T/build-deb.log")"
fi
t_ok "the package $DEB exists" test -f "$DEB"

# the upgrade: the same sources rebuilt as VERSION+t1 (a changelog entry on
# top of a copy of debian/changelog)
build_upgrade()
{
	local src=$T/up/src
	mkdir -p "$src"
	(cd "$OBM_SRCDIR" && tar --exclude=./build --exclude=./.git -cf - .) |
		tar -C "$src" -xf - || return 1
	{
		printf 'outbound-milter (%s) bookworm; urgency=medium\n\n' "$UPVER"
		printf '  * Test rebuild.\n\n'
		printf ' -- Test <test@example.com>  %s\n\n' "$(date -R)"
		cat "$OBM_SRCDIR/debian/changelog"
	} >"$src/debian/changelog"
	(cd "$src" && dpkg-buildpackage -b -us -uc) >"$T/build-up.log" 2>&1
}
build_upgrade || t_bail "building $UPVER failed: $(tail -n 20 "$T/build-up.log")"
t_ok "the upgrade package $UPVER built" test -f "$UPDEB"

# ---- a stock Debian 12 root, the package installed with apt ----------------

dr_new || t_bail "no Debian root"
R=$DR_ROOT
dr_syslog || t_bail "no syslog listener"

# Postfix's installer asks what kind of mail system: an Internet site
printf '%s\n' "postfix postfix/main_mailer_type select Internet Site" \
	"postfix postfix/mailname string mx.example.org" |
	dr_run debconf-set-selections
cp "$DEB" "$UPDEB" "$R/root/"

dr_run sh -c 'getent passwd outbound-milter; getent group outbound-milter' \
	>"$T/before-user"
t_is "the stock root has no user or group outbound-milter" "$(cat "$T/before-user")" ""

dr_apt install "/root/$(basename "$DEB")" >"$T/apt-install.log" 2>&1
t_is "apt install ./outbound-milter_${VERSION}_${ARCH}.deb succeeds" "$?" 0
status()
{
	dr_run dpkg-query -W -f='${db:Status-Abbrev}${Version}' "$1" 2>/dev/null
}
t_is "outbound-milter $VERSION installed" "$(status outbound-milter)" "ii $VERSION"
for p in libmilter1.0.1 libhiredis0.14 libconfuse2 libpsl5 libidn2-0 libc-ares2 \
	adduser redis-server postfix; do
	t_like "dependency $p installed by apt" "$(status "$p")" '^ii '
done
t_unlike "no maintainer script error" "$(cat "$T/apt-install.log")" \
	'(subprocess|dpkg: error|returned error exit status)'

t_like "system user outbound-milter" \
	"$(dr_run getent passwd outbound-milter)" \
	'^outbound-milter:x:[0-9]{1,3}:[0-9]+:[^:]*:/nonexistent:/usr/sbin/nologin$'
t_like "system group outbound-milter" \
	"$(dr_run getent group outbound-milter)" '^outbound-milter:x:[0-9]{1,3}:'
t_is "socket folder in Postfix's queue directory" \
	"$(dr_run stat -c '%U %G %a' "$SPOOLDIR")" "outbound-milter postfix 750"
t_is "the configuration is a conffile" \
	"$(dr_run dpkg-query -W -f='${Conffiles}' outbound-milter | awk '{ print $1 }')" \
	"$CONF"
t_like "the conffile runs as outbound-milter" \
	"$(grep -E '^(user|group) = ' "$R$CONF" | tr '\n' ' ')" \
	'^user = "outbound-milter" group = "outbound-milter" $'
t_like "the conffile's socket is in the queue directory" \
	"$(grep -E '^socket = ' "$R$CONF")" "^socket = \"unix:$SOCK\""
t_ok "the unit is enabled" test -L "$R/etc/systemd/system/multi-user.target.wants/outbound-milter.service"

# postinst again (dpkg-reconfigure): nothing changes, no error
dr_run sh -c 'getent passwd outbound-milter; getent group outbound-milter;
	stat -c "%U %G %a" '"$SPOOLDIR" >"$T/state1"
dr_run dpkg-reconfigure outbound-milter >"$T/reconfigure.log" 2>&1
t_is "postinst run twice succeeds" "$?" 0
dr_run sh -c 'getent passwd outbound-milter; getent group outbound-milter;
	stat -c "%U %G %a" '"$SPOOLDIR" >"$T/state2"
t_is "postinst run twice changes nothing" "$(diff "$T/state1" "$T/state2")" ""

# every path of the package, and what postinst made, for the purge check
dr_run dpkg -L outbound-milter >"$T/files.list"
printf '%s\n' "$SPOOLDIR" /etc/outbound-milter >>"$T/files.list"

# ---- Redis with README.Debian's ACL user, -t, the daemon as the unit starts it

# redis_up: Redis in the root's namespace with Debian's configuration file
redis_up()
{
	dr_ns redis-server /etc/redis/redis.conf --daemonize no --supervised no \
		--logfile /var/log/redis/redis-server.log </dev/null >"$T/redis.out" 2>&1 &
	t_track $!
	dr_wait_port 6379 20 || t_bail "redis-server did not start: $(cat "$T/redis.out")"
}

# Redis as Debian's package ships it, and -t on the shipped file (no
# credentials: Debian's Redis lets the default user in)
redis_up
out=$(dr_ns outbound-milter -t -c "$CONF" 2>&1)
t_is "outbound-milter -t passes on the shipped file" "$?" 0
t_is "outbound-milter -t on the shipped file: no message" "$out" ""

# README.Debian step 1, its commands as written, in the root's network
# namespace; its "systemctl restart redis-server" (no systemd here) stops
# Redis and starts it again with Debian's configuration file
readme=$(ls "$R"/usr/share/doc/outbound-milter/README.Debian* 2>/dev/null | head -n 1)
{
	cat <<'EOF'
restart_redis()
{
	redis-cli shutdown nosave >/dev/null 2>&1 || true
	for i in $(seq 100); do redis-cli ping >/dev/null 2>&1 || break; sleep 0.1; done
	redis-server /etc/redis/redis.conf --daemonize yes --supervised no \
		--logfile /var/log/redis/redis-server.log
	for i in $(seq 100); do redis-cli ping 2>&1 | grep -q 'PONG' && break; sleep 0.1; done
}
EOF
	zcat -f "${readme:-/dev/null}" | sed -n '/^1\. Redis/,/^2\. /p' | grep -E '^    ' |
		sed -e 's/^    //' -e 's/^systemctl restart redis-server$/restart_redis/'
} >"$T/redis-step.sh"
t_is "README.Debian's Redis step restarts Redis once" \
	"$(grep -c '^restart_redis$' "$T/redis-step.sh")" 1
dr_ns bash -e <"$T/redis-step.sh" >"$T/redis-step.log" 2>&1
t_is "README.Debian's Redis commands run" "$?" 0
t_is "each of the four redis-cli commands answers OK" "$(grep -c '^OK$' "$T/redis-step.log")" 4
t_is "the password file: root outbound-milter 640" \
	"$(dr_run stat -c '%U %G %a' /etc/outbound-milter/redis.password 2>/dev/null)" \
	"root outbound-milter 640"
t_like "the default user is off: a new connection must log in" \
	"$(dr_ns redis-cli ping 2>&1)" 'NOAUTH|NOPERM|disabled'

# README.Debian step 2: the milter logs in as that user (Redis keeps it in
# users.acl: checked after a restart of Redis)
sed -i -e 's|^  user = ""|  user = "outbound-milter"|' \
	-e 's|^  password_file = ""|  password_file = "/etc/outbound-milter/redis.password"|' "$R$CONF"
rpid=$(dr_pids | while read -r p; do
	case $(cat "/proc/$p/comm" 2>/dev/null) in redis-server) echo "$p" ;; esac
done | head -n 1)
t_kill_pid "${rpid:-0}" 10
redis_up
out=$(dr_ns outbound-milter -t -c "$CONF" 2>&1)
t_is "-t passes with the ACL user of README.Debian after a Redis restart" "$?" 0
[ -n "$out" ] && t_diag "$out"
sed -i -e 's|^  password_file = .*|  password_file = "/etc/outbound-milter/wrong.password"|' "$R$CONF"
install -m 0640 -g "$(dr_run id -g outbound-milter)" /dev/null "$R/etc/outbound-milter/wrong.password"
echo wrong >"$R/etc/outbound-milter/wrong.password"
out=$(dr_ns outbound-milter -t -c "$CONF" 2>&1)
t_not "-t fails with a wrong password" test "$?" -eq 0
t_diag "$out"
sed -i -e 's|^  password_file = .*|  password_file = "/etc/outbound-milter/redis.password"|' "$R$CONF"
rm -f "$R/etc/outbound-milter/wrong.password"

execstart=$(sed -n 's/^ExecStart=//p' "$R$UNIT")
rundir=$(sed -n 's/^RuntimeDirectory=//p' "$R$UNIT")
runmode=$(sed -n 's/^RuntimeDirectoryMode=//p' "$R$UNIT")
t_like "the unit's ExecStart" "$execstart" "^/usr/sbin/outbound-milter .*$CONF"
t_like "the unit lets the daemon write its socket folder" \
	"$(grep -E '^ReadWritePaths=' "$R$UNIT")" "^ReadWritePaths=.*-?$SPOOLDIR( |\$)"
pidfile=$(sed -n 's/^PIDFile=//p' "$R$UNIT")

# what systemd does before ExecStart, then the command itself
[ -n "$rundir" ] && dr_run install -d -m "${runmode:-0755}" "/run/$rundir"
# shellcheck disable=SC2086
dr_ns $execstart </dev/null >"$T/start.out" 2>&1
t_is "the unit's command line starts the daemon (exit 0)" "$?" 0
[ -s "$T/start.out" ] && t_diag "$(cat "$T/start.out")"
mpid=$(cat "$R$pidfile" 2>/dev/null)
[ -n "$mpid" ] && t_track "$mpid"
t_ok "the daemon runs (PID file $pidfile)" t_alive "${mpid:-0}"
uid=$(dr_run id -u outbound-milter)
t_like "the daemon dropped root to outbound-milter" \
	"$(awk '/^(Uid|Gid):/' "/proc/${mpid:-0}/status" 2>/dev/null | tr -s '\t' ' ' | tr '\n' ' ')" \
	"^Uid: $uid $uid $uid $uid Gid: ([0-9]+ ){4}$"
t_wait_socket "$R$SOCK" 10
t_is "socket srw-rw---- group postfix" \
	"$(dr_run stat -c '%A %G' "$SOCK" 2>/dev/null)" "srw-rw---- postfix"

# ---- Postfix wired per README.Debian, a message to smtp-sink ----------------

zcat -f "${readme:-/dev/null}" | grep -E '^    postconf ' | sed 's/^    //' >"$T/postconf.sh"
t_ge "README.Debian has the postconf commands" "$(wc -l <"$T/postconf.sh")" 10
dr_run sh -e <"$T/postconf.sh" >"$T/postconf.log" 2>&1
t_is "README.Debian's postconf commands run" "$?" 0
t_is "smtpd_milters names the socket relative to the queue directory" \
	"$(dr_run postconf -h smtpd_milters)" "unix:outbound-milter/milter.sock"
t_like "port 25 smtpd stays chrooted (Debian's master.cf)" \
	"$(dr_run postconf -M smtp/inet)" '^smtp +inet +n +- +y +- +- +smtpd'
# the test's own: deliver everything to the sink, a log file, no DNS
dr_run postconf -e "relayhost = [127.0.0.1]:$SINKPORT" \
	"maillog_file = /var/log/postfix.log" "smtp_dns_support_level = disabled" \
	"inet_protocols = ipv4"

dr_run install -d -o postfix -g postfix -m 0755 /var/tmp/sink
dr_ns smtp-sink -u postfix -d "/var/tmp/sink/%M." -h sink.example \
	"127.0.0.1:$SINKPORT" 50 </dev/null >"$T/sink.out" 2>&1 &
t_track $!
dr_wait_port "$SINKPORT" 10 || t_bail "smtp-sink did not start"

# as the postfix unit: configure-instance.sh (the chroot files), then start
dr_ns /usr/lib/postfix/configure-instance.sh - >"$T/postfix-start.log" 2>&1
dr_ns postfix start >>"$T/postfix-start.log" 2>&1 || t_bail "postfix start: $(cat "$T/postfix-start.log")"
ppid=$(awk '{ print $1 }' "$R/var/spool/postfix/pid/master.pid" 2>/dev/null)
[ -n "$ppid" ] && t_track "$ppid"
dr_wait_port 25 20 || t_bail "Postfix does not listen on 25"

dr_netns swaks --server 127.0.0.1:25 --from alice@example.org --to bob@example.net \
	--header "Subject: package test" --body "hello through the package" \
	>"$T/swaks.log" 2>&1
t_is "the message is accepted on port 25 (chrooted smtpd)" "$?" 0
sinkfile()
{
	ls "$R"/var/tmp/sink/* 2>/dev/null | head -n 1
}
t_wait_until 30 test -n "$(sinkfile)"
f=$(sinkfile)
t_ok "the message reached smtp-sink" test -n "$f"
t_like "it carries X-Outbound-Class" "$(grep -i '^X-Outbound-Class:' "${f:-/dev/null}")" \
	'^X-Outbound-Class: personal'
t_like "the milter logged it" \
	"$(grep -E 'outbound-milter\[[0-9]+\]: .*class=personal' "$DR_SYSLOG")" 'class=personal'
if [ -z "$f" ]; then
	t_diag "swaks:" "$(tail -n 15 "$T/swaks.log")" "postfix:" \
		"$(tail -n 20 "$R/var/log/postfix.log" 2>/dev/null)" "syslog:" "$(tail -n 20 "$DR_SYSLOG")"
fi

# stop the daemon as systemd would (SIGTERM), then Postfix
t_ok "the daemon stops on SIGTERM" t_kill_pid "${mpid:-0}" 10
t_untrack "${mpid:-0}"
[ -n "$rundir" ] && rm -rf "${R:?}/run/$rundir"
dr_ns postfix stop >/dev/null 2>&1
t_wait_until 10 sh -c "! kill -0 ${ppid:-0} 2>/dev/null"

# ---- upgrade: a locally edited conffile is kept ---------------------------

sed -i -e 's/^mode = enforce/mode = monitor/' "$R$CONF"
echo '# local edit kept by the upgrade' >>"$R$CONF"
sum_before=$(md5sum <"$R$CONF")
dr_apt install "/root/$(basename "$UPDEB")" >"$T/apt-upgrade.log" 2>&1
t_is "apt install of $UPVER (upgrade) succeeds" "$?" 0
t_is "outbound-milter $UPVER installed" "$(status outbound-milter)" "ii $UPVER"
t_is "the edited conffile is kept" "$(md5sum <"$R$CONF")" "$sum_before"
t_is "no .dpkg-dist/.dpkg-new/.dpkg-old left" \
	"$(ls "$R/etc/outbound-milter/" | grep -E '\.dpkg-' || true)" ""
out=$(dr_ns outbound-milter -t -c "$CONF" 2>&1)
t_is "-t still passes after the upgrade" "$?" 0
[ -n "$out" ] && t_diag "$out"

# ---- remove keeps configuration and user; purge removes everything ----------

dr_run dpkg --remove outbound-milter >"$T/remove.log" 2>&1
t_is "dpkg --remove succeeds" "$?" 0
t_ok "remove: the program is gone" test ! -e "$R/usr/sbin/outbound-milter"
t_ok "remove: the conffile is kept" test -f "$R$CONF"
t_like "remove: the user is kept" "$(dr_run getent passwd outbound-milter)" '^outbound-milter:'

dr_run dpkg --purge outbound-milter >"$T/purge.log" 2>&1
t_is "dpkg --purge succeeds" "$?" 0
t_is "purge: the package is unknown to dpkg" "$(status outbound-milter)" ""
n=0
left=""
while IFS= read -r p; do
	case $p in
	/. | "") continue ;;
	esac
	# folders other packages share (/usr/share/man/man8..., /lib, a
	# link to usr/lib) stay
	if [ -d "$R$p" ]; then
		case $p in
		/etc/outbound-milter | "$SPOOLDIR" | */doc/outbound-milter*) ;;
		*) continue ;;
		esac
	fi
	n=$((n + 1))
	[ -e "$R$p" ] || [ -L "$R$p" ] && left="$left $p"
done <"$T/files.list"
t_ge "purge: files of the package checked" "$n" 15
t_is "purge: none of them is left" "$left" ""
rm -f "$R/root/"outbound-milter_*.deb
t_is "purge: no file named outbound-milter anywhere in the root" \
	"$(cd "$R" && find . -xdev -name '*outbound-milter*' -print 2>/dev/null)" ""
t_is "purge: no user or group outbound-milter" \
	"$(grep -h '^outbound-milter:' "$R/etc/passwd" "$R/etc/group" \
		"$R/etc/shadow" "$R/etc/gshadow" 2>/dev/null)" ""
t_is "purge: no group lists outbound-milter as a member" \
	"$(grep -E '[:,]outbound-milter(,|$)' "$R/etc/group" || true)" ""

t_done
