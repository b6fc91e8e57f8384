/* SPDX-License-Identifier: MIT */
/*
 * vfmig-strict-proxy: an emulated vfio-user peer for interop tests.
 *
 *   vfmig-strict-proxy --listen PATH --device PATH [--log FILE]
 *                      [--fault stuck-in-stop-copy] [--fault stop-copy-read]
 *                      [--fault bad-reads-after-resume]
 *                      [--no-precopy]
 *
 * It listens on PATH and, for each client (one at a time), connects to the
 * real device socket and forwards whole vfio-user messages both ways,
 * SCM_RIGHTS fds included (DMA_MAP and SET_IRQS fds to the device, the
 * GET_REGION_INFO reply's fd to the client). On the way it gates the
 * client's commands by the device's v2 migration state, the way
 * libvfio-user, the server library behind many vfio-user devices, refuses
 * commands in its stopped states:
 *
 *   STOP       only REGION_READ, REGION_WRITE, DEVICE_FEATURE, MIG_DATA_READ
 *   STOP_COPY  only DEVICE_FEATURE, MIG_DATA_READ
 *   otherwise  everything;  VERSION always
 *
 * A refused command gets a header-only error reply (EINVAL) from the proxy
 * and never reaches the device. Server-to-client messages (replies,
 * DMA_READ/DMA_WRITE) pass untouched.
 *
 * Why: the vfmig device library is more lenient while stopped: it also
 * answers DEVICE_GET_INFO, GET_REGION_INFO, GET_IRQ_INFO and DEVICE_RESET
 * (docs/device-migration.md), so a VMM that relies on them while its
 * devices are stopped works against vfmig devices and fails against
 * stricter servers. Put in front of a vfmig device, this proxy makes the
 * difference visible in a test. (The STOP_COPY row is stricter still than
 * libvfio-user, which lets region access through there too: a test that
 * passes here passes there.)
 *
 * The state starts as RUNNING and follows what the device confirms: a
 * successful reply to a DEVICE_FEATURE SET of MIG_DEVICE_STATE (the state
 * asked for), a GET reply (the state reported), a successful DEVICE_RESET
 * (RUNNING). It is the device's, so it outlives a client's connection.
 *
 * --log FILE appends one line per refused command and per state change:
 *   refused DEVICE_GET_INFO in STOP_COPY
 *   state RUNNING -> STOP
 * SIGTERM or SIGINT removes PATH and exits 0.
 *
 * Faults, for tests of what a VMM does when recovery fails (each refusal is
 * an EIO error reply, logged as "fault: refused ..."):
 *   stuck-in-stop-copy  every MIG_DEVICE_STATE SET while in STOP_COPY: the
 *                       device cannot leave STOP_COPY (and the gating above
 *                       refuses the reset a VMM tries next)
 *   stop-copy-read      MIG_DATA_READ in STOP_COPY: the stop-copy fails
 *   bad-reads-after-resume
 *                       not a refusal: once the device has come out of
 *                       RESUMING and runs, every BAR0 read it answers
 *                       reaches the client with the low bit of its first
 *                       byte flipped (a device that lost its state in the
 *                       migration, for tests of a verifier)
 *
 * --no-precopy makes the device one that does not offer PRE_COPY: the
 * PRE_COPY bit is cleared from GET MIGRATION replies, and a SET to
 * PRE_COPY is refused (EINVAL, logged "refused SET PRE_COPY").
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "protocol/migfsm.h"
#include "protocol/proto.h"

#define MAX_MSG (VFW_MAX_DATA_XFER_LIMIT + VFW_MSG_OVERHEAD)
#define MAX_PENDING 64
#define CONNECT_RETRY_MS 5000

/* A MIG_DEVICE_STATE request forwarded to the device, until its reply. */
struct pending {
	bool used;
	uint16_t msg_id;
	bool set;       /* SET (else GET) */
	uint32_t state; /* SET: the state asked for */
};

