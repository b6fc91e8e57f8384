/* SPDX-License-Identifier: MIT */
/* The vCPU state of the KVM guest as it migrates (kvm_vcpu.h). */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "kvm/kvm_abi.h"
#include "kvm/kvm_vcpu.h"

typedef struct vfmig_kvm_vcpu_state vs;

/* ---- field table ---- */

#define SEG_FIELDS(sg)                                                   \
	VFMIG_FIELD_U64_V(vs, sg.base, 0),                               \
	VFMIG_FIELD_U32_V(vs, sg.limit, 0),                              \
	VFMIG_FIELD_U16_V(vs, sg.selector, 0),                           \
	VFMIG_FIELD_U8_V(vs, sg.type, 0),                                \
	VFMIG_FIELD_U8_V(vs, sg.present, 0),                             \
	VFMIG_FIELD_U8_V(vs, sg.dpl, 0),                                 \
	VFMIG_FIELD_U8_V(vs, sg.db, 0),                                  \
	VFMIG_FIELD_U8_V(vs, sg.s, 0),                                   \
	VFMIG_FIELD_U8_V(vs, sg.l, 0),                                   \
	VFMIG_FIELD_U8_V(vs, sg.g, 0),                                   \
	VFMIG_FIELD_U8_V(vs, sg.avl, 0)

static const struct vfmig_field vcpu_fields[] = {
	VFMIG_FIELD_U32_V(vs, vcpu, 0),
	VFMIG_FIELD_U32_V(vs, tsc_khz, 0),
	VFMIG_FIELD_U64_V(vs, ram_size, 0),
	VFMIG_FIELD_U64_V(vs, rax, 0),
	VFMIG_FIELD_U64_V(vs, rbx, 0),
	VFMIG_FIELD_U64_V(vs, rcx, 0),
	VFMIG_FIELD_U64_V(vs, rdx, 0),
	VFMIG_FIELD_U64_V(vs, rsi, 0),
	VFMIG_FIELD_U64_V(vs, rdi, 0),
	VFMIG_FIELD_U64_V(vs, rsp, 0),
	VFMIG_FIELD_U64_V(vs, rbp, 0),
	VFMIG_FIELD_U64_V(vs, r8, 0),
	VFMIG_FIELD_U64_V(vs, r9, 0),
	VFMIG_FIELD_U64_V(vs, r10, 0),
	VFMIG_FIELD_U64_V(vs, r11, 0),
	VFMIG_FIELD_U64_V(vs, r12, 0),
	VFMIG_FIELD_U64_V(vs, r13, 0),
	VFMIG_FIELD_U64_V(vs, r14, 0),
	VFMIG_FIELD_U64_V(vs, r15, 0),
	VFMIG_FIELD_U64_V(vs, rip, 0),
	VFMIG_FIELD_U64_V(vs, rflags, 0),
	SEG_FIELDS(cs),
	SEG_FIELDS(ds),
	SEG_FIELDS(es),
	SEG_FIELDS(fs),
	SEG_FIELDS(gs),
	SEG_FIELDS(ss),
	SEG_FIELDS(tr),
	SEG_FIELDS(ldt),
	VFMIG_FIELD_U64_V(vs, gdt_base, 0),
	VFMIG_FIELD_U16_V(vs, gdt_limit, 0),
	VFMIG_FIELD_U64_V(vs, idt_base, 0),
	VFMIG_FIELD_U16_V(vs, idt_limit, 0),
	VFMIG_FIELD_U64_V(vs, cr0, 0),
	VFMIG_FIELD_U64_V(vs, cr2, 0),
	VFMIG_FIELD_U64_V(vs, cr3, 0),
	VFMIG_FIELD_U64_V(vs, cr4, 0),
	VFMIG_FIELD_U64_V(vs, cr8, 0),
	VFMIG_FIELD_U64_V(vs, efer, 0),
	VFMIG_FIELD_U64_V(vs, apic_base, 0),
	VFMIG_FIELD_U64_V(vs, interrupt_bitmap[0], 0),
	VFMIG_FIELD_U64_V(vs, interrupt_bitmap[1], 0),
	VFMIG_FIELD_U64_V(vs, interrupt_bitmap[2], 0),
	VFMIG_FIELD_U64_V(vs, interrupt_bitmap[3], 0),
	VFMIG_FIELD_U64_V(vs, msr_star, 0),
	VFMIG_FIELD_U64_V(vs, msr_lstar, 0),
	VFMIG_FIELD_U64_V(vs, msr_cstar, 0),
	VFMIG_FIELD_U64_V(vs, msr_sfmask, 0),
	VFMIG_FIELD_U64_V(vs, msr_kernel_gs_base, 0),
	VFMIG_FIELD_U64_V(vs, msr_sysenter_cs, 0),
	VFMIG_FIELD_U64_V(vs, msr_sysenter_esp, 0),
	VFMIG_FIELD_U64_V(vs, msr_sysenter_eip, 0),
	VFMIG_FIELD_U64_V(vs, msr_pat, 0),
	VFMIG_FIELD_U32_V(vs, mp_state, 0),
	VFMIG_FIELD_BYTES_V(vs, xsave, 0),
	VFMIG_FIELD_BYTES_V(vs, lapic, 0),
	VFMIG_FIELD_U8_V(vs, exc_injected, 0),
	VFMIG_FIELD_U8_V(vs, exc_nr, 0),
	VFMIG_FIELD_U8_V(vs, exc_has_error_code, 0),
	VFMIG_FIELD_U8_V(vs, exc_pending, 0),
	VFMIG_FIELD_U32_V(vs, exc_error_code, 0),
	VFMIG_FIELD_U8_V(vs, int_injected, 0),
	VFMIG_FIELD_U8_V(vs, int_nr, 0),
	VFMIG_FIELD_U8_V(vs, int_soft, 0),
	VFMIG_FIELD_U8_V(vs, int_shadow, 0),
	VFMIG_FIELD_U8_V(vs, nmi_injected, 0),
	VFMIG_FIELD_U8_V(vs, nmi_pending, 0),
	VFMIG_FIELD_U8_V(vs, nmi_masked, 0),
	VFMIG_FIELD_U8_V(vs, smi_smm, 0),
	VFMIG_FIELD_U8_V(vs, smi_pending, 0),
	VFMIG_FIELD_U8_V(vs, smi_inside_nmi, 0),
	VFMIG_FIELD_U8_V(vs, smi_latched_init, 0),
	VFMIG_FIELD_U32_V(vs, sipi_vector, 0),
	VFMIG_FIELD_U32_V(vs, event_flags, 0),
	VFMIG_FIELD_U32_V(vs, pci_cf8, 0),
};

