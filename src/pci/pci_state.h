/* SPDX-License-Identifier: MIT */
/*
 * The "pci" device type: the VMM-side state of a PCI vfio-user device and
 * how to carry it (after QEMU's vfio_pci_save_config/load_config).
 *
 * Saved (vfmig_pci_save): the whole config space (region 7, 256 or 4096
 * bytes) as little-endian dwords, the registers restore writes (command,
 * BARs and expansion ROM, cache line, latency, INTx pin/line, MSI, PCIe
 * control registers) as named fields, and, in the subsection "msix" present
 * only when the device has MSI-X, the control register, the whole table and
 * a PBA of zeros. All of it comes from the VMM library's shadow of the
 * device (vmm.h), never from the device: the save runs after the device
 * stopped, when a strict server answers nothing but the state machine and
 * migration data.
 *
 * Restored (vfmig_pci_load), every step a REGION_WRITE:
 *   1. command = source command & ~(MEM | IO): no decoding while BARs move
 *   2. BARs 0-5 and the expansion ROM BAR; cache line, latency, INTx line,
 *      PCIe device/link control
 *   3. MSI: with per-vector masking, all vectors masked and MSI enable as
 *      on the source; without it, MSI stays disabled; then address/data
 *   4. MSI-X: function mask set (enable as on the source) while the table
 *      is written
 *   5. re-enable exactly the source's: MSI mask bits and control, MSI-X
 *      control (enable and function mask), then the command register as on
 *      the source
 * The PBA and MSI pending bits are not written: they are read-only to the
 * VMM and owned by the device, whose own migration data carries them (the
 * PBA is not even read; MSI pending bits are as last shadowed). Status and PCIe device status are not
 * written either (their error bits are write-one-to-clear).
 *
 * Before any write, vfmig_pci_check compares identity and layout with the
 * destination device: vendor, device, class, revision, subsystem ids,
 * config-space size, the capability list (ids and offsets), MSI control's
 * read-only bits, MSI-X table size and location. A mismatch is refused with
 * a message such as "vendor id 0x1b36 on the source, 0x8086 here".
 *
 * Binding IRQ eventfds after a load stays with the caller:
 * vfmig_pci_irq_wiring() tells which IRQ index and how many vectors.
 */
#ifndef VFMIG_PCI_STATE_H
#define VFMIG_PCI_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include <vfmig/vmm.h>

#include "engine/typereg.h"

#define VFMIG_PCI_STATE_VERSION 1
#define VFMIG_PCI_CFG_MAX 4096u
#define VFMIG_PCI_MSIX_MAX_VECTORS 2048u

/* Config-space offsets and bits used here. */
#define VFMIG_PCI_COMMAND 0x04u
#define VFMIG_PCI_CMD_IO 0x0001u
#define VFMIG_PCI_CMD_MEM 0x0002u
#define VFMIG_PCI_CMD_INTX_DISABLE 0x0400u
#define VFMIG_PCI_MSI_CTRL_ENABLE 0x0001u
#define VFMIG_PCI_MSI_CTRL_64BIT 0x0080u
#define VFMIG_PCI_MSI_CTRL_PVM 0x0100u
#define VFMIG_PCI_MSIX_CTRL_ENABLE 0x8000u
#define VFMIG_PCI_MSIX_CTRL_MASKALL 0x4000u

struct vfmig_pci_state {
	/* Whole config space as read, dword i = bytes 4i..4i+3 little-endian. */
	uint32_t cfg_dwords;                    /* 64 or 1024 */
	uint32_t cfg[VFMIG_PCI_CFG_MAX / 4];
	/* Registers restore writes (copies of cfg, named for the stream). */
	uint16_t command;
	uint32_t bars[6];
	uint32_t rom_bar;
	uint8_t cache_line, latency, intx_pin, intx_line;
	/* MSI; msi_cap 0: absent. */
	uint8_t msi_cap;
	uint16_t msi_ctrl;
	uint32_t msi_addr_lo, msi_addr_hi;
	uint16_t msi_data;
	uint32_t msi_mask, msi_pending;         /* with per-vector masking */
	/* PCI Express; pcie_cap 0: absent. */
	uint8_t pcie_cap;
	uint16_t pcie_devctl, pcie_linkctl, pcie_devctl2;
	/* MSI-X (subsection "msix"); msix_cap 0: absent. */
	uint8_t msix_cap;
	uint16_t msix_ctrl;
	uint32_t msix_table_reg, msix_pba_reg;  /* BIR | offset, from cfg */
	uint32_t msix_table_dwords;             /* vectors * 4 */
	uint32_t msix_table[VFMIG_PCI_MSIX_MAX_VECTORS * 4];
	uint32_t msix_pba_dwords;               /* ceil(vectors / 32) */
	uint32_t msix_pba[VFMIG_PCI_MSIX_MAX_VECTORS / 32];
};

/* The type's field table (name "pci", VFMIG_PCI_STATE_VERSION). */
extern const struct vfmig_fields_desc vfmig_pci_desc;
/* Its ops table, as registered. */
extern const struct vfmig_type_ops vfmig_pci_type;

/* Adds the "pci" type to reg. Returns 0 or as vfmig_typereg_add(). */
int vfmig_pci_type_register(struct vfmig_typereg *reg);

/*
 * Fills s from dev's shadow (captured first if it never was). Errors:
 * -ENODEV (not a PCI device, config region not 256/4096 bytes), -EBADMSG
 * (capability list loops or points outside, MSI-X table outside its BAR or
 * too large), device I/O errors.
 */
int vfmig_pci_save(vfmig_vmm_dev *dev, struct vfmig_pci_state *s,
		   char *err, size_t errlen);

/*
 * Checks s against itself (named fields agree with cfg; -EBADMSG) and
 * against dev (identity and layout; -EINVAL naming the mismatch). Writes
 * nothing to dev.
 */
int vfmig_pci_check(vfmig_vmm_dev *dev, const struct vfmig_pci_state *s,
		    char *err, size_t errlen);

/* Restores s into dev in the order above. Call vfmig_pci_check first. */
int vfmig_pci_load(vfmig_vmm_dev *dev, const struct vfmig_pci_state *s,
		   char *err, size_t errlen);

/*
 * Which IRQ index to bind after a load: MSI-X enabled -> MSIX with the
 * table size; else MSI enabled -> MSI with the enabled vector count; else
 * an INTx pin not disabled by the command register -> INTX, 1; else count 0.
 */
void vfmig_pci_irq_wiring(const struct vfmig_pci_state *s,
			  struct vfmig_type_irq_wiring *out);

#endif
