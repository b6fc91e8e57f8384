/* SPDX-License-Identifier: MIT */
/*
 * The VMM-side device migration driver (vmm_mig.h): capability discovery
 * with a blocker reason, which picks the device-state interface, and the
 * public calls, which check their arguments and go through that
 * interface's operations (struct vmm_mig_backend: mig_v2.c, mig_region.c).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "protocol/migfsm.h"

/* The public enum mirrors the wire values. */
#define SAME(a, b) static_assert((long)(a) == (long)(b), #a)
SAME(VFMIG_VMM_MIG_ERROR, VFW_MIG_STATE_ERROR);
SAME(VFMIG_VMM_MIG_STOP, VFW_MIG_STATE_STOP);
SAME(VFMIG_VMM_MIG_RUNNING, VFW_MIG_STATE_RUNNING);
SAME(VFMIG_VMM_MIG_STOP_COPY, VFW_MIG_STATE_STOP_COPY);
SAME(VFMIG_VMM_MIG_RESUMING, VFW_MIG_STATE_RESUMING);
SAME(VFMIG_VMM_MIG_RUNNING_P2P, VFW_MIG_STATE_RUNNING_P2P);
SAME(VFMIG_VMM_MIG_PRE_COPY, VFW_MIG_STATE_PRE_COPY);
SAME(VFMIG_VMM_MIG_PRE_COPY_P2P, VFW_MIG_STATE_PRE_COPY_P2P);
SAME(VFMIG_VMM_MIG_NUM_STATES, VFW_MIG_STATE_NUM);
SAME(VFMIG_VMM_MIG_FLAG_STOP_COPY, VFW_MIGRATION_STOP_COPY);
SAME(VFMIG_VMM_MIG_FLAG_P2P, VFW_MIGRATION_P2P);
SAME(VFMIG_VMM_MIG_FLAG_PRE_COPY, VFW_MIGRATION_PRE_COPY);

const char *vfmig_vmm_mig_state_name(uint32_t state)
{
	if (state == VFMIG_VMM_MIG_UNKNOWN)
		return "UNKNOWN";
	return vfw_mig_state_name(state);
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
	struct vfw_msg reply;
	const uint8_t *data;
	size_t len;
	int r = vmm_feature_call(dev, VFW_FEATURE_PROBE | ops | feature, NULL,
				 0, 0, &reply, &data, &len);

	if (r == 0)
		vfw_msg_release(&reply);
	vfw_log(&dev->log, VFW_LOG_DEBUG, "PROBE feature %u ops 0x%x: %d",
		feature, ops, r);
	return r;
}

/* The device refused what; a broken connection makes it our error. */
static int refused(vfmig_vmm_dev *dev, struct vfmig_vmm_mig_caps *caps,
		   const char *what, int err)
{
	blocker(caps, "%s %s: %s", what,
		dev->fd < 0 ? "failed" : "refused", vfmig_vmm_strerror(err));
	vfw_log(&dev->log, VFW_LOG_INFO, "migration blocked: %s",
		caps->blocker);
	return dev->fd < 0 ? err : 0;
}

