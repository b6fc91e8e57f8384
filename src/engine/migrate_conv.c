/* SPDX-License-Identifier: MIT */
/*
 * The source flow's side of convergence control (converge.h): the
 * bandwidth limit on its connections, stall detection, the policy after
 * each round, and what the report says of it. Kept here so that the
 * pre-copy loop (migrate_src.c) needs one call where each applies.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "engine/migrate_run.h"

/* The least a limited round may send, per RAM channel and per device. */
#define MIN_RAM_BUDGET (1ull << 20)
#define MIN_DEV_BUDGET (256ull << 10)

static int stall_ms(const struct run *run)
{
	return run->p.conv.stall_timeout_ms ? run->p.conv.stall_timeout_ms
					    : VFMIG_CONV_STALL_TIMEOUT_MS;
}

int mig_conv_src_setup(struct run *run)
{
	int stall = stall_ms(run), r;

	run->live = run->p.conv.live;
	if (!run->live) {
		run->live = &run->local_live;
		vfmig_mig_live_init(run->live, &run->p.conv,
				    run->p.downtime_ms);
	}
	/* A file has neither a peer to stall nor a pre-copy to limit. */
	if (!vfmig_chan_has_return_path(run->chan))
		return 0;
	r = vfmig_pace_create(&run->pace);
	if (r < 0)
		return mig_fail(run, r, "setup", "out of memory");
	/* Each wait of a send for the peer to take bytes lasts at most the
	 * stall timeout (negative: the channel timeout only). */
	int wait = run->p.timeout_ms;
	if (stall > 0 && (wait < 0 || stall < wait))
		wait = stall;
	vfmig_chan_set_pace(run->chan, run->pace);
	vfmig_chan_set_timeout(run->chan, wait);
	vfmig_mchan_src_tune(run->mc, run->pace, wait);
	return 0;
}

uint64_t mig_conv_downtime_ms(struct run *run)
{
	uint64_t ms = run->live ? atomic_load(&run->live->downtime_ms) : 0;
	return ms ? ms : run->p.downtime_ms;
}

uint64_t mig_conv_max_bandwidth(struct run *run)
{
	return run->pace ? atomic_load(&run->live->max_bandwidth) : 0;
}

void mig_conv_round(struct run *run, uint64_t *ram_budget,
		    uint64_t *dev_budget)
{
	uint64_t bw = mig_conv_max_bandwidth(run);
	unsigned n = run->rep->channels ? run->rep->channels : 1;

	*ram_budget = 0;
	*dev_budget = run->p.device_round_budget;
	if (!run->pace)
		return;
	vfmig_pace_set_rate(run->pace, bw);
	if (!bw)
		return;
	/* A round of about VFMIG_CONV_ROUND_MS at the limit. */
	uint64_t b = bw / 1000 * VFMIG_CONV_ROUND_MS;
	*ram_budget = b / n > MIN_RAM_BUDGET ? b / n : MIN_RAM_BUDGET;
	if (b < *dev_budget)
		*dev_budget = b > MIN_DEV_BUDGET ? b : MIN_DEV_BUDGET;
}

bool mig_conv_after_round(struct run *run, double predicted, bool fits)
{
	const struct vfmig_mig_vm_ops *ops = run->vm->ops;
	enum vfmig_conv_action a;

	run->predicted_ms = predicted;
	run->fits = fits;
	a = vfmig_conv_step(&run->conv, run->p.conv.mode,
			    run->p.conv.trigger_rounds, run->live, fits);
	if (a == VFMIG_CONV_SET_THROTTLE && ops->set_throttle &&
	    ops->set_throttle(run->vm->vm, run->conv.pct) == 0)
		atomic_store(&run->live->throttle_pct, run->conv.pct);
	if (a != VFMIG_CONV_SWITCH)
		return false;
	run->forced = true;
	return true;
}

void mig_conv_switchover(struct run *run)
{
	/* The guest is paused now: every millisecond the stop-copy is held
	 * back is downtime. As QEMU does, the limit applies to pre-copy. */
	if (run->pace)
		vfmig_pace_set_rate(run->pace, 0);
	run->rep->downtime_limit_ms = mig_conv_downtime_ms(run);
}

/* A connection stalled: the error names that, keeping the phase. */
static void name_stall(struct run *run)
{
	struct vfmig_mig_report *rep = run->rep;
	char was[sizeof(rep->error)];
	const char *colon;

	snprintf(was, sizeof(was), "%s", rep->error);
	colon = strchr(was, ':');
	if (!colon || strstr(was, "destination failed"))
		return;
	snprintf(rep->error, sizeof(rep->error),
		 "%.*s: stalled: the destination accepted no data for %d ms "
		 "(%.200s)",
		 (int)(colon - was), was, stall_ms(run),
		 colon[1] == ' ' ? colon + 2 : colon + 1);
}

void mig_conv_finish(struct run *run, int r)
{
	struct vfmig_mig_report *rep = run->rep;
	const struct vfmig_mig_vm_ops *ops = run->vm->ops;

	if (run->conv.pct && ops->set_throttle)
		ops->set_throttle(run->vm->vm, 0);
	run->conv.pct = 0;
	if (run->live)
		atomic_store(&run->live->throttle_pct, 0);
	rep->throttle_pct = run->conv.max_pct;
	if (!rep->downtime_limit_ms)
		rep->downtime_limit_ms = mig_conv_downtime_ms(run);
	if (run->t_pause && run->t_precopy && run->t_pause > run->t_precopy) {
		rep->precopy_ms = run->t_pause - run->t_precopy;
		rep->precopy_bytes =
			run->pause_stream_bytes - run->precopy_stream_bytes;
	}
	/* Converged: pre-copy's prediction fit, and the downtime measured
	 * kept the limit. */
	rep->converged = r == 0 && run->fits &&
			 rep->downtime_ms <= (double)rep->downtime_limit_ms;
	if (r == 0 && !rep->converged && run->t_precopy && rep->rounds)
		snprintf(rep->warning, sizeof(rep->warning),
			 "%s after %u rounds: predicted downtime %.1f ms, "
			 "measured %.1f ms, limit %llu ms",
			 run->forced ? "did not converge, switched over anyway "
				       "(auto-converge force)"
			 : run->fits ? "the downtime overshot the limit"
				     : "did not converge, switched over at "
				       "max-rounds",
			 rep->rounds, run->predicted_ms, rep->downtime_ms,
			 (unsigned long long)rep->downtime_limit_ms);
	if (r < 0 && r != -ECANCELED &&
	    (vfmig_chan_stalled(run->chan) || vfmig_mchan_stalled(run->mc)))
		name_stall(run);
}
