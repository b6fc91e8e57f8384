/* SPDX-License-Identifier: MIT */
/*
 * bench-migration: device-state throughput of the large-memory sample
 * device ("vram") from MIG_DATA_READ through the migration stream to
 * MIG_DATA_WRITE, beside a raw UNIX-socket baseline measured in the same
 * run.
 *
 * Two real `vfmig device vram` processes (source and destination) are
 * started and driven with the VMM library. The source VRAM is filled with
 * pseudo-random data by its FILL command (no all-zero pages, so the ZERO
 * record shortcut does not flatter the figure). Each round:
 *
 *   baseline  write()/read() of the round's device-data byte count over a
 *             socketpair (1 MiB at a time, 4 MiB socket buffers)
 * The device stages run twice per round, with the data channel (the
 * VMM library's default when the device accepts it) and with
 * VFMIG_VMM_OPT_NO_DATA_CHANNEL (MIG_DATA_READ/WRITE messages), both
 * devices reconnected between the two; which comes first alternates.
 *
 *   pipeline  source RUNNING->STOP_COPY, destination RUNNING->RESUMING;
 *             vfmig_vmm_mig_save() into a stream writer over one end of a
 *             socketpair while a thread reads the stream and hands every
 *             DEVICE_DATA record to vfmig_vmm_dev_mig_data_write(); then
 *             destination RESUMING->STOP (validates) ->RUNNING, source back
 *             to RUNNING, and the destination's CHECKSUM must equal the
 *             source's
 *   read only / stream only / write only  each stage alone, to show where
 *             the time goes: a save into memory; that memory as DEVICE_DATA
 *             records through stream writer, socketpair and reader (no
 *             device), with the default record checksum and again as a
 *             format 1.0 stream (CRC-32); a load of that memory
 *   raw copy  that same memory, in the same chunks, write()n to a
 *             socketpair and read() into a 1 MiB buffer, with no stream:
 *             the baseline re-sends one cache-hot 1 MiB buffer, so it
 *             never reads the round's 256 MiB from memory, which every
 *             stage must; the stream alone is also given as a ratio to
 *             this copy, to separate what the stream costs from what
 *             reading the data costs
 *
 * Before each load the destination VRAM is refilled with another seed, so
 * a load that moved nothing cannot pass the checksum check.
 *
 * CPU: the baseline's CPU seconds (writing child and reading thread) and
 * those of each stage (this process, all its threads, and both device
 * processes, /proc/PID/stat) are reported per GiB moved and as a multiple
 * of the baseline's of the same round. Where every CPU is busy, a stage
 * needing K times the baseline's CPU per GiB runs at about 1/K of its
 * rate at best.
 *
 * The vfmig binary is $VFMIG if set, else ../src/cli/vfmig relative to the
 * directory of this executable (the build tree layout).
 *
 * Usage: bench-migration [VRAM MiB, default 256] [v2|region, default v2]
 *                        [all|stream|read|pipeline, default all]
 * "stream" measures only the baseline, the two stream-only stages and the
 * raw copy in the rounds (after the warm-up and one capture), for
 * profiling that stage;
 * "read" only the baseline and the MIG_DATA_READ-only stage; "pipeline"
 * only the baseline and the whole path, on the channel and with messages.
 */
#include <endian.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <vfmig/vmm_mig.h>

#include "bench_common.h"
#include "stream/io.h"
#include "stream/stream.h"
#include "vram_hw.h"

#define ROUNDS 5
#define FILL_STEP 16384u /* pages per FILL command (64 MiB) */
#define SRC_SEED 0x5eedu

/* ---- helpers ---- */

static char tmpdir[64];
static char sock_path[2][96];
static pid_t dev_pid[2];

static void cleanup(void)
{
	for (int i = 0; i < 2; i++) {
		if (dev_pid[i] > 0) {
			kill(dev_pid[i], SIGTERM);
			waitpid(dev_pid[i], NULL, 0);
			dev_pid[i] = 0;
		}
		if (sock_path[i][0])
			unlink(sock_path[i]);
	}
	if (tmpdir[0])
		rmdir(tmpdir);
}

static void die(const char *what, int err)
{
	fprintf(stderr, "bench-migration: FAILED: %s: %s\n", what,
		err ? vfmig_vmm_strerror(err) : "check failed");
	cleanup();
	exit(1);
}

/* ---- device processes ---- */

