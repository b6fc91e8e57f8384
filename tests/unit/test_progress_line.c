/* SPDX-License-Identifier: MIT */
/* The progress line of `vfmig migrate` (src/cli/progress_line.c): what it
 * draws for query-migrate replies as the VMM sends them. */
#include <json-c/json.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "progress_line.h"

/* Draw the line for the reply in text; return what was written. */
static char *draw(const char *text)
{
	struct json_object *o = json_tokener_parse(text);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(o);
	assert_non_null(f);
	progress_line_draw(f, o);
	fclose(f);
	json_object_put(o);
	return buf;
}

static void test_active_round(void **state)
{
	(void)state;
	char *s = draw("{\"status\": \"active\", \"rounds\": 3, \"ram_bytes\": "
		       "12582912, \"device_bytes\": 1536, \"total-time\": 40, "
		       "\"expected-downtime\": 12, \"ram\": {\"total\": "
		       "67108864, \"mbps\": 2985.6, \"dirty-pages-rate\": "
		       "2231}}");
	assert_string_equal(s, "\ractive: round 3, RAM 12.0 MiB of 64.0 MiB, "
			       "devices 1.5 KiB, 2986 Mbit/s, dirty 2231 "
			       "pages/s, expected downtime 12 ms\033[K");
	free(s);
}

static void test_no_prediction_yet(void **state)
{
	(void)state;
	/* Before the engine's run: no size, no prediction. */
	char *s = draw("{\"status\": \"setup\", \"rounds\": 0, \"ram_bytes\": "
		       "0, \"device_bytes\": 0}");
	assert_string_equal(s, "\rsetup: round 0, RAM 0 B, devices 0 B, "
			       "0 Mbit/s, dirty 0 pages/s\033[K");
	free(s);
	/* A completed migration reports no expected downtime. */
	s = draw("{\"status\": \"completed\", \"rounds\": 7, \"ram_bytes\": "
		 "1073741824, \"device_bytes\": 5, \"ram\": {\"total\": "
		 "2147483648, \"mbps\": 1.4}}");
	assert_string_equal(s, "\rcompleted: round 7, RAM 1.0 GiB of 2.0 GiB, "
			       "devices 5 B, 1 Mbit/s, dirty 0 pages/s\033[K");
	free(s);
}

static void test_odd_values(void **state)
{
	(void)state;
	/* Wrong types read as absent; the line stays one line. */
	char *s = draw("{\"status\": 5, \"rounds\": \"x\", \"ram\": [1], "
		       "\"expected-downtime\": \"soon\"}");
	assert_string_equal(s, "\r5: round 0, RAM 0 B, devices 0 B, 0 Mbit/s, "
			       "dirty 0 pages/s\033[K");
	free(s);
}

static void test_hostile_status(void **state)
{
	(void)state;
	/* A VMM's status cannot reach the terminal as control characters,
	 * nor make the line long: "\033]0;owned\007" would retitle it. */
	char *s = draw("{\"status\": \"\\u001b]0;owned\\u0007\\r\\nx\"}");
	assert_string_equal(s, "\r?]0;owned???x: round 0, RAM 0 B, devices 0 B, "
			       "0 Mbit/s, dirty 0 pages/s\033[K");
	free(s);
	s = draw("{\"status\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}");
	assert_string_equal(s, "\raaaaaaaaaaaaaaaaaaaaaaa: round 0, RAM 0 B, "
			       "devices 0 B, 0 Mbit/s, dirty 0 pages/s\033[K");
	free(s);
}

static void test_clear_and_wanted(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	int p[2];

	(void)state;
	progress_line_clear(f);
	fclose(f);
	assert_string_equal(buf, "\r\033[K");
	free(buf);
	/* Not a terminal: no line; --json: none either. */
	assert_int_equal(pipe(p), 0);
	assert_false(progress_line_wanted(p[1], false));
	assert_false(progress_line_wanted(p[1], true));
	close(p[0]);
	close(p[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_active_round),
		cmocka_unit_test(test_no_prediction_yet),
		cmocka_unit_test(test_odd_values),
		cmocka_unit_test(test_hostile_status),
		cmocka_unit_test(test_clear_and_wanted),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
