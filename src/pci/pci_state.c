/* SPDX-License-Identifier: MIT */
/*
 * The "pci" device type (pci_state.h): save, check, load of the VMM-visible
 * PCI state of a vfio-user device, and its field table.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pci/pci_state.h"

#define CAP_ID_MSI 0x05u
#define CAP_ID_EXP 0x10u
#define CAP_ID_MSIX 0x11u
#define MAX_CAPS 48u /* 192 bytes of capability space / 4 */

typedef struct vfmig_pci_state pci_state;

/* ---- field table ---- */

static const struct vfmig_field pci_fields[] = {
	VFMIG_FIELD_U32_V(pci_state, cfg_dwords, 0),
	VFMIG_FIELD_U32_ARRAY_V(pci_state, cfg, cfg_dwords, 0),
	VFMIG_FIELD_U16_V(pci_state, command, 0),
	VFMIG_FIELD_U32_V(pci_state, bars[0], 0),
	VFMIG_FIELD_U32_V(pci_state, bars[1], 0),
	VFMIG_FIELD_U32_V(pci_state, bars[2], 0),
	VFMIG_FIELD_U32_V(pci_state, bars[3], 0),
	VFMIG_FIELD_U32_V(pci_state, bars[4], 0),
	VFMIG_FIELD_U32_V(pci_state, bars[5], 0),
	VFMIG_FIELD_U32_V(pci_state, rom_bar, 0),
	VFMIG_FIELD_U8_V(pci_state, cache_line, 0),
	VFMIG_FIELD_U8_V(pci_state, latency, 0),
	VFMIG_FIELD_U8_V(pci_state, intx_pin, 0),
	VFMIG_FIELD_U8_V(pci_state, intx_line, 0),
	VFMIG_FIELD_U8_V(pci_state, msi_cap, 0),
	VFMIG_FIELD_U16_V(pci_state, msi_ctrl, 0),
	VFMIG_FIELD_U32_V(pci_state, msi_addr_lo, 0),
	VFMIG_FIELD_U32_V(pci_state, msi_addr_hi, 0),
	VFMIG_FIELD_U16_V(pci_state, msi_data, 0),
	VFMIG_FIELD_U32_V(pci_state, msi_mask, 0),
	VFMIG_FIELD_U32_V(pci_state, msi_pending, 0),
	VFMIG_FIELD_U8_V(pci_state, pcie_cap, 0),
	VFMIG_FIELD_U16_V(pci_state, pcie_devctl, 0),
	VFMIG_FIELD_U16_V(pci_state, pcie_linkctl, 0),
	VFMIG_FIELD_U16_V(pci_state, pcie_devctl2, 0),
};

static const struct vfmig_field msix_fields[] = {
	VFMIG_FIELD_U8_V(pci_state, msix_cap, 0),
	VFMIG_FIELD_U16_V(pci_state, msix_ctrl, 0),
	VFMIG_FIELD_U32_V(pci_state, msix_table_reg, 0),
	VFMIG_FIELD_U32_V(pci_state, msix_pba_reg, 0),
	VFMIG_FIELD_U32_V(pci_state, msix_table_dwords, 0),
	VFMIG_FIELD_U32_ARRAY_V(pci_state, msix_table, msix_table_dwords, 0),
	VFMIG_FIELD_U32_V(pci_state, msix_pba_dwords, 0),
	VFMIG_FIELD_U32_ARRAY_V(pci_state, msix_pba, msix_pba_dwords, 0),
};

static bool msix_needed(const void *obj)
{
	return ((const pci_state *)obj)->msix_cap != 0;
}

static const struct vfmig_fields_subsection pci_subsections[] = {
	{ .name = "msix", .needed = msix_needed, .fields = msix_fields,
	  .nfields = sizeof(msix_fields) / sizeof(msix_fields[0]) },
};

const struct vfmig_fields_desc vfmig_pci_desc = {
	.name = "pci",
	.version = VFMIG_PCI_STATE_VERSION,
	.min_version = 1,
	.size = sizeof(pci_state),
	.fields = pci_fields,
	.nfields = sizeof(pci_fields) / sizeof(pci_fields[0]),
	.subsections = pci_subsections,
	.nsubsections = sizeof(pci_subsections) / sizeof(pci_subsections[0]),
};