static void find_vfmig(char *out, size_t len)
{
	const char *env = getenv("VFMIG");
	char exe[PATH_MAX];
	ssize_t n;

	if (env && *env) {
		snprintf(out, len, "%s", env);
	} else {
		n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		if (n < 0)
			die("readlink /proc/self/exe", -errno);
		exe[n] = '\0';
		snprintf(out, len, "%s/../src/cli/vfmig", dirname(exe));
	}
	if (access(out, X_OK) < 0) {
		fprintf(stderr, "bench-migration: no vfmig binary at %s: %s "
				"(build src/cli/vfmig or set VFMIG)\n", out,
			strerror(errno));
		exit(1);
	}
}

/* The device-state interface the devices run with: "v2" or "region". */
static const char *iface = "v2";

/* Connect to device i, with or without the data channel. */
static vfmig_vmm_dev *connect_vram(int i, bool channel)
{
	struct vfmig_vmm_mig_caps caps;
	struct vfmig_vmm_dev_opts opts = {
		.version = VFMIG_VMM_OPTS_VERSION,
		.connect_timeout_ms = 10000,
		.reply_timeout_ms = 300000, /* FILL/CHECKSUM of large VRAM */
		.flags = channel ? 0 : VFMIG_VMM_OPT_NO_DATA_CHANNEL,
	};
	struct vfmig_vmm_caps vc;
	vfmig_vmm_dev *dev;
	int r;

	r = vfmig_vmm_dev_connect(sock_path[i], &opts, &dev);
	if (r < 0)
		die(i ? "connect destination" : "connect source", r);
	r = vfmig_vmm_mig_discover(dev, &caps);
	if (r < 0 || !caps.migratable) {
		fprintf(stderr, "bench-migration: device cannot migrate: %s\n",
			caps.blocker);
		die("discover", r < 0 ? r : -EOPNOTSUPP);
	}
	r = vfmig_vmm_dev_get_caps(dev, &vc);
	if (r < 0)
		die("get caps", r);
	/* The region interface has no data channel. */
	if (channel && !vc.data_channel_version && !strcmp(iface, "v2"))
		die("the device did not accept the data channel", 0);
	return dev;
}

/* Use the data channel (or not) from now on: reconnect both devices. The
 * device keeps its state across the reconnect (vfio-user rule). */
static void use_channel(vfmig_vmm_dev **src, vfmig_vmm_dev **dst,
			bool channel)
{
	vfmig_vmm_dev_close(*src);
	vfmig_vmm_dev_close(*dst);
	*src = connect_vram(0, channel);
	*dst = connect_vram(1, channel);
}

static vfmig_vmm_dev *start_vram(int i, const char *vfmig, uint64_t mib)
{
	char size[32];
	pid_t pid;

	snprintf(sock_path[i], sizeof(sock_path[i]), "%s/%s.sock", tmpdir,
		 i ? "dst" : "src");
	snprintf(size, sizeof(size), "%lluM", (unsigned long long)mib);
	pid = fork();
	if (pid < 0)
		die("fork", -errno);
	if (pid == 0) {
		execl(vfmig, "vfmig", "device", "vram", "--socket-path",
		      sock_path[i], "--size", size, "--interface", iface,
		      "--quiet", (char *)NULL);
		fprintf(stderr, "bench-migration: exec %s: %s\n", vfmig,
			strerror(errno));
		_exit(127);
	}
	dev_pid[i] = pid;
	return connect_vram(i, true);
}

/* ---- vram registers and commands ---- */

/* The registers are little-endian, whatever the host. */
static void reg_write(vfmig_vmm_dev *dev, uint32_t reg, uint32_t val)
{
	uint32_t le = htole32(val);
	int r = vfmig_vmm_dev_region_write(dev, VRAM_BAR_REGS, reg, &le, 4);
	if (r < 0)
		die("register write", r);
}

static uint32_t reg_read(vfmig_vmm_dev *dev, uint32_t reg)
{
	uint32_t val;
	int r = vfmig_vmm_dev_region_read(dev, VRAM_BAR_REGS, reg, &val, 4);
	if (r < 0)
		die("register read", r);
	return le32toh(val);
}

static void vram_cmd(vfmig_vmm_dev *dev, uint32_t cmd)
{
	uint32_t st;

	reg_write(dev, VRAM_REG_CMD, cmd);
	st = reg_read(dev, VRAM_REG_STATUS);
	if (st != VRAM_STATUS_DONE) {
		fprintf(stderr, "bench-migration: vram command %u: status %u "
				"errno %u\n", cmd, st,
			reg_read(dev, VRAM_REG_ERROR));
		die("vram command", 0);
	}
}

