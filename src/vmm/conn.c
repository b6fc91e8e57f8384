/* SPDX-License-Identifier: MIT */
/*
 * Connection lifecycle: allocate, connect (with bounded retry), VERSION
 * negotiation, reconnect, break and close.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define CONNECT_RETRY_NS 10000000L /* 10 ms between attempts */

int vmm_dev_alloc(const struct vfmig_vmm_dev_opts *opts, vfmig_vmm_dev **out)
{
	vfmig_vmm_dev *dev;

	if (!out || (opts && (opts->version < 1 ||
			      opts->version > VFMIG_VMM_OPTS_VERSION)))
		return -EINVAL;
	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	pthread_mutex_init(&dev->lock, NULL);
	dev->fd = -1;
	atomic_init(&dev->poll_fd, -1);
	atomic_init(&dev->tx_waiting, false);
	vfw_rx_init(&dev->rx);
	vfw_tx_init(&dev->tx, VMM_TX_LIMIT);
	dev->next_id = 1;
	dev->connect_timeout_ms = VMM_DEFAULT_CONNECT_MS;
	dev->reply_timeout_ms = vfw_scaled_ms(VMM_DEFAULT_REPLY_MS);
	if (opts) {
		dev->log = (struct vfw_logger){ opts->log_fn, opts->log_priv,
						opts->log_level };
		dev->on_dma_write = opts->on_dma_write;
		dev->priv = opts->priv;
		if (opts->connect_timeout_ms)
			dev->connect_timeout_ms = opts->connect_timeout_ms;
		if (opts->reply_timeout_ms)
			dev->reply_timeout_ms = opts->reply_timeout_ms;
		/* flags came with version 2 */
		if (opts->version >= 2) {
			if (opts->flags & ~VFMIG_VMM_OPT_NO_DATA_CHANNEL) {
				free(dev);
				return -EINVAL;
			}
			dev->dc_off = opts->flags &
				      VFMIG_VMM_OPT_NO_DATA_CHANNEL;
		}
	}
	dev->dc.fd = -1;
	dev->seal_index = -1;
	*out = dev;
	return 0;
}

void vmm_dev_free(vfmig_vmm_dev *dev)
{
	vfw_rx_reset(&dev->rx);
	vfw_tx_clear(&dev->tx);
	if (dev->fd >= 0)
		close(dev->fd);
	vmm_windows_clear(&dev->win);
	vmm_dc_close(dev);
	vmm_ds_forget(dev);
	vmm_shadow_forget(dev);
	pthread_mutex_destroy(&dev->lock);
	free(dev->path);
	free(dev);
}

void vmm_break(vfmig_vmm_dev *dev)
{
	atomic_store(&dev->poll_fd, -1);
	vfw_rx_reset(&dev->rx);
	vfw_tx_clear(&dev->tx);
	vmm_note_tx(dev);
	if (dev->fd >= 0)
		close(dev->fd);
	dev->fd = -1;
	vmm_windows_clear(&dev->win);
	vmm_ds_unmap(dev);
	vmm_dc_close(dev);
}

/* ---- VERSION ---- */

static int check_version(vfmig_vmm_dev *dev, const struct vfw_msg *reply)
{
	struct vfw_caps caps;
	uint16_t major, minor;
	char err[160] = "";

	if (vfw_version_parse(reply->payload, reply->len, &major, &minor,
			      &caps, err, sizeof(err)) < 0) {
		vfw_log(&dev->log, VFW_LOG_ERR, "bad VERSION reply: %s", err);
		return -EPROTO;
	}
	if (major != VFW_VERSION_MAJOR || minor > VFW_VERSION_MINOR) {
		vfw_log(&dev->log, VFW_LOG_ERR,
			"device answered version %u.%u to our %u.%u", major,
			minor, VFW_VERSION_MAJOR, VFW_VERSION_MINOR);
		return -EPROTONOSUPPORT;
	}
	if (caps.twin_socket) {
		vfw_log(&dev->log, VFW_LOG_ERR,
			"device enabled twin_socket, which we did not offer");
		return -EPROTO;
	}
	if (caps.data_channel_version >
	    (dev->dc_off ? 0u : VFW_DATA_CHANNEL_VERSION)) {
		vfw_log(&dev->log, VFW_LOG_ERR,
			"device answered vfmig_data_channel version %u, which "
			"we did not propose", caps.data_channel_version);
		return -EPROTO;
	}
	if (caps.mig_info_version > VFW_MIG_INFO_VERSION) {
		vfw_log(&dev->log, VFW_LOG_ERR,
			"device answered vfmig_mig_info version %u to our %u",
			caps.mig_info_version, VFW_MIG_INFO_VERSION);
		return -EPROTO;
	}
	dev->caps = (struct vfmig_vmm_caps){
		.major = major,
		.minor = minor,
		.max_msg_fds = caps.max_msg_fds,
		.max_data_xfer_size = caps.max_data_xfer_size,
		.max_dma_maps = caps.max_dma_maps,
		.pgsizes = caps.pgsizes,
		.mig_info_version = caps.mig_info_version,
		.data_channel_version = caps.data_channel_version,
	};
	vfw_log(&dev->log, VFW_LOG_INFO,
		"negotiated vfio-user %u.%u, max_msg_fds %u, max_xfer %llu, "
		"vfmig_mig_info %u, vfmig_data_channel %u",
		major, minor, caps.max_msg_fds,
		(unsigned long long)caps.max_data_xfer_size,
		caps.mig_info_version, caps.data_channel_version);
	return 0;
}

