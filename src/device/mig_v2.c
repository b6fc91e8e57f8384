/* SPDX-License-Identifier: MIT */
/*
 * The v2 device-state interface, the table dev_mig_v2 (struct dev_mig_iface,
 * internal.h) every device starts with: DEVICE_FEATURE MIGRATION,
 * MIG_DEVICE_STATE (GET, and SET through dev_mig_goto), DMA_LOGGING_START /
 * STOP / REPORT (dirty.c), and when negotiated the size estimates
 * MIG_DATA_SIZE and VFMIG_PRECOPY_INFO; MIG_DATA_READ / MIG_DATA_WRITE over
 * the save/load chunk helpers; and the offer of the size-estimate extension
 * in VERSION. The state machine and the sessions are migration.c's, which
 * also checked the DEVICE_FEATURE header before calling here.
 *
 * A device that does not migrate (ops version 1, or mig_flags 0) has this
 * interface too: every feature is then ENOTSUP, MIG_DATA_* EINVAL and the
 * extension is not offered.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "protocol/migfsm.h"

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
	/* The wire's flags only (VFMIG_DEV_MIG_F_NO_DIRTY_LOG is ours). */
	uint64_t flags = c->dev->ops.mig_flags &
			 (VFMIG_DEV_MIG_F_STOP_COPY | VFMIG_DEV_MIG_F_P2P |
			  VFMIG_DEV_MIG_F_PRE_COPY);

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
	r = dev_mig_goto(c->dev, s.device_state);
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

static int feat_data_channel(struct dev_feat_req *c)
{
	uint64_t loaded;
	int r;

	if (c->f.flags & VFW_FEATURE_GET) {
		if (c->msg->nfds)
			return -EINVAL;
		r = dev_dc_load_sync(c->dev, &loaded);
		return r < 0 ? r : reply_get(c, &loaded, sizeof(loaded));
	}
	if (c->msg->nfds != 1)
		return -EINVAL;
	r = dev_dc_attach(c->dev, vfw_msg_take_fd(c->msg, 0), c->data, c->len);
	if (r < 0)
		return r;
	return reply_set(c, c->data, c->len);
}

/* Features, the operations each allows, and which negotiated extension
 * each needs (EXT_INFO: size estimates, EXT_DC: the data channel). */
enum { EXT_NONE, EXT_INFO, EXT_DC };
static const struct {
	uint32_t index;
	uint32_t ops;
	int ext;
	int (*fn)(struct dev_feat_req *c);
} features[] = {
	{ VFW_FEATURE_MIGRATION, VFW_FEATURE_GET, EXT_NONE, feat_migration },
	{ VFW_FEATURE_MIG_DEVICE_STATE, VFW_FEATURE_GET | VFW_FEATURE_SET,
	  EXT_NONE, feat_state },
	{ VFW_FEATURE_DMA_LOGGING_START, VFW_FEATURE_SET, EXT_NONE,
	  feat_log_start },
	{ VFW_FEATURE_DMA_LOGGING_STOP, VFW_FEATURE_SET, EXT_NONE,
	  feat_log_stop },
	{ VFW_FEATURE_DMA_LOGGING_REPORT, VFW_FEATURE_GET, EXT_NONE,
	  feat_log_report },
	{ VFW_FEATURE_MIG_DATA_SIZE, VFW_FEATURE_GET, EXT_INFO,
	  feat_data_size },
	{ VFW_FEATURE_VFMIG_PRECOPY_INFO, VFW_FEATURE_GET, EXT_INFO,
	  feat_precopy_info },
	{ VFW_FEATURE_VFMIG_DATA_CHANNEL, VFW_FEATURE_GET | VFW_FEATURE_SET,
	  EXT_DC, feat_data_channel },
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
		if ((features[i].ext == EXT_INFO && !dev->mig.info_version) ||
		    (features[i].ext == EXT_DC && !dev->mig.dc_version) ||
		    (features[i].fn == feat_log_start ||
		     features[i].fn == feat_log_stop ||
		     features[i].fn == feat_log_report
			     ? dev->ops.mig_flags & VFMIG_DEV_MIG_F_NO_DIRTY_LOG
			     : 0))
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

/* ---- MIG_DATA_READ / MIG_DATA_WRITE ---- */

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
	if (dev_dc_active(dev)) {
		DEV_LOG(dev, VFW_LOG_WARNING, "%s while a data channel is "
			"attached: refused", vfw_command_name(msg->hdr.command));
		return -EBUSY;
	}
	if (msg->hdr.command == VFW_CMD_MIG_DATA_READ)
		return mig_read(dev, msg, m);
	return mig_write(dev, msg, m);
}

/* ---- VERSION, and the table ---- */

static uint32_t v2_info_offer(const struct vfmig_dev *dev, uint32_t client)
{
	if (!client || !dev_mig_supported(dev) || !dev->ops.mig_estimate)
		return 0;
	return client < VFW_MIG_INFO_VERSION ? client : VFW_MIG_INFO_VERSION;
}

static uint32_t v2_dc_offer(const struct vfmig_dev *dev, uint32_t client)
{
	if (!client || !dev_mig_supported(dev))
		return 0;
	return client < VFW_DATA_CHANNEL_VERSION ? client
						 : VFW_DATA_CHANNEL_VERSION;
}

const struct dev_mig_iface dev_mig_v2 = {
	.iface = VFMIG_DEV_MIG_IFACE_V2,
	.name = "v2",
	.num_regions = VFW_PCI_NUM_REGIONS,
	.feature = v2_feature,
	.mig_data = v2_mig_data,
	.info_offer = v2_info_offer,
	.dc_offer = v2_dc_offer,
};
