/* SPDX-License-Identifier: MIT */
/* The migration tracker's bookkeeping (engine/progress.h), driven with
 * chosen times and counters: rates, per-round bytes, the split at the
 * switchover, the timeline's bound, a new run forgetting the last. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "engine/progress.h"

#define PAGE 4096u
#define MIB (1ull << 20)

static const char *const ids[] = { "dev0", "dev1" };

static int setup(void **state)
{
	struct vfmig_mig_track *t;

	if (vfmig_mig_track_create(&t) < 0)
		return -1;
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	vfmig_mig_track_destroy(*state);
	return 0;
}

/* A source run starting at t=1000 ms with 64 MiB of RAM, two devices. */
static void begin(struct vfmig_mig_track *t)
{
	vfmig_mig_track_begin(t, 1000, true, 64 * MIB, PAGE, 2, ids);
}

static void test_nothing_before_a_run(void **state)
{
	struct vfmig_mig_stats s;
	struct vfmig_mig_round r[2];

	vfmig_mig_track_stats(*state, 5, 0, &s);
	assert_false(s.started);
	assert_true(s.setup_ms < 0 && s.downtime_ms < 0);
	assert_int_equal(vfmig_mig_track_timeline(*state, r, 2), 0);
	/* A NULL tracker takes every call and records nothing. */
	vfmig_mig_track_begin(NULL, 0, true, 1, PAGE, 0, NULL);
	vfmig_mig_track_dev(NULL, 0, 5);
	vfmig_mig_track_end(NULL, 1, 0, 1);
	vfmig_mig_track_stats(NULL, 0, 0, &s);
	assert_false(s.started);
}

static void test_rounds_and_rates(void **state)
{
	struct vfmig_mig_track *t = *state;
	struct vfmig_mig_stats s;
	struct vfmig_mig_round r[4];

	begin(t);
	vfmig_mig_track_active(t, 1004);
	/* Round 1: all of RAM marked (the baseline: no rate yet). */
	vfmig_mig_track_round_start(t, 1004, 0);
	vfmig_mig_track_sync(t, 1005, 16384);
	vfmig_mig_track_dev(t, 0, 1000);
	vfmig_mig_track_dev(t, 1, 3 * MIB);
	vfmig_mig_track_dev_remaining(t, 1, 5 * MIB);
	vfmig_mig_track_round_end(t, 1105, 60 * MIB, 200, 80.0, 1e9);
	/* Round 2: 500 pages found dirty 250 ms after the last sync. */
	vfmig_mig_track_round_start(t, 1200, 60 * MIB);
	vfmig_mig_track_sync(t, 1255, 500);
	vfmig_mig_track_dev(t, 1, MIB);
	vfmig_mig_track_round_end(t, 1300, 62 * MIB, 40, 5.5, 5e8);

	vfmig_mig_track_stats(t, 1310, 62 * MIB, &s);
	assert_true(s.started && s.source && !s.ended);
	assert_float_equal(s.total_ms, 310, 1e-9);
	assert_float_equal(s.setup_ms, 4, 1e-9);
	assert_float_equal(s.expected_downtime_ms, 5.5, 1e-9);
	assert_float_equal(s.dirty_pages_rate, 2000, 1e-9); /* 500 / 0.25 s */
	assert_float_equal(s.dirty_bytes_rate, 2000.0 * PAGE, 1e-6);
	assert_int_equal(s.dirty_syncs, 2);
	assert_true(s.ram_remaining_known);
	assert_int_equal(s.ram_remaining, 40 * PAGE);
	assert_int_equal(s.ram_total, 64 * MIB);
	assert_float_equal(s.mbps, 5e8 * 8 / 1e6, 1e-9);
	assert_int_equal(s.ndev, 2);
	assert_string_equal(s.dev[1].id, "dev1");
	assert_int_equal(s.dev[0].transferred, 1000);
	assert_int_equal(s.dev[1].transferred, 4 * MIB);
	assert_false(s.dev[0].remaining_known);
	assert_true(s.dev[1].remaining_known);
	assert_int_equal(s.dev[1].remaining, 5 * MIB);
	/* Nothing paused yet: everything is pre-copy. */
	assert_int_equal(s.ram_precopy_bytes, 62 * MIB);
	assert_int_equal(s.ram_downtime_bytes, 0);
	assert_true(s.switchover_ms < 0);

	assert_int_equal(vfmig_mig_track_timeline(t, r, 4), 2);
	assert_int_equal(r[0].round, 1);
	assert_false(r[0].stop_copy);
	assert_float_equal(r[0].start_ms, 4, 1e-9);
	assert_float_equal(r[0].end_ms, 105, 1e-9);
	assert_int_equal(r[0].ram_bytes, 60 * MIB);
	assert_int_equal(r[0].dev_bytes[0], 1000);
	assert_int_equal(r[0].dev_bytes[1], 3 * MIB);
	assert_float_equal(r[0].dirty_pages_rate, 0, 1e-9);
	assert_int_equal(r[1].round, 2);
	assert_int_equal(r[1].ram_bytes, 2 * MIB);
	assert_int_equal(r[1].dev_bytes[0], 0);
	assert_int_equal(r[1].dev_bytes[1], MIB);
	assert_int_equal(r[1].dirty_pages, 40);
	assert_float_equal(r[1].dirty_pages_rate, 2000, 1e-9);
	assert_float_equal(r[1].expected_downtime_ms, 5.5, 1e-9);
	assert_float_equal(r[1].mbps, 4000, 1e-9);
}

