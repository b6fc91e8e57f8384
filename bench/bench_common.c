/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"

double bench_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double bench_mbps(uint64_t bytes, double secs)
{
	return (double)bytes / 1e6 / secs;
}

void bench_perf_ctl(const char *cmd)
{
	const char *path = getenv("BENCH_PERF_CTL");
	char line[32];
	int fd, n;

	if (!path || !*path)
		return;
	n = snprintf(line, sizeof(line), "%s\n", cmd);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "bench: BENCH_PERF_CTL %s: %s\n", path,
			strerror(errno));
		return;
	}
	if (write(fd, line, (size_t)n) != n)
		fprintf(stderr, "bench: BENCH_PERF_CTL %s: short write\n", path);
	close(fd);
}

void bench_grow_socket(int fd)
{
	int sz = 4 << 20;

	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
}

double bench_rusage_s(const struct rusage *ru)
{
	return (double)ru->ru_utime.tv_sec + (double)ru->ru_stime.tv_sec +
	       ((double)ru->ru_utime.tv_usec + (double)ru->ru_stime.tv_usec) / 1e6;
}

double bench_thread_cpu_s(void)
{
	struct rusage ru;

	return getrusage(RUSAGE_THREAD, &ru) == 0 ? bench_rusage_s(&ru) : 0;
}

double bench_proc_cpu_s(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long long ut, st;
	const char *p;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	/* After the command's ")": state is field 3, utime 14, stime 15. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
			 "%llu %llu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

double bench_baseline(uint64_t total)
{
	return bench_baseline_cpu(total, NULL);
}

double bench_baseline_cpu(uint64_t total, double *cpu_s)
{
	struct rusage child;
	double cpu0 = bench_thread_cpu_s();
	uint8_t *buf = malloc(MiB);
	int sv[2];
	pid_t pid;
	double t0, t1;
	uint64_t got = 0;

	if (!buf || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
		free(buf);
		return -1;
	}
	memset(buf, 0x5a, MiB);
	bench_grow_socket(sv[0]);
	bench_grow_socket(sv[1]);
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		for (uint64_t sent = 0; sent < total;) {
			size_t want = total - sent < MiB ? total - sent : MiB;
			ssize_t n = write(sv[1], buf, want);
			if (n <= 0)
				_exit(1);
			sent += (uint64_t)n;
		}
		_exit(0);
	}
	close(sv[1]);
	t0 = bench_now_s();
	while (pid > 0 && got < total) {
		ssize_t n = read(sv[0], buf, MiB);
		if (n <= 0)
			break;
		got += (uint64_t)n;
	}
	t1 = bench_now_s();
	close(sv[0]);
	if (pid > 0 && wait4(pid, NULL, 0, &child) == pid && cpu_s)
		*cpu_s = bench_thread_cpu_s() - cpu0 + bench_rusage_s(&child);
	free(buf);
	return got == total ? bench_mbps(got, t1 - t0) : -1;
}

void *bench_drain_thread(void *arg)
{
	struct bench_drain *d = arg;
	uint8_t *buf = malloc(MiB);
	ssize_t n;

	while (buf && (n = read(d->fd, buf, MiB)) > 0)
		d->bytes += (uint64_t)n;
	free(buf);
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

double bench_median(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return v[n / 2];
}
