/* SPDX-License-Identifier: MIT */
/*
 * Unit tests: device lifecycle over a socketpair: callbacks fire on
 * attach/detach and IRQ changes, a disconnect drops DMA windows and
 * eventfds but keeps device state, and argument checks of the public API.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "device/internal.h"

struct counts {
	int attached, detached, irq_changed, resets;
};

static int acc(vfmig_dev *dev, void *priv, unsigned int bar, uint64_t off,
	       void *buf, size_t len, bool is_write)
{
	(void)dev; (void)priv; (void)bar; (void)off; (void)buf; (void)len;
	(void)is_write;
	return 0;
}

static void client_changed(vfmig_dev *dev, void *priv, bool attached)
{
	struct counts *c = priv;
	(void)dev;
	if (attached)
		c->attached++;
	else
		c->detached++;
}

static void irq_changed(vfmig_dev *dev, void *priv, unsigned int index)
{
	struct counts *c = priv;
	(void)dev;
	(void)index;
	c->irq_changed++;
}

static const struct vfmig_dev_ops ops = {
	.version = VFMIG_DEV_OPS_VERSION,
	.region_access = acc,
	.irq_changed = irq_changed,
	.client_changed = client_changed,
};

static void send_msg(int fd, uint16_t cmd, const void *p, size_t len,
		     const int *fds, size_t nfds)
{
	struct vfw_header h = { .msg_id = 1, .command = cmd };
	struct iovec iov = { (void *)p, len };
	assert_int_equal(vfw_msg_send(fd, &h, &iov, len ? 1 : 0, fds, nfds), 0);
}

static void reply_ok(int fd)
{
	struct vfw_msg m;
	assert_int_equal(vfw_msg_recv(fd, &m, 1 << 21, 16), 0);
	assert_false(m.hdr.flags & VFW_FLAGS_ERROR);
	vfw_msg_release(&m);
}

static void test_disconnect_keeps_state(void **state)
{
	struct vfmig_dev_desc d = { .version = VFMIG_DEV_DESC_VERSION,
				    .msix_vectors = 2, .msix_bar = 0,
				    .msix_pba_offset = 0x800 };
	struct counts c = { 0 };
	vfmig_dev *dev;
	int sv[2], efd, mfd;
	(void)state;

	d.bars[0] = (struct vfmig_dev_bar){ .size = 4096 };
	assert_int_equal(vfmig_dev_create(&d, &ops, &c, &dev), 0);
	assert_ptr_equal(vfmig_dev_get_priv(dev), &c);
	assert_int_equal(vfmig_dev_get_poll_fd(dev), -ENOTCONN);
	assert_int_equal(vfmig_dev_process(dev), -ENOTCONN);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(vfmig_dev_attach_fd(dev, sv[1]), 0);
	int extra = dup(sv[1]);
	assert_int_equal(vfmig_dev_attach_fd(dev, extra), -EBUSY);
	assert_int_equal(fcntl(extra, F_GETFD), -1); /* closed on failure */
	assert_int_equal(errno, EBADF);
	assert_int_equal(vfmig_dev_get_poll_fd(dev), sv[1]);

	struct vfw_version v = { 0, 0 };
	send_msg(sv[0], VFW_CMD_VERSION, &v, sizeof(v), NULL, 0);
	efd = eventfd(0, EFD_CLOEXEC);
	struct vfw_irq_set s = { 20, VFW_IRQ_SET_DATA_EVENTFD |
				 VFW_IRQ_SET_ACTION_TRIGGER, 2, 1, 1 };
	send_msg(sv[0], VFW_CMD_DEVICE_SET_IRQS, &s, sizeof(s), &efd, 1);
	mfd = memfd_create("g", MFD_CLOEXEC);
	assert_int_equal(ftruncate(mfd, 8192), 0);
	struct vfw_dma_map m = { 32, 3, 0, 0x10000, 8192 };
	send_msg(sv[0], VFW_CMD_DMA_MAP, &m, sizeof(m), &mfd, 1);
	/* enable MSI-X via config space: state that must survive */
	uint8_t w[16 + 2];
	struct vfw_region_access ra = { dev->pci.msix_cap + 2u,
					VFW_PCI_CONFIG_REGION, 2 };
	memcpy(w, &ra, sizeof(ra));
	w[16] = 0x00;
	w[17] = 0x80;
	send_msg(sv[0], VFW_CMD_REGION_WRITE, w, sizeof(w), NULL, 0);
	assert_int_equal(vfmig_dev_process(dev), 4);
	for (int i = 0; i < 4; i++)
		reply_ok(sv[0]);
	assert_int_equal(c.attached, 1);
	assert_true(c.irq_changed >= 2);
	assert_int_equal(dev->dma.n, 1);
	assert_true(dev->irqs[2].lines[1].efd >= 0);
	uint8_t buf[4] = { 1, 2, 3, 4 };
	assert_int_equal(vfmig_dev_dma_write(dev, 0x10ffe, buf, 4), 0);
	assert_int_equal(vfmig_dev_dma_write(dev, 0x11ffe, buf, 4), -EFAULT);
	assert_int_equal(vfmig_dev_dma_read(dev, 0x10ffe, buf, 4), 0);
	assert_int_equal(vfmig_dev_irq_trigger(dev, 2, 1), 0); /* masked */

	close(sv[0]); /* client goes away */
	assert_int_equal(vfmig_dev_process(dev), 1);
	assert_int_equal(c.detached, 1);
	assert_int_equal(dev->dma.n, 0);
	assert_int_equal(dev->irqs[2].lines[1].efd, -1);
	assert_int_equal(vfmig_dev_get_poll_fd(dev), -ENOTCONN);
	uint16_t ctrl;
	assert_int_equal(vfmig_dev_config_read(dev, dev->pci.msix_cap + 2u,
					       &ctrl, 2), 0);
	assert_int_equal(ctrl & PCI_MSIX_CTRL_ENABLE, PCI_MSIX_CTRL_ENABLE);
	assert_true(dev_msix_pending(&dev->msix, 1));
	assert_int_equal(vfmig_dev_dma_read(dev, 0x10000, buf, 4), -EFAULT);
	volatile sig_atomic_t stop = 0;
	assert_int_equal(vfmig_dev_run(dev, &stop), 0); /* nothing to serve */
	vfmig_dev_destroy(dev);
	close(efd);
	close(mfd);
}

