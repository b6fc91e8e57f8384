/* SPDX-License-Identifier: MIT */
/*
 * The v2 device-state interface behind the migration driver (vmm_mig.h):
 * one struct vmm_mig_backend whose operations speak DEVICE_FEATURE and
 * MIG_DATA_READ/WRITE. MIG_DEVICE_STATE GET/SET with QEMU's recovery rule
 * (vfio_migration_set_state: on failure SET the recover state, if that
 * fails reset and re-read the state), the save pump over MIG_DATA_READ,
 * the load over MIG_DATA_WRITE, DMA dirty logging (the device logs the
 * pages it writes through its mapped windows; a report is OR-ed into the
 * caller's bitmap, every echoed field and every size in a reply is checked
 * against what we asked: the bitmap size comes from our request, never
 * from the device), and the size estimates of the vfmig extension.
 * Arguments were checked by the public functions in mig.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "protocol/migfsm.h"

/* data_fd is unused in vfio-user; we send -1 as lvu's client does. */
#define NO_DATA_FD 0xffffffffu

static_assert(sizeof(struct vfmig_vmm_dma_range) ==
		      sizeof(struct vfw_dma_logging_range),
	      "range layout");

/* ---- state: MIG_DEVICE_STATE ---- */

static int get_state(vfmig_vmm_dev *dev, uint32_t *state)
{
	struct vfw_mig_device_state st;
	int r = vmm_feature_exact(dev,
				  VFW_FEATURE_GET | VFW_FEATURE_MIG_DEVICE_STATE,
				  NULL, 0, &st, sizeof(st));

	if (r < 0)
		return r;
	if (st.device_state >= VFW_MIG_STATE_NUM) {
		vfw_log(&dev->log, VFW_LOG_ERR, "device reports state %u",
			st.device_state);
		return vmm_proto_error(dev, NULL, "MIG_DEVICE_STATE out of range");
	}
	*state = st.device_state;
	return 0;
}

static int set_state(vfmig_vmm_dev *dev, uint32_t target)
{
	struct vfw_mig_device_state req = { target, NO_DATA_FD }, echo;
	int r;

	vfw_log(&dev->log, VFW_LOG_DEBUG, "SET MIG_DEVICE_STATE %s",
		vfw_mig_state_name(target));
	r = vmm_feature_exact(dev,
			      VFW_FEATURE_SET | VFW_FEATURE_MIG_DEVICE_STATE,
			      &req, sizeof(req), &echo, sizeof(echo));
	if (r < 0)
		return r;
	if (memcmp(&req, &echo, sizeof(req)) != 0) {
		vfw_log(&dev->log, VFW_LOG_ERR,
			"SET %u answered with state %u data_fd %u", target,
			echo.device_state, echo.data_fd);
		return vmm_proto_error(dev, NULL,
				       "MIG_DEVICE_STATE SET reply is no echo");
	}
	return 0;
}

/* After a failed SET (connection intact): the §3.5 recovery. Returns the
 * state the device ended in, or VFMIG_VMM_MIG_UNKNOWN. */
static uint32_t recover_state(vfmig_vmm_dev *dev, uint32_t recover)
{
	uint32_t st;
	int r;

	if (recover != VFW_MIG_STATE_ERROR) {
		r = set_state(dev, recover);
		if (r == 0) {
			vfw_log(&dev->log, VFW_LOG_WARNING,
				"recovered to %s", vfw_mig_state_name(recover));
			return recover;
		}
		vfw_log(&dev->log, VFW_LOG_ERR, "SET %s to recover failed: %s",
			vfw_mig_state_name(recover), vfmig_vmm_strerror(r));
		if (dev->fd < 0)
			return VFMIG_VMM_MIG_UNKNOWN;
	}
	r = vmm_reset_locked(dev);
	if (r < 0) {
		vfw_log(&dev->log, VFW_LOG_ERR, "reset after failed SET: %s",
			vfmig_vmm_strerror(r));
		return VFMIG_VMM_MIG_UNKNOWN;
	}
	r = get_state(dev, &st);
	if (r < 0) {
		vfw_log(&dev->log, VFW_LOG_ERR, "GET state after reset: %s",
			vfmig_vmm_strerror(r));
		return VFMIG_VMM_MIG_UNKNOWN;
	}
	vfw_log(&dev->log, VFW_LOG_WARNING, "device reset; now in %s",
		vfw_mig_state_name(st));
	return st;
}

