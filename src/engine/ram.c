/* SPDX-License-Identifier: MIT */
/* Guest RAM dirty tracking and RAM_PAGES transfer. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ram.h"

/* Data bytes per RAM record: bounds what the reader buffers and, in streams
 * before 1.3 (RAM_PAGES), the staging copy the writer makes. */
#define RECORD_DATA_MAX (1u << 20)
#define RECORD_RUNS_MAX 256u
/* Bitmap words whose bits vfmig_ram_send takes at once (16 MiB of 4 KiB
 * pages): what the file says about their pages after the take holds for
 * all of them, so one SEEK_DATA/SEEK_HOLE pair serves a whole extent. */
#define TAKE_WORDS 64u
/* What the allocating thread asks fallocate for at once: small enough that
 * a stop is noticed soon and that a pwrite of the receiving thread, which
 * waits for the file's lock while fallocate holds it, waits little. */
#define PREALLOC_CHUNK (2ull << 20)

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

/* The pages zero runs left as holes (a bit per page, allocated at the
 * first run), and untracked when that bitmap could not be had (the
 * allocating thread then stops); both under mu, which the allocating
 * thread holds around each piece it allocates and zero_range around its
 * punch. */
struct vfmig_ram_zeroed {
	pthread_mutex_t mu;
	uint64_t *bits;
	bool untracked;
};

struct vfmig_ram_prealloc {
	pthread_t thread;
	atomic_bool stop;
	struct vfmig_ram *r; /* for its zeroed pages and their lock */
	int fd;
	uint8_t *host; /* the block's mapping of fd */
	unsigned n;
	uint64_t ext[][2];
};

static bool pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

int vfmig_ram_init(struct vfmig_ram *r, const char *name, void *host,
		   uint64_t size, uint32_t page_size)
{
	memset(r, 0, sizeof(*r));
	if (!name || strlen(name) >= sizeof(r->name) || !host ||
	    !pow2(page_size) || page_size < 512 || page_size > (1u << 30) ||
	    size == 0 || size % page_size)
		return -EINVAL;
	r->npages = size / page_size;
	r->dirty = calloc((r->npages + 63) / 64, sizeof(uint64_t));
	r->zeroed = calloc(1, sizeof(*r->zeroed));
	if (!r->dirty || !r->zeroed) {
		free((void *)r->dirty);
		free(r->zeroed);
		r->dirty = NULL;
		r->zeroed = NULL;
		return -ENOMEM;
	}
	pthread_mutex_init(&r->zeroed->mu, NULL);
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->fd = -1;
	r->host = host;
	r->size = size;
	r->page_size = page_size;
	return 0;
}

static void prealloc_stop(struct vfmig_ram *r, bool wait_only)
{
	struct vfmig_ram_prealloc *p = r->prealloc;

	if (!p)
		return;
	if (!wait_only)
		atomic_store(&p->stop, true);
	pthread_join(p->thread, NULL);
	free(p);
	r->prealloc = NULL;
}

void vfmig_ram_fini(struct vfmig_ram *r)
{
	prealloc_stop(r, false);
	free((void *)r->dirty);
	r->dirty = NULL;
	free((void *)r->written);
	r->written = NULL;
	if (r->zeroed) {
		pthread_mutex_destroy(&r->zeroed->mu);
		free(r->zeroed->bits);
		free(r->zeroed);
		r->zeroed = NULL;
	}
}

void vfmig_ram_set_fd(struct vfmig_ram *r, int fd)
{
	r->fd = fd;
}

int vfmig_ram_extent(const struct vfmig_ram *r, uint64_t off, uint64_t *len)
{
	off_t d, h;

	*len = r->size - off;
	if (r->fd < 0)
		return 1;
	d = lseek(r->fd, (off_t)off, SEEK_DATA);
	if (d < 0)
		return errno == ENXIO ? 0 : 1; /* no data after off; can't tell */
	if ((uint64_t)d > off) {
		if ((uint64_t)d - off < *len)
			*len = (uint64_t)d - off;
		return 0;
	}
	h = lseek(r->fd, (off_t)off, SEEK_HOLE);
	if (h > (off_t)off && (uint64_t)h - off < *len)
		*len = (uint64_t)h - off;
	return 1;
}

