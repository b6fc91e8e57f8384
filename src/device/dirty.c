/* SPDX-License-Identifier: MIT */
/*
 * DMA dirty logging (DEVICE_FEATURE DMA_LOGGING_START / STOP / REPORT).
 *
 * The log is a list of non-overlapping, page-aligned IOVA ranges, each
 * with a bitmap (one bit per logging page, LSB first in u64 words). START
 * with ranges logs exactly those; START with num_ranges 0 logs "every
 * write": one range per DMA window, kept in step with DMA_MAP/DMA_UNMAP
 * while logging (a window unmapped while logging takes its bits with it, so
 * a later REPORT over it fails and the client treats it as all dirty, as
 * the VFIO DMA-logging rules ask). Only device writes through a mapped
 * window are marked (dma.c calls dev_dlog_mark); writes the library
 * performs with DMA_WRITE messages are seen, and tracked, by the client.
 *
 * The region-based interface (mig_region.c) uses the same log: LOGGING
 * starts "every window" at 4 KiB (dev_dlog_start_all) and the bitmap
 * region is filled with dev_dlog_fill.
 *
 * Locking: the entry points the library thread calls (start, stop,
 * report, fill) take dev->dma_lock; mark and the window hooks are called
 * by dma.c with it held, so that a write from a device thread and its
 * mark are one step that a REPORT cannot fall between.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static bool pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

static void ranges_free(struct dev_dlog *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->r[i].bits);
	free(l->r);
	l->r = NULL;
	l->n = l->cap = 0;
}

static uint64_t total_pages(const struct dev_dlog *l)
{
	uint64_t t = 0;

	for (size_t i = 0; i < l->n; i++)
		t += l->r[i].len / l->pgsize;
	return t;
}

/* Append [iova, iova + len), page aligned and non-empty. */
static int range_add(struct dev_dlog *l, uint64_t iova, uint64_t len)
{
	uint64_t pages = len / l->pgsize;
	uint64_t *bits;

	if (pages > DEV_LOG_MAX_PAGES - total_pages(l))
		return -E2BIG;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 8;
		void *p = realloc(l->r, cap * sizeof(*l->r));
		if (!p)
			return -ENOMEM;
		l->r = p;
		l->cap = cap;
	}
	bits = calloc((size_t)((pages + 63) / 64), sizeof(uint64_t));
	if (!bits)
		return -ENOMEM;
	l->r[l->n++] = (struct dev_log_range){ iova, len, bits };
	return 0;
}

/* Log a window, rounded out to logging pages (windows are 4 KiB aligned,
 * the logging page may be larger): add ranges for the parts no existing
 * range covers yet (neighbouring windows may share a logging page). */
static int window_range(struct dev_dlog *l, uint64_t iova, uint64_t size)
{
	uint64_t start = iova & ~(l->pgsize - 1);
	uint64_t end = (iova + size - 1) | (l->pgsize - 1);

	if (end < iova)
		return -EOVERFLOW;
	while (start <= end) {
		uint64_t stop = end, next_start;
		bool covered = false;

		for (size_t i = 0; i < l->n; i++) {
			const struct dev_log_range *r = &l->r[i];
			uint64_t rend = r->iova + r->len - 1;
			if (start >= r->iova && start <= rend) {
				stop = rend < end ? rend : end;
				covered = true;
				break;
			}
			if (r->iova > start && r->iova - 1 < stop)
				stop = r->iova - 1;
		}
		if (!covered) {
			int e = range_add(l, start, stop - start + 1);
			if (e < 0)
				return e;
		}
		if (stop == UINT64_MAX)
			break;
		next_start = stop + 1;
		start = next_start;
	}
	return 0;
}

static int cmp_range(const void *a, const void *b)
{
	const struct vfw_dma_logging_range *x = a, *y = b;

	return x->iova < y->iova ? -1 : x->iova > y->iova;
}

/* Check the START ranges (VFIO DMA-logging rules); sorts the copy. */
static int check_ranges(struct vfw_dma_logging_range *rg, uint32_t n,
			uint64_t pg)
{
	for (uint32_t i = 0; i < n; i++) {
		if (!rg[i].length || (rg[i].iova & (pg - 1)) ||
		    (rg[i].length & (pg - 1)) ||
		    rg[i].iova + rg[i].length - 1 < rg[i].iova)
			return -EINVAL;
	}
	qsort(rg, n, sizeof(*rg), cmp_range);
	for (uint32_t i = 1; i < n; i++)
		if (rg[i].iova <= rg[i - 1].iova + rg[i - 1].length - 1)
			return -EINVAL;
	return 0;
}

/* START's page size is a hint (vfio-user, like the kernel's uAPI): the
 * device logs at the nearest size it supports, a power of two from
 * 4 KiB to 1 GiB (the hint rounded up, or 1 GiB), and the reply names it.
 * The ranges must be aligned to the size chosen. */
static uint64_t choose_pgsize(uint64_t hint)
{
	uint64_t p = DEV_PAGE_SIZE;

	while (p < hint && p < (1ull << 30))
		p <<= 1;
	return p;
}

