/* SPDX-License-Identifier: MIT */
/*
 * Device and region information (with the capability chain), region
 * access by message, and mapping a region's mmap-able parts.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

int vmm_dev_info_locked(vfmig_vmm_dev *dev, struct vfmig_vmm_dev_info *info)
{
	struct vfw_device_info di = { .argsz = sizeof(di) };
	struct iovec iov = { &di, sizeof(di) };
	struct vfw_msg reply;
	int r;

	r = vmm_call(dev, VFW_CMD_DEVICE_GET_INFO, &iov, 1, NULL, 0, &reply);
	if (r < 0)
		return r;
	if (reply.len != sizeof(di))
		return vmm_proto_error(dev, &reply, "DEVICE_GET_INFO reply size");
	memcpy(&di, reply.payload, sizeof(di));
	vfw_msg_release(&reply);
	*info = (struct vfmig_vmm_dev_info){ di.flags, di.num_regions,
					     di.num_irqs };
	return 0;
}

int vfmig_vmm_dev_get_info(vfmig_vmm_dev *dev, struct vfmig_vmm_dev_info *info)
{
	int r;

	if (!info)
		return -EINVAL;
	r = vmm_lock_live(dev);
	if (r < 0)
		return r;
	r = vmm_dev_info_locked(dev, info);
	vmm_unlock(dev);
	return r;
}

/* ---- Capability chain ---- */

static int cap_sparse(const uint8_t *buf, size_t len, size_t off,
		      struct vfmig_vmm_region_info *info, const char **why)
{
	struct vfw_region_info_cap_sparse_mmap sp;
	size_t room;

	if (info->has_sparse)
		return *why = "duplicate SPARSE_MMAP capability", -EPROTO;
	if (len - off < sizeof(sp))
		return *why = "truncated SPARSE_MMAP capability", -EPROTO;
	memcpy(&sp, buf + off, sizeof(sp));
	room = (len - off - sizeof(sp)) / sizeof(struct vfw_sparse_mmap_area);
	if (sp.nr_areas > room)
		return *why = "SPARSE_MMAP nr_areas beyond the reply", -EPROTO;
	info->areas = calloc(sp.nr_areas ? sp.nr_areas : 1,
			     sizeof(*info->areas));
	if (!info->areas)
		return -ENOMEM;
	info->has_sparse = true;
	for (uint32_t i = 0; i < sp.nr_areas; i++) {
		struct vfw_sparse_mmap_area a;
		memcpy(&a, buf + off + sizeof(sp) + i * sizeof(a), sizeof(a));
		if (!vfw_range_ok(a.offset, a.size, info->size))
			return *why = "sparse area outside the region", -EPROTO;
		info->areas[i] = (struct vfmig_vmm_area){ a.offset, a.size };
	}
	info->nr_areas = sp.nr_areas;
	return 0;
}

static int cap_type(const uint8_t *buf, size_t len, size_t off,
		    struct vfmig_vmm_region_info *info, const char **why)
{
	struct vfw_region_info_cap_type t;

	if (len - off < sizeof(t))
		return *why = "truncated TYPE capability", -EPROTO;
	memcpy(&t, buf + off, sizeof(t));
	info->has_type = true;
	info->type = t.type;
	info->subtype = t.subtype;
	return 0;
}

static int cap_msix(const uint8_t *buf, size_t len, size_t off,
		    struct vfmig_vmm_region_info *info, const char **why)
{
	(void)buf, (void)len, (void)off, (void)why;
	info->msix_mappable = true;
	return 0;
}

typedef int (*cap_fn)(const uint8_t *buf, size_t len, size_t off,
		      struct vfmig_vmm_region_info *info, const char **why);

static const cap_fn cap_table[] = {
	[VFW_REGION_INFO_CAP_SPARSE_MMAP] = cap_sparse,
	[VFW_REGION_INFO_CAP_TYPE] = cap_type,
	[VFW_REGION_INFO_CAP_MSIX_MAPPABLE] = cap_msix,
};

int vmm_parse_region_caps(const uint8_t *buf, size_t len,
			  struct vfmig_vmm_region_info *info,
			  const char **why)
{
	struct vfw_region_info ri;
	size_t hops = 0;
	uint32_t off;

	*why = NULL;
	if (len < sizeof(ri))
		return *why = "region info shorter than 32 bytes", -EPROTO;
	memcpy(&ri, buf, sizeof(ri));
	if (!(ri.flags & VFW_REGION_INFO_FLAG_CAPS) || ri.cap_offset == 0)
		return 0;
	/* Each capability takes at least a header, so a chain with more
	 * hops than headers fit in the reply must loop. */
	for (off = ri.cap_offset; off != 0; hops++) {
		struct vfw_info_cap_header h;
		int r;

		if (hops > len / sizeof(h))
			return *why = "capability chain loops", -EPROTO;
		if (off < sizeof(ri) || len - sizeof(h) < off)
			return *why = "capability offset outside the reply",
			       -EPROTO;
		memcpy(&h, buf + off, sizeof(h));
		if (h.id < sizeof(cap_table) / sizeof(cap_table[0]) &&
		    cap_table[h.id]) {
			r = cap_table[h.id](buf, len, off, info, why);
			if (r < 0)
				return r;
		}
		off = h.next;
	}
	return 0;
}