void vfmig_ram_known_note(struct vfmig_ram_known *k, uint64_t start,
			  uint64_t end)
{
	if (end <= start || (start == k->big_start && end == k->big_end))
		return; /* nothing, or known already: keep the other one */
	if (end - start > k->big_end - k->big_start) {
		k->last_start = k->big_start;
		k->last_end = k->big_end;
		k->big_start = start;
		k->big_end = end;
	} else {
		k->last_start = start;
		k->last_end = end;
	}
}

static void set_pages(struct vfmig_ram *r, uint64_t first, uint64_t last)
{
	for (uint64_t p = first; p <= last;) {
		uint64_t word = p / 64, bit = p % 64;
		uint64_t n = 64 - bit;
		if (n > last - p + 1)
			n = last - p + 1;
		uint64_t mask = (n == 64 ? ~0ull : ((1ull << n) - 1)) << bit;
		atomic_fetch_or_explicit(&r->dirty[word], mask,
					 memory_order_release);
		p += n;
	}
}

void vfmig_ram_mark_dirty(struct vfmig_ram *r, uint64_t off, uint64_t len)
{
	if (len == 0 || off >= r->size)
		return;
	if (len > r->size - off)
		len = r->size - off;
	set_pages(r, off / r->page_size, (off + len - 1) / r->page_size);
}

void vfmig_ram_mark_all(struct vfmig_ram *r)
{
	set_pages(r, 0, r->npages - 1);
}

int vfmig_ram_merge_bitmap(struct vfmig_ram *r, uint64_t off,
			   uint64_t page_size, const uint64_t *bm,
			   uint64_t npages)
{
	if (!pow2(page_size) || page_size < 512)
		return -EINVAL;
	if (npages == 0)
		return 0;
	/* The last reported page must start inside the block. */
	if (off >= r->size || npages - 1 > (r->size - off - 1) / page_size)
		return -ERANGE;
	for (uint64_t i = 0; i < npages; i++) {
		if (!(bm[i / 64] & (1ull << (i % 64))))
			continue;
		vfmig_ram_mark_dirty(r, off + i * page_size, page_size);
	}
	return 0;
}

uint64_t vfmig_ram_dirty_pages(const struct vfmig_ram *r)
{
	uint64_t n = 0;

	for (uint64_t w = 0; w < (r->npages + 63) / 64; w++)
		n += (uint64_t)__builtin_popcountll(atomic_load_explicit(
			&r->dirty[w], memory_order_relaxed));
	return n;
}

static bool page_is_zero(const uint8_t *p, uint32_t size)
{
	const uint64_t *q = (const uint64_t *)(const void *)p;

	for (uint32_t i = 0; i < size / 8; i++)
		if (q[i])
			return false;
	return true;
}

/* Collects runs for one record, then writes it. */
struct batch {
	struct vfmig_ram *r;
	struct vfmig_stream_writer *w;
	struct vfmig_stream_ram_run runs[RECORD_RUNS_MAX];
	uint32_t nruns;
	uint64_t data; /* data bytes in the batch */
	struct vfmig_ram_stats *st;
	/* [hole_start, hole_end) was a hole when the file was asked, after
	 * the dirty bits of the pages being sent were taken. */
	uint64_t hole_start, hole_end;
};

/*
 * Page at addr is in a hole of the block's file (so it is zero). A hole
 * counts only if the file said so after the page's dirty bit was taken: a
 * write into it after the question marked the page dirty again. Data
 * extents are remembered for good (r->known): the largest one apart, so
 * that a few small extents below a large one (a guest's first pages) do
 * not make every pass ask about the large one again, a scan of all its
 * pages each time.
 */
