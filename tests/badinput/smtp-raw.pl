#!/usr/bin/perl
# smtp-raw.pl - plays the SMTP bad-input cases (tests/badinput/smtp.cases)
# against a Postfix smtpd on 127.0.0.1, byte for byte, and checks every
# reply against a regular expression.
#
#   smtp-raw.pl PORT CASEFILE
#
# Prints "ok - ..." / "not ok - ..." lines and "# end of smtp cases" when it
# ran to its end. Case file syntax, one command a line:
#   case NAME TEXT		start a case on a new connection (expects 220)
#   send ARG => ERE...		send ARG plus CRLF; one reply is read per ERE
#				(white space separated: write \s for a space)
#				and must match it
#   rcpts N TEMPLATE => ERE*K ERE*M ...	N commands, %d replaced by 1..N;
#				the replies match the EREs in order
#   data ARG => ERE		DATA (354 expected), ARG as the message, the
#				final dot; the reply to the message must match
# OBM_SMTP_RAW_VERBOSE=1 prints every reply.
# Arguments use the syntax of CaseText.pm. Every reply is also checked
# against what the milter must never answer: an internal error (4.3.0) or
# Postfix's milter_default_action after a milter failure.
use strict;
use warnings;
use IO::Socket::INET;
use IO::Select;
use File::Basename qw(dirname);
use lib dirname(__FILE__);
use CaseText qw(parse_args show);

my ($port, $file) = @ARGV;
die "usage: smtp-raw.pl PORT CASEFILE\n" unless $port && $file;
my $TIMEOUT = 60;
# replies that mean the milter failed or answered an internal error
my $NEVER = qr/^4\d\d 4\.3\.0 |Service unavailable - try again later|^5\d\d 5\.3\.0 /;

my ($npass, $nfail) = (0, 0);
my ($S, $sel, $buf, $case);

sub ok
{
	my ($cond, $name, @diag) = @_;
	if ($cond) {
		$npass++;
		print "ok - $name\n";
	} else {
		$nfail++;
		print "not ok - $name\n";
		print "# $_\n" for @diag;
	}
	return $cond;
}

sub reply
{
	my $text = '';
	for (;;) {
		while ($buf =~ s/^([^\n]*)\n//) {
			my $line = $1;
			$line =~ s/\r$//;
			return $line if $line =~ /^\d{3}(?: |$)/;
			return "bad reply: $line" unless $line =~ /^\d{3}-/;
		}
		return 'no reply' unless $sel->can_read($TIMEOUT);
		my $n = sysread($S, my $chunk, 65536);
		return 'connection closed' unless $n;
		$buf .= $chunk;
	}
}

sub put
{
	my ($data) = @_;
	local $SIG{PIPE} = 'IGNORE';
	my $off = 0;
	while ($off < length($data)) {
		my $n = syswrite($S, $data, length($data) - $off, $off);
		return 0 unless defined $n;
		$off += $n;
	}
	return 1;
}

# check LABEL EXPECT: read one reply per ERE in EXPECT (separated by
# white space) and match them in order
sub check
{
	my ($label, $exp) = @_;
	my @res = split ' ', $exp;
	for my $i (0 .. $#res) {
		my $got = reply();
		my $l = @res > 1 ? "$label (reply " . ($i + 1) . ')' : $label;
		print "# $l: " . show($got) . "\n" if $ENV{OBM_SMTP_RAW_VERBOSE};
		ok(scalar($got =~ /$res[$i]/), "$l: /$res[$i]/", 'got: ' . show($got));
		ok(0, "$l: no milter failure or internal error", 'got: ' . show($got))
		    if $got =~ $NEVER;
	}
}

sub finish
{
	return unless $S;
	put("QUIT\r\n");
	close($S);
	$S = undef;
}

open(my $in, '<', $file) or die "$file: $!\n";
my $ln = 0;
while (my $line = <$in>) {
	$ln++;
	chomp $line;
	next if $line =~ /^\s*(#|$)/;
	my ($cmdpart, $exppart) = split /\s=>\s*/, $line, 2;
	$cmdpart =~ s/^\s*(\S+)\s*//;
	my $verb = $1;
	my $where = "$file:$ln";
	if ($verb eq 'case') {
		finish();
		($case, my $text) = split /\s+/, $cmdpart, 2;
		print "# case $case: $text\n";
		$S = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
		    Timeout => $TIMEOUT);
		if (!ok(defined $S ? 1 : 0, "$case: connect")) {
			next;
		}
		binmode($S);
		$sel = IO::Select->new($S);
		$buf = '';
		check("$case: greeting", '^220\s');
		next;
	}
	next unless $S;
	my @a = eval { parse_args($cmdpart, $where) };
	if ($@) {
		ok(0, "$where: case syntax", $@);
		next;
	}
	my $label = "$case:$ln $verb" . (@a ? ' ' . show($a[-1]) : '');
	if ($verb eq 'send') {
		put("$a[0]\r\n");
		check($label, $exppart);
	} elsif ($verb eq 'data') {
		put("DATA\r\n");
		my $r = reply();
		if (!ok(scalar($r =~ /^354 /), "$label: DATA 354", "got: $r")) {
			next;
		}
		my $msg = $a[0];
		$msg =~ s/^\./../mg;
		put($msg . "\r\n.\r\n");
		check($label, $exppart);
	} elsif ($verb eq 'rcpts') {
		my ($n, $tpl) = @a;
		my @want;
		for my $e (split /\s+/, $exppart) {
			my ($re, $k) = $e =~ /^(.*)\*(\d+)$/ ? ($1, $2) : ($e, 1);
			push @want, ($re) x $k;
		}
		my $bad = '';
		my %cnt;
		for my $i (1 .. $n) {
			(my $cmd = $tpl) =~ s/%d/$i/g;
			put("$cmd\r\n");
			my $r = reply();
			(my $k = $r) =~ s/^(\d{3} \S+).*/$1/;
			$cnt{$k}++;
			my $re = $want[$i - 1] // $want[-1];
			if (!$bad && ($r !~ /$re/ || $r =~ $NEVER)) {
				$bad = "command $i: " . show($r) . " (want /$re/)";
			}
			last if $r =~ /^(no reply|connection closed)/;
		}
		ok($bad eq '', "$label x $n: replies as expected", $bad,
		    map { "$cnt{$_} x $_" } sort keys %cnt);
	} else {
		ok(0, "$where: unknown command '$verb'");
	}
}
finish();
close($in);
print "# end of smtp cases: $npass passed, $nfail failed\n";
exit($nfail ? 1 : 0);
