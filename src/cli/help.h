/* SPDX-License-Identifier: MIT */
/*
 * The usage texts of vfmig and its subcommands, in one place: `--help`
 * and `-h` print them on stdout (exit 0), a usage error on stderr (exit
 * 2). docs/vfmig.1 describes the same options; tests/integration/
 * cli_help.sh checks that every option printed here is in it.
 */
#ifndef VFMIG_CLI_HELP_H
#define VFMIG_CLI_HELP_H

#include <stdbool.h>
#include <stdio.h>

/* Print the usage of cmd ("vfmig" for the command itself, "demo",
 * "device", "device regs", ...) on out. Returns false (printing nothing)
 * for a name without a text. */
bool cli_usage(FILE *out, const char *cmd);

/* Whether argv[1..argc-1] asks for help (--help or -h). */
bool cli_help_asked(int argc, char **argv);

#endif
