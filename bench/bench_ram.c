/* SPDX-License-Identifier: MIT */
/*
 * bench-ram: guest RAM migrated live between two real `vfmig vmm`
 * processes, beside raw single-stream baselines measured in the same run.
 *
 * Each round measures, in this order:
 *
 *   (a) raw TCP     one child process writes RAM-size bytes over a loopback
 *                   TCP connection to this process, 1 MiB per write() and
 *                   read(), TCP_NODELAY and the kernel's default socket
 *                   buffers: what vfmig's TCP channel uses (it sets no
 *                   buffer sizes, the stream's records carry up to 1 MiB of
 *                   data); over UNIX, both ends ask for 4 MiB buffers, as
 *                   vfmig's UNIX channel does
 *   (b) vfmig TCP   a VM whose guest RAM above 1 MiB is all pseudo-random
 *                   (`vfmig vmm --fill all`) migrated live over tcp:
 *   raw UNIX        (a) over a UNIX stream socket
 *   (m) RAM to RAM  (a) and raw UNIX again, but the child writes from a
 *                   RAM-size memfd mapping and this process reads into
 *                   another one, at increasing offsets (both populated
 *                   before the round, MAP_SHARED as vfmig's guest RAM):
 *                   a raw stream that moves RAM as a migration must, from
 *                   memory on one side into memory on the other, where
 *                   (a) re-sends one 1 MiB buffer that stays in the cache;
 *                   (b) and (c) are also given as ratios to these
 *   (c) vfmig UNIX  (b) over unix:
 *   (d) sparse VM   (b) with only --touched-mib of RAM filled (plus what
 *                   the guest's stamps and DMA touch before the migration):
 *                   the rest of RAM was never written
 *   first touch     one byte written to every page of a fresh RAM-size
 *                   memfd in this process: what a destination pays at
 *                   least to receive the RAM (each page is allocated and
 *                   cleared by the kernel on its first write)
 *   (e) channels    for each N of --channels: raw TCP with N connections
 *                   (N child processes each writing RAM-size / N bytes,
 *                   N reader threads here), then (b) with `migrate
 *                   --channels N`, its ratio to the N raw streams, to the
 *                   single raw stream (a) and to the single vfmig stream
 *                   (b) of the same round
 *   (q) QEMU        when qemu-system-x86_64 is on PATH (or $QEMU names it):
 *                   QEMU migrating a paused VM of the same RAM size whose
 *                   RAM is a shared file of pseudo-random data in /dev/shm,
 *                   into a destination with preallocated memfd RAM, over
 *                   loopback TCP with max-bandwidth raised; with (e), also
 *                   QEMU's multifd with the same N. QEMU's own figures:
 *                   ram.transferred over total-time
 *
 * Every vfmig case runs two `vfmig device regs` processes and two `vfmig
 * vmm` processes (the destination with --incoming), all started afresh,
 * and migrates with the control socket's "migrate" command, as a user
 * does; the destination's verifier checks every RAM byte right after the
 * guest resumed there (`--verify after`, so that the check, a test oracle,
 * is in neither the total nor the downtime), and the bench fails unless it
 * says "ok". Figures:
 * the engine's total time (from the migrate command to the destination's
 * RESUMED) and downtime,
 * the bytes on the wire (the stream: page data, device data and
 * framing), MB/s of those bytes over the total time with the ratio to the
 * raw stream of the same round, the source and destination VMMs' resident
 * memory growth across the migration (VmRSS of /proc/PID/status), how
 * long a second verification on the destination takes (query-guest), to
 * show how much of the total the verifier is, and the CPU seconds the four
 * processes used from the migrate command to the report (/proc/PID/stat;
 * the destination's less what the second verification cost it) per GiB on
 * the wire, with the average number of busy CPUs. (m) reports its CPU too
 * (the writing child and the reading thread), and (b) and (c) their CPU
 * per GiB as a multiple of (m)'s: on a machine whose CPUs are all busy,
 * that multiple, not the network, bounds their ratio to (m).
 *
 * The vfmig binary is $VFMIG if set, else ../src/cli/vfmig relative to the
 * directory of this executable (the build tree layout).
 *
 * Usage: bench-ram [--ram-mib N] [--touched-mib N] [--rounds N]
 *                  [--guest-interval-us N] [--cases LETTERS]
 *                  [--channels N[,N...]] [--dst-prealloc]
 *
 * --dst-prealloc starts every vfmig destination with `vfmig vmm --prealloc`
 * (all RAM allocated before the migration, outside its time), which is
 * how (q)'s QEMU destination runs.
 * With (q) the bench needs room for a third copy of the RAM in /dev/shm.
 */
#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "bench_common.h"
#include "control_client.h"

#define MAX_ROUNDS 20
#define MAX_PROCS 4
#define START_TIMEOUT_S 300 /* a large fill on a busy machine */
#define MIGRATE_TIMEOUT_S 600
#define MAX_CHANNEL_CASES 4
#define MAX_CHANNELS 16

struct opts {
	uint64_t ram_mib, touched_mib;
	unsigned rounds, interval_us;
	bool a, b, c, d, e, m, q;
	bool dst_prealloc; /* the vfmig destinations run with --prealloc */
	unsigned nchan, chans[MAX_CHANNEL_CASES]; /* the (e) cases */
};

static char tmpdir[64];
static char vfmig[PATH_MAX + 32];
static char qemu[PATH_MAX];          /* "" when there is none */
static char qemu_ram[64];            /* the source QEMU's RAM file */
static pid_t procs[MAX_PROCS];
static const char *proc_names[MAX_PROCS];

/* ---- processes ---- */

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static void stop_procs(void)
{
	for (int i = MAX_PROCS - 1; i >= 0; i--)
		if (procs[i] > 0)
			kill(procs[i], SIGTERM);
	for (int i = 0; i < MAX_PROCS; i++) {
		int k;
		if (procs[i] <= 0)
			continue;
		for (k = 0; k < 1000; k++) {
			if (waitpid(procs[i], NULL, WNOHANG) == procs[i])
				break;
			sleep_ms(10);
		}
		if (k == 1000) {
			kill(procs[i], SIGKILL);
			waitpid(procs[i], NULL, 0);
		}
		procs[i] = 0;
	}
}

/* Empty the folder (logs, sockets); remove it too unless keep. */
static void clear_dir(bool keep)
{
	DIR *d = tmpdir[0] ? opendir(tmpdir) : NULL;
	struct dirent *e;
	char path[PATH_MAX];

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", tmpdir, e->d_name);
		unlink(path);
	}
	closedir(d);
	if (!keep)
		rmdir(tmpdir);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "bench-ram: FAILED: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (process logs kept in %s)\n", tmpdir);
	stop_procs();
	if (qemu_ram[0])
		unlink(qemu_ram);
	exit(1);
}

/* Ctrl-C or SIGTERM: the children and the 1 GiB QEMU RAM file in
 * /dev/shm go too (only async-signal-safe calls). */
static void on_signal(int sig)
{
	for (int i = 0; i < MAX_PROCS; i++)
		if (procs[i] > 0)
			kill(procs[i], SIGKILL);
	if (qemu_ram[0])
		unlink(qemu_ram);
	_exit(128 + sig);
}