/* SET target; on failure, the recovery of vfio_migration_set_state. A
 * load on the data channel is finished (EOF, the device's DONE) before
 * RESUMING is left; a failure there is returned without a SET, the
 * device still in RESUMING. */
static int v2_set_state(vfmig_vmm_dev *dev, uint32_t target, uint32_t recover,
			uint32_t *ended)
{
	int r;

	*ended = VFMIG_VMM_MIG_UNKNOWN;
	if (vmm_dc_loading(dev) && target != VFW_MIG_STATE_RESUMING) {
		r = vmm_dc_finish_load(dev);
		if (r < 0) {
			/* As a refused SET: the recovery rule applies. */
			vfw_log(&dev->log, VFW_LOG_ERR,
				"load on the data channel failed: %s",
				vfmig_vmm_strerror(r));
			if (dev->fd >= 0)
				*ended = recover_state(dev, recover);
			return r;
		}
	}
	r = set_state(dev, target);
	if (r == 0) {
		*ended = target;
		vfw_log(&dev->log, VFW_LOG_INFO, "device now in %s",
			vfw_mig_state_name(target));
		return vmm_dc_after_set(dev, target, true);
	}
	vfw_log(&dev->log, VFW_LOG_ERR, "SET %s failed: %s",
		vfw_mig_state_name(target), vfmig_vmm_strerror(r));
	if (dev->fd >= 0)
		*ended = recover_state(dev, recover);
	if (*ended != VFMIG_VMM_MIG_UNKNOWN)
		(void)vmm_dc_after_set(dev, *ended, false);
	else
		vmm_dc_close(dev);
	return r;
}

/* ---- save: MIG_DATA_READ ---- */

/* Read one chunk with the lock held, hand it to the sink without. Returns
 * the byte count, or a negative errno; *asked gets the request size. */
static int pump_chunk(vfmig_vmm_dev *dev, vfmig_vmm_mig_sink_fn sink,
		      void *priv, size_t *asked)
{
	struct vfw_msg reply;
	const uint8_t *data;
	int r = vmm_lock_live(dev);

	if (r < 0)
		return r;
	*asked = vmm_xfer_chunk(dev);
	r = vmm_mig_read_msg(dev, *asked, &reply, &data);
	vmm_unlock(dev);
	if (r <= 0) {
		if (r == 0)
			vfw_msg_release(&reply);
		return r;
	}
	int s = sink(priv, data, (size_t)r);
	vfw_msg_release(&reply);
	return s < 0 ? s : r;
}

/* What vfmig_vmm_mig_move() needs: the device whose SEALED frame waits,
 * and whether the move happened. */
struct vfmig_vmm_move {
	vfmig_vmm_dev *dev;
	size_t len;
	bool called;
};

int vfmig_vmm_mig_move(vfmig_vmm_move *mv, int fd, int timeout_ms)
{
	int r;

	if (!mv || mv->called || fd < 0)
		return -EINVAL;
	mv->called = true;
	r = vmm_lock_live(mv->dev);
	if (r < 0)
		return r;
	if (!vmm_dc_saving(mv->dev) || mv->dev->dc.left != mv->len)
		r = -ENOTCONN; /* closed meanwhile (a reset) */
	else
		r = vmm_dc_move(mv->dev, fd, timeout_ms);
	vmm_unlock(mv->dev);
	return r;
}

/* One piece from the data channel with the lock held, handed to the sink
 * (or, a SEALED frame, to moved) without; 0 with *status DRAINED or END
 * when the stream says so. */
