/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the VMM library's reply handling. The input is the
 * byte stream a (hostile) server sends: a helper thread writes it into one
 * end of a socketpair, shuts that direction down, and drains whatever the
 * client sends, so every client read ends (at worst in EOF) and no client
 * write blocks. The client negotiates and runs one call of each kind.
 * msg_ids start at 1 per connection, so the fuzzer can learn them.
 * The first input byte is not sent: its bit 0 picks the migration driver's
 * calls (discovery, states and recovery, save pump, estimates, DMA logging)
 * straight after negotiation, so their replies are reachable without first
 * getting every other call right.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vmm/internal.h"

#define MAX_INPUT (1u << 20)

struct feeder {
	int fd;
	const uint8_t *data;
	size_t size;
};

static void *feed(void *arg)
{
	struct feeder *f = arg;
	uint8_t sink[4096];
	size_t off = 0;

	while (off < f->size) {
		ssize_t n = send(f->fd, f->data + off, f->size - off,
				 MSG_NOSIGNAL);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	shutdown(f->fd, SHUT_WR);
	while (read(f->fd, sink, sizeof(sink)) > 0)
		; /* drain until the client closes */
	return NULL;
}

static void on_dma_write(void *priv, uint64_t iova, uint64_t len)
{
	(void)priv, (void)iova, (void)len;
}

static int sink(void *priv, const void *buf, size_t len)
{
	uint64_t *sum = priv;
	const uint8_t *p = buf;

	for (size_t i = 0; i < len; i++) /* touch every byte handed over */
		*sum += p[i];
	return 0;
}

/* The migration driver on fuzzed replies: discovery, states with the
 * recovery path, the save pump, estimates and DMA logging. */
static void exercise_mig(vfmig_vmm_dev *dev)
{
	static const struct vfmig_vmm_dma_range rg = { 0x1000, 0x2000 };
	struct vfmig_vmm_mig_caps mc;
	struct vfmig_vmm_mig_save_result res;
	uint64_t bm[4] = { 0 }, a, b, sum = 0;
	uint32_t st, fin;

	vfmig_vmm_mig_discover(dev, &mc);
	vfmig_vmm_mig_get_state(dev, &st);
	vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_STOP_COPY,
				VFMIG_VMM_MIG_RUNNING, &fin);
	vfmig_vmm_mig_save(dev, 1u << 16, sink, &sum, &res);
	vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_RESUMING,
				VFMIG_VMM_MIG_ERROR, &fin);
	vfmig_vmm_mig_precopy_info(dev, &a, &b);
	vfmig_vmm_mig_stop_copy_size(dev, &a);
	vfmig_vmm_dma_log_start(dev, 4096, &rg, 1, &a);
	vfmig_vmm_dma_log_report(dev, 0x1000, 0x2000 + 100 * 4096, 4096, bm,
				 4);
	vfmig_vmm_dma_log_stop(dev);
}

static void exercise(vfmig_vmm_dev *dev)
{
	static uint8_t guest[0x2000];
	uint8_t buf[256];
	struct vfmig_vmm_dev_info di;
	struct vfmig_vmm_region_info ri;
	struct vfmig_vmm_irq_info ii;
	size_t got;
	int efd = eventfd(0, EFD_CLOEXEC);

	vfmig_vmm_dev_dma_map(dev, 0x1000, sizeof(guest), -1, 0, guest,
			      VFMIG_VMM_DMA_READ | VFMIG_VMM_DMA_WRITE);
	vfmig_vmm_dev_get_info(dev, &di);
	if (vfmig_vmm_dev_get_region_info(dev, 0, &ri) == 0)
		vfmig_vmm_region_info_release(&ri);
	vfmig_vmm_dev_region_read(dev, 0, 0, buf, sizeof(buf));
	vfmig_vmm_dev_region_write(dev, 0, 0, buf, 8);
	vfmig_vmm_dev_get_irq_info(dev, 2, &ii);
	if (efd >= 0) {
		vfmig_vmm_dev_set_irq_eventfds(dev, 2, 0, &efd, 1);
		close(efd);
	}
	vfmig_vmm_dev_feature(dev, VFMIG_VMM_FEATURE_GET | 1, NULL, 0, buf,
			      sizeof(buf), &got);
	vfmig_vmm_dev_mig_data_read(dev, buf, sizeof(buf));
	vfmig_vmm_dev_mig_data_write(dev, buf, 16);
	vfmig_vmm_dev_reset(dev);
	vfmig_vmm_dev_process(dev);
	vfmig_vmm_dev_dma_unmap(dev, 0x1000, sizeof(guest));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct vfmig_vmm_dev_opts opts = {
		.version = VFMIG_VMM_OPTS_VERSION,
		.on_dma_write = on_dma_write,
		.reply_timeout_ms = 2000,
	};
	struct feeder f;
	vfmig_vmm_dev *dev = NULL;
	pthread_t th;
	bool mig;
	int sv[2];

	if (size < 1 || size > MAX_INPUT)
		return 0;
	mig = data[0] & 1;
	f = (struct feeder){ .data = data + 1, .size = size - 1 };
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	f.fd = sv[1];
	if (pthread_create(&th, NULL, feed, &f) != 0) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	/* adopt_fd owns sv[0] from here, even on failure */
	if (vfmig_vmm_dev_adopt_fd(sv[0], &opts, &dev) == 0) {
		if (mig)
			exercise_mig(dev);
		else
			exercise(dev);
		vfmig_vmm_dev_close(dev);
	}
	pthread_join(th, NULL);
	close(sv[1]);
	return 0;
}
