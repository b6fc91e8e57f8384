/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the report `vfmig migrate --report` draws, as the
 * VMM's query-migrate reply carries it (a VMM is another process: its
 * JSON is input). Any JSON value draws a whole SVG document without
 * undefined behaviour: it starts with the XML declaration, ends with
 * </svg>, and holds no raw control character or unescaped text.
 */
#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/report_svg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *rep;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	if (!tok || size > 1 << 20) {
		json_tokener_free(tok);
		return 0;
	}
	rep = json_tokener_parse_ex(tok, (const char *)data, (int)size);
	json_tokener_free(tok);
	f = open_memstream(&buf, &len);
	if (!f)
		abort();
	report_svg_render(f, rep);
	if (fclose(f) != 0)
		abort();
	static const char head[] = "<?xml version=\"1.0\"";
	static const char tail[] = "</svg>\n";
	if (len < sizeof(head) + sizeof(tail) ||
	    memcmp(buf, head, sizeof(head) - 1) ||
	    memcmp(buf + len - (sizeof(tail) - 1), tail, sizeof(tail) - 1))
		abort();
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)buf[i];
		if (c < 0x20 && c != '\n' && c != '\t')
			abort();
	}
	/* Every coordinate is a finite number: printf writes "nan" or
	 * "inf" for others. (Text cannot fake the pattern: a '"' in it is
	 * escaped.) */
	static const char *const coords[] = { " x=\"", " y=\"", " width=\"",
					      " height=\"", " cx=\"",
					      " cy=\"", " y1=\"", " y2=\"" };
	for (size_t k = 0; k < sizeof(coords) / sizeof(coords[0]); k++)
		for (const char *p = strstr(buf, coords[k]); p;
		     p = strstr(p + 1, coords[k])) {
			const char *v = p + strlen(coords[k]);
			if (*v == '-')
				v++;
			if (*v == 'n' || *v == 'i')
				abort();
		}
	free(buf);
	json_object_put(rep);
	return 0;
}
