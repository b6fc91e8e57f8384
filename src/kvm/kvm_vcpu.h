/* SPDX-License-Identifier: MIT */
/*
 * The KVM guest's vCPU state as it migrates: a plain struct described by a
 * field table ("kvm-vcpu", src/stream/fields.h) that the stream's
 * VCPU_STATE record carries (docs/stream-format.md), the conversion to and
 * from KVM's ioctl structs, and the checks a destination makes before any
 * of it reaches KVM. No host struct goes to the wire: every register is a
 * named field; the XSAVE area and the LAPIC register page are byte arrays
 * in their architectural layouts (Intel SDM vol. 1 ch. 13, vol. 3 ch. 11:
 * little-endian as the CPU stores them).
 *
 * What it holds: the general registers, the segment/control/descriptor
 * registers (sregs, EFER and the APIC base included), the XSAVE area, the
 * MSRs of kvm_vcpu_msr_index[] (the TSC is not among them: KVM here cannot
 * set it, docs/kvm.md), mp_state, the LAPIC, the pending events, and one
 * piece of VM state the VMM keeps for the guest: the PCI config address
 * latch (port 0xcf8), which the guest may have written just before the
 * switchover.
 *
 * Errors: -EINVAL with a message in err naming the field and its value.
 */
#ifndef VFMIG_KVM_VCPU_H
#define VFMIG_KVM_VCPU_H

#include <stddef.h>
#include <stdint.h>

#include "stream/fields.h"

#define VFMIG_KVM_VCPU_STATE_VERSION 1
#define KVM_VCPU_XSAVE_SIZE 4096u
#define KVM_VCPU_LAPIC_SIZE 1024u
#define KVM_VCPU_NMSRS 9u

struct kvm_vcpu_seg {
	uint64_t base;
	uint32_t limit;
	uint16_t selector;
	uint8_t type, present, dpl, db, s, l, g, avl;
};

struct vfmig_kvm_vcpu_state {
	uint32_t vcpu; /* index; 0 (one vCPU) */
	uint32_t tsc_khz; /* the source's, for the guest's timeouts */
	uint64_t ram_size;
	/* regs */
	uint64_t rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp;
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
	uint64_t rip, rflags;
	/* sregs */
	struct kvm_vcpu_seg cs, ds, es, fs, gs, ss, tr, ldt;
	uint64_t gdt_base, idt_base;
	uint16_t gdt_limit, idt_limit;
	uint64_t cr0, cr2, cr3, cr4, cr8, efer, apic_base;
	uint64_t interrupt_bitmap[4];
	/* MSRs, in the order of kvm_vcpu_msr_index[] */
	uint64_t msr_star, msr_lstar, msr_cstar, msr_sfmask;
	uint64_t msr_kernel_gs_base;
	uint64_t msr_sysenter_cs, msr_sysenter_esp, msr_sysenter_eip;
	uint64_t msr_pat;
	uint32_t mp_state;
	uint8_t xsave[KVM_VCPU_XSAVE_SIZE];
	uint8_t lapic[KVM_VCPU_LAPIC_SIZE];
	/* vcpu events */
	uint8_t exc_injected, exc_nr, exc_has_error_code, exc_pending;
	uint32_t exc_error_code;
	uint8_t int_injected, int_nr, int_soft, int_shadow;
	uint8_t nmi_injected, nmi_pending, nmi_masked;
	uint8_t smi_smm, smi_pending, smi_inside_nmi, smi_latched_init;
	uint32_t sipi_vector;
	uint32_t event_flags; /* KVM_VCPUEVENT_VALID_*: which parts count */
	/* VM */
	uint32_t pci_cf8;
};

extern const struct vfmig_fields_desc vfmig_kvm_vcpu_desc;

/* The MSR numbers of the msr_* members, in member order. */
extern const uint32_t kvm_vcpu_msr_index[KVM_VCPU_NMSRS];
extern const char *const kvm_vcpu_msr_name[KVM_VCPU_NMSRS];

/*
 * Check a state a stream brought, before it goes near KVM: the vCPU index
 * (0), RAM size equal to ram_size, the long-mode CPU this guest runs
 * (CR0.PE/PG, EFER.LME/LMA, CR4.PAE, known bits only), segment fields in
 * range, canonical RIP, bases and MSRs, RFLAGS bit 1, a known mp_state, an
 * event set KVM can take (exception vector < 32, booleans 0/1, only the
 * event flags this code fills), an XSAVE area in the standard format (no
 * compaction, reserved header bytes zero, MXCSR's reserved bits clear) and
 * a LAPIC whose ID is the vCPU's and whose base is the guest's
 * (0xfee00000). Returns 0 or -EINVAL with err naming the first problem.
 */
int kvm_vcpu_state_check(const struct vfmig_kvm_vcpu_state *s,
			 uint64_t ram_size, char *err, size_t errlen);

/* Read the vCPU's state from KVM (vcpu_fd; the vCPU must not run) into
 * s. Errors: the ioctl's -errno with err naming it (a MSR KVM does not
 * return is named). */
int kvm_vcpu_save(int vcpu_fd, struct vfmig_kvm_vcpu_state *s, char *err,
		  size_t errlen);

/* Load a checked state into a new vCPU, in the order KVM needs (sregs
 * before regs, the LAPIC before the events). Errors as save. */
int kvm_vcpu_load(int vcpu_fd, const struct vfmig_kvm_vcpu_state *s,
		  char *err, size_t errlen);

#endif
