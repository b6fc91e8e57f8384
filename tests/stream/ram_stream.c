/* SPDX-License-Identifier: MIT */
/* Test helpers: streams written into memory, and their bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ram_stream.h"
#include "stream/io.h"

uint8_t *test_mem_take(struct vfmig_io *io, size_t *len)
{
	const uint8_t *p = vfmig_io_mem_data(io, len);
	uint8_t *copy = malloc(*len ? *len : 1);

	/* The memory io owns its bytes until close: the caller gets a copy. */
	assert_non_null(copy);
	memcpy(copy, p, *len);
	vfmig_io_close(io);
	return copy;
}

uint8_t *test_ram_stream_aside(uint16_t minor, const struct vfmig_stream_ram_pages *rp,
			       size_t n, size_t *len, bool aside)
{
	struct vfmig_stream_writer *w;
	struct vfmig_io *io;

	assert_int_equal(vfmig_io_mem_writer(&io), 0);
	assert_int_equal(vfmig_stream_writer_open_minor(&w, io, VFMIG_STREAM_CSUM_XXH3, minor), 0);
	if (aside) {
		assert_int_equal(vfmig_stream_writer_sum_aside(w), 0);
		assert_int_equal(vfmig_stream_writer_sum_aside(w), 0); /* idempotent */
	}
	assert_int_equal(vfmig_stream_write_device_list(w, NULL, 0), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(vfmig_stream_write_ram_pages(w, &rp[i]), 0);
	assert_int_equal(vfmig_stream_writer_end(w), 0);
	vfmig_stream_writer_free(w);
	return test_mem_take(io, len);
}

uint8_t *test_ram_stream(uint16_t minor, const struct vfmig_stream_ram_pages *rp, size_t n,
			 size_t *len)
{
	return test_ram_stream_aside(minor, rp, n, len, false);
}
