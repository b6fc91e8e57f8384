/* SPDX-License-Identifier: MIT */
/*
 * The source flow of a migration (vfmig_migrate_out): check the devices,
 * open the stream, pre-copy rounds of RAM and device data, the
 * switchover (pause, stop-and-copy), then wait for the destination's
 * verdict, or roll back so that the guest runs on here with nothing lost.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/migrate_run.h"
#include "engine/progress.h"

/* Stream bytes written so far: the main stream and every RAM channel. */
static uint64_t src_stream_bytes(const struct run *run)
{
	return (run->w ? vfmig_stream_writer_bytes(run->w) : 0) +
	       mig_mchan_bytes(run);
}

/* Capabilities and blockers: nothing is changed when a device can't go. */
static int src_check_devices(struct run *run)
{
	for (size_t i = 0; i < run->vm->ndev; i++) {
		struct dev_run *dr = &run->devs[i];
		int r;

		/* A dead device is named as such, before anything that
		 * would only fail because of it. */
		r = mig_dev_lost(run, i, -ENOTCONN, "setup");
		if (r < 0)
			return r;
		if (!dr->type)
			return mig_fail(
				run, -EOPNOTSUPP, "setup",
				"device %s: type \"%s\" is not registered",
				dr->d->id, dr->d->type);
		r = vfmig_vmm_mig_discover(dr->d->dev, &dr->caps);
		if (r < 0 && mig_dev_lost(run, i, r, "setup") < 0)
			return r;
		if (r < 0 || !dr->caps.migratable)
			return mig_fail(run, r < 0 ? r : -EOPNOTSUPP, "setup",
					"migration blocked by device %s: %s",
					dr->d->id, dr->caps.blocker);
		r = vfmig_vmm_mig_get_state(dr->d->dev, &dr->initial);
		if (r < 0)
			return mig_fail(run, r, "setup", "device %s state: %s",
					dr->d->id, vfmig_vmm_strerror(r));
		if (dr->initial != VFMIG_VMM_MIG_RUNNING &&
		    dr->initial != VFMIG_VMM_MIG_STOP)
			return mig_fail(run, -EBUSY, "setup",
					"device %s is in %s, "
					"not RUNNING or STOP",
					dr->d->id,
					vfmig_vmm_mig_state_name(dr->initial));
	}
	return 0;
}
static int src_open_stream(struct run *run, const char *uri)
{
	struct vfmig_stream_device *list;
	char err[256] = "";
	enum vfmig_stream_csum csum =
		run->p.stream_csum_set
			? (enum vfmig_stream_csum)run->p.stream_csum
			: VFMIG_STREAM_CSUM_DEFAULT;
	int r;

	/* Before anything is connected: a CRC-32 stream is format 1.0,
	 * which has no VCPU_STATE record. */
	if (csum == VFMIG_STREAM_CSUM_CRC32 && run->vm->ops->has_cpus &&
	    run->vm->ops->has_cpus(run->vm->vm))
		return mig_fail(run, -EOPNOTSUPP, "setup",
				"stream checksum crc32 writes format 1.0, "
				"which cannot carry the vCPU state of a --kvm "
				"VM (use xxh3, the default)");
	r = mig_mchan_src_setup(run, uri);
	if (r < 0)
		return r;
	r = vfmig_chan_connect(uri, run->p.connect_timeout_ms, &run->chan, err,
			       sizeof(err));
	if (r < 0)
		return mig_fail(run, r, "setup", "channel %s: %s", uri,
				err[0] ? err : strerror(-r));
	vfmig_chan_set_timeout(run->chan, run->p.timeout_ms);
	r = vfmig_stream_writer_open_csum(&run->w, vfmig_chan_io(run->chan),
					  csum);
	if (r < 0)
		return mig_fail(run, r, "setup", "stream header: %s",
				strerror(-r));
	vfmig_chan_tune_writer(run->chan, run->w);
	/* Devices on data channel version 2 seal their data for the
	 * stream's checksum, so it moves without passing through here. */
	run->seal = vfmig_stream_writer_can_move(run->w);
	for (size_t i = 0; i < run->vm->ndev; i++)
		vfmig_vmm_dev_set_seal(run->devs[i].d->dev,
				       run->seal ? (int)i : -1);
	struct vfmig_stream_kv info[4] = {
		{ "producer", "vfmig" },
		{ "ram", run->vm->ram->name },
	};
	r = vfmig_stream_write_info(run->w, info,
				    2 + mig_mchan_src_info(run, info + 2));
	if (r == 0)
		r = vfmig_ram_announce(run->vm->ram, run->w);
	list = calloc(run->vm->ndev ? run->vm->ndev : 1, sizeof(*list));
	if (!list)
		return mig_fail(run, -ENOMEM, "setup", "out of memory");
	for (size_t i = 0; i < run->vm->ndev; i++) {
		list[i].id = run->devs[i].d->id;
		list[i].type = run->devs[i].d->type;
		list[i].interface = mig_iface_name(run->devs[i].d->dev);
		list[i].instance = (uint32_t)i;
		list[i].type_version = run->devs[i].type->desc->version;
	}
	if (r == 0)
		r = vfmig_stream_write_device_list(run->w, list, run->vm->ndev);
	free(list);
	if (r < 0)
		return mig_fail(run, r, "setup", "writing the device list: %s",
				strerror(-r));
	return mig_mchan_src_connect(run, uri);
}

