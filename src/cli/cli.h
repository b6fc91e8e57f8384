/* SPDX-License-Identifier: MIT */
/* The vfmig command: one function per subcommand. */
#ifndef VFMIG_CLI_H
#define VFMIG_CLI_H

/* Each takes the arguments after the subcommand name (argv[0] is the
 * subcommand itself) and returns the process exit status. */
int cmd_device(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_save(int argc, char **argv);
int cmd_vmm(int argc, char **argv);

#endif
