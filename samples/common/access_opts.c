/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "access_opts.h"

int access_opts_parse_mode(const char *s, unsigned int *mode, char *err,
			   size_t errlen)
{
	unsigned int v = 0;
	size_t len = s ? strlen(s) : 0;

	if (!len || len > 4) {
		snprintf(err, errlen, "socket mode '%s': give 1 to 4 octal "
			 "digits, e.g. 0600 or 0660", s ? s : "");
		return -EINVAL;
	}
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '7') {
			snprintf(err, errlen, "socket mode '%s': not an octal "
				 "number (digits 0..7)", s);
			return -EINVAL;
		}
		v = v * 8 + (unsigned int)(s[i] - '0');
	}
	if (v > 0777) {
		snprintf(err, errlen, "socket mode '%s': only permission bits "
			 "(at most 0777)", s);
		return -EINVAL;
	}
	if ((v & 0600) != 0600) {
		snprintf(err, errlen, "socket mode '%s': the owner needs read "
			 "and write (0600)", s);
		return -EINVAL;
	}
	*mode = v;
	return 0;
}

/* One item of the list (len bytes at s) as a uid. */
static int parse_one(const char *s, size_t len, uid_t *uid, char *err,
		     size_t errlen)
{
	char item[64];

	if (!len) {
		snprintf(err, errlen, "uid list: an empty item");
		return -EINVAL;
	}
	if (len >= sizeof(item)) {
		snprintf(err, errlen, "uid list: item '%.*s...' too long",
			 (int)sizeof(item) / 2, s);
		return -EINVAL;
	}
	memcpy(item, s, len);
	item[len] = '\0';
	if (!strcmp(item, "self")) {
		*uid = geteuid();
		return 0;
	}
	if (item[0] >= '0' && item[0] <= '9') {
		char *end;
		unsigned long long v;

		errno = 0;
		v = strtoull(item, &end, 10);
		/* (uid_t)-1 means "no uid" to the kernel: never a peer's */
		if (errno || *end || v >= 0xffffffffull) {
			snprintf(err, errlen, "uid list: '%s' is not a uid "
				 "(0..4294967294)", item);
			return -EINVAL;
		}
		*uid = (uid_t)v;
		return 0;
	}
	struct passwd pw, *res = NULL;
	char buf[1024];
	int r = getpwnam_r(item, &pw, buf, sizeof(buf), &res);

	if (r || !res) {
		snprintf(err, errlen, "uid list: no user named '%s'%s%s", item,
			 r ? ": " : "", r ? strerror(r) : "");
		return -EINVAL;
	}
	*uid = res->pw_uid;
	return 0;
}

int access_opts_parse_uids(const char *s, uid_t *uids, size_t max, size_t *n,
			   char *err, size_t errlen)
{
	size_t count = 0;

	if (!s || !*s) {
		snprintf(err, errlen, "uid list: empty (give uids, user "
			 "names or self, separated by commas)");
		return -EINVAL;
	}
	for (const char *p = s;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		uid_t uid;
		size_t k;
		int r = parse_one(p, len, &uid, err, errlen);

		if (r < 0)
			return r;
		for (k = 0; k < count && uids[k] != uid; k++)
			;
		if (k == count) {
			if (count == max) {
				snprintf(err, errlen, "uid list: more than "
					 "%zu uids", max);
				return -E2BIG;
			}
			uids[count++] = uid;
		}
		if (!comma)
			break;
		p = comma + 1;
	}
	*n = count;
	return 0;
}