/* ---- helpers ---- */

__attribute__((format(printf, 3, 4)))
static void msg(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Config space as bytes plus its size: both the saved and the live one. */
struct cfgbuf {
	uint32_t size;
	uint8_t b[VFMIG_PCI_CFG_MAX];
};

static uint32_t get(const struct cfgbuf *c, uint32_t off, unsigned n)
{
	uint32_t v = 0;

	for (unsigned i = 0; i < n; i++)
		if (off + i < c->size)
			v |= (uint32_t)c->b[off + i] << (8 * i);
	return v;
}

static void dwords_to_bytes(const uint32_t *d, uint32_t ndw, uint8_t *b)
{
	for (uint32_t i = 0; i < ndw; i++)
		for (unsigned k = 0; k < 4; k++)
			b[4 * i + k] = (uint8_t)(d[i] >> (8 * k));
}

static void bytes_to_dwords(const uint8_t *b, uint32_t ndw, uint32_t *d)
{
	for (uint32_t i = 0; i < ndw; i++)
		d[i] = (uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] << 8 |
		       (uint32_t)b[4 * i + 2] << 16 | (uint32_t)b[4 * i + 3] << 24;
}

/* A byte of the saved config space. */
static uint8_t state_cfg8(const pci_state *s, uint32_t off)
{
	return off / 4 < s->cfg_dwords ? (uint8_t)(s->cfg[off / 4] >> (8 * (off % 4))) : 0;
}

static void cfg_from_state(const pci_state *s, struct cfgbuf *c)
{
	c->size = s->cfg_dwords * 4;
	dwords_to_bytes(s->cfg, s->cfg_dwords, c->b);
}

/* The config space of dev as the VMM's shadow of it holds it (vmm.h),
 * captured here if it never was (the device must be running then). No
 * message goes to a device whose shadow exists: a stopped device may
 * refuse every question. */
static int read_cfg(vfmig_vmm_dev *dev, struct cfgbuf *c, char *err, size_t errlen)
{
	struct vfmig_vmm_dev_info info;
	uint64_t size = 0;
	int r = vfmig_vmm_dev_shadow_info(dev, &info);

	if (r == -ENODATA) {
		r = vfmig_vmm_dev_shadow_capture(dev);
		if (r == 0)
			r = vfmig_vmm_dev_shadow_info(dev, &info);
	}
	if (r < 0) {
		msg(err, errlen, "describing the device: %s", vfmig_vmm_strerror(r));
		return r;
	}
	if (!(info.flags & VFMIG_VMM_DEV_FLAG_PCI) || info.num_regions <= VFMIG_VMM_PCI_CONFIG) {
		msg(err, errlen, "not a PCI device");
		return -ENODEV;
	}
	r = vfmig_vmm_dev_shadow_region(dev, VFMIG_VMM_PCI_CONFIG, NULL, &size);
	if (r == 0 && size != 256 && size != 4096) {
		msg(err, errlen, "config region is %llu bytes, not 256 or 4096",
		    (unsigned long long)size);
		return -ENODEV;
	}
	c->size = (uint32_t)size;
	if (r == 0)
		r = vfmig_vmm_dev_shadow_read(dev, VFMIG_VMM_PCI_CONFIG, 0, c->b, c->size);
	if (r < 0)
		msg(err, errlen, "config space: %s", vfmig_vmm_strerror(r));
	return r;
}

struct cap { uint16_t id, off; };

/* Walks the standard (and, in 4 KiB config spaces, extended) capability
 * lists into caps[]. Returns the count or -EBADMSG (loop, bad pointer). */
static int walk_caps(const struct cfgbuf *c, struct cap *caps, unsigned max)
{
	unsigned n = 0;

	if (get(c, 0x06, 2) & 0x10) {
		for (uint32_t p = get(c, 0x34, 1) & 0xfc; p; p = get(c, p + 1, 1) & 0xfc) {
			if (p < 0x40 || n >= max)
				return -EBADMSG;
			caps[n].id = (uint16_t)get(c, p, 1);
			caps[n++].off = (uint16_t)p;
		}
	}
	if (c->size > 256) {
		uint32_t h = get(c, 0x100, 4);
		for (uint32_t p = 0x100; h && h != 0xffffffffu; ) {
			if (n >= max)
				return -EBADMSG;
			caps[n].id = (uint16_t)(0x8000u | (h & 0xffff));
			caps[n++].off = (uint16_t)p;
			p = (h >> 20) & 0xffc;
			if (!p)
				break;
			if (p < 0x100)
				return -EBADMSG;
			h = get(c, p, 4);
		}
	}
	return (int)n;
}

static uint16_t find_cap(const struct cap *caps, int n, uint16_t id)
{
	for (int i = 0; i < n; i++)
		if (caps[i].id == id)
			return caps[i].off;
	return 0;
}

/* MSI register offsets within the capability. */
static uint32_t msi_data_off(uint16_t ctrl) { return ctrl & VFMIG_PCI_MSI_CTRL_64BIT ? 12 : 8; }
static uint32_t msi_mask_off(uint16_t ctrl) { return msi_data_off(ctrl) + 4; }

static uint32_t msix_vectors(uint16_t ctrl) { return (ctrl & 0x7ffu) + 1; }

/* Fills the named fields of s from its cfg (what save stores and check
 * compares against). Returns 0 or -EBADMSG. */
static int derive(pci_state *d, const struct cfgbuf *c, char *err, size_t errlen)
{
	struct cap caps[2 * MAX_CAPS];
	int n = walk_caps(c, caps, 2 * MAX_CAPS);

	if (n < 0) {
		msg(err, errlen, "capability list is malformed (loop or bad pointer)");
		return n;
	}
	d->command = (uint16_t)get(c, 0x04, 2);
	for (unsigned i = 0; i < 6; i++)
		d->bars[i] = get(c, 0x10 + 4 * i, 4);
	d->rom_bar = get(c, 0x30, 4);
	d->cache_line = (uint8_t)get(c, 0x0c, 1);
	d->latency = (uint8_t)get(c, 0x0d, 1);
	d->intx_line = (uint8_t)get(c, 0x3c, 1);
	d->intx_pin = (uint8_t)get(c, 0x3d, 1);
	d->msi_cap = (uint8_t)find_cap(caps, n, CAP_ID_MSI);
	if (d->msi_cap) {
		uint32_t m = d->msi_cap;
		d->msi_ctrl = (uint16_t)get(c, m + 2, 2);
		d->msi_addr_lo = get(c, m + 4, 4);
		d->msi_addr_hi = d->msi_ctrl & VFMIG_PCI_MSI_CTRL_64BIT ? get(c, m + 8, 4) : 0;
		d->msi_data = (uint16_t)get(c, m + msi_data_off(d->msi_ctrl), 2);
		if (d->msi_ctrl & VFMIG_PCI_MSI_CTRL_PVM) {
			d->msi_mask = get(c, m + msi_mask_off(d->msi_ctrl), 4);
			d->msi_pending = get(c, m + msi_mask_off(d->msi_ctrl) + 4, 4);
		}
	}
	d->pcie_cap = (uint8_t)find_cap(caps, n, CAP_ID_EXP);
	if (d->pcie_cap) {
		d->pcie_devctl = (uint16_t)get(c, d->pcie_cap + 8u, 2);
		d->pcie_linkctl = (uint16_t)get(c, d->pcie_cap + 0x10u, 2);
		d->pcie_devctl2 = (uint16_t)get(c, d->pcie_cap + 0x28u, 2);
	}
	d->msix_cap = (uint8_t)find_cap(caps, n, CAP_ID_MSIX);
	if (d->msix_cap) {
		d->msix_ctrl = (uint16_t)get(c, d->msix_cap + 2u, 2);
		d->msix_table_reg = get(c, d->msix_cap + 4u, 4);
		d->msix_pba_reg = get(c, d->msix_cap + 8u, 4);
		if ((d->msix_table_reg & 7) > 5 || (d->msix_pba_reg & 7) > 5) {
			msg(err, errlen, "MSI-X table or PBA in BAR index %u/%u",
			    d->msix_table_reg & 7, d->msix_pba_reg & 7);
			return -EBADMSG;
		}
	}
	return 0;
}

/* ---- save ---- */

int vfmig_pci_save(vfmig_vmm_dev *dev, pci_state *s, char *err, size_t errlen)
{
	struct cfgbuf *c = malloc(sizeof(*c));
	uint8_t *tab = NULL;
	int r;

	if (!c)
		return -ENOMEM;
	memset(s, 0, sizeof(*s));
	r = read_cfg(dev, c, err, errlen);
	if (r < 0)
		goto out;
	s->cfg_dwords = c->size / 4;
	bytes_to_dwords(c->b, s->cfg_dwords, s->cfg);
	r = derive(s, c, err, errlen);
	if (r < 0 || !s->msix_cap)
		goto out;
	uint32_t nv = msix_vectors(s->msix_ctrl);
	s->msix_table_dwords = nv * 4;
	s->msix_pba_dwords = (nv + 31) / 32;
	tab = malloc((size_t)nv * 16);
	r = -ENOMEM;
	if (!tab)
		goto out;
	r = vfmig_vmm_dev_shadow_read(dev, s->msix_table_reg & 7, s->msix_table_reg & ~7u,
				      tab, (size_t)nv * 16);
	if (r < 0) {
		msg(err, errlen, "the MSI-X table in BAR%u: %s", s->msix_table_reg & 7,
		    r == -ENOENT ? "not inside its BAR" : vfmig_vmm_strerror(r));
		goto out;
	}
	bytes_to_dwords(tab, s->msix_table_dwords, s->msix_table);
	/* The PBA is the device's (its own data carries pending bits): it is
	 * not asked for, and saved as zero. */
out:
	free(tab);
	free(c);
	return r < 0 ? r : 0;
}

/* ---- check ---- */

/* The saved state must agree with itself: named fields are what its own
 * config space says (a stream may be hostile). */
static int check_self(const pci_state *s, const struct cfgbuf *c, char *err, size_t errlen)
{
	pci_state *d;
	int r;

	if (s->cfg_dwords != 64 && s->cfg_dwords != 1024) {
		msg(err, errlen, "pci state: config space of %u bytes", s->cfg_dwords * 4);
		return -EBADMSG;
	}
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	r = derive(d, c, err, errlen);
	if (r < 0)
		goto out;
#define SAME(f) if (d->f != s->f) { \
		msg(err, errlen, "pci state: " #f " 0x%x disagrees with the config space (0x%x)", \
		    (unsigned)s->f, (unsigned)d->f); r = -EBADMSG; goto out; }
	SAME(command) SAME(bars[0]) SAME(bars[1]) SAME(bars[2]) SAME(bars[3])
	SAME(bars[4]) SAME(bars[5]) SAME(rom_bar) SAME(msi_cap) SAME(msi_ctrl)
	SAME(pcie_cap) SAME(msix_cap) SAME(msix_table_reg) SAME(msix_pba_reg)
	SAME(msix_ctrl)
#undef SAME
	if (s->msix_cap) {
		uint32_t nv = msix_vectors(s->msix_ctrl);
		if (s->msix_table_dwords != nv * 4 || s->msix_pba_dwords != (nv + 31) / 32) {
			msg(err, errlen, "pci state: MSI-X table of %u dwords for %u vectors",
			    s->msix_table_dwords, nv);
			r = -EBADMSG;
		}
	}
out:
	free(d);
	return r;
}

