/* SPDX-License-Identifier: MIT */
/*
 * Inside the KVM backend: the state kvm_vm.c (the VM, the vCPU thread,
 * interrupts, stats and verify) and kvm_mig.c (its migration: the dirty
 * log, saving and restoring the vCPU) share. Not installed; nothing
 * outside src/kvm includes it.
 */
#ifndef VFMIG_KVM_INTERNAL_H
#define VFMIG_KVM_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "kvm/kvm.h"
#include "kvm/kvm_pci.h"
#include "kvm/kvm_vcpu.h"

struct kvm_run;
struct vfmig_ram;
struct vfmig_stream_writer;

#define KVM__GSI_BASE 24u /* above the IOAPIC's pins */
#define KVM__NGSI (8u * KVM_PCI_MAX_VEC)
#define KVM__LOG_PAGE 4096u /* KVM's dirty log: one bit per 4 KiB page */

/* KVM_GET_DIRTY_LOG while a migration tracks the vCPU's writes. */
struct kvm__dirty {
	bool on;           /* KVM_MEM_LOG_DIRTY_PAGES is (to be) set */
	uint64_t *bitmap;  /* one bit per KVM__LOG_PAGE of the memslot */
	uint64_t words;
	uint64_t syncs, pages; /* since it was switched on */
	double ms_total, ms_max;
};

struct vfmig_kvm {
	struct vfmig_kvm_opts opts;
	struct vfmig_vm *vm;
	struct vfmig_ram *ram;
	int kvm_fd, vm_fd, vcpu_fd;
	struct kvm_run *run;
	size_t run_size;
	struct kvm_pci bus;
	bool bus_ready;
	bool irqfd_on[KVM__NGSI];
	uint64_t tsc_khz;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	bool started, quit, parked, failed;
	bool slot_set;            /* the memslot exists */
	unsigned int pause_count; /* the VM's pauses */
	unsigned int hold_count;  /* stats, verify, the memslot's flags */
	char error[256];          /* guarded by lock */
	struct vfmig_kvm_exits exits; /* guarded by lock */
	pthread_mutex_t verify_lock;

	struct kvm__dirty dirty;  /* the migration thread's */
	/* Destination: the vCPU state the stream brought; start resumes
	 * the guest from it instead of booting it. */
	struct vfmig_kvm_vcpu_state *restore;
};

/* kvm_vm.c */
int kvm__ioctl_err(char *err, size_t errlen, const char *what);
int kvm__set_routes(struct vfmig_kvm *k);
int kvm__wire_irqfd(struct vfmig_kvm *k, unsigned int slot, uint32_t vec);
/* kvm_pci_notify_fn of the bus. */
int kvm__pci_notify(void *priv, unsigned int slot, uint32_t vec);
int kvm__memslot(struct vfmig_kvm *k, char *err, size_t errlen);
int kvm__vcpu_create(struct vfmig_kvm *k, char *err, size_t errlen);
/* Counted holds of the vCPU thread (parked while any count is up). */
void kvm__hold(struct vfmig_kvm *k, unsigned int *c);
void kvm__unhold(struct vfmig_kvm *k, unsigned int *c);

/* kvm_bar.c: BARs the device offers for mmap as memory slots. Map them
 * (after the bus is read), install/move/remove one device's slots after a
 * config write, unmap all (the VM's slots die with it), remove the slots
 * and unmap all while the VM lives on (before the bus is read again), log
 * the exits. */
void kvm__bar_map(struct vfmig_kvm *k);
void kvm__bar_sync(struct vfmig_kvm *k, unsigned int slot);
void kvm__bar_unmap(struct vfmig_kvm *k);
void kvm__bar_release(struct vfmig_kvm *k);
void kvm__bar_report(struct vfmig_kvm *k);

/* kvm_ioefd.c: the ioeventfds the devices offer for their BARs. Fetch
 * them (after the bus is read; a device without any, or that refuses the
 * message, keeps its writes as messages), register/move/remove one
 * device's with KVM where its BARs are now (kvm__bar_sync calls it), and
 * deregister and close all. */
void kvm__ioefd_fetch(struct vfmig_kvm *k);
void kvm__ioefd_sync(struct vfmig_kvm *k, unsigned int slot);
void kvm__ioefd_release(struct vfmig_kvm *k);

/* kvm_mig.c: the backend's version 2 hooks (guest.h). */
int kvm__dirty_track(void *priv, bool on, char *err, size_t errlen);
int kvm__dirty_sync(void *priv, char *err, size_t errlen);
int kvm__save_cpus(void *priv, struct vfmig_stream_writer *w, char *err,
		   size_t errlen);
int kvm__load_cpu(void *priv, uint16_t vcpu, const uint8_t *state,
		  size_t len, char *err, size_t errlen);
int kvm__cpus_loaded(void *priv, char *err, size_t errlen);
void kvm__forget_cpus(void *priv);
/* The PCI bus of a restored VM: BARs and MSI-X from the devices' loaded
 * state, the config address latch from the vCPU state. Once. */
int kvm__restore_bus(struct vfmig_kvm *k, char *err, size_t errlen);
/* Start from the restored state: the vCPU, routes and irqfds. The
 * caller then starts the vCPU thread. */
int kvm__restore_start(struct vfmig_kvm *k, char *err, size_t errlen);
/* Requests the guest has submitted and not seen completed, from its
 * status page (all devices). */
uint64_t kvm__inflight(const struct vfmig_kvm *k);

#endif
