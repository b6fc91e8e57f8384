/* SPDX-License-Identifier: MIT */
/*
 * The destination flow of a migration (vfmig_migrate_in): open the
 * incoming stream, check its device list against this VM, load RAM and
 * device sections in order, acknowledge switchover, resume and tell the
 * source; on any failure the guest here never runs.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/migrate_run.h"
#include "engine/progress.h"

/* The device list must match this VM before any device is touched. */
static int dst_check_list(struct run *run,
			  const struct vfmig_stream_record *rec)
{
	uint16_t n = rec->d.u.device_list.count;

	if (n != run->vm->ndev)
		return mig_fail(run, -EINVAL, "incoming",
				"the stream carries %u "
				"devices, this VM has %zu",
				n, run->vm->ndev);
	for (size_t i = 0; i < n; i++) {
		const struct vfmig_stream_device_view *v =
			&rec->d.u.device_list.dev[i];
		struct dev_run *dr = &run->devs[i];

		if (!vfmig_stream_str_eq(v->id, dr->d->id) ||
		    !vfmig_stream_str_eq(v->type, dr->d->type))
			return mig_fail(
				run, -EINVAL, "incoming",
				"stream device "
				"%zu is \"%.*s\" of type \"%.*s\", this VM "
				"has \"%s\" of type \"%s\"",
				i, v->id.len, v->id.p, v->type.len, v->type.p,
				dr->d->id, dr->d->type);
		if (!dr->type)
			return mig_fail(
				run, -EOPNOTSUPP, "incoming",
				"device %s: type \"%s\" is not registered",
				dr->d->id, dr->d->type);
		if (v->type_version > dr->type->desc->version ||
		    v->type_version < dr->type->desc->min_version)
			return mig_fail(
				run, -EOPNOTSUPP, "incoming",
				"device %s: %s state version %u, this VMM "
				"reads %u..%u",
				dr->d->id, dr->d->type, v->type_version,
				dr->type->desc->min_version,
				dr->type->desc->version);
		int r = vfmig_vmm_mig_discover(dr->d->dev, &dr->caps);
		if (r < 0 && mig_dev_lost(run, i, r, "incoming") < 0)
			return r;
		if (r < 0 || !dr->caps.migratable)
			return mig_fail(run, r < 0 ? r : -EOPNOTSUPP,
					"incoming",
					"device %s cannot take a migration: %s",
					dr->d->id, dr->caps.blocker);
		/* The device data is framed per interface: a v2 stream
		 * cannot be loaded through the region interface, nor the
		 * reverse. */
		const char *mine = mig_iface_name(dr->d->dev);
		if (!vfmig_stream_str_eq(v->interface, mine))
			return mig_fail(run, -EOPNOTSUPP, "incoming",
					"device %s: the stream's interface is "
					"\"%.*s\", this device speaks %s",
					dr->d->id, v->interface.len,
					v->interface.p, mine);
	}
	return 0;
}

static int dst_resuming(struct run *run)
{
	/* Sealed sessions when the stream's records use XXH3, the
	 * checksum the devices check. */
	run->seal = vfmig_stream_reader_csum(run->r) == VFMIG_STREAM_CSUM_XXH3;
	for (size_t i = 0; i < run->vm->ndev; i++) {
		struct dev_run *dr = &run->devs[i];
		uint32_t final;
		int r;

		dr->touched = true;
		vfmig_vmm_dev_set_seal(dr->d->dev, run->seal ? (int)i : -1);
		r = vfmig_vmm_mig_set_state(dr->d->dev, VFMIG_VMM_MIG_RESUMING,
					    VFMIG_VMM_MIG_RUNNING, &final);
		if (r < 0 && mig_dev_lost(run, i, r, "incoming") < 0)
			return r;
		if (r < 0)
			return mig_fail(run, r, "incoming",
					"device %s refused RESUMING: %s",
					dr->d->id, vfmig_vmm_strerror(r));
	}
	return 0;
}

/* The source asks whether this side has caught up: once every device has
 * loaded the data it was given (a device on a data channel may still be
 * reading it), everything before the "sync" key is applied; say so with
 * its value. */