static int probe_logging(vfmig_vmm_dev *dev, bool *ok)
{
	static const uint32_t probes[][2] = {
		{ VFW_FEATURE_DMA_LOGGING_START, VFW_FEATURE_SET },
		{ VFW_FEATURE_DMA_LOGGING_STOP, VFW_FEATURE_SET },
		{ VFW_FEATURE_DMA_LOGGING_REPORT, VFW_FEATURE_GET },
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
	r = probe(dev, VFW_FEATURE_MIG_DATA_SIZE, VFW_FEATURE_GET);
	if (r == 0 && (flags & VFW_MIGRATION_PRE_COPY))
		r = probe(dev, VFW_FEATURE_VFMIG_PRECOPY_INFO, VFW_FEATURE_GET);
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
	r = vmm_feature_exact(dev, VFW_FEATURE_GET | VFW_FEATURE_MIGRATION,
			      NULL, 0, &flags, sizeof(flags));
	if (r < 0) {
		r = refused(dev, caps, "DEVICE_FEATURE MIGRATION", r);
		return r < 0 ? r
			     : vmm_ds_discover(dev, caps, keep ? &prev : NULL);
	}
	caps->flags = flags;
	if (!(flags & VFW_MIGRATION_STOP_COPY)) {
		blocker(caps, "device does not report STOP_COPY (flags 0x%llx)",
			(unsigned long long)flags);
		vfw_log(&dev->log, VFW_LOG_INFO, "migration blocked: %s",
			caps->blocker);
		return 0;
	}
	r = probe(dev, VFW_FEATURE_MIG_DEVICE_STATE,
		  VFW_FEATURE_GET | VFW_FEATURE_SET);
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
	dev->mig = &vmm_mig_v2;
	vfw_log(&dev->log, VFW_LOG_INFO,
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
	iface = dev->mig ? dev->mig->iface : VFMIG_VMM_MIG_IFACE_NONE;
	pthread_mutex_unlock(&dev->lock);
	return iface;
}

/* ---- state ---- */

int vfmig_vmm_mig_get_state(vfmig_vmm_dev *dev, uint32_t *state)
{
	int r;

	if (!state)
		return -EINVAL;
	r = vmm_lock_live(dev);
	if (r < 0)
		return r;
	r = vmm_mig(dev)->get_state(dev, state);
	vmm_unlock(dev);
	return r;
}

int vfmig_vmm_mig_set_state(vfmig_vmm_dev *dev, uint32_t target,
			    uint32_t recover, uint32_t *final)
{
	uint32_t ended = VFMIG_VMM_MIG_UNKNOWN;
	int r;

	if (final)
		*final = VFMIG_VMM_MIG_UNKNOWN;
	if (target == VFW_MIG_STATE_ERROR || target >= VFW_MIG_STATE_NUM ||
	    recover >= VFW_MIG_STATE_NUM)
		return -EINVAL;
	r = vmm_lock_live(dev);
	if (r < 0)
		return r;
	r = vmm_mig(dev)->set_state(dev, target, recover, &ended);
	vmm_unlock(dev);
	if (final)
		*final = ended;
	return r;
}

/* ---- save ---- */

int vfmig_vmm_mig_save(vfmig_vmm_dev *dev, uint64_t budget,
		       vfmig_vmm_mig_sink_fn sink, void *priv,
		       struct vfmig_vmm_mig_save_result *res)
{
	return vfmig_vmm_mig_save_moved(dev, budget, sink, NULL, priv, res);
}

int vfmig_vmm_mig_save_moved(vfmig_vmm_dev *dev, uint64_t budget,
			     vfmig_vmm_mig_sink_fn sink,
			     vfmig_vmm_mig_moved_fn moved, void *priv,
			     struct vfmig_vmm_mig_save_result *res)
{
	const struct vmm_mig_backend *b;
	int r;

	if (!res)
		return -EINVAL;
	*res = (struct vfmig_vmm_mig_save_result){ .state =
							  VFMIG_VMM_MIG_UNKNOWN };
	if (!sink)
		return -EINVAL;
	r = vmm_lock_live(dev);
	if (r < 0)
		return r;
	b = vmm_mig(dev);
	vmm_unlock(dev);
	return b->save(dev, budget, sink, moved, priv, res);
}

/* ---- size estimates (vfmig extension) ---- */

static int estimate(vfmig_vmm_dev *dev, uint32_t feature, void *out,
		    size_t len)
{
	int r = vmm_lock_live(dev);

	if (r < 0)
		return r;
	r = vmm_mig(dev)->estimate(dev, feature, out, len);
	vmm_unlock(dev);
	return r;
}

int vfmig_vmm_mig_precopy_info(vfmig_vmm_dev *dev, uint64_t *initial_bytes,
			       uint64_t *dirty_bytes)
{
	struct vfw_precopy_info pi;
	int r;

	if (!initial_bytes || !dirty_bytes)
		return -EINVAL;
	r = estimate(dev, VFW_FEATURE_VFMIG_PRECOPY_INFO, &pi, sizeof(pi));
	if (r < 0)
		return r;
	*initial_bytes = pi.initial_bytes;
	*dirty_bytes = pi.dirty_bytes;
	return 0;
}

int vfmig_vmm_mig_stop_copy_size(vfmig_vmm_dev *dev, uint64_t *bytes)
{
	struct vfw_mig_data_size ds;
	int r;

	if (!bytes)
		return -EINVAL;
	r = estimate(dev, VFW_FEATURE_MIG_DATA_SIZE, &ds, sizeof(ds));
	if (r < 0)
		return r;
	*bytes = ds.stop_copy_length;
	return 0;
}

/* ---- DMA dirty logging ---- */

/* Non-empty, not wrapping, aligned to ps. */
static bool range_ok(uint64_t iova, uint64_t len, uint64_t ps)
{
	return len && iova + (len - 1) >= iova && !(iova & (ps - 1)) &&
	       !(len & (ps - 1));
}

int vfmig_vmm_dma_log_start(vfmig_vmm_dev *dev, uint64_t page_size,
			    const struct vfmig_vmm_dma_range *ranges,
			    uint32_t n, uint64_t *chosen)
{
	int r;

	if (!vmm_log_page_ok(page_size) || (n && !ranges))
		return -EINVAL;
	if (n > VFMIG_VMM_DMA_LOG_MAX_RANGES)
		return -E2BIG;
	for (uint32_t i = 0; i < n; i++)
		if (!range_ok(ranges[i].iova, ranges[i].length, page_size))
			return -EINVAL;
	r = vmm_lock_live(dev);
	if (r < 0)
		return r;
	r = vmm_mig(dev)->log_start(dev, page_size, ranges, n, chosen);
	vmm_unlock(dev);
	return r;
}

int vfmig_vmm_dma_log_report(vfmig_vmm_dev *dev, uint64_t iova,
			     uint64_t length, uint64_t page_size,
			     uint64_t *bitmap, size_t words)
{
	uint64_t pages;
	int r;

	if (!vmm_log_page_ok(page_size) || !length || !bitmap ||
	    iova + (length - 1) < iova)
		return -EINVAL;
	pages = length / page_size + (length % page_size != 0);
	if ((pages + 63) / 64 > words)
		return -EINVAL;
	r = vmm_lock_live(dev);
	if (r < 0)
		return r;
	r = vmm_mig(dev)->log_report(dev, iova, length, page_size, bitmap);
	vmm_unlock(dev);
	return r;
}

int vfmig_vmm_dma_log_stop(vfmig_vmm_dev *dev)
{
	int r = vmm_lock_live(dev);

	if (r < 0)
		return r;
	r = vmm_mig(dev)->log_stop(dev);
	vmm_unlock(dev);
	return r;
}
