/* SPDX-License-Identifier: MIT */
/*
 * Definitions shared by the public vfmig headers. Header-only: no symbols.
 *
 * Error convention for every vfmig library function: 0 (or a non-negative
 * count) on success, a negative errno value on failure. Each library has a
 * *_strerror() that turns such a value into text.
 */
#ifndef VFMIG_COMMON_H
#define VFMIG_COMMON_H

#if defined(VFMIG_BUILDING_LIBRARY)
#define VFMIG_EXPORT __attribute__((visibility("default")))
#else
#define VFMIG_EXPORT
#endif

/* Log levels, as in syslog(3). */
enum vfmig_log_level {
	VFMIG_LOG_ERR = 3,
	VFMIG_LOG_WARNING = 4,
	VFMIG_LOG_INFO = 6,
	VFMIG_LOG_DEBUG = 7,
};

/*
 * Log callback. The libraries never print; they hand each formatted message
 * (no trailing newline) to this function. msg is valid only for the call.
 */
typedef void (*vfmig_log_fn)(void *priv, int level, const char *msg);

#endif /* VFMIG_COMMON_H */
