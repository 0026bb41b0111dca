/*
 * log.c - one log line per event, queue id first, to syslog (facility mail,
 * ident outbound-milter) and, in the foreground, to stderr as well; and the
 * quoting that keeps every key=value field of a line what it was.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

static bool log_stderr;

void log_open(bool to_stderr)
{
	log_stderr = to_stderr;
	openlog("outbound-milter", LOG_PID | LOG_NDELAY, LOG_MAIL);
}

/* a byte that may stand in a bare value: printable ASCII but space, '"', '\\', '=' */
bool log_bare_byte(unsigned char ch)
{
	return ch > 0x20 && ch < 0x7f && ch != '"' && ch != '\\' && ch != '=';
}

size_t log_quote_into(char *out, size_t size, const char *value)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *v = (const unsigned char *)(value != NULL ? value : "");
	size_t i, j = 0;
	bool bare = *v != '\0';

	if (size < 8) { /* room for at least "..." */
		if (size > 0)
			out[0] = '\0';
		return 0;
	}
	for (i = 0; bare && v[i] != '\0'; i++)
		bare = log_bare_byte(v[i]);
	if (bare && i < size) {
		memcpy(out, v, i + 1);
		return i;
	}
	/* quoted: room is kept for the worst escape (4), "..." and the closing quote */
	out[j++] = '"';
	for (i = 0; v[i] != '\0'; i++) {
		unsigned char ch = v[i];

		if (j + 4 + 5 > size) {
			memcpy(out + j, "...", 3);
			j += 3;
			break;
		}
		if (ch == '"' || ch == '\\') {
			out[j++] = '\\';
			out[j++] = (char)ch;
		} else if (ch < 0x20 || ch >= 0x7f) {
			out[j++] = '\\';
			out[j++] = 'x';
			out[j++] = hex[ch >> 4];
			out[j++] = hex[ch & 15];
		} else {
			out[j++] = (char)ch;
		}
	}
	out[j++] = '"';
	out[j] = '\0';
	return j;
}

const char *log_quote(const char *value)
{
	static __thread char ring[LOG_QUOTE_SLOTS][LOG_QUOTE_SIZE];
	static __thread unsigned next;
	char *out = ring[next++ % LOG_QUOTE_SLOTS];

	log_quote_into(out, LOG_QUOTE_SIZE, value);
	return out;
}

/*
 * Room for the longest line: a decision line with sender, networks and
 * reasons each quoted to LOG_QUOTE_SIZE (a cut line would lose its last
 * fields and end inside a quoted value).
 */
#define LOG_LINE_MAX (4 * LOG_QUOTE_SIZE)

void log_set_stderr(bool on)
{
	log_stderr = on;
}

void log_msg(int level, const char *qid, const char *fmt, ...)
{
	char line[LOG_LINE_MAX], quoted_qid[LOG_QUOTE_SIZE];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (qid != NULL && *qid == '\0')
		qid = LOG_NOQUEUE;
	if (qid != NULL) {
		/* the MTA's queue id, quoted like a value should it ever need it */
		log_quote_into(quoted_qid, sizeof(quoted_qid), qid);
		qid = quoted_qid;
		syslog(level, "%s: %s", qid, line);
	} else {
		syslog(level, "%s", line);
	}
	if (log_stderr) {
		/* one write per line so concurrent threads do not interleave */
		char out[LOG_LINE_MAX + LOG_QUOTE_SIZE + 32];
		int n = snprintf(out, sizeof(out), "outbound-milter: %s%s%s\n", qid ? qid : "",
				 qid ? ": " : "", line);
		if (n > 0 && (size_t)n >= sizeof(out)) { /* cut, but still one line */
			n = (int)sizeof(out) - 1;
			out[n - 1] = '\n';
		}
		if (n > 0)
			fwrite(out, 1, (size_t)n, stderr);
	}
}
