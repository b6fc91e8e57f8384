/* SPDX-License-Identifier: MIT */
/*
 * Device lifecycle: create (validate the description, build config space,
 * MSI-X, IRQ tables and mappable BAR memory), sockets, the event loop, and
 * destroy. Also the small public helpers.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"

#define DEV_BATCH 1024 /* messages per vfmig_dev_process() call at most */

static bool pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

static int check_bar(const struct vfmig_dev_desc *d, unsigned int i)
{
	const struct vfmig_dev_bar *b = &d->bars[i];
	const uint32_t known = VFMIG_DEV_BAR_IO | VFMIG_DEV_BAR_MEM64 |
			       VFMIG_DEV_BAR_PREFETCH | VFMIG_DEV_BAR_MAPPABLE;

	if (!b->size)
		return 0;
	if (!pow2(b->size) || (b->flags & ~known) ||
	    b->n_exclude > VFMIG_DEV_MAX_EXCLUDES)
		return -EINVAL;
	if (i > 0 && (d->bars[i - 1].flags & VFMIG_DEV_BAR_MEM64) &&
	    d->bars[i - 1].size)
		return -EINVAL; /* slot taken by the upper half of BAR i-1 */
	if (b->flags & VFMIG_DEV_BAR_IO)
		return (b->flags != VFMIG_DEV_BAR_IO || b->size < 4 ||
			b->size > 256) ? -EINVAL : 0;
	if (b->size < 16 ||
	    (!(b->flags & VFMIG_DEV_BAR_MEM64) && b->size > (1ull << 31)))
		return -EINVAL;
	if ((b->flags & VFMIG_DEV_BAR_MEM64) && i + 1 >= VFMIG_DEV_MAX_BARS)
		return -EINVAL;
	if ((b->flags & VFMIG_DEV_BAR_MAPPABLE) &&
	    (b->size < DEV_PAGE_SIZE || b->size > SIZE_MAX))
		return -EINVAL;
	for (uint32_t j = 0; j < b->n_exclude; j++)
		if (!vfw_range_ok(b->exclude[j].offset, b->exclude[j].size,
				  b->size))
			return -EINVAL;
	return 0;
}

static int check_msix(const struct vfmig_dev_desc *d)
{
	uint64_t n = d->msix_vectors, tlen = n * 16, plen = (n + 63) / 64 * 8;
	const struct vfmig_dev_bar *b;

	if (!n)
		return 0;
	if (n > DEV_MSIX_MAX || d->msix_bar >= VFMIG_DEV_MAX_BARS)
		return -EINVAL;
	b = &d->bars[d->msix_bar];
	if (!b->size || (b->flags & VFMIG_DEV_BAR_IO) ||
	    (d->msix_table_offset & 7) || (d->msix_pba_offset & 7) ||
	    !vfw_range_ok(d->msix_table_offset, tlen, b->size) ||
	    !vfw_range_ok(d->msix_pba_offset, plen, b->size))
		return -EINVAL;
	if (d->msix_table_offset < d->msix_pba_offset + plen &&
	    d->msix_pba_offset < d->msix_table_offset + tlen)
		return -EINVAL;
	return 0;
}

static int check_desc(const struct vfmig_dev_desc *d)
{
	if (d->class_code > 0xffffff || d->intx_count > 1 ||
	    d->err_count > 1 || d->req_count > 1 ||
	    (d->msi_vectors && (!pow2(d->msi_vectors) || d->msi_vectors > 32)))
		return -EINVAL;
	for (unsigned int i = 0; i < VFMIG_DEV_MAX_BARS; i++)
		if (check_bar(d, i) < 0)
			return -EINVAL;
	return check_msix(d);
}

static int check_ops(const struct vfmig_dev_ops *o)
{
	const uint64_t known = VFMIG_DEV_MIG_F_STOP_COPY | VFMIG_DEV_MIG_F_P2P |
			       VFMIG_DEV_MIG_F_PRE_COPY |
			       VFMIG_DEV_MIG_F_NO_DIRTY_LOG;

	if (o->version < 1 || o->version > 3)
		return -EINVAL;
	if (!o->region_access)
		return -EINVAL;
	if (o->version == 1 || !o->mig_flags)
		return 0;
	if ((o->mig_flags & ~known) || !(o->mig_flags & VFMIG_DEV_MIG_F_STOP_COPY))
		return -EINVAL;
	if (!o->mig_transition || !o->mig_save || !o->mig_load ||
	    !o->mig_load_finish)
		return -EINVAL;
	return 0;
}

int dev_memfd_create(const char *name, size_t size, int *fd, void **mem)
{
	const int seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
	void *p;

	*fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (*fd < 0)
		return -errno;
	/* The client gets this fd: sealed, it cannot truncate the file and
	 * kill the device with SIGBUS on its next access. */
	if (ftruncate(*fd, (off_t)size) < 0 ||
	    fcntl(*fd, F_ADD_SEALS, seals) < 0)
		return -errno;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	*mem = p;
	return 0;
}

