/* SPDX-License-Identifier: MIT */
/*
 * Writes the seeds of fuzz-server and fuzz-client by recording real
 * vfio-user sessions: the VMM library (libvfmig-vmm) talks to the device
 * fuzz-server feeds (server_dev.h, run by libvfmig-device in a thread)
 * through a relay that passes every byte and fd along and keeps a copy of
 * each direction. What the client sent is a fuzz-server seed, what the
 * device answered a fuzz-client seed; each file starts with the target's
 * mode byte. Sessions:
 *   calls             fuzz-client's exercise(): DMA_MAP, GET_INFO, region
 *                     info, region read/write (its BAR0 write starts a
 *                     DMA read), IRQ info and eventfds, FEATURE, reset;
 *   migration         fuzz-client's exercise_mig() on the v2 interface;
 *   migration-region  the same on the device-state regions;
 *   source, dest      (fuzz-server only) a whole migration: DMA_MAP, DMA
 *                     logging, PRE_COPY with estimates and MIG_DATA_READ,
 *                     a dirty report, STOP_COPY to its end, STOP; then on
 *                     a second connection RESUMING, MIG_DATA_WRITE of the
 *                     saved stream, RUNNING; also on the region interface
 *                     (source-region, dest-region).
 * The return path's seeds, by the destination's own encoder
 * (vfmig_chan_rp_*) on a socket channel: a successful switchover (ACKs,
 * SYNCED, RESUMED, VERIFIED) and a failed load as sent; the first again
 * without CRCs for the target's fill-in mode; one frame with a bad CRC
 * before a good one.
 * Usage: gen-session-seeds DIR (fuzz/seeds).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client_calls.h"
#include "engine/channel.h"
#include "server_dev.h"

#define REC_MAX (4u << 20)
#define MAX_FDS 16

struct rec {
	uint8_t *b;
	size_t n;
};

struct relay {
	int cli, dev; /* our ends: towards the client, towards the device */
	struct rec to_dev, to_cli;
};

static int rec_add(struct rec *r, const void *p, size_t n)
{
	if (r->n + n > REC_MAX)
		return -E2BIG;
	memcpy(r->b + r->n, p, n);
	r->n += n;
	return 0;
}

/* Move what is waiting on from to to, with its fds; 0 at EOF. */
static ssize_t pass(int from, int to, struct rec *r)
{
	static uint8_t buf[65536];
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(MAX_FDS * sizeof(int))];
	} ctl;
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
			    .msg_control = ctl.b,
			    .msg_controllen = sizeof(ctl.b) };
	ssize_t n = recvmsg(from, &m, MSG_CMSG_CLOEXEC);
	struct cmsghdr *c;
	size_t nfd = 0;
	int fds[MAX_FDS];

	if (n <= 0)
		return n < 0 ? -errno : 0;
	for (c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		memcpy(fds, CMSG_DATA(c), nfd * sizeof(int));
	}
	iov.iov_len = (size_t)n;
	m.msg_controllen = 0;
	m.msg_control = NULL;
	if (nfd) {
		memset(&ctl, 0, sizeof(ctl)); /* its padding is sent too */
		m.msg_control = ctl.b;
		m.msg_controllen = CMSG_SPACE(nfd * sizeof(int));
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfd * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfd * sizeof(int));
	}
	if (sendmsg(to, &m, MSG_NOSIGNAL) != n)
		n = -EIO;
	for (size_t i = 0; i < nfd; i++)
		close(fds[i]);
	if (n > 0 && rec_add(r, buf, (size_t)n) < 0)
		return -E2BIG;
	return n;
}

static void *relay_run(void *arg)
{
	struct relay *r = arg;
	struct pollfd p[2] = { { r->cli, POLLIN, 0 }, { r->dev, POLLIN, 0 } };
	bool cli_open = true, dev_open = true;

	while (cli_open || dev_open) {
		if (poll(p, 2, 10000) <= 0)
			break;
		if (cli_open && p[0].revents) {
			if (pass(r->cli, r->dev, &r->to_dev) <= 0) {
				cli_open = false;
				p[0].fd = -1;
				shutdown(r->dev, SHUT_WR);
			}
		}
		if (dev_open && p[1].revents) {
			if (pass(r->dev, r->cli, &r->to_cli) <= 0) {
				dev_open = false;
				p[1].fd = -1;
				shutdown(r->cli, SHUT_WR);
			}
		}
	}
	return NULL;
}

static void *dev_run(void *arg)
{
	static volatile sig_atomic_t never;

	vfmig_dev_run(arg, &never); /* ends when the client leaves */
	return NULL;
}

enum session { S_CALLS, S_MIG, S_SOURCE, S_DEST };

static uint8_t saved[4096];
static size_t saved_len;

static int keep(void *priv, const void *buf, size_t len)
{
	(void)priv;
	if (saved_len + len > sizeof(saved))
		return -E2BIG;
	memcpy(saved + saved_len, buf, len);
	saved_len += len;
	return 0;
}

