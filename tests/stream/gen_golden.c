/* SPDX-License-Identifier: MIT */
/*
 * Writes the golden stream of format 1.0. Run ONCE per released format
 * version and check the output in:
 *   build/tests/stream/gen-golden tests/stream/golden/v1.0.vfmig
 * Never regenerate an existing version's file: test_golden proves that
 * today's reader (and writer) still handle the released bytes.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "golden_content.h"

int main(int argc, char **argv)
{
	struct vfmig_io *io;
	int rc;

	if (argc != 2) {
		fprintf(stderr, "usage: %s OUTPUT\n", argv[0]);
		return 2;
	}
	rc = vfmig_io_path(&io, argv[1], true);
	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", argv[1], strerror(-rc));
		return 1;
	}
	rc = golden_write(io);
	if (vfmig_io_close(io) < 0 && rc == 0)
		rc = -EIO;
	if (rc < 0) {
		fprintf(stderr, "writing %s: %s\n", argv[1], strerror(-rc));
		return 1;
	}
	return 0;
}
