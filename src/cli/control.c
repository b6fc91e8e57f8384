/* SPDX-License-Identifier: MIT */
/* The VMM's control socket: line-delimited JSON commands and events. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "control_parse.h"
#include "protocol/proto.h"
#include "engine/guest.h"

#define MAX_CLIENTS 8
#define MAX_TABLES 8
#define SEND_TIMEOUT_MS 1000

struct client {
	int fd; /* -1: free slot */
	char *buf;
	size_t len;
	bool discarding; /* inside an over-long line: drop up to '\n' */
};

struct table {
	const struct vfmig_control_cmd *cmds;
	size_t n;
	void *priv;
};

struct event {
	struct event *next;
	char *line;
};

struct vfmig_control {
	struct vfmig_vm *vm;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int listen_fd;
	uid_t allow_uids[VFMIG_CONTROL_MAX_UIDS]; /* none: anyone */
	size_t n_allow_uids;
	int wake_fd;
	struct client clients[MAX_CLIENTS];
	struct table tables[MAX_TABLES];
	size_t ntables;
	bool quit;
	bool listening; /* subscribed to the VM */

	pthread_mutex_t ev_lock;
	struct event *ev_head, **ev_tail;
};

#define ERRF(...)                                                              \
	do {                                                                   \
		if (err && errlen)                                             \
			snprintf(err, errlen, __VA_ARGS__);                    \
	} while (0)

/* ---- built-in commands ---- */

static int no_args(struct json_object *args, char *err, size_t errlen)
{
	static const char *const none[] = { NULL };
	return vfmig_control_check_args(args, none, NULL, err, errlen);
}

static int cmd_query_status(struct vfmig_control *ctl, void *priv,
			    struct json_object *args, struct json_object **ret,
			    char *err, size_t errlen)
{
	enum vfmig_vm_run_state s = vfmig_vm_run_state(ctl->vm);
	(void)priv;

	if (no_args(args, err, errlen) < 0)
		return -EINVAL;
	*ret = json_object_new_object();
	json_object_object_add(
		*ret, "status",
		json_object_new_string(vfmig_vm_run_state_name(s)));
	json_object_object_add(*ret, "running",
			       json_object_new_boolean(s == VFMIG_VM_RUNNING));
	/* Devices a failed recovery left unusable, or whose connection
	 * broke: the VM is not healthy even if its guest runs. */
	struct json_object *faults = json_object_new_array();
	for (unsigned int i = 0; i < vfmig_vm_ndevs(ctl->vm); i++) {
		char msg[200], cause[160];
		if (!vfmig_vm_dev_connected(ctl->vm, i, cause, sizeof(cause)))
			snprintf(msg, sizeof(msg), "connection to the device "
				 "lost: %s", cause);
		else if (!vfmig_vm_dev_fault(ctl->vm, i, msg, sizeof(msg)))
			continue;
		struct json_object *f = json_object_new_object();
		json_object_object_add(f, "id", json_object_new_string(
					   vfmig_vm_dev_id(ctl->vm, i)));
		json_object_object_add(f, "fault", json_object_new_string(msg));
		json_object_array_add(faults, f);
	}
	json_object_object_add(*ret, "healthy", json_object_new_boolean(
				       json_object_array_length(faults) == 0));
	json_object_object_add(*ret, "device_faults", faults);
	return 0;
}

static int cmd_stop(struct vfmig_control *ctl, void *priv,
		    struct json_object *args, struct json_object **ret,
		    char *err, size_t errlen)
{
	(void)priv;
	(void)ret;
	if (no_args(args, err, errlen) < 0)
		return -EINVAL;
	return vfmig_vm_stop(ctl->vm, err, errlen);
}

static int cmd_cont(struct vfmig_control *ctl, void *priv,
		    struct json_object *args, struct json_object **ret,
		    char *err, size_t errlen)
{
	(void)priv;
	(void)ret;
	if (no_args(args, err, errlen) < 0)
		return -EINVAL;
	return vfmig_vm_cont(ctl->vm, err, errlen);
}

