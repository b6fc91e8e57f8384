/* SPDX-License-Identifier: MIT */
/*
 * The region-based device-state interface end to end: the VMM library
 * against real sample devices started with `--interface region`. The regs
 * and vram samples move their state A -> B -> A (vram with pre-copy and
 * pages dirtied meanwhile) through discover, set_state, the save pump and
 * mig_data_write, and the regs sample's DMA writes show up in the dirty
 * bitmap read through the bitmap region.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>
#include <vfmig/vmm.h>

#include "harness.h"
#include "regs_hw.h"
#include "vram_hw.h"

#define PAGE 4096u
#define WIN 0x100000ull
#define WIN_SIZE (2u << 20)

static int mapped_discoveries; /* the data regions came with an fd */

static void on_log(void *priv, int level, const char *msg)
{
	(void)priv, (void)level;
	if (strstr(msg, "region interface") && strstr(msg, "config through its fd"))
		mapped_discoveries++;
}

static const struct vfmig_vmm_dev_opts opts = {
	.version = VFMIG_VMM_OPTS_VERSION,
	.log_fn = on_log,
	.log_level = 6,
	.reply_timeout_ms = 20000,
};

struct proc {
	char sock[256];
	pid_t pid;
	vfmig_vmm_dev *dev;
};

static void spawn(struct proc *p, const char *name, bool vram)
{
	static const char *const regs_args[] = { "--interface", "region",
						 NULL };
	static const char *const vram_args[] = { "--interface", "region",
						 "--size", "4M", NULL };
	static int n;
	char file[64];

	snprintf(file, sizeof(file), "%s-region%d.sock", name, n++);
	snprintf(p->sock, sizeof(p->sock), "%s", harness_path(file));
	p->pid = harness_spawn_device(name, p->sock,
				      vram ? vram_args : regs_args);
	assert_true(p->pid > 0);
	assert_int_equal(vfmig_vmm_dev_connect(p->sock, &opts, &p->dev), 0);
}

static void stop(struct proc *p)
{
	vfmig_vmm_dev_close(p->dev);
	p->dev = NULL;
	assert_int_equal(harness_stop(p->pid), 0);
}

static uint32_t rd(vfmig_vmm_dev *dev, uint32_t off)
{
	uint32_t v = 0xffffffff;

	assert_int_equal(vfmig_vmm_dev_region_read(dev, 0, off, &v, 4), 0);
	return v;
}

static void wr(vfmig_vmm_dev *dev, uint32_t off, uint32_t v)
{
	assert_int_equal(vfmig_vmm_dev_region_write(dev, 0, off, &v, 4), 0);
}

struct blob {
	uint8_t *p;
	size_t len;
};

static int blob_sink(void *priv, const void *buf, size_t len)
{
	struct blob *b = priv;
	uint8_t *p = realloc(b->p, b->len + len);

	if (!p)
		return -ENOMEM;
	b->p = p;
	memcpy(b->p + b->len, buf, len);
	b->len += len;
	return 0;
}

static void set_state(vfmig_vmm_dev *dev, uint32_t target, uint32_t recover)
{
	uint32_t fin = 0;
	int r = vfmig_vmm_mig_set_state(dev, target, recover, &fin);

	if (r < 0)
		fail_msg("set_state %s: %s (now %s)",
			 vfmig_vmm_mig_state_name(target),
			 vfmig_vmm_strerror(r), vfmig_vmm_mig_state_name(fin));
	assert_int_equal(fin, target);
	assert_int_equal(vfmig_vmm_mig_get_state(dev, &fin), 0);
	assert_int_equal(fin, target);
}

