#!/usr/bin/perl
# milter-client.pl - a small milter protocol (version 6) client that plays
# the bad-input corpus (tests/badinput/corpus/*.case) against a running
# milter and checks every answer. Unlike miltertest it sends any bytes and
# any length (a 1 MB header, NUL bytes inside arguments) and reads the
# reply texts and header changes.
#
#   milter-client.pl [--pid PID] SOCKET CASE...
#
# SOCKET is unix:PATH or inet:PORT@HOST. Prints "ok - ..." / "not ok - ..."
# lines, "# ..." diagnostics, and "# end of cases" when it ran to its end.
# With --pid, checks after every case that the milter is still running.
#
# Case file syntax, one command a line ('#' starts a comment line):
#   desc TEXT			what the case is about
#   connect HOST IP		(IP "" sends an unknown address family)
#   macro STAGE NAME VALUE ...	STAGE: connect helo mail rcpt eom
#   helo NAME | mail ARG... | rcpt ARG... | header NAME VALUE | eoh
#   body TEXT | eom | abort | reconnect
#   timeout SECONDS		how long to wait for an answer (default 30)
#   rcpts N TEMPLATE		N recipients, %d in TEMPLATE replaced by 1..N
# Arguments are "quoted strings" with \r \n \t \0 \\ \" \xHH escapes,
# optionally repeated ("a" * 1000) and joined with +, or bare words.
# After "=>" come the expected answers:
#   continue accept tempfail reject discard	the reply
#   replycode:"451 4.7.1"	a reply code whose text starts like this
#   closed			the milter may close the connection
#   none			no answer within the timeout (libmilter drops a
#				command that is out of order)
# After no answer or a closed connection the case goes on with a new
# connection (which needs its connect line again).
#   X*N				(with rcpts) N answers X, in order
#   addheader:NAME		eom: the header NAME is added
#   addheader:NAME~ERE		... with a value matching ERE (Perl regex)
#   quarantine / noquarantine	eom: the message is (not) held
# A command without "=>" must get some answer that is not a 5xx.
use strict;
use warnings;
use IO::Socket::UNIX;
use IO::Socket::INET;
use IO::Select;
use File::Basename qw(dirname);
use lib dirname(__FILE__);
use CaseText qw(unescape parse_args show);

my $pid = 0;
if (@ARGV >= 2 && $ARGV[0] eq '--pid') {
	shift @ARGV;
	$pid = shift @ARGV;
}
my $sockname = shift @ARGV or die "usage: milter-client.pl [--pid PID] SOCKET CASE...\n";
my $TIMEOUT = 30;

# protocol constants
my %STAGE = (connect => 'C', helo => 'H', mail => 'M', rcpt => 'R', eom => 'E');
my $SMFIP_NOCONNECT = 0x1;
my $SMFIP_NOHELO = 0x2;
my $SMFIP_NOMAIL = 0x4;
my $SMFIP_NORCPT = 0x8;
my $SMFIP_NOBODY = 0x10;
my $SMFIP_NOHDRS = 0x20;
my $SMFIP_NOEOH = 0x40;
my $SMFIP_NR_HDR = 0x80;
my $SMFIP_NR_CONN = 0x1000;
my $SMFIP_NR_HELO = 0x2000;
my $SMFIP_NR_MAIL = 0x4000;
my $SMFIP_NR_RCPT = 0x8000;
my $SMFIP_NR_EOH = 0x40000;
my $SMFIP_NR_BODY = 0x80000;
my %NAME = (c => 'continue', a => 'accept', t => 'tempfail', r => 'reject', d => 'discard',
    y => 'replycode', s => 'skip');

my ($npass, $nfail) = (0, 0);

sub ok
{
	my ($cond, $name, @diag) = @_;
	if ($cond) {
		$npass++;
		print "ok - $name\n";
	} else {
		$nfail++;
		print "not ok - $name\n";
		print "# $_\n" for map { split /\n/ } @diag;
	}
	return $cond;
}

# ---- the connection ---------------------------------------------------------

my ($S, $sel, $opts, $buf);

