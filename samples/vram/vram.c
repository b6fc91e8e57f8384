/* SPDX-License-Identifier: MIT */
/*
 * Sample device "vram", written against the public device API only: a large
 * device-internal memory (like a GPU's), changed by device commands and
 * through a non-mappable data window, migrated iteratively with its own
 * dirty-page tracking (PRE_COPY). Register map: vram_hw.h and README.md.
 *
 * Every change to VRAM goes through vram_touch(), which marks the pages in
 * the device's dirty bitmap. A save session sends every page once (the
 * "initial" data), then pages dirtied since they were sent; in STOP_COPY it
 * ends with the registers and an END record. The stream's layout, its
 * encoders and the load parser are in vram_state.[ch].
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <vfmig/device.h>

#include "sample_cli.h"
#include "vram.h"
#include "vram_hw.h"
#include "vram_state.h"

#define VRAM_MIN_SIZE (16ull * VRAM_PAGE_SIZE)
#define VRAM_MAX_SIZE (64ull << 30)

/* Save session: pages still to send, a staging buffer for the fixed parts
 * (headers, registers), and the data of the current PAGES run, which is
 * copied from VRAM straight into the caller's buffer (no staging copy). */
struct vram_save {
	bool active, header_sent, final_sent;
	uint64_t *todo;     /* initial pass: pages not sent yet */
	uint64_t n_todo, n_dirty, cursor;
	uint8_t *out;       /* staged bytes */
	size_t out_len, out_pos;
	uint64_t run_off, run_left; /* VRAM bytes of the run still to send */
};

struct vram {
	uint8_t *mem;
	uint64_t size, npages;
	uint64_t *dirty;       /* pages changed since last sent */
	struct vram_regs r;
	struct vram_save save;
	struct vram_load load;
	int verbosity;
};


static void vram_log(void *priv, int level, const char *msg)
{
	(void)priv;
	fprintf(stderr, "vram: %s: %s\n",
		level <= VFMIG_LOG_ERR ? "error"
		: level <= VFMIG_LOG_WARNING ? "warning"
		: level <= VFMIG_LOG_INFO ? "info" : "debug",
		msg);
}

