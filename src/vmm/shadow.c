/* SPDX-License-Identifier: MIT */
/*
 * The VMM's shadow of a device: what the migration engine needs to save
 * about a device (device info, region layout, IRQ info, config space and
 * the MSI-X table) captured while the device runs, and kept current by the
 * VMM's own writes. Some servers refuse DEVICE_GET_INFO, GET_REGION_INFO
 * and even region access once a device left RUNNING, so nothing the engine
 * saves after the stop may depend on asking the device (docs/vfio-user.md,
 * "Interoperability").
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define CAP_ID_MSIX 0x11u
#define MSIX_MAX_VECTORS 2048u

static uint32_t cfg_get(const struct vmm_shadow *s, uint32_t off, unsigned n)
{
	uint32_t v = 0;

	for (unsigned i = 0; i < n; i++)
		if (off + i < s->cfg_size)
			v |= (uint32_t)s->cfg[off + i] << (8 * i);
	return v;
}

/* Where the MSI-X table lives, from the shadowed config space. Leaves
 * msix_len 0 when there is none or it does not fit its BAR. */
static void find_msix(struct vmm_shadow *s)
{
	unsigned hops = 0;

	s->msix_len = 0;
	if (s->cfg_size < 256 || !(cfg_get(s, 0x06, 2) & 0x10))
		return;
	for (uint32_t p = cfg_get(s, 0x34, 1) & 0xfc; p >= 0x40 && hops < 48;
	     p = cfg_get(s, p + 1, 1) & 0xfc, hops++) {
		if (cfg_get(s, p, 1) != CAP_ID_MSIX)
			continue;
		uint32_t ctrl = cfg_get(s, p + 2, 2), tab = cfg_get(s, p + 4, 4);
		uint32_t bar = tab & 7, nv = (ctrl & 0x7ffu) + 1;
		uint64_t off = tab & ~7u, len = (uint64_t)nv * 16;

		if (bar >= 6 || bar >= s->nregions || nv > MSIX_MAX_VECTORS ||
		    !vfw_range_ok(off, len, s->regions[bar].size))
			return;
		s->msix_bar = bar;
		s->msix_off = off;
		s->msix_len = len;
		return;
	}
}

static void shadow_free(struct vmm_shadow *s)
{
	free(s->cfg);
	free(s->msix);
	memset(s, 0, sizeof(*s));
}

void vmm_shadow_forget(vfmig_vmm_dev *dev)
{
	shadow_free(&dev->shadow);
}

/* Config space and MSI-X table into s (layout already in s). */
static int capture_contents(vfmig_vmm_dev *dev, struct vmm_shadow *s)
{
	uint64_t size;
	int r;

	if (!(s->info.flags & VFMIG_VMM_DEV_FLAG_PCI) ||
	    s->nregions <= VFMIG_VMM_PCI_CONFIG)
		return 0;
	size = s->regions[VFMIG_VMM_PCI_CONFIG].size;
	if (size != 256 && size != 4096)
		return 0; /* not a config space we understand: none shadowed */
	free(s->cfg);
	s->cfg = malloc(size);
	if (!s->cfg)
		return -ENOMEM;
	s->cfg_size = (uint32_t)size;
	r = vmm_region_io_locked(dev, VFMIG_VMM_PCI_CONFIG, 0, s->cfg, NULL,
				 size);
	if (r < 0)
		return r;
	find_msix(s);
	free(s->msix);
	s->msix = NULL;
	if (!s->msix_len)
		return 0;
	s->msix = malloc(s->msix_len);
	if (!s->msix)
		return -ENOMEM;
	return vmm_region_io_locked(dev, s->msix_bar, s->msix_off, s->msix,
				    NULL, s->msix_len);
}

static int capture_locked(vfmig_vmm_dev *dev)
{
	struct vmm_shadow s = { 0 };
	int r = vmm_dev_info_locked(dev, &s.info);

	if (r < 0)
		return r;
	s.nregions = s.info.num_regions < VMM_SHADOW_MAX_REGIONS
			     ? s.info.num_regions
			     : VMM_SHADOW_MAX_REGIONS;
	for (uint32_t i = 0; i < s.nregions; i++) {
		struct vfmig_vmm_region_info ri;
		r = vmm_region_info_locked(dev, i, &ri);
		if (r < 0 && dev->fd < 0)
			goto fail;
		if (r == 0)
			s.regions[i] = (struct vmm_shadow_region){
				.flags = ri.flags, .size = ri.size };
		vfmig_vmm_region_info_release(&ri);
	}
	s.nirqs = s.info.num_irqs < VMM_SHADOW_MAX_IRQS ? s.info.num_irqs
							: VMM_SHADOW_MAX_IRQS;
	for (uint32_t i = 0; i < s.nirqs; i++) {
		r = vmm_irq_info_locked(dev, i, &s.irqs[i]);
		if (r < 0 && dev->fd < 0)
			goto fail;
		if (r < 0)
			s.irqs[i] = (struct vfmig_vmm_irq_info){ 0 };
	}
	r = capture_contents(dev, &s);
	if (r < 0)
		goto fail;
	s.valid = true;
	shadow_free(&dev->shadow);
	dev->shadow = s;
	vfw_log(&dev->log, VFW_LOG_DEBUG,
		"shadow: %u regions, %u IRQ indexes, config %u bytes, "
		"MSI-X table %llu bytes", s.nregions, s.nirqs, s.cfg_size,
		(unsigned long long)s.msix_len);
	return 0;
fail:
	shadow_free(&s);
	return r;
}