static struct json_object *dev_stats_json(struct vfmig_vm *vm, unsigned int i,
					  const struct vfmig_guest_dev_stats *d)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "id",
			       json_object_new_string(vfmig_vm_dev_id(vm, i)));
	json_object_object_add(o, "driver", json_object_new_string(d->kind));
	json_object_object_add(o, "doorbells",
			       json_object_new_uint64(d->doorbells));
	json_object_object_add(o, "fills", json_object_new_uint64(d->fills));
	json_object_object_add(o, "checksums",
			       json_object_new_uint64(d->checksums));
	json_object_object_add(o, "device_memory_writes",
			       json_object_new_uint64(d->mem_writes));
	json_object_object_add(o, "irq_raised",
			       json_object_new_uint64(d->irq_raised));
	json_object_object_add(o, "irq_received",
			       json_object_new_uint64(d->irq_received));
	json_object_object_add(o, "copies", json_object_new_uint64(d->copies));
	json_object_object_add(o, "completions",
			       json_object_new_uint64(d->completions));
	return o;
}

static int cmd_query_guest(struct vfmig_control *ctl, void *priv,
			   struct json_object *args, struct json_object **ret,
			   char *err, size_t errlen)
{
	static const char *const allowed[] = { "verify", NULL };
	static const enum json_type types[] = { json_type_boolean };
	struct vfmig_guest_stats st;
	struct json_object *o, *devs, *v;
	char msg[320];
	bool verify = true;
	(void)priv;

	if (vfmig_control_check_args(args, allowed, types, err, errlen) < 0)
		return -EINVAL;
	if (json_object_object_get_ex(args, "verify", &v))
		verify = json_object_get_boolean(v);
	vfmig_guest_stats(vfmig_vm_guest(ctl->vm), &st);
	o = json_object_new_object();
	json_object_object_add(o, "state", json_object_new_string(
			       vfmig_guest_state_name(st.state)));
	json_object_object_add(o, "iterations",
			       json_object_new_uint64(st.iterations));
	json_object_object_add(o, "engine", json_object_new_string(st.engine));
	json_object_object_add(o, "ram_stamps",
			       json_object_new_uint64(st.stamp_writes));
	json_object_object_add(o, "ram_checks",
			       json_object_new_uint64(st.stamp_checks));
	json_object_object_add(o, "throttle_percent",
			       json_object_new_int((int)vfmig_guest_throttle(
				       vfmig_vm_guest(ctl->vm))));
	devs = json_object_new_array();
	for (unsigned int i = 0; i < st.ndevs; i++)
		json_object_array_add(devs, dev_stats_json(ctl->vm, i,
							   &st.dev[i]));
	json_object_object_add(o, "devices", devs);
	json_object_object_add(o, "error",
			       st.state == VFMIG_GUEST_FAILED
				       ? json_object_new_string(st.error)
				       : NULL);
	if (verify) {
		int r = vfmig_guest_verify(ctl->vm, msg, sizeof(msg));
		json_object_object_add(o, "verified",
				       json_object_new_boolean(r == 0));
		json_object_object_add(o, "verify",
				       json_object_new_string(msg));
	}
	*ret = o;
	return 0;
}

static int cmd_query_devices(struct vfmig_control *ctl, void *priv,
			     struct json_object *args, struct json_object **ret,
			     char *err, size_t errlen)
{
	struct json_object *a;
	(void)priv;

	if (no_args(args, err, errlen) < 0)
		return -EINVAL;
	a = json_object_new_array();
	for (unsigned int i = 0; i < vfmig_vm_ndevs(ctl->vm); i++) {
		const struct vfmig_vmm_mig_caps *c =
			vfmig_vm_dev_mig_caps(ctl->vm, i);
		struct json_object *o = json_object_new_object();
		char cause[160], lost[200] = "";
		/* A device whose connection broke cannot migrate, whatever
		 * it could when it was attached. */
		bool up = vfmig_vm_dev_connected(ctl->vm, i, cause,
						 sizeof(cause));
		bool migratable = up && c->migratable;
		if (!up)
			snprintf(lost, sizeof(lost), "connection to the device "
				 "lost: %s", cause);
		json_object_object_add(o, "id", json_object_new_string(
					   vfmig_vm_dev_id(ctl->vm, i)));
		json_object_object_add(o, "socket", json_object_new_string(
					   vfmig_vm_dev_path(ctl->vm, i)));
		json_object_object_add(o, "connected",
				       json_object_new_boolean(up));
		json_object_object_add(o, "migratable",
				       json_object_new_boolean(migratable));
		static const char *const ifaces[] = { NULL, "v2", "region" };
		int iface = vfmig_vmm_mig_interface(vfmig_vm_dev(ctl->vm, i));
		json_object_object_add(o, "interface",
				       iface > 0 && iface < 3
					       ? json_object_new_string(
							 ifaces[iface])
					       : NULL);
		uint32_t ms;
		if (migratable &&
		    vfmig_vmm_mig_get_state(vfmig_vm_dev(ctl->vm, i), &ms) == 0)
			json_object_object_add(o, "migration_state",
					       json_object_new_string(
						       vfmig_vmm_mig_state_name(ms)));
		else
			json_object_object_add(o, "migration_state", NULL);
		json_object_object_add(o, "blocker",
				       migratable ? NULL
						  : json_object_new_string(
							    up ? c->blocker
							       : lost));
		char fault[200];
		json_object_object_add(o, "fault",
				       vfmig_vm_dev_fault(ctl->vm, i, fault,
							  sizeof(fault))
					       ? json_object_new_string(fault)
					       : NULL);
		json_object_array_add(a, o);
	}
	*ret = json_object_new_object();
	json_object_object_add(*ret, "devices", a);
	return 0;
}

