/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the device library's message handling.
 *
 * Each input is a byte stream a client might send. It is written into one
 * end of a socketpair (then shut for writing), the other end is attached to
 * a fresh device as its connected client, and the device handles messages
 * one at a time until the stream ends; the replies are drained after each
 * message so the device's send queue stays empty and it keeps taking
 * commands (a full queue would stop it reading). The first input
 * byte selects options: bit 0 prepends a valid VERSION handshake so the
 * fuzzer reaches the other commands at once; bit 1 switches the device to
 * the region-based migration interface, so the control-region parser, the
 * data and bitmap regions and their REGION_INFO are fuzzed too. The device's BAR0 callback
 * starts DMA and interrupts, so DMA_READ/WRITE replies, queued commands and
 * IRQ delivery are exercised too. Everything is created and destroyed per
 * input: no fd or allocation outlives an iteration.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "device/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fz_access(vfmig_dev *dev, void *priv, unsigned int bar,
		     uint64_t off, void *buf, size_t len, bool is_write)
{
	uint8_t tmp[64];
	uint32_t v = 0;

	(void)priv;
	(void)bar;
	if (!is_write) {
		memset(buf, 0x5a, len);
		return 0;
	}
	memcpy(&v, buf, len < 4 ? len : 4);
	switch (off) {
	case 0:
		return vfmig_dev_dma_read(dev, 0x1000 + (v & 0xff00), tmp,
					  1 + v % sizeof(tmp));
	case 8:
		memset(tmp, 0xa5, sizeof(tmp));
		return vfmig_dev_dma_write(dev, 0x1000 + (v & 0xff00), tmp,
					   1 + v % sizeof(tmp));
	case 16:
		return vfmig_dev_irq_trigger(dev, v % VFMIG_DEV_IRQ_NUM, v >> 8);
	default:
		return 0;
	}
}

/* Migration callbacks, so MIG_DEVICE_STATE, MIG_DATA_*, DMA logging and the
 * estimate features are reachable: a 300-byte save stream per session,
 * loads accepted up to 1000 bytes, the arc into STOP_COPY from PRE_COPY
 * refused once in a while (driven by the saved byte count). */
static size_t fz_saved, fz_loaded;

static int fz_transition(vfmig_dev *dev, void *priv, uint32_t from,
			 uint32_t to)
{
	(void)dev;
	(void)priv;
	if (from == VFMIG_DEV_MIG_PRE_COPY && to == VFMIG_DEV_MIG_STOP_COPY &&
	    fz_saved % 7 == 3)
		return -EIO;
	if (to == VFMIG_DEV_MIG_STOP_COPY || to == VFMIG_DEV_MIG_PRE_COPY ||
	    to == VFMIG_DEV_MIG_RESUMING)
		fz_saved = fz_loaded = 0;
	return 0;
}

static ssize_t fz_save(vfmig_dev *dev, void *priv, void *buf, size_t len)
{
	size_t n = 300 - fz_saved < len ? 300 - fz_saved : len;

	(void)dev;
	(void)priv;
	memset(buf, (int)fz_saved, n);
	fz_saved += n;
	return (ssize_t)n;
}

static int fz_estimate(vfmig_dev *dev, void *priv,
		       struct vfmig_dev_mig_estimate *est)
{
	(void)dev;
	(void)priv;
	memset(est, 0, sizeof(*est));
	est->initial_bytes = 300 - fz_saved;
	est->stop_copy_bytes = 300;
	return 0;
}

static ssize_t fz_load(vfmig_dev *dev, void *priv, const void *buf,
		       size_t len)
{
	(void)dev;
	(void)priv;
	(void)buf;
	if (fz_loaded + len > 1000)
		return -EINVAL;
	fz_loaded += len;
	return (ssize_t)len;
}

static int fz_load_finish(vfmig_dev *dev, void *priv)
{
	(void)dev;
	(void)priv;
	return fz_loaded == 300 ? 0 : -EINVAL;
}

