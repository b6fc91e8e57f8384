/* SPDX-License-Identifier: MIT */
/*
 * The guest workload's drivers of the sample devices (regs, vram, dma),
 * written against the samples' datasheets (samples/NAME/NAME_hw.h) and the
 * engine's driver interface (engine/guest_drv.h). A VM gets them through
 * vfmig_vm_opts.guest_drivers; the engine knows them only that way.
 */
#ifndef VFMIG_GUEST_DRIVERS_H
#define VFMIG_GUEST_DRIVERS_H

#include "engine/guest_drv.h"

/* Ledger kinds: a driver's number in the ledger, fixed once released. */
#define KIND_REGS 1u
#define KIND_VRAM 2u
#define KIND_DMA 3u

extern const struct vfmig_guest_driver vfmig_guest_regs_driver;
extern const struct vfmig_guest_driver vfmig_guest_vram_driver;
extern const struct vfmig_guest_driver vfmig_guest_dma_driver;

/* Every driver above, NULL-terminated: what `vfmig vmm` runs. */
extern const struct vfmig_guest_driver *const vfmig_guest_sample_drivers[];

#endif