static void vram_fill(vfmig_vmm_dev *dev, uint64_t npages, uint32_t seed)
{
	reg_write(dev, VRAM_REG_FILL_SEED, seed);
	for (uint64_t p = 0; p < npages; p += FILL_STEP) {
		uint64_t n = npages - p < FILL_STEP ? npages - p : FILL_STEP;
		reg_write(dev, VRAM_REG_FILL_START, (uint32_t)p);
		reg_write(dev, VRAM_REG_FILL_COUNT, (uint32_t)n);
		vram_cmd(dev, VRAM_CMD_FILL);
	}
}

static uint64_t vram_checksum(vfmig_vmm_dev *dev)
{
	vram_cmd(dev, VRAM_CMD_CHECKSUM);
	return (uint64_t)reg_read(dev, VRAM_REG_CSUM_HI) << 32 |
	       reg_read(dev, VRAM_REG_CSUM_LO);
}

static void set_state(vfmig_vmm_dev *dev, uint32_t to, uint32_t recover,
		      const char *what)
{
	uint32_t final;
	int r = vfmig_vmm_mig_set_state(dev, to, recover, &final);

	if (r < 0) {
		fprintf(stderr, "bench-migration: %s -> %s failed (device now "
				"%s)\n", what, vfmig_vmm_mig_state_name(to),
			vfmig_vmm_mig_state_name(final));
		die(what, r);
	}
}

/* ---- raw socketpair baseline ---- */

/* Move total bytes from a child writer to the parent reader, 1 MiB per
 * write(); returns MB/s. */
static int sink_stream(void *priv, const void *buf, size_t len)
{
	return vfmig_stream_write_device_data(priv, 0, buf, len);
}

static int move_record(void *priv, int fd)
{
	return vfmig_vmm_mig_move(priv, fd, 0);
}

/* A sealed frame of the source device: into the stream unread. */
static int moved_stream(void *priv, size_t len, vfmig_vmm_move *mv)
{
	return vfmig_stream_write_device_data_moved(priv, 0, len, move_record, mv);
}

struct loader {
	vfmig_vmm_dev *dst; /* NULL: decode and discard (stream only) */
	bool forward;       /* sealed: DEVICE_DATA goes to dst unread */
	int fd;
	int err;
	char msg[256];
	uint64_t bytes;   /* DEVICE_DATA payload bytes loaded */
	uint64_t records; /* DEVICE_DATA records */
};

static int forward_record(void *priv, uint16_t dev, uint32_t len, int fd)
{
	struct loader *l = priv;
	int r;

	(void)dev;
	if (len > VFMIG_VMM_FORWARD_MAX)
		return 0; /* the loader reads it */
	r = vfmig_vmm_dev_mig_data_forward(l->dst, fd, len, 0);
	if (r < 0)
		snprintf(l->msg, sizeof(l->msg), "forwarding: %s", vfmig_vmm_strerror(r));
	return r < 0 ? r : 1;
}

static void *load_thread(void *arg)
{
	struct loader *l = arg;
	struct vfmig_stream_reader *rd = NULL;
	struct vfmig_stream_record rec;
	struct vfmig_io *io = NULL;
	int r;

	r = vfmig_io_fd(&io, l->fd, false);
	if (r == 0)
		r = vfmig_stream_reader_open(&rd, io, l->msg, sizeof(l->msg));
	if (r == 0 && l->forward)
		vfmig_stream_reader_set_forward(rd, forward_record, l);
	while (r == 0) {
		r = vfmig_stream_next(rd, &rec);
		if (r < 0) {
			snprintf(l->msg, sizeof(l->msg), "%s",
				 vfmig_stream_reader_error(rd));
			break;
		}
		if (r == 0 || rec.type == VFMIG_REC_END) {
			r = 0;
			break;
		}
		r = 0;
		if (rec.type != VFMIG_REC_DEVICE_DATA)
			continue;
		if (l->dst && !rec.d.u.device_data.forwarded)
			r = vfmig_vmm_dev_mig_data_write(
				l->dst, rec.d.u.device_data.data,
				rec.d.u.device_data.len);
		if (r < 0)
			snprintf(l->msg, sizeof(l->msg), "MIG_DATA_WRITE: %s",
				 vfmig_vmm_strerror(r));
		l->bytes += rec.d.u.device_data.len;
		l->records++;
	}
	l->err = r;
	if (r < 0)
		shutdown(l->fd, SHUT_RDWR); /* unblock the writer */
	vfmig_stream_reader_free(rd);
	vfmig_io_close(io);
	return NULL;
}

/* A socketpair with 4 MiB buffers whose sv[1] a new thread fn(arg)
 * reads (*reader_fd is set to it first). Returns the start time. */