sub open_conn
{
	if ($sockname =~ /^(?:unix|local):(.*)$/) {
		$S = IO::Socket::UNIX->new(Peer => $1, Type => SOCK_STREAM);
	} elsif ($sockname =~ /^inet:(\d+)(?:@(.*))?$/) {
		$S = IO::Socket::INET->new(PeerAddr => $2 // '127.0.0.1', PeerPort => $1);
	}
	die "cannot connect to $sockname: $!\n" unless $S;
	binmode($S);
	$S->autoflush(1);
	$sel = IO::Select->new($S);
	$buf = '';
	# offer every action and every protocol step
	send_pkt('O', pack('NNN', 6, 0x1ff, 0));
	my ($cmd, $data) = read_pkt();
	die "negotiation failed\n" unless defined $cmd && $cmd eq 'O';
	my ($ver, $act, $proto) = unpack('NNN', $data);
	$opts = $proto;
}

sub close_conn
{
	return unless $S;
	eval { local $SIG{PIPE} = 'IGNORE'; send_pkt('Q', '') };
	close($S);
	$S = undef;
}

sub send_pkt
{
	my ($cmd, $data) = @_;
	local $SIG{PIPE} = 'IGNORE';
	my $p = pack('N', length($data) + 1) . $cmd . $data;
	my $off = 0;
	while ($off < length($p)) {
		my $n = syswrite($S, $p, length($p) - $off, $off);
		die "write: $!\n" unless defined $n;
		$off += $n;
	}
}

my $timed_out = 0;

sub fill
{
	my ($need) = @_;
	$timed_out = 0;
	while (length($buf) < $need) {
		if (!$sel->can_read($TIMEOUT)) {
			$timed_out = 1;
			return 0;
		}
		my $n = sysread($S, my $chunk, 65536);
		return 0 unless $n;
		$buf .= $chunk;
	}
	return 1;
}

# one packet: (cmd, data), or () when the milter closed or did not answer
sub read_pkt
{
	return () unless fill(4);
	my $len = unpack('N', substr($buf, 0, 4));
	return () unless $len >= 1 && fill(4 + $len);
	my $cmd = substr($buf, 4, 1);
	my $data = substr($buf, 5, $len - 1);
	substr($buf, 0, 4 + $len) = '';
	return ($cmd, $data);
}

# the final reply to a command, with the changes that came before it:
# { reply => NAME, text => ..., add => [[name, value]...], quarantine => reason }
sub read_reply
{
	my %r = (add => [], chg => []);
	$timed_out = 0;
	for (;;) {
		my ($cmd, $data) = read_pkt();
		if (!defined $cmd) {
			$r{reply} = $timed_out ? 'none' : 'closed';
			return \%r;
		}
		if ($cmd eq 'h') {
			my ($n, $v) = split /\0/, $data, -1;
			push @{ $r{add} }, [$n, $v];
		} elsif ($cmd eq 'i') {
			my ($n, $v) = split /\0/, substr($data, 4), -1;
			push @{ $r{add} }, [$n, $v];
		} elsif ($cmd eq 'm') {
			my ($n, $v) = split /\0/, substr($data, 4), -1;
			push @{ $r{chg} }, [unpack('N', $data), $n, $v];
		} elsif ($cmd eq 'q') {
			($r{quarantine}) = split /\0/, $data;
		} elsif ($cmd eq 'p') {
			next;
		} elsif (exists $NAME{$cmd}) {
			$r{reply} = $NAME{$cmd};
			($r{text}) = split /\0/, $data if $cmd eq 'y';
			return \%r;
		} else {
			$r{reply} = "unknown-packet-$cmd";
			return \%r;
		}
	}
}

# ---- case files ---------------------------------------------------------------

sub parse_expect
{
	my ($text) = @_;
	my @e;
	while ($text =~ /\G\s*([a-z]+)(?::("((?:[^"\\]|\\.)*)"|[^\s*]+))?(?:\*(\d+))?/gc) {
		my ($what, $arg, $n) = ($1, defined $3 ? unescape($3) : $2, $4 // 1);
		push @e, { what => $what, arg => $arg, n => $n };
	}
	return @e;
}

# ---- checks -------------------------------------------------------------------

# a reply that a bad input may never get unless the case says so
sub is_5xx
{
	my ($r) = @_;
	return $r->{reply} eq 'reject' || ($r->{reply} eq 'replycode' && ($r->{text} // '') =~ /^5/);
}

sub rdesc
{
	my ($r) = @_;
	my $s = $r->{reply};
	$s .= ' "' . show($r->{text} // '') . '"' if $r->{reply} eq 'replycode';
	$s .= ' +' . join(',', map { "$_->[0]: " . show($_->[1]) } @{ $r->{add} }) if @{ $r->{add} };
	$s .= ' quarantine "' . show($r->{quarantine}) . '"' if defined $r->{quarantine};
	return $s;
}

sub reply_matches
{
	my ($r, $e) = @_;
	return 1 if $e->{what} eq 'closed' && $r->{reply} eq 'closed';
	return 1 if $e->{what} eq 'none' && $r->{reply} eq 'none';
	return 0 if $r->{reply} ne ($e->{what} eq 'replycode' ? 'replycode' : $e->{what});
	return 1 unless $e->{what} eq 'replycode' && defined $e->{arg};
	return index($r->{text} // '', $e->{arg}) == 0;
}

# check one reply against the expectations that are about the reply itself
sub check_reply
{
	my ($label, $r, @exp) = @_;
	my @rep = grep { $_->{what} !~ /^(addheader|quarantine|noquarantine)$/ } @exp;
	my $good;
	if (!@rep) {
		$good = $r->{reply} ne 'closed' && !is_5xx($r) && $r->{reply} !~ /^unknown/;
		ok($good, "$label: answered, no 5xx", 'got: ' . rdesc($r));
	} else {
		$good = grep { reply_matches($r, $_) } @rep;
		ok($good, "$label: " . join(' or ', map { $_->{what} .
		    (defined $_->{arg} ? ' "' . $_->{arg} . '"' : '') } @rep) .
		    (@rep > 1 ? ' (got ' . $r->{reply} . ')' : ''), 'got: ' . rdesc($r));
	}
	for my $e (@exp) {
		if ($e->{what} eq 'addheader') {
			my ($name, $re) = split /~/, $e->{arg}, 2;
			my @h = grep { lc($_->[0]) eq lc($name) } @{ $r->{add} };
			ok(scalar(@h == 1 && (!defined $re || $h[0][1] =~ /$re/)) ? 1 : 0,
			    "$label: adds one $name" . (defined $re ? " matching /$re/" : ''),
			    'got: ' . rdesc($r));
		} elsif ($e->{what} eq 'quarantine') {
			ok(defined $r->{quarantine}, "$label: held", 'got: ' . rdesc($r));
		} elsif ($e->{what} eq 'noquarantine') {
			ok(!defined $r->{quarantine}, "$label: not held", 'got: ' . rdesc($r));
		}
	}
	return $r->{reply} ne 'closed';
}

sub step
{
	my ($cmd, $data, $nr) = @_;
	send_pkt($cmd, $data);
	return { reply => 'continue', add => [], chg => [] } if $nr;
	return read_reply();
}

# ---- running a case -------------------------------------------------------------

sub run_case
{
	my ($file) = @_;
	(my $case = $file) =~ s{.*/}{};
	$case =~ s/\.case$//;
	open(my $in, '<', $file) or die "$file: $!\n";
	my @lines = <$in>;
	close($in);
	print "# case $case\n";
	eval { open_conn() };
	if ($@) {
		ok(0, "$case: connect to the milter", $@);
		return;
	}
	my $alive = 1;
	my $ln = 0;
	for my $line (@lines) {
		$ln++;
		chomp $line;
		next if $line =~ /^\s*(#|$)/;
		my ($cmdpart, $exppart) = split /\s=>\s*/, $line, 2;
		$cmdpart =~ s/^\s*(\S+)\s*//;
		my $verb = $1;
		my $where = "$file:$ln";
		if ($verb eq 'desc') {
			print "# $cmdpart\n";
			next;
		}
		last unless $alive;
		my @a = eval { parse_args($cmdpart, $where) };
		if ($@) {
			ok(0, "$where: case syntax", $@);
			next;
		}
		my @exp = defined $exppart ? parse_expect($exppart) : ();
		my $label = "$case:$ln $verb" . (@a ? ' ' . join(' ', map { show($_) } @a[0 .. ($#a < 1 ? $#a : 1)]) : '');
		my $r;
		eval {
			if ($verb eq 'macro') {
				my $st = $STAGE{ shift @a } // die "$where: unknown macro stage\n";
				send_pkt('D', $st . join('', map { "$_\0" } @a));
				return;
			} elsif ($verb eq 'connect') {
				my ($host, $ip) = @a;
				my $data = $ip eq '' ? "$host\0U" :
				    "$host\0" . ($ip =~ /:/ ? '6' : '4') . pack('n', 25) . "$ip\0";
				$r = $opts & $SMFIP_NOCONNECT ? undef :
				    step('C', $data, $opts & $SMFIP_NR_CONN);
			} elsif ($verb eq 'helo') {
				$r = $opts & $SMFIP_NOHELO ? undef : step('H', "$a[0]\0", $opts & $SMFIP_NR_HELO);
			} elsif ($verb eq 'mail') {
				$r = step('M', join('', map { "$_\0" } @a), $opts & $SMFIP_NR_MAIL);
			} elsif ($verb eq 'rcpt') {
				$r = step('R', join('', map { "$_\0" } @a), $opts & $SMFIP_NR_RCPT);
			} elsif ($verb eq 'rcpts') {
				my ($n, $tpl) = @a;
				my @got;
				for my $i (1 .. $n) {
					(my $addr = $tpl) =~ s/%d/$i/g;
					my $x = step('R', "$addr\0", $opts & $SMFIP_NR_RCPT);
					push @got, $x;
					last if $x->{reply} eq 'closed';
				}
				# compare in order with X*N expectations
				my @want = map { ($_) x $_->{n} } @exp;
				my $bad = '';
				for my $i (0 .. $#got) {
					if (@want ? !reply_matches($got[$i], $want[$i] // { what => '-' }) :
					    ($got[$i]{reply} eq 'closed' || is_5xx($got[$i]))) {
						$bad = "recipient " . ($i + 1) . ': ' . rdesc($got[$i]);
						last;
					}
				}
				$bad ||= 'only ' . scalar(@got) . " answers" if @got < $n;
				my %cnt;
				$cnt{ rdesc($_) }++ for @got;
				ok($bad eq '', "$label: " . (@want ? join(', ', map { "$_->{what}" .
				    (defined $_->{arg} ? " \"$_->{arg}\"" : '') . " x $_->{n}" } @exp) :
				    'every recipient answered, no 5xx'),
				    $bad, map { "$cnt{$_} x $_" } sort keys %cnt);
				$alive = !@got || $got[-1]{reply} ne 'closed';
				return;
			} elsif ($verb eq 'header') {
				$r = $opts & $SMFIP_NOHDRS ? undef :
				    step('L', "$a[0]\0$a[1]\0", $opts & $SMFIP_NR_HDR);
			} elsif ($verb eq 'eoh') {
				$r = $opts & $SMFIP_NOEOH ? undef : step('N', '', $opts & $SMFIP_NR_EOH);
			} elsif ($verb eq 'body') {
				if (!($opts & $SMFIP_NOBODY)) {
					my $b = $a[0];
					while (length($b) > 65535) {
						my $x = step('B', substr($b, 0, 65535, ''),
						    $opts & $SMFIP_NR_BODY);
						return if ($r = $x)->{reply} eq 'closed';
					}
					$r = step('B', $b, $opts & $SMFIP_NR_BODY);
				}
			} elsif ($verb eq 'eom') {
				$r = step('E', '', 0);
			} elsif ($verb eq 'abort') {
				send_pkt('A', '');
				return;
			} elsif ($verb eq 'timeout') {
				$TIMEOUT = $a[0];
				return;
			} elsif ($verb eq 'reconnect') {
				close_conn();
				open_conn();
				return;
			} else {
				die "$where: unknown command '$verb'\n";
			}
		};
		if ($@) {
			if ($@ =~ /^write:/) {
				$r = { reply => 'closed', add => [], chg => [] };
			} else {
				ok(0, "$label", $@);
				next;
			}
		}
		next unless defined $r;
		$alive = check_reply($label, $r, @exp);
		if ($r->{reply} eq 'none' || $r->{reply} eq 'closed') {
			# out of step or gone: go on with a new connection
			close_conn();
			eval { open_conn() };
			$alive = !$@;
		}
	}
	close_conn();
	if ($pid) {
		select(undef, undef, undef, 0.05);
		ok(kill(0, $pid) && !zombie($pid), "$case: the milter is still running");
	}
}

sub zombie
{
	my ($p) = @_;
	open(my $f, '<', "/proc/$p/stat") or return 1;
	my $st = <$f>;
	close($f);
	return $st =~ /\)\s+[ZX]\s/;
}

run_case($_) for @ARGV;
print "# end of cases: $npass passed, $nfail failed\n";
exit($nfail ? 1 : 0);
