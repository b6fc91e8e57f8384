/* SPDX-License-Identifier: MIT */
/*
 * The guest's driver for the "dma" sample (samples/dma/README.md): it keeps
 * the engine busy with COPY, FILL and CSUM requests, a page to 2 MiB each,
 * with scatter lists, and proves that every request completed exactly once.
 *
 * Memory: the device's DMA area (guest.h) holds the submission ring (64
 * entries), the two completion rings (64 entries each) and one scatter
 * list slot per ring entry. The driver reserves 8 MiB at the top of RAM:
 * SRC (2 MiB, written once by the "CPU" with words that follow from the
 * seed) and DST (6 MiB, written only by the device). Request n follows
 * from (seed, device, n) alone: op, queue, length, scatter layout, source
 * and pattern; so does every byte of DST, given the ledger's counts.
 *
 * Ledger (ld->drv): requests submitted (the last seq) and completed (every
 * seq up to it matched, in order, to its completion record), completions
 * reaped per queue, bytes moved, checksums checked. The engine runs one
 * request at a time in ring order, so completions come in seq order: the
 * next record of a queue must carry the next seq that uses that queue.
 * Each record carries the queue's completion number, so a fresh record is
 * told from a stale one; a record with an older seq is a request done
 * twice, a newer one a request lost. At most 8 requests are outstanding.
 * Interrupts only wake the driver (the engine raises a queue's vector once
 * for several completions), so they are not counted.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "guest/drivers.h"
#include "dma/dma_hw.h"

#define RING 64u                     /* submission and completion entries */
#define OUTSTANDING 8u               /* requests in flight at most */
#define SUBMIT_PER_ITER 2u
#define SQ_OFF 0x0000u
#define CQ_OFF(q) (0x1000u + (q) * 0x800u)
#define SGL_OFF(slot) (0x2000u + (slot) * DMA_MAX_SEGS * DMA_SEG_SIZE)
#define PG 4096u
#define SRC_PAGES 512u               /* 2 MiB */
#define DST_PAGES 1536u              /* 6 MiB */
#define RESERVE ((uint64_t)(SRC_PAGES + DST_PAGES) * PG)
#define MAX_PAGES 512u               /* 2 MiB per request */
#define STALL_NS 5000000000ll        /* no completion for 5 s: lost */
#define SETTLE_MS 3000               /* verify: wait for the engine */

/* Ledger words of a dma device (ld->drv). */
enum { W_SUBMITTED, W_COMPLETED, W_REAPED0, W_REAPED1, W_BYTES, W_CSUMS };

struct dreq {
	uint64_t seq;
	uint32_t op, cq, nseg, rot;
	uint64_t pages, piece;    /* pages in all, per segment */
	uint64_t dst, src;        /* first page in DST / SRC */
	uint64_t pattern;
};

static struct dreq req_of(uint64_t seed, unsigned int dev, uint64_t n)
{
	uint64_t h = guest__mix64(seed ^ 0x444d4151ull ^ ((uint64_t)dev << 48) ^
				  (n * 0x9e3779b97f4a7c15ull));
	uint64_t h2 = guest__mix64(h);
	struct dreq r = { .seq = n };
	unsigned int maxlog;

	r.op = DMA_OP_COPY + (uint32_t)(h % 3);
	r.cq = (uint32_t)(h >> 8) & 1;
	r.pages = 1ull << ((h >> 16) % 10); /* 1 .. 512 pages */
	for (maxlog = 0; (1ull << (maxlog + 1)) <= r.pages &&
			 (1u << (maxlog + 1)) <= DMA_MAX_SEGS;
	     maxlog++)
		;
	r.nseg = 1u << ((h >> 24) % (maxlog + 1));
	r.piece = r.pages / r.nseg;
	r.rot = (uint32_t)((h >> 32) % r.nseg);
	r.dst = h2 % (DST_PAGES - r.pages + 1);
	r.src = (h2 >> 32) % (SRC_PAGES - r.pages + 1);
	r.pattern = guest__mix64(h2);
	return r;
}

