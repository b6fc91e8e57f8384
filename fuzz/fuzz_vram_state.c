/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the "vram" sample device's migration stream, as a
 * destination device loads it (samples/vram/vram_state.c) into a VRAM of
 * VFZ_PAGES pages. The first byte says how: bits 0-6 the size of the
 * pieces the stream is handed over in (0: all at once), as the data
 * arrives in MIG_DATA_WRITEs of any size; bit 7 puts a valid stream header
 * before the rest, so the fuzzer starts at the records. Properties:
 *   - nothing outside the VRAM is written (it is allocated to the byte);
 *   - the pieces do not matter: the same verdict, reason, VRAM and
 *     registers as the whole stream in one go;
 *   - a stream that loads to its END encodes back to the same state: the
 *     sample's encoder writes the VRAM and registers again, that loads
 *     too, into the same VRAM bytes and the same register block;
 *   - a loaded STATUS register is in the range the device keeps it in;
 *   - loaded as the data channel does with the device's mig_load_place
 *     (vram_load_place: the bytes it places go straight there, the rest
 *     in pieces of at most the size it asks for), the outcome is the
 *     same, and no place or count it gives reaches outside the VRAM.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vram_state.h"

#define VFZ_PAGES 16u
#define VFZ_SIZE (VFZ_PAGES * VRAM_PAGE_SIZE)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void load(struct vram_load *l, uint8_t *mem, const uint8_t *hdr,
		 const uint8_t *p, size_t n, size_t piece)
{
	vram_load_reset(l);
	if (hdr)
		vram_load_feed(l, mem, VFZ_PAGES, hdr, VRAM_MIG_HDR);
	if (!piece)
		piece = n ? n : 1;
	for (size_t o = 0; o < n; o += piece) {
		size_t k = n - o < piece ? n - o : piece;
		ssize_t r = vram_load_feed(l, mem, VFZ_PAGES, p + o, k);
		if (r != -EINVAL && r != (ssize_t)k)
			abort(); /* all taken or EINVAL, nothing else */
	}
}

/* As the data channel: ask where the next bytes go, at most piece (0: 1
 * MiB) of them; put them there or feed them from the input. */
static void load_placed(struct vram_load *l, uint8_t *mem, const uint8_t *hdr,
			const uint8_t *p, size_t n, size_t piece)
{
	vram_load_reset(l);
	if (hdr)
		vram_load_feed(l, mem, VFZ_PAGES, hdr, VRAM_MIG_HDR);
	if (!piece)
		piece = 1u << 20;
	for (size_t o = 0; o < n;) {
		size_t k = n - o < piece ? n - o : piece, len = k;
		uint8_t *at = vram_load_place(l, mem, &len);
		ssize_t r;

		if (len == 0 || len > k)
			abort(); /* asked for nothing, or for more than offered */
		if (at && (at < mem || len > VFZ_SIZE || at - mem > (ptrdiff_t)(VFZ_SIZE - len)))
			abort(); /* a place outside the VRAM */
		if (at)
			memcpy(at, p + o, len);
		r = vram_load_feed(l, mem, VFZ_PAGES, at ? at : p + o, len);
		if (r != -EINVAL && r != (ssize_t)len)
			abort();
		o += len;
	}
}

static void regs_bytes(const struct vram_regs *r, uint8_t *out)
{
	vram_state_regs(out, r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vram_load whole, pieces, placed, again;
	uint8_t hdr[VRAM_MIG_HDR], ra[VRAM_MIG_REGS], rb[VRAM_MIG_REGS];
	uint8_t *m1, *m2, *m3, *m4, *enc;
	size_t piece, n;

	if (!size || size > 4 * VFZ_SIZE)
		return 0;
	piece = data[0] & 0x7f;
	vram_state_header(hdr, VFZ_PAGES);
	m1 = malloc(VFZ_SIZE);
	m2 = malloc(VFZ_SIZE);
	m3 = malloc(VFZ_SIZE);
	m4 = malloc(VFZ_SIZE);
	if (!m1 || !m2 || !m3 || !m4)
		abort();
	memset(m4, 0xc3, VFZ_SIZE);
	memset(m1, 0xc3, VFZ_SIZE);
	memset(m2, 0xc3, VFZ_SIZE);
	memset(m3, 0x3c, VFZ_SIZE);
	load(&whole, m1, data[0] & 0x80 ? hdr : NULL, data + 1, size - 1, 0);
	load(&pieces, m2, data[0] & 0x80 ? hdr : NULL, data + 1, size - 1,
	     piece);
	if ((whole.phase == VRAM_L_BAD) != (pieces.phase == VRAM_L_BAD) ||
	    vram_load_done(&whole) != vram_load_done(&pieces) ||
	    (whole.phase == VRAM_L_BAD && strcmp(whole.why, pieces.why)) ||
	    (whole.phase == VRAM_L_BAD && !whole.why[0]) ||
	    memcmp(m1, m2, VFZ_SIZE))
		abort(); /* the pieces changed the outcome */
	load_placed(&placed, m4, data[0] & 0x80 ? hdr : NULL, data + 1, size - 1,
		    piece);
	if ((whole.phase == VRAM_L_BAD) != (placed.phase == VRAM_L_BAD) ||
	    vram_load_done(&whole) != vram_load_done(&placed) ||
	    (whole.phase == VRAM_L_BAD && strcmp(whole.why, placed.why)) ||
	    memcmp(m1, m4, VFZ_SIZE))
		abort(); /* placing changed the outcome */
	if (vram_load_done(&whole)) {
		regs_bytes(&whole.regs, ra);
		regs_bytes(&pieces.regs, rb);
		if (memcmp(ra, rb, sizeof(ra)) || whole.regs.status > 3)
			abort();
		n = vram_state_encode(m1, VFZ_PAGES, &whole.regs, NULL);
		enc = malloc(n);
		if (!enc || vram_state_encode(m1, VFZ_PAGES, &whole.regs, enc) != n)
			abort();
		load(&again, m3, NULL, enc, n, 0);
		regs_bytes(&again.regs, rb);
		if (!vram_load_done(&again) || memcmp(m1, m3, VFZ_SIZE) ||
		    memcmp(ra, rb, sizeof(ra)))
			abort(); /* one state, one encoding */
		free(enc);
	}
	free(m1);
	free(m2);
	free(m3);
	free(m4);
	return 0;
}
