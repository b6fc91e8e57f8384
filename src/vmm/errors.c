/* SPDX-License-Identifier: MIT */
/* vfmig_vmm_strerror: static text for the errors this library returns. */
#include <errno.h>
#include <string.h>

#include "internal.h"

static const char *const messages[] = {
	[EPERM] = "operation not permitted",
	[ENOENT] = "no such file or DMA window",
	[EINTR] = "interrupted",
	[EIO] = "device reported an error",
	[E2BIG] = "reply larger than the buffer",
	[EBADF] = "bad file descriptor",
	[EAGAIN] = "try again",
	[ENOMEM] = "out of memory",
	[EACCES] = "permission denied",
	[EFAULT] = "address outside the DMA windows",
	[EBUSY] = "device busy",
	[EEXIST] = "overlaps an existing DMA window",
	[EINVAL] = "invalid argument",
	[ENOSPC] = "no space",
	[EPIPE] = "broken pipe",
	[ERANGE] = "out of range",
	[EPROTO] = "protocol error from the device (connection closed)",
	[EBADMSG] = "malformed message",
	[EOVERFLOW] = "value too large",
	[EMSGSIZE] = "message too long",
	[EPROTONOSUPPORT] = "device speaks an unsupported protocol version",
	[EOPNOTSUPP] = "operation not supported by the device",
	[ECONNRESET] = "device closed the connection",
	[ENOTCONN] = "not connected (connection broken earlier)",
	[ETIMEDOUT] = "device did not reply in time",
	[ECONNREFUSED] = "connection refused",
	[ENODATA] = "migration data incomplete",
};

const char *vfmig_vmm_strerror(int err)
{
	unsigned int e = err < 0 ? (unsigned int)-(long)err : (unsigned int)err;

	if (e == 0)
		return "success";
	if (e < sizeof(messages) / sizeof(messages[0]) && messages[e])
		return messages[e];
	/* Another errno (a device may answer with any): the C library's
	 * text, which is static too. */
	const char *d = e < 4096 ? strerrordesc_np((int)e) : NULL;
	return d ? d : "unknown error";
}