static void find_vfmig(void)
{
	const char *env = getenv("VFMIG");
	char exe[PATH_MAX];
	ssize_t n;

	if (env && *env) {
		snprintf(vfmig, sizeof(vfmig), "%s", env);
	} else {
		n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		if (n < 0) {
			perror("bench-ram: readlink /proc/self/exe");
			exit(1);
		}
		exe[n] = '\0';
		snprintf(vfmig, sizeof(vfmig), "%s/../src/cli/vfmig",
			 dirname(exe));
	}
	if (access(vfmig, X_OK) < 0) {
		fprintf(stderr, "bench-ram: no vfmig binary at %s: %s (build "
				"src/cli/vfmig or set VFMIG)\n", vfmig,
			strerror(errno));
		exit(1);
	}
}

static const char *in_dir(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", tmpdir, name);
	return buf;
}

/* Start PROG ARGS... (argv[0] is NAME) as process slot i, stderr to
 * <name>.log. */
static void spawn_prog(int i, const char *name, const char *prog,
		       const char *const *args)
{
	char log[PATH_MAX], logname[64];
	const char *argv[32] = { name };
	int n = 1;

	for (; args[n - 1] && n < 31; n++)
		argv[n] = args[n - 1];
	argv[n] = NULL;
	snprintf(logname, sizeof(logname), "%s.log", name);
	in_dir(log, sizeof(log), logname);
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		if (!freopen(log, "w", stderr))
			_exit(127);
		execv(prog, (char *const *)argv);
		fprintf(stderr, "exec %s: %s\n", prog, strerror(errno));
		_exit(127);
	}
	procs[i] = pid;
	proc_names[i] = name;
}

/* Start `vfmig ARGS...` as process slot i. */
static void spawn(int i, const char *name, const char *const *args)
{
	spawn_prog(i, name, vfmig, args);
}

/* Wait for a socket that process slot i creates once it is ready. */
static void wait_path(int i, const char *path)
{
	struct stat st;

	for (int k = 0; k < START_TIMEOUT_S * 100; k++) {
		if (stat(path, &st) == 0)
			return;
		if (waitpid(procs[i], NULL, WNOHANG) == procs[i]) {
			procs[i] = 0;
			die("%s exited before it created %s", proc_names[i],
			    path);
		}
		sleep_ms(10);
	}
	die("%s did not create %s within %d s", proc_names[i], path,
	    START_TIMEOUT_S);
}

/* Resident memory of a process in KiB (VmRSS: anonymous, file and
 * shared memory, e.g. the guest RAM memfd pages it has mapped). */
static int64_t rss_kib(pid_t pid)
{
	char path[64], line[256];
	long long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		die("%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %lld kB", &kib) == 1)
			break;
	fclose(f);
	if (kib < 0)
		die("no VmRSS in %s", path);
	return kib;
}

/* bench_proc_cpu_s of one of the processes, which must be readable. */
static double proc_cpu_s(pid_t pid)
{
	double s = bench_proc_cpu_s(pid);

	if (s < 0)
		die("no CPU times in /proc/%d/stat", (int)pid);
	return s;
}

/* KiB the guest RAM memfd of a process has allocated (st_blocks of the fd
 * named "memfd:vfmig-guest-ram"): pages allocated in the file but not
 * mapped yet (fallocate'd) count here and not in VmRSS. -1: none found. */
static int64_t ram_file_kib(pid_t pid)
{
	char dir[64], path[PATH_MAX], link[PATH_MAX];
	struct dirent *e;
	struct stat st;
	int64_t kib = -1;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	d = opendir(dir);
	if (!d)
		return -1;
	while (kib < 0 && (e = readdir(d))) {
		ssize_t n;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n < 0)
			continue;
		link[n] = '\0';
		if (strstr(link, "memfd:vfmig-guest-ram") && stat(path, &st) == 0)
			kib = (int64_t)st.st_blocks / 2;
	}
	closedir(d);
	return kib;
}

/* Bytes of memory the kernel could give now without swapping. */
static uint64_t mem_available(void)
{
	char line[256];
	unsigned long long kib = 0;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1)
			break;
	fclose(f);
	return (uint64_t)kib << 10;
}

/* ---- control socket ---- */

static struct json_object *ctl(const char *path, const char *cmd,
			       struct json_object *args)
{
	struct ctl_client c;
	struct json_object *ret = NULL;
	char err[400];

	if (ctl_client_open(&c, path, err, sizeof(err)) < 0) {
		json_object_put(args);
		die("%s: %s", path, err);
	}
	if (ctl_client_call(&c, cmd, args, &ret, err, sizeof(err)) < 0)
		die("%s on %s: %s", cmd, path, err);
	ctl_client_close(&c);
	return ret;
}

static int64_t get_int(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v)
						     : -1;
}

static double get_double(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_double(v)
						     : -1;
}

static const char *get_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) && v
		       ? json_object_get_string(v)
		       : NULL;
}

/* ---- raw single-stream baselines ---- */

static int tcp_listener(uint16_t *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(s, (struct sockaddr *)&sa, &len) < 0)
		die("TCP socket on loopback: %s", strerror(errno));
	*port = ntohs(sa.sin_port);
	return s;
}

/* A free loopback TCP port (bound, read, released: a small race). */
static uint16_t free_port(void)
{
	uint16_t port;

	close(tcp_listener(&port));
	return port;
}

static int connect_to(bool tcp, uint16_t port, const char *path)
{
	int s = socket(tcp ? AF_INET : AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1, r;

	if (s < 0)
		return -1;
	if (tcp) {
		struct sockaddr_in sa = {
			.sin_family = AF_INET,
			.sin_port = htons(port),
			.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
		};
		r = connect(s, (struct sockaddr *)&sa, sizeof(sa));
		setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	} else {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
		bench_grow_socket(s); /* as vfmig's UNIX channel */
		r = connect(s, (struct sockaddr *)&sa, sizeof(sa));
	}
	if (r < 0) {
		close(s);
		return -1;
	}
	return s;
}

/* RAM-size memory for (m): a populated MAP_SHARED memfd mapping, as a
 * VMM's guest RAM is; a forked child shares it. */
static uint8_t *ram_region(uint64_t size)
{
	int fd = memfd_create("bench-ram-raw", MFD_CLOEXEC);
	void *p;

	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		die("memfd of %llu bytes: %s", (unsigned long long)size,
		    strerror(errno));
	p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_POPULATE, fd, 0);
	if (p == MAP_FAILED)
		die("mmap of %llu bytes: %s", (unsigned long long)size,
		    strerror(errno));
	close(fd);
	return p;
}

/* MB/s of total bytes from a child process to this one over a fresh
 * loopback TCP or UNIX stream connection, 1 MiB per write() and read().
 * With from and into (total bytes each), the child writes from from +
 * the bytes sent so far and this process reads into into + the bytes
 * received; else both use one 1 MiB buffer over and over. */