int vfmig_vmm_dev_shadow_capture(vfmig_vmm_dev *dev)
{
	int r = vmm_lock_live(dev);

	if (r < 0)
		return r;
	r = capture_locked(dev);
	vmm_unlock(dev);
	return r;
}

void vmm_shadow_after_reset(vfmig_vmm_dev *dev)
{
	int r;

	if (!dev->shadow.valid)
		return;
	r = capture_contents(dev, &dev->shadow);
	if (r < 0) {
		vfw_log(&dev->log, VFW_LOG_WARNING,
			"shadow: re-reading config space after reset: %s"
			" (shadow dropped)", vfmig_vmm_strerror(r));
		shadow_free(&dev->shadow);
	}
}

/* The part of [off, off + len) that falls in [base, base + size), widened
 * to whole dwords inside it. False when they do not meet. */
static bool overlap(uint64_t off, size_t len, uint64_t base, uint64_t size,
		    uint64_t *from, uint64_t *to)
{
	uint64_t end = off + len;

	if (!len || end <= base || off >= base + size)
		return false;
	*from = (off > base ? off : base);
	*to = (end < base + size ? end : base + size);
	*from = base + ((*from - base) & ~3ull);
	*to = base + (((*to - base) + 3) & ~3ull);
	if (*to > base + size)
		*to = base + size;
	return true;
}

/* Copy of what the device now holds in [from, to) into dst (the shadow at
 * that range). If it cannot be read back, what was written stands in. */
static void refresh(vfmig_vmm_dev *dev, uint32_t index, uint64_t from,
		    uint64_t to, uint8_t *dst, uint64_t off, const uint8_t *buf,
		    size_t len)
{
	uint8_t tmp[256];
	int r = -EINVAL;

	if (to - from <= sizeof(tmp))
		r = vmm_region_io_locked(dev, index, from, tmp, NULL,
					 (size_t)(to - from));
	if (r == 0) {
		memcpy(dst, tmp, (size_t)(to - from));
		return;
	}
	for (uint64_t a = from; a < to; a++)
		if (a >= off && a < off + len)
			dst[a - from] = buf[a - off];
}

void vmm_shadow_note_write(vfmig_vmm_dev *dev, uint32_t index, uint64_t off,
			   const uint8_t *buf, size_t len)
{
	struct vmm_shadow *s = &dev->shadow;
	uint64_t from, to;

	if (!s->valid || dev->fd < 0)
		return;
	if (index == VFMIG_VMM_PCI_CONFIG && s->cfg &&
	    overlap(off, len, 0, s->cfg_size, &from, &to))
		refresh(dev, index, from, to, s->cfg + from, off, buf, len);
	if (s->msix && index == s->msix_bar &&
	    overlap(off, len, s->msix_off, s->msix_len, &from, &to))
		refresh(dev, index, from, to, s->msix + (from - s->msix_off),
			off, buf, len);
}

/* ---- reading the shadow (no device I/O; works on a broken link) ---- */

static int shadow_lock(vfmig_vmm_dev *dev)
{
	if (!dev)
		return -EINVAL;
	pthread_mutex_lock(&dev->lock);
	if (dev->shadow.valid)
		return 0;
	pthread_mutex_unlock(&dev->lock);
	return -ENODATA;
}

int vfmig_vmm_dev_shadow_info(vfmig_vmm_dev *dev,
			      struct vfmig_vmm_dev_info *info)
{
	int r = info ? shadow_lock(dev) : -EINVAL;

	if (r < 0)
		return r;
	*info = dev->shadow.info;
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

int vfmig_vmm_dev_shadow_region(vfmig_vmm_dev *dev, uint32_t index,
				uint32_t *flags, uint64_t *size)
{
	int r = shadow_lock(dev);

	if (r < 0)
		return r;
	if (index >= dev->shadow.nregions) {
		r = -EINVAL;
	} else {
		if (flags)
			*flags = dev->shadow.regions[index].flags;
		if (size)
			*size = dev->shadow.regions[index].size;
	}
	pthread_mutex_unlock(&dev->lock);
	return r;
}

int vfmig_vmm_dev_shadow_irq(vfmig_vmm_dev *dev, uint32_t index,
			     struct vfmig_vmm_irq_info *info)
{
	int r = info ? shadow_lock(dev) : -EINVAL;

	if (r < 0)
		return r;
	if (index >= dev->shadow.nirqs)
		r = -EINVAL;
	else
		*info = dev->shadow.irqs[index];
	pthread_mutex_unlock(&dev->lock);
	return r;
}

int vfmig_vmm_dev_shadow_read(vfmig_vmm_dev *dev, uint32_t index,
			      uint64_t offset, void *buf, size_t len)
{
	const struct vmm_shadow *s;
	int r = (buf || !len) ? shadow_lock(dev) : -EINVAL;

	if (r < 0)
		return r;
	s = &dev->shadow;
	if (index == VFMIG_VMM_PCI_CONFIG && s->cfg &&
	    vfw_range_ok(offset, len, s->cfg_size))
		memcpy(buf, s->cfg + offset, len);
	else if (s->msix && index == s->msix_bar && offset >= s->msix_off &&
		 vfw_range_ok(offset - s->msix_off, len, s->msix_len))
		memcpy(buf, s->msix + (offset - s->msix_off), len);
	else
		r = -ENOENT;
	pthread_mutex_unlock(&dev->lock);
	return r;
}
