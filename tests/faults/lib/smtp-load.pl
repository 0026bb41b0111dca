#!/usr/bin/perl
# smtp-load.pl - SMTP load generator for the fault and load tests: several
# concurrent sessions (one process each), every transaction's replies
# recorded, so that a test can account for each message and recipient
# exactly (sent = delivered + tempfailed + rejected, nothing unknown).
#
#   smtp-load.pl run --port P[,P...] --out DIR [options]
#	--sessions N	concurrent SMTP sessions (default 20)
#	--messages M	messages in all (default 1000); with --stop-file the
#			most that are sent
#	--stop-file F	stop each session before its next message once F exists
#	--per-conn K	messages per connection before QUIT (default 5)
#	--rcpts LIST	recipients per message, cycled (default 1,3,10)
#	--domains LIST	recipient domains, cycled per recipient
#	--senders N	distinct senders s0..s(N-1) (default 50)
#	--sender-domain D	(default example.com); one per port with D1,D2,...
#	--id-prefix P	message ids P-SESSION-SEQ (default m)
#	--header H	one more header line (repeatable)
#	--body-bytes N	body size (default 200)
#	--timeout S	seconds to wait for any reply (default 60)
#	--pause MS	pause between messages of a session (default 0)
#	--retry-pause MS	pause after a message that was not accepted, as
#			a real client would (default 0)
#   smtp-load.pl summary DIR [--from MS] [--to MS] [--port P]
#	totals over the result files, as NAME=VALUE lines; --from/--to keep
#	the messages that started at or after FROM and ended at or before TO
#	(epoch ms); --port those sent to one port
#
# Sessions take the ports in turn. Each session writes DIR/result.N, one
# line per message:
#   ID PORT SENDER NRCPT ACC T4 R5 NOREPLY DATA OUTCOME T0 T1 MAXRCPT EOM MAXCMD
# ACC/T4/R5: recipients answered 2xx/4xx/5xx, NOREPLY: recipients never
# answered because the connection broke (or could not be made); DATA: the reply code to the end of the
# message ("-" when not sent); OUTCOME: delivered (2xx to the message),
# tempfailed (a 4xx reply ended it: the client keeps it), broken (the
# connection could not be made, or broke without a reply before the end of
# the message was sent: the client keeps it too, but no server said 4xx, so
# it is counted apart from tempfailed), rejected (5xx),
# error (the connection broke after the end of the message was sent and
# before its reply: its fate is unknown to the client); T0/T1 start and end (epoch ms); MAXRCPT/EOM/MAXCMD the
# slowest RCPT reply, the end-of-message reply and the slowest reply of any
# command (ms).
use strict;
use warnings;
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(time sleep);
use POSIX qw(:sys_wait_h);
use Getopt::Long qw(GetOptionsFromArray);

sub now_ms { return int(time() * 1000); }

sub usage
{
	print STDERR "usage: smtp-load.pl run --port P --out DIR [options]\n" .
	    "       smtp-load.pl summary DIR [--from MS --to MS]\n";
	exit 2;
}

# ---- one SMTP connection ------------------------------------------------

package Conn;

sub new
{
	my ($class, $port, $timeout) = @_;
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
	    Proto => 'tcp', Timeout => $timeout);
	return undef unless $s;
	$s->autoflush(1);
	binmode($s);
	return bless { s => $s, buf => '', timeout => $timeout, sel => IO::Select->new($s) },
	    $class;
}

# read one complete reply; returns (code, text, ms) or (undef) on EOF/timeout
sub reply
{
	my ($c, $t0) = @_;
	my $text = '';
	for (;;) {
		while ($c->{buf} =~ s/^([^\n]*)\n//) {
			my $line = $1;
			$line =~ s/\r$//;
			$text .= $line . "\n";
			if ($line =~ /^(\d{3})(?: |$)/) {
				return ($1, $text, main::now_ms() - $t0);
			}
			return (undef) unless $line =~ /^\d{3}-/;
		}
		my @r = $c->{sel}->can_read($c->{timeout});
		return (undef) unless @r;
		my $n = sysread($c->{s}, my $chunk, 65536);
		return (undef) unless $n;
		$c->{buf} .= $chunk;
	}
}

