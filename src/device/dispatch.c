/* SPDX-License-Identifier: MIT */
/*
 * Command dispatch: one table indexed by command number gives the handler,
 * the minimum payload and whether fds may come along. The small commands
 * with no other home (VERSION, GET_INFO, RESET) live here too; DEVICE_FEATURE
 * and MIG_DATA_* go to migration.c, which hands them to the migration
 * interface in use (mig_v2.c or mig_region.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int dev_reply_fds(struct vfmig_dev *dev, const struct vfw_header *req,
		  const struct iovec *iov, int iovcnt, const int *fds,
		  size_t nfds)
{
	struct vfw_header hdr = {
		.msg_id = req->msg_id,
		.command = req->command,
		.flags = VFW_FLAGS_TYPE_REPLY,
	};

	if (req->flags & VFW_FLAGS_NO_REPLY)
		return 0;
	(void)dev_send(dev, &hdr, iov, iovcnt, fds, nfds); /* logs, breaks */
	return 0;
}

int dev_reply(struct vfmig_dev *dev, const struct vfw_header *req,
	      const void *payload, size_t len)
{
	struct iovec iov = { (void *)payload, len };

	return dev_reply_fds(dev, req, &iov, len ? 1 : 0, NULL, 0);
}

void dev_reply_error(struct vfmig_dev *dev, const struct vfw_header *req,
		     int err)
{
	DEV_LOG(dev, VFW_LOG_INFO, "%s (id %u): error %d (%s)",
		vfw_command_name(req->command), req->msg_id, err,
		vfmig_dev_strerror(err));
	if (req->flags & VFW_FLAGS_NO_REPLY)
		return;
	struct vfw_header hdr = {
		.msg_id = req->msg_id,
		.command = req->command,
		.flags = VFW_FLAGS_TYPE_REPLY | VFW_FLAGS_ERROR,
		.error = (uint32_t)(err < 0 ? -err : err),
	};
	(void)dev_send(dev, &hdr, NULL, 0, NULL, 0);
}

static int cmd_version(struct vfmig_dev *dev, struct vfw_msg *msg)
{
	struct vfw_caps caps, ours;
	uint16_t major, minor;
	char err[128] = "";
	uint8_t *buf;
	size_t len;
	int r;

	if (dev->negotiated)
		return -EINVAL;
	r = vfw_version_parse(msg->payload, msg->len, &major, &minor, &caps,
			      err, sizeof(err));
	if (r < 0 || major != VFW_VERSION_MAJOR) {
		DEV_LOG(dev, VFW_LOG_ERR, "VERSION refused: %s",
			r < 0 ? err : "unsupported major version");
		dev->broken = true; /* error reply, then close */
		return r < 0 ? r : -ENOTSUP;
	}
	vfw_caps_defaults(&ours);
	ours.max_msg_fds = DEV_MAX_FDS;
	ours.max_data_xfer_size = dev->max_xfer;
	ours.max_dma_maps = DEV_MAX_DMA_MAPS;
	ours.pgsizes = DEV_PAGE_SIZE;
	ours.twin_socket = false; /* not offered: the mode stays off */
	ours.write_multiple = caps.write_multiple;
	ours.mig_info_version = dev_mig_info_offer(dev, caps.mig_info_version);
	ours.data_channel_version =
		dev_mig_dc_offer(dev, caps.data_channel_version);
	buf = vfw_version_build(VFW_VERSION_MAJOR,
				minor < VFW_VERSION_MINOR ? minor : VFW_VERSION_MINOR,
				&ours, false, &len);
	if (!buf)
		return -ENOMEM;
	dev->peer = caps;
	dev->negotiated = true;
	dev->mig.info_version = ours.mig_info_version;
	dev->mig.dc_version = ours.data_channel_version;
	DEV_LOG(dev, VFW_LOG_INFO,
		"client negotiated %u.%u, max_data_xfer_size %llu, max_msg_fds %u",
		major, minor, (unsigned long long)caps.max_data_xfer_size,
		caps.max_msg_fds);
	r = dev_reply(dev, &msg->hdr, buf, len);
	free(buf);
	if (dev->ops.client_changed)
		dev->ops.client_changed(dev, dev->priv, true);
	return r;
}

static int cmd_get_info(struct vfmig_dev *dev, struct vfw_msg *msg)
{
	struct vfw_device_info info;

	memcpy(&info, msg->payload, sizeof(info));
	if (info.argsz < sizeof(info))
		return -EINVAL;
	info = (struct vfw_device_info){
		.argsz = sizeof(info),
		.flags = VFW_DEVICE_FLAGS_RESET | VFW_DEVICE_FLAGS_PCI,
		.num_regions = dev_num_regions(dev),
		.num_irqs = VFW_PCI_NUM_IRQS,
	};
	return dev_reply(dev, &msg->hdr, &info, sizeof(info));
}

static int cmd_reset(struct vfmig_dev *dev, struct vfw_msg *msg)
{
	int r = 0;

	if (msg->len)
		return -EINVAL;
	if (dev->ops.reset)
		r = dev->ops.reset(dev, dev->priv);
	if (r < 0)
		return r;
	dev_pci_init(&dev->pci, &dev->desc);
	dev_msix_reset(&dev->msix);
	dev_irq_reset(dev);
	dev_irq_drop_held(dev);
	dev_dlog_stop(dev);
	dev_mig_reset(dev);
	for (unsigned int i = 0; i < VFMIG_DEV_IRQ_NUM; i++)
		if (dev->irqs[i].count)
			dev_irq_notify(dev, i);
	DEV_LOG(dev, VFW_LOG_INFO, "device reset");
	return dev_reply(dev, &msg->hdr, NULL, 0);
}

