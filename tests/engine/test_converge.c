/* SPDX-License-Identifier: MIT */
/* Convergence control's pure parts: the auto-converge policy steps and
 * the downtime prediction under a bandwidth limit (engine/converge.h). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/converge.h"

static void live_defaults(struct vfmig_mig_live *l)
{
	const struct vfmig_mig_converge c = { 0 };
	vfmig_mig_live_init(l, &c, 30);
}

/* Throttle: a step after every trigger_rounds rounds above the limit,
 * 20, 30, ... up to 99, never beyond; a fitting round restarts the count
 * and keeps the throttle. */
static void throttle_steps(void **state)
{
	struct vfmig_mig_live l;
	struct vfmig_conv_state s = { 0 };
	unsigned want[] = { 20, 30, 40, 50, 60, 70, 80, 90, 99 };

	(void)state;
	live_defaults(&l);
	for (unsigned i = 0; i < 9; i++) {
		assert_int_equal(vfmig_conv_step(&s, VFMIG_CONV_THROTTLE, 2, &l,
						 false), VFMIG_CONV_NONE);
		assert_int_equal(vfmig_conv_step(&s, VFMIG_CONV_THROTTLE, 2, &l,
						 false),
				 VFMIG_CONV_SET_THROTTLE);
		assert_int_equal(s.pct, want[i]);
	}
	for (int i = 0; i < 6; i++)
		assert_int_equal(vfmig_conv_step(&s, VFMIG_CONV_THROTTLE, 2, &l,
						 false), VFMIG_CONV_NONE);
	assert_int_equal(s.pct, 99);
	assert_int_equal(s.max_pct, 99);

	struct vfmig_conv_state t = { 0 };
	assert_int_equal(vfmig_conv_step(&t, VFMIG_CONV_THROTTLE, 2, &l, false),
			 VFMIG_CONV_NONE);
	assert_int_equal(vfmig_conv_step(&t, VFMIG_CONV_THROTTLE, 2, &l, true),
			 VFMIG_CONV_NONE); /* the count restarts */
	assert_int_equal(vfmig_conv_step(&t, VFMIG_CONV_THROTTLE, 2, &l, false),
			 VFMIG_CONV_NONE);
	assert_int_equal(vfmig_conv_step(&t, VFMIG_CONV_THROTTLE, 2, &l, false),
			 VFMIG_CONV_SET_THROTTLE);
	assert_int_equal(t.pct, 20);
}

/* Parameters changed while it runs apply to the next step. */
static void throttle_live_params(void **state)
{
	struct vfmig_mig_live l;
	struct vfmig_conv_state s = { 0 };

	(void)state;
	live_defaults(&l);
	atomic_store(&l.throttle_initial, 50);
	atomic_store(&l.throttle_increment, 30);
	atomic_store(&l.throttle_max, 70);
	assert_int_equal(vfmig_conv_step(&s, VFMIG_CONV_THROTTLE, 1, &l, false),
			 VFMIG_CONV_SET_THROTTLE);
	assert_int_equal(s.pct, 50);
	assert_int_equal(vfmig_conv_step(&s, VFMIG_CONV_THROTTLE, 1, &l, false),
			 VFMIG_CONV_SET_THROTTLE);
	assert_int_equal(s.pct, 70);
	assert_int_equal(vfmig_conv_step(&s, VFMIG_CONV_THROTTLE, 1, &l, false),
			 VFMIG_CONV_NONE);
}

/* force switches after trigger_rounds (default 3) in a row; off never. */
static void force_and_off(void **state)
{
	struct vfmig_mig_live l;
	struct vfmig_conv_state s = { 0 }, o = { 0 };

	(void)state;
	live_defaults(&l);
	assert_int_equal(vfmig_conv_step(&s, VFMIG_CONV_FORCE, 0, &l, false),
			 VFMIG_CONV_NONE);
	assert_int_equal(vfmig_conv_step(&s, VFMIG_CONV_FORCE, 0, &l, false),
			 VFMIG_CONV_NONE);
	assert_int_equal(vfmig_conv_step(&s, VFMIG_CONV_FORCE, 0, &l, false),
			 VFMIG_CONV_SWITCH);
	for (int i = 0; i < 100; i++)
		assert_int_equal(vfmig_conv_step(&o, VFMIG_CONV_OFF, 1, &l,
						 false), VFMIG_CONV_NONE);
	assert_int_equal(o.pct, 0);
}

/* The prediction: the measured rate, capped by the limit. */
static void predict(void **state)
{
	(void)state;
	assert_true(vfmig_conv_predict_ms(0, 0, 0) == 0);
	assert_true(vfmig_conv_predict_ms(1, 0, 0) == 1e9);
	/* 1 MB at 1000 bytes/ms: 1000 ms */
	assert_true(vfmig_conv_predict_ms(1000000, 1000, 0) == 1000);
	/* measured faster than the limit of 1e5 B/s (100 B/ms): the limit */
	assert_true(vfmig_conv_predict_ms(1000000, 1000, 100000) == 10000);
	/* measured slower than the limit: the measurement */
	assert_true(vfmig_conv_predict_ms(1000000, 10, 100000) == 100000);
	/* nothing measured but a limit: the limit */
	assert_true(vfmig_conv_predict_ms(1000000, 0, 100000) == 10000);
}

static void mode_names(void **state)
{
	enum vfmig_conv_mode m;

	(void)state;
	assert_int_equal(vfmig_conv_mode_parse("throttle", &m), 0);
	assert_int_equal(m, VFMIG_CONV_THROTTLE);
	assert_int_equal(vfmig_conv_mode_parse("force", &m), 0);
	assert_int_equal(m, VFMIG_CONV_FORCE);
	assert_int_equal(vfmig_conv_mode_parse("off", &m), 0);
	assert_int_equal(m, VFMIG_CONV_OFF);
	assert_int_equal(vfmig_conv_mode_parse("on", &m), -EINVAL);
	assert_int_equal(vfmig_conv_mode_parse(NULL, &m), -EINVAL);
	assert_string_equal(vfmig_conv_mode_name(VFMIG_CONV_FORCE), "force");
	assert_null(vfmig_conv_mode_name((enum vfmig_conv_mode)3));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(throttle_steps),
		cmocka_unit_test(throttle_live_params),
		cmocka_unit_test(force_and_off),
		cmocka_unit_test(predict),
		cmocka_unit_test(mode_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