static struct {
	const char *listen_path;
	int log_fd;
	pthread_mutex_t lock;  /* state and pending */
	pthread_mutex_t wlock; /* writes to client (both threads send there) */
	uint32_t state;
	struct pending pending[MAX_PENDING];
	int client, device;
	bool stuck_in_stop_copy, stop_copy_read; /* --fault */
	bool bad_reads;                          /* --fault bad-reads-... */
	bool resumed, was_resuming;              /* for bad_reads */
	bool no_precopy;                         /* --no-precopy */
	uint16_t mig_get[MAX_PENDING];           /* GET MIGRATION ids asked */
	size_t nmig_get;
} P = {
	.log_fd = -1,
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.wlock = PTHREAD_MUTEX_INITIALIZER,
	.state = VFW_MIG_STATE_RUNNING,
	.client = -1,
	.device = -1,
};

__attribute__((format(printf, 1, 2)))
static void log_line(const char *fmt, ...)
{
	char line[160];
	va_list ap;
	int n;

	if (P.log_fd < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	/* One write per line, O_APPEND: lines never interleave. */
	if (write(P.log_fd, line, (size_t)n) < 0)
		perror("vfmig-strict-proxy: log");
}

/* With P.lock held. */
static void set_state(uint32_t s)
{
	if (s == P.state)
		return;
	log_line("state %s -> %s", vfw_mig_state_name(P.state),
		 vfw_mig_state_name(s));
	if (s == VFW_MIG_STATE_RESUMING)
		P.was_resuming = true;
	if (s == VFW_MIG_STATE_RUNNING && P.was_resuming)
		P.resumed = true;
	P.state = s;
}

static bool allowed(uint32_t state, unsigned int cmd)
{
	if (cmd == VFW_CMD_VERSION)
		return true;
	switch (state) {
	case VFW_MIG_STATE_STOP:
		return cmd == VFW_CMD_REGION_READ ||
		       cmd == VFW_CMD_REGION_WRITE ||
		       cmd == VFW_CMD_DEVICE_FEATURE ||
		       cmd == VFW_CMD_MIG_DATA_READ;
	case VFW_MIG_STATE_STOP_COPY:
		return cmd == VFW_CMD_DEVICE_FEATURE ||
		       cmd == VFW_CMD_MIG_DATA_READ;
	default:
		return true;
	}
}

static const struct vfw_device_feature *mig_state_feature(const struct vfw_msg *m);

/* The vfmig data channel is refused (ENOTSUP), as by a server that does
 * not know the feature: the client then falls back to MIG_DATA_READ/WRITE,
 * which the gating and the faults see. Not logged as a refusal. */
static bool data_channel(const struct vfw_msg *m)
{
	const struct vfw_device_feature *f = (const void *)m->payload;

	return m->hdr.command == VFW_CMD_DEVICE_FEATURE &&
	       m->len >= sizeof(*f) &&
	       (f->flags & VFW_FEATURE_MASK) == VFW_FEATURE_VFMIG_DATA_CHANNEL;
}

/* A --fault refusal of client command m, with P.lock held. */
static bool faulty(const struct vfw_msg *m)
{
	const struct vfw_device_feature *f;

	if (P.state != VFW_MIG_STATE_STOP_COPY)
		return false;
	if (P.stop_copy_read && m->hdr.command == VFW_CMD_MIG_DATA_READ)
		return true;
	f = mig_state_feature(m);
	return P.stuck_in_stop_copy && f && (f->flags & VFW_FEATURE_SET);
}

/* The feature header of a DEVICE_FEATURE payload naming MIG_DEVICE_STATE
 * with GET or SET (not PROBE), or NULL. */
static const struct vfw_device_feature *mig_state_feature(const struct vfw_msg *m)
{
	const struct vfw_device_feature *f = (const void *)m->payload;

	if (m->hdr.command != VFW_CMD_DEVICE_FEATURE || m->len < sizeof(*f))
		return NULL;
	if ((f->flags & VFW_FEATURE_MASK) != VFW_FEATURE_MIG_DEVICE_STATE ||
	    (f->flags & VFW_FEATURE_PROBE) ||
	    !(f->flags & (VFW_FEATURE_GET | VFW_FEATURE_SET)))
		return NULL;
	return f;
}

/* The device state carried after the feature header, if there is one. */
static bool payload_state(const struct vfw_msg *m, uint32_t *state)
{
	struct vfw_mig_device_state ds;
	size_t off = sizeof(struct vfw_device_feature);

	if (m->len < off + sizeof(ds))
		return false;
	memcpy(&ds, m->payload + off, sizeof(ds));
	*state = ds.device_state;
	return true;
}

/* --no-precopy, with P.lock held: remember GET MIGRATION requests; refuse
 * a SET to PRE_COPY (true). */
static bool hide_precopy_request(const struct vfw_msg *m)
{
	const struct vfw_device_feature *f = (const void *)m->payload;
	uint32_t s;

	if (!P.no_precopy || m->hdr.command != VFW_CMD_DEVICE_FEATURE ||
	    m->len < sizeof(*f))
		return false;
	if ((f->flags & VFW_FEATURE_MASK) == VFW_FEATURE_MIGRATION &&
	    (f->flags & VFW_FEATURE_GET) && !(f->flags & VFW_FEATURE_PROBE)) {
		P.mig_get[P.nmig_get++ % MAX_PENDING] = m->hdr.msg_id;
		return false;
	}
	return mig_state_feature(m) && (f->flags & VFW_FEATURE_SET) &&
	       payload_state(m, &s) && s == VFW_MIG_STATE_PRE_COPY;
}

/* --no-precopy, with P.lock held: a reply to a GET MIGRATION we saw loses
 * its PRE_COPY bit. */
static void hide_precopy_reply(struct vfw_msg *m)
{
	size_t off = sizeof(struct vfw_device_feature);
	uint64_t flags;

	if (!P.no_precopy || m->hdr.command != VFW_CMD_DEVICE_FEATURE ||
	    (m->hdr.flags & VFW_FLAGS_ERROR) || m->len < off + sizeof(flags))
		return;
	for (size_t i = 0; i < MAX_PENDING && i < P.nmig_get; i++) {
		if (P.mig_get[i] != m->hdr.msg_id)
			continue;
		memcpy(&flags, m->payload + off, sizeof(flags));
		flags &= ~VFW_MIGRATION_PRE_COPY;
		memcpy(m->payload + off, &flags, sizeof(flags));
		P.mig_get[i] = (uint16_t)~m->hdr.msg_id; /* used */
		return;
	}
}

/* Client -> device, with P.lock held: note a state request. */
static void note_request(const struct vfw_msg *m)
{
	const struct vfw_device_feature *f = mig_state_feature(m);
	struct pending *p = NULL;

	if (!f)
		return;
	for (size_t i = 0; i < MAX_PENDING && !p; i++)
		if (!P.pending[i].used || P.pending[i].msg_id == m->hdr.msg_id)
			p = &P.pending[i];
	if (!p) {
		fprintf(stderr, "vfmig-strict-proxy: more than %d state requests "
				"outstanding; one is not tracked\n", MAX_PENDING);
		return;
	}
	*p = (struct pending){ .used = true, .msg_id = m->hdr.msg_id,
			       .set = (f->flags & VFW_FEATURE_SET) != 0 };
	if (p->set && !payload_state(m, &p->state))
		p->used = false; /* the device will refuse it */
}

/* --fault bad-reads-after-resume, with P.lock held. */
static void spoil_read_reply(struct vfw_msg *m)
{
	struct vfw_region_access a;

	if (!P.bad_reads || !P.resumed ||
	    m->hdr.command != VFW_CMD_REGION_READ ||
	    (m->hdr.flags & VFW_FLAGS_ERROR) || m->len <= sizeof(a))
		return;
	memcpy(&a, m->payload, sizeof(a));
	if (a.region == 0 && a.count)
		((uint8_t *)m->payload)[sizeof(a)] ^= 1;
}

/* Device -> client, with P.lock held: learn the state from a reply. */
static void note_reply(const struct vfw_msg *m)
{
	bool ok = !(m->hdr.flags & VFW_FLAGS_ERROR);
	uint32_t s;

	if (m->hdr.command == VFW_CMD_DEVICE_RESET && ok) {
		set_state(VFW_MIG_STATE_RUNNING);
		return;
	}
	if (m->hdr.command != VFW_CMD_DEVICE_FEATURE)
		return;
	for (size_t i = 0; i < MAX_PENDING; i++) {
		struct pending *p = &P.pending[i];
		if (!p->used || p->msg_id != m->hdr.msg_id)
			continue;
		p->used = false;
		if (ok && p->set)
			set_state(p->state);
		else if (ok && payload_state(m, &s) && s < VFW_MIG_STATE_NUM)
			set_state(s);
		return;
	}
}

static int forward(int to, struct vfw_msg *m)
{
	struct iovec iov = { m->payload, m->len };

	return vfw_msg_send(to, &m->hdr, &iov, m->len ? 1 : 0, m->fds, m->nfds);
}

/* Forward m to the client, or with refuse_errno answer it with an error. */
static int to_client(struct vfw_msg *m, int refuse_errno)
{
	int r;

	pthread_mutex_lock(&P.wlock);
	r = refuse_errno ? vfw_send_error(P.client, &m->hdr, refuse_errno)
			 : forward(P.client, m);
	pthread_mutex_unlock(&P.wlock);
	return r;
}

/* End a session: wake both directions (the other thread is in recv). */
static void hang_up(void)
{
	shutdown(P.client, SHUT_RDWR);
	shutdown(P.device, SHUT_RDWR);
}

/* Device -> client, in its own thread. */
static void *device_to_client(void *arg)
{
	struct vfw_msg m;
	int r;

	(void)arg;
	while ((r = vfw_msg_recv(P.device, &m, MAX_MSG, VFW_MAX_FDS_PER_MSG)) == 0) {
		/* The state changes before the client sees the reply, so that
		 * its next command is judged by the new state. */
		pthread_mutex_lock(&P.lock);
		if ((m.hdr.flags & VFW_FLAGS_TYPE_MASK) == VFW_FLAGS_TYPE_REPLY) {
			note_reply(&m);
			hide_precopy_reply(&m);
			spoil_read_reply(&m);
		}
		pthread_mutex_unlock(&P.lock);
		r = to_client(&m, 0);
		vfw_msg_release(&m);
		if (r < 0)
			break;
	}
	hang_up();
	return NULL;
}

/* Client -> device, in the session's main thread. */
static void client_to_device(void)
{
	struct vfw_msg m;
	int r;

	while ((r = vfw_msg_recv(P.client, &m, MAX_MSG, VFW_MAX_FDS_PER_MSG)) == 0) {
		bool command = (m.hdr.flags & VFW_FLAGS_TYPE_MASK) ==
			       VFW_FLAGS_TYPE_COMMAND;
		bool refuse, fault = false;
		pthread_mutex_lock(&P.lock);
		refuse = command && !allowed(P.state, m.hdr.command);
		if (!refuse && command)
			fault = refuse = faulty(&m);
		if (!refuse && command && hide_precopy_request(&m)) {
			refuse = true;
			log_line("refused SET PRE_COPY");
		} else if (refuse)
			log_line("%srefused %s in %s", fault ? "fault: " : "",
				 vfw_command_name(m.hdr.command),
				 vfw_mig_state_name(P.state));
		else if (command)
			note_request(&m);
		pthread_mutex_unlock(&P.lock);
		if (command && data_channel(&m) &&
		    !(m.hdr.flags & VFW_FLAGS_NO_REPLY))
			r = to_client(&m, ENOTSUP);
		else if (!refuse)
			r = forward(P.device, &m);
		else if (!(m.hdr.flags & VFW_FLAGS_NO_REPLY))
			r = to_client(&m, fault ? EIO : EINVAL);
		vfw_msg_release(&m);
		if (r < 0)
			break;
	}
	hang_up();
}

/* Connect to the device, retrying a socket that is not there yet. */
static int connect_device(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timespec pause = { 0, 20 * 1000 * 1000 };

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	for (int waited = 0;; waited += 20) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return fd;
		int e = errno;
		close(fd);
		if ((e != ECONNREFUSED && e != ENOENT) || waited >= CONNECT_RETRY_MS)
			return -e;
		nanosleep(&pause, NULL);
	}
}

