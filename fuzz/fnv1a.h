/* SPDX-License-Identifier: MIT */
/* The stream's FNV-1a, written again for the harnesses so that they do
 * not take the checksum from the code under test. */
#ifndef VFMIG_FUZZ_FNV1A_H
#define VFMIG_FUZZ_FNV1A_H

#include <stddef.h>
#include <stdint.h>

static inline uint32_t fnv1a(const uint8_t *p, size_t n)
{
	uint32_t h = 0x811c9dc5u;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x01000193u;
	return h;
}

#endif
