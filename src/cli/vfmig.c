/* SPDX-License-Identifier: MIT */
/* vfmig: entry point and subcommand table. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "help.h"
#include "protocol/tscale.h"

struct subcommand {
	const char *name;
	int (*run)(int argc, char **argv);
};

static const struct subcommand subcommands[] = {
	{ "demo", cmd_demo },       { "device", cmd_device },
	{ "migrate", cmd_migrate }, { "save", cmd_save },
	{ "inspect", cmd_inspect }, { "vmm", cmd_vmm },
};

/* `vfmig CMD ... --help`: CMD's usage on stdout. For `device NAME` the
 * device's own usage, when there is one. */
static int help(const char *cmd, int argc, char **argv)
{
	char sub[64];

	if (!strcmp(cmd, "device") && argc > 1 && argv[1][0] != '-' &&
	    snprintf(sub, sizeof(sub), "device %s", argv[1]) <
		    (int)sizeof(sub) &&
	    cli_usage(stdout, sub))
		return 0;
	cli_usage(stdout, cmd);
	return 0;
}

/*
 * The libraries take an invalid VFMIG_TIMEOUT_SCALE for 1; the command
 * refuses it before it starts anything.
 */
static bool timeout_scale_ok(void)
{
	char err[128];
	unsigned v;

	if (vfw_timeout_scale_parse(getenv(VFW_TIMEOUT_SCALE_ENV), &v, err,
				    sizeof(err)) == 0)
		return true;
	fprintf(stderr, "vfmig: %s\n", err);
	return false;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		cli_usage(stderr, "vfmig");
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		cli_usage(stdout, "vfmig");
		return 0;
	}
	for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]);
	     i++) {
		if (strcmp(argv[1], subcommands[i].name))
			continue;
		if (cli_help_asked(argc - 1, argv + 1))
			return help(argv[1], argc - 1, argv + 1);
		if (!timeout_scale_ok())
			return 2;
		return subcommands[i].run(argc - 1, argv + 1);
	}
	fprintf(stderr, "vfmig: unknown command '%s'\n", argv[1]);
	cli_usage(stderr, "vfmig");
	return 2;
}