static void test_switchover_splits_the_bytes(void **state)
{
	struct vfmig_mig_track *t = *state;
	struct vfmig_mig_stats s;
	struct vfmig_mig_round r[4];

	begin(t);
	vfmig_mig_track_active(t, 1001);
	vfmig_mig_track_round_start(t, 1001, 0);
	vfmig_mig_track_sync(t, 1001, 16384);
	vfmig_mig_track_dev(t, 0, 100);
	vfmig_mig_track_round_end(t, 1050, 10 * MIB, 3, 1, 1e9);
	vfmig_mig_track_pause(t, 1060, 10 * MIB);
	vfmig_mig_track_dev(t, 0, 900);
	vfmig_mig_track_dev(t, 1, 50);
	vfmig_mig_track_end(t, 1080, 10 * MIB + 3 * PAGE, 19.5);
	/* After the end, later times and counters change nothing. */
	vfmig_mig_track_stats(t, 9999, 99 * MIB, &s);
	assert_true(s.ended);
	assert_float_equal(s.total_ms, 80, 1e-9);
	assert_float_equal(s.switchover_ms, 60, 1e-9);
	assert_float_equal(s.downtime_ms, 19.5, 1e-9);
	assert_int_equal(s.ram_precopy_bytes, 10 * MIB);
	assert_int_equal(s.ram_downtime_bytes, 3 * PAGE);
	assert_int_equal(s.dev[0].precopy_bytes, 100);
	assert_int_equal(s.dev[0].downtime_bytes, 900);
	assert_int_equal(s.dev[1].downtime_bytes, 50);
	/* Completed: nothing left. */
	assert_int_equal(s.ram_remaining, 0);
	assert_int_equal(s.nrounds, 2);

	assert_int_equal(vfmig_mig_track_timeline(t, r, 4), 2);
	assert_true(r[1].stop_copy);
	assert_int_equal(r[1].round, 0);
	assert_float_equal(r[1].start_ms, 60, 1e-9);
	assert_float_equal(r[1].end_ms, 80, 1e-9);
	assert_int_equal(r[1].ram_bytes, 3 * PAGE);
	assert_int_equal(r[1].dev_bytes[0], 900);
	assert_int_equal(r[1].dev_bytes[1], 50);
	assert_true(r[1].expected_downtime_ms < 0);
	/* Room for one entry: the oldest comes first. */
	assert_int_equal(vfmig_mig_track_timeline(t, r, 1), 1);
	assert_false(r[0].stop_copy);
}

