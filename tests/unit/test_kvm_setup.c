/* SPDX-License-Identifier: MIT */
/*
 * The pure parts of `vfmig vmm --kvm`: PCI configuration address decoding,
 * BAR bases and the MSI-X capability (kvm_pci.h), and what the VMM writes
 * into guest RAM before the guest starts (kvm_setup.h): page tables walked as the CPU walks them,
 * GDT and TSS descriptors decoded field by field, IDT gates, the image
 * header checks, the boot page.
 */
#include <endian.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kvm/kvm_pci.h"
#include "kvm/kvm_setup.h"

#define RAM (8u << 20)

static uint64_t rd64(const uint8_t *ram, uint64_t a)
{
	uint64_t v;

	memcpy(&v, ram + a, 8);
	return le64toh(v);
}

static uint32_t cf8(unsigned bus, unsigned slot, unsigned fn, unsigned reg)
{
	return 0x80000000u | bus << 16 | slot << 11 | fn << 8 | reg;
}

static void test_cfg_decode(void **state)
{
	unsigned int slot = 99;
	uint32_t off = 99;
	(void)state;

	assert_int_equal(kvm_pci_cfg_decode(cf8(0, 3, 0, 0x10), 0xcfc, 4, 4,
					    &slot, &off), 0);
	assert_int_equal(slot, 3);
	assert_int_equal(off, 0x10);
	/* Sub-dword data ports add their byte offset. */
	assert_int_equal(kvm_pci_cfg_decode(cf8(0, 1, 0, 0x04), 0xcfe, 2, 4,
					    &slot, &off), 0);
	assert_int_equal(off, 0x06);
	assert_int_equal(kvm_pci_cfg_decode(cf8(0, 1, 0, 0x3c), 0xcff, 1, 4,
					    &slot, &off), 0);
	assert_int_equal(off, 0x3f);
	/* The low two address bits are not part of the register. */
	assert_int_equal(kvm_pci_cfg_decode(cf8(0, 0, 0, 0x13), 0xcfc, 4, 1,
					    &slot, &off), 0);
	assert_int_equal(off, 0x10);
	/* Enable bit clear, another bus, a function, an empty slot. */
	assert_int_equal(kvm_pci_cfg_decode(cf8(0, 0, 0, 0) & ~0x80000000u,
					    0xcfc, 4, 1, &slot, &off), -ENOENT);
	assert_int_equal(kvm_pci_cfg_decode(cf8(1, 0, 0, 0), 0xcfc, 4, 1,
					    &slot, &off), -ENOENT);
	assert_int_equal(kvm_pci_cfg_decode(cf8(0, 0, 1, 0), 0xcfc, 4, 1,
					    &slot, &off), -ENOENT);
	assert_int_equal(kvm_pci_cfg_decode(cf8(0, 1, 0, 0), 0xcfc, 4, 1,
					    &slot, &off), -ENOENT);
	assert_int_equal(kvm_pci_cfg_decode(cf8(0, 31, 0, 0), 0xcfc, 4, 8,
					    &slot, &off), -ENOENT);
	/* Misaligned, leaving the data port, odd sizes, other ports. */
	assert_int_equal(kvm_pci_cfg_decode(cf8(0, 0, 0, 0), 0xcfd, 2, 1,
					    &slot, &off), -EINVAL);
	assert_int_equal(kvm_pci_cfg_decode(cf8(0, 0, 0, 0), 0xcfe, 4, 1,
					    &slot, &off), -EINVAL);
	assert_int_equal(kvm_pci_cfg_decode(cf8(0, 0, 0, 0), 0xcfc, 3, 1,
					    &slot, &off), -EINVAL);
	assert_int_equal(kvm_pci_cfg_decode(cf8(0, 0, 0, 0), 0xcf8, 4, 1,
					    &slot, &off), -EINVAL);
	assert_int_equal(kvm_pci_cfg_decode(cf8(0, 0, 0, 0), 0xd00, 1, 1,
					    &slot, &off), -EINVAL);
}

/* A capability at pos with id and next pointer; MSI-X gets its message
 * control (vectors - 1) and table word. */