static double raw_stream_mem(bool tcp, uint64_t total, const uint8_t *from,
			     uint8_t *into, double *cpu_s)
{
	struct rusage child;
	double cpu0 = bench_thread_cpu_s();
	char path[PATH_MAX] = "";
	uint16_t port = 0;
	uint8_t *buf = malloc(MiB);
	uint64_t got = 0, x = 0x2545f4914f6cdd1dull;
	int ls, s;

	if (!buf)
		die("out of memory");
	for (size_t i = 0; i < MiB / 8; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		memcpy(buf + i * 8, &x, 8);
	}
	if (tcp) {
		ls = tcp_listener(&port);
	} else {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		in_dir(path, sizeof(path), "raw.sock");
		unlink(path);
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
		ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (ls < 0 ||
		    bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			die("UNIX socket %s: %s", path, strerror(errno));
	}
	if (listen(ls, 1) < 0)
		die("listen: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		int c = connect_to(tcp, port, path);
		if (c < 0)
			_exit(1);
		for (uint64_t sent = 0; sent < total;) {
			size_t want = total - sent < MiB ? total - sent : MiB;
			ssize_t n = write(c, from ? from + sent : buf, want);
			if (n <= 0)
				_exit(1);
			sent += (uint64_t)n;
		}
		_exit(0);
	}
	s = accept(ls, NULL, NULL);
	close(ls);
	if (s < 0)
		die("accept: %s", strerror(errno));
	if (!tcp)
		bench_grow_socket(s);
	double t0 = bench_now_s();
	while (got < total) {
		size_t want = total - got < MiB ? total - got : MiB;
		ssize_t n = read(s, into ? into + got : buf, want);
		if (n <= 0)
			break;
		got += (uint64_t)n;
	}
	double t1 = bench_now_s();
	close(s);
	if (wait4(pid, NULL, 0, &child) < 0)
		die("wait4: %s", strerror(errno));
	/* The sender's CPU and this (the receiving) thread's. */
	if (cpu_s)
		*cpu_s = bench_thread_cpu_s() - cpu0 + bench_rusage_s(&child);
	free(buf);
	if (path[0])
		unlink(path);
	if (got != total)
		die("raw %s stream: %llu of %llu bytes arrived",
		    tcp ? "TCP" : "UNIX", (unsigned long long)got,
		    (unsigned long long)total);
	return bench_mbps(got, t1 - t0);
}

static double raw_stream(bool tcp, uint64_t total)
{
	return raw_stream_mem(tcp, total, NULL, NULL, NULL);
}

/* MB/s of total bytes over n loopback TCP connections at once: n child
 * processes write total / n bytes each (1 MiB writes, TCP_NODELAY), n
 * threads here read them. Timed from the last accept to the last byte. */
static double raw_streams(unsigned n, uint64_t total)
{
	struct bench_drain rr[MAX_CHANNELS];
	pthread_t th[MAX_CHANNELS];
	pid_t pid[MAX_CHANNELS];
	uint16_t port;
	uint64_t part = total / n, got = 0;
	int ls = tcp_listener(&port);

	if (listen(ls, MAX_CHANNELS) < 0)
		die("listen: %s", strerror(errno));
	for (unsigned i = 0; i < n; i++) {
		pid[i] = fork();
		if (pid[i] < 0)
			die("fork: %s", strerror(errno));
		if (pid[i] == 0) {
			uint8_t *buf = malloc(MiB);
			uint64_t x = 0x2545f4914f6cdd1dull + i;
			int c = connect_to(true, port, NULL);
			if (c < 0 || !buf)
				_exit(1);
			for (size_t k = 0; k < MiB / 8; k++) {
				x ^= x << 13, x ^= x >> 7, x ^= x << 17;
				memcpy(buf + k * 8, &x, 8);
			}
			for (uint64_t sent = 0; sent < part;) {
				size_t want = part - sent < MiB ? part - sent
								: MiB;
				ssize_t k = write(c, buf, want);
				if (k <= 0)
					_exit(1);
				sent += (uint64_t)k;
			}
			_exit(0);
		}
	}
	for (unsigned i = 0; i < n; i++) {
		rr[i] = (struct bench_drain){ .fd = accept(ls, NULL, NULL) };
		if (rr[i].fd < 0)
			die("accept: %s", strerror(errno));
	}
	close(ls);
	double t0 = bench_now_s();
	for (unsigned i = 0; i < n; i++)
		if (pthread_create(&th[i], NULL, bench_drain_thread, &rr[i]) != 0)
			die("cannot start a reader thread");
	for (unsigned i = 0; i < n; i++) {
		pthread_join(th[i], NULL);
		close(rr[i].fd);
		got += rr[i].bytes;
	}
	double t1 = bench_now_s();
	for (unsigned i = 0; i < n; i++)
		waitpid(pid[i], NULL, 0);
	if (got != part * n)
		die("raw TCP over %u connections: %llu of %llu bytes arrived",
		    n, (unsigned long long)got, (unsigned long long)(part * n));
	return bench_mbps(got, t1 - t0);
}

/* MB/s of RAM-size bytes of a fresh memfd, one write per page. */
static double first_touch(uint64_t size)
{
	int fd = memfd_create("bench-ram-touch", MFD_CLOEXEC);
	uint8_t *p;

	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		die("memfd of %llu bytes: %s", (unsigned long long)size,
		    strerror(errno));
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		die("mmap of %llu bytes: %s", (unsigned long long)size,
		    strerror(errno));
	double t0 = bench_now_s();
	for (uint64_t off = 0; off < size; off += 4096)
		((volatile uint8_t *)p)[off] = 1;
	double t1 = bench_now_s();
	munmap(p, size);
	close(fd);
	return bench_mbps(size, t1 - t0);
}

/* ---- one vfmig migration ---- */

struct mig {
	double total_ms, downtime_ms, wall_ms, verify_ms;
	/* CPU seconds from the migrate command to the report: each VMM
	 * (the destination's less what one verify of all RAM takes) and
	 * the two devices. */
	double cpu_src_s, cpu_dst_s, cpu_dev_s;
	uint64_t wire, ram_bytes, stamps;
	int64_t src_growth_kib, dst_growth_kib;
	int64_t dst_file_kib; /* the destination's RAM memfd after */
	unsigned rounds;
	double mbps; /* wire bytes over the total time */
};

enum { P_SRC_DEV, P_DST_DEV, P_DST_VMM, P_SRC_VMM };

static bool finished(const char *status)
{
	return status && strcmp(status, "setup") && strcmp(status, "active") &&
	       strcmp(status, "switchover");
}

/*
 * Start the four processes, let the guest run for a moment, migrate over
 * tcp (else unix) and collect the figures; stop everything. fill is the
 * source's --fill value.
 */
static void run_vfmig(const struct opts *o, bool tcp, const char *fill,
		      unsigned channels, struct mig *m)
{
	char src_dev[PATH_MAX], dst_dev[PATH_MAX], src_ctl[PATH_MAX],
		dst_ctl[PATH_MAX], mig_sock[PATH_MAX], uri[PATH_MAX + 8],
		ram[32], interval[32];
	struct json_object *q, *rep = NULL, *args;

	memset(m, 0, sizeof(*m));
	in_dir(src_dev, sizeof(src_dev), "src-regs.sock");
	in_dir(dst_dev, sizeof(dst_dev), "dst-regs.sock");
	in_dir(src_ctl, sizeof(src_ctl), "src.ctl");
	in_dir(dst_ctl, sizeof(dst_ctl), "dst.ctl");
	in_dir(mig_sock, sizeof(mig_sock), "mig.sock");
	if (tcp)
		snprintf(uri, sizeof(uri), "tcp:127.0.0.1:%u", free_port());
	else
		snprintf(uri, sizeof(uri), "unix:%s", mig_sock);
	snprintf(ram, sizeof(ram), "%lluM", (unsigned long long)o->ram_mib);
	snprintf(interval, sizeof(interval), "%u", o->interval_us);

	const char *sd[] = { "device", "regs", "--socket-path", src_dev,
			     "--quiet", NULL };
	const char *dd[] = { "device", "regs", "--socket-path", dst_dev,
			     "--quiet", NULL };
	spawn(P_SRC_DEV, "src-regs", sd);
	spawn(P_DST_DEV, "dst-regs", dd);
	wait_path(P_SRC_DEV, src_dev);
	wait_path(P_DST_DEV, dst_dev);
	const char *dv[] = { "vmm", "--device", dst_dev, "--ram", ram,
			     "--control", dst_ctl, "--incoming", uri,
			     "--verify", "after",
			     "--guest-interval-us", interval, "--quiet",
			     o->dst_prealloc ? "--prealloc" : NULL, NULL };
	const char *sv[] = { "vmm", "--device", src_dev, "--ram", ram,
			     "--control", src_ctl, "--fill", fill,
			     "--guest-interval-us", interval, "--quiet", NULL };
	spawn(P_DST_VMM, "dst-vmm", dv);
	spawn(P_SRC_VMM, "src-vmm", sv);
	wait_path(P_DST_VMM, dst_ctl);
	wait_path(P_SRC_VMM, src_ctl); /* after its fill */
	sleep_ms(200); /* the guest runs: the VM is live */

	int64_t src0 = rss_kib(procs[P_SRC_VMM]);
	int64_t dst0 = rss_kib(procs[P_DST_VMM]);
	double cs0 = proc_cpu_s(procs[P_SRC_VMM]);
	double cd0 = proc_cpu_s(procs[P_DST_VMM]);
	double cv0 = proc_cpu_s(procs[P_SRC_DEV]) + proc_cpu_s(procs[P_DST_DEV]);
	args = json_object_new_object();
	json_object_object_add(args, "uri", json_object_new_string(uri));
	if (channels > 1)
		json_object_object_add(args, "channels",
				       json_object_new_int((int)channels));
	double t0 = bench_now_s();
	bool perf_off = false;
	bench_perf_ctl("enable");
	json_object_put(ctl(src_ctl, "migrate", args));
	for (int k = 0; !rep; k++) {
		if (k > MIGRATE_TIMEOUT_S * 100)
			die("the migration did not end in %d s",
			    MIGRATE_TIMEOUT_S);
		q = ctl(src_ctl, "query-migrate", NULL);
		struct json_object *r;
		bool done = finished(get_str(q, "status"));
		/* The profile ends at the first finished status. The
		 * destination's verify after the resume is still inside:
		 * the status stays "switchover" until its verdict. */
		if (done && !perf_off) {
			bench_perf_ctl("disable");
			perf_off = true;
		}
		if (done && json_object_object_get_ex(q, "report", &r))
			rep = json_object_get(r);
		json_object_put(q);
		if (!rep)
			sleep_ms(10); /* the engine times itself */
	}
	m->wall_ms = (bench_now_s() - t0) * 1e3;
	m->cpu_src_s = proc_cpu_s(procs[P_SRC_VMM]) - cs0;
	m->cpu_dst_s = proc_cpu_s(procs[P_DST_VMM]) - cd0;
	m->cpu_dev_s = proc_cpu_s(procs[P_SRC_DEV]) +
		       proc_cpu_s(procs[P_DST_DEV]) - cv0;
	const char *err = get_str(rep, "error");
	if (err)
		die("migration over %s: %s", uri, err);
	if (!json_object_get_boolean(json_object_object_get(rep, "verified")))
		die("destination verification: %s", get_str(rep, "verify"));
	m->src_growth_kib = rss_kib(procs[P_SRC_VMM]) - src0;
	m->dst_growth_kib = rss_kib(procs[P_DST_VMM]) - dst0;
	m->dst_file_kib = ram_file_kib(procs[P_DST_VMM]);
	m->total_ms = get_double(rep, "total_ms");
	m->downtime_ms = get_double(rep, "downtime_ms");
	m->rounds = (unsigned)get_int(rep, "rounds");
	struct json_object *b = json_object_object_get(rep, "bytes");
	m->ram_bytes = (uint64_t)get_int(b, "ram");
	m->wire = m->ram_bytes + (uint64_t)get_int(b, "device") +
		  (uint64_t)get_int(b, "overhead");
	m->mbps = bench_mbps(m->wire, m->total_ms / 1e3);
	json_object_put(rep);

	/* What the guest wrote before the switchover: its stamp count. */
	args = json_object_new_object();
	json_object_object_add(args, "verify", json_object_new_boolean(false));
	q = ctl(src_ctl, "query-guest", args);
	m->stamps = (uint64_t)get_int(q, "ram_stamps");
	json_object_put(q);
	/* The same verification again on the destination, timed. */
	double v0 = bench_now_s(), vc0 = proc_cpu_s(procs[P_DST_VMM]);
	q = ctl(dst_ctl, "query-guest", NULL);
	m->verify_ms = (bench_now_s() - v0) * 1e3;
	m->cpu_dst_s -= proc_cpu_s(procs[P_DST_VMM]) - vc0;
	if (m->cpu_dst_s < 0)
		m->cpu_dst_s = 0;
	if (!json_object_get_boolean(json_object_object_get(q, "verified")))
		die("destination guest after the migration: %s",
		    get_str(q, "verify"));
	json_object_put(q);
	stop_procs();
	clear_dir(true);
}

/* ---- QEMU, the same RAM migrated by the VMM a user would otherwise pick ---- */

struct qmig {
	double total_ms, downtime_ms, mbps;
	double cpu_per_gib; /* both QEMUs, migrate command to completion */
	uint64_t bytes;
};

/* $QEMU, or qemu-system-x86_64 on PATH; "" when neither exists. */
static void find_qemu(void)
{
	const char *env = getenv("QEMU"), *path = getenv("PATH");
	char buf[PATH_MAX];

	if (env && *env) {
		if (access(env, X_OK) == 0)
			snprintf(qemu, sizeof(qemu), "%s", env);
		return;
	}
	while (path && *path) {
		size_t n = strcspn(path, ":");
		snprintf(buf, sizeof(buf), "%.*s/qemu-system-x86_64", (int)n,
			 path);
		if (n && access(buf, X_OK) == 0) {
			snprintf(qemu, sizeof(qemu), "%s", buf);
			return;
		}
		path += n + (path[n] == ':');
	}
}

/* The source QEMU's RAM: a /dev/shm file of pseudo-random words (no page
 * is zero, as with `vfmig vmm --fill all`), written once per run. */
static bool make_qemu_ram(uint64_t size)
{
	struct statvfs sv;
	uint64_t x = 0x9e3779b97f4a7c15ull;
	int fd;

	if (statvfs("/dev/shm", &sv) < 0 ||
	    (uint64_t)sv.f_bavail * sv.f_frsize < size + (64ull << 20)) {
		printf("QEMU: /dev/shm has no room for %llu MiB of RAM: "
		       "skipped\n", (unsigned long long)(size >> 20));
		return false;
	}
	snprintf(qemu_ram, sizeof(qemu_ram), "/dev/shm/bench-ram-qemu-XXXXXX");
	fd = mkstemp(qemu_ram);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		die("QEMU RAM file %s: %s", qemu_ram, strerror(errno));
	uint64_t *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
			   0);
	if (p == MAP_FAILED)
		die("mmap %s: %s", qemu_ram, strerror(errno));
	for (uint64_t i = 0; i < size / 8; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = x;
	}
	munmap(p, size);
	close(fd);
	return true;
}

