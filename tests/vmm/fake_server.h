/* SPDX-License-Identifier: MIT */
/*
 * A fake vfio-user server for the VMM library's hostile tests: a forked
 * child runs a script that speaks raw vfio-user through the shared protocol
 * code, checks what the client sent (CHECK: exit status 10 on a surprise)
 * and misbehaves on purpose. The parent adopts the other socket end.
 */
#ifndef VFMIG_TEST_FAKE_SERVER_H
#define VFMIG_TEST_FAKE_SERVER_H

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "protocol/proto.h"

#define SRV_MAX_MSG ((1u << 20) + 64)

/* In the child: give up with a distinct exit code on any surprise. */
#define CHECK(c)                                                              \
	do {                                                                  \
		if (!(c)) {                                                   \
			fprintf(stderr, "child check failed line %d: %s\n",   \
				__LINE__, #c);                                \
			_exit(10);                                            \
		}                                                             \
	} while (0)

typedef void (*script_fn)(int fd);

struct session {
	pid_t pid;
	int fd; /* client end, until adopted */
};

static inline void srv_recv(int fd, struct vfw_msg *m, uint16_t cmd)
{
	CHECK(vfw_msg_recv(fd, m, SRV_MAX_MSG, 16) == 0);
	CHECK(m->hdr.command == cmd);
	CHECK((m->hdr.flags & VFW_FLAGS_TYPE_MASK) == VFW_FLAGS_TYPE_COMMAND);
}

/* Answer VERSION with major.minor and caps text (NULL: no JSON). If
 * proposal is not NULL it gets the capabilities the client proposed. */
static inline void srv_version_caps(int fd, uint16_t major, uint16_t minor,
				    const char *json, int id_delta,
				    struct vfw_caps *proposal)
{
	struct vfw_msg m;
	uint8_t buf[512];
	struct vfw_version v = { major, minor };
	size_t len = sizeof(v);

	srv_recv(fd, &m, VFW_CMD_VERSION);
	if (proposal) {
		uint16_t ma, mi;
		char err[128];
		CHECK(vfw_version_parse(m.payload, m.len, &ma, &mi, proposal,
					err, sizeof(err)) == 0);
	}
	memcpy(buf, &v, sizeof(v));
	if (json) {
		memcpy(buf + len, json, strlen(json) + 1);
		len += strlen(json) + 1;
	}
	m.hdr.msg_id = (uint16_t)(m.hdr.msg_id + id_delta);
	CHECK(vfw_send_reply(fd, &m.hdr, buf, len) == 0);
	vfw_msg_release(&m);
}

static inline void srv_version_with(int fd, uint16_t major, uint16_t minor,
				    const char *json, int id_delta)
{
	srv_version_caps(fd, major, minor, json, id_delta, NULL);
}

static inline void srv_version(int fd)
{
	srv_version_with(fd, 0, 2,
			 "{\"capabilities\":{\"max_msg_fds\":2,"
			 "\"max_data_xfer_size\":4096}}",
			 0);
}

/* Expect that the client has closed its end (EOF). */
static inline void srv_expect_eof(int fd)
{
	struct vfw_msg m;

	CHECK(vfw_msg_recv(fd, &m, SRV_MAX_MSG, 16) == -ECONNRESET);
}

static inline struct session start(script_fn script)
{
	int sv[2];
	struct session s;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	s.pid = fork();
	assert_true(s.pid >= 0);
	if (s.pid == 0) {
		close(sv[0]);
		script(sv[1]);
		close(sv[1]);
		_exit(0);
	}
	close(sv[1]);
	s.fd = sv[0];
	return s;
}

static inline void finish(struct session *s)
{
	int st;

	assert_int_equal(waitpid(s->pid, &st, 0), s->pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

#endif
