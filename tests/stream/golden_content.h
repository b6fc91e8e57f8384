/* SPDX-License-Identifier: MIT */
/*
 * The content of the golden streams tests/stream/golden/v1.0.vfmig (CRC-32
 * records), v1.1.vfmig (XXH3 records: the same records, other checksums)
 * v1.2.vfmig (v1.1's records and a VCPU_STATE) and v1.3.vfmig (v1.2's
 * with the RAM pages as RAM_PAGES_LIVE),
 * written through today's writer. gen_golden writes each once to the
 * checked-in file; test_golden reads the files back (checking every decoded
 * value independently) and also checks that today's writer still produces
 * the same bytes.
 */
#ifndef VFMIG_TESTS_STREAM_GOLDEN_CONTENT_H
#define VFMIG_TESTS_STREAM_GOLDEN_CONTENT_H

#include <stdbool.h>
#include <stdint.h>

#include "stream/stream.h"

/* A made-up device type state: nothing PCI about it. */
struct golden_state {
	uint8_t a;
	uint16_t b;
	uint32_t c;
	uint64_t d;          /* added in version 2 */
	bool e;
	uint8_t mac[6];
	uint32_t n;          /* elements used in vec */
	uint32_t vec[8];
	bool has_extra;      /* not migrated: decides the subsection */
	uint32_t extra;      /* subsection "extra" */
};

extern const struct vfmig_fields_desc golden_desc; /* "golden-type" v2, min 1 */

/* The two states the golden stream carries (device 0 with the subsection,
 * device 1 without). */
void golden_state0(struct golden_state *s);
void golden_state1(struct golden_state *s);

/* Fills page i of the RAM_PAGES data run (4096 bytes). */
void golden_page(uint8_t *page, unsigned i);

/* Writes the golden stream with record checksums of csum to io
 * (CRC-32: format 1.0, else 1.1). Returns 0 or a negative errno. */
int golden_write(struct vfmig_io *io, enum vfmig_stream_csum csum);

/* The same in the format 1.minor (0: CRC-32 only; 1; 2: the same records
 * plus a VCPU_STATE for vCPU 0 carrying golden_state1 before END; 3: 2's
 * with RAM_PAGES_LIVE in place of RAM_PAGES). */
int golden_write_minor(struct vfmig_io *io, enum vfmig_stream_csum csum, uint16_t minor);

#endif