static void vlog(const struct vram *v, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void vlog(const struct vram *v, int level, const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	if (level > v->verbosity)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	vram_log(NULL, level, buf);
}

static bool bit(const uint64_t *b, uint64_t i)
{
	return b[i / 64] >> (i % 64) & 1;
}

static void bit_set(uint64_t *b, uint64_t i, bool on)
{
	if (on)
		b[i / 64] |= 1ull << (i % 64);
	else
		b[i / 64] &= ~(1ull << (i % 64));
}

/* Mark [off, off + len) of VRAM as changed. */
static void vram_touch(struct vram *v, uint64_t off, uint64_t len)
{
	if (!len)
		return;
	for (uint64_t p = off / VRAM_PAGE_SIZE;
	     p <= (off + len - 1) / VRAM_PAGE_SIZE; p++) {
		if (bit(v->dirty, p))
			continue;
		bit_set(v->dirty, p, true);
		if (v->save.active && !bit(v->save.todo, p))
			v->save.n_dirty++;
	}
}

static bool stopped(vfmig_dev *dev)
{
	uint32_t s = vfmig_dev_mig_state(dev);

	return s == VFMIG_DEV_MIG_STOP || s == VFMIG_DEV_MIG_STOP_COPY;
}

/* ---- device commands ---- */

static int cmd_fill(struct vram *v)
{
	uint64_t start = v->r.fill_start, count = v->r.fill_count;

	if (!count || start >= v->npages || count > v->npages - start)
		return -EINVAL;
	for (uint64_t p = start; p < start + count; p++) {
		uint8_t *pg = v->mem + p * VRAM_PAGE_SIZE;
		for (unsigned int i = 0; i < VRAM_PAGE_SIZE / 8; i++) {
			uint64_t w = vram_fill_word(v->r.fill_seed, p, i);
			for (int b = 0; b < 8; b++)
				pg[i * 8 + b] = (uint8_t)(w >> (8 * b));
		}
	}
	vram_touch(v, start * VRAM_PAGE_SIZE, count * VRAM_PAGE_SIZE);
	return 0;
}

static int cmd_copy(vfmig_dev *dev, struct vram *v)
{
	uint64_t off = v->r.vram_off, len = v->r.dma_len;
	int e;

	if (!len || len > VRAM_DMA_MAX || off >= v->size || len > v->size - off)
		return -EINVAL;
	e = vfmig_dev_dma_read(dev, v->r.dma_addr, v->mem + off, len);
	if (e == 0)
		vram_touch(v, off, len);
	return e;
}

static void run_cmd(vfmig_dev *dev, struct vram *v, uint32_t cmd)
{
	int e = -EINVAL;

	v->r.status = 0;
	v->r.error = 0;
	if (cmd == VRAM_CMD_FILL)
		e = cmd_fill(v);
	else if (cmd == VRAM_CMD_COPY)
		e = cmd_copy(dev, v);
	else if (cmd == VRAM_CMD_CHECKSUM) {
		v->r.csum = vram_csum(VRAM_CSUM_INIT, v->mem, v->size);
		e = 0;
	}
	v->r.status = VRAM_STATUS_DONE | (e < 0 ? VRAM_STATUS_ERROR : 0);
	v->r.error = e < 0 ? (uint32_t)-e : 0;
	v->r.counter++;
	if (e < 0)
		vlog(v, VFMIG_LOG_WARNING, "command %u failed: %s", cmd,
		     vfmig_dev_strerror(e));
	(void)vfmig_dev_irq_trigger(dev, VFMIG_DEV_IRQ_MSIX, 0);
}

static uint32_t reg_read(const struct vram *v, uint64_t off)
{
	const struct vram_regs *r = &v->r;

	switch (off) {
	case VRAM_REG_ID: return VRAM_MAGIC;
	case VRAM_REG_VERSION: return 1;
	case VRAM_REG_SIZE_LO: return (uint32_t)v->size;
	case VRAM_REG_SIZE_HI: return (uint32_t)(v->size >> 32);
	case VRAM_REG_FILL_START: return r->fill_start;
	case VRAM_REG_FILL_COUNT: return r->fill_count;
	case VRAM_REG_FILL_SEED: return r->fill_seed;
	case VRAM_REG_STATUS: return r->status;
	case VRAM_REG_ERROR: return r->error;
	case VRAM_REG_CSUM_LO: return (uint32_t)r->csum;
	case VRAM_REG_CSUM_HI: return (uint32_t)(r->csum >> 32);
	case VRAM_REG_DMA_ADDR_LO: return (uint32_t)r->dma_addr;
	case VRAM_REG_DMA_ADDR_HI: return (uint32_t)(r->dma_addr >> 32);
	case VRAM_REG_DMA_LEN: return r->dma_len;
	case VRAM_REG_VRAM_OFF_LO: return (uint32_t)r->vram_off;
	case VRAM_REG_VRAM_OFF_HI: return (uint32_t)(r->vram_off >> 32);
	case VRAM_REG_WIN_OFF_LO: return (uint32_t)r->win_off;
	case VRAM_REG_WIN_OFF_HI: return (uint32_t)(r->win_off >> 32);
	case VRAM_REG_COUNTER: return r->counter;
	default: return 0;
	}
}

static void set_lo(uint64_t *x, uint32_t v)
{
	*x = (*x & ~0xffffffffull) | v;
}

static void set_hi(uint64_t *x, uint32_t v)
{
	*x = (*x & 0xffffffffull) | ((uint64_t)v << 32);
}

static void reg_write(vfmig_dev *dev, struct vram *v, uint64_t off,
		      uint32_t val)
{
	struct vram_regs *r = &v->r;

	switch (off) {
	case VRAM_REG_FILL_START: r->fill_start = val; break;
	case VRAM_REG_FILL_COUNT: r->fill_count = val; break;
	case VRAM_REG_FILL_SEED: r->fill_seed = val; break;
	case VRAM_REG_CMD: run_cmd(dev, v, val); break;
	case VRAM_REG_DMA_ADDR_LO: set_lo(&r->dma_addr, val); break;
	case VRAM_REG_DMA_ADDR_HI: set_hi(&r->dma_addr, val); break;
	case VRAM_REG_DMA_LEN: r->dma_len = val; break;
	case VRAM_REG_VRAM_OFF_LO: set_lo(&r->vram_off, val); break;
	case VRAM_REG_VRAM_OFF_HI: set_hi(&r->vram_off, val); break;
	case VRAM_REG_WIN_OFF_LO: set_lo(&r->win_off, val); break;
	case VRAM_REG_WIN_OFF_HI: set_hi(&r->win_off, val); break;
	default: break;
	}
}

static int win_access(struct vram *v, uint64_t off, void *buf, size_t len,
		      bool is_write)
{
	uint64_t at = v->r.win_off + off;

	if (at < off || at >= v->size || len > v->size - at)
		return -EINVAL; /* window reaches past the end of VRAM */
	if (is_write) {
		memcpy(v->mem + at, buf, len);
		vram_touch(v, at, len);
	} else {
		memcpy(buf, v->mem + at, len);
	}
	return 0;
}

/* PCI is little-endian: a register's bytes in buf are the same on every
 * host, so they are assembled byte by byte, never memcpy'd. */
static uint32_t le32_get(const uint8_t *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
	       (uint32_t)b[3] << 24;
}

static void le32_put(uint8_t *b, uint32_t x)
{
	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(x >> (8 * i));
}

static int vram_access(vfmig_dev *dev, void *priv, unsigned int bar,
		       uint64_t off, void *buf, size_t len, bool is_write)
{
	struct vram *v = priv;

	if (is_write && stopped(dev))
		return -EBUSY; /* a stopped device keeps its state */
	if (bar == VRAM_BAR_WIN)
		return win_access(v, off, buf, len, is_write);
	if (bar != VRAM_BAR_REGS || len != 4 || (off & 3))
		return -EINVAL;
	if (is_write)
		reg_write(dev, v, off, le32_get(buf));
	else
		le32_put(buf, reg_read(v, off));
	return 0;
}

static void save_end(struct vram *v);

static int vram_reset(vfmig_dev *dev, void *priv)
{
	struct vram *v = priv;

	(void)dev;
	memset(&v->r, 0, sizeof(v->r));
	memset(v->mem, 0, v->size);
	memset(v->dirty, 0, (v->npages + 63) / 64 * 8);
	save_end(v);
	vram_load_reset(&v->load);
	return 0;
}

/* ---- save ---- */

static void save_end(struct vram *v)
{
	free(v->save.todo);
	free(v->save.out);
	v->save = (struct vram_save){ 0 };
}

static int save_begin(struct vram *v)
{
	size_t words = (size_t)((v->npages + 63) / 64);

	save_end(v);
	v->save.todo = malloc(words * 8);
	v->save.out = malloc(2 * VRAM_REC_HDR + VRAM_MIG_HDR + VRAM_MIG_REGS);
	if (!v->save.todo || !v->save.out) {
		save_end(v);
		return -ENOMEM;
	}
	memset(v->save.todo, 0xff, words * 8);
	if (v->npages % 64)
		v->save.todo[words - 1] = (1ull << (v->npages % 64)) - 1;
	memset(v->dirty, 0, words * 8); /* the initial pass covers them */
	v->save.n_todo = v->npages;
	v->save.active = true;
	return 0;
}

static void stage_rec(struct vram_save *s, uint32_t type, uint32_t count,
		      uint64_t first)
{
	vram_state_rec(s->out + s->out_len, type, count, first);
	s->out_len += VRAM_REC_HDR;
}

static bool page_zero(const struct vram *v, uint64_t p)
{
	return vram_state_page_zero(v->mem, p);
}

/* Send page p: clear it from both sets, keeping the counts right. */
static void page_sent(struct vram *v, uint64_t p)
{
	if (bit(v->save.todo, p)) {
		bit_set(v->save.todo, p, false);
		v->save.n_todo--;
	} else if (bit(v->dirty, p)) {
		v->save.n_dirty--;
	}
	bit_set(v->dirty, p, false);
}

static bool pending(const struct vram *v, uint64_t p)
{
	return bit(v->save.todo, p) || bit(v->dirty, p);
}

/* Next pending page at or after cursor (wrapping once), or npages. */
static uint64_t next_pending(struct vram *v)
{
	for (uint64_t k = 0; k < v->npages; k++) {
		uint64_t p = (v->save.cursor + k) % v->npages;
		if (!(p % 64) && p + 64 <= v->npages && k + 64 <= v->npages &&
		    !v->save.todo[p / 64] && !v->dirty[p / 64]) {
			k += 63;
			continue;
		}
		if (pending(v, p))
			return p;
	}
	return v->npages;
}

/* Stage the next record: its fixed part in the staging buffer, and for
 * PAGES the run to copy from VRAM (run_off, run_left); false when there is
 * nothing now. */
static bool stage_next(vfmig_dev *dev, struct vram *v)
{
	struct vram_save *s = &v->save;
	uint64_t p;

	s->out_len = s->out_pos = 0;
	if (!s->header_sent) {
		vram_state_header(s->out, v->npages);
		s->out_len = VRAM_MIG_HDR;
		s->header_sent = true;
		return true;
	}
	p = next_pending(v);
	if (p < v->npages) {
		bool zero = page_zero(v, p);
		uint32_t n = 0;
		while (p + n < v->npages && n < VRAM_RUN_MAX &&
		       pending(v, p + n) && page_zero(v, p + n) == zero)
			n++;
		stage_rec(s, zero ? VRAM_REC_ZERO : VRAM_REC_PAGES, n, p);
		/* The pages count as sent now; a change before their bytes
		 * are copied marks them dirty again, so they go once more. */
		for (uint32_t i = 0; i < n; i++)
			page_sent(v, p + i);
		if (!zero) {
			s->run_off = p * VRAM_PAGE_SIZE;
			s->run_left = (uint64_t)n * VRAM_PAGE_SIZE;
		}
		s->cursor = p + n;
		return true;
	}
	if (vfmig_dev_mig_state(dev) != VFMIG_DEV_MIG_STOP_COPY ||
	    s->final_sent)
		return false;
	stage_rec(s, VRAM_REC_REGS, VRAM_MIG_REGS, 0);
	vram_state_regs(s->out + s->out_len, &v->r);
	s->out_len += VRAM_MIG_REGS;
	stage_rec(s, VRAM_REC_END, 0, 0);
	s->final_sent = true;
	return true;
}

/* Fill as much of buf as there is data: staged bytes first, then the
 * current run's pages straight from VRAM, then the next record. */
static ssize_t vram_save(vfmig_dev *dev, void *priv, void *buf, size_t len)
{
	struct vram *v = priv;
	struct vram_save *s = &v->save;
	uint8_t *dst = buf;
	size_t done = 0;

	if (!s->active)
		return -EINVAL;
	while (done < len) {
		size_t n;
		if (s->out_pos < s->out_len) {
			n = s->out_len - s->out_pos;
			if (n > len - done)
				n = len - done;
			memcpy(dst + done, s->out + s->out_pos, n);
			s->out_pos += n;
		} else if (s->run_left) {
			n = s->run_left < len - done ? (size_t)s->run_left
						     : len - done;
			memcpy(dst + done, v->mem + s->run_off, n);
			s->run_off += n;
			s->run_left -= n;
		} else if (stage_next(dev, v)) {
			continue;
		} else {
			s->cursor = 0; /* the next round scans from the start */
			break;
		}
		done += n;
	}
	return (ssize_t)done;
}

static int vram_estimate(vfmig_dev *dev, void *priv,
			 struct vfmig_dev_mig_estimate *est)
{
	struct vram *v = priv;
	const uint64_t fin = 2 * VRAM_REC_HDR + VRAM_MIG_REGS;

	(void)dev;
	if (!v->save.active) {
		est->stop_copy_bytes = VRAM_MIG_HDR + v->npages * VRAM_PAGE_SIZE +
				       fin;
		return 0;
	}
	est->initial_bytes = v->save.n_todo * VRAM_PAGE_SIZE;
	est->dirty_bytes = v->save.n_dirty * VRAM_PAGE_SIZE;
	est->stop_copy_bytes = est->initial_bytes + est->dirty_bytes + fin;
	return 0;
}

/* ---- load ---- */

static ssize_t vram_load(vfmig_dev *dev, void *priv, const void *buf,
			 size_t len)
{
	struct vram *v = priv;
	bool was_bad = v->load.phase == VRAM_L_BAD;
	ssize_t r = vram_load_feed(&v->load, v->mem, v->npages, buf, len);

	(void)dev;
	if (r < 0 && !was_bad)
		vlog(v, VFMIG_LOG_ERR, "migration data refused: %s",
		     v->load.why);
	return r;
}

/* The data channel receives page data straight into VRAM. */
static void *vram_load_place_op(vfmig_dev *dev, void *priv, size_t *len)
{
	struct vram *v = priv;

	(void)dev;
	return vram_load_place(&v->load, v->mem, len);
}

static int vram_load_finish(vfmig_dev *dev, void *priv)
{
	struct vram *v = priv;

	(void)dev;
	if (!vram_load_done(&v->load)) {
		if (v->load.phase != VRAM_L_BAD)
			vlog(v, VFMIG_LOG_ERR,
			     "migration data refused: stream incomplete "
			     "(no END record)");
		return -ENODATA;
	}
	v->r = v->load.regs;
	memset(v->dirty, 0, (v->npages + 63) / 64 * 8);
	vlog(v, VFMIG_LOG_INFO, "migration state loaded");
	return 0;
}

static int vram_transition(vfmig_dev *dev, void *priv, uint32_t from,
			   uint32_t to)
{
	struct vram *v = priv;
	bool was_saving = from == VFMIG_DEV_MIG_PRE_COPY ||
			  from == VFMIG_DEV_MIG_STOP_COPY;
	bool saving = to == VFMIG_DEV_MIG_PRE_COPY ||
		      to == VFMIG_DEV_MIG_STOP_COPY;

	(void)dev;
	vlog(v, VFMIG_LOG_DEBUG, "migration arc %u -> %u", from, to);
	if (saving && !was_saving)
		return save_begin(v);
	if (was_saving && !saving)
		save_end(v);
	if (to == VFMIG_DEV_MIG_RESUMING)
		vram_load_reset(&v->load);
	return 0;
}

/* ---- description ---- */

static const struct vfmig_dev_desc vram_desc = {
		.version = VFMIG_DEV_DESC_VERSION,
	.vendor_id = VRAM_VENDOR_ID,
	.device_id = VRAM_DEVICE_ID,
	.subsys_vendor_id = 0x1b36,
	.subsys_id = 0x0002,
	.revision = 1,
	.class_code = 0x038000, /* display controller, other */
	.bars = {
		[VRAM_BAR_REGS] = { .size = 4096 },
		[VRAM_BAR_WIN] = { .size = VRAM_BAR_WIN_SIZE },
		[VRAM_BAR_MSIX] = { .size = 4096 },
	},
	.msix_vectors = VRAM_MSIX_VECTORS,
	.msix_bar = VRAM_BAR_MSIX,
	.msix_table_offset = 0x000,
	.msix_pba_offset = 0x800,
	.pcie = true,
};

static const struct vfmig_dev_ops vram_ops = {
	.version = VFMIG_DEV_OPS_VERSION,
	.region_access = vram_access,
	.reset = vram_reset,
	.mig_flags = VFMIG_DEV_MIG_F_STOP_COPY | VFMIG_DEV_MIG_F_PRE_COPY,
	.mig_transition = vram_transition,
	.mig_save = vram_save,
	.mig_estimate = vram_estimate,
	.mig_load = vram_load,
	.mig_load_finish = vram_load_finish,
	.mig_load_place = vram_load_place_op,
};

/* ---- command line ---- */

/* "256M", "4096K", "1G", "65536": bytes, a multiple of the page size. */
static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned int shift = 0;

	errno = 0;
	if (*s < '0' || *s > '9')
		return -1;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	if (*end == 'K' || *end == 'k')
		shift = 10;
	else if (*end == 'M' || *end == 'm')
		shift = 20;
	else if (*end == 'G' || *end == 'g')
		shift = 30;
	if (shift)
		end++;
	if (*end || v > (VRAM_MAX_SIZE >> shift))
		return -1;
	v <<= shift;
	if (v < VRAM_MIN_SIZE || v % VRAM_PAGE_SIZE)
		return -1;
	*out = v;
	return 0;
}