static void test_api_args(void **state)
{
	struct vfmig_dev_desc d = { .version = VFMIG_DEV_DESC_VERSION };
	struct counts c = { 0 };
	vfmig_dev *dev;
	uint8_t b[8];
	(void)state;

	assert_int_equal(vfmig_dev_create(NULL, &ops, NULL, &dev), -EINVAL);
	struct vfmig_dev_ops o = ops;
	o.region_access = NULL;
	assert_int_equal(vfmig_dev_create(&d, &o, NULL, &dev), -EINVAL);
	d.bars[1] = (struct vfmig_dev_bar){ .size = 8192,
					    .flags = VFMIG_DEV_BAR_MAPPABLE };
	assert_int_equal(vfmig_dev_create(&d, &ops, &c, &dev), 0);
	uint64_t size = 0;
	uint8_t *mem = vfmig_dev_bar_ptr(dev, 1, &size);
	assert_non_null(mem);
	assert_int_equal(size, 8192);
	assert_null(vfmig_dev_bar_ptr(dev, 0, NULL));
	assert_null(vfmig_dev_bar_ptr(dev, 6, NULL));
	mem[100] = 0x42;
	assert_int_equal(dev_region_access(dev, 1, 100, b, 1, false), 0);
	assert_int_equal(b[0], 0x42);
	assert_int_equal(vfmig_dev_config_read(dev, 0, b, 8), 0);
	assert_int_equal(vfmig_dev_config_read(dev, 252, b, 8), -EINVAL);
	assert_int_equal(vfmig_dev_attach_fd(dev, -1), -EBADF);
	int nfd = eventfd(0, EFD_CLOEXEC);
	assert_int_equal(vfmig_dev_attach_fd(dev, nfd), -ENOTSOCK);
	assert_int_equal(fcntl(nfd, F_GETFD), -1); /* the library closed it */
	assert_int_equal(errno, EBADF);
	nfd = eventfd(0, EFD_CLOEXEC);
	assert_int_equal(vfmig_dev_attach_fd(NULL, nfd), -EINVAL);
	assert_int_equal(fcntl(nfd, F_GETFD), -1);
	/* A description without its version is refused. */
	struct vfmig_dev_desc unset = d;
	vfmig_dev *other;
	unset.version = 0;
	assert_int_equal(vfmig_dev_create(&unset, &ops, NULL, &other), -EINVAL);
	unset.version = VFMIG_DEV_DESC_VERSION + 1;
	assert_int_equal(vfmig_dev_create(&unset, &ops, NULL, &other), -EINVAL);
	assert_int_equal(vfmig_dev_listen(dev, ""), -EINVAL);
	assert_int_equal(vfmig_dev_dma_read(dev, 0, b, 8), -EFAULT);
	assert_int_equal(vfmig_dev_dma_read(dev, 0, b, 0), 0);
	assert_string_equal(vfmig_dev_strerror(-EFAULT),
			    "address outside every DMA window");
	assert_string_equal(vfmig_dev_strerror(-99999), "unknown error");
	assert_string_equal(vfmig_dev_strerror(-EILSEQ), strerrordesc_np(EILSEQ));
	vfmig_dev_destroy(dev);
	vfmig_dev_destroy(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_disconnect_keeps_state),
		cmocka_unit_test(test_api_args),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