/* ---- DEVICE_GET_REGION_INFO ---- */

/* One request with argsz; on success *reply holds a reply of >= 32 bytes. */
static int region_info_call(vfmig_vmm_dev *dev, uint32_t index,
			    uint32_t argsz, struct vfw_msg *reply,
			    struct vfw_region_info *ri)
{
	struct vfw_region_info req = { .argsz = argsz, .index = index };
	struct iovec iov = { &req, sizeof(req) };
	int r;

	r = vmm_call(dev, VFW_CMD_DEVICE_GET_REGION_INFO, &iov, 1, NULL, 0,
		     reply);
	if (r < 0)
		return r;
	/* A reply longer than argsz (a device that does not truncate) is
	 * tolerated: it is bounded by VMM_MAX_MSG and parsed as it is. */
	if (reply->len < sizeof(*ri))
		return vmm_proto_error(dev, reply, "region info reply size");
	memcpy(ri, reply->payload, sizeof(*ri));
	if (ri->index != index)
		return vmm_proto_error(dev, reply, "region info index echo");
	return 0;
}

static int region_info_locked(vfmig_vmm_dev *dev, uint32_t index,
			      struct vfmig_vmm_region_info *info)
{
	struct vfw_region_info ri;
	struct vfw_msg reply;
	uint32_t argsz = VMM_REGION_INFO_FIRST;
	const char *why;
	int r;

	r = region_info_call(dev, index, argsz, &reply, &ri);
	if (r == 0 && ri.argsz > argsz) {
		vfw_msg_release(&reply);
		if (ri.argsz > VMM_MAX_XFER)
			return vmm_proto_error(dev, NULL,
					       "region info argsz too large");
		argsz = ri.argsz;
		r = region_info_call(dev, index, argsz, &reply, &ri);
		if (r == 0 && ri.argsz > argsz)
			return vmm_proto_error(dev, &reply,
					       "region info argsz grew");
	}
	if (r < 0)
		return r;
	info->index = index;
	info->flags = ri.flags & (VFMIG_VMM_REGION_READ |
				  VFMIG_VMM_REGION_WRITE |
				  VFMIG_VMM_REGION_MMAP);
	info->size = ri.size;
	info->mmap_offset = ri.offset;
	r = vmm_parse_region_caps(reply.payload, reply.len, info, &why);
	if (r == -EPROTO)
		return vmm_proto_error(dev, &reply, why);
	if (r == 0)
		info->fd = vfw_msg_take_fd(&reply, 0);
	vfw_msg_release(&reply);
	return r;
}

int vmm_region_info_locked(vfmig_vmm_dev *dev, uint32_t index,
			   struct vfmig_vmm_region_info *info)
{
	int r;

	memset(info, 0, sizeof(*info));
	info->fd = -1;
	r = region_info_locked(dev, index, info);
	if (r < 0)
		vfmig_vmm_region_info_release(info);
	return r;
}

int vfmig_vmm_dev_get_region_info(vfmig_vmm_dev *dev, uint32_t index,
				  struct vfmig_vmm_region_info *info)
{
	int r;

	if (!info)
		return -EINVAL;
	memset(info, 0, sizeof(*info));
	info->fd = -1;
	r = vmm_lock_live(dev);
	if (r < 0)
		return r;
	r = vmm_region_info_locked(dev, index, info);
	vmm_unlock(dev);
	return r;
}

void vfmig_vmm_region_info_release(struct vfmig_vmm_region_info *info)
{
	if (!info)
		return;
	if (info->fd >= 0)
		close(info->fd);
	info->fd = -1;
	free(info->areas);
	info->areas = NULL;
	info->nr_areas = 0;
	info->has_sparse = false;
}

/* ---- mmap ---- */

static int map_one(const struct vfmig_vmm_region_info *info, int prot,
		   uint64_t off, uint64_t size, struct vfmig_vmm_mapping *m)
{
	uint64_t file_off = info->mmap_offset + off;
	void *p;

	if (file_off < off || file_off > (uint64_t)INT64_MAX ||
	    size > SIZE_MAX)
		return -EOVERFLOW;
	p = mmap(NULL, (size_t)size, prot, MAP_SHARED, info->fd,
		 (off_t)file_off);
	if (p == MAP_FAILED)
		return -errno;
	*m = (struct vfmig_vmm_mapping){ p, off, size };
	return 0;
}