static int dst_synced(struct run *run, const struct vfmig_stream_kv_view *kv)
{
	struct vfmig_rp_msg m = { .type = VFMIG_RP_SYNCED };
	int r;

	if (!vfmig_chan_has_return_path(run->chan))
		return 0;
	if (kv->value.len > 20)
		return mig_fail(run, -EBADMSG, "load",
				"sync value of %u bytes", kv->value.len);
	for (size_t i = 0; i < run->vm->ndev; i++) {
		r = vfmig_vmm_dev_mig_data_sync(run->devs[i].d->dev);
		if (r < 0 && mig_dev_lost(run, i, r, "load") < 0)
			return r;
		if (r < 0)
			return mig_fail(run, r, "load",
					"device %s loading its data: %s",
					run->devs[i].d->id,
					vfmig_vmm_strerror(r));
	}
	memcpy(m.text, kv->value.p, kv->value.len);
	r = vfmig_chan_rp_send(run->chan, &m);
	if (r < 0)
		return mig_fail(run, r, "load", "return path: %s",
				strerror(-r));
	return 0;
}

static int dst_record(struct run *run, const struct vfmig_stream_record *rec)
{
	char err[256] = "";
	int r;

	switch (rec->type) {
	case VFMIG_REC_RAM_PAGES:
	case VFMIG_REC_RAM_PAGES_LIVE:
		r = vfmig_ram_load(run->vm->ram, rec, err, sizeof(err));
		if (r < 0)
			return mig_fail(run, r, "load", "%s", err);
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
		/* A forwarded record is with the device already. */
		r = rec->d.u.device_data.forwarded
			    ? 0
			    : vfmig_vmm_dev_mig_data_write(
				      run->devs[i].d->dev,
				      rec->d.u.device_data.data,
				      rec->d.u.device_data.len);
		if (r < 0 && mig_dev_lost(run, i, r, "load") < 0)
			return r;
		if (r < 0)
			return mig_fail(run, r, "load", "device %s refused its "
					"data: %s", run->devs[i].d->id,
					vfmig_vmm_strerror(r));
		run->dev_bytes += rec->d.u.device_data.len;
		atomic_store(&run->prog->device_bytes, run->dev_bytes);
		mig_track_dev(run, i, rec->d.u.device_data.len);
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
				return mig_fail(run, r, "load",
						"return path: %s",
						strerror(-r));
		}
		return 0;
	}
	case VFMIG_REC_TYPE_STATE: {
		struct dev_run *dr = &run->devs[rec->d.u.type_state.dev];
		free(dr->type_state);
		dr->type_state = malloc(rec->d.u.type_state.len);
		if (!dr->type_state)
			return mig_fail(run, -ENOMEM, "load", "out of memory");
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
				return mig_fail(run, r, "load", "%s", err);
			if (vfmig_stream_str_eq(kv->key, COMMIT_INFO_KEY)) {
				run->commit = vfmig_stream_str_eq(kv->value, "1") &&
					      vfmig_chan_has_return_path(run->chan);
				if (run->commit) {
					struct vfmig_rp_msg m = {
						.type = VFMIG_RP_WAIT_COMMIT
					};
					r = vfmig_chan_rp_send(run->chan, &m);
					if (r < 0)
						return mig_fail(run, r, "load",
								"return path: %s",
								strerror(-r));
				}
				continue;
			}
			if (vfmig_stream_str_eq(kv->key, "sync")) {
				r = dst_synced(run, kv);
				if (r < 0)
					return r;
				continue;
			}
			if (!vfmig_stream_str_eq(kv->key, "run-state"))
				continue;
			if (vfmig_stream_str_eq(kv->value, "running"))
				run->rep->source_running = true;
			else if (vfmig_stream_str_eq(kv->value, "paused"))
				run->rep->source_running = false;
			else
				return mig_fail(
					run, -EBADMSG, "load",
					"run-state "
					"\"%.*s\" is neither running nor "
					"paused",
					kv->value.len, kv->value.p);
		}
		return 0;
	case VFMIG_REC_VCPU_STATE:
		if (!run->vm->ops->load_cpu)
			return mig_fail(run, -EOPNOTSUPP, "load",
					"the stream carries vCPU %u's state; "
					"this VM has no vCPU to take it",
					rec->d.u.vcpu_state.vcpu);
		r = run->vm->ops->load_cpu(run->vm->vm, rec->d.u.vcpu_state.vcpu,
					   rec->d.u.vcpu_state.state,
					   rec->d.u.vcpu_state.len, err,
					   sizeof(err));
		if (r < 0)
			return mig_fail(run, r, "load", "vCPU %u: %s",
					rec->d.u.vcpu_state.vcpu,
					err[0] ? err : strerror(-r));
		return 0;
	case VFMIG_REC_SWITCHOVER:
		mig_track_pause(run);
		mig_test_hold(run, "load");
		return 0;
	default:
		return 0; /* END */
	}
}

/* Whether the destination starts the guest: only if the source's ran. */
static bool dst_runs(const struct run *run)
{
	return run->rep->source_running && !run->p.dst_paused;
}

