/* SPDX-License-Identifier: MIT */
/*
 * A raw vfio-user client for the device library's unit tests: fd is one
 * end of a socketpair whose other end is attached to dev. Each request is
 * handled with vfmig_dev__process_one() before its reply is read, so the
 * tests run on one thread. Failures are cmocka assertions.
 */
#ifndef VFMIG_TESTS_DEVICE_RAW_CLIENT_H
#define VFMIG_TESTS_DEVICE_RAW_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "device/internal.h"

/* Send one request (with fds) and have the device handle it. Returns 0
 * with the reply in *rep (release it; NULL: released here), or the
 * negative errno of an error reply. */
int raw_call(vfmig_dev *dev, int fd, uint16_t cmd, const void *p, size_t len,
	     const int *fds, size_t nfds, struct vfw_msg *rep);

#endif
