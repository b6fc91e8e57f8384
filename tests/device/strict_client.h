/* SPDX-License-Identifier: MIT */
/*
 * A strict GET_REGION_INFO client, shared by the device tests, that asks
 * the way QEMU's vfio-user client does and accepts only what that client
 * (and libvfio-user's sample client) accept:
 *
 *   1. ask with argsz 32, the bare struct;
 *   2. the reply must be 32..argsz bytes with argsz >= 32 and the index
 *      echoed; FLAG_CAPS needs cap_offset >= 32 and the chain inside the
 *      reply; an fd comes with FLAG_MMAP and only then;
 *   3. a reply announcing argsz > 32 is truncated: it must carry no
 *      FLAG_CAPS, no FLAG_MMAP, cap_offset 0 and no fd. Ask again with the
 *      announced argsz; that reply must be exactly argsz bytes, announce
 *      the same argsz, and its capability chain must parse.
 *
 * Any breach fails the test (cmocka). The transport is the caller's.
 */
#ifndef VFMIG_TESTS_DEVICE_STRICT_CLIENT_H
#define VFMIG_TESTS_DEVICE_STRICT_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "protocol/proto.h"

/* Send one GET_REGION_INFO request and receive its reply: 0 with *rep
 * filled (the strict client releases it), or the negative errno of an
 * error reply. */
typedef int (*strict_call_fn)(void *ctx, const struct vfw_region_info *req,
			      struct vfw_msg *rep);

#define STRICT_MAX_AREAS 8

struct strict_region {
	uint32_t flags; /* VFW_REGION_INFO_FLAG_* of the final reply */
	uint64_t size, offset;
	bool retried;   /* the first reply was truncated */
	bool has_type;  /* a TYPE capability was found */
	uint32_t type, subtype;
	uint32_t nr_areas; /* areas of a SPARSE_MMAP capability */
	struct vfw_sparse_mmap_area areas[STRICT_MAX_AREAS];
	int fd;            /* the fd of the final reply, or -1; caller closes */
};

/* Probe region index as described above. 0 with *out filled, or the
 * negative errno of an error reply to the first request. */
int strict_region_info(strict_call_fn call, void *ctx, uint32_t index,
		       struct strict_region *out);

#endif