/*
 * Device i, still in RESUMING (where a device takes config writes and
 * SET_IRQS, as QEMU's order needs): type state, then interrupts. Then
 * RESUMING -> STOP, where the device validates what it loaded, and
 * RUNNING. A mig_each_dev step: every device does this at once.
 */
static int dst_start_dev(struct run *run, size_t i, char *err, size_t len)
{
	struct dev_run *dr = &run->devs[i];
	char why[256] = "";
	uint32_t final;
	int r;

	if (!dr->type_state) {
		snprintf(err, len, "no %s state for device %s in the stream",
			 dr->d->type, dr->d->id);
		return -EBADMSG;
	}
	void *state = vfmig_type_state_new(dr->type);
	if (!state) {
		snprintf(err, len, "out of memory");
		return -ENOMEM;
	}
	r = vfmig_type_decode_load(dr->type, dr->d->dev, dr->type_state,
				   dr->type_state_len, state, why, sizeof(why));
	free(state);
	if (r < 0) {
		snprintf(err, len, "device %s %s state: %s", dr->d->id,
			 dr->d->type, why[0] ? why : strerror(-r));
		return r;
	}
	r = run->vm->ops->rewire_irqs(run->vm->vm, i);
	if (r < 0) {
		snprintf(err, len, "device %s interrupts: %s", dr->d->id,
			 strerror(-r));
		return r;
	}
	r = vfmig_vmm_mig_set_state(dr->d->dev, VFMIG_VMM_MIG_STOP,
				    VFMIG_VMM_MIG_ERROR, &final);
	if (r < 0) {
		snprintf(err, len, "device %s rejected the loaded state: %s",
			 dr->d->id, vfmig_vmm_strerror(r));
		return r;
	}
	if (dst_runs(run)) {
		r = vfmig_vmm_mig_set_state(dr->d->dev, VFMIG_VMM_MIG_RUNNING,
					    VFMIG_VMM_MIG_ERROR, &final);
		if (r < 0) {
			snprintf(err, len, "device %s refused RUNNING: %s",
				 dr->d->id, vfmig_vmm_strerror(r));
			return r;
		}
	} /* else a paused VM's devices wait in STOP */
	/* It holds the migrated state: whatever an earlier failed attempt
	 * reported about it is over. */
	if (run->vm->ops->device_fault)
		run->vm->ops->device_fault(run->vm->vm, i, NULL);
	return 0;
}

/* Every device restored and started, all at once: each step is a series
 * of round trips to the device's own process. The guest runs only after
 * the source was told. */
static int dst_start(struct run *run)
{
	return mig_each_dev(run, dst_start_dev, "resume");
}

/*
 * RESUMED is the point of no return: the source stops for good once it
 * hears it. A device that died since its start would fail the guest's
 * resume here after that, and the VM would run nowhere, so ask each one
 * for its state (a round trip: a connection whose peer died only now is
 * found, not just one already known to be broken) while the source can
 * still take the VM back.
 */
static int dst_check_devices(struct run *run)
{
	for (size_t i = 0; i < run->vm->ndev; i++) {
		uint32_t state;
		int r = vfmig_vmm_mig_get_state(run->devs[i].d->dev, &state);

		if (r < 0 && mig_dev_lost(run, i, r, "resume") < 0)
			return r;
		if (r < 0)
			return mig_fail(run, r, "resume", "device %s state: %s",
					run->devs[i].d->id,
					vfmig_vmm_strerror(r));
	}
	return 0;
}

/*
 * RESUMED is out; the guest starts only once the source answers COMMIT:
 * then it never runs the VM again. If COMMIT does not come (the source
 * never read RESUMED, timed out and rolled back; the connection broke),
 * the source may run the VM itself, so this side rolls back. A source
 * that did not announce COMMIT (older) is not waited for.
 */
