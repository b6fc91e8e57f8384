/* SPDX-License-Identifier: MIT */
/*
 * bench-checksum: candidate record checksums of the migration stream on the
 * same buffers in one run, beside memcpy of the same bytes.
 *
 *   memcpy        each record copied into a record-sized buffer (baseline)
 *   zlib crc32    crc32_z(), the checksum of stream format 1.0
 *   crc32c hw     CRC-32C with the SSE4.2 crc32 instruction, 8 bytes a step
 *                 (one dependency chain); only where the CPU has SSE4.2
 *   crc32c table  CRC-32C by slicing-by-8 tables, the portable fallback
 *   xxh3-64       libxxhash's XXH3_64bits() (the library's default code)
 *   xxh3-64 disp  XXH3_64bits_dispatch(): the library picks SSE2/AVX2/
 *                 AVX-512 at run time
 *   xxh3-64 strm  the streaming API as a stream writer would feed it: reset,
 *                 an 8-byte record header, a 2-byte device index and the
 *                 data, digest (dispatching update)
 *
 * The data is a WORKSET-byte buffer of splitmix64 output, cut into records
 * of 4 KiB, 64 KiB and 1 MiB; each measurement walks the whole buffer record
 * by record, repeated until at least 0.2 s have passed. Every round measures
 * memcpy first, then each checksum; each figure is reported as GB/s (10^9
 * bytes/s), the median over the rounds, and as its ratio to the memcpy of
 * the same round (median and range).
 *
 * Before measuring, every implementation is checked against the standard
 * check value ("123456789") and the CRC-32C ones against each other on the
 * whole buffer, so a wrong fast path cannot win.
 *
 * Usage: bench-checksum [working set MiB, default 16] [rounds, default 5]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>
/* Without this the header's object-like macros turn every XXH3_64bits
 * below, parenthesised or not, into the dispatching entry point, and the
 * "xxh3-64" line would measure the same code as "xxh3-64 dispatch". */
#define XXH_DISPATCH_DISABLE_REPLACE
#include <xxh_x86dispatch.h>
#include <zlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <nmmintrin.h>
#define HAVE_X86 1
#else
#define HAVE_X86 0
#endif

#include "bench_common.h"

/* ---- CRC-32C (Castagnoli, reflected 0x82f63b78, init/final ~0) ---- */

static uint32_t crc32c_table[8][256];

static void crc32c_init(void)
{
	for (uint32_t n = 0; n < 256; n++) {
		uint32_t c = n;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
		crc32c_table[0][n] = c;
	}
	for (uint32_t n = 0; n < 256; n++)
		for (int k = 1; k < 8; k++)
			crc32c_table[k][n] = (crc32c_table[k - 1][n] >> 8) ^
					     crc32c_table[0][crc32c_table[k - 1][n] & 0xff];
}

/* Like zlib's crc32(): start with 0, pass the result on to continue. */
static uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint32_t c = ~crc;

	while (len && ((uintptr_t)p & 7)) {
		c = (c >> 8) ^ crc32c_table[0][(c ^ *p++) & 0xff];
		len--;
	}
	while (len >= 8) {
		uint32_t lo = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 |
				   (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);

		c = crc32c_table[7][lo & 0xff] ^ crc32c_table[6][(lo >> 8) & 0xff] ^
		    crc32c_table[5][(lo >> 16) & 0xff] ^ crc32c_table[4][lo >> 24] ^
		    crc32c_table[3][p[4]] ^ crc32c_table[2][p[5]] ^
		    crc32c_table[1][p[6]] ^ crc32c_table[0][p[7]];
		p += 8;
		len -= 8;
	}
	while (len--)
		c = (c >> 8) ^ crc32c_table[0][(c ^ *p++) & 0xff];
	return ~c;
}

#if HAVE_X86
__attribute__((target("sse4.2")))
static uint32_t crc32c_hw(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint64_t c = ~crc;

	while (len && ((uintptr_t)p & 7)) {
		c = _mm_crc32_u8((uint32_t)c, *p++);
		len--;
	}
	while (len >= 8) {
		uint64_t v;

		memcpy(&v, p, 8);
		c = _mm_crc32_u64(c, v);
		p += 8;
		len -= 8;
	}
	while (len--)
		c = _mm_crc32_u8((uint32_t)c, *p++);
	return ~(uint32_t)c;
}
#endif

