/* SPDX-License-Identifier: MIT */
/*
 * Who may reach the device: the permission bits of its socket file (0600
 * unless the caller asks otherwise, in a directory others cannot write)
 * and, optionally, the uids of the clients it serves (SO_PEERCRED).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"

#define DEV_MAX_ALLOW_UIDS 64u

VFMIG_EXPORT int vfmig_dev_listen_ex(vfmig_dev *dev, const char *path,
				     const struct vfmig_dev_listen_opts *opts)
{
	struct sockaddr_un sa;
	unsigned int mode = 0;
	char msg[320];
	int fd;

	if (!dev || !path || strlen(path) >= sizeof(sa.sun_path) || !*path)
		return -EINVAL;
	if (opts) {
		if (opts->version < 1 ||
		    opts->version > VFMIG_DEV_LISTEN_OPTS_VERSION)
			return -EINVAL;
		mode = opts->mode;
		if (mode & ~0777u || (mode && (mode & 0600u) != 0600u))
			return -EINVAL;
	}
	if (dev->listen_fd >= 0 || dev->conn_fd >= 0)
		return -EBUSY;
	dev->sock_path = strdup(path);
	if (!dev->sock_path)
		return -ENOMEM;
	fd = vfw_unix_listen_mode(path, 4, SOCK_NONBLOCK, mode, msg,
				  sizeof(msg));
	if (fd < 0) {
		DEV_LOG(dev, VFW_LOG_ERR, "cannot listen on %s: %s", path,
			msg[0] ? msg : strerror(-fd));
		free(dev->sock_path);
		dev->sock_path = NULL;
		return fd;
	}
	if (msg[0])
		DEV_LOG(dev, VFW_LOG_WARNING, "%s", msg);
	dev->listen_fd = fd;
	DEV_LOG(dev, VFW_LOG_INFO, "listening on %s (mode %04o)", path,
		mode ? mode : VFW_SOCK_MODE_DEFAULT);
	return 0;
}

VFMIG_EXPORT int vfmig_dev_set_allowed_uids(vfmig_dev *dev, const uid_t *uids,
					    size_t n)
{
	uid_t *copy = NULL;

	if (!dev || (n && !uids) || n > DEV_MAX_ALLOW_UIDS)
		return -EINVAL;
	if (n) {
		copy = malloc(n * sizeof(*copy));
		if (!copy)
			return -ENOMEM;
		memcpy(copy, uids, n * sizeof(*copy));
	}
	free(dev->allow_uids);
	dev->allow_uids = copy;
	dev->n_allow_uids = n;
	return 0;
}

bool dev_peer_allowed(struct vfmig_dev *dev, int fd, const char *where)
{
	uid_t uid;
	int r;

	if (!dev->n_allow_uids)
		return true;
	r = vfw_peer_uid(fd, &uid);
	if (r < 0) {
		DEV_LOG(dev, VFW_LOG_WARNING, "refused a client on %s: its "
			"uid is unknown (SO_PEERCRED: %s)",
			where ? where : "the socket", strerror(-r));
		return false;
	}
	if (vfw_uid_allowed(dev->allow_uids, dev->n_allow_uids, uid))
		return true;
	DEV_LOG(dev, VFW_LOG_WARNING, "refused a client with uid %u on %s: "
		"not an allowed uid", (unsigned int)uid,
		where ? where : "the socket");
	return false;
}
