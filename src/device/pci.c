/* SPDX-License-Identifier: MIT */
/*
 * PCI config space emulation: a type-0 header and a capability list (MSI,
 * MSI-X, PCI Express) built from the device description. Every byte has a
 * write mask and a write-one-to-clear mask, so read-only fields and BAR
 * sizing fall out of one generic write rule:
 *     new = (old & ~wmask) | (val & wmask);  new &= ~(val & w1c)
 * A BAR's wmask holds only its address bits, so writing all-ones reads back
 * the size mask with the read-only flag bits.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"

static void put(uint8_t *a, uint32_t off, uint32_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		a[off + i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get(const uint8_t *a, uint32_t off, size_t n)
{
	uint32_t v = 0;
	for (size_t i = 0; i < n; i++)
		v |= (uint32_t)a[off + i] << (8 * i);
	return v;
}

uint16_t dev_pci_get16(const struct dev_pci *pci, uint32_t off)
{
	return (uint16_t)get(pci->cfg, off, 2);
}

uint32_t dev_pci_get32(const struct dev_pci *pci, uint32_t off)
{
	return get(pci->cfg, off, 4);
}

void dev_pci_set16(struct dev_pci *pci, uint32_t off, uint16_t v)
{
	put(pci->cfg, off, v, 2);
}

void dev_pci_set32(struct dev_pci *pci, uint32_t off, uint32_t v)
{
	put(pci->cfg, off, v, 4);
}

/* One field: offset, width, initial value, write mask, w1c mask. */
struct cfg_field {
	uint32_t off;
	uint8_t width;
	uint32_t val, wmask, w1c;
};

static void apply(struct dev_pci *pci, uint32_t base,
		  const struct cfg_field *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		put(pci->cfg, base + f[i].off, f[i].val, f[i].width);
		put(pci->wmask, base + f[i].off, f[i].wmask, f[i].width);
		put(pci->w1c, base + f[i].off, f[i].w1c, f[i].width);
	}
}

static void init_header(struct dev_pci *pci, const struct vfmig_dev_desc *d)
{
	const struct cfg_field hdr[] = {
		{ 0x00, 2, d->vendor_id, 0, 0 },
		{ 0x02, 2, d->device_id, 0, 0 },
		/* IO, MEM, bus master, parity, SERR, INTx disable */
		{ PCI_CMD, 2, 0, 0x0547, 0 },
		/* error bits are write-one-to-clear */
		{ PCI_STATUS, 2, 0, 0, 0xf900 },
		{ 0x08, 1, d->revision, 0, 0 },
		{ 0x09, 3, d->class_code & 0xffffff, 0, 0 },
		{ 0x0c, 1, 0, 0xff, 0 }, /* cache line size */
		{ 0x0d, 1, 0, 0xff, 0 }, /* latency timer */
		{ 0x0e, 1, 0, 0, 0 },    /* header type 0 */
		{ 0x2c, 2, d->subsys_vendor_id, 0, 0 },
		{ 0x2e, 2, d->subsys_id, 0, 0 },
		{ 0x3c, 1, 0, 0xff, 0 }, /* interrupt line */
		{ 0x3d, 1, d->intx_count ? 1 : 0, 0, 0 }, /* INTA# */
	};
	apply(pci, 0, hdr, sizeof(hdr) / sizeof(hdr[0]));
}

static void init_bars(struct dev_pci *pci, const struct vfmig_dev_desc *d)
{
	for (uint32_t i = 0; i < VFMIG_DEV_MAX_BARS; i++) {
		const struct vfmig_dev_bar *b = &d->bars[i];
		uint32_t off = PCI_BAR0 + 4 * i;
		uint64_t mask = ~(b->size - 1);
		uint32_t flags;

		if (!b->size)
			continue;
		if (b->flags & VFMIG_DEV_BAR_IO) {
			put(pci->cfg, off, 0x1, 4);
			put(pci->wmask, off, (uint32_t)mask & ~0x3u, 4);
			continue;
		}
		flags = (b->flags & VFMIG_DEV_BAR_MEM64) ? 0x4 : 0x0;
		if (b->flags & VFMIG_DEV_BAR_PREFETCH)
			flags |= 0x8;
		put(pci->cfg, off, flags, 4);
		put(pci->wmask, off, (uint32_t)mask & ~0xfu, 4);
		if (b->flags & VFMIG_DEV_BAR_MEM64) {
			put(pci->wmask, off + 4, (uint32_t)(mask >> 32), 4);
			i++;
		}
	}
}

static uint32_t ilog2(uint32_t v)
{
	uint32_t r = 0;
	while (v > 1) {
		v >>= 1;
		r++;
	}
	return r;
}

static uint32_t add_msi(struct dev_pci *pci, uint32_t c,
			const struct vfmig_dev_desc *d)
{
	uint32_t n = d->msi_vectors;
	uint32_t vmask = n >= 32 ? 0xffffffffu : (1u << n) - 1;
	const struct cfg_field f[] = {
		{ 0, 1, PCI_CAP_ID_MSI, 0, 0 },
		/* enable, MME rw; MMC, 64-bit, per-vector mask ro */
		{ 2, 2, (ilog2(n) << 1) | 0x80 | 0x100, 0x0071, 0 },
		{ 4, 4, 0, 0xfffffffcu, 0 },  /* address low */
		{ 8, 4, 0, 0xffffffffu, 0 },  /* address high */
		{ 12, 2, 0, 0xffff, 0 },      /* data */
		{ 16, 4, 0, vmask, 0 },       /* mask bits */
		{ 20, 4, 0, 0, 0 },           /* pending bits */
	};
	apply(pci, c, f, sizeof(f) / sizeof(f[0]));
	pci->msi_cap = (uint8_t)c;
	return 24;
}