static const char *cap_name(uint16_t id)
{
	switch (id) {
	case CAP_ID_MSI: return " (MSI)";
	case CAP_ID_MSIX: return " (MSI-X)";
	case CAP_ID_EXP: return " (PCI Express)";
	default: return "";
	}
}

static int check_caps(const struct cfgbuf *src, const struct cfgbuf *here,
		      char *err, size_t errlen)
{
	struct cap a[2 * MAX_CAPS], b[2 * MAX_CAPS];
	int na = walk_caps(src, a, 2 * MAX_CAPS), nb = walk_caps(here, b, 2 * MAX_CAPS);

	if (na < 0 || nb < 0) {
		msg(err, errlen, "capability list is malformed %s",
		    na < 0 ? "on the source" : "here");
		return na < 0 ? -EBADMSG : -EINVAL;
	}
	for (int i = 0; i < na || i < nb; i++) {
		if (i >= na || i >= nb) {
			msg(err, errlen, "capability list: %d capabilities on the source, %d here",
			    na, nb);
			return -EINVAL;
		}
		if (a[i].id != b[i].id || a[i].off != b[i].off) {
			msg(err, errlen, "capability %d: id 0x%x%s at 0x%x on the source, "
			    "id 0x%x%s at 0x%x here", i, a[i].id, cap_name(a[i].id), a[i].off,
			    b[i].id, cap_name(b[i].id), b[i].off);
			return -EINVAL;
		}
	}
	return 0;
}

