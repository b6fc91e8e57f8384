/* SPDX-License-Identifier: MIT */
/*
 * The device fuzz-server feeds: its BAR0 callback starts DMA and
 * interrupts, its migration callbacks save a 300-byte stream. Shared with
 * gen-session-seeds, which records real sessions against the same device so
 * the seeds of fuzz-server and fuzz-client take the paths the targets take.
 * Include once per program.
 */
#ifndef VFMIG_FUZZ_SERVER_DEV_H
#define VFMIG_FUZZ_SERVER_DEV_H

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include <vfmig/device.h>

static int fz_access(vfmig_dev *dev, void *priv, unsigned int bar,
		     uint64_t off, void *buf, size_t len, bool is_write)
{
	uint8_t tmp[64];
	uint32_t v = 0;

	(void)priv;
	(void)bar;
	if (!is_write) {
		memset(buf, 0x5a, len);
		return 0;
	}
	memcpy(&v, buf, len < 4 ? len : 4);
	switch (off) {
	case 0:
		return vfmig_dev_dma_read(dev, 0x1000 + (v & 0xff00), tmp,
					  1 + v % sizeof(tmp));
	case 8:
		memset(tmp, 0xa5, sizeof(tmp));
		return vfmig_dev_dma_write(dev, 0x1000 + (v & 0xff00), tmp,
					   1 + v % sizeof(tmp));
	case 16:
		return vfmig_dev_irq_trigger(dev, v % VFMIG_DEV_IRQ_NUM, v >> 8);
	default:
		return 0;
	}
}

/* Migration callbacks, so MIG_DEVICE_STATE, MIG_DATA_*, DMA logging and the
 * estimate features are reachable: a 300-byte save stream per session,
 * loads accepted up to 1000 bytes, the arc into STOP_COPY from PRE_COPY
 * refused once in a while (driven by the saved byte count). */
static size_t fz_saved, fz_loaded;

static int fz_transition(vfmig_dev *dev, void *priv, uint32_t from,
			 uint32_t to)
{
	(void)dev;
	(void)priv;
	if (from == VFMIG_DEV_MIG_PRE_COPY && to == VFMIG_DEV_MIG_STOP_COPY &&
	    fz_saved % 7 == 3)
		return -EIO;
	if (to == VFMIG_DEV_MIG_STOP_COPY || to == VFMIG_DEV_MIG_PRE_COPY ||
	    to == VFMIG_DEV_MIG_RESUMING)
		fz_saved = fz_loaded = 0;
	return 0;
}

static ssize_t fz_save(vfmig_dev *dev, void *priv, void *buf, size_t len)
{
	size_t n = 300 - fz_saved < len ? 300 - fz_saved : len;

	(void)dev;
	(void)priv;
	memset(buf, (int)fz_saved, n);
	fz_saved += n;
	return (ssize_t)n;
}

static int fz_estimate(vfmig_dev *dev, void *priv,
		       struct vfmig_dev_mig_estimate *est)
{
	(void)dev;
	(void)priv;
	memset(est, 0, sizeof(*est));
	est->initial_bytes = 300 - fz_saved;
	est->stop_copy_bytes = 300;
	return 0;
}

static ssize_t fz_load(vfmig_dev *dev, void *priv, const void *buf,
		       size_t len)
{
	(void)dev;
	(void)priv;
	(void)buf;
	if (fz_loaded + len > 1000)
		return -EINVAL;
	fz_loaded += len;
	return (ssize_t)len;
}

static int fz_load_finish(vfmig_dev *dev, void *priv)
{
	(void)dev;
	(void)priv;
	return fz_loaded == 300 ? 0 : -EINVAL;
}

static const struct vfmig_dev_ops fz_ops = {
	.version = VFMIG_DEV_OPS_VERSION,
	.region_access = fz_access,
	.mig_flags = VFMIG_DEV_MIG_F_STOP_COPY | VFMIG_DEV_MIG_F_PRE_COPY,
	.mig_transition = fz_transition,
	.mig_save = fz_save,
	.mig_estimate = fz_estimate,
	.mig_load = fz_load,
	.mig_load_finish = fz_load_finish,
};

static struct vfmig_dev_desc fz_desc(void)
{
	struct vfmig_dev_desc d = {
		.version = VFMIG_DEV_DESC_VERSION,
		.vendor_id = 0x1b36, .device_id = 0x1000, .class_code = 0xff0000,
		.intx_count = 1, .msi_vectors = 4, .msix_vectors = 8,
		.msix_bar = 4, .msix_table_offset = 0, .msix_pba_offset = 0x800,
		.err_count = 1, .req_count = 1, .pcie = true,
	};
	d.bars[0] = (struct vfmig_dev_bar){ .size = 4096 };
	d.bars[1] = (struct vfmig_dev_bar){ .size = 16, .flags = VFMIG_DEV_BAR_IO };
	d.bars[2] = (struct vfmig_dev_bar){
		.size = 16384,
		.flags = VFMIG_DEV_BAR_MEM64 | VFMIG_DEV_BAR_MAPPABLE,
		.n_exclude = 1, .exclude = { { 0x1000, 0x100 } } };
	d.bars[4] = (struct vfmig_dev_bar){ .size = 4096 };
	return d;
}

#endif
