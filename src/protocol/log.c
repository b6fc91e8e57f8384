/* SPDX-License-Identifier: MIT */
/* Logging shim: format once, hand the text to the caller's callback. */
#include <stdio.h>

#include "proto.h"

void vfw_log(const struct vfw_logger *lg, int level, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	if (!lg || !lg->fn || level > lg->level)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	lg->fn(lg->priv, level, buf);
}
