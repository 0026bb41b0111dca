/*
 * log.c - one log line per event, queue id first, to syslog (facility mail,
 * ident outbound-milter) and, in the foreground, to stderr as well.
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

void log_msg(int level, const char *qid, const char *fmt, ...)
{
	char line[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (qid != NULL && *qid == '\0')
		qid = LOG_NOQUEUE;
	if (qid != NULL)
		syslog(level, "%s: %s", qid, line);
	else
		syslog(level, "%s", line);
	if (log_stderr) {
		/* one write per line so concurrent threads do not interleave */
		char out[2200];
		int n = snprintf(out, sizeof(out), "outbound-milter: %s%s%s\n", qid ? qid : "",
				 qid ? ": " : "", line);
		if (n > 0)
			fwrite(out, 1, (size_t)n < sizeof(out) ? (size_t)n : sizeof(out) - 1, stderr);
	}
}
