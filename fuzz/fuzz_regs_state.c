/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the "regs" sample device's migration state, as a
 * destination device reads it from the stream. The first byte says how
 * the rest becomes a stream: bit 1 set, it is the stream's start, and the
 * harness pads it with zeros to the whole length a stream has (BAR2's 64
 * KiB); bit 0 set, the harness writes the checksum again, so the fuzzer
 * gets past it to the fields. What decodes must encode back to the same
 * bytes, with its registers in the ranges the device keeps them in.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "regs_state.h"
#include "fnv1a.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[REGS_MIG_TOTAL + 64], again[REGS_MIG_TOTAL];
	struct regs_state s;
	size_t len;

	if (!size || size - 1 > sizeof(buf))
		return 0;
	len = size - 1;
	memset(buf, 0, sizeof(buf));
	memcpy(buf, data + 1, len);
	if (data[0] & 2)
		len = REGS_MIG_TOTAL;
	if ((data[0] & 1) && len >= 4) {
		uint32_t h = fnv1a(buf, len - 4);
		for (int i = 0; i < 4; i++)
			buf[len - 4 + i] = (uint8_t)(h >> (24 - 8 * i));
	}
	if (regs_state_decode(buf, len, &s))
		return 0;
	if (s.dma_pattern > 0xff || s.dma_status > 3)
		abort();
	regs_state_encode(&s, buf + REGS_MIG_MEM_OFF, again);
	if (len != REGS_MIG_TOTAL || memcmp(again, buf, len))
		abort(); /* one state, one encoding */
	return 0;
}