static int have_sse42(void)
{
#if HAVE_X86
	__builtin_cpu_init();
	return __builtin_cpu_supports("sse4.2");
#else
	return 0;
#endif
}

/* ---- the candidates, each over one record ---- */

static uint8_t *dst; /* memcpy target, one record */

static uint64_t do_memcpy(const uint8_t *p, size_t len)
{
	memcpy(dst, p, len);
	return dst[len - 1];
}

static uint64_t do_zlib(const uint8_t *p, size_t len)
{
	return crc32_z(0, p, len);
}

#if HAVE_X86
static uint64_t do_crc32c_hw(const uint8_t *p, size_t len)
{
	return crc32c_hw(0, p, len);
}
#endif

static uint64_t do_crc32c_sw(const uint8_t *p, size_t len)
{
	return crc32c_sw(0, p, len);
}

static uint64_t do_xxh3(const uint8_t *p, size_t len)
{
	return XXH3_64bits(p, len); /* the library's portable build */
}

static uint64_t do_xxh3_dispatch(const uint8_t *p, size_t len)
{
	return XXH3_64bits_dispatch(p, len);
}

static XXH3_state_t *xstate;

static uint64_t do_xxh3_stream(const uint8_t *p, size_t len)
{
	static const uint8_t hdr[8] = { 0, 4, 0, 1, 0, 0x10, 0, 2 };
	static const uint8_t dev[2] = { 0, 0 };

	XXH3_64bits_reset(xstate);
	XXH3_64bits_update_dispatch(xstate, hdr, sizeof(hdr));
	XXH3_64bits_update_dispatch(xstate, dev, sizeof(dev));
	XXH3_64bits_update_dispatch(xstate, p, len);
	return XXH3_64bits_digest(xstate);
}

struct algo {
	const char *name;
	uint64_t (*fn)(const uint8_t *p, size_t len);
};

/* ---- measurement ---- */

static volatile uint64_t sink;

/* GB/s of fn over buf[0..ws) in records of rec bytes, >= 0.2 s. */
static double measure(const struct algo *a, const uint8_t *buf, size_t ws, size_t rec)
{
	uint64_t acc = 0, bytes = 0;
	double t0 = bench_now_s(), t;

	do {
		for (size_t off = 0; off + rec <= ws; off += rec)
			acc += a->fn(buf + off, rec);
		bytes += ws / rec * rec;
		t = bench_now_s() - t0;
	} while (t < 0.2);
	sink += acc;
	return (double)bytes / 1e9 / t;
}

static void die(const char *what)
{
	fprintf(stderr, "bench-checksum: %s\n", what);
	exit(1);
}

static void self_check(const uint8_t *buf, size_t ws, int hw)
{
	static const char check[] = "123456789";

	if (crc32_z(0, (const Bytef *)check, 9) != 0xcbf43926u)
		die("zlib crc32 check value wrong");
	if (crc32c_sw(0, check, 9) != 0xe3069283u)
		die("crc32c table check value wrong");
	/* From the xxHash test vectors: XXH3_64bits of an empty input. */
	if (XXH3_64bits(NULL, 0) != 0x2d06800538d394c2ull ||
	    XXH3_64bits_dispatch(NULL, 0) != 0x2d06800538d394c2ull)
		die("xxh3 check value wrong");
	if (XXH3_64bits(buf, ws) != XXH3_64bits_dispatch(buf, ws))
		die("xxh3 and its dispatching variant differ");
	/* Chained calls equal one call, at an odd split (unaligned tail). */
	if (crc32c_sw(crc32c_sw(0, buf, 12345), buf + 12345, ws - 12345) !=
	    crc32c_sw(0, buf, ws))
		die("crc32c table does not chain");
#if HAVE_X86
	if (hw) {
		if (crc32c_hw(0, check, 9) != 0xe3069283u)
			die("crc32c hw check value wrong");
		for (size_t n = 0; n < 64; n++)
			if (crc32c_hw(0, buf + n, ws - 2 * n) != crc32c_sw(0, buf + n, ws - 2 * n))
				die("crc32c hw and table differ");
	}
#else
	(void)hw;
#endif
}

