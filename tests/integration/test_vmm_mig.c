/* SPDX-License-Identifier: MIT */
/*
 * The VMM library's device migration driver against real device processes:
 * capability discovery of the samples, a blocker reason for a device built
 * without migration (a tiny device made here with the public device
 * library, in a forked child), regs and vram state moved A -> B -> A with
 * the save pump and MIG_DATA_WRITE, and the device's DMA dirty log after a
 * DMA fill through an fd-mapped window. The migration and dirty-log tests
 * run again with the samples on the region-based interface (data through
 * the device-state regions, the log through the bitmap region).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <vfmig/device.h>
#include <vfmig/vmm_mig.h>

#include "harness.h"
#include "regs_hw.h"
#include "vram_hw.h"

#define RAM_SIZE (4u << 20)
#define WIN_FD 0x100000ull
#define PAGE 4096u

/* Region-interface discoveries that found the data regions' fds. */
static int fd_discoveries;
/* Data channels the VMM library attached (saving, loading). */
static int dc_saving, dc_loading;

static void on_log(void *priv, int level, const char *msg)
{
	(void)priv, (void)level;
	if (strstr(msg, "region interface") &&
	    strstr(msg, "config through its fd"))
		fd_discoveries++;
	if (strstr(msg, "data channel attached for saving"))
		dc_saving++;
	if (strstr(msg, "data channel attached for loading"))
		dc_loading++;
}

static struct vfmig_vmm_dev_opts opts = {
	.version = VFMIG_VMM_OPTS_VERSION,
	.log_fn = on_log,
	.log_level = 6,
	.reply_timeout_ms = 20000,
};

/* The migration tests run once per device-state interface: the cmocka
 * prestate is "v2" (with the data channel, the default), "v2-messages"
 * (VFMIG_VMM_OPT_NO_DATA_CHANNEL: MIG_DATA_READ/WRITE) or "region"
 * (docs/region-interface.md). This also sets the connect options. */
static const char *iface_of(void **state)
{
	const char *s = *state ? (const char *)*state : "v2";

	opts.flags = strcmp(s, "v2-messages") ? 0
					       : VFMIG_VMM_OPT_NO_DATA_CHANNEL;
	return strncmp(s, "v2", 2) ? s : "v2";
}


/* Discover dev and check it speaks iface; under the region interface
 * also that the data regions came with fds and no size estimates are
 * offered. */
static void discover_iface(vfmig_vmm_dev *dev, const char *iface,
			   struct vfmig_vmm_mig_caps *mc)
{
	bool region = !strcmp(iface, "region");
	int before = fd_discoveries;
	uint64_t a, b;

	assert_int_equal(vfmig_vmm_mig_discover(dev, mc), 0);
	if (!mc->migratable)
		fail_msg("blocked: %s", mc->blocker);
	assert_int_equal(vfmig_vmm_mig_interface(dev),
			 region ? VFMIG_VMM_MIG_IFACE_REGION
				: VFMIG_VMM_MIG_IFACE_V2);
	if (!region)
		return;
	assert_false(mc->size_info);
	assert_int_equal(fd_discoveries, before + 1);
	assert_int_equal(vfmig_vmm_mig_precopy_info(dev, &a, &b), -EOPNOTSUPP);
	assert_int_equal(vfmig_vmm_mig_stop_copy_size(dev, &a), -EOPNOTSUPP);
}

struct proc {
	char sock[256];
	pid_t pid;
	vfmig_vmm_dev *dev;
};