static void test_timeline_is_bounded(void **state)
{
	struct vfmig_mig_track *t = *state;
	static struct vfmig_mig_round r[VFMIG_MIG_TIMELINE_MAX + 2];
	struct vfmig_mig_stats s;
	unsigned n = VFMIG_MIG_TIMELINE_MAX + 10;

	begin(t);
	for (unsigned i = 0; i < n; i++) {
		vfmig_mig_track_round_start(t, 1000 + i, i * PAGE);
		vfmig_mig_track_round_end(t, 1000.5 + i, (i + 1) * PAGE, 1, 1,
					  1e6);
	}
	vfmig_mig_track_pause(t, 5000, n * PAGE);
	vfmig_mig_track_stats(t, 5001, n * PAGE, &s);
	assert_int_equal(s.rounds_dropped, 10);
	assert_int_equal(s.nrounds, VFMIG_MIG_TIMELINE_MAX + 1);
	assert_int_equal(vfmig_mig_track_timeline(t, r, VFMIG_MIG_TIMELINE_MAX + 2),
			 VFMIG_MIG_TIMELINE_MAX + 1);
	assert_int_equal(r[VFMIG_MIG_TIMELINE_MAX - 1].round,
			 VFMIG_MIG_TIMELINE_MAX);
	assert_true(r[VFMIG_MIG_TIMELINE_MAX].stop_copy);
}

static void test_a_new_run_forgets(void **state)
{
	struct vfmig_mig_track *t = *state;
	struct vfmig_mig_stats s;
	struct vfmig_mig_round r[2];
	const char *many[VFMIG_MIG_TRACK_DEVS + 3];

	begin(t);
	vfmig_mig_track_round_start(t, 1000, 0);
	vfmig_mig_track_dev(t, 0, 77);
	vfmig_mig_track_round_end(t, 1001, PAGE, 1, 1, 1);
	vfmig_mig_track_pause(t, 1002, PAGE);
	vfmig_mig_track_end(t, 1003, PAGE, -1);
	/* A destination run: more devices than are tracked, a long id. */
	for (size_t i = 0; i < VFMIG_MIG_TRACK_DEVS + 3; i++)
		many[i] = "a-device-id-much-longer-than-thirty-one-bytes";
	vfmig_mig_track_begin(t, 2000, false, MIB, PAGE,
			      VFMIG_MIG_TRACK_DEVS + 3, many);
	vfmig_mig_track_dev(t, VFMIG_MIG_TRACK_DEVS + 1, 5); /* ignored */
	vfmig_mig_track_stats(t, 2010, 0, &s);
	assert_true(s.started && !s.source && !s.ended);
	assert_float_equal(s.total_ms, 10, 1e-9);
	assert_true(s.setup_ms < 0 && s.switchover_ms < 0);
	assert_int_equal(s.ndev, VFMIG_MIG_TRACK_DEVS);
	assert_int_equal(strlen(s.dev[0].id), VFMIG_MIG_TRACK_ID_MAX - 1);
	assert_int_equal(s.dev[0].transferred, 0);
	assert_int_equal(s.dirty_syncs, 0);
	assert_int_equal(vfmig_mig_track_timeline(t, r, 2), 0);
	/* The destination's rate: what moved over the time so far. */
	vfmig_mig_track_dev(t, 0, 1000000);
	vfmig_mig_track_stats(t, 2010, 250000, &s);
	assert_float_equal(s.mbps, 1250000.0 * 8 / 1e3 / 10, 1e-6);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_nothing_before_a_run,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_rounds_and_rates, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_switchover_splits_the_bytes,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeline_is_bounded, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_a_new_run_forgets, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
