/* SPDX-License-Identifier: MIT */
/*
 * DMA windows (DMA_MAP / DMA_UNMAP) and the device's access to guest memory.
 * A window the client passed an fd for is mmapped and accessed directly;
 * without an fd the library sends DMA_READ / DMA_WRITE messages, split to
 * the client's max_data_xfer_size. Every device write to guest memory goes
 * through dma_write_window(), which marks the DMA dirty log (dirty.c).
 *
 * A client could shrink the file behind a mapped window and so make the
 * device's next access fault with SIGBUS. Where the file can be sealed
 * (memfd, tmpfs) the window is sealed against shrinking when it is mapped;
 * whatever the seals, every copy to or from a mapped window is a guarded
 * copy (guard.c), and a fault drops the window and the client.
 *
 * Threads: vfmig_dev_dma_read/write may be called from a device's own
 * threads. dev->dma_lock guards the window list, the dirty log and the
 * migration state they check; a copy to a mapped window and its dirty
 * mark happen under it in one go. DMA_READ/WRITE messages use the
 * connection, which only the thread running vfmig_dev_process() owns:
 * other threads get -EAGAIN for a window without an fd.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

const struct dev_dma_window *dev_dma_find(const struct dev_dma *dma,
					  uint64_t iova, uint64_t len)
{
	for (size_t i = 0; i < dma->n; i++)
		if (vfw_range_within(iova, len ? len : 1, dma->win[i].iova,
				     dma->win[i].size))
			return &dma->win[i];
	return NULL;
}

static void window_release(struct dev_dma_window *w)
{
	if (w->map)
		munmap(w->map, w->map_len);
	w->map = NULL;
	w->base = NULL;
}

void dev_dma_clear(struct vfmig_dev *dev)
{
	pthread_mutex_lock(&dev->dma_lock);
	for (size_t i = 0; i < dev->dma.n; i++)
		window_release(&dev->dma.win[i]);
	free(dev->dma.win);
	memset(&dev->dma, 0, sizeof(dev->dma));
	pthread_mutex_unlock(&dev->dma_lock);
}

static bool overlaps(const struct dev_dma *dma, uint64_t iova, uint64_t size)
{
	for (size_t i = 0; i < dma->n; i++) {
		const struct dev_dma_window *w = &dma->win[i];
		if (iova < w->iova + w->size && w->iova < iova + size)
			return true;
	}
	return false;
}

/* Keep the client from shrinking the file under our mapping where it
 * lets us: a file that supports sealing and is not sealed against further
 * seals gets F_SEAL_SHRINK (QEMU passes such memfds). Otherwise the
 * guarded copies are what protects the device. */
static void seal_shrink(struct vfmig_dev *dev, int fd)
{
	int s = fcntl(fd, F_GET_SEALS);

	if (s < 0 || (s & F_SEAL_SHRINK))
		return; /* no sealing here, or sealed already */
	if (!(s & F_SEAL_SEAL) && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) == 0)
		return;
	DEV_LOG(dev, VFW_LOG_DEBUG,
		"DMA_MAP: the file cannot be sealed against shrinking; "
		"accesses are guarded");
}

/* mmap size bytes of fd at offset (any alignment); fills map/base. */
static int window_mmap(struct vfmig_dev *dev, struct dev_dma_window *w,
		       int fd, uint64_t offset)
{
	uint64_t aoff = offset & ~(uint64_t)(DEV_PAGE_SIZE - 1);
	uint64_t delta = offset - aoff;
	struct stat st;
	int prot = 0, r;
	void *p;

	r = dev_guard_init();
	if (r < 0)
		return r;
	seal_shrink(dev, fd); /* before the size is checked */
	if (fstat(fd, &st) < 0)
		return -errno;
	/* Only regular files (memfd, shm, hugetlbfs): their size is known,
	 * so a window past the end (SIGBUS on access) is refused. */
	if (!S_ISREG(st.st_mode) || st.st_size < 0 ||
	    !vfw_range_ok(offset, w->size, (uint64_t)st.st_size))
		return -EINVAL;
	if (w->size > SIZE_MAX - delta)
		return -EINVAL;
	if (w->prot & VFW_DMA_READABLE)
		prot |= PROT_READ;
	if (w->prot & VFW_DMA_WRITEABLE)
		prot |= PROT_WRITE;
	p = mmap(NULL, w->size + delta, prot, MAP_SHARED, fd, (off_t)aoff);
	if (p == MAP_FAILED)
		return -errno;
	w->map = p;
	w->map_len = w->size + delta;
	w->base = w->map + delta;
	return 0;
}

