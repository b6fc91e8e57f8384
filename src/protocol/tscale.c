/* SPDX-License-Identifier: MIT */
/* VFMIG_TIMEOUT_SCALE (tscale.h). */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "tscale.h"

int vfw_timeout_scale_parse(const char *s, unsigned *out, char *err,
			    size_t errlen)
{
	unsigned long v = 0;

	if (!s) {
		*out = 1;
		return 0;
	}
	/* digits only: no sign, space, base prefix or suffix */
	if (!*s)
		goto bad;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			goto bad;
		v = v * 10 + (unsigned long)(*p - '0');
		if (v > VFW_TIMEOUT_SCALE_MAX)
			goto bad;
	}
	if (v < 1)
		goto bad;
	*out = (unsigned)v;
	return 0;
bad:
	snprintf(err, errlen,
		 "%s='%.32s': not an integer from 1 to %u",
		 VFW_TIMEOUT_SCALE_ENV, s, VFW_TIMEOUT_SCALE_MAX);
	return -EINVAL;
}

static unsigned scale = 1;
static pthread_once_t scale_once = PTHREAD_ONCE_INIT;

static void scale_read(void)
{
	char err[128];
	unsigned v;

	if (vfw_timeout_scale_parse(getenv(VFW_TIMEOUT_SCALE_ENV), &v, err,
				    sizeof(err)) == 0)
		scale = v;
}

unsigned vfw_timeout_scale(void)
{
	pthread_once(&scale_once, scale_read);
	return scale;
}

int vfw_scaled_ms(int ms)
{
	unsigned s = vfw_timeout_scale();

	if (ms <= 0)
		return ms;
	if ((unsigned)ms > (unsigned)INT_MAX / s)
		return INT_MAX;
	return ms * (int)s;
}
