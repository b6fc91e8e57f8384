/* SPDX-License-Identifier: MIT */
/*
 * Regions: REGION_READ / REGION_WRITE / REGION_WRITE_MULTI routing (config
 * space, MSI-X table/PBA, mappable BAR memory, the device's callback),
 * GET_REGION_INFO with its sparse-mmap capability (GET_REGION_IO_FDS is
 * ioeventfd.c's).
 * How many regions there are, and the ones after the nine PCI regions (9..12
 * of the region-based migration interface, mig_region.c), belong to the
 * migration interface in use: num_regions and the region_* operations of
 * dev->mig.iface (struct dev_mig_iface, internal.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- access routing ---- */

static int config_access(struct vfmig_dev *dev, uint64_t off, void *buf,
			 size_t len, bool is_write)
{
	uint16_t msi = 0, msix = 0, msi2, msix2;
	int r;

	if (!is_write)
		return dev_pci_read(&dev->pci, off, buf, len);
	if (dev->pci.msi_cap)
		msi = dev_pci_get16(&dev->pci, dev->pci.msi_cap + 2u);
	if (dev->pci.msix_cap)
		msix = dev_pci_get16(&dev->pci, dev->pci.msix_cap + 2u);
	r = dev_pci_write(&dev->pci, off, buf, len);
	if (r < 0)
		return r;
	msi2 = dev->pci.msi_cap ? dev_pci_get16(&dev->pci, dev->pci.msi_cap + 2u) : 0;
	msix2 = dev->pci.msix_cap ? dev_pci_get16(&dev->pci, dev->pci.msix_cap + 2u) : 0;
	dev_irq_deliver_pending(dev);
	if (msi != msi2)
		dev_irq_notify(dev, VFMIG_DEV_IRQ_MSI);
	if (msix != msix2)
		dev_irq_notify(dev, VFMIG_DEV_IRQ_MSIX);
	return 0;
}

/* A piece of a BAR that is not MSI-X: memory or the device callback. */
static int bar_plain(struct vfmig_dev *dev, unsigned int bar, uint64_t off,
		     uint8_t *buf, size_t len, bool is_write)
{
	uint8_t *mem = dev->bars[bar].mem;

	if (mem) {
		if (is_write)
			memcpy(mem + off, buf, len);
		else
			memcpy(buf, mem + off, len);
		return 0;
	}
	return dev->ops.region_access(dev, dev->priv, bar, off, buf, len,
				      is_write);
}

static int bar_access(struct vfmig_dev *dev, unsigned int bar, uint64_t off,
		      uint8_t *buf, size_t len, bool is_write)
{
	bool has_msix = dev->msix.vectors && dev->desc.msix_bar == bar;

	if (!vfw_range_ok(off, len, dev->desc.bars[bar].size) ||
	    !dev->desc.bars[bar].size)
		return -EINVAL;
	while (len) {
		uint64_t next = UINT64_MAX, claim = 0;
		size_t n;
		int r;

		if (has_msix)
			claim = dev_msix_claim(&dev->msix, off, &next);
		n = (size_t)(claim ? (claim < len ? claim : len)
				   : (next < len ? next : len));
		if (claim) {
			r = dev_msix_access(&dev->msix, off, buf, n, is_write);
			if (r == 0 && is_write)
				dev_irq_deliver_pending(dev);
		} else {
			r = bar_plain(dev, bar, off, buf, n, is_write);
		}
		if (r < 0)
			return r;
		off += n;
		buf += n;
		len -= n;
	}
	return 0;
}

int dev_region_access(struct vfmig_dev *dev, uint32_t region, uint64_t off,
		      void *buf, size_t len, bool is_write)
{
	if (region == VFW_PCI_CONFIG_REGION)
		return config_access(dev, off, buf, len, is_write);
	if (region < VFMIG_DEV_MAX_BARS)
		return bar_access(dev, region, off, buf, len, is_write);
	if (region >= VFW_PCI_NUM_REGIONS && region < dev_num_regions(dev))
		return dev->mig.iface->region_access(dev, region, off, buf, len,
						     is_write);
	return -EINVAL;
}

uint32_t dev_num_regions(const struct vfmig_dev *dev)
{
	return dev->mig.iface->num_regions;
}

int dev_region_fd(const struct vfmig_dev *dev, uint32_t index)
{
	if (index < VFMIG_DEV_MAX_BARS)
		return dev->bars[index].memfd;
	if (index >= VFW_PCI_NUM_REGIONS && index < dev_num_regions(dev))
		return dev->mig.iface->region_fd(dev, index);
	return -1;
}