static void put_cap(uint8_t *cfg, unsigned pos, uint8_t id, uint8_t next,
		    uint16_t ctrl, uint32_t tbl)
{
	cfg[pos] = id;
	cfg[pos + 1] = next;
	cfg[pos + 2] = (uint8_t)ctrl;
	cfg[pos + 3] = (uint8_t)(ctrl >> 8);
	for (unsigned i = 0; i < 4; i++)
		cfg[pos + 4 + i] = (uint8_t)(tbl >> (8 * i));
}

static void test_parse_msix(void **state)
{
	uint8_t cfg[256];
	uint64_t bars[KVM_PCI_NBARS] = { 0x1000, 0, 0x4000 };
	uint32_t bar = 99, off = 99, nvec = 99;
	(void)state;

	/* PM at 0x40, then MSI-X at 0x50: 4 vectors in BAR 2 at 0x3000. */
	memset(cfg, 0, sizeof(cfg));
	cfg[0x34] = 0x40;
	put_cap(cfg, 0x40, 0x01, 0x50, 0, 0);
	put_cap(cfg, 0x50, 0x11, 0x00, 3, 0x3000 | 2);
	assert_int_equal(kvm_pci_parse_msix(cfg, bars, &bar, &off, &nvec), 0);
	assert_int_equal(bar, 2);
	assert_int_equal(off, 0x3000);
	assert_int_equal(nvec, 4);

	/* The last vector's entry ends exactly at the BAR's end: it fits;
	 * one more byte of offset does not. */
	put_cap(cfg, 0x50, 0x11, 0x00, 3, 0x3fc0 | 2);
	assert_int_equal(kvm_pci_parse_msix(cfg, bars, &bar, &off, &nvec), 0);
	put_cap(cfg, 0x50, 0x11, 0x00, 3, 0x3fc8 | 2);
	assert_int_equal(kvm_pci_parse_msix(cfg, bars, &bar, &off, &nvec),
			 -ERANGE);
	/* A BAR that does not exist, a BIR past the BARs, too many vectors. */
	put_cap(cfg, 0x50, 0x11, 0x00, 0, 1);
	assert_int_equal(kvm_pci_parse_msix(cfg, bars, &bar, &off, &nvec),
			 -ERANGE);
	put_cap(cfg, 0x50, 0x11, 0x00, 0, 7);
	assert_int_equal(kvm_pci_parse_msix(cfg, bars, &bar, &off, &nvec),
			 -ERANGE);
	bars[0] = 1u << 20;
	put_cap(cfg, 0x50, 0x11, 0x00, KVM_PCI_MAX_VEC, 0);
	assert_int_equal(kvm_pci_parse_msix(cfg, bars, &bar, &off, &nvec),
			 -ERANGE);
	put_cap(cfg, 0x50, 0x11, 0x00, KVM_PCI_MAX_VEC - 1, 0);
	assert_int_equal(kvm_pci_parse_msix(cfg, bars, &bar, &off, &nvec), 0);
	assert_int_equal(nvec, KVM_PCI_MAX_VEC);

	/* No MSI-X: an empty list, a list that loops, a pointer into the
	 * header, a capability that would run past config space. */
	put_cap(cfg, 0x50, 0x05, 0x00, 0, 0);
	assert_int_equal(kvm_pci_parse_msix(cfg, bars, &bar, &off, &nvec),
			 -ENOENT);
	put_cap(cfg, 0x50, 0x05, 0x40, 0, 0);
	assert_int_equal(kvm_pci_parse_msix(cfg, bars, &bar, &off, &nvec),
			 -ENOENT);
	memset(cfg, 0, sizeof(cfg));
	cfg[0x34] = 0x10;
	cfg[0x10] = 0x11;
	assert_int_equal(kvm_pci_parse_msix(cfg, bars, &bar, &off, &nvec),
			 -ENOENT);
	cfg[0x34] = 0xfc;
	cfg[0xfc] = 0x11;
	assert_int_equal(kvm_pci_parse_msix(cfg, bars, &bar, &off, &nvec),
			 -ENOENT);
}

