/* SPDX-License-Identifier: MIT */
/* Guest RAM setup for the KVM guest (kvm_setup.h). */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "kvm/kvm_setup.h"

#define PTE_P 0x1ull
#define PTE_RW 0x2ull
#define PTE_US 0x4ull
#define PTE_PWT 0x8ull
#define PTE_PCD 0x10ull
#define PTE_PS 0x80ull

static void put64(uint8_t *ram, uint64_t addr, uint64_t v)
{
	v = htole64(v);
	memcpy(ram + addr, &v, sizeof(v));
}

static uint64_t get64(const uint8_t *ram, uint64_t addr)
{
	uint64_t v;

	memcpy(&v, ram + addr, sizeof(v));
	return le64toh(v);
}

static bool in_image(uint64_t addr, uint64_t end)
{
	return addr >= KG_IMAGE_ADDR + sizeof(struct kg_header) && addr < end;
}

int kvm_setup_image(uint8_t *ram, uint64_t ram_size, const uint8_t *img,
		    size_t len, struct kg_header *hdr, char *err,
		    size_t errlen)
{
	struct kg_header h;

	if (len < sizeof(h)) {
		snprintf(err, errlen, "guest image: %zu bytes, shorter than "
			 "its header", len);
		return -EINVAL;
	}
	memcpy(&h, img, sizeof(h));
	h.magic = le32toh(h.magic);
	h.version = le32toh(h.version);
	h.entry = le64toh(h.entry);
	h.image_end = le64toh(h.image_end);
	for (unsigned int v = 0; v < KG_NVEC; v++)
		h.handler[v] = le64toh(h.handler[v]);
	if (h.magic != KG_HDR_MAGIC || h.version != KG_VERSION) {
		snprintf(err, errlen, "guest image: magic 0x%08" PRIx32
			 " version %" PRIu32 ", want 0x%08x version %u",
			 h.magic, h.version, KG_HDR_MAGIC, KG_VERSION);
		return -EINVAL;
	}
	if (h.image_end < KG_IMAGE_ADDR + len ||
	    h.image_end > KG_IMAGE_ADDR + KG_IMAGE_MAX ||
	    h.image_end > ram_size) {
		snprintf(err, errlen, "guest image: end 0x%" PRIx64 " outside "
			 "[0x%llx + %zu, 0x%llx] or RAM", h.image_end,
			 (unsigned long long)KG_IMAGE_ADDR, len,
			 (unsigned long long)(KG_IMAGE_ADDR + KG_IMAGE_MAX));
		return -EINVAL;
	}
	if (!in_image(h.entry, h.image_end)) {
		snprintf(err, errlen, "guest image: entry 0x%" PRIx64
			 " outside the image", h.entry);
		return -EINVAL;
	}
	for (unsigned int v = 0; v < KG_NVEC; v++)
		if (h.handler[v] && !in_image(h.handler[v], h.image_end)) {
			snprintf(err, errlen, "guest image: handler of vector "
				 "%u at 0x%" PRIx64 " outside the image", v,
				 h.handler[v]);
			return -EINVAL;
		}
	memcpy(ram + KG_IMAGE_ADDR, img, len);
	memset(ram + KG_IMAGE_ADDR + len, 0, h.image_end - KG_IMAGE_ADDR - len);
	*hdr = h;
	return 0;
}

uint64_t kvm_setup_pde(uint64_t gpa)
{
	uint64_t e = (gpa & ~((2ull << 20) - 1)) | PTE_P | PTE_RW | PTE_US |
		     PTE_PS;

	if (gpa >= (3ull << 30))
		e |= PTE_PCD | PTE_PWT;
	return e;
}

void kvm_setup_paging(uint8_t *ram)
{
	const uint64_t pml4 = KG_PT_ADDR, pdpt = pml4 + 0x1000;
	const uint64_t flags = PTE_P | PTE_RW | PTE_US;

	memset(ram + KG_PT_ADDR, 0, KG_PT_PAGES * 0x1000ull);
	put64(ram, pml4, pdpt | flags);
	for (uint64_t i = 0; i < 4; i++) {
		uint64_t pd = pdpt + 0x1000 * (i + 1);
		put64(ram, pdpt + i * 8, pd | flags);
		for (uint64_t j = 0; j < 512; j++)
			put64(ram, pd + j * 8,
			      kvm_setup_pde(i << 30 | j << 21));
	}
}