static int cmd_query_commands(struct vfmig_control *ctl, void *priv,
			      struct json_object *args,
			      struct json_object **ret, char *err,
			      size_t errlen)
{
	struct json_object *a;
	(void)priv;

	if (no_args(args, err, errlen) < 0)
		return -EINVAL;
	a = json_object_new_array();
	for (size_t t = 0; t < ctl->ntables; t++)
		for (size_t i = 0; i < ctl->tables[t].n; i++) {
			const struct vfmig_control_cmd *c =
				&ctl->tables[t].cmds[i];
			struct json_object *o = json_object_new_object();
			json_object_object_add(o, "name",
					       json_object_new_string(c->name));
			json_object_object_add(o, "help",
					       json_object_new_string(c->help));
			json_object_array_add(a, o);
		}
	*ret = json_object_new_object();
	json_object_object_add(*ret, "commands", a);
	return 0;
}

static int cmd_quit(struct vfmig_control *ctl, void *priv,
		    struct json_object *args, struct json_object **ret,
		    char *err, size_t errlen)
{
	(void)priv;
	(void)ret;
	if (no_args(args, err, errlen) < 0)
		return -EINVAL;
	ctl->quit = true;
	return 0;
}

static const struct vfmig_control_cmd builtin[] = {
	{ "query-status", cmd_query_status,
	  "run state: {\"status\": \"running\"|..., \"running\": bool}" },
	{ "stop", cmd_stop, "pause the guest, move devices to STOP" },
	{ "cont", cmd_cont, "move devices to RUNNING, resume the guest" },
	{ "query-guest", cmd_query_guest,
	  "guest driver counters and verification (\"verify\": false skips)" },
	{ "query-devices", cmd_query_devices,
	  "attached devices, connection, migration state and blockers" },
	{ "query-commands", cmd_query_commands, "list the commands" },
	{ "quit", cmd_quit, "stop the VMM (exit status 0)" },
};

/* ---- helpers ---- */

struct vfmig_vm *vfmig_control_vm(struct vfmig_control *ctl)
{
	return ctl->vm;
}

static const struct vfmig_control_cmd *find_cmd(struct vfmig_control *ctl,
						const char *name, void **priv)
{
	for (size_t t = 0; t < ctl->ntables; t++)
		for (size_t i = 0; i < ctl->tables[t].n; i++)
			if (!strcmp(ctl->tables[t].cmds[i].name, name)) {
				*priv = ctl->tables[t].priv;
				return &ctl->tables[t].cmds[i];
			}
	return NULL;
}

int vfmig_control_add_commands(struct vfmig_control *ctl,
			       const struct vfmig_control_cmd *table, size_t n,
			       void *priv)
{
	void *unused;

	if (ctl->ntables == MAX_TABLES)
		return -ENOSPC;
	for (size_t i = 0; i < n; i++) {
		if (!table[i].name || !table[i].fn)
			return -EINVAL;
		if (find_cmd(ctl, table[i].name, &unused))
			return -EEXIST;
	}
	ctl->tables[ctl->ntables++] = (struct table){ table, n, priv };
	return 0;
}

/* ---- clients ---- */

static void drop_client(struct client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	*c = (struct client){ .fd = -1 };
}

/* Write line + '\n' completely, waiting a bounded time for room. A client
 * that does not read is dropped. */
