/* SPDX-License-Identifier: MIT */
/*
 * Guest-memory DMA windows: the table, DMA_MAP/DMA_UNMAP, and serving the
 * device's DMA_READ/DMA_WRITE messages against the caller's mappings.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define DMA_PROT_ALL (VFMIG_VMM_DMA_READ | VFMIG_VMM_DMA_WRITE)

/* Last byte of a non-empty range, or false if it wraps past 2^64. */
static bool range_last(uint64_t base, uint64_t size, uint64_t *last)
{
	if (size == 0 || base + (size - 1) < base)
		return false;
	*last = base + (size - 1);
	return true;
}

int vmm_window_add(struct vmm_windows *ws, uint64_t iova, uint64_t size,
		   void *vaddr, uint32_t prot)
{
	uint64_t last;

	if (!range_last(iova, size, &last) || (prot & ~DMA_PROT_ALL))
		return -EINVAL;
	for (size_t i = 0; i < ws->n; i++) {
		const struct vmm_window *w = &ws->w[i];
		uint64_t wlast = w->iova + (w->size - 1);
		if (iova <= wlast && w->iova <= last)
			return -EEXIST;
	}
	if (ws->n == ws->cap) {
		size_t cap = ws->cap ? ws->cap * 2 : 8;
		struct vmm_window *nw = realloc(ws->w, cap * sizeof(*nw));
		if (!nw)
			return -ENOMEM;
		ws->w = nw;
		ws->cap = cap;
	}
	ws->w[ws->n++] = (struct vmm_window){ iova, size, vaddr, prot };
	return 0;
}

int vmm_window_index(const struct vmm_windows *ws, uint64_t iova,
		     uint64_t size)
{
	for (size_t i = 0; i < ws->n; i++)
		if (ws->w[i].iova == iova && ws->w[i].size == size)
			return (int)i;
	return -ENOENT;
}

void vmm_window_remove_at(struct vmm_windows *ws, size_t i)
{
	if (i >= ws->n)
		return;
	ws->w[i] = ws->w[ws->n - 1];
	ws->n--;
}

void vmm_windows_clear(struct vmm_windows *ws)
{
	free(ws->w);
	ws->w = NULL;
	ws->n = ws->cap = 0;
}

uint8_t *vmm_window_resolve(const struct vmm_windows *ws, uint64_t addr,
			    uint64_t count, uint32_t prot, int *err)
{
	*err = -EFAULT;
	for (size_t i = 0; i < ws->n; i++) {
		const struct vmm_window *w = &ws->w[i];
		if (addr < w->iova || addr - w->iova >= w->size)
			continue;
		/* Windows do not overlap: this is the only candidate. */
		if (!vfw_range_ok(addr - w->iova, count, w->size))
			return NULL;
		if ((w->prot & prot) != prot || !w->vaddr)
			return NULL;
		*err = 0;
		return w->vaddr + (addr - w->iova);
	}
	return NULL;
}

/* ---- Serving DMA_READ / DMA_WRITE ---- */

static int reply_err(vfmig_vmm_dev *dev, const struct vfw_msg *msg, int err)
{
	struct vfw_header h = {
		.msg_id = msg->hdr.msg_id,
		.command = msg->hdr.command,
		.flags = VFW_FLAGS_TYPE_REPLY | VFW_FLAGS_ERROR,
		.error = (uint32_t)-err,
	};

	vfw_log(&dev->log, VFW_LOG_WARNING, "refusing the device's %s: %s",
		vfw_command_name(msg->hdr.command), vfmig_vmm_strerror(err));
	if (msg->hdr.flags & VFW_FLAGS_NO_REPLY)
		return 0;
	return vmm_send(dev, &h, NULL, 0, NULL, 0);
}

static int serve_dma_read(vfmig_vmm_dev *dev, const struct vfw_msg *msg)
{
	struct vfw_dma_access a;
	uint8_t *host;
	int err;

	if (msg->len != sizeof(a))
		return reply_err(dev, msg, -EINVAL);
	memcpy(&a, msg->payload, sizeof(a));
	if (a.count > VMM_MAX_XFER)
		return reply_err(dev, msg, -EINVAL);
	host = vmm_window_resolve(&dev->win, a.address, a.count,
				  VFMIG_VMM_DMA_READ, &err);
	if (!host)
		return reply_err(dev, msg, err);
	struct iovec iov[2] = { { &a, sizeof(a) }, { host, (size_t)a.count } };
	struct vfw_header h = {
		.msg_id = msg->hdr.msg_id,
		.command = msg->hdr.command,
		.flags = VFW_FLAGS_TYPE_REPLY,
	};
	return vmm_send(dev, &h, iov, 2, NULL, 0);
}

