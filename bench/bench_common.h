/* SPDX-License-Identifier: MIT */
/* What the benchmarks share: clocks, the raw-socket baseline, medians. */
#ifndef VFMIG_BENCH_COMMON_H
#define VFMIG_BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define MiB (1u << 20)

/* Monotonic seconds. */
double bench_now_s(void);

/* 10^6 bytes per second. */
double bench_mbps(uint64_t bytes, double secs);

/* The 4 MiB socket buffers the VMM library asks for. */
void bench_grow_socket(int fd);

/* MB/s of total bytes written by a child process and read by this one over
 * a fresh UNIX socketpair, 1 MiB per call. Returns -1 on failure. */
double bench_baseline(uint64_t total);

/* Median of v[0..n) (sorts v). */
double bench_median(double *v, size_t n);

#endif
