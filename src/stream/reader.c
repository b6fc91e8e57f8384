/* SPDX-License-Identifier: MIT */
/*
 * Stream reader: validates the header, then frames, checks and decodes one
 * record at a time. Every error message names the byte offset of the header
 * or record concerned.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "be.h"
#include "internal.h"

struct vfmig_stream_reader {
	struct vfmig_io *io;
	uint64_t offset;       /* bytes consumed */
	uint16_t minor;
	uint16_t hflags;       /* header flags (1.1 on) */
	struct vfmig__csum csum; /* the record checksum the header names */
	int error;             /* sticky */
	bool done;             /* END returned */
	bool have_list;
	bool switchover;
	uint64_t vcpu_seen[VFMIG_STREAM_MAX_VCPUS / 64]; /* VCPU_STATE indexes */
	uint16_t ndev;
	uint32_t nrecords;     /* records read, skipped ones included */
	uint32_t skipped;
	uint8_t *buf;          /* current payload */
	size_t bufcap;
	uint16_t cur_type;     /* type whose decoded arrays rec->d may own */
	struct vfmig_stream_decoded cur;
	vfmig_stream_ram_place_fn place; /* RAM page data placement, or NULL */
	void *place_priv;
	vfmig_stream_forward_fn forward; /* device data forwarding, or NULL */
	void *forward_priv;
	struct vfmig_stream_decoded placed; /* a placed RAM_PAGES, decoded */
	int placed_rc;         /* its decoding result, message in placed_err */
	char placed_err[240];
	/* RAM_PAGES_LIVE: the page checksums computed while the data
	 * arrived, a page above one piece being summed, and the record's
	 * torn pages (addresses) */
	uint32_t *sums;
	size_t sums_cap;
	struct vfmig__csum page;
	uint64_t *rtorn;
	uint32_t nrtorn, rtorn_cap;
	/* pages torn and not carried again yet, sorted by (block, addr),
	 * and the names of their blocks */
	struct torn {
		uint16_t blk;
		uint64_t addr;
		uint64_t rec_off; /* the record it arrived torn in */
	} *torn;
	uint32_t ntorn, torn_cap;
	char *blocks[VFMIG_STREAM_MAX_TORN_BLOCKS];
	uint16_t nblocks;
	uint64_t torn_total;
	char err[320];
};

static int rfail(struct vfmig_stream_reader *r, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int rfail(struct vfmig_stream_reader *r, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->err, sizeof(r->err), fmt, ap);
	va_end(ap);
	r->error = rc;
	return rc;
}

/* Reads exactly n bytes; what names the item for a truncation message. */
static int read_exact(struct vfmig_stream_reader *r, void *p, size_t n, uint64_t at,
		      const char *what)
{
	ssize_t got = vfmig_io_read(r->io, p, n);

	if (got < 0)
		return rfail(r, (int)got, "reading %s at offset %" PRIu64 ": %s", what, at,
			     strerror((int)-got));
	r->offset += (uint64_t)got;
	if ((size_t)got < n)
		return rfail(r, -ENODATA,
			     "stream truncated: %s at offset %" PRIu64 " needs %zu bytes, %zd left",
			     what, at, n, got);
	return 0;
}

/*
 * Reads up to n bytes to p in pieces and adds each piece to the record
 * checksum right after it has landed, while it is in the cache (see
 * VFMIG__STREAM_PIECE). Returns the count (less than n only at end of
 * input) or a negative errno from the I/O.
 */
static ssize_t read_hashed(struct vfmig_stream_reader *r, uint8_t *p, size_t n)
{
	size_t got = 0, want;
	ssize_t k;

	while (got < n) {
		want = n - got < VFMIG__STREAM_PIECE ? n - got : VFMIG__STREAM_PIECE;
		k = vfmig_io_read(r->io, p + got, want);
		if (k < 0)
			return k;
		vfmig__csum_update(&r->csum, p + got, (size_t)k);
		got += (size_t)k;
		if ((size_t)k < want)
			break;
	}
	return (ssize_t)got;
}

