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
 * Whether to ask the MTA not to wait for replies to connect, MAIL FROM and
 * headers, and to skip DATA. Right on a unix socket; on TCP it makes the
 * MTA send small commands back to back, and its Nagle algorithm then waits
 * for our delayed ACK (about 40 ms) since no reply carries one.
 */
void callbacks_no_reply(bool on);

#endif