/* Word w of SRC (the "CPU" writes it once). */
static uint64_t src_word(uint64_t seed, unsigned int dev, uint64_t w)
{
	return guest__mix64(seed ^ 0x535243ull ^ ((uint64_t)dev << 56) ^
			    (w * 0xbf58476d1ce4e5b9ull));
}

/* The span a request's scatter list covers: DST, or SRC for CSUM. */
static uint64_t span_page(const struct dreq *r)
{
	return r->op == DMA_OP_CSUM ? r->src : SRC_PAGES + r->dst;
}

/* Stream page sp of the request lies at this page of its span. */
static uint64_t span_of_stream(const struct dreq *r, uint64_t sp)
{
	uint64_t i = sp / r->piece;

	return ((i + r->rot) % r->nseg) * r->piece + sp % r->piece;
}

/* And the other way round. */
static uint64_t stream_of_span(const struct dreq *r, uint64_t p)
{
	uint64_t piece = p / r->piece;

	return ((piece + r->nseg - r->rot) % r->nseg) * r->piece +
	       p % r->piece;
}

/* Word w of the request's stream, as the engine should write it. */
static uint64_t stream_word(uint64_t seed, unsigned int dev,
			    const struct dreq *r, uint64_t w)
{
	if (r->op == DMA_OP_FILL)
		return dma_fill_word(r->pattern, w);
	return src_word(seed, dev, r->src * (PG / 8) + w);
}

static uint64_t dev_area(const struct gdev *d)
{
	return VFMIG_GUEST_DMA_BASE + d->index * VFMIG_GUEST_DMA_STRIDE;
}

