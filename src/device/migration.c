/* SPDX-License-Identifier: MIT */
/*
 * Device-side migration: the v2 state machine walked arc by arc with the
 * shared next-hop table (protocol/migfsm.c), the save and load sessions,
 * command gating while the device is stopped, and the choice of the
 * device-state interface the client is offered (struct dev_mig_iface,
 * internal.h): DEVICE_FEATURE, MIG_DATA_*, the size-estimate offer in
 * VERSION, DEVICE_RESET and teardown call through dev->mig.iface.
 *
 * Sessions (docs/device-migration.md) are tied to the state: a save
 * session opens on entering PRE_COPY or STOP_COPY from outside the saving
 * group and closes on leaving the group; a load session lives exactly while
 * in RESUMING. The device learns both from its mig_transition arcs.
 *
 * Both interfaces drive the same machine: the v2 one, dev_mig_v2 at the
 * end of this file (DEVICE_FEATURE: MIGRATION, MIG_DEVICE_STATE, DMA
 * logging, the size-estimate extension; MIG_DATA_READ / MIG_DATA_WRITE),
 * and the region-based one, dev_mig_region in mig_region.c, through
 * dev_mig_goto and the save/load chunk helpers.
 */
#include <errno.h>
#include <stdlib.h>
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
 * are allowed too. DMA_MAP/UNMAP, SET_IRQS, REGION_WRITE_MULTI and
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
	dev->mig.state = to;
	DEV_LOG(dev, VFW_LOG_INFO, "migration state %s -> %s",
		vfw_mig_state_name(from), vfw_mig_state_name(to));
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
	if (dev->mig.iface->reset)
		dev->mig.iface->reset(dev);
}

void dev_mig_client_gone(struct vfmig_dev *dev)
{
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

/* ---- DEVICE_FEATURE ---- */

/* GET reply: header with argsz = total, then data. */
static int reply_get(struct dev_feat_req *c, const void *data, size_t len)
{
	struct vfw_device_feature h = { (uint32_t)(sizeof(h) + len), c->f.flags };
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)data, len } };

	if (c->f.argsz < sizeof(h) + len)
		return -EINVAL;
	return dev_reply_fds(c->dev, &c->msg->hdr, iov, len ? 2 : 1, NULL, 0);
}

/* SET reply: the request payload echoed, with data replaced by `data`. */
static int reply_set(struct dev_feat_req *c, const void *data, size_t len)
{
	struct iovec iov[2] = { { &c->f, sizeof(c->f) }, { (void *)data, len } };

	return dev_reply_fds(c->dev, &c->msg->hdr, iov, len ? 2 : 1, NULL, 0);
}

static int feat_migration(struct dev_feat_req *c)
{
	uint64_t flags = c->dev->ops.mig_flags;

	return reply_get(c, &flags, sizeof(flags));
}

static int feat_state(struct dev_feat_req *c)
{
	struct vfw_mig_device_state s = { 0 };
	int r;

	if (c->f.flags & VFW_FEATURE_GET) {
		s.device_state = c->dev->mig.state;
		s.data_fd = UINT32_MAX;
		return reply_get(c, &s, sizeof(s));
	}
	if (c->len < sizeof(s))
		return -EINVAL;
	memcpy(&s, c->data, sizeof(s));
	r = mig_set_state(c->dev, s.device_state);
	if (r < 0)
		return r;
	s.device_state = c->dev->mig.state;
	return reply_set(c, &s, sizeof(s)); /* data_fd echoed as it came */
}

static int feat_log_start(struct dev_feat_req *c)
{
	struct vfw_dma_logging_start st;
	uint64_t pg;
	uint8_t *echo;
	int r = dev_dlog_start(c->dev, c->data, c->len, &pg);

	if (r < 0)
		return r;
	echo = malloc(c->len);
	if (!echo) {
		dev_dlog_stop(c->dev);
		return -ENOMEM;
	}
	memcpy(echo, c->data, c->len);
	memcpy(&st, echo, sizeof(st));
	st.page_size = pg;
	memcpy(echo, &st, sizeof(st));
	r = reply_set(c, echo, c->len);
	free(echo);
	return r;
}