static double start_reader(int sv[2], int *reader_fd, void *(*fn)(void *), void *arg,
			   pthread_t *th)
{
	double t0;
	int r;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		die("socketpair", -errno);
	bench_grow_socket(sv[0]);
	bench_grow_socket(sv[1]);
	*reader_fd = sv[1];
	t0 = bench_now_s();
	r = pthread_create(th, NULL, fn, arg);
	if (r != 0)
		die("pthread_create", -r);
	return t0;
}

/* One migration of the device state; returns the transfer time. seal:
 * both devices seal their sessions (data channel version 2), and the data
 * moves between the sockets unread. */
static double pipeline(vfmig_vmm_dev *src, vfmig_vmm_dev *dst, bool seal,
		       uint64_t *dev_bytes, uint64_t *records,
		       uint64_t *stream_bytes)
{
	const struct vfmig_stream_device list[] = {
		{ .id = "vram0", .type = "vram", .interface = iface },
	};
	struct loader l = { .dst = dst };
	struct vfmig_vmm_mig_save_result res;
	struct vfmig_stream_writer *w = NULL;
	struct vfmig_io *io = NULL;
	pthread_t th;
	int sv[2], r;
	double t0, t1;

	if (vfmig_vmm_dev_set_seal(src, seal ? 0 : -1) < 0 ||
	    vfmig_vmm_dev_set_seal(dst, seal ? 0 : -1) < 0)
		die("set_seal", -EINVAL);
	set_state(src, VFMIG_VMM_MIG_STOP_COPY, VFMIG_VMM_MIG_RUNNING,
		  "source RUNNING");
	set_state(dst, VFMIG_VMM_MIG_RESUMING, VFMIG_VMM_MIG_RUNNING,
		  "destination RUNNING");
	l.forward = seal && vfmig_vmm_dev_mig_data_sealed(dst);
	if (seal && !l.forward)
		die("the destination device did not take a sealed session", 0);

	t0 = start_reader(sv, &l.fd, load_thread, &l, &th);
	r = vfmig_io_fd(&io, sv[0], false);
	if (r == 0)
		r = vfmig_stream_writer_open(&w, io);
	if (r == 0)
		r = vfmig_stream_write_device_list(w, list, 1);
	if (r == 0)
		r = vfmig_stream_write_device_begin(w, 0, VFMIG_PHASE_FINAL);
	if (r == 0) {
		r = vfmig_vmm_mig_save_moved(src, 0, sink_stream,
					     seal ? moved_stream : NULL, w, &res);
		if (r == 0 && res.status != VFMIG_VMM_MIG_SAVE_END)
			r = -EPROTO;
	}
	if (r == 0)
		r = vfmig_stream_write_device_end(w, 0);
	if (r == 0)
		r = vfmig_stream_writer_end(w);
	if (r < 0)
		shutdown(sv[0], SHUT_RDWR); /* the loader sees a short stream */
	pthread_join(th, NULL);
	t1 = bench_now_s();

	if (r < 0) {
		fprintf(stderr, "bench-migration: save: %s\n",
			w ? vfmig_stream_writer_error(w) : "");
		die("save side", r);
	}
	if (l.err < 0) {
		fprintf(stderr, "bench-migration: load: %s\n", l.msg);
		die("load side", l.err);
	}
	if (l.bytes != res.bytes)
		die("loaded byte count differs from saved", 0);
	*stream_bytes = vfmig_stream_writer_bytes(w);
	vfmig_stream_writer_free(w);
	vfmig_io_close(io);
	close(sv[0]);
	close(sv[1]);

	set_state(dst, VFMIG_VMM_MIG_STOP, VFMIG_VMM_MIG_ERROR,
		  "destination RESUMING");
	set_state(dst, VFMIG_VMM_MIG_RUNNING, VFMIG_VMM_MIG_STOP,
		  "destination STOP");
	set_state(src, VFMIG_VMM_MIG_RUNNING, VFMIG_VMM_MIG_ERROR,
		  "source STOP_COPY");
	*dev_bytes = res.bytes;
	*records = l.records;
	return t1 - t0;
}

/* ---- the two ends alone ---- */

struct capture {
	uint8_t *buf;
	size_t cap, len;
	size_t *chunk; /* the chunk sizes the pump delivered, in order */
	size_t nchunk, chunk_cap;
};

static int sink_capture(void *priv, const void *buf, size_t len)
{
	struct capture *c = priv;

	if (len > c->cap - c->len)
		return -EOVERFLOW;
	if (c->nchunk == c->chunk_cap) {
		size_t n = c->chunk_cap ? 2 * c->chunk_cap : 1024;
		size_t *p = realloc(c->chunk, n * sizeof(*p));
		if (!p)
			return -ENOMEM;
		c->chunk = p;
		c->chunk_cap = n;
	}
	memcpy(c->buf + c->len, buf, len);
	c->len += len;
	c->chunk[c->nchunk++] = len;
	return 0;
}