static bool in_hole(struct batch *b, uint64_t addr)
{
	struct vfmig_ram *r = b->r;
	struct vfmig_ram_known *k = &r->known;
	uint64_t len;

	if (r->fd < 0 || (addr >= k->big_start && addr < k->big_end) ||
	    (addr >= k->last_start && addr < k->last_end))
		return false;
	if (addr >= b->hole_start && addr < b->hole_end)
		return true;
	if (vfmig_ram_extent(r, addr, &len)) {
		vfmig_ram_known_note(k, addr, addr + len);
		return false;
	}
	b->hole_start = addr;
	b->hole_end = addr + len;
	return true;
}

static int flush(struct batch *b)
{
	struct vfmig_stream_ram_pages rp = {
		.block = b->r->name,
		.page_size = b->r->page_size,
		.nruns = b->nruns,
		.runs = b->runs,
		.in_file = b->r->fd >= 0,
		.file_fd = b->r->fd,
	};
	int rc;

	if (!b->nruns)
		return 0;
	rc = vfmig_stream_write_ram_pages(b->w, &rp);
	if (rc < 0) {
		/* Put the pages back so nothing is lost. */
		for (uint32_t i = 0; i < b->nruns; i++)
			vfmig_ram_mark_dirty(b->r, b->runs[i].addr,
					     (uint64_t)b->runs[i].npages *
						     b->r->page_size);
		b->nruns = 0;
		b->data = 0;
		return rc;
	}
	b->st->records++;
	b->nruns = 0;
	b->data = 0;
	return 0;
}

/* Add page p to the batch, extending the last run when possible. */
static int add_page(struct batch *b, uint64_t p)
{
	struct vfmig_ram *r = b->r;
	uint64_t addr = p * r->page_size;
	bool hole = in_hole(b, addr);
	bool zero = hole || page_is_zero(r->host + addr, r->page_size);
	struct vfmig_stream_ram_run *last =
		b->nruns ? &b->runs[b->nruns - 1] : NULL;
	int rc;

	if (!zero && b->data + r->page_size > RECORD_DATA_MAX) {
		rc = flush(b);
		if (rc < 0)
			return rc;
		last = NULL;
	}
	if (last && last->zero == zero &&
	    last->addr + (uint64_t)last->npages * r->page_size == addr &&
	    last->npages < UINT32_MAX) {
		last->npages++;
	} else {
		if (b->nruns == RECORD_RUNS_MAX) {
			rc = flush(b);
			if (rc < 0)
				return rc;
		}
		b->runs[b->nruns++] = (struct vfmig_stream_ram_run){
			.addr = addr,
			.npages = 1,
			.zero = zero,
			.data = zero ? NULL : r->host + addr,
		};
	}
	b->st->pages++;
	b->st->hole_pages += hole;
	if (zero) {
		b->st->zero_pages++;
	} else {
		b->data += r->page_size;
		b->st->bytes += r->page_size;
	}
	return 0;
}

int vfmig_ram_send(struct vfmig_ram *r, struct vfmig_stream_writer *w,
		   uint64_t budget, struct vfmig_ram_stats *st)
{
	struct batch *b = calloc(1, sizeof(*b));
	uint64_t start = st->bytes, nwords = (r->npages + 63) / 64;
	uint64_t bits[TAKE_WORDS];
	int rc = 0;

	if (!b)
		return -ENOMEM;
	b->r = r;
	b->w = w;
	b->st = st;
	for (uint64_t wi = 0; wi < nwords && rc == 0; wi += TAKE_WORDS) {
		unsigned n = nwords - wi < TAKE_WORDS ? (unsigned)(nwords - wi)
						      : TAKE_WORDS, k;
		if (budget && st->bytes - start >= budget)
			break;
		/* Take the words' bits before looking at their pages or at
		 * the file; what the file said before holds no longer. */
		for (k = 0; k < n; k++)
			bits[k] = atomic_exchange_explicit(&r->dirty[wi + k], 0,
							   memory_order_acq_rel);
		b->hole_start = b->hole_end = 0;
		for (k = 0; k < n; k++) {
			if (budget && st->bytes - start >= budget)
				break;
			while (bits[k]) {
				unsigned bit = (unsigned)__builtin_ctzll(bits[k]);
				rc = add_page(b, (wi + k) * 64 + bit);
				if (rc < 0)
					break; /* the page stays in bits[k] */
				bits[k] &= bits[k] - 1;
			}
			if (rc < 0)
				break;
		}
		/* Give back what was taken and not sent (a budget reached
		 * or a failed write). */
		for (; k < n; k++)
			if (bits[k])
				atomic_fetch_or_explicit(&r->dirty[wi + k], bits[k],
							 memory_order_release);
	}
	if (rc == 0)
		rc = flush(b);
	free(b);
	return rc;
}

