/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "control_client.h"
#include "protocol/tscale.h"

#define REPLY_TIMEOUT_MS 30000

/* Read one line (without the newline) into a new JSON object. */
static int read_line(struct ctl_client *c, struct json_object **out,
		     char *err, size_t errlen)
{
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		if (nl) {
			*nl = '\0';
			*out = json_tokener_parse(c->buf);
			size_t used = (size_t)(nl - c->buf) + 1;
			memmove(c->buf, nl + 1, c->len - used);
			c->len -= used;
			if (!*out) {
				snprintf(err, errlen, "malformed reply line");
				return -EPROTO;
			}
			return 0;
		}
		if (c->len == sizeof(c->buf)) {
			snprintf(err, errlen, "reply line too long");
			return -EPROTO;
		}
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		int limit_ms = vfw_scaled_ms(REPLY_TIMEOUT_MS);
		int r = poll(&p, 1, limit_ms);
		if (r == 0) {
			snprintf(err, errlen, "no reply within %d ms",
				 limit_ms);
			return -ETIMEDOUT;
		}
		ssize_t n = r < 0 ? -1
				  : read(c->fd, c->buf + c->len,
					 sizeof(c->buf) - c->len);
		if (n <= 0) {
			snprintf(err, errlen, "the VMM closed the control "
				 "connection");
			return -ECONNRESET;
		}
		c->len += (size_t)n;
	}
}

int ctl_client_open(struct ctl_client *c, const char *path, char *err,
		    size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct json_object *greeting;
	int r = -1;

	c->len = 0;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "control path too long: %s", path);
		return -EINVAL;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	for (int i = 0; i < 100; i++) {
		r = connect(c->fd, (struct sockaddr *)&sa, sizeof(sa));
		if (r == 0 || (errno != ENOENT && errno != ECONNREFUSED))
			break;
		struct timespec ts = { 0, 20 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	if (r < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot connect to %s: %s", path,
			 strerror(errno));
		close(c->fd);
		c->fd = -1;
		return r;
	}
	r = read_line(c, &greeting, err, errlen);
	if (r < 0) {
		ctl_client_close(c);
		return r;
	}
	json_object_put(greeting);
	return 0;
}

int ctl_client_call(struct ctl_client *c, const char *name,
		    struct json_object *args, struct json_object **ret,
		    char *err, size_t errlen)
{
	struct json_object *req = json_object_new_object();
	struct json_object *reply, *v;
	int r;

	*ret = NULL;
	json_object_object_add(req, "execute", json_object_new_string(name));
	if (args)
		json_object_object_add(req, "arguments", args);
	const char *s = json_object_to_json_string_ext(req,
						       JSON_C_TO_STRING_PLAIN);
	size_t n = strlen(s);
	r = (send(c->fd, s, n, MSG_NOSIGNAL) == (ssize_t)n &&
	     send(c->fd, "\n", 1, MSG_NOSIGNAL) == 1)
		    ? 0
		    : -EPIPE;
	json_object_put(req);
	if (r < 0) {
		snprintf(err, errlen, "cannot send to the VMM");
		return r;
	}
	for (;;) {
		r = read_line(c, &reply, err, errlen);
		if (r < 0)
			return r;
		if (json_object_object_get_ex(reply, "return", &v)) {
			*ret = json_object_get(v);
			json_object_put(reply);
			return 0;
		}
		if (json_object_object_get_ex(reply, "error", &v)) {
			struct json_object *d;
			snprintf(err, errlen, "%s",
				 json_object_object_get_ex(v, "desc", &d)
					 ? json_object_get_string(d)
					 : "error");
			json_object_put(reply);
			return -EIO;
		}
		json_object_put(reply); /* an event */
	}
}

void ctl_client_close(struct ctl_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}
