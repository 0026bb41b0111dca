# CaseText.pm - the string syntax of the bad-input case files, shared by
# milter-client.pl and smtp-raw.pl: "quoted strings" with \r \n \t \0 \\ \"
# \xHH escapes, repeated with * N and joined with +, or bare words.
package CaseText;

use strict;
use warnings;
use Exporter 'import';

our @EXPORT_OK = qw(unescape parse_args show);

sub unescape
{
	my ($s) = @_;
	$s =~ s/\\(x([0-9a-fA-F]{2})|r|n|t|0|\\|")/
		defined $2 ? chr(hex($2)) : $1 eq 'r' ? "\r" : $1 eq 'n' ? "\n" :
		$1 eq 't' ? "\t" : $1 eq '0' ? "\0" : $1/ge;
	return $s;
}

# parse_args(TEXT, WHERE): the values on a line; "x" * 3 + "y" is "xxxy"
# (a repetition applies to the string just before it); dies on bad syntax
sub parse_args
{
	my ($text, $where) = @_;
	my (@out, @pieces);
	my $join = 0;
	while ($text =~ /\G\s*(?:"((?:[^"\\]|\\.)*)"|(\*)\s*(\d+)|(\+)|([^\s"*+]+))/gc) {
		if (defined $1 || defined $5) {
			my $v = defined $1 ? unescape($1) : $5;
			if ($join && @out) {
				$out[-1] .= $v;
				$pieces[-1] = $v;
			} else {
				push @out, $v;
				push @pieces, $v;
			}
			$join = 0;
		} elsif (defined $2) {
			die "$where: '*' without a string\n" unless @out;
			my $last = $pieces[-1];
			substr($out[-1], length($out[-1]) - length($last)) = $last x $3;
			$pieces[-1] = $last x $3;
		} elsif (defined $4) {
			$join = 1;
		}
	}
	my $rest = substr($text, pos($text) // 0);
	die "$where: cannot parse '$rest'\n" if $rest =~ /\S/;
	return @out;
}

# a printable, shortened form of a string for messages
sub show
{
	my ($s) = @_;
	my $t = length($s) > 60 ? substr($s, 0, 60) . '...(' . length($s) . ' bytes)' : $s;
	$t =~ s/([^\x20-\x7e])/sprintf('\\x%02x', ord($1))/ge;
	return $t;
}

1;