static void test_bar_base(void **state)
{
	bool is64;
	(void)state;

	assert_int_equal(kvm_pci_bar_base(0xe0001000u, 0, &is64), 0xe0001000u);
	assert_false(is64);
	/* Prefetchable flag and type bits are not address bits. */
	assert_int_equal(kvm_pci_bar_base(0xe000000cu, 0x12, &is64),
			 0x12e0000000ull);
	assert_true(is64);
	assert_int_equal(kvm_pci_bar_base(0xe0000008u, 0x12, &is64),
			 0xe0000000u);
	assert_false(is64);
	assert_int_equal(kvm_pci_bar_base(0xc001u, 0, &is64), 0); /* I/O */
}

/* Which parts of a BAR become memory slots, and where. */
static void test_bar_ranges(void **state)
{
	struct kvm_pci_range rg[KVM_PCI_MAX_AREAS];
	struct vfmig_vmm_area a[KVM_PCI_MAX_AREAS + 1] = {
		{ 0x0000, 0x1000 }, { 0x1000, 0 }, { 0x3000, 0x2000 },
	};
	(void)state;

	/* No sparse areas: the whole BAR, at its base. */
	assert_int_equal(kvm_pci_bar_ranges(0x10000, false, NULL, 0,
					    0xe0010000u, rg), 1);
	assert_int_equal(rg[0].off, 0);
	assert_int_equal(rg[0].size, 0x10000);
	assert_int_equal(rg[0].gpa, 0xe0010000u);
	/* Sparse: exactly the areas, empty ones skipped, each at base+off. */
	assert_int_equal(kvm_pci_bar_ranges(0x8000, true, a, 3, 0x1200000000ull,
					    rg), 2);
	assert_int_equal(rg[0].gpa, 0x1200000000ull);
	assert_int_equal(rg[0].size, 0x1000);
	assert_int_equal(rg[1].off, 0x3000);
	assert_int_equal(rg[1].size, 0x2000);
	assert_int_equal(rg[1].gpa, 0x1200003000ull);
	/* An area to the BAR's very end is fine; one byte more is not. */
	a[3] = (struct vfmig_vmm_area){ 0x6000, 0x2000 };
	assert_int_equal(kvm_pci_bar_ranges(0x8000, true, a, 4, 0, rg), 3);
	a[3].size = 0x3000;
	assert_int_equal(kvm_pci_bar_ranges(0x8000, true, a, 4, 0, rg),
			 -EINVAL);
	a[3] = (struct vfmig_vmm_area){ 0x9000, 0x1000 }; /* outside */
	assert_int_equal(kvm_pci_bar_ranges(0x8000, true, a, 4, 0, rg),
			 -EINVAL);
	a[3] = (struct vfmig_vmm_area){ UINT64_MAX - 0xfff, 0x1000 };
	assert_int_equal(kvm_pci_bar_ranges(0x8000, true, a, 4, 0, rg),
			 -EINVAL);
	/* Not whole 4 KiB pages: offset, size, or the base. */
	a[3] = (struct vfmig_vmm_area){ 0x6800, 0x1000 };
	assert_int_equal(kvm_pci_bar_ranges(0x8000, true, a, 4, 0, rg),
			 -EINVAL);
	a[3] = (struct vfmig_vmm_area){ 0x6000, 0x800 };
	assert_int_equal(kvm_pci_bar_ranges(0x8000, true, a, 4, 0, rg),
			 -EINVAL);
	assert_int_equal(kvm_pci_bar_ranges(0x8000, true, a, 1, 0xe0000800u,
					    rg), -EINVAL);
	/* A BAR smaller than a page cannot be a slot. */
	assert_int_equal(kvm_pci_bar_ranges(0x800, false, NULL, 0, 0xe0000000u,
					    rg), -EINVAL);
	/* Overlapping or descending areas. */
	a[3] = (struct vfmig_vmm_area){ 0x4000, 0x1000 };
	assert_int_equal(kvm_pci_bar_ranges(0x8000, true, a, 4, 0, rg),
			 -EINVAL);
	/* More areas than slots per BAR. */
	for (unsigned int i = 0; i <= KVM_PCI_MAX_AREAS; i++)
		a[i] = (struct vfmig_vmm_area){ i * 0x1000ull, 0x1000 };
	assert_int_equal(kvm_pci_bar_ranges(0x10000, true, a,
					    KVM_PCI_MAX_AREAS, 0, rg),
			 (int)KVM_PCI_MAX_AREAS);
	assert_int_equal(kvm_pci_bar_ranges(0x10000, true, a,
					    KVM_PCI_MAX_AREAS + 1, 0, rg),
			 -EINVAL);
	/* A base that would put the BAR past 2^52. */
	assert_int_equal(kvm_pci_bar_ranges(0x10000, false, NULL, 0,
					    (1ull << 52) - 0x8000, rg), -EINVAL);
}

