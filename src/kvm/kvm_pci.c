/* SPDX-License-Identifier: MIT */
/* The KVM guest's PCI bus (kvm_pci.h). */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "engine/vm.h"
#include "kvm/kvm_pci.h"

#define CFG_COMMAND 0x04u
#define CFG_BAR0 0x10u
#define CFG_BAR_END 0x28u
#define CFG_CAP_PTR 0x34u
#define CAP_MSIX 0x11u
#define BAR_MAX_SIZE (1ull << 30)

int kvm_pci_cfg_decode(uint32_t cf8, uint16_t port, unsigned int size,
		       unsigned int nslots, unsigned int *slot, uint32_t *off)
{
	unsigned int sub = port - KVM_PCI_PORT_DATA;

	if (port < KVM_PCI_PORT_DATA || sub > 3 ||
	    (size != 1 && size != 2 && size != 4) || sub % size)
		return -EINVAL;
	if (!(cf8 & 0x80000000u))
		return -ENOENT;
	if ((cf8 >> 16) & 0xff)	  /* bus */
		return -ENOENT;
	if ((cf8 >> 8) & 0x7)	  /* function */
		return -ENOENT;
	*slot = (cf8 >> 11) & 0x1f;
	if (*slot >= nslots)
		return -ENOENT;
	/* Bits 27:24 are the extended register number (ECAM-style); only
	 * the 256-byte PCI space is reachable through 0xcf8. */
	*off = (cf8 & 0xfcu) + sub;
	return 0;
}

uint64_t kvm_pci_bar_base(uint32_t lo, uint32_t hi, bool *is64)
{
	*is64 = false;
	if (lo & 1u)
		return 0;
	if (((lo >> 1) & 3u) == 2u) {
		*is64 = true;
		return ((uint64_t)hi << 32 | lo) & ~0xfull;
	}
	return lo & ~0xfull;
}

int kvm_pci_bar_ranges(uint64_t bar_size, bool sparse,
		       const struct vfmig_vmm_area *areas, uint32_t n,
		       uint64_t base, struct kvm_pci_range *out)
{
	const struct vfmig_vmm_area whole = { 0, bar_size };
	uint64_t end = 0;
	int made = 0;

	if (!sparse) {
		areas = &whole;
		n = 1;
	}
	if (n > KVM_PCI_MAX_AREAS || base % KVM_PCI_PAGE ||
	    bar_size > (1ull << 52) || base > (1ull << 52) - bar_size)
		return -EINVAL;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t off = areas[i].offset, size = areas[i].size;
		if (!size)
			continue;
		if (off % KVM_PCI_PAGE || size % KVM_PCI_PAGE ||
		    off > bar_size || size > bar_size - off || off < end)
			return -EINVAL;
		end = off + size;
		out[made++] = (struct kvm_pci_range){ off, size, base + off };
	}
	return made;
}

static int cfg_read(struct kvm_pci_dev *d, uint32_t off, void *buf,
		    size_t len)
{
	return vfmig_vmm_dev_region_read(d->dev, VFMIG_VMM_PCI_CONFIG, off, buf,
					 len);
}

/* Where the guest put the BARs and whether memory decoding is on. */
static int refresh_bars(struct kvm_pci_dev *d)
{
	uint32_t bars[KVM_PCI_NBARS];
	uint16_t cmd;
	int r = cfg_read(d, CFG_BAR0, bars, sizeof(bars));

	if (r == 0)
		r = cfg_read(d, CFG_COMMAND, &cmd, sizeof(cmd));
	if (r < 0)
		return r;
	d->mem_on = le16toh(cmd) & 0x2u;
	for (unsigned int b = 0; b < KVM_PCI_NBARS; b++) {
		bool is64;
		uint32_t hi = b + 1 < KVM_PCI_NBARS ? le32toh(bars[b + 1]) : 0;
		d->bar_base[b] = kvm_pci_bar_base(le32toh(bars[b]), hi, &is64);
		if (is64)
			d->bar_base[++b] = 0; /* the high half is no BAR */
	}
	return 0;
}

