/* SPDX-License-Identifier: MIT */
/*
 * Device-side migration, what every device-state interface shares: the v2
 * state machine walked arc by arc with the shared next-hop table
 * (protocol/migfsm.c), the save and load sessions with their chunk helpers,
 * command gating while the device is stopped, and the choice of the
 * interface the client is offered (vfmig_dev_set_mig_interface).
 *
 * Sessions (docs/device-migration.md) are tied to the state: a save
 * session opens on entering PRE_COPY or STOP_COPY from outside the saving
 * group and closes on leaving the group; a load session lives exactly while
 * in RESUMING. The device learns both from its mig_transition arcs.
 *
 * An interface is a const struct dev_mig_iface (internal.h): dev_mig_v2 in
 * mig_v2.c (DEVICE_FEATURE and MIG_DATA_READ/WRITE) and dev_mig_region in
 * mig_region.c (regions 9..12). Both drive the machine here through
 * dev_mig_goto and the chunk helpers. DEVICE_FEATURE (after the header
 * checks common to all), MIG_DATA_*, the size-estimate offer in VERSION,
 * DEVICE_RESET, a departing client and teardown call through
 * dev->mig.iface; regions.c does the same for the regions.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"
#include "protocol/migfsm.h"

bool dev_mig_supported(const struct vfmig_dev *dev)
{
	return dev->ops.version >= 2 && dev->ops.mig_flags != 0;
}

VFMIG_EXPORT uint32_t vfmig_dev_mig_state(const vfmig_dev *dev)
{
	return dev ? dev->mig.state : VFW_MIG_STATE_ERROR;
}

bool dev_mig_running(const struct vfmig_dev *dev)
{
	switch (dev->mig.state) {
	case VFW_MIG_STATE_RUNNING:
	case VFW_MIG_STATE_RUNNING_P2P:
	case VFW_MIG_STATE_PRE_COPY:
	case VFW_MIG_STATE_PRE_COPY_P2P:
		return true;
	default:
		return false;
	}
}

/* Commands a stopped device (STOP, STOP_COPY) accepts. lvu allows only the
 * first four; VERSION (a reconnecting client), DEVICE_RESET (the way out of
 * every state) and the read-only info queries change no device state and
 * (GET_INFO, GET_REGION_INFO, GET_IRQ_INFO, GET_REGION_IO_FDS) are
 * allowed too. DMA_MAP/UNMAP, SET_IRQS, REGION_WRITE_MULTI and
 * MIG_DATA_WRITE are refused with EINVAL. */
static const bool stopped_ok[VFW_CMD_MAX] = {
	[VFW_CMD_REGION_READ] = true,
	[VFW_CMD_REGION_WRITE] = true,
	[VFW_CMD_DEVICE_FEATURE] = true,
	[VFW_CMD_MIG_DATA_READ] = true,
	[VFW_CMD_VERSION] = true,
	[VFW_CMD_DEVICE_RESET] = true,
	[VFW_CMD_DEVICE_GET_INFO] = true,
	[VFW_CMD_DEVICE_GET_REGION_INFO] = true,
	[VFW_CMD_DEVICE_GET_IRQ_INFO] = true,
	/* read-only too; a destination VMM may ask before its device runs */
	[VFW_CMD_DEVICE_GET_REGION_IO_FDS] = true,
};

bool dev_mig_cmd_allowed(const struct vfmig_dev *dev, unsigned int cmd)
{
	uint32_t s = dev->mig.state;

	if (s != VFW_MIG_STATE_STOP && s != VFW_MIG_STATE_STOP_COPY)
		return true; /* RESUMING is not gated: QEMU restores config */
	return cmd < VFW_CMD_MAX && stopped_ok[cmd];
}

uint32_t dev_mig_info_offer(const struct vfmig_dev *dev, uint32_t client)
{
	const struct dev_mig_iface *mi = dev->mig.iface;

	return mi->info_offer ? mi->info_offer(dev, client) : 0;
}

uint32_t dev_mig_dc_offer(const struct vfmig_dev *dev, uint32_t client)
{
	const struct dev_mig_iface *mi = dev->mig.iface;

	return mi->dc_offer ? mi->dc_offer(dev, client) : 0;
}

static bool in_session_state(uint32_t s)
{
	return vfw_mig_state_saving(s) || s == VFW_MIG_STATE_RESUMING;
}

