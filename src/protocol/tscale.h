/* SPDX-License-Identifier: MIT */
/*
 * VFMIG_TIMEOUT_SCALE: how many times longer the product's own fixed
 * waits for a peer last (the VMM's wait for a device's reply, a migration
 * channel's read and write timeout, the source's waits on the return path,
 * the CLI's wait for a VMM's control reply). A slow host or memcheck
 * (tests/valgrind/run.sh) sets it; unset, every wait is what it always was.
 * Values the user passes (--stall-timeout-ms, library options) are never
 * scaled.
 */
#ifndef VFW_TSCALE_H
#define VFW_TSCALE_H

#define VFW_TIMEOUT_SCALE_ENV "VFMIG_TIMEOUT_SCALE"
#define VFW_TIMEOUT_SCALE_MAX 1000u

/*
 * Parse a value of VFMIG_TIMEOUT_SCALE: a decimal integer from 1 to
 * VFW_TIMEOUT_SCALE_MAX, nothing before or after it. NULL (unset) is 1.
 * Returns 0, or -EINVAL with the reason in err.
 */
int vfw_timeout_scale_parse(const char *s, unsigned *out, char *err,
			    size_t errlen);

/*
 * The scale of this process's environment, read once. An invalid value
 * counts as 1 here: programs refuse it at startup with
 * vfw_timeout_scale_parse().
 */
unsigned vfw_timeout_scale(void);

/* ms times the scale, at most INT_MAX; 0 and negative (none) as they are. */
int vfw_scaled_ms(int ms);

#endif
