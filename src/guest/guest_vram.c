/* SPDX-License-Identifier: MIT */
/* The guest's driver for the "vram" sample (samples/vram/README.md). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "guest/drivers.h"
/* The sample's datasheet: a guest driver is written against it. */
#include "vram/vram_hw.h"

#define VRAM_DRIVE_MAX (1ull << 30) /* larger VRAM is left alone */
#define VRAM_FILL_MAX 4u	    /* pages per fill */
#define VRAM_CSUM_EVERY 256u	    /* fills between two checksums */
/* ---- the "vram" driver ----
 * Fill commands write 1..4 VRAM pages each from (seed, fill number): the
 * whole VRAM follows from the ledger. The driver reads the first page of
 * each fill back through the BAR2 window, and every VRAM_CSUM_EVERY fills
 * runs CHECKSUM; the verifier replays the fills to recompute that
 * checksum. COUNTER must equal the commands the ledger counts. */

struct vram_fill {
	uint64_t start;
	uint32_t count, seed;
};

static struct vram_fill vram_fill_of(uint64_t seed, unsigned int dev,
				     uint64_t f, uint64_t pages)
{
	uint64_t h = guest__mix64(seed ^ 0x5652414dull ^ ((uint64_t)dev << 48) ^
				  (f << 4));
	struct vram_fill v = {.start = h % pages,
			      .count =
				      1 + (uint32_t)((h >> 32) % VRAM_FILL_MAX),
			      .seed = (uint32_t)guest__mix64(h)};

	if (v.count > pages - v.start)
		v.count = (uint32_t)(pages - v.start);
	return v;
}

/* Run one command; the ledger counts it and its interrupt (vector 0). */
static int vram_cmd(struct vfmig_guest *g, struct gdev *d, uint32_t cmd)
{
	struct ledger_dev *ld = d->ld;
	uint32_t status, err, count;
	uint64_t want = guest__lget(&ld->doorbells) + 1;

	guest__lset(g, &ld->irq_raised[0], guest__lget(&ld->irq_raised[0]) + 1);
	CHECK(guest__reg_write(g, d, VRAM_REG_CMD, cmd));
	guest__lset(g, &ld->doorbells, want);
	CHECK(guest__reg_read(g, d, VRAM_REG_STATUS, &status));
	if (status != VRAM_STATUS_DONE) {
		CHECK(guest__reg_read(g, d, VRAM_REG_ERROR, &err));
		return guest__fail(
			g, "dev%u: VRAM command %u: status %u, error %u",
			d->index, cmd, status, err);
	}
	CHECK(guest__collect_irqs(g, d));
	CHECK(guest__reg_read(g, d, VRAM_REG_COUNTER, &count));
	if (count != (uint32_t)want)
		return guest__fail(g,
				   "dev%u: COUNTER %u, the driver ran %llu "
				   "commands",
				   d->index, count, (unsigned long long)want);
	return 0;
}

static int vram_init(struct vfmig_guest *g, struct gdev *d)
{
	struct ledger_dev *ld = d->ld;
	uint32_t id, lo, hi;
	uint64_t size;
	int r = vfmig_vmm_dev_reset(d->dev); /* zero VRAM and registers */

	if (r < 0)
		return guest__fail(g, "dev%u: reset: %s", d->index,
				   vfmig_vmm_strerror(r));
	CHECK(guest__reg_read(g, d, VRAM_REG_ID, &id));
	if (id != VRAM_MAGIC)
		return guest__fail(g, "dev%u: ID register 0x%08x", d->index,
				   id);
	CHECK(guest__reg_read(g, d, VRAM_REG_SIZE_LO, &lo));
	CHECK(guest__reg_read(g, d, VRAM_REG_SIZE_HI, &hi));
	size = (uint64_t)hi << 32 | lo;
	if (!size || size % VRAM_PAGE_SIZE || size > VRAM_DRIVE_MAX)
		return guest__fail(g, "dev%u: VRAM of %llu bytes not driven",
				   d->index, (unsigned long long)size);
	uint32_t nvec =
		d->nirqs < VRAM_MSIX_VECTORS ? d->nirqs : VRAM_MSIX_VECTORS;
	CHECK(guest__pci_enable(g, d, VRAM_BAR_MSIX, nvec));
	memset(ld, 0, sizeof(*ld));
	guest__lset(g, &ld->vram_pages, size / VRAM_PAGE_SIZE);
	guest__lset(g, &ld->nvec, nvec);
	guest__lset(g, &ld->kind, KIND_VRAM);
	return 0;
}