int vfmig_stream_reader_open(struct vfmig_stream_reader **out, struct vfmig_io *io,
			     char *out_err, size_t errlen)
{
	struct vfmig_stream_reader *r;
	uint8_t h[VFMIG_STREAM_HEADER_SIZE];
	uint32_t flags, crc;
	uint16_t major, algo;
	int rc;

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->io = io;
	rc = read_exact(r, h, sizeof(h), 0, "stream header");
	if (rc < 0)
		goto fail;
	if (memcmp(h, VFMIG_STREAM_MAGIC, 8) != 0) {
		rc = rfail(r, -EBADMSG, "offset 0: not a vfmig stream (bad magic)");
		goto fail;
	}
	/* Major first: another major may lay out the rest of its header
	 * differently, and its reader deserves the version in the message. */
	major = get_be16(h + 8);
	if (major != VFMIG_STREAM_MAJOR) {
		rc = rfail(r, -EPROTONOSUPPORT,
			   "offset 8: stream major version %u, this reader supports %u", major,
			   VFMIG_STREAM_MAJOR);
		goto fail;
	}
	crc = vfmig__crc32(0, h, 16);
	if (crc != get_be32(h + 16)) {
		rc = rfail(r, -EBADMSG,
			   "offset 16: header checksum mismatch (stored 0x%08" PRIx32
			   ", computed 0x%08" PRIx32 ")", get_be32(h + 16), crc);
		goto fail;
	}
	r->minor = get_be16(h + 10);
	if (r->minor == 0) {
		/* 1.0: a u32 of flags, none defined; records carry CRC-32. */
		flags = get_be32(h + 12);
		if (flags) {
			rc = rfail(r, -EOPNOTSUPP,
				   "offset 12: unknown stream header flags 0x%08" PRIx32, flags);
			goto fail;
		}
		algo = VFMIG_STREAM_CSUM_CRC32;
	} else {
		/* 1.1 on: u16 flags (1.3: LIVE), u16 record checksum. */
		flags = get_be16(h + 12);
		if (flags & ~(r->minor >= VFMIG_STREAM_MINOR_LIVE ? VFMIG_STREAM_HF_LIVE : 0u)) {
			rc = rfail(r, -EOPNOTSUPP,
				   "offset 12: unknown stream header flags 0x%04" PRIx32, flags);
			goto fail;
		}
		r->hflags = (uint16_t)flags;
		algo = get_be16(h + 14);
		if (!vfmig_stream_csum_name(algo)) {
			rc = rfail(r, -EOPNOTSUPP,
				   "offset 14: unknown record checksum algorithm %u (this reader "
				   "knows %u = %s, %u = %s)", algo, VFMIG_STREAM_CSUM_CRC32,
				   vfmig_stream_csum_name(VFMIG_STREAM_CSUM_CRC32),
				   VFMIG_STREAM_CSUM_XXH3,
				   vfmig_stream_csum_name(VFMIG_STREAM_CSUM_XXH3));
			goto fail;
		}
	}
	rc = vfmig__csum_init(&r->csum, algo);
	if (rc == 0)
		rc = vfmig__csum_init(&r->page, algo);
	if (rc < 0) {
		rfail(r, rc, "no memory for the record checksum");
		goto fail;
	}
	*out = r;
	return 0;
fail:
	vfmig__err(out_err, errlen, "%s", r->err);
	vfmig_stream_reader_free(r);
	return rc;
}

/* ---- RAM_PAGES with placed page data ----
 * The payload is read piece by piece, as dec_ram_pages() (records.c) would
 * walk it: the block name, page size and run count, then each run's
 * header, and its data where the placement function says (else into the
 * buffer, after what is there). Every piece goes into the checksum from
 * where it landed. The rules and messages are dec_ram_pages()'s; once
 * anything is malformed, the rest of the payload goes into the buffer
 * unparsed and the record is refused after its checksum check. */
struct placed_walk {
	struct vfmig_stream_reader *r;
	const struct vfmig__frame *fr;
	uint32_t left; /* payload bytes not yet read */
	size_t used;   /* of r->buf */
	size_t pos;    /* payload bytes read */
	bool live;     /* RAM_PAGES_LIVE: data outside the record checksum */
	bool place;    /* the placement function may be asked */
	const char *name; /* the record type's, for messages */
	uint32_t nsums; /* RAM_PAGES_LIVE: data pages summed */
};

/* Reads n payload bytes to dst (NULL: the buffer); returns where they are,
 * or NULL after an I/O error or truncation (the reader's error is set, with
 * read_exact()'s message for the whole payload). */
static const uint8_t *walk_read(struct placed_walk *w, uint8_t *dst, size_t n)
{
	struct vfmig_stream_reader *r = w->r;
	uint8_t *p = dst ? dst : r->buf + w->used;
	ssize_t got = read_hashed(r, p, n);

	if (got < 0) {
		rfail(r, (int)got, "reading record payload at offset %" PRIu64 ": %s",
		      w->fr->offset, strerror((int)-got));
		return NULL;
	}
	r->offset += (uint64_t)got;
	if ((size_t)got < n) {
		rfail(r, -ENODATA, "stream truncated: record payload at offset %" PRIu64
		      " needs %zu bytes, %zd left", w->fr->offset, (size_t)w->fr->length,
		      (ssize_t)(w->pos + (size_t)got));
		return NULL;
	}
	w->left -= (uint32_t)n;
	w->pos += n;
	if (!dst)
		w->used += n;
	return p;
}