static int feat_log_stop(struct dev_feat_req *c)
{
	dev_dlog_stop(c->dev); /* any payload is ignored (lvu sends one) */
	return reply_set(c, c->data, c->len);
}

static int feat_log_report(struct dev_feat_req *c)
{
	struct vfw_dma_logging_report rq;
	const size_t fixed = sizeof(c->f) + sizeof(rq);
	uint64_t *bm;
	size_t bytes;
	int r;

	if (c->len < sizeof(rq) || c->f.argsz < fixed)
		return -EINVAL;
	memcpy(&rq, c->data, sizeof(rq));
	/* The bitmap is bounded by the client's argsz and by our own transfer
	 * limit (1 MiB: 32 GiB of 4 KiB pages per REPORT). */
	uint64_t max = c->f.argsz - fixed;
	if (max > c->dev->max_xfer)
		max = c->dev->max_xfer;
	r = dev_dlog_report(c->dev, &rq, max, &bm, &bytes);
	if (r < 0)
		return r;
	struct vfw_device_feature h = { (uint32_t)(fixed + bytes), c->f.flags };
	struct iovec iov[3] = { { &h, sizeof(h) }, { &rq, sizeof(rq) },
				{ bm, bytes } };
	r = dev_reply_fds(c->dev, &c->msg->hdr, iov, 3, NULL, 0);
	free(bm);
	return r;
}

static int estimate(struct vfmig_dev *dev, struct vfmig_dev_mig_estimate *e)
{
	int r;

	memset(e, 0, sizeof(*e));
	r = dev->ops.mig_estimate(dev, dev->priv, e);
	return r < 0 ? r : 0;
}

static int feat_data_size(struct dev_feat_req *c)
{
	struct vfmig_dev_mig_estimate e;
	struct vfw_mig_data_size d;
	int r;

	if (c->dev->mig.state == VFW_MIG_STATE_ERROR)
		return -EINVAL;
	r = estimate(c->dev, &e);
	if (r < 0)
		return r;
	d.stop_copy_length = e.stop_copy_bytes;
	return reply_get(c, &d, sizeof(d));
}

static int feat_precopy_info(struct dev_feat_req *c)
{
	struct vfmig_dev_mig_estimate e;
	struct vfw_precopy_info d;
	uint32_t s = c->dev->mig.state;
	int r;

	if (s != VFW_MIG_STATE_PRE_COPY && s != VFW_MIG_STATE_PRE_COPY_P2P)
		return -EINVAL;
	r = estimate(c->dev, &e);
	if (r < 0)
		return r;
	d.initial_bytes = e.initial_bytes;
	d.dirty_bytes = e.dirty_bytes;
	return reply_get(c, &d, sizeof(d));
}

/* Features, the operations each allows, and whether it needs the
 * negotiated size-estimate extension. */
static const struct {
	uint32_t index;
	uint32_t ops;
	bool ext;
	int (*fn)(struct dev_feat_req *c);
} features[] = {
	{ VFW_FEATURE_MIGRATION, VFW_FEATURE_GET, false, feat_migration },
	{ VFW_FEATURE_MIG_DEVICE_STATE, VFW_FEATURE_GET | VFW_FEATURE_SET,
	  false, feat_state },
	{ VFW_FEATURE_DMA_LOGGING_START, VFW_FEATURE_SET, false, feat_log_start },
	{ VFW_FEATURE_DMA_LOGGING_STOP, VFW_FEATURE_SET, false, feat_log_stop },
	{ VFW_FEATURE_DMA_LOGGING_REPORT, VFW_FEATURE_GET, false,
	  feat_log_report },
	{ VFW_FEATURE_MIG_DATA_SIZE, VFW_FEATURE_GET, true, feat_data_size },
	{ VFW_FEATURE_VFMIG_PRECOPY_INFO, VFW_FEATURE_GET, true,
	  feat_precopy_info },
};

