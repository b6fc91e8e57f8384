/* SPDX-License-Identifier: MIT */
/*
 * BARs the device offers for mmap, as KVM memory slots: the VMM maps the
 * mappable parts of each BAR once (the whole BAR or its sparse areas,
 * exactly as the device reports them, checked by kvm_pci_bar_ranges),
 * and after every config write puts them where the guest placed the BAR
 * while memory decoding is on, moves them when the BAR moves and removes
 * them when decoding goes off. The guest's accesses there reach the
 * device's memory without an exit; the rest of the BAR still exits and
 * becomes REGION_READ/WRITE (kvm_pci_mmio). No dirty log: the device's
 * memory is the device's state, which the device migrates.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <linux/kvm.h>

#include "engine/vm.h"
#include "kvm/kvm_internal.h"

/* Slot 0 is the RAM; BAR b's area a of device i follows. */
static uint32_t slot_of(unsigned int i, uint32_t b, uint32_t a)
{
	return 1u + (i * KVM_PCI_NBARS + b) * KVM_PCI_MAX_AREAS + a;
}

static void map_bar(struct vfmig_kvm *k, unsigned int i, uint32_t b)
{
	struct kvm_pci_dev *d = &k->bus.devs[i];
	struct vfmig_vmm_region_info ri;
	struct vfmig_vmm_mapping maps[KVM_PCI_MAX_AREAS];
	struct kvm_pci_range rg[KVM_PCI_MAX_AREAS];
	const char *id = vfmig_vm_dev_id(k->vm, i);
	int n;

	if (vfmig_vmm_dev_get_region_info(d->dev, b, &ri) < 0)
		return;
	if (!(ri.flags & VFMIG_VMM_REGION_MMAP) || ri.fd < 0 ||
	    ri.size != d->bar_size[b]) {
		vfmig_vmm_region_info_release(&ri);
		return;
	}
	n = kvm_pci_bar_ranges(d->bar_size[b], ri.has_sparse, ri.areas,
			       ri.nr_areas, 0, rg);
	if (n < 0) {
		vfmig_vm_log(k->vm, VFMIG_LOG_WARNING,
			     "kvm: %s: BAR %u: its mmap areas are not whole "
			     "4 KiB pages inside the BAR (or more than %u); "
			     "its accesses stay messages", id, b,
			     KVM_PCI_MAX_AREAS);
		vfmig_vmm_region_info_release(&ri);
		return;
	}
	n = n ? vfmig_vmm_region_mmap(&ri, PROT_READ | PROT_WRITE, maps,
				      KVM_PCI_MAX_AREAS)
	      : 0;
	vfmig_vmm_region_info_release(&ri);
	if (n < 0) {
		vfmig_vm_log(k->vm, VFMIG_LOG_WARNING,
			     "kvm: %s: BAR %u: mmap: %s; its accesses stay "
			     "messages", id, b, strerror(-n));
		return;
	}
	for (int a = 0; a < n; a++) {
		d->map[b][a].host = maps[a].addr;
		d->map[b][a].off = maps[a].offset;
		d->map[b][a].size = maps[a].size;
	}
	d->nmap[b] = (uint32_t)n;
}

void kvm__bar_map(struct vfmig_kvm *k)
{
	if (k->opts.test_no_bar_mmap)
		return;
	for (unsigned int i = 0; i < k->bus.ndevs; i++)
		for (uint32_t b = 0; b < KVM_PCI_NBARS; b++)
			if (k->bus.devs[i].bar_size[b])
				map_bar(k, i, b);
}

static int set_slot(struct vfmig_kvm *k, uint32_t slot, uint64_t gpa,
		    uint64_t size, void *host)
{
	struct kvm_userspace_memory_region m = {
		.slot = slot,
		.flags = 0, /* no dirty log: the device migrates it */
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uint64_t)(uintptr_t)host,
	};

	return ioctl(k->vm_fd, KVM_SET_USER_MEMORY_REGION, &m) < 0 ? -errno : 0;
}

static void unplace(struct vfmig_kvm *k, unsigned int i, uint32_t b)
{
	struct kvm_pci_dev *d = &k->bus.devs[i];

	for (uint32_t a = 0; a < d->nmap[b]; a++)
		(void)set_slot(k, slot_of(i, b, a), 0, 0, d->map[b][a].host);
	d->slot_base[b] = 0;
}