static int dst_wait_commit(struct run *run)
{
	struct vfmig_rp_msg *m;
	char err[256] = "";
	int r;

	if (!run->commit)
		return 0;
	mig_test_hold(run, "commit");
	m = malloc(sizeof(*m));
	if (!m)
		return mig_fail(run, -ENOMEM, "completion", "out of memory");
	r = vfmig_chan_rp_recv(run->chan, m, run->p.timeout_ms, err,
			       sizeof(err));
	free(m);
	if (r < 0)
		return mig_fail(run, r, "completion",
				"no COMMIT from the source, the guest does "
				"not start here: %s",
				err[0] ? err : strerror(-r));
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

/* The reader's forwarding function: a DEVICE_DATA record of a device in a
 * sealed loading session goes to it unread (the device checks it). */
static int dst_forward(void *priv, uint16_t dev, uint32_t len, int fd)
{
	struct run *run = priv;
	vfmig_vmm_dev *d;
	int r;

	if (!run->seal || dev >= run->vm->ndev || len > VFMIG_VMM_FORWARD_MAX)
		return 0; /* read here and written as DATA frames */
	d = run->devs[dev].d->dev;
	if (!vfmig_vmm_dev_mig_data_sealed(d))
		return 0;
	/* Waits for the stream as long as its channel would. */
	r = vfmig_vmm_dev_mig_data_forward(d, fd, len, run->p.timeout_ms);
	if (r < 0) {
		run->fwd_err = r;
		run->fwd_dev = dev;
		return r;
	}
	return 1;
}

static int dst_load(struct run *run)
{
	struct vfmig_stream_record rec;
	bool have_list = false;
	int r;

	vfmig_stream_reader_set_forward(run->r, dst_forward, run);
	while ((r = vfmig_stream_next(run->r, &rec)) == 1) {
		if (mig_cancelled(run))
			return mig_fail(run, -ECANCELED, "load", "cancelled");
		r = mig_mchan_dst_record(run, &rec);
		if (r < 0)
			return r;
		if (rec.type == VFMIG_REC_DEVICE_LIST) {
			r = dst_check_list(run, &rec);
			if (r == 0)
				r = dst_resuming(run);
			if (r < 0)
				return r;
			have_list = true;
			mig_set_status(run, VFMIG_MIG_ACTIVE);
			continue;
		}
		if (!have_list && rec.type != VFMIG_REC_STREAM_INFO)
			return mig_fail(run, -EBADMSG, "incoming",
					"%s before the "
					"device list",
					vfmig_stream_type_name(rec.type));
		r = dst_record(run, &rec);
		if (r < 0)
			return r;
	}
	if (r < 0 && run->fwd_err) {
		size_t i = run->fwd_dev;
		if (mig_dev_lost(run, i, run->fwd_err, "load") < 0)
			return run->fwd_err;
		return mig_fail(run, run->fwd_err, "load",
				"device %s refused its data: %s",
				run->devs[i].d->id,
				vfmig_vmm_strerror(run->fwd_err));
	}
	if (r < 0)
		return mig_fail(run, r, "load", "%s",
				vfmig_stream_reader_error(run->r));
	if (!have_list)
		return mig_fail(run, -EBADMSG, "incoming", "no device list");
	if (run->vm->ops->cpus_loaded) {
		char err[256] = "";
		r = run->vm->ops->cpus_loaded(run->vm->vm, err, sizeof(err));
		if (r < 0)
			return mig_fail(run, r, "load", "%s",
					err[0] ? err : strerror(-r));
	}
	return mig_mchan_dst_finish(run);
}

/* Failure: forget whatever was loaded; the devices come back empty. A
 * device that refuses to leave RESUMING with what it was given (a stream
 * cut short) is reset, which is that same outcome, not a fault. */
static void dst_rollback(struct run *run)
{
	if (run->chan && vfmig_chan_has_return_path(run->chan))
		vfmig_chan_rp_failed(run->chan, run->rep->error);
	for (size_t i = 0; i < run->vm->ndev; i++)
		if (run->devs[i].touched)
			mig_rollback_dev(run, i, VFMIG_VMM_MIG_RUNNING, true);
}

/* Open the incoming channel: a file at once; a socket by listening and
 * accepting in short waits, so that a cancel is noticed. */
static int dst_open(struct run *run, const char *uri)
{
	struct vfmig_chan_uri u;
	struct vfmig_chan_listener *l = NULL;
	char err[256] = "";
	double start = mig_mono_ms();
	int r;

	r = vfmig_chan_parse_uri(uri, &u, err, sizeof(err));
	if (r == 0 && u.kind == VFMIG_CHAN_FILE)
		r = vfmig_chan_open_incoming(uri, run->p.timeout_ms, &run->chan,
					     err, sizeof(err));
	else if (r == 0)
		r = vfmig_chan_listen_mode(uri, run->p.socket_mode, &l, err,
					   sizeof(err));
	while (r == 0 && l) {
		r = vfmig_chan_accept(l, 200, &run->chan, err, sizeof(err));
		if (r != -ETIMEDOUT)
			break;
		if (mig_cancelled(run)) {
			r = -ECANCELED;
			snprintf(err, sizeof(err), "cancelled while waiting "
				 "for the source");
		} else if (run->p.timeout_ms >= 0 &&
			   mig_mono_ms() - start > run->p.timeout_ms) {
			snprintf(err, sizeof(err), "no source connected "
				 "within %d ms", run->p.timeout_ms);
		} else {
			r = 0;
		}
	}
	if (r < 0) {
		vfmig_chan_listener_close(l);
		return mig_fail(run, r, "incoming", "channel %s: %s", uri,
				err[0] ? err : strerror(-r));
	}
	run->listener = l; /* RAM channels may follow (migrate_mchan.c) */
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

	r = mig_run_init(&run, vm, reg, p, progress, rep);
	mig_set_status(&run, VFMIG_MIG_SETUP);
	/* A stream without "run-state" (older sources) ran its guest. */
	rep->source_running = true;
	if (r < 0)
		r = mig_fail(&run, r, "incoming", "out of memory");
	if (r == 0 && vm->ops->cpus_forget)
		vm->ops->cpus_forget(vm->vm);
	if (r == 0)
		r = dst_open(&run, uri);
	rep->channel_opened = run.chan != NULL;
	if (r == 0) /* the run's times count from the source's arrival */
		mig_track_begin(&run, false);
	if (r == 0) {
		r = vfmig_stream_reader_open(&run.r, vfmig_chan_io(run.chan),
					     err, sizeof(err));
		if (r < 0)
			r = mig_fail(&run, r, "incoming", "%s", err);
		else if (vm->ram) /* its guest runs only once all is read */
			vfmig_stream_reader_set_ram_place(run.r, vfmig_ram_place,
							  vm->ram);
	}
	if (r == 0)
		r = dst_load(&run);
	if (r == 0)
		r = dst_start(&run);
	if (r == 0)
		mig_test_hold(&run, "resume");
	if (r == 0)
		r = dst_check_devices(&run);
	/* Tell the source before the guest runs here: if it cannot hear it,
	 * it resumes the VM itself and this side must not run it too; the
	 * guest starts only after the source's COMMIT (dst_wait_commit). */
	if (r == 0 && !run.p.dst_verify_after)
		dst_verify(&run);
	if (r == 0 && vfmig_chan_has_return_path(run.chan)) {
		struct vfmig_rp_msg m = { .type = VFMIG_RP_RESUMED,
					  .timestamp_ns = mig_real_ns() };
		snprintf(m.text, sizeof(m.text), "%s",
			 run.p.dst_verify_after ? VERDICT_PENDING
						: rep->verify_msg);
		r = vfmig_chan_rp_send(run.chan, &m);
		if (r < 0)
			r = mig_fail(&run, r, "completion",
				     "sending RESUMED: %s", strerror(-r));
		if (r == 0)
			r = dst_wait_commit(&run);
	}
	if (r == 0 && dst_runs(&run)) {
		r = vm->ops->resume(vm->vm);
		if (r < 0)
			r = mig_fail(&run, r, "resume",
				     "resuming the guest: %s", strerror(-r));
	} else if (r == 0 && vm->ops->settle_paused) {
		r = vm->ops->settle_paused(vm->vm);
		if (r < 0)
			r = mig_fail(&run, r, "resume",
				     "leaving the VM paused: "
				     "%s",
				     strerror(-r));
	}
	/* Tell the source when: its downtime ends here. If it does not hear
	 * it, it stays paused and says so: nothing to undo here. */
	if (r == 0 && run.commit) {
		struct vfmig_rp_msg m = { .type = VFMIG_RP_STARTED,
					  .timestamp_ns = mig_real_ns() };
		vfmig_chan_rp_send(run.chan, &m);
	}
	/* The guest runs (or waits paused) here now; the check pauses its
	 * driver for as long as it takes, outside the downtime. The
	 * migration is complete whatever it finds. */
	if (r == 0 && run.p.dst_verify_after) {
		dst_verify(&run);
		if (vfmig_chan_has_return_path(run.chan)) {
			struct vfmig_rp_msg m = { .type = VFMIG_RP_VERIFIED };
			snprintf(m.text, sizeof(m.text), "%s", rep->verify_msg);
			vfmig_chan_rp_send(run.chan, &m);
		}
	}
	if (r == 0) {
		mig_set_status(&run, VFMIG_MIG_COMPLETED);
		rep->ok = true;
	} else {
		mig_mchan_dst_blame(&run);
		dst_rollback(&run);
		mig_set_status(&run, r == -ECANCELED ? VFMIG_MIG_CANCELLED
						 : VFMIG_MIG_FAILED);
	}
	rep->device_bytes = run.dev_bytes;
	rep->stream_bytes = (run.r ? vfmig_stream_reader_offset(run.r) : 0) +
			    mig_mchan_bytes(&run);
	if (rep->channel_opened)
		mig_track_end(&run, 0, -1);
	mig_run_fini(&run);
	return r;
}