static uint64_t lw(struct gdev *d, unsigned int w)
{
	return guest__lget(&d->ld->drv[w]);
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static void put64(uint8_t *p, uint64_t v)
{
	uint64_t le = htole64(v);
	memcpy(p, &le, 8);
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t le;
	memcpy(&le, p, 8);
	return le64toh(le);
}

/* ---- init ---- */

static int write_reg64(struct vfmig_guest *g, struct gdev *d, uint32_t lo,
		       uint64_t v)
{
	CHECK(guest__reg_write(g, d, lo, (uint32_t)v));
	return guest__reg_write(g, d, lo + 4, (uint32_t)(v >> 32));
}

static int dma_init(struct vfmig_guest *g, struct gdev *d)
{
	struct ledger_dev *ld = d->ld;
	uint64_t area = dev_area(d);
	uint32_t id;
	int r = vfmig_vmm_dev_reset(d->dev);

	if (r < 0)
		return guest__fail(g, "dev%u: reset: %s", d->index,
				   vfmig_vmm_strerror(r));
	CHECK(guest__reg_read(g, d, DMA_REG_ID, &id));
	if (id != DMA_MAGIC)
		return guest__fail(g, "dev%u: ID register 0x%08x", d->index,
				   id);
	if (d->nirqs < DMA_NCQ)
		return guest__fail(g, "dev%u: %u MSI-X vectors, %u needed",
				   d->index, d->nirqs, DMA_NCQ);
	CHECK(guest__pci_enable(g, d, DMA_BAR_MSIX, DMA_NCQ));
	/* SRC: written once, by the CPU. */
	uint64_t *src = (uint64_t *)(void *)guest__gpa(g, d->ram_base);
	for (uint64_t w = 0; w < SRC_PAGES * (PG / 8); w++)
		src[w] = htole64(src_word(g->seed, d->index, w));
	guest__mark_dirty(g, d->ram_base, (uint64_t)SRC_PAGES * PG);
	memset(guest__gpa(g, area), 0, VFMIG_GUEST_DMA_STRIDE);
	guest__mark_dirty(g, area, VFMIG_GUEST_DMA_STRIDE);
	CHECK(write_reg64(g, d, DMA_REG_SQ_BASE_LO, area + SQ_OFF));
	CHECK(guest__reg_write(g, d, DMA_REG_SQ_SIZE, RING));
	for (unsigned int q = 0; q < DMA_NCQ; q++) {
		uint32_t cq = DMA_REG_CQ0 + q * 0x10;
		CHECK(write_reg64(g, d, cq + DMA_CQ_BASE_LO, area + CQ_OFF(q)));
		CHECK(guest__reg_write(g, d, cq + DMA_CQ_SIZE, RING));
	}
	CHECK(guest__reg_write(g, d, DMA_REG_CTRL, DMA_CTRL_ENABLE));
	uint32_t st;
	CHECK(guest__reg_read(g, d, DMA_REG_STATUS, &st));
	if (st != DMA_STATUS_ENABLED)
		return guest__fail(g, "dev%u: enable: status %u", d->index, st);
	memset(ld, 0, sizeof(*ld));
	guest__mark_dirty(g, (uint64_t)((uint8_t *)ld - g->ram->host),
			  sizeof(*ld));
	guest__lset(g, &ld->kind, KIND_DMA);
	return 0;
}

/* ---- submission and completion ---- */

static int submit(struct vfmig_guest *g, struct gdev *d)
{
	uint64_t n = lw(d, W_SUBMITTED) + 1, area = dev_area(d);
	struct dreq r = req_of(g->seed, d->index, n);
	uint64_t slot = (n - 1) % RING;
	uint8_t *desc = guest__gpa(g, area + SQ_OFF + slot * DMA_DESC_SIZE);
	uint8_t *sgl = guest__gpa(g, area + SGL_OFF(slot));
	uint64_t base = d->ram_base + span_page(&r) * PG;

	for (uint32_t i = 0; i < r.nseg; i++) {
		uint64_t p = span_of_stream(&r, (uint64_t)i * r.piece);
		put64(sgl + i * DMA_SEG_SIZE, base + p * PG);
		put64(sgl + i * DMA_SEG_SIZE + 8, r.piece * PG);
	}
	memset(desc, 0, DMA_DESC_SIZE);
	put64(desc + DMA_DESC_SEQ, n);
	put64(desc + DMA_DESC_OP,
	      (uint64_t)r.op | (uint64_t)r.cq << 32 | (uint64_t)r.nseg << 48);
	put64(desc + DMA_DESC_SRC,
	      r.op == DMA_OP_COPY ? d->ram_base + r.src * PG
	      : r.op == DMA_OP_FILL ? r.pattern : 0);
	put64(desc + DMA_DESC_LEN, r.pages * PG);
	put64(desc + DMA_DESC_SGL, area + SGL_OFF(slot));
	guest__mark_dirty(g, area + SGL_OFF(slot), r.nseg * DMA_SEG_SIZE);
	guest__mark_dirty(g, area + SQ_OFF + slot * DMA_DESC_SIZE,
			  DMA_DESC_SIZE);
	guest__lset(g, &d->ld->drv[W_SUBMITTED], n);
	guest__lset(g, &d->ld->doorbells, n); /* for the stats */
	return guest__reg_write(g, d, DMA_REG_SQ_TAIL, (uint32_t)n);
}

/* The checksum the engine must find for a CSUM request. */
static uint64_t expected_csum(struct vfmig_guest *g, struct gdev *d,
			      const struct dreq *r)
{
	uint64_t h = DMA_CSUM_INIT;

	for (uint64_t sp = 0; sp < r->pages; sp++) {
		uint64_t page = r->src + span_of_stream(r, sp);
		for (uint64_t w = 0; w < PG / 8; w++)
			h = dma_csum_word(h, src_word(g->seed, d->index,
						      page * (PG / 8) + w));
	}
	return h;
}

/*
 * Look at the completion record that request c (the next to complete)
 * must have, given *reaped[] records already taken per queue. 1: it is
 * there and right (reaped[] counted on), 0: not written yet, -EIO: wrong
 * (named in g->msg).
 */
static int match(struct vfmig_guest *g, struct gdev *d, uint64_t c,
		 uint64_t reaped[DMA_NCQ], uint64_t *bytes)
{
	struct dreq r = req_of(g->seed, d->index, c);
	uint64_t idx = reaped[r.cq] + 1;
	const uint8_t *e = guest__gpa(g, dev_area(d) + CQ_OFF(r.cq) +
					      ((idx - 1) % RING) * DMA_CPL_SIZE);
	uint8_t rec[DMA_CPL_SIZE];

	/* INDEX first: the device writes it after the rest (dma_hw.h), so
	 * the fields read after a matching INDEX are this completion's. */
	uint64_t seen = __atomic_load_n((const uint64_t *)(const void *)
					(e + DMA_CPL_INDEX), __ATOMIC_ACQUIRE);
	if (le64toh(seen) != idx)
		return 0;
	memcpy(rec, e, sizeof(rec));
	if (get64(rec + DMA_CPL_INDEX) != idx)
		return 0;
	uint64_t seq = get64(rec + DMA_CPL_SEQ);
	uint32_t status = (uint32_t)get64(rec + DMA_CPL_STATUS);
	uint32_t op = (uint32_t)(get64(rec + DMA_CPL_STATUS) >> 32);
	uint64_t result = get64(rec + DMA_CPL_RESULT);
	if (seq < c)
		return guest__fail(g, "dev%u: queue %u completion %llu is for "
				   "request %llu, which had completed already "
				   "(done twice)", d->index, r.cq,
				   (unsigned long long)idx,
				   (unsigned long long)seq);
	if (seq != c)
		return guest__fail(g, "dev%u: queue %u completion %llu is for "
				   "request %llu, request %llu never completed "
				   "(lost)", d->index, r.cq,
				   (unsigned long long)idx,
				   (unsigned long long)seq,
				   (unsigned long long)c);
	if (status || op != r.op)
		return guest__fail(g, "dev%u: request %llu: status %u, op %u "
				   "(op %u asked)", d->index,
				   (unsigned long long)c, status, op, r.op);
	uint64_t want = r.op == DMA_OP_CSUM ? expected_csum(g, d, &r)
					    : r.pages * PG;
	if (result != want)
		return guest__fail(g, "dev%u: request %llu (op %u, %llu pages): "
				   "result 0x%llx, expected 0x%llx", d->index,
				   (unsigned long long)c, r.op,
				   (unsigned long long)r.pages,
				   (unsigned long long)result,
				   (unsigned long long)want);
	reaped[r.cq] = idx;
	*bytes += r.pages * PG;
	return 1;
}

/* Take every completion that is there, in seq order, into the ledger. */
static int reap(struct vfmig_guest *g, struct gdev *d)
{
	uint64_t reaped[DMA_NCQ] = { lw(d, W_REAPED0), lw(d, W_REAPED1) };
	int m;

	for (uint64_t c = lw(d, W_COMPLETED) + 1; c <= lw(d, W_SUBMITTED);
	     c++) {
		uint64_t bytes = lw(d, W_BYTES);
		m = match(g, d, c, reaped, &bytes);
		if (m < 0)
			return m;
		if (m == 0)
			break;
		guest__lset(g, &d->ld->drv[W_REAPED0 + req_of(g->seed, d->index,
							     c).cq],
			    reaped[req_of(g->seed, d->index, c).cq]);
		guest__lset(g, &d->ld->drv[W_BYTES], bytes);
		if (req_of(g->seed, d->index, c).op == DMA_OP_CSUM) {
			guest__lset(g, &d->ld->drv[W_CSUMS], lw(d, W_CSUMS) + 1);
			guest__lset(g, &d->ld->csums, lw(d, W_CSUMS));
		}
		guest__lset(g, &d->ld->drv[W_COMPLETED], c);
		d->drv_local[0] = (uint64_t)now_ns(); /* progress */
	}
	return 0;
}

static int dma_iterate(struct vfmig_guest *g, struct gdev *d, uint64_t it)
{
	uint64_t n;
	(void)it;

	/* The vectors only wake a driver up: take what they counted. */
	for (unsigned int q = 0; q < DMA_NCQ; q++) {
		struct pollfd p = { .fd = d->irq_fds[q], .events = POLLIN };
		if (poll(&p, 1, 0) == 1 &&
		    read(d->irq_fds[q], &n, sizeof(n)) < 0)
			return guest__fail(g, "dev%u: vector %u: read failed",
					   d->index, q);
	}
	CHECK(reap(g, d));
	uint64_t out = lw(d, W_SUBMITTED) - lw(d, W_COMPLETED);
	int64_t t = now_ns();
	/* A pause (a migration, a check) is not the engine's stall. */
	if (out == 0 || !d->drv_local[0] ||
	    t - (int64_t)d->drv_local[1] > 1000000000ll)
		d->drv_local[0] = (uint64_t)t;
	d->drv_local[1] = (uint64_t)t;
	if (out && t - (int64_t)d->drv_local[0] > STALL_NS)
		return guest__fail(g, "dev%u: request %llu not completed after "
				   "%lld s (lost)", d->index,
				   (unsigned long long)lw(d, W_COMPLETED) + 1,
				   STALL_NS / 1000000000ll);
	for (unsigned int k = 0; k < SUBMIT_PER_ITER && out < OUTSTANDING;
	     k++, out++)
		CHECK(submit(g, d));
	return 0;
}

/* ---- verification ---- */

/* With the VM running, wait (bounded) until the engine has finished
 * everything submitted; then, or at once when the VM is stopped (its
 * devices may be too), read DONE. */
static int settle(struct vfmig_guest *g, struct gdev *d, uint32_t *done)
{
	for (int ms = 0; ms < SETTLE_MS; ms++) {
		CHECK(guest__reg_read(g, d, DMA_REG_DONE, done));
		if (*done == (uint32_t)lw(d, W_SUBMITTED) ||
		    !guest__vm_running(g))
			return 0;
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	return 0;
}

/* The request that last wrote each DST page, among [1, upto]: 0 = none. */
static uint64_t *last_writers(struct vfmig_guest *g, struct gdev *d,
			      uint64_t upto)
{
	uint64_t *wr = calloc(DST_PAGES, sizeof(*wr)), left = DST_PAGES;

	for (uint64_t n = upto; wr && n >= 1 && left; n--) {
		struct dreq r = req_of(g->seed, d->index, n);
		if (r.op == DMA_OP_CSUM)
			continue;
		for (uint64_t p = r.dst; p < r.dst + r.pages; p++)
			if (!wr[p]) {
				wr[p] = n;
				left--;
			}
	}
	return wr;
}

/* Every DST page holds what its last writer wrote (zero if none), except
 * pages of requests still in flight (after..submitted), which a stopped
 * engine may have written in part. */
static int verify_dst(struct vfmig_guest *g, struct gdev *d, uint64_t upto)
{
	uint64_t *wr = last_writers(g, d, upto);
	bool *busy = calloc(DST_PAGES, sizeof(*busy));
	int r = 0;

	if (!wr || !busy) {
		free(wr);
		free(busy);
		return guest__fail(g, "out of memory");
	}
	for (uint64_t n = upto + 1; n <= lw(d, W_SUBMITTED); n++) {
		struct dreq q = req_of(g->seed, d->index, n);
		for (uint64_t p = q.dst; q.op != DMA_OP_CSUM &&
					 p < q.dst + q.pages; p++)
			busy[p] = true;
	}
	for (uint64_t p = 0; p < DST_PAGES && !r; p++) {
		if (busy[p])
			continue;
		struct dreq q = req_of(g->seed, d->index, wr[p] ? wr[p] : 1);
		uint64_t sp = wr[p] ? stream_of_span(&q, p - q.dst) : 0;
		uint64_t addr = d->ram_base + (SRC_PAGES + p) * PG;
		const uint64_t *m = (const uint64_t *)(const void *)guest__gpa(
			g, addr);
		for (uint64_t w = 0; w < PG / 8; w++) {
			uint64_t want = wr[p] ? stream_word(g->seed, d->index,
							    &q, sp * (PG / 8) + w)
					      : 0;
			if (le64toh(m[w]) == want)
				continue;
			r = guest__fail(g, "dev%u: DMA result at 0x%llx word "
					"%llu: 0x%016llx, %s 0x%016llx",
					d->index, (unsigned long long)addr,
					(unsigned long long)w,
					(unsigned long long)le64toh(m[w]),
					wr[p] ? "its last request wrote"
					      : "never written, so",
					(unsigned long long)want);
			if (wr[p])
				snprintf(g->msg + strlen(g->msg),
					 sizeof(g->msg) - strlen(g->msg),
					 " (request %llu)",
					 (unsigned long long)wr[p]);
			break;
		}
	}
	free(wr);
	free(busy);
	return r;
}

static int verify_src(struct vfmig_guest *g, struct gdev *d)
{
	const uint64_t *m = (const uint64_t *)(const void *)guest__gpa(
		g, d->ram_base);

	for (uint64_t w = 0; w < SRC_PAGES * (PG / 8); w++)
		if (le64toh(m[w]) != src_word(g->seed, d->index, w))
			return guest__fail(g, "dev%u: DMA source at 0x%llx "
					   "changed", d->index,
					   (unsigned long long)(d->ram_base +
								w * 8));
	return 0;
}

/*
 * Exactly once: the completions the ledger took, then those the rings hold
 * beyond it (read only), match requests 1, 2, ... in order with no gap and
 * no repeat; the engine's DONE and per-queue counts equal what the rings
 * show; with the VM running nothing submitted is left undone. Then the
 * memory: SRC unchanged, DST what the completed requests wrote.
 */
static int dma_verify(struct vfmig_guest *g, struct gdev *d)
{
	uint64_t reaped[DMA_NCQ] = { lw(d, W_REAPED0), lw(d, W_REAPED1) };
	uint64_t c = lw(d, W_COMPLETED), bytes = 0, sub = lw(d, W_SUBMITTED);
	uint32_t done, head, count;
	int m = 0;

	if (c > sub)
		return guest__fail(g, "dev%u: ledger: %llu requests completed, "
				   "%llu submitted", d->index,
				   (unsigned long long)c,
				   (unsigned long long)sub);
	CHECK(settle(g, d, &done));
	/* DONE was read first: at least that many records are there, in
	 * order (an engine still running may have added some since). */
	while (c < sub && (uint32_t)c != done &&
	       (m = match(g, d, c + 1, reaped, &bytes)) == 1)
		c++;
	if (m < 0)
		return m;
	if (done != (uint32_t)c)
		return guest__fail(g, "dev%u: the engine counts %u completions, "
				   "the rings hold %llu in order (lost or "
				   "repeated)", d->index, done,
				   (unsigned long long)c);
	/* Settled: nothing moves, so the rest must agree exactly. */
	for (unsigned int q = 0; c == sub && q < DMA_NCQ; q++) {
		CHECK(guest__reg_read(g, d, DMA_REG_CQ0 + q * 0x10 +
						    DMA_CQ_COUNT, &count));
		if (count != (uint32_t)reaped[q])
			return guest__fail(g, "dev%u: queue %u counts %u "
					   "completions, the ring holds %llu",
					   d->index, q, count,
					   (unsigned long long)reaped[q]);
	}
	m = c == sub ? match(g, d, c + 1, reaped, &bytes) : 0;
	if (m < 0)
		return m; /* a record of a request done twice */
	if (m > 0)
		return guest__fail(g, "dev%u: a completion record for request "
				   "%llu, never submitted", d->index,
				   (unsigned long long)sub + 1);
	CHECK(guest__reg_read(g, d, DMA_REG_SQ_HEAD, &head));
	if ((uint32_t)(head - (uint32_t)c) > (uint32_t)(sub - c))
		return guest__fail(g, "dev%u: ring head %u, %llu submitted, "
				   "%llu completed", d->index, head,
				   (unsigned long long)sub,
				   (unsigned long long)c);
	if (c < sub && guest__vm_running(g))
		return guest__fail(g, "dev%u: request %llu not completed after "
				   "%d ms with the VM running (lost)",
				   d->index, (unsigned long long)c + 1,
				   SETTLE_MS);
	CHECK(verify_src(g, d));
	return verify_dst(g, d, c);
}

const struct vfmig_guest_driver vfmig_guest_dma_driver = {
	.name = "dma",
	.vendor = DMA_VENDOR_ID,
	.device = DMA_DEVICE_ID,
	.kind = KIND_DMA,
	.ram_reserve = RESERVE,
	.init = dma_init,
	.iterate = dma_iterate,
	.verify = dma_verify,
};