int dev_cmd_region_rw(struct vfmig_dev *dev, struct vfw_msg *msg)
{
	bool is_write = msg->hdr.command == VFW_CMD_REGION_WRITE;
	struct vfw_region_access a;
	struct iovec iov[2];
	uint8_t *data;
	int r;

	memcpy(&a, msg->payload, sizeof(a));
	if (a.count == 0 || a.count > dev->max_xfer ||
	    msg->len != sizeof(a) + (is_write ? a.count : 0))
		return -EINVAL;
	if (is_write) {
		r = dev_region_access(dev, a.region, a.offset,
				      msg->payload + sizeof(a), a.count, true);
		return r < 0 ? r : dev_reply(dev, &msg->hdr, &a, sizeof(a));
	}
	data = malloc(a.count);
	if (!data)
		return -ENOMEM;
	r = dev_region_access(dev, a.region, a.offset, data, a.count, false);
	if (r == 0) {
		iov[0] = (struct iovec){ &a, sizeof(a) };
		iov[1] = (struct iovec){ data, a.count };
		r = dev_reply_fds(dev, &msg->hdr, iov, 2, NULL, 0);
	}
	free(data);
	return r;
}

int dev_cmd_write_multi(struct vfmig_dev *dev, struct vfw_msg *msg)
{
	struct vfw_write_multi_entry e;
	uint64_t cnt;

	memcpy(&cnt, msg->payload, sizeof(cnt));
	if (cnt == 0 || cnt > VFW_WRITE_MULTI_MAX ||
	    msg->len != sizeof(cnt) + cnt * sizeof(e))
		return -EINVAL;
	for (uint64_t i = 0; i < cnt; i++) {
		memcpy(&e, msg->payload + sizeof(cnt) + i * sizeof(e),
		       sizeof(e));
		if (e.count == 0 || e.count > VFW_WRITE_MULTI_DATA_MAX)
			return -EINVAL;
		int r = dev_region_access(dev, e.region, e.offset, e.data,
					  e.count, true);
		if (r < 0)
			return r;
	}
	return dev_reply(dev, &msg->hdr, &cnt, sizeof(cnt));
}

/* ---- GET_REGION_INFO ---- */

#define MAX_HOLES (VFMIG_DEV_MAX_EXCLUDES + 2)

/* Mappable areas of a BAR: [0, size) minus excluded ranges rounded out to
 * pages (the MSI-X table and PBA always excluded). Returns the count. */
static size_t sparse_areas(const struct vfmig_dev *dev, unsigned int bar,
			   struct vfw_sparse_mmap_area *out)
{
	const struct vfmig_dev_bar *b = &dev->desc.bars[bar];
	struct vfw_sparse_mmap_area hole[MAX_HOLES];
	const uint64_t pg = DEV_PAGE_SIZE;
	size_t nh = 0, n = 0;
	uint64_t pos = 0;

	for (uint32_t i = 0; i < b->n_exclude; i++)
		hole[nh++] = (struct vfw_sparse_mmap_area){ b->exclude[i].offset,
							    b->exclude[i].size };
	if (dev->msix.vectors && dev->desc.msix_bar == bar) {
		hole[nh++] = (struct vfw_sparse_mmap_area){ dev->msix.table_off,
							    dev->msix.table_len };
		hole[nh++] = (struct vfw_sparse_mmap_area){ dev->msix.pba_off,
							    dev->msix.pba_len };
	}
	/* round out to pages, then sort by start (tiny: insertion sort) */
	for (size_t i = 0; i < nh; i++) {
		uint64_t s = hole[i].offset / pg * pg;
		uint64_t e = (hole[i].offset + hole[i].size + pg - 1) / pg * pg;
		hole[i] = (struct vfw_sparse_mmap_area){ s, e - s };
		for (size_t j = i; j > 0 && hole[j].offset < hole[j - 1].offset; j--) {
			struct vfw_sparse_mmap_area t = hole[j];
			hole[j] = hole[j - 1];
			hole[j - 1] = t;
		}
	}
	for (size_t i = 0; i < nh; i++) {
		if (hole[i].offset > pos)
			out[n++] = (struct vfw_sparse_mmap_area){ pos,
								  hole[i].offset - pos };
		if (hole[i].offset + hole[i].size > pos)
			pos = hole[i].offset + hole[i].size;
	}
	if (pos < b->size)
		out[n++] = (struct vfw_sparse_mmap_area){ pos, b->size - pos };
	return n;
}

