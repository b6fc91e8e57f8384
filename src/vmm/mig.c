/* SPDX-License-Identifier: MIT */
/*
 * The VMM-side device migration driver: capability discovery with a blocker
 * reason, MIG_DEVICE_STATE get/set with QEMU's recovery rule
 * (vfio_migration_set_state: on failure SET the recover state, if that
 * fails reset and re-read the state), the save pump over MIG_DATA_READ and
 * the size estimates of the vfmig extension.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "protocol/migfsm.h"

/* The public enum mirrors the wire values. */
#define SAME(a, b) static_assert((long)(a) == (long)(b), #a)
SAME(VFMIG_VMM_MIG_ERROR, VFU_MIG_STATE_ERROR);
SAME(VFMIG_VMM_MIG_STOP, VFU_MIG_STATE_STOP);
SAME(VFMIG_VMM_MIG_RUNNING, VFU_MIG_STATE_RUNNING);
SAME(VFMIG_VMM_MIG_STOP_COPY, VFU_MIG_STATE_STOP_COPY);
SAME(VFMIG_VMM_MIG_RESUMING, VFU_MIG_STATE_RESUMING);
SAME(VFMIG_VMM_MIG_RUNNING_P2P, VFU_MIG_STATE_RUNNING_P2P);
SAME(VFMIG_VMM_MIG_PRE_COPY, VFU_MIG_STATE_PRE_COPY);
SAME(VFMIG_VMM_MIG_PRE_COPY_P2P, VFU_MIG_STATE_PRE_COPY_P2P);
SAME(VFMIG_VMM_MIG_NUM_STATES, VFU_MIG_STATE_NUM);
SAME(VFMIG_VMM_MIG_FLAG_STOP_COPY, VFU_MIGRATION_STOP_COPY);
SAME(VFMIG_VMM_MIG_FLAG_P2P, VFU_MIGRATION_P2P);
SAME(VFMIG_VMM_MIG_FLAG_PRE_COPY, VFU_MIGRATION_PRE_COPY);

/* data_fd is unused in vfio-user; we send -1 as lvu's client does. */
#define NO_DATA_FD 0xffffffffu

const char *vfmig_vmm_mig_state_name(uint32_t state)
{
	if (state == VFMIG_VMM_MIG_UNKNOWN)
		return "UNKNOWN";
	return vfu_mig_state_name(state);
}

/* ---- discovery ---- */

static void blocker(struct vfmig_vmm_mig_caps *caps, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void blocker(struct vfmig_vmm_mig_caps *caps, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(caps->blocker, sizeof(caps->blocker), fmt, ap);
	va_end(ap);
}

/* PROBE with the given GET/SET bits; the echoed payload is not used. */
static int probe(vfmig_vmm_dev *dev, uint32_t feature, uint32_t ops)
{
	struct vfu_msg reply;
	const uint8_t *data;
	size_t len;
	int r = vmm_feature_call(dev, VFU_FEATURE_PROBE | ops | feature, NULL,
				 0, 0, &reply, &data, &len);

	if (r == 0)
		vfu_msg_release(&reply);
	vfu_log(&dev->log, VFU_LOG_DEBUG, "PROBE feature %u ops 0x%x: %d",
		feature, ops, r);
	return r;
}

/* The device refused what; a broken connection makes it our error. */
static int refused(vfmig_vmm_dev *dev, struct vfmig_vmm_mig_caps *caps,
		   const char *what, int err)
{
	blocker(caps, "%s %s: %s", what,
		dev->fd < 0 ? "failed" : "refused", vfmig_vmm_strerror(err));
	vfu_log(&dev->log, VFU_LOG_INFO, "migration blocked: %s",
		caps->blocker);
	return dev->fd < 0 ? err : 0;
}

static int probe_logging(vfmig_vmm_dev *dev, bool *ok)
{
	static const uint32_t probes[][2] = {
		{ VFU_FEATURE_DMA_LOGGING_START, VFU_FEATURE_SET },
		{ VFU_FEATURE_DMA_LOGGING_STOP, VFU_FEATURE_SET },
		{ VFU_FEATURE_DMA_LOGGING_REPORT, VFU_FEATURE_GET },
	};

	*ok = false;
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		int r = probe(dev, probes[i][0], probes[i][1]);
		if (r < 0)
			return dev->fd < 0 ? r : 0;
	}
	*ok = true;
	return 0;
}