static void spawn(struct proc *p, const char *name,
		  const char *const *extra)
{
	static int n;
	char file[64];

	snprintf(file, sizeof(file), "%s-mig%d.sock", name, n++);
	snprintf(p->sock, sizeof(p->sock), "%s", harness_path(file));
	p->pid = harness_spawn_device(name, p->sock, extra);
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

/* ---- a growable sink ---- */

struct blob {
	uint8_t *p;
	size_t len, cap;
};

static int blob_sink(void *priv, const void *buf, size_t len)
{
	struct blob *b = priv;

	if (b->len + len > b->cap) {
		size_t cap = (b->len + len) * 2;
		uint8_t *p = realloc(b->p, cap);
		if (!p)
			return -ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, buf, len);
	b->len += len;
	return 0;
}

static void set_state(vfmig_vmm_dev *dev, uint32_t target, uint32_t recover)
{
	uint32_t fin = 0;

	assert_int_equal(vfmig_vmm_mig_set_state(dev, target, recover, &fin),
			 0);
	assert_int_equal(fin, target);
	assert_int_equal(vfmig_vmm_mig_get_state(dev, &fin), 0);
	assert_int_equal(fin, target);
}

/*
 * Move the device state of src to dst as the engine will: src to PRE_COPY
 * (if it can) and pump until drained, calling dirty() after the first small
 * save and again once drained so the device has new data to send; then STOP_COPY and pump to the end; dst
 * RESUMING, load, RUNNING; src ends in STOP (the old copy). Both devices
 * must speak iface ("v2" or "region"). Returns the bytes moved.
 */
static uint64_t migrate(vfmig_vmm_dev *src, vfmig_vmm_dev *dst,
			void (*dirty)(vfmig_vmm_dev *dev, bool mid),
			const char *iface)
{
	struct vfmig_vmm_mig_caps mc, mc2;
	struct vfmig_vmm_mig_save_result res;
	struct blob b = { 0 };
	struct vfmig_vmm_caps vc;
	int saving = dc_saving, loading = dc_loading;

	discover_iface(src, iface, &mc);
	discover_iface(dst, iface, &mc2);
	assert_int_equal(vfmig_vmm_dev_get_caps(src, &vc), 0);
	bool chan = vc.data_channel_version != 0;
	assert_int_equal(chan, !strcmp(iface, "v2") && !opts.flags);
	if (mc.flags & VFMIG_VMM_MIG_FLAG_PRE_COPY) {
		set_state(src, VFMIG_VMM_MIG_PRE_COPY, VFMIG_VMM_MIG_RUNNING);
		/* a small budget first: more must follow */
		assert_int_equal(vfmig_vmm_mig_save(src, 1, blob_sink, &b,
						    &res),
				 0);
		assert_true(res.status == VFMIG_VMM_MIG_SAVE_BUDGET ||
			    res.status == VFMIG_VMM_MIG_SAVE_DRAINED);
		if (dirty)
			dirty(src, true); /* while a run of pages is half sent */
		/* On the data channel the device may have said DRAINED before
		 * that change: pump again until it has nothing left. */
		for (int i = 0;; i++) {
			uint64_t init = 0, dirt = 0;
			assert_true(i < 4);
			assert_int_equal(vfmig_vmm_mig_save(src, 0, blob_sink,
							    &b, &res),
					 0);
			assert_int_equal(res.status, VFMIG_VMM_MIG_SAVE_DRAINED);
			assert_int_equal(res.state, VFMIG_VMM_MIG_PRE_COPY);
			if (!mc.size_info)
				break;
			assert_int_equal(vfmig_vmm_mig_precopy_info(src, &init,
								    &dirt),
					 0);
			if (init == 0 && dirt == 0)
				break;
		}
		if (dirty)
			dirty(src, false); /* the guest keeps running */
		assert_int_equal(vfmig_vmm_mig_save(src, 0, blob_sink, &b,
						    &res),
				 0);
		assert_int_equal(res.status, VFMIG_VMM_MIG_SAVE_DRAINED);
	}
	set_state(src, VFMIG_VMM_MIG_STOP_COPY, VFMIG_VMM_MIG_STOP);
	if (mc.size_info) {
		uint64_t sz = 0;
		assert_int_equal(vfmig_vmm_mig_stop_copy_size(src, &sz), 0);
	}
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
	/* one channel per session (PRE_COPY's goes on into STOP_COPY) */
	assert_int_equal(dc_saving - saving, chan ? 1 : 0);
	assert_int_equal(dc_loading - loading, chan ? 1 : 0);
	free(b.p);
	return b.len;
}


/* ---- discovery ---- */

static void check_discovered(vfmig_vmm_dev *dev, bool precopy)
{
	struct vfmig_vmm_mig_caps mc;
	struct vfmig_vmm_caps caps;
	uint64_t sz;

	assert_int_equal(vfmig_vmm_dev_get_caps(dev, &caps), 0);
	assert_int_equal(vfmig_vmm_mig_discover(dev, &mc), 0);
	if (!mc.migratable)
		fail_msg("blocked: %s", mc.blocker);
	assert_string_equal(mc.blocker, "");
	assert_true(mc.flags & VFMIG_VMM_MIG_FLAG_STOP_COPY);
	assert_int_equal(!!(mc.flags & VFMIG_VMM_MIG_FLAG_PRE_COPY), precopy);
	assert_true(mc.dirty_logging);
	/* our devices implement the extension and say so */
	assert_int_equal(caps.mig_info_version, 1);
	assert_true(mc.size_info);
	assert_int_equal(vfmig_vmm_mig_stop_copy_size(dev, &sz), 0);
	assert_true(sz > 0);
}

static void test_discover_samples(void **state)
{
	static const char *const vram_args[] = { "--size", "4M", NULL };
	struct proc p;
	uint32_t st;

	(void)state;
	spawn(&p, "regs", NULL);
	assert_int_equal(vfmig_vmm_mig_get_state(p.dev, &st), 0);
	assert_int_equal(st, VFMIG_VMM_MIG_RUNNING);
	check_discovered(p.dev, false);
	stop(&p);
	spawn(&p, "vram", vram_args);
	check_discovered(p.dev, true);
	stop(&p);
}

/* ---- a device without migration: blocker ---- */

static volatile sig_atomic_t plain_stop;

static void on_term(int sig)
{
	(void)sig;
	plain_stop = 1;
}

static int plain_access(vfmig_dev *dev, void *priv, unsigned int bar,
			uint64_t offset, void *buf, size_t len, bool is_write)
{
	(void)dev, (void)priv, (void)bar, (void)offset, (void)is_write;
	memset(buf, 0, is_write ? 0 : len);
	return 0;
}

/* Child: a version-1 device (no migration callbacks) on path. */
static void run_plain_device(const char *path)
{
	struct vfmig_dev_desc desc = {
		.version = VFMIG_DEV_DESC_VERSION,
		.vendor_id = 0x1b36,
		.device_id = 0x10ff,
		.bars = { [0] = { .size = 4096 } },
	};
	struct vfmig_dev_ops ops = { .version = 1,
				     .region_access = plain_access };
	vfmig_dev *dev;

	signal(SIGTERM, on_term);
	prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive a failed test */
	if (vfmig_dev_create(&desc, &ops, NULL, &dev) < 0 ||
	    vfmig_dev_listen(dev, path) < 0)
		_exit(3);
	int r = vfmig_dev_run(dev, &plain_stop);
	vfmig_dev_destroy(dev);
	_exit(r < 0 ? 4 : 0);
}

static void test_blocker_without_migration(void **state)
{
	struct vfmig_vmm_mig_caps mc;
	struct vfmig_vmm_mig_save_result res;
	struct blob b = { 0 };
	struct proc p;
	uint32_t fin;

	(void)state;
	snprintf(p.sock, sizeof(p.sock), "%s", harness_path("plain.sock"));
	p.pid = fork();
	assert_true(p.pid >= 0);
	if (p.pid == 0)
		run_plain_device(p.sock);
	assert_int_equal(vfmig_vmm_dev_connect(p.sock, &opts, &p.dev), 0);
	assert_int_equal(vfmig_vmm_mig_discover(p.dev, &mc), 0);
	assert_false(mc.migratable);
	assert_false(mc.dirty_logging);
	assert_non_null(strstr(mc.blocker, "MIGRATION"));
	print_message("blocker: %s\n", mc.blocker);
	/* the driver's calls fail cleanly and the device serves on */
	assert_true(vfmig_vmm_mig_set_state(p.dev, VFMIG_VMM_MIG_STOP,
					    VFMIG_VMM_MIG_RUNNING, &fin) < 0);
	assert_true(vfmig_vmm_mig_save(p.dev, 0, blob_sink, &b, &res) < 0);
	assert_true(vfmig_vmm_dma_log_stop(p.dev) < 0);
	assert_true(vfmig_vmm_dev_connected(p.dev));
	stop(&p);
}

/* ---- regs: A -> B -> A ---- */

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
	const char *iface = iface_of(state);
	const char *const args[] = { "--interface", iface, NULL };
	struct proc a, b;
	uint8_t mem[256], back[256];

	spawn(&a, "regs", args);
	spawn(&b, "regs", args);
	regs_load(a.dev, 5);
	for (int i = 0; i < 256; i++)
		mem[i] = (uint8_t)(i ^ 0x5a);
	assert_int_equal(vfmig_vmm_dev_region_write(a.dev, REGS_BAR_MEM, 512,
						    mem, sizeof(mem)),
			 0);
	assert_true(migrate(a.dev, b.dev, NULL, iface) > 0);
	regs_expect(b.dev, 5, 5 % 7 + 1);
	assert_int_equal(vfmig_vmm_dev_region_read(b.dev, REGS_BAR_MEM, 512,
						   back, sizeof(back)),
			 0);
	assert_memory_equal(mem, back, sizeof(mem));
	/* and back again, several times, with new state each way */
	for (uint32_t round = 0; round < 4; round++) {
		vfmig_vmm_dev *from = round % 2 ? a.dev : b.dev;
		vfmig_vmm_dev *to = round % 2 ? b.dev : a.dev;
		/* the old copy is in STOP: a reset makes it a fresh target */
		assert_int_equal(vfmig_vmm_dev_reset(to), 0);
		regs_load(from, 11 + round);
		uint32_t counter = rd(from, REG_COUNTER);
		migrate(from, to, NULL, iface);
		regs_expect(to, 11 + round, counter);
	}
	stop(&a);
	stop(&b);
}