static int cmd_server_only(struct vfmig_dev *dev, struct vfw_msg *msg)
{
	(void)dev;
	(void)msg;
	return -EINVAL; /* DMA_READ/WRITE go server to client only */
}

struct cmd_entry {
	int (*fn)(struct vfmig_dev *dev, struct vfw_msg *msg);
	size_t min_len;
	bool takes_fds;
};

static const struct cmd_entry cmd_table[VFW_CMD_MAX] = {
	[VFW_CMD_VERSION] = { cmd_version, sizeof(struct vfw_version), false },
	[VFW_CMD_DMA_MAP] = { dev_cmd_dma_map, sizeof(struct vfw_dma_map), true },
	[VFW_CMD_DMA_UNMAP] = { dev_cmd_dma_unmap, sizeof(struct vfw_dma_unmap), false },
	[VFW_CMD_DEVICE_GET_INFO] = { cmd_get_info, sizeof(struct vfw_device_info), false },
	[VFW_CMD_DEVICE_GET_REGION_INFO] = { dev_cmd_get_region_info,
					     sizeof(struct vfw_region_info), false },
	[VFW_CMD_DEVICE_GET_REGION_IO_FDS] = { dev_cmd_get_region_io_fds,
					       sizeof(struct vfw_region_io_fds_request), false },
	[VFW_CMD_DEVICE_GET_IRQ_INFO] = { dev_cmd_get_irq_info, sizeof(struct vfw_irq_info), false },
	[VFW_CMD_DEVICE_SET_IRQS] = { dev_cmd_set_irqs, sizeof(struct vfw_irq_set), true },
	[VFW_CMD_REGION_READ] = { dev_cmd_region_rw, sizeof(struct vfw_region_access), false },
	[VFW_CMD_REGION_WRITE] = { dev_cmd_region_rw, sizeof(struct vfw_region_access), false },
	[VFW_CMD_DMA_READ] = { cmd_server_only, 0, false },
	[VFW_CMD_DMA_WRITE] = { cmd_server_only, 0, false },
	[VFW_CMD_DEVICE_RESET] = { cmd_reset, 0, false },
	[VFW_CMD_REGION_WRITE_MULTI] = { dev_cmd_write_multi, sizeof(uint64_t), false },
	/* fds only with VFMIG_DATA_CHANNEL; dev_cmd_feature checks */
	[VFW_CMD_DEVICE_FEATURE] = { dev_cmd_feature, sizeof(struct vfw_device_feature), true },
	[VFW_CMD_MIG_DATA_READ] = { dev_cmd_mig_data, sizeof(struct vfw_mig_data), false },
	[VFW_CMD_MIG_DATA_WRITE] = { dev_cmd_mig_data, sizeof(struct vfw_mig_data), false },
};

static int check_and_run(struct vfmig_dev *dev, struct vfw_msg *msg)
{
	unsigned int cmd = msg->hdr.command;
	const struct cmd_entry *e;

	if (!dev->negotiated && cmd != VFW_CMD_VERSION) {
		DEV_LOG(dev, VFW_LOG_ERR, "%s before VERSION: closing",
			vfw_command_name(cmd));
		dev->broken = true;
		return -EINVAL;
	}
	if (cmd >= VFW_CMD_MAX || !cmd_table[cmd].fn)
		return -ENOTSUP;
	if (!dev_mig_cmd_allowed(dev, cmd)) {
		DEV_LOG(dev, VFW_LOG_WARNING, "%s refused: device is in %s",
			vfw_command_name(cmd),
			dev->mig.state == VFW_MIG_STATE_STOP ? "STOP"
							     : "STOP_COPY");
		return -EINVAL;
	}
	e = &cmd_table[cmd];
	if (msg->len < e->min_len)
		return -EINVAL;
	if (msg->nfds && !e->takes_fds)
		return -EINVAL; /* the fds are closed by vfw_msg_release */
	return e->fn(dev, msg);
}

void dev_dispatch(struct vfmig_dev *dev, struct vfw_msg *msg)
{
	int r;

	if ((msg->hdr.flags & VFW_FLAGS_TYPE_MASK) != VFW_FLAGS_TYPE_COMMAND) {
		/* The device has no request outstanding here (a DMA exchange
		 * takes its reply itself): a correct client cannot send one. */
		DEV_LOG(dev, VFW_LOG_ERR,
			"client sent a reply (id %u, %s) to no request: "
			"protocol error; closing",
			msg->hdr.msg_id, vfw_command_name(msg->hdr.command));
		dev->broken = true;
		vfw_msg_release(msg);
		return;
	}
	DEV_LOG(dev, VFW_LOG_DEBUG, "<- %s id %u size %u fds %zu",
		vfw_command_name(msg->hdr.command), msg->hdr.msg_id,
		msg->hdr.msg_size, msg->nfds);
	r = check_and_run(dev, msg);
	if (r < 0 && !dev->negotiated)
		dev->broken = true; /* failed VERSION: error reply, close */
	if (r < 0)
		dev_reply_error(dev, &msg->hdr, -r);
	vfw_msg_release(msg);
}
