/* SPDX-License-Identifier: MIT */
/* Stream writer: header, one function per record type, END. */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "be.h"
#include "internal.h"

/*
 * RAM_PAGES_LIVE's page checksums, taken by a thread of their own while the
 * writer's thread sends the same pages (vfmig_stream_writer_sum_aside()).
 * One record at a time: the writer posts it (job), writes the page data,
 * then waits for job to clear before it writes the table.
 */
struct page_sums {
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	const struct vfmig_stream_ram_pages *rp; /* the posted record */
	uint32_t *sums;                          /* its table, big-endian */
	uint16_t algo;
	bool job;  /* rp posted and not yet summed */
	bool quit; /* the writer is being freed */
};

struct vfmig_stream_writer {
	struct vfmig_io *io;
	uint64_t start;     /* io->bytes_written when opened */
	uint32_t nrecords;  /* records written, for END */
	bool have_list;
	bool switchover;
	bool ended;
	uint16_t ndev;
	uint16_t minor;     /* of the header */
	struct vfmig__csum csum; /* the record checksum of the header */
	struct vfmig__csum page; /* RAM_PAGES_LIVE: a page above one piece */
	uint32_t *sums;          /* RAM_PAGES_LIVE: page checksums, big-endian */
	size_t sums_cap;         /* entries */
	struct page_sums *aside; /* NULL: the writer's thread sums the pages */
	bool from_file;          /* RAM_PAGES_LIVE data with vfmig_io_write_file() */
	int error;          /* sticky I/O error */
	char err[256];
};