/* ---- vram: pre-copy with pages dirtied meanwhile ---- */

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

static uint64_t vram_want; /* checksum of the source's final VRAM */

/* While the source is in PRE_COPY: change pages, note the final sum.
 * migrate() calls it twice: first (mid) after a small save, over pages
 * 100-299, which hold the run of pages (192-255) the first 1 MiB read ends
 * inside; then once drained, over fewer pages, so the first change must
 * arrive by itself. */
static void vram_dirty(vfmig_vmm_dev *dev, bool mid)
{
	vram_fill(dev, 100, mid ? 200 : 37, mid ? 0xbeef : 0xfeed);
	vram_want = vram_checksum(dev);
}

static void test_migrate_vram(void **state)
{
	const char *iface = iface_of(state);
	const char *const args[] = { "--size", "4M", "--interface", iface,
				     NULL };
	struct proc a, b;

	spawn(&a, "vram", args);
	spawn(&b, "vram", args);
	vram_fill(a.dev, 0, 1024, 7);
	vram_want = 0;
	assert_true(migrate(a.dev, b.dev, vram_dirty, iface) > 4u << 20);
	assert_true(vram_want != 0);
	assert_int_equal(vram_checksum(b.dev), vram_want);
	/* and back, with pre-copy again */
	assert_int_equal(vfmig_vmm_dev_reset(a.dev), 0);
	vram_fill(b.dev, 500, 3, 9);
	migrate(b.dev, a.dev, vram_dirty, iface);
	assert_int_equal(vram_checksum(a.dev), vram_want);
	stop(&a);
	stop(&b);
}