/* QMP: the greeting, then qmp_capabilities; c stays open. */
static void qmp_open(struct ctl_client *c, const char *path)
{
	struct json_object *ret;
	char err[400];

	if (ctl_client_open(c, path, err, sizeof(err)) < 0)
		die("%s: %s", path, err);
	if (ctl_client_call(c, "qmp_capabilities", NULL, &ret, err,
			    sizeof(err)) < 0)
		die("qmp_capabilities on %s: %s", path, err);
	json_object_put(ret);
}

static struct json_object *qmp(struct ctl_client *c, const char *cmd,
			       struct json_object *args)
{
	struct json_object *ret;
	char err[400];

	if (ctl_client_call(c, cmd, args, &ret, err, sizeof(err)) < 0)
		die("QEMU %s: %s", cmd, err);
	return ret;
}

/* multifd with n channels on one side (n > 1). */
static void qmp_multifd(struct ctl_client *c, unsigned n)
{
	struct json_object *caps = json_object_new_array(), *cap, *args;

	cap = json_object_new_object();
	json_object_object_add(cap, "capability",
			       json_object_new_string("multifd"));
	json_object_object_add(cap, "state", json_object_new_boolean(true));
	json_object_array_add(caps, cap);
	args = json_object_new_object();
	json_object_object_add(args, "capabilities", caps);
	json_object_put(qmp(c, "migrate-set-capabilities", args));
	args = json_object_new_object();
	json_object_object_add(args, "multifd-channels",
			       json_object_new_int((int)n));
	json_object_put(qmp(c, "migrate-set-parameters", args));
}