static int probe_sizes(vfmig_vmm_dev *dev, uint64_t flags, bool *ok)
{
	int r;

	*ok = false;
	if (!dev->caps.mig_info_version)
		return 0;
	r = probe(dev, VFU_FEATURE_MIG_DATA_SIZE, VFU_FEATURE_GET);
	if (r == 0 && (flags & VFU_MIGRATION_PRE_COPY))
		r = probe(dev, VFU_FEATURE_VFMIG_PRECOPY_INFO, VFU_FEATURE_GET);
	if (r < 0)
		return dev->fd < 0 ? r : 0;
	*ok = true;
	return 0;
}

static int discover(vfmig_vmm_dev *dev, struct vfmig_vmm_mig_caps *caps)
{
	uint64_t flags;
	int r;

	/* A repeated discovery on this connection keeps the region state
	 * the library tracks (the device may be stopped meanwhile). */
	struct vmm_ds prev = dev->ds;
	bool keep = vmm_ds_on(dev) && dev->ds.tracked;

	vmm_ds_forget(dev);
	r = vmm_feature_exact(dev, VFU_FEATURE_GET | VFU_FEATURE_MIGRATION,
			      NULL, 0, &flags, sizeof(flags));
	if (r < 0) {
		r = refused(dev, caps, "DEVICE_FEATURE MIGRATION", r);
		return r < 0 ? r
			     : vmm_ds_discover(dev, caps, keep ? &prev : NULL);
	}
	caps->flags = flags;
	if (!(flags & VFU_MIGRATION_STOP_COPY)) {
		blocker(caps, "device does not report STOP_COPY (flags 0x%llx)",
			(unsigned long long)flags);
		vfu_log(&dev->log, VFU_LOG_INFO, "migration blocked: %s",
			caps->blocker);
		return 0;
	}
	r = probe(dev, VFU_FEATURE_MIG_DEVICE_STATE,
		  VFU_FEATURE_GET | VFU_FEATURE_SET);
	if (r < 0)
		return refused(dev, caps, "PROBE of MIG_DEVICE_STATE", r);
	caps->migratable = true;
	r = probe_logging(dev, &caps->dirty_logging);
	if (r == 0)
		r = probe_sizes(dev, flags, &caps->size_info);
	if (r < 0) {
		caps->migratable = false;
		blocker(caps, "connection lost during discovery: %s",
			vfmig_vmm_strerror(r));
		return r;
	}
	dev->mig_iface = VFMIG_VMM_MIG_IFACE_V2;
	vfu_log(&dev->log, VFU_LOG_INFO,
		"migratable: flags 0x%llx, dirty logging %s, size info %s",
		(unsigned long long)flags, caps->dirty_logging ? "yes" : "no",
		caps->size_info ? "yes" : "no");
	return 0;
}

int vfmig_vmm_mig_discover(vfmig_vmm_dev *dev, struct vfmig_vmm_mig_caps *caps)
{
	int r;

	if (!caps)
		return -EINVAL;
	memset(caps, 0, sizeof(*caps));
	r = vmm_lock_live(dev);
	if (r < 0) {
		blocker(caps, "not connected: %s", vfmig_vmm_strerror(r));
		return r;
	}
	r = discover(dev, caps);
	vmm_unlock(dev);
	return r;
}

int vfmig_vmm_mig_interface(vfmig_vmm_dev *dev)
{
	int iface;

	if (!dev)
		return VFMIG_VMM_MIG_IFACE_NONE;
	pthread_mutex_lock(&dev->lock);
	iface = dev->mig_iface;
	pthread_mutex_unlock(&dev->lock);
	return iface;
}

/* ---- state ---- */

static int get_state(vfmig_vmm_dev *dev, uint32_t *state)
{
	struct vfu_mig_device_state st;
	int r = vmm_feature_exact(dev,
				  VFU_FEATURE_GET | VFU_FEATURE_MIG_DEVICE_STATE,
				  NULL, 0, &st, sizeof(st));

	if (r < 0)
		return r;
	if (st.device_state >= VFU_MIG_STATE_NUM) {
		vfu_log(&dev->log, VFU_LOG_ERR, "device reports state %u",
			st.device_state);
		return vmm_proto_error(dev, NULL, "MIG_DEVICE_STATE out of range");
	}
	*state = st.device_state;
	return 0;
}

