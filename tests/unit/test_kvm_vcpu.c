/* SPDX-License-Identifier: MIT */
/*
 * The KVM guest's vCPU state as it migrates (src/kvm/kvm_vcpu.c): its
 * field table (valid, every register named), the round trip through the
 * field-table encoding, what decoding refuses (another type, a newer
 * version, a missing field, truncation) and every refusal of the
 * destination's checks, each named in the message.
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

#include "kvm/kvm_vcpu.h"

typedef struct vfmig_kvm_vcpu_state vs;
#define RAM (32ull << 20)

static void put32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

/* A state like the guest's at work: long mode, CPL 3. */
static void valid(vs *s)
{
	memset(s, 0, sizeof(*s));
	s->tsc_khz = 2000000;
	s->ram_size = RAM;
	s->rip = 0x1013a0;
	s->rsp = 0x7ff00;
	s->rflags = 0x3202;
	s->cs = (struct kvm_vcpu_seg){ .limit = 0xffffffff, .selector = 0x23,
				       .type = 0xb, .present = 1, .dpl = 3,
				       .s = 1, .l = 1, .g = 1 };
	s->ss = (struct kvm_vcpu_seg){ .limit = 0xffffffff, .selector = 0x1b,
				       .type = 3, .present = 1, .dpl = 3,
				       .db = 1, .s = 1, .g = 1 };
	s->ds = s->es = s->fs = s->gs = s->ss;
	s->tr = (struct kvm_vcpu_seg){ .base = 0x5000, .limit = 0x2067,
				       .selector = 0x28, .type = 0xb,
				       .present = 1 };
	s->gdt_base = 0x3000;
	s->gdt_limit = 55;
	s->idt_base = 0x4000;
	s->idt_limit = 4095;
	s->cr0 = 0x80050033;
	s->cr3 = 0x8000;
	s->cr4 = 0x620;
	s->efer = 0x500;
	s->apic_base = 0xfee00900;
	s->msr_pat = 0x0007040600070406ull;
	s->event_flags = 0x5; /* NMI pending and shadow valid */
	s->pci_cf8 = 0x80001000;
	put32(s->xsave + 24, 0x1f80); /* MXCSR */
	s->xsave[512] = 3;            /* XSTATE_BV: x87, SSE */
	put32(s->lapic + 0xf0, 0x1ff);
}

static void test_desc(void **state)
{
	static const char *const names[] = {
		"rip", "rflags", "r15", "cs.base", "cs.l", "ldt.avl", "tr.selector",
		"gdt_limit", "cr3", "efer", "apic_base", "interrupt_bitmap[3]",
		"msr_star", "msr_lstar", "msr_kernel_gs_base", "msr_pat", "mp_state",
		"xsave", "lapic", "exc_nr", "nmi_masked", "event_flags", "pci_cf8",
	};
	const struct vfmig_fields_desc *d = &vfmig_kvm_vcpu_desc;
	char err[256] = "";

	(void)state;
	assert_int_equal(vfmig_fields_check_desc(d, err, sizeof(err)), 0);
	assert_string_equal(d->name, "kvm-vcpu");
	assert_int_equal(d->version, VFMIG_KVM_VCPU_STATE_VERSION);
	assert_int_equal(d->size, sizeof(vs));
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		size_t f = 0;
		while (f < d->nfields && strcmp(d->fields[f].name, names[i]))
			f++;
		assert_true(f < d->nfields);
	}
	/* 8 segments of 11 fields, 18 general registers, 9 MSRs. */
	assert_true(d->nfields >= 8 * 11 + 18 + KVM_VCPU_NMSRS);
	for (unsigned int i = 0; i < KVM_VCPU_NMSRS; i++)
		for (unsigned int j = i + 1; j < KVM_VCPU_NMSRS; j++)
			assert_int_not_equal(kvm_vcpu_msr_index[i], kvm_vcpu_msr_index[j]);
	assert_int_equal(kvm_vcpu_msr_index[1], 0xc0000082); /* LSTAR */
}

static void test_roundtrip(void **state)
{
	vs a, *b = calloc(1, sizeof(vs));
	uint8_t *enc;
	size_t len;
	char err[256] = "";

	(void)state;
	valid(&a);
	a.rax = 0x1122334455667788ull;
	a.lapic[0x20 + 3] = 0; /* APIC ID 0 */
	assert_int_equal(kvm_vcpu_state_check(&a, RAM, err, sizeof(err)), 0);
	assert_int_equal(vfmig_fields_encode(&vfmig_kvm_vcpu_desc, &a, &enc, &len, err,
					     sizeof(err)), 0);
	assert_int_equal(vfmig_fields_decode(&vfmig_kvm_vcpu_desc, enc, len, b, err,
					     sizeof(err)), 0);
	assert_memory_equal(&a, b, sizeof(a));
	/* Every truncation is refused, and leaves the target alone. */
	for (size_t cut = 0; cut < len; cut += 97) {
		memset(b, 0x5a, sizeof(*b));
		assert_int_equal(vfmig_fields_decode(&vfmig_kvm_vcpu_desc, enc, cut, b, err,
						     sizeof(err)), -EBADMSG);
		assert_int_equal(((uint8_t *)b)[0], 0x5a);
	}
	free(enc);
	free(b);
}