static int check_identity(const pci_state *s, const struct cfgbuf *src,
			  const struct cfgbuf *here, char *err, size_t errlen)
{
	static const struct { const char *name; uint32_t off; unsigned n; uint32_t mask; } ids[] = {
		{ "vendor id", 0x00, 2, 0xffff },
		{ "device id", 0x02, 2, 0xffff },
		{ "revision", 0x08, 1, 0xff },
		{ "class code", 0x09, 3, 0xffffff },
		{ "header type", 0x0e, 1, 0x7f },
		{ "subsystem vendor id", 0x2c, 2, 0xffff },
		{ "subsystem id", 0x2e, 2, 0xffff },
		{ "interrupt pin", 0x3d, 1, 0xff },
	};

	if (src->size != here->size) {
		msg(err, errlen, "config space of %u bytes on the source, %u here",
		    src->size, here->size);
		return -EINVAL;
	}
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		uint32_t a = get(src, ids[i].off, ids[i].n) & ids[i].mask;
		uint32_t b = get(here, ids[i].off, ids[i].n) & ids[i].mask;
		if (a != b) {
			msg(err, errlen, "%s 0x%0*x on the source, 0x%0*x here", ids[i].name,
			    (int)ids[i].n * 2, a, (int)ids[i].n * 2, b);
			return -EINVAL;
		}
	}
	int r = check_caps(src, here, err, errlen);
	if (r < 0)
		return r;
	if (s->msi_cap) {
		uint32_t ro = 0x018e; /* 64-bit, per-vector mask, multiple message capable */
		uint32_t b = get(here, s->msi_cap + 2u, 2);
		if ((s->msi_ctrl & ro) != (b & ro)) {
			msg(err, errlen, "MSI control read-only bits 0x%04x on the source, 0x%04x here",
			    s->msi_ctrl & ro, b & ro);
			return -EINVAL;
		}
	}
	if (s->msix_cap) {
		uint32_t c = get(here, s->msix_cap + 2u, 2), t = get(here, s->msix_cap + 4u, 4);
		uint32_t p = get(here, s->msix_cap + 8u, 4);
		if (msix_vectors((uint16_t)c) != msix_vectors(s->msix_ctrl)) {
			msg(err, errlen, "MSI-X table size %u on the source, %u here",
			    msix_vectors(s->msix_ctrl), msix_vectors((uint16_t)c));
			return -EINVAL;
		}
		if (t != s->msix_table_reg || p != s->msix_pba_reg) {
			msg(err, errlen, "MSI-X table/PBA at 0x%x/0x%x on the source, 0x%x/0x%x here",
			    s->msix_table_reg, s->msix_pba_reg, t, p);
			return -EINVAL;
		}
	}
	return 0;
}

