/* SPDX-License-Identifier: MIT */
/*
 * What every sample device process does the same way: the vfio-user backend
 * options ((--socket-path PATH | --fd N), --interface, --socket-mode,
 * --allow-uid, --quiet, --verbose,
 * each value option as "--opt VAL" or "--opt=VAL"; a sample's own flags)
 * and serving until SIGTERM or SIGINT. Built on the public device API only.
 */
#ifndef VFMIG_SAMPLE_CLI_H
#define VFMIG_SAMPLE_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include <vfmig/device.h>

#include "access_opts.h"

struct sample_cli {
	const char *name; /* the sample's name, for messages */
	/* The sample's own value options, and where their values go. */
	size_t n_extra;
	const char *const *extra_names; /* e.g. "--size" */
	const char **extra_vals;        /* NULL where not given */
	/* The sample's own flags (no value), e.g. "--endless-stop-copy". */
	size_t n_flags;
	const char *const *flag_names;
	bool *flag_vals;                /* set to true when given */
	/* Filled by sample_cli_parse(). */
	const char *socket_path, *fd, *interface;
	const char *socket_mode, *allow_uid; /* as given, or NULL */
	unsigned int mode; /* --socket-mode; 0: the library's 0600 */
	uid_t uids[ACCESS_OPTS_MAX_UIDS]; /* --allow-uid */
	size_t n_uids;
	int verbosity; /* enum vfmig_log_level */
};

/* Parse argv[1..] into c. Returns 0, or -1 after printing what is wrong. */
int sample_cli_parse(struct sample_cli *c, int argc, char **argv);

/* Listen on --socket-path (or take --fd), then run dev until SIGTERM or
 * SIGINT. Returns the process exit status: 0, 1 (runtime), 2 (usage). */
int sample_cli_serve(vfmig_dev *dev, const struct sample_cli *c);

/*
 * As sample_cli_serve, with an event loop of its own (the public poll
 * API) that also watches wake_fd (an eventfd a device's thread signals):
 * when it is readable it is drained and on_wake(dev, priv) runs on this
 * thread, the library's, where interrupts may be raised.
 */
int sample_cli_serve_wake(vfmig_dev *dev, const struct sample_cli *c,
			  int wake_fd, void (*on_wake)(vfmig_dev *, void *),
			  void *priv);

#endif
