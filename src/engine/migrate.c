/* SPDX-License-Identifier: MIT */
/*
 * The migration engine, what the source flow (migrate_src.c) and the
 * destination flow (migrate_dst.c) share: names of statuses and modes, the
 * run's setup and teardown, error recording, rollback of a device, device
 * connection checks. See migrate.h and migrate_run.h.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/migrate_run.h"
#include "engine/progress.h"

static const char *const status_names[] = {
	[VFMIG_MIG_NONE] = "none",
	[VFMIG_MIG_SETUP] = "setup",
	[VFMIG_MIG_ACTIVE] = "active",
	[VFMIG_MIG_SWITCHOVER] = "switchover",
	[VFMIG_MIG_COMPLETED] = "completed",
	[VFMIG_MIG_FAILED] = "failed",
	[VFMIG_MIG_CANCELLED] = "cancelled",
};

const char *vfmig_mig_status_name(enum vfmig_mig_status s)
{
	if ((unsigned)s >= sizeof(status_names) / sizeof(status_names[0]))
		return "invalid";
	return status_names[s];
}

static const char *const precopy_names[] = {
	[VFMIG_MIG_PRECOPY_ALL] = "all",
	[VFMIG_MIG_PRECOPY_RAM] = "ram",
	[VFMIG_MIG_PRECOPY_NONE] = "none",
};

const char *vfmig_mig_precopy_name(enum vfmig_mig_precopy m)
{
	return (unsigned)m < 3 ? precopy_names[m] : NULL;
}

int vfmig_mig_precopy_parse(const char *s, enum vfmig_mig_precopy *out)
{
	for (unsigned i = 0; s && i < 3; i++)
		if (!strcmp(s, precopy_names[i])) {
			*out = (enum vfmig_mig_precopy)i;
			return 0;
		}
	return -EINVAL;
}

double mig_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

uint64_t mig_real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Copy a NUL-terminated text, cut to fit. */
void mig_copy_text(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

int mig_fail(struct run *run, int err, const char *phase, const char *fmt,
	     ...)
{
	va_list ap;
	char cause[400];

	if (run->rep->error[0])
		return err;
	va_start(ap, fmt);
	vsnprintf(cause, sizeof(cause), fmt, ap);
	va_end(ap);
	snprintf(run->rep->error, sizeof(run->rep->error), "%s: %s", phase,
		 cause);
	return err < 0 ? err : -EIO;
}

/* A rollback step failed: the first error stays, this one is added to it,
 * and the VM is told that device i is not in a working state. */
static void rollback_failed(struct run *run, size_t i, uint32_t want,
			    int err, uint32_t final)
{
	char msg[200];
	size_t n = strlen(run->rep->error);

	snprintf(msg, sizeof(msg), "could not return to %s: %s (%s)",
		 vfmig_vmm_mig_state_name(want), vfmig_vmm_strerror(err),
		 final == VFMIG_VMM_MIG_UNKNOWN
			 ? "the reset that followed failed too: state unknown"
			 : final == want ? "reset instead: its state is lost"
					 : vfmig_vmm_mig_state_name(final));
	snprintf(run->rep->error + n, sizeof(run->rep->error) - n,
		 "%srollback: device %s %s", n ? "; " : "",
		 run->devs[i].d->id, msg);
	if (run->vm->ops->device_fault)
		run->vm->ops->device_fault(run->vm->vm, i, msg);
}

/* Put device i into state want after a failure (reset if it refuses).
 * reset_ok: a reset that ends in want is what the caller wants anyway
 * (a destination dropping what it loaded). */
void mig_rollback_dev(struct run *run, size_t i, uint32_t want,
		      bool reset_ok)
{
	uint32_t final = VFMIG_VMM_MIG_UNKNOWN;
	char cause[200];
	int r;

	/* A device whose connection is gone has no state to return to; the
	 * VM shows it lost already (and the error said so if it mattered). */
	if (!mig_dev_connected(run, i, cause, sizeof(cause)))
		return;
	r = vfmig_vmm_mig_set_state(run->devs[i].d->dev, want,
				    VFMIG_VMM_MIG_ERROR, &final);
	if (r < 0 && reset_ok && final == want)
		return;
	if (r < 0)
		rollback_failed(run, i, want, r, final);
}

void mig_set_status(struct run *run, enum vfmig_mig_status s)
{
	atomic_store(&run->prog->status, (int)s);
	if (s == VFMIG_MIG_ACTIVE)
		mig_track_active(run);
}

bool mig_cancelled(struct run *run)
{
	return atomic_load(&run->prog->cancel);
}

int mig_run_init(struct run *run, const struct vfmig_mig_vm *vm,
		    const struct vfmig_typereg *reg,
		    const struct vfmig_mig_params *p,
		    struct vfmig_mig_progress *prog,
		    struct vfmig_mig_report *rep)
{
	memset(run, 0, sizeof(*run));
	memset(rep, 0, sizeof(*rep));
	run->vm = vm;
	run->reg = reg;
	if (p)
		run->p = *p;
	if (!run->p.downtime_ms)
		run->p.downtime_ms = DEFAULT_DOWNTIME_MS;
	if (!run->p.max_rounds)
		run->p.max_rounds = DEFAULT_MAX_ROUNDS;
	if (!run->p.timeout_ms)
		run->p.timeout_ms = vfw_scaled_ms(DEFAULT_TIMEOUT_MS);
	if (!run->p.connect_timeout_ms)
		run->p.connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
	if (!run->p.device_round_budget)
		run->p.device_round_budget = DEFAULT_DEVICE_BUDGET;
	run->prog = prog ? prog : &run->local_prog;
	atomic_store(&run->prog->rounds, 0);
	atomic_store(&run->prog->ram_bytes, 0);
	atomic_store(&run->prog->device_bytes, 0);
	run->rep = rep;
	run->rep->channels = 1;
	run->t0 = mig_mono_ms();
	run->devs = calloc(vm->ndev ? vm->ndev : 1, sizeof(*run->devs));
	run->words = (vm->ram->size / LOG_PAGE + 63) / 64;
	run->bitmap = calloc(run->words ? run->words : 1, sizeof(uint64_t));
	if (!run->devs || !run->bitmap)
		return -ENOMEM;
	for (size_t i = 0; i < vm->ndev; i++) {
		run->devs[i].d = &vm->devs[i];
		run->devs[i].type = vfmig_typereg_find(reg, vm->devs[i].type);
	}
	return 0;
}

void mig_run_fini(struct run *run)
{
	vfmig_mchan_free(run->mc);
	vfmig_chan_listener_close(run->listener);
	vfmig_stream_writer_free(run->w);
	vfmig_stream_reader_free(run->r);
	if (run->chan)
		vfmig_chan_close(run->chan);
	for (size_t i = 0; run->devs && i < run->vm->ndev; i++)
		free(run->devs[i].type_state);
	free(run->devs);
	free(run->bitmap);
	run->rep->total_ms = (run->t_end ? run->t_end : mig_mono_ms()) - run->t0;
}


/* Whether device i's connection works; if not, the cause in cause. */
bool mig_dev_connected(struct run *run, size_t i, char *cause, size_t len)
{
	cause[0] = '\0';
	if (run->vm->ops->dev_connected)
		return run->vm->ops->dev_connected(run->vm->vm, i, cause, len);
	return vfmig_vmm_dev_connected(run->devs[i].d->dev);
}

/*
 * The connection to device i is gone (or the call that gave err found it
 * so): "device dev0 (PATH): connection lost: CAUSE", with the VM's account
 * of how it broke, else what the library said. Returns 0 if the
 * connection is in fact fine: the caller reports err its own way.
 */
bool mig_dev_lost_text(struct run *run, size_t i, int err, char *buf,
		       size_t len)
{
	const struct vfmig_mig_dev *d = run->devs[i].d;
	char cause[200];

	if (mig_dev_connected(run, i, cause, sizeof(cause)))
		return false;
	if (!cause[0])
		snprintf(cause, sizeof(cause), "%s", vfmig_vmm_strerror(err));
	snprintf(buf, len, "device %s%s%s%s: connection lost: %s", d->id,
		 d->path ? " (" : "", d->path ? d->path : "",
		 d->path ? ")" : "", cause);
	return true;
}

int mig_dev_lost(struct run *run, size_t i, int err, const char *phase)
{
	char text[400];

	if (!mig_dev_lost_text(run, i, err, text, sizeof(text)))
		return 0;
	return mig_fail(run, err < 0 ? err : -ENOTCONN, phase, "%s", text);
}


/* The device-state interface discovery found, as the stream names it. */
const char *mig_iface_name(vfmig_vmm_dev *dev)
{
	switch (vfmig_vmm_mig_interface(dev)) {
	case VFMIG_VMM_MIG_IFACE_V2:
		return "v2";
	case VFMIG_VMM_MIG_IFACE_REGION:
		return "region";
	default:
		return "none";
	}
}
