/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the VMM library's reply handling. The input is the
 * byte stream a (hostile) server sends: a helper thread writes it into one
 * end of a socketpair, shuts that direction down, and drains whatever the
 * client sends, so every client read ends (at worst in EOF) and no client
 * write blocks. The client negotiates and runs one call of each kind.
 * msg_ids start at 1 per connection, so the fuzzer can learn them.
 */
#include <errno.h>
#include <pthread.h>
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
	struct feeder f = { .data = data, .size = size };
	vfmig_vmm_dev *dev = NULL;
	pthread_t th;
	int sv[2];

	if (size > MAX_INPUT)
		return 0;
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
		exercise(dev);
		vfmig_vmm_dev_close(dev);
	}
	pthread_join(th, NULL);
	close(sv[1]);
	return 0;
}
