/* SPDX-License-Identifier: MIT */
/* Sizes as people write and read them, for the command's options and
 * its reports. */
#ifndef VFMIG_CLI_UNITS_H
#define VFMIG_CLI_UNITS_H

#include <stddef.h>
#include <stdint.h>

/* "64M", "1G", "512K", "4096", "2GiB", "40MB": bytes into *out (K, M, G
 * are powers of 1024; an "i" and a "B" or "b" may follow). -1 when s is
 * empty, negative, not such a number or past UINT64_MAX; zero is the
 * caller's to refuse. */
int cli_parse_size(const char *s, uint64_t *out);

/* bytes as "512 B", "1.5 KiB", "12.0 MiB" ... into buf. */
void cli_human_bytes(char *buf, size_t len, double bytes);

#endif
