/* SPDX-License-Identifier: MIT */
/* vfmig device NAME ...: run one of the sample devices in this process. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "help.h"
#include "dma.h"
#include "regs.h"
#include "vram.h"

struct sample {
	const char *name;
	int (*main)(int argc, char **argv);
};

static const struct sample samples[] = {
	{ "regs", vfmig_sample_regs_main },
	{ "vram", vfmig_sample_vram_main },
	{ "dma", vfmig_sample_dma_main },
};

int cmd_device(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "vfmig device: missing device name (one of:");
		for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++)
			fprintf(stderr, " %s", samples[i].name);
		fprintf(stderr, ")\n");
		cli_usage(stderr, "device");
		return 2;
	}
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++)
		if (!strcmp(argv[1], samples[i].name))
			return samples[i].main(argc - 1, argv + 1);
	fprintf(stderr, "vfmig device: unknown device '%s'\n", argv[1]);
	return 2;
}