static int bar_mem_init(struct vfmig_dev *dev, unsigned int i)
{
	const struct vfmig_dev_bar *b = &dev->desc.bars[i];
	char name[32];
	void *p = NULL;
	int r;

	if (!b->size || !(b->flags & VFMIG_DEV_BAR_MAPPABLE))
		return 0;
	snprintf(name, sizeof(name), "vfmig-bar%u", i);
	r = dev_memfd_create(name, b->size, &dev->bars[i].memfd, &p);
	dev->bars[i].mem = p;
	return r;
}

/* The caller's description into *out. Version 1 is the only one so far;
 * a later version only appends members, and the library will then copy
 * just the part the caller's version has and zero the rest. */
static int desc_copy(const struct vfmig_dev_desc *desc,
		     struct vfmig_dev_desc *out)
{
	if (desc->version != VFMIG_DEV_DESC_VERSION)
		return -EINVAL; /* 0 (unset) or newer than this library */
	*out = *desc;
	return 0;
}

/* The test-only switch of device.h ("Tests only"): read once per device. */
static bool test_skip_dirty_log(void)
{
	const char *v = getenv("VFMIG_DEV_TEST_SKIP_DIRTY_LOG");

	return v && !strcmp(v, "1");
}

VFMIG_EXPORT int vfmig_dev_create(const struct vfmig_dev_desc *desc,
				  const struct vfmig_dev_ops *ops, void *priv,
				  vfmig_dev **out)
{
	struct vfmig_dev_desc d;
	struct vfmig_dev *dev;
	int r;

	if (!desc || !ops || !out || desc_copy(desc, &d) < 0 ||
	    check_ops(ops) < 0 || check_desc(&d) < 0)
		return -EINVAL;
	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	pthread_mutex_init(&dev->dma_lock, NULL);
	dev->test_skip_mark = test_skip_dirty_log();
	dev->desc = d;
	/* A version 1 table ends at client_changed, a version 2 one at
	 * mig_load_finish: copy only that much. */
	memcpy(&dev->ops, ops, ops->version == 1
			       ? offsetof(struct vfmig_dev_ops, mig_flags)
			       : ops->version == 2
			       ? offsetof(struct vfmig_dev_ops, mig_load_place)
			       : sizeof(*ops));
	dev->mig.iface = &dev_mig_v2;
	dev->mig.state = VFW_MIG_STATE_RUNNING;
	dev->priv = priv;
	dev->listen_fd = dev->conn_fd = -1;
	dev->dc.fd = -1;
	dev->max_xfer = DEV_MAX_XFER;
	vfw_rx_init(&dev->rx);
	vfw_tx_init(&dev->tx, 0);
	dev->tx_deadline = VFW_FOREVER;
	vfw_caps_defaults(&dev->peer);
	for (unsigned int i = 0; i < VFMIG_DEV_MAX_BARS; i++)
		dev->bars[i].memfd = -1;
	dev_pci_init(&dev->pci, &dev->desc);
	r = dev_msix_init(&dev->msix, &dev->desc);
	if (r == 0)
		r = dev_irq_init(dev);
	for (unsigned int i = 0; r == 0 && i < VFMIG_DEV_MAX_BARS; i++)
		r = bar_mem_init(dev, i);
	if (r < 0) {
		vfmig_dev_destroy(dev);
		return r;
	}
	*out = dev;
	return 0;
}

VFMIG_EXPORT void *vfmig_dev_get_priv(const vfmig_dev *dev)
{
	return dev ? dev->priv : NULL;
}

VFMIG_EXPORT void vfmig_dev_set_log(vfmig_dev *dev, vfmig_log_fn fn,
				    void *priv, int max_level)
{
	if (!dev)
		return;
	dev->log.fn = fn;
	dev->log.priv = priv;
	dev->log.level = max_level;
}

void dev_drop_client(struct vfmig_dev *dev)
{
	bool was = dev->negotiated;

	if (dev->conn_fd < 0)
		return;
	/* Whatever the socket takes now (say, the error reply to a refused
	 * VERSION) still goes; nothing is waited for. */
	(void)vfw_tx_flush(dev->conn_fd, &dev->tx);
	close(dev->conn_fd);
	dev->conn_fd = -1;
	dev->negotiated = false;
	dev->broken = false;
	dev_conn_end(dev);
	dev_dlog_stop(dev); /* the log belongs to the client that started it */
	dev_mig_client_gone(dev);
	dev_dma_clear(dev);
	dev_irq_close_all(dev);
	dev_ioefd_renew(dev); /* the client that left keeps the old ones */
	vfw_caps_defaults(&dev->peer);
	DEV_LOG(dev, VFW_LOG_INFO, "client disconnected%s",
		dev->listen_fd >= 0 ? "; listening again" : "");
	if (was && dev->ops.client_changed)
		dev->ops.client_changed(dev, dev->priv, false);
}

