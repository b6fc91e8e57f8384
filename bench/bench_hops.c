/* SPDX-License-Identifier: MIT */
/*
 * bench-hops: what the two VMM hops of the device path cost, and what
 * moving their bytes with splice() instead of copying them would give,
 * before anything of the kind is built.
 *
 * The device path (bench-migration's "save -> stream -> load") runs a
 * source device, the source VMM, the destination VMM and the destination
 * device, each hop a socket. This bench keeps that shape with four threads
 * and three UNIX socketpairs (4 MiB buffers), and nothing of vfmig:
 *
 *   source   copies the next 1 MiB of its "VRAM" (a TOTAL-byte buffer of
 *            pseudo-random data, in memory, not in the cache) into a frame,
 *            takes its XXH3 and writes the frame;
 *   relay    (twice, one per VMM), either
 *              copy:   read() 1 MiB into a buffer, XXH3 over it, write() it
 *                      (what each VMM does today: receive, record checksum,
 *                      send), or
 *              splice: splice() the socket into a pipe and the pipe into the
 *                      next socket, touching no byte (a relay that forwards
 *                      a checksum it got from the device with the data);
 *   sink     reads each 1 MiB into its own TOTAL-byte "VRAM" at the
 *            frame's place and checks its XXH3 against the source's.
 *
 * A third mode has no relay: the source writes straight to the sink's
 * socket, the ceiling of any design that takes the VMMs out of the data
 * path while the devices keep their own copy and checksum passes. A fourth
 * splices in the first relay only (the source VMM) and copies in the
 * second: what splicing on the source's side alone would give. A fifth
 * has one splicing relay: one VMM taken out of the path, the other still
 * splicing. A sixth has no relay, but a third thread hands the sink each
 * frame (a one-byte go before it, a one-byte ack after): a destination VMM
 * that lets its device read one record at a time from the connection.
 *
 * Every frame's XXH3 is compared in the sink, so a mode that loses or
 * reorders a byte fails instead of winning. The baseline is the raw
 * socketpair of bench-migration (a child writing one cached 1 MiB buffer,
 * 4 MiB socket buffers), measured in the same round; each round runs the
 * baseline and the six modes in an order that rotates with the round.
 * Figures: MB/s (10^6 bytes/s), median over the rounds, and the median and
 * range of each mode's ratio to its round's baseline.
 *
 * Usage: bench-hops [MiB per run, default 256] [rounds, default 5]
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <xxhash.h>
#ifdef VFMIG_XXH3_DISPATCH
/* The same hash through libxxhash's run-time pick of SSE2/AVX2/AVX-512, as
 * the stream takes it. */
#include <xxh_x86dispatch.h>
#endif

#include "bench_common.h"

#define FRAME MiB

#define MODES 6
static const char *const names[MODES] = { "relays copy (read, XXH3, write)",
					  "relays splice (socket -> pipe -> socket)",
					  "no relay (source -> sink)",
					  "first relay splices, second copies",
					  "one relay, splicing",
					  "no relay, a hand-off per frame" };

static void die(const char *what, int err)
{
	fprintf(stderr, "bench-hops: %s: %s\n", what, strerror(err));
	exit(1);
}

static size_t total;      /* bytes per run, a multiple of FRAME */
static uint8_t *vram_src; /* the source's "VRAM" */
static uint8_t *vram_dst; /* the sink's */
static uint64_t *sums;    /* XXH3 of each frame, filled by the source */

static void write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die("write", w < 0 ? errno : EPIPE);
		p += w;
		n -= (size_t)w;
	}
}

