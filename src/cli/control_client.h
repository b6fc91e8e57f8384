/* SPDX-License-Identifier: MIT */
/* A small client of the control socket, for vfmig migrate/save/demo. */
#ifndef VFMIG_CLI_CONTROL_CLIENT_H
#define VFMIG_CLI_CONTROL_CLIENT_H

#include <json-c/json.h>
#include <stddef.h>

struct ctl_client {
	int fd;
	char buf[1 << 16];
	size_t len;
};

/* Connect to the control socket at path (retrying briefly while the VMM
 * starts) and read its greeting. Returns 0 or -errno with err filled. */
int ctl_client_open(struct ctl_client *c, const char *path, char *err,
		    size_t errlen);

/*
 * Execute a command. args (may be NULL) is consumed. Events that arrive
 * first are skipped. On success *ret is the "return" object (caller puts
 * it). An error reply gives -EIO with its "desc" in err.
 */
int ctl_client_call(struct ctl_client *c, const char *name,
		    struct json_object *args, struct json_object **ret,
		    char *err, size_t errlen);

void ctl_client_close(struct ctl_client *c);

#endif
