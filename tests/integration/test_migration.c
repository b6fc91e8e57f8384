/* SPDX-License-Identifier: MIT */
/*
 * Device-side migration between real device processes (`vfmig device regs`
 * and `vfmig device vram`), driven with libvfmig-vmm's raw calls:
 * DEVICE_FEATURE MIG_DEVICE_STATE and MIG_DATA_READ/WRITE. The VMM's own
 * part of a migration (PCI config, IRQ wiring, guest RAM) is redone by hand
 * on the destination, as the engine would.
 */
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>
#include <vfmig/vmm.h>

#include "harness.h"
#include "regs_hw.h"
#include "vram_hw.h"

#define RAM_SIZE (1u << 20)
#define RAM_IOVA 0x100000ull

enum { ST_ERROR = 0, ST_STOP = 1, ST_RUNNING = 2, ST_STOP_COPY = 3,
       ST_RESUMING = 4, ST_PRE_COPY = 6 };

struct side {
	pid_t pid;
	vfmig_vmm_dev *dev;
	int irq[4];
};

static int ram_fd = -1;
static uint8_t *ram;

static void side_start(struct side *s, const char *dev, const char *sock,
		       const char *const *extra)
{
	char path[256];

	snprintf(path, sizeof(path), "%s", harness_path(sock));
	s->pid = harness_spawn_device(dev, path, extra);
	assert_true(s->pid > 0);
	assert_int_equal(vfmig_vmm_dev_connect(path, NULL, &s->dev), 0);
	for (int i = 0; i < 4; i++)
		s->irq[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

static void side_stop(struct side *s)
{
	vfmig_vmm_dev_close(s->dev);
	for (int i = 0; i < 4; i++)
		close(s->irq[i]);
	assert_int_equal(harness_stop(s->pid), 0); /* clean exit */
}

/* Registers and config space are little-endian, whatever the host. */
static uint32_t rd(struct side *s, uint32_t bar, uint32_t off)
{
	uint32_t v = 0xffffffff;
	assert_int_equal(vfmig_vmm_dev_region_read(s->dev, bar, off, &v, 4), 0);
	return le32toh(v);
}

static void wr(struct side *s, uint32_t bar, uint32_t off, uint32_t v)
{
	v = htole32(v);
	assert_int_equal(vfmig_vmm_dev_region_write(s->dev, bar, off, &v, 4), 0);
}

static int set_state(struct side *s, uint32_t to)
{
	struct vfw_state { uint32_t state, fd; } in = { to, UINT32_MAX }, out;
	size_t n = 0;
	int r = vfmig_vmm_dev_feature(s->dev, 2 | VFMIG_VMM_FEATURE_SET, &in,
				      sizeof(in), &out, sizeof(out), &n);
	if (r == 0) {
		assert_int_equal(n, 8);
		assert_int_equal(out.state, to);
	}
	return r;
}

static uint32_t get_state(struct side *s)
{
	uint32_t out[2] = { 99, 0 };
	size_t n = 0;

	assert_int_equal(vfmig_vmm_dev_feature(s->dev, 2 | VFMIG_VMM_FEATURE_GET,
					       NULL, 0, out, sizeof(out), &n),
			 0);
	assert_int_equal(n, 8);
	return out[0];
}

/* Read until a short reply; returns the bytes appended to *buf. */
static size_t drain(struct side *s, uint8_t **buf, size_t *len)
{
	size_t got = 0;

	for (;;) {
		*buf = realloc(*buf, *len + (1 << 20));
		assert_non_null(*buf);
		int n = vfmig_vmm_dev_mig_data_read(s->dev, *buf + *len, 1 << 20);
		assert_true(n >= 0);
		*len += (size_t)n;
		got += (size_t)n;
		if (n < (1 << 20))
			return got;
	}
}

/* Whole STOP_COPY migration from src to dst; returns the stream length. */
static size_t migrate(struct side *src, struct side *dst)
{
	uint8_t *buf = NULL;
	size_t len = 0;

	assert_int_equal(set_state(src, ST_STOP_COPY), 0);
	drain(src, &buf, &len);
	assert_int_equal(set_state(dst, ST_RESUMING), 0);
	/* uneven chunks: the device must cope with any split */
	for (size_t off = 0; off < len;) {
		size_t n = len - off < 7777 ? len - off : 7777;
		assert_int_equal(vfmig_vmm_dev_mig_data_write(dst->dev, buf + off,
							      n), 0);
		off += n;
	}
	free(buf);
	return len;
}

static void enable_msix(struct side *s, uint32_t bar, unsigned int vectors)
{
	uint8_t cfg[256];
	uint32_t zero = 0;
	uint16_t ctl;
	uint8_t cap = 0;

	assert_int_equal(vfmig_vmm_dev_region_read(s->dev, VFMIG_VMM_PCI_CONFIG,
						   0, cfg, sizeof(cfg)), 0);
	for (uint8_t p = cfg[0x34], n = 0; p && n < 48; p = cfg[p + 1], n++)
		if (cfg[p] == 0x11)
			cap = p;
	assert_true(cap);
	assert_int_equal(vfmig_vmm_dev_set_irq_eventfds(s->dev, VFMIG_VMM_IRQ_MSIX,
							0, s->irq, vectors), 0);
	memcpy(&ctl, cfg + cap + 2, 2);
	ctl = htole16((uint16_t)(le16toh(ctl) | 0x8000));
	assert_int_equal(vfmig_vmm_dev_region_write(s->dev, VFMIG_VMM_PCI_CONFIG,
						    cap + 2u, &ctl, 2), 0);
	for (unsigned v = 0; v < vectors; v++)
		wr(s, bar, v * 16 + 12, zero);
}

static uint64_t irq_count(struct side *s, unsigned v, int ms)
{
	struct pollfd p = { .fd = s->irq[v], .events = POLLIN };
	uint64_t n = 0;

	if (poll(&p, 1, ms) == 1)
		assert_int_equal(read(s->irq[v], &n, 8), 8);
	return n;
}

static void map_ram(struct side *s)
{
	assert_int_equal(vfmig_vmm_dev_dma_map(s->dev, RAM_IOVA, RAM_SIZE,
					       ram_fd, 0, ram,
					       VFMIG_VMM_DMA_READ |
						       VFMIG_VMM_DMA_WRITE), 0);
}

static int group_setup(void **state)
{
	(void)state;
	ram_fd = memfd_create("ram", MFD_CLOEXEC);
	if (ram_fd < 0 || ftruncate(ram_fd, RAM_SIZE) < 0)
		return -1;
	ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, ram_fd, 0);
	return ram == MAP_FAILED ? -1 : 0;
}

static int group_teardown(void **state)
{
	(void)state;
	munmap(ram, RAM_SIZE);
	close(ram_fd);
	return 0;
}

/* ---- regs ---- */

#define REGS_STREAM (12 + 64 + 4 + REGS_BAR_MEM_SIZE + 4)

static void regs_fill_state(struct side *a, uint32_t seed)
{
	uint8_t mem[REGS_BAR_MEM_SIZE];

	for (int i = 0; i < 8; i++)
		wr(a, REGS_BAR_REGS, REG_SCRATCH0 + 4 * i, seed * 100 + i);
	for (unsigned i = 0; i < sizeof(mem); i++)
		mem[i] = (uint8_t)(i * 7 + seed);
	assert_int_equal(vfmig_vmm_dev_region_write(a->dev, REGS_BAR_MEM, 0,
						    mem, sizeof(mem)), 0);
}

static void regs_check_state(struct side *b, uint32_t seed)
{
	uint8_t mem[REGS_BAR_MEM_SIZE];

	for (int i = 0; i < 8; i++)
		assert_int_equal(rd(b, REGS_BAR_REGS, REG_SCRATCH0 + 4 * i),
				 seed * 100 + i);
	assert_int_equal(vfmig_vmm_dev_region_read(b->dev, REGS_BAR_MEM, 0, mem,
						   sizeof(mem)), 0);
	for (unsigned i = 0; i < sizeof(mem); i++)
		if (mem[i] != (uint8_t)(i * 7 + seed))
			fail_msg("BAR2 byte %u differs after migration", i);
}

static void test_regs_migrate(void **state)
{
	struct side a, b;
	(void)state;

	side_start(&a, "regs", "ra.sock", NULL);
	side_start(&b, "regs", "rb.sock", NULL);
	map_ram(&a);
	enable_msix(&a, REGS_BAR_MSIX, 4);
	regs_fill_state(&a, 1);
	for (int i = 0; i < 5; i++)
		wr(&a, REGS_BAR_REGS, REG_DOORBELL, 1);
	/* DMA logging on the source catches the device's fill */
	struct { uint64_t pg; uint32_t n, res; uint64_t iova, len; } st =
		{ 4096, 1, 0, RAM_IOVA, RAM_SIZE };
	uint8_t out[64];
	size_t n;
	assert_int_equal(vfmig_vmm_dev_feature(a.dev, 6 | VFMIG_VMM_FEATURE_SET,
					       &st, sizeof(st), out, sizeof(out),
					       &n), 0);
	wr(&a, REGS_BAR_REGS, REG_DMA_PATTERN, 0x40);
	wr(&a, REGS_BAR_REGS, REG_DMA_ADDR_LO, (uint32_t)RAM_IOVA + 0x3000);
	wr(&a, REGS_BAR_REGS, REG_DMA_ADDR_HI, 0);
	wr(&a, REGS_BAR_REGS, REG_DMA_LEN, 0x2000);
	wr(&a, REGS_BAR_REGS, REG_DMA_CMD, DMA_CMD_FILL);
	assert_int_equal(rd(&a, REGS_BAR_REGS, REG_DMA_STATUS), DMA_STATUS_DONE);
	assert_true(irq_count(&a, 0, 2000) >= 1);
	assert_int_equal(ram[0x3000], 0x40);
	struct { uint64_t iova, len, pg; uint64_t bm[4]; } rep =
		{ RAM_IOVA, RAM_SIZE, 4096, { 0 } };
	assert_int_equal(vfmig_vmm_dev_feature(a.dev, 8 | VFMIG_VMM_FEATURE_GET,
					       &rep, 24, &rep, sizeof(rep), &n), 0);
	assert_int_equal(n, sizeof(rep));
	assert_int_equal(rep.bm[0], 0x18); /* pages 3 and 4 */
	assert_int_equal(rep.bm[1] | rep.bm[2] | rep.bm[3], 0);

	/* A: RUNNING -> STOP_COPY, read; B: RUNNING -> RESUMING, write. */
	assert_int_equal(migrate(&a, &b), REGS_STREAM);
	assert_int_equal(get_state(&a), ST_STOP_COPY);
	/* The VMM restores config and IRQs during RESUMING (not gated). */
	enable_msix(&b, REGS_BAR_MSIX, 4);
	assert_int_equal(set_state(&b, ST_RUNNING), 0);
	regs_check_state(&b, 1);
	assert_int_equal(rd(&b, REGS_BAR_REGS, REG_COUNTER), 5);
	assert_int_equal(rd(&b, REGS_BAR_REGS, REG_DMA_PATTERN), 0x40);
	assert_int_equal(rd(&b, REGS_BAR_REGS, REG_DMA_LEN), 0x2000);
	assert_int_equal(rd(&b, REGS_BAR_REGS, REG_DMA_ADDR_LO),
			 (uint32_t)RAM_IOVA + 0x3000);
	/* B works: interrupts arrive, DMA runs with B's own windows. */
	wr(&b, REGS_BAR_REGS, REG_EVENT, 2);
	assert_int_equal(irq_count(&b, 2, 2000), 1);
	map_ram(&b);
	wr(&b, REGS_BAR_REGS, REG_DMA_CMD, DMA_CMD_CHECKSUM);
	assert_int_equal(rd(&b, REGS_BAR_REGS, REG_DMA_RESULT),
			 regs_fnv1a(ram + 0x3000, 0x2000));
	assert_true(irq_count(&b, 0, 2000) >= 1);
	/* The stopped source refuses what would change it. */
	assert_true(vfmig_vmm_dev_dma_map(a.dev, 0x40000000, 4096, -1, 0, ram,
					  VFMIG_VMM_DMA_READ) < 0);
	uint32_t one = htole32(1);
	assert_true(vfmig_vmm_dev_region_write(a.dev, REGS_BAR_REGS,
					       REG_DOORBELL, &one, 4) < 0);
	assert_int_equal(set_state(&a, ST_RUNNING), 0);

	/* Back and forth 20 times, changing state in between. */
	struct side *src = &b, *dst = &a;
	for (uint32_t round = 0; round < 20; round++) {
		regs_fill_state(src, round + 2);
		wr(src, REGS_BAR_REGS, REG_DOORBELL, 1);
		assert_int_equal(migrate(src, dst), REGS_STREAM);
		assert_int_equal(set_state(dst, ST_RUNNING), 0);
		regs_check_state(dst, round + 2);
		assert_int_equal(rd(dst, REGS_BAR_REGS, REG_COUNTER), 6 + round);
		assert_int_equal(set_state(src, ST_RUNNING), 0);
		struct side *t = src;
		src = dst;
		dst = t;
	}
	/* Interrupts still reach whichever side ran last. */
	enable_msix(src, REGS_BAR_MSIX, 4);
	wr(src, REGS_BAR_REGS, REG_EVENT, 1);
	assert_int_equal(irq_count(src, 1, 2000), 1);
	side_stop(&a);
	side_stop(&b);
}

/* Load the given stream into a RESUMING device; result of ->RUNNING. */
static int load(struct side *b, const uint8_t *buf, size_t len, int *werr)
{
	assert_int_equal(set_state(b, ST_RESUMING), 0);
	*werr = vfmig_vmm_dev_mig_data_write(b->dev, buf, len);
	return set_state(b, ST_RUNNING);
}

static void test_regs_corrupt_refused(void **state)
{
	struct side a, b;
	uint8_t *buf = NULL;
	size_t len = 0;
	int werr;
	(void)state;

	side_start(&a, "regs", "ca.sock", NULL);
	side_start(&b, "regs", "cb.sock", NULL);
	regs_fill_state(&a, 9);
	wr(&b, REGS_BAR_REGS, REG_SCRATCH0, 0x1234);
	assert_int_equal(set_state(&a, ST_STOP_COPY), 0);
	drain(&a, &buf, &len);
	assert_int_equal(len, REGS_STREAM);
	const size_t flips[] = { 0, 5, 9, 20, 100 + REGS_BAR_MEM_SIZE / 2,
				 REGS_STREAM - 1 };
	for (size_t i = 0; i < sizeof(flips) / sizeof(flips[0]); i++) {
		buf[flips[i]] ^= 0x20;
		assert_int_equal(load(&b, buf, len, &werr), -EINVAL);
		assert_int_equal(werr, 0);
		assert_int_equal(get_state(&b), ST_ERROR);
		buf[flips[i]] ^= 0x20;
		/* Still alive; reset leaves ERROR. */
		assert_int_equal(vfmig_vmm_dev_reset(b.dev), 0);
		assert_int_equal(get_state(&b), ST_RUNNING);
		assert_int_equal(rd(&b, REGS_BAR_REGS, REG_ID), REGS_MAGIC);
	}
	/* Truncated: the finish step notices. */
	assert_int_equal(load(&b, buf, len - 1, &werr), -EINVAL);
	assert_int_equal(vfmig_vmm_dev_reset(b.dev), 0);
	/* Too long: the write itself is refused. */
	uint8_t *big = calloc(1, len + 10);
	memcpy(big, buf, len);
	assert_int_equal(load(&b, big, len + 10, &werr), -EINVAL);
	assert_int_equal(werr, -EINVAL);
	free(big);
	assert_int_equal(vfmig_vmm_dev_reset(b.dev), 0);
	/* The intact stream still loads. */
	assert_int_equal(load(&b, buf, len, &werr), 0);
	assert_int_equal(werr, 0);
	regs_check_state(&b, 9);
	free(buf);
	side_stop(&a);
	side_stop(&b);
}

/* ---- vram ---- */

#define VR_PAGES 1024u
#define PG VRAM_PAGE_SIZE
#define REC 16u

static void vfill(struct side *s, uint32_t start, uint32_t count,
		  uint32_t seed)
{
	wr(s, VRAM_BAR_REGS, VRAM_REG_FILL_START, start);
	wr(s, VRAM_BAR_REGS, VRAM_REG_FILL_COUNT, count);
	wr(s, VRAM_BAR_REGS, VRAM_REG_FILL_SEED, seed);
	wr(s, VRAM_BAR_REGS, VRAM_REG_CMD, VRAM_CMD_FILL);
	assert_int_equal(rd(s, VRAM_BAR_REGS, VRAM_REG_STATUS),
			 VRAM_STATUS_DONE);
}

static uint64_t vcsum(struct side *s)
{
	wr(s, VRAM_BAR_REGS, VRAM_REG_CMD, VRAM_CMD_CHECKSUM);
	return rd(s, VRAM_BAR_REGS, VRAM_REG_CSUM_LO) |
	       (uint64_t)rd(s, VRAM_BAR_REGS, VRAM_REG_CSUM_HI) << 32;
}

/* Pass a PRE_COPY round from a to b; returns the bytes. */
static size_t vround(struct side *a, struct side *b)
{
	uint8_t *buf = NULL;
	size_t len = 0;

	drain(a, &buf, &len);
	if (len)
		assert_int_equal(vfmig_vmm_dev_mig_data_write(b->dev, buf, len),
				 0);
	free(buf);
	return len;
}

static void test_vram_precopy(void **state)
{
	const char *const extra[] = { "--size", "4M", NULL };
	struct side a, b;
	(void)state;

	side_start(&a, "vram", "va.sock", extra);
	side_start(&b, "vram", "vb.sock", (const char *const[]){ "--size=4M",
								  NULL });
	assert_int_equal(rd(&a, VRAM_BAR_REGS, VRAM_REG_SIZE_LO), 4u << 20);
	uint64_t flags = 0;
	size_t n;
	assert_int_equal(vfmig_vmm_dev_feature(a.dev, 1 | VFMIG_VMM_FEATURE_GET,
					       NULL, 0, &flags, 8, &n), 0);
	assert_int_equal(flags, 5); /* STOP_COPY | PRE_COPY */
	vfill(&a, 0, VR_PAGES - 64, 1);
	map_ram(&a);
	for (unsigned i = 0; i < 8192; i++)
		ram[0x10000 + i] = (uint8_t)(i * 13);

	assert_int_equal(set_state(&a, ST_PRE_COPY), 0);
	assert_int_equal(set_state(&b, ST_RESUMING), 0);
	/* Initial pass: header, every page (the 64 zero pages as one
	 * record without data). */
	size_t init = vround(&a, &b);
	assert_int_equal(init, 24 + (VR_PAGES - 64) / 64 * REC +
				       (VR_PAGES - 64) * PG + REC);
	assert_int_equal(vround(&a, &b), 0); /* nothing new */

	/* Rounds while the device keeps changing VRAM. */
	for (uint32_t r = 0; r < 3; r++) {
		vfill(&a, 10 + r, 5, 100 + r);                     /* 5 pages */
		wr(&a, VRAM_BAR_REGS, VRAM_REG_WIN_OFF_LO, 100 * PG + 8);
		wr(&a, VRAM_BAR_WIN, 0, 0xdead0000 + r);           /* page 100 */
		wr(&a, VRAM_BAR_REGS, VRAM_REG_DMA_ADDR_LO, RAM_IOVA + 0x10000);
		wr(&a, VRAM_BAR_REGS, VRAM_REG_DMA_LEN, 8192);
		wr(&a, VRAM_BAR_REGS, VRAM_REG_VRAM_OFF_LO, (600 + r) * PG);
		wr(&a, VRAM_BAR_REGS, VRAM_REG_CMD, VRAM_CMD_COPY); /* 2 pages */
		assert_int_equal(rd(&a, VRAM_BAR_REGS, VRAM_REG_STATUS),
				 VRAM_STATUS_DONE);
		/* Only the changed pages, in three runs. */
		assert_int_equal(vround(&a, &b), 3 * REC + 8 * PG);
	}
	vfill(&a, 1000, 2, 7);
	uint64_t cs = vcsum(&a);
	uint32_t counter = rd(&a, VRAM_BAR_REGS, VRAM_REG_COUNTER);
	assert_int_equal(set_state(&a, ST_STOP_COPY), 0);
	/* Stopped: writes that would change VRAM are refused. */
	uint32_t v = htole32(1);
	assert_true(vfmig_vmm_dev_region_write(a.dev, VRAM_BAR_REGS,
					       VRAM_REG_CMD, &v, 4) < 0);
	/* The rest: two pages, registers, END. */
	assert_int_equal(vround(&a, &b), REC + 2 * PG + REC + 60 + REC);
	assert_int_equal(set_state(&b, ST_RUNNING), 0);
	assert_int_equal(rd(&b, VRAM_BAR_REGS, VRAM_REG_CSUM_LO), (uint32_t)cs);
	assert_int_equal(rd(&b, VRAM_BAR_REGS, VRAM_REG_COUNTER), counter);
	assert_int_equal(vcsum(&b), cs);
	/* The source resumes with its data intact. */
	assert_int_equal(set_state(&a, ST_RUNNING), 0);
	assert_int_equal(vcsum(&a), cs);
	side_stop(&a);
	side_stop(&b);
}

static void test_vram_corrupt(void **state)
{
	struct side a, b;
	uint8_t *buf = NULL;
	size_t len = 0;
	int werr;
	(void)state;

	side_start(&a, "vram", "xa.sock", (const char *const[]){ "--size", "256K", NULL });
	side_start(&b, "vram", "xb.sock", (const char *const[]){ "--size", "512K", NULL });
	vfill(&a, 0, 64, 3);
	assert_int_equal(set_state(&a, ST_STOP_COPY), 0);
	drain(&a, &buf, &len);
	/* A different VRAM size is refused at the header. */
	assert_int_equal(set_state(&b, ST_RESUMING), 0);
	werr = vfmig_vmm_dev_mig_data_write(b.dev, buf, len);
	assert_int_equal(werr, -EINVAL);
	assert_int_equal(set_state(&b, ST_RUNNING), -ENODATA);
	assert_int_equal(get_state(&b), ST_ERROR);
	assert_int_equal(vfmig_vmm_dev_reset(b.dev), 0);
	side_stop(&b);
	side_start(&b, "vram", "xc.sock", (const char *const[]){ "--size", "256K", NULL });
	/* A page run beyond the end. */
	buf[24 + 8 + 7] = 0xff;
	assert_int_equal(load(&b, buf, len, &werr), -ENODATA);
	assert_int_equal(werr, -EINVAL);
	assert_int_equal(vfmig_vmm_dev_reset(b.dev), 0);
	buf[24 + 8 + 7] = 0;
	/* No END record. */
	assert_int_equal(load(&b, buf, len - 16, &werr), -ENODATA);
	assert_int_equal(werr, 0);
	assert_int_equal(vfmig_vmm_dev_reset(b.dev), 0);
	assert_int_equal(load(&b, buf, len, &werr), 0);
	assert_int_equal(set_state(&a, ST_RUNNING), 0);
	assert_int_equal(vcsum(&b), vcsum(&a));
	free(buf);
	side_stop(&a);
	side_stop(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_regs_migrate),
		cmocka_unit_test(test_regs_corrupt_refused),
		cmocka_unit_test(test_vram_precopy),
		cmocka_unit_test(test_vram_corrupt),
	};
	return cmocka_run_group_tests_name("migration-integration", tests,
					   group_setup, group_teardown);
}
