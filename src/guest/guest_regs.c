/* SPDX-License-Identifier: MIT */
/*
 * The guest's driver for the "regs" sample (samples/regs/README.md):
 * doorbells against COUNTER, EVENT interrupts, DMA fill and checksum of
 * guest buffers, SCRATCH registers and BAR2 device memory, all derived from
 * the ledger so that the verifier can check them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "guest/drivers.h"
/* The sample's datasheet: a guest driver is written against it. */
#include "regs/regs_hw.h"

#define DMA_LEN 0x4000u	 /* fill and checksum buffers: 4 pages each */
#define CSUM_OFF 0x8000u /* checksum buffer within the DMA area */
#define MEM_CHUNK 1024u	 /* BAR2 is written in 1 KiB chunks */
#define MEM_CHUNKS (REGS_BAR_MEM_SIZE / MEM_CHUNK)

static uint64_t dma_area(const struct gdev *d)
{
	return VFMIG_GUEST_DMA_BASE + d->index * VFMIG_GUEST_DMA_STRIDE;
}

static uint8_t fill_pattern(unsigned int dev, uint64_t f)
{
	/* 37 is odd: consecutive fills always differ. */
	return (uint8_t)(f * 37 + dev * 101);
}

static void csum_data(uint64_t seed, unsigned int dev, uint64_t c, uint8_t *buf)
{
	for (uint32_t j = 0; j < DMA_LEN / 8; j++) {
		uint64_t w = htole64(guest__mix64(seed ^ ((uint64_t)dev << 56) ^
						  (c << 20) ^ j));
		memcpy(buf + j * 8, &w, 8);
	}
}

static uint64_t mem_chunk(uint64_t seed, unsigned int dev, uint64_t m)
{
	return guest__mix64(seed ^ 0x4d454dull ^ ((uint64_t)dev << 48) ^
			    (m << 8)) %
	       MEM_CHUNKS;
}

static void mem_data(uint64_t seed, unsigned int dev, uint64_t m,
		     uint64_t chunk, uint8_t *buf)
{
	for (uint32_t j = 0; j < MEM_CHUNK / 8; j++) {
		uint64_t w = htole64(guest__mix64(seed + m) ^
				     ((uint64_t)dev << 56) ^ (chunk << 16) ^ j);
		memcpy(buf + j * 8, &w, 8);
	}
}

static uint32_t scratch_value(uint64_t seed, unsigned int dev, uint64_t it)
{
	return (uint32_t)guest__mix64(seed ^ 0x5343ull ^ ((uint64_t)dev << 40) ^
				      it);
}
static int regs_init(struct vfmig_guest *g, struct gdev *d)
{
	struct ledger_dev *ld = d->ld;
	uint32_t id, count, nvec;

	CHECK(guest__reg_read(g, d, REG_ID, &id));
	if (id != REGS_MAGIC)
		return guest__fail(g, "dev%u: ID register 0x%08x", d->index,
				   id);
	nvec = d->nirqs < REGS_MSIX_VECTORS ? d->nirqs : REGS_MSIX_VECTORS;
	CHECK(guest__pci_enable(g, d, REGS_BAR_MSIX, nvec));

	/* Take the device as it is: counter, scratch; clear its memory. */
	CHECK(guest__reg_read(g, d, REG_COUNTER, &count));
	uint8_t *zero = calloc(1, REGS_BAR_MEM_SIZE);
	if (!zero)
		return guest__fail(g, "out of memory");
	int r = vfmig_vmm_dev_region_write(d->dev, REGS_BAR_MEM, 0, zero,
					   REGS_BAR_MEM_SIZE);
	free(zero);
	if (r < 0)
		return guest__fail(g, "dev%u: clearing BAR%u: %s", d->index,
				   REGS_BAR_MEM, vfmig_vmm_strerror(r));
	memset(ld, 0, sizeof(*ld));
	for (uint32_t i = 0; i < NSCRATCH; i++) {
		uint32_t s;
		CHECK(guest__reg_read(g, d, REG_SCRATCH0 + 4 * i, &s));
		guest__lset(g, &ld->scratch[i], s);
	}
	guest__lset(g, &ld->doorbells, count);
	guest__lset(g, &ld->nvec, nvec);
	guest__lset(g, &ld->kind, KIND_REGS);
	return 0;
}

/* Program and run one DMA command on buffer addr; wait for its
 * completion interrupt (vector 0). */