/* Turn logging on: the checked, sorted ranges rg, or every window when
 * n is 0. */
static int start(struct vfmig_dev *dev, uint64_t pgsize,
		 const struct vfw_dma_logging_range *rg, uint32_t n)
{
	struct dev_dlog *l = &dev->dlog;
	int r = 0;

	l->pgsize = pgsize;
	l->all = n == 0;
	for (uint32_t i = 0; r == 0 && i < n; i++)
		r = range_add(l, rg[i].iova, rg[i].length);
	for (size_t i = 0; r == 0 && l->all && i < dev->dma.n; i++)
		r = window_range(l, dev->dma.win[i].iova, dev->dma.win[i].size);
	if (r < 0) {
		ranges_free(l);
		return r;
	}
	l->on = true;
	DEV_LOG(dev, VFW_LOG_INFO, "DMA logging on: page %llu, %zu range(s)%s",
		(unsigned long long)l->pgsize, l->n,
		l->all ? " (every window)" : "");
	return 0;
}

static int start_req(struct vfmig_dev *dev, const uint8_t *data, size_t len,
		     uint64_t *pgsize_out)
{
	struct vfw_dma_logging_start st;
	struct vfw_dma_logging_range *rg = NULL;
	int r = 0;

	if (len < sizeof(st))
		return -EINVAL;
	memcpy(&st, data, sizeof(st));
	st.page_size = choose_pgsize(st.page_size);
	if (st.num_ranges > DEV_LOG_MAX_RANGES)
		return -E2BIG;
	if (len - sizeof(st) < (size_t)st.num_ranges * sizeof(*rg))
		return -EINVAL;
	if (dev->dlog.on)
		return -EBUSY;
	if (st.num_ranges) {
		rg = malloc(st.num_ranges * sizeof(*rg));
		if (!rg)
			return -ENOMEM;
		memcpy(rg, data + sizeof(st), st.num_ranges * sizeof(*rg));
		r = check_ranges(rg, st.num_ranges, st.page_size);
	}
	if (r == 0)
		r = start(dev, st.page_size, rg, st.num_ranges);
	free(rg);
	if (r == 0)
		*pgsize_out = dev->dlog.pgsize;
	return r;
}

int dev_dlog_start(struct vfmig_dev *dev, const uint8_t *data, size_t len,
		   uint64_t *pgsize_out)
{
	int r;

	pthread_mutex_lock(&dev->dma_lock);
	r = start_req(dev, data, len, pgsize_out);
	pthread_mutex_unlock(&dev->dma_lock);
	return r;
}

int dev_dlog_start_all(struct vfmig_dev *dev, uint64_t pgsize)
{
	int r = -EBUSY;

	if (!pow2(pgsize) || pgsize < DEV_PAGE_SIZE || pgsize > (1ull << 30))
		return -EINVAL;
	pthread_mutex_lock(&dev->dma_lock);
	if (!dev->dlog.on)
		r = start(dev, pgsize, NULL, 0);
	pthread_mutex_unlock(&dev->dma_lock);
	return r;
}

void dev_dlog_stop(struct vfmig_dev *dev)
{
	bool was;

	pthread_mutex_lock(&dev->dma_lock);
	was = dev->dlog.on;
	ranges_free(&dev->dlog);
	dev->dlog.on = false;
	pthread_mutex_unlock(&dev->dma_lock);
	if (was)
		DEV_LOG(dev, VFW_LOG_INFO, "DMA logging off");
}

void dev_dlog_mark(struct vfmig_dev *dev, uint64_t iova, uint64_t len)
{
	struct dev_dlog *l = &dev->dlog;

	if (!l->on || !len)
		return;
	for (size_t i = 0; i < l->n; i++) {
		struct dev_log_range *r = &l->r[i];
		uint64_t a = iova > r->iova ? iova : r->iova;
		uint64_t rend = r->iova + r->len - 1, end = iova + len - 1;

		if (end < iova)
			end = UINT64_MAX;
		if (end > rend)
			end = rend;
		if (a > end)
			continue;
		for (uint64_t p = (a - r->iova) / l->pgsize;
		     p <= (end - r->iova) / l->pgsize; p++)
			r->bits[p / 64] |= 1ull << (p % 64);
	}
}

int dev_dlog_window_added(struct vfmig_dev *dev, uint64_t iova, uint64_t size)
{
	if (!dev->dlog.on || !dev->dlog.all)
		return 0;
	return window_range(&dev->dlog, iova, size);
}

/* Drop the ranges the window overlaps that no other window still uses. */
void dev_dlog_window_removed(struct vfmig_dev *dev, uint64_t iova,
			     uint64_t size)
{
	struct dev_dlog *l = &dev->dlog;
	uint64_t end = iova + size - 1;

	if (!l->on || !l->all)
		return;
	for (size_t i = 0; i < l->n;) {
		struct dev_log_range *r = &l->r[i];
		uint64_t rend = r->iova + r->len - 1;
		bool used = false;

		for (size_t w = 0; !used && w < dev->dma.n; w++) {
			const struct dev_dma_window *d = &dev->dma.win[w];
			if (d->iova == iova && d->size == size)
				continue; /* the window going away */
			used = d->iova <= rend && r->iova <= d->iova + d->size - 1;
		}
		if (used || iova > rend || r->iova > end) {
			i++;
			continue;
		}
		free(r->bits);
		memmove(r, r + 1, (l->n - i - 1) * sizeof(*r));
		l->n--;
	}
}

