/*
 * fuzz_address.c - libFuzzer target for address_normalize (and the network
 * of its result). Built and run by tests/fuzz/run (make check: 30 s,
 * make fuzz: longer).
 *
 * fuzz-sources: milter/address.c milter/network.c
 * fuzz-pkgs: libidn2 libpsl
 *
 * The first input byte picks the sub-address separator, the rest is the
 * raw address (cut at the first NUL, as a C string would be). Besides
 * memory errors, the target aborts when a result breaks an invariant.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "network.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const struct address *a, const char *sep)
{
	struct address again;
	char net[NETWORK_MAX];

	network_of(NULL, a, net, sizeof(net));
	if (a->status != ADDR_OK) {
		if (a->full[0] != '\0' || strcmp(net, NETWORK_INVALID) != 0)
			abort();
		return;
	}
	if (a->local[0] == '\0' || a->domain[0] == '\0'
	    || strlen(a->local) > ADDR_LOCAL_MAX
	    || strlen(a->domain) > ADDR_DOMAIN_MAX
	    || strlen(a->full) != strlen(a->local) + 1 + strlen(a->domain))
		abort();
	for (const char *p = a->full; *p; p++) {
		unsigned char c = (unsigned char) *p;

		if (c < 0x20 || c == 0x7f || (c >= 'A' && c <= 'Z'))
			abort();
	}
	for (const char *p = a->domain; *p; p++) {
		unsigned char c = (unsigned char) *p;

		if (c >= 0x80 || c == '{' || c == '}' || c == ' ')
			abort();
	}
	if (net[0] == '\0')
		abort();
	/* the normal form is a fixed point */
	if (address_normalize(a->full, sep, &again) != ADDR_OK
	    || strcmp(again.full, a->full) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const seps[] = { "+", "+-", "", NULL };
	const char *sep;
	struct address a;
	char *raw;

	if (size == 0)
		return 0;
	sep = seps[data[0] % 4];
	raw = malloc(size);
	if (raw == NULL)
		return 0;
	memcpy(raw, data + 1, size - 1);
	raw[size - 1] = '\0';
	address_normalize(raw, sep, &a);
	check(&a, sep);
	free(raw);
	return 0;
}
