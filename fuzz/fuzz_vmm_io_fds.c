/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the check of a DEVICE_GET_REGION_IO_FDS reply
 * (vmm_parse_io_fds, src/vmm/io_fds.c). The first 8 bytes give the
 * region's size (1 << (byte 0 & 63) when byte 1 is even, else bytes 2..5
 * as a little-endian count), byte 6 the fds that came with the reply
 * (0..16) and byte 7 the argsz asked for (16 + 40 x (byte & 15)); the rest
 * is the reply payload, on the heap with nothing after it. Whatever the
 * check accepts must be an ioeventfd the VMM can register: inside the
 * region, size 1/2/4/8, datamatch within the size, an fd that came.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vfmig_vmm_ioeventfd out[VFMIG_VMM_MAX_IOEVENTFDS];
	uint64_t region;
	uint32_t need = 0, asked;
	size_t nfds;
	const char *why = NULL;
	uint8_t *buf;

	if (size < 8)
		return 0;
	region = data[1] & 1 ? (uint64_t)data[2] | (uint64_t)data[3] << 8 |
				       (uint64_t)data[4] << 16 |
				       (uint64_t)data[5] << 24
			     : 1ull << (data[0] & 63);
	nfds = data[6] % (VFW_MAX_FDS_PER_MSG + 1);
	asked = 16 + 40 * (data[7] & 15);
	buf = malloc(size - 8 ? size - 8 : 1);
	if (!buf)
		abort();
	memcpy(buf, data + 8, size - 8);
	int n = vmm_parse_io_fds(buf, size - 8, 0, asked, region, nfds, out,
				 VFMIG_VMM_MAX_IOEVENTFDS, &need, &why);
	if (n == -EPROTO && !why)
		abort(); /* a refusal names its rule */
	if (n == -EAGAIN && need <= asked)
		abort();
	for (int i = 0; i < n; i++) {
		const struct vfmig_vmm_ioeventfd *e = &out[i];
		if ((e->size != 1 && e->size != 2 && e->size != 4 &&
		     e->size != 8) ||
		    e->offset > region || e->size > region - e->offset ||
		    e->fd < 0 || (size_t)e->fd >= nfds ||
		    (e->flags & ~VFMIG_VMM_IOEVENTFD_DATAMATCH) ||
		    (e->size < 8 && e->datamatch >> (8 * e->size)))
			abort();
	}
	free(buf);
	return 0;
}
