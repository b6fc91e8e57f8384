/* SPDX-License-Identifier: MIT */
/* Sample device "vram": large device-internal memory migrated iteratively
 * (PRE_COPY) with its own dirty tracking. See README.md for the register
 * map and vram_hw.h for the driver's view. */
#ifndef VFMIG_SAMPLE_VRAM_H
#define VFMIG_SAMPLE_VRAM_H

/*
 * Run the device until SIGTERM/SIGINT. argv[0] is the device name; options:
 * (--socket-path PATH | --fd N) [--size SIZE] [--interface v2|region]
 * [--quiet | --verbose]. SIZE takes a K, M or G suffix (default 256M).
 * Returns 0 on a clean stop, 1 on a runtime error, 2 on a usage error.
 */
int vfmig_sample_vram_main(int argc, char **argv);

#endif /* VFMIG_SAMPLE_VRAM_H */