uint64_t vfmig_ram_stripe_pages(uint32_t page_size)
{
	return page_size && page_size < VFMIG_RAM_STRIPE_BYTES
		       ? VFMIG_RAM_STRIPE_BYTES / page_size
		       : 1;
}

unsigned vfmig_ram_stripe_of(uint64_t page, uint64_t stripe_pages,
			     unsigned count)
{
	if (count <= 1 || stripe_pages == 0)
		return 0;
	return (unsigned)((page / stripe_pages) % count);
}

int vfmig_ram_send_stripe(struct vfmig_ram *r, struct vfmig_ram_cursor *cur,
			  struct vfmig_stream_writer *w, uint64_t budget,
			  unsigned index, unsigned count,
			  struct vfmig_ram_stats *st)
{
	/* The batch code keeps its memory of the file in the block it is
	 * given: give it a copy holding this sender's cursor. Everything
	 * else it touches (pages, dirty bits) is shared and safe so. */
	struct vfmig_ram view = *r;
	uint64_t sp = vfmig_ram_stripe_pages(r->page_size);
	uint64_t start = st->bytes, bits[TAKE_WORDS + 2];
	struct batch *b;
	int rc = 0;

	if (count == 0)
		count = 1;
	if (index >= count)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	view.known = cur->known;
	b->r = &view;
	b->w = w;
	b->st = st;
	for (uint64_t p0 = (uint64_t)index * sp; p0 < r->npages && rc == 0;
	     p0 += (uint64_t)count * sp) {
		uint64_t p1 = p0 + sp < r->npages ? p0 + sp : r->npages;
		uint64_t w0 = p0 / 64, nw = (p1 - 1) / 64 - w0 + 1, k;
		if (budget && st->bytes - start >= budget)
			break;
		/* Take the stripe's bits (only those: the neighbours of a
		 * word may be another channel's), then ask the file. */
		for (k = 0; k < nw && k < TAKE_WORDS + 2; k++) {
			uint64_t lo = (w0 + k) * 64, mask = ~0ull;
			if (p0 > lo)
				mask &= ~0ull << (p0 - lo);
			if (p1 < lo + 64)
				mask &= (1ull << (p1 - lo)) - 1;
			bits[k] = atomic_fetch_and_explicit(&r->dirty[w0 + k],
							    ~mask,
							    memory_order_acq_rel) &
				  mask;
		}
		nw = k;
		b->hole_start = b->hole_end = 0;
		for (k = 0; k < nw; k++) {
			if (budget && st->bytes - start >= budget)
				break;
			while (bits[k]) {
				unsigned bit = (unsigned)__builtin_ctzll(bits[k]);
				rc = add_page(b, (w0 + k) * 64 + bit);
				if (rc < 0)
					break;
				bits[k] &= bits[k] - 1;
			}
			if (rc < 0)
				break;
		}
		for (; k < nw; k++)
			if (bits[k])
				atomic_fetch_or_explicit(&r->dirty[w0 + k],
							 bits[k],
							 memory_order_release);
	}
	if (rc == 0)
		rc = flush(b);
	cur->known = view.known;
	free(b);
	return rc;
}

/*
 * Make [off, off + len) read as zero, touching as little of it as
 * possible: a hole of the block's file already does; from the first data
 * in the range on (stale, or an earlier round's), the range is punched out
 * of the file, which frees its pages and costs little where it is a hole
 * already. Bytes are written only where the file refuses. At most two
 * calls: SEEK_HOLE, which scans a whole data extent, is not asked.
 */