#define MAX_ROUNDS 21
#define MAX_ALGOS 8

int main(int argc, char **argv)
{
	static const size_t sizes[] = { 4096, 64 * 1024, 1024 * 1024 };
	static const struct algo memcpy_algo = { "memcpy", do_memcpy };
	struct algo algos[MAX_ALGOS];
	size_t nalgos = 0, mib = argc > 1 ? strtoul(argv[1], NULL, 0) : 16;
	int rounds = argc > 2 ? atoi(argv[2]) : 5;
	int hw = have_sse42();
	uint64_t x = 0x5eed;
	uint8_t *buf;
	size_t ws;

	if (argc > 3 || mib < 1 || mib > 4096 || rounds < 1 || rounds > MAX_ROUNDS) {
		fprintf(stderr, "usage: bench-checksum [working set MiB, 1..4096, default 16] "
				"[rounds, 1..%d, default 5]\n", MAX_ROUNDS);
		return 2;
	}
	ws = mib * MiB;
	buf = malloc(ws);
	dst = malloc(MiB);
	xstate = XXH3_createState();
	if (!buf || !dst || !xstate)
		die("out of memory");
	for (size_t i = 0; i < ws; i += 8) {
		uint64_t z = (x += 0x9e3779b97f4a7c15ull);

		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		z ^= z >> 31;
		memcpy(buf + i, &z, 8);
	}
	memset(dst, 0, MiB);
	crc32c_init();
	self_check(buf, ws, hw);

	algos[nalgos++] = (struct algo){ "zlib crc32", do_zlib };
#if HAVE_X86
	if (hw)
		algos[nalgos++] = (struct algo){ "crc32c hw (sse4.2)", do_crc32c_hw };
#endif
	algos[nalgos++] = (struct algo){ "crc32c table", do_crc32c_sw };
	algos[nalgos++] = (struct algo){ "xxh3-64", do_xxh3 };
	algos[nalgos++] = (struct algo){ "xxh3-64 dispatch", do_xxh3_dispatch };
	algos[nalgos++] = (struct algo){ "xxh3-64 streaming", do_xxh3_stream };

	printf("bench-checksum: %zu MiB working set, %d rounds, zlib %s, xxhash %u, "
	       "sse4.2 %s\n", mib, rounds, zlibVersion(), XXH_versionNumber(),
	       hw ? "yes" : "no");
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		double base[MAX_ROUNDS], gb[MAX_ALGOS][MAX_ROUNDS], ratio[MAX_ALGOS][MAX_ROUNDS];
		size_t rec = sizes[s];

		for (int k = 0; k < rounds; k++) {
			base[k] = measure(&memcpy_algo, buf, ws, rec);
			for (size_t a = 0; a < nalgos; a++) {
				gb[a][k] = measure(&algos[a], buf, ws, rec);
				ratio[a][k] = gb[a][k] / base[k];
			}
		}
		printf("record %7zu bytes: %-20s %7.2f GB/s (baseline)\n", rec, "memcpy",
		       bench_median(base, (size_t)rounds));
		for (size_t a = 0; a < nalgos; a++) {
			double lo = ratio[a][0], hi = ratio[a][0];

			for (int k = 1; k < rounds; k++) {
				lo = ratio[a][k] < lo ? ratio[a][k] : lo;
				hi = ratio[a][k] > hi ? ratio[a][k] : hi;
			}
			printf("record %7zu bytes: %-20s %7.2f GB/s  ratio to memcpy %.2f "
			       "(rounds %.2f-%.2f)\n", rec, algos[a].name,
			       bench_median(gb[a], (size_t)rounds),
			       bench_median(ratio[a], (size_t)rounds), lo, hi);
		}
	}
	XXH3_freeState(xstate);
	free(dst);
	free(buf);
	return 0;
}