VFMIG_EXPORT int vfmig_dev_listen(vfmig_dev *dev, const char *path)
{
	return vfmig_dev_listen_ex(dev, path, NULL); /* access.c */
}

/* vfmig_dev_attach_fd() without the close on failure. */
static int attach_fd(vfmig_dev *dev, int fd)
{
	int acc = 0, fl;
	socklen_t len = sizeof(acc);

	if (!dev)
		return -EINVAL;
	if (dev->listen_fd >= 0 || dev->conn_fd >= 0)
		return -EBUSY;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &acc, &len) < 0)
		return -errno;
	if (acc != SOCK_STREAM)
		return -EINVAL;
	len = sizeof(acc);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) < 0)
		return -errno;
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	if (acc)
		dev->listen_fd = fd;
	else if (!dev_peer_allowed(dev, fd, "the attached socket"))
		return -EACCES;
	else
		dev_conn_start(dev, fd);
	DEV_LOG(dev, VFW_LOG_INFO, "attached fd %d (%s)", fd,
		acc ? "listening" : "connected");
	return 0;
}

VFMIG_EXPORT int vfmig_dev_attach_fd(vfmig_dev *dev, int fd)
{
	int r;

	if (fd < 0)
		return -EBADF;
	r = attach_fd(dev, fd);
	if (r < 0)
		close(fd); /* the fd is the library's in every case */
	return r;
}

VFMIG_EXPORT int vfmig_dev_get_poll_fd(const vfmig_dev *dev)
{
	if (!dev)
		return -EINVAL;
	if (dev->conn_fd >= 0)
		return dev->conn_fd;
	return dev->listen_fd >= 0 ? dev->listen_fd : -ENOTCONN;
}

VFMIG_EXPORT int vfmig_dev_get_poll_events(const vfmig_dev *dev)
{
	if (!dev)
		return -EINVAL;
	return dev_transport_events(dev);
}

VFMIG_EXPORT int vfmig_dev_get_poll_timeout(const vfmig_dev *dev)
{
	int t;

	if (!dev)
		return -EINVAL;
	t = dev_transport_timeout(dev);
	/* A loop that does not poll the data channel still moves it, a
	 * pump per tick. */
	if (dev->dc.fd >= 0 && (t < 0 || t > DEV_DC_TICK_MS))
		t = DEV_DC_TICK_MS;
	return t;
}

VFMIG_EXPORT int vfmig_dev_get_data_fd(const vfmig_dev *dev)
{
	if (!dev)
		return -EINVAL;
	return dev->dc.fd >= 0 ? dev->dc.fd : -ENOENT;
}

VFMIG_EXPORT int vfmig_dev_get_data_events(const vfmig_dev *dev)
{
	if (!dev)
		return -EINVAL;
	return dev_dc_events(dev);
}

int vfmig_dev__process_one(struct vfmig_dev *dev)
{
	bool handled;
	int r = dev_transport_process_one(dev, &handled);

	return r < 0 ? r : handled;
}

void vfmig_dev__set_max_xfer(struct vfmig_dev *dev, uint64_t max_xfer)
{
	dev->max_xfer = max_xfer;
}

VFMIG_EXPORT int vfmig_dev_process(vfmig_dev *dev)
{
	int count = 0;

	if (!dev)
		return -EINVAL;
	if (dev->conn_fd < 0 && dev->listen_fd < 0)
		return -ENOTCONN;
	pthread_mutex_lock(&dev->dma_lock);
	dev->owner = pthread_self();
	dev->has_owner = true;
	pthread_mutex_unlock(&dev->dma_lock);
	while (count < DEV_BATCH) {
		bool handled;
		int r = dev_transport_process_one(dev, &handled);
		if (r < 0)
			return r == -ENOTCONN ? count : r;
		if (!handled)
			break;
		count++;
	}
	/* Doorbells rung through ioeventfds. */
	dev_ioefd_serve(dev);
	/* The data channel, between two batches of control messages. */
	dev_dc_pump(dev);
	/* After the client's input, so that its EOF is seen first. */
	dev_transport_refuse_extra(dev);
	return count;
}

/* Wait up to 100 ms (less when a deadline comes sooner) for what the
 * device asks for on its fd, or for a connection to refuse while a client
 * is attached. 0 or -errno; vfmig_dev_process() is called either way. */
