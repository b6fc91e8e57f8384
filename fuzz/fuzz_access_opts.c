/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the values of --socket-mode and --allow-uid
 * (samples/common/access_opts.c). The first byte picks the parser, the
 * rest is the value as text. Whatever it is, parsing must not crash,
 * must write no more uids than allowed, and a mode it accepts is a
 * permission mode with owner read and write.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "access_opts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uid_t uids[4 + 1];
	char err[160], *s;
	unsigned int mode;
	size_t n = 0;

	if (size < 1 || size > 4096)
		return 0;
	s = malloc(size);
	if (!s)
		abort();
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	uids[4] = (uid_t)12345; /* a guard past the 4 allowed */
	if (data[0] & 1) {
		if (access_opts_parse_mode(s, &mode, err, sizeof(err)) == 0 &&
		    (mode > 0777 || (mode & 0600) != 0600))
			abort();
	} else if (access_opts_parse_uids(s, uids, 4, &n, err,
					  sizeof(err)) == 0) {
		if (n < 1 || n > 4)
			abort();
	}
	if (uids[4] != (uid_t)12345 || !memchr(err, '\0', sizeof(err)))
		abort();
	free(s);
	return 0;
}