static int serve_dma_write(vfmig_vmm_dev *dev, const struct vfw_msg *msg)
{
	struct vfw_dma_access a;
	uint8_t *host;
	int err;

	if (msg->len < sizeof(a))
		return reply_err(dev, msg, -EINVAL);
	memcpy(&a, msg->payload, sizeof(a));
	if (a.count != msg->len - sizeof(a) || a.count > VMM_MAX_XFER)
		return reply_err(dev, msg, -EINVAL);
	host = vmm_window_resolve(&dev->win, a.address, a.count,
				  VFMIG_VMM_DMA_WRITE, &err);
	if (!host)
		return reply_err(dev, msg, err);
	memcpy(host, msg->payload + sizeof(a), (size_t)a.count);
	if (dev->on_dma_write && a.count)
		dev->on_dma_write(dev->priv, a.address, a.count);
	if (msg->hdr.flags & VFW_FLAGS_NO_REPLY)
		return 0;
	struct vfw_header h = {
		.msg_id = msg->hdr.msg_id,
		.command = msg->hdr.command,
		.flags = VFW_FLAGS_TYPE_REPLY,
	};
	return vmm_send(dev, &h, &(struct iovec){ &a, sizeof(a) }, 1, NULL, 0);
}

static int serve_unknown(vfmig_vmm_dev *dev, const struct vfw_msg *msg)
{
	return reply_err(dev, msg, -ENOTSUP);
}

typedef int (*serve_fn)(vfmig_vmm_dev *dev, const struct vfw_msg *msg);

static const serve_fn serve_table[VFW_CMD_MAX] = {
	[VFW_CMD_DMA_READ] = serve_dma_read,
	[VFW_CMD_DMA_WRITE] = serve_dma_write,
};

int vmm_serve_command(vfmig_vmm_dev *dev, const struct vfw_msg *msg)
{
	unsigned int cmd = msg->hdr.command;
	serve_fn fn = cmd < VFW_CMD_MAX && serve_table[cmd] ? serve_table[cmd]
							    : serve_unknown;
	int r;

	vfw_log(&dev->log, VFW_LOG_DEBUG, "<- %s id %u",
		vfw_command_name(cmd), msg->hdr.msg_id);
	r = fn(dev, msg);
	if (r < 0) {
		vfw_log(&dev->log, VFW_LOG_ERR, "reply to %s failed: %s",
			vfw_command_name(cmd), strerror(-r));
		vmm_break(dev);
		return r == -EPIPE ? -ECONNRESET : r;
	}
	return 0;
}

/* ---- DMA_MAP / DMA_UNMAP ---- */

int vfmig_vmm_dev_dma_map(vfmig_vmm_dev *dev, uint64_t iova, uint64_t size,
			  int fd, uint64_t fd_offset, void *vaddr,
			  uint32_t prot)
{
	struct vfw_dma_map m = {
		.argsz = sizeof(m),
		.flags = prot,
		.offset = fd >= 0 ? fd_offset : 0,
		.address = iova,
		.size = size,
	};
	struct iovec iov = { &m, sizeof(m) };
	struct vfw_msg reply;
	int r = vmm_lock_live(dev);

	if (r < 0)
		return r;
	r = vmm_window_add(&dev->win, iova, size, vaddr, prot);
	if (r < 0)
		goto out;
	r = vmm_call(dev, VFW_CMD_DMA_MAP, &iov, 1, &fd, fd >= 0 ? 1 : 0,
		     &reply);
	if (r == 0) {
		vfw_msg_release(&reply); /* header-only in practice */
	} else if (dev->fd >= 0) {
		int i = vmm_window_index(&dev->win, iova, size);
		if (i >= 0)
			vmm_window_remove_at(&dev->win, (size_t)i);
	}
out:
	vmm_unlock(dev);
	return r;
}

/* The reply is the request echoed, or (tolerated) header-only. */
static int check_unmap_reply(vfmig_vmm_dev *dev, struct vfw_msg *reply,
			     const struct vfw_dma_unmap *req)
{
	struct vfw_dma_unmap u;

	if (reply->len == 0)
		return 0;
	if (reply->len < sizeof(u))
		return vmm_proto_error(dev, reply, "short DMA_UNMAP reply");
	memcpy(&u, reply->payload, sizeof(u));
	if (u.address != req->address || u.size != req->size)
		return vmm_proto_error(dev, reply, "DMA_UNMAP echo differs");
	vfw_msg_release(reply);
	return 0;
}

int vfmig_vmm_dev_dma_unmap(vfmig_vmm_dev *dev, uint64_t iova, uint64_t size)
{
	struct vfw_dma_unmap u = {
		.argsz = sizeof(u),
		.address = iova,
		.size = size,
	};
	struct iovec iov = { &u, sizeof(u) };
	struct vfw_msg reply;
	int r = vmm_lock_live(dev);

	if (r < 0)
		return r;
	r = vmm_window_index(&dev->win, iova, size);
	if (r < 0)
		goto out;
	r = vmm_call(dev, VFW_CMD_DMA_UNMAP, &iov, 1, NULL, 0, &reply);
	if (r == 0)
		r = check_unmap_reply(dev, &reply, &u);
	if (r == 0) {
		/* Re-find: serving DMA meanwhile does not reorder, but be
		 * exact rather than clever. */
		int i = vmm_window_index(&dev->win, iova, size);
		if (i >= 0)
			vmm_window_remove_at(&dev->win, (size_t)i);
	}
out:
	vmm_unlock(dev);
	return r;
}
