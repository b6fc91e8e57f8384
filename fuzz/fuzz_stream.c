/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the migration stream reader: the bytes are read as a
 * stream (every TYPE_STATE decoded through a made-up description), printed
 * into /dev/null, and also fed directly to the field-table decoder. A copy
 * with every checksum recomputed (the records' with the algorithm the header
 * names; a RAM_PAGES_LIVE record's page checksum table and its record
 * checksum without the page data) is read too, so mutations reach the
 * payload decoders instead of stopping at a checksum, and so is a copy
 * whose header is made a 1.1 one with XXH3 records, so every input also
 * runs the 1.1 path. Those two copies
 * are also read a second time with RAM page data placed (received outside
 * the reader's buffer), which must give the same records and errors. The golden
 * streams of 1.0 to 1.3 are the seeds (fuzz/meson.build). Every record
 * read also goes through the multichannel destination's checks
 * (STREAM_INFO's announcement, RAM stripes). Nothing may crash, leak, or
 * read out of bounds.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>
#include <zlib.h>

#include "engine/multichan.h"
#include "stream/stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz {
	uint8_t a;
	uint16_t b;
	uint32_t c;
	uint64_t d;
	bool e;
	uint8_t mac[6];
	uint32_t n;
	uint32_t vec[8];
	uint32_t extra;
};

static const struct vfmig_field fz_fields[] = {
	VFMIG_FIELD_U8_V(struct fz, a, 0),
	VFMIG_FIELD_U16_V(struct fz, b, 0),
	VFMIG_FIELD_U32_V(struct fz, c, 0),
	VFMIG_FIELD_U64_V(struct fz, d, 2),
	VFMIG_FIELD_BOOL_V(struct fz, e, 0),
	VFMIG_FIELD_BYTES_V(struct fz, mac, 0),
	VFMIG_FIELD_U32_V(struct fz, n, 0),
	VFMIG_FIELD_U32_ARRAY_V(struct fz, vec, n, 0),
};
static const struct vfmig_field fz_extra[] = {
	VFMIG_FIELD_U32_V(struct fz, extra, 0),
};
static const struct vfmig_fields_subsection fz_subs[] = {
	{ "extra", NULL, fz_extra, 1 },
};
/* Same name as the golden stream's type, so its seeds reach the decoder. */
static const struct vfmig_fields_desc fz_desc = {
	.name = "golden-type", .version = 2, .min_version = 1, .size = sizeof(struct fz),
	.fields = fz_fields, .nfields = 8, .subsections = fz_subs, .nsubsections = 1,
};

static void decode_state(const uint8_t *p, size_t len)
{
	struct fz s;
	char err[256];

	memset(&s, 0, sizeof(s));
	vfmig_fields_decode(&fz_desc, p, len, &s, err, sizeof(err));
}

/* What a multichannel destination asks of each record it reads: the
 * main stream's STREAM_INFO announcement, and which stripes a RAM_PAGES
 * record's runs fall in (engine/multichan.c). */
static void mchan_checks(const struct vfmig_stream_record *rec)
{
	char id[VFMIG_MCHAN_ID_LEN + 1], err[256] = "";
	unsigned n = 0;
	int r = vfmig_mchan_parse_info(rec, &n, id, sizeof(id), err, sizeof(err));

	if (r == 1 && (n < 2 || n > VFMIG_MCHAN_MAX || strlen(id) != VFMIG_MCHAN_ID_LEN))
		abort();
	if (r < 0 && !err[0])
		abort(); /* every refusal names its reason */
	if (vfmig_stream_is_ram_pages(rec->type)) {
		unsigned in = 0;
		for (unsigned i = 0; i < 3; i++)
			in += vfmig_mchan_runs_in_stripe(rec, i, 3);
		/* A record whose runs all lie in one stripe lies in that one
		 * only; an empty one in all. */
		if (in > 1 && in != 3)
			abort();
		if (in == 3 && rec->d.u.ram_pages.nruns)
			abort();
	}
}

static void read_stream(const uint8_t *data, size_t size)
{
	struct vfmig_stream_reader *r;
	struct vfmig_stream_record rec;
	struct vfmig_io *io;
	char err[256];

	if (vfmig_io_mem_reader(&io, data, size) < 0)
		return;
	if (vfmig_stream_reader_open(&r, io, err, sizeof(err)) == 0) {
		while (vfmig_stream_next(r, &rec) == 1) {
			if (rec.type == VFMIG_REC_TYPE_STATE)
				decode_state(rec.d.u.type_state.state, rec.d.u.type_state.len);
			mchan_checks(&rec);
		}
		vfmig_stream_reader_free(r);
	}
	vfmig_io_close(io);
}

/* Placement for the second reader below: page data goes one run after
 * the other into scratch, from its start at each record, while it fits. */
static uint8_t scratch[1u << 21];
static size_t scratch_used;

static void *place(void *priv, const struct vfmig_stream_str *block, uint32_t page_size,
		   uint64_t addr, uint64_t len)
{
	(void)priv, (void)block, (void)page_size, (void)addr;
	if (len > sizeof(scratch) - scratch_used)
		return NULL;
	scratch_used += (size_t)len;
	return scratch + scratch_used - len;
}

static bool same_ram_pages(const struct vfmig_stream_record *a,
			   const struct vfmig_stream_record *b)
{
	const typeof(a->d.u.ram_pages) *x = &a->d.u.ram_pages, *y = &b->d.u.ram_pages;

	if (x->page_size != y->page_size || x->nruns != y->nruns || x->torn != y->torn ||
	    x->block.len != y->block.len || memcmp(x->block.p, y->block.p, x->block.len))
		return false;
	for (uint32_t i = 0; i < x->nruns; i++) {
		const struct vfmig_stream_ram_run *u = &x->runs[i], *v = &y->runs[i];
		if (u->addr != v->addr || u->npages != v->npages || u->zero != v->zero ||
		    (!u->zero && memcmp(u->data, v->data, (size_t)u->npages * x->page_size)))
			return false;
	}
	return true;
}

/* The same bytes read with and without RAM page placement: the same
 * records, the same RAM_PAGES content, the same error message. */
static void read_placed_alike(const uint8_t *data, size_t size)
{
	struct vfmig_stream_reader *r[2];
	struct vfmig_stream_record rec[2];
	struct vfmig_io *io[2];
	char err[256];
	int rc[2];

	if (vfmig_io_mem_reader(&io[0], data, size) < 0)
		return;
	if (vfmig_io_mem_reader(&io[1], data, size) < 0) {
		vfmig_io_close(io[0]);
		return;
	}
	if (vfmig_stream_reader_open(&r[0], io[0], err, sizeof(err)) == 0) {
		if (vfmig_stream_reader_open(&r[1], io[1], err, sizeof(err)) != 0)
			abort();
		vfmig_stream_reader_set_ram_place(r[1], place, NULL);
		do {
			scratch_used = 0;
			rc[0] = vfmig_stream_next(r[0], &rec[0]);
			rc[1] = vfmig_stream_next(r[1], &rec[1]);
			if (rc[0] != rc[1] ||
			    (rc[0] == 1 && rec[0].type != rec[1].type) ||
			    (rc[0] == 1 && vfmig_stream_is_ram_pages(rec[0].type) &&
			     !same_ram_pages(&rec[0], &rec[1])) ||
			    (rc[0] < 0 && strcmp(vfmig_stream_reader_error(r[0]),
						 vfmig_stream_reader_error(r[1]))))
				abort();
		} while (rc[0] == 1);
		vfmig_stream_reader_free(r[0]);
		vfmig_stream_reader_free(r[1]);
	}
	vfmig_io_close(io[0]);
	vfmig_io_close(io[1]);
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/*
 * A RAM_PAGES_LIVE record (type 11) of len payload bytes at rec: its record
 * checksum skips the page data, and each data page has its own in the table
 * after the runs (docs/stream-format.md). If the payload parses that far,
 * rewrites the table's checksums for the pages as they now are (a table of
 * the wrong length is left alone, for the reader to refuse) and returns
 * true with the record checksum in *sum; false: not that shape, checksum
 * it whole.
 */
static bool fix_live(uint8_t *rec, size_t len, uint32_t *sum)
{
	const uint8_t *pl = rec + 8;
	size_t pos, npages = 0, ndata = 0, spans[64][2], nspans = 0;
	uint32_t ps, nruns;
	XXH3_state_t *x;

	if (len < 2 || (pos = 2 + ((size_t)pl[0] << 8 | pl[1])) + 8 > len)
		return false;
	ps = get32(pl + pos);
	nruns = get32(pl + pos + 4);
	pos += 8;
	if (ps == 0 || (ps & (ps - 1)) || ps > (1u << 20))
		return false;
	for (uint32_t i = 0; i < nruns; i++) {
		if (len - pos < 13 || nspans == 64)
			return false;
		npages = get32(pl + pos + 8);
		bool zero = pl[pos + 12];
		pos += 13;
		if (zero)
			continue;
		if (npages > (len - pos) / ps)
			return false;
		spans[nspans][0] = pos;
		spans[nspans++][1] = npages * ps;
		pos += npages * ps;
		ndata += npages;
	}
	if (len - pos == ndata * 4) {
		size_t t = pos;
		for (size_t i = 0; i < nspans; i++)
			for (size_t o = 0; o < spans[i][1]; o += ps, t += 4)
				put32(rec + 8 + t, (uint32_t)XXH3_64bits(pl + spans[i][0] + o, ps));
	}
	x = XXH3_createState();
	if (!x)
		return false;
	XXH3_64bits_reset(x);
	size_t from = 0;
	for (size_t i = 0; i < nspans; i++) {
		XXH3_64bits_update(x, rec + from, 8 + spans[i][0] - from);
		from = 8 + spans[i][0] + spans[i][1];
	}
	XXH3_64bits_update(x, rec + from, 8 + len - from);
	*sum = (uint32_t)XXH3_64bits_digest(x);
	XXH3_freeState(x);
	return true;
}

/*
 * Recomputes the header and record checksums in place, as far as they go:
 * the header's CRC-32, the records' with XXH3 where a 1.1 header names it
 * (a RAM_PAGES_LIVE record's without its page data, and its page checksum
 * table: fix_live()), else CRC-32 (also for an unknown algorithm, which the
 * reader refuses).
 */
static void fix_crcs(uint8_t *p, size_t size)
{
	size_t off = VFMIG_STREAM_HEADER_SIZE, len;
	uint32_t sum;
	bool xxh3;

	if (size < off)
		return;
	put32(p + 16, (uint32_t)crc32(0, p, 16));
	xxh3 = (p[10] | p[11]) && (p[14] << 8 | p[15]) == VFMIG_STREAM_CSUM_XXH3;
	while (size - off >= 12) {
		len = get32(p + off + 4);
		if (len > size - off - 12)
			break;
		if (!(xxh3 && (p[off] << 8 | p[off + 1]) == VFMIG_REC_RAM_PAGES_LIVE &&
		      fix_live(p + off, len, &sum)))
			sum = xxh3 ? (uint32_t)XXH3_64bits(p + off, 8 + len) :
				     (uint32_t)crc32(0, p + off, (uInt)(8 + len));
		put32(p + off + 8 + len, sum);
		off += 12 + len;
	}
}

/* Makes the header a 1.1 one with XXH3 records (then fix_crcs). */
static void make_v11(uint8_t *p, size_t size)
{
	static const uint8_t v11[8] = { 0, 1, 0, 1, 0, 0, 0, VFMIG_STREAM_CSUM_XXH3 };

	if (size >= VFMIG_STREAM_HEADER_SIZE)
		memcpy(p + 8, v11, sizeof(v11));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *fixed;
	static FILE *null;
	struct vfmig_io *io;
	char err[256];

	if (!null)
		null = fopen("/dev/null", "w");
	read_stream(data, size);
	fixed = malloc(size ? size : 1);
	if (fixed) {
		memcpy(fixed, data, size);
		fix_crcs(fixed, size);
		read_stream(fixed, size);
		read_placed_alike(fixed, size);
		make_v11(fixed, size);
		fix_crcs(fixed, size);
		read_stream(fixed, size);
		read_placed_alike(fixed, size);
		free(fixed);
	}
	if (null && vfmig_io_mem_reader(&io, data, size) == 0) {
		vfmig_stream_print(io, null, err, sizeof(err));
		vfmig_io_close(io);
	}
	decode_state(data, size);
	if (null)
		vfmig_fields_print(null, "", data, size, err, sizeof(err));
	return 0;
}
