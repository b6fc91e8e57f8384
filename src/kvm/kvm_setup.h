/* SPDX-License-Identifier: MIT */
/*
 * What the VMM writes into guest RAM before the KVM guest's first
 * instruction (kvm_abi.h): the image with its header checked, the page
 * tables, the GDT and TSS, the IDT, the boot page; and the segment values
 * KVM_SET_SREGS loads. Pure functions over a RAM buffer, so that unit tests
 * check them byte by byte.
 *
 * Errors: -EINVAL with a message in err naming what is wrong.
 */
#ifndef VFMIG_KVM_SETUP_H
#define VFMIG_KVM_SETUP_H

#include <stddef.h>
#include <stdint.h>

#include "kvm/kvm_abi.h"

/*
 * Check the image (size, header magic and version, entry and every
 * handler inside the image, image_end within KG_IMAGE_MAX) and copy it to
 * ram + KG_IMAGE_ADDR, zeroing its bss. ram_size must hold the image.
 * *hdr gets the header.
 */
int kvm_setup_image(uint8_t *ram, uint64_t ram_size, const uint8_t *img,
		    size_t len, struct kg_header *hdr, char *err,
		    size_t errlen);

/* Page tables at KG_PT_ADDR identity-mapping 0..4 GiB with 2 MiB pages,
 * present, writable, user; the 3..4 GiB quarter (MMIO, LAPIC) uncached. */
void kvm_setup_paging(uint8_t *ram);

/* 2 MiB page entry for guest-physical address gpa (< 4 GiB), as
 * kvm_setup_paging writes it. */
uint64_t kvm_setup_pde(uint64_t gpa);

/* GDT (null, kernel code/data, user data/code, 64-bit TSS) and the TSS
 * with RSP0 = KG_KSTACK_TOP and an I/O bitmap that allows every port. */
void kvm_setup_gdt(uint8_t *ram);

/* The IDT: an interrupt gate (kernel code, DPL 0) for every vector whose
 * handler the header names, the others not present. */
void kvm_setup_idt(uint8_t *ram, const struct kg_header *hdr);

/* Decode IDT entry v back to its handler address and present bit (for
 * tests and diagnostics). */
uint64_t kvm_setup_idt_handler(const uint8_t *ram, unsigned int v,
			       int *present);

/* The boot page. stamp pages: as many as RAM above KG_STAMP_ADDR holds,
 * at most KG_STAMP_MAX_PAGES. */
void kvm_setup_boot(uint8_t *ram, uint64_t ram_size, uint64_t seed,
		    uint64_t stamps_per_iter, uint64_t flags,
		    uint64_t tsc_per_ms, uint64_t interval_us);
uint64_t kvm_setup_stamp_pages(uint64_t ram_size);

#endif