const struct vfmig_fields_desc vfmig_kvm_vcpu_desc = {
	.name = "kvm-vcpu",
	.version = VFMIG_KVM_VCPU_STATE_VERSION,
	.min_version = 1,
	.size = sizeof(vs),
	.fields = vcpu_fields,
	.nfields = sizeof(vcpu_fields) / sizeof(vcpu_fields[0]),
};

/* The MSRs a long-mode guest's kernel state lives in besides EFER (in
 * sregs): syscall/sysenter entry, the swapped GS base, the memory types.
 * The guest itself uses none of them today (no syscalls; its GS/FS bases
 * are in sregs), but they are part of the CPU it was given. Not here: the
 * TSC (KVM here cannot set it; docs/kvm.md), TSC_DEADLINE (no LAPIC
 * timer), debug and performance MSRs (never enabled). */
const uint32_t kvm_vcpu_msr_index[KVM_VCPU_NMSRS] = {
	0xc0000081, /* STAR */
	0xc0000082, /* LSTAR */
	0xc0000083, /* CSTAR */
	0xc0000084, /* SFMASK */
	0xc0000102, /* KERNEL_GS_BASE */
	0x00000174, /* SYSENTER_CS */
	0x00000175, /* SYSENTER_ESP */
	0x00000176, /* SYSENTER_EIP */
	0x00000277, /* PAT */
};
const char *const kvm_vcpu_msr_name[KVM_VCPU_NMSRS] = {
	"STAR", "LSTAR", "CSTAR", "SFMASK", "KERNEL_GS_BASE", "SYSENTER_CS",
	"SYSENTER_ESP", "SYSENTER_EIP", "PAT",
};

/* Where MSR i of kvm_vcpu_msr_index[] lives in the state. */
static const size_t msr_off[KVM_VCPU_NMSRS] = {
	offsetof(vs, msr_star), offsetof(vs, msr_lstar),
	offsetof(vs, msr_cstar), offsetof(vs, msr_sfmask),
	offsetof(vs, msr_kernel_gs_base), offsetof(vs, msr_sysenter_cs),
	offsetof(vs, msr_sysenter_esp), offsetof(vs, msr_sysenter_eip),
	offsetof(vs, msr_pat),
};

