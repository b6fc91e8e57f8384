/* SPDX-License-Identifier: MIT */
/*
 * ioeventfds the device offers (device.h, vfmig_dev_add_ioeventfd): the
 * table, the DEVICE_GET_REGION_IO_FDS reply, and serving the kicks in the
 * event loop by calling the device's region_access for the register.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal.h"

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

VFMIG_EXPORT int vfmig_dev_add_ioeventfd(vfmig_dev *dev, unsigned int bar,
					 uint64_t offset, uint32_t size,
					 uint32_t flags, uint64_t datamatch)
{
	struct dev_ioefd *e;
	uint64_t bsize;

	if (!dev || bar >= VFMIG_DEV_MAX_BARS)
		return -EINVAL;
	if (dev->conn_fd >= 0)
		return -EBUSY;
	bsize = dev->desc.bars[bar].size;
	if (!bsize || (dev->desc.bars[bar].flags & VFMIG_DEV_BAR_IO) ||
	    dev->bars[bar].mem)
		return -EINVAL;
	if ((size != 1 && size != 2 && size != 4 && size != 8) ||
	    offset % size || offset >= bsize || size > bsize - offset ||
	    (flags & ~VFMIG_DEV_IOEVENTFD_DATAMATCH))
		return -EINVAL;
	if ((flags & VFMIG_DEV_IOEVENTFD_DATAMATCH) && size < 8 &&
	    datamatch >> (8 * size))
		return -EINVAL; /* a value the register cannot hold */
	if (dev->msix.vectors && dev->desc.msix_bar == bar &&
	    (overlaps(offset, size, dev->msix.table_off, dev->msix.table_len) ||
	     overlaps(offset, size, dev->msix.pba_off, dev->msix.pba_len)))
		return -EINVAL;
	for (uint32_t i = 0; i < dev->n_ioefd; i++)
		if (dev->ioefd[i].bar == bar &&
		    overlaps(offset, size, dev->ioefd[i].offset,
			     dev->ioefd[i].size))
			return -EINVAL;
	if (dev->n_ioefd >= VFMIG_DEV_MAX_IOEVENTFDS)
		return -ENOSPC;
	e = &dev->ioefd[dev->n_ioefd];
	e->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (e->fd < 0)
		return -errno;
	e->bar = bar;
	e->offset = offset;
	e->size = size;
	e->flags = flags;
	e->datamatch = flags & VFMIG_DEV_IOEVENTFD_DATAMATCH ? datamatch : 0;
	return (int)dev->n_ioefd++;
}

bool dev_ioefd_live(const struct vfmig_dev *dev)
{
	return dev->mig.state == VFW_MIG_STATE_RUNNING ||
	       dev->mig.state == VFW_MIG_STATE_PRE_COPY;
}

VFMIG_EXPORT int vfmig_dev_get_ioeventfd_fds(const vfmig_dev *dev, int *fds,
					     unsigned int max)
{
	unsigned int n = 0;

	if (!dev || (!fds && max))
		return -EINVAL;
	if (!dev_ioefd_live(dev))
		return 0;
	for (uint32_t i = 0; i < dev->n_ioefd && n < max; i++)
		if (dev->ioefd[i].fd >= 0)
			fds[n++] = dev->ioefd[i].fd;
	return (int)n;
}

VFMIG_EXPORT bool vfmig_dev_write_is_kick(const vfmig_dev *dev)
{
	return dev && dev->in_kick;
}

int dev_ioefd_serve(struct vfmig_dev *dev)
{
	int served = 0;

	if (!dev_ioefd_live(dev))
		return 0;
	for (uint32_t i = 0; i < dev->n_ioefd; i++) {
		struct dev_ioefd *e = &dev->ioefd[i];
		uint8_t buf[8];
		uint64_t cnt;

		if (e->fd < 0 || read(e->fd, &cnt, sizeof(cnt)) != sizeof(cnt))
			continue; /* EAGAIN: not signalled */
		if (dev->conn_fd < 0 || !dev->negotiated)
			continue; /* no client: nobody rang; dropped */
		for (uint32_t b = 0; b < e->size; b++)
			buf[b] = (uint8_t)(e->datamatch >> (8 * b));
		dev->in_kick = true;
		int r = dev->ops.region_access(dev, dev->priv, e->bar,
					       e->offset, buf, e->size, true);
		dev->in_kick = false;
		if (r < 0)
			DEV_LOG(dev, VFW_LOG_WARNING,
				"ioeventfd %u (BAR %u offset 0x%llx): the "
				"device refused the kick: %s", i, e->bar,
				(unsigned long long)e->offset,
				vfmig_dev_strerror(r));
		served++;
	}
	return served;
}