/* ---- a second thread on the same connection during a save ---- */

struct reader {
	vfmig_vmm_dev *dev;
	int errors, reads;
};

static void *read_loop(void *arg)
{
	struct reader *rd_ = arg;

	for (int i = 0; i < 3000; i++) {
		uint32_t v = 0;
		if (vfmig_vmm_dev_region_read(rd_->dev, VRAM_BAR_REGS,
					      VRAM_REG_ID, &v, 4) < 0 ||
		    v != VRAM_MAGIC)
			rd_->errors++;
		rd_->reads++;
	}
	return NULL;
}

static void test_concurrent_save(void **state)
{
	static const char *const args[] = { "--size", "8M", NULL };
	struct vfmig_vmm_mig_save_result res;
	struct blob b = { 0 };
	struct reader rdr = { 0 };
	struct proc p;
	pthread_t th;
	uint64_t init, dirt;

	(void)state;
	spawn(&p, "vram", args);
	rdr.dev = p.dev;
	vram_fill(p.dev, 0, 2048, 5);
	set_state(p.dev, VFMIG_VMM_MIG_PRE_COPY, VFMIG_VMM_MIG_RUNNING);
	assert_int_equal(pthread_create(&th, NULL, read_loop, &rdr), 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(vfmig_vmm_mig_precopy_info(p.dev, &init,
							    &dirt),
				 0);
		assert_int_equal(vfmig_vmm_mig_save(p.dev, 1u << 20, blob_sink,
						    &b, &res),
				 0);
	}
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(rdr.errors, 0);
	assert_int_equal(rdr.reads, 3000);
	assert_true(b.len >= 4u << 20);
	assert_true(vfmig_vmm_dev_connected(p.dev));
	set_state(p.dev, VFMIG_VMM_MIG_RUNNING, VFMIG_VMM_MIG_ERROR);
	free(b.p);
	stop(&p);
}

/* ---- fault injection: the device dies in the middle of a save ---- */

