/* SPDX-License-Identifier: MIT */
/*
 * Listening UNIX sockets that appear ready, and only to whom they should.
 *
 * Ready: a socket file exists from bind(), but connect() is refused until
 * listen(); a script that waits for the file and connects at once would
 * race. So the socket is bound under a temporary name in the same
 * directory, put into listening state, and only then renamed to its real
 * name: whoever sees the file can connect.
 *
 * Private: bind() creates the file with the socket inode's mode minus the
 * umask, so the unbound socket is fchmod'ed to the wanted mode first (the
 * file is never wider than asked, even for an instant), and the temporary
 * name is chmod'ed to exactly that mode before the rename (the umask may
 * have taken bits the caller asked for). fchmod on a bound socket would
 * change the inode, not the file. The directory matters as much as the
 * file: whoever may write it may replace the socket with one of their own.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <time.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "proto.h"

static void say(char *msg, size_t msglen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void say(char *msg, size_t msglen, const char *fmt, ...)
{
	va_list ap;

	if (!msg || !msglen)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, msglen, fmt, ap);
	va_end(ap);
}

/* Create dir and any missing parent, each new one exactly 0700. */
static int make_dirs(char *dir, char *msg, size_t msglen)
{
	struct stat st;
	char *slash;

	if (stat(dir, &st) == 0)
		return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
	if (errno != ENOENT)
		return -errno;
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		int r;

		*slash = '\0';
		r = make_dirs(dir, msg, msglen);
		*slash = '/';
		if (r < 0)
			return r;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	if (chmod(dir, 0700) < 0) /* the umask may have taken owner bits */
		return -errno;
	return 0;
}

/*
 * The directory the socket goes into: created 0700 when missing; refused
 * when every user may write it and it is not sticky (anyone could rename
 * their own socket over ours); a warning in msg when its group may write
 * it (not sticky) or it belongs to another user than us or root.
 */
static int check_dir(const char *path, char *msg, size_t msglen)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	const char *slash = strrchr(path, '/');
	struct stat st;
	int r;

	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	r = make_dirs(dir, msg, msglen);
	if (r < 0) {
		say(msg, msglen, "socket directory %s: %s", dir, strerror(-r));
		return r;
	}
	if (stat(dir, &st) < 0) {
		r = -errno;
		say(msg, msglen, "socket directory %s: %s", dir, strerror(-r));
		return r;
	}
	if ((st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX)) {
		say(msg, msglen, "socket directory %s is writable by every "
		    "user and not sticky (mode %04o): anyone could replace "
		    "the socket; use a directory only its owner can write",
		    dir, (unsigned int)(st.st_mode & 07777));
		return -EACCES;
	}
	if ((st.st_mode & S_IWGRP) && !(st.st_mode & S_ISVTX))
		say(msg, msglen, "socket directory %s is writable by its group "
		    "(gid %u, mode %04o): its members could replace the "
		    "socket", dir, (unsigned int)st.st_gid,
		    (unsigned int)(st.st_mode & 07777));
	else if (st.st_uid != geteuid() && st.st_uid != 0)
		say(msg, msglen, "socket directory %s belongs to uid %u, not "
		    "to us (uid %u): its owner could replace the socket", dir,
		    (unsigned int)st.st_uid, (unsigned int)geteuid());
	return 0;
}

int vfw_unix_listen_mode(const char *path, int backlog, int type_flags,
			 unsigned int mode, char *msg, size_t msglen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char tmp[sizeof(sa.sun_path)];
	const char *slash;
	struct stat st;
	int fd, n, r;

	say(msg, msglen, "%s", "");
	if (!path || !*path || strlen(path) >= sizeof(sa.sun_path)) {
		say(msg, msglen, "socket path %s", path && *path ?
		    "too long" : "empty");
		return -EINVAL;
	}
	if (mode & ~0777u) {
		say(msg, msglen, "socket mode %o: only permission bits "
		    "(0..0777)", mode);
		return -EINVAL;
	}
	if (!mode)
		mode = VFW_SOCK_MODE_DEFAULT;
	r = check_dir(path, msg, msglen);
	if (r < 0)
		return r;
	/* <dir>/.<name>.<pid>.tmp, or the path itself when that is too long. */
	slash = strrchr(path, '/');
	n = snprintf(tmp, sizeof(tmp), "%.*s.%s.%d.tmp",
		     slash ? (int)(slash - path + 1) : 0, path,
		     slash ? slash + 1 : path, (int)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp))
		snprintf(tmp, sizeof(tmp), "%s", path);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			say(msg, msglen, "%s exists and is not a socket", path);
			return -EADDRINUSE; /* never replace a non-socket */
		}
		unlink(path); /* stale socket from an earlier run */
	}
	unlink(tmp);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | type_flags, 0);
	if (fd < 0)
		return -errno;
	memcpy(sa.sun_path, tmp, strlen(tmp) + 1);
	if (fchmod(fd, mode) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	if (chmod(tmp, mode) < 0 || listen(fd, backlog) < 0 ||
	    (strcmp(tmp, path) && rename(tmp, path) < 0)) {
		r = -errno;
		unlink(tmp);
		close(fd);
		return r;
	}
	return fd;
}

int vfw_unix_listen(const char *path, int backlog, int type_flags)
{
	return vfw_unix_listen_mode(path, backlog, type_flags, 0, NULL, 0);
}

int vfw_peer_uid(int fd, uid_t *uid)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return -errno;
	if (len != sizeof(cr))
		return -EPROTO;
	*uid = cr.uid;
	return 0;
}

bool vfw_uid_allowed(const uid_t *uids, size_t n, uid_t uid)
{
	if (!n)
		return true;
	for (size_t i = 0; i < n; i++)
		if (uids[i] == uid)
			return true;
	return false;
}

void vfw_grow_socket_buffers(int fd)
{
	int sz = VFW_SOCK_BUF_BYTES;

	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
}

/*
 * Writing into a socket whose peer is gone raises SIGPIPE, and splice() has
 * no MSG_NOSIGNAL (write() on a socket neither): block the signal in this
 * thread around the call and take away one it raised (not one that was
 * pending already), so that the caller sees EPIPE only, as from a send()
 * with MSG_NOSIGNAL.
 */
ssize_t vfw_put_nosigpipe(int pipe_rd, const void *bounce, int out, size_t n)
{
	sigset_t pipe_set, old, pending;
	bool had;
	ssize_t r;
	int e;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	sigpending(&pending);
	had = sigismember(&pending, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	if (bounce)
		r = write(out, bounce, n);
	else
		r = splice(pipe_rd, NULL, out, NULL, n,
			   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	e = errno;
	if (r < 0 && e == EPIPE && !had) {
		const struct timespec zero = { 0, 0 };
		while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
			;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = e;
	return r;
}