static void set_state(struct vfmig_dev *dev, uint32_t to)
{
	uint32_t from = dev->mig.state;

	if (vfw_mig_state_saving(from) != vfw_mig_state_saving(to) ||
	    (from == VFW_MIG_STATE_RESUMING) != (to == VFW_MIG_STATE_RESUMING)) {
		if (in_session_state(from))
			DEV_LOG(dev, VFW_LOG_INFO,
				"%s session closed after %llu bytes",
				from == VFW_MIG_STATE_RESUMING ? "load" : "save",
				(unsigned long long)dev->mig.bytes);
		dev->mig.bytes = 0;
		dev->mig.mem_bytes = 0;
	}
	pthread_mutex_lock(&dev->dma_lock); /* read by DMA on any thread */
	dev->mig.state = to;
	pthread_mutex_unlock(&dev->dma_lock);
	DEV_LOG(dev, VFW_LOG_INFO, "migration state %s -> %s",
		vfw_mig_state_name(from), vfw_mig_state_name(to));
	dev_dc_state_changed(dev, from, to);
	if (dev_mig_running(dev))
		dev_irq_release_held(dev);
}

/* One single arc. On failure the device is still in `from`; *to_error
 * tells that the failure leaves nothing sane (a rejected load). */
static int do_arc(struct vfmig_dev *dev, uint32_t from, uint32_t to,
		  bool *to_error)
{
	int r;

	*to_error = false;
	if (from == VFW_MIG_STATE_RESUMING && to == VFW_MIG_STATE_STOP) {
		r = dev_dc_load_finish(dev);
		if (r == 0)
			r = dev->ops.mig_load_finish(dev, dev->priv);
		if (r < 0) {
			DEV_LOG(dev, VFW_LOG_ERR,
				"device refused the loaded state: %s",
				vfmig_dev_strerror(r));
			*to_error = true;
			return r;
		}
	}
	r = dev->ops.mig_transition(dev, dev->priv, from, to);
	if (r < 0) {
		DEV_LOG(dev, VFW_LOG_ERR, "arc %s -> %s failed: %s",
			vfw_mig_state_name(from), vfw_mig_state_name(to),
			vfmig_dev_strerror(r));
		return r >= -4095 ? r : -EIO;
	}
	set_state(dev, to);
	return 0;
}

/* Walk arc by arc from the current state to target. */
static int walk(struct vfmig_dev *dev, uint32_t target, bool *to_error)
{
	while (dev->mig.state != target) {
		uint32_t next;
		int r = vfw_mig_next_state(dev->mig.state, target,
					   dev->ops.mig_flags, &next);
		if (r < 0)
			return r;
		r = do_arc(dev, dev->mig.state, next, to_error);
		if (r < 0)
			return r;
	}
	return 0;
}

/* A SET of MIG_DEVICE_STATE. Invalid targets change nothing. A failing arc
 * leaves the device in the state before it; we then go back to where the
 * request started, unless that would open a new session (the old one is
 * gone): then the device stays where the failure left it, a valid state.
 * A failure on the way back, or a refused load, gives ERROR. */
static int mig_set_state(struct vfmig_dev *dev, uint32_t target)
{
	uint32_t orig = dev->mig.state, next;

	bool to_error = false, dummy;
	int r;

	r = vfw_mig_next_state(orig, target, dev->ops.mig_flags, &next);
	if (r < 0) {
		DEV_LOG(dev, VFW_LOG_WARNING, "migration state %s -> %s: invalid",
			vfw_mig_state_name(orig), vfw_mig_state_name(target));
		return r;
	}
	r = walk(dev, target, &to_error);
	if (r == 0 || (dev->mig.state == orig && !to_error))
		return r; /* done, or the first arc failed: nothing changed */
	if (!to_error && in_session_state(orig))
		return r; /* stay in the valid state the failure left */
	if (!to_error && walk(dev, orig, &dummy) == 0)
		return r;
	set_state(dev, VFW_MIG_STATE_ERROR);
	return r;
}

int dev_mig_goto(struct vfmig_dev *dev, uint32_t target)
{
	return mig_set_state(dev, target);
}

void dev_mig_reset(struct vfmig_dev *dev)
{
	if (dev->mig.state != VFW_MIG_STATE_RUNNING)
		set_state(dev, VFW_MIG_STATE_RUNNING);
	dev->mig.bytes = 0;
	dev->mig.mem_bytes = 0;
	dev_dc_close(dev, "device reset");
	if (dev->mig.iface->reset)
		dev->mig.iface->reset(dev);
}

void dev_mig_client_gone(struct vfmig_dev *dev)
{
	dev_dc_close(dev, "the client went away");
	if (dev->mig.iface->client_gone)
		dev->mig.iface->client_gone(dev);
}

void dev_mig_fini(struct vfmig_dev *dev)
{
	if (dev->mig.iface->fini)
		dev->mig.iface->fini(dev);
}

