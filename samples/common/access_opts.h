/* SPDX-License-Identifier: MIT */
/*
 * The values of the socket access options that `vfmig device *` and
 * `vfmig vmm` share: --socket-mode MODE (the socket file's permission
 * bits) and --allow-uid LIST (the peer uids served). Pure parsing: no
 * library, no socket.
 */
#ifndef VFMIG_SAMPLE_ACCESS_OPTS_H
#define VFMIG_SAMPLE_ACCESS_OPTS_H

#include <stddef.h>
#include <sys/types.h>

/* Most uids one --allow-uid takes (the device library's limit too). */
#define ACCESS_OPTS_MAX_UIDS 64u

/*
 * An octal mode of 1 to 4 digits ("0600", "660"), at most 0777, with owner
 * read and write (0600): a socket its owner cannot use is a mistake.
 * Returns 0 and sets *mode, or -EINVAL with the reason in err.
 */
int access_opts_parse_mode(const char *s, unsigned int *mode, char *err,
			   size_t errlen);

/*
 * A comma-separated list of uids: decimal numbers (0..4294967294), "self"
 * (our effective uid) or user names (looked up in the user database).
 * Duplicates are kept once. Returns 0 with *n uids in uids (at most max),
 * or -EINVAL (empty list or item, unknown name, bad number) or -E2BIG
 * (more than max), with the reason in err.
 */
int access_opts_parse_uids(const char *s, uid_t *uids, size_t max, size_t *n,
			   char *err, size_t errlen);

#endif
