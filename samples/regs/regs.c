/* SPDX-License-Identifier: MIT */
/*
 * Sample device "regs", written against the public device API only.
 *
 * BAR0 (4 KiB MMIO, 32-bit little-endian registers, 4-byte accesses):
 *   0x000 ID          ro  0x56464d47 ("VFMG")
 *   0x004 VERSION     ro  1
 *   0x010 SCRATCH0-7  rw  0x010 .. 0x02c, free for the driver
 *   0x040 COUNTER     ro  number of DOORBELL writes
 *   0x044 DOORBELL    wo  any write increments COUNTER
 *   0x048 EVENT       wo  write N: raise MSI-X vector N (N >= 4: ERROR=EINVAL)
 *   0x080 DMA_ADDR_LO rw  guest address, low half
 *   0x084 DMA_ADDR_HI rw  guest address, high half
 *   0x088 DMA_LEN     rw  length in bytes, 1 .. 1 MiB
 *   0x08c DMA_CMD     wo  1: checksum guest buffer into DMA_RESULT
 *                         2: fill guest buffer, byte i = (DMA_PATTERN + i)
 *   0x090 DMA_STATUS  ro  bit 0 done, bit 1 error (cleared by DMA_CMD)
 *   0x094 DMA_ERROR   ro  errno of the last failed command, else 0
 *   0x098 DMA_RESULT  ro  FNV-1a 32-bit hash of the buffer (checksum)
 *   0x09c DMA_PATTERN rw  first byte of the fill pattern (low 8 bits)
 *   Other offsets read 0 and ignore writes. A finished DMA command raises
 *   MSI-X vector 0.
 * BAR2: 64 KiB device memory, mappable by the client (memfd).
 * BAR4: 4 KiB, MSI-X table (4 vectors) at 0x000, PBA at 0x800.
 * Also: MSI (1 vector), INTx, PCI Express capability.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vfmig/device.h>

#include "regs.h"
#include "sample_cli.h"
#include "regs_hw.h"
#include "regs_state.h"

/* Register offsets, IDs and constants: regs_hw.h, the datasheet shared
 * with the drivers of this device. */

/* Migration session buffers (see the stream layout below). */
struct regs_mig {
	uint8_t *buf;   /* save: the whole stream; load: what arrived */
	size_t len;     /* bytes in buf */
	size_t pos;     /* save: bytes already handed out */
	size_t cap;
	bool bad;       /* load: refused already; the finish step fails */
};

struct regs {
	struct regs_state st;
	struct regs_mig mig;
	int verbosity;
	int fail_to; /* fault injection: refuse arcs into this state; -1 none */
	/* Fault injection: STOP_COPY data never ends (after the state comes
	 * filler, forever), and a load takes any surplus and drops it. */
	bool endless;
};


static void regs_log(void *priv, int level, const char *msg)
{
	static const char *const names[8] = { "emerg", "alert", "crit",
					       "error", "warning", "notice",
					       "info", "debug" };
	(void)priv;
	fprintf(stderr, "regs: %s: %s\n",
		level >= 0 && level < 8 ? names[level] : "log", msg);
}