static int regs_dma(struct vfmig_guest *g, struct gdev *d, uint64_t addr,
		    uint32_t cmd)
{
	struct ledger_dev *ld = d->ld;
	uint32_t status, err;

	CHECK(guest__reg_write(g, d, REG_DMA_ADDR_LO, (uint32_t)addr));
	CHECK(guest__reg_write(g, d, REG_DMA_ADDR_HI, (uint32_t)(addr >> 32)));
	CHECK(guest__reg_write(g, d, REG_DMA_LEN, DMA_LEN));
	guest__lset(g, &ld->irq_raised[0], guest__lget(&ld->irq_raised[0]) + 1);
	CHECK(guest__reg_write(g, d, REG_DMA_CMD, cmd));
	CHECK(guest__reg_read(g, d, REG_DMA_STATUS, &status));
	if (status != DMA_STATUS_DONE) {
		CHECK(guest__reg_read(g, d, REG_DMA_ERROR, &err));
		return guest__fail(
			g,
			"dev%u: DMA command %u at 0x%llx: status %u, "
			"error %u",
			d->index, cmd, (unsigned long long)addr, status, err);
	}
	return guest__collect_irqs(g, d);
}

static int regs_doorbells(struct vfmig_guest *g, struct gdev *d, uint64_t it)
{
	struct ledger_dev *ld = d->ld;
	uint32_t k = 1 + (uint32_t)(guest__mix64(g->seed ^ it ^ d->index) % 3);
	uint64_t want = guest__lget(&ld->doorbells) + k;
	uint32_t count;

	for (uint32_t i = 0; i < k; i++)
		CHECK(guest__reg_write(g, d, REG_DOORBELL, 1));
	guest__lset(g, &ld->doorbells, want);
	CHECK(guest__reg_read(g, d, REG_COUNTER, &count));
	if (count != (uint32_t)want)
		return guest__fail(g,
				   "dev%u: COUNTER %u, the driver rang %llu "
				   "doorbells",
				   d->index, count, (unsigned long long)want);
	return 0;
}

static int regs_event(struct vfmig_guest *g, struct gdev *d, uint64_t it)
{
	struct ledger_dev *ld = d->ld;
	uint32_t v = (uint32_t)(it % guest__lget(&ld->nvec));

	guest__lset(g, &ld->irq_raised[v], guest__lget(&ld->irq_raised[v]) + 1);
	CHECK(guest__reg_write(g, d, REG_EVENT, v));
	return guest__collect_irqs(g, d);
}

static int regs_fill(struct vfmig_guest *g, struct gdev *d)
{
	struct ledger_dev *ld = d->ld;
	uint64_t f = guest__lget(&ld->fills) + 1;
	uint8_t pat = fill_pattern(d->index, f);
	const uint8_t *buf = guest__gpa(g, dma_area(d));

	CHECK(guest__reg_write(g, d, REG_DMA_PATTERN, pat));
	CHECK(regs_dma(g, d, dma_area(d), DMA_CMD_FILL));
	for (uint32_t i = 0; i < DMA_LEN; i++)
		if (buf[i] != (uint8_t)(pat + i))
			return guest__fail(
				g,
				"dev%u: fill %llu: byte %u is 0x%02x, "
				"not 0x%02x",
				d->index, (unsigned long long)f, i, buf[i],
				(uint8_t)(pat + i));
	guest__lset(g, &ld->fill_pattern, pat);
	guest__lset(g, &ld->fills, f);
	return 0;
}

static int regs_checksum(struct vfmig_guest *g, struct gdev *d)
{
	struct ledger_dev *ld = d->ld;
	uint64_t c = guest__lget(&ld->csums) + 1;
	uint64_t addr = dma_area(d) + CSUM_OFF;
	uint32_t sum, want;

	csum_data(g->seed, d->index, c, guest__gpa(g, addr));
	guest__mark_dirty(g, addr, DMA_LEN);
	want = regs_fnv1a(guest__gpa(g, addr), DMA_LEN);
	CHECK(regs_dma(g, d, addr, DMA_CMD_CHECKSUM));
	CHECK(guest__reg_read(g, d, REG_DMA_RESULT, &sum));
	if (sum != want)
		return guest__fail(
			g,
			"dev%u: checksum %llu: device 0x%08x, driver "
			"0x%08x",
			d->index, (unsigned long long)c, sum, want);
	guest__lset(g, &ld->csum_sum, sum);
	guest__lset(g, &ld->csums, c);
	return 0;
}

static int regs_devmem(struct vfmig_guest *g, struct gdev *d, uint64_t it)
{
	struct ledger_dev *ld = d->ld;
	uint64_t m = guest__lget(&ld->mem_writes) + 1;
	uint64_t chunk = mem_chunk(g->seed, d->index, m);
	uint32_t idx = (uint32_t)(it % NSCRATCH);
	uint32_t val = scratch_value(g->seed, d->index, it);
	uint8_t buf[MEM_CHUNK];
	int r;

	CHECK(guest__reg_write(g, d, REG_SCRATCH0 + 4 * idx, val));
	guest__lset(g, &ld->scratch[idx], val);
	mem_data(g->seed, d->index, m, chunk, buf);
	r = vfmig_vmm_dev_region_write(d->dev, REGS_BAR_MEM, chunk * MEM_CHUNK,
				       buf, sizeof(buf));
	if (r < 0)
		return guest__fail(g, "dev%u: BAR%u write: %s", d->index,
				   REGS_BAR_MEM, vfmig_vmm_strerror(r));
	guest__lset(g, &ld->mem_writes, m);
	return 0;
}

