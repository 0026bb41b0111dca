#!/usr/bin/perl
# logfields.pl - read a log line back token by token, as log tooling
# should, and compare it with what it must say. Written from the
# quoting rule of the log lines (README, Logging), not from the product's
# code: tokens are separated by one space outside double quotes; a token
# with an '=' outside quotes is a field, its key up to the first '=' and a
# value that is bare (printable ASCII without space, '"', '\' or '=') or
# a quoted string whose only escapes are \" \\ and \xHH; a token without
# '=' is a word (a time, a queue id, "tempfail"), quoted or bare.
#
#	logfields.pl LINE EXPECT...	exit 0 when LINE is exactly the tokens
#					EXPECT: KEY=VALUE (split at the first
#					'=') for a field, WORD or =WORD (a word
#					with an '=' in it) for a word; with a
#					'~' in front (~KEY=RE, ~=RE) the value
#					is a Perl regular expression
#	logfields.pl --show LINE	print its tokens, one a line, bytes
#					outside printable ASCII as \xHH
#	logfields.pl --each		every line of standard input reads
#					back and has no field twice; prints
#					"LINES BAD" last, exit 1 when BAD > 0
#
# A malformed line (an unterminated quote, a bare '"' or '\', an unknown
# escape, two spaces, a raw control byte) never matches. On a mismatch
# both token lists are printed as "# " lines.
use strict;
use warnings;

# tokens LINE: a list of [KEY, VALUE] (KEY undef for a word), or undef
sub tokens
{
	my ($line) = @_;
	my @t;
	return undef if $line eq '';
	for (;;) {
		my ($key, $val);
		if ($line =~ s/^([\x21\x23-\x3c\x3e-\x5b\x5d-\x7e]+)=//) {
			$key = $1;
		}
		if ($line =~ s/^"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\]|\\x[0-9a-fA-F]{2})*)"//) {
			$val = $1;
			$val =~ s/\\(["\\]|x([0-9a-fA-F]{2}))/defined $2 ? chr(hex $2) : $1/ge;
		} elsif (defined $key && $line =~ s/^([\x21\x23-\x3c\x3e-\x5b\x5d-\x7e]+)//) {
			$val = $1;
		} elsif (!defined $key && $line =~ s/^([\x21\x23-\x3c\x3e-\x5b\x5d-\x7e]+)//) {
			$val = $1; # a bare word
		} else {
			return undef;
		}
		# a word may end in ':' after its quotes ("QID": in the daemon's lines)
		$val .= ':' if !defined $key && $line =~ s/^://;
		push @t, [$key, $val];
		return \@t if $line eq '';
		return undef unless $line =~ s/^ (?=\S)//;
	}
}

sub show
{
	my ($s) = @_;
	$s =~ s/([^\x20-\x7e]|\\)/$1 eq '\\' ? '\\\\' : sprintf('\\x%02x', ord $1)/ge;
	return $s;
}

sub show_token
{
	my ($t) = @_;
	return defined $t->[0] ? show($t->[0]) . '=' . show($t->[1]) : show($t->[1]);
}

if (@ARGV == 1 && $ARGV[0] eq '--each') {
	my ($n, $bad) = (0, 0);
	while (my $line = <STDIN>) {
		chomp $line;
		$n++;
		my $t = tokens($line);
		my %seen;
		my @dup = defined $t ? grep { defined $_->[0] && $seen{ $_->[0] }++ } @$t : ();
		next if defined $t && !@dup;
		$bad++;
		print "# ", (defined $t ? "a field twice ($dup[0][0])" : 'does not read back'), ": ",
		    show($line), "\n";
	}
	print "$n $bad\n";
	exit($bad ? 1 : 0);
}
if (@ARGV == 2 && $ARGV[0] eq '--show') {
	my $t = tokens($ARGV[1]);
	if (!defined $t) {
		print "malformed: ", show($ARGV[1]), "\n";
		exit 1;
	}
	print show_token($_), "\n" for @$t;
	exit 0;
}
die "usage: logfields.pl LINE EXPECT... | --show LINE\n" if @ARGV < 1;

my ($line, @expect) = @ARGV;
# [KEY or undef, VALUE, VALUE is a pattern]
my @want = map {
	my $re = s/^~//;
	/^([^=]*)=(.*)$/s ? [$1 eq '' ? undef : $1, $2, $re] : [undef, $_, $re]
} @expect;
my $got = tokens($line);
my $same = defined $got && @$got == @want;
if ($same) {
	for my $i (0 .. $#want) {
		my ($g, $w) = ($got->[$i], $want[$i]);
		if ((defined $g->[0]) != (defined $w->[0]) ||
		    (defined $g->[0] && $g->[0] ne $w->[0]) ||
		    ($w->[2] ? $g->[1] !~ /$w->[1]/ : $g->[1] ne $w->[1])) {
			$same = 0;
			last;
		}
	}
}
exit 0 if $same;
print "# line: ", show($line), "\n";
print "# got:  ", (defined $got ? join(' | ', map { show_token($_) } @$got) : 'malformed'), "\n";
print "# want: ", join(' | ', map { show_token($_) } @want), "\n";
exit 1;
