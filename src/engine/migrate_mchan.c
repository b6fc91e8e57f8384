/* SPDX-License-Identifier: MIT */
/*
 * The migration flows' side of RAM channels (multichan.h): what the source
 * and destination flows call, so that they stay as they are for one
 * stream and need one call where a group changes something.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "engine/migrate_run.h"

int mig_mchan_src_setup(struct run *run, const char *uri)
{
	char err[256];
	int r = vfmig_mchan_check(run->p.channels, uri, err, sizeof(err));

	if (r < 0)
		return mig_fail(run, r, "setup", "%s", err);
	run->rep->channels = run->p.channels > 1 ? run->p.channels : 1;
	if (run->p.channels <= 1)
		return 0;
	r = vfmig_mchan_src_new(&run->mc, run->p.channels);
	if (r < 0)
		return mig_fail(run, r, "setup", "RAM channels: %s",
				strerror(-r));
	return 0;
}

size_t mig_mchan_src_info(struct run *run, struct vfmig_stream_kv *kv)
{
	return run->mc ? vfmig_mchan_main_info(run->mc, kv) : 0;
}

int mig_mchan_src_connect(struct run *run, const char *uri)
{
	char err[400] = "";
	int r;

	if (!run->mc)
		return 0;
	/* The destination learns of the channels from the main stream:
	 * let it read that before they knock. */
	r = vfmig_io_flush(vfmig_chan_io(run->chan));
	if (r < 0)
		return mig_fail(run, r, "setup", "channel %s: %s", uri,
				strerror(-r));
	r = vfmig_mchan_src_connect(
		run->mc, uri, run->p.connect_timeout_ms, run->p.timeout_ms,
		run->p.stream_csum_set ? (enum vfmig_stream_csum)run->p.stream_csum
				       : VFMIG_STREAM_CSUM_DEFAULT,
		err, sizeof(err));
	if (r < 0)
		return mig_fail(run, r, "setup", "%s", err);
	return 0;
}

int mig_send_ram(struct run *run, uint64_t budget, struct vfmig_ram_stats *st,
		 bool *drained, const char *phase)
{
	uint64_t before = st->bytes;
	char err[400] = "";
	int r;

	if (!run->mc) {
		r = vfmig_ram_send(run->vm->ram, run->w, budget, st);
		if (r < 0)
			return mig_fail(run, r, phase, "sending RAM: %s",
					strerror(-r));
		atomic_fetch_add(&run->prog->ram_bytes, st->bytes - before);
		*drained = !budget || st->bytes - before < budget;
		return 0;
	}
	r = vfmig_mchan_send_ram(run->mc, run->vm->ram, budget,
				 &run->prog->ram_bytes, st, drained, err,
				 sizeof(err));
	if (r < 0)
		return mig_fail(run, r, phase, "sending RAM: %s", err);
	return 0;
}

int mig_mchan_src_end(struct run *run)
{
	char err[400] = "";
	int r;

	if (!run->mc)
		return 0;
	r = vfmig_mchan_src_end(run->mc, err, sizeof(err));
	if (r < 0)
		return mig_fail(run, r, "stop-copy", "%s", err);
	return 0;
}

/* The first record of the main stream: channels announced or not. */
static int dst_decide(struct run *run, const struct vfmig_stream_record *rec)
{
	char id[VFMIG_MCHAN_ID_LEN + 1], err[400] = "";
	unsigned n = 0;
	int r;

	run->mc_decided = true;
	r = vfmig_mchan_parse_info(rec, &n, id, sizeof(id), err, sizeof(err));
	if (r < 0)
		return mig_fail(run, r, "incoming", "%s", err);
	run->rep->channels = r == 1 ? n : 1;
	if (r == 1) {
		const struct vfmig_mchan_dst_cfg cfg = {
			.listener = run->listener,
			.main = run->chan,
			.ram = run->vm->ram,
			.n = n,
			.id = id,
			.timeout_ms = run->p.timeout_ms,
			.cancel = &run->prog->cancel,
			.progress = &run->prog->ram_bytes,
			.shared = &run->rx_shared,
		};
		if (!run->listener)
			return mig_fail(run, -EPROTO, "incoming",
					"the stream announces %u RAM channels; "
					"a file is one stream", n);
		r = vfmig_mchan_dst_accept(&run->mc, &cfg, err, sizeof(err));
		if (r < 0)
			return mig_fail(run, r, "incoming", "%s", err);
		return 0; /* the listener stays: extra connections fail it */
	}
	/* One stream, as before: nobody else may connect. */
	vfmig_chan_listener_close(run->listener);
	run->listener = NULL;
	return 0;
}

int mig_mchan_dst_record(struct run *run,
			 const struct vfmig_stream_record *rec)
{
	char err[400];

	if (!run->mc_decided) {
		int r = dst_decide(run, rec);
		if (r < 0)
			return r;
	}
	if (!run->mc)
		return 0;
	if (vfmig_mchan_dst_failed(run->mc, err, sizeof(err)))
		return mig_fail(run, -EIO, "load", "%s", err);
	if (vfmig_stream_is_ram_pages(rec->type))
		return mig_fail(run, -EPROTO, "load",
				"RAM pages at offset %llu of the main stream, "
				"which announced RAM channels",
				(unsigned long long)rec->offset);
	return 0;
}

int mig_mchan_dst_finish(struct run *run)
{
	char err[400] = "";
	int r;

	if (!run->mc_decided) {
		vfmig_chan_listener_close(run->listener);
		run->listener = NULL;
	}
	if (!run->mc)
		return 0;
	r = vfmig_mchan_dst_wait(run->mc, run->listener, &run->rep->ram_bytes,
				 err, sizeof(err));
	vfmig_chan_listener_close(run->listener);
	run->listener = NULL;
	if (r < 0)
		return mig_fail(run, r, "load", "%s", err);
	return 0;
}

void mig_mchan_dst_blame(struct run *run)
{
	char err[400];

	if (vfmig_mchan_dst_failed(run->mc, err, sizeof(err)) &&
	    !strstr(run->rep->error, err))
		snprintf(run->rep->error, sizeof(run->rep->error), "load: %s",
			 err);
}

uint64_t mig_mchan_bytes(const struct run *run)
{
	return vfmig_mchan_bytes(run->mc);
}