/* A description like the real one but for its name, version or fields. */
static void test_decode_refuses(void **state)
{
	struct vfmig_fields_desc other = vfmig_kvm_vcpu_desc;
	vs a, *b = calloc(1, sizeof(vs));
	uint8_t *enc;
	size_t len;
	char err[256] = "";

	(void)state;
	valid(&a);
	other.name = "kvm-vcpu2";
	assert_int_equal(vfmig_fields_encode(&other, &a, &enc, &len, NULL, 0), 0);
	assert_int_equal(vfmig_fields_decode(&vfmig_kvm_vcpu_desc, enc, len, b, err,
					     sizeof(err)), -EPROTONOSUPPORT);
	free(enc);
	other = vfmig_kvm_vcpu_desc;
	other.version = 2;
	assert_int_equal(vfmig_fields_encode(&other, &a, &enc, &len, NULL, 0), 0);
	assert_int_equal(vfmig_fields_decode(&vfmig_kvm_vcpu_desc, enc, len, b, err,
					     sizeof(err)), -EPROTONOSUPPORT);
	assert_non_null(strstr(err, "newer"));
	free(enc);
	other = vfmig_kvm_vcpu_desc;
	other.nfields--; /* pci_cf8 missing */
	assert_int_equal(vfmig_fields_encode(&other, &a, &enc, &len, NULL, 0), 0);
	assert_int_equal(vfmig_fields_decode(&vfmig_kvm_vcpu_desc, enc, len, b, err,
					     sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "pci_cf8"));
	free(enc);
	free(b);
}

/* One change to a valid state and the words the refusal must contain. */
struct bad {
	const char *words;
	void (*change)(vs *s);
};

static void c_vcpu(vs *s) { s->vcpu = 1; }
static void c_ram(vs *s) { s->ram_size = RAM * 2; }
static void c_tsc(vs *s) { s->tsc_khz = 0; }
static void c_cr0(vs *s) { s->cr0 &= ~0x80000000ull; }
static void c_cr0_bits(vs *s) { s->cr0 |= 1ull << 40; }
static void c_cr4(vs *s) { s->cr4 &= ~0x20ull; }
static void c_efer(vs *s) { s->efer &= ~0x400ull; }
static void c_efer_bits(vs *s) { s->efer |= 0x2; }
static void c_cr8(vs *s) { s->cr8 = 16; }
static void c_rip(vs *s) { s->rip = 0x0000800000000000ull; }
static void c_rflags(vs *s) { s->rflags = 0x3200; }
static void c_apic(vs *s) { s->apic_base = 0xfec00900; }
static void c_apic_off(vs *s) { s->apic_base = 0xfee00100; }
static void c_seg_type(vs *s) { s->ds.type = 16; }
static void c_seg_dpl(vs *s) { s->ss.dpl = 4; }
static void c_seg_bool(vs *s) { s->gs.g = 2; }
static void c_seg_base(vs *s) { s->fs.base = 0x0123456789abcdefull; }
static void c_cs_long(vs *s) { s->cs.l = 0; }
static void c_msr(vs *s) { s->msr_lstar = 0x8000000000000000ull; }
static void c_mp(vs *s) { s->mp_state = 11; }
static void c_exc(vs *s) { s->exc_nr = 32; }
static void c_nmi(vs *s) { s->nmi_pending = 2; }
static void c_flags(vs *s) { s->event_flags |= 0x10; }
static void c_smm(vs *s) { s->smi_smm = 1; }
static void c_mxcsr(vs *s) { put32(s->xsave + 24, 0x11f80); }
static void c_xcomp(vs *s) { s->xsave[512 + 15] = 0x80; }
static void c_xhdr(vs *s) { s->xsave[512 + 40] = 1; }
static void c_apic_id(vs *s) { s->lapic[0x23] = 1; }

static void test_check_refuses(void **state)
{
	static const struct bad bads[] = {
		{ "one vCPU (0)", c_vcpu },
		{ "bytes of RAM", c_ram },
		{ "TSC frequency 0", c_tsc },
		{ "CR0 0x50033", c_cr0 },
		{ "CR0 0x10080050033", c_cr0_bits },
		{ "CR4 0x600", c_cr4 },
		{ "EFER 0x100", c_efer },
		{ "EFER 0x502", c_efer_bits },
		{ "CR8 0x10", c_cr8 },
		{ "RIP 0x800000000000", c_rip },
		{ "RFLAGS 0x3200", c_rflags },
		{ "APIC base 0xfec00900", c_apic },
		{ "APIC base 0xfee00100", c_apic_off },
		{ "segment ds: type 16", c_seg_type },
		{ "segment ss: type 3 dpl 4", c_seg_dpl },
		{ "segment gs", c_seg_bool },
		{ "segment fs base 0x123456789abcdef is not canonical", c_seg_base },
		{ "CS is not a present 64-bit code segment", c_cs_long },
		{ "MSR LSTAR 0x8000000000000000", c_msr },
		{ "mp_state 11 is unknown", c_mp },
		{ "exception 32", c_exc },
		{ "NMI", c_nmi },
		{ "event flags 0x15", c_flags },
		{ "SMM", c_smm },
		{ "MXCSR 0x11f80", c_mxcsr },
		{ "XCOMP_BV 0x8000000000000000", c_xcomp },
		{ "XSAVE header byte 40", c_xhdr },
		{ "LAPIC ID 1", c_apic_id },
	};
	char err[256];
	vs s;

	(void)state;
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		valid(&s);
		bads[i].change(&s);
		err[0] = 0;
		assert_int_equal(kvm_vcpu_state_check(&s, RAM, err, sizeof(err)), -EINVAL);
		if (!strstr(err, bads[i].words))
			fail_msg("case %zu: \"%s\" does not say \"%s\"", i, err, bads[i].words);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_desc),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_decode_refuses),
		cmocka_unit_test(test_check_refuses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
