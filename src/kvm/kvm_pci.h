/* SPDX-License-Identifier: MIT */
/*
 * The KVM guest's PCI bus: bus 0, device (slot) i is the VM's device i,
 * function 0. Configuration mechanism #1 (the address at port 0xcf8, data
 * at 0xcfc..0xcff) and accesses to the BARs the guest placed become
 * REGION_READ/REGION_WRITE messages to the vfio-user device (except in the
 * parts of a BAR the device offers for mmap: KVM memory slots, kvm_bar.c;
 * and writes to registers it offers an ioeventfd for while those are
 * registered with KVM, kvm_ioefd.c). The bus also
 * keeps a copy of each device's MSI-X table as the guest writes it, so that
 * the VMM can route each vector to the guest's LAPIC (kvm_vm.c).
 *
 * Nothing the device reports is trusted: a BAR size that is not a power
 * of two from 16 bytes to 1 GiB leaves that BAR absent, an MSI-X table
 * outside its BAR or with more than KVM_PCI_MAX_VEC vectors is ignored
 * (with a warning through the VM's log).
 *
 * One thread (the vCPU's) uses a bus. Errors: negative errno.
 */
#ifndef VFMIG_KVM_PCI_H
#define VFMIG_KVM_PCI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vfmig/vmm.h>

struct vfmig_vm;

#define KVM_PCI_NBARS 6u
#define KVM_PCI_MAX_VEC 64u
#define KVM_PCI_PORT_ADDR 0xcf8u
#define KVM_PCI_PORT_DATA 0xcfcu

/* ---- pure decoding ---- */

/*
 * The configuration-space access that a PIO access of size (1, 2, 4) at
 * port (0xcfc..0xcff) makes with address register cf8: *slot and *off
 * (the byte offset in config space). -ENOENT when the enable bit is clear
 * or the address names a bus, function or slot (>= nslots) with nothing
 * there (reads then give all ones, writes are dropped); -EINVAL for an
 * access that is not naturally aligned or leaves the data port.
 */
int kvm_pci_cfg_decode(uint32_t cf8, uint16_t port, unsigned int size,
		       unsigned int nslots, unsigned int *slot, uint32_t *off);

/* The base of a memory BAR from its register value (and, for a 64-bit BAR,
 * the next register's in hi). *is64: a 64-bit BAR. An I/O BAR gives 0. */
uint64_t kvm_pci_bar_base(uint32_t lo, uint32_t hi, bool *is64);

/* Where a device's MSI-X table is, from its 256 bytes of config space and
 * its BAR sizes (0: no BAR): *bar, *off (from the BAR's start), *nvec.
 * The capability list is walked from the pointer at 0x34, at most 48
 * entries (a list that loops ends there). -ENOENT: no MSI-X capability;
 * -ERANGE: one that names a BAR that does not exist, more than
 * KVM_PCI_MAX_VEC vectors, or a table that does not fit in its BAR. */
int kvm_pci_parse_msix(const uint8_t cfg[256],
		       const uint64_t bar_size[KVM_PCI_NBARS], uint32_t *bar,
		       uint32_t *off, uint32_t *nvec);

/* The parts of a BAR the device offers for mmap that become KVM memory
 * slots, given the BAR's size and place. */
#define KVM_PCI_MAX_AREAS 8u
#define KVM_PCI_PAGE 4096u
struct kvm_pci_range {
	uint64_t off;  /* from the BAR's start (and in the mapping) */
	uint64_t size;
	uint64_t gpa;  /* base + off */
};

/*
 * The slots of a BAR of bar_size at base whose mappable parts are areas
 * (n of them, offsets from the BAR's start; with sparse false the whole
 * BAR, areas unused): fills out (up to KVM_PCI_MAX_AREAS) and returns how
 * many, skipping empty areas. -EINVAL (nothing is mapped): an area, or the
 * base, not aligned to KVM_PCI_PAGE, a size not a multiple of it, an area
 * outside the BAR or overlapping the one before it (areas ascend), more
 * than KVM_PCI_MAX_AREAS areas, or a BAR that would end above 2^52.
 */
int kvm_pci_bar_ranges(uint64_t bar_size, bool sparse,
		       const struct vfmig_vmm_area *areas, uint32_t n,
		       uint64_t base, struct kvm_pci_range *out);

/* ---- the bus ---- */

/* An ioeventfd the device offers in one of its BARs (kvm_ioefd.c):
 * registered with KVM at gpa (0: not registered). */
#define KVM_PCI_MAX_IOEFD 8u
struct kvm_pci_ioefd {
	uint32_t bar, size, flags; /* flags: VFMIG_VMM_IOEVENTFD_* */
	uint64_t off, datamatch;
	uint64_t gpa;
	int fd;
};

struct kvm_pci_msix_entry {
	uint32_t addr_lo, addr_hi, data, ctrl;
};

struct kvm_pci_dev {
	vfmig_vmm_dev *dev;
	uint64_t bar_size[KVM_PCI_NBARS]; /* 0: no such BAR */
	uint64_t bar_base[KVM_PCI_NBARS];
	bool mem_on;                      /* command register bit 1 */
	/* MSI-X: table in BAR msix_bar at msix_off, nvec vectors (0: none) */
	uint32_t msix_bar, msix_off, nvec;
	struct kvm_pci_msix_entry msix[KVM_PCI_MAX_VEC];
	uint64_t cfg_accesses, mmio_accesses;
	/* BAR b's mmap'ed parts (kvm_bar.c): nmap[b] of them, at host,
	 * installed as memory slots at slot_base[b] (0: none). */
	struct {
		void *host;
		uint64_t off, size;
	} map[KVM_PCI_NBARS][KVM_PCI_MAX_AREAS];
	uint32_t nmap[KVM_PCI_NBARS];
	uint64_t slot_base[KVM_PCI_NBARS];
	bool no_map[KVM_PCI_NBARS]; /* refused: left to exits */
	/* ioeventfds (kvm_ioefd.c) and the BAR writes that still exited
	 * inside their ranges (none while they are registered). */
	struct kvm_pci_ioefd io[KVM_PCI_MAX_IOEFD];
	uint32_t nio;
	uint64_t io_exits;
};

/* Told after the guest wrote MSI-X table entry vec of device slot, or after
 * any config write to slot (vec = UINT32_MAX): the VMM re-routes. Returns
 * 0 or a negative errno that fails the access. */
typedef int (*kvm_pci_notify_fn)(void *priv, unsigned int slot, uint32_t vec);

struct kvm_pci {
	struct vfmig_vm *vm;
	unsigned int ndevs;
	struct kvm_pci_dev devs[8];
	uint32_t cf8;
	kvm_pci_notify_fn notify;
	void *priv;
};

/* Read each device's BAR sizes and MSI-X capability. Errors: device
 * errors, with err naming the device. */
int kvm_pci_init(struct kvm_pci *bus, struct vfmig_vm *vm,
		 kvm_pci_notify_fn notify, void *priv, char *err,
		 size_t errlen);

/* A PIO exit at port: 0 handled (data read or written, size bytes),
 * -ENOENT not a PCI port, else a device error. */
int kvm_pci_pio(struct kvm_pci *bus, uint16_t port, bool write,
		uint8_t *data, unsigned int size);

/* An MMIO exit at gpa: 0 handled, -ENOENT no enabled BAR covers
 * [gpa, gpa + len) (the caller decides), else a device error. */
int kvm_pci_mmio(struct kvm_pci *bus, uint64_t gpa, bool write,
		 uint8_t *data, unsigned int len);

#endif