/* What the guest's CPUs write (a KVM vCPU's dirty log): on before the
 * first RAM pass takes its bits, off when the run ends. */
static int src_cpu_dirty_track(struct run *run, bool on)
{
	char err[256] = "";
	int r;

	if (!run->vm->ops->cpu_dirty_track || run->cpu_logging == on)
		return 0;
	r = run->vm->ops->cpu_dirty_track(run->vm->vm, on, err, sizeof(err));
	if (r == 0)
		run->cpu_logging = on;
	if (r < 0 && on)
		return mig_fail(run, r, "setup", "vCPU dirty log: %s",
				err[0] ? err : strerror(-r));
	return 0;
}

/* DMA logging and PRE_COPY on every device that has them. */
static int src_start_devices(struct run *run)
{
	int r0 = src_cpu_dirty_track(run, true);

	if (r0 < 0)
		return r0;
	for (size_t i = 0; i < run->vm->ndev; i++) {
		struct dev_run *dr = &run->devs[i];
		uint32_t final;
		int r;

		if (dr->caps.dirty_logging) {
			r = vfmig_vmm_dma_log_start(dr->d->dev, LOG_PAGE, NULL,
						    0, NULL);
			if (r < 0 && mig_dev_lost(run, i, r, "setup") < 0)
				return r;
			if (r < 0)
				return mig_fail(
					run, r, "setup",
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
				return mig_fail(
					run, r, "setup",
					"device %s refused PRE_COPY: %s "
					"(now %s)",
					dr->d->id, vfmig_vmm_strerror(r),
					vfmig_vmm_mig_state_name(final));
			dr->precopy = true;
		}
	}
	return 0;
}

/* Merge every device's DMA log into the RAM dirty bitmap; phase names a
 * failure. */
static int src_sync_dirty(struct run *run, const char *phase)
{
	struct vfmig_ram *ram = run->vm->ram;

	if (run->cpu_logging) {
		char err[256] = "";
		int r = run->vm->ops->cpu_dirty_sync(run->vm->vm, err,
						     sizeof(err));
		if (r < 0) {
			vfmig_ram_mark_all(ram);
			return mig_fail(run, r, phase, "vCPU dirty log: %s",
					err[0] ? err : strerror(-r));
		}
	}
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
			if (mig_dev_lost(run, i, r, phase) < 0)
				return r;
			return mig_fail(run, r, phase,
					"device %s: DMA log report: %s",
					dr->d->id, vfmig_vmm_strerror(r));
		}
		r = vfmig_ram_merge_bitmap(ram, 0, LOG_PAGE, run->bitmap,
					   ram->size / LOG_PAGE);
		if (r < 0)
			return mig_fail(run, r, phase,
					"merging the DMA log of "
					"device %s: %s",
					dr->d->id, strerror(-r));
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
		mig_track_dev(run, run->cur_dev, len);
	} else {
		run->sink_err = r; /* the stream failed, not the device */
	}
	return r;
}

struct move_ctx {
	vfmig_vmm_move *mv;
	int timeout_ms; /* the channel's: a destination that stops reading */
};

static int move_record(void *priv, int fd)
{
	struct move_ctx *m = priv;

	return vfmig_vmm_mig_move(m->mv, fd, m->timeout_ms);
}

