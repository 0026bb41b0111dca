/*
 * log.h - syslog (facility mail, ident outbound-milter), optionally copied
 * to stderr; every line starts with the queue id like Postfix's own
 * (quoted by the rule below should it ever need it).
 *
 * Lines are key=value fields separated by one space. A value that comes
 * from outside (an address, a header, a domain) goes through log_quote, so
 * that a crafted one can never add or change a field: it is written bare
 * when it is non-empty printable ASCII without space, '"', '\\' or '=',
 * otherwise between double quotes with '"' and '\\' escaped by a backslash
 * and every other byte outside printable ASCII written as \xHH; a value
 * cut for length ends in "..." inside its quotes.
 */
#ifndef OBM_LOG_H
#define OBM_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <syslog.h>

#define LOG_NOQUEUE "NOQUEUE"
#define LOG_QUOTE_SLOTS 8    /* log_quote results usable in one log line */
#define LOG_QUOTE_SIZE 1024  /* room of each, with the quotes */

void log_open(bool to_stderr);
/* copy the lines to stderr (start-up, foreground) or not (detached) */
void log_set_stderr(bool on);
/* QID "" logs NOQUEUE (a message without queue id yet); NULL: a daemon event */
void log_msg(int level, const char *qid, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* CH may stand in a bare value (and in a field name) */
bool log_bare_byte(unsigned char ch);
/* VALUE (NULL: "") quoted as above into OUT of SIZE (at least 8); returns its length */
size_t log_quote_into(char *out, size_t size, const char *value);
/* the same in one of this thread's LOG_QUOTE_SLOTS buffers, reused in turn */
const char *log_quote(const char *value);

#endif