int kvm_pci_parse_msix(const uint8_t cfg[256],
		       const uint64_t bar_size[KVM_PCI_NBARS], uint32_t *bar,
		       uint32_t *off, uint32_t *nvec)
{
	for (unsigned int pos = cfg[CFG_CAP_PTR] & 0xfcu, n = 0;
	     pos >= 0x40 && pos <= 0xf8 && n < 48;
	     pos = cfg[pos + 1] & 0xfcu, n++) {
		if (cfg[pos] != CAP_MSIX)
			continue;
		uint16_t ctrl = (uint16_t)(cfg[pos + 2] | cfg[pos + 3] << 8);
		uint32_t tbl = (uint32_t)cfg[pos + 4] | cfg[pos + 5] << 8 |
			       cfg[pos + 6] << 16 | (uint32_t)cfg[pos + 7] << 24;
		*nvec = (ctrl & 0x7ffu) + 1;
		*bar = tbl & 7u;
		*off = tbl & ~7u;
		if (*nvec > KVM_PCI_MAX_VEC || *bar >= KVM_PCI_NBARS ||
		    *off + *nvec * 16ull > bar_size[*bar])
			return -ERANGE;
		return 0;
	}
	return -ENOENT;
}

static int find_msix(struct kvm_pci *bus, unsigned int i)
{
	struct kvm_pci_dev *d = &bus->devs[i];
	uint8_t cfg[256];
	uint32_t bir, off, nvec;
	int r = cfg_read(d, 0, cfg, sizeof(cfg));

	if (r < 0)
		return r;
	r = kvm_pci_parse_msix(cfg, d->bar_size, &bir, &off, &nvec);
	if (r == -ERANGE) {
		vfmig_vm_log(bus->vm, VFMIG_LOG_WARNING,
			     "kvm: %s: MSI-X table (BAR %u, offset 0x%" PRIx32
			     ", %u vectors) does not fit; no interrupts",
			     vfmig_vm_dev_id(bus->vm, i), bir, off, nvec);
		return 0;
	}
	if (r == 0) {
		d->msix_bar = bir;
		d->msix_off = off;
		d->nvec = nvec;
	}
	return 0;
}

int kvm_pci_init(struct kvm_pci *bus, struct vfmig_vm *vm,
		 kvm_pci_notify_fn notify, void *priv, char *err,
		 size_t errlen)
{
	memset(bus, 0, sizeof(*bus));
	bus->vm = vm;
	bus->notify = notify;
	bus->priv = priv;
	bus->ndevs = vfmig_vm_ndevs(vm);
	for (unsigned int i = 0; i < bus->ndevs; i++) {
		struct kvm_pci_dev *d = &bus->devs[i];
		d->dev = vfmig_vm_dev(vm, i);
		for (uint32_t b = 0; b < KVM_PCI_NBARS; b++) {
			struct vfmig_vmm_region_info ri;
			int r = vfmig_vmm_dev_get_region_info(d->dev, b, &ri);
			if (r < 0)
				continue; /* no such region: no BAR */
			uint64_t sz = ri.size;
			vfmig_vmm_region_info_release(&ri);
			if (!sz)
				continue;
			if (sz < 16 || sz > BAR_MAX_SIZE || (sz & (sz - 1))) {
				vfmig_vm_log(vm, VFMIG_LOG_WARNING,
					     "kvm: %s: BAR %u size 0x%" PRIx64
					     " is not a power of two from 16 "
					     "bytes to 1 GiB; left out",
					     vfmig_vm_dev_id(vm, i), b, sz);
				continue;
			}
			d->bar_size[b] = sz;
		}
		int r = find_msix(bus, i);
		if (r == 0)
			r = refresh_bars(d);
		if (r < 0) {
			snprintf(err, errlen, "%s (%s): config space: %s",
				 vfmig_vm_dev_id(vm, i), vfmig_vm_dev_path(vm, i),
				 vfmig_vmm_strerror(r));
			return r;
		}
	}
	return 0;
}