/* A preallocated block: note [off, off + len) as written. */
static void mark_written(struct vfmig_ram *r, uint64_t off, uint64_t len)
{
	uint64_t first = off / r->page_size;
	uint64_t last = (off + len + r->page_size - 1) / r->page_size;

	for (uint64_t pg = first; pg < last; pg++)
		atomic_fetch_or_explicit(&r->written[pg / 64], 1ull << (pg % 64),
					 memory_order_relaxed);
}

/* A preallocated block keeps its pages: a zero run clears the pages
 * written since the preallocation (the others are still zero) instead of
 * punching a hole that would free them. */
static void zero_written(struct vfmig_ram *r, uint64_t off, uint64_t len)
{
	uint64_t first = off / r->page_size, last = (off + len) / r->page_size;

	for (uint64_t pg = first; pg < last; pg++) {
		uint64_t bit = 1ull << (pg % 64);
		if (!(pg % 64) && pg + 64 <= last &&
		    !atomic_load_explicit(&r->written[pg / 64],
					  memory_order_relaxed)) {
			pg += 63; /* 64 untouched pages */
			continue;
		}
		if (atomic_fetch_and_explicit(&r->written[pg / 64], ~bit,
					      memory_order_relaxed) & bit)
			memset(r->host + pg * r->page_size, 0, r->page_size);
	}
}

/* Notes [off, off + len) as left to zero runs, for the allocating
 * thread (under zeroed->mu). */
static void note_zeroed(struct vfmig_ram *r, uint64_t off, uint64_t len)
{
	struct vfmig_ram_zeroed *z = r->zeroed;
	uint64_t first = off / r->page_size;
	uint64_t last = (off + len - 1) / r->page_size;

	if (!z->bits && !z->untracked) {
		z->bits = calloc((size_t)((r->npages + 63) / 64),
				 sizeof(*z->bits));
		z->untracked = !z->bits;
	}
	if (!z->bits)
		return;
	for (uint64_t pg = first; pg <= last; pg++)
		z->bits[pg / 64] |= 1ull << (pg % 64);
}

/* The file part of zero_range: whether [off, end) reads as zero now. */
static bool punch_range(struct vfmig_ram *r, uint64_t off, uint64_t end)
{
	off_t d = lseek(r->fd, (off_t)off, SEEK_DATA);

	if ((d < 0 && errno == ENXIO) || (d >= 0 && (uint64_t)d >= end))
		return true; /* all hole */
	if (d >= 0 && (uint64_t)d > off)
		off = (uint64_t)d;
	memset(&r->known, 0, sizeof(r->known)); /* what send knew is punched */
	return fallocate(r->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			 (off_t)off, (off_t)(end - off)) == 0;
}

static void zero_range(struct vfmig_ram *r, uint64_t off, uint64_t len)
{
	uint64_t end = off + len;
	bool done = false;

	if (r->written) {
		zero_written(r, off, len);
		return;
	}
	if (r->fd >= 0) {
		/* The allocating thread, which may not have reached these
		 * pages yet, must not bring them back afterwards. */
		pthread_mutex_lock(&r->zeroed->mu);
		note_zeroed(r, off, len);
		done = punch_range(r, off, end);
		pthread_mutex_unlock(&r->zeroed->mu);
	}
	if (!done)
		memset(r->host + off, 0, end - off);
}

/*
 * Put len bytes of page data at off. Into the block's file when it has one:
 * pwrite allocates each page it covers whole without clearing it first and
 * without a page fault, where a store through the mapping into a page never
 * written takes a fault, and the kernel allocates and clears the page before
 * the copy overwrites it (docs/benchmarks.md, "RAM at line rate"). The
 * mapping sees the file's pages: it is MAP_SHARED. Through the mapping when
 * there is no file or the file refuses.
 */