int vmm_negotiate(vfmig_vmm_dev *dev)
{
	struct vfw_caps ours;
	struct vfw_msg reply;
	size_t len;
	uint8_t *payload;
	int r;

	vfw_caps_defaults(&ours);
	ours.max_msg_fds = VMM_MAX_FDS;
	ours.max_data_xfer_size = VMM_MAX_XFER;
	ours.mig_info_version = VFW_MIG_INFO_VERSION;
	ours.data_channel_version = dev->dc_off ? 0 : VFW_DATA_CHANNEL_VERSION;
	payload = vfw_version_build(VFW_VERSION_MAJOR, VFW_VERSION_MINOR, &ours,
				    false, &len);
	if (!payload)
		return -ENOMEM;
	struct iovec iov = { payload, len };
	r = vmm_call(dev, VFW_CMD_VERSION, &iov, 1, NULL, 0, &reply);
	free(payload);
	if (r == -ECONNRESET)
		vfw_log(&dev->log, VFW_LOG_ERR,
			"device closed the connection before answering "
			"VERSION (a vfmig device does so while it serves "
			"another client)");
	if (r < 0)
		return r;
	r = check_version(dev, &reply);
	vfw_msg_release(&reply);
	if (r < 0)
		vmm_break(dev);
	return r;
}

/* ---- Sockets ---- */


static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int connect_once(const struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0)
		return fd;
	int r = -errno;
	close(fd);
	return r;
}

static int connect_path(vfmig_vmm_dev *dev)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int64_t deadline = now_ms() + dev->connect_timeout_ms;
	int r;

	if (strlen(dev->path) >= sizeof(sa.sun_path))
		return -EINVAL;
	memcpy(sa.sun_path, dev->path, strlen(dev->path) + 1);
	for (;;) {
		r = connect_once(&sa);
		if (r >= 0)
			return r;
		if ((r != -ECONNREFUSED && r != -ENOENT) || now_ms() >= deadline)
			break;
		nanosleep(&(struct timespec){ 0, CONNECT_RETRY_NS }, NULL);
	}
	vfw_log(&dev->log, VFW_LOG_ERR, "connect %s: %s", dev->path, strerror(-r));
	return r;
}

/* Put a connected fd in place (non-blocking: every wait is a poll with
 * the call's deadline) and negotiate. Lock held. */
static int start(vfmig_vmm_dev *dev, int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	/* Best effort, for throughput: a device sending a big DMA_WRITE
	 * while we send a big request cannot deadlock us anyway (we read
	 * and queue while our send waits for room). */
	vfw_grow_socket_buffers(fd);
	dev->fd = fd;
	atomic_store(&dev->poll_fd, fd);
	dev->next_id = 1;
	return vmm_negotiate(dev);
}

int vfmig_vmm_dev_connect(const char *path,
			  const struct vfmig_vmm_dev_opts *opts,
			  vfmig_vmm_dev **out)
{
	vfmig_vmm_dev *dev;
	int r;

	if (!path)
		return -EINVAL;
	r = vmm_dev_alloc(opts, &dev);
	if (r < 0)
		return r;
	dev->path = strdup(path);
	if (!dev->path) {
		vmm_dev_free(dev);
		return -ENOMEM;
	}
	r = connect_path(dev);
	if (r >= 0)
		r = start(dev, r);
	if (r < 0) {
		vmm_dev_free(dev);
		return r;
	}
	*out = dev;
	return 0;
}

int vfmig_vmm_dev_adopt_fd(int fd, const struct vfmig_vmm_dev_opts *opts,
			   vfmig_vmm_dev **out)
{
	vfmig_vmm_dev *dev;
	int r;

	if (fd < 0)
		return -EBADF;
	r = vmm_dev_alloc(opts, &dev);
	if (r < 0) {
		close(fd);
		return r;
	}
	r = start(dev, fd);
	if (r < 0) {
		vmm_dev_free(dev);
		return r;
	}
	*out = dev;
	return 0;
}

int vfmig_vmm_dev_reconnect(vfmig_vmm_dev *dev)
{
	int r;

	if (!dev)
		return -EINVAL;
	pthread_mutex_lock(&dev->lock);
	if (!dev->path) {
		r = -EINVAL;
		goto out;
	}
	vmm_break(dev);
	r = connect_path(dev);
	if (r >= 0)
		r = start(dev, r);
out:
	pthread_mutex_unlock(&dev->lock);
	return r < 0 ? r : 0;
}

void vfmig_vmm_dev_close(vfmig_vmm_dev *dev)
{
	if (dev)
		vmm_dev_free(dev);
}

void vfmig_vmm_dev_set_log(vfmig_vmm_dev *dev, vfmig_log_fn fn, void *priv,
			   int max_level)
{
	if (!dev)
		return;
	pthread_mutex_lock(&dev->lock);
	dev->log = (struct vfw_logger){ fn, priv, max_level };
	pthread_mutex_unlock(&dev->lock);
}

bool vfmig_vmm_dev_connected(vfmig_vmm_dev *dev)
{
	bool up;

	if (!dev)
		return false;
	pthread_mutex_lock(&dev->lock);
	up = dev->fd >= 0;
	pthread_mutex_unlock(&dev->lock);
	return up;
}

int vfmig_vmm_dev_get_caps(vfmig_vmm_dev *dev, struct vfmig_vmm_caps *caps)
{
	int r = vmm_lock_live(dev);

	if (r < 0)
		return r;
	if (caps)
		*caps = dev->caps;
	vmm_unlock(dev);
	return caps ? 0 : -EINVAL;
}
