/* SPDX-License-Identifier: MIT */
/*
 * `vfmig vmm --kvm`: the VM's workload is a real guest (the image built
 * from guest/, kvm_abi.h) on one KVM vCPU instead of the driver thread.
 * The guest's RAM is the VM's RAM memfd mapping (one memslot at
 * guest-physical 0, the same memory the devices map for DMA); its port and
 * MMIO exits to PCI config space and to BARs become vfio-user region
 * messages (kvm_pci.h); each device's MSI-X vectors are routed through
 * KVM's in-kernel LAPIC with irqfds on the VM's MSI-X eventfds.
 *
 * It plugs into the VM as a guest backend (guest.h): create the KVM object
 * first (it opens /dev/kvm and makes the KVM VM, so that a machine without
 * usable KVM fails before any device is touched), hand vfmig_kvm_backend
 * and it to vfmig_vm_opts, and destroy it after the VM.
 *
 * BARs the device offers for mmap are KVM memory slots where the guest
 * placed them (kvm_bar.c). Registers the devices offer ioeventfds for
 * (a doorbell) are KVM ioeventfds at the BAR's place (kvm_ioefd.c): the
 * guest's writes there signal the device without an exit.
 *
 * Errors: negative errno with a message in err naming the step.
 */
#ifndef VFMIG_KVM_H
#define VFMIG_KVM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/guest.h"

struct vfmig_kvm;

/* The guest's RAM: from 8 MiB (its fixed layout) up to 3.5 GiB (the BARs
 * and the LAPIC live above). */
#define VFMIG_KVM_RAM_MIN (8ull << 20)
#define VFMIG_KVM_RAM_MAX 0xe0000000ull

#define VFMIG_KVM_OPTS_VERSION 1
struct vfmig_kvm_opts {
	uint32_t version;          /* VFMIG_KVM_OPTS_VERSION */
	uint64_t seed;             /* 0: from the clock */
	unsigned int stamps_per_iter; /* 0: 4 */
	unsigned int interval_us;  /* idle after each iteration; 0: 1000 */
	/* Tests only: MSI-X vectors are not given irqfds, so no interrupt
	 * reaches the guest (which then reports the first one it misses). */
	bool test_no_irqfd;
	/* Tests only: a migration does not track the vCPU's writes (no
	 * KVM dirty log), so pages it writes after they were sent are lost
	 * (the test that the dirty log is what saves them). */
	bool test_no_dirty_log;
	/* Tests only: BARs the device offers for mmap are not mapped, so
	 * every access to them exits and becomes a message. */
	bool test_no_bar_mmap;
	/* Tests only: the devices' ioeventfds are fetched but not
	 * registered with KVM, so doorbell writes exit and become messages
	 * (the count of those exits is what the test compares). */
	bool test_no_ioeventfd;
	/* Benchmarks only: the guest times its exits once at boot and the
	 * VMM logs them beside the same REGION_READ made without a guest
	 * (bench/bench-kvm-exits.sh). */
	bool bench_exits;
};

/*
 * Open /dev/kvm, check the API version and the capabilities the VMM needs
 * (in-kernel irqchip, irqfd, GSI routing, immediate_exit, user memory),
 * create the KVM VM and its irqchip. Errors: the errno of open (-ENOENT:
 * no /dev/kvm, -EACCES), -ENOTSUP (a capability missing: err names it),
 * the errno of KVM_CREATE_VM or KVM_CREATE_IRQCHIP; err says which.
 */
int vfmig_kvm_create(const struct vfmig_kvm_opts *o, struct vfmig_kvm **out,
		     char *err, size_t errlen);

/* Stop the vCPU (if the VM did not) and close everything. NULL ok. */
void vfmig_kvm_destroy(struct vfmig_kvm *k);

/* The guest backend; its priv is the struct vfmig_kvm. */
extern const struct vfmig_guest_backend vfmig_kvm_backend;

/* Exit counts of the vCPU so far (for the bench and logs). */
struct vfmig_kvm_exits {
	uint64_t pio, mmio, pci_cfg, bar, unhandled, intr, idle;
};
void vfmig_kvm_exits(struct vfmig_kvm *k, struct vfmig_kvm_exits *e);

#endif