int vfmig_vmm_region_mmap(const struct vfmig_vmm_region_info *info, int prot,
			  struct vfmig_vmm_mapping *maps, size_t max)
{
	struct vfmig_vmm_area whole;
	const struct vfmig_vmm_area *areas = info ? info->areas : NULL;
	size_t n, made = 0;

	if (!info || info->fd < 0 || (!maps && max))
		return -EINVAL;
	if (!(info->flags & VFMIG_VMM_REGION_MMAP))
		return 0;
	n = info->nr_areas;
	if (!info->has_sparse) {
		whole = (struct vfmig_vmm_area){ 0, info->size };
		areas = &whole;
		n = info->size ? 1 : 0;
	}
	if (n > max || n > INT32_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (areas[i].size == 0)
			continue;
		int r = map_one(info, prot, areas[i].offset, areas[i].size,
				&maps[made]);
		if (r < 0) {
			vfmig_vmm_region_munmap(maps, made);
			return r;
		}
		made++;
	}
	return (int)made;
}

void vfmig_vmm_region_munmap(struct vfmig_vmm_mapping *maps, size_t n)
{
	for (size_t i = 0; maps && i < n; i++) {
		if (maps[i].addr && maps[i].size)
			munmap(maps[i].addr, (size_t)maps[i].size);
		maps[i].addr = NULL;
	}
}

/* ---- REGION_READ / REGION_WRITE ---- */

static bool echo_ok(const struct vfw_msg *reply,
		    const struct vfw_region_access *req)
{
	struct vfw_region_access a;

	memcpy(&a, reply->payload, sizeof(a));
	return a.offset == req->offset && a.region == req->region &&
	       a.count == req->count;
}

static int read_chunk(vfmig_vmm_dev *dev, uint32_t index, uint64_t offset,
		      uint8_t *buf, uint32_t count)
{
	struct vfw_region_access a = { offset, index, count };
	struct iovec iov = { &a, sizeof(a) };
	struct vfw_msg reply;
	int r = vmm_call(dev, VFW_CMD_REGION_READ, &iov, 1, NULL, 0, &reply);

	if (r < 0)
		return r;
	if (reply.len != sizeof(a) + (size_t)count || !echo_ok(&reply, &a))
		return vmm_proto_error(dev, &reply, "REGION_READ reply does "
				       "not match the request");
	memcpy(buf, reply.payload + sizeof(a), count);
	vfw_msg_release(&reply);
	return 0;
}

static int write_chunk(vfmig_vmm_dev *dev, uint32_t index, uint64_t offset,
		       const uint8_t *buf, uint32_t count)
{
	struct vfw_region_access a = { offset, index, count };
	struct iovec iov[2] = { { &a, sizeof(a) }, { (void *)buf, count } };
	struct vfw_msg reply;
	int r = vmm_call(dev, VFW_CMD_REGION_WRITE, iov, 2, NULL, 0, &reply);

	if (r < 0)
		return r;
	if (reply.len != sizeof(a) || !echo_ok(&reply, &a))
		return vmm_proto_error(dev, &reply, "REGION_WRITE reply does "
				       "not match the request");
	vfw_msg_release(&reply);
	return 0;
}

int vmm_region_io_locked(vfmig_vmm_dev *dev, uint32_t index, uint64_t offset,
			 uint8_t *rbuf, const uint8_t *wbuf, size_t len)
{
	size_t chunk = vmm_xfer_chunk(dev), done = 0;
	int r = 0;

	if (offset + len < offset || (len && !rbuf && !wbuf) || !chunk)
		return -EINVAL;
	while (r == 0 && done < len) {
		uint32_t n = (uint32_t)(len - done < chunk ? len - done : chunk);
		r = rbuf ? read_chunk(dev, index, offset + done, rbuf + done, n)
			 : write_chunk(dev, index, offset + done, wbuf + done,
				       n);
		done += n;
	}
	return r;
}

static int region_io(vfmig_vmm_dev *dev, uint32_t index, uint64_t offset,
		     uint8_t *rbuf, const uint8_t *wbuf, size_t len)
{
	int r;

	if (offset + len < offset || (len && !rbuf && !wbuf))
		return -EINVAL;
	r = vmm_lock_live(dev);
	if (r < 0)
		return r;
	r = vmm_region_io_locked(dev, index, offset, rbuf, wbuf, len);
	if (r == 0 && wbuf)
		vmm_shadow_note_write(dev, index, offset, wbuf, len);
	vmm_unlock(dev);
	return r;
}

int vfmig_vmm_dev_region_read(vfmig_vmm_dev *dev, uint32_t index,
			      uint64_t offset, void *buf, size_t len)
{
	return region_io(dev, index, offset, buf, NULL, len);
}

int vfmig_vmm_dev_region_write(vfmig_vmm_dev *dev, uint32_t index,
			       uint64_t offset, const void *buf, size_t len)
{
	return region_io(dev, index, offset, NULL, buf, len);
}
