/* SPDX-License-Identifier: MIT */
/*
 * bench-throughput: vfio-user data-path throughput of the VMM library
 * against the device library, each beside a raw UNIX-socket baseline
 * measured in the same run.
 *
 *   REGION_READ of a non-mappable BAR (device callback), 1 MiB chunks
 *   REGION_READ of a mappable BAR (served from the BAR memory), 1 MiB chunks
 *   DMA_READ: the device reads guest memory through messages (the client
 *             mapped its window without an fd), triggered by a register
 *   baseline: write()/read() of the same byte count over a socketpair, in
 *             the same direction as the payload
 *
 * Usage: bench-throughput [MiB per test, default 512]
 */
#include <endian.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <vfmig/device.h>
#include <vfmig/vmm.h>

#include "bench_common.h"

#define BAR_SIZE (4 * MiB)
#define DMA_CHUNK (4 * MiB)
#define CTRL_BAR 4 /* register BAR: write {iova, len} to start a DMA read */

static void die(const char *what, int err)
{
	fprintf(stderr, "bench-throughput: %s: %s\n", what,
		vfmig_vmm_strerror(err));
	exit(1);
}

/* ---- the benchmark device (child process) ---- */

static uint8_t *dev_dma_buf;

static int bench_access(vfmig_dev *dev, void *priv, unsigned int bar,
			uint64_t offset, void *buf, size_t len, bool is_write)
{
	uint64_t req[2];

	(void)priv;
	if (bar != CTRL_BAR || !is_write) {
		if (!is_write)
			memset(buf, 0x5a, len < 64 ? len : 64);
		return 0;
	}
	if (offset != 0 || len != sizeof(req))
		return -EINVAL;
	memcpy(req, buf, sizeof(req)); /* two little-endian u64 registers */
	req[0] = le64toh(req[0]);
	req[1] = le64toh(req[1]);
	if (req[1] > DMA_CHUNK)
		return -EINVAL;
	return vfmig_dev_dma_read(dev, req[0], dev_dma_buf, (size_t)req[1]);
}

static void run_device(int fd)
{
	static const volatile sig_atomic_t stop = 0;
	struct vfmig_dev_desc desc = {
		.version = VFMIG_DEV_DESC_VERSION,
		.vendor_id = 0x1af4,
		.device_id = 0x10f0,
		.class_code = 0xff0000,
		.bars = {
			[0] = { .size = BAR_SIZE },
			[2] = { .size = BAR_SIZE,
				.flags = VFMIG_DEV_BAR_MAPPABLE },
			[CTRL_BAR] = { .size = 4096 },
		},
	};
	struct vfmig_dev_ops ops = {
		.version = VFMIG_DEV_OPS_VERSION,
		.region_access = bench_access,
	};
	vfmig_dev *dev;
	int r;

	dev_dma_buf = malloc(DMA_CHUNK);
	if (!dev_dma_buf)
		_exit(2);
	r = vfmig_dev_create(&desc, &ops, NULL, &dev);
	if (r == 0)
		r = vfmig_dev_attach_fd(dev, fd);
	if (r == 0)
		r = vfmig_dev_run(dev, &stop);
	if (r < 0)
		fprintf(stderr, "bench device: %s\n", vfmig_dev_strerror(r));
	vfmig_dev_destroy(dev);
	_exit(r < 0 ? 3 : 0);
}

/* ---- vfio-user measurements ---- */

static double bench_region_read(vfmig_vmm_dev *dev, uint32_t bar,
				uint64_t total)
{
	uint8_t *buf = malloc(MiB);
	double t0;
	int r;

	if (!buf)
		die("malloc", -ENOMEM);
	t0 = bench_now_s();
	for (uint64_t done = 0; done < total; done += MiB) {
		r = vfmig_vmm_dev_region_read(dev, bar, done % BAR_SIZE, buf,
					      MiB);
		if (r < 0)
			die("region read", r);
	}
	double secs = bench_now_s() - t0;
	free(buf);
	return bench_mbps(total, secs);
}