static int wfail(struct vfmig_stream_writer *w, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int wfail(struct vfmig_stream_writer *w, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(w->err, sizeof(w->err), fmt, ap);
	va_end(ap);
	return rc;
}

struct part {
	const void *p;
	size_t len;
};

/* Checksums len bytes and writes them, a piece at a time; stops at the
 * first I/O error (sticky in w->io, reported by the caller). */
static void write_hashed(struct vfmig_stream_writer *w, const void *p, size_t len)
{
	const uint8_t *b = p;
	size_t n;

	while (len && !vfmig_io_error(w->io)) {
		n = len < VFMIG__STREAM_PIECE ? len : VFMIG__STREAM_PIECE;
		vfmig__csum_update(&w->csum, b, n);
		vfmig_io_write(w->io, b, n);
		b += n;
		len -= n;
	}
}

/* Frames and writes one record whose payload is the concatenation of parts. */
static int write_parts(struct vfmig_stream_writer *w, uint16_t type, uint16_t flags,
		       const struct part *parts, size_t nparts)
{
	uint8_t hdr[VFMIG_STREAM_RECORD_HEADER_SIZE], tail[4];
	size_t i, len = 0;
	int rc;

	if (w->error)
		return w->error;
	if (w->ended)
		return wfail(w, -EINVAL, "record type %u written after END", type);
	if (flags & ~VFMIG_STREAM_F_MUST_UNDERSTAND)
		return wfail(w, -EINVAL, "record flags 0x%x have bits not defined in 1.0", flags);
	for (i = 0; i < nparts; i++) {
		if (parts[i].len > VFMIG_STREAM_MAX_RECORD - len)
			return wfail(w, -EMSGSIZE, "record type %u payload above the %u-byte limit",
				     type, VFMIG_STREAM_MAX_RECORD);
		len += parts[i].len;
	}
	put_be16(hdr, type);
	put_be16(hdr + 2, flags);
	put_be32(hdr + 4, (uint32_t)len);
	/* The checksum is the record's trailer, so each piece can go out
	 * right after it has been checksummed (see VFMIG__STREAM_PIECE). */
	vfmig__csum_begin(&w->csum);
	write_hashed(w, hdr, sizeof(hdr));
	for (i = 0; i < nparts; i++)
		write_hashed(w, parts[i].p, parts[i].len);
	put_be32(tail, vfmig__csum_end(&w->csum));
	rc = vfmig_io_write(w->io, tail, sizeof(tail));
	if (rc < 0) {
		w->error = rc;
		return wfail(w, rc, "writing record type %u: %s", type, strerror(-rc));
	}
	w->nrecords++;
	return 0;
}

/* Writes a catalogue record from an encode buffer (consumed). */
static int write_buf(struct vfmig_stream_writer *w, uint16_t type, struct vfmig__buf *b)
{
	struct part part = { b->data, b->len };
	int rc = b->err;

	if (rc < 0)
		rc = wfail(w, rc, "encoding record type %u: %s", type, strerror(-rc));
	else
		rc = write_parts(w, type, vfmig__rec_type(type)->must_understand ?
				 VFMIG_STREAM_F_MUST_UNDERSTAND : 0, &part, 1);
	vfmig__buf_free(b);
	return rc;
}

static int check_dev(struct vfmig_stream_writer *w, uint16_t dev)
{
	if (!w->have_list)
		return wfail(w, -EINVAL, "device record before DEVICE_LIST");
	if (dev >= w->ndev)
		return wfail(w, -EINVAL, "device index %u not below DEVICE_LIST count %u", dev,
			     w->ndev);
	return 0;
}

int vfmig_stream_writer_open_minor(struct vfmig_stream_writer **out, struct vfmig_io *io,
				   enum vfmig_stream_csum csum, uint16_t minor)
{
	struct vfmig_stream_writer *w;
	uint8_t hdr[VFMIG_STREAM_HEADER_SIZE];
	int rc;

	/* CRC-32 records are format 1.0 exactly; the others name their
	 * algorithm, which 1.0 cannot. */
	if ((csum == VFMIG_STREAM_CSUM_CRC32) != (minor == 0) || minor > VFMIG_STREAM_MINOR_MAX)
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->io = io;
	w->minor = minor;
	w->start = io->bytes_written;
	rc = vfmig__csum_init(&w->csum, (uint16_t)csum);
	if (rc == 0) {
		rc = vfmig__csum_init(&w->page, (uint16_t)csum);
		if (rc < 0)
			vfmig__csum_free(&w->csum);
	}
	if (rc < 0) {
		free(w);
		return rc;
	}
	memcpy(hdr, VFMIG_STREAM_MAGIC, 8);
	put_be16(hdr + 8, VFMIG_STREAM_MAJOR);
	/* CRC-32 records are format 1.0, whose u32 of flags is 0; from 1.1 on
	 * that word is u16 flags (0) and the u16 record checksum algorithm. */
	put_be16(hdr + 10, minor);
	put_be16(hdr + 12, minor >= VFMIG_STREAM_MINOR_LIVE ? VFMIG_STREAM_HF_LIVE : 0);
	put_be16(hdr + 14, (uint16_t)csum);
	put_be32(hdr + 16, vfmig__crc32(0, hdr, 16));
	rc = vfmig_io_write(io, hdr, sizeof(hdr));
	if (rc < 0) {
		vfmig_stream_writer_free(w);
		return rc;
	}
	*out = w;
	return 0;
}

int vfmig_stream_writer_open_csum(struct vfmig_stream_writer **out, struct vfmig_io *io,
				  enum vfmig_stream_csum csum)
{
	return vfmig_stream_writer_open_minor(out, io, csum,
					      csum == VFMIG_STREAM_CSUM_CRC32 ? 0
									: VFMIG_STREAM_MINOR);
}

int vfmig_stream_writer_open(struct vfmig_stream_writer **out, struct vfmig_io *io)
{
	return vfmig_stream_writer_open_csum(out, io, VFMIG_STREAM_CSUM_DEFAULT);
}

int vfmig_stream_write_record(struct vfmig_stream_writer *w, uint16_t type, uint16_t flags,
			      const void *payload, size_t len)
{
	struct part part = { payload, len };

	return write_parts(w, type, flags, &part, 1);
}

int vfmig_stream_write_info(struct vfmig_stream_writer *w,
			    const struct vfmig_stream_kv *kv, size_t n)
{
	struct vfmig__buf b = { 0 };
	size_t i;

	if (n > VFMIG_STREAM_MAX_INFO)
		return wfail(w, -EINVAL, "STREAM_INFO with %zu entries, limit %u", n,
			     VFMIG_STREAM_MAX_INFO);
	vfmig__buf_u16(&b, (uint16_t)n);
	for (i = 0; i < n; i++) {
		vfmig__buf_str(&b, kv[i].key);
		vfmig__buf_str(&b, kv[i].value);
	}
	return write_buf(w, VFMIG_REC_STREAM_INFO, &b);
}

int vfmig_stream_write_device_list(struct vfmig_stream_writer *w,
				   const struct vfmig_stream_device *dev, size_t n)
{
	struct vfmig__buf b = { 0 };
	size_t i, j;
	int rc;

	if (w->have_list)
		return wfail(w, -EINVAL, "second DEVICE_LIST");
	if (n > VFMIG_STREAM_MAX_DEVICES)
		return wfail(w, -EINVAL, "DEVICE_LIST with %zu devices, limit %u", n,
			     VFMIG_STREAM_MAX_DEVICES);
	for (i = 0; i < n; i++) {
		if (!dev[i].id || !dev[i].id[0])
			return wfail(w, -EINVAL, "device %zu has no id", i);
		for (j = 0; j < i; j++)
			if (strcmp(dev[j].id, dev[i].id) == 0)
				return wfail(w, -EINVAL, "device id '%s' listed twice", dev[i].id);
	}
	vfmig__buf_u16(&b, (uint16_t)n);
	for (i = 0; i < n; i++) {
		vfmig__buf_str(&b, dev[i].id);
		vfmig__buf_str(&b, dev[i].type);
		vfmig__buf_str(&b, dev[i].interface);
		vfmig__buf_u32(&b, dev[i].instance);
		vfmig__buf_u32(&b, dev[i].type_version);
	}
	rc = write_buf(w, VFMIG_REC_DEVICE_LIST, &b);
	if (rc == 0) {
		w->have_list = true;
		w->ndev = (uint16_t)n;
	}
	return rc;
}

int vfmig_stream_write_device_begin(struct vfmig_stream_writer *w, uint16_t dev,
				    enum vfmig_stream_phase phase)
{
	uint8_t p[4];
	struct part part = { p, sizeof(p) };
	int rc = check_dev(w, dev);

	if (rc < 0)
		return rc;
	if (phase < VFMIG_PHASE_SETUP || phase > VFMIG_PHASE_FINAL)
		return wfail(w, -EINVAL, "phase %d not in 1..3", (int)phase);
	put_be16(p, dev);
	p[2] = (uint8_t)phase;
	p[3] = 0;
	return write_parts(w, VFMIG_REC_DEVICE_BEGIN, VFMIG_STREAM_F_MUST_UNDERSTAND, &part, 1);
}

int vfmig_stream_write_device_data(struct vfmig_stream_writer *w, uint16_t dev,
				   const void *data, size_t len)
{
	uint8_t p[2];
	struct part parts[2] = { { p, sizeof(p) }, { data, len } };
	int rc = check_dev(w, dev);

	if (rc < 0)
		return rc;
	put_be16(p, dev);
	return write_parts(w, VFMIG_REC_DEVICE_DATA, VFMIG_STREAM_F_MUST_UNDERSTAND, parts, 2);
}

bool vfmig_stream_writer_can_move(const struct vfmig_stream_writer *w)
{
	return w->csum.algo == VFMIG_STREAM_CSUM_XXH3 && w->io->ops->fd;
}

int vfmig_stream_write_device_data_moved(struct vfmig_stream_writer *w, uint16_t dev,
					 size_t len, vfmig_stream_move_fn move, void *priv)
{
	uint8_t hdr[VFMIG__DEVICE_DATA_HEAD];
	int rc = check_dev(w, dev), fd;

	if (rc < 0)
		return rc;
	if (w->error)
		return w->error;
	if (w->ended)
		return wfail(w, -EINVAL, "record type %u written after END", VFMIG_REC_DEVICE_DATA);
	if (!vfmig_stream_writer_can_move(w))
		return wfail(w, -ENOTSUP, "this writer cannot take moved device data");
	if (!len || len > VFMIG_STREAM_MAX_RECORD - 2 || !move)
		return wfail(w, -EINVAL, "moved device data of %zu bytes", len);
	vfmig__device_data_head(hdr, dev, (uint32_t)len);
	rc = vfmig_io_write(w->io, hdr, sizeof(hdr));
	fd = rc < 0 ? rc : vfmig_io_raw_fd(w->io);
	if (fd < 0) {
		w->error = fd;
		return wfail(w, fd, "writing moved device data: %s", strerror(-fd));
	}
	rc = move(priv, fd);
	if (rc < 0) {
		/* Part of the record may be out: the stream is broken. */
		w->error = vfmig_io_fail(w->io, rc);
		return wfail(w, rc, "moving device data of device %u: %s", dev, strerror(-rc));
	}
	vfmig_io_moved(w->io, true, len + 4);
	w->nrecords++;
	return 0;
}

int vfmig_stream_write_device_end(struct vfmig_stream_writer *w, uint16_t dev)
{
	uint8_t p[2];
	struct part part = { p, sizeof(p) };
	int rc = check_dev(w, dev);

	if (rc < 0)
		return rc;
	put_be16(p, dev);
	return write_parts(w, VFMIG_REC_DEVICE_END, VFMIG_STREAM_F_MUST_UNDERSTAND, &part, 1);
}

/* A must-understand record of a u16 index (device or vCPU) and obj
 * encoded by its field table (TYPE_STATE, VCPU_STATE). */
static int write_fields_record(struct vfmig_stream_writer *w, uint16_t type,
			       uint16_t index, const struct vfmig_fields_desc *desc,
			       const void *obj)
{
	uint8_t p[2];
	struct part parts[2] = { { p, sizeof(p) }, { NULL, 0 } };
	uint8_t *state;
	size_t len;
	int rc = vfmig_fields_encode(desc, obj, &state, &len, w->err, sizeof(w->err));

	if (rc < 0)
		return rc;
	put_be16(p, index);
	parts[1].p = state;
	parts[1].len = len;
	rc = write_parts(w, type, VFMIG_STREAM_F_MUST_UNDERSTAND, parts, 2);
	free(state);
	return rc;
}

int vfmig_stream_write_type_state(struct vfmig_stream_writer *w, uint16_t dev,
				  const struct vfmig_fields_desc *desc, const void *obj)
{
	int rc = check_dev(w, dev);

	if (rc < 0)
		return rc;
	return write_fields_record(w, VFMIG_REC_TYPE_STATE, dev, desc, obj);
}

/* One piece of page data: from the file (fd, at offset at; -1: none) while
 * the writer sends from files and io takes it, else from memory (b). */
static void put_piece(struct vfmig_stream_writer *w, const uint8_t *b, size_t n, int fd,
		      uint64_t at)
{
	if (fd >= 0 && w->from_file) {
		if (vfmig_io_write_file(w->io, fd, at, n) != -ENOTSUP)
			return;
		w->from_file = false; /* io cannot: from memory from now on */
	}
	vfmig_io_write(w->io, b, n);
}

/*
 * Writes one run's page data straight from where it is, a piece at a time:
 * each page's own checksum is taken right before its piece goes out (in the
 * cache, and as close to the send as the guest's writes allow), into
 * sums. The record checksum does not cover page data in RAM_PAGES_LIVE.
 */
static void write_live_pages(struct vfmig_stream_writer *w, const uint8_t *b, uint64_t len,
			     uint32_t ps, uint32_t *sums, int fd, uint64_t at)
{
	uint64_t done = 0;
	size_t n, k = 0;

	while (done < len && !vfmig_io_error(w->io)) {
		n = len - done < VFMIG__STREAM_PIECE ? (size_t)(len - done) : VFMIG__STREAM_PIECE;
		/* Both are powers of two: a piece holds whole pages, or a page
		 * whole pieces. */
		if (ps <= VFMIG__STREAM_PIECE) {
			for (size_t off = 0; off < n; off += ps)
				sums[k++] = htobe32(vfmig__csum_once(w->csum.algo, b + off, ps));
		} else {
			if (done % ps == 0)
				vfmig__csum_begin(&w->page);
			vfmig__csum_update(&w->page, b, n);
			if ((done + n) % ps == 0)
				sums[k++] = htobe32(vfmig__csum_end(&w->page));
		}
		put_piece(w, b, n, fd, at + done);
		b += n;
		done += n;
	}
}

void vfmig_stream_writer_pages_from_file(struct vfmig_stream_writer *w, bool on)
{
	w->from_file = on;
}

/* Every data page's checksum of rp, in order, into sums. */
static void sum_runs(uint16_t algo, const struct vfmig_stream_ram_pages *rp, uint32_t *sums)
{
	size_t k = 0;

	for (uint32_t i = 0; i < rp->nruns; i++) {
		const struct vfmig_stream_ram_run *r = &rp->runs[i];

		if (r->zero)
			continue;
		for (uint32_t p = 0; p < r->npages; p++)
			sums[k++] = htobe32(vfmig__csum_once(
				algo, r->data + (size_t)p * rp->page_size, rp->page_size));
	}
}

static void *page_sums_main(void *arg)
{
	struct page_sums *s = arg;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (!s->job && !s->quit)
			pthread_cond_wait(&s->cv, &s->mu);
		if (!s->job)
			break; /* quit, with nothing posted */
		pthread_mutex_unlock(&s->mu);
		sum_runs(s->algo, s->rp, s->sums);
		pthread_mutex_lock(&s->mu);
		s->job = false;
		pthread_cond_broadcast(&s->cv);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

int vfmig_stream_writer_sum_aside(struct vfmig_stream_writer *w)
{
	struct page_sums *s;
	int rc;

	if (w->aside)
		return 0;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->algo = w->csum.algo;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	rc = pthread_create(&s->th, NULL, page_sums_main, s);
	if (rc != 0) {
		pthread_cond_destroy(&s->cv);
		pthread_mutex_destroy(&s->mu);
		free(s);
		return -rc;
	}
	w->aside = s;
	return 0;
}

static void aside_post(struct page_sums *s, const struct vfmig_stream_ram_pages *rp,
		       uint32_t *sums)
{
	pthread_mutex_lock(&s->mu);
	s->rp = rp;
	s->sums = sums;
	s->job = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static void aside_wait(struct page_sums *s)
{
	pthread_mutex_lock(&s->mu);
	while (s->job)
		pthread_cond_wait(&s->cv, &s->mu);
	pthread_mutex_unlock(&s->mu);
}

static void aside_free(struct page_sums *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->quit = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->th, NULL);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

/* A run's page data as it is, a piece at a time, for a record whose
 * checksums the aside thread takes. */
static void write_pages(struct vfmig_stream_writer *w, const uint8_t *b, uint64_t len, int fd,
			uint64_t at)
{
	uint64_t done = 0;

	while (done < len && !vfmig_io_error(w->io)) {
		size_t n = len - done < VFMIG__STREAM_PIECE ? (size_t)(len - done)
							    : VFMIG__STREAM_PIECE;

		put_piece(w, b + done, n, fd, at + done);
		done += n;
	}
}

/* RAM_PAGES_LIVE: the RAM_PAGES payload, then a u32 checksum per data page;
 * the record checksum covers everything but the page data. */
static int write_ram_live(struct vfmig_stream_writer *w, const struct vfmig_stream_ram_pages *rp,
			  uint64_t len, uint64_t data_pages)
{
	uint8_t hdr[VFMIG_STREAM_RECORD_HEADER_SIZE], run[13], tail[4];
	struct vfmig__buf b = { 0 };
	uint64_t k = 0;
	int rc, fd;

	if (w->error)
		return w->error;
	if (w->ended)
		return wfail(w, -EINVAL, "record type %u written after END",
			     VFMIG_REC_RAM_PAGES_LIVE);
	if (data_pages > w->sums_cap) {
		uint32_t *p = realloc(w->sums, (size_t)data_pages * sizeof(*p));

		if (!p)
			return wfail(w, -ENOMEM, "no memory for %" PRIu64 " page checksums",
				     data_pages);
		w->sums = p;
		w->sums_cap = (size_t)data_pages;
	}
	vfmig__buf_str(&b, rp->block);
	vfmig__buf_u32(&b, rp->page_size);
	vfmig__buf_u32(&b, rp->nruns);
	if (b.err < 0) {
		rc = b.err;
		vfmig__buf_free(&b);
		return wfail(w, rc, "encoding record type %u: %s", VFMIG_REC_RAM_PAGES_LIVE,
			     strerror(-rc));
	}
	put_be16(hdr, VFMIG_REC_RAM_PAGES_LIVE);
	put_be16(hdr + 2, VFMIG_STREAM_F_MUST_UNDERSTAND);
	put_be32(hdr + 4, (uint32_t)len);
	vfmig__csum_begin(&w->csum);
	write_hashed(w, hdr, sizeof(hdr));
	write_hashed(w, b.data, b.len);
	vfmig__buf_free(&b);
	/* Summed aside, a page's checksum may be taken before or after its
	 * bytes go out: either way a difference means the guest wrote the
	 * page after its dirty bit was taken, and it goes again. */
	if (w->aside && data_pages)
		aside_post(w->aside, rp, w->sums);
	for (uint32_t i = 0; i < rp->nruns; i++) {
		const struct vfmig_stream_ram_run *r = &rp->runs[i];
		uint64_t bytes = (uint64_t)r->npages * rp->page_size;

		put_be64(run, r->addr);
		put_be32(run + 8, r->npages);
		run[12] = r->zero ? 1 : 0;
		write_hashed(w, run, sizeof(run));
		if (r->zero)
			continue;
		fd = rp->in_file ? rp->file_fd : -1;
		if (w->aside)
			write_pages(w, r->data, bytes, fd, r->addr);
		else
			write_live_pages(w, r->data, bytes, rp->page_size, w->sums + k, fd,
					 r->addr);
		k += r->npages;
	}
	if (w->aside && data_pages)
		aside_wait(w->aside); /* also after an error: rp is the caller's */
	write_hashed(w, w->sums, (size_t)data_pages * sizeof(uint32_t));
	put_be32(tail, vfmig__csum_end(&w->csum));
	rc = vfmig_io_write(w->io, tail, sizeof(tail));
	if (rc < 0) {
		w->error = rc;
		return wfail(w, rc, "writing record type %u: %s", VFMIG_REC_RAM_PAGES_LIVE,
			     strerror(-rc));
	}
	w->nrecords++;
	return 0;
}

int vfmig_stream_write_ram_pages(struct vfmig_stream_writer *w,
				 const struct vfmig_stream_ram_pages *rp)
{
	struct vfmig__buf b = { 0 };
	uint32_t i, ps = rp->page_size;
	uint64_t len, data_pages = 0;
	bool live;

	if (ps < 512 || ps > (1u << 30) || (ps & (ps - 1)))
		return wfail(w, -EINVAL, "page size %u is not a power of two in 512..1G", ps);
	if (!rp->block || strlen(rp->block) > UINT16_MAX)
		return wfail(w, -EINVAL, "RAM block name missing or over 65535 bytes");
	len = 2 + strlen(rp->block) + 8;
	for (i = 0; i < rp->nruns; i++) {
		const struct vfmig_stream_ram_run *r = &rp->runs[i];
		uint64_t bytes = (uint64_t)r->npages * ps;

		if (r->npages == 0 || r->addr % ps || r->addr > UINT64_MAX - bytes ||
		    (!r->zero && (!r->data || bytes > VFMIG_STREAM_MAX_RECORD)))
			return wfail(w, -EINVAL, "RAM run %u invalid or too large", i);
		len += 13;
		if (!r->zero) {
			len += bytes;
			data_pages += r->npages;
		}
		if (len > VFMIG_STREAM_MAX_RECORD)
			break; /* refused below, before any sum can overflow */
	}
	live = w->minor >= VFMIG_STREAM_MINOR_LIVE;
	if (live && len <= VFMIG_STREAM_MAX_RECORD)
		len += data_pages * 4;
	if (len > VFMIG_STREAM_MAX_RECORD)
		return wfail(w, -EMSGSIZE, "record type %u payload above the %u-byte limit",
			     live ? VFMIG_REC_RAM_PAGES_LIVE : VFMIG_REC_RAM_PAGES,
			     VFMIG_STREAM_MAX_RECORD);
	if (live)
		return write_ram_live(w, rp, len, data_pages);
	vfmig__buf_str(&b, rp->block);
	vfmig__buf_u32(&b, ps);
	vfmig__buf_u32(&b, rp->nruns);
	for (i = 0; i < rp->nruns; i++) {
		const struct vfmig_stream_ram_run *r = &rp->runs[i];

		vfmig__buf_u64(&b, r->addr);
		vfmig__buf_u32(&b, r->npages);
		vfmig__buf_u8(&b, r->zero ? 1 : 0);
		if (!r->zero)
			vfmig__buf_bytes(&b, r->data, (size_t)r->npages * ps);
	}
	return write_buf(w, VFMIG_REC_RAM_PAGES, &b);
}

int vfmig_stream_write_switchover(struct vfmig_stream_writer *w)
{
	int rc;

	if (w->switchover)
		return wfail(w, -EINVAL, "second SWITCHOVER");
	rc = write_parts(w, VFMIG_REC_SWITCHOVER, VFMIG_STREAM_F_MUST_UNDERSTAND, NULL, 0);
	if (rc == 0)
		w->switchover = true;
	return rc;
}

int vfmig_stream_write_vcpu_state(struct vfmig_stream_writer *w, uint16_t vcpu,
				  const struct vfmig_fields_desc *desc, const void *obj)
{
	if (w->minor < VFMIG_STREAM_MINOR_VCPU)
		return wfail(w, -EINVAL, "VCPU_STATE needs format 1.%u; this stream is 1.%u",
			     VFMIG_STREAM_MINOR_VCPU, w->minor);
	if (!w->switchover)
		return wfail(w, -EINVAL, "VCPU_STATE before SWITCHOVER");
	if (vcpu >= VFMIG_STREAM_MAX_VCPUS)
		return wfail(w, -EINVAL, "vCPU index %u not below %u", vcpu,
			     VFMIG_STREAM_MAX_VCPUS);
	return write_fields_record(w, VFMIG_REC_VCPU_STATE, vcpu, desc, obj);
}

int vfmig_stream_writer_end(struct vfmig_stream_writer *w)
{
	uint8_t p[4];
	struct part part = { p, sizeof(p) };
	int rc;

	if (!w->have_list)
		return wfail(w, -EINVAL, "END without a DEVICE_LIST");
	put_be32(p, w->nrecords);
	rc = write_parts(w, VFMIG_REC_END, VFMIG_STREAM_F_MUST_UNDERSTAND, &part, 1);
	if (rc < 0)
		return rc;
	w->ended = true;
	rc = vfmig_io_flush(w->io);
	if (rc < 0) {
		w->error = rc;
		return wfail(w, rc, "flushing the stream: %s", strerror(-rc));
	}
	return 0;
}

uint64_t vfmig_stream_writer_bytes(const struct vfmig_stream_writer *w)
{
	return w->io->bytes_written - w->start;
}

const char *vfmig_stream_writer_error(const struct vfmig_stream_writer *w)
{
	return w->err;
}

void vfmig_stream_writer_free(struct vfmig_stream_writer *w)
{
	if (!w)
		return;
	aside_free(w->aside);
	vfmig__csum_free(&w->csum);
	vfmig__csum_free(&w->page);
	free(w->sums);
	free(w);
}