/* Report [a, b] (inclusive, inside range r) into bm at report page size ps
 * relative to base, clearing the log bits. */
static void report_range(struct dev_dlog *l, struct dev_log_range *r,
			 uint64_t a, uint64_t b, uint64_t base, uint64_t ps,
			 uint64_t *bm)
{
	uint64_t first = (a - r->iova) / l->pgsize;
	uint64_t last = (b - r->iova) / l->pgsize;

	for (uint64_t p = first; p <= last; p++) {
		uint64_t *w = &r->bits[p / 64];
		if (!*w && p % 64 == 0 && p + 63 <= last) {
			p += 63; /* skip a clean word */
			continue;
		}
		if (!(*w & (1ull << (p % 64))))
			continue;
		/* The logging page [pa, pb] within [a, b] */
		uint64_t pa = r->iova + p * l->pgsize, pb = pa + l->pgsize - 1;
		if (pa < a)
			pa = a;
		if (pb > b)
			pb = b;
		for (uint64_t q = (pa - base) / ps; q <= (pb - base) / ps; q++)
			bm[q / 64] |= 1ull << (q % 64);
		/* Clear only a logging page the report covers entirely. */
		if (pa == r->iova + p * l->pgsize &&
		    pb == r->iova + (p + 1) * l->pgsize - 1)
			*w &= ~(1ull << (p % 64));
	}
}

/* Report [iova, end] from every range that overlaps it. */
static void report_all(struct dev_dlog *l, uint64_t iova, uint64_t end,
		       uint64_t ps, uint64_t *bm)
{
	for (size_t i = 0; i < l->n; i++) {
		struct dev_log_range *r = &l->r[i];
		uint64_t a = iova > r->iova ? iova : r->iova;
		uint64_t b = r->iova + r->len - 1 < end ? r->iova + r->len - 1
							: end;
		if (a <= b)
			report_range(l, r, a, b, iova, ps, bm);
	}
}

static int report_req(struct vfmig_dev *dev,
		      const struct vfw_dma_logging_report *rq,
		      uint64_t max_bytes, uint64_t **bitmap, size_t *bytes)
{
	struct dev_dlog *l = &dev->dlog;
	uint64_t end, covered = 0, nbits, nbytes;
	uint64_t *bm;

	if (!l->on)
		return -EINVAL;
	if (!pow2(rq->page_size) || rq->page_size < DEV_PAGE_SIZE ||
	    !rq->length || (rq->iova & (rq->page_size - 1)))
		return -EINVAL;
	end = rq->iova + rq->length - 1;
	if (end < rq->iova)
		return -EOVERFLOW;
	nbits = rq->length / rq->page_size + !!(rq->length % rq->page_size);
	nbytes = (nbits + 63) / 64 * 8;
	if (nbytes > max_bytes)
		return -E2BIG;
	/* The whole range must be logged. */
	for (size_t i = 0; i < l->n; i++) {
		const struct dev_log_range *r = &l->r[i];
		uint64_t a = rq->iova > r->iova ? rq->iova : r->iova;
		uint64_t b = r->iova + r->len - 1 < end ? r->iova + r->len - 1
							: end;
		if (a <= b)
			covered += b - a + 1;
	}
	if (covered != rq->length)
		return -EINVAL;
	bm = calloc(1, nbytes ? nbytes : 8);
	if (!bm)
		return -ENOMEM;
	report_all(l, rq->iova, end, rq->page_size, bm);
	*bitmap = bm;
	*bytes = (size_t)nbytes;
	return 0;
}

int dev_dlog_report(struct vfmig_dev *dev, const struct vfw_dma_logging_report *rq,
		    uint64_t max_bytes, uint64_t **bitmap, size_t *bytes)
{
	int r;

	pthread_mutex_lock(&dev->dma_lock);
	r = report_req(dev, rq, max_bytes, bitmap, bytes);
	pthread_mutex_unlock(&dev->dma_lock);
	return r;
}

int dev_dlog_fill(struct vfmig_dev *dev, uint64_t iova, uint64_t pages,
		  uint64_t *bm)
{
	const uint64_t ps = DEV_PAGE_SIZE;
	int r = -EINVAL;

	if (!pages || (iova & (ps - 1)) || pages > UINT64_MAX / ps ||
	    pages * ps - 1 > UINT64_MAX - iova)
		return -EINVAL;
	pthread_mutex_lock(&dev->dma_lock);
	if (dev->dlog.on) {
		report_all(&dev->dlog, iova, iova + (pages * ps - 1), ps, bm);
		r = 0;
	}
	pthread_mutex_unlock(&dev->dma_lock);
	return r;
}