static int wait_io(const vfmig_dev *dev)
{
	struct pollfd p[3 + VFMIG_DEV_MAX_IOEVENTFDS] = {
		{ .fd = vfmig_dev_get_poll_fd(dev),
		  .events = (short)vfmig_dev_get_poll_events(dev) },
		{ .fd = dev->conn_fd >= 0 ? dev->listen_fd : -1,
		  .events = POLLIN },
		{ .fd = dev->dc.fd, .events = (short)dev_dc_events(dev) },
	};
	int t = vfmig_dev_get_poll_timeout(dev);
	nfds_t n = 3;

	/* ioeventfds while the device runs (their kicks wait otherwise). */
	for (uint32_t i = 0; dev_ioefd_live(dev) && i < dev->n_ioefd; i++)
		if (dev->ioefd[i].fd >= 0)
			p[n++] = (struct pollfd){ dev->ioefd[i].fd, POLLIN, 0 };
	if (t < 0 || t > 100)
		t = 100;
	if (poll(p, n, t) < 0 && errno != EINTR)
		return -errno;
	return 0;
}

VFMIG_EXPORT int vfmig_dev_run(vfmig_dev *dev, const volatile sig_atomic_t *stop)
{
	int r = 0;

	if (!dev || !stop)
		return -EINVAL;
	dev->stop = stop; /* a DMA wait gives up when it is set */
	while (!*stop) {
		if (vfmig_dev_get_poll_fd(dev) < 0)
			break; /* attached client left, nothing to accept */
		r = wait_io(dev);
		if (r < 0 || *stop)
			break;
		r = vfmig_dev_process(dev);
		if (r < 0)
			break;
		r = 0;
	}
	dev->stop = NULL;
	return r;
}

VFMIG_EXPORT void vfmig_dev_destroy(vfmig_dev *dev)
{
	if (!dev)
		return;
	dev_drop_client(dev);
	if (dev->listen_fd >= 0)
		close(dev->listen_fd);
	if (dev->sock_path)
		unlink(dev->sock_path);
	free(dev->sock_path);
	free(dev->allow_uids);
	dev_dlog_stop(dev);
	dev_ioefd_fini(dev);
	dev_dma_clear(dev);
	dev_irq_fini(dev);
	dev_msix_fini(&dev->msix);
	dev_mig_fini(dev);
	for (unsigned int i = 0; i < VFMIG_DEV_MAX_BARS; i++) {
		if (dev->bars[i].mem)
			munmap(dev->bars[i].mem, dev->desc.bars[i].size);
		if (dev->bars[i].memfd >= 0)
			close(dev->bars[i].memfd);
	}
	pthread_mutex_destroy(&dev->dma_lock);
	free(dev);
}

VFMIG_EXPORT void *vfmig_dev_bar_ptr(vfmig_dev *dev, unsigned int bar,
				     uint64_t *size)
{
	if (!dev || bar >= VFMIG_DEV_MAX_BARS || !dev->bars[bar].mem)
		return NULL;
	if (size)
		*size = dev->desc.bars[bar].size;
	return dev->bars[bar].mem;
}

VFMIG_EXPORT int vfmig_dev_config_read(const vfmig_dev *dev, uint32_t off,
				       void *buf, size_t len)
{
	if (!dev || (!buf && len))
		return -EINVAL;
	return dev_pci_read(&dev->pci, off, buf, len);
}

static const struct {
	int err;
	const char *text;
} errtab[] = {
	{ 0, "success" },
	{ EINVAL, "invalid argument or malformed message" },
	{ ENOMEM, "out of memory" },
	{ EFAULT, "address outside every DMA window" },
	{ ENOTCONN, "no client connected" },
	{ ENOTSUP, "operation not supported" },
	{ EEXIST, "DMA window overlaps an existing one" },
	{ ENOENT, "no such DMA window" },
	{ ENOSPC, "too many DMA windows" },
	{ EBUSY, "socket already attached" },
	{ EBADF, "bad file descriptor" },
	{ ENOTSOCK, "not a socket" },
	{ EIO, "I/O error: a DMA exchange with the client or a device callback failed" },
	{ EPIPE, "client closed the connection mid-message" },
	{ ECONNRESET, "client closed the connection" },
	{ EMSGSIZE, "message too large" },
	{ EBADMSG, "message carried too many file descriptors" },
	{ ETIMEDOUT, "timed out" },
	{ EADDRINUSE, "socket path in use" },
	{ EACCES, "permission denied" },
	{ ENOENT, "no such file or directory" },
	{ EPERM, "device is stopped for migration" },
	{ E2BIG, "too many ranges or too large" },
	{ EOVERFLOW, "address range overflows" },
	{ ENODATA, "migration data incomplete" },
};

VFMIG_EXPORT const char *vfmig_dev_strerror(int err)
{
	if (err < 0)
		err = -err;
	for (size_t i = 0; i < sizeof(errtab) / sizeof(errtab[0]); i++)
		if (errtab[i].err == err)
			return errtab[i].text;
	const char *d = strerrordesc_np(err);
	return d ? d : "unknown error";
}