/* A migration's source side, then (S_DEST) its destination side. */
static void source(vfmig_vmm_dev *dev, void *guest, size_t guest_len)
{
	static const struct vfmig_vmm_dma_range rg = { 0x1000, 0x2000 };
	struct vfmig_vmm_mig_caps mc;
	struct vfmig_vmm_mig_save_result res;
	uint64_t bm[1] = { 0 }, a, b;
	uint32_t fin;

	saved_len = 0;
	vfmig_vmm_dev_dma_map(dev, 0x1000, guest_len, -1, 0, guest,
			      VFMIG_VMM_DMA_READ | VFMIG_VMM_DMA_WRITE);
	vfmig_vmm_mig_discover(dev, &mc);
	vfmig_vmm_dma_log_start(dev, 4096, &rg, 1, &a);
	vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_PRE_COPY,
				VFMIG_VMM_MIG_RUNNING, &fin);
	vfmig_vmm_mig_precopy_info(dev, &a, &b);
	vfmig_vmm_mig_save(dev, 100, keep, NULL, &res);
	vfmig_vmm_dma_log_report(dev, 0x1000, 0x2000, 4096, bm, 1);
	vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_STOP_COPY,
				VFMIG_VMM_MIG_RUNNING, &fin);
	vfmig_vmm_mig_stop_copy_size(dev, &a);
	/* the destination loads the STOP_COPY stream alone: the device's
	 * load check wants exactly one session's 300 bytes */
	saved_len = 0;
	vfmig_vmm_mig_save(dev, 0, keep, NULL, &res);
	vfmig_vmm_dma_log_stop(dev);
	vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_STOP,
				VFMIG_VMM_MIG_ERROR, &fin);
	vfmig_vmm_dev_dma_unmap(dev, 0x1000, guest_len);
}

static void dest(vfmig_vmm_dev *dev)
{
	struct vfmig_vmm_mig_caps mc;
	uint32_t fin, st;

	vfmig_vmm_mig_discover(dev, &mc);
	vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_RESUMING,
				VFMIG_VMM_MIG_ERROR, &fin);
	/* in two pieces, as a stream reader may hand them over */
	vfmig_vmm_dev_mig_data_write(dev, saved, saved_len / 2);
	vfmig_vmm_dev_mig_data_write(dev, saved + saved_len / 2,
				     saved_len - saved_len / 2);
	vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_RUNNING,
				VFMIG_VMM_MIG_ERROR, &fin);
	vfmig_vmm_mig_get_state(dev, &st);
}

/* One session against a fresh device; r->to_dev and r->to_cli hold it. */
static int record(enum session s, bool region, struct relay *r)
{
	static uint8_t guest[0x2000];
	const struct vfmig_vmm_dev_opts opts = {
		.version = VFMIG_VMM_OPTS_VERSION,
		.on_dma_write = on_dma_write,
		.reply_timeout_ms = 5000,
	};
	struct vfmig_dev_desc desc = fz_desc();
	vfmig_vmm_dev *cli;
	vfmig_dev *dev;
	pthread_t rt, dt;
	int a[2], b[2], err;

	r->to_dev.n = r->to_cli.n = 0;
	fz_saved = fz_loaded = 0;
	if ((err = vfmig_dev_create(&desc, &fz_ops, NULL, &dev)) < 0)
		return err;
	if (region && (err = vfmig_dev_set_mig_interface(
			       dev, VFMIG_DEV_MIG_IFACE_REGION)) < 0)
		goto out_dev;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b) < 0) {
		err = -errno;
		goto out_dev;
	}
	r->cli = a[1];
	r->dev = b[0];
	if ((err = vfmig_dev_attach_fd(dev, b[1])) < 0) /* closes b[1] */
		goto out_fds;
	if ((err = -pthread_create(&dt, NULL, dev_run, dev)) < 0)
		goto out_fds;
	if ((err = -pthread_create(&rt, NULL, relay_run, r)) < 0) {
		close(a[0]);
		a[0] = -1;
		shutdown(b[0], SHUT_RDWR);
		pthread_join(dt, NULL);
		goto out_fds;
	}
	err = vfmig_vmm_dev_adopt_fd(a[0], &opts, &cli); /* owns a[0] */
	a[0] = -1;
	if (err == 0) {
		if (s == S_CALLS)
			exercise(cli);
		else if (s == S_MIG)
			exercise_mig(cli);
		else if (s == S_SOURCE)
			source(cli, guest, sizeof(guest));
		else
			dest(cli);
		vfmig_vmm_dev_close(cli);
	}
	pthread_join(rt, NULL);
	pthread_join(dt, NULL);
out_fds:
	if (a[0] >= 0)
		close(a[0]);
	close(a[1]);
	close(b[0]);
out_dev:
	vfmig_dev_destroy(dev);
	return err;
}

static int write_raw(const char *dir, const char *name, const struct rec *r)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(r->b, 1, r->n, f) != r->n || fclose(f)) {
		perror(path);
		return -1;
	}
	return 0;
}