void dev_ioefd_renew(struct vfmig_dev *dev)
{
	for (uint32_t i = 0; i < dev->n_ioefd; i++) {
		struct dev_ioefd *e = &dev->ioefd[i];
		if (e->fd >= 0)
			close(e->fd);
		e->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (e->fd < 0)
			DEV_LOG(dev, VFW_LOG_ERR, "ioeventfd %u (BAR %u offset "
				"0x%llx): eventfd: %s; not offered any more", i,
				e->bar, (unsigned long long)e->offset,
				strerror(errno));
	}
}

void dev_ioefd_fini(struct vfmig_dev *dev)
{
	for (uint32_t i = 0; i < dev->n_ioefd; i++)
		if (dev->ioefd[i].fd >= 0)
			close(dev->ioefd[i].fd);
	dev->n_ioefd = 0;
}

/*
 * DEVICE_GET_REGION_IO_FDS. The request's flags and count must be 0
 * (the specification: "all other fields must be zero"), index a region
 * the device has, argsz at least the four fields. An argsz too small for
 * the sub-regions gets the four fields with the full argsz and the count,
 * and no fds, so that the client asks again with enough room.
 */
int dev_cmd_get_region_io_fds(struct vfmig_dev *dev, struct vfw_msg *msg)
{
	struct vfw_region_io_fds_request req;
	struct vfw_sub_region_ioeventfd ent[VFMIG_DEV_MAX_IOEVENTFDS];
	int fds[VFMIG_DEV_MAX_IOEVENTFDS];
	uint32_t n = 0, asked;
	size_t full;

	memcpy(&req, msg->payload, sizeof(req));
	asked = req.argsz;
	if (msg->len != sizeof(req)) {
		DEV_LOG(dev, VFW_LOG_WARNING, "GET_REGION_IO_FDS: payload of "
			"%zu bytes, want %zu", msg->len, sizeof(req));
		return -EINVAL;
	}
	if (req.argsz < sizeof(req) || req.flags != 0 || req.count != 0 ||
	    req.index >= dev_num_regions(dev)) {
		DEV_LOG(dev, VFW_LOG_WARNING, "GET_REGION_IO_FDS refused: "
			"argsz %u (at least %zu), flags 0x%x and count %u "
			"(must be 0), index %u (%u regions)", req.argsz,
			sizeof(req), req.flags, req.count, req.index,
			dev_num_regions(dev));
		return -EINVAL;
	}
	for (uint32_t i = 0; i < dev->n_ioefd; i++) {
		const struct dev_ioefd *e = &dev->ioefd[i];
		if (e->bar != req.index || e->fd < 0)
			continue;
		ent[n] = (struct vfw_sub_region_ioeventfd){
			.offset = e->offset,
			.size = e->size,
			.fd_index = n,
			.type = VFW_IO_FD_TYPE_IOEVENTFD,
			.flags = e->flags & VFMIG_DEV_IOEVENTFD_DATAMATCH
					 ? VFW_IO_FD_FLAG_DATAMATCH
					 : 0,
			.datamatch = e->datamatch,
		};
		fds[n++] = e->fd;
	}
	/* A client that takes fewer fds than that gets none offered. */
	if (n > dev->peer.max_msg_fds)
		n = 0;
	full = sizeof(req) + n * sizeof(ent[0]);
	req.argsz = (uint32_t)full;
	req.count = n;
	if (asked < full)
		return dev_reply(dev, &msg->hdr, &req, sizeof(req));
	struct iovec iov[2] = { { &req, sizeof(req) },
				{ ent, n * sizeof(ent[0]) } };
	return dev_reply_fds(dev, &msg->hdr, iov, n ? 2 : 1, fds, n);
}