static void put_data(struct vfmig_ram *r, uint64_t off, const uint8_t *p,
		     size_t len)
{
	if (p == r->host + off)
		return; /* received in place (vfmig_ram_place) */
	if (r->written)
		mark_written(r, off, len);
	while (r->fd >= 0 && len) {
		ssize_t n = pwrite(r->fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (uint64_t)n;
		p += n;
		len -= (size_t)n;
	}
	if (len)
		memcpy(r->host + off, p, len);
}

int vfmig_ram_load(struct vfmig_ram *r, const struct vfmig_stream_record *rec,
		   char *err, size_t errlen)
{
	const typeof(rec->d.u.ram_pages) *rp = &rec->d.u.ram_pages;

	if (!vfmig_stream_is_ram_pages(rec->type)) {
		snprintf(err, errlen, "record type %u is not RAM_PAGES(_LIVE)",
			 rec->type);
		return -EINVAL;
	}
	if (!vfmig_stream_str_eq(rp->block, r->name)) {
		snprintf(err, errlen, "RAM block \"%.*s\" is not this VM's "
			 "\"%s\"", (int)(rp->block.len > 64 ? 64 : rp->block.len),
			 rp->block.p, r->name);
		return -EINVAL;
	}
	if (rp->page_size != r->page_size) {
		snprintf(err, errlen, "RAM page size %u, this VM uses %u",
			 rp->page_size, r->page_size);
		return -EINVAL;
	}
	for (uint32_t i = 0; i < rp->nruns; i++) {
		const struct vfmig_stream_ram_run *run = &rp->runs[i];
		if (run->addr % r->page_size || run->addr >= r->size ||
		    run->npages > (r->size - run->addr) / r->page_size) {
			snprintf(err, errlen, "RAM run at 0x%llx of %u pages "
				 "leaves the %llu-byte block",
				 (unsigned long long)run->addr, run->npages,
				 (unsigned long long)r->size);
			return -EINVAL;
		}
	}
	for (uint32_t i = 0; i < rp->nruns; i++) {
		const struct vfmig_stream_ram_run *run = &rp->runs[i];
		size_t len = (size_t)run->npages * r->page_size;
		if (run->zero)
			zero_range(r, run->addr, len);
		else
			put_data(r, run->addr, run->data, len);
	}
	return 0;
}

void *vfmig_ram_place(void *priv, const struct vfmig_stream_str *block,
		      uint32_t page_size, uint64_t addr, uint64_t len)
{
	struct vfmig_ram *r = priv;

	if (!vfmig_stream_str_eq(*block, r->name) || page_size != r->page_size ||
	    addr % page_size || addr >= r->size || len > r->size - addr)
		return NULL; /* vfmig_ram_load names what is wrong */
	if (r->written)
		mark_written(r, addr, len);
	return r->host + addr;
}

/* ---- data extents: announced by the source, allocated ahead here ---- */

int vfmig_ram_announce(struct vfmig_ram *r, struct vfmig_stream_writer *w)
{
	size_t cap = VFMIG_RAM_NAME_MAX + 1 + VFMIG_RAM_EXTENTS_MAX * 34 + 1;
	char *val;
	size_t len;
	unsigned n = 0;
	uint64_t off = 0;
	int rc = 0;

	if (r->fd < 0)
		return 0;
	val = malloc(cap);
	if (!val)
		return -ENOMEM;
	len = (size_t)snprintf(val, cap, "%s ", r->name);
	while (off < r->size && n < VFMIG_RAM_EXTENTS_MAX) {
		off_t d = lseek(r->fd, (off_t)off, SEEK_DATA), h;
		uint64_t start, end;

		if (d < 0)
			break; /* ENXIO: no data after off; else: cannot tell */
		h = lseek(r->fd, d, SEEK_HOLE);
		if (h <= d)
			h = (off_t)r->size;
		/* vfmig_ram_send need not ask about this extent again (a
		 * scan of all its pages): data stays data. */
		vfmig_ram_known_note(&r->known, (uint64_t)d, (uint64_t)h);
		start = (uint64_t)d / r->page_size * r->page_size;
		end = ((uint64_t)h + r->page_size - 1) / r->page_size *
		      r->page_size;
		if (end > r->size)
			end = r->size;
		if (start >= end)
			break;
		len += (size_t)snprintf(val + len, cap - len, "%s%llx+%llx",
					n ? "," : "", (unsigned long long)start,
					(unsigned long long)(end - start));
		n++;
		off = end;
	}
	if (n) {
		const struct vfmig_stream_kv kv = { VFMIG_RAM_INFO_EXTENTS, val };
		rc = vfmig_stream_write_info(w, &kv, 1);
	}
	free(val);
	return rc;
}

/* A lower-case hex number of 1..16 digits at *p (< end); advances *p. */
static bool parse_hex(const char **p, const char *end, uint64_t *v)
{
	const char *s = *p;
	uint64_t x = 0;

	while (*p < end && *p - s < 17) {
		char c = **p;
		unsigned d;
		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else
			break;
		x = x << 4 | d;
		(*p)++;
	}
	*v = x;
	return *p > s && *p - s <= 16;
}

int vfmig_ram_parse_extents(const struct vfmig_ram *r, const char *val,
			    size_t len, uint64_t (*ext)[2], unsigned max,
			    char *err, size_t errlen)
{
	const char *p = val, *end = val + len;
	const char *sp = len ? memchr(val, ' ', len) : NULL;
	uint64_t prev_end = 0;
	unsigned n = 0;

	if (!sp) {
		snprintf(err, errlen, "%s: no block name", VFMIG_RAM_INFO_EXTENTS);
		return -EBADMSG;
	}
	if ((size_t)(sp - val) != strlen(r->name) ||
	    memcmp(val, r->name, (size_t)(sp - val)))
		return -ENOENT;
	p = sp + 1;
	while (p < end) {
		uint64_t off, l;
		if (n && *p++ != ',')
			goto bad;
		if (!parse_hex(&p, end, &off) || p >= end || *p++ != '+' ||
		    !parse_hex(&p, end, &l))
			goto bad;
		if (!l || off % r->page_size || l % r->page_size ||
		    off < prev_end || off > UINT64_MAX - l) {
			snprintf(err, errlen, "%s: extent %u (0x%llx+0x%llx) "
				 "is empty, not page-aligned or out of order",
				 VFMIG_RAM_INFO_EXTENTS, n,
				 (unsigned long long)off, (unsigned long long)l);
			return -EBADMSG;
		}
		prev_end = off + l;
		if (off >= r->size)
			continue; /* clipped away; what follows is beyond too */
		if (l > r->size - off)
			l = r->size - off;
		if (n == max) {
			snprintf(err, errlen, "%s: more than %u extents",
				 VFMIG_RAM_INFO_EXTENTS, max);
			return -EBADMSG;
		}
		ext[n][0] = off;
		ext[n][1] = l;
		n++;
	}
	return (int)n;
bad:
	snprintf(err, errlen, "%s: malformed at byte %zu", VFMIG_RAM_INFO_EXTENTS,
		 (size_t)(p - val));
	return -EBADMSG;
}

/* Whether a zero run left the page at addr as a hole (under
 * zeroed->mu). */
static bool zeroed_at(const struct vfmig_ram *r, uint64_t addr)
{
	const uint64_t *bits = r->zeroed->bits;
	uint64_t pg = addr / r->page_size;

	return bits && (bits[pg / 64] >> (pg % 64) & 1);
}

/* Allocates and maps [off, end) but the pages zero runs left as holes
 * (under zeroed->mu, which the caller holds). Returns false when fallocate
 * refuses. */
static bool prealloc_piece(struct vfmig_ram_prealloc *p, uint64_t off,
			   uint64_t end)
{
	const struct vfmig_ram *r = p->r;
	uint64_t ps = r->page_size, b;

	for (; off < end; off = b) {
		if (zeroed_at(r, off)) {
			b = (off / ps + 1) * ps;
			continue;
		}
		for (b = off; b < end && !zeroed_at(r, b);)
			b = (b / ps + 1) * ps;
		if (b > end)
			b = end;
		/* Pages there already (received first) are left as they
		 * are; KEEP_SIZE: never grows the file. */
		if (fallocate(p->fd, FALLOC_FL_KEEP_SIZE, (off_t)off,
			      (off_t)(b - off)) < 0)
			return false;
		/* Map them too (cleared once, here): data received in place
		 * then lands without a page fault. */
		(void)madvise(p->host + off, (size_t)(b - off),
			      MADV_POPULATE_WRITE);
	}
	return true;
}

static void *prealloc_main(void *arg)
{
	struct vfmig_ram_prealloc *p = arg;
	struct vfmig_ram *r = p->r;

	for (unsigned i = 0; i < p->n; i++) {
		for (uint64_t off = p->ext[i][0], end = off + p->ext[i][1];
		     off < end; off += PREALLOC_CHUNK) {
			uint64_t l = end - off < PREALLOC_CHUNK ? end - off
								: PREALLOC_CHUNK;
			bool ok;

			if (atomic_load(&p->stop))
				return NULL;
			pthread_mutex_lock(&r->zeroed->mu);
			/* Without the map of zeroed pages it could undo a
			 * zero run: a hint, so stop instead. */
			ok = !r->zeroed->untracked &&
			     prealloc_piece(p, off, off + l);
			pthread_mutex_unlock(&r->zeroed->mu);
			if (!ok)
				return NULL; /* a hint: give up quietly */
		}
	}
	return NULL;
}

int vfmig_ram_prealloc_all(struct vfmig_ram *r)
{
	off_t d, h;
	int e;

	if (r->fd < 0)
		return -EINVAL;
	if (!r->written)
		r->written = calloc((size_t)((r->npages + 63) / 64),
				    sizeof(*r->written));
	if (!r->written)
		return -ENOMEM;
	/* What holds data already may not be zero: a zero run must clear
	 * it, so it counts as written. */
	for (d = lseek(r->fd, 0, SEEK_DATA); d >= 0 && (uint64_t)d < r->size;
	     d = lseek(r->fd, h, SEEK_DATA)) {
		h = lseek(r->fd, d, SEEK_HOLE);
		if (h < 0 || (uint64_t)h > r->size)
			h = (off_t)r->size;
		mark_written(r, (uint64_t)d, (uint64_t)(h - d));
	}
	if (fallocate(r->fd, 0, 0, (off_t)r->size) < 0) {
		e = -errno;
		free((void *)r->written);
		r->written = NULL;
		return e;
	}
	/* Older kernels lack POPULATE_WRITE: the pages are allocated, only
	 * their first mapping is left to the first access. */
	if (madvise(r->host, (size_t)r->size, MADV_POPULATE_WRITE) < 0 &&
	    errno != EINVAL)
		return -errno;
	return 0;
}

int vfmig_ram_info(struct vfmig_ram *r, const struct vfmig_stream_kv_view *kv,
		   char *err, size_t errlen)
{
	struct vfmig_ram_prealloc *p;
	int n;

	if (!vfmig_stream_str_eq(kv->key, VFMIG_RAM_INFO_EXTENTS))
		return 0;
	p = malloc(sizeof(*p) + VFMIG_RAM_EXTENTS_MAX * sizeof(p->ext[0]));
	if (!p)
		return -ENOMEM;
	n = vfmig_ram_parse_extents(r, kv->value.p, kv->value.len, p->ext,
				    VFMIG_RAM_EXTENTS_MAX, err, errlen);
	/* A preallocated block has every page already. */
	if (n <= 0 || r->fd < 0 || r->written) {
		free(p);
		return n == -ENOENT || n >= 0 ? 0 : n;
	}
	prealloc_stop(r, false);
	atomic_init(&p->stop, false);
	p->r = r;
	p->fd = r->fd;
	p->host = r->host;
	p->n = (unsigned)n;
	if (pthread_create(&p->thread, NULL, prealloc_main, p) != 0) {
		free(p); /* a hint: the pages are allocated as they come */
		return 0;
	}
	r->prealloc = p;
	return 0;
}

void vfmig_ram_prealloc_wait(struct vfmig_ram *r)
{
	prealloc_stop(r, true);
}