static int set_state(vfmig_vmm_dev *dev, uint32_t target)
{
	struct vfu_mig_device_state req = { target, NO_DATA_FD }, echo;
	int r;

	vfu_log(&dev->log, VFU_LOG_DEBUG, "SET MIG_DEVICE_STATE %s",
		vfu_mig_state_name(target));
	r = vmm_feature_exact(dev,
			      VFU_FEATURE_SET | VFU_FEATURE_MIG_DEVICE_STATE,
			      &req, sizeof(req), &echo, sizeof(echo));
	if (r < 0)
		return r;
	if (memcmp(&req, &echo, sizeof(req)) != 0) {
		vfu_log(&dev->log, VFU_LOG_ERR,
			"SET %u answered with state %u data_fd %u", target,
			echo.device_state, echo.data_fd);
		return vmm_proto_error(dev, NULL,
				       "MIG_DEVICE_STATE SET reply is no echo");
	}
	return 0;
}

int vfmig_vmm_mig_get_state(vfmig_vmm_dev *dev, uint32_t *state)
{
	int r;

	if (!state)
		return -EINVAL;
	r = vmm_lock_live(dev);
	if (r < 0)
		return r;
	if (vmm_ds_on(dev))
		*state = dev->ds.sess.state;
	else
		r = get_state(dev, state);
	vmm_unlock(dev);
	return r;
}

/* After a failed SET (connection intact): the §3.5 recovery. Returns the
 * state the device ended in, or VFMIG_VMM_MIG_UNKNOWN. */
static uint32_t recover_state(vfmig_vmm_dev *dev, uint32_t recover)
{
	uint32_t st;
	int r;

	if (recover != VFU_MIG_STATE_ERROR) {
		r = set_state(dev, recover);
		if (r == 0) {
			vfu_log(&dev->log, VFU_LOG_WARNING,
				"recovered to %s", vfu_mig_state_name(recover));
			return recover;
		}
		vfu_log(&dev->log, VFU_LOG_ERR, "SET %s to recover failed: %s",
			vfu_mig_state_name(recover), vfmig_vmm_strerror(r));
		if (dev->fd < 0)
			return VFMIG_VMM_MIG_UNKNOWN;
	}
	r = vmm_reset_locked(dev);
	if (r < 0) {
		vfu_log(&dev->log, VFU_LOG_ERR, "reset after failed SET: %s",
			vfmig_vmm_strerror(r));
		return VFMIG_VMM_MIG_UNKNOWN;
	}
	r = get_state(dev, &st);
	if (r < 0) {
		vfu_log(&dev->log, VFU_LOG_ERR, "GET state after reset: %s",
			vfmig_vmm_strerror(r));
		return VFMIG_VMM_MIG_UNKNOWN;
	}
	vfu_log(&dev->log, VFU_LOG_WARNING, "device reset; now in %s",
		vfu_mig_state_name(st));
	return st;
}

int vfmig_vmm_mig_set_state(vfmig_vmm_dev *dev, uint32_t target,
			    uint32_t recover, uint32_t *final)
{
	uint32_t ended = VFMIG_VMM_MIG_UNKNOWN;
	int r;

	if (final)
		*final = VFMIG_VMM_MIG_UNKNOWN;
	if (target == VFU_MIG_STATE_ERROR || target >= VFU_MIG_STATE_NUM ||
	    recover >= VFU_MIG_STATE_NUM)
		return -EINVAL;
	r = vmm_lock_live(dev);
	if (r < 0)
		return r;
	if (vmm_ds_on(dev)) {
		r = vmm_ds_set_state(dev, target, recover, &ended);
		vmm_unlock(dev);
		if (final)
			*final = ended;
		return r;
	}
	r = set_state(dev, target);
	if (r == 0) {
		ended = target;
		vfu_log(&dev->log, VFU_LOG_INFO, "device now in %s",
			vfu_mig_state_name(target));
	} else {
		vfu_log(&dev->log, VFU_LOG_ERR, "SET %s failed: %s",
			vfu_mig_state_name(target), vfmig_vmm_strerror(r));
		if (dev->fd >= 0)
			ended = recover_state(dev, recover);
	}
	vmm_unlock(dev);
	if (final)
		*final = ended;
	return r;
}