static void serve(int client, const char *device_path)
{
	pthread_t t;
	int r, dev = connect_device(device_path);

	if (dev < 0) {
		fprintf(stderr, "vfmig-strict-proxy: connecting to %s: %s\n",
			device_path, strerror(-dev));
		close(client);
		return;
	}
	pthread_mutex_lock(&P.lock);
	P.client = client;
	P.device = dev;
	memset(P.pending, 0, sizeof(P.pending));
	pthread_mutex_unlock(&P.lock);
	r = pthread_create(&t, NULL, device_to_client, NULL);
	if (r == 0) {
		client_to_device();
		pthread_join(t, NULL);
	} else {
		fprintf(stderr, "vfmig-strict-proxy: thread: %s\n", strerror(r));
	}
	close(client);
	close(dev);
	P.client = P.device = -1;
}

static void on_signal(int sig)
{
	(void)sig;
	unlink(P.listen_path);
	_exit(0);
}

static int usage(void)
{
	fprintf(stderr, "usage: vfmig-strict-proxy --listen PATH --device PATH "
			"[--log FILE]\n"
			"       [--fault stuck-in-stop-copy|stop-copy-read|"
			"bad-reads-after-resume]... "
			"[--no-precopy]\n");
	return 2;
}

int main(int argc, char **argv)
{
	const char *device = NULL, *log = NULL;
	struct sigaction sa = { .sa_handler = on_signal };
	int lfd;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--no-precopy")) {
			P.no_precopy = true;
			continue;
		}
		if (!strcmp(argv[i], "--fault") && i + 1 < argc) {
			const char *f = argv[++i];
			if (!strcmp(f, "stuck-in-stop-copy"))
				P.stuck_in_stop_copy = true;
			else if (!strcmp(f, "stop-copy-read"))
				P.stop_copy_read = true;
			else if (!strcmp(f, "bad-reads-after-resume"))
				P.bad_reads = true;
			else
				return usage();
			continue;
		}
		const char **dst = !strcmp(argv[i], "--listen") ? &P.listen_path
				   : !strcmp(argv[i], "--device") ? &device
				   : !strcmp(argv[i], "--log")	  ? &log
								  : NULL;
		if (!dst || i + 1 >= argc)
			return usage();
		*dst = argv[++i];
	}
	if (!P.listen_path || !device)
		return usage();
	if (log) {
		P.log_fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
				0644);
		if (P.log_fd < 0) {
			perror(log);
			return 1;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	/* Bound under a temporary name and renamed once listening: whoever
	 * sees PATH can connect. */
	lfd = vfw_unix_listen(P.listen_path, 4, 0);
	if (lfd < 0) {
		fprintf(stderr, "vfmig-strict-proxy: listening on %s: %s\n",
			P.listen_path, strerror(-lfd));
		return 1;
	}
	for (;;) {
		int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (c >= 0)
			serve(c, device);
		else if (errno != EINTR && errno != ECONNABORTED) {
			perror("vfmig-strict-proxy: accept");
			unlink(P.listen_path);
			return 1;
		}
	}
}