static void send_line(struct client *c, const char *line)
{
	size_t len = strlen(line);
	char *msg = malloc(len + 1);
	size_t off = 0;

	if (!msg) {
		drop_client(c);
		return;
	}
	memcpy(msg, line, len);
	msg[len++] = '\n';
	while (off < len) {
		ssize_t n = send(c->fd, msg + off, len - off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		struct pollfd p = { .fd = c->fd, .events = POLLOUT };
		if (n < 0 && errno == EAGAIN &&
		    poll(&p, 1, SEND_TIMEOUT_MS) == 1)
			continue;
		drop_client(c);
		break;
	}
	free(msg);
}

static void send_json(struct client *c, struct json_object *o)
{
	send_line(c, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
}

static void send_error(struct client *c, struct json_object *id,
		       const char *cls, const char *desc)
{
	struct json_object *o = json_object_new_object();
	struct json_object *e = json_object_new_object();

	json_object_object_add(e, "class", json_object_new_string(cls));
	json_object_object_add(e, "desc", json_object_new_string(desc));
	json_object_object_add(o, "error", e);
	if (id)
		json_object_object_add(o, "id", json_object_get(id));
	send_json(c, o);
	json_object_put(o);
}

static bool only_space(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
			return false;
	return true;
}

static void handle_request(struct vfmig_control *ctl, struct client *c,
			   const char *line, size_t len)
{
	struct vfmig_control_request rq;
	struct json_object *ret = NULL, *empty = NULL, *args;
	const struct vfmig_control_cmd *cmd;
	char err[400] = "";
	void *priv;
	int r;

	if (vfmig_control_parse_request(line, len, &rq, err, sizeof(err)) < 0) {
		send_error(c, rq.id, "GenericError", err);
		goto out;
	}
	args = rq.args ? rq.args : (empty = json_object_new_object());
	cmd = find_cmd(ctl, rq.execute, &priv);
	if (!cmd) {
		snprintf(err, sizeof(err),
			 "the command %.64s has not been found", rq.execute);
		send_error(c, rq.id, "CommandNotFound", err);
		goto out;
	}
	r = cmd->fn(ctl, priv, args, &ret, err, sizeof(err));
	if (r < 0) {
		if (!err[0])
			snprintf(err, sizeof(err), "%s: %s", cmd->name,
				 strerror(-r));
		send_error(c, rq.id, "GenericError", err);
		json_object_put(ret);
	} else {
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "return",
				       ret ? ret : json_object_new_object());
		if (rq.id)
			json_object_object_add(o, "id",
					       json_object_get(rq.id));
		send_json(c, o);
		json_object_put(o);
	}
out:
	json_object_put(empty);
	vfmig_control_request_release(&rq);
}

/* Read what the client sent and handle every complete line. */
static void client_input(struct vfmig_control *ctl, struct client *c)
{
	const size_t cap = VFMIG_CONTROL_LINE_MAX + 1;
	ssize_t n = read(c->fd, c->buf + c->len, cap - c->len);
	size_t start = 0;

	if (n <= 0) {
		if (n == 0 || (errno != EINTR && errno != EAGAIN))
			drop_client(c);
		return;
	}
	c->len += (size_t)n;
	for (size_t i = 0; i < c->len && c->fd >= 0 && !ctl->quit; i++) {
		if (c->buf[i] != '\n')
			continue;
		if (c->discarding)
			c->discarding = false;
		else if (!only_space(c->buf + start, i - start))
			handle_request(ctl, c, c->buf + start, i - start);
		start = i + 1;
	}
	if (c->fd < 0)
		return;
	memmove(c->buf, c->buf + start, c->len - start);
	c->len -= start;
	if (c->len == cap) {
		char msg[96];
		if (!c->discarding) {
			snprintf(msg, sizeof(msg),
				 "request line longer than %u bytes refused",
				 VFMIG_CONTROL_LINE_MAX);
			send_error(c, NULL, "GenericError", msg);
		}
		c->discarding = true;
		c->len = 0;
	}
}

static void greet(struct client *c)
{
	struct json_object *o = json_object_new_object();
	struct json_object *v = json_object_new_object();

	json_object_object_add(v, "version", json_object_new_string("0.1.0"));
	json_object_object_add(v, "protocol", json_object_new_int(1));
	json_object_object_add(o, "vfmig", v);
	send_json(c, o);
	json_object_put(o);
}

/* With --allow-uid: a client whose uid is not listed is closed here, before
 * it hears a greeting, and logged; the others are served as before. */
static bool peer_allowed(struct vfmig_control *ctl, int fd)
{
	uid_t uid;
	int r;

	if (!ctl->n_allow_uids)
		return true;
	r = vfw_peer_uid(fd, &uid);
	if (r == 0 && vfw_uid_allowed(ctl->allow_uids, ctl->n_allow_uids, uid))
		return true;
	if (r < 0)
		vfmig_vm_log(ctl->vm, VFMIG_LOG_WARNING, "control socket %s: "
			     "refused a client: its uid is unknown (%s)",
			     ctl->path, strerror(-r));
	else
		vfmig_vm_log(ctl->vm, VFMIG_LOG_WARNING, "control socket %s: "
			     "refused a client with uid %u: not an allowed "
			     "uid", ctl->path, (unsigned int)uid);
	close(fd);
	return false;
}

static void accept_client(struct vfmig_control *ctl)
{
	int fd = accept4(ctl->listen_fd, NULL, NULL,
			 SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd < 0 || !peer_allowed(ctl, fd))
		return;
	for (int i = 0; i < MAX_CLIENTS; i++) {
		struct client *c = &ctl->clients[i];
		if (c->fd >= 0)
			continue;
		c->buf = malloc(VFMIG_CONTROL_LINE_MAX + 1);
		if (!c->buf)
			break;
		c->fd = fd;
		c->len = 0;
		c->discarding = false;
		greet(c);
		return;
	}
	struct client tmp = { .fd = fd };
	send_error(&tmp, NULL, "GenericError", "too many clients");
	drop_client(&tmp);
}

/* ---- events ---- */

int vfmig_control_emit(struct vfmig_control *ctl, const char *name,
		       struct json_object *data)
{
	struct json_object *o = json_object_new_object();
	struct json_object *ts = json_object_new_object();
	struct event *ev = calloc(1, sizeof(*ev));
	struct timeval tv;
	uint64_t one = 1;

	gettimeofday(&tv, NULL);
	json_object_object_add(o, "event", json_object_new_string(name));
	if (data)
		json_object_object_add(o, "data", data);
	json_object_object_add(ts, "seconds", json_object_new_int64(tv.tv_sec));
	json_object_object_add(ts, "microseconds",
			       json_object_new_int64(tv.tv_usec));
	json_object_object_add(o, "timestamp", ts);
	if (ev)
		ev->line = strdup(json_object_to_json_string_ext(
			o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	if (!ev || !ev->line) {
		free(ev);
		return -ENOMEM;
	}
	pthread_mutex_lock(&ctl->ev_lock);
	*ctl->ev_tail = ev;
	ctl->ev_tail = &ev->next;
	pthread_mutex_unlock(&ctl->ev_lock);
	if (write(ctl->wake_fd, &one, sizeof(one)) != sizeof(one))
		return -errno;
	return 0;
}

static void flush_events(struct vfmig_control *ctl)
{
	struct event *ev;
	uint64_t n;

	if (read(ctl->wake_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return;
	pthread_mutex_lock(&ctl->ev_lock);
	ev = ctl->ev_head;
	ctl->ev_head = NULL;
	ctl->ev_tail = &ctl->ev_head;
	pthread_mutex_unlock(&ctl->ev_lock);
	while (ev) {
		struct event *next = ev->next;
		for (int i = 0; i < MAX_CLIENTS; i++)
			if (ctl->clients[i].fd >= 0)
				send_line(&ctl->clients[i], ev->line);
		free(ev->line);
		free(ev);
		ev = next;
	}
}

static void on_state(void *priv, enum vfmig_vm_run_state old,
		     enum vfmig_vm_run_state now)
{
	struct vfmig_control *ctl = priv;
	struct json_object *data = json_object_new_object();

	json_object_object_add(data, "status", json_object_new_string(
				   vfmig_vm_run_state_name(now)));
	if (now == VFMIG_VM_RUNNING)
		vfmig_control_emit(ctl, "RESUME", data);
	else if (old == VFMIG_VM_RUNNING)
		vfmig_control_emit(ctl, "STOP", data);
	else
		json_object_put(data);
}

/* ---- lifecycle ---- */

static int listen_on(struct vfmig_control *ctl, const char *path,
		     unsigned int mode, char *err, size_t errlen)
{
	char msg[320];

	if (strlen(path) >= sizeof(ctl->path)) {
		ERRF("control socket path too long: %s", path);
		return -EINVAL;
	}
	ctl->listen_fd = vfw_unix_listen_mode(path, 8, 0, mode, msg,
					      sizeof(msg));
	if (ctl->listen_fd < 0) {
		int r = ctl->listen_fd;
		ERRF("control socket %s: %s", path, msg[0] ? msg : strerror(-r));
		return r;
	}
	if (msg[0])
		vfmig_vm_log(ctl->vm, VFMIG_LOG_WARNING, "control socket: %s",
			     msg);
	snprintf(ctl->path, sizeof(ctl->path), "%s", path);
	return 0;
}

int vfmig_control_create(struct vfmig_vm *vm, const char *path,
			 struct vfmig_control **out, char *err, size_t errlen)
{
	return vfmig_control_create_access(vm, path, NULL, out, err, errlen);
}

int vfmig_control_create_access(struct vfmig_vm *vm, const char *path,
				const struct vfmig_control_access *acc,
				struct vfmig_control **out, char *err,
				size_t errlen)
{
	struct vfmig_control *ctl = calloc(1, sizeof(*ctl));
	int r;

	*out = NULL;
	if (!ctl)
		return -ENOMEM;
	ctl->vm = vm;
	ctl->listen_fd = -1;
	for (int i = 0; i < MAX_CLIENTS; i++)
		ctl->clients[i].fd = -1;
	pthread_mutex_init(&ctl->ev_lock, NULL);
	ctl->ev_tail = &ctl->ev_head;
	ctl->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ctl->wake_fd < 0) {
		r = -errno;
		ERRF("eventfd: %s", strerror(errno));
		goto fail;
	}
	r = vfmig_control_add_commands(ctl, builtin,
				       sizeof(builtin) / sizeof(builtin[0]),
				       NULL);
	if (r < 0)
		goto fail;
	if (acc && acc->n_uids > VFMIG_CONTROL_MAX_UIDS) {
		ERRF("control socket: more than %u allowed uids",
		     VFMIG_CONTROL_MAX_UIDS);
		r = -EINVAL;
		goto fail;
	}
	if (acc && acc->n_uids) {
		memcpy(ctl->allow_uids, acc->uids,
		       acc->n_uids * sizeof(acc->uids[0]));
		ctl->n_allow_uids = acc->n_uids;
	}
	if (path) {
		r = listen_on(ctl, path, acc ? acc->mode : 0, err, errlen);
		if (r < 0)
			goto fail;
	}
	r = vfmig_vm_add_listener(vm, on_state, ctl);
	if (r < 0) {
		ERRF("VM listener: %s", strerror(-r));
		goto fail;
	}
	ctl->listening = true;
	*out = ctl;
	return 0;
fail:
	vfmig_control_destroy(ctl);
	return r;
}

void vfmig_control_destroy(struct vfmig_control *ctl)
{
	if (!ctl)
		return;
	if (ctl->listening)
		vfmig_vm_remove_listener(ctl->vm, on_state, ctl);
	for (int i = 0; i < MAX_CLIENTS; i++)
		drop_client(&ctl->clients[i]);
	if (ctl->listen_fd >= 0)
		close(ctl->listen_fd);
	if (ctl->path[0])
		unlink(ctl->path);
	while (ctl->ev_head) {
		struct event *next = ctl->ev_head->next;
		free(ctl->ev_head->line);
		free(ctl->ev_head);
		ctl->ev_head = next;
	}
	if (ctl->wake_fd >= 0)
		close(ctl->wake_fd);
	pthread_mutex_destroy(&ctl->ev_lock);
	free(ctl);
}

int vfmig_control_run(struct vfmig_control *ctl, int stop_fd)
{
	struct pollfd p[3 + MAX_CLIENTS];
	int who[3 + MAX_CLIENTS];

	while (!ctl->quit) {
		int n = 0;
		p[n] = (struct pollfd){ .fd = stop_fd, .events = POLLIN };
		who[n++] = -1;
		p[n] = (struct pollfd){ .fd = ctl->wake_fd, .events = POLLIN };
		who[n++] = -2;
		p[n] = (struct pollfd){ .fd = ctl->listen_fd,
					.events = POLLIN };
		who[n++] = -3;
		for (int i = 0; i < MAX_CLIENTS; i++)
			if (ctl->clients[i].fd >= 0) {
				p[n] = (struct pollfd){
					.fd = ctl->clients[i].fd,
					.events = POLLIN
				};
				who[n++] = i;
			}
		if (poll(p, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (p[0].revents)
			return 0;
		for (int k = 1; k < n && !ctl->quit; k++) {
			if (!p[k].revents)
				continue;
			if (who[k] == -2)
				flush_events(ctl);
			else if (who[k] == -3)
				accept_client(ctl);
			else if (ctl->clients[who[k]].fd == p[k].fd)
				client_input(ctl, &ctl->clients[who[k]]);
		}
	}
	return 0;
}
