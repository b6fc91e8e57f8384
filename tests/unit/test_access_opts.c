/* SPDX-License-Identifier: MIT */
/* Unit tests for the values of --socket-mode and --allow-uid. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "access_opts.h"

static void test_mode_ok(void **state)
{
	static const struct { const char *s; unsigned int v; } ok[] = {
		{ "0600", 0600 }, { "600", 0600 }, { "0660", 0660 },
		{ "666", 0666 }, { "0777", 0777 }, { "0640", 0640 },
	};
	char err[160];
	(void)state;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		unsigned int m = 1;
		assert_int_equal(access_opts_parse_mode(ok[i].s, &m, err,
							sizeof(err)), 0);
		assert_int_equal(m, ok[i].v);
	}
}

static void test_mode_bad(void **state)
{
	static const struct { const char *s; const char *why; } bad[] = {
		{ "", "1 to 4 octal digits" },
		{ "00600", "1 to 4 octal digits" },
		{ "0800", "not an octal number" },
		{ "06a0", "not an octal number" },
		{ "-600", "not an octal number" },
		{ " 600", "not an octal number" },
		{ "1777", "at most 0777" },
		{ "4600", "at most 0777" },
		{ "0400", "owner needs read and write" },
		{ "0066", "owner needs read and write" },
		{ "0", "owner needs read and write" },
	};
	char err[160];
	(void)state;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		unsigned int m = 0123;
		err[0] = '\0';
		assert_int_equal(access_opts_parse_mode(bad[i].s, &m, err,
							sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, bad[i].why));
		assert_int_equal(m, 0123); /* untouched on error */
	}
	assert_int_equal(access_opts_parse_mode(NULL, NULL, err, sizeof(err)),
			 -EINVAL);
}

static void test_uids_ok(void **state)
{
	uid_t u[8];
	size_t n = 99;
	char err[160];
	(void)state;

	assert_int_equal(access_opts_parse_uids("0", u, 8, &n, err,
						sizeof(err)), 0);
	assert_int_equal(n, 1);
	assert_int_equal(u[0], 0);
	assert_int_equal(access_opts_parse_uids("65534,1000,self", u, 8, &n,
						err, sizeof(err)), 0);
	assert_int_equal(n, 3);
	assert_int_equal(u[0], 65534);
	assert_int_equal(u[1], 1000);
	assert_int_equal(u[2], geteuid());
	/* names from the user database; duplicates kept once */
	assert_int_equal(access_opts_parse_uids("root,0,root", u, 8, &n, err,
						sizeof(err)), 0);
	assert_int_equal(n, 1);
	assert_int_equal(u[0], 0);
	assert_int_equal(access_opts_parse_uids("4294967294", u, 8, &n, err,
						sizeof(err)), 0);
	assert_int_equal(u[0], 4294967294u);
	/* exactly max distinct uids fit */
	assert_int_equal(access_opts_parse_uids("1,2,3", u, 3, &n, err,
						sizeof(err)), 0);
	assert_int_equal(n, 3);
}

static void test_uids_bad(void **state)
{
	static const struct { const char *s; int r; const char *why; } bad[] = {
		{ "", -EINVAL, "empty" },
		{ ",", -EINVAL, "an empty item" },
		{ "0,", -EINVAL, "an empty item" },
		{ ",0", -EINVAL, "an empty item" },
		{ "1,,2", -EINVAL, "an empty item" },
		{ "4294967295", -EINVAL, "is not a uid" },
		{ "99999999999999999999", -EINVAL, "is not a uid" },
		{ "12x", -EINVAL, "is not a uid" },
		{ "0x10", -EINVAL, "is not a uid" },
		{ "no-such-user-vfmig", -EINVAL, "no user named 'no-such-user-vfmig'" },
		{ "1,2,3,4", -E2BIG, "more than 3 uids" },
	};
	char err[160], longitem[200];
	uid_t u[3];
	size_t n = 7;
	(void)state;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(access_opts_parse_uids(bad[i].s, u, 3, &n, err,
							sizeof(err)),
				 bad[i].r);
		assert_non_null(strstr(err, bad[i].why));
		assert_int_equal(n, 7); /* untouched on error */
	}
	memset(longitem, 'a', sizeof(longitem) - 1);
	longitem[sizeof(longitem) - 1] = '\0';
	assert_int_equal(access_opts_parse_uids(longitem, u, 3, &n, err,
						sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "too long"));
	assert_int_equal(access_opts_parse_uids(NULL, u, 3, &n, err,
						sizeof(err)), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mode_ok),
		cmocka_unit_test(test_mode_bad),
		cmocka_unit_test(test_uids_ok),
		cmocka_unit_test(test_uids_bad),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