/* MIG_DATA_READ of the whole STOP_COPY session into memory. */
static double read_only(vfmig_vmm_dev *src, struct capture *c)
{
	struct vfmig_vmm_mig_save_result res;
	double t0, t1;
	int r;

	c->len = c->nchunk = 0;
	set_state(src, VFMIG_VMM_MIG_STOP_COPY, VFMIG_VMM_MIG_RUNNING,
		  "source RUNNING");
	t0 = bench_now_s();
	r = vfmig_vmm_mig_save(src, 0, sink_capture, c, &res);
	t1 = bench_now_s();
	if (r < 0)
		die("save into memory", r);
	if (res.status != VFMIG_VMM_MIG_SAVE_END)
		die("save into memory did not end", 0);
	set_state(src, VFMIG_VMM_MIG_RUNNING, VFMIG_VMM_MIG_ERROR,
		  "source STOP_COPY");
	return t1 - t0;
}

/* MIG_DATA_WRITE of a captured session, in the chunks it was read in. */
static double write_only(vfmig_vmm_dev *dst, const struct capture *c)
{
	size_t off = 0;
	double t0, t1;
	int r;

	set_state(dst, VFMIG_VMM_MIG_RESUMING, VFMIG_VMM_MIG_RUNNING,
		  "destination RUNNING");
	t0 = bench_now_s();
	for (size_t i = 0; i < c->nchunk; i++) {
		r = vfmig_vmm_dev_mig_data_write(dst, c->buf + off,
						 c->chunk[i]);
		if (r < 0)
			die("load from memory", r);
		off += c->chunk[i];
	}
	t1 = bench_now_s();
	set_state(dst, VFMIG_VMM_MIG_STOP, VFMIG_VMM_MIG_ERROR,
		  "destination RESUMING");
	set_state(dst, VFMIG_VMM_MIG_RUNNING, VFMIG_VMM_MIG_STOP,
		  "destination STOP");
	return t1 - t0;
}

/* The stream alone: a captured session as DEVICE_DATA records (in the
 * pump's chunks) through writer, socketpair and reader, no devices, with
 * record checksums of csum. */
static double stream_only(const struct capture *c, enum vfmig_stream_csum csum)
{
	const struct vfmig_stream_device list[] = {
		{ .id = "vram0", .type = "vram", .interface = iface },
	};
	struct loader l = { .dst = NULL };
	struct vfmig_stream_writer *w = NULL;
	struct vfmig_io *io = NULL;
	pthread_t th;
	size_t off = 0;
	int sv[2], r;
	double t0, t1;

	t0 = start_reader(sv, &l.fd, load_thread, &l, &th);
	r = vfmig_io_fd(&io, sv[0], false);
	if (r == 0)
		r = vfmig_stream_writer_open_csum(&w, io, csum);
	if (r == 0)
		r = vfmig_stream_write_device_list(w, list, 1);
	if (r == 0)
		r = vfmig_stream_write_device_begin(w, 0, VFMIG_PHASE_FINAL);
	for (size_t i = 0; r == 0 && i < c->nchunk; i++) {
		r = vfmig_stream_write_device_data(w, 0, c->buf + off,
						   c->chunk[i]);
		off += c->chunk[i];
	}
	if (r == 0)
		r = vfmig_stream_write_device_end(w, 0);
	if (r == 0)
		r = vfmig_stream_writer_end(w);
	if (r < 0)
		shutdown(sv[0], SHUT_RDWR);
	pthread_join(th, NULL);
	t1 = bench_now_s();
	if (r < 0)
		die("stream write", r);
	if (l.err < 0) {
		fprintf(stderr, "bench-migration: stream read: %s\n", l.msg);
		die("stream read", l.err);
	}
	if (l.bytes != c->len)
		die("stream delivered a different byte count", 0);
	vfmig_stream_writer_free(w);
	vfmig_io_close(io);
	close(sv[0]);
	close(sv[1]);
	return t1 - t0;
}

/* The captured session's bytes, in the pump's chunks, over a socketpair
 * with plain write() and read(): what the stream-only stage does minus
 * the stream. */