static int cfg_access(struct kvm_pci *bus, uint16_t port, bool write,
		      uint8_t *data, unsigned int size)
{
	unsigned int slot;
	uint32_t off;
	int r = kvm_pci_cfg_decode(bus->cf8, port, size, bus->ndevs, &slot,
				   &off);
	struct kvm_pci_dev *d;

	if (r < 0) { /* nothing there (or a malformed access) */
		if (!write)
			memset(data, 0xff, size);
		return 0;
	}
	d = &bus->devs[slot];
	d->cfg_accesses++;
	if (!write)
		return cfg_read(d, off, data, size);
	r = vfmig_vmm_dev_region_write(d->dev, VFMIG_VMM_PCI_CONFIG, off, data,
				       size);
	if (r < 0)
		return r;
	if ((off < CFG_COMMAND + 2 && off + size > CFG_COMMAND) ||
	    (off < CFG_BAR_END && off + size > CFG_BAR0)) {
		r = refresh_bars(d);
		if (r < 0)
			return r;
	}
	return bus->notify ? bus->notify(bus->priv, slot, UINT32_MAX) : 0;
}

int kvm_pci_pio(struct kvm_pci *bus, uint16_t port, bool write,
		uint8_t *data, unsigned int size)
{
	if (port == KVM_PCI_PORT_ADDR && size == 4) {
		uint32_t v = htole32(bus->cf8);
		if (write) {
			memcpy(&v, data, 4);
			bus->cf8 = le32toh(v);
		} else {
			memcpy(data, &v, 4);
		}
		return 0;
	}
	if (port >= KVM_PCI_PORT_DATA && port < KVM_PCI_PORT_DATA + 4)
		return cfg_access(bus, port, write, data, size);
	return -ENOENT;
}

/* Keep the guest's MSI-X table; tell the VMM when an entry changed. */
static int msix_write(struct kvm_pci *bus, unsigned int slot, uint64_t off,
		      const uint8_t *data, unsigned int len)
{
	struct kvm_pci_dev *d = &bus->devs[slot];
	uint64_t end = d->msix_off + d->nvec * 16ull;

	if (!d->nvec || off + len <= d->msix_off || off >= end)
		return 0;
	for (unsigned int k = 0; k < len; k++) {
		uint64_t o = off + k;
		if (o < d->msix_off || o >= end)
			continue;
		uint64_t rel = o - d->msix_off;
		uint8_t *e = (uint8_t *)&d->msix[rel / 16];
		/* struct fields are u32 in table order; host little-endian
		 * is checked where the entry is read (kvm_vm.c). */
		e[rel % 16] = data[k];
	}
	if (!bus->notify)
		return 0;
	uint64_t first = (off < d->msix_off ? 0 : off - d->msix_off) / 16;
	uint64_t last = (off + len - 1 - d->msix_off) / 16;
	if (last >= d->nvec)
		last = d->nvec - 1;
	for (uint64_t v = first; v <= last; v++) {
		int r = bus->notify(bus->priv, slot, (uint32_t)v);
		if (r < 0)
			return r;
	}
	return 0;
}

int kvm_pci_mmio(struct kvm_pci *bus, uint64_t gpa, bool write,
		 uint8_t *data, unsigned int len)
{
	for (unsigned int i = 0; i < bus->ndevs; i++) {
		struct kvm_pci_dev *d = &bus->devs[i];
		if (!d->mem_on)
			continue;
		for (uint32_t b = 0; b < KVM_PCI_NBARS; b++) {
			uint64_t base = d->bar_base[b], size = d->bar_size[b];
			if (!size || !base || gpa < base ||
			    gpa - base >= size || len > size - (gpa - base))
				continue;
			uint64_t off = gpa - base;
			int r;
			d->mmio_accesses++;
			for (uint32_t j = 0; write && j < d->nio; j++)
				if (d->io[j].bar == b &&
				    off < d->io[j].off + d->io[j].size &&
				    d->io[j].off < off + len)
					d->io_exits++;
			if (!write)
				return vfmig_vmm_dev_region_read(d->dev, b, off,
								 data, len);
			r = vfmig_vmm_dev_region_write(d->dev, b, off, data,
						       len);
			if (r == 0 && b == d->msix_bar)
				r = msix_write(bus, i, off, data, len);
			return r;
		}
	}
	return -ENOENT;
}