static void base_info(const struct vfmig_dev *dev, uint32_t index,
		      struct vfw_region_info *ri)
{
	memset(ri, 0, sizeof(*ri));
	ri->index = index;
	if (index == VFW_PCI_CONFIG_REGION)
		ri->size = dev->pci.size;
	else if (index < VFMIG_DEV_MAX_BARS)
		ri->size = dev->desc.bars[index].size;
	if (ri->size)
		ri->flags = VFW_REGION_INFO_FLAG_READ | VFW_REGION_INFO_FLAG_WRITE;
}

/* A reply too short for the capability chain is the bare struct with the
 * full argsz, so that the client asks again. It says nothing it cannot
 * back: no FLAG_CAPS (strict clients refuse FLAG_CAPS without a chain),
 * and no fd, hence no FLAG_MMAP either (the specification sends the fd
 * whenever MMAP is set). The retry gets all three. */
static void truncate_info(struct vfw_region_info *ri, bool *with_fd)
{
	ri->flags &= ~(VFW_REGION_INFO_FLAG_CAPS | VFW_REGION_INFO_FLAG_MMAP);
	ri->cap_offset = 0;
	*with_fd = false;
}

int dev_region_info_build(const struct vfmig_dev *dev, uint32_t index,
			  uint32_t argsz, uint8_t **out, size_t *outlen,
			  bool *with_fd)
{
	/* The capability chain: one sparse-mmap cap with its areas, or one
	 * TYPE cap. */
	uint8_t caps[sizeof(struct vfw_region_info_cap_sparse_mmap) +
		     (MAX_HOLES + 1) * sizeof(struct vfw_sparse_mmap_area)];
	struct vfw_sparse_mmap_area areas[MAX_HOLES + 1];
	struct vfw_region_info ri;
	size_t n = 0, caps_len = 0, full;
	uint8_t *buf;

	*with_fd = false;
	if (index >= dev_num_regions(dev) || argsz < sizeof(ri))
		return -EINVAL;
	if (index >= VFW_PCI_NUM_REGIONS) {
		struct vfw_region_info_cap_type type;
		static_assert(sizeof(type) <= sizeof(caps), "caps buffer");
		dev->mig.iface->region_info(dev, index, &ri, &type, with_fd);
		memcpy(caps, &type, sizeof(type));
		caps_len = sizeof(type);
	} else {
		base_info(dev, index, &ri);
		if (index < VFMIG_DEV_MAX_BARS && dev->bars[index].mem)
			n = sparse_areas(dev, index, areas);
		if (n) {
			struct vfw_region_info_cap_sparse_mmap cap = {
				.header = { .id = VFW_REGION_INFO_CAP_SPARSE_MMAP,
					    .version = 1 },
				.nr_areas = (uint32_t)n,
			};
			ri.flags |= VFW_REGION_INFO_FLAG_MMAP |
				    VFW_REGION_INFO_FLAG_CAPS;
			memcpy(caps, &cap, sizeof(cap));
			memcpy(caps + sizeof(cap), areas, n * sizeof(areas[0]));
			caps_len = sizeof(cap) + n * sizeof(areas[0]);
			*with_fd = true;
		}
	}
	full = sizeof(ri) + caps_len;
	ri.argsz = (uint32_t)full;
	ri.cap_offset = caps_len ? sizeof(ri) : 0;
	if (argsz < full) {
		truncate_info(&ri, with_fd);
		full = sizeof(ri);
	}
	buf = malloc(full);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, &ri, sizeof(ri));
	memcpy(buf + sizeof(ri), caps, full - sizeof(ri));
	*out = buf;
	*outlen = full;
	return 0;
}

int dev_cmd_get_region_info(struct vfmig_dev *dev, struct vfw_msg *msg)
{
	struct vfw_region_info req;
	uint8_t *buf;
	size_t len;
	bool with_fd;
	int r, fd;

	memcpy(&req, msg->payload, sizeof(req));
	r = dev_region_info_build(dev, req.index, req.argsz, &buf, &len,
				  &with_fd);
	if (r < 0)
		return r;
	/* The fd goes along whenever MMAP is set, if the client takes fds. */
	if (with_fd && dev->peer.max_msg_fds < 1) {
		struct vfw_region_info *ri = (struct vfw_region_info *)buf;
		ri->flags &= ~VFW_REGION_INFO_FLAG_MMAP;
		with_fd = false;
	}
	fd = with_fd ? dev_region_fd(dev, req.index) : -1;
	r = dev_reply_fds(dev, &msg->hdr, &(struct iovec){ buf, len }, 1,
			  &fd, with_fd ? 1 : 0);
	free(buf);
	return r;
}