static double bench_dma_read(vfmig_vmm_dev *dev, uint64_t total)
{
	const uint64_t iova = 0x100000000ull;
	uint8_t *guest = malloc(DMA_CHUNK);
	double t0;
	int r;

	if (!guest)
		die("malloc", -ENOMEM);
	memset(guest, 0xa5, DMA_CHUNK);
	r = vfmig_vmm_dev_dma_map(dev, iova, DMA_CHUNK, -1, 0, guest,
				  VFMIG_VMM_DMA_READ | VFMIG_VMM_DMA_WRITE);
	if (r < 0)
		die("dma map", r);
	t0 = bench_now_s();
	for (uint64_t done = 0; done < total; done += DMA_CHUNK) {
		uint64_t req[2] = { htole64(iova), htole64(DMA_CHUNK) };
		r = vfmig_vmm_dev_region_write(dev, CTRL_BAR, 0, req,
					       sizeof(req));
		if (r < 0)
			die("dma trigger", r);
	}
	double secs = bench_now_s() - t0;
	r = vfmig_vmm_dev_dma_unmap(dev, iova, DMA_CHUNK);
	if (r < 0)
		die("dma unmap", r);
	free(guest);
	return bench_mbps(total, secs);
}

/* Count the DMA_READ commands the library served (debug log lines). */
static unsigned long dma_msgs;

static void count_log(void *priv, int level, const char *msg)
{
	(void)priv, (void)level;
	if (strncmp(msg, "<- DMA_READ", 11) == 0)
		dma_msgs++;
}

#define ROUNDS 5
#define N_TESTS 3

static const char *const test_names[N_TESTS] = {
	"REGION_READ non-mappable BAR0",
	"REGION_READ mappable BAR2",
	"DMA_READ via messages",
};

int main(int argc, char **argv)
{
	uint64_t mib = argc > 1 ? strtoull(argv[1], NULL, 0) : 512;
	uint64_t total;
	vfmig_vmm_dev *dev;
	int sv[2], r;
	pid_t pid;

	if (mib < 4)
		mib = 4;
	total = mib * MiB;
	total -= total % DMA_CHUNK;
	signal(SIGPIPE, SIG_IGN);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		die("socketpair", -errno);
	pid = fork();
	if (pid < 0)
		die("fork", -errno);
	if (pid == 0) {
		close(sv[0]);
		run_device(sv[1]);
	}
	close(sv[1]);
	r = vfmig_vmm_dev_adopt_fd(sv[0], NULL, &dev);
	if (r < 0)
		die("connect", r);

	printf("bench-throughput: %llu MiB per test, 1 MiB REGION_READ "
	       "chunks, %u MiB DMA reads\n",
	       (unsigned long long)mib, DMA_CHUNK / MiB);
	/* Each round measures the baseline right before the three tests, so
	 * a ratio compares figures taken under the same machine load; the
	 * report gives the median over the rounds. */
	double mb[N_TESTS][ROUNDS], ratio[N_TESTS][ROUNDS], base[ROUNDS];
	for (int k = 0; k < ROUNDS; k++) {
		double b = bench_baseline(total);
		if (b <= 0)
			die("baseline", -EIO);
		base[k] = b;
		mb[0][k] = bench_region_read(dev, 0, total);
		mb[1][k] = bench_region_read(dev, 2, total);
		vfmig_vmm_dev_set_log(dev, count_log, NULL, VFMIG_LOG_DEBUG);
		mb[2][k] = bench_dma_read(dev, total);
		vfmig_vmm_dev_set_log(dev, NULL, NULL, 0);
		for (int t = 0; t < N_TESTS; t++)
			ratio[t][k] = mb[t][k] / b;
	}
	printf("%-34s %9.1f MB/s (median of %d rounds)\n",
	       "baseline: raw socketpair", bench_median(base, ROUNDS), ROUNDS);
	for (int t = 0; t < N_TESTS; t++) {
		double m = bench_median(mb[t], ROUNDS);
		double lo = ratio[t][0], hi = ratio[t][0];
		for (int k = 1; k < ROUNDS; k++) {
			lo = ratio[t][k] < lo ? ratio[t][k] : lo;
			hi = ratio[t][k] > hi ? ratio[t][k] : hi;
		}
		printf("%-34s %9.1f MB/s   ratio to baseline %.2f "
		       "(rounds %.2f-%.2f)\n",
		       test_names[t], m, bench_median(ratio[t], ROUNDS), lo, hi);
	}
	printf("(%lu DMA_READ messages served)\n", dma_msgs);

	vfmig_vmm_dev_close(dev);
	waitpid(pid, NULL, 0);
	return 0;
}