static int map_check(const struct vfmig_dev *dev, const struct vfw_dma_map *m,
		     const struct vfw_msg *msg)
{
	const uint64_t pg = DEV_PAGE_SIZE - 1;

	if (m->argsz < sizeof(*m) || m->argsz > msg->len || msg->nfds > 1)
		return -EINVAL;
	if (!m->flags || (m->flags & ~(VFW_DMA_READABLE | VFW_DMA_WRITEABLE)))
		return -EINVAL;
	if (!m->size || (m->address & pg) || (m->size & pg) ||
	    m->address + m->size - 1 < m->address)
		return -EINVAL;
	if (overlaps(&dev->dma, m->address, m->size))
		return -EEXIST;
	if (dev->dma.n >= DEV_MAX_DMA_MAPS)
		return -ENOSPC;
	return 0;
}

static int dma_map_locked(struct vfmig_dev *dev, struct vfw_msg *msg,
			  struct vfw_dma_map *mp, struct dev_dma_window *wp)
{
	struct dev_dma_window w = { 0 };
	struct vfw_dma_map m;
	int r;

	memcpy(&m, msg->payload, sizeof(m));
	*mp = m;
	r = map_check(dev, &m, msg);
	if (r < 0)
		return r;
	if (dev->dma.n == dev->dma.cap) {
		size_t cap = dev->dma.cap ? dev->dma.cap * 2 : 8;
		void *p = realloc(dev->dma.win, cap * sizeof(w));
		if (!p)
			return -ENOMEM;
		dev->dma.win = p;
		dev->dma.cap = cap;
	}
	w.iova = m.address;
	w.size = m.size;
	w.prot = m.flags;
	if (msg->nfds) {
		r = window_mmap(dev, &w, msg->fds[0], m.offset);
		if (r < 0)
			return r;
	}
	r = dev_dlog_window_added(dev, w.iova, w.size);
	if (r < 0) {
		window_release(&w);
		return r;
	}
	dev->dma.win[dev->dma.n++] = w;
	*wp = w;
	return 0;
}

int dev_cmd_dma_map(struct vfmig_dev *dev, struct vfw_msg *msg)
{
	struct dev_dma_window w = { 0 };
	struct vfw_dma_map m;
	int r;

	pthread_mutex_lock(&dev->dma_lock);
	r = dma_map_locked(dev, msg, &m, &w);
	pthread_mutex_unlock(&dev->dma_lock);
	if (r < 0)
		return r;
	DEV_LOG(dev, VFW_LOG_DEBUG, "DMA_MAP 0x%llx+0x%llx prot %u %s",
		(unsigned long long)m.address, (unsigned long long)m.size,
		m.flags, w.map ? "mmapped" : "message-based");
	return dev_reply(dev, &msg->hdr, NULL, 0);
}

/* Forget window i: unmapped, out of the dirty log. */
static void window_remove(struct vfmig_dev *dev, size_t i)
{
	struct dev_dma_window *w = &dev->dma.win[i];
	uint64_t iova = w->iova, size = w->size;

	window_release(w);
	memmove(w, w + 1, (dev->dma.n - i - 1) * sizeof(*w));
	dev->dma.n--;
	dev_dlog_window_removed(dev, iova, size);
}