static uint32_t add_msix(struct dev_pci *pci, uint32_t c,
			 const struct vfmig_dev_desc *d)
{
	const struct cfg_field f[] = {
		{ 0, 1, PCI_CAP_ID_MSIX, 0, 0 },
		{ 2, 2, d->msix_vectors - 1,
		  PCI_MSIX_CTRL_ENABLE | PCI_MSIX_CTRL_MASKALL, 0 },
		{ 4, 4, d->msix_table_offset | d->msix_bar, 0, 0 },
		{ 8, 4, d->msix_pba_offset | d->msix_bar, 0, 0 },
	};
	apply(pci, c, f, sizeof(f) / sizeof(f[0]));
	pci->msix_cap = (uint8_t)c;
	return 12;
}

static uint32_t add_pcie(struct dev_pci *pci, uint32_t c,
			 const struct vfmig_dev_desc *d)
{
	const struct cfg_field f[] = {
		{ 0, 1, PCI_CAP_ID_EXP, 0, 0 },
		{ 2, 2, 0x0002, 0, 0 },          /* v2, endpoint */
		{ 4, 4, 0, 0, 0 },               /* devcap: 128 B payload */
		{ 8, 2, 0x2810, 0x7fff, 0 },     /* devctl */
		{ 10, 2, 0, 0, 0x000f },         /* devsta: error bits */
		{ 12, 4, 0x00000011, 0, 0 },     /* linkcap: 2.5GT/s x1 */
		{ 16, 2, 0, 0x0fc3, 0 },         /* linkctl */
		{ 18, 2, 0x0011, 0, 0 },         /* linksta */
	};
	(void)d;
	apply(pci, c, f, sizeof(f) / sizeof(f[0]));
	pci->pcie_cap = (uint8_t)c;
	return 60;
}

static bool want_msi(const struct vfmig_dev_desc *d) { return d->msi_vectors; }
static bool want_msix(const struct vfmig_dev_desc *d) { return d->msix_vectors; }
static bool want_pcie(const struct vfmig_dev_desc *d) { return d->pcie; }

/* Capabilities in list order; each adder returns its length. */
static const struct {
	uint32_t (*add)(struct dev_pci *, uint32_t, const struct vfmig_dev_desc *);
	bool (*wanted)(const struct vfmig_dev_desc *);
} cap_table[] = {
	{ add_msi, want_msi },
	{ add_msix, want_msix },
	{ add_pcie, want_pcie },
};

void dev_pci_init(struct dev_pci *pci, const struct vfmig_dev_desc *d)
{
	uint32_t next = 0x40, prev = PCI_CAP_PTR;

	memset(pci, 0, sizeof(*pci));
	pci->size = d->pcie ? DEV_CFG_SIZE_PCIE : DEV_CFG_SIZE_PCI;
	init_header(pci, d);
	init_bars(pci, d);
	for (size_t i = 0; i < sizeof(cap_table) / sizeof(cap_table[0]); i++) {
		if (!cap_table[i].wanted(d))
			continue;
		pci->cfg[prev] = (uint8_t)next;
		prev = next + 1;
		next += cap_table[i].add(pci, next, d);
	}
	if (prev != PCI_CAP_PTR)
		dev_pci_set16(pci, PCI_STATUS,
			      dev_pci_get16(pci, PCI_STATUS) | PCI_STATUS_CAPS);
}

int dev_pci_read(const struct dev_pci *pci, uint64_t off, void *buf,
		 size_t len)
{
	if (!vfw_range_ok(off, len, pci->size))
		return -EINVAL;
	memcpy(buf, pci->cfg + off, len);
	return 0;
}

int dev_pci_write(struct dev_pci *pci, uint64_t off, const void *buf,
		  size_t len)
{
	const uint8_t *v = buf;

	if (!vfw_range_ok(off, len, pci->size))
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		size_t o = (size_t)off + i;
		uint8_t n = (uint8_t)((pci->cfg[o] & ~pci->wmask[o]) |
				      (v[i] & pci->wmask[o]));
		pci->cfg[o] = (uint8_t)(n & ~(v[i] & pci->w1c[o]));
	}
	return 0;
}

uint8_t dev_pci_find_cap(const struct dev_pci *pci, uint8_t id)
{
	uint8_t p;

	if (!(dev_pci_get16(pci, PCI_STATUS) & PCI_STATUS_CAPS))
		return 0;
	p = pci->cfg[PCI_CAP_PTR] & 0xfc;
	/* at most 48 capabilities fit in 192 bytes: guards against loops */
	for (int i = 0; i < 48 && p >= 0x40; i++) {
		if (pci->cfg[p] == id)
			return p;
		p = pci->cfg[p + 1] & 0xfc;
	}
	return 0;
}