static int pump_channel(vfmig_vmm_dev *dev, bool stop_copy,
			vfmig_vmm_mig_sink_fn sink,
			vfmig_vmm_mig_moved_fn moved, void *priv,
			int *status)
{
	int r = vmm_lock_live(dev);

	if (r < 0)
		return r;
	if (!vmm_dc_saving(dev)) {
		vmm_unlock(dev);
		return -ENOTCONN; /* closed meanwhile (a reset) */
	}
	uint8_t *buf = dev->dc.buf;
	r = vmm_dc_read_sealed(dev, buf, VFW_DC_FRAME_MAX, stop_copy,
			       moved != NULL, status);
	if (r == 0 && *status == VMM_DC_SEALED) {
		vfmig_vmm_move mv = { dev, dev->dc.left, false };
		vmm_unlock(dev);
		*status = VMM_DC_MORE;
		int s = moved(priv, mv.len, &mv);
		if (!mv.called) {
			/* The frame is still in the socket: nothing after it
			 * can be read, the session is over. */
			if (s >= 0)
				vfw_log(&dev->log, VFW_LOG_ERR, "save pump: the "
					"sealed frame was not moved");
			s = s < 0 ? s : -EPROTO;
			if (vmm_lock_live(dev) == 0) {
				vmm_dc_fail(dev, s, "a sealed frame left unmoved");
				vmm_unlock(dev);
			}
			return s;
		}
		return s < 0 ? s : (int)mv.len;
	}
	vmm_unlock(dev);
	if (r <= 0)
		return r;
	int s = sink(priv, buf, (size_t)r);
	return s < 0 ? s : r;
}

/*
 * One step of the save pump, from the channel when one is attached, else
 * with a MIG_DATA_READ: the bytes handed to the sink, or a negative errno.
 * *ended is the status once the session has nothing more (END, or DRAINED
 * in PRE_COPY), else -1.
 */
static int save_step(vfmig_vmm_dev *dev, bool chan, uint32_t st,
		     vfmig_vmm_mig_sink_fn sink, vfmig_vmm_mig_moved_fn moved,
		     void *priv, int *ended)
{
	bool stop_copy = st == VFW_MIG_STATE_STOP_COPY;
	size_t asked;
	int status, r;

	*ended = -1;
	if (chan) {
		r = pump_channel(dev, stop_copy, sink, moved, priv, &status);
		if (r == 0 && status != VMM_DC_MORE)
			*ended = status == VMM_DC_END
					 ? VFMIG_VMM_MIG_SAVE_END
					 : VFMIG_VMM_MIG_SAVE_DRAINED;
		return r;
	}
	r = pump_chunk(dev, sink, priv, &asked);
	if (r >= 0 && (size_t)r < asked)
		*ended = stop_copy ? VFMIG_VMM_MIG_SAVE_END
				   : VFMIG_VMM_MIG_SAVE_DRAINED;
	return r;
}

static int v2_save(vfmig_vmm_dev *dev, uint64_t budget,
		   vfmig_vmm_mig_sink_fn sink, vfmig_vmm_mig_moved_fn moved,
		   void *priv, struct vfmig_vmm_mig_save_result *res)
{
	uint32_t st = VFMIG_VMM_MIG_UNKNOWN;
	bool chan;
	int r = vmm_lock_live(dev);

	if (r < 0)
		return r;
	r = get_state(dev, &st);
	chan = vmm_dc_saving(dev);
	vmm_unlock(dev);
	if (r < 0)
		return r;
	res->state = st;
	if (!vfw_mig_state_saving(st))
		return -EINVAL;
	for (;;) {
		int ended;
		r = save_step(dev, chan, st, sink, moved, priv, &ended);
		if (r < 0)
			return r;
		res->bytes += (uint64_t)r;
		if (ended >= 0) {
			res->status = (enum vfmig_vmm_mig_save_status)ended;
			return 0;
		}
		if (budget && res->bytes >= budget) {
			res->status = VFMIG_VMM_MIG_SAVE_BUDGET;
			return 0;
		}
	}
}