static void read_all(int fd, uint8_t *p, size_t n)
{
	while (n) {
		ssize_t r = read(fd, p, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			die("read", r < 0 ? errno : EPIPE);
		p += r;
		n -= (size_t)r;
	}
}

struct hop {
	int in, out; /* -1 where the role has none */
	int splice;  /* relays: splice instead of copy */
	int bad;     /* sink: frames whose XXH3 differed */
	int ctl;     /* sink: a socket to the hand-off thread, or -1 */
};

static void *source_thread(void *arg)
{
	struct hop *h = arg;
	uint8_t *frame = malloc(FRAME);

	if (!frame)
		die("malloc", ENOMEM);
	for (size_t off = 0; off < total; off += FRAME) {
		memcpy(frame, vram_src + off, FRAME);
		sums[off / FRAME] = XXH3_64bits(frame, FRAME);
		write_all(h->out, frame, FRAME);
	}
	free(frame);
	close(h->out);
	return NULL;
}

static void relay_copy(struct hop *h)
{
	uint8_t *buf = malloc(FRAME);
	uint64_t acc = 0;

	if (!buf)
		die("malloc", ENOMEM);
	for (size_t off = 0; off < total; off += FRAME) {
		read_all(h->in, buf, FRAME);
		acc ^= XXH3_64bits(buf, FRAME);
		write_all(h->out, buf, FRAME);
	}
	/* The VMM would compare or write the sum; keep the pass from being
	 * optimised out. */
	if (acc == 1)
		fputs("", stderr);
	free(buf);
}

static void relay_splice(struct hop *h)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		die("pipe2", errno);
	if (fcntl(p[1], F_SETPIPE_SZ, (int)FRAME) < 0)
		die("F_SETPIPE_SZ", errno);
	for (size_t left = total; left;) {
		size_t want = left < FRAME ? left : FRAME;
		ssize_t in = splice(h->in, NULL, p[1], NULL, want, SPLICE_F_MOVE);

		if (in < 0 && errno == EINTR)
			continue;
		if (in <= 0)
			die("splice from the socket", in < 0 ? errno : EPIPE);
		for (size_t n = (size_t)in; n;) {
			ssize_t out = splice(p[0], NULL, h->out, NULL, n, SPLICE_F_MOVE);

			if (out < 0 && errno == EINTR)
				continue;
			if (out <= 0)
				die("splice to the socket", out < 0 ? errno : EPIPE);
			n -= (size_t)out;
		}
		left -= (size_t)in;
	}
	close(p[0]);
	close(p[1]);
}

static void *relay_thread(void *arg)
{
	struct hop *h = arg;

	if (h->splice)
		relay_splice(h);
	else
		relay_copy(h);
	close(h->in);
	close(h->out);
	return NULL;
}

static void *sink_thread(void *arg)
{
	struct hop *h = arg;

	for (size_t off = 0; off < total; off += FRAME) {
		uint8_t b = 0;

		if (h->ctl >= 0)
			read_all(h->ctl, &b, 1);
		read_all(h->in, vram_dst + off, FRAME);
		if (XXH3_64bits(vram_dst + off, FRAME) != sums[off / FRAME])
			h->bad++;
		if (h->ctl >= 0)
			write_all(h->ctl, &b, 1);
	}
	if (h->ctl >= 0)
		close(h->ctl);
	close(h->in);
	return NULL;
}

/* The destination VMM of a design where the device reads its records from
 * the migration connection itself: the VMM gives the sink one frame at a
 * time ("load the record whose header I have read") and waits until it
 * is loaded before it looks at the connection again. */
static void *hand_thread(void *arg)
{
	struct hop *h = arg;

	for (size_t off = 0; off < total; off += FRAME) {
		uint8_t b = 1;

		write_all(h->out, &b, 1);
		read_all(h->out, &b, 1);
	}
	close(h->out);
	return NULL;
}