static double raw_copy(const struct capture *c)
{
	struct bench_drain rr = { .bytes = 0 };
	pthread_t th;
	size_t off = 0;
	int sv[2];
	double t0, t1;

	t0 = start_reader(sv, &rr.fd, bench_drain_thread, &rr, &th);
	for (size_t i = 0; i < c->nchunk; i++) {
		size_t done = 0;

		while (done < c->chunk[i]) {
			ssize_t n = write(sv[0], c->buf + off + done, c->chunk[i] - done);
			if (n <= 0)
				die("raw copy write", n < 0 ? -errno : -EIO);
			done += (size_t)n;
		}
		off += c->chunk[i];
	}
	shutdown(sv[0], SHUT_WR);
	pthread_join(th, NULL);
	t1 = bench_now_s();
	if (rr.bytes != c->len)
		die("raw copy delivered a different byte count", 0);
	close(sv[0]);
	close(sv[1]);
	return t1 - t0;
}

/* CPU seconds used so far by this process (all threads) and both
 * devices: a stage's CPU is the difference across it. */
static double all_cpu_s(void)
{
	struct rusage ru;
	double s = 0;

	if (getrusage(RUSAGE_SELF, &ru) == 0)
		s += bench_rusage_s(&ru);
	for (int i = 0; i < 2; i++) {
		double d = bench_proc_cpu_s(dev_pid[i]);

		if (d > 0)
			s += d;
	}
	return s;
}

/* One stream-only stage: MB/s into *mbps, CPU seconds into *cpu. */
static void stream_once(const struct capture *c, enum vfmig_stream_csum csum,
			double *mbps, double *cpu)
{
	double c0 = all_cpu_s();

	*mbps = bench_mbps(c->len, stream_only(c, csum));
	*cpu = all_cpu_s() - c0;
}

/* The raw copy of the captured bytes: MB/s into *mbps, CPU into *cpu. */
static void raw_once(const struct capture *c, double *mbps, double *cpu)
{
	double c0 = all_cpu_s();

	*mbps = bench_mbps(c->len, raw_copy(c));
	*cpu = all_cpu_s() - c0;
}

/* The stream-only stage with the default record checksum and with the
 * CRC-32 of format 1.0, and the raw copy of the same bytes; the order
 * alternates with the round. */
static void stream_both(const struct capture *c, int round, double *dflt,
			double *crc32, double *dflt_cpu, double *crc32_cpu,
			double *raw, double *raw_cpu)
{
	if (round % 2 == 0)
		raw_once(c, raw, raw_cpu);
	if (round % 2) {
		stream_once(c, VFMIG_STREAM_CSUM_CRC32, crc32, crc32_cpu);
		stream_once(c, VFMIG_STREAM_CSUM_DEFAULT, dflt, dflt_cpu);
	} else {
		stream_once(c, VFMIG_STREAM_CSUM_DEFAULT, dflt, dflt_cpu);
		stream_once(c, VFMIG_STREAM_CSUM_CRC32, crc32, crc32_cpu);
	}
	if (round % 2)
		raw_once(c, raw, raw_cpu);
}

/* ---- report ---- */

static void check_dst(vfmig_vmm_dev *dst, uint64_t want, const char *what)
{
	uint64_t got = vram_checksum(dst);

	if (got != want) {
		fprintf(stderr, "bench-migration: %s: destination checksum "
				"%016llx, source %016llx\n", what,
			(unsigned long long)got, (unsigned long long)want);
		die("destination VRAM differs from the source", 0);
	}
}

#define N_TESTS 10

/* 0, 1, 3 with the data channel; 5, 6, 7 the same with MIG_DATA_*; 9 is 0
 * with sealed sessions. */
static const char *const test_names[N_TESTS] = {
	"save -> stream -> load, channel",
	"save only, channel (into memory)",
	"stream only (memory -> reader)",   /* the default checksum */
	"load only, channel (from memory)",
	"stream only, format 1.0 (crc32)",
	"READ -> stream -> WRITE, messages",
	"MIG_DATA_READ only (into memory)",
	"MIG_DATA_WRITE only (from memory)",
	"raw copy of those bytes (no stream)",
	"save -> stream -> load, sealed",
};
/* The order of the report: each channel line above its message twin. */
static const int report_order[N_TESTS] = { 9, 0, 5, 1, 6, 3, 7, 8, 2, 4 };