/* Walk the tables as the CPU does for a 2 MiB page. */
static uint64_t walk(const uint8_t *ram, uint64_t va, uint64_t *flags)
{
	uint64_t cr3 = KG_PT_ADDR;
	uint64_t e4 = rd64(ram, cr3 + ((va >> 39) & 511) * 8);
	assert_true(e4 & 1);
	uint64_t e3 = rd64(ram, (e4 & ~0xfffull) + ((va >> 30) & 511) * 8);
	assert_true(e3 & 1);
	assert_false(e3 & 0x80); /* not a 1 GiB page */
	uint64_t e2 = rd64(ram, (e3 & ~0xfffull) + ((va >> 21) & 511) * 8);
	assert_true(e2 & 1);
	assert_true(e2 & 0x80);
	*flags = e4 & e3 & e2 & 0x7; /* P, RW, US must hold at every level */
	*flags |= e2 & 0x18;
	return (e2 & ~((2ull << 20) - 1) & 0xffffffffffull) |
	       (va & ((2ull << 20) - 1));
}

static void test_paging(void **state)
{
	uint8_t *ram = calloc(1, RAM);
	uint64_t flags;
	(void)state;

	kvm_setup_paging(ram);
	const uint64_t probes[] = { 0, KG_BOOT_ADDR, KG_IMAGE_ADDR + 0x123,
				    KG_STAMP_ADDR + 0x5008, 0x7fffffffull,
				    (3ull << 30) - 1, 3ull << 30,
				    KG_MMIO_BASE + 0x1004, KG_LAPIC_ADDR + 0xb0,
				    0xffffffffull };
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		assert_int_equal(walk(ram, probes[i], &flags), probes[i]);
		assert_int_equal(flags & 7, 7); /* present, writable, user */
		/* RAM cached, the MMIO quarter uncached. */
		assert_int_equal(!!(flags & 0x10), probes[i] >= (3ull << 30));
	}
	assert_int_equal(kvm_setup_pde(0x345678), 0x200000 | 0x87);
	/* Nothing above 4 GiB is mapped. */
	assert_int_equal(rd64(ram, KG_PT_ADDR + 0x1000 + 4 * 8), 0);
	assert_int_equal(rd64(ram, KG_PT_ADDR + 8), 0);
	free(ram);
}

