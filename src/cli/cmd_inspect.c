/* SPDX-License-Identifier: MIT */
/* vfmig inspect FILE: print every record of a stream and verify it. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "help.h"
#include "stream/io.h"
#include "stream/stream.h"

int cmd_inspect(int argc, char **argv)
{
	struct vfmig_io *io;
	char err[256] = "";
	int r;

	if (argc != 2 || argv[1][0] == '-') {
		cli_usage(stderr, "inspect");
		return 2;
	}
	r = vfmig_io_path(&io, argv[1], false);
	if (r < 0) {
		fprintf(stderr, "vfmig inspect: cannot open %s: %s\n", argv[1],
			strerror(-r));
		return 1;
	}
	r = vfmig_stream_print(io, stdout, err, sizeof(err));
	vfmig_io_close(io);
	if (r < 0) {
		fprintf(stderr, "vfmig inspect: %s: %s\n", argv[1],
			err[0] ? err : strerror(-r));
		return 1;
	}
	return 0;
}