# send LINE (CRLF added) and read the reply
sub cmd
{
	my ($c, $line) = @_;
	my $t0 = main::now_ms();
	my $ok = eval { local $SIG{PIPE} = 'IGNORE'; print { $c->{s} } $line . "\r\n" };
	return (undef) unless $ok;
	return $c->reply($t0);
}

sub raw
{
	my ($c, $data) = @_;
	my $t0 = main::now_ms();
	my $ok = eval { local $SIG{PIPE} = 'IGNORE'; print { $c->{s} } $data };
	return (undef) unless $ok;
	return $c->reply($t0);
}

sub close
{
	my ($c) = @_;
	close($c->{s});
}

package main;

# ---- run ------------------------------------------------------------------

sub run
{
	my @args = @_;
	my %o = (sessions => 20, messages => 1000, 'per-conn' => 5, rcpts => '1,3,10',
	    domains => 'gmail.com,yahoo.com,example.org,mail.example.co.uk,googlemail.com,' .
	    'example.net,[192.0.2.1]', senders => 50, 'sender-domain' => 'example.com',
	    'id-prefix' => 'm', 'body-bytes' => 200, timeout => 60, pause => 0,
	    'retry-pause' => 0,
	    'stop-file' => '', header => []);
	GetOptionsFromArray(\@args, \%o, 'port=s', 'out=s', 'sessions=i', 'messages=i',
	    'stop-file=s', 'per-conn=i', 'rcpts=s', 'domains=s', 'senders=i',
	    'sender-domain=s', 'id-prefix=s', 'header=s@', 'body-bytes=i', 'timeout=i',
	    'pause=i', 'retry-pause=i') or usage();
	usage() unless $o{port} && $o{out};
	my @ports = split /,/, $o{port};
	my @sdom = split /,/, $o{'sender-domain'};
	my @rc = split /,/, $o{rcpts};
	my @doms = split /,/, $o{domains};
	mkdir $o{out};

	my @kids;
	for my $n (0 .. $o{sessions} - 1) {
		my $pid = fork();
		die "fork: $!" unless defined $pid;
		if ($pid == 0) {
			my $pi = $n % @ports;
			session($n, $ports[$pi], $sdom[$pi % @sdom], \%o, \@rc, \@doms);
			exit 0;
		}
		push @kids, $pid;
	}
	# a TERM to the parent stops every session
	$SIG{TERM} = sub { kill 'TERM', @kids; };
	my $bad = 0;
	for my $pid (@kids) {
		waitpid($pid, 0);
		$bad++ if $? != 0;
	}
	exit($bad ? 1 : 0);
}