/*
 * One QEMU migration of the RAM file: a paused source (-S) and a
 * destination with preallocated RAM, both without devices, TCG (no guest
 * code runs), over loopback TCP; n > 1 turns multifd on with n channels.
 */
static void run_qemu(const struct opts *o, unsigned n, struct qmig *m)
{
	char src_qmp[PATH_MAX], dst_qmp[PATH_MAX], q_src[PATH_MAX + 32],
		q_dst[PATH_MAX + 32], mem_src[PATH_MAX + 96], mem_dst[96],
		incoming[64], uri[64], size[32];
	struct ctl_client cs, cd;
	struct json_object *args, *q = NULL;
	uint16_t port = free_port();

	memset(m, 0, sizeof(*m));
	in_dir(src_qmp, sizeof(src_qmp), "src.qmp");
	in_dir(dst_qmp, sizeof(dst_qmp), "dst.qmp");
	snprintf(q_src, sizeof(q_src), "unix:%s,server=on,wait=off", src_qmp);
	snprintf(q_dst, sizeof(q_dst), "unix:%s,server=on,wait=off", dst_qmp);
	snprintf(size, sizeof(size), "%lluM", (unsigned long long)o->ram_mib);
	snprintf(mem_src, sizeof(mem_src),
		 "memory-backend-file,id=ram0,size=%s,mem-path=%s,share=on",
		 size, qemu_ram);
	snprintf(mem_dst, sizeof(mem_dst),
		 "memory-backend-memfd,id=ram0,size=%s,prealloc=on", size);
	snprintf(uri, sizeof(uri), "tcp:127.0.0.1:%u", port);
	snprintf(incoming, sizeof(incoming), "%s", uri);
	const char *dv[] = { "-machine", "pc,accel=tcg,memory-backend=ram0",
			     "-m", size, "-object", mem_dst, "-nodefaults",
			     "-display", "none", "-S", "-qmp", q_dst,
			     "-incoming", incoming, NULL };
	const char *sv[] = { "-machine", "pc,accel=tcg,memory-backend=ram0",
			     "-m", size, "-object", mem_src, "-nodefaults",
			     "-display", "none", "-S", "-qmp", q_src, NULL };
	spawn_prog(P_DST_VMM, "dst-qemu", qemu, dv);
	spawn_prog(P_SRC_VMM, "src-qemu", qemu, sv);
	wait_path(P_DST_VMM, dst_qmp);
	wait_path(P_SRC_VMM, src_qmp);
	qmp_open(&cd, dst_qmp);
	qmp_open(&cs, src_qmp);
	if (n > 1) {
		qmp_multifd(&cd, n);
		qmp_multifd(&cs, n);
	}
	/* QEMU's default limit is 32 MiB/s; raise it out of the way. */
	args = json_object_new_object();
	json_object_object_add(args, "max-bandwidth",
			       json_object_new_int64(100ll << 30));
	json_object_put(qmp(&cs, "migrate-set-parameters", args));
	args = json_object_new_object();
	json_object_object_add(args, "uri", json_object_new_string(uri));
	double t0 = bench_now_s();
	double qc0 = proc_cpu_s(procs[P_SRC_VMM]) + proc_cpu_s(procs[P_DST_VMM]);
	json_object_put(qmp(&cs, "migrate", args));
	for (int k = 0;; k++) {
		if (k > MIGRATE_TIMEOUT_S * 100)
			die("QEMU's migration did not end in %d s",
			    MIGRATE_TIMEOUT_S);
		q = qmp(&cs, "query-migrate", NULL);
		const char *st = get_str(q, "status");
		if (st && !strcmp(st, "completed"))
			break;
		if (st && (!strcmp(st, "failed") || !strcmp(st, "cancelled")))
			die("QEMU's migration %s: %s", st,
			    get_str(q, "error-desc") ? get_str(q, "error-desc")
						     : "no reason given");
		json_object_put(q);
		sleep_ms(10);
	}
	double wall_ms = (bench_now_s() - t0) * 1e3;
	double qcpu = proc_cpu_s(procs[P_SRC_VMM]) +
		      proc_cpu_s(procs[P_DST_VMM]) - qc0;
	m->total_ms = get_double(q, "total-time");
	if (m->total_ms <= 0) {
		/* Seen with multifd under load: a completed reply with a
		 * total-time of 0. The bench's own clock stands in. */
		fprintf(stderr, "bench-ram: QEMU reported total-time %s; using "
				"the %.1f ms the bench measured\n",
			json_object_to_json_string(q), wall_ms);
		m->total_ms = wall_ms;
	}
	m->downtime_ms = get_double(q, "downtime");
	m->bytes = (uint64_t)get_int(json_object_object_get(q, "ram"),
				     "transferred");
	m->mbps = bench_mbps(m->bytes, m->total_ms / 1e3);
	m->cpu_per_gib = qcpu / bench_gib(m->bytes);
	json_object_put(q);
	if (m->bytes < o->ram_mib * MiB)
		die("QEMU moved %llu bytes of a %llu MiB RAM",
		    (unsigned long long)m->bytes,
		    (unsigned long long)o->ram_mib);
	ctl_client_close(&cs);
	ctl_client_close(&cd);
	stop_procs();
	clear_dir(true);
}