/* ---- load: MIG_DATA_WRITE ---- */

static int v2_load(vfmig_vmm_dev *dev, const uint8_t *p, size_t len)
{
	size_t chunk = vmm_xfer_chunk(dev), done = 0;
	int r = 0;

	if (vmm_dc_loading(dev))
		return vmm_dc_write(dev, p, len);
	while (r == 0 && done < len) {
		size_t n = len - done < chunk ? len - done : chunk;
		struct vfw_mig_data m = { (uint32_t)(sizeof(m) + n),
					  (uint32_t)n };
		struct iovec iov[2] = { { &m, sizeof(m) },
					{ (void *)(p + done), n } };
		struct vfw_msg reply;
		r = vmm_call(dev, VFW_CMD_MIG_DATA_WRITE, iov, 2, NULL, 0,
			     &reply);
		if (r == 0)
			vfw_msg_release(&reply);
		done += n;
	}
	return r;
}

/* ---- size estimates (vfmig extension) ---- */

static int v2_estimate(vfmig_vmm_dev *dev, uint32_t feature, void *out,
		       size_t len)
{
	if (!dev->caps.mig_info_version)
		return -EOPNOTSUPP;
	return vmm_feature_exact(dev, VFW_FEATURE_GET | feature, NULL, 0, out,
				 len);
}

/* ---- DMA dirty logging: DMA_LOGGING_START / REPORT / STOP ---- */

static_assert(sizeof(struct vfmig_vmm_dma_range) ==
		      sizeof(struct vfw_dma_logging_range),
	      "range layout");

/* Build the START payload; malloc'd, length in *len. */
static uint8_t *start_payload(uint64_t ps,
			      const struct vfmig_vmm_dma_range *ranges,
			      uint32_t n, size_t *len)
{
	struct vfw_dma_logging_start s = { .page_size = ps, .num_ranges = n };
	uint8_t *p;

	*len = sizeof(s) + (size_t)n * sizeof(struct vfw_dma_logging_range);
	p = malloc(*len);
	if (!p)
		return NULL;
	memcpy(p, &s, sizeof(s));
	for (uint32_t i = 0; i < n; i++) {
		struct vfw_dma_logging_range r = { ranges[i].iova,
						   ranges[i].length };
		memcpy(p + sizeof(s) + i * sizeof(r), &r, sizeof(r));
	}
	return p;
}

/* The reply must be our request with (possibly) another page size. */
static int check_start_echo(const uint8_t *req, const uint8_t *data,
			    size_t len, size_t want, uint64_t *ps)
{
	struct vfw_dma_logging_start s;

	if (len != want)
		return -EPROTO;
	memcpy(&s, data, sizeof(s));
	if (!vmm_log_page_ok(s.page_size))
		return -EPROTO;
	/* num_ranges, reserved and the ranges are echoed byte for byte */
	if (memcmp(req + 8, data + 8, want - 8) != 0)
		return -EPROTO;
	*ps = s.page_size;
	return 0;
}

static int v2_log_start(vfmig_vmm_dev *dev, uint64_t page_size,
			const struct vfmig_vmm_dma_range *ranges, uint32_t n,
			uint64_t *chosen)
{
	struct vfw_msg reply;
	const uint8_t *data;
	uint8_t *req;
	size_t len, got;
	uint64_t ps = 0;
	int r;

	req = start_payload(page_size, ranges, n, &len);
	if (!req)
		return -ENOMEM;
	r = vmm_feature_call(dev, VFW_FEATURE_SET | VFW_FEATURE_DMA_LOGGING_START,
			     req, len, len, &reply, &data, &got);
	if (r == 0) {
		r = check_start_echo(req, data, got, len, &ps);
		if (r < 0)
			r = vmm_proto_error(dev, &reply,
					    "DMA_LOGGING_START reply is no echo");
		else
			vfw_msg_release(&reply);
	}
	free(req);
	if (r == 0) {
		vfw_log(&dev->log, VFW_LOG_INFO,
			"DMA logging on: %u ranges, page size %llu", n,
			(unsigned long long)ps);
		if (chosen)
			*chosen = ps;
	}
	return r;
}