static void regs_logf(const struct regs *r, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void regs_logf(const struct regs *r, int level, const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	if (level > r->verbosity)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	regs_log(NULL, level, buf);
}

static int dma_run(vfmig_dev *dev, struct regs *r, uint32_t cmd,
		   uint8_t *buf)
{
	struct regs_state *s = &r->st;
	int e;

	if (cmd == DMA_CMD_CHECKSUM) {
		e = vfmig_dev_dma_read(dev, s->dma_addr, buf, s->dma_len);
		if (e == 0)
			s->dma_result = regs_fnv1a(buf, s->dma_len);
		return e;
	}
	for (uint32_t i = 0; i < s->dma_len; i++)
		buf[i] = (uint8_t)(s->dma_pattern + i);
	return vfmig_dev_dma_write(dev, s->dma_addr, buf, s->dma_len);
}

static void dma_start(vfmig_dev *dev, struct regs *r, uint32_t cmd)
{
	struct regs_state *s = &r->st;
	uint8_t *buf = NULL;
	int e = -EINVAL;

	s->dma_status = 0;
	s->dma_error = 0;
	if ((cmd == DMA_CMD_CHECKSUM || cmd == DMA_CMD_FILL) &&
	    s->dma_len > 0 && s->dma_len <= REGS_DMA_MAX) {
		buf = malloc(s->dma_len);
		e = buf ? dma_run(dev, r, cmd, buf) : -ENOMEM;
	}
	free(buf);
	if (e < 0) {
		s->dma_status = DMA_STATUS_DONE | DMA_STATUS_ERROR;
		s->dma_error = (uint32_t)-e;
		regs_logf(r, VFMIG_LOG_WARNING,
			  "DMA cmd %u at 0x%llx len %u failed: %s", cmd,
			  (unsigned long long)s->dma_addr, s->dma_len,
			  vfmig_dev_strerror(e));
	} else {
		s->dma_status = DMA_STATUS_DONE;
	}
	(void)vfmig_dev_irq_trigger(dev, VFMIG_DEV_IRQ_MSIX, 0);
}

static uint32_t reg_read(const struct regs_state *s, uint64_t off)
{
	switch (off) {
	case REG_ID: return REGS_MAGIC;
	case REG_VERSION: return 1;
	case REG_COUNTER: return s->counter;
	case REG_DMA_ADDR_LO: return (uint32_t)s->dma_addr;
	case REG_DMA_ADDR_HI: return (uint32_t)(s->dma_addr >> 32);
	case REG_DMA_LEN: return s->dma_len;
	case REG_DMA_STATUS: return s->dma_status;
	case REG_DMA_ERROR: return s->dma_error;
	case REG_DMA_RESULT: return s->dma_result;
	case REG_DMA_PATTERN: return s->dma_pattern;
	default:
		if (off >= REG_SCRATCH0 && off <= REG_SCRATCH7)
			return s->scratch[(off - REG_SCRATCH0) / 4];
		return 0;
	}
}

static void reg_write(vfmig_dev *dev, struct regs *r, uint64_t off,
		      uint32_t v)
{
	struct regs_state *s = &r->st;

	switch (off) {
	case REG_DOORBELL: s->counter++; break;
	case REG_EVENT:
		if (v >= REGS_MSIX_VECTORS)
			s->dma_error = EINVAL;
		else
			(void)vfmig_dev_irq_trigger(dev, VFMIG_DEV_IRQ_MSIX, v);
		break;
	case REG_DMA_ADDR_LO:
		s->dma_addr = (s->dma_addr & ~0xffffffffull) | v;
		break;
	case REG_DMA_ADDR_HI:
		s->dma_addr = (s->dma_addr & 0xffffffffull) | ((uint64_t)v << 32);
		break;
	case REG_DMA_LEN: s->dma_len = v; break;
	case REG_DMA_CMD: dma_start(dev, r, v); break;
	case REG_DMA_PATTERN: s->dma_pattern = v & 0xff; break;
	default:
		if (off >= REG_SCRATCH0 && off <= REG_SCRATCH7)
			s->scratch[(off - REG_SCRATCH0) / 4] = v;
		break;
	}
}

/* PCI is little-endian: a register's bytes in buf are the same on every
 * host, so they are assembled byte by byte, never memcpy'd. */
static uint32_t le32_get(const uint8_t *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
	       (uint32_t)b[3] << 24;
}

static void le32_put(uint8_t *b, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static int regs_access(vfmig_dev *dev, void *priv, unsigned int bar,
		       uint64_t off, void *buf, size_t len, bool is_write)
{
	struct regs *r = priv;

	if (bar != REGS_BAR_REGS || len != 4 || (off & 3))
		return -EINVAL;
	if (is_write && (vfmig_dev_mig_state(dev) == VFMIG_DEV_MIG_STOP ||
			 vfmig_dev_mig_state(dev) == VFMIG_DEV_MIG_STOP_COPY))
		return -EBUSY; /* stopped for migration: state is frozen */
	if (is_write)
		reg_write(dev, r, off, le32_get(buf));
	else
		le32_put(buf, reg_read(&r->st, off));
	return 0;
}

static void mig_reset(struct regs_mig *m);

static int regs_reset(vfmig_dev *dev, void *priv)
{
	struct regs *r = priv;
	uint64_t size;
	void *mem = vfmig_dev_bar_ptr(dev, REGS_BAR_MEM, &size);

	memset(&r->st, 0, sizeof(r->st));
	mig_reset(&r->mig); /* a reset abandons any migration session */
	if (mem)
		memset(mem, 0, size);
	return 0;
}


/* ---- migration: the stream is in regs_state.h ---- */

static void mig_reset(struct regs_mig *m)
{
	free(m->buf);
	*m = (struct regs_mig){ 0 };
}

/* Serialise the state into a new buffer (STOP -> STOP_COPY). */
static int mig_build(vfmig_dev *dev, struct regs *r)
{
	uint8_t *b = malloc(REGS_MIG_TOTAL);
	const void *mem = vfmig_dev_bar_ptr(dev, REGS_BAR_MEM, NULL);

	if (!b || !mem) {
		free(b);
		return -ENOMEM;
	}
	regs_state_encode(&r->st, mem, b);
	mig_reset(&r->mig);
	r->mig.buf = b;
	r->mig.len = REGS_MIG_TOTAL;
	return 0;
}

static int regs_transition(vfmig_dev *dev, void *priv, uint32_t from,
			   uint32_t to)
{
	struct regs *r = priv;

	regs_logf(r, VFMIG_LOG_DEBUG, "migration arc %u -> %u", from, to);
	if (r->fail_to >= 0 && to == (uint32_t)r->fail_to) {
		regs_logf(r, VFMIG_LOG_WARNING, "refusing arc %u -> %u "
			  "(--fail-transition)", from, to);
		return -EIO;
	}
	if (to == VFMIG_DEV_MIG_STOP_COPY)
		return mig_build(dev, r);
	if (to == VFMIG_DEV_MIG_RESUMING || from == VFMIG_DEV_MIG_STOP_COPY ||
	    from == VFMIG_DEV_MIG_RESUMING)
		mig_reset(&r->mig); /* session starts or ends */
	return 0;
}

static ssize_t regs_save(vfmig_dev *dev, void *priv, void *buf, size_t len)
{
	struct regs *r = priv;
	struct regs_mig *m = &r->mig;
	size_t n = m->len - m->pos;

	(void)dev;
	if (n > len)
		n = len;
	memcpy(buf, m->buf + m->pos, n);
	m->pos += n;
	if (r->endless && n < len) {
		/* --endless-stop-copy: every read is full, so it never ends. */
		memset((uint8_t *)buf + n, 0xee, len - n);
		n = len;
	}
	return (ssize_t)n;
}

static int regs_estimate(vfmig_dev *dev, void *priv,
			 struct vfmig_dev_mig_estimate *est)
{
	(void)dev;
	(void)priv;
	est->stop_copy_bytes = REGS_MIG_TOTAL;
	return 0;
}

static ssize_t regs_load(vfmig_dev *dev, void *priv, const void *buf,
			 size_t len)
{
	struct regs *r = priv;
	struct regs_mig *m = &r->mig;

	(void)dev;
	if (m->bad)
		return -EINVAL;
	if (r->endless && len > REGS_MIG_TOTAL - m->len) {
		/* --endless-stop-copy: keep the state, drop the filler. */
		size_t keep = REGS_MIG_TOTAL - m->len;
		if (keep && regs_load(dev, priv, buf, keep) < 0)
			return -EINVAL;
		return (ssize_t)len;
	}
	if (len > REGS_MIG_TOTAL - m->len) {
		regs_logf(r, VFMIG_LOG_ERR,
			  "migration data refused: more than the %u bytes of a "
			  "version %u stream", REGS_MIG_TOTAL, REGS_MIG_VERSION);
		m->bad = true;
		return -EINVAL;
	}
	if (!m->buf) {
		m->buf = malloc(REGS_MIG_TOTAL);
		if (!m->buf)
			return -ENOMEM;
	}
	memcpy(m->buf + m->len, buf, len);
	m->len += len;
	return (ssize_t)len;
}

/* Check a complete stream into n; NULL if fine, else why not. */
static const char *mig_check(const struct regs_mig *m, struct regs_state *n)
{
	if (m->bad)
		return "an earlier chunk was refused";
	return regs_state_decode(m->buf, m->len, n);
}

static int regs_load_finish(vfmig_dev *dev, void *priv)
{
	struct regs *r = priv;
	struct regs_state n;
	const char *why = mig_check(&r->mig, &n);
	void *mem = vfmig_dev_bar_ptr(dev, REGS_BAR_MEM, NULL);

	if (why) {
		regs_logf(r, VFMIG_LOG_ERR, "migration data refused: %s", why);
		return -EINVAL;
	}
	r->st = n;
	memcpy(mem, r->mig.buf + REGS_MIG_MEM_OFF, REGS_BAR_MEM_SIZE);
	mig_reset(&r->mig);
	regs_logf(r, VFMIG_LOG_INFO, "migration state loaded");
	return 0;
}

static const struct vfmig_dev_desc regs_desc = {
		.version = VFMIG_DEV_DESC_VERSION,
	.vendor_id = REGS_VENDOR_ID,
	.device_id = 0x1000,
	.subsys_vendor_id = 0x1b36,
	.subsys_id = 0x0001,
	.revision = 1,
	.class_code = 0xff0000,
	.bars = {
		[REGS_BAR_REGS] = { .size = 4096, .flags = VFMIG_DEV_BAR_MEM32 },
		[REGS_BAR_MEM] = { .size = REGS_BAR_MEM_SIZE,
			.flags = VFMIG_DEV_BAR_MEM64 | VFMIG_DEV_BAR_PREFETCH |
				 VFMIG_DEV_BAR_MAPPABLE },
		[REGS_BAR_MSIX] = { .size = 4096, .flags = VFMIG_DEV_BAR_MEM32 },
	},
	.intx_count = 1,
	.msi_vectors = 1,
	.msix_vectors = REGS_MSIX_VECTORS,
	.msix_bar = REGS_BAR_MSIX,
	.msix_table_offset = 0x000,
	.msix_pba_offset = 0x800,
	.err_count = 1,
	.req_count = 1,
	.pcie = true,
};

static const struct vfmig_dev_ops regs_ops = {
	.version = VFMIG_DEV_OPS_VERSION,
	.region_access = regs_access,
	.reset = regs_reset,
	.mig_flags = VFMIG_DEV_MIG_F_STOP_COPY,
	.mig_transition = regs_transition,
	.mig_save = regs_save,
	.mig_estimate = regs_estimate,
	.mig_load = regs_load,
	.mig_load_finish = regs_load_finish,
};

/* ---- command line ---- */

/* Fault injection for tests: the state whose arcs the device refuses. */
static int fail_state(const char *name)
{
	static const struct {
		const char *name;
		int state;
	} states[] = {
		{ "STOP", VFMIG_DEV_MIG_STOP },
		{ "RUNNING", VFMIG_DEV_MIG_RUNNING },
		{ "STOP_COPY", VFMIG_DEV_MIG_STOP_COPY },
		{ "RESUMING", VFMIG_DEV_MIG_RESUMING },
	};
	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
		if (!strcmp(name, states[i].name))
			return states[i].state;
	return -1;
}

int vfmig_sample_regs_main(int argc, char **argv)
{
	static const char *const extra[] = { "--fail-transition" };
	static const char *const flags[] = { "--endless-stop-copy",
					     "--no-dirty-log" };
	const char *fail_transition = NULL;
	bool flag_vals[2] = { false, false };
	struct regs r = { .fail_to = -1 };
	struct vfmig_dev_ops ops = regs_ops;
	struct sample_cli o = { .name = "regs", .n_extra = 1,
				.extra_names = extra,
				.extra_vals = &fail_transition,
				.n_flags = 2, .flag_names = flags,
				.flag_vals = flag_vals };
	vfmig_dev *dev;
	int rc;

	if (sample_cli_parse(&o, argc, argv) < 0)
		return 2;
	r.verbosity = o.verbosity;
	r.endless = flag_vals[0];
	/* --no-dirty-log: a device that does not offer DMA dirty logging
	 * (its DMA is still real: a VMM must take all of RAM as dirty). */
	if (flag_vals[1])
		ops.mig_flags |= VFMIG_DEV_MIG_F_NO_DIRTY_LOG;
	if (fail_transition) {
		r.fail_to = fail_state(fail_transition);
		if (r.fail_to < 0) {
			fprintf(stderr, "regs: --fail-transition %s: not one of "
					"STOP, RUNNING, STOP_COPY, RESUMING\n",
				fail_transition);
			return 2;
		}
	}
	rc = vfmig_dev_create(&regs_desc, &ops, &r, &dev);
	if (rc < 0) {
		fprintf(stderr, "regs: create: %s\n", vfmig_dev_strerror(rc));
		return 1;
	}
	vfmig_dev_set_log(dev, regs_log, NULL, o.verbosity);
	rc = sample_cli_serve(dev, &o);
	vfmig_dev_destroy(dev);
	mig_reset(&r.mig);
	return rc;
}