/* ---- report ---- */

static double median(const double *v, unsigned n)
{
	double c[MAX_ROUNDS];

	memcpy(c, v, n * sizeof(*v));
	return bench_median(c, n);
}

static void range(const double *v, unsigned n, double *lo, double *hi)
{
	*lo = *hi = v[0];
	for (unsigned i = 1; i < n; i++) {
		if (v[i] < *lo)
			*lo = v[i];
		if (v[i] > *hi)
			*hi = v[i];
	}
}

static double mib(uint64_t bytes)
{
	return (double)bytes / MiB;
}

/* CPU seconds the four processes of a vfmig case used (the
 * destination's verify left out). */
static double mig_cpu_s(const struct mig *m)
{
	return m->cpu_src_s + m->cpu_dst_s + m->cpu_dev_s;
}

/* The same per GiB on the wire. */
static double mig_cpu_per_gib(const struct mig *m)
{
	return m->wire ? mig_cpu_s(m) / bench_gib(m->wire) : 0;
}

static void print_mig(const char *what, const struct mig *m,
		      const double *ratio, unsigned n, const char *base)
{
	double lo, hi;

	printf("%-36s %8.1f MB/s", what, m->mbps);
	if (ratio) {
		range(ratio, n, &lo, &hi);
		printf("   ratio to %s %.2f (rounds %.2f-%.2f)", base,
		       median(ratio, n), lo, hi);
	}
	printf("\n%-36s total %.1f ms, downtime %.1f ms, %u rounds, wire "
	       "%.1f MiB (page data %.1f MiB)\n", "", m->total_ms,
	       m->downtime_ms, m->rounds, mib(m->wire), mib(m->ram_bytes));
	printf("%-36s RSS growth: source %+.1f MiB, destination %+.1f MiB; "
	       "a second destination verify %.1f ms\n", "",
	       m->src_growth_kib / 1024.0, m->dst_growth_kib / 1024.0,
	       m->verify_ms);
	printf("%-36s destination RAM memfd allocated %.1f MiB\n", "",
	       m->dst_file_kib / 1024.0);
	double busy_s = (m->wall_ms - m->verify_ms) / 1e3;
	printf("%-36s CPU: source VMM %.2f s, destination VMM %.2f s (less "
	       "a verify), devices %.2f s; %.2f s per GiB, %.1f of %ld CPUs "
	       "busy\n", "", m->cpu_src_s, m->cpu_dst_s, m->cpu_dev_s,
	       mig_cpu_per_gib(m), busy_s > 0 ? mig_cpu_s(m) / busy_s : 0,
	       sysconf(_SC_NPROCESSORS_ONLN));
}

/* The round whose total time is the median, for the other figures. */
static const struct mig *median_run(const struct mig *runs, unsigned n)
{
	double v[MAX_ROUNDS] = { 0 };
	double med;

	for (unsigned i = 0; i < n; i++)
		v[i] = runs[i].total_ms;
	med = median(v, n);
	for (unsigned i = 0; i < n; i++)
		if (runs[i].total_ms == med)
			return &runs[i];
	return &runs[0];
}

static int usage(void)
{
	fprintf(stderr,
		"usage: bench-ram [--ram-mib N (default 1024)] "
		"[--touched-mib N (default 16)]\n"
		"                 [--rounds N (default 3, at most %d)] "
		"[--guest-interval-us N (default 20000)]\n"
		"                 [--cases LETTERS (of abcdemq, default abcdmq; q "
		"runs where QEMU is installed)]\n"
		"                 [--channels N[,N...] (for e, 2..%d, at most "
		"%d counts; default 2,4)]\n"
		"                 [--dst-prealloc (vfmig destinations with "
		"--prealloc, as QEMU's in q)]\n",
		MAX_ROUNDS, MAX_CHANNELS, MAX_CHANNEL_CASES);
	return 2;
}