static void discover(vfmig_vmm_dev *dev, struct vfmig_vmm_mig_caps *mc)
{
	uint64_t a, b;
	int mapped = mapped_discoveries;

	assert_int_equal(vfmig_vmm_mig_discover(dev, mc), 0);
	if (!mc->migratable)
		fail_msg("blocked: %s", mc->blocker);
	assert_int_equal(vfmig_vmm_mig_interface(dev),
			 VFMIG_VMM_MIG_IFACE_REGION);
	assert_true(mc->flags & VFMIG_VMM_MIG_FLAG_STOP_COPY);
	assert_true(mc->dirty_logging);
	assert_false(mc->size_info);
	assert_int_equal(mapped_discoveries, mapped + 1);
	assert_int_equal(vfmig_vmm_mig_precopy_info(dev, &a, &b), -EOPNOTSUPP);
	assert_int_equal(vfmig_vmm_mig_stop_copy_size(dev, &a), -EOPNOTSUPP);
}

/* As the engine does: PRE_COPY (if offered) pumped to DRAINED with dirty()
 * in between, STOP_COPY to END, then dst RESUMING, load, RUNNING; src ends
 * in STOP. Returns the bytes moved. */
static uint64_t migrate(vfmig_vmm_dev *src, vfmig_vmm_dev *dst,
			void (*dirty)(vfmig_vmm_dev *dev))
{
	struct vfmig_vmm_mig_caps mc, mc2;
	struct vfmig_vmm_mig_save_result res;
	struct blob b = { 0 };

	discover(src, &mc);
	discover(dst, &mc2);
	if (mc.flags & VFMIG_VMM_MIG_FLAG_PRE_COPY) {
		set_state(src, VFMIG_VMM_MIG_PRE_COPY, VFMIG_VMM_MIG_RUNNING);
		assert_int_equal(vfmig_vmm_mig_save(src, 1, blob_sink, &b,
						    &res),
				 0);
		assert_true(res.status == VFMIG_VMM_MIG_SAVE_BUDGET ||
			    res.status == VFMIG_VMM_MIG_SAVE_DRAINED);
		assert_int_equal(vfmig_vmm_mig_save(src, 0, blob_sink, &b,
						    &res),
				 0);
		assert_int_equal(res.status, VFMIG_VMM_MIG_SAVE_DRAINED);
		if (dirty)
			dirty(src);
		assert_int_equal(vfmig_vmm_mig_save(src, 0, blob_sink, &b,
						    &res),
				 0);
		assert_int_equal(res.status, VFMIG_VMM_MIG_SAVE_DRAINED);
	}
	set_state(src, VFMIG_VMM_MIG_STOP_COPY, VFMIG_VMM_MIG_STOP);
	assert_int_equal(vfmig_vmm_mig_save(src, 0, blob_sink, &b, &res), 0);
	assert_int_equal(res.status, VFMIG_VMM_MIG_SAVE_END);
	assert_true(b.len > 0);

	set_state(dst, VFMIG_VMM_MIG_RESUMING, VFMIG_VMM_MIG_RUNNING);
	/* in uneven pieces, as a stream reader would hand them over */
	for (size_t off = 0, step = 3; off < b.len; step = step * 5 + 1) {
		size_t n = b.len - off < step ? b.len - off : step;
		assert_int_equal(vfmig_vmm_dev_mig_data_write(dst, b.p + off,
							      n),
				 0);
		off += n;
	}
	set_state(dst, VFMIG_VMM_MIG_RUNNING, VFMIG_VMM_MIG_ERROR);
	set_state(src, VFMIG_VMM_MIG_STOP, VFMIG_VMM_MIG_ERROR);
	free(b.p);
	return b.len;
}

/* ---- regs ---- */

static void regs_load(vfmig_vmm_dev *dev, uint32_t seed)
{
	for (uint32_t i = 0; i < 8; i++)
		wr(dev, REG_SCRATCH0 + 4 * i, seed * 0x10001u + i);
	for (uint32_t i = 0; i < seed % 7 + 1; i++)
		wr(dev, REG_DOORBELL, 1);
	wr(dev, REG_DMA_PATTERN, seed);
}

