/* SPDX-License-Identifier: MIT */
/* Sample device "dma": a DMA engine driven by a descriptor ring in guest
 * memory, working on its own thread. See README.md. */
#ifndef VFMIG_SAMPLE_DMA_H
#define VFMIG_SAMPLE_DMA_H

/*
 * Run the device until SIGTERM/SIGINT. argv[0] is the device name; options:
 * (--socket-path PATH | --fd N) [--interface v2|region]
 * [--quiet | --verbose] [--rate MBPS] [--test-skip-dirty-log].
 * Returns 0 on a clean stop, 1 on a runtime error, 2 on a usage error.
 */
int vfmig_sample_dma_main(int argc, char **argv);

#endif /* VFMIG_SAMPLE_DMA_H */