static void test_gdt_tss(void **state)
{
	uint8_t *ram = calloc(1, RAM);
	(void)state;

	kvm_setup_gdt(ram);
	assert_int_equal(rd64(ram, KG_GDT_ADDR), 0);
	uint64_t kc = rd64(ram, KG_GDT_ADDR + KG_SEL_KCODE);
	uint64_t uc = rd64(ram, KG_GDT_ADDR + (KG_SEL_UCODE & ~3u));
	uint64_t ud = rd64(ram, KG_GDT_ADDR + (KG_SEL_UDATA & ~3u));
	/* access byte: P, DPL, S, type; flags: L for code, D/B for data */
	assert_int_equal((kc >> 40) & 0xff, 0x9b);
	assert_int_equal((uc >> 40) & 0xff, 0xfb);
	assert_int_equal((ud >> 40) & 0xff, 0xf3);
	assert_int_equal((kc >> 53) & 3, 1); /* L, not D */
	assert_int_equal((ud >> 53) & 3, 2); /* D/B */
	uint64_t lo = rd64(ram, KG_GDT_ADDR + KG_SEL_TSS);
	uint64_t hi = rd64(ram, KG_GDT_ADDR + KG_SEL_TSS + 8);
	uint64_t base = ((lo >> 16) & 0xffffff) | ((lo >> 56) & 0xff) << 24 |
			(hi & 0xffffffff) << 32;
	uint64_t limit = (lo & 0xffff) | ((lo >> 48) & 0xf) << 16;
	assert_int_equal(base, KG_TSS_ADDR);
	assert_int_equal(limit, KG_TSS_LIMIT);
	assert_int_equal((lo >> 40) & 0xff, 0x89);
	assert_int_equal(rd64(ram, KG_TSS_ADDR + 4), KG_KSTACK_TOP);
	/* I/O bitmap: right after the TSS, every port allowed, 0xff end. */
	uint16_t iomap = (uint16_t)(ram[KG_TSS_ADDR + 0x66] |
				    ram[KG_TSS_ADDR + 0x67] << 8);
	assert_int_equal(iomap, 0x68);
	for (unsigned p = 0; p < 65536; p += 97)
		assert_int_equal(ram[KG_TSS_ADDR + iomap + p / 8] >> (p % 8) & 1,
				 0);
	assert_int_equal(ram[KG_TSS_ADDR + KG_TSS_LIMIT], 0xff);
	/* The TSS ends before the page tables. */
	assert_true(KG_TSS_ADDR + KG_TSS_LIMIT < KG_PT_ADDR);
	free(ram);
}

/* An image: header, then code bytes. */
static size_t make_image(uint8_t *img, uint64_t entry, uint64_t end)
{
	struct kg_header h = { .magic = htole32(KG_HDR_MAGIC),
			       .version = htole32(KG_VERSION),
			       .entry = htole64(entry),
			       .image_end = htole64(end) };
	h.handler[13] = htole64(KG_IMAGE_ADDR + 0x400);
	h.handler[KG_VEC_MSI + 1] = htole64(KG_IMAGE_ADDR + 0x480);
	memcpy(img, &h, sizeof(h));
	memset(img + sizeof(h), 0x90, 0x1000 - sizeof(h));
	return 0x1000;
}

static void test_image_and_idt(void **state)
{
	uint8_t *ram = calloc(1, RAM), img[0x1000];
	struct kg_header h;
	char err[200];
	int present;
	(void)state;

	size_t n = make_image(img, KG_IMAGE_ADDR + 0x300, KG_IMAGE_ADDR + 0x3000);
	memset(ram + KG_IMAGE_ADDR + 0x1000, 0xaa, 0x2000); /* the bss */
	assert_int_equal(kvm_setup_image(ram, RAM, img, n, &h, err, sizeof(err)),
			 0);
	assert_memory_equal(ram + KG_IMAGE_ADDR, img, n);
	assert_int_equal(ram[KG_IMAGE_ADDR + 0x2fff], 0); /* bss cleared */
	assert_int_equal(h.entry, KG_IMAGE_ADDR + 0x300);
	kvm_setup_idt(ram, &h);
	assert_int_equal(kvm_setup_idt_handler(ram, 13, &present),
			 KG_IMAGE_ADDR + 0x400);
	assert_true(present);
	uint64_t gate = rd64(ram, KG_IDT_ADDR + 13 * 16);
	assert_int_equal((gate >> 16) & 0xffff, KG_SEL_KCODE);
	assert_int_equal((gate >> 40) & 0xff, 0x8e); /* interrupt gate, DPL 0 */
	assert_int_equal(kvm_setup_idt_handler(ram, KG_VEC_MSI + 1, &present),
			 KG_IMAGE_ADDR + 0x480);
	kvm_setup_idt_handler(ram, 14, &present);
	assert_false(present);
	kvm_setup_idt_handler(ram, 255, &present);
	assert_false(present);

	/* Each check refuses with a message. */
	struct {
		uint64_t entry, end;
		size_t len;
		uint32_t magic;
	} bad[] = {
		{ KG_IMAGE_ADDR + 0x300, KG_IMAGE_ADDR + 0x3000, 16, KG_HDR_MAGIC },
		{ KG_IMAGE_ADDR + 0x300, KG_IMAGE_ADDR + 0x3000, 0x1000, 1 },
		{ KG_IMAGE_ADDR + 0x10, KG_IMAGE_ADDR + 0x3000, 0x1000, KG_HDR_MAGIC },
		{ KG_IMAGE_ADDR + 0x5000, KG_IMAGE_ADDR + 0x3000, 0x1000, KG_HDR_MAGIC },
		{ KG_IMAGE_ADDR + 0x300, KG_IMAGE_ADDR + 0x800, 0x1000, KG_HDR_MAGIC },
		{ KG_IMAGE_ADDR + 0x300, KG_IMAGE_ADDR + KG_IMAGE_MAX + 1, 0x1000,
		  KG_HDR_MAGIC },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		make_image(img, bad[i].entry, bad[i].end);
		uint32_t m = htole32(bad[i].magic);
		memcpy(img, &m, 4);
		err[0] = 0;
		assert_int_equal(kvm_setup_image(ram, RAM, img, bad[i].len, &h,
						 err, sizeof(err)),
				 -EINVAL);
		assert_true(strstr(err, "guest image") != NULL);
	}
	/* A handler outside the image. */
	make_image(img, KG_IMAGE_ADDR + 0x300, KG_IMAGE_ADDR + 0x3000);
	uint64_t far = htole64(KG_IMAGE_ADDR + 0x3000);
	memcpy(img + offsetof(struct kg_header, handler) + 20 * 8, &far, 8);
	assert_int_equal(kvm_setup_image(ram, RAM, img, n, &h, err, sizeof(err)),
			 -EINVAL);
	assert_true(strstr(err, "vector 20") != NULL);
	/* RAM too small for the image. */
	make_image(img, KG_IMAGE_ADDR + 0x300, KG_IMAGE_ADDR + 0x3000);
	assert_int_equal(kvm_setup_image(ram, KG_IMAGE_ADDR + 0x2000, img, n, &h,
					 err, sizeof(err)),
			 -EINVAL);
	free(ram);
}

