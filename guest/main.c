/* SPDX-License-Identifier: MIT */
/*
 * The KVM guest's work loop, in ring 3 (src/kvm/kvm_abi.h is the contract
 * with the VMM, docs/kvm.md the explanation). It finds the `dma` sample
 * devices on PCI bus 0 through ports 0xcf8/0xcfc, places their BARs, turns
 * MSI-X on with one vector per completion queue, sets up the descriptor and
 * completion rings in its RAM, and then forever:
 *   - per device, submits a FILL, a COPY and a CSUM request, rings the
 *     doorbell, polls the completion records, and checks every record and
 *     every byte the device wrote (FILL words, the COPY, the checksum it
 *     computed itself); with KG_BOOT_IRQS it also waits for the interrupt
 *     of each queue it used;
 *   - writes a pattern into the `regs` device's mappable BAR (if there
 *     is one) and reads it back;
 *   - stamps a few pages of its RAM with words that follow from (seed,
 *     generation, page, word), recording the generation in the stamp
 *     table, and re-checks one earlier stamped page.
 * Every count goes to the status page; the first failed check is written
 * there as text, reported on KG_PORT_EVENT, and the guest stops.
 */
#include <stddef.h>
#include <stdint.h>

#include "dma/dma_hw.h"
#include "kvm/kvm_abi.h"

_Static_assert(offsetof(struct kg_status, state) == KG_ST_STATE, "abi");
_Static_assert(offsetof(struct kg_status, errors) == KG_ST_ERRORS, "abi");
_Static_assert(offsetof(struct kg_status, fault_vector) == KG_ST_FAULT_VECTOR,
	       "abi");
_Static_assert(offsetof(struct kg_status, fault_rip) == KG_ST_FAULT_RIP, "abi");
_Static_assert(offsetof(struct kg_status, fault_code) == KG_ST_FAULT_CODE,
	       "abi");
_Static_assert(offsetof(struct kg_status, dev) == KG_ST_DEV, "abi");
_Static_assert(sizeof(struct kg_dev_status) == KG_ST_DEV_SIZE, "abi");
_Static_assert(offsetof(struct kg_dev_status, irqs) == KG_ST_DEV_IRQS, "abi");
_Static_assert(sizeof(struct kg_status) <= 4096, "one page");

/* A device's area (KG_DEV_AREA_SIZE bytes): rings, scatter lists, buffers. */
#define RING 64u
#define A_SQ 0x0000u
#define A_CQ0 0x1000u
#define A_CQ1 0x1800u
#define A_SGL 0x2000u /* FILL +0x000, COPY +0x100, CSUM +0x200 */
#define A_TAIL 0x3000u /* the tail shadow (DMA_REG_SQ_SHADOW) */
#define A_SRC 0x10000u
#define A_FILL 0x20000u
#define A_COPY 0x30000u
#define BUF 0x10000u  /* bytes per request */
#define PAGE 4096u

struct gdev {
	uint32_t slot;
	volatile uint32_t *regs;
	uint64_t area;
	uint32_t tail;
	uint64_t ncpl[DMA_NCQ];
	uint64_t seq;
};

static struct gdev devs[KG_MAX_DEVS];
static volatile uint32_t *mem; /* the regs device's mappable BAR */
static unsigned int ndevs;
static const struct kg_boot *boot = (const struct kg_boot *)KG_BOOT_ADDR;
static struct kg_status *const st = (struct kg_status *)KG_STATUS_ADDR;
static uint64_t *const stamp_gen = (uint64_t *)KG_STAMP_TABLE_ADDR;

/* The compiler may emit calls to these for struct copies and zeroing. */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void kg_main(void);

void *memset(void *d, int c, size_t n)
{
	unsigned char *p = d;

	while (n--)
		*p++ = (unsigned char)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	unsigned char *p = d;
	const unsigned char *q = s;

	while (n--)
		*p++ = *q++;
	return d;
}

static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint32_t inl(uint16_t port)
{
	uint32_t v;

	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}