struct killer {
	pid_t pid;
	int calls;
};

static int kill_sink(void *priv, const void *buf, size_t len)
{
	struct killer *k = priv;

	(void)buf, (void)len;
	if (k->calls++ == 0)
		harness_kill(k->pid); /* SIGKILL and reap */
	return 0;
}

static void test_device_dies_during_save(void **state)
{
	/* 64 MiB of data, far more than the data channel's socket buffers
	 * hold (a few MiB): a device killed at the first chunk cannot have
	 * written its whole pre-copy data and DRAINED already, which would
	 * make the save a success. */
	static const char *const args[] = { "--size", "64M", NULL };
	struct vfmig_vmm_mig_save_result res;
	struct proc p;
	struct killer k = { 0 };
	uint32_t fin = 0;
	int r;

	(void)state;
	spawn(&p, "vram", args);
	vram_fill(p.dev, 0, 16384, 3);
	set_state(p.dev, VFMIG_VMM_MIG_PRE_COPY, VFMIG_VMM_MIG_RUNNING);
	k.pid = p.pid;
	r = vfmig_vmm_mig_save(p.dev, 0, kill_sink, &k, &res);
	if (r != -ECONNRESET && r != -EPIPE)
		fail_msg("save gave %d", r);
	/* With the data channel, what the device sent before it died is
	 * still read: the sink may see more than the first chunk. */
	assert_true(k.calls >= 1);
	assert_true(res.bytes > 0);
	assert_false(vfmig_vmm_dev_connected(p.dev));
	assert_int_equal(vfmig_vmm_mig_set_state(p.dev, VFMIG_VMM_MIG_RUNNING,
						 VFMIG_VMM_MIG_ERROR, &fin),
			 -ENOTCONN);
	assert_int_equal(fin, VFMIG_VMM_MIG_UNKNOWN);
	vfmig_vmm_dev_close(p.dev);
}

/* ---- the recovery rule against a real device ---- */

static void test_recovery_regs(void **state)
{
	static const uint8_t junk[64] = { 0xde, 0xad, 0xbe, 0xef };
	struct proc p;
	uint32_t fin = 0;

	(void)state;
	spawn(&p, "regs", NULL);
	wr(p.dev, REG_SCRATCH0, 1234);
	/* regs has no PRE_COPY: refused, SET RUNNING recovers */
	assert_true(vfmig_vmm_mig_set_state(p.dev, VFMIG_VMM_MIG_PRE_COPY,
					    VFMIG_VMM_MIG_RUNNING, &fin) < 0);
	assert_int_equal(fin, VFMIG_VMM_MIG_RUNNING);
	assert_int_equal(rd(p.dev, REG_SCRATCH0), 1234);
	/* a corrupt stream: RESUMING -> STOP validation fails; recover
	 * ERROR means reset, and GET shows where the device really is */
	set_state(p.dev, VFMIG_VMM_MIG_RESUMING, VFMIG_VMM_MIG_RUNNING);
	vfmig_vmm_dev_mig_data_write(p.dev, junk, sizeof(junk));
	assert_true(vfmig_vmm_mig_set_state(p.dev, VFMIG_VMM_MIG_RUNNING,
					    VFMIG_VMM_MIG_ERROR, &fin) < 0);
	assert_int_equal(fin, VFMIG_VMM_MIG_RUNNING);
	assert_int_equal(rd(p.dev, REG_ID), REGS_MAGIC);
	assert_int_equal(rd(p.dev, REG_SCRATCH0), 0); /* it was reset */
	assert_true(vfmig_vmm_dev_connected(p.dev));
	stop(&p);
}

/* ---- DMA dirty logging on regs ---- */

