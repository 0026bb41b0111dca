/*
 * log.h - syslog (facility mail, ident outbound-milter), optionally copied
 * to stderr; every line starts with the queue id like Postfix's own.
 */
#ifndef OBM_LOG_H
#define OBM_LOG_H

#include <stdbool.h>
#include <syslog.h>

#define LOG_NOQUEUE "NOQUEUE"

void log_open(bool to_stderr);
/* QID "" logs NOQUEUE (a message without queue id yet); NULL: a daemon event */
void log_msg(int level, const char *qid, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
