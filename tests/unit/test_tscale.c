/* SPDX-License-Identifier: MIT */
/*
 * VFMIG_TIMEOUT_SCALE: the strict parser (digits only, 1 to the maximum),
 * the scale read from the environment and the scaled waits.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "protocol/tscale.h"

static void test_parse_good(void **state)
{
	char err[128] = "";
	unsigned v = 0;

	(void)state;
	assert_int_equal(vfw_timeout_scale_parse(NULL, &v, err, sizeof(err)),
			 0);
	assert_int_equal(v, 1);
	assert_int_equal(vfw_timeout_scale_parse("1", &v, err, sizeof(err)),
			 0);
	assert_int_equal(v, 1);
	assert_int_equal(vfw_timeout_scale_parse("10", &v, err, sizeof(err)),
			 0);
	assert_int_equal(v, 10);
	assert_int_equal(vfw_timeout_scale_parse("0007", &v, err, sizeof(err)),
			 0);
	assert_int_equal(v, 7);
	assert_int_equal(vfw_timeout_scale_parse("1000", &v, err, sizeof(err)),
			 0);
	assert_int_equal(v, VFW_TIMEOUT_SCALE_MAX);
}

static void test_parse_bad(void **state)
{
	static const char *const bad[] = {
		"", "0", "000", "-1", "+2", " 2", "2 ", "2x", "0x10", "1e3",
		"2.5", "1001", "4294967297", "99999999999999999999999",
	};
	char err[128];
	unsigned v;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 12345;
		err[0] = 0;
		assert_int_equal(vfw_timeout_scale_parse(bad[i], &v, err,
							 sizeof(err)),
				 -EINVAL);
		assert_int_equal(v, 12345);
		/* the message names the variable, the value and the range */
		assert_non_null(strstr(err, "VFMIG_TIMEOUT_SCALE="));
		assert_non_null(strstr(err, "from 1 to 1000"));
	}
	assert_int_equal(vfw_timeout_scale_parse("2x", &v, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "VFMIG_TIMEOUT_SCALE='2x': not an integer "
				 "from 1 to 1000");
}

/* The environment is read once, on first use: this test sets it first. */
static void test_scaled(void **state)
{
	(void)state;
	assert_int_equal(setenv(VFW_TIMEOUT_SCALE_ENV, "10", 1), 0);
	assert_int_equal(vfw_timeout_scale(), 10);
	assert_int_equal(vfw_scaled_ms(30000), 300000);
	assert_int_equal(vfw_scaled_ms(1), 10);
	/* no timeout and none given stay as they are */
	assert_int_equal(vfw_scaled_ms(0), 0);
	assert_int_equal(vfw_scaled_ms(-1), -1);
	/* saturates instead of wrapping */
	assert_int_equal(vfw_scaled_ms(INT_MAX / 10 + 1), INT_MAX);
	assert_int_equal(vfw_scaled_ms(INT_MAX), INT_MAX);
	assert_int_equal(vfw_scaled_ms(INT_MAX / 10), INT_MAX / 10 * 10);
	/* read once: a later change does not move the waits under way */
	assert_int_equal(setenv(VFW_TIMEOUT_SCALE_ENV, "3", 1), 0);
	assert_int_equal(vfw_timeout_scale(), 10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_scaled),
	};
	return cmocka_run_group_tests_name("tscale", tests, NULL, NULL);
}
