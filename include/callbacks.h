/*
 * callbacks.h - the libmilter side: the filter description handed to
 * smfi_register, and how much work is still in flight (for shutdown).
 */
#ifndef OBM_CALLBACKS_H
#define OBM_CALLBACKS_H

#include <stdbool.h>

#include <libmilter/mfapi.h>

extern struct smfiDesc callbacks_desc;

/* callbacks running now plus transactions not yet ended */
int callbacks_in_flight(void);

/*
 * Whether to ask the MTA to skip the DATA step. Right on a unix socket; on
 * TCP Postfix then sends the DATA macros from smtpd and the headers from
 * cleanup as two writes with no reply between them, and its Nagle
 * algorithm holds the second until our delayed ACK (about 40 ms a
 * message). The no-reply steps (connect, MAIL FROM, headers) are
 * negotiated on both: Postfix sends them in the same write as the next
 * command that waits for a reply.
 */
void callbacks_skip_data(bool on);

#endif