static void place(struct vfmig_kvm *k, unsigned int i, uint32_t b,
		  uint64_t base)
{
	struct kvm_pci_dev *d = &k->bus.devs[i];
	struct vfmig_vmm_area areas[KVM_PCI_MAX_AREAS];
	struct kvm_pci_range rg[KVM_PCI_MAX_AREAS];
	int n, r = 0;

	for (uint32_t a = 0; a < d->nmap[b]; a++)
		areas[a] = (struct vfmig_vmm_area){ d->map[b][a].off,
						    d->map[b][a].size };
	n = kvm_pci_bar_ranges(d->bar_size[b], true, areas, d->nmap[b], base,
			       rg);
	if (n != (int)d->nmap[b])
		r = -EINVAL;
	for (int a = 0; r == 0 && a < n; a++) {
		r = set_slot(k, slot_of(i, b, (uint32_t)a), rg[a].gpa,
			     rg[a].size, d->map[b][a].host);
		if (r < 0) {
			for (int u = 0; u < a; u++)
				(void)set_slot(k, slot_of(i, b, (uint32_t)u), 0,
					       0, d->map[b][u].host);
		}
	}
	if (r < 0) {
		vfmig_vm_log(k->vm, VFMIG_LOG_WARNING,
			     "kvm: %s: BAR %u at 0x%" PRIx64 ": no memory slot "
			     "(%s: it overlaps other memory or is misplaced); "
			     "its accesses stay messages",
			     vfmig_vm_dev_id(k->vm, i), b, base, strerror(-r));
		return;
	}
	d->slot_base[b] = base;
	vfmig_vm_log(k->vm, VFMIG_LOG_INFO,
		     "kvm: %s: BAR %u at 0x%" PRIx64 ": %d mmap'ed part%s as "
		     "memory slot%s", vfmig_vm_dev_id(k->vm, i), b, base, n,
		     n == 1 ? "" : "s", n == 1 ? "" : "s");
}

void kvm__bar_sync(struct vfmig_kvm *k, unsigned int i)
{
	struct kvm_pci_dev *d = &k->bus.devs[i];

	for (uint32_t b = 0; b < KVM_PCI_NBARS; b++) {
		if (!d->nmap[b])
			continue;
		uint64_t want = d->mem_on ? d->bar_base[b] : 0;
		if (want == d->slot_base[b])
			continue;
		if (d->slot_base[b])
			unplace(k, i, b);
		if (want)
			place(k, i, b, want);
	}
	/* The ioeventfds follow the same BAR bases. */
	kvm__ioefd_sync(k, i);
}

void kvm__bar_unmap(struct vfmig_kvm *k)
{
	for (unsigned int i = 0; i < k->bus.ndevs; i++) {
		struct kvm_pci_dev *d = &k->bus.devs[i];
		for (uint32_t b = 0; b < KVM_PCI_NBARS; b++) {
			for (uint32_t a = 0; a < d->nmap[b]; a++)
				munmap(d->map[b][a].host,
				       (size_t)d->map[b][a].size);
			d->nmap[b] = 0;
		}
	}
}

void kvm__bar_release(struct vfmig_kvm *k)
{
	for (unsigned int i = 0; i < k->bus.ndevs; i++)
		for (uint32_t b = 0; b < KVM_PCI_NBARS; b++)
			if (k->bus.devs[i].slot_base[b])
				unplace(k, i, b);
	kvm__bar_unmap(k);
}

void kvm__bar_report(struct vfmig_kvm *k)
{
	for (unsigned int i = 0; k->bus_ready && i < k->bus.ndevs; i++)
		vfmig_vm_log(k->vm, VFMIG_LOG_INFO,
			     "kvm: %s: %" PRIu64 " config and %" PRIu64
			     " BAR accesses by exit, %" PRIu64 " of them "
			     "writes to its ioeventfd registers",
			     vfmig_vm_dev_id(k->vm, i),
			     k->bus.devs[i].cfg_accesses,
			     k->bus.devs[i].mmio_accesses,
			     k->bus.devs[i].io_exits);
}
