/* SPDX-License-Identifier: MIT */
/* The live progress line; see progress_line.h. */
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "progress_line.h"
#include "units.h"

bool progress_line_wanted(int fd, bool json)
{
	return !json && isatty(fd);
}

static int64_t get_int(struct json_object *o, const char *key, int64_t dflt)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) ||
	    (!json_object_is_type(v, json_type_int) &&
	     !json_object_is_type(v, json_type_double)))
		return dflt;
	return json_object_get_int64(v);
}

static double get_double(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v))
		return 0;
	return json_object_get_double(v);
}

/*
 * The status word comes from the VMM, which the terminal must not have to
 * trust: only printable ASCII is kept (anything else becomes '?', so an
 * escape sequence cannot move the cursor or retitle the window), and a
 * word longer than the states vfmig has is cut.
 */
static void clean_word(char *dst, size_t cap, const char *src)
{
	size_t n = 0;

	for (; src && *src && n + 1 < cap; src++)
		dst[n++] = (*src >= 0x20 && *src < 0x7f) ? *src : '?';
	dst[n] = '\0';
}

void progress_line_draw(FILE *out, struct json_object *reply)
{
	struct json_object *st = NULL, *ram = NULL;
	char moved[32], total[32], dev[32], word[24], line[256];
	int n;

	json_object_object_get_ex(reply, "status", &st);
	json_object_object_get_ex(reply, "ram", &ram);
	clean_word(word, sizeof(word), st ? json_object_get_string(st) : "?");
	cli_human_bytes(moved, sizeof(moved),
			(double)get_int(reply, "ram_bytes", 0));
	/* Before the engine has started its run the size is not known. */
	int64_t size = get_int(ram, "total", 0);
	total[0] = '\0';
	if (size > 0) {
		memcpy(total, " of ", 5);
		cli_human_bytes(total + 4, sizeof(total) - 4, (double)size);
	}
	cli_human_bytes(dev, sizeof(dev),
			(double)get_int(reply, "device_bytes", 0));
	n = snprintf(line, sizeof(line),
		     "%s: round %lld, RAM %s%s, devices %s, %.0f Mbit/s, "
		     "dirty %lld pages/s",
		     word,
		     (long long)get_int(reply, "rounds", 0), moved, total, dev,
		     get_double(ram, "mbps"),
		     (long long)get_int(ram, "dirty-pages-rate", 0));
	int64_t exp = get_int(reply, "expected-downtime", -1);
	if (n > 0 && (size_t)n < sizeof(line) && exp >= 0)
		snprintf(line + n, sizeof(line) - (size_t)n,
			 ", expected downtime %lld ms", (long long)exp);
	/* Back to the start of the line, the text, erase what is left of
	 * a longer line before. */
	fprintf(out, "\r%s\033[K", line);
	fflush(out);
}

void progress_line_clear(FILE *out)
{
	fputs("\r\033[K", out);
	fflush(out);
}
