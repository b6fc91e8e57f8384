/* SPDX-License-Identifier: MIT */
/*
 * DEVICE_GET_REGION_IO_FDS: the ioeventfds a device offers for a region,
 * fetched and checked (vmm.h). The check is pure (vmm_parse_io_fds), so
 * that a unit test and a fuzz target drive it without a device.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define ENT_SIZE sizeof(struct vfw_sub_region_ioeventfd)
#define HDR_SIZE sizeof(struct vfw_region_io_fds_request)

static int bad(const char **why, const char *what)
{
	*why = what;
	return -EPROTO;
}

int vmm_parse_io_fds(const uint8_t *buf, size_t len, uint32_t index,
		     uint32_t asked, uint64_t region_size, size_t nfds,
		     struct vfmig_vmm_ioeventfd *out, size_t max,
		     uint32_t *need, const char **why)
{
	struct vfw_region_io_fds_request h;
	bool used[VFW_MAX_FDS_PER_MSG] = { false };

	*why = NULL;
	if (len < HDR_SIZE)
		return bad(why, "reply shorter than its 16-byte header");
	memcpy(&h, buf, sizeof(h));
	if (h.flags != 0)
		return bad(why, "reply flags are not 0");
	if (h.index != index)
		return bad(why, "reply index is not the region asked for");
	if (h.count > (UINT32_MAX - HDR_SIZE) / ENT_SIZE ||
	    h.argsz != HDR_SIZE + h.count * ENT_SIZE)
		return bad(why, "reply argsz is not 16 + count x 40 bytes");
	if (h.argsz > asked) {
		/* The header of a longer reply: ask again with its argsz. */
		if (len != HDR_SIZE || nfds)
			return bad(why, "a reply beyond our argsz carries "
					"sub-regions or fds");
		*need = h.argsz;
		return -EAGAIN;
	}
	if (len != h.argsz)
		return bad(why, "reply length is not its argsz");
	if (h.count > max)
		return -E2BIG;
	if (nfds > VFW_MAX_FDS_PER_MSG || nfds > h.count ||
	    (h.count && !nfds))
		return bad(why, "fd count does not match the sub-regions");
	for (uint32_t i = 0; i < h.count; i++) {
		struct vfw_sub_region_ioeventfd e;

		memcpy(&e, buf + HDR_SIZE + i * ENT_SIZE, sizeof(e));
		if (e.type != VFW_IO_FD_TYPE_IOEVENTFD)
			return bad(why, "a sub-region is not an ioeventfd "
					"(type 0)");
		if (e.flags & ~VFW_IO_FD_FLAG_DATAMATCH)
			return bad(why, "a sub-region has flags other than "
					"DATAMATCH (PIO or unknown)");
		if (e.padding)
			return bad(why, "a sub-region's padding is not 0");
		if (e.size != 1 && e.size != 2 && e.size != 4 && e.size != 8)
			return bad(why, "a sub-region's size is not 1, 2, 4 "
					"or 8");
		if (e.offset > region_size || e.size > region_size - e.offset)
			return bad(why, "a sub-region lies outside the region");
		if ((e.flags & VFW_IO_FD_FLAG_DATAMATCH) && e.size < 8 &&
		    e.datamatch >> (8 * e.size))
			return bad(why, "a sub-region's datamatch does not fit "
					"its size");
		if (e.fd_index >= nfds)
			return bad(why, "a sub-region's fd_index names no fd "
					"received");
		used[e.fd_index] = true;
		out[i] = (struct vfmig_vmm_ioeventfd){
			.offset = e.offset,
			.size = (uint32_t)e.size,
			.flags = e.flags & VFW_IO_FD_FLAG_DATAMATCH
					 ? VFMIG_VMM_IOEVENTFD_DATAMATCH
					 : 0,
			.datamatch = e.flags & VFW_IO_FD_FLAG_DATAMATCH
					     ? e.datamatch
					     : 0,
			.fd = (int)e.fd_index,
		};
	}
	for (size_t f = 0; f < nfds; f++)
		if (!used[f])
			return bad(why, "an fd received is named by no "
					"sub-region");
	return (int)h.count;
}

void vfmig_vmm_ioeventfds_release(struct vfmig_vmm_ioeventfd *e, size_t n)
{
	for (size_t i = 0; e && i < n; i++) {
		if (e[i].fd >= 0)
			close(e[i].fd);
		e[i].fd = -1;
	}
}

static int io_fds_call(vfmig_vmm_dev *dev, uint32_t index, uint32_t argsz,
		       uint64_t region_size, struct vfmig_vmm_ioeventfd *out,
		       size_t max, uint32_t *need)
{
	struct vfw_region_io_fds_request req = { .argsz = argsz,
						 .index = index };
	struct iovec iov = { &req, sizeof(req) };
	struct vfw_msg reply;
	const char *why;
	int n, r;

	r = vmm_call(dev, VFW_CMD_DEVICE_GET_REGION_IO_FDS, &iov, 1, NULL, 0,
		     &reply);
	if (r < 0)
		return r;
	n = vmm_parse_io_fds(reply.payload, reply.len, index, argsz,
			     region_size, reply.nfds, out, max, need, &why);
	if (n == -EPROTO)
		vfw_log(&dev->log, VFW_LOG_WARNING,
			"DEVICE_GET_REGION_IO_FDS for region %u refused: %s",
			index, why);
	/* Each entry gets an fd of its own (entries may share one). */
	for (int i = 0; i < n; i++) {
		int fd = dup(reply.fds[out[i].fd]);
		if (fd < 0) {
			r = -errno;
			for (int u = 0; u < i; u++)
				close(out[u].fd);
			n = r;
			break;
		}
		out[i].fd = fd;
	}
	vfw_msg_release(&reply);
	return n;
}

int vfmig_vmm_dev_get_region_io_fds(vfmig_vmm_dev *dev, uint32_t index,
				    uint64_t region_size,
				    struct vfmig_vmm_ioeventfd *out, size_t max)
{
	uint32_t need = 0;
	size_t cap = max < VMM_MAX_FDS ? max : VMM_MAX_FDS;
	int r;

	if (!out && max)
		return -EINVAL;
	r = vmm_lock_live(dev);
	if (r < 0)
		return r;
	/* First the header alone (argsz 16): a device with sub-regions
	 * answers with the argsz and count it needs, then we ask for them. */
	r = io_fds_call(dev, index, HDR_SIZE, region_size, out, cap, &need);
	if (r == -EAGAIN)
		r = (need - HDR_SIZE) / ENT_SIZE > cap
			    ? -E2BIG
			    : io_fds_call(dev, index, need, region_size, out,
					  cap, &need);
	if (r == -EAGAIN) /* it asked for more again */
		r = -EPROTO;
	vmm_unlock(dev);
	return r;
}
