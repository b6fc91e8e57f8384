/* SPDX-License-Identifier: MIT */
/*
 * Listening UNIX sockets that appear ready. A socket file exists from
 * bind(), but connect() is refused until listen(); a script that waits for
 * the file and connects at once would race. So the socket is bound under a
 * temporary name in the same directory, put into listening state, and only
 * then renamed to its real name: whoever sees the file can connect.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "proto.h"

int vfw_unix_listen(const char *path, int backlog, int type_flags)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char tmp[sizeof(sa.sun_path)];
	const char *slash;
	struct stat st;
	int fd, n, r;

	if (!path || !*path || strlen(path) >= sizeof(sa.sun_path))
		return -EINVAL;
	/* <dir>/.<name>.<pid>.tmp, or the path itself when that is too long. */
	slash = strrchr(path, '/');
	n = snprintf(tmp, sizeof(tmp), "%.*s.%s.%d.tmp",
		     slash ? (int)(slash - path + 1) : 0, path,
		     slash ? slash + 1 : path, (int)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp))
		snprintf(tmp, sizeof(tmp), "%s", path);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return -EADDRINUSE; /* never replace a non-socket */
		unlink(path); /* stale socket from an earlier run */
	}
	unlink(tmp);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | type_flags, 0);
	if (fd < 0)
		return -errno;
	memcpy(sa.sun_path, tmp, strlen(tmp) + 1);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	if (listen(fd, backlog) < 0 ||
	    (strcmp(tmp, path) && rename(tmp, path) < 0)) {
		r = -errno;
		unlink(tmp);
		close(fd);
		return r;
	}
	return fd;
}