static int v2_feature(struct dev_feat_req *c)
{
	const uint32_t gs = VFW_FEATURE_GET | VFW_FEATURE_SET;
	struct vfmig_dev *dev = c->dev;

	if (!dev_mig_supported(dev)) {
		DEV_LOG(dev, VFW_LOG_DEBUG,
			"DEVICE_FEATURE %u: device does not migrate", c->index);
		return -ENOTSUP;
	}
	for (size_t i = 0; i < sizeof(features) / sizeof(features[0]); i++) {
		if (features[i].index != c->index)
			continue;
		if (features[i].ext && !dev->mig.info_version)
			break;
		if ((c->f.flags & gs) & ~features[i].ops)
			return -EINVAL;
		if (c->f.flags & VFW_FEATURE_PROBE)
			return reply_set(c, c->data, c->len);
		return features[i].fn(c);
	}
	DEV_LOG(dev, VFW_LOG_DEBUG, "DEVICE_FEATURE %u: not supported",
		c->index);
	return -ENOTSUP;
}

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
	if (!mi->feature) {
		DEV_LOG(dev, VFW_LOG_DEBUG,
			"DEVICE_FEATURE %u: %s interface in use", c.index,
			mi->name);
		return -ENOTSUP;
	}
	return mi->feature(&c);
}

/* ---- MIG_DATA_READ / MIG_DATA_WRITE ---- */

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

static int mig_read(struct vfmig_dev *dev, struct vfw_msg *msg,
		    struct vfw_mig_data m)
{
	uint8_t *buf;
	size_t got = 0;
	int r;

	if (!vfw_mig_state_saving(dev->mig.state) || m.size > dev->max_xfer ||
	    m.argsz < sizeof(m) + (uint64_t)m.size)
		return -EINVAL;
	buf = malloc(m.size ? m.size : 1);
	if (!buf)
		return -ENOMEM;
	r = dev_mig_save_chunk(dev, buf, m.size, &got);
	if (r == 0) {
		struct vfw_mig_data h = { (uint32_t)(sizeof(h) + got),
					  (uint32_t)got };
		struct iovec iov[2] = { { &h, sizeof(h) }, { buf, got } };
		r = dev_reply_fds(dev, &msg->hdr, iov, got ? 2 : 1, NULL, 0);
	}
	free(buf);
	return r;
}

static int mig_write(struct vfmig_dev *dev, struct vfw_msg *msg,
		     struct vfw_mig_data m)
{
	int r;

	if (dev->mig.state != VFW_MIG_STATE_RESUMING ||
	    m.size != msg->len - sizeof(m) ||
	    m.argsz < sizeof(m) + (uint64_t)m.size)
		return -EINVAL;
	r = dev_mig_load_chunk(dev, msg->payload + sizeof(m), m.size);
	return r < 0 ? r : dev_reply(dev, &msg->hdr, NULL, 0);
}

static int v2_mig_data(struct vfmig_dev *dev, struct vfw_msg *msg)
{
	struct vfw_mig_data m;

	memcpy(&m, msg->payload, sizeof(m));
	if (!dev_mig_supported(dev))
		return -EINVAL;
	if (msg->hdr.command == VFW_CMD_MIG_DATA_READ)
		return mig_read(dev, msg, m);
	return mig_write(dev, msg, m);
}

int dev_cmd_mig_data(struct vfmig_dev *dev, struct vfw_msg *msg)
{
	const struct dev_mig_iface *mi = dev->mig.iface;

	if (!mi->mig_data)
		return -ENOTSUP; /* the interface moves the data elsewhere */
	return mi->mig_data(dev, msg);
}

/* ---- the v2 interface ---- */

static uint32_t v2_info_offer(const struct vfmig_dev *dev, uint32_t client)
{
	if (!client || !dev_mig_supported(dev) || !dev->ops.mig_estimate)
		return 0;
	return client < VFW_MIG_INFO_VERSION ? client : VFW_MIG_INFO_VERSION;
}

const struct dev_mig_iface dev_mig_v2 = {
	.iface = VFMIG_DEV_MIG_IFACE_V2,
	.name = "v2",
	.num_regions = VFW_PCI_NUM_REGIONS,
	.feature = v2_feature,
	.mig_data = v2_mig_data,
	.info_offer = v2_info_offer,
};
