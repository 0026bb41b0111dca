/*
 * fuzz_logquote.c - libFuzzer target for log_quote_into, the quoting of
 * log line values. Built and run by tests/fuzz/run (make check: 30 s,
 * make fuzz: longer).
 *
 * fuzz-sources: milter/log.c
 *
 * The first input byte picks the buffer size (0 to 255, or LOG_QUOTE_SIZE
 * when it is 255), the rest is the value (cut at the first NUL, as a C
 * string would be). The result is written between two other fields and
 * read back by the independent reader of tests/unit/logparse.h: the line
 * must be exactly three fields and the value must read back as itself,
 * or as its start followed by "..." (cut for length), and only when it
 * did not fit. Nothing may be written past the size (a guard area
 * checked byte by byte, and ASan).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "../unit/logparse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define GUARD 32

static struct lp_line parsed;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t room, n, vlen, i;
	char *value, *out, *line;

	if (size == 0)
		return 0;
	room = data[0] == 255 ? LOG_QUOTE_SIZE : data[0];
	value = malloc(size);
	out = malloc(room + GUARD);
	line = malloc(room + 16);
	if (value == NULL || out == NULL || line == NULL)
		abort();
	memcpy(value, data + 1, size - 1);
	value[size - 1] = '\0';
	vlen = strlen(value);
	memset(out, 0xa5, room + GUARD);

	n = log_quote_into(out, room, value);
	for (i = room; i < room + GUARD; i++)
		if ((unsigned char)out[i] != 0xa5)
			abort(); /* written past the size */
	if (room == 0) {
		if (n != 0)
			abort();
		goto done;
	}
	if (n != strlen(out) || n >= room)
		abort();
	if (room < 8) {
		if (n != 0)
			abort();
		goto done;
	}
	memcpy(line, "a=1 v=", 6);
	memcpy(line + 6, out, n);
	memcpy(line + 6 + n, " b=2", 5);
	if (lp_parse(line, &parsed) != 0 || parsed.n != 3 || strcmp(parsed.f[0].key, "a") != 0 ||
	    strcmp(parsed.f[1].key, "v") != 0 || strcmp(parsed.f[2].key, "b") != 0 ||
	    strcmp(parsed.f[2].value, "2") != 0)
		abort(); /* the value added, removed or changed a field */
	if (!lp_same_or_cut(parsed.f[1].value, parsed.f[1].len, value, true))
		abort(); /* it reads back as something else */
	/* a value that fits its buffer, even in the worst escape, is never cut */
	if (4 * vlen + 10 <= room && parsed.f[1].len != vlen)
		abort();
	/* bare exactly when every byte may stand bare (and it fits) */
	if (parsed.f[1].quoted == (vlen > 0 && vlen < room && strspn(value,
	    "!#$%&'()*+,-./0123456789:;<>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_`"
	    "abcdefghijklmnopqrstuvwxyz{|}~") == vlen))
		abort();
done:
	free(value);
	free(out);
	free(line);
	return 0;
}
