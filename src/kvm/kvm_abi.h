/* SPDX-License-Identifier: MIT */
/*
 * The contract between `vfmig vmm --kvm` and the guest image it runs
 * (guest/): where the image is loaded, what the VMM sets up before the
 * first instruction, the boot page the VMM fills and the status page the
 * guest keeps. docs/kvm.md explains it; both sides include this file, so
 * it needs nothing but <stdint.h> (the guest is freestanding).
 *
 * Guest-physical map (identity-mapped, 2 MiB pages, user-accessible):
 *   0x001000  boot page (VMM writes before the start, guest only reads)
 *   0x002000  status page (guest writes, VMM reads): counters, errors
 *   0x003000  GDT, 0x004000 IDT, 0x005000 TSS with an I/O bitmap that
 *             allows every port (VMM builds)
 *   0x008000  page tables: PML4, PDPT, 4 PDs mapping 0..4 GiB (VMM)
 *   0x020000  ring-0 stack (top 0x030000: TSS.RSP0)
 *   0x030000  ring-3 stack (top 0x080000)
 *   0x080000  stamp table: one u64 generation per stamp page
 *   0x100000  the image: header, code, data, bss (at most 1 MiB)
 *   0x200000  device areas: device d's rings and buffers at
 *             0x200000 + d * 0x40000 (d < 8)
 *   0x400000  stamp pages, up to KG_STAMP_MAX_PAGES or the end of RAM
 *   0xe0000000 .. 0xfec00000  the guest places BARs here
 *   0xfee00000  the local APIC (in-kernel)
 *
 * CPU state at the start: 64-bit mode, CPL 3 (the work loop runs in ring
 * 3, natively fast on a PVM host), RFLAGS.IOPL 3 (port I/O allowed in ring
 * 3) and IF 1 (the guest never executes sti/cli), RIP = header entry,
 * RSP = KG_USTACK_TOP. (A PVM host checks the TSS I/O bitmap for ring-3
 * port access even at IOPL 3, so the TSS carries one that allows all.)
 * Ring 0 runs only the interrupt and exception
 * handlers the header lists.
 */
#ifndef VFMIG_KVM_ABI_H
#define VFMIG_KVM_ABI_H

#ifndef __ASSEMBLER__
#include <stdint.h>
#endif

#define KG_BOOT_ADDR 0x1000
#define KG_STATUS_ADDR 0x2000
#define KG_GDT_ADDR 0x3000
#define KG_TSS_ADDR 0x5000
/* The TSS's last byte: 104 bytes, the 8 KiB I/O bitmap, its 0xff end. */
#define KG_TSS_LIMIT (0x68 + 8192)
#define KG_IDT_ADDR 0x4000
#define KG_PT_ADDR 0x8000 /* PML4; PDPT +0x1000; PDs +0x2000.. */
#define KG_PT_PAGES 6
#define KG_KSTACK_TOP 0x30000
#define KG_USTACK_TOP 0x80000
#define KG_STAMP_TABLE_ADDR 0x80000
#define KG_IMAGE_ADDR 0x100000
#define KG_IMAGE_MAX 0x100000
#define KG_DEV_AREA_ADDR 0x200000
#define KG_DEV_AREA_SIZE 0x40000
#define KG_MAX_DEVS 8
#define KG_STAMP_ADDR 0x400000
#define KG_STAMP_MAX_PAGES 0x10000 /* the table's 512 KiB */
#define KG_RAM_MIN (8 << 20)
#define KG_MMIO_BASE 0xe0000000
#define KG_MMIO_END 0xfec00000
#define KG_LAPIC_ADDR 0xfee00000

/* GDT selectors. */
#define KG_SEL_KCODE 0x08
#define KG_SEL_KDATA 0x10
#define KG_SEL_UDATA 0x1b /* index 3, RPL 3 */
#define KG_SEL_UCODE 0x23 /* index 4, RPL 3 */
#define KG_SEL_TSS 0x28   /* index 5, 16 bytes */
#define KG_GDT_ENTRIES 7

/* Interrupt vectors: exceptions 0..31 go to the fault handler; MSI-X
 * vector q of device d is KG_VEC_MSI + d * KG_VEC_PER_DEV + q. */
#define KG_NVEC 0x50
#define KG_VEC_MSI 0x40
#define KG_VEC_PER_DEV 2

/* I/O ports besides 0xcf8/0xcfc. The guest writes a 32-bit value. */
#define KG_PORT_EVENT 0x510 /* KG_EV_*: the guest's state changed */
#define KG_EV_RUNNING 1 /* probed its devices; the work loop runs */
#define KG_EV_FAILED 2  /* a check failed: status.error says which */
#define KG_EV_FAULT 3   /* a CPU exception: status.fault_* */
/* The guest has nothing to do for the value's microseconds (at most
 * KG_IDLE_MAX_US): the VMM sleeps the vCPU thread (the guest cannot halt
 * in ring 3), waking early when it wants the vCPU paused. */
#define KG_PORT_IDLE 0x511
#define KG_IDLE_MAX_US 100000
/* Benchmarks only: a port the VMM does nothing for but count. */
#define KG_PORT_NOP 0x512
#define KG_EV_BENCH 4 /* exit timings are in status.bench_* */
#define KG_BENCH_N 2000

/* The `regs` sample's BAR it offers for mmap: the guest writes
 * KG_MEM_WORDS 32-bit words at KG_MEM_STRIDE apart each round and reads
 * them back (the VMM makes it a memory slot, kvm_bar.c). */
