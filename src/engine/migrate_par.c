/* SPDX-License-Identifier: MIT */
/*
 * Per-device steps of the switchover done for all devices at once: each
 * device's state arcs and config writes are round trips to its own
 * process, and one after another their latencies add up inside the
 * downtime (docs/benchmarks.md, "Switchover traces"). Each device gets a
 * thread of its own for the step; the run's first error is then reported
 * in device order, as the sequential loop did.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/migrate_run.h"

struct par_job {
	struct run *run;
	size_t i;
	mig_dev_step_fn fn;
	int r;
	char err[400];
	pthread_t thread;
	bool started;
};

static void *par_main(void *arg)
{
	struct par_job *j = arg;

	j->r = j->fn(j->run, j->i, j->err, sizeof(j->err));
	return NULL;
}

int mig_each_dev(struct run *run, mig_dev_step_fn fn, const char *phase)
{
	size_t n = run->vm->ndev;
	struct par_job *jobs;
	int r = 0;

	if (n == 0)
		return 0;
	jobs = calloc(n, sizeof(*jobs));
	if (!jobs)
		return mig_fail(run, -ENOMEM, phase, "out of memory");
	for (size_t i = 0; i < n; i++) {
		jobs[i] = (struct par_job){ .run = run, .i = i, .fn = fn };
		/* The last device runs here; so does any device whose
		 * thread could not start (it only costs the overlap). */
		if (i + 1 < n)
			jobs[i].started = pthread_create(&jobs[i].thread, NULL,
							 par_main,
							 &jobs[i]) == 0;
		if (!jobs[i].started && i + 1 < n)
			par_main(&jobs[i]);
	}
	par_main(&jobs[n - 1]);
	for (size_t i = 0; i < n; i++)
		if (jobs[i].started)
			pthread_join(jobs[i].thread, NULL);
	for (size_t i = 0; i < n && r == 0; i++)
		if (jobs[i].r < 0)
			r = mig_fail(run, jobs[i].r, phase, "%s", jobs[i].err);
	free(jobs);
	return r;
}
