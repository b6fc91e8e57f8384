/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the progress line `vfmig migrate` draws from each
 * query-migrate reply the VMM sends back (src/cli/progress_line.c). The
 * input is one reply as JSON; whatever types and values its keys have,
 * drawing must neither crash nor write past its line buffer, and the line
 * it prints is one line with no control characters in it.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "progress_line.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char out[4096];
	struct json_tokener *tok = json_tokener_new();
	struct json_object *o;
	FILE *f;

	if (!tok || size > (1u << 16))
		abort();
	o = json_tokener_parse_ex(tok, (const char *)data, (int)size);
	json_tokener_free(tok);
	if (!o)
		return 0;
	f = fmemopen(out, sizeof(out), "w");
	if (!f)
		abort();
	progress_line_draw(f, o);
	long n = ftell(f);
	fclose(f);
	/* "\r", at most 255 bytes of text, "\033[K". */
	if (n < 0 || n > 1 + 255 + 3 || out[0] != '\r')
		abort();
	/* Between the "\r" and the closing "\033[K": no control character,
	 * whatever the VMM put in its strings. */
	for (long i = 1; i < n - 3; i++)
		if ((unsigned char)out[i] < 0x20 || (unsigned char)out[i] == 0x7f)
			abort();
	json_object_put(o);
	return 0;
}