/* A sealed frame of the device: into the stream without passing through
 * this process (vfmig_stream_write_device_data_moved). */
static int sink_moved(void *priv, size_t len, vfmig_vmm_move *mv)
{
	struct run *run = priv;
	struct move_ctx m = { mv, run->p.timeout_ms };
	int r = vfmig_stream_write_device_data_moved(run->w, run->cur_dev, len,
						     move_record, &m);

	if (r == 0) {
		run->dev_bytes += len;
		atomic_fetch_add(&run->prog->device_bytes, len);
		mig_track_dev(run, run->cur_dev, len);
	} else {
		run->sink_err = r;
	}
	return r;
}

/* The save pump of device i, moving sealed frames when the stream can. */
static int save_device(struct run *run, size_t i, uint64_t budget,
		       struct vfmig_vmm_mig_save_result *res)
{
	return vfmig_vmm_mig_save_moved(run->devs[i].d->dev, budget,
					sink_device_data,
					run->seal ? sink_moved : NULL, run,
					res);
}

/* The cause of a failed device section: the stream's (writing to the
 * destination) or the device's, each named as what it is. */
static int device_section_failed(struct run *run, int r, const char *phase,
				 const struct dev_run *dr)
{
	if (run->sink_err && r == run->sink_err)
		return mig_fail(run, r, phase, "sending device %s data to the "
				"destination: %s", dr->d->id, strerror(-r));
	if (mig_dev_lost(run, (size_t)(dr - run->devs), r, phase) < 0)
		return r;
	return mig_fail(run, r, phase, "device %s data: %s", dr->d->id,
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
		r = save_device(run, i, budget, res);
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
		return mig_fail(run, r, "stop-copy", "device %s data: %s",
				dr->d->id, strerror(-r));
	for (;;) {
		if (mig_cancelled(run))
			return mig_fail(run, -ECANCELED, "stop-copy",
					"cancelled by request");
		/* One byte past the limit is enough to know it was passed. */
		uint64_t budget = limit - sent < VFMIG_MIG_STOP_COPY_CHUNK
					  ? limit - sent + 1
					  : VFMIG_MIG_STOP_COPY_CHUNK;
		r = save_device(run, i, budget, &res);
		sent = run->dev_bytes - before;
		if (r < 0)
			return device_section_failed(run, r, "stop-copy", dr);
		if (sent > limit) {
			char why[96] = "it gives no estimate";
			if (est != UINT64_MAX)
				snprintf(why, sizeof(why),
					 "its estimate was %llu",
					 (unsigned long long)est);
			return mig_fail(
				run, -EFBIG, "stop-copy",
				"device %s sent "
				"more than %llu bytes of stop-copy data "
				"(%s)",
				dr->d->id, (unsigned long long)limit, why);
		}
		if (res.status == VFMIG_VMM_MIG_SAVE_END)
			break;
	}
	r = vfmig_stream_write_device_end(run->w, (uint16_t)i);
	if (r < 0)
		return mig_fail(run, r, "stop-copy", "device %s data: %s",
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
		if (r < 0) /* the channel's text names the return path */
			return mig_fail(run, r, "pre-copy", "%s",
					err[0] ? err : strerror(-r));
		if (m.type == VFMIG_RP_FAILED)
			return mig_fail(run, -EIO, "pre-copy",
					"destination failed: %s", m.text);
		if (m.type == VFMIG_RP_WAIT_COMMIT) {
			run->dst_commit = true;
			continue;
		}
		if (m.type == VFMIG_RP_SYNCED) {
			unsigned long long v = strtoull(m.text, NULL, 10);
			if (v > run->sync_sent)
				return mig_fail(run, -EPROTO, "pre-copy",
						"SYNCED %s, only %llu sync "
						"points were sent", m.text,
						(unsigned long long)
							run->sync_sent);
			if (v > run->sync_seen)
				run->sync_seen = v;
			continue;
		}
		if (m.type != VFMIG_RP_SWITCHOVER_ACK)
			return mig_fail(run, -EPROTO, "pre-copy",
					"unexpected %s "
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
	mig_copy_text(phase, (size_t)(colon - run->rep->error) + 1,
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
	uint64_t dev_before = run->dev_bytes, ram_budget, dev_budget;
	bool drained;
	int r;

	mig_track_round_start(run);
	mig_conv_round(run, &ram_budget, &dev_budget);
	r = src_sync_dirty(run, "pre-copy");
	if (r < 0)
		return r;
	mig_track_sync(run);
	r = mig_send_ram(run, ram_budget, &st, &drained, "pre-copy");
	if (r < 0)
		return r;
	run->rep->ram_bytes += st.bytes;
	for (size_t i = 0; i < run->vm->ndev; i++) {
		struct dev_run *dr = &run->devs[i];
		struct vfmig_vmm_mig_save_result res;
		uint64_t initial, dirty;

		if (!dr->precopy)
			continue;
		r = src_precopy_section(run, i, dev_budget, &res);
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

/* Bytes the stop-and-copy phase would still have to send. A device that
 * cannot log its DMA makes all of RAM dirty at the switchover. */
static uint64_t src_remaining(struct run *run)
{
	struct vfmig_ram *ram = run->vm->ram;
	uint64_t left = vfmig_ram_dirty_pages(ram) * ram->page_size;

	for (size_t i = 0; i < run->vm->ndev; i++)
		if (!run->devs[i].caps.dirty_logging)
			left = ram->npages * ram->page_size;
	for (size_t i = 0; i < run->vm->ndev; i++) {
		struct dev_run *dr = &run->devs[i];
		uint64_t n, initial, dirty;

		if (dr->caps.size_info &&
		    vfmig_vmm_mig_stop_copy_size(dr->d->dev, &n) == 0) {
			left += n;
		} else if (dr->precopy && dr->caps.size_info &&
			   vfmig_vmm_mig_precopy_info(dr->d->dev, &initial,
						      &dirty) == 0) {
			left += n = initial + dirty;
		} else {
			left += n = dr->last_bytes;
		}
		mig_track_dev_remaining(run, i, n);
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

/*
 * Pre-copy has converged: before the last round, let the destination
 * catch up with what the stream carries so far. Otherwise what it has
 * still to apply (everything in the socket buffers, and what it is
 * behind beyond them) would be applied inside the downtime, and the
 * downtime would be that backlog plus the stop-copy. A "sync" point in
 * the stream, answered by SYNCED on the return path once the destination
 * has read up to it, tells when. The wait is bounded: a destination that
 * never answered one is older, and is not asked again.
 */
static int src_sync_destination(struct run *run)
{
	char v[24];
	const struct vfmig_stream_kv kv = { "sync", v };
	double until = mig_mono_ms() + SYNC_WAIT_MS;
	int r;

	snprintf(v, sizeof(v), "%llu", (unsigned long long)++run->sync_sent);
	r = vfmig_stream_write_info(run->w, &kv, 1);
	if (r == 0)
		r = vfmig_io_flush(vfmig_chan_io(run->chan));
	if (r < 0)
		return mig_fail(run, r, "pre-copy", "writing a sync point: %s",
				strerror(-r));
	while (run->sync_seen < run->sync_sent) {
		double left = until - mig_mono_ms();
		if (left <= 0) {
			run->sync_off = run->sync_seen == 0;
			return 0;
		}
		r = src_poll_return_path(run, left < 50 ? (int)left + 1 : 50);
		if (r < 0)
			return r;
		if (mig_cancelled(run))
			return mig_fail(run, -ECANCELED, "pre-copy",
					"cancelled by request");
	}
	return 0;
}

static int src_precopy(struct run *run)
{
	bool live = vfmig_chan_has_return_path(run->chan) &&
		    run->p.precopy != VFMIG_MIG_PRECOPY_NONE;
	int ack_limit_ms = run->p.timeout_ms > 0 ? run->p.timeout_ms
						 : vfw_scaled_ms(DEFAULT_TIMEOUT_MS);
	double ack_wait_since = 0;

	mig_set_status(run, VFMIG_MIG_ACTIVE);
	vfmig_ram_mark_all(run->vm->ram);
	run->t_precopy = mig_mono_ms();
	run->precopy_stream_bytes = src_stream_bytes(run);
	while (live) {
		double t = mig_mono_ms(), bytes = 0;
		int r = src_round(run, &bytes);
		if (r < 0)
			return r;
		run->rep->rounds++;
		atomic_store(&run->prog->rounds, run->rep->rounds);
		if (run->rep->rounds == 1)
			mig_test_hold(run, "pre-copy");
		atomic_store(&run->prog->dirty_pages,
			     vfmig_ram_dirty_pages(run->vm->ram));
		if (mig_cancelled(run))
			return mig_fail(run, -ECANCELED, "pre-copy",
					"cancelled by request");
		double now = mig_mono_ms(), ms = now - t;
		double bw = bytes / (ms > 0.001 ? ms : 0.001); /* bytes/ms */
		/* A round too small to time (socket buffers take it at
		 * memory speed, or it sent nothing) says little of the
		 * channel: judge by the pre-copy so far instead. */
		if (bytes < (double)SMALL_ROUND_BYTES)
			bw = (double)(src_stream_bytes(run) -
				      run->precopy_stream_bytes) /
			     (now - run->t_precopy > 0.001
				      ? now - run->t_precopy
				      : 0.001);
		/* What the devices wrote by DMA during the round is dirty
		 * RAM the switchover sends too: take their logs now, so
		 * that the prediction counts it (the pages go next round). */
		r = src_sync_dirty(run, "pre-copy");
		if (r < 0)
			return r;
		uint64_t left = src_remaining(run);
		/* Nothing left fits whatever the rate (a round that sent
		 * nothing measured none); a limit caps the rate. */
		double predicted = vfmig_conv_predict_ms(
			left, bw, mig_conv_max_bandwidth(run));
		bool fits = predicted <= (double)mig_conv_downtime_ms(run);
		mig_track_round_end(run, predicted, bw);
		bool force = mig_conv_after_round(run, predicted, fits);
		/* The guest was paused by its user: nothing more will
		 * converge, so switch as soon as the destination allows. */
		bool want = fits || force ||
			    atomic_load(&run->prog->user_stopped) ||
			    run->rep->rounds >= run->p.max_rounds;
		if (!fits)
			run->synced = false;
		if (want && src_acked(run)) {
			/* Converged: the destination catches up, then one
			 * more round takes what was dirtied meanwhile. */
			if (fits && !force && !run->synced && !run->sync_off &&
			    run->rep->rounds < run->p.max_rounds) {
				r = src_sync_destination(run);
				if (r < 0)
					return r;
				run->synced = true;
				continue;
			}
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
			ack_wait_since = mig_mono_ms();
		else if (mig_mono_ms() - ack_wait_since > ack_limit_ms)
			return mig_fail(
				run, -ETIMEDOUT, "pre-copy",
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
		return mig_fail(run, r, phase, "pausing the guest: %s",
				strerror(-r));
	run->paused = true;
	run->t_pause = mig_mono_ms();
	run->pause_realtime_ns = mig_real_ns();
	run->pause_stream_bytes = src_stream_bytes(run);
	mig_track_pause(run);
	return 0;
}

/* The run state travels as the STREAM_INFO key "run-state" just before
 * SWITCHOVER: the guest's state as the user left it, known only now. */
static int src_write_run_state(struct run *run)
{
	bool ran = !run->vm->ops->was_running ||
		   run->vm->ops->was_running(run->vm->vm);
	const struct vfmig_stream_kv kv[2] = {
		{ "run-state", ran ? "running" : "paused" },
		{ COMMIT_INFO_KEY, "1" }, /* src_commit answers RESUMED */
	};

	run->rep->source_running = ran;
	return vfmig_stream_write_info(
		run->w, kv, vfmig_chan_has_return_path(run->chan) ? 2 : 1);
}

/* Device i to STOP_COPY (mig_each_dev step). */
static int src_stop_copy_arc(struct run *run, size_t i, char *err,
			     size_t len)
{
	struct dev_run *dr = &run->devs[i];
	uint32_t final;
	int r;

	dr->touched = true;
	r = vfmig_vmm_mig_set_state(dr->d->dev, VFMIG_VMM_MIG_STOP_COPY,
				    VFMIG_VMM_MIG_STOP, &final);
	if (r < 0 && !mig_dev_lost_text(run, i, r, err, len))
		snprintf(err, len, "device %s refused STOP_COPY: %s (now %s)",
			 dr->d->id, vfmig_vmm_strerror(r),
			 vfmig_vmm_mig_state_name(final));
	return r;
}

static int src_switchover(struct run *run)
{
	struct vfmig_ram_stats st = { 0 };
	int r;

	mig_set_status(run, VFMIG_MIG_SWITCHOVER);
	mig_conv_switchover(run);
	if (mig_cancelled(run))
		return mig_fail(run, -ECANCELED, "switchover",
				"cancelled by request");
	r = src_pause(run, "switchover");
	if (r < 0)
		return r;
	mig_test_hold(run, "switchover");
	/* Every device at once: the arcs are round trips to separate
	 * processes (and the dma device waits for its engine's step). */
	r = mig_each_dev(run, src_stop_copy_arc, "switchover");
	if (r < 0)
		return r;
	/* Devices are stopped: this log is the last word on their DMA. A
	 * device that cannot log may have written anywhere. */
	r = src_sync_dirty(run, "switchover");
	if (r < 0)
		return r;
	for (size_t i = 0; i < run->vm->ndev; i++)
		if (!run->devs[i].caps.dirty_logging)
			vfmig_ram_mark_all(run->vm->ram);
	r = src_write_run_state(run);
	if (r == 0)
		r = vfmig_stream_write_switchover(run->w);
	if (r < 0)
		return mig_fail(run, r, "stop-copy",
				"writing the switchover: %s", strerror(-r));
	mig_test_hold(run, "stop-copy");
	/* The last RAM, in pieces: a piece that sends less than asked for
	 * took every dirty page there was (nothing dirties RAM now). */
	for (bool drained = false; !drained;) {
		if (mig_cancelled(run))
			return mig_fail(run, -ECANCELED, "stop-copy",
					"cancelled by request");
		r = mig_send_ram(run, SWITCHOVER_RAM_CHUNK, &st, &drained,
				 "stop-copy");
		if (r < 0)
			return r;
	}
	run->rep->ram_bytes += st.bytes;
	r = mig_mchan_src_end(run);
	if (r < 0)
		return r;
	for (size_t i = 0; i < run->vm->ndev; i++) {
		r = src_stop_copy_section(run, i);
		if (r < 0)
			return r;
	}
	if (mig_cancelled(run))
		return mig_fail(run, -ECANCELED, "stop-copy",
				"cancelled by request");
	for (size_t i = 0; i < run->vm->ndev; i++) {
		struct dev_run *dr = &run->devs[i];
		void *state = vfmig_type_state_new(dr->type);
		char err[256] = "";

		if (!state)
			return mig_fail(run, -ENOMEM, "stop-copy",
					"out of memory");
		r = dr->type->save(dr->d->dev, state, err, sizeof(err));
		if (r == 0)
			r = vfmig_stream_write_type_state(run->w, (uint16_t)i,
							  dr->type->desc,
							  state);
		free(state);
		if (r < 0)
			return mig_fail(run, r, "stop-copy",
					"device %s %s state: %s", dr->d->id,
					dr->type->name,
					err[0] ? err : strerror(-r));
	}
	if (run->vm->ops->save_cpus) {
		char err[256] = "";
		r = run->vm->ops->save_cpus(run->vm->vm, run->w, err,
					    sizeof(err));
		if (r < 0)
			return mig_fail(run, r, "stop-copy", "vCPU state: %s",
					err[0] ? err : strerror(-r));
	}
	r = vfmig_stream_writer_end(run->w);
	if (r < 0)
		return mig_fail(run, r, "stop-copy", "finishing the stream: %s",
				strerror(-r));
	return 0;
}

/*
 * The destination said RESUMED; its guest starts once it reads COMMIT.
 * Until COMMIT is wholly in the socket, the destination cannot have it
 * and rolls back without it: a failed send is an ordinary failure and
 * this side takes the VM back. From the moment it is sent, this side
 * never runs the VM again (run->commit), whatever follows.
 */
static int src_commit(struct run *run)
{
	struct vfmig_rp_msg m = { .type = VFMIG_RP_COMMIT };
	int r;

	mig_test_hold(run, "commit");
	r = vfmig_chan_rp_send(run->chan, &m);
	if (r < 0)
		return mig_fail(run, r, "completion", "sending COMMIT: %s",
				strerror(-r));
	run->commit = true;
	return 0;
}

/* The downtime, from the pause to the destination's timestamp (its
 * realtime clock) in RESUMED or STARTED. Same host: the clocks agree.
 * Elsewhere, bound it by what this side saw. */
static void set_downtime(struct run *run, uint64_t timestamp_ns)
{
	double ms = (double)(int64_t)(timestamp_ns - run->pause_realtime_ns) /
		    1e6;
	double seen = mig_mono_ms() - run->t_pause;

	run->rep->downtime_ms = (ms > 0 && ms <= seen) ? ms : seen;
}

/*
 * COMMIT went out: the destination starts its guest and says STARTED
 * (with the time it did: the downtime ends there), or fails and says
 * FAILED (it did not start it and never will: an ordinary rollback here).
 * A close or no word within the timeout: the destination may or may not
 * run the VM, and this side must not (it may have read COMMIT). The VM
 * stays paused here, intact, for an operator to decide; the error says so.
 */
static int src_wait_started(struct run *run)
{
	struct vfmig_rp_msg m;
	char err[256] = "";

	for (;;) {
		int r = vfmig_chan_rp_recv(run->chan, &m, run->p.timeout_ms,
					   err, sizeof(err));
		if (r == 0 && m.type == VFMIG_RP_STARTED) {
			set_downtime(run, m.timestamp_ns);
			return 0;
		}
		if (r == 0 && m.type != VFMIG_RP_FAILED)
			continue; /* late acks */
		/* FAILED: the destination rolled back (it says so only before
		 * its guest starts, and then never starts it): the VM is ours
		 * again. */
		if (r == 0) {
			run->commit = false;
			return mig_fail(run, -EIO, "completion",
					"destination failed after COMMIT: %s",
					m.text);
		}
		return mig_fail(run, r, "completion",
				"COMMIT sent, but the destination did not "
				"confirm its start: %s; the VM stays paused "
				"here, as it may run there: `cont` it here "
				"only if it does not",
				err[0] ? err : strerror(-r));
	}
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
			return mig_fail(run, r, "completion", "%s", err);
		return 0;
	}
	for (;;) {
		int r = vfmig_chan_rp_recv(run->chan, &m, run->p.timeout_ms,
					   err, sizeof(err));
		if (r < 0)
			return mig_fail(
				run, r, "completion",
				"no confirmation from the destination: %s",
				err[0] ? err : strerror(-r));
		if (m.type == VFMIG_RP_WAIT_COMMIT)
			run->dst_commit = true;
		if (m.type == VFMIG_RP_SWITCHOVER_ACK ||
		    m.type == VFMIG_RP_WAIT_COMMIT)
			continue;
		if (m.type == VFMIG_RP_FAILED)
			return mig_fail(run, -EIO, "completion",
					"destination failed: %s", m.text);
		if (m.type == VFMIG_RP_RESUMED) {
			mig_copy_text(run->rep->verify_msg,
				      sizeof(run->rep->verify_msg), m.text);
			run->rep->verified = !strcmp(m.text, "ok");
			run->verdict_pending = !strcmp(m.text, VERDICT_PENDING);
			set_downtime(run, m.timestamp_ns);
			/* An older destination ran its guest already. */
			if (!run->dst_commit)
				return 0;
			r = src_commit(run);
			return r < 0 ? r : src_wait_started(run);
		}
	}
}

/*
 * The destination verifies after its guest resumed: the migration is
 * complete whatever the verdict; wait for it (the channel timeout) so that
 * the report carries it. No verdict is a failed verification.
 */
static void src_wait_verdict(struct run *run)
{
	struct vfmig_rp_msg m;
	char err[256] = "";
	int r;

	for (;;) {
		r = vfmig_chan_rp_recv(run->chan, &m, run->p.timeout_ms, err,
				       sizeof(err));
		/* Late answers to pre-copy's questions may come first. */
		if (r < 0 || (m.type != VFMIG_RP_SWITCHOVER_ACK &&
			      m.type != VFMIG_RP_SYNCED &&
			      m.type != VFMIG_RP_WAIT_COMMIT))
			break;
	}
	run->rep->verified = r == 0 && m.type == VFMIG_RP_VERIFIED &&
			     !strcmp(m.text, "ok");
	if (r == 0 && m.type == VFMIG_RP_VERIFIED)
		mig_copy_text(run->rep->verify_msg,
			      sizeof(run->rep->verify_msg), m.text);
	else
		snprintf(run->rep->verify_msg, sizeof(run->rep->verify_msg),
			 "no verdict from the destination: %s",
			 r < 0 ? (err[0] ? err : strerror(-r))
			       : vfmig_rp_type_name(m.type));
}

/* Success: the VM lives on the destination now. */
static void src_finish(struct run *run)
{
	src_cpu_dirty_track(run, false);
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
	/* After COMMIT the destination may run the VM: it stays stopped
	 * here, as if the user had paused it. */
	bool user_stopped = atomic_load(&run->prog->user_stopped) ||
			    run->commit;

	src_cpu_dirty_track(run, false);
	for (size_t i = 0; i < run->vm->ndev; i++) {
		struct dev_run *dr = &run->devs[i];
		uint32_t back = dr->initial;

		if (dr->logging)
			vfmig_vmm_dma_log_stop(dr->d->dev);
		if (user_stopped && back == VFMIG_VMM_MIG_RUNNING)
			back = VFMIG_VMM_MIG_STOP;
		/* initial is 0 (ERROR) when the run never read it. */
		if (dr->initial && (dr->touched || back != dr->initial))
			mig_rollback_dev(run, i, back, false);
	}
	if (run->commit) {
		if (run->paused && run->vm->ops->settle_paused)
			run->vm->ops->settle_paused(run->vm->vm);
		return;
	}
	if (run->paused && run->vm->ops->resume(run->vm->vm) == 0)
		run->paused = false;
}

/* What the downtime of this run could have been at best: the bytes sent
 * after the pause at the rate pre-copy achieved. */
static void src_downtime_floor(struct run *run)
{
	struct vfmig_mig_report *rep = run->rep;
	double ms = run->t_pause - run->t_precopy;
	uint64_t pre = run->pause_stream_bytes - run->precopy_stream_bytes;

	rep->downtime_bytes = rep->stream_bytes - run->pause_stream_bytes;
	if (!run->t_precopy || ms <= 0 || !pre)
		return;
	rep->bandwidth_mbps = (double)pre * 8 / 1e3 / ms;
	rep->downtime_min_ms =
		(double)rep->downtime_bytes * 8 / 1e3 / rep->bandwidth_mbps;
}

int vfmig_migrate_out(const struct vfmig_mig_vm *vm,
		      const struct vfmig_typereg *reg, const char *uri,
		      const struct vfmig_mig_params *p,
		      struct vfmig_mig_progress *progress,
		      struct vfmig_mig_report *rep)
{
	struct run run;
	int r;

	r = mig_run_init(&run, vm, reg, p, progress, rep);
	mig_set_status(&run, VFMIG_MIG_SETUP);
	if (r < 0)
		r = mig_fail(&run, r, "setup", "out of memory");
	else
		mig_track_begin(&run, true);
	if (r == 0)
		r = src_check_devices(&run);
	if (r == 0)
		r = src_open_stream(&run, uri);
	if (r == 0)
		r = mig_conv_src_setup(&run);
	if (r == 0)
		mig_test_hold(&run, "setup");
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
		/* Complete: waiting for a verdict is not part of it. */
		run.t_end = mig_mono_ms();
		if (run.verdict_pending)
			src_wait_verdict(&run);
		mig_set_status(&run, VFMIG_MIG_COMPLETED);
		rep->ok = true;
		if (!vfmig_chan_has_return_path(run.chan))
			rep->downtime_ms = mig_mono_ms() - run.t_pause;
	} else {
		if (r != -ECANCELED)
			src_blame_destination(&run);
		src_rollback(&run);
		mig_set_status(&run, r == -ECANCELED ? VFMIG_MIG_CANCELLED
						 : VFMIG_MIG_FAILED);
	}
	rep->device_bytes = run.dev_bytes;
	rep->stream_bytes = src_stream_bytes(&run);
	if (run.paused && run.w)
		src_downtime_floor(&run);
	mig_conv_finish(&run, r);
	mig_track_end(&run, run.t_end, rep->ok ? rep->downtime_ms : -1);
	mig_run_fini(&run);
	vfmig_pace_destroy(run.pace);
	if (rep->stream_bytes > rep->ram_bytes + rep->device_bytes)
		rep->overhead_bytes =
			rep->stream_bytes - rep->ram_bytes - rep->device_bytes;
	if (rep->total_ms > 0)
		rep->throughput_mbps =
			(double)rep->stream_bytes * 8 / 1e6 /
			(rep->total_ms / 1e3);
	return r;
}
