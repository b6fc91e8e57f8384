/* SPDX-License-Identifier: MIT */
/* The table of the sample devices' guest drivers. */
#include <stddef.h>

#include "guest/drivers.h"

const struct vfmig_guest_driver *const vfmig_guest_sample_drivers[] = {
	&vfmig_guest_regs_driver,
	&vfmig_guest_vram_driver,
	&vfmig_guest_dma_driver,
	NULL,
};
