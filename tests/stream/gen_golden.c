/* SPDX-License-Identifier: MIT */
/*
 * Writes the golden stream of a format version. Run ONCE per released format
 * version and check the output in:
 *   build/tests/stream/gen-golden 1.0 tests/stream/golden/v1.0.vfmig
 *   build/tests/stream/gen-golden 1.1 tests/stream/golden/v1.1.vfmig
 *   build/tests/stream/gen-golden 1.2 tests/stream/golden/v1.2.vfmig
 *   build/tests/stream/gen-golden 1.3 tests/stream/golden/v1.3.vfmig
 * Never regenerate an existing version's file: test_golden proves that
 * today's reader (and writer) still handle the released bytes.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "golden_content.h"

int main(int argc, char **argv)
{
	enum vfmig_stream_csum csum;
	struct vfmig_io *io;
	int rc;

	if (argc != 3 || (strcmp(argv[1], "1.0") && strcmp(argv[1], "1.1") &&
			  strcmp(argv[1], "1.2") && strcmp(argv[1], "1.3"))) {
		fprintf(stderr, "usage: %s 1.0|1.1|1.2|1.3 OUTPUT\n", argv[0]);
		return 2;
	}
	/* 1.0 has CRC-32 records; 1.1 is the same content with XXH3; 1.2
	 * adds a VCPU_STATE; 1.3 carries the RAM pages as RAM_PAGES_LIVE. */
	csum = strcmp(argv[1], "1.0") ? VFMIG_STREAM_CSUM_XXH3 : VFMIG_STREAM_CSUM_CRC32;
	rc = vfmig_io_path(&io, argv[2], true);
	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", argv[2], strerror(-rc));
		return 1;
	}
	rc = golden_write_minor(io, csum, (uint16_t)(argv[1][2] - '0'));
	if (vfmig_io_close(io) < 0 && rc == 0)
		rc = -EIO;
	if (rc < 0) {
		fprintf(stderr, "writing %s: %s\n", argv[2], strerror(-rc));
		return 1;
	}
	return 0;
}