static void test_boot(void **state)
{
	uint8_t *ram = calloc(1, RAM);
	(void)state;

	assert_int_equal(kvm_setup_stamp_pages(RAM), (RAM - KG_STAMP_ADDR) / 4096);
	assert_int_equal(kvm_setup_stamp_pages(KG_STAMP_ADDR), 0);
	assert_int_equal(kvm_setup_stamp_pages(4ull << 30), KG_STAMP_MAX_PAGES);
	kvm_setup_boot(ram, RAM, 0x1234, 7, KG_BOOT_IRQS, 2000000, 500);
	const struct kg_boot *b = (const void *)(ram + KG_BOOT_ADDR);
	assert_int_equal(le64toh(b->magic), KG_BOOT_MAGIC);
	assert_int_equal(le64toh(b->version), KG_BOOT_VERSION);
	assert_int_equal(le64toh(b->ram_size), RAM);
	assert_int_equal(le64toh(b->seed), 0x1234);
	assert_int_equal(le64toh(b->stamp_pages), (RAM - KG_STAMP_ADDR) / 4096);
	assert_int_equal(le64toh(b->stamps_per_iter), 7);
	assert_int_equal(le64toh(b->flags), KG_BOOT_IRQS);
	assert_int_equal(le64toh(b->tsc_per_ms), 2000000);
	assert_int_equal(le64toh(b->interval_us), 500);
	/* Stamp words differ by generation, page and word. */
	assert_int_not_equal(kg_stamp_word(1, 1, 0, 0), kg_stamp_word(1, 2, 0, 0));
	assert_int_not_equal(kg_stamp_word(1, 1, 0, 0), kg_stamp_word(1, 1, 1, 0));
	assert_int_not_equal(kg_stamp_word(1, 1, 0, 0), kg_stamp_word(1, 1, 0, 1));
	free(ram);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cfg_decode),
		cmocka_unit_test(test_bar_base),
		cmocka_unit_test(test_bar_ranges),
		cmocka_unit_test(test_parse_msix),
		cmocka_unit_test(test_paging),
		cmocka_unit_test(test_gdt_tss),
		cmocka_unit_test(test_image_and_idt),
		cmocka_unit_test(test_boot),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