static int parse(int argc, char **argv, struct opts *o)
{
	*o = (struct opts){ .ram_mib = 1024, .touched_mib = 16, .rounds = 3,
			    .interval_us = 20000, .a = true, .b = true,
			    .c = true, .d = true, .m = true, .q = true,
			    .nchan = 2,
			    .chans = { 2, 4 } };
	for (int i = 1; i < argc; i++) {
		const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		char *end;
		unsigned long long n;

		if (!strcmp(k, "--dst-prealloc")) {
			o->dst_prealloc = true;
			continue;
		}
		if (!v)
			return -1;
		i++;
		if (!strcmp(k, "--cases")) {
			/* (e) compares with (a) and (b) of its round. */
			o->e = strchr(v, 'e');
			o->m = strchr(v, 'm');
			o->q = strchr(v, 'q');
			o->a = strchr(v, 'a') || strchr(v, 'b') ||
			       strchr(v, 'd') || o->e || o->m || o->q;
			o->b = strchr(v, 'b') || o->e;
			o->c = strchr(v, 'c');
			o->d = strchr(v, 'd');
			if (strspn(v, "abcdemq") != strlen(v) || !*v)
				return -1;
			continue;
		}
		if (!strcmp(k, "--channels")) {
			const char *p = v;
			o->nchan = 0;
			while (*p) {
				n = strtoull(p, &end, 10);
				if (end == p || n < 2 || n > MAX_CHANNELS ||
				    o->nchan == MAX_CHANNEL_CASES ||
				    (*end && *end != ','))
					return -1;
				o->chans[o->nchan++] = (unsigned)n;
				p = *end ? end + 1 : end;
			}
			if (!o->nchan)
				return -1;
			continue;
		}
		errno = 0;
		n = strtoull(v, &end, 10);
		if (errno || *end || !*v || *v == '-')
			return -1;
		if (!strcmp(k, "--ram-mib") && n >= 4 && n <= (1u << 20))
			o->ram_mib = n;
		else if (!strcmp(k, "--touched-mib") && n <= (1u << 20))
			o->touched_mib = n;
		else if (!strcmp(k, "--rounds") && n >= 1 && n <= MAX_ROUNDS)
			o->rounds = (unsigned)n;
		else if (!strcmp(k, "--guest-interval-us") && n >= 1 &&
			 n <= 10000000)
			o->interval_us = (unsigned)n;
		else
			return -1;
	}
	if (o->touched_mib > o->ram_mib - 1)
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	static struct mig b[MAX_ROUNDS], c[MAX_ROUNDS], d[MAX_ROUNDS];
	static struct mig e[MAX_CHANNEL_CASES][MAX_ROUNDS];
	static struct qmig qm[MAX_ROUNDS], qe[MAX_CHANNEL_CASES][MAX_ROUNDS];
	/* (q): QEMU's ratio to (a); with (e), QEMU multifd's to raw xN and
	 * vfmig --channels N's to QEMU multifd with N. */
	double rq[MAX_ROUNDS], rbq[MAX_ROUNDS],
		eqn[MAX_CHANNEL_CASES][MAX_ROUNDS],
		evq[MAX_CHANNEL_CASES][MAX_ROUNDS];
	double a[MAX_ROUNDS], u[MAX_ROUNDS], t[MAX_ROUNDS], rb[MAX_ROUNDS],
		rc[MAX_ROUNDS], rd[MAX_ROUNDS], rt[MAX_ROUNDS];
	/* (m): raw TCP and UNIX RAM to RAM, their ratios to the 1 MiB
	 * streams, and (b)'s and (c)'s ratios to them. */
	double ma[MAX_ROUNDS], mu[MAX_ROUNDS], rma[MAX_ROUNDS],
		rmu[MAX_ROUNDS], rbm[MAX_ROUNDS], rcm[MAX_ROUNDS];
	/* (m)'s CPU seconds per GiB, TCP and UNIX, and (b)'s and (c)'s CPU
	 * per GiB over them. */
	double mca[MAX_ROUNDS], mcu[MAX_ROUNDS], kbm[MAX_ROUNDS],
		kcm[MAX_ROUNDS];
	uint8_t *from = NULL, *into = NULL;
	/* (e): N raw streams, and vfmig's ratios to them, to (a), to (b). */
	double en[MAX_CHANNEL_CASES][MAX_ROUNDS],
		ern[MAX_CHANNEL_CASES][MAX_ROUNDS],
		era[MAX_CHANNEL_CASES][MAX_ROUNDS],
		erb[MAX_CHANNEL_CASES][MAX_ROUNDS];
	char touched[32];

	if (parse(argc, argv, &o) < 0)
		return usage();
	uint64_t ram = o.ram_mib * MiB;
	uint64_t need = 2 * ram + (512ull << 20);
	uint64_t avail = mem_available();
	if (o.m && avail < need + 2 * ram) {
		printf("(m): no room for two more RAM-size buffers (%llu MiB "
		       "available): its lines are skipped\n",
		       (unsigned long long)(avail >> 20));
		o.m = false;
	}
	if (avail < need) {
		fprintf(stderr, "bench-ram: a %llu MiB VM needs about %llu MiB "
				"(source and destination RAM and some room), "
				"%llu MiB are available\n",
			(unsigned long long)o.ram_mib,
			(unsigned long long)(need >> 20),
			(unsigned long long)(avail >> 20));
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	find_vfmig();
	if (o.q) {
		find_qemu();
		if (!qemu[0])
			printf("QEMU: no qemu-system-x86_64 on PATH and no "
			       "$QEMU: its cases are skipped\n");
		o.q = qemu[0] && make_qemu_ram(ram);
	}
	if (o.m) {
		from = ram_region(ram);
		into = ram_region(ram);
	}
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/bench-ram-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("bench-ram: mkdtemp");
		return 1;
	}
	snprintf(touched, sizeof(touched), "%lluM",
		 (unsigned long long)o.touched_mib);
	printf("bench-ram: %llu MiB guest RAM, sparse VM with %llu MiB "
	       "filled, %u rounds, guest interval %u us, vfmig %s%s\n",
	       (unsigned long long)o.ram_mib,
	       (unsigned long long)o.touched_mib, o.rounds, o.interval_us,
	       vfmig, o.dst_prealloc ? ", destinations --prealloc" : "");
	fflush(stdout);
	for (unsigned r = 0; r < o.rounds; r++) {
		printf("round %u:", r + 1);
		if (o.a) {
			a[r] = raw_stream(true, ram);
			t[r] = first_touch(ram);
			rt[r] = t[r] / a[r];
			printf(" raw TCP %.0f MB/s, first touch %.0f MB/s", a[r],
			       t[r]);
		}
		if (o.b) {
			run_vfmig(&o, true, "all", 1, &b[r]);
			rb[r] = b[r].mbps / a[r];
			printf(", vfmig TCP %.0f MB/s (%.2f)", b[r].mbps, rb[r]);
		}
		if (o.q) {
			run_qemu(&o, 1, &qm[r]);
			rq[r] = qm[r].mbps / a[r];
			printf(", QEMU TCP %.0f MB/s (%.2f)", qm[r].mbps, rq[r]);
			if (o.b)
				rbq[r] = b[r].mbps / qm[r].mbps;
		}
		if (o.m) {
			ma[r] = raw_stream_mem(true, ram, from, into, &mca[r]);
			mca[r] /= bench_gib(ram);
			rma[r] = ma[r] / a[r];
			if (o.b) {
				rbm[r] = b[r].mbps / ma[r];
				kbm[r] = mig_cpu_per_gib(&b[r]) / mca[r];
			}
			printf(", raw TCP RAM to RAM %.0f MB/s (%.2f)", ma[r],
			       rma[r]);
		}
		if (o.c || o.m) {
			u[r] = raw_stream(false, ram);
			printf(", raw UNIX %.0f MB/s", u[r]);
		}
		if (o.m) {
			mu[r] = raw_stream_mem(false, ram, from, into, &mcu[r]);
			mcu[r] /= bench_gib(ram);
			rmu[r] = mu[r] / u[r];
			printf(", raw UNIX RAM to RAM %.0f MB/s (%.2f)", mu[r],
			       rmu[r]);
		}
		if (o.c) {
			run_vfmig(&o, false, "all", 1, &c[r]);
			if (o.m) {
				rcm[r] = c[r].mbps / mu[r];
				kcm[r] = mig_cpu_per_gib(&c[r]) / mcu[r];
			}
			rc[r] = c[r].mbps / u[r];
			printf(", vfmig UNIX %.0f MB/s (%.2f)", c[r].mbps,
			       rc[r]);
		}
		if (o.d) {
			run_vfmig(&o, true, touched, 1, &d[r]);
			rd[r] = bench_mbps(ram, d[r].total_ms / 1e3) / a[r];
			printf(", sparse %.1f ms %.1f MiB", d[r].total_ms,
			       mib(d[r].wire));
		}
		for (unsigned k = 0; o.e && k < o.nchan; k++) {
			unsigned n = o.chans[k];
			en[k][r] = raw_streams(n, ram);
			run_vfmig(&o, true, "all", n, &e[k][r]);
			ern[k][r] = e[k][r].mbps / en[k][r];
			era[k][r] = e[k][r].mbps / a[r];
			erb[k][r] = e[k][r].mbps / b[r].mbps;
			printf(", raw TCP x%u %.0f MB/s, vfmig --channels %u "
			       "%.0f MB/s (%.2f of xN, %.2f of vfmig x1)", n,
			       en[k][r], n, e[k][r].mbps, ern[k][r],
			       erb[k][r]);
			if (o.q) {
				run_qemu(&o, n, &qe[k][r]);
				eqn[k][r] = qe[k][r].mbps / en[k][r];
				evq[k][r] = e[k][r].mbps / qe[k][r].mbps;
				printf(", QEMU multifd %u %.0f MB/s (%.2f of "
				       "xN)", n, qe[k][r].mbps, eqn[k][r]);
			}
		}
		printf("\n");
		fflush(stdout);
	}
	printf("\nmedians over %u rounds (a vfmig line shows its median "
	       "round by total time):\n", o.rounds);
	if (o.a) {
		double lo, hi;
		printf("%-36s %8.1f MB/s\n", "(a) raw TCP stream, 1 MiB writes",
		       median(a, o.rounds));
		range(rt, o.rounds, &lo, &hi);
		printf("%-36s %8.1f MB/s   ratio to (a) %.2f (rounds "
		       "%.2f-%.2f)\n", "first touch of a fresh memfd",
		       median(t, o.rounds), median(rt, o.rounds), lo, hi);
	}
	if (o.b)
		print_mig("(b) vfmig over TCP, random RAM",
			  median_run(b, o.rounds), rb, o.rounds, "(a)");
	if (o.q) {
		double lo, hi, tt[MAX_ROUNDS], dt[MAX_ROUNDS], qc[MAX_ROUNDS];
		for (unsigned r = 0; r < o.rounds; r++) {
			tt[r] = qm[r].total_ms;
			dt[r] = qm[r].downtime_ms;
			qc[r] = qm[r].cpu_per_gib;
		}
		range(rq, o.rounds, &lo, &hi);
		printf("%-36s %8.1f MB/s   ratio to (a) %.2f (rounds "
		       "%.2f-%.2f)\n", "(q) QEMU over TCP, paused, same RAM",
		       median(rq, o.rounds) * median(a, o.rounds),
		       median(rq, o.rounds), lo, hi);
		printf("%-36s total %.1f ms, downtime %.1f ms, CPU of both "
		       "QEMUs %.2f s per GiB (medians)\n", "",
		       median(tt, o.rounds), median(dt, o.rounds),
		       median(qc, o.rounds));
		if (o.b) {
			range(rbq, o.rounds, &lo, &hi);
			printf("%-36s (b) vfmig over QEMU: %.2f (rounds "
			       "%.2f-%.2f)\n", "", median(rbq, o.rounds), lo,
			       hi);
		}
	}
	if (o.c || o.m)
		printf("%-36s %8.1f MB/s\n", "raw UNIX stream, 1 MiB writes",
		       median(u, o.rounds));
	if (o.c)
		print_mig("(c) vfmig over UNIX, random RAM",
			  median_run(c, o.rounds), rc, o.rounds, "raw UNIX");
	if (o.m) {
		double lo, hi;
		range(rma, o.rounds, &lo, &hi);
		printf("%-36s %8.1f MB/s   ratio to (a) %.2f (rounds "
		       "%.2f-%.2f)\n", "(m) raw TCP, RAM to RAM",
		       median(ma, o.rounds), median(rma, o.rounds), lo, hi);
		printf("%-36s CPU (sender and receiver) %.2f s per GiB, about "
		       "%.1f CPUs busy\n", "", median(mca, o.rounds),
		       median(mca, o.rounds) *
			       bench_gib((uint64_t)(median(ma, o.rounds) * 1e6)));
		range(rmu, o.rounds, &lo, &hi);
		printf("%-36s %8.1f MB/s   ratio to raw UNIX %.2f (rounds "
		       "%.2f-%.2f)\n", "(m) raw UNIX, RAM to RAM",
		       median(mu, o.rounds), median(rmu, o.rounds), lo, hi);
		printf("%-36s CPU (sender and receiver) %.2f s per GiB, about "
		       "%.1f CPUs busy\n", "", median(mcu, o.rounds),
		       median(mcu, o.rounds) *
			       bench_gib((uint64_t)(median(mu, o.rounds) * 1e6)));
		if (o.b) {
			range(rbm, o.rounds, &lo, &hi);
			printf("%-36s (b) over raw TCP RAM to RAM: %.2f (rounds "
			       "%.2f-%.2f)\n", "", median(rbm, o.rounds), lo,
			       hi);
			range(kbm, o.rounds, &lo, &hi);
			printf("%-36s (b)'s CPU per GiB over (m)'s: %.2f (rounds "
			       "%.2f-%.2f)\n", "", median(kbm, o.rounds), lo,
			       hi);
		}
		if (o.c) {
			range(rcm, o.rounds, &lo, &hi);
			printf("%-36s (c) over raw UNIX RAM to RAM: %.2f (rounds "
			       "%.2f-%.2f)\n", "", median(rcm, o.rounds), lo,
			       hi);
			range(kcm, o.rounds, &lo, &hi);
			printf("%-36s (c)'s CPU per GiB over (m)'s: %.2f (rounds "
			       "%.2f-%.2f)\n", "", median(kcm, o.rounds), lo,
			       hi);
		}
	}
	if (o.d) {
		const struct mig *m = median_run(d, o.rounds);
		double lo, hi;
		char what[64];
		snprintf(what, sizeof(what), "(d) vfmig TCP, %s of %lluM written",
			 touched, (unsigned long long)o.ram_mib);
		print_mig(what, m, NULL, 0, NULL);
		range(rd, o.rounds, &lo, &hi);
		printf("%-36s guest stamps before the switchover: %llu pages "
		       "(%.1f MiB)\n", "", (unsigned long long)m->stamps,
		       mib(m->stamps * 4096));
		printf("%-36s RAM size over total time: %.1f MB/s, ratio to "
		       "(a) %.2f (rounds %.2f-%.2f)\n", "",
		       bench_mbps(ram, m->total_ms / 1e3), median(rd, o.rounds),
		       lo, hi);
	}
	for (unsigned k = 0; o.e && k < o.nchan; k++) {
		char what[64];
		double lo, hi;
		snprintf(what, sizeof(what), "raw TCP, %u connections",
			 o.chans[k]);
		printf("%-36s %8.1f MB/s\n", what, median(en[k], o.rounds));
		snprintf(what, sizeof(what), "(e) vfmig TCP --channels %u",
			 o.chans[k]);
		print_mig(what, median_run(e[k], o.rounds), ern[k], o.rounds,
			  "raw xN");
		range(era[k], o.rounds, &lo, &hi);
		printf("%-36s ratio to (a) %.2f (rounds %.2f-%.2f)", "",
		       median(era[k], o.rounds), lo, hi);
		range(erb[k], o.rounds, &lo, &hi);
		printf(", to (b) one vfmig stream %.2f (rounds %.2f-%.2f)\n",
		       median(erb[k], o.rounds), lo, hi);
		if (o.q) {
			double v[MAX_ROUNDS], qc[MAX_ROUNDS];
			for (unsigned r = 0; r < o.rounds; r++) {
				v[r] = qe[k][r].mbps;
				qc[r] = qe[k][r].cpu_per_gib;
			}
			snprintf(what, sizeof(what), "(q) QEMU multifd, %u "
				 "channels", o.chans[k]);
			range(eqn[k], o.rounds, &lo, &hi);
			printf("%-36s %8.1f MB/s   ratio to raw xN %.2f (rounds "
			       "%.2f-%.2f)\n", what, median(v, o.rounds),
			       median(eqn[k], o.rounds), lo, hi);
			printf("%-36s CPU of both QEMUs %.2f s per GiB\n", "",
			       median(qc, o.rounds));
			range(evq[k], o.rounds, &lo, &hi);
			printf("%-36s vfmig --channels %u over QEMU multifd %u: "
			       "%.2f (rounds %.2f-%.2f)\n", "", o.chans[k],
			       o.chans[k], median(evq[k], o.rounds), lo, hi);
		}
	}
	clear_dir(false);
	if (qemu_ram[0])
		unlink(qemu_ram);
	return 0;
}