static void test_dma_log_regs(void **state)
{
	const char *iface = iface_of(state);
	const char *const args[] = { "--interface", iface, NULL };
	struct vfmig_vmm_mig_caps mc;
	struct proc p;
	uint64_t bm[RAM_SIZE / 2 / PAGE / 64], ps = 0;
	int ram_fd = memfd_create("ram", MFD_CLOEXEC);
	uint8_t *ram;
	const uint64_t win = RAM_SIZE / 2;

	assert_true(ram_fd >= 0);
	assert_int_equal(ftruncate(ram_fd, RAM_SIZE), 0);
	ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, ram_fd,
		   0);
	assert_true(ram != MAP_FAILED);
	spawn(&p, "regs", args);
	/* the region interface logs through its bitmap region, which
	 * discovery finds */
	discover_iface(p.dev, iface, &mc);
	assert_true(mc.dirty_logging);
	assert_int_equal(vfmig_vmm_dev_dma_map(p.dev, WIN_FD, win, ram_fd, 0,
					       ram,
					       VFMIG_VMM_DMA_READ |
						       VFMIG_VMM_DMA_WRITE),
			 0);
	/* before START a report is refused */
	memset(bm, 0, sizeof(bm));
	assert_true(vfmig_vmm_dma_log_report(p.dev, WIN_FD, win, PAGE, bm,
					     sizeof(bm) / 8) < 0);
	assert_int_equal(vfmig_vmm_dma_log_start(p.dev, PAGE, NULL, 0, &ps),
			 0);
	assert_int_equal(ps, PAGE);
	/* nothing written yet */
	assert_int_equal(vfmig_vmm_dma_log_report(p.dev, WIN_FD, win, PAGE, bm,
						  sizeof(bm) / 8),
			 0);
	for (size_t i = 0; i < sizeof(bm) / 8; i++)
		assert_int_equal(bm[i], 0);
	/* the device fills pages 5..7 (partly) and 200 through the fd */
	wr(p.dev, REG_DMA_PATTERN, 0x33);
	wr(p.dev, REG_DMA_ADDR_LO, (uint32_t)(WIN_FD + 5 * PAGE + 100));
	wr(p.dev, REG_DMA_ADDR_HI, 0);
	wr(p.dev, REG_DMA_LEN, 2 * PAGE);
	wr(p.dev, REG_DMA_CMD, DMA_CMD_FILL);
	assert_int_equal(rd(p.dev, REG_DMA_STATUS), DMA_STATUS_DONE);
	wr(p.dev, REG_DMA_ADDR_LO, (uint32_t)(WIN_FD + 200 * PAGE));
	wr(p.dev, REG_DMA_LEN, 8);
	wr(p.dev, REG_DMA_CMD, DMA_CMD_FILL);
	assert_int_equal(rd(p.dev, REG_DMA_STATUS), DMA_STATUS_DONE);
	assert_int_equal(ram[5 * PAGE + 100], 0x33);
	/* exactly those pages */
	assert_int_equal(vfmig_vmm_dma_log_report(p.dev, WIN_FD, win, PAGE, bm,
						  sizeof(bm) / 8),
			 0);
	for (size_t i = 0; i < sizeof(bm) / 8; i++) {
		uint64_t want = 0;
		if (i == 0)
			want = 7ull << 5;
		if (i == 200 / 64)
			want = 1ull << (200 % 64);
		assert_int_equal(bm[i], want);
	}
	/* read clears: a second report shows none */
	memset(bm, 0, sizeof(bm));
	assert_int_equal(vfmig_vmm_dma_log_report(p.dev, WIN_FD, win, PAGE, bm,
						  sizeof(bm) / 8),
			 0);
	for (size_t i = 0; i < sizeof(bm) / 8; i++)
		assert_int_equal(bm[i], 0);
	assert_int_equal(vfmig_vmm_dma_log_stop(p.dev), 0);
	assert_true(vfmig_vmm_dma_log_report(p.dev, WIN_FD, win, PAGE, bm,
					     sizeof(bm) / 8) < 0);
	assert_true(vfmig_vmm_dev_connected(p.dev));
	stop(&p);
	munmap(ram, RAM_SIZE);
	close(ram_fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_discover_samples),
		cmocka_unit_test(test_blocker_without_migration),
		cmocka_unit_test(test_migrate_regs),
		cmocka_unit_test(test_migrate_vram),
		cmocka_unit_test_prestate(test_migrate_regs, "v2-messages"),
		cmocka_unit_test_prestate(test_migrate_vram, "v2-messages"),
		cmocka_unit_test_prestate(test_migrate_regs, "region"),
		cmocka_unit_test_prestate(test_migrate_vram, "region"),
		cmocka_unit_test_prestate(test_dma_log_regs, "region"),
		cmocka_unit_test(test_recovery_regs),
		cmocka_unit_test(test_device_dies_during_save),
		cmocka_unit_test(test_concurrent_save),
		cmocka_unit_test(test_dma_log_regs),
	};

	/* Under memcheck a 64 MiB vram FILL alone outlasts 20 s. */
	opts.reply_timeout_ms *= harness_patience();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
