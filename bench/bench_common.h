/* SPDX-License-Identifier: MIT */
/* What the benchmarks share: clocks, the raw-socket baseline, a reading
 * thread, medians. */
#ifndef VFMIG_BENCH_COMMON_H
#define VFMIG_BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MiB (1u << 20)

/* Bytes as GiB (2^30), for per-GiB figures. */
static inline double bench_gib(uint64_t bytes)
{
	return (double)bytes / (double)(1ull << 30);
}

/* Monotonic seconds. */
double bench_now_s(void);

/* 10^6 bytes per second. */
double bench_mbps(uint64_t bytes, double secs);

/* The 4 MiB socket buffers the VMM library asks for. */
void bench_grow_socket(int fd);

/* MB/s of total bytes written by a child process and read by this one over
 * a fresh UNIX socketpair, 1 MiB per call. Returns -1 on failure. */
double bench_baseline(uint64_t total);

/* The same; if cpu_s is not NULL, the CPU seconds (user and system) that
 * the writing child and this thread spent on it go there. */
double bench_baseline_cpu(uint64_t total, double *cpu_s);

/* CPU seconds (user and system, all threads, ended ones too) process pid
 * has used so far, from /proc/PID/stat (clock-tick resolution); -1 if it
 * cannot be read. */
double bench_proc_cpu_s(pid_t pid);

/* User plus system seconds of ru. */
struct rusage;
double bench_rusage_s(const struct rusage *ru);

/* CPU seconds of the calling thread so far. */
double bench_thread_cpu_s(void);

/* A reading thread (pthread_create(..., bench_drain_thread, d)): reads
 * fd d->fd 1 MiB at a time until EOF or an error, adding the count to
 * d->bytes. */
struct bench_drain {
	int fd;
	uint64_t bytes;
};
void *bench_drain_thread(void *arg);

/* Profiling only the timed part: when BENCH_PERF_CTL names the fifo given
 * to `perf record -D -1 --control fifo:PATH`, write cmd ("enable" or
 * "disable") to it; otherwise nothing. */
void bench_perf_ctl(const char *cmd);

/* Median of v[0..n) (sorts v). */
double bench_median(double *v, size_t n);

#endif