int main(int argc, char **argv)
{
	uint64_t mib = argc > 1 ? strtoull(argv[1], NULL, 0) : 256;

	if (argc > 2)
		iface = argv[2];
	/* Only the baseline and the stream-only stage (for a profile). */
	bool stream_stage_only = argc > 3 && strcmp(argv[3], "stream") == 0;
	/* Only the baseline and the read-only stage (for a profile). */
	bool read_stage_only = argc > 3 && strcmp(argv[3], "read") == 0;
	/* Only the baseline and the two whole-path stages (for a profile). */
	bool pipeline_only = argc > 3 && strcmp(argv[3], "pipeline") == 0;
	/* Only the baseline and the sealed whole path (for its profile). */
	bool sealed_only = argc > 3 && strcmp(argv[3], "sealed") == 0;
	uint64_t npages, src_csum, dev_bytes = 0, records = 0, sbytes = 0;
	char vfmig[PATH_MAX + 32];
	vfmig_vmm_dev *src, *dst;
	struct capture cap = { 0 };

	if (mib < 1 || mib > 65536 || argc > 4 ||
	    (strcmp(iface, "v2") && strcmp(iface, "region")) ||
	    (argc > 3 && !stream_stage_only && !read_stage_only &&
	     !pipeline_only && !sealed_only && strcmp(argv[3], "all"))) {
		fprintf(stderr, "usage: bench-migration [VRAM MiB, 1..65536, "
				"default 256] [v2|region, default v2] "
				"[all|stream|read|pipeline|sealed, default all]\n");
		return 2;
	}
	npages = mib * MiB / VRAM_PAGE_SIZE;
	signal(SIGPIPE, SIG_IGN);
	find_vfmig(vfmig, sizeof(vfmig));
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/bench-migration-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		tmpdir[0] = '\0';
		die("mkdtemp", -errno);
	}
	src = start_vram(0, vfmig, mib);
	dst = start_vram(1, vfmig, mib);

	vram_fill(src, npages, SRC_SEED);
	src_csum = vram_checksum(src);

	/* Warm-up round (not reported): learns the device-data byte count
	 * for the baseline and faults in both processes' buffers. */
	vram_fill(dst, npages, SRC_SEED + 1);
	if (vram_checksum(dst) == src_csum)
		die("destination checksum equals the source before loading", 0);
	pipeline(src, dst, false, &dev_bytes, &records, &sbytes);
	check_dst(dst, src_csum, "warm-up");
	cap.cap = dev_bytes;
	/* Not inherited by the baseline's child: a fork would make every
	 * page copy-on-write, and the read-only stage would then take a
	 * write fault per page of its capture (a profile showed them as
	 * almost half of that stage's time in the bench process). */
	cap.buf = mmap(NULL, cap.cap, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (cap.buf == MAP_FAILED)
		die("mmap", -errno);
	if (madvise(cap.buf, cap.cap, MADV_DONTFORK) < 0)
		die("madvise", -errno);
	memset(cap.buf, 0, cap.cap); /* no page faults inside the timing */

	printf("bench-migration: vram %llu MiB (FILL seed 0x%x), %s interface, "
	       "vfmig %s\n", (unsigned long long)mib, SRC_SEED, iface, vfmig);
	printf("device data per round: %llu bytes (%.1f MiB) in %llu "
	       "DEVICE_DATA records, stream %llu bytes\n",
	       (unsigned long long)dev_bytes, (double)dev_bytes / MiB,
	       (unsigned long long)records, (unsigned long long)sbytes);

	/* Each round measures the baseline right before the tests, so a
	 * ratio compares figures taken under the same machine load; the
	 * report gives the median over the rounds. */
	double mb[N_TESTS][ROUNDS] = { { 0 } }, ratio[N_TESTS][ROUNDS], base[ROUNDS];
	/* CPU seconds of each stage (this process and both devices) and of
	 * the baseline (both ends); 0: not measured. */
	double cpu[N_TESTS][ROUNDS] = { { 0 } }, base_cpu[ROUNDS];
	if (stream_stage_only) {
		read_only(src, &cap);
		if (cap.len != dev_bytes)
			die("device-data byte count changed after the warm-up", 0);
	}
	for (int k = 0; k < ROUNDS; k++) {
		uint64_t b2, r2, s2;
		double b = bench_baseline_cpu(dev_bytes, &base_cpu[k]);

		if (b <= 0)
			die("baseline", 0);
		base[k] = b;
		if (stream_stage_only) {
			stream_both(&cap, k, &mb[2][k], &mb[4][k], &cpu[2][k],
				    &cpu[4][k], &mb[8][k], &cpu[8][k]);
			ratio[2][k] = mb[2][k] / b;
			ratio[4][k] = mb[4][k] / b;
			ratio[8][k] = mb[8][k] / b;
			continue;
		}
		if (read_stage_only) {
			for (int m = 0; m < 2; m++) {
				bool chan = (m + k) % 2 == 0;
				int t = chan ? 1 : 6;
				use_channel(&src, &dst, chan);
				mb[t][k] = bench_mbps(dev_bytes,
						      read_only(src, &cap));
				ratio[t][k] = mb[t][k] / b;
			}
			continue;
		}
		/* The device stages with and without the data channel, in
		 * an order that alternates with the round. */
		for (int m = 0; m < (sealed_only ? 1 : 2); m++) {
			bool chan = sealed_only || (m + k) % 2 == 0;
			int t0 = chan ? 0 : 5, t1 = chan ? 1 : 6,
			    t3 = chan ? 3 : 7;
			use_channel(&src, &dst, chan);
			/* On the channel, sealed and not, in an order that
			 * alternates too. */
			for (int q = 0; q < (chan && !sealed_only ? 2 : 1); q++) {
				bool seal = sealed_only ||
					    (chan && (q + k / 2) % 2 == 0);
				int t = seal ? 9 : t0;
				vram_fill(dst, npages,
					  SRC_SEED + 2 + 2 * (uint32_t)k);
				double c0 = all_cpu_s();
				bench_perf_ctl("enable");
				mb[t][k] = bench_mbps(
					dev_bytes,
					pipeline(src, dst, seal, &b2, &r2, &s2));
				bench_perf_ctl("disable");
				cpu[t][k] = all_cpu_s() - c0;
				if (b2 != dev_bytes)
					die("device-data byte count changed "
					    "between rounds", 0);
				check_dst(dst, src_csum, seal ? "sealed pipeline"
							      : "pipeline");
			}
			double c0;
			if (pipeline_only || sealed_only)
				continue;
			c0 = all_cpu_s();
			mb[t1][k] = bench_mbps(dev_bytes, read_only(src, &cap));
			cpu[t1][k] = all_cpu_s() - c0;
			if (cap.len != dev_bytes)
				die("device-data byte count changed between "
				    "rounds", 0);
			vram_fill(dst, npages, SRC_SEED + 3 + 2 * (uint32_t)k);
			c0 = all_cpu_s();
			mb[t3][k] = bench_mbps(dev_bytes, write_only(dst, &cap));
			cpu[t3][k] = all_cpu_s() - c0;
			check_dst(dst, src_csum, "write only");
		}
		if (!pipeline_only && !sealed_only)
			stream_both(&cap, k, &mb[2][k], &mb[4][k], &cpu[2][k],
				    &cpu[4][k], &mb[8][k], &cpu[8][k]);
		for (int t = 0; t < N_TESTS; t++)
			ratio[t][k] = mb[t][k] / b;
	}
	double gib = bench_gib(dev_bytes);
	printf("%-34s %9.1f MB/s (median of %d rounds), CPU %.2f s per GiB\n",
	       "baseline: raw socketpair", bench_median(base, ROUNDS), ROUNDS,
	       bench_median(base_cpu, ROUNDS) / gib);
	for (int o = 0; o < N_TESTS; o++) {
		int t = report_order[o];
		if (stream_stage_only && t != 2 && t != 4 && t != 8)
			continue;
		if ((read_stage_only || pipeline_only) && t == 8)
			continue;
		if (sealed_only && t != 9)
			continue;
		if (read_stage_only && t != 1 && t != 6)
			continue;
		if (pipeline_only && t != 0 && t != 5 && t != 9)
			continue;
		double m = bench_median(mb[t], ROUNDS);
		double lo = ratio[t][0], hi = ratio[t][0];
		for (int k = 1; k < ROUNDS; k++) {
			lo = ratio[t][k] < lo ? ratio[t][k] : lo;
			hi = ratio[t][k] > hi ? ratio[t][k] : hi;
		}
		printf("%-34s %9.1f MB/s   ratio to baseline %.2f "
		       "(rounds %.2f-%.2f)\n",
		       test_names[t], m, bench_median(ratio[t], ROUNDS), lo, hi);
		if (cpu[t][0] > 0) {
			double k[ROUNDS];
			for (int j = 0; j < ROUNDS; j++)
				k[j] = cpu[t][j] / base_cpu[j];
			printf("%-34s CPU %.2f s per GiB, %.2f of the "
			       "baseline's\n", "", bench_median(cpu[t], ROUNDS) / gib,
			       bench_median(k, ROUNDS));
		}
		if ((t == 2 || t == 4) && mb[8][0] > 0) {
			double q[ROUNDS];
			for (int j = 0; j < ROUNDS; j++)
				q[j] = mb[t][j] / mb[8][j];
			printf("%-34s ratio to the raw copy of those bytes %.2f\n", "",
			       bench_median(q, ROUNDS));
		}
	}
	if (!stream_stage_only && !read_stage_only)
		printf("destination checksum %016llx == source after every "
		       "load\n", (unsigned long long)src_csum);

	vfmig_vmm_dev_close(src);
	vfmig_vmm_dev_close(dst);
	munmap(cap.buf, cap.cap);
	free(cap.chunk);
	cleanup();
	return 0;
}