#define KG_REGS_VENDOR 0x1b36
#define KG_REGS_DEVICE 0x1000
#define KG_REGS_MEM_BAR 2
#define KG_REGS_MEM_SIZE 0x10000
#define KG_MEM_WORDS 64
#define KG_MEM_STRIDE (KG_REGS_MEM_SIZE / KG_MEM_WORDS)

/* Byte offsets in the status page, for the ring-0 handlers (assembly);
 * the guest's C code checks them against struct kg_status. */
#define KG_ST_STATE 16
#define KG_ST_ERRORS 56
#define KG_ST_FAULT_VECTOR 64
#define KG_ST_FAULT_RIP 72
#define KG_ST_FAULT_CODE 80
#define KG_ST_DEV 88
#define KG_ST_DEV_SIZE 96
#define KG_ST_DEV_IRQS 72

#define KG_HDR_MAGIC 0x474b4656 /* "VFKG" */
#define KG_VERSION 1

#ifndef __ASSEMBLER__
/* The image starts with this header (little-endian). */
struct kg_header {
	uint32_t magic;     /* KG_HDR_MAGIC */
	uint32_t version;   /* KG_VERSION */
	uint64_t entry;     /* ring-3 entry point */
	uint64_t image_end; /* end of bss: RAM the image owns */
	uint64_t handler[KG_NVEC]; /* ring-0 handler per vector; 0: none */
};

/* Boot page, written by the VMM. */
#define KG_BOOT_VERSION 1
#define KG_BOOT_MAGIC 0x544f4f42474b4656 /* "VFKGBOOT" */
#define KG_BOOT_IRQS 1 /* MSI-X is wired: the guest waits for interrupts */
#define KG_BOOT_BENCH 2 /* time exits once at boot (status.bench_*) */
struct kg_boot {
	uint64_t magic;
	uint64_t version;
	uint64_t ram_size;
	uint64_t seed;        /* drives the stamp and data patterns */
	uint64_t stamp_pages; /* stamp pages from KG_STAMP_ADDR */
	uint64_t stamps_per_iter;
	uint64_t flags;       /* KG_BOOT_* */
	uint64_t tsc_per_ms;  /* for the guest's timeouts */
	uint64_t interval_us; /* idle time after each iteration */
};

/* Status page, written by the guest. */
#define KG_STATUS_MAGIC 0x54415453474b4656 /* "VFKGSTAT" */
enum kg_state {
	KG_STATE_BOOT = 0,
	KG_STATE_RUNNING = 1,
	KG_STATE_FAILED = 2,
};
struct kg_dev_status {
	uint64_t slot;      /* PCI device number on bus 0 */
	uint64_t bar0, bar4; /* where the guest placed them */
	uint64_t submitted, completed;
	uint64_t fills, copies, csums;
	uint64_t bytes;
	uint64_t irqs[KG_VEC_PER_DEV]; /* counted by the ring-0 handler */
	uint64_t irq_waits;  /* completions whose interrupt it waited for */
};
struct kg_status {
	uint64_t magic;
	uint64_t version;
	uint64_t state;      /* enum kg_state */
	uint64_t ndevs;      /* dma devices found */
	uint64_t iterations;
	uint64_t stamp_writes, stamp_checks;
	uint64_t errors;     /* checks that failed (the guest stops at 1) */
	uint64_t fault_vector, fault_rip, fault_code;
	struct kg_dev_status dev[KG_MAX_DEVS];
	uint64_t stamp_busy; /* page + 1 while the guest stamps it; else 0 */
	/* KG_BOOT_BENCH: TSC ticks of KG_BENCH_N port writes to KG_PORT_NOP,
	 * of as many reads of the first device's ID register, and of as
	 * many config reads of its vendor/device ID: in all, and the least
	 * one took (the mean suffers from a busy host, the least does not). */
	uint64_t bench_pio, bench_mmio, bench_cfg;
	uint64_t bench_pio_min, bench_mmio_min, bench_cfg_min;
	/* The regs device's mappable BAR (KG_REGS_MEM_BAR). */
	uint64_t mem_slot;   /* its PCI slot + 1; 0: no regs device */
	uint64_t mem_bar;    /* where the guest placed it (for good) */
	uint64_t mem_rounds; /* rounds written and read back */
	uint64_t mem_busy;   /* 1 while a round writes round mem_rounds + 1 */
	char error[256];     /* the failed check, NUL-terminated */
	/* KG_BOOT_BENCH: as bench_*, KG_BENCH_N doorbell writes of the first
	 * device (SQ_TAIL, the tail unchanged): through an ioeventfd when
	 * the VMM registered one, else an MMIO exit and a REGION_WRITE. */
	uint64_t bench_door, bench_door_min;
};

/* Stamp page p, generation gen (>= 1), word w (of 512). Generation 0:
 * never stamped, the page is zero. */
static inline uint64_t kg_stamp_word(uint64_t seed, uint64_t gen, uint64_t p,
				     uint64_t w)
{
	uint64_t z = seed ^ (gen * 0x9e3779b97f4a7c15ull) ^
		     (p * 0xc2b2ae3d27d4eb4full) ^ (w << 48);

	z = (z ^ (z >> 29)) * 0xbf58476d1ce4e5b9ull;
	return z ^ (z >> 32);
}
/* Word w of round r (>= 1) in the regs device's mappable BAR. */
static inline uint32_t kg_mem_word(uint64_t seed, uint64_t r, uint64_t w)
{
	return (uint32_t)kg_stamp_word(seed ^ 0x6d656d424152ull, r, 0, w);
}
#endif /* __ASSEMBLER__ */

#endif