sub session
{
	my ($n, $port, $sdom, $o, $rc, $doms) = @_;
	my $S = $o->{sessions};
	my $body = ('x' x 70 . "\r\n") x (int($o->{'body-bytes'} / 72) + 1);
	open(my $out, '>', "$o->{out}/result.$n") or die "$o->{out}/result.$n: $!";
	$out->autoflush(1);
	my ($c, $in_conn) = (undef, 0);
	my $seq = 0;
	my $stop = 0;
	$SIG{TERM} = sub { $stop = 1; };

	for (my $k = $n; $k < $o->{messages}; $k += $S) {
		last if $stop;
		last if $o->{'stop-file'} ne '' && -e $o->{'stop-file'};
		$seq++;
		my $id = "$o->{'id-prefix'}-$n-$seq";
		my $nr = $rc->[$k % @$rc];
		my $sender = 's' . ($k % $o->{senders}) . '@' . $sdom;
		my @to;
		for my $j (0 .. $nr - 1) {
			my $d = $doms->[($k + $j) % @$doms];
			push @to, "r$k.$j\@$d";
		}
		my %r = (acc => 0, t4 => 0, r5 => 0, noreply => 0, data => '-',
		    outcome => 'error', maxrcpt => 0, eom => 0, maxcmd => 0);
		my $t0 = now_ms();

		# connect (and greet) when needed
		if (!$c) {
			$c = Conn->new($port, $o->{timeout});
			$in_conn = 0;
			my ($code, $text, $ms);
			($code, $text, $ms) = $c->reply(now_ms()) if $c;
			if ($c && defined $code && $code =~ /^2/) {
				($code, $text, $ms) = $c->cmd("EHLO client$n.test.example");
			}
			if (!$c || !defined $code || $code !~ /^2/) {
				# nothing of the message was sent: the client keeps it
				$r{noreply} = $nr if !defined $code;
				$r{outcome} = !defined $code ? 'broken' :
				    $code =~ /^5/ ? 'rejected' : 'tempfailed';
				record($out, $id, $port, $sender, $nr, \%r, $t0);
				$c->close() if $c;
				$c = undef;
				sleep($o->{'retry-pause'} / 1000) if $o->{'retry-pause'} > 0;
				next;
			}
		}
		$in_conn++;
		my $broken = transaction($c, $id, $sender, \@to, $o, $body, \%r);
		record($out, $id, $port, $sender, $nr, \%r, $t0);
		if ($broken || $in_conn >= $o->{'per-conn'}) {
			$c->cmd('QUIT') unless $broken;
			$c->close();
			$c = undef;
		}
		sleep($o->{pause} / 1000) if $o->{pause} > 0;
		sleep($o->{'retry-pause'} / 1000)
		    if $o->{'retry-pause'} > 0 && $r{outcome} ne 'delivered';
	}
	if ($c) {
		$c->cmd('QUIT');
		$c->close();
	}
	close($out);
}

sub lat
{
	my ($r, $ms) = @_;
	$r->{maxcmd} = $ms if defined $ms && $ms > $r->{maxcmd};
}

# one transaction on an open connection; fills %$r; returns true when the
# connection can no longer be used
sub transaction
{
	my ($c, $id, $sender, $to, $o, $body, $r) = @_;
	my $nr = @$to;
	my ($code, $text, $ms) = $c->cmd("MAIL FROM:<$sender>");
	lat($r, $ms);
	if (!defined $code) {
		$r->{noreply} = $nr;
		$r->{outcome} = 'broken';
		return 1;
	}
	if ($code !~ /^2/) {
		$r->{outcome} = $code =~ /^4/ ? 'tempfailed' : 'rejected';
		$c->cmd('RSET');
		return $code eq '421';
	}
	for my $i (0 .. $nr - 1) {
		($code, $text, $ms) = $c->cmd("RCPT TO:<$to->[$i]>");
		lat($r, $ms);
		if (!defined $code) {
			$r->{noreply} += $nr - $i;
			$r->{outcome} = 'broken';
			return 1;
		}
		$r->{maxrcpt} = $ms if $ms > $r->{maxrcpt};
		if ($code =~ /^2/) { $r->{acc}++; }
		elsif ($code =~ /^4/) { $r->{t4}++; }
		else { $r->{r5}++; }
		if ($code eq '421') {
			$r->{noreply} += $nr - $i - 1;
			$r->{outcome} = 'tempfailed';
			return 1;
		}
	}
	if ($r->{acc} == 0) {
		$r->{outcome} = $r->{t4} > 0 ? 'tempfailed' : 'rejected';
		($code) = $c->cmd('RSET');
		return !defined $code || $code eq '421';
	}
	($code, $text, $ms) = $c->cmd('DATA');
	lat($r, $ms);
	if (!defined $code) {
		$r->{outcome} = 'broken';
		return 1;
	}
	if ($code ne '354') {
		$r->{data} = $code;
		$r->{outcome} = $code =~ /^4/ ? 'tempfailed' : 'rejected';
		($code) = $c->cmd('RSET');
		return !defined $code || $code eq '421';
	}
	my $msg = "From: <$sender>\r\nTo: <$to->[0]>\r\nSubject: load $id\r\n" .
	    "Message-ID: <$id.\@load.test.example>\r\n" .
	    "Date: " . POSIX::strftime('%a, %d %b %Y %H:%M:%S +0000', gmtime()) . "\r\n" .
	    "X-Test-Id: $id\r\n";
	$msg .= "$_\r\n" for @{ $o->{header} };
	$msg .= "\r\n" . $body . ".\r\n";
	($code, $text, $ms) = $c->raw($msg);
	lat($r, $ms);
	if (!defined $code) {
		$r->{outcome} = 'error';
		return 1;
	}
	$r->{data} = $code;
	$r->{eom} = $ms;
	$r->{outcome} = $code =~ /^2/ ? 'delivered' : $code =~ /^4/ ? 'tempfailed' : 'rejected';
	return $code eq '421';
}