int dev_cmd_dma_unmap(struct vfmig_dev *dev, struct vfw_msg *msg)
{
	struct vfw_dma_unmap u;

	bool found = false;

	memcpy(&u, msg->payload, sizeof(u));
	if (u.argsz < sizeof(u) || u.flags != 0)
		return -EINVAL;
	pthread_mutex_lock(&dev->dma_lock);
	for (size_t i = 0; !found && i < dev->dma.n; i++) {
		struct dev_dma_window *w = &dev->dma.win[i];
		if (w->iova != u.address || w->size != u.size)
			continue;
		window_remove(dev, i);
		found = true;
	}
	pthread_mutex_unlock(&dev->dma_lock);
	if (!found)
		return -ENOENT;
	u.argsz = sizeof(u);
	return dev_reply(dev, &msg->hdr, &u, sizeof(u));
}

/* A reply that is not what was asked for: the client is broken. */
static int bad_reply(struct vfmig_dev *dev, uint16_t cmd, const char *why,
		     size_t len, size_t want)
{
	DEV_LOG(dev, VFW_LOG_ERR,
		"client answered %s with %s (payload %zu bytes, expected %zu): "
		"protocol error; closing",
		vfw_command_name(cmd), why, len, want);
	dev->broken = true;
	return -EIO;
}

/* One DMA_READ / DMA_WRITE exchange of at most the client's limit. */
static int dma_msg(struct vfmig_dev *dev, uint16_t cmd, uint64_t iova,
		   void *buf, size_t len, int64_t deadline)
{
	struct vfw_dma_access a = { .address = iova, .count = len };
	struct iovec iov[2] = { { &a, sizeof(a) }, { buf, len } };
	size_t want = sizeof(a) + (cmd == VFW_CMD_DMA_READ ? len : 0);
	struct vfw_msg rep;
	struct vfw_dma_access ra;
	int r;

	r = dev_transport_call(dev, cmd, iov, cmd == VFW_CMD_DMA_WRITE ? 2 : 1,
			       deadline, &rep);
	if (r < 0)
		return r;
	r = -EIO;
	if (rep.hdr.flags & VFW_FLAGS_ERROR)
		goto out; /* the client refused: the exchange went right */
	/* A DMA_WRITE reply may be header-only (QEMU) or echo address and
	 * count; a DMA_READ reply carries exactly what was asked. */
	if (rep.len != want && !(cmd == VFW_CMD_DMA_WRITE && rep.len == 0)) {
		r = bad_reply(dev, cmd, rep.len > want ? "more than was asked"
						       : "less than was asked",
			      rep.len, want);
		goto out;
	}
	if (rep.len) {
		memcpy(&ra, rep.payload, sizeof(ra));
		if (ra.address != iova || ra.count != len) {
			r = bad_reply(dev, cmd, "another address or count",
				      rep.len, want);
			goto out;
		}
	}
	if (cmd == VFW_CMD_DMA_READ)
		memcpy(buf, rep.payload + sizeof(ra), len);
	r = 0;
out:
	vfw_msg_release(&rep);
	return r;
}

static int dma_by_msg(struct vfmig_dev *dev, uint16_t cmd, uint64_t iova,
		      uint8_t *buf, size_t len)
{
	uint64_t chunk = dev->peer.max_data_xfer_size;
	/* One deadline for the whole transfer: a client that answers each
	 * piece just in time cannot stretch the call to pieces x 10 s. */
	int64_t deadline = vfw_deadline_after(DEV_CALL_TIMEOUT_MS);

	if (dev->conn_fd < 0 || !dev->negotiated)
		return -ENOTCONN;
	if (chunk > dev->max_xfer)
		chunk = dev->max_xfer;
	while (len) {
		size_t n = len < chunk ? len : (size_t)chunk;
		int r = dma_msg(dev, cmd, iova, buf, n, deadline);
		if (r < 0)
			return r;
		iova += n;
		buf += n;
		len -= n;
	}
	return 0;
}