/* ---- choosing the interface ---- */

/* Every interface vfmig_dev_set_mig_interface can pick. */
static const struct dev_mig_iface *const ifaces[] = {
	&dev_mig_v2,
	&dev_mig_region,
};

static const struct dev_mig_iface *iface_find(int iface)
{
	for (size_t i = 0; i < sizeof(ifaces) / sizeof(ifaces[0]); i++)
		if (ifaces[i]->iface == iface)
			return ifaces[i];
	return NULL;
}

VFMIG_EXPORT int vfmig_dev_set_mig_interface(vfmig_dev *dev,
					     enum vfmig_dev_mig_interface iface)
{
	const struct dev_mig_iface *to, *from;
	int r;

	to = dev ? iface_find((int)iface) : NULL;
	if (!to || (to->needs_mig && !dev_mig_supported(dev)))
		return -EINVAL;
	if (dev->conn_fd >= 0 || dev->mig.state != VFW_MIG_STATE_RUNNING)
		return -EBUSY;
	from = dev->mig.iface;
	if (to == from)
		return 0;
	r = to->init ? to->init(dev) : 0;
	if (r < 0)
		return r; /* init left nothing behind; from is still in use */
	if (from->fini)
		from->fini(dev);
	dev->mig.iface = to;
	DEV_LOG(dev, VFW_LOG_INFO, "migration interface: %s", to->name);
	return 0;
}

/* ---- DEVICE_FEATURE and MIG_DATA_* ---- */

int dev_cmd_feature(struct vfmig_dev *dev, struct vfw_msg *msg)
{
	const uint32_t gs = VFW_FEATURE_GET | VFW_FEATURE_SET;
	const struct dev_mig_iface *mi = dev->mig.iface;
	struct dev_feat_req c = { .dev = dev, .msg = msg };

	memcpy(&c.f, msg->payload, sizeof(c.f));
	c.data = msg->payload + sizeof(c.f);
	c.len = msg->len - sizeof(c.f);
	if (c.f.argsz < sizeof(c.f) ||
	    (c.f.flags & ~(VFW_FEATURE_MASK | gs | VFW_FEATURE_PROBE)) ||
	    !(c.f.flags & (gs | VFW_FEATURE_PROBE)))
		return -EINVAL;
	if ((c.f.flags & gs) == gs && !(c.f.flags & VFW_FEATURE_PROBE))
		return -EINVAL;
	c.index = c.f.flags & VFW_FEATURE_MASK;
	/* Only the data channel comes with an fd (closed on release). */
	if (msg->nfds && c.index != VFW_FEATURE_VFMIG_DATA_CHANNEL)
		return -EINVAL;
	if (!mi->feature) {
		DEV_LOG(dev, VFW_LOG_DEBUG,
			"DEVICE_FEATURE %u: %s interface in use", c.index,
			mi->name);
		return -ENOTSUP;
	}
	return mi->feature(&c);
}

int dev_cmd_mig_data(struct vfmig_dev *dev, struct vfw_msg *msg)
{
	const struct dev_mig_iface *mi = dev->mig.iface;

	if (!mi->mig_data)
		return -ENOTSUP; /* the interface moves the data elsewhere */
	return mi->mig_data(dev, msg);
}

/* ---- the save and load streams ---- */

int dev_mig_save_chunk(struct vfmig_dev *dev, uint8_t *buf, size_t len,
		       size_t *got)
{
	*got = 0;
	if (!vfw_mig_state_saving(dev->mig.state))
		return -EINVAL;
	while (*got < len) {
		ssize_t n = dev->ops.mig_save(dev, dev->priv, buf + *got,
					      len - *got);
		if (n < 0)
			return n >= -4095 ? (int)n : -EIO;
		if (n == 0)
			break;
		if ((size_t)n > len - *got) /* a broken device */
			return -EIO;
		*got += (size_t)n;
	}
	dev->mig.bytes += *got;
	return 0;
}

int dev_mig_load_chunk(struct vfmig_dev *dev, const uint8_t *buf,
		       size_t len)
{
	ssize_t n;

	if (dev->mig.state != VFW_MIG_STATE_RESUMING)
		return -EINVAL;
	if (len) {
		n = dev->ops.mig_load(dev, dev->priv, buf, len);
		if (n < 0)
			return n >= -4095 ? (int)n : -EIO;
		if ((size_t)n != len) {
			DEV_LOG(dev, VFW_LOG_WARNING,
				"load: device took %zd of %zu bytes", n, len);
			return -EINVAL;
		}
	}
	dev->mig.bytes += len;
	return 0;
}
