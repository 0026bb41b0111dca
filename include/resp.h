/*
 * resp.h - Redis requests encoded (RESP arrays of bulk strings) into a
 * buffer that is reused from one round trip to the next, so that building a
 * pipeline allocates nothing once the buffer has grown to its working size.
 * No I/O here: store.c hands the bytes to hiredis.
 *
 * A bulk string may be written in one go (resp_bulk) or assembled from
 * pieces whose total length is known first (resp_bulk_begin, resp_put...,
 * resp_bulk_end): keys are built that way, straight into the request.
 * Running out of memory sets FAILED; later calls then do nothing.
 */
#ifndef OBM_RESP_H
#define OBM_RESP_H

#include <stdbool.h>
#include <stddef.h>

struct resp_buf {
	char *p;
	size_t len;
	size_t cap;
	bool failed;   /* out of memory: the contents are not usable */
	size_t bulk_end; /* resp_bulk_begin: where the pieces must end */
};

/* empty the buffer, keeping its memory */
void resp_reset(struct resp_buf *b);

/* give the memory back */
void resp_free(struct resp_buf *b);

/* "*N": a command of N arguments follows */
void resp_array(struct resp_buf *b, size_t n);

/* one argument */
void resp_bulk(struct resp_buf *b, const void *s, size_t len);
void resp_str(struct resp_buf *b, const char *s);
void resp_ll(struct resp_buf *b, long long v);

/* one argument of LEN bytes written by the resp_put calls that follow */
void resp_bulk_begin(struct resp_buf *b, size_t len);
void resp_put(struct resp_buf *b, const void *s, size_t len);
void resp_put_str(struct resp_buf *b, const char *s);
/* false (and FAILED set) when the pieces did not add up to LEN */
bool resp_bulk_end(struct resp_buf *b);

/* decimal digits of V, the sign included */
size_t resp_ll_len(long long v);

#endif