static int vram_init(struct vram *v, uint64_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		return -errno;
	v->mem = p;
	v->size = size;
	v->npages = size / VRAM_PAGE_SIZE;
	v->dirty = calloc((size_t)((v->npages + 63) / 64), 8);
	if (!v->dirty)
		return -ENOMEM;
	vram_load_reset(&v->load);
	return 0;
}

static void vram_fini(struct vram *v)
{
	save_end(v);
	free(v->dirty);
	if (v->mem)
		munmap(v->mem, v->size);
}

int vfmig_sample_vram_main(int argc, char **argv)
{
	static const char *const extra[] = { "--size" };
	const char *size_opt = NULL;
	struct sample_cli o = { .name = "vram", .n_extra = 1,
				.extra_names = extra, .extra_vals = &size_opt };
	struct vram v = { 0 };
	uint64_t size = 256ull << 20;
	vfmig_dev *dev = NULL;
	int rc;

	if (sample_cli_parse(&o, argc, argv) < 0)
		return 2;
	if (size_opt && parse_size(size_opt, &size) < 0) {
		fprintf(stderr, "vram: --size '%s': want a multiple of 4 KiB "
				"from 64K to 64G (suffix K, M or G)\n", size_opt);
		return 2;
	}
	v.verbosity = o.verbosity;
	rc = vram_init(&v, size);
	if (rc == 0)
		rc = vfmig_dev_create(&vram_desc, &vram_ops, &v, &dev);
	if (rc < 0) {
		fprintf(stderr, "vram: create: %s\n", vfmig_dev_strerror(rc));
		vram_fini(&v);
		return 1;
	}
	vfmig_dev_set_log(dev, vram_log, NULL, o.verbosity);
	rc = sample_cli_serve(dev, &o);
	vfmig_dev_destroy(dev);
	vram_fini(&v);
	return rc;
}