static int write_file(const char *dir, const char *target, const char *name,
		      uint8_t mode, const struct rec *r)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s/%s", dir, target, name);
	f = fopen(path, "wb");
	if (!f || fputc(mode, f) == EOF || fwrite(r->b, 1, r->n, f) != r->n ||
	    fclose(f)) {
		perror(path);
		return -1;
	}
	return 0;
}

/* What a destination channel sends for calls(), read off the socket. */
static int rp_record(void (*calls)(struct vfmig_chan *), struct rec *r)
{
	struct vfmig_chan *c;
	ssize_t n;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	if (vfmig_chan_adopt_fd(sv[0], false, VFMIG_CHAN_UNIX, &c) < 0) {
		close(sv[1]);
		return -EIO;
	}
	calls(c);
	vfmig_chan_close(c);
	r->n = 0;
	while ((n = read(sv[1], r->b + r->n, REC_MAX - r->n)) > 0)
		r->n += (size_t)n;
	close(sv[1]);
	return r->n ? 0 : -EIO;
}

static void rp_switchover(struct vfmig_chan *c)
{
	struct vfmig_rp_msg *m = calloc(1, sizeof(*m));

	vfmig_chan_rp_ack(c, "dev0");
	vfmig_chan_rp_ack(c, "dev1");
	if (m) {
		m->type = VFMIG_RP_SYNCED;
		snprintf(m->text, sizeof(m->text), "3");
		vfmig_chan_rp_send(c, m);
	}
	vfmig_chan_rp_ack(c, "");
	vfmig_chan_rp_resumed(c, 1764000000123456789ull);
	if (m) {
		m->type = VFMIG_RP_VERIFIED;
		snprintf(m->text, sizeof(m->text), "ram ok, 2 devices ok");
		vfmig_chan_rp_send(c, m);
	}
	free(m);
}

static void rp_failure(struct vfmig_chan *c)
{
	vfmig_chan_rp_ack(c, "dev0");
	vfmig_chan_rp_failed(c, "load: device dev1 refused its state: "
			     "Invalid argument");
}

/* Frames without their CRC (fuzz-return_path's odd first byte). */
static void rp_strip(struct rec *r)
{
	size_t i = 0, o = 0;

	while (i + 10 <= r->n) {
		size_t len = (size_t)r->b[i + 2] << 24 |
			     (size_t)r->b[i + 3] << 16 |
			     (size_t)r->b[i + 4] << 8 | r->b[i + 5];
		memmove(r->b + o, r->b + i, 6 + len);
		o += 6 + len;
		i += 6 + len + 4;
	}
	r->n = o;
}

static int rp_seeds(const char *dir, struct rec *r)
{
	struct rec raw = { r->b, 0 };

	/* even mode: the bytes go out as they are, first one included */
	if (rp_record(rp_switchover, r) < 0 ||
	    write_raw(dir, "return_path/switchover", r) ||
	    rp_record(rp_failure, r) < 0 ||
	    write_raw(dir, "return_path/failure", r))
		return -1;
	/* the ACK with its last CRC byte flipped, then the FAILED */
	r->b[6 + 4 + 3] ^= 0x55;
	if (write_raw(dir, "return_path/bad-crc", r) ||
	    rp_record(rp_switchover, r) < 0)
		return -1;
	rp_strip(r);
	raw.n = r->n;
	return write_file(dir, "return_path", "frames", 1, &raw);
}

int main(int argc, char **argv)
{
	/* mode bytes: fuzz-server bit 1 = region interface (no bit 0: the
	 * recording has its own VERSION); fuzz-client bit 0 = exercise_mig */
	static const struct {
		const char *name;
		enum session s;
		bool region, client;
	} runs[] = {
		{ "calls", S_CALLS, false, true },
		{ "migration", S_MIG, false, true },
		{ "migration-region", S_MIG, true, true },
		{ "source", S_SOURCE, false, false },
		{ "dest", S_DEST, false, false },
		{ "source-region", S_SOURCE, true, false },
		{ "dest-region", S_DEST, true, false },
	};
	struct relay r;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	r.to_dev.b = malloc(REC_MAX);
	r.to_cli.b = malloc(REC_MAX);
	if (!r.to_dev.b || !r.to_cli.b)
		return 1;
	for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
		int err = record(runs[i].s, runs[i].region, &r);

		if (err < 0 || !r.to_dev.n || !r.to_cli.n) {
			fprintf(stderr, "%s: session failed: %s\n",
				runs[i].name, strerror(err < 0 ? -err : EIO));
			return 1;
		}
		if (write_file(argv[1], "server", runs[i].name,
			       runs[i].region ? 2 : 0, &r.to_dev) ||
		    (runs[i].client &&
		     write_file(argv[1], "client", runs[i].name,
				runs[i].s == S_MIG ? 1 : 0, &r.to_cli)))
			return 1;
		printf("%-17s server %6zu bytes, client %6zu bytes\n",
		       runs[i].name, r.to_dev.n, r.to_cli.n);
	}
	if (rp_seeds(argv[1], &r.to_dev))
		return 1;
	free(r.to_dev.b);
	free(r.to_cli.b);
	return 0;
}
