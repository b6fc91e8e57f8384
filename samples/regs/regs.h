/* SPDX-License-Identifier: MIT */
/* Sample device "regs": a small PCI device with registers, a DMA engine,
 * mappable device memory and MSI-X. See README.md for the register map. */
#ifndef VFMIG_SAMPLE_REGS_H
#define VFMIG_SAMPLE_REGS_H

/*
 * Run the device until SIGTERM/SIGINT. argv[0] is the device name; options:
 * (--socket-path PATH | --fd N) [--interface v2|region]
 * [--quiet | --verbose].
 * Returns 0 on a clean stop, 1 on a runtime error, 2 on a usage error.
 */
int vfmig_sample_regs_main(int argc, char **argv);

#endif /* VFMIG_SAMPLE_REGS_H */