static int walk_bad(struct placed_walk *w, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Notes the decoding error and reads the rest of the payload. */
static int walk_bad(struct placed_walk *w, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(w->r->placed_err, sizeof(w->r->placed_err), fmt, ap);
	va_end(ap);
	w->r->placed_rc = rc;
	if (w->left && !walk_read(w, NULL, w->left))
		return w->r->error;
	return 0;
}

static int walk_truncated(struct placed_walk *w)
{
	return walk_bad(w, -EBADMSG, "%s payload truncated or malformed at "
			"payload byte %zu", w->name, w->pos);
}

/*
 * RAM_PAGES_LIVE page data: n bytes of pages of ps to dst (NULL: the
 * buffer), read in pieces outside the record checksum; each page's own
 * checksum goes to r->sums as the page lands. Returns where they are, or
 * NULL as walk_read().
 */
static const uint8_t *walk_data(struct placed_walk *w, uint8_t *dst, size_t n, uint32_t ps)
{
	struct vfmig_stream_reader *r = w->r;
	uint8_t *p = dst ? dst : r->buf + w->used;
	size_t got = 0, want;
	ssize_t k;

	while (got < n) {
		want = n - got < VFMIG__STREAM_PIECE ? n - got : VFMIG__STREAM_PIECE;
		k = vfmig_io_read(r->io, p + got, want);
		if (k < 0) {
			rfail(r, (int)k, "reading record payload at offset %" PRIu64 ": %s",
			      w->fr->offset, strerror((int)-k));
			return NULL;
		}
		if ((size_t)k < want) {
			r->offset += got + (size_t)k;
			rfail(r, -ENODATA, "stream truncated: record payload at offset %" PRIu64
			      " needs %zu bytes, %zu left", w->fr->offset, (size_t)w->fr->length,
			      w->pos + got + (size_t)k);
			return NULL;
		}
		/* powers of two: a piece holds whole pages or a page whole
		 * pieces (walk_ram_pages() checked the room in r->sums) */
		if (ps <= VFMIG__STREAM_PIECE) {
			for (size_t off = 0; off < want; off += ps)
				r->sums[w->nsums++] = vfmig__csum_once(r->csum.algo,
								       p + got + off, ps);
		} else {
			if (got % ps == 0)
				vfmig__csum_begin(&r->page);
			vfmig__csum_update(&r->page, p + got, want);
			if ((got + want) % ps == 0)
				r->sums[w->nsums++] = vfmig__csum_end(&r->page);
		}
		got += want;
	}
	r->offset += n;
	w->left -= (uint32_t)n;
	w->pos += n;
	if (!dst)
		w->used += n;
	return p;
}

/* Room in r->sums for every data page the record's length allows. */
static int sums_room(struct vfmig_stream_reader *r, uint32_t length, uint32_t ps)
{
	size_t need = length / ps;
	void *p;

	if (need <= r->sums_cap)
		return 0;
	p = realloc(r->sums, need * sizeof(*r->sums));
	if (!p)
		return rfail(r, -ENOMEM, "no memory for %zu page checksums", need);
	r->sums = p;
	r->sums_cap = need;
	return 0;
}

/* RAM_PAGES_LIVE's table: one stored checksum per data page, compared with
 * what arrived; the pages that differ are the record's torn pages. */
static int walk_table(struct placed_walk *w)
{
	struct vfmig_stream_reader *r = w->r;
	typeof(r->placed.u.ram_pages) *rp = &r->placed.u.ram_pages;
	const uint8_t *t;
	uint32_t k = 0;

	if (w->left != (uint64_t)w->nsums * 4)
		return walk_bad(w, -EBADMSG, "RAM_PAGES_LIVE page checksum table has %u bytes, "
				"%u data pages need %u", w->left, w->nsums, w->nsums * 4);
	if (!(t = walk_read(w, NULL, w->left)))
		return r->error;
	for (uint32_t i = 0; i < rp->nruns; i++) {
		const struct vfmig_stream_ram_run *run = &rp->runs[i];

		if (run->zero)
			continue;
		for (uint32_t j = 0; j < run->npages; j++, k++) {
			if (get_be32(t + 4 * (size_t)k) == r->sums[k])
				continue;
			if (r->nrtorn == r->rtorn_cap) {
				uint32_t cap = r->rtorn_cap ? 2 * r->rtorn_cap : 64;
				void *p = realloc(r->rtorn, cap * sizeof(*r->rtorn));

				if (!p)
					return rfail(r, -ENOMEM, "no memory for torn pages");
				r->rtorn = p;
				r->rtorn_cap = cap;
			}
			r->rtorn[r->nrtorn++] = run->addr + (uint64_t)j * rp->page_size;
		}
	}
	rp->torn = r->nrtorn;
	return 0;
}

static int walk_ram_pages(struct placed_walk *w)
{
	struct vfmig_stream_reader *r = w->r;
	typeof(r->placed.u.ram_pages) *rp = &r->placed.u.ram_pages;
	const uint8_t *p;
	uint32_t n, ps;

	if (w->left < 2)
		return walk_truncated(w);
	if (!(p = walk_read(w, NULL, 2)))
		return r->error;
	rp->block.len = get_be16(p);
	if (w->left < rp->block.len)
		return walk_truncated(w);
	if (!(p = walk_read(w, NULL, rp->block.len)))
		return r->error;
	rp->block.p = (const char *)p;
	if (memchr(p, 0, rp->block.len))
		return walk_truncated(w);
	/* page size, run count: the buffer holds them after the name */
	for (int k = 0; k < 2; k++) {
		if (w->left < 4)
			return walk_truncated(w);
		if (!walk_read(w, NULL, 4))
			return r->error;
	}
	ps = get_be32(p + rp->block.len);
	n = get_be32(p + rp->block.len + 4);
	if (ps < 512 || ps > (1u << 30) || (ps & (ps - 1)))
		return walk_bad(w, -EBADMSG, "%s page size %u is not a "
				"power of two in 512..1G", w->name, ps);
	if (n > w->left / 13)
		return walk_bad(w, -EBADMSG, "%s run count %u too large", w->name, n);
	if (w->live && sums_room(r, w->fr->length, ps) < 0)
		return r->error;
	rp->runs = calloc(n ? n : 1, sizeof(*rp->runs));
	if (!rp->runs)
		return rfail(r, -ENOMEM, "no memory for %u RAM_PAGES runs", n);
	rp->page_size = ps;
	rp->nruns = n;
	for (uint32_t i = 0; i < n; i++) {
		struct vfmig_stream_ram_run *run = &rp->runs[i];
		uint64_t bytes;
		uint8_t kind;
		void *dst;

		if (w->left < 13) {
			/* where the decoder's cursor stops: after addr, after
			 * npages */
			w->pos += w->left >= 12 ? 12 : w->left >= 8 ? 8 : 0;
			return walk_truncated(w);
		}
		if (!(p = walk_read(w, NULL, 13)))
			return r->error;
		run->addr = get_be64(p);
		run->npages = get_be32(p + 8);
		kind = p[12];
		bytes = (uint64_t)run->npages * ps;
		if (run->npages == 0 || kind > 1 || run->addr % ps ||
		    run->addr > UINT64_MAX - bytes)
			return walk_bad(w, -EBADMSG, "%s run %u: addr 0x%"
					PRIx64 ", %u pages, kind %u invalid", w->name, i,
					run->addr, run->npages, kind);
		run->zero = kind == 1;
		if (run->zero)
			continue;
		if (bytes > w->left)
			return walk_truncated(w);
		dst = w->place ? r->place(r->place_priv, &rp->block, ps, run->addr, bytes)
			       : NULL;
		if (w->live)
			run->data = walk_data(w, dst, (size_t)bytes, ps);
		else
			run->data = walk_read(w, dst, (size_t)bytes);
		if (!run->data)
			return r->error;
	}
	if (w->live)
		return walk_table(w);
	if (w->left)
		return walk_bad(w, -EBADMSG, "RAM_PAGES payload has %u unexpected "
				"trailing bytes", w->left);
	return 0;
}

static int read_placed(struct vfmig_stream_reader *r, struct vfmig__frame *fr,
		       const uint8_t *h)
{
	struct placed_walk w = {
		.r = r, .fr = fr, .left = fr->length,
		.live = fr->type == VFMIG_REC_RAM_PAGES_LIVE,
		.place = r->place && !(fr->flags & ~VFMIG_STREAM_F_MUST_UNDERSTAND),
		.name = vfmig_stream_type_name(fr->type),
	};
	uint8_t tail[4];
	int rc;

	vfmig_stream_decoded_clear(VFMIG_REC_RAM_PAGES, &r->placed);
	r->nrtorn = 0;
	r->placed_rc = 0;
	r->placed_err[0] = 0;
	vfmig__csum_begin(&r->csum);
	vfmig__csum_update(&r->csum, h, VFMIG_STREAM_RECORD_HEADER_SIZE);
	rc = walk_ram_pages(&w);
	if (rc < 0)
		return rc;
	rc = read_exact(r, tail, sizeof(tail), fr->offset, "record checksum");
	if (rc < 0)
		return rc;
	fr->placed = true;
	fr->payload = NULL;
	fr->csum_stored = get_be32(tail);
	fr->csum_computed = vfmig__csum_end(&r->csum);
	return 1;
}

void vfmig_stream_reader_set_ram_place(struct vfmig_stream_reader *r,
				       vfmig_stream_ram_place_fn fn, void *priv)
{
	r->place = fn;
	r->place_priv = priv;
}

void vfmig_stream_reader_set_forward(struct vfmig_stream_reader *r, vfmig_stream_forward_fn fn,
				     void *priv)
{
	r->forward = fn;
	r->forward_priv = priv;
}

/* The rest of a record's payload (after the first have bytes, already in
 * r->buf and summed) and its checksum; the record checksum's sum started
 * with the header. Returns 1 or the reader's error. */
static int read_payload(struct vfmig_stream_reader *r, struct vfmig__frame *fr, size_t have)
{
	uint8_t tail[4];
	ssize_t got;
	int rc;

	/* r->buf is NULL until a record has had a payload. */
	got = read_hashed(r, have ? r->buf + have : r->buf, fr->length - have);
	if (got < 0)
		return rfail(r, (int)got, "reading record payload at offset %" PRIu64 ": %s",
			     fr->offset, strerror((int)-got));
	r->offset += (uint64_t)got;
	if ((size_t)got < fr->length - have)
		return rfail(r, -ENODATA,
			     "stream truncated: record payload at offset %" PRIu64
			     " needs %zu bytes, %zu left", fr->offset, (size_t)fr->length,
			     (size_t)got + have);
	rc = read_exact(r, tail, sizeof(tail), fr->offset, "record checksum");
	if (rc < 0)
		return rc;
	fr->payload = r->buf;
	fr->csum_stored = get_be32(tail);
	fr->csum_computed = vfmig__csum_end(&r->csum);
	return 1;
}

static bool may_forward(const struct vfmig_stream_reader *r, const struct vfmig__frame *fr)
{
	return r->forward && fr->type == VFMIG_REC_DEVICE_DATA &&
	       fr->flags == VFMIG_STREAM_F_MUST_UNDERSTAND && fr->length > 2 &&
	       r->csum.algo == VFMIG_STREAM_CSUM_XXH3 && r->have_list && r->io->ops->fd;
}

/*
 * A DEVICE_DATA record offered to the forwarding function: the device index
 * is read here, the data and the checksum by the function (1), or, when it
 * declines (0) or the index is out of range, by the reader as usual into
 * the payload buffer (sized by the caller), index first.
 */
static int read_forwarded(struct vfmig_stream_reader *r, struct vfmig__frame *fr,
			  const uint8_t *h)
{
	uint32_t len = fr->length - 2;
	uint16_t dev;
	int rc, fd;

	rc = read_exact(r, r->buf, 2, fr->offset, "device index");
	if (rc < 0)
		return rc;
	dev = get_be16(r->buf);
	if (dev < r->ndev) {
		fd = vfmig_io_raw_fd(r->io);
		rc = fd < 0 ? fd : r->forward(r->forward_priv, dev, len, fd);
		if (rc < 0) {
			vfmig_io_fail(r->io, rc);
			return rfail(r, rc,
				     "record at offset %" PRIu64 " (DEVICE_DATA): forwarding "
				     "%" PRIu32 " bytes to device %u: %s", fr->offset, len, dev,
				     strerror(-rc));
		}
		if (rc > 0) {
			vfmig_io_moved(r->io, false, (uint64_t)len + 4);
			r->offset += (uint64_t)len + 4;
			vfmig_stream_decoded_clear(VFMIG_REC_RAM_PAGES, &r->placed);
			r->placed.u.device_data.dev = dev;
			r->placed.u.device_data.len = len;
			r->placed.u.device_data.data = NULL;
			r->placed.u.device_data.forwarded = true;
			r->placed_rc = 0;
			r->placed_err[0] = 0;
			fr->placed = true;
			fr->payload = NULL;
			/* The device checks the checksum: nothing to compare. */
			fr->csum_stored = fr->csum_computed = 0;
			return 1;
		}
	}
	vfmig__csum_begin(&r->csum);
	vfmig__csum_update(&r->csum, h, VFMIG_STREAM_RECORD_HEADER_SIZE);
	vfmig__csum_update(&r->csum, r->buf, 2);
	return read_payload(r, fr, 2);
}

int vfmig__reader_frame(struct vfmig_stream_reader *r, struct vfmig__frame *fr)
{
	uint8_t h[VFMIG_STREAM_RECORD_HEADER_SIZE];
	uint8_t *p;
	ssize_t got;
	int rc;

	if (r->error)
		return r->error;
	memset(fr, 0, sizeof(*fr));
	fr->offset = r->offset;
	got = vfmig_io_read(r->io, h, 1);
	if (got < 0)
		return rfail(r, (int)got, "reading record at offset %" PRIu64 ": %s",
			     fr->offset, strerror((int)-got));
	if (got == 0)
		return rfail(r, -ENODATA,
			     "stream truncated: ends at offset %" PRIu64 " without an END record",
			     r->offset);
	r->offset++;
	rc = read_exact(r, h + 1, sizeof(h) - 1, fr->offset, "record header");
	if (rc < 0)
		return rc;
	fr->type = get_be16(h);
	fr->flags = get_be16(h + 2);
	fr->length = get_be32(h + 4);
	if (fr->length > VFMIG_STREAM_MAX_RECORD)
		return rfail(r, -EMSGSIZE,
			     "record at offset %" PRIu64 " (type %u): length %" PRIu32
			     " above the maximum %u", fr->offset, fr->type, fr->length,
			     VFMIG_STREAM_MAX_RECORD);
	if (fr->length > r->bufcap) {
		p = realloc(r->buf, fr->length);
		if (!p)
			return rfail(r, -ENOMEM, "no memory for a %" PRIu32 "-byte record",
				     fr->length);
		r->buf = p;
		r->bufcap = fr->length;
	}
	if (may_forward(r, fr))
		return read_forwarded(r, fr, h);
	/* RAM_PAGES_LIVE always: its checksums need the payload's layout. */
	if ((fr->type == VFMIG_REC_RAM_PAGES && r->place &&
	     !(fr->flags & ~VFMIG_STREAM_F_MUST_UNDERSTAND)) ||
	    fr->type == VFMIG_REC_RAM_PAGES_LIVE)
		return read_placed(r, fr, h);
	vfmig__csum_begin(&r->csum);
	vfmig__csum_update(&r->csum, h, sizeof(h));
	return read_payload(r, fr, 0);
}

/* ---- torn pages (RAM_PAGES_LIVE) ---- */

/* First entry not below (blk, addr). */
static uint32_t torn_lower(const struct vfmig_stream_reader *r, uint16_t blk, uint64_t addr)
{
	uint32_t lo = 0, hi = r->ntorn;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		const struct torn *t = &r->torn[mid];

		if (t->blk < blk || (t->blk == blk && t->addr < addr))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The index of the block's name among those with torn pages; adds it when
 * add is set. -1 when it is not there (or no room, with add). */
static int torn_block(struct vfmig_stream_reader *r, struct vfmig_stream_str name, bool add)
{
	for (uint16_t i = 0; i < r->nblocks; i++)
		if (vfmig_stream_str_eq(name, r->blocks[i]))
			return i;
	if (!add || r->nblocks == VFMIG_STREAM_MAX_TORN_BLOCKS)
		return -1;
	r->blocks[r->nblocks] = strndup(name.p, name.len);
	if (!r->blocks[r->nblocks])
		return -1;
	return r->nblocks++;
}

/* A record of the block covers [addr, addr + len): its pages arrived. */
static void torn_clear(struct vfmig_stream_reader *r, int blk, uint64_t addr, uint64_t len)
{
	uint32_t a = torn_lower(r, (uint16_t)blk, addr), b = a;

	while (b < r->ntorn && r->torn[b].blk == blk && r->torn[b].addr - addr < len)
		b++;
	if (b == a)
		return;
	memmove(r->torn + a, r->torn + b, (r->ntorn - b) * sizeof(*r->torn));
	r->ntorn -= b - a;
}

static int torn_add(struct vfmig_stream_reader *r, const struct vfmig__frame *fr, int blk,
		    uint64_t addr)
{
	uint32_t i = torn_lower(r, (uint16_t)blk, addr);

	if (i < r->ntorn && r->torn[i].blk == blk && r->torn[i].addr == addr) {
		r->torn[i].rec_off = fr->offset;
		return 0;
	}
	if (r->ntorn == VFMIG_STREAM_MAX_TORN)
		return rfail(r, -EOVERFLOW,
			     "RAM_PAGES_LIVE at offset %" PRIu64 ": more than %u torn RAM pages "
			     "wait to be carried again", fr->offset, VFMIG_STREAM_MAX_TORN);
	if (r->ntorn == r->torn_cap) {
		uint32_t cap = r->torn_cap ? 2 * r->torn_cap : 64;
		void *p = realloc(r->torn, cap * sizeof(*r->torn));

		if (!p)
			return rfail(r, -ENOMEM, "no memory for torn RAM pages");
		r->torn = p;
		r->torn_cap = cap;
	}
	memmove(r->torn + i + 1, r->torn + i, (r->ntorn - i) * sizeof(*r->torn));
	r->torn[i] = (struct torn){ (uint16_t)blk, addr, fr->offset };
	r->ntorn++;
	return 0;
}

/* After an accepted RAM record: the pages it carried are no longer pending,
 * its own torn pages are. */
static int torn_update(struct vfmig_stream_reader *r, const struct vfmig__frame *fr,
		       const struct vfmig_stream_decoded *d)
{
	const typeof(d->u.ram_pages) *rp = &d->u.ram_pages;
	int blk;

	if (r->ntorn && (blk = torn_block(r, rp->block, false)) >= 0)
		for (uint32_t i = 0; i < rp->nruns; i++)
			torn_clear(r, blk, rp->runs[i].addr,
				   (uint64_t)rp->runs[i].npages * rp->page_size);
	if (!rp->torn)
		return 0;
	blk = torn_block(r, rp->block, true);
	if (blk < 0)
		return rfail(r, -EOVERFLOW,
			     "RAM_PAGES_LIVE at offset %" PRIu64 ": torn RAM pages in more "
			     "than %u blocks", fr->offset, VFMIG_STREAM_MAX_TORN_BLOCKS);
	for (uint32_t k = 0; k < r->nrtorn; k++) {
		int rc = torn_add(r, fr, blk, r->rtorn[k]);

		if (rc < 0)
			return rc;
	}
	r->torn_total += r->nrtorn;
	return 0;
}

/* Record-order rules of 1.0 (docs/stream-format.md, "Rules for readers"). */
static int check_order(struct vfmig_stream_reader *r, const struct vfmig__frame *fr,
		       const struct vfmig_stream_decoded *d)
{
	const char *name = vfmig_stream_type_name(fr->type);
	uint16_t dev;

	switch (fr->type) {
	case VFMIG_REC_DEVICE_LIST:
		if (r->have_list)
			return rfail(r, -EPROTO, "record at offset %" PRIu64 ": second DEVICE_LIST",
				     fr->offset);
		return 0;
	case VFMIG_REC_DEVICE_BEGIN:
		dev = d->u.device_begin.dev;
		break;
	case VFMIG_REC_DEVICE_DATA:
		dev = d->u.device_data.dev;
		break;
	case VFMIG_REC_DEVICE_END:
		dev = d->u.device_end.dev;
		break;
	case VFMIG_REC_TYPE_STATE:
		dev = d->u.type_state.dev;
		break;
	case VFMIG_REC_VCPU_STATE:
		/* A vCPU is saved stopped: after the switchover; and only in
		 * the minor that defines the record. */
		if (r->minor < VFMIG_STREAM_MINOR_VCPU)
			return rfail(r, -EPROTO,
				     "VCPU_STATE at offset %" PRIu64 " in a 1.%u stream (the "
				     "record exists from 1.%u on)",
				     fr->offset, r->minor, VFMIG_STREAM_MINOR_VCPU);
		if (!r->switchover)
			return rfail(r, -EPROTO,
				     "VCPU_STATE at offset %" PRIu64 " before SWITCHOVER",
				     fr->offset);
		dev = d->u.vcpu_state.vcpu; /* below the maximum: decoded */
		if (r->vcpu_seen[dev / 64] & (1ull << (dev % 64)))
			return rfail(r, -EPROTO,
				     "VCPU_STATE at offset %" PRIu64 ": second state of vCPU %u",
				     fr->offset, dev);
		r->vcpu_seen[dev / 64] |= 1ull << (dev % 64);
		return 0;
	case VFMIG_REC_RAM_PAGES_LIVE:
		if (r->minor < VFMIG_STREAM_MINOR_LIVE)
			return rfail(r, -EPROTO,
				     "RAM_PAGES_LIVE at offset %" PRIu64 " in a 1.%u stream (the "
				     "record exists from 1.%u on)",
				     fr->offset, r->minor, VFMIG_STREAM_MINOR_LIVE);
		if (!(r->hflags & VFMIG_STREAM_HF_LIVE))
			return rfail(r, -EPROTO,
				     "RAM_PAGES_LIVE at offset %" PRIu64 ", but the header does "
				     "not announce it (flag 0x%04x)", fr->offset,
				     VFMIG_STREAM_HF_LIVE);
		return 0;
	case VFMIG_REC_SWITCHOVER:
		if (r->switchover)
			return rfail(r, -EPROTO, "record at offset %" PRIu64 ": second SWITCHOVER",
				     fr->offset);
		return 0;
	case VFMIG_REC_END:
		if (!r->have_list)
			return rfail(r, -EPROTO,
				     "END at offset %" PRIu64 ": stream has no DEVICE_LIST",
				     fr->offset);
		if (d->u.end.records != r->nrecords)
			return rfail(r, -EPROTO,
				     "END at offset %" PRIu64 " counts %" PRIu32
				     " records, the stream had %" PRIu32, fr->offset,
				     d->u.end.records, r->nrecords);
		if (r->ntorn)
			return rfail(r, -EBADMSG,
				     "END at offset %" PRIu64 ": %u RAM page(s) arrived torn and "
				     "were not carried again, the first at 0x%" PRIx64 " of block %s "
				     "(RAM_PAGES_LIVE at offset %" PRIu64 ")", fr->offset, r->ntorn,
				     r->torn[0].addr, r->blocks[r->torn[0].blk], r->torn[0].rec_off);
		return 0;
	default:
		return 0;
	}
	if (!r->have_list || dev >= r->ndev)
		return rfail(r, -EPROTO,
			     "%s at offset %" PRIu64 ": device index %u but DEVICE_LIST %s %u devices",
			     name, fr->offset, dev, r->have_list ? "has" : "not seen,", r->ndev);
	return 0;
}

int vfmig__reader_accept(struct vfmig_stream_reader *r, const struct vfmig__frame *fr,
			 struct vfmig_stream_record *rec)
{
	const struct vfmig__rec_type *t;
	char derr[240];
	int rc;

	if (fr->csum_stored != fr->csum_computed)
		return rfail(r, -EBADMSG,
			     "record at offset %" PRIu64 " (type %u): checksum mismatch (%s: stored 0x%08"
			     PRIx32 ", computed 0x%08" PRIx32 ")", fr->offset, fr->type,
			     vfmig_stream_csum_name(r->csum.algo), fr->csum_stored,
			     fr->csum_computed);
	if (fr->flags & ~VFMIG_STREAM_F_MUST_UNDERSTAND)
		return rfail(r, -EOPNOTSUPP,
			     "record at offset %" PRIu64 " (type %u): unknown flags 0x%04x",
			     fr->offset, fr->type, fr->flags & ~VFMIG_STREAM_F_MUST_UNDERSTAND);
	t = vfmig__rec_type(fr->type);
	if (!t) {
		if (fr->flags & VFMIG_STREAM_F_MUST_UNDERSTAND)
			return rfail(r, -EOPNOTSUPP,
				     "record at offset %" PRIu64
				     ": unknown mandatory record type %u (MUST_UNDERSTAND set)",
				     fr->offset, fr->type);
		r->nrecords++;
		r->skipped++;
		return 0;
	}
	vfmig_stream_decoded_clear(r->cur_type, &r->cur);
	derr[0] = 0;
	if (fr->placed) {
		/* Decoded while read: take it over. */
		r->cur = r->placed;
		memset(&r->placed, 0, sizeof(r->placed));
		rc = r->placed_rc;
		snprintf(derr, sizeof(derr), "%s", r->placed_err);
		if (rc < 0)
			vfmig_stream_decoded_clear(fr->type, &r->cur);
	} else {
		rc = vfmig_stream_decode(fr->type, fr->payload, fr->length, &r->cur, derr,
					 sizeof(derr));
	}
	if (rc < 0)
		return rfail(r, rc, "record at offset %" PRIu64 " (%s): %s", fr->offset, t->name,
			     derr);
	r->cur_type = fr->type;
	rc = check_order(r, fr, &r->cur);
	if (rc < 0)
		return rc;
	if (vfmig_stream_is_ram_pages(fr->type)) {
		rc = torn_update(r, fr, &r->cur);
		if (rc < 0)
			return rc;
	}
	switch (fr->type) {
	case VFMIG_REC_DEVICE_LIST:
		r->have_list = true;
		r->ndev = r->cur.u.device_list.count;
		break;
	case VFMIG_REC_SWITCHOVER:
		r->switchover = true;
		break;
	case VFMIG_REC_END:
		r->done = true;
		break;
	default:
		break;
	}
	r->nrecords++;
	rec->offset = fr->offset;
	rec->type = fr->type;
	rec->flags = fr->flags;
	rec->length = fr->length;
	rec->payload = fr->payload;
	rec->d = r->cur;
	return 1;
}

int vfmig_stream_next(struct vfmig_stream_reader *r, struct vfmig_stream_record *rec)
{
	struct vfmig__frame fr;
	int rc;

	if (r->error)
		return r->error;
	if (r->done)
		return 0;
	do {
		rc = vfmig__reader_frame(r, &fr);
		if (rc < 0)
			return rc;
		rc = vfmig__reader_accept(r, &fr, rec);
	} while (rc == 0);
	return rc < 0 ? rc : 1;
}

bool vfmig__reader_done(const struct vfmig_stream_reader *r)
{
	return r->done;
}

uint16_t vfmig_stream_reader_minor(const struct vfmig_stream_reader *r)
{
	return r->minor;
}

uint16_t vfmig_stream_reader_csum(const struct vfmig_stream_reader *r)
{
	return r->csum.algo;
}

uint64_t vfmig_stream_reader_torn(const struct vfmig_stream_reader *r)
{
	return r->torn_total;
}

uint32_t vfmig_stream_reader_torn_pending(const struct vfmig_stream_reader *r)
{
	return r->ntorn;
}

uint32_t vfmig_stream_reader_skipped(const struct vfmig_stream_reader *r)
{
	return r->skipped;
}

uint64_t vfmig_stream_reader_offset(const struct vfmig_stream_reader *r)
{
	return r->offset;
}

const char *vfmig_stream_reader_error(const struct vfmig_stream_reader *r)
{
	return r->err;
}

void vfmig_stream_reader_free(struct vfmig_stream_reader *r)
{
	if (!r)
		return;
	vfmig_stream_decoded_clear(r->cur_type, &r->cur);
	vfmig_stream_decoded_clear(VFMIG_REC_RAM_PAGES, &r->placed);
	vfmig__csum_free(&r->csum);
	vfmig__csum_free(&r->page);
	free(r->sums);
	free(r->rtorn);
	free(r->torn);
	for (uint16_t i = 0; i < r->nblocks; i++)
		free(r->blocks[i]);
	free(r->buf);
	free(r);
}
