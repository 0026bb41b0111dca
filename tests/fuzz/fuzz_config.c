/*
 * fuzz_config.c - libFuzzer target for the configuration loader: any bytes
 * as a configuration file must give a snapshot or a list of FILE:LINE
 * problems, never a crash, a leak or a hang. Built and run by
 * tests/fuzz/run (make check: 30 s, make fuzz: longer).
 *
 * fuzz-sources: milter/config.c milter/cidr.c milter/mx.c milter/store.c milter/resp.c milter/log.c milter/network.c milter/address.c
 * fuzz-pkgs: libconfuse libidn2 libcares hiredis libpsl
 *
 * The input is the file's content, handed to config_load through a memfd.
 */
#define _GNU_SOURCE /* memfd_create */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* store.c is linked for mx.c's sake only; no script is ever run here */
const char lua_reserve[] = "";
const char lua_renew[] = "";

/* every problem must carry a message and a sane line number */
static void check_report(void *arg, const char *file, int line, bool is_error, const char *msg)
{
	(void)is_error;
	(*(int *)arg)++;
	if (file == NULL || msg == NULL || msg[0] == '\0' || line < 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64];
	int fd, problems = 0;
	struct config *cfg;

	if (size > 65536)
		return 0;
	fd = memfd_create("fuzz.conf", 0);
	if (fd < 0)
		return 0;
	if (size > 0 && write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	cfg = config_load(path, check_report, &problems);
	if (cfg == NULL && problems == 0)
		abort(); /* refused without saying why */
	config_free(cfg);
	close(fd);
	return 0;
}