int vfmig_pci_check(vfmig_vmm_dev *dev, const pci_state *s, char *err, size_t errlen)
{
	struct cfgbuf *src = malloc(sizeof(*src)), *here = malloc(sizeof(*here));
	int r = -ENOMEM;

	if (!src || !here)
		goto out;
	if (s->cfg_dwords != 64 && s->cfg_dwords != 1024) {
		msg(err, errlen, "pci state: config space of %u bytes", s->cfg_dwords * 4);
		r = -EBADMSG;
		goto out;
	}
	cfg_from_state(s, src);
	r = check_self(s, src, err, errlen);
	if (r < 0)
		goto out;
	r = read_cfg(dev, here, err, errlen);
	if (r < 0)
		goto out;
	r = check_identity(s, src, here, err, errlen);
out:
	free(src);
	free(here);
	return r;
}

/* ---- load ---- */

struct writer {
	vfmig_vmm_dev *dev;
	char *err;
	size_t errlen;
	int r;
};

/* One little-endian REGION_WRITE; after the first failure, nothing more. */
static void wr(struct writer *w, uint32_t region, uint64_t off, uint32_t v, unsigned n,
	       const char *what)
{
	uint8_t b[4];

	if (w->r < 0)
		return;
	for (unsigned i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	w->r = vfmig_vmm_dev_region_write(w->dev, region, off, b, n);
	if (w->r < 0)
		msg(w->err, w->errlen, "restoring %s: %s", what, vfmig_vmm_strerror(w->r));
}

static void wr_cfg(struct writer *w, uint32_t off, uint32_t v, unsigned n, const char *what)
{
	wr(w, VFMIG_VMM_PCI_CONFIG, off, v, n, what);
}

static void load_msi_masked(struct writer *w, const pci_state *s)
{
	uint32_t m = s->msi_cap;

	/* Disabled while address and data change; with per-vector masking
	 * every vector masked as well. */
	wr_cfg(w, m + 2, s->msi_ctrl & ~VFMIG_PCI_MSI_CTRL_ENABLE, 2, "MSI control");
	if (s->msi_ctrl & VFMIG_PCI_MSI_CTRL_PVM)
		wr_cfg(w, m + msi_mask_off(s->msi_ctrl), 0xffffffffu, 4, "MSI mask");
	wr_cfg(w, m + 4, s->msi_addr_lo, 4, "MSI address");
	if (s->msi_ctrl & VFMIG_PCI_MSI_CTRL_64BIT)
		wr_cfg(w, m + 8, s->msi_addr_hi, 4, "MSI upper address");
	wr_cfg(w, m + msi_data_off(s->msi_ctrl), s->msi_data, 2, "MSI data");
}

static void load_msix_masked(struct writer *w, const pci_state *s)
{
	uint32_t nv = msix_vectors(s->msix_ctrl);
	uint8_t *tab;

	wr_cfg(w, s->msix_cap + 2u, s->msix_ctrl | VFMIG_PCI_MSIX_CTRL_MASKALL, 2,
	       "MSI-X control");
	if (w->r < 0)
		return;
	tab = malloc((size_t)nv * 16);
	if (!tab) {
		w->r = -ENOMEM;
		return;
	}
	dwords_to_bytes(s->msix_table, nv * 4, tab);
	w->r = vfmig_vmm_dev_region_write(w->dev, s->msix_table_reg & 7,
					  s->msix_table_reg & ~7u, tab, (size_t)nv * 16);
	if (w->r < 0)
		msg(w->err, w->errlen, "restoring the MSI-X table in BAR%u: %s",
		    s->msix_table_reg & 7, vfmig_vmm_strerror(w->r));
	free(tab);
}

int vfmig_pci_load(vfmig_vmm_dev *dev, const pci_state *s, char *err, size_t errlen)
{
	struct writer w = { .dev = dev, .err = err, .errlen = errlen };

	/* 1: no memory or I/O decoding while the BARs move. */
	wr_cfg(&w, VFMIG_PCI_COMMAND,
	       s->command & (uint16_t)~(VFMIG_PCI_CMD_MEM | VFMIG_PCI_CMD_IO), 2,
	       "command (decoding off)");
	/* 2: BARs and the other plain writable header registers. */
	for (unsigned i = 0; i < 6; i++)
		wr_cfg(&w, 0x10 + 4 * i, s->bars[i], 4, "BAR");
	wr_cfg(&w, 0x30, s->rom_bar, 4, "expansion ROM BAR");
	wr_cfg(&w, 0x0c, s->cache_line, 1, "cache line size");
	wr_cfg(&w, 0x0d, s->latency, 1, "latency timer");
	wr_cfg(&w, 0x3c, s->intx_line, 1, "interrupt line");
	if (s->pcie_cap) {
		wr_cfg(&w, s->pcie_cap + 8u, s->pcie_devctl, 2, "PCIe device control");
		wr_cfg(&w, s->pcie_cap + 0x10u, s->pcie_linkctl, 2, "PCIe link control");
		if ((state_cfg8(s, s->pcie_cap + 2u) & 0xf) >= 2) /* capability version */
			wr_cfg(&w, s->pcie_cap + 0x28u, s->pcie_devctl2, 2,
			       "PCIe device control 2");
	}
	/* 3, 4: interrupt messages masked while their address/data change. */
	if (s->msi_cap)
		load_msi_masked(&w, s);
	if (s->msix_cap)
		load_msix_masked(&w, s);
	/* 5: exactly what the source had enabled. */
	if (s->msi_cap && (s->msi_ctrl & VFMIG_PCI_MSI_CTRL_PVM))
		wr_cfg(&w, s->msi_cap + msi_mask_off(s->msi_ctrl), s->msi_mask, 4, "MSI mask");
	if (s->msi_cap)
		wr_cfg(&w, s->msi_cap + 2u, s->msi_ctrl, 2, "MSI control");
	if (s->msix_cap)
		wr_cfg(&w, s->msix_cap + 2u, s->msix_ctrl, 2, "MSI-X control");
	wr_cfg(&w, VFMIG_PCI_COMMAND, s->command, 2, "command");
	return w.r;
}

/* ---- IRQ wiring and registration ---- */

void vfmig_pci_irq_wiring(const pci_state *s, struct vfmig_type_irq_wiring *out)
{
	out->index = VFMIG_VMM_IRQ_INTX;
	out->count = 0;
	if (s->msix_cap && (s->msix_ctrl & VFMIG_PCI_MSIX_CTRL_ENABLE)) {
		out->index = VFMIG_VMM_IRQ_MSIX;
		out->count = msix_vectors(s->msix_ctrl);
	} else if (s->msi_cap && (s->msi_ctrl & VFMIG_PCI_MSI_CTRL_ENABLE)) {
		out->index = VFMIG_VMM_IRQ_MSI;
		out->count = 1u << ((s->msi_ctrl >> 4) & 7);
	} else if (s->intx_pin && !(s->command & VFMIG_PCI_CMD_INTX_DISABLE)) {
		out->count = 1;
	}
}

static int type_save(vfmig_vmm_dev *dev, void *state, char *err, size_t errlen)
{
	return vfmig_pci_save(dev, state, err, errlen);
}

static int type_check(vfmig_vmm_dev *dev, const void *state, char *err, size_t errlen)
{
	return vfmig_pci_check(dev, state, err, errlen);
}

static int type_load(vfmig_vmm_dev *dev, const void *state, char *err, size_t errlen)
{
	return vfmig_pci_load(dev, state, err, errlen);
}

static int type_irq_wiring(const void *state, struct vfmig_type_irq_wiring *out)
{
	vfmig_pci_irq_wiring(state, out);
	return 0;
}

const struct vfmig_type_ops vfmig_pci_type = {
	.version = VFMIG_TYPE_OPS_VERSION,
	.name = "pci",
	.desc = &vfmig_pci_desc,
	.save = type_save,
	.check = type_check,
	.load = type_load,
	.irq_wiring = type_irq_wiring,
};

int vfmig_pci_type_register(struct vfmig_typereg *reg)
{
	return vfmig_typereg_add(reg, &vfmig_pci_type, NULL, 0);
}
