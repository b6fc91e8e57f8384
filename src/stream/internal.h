/* SPDX-License-Identifier: MIT */
/* Helpers shared between the files of libvfmig_stream; not for other parts. */
#ifndef VFMIG_STREAM_INTERNAL_H
#define VFMIG_STREAM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "stream.h"

/* snprintf into err (if not NULL and errlen > 0). */
void vfmig__err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prints up to max bytes as " xx xx ..." (with " ..." if cut). */
void vfmig__print_hex(FILE *f, const uint8_t *p, size_t len, size_t max);

/* CRC-32 (zlib) over any length. */
uint32_t vfmig__crc32(uint32_t crc, const void *p, size_t len);

/* A record checksum being computed, of one algorithm (csum.c). */
struct vfmig__csum {
	uint16_t algo;  /* enum vfmig_stream_csum */
	uint32_t crc;   /* CRC-32: the running value */
	struct XXH3_state_s *xxh; /* XXH3: the streaming state (owned) */
};

/* Sets c up for algo. Returns 0, -EINVAL (unknown algorithm) or -ENOMEM. */
int vfmig__csum_init(struct vfmig__csum *c, uint16_t algo);
/* Starts a record: begin, update over its bytes in order, end. */
void vfmig__csum_begin(struct vfmig__csum *c);
void vfmig__csum_update(struct vfmig__csum *c, const void *p, size_t len);
uint32_t vfmig__csum_end(const struct vfmig__csum *c);
/* The checksum of one buffer on its own (RAM_PAGES_LIVE's page sums). */
uint32_t vfmig__csum_once(uint16_t algo, const void *p, size_t len);
/* Releases what init allocated (c itself is the caller's). */
void vfmig__csum_free(struct vfmig__csum *c);

/*
 * Record data is checksummed and moved in pieces of at most this many
 * bytes: the writer checksums a piece and writes it while it is still in
 * the cache, the reader checksums each piece right after it has landed,
 * so a record's data is read from memory once on each side instead of
 * twice (docs/benchmarks.md, "The stream in cache-sized pieces"; the
 * size: "Stream pieces of 512 KiB instead of 128 KiB").
 * The record checksum covers the same bytes in the same order: the
 * format does not change.
 */
#define VFMIG__STREAM_PIECE (512u << 10)

/* One entry of the record catalogue. */
struct vfmig__rec_type {
	const char *name;
	bool must_understand; /* what a 1.0 writer sets */
	int (*decode)(const uint8_t *p, uint32_t len, struct vfmig_stream_decoded *d,
		      char *err, size_t errlen);
	void (*print)(FILE *f, const struct vfmig_stream_decoded *d); /* whole lines */
};

/* The catalogue entry for type, or NULL if unknown to this version. */
const struct vfmig__rec_type *vfmig__rec_type(uint16_t type);

/* A record as framed on the wire, before any check but the length limit. */
/* The 10 bytes before the data of a DEVICE_DATA record for device dev with
 * len bytes of data: record header and device index (writer.c, and the
 * seal's checksum in csum.c, which covers them). */
#define VFMIG__DEVICE_DATA_HEAD (VFMIG_STREAM_RECORD_HEADER_SIZE + 2)
void vfmig__device_data_head(uint8_t *h, uint16_t dev, uint32_t len);

struct vfmig__frame {
	uint64_t offset;
	uint16_t type;
	uint16_t flags;
	uint32_t length;
	const uint8_t *payload;
	uint32_t csum_stored;
	uint32_t csum_computed;
	/* A RAM_PAGES record read with the reader's placement function, or
	 * any RAM_PAGES_LIVE: it is decoded already (the reader keeps the
	 * result), payload is NULL. */
	bool placed;
};

/*
 * Reads one frame. Returns 1, or a negative errno (truncation, length above
 * the limit, I/O) with the reader's error set.
 */
int vfmig__reader_frame(struct vfmig_stream_reader *r, struct vfmig__frame *fr);

/*
 * Checks a frame (checksum, flags, known/mandatory type, payload, record
 * order) and fills rec. Returns 1 (accepted), 0 (unknown optional record,
 * skipped) or a negative errno with the reader's error set.
 */
int vfmig__reader_accept(struct vfmig_stream_reader *r, const struct vfmig__frame *fr,
			 struct vfmig_stream_record *rec);

/* Whether the reader has returned END. */
bool vfmig__reader_done(const struct vfmig_stream_reader *r);

#endif
