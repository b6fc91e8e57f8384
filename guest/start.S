/* SPDX-License-Identifier: MIT */
/*
 * The guest image's header, its ring-3 entry and its only ring-0 code: the
 * exception and MSI-X handlers. Ring-0 code is emulated instruction by
 * instruction on a PVM host, so each handler is a handful of instructions
 * (src/kvm/kvm_abi.h is the contract, docs/kvm.md the explanation).
 */
#include "kvm/kvm_abi.h"

#define FAULT_STRIDE 16
#define IRQ_STRIDE 32
#define NIRQ (KG_MAX_DEVS * KG_VEC_PER_DEV)

	.section .note.GNU-stack, "", @progbits

	.section .header, "a"
	.long KG_HDR_MAGIC, KG_VERSION
	.quad _start, __image_end
	.set v, 0
	.rept KG_NVEC
	.if v < 32
	.quad fault_stubs + v * FAULT_STRIDE
	.elseif v >= KG_VEC_MSI && v < KG_VEC_MSI + NIRQ
	.quad irq_stubs + (v - KG_VEC_MSI) * IRQ_STRIDE
	.else
	.quad 0
	.endif
	.set v, v + 1
	.endr

	.text
	.globl _start
_start:				/* ring 3, RSP = KG_USTACK_TOP */
	call kg_main
1:	pause
	jmp 1b

/* Exceptions: record vector, error code and RIP, tell the VMM, spin. The
 * CPU pushes an error code for vectors 8, 10-14, 17, 21, 29 and 30; the
 * others push a zero in its place so that one common path serves all. */
	.balign FAULT_STRIDE
fault_stubs:
	.set v, 0
	.rept 32
	.balign FAULT_STRIDE
	.if (v == 8) || ((v >= 10) && (v <= 14)) || (v == 17) || (v == 21) || (v == 29) || (v == 30)
	.else
	pushq $0
	.endif
	pushq $v
	jmp fault_common
	.set v, v + 1
	.endr

fault_common:			/* ring 0; never returns */
	popq %rax
	movq %rax, KG_STATUS_ADDR + KG_ST_FAULT_VECTOR
	popq %rax
	movq %rax, KG_STATUS_ADDR + KG_ST_FAULT_CODE
	popq %rax
	movq %rax, KG_STATUS_ADDR + KG_ST_FAULT_RIP
	movq $2, KG_STATUS_ADDR + KG_ST_STATE	/* KG_STATE_FAILED */
	lock incq KG_STATUS_ADDR + KG_ST_ERRORS
	movl $KG_EV_FAULT, %eax
	movw $KG_PORT_EVENT, %dx
	outl %eax, %dx
1:	jmp 1b

/* MSI-X vector q of device d: count it in the status page, EOI, return. */
	.balign IRQ_STRIDE
irq_stubs:
	.set i, 0
	.rept NIRQ
	.balign IRQ_STRIDE
	lock incq KG_STATUS_ADDR + KG_ST_DEV + (i / KG_VEC_PER_DEV) * KG_ST_DEV_SIZE + KG_ST_DEV_IRQS + (i % KG_VEC_PER_DEV) * 8
	pushq %rax
	movabsq $(KG_LAPIC_ADDR + 0xb0), %rax
	movl $0, (%rax)
	popq %rax
	iretq
	.set i, i + 1
	.endr
