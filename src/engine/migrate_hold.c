/* SPDX-License-Identifier: MIT */
/*
 * Test hold points (struct vfmig_mig_params.test_hold_*): a run that
 * reaches the named point creates a file and waits until the test has
 * removed it, so that a fault lands at a known step of the migration
 * (tests/faults). Nothing here runs unless a test asked for it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/migrate_run.h"

static const char *const hold_points[] = { VFMIG_MIG_HOLD_POINTS };

bool vfmig_mig_hold_point_valid(const char *name)
{
	for (size_t i = 0; i < sizeof(hold_points) / sizeof(hold_points[0]);
	     i++)
		if (!strcmp(name, hold_points[i]))
			return true;
	return false;
}

void mig_test_hold(struct run *run, const char *point)
{
	const char *file = run->p.test_hold_file;
	struct timespec tick = { 0, 5 * 1000 * 1000 };
	double until;
	int fd;

	if (!run->p.test_hold_point || !file ||
	    strcmp(run->p.test_hold_point, point))
		return;
	fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return; /* the test sees no file and fails on its own */
	dprintf(fd, "%s\n", point);
	close(fd);
	until = mig_mono_ms() + vfw_scaled_ms(VFMIG_MIG_HOLD_MAX_MS);
	while (access(file, F_OK) == 0 && mig_mono_ms() < until &&
	       !mig_cancelled(run))
		nanosleep(&tick, NULL);
}
