/* SPDX-License-Identifier: MIT */
/* The migration engine: source and destination flows. See migrate.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/channel.h"
#include "engine/migrate.h"
#include "stream/io.h"
#include "stream/stream.h"

#define DEFAULT_DOWNTIME_MS 300
#define DEFAULT_MAX_ROUNDS 30
#define DEFAULT_TIMEOUT_MS 30000
#define DEFAULT_CONNECT_TIMEOUT_MS 3000
#define DEFAULT_DEVICE_BUDGET (64ull << 20)
#define LOG_PAGE 4096u
/* While only acknowledgements hold a switchover back, each round waits
 * this long for them on the return path. */
#define ACK_WAIT_MS 20
/* RAM at the switchover goes in pieces of this many bytes of page data, so
 * that a cancel is noticed during a large VM's last copy (or a save). */
#define SWITCHOVER_RAM_CHUNK (64ull << 20)

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

static double mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static uint64_t real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Copy a NUL-terminated text, cut to fit. */
static void copy_text(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* ------------------------------------------------------------------ */
/* Shared state of one run                                             */
/* ------------------------------------------------------------------ */

struct dev_run {
	const struct vfmig_mig_dev *d;
	const struct vfmig_type_ops *type;
	struct vfmig_vmm_mig_caps caps;
	bool logging;       /* DMA logging started */
	bool precopy;       /* device is (or was) in PRE_COPY this run */
	bool touched;       /* state changed by this run */
	uint32_t initial;   /* source: state before the run (RUNNING/STOP) */
	unsigned sections;  /* pre-copy sections sent / loaded */
	unsigned acks;      /* switchover acks received */
	unsigned init_done; /* section after which the initial data was
			     * all sent; 0 while it is not */
	uint64_t last_bytes; /* device data in the last round */
	uint8_t *type_state; /* destination: TYPE_STATE bytes to apply */
	size_t type_state_len;
};

struct run {
	const struct vfmig_mig_vm *vm;
	const struct vfmig_typereg *reg;
	struct vfmig_mig_params p;
	struct vfmig_mig_progress *prog;
	struct vfmig_mig_progress local_prog;
	struct vfmig_mig_report *rep;
	struct dev_run *devs;
	struct vfmig_chan *chan;
	struct vfmig_stream_writer *w;
	struct vfmig_stream_reader *r;
	uint64_t *bitmap; /* DMA log report buffer */
	size_t words;
	bool paused;      /* we paused the guest */
	double t0, t_pause;
	uint64_t pause_realtime_ns;
	uint16_t cur_dev; /* device of the section being written/read */
	int sink_err;     /* the stream write that failed a device section */
	uint64_t dev_bytes;
};

/* Record the first error as "phase: cause". */
static int fail(struct run *run, int err, const char *phase, const char *fmt,
		...) __attribute__((format(printf, 4, 5)));
static int fail(struct run *run, int err, const char *phase, const char *fmt,
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

/* Put device i into state want after a failure (reset if it refuses). */
static void rollback_dev(struct run *run, size_t i, uint32_t want)
{
	uint32_t final = VFMIG_VMM_MIG_UNKNOWN;
	int r = vfmig_vmm_mig_set_state(run->devs[i].d->dev, want,
					VFMIG_VMM_MIG_ERROR, &final);

	if (r < 0)
		rollback_failed(run, i, want, r, final);
}

static void set_status(struct run *run, enum vfmig_mig_status s)
{
	atomic_store(&run->prog->status, (int)s);
}

static bool cancelled(struct run *run)
{
	return atomic_load(&run->prog->cancel);
}

static int run_init(struct run *run, const struct vfmig_mig_vm *vm,
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
		run->p.timeout_ms = DEFAULT_TIMEOUT_MS;
	if (!run->p.connect_timeout_ms)
		run->p.connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
	if (!run->p.device_round_budget)
		run->p.device_round_budget = DEFAULT_DEVICE_BUDGET;
	run->prog = prog ? prog : &run->local_prog;
	atomic_store(&run->prog->rounds, 0);
	atomic_store(&run->prog->ram_bytes, 0);
	atomic_store(&run->prog->device_bytes, 0);
	run->rep = rep;
	run->t0 = mono_ms();
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

static void run_fini(struct run *run)
{
	vfmig_stream_writer_free(run->w);
	vfmig_stream_reader_free(run->r);
	if (run->chan)
		vfmig_chan_close(run->chan);
	for (size_t i = 0; run->devs && i < run->vm->ndev; i++)
		free(run->devs[i].type_state);
	free(run->devs);
	free(run->bitmap);
	run->rep->total_ms = mono_ms() - run->t0;
}

/* ------------------------------------------------------------------ */
/* Source                                                              */
/* ------------------------------------------------------------------ */

/* Whether device i's connection works; if not, the cause in cause. */
static bool dev_connected(struct run *run, size_t i, char *cause, size_t len)
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
static int dev_lost(struct run *run, size_t i, int err, const char *phase)
{
	const struct vfmig_mig_dev *d = run->devs[i].d;
	char cause[200];

	if (dev_connected(run, i, cause, sizeof(cause)))
		return 0;
	if (!cause[0])
		snprintf(cause, sizeof(cause), "%s", vfmig_vmm_strerror(err));
	return fail(run, err < 0 ? err : -ENOTCONN, phase,
		    "device %s%s%s%s: connection lost: %s", d->id,
		    d->path ? " (" : "", d->path ? d->path : "",
		    d->path ? ")" : "", cause);
}

/* Capabilities and blockers: nothing is changed when a device can't go. */
static int src_check_devices(struct run *run)
{
	for (size_t i = 0; i < run->vm->ndev; i++) {
		struct dev_run *dr = &run->devs[i];
		int r;

		/* A dead device is named as such, before anything that
		 * would only fail because of it. */
		r = dev_lost(run, i, -ENOTCONN, "setup");
		if (r < 0)
			return r;
		if (!dr->type)
			return fail(run, -EOPNOTSUPP, "setup",
				    "device %s: type \"%s\" is not registered",
				    dr->d->id, dr->d->type);
		r = vfmig_vmm_mig_discover(dr->d->dev, &dr->caps);
		if (r < 0 && dev_lost(run, i, r, "setup") < 0)
			return r;
		if (r < 0 || !dr->caps.migratable)
			return fail(run, r < 0 ? r : -EOPNOTSUPP, "setup",
				    "migration blocked by device %s: %s",
				    dr->d->id, dr->caps.blocker);
		r = vfmig_vmm_mig_get_state(dr->d->dev, &dr->initial);
		if (r < 0)
			return fail(run, r, "setup", "device %s state: %s",
				    dr->d->id, vfmig_vmm_strerror(r));
		if (dr->initial != VFMIG_VMM_MIG_RUNNING &&
		    dr->initial != VFMIG_VMM_MIG_STOP)
			return fail(run, -EBUSY, "setup", "device %s is in %s, "
				    "not RUNNING or STOP", dr->d->id,
				    vfmig_vmm_mig_state_name(dr->initial));
	}
	return 0;
}

/* The device-state interface discovery found, as the stream names it. */
static const char *iface_name(vfmig_vmm_dev *dev)
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

static int src_open_stream(struct run *run, const char *uri)
{
	struct vfmig_stream_device *list;
	char err[256] = "";
	int r;

	r = vfmig_chan_connect(uri, run->p.connect_timeout_ms, &run->chan, err,
			       sizeof(err));
	if (r < 0)
		return fail(run, r, "setup", "channel %s: %s", uri,
			    err[0] ? err : strerror(-r));
	vfmig_chan_set_timeout(run->chan, run->p.timeout_ms);
	r = vfmig_stream_writer_open_csum(&run->w, vfmig_chan_io(run->chan),
					  run->p.stream_csum_set
						  ? (enum vfmig_stream_csum)
							    run->p.stream_csum
						  : VFMIG_STREAM_CSUM_DEFAULT);
	if (r < 0)
		return fail(run, r, "setup", "stream header: %s", strerror(-r));
	const struct vfmig_stream_kv info[] = {
		{ "producer", "vfmig" },
		{ "ram", run->vm->ram->name },
	};
	r = vfmig_stream_write_info(run->w, info, 2);
	if (r == 0)
		r = vfmig_ram_announce(run->vm->ram, run->w);
	list = calloc(run->vm->ndev ? run->vm->ndev : 1, sizeof(*list));
	if (!list)
		return fail(run, -ENOMEM, "setup", "out of memory");
	for (size_t i = 0; i < run->vm->ndev; i++) {
		list[i].id = run->devs[i].d->id;
		list[i].type = run->devs[i].d->type;
		list[i].interface = iface_name(run->devs[i].d->dev);
		list[i].instance = (uint32_t)i;
		list[i].type_version = run->devs[i].type->desc->version;
	}
	if (r == 0)
		r = vfmig_stream_write_device_list(run->w, list, run->vm->ndev);
	free(list);
	if (r < 0)
		return fail(run, r, "setup", "writing the device list: %s",
			    strerror(-r));
	return 0;
}

/* DMA logging and PRE_COPY on every device that has them. */
static int src_start_devices(struct run *run)
{
	for (size_t i = 0; i < run->vm->ndev; i++) {
		struct dev_run *dr = &run->devs[i];
		uint32_t final;
		int r;

		if (dr->caps.dirty_logging) {
			r = vfmig_vmm_dma_log_start(dr->d->dev, LOG_PAGE, NULL,
						    0, NULL);
			if (r < 0)
				return fail(run, r, "setup",
					    "device %s: DMA logging start: %s",
					    dr->d->id, vfmig_vmm_strerror(r));
			dr->logging = true;
		}
		/* A stopped device has nothing to pre-copy (and must not be
		 * run to get there). */
		if ((dr->caps.flags & VFMIG_VMM_MIG_FLAG_PRE_COPY) &&
		    run->p.precopy == VFMIG_MIG_PRECOPY_ALL &&
		    dr->initial == VFMIG_VMM_MIG_RUNNING && !run->paused) {
			dr->touched = true;
			r = vfmig_vmm_mig_set_state(dr->d->dev,
						    VFMIG_VMM_MIG_PRE_COPY,
						    VFMIG_VMM_MIG_RUNNING,
						    &final);
			if (r < 0)
				return fail(run, r, "setup",
					    "device %s refused PRE_COPY: %s "
					    "(now %s)",
					    dr->d->id, vfmig_vmm_strerror(r),
					    vfmig_vmm_mig_state_name(final));
			dr->precopy = true;
		}
	}
	return 0;
}

/* Merge every device's DMA log into the RAM dirty bitmap. */
static int src_sync_dirty(struct run *run)
{
	struct vfmig_ram *ram = run->vm->ram;

	for (size_t i = 0; i < run->vm->ndev; i++) {
		struct dev_run *dr = &run->devs[i];
		int r;

		if (!dr->logging)
			continue;
		memset(run->bitmap, 0, run->words * sizeof(uint64_t));
		r = vfmig_vmm_dma_log_report(dr->d->dev, 0, ram->size,
					     LOG_PAGE, run->bitmap,
					     run->words);
		if (r < 0) {
			/* The report may be partial: all of RAM is suspect. */
			vfmig_ram_mark_all(ram);
			return fail(run, r, "dirty sync",
				    "device %s: DMA log report: %s",
				    dr->d->id, vfmig_vmm_strerror(r));
		}
		r = vfmig_ram_merge_bitmap(ram, 0, LOG_PAGE, run->bitmap,
					   ram->size / LOG_PAGE);
		if (r < 0)
			return fail(run, r, "dirty sync", "merging the log of "
				    "device %s: %s", dr->d->id, strerror(-r));
	}
	return 0;
}

static int sink_device_data(void *priv, const void *buf, size_t len)
{
	struct run *run = priv;
	int r = vfmig_stream_write_device_data(run->w, run->cur_dev, buf, len);

	if (r == 0) {
		run->dev_bytes += len;
		atomic_fetch_add(&run->prog->device_bytes, len);
	} else {
		run->sink_err = r; /* the stream failed, not the device */
	}
	return r;
}

/* The cause of a failed device section: the stream's (writing to the
 * destination) or the device's, each named as what it is. */
static int device_section_failed(struct run *run, int r, const char *phase,
				 const struct dev_run *dr)
{
	if (run->sink_err && r == run->sink_err)
		return fail(run, r, phase, "sending device %s data to the "
			    "destination: %s", dr->d->id, strerror(-r));
	return fail(run, r, phase, "device %s data: %s", dr->d->id,
		    vfmig_vmm_strerror(r));
}

/* One pre-copy section of device data: BEGIN, up to budget bytes of the
 * pump's chunks, END. */
static int src_precopy_section(struct run *run, size_t i, uint64_t budget,
			       struct vfmig_vmm_mig_save_result *res)
{
	struct dev_run *dr = &run->devs[i];
	uint64_t before = run->dev_bytes;
	int r;

	run->cur_dev = (uint16_t)i;
	r = vfmig_stream_write_device_begin(run->w, (uint16_t)i,
					    VFMIG_PHASE_PRECOPY);
	if (r == 0)
		r = vfmig_vmm_mig_save(dr->d->dev, budget, sink_device_data,
				       run, res);
	if (r == 0)
		r = vfmig_stream_write_device_end(run->w, (uint16_t)i);
	if (r < 0)
		return device_section_failed(run, r, "pre-copy", dr);
	dr->last_bytes = run->dev_bytes - before;
	return 0;
}

/* The most STOP_COPY data device i may send, and its estimate (*est,
 * UINT64_MAX when it gives none). See VFMIG_MIG_STOP_COPY_* in migrate.h. */
static uint64_t stop_copy_limit(struct run *run, size_t i, uint64_t *est)
{
	struct dev_run *dr = &run->devs[i];
	uint64_t n;

	*est = UINT64_MAX;
	if (dr->caps.size_info &&
	    vfmig_vmm_mig_stop_copy_size(dr->d->dev, &n) == 0)
		*est = n;
	if (run->p.max_stop_copy_bytes)
		return run->p.max_stop_copy_bytes;
	if (*est == UINT64_MAX)
		return VFMIG_MIG_STOP_COPY_MAX;
	if (*est > (UINT64_MAX - VFMIG_MIG_STOP_COPY_MARGIN) /
			   VFMIG_MIG_STOP_COPY_SLACK)
		return UINT64_MAX;
	return *est * VFMIG_MIG_STOP_COPY_SLACK + VFMIG_MIG_STOP_COPY_MARGIN;
}

/*
 * Device i's final section: its STOP_COPY data until the device ends it,
 * read in chunks so that a cancel is noticed and the data bounded (a
 * device that never ends would keep the guest paused for good).
 */
static int src_stop_copy_section(struct run *run, size_t i)
{
	struct dev_run *dr = &run->devs[i];
	struct vfmig_vmm_mig_save_result res;
	uint64_t est, limit = stop_copy_limit(run, i, &est);
	uint64_t before = run->dev_bytes, sent = 0;
	int r;

	run->cur_dev = (uint16_t)i;
	r = vfmig_stream_write_device_begin(run->w, (uint16_t)i,
					    VFMIG_PHASE_FINAL);
	if (r < 0)
		return fail(run, r, "stop-copy", "device %s data: %s",
			    dr->d->id, strerror(-r));
	for (;;) {
		if (cancelled(run))
			return fail(run, -ECANCELED, "stop-copy",
				    "cancelled by request");
		/* One byte past the limit is enough to know it was passed. */
		uint64_t budget = limit - sent < VFMIG_MIG_STOP_COPY_CHUNK
					  ? limit - sent + 1
					  : VFMIG_MIG_STOP_COPY_CHUNK;
		r = vfmig_vmm_mig_save(dr->d->dev, budget, sink_device_data,
				       run, &res);
		sent = run->dev_bytes - before;
		if (r < 0)
			return device_section_failed(run, r, "stop-copy", dr);
		if (sent > limit) {
			char why[96] = "it gives no estimate";
			if (est != UINT64_MAX)
				snprintf(why, sizeof(why),
					 "its estimate was %llu",
					 (unsigned long long)est);
			return fail(run, -EFBIG, "stop-copy", "device %s sent "
				    "more than %llu bytes of stop-copy data "
				    "(%s)", dr->d->id,
				    (unsigned long long)limit, why);
		}
		if (res.status == VFMIG_VMM_MIG_SAVE_END)
			break;
	}
	r = vfmig_stream_write_device_end(run->w, (uint16_t)i);
	if (r < 0)
		return fail(run, r, "stop-copy", "device %s data: %s",
			    dr->d->id, strerror(-r));
	dr->last_bytes = sent;
	return 0;
}

/* Read switchover acks (and a destination failure) without waiting. */
static int src_poll_return_path(struct run *run, int wait_ms)
{
	struct vfmig_rp_msg m;
	char err[256] = "";

	if (!vfmig_chan_has_return_path(run->chan))
		return 0;
	for (;;) {
		int r = vfmig_chan_rp_recv(run->chan, &m, wait_ms, err,
					   sizeof(err));
		wait_ms = 0; /* then only what is there already */
		if (r == -ETIMEDOUT)
			return 0;
		if (r < 0)
			return fail(run, r, "pre-copy", "return path: %s",
				    err[0] ? err : strerror(-r));
		if (m.type == VFMIG_RP_FAILED)
			return fail(run, -EIO, "pre-copy",
				    "destination failed: %s", m.text);
		if (m.type != VFMIG_RP_SWITCHOVER_ACK)
			return fail(run, -EPROTO, "pre-copy", "unexpected %s "
				    "on the return path",
				    vfmig_rp_type_name(m.type));
		for (size_t i = 0; i < run->vm->ndev; i++)
			if (!strcmp(run->devs[i].d->id, m.text))
				run->devs[i].acks++;
	}
}

/*
 * The source failed. If the destination failed first and said why (a
 * FAILED message already waiting on the return path: it is sent before the
 * destination closes), that is the cause to report, not the broken pipe it
 * left behind. Does not wait.
 */
static void src_blame_destination(struct run *run)
{
	struct vfmig_rp_msg m;
	char err[256], phase[32];
	const char *colon = strchr(run->rep->error, ':');

	if (!run->chan || !vfmig_chan_has_return_path(run->chan) || !colon ||
	    strstr(run->rep->error, "destination failed") ||
	    (size_t)(colon - run->rep->error) >= sizeof(phase))
		return;
	copy_text(phase, (size_t)(colon - run->rep->error) + 1,
		  run->rep->error);
	for (int i = 0; i < 64; i++) {
		if (vfmig_chan_rp_recv(run->chan, &m, 0, err, sizeof(err)) < 0)
			return;
		if (m.type == VFMIG_RP_FAILED) {
			snprintf(run->rep->error, sizeof(run->rep->error),
				 "%s: destination failed: %.*s", phase,
				 (int)sizeof(run->rep->error) / 2, m.text);
			return;
		}
	}
}

/* One pre-copy round: device logs, dirty RAM, device pre-copy data. */
static int src_round(struct run *run, double *bytes_out)
{
	struct vfmig_ram_stats st = { 0 };
	uint64_t dev_before = run->dev_bytes;
	int r;

	r = src_sync_dirty(run);
	if (r < 0)
		return r;
	r = vfmig_ram_send(run->vm->ram, run->w, 0, &st);
	if (r < 0)
		return fail(run, r, "pre-copy", "sending RAM: %s",
			    strerror(-r));
	atomic_fetch_add(&run->prog->ram_bytes, st.bytes);
	run->rep->ram_bytes += st.bytes;
	for (size_t i = 0; i < run->vm->ndev; i++) {
		struct dev_run *dr = &run->devs[i];
		struct vfmig_vmm_mig_save_result res;
		uint64_t initial, dirty;

		if (!dr->precopy)
			continue;
		r = src_precopy_section(run, i, run->p.device_round_budget,
					&res);
		if (r < 0)
			return r;
		dr->sections++;
		/* Initial data is all sent when the device says so, or
		 * (without the extension) once a pass drained. */
		if (!dr->init_done) {
			bool done = res.status == VFMIG_VMM_MIG_SAVE_DRAINED;
			if (dr->caps.size_info &&
			    vfmig_vmm_mig_precopy_info(dr->d->dev, &initial,
						       &dirty) == 0)
				done = initial == 0;
			if (done)
				dr->init_done = dr->sections;
		}
	}
	*bytes_out = (double)st.bytes + (double)(run->dev_bytes - dev_before);
	return src_poll_return_path(run, 0);
}

/* Bytes the stop-and-copy phase would still have to send. */
static uint64_t src_remaining(struct run *run)
{
	uint64_t left = vfmig_ram_dirty_pages(run->vm->ram) *
			run->vm->ram->page_size;

	for (size_t i = 0; i < run->vm->ndev; i++) {
		struct dev_run *dr = &run->devs[i];
		uint64_t n, initial, dirty;

		if (dr->caps.size_info &&
		    vfmig_vmm_mig_stop_copy_size(dr->d->dev, &n) == 0) {
			left += n;
		} else if (dr->precopy && dr->caps.size_info &&
			   vfmig_vmm_mig_precopy_info(dr->d->dev, &initial,
						      &dirty) == 0) {
			left += initial + dirty;
		} else {
			left += dr->last_bytes;
		}
	}
	return left;
}

static bool src_acked(struct run *run)
{
	if (run->p.no_switchover_ack || !vfmig_chan_has_return_path(run->chan))
		return true;
	for (size_t i = 0; i < run->vm->ndev; i++) {
		struct dev_run *dr = &run->devs[i];
		if (dr->precopy && (!dr->init_done || dr->acks < dr->init_done))
			return false;
	}
	return true;
}

static int src_precopy(struct run *run)
{
	bool live = vfmig_chan_has_return_path(run->chan) &&
		    run->p.precopy != VFMIG_MIG_PRECOPY_NONE;
	int ack_limit_ms = run->p.timeout_ms > 0 ? run->p.timeout_ms
						 : DEFAULT_TIMEOUT_MS;
	double ack_wait_since = 0;

	set_status(run, VFMIG_MIG_ACTIVE);
	vfmig_ram_mark_all(run->vm->ram);
	while (live) {
		double t = mono_ms(), bytes = 0;
		int r = src_round(run, &bytes);
		if (r < 0)
			return r;
		run->rep->rounds++;
		atomic_store(&run->prog->rounds, run->rep->rounds);
		atomic_store(&run->prog->dirty_pages,
			     vfmig_ram_dirty_pages(run->vm->ram));
		if (cancelled(run))
			return fail(run, -ECANCELED, "pre-copy",
				    "cancelled by request");
		double ms = mono_ms() - t;
		double bw = bytes / (ms > 0.001 ? ms : 0.001); /* bytes/ms */
		double predicted = bw > 0 ? src_remaining(run) / bw : 1e9;
		bool fits = predicted <= (double)run->p.downtime_ms;
		/* The guest was paused by its user: nothing more will
		 * converge, so switch as soon as the destination allows. */
		bool want = fits || atomic_load(&run->prog->user_stopped) ||
			    run->rep->rounds >= run->p.max_rounds;
		if (want && src_acked(run)) {
			run->rep->converged = fits;
			break;
		}
		if (!want) {
			ack_wait_since = 0;
			continue;
		}
		/* Only the destination's acknowledgements hold the
		 * switchover back: wait for them on the return path rather
		 * than spin empty rounds, for at most the channel timeout. */
		if (!ack_wait_since)
			ack_wait_since = mono_ms();
		else if (mono_ms() - ack_wait_since > ack_limit_ms)
			return fail(run, -ETIMEDOUT, "pre-copy",
				    "no switchover acknowledgement from the "
				    "destination within %d ms (%u rounds)",
				    ack_limit_ms, run->rep->rounds);
		r = src_poll_return_path(run, ACK_WAIT_MS);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Stop the guest; downtime starts here. */
static int src_pause(struct run *run, const char *phase)
{
	int r;

	if (run->paused)
		return 0;
	r = run->vm->ops->pause(run->vm->vm);
	if (r < 0)
		return fail(run, r, phase, "pausing the guest: %s",
			    strerror(-r));
	run->paused = true;
	run->t_pause = mono_ms();
	run->pause_realtime_ns = real_ns();
	return 0;
}

/* The run state travels as the STREAM_INFO key "run-state" just before
 * SWITCHOVER: the guest's state as the user left it, known only now. */
static int src_write_run_state(struct run *run)
{
	bool ran = !run->vm->ops->was_running ||
		   run->vm->ops->was_running(run->vm->vm);
	const struct vfmig_stream_kv kv = { "run-state",
					    ran ? "running" : "paused" };

	run->rep->source_running = ran;
	return vfmig_stream_write_info(run->w, &kv, 1);
}

static int src_switchover(struct run *run)
{
	struct vfmig_ram_stats st = { 0 };
	int r;

	set_status(run, VFMIG_MIG_SWITCHOVER);
	if (cancelled(run))
		return fail(run, -ECANCELED, "switchover",
			    "cancelled by request");
	r = src_pause(run, "switchover");
	if (r < 0)
		return r;
	for (size_t i = 0; i < run->vm->ndev; i++) {
		struct dev_run *dr = &run->devs[i];
		uint32_t final;

		dr->touched = true;
		r = vfmig_vmm_mig_set_state(dr->d->dev, VFMIG_VMM_MIG_STOP_COPY,
					    VFMIG_VMM_MIG_STOP, &final);
		if (r < 0)
			return fail(run, r, "switchover",
				    "device %s refused STOP_COPY: %s (now %s)",
				    dr->d->id, vfmig_vmm_strerror(r),
				    vfmig_vmm_mig_state_name(final));
	}
	/* Devices are stopped: this log is the last word on their DMA. A
	 * device that cannot log may have written anywhere. */
	r = src_sync_dirty(run);
	if (r < 0)
		return r;
	for (size_t i = 0; i < run->vm->ndev; i++)
		if (!run->devs[i].caps.dirty_logging)
			vfmig_ram_mark_all(run->vm->ram);
	r = src_write_run_state(run);
	if (r == 0)
		r = vfmig_stream_write_switchover(run->w);
	if (r < 0)
		return fail(run, r, "stop-copy", "writing the switchover: %s",
			    strerror(-r));
	/* The last RAM, in pieces: a piece that sends less than asked for
	 * took every dirty page there was (nothing dirties RAM now). */
	for (;;) {
		uint64_t before = st.bytes;
		if (cancelled(run))
			return fail(run, -ECANCELED, "stop-copy",
				    "cancelled by request");
		r = vfmig_ram_send(run->vm->ram, run->w, SWITCHOVER_RAM_CHUNK,
				   &st);
		if (r < 0)
			return fail(run, r, "stop-copy", "sending RAM: %s",
				    strerror(-r));
		atomic_fetch_add(&run->prog->ram_bytes, st.bytes - before);
		if (st.bytes - before < SWITCHOVER_RAM_CHUNK)
			break;
	}
	run->rep->ram_bytes += st.bytes;
	for (size_t i = 0; i < run->vm->ndev; i++) {
		r = src_stop_copy_section(run, i);
		if (r < 0)
			return r;
	}
	if (cancelled(run))
		return fail(run, -ECANCELED, "stop-copy",
			    "cancelled by request");
	for (size_t i = 0; i < run->vm->ndev; i++) {
		struct dev_run *dr = &run->devs[i];
		void *state = vfmig_type_state_new(dr->type);
		char err[256] = "";

		if (!state)
			return fail(run, -ENOMEM, "stop-copy", "out of memory");
		r = dr->type->save(dr->d->dev, state, err, sizeof(err));
		if (r == 0)
			r = vfmig_stream_write_type_state(run->w, (uint16_t)i,
							  dr->type->desc,
							  state);
		free(state);
		if (r < 0)
			return fail(run, r, "stop-copy",
				    "device %s %s state: %s", dr->d->id,
				    dr->type->name,
				    err[0] ? err : strerror(-r));
	}
	r = vfmig_stream_writer_end(run->w);
	if (r < 0)
		return fail(run, r, "stop-copy", "finishing the stream: %s",
			    strerror(-r));
	return 0;
}

/* Wait for the destination to say it runs the VM. */
static int src_wait_resumed(struct run *run)
{
	struct vfmig_rp_msg m;
	char err[256] = "";

	/* A file has no one to confirm: it is complete once it is synced and
	 * under its name. Until then a failure leaves no trace of it. */
	if (!vfmig_chan_has_return_path(run->chan)) {
		int r = vfmig_chan_commit(run->chan, err, sizeof(err));
		if (r < 0)
			return fail(run, r, "completion", "%s", err);
		return 0;
	}
	for (;;) {
		int r = vfmig_chan_rp_recv(run->chan, &m, run->p.timeout_ms,
					   err, sizeof(err));
		if (r < 0)
			return fail(run, r, "completion",
				    "no confirmation from the destination: %s",
				    err[0] ? err : strerror(-r));
		if (m.type == VFMIG_RP_SWITCHOVER_ACK)
			continue;
		if (m.type == VFMIG_RP_FAILED)
			return fail(run, -EIO, "completion",
				    "destination failed: %s", m.text);
		if (m.type == VFMIG_RP_RESUMED) {
			copy_text(run->rep->verify_msg,
				  sizeof(run->rep->verify_msg), m.text);
			run->rep->verified = !strcmp(m.text, "ok");
			double ms = (double)(int64_t)(m.timestamp_ns -
						      run->pause_realtime_ns) /
				    1e6;
			/* Same host: the clocks agree. Elsewhere, bound it by
			 * what this side saw. */
			double seen = mono_ms() - run->t_pause;
			run->rep->downtime_ms = (ms > 0 && ms <= seen) ? ms
								      : seen;
			return 0;
		}
	}
}

/* Success: the VM lives on the destination now. */
static void src_finish(struct run *run)
{
	for (size_t i = 0; i < run->vm->ndev; i++) {
		struct dev_run *dr = &run->devs[i];
		uint32_t final;

		if (dr->logging)
			vfmig_vmm_dma_log_stop(dr->d->dev);
		vfmig_vmm_mig_set_state(dr->d->dev, VFMIG_VMM_MIG_STOP,
					VFMIG_VMM_MIG_ERROR, &final);
	}
}

/* Failure: everything back as it was before the migration: devices in the
 * state they had, the guest running if it ran. If the user paused the VM
 * meanwhile, it stays paused and its running devices go to STOP. */
static void src_rollback(struct run *run)
{
	bool user_stopped = atomic_load(&run->prog->user_stopped);

	for (size_t i = 0; i < run->vm->ndev; i++) {
		struct dev_run *dr = &run->devs[i];
		uint32_t back = dr->initial;

		if (dr->logging)
			vfmig_vmm_dma_log_stop(dr->d->dev);
		if (user_stopped && back == VFMIG_VMM_MIG_RUNNING)
			back = VFMIG_VMM_MIG_STOP;
		/* initial is 0 (ERROR) when the run never read it. */
		if (dr->initial && (dr->touched || back != dr->initial))
			rollback_dev(run, i, back);
	}
	if (run->paused && run->vm->ops->resume(run->vm->vm) == 0)
		run->paused = false;
}

int vfmig_migrate_out(const struct vfmig_mig_vm *vm,
		      const struct vfmig_typereg *reg, const char *uri,
		      const struct vfmig_mig_params *p,
		      struct vfmig_mig_progress *progress,
		      struct vfmig_mig_report *rep)
{
	struct run run;
	int r;

	r = run_init(&run, vm, reg, p, progress, rep);
	set_status(&run, VFMIG_MIG_SETUP);
	if (r < 0)
		r = fail(&run, r, "setup", "out of memory");
	if (r == 0)
		r = src_check_devices(&run);
	if (r == 0)
		r = src_open_stream(&run, uri);
	/* A file has no return path and no pre-copy: pause first; so does a
	 * migration asked to copy nothing live. */
	if (r == 0 && (!vfmig_chan_has_return_path(run.chan) ||
		       run.p.precopy == VFMIG_MIG_PRECOPY_NONE))
		r = src_pause(&run, "setup");
	if (r == 0)
		r = src_start_devices(&run);
	if (r == 0)
		r = src_precopy(&run);
	if (r == 0)
		r = src_switchover(&run);
	if (r == 0)
		r = src_wait_resumed(&run);
	if (r == 0) {
		src_finish(&run);
		set_status(&run, VFMIG_MIG_COMPLETED);
		rep->ok = true;
		if (!vfmig_chan_has_return_path(run.chan))
			rep->downtime_ms = mono_ms() - run.t_pause;
	} else {
		if (r != -ECANCELED)
			src_blame_destination(&run);
		src_rollback(&run);
		set_status(&run, r == -ECANCELED ? VFMIG_MIG_CANCELLED
						 : VFMIG_MIG_FAILED);
	}
	rep->device_bytes = run.dev_bytes;
	rep->stream_bytes = run.w ? vfmig_stream_writer_bytes(run.w) : 0;
	run_fini(&run);
	if (rep->stream_bytes > rep->ram_bytes + rep->device_bytes)
		rep->overhead_bytes =
			rep->stream_bytes - rep->ram_bytes - rep->device_bytes;
	if (rep->total_ms > 0)
		rep->throughput_mbps =
			(double)rep->stream_bytes * 8 / 1e6 /
			(rep->total_ms / 1e3);
	return r;
}

/* ------------------------------------------------------------------ */
/* Destination                                                         */
/* ------------------------------------------------------------------ */

/* The device list must match this VM before any device is touched. */
static int dst_check_list(struct run *run,
			  const struct vfmig_stream_record *rec)
{
	uint16_t n = rec->d.u.device_list.count;

	if (n != run->vm->ndev)
		return fail(run, -EINVAL, "incoming", "the stream carries %u "
			    "devices, this VM has %zu", n, run->vm->ndev);
	for (size_t i = 0; i < n; i++) {
		const struct vfmig_stream_device_view *v =
			&rec->d.u.device_list.dev[i];
		struct dev_run *dr = &run->devs[i];

		if (!vfmig_stream_str_eq(v->id, dr->d->id) ||
		    !vfmig_stream_str_eq(v->type, dr->d->type))
			return fail(run, -EINVAL, "incoming", "stream device "
				    "%zu is \"%.*s\" of type \"%.*s\", this VM "
				    "has \"%s\" of type \"%s\"",
				    i, v->id.len, v->id.p, v->type.len,
				    v->type.p, dr->d->id, dr->d->type);
		if (!dr->type)
			return fail(run, -EOPNOTSUPP, "incoming",
				    "device %s: type \"%s\" is not registered",
				    dr->d->id, dr->d->type);
		if (v->type_version > dr->type->desc->version ||
		    v->type_version < dr->type->desc->min_version)
			return fail(run, -EOPNOTSUPP, "incoming",
				    "device %s: %s state version %u, this VMM "
				    "reads %u..%u",
				    dr->d->id, dr->d->type, v->type_version,
				    dr->type->desc->min_version,
				    dr->type->desc->version);
		int r = vfmig_vmm_mig_discover(dr->d->dev, &dr->caps);
		if (r < 0 && dev_lost(run, i, r, "incoming") < 0)
			return r;
		if (r < 0 || !dr->caps.migratable)
			return fail(run, r < 0 ? r : -EOPNOTSUPP, "incoming",
				    "device %s cannot take a migration: %s",
				    dr->d->id, dr->caps.blocker);
		/* The device data is framed per interface: a v2 stream
		 * cannot be loaded through the region interface, nor the
		 * reverse. */
		const char *mine = iface_name(dr->d->dev);
		if (!vfmig_stream_str_eq(v->interface, mine))
			return fail(run, -EOPNOTSUPP, "incoming",
				    "device %s: the stream's interface is "
				    "\"%.*s\", this device speaks %s",
				    dr->d->id, v->interface.len,
				    v->interface.p, mine);
	}
	return 0;
}

static int dst_resuming(struct run *run)
{
	for (size_t i = 0; i < run->vm->ndev; i++) {
		struct dev_run *dr = &run->devs[i];
		uint32_t final;
		int r;

		dr->touched = true;
		r = vfmig_vmm_mig_set_state(dr->d->dev, VFMIG_VMM_MIG_RESUMING,
					    VFMIG_VMM_MIG_RUNNING, &final);
		if (r < 0)
			return fail(run, r, "incoming",
				    "device %s refused RESUMING: %s",
				    dr->d->id, vfmig_vmm_strerror(r));
	}
	return 0;
}

static int dst_record(struct run *run, const struct vfmig_stream_record *rec)
{
	char err[256] = "";
	int r;

	switch (rec->type) {
	case VFMIG_REC_RAM_PAGES:
		r = vfmig_ram_load(run->vm->ram, rec, err, sizeof(err));
		if (r < 0)
			return fail(run, r, "load", "%s", err);
		for (uint32_t i = 0; i < rec->d.u.ram_pages.nruns; i++)
			if (!rec->d.u.ram_pages.runs[i].zero)
				run->rep->ram_bytes +=
					(uint64_t)rec->d.u.ram_pages.runs[i]
						.npages *
					rec->d.u.ram_pages.page_size;
		atomic_store(&run->prog->ram_bytes, run->rep->ram_bytes);
		return 0;
	case VFMIG_REC_DEVICE_BEGIN:
		run->cur_dev = rec->d.u.device_begin.dev;
		return 0;
	case VFMIG_REC_DEVICE_DATA: {
		uint16_t i = rec->d.u.device_data.dev;
		r = vfmig_vmm_dev_mig_data_write(run->devs[i].d->dev,
						 rec->d.u.device_data.data,
						 rec->d.u.device_data.len);
		if (r < 0)
			return fail(run, r, "load", "device %s refused its "
				    "data: %s", run->devs[i].d->id,
				    vfmig_vmm_strerror(r));
		run->dev_bytes += rec->d.u.device_data.len;
		atomic_store(&run->prog->device_bytes, run->dev_bytes);
		return 0;
	}
	case VFMIG_REC_DEVICE_END: {
		/* Acknowledge each loaded pre-copy section; the source counts
		 * them to know its initial data has arrived. */
		struct dev_run *dr = &run->devs[rec->d.u.device_end.dev];
		dr->sections++;
		if (run->chan && vfmig_chan_has_return_path(run->chan)) {
			r = vfmig_chan_rp_ack(run->chan, dr->d->id);
			if (r < 0)
				return fail(run, r, "load", "return path: %s",
					    strerror(-r));
		}
		return 0;
	}
	case VFMIG_REC_TYPE_STATE: {
		struct dev_run *dr = &run->devs[rec->d.u.type_state.dev];
		free(dr->type_state);
		dr->type_state = malloc(rec->d.u.type_state.len);
		if (!dr->type_state)
			return fail(run, -ENOMEM, "load", "out of memory");
		memcpy(dr->type_state, rec->d.u.type_state.state,
		       rec->d.u.type_state.len);
		dr->type_state_len = rec->d.u.type_state.len;
		return 0;
	}
	case VFMIG_REC_STREAM_INFO:
		for (uint16_t k = 0; k < rec->d.u.info.count; k++) {
			const struct vfmig_stream_kv_view *kv =
				&rec->d.u.info.kv[k];
			r = vfmig_ram_info(run->vm->ram, kv, err, sizeof(err));
			if (r < 0)
				return fail(run, r, "load", "%s", err);
			if (!vfmig_stream_str_eq(kv->key, "run-state"))
				continue;
			if (vfmig_stream_str_eq(kv->value, "running"))
				run->rep->source_running = true;
			else if (vfmig_stream_str_eq(kv->value, "paused"))
				run->rep->source_running = false;
			else
				return fail(run, -EBADMSG, "load", "run-state "
					    "\"%.*s\" is neither running nor "
					    "paused", kv->value.len,
					    kv->value.p);
		}
		return 0;
	default:
		return 0; /* SWITCHOVER, END */
	}
}

/* Whether the destination starts the guest: only if the source's ran. */
static bool dst_runs(const struct run *run)
{
	return run->rep->source_running && !run->p.dst_paused;
}

/*
 * Still in RESUMING (where a device takes config writes and SET_IRQS, as
 * QEMU's order needs): type state, then interrupts. Then RESUMING -> STOP,
 * where the device validates what it loaded, and RUNNING. The guest runs
 * only after the source was told.
 */
static int dst_start(struct run *run)
{
	for (size_t i = 0; i < run->vm->ndev; i++) {
		struct dev_run *dr = &run->devs[i];
		char err[256] = "";
		uint32_t final;
		int r;

		if (!dr->type_state)
			return fail(run, -EBADMSG, "resume", "no %s state for "
				    "device %s in the stream", dr->d->type,
				    dr->d->id);
		void *state = vfmig_type_state_new(dr->type);
		if (!state)
			return fail(run, -ENOMEM, "resume", "out of memory");
		r = vfmig_type_decode_load(dr->type, dr->d->dev, dr->type_state,
					   dr->type_state_len, state, err,
					   sizeof(err));
		free(state);
		if (r < 0)
			return fail(run, r, "resume", "device %s %s state: %s",
				    dr->d->id, dr->d->type,
				    err[0] ? err : strerror(-r));
		r = run->vm->ops->rewire_irqs(run->vm->vm, i);
		if (r < 0)
			return fail(run, r, "resume", "device %s interrupts: %s",
				    dr->d->id, strerror(-r));
		r = vfmig_vmm_mig_set_state(dr->d->dev, VFMIG_VMM_MIG_STOP,
					    VFMIG_VMM_MIG_ERROR, &final);
		if (r < 0)
			return fail(run, r, "resume", "device %s rejected the "
				    "loaded state: %s", dr->d->id,
				    vfmig_vmm_strerror(r));
		if (!dst_runs(run))
			continue; /* a paused VM's devices wait in STOP */
		r = vfmig_vmm_mig_set_state(dr->d->dev, VFMIG_VMM_MIG_RUNNING,
					    VFMIG_VMM_MIG_ERROR, &final);
		if (r < 0)
			return fail(run, r, "resume", "device %s refused "
				    "RUNNING: %s", dr->d->id,
				    vfmig_vmm_strerror(r));
	}
	return 0;
}

/* The VM's own consistency check, before its guest runs. */
static void dst_verify(struct run *run)
{
	char msg[sizeof(run->rep->verify_msg)] = "";

	if (!run->vm->ops->verify) {
		snprintf(run->rep->verify_msg, sizeof(run->rep->verify_msg),
			 "not checked");
		return;
	}
	run->rep->verified = run->vm->ops->verify(run->vm->vm, msg,
						  sizeof(msg)) == 0;
	snprintf(run->rep->verify_msg, sizeof(run->rep->verify_msg), "%s",
		 run->rep->verified ? "ok" : (msg[0] ? msg : "failed"));
}

static int dst_load(struct run *run)
{
	struct vfmig_stream_record rec;
	bool have_list = false;
	int r;

	while ((r = vfmig_stream_next(run->r, &rec)) == 1) {
		if (cancelled(run))
			return fail(run, -ECANCELED, "load", "cancelled");
		if (rec.type == VFMIG_REC_DEVICE_LIST) {
			r = dst_check_list(run, &rec);
			if (r == 0)
				r = dst_resuming(run);
			if (r < 0)
				return r;
			have_list = true;
			set_status(run, VFMIG_MIG_ACTIVE);
			continue;
		}
		if (!have_list && rec.type != VFMIG_REC_STREAM_INFO)
			return fail(run, -EBADMSG, "incoming", "%s before the "
				    "device list",
				    vfmig_stream_type_name(rec.type));
		r = dst_record(run, &rec);
		if (r < 0)
			return r;
	}
	if (r < 0)
		return fail(run, r, "load", "%s",
			    vfmig_stream_reader_error(run->r));
	if (!have_list)
		return fail(run, -EBADMSG, "incoming", "no device list");
	return 0;
}

/* Failure: forget whatever was loaded; the devices come back empty. */
static void dst_rollback(struct run *run)
{
	if (run->chan && vfmig_chan_has_return_path(run->chan))
		vfmig_chan_rp_failed(run->chan, run->rep->error);
	for (size_t i = 0; i < run->vm->ndev; i++)
		if (run->devs[i].touched)
			rollback_dev(run, i, VFMIG_VMM_MIG_RUNNING);
}

/* Open the incoming channel: a file at once; a socket by listening and
 * accepting in short waits, so that a cancel is noticed. */
static int dst_open(struct run *run, const char *uri)
{
	struct vfmig_chan_uri u;
	struct vfmig_chan_listener *l = NULL;
	char err[256] = "";
	double start = mono_ms();
	int r;

	r = vfmig_chan_parse_uri(uri, &u, err, sizeof(err));
	if (r == 0 && u.kind == VFMIG_CHAN_FILE)
		r = vfmig_chan_open_incoming(uri, run->p.timeout_ms, &run->chan,
					     err, sizeof(err));
	else if (r == 0)
		r = vfmig_chan_listen(uri, &l, err, sizeof(err));
	while (r == 0 && l) {
		r = vfmig_chan_accept(l, 200, &run->chan, err, sizeof(err));
		if (r != -ETIMEDOUT)
			break;
		if (cancelled(run)) {
			r = -ECANCELED;
			snprintf(err, sizeof(err), "cancelled while waiting "
				 "for the source");
		} else if (run->p.timeout_ms >= 0 &&
			   mono_ms() - start > run->p.timeout_ms) {
			snprintf(err, sizeof(err), "no source connected "
				 "within %d ms", run->p.timeout_ms);
		} else {
			r = 0;
		}
	}
	vfmig_chan_listener_close(l);
	if (r < 0)
		return fail(run, r, "incoming", "channel %s: %s", uri,
			    err[0] ? err : strerror(-r));
	return 0;
}

int vfmig_migrate_in(const struct vfmig_mig_vm *vm,
		     const struct vfmig_typereg *reg, const char *uri,
		     const struct vfmig_mig_params *p,
		     struct vfmig_mig_progress *progress,
		     struct vfmig_mig_report *rep)
{
	struct run run;
	char err[256] = "";
	int r;

	r = run_init(&run, vm, reg, p, progress, rep);
	set_status(&run, VFMIG_MIG_SETUP);
	/* A stream without "run-state" (older sources) ran its guest. */
	rep->source_running = true;
	if (r < 0)
		r = fail(&run, r, "incoming", "out of memory");
	if (r == 0)
		r = dst_open(&run, uri);
	rep->channel_opened = run.chan != NULL;
	if (r == 0) {
		r = vfmig_stream_reader_open(&run.r, vfmig_chan_io(run.chan),
					     err, sizeof(err));
		if (r < 0)
			r = fail(&run, r, "incoming", "%s", err);
	}
	if (r == 0)
		r = dst_load(&run);
	if (r == 0)
		r = dst_start(&run);
	/* Tell the source before the guest runs here: if it cannot hear it,
	 * it resumes the VM itself and this side must not run it too. */
	if (r == 0)
		dst_verify(&run);
	if (r == 0 && vfmig_chan_has_return_path(run.chan)) {
		struct vfmig_rp_msg m = { .type = VFMIG_RP_RESUMED,
					  .timestamp_ns = real_ns() };
		snprintf(m.text, sizeof(m.text), "%s", rep->verify_msg);
		r = vfmig_chan_rp_send(run.chan, &m);
		if (r < 0)
			r = fail(&run, r, "completion", "sending RESUMED: %s",
				 strerror(-r));
	}
	if (r == 0 && dst_runs(&run)) {
		r = vm->ops->resume(vm->vm);
		if (r < 0)
			r = fail(&run, r, "resume", "resuming the guest: %s",
				 strerror(-r));
	} else if (r == 0 && vm->ops->settle_paused) {
		r = vm->ops->settle_paused(vm->vm);
		if (r < 0)
			r = fail(&run, r, "resume", "leaving the VM paused: "
				 "%s", strerror(-r));
	}
	if (r == 0) {
		set_status(&run, VFMIG_MIG_COMPLETED);
		rep->ok = true;
	} else {
		dst_rollback(&run);
		set_status(&run, r == -ECANCELED ? VFMIG_MIG_CANCELLED
						 : VFMIG_MIG_FAILED);
	}
	rep->device_bytes = run.dev_bytes;
	rep->stream_bytes = run.r ? vfmig_stream_reader_offset(run.r) : 0;
	run_fini(&run);
	return r;
}
