/* SPDX-License-Identifier: MIT */
/*
 * A program built from the installed tree only (headers under
 * include/vfmig, libraries found through pkg-config), as an outside user
 * would build one: a device served on one end of a socketpair, the VMM
 * library on the other, and one config-space read between them.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vfmig/device.h>
#include <vfmig/vmm.h>

static volatile sig_atomic_t stop_flag;

static int no_regions(vfmig_dev *dev, void *priv, unsigned int bar,
		      uint64_t offset, void *buf, size_t len, bool is_write)
{
	(void)dev, (void)priv, (void)bar, (void)offset, (void)buf, (void)len;
	(void)is_write;
	return -5; /* -EIO: this device has no register BAR */
}

static void *serve(void *arg)
{
	vfmig_dev_run(arg, &stop_flag);
	return NULL;
}

int main(void)
{
	const struct vfmig_dev_desc desc = {
		.version = VFMIG_DEV_DESC_VERSION,
		.vendor_id = 0x1af4, .device_id = 0x10f0,
		.class_code = 0xff0000,
		.bars = { [0] = { .size = 4096 } },
	};
	const struct vfmig_dev_ops ops = { .version = 1,
					   .region_access = no_regions };
	const struct vfmig_vmm_dev_opts opts = {
		.version = VFMIG_VMM_OPTS_VERSION };
	struct vfmig_vmm_dev_info info;
	vfmig_dev *dev;
	vfmig_vmm_dev *vmm;
	pthread_t t;
	uint8_t cfg[4];
	int sv[2], r;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 ||
	    vfmig_dev_create(&desc, &ops, NULL, &dev) < 0 ||
	    vfmig_dev_attach_fd(dev, sv[0]) < 0 ||
	    pthread_create(&t, NULL, serve, dev) != 0) {
		fprintf(stderr, "consumer: device setup failed\n");
		return 1;
	}
	r = vfmig_vmm_dev_adopt_fd(sv[1], &opts, &vmm);
	if (r < 0) {
		fprintf(stderr, "consumer: connect: %s\n", vfmig_vmm_strerror(r));
		return 1;
	}
	r = vfmig_vmm_dev_get_info(vmm, &info);
	if (r == 0)
		r = vfmig_vmm_dev_region_read(vmm, VFMIG_VMM_PCI_CONFIG, 0, cfg,
					      sizeof(cfg));
	vfmig_vmm_dev_close(vmm);
	stop_flag = 1;
	pthread_join(t, NULL);
	vfmig_dev_destroy(dev);
	if (r < 0) {
		fprintf(stderr, "consumer: %s\n", vfmig_vmm_strerror(r));
		return 1;
	}
	/* Config space is little-endian. */
	unsigned vendor = cfg[0] | cfg[1] << 8, device = cfg[2] | cfg[3] << 8;
	printf("consumer: %u regions, %u irqs, id %04x:%04x\n",
	       info.num_regions, info.num_irqs, vendor, device);
	return vendor == 0x1af4 && device == 0x10f0 ? 0 : 1;
}
