/* SPDX-License-Identifier: MIT */
/* Test helpers: streams written into memory, and their bytes. */
#ifndef VFMIG_TESTS_RAM_STREAM_H
#define VFMIG_TESTS_RAM_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stream/stream.h"

struct vfmig_io;

/* Returns a malloc'd copy of what the memory writer io holds (its count in
 * *len) and closes io. */
uint8_t *test_mem_take(struct vfmig_io *io, size_t *len);

/*
 * Writes a stream of format 1.minor with XXH3 record checksums: an empty
 * DEVICE_LIST, the records rp[0..n) and END. Returns a malloc'd copy of its
 * bytes (the caller frees it) and their count in *len; any failure fails
 * the calling cmocka test.
 */
uint8_t *test_ram_stream(uint16_t minor, const struct vfmig_stream_ram_pages *rp, size_t n,
			 size_t *len);
/* The same; aside: the page checksums on the writer's own thread
 * (vfmig_stream_writer_sum_aside()). */
uint8_t *test_ram_stream_aside(uint16_t minor, const struct vfmig_stream_ram_pages *rp,
			       size_t n, size_t *len, bool aside);

#endif
