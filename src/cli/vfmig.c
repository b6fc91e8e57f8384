/* SPDX-License-Identifier: MIT */
/* vfmig: entry point and subcommand table. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

struct subcommand {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *usage;
};

static const struct subcommand subcommands[] = {
	{ "demo", cmd_demo,
	  "demo [--json] [--interface v2|region] [--downtime-ms N]\n"
	  "                                migrate sample devices live between two VMMs" },
	{ "device", cmd_device,
	  "device NAME (--socket-path PATH | --fd N) [--interface v2|region]\n"
	  "                                run a sample device (NAME: regs, vram)" },
	{ "migrate", cmd_migrate,
	  "migrate --control PATH URI [--downtime-ms N] [--max-rounds N]\n"
	  "        [--connect-timeout-ms N] [--json]\n"
	  "                                migrate a running VMM live" },
	{ "save", cmd_save,
	  "save --control PATH FILE      stop a VMM and save it to FILE" },
	{ "inspect", cmd_inspect,
	  "inspect FILE                  print and verify a migration stream" },
	{ "vmm", cmd_vmm,
	  "vmm --device SOCKET... [--ram SIZE] [--control PATH] [--incoming URI]\n"
	  "                                run a VMM with guest RAM and a guest driver" },
};

static void usage(FILE *out)
{
	fprintf(out, "usage: vfmig COMMAND [options]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]);
	     i++)
		fprintf(out, "  %s\n", subcommands[i].usage);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]);
	     i++)
		if (!strcmp(argv[1], subcommands[i].name))
			return subcommands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "vfmig: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