static int regs_iterate(struct vfmig_guest *g, struct gdev *d, uint64_t it)
{
	CHECK(regs_doorbells(g, d, it));
	CHECK(regs_event(g, d, it));
	CHECK(regs_fill(g, d));
	CHECK(regs_checksum(g, d));
	return regs_devmem(g, d, it);
}

static int regs_verify(struct vfmig_guest *g, struct gdev *d)
{
	struct ledger_dev *ld = d->ld;
	uint64_t last[MEM_CHUNKS] = {0};
	uint8_t want[MEM_CHUNK];
	uint32_t val;
	int r;

	CHECK(guest__reg_read(g, d, REG_COUNTER, &val));
	if (val != (uint32_t)guest__lget(&ld->doorbells))
		return guest__fail(
			g, "dev%u: COUNTER %u, ledger %llu doorbells", d->index,
			val, (unsigned long long)guest__lget(&ld->doorbells));
	for (uint32_t i = 0; i < NSCRATCH; i++) {
		CHECK(guest__reg_read(g, d, REG_SCRATCH0 + 4 * i, &val));
		if (val != (uint32_t)guest__lget(&ld->scratch[i]))
			return guest__fail(
				g, "dev%u: SCRATCH%u 0x%08x, ledger 0x%08x",
				d->index, i, val,
				(uint32_t)guest__lget(&ld->scratch[i]));
	}
	uint8_t *mem = malloc(REGS_BAR_MEM_SIZE);
	if (!mem)
		return guest__fail(g, "out of memory");
	r = vfmig_vmm_dev_region_read(d->dev, REGS_BAR_MEM, 0, mem,
				      REGS_BAR_MEM_SIZE);
	if (r < 0) {
		free(mem);
		return guest__fail(g, "dev%u: BAR%u read: %s", d->index,
				   REGS_BAR_MEM, vfmig_vmm_strerror(r));
	}
	for (uint64_t m = 1; m <= guest__lget(&ld->mem_writes); m++)
		last[mem_chunk(g->seed, d->index, m)] = m;
	for (uint32_t c = 0; c < MEM_CHUNKS && r == 0; c++) {
		if (last[c])
			mem_data(g->seed, d->index, last[c], c, want);
		else
			memset(want, 0, sizeof(want));
		if (memcmp(mem + c * MEM_CHUNK, want, MEM_CHUNK))
			r = guest__fail(g,
					"dev%u: device memory chunk %u differs "
					"from write %llu",
					d->index, c,
					(unsigned long long)last[c]);
	}
	free(mem);
	CHECK(r);
	if (guest__lget(&ld->fills)) {
		const uint8_t *buf = guest__gpa(g, dma_area(d));
		uint8_t pat = (uint8_t)guest__lget(&ld->fill_pattern);
		for (uint32_t i = 0; i < DMA_LEN; i++)
			if (buf[i] != (uint8_t)(pat + i))
				return guest__fail(
					g,
					"dev%u: fill buffer byte %u is "
					"0x%02x, fill %llu wrote 0x%02x",
					d->index, i, buf[i],
					(unsigned long long)guest__lget(
						&ld->fills),
					(uint8_t)(pat + i));
	}
	if (guest__lget(&ld->csums)) {
		uint8_t exp[DMA_LEN];
		const uint8_t *buf = guest__gpa(g, dma_area(d) + CSUM_OFF);
		csum_data(g->seed, d->index, guest__lget(&ld->csums), exp);
		if (memcmp(buf, exp, DMA_LEN))
			return guest__fail(
				g,
				"dev%u: checksum buffer differs from "
				"generation %llu",
				d->index,
				(unsigned long long)guest__lget(&ld->csums));
		if (regs_fnv1a(buf, DMA_LEN) !=
		    (uint32_t)guest__lget(&ld->csum_sum))
			return guest__fail(
				g,
				"dev%u: checksum buffer hash differs "
				"from the device's result",
				d->index);
	}
	return 0;
}

const struct vfmig_guest_driver vfmig_guest_regs_driver = {
	.name = "regs",
	.vendor = REGS_VENDOR_ID,
	.device = 0x1000,
	.kind = KIND_REGS,
	.init = regs_init,
	.iterate = regs_iterate,
	.verify = regs_verify,
};