/* The window holding [iova, iova + len) with permission prot, or -1. */
static ssize_t window_find(const struct vfmig_dev *dev, uint64_t iova,
			   size_t len, uint32_t prot)
{
	const struct dev_dma_window *w = dev_dma_find(&dev->dma, iova, len);

	if (!w || !(w->prot & prot))
		return -1;
	return w - dev->dma.win;
}

/* Copy to or from mapped window i; a fault (the client truncated the file)
 * drops the window and the client. */
static int window_copy(struct vfmig_dev *dev, size_t i, void *dst,
		       const void *src, size_t len)
{
	struct dev_dma_window *w = &dev->dma.win[i];
	int r = dev_guarded_copy(dst, src, len, w->map, w->map_len);

	if (r == 0)
		return 0;
	DEV_LOG(dev, VFW_LOG_ERR,
		"client truncated the memory behind DMA window 0x%llx+0x%llx: "
		"window dropped; closing",
		(unsigned long long)w->iova, (unsigned long long)w->size);
	window_remove(dev, i);
	__atomic_store_n(&dev->broken, true, __ATOMIC_RELAXED);
	return -EFAULT;
}

/* The one path for device writes to a mapped window: copies and marks
 * the dirty log under dma_lock, unless a test switched marking off. */
static int dma_write_window(struct vfmig_dev *dev, size_t i, uint64_t iova,
			    const void *buf, size_t len)
{
	const struct dev_dma_window *w = &dev->dma.win[i];
	int r = window_copy(dev, i, w->base + (iova - w->iova), buf, len);

	if (r == 0 && !dev->test_skip_mark)
		dev_dlog_mark(dev, iova, len);
	return r;
}

/* May this thread exchange DMA messages? Called with dma_lock held. */
static bool on_owner(const struct vfmig_dev *dev)
{
	return !dev->has_owner || pthread_equal(dev->owner, pthread_self());
}

/* With dma_lock held: copy through a mapped window, or *by_msg = true
 * when the window has no fd (done by the caller, outside the lock). */
static int dma_locked(struct vfmig_dev *dev, bool write, uint64_t iova,
		      void *buf, size_t len, bool *by_msg)
{
	ssize_t i;

	if (!dev_mig_running(dev))
		return -EPERM; /* stopped for migration: no DMA */
	if (!len)
		return 0;
	i = window_find(dev, iova, len,
			write ? VFW_DMA_WRITEABLE : VFW_DMA_READABLE);
	if (i < 0)
		return -EFAULT;
	if (!dev->dma.win[i].base) {
		if (!on_owner(dev))
			return -EAGAIN;
		*by_msg = true;
		return 0;
	}
	if (write)
		return dma_write_window(dev, (size_t)i, iova, buf, len);
	return window_copy(dev, (size_t)i, buf,
			   dev->dma.win[i].base + (iova - dev->dma.win[i].iova),
			   len);
}

static int dma_access(struct vfmig_dev *dev, bool write, uint64_t iova,
		      void *buf, size_t len)
{
	bool by_msg = false;
	int r;

	pthread_mutex_lock(&dev->dma_lock);
	r = dma_locked(dev, write, iova, buf, len, &by_msg);
	pthread_mutex_unlock(&dev->dma_lock);
	if (r < 0 || !by_msg)
		return r;
	return dma_by_msg(dev, write ? VFW_CMD_DMA_WRITE : VFW_CMD_DMA_READ,
			  iova, buf, len);
}

VFMIG_EXPORT int vfmig_dev_dma_read(vfmig_dev *dev, uint64_t iova, void *buf,
				    size_t len)
{
	if (!dev || (!buf && len))
		return -EINVAL;
	return dma_access(dev, false, iova, buf, len);
}

VFMIG_EXPORT int vfmig_dev_dma_write(vfmig_dev *dev, uint64_t iova,
				     const void *buf, size_t len)
{
	if (!dev || (!buf && len))
		return -EINVAL;
	return dma_access(dev, true, iova, (void *)buf, len);
}