static void regs_expect(vfmig_vmm_dev *dev, uint32_t seed, uint32_t counter)
{
	for (uint32_t i = 0; i < 8; i++)
		assert_int_equal(rd(dev, REG_SCRATCH0 + 4 * i),
				 seed * 0x10001u + i);
	assert_int_equal(rd(dev, REG_COUNTER), counter);
	assert_int_equal(rd(dev, REG_DMA_PATTERN), seed);
	assert_int_equal(rd(dev, REG_ID), REGS_MAGIC);
}

static void test_migrate_regs(void **state)
{
	struct proc a, b;
	uint8_t mem[256], back[256];

	(void)state;
	spawn(&a, "regs", false);
	spawn(&b, "regs", false);
	regs_load(a.dev, 5);
	for (int i = 0; i < 256; i++)
		mem[i] = (uint8_t)(i ^ 0x5a);
	assert_int_equal(vfmig_vmm_dev_region_write(a.dev, REGS_BAR_MEM, 512,
						    mem, sizeof(mem)),
			 0);
	assert_true(migrate(a.dev, b.dev, NULL) > 0);
	regs_expect(b.dev, 5, 5 % 7 + 1);
	assert_int_equal(vfmig_vmm_dev_region_read(b.dev, REGS_BAR_MEM, 512,
						   back, sizeof(back)),
			 0);
	assert_memory_equal(mem, back, sizeof(mem));
	for (uint32_t round = 0; round < 4; round++) {
		vfmig_vmm_dev *from = round % 2 ? a.dev : b.dev;
		vfmig_vmm_dev *to = round % 2 ? b.dev : a.dev;
		assert_int_equal(vfmig_vmm_dev_reset(to), 0);
		regs_load(from, 11 + round);
		uint32_t counter = rd(from, REG_COUNTER);
		migrate(from, to, NULL);
		regs_expect(to, 11 + round, counter);
	}
	stop(&a);
	stop(&b);
}

/* ---- vram: pre-copy through the device-memory region ---- */

static uint64_t vram_checksum(vfmig_vmm_dev *dev)
{
	wr(dev, VRAM_REG_CMD, VRAM_CMD_CHECKSUM);
	assert_int_equal(rd(dev, VRAM_REG_STATUS) & VRAM_STATUS_ERROR, 0);
	return rd(dev, VRAM_REG_CSUM_LO) |
	       (uint64_t)rd(dev, VRAM_REG_CSUM_HI) << 32;
}

static void vram_fill(vfmig_vmm_dev *dev, uint32_t start, uint32_t count,
		      uint32_t seed)
{
	wr(dev, VRAM_REG_FILL_START, start);
	wr(dev, VRAM_REG_FILL_COUNT, count);
	wr(dev, VRAM_REG_FILL_SEED, seed);
	wr(dev, VRAM_REG_CMD, VRAM_CMD_FILL);
	assert_int_equal(rd(dev, VRAM_REG_STATUS) & VRAM_STATUS_ERROR, 0);
}

static uint64_t vram_want;

static void vram_dirty(vfmig_vmm_dev *dev)
{
	vram_fill(dev, 100, 37, 0xbeef);
	vram_want = vram_checksum(dev);
}

static void test_migrate_vram(void **state)
{
	struct vfmig_vmm_mig_caps mc;
	struct proc a, b;

	(void)state;
	spawn(&a, "vram", true);
	spawn(&b, "vram", true);
	discover(a.dev, &mc);
	assert_true(mc.flags & VFMIG_VMM_MIG_FLAG_PRE_COPY);
	vram_fill(a.dev, 0, 1024, 7);
	vram_want = 0;
	assert_true(migrate(a.dev, b.dev, vram_dirty) > 4u << 20);
	assert_true(vram_want != 0);
	assert_int_equal(vram_checksum(b.dev), vram_want);
	assert_int_equal(vfmig_vmm_dev_reset(a.dev), 0);
	vram_fill(b.dev, 500, 3, 9);
	migrate(b.dev, a.dev, vram_dirty);
	assert_int_equal(vram_checksum(a.dev), vram_want);
	stop(&a);
	stop(&b);
}

/* ---- the dirty bitmap region ---- */