sub record
{
	my ($out, $id, $port, $sender, $nr, $r, $t0) = @_;
	printf $out "%s %s %s %d %d %d %d %d %s %s %d %d %d %d %d\n", $id, $port, $sender,
	    $nr, $r->{acc}, $r->{t4}, $r->{r5}, $r->{noreply}, $r->{data}, $r->{outcome},
	    $t0, now_ms(), $r->{maxrcpt}, $r->{eom}, $r->{maxcmd};
}

# ---- summary --------------------------------------------------------------

sub summary
{
	my @args = @_;
	my $dir = shift @args or usage();
	my %o = (from => 0, to => 0, port => '');
	GetOptionsFromArray(\@args, \%o, 'from=i', 'to=i', 'port=s') or usage();
	my %t = map { $_ => 0 } qw(messages delivered tempfailed rejected error broken rcpts
	    rcpt_delivered rcpt_tempfailed rcpt_rejected rcpt_unknown rcpt_broken rcpt_4xx rcpt_5xx
	    data_4xx dropped max_rcpt_ms max_eom_ms max_cmd_ms);
	for my $f (glob("$dir/result.*")) {
		open(my $in, '<', $f) or die "$f: $!";
		while (<$in>) {
			my @x = split;
			next unless @x == 15;
			my ($id, $port, $sender, $nr, $acc, $t4, $r5, $nore, $data, $outc, $t0, $t1,
			    $mr, $eom, $mc) = @x;
			next if $o{from} && $t0 < $o{from};
			next if $o{to} && $t1 > $o{to};
			next if $o{port} ne '' && $port ne $o{port};
			$t{messages}++;
			$t{$outc}++;
			$t{rcpts} += $nr;
			$t{rcpt_4xx} += $t4;
			$t{rcpt_5xx} += $r5;
			$t{data_4xx}++ if $data =~ /^4/;
			$t{dropped}++ if $nore > 0;
			if ($outc eq 'delivered') {
				$t{rcpt_delivered} += $acc;
				$t{rcpt_tempfailed} += $t4 + $nore;
				$t{rcpt_rejected} += $r5;
			} elsif ($outc eq 'error') {
				$t{rcpt_unknown} += $nr - $r5;
				$t{rcpt_rejected} += $r5;
			} elsif ($outc eq 'broken') {
				# the client keeps the message: not a 4xx, counted apart
				$t{rcpt_broken} += $nr - $r5;
				$t{rcpt_rejected} += $r5;
			} else {
				# not accepted as a whole: accepted recipients stay with the client
				$t{rcpt_tempfailed} += $outc eq 'tempfailed' ? $nr - $r5 : 0;
				$t{rcpt_rejected} += $outc eq 'tempfailed' ? $r5 : $nr;
			}
			$t{max_rcpt_ms} = $mr if $mr > $t{max_rcpt_ms};
			$t{max_eom_ms} = $eom if $eom > $t{max_eom_ms};
			$t{max_cmd_ms} = $mc if $mc > $t{max_cmd_ms};
		}
		close($in);
	}
	print "$_=$t{$_}\n" for sort keys %t;
}

my $what = shift @ARGV or usage();
if ($what eq 'run') {
	run(@ARGV);
} elsif ($what eq 'summary') {
	summary(@ARGV);
} else {
	usage();
}