/* ---- save pump ---- */

/* Read one chunk with the lock held, hand it to the sink without. Returns
 * the byte count, or a negative errno; *asked gets the request size. */
static int pump_chunk(vfmig_vmm_dev *dev, vfmig_vmm_mig_sink_fn sink,
		      void *priv, size_t *asked)
{
	struct vfu_msg reply;
	const uint8_t *data;
	int r = vmm_lock_live(dev);

	if (r < 0)
		return r;
	*asked = vmm_xfer_chunk(dev);
	r = vmm_mig_read_msg(dev, *asked, &reply, &data);
	vmm_unlock(dev);
	if (r <= 0) {
		if (r == 0)
			vfu_msg_release(&reply);
		return r;
	}
	int s = sink(priv, data, (size_t)r);
	vfu_msg_release(&reply);
	return s < 0 ? s : r;
}

int vfmig_vmm_mig_save(vfmig_vmm_dev *dev, uint64_t budget,
		       vfmig_vmm_mig_sink_fn sink, void *priv,
		       struct vfmig_vmm_mig_save_result *res)
{
	uint32_t st = VFMIG_VMM_MIG_UNKNOWN;
	int r;

	if (!res)
		return -EINVAL;
	*res = (struct vfmig_vmm_mig_save_result){ .state = st };
	if (!sink)
		return -EINVAL;
	r = vmm_lock_live(dev);
	if (r < 0)
		return r;
	bool region = vmm_ds_on(dev);
	vmm_unlock(dev);
	if (region)
		return vmm_ds_save(dev, budget, sink, priv, res);
	r = vfmig_vmm_mig_get_state(dev, &st);
	if (r < 0)
		return r;
	res->state = st;
	if (!vfu_mig_state_saving(st))
		return -EINVAL;
	for (;;) {
		size_t asked;
		r = pump_chunk(dev, sink, priv, &asked);
		if (r < 0)
			return r;
		res->bytes += (uint64_t)r;
		if ((size_t)r < asked) {
			res->status = st == VFU_MIG_STATE_STOP_COPY
					      ? VFMIG_VMM_MIG_SAVE_END
					      : VFMIG_VMM_MIG_SAVE_DRAINED;
			return 0;
		}
		if (budget && res->bytes >= budget) {
			res->status = VFMIG_VMM_MIG_SAVE_BUDGET;
			return 0;
		}
	}
}

/* ---- size estimates (vfmig extension) ---- */

static int estimate(vfmig_vmm_dev *dev, uint32_t feature, void *out,
		    size_t len)
{
	int r = vmm_lock_live(dev);

	if (r < 0)
		return r;
	if (!dev->caps.mig_info_version || vmm_ds_on(dev))
		r = -EOPNOTSUPP;
	else
		r = vmm_feature_exact(dev, VFU_FEATURE_GET | feature, NULL, 0,
				      out, len);
	vmm_unlock(dev);
	return r;
}

int vfmig_vmm_mig_precopy_info(vfmig_vmm_dev *dev, uint64_t *initial_bytes,
			       uint64_t *dirty_bytes)
{
	struct vfu_precopy_info pi;
	int r;

	if (!initial_bytes || !dirty_bytes)
		return -EINVAL;
	r = estimate(dev, VFU_FEATURE_VFMIG_PRECOPY_INFO, &pi, sizeof(pi));
	if (r < 0)
		return r;
	*initial_bytes = pi.initial_bytes;
	*dirty_bytes = pi.dirty_bytes;
	return 0;
}

int vfmig_vmm_mig_stop_copy_size(vfmig_vmm_dev *dev, uint64_t *bytes)
{
	struct vfu_mig_data_size ds;
	int r;

	if (!bytes)
		return -EINVAL;
	r = estimate(dev, VFU_FEATURE_MIG_DATA_SIZE, &ds, sizeof(ds));
	if (r < 0)
		return r;
	*bytes = ds.stop_copy_length;
	return 0;
}