static void test_dirty_bitmap(void **state)
{
	struct vfmig_vmm_mig_caps mc;
	struct proc p;
	uint64_t bm[WIN_SIZE / PAGE / 64], ps = 0;
	int ram_fd = memfd_create("ram", MFD_CLOEXEC);
	uint8_t *ram;

	(void)state;
	assert_true(ram_fd >= 0);
	assert_int_equal(ftruncate(ram_fd, WIN_SIZE), 0);
	ram = mmap(NULL, WIN_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, ram_fd,
		   0);
	assert_true(ram != MAP_FAILED);
	spawn(&p, "regs", false);
	discover(p.dev, &mc);
	assert_int_equal(vfmig_vmm_dev_dma_map(p.dev, WIN, WIN_SIZE, ram_fd, 0,
					       ram,
					       VFMIG_VMM_DMA_READ |
						       VFMIG_VMM_DMA_WRITE),
			 0);
	memset(bm, 0, sizeof(bm));
	assert_true(vfmig_vmm_dma_log_report(p.dev, WIN, WIN_SIZE, PAGE, bm,
					     sizeof(bm) / 8) < 0);
	assert_int_equal(vfmig_vmm_dma_log_start(p.dev, PAGE, NULL, 0, &ps),
			 0);
	assert_int_equal(ps, PAGE);
	assert_int_equal(vfmig_vmm_dma_log_report(p.dev, WIN, WIN_SIZE, PAGE,
						  bm, sizeof(bm) / 8),
			 0);
	for (size_t i = 0; i < sizeof(bm) / 8; i++)
		assert_int_equal(bm[i], 0);
	/* the device fills pages 5..7 (partly) and 200 */
	wr(p.dev, REG_DMA_PATTERN, 0x33);
	wr(p.dev, REG_DMA_ADDR_LO, (uint32_t)(WIN + 5 * PAGE + 100));
	wr(p.dev, REG_DMA_ADDR_HI, 0);
	wr(p.dev, REG_DMA_LEN, 2 * PAGE);
	wr(p.dev, REG_DMA_CMD, DMA_CMD_FILL);
	assert_int_equal(rd(p.dev, REG_DMA_STATUS), DMA_STATUS_DONE);
	wr(p.dev, REG_DMA_ADDR_LO, (uint32_t)(WIN + 200 * PAGE));
	wr(p.dev, REG_DMA_LEN, 8);
	wr(p.dev, REG_DMA_CMD, DMA_CMD_FILL);
	assert_int_equal(rd(p.dev, REG_DMA_STATUS), DMA_STATUS_DONE);
	assert_int_equal(ram[5 * PAGE + 100], 0x33);
	assert_int_equal(vfmig_vmm_dma_log_report(p.dev, WIN, WIN_SIZE, PAGE,
						  bm, sizeof(bm) / 8),
			 0);
	for (size_t i = 0; i < sizeof(bm) / 8; i++) {
		uint64_t want = 0;
		if (i == 0)
			want = 7ull << 5;
		if (i == 200 / 64)
			want = 1ull << (200 % 64);
		assert_int_equal(bm[i], want);
	}
	/* reported pages are cleared */
	memset(bm, 0, sizeof(bm));
	assert_int_equal(vfmig_vmm_dma_log_report(p.dev, WIN, WIN_SIZE, PAGE,
						  bm, sizeof(bm) / 8),
			 0);
	for (size_t i = 0; i < sizeof(bm) / 8; i++)
		assert_int_equal(bm[i], 0);
	assert_int_equal(vfmig_vmm_dma_log_stop(p.dev), 0);
	assert_true(vfmig_vmm_dma_log_report(p.dev, WIN, WIN_SIZE, PAGE, bm,
					     sizeof(bm) / 8) < 0);
	assert_true(vfmig_vmm_dev_connected(p.dev));
	stop(&p);
	munmap(ram, WIN_SIZE);
	close(ram_fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_migrate_regs),
		cmocka_unit_test(test_migrate_vram),
		cmocka_unit_test(test_dirty_bitmap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
