/* SPDX-License-Identifier: MIT */
/*
 * The calls fuzz-client makes on fuzzed replies: exercise() one of each
 * kind, exercise_mig() the migration driver's. Shared with
 * gen-session-seeds, which makes the same calls against a real device and
 * records its replies as fuzz-client's seeds (msg_ids start at 1 per
 * connection, so they match). Include once per program.
 */
#ifndef VFMIG_FUZZ_CLIENT_CALLS_H
#define VFMIG_FUZZ_CLIENT_CALLS_H

#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <vfmig/vmm.h>
#include <vfmig/vmm_mig.h>

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
	/* two chunks in the region interface's framing */
	vfmig_vmm_dev_mig_data_write(dev, "\1\0\0\0\3abc\2\0\0\0\2de", 15);
	vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_RUNNING,
				VFMIG_VMM_MIG_STOP, &fin);
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

#endif