static void pair(int sv[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		die("socketpair", errno);
	bench_grow_socket(sv[0]);
	bench_grow_socket(sv[1]);
}

/* One run; MB/s. mode 0: two copying relays, 1: two splicing relays,
 * 2: no relay, the source writing to the sink's socket, 3: the first relay
 * (the source VMM) splices and the second copies, 4: a single relay that
 * splices (one VMM out of the path, the other splicing), 5: no relay, but
 * the sink waits for a go from a third thread before each frame and acks
 * it after (a destination VMM handing the device one record at a time). */
static double run(int mode)
{
	int a[2], b[2], c[2];
	struct hop src, r1, r2, sink;
	pthread_t t[4];
	double t0, secs;
	int n = mode == 2 ? 2 : mode == 4 || mode == 5 ? 3 : 4;

	pair(a);
	if (mode == 2 || mode == 5) {
		src = (struct hop){ .in = -1, .out = a[0] };
		sink = (struct hop){ .in = a[1], .out = -1, .ctl = -1 };
		if (mode == 5) {
			pair(b);
			sink.ctl = b[1];
			r2 = (struct hop){ .in = -1, .out = b[0] };
		}
	} else if (mode == 4) {
		pair(b);
		src = (struct hop){ .in = -1, .out = a[0] };
		r2 = (struct hop){ .in = a[1], .out = b[0], .splice = 1 };
		sink = (struct hop){ .in = b[1], .out = -1, .ctl = -1 };
	} else {
		pair(b);
		pair(c);
		src = (struct hop){ .in = -1, .out = a[0] };
		r1 = (struct hop){ .in = a[1], .out = b[0], .splice = mode != 0 };
		r2 = (struct hop){ .in = b[1], .out = c[0], .splice = mode == 1 };
		sink = (struct hop){ .in = c[1], .out = -1, .ctl = -1 };
	}
	memset(sums, 0, (total / FRAME) * sizeof(*sums));

	t0 = bench_now_s();
	if (pthread_create(&t[0], NULL, sink_thread, &sink) ||
	    (n >= 3 && pthread_create(&t[2], NULL, mode == 5 ? hand_thread : relay_thread,
				      &r2)) ||
	    (n == 4 && pthread_create(&t[3], NULL, relay_thread, &r1)) ||
	    pthread_create(&t[1], NULL, source_thread, &src))
		die("pthread_create", EAGAIN);
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	secs = bench_now_s() - t0;
	if (sink.bad) {
		fprintf(stderr, "bench-hops: %s: %d of %zu frames arrived wrong\n", names[mode],
			sink.bad, total / FRAME);
		exit(1);
	}
	return bench_mbps(total, secs);
}

static uint8_t *map_buffer(void)
{
	uint8_t *p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		die("mmap", errno);
	/* The baseline forks: keep the buffers out of the child. */
	(void)madvise(p, total, MADV_DONTFORK);
	return p;
}

static void range(const double *v, int n, double *lo, double *hi)
{
	*lo = *hi = v[0];
	for (int i = 1; i < n; i++) {
		if (v[i] < *lo)
			*lo = v[i];
		if (v[i] > *hi)
			*hi = v[i];
	}
}

int main(int argc, char **argv)
{
	long mib = argc > 1 ? strtol(argv[1], NULL, 10) : 256;
	int rounds = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 5;
	double base[64], mbps[MODES][64], ratio[MODES][64], gain[64];
	uint64_t x = 0x9e3779b97f4a7c15ull;

	if (mib < 1 || mib > 16384 || rounds < 1 || rounds > 64) {
		fprintf(stderr, "usage: bench-hops [MiB 1..16384] [rounds 1..64]\n");
		return 2;
	}
	total = (size_t)mib * MiB;
	vram_src = map_buffer();
	vram_dst = map_buffer();
	sums = calloc(total / FRAME, sizeof(*sums));
	if (!sums)
		die("calloc", ENOMEM);
	for (size_t i = 0; i < total / 8; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(vram_src + i * 8, &x, 8);
	}
	memset(vram_dst, 0, total); /* no first-touch faults in the sink */

	printf("bench-hops: %ld MiB per run, %d rounds, 1 MiB frames\n", mib, rounds);
	for (int r = 0; r < rounds; r++) {
		/* Rotate the order of the baseline and the modes. */
		for (int k = 0; k <= MODES; k++) {
			int which = (r + k) % (MODES + 1);

			if (which == 0) {
				base[r] = bench_baseline(total);
				if (base[r] <= 0)
					die("baseline", EIO);
			} else {
				mbps[which - 1][r] = run(which - 1);
			}
		}
		for (int m = 0; m < MODES; m++)
			ratio[m][r] = mbps[m][r] / base[r];
		gain[r] = mbps[1][r] / mbps[0][r];
	}

	printf("  baseline: raw socketpair                  %8.1f MB/s (median)\n",
	       bench_median(base, (size_t)rounds));
	for (int m = 0; m < MODES; m++) {
		double lo, hi, med_mbps, med_ratio;

		range(ratio[m], rounds, &lo, &hi);
		med_mbps = bench_median(mbps[m], (size_t)rounds);
		med_ratio = bench_median(ratio[m], (size_t)rounds);
		printf("  %-42s %8.1f MB/s   ratio to baseline %.2f (rounds %.2f-%.2f)\n",
		       names[m], med_mbps, med_ratio, lo, hi);
	}
	{
		double lo, hi;

		range(gain, rounds, &lo, &hi);
		printf("  splice / copy, same round                  %.2f (rounds %.2f-%.2f)\n",
		       bench_median(gain, (size_t)rounds), lo, hi);
	}
	return 0;
}
