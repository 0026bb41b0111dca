/*
 * callbacks.h - the libmilter side: the filter description handed to
 * smfi_register, and how much work is still in flight (for shutdown).
 */
#ifndef OBM_CALLBACKS_H
#define OBM_CALLBACKS_H

#include <libmilter/mfapi.h>

extern struct smfiDesc callbacks_desc;

/* callbacks running now plus transactions not yet ended */
int callbacks_in_flight(void);

#endif