static uint64_t msr_get(const vs *s, unsigned int i)
{
	uint64_t v;

	memcpy(&v, (const uint8_t *)s + msr_off[i], sizeof(v));
	return v;
}

static void msr_set(vs *s, unsigned int i, uint64_t v)
{
	memcpy((uint8_t *)s + msr_off[i], &v, sizeof(v));
}

/* ---- checks ---- */

__attribute__((format(printf, 3, 4))) static int bad(char *err, size_t errlen,
						     const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static bool canonical(uint64_t a)
{
	uint64_t top = a >> 47;

	return top == 0 || top == 0x1ffff;
}

static int check_seg(const char *name, const struct kvm_vcpu_seg *g,
		     char *err, size_t errlen)
{
	if (g->type > 15 || g->dpl > 3 || g->present > 1 || g->db > 1 ||
	    g->s > 1 || g->l > 1 || g->g > 1 || g->avl > 1)
		return bad(err, errlen, "vCPU state: segment %s: type %u dpl %u"
			   " present %u db %u s %u l %u g %u avl %u out of "
			   "range", name, g->type, g->dpl, g->present, g->db,
			   g->s, g->l, g->g, g->avl);
	if (!canonical(g->base))
		return bad(err, errlen, "vCPU state: segment %s base 0x%" PRIx64
			   " is not canonical", name, g->base);
	return 0;
}

#define CR0_PE 0x1ull
#define CR0_PG 0x80000000ull
#define CR0_KNOWN 0xe005003full /* PG CD NW AM WP NE ET TS EM MP PE */
#define CR4_PAE 0x20ull
#define CR4_KNOWN 0x007f07ffull
#define EFER_KNOWN 0xd01ull /* SCE LME LMA NXE */
#define EFER_LME 0x100ull
#define EFER_LMA 0x400ull
#define APIC_BASE_ENABLE 0x800ull
#define XSAVE_MXCSR 24u
#define XSAVE_HDR 512u

static uint32_t le32at(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static uint64_t le64at(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

static int check_cpu(const vs *s, char *err, size_t errlen)
{
	if ((s->cr0 & (CR0_PE | CR0_PG)) != (CR0_PE | CR0_PG) ||
	    (s->cr0 & ~CR0_KNOWN))
		return bad(err, errlen, "vCPU state: CR0 0x%" PRIx64 " (the "
			   "guest runs paged, in long mode)", s->cr0);
	if (!(s->cr4 & CR4_PAE) || (s->cr4 & ~CR4_KNOWN))
		return bad(err, errlen, "vCPU state: CR4 0x%" PRIx64, s->cr4);
	if ((s->efer & ~EFER_KNOWN) ||
	    (s->efer & (EFER_LME | EFER_LMA)) != (EFER_LME | EFER_LMA))
		return bad(err, errlen, "vCPU state: EFER 0x%" PRIx64, s->efer);
	if (s->cr8 > 15)
		return bad(err, errlen, "vCPU state: CR8 0x%" PRIx64, s->cr8);
	if (!canonical(s->rip) || !canonical(s->gdt_base) ||
	    !canonical(s->idt_base))
		return bad(err, errlen, "vCPU state: RIP 0x%" PRIx64 ", GDT "
			   "0x%" PRIx64 " or IDT 0x%" PRIx64 " not canonical",
			   s->rip, s->gdt_base, s->idt_base);
	if (!(s->rflags & 2) || (s->rflags >> 22))
		return bad(err, errlen, "vCPU state: RFLAGS 0x%" PRIx64,
			   s->rflags);
	if ((s->apic_base & ~0xfffull) != KG_LAPIC_ADDR ||
	    !(s->apic_base & APIC_BASE_ENABLE))
		return bad(err, errlen, "vCPU state: APIC base 0x%" PRIx64
			   " (the guest's LAPIC is enabled at 0x%x)",
			   s->apic_base, KG_LAPIC_ADDR);
	static const char *const names[] = { "cs", "ds", "es", "fs",
					     "gs", "ss", "tr", "ldt" };
	const struct kvm_vcpu_seg *segs[] = { &s->cs, &s->ds, &s->es, &s->fs,
					      &s->gs, &s->ss, &s->tr, &s->ldt };
	for (unsigned int i = 0; i < 8; i++) {
		int r = check_seg(names[i], segs[i], err, errlen);
		if (r < 0)
			return r;
	}
	if (!s->cs.l || !s->cs.present)
		return bad(err, errlen, "vCPU state: CS is not a present "
			   "64-bit code segment");
	return 0;
}

static int check_msrs_events(const vs *s, char *err, size_t errlen)
{
	const uint32_t flags = KVM_VCPUEVENT_VALID_NMI_PENDING |
			       KVM_VCPUEVENT_VALID_SIPI_VECTOR |
			       KVM_VCPUEVENT_VALID_SHADOW |
			       KVM_VCPUEVENT_VALID_SMM;

	for (unsigned int i = 0; i < KVM_VCPU_NMSRS; i++) {
		uint64_t v = msr_get(s, i);
		bool addr = i == 1 || i == 2 || i == 4 || i == 6 || i == 7;
		if (addr && !canonical(v))
			return bad(err, errlen, "vCPU state: MSR %s 0x%" PRIx64
				   " is not canonical", kvm_vcpu_msr_name[i], v);
	}
	if (s->mp_state > KVM_MP_STATE_SUSPENDED)
		return bad(err, errlen, "vCPU state: mp_state %u is unknown",
			   s->mp_state);
	if (s->exc_nr >= 32 || s->exc_injected > 1 || s->exc_pending > 1 ||
	    s->exc_has_error_code > 1)
		return bad(err, errlen, "vCPU state: exception %u (injected %u,"
			   " pending %u, error code %u) out of range",
			   s->exc_nr, s->exc_injected, s->exc_pending,
			   s->exc_has_error_code);
	if (s->int_injected > 1 || s->int_soft > 1 || s->nmi_injected > 1 ||
	    s->nmi_pending > 1 || s->nmi_masked > 1 || s->smi_smm > 1 ||
	    s->smi_pending > 1 || s->smi_inside_nmi > 1 ||
	    s->smi_latched_init > 1 || s->int_shadow > 3)
		return bad(err, errlen, "vCPU state: an interrupt, NMI or SMI "
			   "event flag is not 0 or 1");
	if (s->event_flags & ~flags)
		return bad(err, errlen, "vCPU state: event flags 0x%x (known: "
			   "0x%x)", s->event_flags, flags);
	if (s->smi_smm)
		return bad(err, errlen, "vCPU state: in SMM (never entered by "
			   "this guest)");
	return 0;
}

static int check_blobs(const vs *s, char *err, size_t errlen)
{
	uint32_t mxcsr = le32at(s->xsave + XSAVE_MXCSR);
	uint64_t xcomp = le64at(s->xsave + XSAVE_HDR + 8);
	uint32_t apic_id = le32at(s->lapic + 0x20) >> 24;

	if (mxcsr >> 16)
		return bad(err, errlen, "vCPU state: MXCSR 0x%x has reserved "
			   "bits set", mxcsr);
	if (xcomp)
		return bad(err, errlen, "vCPU state: XSAVE area in compacted "
			   "form (XCOMP_BV 0x%" PRIx64 ")", xcomp);
	for (unsigned int i = XSAVE_HDR + 16; i < XSAVE_HDR + 64; i++)
		if (s->xsave[i])
			return bad(err, errlen, "vCPU state: XSAVE header byte "
				   "%u is not zero", i - XSAVE_HDR);
	if (apic_id != s->vcpu)
		return bad(err, errlen, "vCPU state: LAPIC ID %u, the vCPU is "
			   "%u", apic_id, s->vcpu);
	return 0;
}

int kvm_vcpu_state_check(const vs *s, uint64_t ram_size, char *err,
			 size_t errlen)
{
	int r;

	if (s->vcpu != 0)
		return bad(err, errlen, "vCPU state for vCPU %u; the VM has one "
			   "vCPU (0)", s->vcpu);
	if (s->ram_size != ram_size)
		return bad(err, errlen, "vCPU state of a VM with %" PRIu64
			   " bytes of RAM; this one has %" PRIu64, s->ram_size,
			   ram_size);
	if (!s->tsc_khz)
		return bad(err, errlen, "vCPU state: TSC frequency 0");
	r = check_cpu(s, err, errlen);
	if (r == 0)
		r = check_msrs_events(s, err, errlen);
	if (r == 0)
		r = check_blobs(s, err, errlen);
	return r;
}

/* ---- to and from KVM ---- */

static void seg_from(struct kvm_vcpu_seg *g, const struct kvm_segment *k)
{
	g->base = k->base;
	g->limit = k->limit;
	g->selector = k->selector;
	g->type = k->type;
	g->present = k->present;
	g->dpl = k->dpl;
	g->db = k->db;
	g->s = k->s;
	g->l = k->l;
	g->g = k->g;
	g->avl = k->avl;
}

static void seg_to(struct kvm_segment *k, const struct kvm_vcpu_seg *g)
{
	memset(k, 0, sizeof(*k));
	k->base = g->base;
	k->limit = g->limit;
	k->selector = g->selector;
	k->type = g->type;
	k->present = g->present;
	k->dpl = g->dpl;
	k->db = g->db;
	k->s = g->s;
	k->l = g->l;
	k->g = g->g;
	k->avl = g->avl;
	k->unusable = !g->present;
}

static int ioerr(char *err, size_t errlen, const char *what)
{
	int r = -errno;

	snprintf(err, errlen, "KVM: %s: %s", what, strerror(errno));
	return r;
}

/* struct kvm_msrs with room for our entries, without a flexible array
 * member inside a struct. */
union msr_buf {
	struct kvm_msrs hdr;
	uint8_t bytes[sizeof(struct kvm_msrs) +
		      KVM_VCPU_NMSRS * sizeof(struct kvm_msr_entry)];
};

static int save_sregs(int fd, vs *s, char *err, size_t errlen)
{
	struct kvm_sregs sr;

	if (ioctl(fd, KVM_GET_SREGS, &sr) < 0)
		return ioerr(err, errlen, "KVM_GET_SREGS");
	seg_from(&s->cs, &sr.cs);
	seg_from(&s->ds, &sr.ds);
	seg_from(&s->es, &sr.es);
	seg_from(&s->fs, &sr.fs);
	seg_from(&s->gs, &sr.gs);
	seg_from(&s->ss, &sr.ss);
	seg_from(&s->tr, &sr.tr);
	seg_from(&s->ldt, &sr.ldt);
	s->gdt_base = sr.gdt.base;
	s->gdt_limit = sr.gdt.limit;
	s->idt_base = sr.idt.base;
	s->idt_limit = sr.idt.limit;
	s->cr0 = sr.cr0;
	s->cr2 = sr.cr2;
	s->cr3 = sr.cr3;
	s->cr4 = sr.cr4;
	s->cr8 = sr.cr8;
	s->efer = sr.efer;
	s->apic_base = sr.apic_base;
	memcpy(s->interrupt_bitmap, sr.interrupt_bitmap,
	       sizeof(s->interrupt_bitmap));
	return 0;
}

static int save_msrs(int fd, vs *s, char *err, size_t errlen)
{
	union msr_buf b;
	struct kvm_msr_entry *e = (struct kvm_msr_entry *)(void *)(&b.hdr + 1);

	memset(&b, 0, sizeof(b));
	b.hdr.nmsrs = KVM_VCPU_NMSRS;
	for (unsigned int i = 0; i < KVM_VCPU_NMSRS; i++)
		e[i].index = kvm_vcpu_msr_index[i];
	int n = ioctl(fd, KVM_GET_MSRS, &b);
	if (n < 0)
		return ioerr(err, errlen, "KVM_GET_MSRS");
	if (n < (int)KVM_VCPU_NMSRS) {
		snprintf(err, errlen, "KVM: KVM_GET_MSRS stopped at MSR %s "
			 "(0x%x)", kvm_vcpu_msr_name[n], kvm_vcpu_msr_index[n]);
		return -ENOTSUP;
	}
	for (unsigned int i = 0; i < KVM_VCPU_NMSRS; i++)
		msr_set(s, i, e[i].data);
	return 0;
}

static int save_events(int fd, vs *s, char *err, size_t errlen)
{
	struct kvm_vcpu_events ev;

	if (ioctl(fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
		return ioerr(err, errlen, "KVM_GET_VCPU_EVENTS");
	s->exc_injected = ev.exception.injected;
	s->exc_nr = ev.exception.nr;
	s->exc_has_error_code = ev.exception.has_error_code;
	s->exc_pending = ev.exception.pending;
	s->exc_error_code = ev.exception.error_code;
	s->int_injected = ev.interrupt.injected;
	s->int_nr = ev.interrupt.nr;
	s->int_soft = ev.interrupt.soft;
	s->int_shadow = ev.interrupt.shadow;
	s->nmi_injected = ev.nmi.injected;
	s->nmi_pending = ev.nmi.pending;
	s->nmi_masked = ev.nmi.masked;
	s->sipi_vector = ev.sipi_vector;
	s->smi_smm = ev.smi.smm;
	s->smi_pending = ev.smi.pending;
	s->smi_inside_nmi = ev.smi.smm_inside_nmi;
	s->smi_latched_init = ev.smi.latched_init;
	s->event_flags = ev.flags & (KVM_VCPUEVENT_VALID_NMI_PENDING |
				     KVM_VCPUEVENT_VALID_SIPI_VECTOR |
				     KVM_VCPUEVENT_VALID_SHADOW |
				     KVM_VCPUEVENT_VALID_SMM);
	return 0;
}

int kvm_vcpu_save(int fd, vs *s, char *err, size_t errlen)
{
	struct kvm_regs rg;
	struct kvm_xsave xs;
	struct kvm_mp_state mp;
	struct kvm_lapic_state la;
	int r;

	_Static_assert(sizeof(xs.region) == KVM_VCPU_XSAVE_SIZE &&
			       sizeof(la.regs) == KVM_VCPU_LAPIC_SIZE,
		       "KVM's XSAVE area and LAPIC page sizes");
	if (ioctl(fd, KVM_GET_REGS, &rg) < 0)
		return ioerr(err, errlen, "KVM_GET_REGS");
	s->rax = rg.rax, s->rbx = rg.rbx, s->rcx = rg.rcx, s->rdx = rg.rdx;
	s->rsi = rg.rsi, s->rdi = rg.rdi, s->rsp = rg.rsp, s->rbp = rg.rbp;
	s->r8 = rg.r8, s->r9 = rg.r9, s->r10 = rg.r10, s->r11 = rg.r11;
	s->r12 = rg.r12, s->r13 = rg.r13, s->r14 = rg.r14, s->r15 = rg.r15;
	s->rip = rg.rip, s->rflags = rg.rflags;
	r = save_sregs(fd, s, err, errlen);
	if (r == 0)
		r = save_msrs(fd, s, err, errlen);
	if (r == 0)
		r = save_events(fd, s, err, errlen);
	if (r < 0)
		return r;
	if (ioctl(fd, KVM_GET_XSAVE, &xs) < 0)
		return ioerr(err, errlen, "KVM_GET_XSAVE");
	memcpy(s->xsave, xs.region, sizeof(s->xsave));
	if (ioctl(fd, KVM_GET_MP_STATE, &mp) < 0)
		return ioerr(err, errlen, "KVM_GET_MP_STATE");
	s->mp_state = mp.mp_state;
	if (ioctl(fd, KVM_GET_LAPIC, &la) < 0)
		return ioerr(err, errlen, "KVM_GET_LAPIC");
	memcpy(s->lapic, la.regs, sizeof(s->lapic));
	return 0;
}

static int load_sregs(int fd, const vs *s, char *err, size_t errlen)
{
	struct kvm_sregs sr;

	memset(&sr, 0, sizeof(sr));
	seg_to(&sr.cs, &s->cs);
	seg_to(&sr.ds, &s->ds);
	seg_to(&sr.es, &s->es);
	seg_to(&sr.fs, &s->fs);
	seg_to(&sr.gs, &s->gs);
	seg_to(&sr.ss, &s->ss);
	seg_to(&sr.tr, &s->tr);
	seg_to(&sr.ldt, &s->ldt);
	sr.gdt.base = s->gdt_base;
	sr.gdt.limit = s->gdt_limit;
	sr.idt.base = s->idt_base;
	sr.idt.limit = s->idt_limit;
	sr.cr0 = s->cr0;
	sr.cr2 = s->cr2;
	sr.cr3 = s->cr3;
	sr.cr4 = s->cr4;
	sr.cr8 = s->cr8;
	sr.efer = s->efer;
	sr.apic_base = s->apic_base;
	memcpy(sr.interrupt_bitmap, s->interrupt_bitmap,
	       sizeof(sr.interrupt_bitmap));
	if (ioctl(fd, KVM_SET_SREGS, &sr) < 0)
		return ioerr(err, errlen, "KVM_SET_SREGS");
	return 0;
}

static int load_msrs(int fd, const vs *s, char *err, size_t errlen)
{
	union msr_buf b;
	struct kvm_msr_entry *e = (struct kvm_msr_entry *)(void *)(&b.hdr + 1);

	memset(&b, 0, sizeof(b));
	b.hdr.nmsrs = KVM_VCPU_NMSRS;
	for (unsigned int i = 0; i < KVM_VCPU_NMSRS; i++) {
		e[i].index = kvm_vcpu_msr_index[i];
		e[i].data = msr_get(s, i);
	}
	int n = ioctl(fd, KVM_SET_MSRS, &b);
	if (n < 0)
		return ioerr(err, errlen, "KVM_SET_MSRS");
	if (n < (int)KVM_VCPU_NMSRS) {
		snprintf(err, errlen, "KVM: KVM_SET_MSRS refused MSR %s (0x%x) "
			 "= 0x%llx", kvm_vcpu_msr_name[n], kvm_vcpu_msr_index[n],
			 (unsigned long long)e[n].data);
		return -EINVAL;
	}
	return 0;
}

static int load_events(int fd, const vs *s, char *err, size_t errlen)
{
	struct kvm_vcpu_events ev;

	memset(&ev, 0, sizeof(ev));
	ev.exception.injected = s->exc_injected;
	ev.exception.nr = s->exc_nr;
	ev.exception.has_error_code = s->exc_has_error_code;
	ev.exception.pending = s->exc_pending;
	ev.exception.error_code = s->exc_error_code;
	ev.interrupt.injected = s->int_injected;
	ev.interrupt.nr = s->int_nr;
	ev.interrupt.soft = s->int_soft;
	ev.interrupt.shadow = s->int_shadow;
	ev.nmi.injected = s->nmi_injected;
	ev.nmi.pending = s->nmi_pending;
	ev.nmi.masked = s->nmi_masked;
	ev.sipi_vector = s->sipi_vector;
	ev.smi.smm = s->smi_smm;
	ev.smi.pending = s->smi_pending;
	ev.smi.smm_inside_nmi = s->smi_inside_nmi;
	ev.smi.latched_init = s->smi_latched_init;
	ev.flags = s->event_flags;
	if (ioctl(fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
		return ioerr(err, errlen, "KVM_SET_VCPU_EVENTS");
	return 0;
}

int kvm_vcpu_load(int fd, const vs *s, char *err, size_t errlen)
{
	struct kvm_regs rg = {
		.rax = s->rax, .rbx = s->rbx, .rcx = s->rcx, .rdx = s->rdx,
		.rsi = s->rsi, .rdi = s->rdi, .rsp = s->rsp, .rbp = s->rbp,
		.r8 = s->r8, .r9 = s->r9, .r10 = s->r10, .r11 = s->r11,
		.r12 = s->r12, .r13 = s->r13, .r14 = s->r14, .r15 = s->r15,
		.rip = s->rip, .rflags = s->rflags,
	};
	struct kvm_xsave xs;
	struct kvm_mp_state mp = { .mp_state = s->mp_state };
	struct kvm_lapic_state la;
	int r;

	r = load_sregs(fd, s, err, errlen);
	if (r < 0)
		return r;
	if (ioctl(fd, KVM_SET_REGS, &rg) < 0)
		return ioerr(err, errlen, "KVM_SET_REGS");
	memset(&xs, 0, sizeof(xs));
	memcpy(xs.region, s->xsave, sizeof(s->xsave));
	if (ioctl(fd, KVM_SET_XSAVE, &xs) < 0)
		return ioerr(err, errlen, "KVM_SET_XSAVE");
	r = load_msrs(fd, s, err, errlen);
	if (r < 0)
		return r;
	memcpy(la.regs, s->lapic, sizeof(la.regs));
	if (ioctl(fd, KVM_SET_LAPIC, &la) < 0)
		return ioerr(err, errlen, "KVM_SET_LAPIC");
	if (ioctl(fd, KVM_SET_MP_STATE, &mp) < 0)
		return ioerr(err, errlen, "KVM_SET_MP_STATE");
	return load_events(fd, s, err, errlen);
}