static inline void barrier(void)
{
	__asm__ volatile("" : : : "memory");
}

static inline void cpu_relax(void)
{
	__asm__ volatile("pause" : : : "memory");
}

static uint64_t mix(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* ---- failure reports ---- */

static size_t put_str(size_t at, const char *s)
{
	while (*s && at < sizeof(st->error) - 1)
		st->error[at++] = *s++;
	st->error[at] = 0;
	return at;
}

static size_t put_hex(size_t at, uint64_t v)
{
	char buf[19] = "0x";
	int n = 2;

	for (int sh = 60; sh >= 0; sh -= 4) {
		unsigned d = (unsigned)(v >> sh) & 15u;
		if (d || n > 2 || sh == 0)
			buf[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
	}
	buf[n] = 0;
	return put_str(at, buf);
}

/* Record the first failed check ("what", device d or -1, two values) and
 * stop: the VMM hears of it on KG_PORT_EVENT. */
__attribute__((noreturn)) static void fail(const char *what, int d,
					   uint64_t a, uint64_t b)
{
	size_t at = 0;

	if (d >= 0) {
		at = put_str(at, "dev slot ");
		at = put_hex(at, devs[d].slot);
		at = put_str(at, ": ");
	}
	at = put_str(at, what);
	at = put_str(at, " (");
	at = put_hex(at, a);
	at = put_str(at, ", ");
	at = put_hex(at, b);
	put_str(at, ")");
	st->errors++;
	barrier();
	st->state = KG_STATE_FAILED;
	outl(KG_PORT_EVENT, KG_EV_FAILED);
	for (;;)
		cpu_relax();
}

/* Give the host CPU back for us microseconds (the VMM sleeps). */
static void idle(uint32_t us)
{
	outl(KG_PORT_IDLE, us);
}

/* One step of a wait loop: spin a little, then sleep in short naps. */
static void wait_step(uint32_t *spins)
{
	if (++*spins < 256)
		cpu_relax();
	else
		idle(20);
}

/*
 * A timeout that does not depend on the TSC's continuity: a migration may
 * stop the guest for a while and resume it where the TSC is elsewhere
 * (KVM cannot set it on the destination, docs/kvm.md), ahead or behind.
 * The wait adds up the ticks between two looks, and a step backwards or
 * longer than TIMER_STEP_MS counts as nothing: the guest was not running
 * then. A real wait looks every few microseconds (wait_step).
 */
#define TIMER_STEP_MS 100
struct timer {
	uint64_t last, left;
};

static void timer_start(struct timer *t, uint64_t ms)
{
	t->last = rdtsc();
	t->left = boot->tsc_per_ms * ms;
}

static int timer_expired(struct timer *t)
{
	uint64_t now = rdtsc(), d = now - t->last;

	if (now < t->last || d > boot->tsc_per_ms * TIMER_STEP_MS)
		d = 0;
	t->last = now;
	t->left = d < t->left ? t->left - d : 0;
	return t->left == 0;
}

/* ---- PCI configuration space (mechanism #1) ---- */

static uint32_t cfg_addr(uint32_t slot, uint32_t reg)
{
	return 0x80000000u | slot << 11 | (reg & 0xfcu);
}

static uint32_t cfg_read(uint32_t slot, uint32_t reg)
{
	outl(0xcf8, cfg_addr(slot, reg));
	return inl(0xcfc);
}

static void cfg_write(uint32_t slot, uint32_t reg, uint32_t v)
{
	outl(0xcf8, cfg_addr(slot, reg));
	outl(0xcfc, v);
}

/* Size a 32-bit memory BAR and place it at the next aligned address. */
static uint64_t place_bar(int d, uint32_t bar, uint64_t *next)
{
	uint32_t reg = 0x10 + bar * 4, old = cfg_read(devs[d].slot, reg);
	uint32_t mask, size;
	uint64_t at;

	if (old & 1u)
		fail("BAR is not a memory BAR", d, bar, old);
	cfg_write(devs[d].slot, reg, 0xffffffffu);
	mask = cfg_read(devs[d].slot, reg) & ~0xfu;
	size = ~mask + 1u;
	if (!mask || (size & (size - 1)))
		fail("BAR size is not a power of two", d, bar, mask);
	at = (*next + size - 1) & ~(uint64_t)(size - 1);
	if (at + size > KG_MMIO_END)
		fail("BARs do not fit the MMIO window", d, bar, size);
	cfg_write(devs[d].slot, reg, (uint32_t)at);
	if ((cfg_read(devs[d].slot, reg) & ~0xfu) != at)
		fail("BAR did not take its address", d, bar, at);
	*next = at + size;
	return at;
}

static uint32_t find_cap(int d, uint32_t id)
{
	uint32_t pos = cfg_read(devs[d].slot, 0x34) & 0xfc;

	for (int n = 0; pos && n < 48; n++) {
		uint32_t h = cfg_read(devs[d].slot, pos);
		if ((h & 0xff) == id)
			return pos;
		pos = (h >> 8) & 0xfc;
	}
	return 0;
}

static void reg_write(int d, uint32_t off, uint32_t v)
{
	devs[d].regs[off / 4] = v;
}

static uint32_t reg_read(int d, uint32_t off)
{
	return devs[d].regs[off / 4];
}

/* Memory decoding and bus mastering, MSI-X with its vectors aimed at this
 * CPU's LAPIC, then the rings. */
static void dev_init(int d, uint64_t *next)
{
	struct gdev *g = &devs[d];
	uint64_t bar0 = place_bar(d, DMA_BAR_REGS, next);
	uint64_t bar4 = place_bar(d, DMA_BAR_MSIX, next);
	uint32_t cap = find_cap(d, 0x11), tbl;
	volatile uint32_t *msix;

	st->dev[d].slot = g->slot;
	st->dev[d].bar0 = bar0;
	st->dev[d].bar4 = bar4;
	cfg_write(g->slot, 0x04, (cfg_read(g->slot, 0x04) & 0xffff) | 0x6);
	/* Move BAR0 to the top of the BAR window and back with decoding on:
	 * the VMM's ioeventfd for the doorbell must follow it (kvm.md). */
	cfg_write(g->slot, 0x10, KG_MMIO_END - 0x1000);
	if (*(volatile uint32_t *)(uintptr_t)(KG_MMIO_END - 0x1000) != DMA_MAGIC)
		fail("ID register at the moved BAR0", d, 0, 0);
	cfg_write(g->slot, 0x10, (uint32_t)bar0);
	if (!cap)
		fail("no MSI-X capability", d, 0, 0);
	tbl = cfg_read(g->slot, cap + 4);
	if ((tbl & 7u) != DMA_BAR_MSIX)
		fail("MSI-X table not in BAR4", d, tbl, 0);
	/* Enable (bit 15 of message control), function mask clear. */
	cfg_write(g->slot, cap, (cfg_read(g->slot, cap) & 0x3fffffffu) |
					0x80000000u);
	msix = (volatile uint32_t *)(bar4 + (tbl & ~7u));
	for (uint32_t q = 0; q < DMA_NCQ; q++) {
		msix[q * 4 + 0] = KG_LAPIC_ADDR;
		msix[q * 4 + 1] = 0;
		msix[q * 4 + 2] = KG_VEC_MSI + (uint32_t)d * KG_VEC_PER_DEV + q;
		msix[q * 4 + 3] = 0; /* unmasked */
	}
	g->regs = (volatile uint32_t *)bar0;
	if (reg_read(d, DMA_REG_ID) != DMA_MAGIC)
		fail("ID register", d, reg_read(d, DMA_REG_ID), DMA_MAGIC);
	g->area = KG_DEV_AREA_ADDR + (uint64_t)d * KG_DEV_AREA_SIZE;
	reg_write(d, DMA_REG_SQ_BASE_LO, (uint32_t)(g->area + A_SQ));
	reg_write(d, DMA_REG_SQ_BASE_HI, 0);
	reg_write(d, DMA_REG_SQ_SIZE, RING);
	/* The VMM may ring the doorbell through an ioeventfd, which carries
	 * no value: the device then reads the tail published here. */
	*(volatile uint32_t *)(g->area + A_TAIL) = 0;
	reg_write(d, DMA_REG_SQ_SHADOW_LO, (uint32_t)(g->area + A_TAIL));
	reg_write(d, DMA_REG_SQ_SHADOW_HI, 0);
	for (uint32_t q = 0; q < DMA_NCQ; q++) {
		uint32_t cq = DMA_REG_CQ0 + q * 0x10;
		reg_write(d, cq + DMA_CQ_BASE_LO,
			  (uint32_t)(g->area + (q ? A_CQ1 : A_CQ0)));
		reg_write(d, cq + DMA_CQ_BASE_HI, 0);
		reg_write(d, cq + DMA_CQ_SIZE, RING);
	}
	reg_write(d, DMA_REG_CTRL, DMA_CTRL_ENABLE);
	if (reg_read(d, DMA_REG_STATUS) != DMA_STATUS_ENABLED)
		fail("ring did not enable", d, reg_read(d, DMA_REG_STATUS),
		     reg_read(d, DMA_REG_ERROR));
}

static void mem_init(uint64_t next);

static void probe(void)
{
	uint64_t next = KG_MMIO_BASE;

	for (uint32_t slot = 0; slot < 32 && ndevs < KG_MAX_DEVS; slot++) {
		uint32_t id = cfg_read(slot, 0);
		if (id != ((uint32_t)DMA_DEVICE_ID << 16 | DMA_VENDOR_ID))
			continue;
		devs[ndevs].slot = slot;
		dev_init((int)ndevs, &next);
		ndevs++;
		st->ndevs = ndevs;
	}
	if (!ndevs)
		fail("no dma device on PCI bus 0", -1, 0, 0);
	mem_init(next);
}

/* ---- the regs device's mappable BAR ---- */

static void mem_place(uint32_t slot, uint64_t at)
{
	uint32_t reg = 0x10 + KG_REGS_MEM_BAR * 4;

	cfg_write(slot, reg, (uint32_t)at);
	cfg_write(slot, reg + 4, (uint32_t)(at >> 32));
	if ((cfg_read(slot, reg) & ~0xfu) != (uint32_t)at)
		fail("regs BAR did not take its address", -1, slot, at);
}

static void mem_decode(uint32_t slot, int on)
{
	uint32_t cmd = cfg_read(slot, 0x04) & 0xffff;

	cfg_write(slot, 0x04, on ? cmd | 0x2 : cmd & ~0x2u);
}

/* Size the 64-bit BAR, place it after the dma BARs, and move it once with
 * decoding on and switch decoding off and on: a word written before must
 * be there each time (the VMM moves its memory slot along). */
static void mem_init(uint64_t next)
{
	uint32_t slot, reg = 0x10 + KG_REGS_MEM_BAR * 4;
	uint64_t size, at;

	for (slot = 0; slot < 32; slot++)
		if (cfg_read(slot, 0) ==
		    ((uint32_t)KG_REGS_DEVICE << 16 | KG_REGS_VENDOR))
			break;
	if (slot == 32)
		return;
	uint32_t lo = cfg_read(slot, reg);
	if ((lo & 7u) != 4u)
		fail("regs BAR is not a 64-bit memory BAR", -1, slot, lo);
	cfg_write(slot, reg, 0xffffffffu);
	cfg_write(slot, reg + 4, 0xffffffffu);
	size = ~((uint64_t)cfg_read(slot, reg + 4) << 32 |
		 (cfg_read(slot, reg) & ~0xfu)) + 1;
	if (size != KG_REGS_MEM_SIZE)
		fail("regs BAR size", -1, slot, size);
	at = (next + size - 1) & ~(size - 1);
	if (at + 2 * size > KG_MMIO_END)
		fail("regs BAR does not fit the MMIO window", -1, slot, at);
	mem_place(slot, at);
	mem_decode(slot, 1);
	mem = (volatile uint32_t *)at;
	mem[1] = 0x4d4f5645u; /* "MOVE" */
	mem_place(slot, at + size);
	mem = (volatile uint32_t *)(at + size);
	if (mem[1] != 0x4d4f5645u)
		fail("regs BAR word lost when the BAR moved", -1, slot, mem[1]);
	mem_decode(slot, 0);
	mem_decode(slot, 1);
	if (mem[1] != 0x4d4f5645u)
		fail("regs BAR word lost across decoding off and on", -1, slot,
		     mem[1]);
	st->mem_bar = at + size;
	st->mem_slot = slot + 1;
}

static void mem_round(void)
{
	uint64_t r = st->mem_rounds + 1;
	const uint32_t step = KG_MEM_STRIDE / 4;

	if (!mem)
		return;
	st->mem_busy = 1;
	barrier();
	for (uint32_t w = 0; w < KG_MEM_WORDS; w++)
		mem[w * step] = kg_mem_word(boot->seed, r, w);
	for (uint32_t w = 0; w < KG_MEM_WORDS; w++)
		if (mem[w * step] != kg_mem_word(boot->seed, r, w))
			fail("regs BAR word read back (word, value)", -1, w,
			     mem[w * step]);
	barrier();
	st->mem_rounds = r;
	barrier();
	st->mem_busy = 0;
}

/* ---- requests ---- */

static uint64_t *u64at(uint64_t addr)
{
	return (uint64_t *)addr;
}

/* Write descriptor number g->tail with nseg segments of the buffer at buf
 * (split at the given offsets). */
static void submit(int d, uint32_t op, uint16_t cq, uint64_t src,
		   uint64_t buf, uint64_t sgl, const uint32_t *cuts,
		   uint16_t nseg)
{
	struct gdev *g = &devs[d];
	uint8_t *desc = (uint8_t *)(g->area + A_SQ +
				    (uint64_t)(g->tail % RING) * DMA_DESC_SIZE);
	uint64_t at = 0;

	for (uint16_t s = 0; s < nseg; s++) {
		uint64_t end = s + 1 < nseg ? cuts[s] : BUF;
		u64at(sgl)[2 * s] = buf + at;
		u64at(sgl)[2 * s + 1] = end - at;
		at = end;
	}
	memset(desc, 0, DMA_DESC_SIZE);
	*(uint64_t *)(desc + DMA_DESC_SEQ) = ++g->seq;
	*(uint32_t *)(desc + DMA_DESC_OP) = op;
	*(uint16_t *)(desc + DMA_DESC_CQ) = cq;
	*(uint16_t *)(desc + DMA_DESC_NSEG) = nseg;
	*(uint64_t *)(desc + DMA_DESC_SRC) = src;
	*(uint64_t *)(desc + DMA_DESC_LEN) = BUF;
	*(uint64_t *)(desc + DMA_DESC_SGL) = sgl;
	g->tail++;
	st->dev[d].submitted++;
}

/* Wait for queue q's next completion and check it against seq/op. */
static uint64_t complete(int d, uint32_t q, uint64_t seq, uint32_t op)
{
	struct gdev *g = &devs[d];
	uint64_t n = ++g->ncpl[q];
	volatile uint8_t *rec = (volatile uint8_t *)(g->area + (q ? A_CQ1 : A_CQ0) +
						     ((n - 1) % RING) * DMA_CPL_SIZE);
	struct timer t;
	uint32_t spins = 0;

	timer_start(&t, 5000);
	while (*(volatile uint64_t *)(rec + DMA_CPL_INDEX) != n) {
		if (timer_expired(&t))
			fail("no completion within 5 s (index, status)", d, n,
			     reg_read(d, DMA_REG_STATUS));
		wait_step(&spins);
	}
	barrier();
	if (*(volatile uint64_t *)(rec + DMA_CPL_SEQ) != seq)
		fail("completion seq", d, *(volatile uint64_t *)(rec + DMA_CPL_SEQ),
		     seq);
	if (*(volatile uint32_t *)(rec + DMA_CPL_STATUS) != 0)
		fail("completion status", d,
		     *(volatile uint32_t *)(rec + DMA_CPL_STATUS), op);
	if (*(volatile uint32_t *)(rec + DMA_CPL_OP) != op)
		fail("completion op", d, *(volatile uint32_t *)(rec + DMA_CPL_OP),
		     op);
	st->dev[d].completed++;
	return *(volatile uint64_t *)(rec + DMA_CPL_RESULT);
}

static void wait_irq(int d, uint32_t q, uint64_t before)
{
	struct timer t;
	uint32_t spins = 0;

	timer_start(&t, 5000);
	while (*(volatile uint64_t *)&st->dev[d].irqs[q] == before) {
		if (timer_expired(&t))
			fail("no MSI-X interrupt within 5 s (vector, count)",
			     d, KG_VEC_MSI + (uint64_t)d * KG_VEC_PER_DEV + q,
			     before);
		wait_step(&spins);
	}
	st->dev[d].irq_waits++;
}

static void work(int d, uint64_t it)
{
	static const uint32_t fill_cuts[] = { 0x6000 };
	static const uint32_t copy_cuts[] = { 0x4000, 0xa000 };
	static const uint32_t csum_cuts[] = { 0x8000 };
	struct gdev *g = &devs[d];
	uint64_t *src = u64at(g->area + A_SRC);
	uint64_t *fill = u64at(g->area + A_FILL);
	uint64_t *copy = u64at(g->area + A_COPY);
	uint64_t pattern = mix(boot->seed ^ it ^ ((uint64_t)d << 56));
	uint64_t h = DMA_CSUM_INIT, seq0 = g->seq, irq0, irq1, r;

	for (uint64_t k = 0; k < BUF / 8; k++) {
		src[k] = mix(pattern + k);
		h = dma_csum_word(h, src[k]);
	}
	submit(d, DMA_OP_FILL, 0, pattern, g->area + A_FILL,
	       g->area + A_SGL, fill_cuts, 2);
	submit(d, DMA_OP_COPY, 0, g->area + A_SRC, g->area + A_COPY,
	       g->area + A_SGL + 0x100, copy_cuts, 3);
	submit(d, DMA_OP_CSUM, 1, 0, g->area + A_SRC, g->area + A_SGL + 0x200,
	       csum_cuts, 2);
	irq0 = *(volatile uint64_t *)&st->dev[d].irqs[0];
	irq1 = *(volatile uint64_t *)&st->dev[d].irqs[1];
	/* The tail into the shadow first (x86 keeps the two stores in
	 * order), then the doorbell. */
	*(volatile uint32_t *)(g->area + A_TAIL) = g->tail;
	barrier();
	reg_write(d, DMA_REG_SQ_TAIL, g->tail);

	r = complete(d, 0, seq0 + 1, DMA_OP_FILL);
	if (r != BUF)
		fail("FILL moved", d, r, BUF);
	r = complete(d, 0, seq0 + 2, DMA_OP_COPY);
	if (r != BUF)
		fail("COPY moved", d, r, BUF);
	r = complete(d, 1, seq0 + 3, DMA_OP_CSUM);
	if (r != h)
		fail("CSUM result differs from the guest's own", d, r, h);
	for (uint64_t k = 0; k < BUF / 8; k++) {
		if (fill[k] != dma_fill_word(pattern, k))
			fail("FILL word (index, value)", d, k, fill[k]);
		if (copy[k] != src[k])
			fail("COPY word (index, value)", d, k, copy[k]);
	}
	if (boot->flags & KG_BOOT_IRQS) {
		wait_irq(d, 0, irq0);
		wait_irq(d, 1, irq1);
	}
	st->dev[d].fills++;
	st->dev[d].copies++;
	st->dev[d].csums++;
	st->dev[d].bytes += 3 * BUF;
}

/* ---- RAM stamps ---- */

static void stamp(uint64_t n)
{
	uint64_t p = mix(boot->seed ^ n) % boot->stamp_pages;
	uint64_t gen = stamp_gen[p] + 1;
	uint64_t *w = u64at(KG_STAMP_ADDR + p * PAGE);

	st->stamp_busy = p + 1;
	barrier();
	for (uint64_t k = 0; k < PAGE / 8; k++)
		w[k] = kg_stamp_word(boot->seed, gen, p, k);
	stamp_gen[p] = gen;
	barrier();
	st->stamp_busy = 0;
	st->stamp_writes++;
}

static void recheck(uint64_t it)
{
	uint64_t p = mix(~boot->seed ^ it) % boot->stamp_pages;
	uint64_t gen = stamp_gen[p];
	const uint64_t *w = u64at(KG_STAMP_ADDR + p * PAGE);

	for (uint64_t k = 0; k < PAGE / 8; k++) {
		uint64_t want = gen ? kg_stamp_word(boot->seed, gen, p, k) : 0;
		if (w[k] != want)
			fail("stamp page changed (page, word)", -1, p, k);
	}
	st->stamp_checks++;
}

/* Time the kinds of exit the work loop makes (KG_BOOT_BENCH): kind 0 a
 * port write the VMM ignores, 1 a register read, 2 a config read, 3 a
 * doorbell write (the tail it already has: nothing to fetch). *total gets the ticks of all, *least those of the fastest. */
static void time_exits(int kind, uint64_t *total, uint64_t *least)
{
	uint64_t t0 = rdtsc(), min = ~0ull;

	for (int i = 0; i < KG_BENCH_N; i++) {
		uint64_t a = rdtsc();
		if (kind == 0)
			outl(KG_PORT_NOP, 0);
		else if (kind == 1 && reg_read(0, DMA_REG_ID) != DMA_MAGIC)
			fail("ID register (bench)", 0, (uint64_t)i, 0);
		else if (kind == 2)
			(void)cfg_read(devs[0].slot, 0);
		else if (kind == 3)
			reg_write(0, DMA_REG_SQ_TAIL, devs[0].tail);
		uint64_t t = rdtsc() - a;
		if (t < min)
			min = t;
	}
	*total = rdtsc() - t0;
	*least = min;
}

static void bench(void)
{
	time_exits(0, &st->bench_pio, &st->bench_pio_min);
	time_exits(1, &st->bench_mmio, &st->bench_mmio_min);
	time_exits(2, &st->bench_cfg, &st->bench_cfg_min);
	time_exits(3, &st->bench_door, &st->bench_door_min);
	outl(KG_PORT_EVENT, KG_EV_BENCH);
}

void kg_main(void)
{
	st->magic = KG_STATUS_MAGIC;
	st->version = KG_VERSION;
	if (boot->magic != KG_BOOT_MAGIC || boot->version != KG_BOOT_VERSION)
		fail("boot page magic or version", -1, boot->magic,
		     boot->version);
	if (!boot->stamp_pages || boot->stamp_pages > KG_STAMP_MAX_PAGES ||
	    !boot->tsc_per_ms)
		fail("boot page: stamp pages or TSC rate", -1,
		     boot->stamp_pages, boot->tsc_per_ms);
	probe();
	if (boot->flags & KG_BOOT_BENCH)
		bench();
	st->state = KG_STATE_RUNNING;
	outl(KG_PORT_EVENT, KG_EV_RUNNING);
	for (uint64_t it = 1;; it++) {
		for (unsigned int d = 0; d < ndevs; d++)
			work((int)d, it);
		mem_round();
		for (uint64_t s = 0; s < boot->stamps_per_iter; s++)
			stamp(st->stamp_writes + 1);
		recheck(it);
		st->iterations = it;
		if (boot->interval_us)
			idle((uint32_t)boot->interval_us);
	}
}
