/* SPDX-License-Identifier: MIT */
/* See raw_client.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <cmocka.h>

#include "raw_client.h"

int raw_call(vfmig_dev *dev, int fd, uint16_t cmd, const void *p, size_t len,
	     const int *fds, size_t nfds, struct vfw_msg *rep)
{
	struct vfw_header h = { .msg_id = 7, .command = cmd };
	struct iovec iov = { (void *)p, len };
	struct vfw_msg m;

	assert_int_equal(vfw_msg_send(fd, &h, &iov, len ? 1 : 0, fds, nfds), 0);
	assert_int_equal(vfmig_dev__process_one(dev), 1);
	assert_int_equal(vfw_msg_recv(fd, &m, 1 << 22, 16), 0);
	assert_int_equal(m.hdr.command, cmd);
	if (m.hdr.flags & VFW_FLAGS_ERROR) {
		assert_int_equal(m.len, 0);
		vfw_msg_release(&m);
		return -(int)m.hdr.error;
	}
	if (rep)
		*rep = m;
	else
		vfw_msg_release(&m);
	return 0;
}