/* A code or data descriptor: base 0, limit 4 GiB. */
static uint64_t seg_desc(unsigned int type, unsigned int dpl, bool code64)
{
	uint64_t d = 0xffffull | 0xfull << 48; /* limit */

	d |= (uint64_t)(type | 0x10u | dpl << 5 | 0x80u) << 40; /* S, P */
	d |= (code64 ? 0x2ull : 0x4ull) << 52; /* L or D/B */
	d |= 0x8ull << 52;			/* G */
	return d;
}

void kvm_setup_gdt(uint8_t *ram)
{
	const uint64_t tss = KG_TSS_ADDR, lim = KG_TSS_LIMIT;

	memset(ram + KG_GDT_ADDR, 0, KG_GDT_ENTRIES * 8);
	put64(ram, KG_GDT_ADDR + KG_SEL_KCODE, seg_desc(0xb, 0, true));
	put64(ram, KG_GDT_ADDR + KG_SEL_KDATA, seg_desc(0x3, 0, false));
	put64(ram, KG_GDT_ADDR + (KG_SEL_UDATA & ~3u), seg_desc(0x3, 3, false));
	put64(ram, KG_GDT_ADDR + (KG_SEL_UCODE & ~3u), seg_desc(0xb, 3, true));
	/* 64-bit available TSS, 16 bytes. */
	put64(ram, KG_GDT_ADDR + KG_SEL_TSS,
	      (lim & 0xffff) | (tss & 0xffffff) << 16 | 0x89ull << 40 |
		      ((lim >> 16) & 0xf) << 48 | ((tss >> 24) & 0xff) << 56);
	put64(ram, KG_GDT_ADDR + KG_SEL_TSS + 8, tss >> 32);
	memset(ram + KG_TSS_ADDR, 0, lim + 1);
	put64(ram, KG_TSS_ADDR + 4, KG_KSTACK_TOP); /* RSP0 */
	/* The I/O bitmap right after the 104 bytes, all ports allowed (all
	 * bits clear), then the 0xff byte that must end it. */
	ram[KG_TSS_ADDR + 0x66] = 0x68;
	ram[KG_TSS_ADDR + 0x67] = 0;
	ram[KG_TSS_ADDR + lim] = 0xff;
}

void kvm_setup_idt(uint8_t *ram, const struct kg_header *hdr)
{
	memset(ram + KG_IDT_ADDR, 0, 256 * 16);
	for (unsigned int v = 0; v < KG_NVEC; v++) {
		uint64_t h = hdr->handler[v], at = KG_IDT_ADDR + v * 16ull;
		if (!h)
			continue;
		put64(ram, at, (h & 0xffff) | (uint64_t)KG_SEL_KCODE << 16 |
				       0x8eull << 40 |
				       ((h >> 16) & 0xffff) << 48);
		put64(ram, at + 8, h >> 32);
	}
}

uint64_t kvm_setup_idt_handler(const uint8_t *ram, unsigned int v,
			       int *present)
{
	uint64_t lo = get64(ram, KG_IDT_ADDR + v * 16ull);
	uint64_t hi = get64(ram, KG_IDT_ADDR + v * 16ull + 8);

	*present = (int)((lo >> 47) & 1);
	return (lo & 0xffff) | ((lo >> 48) & 0xffff) << 16 | (hi & 0xffffffff)
								      << 32;
}

uint64_t kvm_setup_stamp_pages(uint64_t ram_size)
{
	uint64_t n = ram_size > KG_STAMP_ADDR
			     ? (ram_size - KG_STAMP_ADDR) / 4096
			     : 0;

	return n > KG_STAMP_MAX_PAGES ? KG_STAMP_MAX_PAGES : n;
}

void kvm_setup_boot(uint8_t *ram, uint64_t ram_size, uint64_t seed,
		    uint64_t stamps_per_iter, uint64_t flags,
		    uint64_t tsc_per_ms, uint64_t interval_us)
{
	struct kg_boot b = {
		.magic = htole64(KG_BOOT_MAGIC),
		.version = htole64(KG_BOOT_VERSION),
		.ram_size = htole64(ram_size),
		.seed = htole64(seed),
		.stamp_pages = htole64(kvm_setup_stamp_pages(ram_size)),
		.stamps_per_iter = htole64(stamps_per_iter),
		.flags = htole64(flags),
		.tsc_per_ms = htole64(tsc_per_ms),
		.interval_us = htole64(interval_us),
	};

	memset(ram + KG_BOOT_ADDR, 0, 4096);
	memcpy(ram + KG_BOOT_ADDR, &b, sizeof(b));
}