/* OR the reply's words into out, dropping bits past the last page. */
static void merge(uint64_t *out, const uint8_t *bits, size_t words,
		  uint64_t pages, bool *stray)
{
	for (size_t i = 0; i < words; i++) {
		uint64_t w;
		memcpy(&w, bits + i * 8, 8);
		if (i == words - 1 && pages % 64) {
			uint64_t keep = (1ull << (pages % 64)) - 1;
			*stray |= (w & ~keep) != 0;
			w &= keep;
		}
		out[i] |= w;
	}
}

/* One REPORT message for pages [0, pages) at iova, len bytes. */
static int report_one(vfmig_vmm_dev *dev, uint64_t iova, uint64_t len,
		      uint64_t ps, uint64_t pages, uint64_t *out)
{
	struct vfw_dma_logging_report req = { iova, len, ps }, echo;
	size_t words = (size_t)((pages + 63) / 64);
	size_t want = sizeof(req) + words * 8;
	struct vfw_msg reply;
	const uint8_t *data;
	size_t got;
	bool stray = false;
	int r;

	r = vmm_feature_call(dev, VFW_FEATURE_GET | VFW_FEATURE_DMA_LOGGING_REPORT,
			     &req, sizeof(req), want, &reply, &data, &got);
	if (r < 0)
		return r;
	if (got != want) {
		vfw_log(&dev->log, VFW_LOG_ERR,
			"DMA_LOGGING_REPORT: %zu bytes of reply data, want %zu",
			got, want);
		return vmm_proto_error(dev, &reply, "REPORT reply size");
	}
	memcpy(&echo, data, sizeof(echo));
	if (memcmp(&echo, &req, sizeof(req)) != 0)
		return vmm_proto_error(dev, &reply, "REPORT reply is no echo");
	merge(out, data + sizeof(req), words, pages, &stray);
	vfw_msg_release(&reply);
	if (stray)
		vfw_log(&dev->log, VFW_LOG_WARNING,
			"REPORT set bits past the range; dropped");
	return 0;
}

static int v2_log_report(vfmig_vmm_dev *dev, uint64_t iova, uint64_t length,
			 uint64_t page_size, uint64_t *bitmap)
{
	uint64_t pages = length / page_size + (length % page_size != 0);
	uint64_t per_msg = VMM_DMA_LOG_WORDS_PER_MSG * 64, done = 0;
	int r = 0;

	while (r == 0 && done < pages) {
		uint64_t n = pages - done < per_msg ? pages - done : per_msg;
		uint64_t off = done * page_size; /* < length: no overflow */
		uint64_t len = n == pages - done ? length - off : n * page_size;

		r = report_one(dev, iova + off, len, page_size, n,
			       bitmap + done / 64);
		done += n;
	}
	return r;
}

static int v2_log_stop(vfmig_vmm_dev *dev)
{
	struct vfw_msg reply;
	const uint8_t *data;
	size_t got;
	int r = vmm_feature_call(dev, VFW_FEATURE_SET | VFW_FEATURE_DMA_LOGGING_STOP,
				 NULL, 0, 0, &reply, &data, &got);

	if (r == 0) {
		vfw_msg_release(&reply);
		vfw_log(&dev->log, VFW_LOG_INFO, "DMA logging off");
	}
	return r;
}

/* A reset ends every session: the device dropped its channel end. */
static void v2_after_reset(vfmig_vmm_dev *dev)
{
	vmm_dc_close(dev);
}

const struct vmm_mig_backend vmm_mig_v2 = {
	.iface = VFMIG_VMM_MIG_IFACE_V2,
	.get_state = get_state,
	.set_state = v2_set_state,
	.save = v2_save,
	.load = v2_load,
	.log_start = v2_log_start,
	.log_report = v2_log_report,
	.log_stop = v2_log_stop,
	.estimate = v2_estimate,
	.after_reset = v2_after_reset,
};