static int vram_iterate(struct vfmig_guest *g, struct gdev *d, uint64_t it)
{
	struct ledger_dev *ld = d->ld;
	uint64_t f = guest__lget(&ld->fills) + 1;
	struct vram_fill v = vram_fill_of(g->seed, d->index, f,
					  guest__lget(&ld->vram_pages));
	uint64_t page[VRAM_PAGE_SIZE / 8];
	uint64_t off = v.start * VRAM_PAGE_SIZE;
	int r;
	(void)it;

	CHECK(guest__reg_write(g, d, VRAM_REG_FILL_START, (uint32_t)v.start));
	CHECK(guest__reg_write(g, d, VRAM_REG_FILL_COUNT, v.count));
	CHECK(guest__reg_write(g, d, VRAM_REG_FILL_SEED, v.seed));
	CHECK(vram_cmd(g, d, VRAM_CMD_FILL));
	guest__lset(g, &ld->fills, f);
	CHECK(guest__reg_write(g, d, VRAM_REG_WIN_OFF_LO, (uint32_t)off));
	CHECK(guest__reg_write(g, d, VRAM_REG_WIN_OFF_HI,
			       (uint32_t)(off >> 32)));
	r = vfmig_vmm_dev_region_read(d->dev, VRAM_BAR_WIN, 0, page,
				      sizeof(page));
	if (r < 0)
		return guest__fail(g, "dev%u: window read: %s", d->index,
				   vfmig_vmm_strerror(r));
	for (uint32_t i = 0; i < VRAM_PAGE_SIZE / 8; i++)
		if (le64toh(page[i]) != vram_fill_word(v.seed, v.start, i))
			return guest__fail(
				g,
				"dev%u: VRAM page %llu word %u after "
				"fill %llu differs",
				d->index, (unsigned long long)v.start, i,
				(unsigned long long)f);
	if (f % VRAM_CSUM_EVERY == 0) {
		uint32_t lo, hi;
		CHECK(vram_cmd(g, d, VRAM_CMD_CHECKSUM));
		CHECK(guest__reg_read(g, d, VRAM_REG_CSUM_LO, &lo));
		CHECK(guest__reg_read(g, d, VRAM_REG_CSUM_HI, &hi));
		guest__lset(g, &ld->csum_sum, (uint64_t)hi << 32 | lo);
		guest__lset(g, &ld->csum_fills, f);
		guest__lset(g, &ld->csums, guest__lget(&ld->csums) + 1);
	}
	return 0;
}

/* The checksum VRAM had after fills [1, nfills): replay, page by page. */
static int vram_expected_csum(struct vfmig_guest *g, struct gdev *d,
			      uint64_t nfills, uint64_t *out)
{
	uint64_t pages = guest__lget(&d->ld->vram_pages);
	uint32_t *seed_of = calloc(pages, sizeof(uint32_t));
	bool *filled = calloc(pages, sizeof(bool));
	uint64_t h = VRAM_CSUM_INIT;

	if (!seed_of || !filled) {
		free(seed_of);
		free(filled);
		return guest__fail(g, "out of memory");
	}
	for (uint64_t f = 1; f <= nfills; f++) {
		struct vram_fill v = vram_fill_of(g->seed, d->index, f, pages);
		for (uint64_t p = v.start; p < v.start + v.count; p++) {
			seed_of[p] = v.seed;
			filled[p] = true;
		}
	}
	for (uint64_t p = 0; p < pages; p++)
		for (uint32_t i = 0; i < VRAM_PAGE_SIZE / 8; i++) {
			uint64_t w = filled[p]
					     ? vram_fill_word(seed_of[p], p, i)
					     : 0;
			h ^= w;
			h *= 0x100000001b3ull;
		}
	free(seed_of);
	free(filled);
	*out = h;
	return 0;
}

static int vram_verify(struct vfmig_guest *g, struct gdev *d)
{
	struct ledger_dev *ld = d->ld;
	uint32_t val, lo, hi;
	uint64_t want = 0;

	CHECK(guest__reg_read(g, d, VRAM_REG_COUNTER, &val));
	if (val != (uint32_t)guest__lget(&ld->doorbells))
		return guest__fail(
			g, "dev%u: COUNTER %u, ledger %llu commands", d->index,
			val, (unsigned long long)guest__lget(&ld->doorbells));
	CHECK(guest__reg_read(g, d, VRAM_REG_SIZE_LO, &lo));
	CHECK(guest__reg_read(g, d, VRAM_REG_SIZE_HI, &hi));
	if (((uint64_t)hi << 32 | lo) !=
	    guest__lget(&ld->vram_pages) * VRAM_PAGE_SIZE)
		return guest__fail(g,
				   "dev%u: VRAM size differs from the ledger's",
				   d->index);
	if (!guest__lget(&ld->csums))
		return 0;
	CHECK(guest__reg_read(g, d, VRAM_REG_CSUM_LO, &lo));
	CHECK(guest__reg_read(g, d, VRAM_REG_CSUM_HI, &hi));
	if (((uint64_t)hi << 32 | lo) != guest__lget(&ld->csum_sum))
		return guest__fail(
			g, "dev%u: CSUM register differs from the ledger's",
			d->index);
	CHECK(vram_expected_csum(g, d, guest__lget(&ld->csum_fills), &want));
	if (want != guest__lget(&ld->csum_sum))
		return guest__fail(
			g,
			"dev%u: VRAM checksum after fill %llu is "
			"0x%016llx, the fills give 0x%016llx",
			d->index,
			(unsigned long long)guest__lget(&ld->csum_fills),
			(unsigned long long)guest__lget(&ld->csum_sum),
			(unsigned long long)want);
	return 0;
}

const struct vfmig_guest_driver vfmig_guest_vram_driver = {
	.name = "vram",
	.vendor = VRAM_VENDOR_ID,
	.device = VRAM_DEVICE_ID,
	.kind = KIND_VRAM,
	.init = vram_init,
	.iterate = vram_iterate,
	.verify = vram_verify,
};