static const struct vfmig_dev_ops fz_ops = {
	.version = VFMIG_DEV_OPS_VERSION,
	.region_access = fz_access,
	.mig_flags = VFMIG_DEV_MIG_F_STOP_COPY | VFMIG_DEV_MIG_F_PRE_COPY,
	.mig_transition = fz_transition,
	.mig_save = fz_save,
	.mig_estimate = fz_estimate,
	.mig_load = fz_load,
	.mig_load_finish = fz_load_finish,
};

static struct vfmig_dev_desc fz_desc(void)
{
	struct vfmig_dev_desc d = {
		.version = VFMIG_DEV_DESC_VERSION,
		.vendor_id = 0x1b36, .device_id = 0x1000, .class_code = 0xff0000,
		.intx_count = 1, .msi_vectors = 4, .msix_vectors = 8,
		.msix_bar = 4, .msix_table_offset = 0, .msix_pba_offset = 0x800,
		.err_count = 1, .req_count = 1, .pcie = true,
	};
	d.bars[0] = (struct vfmig_dev_bar){ .size = 4096 };
	d.bars[1] = (struct vfmig_dev_bar){ .size = 16, .flags = VFMIG_DEV_BAR_IO };
	d.bars[2] = (struct vfmig_dev_bar){
		.size = 16384,
		.flags = VFMIG_DEV_BAR_MEM64 | VFMIG_DEV_BAR_MAPPABLE,
		.n_exclude = 1, .exclude = { { 0x1000, 0x100 } } };
	d.bars[4] = (struct vfmig_dev_bar){ .size = 4096 };
	return d;
}

/* Write as much of buf as the socket takes without blocking. */
static void feed(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n <= 0)
			return;
		p += n;
		len -= (size_t)n;
	}
}

static void drain(int fd)
{
	uint8_t buf[65536];

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

static void feed_version(int fd)
{
	static const char json[] = "{\"capabilities\":{\"max_msg_fds\":8,"
				   "\"max_data_xfer_size\":4096,"
				   "\"vfmig_mig_info\":{\"version\":1}}}";
	uint8_t msg[sizeof(struct vfw_header) + 4 + sizeof(json)];
	struct vfw_header h = {
		.command = VFW_CMD_VERSION,
		.msg_size = sizeof(msg),
	};
	struct vfw_version v = { 0, 2 };

	memcpy(msg, &h, sizeof(h));
	memcpy(msg + sizeof(h), &v, sizeof(v));
	memcpy(msg + sizeof(h) + sizeof(v), json, sizeof(json));
	feed(fd, msg, sizeof(msg));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vfmig_dev_desc desc = fz_desc();
	vfmig_dev *dev;
	int sv[2];

	if (size < 1)
		return 0;
	fz_saved = fz_loaded = 0;
	if (vfmig_dev_create(&desc, &fz_ops, NULL, &dev) < 0)
		return 0;
	/* replies stay far below the socket buffer between drains */
	vfmig_dev__set_max_xfer(dev, 16384);
	if ((data[0] & 2) &&
	    vfmig_dev_set_mig_interface(dev, VFMIG_DEV_MIG_IFACE_REGION) < 0) {
		vfmig_dev_destroy(dev);
		return 0;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		vfmig_dev_destroy(dev);
		return 0;
	}
	if (data[0] & 1)
		feed_version(sv[0]);
	feed(sv[0], data + 1, size - 1);
	shutdown(sv[0], SHUT_WR);
	if (vfmig_dev_attach_fd(dev, sv[1]) == 0) { /* else closed by it */
		for (int i = 0; i < 100000; i++) {
			int r = vfmig_dev__process_one(dev);
			drain(sv[0]);
			if (r <= 0)
				break;
		}
	}
	close(sv[0]);
	vfmig_dev_destroy(dev); /* closes sv[1] if still attached */
	return 0;
}
